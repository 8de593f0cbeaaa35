/* The negative control of tests/portable_baseline.sh: executes one AVX2
 * instruction unconditionally, so under an emulated CPU without AVX2 it must
 * die of SIGILL (else the emulator does not trap what sotu must not use). */
#include <immintrin.h>
#include <stdio.h>

__attribute__((target("avx2"), noinline)) static int add8(int a)
{
    __m256i v = _mm256_add_epi32(_mm256_set1_epi32(a), _mm256_set1_epi32(1));
    return _mm256_extract_epi32(v, 3);
}

int main(int argc, char **argv)
{
    (void)argv;
    printf("isa_probe_avx2: %d\n", add8(argc));
    return 0;
}
