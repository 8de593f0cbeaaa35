#!/usr/bin/env bash
# The quick start: install what is missing, build, make the fmnist5 tasks and
# the pretrained backbone if absent, then run the main job with 3 MPI ranks.
# Extra arguments go to `sotu train` (e.g. --set train.epochs=1).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

if [[ ! -f data/tasks/fmnist5/manifest.yaml ]]; then
  ./build/sotu data fmnist --preset fmnist5 --out data/tasks/fmnist5
fi
./build/sotu inspect data/tasks/fmnist5/manifest.yaml
