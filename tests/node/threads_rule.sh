#!/usr/bin/env bash
# The thread rule (README.md, Threads) on the real binary: the CPUs granted
# (taskset), SLURM_CPUS_PER_TASK, OMP_NUM_THREADS and --threads, the ranks of
# mpiexec dividing a node's CPUs when unbound, and the warning when ranks x
# threads exceed the CPUs. doctor reports the count; a computing command
# (bench merge) uses it and logs it.
set -euo pipefail
source "$(dirname "$0")/common.sh"
unset OMP_NUM_THREADS SLURM_CPUS_PER_TASK OMPI_COMM_WORLD_LOCAL_SIZE SLURM_NTASKS_PER_NODE
ncpu=$(taskset -pc $$ | sed 's/.*: //' | "$py" -c 'import sys
n = 0
for part in sys.stdin.read().strip().split(","):
    a, _, b = part.partition("-")
    n += int(b or a) - int(a) + 1
print(n)')
online=$(getconf _NPROCESSORS_ONLN)
echo "this process may run on $ncpu of $online CPUs"
bench=(bench merge --model tiny --tasks 2 --repeat 1)

threads() { "$@" "$SOTU_BIN" doctor --json > "$work/d.json" && json "$work/d.json" threads.threads; }
expect() { # want, command...
  local want=$1; shift
  local got; got=$(threads "$@")
  [[ $got == "$want" ]] || fail "$*: $got threads, expected $want ($(json "$work/d.json" threads.why))"
  echo "$*: $got ($(json "$work/d.json" threads.why))"
}

expect 1 taskset -c 0
expect 3 env OMP_NUM_THREADS=3 taskset -c 0
expect 2 env OMP_NUM_THREADS=2,1 taskset -c 0
expect "$ncpu" env
if [[ $ncpu -ge 2 ]]; then
  expect 2 taskset -c 0,1
  expect 1 env SLURM_CPUS_PER_TASK=1 taskset -c 0,1
  expect 2 env SLURM_CPUS_PER_TASK=8 taskset -c 0,1
  # A command computes with it and logs it.
  taskset -c 0,1 "$SOTU_BIN" "${bench[@]}" > "$work/b.out" 2> "$work/b.err"
  grep -q '"threads":2' "$work/b.out" || fail "bench merge did not run 2 threads: $(cat "$work/b.out")"
  grep -q "node .*: 2 threads (sched_getaffinity: 2 CPUs); OpenBLAS" "$work/b.err" \
    || { cat "$work/b.err"; fail "log line"; }
fi
# --threads beats OMP_NUM_THREADS.
OMP_NUM_THREADS=1 "$SOTU_BIN" "${bench[@]}" --threads 3 > "$work/t.out" 2>/dev/null
grep -q '"threads":3' "$work/t.out" || fail "--threads 3: $(cat "$work/t.out")"

# Ranks on one node: Open MPI's variable divides an unbound process's CPUs.
if [[ $ncpu -eq $online ]]; then
  half=$(( ncpu / 2 > 0 ? ncpu / 2 : 1 ))
  expect "$half" env OMPI_COMM_WORLD_LOCAL_SIZE=2
fi
expect 1 env OMPI_COMM_WORLD_LOCAL_SIZE=2 taskset -c 0   # bound: its own CPU

# Under mpiexec MPI counts the ranks sharing each CPU: unbound ranks share.
mpiexec -n 2 --bind-to none "$SOTU_BIN" doctor --json > "$work/m.json" 2> "$work/m.err" \
  || { cat "$work/m.err"; fail "doctor under mpiexec -n 2"; }
for r in 0 1; do
  t=$(json "$work/m.json" "ranks.$r.threads") why=$(json "$work/m.json" "ranks.$r.why")
  [[ $t -eq $(( ncpu / 2 > 0 ? ncpu / 2 : 1 )) && $why == *"2 ranks share them [MPI]"* ]] \
    || fail "mpiexec -n 2 --bind-to none: rank $r $t threads ($why)"
done
if [[ $ncpu -ge 2 ]]; then
  mpiexec -n 2 --bind-to core --map-by core "$SOTU_BIN" doctor --json > "$work/c.json" 2> "$work/c.err" \
    || { cat "$work/c.err"; fail "doctor under mpiexec --bind-to core"; }
  for r in 0 1; do
    [[ $(json "$work/c.json" "ranks.$r.threads") -eq 1 && $(json "$work/c.json" "ranks.$r.why") != *share* ]] \
      || fail "bound rank $r: $(json "$work/c.json" "ranks.$r.why")"
  done
fi
# More threads than CPUs on the node: a warning naming the product.
n=$(( online + 1 ))
mpiexec -n "$n" env OMP_NUM_THREADS=1 "$SOTU_BIN" "${bench[@]}" > /dev/null 2> "$work/o.err" \
  || { cat "$work/o.err"; fail "bench under mpiexec -n $n"; }
grep -q "warning: node .*: $n ranks x 1 thread = $n threads on $online CPUs" "$work/o.err" \
  || { cat "$work/o.err"; fail "no oversubscription warning"; }
echo "threads_rule: ok"
