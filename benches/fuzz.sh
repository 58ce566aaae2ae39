#!/usr/bin/env bash
# The long run of tests/parsers_never_panic.rs: every parser of outside
# input (CloudEvents in three modes, Alertmanager, PagerDuty, JSON lines,
# policy TOML and CEL, themes, keymaps) against CASES generated inputs
# each (default 1,000,000), release build. Prints the time each took.
# Then tests/what_is_accepted_reads_back_after_a_restart.rs for CASES/1000
# cases: what the three intake formats accept, decided by the engine,
# each case ending with a restart and `signalbox check`.
#
#   benches/fuzz.sh [cases]
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-1000000}"
# Built once and run from a copy, so that editing the sources meanwhile
# does not rebuild it half-way through.
built=$(cargo test --release --test suite --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "suite":
        print(m["executable"])')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$built" "$work/suite"
for test in cloudevents_structured_and_batched cloudevents_binary alertmanager_webhooks \
    pagerduty_events policies_parse_compile_and_evaluate themes_and_keymaps_load_or_say_why; do
    began=$(date +%s)
    PROPTEST_CASES="$cases" "$work/suite" --exact "parsers_never_panic::$test" --quiet \
        >"$work/$test.log" 2>&1 || { echo "fuzz: $test FAILED"; tail -40 "$work/$test.log"; exit 1; }
    echo "fuzz: $test: $cases cases, no panic ($(( $(date +%s) - began )) s)"
done
restart_cases=$(( cases / 1000 > 16 ? cases / 1000 : 16 ))
began=$(date +%s)
PROPTEST_CASES="$restart_cases" cargo test --release --quiet \
    --test suite what_is_accepted_reads_back_after_a_restart >"$work/restart.log" 2>&1 ||
    { echo "fuzz: restart FAILED"; tail -40 "$work/restart.log"; exit 1; }
echo "fuzz: accepted input through the engine, a restart and check: $restart_cases cases, all read back ($(( $(date +%s) - began )) s)"
