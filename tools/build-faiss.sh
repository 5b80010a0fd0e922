#!/usr/bin/env bash
# Builds FAISS with AVX2/FMA kernels from Debian's source package of the
# installed libfaiss-dev (same version, same headers), once, into a cache
# prefix named after that version and the flags, and prints the prefix.
# Debian's libfaiss.a is compiled for baseline x86-64 (SSE2, no SSE3), where
# FAISS 1.7.3 falls back to its scalar reference loops for the distances that
# Flat and HNSW search, HNSW builds and k-means compute.
#   tools/build-faiss.sh            (prints the prefix to pass as EMBEDAPT_FAISS_PREFIX)
# Exit 0 with nothing printed when the CPU lacks AVX2 or FMA: the stock library
# is the fallback. FAISS_CACHE=DIR overrides the cache folder
# (default ~/.cache/embedapt-faiss). Needs root once, to add a deb-src line.
# About 210 CPU seconds of compiling (-j2: JOBS overrides), once per machine.
set -euo pipefail

if ! grep -qw avx2 /proc/cpuinfo || ! grep -qw fma /proc/cpuinfo; then
  echo "build-faiss: this CPU lacks AVX2 or FMA: the stock libfaiss is used" >&2
  exit 0
fi
version=$(dpkg-query -W -f='${source:Version}' libfaiss-dev 2>/dev/null) || {
  echo "build-faiss: libfaiss-dev is not installed (run tools/install-deps.sh)" >&2
  exit 1
}
# Every flag that changes the library is in the key: a different set is a different prefix.
arch_flags="-mavx2 -mfma -mf16c -mpopcnt"
build_type=Release
key=$(echo "$version $arch_flags $build_type" | sha256sum | cut -c1-12)
cache=${FAISS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/embedapt-faiss}
prefix="$cache/faiss-$version-avx2-$key"
if [ -f "$prefix/.complete" ]; then
  echo "$prefix"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src_list=/etc/apt/sources.list.d/embedapt-src.sources
if ! (cd "$work" && apt-get source -qq --download-only "faiss=$version" >/dev/null 2>&1); then
  if [ ! -f "$src_list" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "build-faiss: needs a deb-src line for bookworm: run as root once" >&2; exit 1; }
    printf '%s\n' "Types: deb-src" "URIs: http://deb.debian.org/debian" "Suites: bookworm" \
      "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" > "$src_list"
    apt-get update -qq
  fi
  (cd "$work" && apt-get source -qq --download-only "faiss=$version" >/dev/null) || {
    echo "build-faiss: apt-get source faiss=$version failed" >&2
    exit 1
  }
fi
# apt-get checked the files against the archive's signed index; dpkg-source
# would only warn that it has no key for the uploader's signature.
dpkg-source -x "$work"/faiss_*.dsc "$work/src" > "$work/unpack.log" 2>&1 || { cat "$work/unpack.log" >&2; exit 1; }

echo "build-faiss: compiling FAISS $version with $arch_flags into $prefix (minutes, once)" >&2
# Only the library: no GPU, Python, C API, tests. -O3 as upstream's Release.
cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=$build_type -DCMAKE_CXX_FLAGS="$arch_flags" \
  -DFAISS_ENABLE_GPU=OFF -DFAISS_ENABLE_PYTHON=OFF -DFAISS_ENABLE_C_API=OFF -DBUILD_TESTING=OFF \
  -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib > "$work/configure.log" ||
  { cat "$work/configure.log" >&2; exit 1; }
# Progress goes to stderr: stdout carries only the prefix.
nice -n 5 cmake --build "$work/build" -j "${JOBS:-2}" --target faiss >&2
cmake --install "$work/build" > /dev/null
touch "$prefix/.complete"
echo "$prefix"
