#!/usr/bin/env bash
# The sweep summary that compares (issue 17 item 2): `mpiexec -n 3 sotu
# train` with sweep {train.seed: [1, 2], sotu.keep: [0.3, 0.1]} and the
# frozen baseline writes sweep.csv with every classifier's final and average
# incremental accuracy, forgetting, BWT, the frozen backbone's accuracy,
# bytes and seconds per point (ranked by the merged task heads' validation
# accuracy, said in the file), sweep_seeds.csv (mean ± std over the two seeds, checked against
# numpy) and the sweep's report.html. Each distinct model is evaluated once:
# the keep-0.1 point of a seed reuses its group's frozen baseline and sotu@0.3
# from the keep-0.3 point, and what it reuses equals a fresh evaluation
# (`sotu merge` of that point directory, one rank, no cache) exactly.
set -euo pipefail
source "$SOTU_SOURCE_DIR/tests/slurm/common.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-sweepsum.XXXXXX")
trap 'rm -rf "$work"' EXIT
sotu_tiny_setup "$work"
sed -i 's/baselines: \[finetuned\]/baselines: [finetuned, frozen]/' "$work/tiny.yaml"
cat >> "$work/tiny.yaml" <<YAML
sweep:
  train.seed: [1, 2]
  sotu.keep: [0.3, 0.1]
YAML
mpiexec --oversubscribe -n 3 "$SOTU_BIN" train "$work/tiny.yaml" --set "output.dir=$work/sw" \
  > "$work/sw.out" 2> "$work/sw.err" || { cat "$work/sw.err"; exit 1; }
grep -q "evaluations reused" "$work/sw.err" || { cat "$work/sw.err"; echo "no reuse line"; exit 1; }
grep "evaluations reused" "$work/sw.err"
"$SOTU_BIN" -q merge "$work/sw/points/p01_seed1_keep0.1" --out "$work/fresh" \
  > /dev/null 2> "$work/fresh.err" || { cat "$work/fresh.err"; exit 1; }

"$SOTU_PYTHON" - "$work" <<'PY'
import csv, json, sys, re
import numpy as np
work = sys.argv[1]
sw = f"{work}/sw"
rows = list(csv.DictReader(open(f"{sw}/sweep.csv")))
assert len(rows) == 4, rows
cls = ["task_heads", "ridge_til", "ncm_til", "ncm", "ridge"]
for r in rows:
    assert 0 <= float(r["merged_val_acc"]) <= 1 and 0 <= float(r["finetuned_val_acc"]) <= 1, r
    for c in cls:
        for k in ("final", "avg_inc"):
            v = float(r[f"{c}_{k}"])
            assert 0 <= v <= 1, (c, k, v)
        assert 0 <= float(r[f"frozen_{c}_final"]) <= 1
    assert float(r["bytes_per_task"]) > 0 and float(r["kept_per_task"]) > 0
    assert float(r["train_seconds"]) > 0
    # the row agrees with the point's own summary.csv
    summ = {(s["method"], s["classifier"]): s for s in csv.DictReader(
        open(f"{sw}/points/{r['point']}/summary.csv"))}
    for c in cls:
        assert abs(float(summ[("sotu", c)]["final_avg_acc"]) - float(r[f"{c}_final"])) < 1e-5
        assert abs(float(summ[("frozen", c)]["final_avg_acc"]) - float(r[f"frozen_{c}_final"])) < 1e-5
val = [float(r["merged_val_acc"]) for r in rows]
assert val == sorted(val, reverse=True), val
by = {r["point"]: r for r in rows}
assert float(by["p01_seed1_keep0.1"]["kept_per_task"]) < float(by["p00_seed1_keep0.3"]["kept_per_task"])
md = open(f"{sw}/sweep.md").read()
assert "validation hold-outs" in md and "never used to rank" in md and "Over seeds" in md, md

seeds = list(csv.DictReader(open(f"{sw}/sweep_seeds.csv")))
assert [(s["point"], s["seeds"], s["sotu.keep"]) for s in seeds] == \
    [("p00_seed1_keep0.3", "2", "0.3"), ("p01_seed1_keep0.1", "2", "0.1")], seeds
for s in seeds:
    pts = [r for r in rows if r["sotu.keep"] == s["sotu.keep"]]
    for c in cls:
        v = np.array([float(r[f"{c}_final"]) for r in pts])
        assert abs(float(s[f"{c}_final_mean"]) - v.mean()) < 1e-5, (c, s, v)
        assert abs(float(s[f"{c}_final_std"]) - v.std(ddof=1)) < 1e-5, (c, s, v)

html = open(f"{sw}/report.html").read()
assert '<section id="sweep">' in html and 'id="sweep-table"' in html and 'id="sweep-seeds"' in html
assert 'id="sweep-axis-1"' in html, "no chart of accuracy against sotu.keep"
assert 'href="points/p00_seed1_keep0.3/report.html"' in html
# the page's seed table shows the same mean ± std as sweep_seeds.csv
seed_tab = html.split('id="sweep-seeds"')[1].split("</table>")[0]
for s in seeds:
    row = re.search(r"<tr><td>" + re.escape(s["point"]) + r"</td><td>2</td>(.*?)</tr>", seed_tab)
    assert row, (s["point"], seed_tab)
    cells = re.findall(r"<td>(.*?)</td>", row.group(1))
    assert len(cells) == len(cls), cells
    for c, cell in zip(cls, cells):
        mean, sd = (float(x) for x in cell.split(" ± "))
        assert abs(mean - float(s[f"{c}_final_mean"])) < 6e-5, (c, cell, s)
        assert abs(sd - float(s[f"{c}_final_std"])) < 6e-5, (c, cell, s)

def evals(path):
    return {e["method"]: e for e in map(json.loads, open(path)) if e["event"] == "evaluation"}
fresh_run = 0
for p, reused in [("p00_seed1_keep0.3", set()), ("p01_seed1_keep0.1", {"frozen", "sotu@0.3"}),
                  ("p02_seed2_keep0.3", set()), ("p03_seed2_keep0.1", {"frozen", "sotu@0.3"})]:
    ev = evals(f"{sw}/points/{p}/metrics.jsonl")
    got = {m for m, e in ev.items() if e.get("reused")}
    assert got == reused, (p, got, reused)
    fresh_run += sum(1 for m, e in ev.items() if not e.get("reused") and m != "finetuned")
assert fresh_run == 6, f"expected 3 evaluations per seed group, got {fresh_run}"
# what p01 reused equals a fresh evaluation of the same models
mine = evals(f"{sw}/points/p01_seed1_keep0.1/metrics.jsonl")
fresh = evals(f"{work}/fresh/metrics.jsonl")
for m in ("frozen", "sotu@0.3", "sotu"):
    assert mine[m]["val_acc"] == fresh[m]["val_acc"], (m, mine[m]["val_acc"], fresh[m]["val_acc"])
    for c, v in mine[m]["classifiers"].items():
        assert v["acc_matrix"] == fresh[m]["classifiers"][c]["acc_matrix"], (m, c)
print("sweep summary: 4 points x 5 classifiers, seeds aggregated, 6 evaluations for 10 methods, "
      "reused equal fresh")
PY
echo "sweep_summary passed in $(elapsed)"
