#!/usr/bin/env bash
# How long a restart takes, by journal size: `signalbox check` opens the
# journal as a restart does (entities, flows in flight, open review items,
# the model, every signal's identity, what was acknowledged and not
# decided) and prints its counts. Three journals, made by `signalbox bench`
# (which decides every signal): 100,000 signals, 1,000,000 signals, and the
# same 1,000,000 rewritten so that every signal shares one id across a
# million sources (the case a quadratic query once made take hours). The
# baseline, from the same run: reading every signal's source and id with
# Python's sqlite3 (the least a restart must read to know what it has).
#
# Needs a release build. Usage: benches/restart.sh [small] [large]
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL=${1:-100000}
LARGE=${2:-1000000}
cargo build --release --quiet
sb=./target/release/signalbox
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

make() { # signals dir
    HOME="$work" $sb bench --signals "$1" --rounds 1 --data-dir "$2" >/dev/null
}

same_id() { # dir: every signal gets one id, each its own source
    python3 - "$1/signalbox.db" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("DROP INDEX IF EXISTS signals_key")
db.execute("CREATE TEMP TABLE renamed AS SELECT id, source, 'src-' || seq AS new_source FROM signals")
db.execute("CREATE INDEX temp.renamed_key ON renamed(id, source)")
db.execute("""UPDATE audit SET signal_source = (SELECT new_source FROM renamed r
               WHERE r.id = audit.signal_id AND r.source = audit.signal_source), signal_id = 'same'
              WHERE kind = 'decision'""")
db.execute("UPDATE signals SET source = 'src-' || seq, id = 'same'")
db.execute("CREATE UNIQUE INDEX signals_key ON signals(id, source)")
db.commit()
EOF
}

timed() { # label dir
    local began ended counts
    began=$(date +%s.%N)
    counts=$($sb check --data-dir "$2" --json)
    ended=$(date +%s.%N)
    local scan
    scan=$(python3 -c "
import sqlite3, sys, time
t = time.time()
n = sum(1 for _ in sqlite3.connect(sys.argv[1]).execute('SELECT source, id FROM signals'))
print(f'{time.time() - t:.2f}')" "$2/signalbox.db")
    echo "$1: restart (signalbox check) $(python3 -c "print(f'{$ended - $began:.2f}')") s;" \
         "baseline: reading every signal's source and id ${scan} s;" \
         "$(echo "$counts" | python3 -c 'import json,sys; c=json.load(sys.stdin); print("%d signals, %d undecided, %d open reviews" % (c["signals"], c["undecided_signals"], c["open_reviews"]))')"
}

make "$SMALL" "$work/small"
timed "$SMALL signals" "$work/small/engine"
make "$LARGE" "$work/large"
timed "$LARGE signals" "$work/large/engine"
same_id "$work/large/engine"
timed "$LARGE signals sharing one id" "$work/large/engine"
