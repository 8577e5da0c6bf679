#!/bin/sh
# Install, from Debian's archive, every system package lvae builds, tests or
# runs with. Does nothing when all are present; otherwise runs apt-get update
# once, then installs only what is missing.
set -eu

PACKAGES="
  build-essential
  pkg-config
  lua5.4
  liblua5.4-dev
  lua-busted
  lua-readline
  lua-cjson
  lua-argparse
  libopenblas-dev
  libopenblas0-openmp
  liblapacke-dev
  zlib1g-dev
  libpng-dev
  libssl-dev
  gnuplot-nox
  mricron-data
  libnifti2-dev
  dataset-fashion-mnist
  libopenmpi-dev
  openmpi-bin
  slurm-wlm
  munge
"

# `setup.sh fuzz` adds what `make fuzz` needs (clang and its libFuzzer).
if [ "${1:-}" = "fuzz" ]; then
  PACKAGES="clang libclang-rt-14-dev"
fi
# `setup.sh bench` adds the reference `make bench-peer` compares with
# (Debian's PyTorch and NumPy; large, so `make test` does not install it)
# and the profilers (perf, valgrind's callgrind).
if [ "${1:-}" = "bench" ]; then
  PACKAGES="python3-torch python3-numpy linux-perf valgrind"
fi

missing=""
for pkg in $PACKAGES; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $pkg" ;;
  esac
done

if [ -z "$missing" ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

echo "setup: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "setup: done"
