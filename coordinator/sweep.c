#include "coordinator/sweep.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/sweep_internal.h"
#include "coordinator/sweep_report.h"
#include "io/fsutil.h"

static const char *const merge_time_keys[] = {"sotu.keep", "merge.mode", "merge.scale"};

bool sotu_sweep_key_is_merge_time(const char *key)
{
    for (size_t i = 0; i < sizeof merge_time_keys / sizeof merge_time_keys[0]; i++)
        if (!strcmp(key, merge_time_keys[i]))
            return true;
    return false;
}

double sotu_sweep_keep_ship(const sotu_config *cfg, int n_tasks)
{
    bool masked = !strcmp(cfg->sotu.tuning, "masked"); /* masks cut training: no keep 1 */
    for (int b = 0; b < cfg->eval.n_baselines && !masked; b++)
        if (!strcmp(cfg->eval.baselines[b], "dense"))
            return 1.0;
    if (cfg->sotu.n_keep == 0)
        return 1.0 / n_tasks;
    double ship = 0;
    for (int k = 0; k < cfg->sotu.n_keep; k++)
        if (cfg->sotu.keep[k] > ship)
            ship = cfg->sotu.keep[k];
    return ship;
}

void sotu_sweep_free(sotu_sweep *sw)
{
    if (!sw)
        return;
    free(sw->points);
    free(sw->groups);
    memset(sw, 0, sizeof *sw);
}

/* "train.lr" + "3e-4" -> "_lr3e-4": the key's last part, the value with
 * characters unsafe in a file name replaced. */
static void label_append(char *label, size_t cap, const char *key, const char *value)
{
    const char *dot = strrchr(key, '.');
    size_t len = strlen(label);
    snprintf(label + len, cap - len, "_%s", dot ? dot + 1 : key);
    len = strlen(label);
    for (const char *v = value; *v && len + 1 < cap; v++) {
        char ch = *v;
        bool safe = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '+';
        label[len++] = safe ? ch : '_';
    }
    label[len] = '\0';
}

static sotu_status set_value(sotu_config *cfg, const char *key, const char *value)
{
    char assignment[sizeof ((sotu_sweep_axis *)0)->key + sizeof ((sotu_sweep_axis *)0)->values[0] + 2];
    snprintf(assignment, sizeof assignment, "%s=%s", key, value);
    sotu_status st = sotu_config_set(cfg, assignment);
    if (st != SOTU_OK)
        return sotu_error_context(st, "sweep.%s", key);
    return SOTU_OK;
}

/* The point's keep as a list [keep, ship] (just [ship] when they agree), so
 * that its run directory loads the group's deltas. */
static sotu_status set_keeps(sotu_config *cfg, double keep, double ship)
{
    char v[96];
    if (fabs(keep - ship) <= 1e-12 * ship)
        snprintf(v, sizeof v, "[%.17g]", ship);
    else
        snprintf(v, sizeof v, "[%.17g, %.17g]", keep, ship);
    return set_value(cfg, "sotu.keep", v);
}

