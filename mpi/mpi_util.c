#include "mpi/mpi_util.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "mpi/node.h"

static size_t chunk_limit = SOTU_MPI_CHUNK_MAX;
static int we_initialised;
static MPI_Comm run_comm = MPI_COMM_NULL; /* NULL: MPI_COMM_WORLD */
static bool left_out;

void sotu_mpi_set_chunk_limit(size_t elements)
{
    chunk_limit = elements ? elements : SOTU_MPI_CHUNK_MAX;
}

_Noreturn void sotu_mpi_fail(int rc, const char *what, const char *file, int line)
{
    char msg[MPI_MAX_ERROR_STRING + 1] = "";
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "MPI error code %d", rc);
    SOTU_ERROR("MPI call failed: %s at %s:%d: %s", what, file, line, msg);
    MPI_Abort(MPI_COMM_WORLD, SOTU_EXIT_OTHER);
    abort();
}

/* ---- launch guard ---- */

/* A positive integer, or 0 for unset or anything else. */
static long parse_count(const char *v)
{
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    return (errno || *end || n <= 0) ? 0 : n;
}

sotu_status sotu_mpi_launch_check(int world_size, const char *launcher_size,
                                  const char *step_tasks, const char *ntasks)
{
    if (parse_count(launcher_size) > 0)
        return SOTU_OK;
    const char *var = "SLURM_STEP_NUM_TASKS";
    long m = parse_count(step_tasks);
    if (m == 0) {
        var = "SLURM_NTASKS";
        m = parse_count(ntasks);
    }
    if (m == 0 || m == world_size)
        return SOTU_OK;
    return sotu_error(SOTU_ERR_CONFIG,
                      "the MPI world has %d rank%s but Slurm started %ld tasks (%s=%ld): most "
                      "likely srun without --mpi=pmix started %ld independent copies of sotu. "
                      "Launch with `srun --mpi=pmix ...` (see `srun --mpi=list`) or with "
                      "mpiexec inside the allocation",
                      world_size, world_size == 1 ? "" : "s", m, var, m, m);
}

static const char *env_first(const char *a, const char *b)
{
    const char *v = getenv(a);
    return (v && *v) ? v : getenv(b);
}

sotu_status sotu_mpi_launch_check_env(int world_size)
{
    return sotu_mpi_launch_check(world_size, env_first("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"),
                                 getenv("SLURM_STEP_NUM_TASKS"),
                                 env_first("SLURM_NTASKS", "SLURM_NPROCS"));
}

/* ---- life cycle ---- */

sotu_status sotu_mpi_init(int *argc, char ***argv, int *rank, int *nranks)
{
    /* Read before MPI_Init: a singleton init may export launcher variables
     * into this process's own environment. */
    char launcher[32] = "", step[32] = "", ntasks[32] = "";
    const char *v;
    if ((v = env_first("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")))
        snprintf(launcher, sizeof launcher, "%s", v);
    if ((v = getenv("SLURM_STEP_NUM_TASKS")))
        snprintf(step, sizeof step, "%s", v);
    if ((v = env_first("SLURM_NTASKS", "SLURM_NPROCS")))
        snprintf(ntasks, sizeof ntasks, "%s", v);

    int flag = 0;
    if (MPI_Initialized(&flag) != MPI_SUCCESS)
        return sotu_error(SOTU_ERR_MPI, "MPI_Initialized failed");
    if (!flag) {
        int provided = 0;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return sotu_error(SOTU_ERR_MPI, "MPI_Init_thread failed: is the MPI runtime "
                              "installed and the launcher (mpiexec / srun --mpi=pmix) working?");
        we_initialised = 1;
    }
    SOTU_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    int r = 0, n = 1;
    SOTU_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &r));
    SOTU_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &n));
    sotu_log_set_rank(r);
    sotu_status s = sotu_mpi_launch_check(n, launcher[0] ? launcher : NULL,
                                          step[0] ? step : NULL, ntasks[0] ? ntasks : NULL);
    if (s != SOTU_OK) {
        sotu_mpi_finalize();
        return s;
    }
    sotu_node_layout_mpi();
    if (rank)
        *rank = r;
    if (nranks)
        *nranks = n;
    return SOTU_OK;
}

void sotu_mpi_finalize(void)
{
    int fin = 0;
    if (!we_initialised || MPI_Finalized(&fin) != MPI_SUCCESS || fin)
        return;
    if (run_comm != MPI_COMM_NULL)
        MPI_Comm_free(&run_comm);
    MPI_Finalize();
    we_initialised = 0;
}

/* ---- the run communicator ---- */

MPI_Comm sotu_mpi_comm(void)
{
    return run_comm == MPI_COMM_NULL ? MPI_COMM_WORLD : run_comm;
}

bool sotu_mpi_ranks_left_out(void)
{
    return left_out;
}

