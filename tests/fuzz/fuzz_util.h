/* Helpers shared by the libFuzzer targets in tests/fuzz.
 *
 * Parsers that take a path get the input through one temporary file per
 * process (in $TMPDIR, /dev/shm preferred), rewritten for every input and
 * removed at exit. Each target defines LLVMFuzzerTestOneInput; the same
 * source links either with libFuzzer (-fsanitize=fuzzer) or with
 * replay_main.c, which runs the committed corpus and regression inputs in
 * the ordinary test suite. */
#ifndef SOTU_TESTS_FUZZ_UTIL_H
#define SOTU_TESTS_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir_[256];
static char fuzz_file_[512];

static inline void fuzz_cleanup_(void)
{
    if (fuzz_file_[0])
        unlink(fuzz_file_);
    if (fuzz_dir_[0])
        rmdir(fuzz_dir_);
}

/* A private directory for this process, created on first use. Aborts on
 * failure: a harness that cannot write its input has nothing to test. */
static inline const char *fuzz_temp_dir(void)
{
    if (fuzz_dir_[0])
        return fuzz_dir_;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(fuzz_dir_, sizeof fuzz_dir_, "%s/sotu-fuzz-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(fuzz_dir_)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_cleanup_);
    return fuzz_dir_;
}

/* Writes data to <temp dir>/<name> (the same file for every input) and
 * returns its path. */
static inline const char *fuzz_write_temp(const uint8_t *data, size_t size, const char *name)
{
    snprintf(fuzz_file_, sizeof fuzz_file_, "%s/%s", fuzz_temp_dir(), name);
    FILE *f = fopen(fuzz_file_, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(fuzz_file_);
        abort();
    }
    return fuzz_file_;
}

#endif
