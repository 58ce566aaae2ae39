#!/usr/bin/env bash
# The long run of tests/parsers_never_panic.rs: every parser of outside
# input (CloudEvents in three modes, Alertmanager, PagerDuty, JSON lines,
# policy TOML and CEL, themes, keymaps) against CASES generated inputs
# each (default 1,000,000), release build. Prints the time each took.
#
#   benches/fuzz.sh [cases]
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-1000000}"
cargo test --release --test parsers_never_panic --no-run >/dev/null 2>&1
for test in cloudevents_structured_and_batched cloudevents_binary alertmanager_webhooks \
    pagerduty_events policies_parse_compile_and_evaluate themes_and_keymaps_load_or_say_why; do
    began=$(date +%s)
    PROPTEST_CASES="$cases" cargo test --release --test parsers_never_panic -- --exact "$test" --quiet \
        >"/tmp/fuzz-$test.log" 2>&1 || { echo "fuzz: $test FAILED (see /tmp/fuzz-$test.log)"; tail -30 "/tmp/fuzz-$test.log"; exit 1; }
    echo "fuzz: $test: $cases cases, no panic ($(( $(date +%s) - began )) s)"
done
