#!/usr/bin/env bash
# Search latency during a background retrain, one step of `make bench` (run.sh
# calls it), or alone: writes WORK/retrain.json (retrain_bench: 10k x 384, Flat)
# and, when run alone, the "retrain" section of docs/benchmarks.md.
#   tools/bench/retrain.sh BUILD_DIR WORK [--report]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
work=$2
mkdir -p "$work"
echo "bench: retrain_bench" >&2
"$build/bin/retrain_bench" --repeats "${BENCH_REPEATS:-3}" --dir "$work/retrain_store" > "$work/retrain.json"
if [ "${3:-}" = "--report" ]; then
  python3 "$here/report.py" "$work" --only retrain
fi
