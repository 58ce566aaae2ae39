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
# measured value exactly (the `same` row). Then each candidate policy in
# benches/candidates/ is run live on the same seed (measured) and replayed
# over the live policy's journal with the model as it was (estimated, DR).
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
printf '%-5s %-16s %-6s %-34s %-9s %-7s %-7s %-8s %s\n' seed candidate est "estimate (95 % interval)" measured error covers support ess
for seed in "${SEEDS[@]}"; do
    run="$work/seed-$seed"
    $sb run --headless --seed "$seed" --duration "$DURATION" --data-dir "$run" --report json >"$run.json"
    start=$(date +%s.%N)
    $sb replay --model off --json --data-dir "$run" >"$run.replay.json"
    end=$(date +%s.%N)
    $sb replay --model off --json --data-dir "$run/baseline" >"$run.same.json"
    # Each candidate policy: measured by running it live on the same seed,
    # estimated from the live policy's journal.
    candidates=()
    for policy in benches/candidates/*.toml; do
        name=$(basename "$policy" .toml)
        $sb run --headless --seed "$seed" --duration "$DURATION" --policy "$policy" \
            --data-dir "$run-$name" --report json >"$run-$name.json"
        $sb replay --policy "$policy" --json --data-dir "$run" >"$run-$name.replay.json"
        candidates+=("$name")
    done
    python3 - "$seed" "$run" "$start" "$end" "${candidates[@]}" <<'PY'
import json, sys
seed, run, start, end, *candidates = sys.argv[1:]
load = lambda path: json.load(open(path))
m = load(f"{run}.json"); r = load(f"{run}.replay.json"); s = load(f"{run}.same.json")
pct = lambda v: f"{100 * v:.1f}"
def row(name, e, truth):
    if e["value"] is None:
        shown, error, covers = "inconclusive", "-", "-"
    else:
        low, high = e["ci"]
        shown = f"{pct(e['value'])} ({pct(low)}-{pct(high)})"
        error = f"{100 * (e['value'] - truth):+.1f}"
        covers = "yes" if low <= truth <= high else "no"
    print(f"{seed:<5} {name:<16} {e['estimator']:<6} {shown:<34} {pct(truth):<9} {error:<7} {covers:<7} {pct(e['support']):<8} {e['ess']:.0f}")
truth = m["baseline_within_sla"]
for e in r["estimates"]:
    row("rules only", e, truth)
e = s["estimate"]
print(f"{seed:<5} {'rules only':<16} {'same':<6} {pct(e['value']) + ' (rules-only journal)':<34} {pct(truth):<9} {100 * (e['value'] - truth):+.1f}")
for name in candidates:
    row(name, load(f"{run}-{name}.replay.json")["estimate"], load(f"{run}-{name}.json")["within_sla"])
rate = r["decisions"] / max(float(end) - float(start), 1e-9)
print(f"replay: seed {seed}, live policy measured {pct(m['within_sla'])}; {r['decisions']} decisions ({r['changed']} changed) in {float(end) - float(start):.2f} s: {rate:,.0f} decisions/s including start-up")
PY
done
