#!/usr/bin/env bash
# The same load of single-alert requests, with the same alert content, sent
# with wrk to signalbox's /v1/signals (journaling every signal durably before
# it answers) and to a real Alertmanager's /api/v2/alerts, in one run on the
# same machine. Prints both rates, both p99 latencies and the ratio.
#
# The two take turns ROUNDS times (default 3: signalbox, then Alertmanager,
# and again), each round printed, and the last lines give the medians: the
# machine's speed drifts from minute to minute, and turns put both servers
# in the same minutes. ROUNDS=1 gives one turn each.
#
# Before the first round both servers take WARMUP seconds (default: as long
# as a round; 0 for none) of the same load, printed but not counted: their
# first seconds of load start cold (files, heaps). A run's first round can
# still be its lowest, for a reason not yet found; the median absorbs it.
#
# Needs: wrk and prometheus-alertmanager (Debian packages), a release build.
# Usage: benches/intake_vs_alertmanager.sh [seconds] [connections] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-10}
CONNS=${2:-32}
ROUNDS=${3:-3}
WARMUP=${WARMUP:-$SECONDS_RUN}
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)"; exit 2; }
command -v prometheus-alertmanager >/dev/null || { echo "bench: prometheus-alertmanager is missing"; exit 2; }
cargo build --release --quiet
work=$(mktemp -d)
cleanup() { kill "${SB_PID:-}" "${AM_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

SB_PORT=$(free_port)
HOME="$work" ./target/release/signalbox serve --demo --listen "127.0.0.1:$SB_PORT" --data-dir "$work/sb" >"$work/sb.log" 2>&1 &
SB_PID=$!
AM_PORT=$(free_port)
cat >"$work/am.yml" <<YML
route:
  receiver: "null"
receivers:
  - name: "null"
YML
prometheus-alertmanager --config.file="$work/am.yml" --storage.path="$work/am" \
    --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= >"$work/am.log" 2>&1 &
AM_PID=$!
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$SB_PORT/healthz" >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$AM_PORT/-/ready" >/dev/null 2>&1 && break
    sleep 0.1
done

# One alert, the same content for both; signalbox needs a fresh id per
# request (a repeated id is a duplicate and is not journaled again).
cat >"$work/sb.lua" <<'LUA'
local counter = 0
-- wrk's Lua random generator starts from the same seed in every run: the
-- clock keeps ids from repeating across runs against one server.
setup = function(thread) thread:set("tid", os.time() .. "-" .. math.random(1, 1000000000)) end
request = function()
  counter = counter + 1
  local body = string.format('{"specversion":"1.0","id":"%s-%d","source":"bench","type":"alert.firing","subject":"service/carrier","severity":"critical","data":{"alertname":"HighErrorRate","service":"carrier","summary":"5xx above 5 percent"}}', tid, counter)
  return wrk.format("POST", "/v1/signals", {["Content-Type"]="application/cloudevents+json"}, body)
end
LUA
cat >"$work/am.lua" <<'LUA'
request = function()
  local body = '[{"labels":{"alertname":"HighErrorRate","service":"carrier","severity":"critical"},"annotations":{"summary":"5xx above 5 percent"}}]'
  return wrk.format("POST", "/api/v2/alerts", {["Content-Type"]="application/json"}, body)
end
LUA

# run URL SCRIPT [SECONDS]
run() { wrk -t2 -c"$CONNS" -d"${3:-$SECONDS_RUN}s" --latency -s "$2" "$1"; }
# signalbox acknowledges once a signal is durable in its intake log and
# decides it right after, behind the acknowledgements: wait until it has
# decided everything, so that Alertmanager's run does not share the machine
# with that work, and report how long it took.
backlog() { curl -fs "http://127.0.0.1:$SB_PORT/metrics" | awk '$1=="signalbox_intake_backlog" {printf "%d", $2}'; }
drained() {
    local left
    left=$(backlog)
    while [ "${left:-0}" != "0" ]; do sleep 0.2; left=$(backlog); done
}
rate() { awk '/Requests\/sec/ {print $2}' <<<"$1"; }
p99() { awk '$1=="99%" {print $2}' <<<"$1"; }
non2xx() { awk '/Non-2xx/ {n=$NF} END {print n+0}' <<<"$1"; }
median() { python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.2f}")' "$@"; }
if [ "$WARMUP" -gt 0 ]; then
    sb=$(run "http://127.0.0.1:$SB_PORT" "$work/sb.lua" "$WARMUP")
    drained
    am=$(run "http://127.0.0.1:$AM_PORT" "$work/am.lua" "$WARMUP")
    echo "bench: warm-up (${WARMUP} s each, not counted): signalbox $(rate "$sb") req/s, alertmanager $(rate "$am") req/s"
fi
journaled() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from signals").fetchone()[0])' "$work/sb/signalbox.db" 2>/dev/null || echo 0; }
sb_rates=(); am_rates=(); ratios=()
for round in $(seq 1 "$ROUNDS"); do
    before=$(journaled)
    sb=$(run "http://127.0.0.1:$SB_PORT" "$work/sb.lua")
    drain_start=$(date +%s.%N)
    drained
    drain=$(python3 -c "print(f'{$(date +%s.%N) - $drain_start:.1f}')")
    am=$(run "http://127.0.0.1:$AM_PORT" "$work/am.lua")
    sb_rate=$(rate "$sb"); am_rate=$(rate "$am")
    ratio=$(python3 -c "print(f'{float(\"$sb_rate\")/float(\"$am_rate\"):.2f}')")
    sb_rates+=("$sb_rate"); am_rates+=("$am_rate"); ratios+=("$ratio")
    decided=$(( $(journaled) - before ))
    [ "$ROUNDS" -gt 1 ] && prefix="bench: round $round: " || prefix="bench: "
    echo "${prefix}signalbox  /v1/signals    ${sb_rate} req/s, p99 $(p99 "$sb"), non-2xx $(non2xx "$sb"), decided ${decided} (the last ${drain} s after the load)"
    echo "${prefix}alertmanager /api/v2/alerts ${am_rate} req/s, p99 $(p99 "$am"), non-2xx $(non2xx "$am")"
    [ "$ROUNDS" -gt 1 ] && echo "${prefix}ratio ${ratio}"
done
if [ "$ROUNDS" -gt 1 ]; then
    echo "bench: median of $ROUNDS rounds: signalbox $(median "${sb_rates[@]}") req/s, alertmanager $(median "${am_rates[@]}") req/s"
    echo "bench: ratio signalbox/alertmanager $(median "${ratios[@]}") (median of the rounds' ${ratios[*]}; target >= 1.0)"
else
    echo "bench: ratio signalbox/alertmanager ${ratios[0]} (target >= 1.0)"
fi
