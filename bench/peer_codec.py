#!/usr/bin/python3
"""Peers of the .sotud codec on the same kept values.

Reads PREFIX.f32 (kept values) and PREFIX.i64 (flat indices) written by
`sotu bench codec --export PREFIX` and prints one JSON line per peer:
dense fp32 bytes, COO (int32 index + fp32 value) bytes, and torch.save of a
torch sparse COO tensor of the same values (with save/load MB/s of kept
values, 4 bytes each, as sotu reports them).
"""
import argparse
import io
import json
import time

import numpy as np
import torch


def best_of(fn, repeat):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("prefix")
    ap.add_argument("--total", type=int, required=True, help="elements of the dense delta")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    values = np.fromfile(a.prefix + ".f32", dtype="<f4")
    index = np.fromfile(a.prefix + ".i64", dtype="<i8")
    assert values.size == index.size
    kept = int(values.size)
    mb = kept * 4 / 1e6
    base = {"bench": "codec-peer", "kept": kept, "params": a.total}

    print(json.dumps({**base, "peer": "dense_fp32", "bytes": a.total * 4,
                      "bytes_per_kept": a.total * 4 / kept}))
    coo = index.astype("<i4").tobytes() + values.tobytes()
    print(json.dumps({**base, "peer": "coo_int32_fp32", "bytes": len(coo),
                      "bytes_per_kept": len(coo) / kept}))

    t = torch.sparse_coo_tensor(torch.from_numpy(index).unsqueeze(0), torch.from_numpy(values),
                                (a.total,)).coalesce()

    def save():
        buf = io.BytesIO()
        torch.save(t, buf)
        return buf.getvalue()

    t_save, blob = best_of(save, a.repeat)
    t_load, back = best_of(lambda: torch.load(io.BytesIO(blob)), a.repeat)
    assert torch.equal(back.coalesce().values(), t.values())
    print(json.dumps({**base, "peer": "torch_save_sparse_coo", "bytes": len(blob),
                      "bytes_per_kept": len(blob) / kept, "encode_mb_s": mb / t_save,
                      "decode_mb_s": mb / t_load}))


if __name__ == "__main__":
    main()
