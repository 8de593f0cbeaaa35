/* Provenance (io/provenance.h): the block's round trip and its refusals at
 * every truncation, the file checksum against XXH64 of the bytes in memory,
 * the key diff, and the one comparison resume and merge make: θ0 refused,
 * other settings or task data refused or retrained, else kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/build_info.h"
#include "common/config.h"
#include "io/fsutil.h"
#include "io/provenance.h"

static void make(sotu_provenance *p, const char *set)
{
    sotu_config cfg;
    sotu_config_defaults(&cfg);
    if (set)
        CHECK(sotu_config_set(&cfg, set) == SOTU_OK);
    CHECK(sotu_provenance_init(p, 0x1111222233334444ull, "/runs/vit-a.h5", &cfg) == SOTU_OK);
    p->task_file = 0xabcdef;
}

static void test_round_trip(void)
{
    sotu_provenance p, back;
    make(&p, NULL);
    CHECK(!strcmp(p.version, sotu_build_version()) && !strcmp(p.commit, sotu_build_commit()));
    CHECK(p.config_hash == sotu_xxh64(p.config, strlen(p.config)));
    size_t n = sotu_provenance_size(&p);
    uint8_t *buf = malloc(n);
    CHECK(sotu_provenance_check(&p, "p") == SOTU_OK);
    CHECK(sotu_provenance_put(buf, &p) == buf + n);
    size_t pos = 0;
    CHECK(sotu_provenance_get(buf, n, &pos, &back, "buf") == SOTU_OK && pos == n);
    CHECK(!memcmp(&p, &back, sizeof p));
    /* Every truncation fails naming the input, and leaves out zeroed. */
    for (size_t len = 0; len < n; len++) {
        pos = 0;
        CHECK(sotu_provenance_get(buf, len, &pos, &back, "cut") == SOTU_ERR_DATA);
        CHECK(!strncmp(sotu_last_error(), "cut: ", 5) && back.config[0] == 0);
    }
    /* A changed byte of the text no longer matches its hash. */
    buf[26] ^= 1;
    pos = 0;
    CHECK(sotu_provenance_get(buf, n, &pos, &back, "flip") == SOTU_ERR_DATA);
    CHECK(strstr(sotu_last_error(), "does not match its text") != NULL);
    /* Empty strings are not encoded. */
    p.commit[0] = 0;
    CHECK(sotu_provenance_check(&p, "empty") == SOTU_ERR_DATA);
    CHECK(strstr(sotu_last_error(), "sotu commit of 0 bytes") != NULL);
    free(buf);
}

static void test_file_checksum(void)
{
    char path[] = "/tmp/sotu_test_provenance_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    size_t n = (3u << 20) + 12345; /* more than one read of 1 MiB */
    uint8_t *b = malloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 2654435761u >> 13);
    CHECK(write(fd, b, n) == (ssize_t)n);
    close(fd);
    uint64_t h = 0;
    CHECK(sotu_file_xxh64(path, &h) == SOTU_OK && h == sotu_xxh64(b, n));
    unlink(path);
    CHECK(sotu_file_xxh64(path, &h) == SOTU_ERR_IO && strstr(sotu_last_error(), path));
    free(b);
}

static void test_diff(void)
{
    char d[256];
    CHECK(sotu_provenance_config_diff("a: 1\nb: 2\n", "a: 1\nb: 2\n", d, sizeof d) == 0);
    CHECK(!strcmp(d, ""));
    CHECK(sotu_provenance_config_diff("a: 1\nb: 2\nc: x\n", "a: 1\nb: 3\nd: y\n", d, sizeof d) ==
          3);
    CHECK_MSG(!strcmp(d, "b: 2 -> 3; c: x -> (absent); d: (absent) -> y"), "%s", d);
    /* Cut with "..." when the room runs out. */
    char small[16];
    CHECK(sotu_provenance_config_diff("alpha: 1\n", "alpha: 22222222\n", small, sizeof small) == 1);
    CHECK_MSG(strlen(small) == sizeof small - 1 && !strcmp(small + 12, "..."), "%s", small);
}

