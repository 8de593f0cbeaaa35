# Shared setup of the slurm and kill/resume tests (sourced).
#   sotu_tiny_setup DIR   small fmnist5 tasks + a random tiny ViT in DIR, and
#                         the config DIR/tiny.yaml (fast: max_steps 3)
#   slurm_up NAME         starts tests/slurm/cluster.sh in $PWD/slurm-NAME
#                         (fresh state), exports SLURM_CONF, and on exit
#                         cancels every job and stops the daemons
# Jobs pass --overcommit: CI has 2 cores and the tests start up to 3 ranks.
: "${SOTU_BIN:?}" "${SOTU_SOURCE_DIR:?}" "${SOTU_PYTHON:=/usr/bin/python3}"

sotu_tiny_setup() {
  local dir=$1
  mkdir -p "$dir"
  "$SOTU_BIN" -q data fmnist --preset fmnist5 --out "$dir/tasks" --train 96 --test 64
  "$SOTU_PYTHON" "$SOTU_SOURCE_DIR/tests/reference/make_random_weights.py" \
    "$dir/vit.h5" 28 1 4 32 2 2 64 10 7
  cat > "$dir/tiny.yaml" <<YAML
model:
  pretrained: vit.h5
data:
  manifest: tasks/manifest.yaml
train:
  epochs: 1
  batch_size: 32
  max_steps: 3
  warmup_steps: 1
  threads: 1
sotu:
  keep: 0.3
eval:
  baselines: [finetuned]
output:
  dir: $dir/run
YAML
}

slurm_cleanup() {
  local rc=$?
  if [[ -n "${SLURM_CONF:-}" ]]; then
    scancel --full --user=root 2>/dev/null || true
    sleep 1
  fi
  bash "$SOTU_SOURCE_DIR/tests/slurm/cluster.sh" stop "$slurm_dir" || true
  if [[ $rc -ne 0 ]]; then
    echo "---- slurm logs ($slurm_dir/log) ----"
    tail -n 15 "$slurm_dir"/log/*.log 2>/dev/null || true
  fi
  [[ -n "${work:-}" ]] && rm -rf "$work"
  exit $rc
}

slurm_up() {
  slurm_dir="$PWD/slurm-$1"
  bash "$SOTU_SOURCE_DIR/tests/slurm/cluster.sh" stop "$slurm_dir" 2>/dev/null || true
  rm -rf "$slurm_dir"
  trap slurm_cleanup EXIT
  SLURM_CONF=$(bash "$SOTU_SOURCE_DIR/tests/slurm/cluster.sh" start "$slurm_dir")
  export SLURM_CONF
}

# Seconds since the test started.
t0=$SECONDS
elapsed() { echo "$((SECONDS - t0))s"; }