sotu_status sotu_sweep_expand(const sotu_config *cfg, int n_tasks, sotu_sweep *sw)
{
    memset(sw, 0, sizeof *sw);
    snprintf(sw->dir, sizeof sw->dir, "%s", cfg->output.dir);
    sw->rank_by = sotu_eval_classifier_index(cfg->eval.rank_by);
    if (sw->rank_by < 0)
        return sotu_error(SOTU_ERR_CONFIG, "eval.rank_by: \"%s\" is not a classifier",
                          cfg->eval.rank_by);
    sw->active = cfg->n_sweep > 0;
    sw->n_axes = cfg->n_sweep;
    memcpy(sw->axes, cfg->sweep, sizeof cfg->sweep[0] * (size_t)cfg->n_sweep);
    long n = 1;
    for (int a = 0; a < sw->n_axes; a++) {
        n *= sw->axes[a].n_values;
        if (n > SOTU_SWEEP_POINTS_MAX)
            return sotu_error(SOTU_ERR_CONFIG, "%s: sweep: more than %d points",
                              cfg->source_path[0] ? cfg->source_path : "--set",
                              SOTU_SWEEP_POINTS_MAX);
    }
    sw->n_points = (int)n;
    sw->points = calloc((size_t)n, sizeof *sw->points);
    sw->groups = calloc((size_t)n, sizeof *sw->groups);
    char (*train_key)[SOTU_SWEEP_MAX * 64] = calloc((size_t)n, sizeof *train_key);
    double *keep = calloc((size_t)n, sizeof *keep);
    sotu_status st = SOTU_OK;
    if (!sw->points || !sw->groups || !train_key || !keep) {
        st = sotu_error(SOTU_ERR_NOMEM, "sweep of %ld points", n);
        goto cleanup;
    }

    for (int p = 0; p < sw->n_points; p++) {
        sotu_sweep_point *pt = &sw->points[p];
        pt->cfg = *cfg;
        pt->cfg.n_sweep = 0;
        if (sw->active)
            snprintf(pt->label, sizeof pt->label, "p%02d", p);
        int rest = p;
        for (int a = sw->n_axes - 1; a >= 0; a--) {
            const sotu_sweep_axis *ax = &sw->axes[a];
            snprintf(pt->values[a], sizeof pt->values[a], "%s", ax->values[rest % ax->n_values]);
            rest /= ax->n_values;
        }
        for (int a = 0; a < sw->n_axes; a++) {
            const sotu_sweep_axis *ax = &sw->axes[a];
            if ((st = set_value(&pt->cfg, ax->key, pt->values[a])) != SOTU_OK)
                goto cleanup;
            label_append(pt->label, sizeof pt->label, ax->key, pt->values[a]);
        }
        /* Masked tuning trains only the keep's own mask: there sotu.keep
         * decides the training, so each keep is a group of its own. */
        bool masked = !strcmp(pt->cfg.sotu.tuning, "masked");
        for (int a = 0; a < sw->n_axes; a++) {
            const char *key = sw->axes[a].key;
            if (!sotu_sweep_key_is_merge_time(key) || (masked && !strcmp(key, "sotu.keep"))) {
                size_t len = strlen(train_key[p]);
                snprintf(train_key[p] + len, sizeof train_key[p] - len, "%s\n", pt->values[a]);
            }
        }
        if ((st = sotu_config_validate(&pt->cfg)) != SOTU_OK)
            goto cleanup;
        keep[p] = pt->cfg.sotu.n_keep ? pt->cfg.sotu.keep[0] : 1.0 / n_tasks;
        if (sw->active)
            sotu_path_join(pt->cfg.output.dir, sizeof pt->cfg.output.dir, sw->dir, "points");
        if (sw->active) {
            char dir[SOTU_PATH_MAX];
            snprintf(dir, sizeof dir, "%s", pt->cfg.output.dir);
            sotu_path_join(pt->cfg.output.dir, sizeof pt->cfg.output.dir, dir, pt->label);
        }

        /* The frozen baseline trains heads by train.* alone: sotu.* keys
         * (tuning, keep, merge) leave it as it is. */
        pt->frozen_group = p;
        for (int q = 0; q < p && pt->frozen_group == p; q++) {
            bool same = true;
            for (int a = 0; a < sw->n_axes && same; a++)
                same = !strncmp(sw->axes[a].key, "sotu.", 5) ||
                       !strcmp(sw->points[q].values[a], pt->values[a]);
            if (same)
                pt->frozen_group = sw->points[q].frozen_group;
        }

        int g = 0;
        while (g < sw->n_groups && strcmp(train_key[sw->groups[g].first_point], train_key[p]))
            g++;
        if (g == sw->n_groups) {
            sw->groups[g].first_point = p;
            sw->n_groups++;
        }
        pt->group = g;
        sw->groups[g].n_points++;
    }

    /* A group ships at its largest keep; only sweeps of sotu.keep change a
     * point's keep list (a configured list stays as written). */
    bool keep_axis = false;
    for (int a = 0; a < sw->n_axes; a++)
        keep_axis |= !strcmp(sw->axes[a].key, "sotu.keep");
    for (int p = 0; p < sw->n_points; p++) {
        sotu_sweep_group *g = &sw->groups[sw->points[p].group];
        double ship = sotu_sweep_keep_ship(&sw->points[p].cfg, n_tasks);
        if (ship > g->keep_ship)
            g->keep_ship = ship;
    }
    for (int p = 0; keep_axis && p < sw->n_points; p++)
        if ((st = set_keeps(&sw->points[p].cfg, keep[p],
                            sw->groups[sw->points[p].group].keep_ship)) != SOTU_OK)
            goto cleanup;

cleanup:
    free(train_key);
    free(keep);
    if (st != SOTU_OK)
        sotu_sweep_free(sw);
    return st;
}

