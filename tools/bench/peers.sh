#!/usr/bin/env bash
# The peers table, one step of `make bench` (run.sh calls it), or alone:
# embedapt (peers_bench: durable ingest into a Flat and an HNSW16 store through
# the C++ API), Chroma (HNSW, M 16, efConstruction 40 as FAISS's) and LanceDB
# (its exact scan; IVF_PQ with FULL=1) (peers.py, in the bench venv) fed the same
# 100k x 384 vectors and queries: seeded random unit vectors, and "real-like"
# ones (noisy copies of the embedded 10-K corpus and questions). Writes
# WORK/peers.jsonl and, with --report, the "peers" section of docs/benchmarks.md.
#   tools/bench/peers.sh BUILD_DIR WORK [--report]
# Every build runs in a process of its own (its CPU seconds are the process's),
# one at a time, twice (the report takes medians): the steps' order reverses
# from one vector set to the next and from the first round to the second, so
# each peer runs once early and once late on each set (the machine's load
# drifts). FULL=1 adds LanceDB's IVF_PQ, HNSW32 and Chroma at its own default
# efConstruction (100). The builds are never cached: they are the figures.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$(cd "$1" && pwd)
work=$2/peers
data=$(cd "${EMBEDAPT_DATA:-$repo/../shared/data/10k}" && pwd)
n=${PEERS_N:-100000}
queries=${PEERS_QUERIES:-200}
# One efSearch sweep for both HNSWs, with steps fine enough above 256 (where
# the real-like recalls pass 0.95) that a point of one side falls near each
# point of the other. Ours goes on past it: Chroma's QPS is bound by its
# Python client's per-query cost, so our search is still faster than its
# slowest at ef 1536 (632 against 322 QPS on the real-like set), and comparing
# our recall with Chroma's at equal QPS needs our settings down to its speed.
ef=16,32,64,128,256,384,512,768,1024,1536
ef_ours=$ef,2048,3072
rounds=2
for tool in embedapt peers_bench; do
  [ -x "$build/bin/$tool" ] || { echo "bench: $build/bin/$tool not found: build it first" >&2; exit 1; }
done
"$here/venv.sh"
python="$here/.venv/bin/python"
rm -rf "$work"
mkdir -p "$work"

# The real-like base: the 10-K corpus (both splits) as documents, its questions as queries.
echo "bench: peers: embedding the 10-K corpus and questions" >&2
python3 - "$data" "$work" <<'EOF'
import json, sys
data, work = sys.argv[1:]
splits = [json.load(open(f"{data}/{name}_dataset.json")) for name in ("train", "val")]
with open(f"{work}/corpus.jsonl", "w") as f:
    for split in splits:
        for text in split["corpus"].values():
            f.write(json.dumps(text) + "\n")
with open(f"{work}/questions.jsonl", "w") as f:
    for split in splits:
        for text in split["queries"].values():
            f.write(json.dumps(text) + "\n")
EOF
cache=${BENCH_CACHE:+$BENCH_CACHE/embed}
cache=${cache:-$work/embed-cache}
"$build/bin/embedapt" embed --input "$work/corpus.jsonl" --out "$work/corpus.npy" --cache-dir "$cache"
"$build/bin/embedapt" embed --query --input "$work/questions.jsonl" --out "$work/questions.npy" --cache-dir "$cache"

"$build/bin/peers_bench" --make random --out "$work/random" --n "$n" --queries "$queries"
"$build/bin/peers_bench" --make real --out "$work/real" --n "$n" --queries "$queries" \
  --base "$work/corpus.npy" --base-queries "$work/questions.npy"

run() {  # run VECTOR_SET STEP COMMAND...: one build and its searches, one JSON line tagged with both
  echo "bench: peers: $1 vectors, $2" >&2
  "${@:3}" | python3 -c 'import json, sys; [print(json.dumps(dict(json.loads(l), vectors=sys.argv[1], step=sys.argv[2])))
for l in sys.stdin]' "$1" "$2" >> "$work/steps.jsonl"
}
steps=(
  "embedapt-hnsw16|$build/bin/peers_bench --spec HNSW16 --ef $ef_ours --repeats 3 --dir $work/db --vectors"
  "chroma-m16|$python $here/peers.py chroma --m 16 --ef-construction 40 --ef $ef --repeats 3 --dir $work/db --vectors"
  "lancedb-exact|$python $here/peers.py lancedb --repeats 3 --dir $work/db --vectors"
  "embedapt-flat|$build/bin/peers_bench --spec Flat --repeats 3 --dir $work/db --vectors"
)
if [ -n "${FULL:-}" ]; then
  # LanceDB's IVF_PQ training took 93 CPU-s (245 s at load 10) on the random set.
  steps+=("lancedb-ivfpq|$python $here/peers.py lancedb --ivf-pq --repeats 3 --dir $work/db --vectors")
  steps+=("embedapt-hnsw32|$build/bin/peers_bench --spec HNSW32 --ef $ef_ours --repeats 3 --dir $work/db --vectors")
  steps+=("chroma-m16-ef100|$python $here/peers.py chroma --m 16 --ef-construction 100 --ef $ef --repeats 3 --dir $work/db --vectors")
fi
for round in $(seq "$rounds"); do
  turn=$round
  for set in random real; do
    order=("${steps[@]}")
    if [ $((turn % 2)) = 0 ]; then  # backwards on every other set and in every other round
      order=()
      for ((i = ${#steps[@]} - 1; i >= 0; i--)); do order+=("${steps[$i]}"); done
    fi
    turn=$((turn + 1))
    for step in "${order[@]}"; do
      name=${step%%|*}
      # shellcheck disable=SC2086  # the command is words
      run "$set" "$name" ${step#*|} "$work/$set"
    done
  done
done

# What a batch costs in flushes to disk: each store ingests 5 and then 10 batches
# (small random sets, Flat for embedapt: durability does not depend on the index)
# under strace; the difference in fsync-family calls over the 5 extra batches.
if command -v strace > /dev/null; then
  for rows in 5000 10000; do
    "$build/bin/peers_bench" --make random --out "$work/small-$rows" --n "$rows" --queries 10
  done
  syncs() {  # syncs ROWS COMMAND...: the fsync-family calls of COMMAND ... on the ROWS set
    strace -f -c -e trace=fsync,fdatasync,sync_file_range,msync,syncfs -o "$work/strace.txt" \
      "${@:2}" "$work/small-$1" > /dev/null
    awk '$NF ~ /^(fsync|fdatasync|sync_file_range|msync|syncfs)$/ { n += $4 } END { print n + 0 }' "$work/strace.txt"
  }
  for step in "embedapt|$build/bin/peers_bench --spec Flat --dir $work/db --vectors" \
              "chroma|$python $here/peers.py chroma --dir $work/db --vectors" \
              "lancedb|$python $here/peers.py lancedb --dir $work/db --vectors"; do
    # shellcheck disable=SC2086  # the command is words
    few=$(syncs 5000 ${step#*|})
    # shellcheck disable=SC2086
    many=$(syncs 10000 ${step#*|})
    echo "{\"durability\": {\"peer\": \"${step%%|*}\", \"syncs_5_batches\": $few, \"syncs_10_batches\": $many}}" \
      >> "$work/steps.jsonl"
  done
fi
mv "$work/steps.jsonl" "$2/peers.jsonl"
if [ "${3:-}" = "--report" ]; then
  python3 "$here/report.py" "$2" --only peers
fi
