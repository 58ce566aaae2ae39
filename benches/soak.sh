#!/usr/bin/env bash
# serve's memory over a long run: SIGNALS signals (default 1,000,000) sent
# by `signalbox bench --load` as fast as they are answered, and the server's
# resident memory (RSS, /proc) printed every few seconds beside what it
# holds (open review items, flows, backlog), then at the end.
#
# The mix is Alertmanager's: every alert fires and resolves RESOLVE_AFTER
# alerts later (default 1000), which closes what it opened. STORM=1 sends
# alerts that never resolve instead: every one opens a review item nobody
# answers, all of them live (the worst case; it is printed apart).
# The first line is the baseline: the idle server's RSS.
#
# Needs a release build. Usage: benches/soak.sh [signals]
set -euo pipefail
cd "$(dirname "$0")/.."
SIGNALS=${1:-1000000}
RESOLVE_AFTER=${RESOLVE_AFTER:-1000}
cargo build --release --quiet
sb=./target/release/signalbox
work=$(mktemp -d)
cleanup() { kill "${SB_PID:-}" "${LOAD_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOME="$work" $sb serve --demo --listen "127.0.0.1:$PORT" --data-dir "$work/sb" >"$work/sb.log" 2>&1 &
SB_PID=$!
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do curl -fs "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/VmRSS/ {printf "%d", $2/1024}' "/proc/$SB_PID/status"; }
metric() { curl -fs "$BASE/metrics" | awk -v n="$1" '$1==n {printf "%d", $2}'; }
accepted() { curl -fs "$BASE/metrics" | awk '$1 ~ /^signalbox_intake_accepted_total/ {s+=$2} END {printf "%d", s}'; }
mix="fire and resolve ${RESOLVE_AFTER} alerts later"
resolve=(--resolve-after "$RESOLVE_AFTER")
if [ "${STORM:-0}" = 1 ]; then mix="a storm: every alert stays open"; resolve=(); fi
echo "soak: $SIGNALS signals ($mix); baseline: idle server RSS $(rss) MB"
began=$(date +%s)
sent=0
while [ "$sent" -lt "$SIGNALS" ]; do
    $sb bench --load "$BASE" --rate 0 --seconds 5 "${resolve[@]}" >/dev/null
    sent=$(accepted)
    echo "soak: $(( $(date +%s) - began )) s: $sent signals acknowledged, RSS $(rss) MB, open review items $(metric signalbox_review_queue_depth), backlog $(metric signalbox_intake_backlog)"
done
echo "soak: after $sent signals: RSS $(rss) MB (target 500 MB)"
