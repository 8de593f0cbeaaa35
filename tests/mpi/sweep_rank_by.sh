#!/usr/bin/env bash
# eval.rank_by (issue 17): a sweep ranked by a fitted classifier's validation
# figure. `mpiexec -n 3 sotu train` of a tiny sweep {sotu.keep: [0.3, 0.1],
# merge.mode: [sum, mean]} with eval.rank_by: ridge writes sweep.csv with one
# <classifier>_val column per classifier in [0, 1], sorted by ridge_val
# (best first), each equal to the point's metrics.jsonl evaluation val_acc and
# summary.csv val_acc; sweep.md and report.html name the figure. `sotu merge`
# of the same sweep on one rank with the default rank_by (task_heads) ranks by
# merged_val_acc again, and its validation figures equal the 3 ranks' bit for
# bit. A rank_by that eval.classifiers does not compute, or an unknown one,
# exits 2 naming the key; data.val_fraction 0 gives null figures.
set -euo pipefail
source "$SOTU_SOURCE_DIR/tests/slurm/common.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-rankby.XXXXXX")
trap 'rm -rf "$work"' EXIT
sotu_tiny_setup "$work"
cat >> "$work/tiny.yaml" <<YAML
sweep:
  sotu.keep: [0.3, 0.1]
  merge.mode: [sum, mean]
YAML

# Config errors: exit 2, the key and what it allows named.
set +e
"$SOTU_BIN" -q train "$work/tiny.yaml" --set "output.dir=$work/bad" --set eval.rank_by=best \
  > /dev/null 2> "$work/bad1.err"
rc1=$?
"$SOTU_BIN" -q train "$work/tiny.yaml" --set "output.dir=$work/bad" --set eval.rank_by=ridge \
  --set "eval.classifiers=[task_heads, ncm]" > /dev/null 2> "$work/bad2.err"
rc2=$?
set -e
[[ $rc1 == 2 && $rc2 == 2 ]] || { cat "$work"/bad*.err; echo "exit $rc1, $rc2, expected 2"; exit 1; }
grep -q 'eval.rank_by: expected one of task_heads, ncm, ridge, ncm_til, ridge_til, got "best"' \
  "$work/bad1.err" || { cat "$work/bad1.err"; exit 1; }
grep -q 'eval.rank_by: ridge needs ridge in eval.classifiers' "$work/bad2.err" \
  || { cat "$work/bad2.err"; exit 1; }
[[ ! -e "$work/bad/sweep.csv" ]]

mpiexec --oversubscribe -n 3 "$SOTU_BIN" train "$work/tiny.yaml" --set "output.dir=$work/sw" \
  --set eval.rank_by=ridge > "$work/sw.out" 2> "$work/sw.err" || { cat "$work/sw.err"; exit 1; }
"$SOTU_BIN" -q merge "$work/sw" --out "$work/heads" --set eval.rank_by=task_heads \
  > "$work/heads.out" 2> "$work/heads.err" || { cat "$work/heads.err"; exit 1; }
"$SOTU_BIN" -q train "$work/tiny.yaml" --set "output.dir=$work/noval" --set "sweep={}" \
  --set data.val_fraction=0 > /dev/null 2> "$work/noval.err" || { cat "$work/noval.err"; exit 1; }

"$SOTU_PYTHON" - "$work" <<'PY'
import csv, json, math, sys
work = sys.argv[1]
cls = ["task_heads", "ncm", "ridge", "ncm_til", "ridge_til"]

def evals(path):
    return {e["method"]: e for e in map(json.loads, open(path)) if e["event"] == "evaluation"}

def check(d, key, col):
    rows = list(csv.DictReader(open(f"{d}/sweep.csv")))
    assert len(rows) == 4, rows
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4]
    for r in rows:
        for c in cls:
            v = float(r[f"{c}_val"])
            assert 0 <= v <= 1, (r["point"], c, v)
        assert r["task_heads_val"] == "%.6g" % float(r["merged_val_acc"]) or \
            abs(float(r["task_heads_val"]) - float(r["merged_val_acc"])) < 1e-6, r
        ev = evals(f"{d}/points/{r['point']}/metrics.jsonl")["sotu"]
        summ = {s["classifier"]: s for s in csv.DictReader(
            open(f"{d}/points/{r['point']}/summary.csv")) if s["method"] == "sotu"}
        for c in cls:
            got = ev["classifiers"][c]["val_acc"]
            assert got is not None and abs(got - float(r[f"{c}_val"])) < 1e-6, (c, got, r)
            assert abs(float(summ[c]["val_acc"]) - got) < 1e-6, (c, summ[c], got)
    key_v = [float(r[col]) for r in rows]
    assert key_v == sorted(key_v, reverse=True), (col, key_v)
    md = open(f"{d}/sweep.md").read()
    html = open(f"{d}/report.html").read()
    assert f"eval.rank_by: {key}" in md and f"eval.rank_by: {key}" in html, md
    assert "never used to rank" in md
    assert f"{key} val acc (ranks)" in html, "report.html: no ranking column"
    return rows

rows = check(f"{work}/sw", "ridge", "ridge_val")
md = open(f"{work}/sw/sweep.md").read()
assert "ridge val acc (ranks)" in md and "column ridge_val" in md, md
heads = check(f"{work}/heads", "task_heads", "merged_val_acc")
assert "column merged_val_acc" in open(f"{work}/heads/sweep.md").read()
# One rank (merge) and three (train) give the same validation figures.
for p in (r["point"] for r in rows):
    a = evals(f"{work}/sw/points/{p}/metrics.jsonl")
    b = evals(f"{work}/heads/points/{p}/metrics.jsonl")
    for m in a:
        for c, v in a[m]["classifiers"].items():
            assert v["val_acc"] == b[m]["classifiers"][c]["val_acc"], (p, m, c)
            assert v["acc_matrix"] == b[m]["classifiers"][c]["acc_matrix"], (p, m, c)
# Without a hold-out: null figures (metrics.jsonl) and empty cells (summary.csv).
ev = evals(f"{work}/noval/metrics.jsonl")
for m, e in ev.items():
    for c, v in e["classifiers"].items():
        assert v["val_acc"] is None, (m, c, v["val_acc"])
for s in csv.DictReader(open(f"{work}/noval/summary.csv")):
    assert s["val_acc"] == "", s
print("rank_by: ridge ranks by ridge_val, task_heads by merged_val_acc; 1 rank = 3 ranks; "
      "val_fraction 0 gives null")
PY
echo "sweep_rank_by passed in $(elapsed)"
