#!/usr/bin/env bash
# Replay's estimates held against the truth. For each seed, a headless run
# (`signalbox run --headless`, DURATION, default 24h) measures the share of
# outcomes within SLA with the model and with rules alone (its baseline);
# then `signalbox replay --model off` estimates the rules-only value from
# the model run's journal alone. Prints one row per seed and estimator:
# the estimate and its 95 % interval (or "inconclusive"), the measured
# value, the error, whether the interval covers the truth, the support and
# the effective sample size; and the replay's speed in decisions per
# second. A rules-only journal replayed with rules alone must give back its
# measured value exactly (the last row per seed).
# Needs python3 and a release build.
# Usage: benches/replay_table.sh [duration] [seed ...]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-24h}
shift || true
SEEDS=("${@:-1 2 3}")
# shellcheck disable=SC2206
SEEDS=(${SEEDS[*]})
cargo build --release --quiet
sb=./target/release/signalbox
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-5s %-6s %-34s %-9s %-7s %-7s %-8s %s\n' seed est "estimate (95 % interval)" measured error covers support ess
for seed in "${SEEDS[@]}"; do
    run="$work/seed-$seed"
    $sb run --headless --seed "$seed" --duration "$DURATION" --data-dir "$run" --report json >"$run.json"
    start=$(date +%s.%N)
    $sb replay --model off --json --data-dir "$run" >"$run.replay.json"
    end=$(date +%s.%N)
    $sb replay --model off --json --data-dir "$run/baseline" >"$run.same.json"
    python3 - "$seed" "$run.json" "$run.replay.json" "$run.same.json" "$start" "$end" <<'PY'
import json, sys
seed, measured, replay, same, start, end = sys.argv[1:]
m = json.load(open(measured)); r = json.load(open(replay)); s = json.load(open(same))
truth = m["baseline_within_sla"]
pct = lambda v: f"{100 * v:.1f}"
for e in r["estimates"]:
    if e["value"] is None:
        shown, error, covers = "inconclusive", "-", "-"
    else:
        low, high = e["ci"]
        shown = f"{pct(e['value'])} ({pct(low)}-{pct(high)})"
        error = f"{100 * (e['value'] - truth):+.1f}"
        covers = "yes" if low <= truth <= high else "no"
    print(f"{seed:<5} {e['estimator']:<6} {shown:<34} {pct(truth):<9} {error:<7} {covers:<7} {pct(e['support']):<8} {e['ess']:.0f}")
e = s["estimate"]
print(f"{seed:<5} {'same':<6} {pct(e['value']) + ' (rules-only journal)':<34} {pct(truth):<9} {100 * (e['value'] - truth):+.1f}")
rate = r["decisions"] / max(float(end) - float(start), 1e-9)
print(f"replay: seed {seed}, {r['decisions']} decisions ({r['changed']} changed) in {float(end) - float(start):.2f} s: {rate:,.0f} decisions/s including start-up")
PY
done
