#!/usr/bin/env bash
# `make bench`: embedapt side by side with the seed (LlamaIndex), on ../shared/data/10k.
#   tools/bench/run.sh BUILD_DIR        (FULL=1 adds the slow peers)
# Creates the peers' virtual environment (tools/bench/.venv) on first use, runs the
# quality and training-time benchmark (bench.py), the store and encoder benchmarks
# when their scripts exist, then writes tools/bench/results/<date>.json and the
# quality table of docs/benchmarks.md (report.py).
set -euo pipefail

start=$(date +%s)
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
bin="$build/bin/embedapt"
data=${EMBEDAPT_DATA:-$repo/../shared/data/10k}
work=${BENCH_WORK:-$here/work}
venv="$here/.venv"

[ -x "$bin" ] || { echo "bench: $bin not found: build first (make build)" >&2; exit 1; }
for f in train_dataset.json val_dataset.json; do
  [ -f "$data/$f" ] || { echo "bench: $data/$f not found (set EMBEDAPT_DATA to the 10k data folder)" >&2; exit 1; }
done

# The venv is rebuilt whenever requirements.txt changes.
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bench: creating $venv (PyPI's torch brings its CUDA libraries: a few minutes)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
  echo "$want" > "$stamp"
fi

rm -rf "$work"
mkdir -p "$work"
"$venv/bin/python" "$here/bench.py" --embedapt "$bin" --data "$data" --work "$work" --out "$work/raw.json" \
  --repeats "${BENCH_REPEATS:-3}" ${FULL:+--full}

for other in store_bench encoder_bench; do
  if [ -x "$here/$other.sh" ]; then
    echo "bench: $other.sh" >&2
    "$here/$other.sh" "$build"
  fi
done

"$venv/bin/python" "$here/report.py" "$work/raw.json" --total-seconds "$(($(date +%s) - start))"
