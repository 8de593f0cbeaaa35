#include "coordinator/run.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/mask.h"
#include "common/rng.h"
#include "io/checkpoint.h"
#include "io/fsutil.h"
#include "worker/task.h"

static void path_in(char *dst, size_t cap, const char *dir, const char *name, const char *ext)
{
    snprintf(dst, cap, "%s/%s%s", dir, name, ext);
}

sotu_status sotu_run_init(sotu_run *run, const sotu_config *cfg, const sotu_manifest *man,
                          const vit_config *vc, const sotu_tensor_table *table,
                          const float *theta0, bool create)
{
    memset(run, 0, sizeof *run);
    run->cfg = *cfg;
    run->man = *man; /* shallow: the caller keeps man alive */
    run->T = man->n_tasks;
    run->vc = *vc;
    sotu_status st = SOTU_OK;
    if (run->T < 1)
        return sotu_error(SOTU_ERR_DATA, "%s: the manifest lists no task", man->path);
    if ((st = sotu_merge_mode_parse(cfg->merge.mode, &run->mode)) != SOTU_OK)
        return st;

    if (cfg->sotu.n_keep == 0) {
        run->n_keeps = 1;
        run->keeps[0] = 1.0 / run->T;
    } else {
        run->n_keeps = cfg->sotu.n_keep;
        memcpy(run->keeps, cfg->sotu.keep, sizeof(double) * (size_t)cfg->sotu.n_keep);
    }
    run->keep_ship = 0;
    for (int k = 0; k < run->n_keeps; k++)
        if (run->keeps[k] > run->keep_ship)
            run->keep_ship = run->keeps[k];
    /* The dense baseline (task arithmetic) merges at keep 1, a super-mask of every keep;
     * not with sotu.tuning masked, whose training is cut by the shipped keep's mask
     * (its dense merge would be the same merge: the baseline is skipped). */
    bool masked = !strcmp(cfg->sotu.tuning, "masked");
    for (int b = 0; b < cfg->eval.n_baselines && !masked; b++)
        if (!strcmp(cfg->eval.baselines[b], "dense"))
            run->keep_ship = 1.0;

    run->table.n = table->n;
    run->table.total = table->total;
    run->table.t = malloc(sizeof *table->t * (size_t)table->n);
    run->theta0 = malloc(sizeof(float) * table->total);
    run->tasks = calloc((size_t)run->T, sizeof *run->tasks);
    run->dctx = ZSTD_createDCtx();
    run->config_yaml = sotu_config_to_yaml(cfg);
    if (!run->table.t || !run->theta0 || !run->tasks || !run->dctx || !run->config_yaml) {
        sotu_run_free(run);
        return sotu_error(SOTU_ERR_NOMEM, "run state for %d tasks and %zu parameters", man->n_tasks,
                          table->total);
    }
    memcpy(run->table.t, table->t, sizeof *table->t * (size_t)table->n);
    memcpy(run->theta0, theta0, sizeof(float) * table->total);
    /* Each rank fingerprints the θ0 it holds, as broadcast (about 10 GB/s). */
    st = sotu_provenance_init(&run->prov, sotu_theta0_fingerprint(theta0, table->total, NULL, 0),
                              cfg->model.pretrained, cfg);
    if (st == SOTU_OK)
        st = sotu_file_xxh64(man->path, &run->manifest_xxh64);
    if (st != SOTU_OK) {
        sotu_run_free(run);
        return st;
    }
    for (int t = 0; t < run->T; t++)
        run->tasks[t].classes = man->tasks[t].classes;

    snprintf(run->dir, sizeof run->dir, "%s", cfg->output.dir);
    path_in(run->deltas_dir, sizeof run->deltas_dir, run->dir, "deltas", "");
    path_in(run->checkpoint_path, sizeof run->checkpoint_path, run->dir, "checkpoint", ".h5");
    if (!create)
        return SOTU_OK;

    if ((st = sotu_run_dir_create(run->dir, run->deltas_dir, run->config_yaml,
                                  &run->metrics)) != SOTU_OK)
        sotu_run_free(run);
    return st;
}

sotu_status sotu_run_dir_create(const char *dir, const char *subdir, const char *config_yaml,
                                FILE **metrics)
{
    sotu_status st = sotu_mkdirs(subdir);
    if (st != SOTU_OK)
        return st;
    char path[SOTU_PATH_MAX + 32];
    path_in(path, sizeof path, dir, "config", ".yaml");
    if (!sotu_file_exists(path) &&
        (st = sotu_write_file_atomic(path, config_yaml, strlen(config_yaml))) != SOTU_OK)
        return st;
    path_in(path, sizeof path, dir, "metrics", ".jsonl");
    *metrics = fopen(path, "a");
    if (!*metrics)
        return sotu_error(SOTU_ERR_IO, "%s: cannot open for appending: %s", path, strerror(errno));
    return SOTU_OK;
}

