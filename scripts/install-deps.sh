#!/usr/bin/env bash
# Installs what sotu's build, tests and quick start need on Debian 12.
# Idempotent: a no-op (no apt-get at all) when every package is present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libopenmpi-dev openmpi-bin
  libopenblas-dev
  libhdf5-dev hdf5-tools
  libzstd-dev libxxhash-dev zlib1g-dev
  libyaml-dev libjansson-dev
  libpng-dev libjpeg-dev libstb-dev
  dataset-fashion-mnist
  python3-torch python3-h5py python3-numpy python3-pil
  slurm-wlm munge
  chromium
  clang libclang-rt-14-dev
  qemu-user
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q "${missing[@]}"
