#!/usr/bin/env bash
# The encoder benchmark, one step of `make bench` (run.sh calls it), or alone:
# the C++ encoder (encoder_bench), sentence-transformers (encoder_bench.py, in
# the bench venv venv.sh keeps) and `embedapt ingest --dataset` (the same texts
# through the CLI into a fresh Flat store, no cache: embedding plus durable
# writes), same model, texts and threads. BENCH_REPEATS rounds (3 by default);
# the two encoders swap order every round, the ingest runs right after ours.
# Writes WORK/encoder-{cpp,py,ingest}.jsonl and WORK/encoder-load.jsonl (the
# load average when each round began) and, when run alone with --report, the
# "encoder" section of docs/benchmarks.md.
#   tools/bench/encoder.sh BUILD_DIR WORK [--report]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$(cd "$1" && pwd)
work=$2
data=$(cd "${EMBEDAPT_DATA:-$repo/../shared/data/10k}" && pwd)
python="$here/.venv/bin/python"
model="$repo/models/all-MiniLM-L6-v2"
"$here/venv.sh"
mkdir -p "$work"
rm -f "$work"/encoder-{cpp,py,ingest,load}.jsonl

ours() {
  "$build/bin/encoder_bench" "$model" "$data/val_dataset.json" "$(nproc)" 1 "$work/encoder.npy" \
    >> "$work/encoder-cpp.jsonl"
  rm -rf "$work/ingest-store"
  local t0
  t0=$(date +%s.%N)
  "$build/bin/embedapt" ingest "$work/ingest-store" --dataset "$data/val_dataset.json" --embedder default \
    --no-cache > /dev/null
  echo "{\"seconds\": $(awk "BEGIN { print $(date +%s.%N) - $t0 }")}" >> "$work/encoder-ingest.jsonl"
}
theirs() {
  # Compares with the latest vectors of ours (the first round runs ours first).
  "$python" "$here/encoder_bench.py" "$model" "$data/val_dataset.json" "$(nproc)" 1 "$work/encoder.npy" \
    >> "$work/encoder-py.jsonl"
}
for run in $(seq "${BENCH_REPEATS:-3}"); do
  echo "bench: encoder round $run" >&2
  read -r one five fifteen _ < /proc/loadavg
  echo "{\"round\": $run, \"load\": [$one, $five, $fifteen]}" >> "$work/encoder-load.jsonl"
  if [ $((run % 2)) = 1 ]; then ours; theirs; else theirs; ours; fi
done
if [ "${3:-}" = "--report" ]; then
  python3 "$here/report.py" "$work" --only encoder
fi
