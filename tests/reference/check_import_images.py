"""Image-folder import: `sotu data import-images` and `sotu data manifest`.

    check_import_images.py WORKDIR

PIL (python3-pil) writes folders of PNG and JPEG images; the task files
sotu writes must hold the right labels and class names, PNG pixels exactly
(at the target size, and after an exact 2x area shrink), JPEG pixels within
decoder differences, greyscale conversion, the ratio split per class, and a
file that is not an image reported by path: exit 3 with --on-bad fail,
skipped with skip. Exits non-zero on any failure.
"""
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
from PIL import Image

SOTU = os.environ.get("SOTU_BIN", "sotu")
S = 12
failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, file=sys.stdout if cond else sys.stderr)
    if not cond:
        failures.append(msg)


def sotu(*args):
    r = subprocess.run([SOTU, *args], capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def read_task(path):
    with h5py.File(path, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["class_names"]]
        return {"classes": int(f.attrs["classes"]), "class_names": names,
                "train_images": f["train/images"][()], "train_labels": f["train/labels"][()],
                "test_images": f["test/images"][()], "test_labels": f["test/labels"][()]}


def save(img, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if path.endswith(".png"):
        Image.fromarray(img).save(path)
    else:
        Image.fromarray(img).save(path, quality=95)


def build_split_folder(root, rng):
    """root/{train,test}/<class>/: PNG at S x S, PNG at 2S x 2S (2x2 blocks),
    greyscale PNG and JPEG. Returns the expected images per split, in
    (class, file name) order, as (label, uint8 [S, S, 3] or None for JPEG,
    the source decoded by PIL)."""
    classes = ["ankle_boot", "bag", "coat"]
    expect = {"train": [], "test": []}
    for split, count in (("train", 4), ("test", 2)):
        for label, cls in enumerate(classes):
            for i in range(count):
                kind = i % 4
                small = rng.integers(0, 256, size=(S, S, 3), dtype=np.uint8)
                if kind == 0:
                    name, img, want = f"a{i}.png", small, small
                elif kind == 1:
                    name = f"b{i}.png"
                    img = np.kron(small, np.ones((2, 2, 1), dtype=np.uint8))
                    want = small
                elif kind == 2:
                    grey = small[:, :, 0]
                    name, img, want = f"c{i}.png", grey, np.repeat(grey[:, :, None], 3, axis=2)
                else:
                    smooth = np.kron(rng.integers(0, 256, size=(S // 4, S // 4, 3),
                                                  dtype=np.uint8), np.ones((4, 4, 1), np.uint8))
                    name, img, want = f"d{i}.jpg", smooth, None
                path = os.path.join(root, split, cls, name)
                save(img, path)
                if want is None:
                    want = np.asarray(Image.open(path).convert("RGB"))
                    expect[split].append((label, want, True))
                else:
                    expect[split].append((label, want, False))
    with open(os.path.join(root, "train", "bag", "notes.txt"), "w") as f:
        f.write("not an image, and not named like one\n")
    return classes, expect


def check_split_folder(work, rng):
    root = os.path.join(work, "folders")
    shutil.rmtree(root, ignore_errors=True)
    classes, expect = build_split_folder(root, rng)
    out = os.path.join(work, "tasks", "folders.h5")
    rc, msg = sotu("data", "import-images", root, "--out", out, "--size", str(S))
    check(rc == 0, f"import train/test folders: rc {rc} {msg.strip()}")
    if rc:
        return
    t = read_task(out)
    check(t["classes"] == 3 and t["class_names"] == classes, f"class names {t['class_names']}")
    for split in ("train", "test"):
        ims, labels = t[f"{split}_images"], t[f"{split}_labels"]
        exp = expect[split]
        check(ims.shape == (len(exp), S, S, 3), f"{split}: shape {ims.shape}")
        check(list(labels) == [e[0] for e in exp], f"{split}: labels in class/file order")
        if ims.shape[0] != len(exp):
            continue
        for k, (label, want, lossy) in enumerate(exp):
            diff = np.abs(ims[k].astype(int) - want.astype(int))
            if lossy:
                check(diff.mean() < 2.0 and diff.max() <= 24,
                      f"{split}[{k}] JPEG vs PIL decode: mean |d| {diff.mean():.2f}, "
                      f"max {diff.max()}")
            else:
                check(diff.max() == 0, f"{split}[{k}] PNG pixels exact (max |d| {diff.max()})")
        all_want = np.stack([e[1] for e in exp]).astype(np.float64)
        check(abs(ims.mean() - all_want.mean()) < 0.5 and abs(ims.std() - all_want.std()) < 0.5,
              f"{split}: pixel mean/std {ims.mean():.2f}/{ims.std():.2f} vs "
              f"{all_want.mean():.2f}/{all_want.std():.2f}")

    # Greyscale: luma of the RGB images.
    grey = os.path.join(work, "tasks", "folders_grey.h5")
    rc, msg = sotu("data", "import-images", root, "--out", grey, "--size", str(S),
                   "--channels", "1", "--name", "folders_grey")
    check(rc == 0, f"import --channels 1: rc {rc} {msg.strip()}")
    if rc == 0:
        g, c = read_task(grey), read_task(out)
        luma = (c["train_images"].astype(np.float64) @ np.array([0.299, 0.587, 0.114]))
        d = np.abs(g["train_images"][..., 0] - luma)
        check(g["train_images"].shape[-1] == 1 and d.max() <= 0.5 + 1e-3,
              f"greyscale is luma (max |d| {d.max():.2f})")
    return out


def check_ratio_split_and_bad(work, rng):
    root = os.path.join(work, "flat")
    shutil.rmtree(root, ignore_errors=True)
    counts = {"alpha": 8, "beta": 5}
    for cls, n in counts.items():
        for i in range(n):
            save(rng.integers(0, 256, size=(2 * S, 3 * S, 3), dtype=np.uint8),
                 os.path.join(root, cls, f"{i:03d}.png"))
    out = os.path.join(work, "tasks", "flat.h5")
    rc, msg = sotu("data", "import-images", root, "--out", out, "--size", str(S),
                   "--split-ratio", "0.25", "--seed", "3")
    check(rc == 0, f"import with --split-ratio: rc {rc} {msg.strip()}")
    if rc == 0:
        t = read_task(out)
        for label, (cls, n) in enumerate(counts.items()):
            n_test = int(np.floor(n * 0.25 + 0.5))
            got_test = int(np.sum(t["test_labels"] == label))
            got_train = int(np.sum(t["train_labels"] == label))
            check(got_test == n_test and got_train == n - n_test,
                  f"ratio split of {cls}: {got_train} train / {got_test} test")
        check(t["train_images"].shape[1:] == (S, S, 3), "non-square images cropped to S x S")

    bad = os.path.join(root, "beta", "broken.png")
    with open(bad, "w") as f:
        f.write("this is text, not a PNG\n")
    rc, msg = sotu("data", "import-images", root, "--out", os.path.join(work, "tasks", "fail.h5"),
                   "--size", str(S), "--on-bad", "fail")
    check(rc == 3 and bad in msg, f"--on-bad fail: exit 3 naming the file (rc {rc}: {msg.strip()})")
    check(not os.path.exists(os.path.join(work, "tasks", "fail.h5")), "--on-bad fail: no output")
    skip_out = os.path.join(work, "tasks", "skip.h5")
    rc, msg = sotu("data", "import-images", root, "--out", skip_out, "--size", str(S),
                   "--on-bad", "skip", "--split-ratio", "0.25", "--seed", "3",
                   "--name", "flat_skip")
    check(rc == 0 and bad in msg and "1 unreadable images skipped" in msg,
          f"--on-bad skip: reported and skipped (rc {rc}: {msg.strip()})")
    if rc == 0:
        t = read_task(skip_out)
        total = len(t["train_labels"]) + len(t["test_labels"])
        check(total == sum(counts.values()), f"--on-bad skip: {total} images kept")
    rc, msg = sotu("data", "import-images", os.path.join(work, "no_such_dir"), "--out",
                   os.path.join(work, "tasks", "missing.h5"), "--size", str(S))
    check(rc == 4, f"missing folder: exit 4 ({msg.strip()})")
    rc, msg = sotu("data", "import-images", root, "--out", skip_out, "--size", str(S))
    check(rc == 2 and "refusing to overwrite" in msg and "--force" in msg,
          f"an existing output: exit 2 ({msg.strip()})")
    rc, msg = sotu("data", "import-images", root, "--out", skip_out)
    check(rc == 2 and "--size" in msg, f"no --size: exit 2 ({msg.strip()})")


def check_bad_huffman_table(work, rng):
    """A JPEG whose Huffman table claims 16 x 255 codes: Debian's stb_image
    would write past its tables; sotu must refuse it cleanly."""
    root = os.path.join(work, "dht")
    shutil.rmtree(root, ignore_errors=True)
    good = os.path.join(root, "c0", "good.jpg")
    save(rng.integers(0, 256, size=(S, S, 3), dtype=np.uint8), good)
    b = bytearray(open(good, "rb").read())
    at = b.find(b"\xff\xc4")
    check(at > 0, "PIL's JPEG has a DHT segment")
    b[at + 5:at + 21] = b"\xff" * 16
    bad = os.path.join(root, "c0", "bad_dht.jpg")
    open(bad, "wb").write(b)
    rc, msg = sotu("data", "import-images", root, "--out", os.path.join(work, "dht.h5"),
                   "--size", str(S), "--on-bad", "fail")
    check(rc == 3 and bad in msg and "Huffman" in msg,
          f"JPEG with an oversized Huffman table: exit 3 ({msg.strip()})")


def check_manifest(work):
    d = os.path.join(work, "tasks")
    with h5py.File(os.path.join(d, "zz_predictions.h5"), "w") as f:
        f.attrs["format"] = "sotu-predictions"
    rc, msg = sotu("data", "manifest", d)
    check(rc == 0, f"data manifest: rc {rc} {msg.strip()}")
    path = os.path.join(d, "manifest.yaml")
    if rc == 0:
        text = open(path).read()
        files = sorted(f for f in os.listdir(d) if f.endswith(".h5") and f != "zz_predictions.h5")
        check(all(f"file: {f}" in text for f in files) and "zz_predictions" not in text,
              f"manifest lists the task files {files} only")
        rc, msg = sotu("inspect", path)
        check(rc == 0 and "folders_grey" in msg, f"inspect reads the manifest back (rc {rc})")


def main():
    work = os.path.abspath(sys.argv[1])
    os.makedirs(os.path.join(work, "tasks"), exist_ok=True)
    for f in os.listdir(os.path.join(work, "tasks")):
        os.remove(os.path.join(work, "tasks", f))
    rng = np.random.default_rng(7)
    check_split_folder(work, rng)
    check_ratio_split_and_bad(work, rng)
    check_bad_huffman_table(work, rng)
    check_manifest(work)
    if failures:
        print(f"check_import_images: {len(failures)} failures", file=sys.stderr)
        return 1
    print("check_import_images: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
