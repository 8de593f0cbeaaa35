/* The thin MPI layer on 3 ranks: chunked broadcasts (with a tiny forced
 * chunk so several pieces go), recv_any of messages of varied sizes
 * including ones sent through the large-message datatype, sotu_share
 * partitions, and the Slurm launch guard. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/log.h"
#include "mpi/mpi_util.h"

static uint8_t pattern(size_t i, int salt) { return (uint8_t)((i * 2654435761u + (unsigned)salt) >> 7); }

static void test_bcast(int rank)
{
    enum { NF = 1001, NB = 4099 };
    float *f = malloc(NF * sizeof *f);
    uint8_t *b = malloc(NB);
    for (int round = 0; round < 2; round++) {
        /* round 0: 7-element pieces (many calls), round 1: the default */
        sotu_mpi_set_chunk_limit(round == 0 ? 7 : 0);
        for (size_t i = 0; i < NF; i++)
            f[i] = rank == 1 ? (float)i * 0.5f - 3.0f : -1.0f;
        for (size_t i = 0; i < NB; i++)
            b[i] = rank == 1 ? pattern(i, round) : 0;
        sotu_mpi_bcast_floats(f, NF, 1);
        sotu_mpi_bcast_bytes(b, NB, 1);
        int bad_f = 0, bad_b = 0;
        for (size_t i = 0; i < NF; i++)
            bad_f += f[i] != (float)i * 0.5f - 3.0f;
        for (size_t i = 0; i < NB; i++)
            bad_b += b[i] != pattern(i, round);
        CHECK_MSG(bad_f == 0, "round %d: %d floats differ on rank %d", round, bad_f, rank);
        CHECK_MSG(bad_b == 0, "round %d: %d bytes differ on rank %d", round, bad_b, rank);
    }
    sotu_mpi_bcast_floats(f, 0, 0);
    sotu_mpi_set_chunk_limit(0);
    free(f);
    free(b);
}

/* Every non-root rank sends messages of these sizes; rank 0 takes them in
 * any order and checks each by (source, tag). */
static const size_t sizes[] = {0, 1, 1000, 3500, 100000, 1 << 20};
enum { NSIZES = sizeof sizes / sizeof sizes[0] };

static void test_recv_any(int rank, int nranks)
{
    /* 1000-byte blocks: the 3500-byte and larger messages go through the
     * derived datatype on both ends. */
    sotu_mpi_set_chunk_limit(1000);
    if (rank != 0) {
        for (int k = 0; k < NSIZES; k++) {
            uint8_t *m = malloc(sizes[k] + 1);
            for (size_t i = 0; i < sizes[k]; i++)
                m[i] = pattern(i, rank * 100 + k);
            sotu_mpi_send_bytes(m, sizes[k], 0, 100 + k);
            free(m);
        }
    } else {
        sotu_mpi_buffer buf = {0};
        int got[8][NSIZES] = {{0}};
        for (int n = 0; n < (nranks - 1) * NSIZES; n++) {
            int src = -1, tag = -1;
            CHECK(sotu_mpi_recv_any(&buf, MPI_ANY_SOURCE, MPI_ANY_TAG, &src, &tag) == SOTU_OK);
            int k = tag - 100;
            CHECK_MSG(src >= 1 && src < nranks && k >= 0 && k < NSIZES, "src %d tag %d", src, tag);
            if (!(src >= 1 && src < nranks && k >= 0 && k < NSIZES))
                continue;
            got[src][k]++;
            CHECK_MSG(buf.len == sizes[k], "message %d from %d: %zu bytes, expected %zu", k, src,
                      buf.len, sizes[k]);
            int bad = 0;
            for (size_t i = 0; i < buf.len && i < sizes[k]; i++)
                bad += ((uint8_t *)buf.data)[i] != pattern(i, src * 100 + k);
            CHECK_MSG(bad == 0, "message %d from %d: %d bytes differ", k, src, bad);
        }
        for (int r = 1; r < nranks; r++)
            for (int k = 0; k < NSIZES; k++)
                CHECK_MSG(got[r][k] == 1, "rank %d message %d received %d times", r, k, got[r][k]);
        /* A specific source/tag filter picks that message. */
        sotu_mpi_buffer_free(&buf);
        sotu_mpi_buffer_free(NULL);
    }
    SOTU_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    if (rank == 2) {
        uint8_t a[5] = {1, 2, 3, 4, 5}, b[3] = {9, 8, 7};
        sotu_mpi_send_bytes(a, sizeof a, 0, 7);
        sotu_mpi_send_bytes(b, sizeof b, 0, 8);
    } else if (rank == 0 && nranks > 2) {
        sotu_mpi_buffer buf = {0};
        int src, tag;
        CHECK(sotu_mpi_recv_any(&buf, 2, 8, &src, &tag) == SOTU_OK);
        CHECK(src == 2 && tag == 8 && buf.len == 3 && ((uint8_t *)buf.data)[0] == 9);
        CHECK(sotu_mpi_recv_any(&buf, MPI_ANY_SOURCE, 7, NULL, NULL) == SOTU_OK);
        CHECK(buf.len == 5 && ((uint8_t *)buf.data)[4] == 5);
        sotu_mpi_buffer_free(&buf);
    }
    sotu_mpi_set_chunk_limit(0);
    SOTU_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
}

