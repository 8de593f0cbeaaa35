#!/bin/bash
# Training-step benchmark: `sotu bench train` beside the PyTorch peer
# (bench/peer_torch_train.py) and the OpenBLAS sgemm peak (sotu_sgemm_peak),
# for tiny/small/vitb at 1 and 2 threads, all in one run. Prints the raw JSON
# lines to stderr and a Markdown table of ratios to stdout.
#
#   bench/bench_train.sh [BUILD_DIR] [--steps S] [--warmup W] [--models "tiny small vitb"]
#                        [--threads "1 2"]
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
while [ $# -gt 0 ]; do
    case $1 in
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --threads) threads_list=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) build=$1; shift ;;
    esac
done
sotu=$build/sotu
peak=$build/sotu_sgemm_peak
py=${SOTU_PYTHON:-/usr/bin/python3}
for f in "$sotu" "$peak"; do
    [ -x "$f" ] || { echo "bench_train.sh: $f not built (cmake --build $build)" >&2; exit 1; }
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT

batch_of() { case $1 in vitb) echo 8 ;; *) echo 64 ;; esac; }
for t in $threads_list; do
    OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$peak" --threads "$t" --min-seconds 1 | tee -a "$out" >&2
    for m in $models; do
        b=$(batch_of "$m")
        OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$sotu" -q bench train --model "$m" \
            --threads "$t" --batch "$b" --steps "$steps" --warmup "$warmup" | tee -a "$out" >&2
        OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$py" "$peers/peer_torch_train.py" --model "$m" \
            --threads "$t" --batch "$b" --steps "$steps" --warmup "$warmup" | tee -a "$out" >&2
    done
done

"$py" - "$out" "$steps" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
peak = {}
for r in rows:
    if r.get("bench") == "sgemm":
        peak[r["threads"]] = max(peak.get(r["threads"], 0.0), r["gflops"])
train = {(r["impl"], r["model"], r["threads"]): r for r in rows if r.get("bench") == "train"}
print(f"Training step (zero_grad + forward + backward + AdamW), fp32, median of {sys.argv[2]} steps.\n")
print("| model | threads | batch | sotu img/s | torch img/s | sotu / torch | sotu / torch, CPU time "
      "| sotu GFLOP/s | sgemm peak GFLOP/s | sotu % of peak | sotu RSS MB | torch RSS MB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for (impl, model, t), c in sorted(train.items(), key=lambda kv: (kv[0][2], kv[0][1])):
    if impl != "sotu":
        continue
    p = train.get(("torch", model, t))
    pk = peak.get(t, 0.0)
    ratio = f"{c['images_per_s'] / p['images_per_s']:.2f}x" if p else "-"
    # the inverse ratio of CPU seconds per step (all threads): steadier than
    # wall time when other work shares the machine
    cpu = (f"{p['cpu_step_seconds'] / c['cpu_step_seconds']:.2f}x"
           if p and "cpu_step_seconds" in c and "cpu_step_seconds" in p else "-")
    print(f"| {model} | {t} | {c['batch']} | {c['images_per_s']:.1f} | "
          f"{p['images_per_s']:.1f} | {ratio} | {cpu} | {c['gflops']:.1f} | {pk:.1f} | "
          f"{100 * c['gflops'] / pk:.0f}% | {c['peak_rss_mb']:.0f} | {p['peak_rss_mb']:.0f} |"
          if p else f"| {model} | {t} | {c['batch']} | {c['images_per_s']:.1f} | - | - | - | "
          f"{c['gflops']:.1f} | {pk:.1f} | {100 * c['gflops'] / pk:.0f}% | {c['peak_rss_mb']:.0f} | - |")
PY
