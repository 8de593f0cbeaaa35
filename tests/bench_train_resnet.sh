#!/bin/bash
# `sotu bench train --model resnet18-w8`: CLR's step and full fine-tuning
# each run and report their FLOPs relative to full fine-tuning (0.731 for
# --tune clr, 1 for all); an unknown --tune is a usage error.
# Environment (set by tests/CMakeLists.txt): SOTU_BIN.
set -euo pipefail
bin=${SOTU_BIN:?SOTU_BIN is not set}
run() { "$bin" bench train --model resnet18-w8 --batch 4 --steps 1 --warmup 0 --threads 1 "$@"; }
clr=$(run --tune clr)
all=$(run --tune all)
echo "$clr"
echo "$all"
grep -q '"flops_ratio":0.731' <<<"$clr"
grep -q '"flops_ratio":1' <<<"$all"
if run --tune conv 2>/dev/null; then
    echo "--tune conv was accepted" >&2
    exit 1
fi
echo "bench_train_resnet: ok"
