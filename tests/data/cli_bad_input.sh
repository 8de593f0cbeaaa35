#!/usr/bin/env bash
# Bad input to `sotu data` and `sotu inspect`: each case gives the documented
# exit code (2 usage, 3 bad data, 4 I/O), a message naming the file, and no
# partial output file.
set -euo pipefail
: "${SOTU_BIN:?}" "${SOTU_PYTHON:=/usr/bin/python3}"
src=${SOTU_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
tmp=$(mktemp -d /tmp/sotu-cli-bad-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# expect CODE WANT_IN_STDERR OUT_PATH -- command...: runs the command, checks the
# exit code, that stderr contains WANT (if not empty) and that OUT_PATH (a
# file or directory, if not empty) holds no file afterwards.
expect() {
    local code=$1 want=$2 out=$3
    shift 4
    local rc=0
    "$@" >"$tmp/stdout" 2>"$tmp/stderr" || rc=$?
    if [ "$rc" != "$code" ]; then
        fail "exit $rc, expected $code: $*"; cat "$tmp/stderr" >&2; return
    fi
    if [ -n "$want" ] && ! grep -qF -- "$want" "$tmp/stderr"; then
        fail "stderr lacks '$want': $*"; cat "$tmp/stderr" >&2
    fi
    if [ -n "$out" ] && [ -e "$out" ] && [ -n "$(find "$out" -type f)" ]; then
        fail "left files behind in $out: $(find "$out" -type f | tr '\n' ' ')"
    fi
    echo "ok (exit $rc): $* :: $(tail -n 1 "$tmp/stderr")"
}

S=$SOTU_BIN
out=$tmp/out

# Usage errors: 2.
expect 2 "usage" "" -- "$S" data
expect 2 "--preset is required" "$out" -- "$S" data fmnist --out "$out"
expect 2 "--out DIR is required" "" -- "$S" data fmnist --preset fmnist5
expect 2 "fmnist7" "$out" -- "$S" data fmnist --preset fmnist7 --out "$out"
expect 2 "--train 'abc'" "$out" -- "$S" data fmnist --preset fmnist5 --out "$out" --train abc
expect 2 "--train '0'" "$out" -- "$S" data fmnist --preset fmnist5 --out "$out" --train 0
expect 2 "--seed '-1'" "$out" -- "$S" data fmnist --preset fmnist5 --out "$out" --seed -1
expect 2 "needs a value" "$out" -- "$S" data fmnist --preset fmnist5 --out "$out" --test
expect 2 "unknown argument '--frobnicate'" "$out" -- "$S" data fmnist --preset fmnist5 --out "$out" --frobnicate
expect 2 "unknown subcommand" "" -- "$S" data fmnist9
expect 2 "12000" "$out" -- "$S" data fmnist --preset fmnist5 --out "$out" --train 20000
expect 2 "needs --transform" "$out" -- "$S" data fmnist --preset split5 --out "$out"
expect 2 "has its own transforms" "$out" -- "$S" data fmnist --preset fmnist53 --out "$out" --transform rot90
expect 2 "unknown transform 'blur'" "$out" -- "$S" data fmnist --preset split10 --out "$out" --transform rot90+blur
expect 2 "--test-labels is required" "" -- "$S" data import-idx --images a --labels b --test-images c --out "$tmp/x.h5"

# Bad IDX data in --data-dir: 3, and nothing written.
mk() { rm -rf "$tmp/$1"; mkdir -p "$tmp/$1"; cp "$src"/*.gz "$tmp/$1/"; }
mk trunc
f=$tmp/trunc/train-images-idx3-ubyte.gz
head -c $(( $(stat -c %s "$f") / 2 )) "$f" > "$f.cut" && mv "$f.cut" "$f"
expect 3 "train-images-idx3-ubyte.gz: truncated gzip" "$out" -- "$S" data fmnist --preset fmnist5 --out "$out" --data-dir "$tmp/trunc"

mk corrupt
"$SOTU_PYTHON" - "$tmp/corrupt/t10k-labels-idx1-ubyte.gz" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
for i in range(len(b) // 2, len(b) // 2 + 16):
    b[i] ^= 0xA5
open(p, "wb").write(bytes(b))
PY
expect 3 "t10k-labels-idx1-ubyte.gz" "$out" -- "$S" data fmnist --preset fmnist5 --out "$out" --data-dir "$tmp/corrupt"

mk magic
mv "$tmp/magic/t10k-images-idx3-ubyte.gz" "$tmp/magic/swap.gz"
cp "$tmp/magic/t10k-labels-idx1-ubyte.gz" "$tmp/magic/t10k-images-idx3-ubyte.gz"
expect 3 "magic 0x00000801, expected 0x00000803" "$out" -- "$S" data fmnist --preset fmnist5 --out "$out" --data-dir "$tmp/magic"

mk trailing
"$SOTU_PYTHON" - "$tmp/trailing/t10k-labels-idx1-ubyte.gz" <<'PY'
import gzip, sys
p = sys.argv[1]
b = gzip.open(p).read() + b"\x01\x02"
with gzip.open(p, "wb") as f:
    f.write(b)
PY
expect 3 "has 10002 bytes, header says 10000" "$out" -- "$S" data fmnist --preset fmnist5 --out "$out" --data-dir "$tmp/trailing"

mk short
"$SOTU_PYTHON" - "$tmp/short/train-labels-idx1-ubyte.gz" <<'PY'
import gzip, sys
p = sys.argv[1]
b = gzip.open(p).read()[:-100]
with gzip.open(p, "wb") as f:
    f.write(b)
PY
expect 3 "has 59900 bytes, header says 60000" "$out" -- "$S" data fmnist --preset fmnist5 --out "$out" --data-dir "$tmp/short"

# I/O errors: 4.
expect 4 "$tmp/nowhere/train-images-idx3-ubyte.gz" "$out" -- "$S" data fmnist --preset fmnist5 --out "$out" --data-dir "$tmp/nowhere"
touch "$tmp/plainfile"
expect 4 "$tmp/plainfile" "" -- "$S" data fmnist --preset fmnist5 --out "$tmp/plainfile/sub" --train 10 --test 10

# import-idx: a good file, then bad ones that leave no output.
T=$src
expect 0 "" "" -- "$S" data import-idx --images "$T/t10k-images-idx3-ubyte.gz" --labels "$T/t10k-labels-idx1-ubyte.gz" \
    --test-images "$T/t10k-images-idx3-ubyte.gz" --test-labels "$T/t10k-labels-idx1-ubyte.gz" --out "$tmp/imp/t10k.h5" --name t10k
"$S" inspect "$tmp/imp/t10k.h5" | grep -q "^classes  *10$" || fail "imported task"
mkdir -p "$tmp/imp2"
expect 3 "truncated gzip" "$tmp/imp2" -- "$S" data import-idx --images "$tmp/trunc/train-images-idx3-ubyte.gz" --labels "$T/train-labels-idx1-ubyte.gz" \
    --test-images "$T/t10k-images-idx3-ubyte.gz" --test-labels "$T/t10k-labels-idx1-ubyte.gz" --out "$tmp/imp2/t.h5"
expect 3 "has 60000 labels but $T/t10k-images-idx3-ubyte.gz has 10000 images" "$tmp/imp2" -- "$S" data import-idx \
    --images "$T/t10k-images-idx3-ubyte.gz" --labels "$T/train-labels-idx1-ubyte.gz" \
    --test-images "$T/t10k-images-idx3-ubyte.gz" --test-labels "$T/t10k-labels-idx1-ubyte.gz" --out "$tmp/imp2/t.h5"

# inspect on malformed task files and manifests: 3.
"$S" -q data fmnist --preset fmnist5 --out "$tmp/good" --train 20 --test 10
"$SOTU_PYTHON" - "$tmp/good/t00.h5" "$tmp/bad" <<'PY'
import os, shutil, sys
import h5py, numpy as np
good, d = sys.argv[1], sys.argv[2]
os.makedirs(d)
def variant(name, fn):
    p = os.path.join(d, name)
    shutil.copy(good, p)
    with h5py.File(p, "r+") as f:
        fn(f)
def float_labels(f):
    del f["train/labels"]; f["train/labels"] = np.zeros(20, np.float32)
def int16_images(f):
    del f["test/images"]; f["test/images"] = np.zeros((10, 28, 28, 1), np.int16)
def rank3(f):
    del f["train/images"]; f["train/images"] = np.zeros((20, 28, 28), np.uint8)
def out_of_range(f):
    f["test/labels"][3] = 7
def no_labels(f):
    del f["test/labels"]
def no_classes(f):
    del f.attrs["classes"]
variant("float-labels.h5", float_labels)
variant("int16-images.h5", int16_images)
variant("rank3.h5", rank3)
variant("out-of-range.h5", out_of_range)
variant("no-labels.h5", no_labels)
variant("no-classes.h5", no_classes)
PY
B=$tmp/bad
expect 3 "$B/float-labels.h5: dataset /train/labels has dtype float32, expected int32" "" -- "$S" inspect "$B/float-labels.h5"
expect 3 "$B/int16-images.h5: dataset /test/images has dtype int16, expected uint8" "" -- "$S" inspect "$B/int16-images.h5"
expect 3 "$B/rank3.h5: dataset /train/images has rank 3, expected 4" "" -- "$S" inspect "$B/rank3.h5"
expect 3 "$B/out-of-range.h5: /test/labels[3] = 7, expected 0..1" "" -- "$S" inspect "$B/out-of-range.h5"
expect 3 "$B/no-labels.h5: dataset /test/labels is missing" "" -- "$S" inspect "$B/no-labels.h5"
expect 3 "$B/no-classes.h5: attribute 'classes' is missing" "" -- "$S" inspect "$B/no-classes.h5"

sed 's/file: t03.h5/file: t33.h5/' "$tmp/good/manifest.yaml" > "$tmp/good/missing.yaml"
expect 3 "missing.yaml:6: task 't03-gauss5-2cls': file 't33.h5' not found (looked for $tmp/good/t33.h5)" "" -- "$S" inspect "$tmp/good/missing.yaml"
printf 'name: x\ntasks:\n  - {name: a, file: t00.h5, classes: 2\n' > "$tmp/good/broken.yaml"
expect 3 "broken.yaml:4" "" -- "$S" inspect "$tmp/good/broken.yaml"
printf 'tasks:\n  - {name: a, file: t00.h5, classes: many}\n' > "$tmp/good/classes.yaml"
expect 3 "classes.yaml:2: task 0: 'classes' is 'many'" "" -- "$S" inspect "$tmp/good/classes.yaml"

# No temporary files anywhere.
if [ -n "$(find "$tmp" -name '*.tmp.*')" ]; then
    fail "temporary files left: $(find "$tmp" -name '*.tmp.*')"
fi
[ "$failures" = 0 ] || { echo "$failures failures" >&2; exit 1; }
echo "bad input: all cases passed"
