"""Reference safetensors files of a timm-named ViT with random weights, the
images to feed it and PyTorch's logits, for check_safetensors_interop.py.

    gen_safetensors_reference.py OUTDIR [SEED]

Writes into OUTDIR (the safetensors bytes are written here with struct and
json: the `safetensors` package is not a dependency):
  model_f32.safetensors    F32, __metadata__ {"format": "pt", "num_heads": "4"}
  model_f16.safetensors    F16 (no num_heads: import needs --heads)
  model_bf16.safetensors   BF16, with num_heads
  sharded/model.safetensors.index.json + two shards (F32, num_heads in shard 1)
  feature_<name>.safetensors   variants sotu must reject, one per feature
  images.h5                /images uint8 [N, S, S, C]
  reference.h5             /logits_{f32,f16,bf16} float32 [N, K]: PyTorch's
                           logits of each file's (rounded) weights on the
                           images normalised with ImageNet mean/std;
                           attrs with the model config
"""
import json
import os
import struct
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_vit import build_vit  # noqa: E402

CONFIG = dict(image_size=16, channels=3, patch=4, dim=32, depth=2, heads=4, mlp_hidden=48,
              classes=5)
N_IMAGES = 6
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

DTYPES = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}


def tensor_bytes(t, dtype):
    if dtype == "I64":
        return t.detach().contiguous().numpy().astype("<i8").tobytes()
    t = t.detach().to(DTYPES[dtype][0]).contiguous()
    if dtype == "BF16":
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors, dtype="F32", metadata=None, order=None):
    """tensors: name -> torch tensor; written in `order` (default: sorted by
    name, as the reference implementation does). Floating tensors as dtype,
    int64 ones (BatchNorm's num_batches_tracked) as I64."""
    header, blobs, at = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in order or sorted(tensors):
        d = "I64" if tensors[name].dtype == torch.int64 else dtype
        b = tensor_bytes(tensors[name], d)
        header[name] = {"dtype": d, "shape": list(tensors[name].shape),
                        "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """name -> float32 numpy array, and the __metadata__ dict."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    buf = data[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        raw = buf[b:end]
        if e["dtype"] == "F32":
            a = np.frombuffer(raw, dtype="<f4")
        elif e["dtype"] == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif e["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: dtype {e['dtype']}")
        out[name] = a.reshape(e["shape"]).copy()
    return out, meta


def random_model(seed):
    torch.manual_seed(seed)
    model = build_vit(**CONFIG)
    # Larger than timm's init so every tensor moves the logits.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
    return model.eval()


def normalise(images):
    x = images.astype(np.float32) / 255.0
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def logits_of(state, images):
    model = build_vit(**CONFIG)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=True)
    with torch.no_grad():
        return model.eval()(normalise(images)).numpy()


def main():
    out = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    os.makedirs(os.path.join(out, "sharded"), exist_ok=True)
    model = random_model(seed)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(seed)
    S, C = CONFIG["image_size"], CONFIG["channels"]
    images = rng.integers(0, 256, size=(N_IMAGES, S, S, C), dtype=np.uint8)

    meta = {"format": "pt", "num_heads": str(CONFIG["heads"])}
    write_safetensors(os.path.join(out, "model_f32.safetensors"), sd, "F32", meta)
    write_safetensors(os.path.join(out, "model_f16.safetensors"), sd, "F16", {"format": "pt"})
    write_safetensors(os.path.join(out, "model_bf16.safetensors"), sd, "BF16", meta)

    names = sorted(sd)
    half = len(names) // 2
    shards = [names[:half], names[half:]]
    files = [f"model-{i + 1:05d}-of-00002.safetensors" for i in range(2)]
    for i, part in enumerate(shards):
        write_safetensors(os.path.join(out, "sharded", files[i]), {k: sd[k] for k in part}, "F32",
                          meta if i == 0 else {"format": "pt"})
    index = {"metadata": {"total_size": sum(v.numel() * 4 for v in sd.values())},
             "weight_map": {k: files[i] for i, part in enumerate(shards) for k in part}}
    with open(os.path.join(out, "sharded", "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)

    D, L = CONFIG["dim"], CONFIG["depth"]
    features = {
        "register_tokens": {"reg_token": torch.zeros(1, 4, D)},
        "layer_scale": {f"blocks.{i}.ls1.gamma": torch.ones(D) for i in range(L)},
        "qk_norm": {"blocks.0.attn.q_norm.weight": torch.ones(D // 4),
                    "blocks.0.attn.k_norm.weight": torch.ones(D // 4)},
        "avg_pool": {"fc_norm.weight": torch.ones(D), "fc_norm.bias": torch.zeros(D)},
        "unknown_tensor": {"blocks.0.attn.relative_position_bias_table": torch.zeros(9, 4)},
    }
    for fname, extra in features.items():
        t = dict(sd)
        t.update(extra)
        write_safetensors(os.path.join(out, f"feature_{fname}.safetensors"), t, "F32", meta)
    no_cls = {k: v for k, v in sd.items() if k != "cls_token"}
    write_safetensors(os.path.join(out, "feature_no_class_token.safetensors"), no_cls, "F32", meta)

    with h5py.File(os.path.join(out, "images.h5"), "w") as f:
        f["images"] = images
    with h5py.File(os.path.join(out, "reference.h5"), "w") as f:
        for dt in ("F32", "F16", "BF16"):
            st, _ = read_safetensors(os.path.join(out, f"model_{dt.lower()}.safetensors"))
            f[f"logits_{dt.lower()}"] = logits_of(st, images).astype(np.float32)
        for k, v in CONFIG.items():
            f.attrs[k] = v
    print(f"gen_safetensors_reference: wrote {out} (seed {seed})")


if __name__ == "__main__":
    main()
