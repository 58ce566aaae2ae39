#!/usr/bin/env bash
# Cluster mode's cost and its takeover, on this machine, in one run:
#
# 1. Acknowledged signals per second and 202 → decision (p50, p99) for the
#    same closed-loop load (tickets from benches/cluster.py, 8 senders, 20 s)
#    against: one node without --cluster (the baseline); one node on a
#    one-server NATS; three nodes on three NATS servers (a JetStream
#    cluster, streams at R3). "Decision" is the decision's own timestamp in
#    the journal (single node) or in the record rebuilt from the decision
#    stream (`signalbox cluster check --list`), on the same clock as the
#    sender's 202.
# 2. Takeover after kill -9 of a node, 10 times: from the kill until the
#    two other nodes run all 16 partitions (lease lapse included).
#
# Everything runs on one machine (two cores here): it measures what the
# cluster costs, not how it scales. Needs nats-server.
#
# Usage: benches/cluster.sh [seconds] [takeovers]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_LOAD=${1:-20}
TAKEOVERS=${2:-10}
cargo build --release --quiet
sb=$PWD/target/release/signalbox
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

HOME="$work" $sb init "$work/deploy" >/dev/null

nats() { # name client-port route-port routes
    cat > "$work/$1.conf" <<CONF
server_name: $1
listen: 127.0.0.1:$2
jetstream { store_dir: "$work/$1" }
${4:+cluster { name: sb, listen: 127.0.0.1:$3, routes: [$4] \}}
CONF
    nats-server -c "$work/$1.conf" >"$work/$1.log" 2>&1 &
    pids+=($!)
    disown
}

node() { # name port data servers -> pid in NODE_PID
    HOME="$work" $sb serve --config "$work/deploy" --data-dir "$3" --listen "127.0.0.1:$2" \
        ${4:+--cluster "$4" --node "$1"} >"$work/$1.out" 2>&1 &
    NODE_PID=$!
    pids+=($NODE_PID)
    disown
}

wait_http() { # port
    for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return; sleep 0.1; done
    echo "nothing answers on $1" >&2; exit 1
}

