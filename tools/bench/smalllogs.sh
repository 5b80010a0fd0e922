#!/usr/bin/env bash
# The "small logs" benchmark (called by run.sh; runnable alone):
#   tools/bench/smalllogs.sh BUILD_DIR WORK_DIR [smalllogs_bench flags...]
# On each shared dataset (10-K Uber: val_dataset.json; Swahili: val_dataset.json;
# Chinese: train_dataset.json, its val file being too small to halve into logs of
# 100+), logs of 40/100/150/300 queries from one half, tested on the other half,
# 3 seeds; null logs, 20 seeds; retrain time at 100 and 1000 queries (Swahili). Each log
# is ingested into a Flat store under WORK_DIR/smalllogs-store, retrained and scored by
# the evaluator there.
# Writes WORK_DIR/smalllogs.jsonl (smalllogs_bench's rows); report.py renders it.
# Extra flags go to smalllogs_bench after these (e.g. --null-seeds 5 for a shorter run).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
work=${2:-$here/work}
shared=$(cd "${EMBEDAPT_SHARED_DATA:-$repo/../shared/data}" && pwd)

[ -x "$build/bin/smalllogs_bench" ] || { echo "bench: $build/bin/smalllogs_bench not found: build first" >&2; exit 1; }
mkdir -p "$work"
echo "bench: smalllogs_bench" >&2
"$build/bin/smalllogs_bench" \
  --dataset "10k-uber=$shared/10k/val_dataset.json" \
  --dataset "swahili=$shared/swahili/val_dataset.json" \
  --dataset "chinese=$shared/journey-west/train_dataset.json" \
  --store-dir "$work/smalllogs-store" --time-dataset swahili "${@:3}" > "$work/smalllogs.jsonl"
