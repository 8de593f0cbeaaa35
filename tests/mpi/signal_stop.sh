#!/usr/bin/env bash
# Stop signals without Slurm (coordinator/signals.h):
#  - SIGTERM to the coordinator (rank 0) of `mpiexec -n 3 sotu train` mid-run:
#    the running tasks finish within the grace period, the checkpoint of the
#    done tasks is written, the exit status is 75, metrics.jsonl records the
#    stop; `--resume` completes with merged weights bitwise equal to an
#    uninterrupted run's;
#  - SIGUSR1 with SOTU_STOP_GRACE=0: the running tasks are abandoned
#    (MPI_Abort with 75), the checkpoint is still written, --resume completes;
#  - a serial run stopped by SIGTERM exits 75 after its current task.
set -euo pipefail
source "$SOTU_SOURCE_DIR/tests/slurm/common.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-signal.XXXXXX")
mpipid=
cleanup() {
  # mpiexec puts each rank in its own process group: kill them by parent.
  [[ -n $mpipid ]] && kill -9 "$mpipid" $(pgrep -P "$mpipid") 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
sotu_tiny_setup "$work"
sets=(--set train.epochs=400 --set train.max_steps=300)
mpi=(mpiexec --oversubscribe -n 3)

"${mpi[@]}" "$SOTU_BIN" -q train "$work/tiny.yaml" "${sets[@]}" --set "output.dir=$work/ref" \
  > "$work/ref.out" 2> "$work/ref.err" || { cat "$work/ref.err"; exit 1; }
echo "$(elapsed): uninterrupted run done"

# stop NAME SIGNAL [env...]: runs under mpiexec, signals rank 0 once a delta
# is on disk, checks exit status 75 and the checkpoint, then resumes.
stop() {
  local name=$1 sig=$2
  shift 2
  env "$@" setsid "${mpi[@]}" "$SOTU_BIN" train "$work/tiny.yaml" "${sets[@]}" \
    --set "output.dir=$work/$name" > "$work/$name.out" 2> "$work/$name.err" &
  local pid=$! r0= rc=0
  mpipid=$pid
  for _ in $(seq 600); do
    ls "$work/$name/deltas/"*.sotud > /dev/null 2>&1 && break
    sleep 0.05
  done
  for c in $(pgrep -P "$pid"); do
    if tr '\0' '\n' < "/proc/$c/environ" | grep -qx OMPI_COMM_WORLD_RANK=0; then r0=$c; fi
  done
  [[ -n $r0 ]] || { echo "rank 0 of mpiexec $pid not found"; exit 1; }
  kill "-$sig" "$r0"
  wait "$pid" || rc=$?
  mpipid=
  [[ $rc -eq 75 ]] || { echo "$name: exit status $rc, expected 75"; tail "$work/$name.err"; exit 1; }
  grep -q '"event":"run_stopped"' "$work/$name/metrics.jsonl"
  "$SOTU_BIN" inspect "$work/$name/checkpoint.h5" > "$work/$name.inspect"
  local n=$(ls "$work/$name/deltas/"*.sotud | wc -l)
  echo "$(elapsed): $name: SIG$sig -> exit 75 with $n of 5 deltas and a checkpoint"
  [[ $n -lt 5 ]] || echo "$name: (every task had finished by the time the stop took effect)"
  "${mpi[@]}" "$SOTU_BIN" -q train "$work/tiny.yaml" "${sets[@]}" --set "output.dir=$work/$name" \
    --resume > "$work/$name.resume.out" 2> "$work/$name.resume.err" \
    || { cat "$work/$name.resume.err"; exit 1; }
}
stop term TERM
grep -q "no more tasks are handed out" "$work/term.err"
stop usr1 USR1 SOTU_STOP_GRACE=0
grep -q "abandoning them" "$work/usr1.err"

"$SOTU_PYTHON" - "$work" <<'PY'
import sys
import h5py
import numpy as np
work = sys.argv[1]
def merged(name):
    with h5py.File(f"{work}/{name}/checkpoint.h5") as f:
        return {n: v[()] for n, v in f["merged"].items()}
ref = merged("ref")
for name in ["term", "usr1"]:
    m = merged(name)
    bad = [n for n in ref if not np.array_equal(ref[n], m[n])]
    assert not bad, f"{name}: merged weights differ after the stop and --resume in {bad[:3]}"
print("stopped runs resumed to bitwise the uninterrupted merged weights")
PY

# Serial: the signal lands during a task; the task finishes, then the stop.
"$SOTU_BIN" train "$work/tiny.yaml" "${sets[@]}" --set "output.dir=$work/serial" \
  > "$work/serial.out" 2> "$work/serial.err" &
pid=$!
for _ in $(seq 600); do grep -q "starts" "$work/serial.err" 2>/dev/null && break; sleep 0.05; done
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[[ $rc -eq 75 ]] || { echo "serial: exit status $rc, expected 75"; tail "$work/serial.err"; exit 1; }
[[ -f "$work/serial/checkpoint.h5" ]]
echo "signal_stop passed in $(elapsed)"
