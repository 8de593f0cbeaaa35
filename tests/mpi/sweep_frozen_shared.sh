#!/usr/bin/env bash
# The frozen baseline is trained once per frozen group (issue 17 item 2:
# evaluation must not dominate a sweep): a sweep of sotu.tuning [posthoc,
# masked] x sotu.keep [0.3, 0.1] on 3 ranks makes three training groups
# (posthoc shares one; masked trains one per keep) but only one set of frozen
# heads, since the frozen heads depend on train.* alone. The masked points
# reuse the posthoc point's frozen baseline, and what they reuse equals a
# fresh evaluation (`sotu merge` of the masked point, one rank, no cache).
set -euo pipefail
source "$SOTU_SOURCE_DIR/tests/slurm/common.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-frozenshared.XXXXXX")
trap 'rm -rf "$work"' EXIT
sotu_tiny_setup "$work"
sed -i 's/baselines: \[finetuned\]/baselines: [finetuned, frozen]/' "$work/tiny.yaml"
cat >> "$work/tiny.yaml" <<YAML
sweep:
  sotu.tuning: [posthoc, masked]
  sotu.keep: [0.3, 0.1]
YAML
mpiexec --oversubscribe -n 3 "$SOTU_BIN" train "$work/tiny.yaml" --set "output.dir=$work/sw" \
  > "$work/sw.out" 2> "$work/sw.err" || { cat "$work/sw.err"; exit 1; }
trained=$(grep -c "baselines: frozen heads" "$work/sw.err" || true)
[[ $trained == 1 ]] || { cat "$work/sw.err"; echo "frozen heads trained $trained times, want 1"; exit 1; }
"$SOTU_BIN" -q merge "$work/sw/points/p03_tuningmasked_keep0.1" --out "$work/fresh" \
  > /dev/null 2> "$work/fresh.err" || { cat "$work/fresh.err"; exit 1; }

"$SOTU_PYTHON" - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def evals(path):
    return {e["method"]: e for e in map(json.loads, open(path)) if e["event"] == "evaluation"}
for p, want in [("p00_tuningposthoc_keep0.3", False), ("p01_tuningposthoc_keep0.1", True),
                ("p02_tuningmasked_keep0.3", True), ("p03_tuningmasked_keep0.1", True)]:
    ev = evals(f"{work}/sw/points/{p}/metrics.jsonl")
    assert bool(ev["frozen"].get("reused")) == want, (p, ev["frozen"].get("reused"))
    assert not ev["sotu"].get("reused"), p
mine = evals(f"{work}/sw/points/p03_tuningmasked_keep0.1/metrics.jsonl")
fresh = evals(f"{work}/fresh/metrics.jsonl")
for m in ("frozen", "sotu"):
    assert mine[m]["val_acc"] == fresh[m]["val_acc"], (m, mine[m]["val_acc"], fresh[m]["val_acc"])
    for c, v in mine[m]["classifiers"].items():
        assert v["acc_matrix"] == fresh[m]["classifiers"][c]["acc_matrix"], (m, c)
print("frozen heads trained once for 3 training groups; the masked point's reused frozen "
      "baseline equals a fresh evaluation")
PY
echo "sweep_frozen_shared passed in $(elapsed)"
