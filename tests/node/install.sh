#!/usr/bin/env bash
# cmake --install into a temporary prefix, then the installed files work from
# there: sotu --version, an installed example whose relative paths resolve to
# the installed backbone (--print-config), the benchmark helpers, and the
# installed sbatch scripts finding sotu through SOTU_BIN, then PATH, then
# their install prefix (srun replaced by a stub that prints its arguments).
#   install.sh CMAKE BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/common.sh"
cmake_bin=${1:?usage: install.sh CMAKE BUILD_DIR} build=${2:?usage: install.sh CMAKE BUILD_DIR}
p=$work/prefix
"$cmake_bin" --install "$build" --prefix "$p" > "$work/install.log" || { cat "$work/install.log"; fail "cmake --install"; }

for f in bin/sotu bin/sotu_sgemm_peak bin/sotu_bench_train.sh bin/sotu_bench_codec.sh \
         bin/sotu_bench_ingest.sh bin/sotu_codec_merge_series.sh \
         share/sotu/slurm/sotu.sbatch share/sotu/slurm/merge-after.sbatch \
         share/sotu/slurm/sweep-array.sbatch share/sotu/examples/quickstart.yaml \
         share/sotu/examples/clr-fmnist5.yaml share/sotu/data/pretrained/vit-tiny-fmnist.h5 \
         share/sotu/data/pretrained/resnet18-w8-fmnist.h5 share/sotu/bench/peer_torch_train.py \
         share/doc/sotu/README.md; do
  [[ -e $p/$f ]] || fail "$f not installed"
done
for f in bin/sotu bin/sotu_sgemm_peak bin/sotu_bench_train.sh share/sotu/slurm/sotu.sbatch; do
  [[ -x $p/$f ]] || fail "$f not executable"
done

# The installed binary runs from anywhere.
cd "$work"
want=$("$SOTU_BIN" --version)
[[ $("$p/bin/sotu" --version) == "$want" ]] || fail "installed --version: $("$p/bin/sotu" --version)"
echo "installed: $want"

# An installed example: relative paths are relative to the YAML file (finetune:
# --print-config without MPI, so the ASan build sees no Open MPI leaks).
"$p/bin/sotu" finetune "$p/share/sotu/examples/quickstart.yaml" --print-config > "$work/cfg.yaml"
pre=$(sed -n 's/^ *pretrained: *//p' "$work/cfg.yaml" | tr -d '"' | head -1)
[[ $pre == "$p/share/sotu/examples/../data/pretrained/vit-tiny-fmnist.h5" && -f $pre ]] \
  || fail "model.pretrained resolves to '$pre'"
"$p/bin/sotu" inspect "$pre" > /dev/null || fail "inspect the installed backbone"
"$p/bin/sotu" finetune "$p/share/sotu/examples/clr-fmnist5.yaml" --print-config | \
  grep -q "pretrained: .*/share/sotu/examples/../data/pretrained/resnet18-w8-fmnist.h5" \
  || fail "clr example path"

# The benchmark helpers.
"$p/bin/sotu_sgemm_peak" --threads 1 --min-seconds 0.01 > "$work/peak.jsonl" || fail "sotu_sgemm_peak"
grep -q '"bench":"sgemm","threads":1,"shape":"square".*"core":"' "$work/peak.jsonl" \
  || fail "sotu_sgemm_peak: $(cat "$work/peak.jsonl")"
"$p/bin/sotu_bench_train.sh" --help | grep -q "Training-step benchmark" || fail "bench_train --help"

# The sbatch scripts: SOTU_BIN, then PATH, then the install prefix.
mkdir -p "$work/stub" "$work/onpath"
cat > "$work/stub/srun" <<'SH'
#!/bin/sh
echo "srun $*"
SH
printf '#!/bin/sh\necho on-path "$@"\n' > "$work/onpath/sotu"
chmod +x "$work/stub/srun" "$work/onpath/sotu"
export SLURM_JOB_ID=1 SLURM_JOB_NODELIST=n1 SLURM_NTASKS=3 SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_JOB_ID=1
base=$work/stub:/usr/bin:/bin
sb=$p/share/sotu/slurm
out=$(env -u SOTU_BIN PATH="$base" bash "$sb/sotu.sbatch" x.yaml)
[[ $out == *"srun --mpi=pmix --cpus-per-task=1 $p/bin/sotu train x.yaml"* ]] || fail "prefix: $out"
out=$(env -u SOTU_BIN PATH="$work/onpath:$base" bash "$sb/sotu.sbatch" x.yaml)
[[ $out == *"$work/onpath/sotu train x.yaml"* ]] || fail "PATH: $out"
out=$(SOTU_BIN=/opt/x/sotu PATH="$work/onpath:$base" bash "$sb/sotu.sbatch" x.yaml)
[[ $out == *"/opt/x/sotu train x.yaml"* ]] || fail "SOTU_BIN: $out"
out=$(env -u SOTU_BIN PATH="$base" bash "$sb/merge-after.sbatch" runs/r)
[[ $out == *"$p/bin/sotu merge runs/r"* ]] || fail "merge-after: $out"
out=$(env -u SOTU_BIN PATH="$base" bash "$sb/sweep-array.sbatch" s.yaml)
[[ $out == *"$p/bin/sotu train s.yaml --array-index 0"* ]] || fail "sweep-array: $out"
# The source tree's copy has no prefix: without SOTU_BIN or PATH it says so.
rc=0; env -u SOTU_BIN PATH="$base" bash "$SOTU_SOURCE_DIR/slurm/sotu.sbatch" x.yaml \
  > /dev/null 2> "$work/none.err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "no sotu" "$work/none.err" || fail "uninstalled script: exit $rc"
echo "install: ok ($p)"
