#!/usr/bin/env bash
# Coordinator ingest rate: many tiny tasks through `sotu train` with N ranks.
# Each task is one optimizer step of a small ViT, so the run time is the
# coordinator's work per delta (receive, verify, persist atomically, log)
# plus the protocol. Prints one JSON line.
#   bench/bench_ingest.sh [RANKS=8] [TASKS=200] [DIM=96] [DEPTH=6]
set -euo pipefail
ranks=${1:-8} tasks=${2:-200} dim=${3:-96} depth=${4:-6}
# From the source tree, or installed by cmake --install as PREFIX/bin/sotu_bench_ingest.sh.
here=$(cd "$(dirname "$0")" && pwd)
if [ -d "$here/../share/sotu/bench" ]; then
  sotu=${SOTU_BIN:-$here/sotu} weights_py=$here/../share/sotu/bench/make_random_weights.py
  example=$here/../share/sotu/examples/quickstart.yaml
else
  sotu=${SOTU_BIN:-$here/../build/sotu} weights_py=$here/../tests/reference/make_random_weights.py
  example=$here/../examples/quickstart.yaml
fi
py=${SOTU_PYTHON:-/usr/bin/python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-ingest.XXXXXX")
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

"$sotu" -q data fmnist --preset fmnist5 --out "$work/tasks" --train 32 --test 16
"$py" "$weights_py" "$work/vit.h5" 28 1 4 "$dim" "$depth" 3 $((4 * dim)) 10
"$py" - "$work/tasks" "$tasks" <<'PY'
import sys, yaml
d, n = sys.argv[1], int(sys.argv[2])
src = yaml.safe_load(open(f"{d}/manifest.yaml"))["tasks"]
tasks = [dict(src[i % len(src)], name=f"x{i:04d}") for i in range(n)]
yaml.safe_dump({"name": "ingest", "tasks": tasks}, open(f"{d}/many.yaml", "w"))
PY
start=$(date +%s.%N)
mpiexec --oversubscribe -n "$ranks" "$sotu" -q train "$example" \
  --set "data.manifest=$work/tasks/many.yaml" --set "model.pretrained=$work/vit.h5" \
  --set train.epochs=1 --set train.batch_size=32 --set train.max_steps=1 \
  --set train.warmup_steps=0 --set train.threads=1 --set "output.dir=$work/run" \
  --set "eval.baselines=[]" --set eval.every=0 --set "eval.classifiers=[task_heads]" > "$work/out.txt"
end=$(date +%s.%N)
"$py" - "$work/run" "$start" "$end" "$ranks" "$tasks" <<'PY'
import json, sys, os
run, start, end, ranks, tasks = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ev = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
done = [e for e in ev if e["event"] == "task_done"]
t0 = min(e["time"] for e in ev if e["event"] == "run_start")
t1 = max(e["time"] for e in done)
work = sum(e["seconds"] for e in done)
ingest = sorted(e["ingest_ms"] for e in done)
size = sum(os.path.getsize(f"{run}/deltas/{f}") for f in os.listdir(f"{run}/deltas") if f.endswith(".sotud"))
print(json.dumps({"bench": "ingest", "ranks": ranks, "tasks": len(done), "wall_s": round(end - start, 2),
                  "queue_s": round(t1 - t0, 2), "tasks_per_s": round(len(done) / (t1 - t0), 1),
                  "worker_task_s_mean": round(work / len(done), 4),
                  "ingest_ms_median": round(ingest[len(ingest) // 2], 2),
                  "coordinator_deltas_per_s": round(1e3 / ingest[len(ingest) // 2], 1),
                  "delta_bytes_mean": size // len(done)}))
PY
