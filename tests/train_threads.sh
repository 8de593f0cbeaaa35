#!/usr/bin/env bash
# `sotu train` serial at 1 and at 3 threads (more threads than this machine's
# cores is fine: only how the work is split matters) gives bitwise the same
# merged weights and deltas (SoTU on the committed tiny ViT, whose products
# are cut into several tiles and whose weight gradients are summed over row
# chunks) and the same CLR modules (the committed ResNet-18 width 8), and
# the same metrics but for times and the ridge classifiers (README, "Training
# runs").
set -euo pipefail
: "${SOTU_BIN:?}" "${SOTU_SOURCE_DIR:?}" "${SOTU_PYTHON:=/usr/bin/python3}"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-threads.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$SOTU_BIN" -q data fmnist --preset fmnist5 --out "$work/tasks" --train 96 --test 64
common=(--set "data.manifest=$work/tasks/manifest.yaml" --set train.epochs=1
        --set train.batch_size=32 --set train.max_steps=3 --set train.warmup_steps=1)
sotu=(--set "model.pretrained=$SOTU_SOURCE_DIR/data/pretrained/vit-tiny-fmnist.h5"
      --set sotu.keep=0.3 --set "eval.baselines=[finetuned]")
clr=(--set method=clr --set "model.pretrained=$SOTU_SOURCE_DIR/data/pretrained/resnet18-w8-fmnist.h5"
     --set train.lr=3.0e-2 --set train.weight_decay=0.0 --set "eval.baselines=[frozen]")
for t in 1 3; do
  for m in sotu clr; do
    declare -n extra=$m
    "$SOTU_BIN" -q train "$SOTU_SOURCE_DIR/examples/quickstart.yaml" "${common[@]}" "${extra[@]}" \
      --set train.threads=$t --set "output.dir=$work/$m$t" \
      > "$work/$m$t.out" 2> "$work/$m$t.err" || { cat "$work/$m$t.err"; exit 1; }
  done
done

"$SOTU_PYTHON" - "$work" <<'PY'
import sys
import h5py
import numpy as np

work = sys.argv[1]

def datasets(path, group):
    out = {}
    with h5py.File(path) as f:
        f[group].visititems(lambda k, v: out.__setitem__(k, v[()])
                            if isinstance(v, h5py.Dataset) else None)
    return out

for run, group in [("sotu", "merged"), ("clr", "clr")]:
    a = datasets(f"{work}/{run}1/checkpoint.h5", group)
    b = datasets(f"{work}/{run}3/checkpoint.h5", group)
    assert a and a.keys() == b.keys(), run
    bad = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not bad, f"{run}: /{group} differs between 1 and 3 threads in {bad[:3]}"
    print(f"{run}: /{group} bitwise equal at 1 and 3 threads ({len(a)} datasets)")
PY
for f in "$work"/sotu1/deltas/*.sotud; do
  cmp "$f" "$work/sotu3/deltas/$(basename "$f")"
done
echo "deltas bitwise equal at 1 and 3 threads"
# Everything metrics.jsonl records but times and the ridge classifiers
# (their lambda search and solve run multi-threaded OpenBLAS and LAPACK, whose
# sums depend on the thread count): losses, accuracies, kept counts, bytes.
"$SOTU_PYTHON" - "$work" <<'PY'
import json
import sys

def events(path):
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items()
                    if k not in ("time", "seconds", "ingest_ms", "wall_seconds")
                    and not k.startswith("ridge")}
        return [strip(x) for x in v] if isinstance(v, list) else v
    return [strip(json.loads(line)) for line in open(path)]

for run in ("sotu", "clr"):
    a, b = (events(f"{sys.argv[1]}/{run}{t}/metrics.jsonl") for t in (1, 3))
    assert len(a) == len(b) and len(a) > 2, run
    for x, y in zip(a, b):
        assert x == y, f"{run}: metrics differ between 1 and 3 threads:\n{x}\n{y}"
    print(f"{run}: metrics.jsonl equal at 1 and 3 threads but for times ({len(a)} events)")
PY
