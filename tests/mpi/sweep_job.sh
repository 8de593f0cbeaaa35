#!/usr/bin/env bash
# A sweep inside one job: `mpiexec -n 3 sotu train` with sweep
# {train.lr: [1e-3, 3e-4], sotu.keep: [0.3, 0.1]} runs 2 training groups x 5
# tasks on one queue (keep is applied at merge time: 10 trainings, not 20),
# writes a run directory and checkpoint per point and ranks the 4 points.
# `sotu merge` of a point directory with another keep (--out DIR) reproduces
# the point of that keep bitwise; the same sweep through --array-index
# elements and `sotu merge DIR` gives the same ranking, in the merge's result
# directory DIR/merges/sweep (the sweep directory's own files untouched).
set -euo pipefail
source "$SOTU_SOURCE_DIR/tests/slurm/common.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-sweep.XXXXXX")
trap 'rm -rf "$work"' EXIT
sotu_tiny_setup "$work"
cat >> "$work/tiny.yaml" <<YAML
sweep:
  train.lr: [1.0e-3, 3.0e-4]
  sotu.keep: [0.3, 0.1]
YAML
mpiexec --oversubscribe -n 3 "$SOTU_BIN" -q train "$work/tiny.yaml" --set "output.dir=$work/sw" \
  > "$work/sw.out" 2> "$work/sw.err" || { cat "$work/sw.err"; exit 1; }
cat "$work/sw/sweep.md"
[[ -L "$work/sw/points/p01_lr1.0e-3_keep0.1/deltas" ]]
"$SOTU_BIN" -q merge "$work/sw/points/p00_lr1.0e-3_keep0.3" --keep 0.1 --out "$work/k01" \
  > /dev/null 2> "$work/merge.err" || { cat "$work/merge.err"; exit 1; }

for e in 0 1; do
  "$SOTU_BIN" -q train "$work/tiny.yaml" --set "output.dir=$work/arr" --array-index "$e" \
    > "$work/arr$e.out" 2> "$work/arr$e.err" || { cat "$work/arr$e.err"; exit 1; }
done
rc=0
"$SOTU_BIN" -q train "$work/tiny.yaml" --set "output.dir=$work/arr" --array-index 2 \
  > /dev/null 2> "$work/arr2.err" || rc=$?
[[ $rc -eq 2 ]] || { echo "array index 2 of 2 groups: exit $rc, expected 2"; exit 1; }
"$SOTU_BIN" -q merge "$work/arr" > "$work/arrmerge.out" 2> "$work/arrmerge.err" \
  || { cat "$work/arrmerge.err"; exit 1; }

"$SOTU_PYTHON" - "$work" <<'PY'
import csv, glob, json, sys
import h5py
import numpy as np
work = sys.argv[1]
rows = list(csv.DictReader(open(f"{work}/sw/sweep.csv")))
assert len(rows) == 4 and [r["rank"] for r in rows] == ["1", "2", "3", "4"], rows
# Ranked by the validation hold-out (data.val_fraction), never by test accuracy.
val = [float(r["merged_val_acc"]) for r in rows]
assert all(v == v for v in val) and val == sorted(val, reverse=True), rows
assert all(float(r["merged_acc"]) == float(r["merged_acc"]) for r in rows), rows
for r in rows:
    ends = [json.loads(l) for l in open(f"{work}/sw/points/{r['point']}/metrics.jsonl")]
    end = [e for e in ends if e["event"] == "run_end"][-1]
    assert abs(end["merged_val_acc"] - float(r["merged_val_acc"])) < 1e-6, (end, r)
    done = [e for e in ends if e["event"] == "task_done"]
    assert all(0 <= e["val_acc"] <= 1 for e in done), done
    with h5py.File(f"{work}/sw/points/{r['point']}/checkpoint.h5") as f:
        ev = f["eval/acc_matrix"].attrs
        assert abs(ev["val_acc"] - float(r["merged_val_acc"])) < 1e-6, (dict(ev), r)
        assert 0 <= ev["frozen_task_heads_val_acc"] <= 1 if "frozen_task_heads_val_acc" in ev else True
trained = 0
for m in glob.glob(f"{work}/sw/points/*/metrics.jsonl"):
    trained += sum(json.loads(l)["event"] == "task_done" for l in open(m))
assert trained == 10, f"expected 2 groups x 5 tasks trained, got {trained}"
def merged(p):
    with h5py.File(p) as f:
        return {n: v[()] for n, v in f["merged"].items()}
a = merged(f"{work}/sw/points/p01_lr1.0e-3_keep0.1/checkpoint.h5")
b = merged(f"{work}/k01/checkpoint.h5")
assert all(np.array_equal(a[n], b[n]) for n in a), "sotu merge --keep 0.1 differs from point p01"
import os
assert not os.path.exists(f"{work}/arr/sweep.csv"), "the merge wrote into the sweep directory"
rows2 = list(csv.DictReader(open(f"{work}/arr/merges/sweep/sweep.csv")))
assert [(r["point"], r["merged_acc"], r["merged_val_acc"]) for r in rows] == [(r["point"], r["merged_acc"], r["merged_val_acc"]) for r in rows2], (rows, rows2)
for r in rows2:
    assert r["checkpoint"] == f"{work}/arr/merges/sweep/points/{r['point']}/checkpoint.h5", r
    with h5py.File(r["checkpoint"]) as f:
        assert len(f["heads"]) == 5 and int(f.attrs["partial"]) == 0
print("sweep: 4 points from 10 trainings, ranked; merge-time keep bitwise; array mode agrees")
PY
echo "sweep_job passed in $(elapsed)"
