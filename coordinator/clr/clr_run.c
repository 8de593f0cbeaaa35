#include "coordinator/clr/clr_run.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "io/fsutil.h"

void clr_run_metric(clr_run *run, const char *event, void *json_object)
{
    sotu_metrics_append(run->metrics, event, json_object);
}

/* modules/<task><suffix> of job (kind, t): ".clrm" and ".json" for the
 * module, ".<kind>.json" for a baseline. */
static void job_path(const clr_run *run, clr_job_kind kind, int t, bool json, char *dst,
                     size_t cap)
{
    const char *name = run->man.tasks[t].name;
    if (kind == CLR_JOB_MODULE)
        snprintf(dst, cap, "%s/%s%s", run->modules_dir, name, json ? ".json" : ".clrm");
    else
        snprintf(dst, cap, "%s/%s.%s.json", run->modules_dir, name, clr_job_kind_name(kind));
}

sotu_status clr_run_init(clr_run *run, const sotu_config *cfg, const sotu_manifest *man,
                         const resnet_model *base, bool create)
{
    memset(run, 0, sizeof *run);
    run->cfg = *cfg;
    run->man = *man;
    run->T = man->n_tasks;
    run->base = base;
    if (run->T < 1)
        return sotu_error(SOTU_ERR_DATA, "%s: the manifest lists no task", man->path);
    sotu_status st = resnet_parse_clr(cfg->clr.variant, "clr.variant", &run->clr);
    if (st == SOTU_OK && run->clr == RESNET_CLR_NONE)
        st = sotu_error(SOTU_ERR_CONFIG, "clr.variant: none, expected clr or clr-full");
    if (st != SOTU_OK)
        return st;
    run->want[CLR_JOB_MODULE] = true;
    for (int b = 0; b < cfg->eval.n_baselines; b++) {
        const char *n = cfg->eval.baselines[b];
        if (!strcmp(n, "frozen"))
            run->want[CLR_JOB_FROZEN] = true;
        else if (!strcmp(n, "finetuned"))
            run->want[CLR_JOB_FINETUNED] = true;
        else if (create)
            SOTU_INFO("eval.baselines: %s does not apply to method clr (no merge, no shared "
                      "weights to forget); skipped", n);
    }

    run->tasks = calloc((size_t)run->T, sizeof *run->tasks);
    run->dctx = ZSTD_createDCtx();
    run->config_yaml = sotu_config_to_yaml(cfg);
    if (!run->tasks || !run->dctx || !run->config_yaml) {
        clr_run_free(run);
        return sotu_error(SOTU_ERR_NOMEM, "CLR run state for %d tasks", run->T);
    }
    for (int t = 0; t < run->T; t++)
        run->tasks[t].classes = man->tasks[t].classes;
    st = sotu_provenance_init(&run->prov,
                              sotu_theta0_fingerprint(base->params, base->num_params,
                                                      base->running, base->buffers.total),
                              cfg->model.pretrained, cfg);
    if (st == SOTU_OK)
        st = sotu_file_xxh64(man->path, &run->manifest_xxh64);
    if (st != SOTU_OK) {
        clr_run_free(run);
        return st;
    }
    snprintf(run->dir, sizeof run->dir, "%s", cfg->output.dir);
    snprintf(run->modules_dir, sizeof run->modules_dir, "%s/modules", run->dir);
    snprintf(run->checkpoint_path, sizeof run->checkpoint_path, "%s/checkpoint.h5", run->dir);
    if (!create)
        return SOTU_OK;

    if ((st = sotu_run_dir_create(run->dir, run->modules_dir, run->config_yaml,
                                  &run->metrics)) != SOTU_OK)
        clr_run_free(run);
    return st;
}

void clr_run_free(clr_run *run)
{
    if (!run)
        return;
    for (int t = 0; run->tasks && t < run->T; t++)
        sotu_module_free(&run->tasks[t].module);
    free(run->tasks);
    free(run->config_yaml);
    ZSTD_freeDCtx(run->dctx);
    if (run->metrics)
        fclose(run->metrics);
    memset(run, 0, sizeof *run);
}

