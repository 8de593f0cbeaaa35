#!/usr/bin/env bash
# The quick start: install what is missing, build, make the fmnist5 tasks
# (and the pretrained backbone if it is absent), then run the main job,
# `sotu train examples/quickstart.yaml`, with 3 MPI ranks.
# Extra arguments go to `sotu train` (e.g. --set train.epochs=1).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

if [[ ! -f data/tasks/fmnist5/manifest.yaml ]]; then
  # The manifest is written last: without it the task files there are from
  # an interrupted build, which --force lets this one replace.
  ./build/sotu data fmnist --preset fmnist5 --out data/tasks/fmnist5 --force
fi
if [[ ! -f data/pretrained/vit-tiny-fmnist.h5 ]]; then
  # The committed backbone is missing: make it (about 30 min on one core).
  ./build/sotu pretrain examples/pretrain.yaml
fi

if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# A new run directory each time: an earlier run is never overwritten.
mpiexec -n 3 --oversubscribe ./build/sotu train examples/quickstart.yaml \
  --set "output.dir=runs/quickstart-$(date +%Y%m%d-%H%M%S)" "$@"
