#!/usr/bin/env bash
# One `sotu train` per run directory (io/dirlock.h), with real concurrent
# runs:
#  - a second run started into the directory of a running one (both under
#    mpiexec -n 2) exits 2 at once, naming the directory and the holder's
#    pid and host, and writes nothing there (config.yaml and metrics.jsonl
#    unchanged); the first finishes with exit 0 and one run_start;
#  - a run killed with kill -9 leaves no stale lock: --resume starts at once
#    and finishes;
#  - a sweep locks every point directory: a run into one of them is refused;
#  - array elements (--array-index, --shard-count 2) of one directory run
#    side by side, but the same element twice, or a whole run beside an
#    element, is refused;
#  - a CLR run (method clr) is refused beside another CLR run.
set -euo pipefail
: "${CLR_TASK_BIN:?}"
source "$SOTU_SOURCE_DIR/tests/slurm/common.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-lock.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" $(pgrep -P "$p") 2> /dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
sotu_tiny_setup "$work"
host=$(hostname)
# Runs that last until killed.
long=(--set train.epochs=1000 --set train.max_steps=1000000)

# wait_for FILE PATTERN: until FILE holds a line matching PATTERN (60 s).
wait_for() {
  for _ in $(seq 1200); do grep -q "$2" "$1" 2> /dev/null && return; sleep 0.05; done
  fail "$1 never showed '$2'"
}

# refused NAME DIR HOLDER [sotu train args...]: the run exits 2 in time,
# naming DIR and HOLDER (a pattern).
# Under a loaded machine Open MPI's mpiexec can end the job before it has
# forwarded rank 0's last line (the rank wrote it and exited 2): when no
# "is in use" line came at all, the refused run is tried again (3 times).
refused() {
  local name=$1 dir=$2 holder=$3 rc t=$SECONDS try
  shift 3
  for try in 1 2 3; do
    rc=0
    timeout 60 "$@" > "$work/$name.out" 2> "$work/$name.err" || rc=$?
    [[ $rc -eq 2 ]] || { cat "$work/$name.err"; fail "$name: exit status $rc, expected 2"; }
    grep -q "is in use by another sotu train" "$work/$name.err" && break
    echo "$(elapsed): $name: exit 2 but no message reached mpiexec's stderr (try $try)"
  done
  grep -q "$dir is in use by another sotu train ($holder" "$work/$name.err" ||
    { cat "$work/$name.err"; fail "$name: the message does not name $dir and $holder"; }
  echo "$(elapsed): $name refused in $((SECONDS - t)) s: $(grep -o "is in use.*" "$work/$name.err" | head -n 1)"
}

# 1. Two runs a moment apart into one directory.
mpiexec --oversubscribe -n 2 "$SOTU_BIN" train "$work/tiny.yaml" --set train.epochs=400 \
  --set train.max_steps=80 --set "output.dir=$work/a" > "$work/a.out" 2> "$work/a.err" &
a=$!
pids+=("$a")
wait_for "$work/a.err" "starts"
sum_before=$(md5sum "$work/a/config.yaml")
refused second "$work/a" "pid [0-9]* on host $host since" \
  mpiexec --oversubscribe -n 2 "$SOTU_BIN" train "$work/tiny.yaml" --set train.epochs=400 \
  --set train.max_steps=80 --set "output.dir=$work/a"
[[ $(md5sum "$work/a/config.yaml") == "$sum_before" ]] || fail "the refused run rewrote config.yaml"
rc=0
wait "$a" || rc=$?
[[ $rc -eq 0 ]] || { tail "$work/a.err"; fail "the first run: exit status $rc"; }
[[ $(grep -c '"event":"run_start"' "$work/a/metrics.jsonl") -eq 1 ]] || fail "metrics.jsonl of two runs"
grep -q "pid [0-9]* on host $host since" "$work/a/.sotu.lock" || fail "the lock file names no holder"
echo "$(elapsed): the first run finished alone (exit 0, one run_start)"

# 2. kill -9 leaves no lock behind.
short=(--set train.epochs=400 --set train.max_steps=60)
"$SOTU_BIN" train "$work/tiny.yaml" "${short[@]}" --set "output.dir=$work/b" > "$work/b.out" 2> "$work/b.err" &
b=$!
pids+=("$b")
wait_for "$work/b.err" "done on rank 0"
kill -9 "$b"
wait "$b" 2> /dev/null || true
"$SOTU_BIN" -q train "$work/tiny.yaml" "${short[@]}" --set "output.dir=$work/b" --resume \
  > "$work/b2.out" 2> "$work/b2.err" || { cat "$work/b2.err"; fail "--resume after kill -9"; }
echo "$(elapsed): --resume after kill -9 finished"

# 3. A sweep holds its point directories.
"$SOTU_BIN" train "$work/tiny.yaml" "${long[@]}" --set "sweep.sotu.keep=[0.3, 0.2]" \
  --set "output.dir=$work/s" > "$work/s.out" 2> "$work/s.err" &
s=$!
pids+=("$s")
wait_for "$work/s.err" "starts"
point=$(ls "$work/s/points" | head -n 1)
refused point "$work/s/points/$point" "pid [0-9]* on host $host" \
  "$SOTU_BIN" train "$work/tiny.yaml" --set "output.dir=$work/s/points/$point"
kill -9 "$s"

# 4. Array elements side by side, but each once and never beside a run.
element() {
  "$SOTU_BIN" train "$work/tiny.yaml" "${long[@]}" --array-index "$1" --shard-count 2 \
    --set "output.dir=$work/e" > "$work/e$1.out" 2> "$work/e$1.err" &
  pids+=("$!")
}
element 0
e0=$!
wait_for "$work/e0.err" "starts"
element 1
e1=$!
wait_for "$work/e1.err" "starts"
kill -0 "$e0" && kill -0 "$e1" || fail "two array elements could not run side by side"
refused element-twice "$work/e" "array element 0 of a job array (pid $e0)" \
  "$SOTU_BIN" train "$work/tiny.yaml" --array-index 0 --shard-count 2 --set "output.dir=$work/e"
refused run-beside-elements "$work/e" "array element [01] of a job array" \
  "$SOTU_BIN" train "$work/tiny.yaml" --set "output.dir=$work/e"
kill -9 "$e0" "$e1"

# 5. CLR runs lock their directory too.
"$CLR_TASK_BIN" --backbone "$work/resnet.h5" 8 28 10
cat > "$work/clr.yaml" << EOF
method: clr
model: {pretrained: resnet.h5}
data: {manifest: tasks/manifest.yaml}
train: {epochs: 1000, batch_size: 32, warmup_steps: 1, threads: 1}
eval: {baselines: []}
output: {dir: $work/c}
EOF
"$SOTU_BIN" train "$work/clr.yaml" > "$work/c.out" 2> "$work/c.err" &
c=$!
pids+=("$c")
wait_for "$work/c.err" "starts"
refused clr "$work/c" "pid $c on host $host" "$SOTU_BIN" train "$work/clr.yaml"
kill -9 "$c"
echo "run_lock passed in $(elapsed)"
