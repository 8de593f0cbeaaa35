#!/usr/bin/env bash
# The codec, merge and ingest series of bench/RESULTS.md (issue 4): every
# configuration RUNS times (default 3), then a summary line per
# configuration with the median [min-max] of the figures.
#   bench/codec_merge_series.sh DELTAS_DIR [RUNS] [OUT.jsonl]
# DELTAS_DIR is a quick start's run/deltas (five fmnist5 deltas shipped at
# keep 1, as `bash scripts/quickstart.sh` leaves them). SOTU_BIN picks the
# binary (default build/sotu); SOTU_SERIES_INGEST=0 leaves out the MPI
# ingest runs. Takes about 6 minutes on 2 vCPUs.
set -euo pipefail
deltas=${1:?usage: bench/codec_merge_series.sh DELTAS_DIR [RUNS] [OUT.jsonl]}
runs=${2:-3}
out=${3:-$(mktemp "${TMPDIR:-/tmp}/sotu-series.XXXXXX.jsonl")}
# From the source tree, or installed by cmake --install as PREFIX/bin/sotu_codec_merge_series.sh.
here=$(cd "$(dirname "$0")" && pwd)
if [ -d "$here/../share/sotu/bench" ]; then
  sotu=${SOTU_BIN:-$here/sotu} ingest=$here/sotu_bench_ingest.sh
else
  sotu=${SOTU_BIN:-$here/../build/sotu} ingest=$here/bench_ingest.sh
fi
# One thread unless a line says --threads (the figures of bench/RESULTS.md).
export OMP_NUM_THREADS=1
py=${SOTU_PYTHON:-/usr/bin/python3}
all=()
for f in "$deltas"/t0*.sotud; do all+=(--delta "$f"); done
: > "$out"
tag() { "$py" -c 'import json, sys
for l in sys.stdin:
    if l.startswith("{"):
        print(json.dumps(dict(json.loads(l), tag=sys.argv[1])))' "$1" >> "$out"; }
for r in $(seq "$runs"); do
  "$sotu" bench codec --delta "$deltas/t02-vflip-2cls.sotud" --keep 0.2 --repeat 10 | tag real-0.2
  "$sotu" bench codec --delta "$deltas/t02-vflip-2cls.sotud" --keep 0.0188679 --repeat 10 | tag real-1/53
  "$sotu" bench codec --delta "$deltas/t00-rot90-2cls.sotud" --repeat 10 | tag real-1
  "$sotu" bench codec --model small --keep 0.2 --repeat 5 | tag small-0.2
  "$sotu" bench codec --model vitb --keep 0.0188679 --repeat 5 | tag vitb-1/53
  "$sotu" bench codec --model vitb --keep 0.0188679 --repeat 5 --threads 2 | tag vitb-1/53-2t
  "$sotu" bench codec --model vitb --keep 0.001 --repeat 5 | tag vitb-0.001
  "$sotu" bench merge --model vitb --tasks 8 --repeat 5 | tag merge-vitb
  "$sotu" bench merge --model vitb --tasks 8 --repeat 5 --threads 2 | tag merge-vitb-2t
  "$sotu" bench merge --model small --tasks 8 --repeat 5 | tag merge-small
  "$sotu" bench merge "${all[@]}" --repeat 20 | tag merge-real-1
  "$sotu" bench merge "${all[@]}" --ship-keep 0.2 --repeat 20 | tag merge-real-shipped-0.2
  "$sotu" bench merge "${all[@]}" --keep 0.2 --repeat 20 | tag merge-real-cut-0.2
done
if [ "${SOTU_SERIES_INGEST:-1}" = 1 ]; then
  SOTU_BIN=$sotu bash "$ingest" 3 40 | tag ingest-3-40
  SOTU_BIN=$sotu bash "$ingest" 8 200 | tag ingest-8-200
fi
"$py" - "$out" <<'PY'
import collections, json, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    j = json.loads(line)
    rows[(j["tag"], j.get("dtype", ""))].append(j)
fields = {"codec": ["bytes_per_kept", "encode_mb_s", "decode_mb_s", "zstd_decompress_mb_s",
                    "decode_vs_zstd", "encode_cpu_mb_s", "decode_cpu_mb_s"],
          "merge": ["bandwidth_vs_memcpy", "model_vs_memcpy", "memcpy_gb_s", "per_delta_ms",
                    "bandwidth_vs_memcpy_cpu"],
          "ingest": ["ingest_ms_median", "coordinator_deltas_per_s", "tasks_per_s"]}
for (tag, dtype), js in rows.items():
    parts = []
    for k in fields.get(js[0].get("bench"), []):
        v = [x[k] for x in js if k in x]
        if v:
            parts.append(f"{k} {statistics.median(v):.3g} [{min(v):.3g}-{max(v):.3g}]")
    print(f"{tag} {dtype} ({len(js)} runs): " + ", ".join(parts))
PY
echo "lines: $out"
