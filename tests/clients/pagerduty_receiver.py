"""A receiver of PagerDuty Events API v2 events on loopback, checking each
body as PagerDuty documents it (developer.pagerduty.com, "Send an Alert
Event"): routing_key a 32-character integration key; event_action
trigger, acknowledge or resolve; dedup_key at most 255 characters, and
required to acknowledge or resolve; a trigger's payload with summary (at
most 1,024 characters), source and severity (critical, error, warning or
info), an ISO 8601 timestamp if any, custom_details an object, links with
an href each, and nothing unknown at the top level. A valid event is
answered 202 as PagerDuty answers it, an invalid one 400 with the errors.
Every request is appended as one JSON line (path, event, errors) to LOG.
With SLOW, an acknowledge is taken in only after SLOW seconds (a slow
answer, under which a later event must not overtake it).

Usage: pagerduty_receiver.py LOG [SLOW]  (prints the port it listens on)
"""
import datetime
import http.server
import json
import re
import sys
import time

log = sys.argv[1]
slow = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0

TOP = {"routing_key", "event_action", "dedup_key", "payload", "images",
       "links", "client", "client_url"}
PAYLOAD = {"summary", "source", "severity", "timestamp", "component",
           "group", "class", "custom_details"}


def problems(event):
    errors = []
    if not isinstance(event, dict):
        return ["the body is not a JSON object"]
    unknown = set(event) - TOP
    if unknown:
        errors.append(f"unknown fields {sorted(unknown)}")
    key = event.get("routing_key")
    if not (isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9]{32}", key)):
        errors.append("routing_key must be a 32 character integration key")
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("event_action must be trigger, acknowledge or resolve")
    dedup = event.get("dedup_key")
    if dedup is not None and not (isinstance(dedup, str) and 0 < len(dedup) <= 255):
        errors.append("dedup_key must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and dedup is None:
        errors.append(f"dedup_key is required to {action}")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return errors + ["payload is required to trigger"]
        unknown = set(payload) - PAYLOAD
        if unknown:
            errors.append(f"unknown payload fields {sorted(unknown)}")
        summary = payload.get("summary")
        if not (isinstance(summary, str) and 0 < len(summary) <= 1024):
            errors.append("payload.summary must be 1 to 1024 characters")
        if not (isinstance(payload.get("source"), str) and payload["source"]):
            errors.append("payload.source is required")
        if payload.get("severity") not in ("critical", "error", "warning", "info"):
            errors.append("payload.severity must be critical, error, warning or info")
        stamp = payload.get("timestamp")
        if stamp is not None:
            try:
                datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            except (AttributeError, ValueError):
                errors.append("payload.timestamp must be ISO 8601")
        details = payload.get("custom_details")
        if details is not None and not isinstance(details, dict):
            errors.append("payload.custom_details must be an object")
        for link in event.get("links", []):
            if not (isinstance(link, dict) and isinstance(link.get("href"), str)):
                errors.append("each link needs an href")
    return errors


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length)
        try:
            event = json.loads(raw)
        except ValueError:
            event, errors = None, ["the body is not JSON"]
        else:
            errors = problems(event)
            if isinstance(event, dict) and event.get("event_action") == "acknowledge":
                time.sleep(slow)
        if self.headers.get("content-type", "").split(";")[0] != "application/json":
            errors.append("content-type must be application/json")
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path, "event": event, "errors": errors}) + "\n")
        if errors:
            status, answer = 400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        else:
            status, answer = 202, {"status": "success", "message": "Event processed",
                                   "dedup_key": event.get("dedup_key")}
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
