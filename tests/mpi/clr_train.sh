#!/usr/bin/env bash
# `sotu train` with method clr on 3 ranks (tiny ResNet-18, small fmnist5 tasks):
#  - a module corrupted in transit (SOTU_FAULT_CORRUPT_MODULE) is rejected by
#    the coordinator, its task marked failed (task_failed, checkpoint status),
#    the other tasks and the frozen baseline finish, exit 3;
#  - the checkpoint, read with h5py, loads into PyTorch task by task
#    (backbone + module) and reproduces the coordinator's accuracies
#    (tests/mpi/check_clr_checkpoint.py);
#  - --resume (one rank) trains only the failed module;
#  - corrupt files in modules/ (a flipped byte, a truncated module, a broken
#    baseline result) are rejected on --resume and those jobs redone;
#  - sotu inspect describes the checkpoint and a module, and fails (exit 3)
#    on a damaged module;
#  - reusing the directory without --resume, and a ViT backbone, exit 2.
set -euo pipefail
: "${SOTU_BIN:?}" "${SOTU_SOURCE_DIR:?}" "${SOTU_PYTHON:=/usr/bin/python3}" "${CLR_TASK_BIN:?}"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-clr.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
events() { grep -c "\"event\":\"$2\"" "$1/metrics.jsonl" || true; }
check() { "$SOTU_PYTHON" "$SOTU_SOURCE_DIR/tests/mpi/check_clr_checkpoint.py" "$@"; }

"$SOTU_BIN" -q data fmnist --preset fmnist5 --out "$work/tasks" --train 96 --test 64
"$CLR_TASK_BIN" --backbone "$work/resnet.h5" 8 28 10
cat > "$work/clr.yaml" <<EOF
method: clr
model: {pretrained: resnet.h5}
data: {manifest: tasks/manifest.yaml}
train: {epochs: 3, batch_size: 32, lr: 3.0e-2, weight_decay: 0.0, warmup_steps: 1, threads: 1}
clr: {variant: clr}
eval: {baselines: [frozen]}
output: {dir: $work/run}
EOF
cfg="$work/clr.yaml"
bad=t02-vflip-2cls

# A module damaged in transit: rejected, its task failed, the run carries on.
rc=0
SOTU_FAULT_CORRUPT_MODULE=$bad mpiexec --oversubscribe -n 3 "$SOTU_BIN" -q train "$cfg" \
  > "$work/a.out" 2> "$work/a.err" || rc=$?
[[ $rc -eq 3 ]] || { cat "$work/a.err"; fail "corrupt module: exit $rc, expected 3"; }
grep -q "task $bad (module) failed on rank [12]: module of task $bad from rank [12]:.*checksum" \
  "$work/a.err" || { cat "$work/a.err"; fail "corrupt module: the log does not name task and problem"; }
[[ $(events "$work/run" task_failed) -eq 1 ]] || fail "corrupt module: expected 1 task_failed"
[[ $(events "$work/run" task_done) -eq 9 ]] || fail "corrupt module: expected 4 modules + 5 frozen"
[[ ! -e "$work/run/modules/$bad.clrm" ]] || fail "the rejected module was persisted"
grep -q "CLR (clr) per task:.*% of the" "$work/a.out" || fail "no cost line in the final table"
grep -q "parameters added per task, % of the backbone" "$work/run/report.md" || fail "report.md"
grep -q "CLR cost per task" "$work/run/report.html" || fail "report.html"
check "$work/run/checkpoint.h5" "$work/tasks" 4 "$bad"
echo "ok: a corrupt module is rejected and its task failed (exit 3); the checkpoint loads in PyTorch"

# --resume on one rank trains only the failed module.
rc=0
"$SOTU_BIN" train "$cfg" --resume > "$work/b.out" 2> "$work/b.err" || rc=$?
[[ $rc -eq 0 ]] || { cat "$work/b.err"; fail "resume: exit $rc"; }
grep -q "resume: 9 jobs" "$work/b.err" || { cat "$work/b.err"; fail "resume: did not keep 9 jobs"; }
[[ $(events "$work/run" task_done) -eq 10 ]] || fail "resume trained more than the failed module"
echo "ok: --resume trains only the failed module"

