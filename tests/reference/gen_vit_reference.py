#!/usr/bin/python3
"""Writes tests/data/vit_reference.h5, the PyTorch fixture that
tests/unit/test_vit_reference.c checks the C ViT against.

Regenerate (deterministic; needs only Debian's python3-torch, h5py, numpy):

    /usr/bin/python3 tests/reference/gen_vit_reference.py tests/data/vit_reference.h5

The model is torch_vit.py (timm names and semantics) with image 16, channels 3,
patch 4, dim 32, depth 2, heads 4, mlp 64, classes 5. Weights are seeded random
draws, wider than timm's init (norm weights around 1, non-zero biases, cls and
pos of order 0.5) so every path carries signal. Parameters and inputs are
stored in float32; everything is then computed in float64 from those float32
values, so the fixture holds the exact answer and the C float32 engine is
judged only on its own rounding.

Contents:
  /config               attrs image_size channels patch dim depth heads
                        mlp_hidden classes batch label_smoothing lr
                        weight_decay beta1 beta2 eps steps
  /params/<name>        initial weights (timm names)
  /inputs [B,C,S,S]     float32; /labels [B] int32
  /logits [B,K]         /loss []   (plain cross-entropy, mean over the batch)
  /grads/<name>         d loss / d param
  /loss_smooth []       cross-entropy with label smoothing 0.1
  /grads_smooth/<name>  its gradients
  /adamw/losses [5]     loss before each of 5 torch.optim.AdamW steps on the
                        same batch (lr 1e-3, betas 0.9/0.999, eps 1e-8,
                        weight decay 0.05 except on tensors with ndim <= 1,
                        pos_embed and cls_token; no gradient clipping;
                        constant lr, no schedule)
  /adamw/params/<name>  weights after the 5 steps
"""
import sys

import h5py
import numpy as np
import torch

from torch_vit import build_vit

CFG = dict(image_size=16, channels=3, patch=4, dim=32, depth=2, heads=4, mlp_hidden=64, classes=5)
BATCH = 4
SMOOTHING = 0.1
LR, WD, BETAS, EPS, STEPS = 1e-3, 0.05, (0.9, 0.999), 1e-8, 5


def no_decay(name, p):
    return p.ndim <= 1 or name in ("pos_embed", "cls_token")


def randomise(model, g):
    for name, p in model.named_parameters():
        if "norm" in name and name.endswith("weight"):
            v = 1.0 + 0.2 * torch.randn(p.shape, generator=g)
        elif name.endswith("bias"):
            v = 0.1 * torch.randn(p.shape, generator=g)
        elif name in ("cls_token", "pos_embed"):
            v = 0.5 * torch.randn(p.shape, generator=g)
        else:
            fan_in = p[0].numel()
            v = torch.randn(p.shape, generator=g) / fan_in ** 0.5
        with torch.no_grad():
            p.copy_(v.float())


def loss_and_grads(model, x, y, smoothing):
    model.zero_grad()
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, y, label_smoothing=smoothing)
    loss.backward()
    return logits, loss, {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def main(out):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1234)
    model = build_vit(**CFG)
    randomise(model, g)
    x32 = torch.randn(BATCH, CFG["channels"], CFG["image_size"], CFG["image_size"], generator=g)
    y = torch.randint(0, CFG["classes"], (BATCH,), generator=g)
    params32 = {n: p.detach().float().clone() for n, p in model.named_parameters()}

    model = model.double()
    x = x32.double()
    logits, loss, grads = loss_and_grads(model, x, y, 0.0)
    _, loss_s, grads_s = loss_and_grads(model, x, y, SMOOTHING)

    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if not no_decay(n, p)], "weight_decay": WD},
        {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        step_loss = torch.nn.functional.cross_entropy(model(x), y)
        step_loss.backward()
        losses.append(step_loss.item())
        opt.step()

    f32 = lambda t: t.detach().cpu().numpy().astype(np.float32)
    with h5py.File(out, "w") as h:
        c = h.create_group("config")
        for k, v in CFG.items():
            c.attrs[k] = np.int32(v)
        c.attrs["batch"] = np.int32(BATCH)
        c.attrs["label_smoothing"] = np.float32(SMOOTHING)
        for k, v in dict(lr=LR, weight_decay=WD, beta1=BETAS[0], beta2=BETAS[1], eps=EPS).items():
            c.attrs[k] = np.float32(v)
        c.attrs["steps"] = np.int32(STEPS)
        for n, v in params32.items():
            h[f"params/{n}"] = f32(v)
        h["inputs"] = f32(x32)
        h["labels"] = y.numpy().astype(np.int32)
        h["logits"] = f32(logits)
        h["loss"] = np.float32(loss.item())
        h["loss_smooth"] = np.float32(loss_s.item())
        for n in params32:
            h[f"grads/{n}"] = f32(grads[n])
            h[f"grads_smooth/{n}"] = f32(grads_s[n])
        h["adamw/losses"] = np.array(losses, dtype=np.float32)
        for n, p in model.named_parameters():
            h[f"adamw/params/{n}"] = f32(p)
    print(f"{out}: loss {loss.item():.6f}, smoothed {loss_s.item():.6f}, adamw losses {losses}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/vit_reference.h5")
