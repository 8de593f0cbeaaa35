#!/usr/bin/env bash
# The delta codec and merge beside their peers: sotu bench codec|merge, the
# Python peer (dense fp32, COO int32+fp32, torch.save of sparse COO) and
# memcpy in the same process as the merge. Prints the JSON lines, then ratios.
#
#   bench/bench_codec.sh [--model tiny|small|vitb] [--keep K] [--tasks T]
#                        [--delta FILE.sotud]   (a real delta instead of synthetic; with
#                                                --keep, cut to that nested sub-mask)
#                        [--threads N] [--repeat R]
# The merge ratio is bandwidth_vs_memcpy: bytes the merge must move per
# second (θ0 read, merged written, 4-byte value + 4-byte index of each kept
# value read) over memcpy's bytes per second (read + write of the model
# block) on the same threads, interleaved in the same process.
# Environment: SOTU_BIN (default build/sotu, or PREFIX/bin/sotu when installed),
# SOTU_PYTHON (default /usr/bin/python3).
set -euo pipefail
# Run from the source tree (bench/, binaries in build/) or installed by cmake
# --install as PREFIX/bin/sotu_bench_codec.sh (binaries beside it, the Python peers in
# PREFIX/share/sotu/bench).
here=$(cd "$(dirname "$0")" && pwd)
if [ -d "$here/../share/sotu/bench" ]; then
    bin_dir=$here peers=$here/../share/sotu/bench
else
    bin_dir=$here/../build peers=$here
fi
sotu=${SOTU_BIN:-$bin_dir/sotu}
py=${SOTU_PYTHON:-/usr/bin/python3}
model=small keep="" tasks=8 delta="" threads=1 repeat=5
while [ $# -gt 0 ]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --tasks) tasks=$2; shift 2 ;;
    --delta) delta=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    *) echo "usage: $0 [--model M] [--keep K] [--tasks T] [--delta FILE.sotud] [--threads N]" \
            "[--repeat R]" >&2; exit 2 ;;
  esac
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

common=(--threads "$threads" --repeat "$repeat")
if [ -n "$delta" ]; then
  "$sotu" bench codec --delta "$delta" ${keep:+--keep "$keep"} "${common[@]}" --export "$tmp/raw" \
    | tee "$tmp/codec.jsonl"
  "$sotu" bench merge --delta "$delta" "${common[@]}" | tee "$tmp/merge.jsonl"
else
  "$sotu" bench codec --model "$model" --keep "${keep:-0.2}" "${common[@]}" --export "$tmp/raw" \
    | tee "$tmp/codec.jsonl"
  "$sotu" bench merge --model "$model" --tasks "$tasks" "${common[@]}" | tee "$tmp/merge.jsonl"
  "$sotu" bench merge --model "$model" --tasks "$tasks" --mode mean "${common[@]}" \
    | tee -a "$tmp/merge.jsonl"
fi
total=$("$py" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["params"])' \
  "$tmp/codec.jsonl")
"$py" "$peers/peer_codec.py" "$tmp/raw" --total "$total" | tee "$tmp/peer.jsonl"

"$py" - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
rows = [json.loads(l) for f in ("codec", "peer") for l in open(f"{d}/{f}.jsonl")]
sotu = {r["dtype"]: r for r in rows if r["bench"] == "codec"}
peers = {r["peer"]: r for r in rows if r["bench"] == "codec-peer"}
print(f"\nbytes per kept value (keep {sotu['f32']['keep']:.4g}, {sotu['f32']['kept']} kept of "
      f"{sotu['f32']['params']}):")
for name, r in [("sotud f32", sotu["f32"]), ("sotud bf16", sotu["bf16"])] + \
        [(k, v) for k, v in peers.items()]:
    print(f"  {name:24s} {r['bytes_per_kept']:9.3f}   x{r['bytes_per_kept'] / sotu['f32']['bytes_per_kept']:.2f} of sotud f32")
t = peers["torch_save_sparse_coo"]
for dt in ("f32", "bf16"):
    r = sotu[dt]
    print(f"  sotud {dt}: encode {r['encode_mb_s']:.0f} MB/s, decode {r['decode_mb_s']:.0f} MB/s "
          f"(torch.save {t['encode_mb_s']:.0f}, torch.load {t['decode_mb_s']:.0f})")
for l in open(f"{d}/merge.jsonl"):
    m = json.loads(l)
    print(f"  merge {m['mode']} ({m['threads']} threads): {m['merge_gb_s']:.2f} GB/s moved vs memcpy"
          f" {m['memcpy_gb_s']:.2f} = {m['bandwidth_vs_memcpy']:.0%} (CPU time:"
          f" {m['bandwidth_vs_memcpy_cpu']:.0%}); merged model in {m['merge_s'] * 1e3:.1f} ms vs"
          f" memcpy {m['memcpy_s'] * 1e3:.1f} ms = {m['model_vs_memcpy']:.0%};"
          f" {m['per_delta_ms']:.2f} ms per delta")
PY
