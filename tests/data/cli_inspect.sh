#!/usr/bin/env bash
# `sotu inspect` on a task file, a manifest and a weights file (made with
# h5py); an unknown file and a missing one give exit codes 3 and 4.
set -euo pipefail
: "${SOTU_BIN:?}" "${SOTU_PYTHON:=/usr/bin/python3}"
tmp=$(mktemp -d /tmp/sotu-cli-inspect-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$SOTU_BIN" -q data fmnist --preset fmnist5 --out "$tmp/f5" --train 100 --test 50

out=$("$SOTU_BIN" inspect "$tmp/f5/t02.h5")
echo "$out"
grep -q "^name  *t02-vflip-2cls$" <<<"$out" || fail "task name"
grep -q "^classes  *2$" <<<"$out" || fail "classes"
grep -q "\[N,28,28,1\] uint8" <<<"$out" || fail "shape"
grep -q "^train  *100 images, pixel mean [0-9.]*$" <<<"$out" || fail "train line"
grep -Eq "^ +0  Coat +50 +25$" <<<"$out" || fail "histogram row 0"
grep -Eq "^ +1  Sandal +50 +25$" <<<"$out" || fail "histogram row 1"

out=$("$SOTU_BIN" inspect "$tmp/f5/manifest.yaml")
echo "$out"
grep -q "^tasks  *5$" <<<"$out" || fail "task count"
grep -Eq "^ +4  t04-pperm-2cls +t04.h5 +2 +100 +50$" <<<"$out" || fail "task row"
grep -Eq "total +500 +250$" <<<"$out" || fail "total row"

"$SOTU_PYTHON" - "$tmp/w.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["format"] = "sotu-weights"
    f.attrs["format_version"] = np.int32(1)
    for k, v in dict(image_size=28, channels=1, patch=7, dim=8, depth=1, heads=2,
                     mlp_hidden=32, classes=10).items():
        f.attrs[k] = np.int32(v)
    g = f.create_group("weights")
    g["cls_token"] = np.zeros((1, 1, 8), np.float32)
    g["head.weight"] = np.zeros((10, 8), np.float32)
    g["head.bias"] = np.zeros((10,), np.float32)
PY
out=$("$SOTU_BIN" -v inspect "$tmp/w.h5")
echo "$out"
grep -q "dim 8, depth 1, heads 2" <<<"$out" || fail "model config"
grep -q "tensors  *3 in /weights, 98 parameters" <<<"$out" || fail "tensor count"
grep -Eq "head.weight +\[10,8\] +80" <<<"$out" || fail "per-tensor shape with -v"

echo "not a sotu file" > "$tmp/notes.txt"
set +e
"$SOTU_BIN" inspect "$tmp/notes.txt" 2>"$tmp/err"; rc=$?
set -e
[ "$rc" = 3 ] || fail "unknown file: exit $rc, expected 3"
grep -q "notes.txt" "$tmp/err" || fail "unknown file message does not name the file"
set +e
"$SOTU_BIN" inspect "$tmp/absent.h5" 2>"$tmp/err"; rc=$?
set -e
[ "$rc" = 4 ] || fail "missing file: exit $rc, expected 4"
set +e
"$SOTU_BIN" inspect 2>/dev/null; rc=$?
set -e
[ "$rc" = 2 ] || fail "no argument: exit $rc, expected 2"
"$SOTU_BIN" inspect --help | grep -q "usage: sotu" || fail "--help"
echo "inspect: all checks passed"
