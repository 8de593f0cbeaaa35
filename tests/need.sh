#!/usr/bin/env bash
# Runs a test when what it needs is there, else skips it:
#
#   tests/need.sh NEED... -- COMMAND [ARGS...]
#
# A missing NEED prints "SKIP: needs ..." naming it and how to get it, and
# exits 77, which CTest reports as skipped (SKIP_RETURN_CODE, set for every
# test by tests/CMakeLists.txt). With SOTU_REQUIRE_ALL=1 (CI, .ci/run) a
# missing NEED fails the test instead: CI has everything and runs every test.
#
# NEEDs:
#   python3                $SOTU_PYTHON (default /usr/bin/python3) runs
#   numpy h5py torch yaml  that Python imports the module
#   chromium               a chromium on PATH (headless rendering of report.html)
#   fmnist                 Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)
#   root                   running as root (mounts, a local Slurm)
#   slurm                  slurmctld, slurmd, munged and sbatch on PATH or in /usr/sbin
#   taskset                util-linux's taskset
set -uo pipefail
py=${SOTU_PYTHON:-/usr/bin/python3}
missing=()

hint() {
  case $1 in
    python3) echo "$py (Debian python3; SOTU_PYTHON picks another)" ;;
    numpy) echo "Python module numpy in $py (Debian python3-numpy)" ;;
    h5py) echo "Python module h5py in $py (Debian python3-h5py)" ;;
    torch) echo "Python module torch in $py (Debian python3-torch)" ;;
    yaml) echo "Python module yaml in $py (Debian python3-yaml)" ;;
    chromium) echo "chromium (Debian chromium)" ;;
    fmnist) echo "Fashion-MNIST in /usr/share/datasets/fashion-mnist (Debian dataset-fashion-mnist)" ;;
    root) echo "root (it is $(id -un))" ;;
    slurm) echo "a local Slurm: slurmctld, slurmd, munged, sbatch (Debian slurm-wlm, munge)" ;;
    taskset) echo "taskset (Debian util-linux)" ;;
    *) echo "$1" ;;
  esac
}

have() {
  case $1 in
    python3) [[ -x $py ]] || command -v "$py" >/dev/null 2>&1 ;;
    numpy|h5py|torch|yaml) have python3 && "$py" -c "import $1" >/dev/null 2>&1 ;;
    chromium) command -v chromium >/dev/null 2>&1 ;;
    fmnist) [[ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]] ;;
    root) [[ $(id -u) -eq 0 ]] ;;
    slurm)
      local p
      for p in slurmctld slurmd munged sbatch; do
        PATH=$PATH:/usr/sbin:/sbin command -v "$p" >/dev/null 2>&1 || return 1
      done ;;
    taskset) command -v taskset >/dev/null 2>&1 ;;
    *) echo "need.sh: unknown need '$1'" >&2; exit 2 ;;
  esac
}

while [[ $# -gt 0 && $1 != -- ]]; do
  have "$1" || missing+=("$1")
  shift
done
[[ ${1:-} == -- ]] || { echo "usage: need.sh NEED... -- COMMAND [ARGS...]" >&2; exit 2; }
shift
if [[ ${#missing[@]} -gt 0 ]]; then
  what=$(for m in "${missing[@]}"; do hint "$m"; done | paste -sd ';' | sed 's/;/; /g')
  if [[ ${SOTU_REQUIRE_ALL:-0} == 1 ]]; then
    echo "FAIL: needs $what (SOTU_REQUIRE_ALL=1: no test may skip)"
    exit 1
  fi
  echo "SKIP: needs $what"
  exit 77
fi
exec "$@"
