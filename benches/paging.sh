#!/usr/bin/env bash
# Signal to first notification, and acknowledgement to escalation stopped,
# on a served starter deployment. dana is on call alone and paged by a
# signed JSON webhook to a receiver on loopback (benches/page_receiver.py),
# which acknowledges each page at once by the signed link it carries; emil,
# the second level, would be paged 10 s later if it were not. The load is
# `signalbox bench --load` open loop with `--pages-every`: critical alerts
# on a service each (they page, one incident each) among tickets (they do not).
#
# Baseline (same run, first): 20 signals/s, one in 4 pages. Then RATE
# signals/s for SECONDS, one in EVERY pages (default 1,000/s, 1 %).
# Prints p50 and p99 of signal → first notification delivered (from the
# signal's departure to the receiver's arrival, one machine's clock) and of
# acknowledgement → stopped (the signed link's answer, given once the
# acknowledgement is durable), and how many second-level notifications
# went out for acknowledged pages (target 0). Target: p99 ≤ 1 s.
#
# The server, the load and the receiver share the machine's cores.
# Needs python3 and a release build.
# Usage: benches/paging.sh [rate] [seconds] [every]
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-1000}
SECONDS_RUN=${2:-20}
EVERY=${3:-100}
cargo build --release --quiet
sb=$PWD/target/release/signalbox
work=$(mktemp -d)
cleanup() { kill "${SB_PID:-}" "${RX_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

python3 benches/page_receiver.py "$work/received.jsonl" >"$work/rx.port" &
RX_PID=$!
for _ in $(seq 1 50); do [ -s "$work/rx.port" ] && break; sleep 0.1; done
RX=$(cat "$work/rx.port")

HOME="$work" $sb init "$work/ops" >/dev/null
python3 - "$work/ops/organization.toml" "$RX" <<'PY'
import re, sys
path, port = sys.argv[1], sys.argv[2]
org = open(path).read()
for who in ("dana", "emil"):
    org = re.sub(
        r'contact = \{ slack = "https://hooks.slack.com/services/T000/B000/%s".*\}\nurgent = \[[^\]]*\]\nlow = \[[^\]]*\]\n' % who,
        'contact = { webhook = "http://127.0.0.1:%s/%s" }\nurgent = ["webhook"]\n' % (port, who), org)
org = org.replace('members = ["dana", "emil"]', 'members = ["dana"]')
org = org.replace('repeats = 1', 'repeats = 0')
org = org.replace('targets = ["schedule:sre-primary"]\nafter = "5m"', 'targets = ["schedule:sre-primary"]\nafter = "10s"')
org = org.replace('targets = ["team:sre", "person:dana", "person:emil"]', 'targets = ["person:emil"]')
assert org.count("127.0.0.1:%s" % port) == 2, "the starter's contacts changed"
open(path, "w").write(org)
PY
PORT=$(free_port)
TOKEN="paging-bench-secret"
HOME="$work" $sb serve --config "$work/ops" --listen "127.0.0.1:$PORT" \
    --token "$TOKEN:operator:bench" >"$work/serve.log" 2>&1 &
SB_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

load() {
    $sb bench --load "http://127.0.0.1:$PORT" --token "$TOKEN" --rate "$1" --seconds "$2" \
        --connections 16 --pages-every "$3" --sent-log "$4" | sed "s/^load:/paging: $5:/"
}
load 20 5 4 "$work/quiet.jsonl" "baseline"
sleep 2
load "$RATE" "$SECONDS_RUN" "$EVERY" "$work/load.jsonl" "load"
# Past the first level's 10 s: an acknowledged page must not reach emil.
sleep 12

python3 - "$work" "$RATE" "$EVERY" <<'PY'
import json, sys
work, rate, every = sys.argv[1], sys.argv[2], sys.argv[3]
received = [json.loads(l) for l in open(f"{work}/received.jsonl")]
first = {}
page_of = {}
for r in received:
    if r.get("path") == "/dana" and r.get("signal") and r["signal"] not in first:
        first[r["signal"]] = r["at_ms"]
        page_of[r["signal"]] = r["page"]
acks = {r["ack"]: r for r in received if "ack" in r}
second = [r for r in received if r.get("path") == "/emil"]

def pct(xs, q):
    xs = sorted(xs)
    return xs[max(0, min(len(xs) - 1, int(len(xs) * q + 0.999999) - 1))] if xs else float("nan")

for name, label in (("quiet", "baseline, 20/s, 1 in 4 pages"), ("load", f"{rate}/s, 1 in {every} pages")):
    sent = [json.loads(l) for l in open(f"{work}/{name}.jsonl")]
    waits = [first[s["id"]] - s["sent_ms"] for s in sent if s["id"] in first]
    missing = len(sent) - len(waits)
    ack = [acks[page_of[s["id"]]]["ack_ms"] for s in sent if s["id"] in page_of and page_of[s["id"]] in acks]
    bad = [a for a in acks.values() if a["status"] != 200]
    print(f"paging: {label}: signal → first notification p50 {pct(waits, .5):.0f} ms, "
          f"p99 {pct(waits, .99):.0f} ms, max {max(waits, default=float('nan')):.0f} ms over "
          f"{len(waits)} pages ({missing} not notified); acknowledgement → stopped "
          f"p50 {pct(ack, .5):.1f} ms, p99 {pct(ack, .99):.1f} ms")
print(f"paging: second-level notifications for acknowledged pages: {len(second)} (target 0); "
      f"acknowledgements refused: {len(bad)}; target p99 signal → notification ≤ 1000 ms")
PY
