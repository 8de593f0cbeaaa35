"""Writes a sotu weights file (io/weights.h layout) of a randomly initialised
timm-named ViT, for tests that need a backbone without pretraining:

    make_random_weights.py OUT.h5 image_size channels patch dim depth heads mlp classes [seed]
"""
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_vit import build_vit  # noqa: E402

out = sys.argv[1]
s, c, p, d, depth, h, f, k = (int(v) for v in sys.argv[2:10])
seed = int(sys.argv[10]) if len(sys.argv) > 10 else 0
torch.manual_seed(seed)
model = build_vit(image_size=s, channels=c, patch=p, dim=d, depth=depth, heads=h,
                  mlp_hidden=f, classes=k)
with h5py.File(out, "w") as h5:
    h5.attrs["format"] = "sotu-weights"
    h5.attrs["format_version"] = np.int32(1)
    for name, v in dict(image_size=s, channels=c, patch=p, dim=d, depth=depth, heads=h,
                        mlp_hidden=f, classes=k).items():
        h5.attrs[name] = np.int32(v)
    g = h5.create_group("weights")
    for name, t in model.state_dict().items():
        g[name] = t.detach().numpy().astype(np.float32)
