#!/usr/bin/env bash
# Memory follows open work, not history: `signalbox serve` on the starter
# deployment (`signalbox init`), its resident memory (RSS, /proc) printed
#   - idle (the baseline, from the same run),
#   - after SIGNALS signals of which none remain open (alerts that fire
#     and resolve, as `signalbox bench --load --resolve-after` sends them),
#   - after REVIEWS more warnings nobody answers (each an open review item)
#     and TASKS tickets nobody works (each an open task),
# with the memory each open item costs. Defaults: 1,000,000, 150,000 and
# 50,000 (the case of a storm nobody answers; targets 500 MB and 1 GB).
#
# Needs a release build. Usage: benches/memory.sh [signals] [reviews] [tasks]
set -euo pipefail
cd "$(dirname "$0")/.."
SIGNALS=${1:-1000000}
REVIEWS=${2:-150000}
TASKS=${3:-50000}
cargo build --release --quiet
sb=$(pwd)/target/release/signalbox
work=$(mktemp -d)
cleanup() { kill "${SB_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
$sb init "$work/ops" >/dev/null
# Review windows and SLAs longer than the run: nothing leaves by timing out.
sed -i 's/^review_minutes = .*/review_minutes = 100000/; s/^sla_minutes = .*/sla_minutes = 100000/' "$work/ops/playbook.toml"
$sb validate "$work/ops" >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOME="$work" ${SB_ENV:-} $sb serve --config "$work/ops" --listen "127.0.0.1:$PORT" >"$work/sb.log" 2>&1 &
SB_PID=$!
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do curl -fs "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/VmRSS/ {printf "%d", $2/1024}' "/proc/$SB_PID/status"; }
metric() { curl -fs "$BASE/metrics" | awk -v n="$1" '$1==n {printf "%d", $2}'; }
drained() { while [ "$(metric signalbox_intake_backlog)" != 0 ]; do sleep 0.5; done; }
idle=$(rss)
echo "memory: idle server $idle MB (baseline)"

# One load (one prefix of ids), long enough for SIGNALS at this machine's
# rate: only its last 1,000 alerts stay open (each load leaves its own).
$sb bench --load "$BASE" --rate 0 --seconds 3 --resolve-after 1000 >/dev/null
probe=$(curl -fs "$BASE/metrics" | awk '$1 ~ /^signalbox_intake_accepted_total/ {s+=$2} END {printf "%d", s}')
seconds=$(python3 -c "print(max(5, int(($SIGNALS - $probe) / max($probe / 3, 1000))))")
$sb bench --load "$BASE" --rate 0 --seconds "$seconds" --resolve-after 1000 >/dev/null
sent=$(curl -fs "$BASE/metrics" | awk '$1 ~ /^signalbox_intake_accepted_total/ {s+=$2} END {printf "%d", s}')
drained
sleep 2
closed=$(rss)
flows=$(curl -fs "$BASE/metrics" | awk '$1 ~ /^signalbox_flows\{/ && $1 !~ /done|failed|compensated/ {s+=$2} END {printf "%d", s}')
echo "memory: after $sent signals, none open but the last alerts of each load ($flows flows in flight, review queue $(metric signalbox_review_queue_depth)): $closed MB (target 500 MB)"

# Open work: warnings nobody answers, tickets nobody works, in batches.
python3 - "$BASE" "$REVIEWS" "$TASKS" <<'EOF'
import json, sys, urllib.request
base, reviews, tasks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import time, urllib.error
def send(events):
    body = json.dumps(events).encode()
    while True:
        req = urllib.request.Request(base + "/v1/signals", body,
                                     {"content-type": "application/cloudevents-batch+json"})
        try:
            urllib.request.urlopen(req, timeout=60).read()
            return
        except urllib.error.HTTPError as e:
            if e.code != 503:  # the backlog is full: wait for the engine
                raise
            time.sleep(0.2)
def alert(n):
    return {"specversion": "1.0", "id": f"warn-{n}", "source": "memory", "type": "alert.firing",
            "subject": f"service/svc{n % 200}", "severity": "warning",
            "data": {"alertname": "Latency", "service": f"svc{n % 200}", "fingerprint": f"fp-{n}",
                     "summary": "p99 latency above 2 s"}}
def ticket(n):
    return {"specversion": "1.0", "id": f"ticket-{n}", "source": "memory", "type": "ticket.opened",
            "subject": f"customer/c{n % 500}",
            "data": {"ticket": f"T-{n}", "summary": "cannot log in"}}
for make, count in ((alert, reviews), (ticket, tasks)):
    for start in range(0, count, 1000):
        send([make(n) for n in range(start, min(start + 1000, count))])
EOF
drained
sleep 2
open=$(rss)
queue=$(metric signalbox_review_queue_depth)
flows=$(curl -fs "$BASE/metrics" | awk '$1 ~ /^signalbox_flows\{/ && $1 !~ /done|failed|compensated/ {s+=$2} END {printf "%d", s}')
echo "memory: with $queue open review items and $flows flows in flight: $open MB (target 1,000 MB)"
python3 -c "print(f'memory: {($open - $closed) * 1024 / max($REVIEWS + $TASKS, 1):.1f} KB per open item')"
