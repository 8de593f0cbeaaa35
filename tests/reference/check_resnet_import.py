"""torchvision ResNet safetensors into sotu (`sotu import safetensors`).

    check_resnet_import.py WORKDIR

Random torchvision-named ResNets (tests/reference/torch_resnet.py: the same
state dict keys as torchvision.models.resnet18/34, no torchvision needed),
with BatchNorm running statistics and int64 num_batches_tracked, are saved
as safetensors (gen_safetensors_reference.write_safetensors: json + struct,
the `safetensors` package is not a dependency) and imported; `sotu predict` on random images must give
PyTorch's eval-mode logits within 1e-4 relative to the largest, the written
file must load back into the PyTorch module with strict=True bit-exactly,
and `sotu inspect` must name the architecture. Rejected with exit 3 and a
clear message: a Bottleneck ResNet (layerN.M.conv3), an unknown tensor,
num_batches_tracked stored as F32, and block counts other than ResNet-18/34.
Exits non-zero on any failure.
"""
import os
import shutil
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_safetensors_reference as ref  # noqa: E402
from check_safetensors_interop import check, failures, sotu  # noqa: E402
from torch_resnet import build_resnet  # noqa: E402

TOL = 1e-4

CASES = [
    # name, build_resnet kwargs, image side, sotu import flags, predict flags
    ("r18", dict(depth=18, width=8, channels=3, classes=7, small_input=False), 32,
     ("--image-size", "32"), ("--set", "data.normalize=imagenet")),
    ("r34small", dict(depth=34, width=4, channels=1, classes=5, small_input=True), 32, (), ()),
]


def random_model(kw, g):
    model = build_resnet(**kw)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
            elif name.endswith("num_batches_tracked"):
                b.fill_(11)
    return model.eval()


def scalar_normalise(images):
    x = images.astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(((x - 0.5) / 0.5).transpose(0, 3, 1, 2)))


def main():
    work = sys.argv[1]
    # A fresh directory: sotu's output commands refuse existing outputs.
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    g = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    torch.set_grad_enabled(False)
    sds = {}
    for name, kw, S, import_flags, predict_flags in CASES:
        model = random_model(kw, g)
        sd = {k: v.clone() for k, v in model.state_dict().items()}
        sds[name] = (kw, sd)
        st = os.path.join(work, f"{name}.safetensors")
        ref.write_safetensors(st, sd, "F32", {"format": "pt"})
        h5 = os.path.join(work, f"{name}.h5")
        rc, msg = sotu("import", "safetensors", st, h5, *import_flags)
        check(rc == 0 and "ResNet-%d" % kw["depth"] in msg, f"import {name}: rc {rc} {msg.strip()}")
        if rc:
            continue

        # The file loads back into the PyTorch module, bit-exactly.
        with h5py.File(h5, "r") as f:
            back = {k: torch.from_numpy(np.array(v[()])) for k, v in f["/weights"].items()}
            attrs = dict(f.attrs)
        check(int(attrs["depth"]) == kw["depth"] and int(attrs["width"]) == kw["width"]
              and int(attrs["classes"]) == kw["classes"]
              and bool(attrs["small_input"]) == kw["small_input"] and int(attrs["clr"]) == 0
              and int(attrs["image_size"]) == S, f"{name}: attributes {attrs}")
        m2 = build_resnet(**kw)
        try:
            m2.load_state_dict(back, strict=True)
            check(all(torch.equal(back[k], sd[k]) for k in sd), f"{name}: strict load, same values")
        except RuntimeError as e:
            check(False, f"{name}: load_state_dict: {e}")

        # sotu predict = PyTorch eval logits.
        images = rng.integers(0, 256, size=(5, S, S, kw["channels"]), dtype=np.uint8)
        ipath = os.path.join(work, f"{name}_images.h5")
        with h5py.File(ipath, "w") as f:
            f["images"] = images
        x = ref.normalise(images) if predict_flags else scalar_normalise(images)
        want = model(x).numpy()
        out = os.path.join(work, f"{name}_pred.h5")
        rc, msg = sotu("predict", h5, "--images", ipath, "--out", out, "--threads", "1",
                       *predict_flags)
        check(rc == 0, f"predict {name}: rc {rc} {msg.strip()}")
        if rc == 0:
            with h5py.File(out, "r") as f:
                got = f["logits"][()]
            err = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
            check(err <= TOL, f"predict {name}: logits within {TOL} of PyTorch ({err:.2e})")
        rc, msg = sotu("inspect", h5)
        check(rc == 0 and f"resnet{kw['depth']}" in msg, f"inspect {name}: {msg.strip()}")

    # Rejections: exit 3, named, no output file.
    kw, sd = sds["r18"]
    bad = {
        "bottleneck": ({**sd, "layer1.0.conv3.weight": torch.zeros(32, 8, 1, 1)},
                       "not supported by sotu"),
        "unknown": ({**sd, "layer1.0.se.weight": torch.zeros(3)}, "not part of"),
        "nbt_f32": ({**sd, "bn1.num_batches_tracked": torch.tensor(1.0)}, "I64"),
        "blocks": ({k: v for k, v in sd.items() if not k.startswith("layer4.1.")}, "ResNet-18"),
        "bn_missing": ({k: v for k, v in sd.items() if k != "layer2.0.bn1.running_var"},
                       "layer2.0.bn1.running_var"),
    }
    for bname, (tensors, words) in bad.items():
        st = os.path.join(work, f"bad_{bname}.safetensors")
        ref.write_safetensors(st, tensors)
        h5 = os.path.join(work, f"bad_{bname}.h5")
        rc, msg = sotu("import", "safetensors", st, h5)
        check(rc == 3 and words in msg and not os.path.exists(h5),
              f"reject {bname}: exit 3 naming '{words}' (rc {rc}: {msg.strip()})")

    # A headless backbone (fc = Identity) imports with a 1-class zero fc (and a warning).
    st = os.path.join(work, "headless.safetensors")
    ref.write_safetensors(st, {k: v for k, v in sd.items() if not k.startswith("fc.")})
    rc, msg = sotu("import", "safetensors", st, os.path.join(work, "headless.h5"))
    check(rc == 0 and "classes 1," in msg, f"headless: rc {rc} {msg.strip()}")
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
