#!/usr/bin/env bash
# A worker that stops answering (SIGSTOP mid-task) in `mpiexec -n 3 sotu
# train` with a small mpi.task_timeout (coordinator/dispatch.h):
#  - stopped for good: the log names the late rank and task, the task is
#    trained again by rank 1, the run evaluates on ranks 0 and 1 and ends
#    with exit status 0 (MPI_Abort(0): MPI_Finalize would wait for rank 2,
#    which the abort ends), merged weights bitwise equal to an uninterrupted
#    run's; while rank 1 waits for rank 2's task to become late, neither
#    rank 0 nor rank 1 spins (CPU time from /proc, 1-s slices);
#  - stopped, then continued once its task was handed again (rank 1, which
#    got it, held until rank 2's result is in): the second result is
#    compared with the kept one ("identical ... dropped"), never merged
#    twice; the run ends normally, bitwise equal again.
set -euo pipefail
source "$SOTU_SOURCE_DIR/tests/slurm/common.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-hung.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" $(pgrep -P "$p") 2> /dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
sotu_tiny_setup "$work"
sets=(--set train.epochs=400 --set train.max_steps=150)
mpi=(mpiexec --oversubscribe -n 3)
# mpi.task_timeout of the stopped case: longer than rank 1 needs for the
# other four tasks (raise it for slow builds, e.g. ASan: HUNG_TIMEOUT=120).
timeout=${HUNG_TIMEOUT:-25}

"${mpi[@]}" "$SOTU_BIN" -q train "$work/tiny.yaml" "${sets[@]}" --set "output.dir=$work/ref" \
  > "$work/ref.out" 2> "$work/ref.err" || { cat "$work/ref.err"; exit 1; }
echo "$(elapsed): uninterrupted run done"

# rank_pid LAUNCHER RANK: the pid of that rank among the launcher's children.
rank_pid() {
  for c in $(pgrep -P "$1"); do
    if tr '\0' '\n' < "/proc/$c/environ" 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
      echo "$c"
      return
    fi
  done
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system, 1/100 s
hz=$(getconf CLK_TCK)

# start NAME TIMEOUT: the run in the background, rank 2 stopped at its first
# task; sets pid, r0, r1, r2 and late_task.
start() {
  "${mpi[@]}" "$SOTU_BIN" train "$work/tiny.yaml" "${sets[@]}" --set "mpi.task_timeout=$2" \
    --set "output.dir=$work/$1" > "$work/$1.out" 2> "$work/$1.err" &
  pid=$!
  pids+=("$pid")
  late_task=
  for _ in $(seq 2400); do
    late_task=$(sed -n 's/^\[sotu r2 [0-9.]*s\] task \([^ ]*\) ([0-9]*\/5) starts$/\1/p' \
      "$work/$1.err" | head -n 1)
    [[ -n $late_task ]] && break
    sleep 0.05
  done
  [[ -n $late_task ]] || fail "$1: rank 2 never started a task"
  r0=$(rank_pid "$pid" 0) r1=$(rank_pid "$pid" 1) r2=$(rank_pid "$pid" 2)
  kill -STOP "$r2"
  echo "$(elapsed): $1: rank 2 (pid $r2) stopped during task $late_task"
}

# finish NAME STATUS: waits (at most 240 s) for the run, checks its status,
# 5 deltas and bitwise equality with the uninterrupted run.
finish() {
  local rc=0
  for _ in $(seq 2400); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2> /dev/null && fail "$1: still running 240 s later (hung)"
  wait "$pid" || rc=$?
  [[ $rc -eq $2 ]] || { tail -n 30 "$work/$1.err"; fail "$1: exit status $rc, expected $2"; }
  [[ $(ls "$work/$1/deltas/"*.sotud | wc -l) -eq 5 ]] || fail "$1: not 5 deltas"
  "$SOTU_PYTHON" - "$work/ref" "$work/$1" <<'PY'
import sys
import h5py
import numpy as np
def merged(run):
    with h5py.File(f"{run}/checkpoint.h5") as f:
        return {n: v[()] for n, v in f["merged"].items()}
ref, got = merged(sys.argv[1]), merged(sys.argv[2])
bad = [n for n in ref if not np.array_equal(ref[n], got[n])]
assert not bad, f"merged weights differ from the uninterrupted run in {bad[:3]}"
PY
  echo "$(elapsed): $1: exit $rc, 5 tasks, merged weights bitwise equal to the uninterrupted run"
}

# 1. Stopped for good.
start stopped "$timeout"
# Rank 1 trains the other four tasks, then waits for rank 2's to be late:
# measure rank 0 and rank 1 in 1-s slices until the task is handed again.
for _ in $(seq 2400); do
  [[ $(ls "$work/stopped/deltas/"*.sotud 2> /dev/null | wc -l) -ge 4 ]] && break
  sleep 0.05
done
slices=0
while ! grep -q "is late" "$work/stopped.err"; do
  a0=$(ticks "$r0") a1=$(ticks "$r1")
  sleep 1
  grep -q "is late" "$work/stopped.err" && break
  b0=$(ticks "$r0") b1=$(ticks "$r1")
  echo "  idle second: rank 0 used $((b0 - a0))/$hz, rank 1 $((b1 - a1))/$hz of a core"
  ((b0 - a0 <= hz / 5)) || fail "rank 0 spins while waiting ($((b0 - a0))/$hz s of CPU in 1 s)"
  ((b1 - a1 <= hz / 5)) || fail "rank 1 spins while waiting ($((b1 - a1))/$hz s of CPU in 1 s)"
  slices=$((slices + 1))
done
((slices >= 2)) || fail "only $slices idle seconds measured before the timeout (machine too loaded?)"
finish stopped 0
grep -q "task $late_task on rank 2 is late: running [0-9]*s, over mpi.task_timeout ${timeout}s" \
  "$work/stopped.err" || fail "the log does not name rank 2 and task $late_task as late"
grep -q "task $late_task handed again, to rank 1" "$work/stopped.err" || fail "not handed again"
grep -q "rank 2 has not answered for [0-9]*s (task $late_task, done by another rank)" \
  "$work/stopped.err" || fail "the log does not say the run went on without rank 2"
"$SOTU_PYTHON" - "$work/stopped/metrics.jsonl" "$late_task" <<'PY'
import json, sys
ev = [json.loads(line) for line in open(sys.argv[1])]
def has(name, **kv):
    return any(e["event"] == name and all(e.get(k) == v for k, v in kv.items()) for e in ev)
assert has("task_late", rank=2, task=sys.argv[2], offered_again=True), "no task_late event for rank 2"
assert has("rank_lost", rank=2, task=sys.argv[2]), "no rank_lost event"
assert has("run_end"), "no run_end event: not evaluated"
assert sum(e["event"] == "task_done" and e["task"] == sys.argv[2] for e in ev) == 1
PY
[[ -s "$work/stopped/report.md" ]] || fail "no report"
# Gone, or a zombie: a container whose pid 1 does not reap orphans keeps the
# killed rank as a zombie, which kill -0 still finds. Open MPI's SIGKILL may
# land a moment after mpiexec returns: allow it 10 s.
alive() { [[ -e /proc/$1 ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2> /dev/null) != Z ]]; }
for _ in $(seq 100); do alive "$r2" || break; sleep 0.1; done
! alive "$r2" || fail "the stopped rank 2 outlived the job"