void sotu_run_free(sotu_run *run)
{
    if (!run)
        return;
    for (int t = 0; run->tasks && t < run->T; t++) {
        sotu_delta_free(&run->tasks[t].delta);
        free(run->tasks[t].head_weight);
        free(run->tasks[t].head_bias);
    }
    free(run->tasks);
    free(run->table.t);
    free(run->theta0);
    free(run->config_yaml);
    ZSTD_freeDCtx(run->dctx);
    if (run->metrics)
        fclose(run->metrics);
    memset(run, 0, sizeof *run);
}

void sotu_run_metric(sotu_run *run, const char *event, void *json_object)
{
    sotu_metrics_append(run->metrics, event, json_object);
}

void *sotu_metrics_number(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

void sotu_metrics_append(FILE *metrics, const char *event, void *json_object)
{
    json_t *o = json_object;
    if (!metrics) {
        json_decref(o);
        return;
    }
    json_object_set_new(o, "event", json_string(event));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_object_set_new(o, "time", json_real((double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec));
    char *line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
    /* A record lost (full disk, quota) leaves the stream's error flag set,
     * which the end of the run reports (sotu_finish_end); warned once. */
    bool was_bad = ferror(metrics);
    if (!line)
        SOTU_WARN("metrics.jsonl: the %s record could not be formatted", event);
    else if ((fprintf(metrics, "%s\n", line) < 0 || fflush(metrics) != 0) && !was_bad)
        SOTU_WARN("metrics.jsonl: cannot append the %s record: %s", event, strerror(errno));
    free(line);
    json_decref(o);
}

static json_t *report_json(const sotu_run *run, int t, const sotu_task_report *rep)
{
    json_t *o = json_pack("{s:s, s:i, s:i, s:f, s:f, s:f, s:I}", "task", run->man.tasks[t].name,
                          "index", t, "rank", rep->rank, "finetuned_acc", rep->finetuned_acc,
                          "train_loss", rep->train_loss, "seconds", rep->seconds, "steps",
                          (json_int_t)rep->steps);
    if (o)
        json_object_set_new(o, "val_acc",
                            isnan(rep->val_acc) ? json_null() : json_real(rep->val_acc));
    return o;
}

void sotu_run_fail(sotu_run *run, int t, const sotu_task_report *rep)
{
    sotu_run_task *task = &run->tasks[t];
    task->failed = true;
    task->done = false;
    task->report = *rep;
    SOTU_ERROR("task %s failed on rank %d: %s", run->man.tasks[t].name, rep->rank,
               rep->error[0] ? rep->error : "(no message)");
    json_t *o = report_json(run, t, rep);
    json_object_set_new(o, "error", json_string(rep->error));
    sotu_run_metric(run, "task_failed", o);
}

/* Kept backbone values of d at keep (<= its shipped keep). */
static int64_t kept_at(const sotu_delta *d, double keep)
{
    int64_t n = 0;
    for (int k = 0; k < d->n_tensors; k++) {
        const sotu_delta_tensor *dt = &d->tensors[k];
        if (dt->mask != SOTU_MASK_SEEDED || keep >= d->keep) {
            n += (int64_t)dt->kept;
            continue;
        }
        sotu_mask m = sotu_mask_of(d->seed, d->task_index, dt->table_index, dt->count, keep);
        for (uint64_t i = 0; i < dt->kept; i++)
            n += sotu_mask_keeps(&m, dt->indices[i]);
    }
    return n;
}

/* Moves the DENSE head tensors out of d into task (absolute head values). */
static sotu_status take_head(sotu_run *run, int t, sotu_delta *d, const char *what)
{
    sotu_run_task *task = &run->tasks[t];
    int K = task->classes, D = run->vc.dim, kept = 0;
    float *w = NULL, *b = NULL;
    for (int k = 0; k < d->n_tensors; k++) {
        sotu_delta_tensor *dt = &d->tensors[k];
        bool is_w = !strcmp(dt->name, "head.weight"), is_b = !strcmp(dt->name, "head.bias");
        if ((is_w || is_b) && dt->mask != SOTU_MASK_DENSE)
            goto bad;
        if (is_w && !w) {
            w = dt->values;
            dt->values = NULL;
        } else if (is_b && !b) {
            b = dt->values;
            dt->values = NULL;
        } else {
            d->tensors[kept++] = *dt;
            continue;
        }
        free(dt->indices);
    }
    d->n_tensors = kept;
    if (!w || !b) {
        free(w);
        free(b);
        return sotu_error(SOTU_ERR_DATA, "%s: the task head (head.weight [%d, %d], head.bias "
                          "[%d]) is missing", what, K, D, K);
    }
    free(task->head_weight);
    free(task->head_bias);
    task->head_weight = w;
    task->head_bias = b;
    return SOTU_OK;
bad:
    free(w);
    free(b);
    return sotu_error(SOTU_ERR_DATA, "%s: the task head must travel DENSE", what);
}

sotu_status sotu_task_report_store(const char *path, void *json_object)
{
    json_t *o = json_object;
    char *text = json_dumps(o, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!text)
        return sotu_error(SOTU_ERR_NOMEM, "%s: cannot format the report", path);
    sotu_status st = sotu_write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

static sotu_status write_report(const sotu_run *run, int t, const sotu_task_report *rep)
{
    char path[SOTU_PATH_MAX + 96];
    path_in(path, sizeof path, run->deltas_dir, run->man.tasks[t].name, ".json");
    return sotu_task_report_store(path, report_json(run, t, rep));
}

/* The worker report stored beside a delta; absent or bad: figures unknown. */
static void read_report(const sotu_run *run, int t, sotu_task_report *rep)
{
    char path[SOTU_PATH_MAX + 96];
    path_in(path, sizeof path, run->deltas_dir, run->man.tasks[t].name, ".json");
    json_decref(sotu_task_report_load(path, t, rep));
}

void *sotu_task_report_load(const char *path, int t, sotu_task_report *rep)
{
    memset(rep, 0, sizeof *rep);
    rep->task = t;
    rep->finetuned_acc = NAN;
    rep->val_acc = NAN;
    rep->rank = -1;
    json_error_t err;
    json_t *o = json_load_file(path, 0, &err);
    if (!o)
        return NULL;
    json_t *v;
    if ((v = json_object_get(o, "finetuned_acc")) && json_is_number(v))
        rep->finetuned_acc = json_number_value(v);
    if ((v = json_object_get(o, "val_acc")) && json_is_number(v))
        rep->val_acc = json_number_value(v);
    if ((v = json_object_get(o, "train_loss")) && json_is_number(v))
        rep->train_loss = json_number_value(v);
    if ((v = json_object_get(o, "seconds")) && json_is_number(v))
        rep->seconds = json_number_value(v);
    if ((v = json_object_get(o, "steps")) && json_is_integer(v))
        rep->steps = json_integer_value(v);
    if ((v = json_object_get(o, "rank")) && json_is_integer(v))
        rep->rank = (int32_t)json_integer_value(v);
    return o;
}

/* What a user can do about a refused stored delta or module. */
const char *const sotu_retrain_hint =
    "either use the settings it was trained with (the run's config.yaml), or retrain the "
    "tasks concerned with `sotu train CONFIG --resume --retrain-changed`";

/* sotu_run_accept; for a stored file (persist false) *retrain (may be NULL
 * for messages) is set when its provenance asks for the task to be trained
 * again (run->retrain_changed), the delta then not kept. */
static sotu_status accept_delta(sotu_run *run, int t, const void *bytes, size_t n,
                                const sotu_task_report *rep, bool persist, bool *retrain)
{
    sotu_run_task *task = &run->tasks[t];
    const char *name = run->man.tasks[t].name;
    double start = sotu_now();
    char what[SOTU_PATH_MAX + 128];
    if (persist)
        snprintf(what, sizeof what, "delta of task %s from rank %d", name, rep->rank);
    else
        path_in(what, sizeof what, run->deltas_dir, name, ".sotud");
    sotu_tensor_table tab;
    sotu_delta d = {0};
    sotu_status st = sotu_task_table(&run->table, task->classes, run->vc.dim, &tab);
    if (st != SOTU_OK)
        return st;
    st = sotu_delta_decode(bytes, n, &tab, &d, run->dctx, what);
    sotu_task_table_free(&tab);
    if (st != SOTU_OK)
        goto fail;
    if (d.task_index != (uint32_t)t || strcmp(d.task_name, name)) {
        st = sotu_error(SOTU_ERR_DATA, "%s: carries task %u '%s', expected task %d '%s'", what,
                        d.task_index, d.task_name, t, name);
        goto fail;
    }
    /* A fresh message carries the checksum its worker computed; a stored
     * file is compared with the task file as it is now. */
    uint64_t task_file = d.prov.task_file;
    if (!persist && (st = sotu_file_xxh64(run->man.tasks[t].path, &task_file)) != SOTU_OK)
        goto fail;
    sotu_provenance_verdict verdict;
    char why[1600];
    st = sotu_provenance_compare(&run->prov, &d.prov, task_file, what, name,
                                 run->man.tasks[t].path, !persist && run->retrain_changed,
                                 sotu_retrain_hint, &verdict, why, sizeof why);
    if (st != SOTU_OK)
        goto fail;
    if (verdict == SOTU_PROVENANCE_RETRAIN) {
        SOTU_WARN("%s: %s; task %s is retrained (--retrain-changed)", what, why, name);
        if (retrain)
            *retrain = true;
        sotu_delta_free(&d);
        return SOTU_OK;
    }
    if (d.seed != run->cfg.train.seed || fabs(d.keep - run->keep_ship) > 1e-12 * run->keep_ship) {
        st = sotu_error(SOTU_ERR_DATA, "%s: seed %llu keep %g, the run has seed %llu keep %g "
                        "(a delta of another run?)", what, (unsigned long long)d.seed, d.keep,
                        (unsigned long long)run->cfg.train.seed, run->keep_ship);
        goto fail;
    }
    if ((st = take_head(run, t, &d, what)) != SOTU_OK)
        goto fail;

    if (persist) {
        char path[SOTU_PATH_MAX + 96];
        path_in(path, sizeof path, run->deltas_dir, name, ".sotud");
        if ((st = sotu_write_file_atomic(path, bytes, n)) != SOTU_OK ||
            (st = write_report(run, t, rep)) != SOTU_OK)
            goto fail;
    }
    sotu_delta_free(&task->delta);
    task->delta = d;
    task->done = true;
    task->failed = false;
    task->report = *rep;
    task->bytes = (int64_t)n;
    task->kept_values = kept_at(&d, run->keeps[0]);
    if (persist) {
        json_t *o = report_json(run, t, rep);
        json_object_set_new(o, "kept_values", json_integer(task->kept_values));
        json_object_set_new(o, "bytes", json_integer(task->bytes));
        json_object_set_new(o, "ingest_ms", json_real(1e3 * (sotu_now() - start)));
        sotu_run_metric(run, "task_done", o);
    }
    return SOTU_OK;

fail:
    sotu_delta_free(&d);
    if (!persist)
        return st; /* a stored file (resume, merge): the caller says what happens to it */
    {
        sotu_task_report r = *rep;
        snprintf(r.error, sizeof r.error, "%s", sotu_last_error());
        r.status = st;
        sotu_run_fail(run, t, &r);
    }
    return st;
}

sotu_status sotu_run_accept(sotu_run *run, int t, const void *bytes, size_t n,
                            const sotu_task_report *rep, bool persist)
{
    return accept_delta(run, t, bytes, n, rep, persist, NULL);
}

const char *sotu_run_task_status(const sotu_run *run, int t)
{
    const sotu_run_task *task = &run->tasks[t];
    if (task->done)
        return "ok";
    if (task->failed)
        return "failed";
    return run->merging ? "left_out" : "not_run";
}

int sotu_run_count_delta_files(const sotu_run *run)
{
    return sotu_count_files_with_suffix(run->deltas_dir, ".sotud");
}

int sotu_count_files_with_suffix(const char *path, const char *suffix)
{
    DIR *dir = opendir(path);
    if (!dir)
        return 0;
    int n = 0;
    size_t ls = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(dir))) {
        size_t len = strlen(e->d_name);
        n += len > ls && !strcmp(e->d_name + len - ls, suffix);
    }
    closedir(dir);
    return n;
}

/* What happens to a task whose stored delta cannot be used. */
static const char *redo_note(const sotu_run *run)
{
    return run->merging ? "is left out of this merge" : "will be redone";
}

sotu_status sotu_run_load_deltas(sotu_run *run, int *n_loaded)
{
    *n_loaded = 0;
    int refused = 0, stored = 0;
    char first[2048] = "";
    sotu_status first_st = SOTU_OK;
    for (int t = 0; t < run->T; t++) {
        char path[SOTU_PATH_MAX + 96];
        path_in(path, sizeof path, run->deltas_dir, run->man.tasks[t].name, ".sotud");
        if (!sotu_file_exists(path))
            continue;
        stored++;
        char *data;
        size_t n;
        sotu_status st = sotu_read_file(path, (size_t)1 << 40, &data, &n);
        if (st != SOTU_OK) {
            SOTU_WARN("%s; task %s %s", sotu_last_error(), run->man.tasks[t].name,
                      redo_note(run));
            continue;
        }
        sotu_task_report rep;
        read_report(run, t, &rep);
        /* Not persisted again, and a failure here is not a failed task. */
        FILE *metrics = run->metrics;
        run->metrics = NULL;
        bool retrain = false;
        st = accept_delta(run, t, data, n, &rep, false, &retrain);
        run->metrics = metrics;
        free(data);
        if (st == SOTU_ERR_CONFIG) { /* trained from other inputs: refused, not redone */
            run->tasks[t].failed = false;
            if (!refused++) {
                first_st = st;
                snprintf(first, sizeof first, "%s", sotu_last_error());
            }
            continue;
        }
        if (st != SOTU_OK) {
            SOTU_WARN("%s: does not verify (%s); task %s %s", path, sotu_last_error(),
                      run->man.tasks[t].name, redo_note(run));
            continue;
        }
        if (!retrain)
            (*n_loaded)++;
    }
    if (refused) {
        for (int t = 0; t < run->T; t++) { /* nothing half-loaded stays behind */
            sotu_delta_free(&run->tasks[t].delta);
            run->tasks[t].done = false;
        }
        *n_loaded = 0;
        if (refused > 1)
            return sotu_error(first_st, "%s (and %d more of the %d stored deltas in %s)", first,
                              refused - 1, stored, run->deltas_dir);
        return sotu_error(first_st, "%s", first);
    }
    return SOTU_OK;
}

sotu_status sotu_run_write_config(const sotu_run *run)
{
    char path[SOTU_PATH_MAX + 32];
    path_in(path, sizeof path, run->dir, "config", ".yaml");
    return sotu_write_file_atomic(path, run->config_yaml, strlen(run->config_yaml));
}

void sotu_run_provenance_json(const sotu_provenance *prov, uint64_t manifest_xxh64,
                              void *json_object)
{
    char hex[2][20];
    snprintf(hex[0], sizeof hex[0], "%016llx", (unsigned long long)prov->theta0);
    snprintf(hex[1], sizeof hex[1], "%016llx", (unsigned long long)manifest_xxh64);
    json_t *o = json_object;
    json_object_set_new(o, "theta0_xxh64", json_string(hex[0]));
    json_object_set_new(o, "pretrained", json_string(prov->pretrained));
    json_object_set_new(o, "manifest_xxh64", json_string(hex[1]));
    json_object_set_new(o, "sotu_version", json_string(prov->version));
    json_object_set_new(o, "sotu_commit", json_string(prov->commit));
}

sotu_status sotu_run_merge(sotu_run *run, double keep, float *merged, sotu_merge_stats *stats)
{
    return sotu_run_merge_prefix(run, keep, run->T, merged, stats);
}

sotu_status sotu_run_merge_prefix(sotu_run *run, double keep, int n_prefix, float *merged,
                                  sotu_merge_stats *stats)
{
    const sotu_delta **list = malloc(sizeof *list * (size_t)run->T);
    if (!list)
        return sotu_error(SOTU_ERR_NOMEM, "merge: list of %d deltas", run->T);
    int n = 0;
    for (int t = 0; t < n_prefix && t < run->T; t++)
        if (run->tasks[t].done)
            list[n++] = &run->tasks[t].delta;
    sotu_merge_opts o = {
        .mode = run->mode,
        .scale = run->cfg.merge.scale,
        .keep = keep > 0 ? keep : run->keeps[0],
        .n_tasks = (uint32_t)run->T,
    };
    sotu_status st =
        sotu_merge_apply(&run->table, run->theta0, (const sotu_delta *const *)list, n, &o, merged,
                         stats);
    free(list);
    return st;
}

sotu_status sotu_run_write_checkpoint(sotu_run *run, const char *path, const float *merged,
                                      const sotu_merge_stats *stats, const double *acc)
{
    return sotu_run_write_checkpoint_eval(run, path, merged, stats, acc, 0, NULL);
}

sotu_status sotu_run_write_checkpoint_eval(sotu_run *run, const char *path, const float *merged,
                                           const sotu_merge_stats *stats, const double *acc,
                                           int n_summary, const sotu_checkpoint_figure *summary)
{
    int T = run->T;
    sotu_status st = SOTU_OK;
    sotu_checkpoint_task *ct = calloc((size_t)T, sizeof *ct);
    double *cosine = malloc(sizeof(double) * (size_t)T * (size_t)T);
    sotu_checkpoint_keep *keeps = calloc((size_t)run->n_keeps, sizeof *keeps);
    float **extra = calloc((size_t)run->n_keeps, sizeof *extra);
    char(**names)[SOTU_TASK_NAME_MAX] = calloc((size_t)T + 1, sizeof *names);
    const char ***name_ptrs = calloc((size_t)T + 1, sizeof *name_ptrs);
    if (!ct || !cosine || !keeps || !extra || !names || !name_ptrs) {
        st = sotu_error(SOTU_ERR_NOMEM, "checkpoint of %d tasks", T);
        goto cleanup;
    }
    for (size_t i = 0; i < (size_t)T * (size_t)T; i++)
        cosine[i] = NAN;
    if (stats)
        for (int a = 0; a < stats->n; a++)
            for (int b = 0; b < stats->n; b++)
                cosine[(size_t)stats->task_index[a] * (size_t)T + stats->task_index[b]] =
                    stats->cosine[(size_t)a * (size_t)stats->n + (size_t)b];
    for (int t = 0; t < T; t++) {
        const sotu_run_task *task = &run->tasks[t];
        ct[t] = (sotu_checkpoint_task){
            .name = run->man.tasks[t].name,
            .index = t,
            .classes = task->classes,
            .keep = run->keeps[0],
            .seed = run->cfg.train.seed,
            .lr = run->cfg.train.lr,
            .epochs = run->cfg.train.epochs,
            .train_seconds = task->report.seconds,
            .finetuned_acc = task->done ? task->report.finetuned_acc : NAN,
            .kept_values = task->kept_values,
            .bytes = task->bytes,
            .failed = !task->done,
            .status = sotu_run_task_status(run, t),
            .head_weight = task->done ? task->head_weight : NULL,
            .head_bias = task->done ? task->head_bias : NULL,
        };
        /* The class names travel with the head (export, predict); a task
         * file that cannot be read now only leaves them out. */
        const sotu_manifest_task *mt = &run->man.tasks[t];
        if (sotu_taskset_read_class_names(mt->path, task->classes, &names[t]) != SOTU_OK) {
            SOTU_WARN("checkpoint: the class names of task %s are left out: %s", mt->name,
                      sotu_last_error());
        } else if ((name_ptrs[t] = malloc(sizeof *name_ptrs[t] * (size_t)task->classes))) {
            for (int k = 0; k < task->classes; k++)
                name_ptrs[t][k] = names[t][k];
            ct[t].class_names = name_ptrs[t];
        }
    }
    int n_extra = 0;
    for (int k = 1; k < run->n_keeps; k++) {
        if (run->keeps[k] >= run->keeps[0])
            continue; /* /keeps holds the smaller ones; a larger one gets its own run */
        extra[n_extra] = malloc(sizeof(float) * run->table.total);
        if (!extra[n_extra]) {
            st = sotu_error(SOTU_ERR_NOMEM, "checkpoint: merged weights at keep %g",
                            run->keeps[k]);
            goto cleanup;
        }
        if ((st = sotu_run_merge(run, run->keeps[k], extra[n_extra], NULL)) != SOTU_OK)
            goto cleanup;
        keeps[n_extra] = (sotu_checkpoint_keep){run->keeps[k], extra[n_extra]};
        n_extra++;
    }
    sotu_checkpoint ck = {
        .config_yaml = run->config_yaml,
        .model = run->vc,
        .table = &run->table,
        .merged = merged,
        .keep = run->keeps[0],
        .n_tasks = T,
        .tasks = ct,
        .cosine = stats ? cosine : NULL,
        .collision_rate = stats ? stats->collision_rate : NAN,
        .merge_mode = sotu_merge_mode_name(run->mode),
        .merge_scale = run->cfg.merge.scale,
        .n_keeps = n_extra,
        .keeps = keeps,
        .acc_matrix = acc,
        .n_summary = n_summary,
        .summary = summary,
        .prov = &run->prov,
        .manifest_xxh64 = run->manifest_xxh64,
    };
    st = sotu_checkpoint_write(path ? path : run->checkpoint_path, &ck);
cleanup:
    for (int k = 0; extra && k < run->n_keeps; k++)
        free(extra[k]);
    free(extra);
    for (int t = 0; names && name_ptrs && t < T; t++) {
        free(names[t]);
        free(name_ptrs[t]);
    }
    free(names);
    free(name_ptrs);
    free(keeps);
    free(cosine);
    free(ct);
    return st;
}

void sotu_run_print_table(const sotu_run *run, const double *merged_acc, FILE *f)
{
    fprintf(f, "\n%-28s %7s %9s %9s %12s %10s %8s\n", "task", "classes", "finetuned", "merged",
            "kept values", "bytes", "seconds");
    double sum_ft = 0, sum_m = 0;
    int n_ft = 0, n_m = 0;
    int64_t kept = 0, bytes = 0;
    for (int t = 0; t < run->T; t++) {
        const sotu_run_task *task = &run->tasks[t];
        if (!task->done) {
            char status[16];
            snprintf(status, sizeof status, "%s", sotu_run_task_status(run, t));
            for (char *c = status; *c; c++)
                *c = *c == '_' ? ' ' : *c; /* "left out", "not run" */
            fprintf(f, "%-28s %7d %9s %9s %12s %10s %8s\n", run->man.tasks[t].name, task->classes,
                    status, "-", "-", "-", "-");
            continue;
        }
        double ft = task->report.finetuned_acc, m = merged_acc ? merged_acc[t] : NAN;
        fprintf(f, "%-28s %7d %9.4f %9.4f %12lld %10lld %8.1f\n", run->man.tasks[t].name,
                task->classes, ft, m, (long long)task->kept_values, (long long)task->bytes,
                task->report.seconds);
        if (!isnan(ft))
            sum_ft += ft, n_ft++;
        if (!isnan(m))
            sum_m += m, n_m++;
        kept += task->kept_values;
        bytes += task->bytes;
    }
    fprintf(f, "%-28s %7s %9.4f %9.4f %12lld %10lld\n", "mean / total", "",
            n_ft ? sum_ft / n_ft : NAN, n_m ? sum_m / n_m : NAN, (long long)kept,
            (long long)bytes);
    fprintf(f, "backbone parameters %zu, keep %g (shipped at %g), merge %s scale %g\n",
            run->table.total, run->keeps[0], run->keep_ship, sotu_merge_mode_name(run->mode),
            run->cfg.merge.scale);
}

void sotu_provenance_json_put(void *json_object, const char *key, const sotu_provenance *p)
{
    char h[3][20];
    snprintf(h[0], sizeof h[0], "%016llx", (unsigned long long)p->theta0);
    snprintf(h[1], sizeof h[1], "%016llx", (unsigned long long)p->task_file);
    snprintf(h[2], sizeof h[2], "%016llx", (unsigned long long)p->config_hash);
    json_object_set_new(json_object, key,
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "theta0_xxh64", h[0],
                                  "task_file_xxh64", h[1], "config_xxh64", h[2], "config",
                                  p->config, "pretrained", p->pretrained, "sotu_version",
                                  p->version, "sotu_commit", p->commit));
}

