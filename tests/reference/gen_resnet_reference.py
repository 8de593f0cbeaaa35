#!/usr/bin/python3
"""Writes tests/data/resnet_reference.h5, the PyTorch fixture that
tests/unit/test_resnet_reference.c checks the C ResNet (worker/resnet.c)
against.

Regenerate (deterministic; needs only Debian's python3-torch, h5py, numpy):

    /usr/bin/python3 tests/reference/gen_resnet_reference.py tests/data/resnet_reference.h5

The model is torch_resnet.py (torchvision names and semantics, CLR layers as
depthwise nn.Conv2d(C, C, 3, padding=1, groups=C, bias=False)). Three cases,
all ResNet-18 layout [2,2,2,2]:
  std    width 7, 3x32x32 images, batch 4, torchvision stem (7x7/2 + max-pool),
         CLR after every non-1x1 conv ("clr")
  small  width 2, 1x16x16 images, batch 3, small stem (3x3/1, no max-pool),
         CLR after every conv ("clr-full")
  plain  the small case without CLR layers (its params are hard links to
         small's, minus the CLR weights)
Weights are seeded random draws with non-trivial BatchNorm affine parameters
and running statistics and CLR weights away from the identity. Parameters
and inputs are stored in float32; everything is computed in float64 from
those values, so the fixture holds the exact answer.

Contents of each /<case> (attrs depth width channels image_size classes batch
small_input clr eval_tune momentum eps):
  params/<name>            initial weights (torchvision names)
  running/<bn>.running_{mean,var}   initial running statistics
  inputs [B,C,S,S] float32, labels [B] int32
  train/logits, train/loss         train-mode BatchNorm (batch statistics)
  train/grads/<name>               every parameter's gradient
  train/running/<...>              running statistics after that one forward
  clr/grads/<name>                 (not plain) CLR mode: only CLR weights,
                                   BatchNorm affine and fc train
  eval/logits, eval/loss           eval-mode BatchNorm (running statistics)
  eval/grads/<name>                gradients of the eval_tune set (the C
                                   resnet_set_trainable spec) in eval mode
"""
import sys

import h5py
import numpy as np
import torch

from torch_resnet import build_resnet, clr_trainable

CASES = [
    dict(name="std", depth=18, width=7, channels=3, image_size=32, classes=5, batch=4,
         small_input=False, clr="clr", eval_tune="clr"),
    dict(name="small", depth=18, width=2, channels=1, image_size=16, classes=3, batch=3,
         small_input=True, clr="clr-full", eval_tune="clr"),
    dict(name="plain", depth=18, width=2, channels=1, image_size=16, classes=3, batch=3,
         small_input=True, clr="none", eval_tune="bn,head", like="small"),
]


def bn_or_head(name):
    return ".bn" in name or name.startswith("bn1.") or ".downsample.1." in name or name.startswith("fc.")


TUNE = {"clr": clr_trainable, "bn,head": bn_or_head}


def randomise(model, g):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".clr.weight"):
                v = 0.2 * torch.randn(p.shape, generator=g)
                v[:, 0, 1, 1] += 1.0
            elif p.ndim == 1 and name.endswith("weight"):
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=g)
            elif name.endswith("bias"):
                v = 0.1 * torch.randn(p.shape, generator=g)
            else:
                v = torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5
            p.copy_(v)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))


def running_stats(model):
    return {n: b.detach().clone() for n, b in model.named_buffers() if "running_" in n}


def set_running(model, stats):
    with torch.no_grad():
        for n, b in model.named_buffers():
            if n in stats:
                b.copy_(stats[n])


def loss_and_grads(model, x, y, trainable):
    for n, p in model.named_parameters():
        p.requires_grad_(trainable(n))
        p.grad = None
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, y)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if trainable(n)}
    return logits, loss, grads


def run_case(h, case, g, shared):
    cfg = {k: case[k] for k in ("depth", "width", "channels", "classes", "small_input", "clr")}
    model = build_resnet(**cfg)
    if "like" in case:
        src = shared[case["like"]]
        with torch.no_grad():
            params = dict(model.named_parameters())
            for n, p in params.items():
                p.copy_(src["params"][n])
        set_running(model, src["running"])
        x32, y = src["x"], src["y"]
    else:
        randomise(model, g)
        S = case["image_size"]
        x32 = torch.randn(case["batch"], case["channels"], S, S, generator=g)
        y = torch.randint(0, case["classes"], (case["batch"],), generator=g)
    params32 = {n: p.detach().float().clone() for n, p in model.named_parameters()}
    run32 = {n: b.float().clone() for n, b in running_stats(model).items()}
    shared[case["name"]] = dict(params=params32, running=run32, x=x32, y=y)

    model = model.double()
    x = x32.double()
    run0 = running_stats(model)
    model.train()
    logits_t, loss_t, grads_t = loss_and_grads(model, x, y, lambda n: True)
    run_after = running_stats(model)
    grads_c = None
    if case["clr"] != "none":
        set_running(model, run0)
        _, _, grads_c = loss_and_grads(model, x, y, clr_trainable)
    set_running(model, run0)
    model.eval()
    logits_e, loss_e, grads_e = loss_and_grads(model, x, y, TUNE[case["eval_tune"]])

    f32 = lambda t: t.detach().cpu().numpy().astype(np.float32)
    c = h.create_group(case["name"])
    for k in ("depth", "width", "channels", "image_size", "classes", "batch"):
        c.attrs[k] = np.int32(case[k])
    c.attrs["small_input"] = np.int32(case["small_input"])
    c.attrs["clr"] = np.bytes_(case["clr"])
    c.attrs["eval_tune"] = np.bytes_(case["eval_tune"])
    c.attrs["momentum"] = np.float32(0.1)
    c.attrs["eps"] = np.float32(1e-5)
    for n, v in params32.items():
        if "like" in case:
            c[f"params/{n}"] = h[f"{case['like']}/params/{n}"]
        else:
            c.create_dataset(f"params/{n}", data=f32(v))
    for n, v in run32.items():
        c[f"running/{n}"] = f32(v)
    c["inputs"] = f32(x32)
    c["labels"] = y.numpy().astype(np.int32)
    c["train/logits"] = f32(logits_t)
    c["train/loss"] = np.float32(loss_t.item())
    for n, v in grads_t.items():
        c[f"train/grads/{n}"] = f32(v)
    for n, v in run_after.items():
        c[f"train/running/{n}"] = f32(v)
    if grads_c is not None:
        for n, v in grads_c.items():
            c[f"clr/grads/{n}"] = f32(v)
    c["eval/logits"] = f32(logits_e)
    c["eval/loss"] = np.float32(loss_e.item())
    for n, v in grads_e.items():
        c[f"eval/grads/{n}"] = f32(v)
    nparam = sum(v.numel() for v in params32.values())
    print(f"{case['name']}: {nparam} params, train loss {loss_t.item():.6f}, "
          f"eval loss {loss_e.item():.6f}")


def main(out):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(4321)
    shared = {}
    with h5py.File(out, "w", libver="latest") as h:
        for case in CASES:
            run_case(h, case, g, shared)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/resnet_reference.h5")
