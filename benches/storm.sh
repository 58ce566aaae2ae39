#!/usr/bin/env bash
# An alert storm sent alert for alert, in the same seconds, to signalbox and
# to Debian's Alertmanager with the same grouping (by service, wait,
# interval, repeat), the same inhibition rule, silence and maintenance
# window; both tell a receiver on loopback. See benches/storm.py for the
# storm and what is printed. Default: the issue's size, 200,000 alerts from
# 2,000 services over 10 minutes (about 11 minutes in all).
#
# Needs: python3, prometheus-alertmanager (Debian), a release build.
# Usage: benches/storm.sh [storm.py options], e.g.
#        benches/storm.sh --alerts 20000 --services 500 --minutes 2
set -euo pipefail
cd "$(dirname "$0")/.."
command -v prometheus-alertmanager >/dev/null || { echo "bench: prometheus-alertmanager is missing"; exit 2; }
cargo build --release --quiet
exec python3 benches/storm.py "$PWD/target/release/signalbox" "$@"
