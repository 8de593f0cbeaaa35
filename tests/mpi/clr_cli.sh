#!/usr/bin/env bash
# The commands that read a CLR run's checkpoint (coordinator/clr/clr_checkpoint.h),
# on a tiny serial CLR run (ResNet-18 of width 4, small fmnist5 tasks):
#  - sotu predict --task T (by index and by name) runs task T's own model:
#    the accuracy of /pred on T's test split equals the eval_acc the run's
#    coordinator recorded in the checkpoint (clr_evaluate, another code path:
#    the finetune evaluator with its own preprocessing tables);
#  - sotu predict without --task on a CLR checkpoint, and with an unknown
#    task, fail with a reason;
#  - sotu merge on a CLR run fails before reading any weights;
#  - sotu eval re-evaluates every module: serially (--out writes a checkpoint
#    whose eval_acc equal the run's, bit for bit) and on 2 ranks (same table).
set -euo pipefail
: "${SOTU_BIN:?}" "${SOTU_PYTHON:=/usr/bin/python3}" "${CLR_TASK_BIN:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$SOTU_BIN" -q data fmnist --preset fmnist5 --out "$work/tasks" --train 96 --test 64
"$CLR_TASK_BIN" --backbone "$work/resnet.h5" 4 28 10
cat > "$work/clr.yaml" <<EOF
method: clr
model: {pretrained: resnet.h5}
data: {manifest: tasks/manifest.yaml}
train: {epochs: 2, batch_size: 16, lr: 3.0e-2, weight_decay: 0.0, warmup_steps: 1, threads: 2}
clr: {variant: clr}
eval: {baselines: [frozen]}
output: {dir: $work/run}
EOF
"$SOTU_BIN" -q train "$work/clr.yaml" > "$work/train.out" || fail "train"
ckpt="$work/run/checkpoint.h5"

# predict --task T: accuracy of /pred against the recorded evaluation.
names=()
for t in 0 1 2 3 4; do
  name=$(sed -n "s/^- {name: \([^,]*\), file: t0$t.h5.*/\1/p" "$work/tasks/manifest.yaml")
  [[ -n $name ]] || fail "task $t not in the manifest"
  names+=("$name")
  # Task 1 by name, the others by index.
  sel=$t
  [[ $t -eq 1 ]] && sel=$name
  "$SOTU_BIN" -q predict "$ckpt" --images "$work/tasks/t0$t.h5" --out "$work/p$t.h5" \
    --task "$sel" --batch 24 > "$work/p$t.out" || fail "predict --task $sel"
  grep -q "CLR model of task $name: 2 classes" "$work/p$t.out" \
    || { cat "$work/p$t.out"; fail "predict --task $sel: summary line"; }
done
"$SOTU_PYTHON" - "$ckpt" "$work" "${names[@]}" <<'PY'
import sys
import h5py
import numpy as np
ckpt, work, names = sys.argv[1], sys.argv[2], sys.argv[3:]
f = h5py.File(ckpt, "r")
accs = []
for t, name in enumerate(names):
    p = h5py.File(f"{work}/p{t}.h5", "r")
    y = h5py.File(f"{work}/tasks/t0{t}.h5", "r")["test/labels"][()]
    logits, pred = p["logits"][()], p["pred"][()]
    assert p.attrs["format"] == "sotu-predictions" and p.attrs["task"] == name, dict(p.attrs)
    assert logits.shape == (len(y), 2) and pred.shape == (len(y),), (logits.shape, pred.shape)
    assert (pred == logits.argmax(1)).all(), f"task {name}: /pred is not the argmax of /logits"
    acc = float((pred == y).mean())
    want = float(f["tasks"][name].attrs["eval_acc"])
    diag = float(f["eval/acc_matrix"][t, t])
    if abs(acc - want) > 1e-12 or abs(acc - diag) > 1e-12:
        sys.exit(f"task {name}: predict gives accuracy {acc}, the checkpoint records "
                 f"eval_acc {want}, acc_matrix {diag}")
    accs.append(acc)
# A check that could not pass by accident: the tasks' models differ.
if len(set(accs)) < 2:
    sys.exit(f"every task has accuracy {accs[0]}: too weak a run to tell models apart")
print("accuracies", " ".join(f"{a:.4f}" for a in accs))
PY
echo "ok: sotu predict --task T reproduces every task's recorded accuracy"

rc=0
"$SOTU_BIN" predict "$ckpt" --images "$work/tasks/t00.h5" --out "$work/none.h5" \
  > /dev/null 2> "$work/e1" || rc=$?
[[ $rc -eq 2 ]] && grep -q "is a CLR checkpoint (method clr): it needs --task T" "$work/e1" \
  || { cat "$work/e1"; fail "predict without --task: exit $rc"; }
[[ ! -e "$work/none.h5" ]] || fail "predict without --task wrote a file"
rc=0
"$SOTU_BIN" predict "$ckpt" --images "$work/tasks/t00.h5" --out "$work/none.h5" --task 7 \
  > /dev/null 2> "$work/e2" || rc=$?
[[ $rc -eq 3 ]] && grep -q "no task '7' (the checkpoint has 5: ${names[0]}," "$work/e2" \
  || { cat "$work/e2"; fail "predict --task 7: exit $rc"; }
echo "ok: predict on a CLR checkpoint without --task or with an unknown task fails with a reason"

rc=0
"$SOTU_BIN" merge "$work/run" --out "$work/m.h5" > /dev/null 2> "$work/e3" || rc=$?
[[ $rc -eq 2 ]] && grep -q "$work/run is a CLR run (method clr): its tasks ship modules, not deltas; nothing to merge" "$work/e3" \
  || { cat "$work/e3"; fail "merge on a CLR run: exit $rc"; }
grep -q "attribute\|patch" "$work/e3" && fail "merge on a CLR run read weights: $(cat "$work/e3")"
[[ ! -e "$work/m.h5" ]] || fail "merge on a CLR run wrote a file"
echo "ok: sotu merge on a CLR run says there is nothing to merge"

"$SOTU_BIN" -q eval "$ckpt" --tasks "$work/tasks/manifest.yaml" --out "$work/ev" \
  > "$work/ev1.out" || fail "eval"
grep -q "clr eval" "$work/ev1.out" && grep -q "^clr  *task_heads  TIL" "$work/ev1.out" \
  || { cat "$work/ev1.out"; fail "eval: table"; }
"$SOTU_PYTHON" - "$ckpt" "$work/ev/checkpoint.h5" "${names[@]}" <<'PY'
import sys
import h5py
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert b.attrs["format"] == "sotu-clr-checkpoint"
for name in sys.argv[3:]:
    x, y = a["tasks"][name].attrs, b["tasks"][name].attrs
    for k in ("eval_acc", "finetuned_acc", "frozen_acc"):
        if x[k] != y[k]:
            sys.exit(f"task {name}: {k} {y[k]} after sotu eval, {x[k]} in the run")
PY
mpiexec --oversubscribe -n 2 "$SOTU_BIN" -q eval "$ckpt" --tasks "$work/tasks/manifest.yaml" \
  > "$work/ev2.out" || fail "eval on 2 ranks"
diff -u <(grep -v "^checkpoint:" "$work/ev1.out") "$work/ev2.out" \
  || fail "eval on 2 ranks prints another table than serially"
echo "ok: sotu eval re-evaluates every CLR module to the run's accuracies (1 and 2 ranks)"
