"""A real SMTP server on loopback (aiosmtpd) for the email channel's test:
STARTTLS with CERT and KEY, required before any mail; every message
appended as one JSON line (from, to, data, whether it came over TLS) to
LOG. Prints the port it listens on.

Usage: smtp_receiver.py CERT KEY LOG
"""
import json
import socket
import ssl
import sys
import threading

from aiosmtpd.controller import Controller

cert, key, log = sys.argv[1:4]


class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(log, "a") as f:
            f.write(json.dumps({
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "data": envelope.content.decode("utf-8", "replace"),
                "tls": bool(getattr(session, "ssl", None)),
            }) + "\n")
        return "250 2.0.0 queued"


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
controller = Controller(Handler(), hostname="127.0.0.1", port=port,
                        tls_context=context, require_starttls=True)
controller.start()
print(port, flush=True)
threading.Event().wait()
