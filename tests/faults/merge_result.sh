#!/usr/bin/env bash
# `sotu merge` never modifies the run's own files and never writes over a
# result (issue 14, defect 3). On a complete serial run (tiny ViT, fmnist5):
#  - `sotu merge RUN` writes RUN/merges/0.3-sum/ with checkpoint.h5,
#    report.md, report.html, summary.csv and metrics.jsonl, exits 0, its
#    /merged is bitwise the run's, and every file of the run is bitwise
#    unchanged; a second merge writes RUN/merges/0.3-sum-2;
#  - --out DIR: an existing non-empty DIR, a file, or a name ending in .h5
#    is refused (exit 2) before any work; an empty DIR is used;
#  - a missing delta, and a truncated one: exit 3 naming the task ("left
#    out of this merge", never "will be redone"), the rest merged into a
#    result marked partial (report.md, summary.csv, checkpoint attribute
#    partial and task status left_out, metrics.jsonl), run files unchanged;
#    the same under mpiexec -n 2; no delta at all: exit 3, nothing written;
#  - a full disk (a small tmpfs, as root): the disk fills while the reports
#    are written, or while the checkpoint is: exit 4, no result directory
#    (nor a temporary one) left, run files unchanged. Skipped with a message
#    when a tmpfs cannot be mounted.
set -euo pipefail
source "$SOTU_SOURCE_DIR/tests/slurm/common.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-merge.XXXXXX")
mnt=
cleanup() {
  [[ -n $mnt ]] && umount "$mnt" 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
sotu_tiny_setup "$work"
"$SOTU_BIN" -q train "$work/tiny.yaml" > "$work/train.out" 2> "$work/train.err" \
  || { cat "$work/train.err"; fail "training the reference run"; }
run=$work/run

# Fingerprint of a run directory's own files (everything but merges/).
fingerprint() {
  (cd "$1" && find . -path ./merges -prune -o -print | LC_ALL=C sort | while read -r p; do
    if [[ -f $p && ! -L $p ]]; then sha256sum "$p"; else echo "entry $p"; fi
  done)
}
# merge_rc OUTNAME ARGS...: runs sotu merge, leaves stdout/stderr in $work/OUTNAME.{out,err}
merge_rc() {
  local name=$1 rc=0
  shift
  "$SOTU_BIN" merge "$@" > "$work/$name.out" 2> "$work/$name.err" || rc=$?
  echo $rc
}
result_files() { # DIR: the five files of a result
  for f in checkpoint.h5 report.md report.html summary.csv metrics.jsonl; do
    [[ -s "$1/$f" ]] || fail "$1/$f missing or empty"
  done
}
fingerprint "$run" > "$work/run.fp"

# A complete merge, then a second one.
rc=$(merge_rc m1 "$run")
[[ $rc -eq 0 ]] || { cat "$work/m1.err"; fail "complete merge: exit $rc"; }
result_files "$run/merges/0.3-sum"
grep -q "merged result: $run/merges/0.3-sum " "$work/m1.out" || fail "the result is not named"
rc=$(merge_rc m2 "$run")
[[ $rc -eq 0 ]] || { cat "$work/m2.err"; fail "second merge: exit $rc"; }
result_files "$run/merges/0.3-sum-2"
[[ $(ls -A "$run/merges" | wc -l) -eq 2 ]] || fail "merges/ holds $(ls -A "$run/merges")"
fingerprint "$run" | cmp -s - "$work/run.fp" || fail "a merge modified the run's own files"
"$SOTU_PYTHON" - "$run" <<'PY'
import csv, json, sys
import h5py, numpy as np
run = sys.argv[1]
with h5py.File(f"{run}/checkpoint.h5") as a, h5py.File(f"{run}/merges/0.3-sum/checkpoint.h5") as b:
    assert all(np.array_equal(a["merged"][n][()], b["merged"][n][()]) for n in a["merged"]), "merged differs"
    assert int(b.attrs["partial"]) == 0 and len(b["heads"]) == 5
    assert all(b["tasks"][t].attrs["status"] == "ok" for t in b["tasks"])
rows = list(csv.DictReader(open(f"{run}/merges/0.3-sum/summary.csv")))
assert rows and all(r["tasks_merged"] == "5" and r["tasks"] == "5" for r in rows), rows
ev = [json.loads(l) for l in open(f"{run}/merges/0.3-sum/metrics.jsonl")]
m = [e for e in ev if e["event"] == "merge"]
assert len(m) == 1 and m[0]["merged_tasks"] == 5 and m[0]["left_out"] == [] and not m[0]["partial"], m
assert "Partial" not in open(f"{run}/merges/0.3-sum/report.md").read()
PY
echo "ok: sotu merge RUN -> RUN/merges/0.3-sum (then -2), exit 0, /merged bitwise, run files unchanged"

# --out: refused before any work when it names something that exists.
mkdir -p "$work/full" && echo x > "$work/full/keep.txt"
for bad in "$work/full" "$work/full/keep.txt" "$work/new.h5"; do
  rc=$(merge_rc out "$run" --out "$bad")
  [[ $rc -eq 2 ]] || fail "--out $bad: exit $rc, expected 2"
  grep -q -- "$bad" "$work/out.err" || fail "--out $bad: not named: $(cat "$work/out.err")"
done
[[ $(cat "$work/full/keep.txt") == x && $(ls -A "$work/full") == keep.txt ]] || fail "--out DIR touched"
[[ ! -e "$work/new.h5" ]] || fail "--out x.h5 created something"
mkdir "$work/empty"
rc=$(merge_rc oute "$run" --out "$work/empty")
[[ $rc -eq 0 ]] || { cat "$work/oute.err"; fail "--out of an empty directory: exit $rc"; }
result_files "$work/empty"
echo "ok: --out refuses an existing non-empty DIR, a file, a .h5 name (exit 2); uses an empty DIR"

# A missing delta and a truncated one: exit 3 naming the task, partial result.
partial_case() { # NAME TASK-LEFT-OUT
  local name=$1 task=$2 rc
  fingerprint "$work/$name" > "$work/$name.fp"
  rc=$(merge_rc "$name" "$work/$name")
  [[ $rc -eq 3 ]] || { cat "$work/$name.err"; fail "$name: exit $rc, expected 3"; }
  grep -q "left out of this merge: $task" "$work/$name.err" || fail "$name: $task not named"
  grep -q "redone" "$work/$name.err" && fail "$name: the log says a task will be redone"
  fingerprint "$work/$name" | cmp -s - "$work/$name.fp" || fail "$name: run files modified"
  result_files "$work/$name/merges/0.3-sum"
  "$SOTU_PYTHON" - "$work/$name/merges/0.3-sum" "$task" <<'PY'
import csv, json, sys
import h5py
d, task = sys.argv[1:]
with h5py.File(f"{d}/checkpoint.h5") as f:
    assert int(f.attrs["partial"]) == 1
    assert f["tasks"][task].attrs["status"] == "left_out", f["tasks"][task].attrs["status"]
    assert task not in f["heads"] and len(f["heads"]) == 4
rows = list(csv.DictReader(open(f"{d}/summary.csv")))
assert all(r["tasks_merged"] == "4" and r["tasks"] == "5" for r in rows), rows
md = open(f"{d}/report.md").read()
assert "**Partial result: 4 of 5 tasks merged" in md and f"{task} (left out of this merge)" in md
assert "Partial result: 4 of 5" in open(f"{d}/report.html").read()
m = [json.loads(l) for l in open(f"{d}/metrics.jsonl") if '"event":"merge"' in l][0]
assert m["partial"] and [x["task"] for x in m["left_out"]] == [task], m
PY
}
cp -a "$run" "$work/missing" && rm -rf "$work/missing/merges" "$work/missing/deltas/t03-gauss5-2cls.sotud"
partial_case missing t03-gauss5-2cls
cp -a "$run" "$work/trunc" && rm -rf "$work/trunc/merges"
head -c 4000 "$run/deltas/t01-inv-2cls.sotud" > "$work/trunc/deltas/t01-inv-2cls.sotud"
partial_case trunc t01-inv-2cls
grep -q "t01-inv-2cls.sotud: does not verify" "$work/trunc.err" || fail "trunc: no reason given"
rc=0
mpiexec --oversubscribe -n 2 "$SOTU_BIN" -q merge "$work/missing" > "$work/mpi.out" 2> "$work/mpi.err" || rc=$?
[[ $rc -eq 3 ]] || { cat "$work/mpi.err"; fail "mpiexec -n 2 merge of a partial run: exit $rc"; }
result_files "$work/missing/merges/0.3-sum-2"
cp -a "$run" "$work/none" && rm -rf "$work/none/merges" "$work/none/deltas"/*.sotud
rc=$(merge_rc none "$work/none")
[[ $rc -eq 3 ]] || fail "no delta at all: exit $rc, expected 3"
[[ ! -e "$work/none/merges" ]] || fail "no delta at all: something was written: $(ls -R "$work/none/merges")"
echo "ok: missing / truncated delta -> exit 3 naming the task, partial result marked, run unchanged"

# A full disk: the result directory appears whole or not at all.
if [[ $(id -u) -ne 0 ]] || ! mkdir -p "$work/mnt" || ! mount -t tmpfs -o size=1m tmpfs "$work/mnt" 2> /dev/null; then
  echo "SKIP: full-disk merge (needs root to mount a small tmpfs)"
  echo "merge_result passed in $(elapsed)"
  exit 0
fi
umount "$work/mnt"
ck_pages=$(( ($(stat -c %s "$run/merges/0.3-sum/checkpoint.h5") + 4095) / 4096 ))
# pages: the checkpoint and the small files fit, report.html (~5 pages) does not;
# then the checkpoint itself does not fit.
for pages in $((ck_pages + 4)) $((ck_pages / 2)); do
  mount -t tmpfs -o size=$((pages * 4))k tmpfs "$work/mnt"
  mnt=$work/mnt
  rc=$(merge_rc full "$run" --out "$work/mnt/result")
  left=$(ls -A "$work/mnt")
  umount "$work/mnt"
  mnt=
  [[ $rc -eq 4 ]] || { cat "$work/full.err"; fail "full disk ($pages pages): exit $rc, expected 4"; }
  grep -q "No space left on device" "$work/full.err" || fail "full disk: no errno in the message"
  grep -q "$work/mnt/result not written" "$work/full.err" || fail "full disk: result not named"
  [[ -z $left ]] || fail "full disk ($pages pages): left behind: $left"
  fingerprint "$run" | cmp -s - "$work/run.fp" || fail "full disk: run files modified"
  echo "ok: full disk ($pages pages of tmpfs) -> exit $rc, nothing left on it, run files unchanged"
done
echo "merge_result passed in $(elapsed)"
