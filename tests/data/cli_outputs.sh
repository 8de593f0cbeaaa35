#!/usr/bin/env bash
# Output commands never overwrite an input, nor an existing file without
# --force (io/fsutil.h, sotu_output_check), and export/predict need --task
# on a run checkpoint with task heads. For predict, export, import, data
# import-idx / import-images / manifest / fmnist, pretrain and eval --out:
#  - the output is an input: the same path, a symlink to it, a hard link to
#    it: exit 2 "is also an input", with or without --force, the input
#    bitwise unchanged (before: `predict ck.h5 --out ck.h5` exited 0 and the
#    checkpoint was gone);
#  - the output exists: exit 2 "refusing to overwrite ... pass --force", the
#    file unchanged; with --force it is replaced, exit 0.
# export / predict of a run checkpoint without --task: exit 2 listing the
# tasks (before: exit 0 with the 10-class pretraining head); with --task the
# safetensors metadata and the predictions carry the task's class names
# (those of its task file); --pretrained-head asks for /merged's own head.
set -euo pipefail
: "${SOTU_BIN:?}" "${SOTU_SOURCE_DIR:?}" "${SOTU_PYTHON:=/usr/bin/python3}"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-outputs.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
S="$SOTU_BIN"
# Open MPI leaks at exit: under ASan the commands that start MPI (train,
# eval) run without leak detection, as the MPI tests do (.ci/run).
mpi_cmd() { ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" "$@"; }
sotu() { case $1 in train|eval) mpi_cmd "$S" "$@" ;; *) "$S" "$@" ;; esac; }

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
"$SOTU_PYTHON" - "$work" <<'EOF'
import gzip, os, struct, sys
import numpy as np
from PIL import Image
d = sys.argv[1]
rng = np.random.default_rng(0)
os.makedirs(f"{d}/fmnist")
for prefix, n in (("train", 300), ("t10k", 100)):
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    images = (rng.integers(0, 64, (n, 28, 28)) + labels[:, None, None] * 19).astype(np.uint8)
    with gzip.open(f"{d}/fmnist/{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
    with gzip.open(f"{d}/fmnist/{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 2049, n) + labels.tobytes())
for c in ("cat", "dog"):
    os.makedirs(f"{d}/images/{c}")
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(
            f"{d}/images/{c}/{i}.png")
EOF
fm="$work/fmnist"
idx=(--images "$fm/train-images-idx3-ubyte.gz" --labels "$fm/train-labels-idx1-ubyte.gz"
     --test-images "$fm/t10k-images-idx3-ubyte.gz" --test-labels "$fm/t10k-labels-idx1-ubyte.gz")
pre=(--set "pretrain.data_dir=$fm" --set pretrain.epochs=1 --set pretrain.batch_size=32
     --set pretrain.warmup_steps=2 --set train.threads=1 --set model.dim=8 --set model.depth=1
     --set model.heads=2)
"$S" -q pretrain "${pre[@]}" --out "$work/pre.h5" > /dev/null

# expect RC PATTERN FILE -- command...: the exit status, a message, and FILE
# (an input or an existing output) bitwise unchanged.
expect() {
  local want=$1 pattern=$2 file=$3 rc=0
  shift 4
  cp "$file" "$work/before"
  "$@" > "$work/out" 2> "$work/err" || rc=$?
  if [[ $rc -ne $want ]] || ! grep -qF -- "$pattern" "$work/err"; then
    cat "$work/err"
    fail "$* : exit $rc (expected $want and '$pattern')"
  fi
  cmp -s "$file" "$work/before" || fail "$*: $file changed"
}

# same_file NAME INPUT -- command with OUT: the output is the input, a
# symlink to it, a hard link to it; refused with and without --force.
same_file() {
  local name=$1 input=$2
  shift 3
  ln -sf "$input" "$work/$name.sym"
  ln -f "$input" "$work/$name.hard"
  local out args
  for out in "$input" "$work/$name.sym" "$work/$name.hard"; do
    for force in "" --force; do
      args=("${@//OUT/$out}")
      expect 2 "is also an input" "$input" -- "$S" "${args[@]}" $force
    done
  done
  rm -f "$work/$name.sym" "$work/$name.hard"
  echo "ok: $name: an output that is an input (path, symlink, hard link) is refused, exit 2"
}

# exists NAME OUT -- command with OUT: refused without --force, replaced with it.
exists() {
  local name=$1 out=$2 rc=0
  shift 3
  [[ -e $out ]] || echo "placeholder" > "$out"
  local args=("${@//OUT/$out}")
  expect 2 "refusing to overwrite $out (exists); pass --force" "$out" -- sotu "${args[@]}"
  sotu "${args[@]}" --force > "$work/out" 2> "$work/err" || rc=$?
  [[ $rc -eq 0 ]] || { cat "$work/err"; fail "$name --force: exit $rc"; }
  echo "ok: $name: an existing output needs --force"
}

same_file predict "$ck" -- predict "$ck" --images "$work/tasks/t00.h5" --out OUT --task 0
same_file predict-images "$work/tasks/t00.h5" -- predict "$ck" --images "$work/tasks/t00.h5" --out OUT --task 0
exists predict "$work/p.h5" -- predict "$ck" --images "$work/tasks/t00.h5" --out OUT --task 0
same_file export "$ck" -- export safetensors "$ck" OUT --task 0
exists export "$work/e.safetensors" -- export safetensors "$ck" OUT --task 0
same_file import "$work/vit.safetensors" -- import safetensors "$work/vit.safetensors" OUT
exists import "$work/i.h5" -- import safetensors "$work/vit.safetensors" OUT
same_file import-idx "$fm/t10k-labels-idx1-ubyte.gz" -- data import-idx "${idx[@]}" --out OUT
exists import-idx "$work/idx.h5" -- data import-idx "${idx[@]}" --out OUT
exists import-images "$work/img.h5" -- data import-images "$work/images" --out OUT --size 12
same_file manifest "$work/tasks/t02.h5" -- data manifest "$work/tasks" --out OUT
exists manifest "$work/tasks/manifest.yaml" -- data manifest "$work/tasks" --out OUT
same_file pretrain "$work/pre.h5" -- pretrain "${pre[@]}" --init "$work/pre.h5" --out OUT
exists pretrain "$work/pre2.h5" -- pretrain "${pre[@]}" --out OUT
exists eval "$work/run/summary.csv" -- eval "$ck" --tasks "$work/tasks/manifest.yaml" --out "$work/run"
# data fmnist: every file of the preset in DIR counts.
mkdir -p "$work/f5"
cp "$work/tasks/t03.h5" "$work/f5/t03.h5"
expect 2 "refusing to overwrite $work/f5/t03.h5 (exists); pass --force" "$work/f5/t03.h5" -- \
  "$S" data fmnist --preset fmnist5 --out "$work/f5" --train 96 --test 64
[[ ! -e $work/f5/t00.h5 ]] || fail "data fmnist wrote t00.h5 before refusing"
"$S" -q data fmnist --preset fmnist5 --out "$work/f5" --train 96 --test 64 --force \
  || fail "data fmnist --force"
echo "ok: data fmnist: an existing task file in DIR needs --force"

# --task on a run checkpoint with task heads.
expect 2 "is a run checkpoint with 5 task heads: pass --task T (a name or index: t00-rot90-2cls" \
  "$ck" -- "$S" export safetensors "$ck" "$work/nt.safetensors"
[[ ! -e $work/nt.safetensors ]] || fail "export without --task wrote a file"
expect 2 "--pretrained-head" "$ck" -- \
  "$S" predict "$ck" --images "$work/tasks/t00.h5" --out "$work/nt.h5"
[[ ! -e $work/nt.h5 ]] || fail "predict without --task wrote a file"
"$S" -q export safetensors "$ck" "$work/t2.safetensors" --task t02-vflip-2cls > /dev/null
"$S" -q export safetensors "$ck" "$work/pre.safetensors" --pretrained-head > /dev/null
"$S" -q predict "$ck" --images "$work/tasks/t02.h5" --out "$work/t2.h5" --task 2 > /dev/null
"$SOTU_PYTHON" - "$work" <<'EOF'
import json, struct, sys
import h5py
w = sys.argv[1]
def meta(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n])["__metadata__"]
with h5py.File(f"{w}/tasks/t02.h5") as f:
    names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["class_names"]]
m = meta(f"{w}/t2.safetensors")
assert m["task"] == "t02-vflip-2cls" and json.loads(m["class_names"]) == names, (m, names)
assert m["num_classes"] == str(len(names)), m
p = meta(f"{w}/pre.safetensors")
assert p.get("head") == "pretrained" and "task" not in p and "class_names" not in p, p
with h5py.File(f"{w}/t2.h5") as f:
    got = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["class_names"]]
    assert got == names and f.attrs["task"] == "t02-vflip-2cls", (got, dict(f.attrs))
    assert f["logits"].shape[1] == len(names)
with h5py.File(f"{w}/run/checkpoint.h5") as f:
    for t in f["tasks"]:
        assert len(f["tasks"][t].attrs["class_names"]) == f["tasks"][t].attrs["classes"], t
print("class names:", names)
EOF
echo "ok: export/predict need --task on a run checkpoint; the task's class names travel with its head"
echo "cli_outputs: ok"
