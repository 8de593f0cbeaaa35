#!/usr/bin/env bash
# sbatch --wait slurm/sotu.sbatch on a tiny config under a real single-node
# Slurm: the job completes (3 MPI tasks through srun --mpi=pmix) and its
# checkpoint verifies with sotu inspect and h5py.
set -euo pipefail
source "$(dirname "$0")/common.sh"
work=$(mktemp -d "$PWD/sbatch-run.XXXXXX")
slurm_up sbatch
sotu_tiny_setup "$work"
export SOTU_BIN
timeout 240 sbatch --wait --ntasks=3 --overcommit --output="$work/job.out" \
  "$SOTU_SOURCE_DIR/slurm/sotu.sbatch" "$work/tiny.yaml" --set "output.dir=$work/run" \
  || { cat "$work/job.out"; exit 1; }
grep -q "3 ranks (rank 0 coordinates)" "$work/job.out" || { cat "$work/job.out"; exit 1; }
"$SOTU_BIN" inspect "$work/run/checkpoint.h5"
"$SOTU_PYTHON" - "$work/run/checkpoint.h5" <<'PY'
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1]) as f:
    assert f.attrs["format"] in (b"sotu-checkpoint", "sotu-checkpoint"), f.attrs["format"]
    merged = {k: v[()] for k, v in f["merged"].items()}
    assert "blocks.0.attn.qkv.weight" in merged and all(np.isfinite(v).all() for v in merged.values())
    assert len(f["tasks"]) == 5 and len(f["heads"]) == 5
    acc = f["eval/acc_matrix"][()]
    assert np.isfinite(acc[-1]).all(), acc[-1]
print("checkpoint verifies: 5 tasks, finite merged weights and last accuracy row")
PY
echo "sbatch_run passed in $(elapsed)"