static sotu_status write_stream(const char *path, char *text, size_t n)
{
    sotu_status st = text ? sotu_write_file_atomic(path, text, n)
                          : sotu_error(SOTU_ERR_NOMEM, "%s: cannot format the summary", path);
    free(text);
    return st;
}

sotu_status sotu_sweep_write_config(const sotu_sweep *sw, const sotu_config *cfg)
{
    char path[SOTU_PATH_MAX + 16];
    sotu_status st = sotu_mkdirs(sw->dir);
    if (st != SOTU_OK)
        return st;
    sotu_path_join(path, sizeof path, sw->dir, "sweep.yaml");
    char *text = sotu_config_to_yaml(cfg);
    return write_stream(path, text, text ? strlen(text) : 0);
}

sotu_status sotu_sweep_prepare_group(const sotu_sweep *sw, int g)
{
    const sotu_sweep_point *first = &sw->points[sw->groups[g].first_point];
    char deltas[SOTU_PATH_MAX + 16];
    sotu_path_join(deltas, sizeof deltas, first->cfg.output.dir, "deltas");
    sotu_status st = sotu_mkdirs(deltas);
    for (int p = 0; st == SOTU_OK && p < sw->n_points; p++) {
        const sotu_sweep_point *pt = &sw->points[p];
        if (pt->group != g || pt == first)
            continue;
        if ((st = sotu_mkdirs(pt->cfg.output.dir)) != SOTU_OK)
            break;
        char link[SOTU_PATH_MAX + 16], target[sizeof first->label + 16];
        sotu_path_join(link, sizeof link, pt->cfg.output.dir, "deltas");
        snprintf(target, sizeof target, "../%s/deltas", first->label);
        if (symlink(target, link) != 0 && errno != EEXIST)
            st = sotu_error(SOTU_ERR_IO, "%s: cannot link to %s (the deltas of point %s): %s",
                            link, target, first->label, strerror(errno));
    }
    return st;
}

double sotu_sweep_rank_value(const sotu_sweep *sw, const sotu_sweep_result *r)
{
    return r->cls_val[sw->rank_by]; /* [SOTU_EV_TASK_HEADS] is val_acc */
}

static const sotu_sweep *rank_sw;
static const sotu_sweep_result *rank_res;

static int by_accuracy(const void *a, const void *b)
{
    int pa = *(const int *)a, pb = *(const int *)b;
    double xa = sotu_sweep_rank_value(rank_sw, &rank_res[pa]), /* never the test figure */
           xb = sotu_sweep_rank_value(rank_sw, &rank_res[pb]);
    if (isnan(xa) != isnan(xb))
        return isnan(xa) ? 1 : -1;
    if (!isnan(xa) && xa != xb)
        return xa > xb ? -1 : 1;
    return (pa > pb) - (pa < pb);
}