void sotu_mpi_use_ranks(const int *world_ranks, int n, int *rank, int *nranks)
{
    int world = 0;
    SOTU_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world));
    if (n < world) {
        assert(run_comm == MPI_COMM_NULL && n >= 1 && world_ranks[0] == 0);
        MPI_Group all, live;
        SOTU_MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &all));
        SOTU_MPI_CHECK(MPI_Group_incl(all, n, world_ranks, &live));
        /* Collective over the live group only: the ranks left out may be
         * stopped. The tag keeps it apart from any other creation. */
        SOTU_MPI_CHECK(MPI_Comm_create_group(MPI_COMM_WORLD, live, 0x50747, &run_comm));
        SOTU_MPI_CHECK(MPI_Comm_set_errhandler(run_comm, MPI_ERRORS_RETURN));
        SOTU_MPI_CHECK(MPI_Group_free(&live));
        SOTU_MPI_CHECK(MPI_Group_free(&all));
        left_out = true;
    }
    SOTU_MPI_CHECK(MPI_Comm_rank(sotu_mpi_comm(), rank));
    SOTU_MPI_CHECK(MPI_Comm_size(sotu_mpi_comm(), nranks));
}

int sotu_mpi_end(int rc, bool released)
{
    int world_rank = 0, fin = 0;
    if (!we_initialised || MPI_Finalized(&fin) != MPI_SUCCESS || fin)
        return rc;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    int finalize = !left_out || (world_rank == 0 && released);
    if (left_out)
        sotu_mpi_bcast_bytes(&finalize, sizeof finalize, 0);
    if (finalize) {
        sotu_mpi_finalize();
        return rc;
    }
    fflush(stdout);
    fflush(stderr);
    if (world_rank == 0) {
        /* Open MPI's MPI_Abort ends every rank, the missing ones too, and
         * mpiexec exits with rc. */
        MPI_Abort(MPI_COMM_WORLD, rc);
        abort();
    }
    /* Another live rank: rank 0 is about to end the job. */
    for (;;)
        pause();
}

/* ---- waiting without spinning ---- */

void sotu_mpi_wait(MPI_Request *req, MPI_Status *status)
{
    sotu_mpi_wait_for(req, status, true);
}

void sotu_mpi_wait_for(MPI_Request *req, MPI_Status *status, bool warn)
{
    long ns = 50000;
    double start = sotu_now(), warn_at = 600;
    for (;;) {
        int done = 0;
        SOTU_MPI_CHECK(MPI_Test(req, &done, status ? status : MPI_STATUS_IGNORE));
        if (done)
            return;
        nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = ns}, NULL);
        if (ns < 10000000)
            ns *= 2;
        if (warn && sotu_now() - start > warn_at) {
            /* A rank that stopped outside a task (mpi.task_timeout covers
             * tasks only) leaves the others waiting here: say so. */
            SOTU_WARN("waiting for another rank for %.0fs; if one is stopped or hung, end the "
                      "job and run it again with --resume", sotu_now() - start);
            warn_at *= 2;
        }
    }
}

void sotu_mpi_barrier(void)
{
    MPI_Request req;
    SOTU_MPI_CHECK(MPI_Ibarrier(sotu_mpi_comm(), &req));
    sotu_mpi_wait(&req, NULL);
}

bool sotu_mpi_any(bool flag)
{
    int mine = flag, any = 0;
    MPI_Request req;
    SOTU_MPI_CHECK(MPI_Iallreduce(&mine, &any, 1, MPI_INT, MPI_MAX, sotu_mpi_comm(), &req));
    sotu_mpi_wait(&req, NULL);
    return any != 0;
}

/* ---- broadcasts ---- */

static void bcast_chunked(char *buf, size_t n, size_t elem, MPI_Datatype type, int root)
{
    sotu_mpi_barrier();
    for (size_t off = 0; off < n;) {
        size_t piece = n - off < chunk_limit ? n - off : chunk_limit;
        assert(piece <= INT_MAX);
        SOTU_MPI_CHECK(MPI_Bcast(buf + off * elem, (int)piece, type, root, sotu_mpi_comm()));
        off += piece;
    }
}

void sotu_mpi_bcast_floats(float *buf, size_t n, int root)
{
    bcast_chunked((char *)buf, n, sizeof(float), MPI_FLOAT, root);
}

void sotu_mpi_bcast_bytes(void *buf, size_t n, int root)
{
    bcast_chunked(buf, n, 1, MPI_BYTE, root);
}

/* ---- point to point ---- */

/* A datatype of n bytes: MPI_BYTE x n when n fits one piece, else a struct
 * of q blocks of chunk_limit bytes and the r bytes left. Both ends build
 * it the same way; the type signature is n bytes either way. */
static void bytes_type(size_t n, MPI_Datatype *type, int *count, int *derived)
{
    *derived = 0;
    if (n <= chunk_limit && n <= INT_MAX) {
        *type = MPI_BYTE;
        *count = (int)n;
        return;
    }
    size_t block_len = chunk_limit <= INT_MAX ? chunk_limit : (size_t)1 << 30;
    size_t q = n / block_len, r = n % block_len;
    assert(q <= INT_MAX);
    MPI_Datatype block;
    SOTU_MPI_CHECK(MPI_Type_contiguous((int)block_len, MPI_BYTE, &block));
    int lens[2] = {(int)q, (int)r};
    MPI_Aint disp[2] = {0, (MPI_Aint)(q * block_len)};
    MPI_Datatype types[2] = {block, MPI_BYTE};
    SOTU_MPI_CHECK(MPI_Type_create_struct(r ? 2 : 1, lens, disp, types, type));
    SOTU_MPI_CHECK(MPI_Type_commit(type));
    SOTU_MPI_CHECK(MPI_Type_free(&block));
    *count = 1;
    *derived = 1;
}