# Damaged files on disk are rejected and redone.
"$SOTU_PYTHON" - "$work/run/modules" <<'PY'
import os, sys
d = sys.argv[1]
p = os.path.join(d, "t01-inv-2cls.clrm")
b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 0x40; open(p, "wb").write(b)
p = os.path.join(d, "t03-gauss5-2cls.clrm")
b = open(p, "rb").read(); open(p, "wb").write(b[: len(b) - 100])
open(os.path.join(d, "t00-rot90-2cls.frozen.json"), "w").write("{")
PY
rc=0
mpiexec --oversubscribe -n 3 "$SOTU_BIN" train "$cfg" --resume > "$work/c.out" 2> "$work/c.err" \
  || rc=$?
[[ $rc -eq 0 ]] || { cat "$work/c.err"; fail "resume over damaged files: exit $rc"; }
grep -q "t01-inv-2cls.clrm: does not verify" "$work/c.err" || { cat "$work/c.err"; fail "flipped module not reported"; }
grep -q "t03-gauss5-2cls.clrm: does not verify.*truncated" "$work/c.err" \
  || fail "truncated module not reported"
grep -q "t00-rot90-2cls.frozen.json: not a whole frozen result" "$work/c.err" \
  || fail "broken baseline result not reported"
[[ $(events "$work/run" task_done) -eq 13 ]] || fail "expected exactly the 3 damaged jobs redone"
check "$work/run/checkpoint.h5" "$work/tasks" 5
echo "ok: damaged modules and results on disk are redone on --resume"

"$SOTU_BIN" inspect "$work/run/checkpoint.h5" > "$work/i1" || fail "inspect checkpoint"
grep -q "final avg acc (TIL): clr" "$work/i1" && grep -q "parameters added per task" "$work/i1" \
  || { cat "$work/i1"; fail "inspect checkpoint: summary"; }
"$SOTU_BIN" inspect "$work/run/modules/$bad.clrm" > "$work/i2" || fail "inspect module"
grep -q "task        2 '$bad'" "$work/i2" && grep -q "verified" "$work/i2" \
  || { cat "$work/i2"; fail "inspect module: header"; }
cp "$work/run/modules/$bad.clrm" "$work/flip.clrm"
printf '\x7f' | dd of="$work/flip.clrm" bs=1 seek=$(( $(stat -c %s "$work/flip.clrm") - 9 )) \
  conv=notrunc 2> /dev/null
rc=0
"$SOTU_BIN" inspect "$work/flip.clrm" > /dev/null 2> "$work/i3" || rc=$?
[[ $rc -eq 3 ]] && grep -q "flip.clrm: payload does not decompress" "$work/i3" \
  || { cat "$work/i3"; fail "inspect of a damaged module: exit $rc"; }
echo "ok: sotu inspect reads the CLR checkpoint and modules, and rejects a damaged module"

rc=0
"$SOTU_BIN" -q train "$cfg" > "$work/d.out" 2> "$work/d.err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "add --resume" "$work/d.err" || fail "reused output.dir: exit $rc"
"$SOTU_PYTHON" "$SOTU_SOURCE_DIR/tests/reference/make_random_weights.py" \
  "$work/vit.h5" 28 1 4 32 2 2 64 10 7
rc=0
"$SOTU_BIN" -q train "$cfg" --set "model.pretrained=$work/vit.h5" --set "output.dir=$work/v" \
  > "$work/e.out" 2> "$work/e.err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "holds a vit; method clr needs a ResNet backbone" "$work/e.err" \
  || { cat "$work/e.err"; fail "ViT backbone: exit $rc"; }
echo "ok: a reused output.dir and a ViT backbone exit 2 with a reason"
