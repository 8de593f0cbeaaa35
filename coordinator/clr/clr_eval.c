#include "coordinator/clr/clr_eval.h"

#include <hdf5.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "mpi/mpi_util.h"
#include "eval/report.h"
#include "io/h5util.h"
#include "io/weights.h"
#include "worker/finetune.h"
#include "worker/resnet.h"

enum { TAG_CLR_MODULE = 51 };

/* ------------------------------------------------------------------------ */
/* Evaluation                                                                */
/* ------------------------------------------------------------------------ */

/* Test accuracy of task t with its module (values [layout total], counter). */
static sotu_status eval_module(const clr_run *run, int t, const float *values, int64_t counter,
                               double *acc)
{
    sotu_taskset ts = {0};
    resnet_model m = {0};
    sotu_tensor_table layout = {0};
    sotu_status st = sotu_taskset_read(run->man.tasks[t].path, &ts);
    if (st == SOTU_OK)
        st = clr_model_for_task(run->base, run->clr, run->tasks[t].classes,
                                run->cfg.train.batch_size, 0, (uint32_t)t, &m);
    if (st == SOTU_OK)
        st = clr_module_layout(&m, &layout);
    if (st == SOTU_OK) {
        clr_module_apply(&m, &layout, values, counter);
        st = sotu_finetune_eval_test_resnet(&m, &ts, &run->cfg, acc);
    }
    if (st != SOTU_OK)
        sotu_error_context(st, "evaluation of task %s's module", run->man.tasks[t].name);
    sotu_task_table_free(&layout);
    resnet_free(&m);
    sotu_taskset_free(&ts);
    return st;
}

