#!/usr/bin/env bash
# Fault injection on `sotu train` (tiny ViT, small fmnist5 tasks):
#  - divergence: train.lr=1e30 makes every task's loss non-finite; each task
#    is reported failed (task_failed in metrics.jsonl, "loss is nan" in the log),
#    the run still writes its checkpoint and exits 3; --resume with a sane
#    lr trains the failed tasks and exits 0;
#  - divergence in exactly one task (SOTU_FAULT_DIVERGE_TASK): that task is
#    reported failed, the other four merge, exit 3; --resume trains only it;
#  - one bad task file (labels out of range): that task fails, the other
#    four train and merge, exit 3;
#  - a worker rank killed with SIGKILL during `mpiexec -n 3`: the job ends
#    within 60 s (no hang), non-zero; --resume finishes with all 5 tasks;
#  - the coordinator (rank 0) killed: same.
set -euo pipefail
: "${SOTU_BIN:?}" "${SOTU_SOURCE_DIR:?}" "${SOTU_PYTHON:=/usr/bin/python3}"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-faults.XXXXXX")
launcher=
cleanup() {
  [[ -n $launcher ]] && kill -9 "$launcher" $(ps -o pid= --ppid "$launcher") 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mpi=(mpiexec --oversubscribe)

"$SOTU_BIN" -q data fmnist --preset fmnist5 --out "$work/tasks" --train 96 --test 64
"$SOTU_PYTHON" "$SOTU_SOURCE_DIR/tests/reference/make_random_weights.py" \
  "$work/vit.h5" 28 1 4 32 2 2 64 10 7
sets=(--set "data.manifest=$work/tasks/manifest.yaml" --set "model.pretrained=$work/vit.h5"
      --set train.epochs=1 --set train.batch_size=32 --set train.max_steps=3
      --set train.threads=1 --set train.warmup_steps=1 --set sotu.keep=0.3)
cfg="$SOTU_SOURCE_DIR/examples/quickstart.yaml"
fail() { echo "FAIL: $*"; exit 1; }
events() { grep -c "\"event\":\"$2\"" "$1/metrics.jsonl" || true; }

# Divergence in every task.
rc=0
"$SOTU_BIN" -q train "$cfg" "${sets[@]}" --set train.lr=1e30 --set "output.dir=$work/nan" \
  > "$work/nan.out" 2> "$work/nan.err" || rc=$?
[[ $rc -eq 3 ]] || { cat "$work/nan.err"; fail "divergent run: exit $rc, expected 3"; }
[[ $(events "$work/nan" task_failed) -eq 5 ]] || fail "divergent run: expected 5 task_failed"
grep -q "failed on rank" "$work/nan.err" || fail "divergent run: no failed-task line in the log"
grep -q "loss is nan" "$work/nan.err" || fail "divergent run: the log does not say why"
rc=0
"$SOTU_BIN" -q train "$cfg" "${sets[@]}" --set "output.dir=$work/nan" --resume \
  > "$work/nan2.out" 2> "$work/nan2.err" || rc=$?
[[ $rc -eq 0 ]] || { cat "$work/nan2.err"; fail "resume after divergence: exit $rc"; }
echo "ok: divergent tasks reported failed (exit 3), --resume trains them"

# Divergence in exactly one task (fault hook): reported failed, the rest merge.
rc=0
SOTU_FAULT_DIVERGE_TASK=t03-gauss5-2cls "${mpi[@]}" -n 3 "$SOTU_BIN" -q train "$cfg" "${sets[@]}" \
  --set "output.dir=$work/nan1" > "$work/nan1.out" 2> "$work/nan1.err" || rc=$?
[[ $rc -eq 3 ]] || { cat "$work/nan1.err"; fail "one divergent task: exit $rc, expected 3"; }
[[ $(events "$work/nan1" task_failed) -eq 1 ]] || fail "one divergent task: expected 1 task_failed"
[[ $(events "$work/nan1" task_done) -eq 4 ]] || fail "one divergent task: expected 4 task_done"
grep -q "t03-gauss5-2cls.*loss is" "$work/nan1.err" || fail "one divergent task: not named in the log"
"$SOTU_PYTHON" - "$work/nan1/checkpoint.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1]) as f:
    assert f["tasks/t03-gauss5-2cls"].attrs["status"] == "failed"
    assert "t03-gauss5-2cls" not in f["heads"], "a failed task's head was stored"
    assert len(f["heads"]) == 4
PY
rc=0
"$SOTU_BIN" -q train "$cfg" "${sets[@]}" --set "output.dir=$work/nan1" --resume \
  > "$work/nan1b.out" 2> "$work/nan1b.err" || rc=$?
[[ $rc -eq 0 ]] || { cat "$work/nan1b.err"; fail "resume after one divergent task: exit $rc"; }
[[ $(events "$work/nan1" task_done) -eq 5 ]] || fail "resume trained more than the failed task"
echo "ok: one divergent task reported failed, 4 merged (exit 3), --resume trains only it"

# One task file with a label out of range.
cp -r "$work/tasks" "$work/tasks-bad"
"$SOTU_PYTHON" - "$work/tasks-bad/t02.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f["train/labels"][0] = 7
PY
rc=0
"$SOTU_BIN" -q train "$cfg" "${sets[@]}" --set "data.manifest=$work/tasks-bad/manifest.yaml" \
  --set "output.dir=$work/bad" > "$work/bad.out" 2> "$work/bad.err" || rc=$?
[[ $rc -eq 3 ]] || { cat "$work/bad.err"; fail "bad task file: exit $rc, expected 3"; }
[[ $(events "$work/bad" task_failed) -eq 1 ]] || fail "bad task file: expected 1 task_failed"
[[ $(events "$work/bad" task_done) -eq 4 ]] || fail "bad task file: expected 4 task_done"
[[ -s "$work/bad/checkpoint.h5" ]] || fail "bad task file: no checkpoint of the 4 good tasks"
grep -q "t02.h5" "$work/bad.err" || fail "bad task file: the error does not name it"
echo "ok: one bad task file fails that task, the other 4 merge (exit 3)"

# SIGKILL one rank of a 3-rank run once it has finished a task.
kill_rank() { # rank name
  local rank=$1 name=$2 slow=(--set train.max_steps=60)
  "${mpi[@]}" -n 3 "$SOTU_BIN" -q train "$cfg" "${sets[@]}" "${slow[@]}" \
    --set "output.dir=$work/$name" > "$work/$name.out" 2> "$work/$name.err" &
  launcher=$!
  local victim="" t0=$SECONDS
  while kill -0 $launcher 2> /dev/null && [[ -z $victim ]] && ((SECONDS - t0 < 120)); do
    if [[ $(ls "$work/$name/deltas" 2> /dev/null | grep -c '\.sotud$') -ge 1 ]]; then
      for p in $(ps -o pid= --ppid $launcher); do
        if tr '\0' '\n' < "/proc/$p/environ" 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$rank"; then
          victim=$p
        fi
      done
    fi
    sleep 0.2
  done
  [[ -n $victim ]] || fail "$name: rank $rank not found while the run was going"
  kill -9 "$victim"
  local t1=$SECONDS rc=0
  while kill -0 $launcher 2> /dev/null && ((SECONDS - t1 < 60)); do sleep 0.5; done
  if kill -0 $launcher 2> /dev/null; then
    kill -9 $launcher
    fail "$name: job still running 60 s after rank $rank was killed"
  fi
  wait $launcher || rc=$?
  launcher=
  [[ $rc -ne 0 ]] || fail "$name: job exited 0 after rank $rank was killed"
  echo "ok: rank $rank killed, job ended in $((SECONDS - t1)) s with exit $rc"
  "${mpi[@]}" -n 3 "$SOTU_BIN" -q train "$cfg" "${sets[@]}" "${slow[@]}" \
    --set "output.dir=$work/$name" --resume > "$work/$name.res.out" 2> "$work/$name.res.err" ||
    { cat "$work/$name.res.err"; fail "$name: --resume failed"; }
  [[ $(ls "$work/$name/deltas" | grep -c '\.sotud$') -eq 5 ]] || fail "$name: not 5 deltas"
  [[ -s "$work/$name/checkpoint.h5" ]] || fail "$name: no checkpoint after --resume"
  echo "ok: --resume after killing rank $rank finished all 5 tasks"
}
kill_rank 2 killworker
kill_rank 0 killcoord
