"""Interop: a sotu checkpoint opens in h5py and its /merged loads into a
PyTorch ViT with timm names via load_state_dict(strict=True); the logits of
that model match sotu's own forward within 1e-4.

    check_checkpoint_torch.py FIXTURE_BIN [WORKDIR]

FIXTURE_BIN (ckpt_torch_fixture) writes the checkpoint and sotu's logits.
Exits non-zero on any mismatch.
"""
import math
import os
import subprocess
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_vit import build_vit  # noqa: E402

TOL = 1e-4
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr)


def state_dict_of(group):
    return {k: torch.from_numpy(np.asarray(v[()])) for k, v in group.items()}


def main():
    fixture = sys.argv[1]
    work = sys.argv[2] if len(sys.argv) > 2 else "."
    os.makedirs(work, exist_ok=True)
    ckpt = os.path.join(work, "ckpt_torch.h5")
    logits_path = os.path.join(work, "ckpt_torch_logits.h5")
    subprocess.run([fixture, ckpt, logits_path, "7"], check=True)

    with h5py.File(ckpt, "r") as f, h5py.File(logits_path, "r") as lf:
        a = f.attrs
        check(a["format"] == "sotu-checkpoint", f"format {a['format']!r}")
        check(int(a["format_version"]) == 1, "format_version")
        check(isinstance(a["sotu_version"], str) and a["sotu_version"], "sotu_version")
        check(isinstance(a["created"], str) and a["created"].endswith("Z"), "created")
        check(a["config"] == "method: sotu\n", "config text")
        cfg = {k: int(a[k]) for k in ("image_size", "channels", "patch", "dim", "depth",
                                        "heads", "mlp_hidden", "classes")}
        print("model config:", cfg)

        model = build_vit(**cfg).eval()
        sd = state_dict_of(f["merged"])
        want = model.state_dict()
        check(sorted(sd) == sorted(want), "tensor names differ: "
              f"extra {sorted(set(sd) - set(want))}, missing {sorted(set(want) - set(sd))}")
        for k, v in want.items():
            if k in sd:
                check(tuple(sd[k].shape) == tuple(v.shape),
                      f"{k}: shape {tuple(sd[k].shape)} vs {tuple(v.shape)}")
                check(sd[k].dtype == torch.float32, f"{k}: dtype {sd[k].dtype}")
        model.load_state_dict(sd, strict=True)
        for k, v in model.state_dict().items():
            check(torch.equal(v, sd[k]), f"{k}: values changed by loading")

        images = torch.from_numpy(np.asarray(lf["images"][()]))
        with torch.no_grad():
            out = model(images).numpy()
        ref = np.asarray(lf["logits"][()])
        err = float(np.max(np.abs(out - ref)))
        print(f"logits /merged: max |torch - sotu| = {err:.3g} (tol {TOL}), "
              f"max |logit| {float(np.max(np.abs(ref))):.3g}")
        check(float(np.std(ref)) > 0.1, "logits too flat to compare")
        check(err <= TOL, f"logits differ by {err}")

        check(list(f["keeps"]) == ["0.05"], f"keeps {list(f['keeps'])}")
        check(float(f["keeps/0.05"].attrs["keep"]) == 0.05, "keeps/0.05 keep attr")
        mk = build_vit(**cfg).eval()
        mk.load_state_dict(state_dict_of(f["keeps/0.05/merged"]), strict=True)
        with torch.no_grad():
            outk = mk(images).numpy()
        errk = float(np.max(np.abs(outk - np.asarray(lf["logits_keep"][()]))))
        print(f"logits /keeps/0.05/merged: max |torch - sotu| = {errk:.3g} (tol {TOL})")
        check(errk <= TOL, f"keep logits differ by {errk}")

        check(sorted(f["tasks"]) == ["sandals", "shirts"], f"tasks {list(f['tasks'])}")
        for name, idx in (("shirts", 0), ("sandals", 1)):
            t = f["tasks"][name].attrs
            check(int(t["index"]) == idx, f"{name} index")
            check(t["status"] == "ok", f"{name} status {t['status']!r}")
            check(int(t["kept_values"]) == 1234 + idx, f"{name} kept_values")
            h = f["heads"][name]
            check(h["weight"].shape == (cfg["classes"], cfg["dim"]), f"{name} head shape")
            check(h["bias"].shape == (cfg["classes"],), f"{name} bias shape")
            # a task head on the merged backbone, as task-incremental eval does
            head_sd = {"head.weight": torch.from_numpy(h["weight"][()]),
                       "head.bias": torch.from_numpy(h["bias"][()])}
            mh = build_vit(**cfg).eval()
            mh.load_state_dict({**sd, **head_sd}, strict=True)
        cos = f["merge/cosine"]
        check(cos.shape == (2, 2) and cos.dtype == np.float64, "cosine shape")
        check(cos.attrs["mode"] == "sum" and float(cos.attrs["collision_rate"]) == 0.25,
              "cosine attrs")
        acc = f["eval/acc_matrix"][()]
        check(acc.shape == (2, 2) and math.isnan(acc[0, 1]) and acc[1, 1] == 0.85, "acc_matrix")
        check(float(f["eval/acc_matrix"].attrs["final_avg_acc"]) == 0.8, "summary attr")

    sotu = os.environ.get("SOTU_BIN")
    if sotu:
        r = subprocess.run([sotu, "inspect", ckpt], capture_output=True, text=True)
        print(r.stdout)
        check(r.returncode == 0, f"sotu inspect exit {r.returncode}: {r.stderr}")
        for want in ("sotu-checkpoint v1", "collision rate 0.25", "keep 0.05",
                     "2469 kept values", "mean 0.02, max 0.02", "sandals"):
            check(want in r.stdout, f"sotu inspect output lacks {want!r}")

    if failures:
        print(f"check_checkpoint_torch: {len(failures)} failures", file=sys.stderr)
        return 1
    print("check_checkpoint_torch: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