/* A member of o that is a string shorter than cap, copied into dst. */
static bool json_str(const json_t *o, const char *key, char *dst, size_t cap)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v) || strlen(json_string_value(v)) >= cap || !json_string_value(v)[0])
        return false;
    snprintf(dst, cap, "%s", json_string_value(v));
    return true;
}

static bool json_hex(const json_t *o, const char *key, uint64_t *dst)
{
    char s[20], *end;
    if (!json_str(o, key, s, sizeof s) || strlen(s) != 16)
        return false;
    *dst = strtoull(s, &end, 16);
    return *end == '\0';
}

bool sotu_provenance_json_get(const void *json_object, const char *key, sotu_provenance *p)
{
    memset(p, 0, sizeof *p);
    const json_t *o = json_object_get(json_object, key);
    bool ok = json_is_object(o) && json_hex(o, "theta0_xxh64", &p->theta0) &&
              json_hex(o, "task_file_xxh64", &p->task_file) &&
              json_hex(o, "config_xxh64", &p->config_hash) &&
              json_str(o, "config", p->config, sizeof p->config) &&
              json_str(o, "pretrained", p->pretrained, sizeof p->pretrained) &&
              json_str(o, "sotu_version", p->version, sizeof p->version) &&
              json_str(o, "sotu_commit", p->commit, sizeof p->commit) &&
              sotu_xxh64(p->config, strlen(p->config)) == p->config_hash;
    if (!ok)
        memset(p, 0, sizeof *p);
    return ok;
}

