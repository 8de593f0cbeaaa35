#!/usr/bin/env bash
# Crash safety without Slurm: `mpiexec -n 3 sotu train` is killed with
# SIGKILL (mpiexec and every rank in one kill, as a lost node would) after k >= 2
# deltas were persisted. A partial temporary file and a truncated delta are
# left beside them. `sotu train --resume` then keeps the k - 1 deltas that
# verify, trains the rest, and its merged weights are bitwise equal to an
# uninterrupted run's.
set -euo pipefail
source "$SOTU_SOURCE_DIR/tests/slurm/common.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-kill.XXXXXX")
mpipid=
cleanup() {
  # mpiexec puts each rank in its own process group: kill them by parent.
  [[ -n $mpipid ]] && kill -9 "$mpipid" $(pgrep -P "$mpipid") 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
sotu_tiny_setup "$work"
# Tasks of a few seconds each, so the kill lands mid-run.
sets=(--set train.epochs=400 --set train.max_steps=300)
mpi=(mpiexec --oversubscribe -n 3)

"${mpi[@]}" "$SOTU_BIN" -q train "$work/tiny.yaml" "${sets[@]}" --set "output.dir=$work/ref" \
  > "$work/ref.out" 2> "$work/ref.err" || { cat "$work/ref.err"; exit 1; }
echo "$(elapsed): uninterrupted run done"

setsid "${mpi[@]}" "$SOTU_BIN" -q train "$work/tiny.yaml" "${sets[@]}" \
  --set "output.dir=$work/run" > "$work/killed.out" 2> "$work/killed.err" &
pid=$!
mpipid=$pid
deltas() { ls "$work/run/deltas/"*.sotud 2>/dev/null | wc -l; }
for _ in $(seq 600); do [[ $(deltas) -ge 2 ]] && break; sleep 0.05; done
kill -9 "$pid" $(pgrep -P "$pid")
wait "$pid" 2>/dev/null || true
mpipid=
k=$(deltas)
echo "$(elapsed): killed with $k deltas persisted"
[[ $k -ge 2 && $k -lt 5 ]] || { echo "expected 2..4 deltas at the kill, got $k"; exit 1; }
[[ ! -f "$work/run/checkpoint.h5" ]]

# A crash inside a write leaves a temporary file; a torn copy leaves a short delta.
d="$work/run/deltas"
victim=$(ls "$d"/*.sotud | head -n 1)
head -c 1000 "$victim" > "$d/partial.tmp.12345"
head -c 200 "$victim" > "$victim.short" && mv "$victim.short" "$victim"

"${mpi[@]}" "$SOTU_BIN" train "$work/tiny.yaml" "${sets[@]}" --set "output.dir=$work/run" \
  --resume > "$work/resume.out" 2> "$work/resume.err" || { cat "$work/resume.err"; exit 1; }
grep -q "resume: $((k - 1)) of 5 tasks" "$work/resume.err" || { grep resume "$work/resume.err"; exit 1; }
grep -q "does not verify" "$work/resume.err"
echo "$(elapsed): resumed"

"$SOTU_PYTHON" - "$work" "$k" <<'PY'
import json, sys
import h5py
import numpy as np
work, k = sys.argv[1], int(sys.argv[2])
def merged(name):
    with h5py.File(f"{work}/{name}/checkpoint.h5") as f:
        return {n: v[()] for n, v in f["merged"].items()}
ref, run = merged("ref"), merged("run")
assert ref.keys() == run.keys()
bad = [n for n in ref if not np.array_equal(ref[n], run[n])]
assert not bad, f"merged weights differ after kill -9 + --resume in {bad[:3]}"
events = [json.loads(l) for l in open(f"{work}/run/metrics.jsonl")]
start2 = [i for i, e in enumerate(events) if e["event"] == "run_start"][1]
redone = sum(e["event"] == "task_done" for e in events[start2:])
assert redone == 5 - (k - 1), f"resume trained {redone} tasks, expected {5 - (k - 1)}"
print(f"kill -9 after {k} deltas, resume trained {redone}: merged weights bitwise equal")
PY
echo "kill_resume passed in $(elapsed)"
