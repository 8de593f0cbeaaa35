#!/usr/bin/env bash
# Wrong or silent behaviour found alongside issue 14 (defect 9), each now
# refused at the start with a message naming what is wrong, or shown as it is
# (tiny ViT, small fmnist5 tasks, serial runs):
#  - a manifest whose classes differ from a task file's: exit 3 before any
#    training, naming task and file;
#  - a task file without test images: exit 3 at the start of train and of
#    eval, naming the task (never an accuracy of -1);
#  - a format_version newer than this sotu reads, in a task file, a weights
#    file and a checkpoint: exit 3 naming the file and both versions;
#  - an empty configuration file: exit 2 naming it; method: sequential:
#    exit 2 saying it is a baseline;
#  - `--set a=1 b=2`: exit 2 saying each override needs its own --set;
#  - a run stopped by SIGTERM: the tasks it did not train are "not run" in
#    the checkpoint (status not_run) and in `sotu inspect`, not "failed".
set -euo pipefail
source "$SOTU_SOURCE_DIR/tests/slurm/common.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-inputs.XXXXXX")
pid=
cleanup() {
  [[ -n $pid ]] && kill -9 "$pid" 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
sotu_tiny_setup "$work"
cfg=$work/tiny.yaml
# expect NAME RC NEEDLE... -- CMD...: exit status RC and every NEEDLE in stderr.
expect() {
  local name=$1 want=$2 rc=0
  shift 2
  local needles=()
  while [[ $1 != -- ]]; do needles+=("$1"); shift; done
  shift
  "$@" > "$work/$name.out" 2> "$work/$name.err" || rc=$?
  [[ $rc -eq $want ]] || { cat "$work/$name.err"; fail "$name: exit $rc, expected $want"; }
  for n in "${needles[@]}"; do
    grep -qF -- "$n" "$work/$name.err" || { cat "$work/$name.err"; fail "$name: no '$n' in the message"; }
  done
  echo "ok: $name -> exit $rc: $(tail -n 1 "$work/$name.err" | cut -c 1-160)"
}
no_training() { # DIR: no delta was trained into DIR
  [[ $(ls "$1/deltas" 2> /dev/null | grep -c '\.sotud$') -eq 0 ]] || fail "$1: tasks were trained"
}

# The manifest says 3 classes, the task file 2.
cp -r "$work/tasks" "$work/tasks-cls"
sed -i 's/{name: t02-vflip-2cls, file: t02.h5, classes: 2/{name: t02-vflip-2cls, file: t02.h5, classes: 3/' \
  "$work/tasks-cls/manifest.yaml"
grep -q "classes: 3" "$work/tasks-cls/manifest.yaml" || fail "could not edit the manifest"
expect classes 3 "t02-vflip-2cls" "tasks-cls/t02.h5" "lists classes 3" "has classes 2" -- \
  "$SOTU_BIN" -q train "$cfg" --set "data.manifest=$work/tasks-cls/manifest.yaml" \
  --set "output.dir=$work/classes"
no_training "$work/classes"

# A task file without test images.
cp -r "$work/tasks" "$work/tasks-notest"
"$SOTU_PYTHON" - "$work/tasks-notest/t04.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    shape = f["test/images"].shape
    del f["test/images"], f["test/labels"]
    f["test/images"] = np.zeros((0,) + shape[1:], np.uint8)
    f["test/labels"] = np.zeros((0,), np.int32)
PY
expect notest 3 "t04-pperm-2cls" "tasks-notest/t04.h5" "no test images" -- \
  "$SOTU_BIN" -q train "$cfg" --set "data.manifest=$work/tasks-notest/manifest.yaml" \
  --set "output.dir=$work/notest"
no_training "$work/notest"
"$SOTU_BIN" -q train "$cfg" > "$work/good.out" 2> "$work/good.err" \
  || { cat "$work/good.err"; fail "the good run"; }
expect notest_eval 3 "t04-pperm-2cls" "no test images" -- \
  "$SOTU_BIN" -q eval "$work/run/checkpoint.h5" --tasks "$work/tasks-notest/manifest.yaml"
grep -q -- "-1.0000" "$work/notest_eval.out" && fail "eval printed -1.0000"

# format_version newer than this sotu reads.
cp -r "$work/tasks" "$work/tasks-v2"
cp "$work/vit.h5" "$work/vit-v2.h5"
cp "$work/run/checkpoint.h5" "$work/ck-v2.h5"
"$SOTU_PYTHON" - "$work/tasks-v2/t01.h5" "$work/vit-v2.h5" "$work/ck-v2.h5" <<'PY'
import sys, h5py, numpy as np
for p in sys.argv[1:]:
    with h5py.File(p, "r+") as f:
        f.attrs["format_version"] = np.int32(2)
PY
expect v2_task 3 "tasks-v2/t01.h5" "format_version 2" "up to 1" -- \
  "$SOTU_BIN" -q train "$cfg" --set "data.manifest=$work/tasks-v2/manifest.yaml" \
  --set "output.dir=$work/v2task"
no_training "$work/v2task"
expect v2_task_inspect 3 "tasks-v2/t01.h5" "format_version 2" -- \
  "$SOTU_BIN" inspect "$work/tasks-v2/t01.h5"
expect v2_weights 3 "vit-v2.h5" "format_version 2" "up to 1" -- \
  "$SOTU_BIN" -q train "$cfg" --set "model.pretrained=$work/vit-v2.h5" --set "output.dir=$work/v2w"
no_training "$work/v2w"
expect v2_weights_inspect 3 "vit-v2.h5" "format_version 2" -- "$SOTU_BIN" inspect "$work/vit-v2.h5"
expect v2_checkpoint 3 "ck-v2.h5" "format_version" "2" -- "$SOTU_BIN" inspect "$work/ck-v2.h5"
expect v2_checkpoint_export 3 "ck-v2.h5" "format_version" -- \
  "$SOTU_BIN" export safetensors "$work/ck-v2.h5" "$work/x.safetensors" --task t00-rot90-2cls
[[ ! -e "$work/x.safetensors" ]] || fail "export of a newer checkpoint wrote a file"

# Configuration and command line.
: > "$work/empty.yaml"
expect empty_config 2 "empty.yaml" "the file is empty" -- "$SOTU_BIN" train "$work/empty.yaml"
expect sequential 2 "method" "sequential" "baseline" -- \
  "$SOTU_BIN" train "$cfg" --set method=sequential
expect stray_set 2 "train.epochs=1" "each override needs its own --set" -- \
  "$SOTU_BIN" train "$cfg" --set train.lr=1e-3 train.epochs=1

# A run stopped by SIGTERM: the tasks not trained are "not run".
"$SOTU_BIN" train "$cfg" --set train.epochs=400 --set train.max_steps=300 \
  --set "output.dir=$work/stop" > "$work/stop.out" 2> "$work/stop.err" &
pid=$!
for _ in $(seq 1200); do
  ls "$work/stop/deltas/"*.sotud > /dev/null 2>&1 && break
  sleep 0.05
done
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[[ $rc -eq 75 ]] || { tail "$work/stop.err"; fail "stopped run: exit $rc, expected 75"; }
"$SOTU_BIN" inspect "$work/stop/checkpoint.h5" > "$work/stop.inspect"
n_done=$(ls "$work/stop/deltas/"*.sotud | wc -l)
[[ $n_done -lt 5 ]] || fail "every task finished before the stop took effect"
[[ $(grep -c " not_run " "$work/stop.inspect") -eq $((5 - n_done)) ]] \
  || { cat "$work/stop.inspect"; fail "inspect does not show $((5 - n_done)) tasks not run"; }
grep -qE '  failed( \(no head\))?$' "$work/stop.inspect" && fail "inspect shows failed tasks"
grep -q "$((5 - n_done)) not run" "$work/stop.inspect" || { cat "$work/stop.inspect"; fail "no 'not run' count"; }
"$SOTU_PYTHON" - "$work/stop/checkpoint.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1]) as f:
    st = sorted(f["tasks"][t].attrs["status"] for t in f["tasks"])
    assert "failed" not in st and "not_run" in st and int(f.attrs["partial"]) == 1, st
PY
echo "ok: stopped run: $((5 - n_done)) tasks shown as not run (not failed) in inspect and the checkpoint"
echo "inputs_status passed in $(elapsed)"
