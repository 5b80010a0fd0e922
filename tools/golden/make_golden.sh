#!/usr/bin/env bash
# Regenerates the golden fixture tests/data/golden/ (reference token ids and
# vectors from sentence-transformers) for the model in models/all-MiniLM-L6-v2.
# Run by hand, once, when the texts or the model change; tests only read the
# committed fixture. Creates its own virtual environment (.venv-golden)
# unless GOLDEN_PYTHON names a Python that already has requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."

model=${1:-models/all-MiniLM-L6-v2}
out=${2:-tests/data/golden}
python=${GOLDEN_PYTHON:-}
if [ -z "$python" ]; then
  venv=.venv-golden  # ignored by .gitignore's /.venv*/
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r tools/golden/requirements.txt
  python=$venv/bin/python
fi
"$python" tools/golden/make_golden.py "$model" "$out"
