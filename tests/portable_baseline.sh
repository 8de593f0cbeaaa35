#!/usr/bin/env bash
# The default build runs on any x86-64 CPU (common/isa.h). Two checks:
#
#   portable_baseline.sh objdump OBJDUMP SOTU_BIN
#     Disassembles the binary: no instruction beyond baseline x86-64 (SSE2)
#     -- AVX/AVX-512 (VEX/EVEX, mask registers), SSE3, SSSE3, SSE4.1/4.2,
#     POPCNT, LZCNT, MOVBE, BMI1/2, ADX -- outside the functions compiled
#     for a level (names ending _avx2 or _avx512, which run only when the
#     CPU has that level). Also checks that such functions exist.
#
#   portable_baseline.sh qemu SOTU_BIN PROBE
#     Runs sotu under qemu-x86_64 -cpu qemu64 (x86-64 with SSE3, no SSSE3,
#     no AVX): --version, SOTU_ISA=avx2 refused, a training step of the
#     tiny ViT and of the CLR ResNet, a codec and a merge benchmark, each
#     finishing without SIGILL at the scalar level. PROBE, which executes an
#     AVX2 instruction, must die of SIGILL there (the negative control).
#     Skips (exit 77) when qemu-x86_64 is missing (Debian: qemu-user).
#     OPENBLAS_CORETYPE=Prescott: OpenBLAS's own pick for qemu64, an "AMD"
#     CPU, uses 3DNow! instructions, which qemu does not emulate.
set -euo pipefail
mode=${1:?usage: portable_baseline.sh objdump OBJDUMP SOTU_BIN | qemu SOTU_BIN PROBE}

if [[ $mode == objdump ]]; then
    objdump=$2 bin=$3
    "$objdump" -d --no-show-raw-insn "$bin" | awk '
        /^[0-9a-f]+ <.*>:$/ { fn = $2; gsub(/[<>:]/, "", fn); next }
        /^ +[0-9a-f]+:\t/ {
            split($0, parts, "\t"); insn = parts[2]; split(insn, w, " "); m = w[1]
            if (m == "rep" || m == "repz" || m == "repnz" || m == "lock" || m == "notrack" || m == "bnd")
                m = w[2]
            bad = m ~ /^v/ && m !~ /^ver[rw]$/
            bad = bad || m ~ /^k(mov|and|or|xor|xnor|not|shift|unpck|test|ortest|add)/
            bad = bad || m ~ /^(addsubp[sd]|hadd|hsub|lddqu|movddup|movshdup|movsldup|fisttp|monitor|mwait)/
            bad = bad || m ~ /^(pabs[bwd]|palignr|phadd|phsub|pmaddubsw|pmulhrsw|pshufb|psign[bwd])$/
            bad = bad || m ~ /^(blendv?p[sd]|dpp[sd]|extractps|insertps|movntdqa|mpsadbw|packusdw|pblendvb|pblendw|pcmpeqq|pextr[bdq]|phminposuw|pinsr[bdq]|pmaxs[bd]|pmaxu[dw]|pmins[bd]|pminu[dw]|pmovsx|pmovzx|pmuldq|pmulld|ptest|round[ps][sd])/
            bad = bad || m ~ /^(crc32|pcmp[ei]str[im]|pcmpgtq)/
            bad = bad || m ~ /^(popcnt|lzcnt|movbe|andn|bextr|blsi|blsmsk|blsr|bzhi|mulx|pdep|pext|rorx|sarx|shlx|shrx|adcx|adox)$/
            if (fn ~ /_(avx2|avx512)($|\.)/) { leveled[fn] = 1; next }
            if (bad) { n++; if (n <= 40) printf "  %s: %s\n", fn, insn }
        }
        END {
            k = 0; for (f in leveled) k++
            printf "portable_baseline: %d functions compiled for AVX2/AVX-512 levels\n", k
            if (k < 10) { print "portable_baseline: expected the ISA-level copies of the kernels"; exit 1 }
            if (n) { printf "portable_baseline: %d instructions beyond baseline x86-64 outside them\n", n; exit 1 }
            print "portable_baseline: every other instruction is baseline x86-64 (SSE2)"
        }'
    exit
fi

[[ $mode == qemu ]] || { echo "portable_baseline.sh: unknown mode $mode" >&2; exit 2; }
sotu=$2 probe=$3
qemu=$(command -v qemu-x86_64 || true)
if [[ -z $qemu ]]; then
    echo "portable_baseline: SKIP: qemu-x86_64 not found (Debian package qemu-user)"
    exit 77
fi
run() { env -u SOTU_ISA OPENBLAS_CORETYPE=Prescott "$qemu" -cpu qemu64 "$@"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-baseline.XXXXXX")
trap 'rm -rf "$work"' EXIT

rc=0
run "$probe" > /dev/null 2>&1 || rc=$?
[[ $rc -eq 132 ]] || { echo "the AVX2 probe exited $rc under qemu64, expected SIGILL (132)"; exit 1; }
echo "portable_baseline: an AVX2 instruction dies of SIGILL under qemu64 (the control)"

run "$sotu" --version
rc=0
SOTU_ISA=avx2 "$qemu" -cpu qemu64 "$sotu" bench train --model tiny > /dev/null 2> "$work/isa.err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "does not support avx2" "$work/isa.err" ||
    { echo "SOTU_ISA=avx2 under qemu64: exit $rc, expected 2:"; cat "$work/isa.err"; exit 1; }

step() { # what, then the sotu arguments
    local what=$1; shift
    local r=0
    run "$sotu" -q "$@" > "$work/out" 2> "$work/err" || r=$?
    if [[ $r -ne 0 ]] || ! grep -q '"isa":"scalar"' "$work/out"; then
        echo "$what under qemu64: exit $r (132 = SIGILL)"; cat "$work/out" "$work/err"; exit 1
    fi
    echo "portable_baseline: $what: ok at the scalar level"
}
step "bench train tiny" bench train --model tiny --batch 4 --steps 1 --warmup 0
step "bench train resnet18-w8" bench train --model resnet18-w8 --batch 2 --steps 1 --warmup 0
step "bench codec" bench codec --model tiny --keep 0.05 --repeat 1
step "bench merge" bench merge --model tiny --tasks 3 --repeat 1
