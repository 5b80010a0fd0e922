#!/usr/bin/env bash
# Retrain at scale: wall time and peak memory (maximum RSS, /usr/bin/time -v)
# of `embedapt retrain` (the defaults, one thread) on a synthetic Flat store
# of N documents x 384 built by scale_store, for each log size in turn. The
# store is built once in DIR and topped up to each larger log, so give the
# sizes in increasing order; keep DIR out of the repo (1M documents: ~5 GB).
# Prints one JSON line per log size, with the command measured.
#   tools/bench/scale_retrain.sh BUILD_DIR DIR [N [LOG...]]
#   tools/bench/scale_retrain.sh build /work/tmp/scale 1000000 100000 1000000
set -euo pipefail
usage="usage: tools/bench/scale_retrain.sh BUILD_DIR DIR [N [LOG...]]  (default N 1000000, LOG 100000)"
case "${1:-}" in -h|--help) echo "$usage"; exit 0 ;; esac
[ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
build=$(cd "$1" && pwd)
dir=$2
n=${3:-1000000}
shift $(( $# >= 3 ? 3 : 2 ))
logs=("${@:-100000}")
mkdir -p "$dir"
store=$dir/store
for log in "${logs[@]}"; do
  "$build/bin/scale_store" --dir "$store" --n "$n" --log "$log" > "$dir/store-$log.json"
  command=("$build/bin/embedapt" retrain "$store")
  /usr/bin/time -v "${command[@]}" > "$dir/retrain-$log.txt" 2> "$dir/retrain-$log.time"
  python3 - "$dir/store-$log.json" "$dir/retrain-$log.txt" "$dir/retrain-$log.time" "${command[*]}" <<'PY'
import json, re, sys
store = json.load(open(sys.argv[1]))
out, timing = open(sys.argv[2]).read(), open(sys.argv[3]).read()
wall = re.search(r"Elapsed \(wall clock\) time.*: (.*)", timing).group(1)
seconds = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall.split(":"))))
rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing).group(1))
print(json.dumps({"documents": store["documents"], "dim": store["dim"], "logged_queries": store["logged_queries"],
                  "wall_seconds": round(seconds, 1), "max_rss_gb": round(rss_kb / 2**20, 2),
                  "retrain_times": re.search(r"time: (.*)", out).group(1),
                  "summary": [l for l in out.splitlines() if l.startswith("estimated")][0],
                  "command": sys.argv[4]}))
PY
done
