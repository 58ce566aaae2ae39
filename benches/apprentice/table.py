"""The per-hour table of benches/apprentice.sh.

For each rule set and seed: a rules-only run and a model run with the model
`on` (one `signalbox run`, which makes both), and an apprentice run. Each
hour prints the share within SLA and the number of outcomes it is read
over (single hours are noisy: hour 0 has about 30 outcomes in `on` mode).
"""

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RULE_SETS = [("shipped rules", []),
             ("stronger rules", ["--policy", os.path.join(HERE, "strong-rules.toml")])]


def run(binary, seed, extra, directory):
    out = subprocess.run(
        [binary, "run", "--headless", "--seed", str(seed), "--duration", "24h",
         "--data-dir", directory, "--report", "json", *extra],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def pooled(hours, start, end):
    n = sum(h["outcomes"] for h in hours[start:end])
    good = sum((h.get("within_sla") or 0.0) * h["outcomes"] for h in hours[start:end])
    return good, n


def share(good_n):
    good, n = good_n
    return good / n if n else float("nan")


def add(a, b):
    return (a[0] + b[0], a[1] + b[1])


def main():
    binary = sys.argv[1]
    seeds = [int(s) for s in sys.argv[2:]] or [1, 2, 3, 4, 5]
    for name, extra in RULE_SETS:
        total = {k: (0.0, 0) for k in ["r3", "o3", "a3", "rl", "ol", "al"]}
        print(f"== {name} ==")
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                on = run(binary, seed, extra, os.path.join(tmp, "on"))
                ap = run(binary, seed, extra + ["--model-mode", "apprentice", "--no-baseline"],
                         os.path.join(tmp, "apprentice"))
            rules, model, appr = on["baseline"]["hourly"], on["model"]["hourly"], ap["model"]["hourly"]
            print(f"seed {seed}: hour  rules (n)       on (n)          apprentice (n)")
            for i, (r, o, a) in enumerate(zip(rules, model, appr)):
                cells = "  ".join(f"{h.get('within_sla') or 0:.3f} ({h['outcomes']:3})" for h in (r, o, a))
                print(f"        {i:4}  {cells}")
            figures = {"r3": pooled(rules, 0, 3), "o3": pooled(model, 0, 3), "a3": pooled(appr, 0, 3),
                       "rl": pooled(rules, 22, 24), "ol": pooled(model, 22, 24), "al": pooled(appr, 22, 24)}
            for k in total:
                total[k] = add(total[k], figures[k])
            summary(f"seed {seed}", figures)
            for s in ap.get("apprentice", {}).get("switches", []):
                print(f"        {s['time'][11:16]} (+{hours_in(on, s['time'])}) {s['class']} -> {s['to']}")
        summary(f"{name}, seeds {' '.join(map(str, seeds))} pooled", total)
        print()


def hours_in(report, time):
    from datetime import datetime
    start = datetime.fromisoformat(report["start"].replace("Z", "+00:00"))
    at = datetime.fromisoformat(time.replace("Z", "+00:00"))
    return f"{(at - start).total_seconds() / 3600:.1f} h"


def summary(label, f):
    r3, o3, a3 = share(f["r3"]), share(f["o3"]), share(f["a3"])
    rl, ol, al = share(f["rl"]), share(f["ol"]), share(f["al"])
    kept = (al - rl) / (ol - rl) if ol > rl else float("nan")
    print(f"{label}: first 3 h rules {r3:.3f}, on {o3:.3f}, apprentice {a3:.3f} "
          f"({100 * (a3 - r3):+.1f} points against the rules; n={f['a3'][1]}); "
          f"last 2 h rules {rl:.3f}, on {ol:.3f}, apprentice {al:.3f}: {kept:.0%} of the gain kept")


if __name__ == "__main__":
    main()
