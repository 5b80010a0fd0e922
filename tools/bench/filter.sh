#!/usr/bin/env bash
# The filtered-search benchmark, one step of `make bench` (run.sh calls it), or
# alone: writes WORK/filter.jsonl (filter_bench: 100k x 384; Flat, HNSW32 and
# IVF) and, when run alone, the "filter" section of docs/benchmarks.md.
#   tools/bench/filter.sh BUILD_DIR WORK [--report]
# BENCH_CACHE=DIR keeps the stores and the HNSW32 graph it builds in DIR and
# reuses them (and store.sh's) in later runs: a 100k HNSW32 build takes
# minutes of CPU. Never a directory inside the repository.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
work=$2
mkdir -p "$work"
. "$here/huge_pages.sh"
echo "bench: filter_bench" >&2
"$build/bin/filter_bench" --n 100000 --dim 384 --queries 100 --repeats "${BENCH_REPEATS:-3}" \
  --specs "Flat;HNSW32;IVF256,Flat" --dir "$work/filter-stores" ${BENCH_CACHE:+--cache "$BENCH_CACHE"} \
  > "$work/filter.jsonl"
if [ "${3:-}" = "--report" ]; then
  python3 "$here/report.py" "$work" --only filter
fi
