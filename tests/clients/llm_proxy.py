"""A recording front for a real language model server on loopback: each
POST's path, headers and body go to LOG as a JSON line, then the request
goes on to UPSTREAM and its answer comes back as it was. With MODE other
than "pass", it answers as hosted APIs do when they refuse: "429" (rate
limited, with Retry-After and OpenAI's error body) or "503" (overloaded).

Usage: llm_proxy.py UPSTREAM LOG MODE  (prints the port it listens on)
"""
import http.server
import json
import sys
import urllib.error
import urllib.request

upstream, log, mode = sys.argv[1:4]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path, "headers": dict(self.headers),
                                "body": body.decode("utf-8", "replace")}) + "\n")
        if mode == "429":
            return self.answer(429, {"error": {"message": "Rate limit reached for requests",
                                               "type": "requests", "code": "rate_limit_exceeded"}},
                               {"retry-after": "7"})
        if mode == "503":
            return self.answer(503, {"error": {"message": "The server is overloaded", "type": "server_error"}})
        request = urllib.request.Request(upstream + self.path, body,
                                         {"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as r:
                self.answer(r.status, json.loads(r.read()))
        except urllib.error.HTTPError as e:
            self.answer(e.code, {"error": {"message": e.read().decode("utf-8", "replace")}})

    def answer(self, status, value, headers=None):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
