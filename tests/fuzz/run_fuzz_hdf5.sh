#!/usr/bin/env bash
# Runs a fuzz target whose input goes through libhdf5 (fuzz_taskset) and
# fails on any crash, sanitizer report, timeout or memory blow-up that is
# sotu's. libhdf5 1.10 (Debian 12; not instrumented, not ours) overreads its
# global heap, loops forever, allocates gigabytes from a damaged vlen length
# and leaks on failed opens for some damaged files, so the fuzzer runs in
# fork mode, keeping going after each such input, and every input it saved
# is replayed here and blamed on the first stack frame outside libFuzzer,
# libc (by library name, or by glibc source path where libc6-dbg symbols
# name the frame: "memmove-vec-unaligned-erms.S" under sysdeps/) and the
# sanitizer runtime: frames in libhdf5, or in an unloaded
# library (sotu dlopens nothing; libhdf5 opens filter plugins named by the
# file), are counted and listed (docs/RELIABILITY.md, known gaps); any
# other frame fails the test.
# Usage: run_fuzz_hdf5.sh FUZZER ARTIFACT_DIR SECONDS CORPUS_DIR...
set -uo pipefail
fuzzer=$1 artifacts=$2 seconds=$3
shift 3
rm -rf "$artifacts"
mkdir -p "$artifacts"
"$fuzzer" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -timeout=5 \
  -rss_limit_mb=2048 -max_len=65536 -max_total_time="$seconds" \
  -artifact_prefix="$artifacts/" "$@" 2>&1 | grep -E '^#[0-9]+:|INFO: fuzzed|DONE' | tail -3
ours=0 theirs=0
for a in "$artifacts"/*; do
  [[ -e $a ]] || continue
  log=$(timeout 60 "$fuzzer" -timeout=5 -rss_limit_mb=2048 "$a" 2>&1)
  # A frame in the fuzzer binary without a source location is the sanitizer
  # runtime's interceptor (e.g. "in strdup (.../fuzz_taskset+0x...)"): sotu's
  # own code is built with debug information and always shows file:line.
  frame=$(grep -E '^ +#[0-9]+ ' <<< "$log" |
          grep -vE 'fuzzer::|__sanitizer|__interceptor|__asan|__ubsan|libc\.so|libc-start|_start|in (malloc|calloc|realloc|free) |/sysdeps/|in __mem(cpy|move|set)_' |
          grep -vF "($fuzzer+0x" |
          head -1)
  if [[ -z $frame ]]; then
    echo "unexplained: $a (no failure on replay, or no stack)"
    grep -E 'ERROR|SUMMARY' <<< "$log" | head -3
    [[ $log == *"ERROR"* ]] && ours=$((ours + 1)) || theirs=$((theirs + 1))
  elif [[ $frame == *libhdf5* || $frame == *"<unknown module>"* ]]; then
    theirs=$((theirs + 1))
    echo "libhdf5: $(basename "$a"): $(grep -m1 -oE 'ERROR: [A-Za-z]+: [a-z-]+|SUMMARY: .*' <<< "$log")"
  else
    ours=$((ours + 1))
    echo "SOTU BUG: $a"
    grep -E 'ERROR|SUMMARY|^ +#[0-9]+ ' <<< "$log" | head -20
  fi
done
echo "fuzz_hdf5: $theirs inputs failing inside libhdf5 (known), $ours in sotu"
exit $((ours > 0))