/* True when some point has the ranking figure: without, nothing is ranked
 * (the points keep their order). */
static bool has_val(const sotu_sweep *sw, const sotu_sweep_result *res)
{
    for (int p = 0; p < sw->n_points; p++)
        if (!isnan(sotu_sweep_rank_value(sw, &res[p])))
            return true;
    return false;
}

/* Point indices, best first. */
static int *ranking(const sotu_sweep *sw, const sotu_sweep_result *res)
{
    int *order = malloc(sizeof(int) * (size_t)sw->n_points);
    if (!order)
        return NULL;
    for (int p = 0; p < sw->n_points; p++)
        order[p] = p;
    rank_sw = sw; /* qsort has no context argument in C11 */
    rank_res = res;
    qsort(order, (size_t)sw->n_points, sizeof(int), by_accuracy);
    rank_sw = NULL;
    rank_res = NULL;
    return order;
}

/* The classifiers of the summary, in its column order, and their headings:
 * task_heads (the trained heads), ridge_til (heads refit on the merged
 * features), ncm_til, then the class-incremental ncm and ridge. */
static const int sum_cls[] = {SOTU_EV_TASK_HEADS, SOTU_EV_RIDGE_TIL, SOTU_EV_NCM_TIL, SOTU_EV_NCM,
                              SOTU_EV_RIDGE};
enum { N_SUM_CLS = sizeof sum_cls / sizeof sum_cls[0] };
_Static_assert((int)N_SUM_CLS == (int)SOTU_SWEEP_N_CLS, "sweep_internal.h");
static const char *const sum_title[] = {"task heads", "refit heads (ridge_til)", "ncm_til",
                                        "NCM (CIL)", "ridge (CIL)"};

/* The numeric columns of a point, one name each (CSV) and its value: 4 per
 * classifier (final first), the frozen finals, the validation figures
 * (<classifier>_val), the rest. */
enum { N_FIG = 6 * N_SUM_CLS + 7 };

static void figures(const sotu_sweep_result *r, double v[N_FIG], char names[N_FIG][40])
{
    int n = 0;
    for (int k = 0; k < N_SUM_CLS; k++) {
        int c = sum_cls[k];
        const char *cn = sotu_eval_classifier_name(c);
        snprintf(names[n], 40, "%s_final", cn);
        v[n++] = r->final_acc[c];
        snprintf(names[n], 40, "%s_avg_inc", cn);
        v[n++] = r->inc_acc[c];
        snprintf(names[n], 40, "%s_forgetting", cn);
        v[n++] = r->forgetting[c];
        snprintf(names[n], 40, "%s_bwt", cn);
        v[n++] = r->bwt[c];
    }
    for (int k = 0; k < N_SUM_CLS; k++) {
        snprintf(names[n], 40, "frozen_%s_final", sotu_eval_classifier_name(sum_cls[k]));
        v[n++] = r->frozen_final[sum_cls[k]];
    }
    for (int k = 0; k < N_SUM_CLS; k++) {
        snprintf(names[n], 40, "%s_val", sotu_eval_classifier_name(sum_cls[k]));
        v[n++] = r->cls_val[sum_cls[k]];
    }
    const char *rest[] = {"merged_acc", "finetuned_acc", "val_acc", "bytes_per_task",
                          "kept_per_task", "train_seconds", "eval_seconds"};
    double rv[] = {r->merged_acc, r->finetuned_acc, r->val_acc, r->bytes_per_task,
                   r->kept_per_task, r->train_seconds, r->eval_seconds};
    for (int k = 0; k < 7; k++) {
        snprintf(names[n], 40, "%s", rest[k]);
        v[n++] = rv[k];
    }
}

/* The figures sweep.csv puts first, after the axes. */
static bool first_column(const char *name)
{
    return !strcmp(name, "merged_acc") || !strcmp(name, "finetuned_acc") ||
           !strcmp(name, "val_acc");
}

