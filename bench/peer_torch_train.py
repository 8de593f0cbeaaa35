#!/usr/bin/python3
"""PyTorch peer of `sotu bench train`: the same ViT (tests/reference/torch_vit.py,
timm semantics), batch, thread count, fp32 and AdamW step on synthetic data.
Prints one JSON line with the keys of `sotu bench train`.

    /usr/bin/python3 bench/peer_torch_train.py --model tiny --threads 1 --batch 64
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
from torch_vit import build_vit  # noqa: E402

MODELS = {
    "tiny": dict(image_size=28, channels=1, patch=4, dim=96, depth=6, heads=3, classes=10),
    "small": dict(image_size=32, channels=3, patch=4, dim=192, depth=12, heads=3, classes=10),
    "vitb": dict(image_size=224, channels=3, patch=16, dim=768, depth=12, heads=12, classes=1000),
}


def train_flops(c, batch):
    """The count of vit_train_flops in worker/vit.c (a multiply-add is 2)."""
    n = (c["image_size"] // c["patch"]) ** 2
    t, d, f = n + 1, c["dim"], 4 * c["dim"]
    per = 2.0 * n * c["channels"] * c["patch"] ** 2 * d + 2.0 * d * c["classes"]
    per += c["depth"] * (2.0 * t * d * (3 * d + d + 2 * f) + 4.0 * t * t * d)
    return 3.0 * per * batch


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="tiny")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    c = MODELS[a.model]
    model = build_vit(mlp_hidden=4 * c["dim"], **c)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    x = torch.randn(a.batch, c["channels"], c["image_size"], c["image_size"])
    y = torch.randint(0, c["classes"], (a.batch,))
    loss_fn = torch.nn.CrossEntropyLoss()

    times, cpu = [], []
    for i in range(a.warmup + a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if i >= a.warmup:
            times.append(dt)
            cpu.append(dc)
    step = statistics.median(times)
    print(json.dumps({
        "bench": "train", "impl": "torch", "torch": torch.__version__, "model": a.model,
        "threads": a.threads, "batch": a.batch, "steps": a.steps,
        "images_per_s": round(a.batch / step, 3),
        "gflops": round(train_flops(c, a.batch) / step / 1e9, 3),
        "step_seconds": round(step, 6),
        "cpu_step_seconds": round(statistics.median(cpu), 6),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "loss": round(float(loss), 5),
    }), flush=True)


if __name__ == "__main__":
    main()
