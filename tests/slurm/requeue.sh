#!/usr/bin/env bash
# `scontrol requeue` in the middle of a slurm/sotu.sbatch run: Slurm sends
# SIGTERM (sotu stops handing out tasks and saves what is done), requeues the
# job and restarts it with SLURM_RESTART_COUNT=1, which resumes. The job
# completes, and metrics.jsonl shows every task trained exactly once: the
# tasks finished before the requeue were not trained again.
set -euo pipefail
source "$(dirname "$0")/common.sh"
work=$(mktemp -d "$PWD/requeue.XXXXXX")
slurm_up requeue
sotu_tiny_setup "$work"
export SOTU_BIN
# Tasks of a few seconds each, so the requeue lands mid-run.
jid=$(sbatch --parsable --ntasks=3 --overcommit --output="$work/job.out" \
  "$SOTU_SOURCE_DIR/slurm/sotu.sbatch" "$work/tiny.yaml" --set "output.dir=$work/run" \
  --set train.epochs=400 --set train.max_steps=300)
deltas() { ls "$work/run/deltas/"*.sotud 2>/dev/null | wc -l; }
for _ in $(seq 600); do [[ $(deltas) -ge 1 ]] && break; sleep 0.1; done
before=$(deltas)
[[ $before -ge 1 && $before -lt 5 ]] || { echo "expected 1..4 deltas before the requeue, got $before"; exit 1; }
done_before=$(cd "$work/run/deltas" && ls *.sotud | sed 's/\.sotud$//' | sort)
echo "$(elapsed): $before deltas on disk, requeueing job $jid"
scontrol requeue "$jid"
# A requeued job waits for a begin time in the future; start it now.
for _ in $(seq 120); do
  state=$(squeue -h -j "$jid" -o %T 2>/dev/null || true)
  if [[ $state == PENDING ]]; then
    scontrol update JobId="$jid" StartTime=now 2>/dev/null || true
  fi
  [[ -z $state ]] && break
  sleep 1
done
scontrol show job "$jid" | grep -E "JobState|Restarts" || true
scontrol show job "$jid" | grep -q "JobState=COMPLETED" || { cat "$work/job.out"; exit 1; }
scontrol show job "$jid" | grep -q "Restarts=1" || { echo "the job did not restart"; exit 1; }
grep -q "restart 1" "$work/job.out"
"$SOTU_PYTHON" - "$work/run/metrics.jsonl" $done_before <<'PY'
import collections, json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
before = sys.argv[2:]
starts = [i for i, e in enumerate(events) if e["event"] == "run_start"]
assert len(starts) == 2, f"expected 2 run_start events, got {len(starts)}"
assert events[starts[1]]["resume"] is True, events[starts[1]]
done = collections.Counter(e["task"] for e in events if e["event"] == "task_done")
assert len(done) == 5 and set(done.values()) == {1}, f"task_done events per task: {dict(done)}"
after = {e["task"] for e in events[starts[1]:] if e["event"] == "task_done"}
assert not after & set(before), f"trained again after the requeue: {after & set(before)}"
print(f"{len(before)} tasks done before the requeue, {len(after)} after, each trained once")
PY
grep -q '"event":"run_end"' "$work/run/metrics.jsonl"
"$SOTU_BIN" inspect "$work/run/checkpoint.h5" | grep -q "after merging 5 of 5 tasks"
echo "requeue passed in $(elapsed)"
