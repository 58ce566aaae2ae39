"""Load for benches/cluster.sh: tickets sent closed-loop by C senders to
the given ports (each to the next port when one does not answer 202),
for S seconds; prints JSON: the ids acknowledged with when (epoch
seconds), and the rate."""
import json, sys, threading, time, urllib.request

ports = [int(p) for p in sys.argv[1].split(",")]
seconds, senders, prefix = float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
acked, lock, stop = {}, threading.Lock(), time.time() + seconds


def send(k):
    i = k
    while time.time() < stop:
        sid = f"{prefix}{i}"
        body = json.dumps({"specversion": "1.0", "id": sid, "source": "bench/cluster",
                           "type": "ticket.opened", "subject": f"ticket/{prefix}{i % 997}",
                           "data": {"ticket": sid}}).encode()
        for attempt in range(50):
            port = ports[(i + attempt) % len(ports)]
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/signals", data=body,
                                         headers={"content-type": "application/cloudevents+json"})
            try:
                with urllib.request.urlopen(req, timeout=6) as r:
                    if r.status == 202:
                        with lock:
                            acked[sid] = time.time()
                        break
            except Exception:
                time.sleep(0.05)
        i += senders


threads = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
began = time.time()
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps({"acked": acked, "seconds": time.time() - began}))
