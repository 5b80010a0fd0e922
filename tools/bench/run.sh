#!/usr/bin/env bash
# `make bench`: embedapt side by side with the seed (LlamaIndex), raw FAISS and
# sentence-transformers, on ../shared/data/10k. Every benchmark program answers --help.
#   tools/bench/run.sh BUILD_DIR        (FULL=1 adds the slow peers and the 1M store)
# Creates the peers' virtual environment (tools/bench/.venv) when requirements.txt
# changed, runs the quality and training-time benchmark (bench.py), the store
# benchmark (store_bench), the store's HNSW walk against FAISS's search
# (hnsw.sh), the encoder benchmark (encoder.sh: encoder_bench against
# sentence-transformers, and the CLI's ingest), search latency during a background retrain
# (retrain_bench), the small-logs benchmark (smalllogs.sh, on every dataset
# of ../shared/data) and the peers table (peers.sh: Chroma and LanceDB), then
# writes tools/bench/results/<date>.json and every section of
# docs/benchmarks.md (report.py). BENCH_START (seconds since the epoch)
# makes the reported total start earlier, e.g. at `make bench`'s build.
# BENCH_CACHE=DIR (outside the repository) keeps the stores and FAISS indexes
# store.sh, hnsw.sh and filter.sh build, and reuses them in later runs.
set -euo pipefail

start=${BENCH_START:-$(date +%s)}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
data=$(cd "${EMBEDAPT_DATA:-$repo/../shared/data/10k}" && pwd)
work=${BENCH_WORK:-$here/work}
venv="$here/.venv"
repeats=${BENCH_REPEATS:-3}

for tool in embedapt store_bench hnsw_bench faiss_bench encoder_bench retrain_bench filter_bench smalllogs_bench peers_bench; do
  [ -x "$build/bin/$tool" ] || { echo "bench: $build/bin/$tool not found: build first (make bench builds it)" >&2; exit 1; }
done
for f in train_dataset.json val_dataset.json; do
  [ -f "$data/$f" ] || { echo "bench: $data/$f not found (set EMBEDAPT_DATA to the 10k data folder)" >&2; exit 1; }
done
rm -rf "$work"
mkdir -p "$work"

# The venv is rebuilt whenever requirements.txt changes; its creation is timed.
"$here/venv.sh" "$work/venv.json"
python="$venv/bin/python"

"$python" "$here/bench.py" --embedapt "$build/bin/embedapt" --data "$data" --work "$work/quality" \
  --out "$work/quality.json" --repeats "$repeats" ${FULL:+--full}

# The store against raw FAISS, Flat, HNSW32 and IVF (tools/bench/store.sh, also runnable alone).
BENCH_REPEATS=$repeats "$here/store.sh" "$build" "$work"

# The store's HNSW walk against FAISS's own search (tools/bench/hnsw.sh, also runnable alone).
BENCH_REPEATS=$repeats "$here/hnsw.sh" "$build" "$work"

# FAISS's kernels, Debian's build against the AVX2/FMA one (tools/bench/faiss.sh, also runnable alone).
BENCH_REPEATS=$repeats "$here/faiss.sh" "$build" "$work"

# Filtered search (tools/bench/filter.sh, also runnable alone).
BENCH_REPEATS=$repeats "$here/filter.sh" "$build" "$work"

# The C++ encoder against sentence-transformers, and the CLI's ingest of the same texts
# (tools/bench/encoder.sh, also runnable alone).
BENCH_REPEATS=$repeats "$here/encoder.sh" "$build" "$work"

# Search latency while the store retrains in the background (tools/bench/retrain.sh, also runnable alone).
"$here/retrain.sh" "$build" "$work"

"$here/smalllogs.sh" "$build" "$work"

# embedapt, Chroma and LanceDB side by side (tools/bench/peers.sh, also runnable alone).
"$here/peers.sh" "$build" "$work"

"$python" "$here/report.py" "$work" --total-seconds "$(($(date +%s) - start))"
