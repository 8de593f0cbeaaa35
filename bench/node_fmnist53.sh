#!/bin/bash
# fmnist53 (53 tasks: training and task-head evaluation, no baselines) in
# three shapes of one many-core node: R1 ranks x T1 threads, R2 x T2, and one
# process with every core; prints each run's wall time and accuracy, and
# whether the three merged weights are bitwise equal (README: results do not
# depend on the ranks or the thread count). The issue-15 node measured 28 s,
# 29 s and 141 s with three different merged weights before.
#
#   bench/node_fmnist53.sh [BUILD_DIR] [--shapes "9x2 17x1 1x16"] [--work DIR]
#                          [--preset fmnist5]   (a smoke test: 5 tasks)
#
# Needs mpiexec on PATH, Fashion-MNIST's IDX files (SOTU_FMNIST_DIR, else
# where `sotu data fmnist` looks) and python3 with h5py and numpy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build
shapes="9x2 17x1 1x16"
preset=fmnist53
work=$(mktemp -d)
while [ $# -gt 0 ]; do
    case $1 in
    --shapes) shapes=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) build=$1; shift ;;
    esac
done
sotu=$build/sotu
py=${SOTU_PYTHON:-python3}
[ -x "$sotu" ] || { echo "node_fmnist53.sh: $sotu not found" >&2; exit 1; }
mkdir -p "$work"
[ -f "$work/$preset/manifest.yaml" ] ||
    "$sotu" -q data fmnist --preset "$preset" --out "$work/$preset" ${SOTU_FMNIST_DIR:+--data-dir "$SOTU_FMNIST_DIR"}
sets=(--set "data.manifest=$work/$preset/manifest.yaml" --set "eval.baselines=[]"
      --set "eval.classifiers=[task_heads]" --set eval.every=0 --set checkpoint.every=0
      --set "model.pretrained=$here/../data/pretrained/vit-tiny-fmnist.h5"
      --set train.head_epochs=0)  # the recipe of the recorded timings (the example now says 3)
runs=()
for s in $shapes; do
    r=${s%x*} t=${s#*x}
    out=$work/run-$s
    rm -rf "$out"
    t0=$(date +%s.%N)
    if [ "$r" -eq 1 ]; then
        "$sotu" -q train "$here/../examples/fmnist53.yaml" "${sets[@]}" --set "train.threads=$t" \
            --set "output.dir=$out" > "$out.log" 2>&1
    else
        mpiexec --oversubscribe --bind-to none -n "$r" "$sotu" -q train "$here/../examples/fmnist53.yaml" \
            "${sets[@]}" --set "train.threads=$t" --set "output.dir=$out" > "$out.log" 2>&1
    fi
    t1=$(date +%s.%N)
    echo "{\"bench\":\"$preset\",\"shape\":\"$s\",\"ranks\":$r,\"threads\":$t,\"seconds\":$(awk "BEGIN {print $t1 - $t0}")}"
    runs+=("$out")
done
"$py" - "${runs[@]}" <<'PY'
import json, sys
import h5py, numpy as np
merged, acc = [], []
for run in sys.argv[1:]:
    with h5py.File(f"{run}/checkpoint.h5") as f:
        merged.append({n: v[()] for n, v in f["merged"].items()})
    ev = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
    end = [e for e in ev if e["event"] == "evaluation" and e.get("method") == "sotu"]
    acc.append(end[-1]["classifiers"]["task_heads"]["final_avg_acc"] if end else None)
same = all(set(m) == set(merged[0]) and all(np.array_equal(m[n], merged[0][n]) for n in m)
           for m in merged[1:])
print(json.dumps({"bench": "fmnist53_compare", "runs": [r.rsplit("/", 1)[-1] for r in sys.argv[1:]],
                  "accuracy": acc, "merged_bitwise_equal": same}))
PY
