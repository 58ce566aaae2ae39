#!/usr/bin/env bash
# Key-to-screen latency of the console in a storm. The embedded console
# runs in tmux at 120x40 with its HTTP intake on (MODE embedded, the
# default), or the console attached to `signalbox serve --demo` (MODE
# attached) and the storm goes to the server; benches/key_probe.py
# presses the next-view key every 250 ms and times until the screen shows
# the next view. After QUIET seconds (the baseline of this run), a burst of
# distinct alerts (`signalbox bench --load --rate 0`, CONNS connections,
# SECONDS_RUN seconds) goes to the console's own intake; the probe goes on
# until AFTER seconds past the end of the burst. Prints p50, p99 and the
# worst latency before, during and after the burst (target: p99 under
# 100 ms in each).
#
# The console, the load and the probe share the machine's cores.
# Needs tmux, python3 and a release build.
# Usage: benches/console_storm.sh [seconds] [connections] [quiet] [after] [embedded|attached]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-8}
CONNS=${2:-32}
QUIET=${3:-5}
AFTER=${4:-20}
MODE=${5:-embedded}
cargo build --release --quiet
sb=$PWD/target/release/signalbox
work=$(mktemp -d)
session="storm-$$"
cleanup() { tmux kill-session -t "$session" 2>/dev/null || true; kill "${SB_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TOKEN="storm-bench-secret"
case "$MODE" in
embedded)
    tmux new-session -d -s "$session" -x 120 -y 40 \
        "HOME=$work $sb --data-dir $work/data --listen 127.0.0.1:$PORT --token $TOKEN:operator:bench --colleagues 0 2>$work/console.err"
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    ;;
attached)
    HOME="$work" $sb serve --demo --listen "127.0.0.1:$PORT" --data-dir "$work/data" \
        --token "$TOKEN:operator:bench" >"$work/serve.log" 2>&1 &
    SB_PID=$!
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    tmux new-session -d -s "$session" -x 120 -y 40 \
        "HOME=$work $sb attach http://127.0.0.1:$PORT --token $TOKEN 2>$work/console.err"
    ;;
*) echo "bench: MODE is embedded or attached, not $MODE"; exit 2 ;;
esac
for _ in $(seq 1 100); do tmux capture-pane -p -t "$session" | grep -q "signalbox ›" && break; sleep 0.1; done
echo "storm: the console $MODE, at 120x40 in tmux"
total=$(python3 -c "print($QUIET + $SECONDS_RUN + $AFTER + 30)")
python3 benches/key_probe.py "$session" "$total" "$work/probe.txt" &
PROBE=$!
sleep "$QUIET"
began=$(date +%s.%N)
$sb bench --load "http://127.0.0.1:$PORT" --token "$TOKEN" --rate 0 --seconds "$SECONDS_RUN" \
    --connections "$CONNS" | sed 's/^/storm: /'
ended=$(date +%s.%N)
sleep "$AFTER"
kill "$PROBE" 2>/dev/null || true
wait "$PROBE" 2>/dev/null || true
python3 - "$work/probe.txt" "$began" "$ended" "$SECONDS_RUN" "$AFTER" <<'PY'
import sys
path, began, ended, burst, after = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
presses = [tuple(map(float, line.split())) for line in open(path) if line.strip()]
burst_end = began + burst
phases = {
    "before (baseline)": [l for t, l in presses if t < began],
    f"during the {burst:g} s burst": [l for t, l in presses if began <= t < burst_end],
    f"after it, until the engine caught up ({ended - burst_end:.1f} s)": [l for t, l in presses if burst_end <= t < ended],
    f"the {after:g} s after that": [l for t, l in presses if ended <= t < ended + after],
}
for name, ls in phases.items():
    if not ls:
        print(f"keys: {name}: no presses")
        continue
    ls.sort()
    p = lambda q: ls[min(len(ls) - 1, int(q * len(ls)))]
    print(f"keys: {name}: {len(ls)} presses, key to screen p50 {p(0.5):.0f} ms, p99 {p(0.99):.0f} ms, worst {ls[-1]:.0f} ms")
PY
