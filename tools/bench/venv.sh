#!/usr/bin/env bash
# The peers' virtual environment, tools/bench/.venv: (re)created from
# tools/bench/requirements.txt whenever that file changed since, else left as
# it is. run.sh and the steps that need the peers (peers.sh) call it.
#   tools/bench/venv.sh [TIMING.json]   (TIMING.json: whether it was created, and how long it took)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv"
timing=${1:-/dev/null}
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bench: creating $venv (PyPI's torch brings its CUDA libraries: a few minutes)" >&2
  venv_start=$(date +%s)
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
  echo "$want" > "$stamp"
  echo "{\"created\": true, \"seconds\": $(($(date +%s) - venv_start))}" > "$timing"
else
  echo '{"created": false}' > "$timing"
fi
