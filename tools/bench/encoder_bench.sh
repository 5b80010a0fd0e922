#!/usr/bin/env bash
# Encoder throughput: the C++ encoder (build/bin/encoder_bench) against
# sentence-transformers on the same model, texts (the Uber corpus chunks and
# queries of ../shared/data/10k/val_dataset.json) and thread count. Runs are
# interleaved (C++, Python, C++, ...) so load from elsewhere hits both alike.
# Rewrites the encoder section of docs/benchmarks.md.
#
#   tools/bench/encoder_bench.sh [BUILD_DIR]     (THREADS, REPEATS, DATASET, PYTHON override)
set -euo pipefail
cd "$(dirname "$0")/../.."

build=${1:-build}
threads=${THREADS:-$(nproc)}
repeats=${REPEATS:-3}
dataset=${DATASET:-${EMBEDAPT_DATA:-../shared/data/10k}/val_dataset.json}
model=models/all-MiniLM-L6-v2
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x tools/bench/.venv/bin/python ]; then
    python=tools/bench/.venv/bin/python  # created by tools/bench/run.sh; has sentence-transformers
  else
    [ -x .venv-golden/bin/python ] || python3 -m venv .venv-golden
    .venv-golden/bin/pip install --quiet -r tools/golden/requirements.txt
    python=.venv-golden/bin/python
  fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for run in $(seq "$repeats"); do
  echo "encoder_bench: run $run/$repeats ($threads threads)" >&2
  "$build/bin/encoder_bench" "$model" "$dataset" "$threads" 1 "$tmp/cpp.npy" >> "$tmp/cpp.jsonl"
  "$python" tools/bench/encoder_bench.py "$model" "$dataset" "$threads" 1 "$tmp/cpp.npy" 2> "$tmp/py.err" \
    >> "$tmp/py.jsonl" || { cat "$tmp/py.err" >&2; exit 1; }
done

python3 - "$tmp/cpp.jsonl" "$tmp/py.jsonl" docs/benchmarks.md "$dataset" <<'PY'
import json, platform, re, statistics, subprocess, sys, time
cpp = [json.loads(l) for l in open(sys.argv[1])]
py = [json.loads(l) for l in open(sys.argv[2])]
doc, dataset = sys.argv[3], sys.argv[4]
texts = cpp[0]["documents"] + cpp[0]["queries"]
cpp_s = statistics.median(r["median_seconds"] for r in cpp)
py_s = statistics.median(r["median_seconds"] for r in py)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
lines = [
    f"Model `{cpp[0]['identity']}`; {cpp[0]['documents']} corpus chunks (document side) + "
    f"{cpp[0]['queries']} queries (query side) of `{dataset}`, batches of 32, "
    f"{cpp[0]['threads']} threads each; {len(cpp)} interleaved runs, medians. "
    f"{cpu}, {time.strftime('%Y-%m-%d')}. `tools/bench/encoder_bench.sh`.",
    "",
    "| implementation | seconds (median) | texts/s | runs (s) |",
    "| --- | --- | --- | --- |",
]
for name, runs, s in ((cpp[0]["impl"], cpp, cpp_s), (py[0]["impl"], py, py_s)):
    lines.append(f"| {name} | {s:.2f} | {texts / s:.1f} | "
                 + ", ".join(f"{r['median_seconds']:.2f}" for r in runs) + " |")
lines += ["", f"Speed ratio (sentence-transformers time / C++ time): **{py_s / cpp_s:.2f}x**. "
          f"Lowest cosine between the two implementations' vectors over all {texts} texts: "
          f"{min(r['min_cosine_vs_cpp'] for r in py):.6f}."]
text = open(doc).read()
section = "<!-- encoder:begin -->\n" + "\n".join(lines) + "\n<!-- encoder:end -->"
new, n = re.subn(r"<!-- encoder:begin -->.*?<!-- encoder:end -->", lambda m: section, text, flags=re.S)
if n != 1:
    sys.exit(f"encoder_bench: {doc} has no encoder:begin/end markers")
open(doc, "w").write(new)
print("\n".join(lines))
PY
