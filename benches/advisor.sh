#!/usr/bin/env bash
# The advisor's figures with a real model on this machine's CPU: llama.cpp's
# llama-server and SmolLM2-135M-Instruct (built and cached by .ci/llama),
# or any OpenAI-compatible endpoint given as ADVISOR_URL (and ADVISOR_MODEL).
# Prints latency p50/p99 of proposals and explanations, the share of valid
# and allowed proposals and of sentences kept, and agreement with the
# simulator's hidden truth for types taken out of the playbook, beside the
# playbook's default and the first listed option on the same decisions.
#
# Usage: benches/advisor.sh [PER_TYPE]   (default 20 decisions per type)
set -euo pipefail
cd "$(dirname "$0")/.."
per_type="${1:-20}"
cargo build --release --quiet
url="${ADVISOR_URL:-}"
model="${ADVISOR_MODEL:-smollm2}"
if [ -z "$url" ]; then
    cache="$(.ci/llama)"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    setsid "$cache/llama-server" --host 127.0.0.1 --port "$port" -t 2 -c 4096 -np 1 \
        -m "$cache/SmolLM2-135M-Instruct.Q4_1.gguf" >/dev/null 2>&1 &
    pid=$!
    trap 'kill $pid 2>/dev/null || true' EXIT
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
        sleep 0.2
    done
    url="http://127.0.0.1:$port"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
target/release/signalbox bench --advisor "$url" --advisor-model "$model" --per-type "$per_type"
