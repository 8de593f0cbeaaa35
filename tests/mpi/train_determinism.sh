#!/usr/bin/env bash
# sotu train end to end on a tiny ViT and small fmnist5 tasks:
#  - serial, mpiexec -n 1, -n 3 and -n 2 with rank 0 training give bitwise
#    equal merged weights (task-order merge, per-task seeded fine-tuning);
#  - an output dir holding deltas is refused without --resume (exit 2);
#  - --resume keeps verified deltas, redoes truncated and corrupt ones, and
#    ends bitwise equal;
#  - PyTorch loads /merged with load_state_dict(strict=True) and, with each
#    task's head, reproduces sotu's merged task-head accuracies.
set -euo pipefail
: "${SOTU_BIN:?}" "${SOTU_SOURCE_DIR:?}" "${SOTU_PYTHON:=/usr/bin/python3}"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-train.XXXXXX")
trap 'rm -rf "$work"' EXIT
mpi=(mpiexec --oversubscribe)

"$SOTU_BIN" -q data fmnist --preset fmnist5 --out "$work/tasks" --train 96 --test 64
"$SOTU_PYTHON" "$SOTU_SOURCE_DIR/tests/reference/make_random_weights.py" \
  "$work/vit.h5" 28 1 4 32 2 2 64 10 7
sets=(--set "data.manifest=$work/tasks/manifest.yaml" --set "model.pretrained=$work/vit.h5"
      --set train.epochs=1 --set train.batch_size=32 --set train.max_steps=3
      --set train.threads=1 --set train.warmup_steps=1 --set sotu.keep=0.3)
cfg="$SOTU_SOURCE_DIR/examples/quickstart.yaml"

run() { # name, launcher..., then extra sotu args after --
  local name=$1; shift
  local launcher=()
  while [[ $1 != -- ]]; do launcher+=("$1"); shift; done
  shift
  "${launcher[@]}" "$SOTU_BIN" -q train "$cfg" "${sets[@]}" --set "output.dir=$work/$name" "$@" \
    > "$work/$name.out" 2> "$work/$name.err" || { cat "$work/$name.err"; return 1; }
}

run serial -- 
run n1 "${mpi[@]}" -n 1 --
run n3 "${mpi[@]}" -n 3 --
run n2ct "${mpi[@]}" -n 2 -- --set mpi.coordinator_trains=true
cat "$work/n3.out"

# A run directory with deltas is not overwritten without --resume.
rc=0
"$SOTU_BIN" -q train "$cfg" "${sets[@]}" --set "output.dir=$work/n3" 2> "$work/refuse.err" || rc=$?
[[ $rc -eq 2 ]] || { echo "expected exit 2 without --resume, got $rc"; exit 1; }
grep -q -- "--resume" "$work/refuse.err"

# Resume: one delta truncated, one with a flipped payload byte, one missing.
cp -r "$work/n3" "$work/res"
rm "$work/res/checkpoint.h5"
d="$work/res/deltas"
head -c 300 "$d/t01-inv-2cls.sotud" > "$d/x" && mv "$d/x" "$d/t01-inv-2cls.sotud"
size=$(stat -c %s "$d/t02-vflip-2cls.sotud")
printf '\xff' | dd of="$d/t02-vflip-2cls.sotud" bs=1 seek=$((size - 20)) conv=notrunc status=none
rm "$d/t03-gauss5-2cls.sotud"
"${mpi[@]}" -n 2 "$SOTU_BIN" train "$cfg" "${sets[@]}" --set "output.dir=$work/res" --resume \
  > "$work/res.out" 2> "$work/res.err" || { cat "$work/res.err"; exit 1; }
grep -q "resume: 2 of 5 tasks.* already done" "$work/res.err" || { cat "$work/res.err"; exit 1; }
trained=$(grep -c '"event":"task_done"' "$work/res/metrics.jsonl")
[[ $trained -eq 8 ]] || { echo "expected 5 + 3 task_done events, got $trained"; exit 1; }

"$SOTU_PYTHON" - "$work" "$SOTU_SOURCE_DIR/tests/reference" <<'PY'
import sys
import h5py
import numpy as np
import torch

work, ref = sys.argv[1], sys.argv[2]
sys.path.insert(0, ref)
from torch_vit import build_vit

def merged(name):
    with h5py.File(f"{work}/{name}/checkpoint.h5") as f:
        return {k: v[()] for k, v in f["merged"].items()}

base = merged("serial")
for other in ["n1", "n3", "n2ct", "res"]:
    m = merged(other)
    assert m.keys() == base.keys(), other
    bad = [k for k in base if not np.array_equal(base[k], m[k])]
    assert not bad, f"{other}: merged weights differ from serial in {bad[:3]}"
print("merged weights bitwise equal: serial, -n 1, -n 3, -n 2 (rank 0 trains), resumed")

with h5py.File(f"{work}/n3/checkpoint.h5") as f:
    a = f.attrs
    model = build_vit(int(a["image_size"]), int(a["channels"]), int(a["patch"]), int(a["dim"]),
                      int(a["depth"]), int(a["heads"]), int(a["mlp_hidden"]), int(a["classes"]))
    model.load_state_dict({k: torch.from_numpy(v[()]) for k, v in f["merged"].items()},
                          strict=True)
    acc = f["eval/acc_matrix"][()]
    T = acc.shape[0]
    names = sorted(f["tasks"].keys(), key=lambda n: int(f["tasks"][n].attrs["index"]))
    heads = {n: (f["heads"][n]["weight"][()], f["heads"][n]["bias"][()]) for n in names}
model.eval()
worst = 0.0
for j, name in enumerate(names):
    with h5py.File(f"{work}/tasks/t{j:02d}.h5") as t:
        x = torch.from_numpy(t["test/images"][()]).float().permute(0, 3, 1, 2) / 255.0
        y = t["test/labels"][()]
    w, b = heads[name]
    model.head = torch.nn.Linear(w.shape[1], w.shape[0])
    model.head.weight.data = torch.from_numpy(w)
    model.head.bias.data = torch.from_numpy(b)
    with torch.no_grad():
        pred = model((x - 0.5) / 0.5).argmax(1).numpy()
    torch_acc = float((pred == y).mean())
    worst = max(worst, abs(torch_acc - acc[T - 1, j]))
    print(f"{name}: sotu merged acc {acc[T - 1, j]:.4f}, torch on /merged + head {torch_acc:.4f}")
assert worst <= 1.0 / 64 + 1e-9, f"torch and sotu accuracies differ by {worst}"
print("1 passed, 0 failed")
PY