sotu_status clr_evaluate(clr_run *run, int rank, int nranks, double *acc)
{
    int T = run->T;
    sotu_status st = SOTU_OK;
    int *done = calloc((size_t)T, sizeof *done);
    double *mine = calloc((size_t)T, sizeof *mine);
    sotu_mpi_buffer *got = calloc((size_t)T, sizeof *got);
    if (!done || !mine || !got)
        st = sotu_error(SOTU_ERR_NOMEM, "evaluation of %d tasks", T);
    if (!sotu_mpi_all_ok(&st, nranks, "CLR evaluation"))
        goto cleanup;
    for (int t = 0; rank == 0 && t < T; t++)
        done[t] = run->tasks[t].done[CLR_JOB_MODULE];
    if (nranks > 1)
        sotu_mpi_bcast_bytes(done, sizeof(int) * (size_t)T, 0);
    double t0 = sotu_now();

    /* Rank 0 sends every other rank the modules of its share, in task
     * order; each rank takes all of its own before evaluating. */
    for (int t = 0; t < T && nranks > 1; t++) {
        int owner = sotu_share_owner(t, T, nranks);
        if (!done[t] || owner == 0)
            continue;
        if (rank == 0) {
            const sotu_module *mod = &run->tasks[t].module;
            size_t n = sizeof(int64_t) + sizeof(float) * mod->count;
            char *msg = malloc(n);
            if (!msg)
                sotu_mpi_fail(MPI_ERR_NO_MEM, "packing a CLR module", __FILE__, __LINE__);
            memcpy(msg, &mod->counter, sizeof(int64_t));
            memcpy(msg + sizeof(int64_t), mod->values, sizeof(float) * mod->count);
            sotu_mpi_send_bytes(msg, n, owner, TAG_CLR_MODULE);
            free(msg);
        } else if (rank == owner &&
                   sotu_mpi_recv_any(&got[t], 0, TAG_CLR_MODULE, NULL, NULL) != SOTU_OK) {
            /* The sender would wait for this receive forever. */
            sotu_mpi_fail(MPI_ERR_NO_MEM, sotu_last_error(), __FILE__, __LINE__);
        }
    }
    int64_t b, e;
    sotu_share(T, rank, nranks, &b, &e);
    for (int t = (int)b; t < (int)e && st == SOTU_OK; t++) {
        mine[t] = NAN;
        if (!done[t])
            continue;
        if (rank == 0) {
            st = eval_module(run, t, run->tasks[t].module.values, run->tasks[t].module.counter,
                             &mine[t]);
        } else {
            int64_t counter;
            memcpy(&counter, got[t].data, sizeof counter);
            float *values = malloc(got[t].len - sizeof counter + 1);
            if (!values) {
                st = sotu_error(SOTU_ERR_NOMEM, "evaluation: module of %zu bytes", got[t].len);
                break;
            }
            memcpy(values, (char *)got[t].data + sizeof counter, got[t].len - sizeof counter);
            st = eval_module(run, t, values, counter, &mine[t]);
            free(values);
        }
    }
    if (!sotu_mpi_all_ok(&st, nranks, "CLR evaluation"))
        goto cleanup;
    if (nranks > 1)
        SOTU_MPI_CHECK(MPI_Reduce(mine, acc, T, MPI_DOUBLE, MPI_SUM, 0, sotu_mpi_comm()));
    else
        memcpy(acc, mine, sizeof(double) * (size_t)T);
    if (rank == 0) {
        int n_done = 0;
        for (int t = 0; t < T; t++)
            n_done += done[t];
        SOTU_INFO("evaluation clr: %d modules on the frozen backbone over %d ranks (%.1fs)",
                  n_done, nranks, sotu_now() - t0);
    }
cleanup:
    for (int t = 0; got && t < T; t++)
        sotu_mpi_buffer_free(&got[t]);
    free(got);
    free(done);
    free(mine);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Figures                                                                   */
/* ------------------------------------------------------------------------ */

sotu_status clr_cost_compute(const clr_run *run, clr_cost *c)
{
    memset(c, 0, sizeof *c);
    resnet_model cm = {0}, pm = {0};
    sotu_tensor_table layout = {0};
    int B = run->cfg.train.batch_size;
    sotu_status st = clr_model_for_task(run->base, run->clr, run->tasks[0].classes, 1, 0, 0, &cm);
    if (st == SOTU_OK)
        st = clr_model_for_task(run->base, RESNET_CLR_NONE, run->tasks[0].classes, 1, 0, 0, &pm);
    if (st == SOTU_OK)
        st = clr_module_layout(&cm, &layout);
    if (st == SOTU_OK)
        st = resnet_set_trainable(&cm, "clr");
    if (st == SOTU_OK)
        st = resnet_set_trainable(&pm, "all");
    double full = st == SOTU_OK ? resnet_train_flops(&pm, B) : NAN;
    if (st == SOTU_OK)
        st = resnet_set_trainable(&pm, "fc");
    if (st == SOTU_OK) {
        resnet_param_counts pc = resnet_count_params(&cm);
        c->backbone = (double)pc.backbone;
        c->clr = (double)pc.clr;
        c->bn = (double)pc.bn;
        c->head = (double)pc.head;
        c->added_pct = 100.0 * (c->clr + c->bn + c->head) / c->backbone;
        c->clr_pct = 100.0 * c->clr / c->backbone;
        c->module_values = (double)layout.total;
        c->flops_ratio = resnet_train_flops(&cm, B) / full;
        c->frozen_flops_ratio = resnet_train_flops(&pm, B) / full;
    }
    double bytes = 0, s_clr = 0, s_ft = 0;
    int n_bytes = 0, n_pair = 0;
    for (int t = 0; t < run->T; t++) {
        const clr_run_task *k = &run->tasks[t];
        if (k->done[CLR_JOB_MODULE]) {
            bytes += (double)k->bytes;
            n_bytes++;
        }
        if (k->done[CLR_JOB_MODULE] && k->done[CLR_JOB_FINETUNED]) {
            s_clr += k->report[CLR_JOB_MODULE].seconds;
            s_ft += k->report[CLR_JOB_FINETUNED].seconds;
            n_pair++;
        }
    }
    c->module_bytes = n_bytes ? bytes / n_bytes : NAN;
    c->time_ratio = n_pair && s_ft > 0 ? s_clr / s_ft : NAN;
    sotu_task_table_free(&layout);
    resnet_free(&cm);
    resnet_free(&pm);
    return st;
}

static const char *method_name(clr_job_kind k)
{
    return k == CLR_JOB_MODULE ? "clr" : clr_job_kind_name(k);
}

sotu_status clr_eval_report(const clr_run *run, const double *acc, sotu_eval_report *rep)
{
    int T = run->T;
    memset(rep, 0, sizeof *rep);
    rep->T = T;
    const bool heads[SOTU_EV_N] = {[SOTU_EV_TASK_HEADS] = true};
    for (int k = 0; k < CLR_JOB_KINDS; k++) {
        if (!run->want[k])
            continue;
        sotu_eval_method *m = sotu_eval_report_add(rep, method_name((clr_job_kind)k), NAN, heads);
        if (!m)
            return SOTU_ERR_NOMEM;
        double *A = m->acc[SOTU_EV_TASK_HEADS];
        for (int j = 0; j < T; j++) {
            const clr_run_task *task = &run->tasks[j];
            if (!task->done[k])
                continue;
            double a = k == CLR_JOB_MODULE ? acc[j] : task->report[k].finetuned_acc;
            m->seconds += task->report[k].seconds;
            for (int i = j; i < T; i++)
                if (sotu_metrics_row_selected(i, T, run->cfg.eval.every))
                    A[(size_t)i * T + j] = a;
        }
        sotu_eval_method_finish(m, T);
    }
    return SOTU_OK;
}

/* ------------------------------------------------------------------------ */
/* Checkpoint                                                                */
/* ------------------------------------------------------------------------ */

static sotu_status write_task_record(hid_t tasks, const clr_run *run, int t, const double *acc,
                                     const char *path)
{
    const clr_run_task *k = &run->tasks[t];
    hid_t gcpl = sotu_h5_gcpl();
    hid_t g = gcpl >= 0 ? H5Gcreate2(tasks, run->man.tasks[t].name, H5P_DEFAULT, gcpl,
                                     H5P_DEFAULT)
                        : H5I_INVALID_HID;
    if (gcpl >= 0)
        H5Pclose(gcpl);
    if (g < 0)
        return sotu_error(SOTU_ERR_IO, "%s: cannot create /tasks/%s", path,
                          run->man.tasks[t].name);
    bool ok = k->done[CLR_JOB_MODULE];
    const struct {
        const char *name;
        double v;
    } f64[] = {
        {"finetuned_acc", ok ? k->report[CLR_JOB_MODULE].finetuned_acc : NAN},
        {"eval_acc", ok && acc ? acc[t] : NAN},
        {"frozen_acc", k->done[CLR_JOB_FROZEN] ? k->report[CLR_JOB_FROZEN].finetuned_acc : NAN},
        {"full_finetune_acc",
         k->done[CLR_JOB_FINETUNED] ? k->report[CLR_JOB_FINETUNED].finetuned_acc : NAN},
        {"train_seconds", ok ? k->report[CLR_JOB_MODULE].seconds : NAN},
    };
    sotu_status st = sotu_h5_write_int_attr(g, "index", t, path);
    if (st == SOTU_OK)
        st = sotu_h5_write_int_attr(g, "classes", k->classes, path);
    if (st == SOTU_OK)
        st = sotu_h5_write_str_attr(g, "status",
                                    ok ? "ok" : k->failed[CLR_JOB_MODULE] ? "failed" : "not_run",
                                    path);
    for (size_t i = 0; st == SOTU_OK && i < sizeof f64 / sizeof f64[0]; i++)
        st = sotu_h5_write_f64_attr(g, f64[i].name, f64[i].v, path);
    if (st == SOTU_OK)
        st = sotu_h5_write_int_attr(g, "steps", ok ? k->report[CLR_JOB_MODULE].steps : 0, path);
    if (st == SOTU_OK)
        st = sotu_h5_write_int_attr(g, "bytes", ok ? k->bytes : 0, path);
    H5Gclose(g);
    return st;
}

static sotu_status write_module(hid_t f, const clr_run *run, int t, const char *path)
{
    const clr_run_task *k = &run->tasks[t];
    sotu_tensor_table layout;
    sotu_status st = clr_run_layout(run, t, &layout);
    if (st != SOTU_OK)
        return st;
    char group[SOTU_TASK_NAME_MAX + 16];
    snprintf(group, sizeof group, "/clr/%s", run->man.tasks[t].name);
    st = sotu_weights_write_group((int64_t)f, group, &layout, k->module.values, path);
    sotu_task_table_free(&layout);
    hid_t g = st == SOTU_OK ? H5Gopen2(f, group, H5P_DEFAULT) : H5I_INVALID_HID;
    if (st == SOTU_OK && g < 0)
        st = sotu_error(SOTU_ERR_IO, "%s: cannot open %s", path, group);
    if (st == SOTU_OK)
        st = sotu_h5_write_int_attr(g, "index", t, path);
    if (st == SOTU_OK)
        st = sotu_h5_write_int_attr(g, "classes", k->classes, path);
    if (st == SOTU_OK)
        st = sotu_h5_write_int_attr(g, "num_batches_tracked", k->module.counter, path);
    if (g >= 0)
        H5Gclose(g);
    return st;
}

static hid_t new_group(hid_t f, const char *name)
{
    hid_t gcpl = sotu_h5_gcpl();
    hid_t g = gcpl >= 0 ? H5Gcreate2(f, name, H5P_DEFAULT, gcpl, H5P_DEFAULT) : H5I_INVALID_HID;
    if (gcpl >= 0)
        H5Pclose(gcpl);
    return g;
}

static const char *const figure_names[] = {"final_avg_acc", "avg_inc_acc", "forgetting", "bwt"};

static double figure(const sotu_cl_metrics *x, int k)
{
    return k == 0 ? x->final_avg_acc : k == 1 ? x->avg_inc_acc : k == 2 ? x->forgetting : x->bwt;
}

static sotu_status write_eval(hid_t f, const clr_run *run, const sotu_eval_report *rep,
                              const char *path)
{
    hid_t g = new_group(f, "/eval");
    if (g < 0)
        return sotu_error(SOTU_ERR_IO, "%s: cannot create /eval", path);
    sotu_status st = SOTU_OK;
    int64_t dims[2] = {run->T, run->T};
    for (int i = 0; st == SOTU_OK && i < rep->n_methods; i++) {
        const sotu_eval_method *m = &rep->methods[i];
        char name[64];
        if (!strcmp(m->name, "clr"))
            snprintf(name, sizeof name, "acc_matrix");
        else
            snprintf(name, sizeof name, "%s_acc_matrix", m->name);
        st = sotu_h5_write_f64_dataset(g, name, 2, dims, m->acc[SOTU_EV_TASK_HEADS], path);
        for (int k = 0; st == SOTU_OK && k < 4; k++) {
            const sotu_cl_metrics *x = &m->metrics[SOTU_EV_TASK_HEADS];
            snprintf(name, sizeof name, "%s_task_heads_%s", m->name, figure_names[k]);
            st = sotu_h5_write_f64_attr(g, name, figure(x, k), path);
            if (st == SOTU_OK && !strcmp(m->name, "clr"))
                st = sotu_h5_write_f64_attr(g, figure_names[k], figure(x, k), path);
        }
    }
    H5Gclose(g);
    return st;
}

static sotu_status write_cost(hid_t f, const clr_cost *c, const char *path)
{
    hid_t g = new_group(f, "/cost");
    if (g < 0)
        return sotu_error(SOTU_ERR_IO, "%s: cannot create /cost", path);
    const struct {
        const char *name;
        double v;
    } a[] = {{"backbone_params", c->backbone},     {"clr_params", c->clr},
             {"bn_params", c->bn},                 {"head_params", c->head},
             {"added_params_pct", c->added_pct},   {"clr_params_pct", c->clr_pct},
             {"module_values", c->module_values},  {"module_bytes", c->module_bytes},
             {"flops_ratio", c->flops_ratio},      {"frozen_flops_ratio", c->frozen_flops_ratio},
             {"time_ratio", c->time_ratio}};
    sotu_status st = SOTU_OK;
    for (size_t i = 0; st == SOTU_OK && i < sizeof a / sizeof a[0]; i++)
        st = sotu_h5_write_f64_attr(g, a[i].name, a[i].v, path);
    H5Gclose(g);
    return st;
}

static sotu_status write_body(hid_t f, const clr_run *run, const double *acc,
                              const sotu_eval_report *rep, const clr_cost *cost, const char *path)
{
    char created[40];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    sotu_status st = sotu_h5_write_str_attr(f, "format", SOTU_CLR_CHECKPOINT_FORMAT, path);
    if (st == SOTU_OK)
        st = sotu_h5_write_int_attr(f, "format_version", SOTU_CLR_CHECKPOINT_VERSION, path);
    if (st == SOTU_OK)
        st = sotu_h5_write_str_attr(f, "sotu_version", SOTU_VERSION, path);
    if (st == SOTU_OK)
        st = sotu_h5_write_str_attr(f, "created", created, path);
    if (st == SOTU_OK)
        st = sotu_h5_write_str_attr(f, "config", run->config_yaml, path);
    if (st == SOTU_OK)
        st = sotu_h5_write_str_attr(f, "method", "clr", path);
    if (st == SOTU_OK)
        st = sotu_h5_write_str_attr(f, "clr_variant", resnet_clr_name(run->clr), path);
    if (st == SOTU_OK)
        st = sotu_h5_write_provenance(f, &run->prov, run->manifest_xxh64, path);
    if (st == SOTU_OK)
        st = resnet_weights_write_config_attrs((int64_t)f, &run->base->cfg, path);
    if (st == SOTU_OK)
        st = resnet_weights_write_group((int64_t)f, "/backbone", run->base, path);
    hid_t tasks = st == SOTU_OK ? new_group(f, "/tasks") : H5I_INVALID_HID;
    if (st == SOTU_OK && tasks < 0)
        st = sotu_error(SOTU_ERR_IO, "%s: cannot create /tasks", path);
    for (int t = 0; st == SOTU_OK && t < run->T; t++) {
        st = write_task_record(tasks, run, t, acc, path);
        if (st == SOTU_OK && run->tasks[t].done[CLR_JOB_MODULE])
            st = write_module(f, run, t, path);
    }
    if (tasks >= 0)
        H5Gclose(tasks);
    if (st == SOTU_OK && rep)
        st = write_eval(f, run, rep, path);
    if (st == SOTU_OK && cost)
        st = write_cost(f, cost, path);
    return st;
}

typedef struct {
    const clr_run *run;
    const double *acc;
    const sotu_eval_report *rep;
    const clr_cost *cost;
} clr_checkpoint_content;

static sotu_status fill_checkpoint(hid_t f, const void *ctx, const char *path)
{
    const clr_checkpoint_content *c = ctx;
    return write_body(f, c->run, c->acc, c->rep, c->cost, path);
}

sotu_status clr_write_checkpoint(const clr_run *run, const char *path, const double *acc,
                                 const sotu_eval_report *rep, const clr_cost *cost)
{
    clr_checkpoint_content c = {run, acc, rep, cost};
    return sotu_h5_write_file(path ? path : run->checkpoint_path, fill_checkpoint, &c);
}

/* ------------------------------------------------------------------------ */
/* Reports and the table                                                     */
/* ------------------------------------------------------------------------ */

sotu_status clr_write_outputs(const clr_run *run, const double *acc, const sotu_eval_report *rep,
                              const clr_cost *cost, int nranks, double seconds)
{
    int T = run->T;
    sotu_status st = clr_write_checkpoint(run, NULL, acc, rep, cost);
    if (st != SOTU_OK)
        return st;
    const char **names = calloc((size_t)T, sizeof *names);
    const char **status = calloc((size_t)T, sizeof *status);
    int *classes = calloc((size_t)T, sizeof *classes);
    double *ft = calloc((size_t)T, sizeof *ft);
    if (!names || !status || !classes || !ft) {
        st = sotu_error(SOTU_ERR_NOMEM, "report of %d tasks", T);
        goto cleanup;
    }
    for (int t = 0; t < T; t++) {
        const clr_run_task *k = &run->tasks[t];
        names[t] = run->man.tasks[t].name;
        status[t] = k->done[CLR_JOB_MODULE]     ? "ok"
                    : k->failed[CLR_JOB_MODULE] ? "failed"
                                                : "not_run";
        classes[t] = k->classes;
        ft[t] = k->done[CLR_JOB_FINETUNED] ? k->report[CLR_JOB_FINETUNED].finetuned_acc : NAN;
    }
    sotu_report_cost rc = {
        .variant = resnet_clr_name(run->clr),
        .backbone = cost->backbone,
        .clr = cost->clr,
        .bn = cost->bn,
        .head = cost->head,
        .added_pct = cost->added_pct,
        .clr_pct = cost->clr_pct,
        .module_values = cost->module_values,
        .module_bytes = cost->module_bytes,
        .flops_ratio = cost->flops_ratio,
        .frozen_flops_ratio = cost->frozen_flops_ratio,
        .time_ratio = cost->time_ratio,
    };
    sotu_report_info info = {
        .title = run->dir,
        .T = T,
        .task_names = names,
        .classes = classes,
        .finetuned = ft,
        .keep = NAN,
        .collision_rate = NAN,
        .seconds = seconds,
        .ranks = nranks,
        .method = "clr",
        .status = status,
        .cost = &rc,
    };
    st = sotu_report_write(run->dir, &info, rep);
cleanup:
    free(names);
    free(status);
    free(classes);
    free(ft);
    return st;
}

static void put_acc(FILE *f, double v)
{
    if (isnan(v))
        fprintf(f, " %9s", "-");
    else
        fprintf(f, " %9.4f", v);
}

void clr_print_table(const clr_run *run, const double *acc, const clr_cost *cost, FILE *f)
{
    fprintf(f, "\n%-28s %7s %9s %9s %9s %9s %9s %8s\n", "task", "classes", "clr", "clr eval",
            "frozen", "finetuned", "bytes", "seconds");
    double sum[4] = {0};
    int n[4] = {0};
    for (int t = 0; t < run->T; t++) {
        const clr_run_task *k = &run->tasks[t];
        fprintf(f, "%-28s %7d", run->man.tasks[t].name, k->classes);
        double v[4] = {
            k->done[CLR_JOB_MODULE] ? k->report[CLR_JOB_MODULE].finetuned_acc : NAN,
            k->done[CLR_JOB_MODULE] && acc ? acc[t] : NAN,
            k->done[CLR_JOB_FROZEN] ? k->report[CLR_JOB_FROZEN].finetuned_acc : NAN,
            k->done[CLR_JOB_FINETUNED] ? k->report[CLR_JOB_FINETUNED].finetuned_acc : NAN,
        };
        for (int c = 0; c < 4; c++) {
            put_acc(f, v[c]);
            if (!isnan(v[c]))
                sum[c] += v[c], n[c]++;
        }
        if (k->done[CLR_JOB_MODULE])
            fprintf(f, " %9lld %8.1f\n", (long long)k->bytes, k->report[CLR_JOB_MODULE].seconds);
        else
            fprintf(f, " %9s %8s\n", k->failed[CLR_JOB_MODULE] ? "failed" : "not run", "-");
    }
    fprintf(f, "%-28s %7s", "mean", "");
    for (int c = 0; c < 4; c++)
        put_acc(f, n[c] ? sum[c] / n[c] : NAN);
    fputc('\n', f);
    fprintf(f, "CLR (%s) per task: %.0f CLR + %.0f BatchNorm + %.0f fc parameters = %.3f%% of the "
            "%.0f-parameter backbone (CLR layers alone %.3f%%); module %.0f values, %.0f bytes "
            "shipped on average\n", resnet_clr_name(run->clr), cost->clr, cost->bn, cost->head,
            cost->added_pct, cost->backbone, cost->clr_pct, cost->module_values,
            cost->module_bytes);
    fprintf(f, "training compute relative to full fine-tuning: %.3f (FLOPs per step)", cost->flops_ratio);
    if (!isnan(cost->time_ratio))
        fprintf(f, ", %.3f measured (job seconds)", cost->time_ratio);
    fprintf(f, "; fc only: %.3f\n", cost->frozen_flops_ratio);
}
