#!/usr/bin/env bash
# How long a signal waits from its 202 to its durable decision, on a real
# server, measured by `signalbox bench --load` (distinct alerts, each of
# which opens a review item) against the server's own
# signalbox_decision_latency_seconds histogram:
#
#   1. the most the server acknowledges: wrk (Debian's), CONNS connections
#      for SECONDS, on a fresh server (the baseline of this run; wrk costs
#      the shared cores less than our own sender);
#   2. an open loop at half that rate for SECONDS, ROUNDS times (default 3),
#      each on a fresh server: p50/p99 of 202 -> decision, and the median
#      p99 (target: 50 ms; the tail moves a lot from run to run here);
#   3. a burst (the closed loop again) on a fresh server: p50/p99 over the
#      burst's signals, and how long after the last 202 the backlog empties.
#
# The load generators run on the same machine and share its two cores.
# Needs wrk and a release build.
# Usage: benches/decision_latency.sh [seconds] [connections] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)"; exit 2; }
SECONDS_RUN=${1:-10}
CONNS=${2:-32}
ROUNDS=${3:-3}
cargo build --release --quiet
sb=./target/release/signalbox
work=$(mktemp -d)
cleanup() { kill "${SB_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A fresh server for each phase: open review items pile up with each load.
fresh() {
    [ -n "${SB_PID:-}" ] && { kill "$SB_PID"; wait "$SB_PID" 2>/dev/null || true; }
    PORT=$(free_port)
    HOME="$work" $sb serve --demo --listen "127.0.0.1:$PORT" --data-dir "$work/sb-$1" >"$work/sb-$1.log" 2>&1 &
    SB_PID=$!
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    BASE="http://127.0.0.1:$PORT"
}

# Distinct alerts (a repeated id is a duplicate, not decided again).
cat >"$work/sb.lua" <<'LUA'
local counter = 0
setup = function(thread) thread:set("tid", os.time() .. "-" .. math.random(1, 1000000000)) end
request = function()
  counter = counter + 1
  local body = string.format('{"specversion":"1.0","id":"%s-%d","source":"bench","type":"alert.firing","subject":"service/carrier","severity":"critical","data":{"alertname":"HighErrorRate","service":"carrier","summary":"5xx above 5 percent"}}', tid, counter)
  return wrk.format("POST", "/v1/signals", {["Content-Type"]="application/cloudevents+json"}, body)
end
LUA
fresh max
wrk -t2 -c"$CONNS" -d3s -s "$work/sb.lua" "$BASE/v1/signals" >/dev/null   # warm-up
max=$(wrk -t2 -c"$CONNS" -d"${SECONDS_RUN}s" -s "$work/sb.lua" "$BASE/v1/signals" |
    awk '/Requests\/sec/ {printf "%d", $2}')
echo "latency: most acknowledged (wrk, $CONNS connections): $max/s (baseline)"

half=$((max / 2))
p99s=()
for round in $(seq 1 "$ROUNDS"); do
    fresh "steady-$round"
    $sb bench --load "$BASE" --rate $((half / 2)) --seconds 3 >/dev/null   # warm-up
    $sb bench --load "$BASE" --rate "$half" --seconds "$SECONDS_RUN" | tee "$work/steady.txt" | sed 's/^/latency:   /'
    p99s+=("$(sed -n 's/.*p99 <= \([0-9.]*\) ms over.*/\1/p' "$work/steady.txt")")
done
median=$(printf '%s\n' "${p99s[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "latency: steady at half the most ($half/s, open loop), $ROUNDS rounds: 202 -> decision p99 <= ${p99s[*]} ms; median $median ms (target 50 ms)"

fresh burst
$sb bench --load "$BASE" --rate 0 --connections "$CONNS" --seconds "$SECONDS_RUN" | tee "$work/burst.txt" | sed 's/^/latency:   /'
burst_p99=$(sed -n 's/.*p99 <= \([0-9.]*\) ms over.*/\1/p' "$work/burst.txt")
drain=$(sed -n 's/.*backlog empty \([0-9]*\) ms.*/\1/p' "$work/burst.txt")
echo "latency: burst of $SECONDS_RUN s: 202 -> decision p99 <= $burst_p99 ms; everything decided $drain ms after the last 202"
