#!/bin/bash
# Training-step benchmark: `sotu bench train` beside the PyTorch peer
# (bench/peer_torch_train.py) and the OpenBLAS sgemm peak (sotu_sgemm_peak),
# for tiny/small/vitb at 1 and 2 threads, all in one run. Prints the raw JSON
# lines to stderr and a Markdown table of ratios to stdout.
#
#   bench/bench_train.sh [BUILD_DIR] [--steps S] [--warmup W] [--models "tiny small vitb"]
#                        [--threads "1 2"] [--repeat R] [--baseline OTHER_BUILD_DIR]
#
# --repeat R runs every measurement R times, interleaved (on a loaded machine
# each round sees the same load), and reports the median of the R runs;
# --baseline also times OTHER_BUILD_DIR/sotu in the same rounds (before/after).
# ViT-B runs at batch 8, the others at 64.
set -euo pipefail
# Run from the source tree (bench/, binaries in build/) or installed by cmake
# --install as PREFIX/bin/sotu_bench_train.sh (binaries beside it, the Python peers in
# PREFIX/share/sotu/bench).
here=$(cd "$(dirname "$0")" && pwd)
if [ -d "$here/../share/sotu/bench" ]; then
    bin_dir=$here peers=$here/../share/sotu/bench
else
    bin_dir=$here/../build peers=$here
fi
build=$bin_dir
steps=20
warmup=3
models="tiny small vitb"
threads_list="1 2"
repeat=1
baseline=
while [ $# -gt 0 ]; do
    case $1 in
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --threads) threads_list=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --baseline) baseline=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) build=$1; shift ;;
    esac
done
sotu=$build/sotu
peak=$build/sotu_sgemm_peak
py=${SOTU_PYTHON:-/usr/bin/python3}
for f in "$sotu" "$peak" ${baseline:+"$baseline/sotu"}; do
    [ -x "$f" ] || { echo "bench_train.sh: $f not built (cmake --build $build)" >&2; exit 1; }
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT

batch_of() { case $1 in vitb) echo 8 ;; *) echo 64 ;; esac; }
for r in $(seq "$repeat"); do
    for t in $threads_list; do
        OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$peak" --threads "$t" --min-seconds 1 | tee -a "$out" >&2
        for m in $models; do
            b=$(batch_of "$m")
            OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$sotu" -q bench train --model "$m" \
                --threads "$t" --batch "$b" --steps "$steps" --warmup "$warmup" | tee -a "$out" >&2
            if [ -n "$baseline" ]; then
                OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$baseline/sotu" -q bench train \
                    --model "$m" --threads "$t" --batch "$b" --steps "$steps" --warmup "$warmup" |
                    sed 's/"impl":"sotu"/"impl":"baseline"/' | tee -a "$out" >&2
            fi
            OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$py" "$peers/peer_torch_train.py" --model "$m" \
                --threads "$t" --batch "$b" --steps "$steps" --warmup "$warmup" | tee -a "$out" >&2
        done
    done
done

"$py" - "$out" "$steps" "$repeat" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
steps, repeat = sys.argv[2], int(sys.argv[3])
peak = {}
for r in rows:
    if r.get("bench") == "sgemm":
        peak.setdefault(r["threads"], []).append(r["gflops"])
peak = {t: max(v) for t, v in peak.items()}
runs = {}
for r in rows:
    if r.get("bench") == "train":
        runs.setdefault((r["impl"], r["model"], r["threads"]), []).append(r)
def med(key, field):
    v = runs.get(key)
    return statistics.median(x[field] for x in v) if v else None
base = any(k[0] == "baseline" for k in runs)
print(f"Training step (zero_grad + forward + backward + AdamW), fp32, median of {steps} steps"
      + (f", median of {repeat} interleaved runs" if repeat > 1 else "") + ".\n")
print("| model | threads | batch | sotu img/s | torch img/s | sotu / torch | "
      + ("baseline img/s | baseline / torch | " if base else "")
      + "sotu / torch, CPU time | sotu GFLOP/s | sgemm peak GFLOP/s | sotu % of peak | sotu RSS MB | torch RSS MB |")
print("|---|---|---|---|---|---|" + ("---|---|" if base else "") + "---|---|---|---|---|---|")
def cpu(k, model, t):
    a, b = med(k, "cpu_step_seconds"), med(("torch", model, t), "cpu_step_seconds")
    return "-" if a is None or b is None else f"{b / a:.2f}x"
order = {"tiny": 0, "small": 1, "vitb": 2}
for (impl, model, t) in sorted(runs, key=lambda k: (k[2], order.get(k[1], 9))):
    if impl != "sotu":
        continue
    k, pk = (impl, model, t), peak.get(t, 0.0)
    s, p = med(k, "images_per_s"), med(("torch", model, t), "images_per_s")
    b = med(("baseline", model, t), "images_per_s")
    f = lambda v, fmt=".1f": "-" if v is None else format(v, fmt)
    ratio = lambda a: "-" if a is None or p is None else f"{a / p:.2f}x"
    print(f"| {model} | {t} | {runs[k][0]['batch']} | {f(s)} | {f(p)} | {ratio(s)} | "
          + (f"{f(b)} | {ratio(b)} | " if base else "")
          # the inverse ratio of CPU seconds per step (all threads): steadier
          # than wall time when other work shares the machine
          + f"{cpu(k, model, t)} | {f(med(k, 'gflops'))} | {f(pk)} | {100 * med(k, 'gflops') / pk:.0f}% | "
          f"{f(med(k, 'peak_rss_mb'), '.0f')} | {f(med(('torch', model, t), 'peak_rss_mb'), '.0f')} |")
PY
