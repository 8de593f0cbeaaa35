#!/usr/bin/env bash
# Integrity of the HDF5 files sotu writes with weights (io/h5util.h,
# sotu_h5_dcpl_checked): every float dataset of a run checkpoint, a weights
# file from import and from pretrain, and of predictions carries a Fletcher32
# checksum (h5py sees it); one flipped exponent bit in /merged (at the
# dataset's byte offset in the file) makes eval, export, predict and inspect
# fail with exit 3 naming the dataset (before: the damaged model was
# evaluated, ridge 0.946 -> 0.450, exported and used with exit 0), and h5py
# refuses it too; a flipped bit in a task's head likewise. Files without
# checksums (the committed data/pretrained backbone, h5py-written weights)
# still read. export refuses weights that are NaN or infinite.
set -euo pipefail
: "${SOTU_BIN:?}" "${SOTU_SOURCE_DIR:?}" "${SOTU_PYTHON:=/usr/bin/python3}"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-checksums.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
S="$SOTU_BIN"
# Open MPI leaks at exit: under ASan the commands that start MPI (train,
# eval) run without leak detection, as the MPI tests do (.ci/run).
mpi_cmd() { ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" "$@"; }

"$S" -q data fmnist --preset fmnist5 --out "$work/tasks" --train 96 --test 64
"$SOTU_PYTHON" "$SOTU_SOURCE_DIR/tests/reference/make_random_weights.py" \
  "$work/vit.h5" 28 1 4 32 2 2 64 10 7
mpi_cmd "$S" -q train "$SOTU_SOURCE_DIR/examples/quickstart.yaml" \
  --set "data.manifest=$work/tasks/manifest.yaml" --set "model.pretrained=$work/vit.h5" \
  --set train.epochs=1 --set train.batch_size=32 --set train.max_steps=3 --set train.threads=1 \
  --set train.warmup_steps=1 --set sotu.keep=0.3 --set "eval.baselines=[]" \
  --set "output.dir=$work/run" > /dev/null
ck="$work/run/checkpoint.h5"
"$S" -q export safetensors "$work/vit.h5" "$work/vit.safetensors" > /dev/null
"$S" -q import safetensors "$work/vit.safetensors" "$work/imported.h5" > /dev/null
"$S" -q predict "$ck" --images "$work/tasks/t00.h5" --out "$work/pred.h5" --task 0 > /dev/null
"$S" -q pretrain --set "pretrain.data_dir=/usr/share/datasets/fashion-mnist" \
  --set pretrain.epochs=1 --set pretrain.batch_size=256 --set pretrain.warmup_steps=1 \
  --set train.max_steps=2 --set train.threads=1 --set model.dim=8 --set model.depth=1 \
  --set model.heads=2 --out "$work/pretrained.h5" > /dev/null

# Every float dataset has a Fletcher32 checksum (h5py's view of the filter).
"$SOTU_PYTHON" - "$ck" "$work/imported.h5" "$work/pretrained.h5" "$work/pred.h5" <<'EOF'
import sys
import h5py
for path in sys.argv[1:]:
    n = 0
    def visit(name, obj):
        global n
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" and obj.size > 0:
            assert obj.fletcher32, f"{path}: /{name} has no checksum"
            n += 1
    with h5py.File(path) as f:
        f.visititems(visit)
    assert n > 0, path
    print(f"{path}: {n} float datasets, each with a Fletcher32 checksum")
EOF
echo "ok: checkpoint, imported and pretrained weights and predictions carry checksums"

# flip FILE DATASET: flips an exponent bit of element 3 of DATASET in place,
# at the dataset's byte offset (a chunked dataset's first chunk).
flip() {
  "$SOTU_PYTHON" - "$1" "$2" <<'EOF'
import sys
import h5py
path, name = sys.argv[1], sys.argv[2]
with h5py.File(path, "r") as f:
    d = f[name]
    off = d.id.get_chunk_info(0).byte_offset if d.chunks else d.id.get_offset()
b = bytearray(open(path, "rb").read())
b[off + 3 * 4 + 3] ^= 0x40  # float32 little-endian: bit 30, in the exponent
open(path, "wb").write(b)
EOF
}

# fails3 WHAT NAME -- command: exit 3, the message names the dataset.
fails3() {
  local what=$1 name=$2 rc=0
  shift 3
  "$@" > "$work/out" 2> "$work/err" || rc=$?
  if [[ $rc -ne 3 ]] || ! grep -qF "$name" "$work/err" || ! grep -qi "checksum" "$work/err"; then
    cat "$work/err"
    fail "$what on a damaged file: exit $rc (expected 3 naming $name and the checksum)"
  fi
}

cp "$ck" "$work/bad.h5"
flip "$work/bad.h5" /merged/blocks.0.mlp.fc1.weight
ds=/merged/blocks.0.mlp.fc1.weight
fails3 eval "$ds" -- mpi_cmd "$S" eval "$work/bad.h5" --tasks "$work/tasks/manifest.yaml"
fails3 export "$ds" -- "$S" export safetensors "$work/bad.h5" "$work/bad.safetensors" --task 0
[[ ! -e $work/bad.safetensors ]] || fail "export of a damaged checkpoint wrote a file"
fails3 predict "$ds" -- "$S" predict "$work/bad.h5" --images "$work/tasks/t00.h5" \
  --out "$work/badp.h5" --task 0
fails3 inspect "$ds" -- "$S" inspect "$work/bad.h5"
if "$SOTU_PYTHON" -c "import h5py,sys; h5py.File(sys.argv[1])[sys.argv[2]][...]" \
     "$work/bad.h5" "$ds" 2> "$work/h5py.err"; then
  fail "h5py read the damaged dataset"
fi
grep -qi "fletcher32" "$work/h5py.err" || { cat "$work/h5py.err"; fail "h5py: no checksum error"; }
echo "ok: a flipped bit in $ds: eval, export, predict, inspect exit 3 naming it; h5py refuses it"

cp "$ck" "$work/badhead.h5"
head=/heads/t01-inv-2cls/weight
flip "$work/badhead.h5" "$head"
fails3 eval "$head" -- mpi_cmd "$S" eval "$work/badhead.h5" --tasks "$work/tasks/manifest.yaml"
fails3 inspect "$head" -- "$S" inspect "$work/badhead.h5"
echo "ok: a flipped bit in $head: eval and inspect exit 3 naming it"

cp "$work/imported.h5" "$work/badw.h5"
flip "$work/badw.h5" /weights/blocks.1.attn.qkv.weight
fails3 "train from damaged weights" blocks.1.attn.qkv.weight -- mpi_cmd "$S" train \
  "$SOTU_SOURCE_DIR/examples/quickstart.yaml" --set "data.manifest=$work/tasks/manifest.yaml" \
  --set "model.pretrained=$work/badw.h5" --set train.max_steps=1 --set "output.dir=$work/r2"
echo "ok: train refuses a damaged pretrained weights file (exit 3 naming the tensor)"

# Files without checksums still read: the committed backbone, h5py's weights.
committed="$SOTU_SOURCE_DIR/data/pretrained/vit-tiny-fmnist.h5"
if [[ -f $committed ]]; then
  "$S" inspect "$committed" > "$work/old.out" || fail "inspect of $committed"
  grep -q "checksums   none" "$work/old.out" || fail "inspect: no 'checksums none' line"
  "$S" -q export safetensors "$committed" "$work/old.safetensors" > /dev/null \
    || fail "export of $committed"
fi
"$S" -q predict "$work/vit.h5" --images "$work/tasks/t00.h5" --out "$work/old.h5" > /dev/null \
  || fail "predict with h5py-written weights"
echo "ok: weights files without checksums still read"

# export refuses NaN and Inf.
for bad in nan inf; do
  cp "$work/vit.h5" "$work/$bad.h5"
  "$SOTU_PYTHON" -c "
import h5py, sys
with h5py.File(sys.argv[1], 'r+') as f:
    d = f['weights/blocks.0.norm1.weight']; v = d[...]; v[5] = float(sys.argv[2]); d[...] = v
" "$work/$bad.h5" "$bad"
  rc=0
  "$S" export safetensors "$work/$bad.h5" "$work/$bad.safetensors" 2> "$work/err" || rc=$?
  [[ $rc -eq 3 ]] && grep -q "blocks.0.norm1.weight' element 5 is" "$work/err" \
    || { cat "$work/err"; fail "export of $bad weights: exit $rc"; }
  [[ ! -e $work/$bad.safetensors ]] || fail "export of $bad weights wrote a file"
done
echo "ok: export refuses NaN and Inf weights (exit 3 naming the tensor and element)"
echo "checksums: ok"