void sotu_mpi_send_bytes(const void *data, size_t n, int dest, int tag)
{
    sotu_mpi_send_bytes_on(sotu_mpi_comm(), data, n, dest, tag);
}

void sotu_mpi_send_bytes_on(MPI_Comm comm, const void *data, size_t n, int dest, int tag)
{
    MPI_Datatype type;
    int count, derived;
    bytes_type(n, &type, &count, &derived);
    MPI_Request req;
    SOTU_MPI_CHECK(MPI_Isend(data, count, type, dest, tag, comm, &req));
    sotu_mpi_wait(&req, NULL);
    if (derived)
        SOTU_MPI_CHECK(MPI_Type_free(&type));
}

void sotu_mpi_buffer_free(sotu_mpi_buffer *b)
{
    if (!b)
        return;
    free(b->data);
    memset(b, 0, sizeof *b);
}

sotu_status sotu_mpi_recv_any(sotu_mpi_buffer *buf, int source, int tag, int *source_out,
                              int *tag_out)
{
    return sotu_mpi_recv_any_on(sotu_mpi_comm(), buf, source, tag, source_out, tag_out);
}

sotu_status sotu_mpi_recv_any_on(MPI_Comm comm, sotu_mpi_buffer *buf, int source, int tag,
                                 int *source_out, int *tag_out)
{
    MPI_Status st;
    int found = 0;
    for (long ns = 50000;; ns = ns < 10000000 ? 2 * ns : ns) {
        SOTU_MPI_CHECK(MPI_Iprobe(source, tag, comm, &found, &st));
        if (found)
            break;
        nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = ns}, NULL);
    }
    int count = 0;
    size_t n;
    SOTU_MPI_CHECK(MPI_Get_count(&st, MPI_BYTE, &count));
    if (count != MPI_UNDEFINED) {
        n = (size_t)count;
    } else {
        /* Over INT_MAX bytes: only the 64-bit element count can say. */
        MPI_Count big = 0;
        SOTU_MPI_CHECK(MPI_Get_elements_x(&st, MPI_BYTE, &big));
        n = (size_t)big;
    }
    if (n + 1 > buf->cap) {
        void *p = realloc(buf->data, n + 1);
        if (!p)
            return sotu_error(SOTU_ERR_NOMEM,
                              "cannot allocate %zu bytes for a message from rank %d (tag %d)", n,
                              st.MPI_SOURCE, st.MPI_TAG);
        buf->data = p;
        buf->cap = n + 1;
    }
    MPI_Datatype type;
    int c, derived;
    bytes_type(n, &type, &c, &derived);
    SOTU_MPI_CHECK(
        MPI_Recv(buf->data, c, type, st.MPI_SOURCE, st.MPI_TAG, comm, MPI_STATUS_IGNORE));
    if (derived)
        SOTU_MPI_CHECK(MPI_Type_free(&type));
    buf->len = n;
    if (source_out)
        *source_out = st.MPI_SOURCE;
    if (tag_out)
        *tag_out = st.MPI_TAG;
    return SOTU_OK;
}

/* ---- partitioning ---- */

void sotu_share(int64_t n_items, int rank, int nranks, int64_t *begin, int64_t *end)
{
    assert(nranks > 0 && rank >= 0 && rank < nranks && n_items >= 0);
    int64_t base = n_items / nranks, extra = n_items % nranks;
    *begin = rank * base + (rank < extra ? rank : extra);
    *end = *begin + base + (rank < extra ? 1 : 0);
}

int sotu_share_owner(int64_t k, int64_t n_items, int nranks)
{
    for (int r = 0; r < nranks; r++) {
        int64_t b, e;
        sotu_share(n_items, r, nranks, &b, &e);
        if (k >= b && k < e)
            return r;
    }
    return nranks - 1;
}

bool sotu_mpi_all_ok(sotu_status *st, int nranks, const char *what)
{
    if (nranks == 1)
        return *st == SOTU_OK;
    if (*st != SOTU_OK)
        SOTU_ERROR("%s: %s", what, sotu_last_error());
    /* The largest status wins, so every rank ends with the same exit code
     * (mpiexec reports whichever non-zero exit it sees first). */
    int mine = (int)*st, worst = SOTU_OK;
    MPI_Request req;
    SOTU_MPI_CHECK(MPI_Iallreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, sotu_mpi_comm(), &req));
    sotu_mpi_wait(&req, NULL);
    if (worst != SOTU_OK && *st == SOTU_OK)
        *st = sotu_error((sotu_status)worst, "%s failed on another rank (see its message)", what);
    return worst == SOTU_OK;
}
