#!/bin/sh
# The out-of-tree app test: installs the build into a scratch prefix, checks
# that only the public headers went in, then configures, builds and runs
# tests/app against the prefix with find_package(embedapt).
# Usage: run.sh BUILD_DIR SOURCE_DIR SCRATCH_DIR
set -eu
build=$1 source=$2 scratch=$3
rm -rf "$scratch"
mkdir -p "$scratch"
prefix=$scratch/prefix

cmake --install "$build" --prefix "$prefix" > "$scratch/install.log"

# The installed headers are exactly plugin/include/embedapt/*.
(cd "$source/plugin/include" && find embedapt -type f | sort) > "$scratch/public.txt"
(cd "$prefix/include" && find . -type f | sed 's|^\./||' | sort) > "$scratch/installed.txt"
if ! cmp -s "$scratch/public.txt" "$scratch/installed.txt"; then
  echo "installed headers differ from plugin/include/embedapt:" >&2
  diff "$scratch/public.txt" "$scratch/installed.txt" >&2 || true
  exit 1
fi
# No include path of the package points back into the source tree (where the
# internal headers, core/ and index/, live).
if grep -rl "$source" "$prefix/lib" --include='*.cmake' >&2; then
  echo "the installed CMake package refers to the source tree" >&2
  exit 1
fi

cmake -S "$source/tests/app" -B "$scratch/app" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
  > "$scratch/configure.log" || { cat "$scratch/configure.log" >&2; exit 1; }
cmake --build "$scratch/app" > "$scratch/build.log" 2>&1 || { cat "$scratch/build.log" >&2; exit 1; }
"$scratch/app/app" "$scratch/store"
rm -rf "$scratch"
