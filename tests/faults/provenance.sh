#!/usr/bin/env bash
# Provenance of stored results (issue 14, defect 2), on the real binary
# (tiny ViT and ResNet, small fmnist5 tasks):
#  - `sotu train --resume` with another model.pretrained exits 2 naming
#    both weights files and a delta, and rewrites nothing (config.yaml,
#    deltas, checkpoint bitwise unchanged); under mpiexec -n 3 too;
#  - --resume with train.lr changed exits 2 listing `train.lr: 0.001 ->
#    0.0005`, nothing rewritten; with --retrain-changed every task is
#    retrained, config.yaml and the checkpoint's /tasks/*/lr say 5e-4, exit 0;
#  - a change of a key that trains nothing (eval.*) is accepted, no task
#    retrained;
#  - a task file changed since: exit 2 naming it; --retrain-changed retrains
#    only that task;
#  - a version-4 delta (no provenance) is redone with a message naming it;
#  - `sotu merge` of a run whose weights file was replaced since, or with
#    --set train.lr, exits 2 and leaves the checkpoint alone;
#  - an array element re-run with other settings exits 2 listing the key;
#  - CLR: a module trained from another backbone is refused on --resume.
set -euo pipefail
: "${SOTU_BIN:?}" "${SOTU_SOURCE_DIR:?}" "${SOTU_PYTHON:=/usr/bin/python3}" "${CLR_TASK_BIN:?}"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-prov.XXXXXX")
trap 'rm -rf "$work"' EXIT
mpi=(mpiexec --oversubscribe -n 3)
fail() { echo "FAIL: $*"; exit 1; }
events() { grep -c "\"event\":\"$2\"" "$1/metrics.jsonl" || true; }
sums() { (cd "$1" && sha256sum config.yaml deltas/*.sotud checkpoint.h5); }

"$SOTU_BIN" -q data fmnist --preset fmnist5 --out "$work/tasks" --train 96 --test 64
mkw() { "$SOTU_PYTHON" "$SOTU_SOURCE_DIR/tests/reference/make_random_weights.py" "$1" 28 1 4 32 2 2 64 10 "$2"; }
mkw "$work/vit.h5" 7
mkw "$work/other.h5" 8
cfg="$SOTU_SOURCE_DIR/examples/quickstart.yaml"
sets=(--set "data.manifest=$work/tasks/manifest.yaml" --set "model.pretrained=$work/vit.h5"
      --set train.epochs=1 --set train.batch_size=32 --set train.max_steps=4
      --set train.threads=1 --set train.warmup_steps=1 --set "eval.baselines=[]")
run="$work/run"
train() { "$SOTU_BIN" train "$cfg" "${sets[@]}" --set "output.dir=$run" "$@"; }

# The first run, on 3 ranks.
"${mpi[@]}" "$SOTU_BIN" -q train "$cfg" "${sets[@]}" --set "output.dir=$run" \
  > "$work/a.out" 2> "$work/a.err" || { cat "$work/a.err"; fail "first run"; }
sums "$run" > "$work/sums"
grep '"event":"run_start"' "$run/metrics.jsonl" |
  grep -q '"theta0_xxh64":"[0-9a-f]\{16\}".*"manifest_xxh64":"[0-9a-f]\{16\}".*"sotu_commit"' ||
  fail "run_start does not record the θ0 and manifest checksums"
"$SOTU_BIN" inspect "$run/deltas/t00-rot90-2cls.sotud" > "$work/inspect.out"
grep -q "model.pretrained $work/vit.h5" "$work/inspect.out" || fail "inspect: no pretrained path"
grep -q "train.lr: 0.001" "$work/inspect.out" || fail "inspect: no training settings"
"$SOTU_BIN" inspect "$run/checkpoint.h5" | grep -q "theta0      XXH64 [0-9a-f]\{16\}" ||
  fail "inspect checkpoint: no θ0 fingerprint"
echo "ok: deltas, checkpoint and metrics record θ0, settings and manifest"

# Another θ0: refused, serial and on 3 ranks, nothing rewritten.
rc=0
train --resume --set "model.pretrained=$work/other.h5" > "$work/b.out" 2> "$work/b.err" || rc=$?
[[ $rc -eq 2 ]] || { cat "$work/b.err"; fail "another θ0: exit $rc, expected 2"; }
grep -q "model.pretrained $work/other.h5 .* is not the θ0 that $run/deltas/t0.*\.sotud was trained from: it records $work/vit.h5" \
  "$work/b.err" || { cat "$work/b.err"; fail "another θ0: message does not name both files"; }
rc=0
"${mpi[@]}" "$SOTU_BIN" train "$cfg" "${sets[@]}" --set "output.dir=$run" --resume \
  --set "model.pretrained=$work/other.h5" > "$work/b3.out" 2> "$work/b3.err" || rc=$?
[[ $rc -eq 2 ]] || { cat "$work/b3.err"; fail "another θ0 on 3 ranks: exit $rc, expected 2"; }
grep -q "is not the θ0 that" "$work/b3.err" || fail "another θ0 on 3 ranks: no message"
sums "$run" | cmp -s - "$work/sums" || fail "another θ0: files were rewritten"
echo "ok: another θ0 refused (exit 2, serial and 3 ranks), nothing rewritten"

# Another learning rate: refused with the key, nothing rewritten.
rc=0
train --resume --set train.lr=5e-4 > "$work/c.out" 2> "$work/c.err" || rc=$?
[[ $rc -eq 2 ]] || { cat "$work/c.err"; fail "train.lr changed: exit $rc, expected 2"; }
grep -q "trained with other settings: train.lr: 0.001 -> 0.0005" "$work/c.err" ||
  { cat "$work/c.err"; fail "train.lr changed: the key is not listed"; }
grep -q -- "--retrain-changed" "$work/c.err" || fail "train.lr changed: no hint at the flag"
sums "$run" | cmp -s - "$work/sums" || fail "train.lr changed: files were rewritten"
echo "ok: train.lr changed refused (exit 2) listing train.lr: 0.001 -> 0.0005"

# A key that trains nothing: accepted, nothing retrained.
done0=$(events "$run" task_done)
train --resume --set eval.fit_per_task=50 > "$work/d.out" 2> "$work/d.err" ||
  { cat "$work/d.err"; fail "eval key changed: refused"; }
grep -q "resume: 5 of 5 tasks" "$work/d.err" || fail "eval key changed: deltas not kept"
[[ $(events "$run" task_done) -eq $done0 ]] || fail "eval key changed: tasks retrained"
grep -q "fit_per_task: 50" "$run/config.yaml" || fail "eval key changed: config.yaml not updated"
echo "ok: a change of eval.* is accepted without retraining"

# A version-4 delta (before provenance): redone, with a message.
cp "$SOTU_SOURCE_DIR/tests/data/delta/old_v4.sotud" "$run/deltas/t01-inv-2cls.sotud"
train --resume > "$work/e.out" 2> "$work/e.err" || { cat "$work/e.err"; fail "v4 delta: run failed"; }
grep -q "t01-inv-2cls.sotud: does not verify (.*format version 4, written by an older sotu.*); task t01-inv-2cls will be redone" \
  "$work/e.err" || { cat "$work/e.err"; fail "v4 delta: no message"; }
[[ $(events "$run" task_done) -eq $((done0 + 1)) ]] || fail "v4 delta: expected one task retrained"
echo "ok: a version-4 delta is redone with a message"

# --retrain-changed: every task retrained at the new lr, recorded as such.
train --resume --set train.lr=5e-4 --retrain-changed > "$work/f.out" 2> "$work/f.err" ||
  { cat "$work/f.err"; fail "--retrain-changed: run failed"; }
[[ $(grep -c "is retrained (--retrain-changed)" "$work/f.err") -eq 5 ]] ||
  { cat "$work/f.err"; fail "--retrain-changed: expected 5 tasks retrained"; }
[[ $(events "$run" task_done) -eq $((done0 + 6)) ]] || fail "--retrain-changed: task_done count"
grep -q "lr: 0.0005" "$run/config.yaml" || fail "--retrain-changed: config.yaml not updated"
"$SOTU_PYTHON" - "$run/checkpoint.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1]) as f:
    lrs = {t: f["tasks"][t].attrs["lr"] for t in f["tasks"]}
    assert len(lrs) == 5 and all(abs(v - 5e-4) < 1e-12 for v in lrs.values()), lrs
    assert "lr: 0.0005" in f.attrs["config"]
    assert len(f.attrs["theta0_xxh64"]) == 16 and f.attrs["model_pretrained"].endswith("vit.h5")
PY
echo "ok: --retrain-changed retrains the 5 tasks; config.yaml and /tasks/*/lr say 5e-4"
sets+=(--set train.lr=5e-4)

# A task file that changed since its delta: refused naming it; the flag
# retrains only that task.
cp "$work/tasks/t02.h5" "$work/t02.orig"
"$SOTU_PYTHON" - "$work/tasks/t02.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    img = f["train/images"]
    img[0] = 255 - img[0]
PY
sums "$run" > "$work/sums2"
rc=0
train --resume > "$work/g.out" 2> "$work/g.err" || rc=$?
[[ $rc -eq 2 ]] || { cat "$work/g.err"; fail "changed task file: exit $rc, expected 2"; }
grep -q "task file $work/tasks/t02.h5 of task t02-vflip-2cls has changed" "$work/g.err" ||
  { cat "$work/g.err"; fail "changed task file: not named"; }
sums "$run" | cmp -s - "$work/sums2" || fail "changed task file: files were rewritten"
done1=$(events "$run" task_done)
train --resume --retrain-changed > "$work/h.out" 2> "$work/h.err" ||
  { cat "$work/h.err"; fail "changed task file, --retrain-changed: run failed"; }
[[ $(events "$run" task_done) -eq $((done1 + 1)) ]] || fail "changed task file: expected 1 retrained"
echo "ok: a changed task file is refused (exit 2), --retrain-changed retrains only its task"

# sotu merge: the weights file config.yaml names was replaced, or a training
# key is overridden: exit 2, the checkpoint untouched.
sha256sum "$run/checkpoint.h5" > "$work/ck.sum"
cp "$work/vit.h5" "$work/vit.keep"
cp "$work/other.h5" "$work/vit.h5"
rc=0
"$SOTU_BIN" merge "$run" > "$work/m.out" 2> "$work/m.err" || rc=$?
[[ $rc -eq 2 ]] || { cat "$work/m.err"; fail "merge with replaced weights: exit $rc, expected 2"; }
grep -q "is not the θ0 that $run/deltas/" "$work/m.err" || { cat "$work/m.err"; fail "merge: no θ0 message"; }
cp "$work/vit.keep" "$work/vit.h5"
rc=0
"${mpi[@]}" "$SOTU_BIN" merge "$run" --set train.epochs=2 > "$work/m2.out" 2> "$work/m2.err" || rc=$?
[[ $rc -eq 2 ]] || { cat "$work/m2.err"; fail "merge with train.epochs: exit $rc, expected 2"; }
grep -q "train.epochs: 1 -> 2" "$work/m2.err" || { cat "$work/m2.err"; fail "merge: key not listed"; }
sha256sum -c --quiet "$work/ck.sum" || fail "merge refused but the checkpoint changed"
echo "ok: sotu merge refuses deltas of another θ0 or other settings (exit 2)"

# Array mode keeps an element's stored deltas: the same comparison applies.
arr="$work/arr"
"$SOTU_BIN" -q train "$cfg" "${sets[@]}" --set "output.dir=$arr" --array-index 0 \
  > "$work/p.out" 2> "$work/p.err" || { cat "$work/p.err"; fail "array element"; }
rc=0
"$SOTU_BIN" -q train "$cfg" "${sets[@]}" --set "output.dir=$arr" --array-index 0 \
  --set train.label_smoothing=0.1 > "$work/q.out" 2> "$work/q.err" || rc=$?
[[ $rc -eq 2 ]] || { cat "$work/q.err"; fail "array element, other settings: exit $rc, expected 2"; }
grep -q "train.label_smoothing: 0 -> 0.1" "$work/q.err" || { cat "$work/q.err"; fail "array: key"; }
echo "ok: an array element refuses its stored deltas trained with other settings (exit 2)"

# CLR: a module trained from another backbone is refused on --resume.
"$CLR_TASK_BIN" --backbone "$work/resnet.h5" 8 28 10
cp "$work/resnet.h5" "$work/resnet-a.h5"
cat > "$work/clr.yaml" <<EOF
method: clr
model: {pretrained: resnet.h5}
data: {manifest: tasks/manifest.yaml}
train: {epochs: 1, batch_size: 32, lr: 3.0e-2, weight_decay: 0.0, warmup_steps: 1, threads: 1,
        max_steps: 2}
eval: {baselines: [frozen]}
output: {dir: $work/clr}
EOF
cp "$work/t02.orig" "$work/tasks/t02.h5"
"$SOTU_BIN" -q train "$work/clr.yaml" > "$work/k.out" 2> "$work/k.err" ||
  { cat "$work/k.err"; fail "CLR run"; }
"$SOTU_PYTHON" - "$work/resnet.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    def first(g):
        for k, v in g.items():
            if isinstance(v, h5py.Dataset) and v.dtype.kind == "f":
                return v
            if isinstance(v, h5py.Group) and (d := first(v)) is not None:
                return d
    d = first(f)
    d[...] = d[...] + 0.25
PY
rc=0
"$SOTU_BIN" train "$work/clr.yaml" --resume > "$work/l.out" 2> "$work/l.err" || rc=$?
[[ $rc -eq 2 ]] || { cat "$work/l.err"; fail "CLR with another backbone: exit $rc, expected 2"; }
grep -q "is not the θ0 that $work/clr/modules/t0.*\.clrm was trained from" "$work/l.err" ||
  { cat "$work/l.err"; fail "CLR: no θ0 message"; }
cp "$work/resnet-a.h5" "$work/resnet.h5"
"$SOTU_BIN" train "$work/clr.yaml" --resume > "$work/n.out" 2> "$work/n.err" ||
  { cat "$work/n.err"; fail "CLR resume with the original backbone"; }
grep -q "resume: 10 jobs" "$work/n.err" ||
  { cat "$work/n.err"; fail "CLR: modules and baselines not kept with the original backbone"; }
"$SOTU_BIN" train "$work/clr.yaml" --resume --set train.lr=1e-2 > "$work/o.out" 2> "$work/o.err" &&
  fail "CLR: other settings accepted"
grep -q "train.lr: 0.03 -> 0.01" "$work/o.err" || { cat "$work/o.err"; fail "CLR: key not listed"; }
"$SOTU_BIN" train "$work/clr.yaml" --resume --set train.lr=1e-2 --retrain-changed \
  > "$work/o2.out" 2> "$work/o2.err" || { cat "$work/o2.err"; fail "CLR --retrain-changed"; }
[[ $(grep -c "task t0[^ ]* is retrained (--retrain-changed)" "$work/o2.err") -eq 5 &&
   $(grep -c "frozen baseline is retrained (--retrain-changed)" "$work/o2.err") -eq 5 ]] ||
  { cat "$work/o2.err"; fail "CLR --retrain-changed: expected 5 modules and 5 baselines retrained"; }
echo "ok: CLR modules of another backbone refused (exit 2), kept with the original;"
echo "    other settings refused, --retrain-changed retrains modules and baselines"
echo "provenance: all cases passed"