static void put_fig(FILE *f, double v, const char *fmt, const char *nan)
{
    if (isnan(v))
        fputs(nan, f);
    else
        fprintf(f, fmt, v);
}

/* Seed axes: keys whose last part ends in "seed". */
static bool is_seed_axis(const sotu_sweep_axis *ax)
{
    size_t n = strlen(ax->key);
    return n >= 4 && !strcmp(ax->key + n - 4, "seed");
}

/* agg[p]: the index of the first point with p's values on every non-seed
 * axis (p's seed group); returns the number of seed axes. */
static int seed_groups(const sotu_sweep *sw, int *agg)
{
    int n_seed = 0;
    for (int a = 0; a < sw->n_axes; a++)
        n_seed += is_seed_axis(&sw->axes[a]);
    for (int p = 0; p < sw->n_points; p++) {
        agg[p] = p;
        for (int q = 0; q < p; q++) {
            bool same = true;
            for (int a = 0; a < sw->n_axes && same; a++)
                same = is_seed_axis(&sw->axes[a]) ||
                       !strcmp(sw->points[p].values[a], sw->points[q].values[a]);
            if (same) {
                agg[p] = q;
                break;
            }
        }
    }
    return n_seed;
}

/* Mean and sample standard deviation of figure k over the seed group of
 * point g; *n the points with a value. */
static void seed_stats(const sotu_sweep *sw, const sotu_sweep_result *res, const int *agg, int g,
                       int k, double *mean, double *sd, int *n)
{
    double s = 0, s2 = 0;
    *n = 0;
    for (int p = 0; p < sw->n_points; p++) {
        if (agg[p] != g)
            continue;
        double v[N_FIG];
        char names[N_FIG][40];
        figures(&res[p], v, names);
        if (isnan(v[k]))
            continue;
        s += v[k];
        (*n)++;
    }
    *mean = *n ? s / *n : NAN;
    for (int p = 0; *n && p < sw->n_points; p++) {
        if (agg[p] != g)
            continue;
        double v[N_FIG];
        char names[N_FIG][40];
        figures(&res[p], v, names);
        if (!isnan(v[k]))
            s2 += (v[k] - *mean) * (v[k] - *mean);
    }
    *sd = *n > 1 ? sqrt(s2 / (*n - 1)) : NAN;
}

/* What ranks the points, in words (sweep.md, report.html). */
static void rank_basis(const sotu_sweep *sw, const sotu_sweep_result *res, char *buf, size_t cap)
{
    static const char *const how[SOTU_EV_N] = {
        [SOTU_EV_NCM] = "NCM, class-incremental over every class merged",
        [SOTU_EV_RIDGE] = "ridge (RanPAC), class-incremental over every class merged",
        [SOTU_EV_NCM_TIL] = "NCM within each task's classes",
        [SOTU_EV_RIDGE_TIL] = "ridge within each task's classes: the refit heads"};
    const char *name = sotu_eval_classifier_name(sw->rank_by);
    if (!has_val(sw, res))
        snprintf(buf, cap, "nothing: this run has no %s validation figure (eval.rank_by: %s; no "
                 "validation hold-out with data.val_fraction = 0), and test accuracy is never "
                 "used to rank; the points are in their order", name, name);
    else if (sw->rank_by == SOTU_EV_TASK_HEADS)
        snprintf(buf, cap, "mean merged task-head accuracy on the validation hold-outs "
                 "(data.val_fraction; eval.rank_by: task_heads, column merged_val_acc); test "
                 "accuracy is reported, never used to rank");
    else
        snprintf(buf, cap, "the merge's %s accuracy on the validation hold-outs (data.val_fraction;"
                 " eval.rank_by: %s, column %s_val; %s, fitted on the fitting images only), mean "
                 "over the tasks; test accuracy is reported, never used to rank", name, name,
                 name, how[sw->rank_by]);
}

