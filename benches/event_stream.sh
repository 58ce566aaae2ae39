#!/usr/bin/env bash
# What attached consoles cost the engine: the same burst of distinct alerts
# (`signalbox bench --load --rate 0`, closed loop) against a fresh server,
# with no client on GET /v1/events, then with CLIENTS (default 10) reading
# it (curl, counting events), alternating ROUNDS times (default 2). Prints
# for each round the signals decided per second (sent / (seconds + the time
# the backlog took to empty)) and the events per second each client
# received, then the medians and the cost (target: under 10 %).
#
# The clients run on the same two cores as the server and the load.
# Needs curl and a release build.
# Usage: benches/event_stream.sh [seconds] [clients] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-10}
CLIENTS=${2:-10}
ROUNDS=${3:-2}
cargo build --release --quiet
sb=./target/release/signalbox
work=$(mktemp -d)
cleanup() { kill "${SB_PID:-}" 2>/dev/null || true; pkill -P $$ curl 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One round on a fresh server: decided/s, and events/s per client (0 without).
round() {
    local clients=$1 name=$2
    PORT=$(free_port)
    HOME="$work" $sb serve --demo --listen "127.0.0.1:$PORT" --data-dir "$work/$name" >"$work/$name.log" 2>&1 &
    SB_PID=$!
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    local pids=() p
    for c in $(seq 1 "$clients"); do
        curl -sN "http://127.0.0.1:$PORT/v1/events" >"$work/$name-client-$c.txt" 2>/dev/null &
        pids+=($!)
    done
    local out
    out=$($sb bench --load "http://127.0.0.1:$PORT" --rate 0 --seconds "$SECONDS_RUN")
    local sent drain
    sent=$(sed -n 's/.*sent \([0-9]*\),.*/\1/p' <<<"$out")
    drain=$(sed -n 's/.*backlog empty \([0-9]*\) ms.*/\1/p' <<<"$out")
    sleep 1
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    kill "$SB_PID"; wait "$SB_PID" 2>/dev/null || true
    local rate events=0 per_client=0
    rate=$(python3 -c "print(round($sent / ($SECONDS_RUN + ${drain:-0} / 1000)))")
    if [ "$clients" -gt 0 ]; then
        events=$(cat "$work/$name"-client-*.txt | grep -c '^id:' || true)
        per_client=$(python3 -c "print(round($events / $clients / ($SECONDS_RUN + 1)))")
    fi
    echo "$rate $per_client"
}

alone=(); attached=(); per=()
for r in $(seq 1 "$ROUNDS"); do
    read -r a _ < <(round 0 "alone-$r")
    echo "events: round $r, no client: $a signals decided/s (baseline)"
    read -r b p < <(round "$CLIENTS" "clients-$r")
    echo "events: round $r, $CLIENTS clients on /v1/events: $b signals decided/s, $p events/s to each client"
    alone+=("$a"); attached+=("$b"); per+=("$p")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ma=$(median "${alone[@]}"); mb=$(median "${attached[@]}"); mp=$(median "${per[@]}")
cost=$(python3 -c "print(round(100 * (1 - $mb / $ma), 1))")
echo "events: median $ma signals/s alone, $mb with $CLIENTS clients ($mp events/s each): cost $cost % (target under 10 %)"