static void test_compare(void)
{
    sotu_provenance run, stored;
    make(&run, NULL);
    run.task_file = 0;
    make(&stored, NULL);
    sotu_provenance_verdict v;
    char why[512];
    /* The same inputs: kept. */
    CHECK(sotu_provenance_compare(&run, &stored, 0xabcdef, "d.sotud", "t00", "t00.h5", false,
                                  "HINT", &v, why, sizeof why) == SOTU_OK);
    CHECK(v == SOTU_PROVENANCE_SAME);
    /* Another θ0: refused even with retraining allowed, naming both files. */
    sotu_provenance other = stored;
    other.theta0 ^= 1;
    snprintf(other.pretrained, sizeof other.pretrained, "/runs/vit-b.h5");
    CHECK(sotu_provenance_compare(&run, &other, 0xabcdef, "d.sotud", "t00", "t00.h5", true,
                                  "HINT", &v, why, sizeof why) == SOTU_ERR_CONFIG);
    const char *e = sotu_last_error();
    CHECK_MSG(strstr(e, "/runs/vit-a.h5") && strstr(e, "/runs/vit-b.h5") && strstr(e, "d.sotud"),
              "%s", e);
    /* Other training keys: refused with the keys, or retrained. */
    make(&other, "train.lr=5e-4");
    CHECK(sotu_provenance_compare(&run, &stored, 0xabcdef, "d.sotud", "t00", "t00.h5", false,
                                  "HINT", &v, why, sizeof why) == SOTU_OK);
    CHECK(sotu_provenance_compare(&other, &stored, 0xabcdef, "d.sotud", "t00", "t00.h5", false,
                                  "HINT", &v, why, sizeof why) == SOTU_ERR_CONFIG);
    e = sotu_last_error();
    CHECK_MSG(strstr(e, "d.sotud: trained with other settings: train.lr: 0.001 -> 0.0005; HINT"),
              "%s", e);
    CHECK(sotu_provenance_compare(&other, &stored, 0xabcdef, "d.sotud", "t00", "t00.h5", true,
                                  "HINT", &v, why, sizeof why) == SOTU_OK);
    CHECK(v == SOTU_PROVENANCE_RETRAIN && strstr(why, "train.lr: 0.001 -> 0.0005"));
    /* Keys that do not train (eval, merge, threads, the keep list) change nothing. */
    make(&other, "eval.fit_per_task=3");
    CHECK(sotu_provenance_compare(&other, &stored, 0xabcdef, "d.sotud", "t00", "t00.h5", false,
                                  "HINT", &v, why, sizeof why) == SOTU_OK);
    CHECK(v == SOTU_PROVENANCE_SAME);
    /* A task file that changed: refused naming it, or retrained. */
    CHECK(sotu_provenance_compare(&run, &stored, 0x999, "d.sotud", "t00", "tasks/t00.h5", false,
                                  "HINT", &v, why, sizeof why) == SOTU_ERR_CONFIG);
    e = sotu_last_error();
    CHECK_MSG(strstr(e, "task file tasks/t00.h5 of task t00 has changed"), "%s", e);
    CHECK(sotu_provenance_compare(&run, &stored, 0x999, "d.sotud", "t00", "tasks/t00.h5", true,
                                  "HINT", &v, why, sizeof why) == SOTU_OK);
    CHECK(v == SOTU_PROVENANCE_RETRAIN);
    /* Version and commit are recorded, not compared. */
    other = stored;
    snprintf(other.commit, sizeof other.commit, "0123456789ab");
    CHECK(sotu_provenance_compare(&run, &other, 0xabcdef, "d.sotud", "t00", "t00.h5", false,
                                  "HINT", &v, why, sizeof why) == SOTU_OK);
}

int main(void)
{
    test_round_trip();
    test_file_checksum();
    test_diff();
    test_compare();
    return check_finish("test_provenance");
}