void sotu_sweep_print_ranking(const sotu_sweep *sw, const sotu_sweep_result *res, FILE *f)
{
    int *order = ranking(sw, res);
    if (!order)
        return;
    bool own = sw->rank_by != SOTU_EV_TASK_HEADS; /* a column of its own */
    fprintf(f, "| rank | point |");
    for (int a = 0; a < sw->n_axes; a++)
        fprintf(f, " %s |", sw->axes[a].key);
    if (own)
        fprintf(f, " %s val acc (ranks) |", sotu_eval_classifier_name(sw->rank_by));
    fprintf(f, " merged val acc | merged test acc | fine-tuned val acc | fine-tuned test acc "
               "| tasks |\n|---:|---|");
    for (int a = 0; a < sw->n_axes + own; a++)
        fprintf(f, "---:|");
    fprintf(f, "---:|---:|---:|---:|---:|\n");
    for (int r = 0; r < sw->n_points; r++) {
        int p = order[r];
        fprintf(f, "| %d | %s |", r + 1, sw->points[p].label);
        for (int a = 0; a < sw->n_axes; a++)
            fprintf(f, " %s |", sw->points[p].values[a]);
        if (own)
            fprintf(f, " %.4f |", res[p].cls_val[sw->rank_by]);
        fprintf(f, " %.4f | %.4f | %.4f | %.4f | %d/%d |\n", res[p].val_acc, res[p].merged_acc,
                res[p].finetuned_val_acc, res[p].finetuned_acc, res[p].tasks_done, res[p].tasks);
    }
    free(order);
}

/* sweep.md's comparison: per point (ranked) final / average incremental
 * accuracy of every classifier, the frozen backbone's final accuracy,
 * forgetting and BWT of task heads and ridge, bytes, kept values and
 * seconds. */
static void print_comparison(const sotu_sweep *sw, const sotu_sweep_result *res, const int *order,
                             FILE *f)
{
    fprintf(f, "\n### Every classifier (SoTU final / average incremental accuracy; frozen "
               "backbone's final in brackets)\n\n| point |");
    for (int k = 0; k < N_SUM_CLS; k++)
        fprintf(f, " %s |", sum_title[k]);
    fprintf(f, " forgetting / BWT (task heads) | forgetting / BWT (ridge CIL) | bytes per task | "
               "kept per task | training s | evaluation s |\n|---|");
    for (int k = 0; k < N_SUM_CLS + 6; k++)
        fprintf(f, "---:|");
    fputc('\n', f);
    for (int r = 0; r < sw->n_points; r++) {
        const sotu_sweep_result *x = &res[order[r]];
        fprintf(f, "| %s |", sw->points[order[r]].label);
        for (int k = 0; k < N_SUM_CLS; k++) {
            int c = sum_cls[k];
            fputc(' ', f);
            put_fig(f, x->final_acc[c], "%.4f", "-");
            fputs(" / ", f);
            put_fig(f, x->inc_acc[c], "%.4f", "-");
            put_fig(f, x->frozen_final[c], " (%.4f)", "");
            fputs(" |", f);
        }
        const int fb[] = {SOTU_EV_TASK_HEADS, SOTU_EV_RIDGE};
        for (int k = 0; k < 2; k++) {
            fputc(' ', f);
            put_fig(f, x->forgetting[fb[k]], "%.4f", "-");
            fputs(" / ", f);
            put_fig(f, x->bwt[fb[k]], "%.4f", "-");
            fputs(" |", f);
        }
        fputc(' ', f);
        put_fig(f, x->bytes_per_task, "%.0f", "-");
        fputs(" | ", f);
        put_fig(f, x->kept_per_task, "%.0f", "-");
        fputs(" | ", f);
        put_fig(f, x->train_seconds, "%.1f", "-");
        fputs(" | ", f);
        put_fig(f, x->eval_seconds, "%.1f", "-");
        fputs(" |\n", f);
    }
}

