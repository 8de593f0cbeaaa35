#!/usr/bin/env bash
# sotu.tuning masked through the real binary: the same 5 tiny tasks trained
# serially and with `mpiexec -n 3` give bitwise the same merged weights and
# heads (the masks are seeded per task and tensor, never by rank or thread);
# masked tuning trains something else than posthoc (the merged weights
# differ); the dense baseline is skipped rather than shipping at keep 1
# (bitwise the same merge); sotu.rescale with masked is refused (exit 2); a
# keep sweep trains once per keep under masked, once under posthoc. That entries
# outside the mask stay θ0 and the delta is what was trained is
# test_finetune's (test_masked_tuning).
set -euo pipefail
source "$SOTU_SOURCE_DIR/tests/slurm/common.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-masked.XXXXXX")
trap 'rm -rf "$work"' EXIT
sotu_tiny_setup "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common=(--set sotu.tuning=masked --set sotu.keep=0.3 --set train.max_steps=4)
# A keep sweep needs one training under posthoc (a smaller keep is a
# sub-mask) but one per keep under masked (each trains its own mask).
n_post=$("$SOTU_BIN" train "$work/tiny.yaml" --set "sweep.sotu.keep=[0.3, 0.1]" --array-size)
n_mask=$("$SOTU_BIN" train "$work/tiny.yaml" --set sotu.tuning=masked \
  --set "sweep.sotu.keep=[0.3, 0.1]" --array-size)
[[ $n_post == 1 && $n_mask == 2 ]] ||
  { echo "keep sweep: $n_post posthoc / $n_mask masked trainings, expected 1 / 2"; exit 1; }
"$SOTU_BIN" -q train "$work/tiny.yaml" "${common[@]}" --set "output.dir=$work/serial" \
  > "$work/serial.out" 2> "$work/serial.err" || { cat "$work/serial.err"; exit 1; }
mpiexec --oversubscribe -n 3 "$SOTU_BIN" -q train "$work/tiny.yaml" "${common[@]}" \
  --set "output.dir=$work/mpi" > "$work/mpi.out" 2> "$work/mpi.err" \
  || { cat "$work/mpi.err"; exit 1; }
"$SOTU_BIN" -q train "$work/tiny.yaml" --set sotu.keep=0.3 --set train.max_steps=4 \
  --set "output.dir=$work/posthoc" > /dev/null 2> "$work/posthoc.err" \
  || { cat "$work/posthoc.err"; exit 1; }
# The dense baseline does not force keep 1 on masked tuning (that would train
# everything): it is skipped, and the run is the plain masked run, bitwise.
"$SOTU_BIN" train "$work/tiny.yaml" "${common[@]}" --set "eval.baselines=[finetuned, dense]" \
  --set "output.dir=$work/dense" > /dev/null 2> "$work/dense.err" \
  || { cat "$work/dense.err"; exit 1; }
grep -q "baseline dense skipped" "$work/dense.err" || { cat "$work/dense.err"; exit 1; }
rc=0
"$SOTU_BIN" -q train "$work/tiny.yaml" "${common[@]}" --set sotu.rescale=true \
  --set "output.dir=$work/refused" > /dev/null 2> "$work/refused.err" || rc=$?
[[ $rc -eq 2 ]] || { echo "masked + rescale: exit $rc, expected 2"; cat "$work/refused.err"; exit 1; }
grep -q "sotu.tuning masked with sotu.rescale true" "$work/refused.err" \
  || { cat "$work/refused.err"; exit 1; }
[[ ! -e "$work/refused/checkpoint.h5" ]] || { echo "refused run wrote a checkpoint"; exit 1; }

"$SOTU_PYTHON" - "$work" <<'PY'
import sys
import h5py
import numpy as np
work = sys.argv[1]
def load(run):
    with h5py.File(f"{work}/{run}/checkpoint.h5") as f:
        merged = {n: v[()] for n, v in f["merged"].items()}
        heads = {f"{t}/{n}": v[()] for t, g in f["heads"].items() for n, v in g.items()}
    return merged, heads
ms, hs = load("serial")
mm, hm = load("mpi")
mp, _ = load("posthoc")
md, hd = load("dense")
assert all(ms[n].tobytes() == md[n].tobytes() for n in ms), "masked + dense baseline shipped at keep 1"
assert all(hs[n].tobytes() == hd[n].tobytes() for n in hs)
assert ms.keys() == mm.keys() and hs.keys() == hm.keys() and len(hs) == 10
for n in ms:
    assert ms[n].tobytes() == mm[n].tobytes(), f"merged {n}: serial and mpiexec -n 3 differ"
for n in hs:
    assert hs[n].tobytes() == hm[n].tobytes(), f"head {n}: serial and mpiexec -n 3 differ"
assert any(ms[n].tobytes() != mp[n].tobytes() for n in ms), "masked merged == posthoc merged"
print(f"masked tuning: {len(ms)} merged tensors and {len(hs)} head tensors bitwise equal "
      "serial vs mpiexec -n 3 and with the dense baseline asked; differs from posthoc; "
      "rescale refused")
PY