sotu_status sotu_run_store_scalars(const sotu_run *run, int t, const char *text, size_t n)
{
    char path[SOTU_PATH_MAX + 96];
    path_in(path, sizeof path, run->deltas_dir, run->man.tasks[t].name, ".steps.jsonl");
    return sotu_write_file_atomic(path, text, n);
}

/* One JSONL line as a CSV row (the columns of SOTU_SCALAR_COLUMNS). */
static void scalar_csv_row(FILE *f, json_t *o)
{
    static const char *const cols[] = {"task", "task_index", "phase", "epoch", "step", "loss",
                                       "lr", "grad_norm", "images", "images_per_s", "seconds"};
    for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++) {
        json_t *v = json_object_get(o, cols[k]);
        if (k)
            fputc(',', f);
        if (json_is_string(v))
            fputs(json_string_value(v), f);
        else if (json_is_integer(v))
            fprintf(f, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
            fprintf(f, "%.9g", json_real_value(v));
    }
    fputc('\n', f);
}

void sotu_scalar_curves_free(sotu_scalar_curve *curves, int T)
{
    for (int t = 0; curves && t < T; t++) {
        free(curves[t].x);
        free(curves[t].loss);
        free(curves[t].lr);
        free(curves[t].grad_norm);
        memset(&curves[t], 0, sizeof curves[t]);
    }
}

