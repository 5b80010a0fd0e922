#!/usr/bin/env bash
# The HNSW search benchmark, one step of `make bench` (run.sh calls it), or
# alone: writes WORK/hnsw.jsonl (hnsw_bench: the store's HNSW walk against
# FAISS's own search on one 100k x 384 HNSW32 graph, efSearch 16 to 768) and,
# when run alone, the "hnsw" section of docs/benchmarks.md.
#   tools/bench/hnsw.sh BUILD_DIR WORK [--report]
# BENCH_CACHE=DIR reuses the HNSW32 graph store.sh and filter.sh keep there (a
# 100k HNSW32 build takes minutes of CPU). Never a directory inside the repository.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
work=$2
mkdir -p "$work"
. "$here/huge_pages.sh"
echo "bench: hnsw_bench" >&2
"$build/bin/hnsw_bench" --n 100000 --dim 384 --queries 200 --repeats "${BENCH_REPEATS:-3}" --spec HNSW32 \
  --ef 16,32,64,128,256,384,512,768 ${BENCH_CACHE:+--cache "$BENCH_CACHE"} > "$work/hnsw.jsonl"
if [ "${3:-}" = "--report" ]; then
  python3 "$here/report.py" "$work" --only hnsw
fi