/* The seed aggregate table (Markdown). */
static void print_seeds(const sotu_sweep *sw, const sotu_sweep_result *res, const int *agg,
                        FILE *f)
{
    double v[N_FIG];
    char names[N_FIG][40];
    figures(&res[0], v, names);
    fprintf(f, "\n### Over seeds (mean ± std over the points that differ only in a seed axis)"
               "\n\n| first point | seeds |");
    for (int a = 0; a < sw->n_axes; a++)
        if (!is_seed_axis(&sw->axes[a]))
            fprintf(f, " %s |", sw->axes[a].key);
    for (int k = 0; k < N_SUM_CLS; k++)
        fprintf(f, " %s final |", sum_title[k]);
    fprintf(f, "\n|---|---:|");
    for (int a = 0; a < sw->n_axes; a++)
        if (!is_seed_axis(&sw->axes[a]))
            fprintf(f, "---:|");
    for (int k = 0; k < N_SUM_CLS; k++)
        fprintf(f, "---:|");
    fputc('\n', f);
    for (int g = 0; g < sw->n_points; g++) {
        if (agg[g] != g)
            continue;
        fprintf(f, "| %s | %d |", sw->points[g].label, sotu_sweep_seed_group_size(sw, agg, g));
        for (int a = 0; a < sw->n_axes; a++)
            if (!is_seed_axis(&sw->axes[a]))
                fprintf(f, " %s |", sw->points[g].values[a]);
        for (int k = 0; k < N_SUM_CLS; k++) {
            double mean, sd;
            int n;
            seed_stats(sw, res, agg, g, 4 * k, &mean, &sd, &n);
            fputc(' ', f);
            put_fig(f, mean, "%.4f", "-");
            put_fig(f, sd, " ± %.4f", "");
            fputs(" |", f);
        }
        fputc('\n', f);
    }
}

static void csv_values(FILE *f, const double *v, int n)
{
    for (int k = 0; k < n; k++) {
        fputc(',', f);
        put_fig(f, v[k], "%.6g", "");
    }
}

