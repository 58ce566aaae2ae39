"""The paging benchmark's people: an HTTP receiver on loopback standing in
for each person's signed JSON webhook. Every notification is logged as one
JSON line to LOG (arrival time in milliseconds since the epoch, path, page,
signal, level); the first notification of each page to /dana is then
acknowledged at once by its signed link (as a person tapping it would), in
a thread of its own, and how long the acknowledgement took to be answered
(durable: escalation stopped) is logged too.

Usage: page_receiver.py LOG  (prints the port it listens on)
"""
import http.server
import json
import sys
import threading
import time
import urllib.request

log = sys.argv[1]
lock = threading.Lock()
acked = set()


def write(entry):
    with lock:
        with open(log, "a") as f:
            f.write(json.dumps(entry) + "\n")


def acknowledge(page, url):
    began = time.time()
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError as e:
        status = str(e)
    write({"ack": page, "ack_ms": (time.time() - began) * 1e3, "status": status})


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        arrived = time.time() * 1e3
        length = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        page = body.get("page", {})
        write({"at_ms": arrived, "path": self.path, "page": page.get("id"),
               "signal": page.get("signal_id"), "level": page.get("level")})
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
        first = False
        with lock:
            if self.path == "/dana" and page.get("id") not in acked:
                acked.add(page.get("id"))
                first = True
        if first and body.get("ack_url"):
            threading.Thread(target=acknowledge, args=(page.get("id"), body["ack_url"]),
                             daemon=True).start()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
