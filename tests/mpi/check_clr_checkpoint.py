"""Checks a CLR run's checkpoint.h5 with h5py and PyTorch (no sotu code):

  check_clr_checkpoint.py CHECKPOINT MANIFEST_DIR N_OK [FAILED_TASK]

- format, method, /backbone with torchvision names (and num_batches_tracked);
- /clr/<task> for every task with status ok, holding exactly CLR's module
  (every <conv>.clr.weight, BatchNorm affine and running statistics, fc) with
  fc sized for the task; FAILED_TASK (if given) has status "failed" and no
  module;
- /backbone overlaid with /clr/<task> loads into tests/reference/torch_resnet
  (the task's CLR variant and classes) with strict=True, and that model in
  eval mode reproduces the coordinator's eval_acc on the task's test split,
  which equals the worker's finetuned_acc (evaluation loaded each module);
- /eval/acc_matrix is lower-triangular with A[i][j] = eval_acc of task j
  (forgetting 0), /cost holds the parameter and compute figures;
- every float dataset carries a Fletcher32 checksum.
"""
import math
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.environ["SOTU_SOURCE_DIR"], "tests", "reference"))
from torch_resnet import build_resnet, clr_trainable  # noqa: E402

path, task_dir, n_ok = sys.argv[1], sys.argv[2], int(sys.argv[3])
failed = sys.argv[4] if len(sys.argv) > 4 else None


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


f = h5py.File(path, "r")
a = f.attrs
if a["format"] != "sotu-clr-checkpoint" or a["method"] != "clr":
    fail("format/method attrs: %s %s" % (a["format"], a["method"]))
variant = a["clr_variant"]
depth, width, channels = int(a["depth"]), int(a["width"]), int(a["channels"])
small = bool(a["small_input"])
backbone = {k: torch.from_numpy(np.array(v[()])) for k, v in f["backbone"].items()}
if "layer1.0.conv1.weight" not in backbone or "bn1.num_batches_tracked" not in backbone:
    fail("backbone lacks torchvision names: %s" % sorted(backbone)[:5])

# Task files by their name attribute (the manifest's file names differ).
files = {}
for fn in os.listdir(task_dir):
    if fn.endswith(".h5"):
        with h5py.File(os.path.join(task_dir, fn), "r") as tf:
            files[str(tf.attrs["name"])] = os.path.join(task_dir, fn)

tasks = sorted(f["tasks"], key=lambda n: int(f["tasks"][n].attrs["index"]))
T = len(tasks)
A = f["eval/acc_matrix"][()]
if A.shape != (T, T):
    fail("acc_matrix shape %s" % (A.shape,))
ok = 0
for name in tasks:
    ta = f["tasks"][name].attrs
    j = int(ta["index"])
    if ta["status"] != "ok":
        if name != failed or name in f["clr"]:
            fail("task %s: status %s" % (name, ta["status"]))
        if not all(math.isnan(A[i][j]) for i in range(T)):
            fail("failed task %s has accuracies" % name)
        continue
    ok += 1
    K = int(ta["classes"])
    g = f["clr"][name]
    module = {k: torch.from_numpy(np.array(v[()])) for k, v in g.items()}
    model = build_resnet(depth=depth, width=width, channels=channels, classes=K,
                         small_input=small, clr=variant)
    ref = model.state_dict()
    want = {k for k in ref if (clr_trainable(k) and not k.endswith("num_batches_tracked"))
            or "running_" in k}
    if set(module) != want:
        fail("task %s: module tensors differ: extra %s, missing %s" %
             (name, sorted(set(module) - want)[:4], sorted(want - set(module))[:4]))
    if tuple(module["fc.weight"].shape) != (K, 8 * width):
        fail("task %s: fc.weight %s" % (name, tuple(module["fc.weight"].shape)))
    state = {k: v for k, v in backbone.items() if not k.startswith("fc.")}
    state.update(module)
    model.load_state_dict(state, strict=True)
    model.eval()
    with h5py.File(files[name], "r") as tf:
        images = tf["test/images"][()]
        labels = tf["test/labels"][()]
    x = torch.from_numpy(images).float().div(255.0).permute(0, 3, 1, 2)
    x = (x - 0.5) / 0.5
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    acc = float((pred == labels).mean())
    if abs(acc - ta["eval_acc"]) > 1.5 / len(labels):
        fail("task %s: PyTorch accuracy %.4f, checkpoint eval_acc %.4f" % (name, acc, ta["eval_acc"]))
    if ta["eval_acc"] != ta["finetuned_acc"]:
        fail("task %s: coordinator eval_acc %r != worker finetuned_acc %r" %
             (name, ta["eval_acc"], ta["finetuned_acc"]))
    for i in range(T):
        v = A[i][j]
        if i < j and not math.isnan(v):
            fail("acc_matrix[%d][%d] above the diagonal" % (i, j))
        if i >= j and v != ta["eval_acc"]:
            fail("acc_matrix[%d][%d] = %r, task accuracy %r" % (i, j, v, ta["eval_acc"]))
if ok != n_ok:
    fail("%d tasks ok, expected %d" % (ok, n_ok))
ev = f["eval"].attrs
if ev["clr_task_heads_forgetting"] != 0.0:
    fail("forgetting %r" % ev["clr_task_heads_forgetting"])
c = f["cost"].attrs
if not (0 < c["added_params_pct"] < 100 and 0 < c["flops_ratio"] <= 1):
    fail("cost attrs %s" % dict(c))
unchecked = []
f.visititems(lambda name, o: unchecked.append(name) if isinstance(o, h5py.Dataset)
             and o.dtype.kind == "f" and o.size > 0 and not o.fletcher32 else None)
if unchecked:
    fail("float datasets without a Fletcher32 checksum: %s" % unchecked[:5])
print("ok: %s: %d modules load into PyTorch (%s) and reproduce eval_acc" % (path, ok, variant))
