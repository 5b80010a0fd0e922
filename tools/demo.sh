#!/usr/bin/env bash
# `make demo`: the seed's walkthrough end to end with the real model.
#   1. a store from vectors: embed texts to .npy, ingest, search, inspect;
#   2. the adapter walkthrough: ingest Lyft (its queries become the log), train a
#      linear and a two-layer adapter, ingest Uber, evaluate base and both adapters
#      on Uber in one table.
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

echo "== 1. a store from vectors"
python3 - "$data/val_dataset.json" "$out/questions.jsonl" <<'PY'
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
"$bin" ingest "$out/lyft" --dataset "$data/train_dataset.json" --embedder default
"$bin" retrain "$out/lyft" --adapter linear --out "$out/linear"
"$bin" retrain "$out/lyft" --adapter two-layer --out "$out/two-layer"
"$bin" ingest "$out/uber" --dataset "$data/val_dataset.json" --embedder default --pairs none
"$bin" eval "$out/uber" --dataset "$data/val_dataset.json" --embedder default \
  --adapter "$out/linear" --adapter "$out/two-layer" --json "$out/eval.json"
