#!/usr/bin/env bash
# A 3-point sweep (train.lr) as a job array throttled to 2 at a time
# (slurm/sweep-array.sbatch), then slurm/merge-after.sbatch with
# --dependency=afterok on the array: the merge's result directory
# (sweep/merges/sweep/) holds a checkpoint per point and sweep.csv/sweep.md
# ranking the 3 points by mean merged accuracy; the array wrote no results
# of its own into the sweep directory.
set -euo pipefail
source "$(dirname "$0")/common.sh"
work=$(mktemp -d "$PWD/array-sweep.XXXXXX")
slurm_up array
sotu_tiny_setup "$work"
cat >> "$work/tiny.yaml" <<YAML
sweep:
  train.lr: [1.0e-3, 3.0e-4, 1.0e-4]
YAML
sed -i "s|dir: $work/run|dir: $work/sweep|" "$work/tiny.yaml"
export SOTU_BIN
n=$("$SOTU_BIN" train "$work/tiny.yaml" --array-size)
[[ $n -eq 3 ]] || { echo "expected 3 array elements, got $n"; exit 1; }
jid=$(sbatch --parsable --array=0-$((n - 1))%2 --overcommit --output="$work/elem-%a.out" \
  "$SOTU_SOURCE_DIR/slurm/sweep-array.sbatch" "$work/tiny.yaml")
timeout 240 sbatch --wait --dependency=afterok:"$jid" --overcommit --output="$work/merge.out" \
  "$SOTU_SOURCE_DIR/slurm/merge-after.sbatch" "$work/sweep" \
  || { tail -n 20 "$work"/*.out; exit 1; }
cat "$work/sweep/merges/sweep/sweep.md"
grep -q "merged result: $work/sweep/merges/sweep " "$work/merge.out" || { cat "$work/merge.out"; exit 1; }
[[ ! -e "$work/sweep/sweep.csv" ]] || { echo "the merge wrote into the sweep directory"; exit 1; }
for e in 0 1 2; do grep -q "array element $e " "$work/elem-$e.out"; done
"$SOTU_PYTHON" - "$work/sweep/merges/sweep" <<'PY'
import csv, math, os, sys
import h5py
rows = list(csv.DictReader(open(os.path.join(sys.argv[1], "sweep.csv"))))
assert [r["rank"] for r in rows] == ["1", "2", "3"], rows
assert sorted(r["train.lr"] for r in rows) == sorted(["1.0e-3", "3.0e-4", "1.0e-4"]), rows
accs = [float(r["merged_val_acc"]) for r in rows]  # ranked on validation, never on test
assert all(not math.isnan(a) for a in accs) and accs == sorted(accs, reverse=True), accs
assert all(not math.isnan(float(r["merged_acc"])) for r in rows), rows
for r in rows:
    assert r["tasks_done"] == "5", r
    assert r["checkpoint"] == os.path.join(sys.argv[1], "points", r["point"], "checkpoint.h5"), r
    with h5py.File(r["checkpoint"]) as f:
        assert len(f["tasks"]) == 5 and int(f.attrs["partial"]) == 0
print("summary ranks 3 points:", [(r["point"], r["merged_acc"]) for r in rows])
PY
echo "array_sweep passed in $(elapsed)"
