#!/usr/bin/env bash
# `sotu doctor` and `sotu doctor --json` on this node: exit 0, the text names
# every part (CPU, features, CPUs granted, threads and why, BLAS core and
# action, sgemm check and GFLOP/s, MPI and library versions), the JSON parses
# and agrees with the text and with this process's environment; bad usage is
# exit 2.
set -euo pipefail
source "$(dirname "$0")/common.sh"

"$SOTU_BIN" doctor > "$work/d.txt" 2> "$work/d.err" || { cat "$work/d.err"; fail "doctor exit $?"; }
cat "$work/d.txt"
for label in "CPU " "features " "OS state " "CPUs granted " "ranks here " "threads " "BLAS " \
             "core " "BLAS action " "sgemm check    ok" "sgemm " "MPI  " "libraries "; do
  grep -q "^$label" "$work/d.txt" || fail "no '$label' line"
done
grep -q "HDF5 1\.[0-9]*\.[0-9]*, zstd [0-9.]*, OpenBLAS [0-9.]*, libyaml [0-9.]*, jansson [0-9.]*" \
  "$work/d.txt" || fail "library versions"

"$SOTU_BIN" doctor --json > "$work/d.json" || fail "doctor --json exit $?"
"$py" - "$work/d.json" "${OMP_NUM_THREADS:-}" "${OPENBLAS_CORETYPE:-}" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
omp, coretype = sys.argv[2], sys.argv[3]
for k in ("sotu_version", "sotu_commit", "host", "ok", "cpu", "cpus_granted", "threads", "blas",
          "libraries", "ranks"):
    assert k in d, k
assert d["ok"] is True
t, b = d["threads"], d["blas"]
assert t["threads"] >= 1 and t["why"], t
if omp:
    assert t["source"] == "OMP_NUM_THREADS" and t["threads"] == int(omp.split(",")[0]), t
else:
    assert t["source"] == "cpus" and t["threads"] <= d["cpus_granted"]["affinity_cpus"], t
assert b["library"] == "OpenBLAS" and b["config"].startswith("OpenBLAS " + b["version"]), b
assert b["check"]["ok"] is True and b["check"]["max_error"] < 1e-4, b["check"]
assert b["sgemm"]["gflops"] > 0 and b["sgemm_1thread"]["gflops"] > 0, b
if coretype:
    assert b["origin"] == "user" and b["core"].lower() == coretype.lower(), b
    assert b["OPENBLAS_CORETYPE_user"] == coretype
assert b["action"] and "OPENBLAS_CORETYPE" in b["action"], b["action"]
assert len(d["ranks"]) == 1 and d["ranks"][0]["threads"] == t["threads"]
for lib in ("mpi", "hdf5", "zstd", "openblas", "libyaml", "jansson", "zlib"):
    assert d["libraries"][lib], lib
print("doctor --json:", t["threads"], "threads,", b["core"], b["origin"], "%.1f GFLOP/s" % b["sgemm"]["gflops"])
PY
rc=0; "$SOTU_BIN" doctor extra 2> /dev/null || rc=$?
[[ $rc -eq 2 ]] || fail "doctor with an argument: exit $rc"
"$SOTU_BIN" doctor --help | grep -q "usage: sotu doctor" || fail "--help"
"$SOTU_BIN" --help | grep -q "doctor" || fail "doctor not in sotu --help"
echo "doctor: ok"
