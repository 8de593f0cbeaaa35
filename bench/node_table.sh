#!/bin/bash
# The issue-15 table for a many-core node: `sotu bench train` beside the
# PyTorch peer (bench/peer_torch_train.py, fp32, same model, batch, threads)
# and the OpenBLAS sgemm peak at each thread count, for tiny, small and
# ViT-B/16 at 1, 4 and 16 threads, with the targets marked met or not:
# sotu / torch >= 1.2 everywhere, and ViT-B above 1.1 TFLOP/s at 16 threads.
# About 5 minutes on a 16-core Sapphire Rapids node. Raw JSON lines go to
# stderr, the Markdown table to stdout.
#
#   bench/node_table.sh [BUILD_DIR] [--threads "1 4 16"] [--models "tiny small vitb"]
#                       [--quick]        (fewer steps: a smoke test, not a measurement)
#
# Batches: 64 images for tiny and small; ViT-B 8 at 1 thread and 32 above
# (the issue's figures). Steps: medians of 20 steps (tiny), 10 (small), 3
# (ViT-B) after warm-up. The PyTorch peer runs with `python3` (override with
# SOTU_PYTHON); OPENBLAS_CORETYPE is taken from the environment as it is.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build
threads_list="1 4 16"
models="tiny small vitb"
quick=0
while [ $# -gt 0 ]; do
    case $1 in
    --threads) threads_list=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) build=$1; shift ;;
    esac
done
sotu=$build/sotu
peak=$build/sotu_sgemm_peak
py=${SOTU_PYTHON:-python3}
for f in "$sotu" "$peak"; do
    [ -x "$f" ] || { echo "node_table.sh: $f not found (build it, or pass BUILD_DIR)" >&2; exit 1; }
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT

batch_of() { # model threads
    case $1 in vitb) [ "$2" -eq 1 ] && echo 8 || echo 32 ;; *) echo 64 ;; esac
}
steps_of() { # model -> "steps warmup"
    if [ $quick -eq 1 ]; then echo "2 1"; return; fi
    case $1 in tiny) echo "20 3" ;; small) echo "10 2" ;; vitb) echo "3 1" ;; esac
}

{
    echo "{\"bench\":\"node\",\"host\":\"$(hostname)\",\"cpu\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')\"," \
         "\"cores\":$(nproc),\"openblas_coretype\":\"${OPENBLAS_CORETYPE:-}\"," \
         "\"sotu\":\"$("$sotu" --version 2>/dev/null | head -1)\"," \
         "\"torch\":\"$("$py" -c 'import torch; print(torch.__version__)')\"}"
} | tee -a "$out" >&2
for t in $threads_list; do
    OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$peak" --threads "$t" --min-seconds 1 | tee -a "$out" >&2
    for m in $models; do
        b=$(batch_of "$m" "$t")
        read -r steps warmup <<< "$(steps_of "$m")"
        OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$sotu" -q bench train --model "$m" \
            --threads "$t" --batch "$b" --steps "$steps" --warmup "$warmup" | tee -a "$out" >&2
        OMP_NUM_THREADS=$t "$py" "$here/peer_torch_train.py" --model "$m" \
            --threads "$t" --batch "$b" --steps "$steps" --warmup "$warmup" | tee -a "$out" >&2
    done
done

"$py" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
head = next(r for r in rows if r.get("bench") == "node")
peak = {}
for r in rows:
    if r.get("bench") == "sgemm":
        peak[r["threads"]] = max(peak.get(r["threads"], 0.0), r["gflops"])
train = {(r["impl"], r["model"], r["threads"]): r for r in rows if r.get("bench") == "train"}
print(f"{head['cpu']}, {head['cores']} cores, OPENBLAS_CORETYPE={head['openblas_coretype'] or '(unset)'}; "
      f"{head['sotu']}; PyTorch {head['torch']} fp32.\n")
print("Training step (zero_grad + forward + backward + AdamW), median of the timed steps. "
      "Targets: sotu / torch >= 1.2; ViT-B at 16 threads > 1.1 TFLOP/s.\n")
print("| model | threads | batch | sotu img/s | torch img/s | sotu / torch | >= 1.2x | "
      "sotu GFLOP/s | sgemm peak GFLOP/s | sotu / peak |")
print("|---|---|---|---|---|---|---|---|---|---|")
order = {"tiny": 0, "small": 1, "vitb": 2}
missed = []
for (impl, model, t), c in sorted(train.items(), key=lambda kv: (order.get(kv[0][1], 9), kv[0][2])):
    if impl != "sotu":
        continue
    p = train.get(("torch", model, t))
    pk = peak.get(t, 0.0)
    ratio = c["images_per_s"] / p["images_per_s"] if p else None
    met = "-" if ratio is None else ("met" if ratio >= 1.2 else "NOT met")
    if ratio is not None and ratio < 1.2:
        missed.append(f"{model} at {t} threads: {ratio:.2f}x")
    print(f"| {model} | {t} | {c['batch']} | {c['images_per_s']:.2f} | "
          f"{p['images_per_s']:.2f} | {ratio:.2f}x | {met} | " if p else
          f"| {model} | {t} | {c['batch']} | {c['images_per_s']:.2f} | - | - | - | ", end="")
    print(f"{c['gflops']:.0f} | {pk:.0f} | {c['gflops'] / pk:.2f} |" if pk else f"{c['gflops']:.0f} | - | - |")
vb = train.get(("sotu", "vitb", 16))
if vb:
    tf = vb["gflops"] / 1000
    print(f"\nViT-B/16 at 16 threads: {tf:.2f} TFLOP/s (target > 1.1: {'met' if tf > 1.1 else 'NOT met'}); "
          f"OpenBLAS sgemm at 16 threads {peak.get(16, 0) / 1000:.2f} TFLOP/s.")
    if tf <= 1.1:
        missed.append(f"ViT-B TFLOP/s at 16 threads: {tf:.2f}")
print("\nTargets missed: " + ("; ".join(missed) if missed else "none"))
PY
