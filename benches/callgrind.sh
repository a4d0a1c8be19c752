#!/bin/sh
# Native instructions per record (BENCHMARKS.md): runs examples/callgrind.rs under callgrind
# with 0 and with 20 counted passes over the first 200 records of each corpus and prints
# (Ir(20) - Ir(0)) / (20 * records), records being 200 or the corpus's count if smaller.
#
#   benches/callgrind.sh                                   # the three corpora of the table
#   benches/callgrind.sh FILE.jsonl [--keep-source-attributes]
#   BIN=/path/to/callgrind benches/callgrind.sh ...        # a build of another commit
set -eu
cd "$(dirname "$0")/.."
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet --example callgrind
    BIN=target/release/examples/callgrind
fi

ir() { # corpus passes [flag]: "records Ir" of one run
    valgrind --tool=callgrind --callgrind-out-file=/dev/null --log-fd=3 "$BIN" "$@" 3>&1 >/dev/null |
        sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}

records() { # corpus [flag]: how many records the harness takes from it (200 at most)
    "$BIN" "$1" 0 ${2:-} | sed -n 's/^\([0-9]*\) records.*/\1/p'
}

count() { # corpus [flag]: one line of the table
    n=$(records "$1" ${2:-})
    base=$(ir "$1" 0 ${2:-})
    full=$(ir "$1" 20 ${2:-})
    awk -v n="$n" -v b="$base" -v f="$full" -v c="$1 ${2:-}" \
        'BEGIN { printf "%s: %.1f instructions per record (%d records, Ir %d, %d)\n", c, (f - b) / (20 * n), n, b, f }'
}

if [ $# -gt 0 ]; then
    count "$@"
else
    count fixtures/input/firelens-appmesh.jsonl
    count fixtures/input/firelens-appmesh.jsonl --keep-source-attributes
    count text
fi
