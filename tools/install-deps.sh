#!/usr/bin/env bash
# Installs the system packages embedapt builds and tests with (Debian 12);
# with `lint`, also those of make format and make tidy.
# Idempotent: does nothing when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libfaiss-dev librocksdb-dev libtorch-dev libopenblas-dev liblapack-dev
  libfmt-dev catch2 libcli11-dev nlohmann-json3-dev
  libcurl4-openssl-dev libpoppler-cpp-dev libssl-dev
  python3 python3-pip python3-venv unzip
  chromium  # the Python tests open the HTML eval report in it (headless)
  clang libclang-rt-14-dev  # libFuzzer and the sanitizer runtimes for tests/fuzz
)
# `install-deps.sh lint`: also the tools of make format and make tidy (libomp's
# omp.h: clang cannot parse GCC's, which FAISS's headers include).
[ "${1:-}" = lint ] && packages+=(clang-format clang-tidy libomp-14-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run as root or: sudo $0" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