sotu_status clr_run_layout(const clr_run *run, int t, sotu_tensor_table *layout)
{
    resnet_model m;
    sotu_status st = clr_model_for_task(run->base, run->clr, run->tasks[t].classes, 1, 0,
                                        (uint32_t)t, &m);
    if (st == SOTU_OK)
        st = clr_module_layout(&m, layout);
    resnet_free(&m);
    return st;
}

static json_t *report_json(const clr_run *run, clr_job_kind kind, int t,
                           const sotu_task_report *rep)
{
    return json_pack("{s:s, s:i, s:s, s:i, s:f, s:f, s:f, s:I}", "task", run->man.tasks[t].name,
                     "index", t, "kind", clr_job_kind_name(kind), "rank", rep->rank,
                     "finetuned_acc", rep->finetuned_acc, "train_loss", rep->train_loss,
                     "seconds", rep->seconds, "steps", (json_int_t)rep->steps);
}

void clr_run_fail(clr_run *run, clr_job_kind kind, int t, const sotu_task_report *rep)
{
    clr_run_task *task = &run->tasks[t];
    task->failed[kind] = true;
    task->done[kind] = false;
    task->report[kind] = *rep;
    SOTU_ERROR("task %s (%s) failed on rank %d: %s", run->man.tasks[t].name,
               clr_job_kind_name(kind), rep->rank, rep->error[0] ? rep->error : "(no message)");
    json_t *o = report_json(run, kind, t, rep);
    json_object_set_new(o, "error", json_string(rep->error));
    clr_run_metric(run, "task_failed", o);
}

/* A job's report; a baseline's (its result) also records prov, what it was
 * trained with (the module's provenance is in the .clrm). */
static sotu_status write_report(const clr_run *run, clr_job_kind kind, int t,
                                const sotu_task_report *rep, const sotu_provenance *prov)
{
    char path[SOTU_PATH_MAX + 128];
    job_path(run, kind, t, true, path, sizeof path);
    json_t *o = report_json(run, kind, t, rep);
    if (prov)
        sotu_provenance_json_put(o, "provenance", prov);
    return sotu_task_report_store(path, o);
}

/* A stored report: true when it is readable and names this task and kind
 * (a baseline's result is its report, so it must be whole); *has_prov says
 * whether it records a provenance (into prov). */
static bool read_report(const clr_run *run, clr_job_kind kind, int t, sotu_task_report *rep,
                        sotu_provenance *prov, bool *has_prov)
{
    char path[SOTU_PATH_MAX + 128];
    job_path(run, kind, t, true, path, sizeof path);
    json_t *o = sotu_task_report_load(path, t, rep), *v;
    bool ok = o && (v = json_object_get(o, "task")) && json_is_string(v) &&
              !strcmp(json_string_value(v), run->man.tasks[t].name) &&
              (v = json_object_get(o, "kind")) && json_is_string(v) &&
              !strcmp(json_string_value(v), clr_job_kind_name(kind)) && !isnan(rep->finetuned_acc);
    *has_prov = o && sotu_provenance_json_get(o, "provenance", prov);
    json_decref(o);
    return ok;
}

