"""An alert storm sent, alert for alert and in the same seconds, to
signalbox (as Alertmanager's webhook) and to Debian's Alertmanager (as
Prometheus posts to it), both grouping by service with the same wait,
interval and repeat, the same inhibition rule, silence and maintenance
window. A receiver on loopback counts what each side tells people: for
Alertmanager its webhook notifications; for signalbox every page
notification and every notice (incident, flapping, budget, escalation).

The storm (seeded): ALERTS distinct alerts from SERVICES services in five
datacenters over MINUTES; at a fifth of the run datacenter dc0 goes down
(one critical DatacenterDown) and its services' warnings follow (inhibited
on both sides); 50 alerts flap (firing and resolving every 30 s); 2 % of
alerts are transient (resolved within a minute); one service is silenced
and five are in a maintenance window. A tenth of the firing services are
critical. Firing alerts are resent every RESEND seconds, as Prometheus
does, so the senders' load is steady.

On-call acknowledges each page when its first notification arrives (by
its signed link), so pages do not escalate; the notices signalbox sends
are those of `incident` (group interval and repeat), `flapping` and
`budget`.

Prints: incidents opened, pages sent, review items opened and the review
queue's peak (polled each second), notifications each side sent, pages
for a signal that should not page (target 0), each side's rate of alert
events taken in, and both RSS at the end (signalbox's target ≤ 1 GB).

Usage: storm.py SIGNALBOX_BIN [--alerts N] [--services N] [--minutes M]
"""
import argparse
import http.server
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("sb")
ap.add_argument("--alerts", type=int, default=200_000)
ap.add_argument("--services", type=int, default=2_000)
ap.add_argument("--minutes", type=float, default=10)
ap.add_argument("--resend", type=float, default=60)
ap.add_argument("--wait", default="30s")
ap.add_argument("--interval", default="5m")
ap.add_argument("--budget", type=int, default=50)
ap.add_argument("--settle", type=float, default=160,
                help="seconds after the storm before counting: past signalbox's 2 min transient hold-off and the wait")
args = ap.parse_args()

work = tempfile.mkdtemp(prefix="storm.")
procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cleanup():
    for p in procs:
        p.kill()
        p.wait()
    shutil.rmtree(work, ignore_errors=True)


# ---- the receiver: counts what each side tells people --------------------
told = {}
told_lock = threading.Lock()
page_signals = []
notices = {}
acked = set()


def acknowledge(url):
    try:
        urllib.request.urlopen(url, timeout=30).read()
    except OSError:
        pass


class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        page = body.get("page") or {}
        first = False
        with told_lock:
            told[self.path] = told.get(self.path, 0) + 1
            if self.path.startswith("/person/"):
                page_signals.append(page.get("signal_id"))
                first = page.get("id") not in acked
                acked.add(page.get("id"))
            if self.path == "/notify":
                notices[body.get("event")] = notices.get(body.get("event"), 0) + 1
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
        # On-call acknowledges each page when it first arrives, by the
        # signed link it carries (Alertmanager's notifications need none).
        if first and body.get("ack_url"):
            threading.Thread(target=acknowledge, args=(body["ack_url"],), daemon=True).start()

    def log_message(self, *a):
        pass


rx = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
RX = rx.server_address[1]
threading.Thread(target=rx.serve_forever, daemon=True).start()

def fingerprint(labels):
    """Alertmanager's own: FNV-1a 64 over the sorted label pairs."""
    h = 0xcbf29ce484222325
    for k in sorted(labels):
        for part in (k.encode(), b"\xff", labels[k].encode(), b"\xff"):
            for b in part:
                h ^= b
                h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


