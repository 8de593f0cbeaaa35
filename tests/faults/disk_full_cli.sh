#!/usr/bin/env bash
# Every other command that writes a file, run as the real sotu binary whose
# output cannot be written: on a full tmpfs (root) and under a file-size
# limit of 0 (ulimit -f 0, any write fails with EFBIG; SIGXFSZ is left to
# sotu, which ignores it). Each replaces an existing output (--force), and
# must exit 4 with a message naming the file and strerror ("No space left on
# device" / "File too large"), leave the previous file bitwise intact and no
# temporary file, and not crash (the old failure: exit 139 in libhdf5's exit
# handler). Commands: import safetensors, export safetensors, predict,
# pretrain, data fmnist, data import-idx, data import-images, data manifest,
# eval --out (tmpfs only: its MPI start-up needs files of its own).
# Skips (exit 77) when neither a tmpfs mount nor a file-size limit works.
set -euo pipefail
: "${SOTU_BIN:?}" "${SOTU_SOURCE_DIR:?}" "${SOTU_PYTHON:=/usr/bin/python3}"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-diskfull-cli.XXXXXX")
fail() { echo "FAIL: $*"; exit 1; }
source "$SOTU_SOURCE_DIR/tests/faults/lib_fs.sh"
cleanup() { fs_cleanup; rm -rf "$work"; }
trap cleanup EXIT

fs_probe
[[ $mounts == yes ]] || echo "note: cannot mount a tmpfs (not root?): file-size limit only"

# Inputs, and one good output of each command (the "previous" files).
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
ckpt="$work/run/checkpoint.h5"
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
mkdir -p "$work/good"
"$S" -q export safetensors "$work/vit.h5" "$work/vit.safetensors" > /dev/null
"$S" -q import safetensors "$work/vit.safetensors" "$work/good/import.h5" > /dev/null
"$S" -q export safetensors "$ckpt" "$work/good/export.safetensors" --task 0 > /dev/null
"$S" -q predict "$ckpt" --images "$work/tasks/t00.h5" --out "$work/good/predict.h5" --task 0 > /dev/null
"$S" -q pretrain "${pre[@]}" --out "$work/good/pretrain.h5" > /dev/null
"$S" -q data import-idx "${idx[@]}" --out "$work/good/idx.h5"
"$S" -q data import-images "$work/images" --out "$work/good/images.h5" --size 12 > /dev/null
"$S" -q data manifest "$work/tasks" --out "$work/good/manifest.yaml" > /dev/null

# cases: name | output file | previous file | command (OUT stands for the output)
cases=(
  "import|import.h5|import.h5|import safetensors $work/vit.safetensors OUT --force"
  "export|export.safetensors|export.safetensors|export safetensors $ckpt OUT --task 0 --force"
  "predict|predict.h5|predict.h5|predict $ckpt --images $work/tasks/t00.h5 --out OUT --task 0 --force"
  "pretrain|pretrain.h5|pretrain.h5|pretrain ${pre[*]} --out OUT --force"
  "data-fmnist|t00.h5|$work/tasks/t00.h5|data fmnist --preset fmnist5 --out DIR --train 96 --test 64 --force"
  "data-import-idx|idx.h5|idx.h5|data import-idx ${idx[*]} --out OUT --force"
  "data-import-images|images.h5|images.h5|data import-images $work/images --out OUT --size 12 --force"
  "data-manifest|manifest.yaml|manifest.yaml|data manifest $work/tasks --out OUT --force"
  "eval|summary.csv|$work/run/summary.csv|eval $ckpt --tasks $work/tasks/manifest.yaml --out DIR --force"
)

# one_case MODE NAME OUTFILE PREV COMMAND: MODE full (tmpfs) or limit (ulimit -f 0).
one_case() {
  local mode=$1 name=$2 file=$3 prev=$4 cmd=$5 dir rc reason
  [[ $prev == /* ]] || prev="$work/good/$prev"
  dir="$work/$mode-$name"
  if [[ $mode == full ]]; then
    small_fs "$dir" 512k || fail "mount for $name"
    reason="No space left on device"
  else
    mkdir -p "$dir"
    reason="File too large"
  fi
  cp "$prev" "$dir/$file"
  cmd=${cmd//OUT/$dir\/$file}
  cmd=${cmd//DIR/$dir}
  [[ $mode == full ]] && fill_fs "$dir"
  set +e
  if [[ $mode == full ]]; then
    local run=()
    [[ $name == eval ]] && run=(mpi_cmd)
    # shellcheck disable=SC2086
    "${run[@]}" "$S" $cmd > "$work/$mode-$name.out" 2> "$work/$mode-$name.err"
    rc=$?
  else
    # Under the limit sotu's own stdout and stderr go through a pipe (a pipe
    # has no size limit; a log file would).
    # shellcheck disable=SC2086
    (ulimit -f 0; exec "$S" $cmd) 2>&1 | cat > "$work/$mode-$name.err"
    rc=${PIPESTATUS[0]}
  fi
  set -e
  expect_io_error "$name ($mode)" "$rc" "$work/$mode-$name.err" "$dir/$file" "$reason"
  cmp -s "$dir/$file" "$prev" || fail "$name ($mode): the previous $file changed"
  no_tmp_files "$dir"
  rm -f "$dir/.filler"
  echo "ok: $name ($mode): exit 4, '$reason' naming $file, previous file intact"
}

for c in "${cases[@]}"; do
  IFS='|' read -r name file prev cmd <<< "$c"
  [[ $mounts == yes ]] && one_case full "$name" "$file" "$prev" "$cmd"
  [[ $limits == yes && $name != eval ]] && one_case limit "$name" "$file" "$prev" "$cmd"
done
echo "disk_full_cli: ok"
