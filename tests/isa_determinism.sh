#!/usr/bin/env bash
# The ISA level does not change results (common/isa.h): serial `sotu train`
# runs of the quick start's ViT and of CLR's ResNet on small fmnist5 tasks,
# with SOTU_ISA set to each level this CPU supports, write byte-identical
# deltas and CLR modules and bit-identical merged weights (h5diff of
# /merged; without h5diff, of the merged weights exported as safetensors).
# A level the CPU lacks must be refused with exit 2. SOTU_FMNIST_DIR: where
# the Fashion-MNIST files are, if not where Debian puts them.
set -euo pipefail
: "${SOTU_BIN:?}" "${SOTU_SOURCE_DIR:?}"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-isa.XXXXXX")
trap 'rm -rf "$work"' EXIT
pre="$SOTU_SOURCE_DIR/data/pretrained"

"$SOTU_BIN" -q data fmnist --preset fmnist5 --out "$work/tasks" --train 96 --test 64 \
    ${SOTU_FMNIST_DIR:+--data-dir "$SOTU_FMNIST_DIR"}
common=(--set "data.manifest=$work/tasks/manifest.yaml" --set train.epochs=1
        --set train.batch_size=32 --set train.max_steps=3 --set train.threads=1
        --set train.warmup_steps=1 --set "eval.baselines=[]" --set eval.every=0)
vit=("$SOTU_SOURCE_DIR/examples/quickstart.yaml" --set "model.pretrained=$pre/vit-tiny-fmnist.h5"
     --set sotu.keep=0.3 --set "eval.classifiers=[task_heads]")
clr=("$SOTU_SOURCE_DIR/examples/clr-fmnist5.yaml"
     --set "model.pretrained=$pre/resnet18-w8-fmnist.h5")

levels=()
for level in scalar avx2 avx512; do
    rc=0
    SOTU_ISA=$level "$SOTU_BIN" -q train "${vit[@]}" "${common[@]}" \
        --set "output.dir=$work/vit-$level" > "$work/$level.out" 2> "$work/$level.err" || rc=$?
    if [[ $rc -eq 2 ]] && grep -q "does not support $level" "$work/$level.err"; then
        echo "isa_determinism: $level: not supported by this CPU, refused (exit 2)"
        continue
    fi
    [[ $rc -eq 0 ]] || { echo "ViT at $level: exit $rc"; cat "$work/$level.err"; exit 1; }
    SOTU_ISA=$level "$SOTU_BIN" -q train "${clr[@]}" "${common[@]}" \
        --set "output.dir=$work/clr-$level" > "$work/clr-$level.out" 2> "$work/clr-$level.err" ||
        { echo "CLR at $level failed"; cat "$work/clr-$level.err"; exit 1; }
    levels+=("$level")
done
[[ ${#levels[@]} -ge 1 && ${levels[0]} == scalar ]] || { echo "scalar must always run"; exit 1; }

for level in "${levels[@]:1}"; do
    for f in "$work"/vit-scalar/deltas/*.sotud "$work"/clr-scalar/modules/*.clrm; do
        g=${f/-scalar\//-$level/}
        cmp "$f" "$g" || { echo "$(basename "$f") differs between scalar and $level"; exit 1; }
    done
    if command -v h5diff > /dev/null; then
        h5diff "$work/vit-scalar/checkpoint.h5" "$work/vit-$level/checkpoint.h5" /merged /merged ||
            { echo "/merged differs between scalar and $level"; exit 1; }
    else
        for l in scalar "$level"; do # from one path: the export records its source
            cp "$work/vit-$l/checkpoint.h5" "$work/ck.h5"
            "$SOTU_BIN" -q export safetensors "$work/ck.h5" "$work/merged-$l.st" > /dev/null
        done
        cmp "$work/merged-scalar.st" "$work/merged-$level.st" ||
            { echo "the merged weights differ between scalar and $level"; exit 1; }
    fi
    echo "isa_determinism: $level gives scalar's deltas, CLR modules and merged weights"
done
n=$(ls "$work"/vit-scalar/deltas/*.sotud | wc -l)
m=$(ls "$work"/clr-scalar/modules/*.clrm | wc -l)
echo "isa_determinism: ${#levels[@]} levels (${levels[*]}), $n deltas and $m modules each"