sotu_status sotu_sweep_write_summary(const sotu_sweep *sw, const sotu_sweep_result *res)
{
    int *order = ranking(sw, res);
    int *agg = malloc(sizeof(int) * (size_t)sw->n_points);
    if (!order || !agg) {
        free(order);
        free(agg);
        return sotu_error(SOTU_ERR_NOMEM, "sweep summary of %d points", sw->n_points);
    }
    int n_seed = seed_groups(sw, agg);
    char path[SOTU_PATH_MAX + 16];
    char *text = NULL;
    size_t n = 0;
    double v[N_FIG];
    char names[N_FIG][40];
    FILE *f = open_memstream(&text, &n);
    sotu_status st = SOTU_OK;
    if (f) {
        fprintf(f, "rank,point");
        for (int a = 0; a < sw->n_axes; a++)
            fprintf(f, ",%s", sw->axes[a].key);
        fprintf(f, ",merged_val_acc,merged_acc,finetuned_val_acc,finetuned_acc,tasks_done,tasks,"
                   "checkpoint");
        figures(&res[0], v, names);
        for (int k = 0; k < N_FIG; k++) /* the first four came first */
            if (!first_column(names[k]))
                fprintf(f, ",%s", names[k]);
        fputc('\n', f);
        for (int r = 0; r < sw->n_points; r++) {
            int p = order[r];
            fprintf(f, "%d,%s", r + 1, sw->points[p].label);
            for (int a = 0; a < sw->n_axes; a++)
                fprintf(f, ",%s", sw->points[p].values[a]);
            fprintf(f, ",%.6f,%.6f,%.6f,%.6f,%d,%d,%s", res[p].val_acc, res[p].merged_acc,
                    res[p].finetuned_val_acc, res[p].finetuned_acc, res[p].tasks_done,
                    res[p].tasks, res[p].checkpoint);
            figures(&res[p], v, names);
            for (int k = 0; k < N_FIG; k++)
                if (!first_column(names[k]))
                    csv_values(f, &v[k], 1);
            fputc('\n', f);
        }
        fclose(f);
    }
    sotu_path_join(path, sizeof path, sw->dir, "sweep.csv");
    st = write_stream(path, f ? text : NULL, n);

    if (st == SOTU_OK && n_seed) {
        text = NULL;
        n = 0;
        f = open_memstream(&text, &n);
        if (f) {
            fprintf(f, "point,seeds");
            for (int a = 0; a < sw->n_axes; a++)
                if (!is_seed_axis(&sw->axes[a]))
                    fprintf(f, ",%s", sw->axes[a].key);
            figures(&res[0], v, names);
            for (int k = 0; k < N_FIG; k++)
                fprintf(f, ",%s_mean,%s_std", names[k], names[k]);
            fputc('\n', f);
            for (int g = 0; g < sw->n_points; g++) {
                if (agg[g] != g)
                    continue;
                fprintf(f, "%s,%d", sw->points[g].label, sotu_sweep_seed_group_size(sw, agg, g));
                for (int a = 0; a < sw->n_axes; a++)
                    if (!is_seed_axis(&sw->axes[a]))
                        fprintf(f, ",%s", sw->points[g].values[a]);
                for (int k = 0; k < N_FIG; k++) {
                    double mean, sd;
                    int cnt;
                    seed_stats(sw, res, agg, g, k, &mean, &sd, &cnt);
                    csv_values(f, &mean, 1);
                    csv_values(f, &sd, 1);
                }
                fputc('\n', f);
            }
            fclose(f);
        }
        sotu_path_join(path, sizeof path, sw->dir, "sweep_seeds.csv");
        st = write_stream(path, f ? text : NULL, n);
    }

    text = NULL;
    n = 0;
    f = st == SOTU_OK ? open_memstream(&text, &n) : NULL;
    if (f) {
        fprintf(f, "## Sweep\n\n%d points", sw->n_points);
        if (sw->n_groups < sw->n_points)
            fprintf(f, " in %d training groups (points differing only in merge-time keys "
                    "share their training)", sw->n_groups);
        char basis[512];
        rank_basis(sw, res, basis, sizeof basis);
        fprintf(f, ", ranked by %s.\n\n", basis);
        sotu_sweep_print_ranking(sw, res, f);
        print_comparison(sw, res, order, f);
        if (n_seed)
            print_seeds(sw, res, agg, f);
        fclose(f);
    }
    if (st == SOTU_OK) {
        sotu_path_join(path, sizeof path, sw->dir, "sweep.md");
        st = write_stream(path, f ? text : NULL, n);
    }

    text = NULL;
    n = 0;
    f = st == SOTU_OK ? open_memstream(&text, &n) : NULL;
    if (f) {
        char basis[512];
        rank_basis(sw, res, basis, sizeof basis);
        sotu_sweep_report_write(f, sw, res, order, n_seed ? agg : NULL, basis);
        fclose(f);
    }
    if (st == SOTU_OK) {
        sotu_path_join(path, sizeof path, sw->dir, "report.html");
        st = write_stream(path, f ? text : NULL, n);
    }
    free(order);
    free(agg);
    return st;
}

int sotu_sweep_summary_classifier(int k, const char **title)
{
    *title = sum_title[k];
    return sum_cls[k];
}

int sotu_sweep_seed_group_size(const sotu_sweep *sw, const int *agg, int g)
{
    int n = 0;
    for (int p = 0; p < sw->n_points; p++)
        n += agg[p] == g;
    return n;
}

void sotu_sweep_seed_final(const sotu_sweep *sw, const sotu_sweep_result *res, const int *agg,
                           int g, int k, double *mean, double *sd)
{
    int n;
    seed_stats(sw, res, agg, g, 4 * k, mean, sd, &n); /* figures(): 4 per classifier, final first */
}