static double json_num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* Appends the line o to curve c; the head phase's steps come first. */
static sotu_status curve_add(sotu_scalar_curve *c, json_t *o, int64_t *head_steps)
{
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        double **arr[] = {&c->x, &c->loss, &c->lr, &c->grad_norm};
        for (int k = 0; k < 4; k++) {
            double *p = realloc(*arr[k], sizeof(double) * (size_t)cap);
            if (!p)
                return sotu_error(SOTU_ERR_NOMEM, "training curve of %d steps", cap);
            *arr[k] = p;
        }
        c->cap = cap;
    }
    double step = json_num(o, "step");
    const char *phase = json_string_value(json_object_get(o, "phase"));
    bool head = phase && !strcmp(phase, "head");
    if (head && step > *head_steps)
        *head_steps = (int64_t)step;
    c->x[c->n] = head ? step : step + (double)*head_steps;
    c->loss[c->n] = json_num(o, "loss");
    c->lr[c->n] = json_num(o, "lr");
    c->grad_norm[c->n] = json_num(o, "grad_norm");
    c->n++;
    return SOTU_OK;
}

sotu_status sotu_run_write_scalars(const sotu_run *run, int *missing, sotu_scalar_curve *curves)
{
    char *jl = NULL, *csv = NULL;
    size_t njl = 0, ncsv = 0;
    FILE *fj = open_memstream(&jl, &njl), *fc = open_memstream(&csv, &ncsv);
    sotu_status st = fj && fc ? SOTU_OK : sotu_error(SOTU_ERR_NOMEM, "step scalars");
    int n_missing = 0, n_files = 0;
    if (fc)
        fputs(SOTU_SCALAR_COLUMNS "\n", fc);
    for (int t = 0; st == SOTU_OK && t < run->T; t++) {
        if (!run->tasks[t].done)
            continue;
        char path[SOTU_PATH_MAX + 96];
        path_in(path, sizeof path, run->deltas_dir, run->man.tasks[t].name, ".steps.jsonl");
        FILE *in = fopen(path, "r");
        if (!in) {
            n_missing++;
            continue;
        }
        n_files++;
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        int lineno = 0;
        int64_t head_steps = 0;
        while ((len = getline(&line, &cap, in)) > 0) {
            lineno++;
            json_error_t err;
            json_t *o = json_loadb(line, (size_t)len, 0, &err);
            if (!json_is_object(o)) {
                json_decref(o);
                st = sotu_error(SOTU_ERR_DATA, "%s:%d: not a JSON object: %s", path, lineno,
                                err.text);
                break;
            }
            fwrite(line, 1, (size_t)len, fj);
            if (line[len - 1] != '\n')
                fputc('\n', fj);
            scalar_csv_row(fc, o);
            if (curves)
                st = curve_add(&curves[t], o, &head_steps);
            json_decref(o);
            if (st != SOTU_OK)
                break;
        }
        free(line);
        fclose(in);
    }
    if (fj && fclose(fj) != 0 && st == SOTU_OK)
        st = sotu_error(SOTU_ERR_NOMEM, "step scalars");
    if (fc && fclose(fc) != 0 && st == SOTU_OK)
        st = sotu_error(SOTU_ERR_NOMEM, "step scalars");
    if (st == SOTU_OK && n_files > 0) {
        char path[SOTU_PATH_MAX + 32];
        sotu_path_join(path, sizeof path, run->dir, "steps.jsonl");
        st = sotu_write_file_atomic(path, jl, njl);
        if (st == SOTU_OK) {
            sotu_path_join(path, sizeof path, run->dir, "steps.csv");
            st = sotu_write_file_atomic(path, csv, ncsv);
        }
    }
    free(jl);
    free(csv);
    if (missing)
        *missing = n_missing;
    return st;
}
