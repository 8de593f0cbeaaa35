"""ResNet weight files (io/resnet_io.h) seen from PyTorch.

    check_resnet_weights.py WORKDIR TEST_RESNET_IO_BIN

TEST_RESNET_IO_BIN --export WORKDIR writes weights files with random
parameters and running statistics (ResNet-18 small stem, ResNet-34
torchvision stem, ResNet-18 clr-full) and sotu's eval-mode logits. For each,
the dict {name: tensor} of h5py.File(p)["/weights"] must load into the
torchvision-named PyTorch ResNet (torch_resnet.py, built from the file's
attributes) with load_state_dict(strict=True), every key of the module's
state dict present (num_batches_tracked as int64), and give sotu's logits
within 1e-4 relative to the largest. Exits non-zero on any failure.
"""
import os
import subprocess
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_resnet import build_resnet  # noqa: E402

TOL = 1e-4
CLR = {0: "none", 1: "clr", 2: "clr-full"}
failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, file=sys.stderr if not cond else sys.stdout)
    if not cond:
        failures.append(msg)


def state_dict_of(path):
    with h5py.File(path, "r") as f:
        a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        sd = {k: torch.from_numpy(np.array(v[()])) for k, v in f["/weights"].items()}
    return a, sd


def model_for(a):
    return build_resnet(depth=int(a["depth"]), width=int(a["width"]),
                        channels=int(a["channels"]), classes=int(a["classes"]),
                        small_input=bool(a["small_input"]), clr=CLR[int(a["clr"])])


def main():
    work, exe = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    r = subprocess.run([exe, "--export", work], capture_output=True, text=True)
    check(r.returncode == 0, f"export: rc {r.returncode} {r.stdout}{r.stderr}")
    if r.returncode != 0:
        return 1
    torch.set_grad_enabled(False)
    with h5py.File(os.path.join(work, "logits.h5"), "r") as lf:
        for name in ("plain", "std", "clrfull"):
            a, sd = state_dict_of(os.path.join(work, name + ".h5"))
            check(a.get("format") == "sotu-weights" and a.get("arch") == "resnet"
                  and int(a.get("format_version", 0)) == 1, f"{name}: root attributes {a}")
            model = model_for(a).eval()
            want = set(model.state_dict().keys())
            check(set(sd) == want, f"{name}: keys equal the module's "
                  f"(missing {sorted(want - set(sd))[:3]}, extra {sorted(set(sd) - want)[:3]})")
            nbt = [v for k, v in sd.items() if k.endswith("num_batches_tracked")]
            check(len(nbt) > 0 and all(v.dtype == torch.int64 and v.ndim == 0 for v in nbt),
                  f"{name}: num_batches_tracked int64 scalars")
            try:
                model.load_state_dict(sd, strict=True)
                check(True, f"{name}: load_state_dict(strict=True)")
            except RuntimeError as e:
                check(False, f"{name}: load_state_dict: {e}")
                continue
            x = torch.from_numpy(lf[name]["inputs"][()])
            got = model(x).numpy()
            ref = lf[name]["logits"][()]
            err = float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))
            check(err < TOL, f"{name}: eval logits match sotu (rel err {err:.2e})")
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
