#!/usr/bin/env bash
# Store performance: runs BUILD/bin/store_bench (the Store against raw FAISS,
# same index, same queries, interleaved) and rewrites the store section of
# docs/benchmarks.md between <!-- store:begin --> and <!-- store:end -->.
#
#   tools/bench/store_bench.sh [BUILD_DIR]   (N, QUERIES, REPEATS, SPECS override; N=1000000 for 1M)
set -euo pipefail
cd "$(dirname "$0")/../.."

build=${1:-build}
n=${N:-100000}
queries=${QUERIES:-500}
repeats=${REPEATS:-3}
specs=${SPECS:-Flat,HNSW32}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$build/bin/store_bench" --n "$n" --dim 384 --queries "$queries" --repeats "$repeats" --specs "$specs" \
  --dir "$tmp/stores" > "$tmp/rows.jsonl"

python3 - "$tmp/rows.jsonl" docs/benchmarks.md "$queries" "$repeats" <<'PY'
import json, platform, re, subprocess, sys, time
rows = [json.loads(line) for line in open(sys.argv[1])]
doc_path, queries, repeats = sys.argv[2], sys.argv[3], sys.argv[4]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
out = [
    f"Measured {time.strftime('%Y-%m-%d')} at commit `{commit}` on {cpu} ({subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, shared), "
    f"by `tools/bench/store_bench.sh`: random unit vectors (384-d, cosine), k=10, one query at a time, "
    f"{queries} queries x {repeats} repeats, the store and raw FAISS (same factory string, same vectors and "
    "queries) interleaved query by query. QPS: median over repeats; latency percentiles over all timed queries. "
    "Overhead = raw QPS / store QPS - 1 (the store also normalises the query, maps ids and reads payloads "
    "from RocksDB).",
    "",
    "| index | n | store QPS | raw FAISS QPS | overhead | store p50 / p99 ms | raw p50 / p99 ms | with linear adapter: QPS, overhead |",
    "|---|---|---|---|---|---|---|---|",
]
for r in rows:
    s, a = r["search"], r["search_linear_adapter"]
    out.append(f"| {r['spec']} | {r['n']:,} | {s['store_qps']:.0f} | {s['raw_qps']:.0f} | {s['overhead']*100:+.1f}% | "
               f"{s['store_p50_ms']:.2f} / {s['store_p99_ms']:.2f} | {s['raw_p50_ms']:.2f} / {s['raw_p99_ms']:.2f} | "
               f"{a['store_qps']:.0f}, {a['overhead']*100:+.1f}% |")
out += ["", "| index | ingest rows/s (durable batches of 1000) | raw FAISS add rows/s | snapshot s | open s (clean) | open s after kill -9 (1000 journaled rows) | peak RSS MB |",
        "|---|---|---|---|---|---|---|"]
for r in rows:
    out.append(f"| {r['spec']} | {r['ingest_rows_per_s']:,.0f} | {r['raw_add_rows_per_s']:,.0f} | {r['snapshot_s']:.2f} | "
               f"{r['open_clean_s']:.2f} | {r['open_after_kill_s']:.2f} | {r['peak_rss_mb']:,.0f} |")
doc = open(doc_path).read()
section = "<!-- store:begin -->\n" + "\n".join(out) + "\n<!-- store:end -->"
doc, count = re.subn(r"<!-- store:begin -->.*?<!-- store:end -->", lambda _: section, doc, flags=re.S)
if count != 1:
    sys.exit("store_bench.sh: docs/benchmarks.md lacks the store markers")
open(doc_path, "w").write(doc)
print("\n".join(out))
PY
