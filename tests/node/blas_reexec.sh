#!/usr/bin/env bash
# The OpenBLAS core switch on the real binary (common/blas_core.h), with the
# user's OPENBLAS_CORETYPE removed from the environment:
#  - unset: OpenBLAS's own choice stays when nothing faster runs here, else
#    sotu re-executes with the faster core;
#  - a weak core "chosen" (SOTU_TEST_BLAS_CHOSEN=Prescott) is switched to the
#    best core of this CPU, once, and the run's log line says so;
#  - a value the user set is never changed (Prescott stays Prescott);
#  - a switched core failing the sgemm check (SOTU_TEST_BLAS_BAD_CORE) falls
#    back to OpenBLAS's choice; both failing, or the user's core failing,
#    stops every command with exit 5 while doctor still reports;
#  - under mpiexec -n 3 every rank switches and MPI works after the re-exec.
set -euo pipefail
source "$(dirname "$0")/common.sh"
unset OPENBLAS_CORETYPE SOTU_TEST_BLAS_CHOSEN SOTU_TEST_BLAS_BAD_CORE
bench=(bench merge --model tiny --tasks 2 --repeat 1)

"$SOTU_BIN" doctor --json > "$work/unset.json" || fail "doctor with OPENBLAS_CORETYPE unset"
best=$(json "$work/unset.json" blas.best_for_cpu)
origin=$(json "$work/unset.json" blas.origin)
core=$(json "$work/unset.json" blas.core)
echo "unset: OpenBLAS chose $(json "$work/unset.json" blas.chosen_by_openblas), runs $core ($origin); best here: ${best:-none}"
case $origin in
  auto|unranked) ;;
  switched) [[ $core == "$best" ]] || fail "switched to $core, expected $best" ;;
  *) fail "origin $origin with OPENBLAS_CORETYPE unset" ;;
esac
if [[ -z $best ]]; then
  echo "SKIP: this CPU runs no AVX2+FMA core: the switch cannot be exercised here"
  exit 77
fi

# A weak choice is switched to the best core, and every computing command says so.
SOTU_TEST_BLAS_CHOSEN=Prescott "$SOTU_BIN" doctor --json > "$work/sw.json"
[[ $(json "$work/sw.json" blas.origin) == switched ]] || fail "no switch from Prescott"
[[ $(json "$work/sw.json" blas.chosen_by_openblas) == Prescott ]] || fail "chosen lost"
[[ $(json "$work/sw.json" blas.core) == "$best" ]] || fail "runs $(json "$work/sw.json" blas.core)"
[[ $(json "$work/sw.json" ok) == true ]] || fail "check after the switch"
grep -q "re-executed with OPENBLAS_CORETYPE=$best" "$work/sw.json" || fail "action text"
SOTU_TEST_BLAS_CHOSEN=Prescott "$SOTU_BIN" "${bench[@]}" > "$work/sw.out" 2> "$work/sw.err" \
  || { cat "$work/sw.err"; fail "bench after the switch"; }
grep -q "core $best (switched by sotu from Prescott), sgemm [0-9]*^3 [0-9.]* GFLOP/s" \
  "$work/sw.err" || { cat "$work/sw.err"; fail "no BLAS line in the log"; }
# An empty value counts as unset.
OPENBLAS_CORETYPE= SOTU_TEST_BLAS_CHOSEN=Prescott "$SOTU_BIN" doctor --json > "$work/empty.json"
[[ $(json "$work/empty.json" blas.origin) == switched ]] || fail "empty OPENBLAS_CORETYPE"

