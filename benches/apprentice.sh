#!/usr/bin/env bash
# Apprentice mode against the rules alone and the model `on` from the start:
# 24 simulated hours of Northwind per seed, with the shipped rules and with
# the stronger rule set of benches/apprentice/strong-rules.toml. Prints the
# per-hour share of outcomes within SLA of each (with its outcome count),
# the first three hours pooled and the last two hours' share of the model's
# gain apprentice mode keeps, per seed and pooled over the seeds.
#
# Needs: python3, a release build. About 15 s per seed and rule set.
# Usage: benches/apprentice.sh [SEED...]   (default: 1 2 3 4 5)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec python3 benches/apprentice/table.py "$PWD/target/release/signalbox" "$@"
