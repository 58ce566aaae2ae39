#!/usr/bin/env bash
# What attached consoles cost the engine: the same burst of distinct alerts
# (`signalbox bench --load --rate 0`, closed loop) against a fresh server,
# with no client on GET /v1/events, then with CLIENTS (default 10) reading
# it, alternating ROUNDS times (default 2). Prints for each round the
# signals decided per second (sent / (seconds + the time the backlog took to
# empty)), the events per second sent to each client, the bytes each event
# took on the wire and the clients cut off for falling behind (all three
# from the server's /metrics), then the medians and the cost (target: under
# 10 %).
#
# The clients (curl) take the stream as an attached console does,
# zstd-compressed (PLAIN=1: uncompressed), and keep nothing: the figure is
# what serving them costs the engine. They run on the same two cores as
# the server and the load; a console's own reading of the events (JSON,
# ~25,000 events/s each in a burst) happens where the console runs. READ=1
# makes each client read what it gets on these cores too (decompressed,
# `grep -c` over every line): the cost of consoles attached on the
# server's own machine.
# Needs curl and a release build.
# Usage: [PLAIN=1] [READ=1] benches/event_stream.sh [seconds] [clients] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-10}
CLIENTS=${2:-10}
ROUNDS=${3:-2}
ENCODING="-H Accept-Encoding:zstd"
[ -n "${READ:-}" ] && ENCODING=--compressed
[ -n "${PLAIN:-}" ] && ENCODING=
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
        # Receiving as a console does and keeping nothing: what serving
        # them costs. (A console's own reading of the events happens where
        # it runs; the server counts what it sent, in /metrics.)
        # shellcheck disable=SC2086
        if [ -n "${READ:-}" ]; then
            (curl -sN $ENCODING --max-time $((SECONDS_RUN + 4)) \
                "http://127.0.0.1:$PORT/v1/events" 2>/dev/null | grep -c '^id:' >/dev/null) &
        else
            curl -sN $ENCODING --max-time $((SECONDS_RUN + 4)) -o /dev/null \
                "http://127.0.0.1:$PORT/v1/events" 2>/dev/null &
        fi
        pids+=($!)
    done
    local out
    out=$($sb bench --load "http://127.0.0.1:$PORT" --rate 0 --seconds "$SECONDS_RUN")
    local sent drain
    sent=$(sed -n 's/.*sent \([0-9]*\),.*/\1/p' <<<"$out")
    drain=$(sed -n 's/.*backlog empty \([0-9]*\) ms.*/\1/p' <<<"$out")
    # The clients stop by themselves (--max-time).
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    local metrics
    metrics=$(curl -fs "http://127.0.0.1:$PORT/metrics")
    kill "$SB_PID"; wait "$SB_PID" 2>/dev/null || true
    local rate events=0 per_client=0 wire=0 per_event=0 cut=0
    rate=$(python3 -c "print(round($sent / ($SECONDS_RUN + ${drain:-0} / 1000)))")
    if [ "$clients" -gt 0 ]; then
        metric() { sed -n "s/^signalbox_event_stream_$1_total \([0-9]*\).*/\1/p" <<<"$metrics"; }
        events=$(metric events); wire=$(metric bytes); cut=$(metric cut_off)
        per_client=$(python3 -c "print(round(${events:-0} / $clients / ($SECONDS_RUN + 4)))")
        per_event=$(python3 -c "print(round(${wire:-0} / max(${events:-0}, 1)))")
    fi
    echo "$rate $per_client $per_event ${cut:-0}"
}

alone=(); attached=(); per=()
how=${ENCODING:+zstd}
how=${how:-plain}
for r in $(seq 1 "$ROUNDS"); do
    read -r a _ < <(round 0 "alone-$r")
    echo "events: round $r, no client: $a signals decided/s (baseline)"
    read -r b p w cut < <(round "$CLIENTS" "clients-$r")
    echo "events: round $r, $CLIENTS clients on /v1/events ($how): $b signals decided/s, $p events/s to each client, $w bytes per event on the wire, $cut cut off"
    alone+=("$a"); attached+=("$b"); per+=("$p")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ma=$(median "${alone[@]}"); mb=$(median "${attached[@]}"); mp=$(median "${per[@]}")
cost=$(python3 -c "print(round(100 * (1 - $mb / $ma), 1))")
echo "events: median $ma signals/s alone, $mb with $CLIENTS clients ($how, $mp events/s each): cost $cost % (target under 10 %)"
