#!/usr/bin/env bash
# Installs the Debian packages agora needs. Idempotent: installs only what is
# missing, and says what. Works as root or through sudo.
set -euo pipefail

packages=(
  build-essential cmake pkg-config   # compiler and build
  libopenblas-openmp-dev liblapacke-dev  # sgemm (OpenMP-threaded OpenBLAS), LAPACK
  libjansson-dev                     # JSON / JSONL
  libpcre2-dev libicu-dev            # tokenizer pre-tokenisation, NFC normalisation
  zlib1g-dev libpng-dev              # gzip'd datasets, PNG output
  libcurl4-openssl-dev libmicrohttpd-dev  # chat-model endpoints: client and server
  dataset-fashion-mnist              # the first real data set
  gnuplot-nox                        # plots
  clang clang-format clang-tidy cppcheck  # format and lint
  python3 python3-numpy python3-jinja2  # independent references in tests
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: not root and no sudo; install as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
