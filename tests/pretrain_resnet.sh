#!/bin/bash
# `sotu pretrain` with model.arch resnet18 on a small made-up Fashion-MNIST
# (IDX .gz files of 300 train / 100 test random 28x28 images): the run
# writes a ResNet weights file (arch resnet, 10 classes, no CLR) that
# `sotu inspect` describes and h5py reads; --init continues from it; a
# mismatched --init is refused; the ViT path still writes a ViT file; a
# ViT file at --out is not overwritten by a ResNet run.
# Environment (set by tests/CMakeLists.txt): SOTU_BIN, SOTU_PYTHON.
set -euo pipefail
bin=${SOTU_BIN:?SOTU_BIN is not set}
py=${SOTU_PYTHON:-/usr/bin/python3}
work=pretrain_resnet.d
rm -rf "$work"
mkdir -p "$work/fmnist"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$py" - "$work/fmnist" <<'EOF'
import gzip, os, struct, sys
import numpy as np
d = sys.argv[1]
rng = np.random.default_rng(0)
for prefix, n in (("train", 300), ("t10k", 100)):
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    # Class-dependent brightness so a few steps can learn something.
    images = (rng.integers(0, 64, (n, 28, 28)) + labels[:, None, None] * 19).astype(np.uint8)
    with gzip.open(os.path.join(d, f"{prefix}-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
    with gzip.open(os.path.join(d, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 2049, n) + labels.tobytes())
EOF

common=(--set "pretrain.data_dir=$work/fmnist" --set pretrain.epochs=1
        --set pretrain.batch_size=32 --set pretrain.warmup_steps=2 --set train.threads=1)
rn=(--set model.arch=resnet18 --set model.width=2)
out=$("$bin" -q pretrain "${common[@]}" "${rn[@]}" --out "$work/r18.h5") || fail "pretrain resnet18"
echo "$out"
grep -q "test_acc" <<<"$out" || fail "no result line"
info=$("$bin" inspect "$work/r18.h5")
echo "$info"
grep -q "arch        resnet18" <<<"$info" || fail "inspect arch"
grep -q "width 2, small-input" <<<"$info" || fail "inspect width/stem"
grep -q "clr none, classes 10" <<<"$info" || fail "inspect clr/classes"

"$py" - "$work/r18.h5" <<'EOF' || fail "h5py check"
import sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    a = f.attrs
    assert a["arch"] == "resnet" and a["depth"] == 18 and a["width"] == 2, dict(a)
    g = f["weights"]
    assert g["fc.weight"].shape == (10, 16), g["fc.weight"].shape
    # 300 images in batches of 32: 10 steps, each advancing every BatchNorm's counter.
    assert int(g["bn1.num_batches_tracked"][()]) == 10, g["bn1.num_batches_tracked"][()]
    assert float(g["bn1.running_var"][()].min()) > 0
print("h5py: ok")
EOF

"$bin" -q pretrain "${common[@]}" "${rn[@]}" --init "$work/r18.h5" --out "$work/r18b.h5" \
    >/dev/null || fail "--init from a resnet file"
"$py" -c "
import h5py, sys
n = int(h5py.File(sys.argv[1], 'r')['weights/layer1.0.bn1.num_batches_tracked'][()])
assert n == 20, n
" "$work/r18b.h5" || fail "--init keeps counting num_batches_tracked"

set +e
msg=$("$bin" -q pretrain "${common[@]}" --set model.arch=resnet18 --set model.width=4 \
      --init "$work/r18.h5" --out "$work/bad.h5" 2>&1)
rc=$?
set -e
[ $rc -ne 0 ] && grep -q "differs from model" <<<"$msg" || fail "mismatched --init: rc $rc $msg"

"$bin" -q pretrain "${common[@]}" --set model.dim=8 --set model.depth=1 --set model.heads=2 \
    --out "$work/vit.h5" >/dev/null || fail "pretrain vit"
"$bin" inspect "$work/vit.h5" | grep -q "arch        vit" || fail "vit file"

# A ViT backbone at the output path is not overwritten by a ResNet run.
cp "$work/vit.h5" "$work/vit-before.h5"
set +e
msg=$("$bin" -q pretrain "${common[@]}" "${rn[@]}" --out "$work/vit.h5" 2>&1)
rc=$?
set -e
[ $rc -eq 2 ] && grep -q "holds a pretrained vit model" <<<"$msg" || fail "other arch: rc $rc $msg"
cmp -s "$work/vit.h5" "$work/vit-before.h5" || fail "the ViT file was touched"
echo "pretrain_resnet: ok"