sotu_status clr_run_accept(clr_run *run, clr_job_kind kind, int t, const void *bytes, size_t n,
                           const sotu_task_report *rep, bool persist)
{
    clr_run_task *task = &run->tasks[t];
    const char *name = run->man.tasks[t].name;
    double start = sotu_now();
    char what[SOTU_PATH_MAX + 128];
    if (persist)
        snprintf(what, sizeof what, "module of task %s from rank %d", name, rep->rank);
    else
        job_path(run, kind, t, false, what, sizeof what);
    sotu_module mod = {0};
    sotu_status st = SOTU_OK;
    if (kind != CLR_JOB_MODULE) {
        if (n != 0 || !(rep->finetuned_acc >= 0 && rep->finetuned_acc <= 1))
            st = sotu_error(SOTU_ERR_DATA, "%s baseline of task %s from rank %d: %zu bytes and "
                            "accuracy %g, expected no bytes and an accuracy in [0, 1]",
                            clr_job_kind_name(kind), name, rep->rank, n, rep->finetuned_acc);
    } else {
        sotu_tensor_table layout;
        if ((st = clr_run_layout(run, t, &layout)) != SOTU_OK)
            return st;
        st = sotu_module_decode(bytes, n, &layout, &mod, run->dctx, what);
        sotu_task_table_free(&layout);
        if (st == SOTU_OK && (mod.task_index != (uint32_t)t || strcmp(mod.task_name, name)))
            st = sotu_error(SOTU_ERR_DATA, "%s: carries task %u '%s', expected task %d '%s'",
                            what, mod.task_index, mod.task_name, t, name);
        if (st == SOTU_OK && mod.kind != (uint32_t)run->clr)
            st = sotu_error(SOTU_ERR_DATA, "%s: a %s module, the run trains %s (a module of "
                            "another run?)", what, resnet_clr_name((resnet_clr)mod.kind),
                            resnet_clr_name(run->clr));
        /* A fresh message carries its worker's task file checksum; a stored
         * file is compared with the task file as it is now. */
        uint64_t task_file = mod.prov.task_file;
        if (st == SOTU_OK && !persist)
            st = sotu_file_xxh64(run->man.tasks[t].path, &task_file);
        sotu_provenance_verdict verdict = SOTU_PROVENANCE_SAME;
        char why[1600];
        if (st == SOTU_OK)
            st = sotu_provenance_compare(&run->prov, &mod.prov, task_file, what, name,
                                         run->man.tasks[t].path, !persist && run->retrain_changed,
                                         sotu_retrain_hint, &verdict, why, sizeof why);
        if (st == SOTU_OK && verdict == SOTU_PROVENANCE_RETRAIN) {
            SOTU_WARN("%s: %s; task %s is retrained (--retrain-changed)", what, why, name);
            sotu_module_free(&mod);
            return SOTU_OK; /* not done: the job stays in the queue */
        }
    }
    if (st == SOTU_OK && persist) {
        char path[SOTU_PATH_MAX + 128];
        job_path(run, kind, t, false, path, sizeof path);
        /* A baseline result records the run's provenance with the task
         * file's checksum as the coordinator finds it now. */
        sotu_provenance *prov = NULL;
        if (kind != CLR_JOB_MODULE && (prov = malloc(sizeof *prov))) {
            *prov = run->prov;
            st = sotu_file_xxh64(run->man.tasks[t].path, &prov->task_file);
        } else if (kind != CLR_JOB_MODULE) {
            st = sotu_error(SOTU_ERR_NOMEM, "%s: provenance", path);
        }
        if (st == SOTU_OK && kind == CLR_JOB_MODULE)
            st = sotu_write_file_atomic(path, bytes, n);
        if (st == SOTU_OK)
            st = write_report(run, kind, t, rep, prov);
        free(prov);
    }
    if (st != SOTU_OK) {
        sotu_module_free(&mod);
        if (!persist)
            return st; /* a file on disk: the caller says what happens to it */
        sotu_task_report r = *rep;
        snprintf(r.error, sizeof r.error, "%s", sotu_last_error());
        r.status = st;
        clr_run_fail(run, kind, t, &r);
        return st;
    }
    if (kind == CLR_JOB_MODULE) {
        sotu_module_free(&task->module);
        task->module = mod;
        task->bytes = (int64_t)n;
    }
    task->done[kind] = true;
    task->failed[kind] = false;
    task->report[kind] = *rep;
    if (persist) {
        json_t *o = report_json(run, kind, t, rep);
        json_object_set_new(o, "bytes", json_integer((json_int_t)n));
        json_object_set_new(o, "ingest_ms", json_real(1e3 * (sotu_now() - start)));
        clr_run_metric(run, "task_done", o);
    }
    return SOTU_OK;
}

int clr_run_count_module_files(const clr_run *run)
{
    return sotu_count_files_with_suffix(run->modules_dir, ".clrm");
}

