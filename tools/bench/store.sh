#!/usr/bin/env bash
# The index benchmark, one step of `make bench` (run.sh calls it), or alone:
# writes WORK/store.jsonl (store_bench: the store against raw FAISS, Flat,
# HNSW32 and IVF1024,Flat at 100k x 384; FULL=1 adds 1M) and, when run alone,
# the "store" section of docs/benchmarks.md.
#   tools/bench/store.sh BUILD_DIR WORK [--report]
# BENCH_CACHE=DIR keeps each store and FAISS index it builds in DIR and reuses
# them (and filter.sh's) in later runs: a 100k HNSW32 build takes minutes of
# CPU. Never a directory inside the repository.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
work=$2
mkdir -p "$work"
rm -f "$work/store.jsonl"
. "$here/huge_pages.sh"
# Each index in a process of its own: in one process, the IVF row after the
# Flat and HNSW rows searched 27% (raw FAISS) and 44% (the store) slower at
# nprobe 1, batches of 64, than in a process that began with it.
store() {
  local spec
  for spec in Flat HNSW32 "IVF1024,Flat"; do
    "$build/bin/store_bench" --dim 384 --repeats "${BENCH_REPEATS:-3}" --specs "$spec" \
      --dir "$work/stores" ${BENCH_CACHE:+--cache "$BENCH_CACHE"} "$@" >> "$work/store.jsonl"
  done
}
echo "bench: store_bench" >&2
store --n 100000 --queries 1000
[ -z "${FULL:-}" ] || store --n 1000000 --queries 50
if [ "${3:-}" = "--report" ]; then
  python3 "$here/report.py" "$work" --only store
fi
