#!/usr/bin/env python3
"""Key-to-screen latency of a console running in a tmux session.

Presses the next-view key (Tab) every PERIOD seconds and times, from the
press to the screen showing another view (line 2, "signalbox › VIEW"), by
polling `tmux capture-pane`. Writes one line per press to OUT:
"<unix time of the press> <latency in ms>" (a press unanswered within
TIMEOUT seconds is written with the timeout). Runs for SECONDS.

Usage: key_probe.py SESSION SECONDS OUT [PERIOD] [TIMEOUT]
"""
import subprocess
import sys
import time


def view(session):
    out = subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session, "-S", "1", "-E", "1"],
        capture_output=True, text=True, check=False,
    ).stdout
    return out.strip()


def main():
    session, seconds, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    period = float(sys.argv[4]) if len(sys.argv) > 4 else 0.25
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
    end = time.time() + seconds
    with open(out, "w", encoding="utf-8") as f:
        while time.time() < end:
            before = view(session)
            pressed = time.time()
            subprocess.run(["tmux", "send-keys", "-t", session, "Tab"], check=False)
            latency = timeout
            while time.time() - pressed < timeout:
                now = view(session)
                if now and now != before and "›" in now:
                    latency = time.time() - pressed
                    break
                time.sleep(0.002)
            f.write(f"{pressed:.3f} {latency * 1000:.1f}\n")
            f.flush()
            time.sleep(period)


if __name__ == "__main__":
    main()