static void test_share(void)
{
    const int64_t ns[] = {0, 1, 2, 5, 7, 53, 1000, 1000003};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (int nranks = 1; nranks <= 9; nranks++) {
            int64_t n = ns[a], next = 0, lo = INT64_MAX, hi = 0;
            for (int r = 0; r < nranks; r++) {
                int64_t b, e;
                sotu_share(n, r, nranks, &b, &e);
                CHECK_MSG(b == next && e >= b, "n %lld rank %d/%d: [%lld, %lld) after %lld",
                          (long long)n, r, nranks, (long long)b, (long long)e, (long long)next);
                next = e;
                lo = e - b < lo ? e - b : lo;
                hi = e - b > hi ? e - b : hi;
            }
            CHECK_MSG(next == n, "n %lld over %d ranks covers %lld", (long long)n, nranks,
                      (long long)next);
            CHECK(hi - lo <= 1);
        }
}

static void test_launch_check(void)
{
    CHECK(sotu_mpi_launch_check(1, NULL, NULL, NULL) == SOTU_OK);
    CHECK(sotu_mpi_launch_check(4, NULL, "4", "4") == SOTU_OK);
    CHECK(sotu_mpi_launch_check(3, NULL, NULL, "3") == SOTU_OK);
    /* mpiexec -n 2 inside an allocation of 4 tasks is deliberate. */
    CHECK(sotu_mpi_launch_check(2, "2", NULL, "4") == SOTU_OK);
    /* srun -n 4 without --mpi=pmix: four singletons. */
    CHECK(sotu_mpi_launch_check(1, NULL, "4", "4") == SOTU_ERR_CONFIG);
    CHECK(strstr(sotu_last_error(), "MPI world has 1 rank but Slurm started 4 tasks") != NULL);
    CHECK(strstr(sotu_last_error(), "--mpi=pmix") != NULL);
    CHECK(sotu_exit_code(SOTU_ERR_CONFIG) == 2);
    /* The step's count wins over the job's (srun -n 2 in a 4-task job). */
    CHECK(sotu_mpi_launch_check(2, NULL, "2", "4") == SOTU_OK);
    CHECK(sotu_mpi_launch_check(1, NULL, NULL, "8") == SOTU_ERR_CONFIG);
    CHECK(strstr(sotu_last_error(), "SLURM_NTASKS=8") != NULL);
    CHECK(sotu_mpi_launch_check(1, NULL, "junk", NULL) == SOTU_OK);
    sotu_clear_error();
}

int main(int argc, char **argv)
{
    int rank = -1, nranks = 0;
    if (sotu_mpi_init(&argc, &argv, &rank, &nranks) != SOTU_OK) {
        fprintf(stderr, "test_mpi_util: %s\n", sotu_last_error());
        return 1;
    }
    CHECK(nranks == 3);
    CHECK(rank >= 0 && rank < nranks);
    /* Already initialised: a second init only queries. */
    int r2 = -1, n2 = -1;
    CHECK(sotu_mpi_init(&argc, &argv, &r2, &n2) == SOTU_OK && r2 == rank && n2 == nranks);
    test_bcast(rank);
    test_recv_any(rank, nranks);
    test_share();
    test_launch_check();

    int failures = check_failures, total = 0;
    SOTU_MPI_CHECK(MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
    char name[32];
    snprintf(name, sizeof name, "test_mpi_util r%d", rank);
    int rc = check_finish(name);
    sotu_mpi_finalize();
    return (rc || total) ? 1 : 0;
}
