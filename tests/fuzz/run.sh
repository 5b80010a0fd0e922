#!/usr/bin/env bash
# Runs every libFuzzer harness built in BUILD_DIR for SECONDS each, starting
# from the seed corpus in tests/fuzz/corpus/<harness>/ (copied: the repo's
# seeds never change). Stops at the first harness that finds a crash, leak,
# timeout or sanitizer report (its input is left in BUILD_DIR/artifacts/).
# Prints one line per harness and writes BUILD_DIR/fuzz-summary.txt.
# With RUNS, each harness runs at most RUNS inputs past its seed corpus from a
# fixed random seed: the same inputs on every machine (a slower one stops
# earlier, at SECONDS), which is what `make test` wants; without it, each
# harness explores at random for SECONDS (`make fuzz`).
#   tests/fuzz/run.sh BUILD_DIR SECONDS [RUNS]
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR SECONDS [RUNS]}
seconds=${2:?usage: run.sh BUILD_DIR SECONDS [RUNS]}
limits=()
if [ -n "${3:-}" ]; then limits=(-runs="$3" -seed=1); fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/artifacts" "$build/corpus"
summary=$build/fuzz-summary.txt
: > "$summary"
total_runs=0
count=0
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$here/../sanitizers/ubsan.supp
export LSAN_OPTIONS=suppressions=$here/../sanitizers/lsan.supp:print_suppressions=0
for binary in "$build"/bin/fuzz_*; do
  name=$(basename "$binary")
  corpus=$build/corpus/$name
  mkdir -p "$corpus"
  cp -n "$here/corpus/$name"/* "$corpus"/ 2>/dev/null || true
  log=$build/$name.log
  # One worker, bounded memory and per-input time; the fuzzer's own
  # output goes to the log, which is shown only when it fails.
  if ! "$binary" "$corpus" "${limits[@]}" -max_total_time="$seconds" -rss_limit_mb=3072 -timeout=30 \
      -artifact_prefix="$build/artifacts/$name-" -print_final_stats=1 > "$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $name FAILED after $seconds s (input in $build/artifacts/)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  inputs=$(ls "$corpus" | wc -l)
  echo "$name: ${runs:-0} executions in $seconds s, corpus $inputs inputs" | tee -a "$summary"
  total_runs=$((total_runs + ${runs:-0}))
  count=$((count + 1))
done
echo "fuzz: $count harnesses, $total_runs executions, nothing found" | tee -a "$summary"
