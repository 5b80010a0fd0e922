#!/usr/bin/env bash
# The Milvus checks on the shared 10-K data (`make milvus-check`): an Uber
# store synced to a FLAT collection of the embedded Milvus server must score
# like the store itself (hit@5 and MRR@5 within 0.002, base and a Lyft-trained
# adapter) and return the same top-10 for every validation query.
# Embeddings come from the default encoder through the embedding cache, so a
# second run embeds nothing. Writes $out/milvus-10k.json.
set -euo pipefail

build=${1:-build}
bin="$build/bin/embedapt"
data=${EMBEDAPT_DATA:-../shared/data/10k}
out=${EMBEDAPT_MILVUS_DIR:-$build/milvus-10k}
python="$build/milvus-venv/bin/python"
[ -x "$python" ] || { echo "milvus-check: no $python (make milvus-venv creates it)" >&2; exit 1; }
for f in "$data/train_dataset.json" "$data/val_dataset.json"; do
  [ -f "$f" ] || { echo "milvus-check: $f not found (set EMBEDAPT_DATA to the 10k data folder)" >&2; exit 1; }
done
mkdir -p "$out"
rm -rf "$out/lyft" "$out/uber" "$out/linear" "$out/port"
export EMBEDAPT_CACHE_DIR="${EMBEDAPT_CACHE_DIR:-$out/cache}"

"$python" tools/milvus/serve.py "$build/milvus-server" "$out/port" > "$out/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
while [ ! -f "$out/port" ]; do
  kill -0 $server 2>/dev/null || { echo "milvus-check: the server did not start, see $out/serve.log" >&2; exit 1; }
  sleep 1
done
uri="http://127.0.0.1:$(cat "$out/port")"
cat "$out/serve.log"

"$bin" ingest "$out/lyft" --dataset "$data/train_dataset.json" --embedder default
"$bin" retrain "$out/lyft" --out "$out/linear"
"$bin" ingest "$out/uber" --dataset "$data/val_dataset.json" --embedder default --pairs none
"$bin" milvus sync "$out/uber" --uri "$uri" --collection uber_10k --index FLAT
for where in store milvus; do
  flags=()
  [ "$where" = milvus ] && flags=(--milvus "$uri" --collection uber_10k)
  "$bin" eval "$out/uber" --dataset "$data/val_dataset.json" --embedder default --adapter "$out/linear" \
    "${flags[@]}" --json "$out/eval-$where.json" --per-query "$out/per-query-$where.jsonl"
done

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
store, milvus = (json.load(open(f"{out}/eval-{w}.json"))["results"] for w in ("store", "milvus"))
def rankings(w):
    return {(r["name"], r["query_id"]): r["retrieved"] for r in map(json.loads, open(f"{out}/per-query-{w}.jsonl"))}
a, b = rankings("store"), rankings("milvus")
summary = {"queries": len(a) // len(store), "systems": []}
ok = True
for s, m in zip(store, milvus):
    same = sum(a[k] == b[k] for k in a if k[0] == s["name"])
    row = {"name": s["name"], "store_hit@5": s["hit_rate"], "milvus_hit@5": m["hit_rate"],
           "store_mrr@5": s["mrr"], "milvus_mrr@5": m["mrr"], "same_top10": same}
    summary["systems"].append(row)
    ok &= abs(s["hit_rate"] - m["hit_rate"]) <= 0.002 and abs(s["mrr"] - m["mrr"]) <= 0.002
    print(f'{s["name"]}: hit@5 {s["hit_rate"]:.4f} (store) {m["hit_rate"]:.4f} (milvus), '
          f'MRR@5 {s["mrr"]:.4f} / {m["mrr"]:.4f}, same top-10 for {same} of {summary["queries"]} queries')
json.dump(summary, open(f"{out}/milvus-10k.json", "w"), indent=2)
sys.exit(0 if ok else 1)
PY
