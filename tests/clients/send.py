"""Speaks to a running signalbox the way third-party clients do: the
official CloudEvents SDK for Python (structured and binary modes) and
PagerDuty's own Python client (alert and change events). Prints, as JSON,
what it sent and what each call answered.

Usage: send.py BASE_URL ROUTING_KEY
"""

import json
import sys
import urllib.request
from datetime import datetime, timezone

from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
import pagerduty

base, routing_key = sys.argv[1], sys.argv[2]
report = {}


def post(name, headers, body):
    request = urllib.request.Request(
        base + "/v1/signals", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request) as response:
            report[name] = {"status": response.status, "body": json.load(response)}
    except urllib.error.HTTPError as e:
        report[name] = {"status": e.code, "body": e.read().decode()}


structured = CloudEvent(
    {
        "type": "ticket.opened",
        "source": "https://crm.example.com/tickets",
        "subject": "customer/c0001",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "priorityhint": 2,
    },
    {"customer": "c0001", "text": "refund for the broken parcel, please"},
)
post("structured", *to_structured(structured))
report["structured"]["id"] = structured["id"]

binary = CloudEvent(
    {
        "type": "ticket.opened",
        "source": "https://crm.example.com/tickets",
        "subject": "customer/c0002",
        "datacontenttype": "application/json",
        "tenant": "north",
    },
    {"customer": "c0002", "text": "where is my order"},
)
post("binary", *to_binary(binary))
report["binary"]["id"] = binary["id"]

text = CloudEvent(
    {
        "type": "note.added",
        "source": "https://wiki.example.com",
        "datacontenttype": "text/plain",
    },
    "the deploy is done",
)
post("text", *to_binary(text))
report["text"]["id"] = text["id"]

raw = CloudEvent(
    {"type": "blob.stored", "source": "https://store.example.com"},
    b"\x00\x01\x02\xff binary",
)
post("bytes", *to_structured(raw))
report["bytes"]["id"] = raw["id"]

client = pagerduty.EventsApiV2Client(routing_key)
# The client insists on https:// (PagerDuty's own hosts); this server is on
# plain loopback, so its base URL is set past that check. Everything it
# sends and reads is the client's own.
client._url = base
key = client.trigger(
    "Disk 95% on db1",
    "db1.example.com",
    dedup_key="db1-disk",
    severity="error",
    custom_details={"free_gb": 3},
    links=[{"href": "https://grafana.example.com/d/disk", "text": "dashboard"}],
)
report["trigger"] = {"dedup_key": key}
report["acknowledge"] = {"dedup_key": client.acknowledge(key)}
report["resolve"] = {"dedup_key": client.resolve(key)}
made_up = client.trigger("Queue backing up", "mq1.example.com", severity="warning")
report["trigger_without_key"] = {"dedup_key": made_up}
client.submit(
    "Deployed payments v2.3.1",
    source="deploy-pipeline",
    custom_details={"build": 231},
    links=[{"href": "https://ci.example.com/231", "text": "build 231"}],
    timestamp=datetime.now(timezone.utc).isoformat(),
)
report["change"] = {"sent": True}
print(json.dumps(report))