# 2. Stopped, then continued once its task was handed again.
# Rank 1, handed the task again, is stopped at once, so that rank 2's result
# comes first and rank 1's second (a rank 1 that finished first would end the
# run without rank 2: the stopped case). Tasks of train.max_steps=150 leave
# this poll about a second.
start continued 8
for _ in $(seq 2400); do grep -q "task $late_task handed again" "$work/continued.err" && break; sleep 0.02; done
kill -STOP "$r1"
grep -q "task $late_task handed again, to rank 1" "$work/continued.err" || fail "continued: not handed to rank 1"
[[ ! -e $work/continued/deltas/$late_task.sotud ]] || fail "continued: rank 1 finished before it was stopped"
kill -CONT "$r2" || { grep -v fine-tune "$work/continued.err" | tail -n 30; fail "continued: rank 2 is gone"; }
for _ in $(seq 2400); do [[ -e $work/continued/deltas/$late_task.sotud ]] && break; sleep 0.05; done
kill -CONT "$r1"
finish continued 0
grep -q "task $late_task: a second result from rank [12] ([0-9]* bytes): identical to the kept one; dropped" \
  "$work/continued.err" || { grep -v fine-tune "$work/continued.err" | tail -n 30; fail "no duplicate verdict"; }
"$SOTU_PYTHON" - "$work/continued/metrics.jsonl" "$late_task" <<'PY'
import json, sys
ev = [json.loads(line) for line in open(sys.argv[1])]
done = sum(e["event"] == "task_done" and e["task"] == sys.argv[2] for e in ev)
dup = sum(e["event"] == "task_duplicate" and e["task"] == sys.argv[2] for e in ev)
assert done == 1 and dup == 1, f"task {sys.argv[2]}: {done} task_done, {dup} task_duplicate events"
PY
grep -q "MPI_ABORT" "$work/continued.err" && fail "continued: the job was aborted"
echo "hung_worker passed in $(elapsed)"
