#!/usr/bin/env bash
# `sotu data fmnist --preset fmnist5` writes task files that h5py opens with
# the documented names, dtypes, shapes and attributes, and a manifest that
# PyYAML reads; the run is deterministic.
set -euo pipefail
: "${SOTU_BIN:?}" "${SOTU_PYTHON:=/usr/bin/python3}"
tmp=$(mktemp -d /tmp/sotu-cli-fmnist5-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

"$SOTU_BIN" data fmnist --preset fmnist5 --out "$tmp/f5" --train 120 --test 40 --seed 3
"$SOTU_BIN" -q data fmnist --preset fmnist5 --out "$tmp/again" --train 120 --test 40 --seed 3
for f in "$tmp"/f5/t0*.h5; do
    cmp "$f" "$tmp/again/$(basename "$f")"
done
cmp "$tmp/f5/manifest.yaml" "$tmp/again/manifest.yaml"

"$SOTU_PYTHON" - "$tmp/f5" <<'PY'
import os, sys
import h5py, numpy as np, yaml

d = sys.argv[1]
with open(os.path.join(d, "manifest.yaml")) as f:
    m = yaml.safe_load(f)
assert m["name"] == "fmnist5", m
assert len(m["tasks"]) == 5, m
names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
for i, t in enumerate(m["tasks"]):
    assert set(t) == {"name", "file", "classes", "train", "test"}, t
    assert t["classes"] == 2 and t["train"] == 120 and t["test"] == 40, t
    with h5py.File(os.path.join(d, t["file"]), "r") as h:
        assert h.attrs["format"] == "sotu-task", h.attrs["format"]
        assert int(h.attrs["format_version"]) == 1
        assert h.attrs["name"] == t["name"], (h.attrs["name"], t["name"])
        assert int(h.attrs["classes"]) == 2
        assert [str(c) for c in h.attrs["class_names"]] == names[2 * i:2 * i + 2], h.attrs["class_names"]
        for split, n in (("train", 120), ("test", 40)):
            im, lab = h[split]["images"], h[split]["labels"]
            assert im.dtype == np.uint8, im.dtype
            assert im.shape == (n, 28, 28, 1), im.shape
            assert lab.dtype == np.int32, lab.dtype
            assert lab.shape == (n,), lab.shape
            l = lab[()]
            assert l.min() >= 0 and l.max() < 2, (l.min(), l.max())
            assert abs(int((l == 0).sum()) - int((l == 1).sum())) <= 1
            assert im[()].std() > 10
print("h5py: 5 task files and the manifest check out")
PY
