#!/usr/bin/env bash
# `make demo`: the seed's walkthrough end to end with the real model.
#   1. a store from vectors: embed texts to .npy, ingest, search, inspect;
#   2. the adapter walkthrough: ingest Lyft (its queries become the log), train a
#      linear and a two-layer adapter, ingest Uber, evaluate base and both adapters
#      on Uber in one table.
# Both filings are cut to their first 150 chunks and the questions about them
# (309 of Lyft's 731, 314 of Uber's 881): embedding the chunks is most of the
# run, which took 166 CPU-s on the whole data and 92 on the slice, and 309 logged
# questions still carry an adapter's gain (both ship at z above 5). The printed
# figures are the slice's.
set -euo pipefail

build=${1:-build}
bin="$build/bin/embedapt"
data=${EMBEDAPT_DATA:-../shared/data/10k}
out=${EMBEDAPT_DEMO_DIR:-$build/demo}

for f in "$data/train_dataset.json" "$data/val_dataset.json"; do
  [ -f "$f" ] || { echo "demo: $f not found (set EMBEDAPT_DATA to the 10k data folder)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out"
export EMBEDAPT_CACHE_DIR="$out/cache"

docs=150
# A dataset's first $docs chunks and the questions whose relevant chunks are all among them.
slice() {
  python3 - "$1" "$2" "$docs" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
keep = set(list(data["corpus"])[: int(sys.argv[3])])
queries = [q for q in data["queries"] if all(d in keep for d in data["relevant_docs"][q])]
json.dump({"queries": {q: data["queries"][q] for q in queries},
           "corpus": {d: t for d, t in data["corpus"].items() if d in keep},
           "relevant_docs": {q: data["relevant_docs"][q] for q in queries},
           "mode": data.get("mode", "text")}, open(sys.argv[2], "w"))
print(f"{sys.argv[1]}: the first {len(keep)} of {len(data['corpus'])} chunks, "
      f"{len(queries)} of {len(data['queries'])} questions")
PY
}
slice "$data/train_dataset.json" "$out/lyft.json"
slice "$data/val_dataset.json" "$out/uber.json"

echo "== 1. a store from vectors"
python3 - "$out/uber.json" "$out/questions.jsonl" <<'PY'
import json, sys
queries = json.load(open(sys.argv[1]))["queries"]
with open(sys.argv[2], "w") as f:
    for text in list(queries.values())[:200]:
        f.write(json.dumps(text) + "\n")
PY
"$bin" embed --embedder default --input "$out/questions.jsonl" --out "$out/questions.npy"
"$bin" ingest "$out/vectors" --npy "$out/questions.npy" --index HNSW32
"$bin" search "$out/vectors" --npy "$out/questions.npy" -k 3 --json "$out/search.json"
"$bin" inspect "$out/vectors"
"$bin" inspect "$out/vectors" verify

echo "== 2. adapters: train on Lyft, evaluate on Uber"
"$bin" ingest "$out/lyft" --dataset "$out/lyft.json" --embedder default
# Uber's texts are embedded while the adapters train: the trainer uses one
# core, and neither step needs the other. Its output is shown when it is done.
"$bin" ingest "$out/uber" --dataset "$out/uber.json" --embedder default --pairs none > "$out/uber-ingest.log" 2>&1 &
uber_ingest=$!
trap 'kill "$uber_ingest" 2> /dev/null' EXIT  # a failed retrain ends the demo, and the ingest with it
"$bin" retrain "$out/lyft" --adapter linear --out "$out/linear"
"$bin" retrain "$out/lyft" --adapter two-layer --out "$out/two-layer"
wait "$uber_ingest" || { cat "$out/uber-ingest.log" >&2; exit 1; }
trap - EXIT
cat "$out/uber-ingest.log"
"$bin" eval "$out/uber" --dataset "$out/uber.json" --embedder default \
  --adapter "$out/linear" --adapter "$out/two-layer" --json "$out/eval.json"
