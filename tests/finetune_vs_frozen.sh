#!/bin/bash
# Fine-tunes fmnist5 task 0 from data/pretrained/vit-tiny-fmnist.h5 twice,
# all weights and frozen backbone + head, and requires fine-tuned > frozen.
# Environment (set by tests/CMakeLists.txt): SOTU_BIN, SOTU_SOURCE_DIR.
set -euo pipefail
bin=${SOTU_BIN:?SOTU_BIN is not set}
src=${SOTU_SOURCE_DIR:?SOTU_SOURCE_DIR is not set}
weights=$src/data/pretrained/vit-tiny-fmnist.h5
if [ ! -f "$weights" ]; then
    echo "missing $weights (make it with: sotu pretrain examples/pretrain.yaml)" >&2
    exit 1
fi
work=finetune_vs_frozen.d
rm -rf "$work"
mkdir -p "$work"
"$bin" -q data fmnist --preset fmnist5 --out "$work/fmnist5"

common=(--task 0 --set "data.manifest=$work/fmnist5/manifest.yaml"
        --set "model.pretrained=$weights" --set train.epochs=2 --set train.threads=1
        --set train.lr=5e-4 --set train.seed=0)
full=$("$bin" finetune "${common[@]}")
frozen=$("$bin" finetune "${common[@]}" --frozen --set train.lr=5e-3)
echo "fine-tuned: $full"
echo "frozen:     $frozen"
acc() { sed -n 's/.*test_acc=\([0-9.]*\).*/\1/p' <<<"$1"; }
a_full=$(acc "$full")
a_frozen=$(acc "$frozen")
[ -n "$a_full" ] && [ -n "$a_frozen" ] || { echo "no test_acc in the output" >&2; exit 1; }
echo "task 0 test accuracy: fine-tuned $a_full, frozen backbone + head $a_frozen"
awk -v a="$a_full" -v b="$a_frozen" 'BEGIN { exit !(a > b) }' || {
    echo "fine-tuned ($a_full) is not above frozen ($a_frozen)" >&2
    exit 1
}
