#!/usr/bin/env bash
# `sotu eval` under mpiexec -n 2 when one rank fails before the first
# collective: each rank reads its inputs itself, and a task manifest missing
# on one node is the realistic case (node-local scratch). mpiexec's MPMD form
# gives rank 1 (then rank 0) a manifest path that does not exist. Every rank
# must take the same "all ranks OK" vote (sotu_mpi_all_ok), so the job ends
# at once with the failing rank's message and a non-zero exit status, the
# same one a serial run gives, instead of the healthy rank waiting in the
# evaluation's collectives for ever (the hang of issue 16: the failing rank
# returned before the collective).
set -euo pipefail
source "$SOTU_SOURCE_DIR/tests/slurm/common.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-evalfail.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
sotu_tiny_setup "$work"
"$SOTU_BIN" -q train "$work/tiny.yaml" > "$work/train.out" || fail "the tiny run"
ckpt="$work/run/checkpoint.h5"
good="$work/tasks/manifest.yaml"
missing="$work/elsewhere/manifest.yaml"

# The serial exit status of a missing manifest, the expected one.
rc=0
"$SOTU_BIN" -q eval "$ckpt" --tasks "$missing" > /dev/null 2> "$work/serial.err" || rc=$?
[[ $rc -ne 0 ]] || fail "serial eval of a missing manifest exited 0"
want=$rc
echo "serial: exit $want: $(head -n 1 "$work/serial.err")"

# The healthy 2-rank evaluation works (the test's setup is sound).
mpiexec --oversubscribe -n 2 "$SOTU_BIN" -q eval "$ckpt" --tasks "$good" > "$work/ok.out" \
  2> "$work/ok.err" || { tail "$work/ok.err"; fail "2-rank eval of the good manifest"; }

for bad in 1 0; do
  args=()
  for r in 0 1; do
    m=$good
    [[ $r -eq $bad ]] && m=$missing
    [[ $r -eq 1 ]] && args+=(:)
    args+=(-n 1 "$SOTU_BIN" -q eval "$ckpt" --tasks "$m")
  done
  rc=0
  t=$SECONDS
  timeout -k 10 180 mpiexec --oversubscribe "${args[@]}" > "$work/r$bad.out" 2> "$work/r$bad.err" \
    || rc=$?
  [[ $rc -ne 124 && $rc -ne 137 ]] || { tail "$work/r$bad.err"; fail "rank $bad failing: hung (killed after 180 s)"; }
  [[ $rc -eq $want ]] || { tail "$work/r$bad.err"; fail "rank $bad failing: exit $rc, expected $want"; }
  grep -q "elsewhere/manifest.yaml" "$work/r$bad.err" ||
    { tail "$work/r$bad.err"; fail "rank $bad failing: the message does not name the manifest"; }
  grep -q "evaluation setup failed on another rank" "$work/r$bad.err" ||
    { tail "$work/r$bad.err"; fail "rank $bad failing: the healthy rank does not say why it stops"; }
  echo "rank $bad failing: exit $rc in $((SECONDS - t)) s"
done
echo "PASS"