# The user's value is never changed.
for user in Prescott Haswell; do
  OPENBLAS_CORETYPE=$user SOTU_TEST_BLAS_CHOSEN=Prescott "$SOTU_BIN" doctor --json > "$work/u.json"
  [[ $(json "$work/u.json" blas.origin) == user ]] || fail "user value $user not respected"
  [[ $(json "$work/u.json" blas.core) == "$user" ]] || fail "user $user, runs $(json "$work/u.json" blas.core)"
  OPENBLAS_CORETYPE=$user "$SOTU_BIN" "${bench[@]}" 2> "$work/u.err" > /dev/null
  grep -q "core $user (OPENBLAS_CORETYPE=$user)" "$work/u.err" || { cat "$work/u.err"; fail "log for $user"; }
done

# The switched core fails its check: back to OpenBLAS's choice, the run goes on.
export SOTU_TEST_BLAS_CHOSEN=Prescott
SOTU_TEST_BLAS_BAD_CORE=$best "$SOTU_BIN" doctor --json > "$work/fb.json" || fail "doctor after fallback"
[[ $(json "$work/fb.json" blas.origin) == fallback ]] || fail "no fallback"
[[ $(json "$work/fb.json" blas.core) == Prescott ]] || fail "fallback runs $(json "$work/fb.json" blas.core)"
[[ $(json "$work/fb.json" ok) == true ]] || fail "fallback check"
SOTU_TEST_BLAS_BAD_CORE=$best "$SOTU_BIN" "${bench[@]}" > /dev/null 2> "$work/fb.err" || fail "bench after fallback"
grep -q "core Prescott (chosen by OpenBLAS; $best failed the sgemm check)" "$work/fb.err" \
  || { cat "$work/fb.err"; fail "fallback log line"; }

# Both fail: every command refuses with exit 5; doctor reports and exits 5.
rc=0; SOTU_TEST_BLAS_BAD_CORE=$best,Prescott "$SOTU_BIN" "${bench[@]}" > /dev/null 2> "$work/both.err" || rc=$?
[[ $rc -eq 5 ]] || fail "both cores broken: exit $rc, expected 5"
grep -q "disagrees with a naive product" "$work/both.err" || { cat "$work/both.err"; fail "message"; }
rc=0; SOTU_TEST_BLAS_BAD_CORE=$best,Prescott "$SOTU_BIN" doctor --json > "$work/both.json" 2>/dev/null || rc=$?
[[ $rc -eq 5 && $(json "$work/both.json" ok) == false ]] || fail "doctor with both broken: exit $rc"
unset SOTU_TEST_BLAS_CHOSEN

# The user's core fails: refused, and the value is still not changed.
rc=0; OPENBLAS_CORETYPE=Haswell SOTU_TEST_BLAS_BAD_CORE=Haswell "$SOTU_BIN" "${bench[@]}" \
  > /dev/null 2> "$work/ub.err" || rc=$?
[[ $rc -eq 5 ]] || fail "broken user core: exit $rc, expected 5"
grep -q "Haswell core: sgemm disagrees" "$work/ub.err" || { cat "$work/ub.err"; fail "message"; }
rc=0; OPENBLAS_CORETYPE=Haswell SOTU_TEST_BLAS_BAD_CORE=Haswell "$SOTU_BIN" doctor --json \
  > "$work/ub.json" 2>/dev/null || rc=$?
[[ $rc -eq 5 && $(json "$work/ub.json" blas.core) == Haswell ]] || fail "doctor: exit $rc"

# Every rank of mpiexec -n 3 switches before MPI_Init; MPI works after it.
SOTU_TEST_BLAS_CHOSEN=Prescott mpiexec -n 3 -x SOTU_TEST_BLAS_CHOSEN "$SOTU_BIN" doctor --json \
  > "$work/mpi.json" 2> "$work/mpi.err" || { cat "$work/mpi.err"; fail "doctor under mpiexec -n 3"; }
for r in 0 1 2; do
  [[ $(json "$work/mpi.json" "ranks.$r.core") == "$best" ]] || fail "rank $r runs $(json "$work/mpi.json" "ranks.$r.core")"
done
echo "blas_reexec: ok (switch, user value kept, fallback, refusal, mpiexec -n 3)"