sotu_status clr_run_write_config(const clr_run *run)
{
    char path[SOTU_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.yaml", run->dir);
    return sotu_write_file_atomic(path, run->config_yaml, strlen(run->config_yaml));
}

sotu_status clr_run_load(clr_run *run, int *n_loaded)
{
    *n_loaded = 0;
    int refused = 0;
    char first[2048] = "";
    sotu_status first_st = SOTU_OK;
    sotu_provenance *prov = malloc(sizeof *prov); /* a baseline result's */
    if (!prov)
        return sotu_error(SOTU_ERR_NOMEM, "%s: provenance", run->modules_dir);
    FILE *metrics = run->metrics; /* loading is not an event, and no failure is one */
    run->metrics = NULL;
    for (int t = 0; t < run->T; t++) {
        const char *name = run->man.tasks[t].name;
        char path[SOTU_PATH_MAX + 128];
        for (int k = 0; k < CLR_JOB_KINDS; k++) {
            if (!run->want[k])
                continue;
            sotu_task_report rep;
            bool has_prov = false;
            bool have_report = read_report(run, (clr_job_kind)k, t, &rep, prov, &has_prov);
            job_path(run, (clr_job_kind)k, t, k != CLR_JOB_MODULE, path, sizeof path);
            if (!sotu_file_exists(path))
                continue;
            if (k != CLR_JOB_MODULE && !have_report) {
                SOTU_WARN("%s: not a whole %s result; task %s's baseline will be redone", path,
                          clr_job_kind_name((clr_job_kind)k), name);
                continue;
            }
            sotu_status st = SOTU_OK;
            if (k != CLR_JOB_MODULE && !has_prov) {
                SOTU_WARN("%s: written by an older sotu that did not record what the baseline "
                          "was trained with; task %s's %s baseline will be redone", path, name,
                          clr_job_kind_name((clr_job_kind)k));
                continue;
            }
            if (k != CLR_JOB_MODULE) { /* the baseline's provenance, as a module's */
                uint64_t task_file = 0;
                sotu_provenance_verdict verdict = SOTU_PROVENANCE_SAME;
                char why[1600];
                st = sotu_file_xxh64(run->man.tasks[t].path, &task_file);
                if (st == SOTU_OK)
                    st = sotu_provenance_compare(&run->prov, prov, task_file, path, name,
                                                 run->man.tasks[t].path, run->retrain_changed,
                                                 sotu_retrain_hint, &verdict, why, sizeof why);
                if (st == SOTU_OK && verdict == SOTU_PROVENANCE_RETRAIN) {
                    SOTU_WARN("%s: %s; task %s's %s baseline is retrained (--retrain-changed)",
                              path, why, name, clr_job_kind_name((clr_job_kind)k));
                    continue;
                }
            }
            char *data = NULL;
            size_t n = 0;
            if (st == SOTU_OK && k == CLR_JOB_MODULE)
                st = sotu_read_file(path, (size_t)1 << 34, &data, &n);
            if (st == SOTU_OK)
                st = clr_run_accept(run, (clr_job_kind)k, t, data, n, &rep, false);
            free(data);
            if (st == SOTU_ERR_CONFIG) { /* trained from other inputs: refused, not redone */
                if (!refused++) {
                    first_st = st;
                    snprintf(first, sizeof first, "%s", sotu_last_error());
                }
                continue;
            }
            if (st != SOTU_OK) {
                SOTU_WARN("%s: does not verify (%s); task %s (%s) will be redone", path,
                          sotu_last_error(), name, clr_job_kind_name((clr_job_kind)k));
                continue;
            }
            if (run->tasks[t].done[k])
                (*n_loaded)++;
        }
    }
    run->metrics = metrics;
    free(prov);
    if (refused) {
        for (int t = 0; t < run->T; t++) { /* nothing half-loaded stays behind */
            sotu_module_free(&run->tasks[t].module);
            for (int k = 0; k < CLR_JOB_KINDS; k++)
                run->tasks[t].done[k] = false;
        }
        *n_loaded = 0;
        if (refused > 1)
            return sotu_error(first_st, "%s (and %d more stored modules in %s)", first,
                              refused - 1, run->modules_dir);
        return sotu_error(first_st, "%s", first);
    }
    return SOTU_OK;
}