# ---- the storm -----------------------------------------------------------
rng = random.Random(7)
run = args.minutes * 60
S = args.services
services = [f"s{i:04d}" for i in range(S)]
dc_of = {s: f"dc{i % 5}" for i, s in enumerate(services)}
silenced = services[-1]
maintained = set(services[-6:-1])
critical = set(rng.sample(services, S // 10))
outage_at = run / 5

events = []  # (at, kind, alert) with kind firing|resolved
FLAPPING = 50
transient = set()
for n in range(args.alerts - FLAPPING):
    service = services[min(S - 1, int(rng.paretovariate(1.2)) - 1) if rng.random() < 0.5 else rng.randrange(S)]
    dc = dc_of[service]
    at = rng.uniform(0, run)
    if dc == "dc0" and at < outage_at and rng.random() < 0.8:
        at = rng.uniform(outage_at, run)  # the outage's storm
    sev = "critical" if service in critical and rng.random() < 0.3 else "warning"
    labels = {"alertname": rng.choice(["HighLatency", "ErrorRate", "Saturation", "Restarts"]),
              "service": service, "dc": dc, "severity": sev, "instance": f"i-{n}"}
    events.append((at, "firing", labels))
    if rng.random() < 0.02 and at < run - 60:
        transient.add(fingerprint(labels))
        events.append((at + rng.uniform(5, 60), "resolved", labels))
down = {"alertname": "DatacenterDown", "service": "dc-dc0", "dc": "dc0", "severity": "critical",
        "instance": "dc0"}
events.append((outage_at - 1, "firing", down))
for f in range(FLAPPING):
    service = services[rng.randrange(S // 2, S - 10)]
    labels = {"alertname": "Flapping", "service": service, "dc": dc_of[service], "severity": "critical",
              "instance": f"flap-{f}"}
    t = rng.uniform(0, 30)
    while t < run:
        events.append((t, "firing", labels))
        events.append((t + 15, "resolved", labels))
        t += 30
events.sort(key=lambda e: e[0])


# ---- the two sides -------------------------------------------------------
def prepare_signalbox():
    ops = os.path.join(work, "ops")
    subprocess.run([args.sb, "init", ops], check=True, capture_output=True, env={**os.environ, "HOME": work})
    org_path = os.path.join(ops, "organization.toml")
    org = open(org_path).read()
    for who in ("dana", "emil"):
        org, n = re.subn(
            r'contact = \{ slack = "https://hooks.slack.com/services/T000/B000/%s".*\}\nurgent = \[[^\]]*\]\nlow = \[[^\]]*\]\n' % who,
            'contact = { webhook = "http://127.0.0.1:%d/person/%s" }\nurgent = ["webhook"]\nlow = ["webhook"]\n' % (RX, who),
            org)
        assert n == 1, "the starter's contacts changed"
    open(org_path, "w").write(org)
    pb_path = os.path.join(ops, "playbook.toml")
    pb = open(pb_path).read()
    anchor = 'group = { by = ["subject"] }\n'
    assert anchor in pb, "the starter's grouping changed"
    pb = pb.replace(anchor, 'group = { by = ["subject"], wait = "%s", interval = "%s", repeat = "4h" }\n'
                    'hold = { transient = "2m", flap = { changes = 4, within = "10m" } }\n' % (args.wait, args.interval))
    pb += '''
[[inhibit]]
source = ['alertname="DatacenterDown"']
target = ['severity="warning"']
equal = ["dc"]

[[maintenance]]
name = "storm-maintenance"
matchers = ['service=~"%s"']
[[maintenance.interval]]
times = [{ start = "00:00", end = "24:00" }]
''' % "|".join(sorted(maintained))
    open(pb_path, "w").write(pb)
    cfg_path = os.path.join(ops, "signalbox.toml")
    cfg = open(cfg_path).read()
    cfg = cfg.replace("# budget = { default = 200, incident = 50 }", "budget = { default = %d }" % args.budget)
    assert "budget = { default" in cfg, "the starter's review section changed"
    cfg += '''
[[notify]]
name = "storm"
url = "http://127.0.0.1:%d/notify"
format = "json"
events = ["incident", "flapping", "budget"]
''' % RX
    open(cfg_path, "w").write(cfg)
    return ops


def start_signalbox(ops):
    port = free_port()
    p = subprocess.Popen([args.sb, "serve", "--config", ops, "--listen", f"127.0.0.1:{port}",
                          "--token", "storm-secret:lead:storm"],
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "sb.log"), "w"),
                         env={**os.environ, "HOME": work})
    procs.append(p)
    return p, f"http://127.0.0.1:{port}"


def start_alertmanager():
    port = free_port()
    path = os.path.join(work, "am.yml")
    maint = "|".join(sorted(maintained))
    open(path, "w").write(f"""global:
  resolve_timeout: 1h
route:
  receiver: storm
  group_by: ['service']
  group_wait: {args.wait}
  group_interval: {args.interval}
  repeat_interval: 4h
  routes:
    - receiver: storm
      matchers: ['service=~"{maint}"']
      mute_time_intervals: [always]
time_intervals:
  - name: always
    time_intervals:
      - times: [{{start_time: "00:00", end_time: "24:00"}}]
inhibit_rules:
  - source_matchers: ['alertname="DatacenterDown"']
    target_matchers: ['severity="warning"']
    equal: ['dc']
receivers:
  - name: storm
    webhook_configs:
      - url: http://127.0.0.1:{RX}/am
        send_resolved: true
""")
    p = subprocess.Popen(["prometheus-alertmanager", f"--config.file={path}",
                          f"--storage.path={os.path.join(work, 'am')}",
                          f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "am.log"), "w"))
    procs.append(p)
    return p, f"http://127.0.0.1:{port}"


def request(url, body=None, token=None, method=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read()
        return json.loads(text) if text else None


def ready(url):
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"storm: {url} never answered")


def rss_mb(pid):
    fields = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status") if ":" in l)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


# ---- run -----------------------------------------------------------------
try:
    ops = prepare_signalbox()
    sb, SB = start_signalbox(ops)
    am, AM = start_alertmanager()
    ready(f"{SB}/healthz")
    ready(f"{AM}/-/ready")
    silence = {"matchers": [{"name": "service", "value": silenced, "isRegex": False, "isEqual": True}],
               "startsAt": iso(time.time()), "endsAt": iso(time.time() + 7200),
               "createdBy": "storm", "comment": "known problem during the storm"}
    request(f"{SB}/api/v2/silences", silence, token="storm-secret")
    request(f"{AM}/api/v2/silences", silence)

    peak = {"queue": 0, "stop": False}

    def poll():
        while not peak["stop"]:
            try:
                req = urllib.request.Request(f"{SB}/metrics", headers={"authorization": "Bearer storm-secret"})
                with urllib.request.urlopen(req, timeout=5) as r:
                    for line in r.read().decode().splitlines():
                        if line.startswith("signalbox_review_queue_depth "):
                            peak["queue"] = max(peak["queue"], float(line.split()[1]))
            except OSError:
                pass
            time.sleep(1)

    threading.Thread(target=poll, daemon=True).start()

    began = time.time()
    sent = {"sb": 0, "am": 0}
    busy = {"sb": 0.0, "am": 0.0}
    active = {}  # fingerprint -> (labels, startsAt), for resends
    i = 0
    next_resend = began + args.resend
    while i < len(events) or time.time() < began + run:
        now = time.time()
        batch = []
        while i < len(events) and began + events[i][0] <= now:
            _, kind, labels = events[i]
            fp = fingerprint(labels)
            if kind == "firing":
                if fp not in active:
                    active[fp] = (labels, now)
                batch.append((kind, labels, active[fp][1], fp))
            elif fp in active:
                batch.append((kind, labels, active.pop(fp)[1], fp))
            i += 1
        if now >= next_resend:
            batch += [("firing", l, s, fp) for fp, (l, s) in active.items()]
            next_resend = now + args.resend
        for at in range(0, len(batch), 500):
            chunk = batch[at:at + 500]
            am_body = [{"labels": l, "annotations": {"summary": f"{l['alertname']} on {l['service']}"},
                        "startsAt": iso(s), "endsAt": iso(now if k == "resolved" else s + 3600),
                        "generatorURL": "http://storm/graph"} for k, l, s, _ in chunk]
            t = time.time()
            request(f"{AM}/api/v2/alerts", am_body)
            busy["am"] += time.time() - t
            sent["am"] += len(chunk)
            hook = {"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
                    "receiver": "storm", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                    "externalURL": "http://storm",
                    "alerts": [{"status": k, "labels": l, "annotations": {"summary": "storm"},
                                "startsAt": iso(s), "endsAt": iso(now) if k == "resolved" else "0001-01-01T00:00:00Z",
                                "generatorURL": "http://storm/graph", "fingerprint": fp}
                               for k, l, s, fp in chunk]}
            t = time.time()
            request(f"{SB}/v1/alertmanager", hook, token="storm-secret")
            busy["sb"] += time.time() - t
            sent["sb"] += len(chunk)
        time.sleep(max(0.0, 0.25 - (time.time() - now)))
        if i >= len(events) and time.time() >= began + run:
            break
    stormed = time.time() - began
    time.sleep(args.settle)
    peak["stop"] = True

    req = urllib.request.Request(f"{SB}/metrics", headers={"authorization": "Bearer storm-secret"})
    metrics = urllib.request.urlopen(req, timeout=5).read().decode()

    def metric(name):
        found = re.search(r"^%s (\S+)$" % re.escape(name), metrics, re.M)
        return float(found.group(1)) if found else 0.0

    held = {k: int(v) for k, v in re.findall(r'signalbox_signals_held_total\{reason="(\w+)"\} (\d+)', metrics)}
    incidents = metric("signalbox_incidents_opened_total")
    reviews = metric('signalbox_decisions_total{mode="review"}')
    sb_rss, sb_hwm = rss_mb(sb.pid)
    am_rss, am_hwm = rss_mb(am.pid)
    with told_lock:
        sb_told = sum(n for p, n in told.items() if p != "/am")
        am_told = told.get("/am", 0)
        to_people = sum(n for p, n in told.items() if p.startswith("/person/"))
        paged = list(page_signals)
    # A page for a signal that should not page: silenced, maintained,
    # transient, or a warning of dc0 once its DatacenterDown fired.
    bad = {fingerprint(l) for at, kind, l in events if kind == "firing" and (
        l["service"] == silenced or l["service"] in maintained
        or (l["dc"] == "dc0" and l["severity"] == "warning" and at >= outage_at))}
    bad |= transient
    wrong = [s for s in paged if s and s.split(":")[1] in bad]
    pages = len({s for s in paged if s})
    print(f"storm: {args.alerts} alerts from {S} services over {args.minutes:g} min "
          f"(sent in {stormed:.0f} s, {sent['sb']} alert events each side incl. resends and resolutions)")
    print(f"storm: signalbox: {incidents:.0f} incidents, {pages} signals paged, {reviews:.0f} review items "
          f"(queue peak {peak['queue']:.0f}, budget {args.budget}), held {held}")
    print(f"storm: told people: signalbox {sb_told} ({to_people} page notifications for {pages} pages, "
          f"each acknowledged on arrival; notices {dict(sorted(notices.items()))}); "
          f"Alertmanager {am_told} notifications (target: signalbox ≤ Alertmanager)")
    print(f"storm: pages for an inhibited, silenced, maintained or transient alert: {len(wrong)} (target 0)")
    print(f"storm: intake: signalbox {sent['sb'] / max(busy['sb'], 1e-9):.0f} alert events/s busy, "
          f"Alertmanager {sent['am'] / max(busy['am'], 1e-9):.0f} alert events/s busy")
    print(f"storm: RSS at the end: signalbox {sb_rss:.0f} MB (peak {sb_hwm:.0f} MB, target ≤ 1024), "
          f"Alertmanager {am_rss:.0f} MB (peak {am_hwm:.0f} MB)")
finally:
    cleanup()