owned() { # ports... -> how many partitions they run between them
    local n=0
    for p in "$@"; do
        n=$((n + $(curl -sf -m 2 "http://127.0.0.1:$p/v1/cluster" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["owned"]))' 2>/dev/null || echo 0)))
    done
    echo $n
}

settle() { # ports... : until they run all 16 partitions
    for _ in $(seq 1 1200); do [ "$(owned "$@")" = 16 ] && return; sleep 0.05; done
    echo "the partitions did not settle on $*" >&2; exit 1
}

latency() { # acked.json decided-lines-file -> "rate p50 p99"
    python3 - "$1" "$2" <<'PY'
import json, sys, datetime
load = json.load(open(sys.argv[1]))
decided = {}
for line in open(sys.argv[2]):
    parts = line.split()
    if len(parts) == 3:
        decided[parts[1]] = datetime.datetime.fromisoformat(parts[2].replace("Z", "+00:00")).timestamp()
waits = sorted(max(0.0, decided[i] - t) for i, t in load["acked"].items() if i in decided)
missing = sum(1 for i in load["acked"] if i not in decided)
q = lambda p: waits[min(len(waits) - 1, int(p * len(waits)))] * 1e3 if waits else float("nan")
print(f"{len(load['acked']) / load['seconds']:.0f} {q(0.5):.1f} {q(0.99):.1f} {missing}")
PY
}

report() { # label "rate p50 p99 missing"
    read -r rate p50 p99 missing <<<"$2"
    printf '%-34s %6s signals/s acknowledged; 202 -> decision p50 %7s ms, p99 %7s ms; %s acknowledged not decided\n' \
        "$1" "$rate" "$p50" "$p99" "$missing"
}

# 1a. One node, no cluster (the baseline).
p=$(port); node single "$p" "$work/single"; single=$NODE_PID; wait_http "$p"
python3 benches/cluster.py "$p" "$SECONDS_LOAD" 8 a >"$work/a.json"
sleep 2; kill -TERM "$single"
while kill -0 "$single" 2>/dev/null; do sleep 0.1; done
python3 - "$work/single/signalbox.db" >"$work/a.lines" <<'PY'
import sqlite3, sys
for source, sid, time in sqlite3.connect(sys.argv[1]).execute(
        "SELECT signal_source, signal_id, MIN(time) FROM audit WHERE kind = 'decision' AND parent IS NULL GROUP BY 1, 2"):
    print(source, sid, time)
PY
baseline=$(latency "$work/a.json" "$work/a.lines")

# 1b. One node on a one-server NATS.
np=$(port); nats one "$np"; one_nats=${pids[-1]}
p=$(port); node n1 "$p" "$work/one" "nats://127.0.0.1:$np"; one=$NODE_PID; wait_http "$p"; settle "$p"
python3 benches/cluster.py "$p" "$SECONDS_LOAD" 8 b >"$work/b.json"
sleep 3
$sb cluster check --list --cluster "nats://127.0.0.1:$np" >"$work/b.lines"
kill -9 "$one" "$one_nats"
one_node=$(latency "$work/b.json" "$work/b.lines")

# 1c. Three nodes on three NATS servers.
cps=($(port) $(port) $(port)); rps=($(port) $(port) $(port))
routes="nats://127.0.0.1:${rps[0]}, nats://127.0.0.1:${rps[1]}, nats://127.0.0.1:${rps[2]}"
for i in 0 1 2; do nats "s$i" "${cps[$i]}" "${rps[$i]}" "$routes"; done
servers="nats://127.0.0.1:${cps[0]},nats://127.0.0.1:${cps[1]},nats://127.0.0.1:${cps[2]}"
hp=($(port) $(port) $(port)); np=()
for i in 0 1 2; do node "n$i" "${hp[$i]}" "$work/three" "$servers"; np+=($NODE_PID); done
for i in 0 1 2; do wait_http "${hp[$i]}"; done
settle "${hp[@]}"
python3 benches/cluster.py "${hp[0]},${hp[1]},${hp[2]}" "$SECONDS_LOAD" 8 c >"$work/c.json"
sleep 3
$sb cluster check --list --cluster "$servers" >"$work/c.lines"
three=$(latency "$work/c.json" "$work/c.lines")

echo "cluster: ${SECONDS_LOAD} s of closed-loop load (8 senders) on one machine, $(nproc) cores: the cost of the cluster, not its scale"
report "one node, no cluster (baseline)" "$baseline"
report "one node, one NATS server" "$one_node"
report "three nodes, three NATS (R3)" "$three"

# 2. Takeover after kill -9, $TAKEOVERS times (a different node each time).
times=()
for t in $(seq 1 "$TAKEOVERS"); do
    v=$(( (t - 1) % 3 ))
    others=()
    for i in 0 1 2; do [ "$i" != "$v" ] && others+=("${hp[$i]}"); done
    [ "$(owned "${hp[$v]}")" -gt 0 ] || { echo "node $v runs nothing" >&2; exit 1; }
    began=$(date +%s.%N)
    kill -9 "${np[$v]}"
    settle "${others[@]}"
    ended=$(date +%s.%N)
    times+=("$(python3 -c "print(f'{$ended - $began:.2f}')")")
    node "n$v" "${hp[$v]}" "$work/three" "$servers"; np[$v]=$NODE_PID
    wait_http "${hp[$v]}"; settle "${hp[@]}"
    sleep 6  # past the hand-back's settling time, so the victim runs its own again
    settle "${hp[@]}"
done
python3 - "${times[@]}" <<'PY'
import statistics, sys
t = sorted(float(x) for x in sys.argv[1:])
print(f"takeover after kill -9 ({len(t)} times): median {statistics.median(t):.2f} s, worst {t[-1]:.2f} s "
      f"(lease 3 s; target 8 s)  [{' '.join(f'{x:.2f}' for x in t)}]")
PY
