#!/usr/bin/env bash
# FAISS's kernels in Debian's build and in tools/build-faiss.sh's AVX2/FMA one,
# side by side, one step of `make bench` (run.sh calls it), or alone: runs
# faiss_bench (the FAISS BUILD links) and faiss_bench_stock (the system's,
# built when BUILD links EMBEDAPT_FAISS_PREFIX) in turn, alternating which goes
# first, BENCH_REPEATS times (3); writes WORK/faiss.jsonl and, with --report,
# the "faiss" section of docs/benchmarks.md.
#   tools/bench/faiss.sh BUILD_DIR WORK [--report]
# Without faiss_bench_stock (BUILD links the system's FAISS: `make faiss-avx2`
# was not run, or the CPU lacks AVX2) faiss_bench runs alone.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
work=$2
mkdir -p "$work"
out="$work/faiss.jsonl"
rm -f "$out"
programs=("$build/bin/faiss_bench")
[ -x "$build/bin/faiss_bench_stock" ] && programs+=("$build/bin/faiss_bench_stock")
echo "{\"load_average\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$out"
for run in $(seq "${BENCH_REPEATS:-3}"); do
  echo "bench: faiss_bench run $run" >&2
  order=("${programs[@]}")
  if [ $((run % 2)) -eq 0 ] && [ ${#programs[@]} -eq 2 ]; then order=("${programs[1]}" "${programs[0]}"); fi
  for program in "${order[@]}"; do
    # One thread for BLAS too (k-means' products): CPU time is then one build's work.
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$program" >> "$out"
  done
done
echo "{\"load_average\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$out"
if [ "${3:-}" = "--report" ]; then
  python3 "$here/report.py" "$work" --only faiss
fi
