#!/usr/bin/env bash
# Two builds of sotu on the same training steps, interleaved: for RUNS
# rounds, each configuration runs `sotu bench train` with build A then build
# B (A first in odd rounds, B first in even ones). Prints, per
# configuration, the median over rounds of images/s by wall time and by CPU
# time (cpu_step_seconds: all threads' CPU seconds per step, steadier when
# other work shares the machine) for each build, and B / A. OpenMP threads
# wait passively (OMP_WAIT_POLICY=passive), so CPU time counts work, not
# threads spinning while their partner is descheduled.
#
#   bench/compare_builds.sh BUILD_A BUILD_B [RUNS] [OUT.jsonl]
#
# Configurations (model:threads:batch:steps:warmup), override with SOTU_COMPARE:
#   tiny:1:64:15:2 tiny:2:64:15:2 small:1:64:8:2 small:2:64:8:2 vitb:1:8:3:1
#   vitb:2:8:3:1 resnet18-w8:1:64:10:2
set -euo pipefail
a=${1:?usage: bench/compare_builds.sh BUILD_A BUILD_B [RUNS] [OUT.jsonl]}
b=${2:?usage: bench/compare_builds.sh BUILD_A BUILD_B [RUNS] [OUT.jsonl]}
runs=${3:-3}
out=${4:-$(mktemp "${TMPDIR:-/tmp}/sotu-compare.XXXXXX.jsonl")}
py=${SOTU_PYTHON:-/usr/bin/python3}
configs=${SOTU_COMPARE:-"tiny:1:64:15:2 tiny:2:64:15:2 small:1:64:8:2 small:2:64:8:2 vitb:1:8:3:1 vitb:2:8:3:1 resnet18-w8:1:64:10:2"}
for f in "$a/sotu" "$b/sotu"; do
    [[ -x $f ]] || { echo "compare_builds.sh: $f not built" >&2; exit 1; }
done
: > "$out"
one() { # tag build model threads batch steps warmup
    OMP_WAIT_POLICY=passive OMP_NUM_THREADS=$4 OPENBLAS_NUM_THREADS=$4 "$2/sotu" -q bench train \
        --model "$3" --threads "$4" --batch "$5" --steps "$6" --warmup "$7" 2>/dev/null |
        "$py" -c 'import json, sys
for l in sys.stdin:
    if l.startswith("{"):
        print(json.dumps(dict(json.loads(l), build=sys.argv[1])))' "$1" >> "$out"
}
for r in $(seq "$runs"); do
    for c in $configs; do
        IFS=: read -r model threads batch steps warmup <<< "$c"
        if (( r % 2 )); then order="A B"; else order="B A"; fi
        for w in $order; do
            if [[ $w == A ]]; then one A "$a" "$model" "$threads" "$batch" "$steps" "${warmup:-2}"
            else one B "$b" "$model" "$threads" "$batch" "$steps" "${warmup:-2}"; fi
        done
    done
    echo "compare_builds: round $r of $runs done" >&2
done
"$py" - "$out" "$a" "$b" <<'PY'
import collections, json, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    j = json.loads(line)
    rows[(j["model"], j["threads"], j["build"])].append(j)
print(f"A = {sys.argv[2]}, B = {sys.argv[3]}; medians over rounds (n = rounds).\n")
print("| model | threads | batch | A img/s | B img/s | B / A | A img/s, CPU | B img/s, CPU | B / A, CPU | n |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (model, t) in sorted({(m, t) for (m, t, _) in rows}, key=lambda k: (k[1], k[0])):
    A, B = rows[(model, t, "A")], rows[(model, t, "B")]
    if not A or not B:
        continue
    batch = A[0]["batch"]
    wa = statistics.median(x["images_per_s"] for x in A)
    wb = statistics.median(x["images_per_s"] for x in B)
    ca = statistics.median(batch / x["cpu_step_seconds"] for x in A)
    cb = statistics.median(batch / x["cpu_step_seconds"] for x in B)
    print(f"| {model} | {t} | {batch} | {wa:.2f} | {wb:.2f} | {wb / wa:.3f} | {ca:.2f} | "
          f"{cb:.2f} | {cb / ca:.3f} | {min(len(A), len(B))} |")
PY
echo "lines: $out"
