#include "coordinator/sweep.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static const sotu_sweep_result *rank_res;

static int by_accuracy(const void *a, const void *b)
{
    int pa = *(const int *)a, pb = *(const int *)b;
    double xa = rank_res[pa].val_acc, xb = rank_res[pb].val_acc; /* never the test figure */
    if (isnan(xa) != isnan(xb))
        return isnan(xa) ? 1 : -1;
    if (!isnan(xa) && xa != xb)
        return xa > xb ? -1 : 1;
    return (pa > pb) - (pa < pb);
}

/* Point indices, best first. */
static int *ranking(const sotu_sweep *sw, const sotu_sweep_result *res)
{
    int *order = malloc(sizeof(int) * (size_t)sw->n_points);
    if (!order)
        return NULL;
    for (int p = 0; p < sw->n_points; p++)
        order[p] = p;
    rank_res = res; /* qsort has no context argument in C11 */
    qsort(order, (size_t)sw->n_points, sizeof(int), by_accuracy);
    rank_res = NULL;
    return order;
}

void sotu_sweep_print_ranking(const sotu_sweep *sw, const sotu_sweep_result *res, FILE *f)
{
    int *order = ranking(sw, res);
    if (!order)
        return;
    fprintf(f, "| rank | point |");
    for (int a = 0; a < sw->n_axes; a++)
        fprintf(f, " %s |", sw->axes[a].key);
    fprintf(f, " merged val acc | merged test acc | fine-tuned val acc | fine-tuned test acc "
               "| tasks |\n|---:|---|");
    for (int a = 0; a < sw->n_axes; a++)
        fprintf(f, "---:|");
    fprintf(f, "---:|---:|---:|---:|---:|\n");
    for (int r = 0; r < sw->n_points; r++) {
        int p = order[r];
        fprintf(f, "| %d | %s |", r + 1, sw->points[p].label);
        for (int a = 0; a < sw->n_axes; a++)
            fprintf(f, " %s |", sw->points[p].values[a]);
        fprintf(f, " %.4f | %.4f | %.4f | %.4f | %d/%d |\n", res[p].val_acc, res[p].merged_acc,
                res[p].finetuned_val_acc, res[p].finetuned_acc, res[p].tasks_done, res[p].tasks);
    }
    free(order);
}

sotu_status sotu_sweep_write_summary(const sotu_sweep *sw, const sotu_sweep_result *res)
{
    int *order = ranking(sw, res);
    if (!order)
        return sotu_error(SOTU_ERR_NOMEM, "sweep summary of %d points", sw->n_points);
    char path[SOTU_PATH_MAX + 16];
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    sotu_status st = SOTU_OK;
    if (f) {
        fprintf(f, "rank,point");
        for (int a = 0; a < sw->n_axes; a++)
            fprintf(f, ",%s", sw->axes[a].key);
        fprintf(f, ",merged_val_acc,merged_acc,finetuned_val_acc,finetuned_acc,tasks_done,tasks,"
                   "checkpoint\n");
        for (int r = 0; r < sw->n_points; r++) {
            int p = order[r];
            fprintf(f, "%d,%s", r + 1, sw->points[p].label);
            for (int a = 0; a < sw->n_axes; a++)
                fprintf(f, ",%s", sw->points[p].values[a]);
            fprintf(f, ",%.6f,%.6f,%.6f,%.6f,%d,%d,%s\n", res[p].val_acc, res[p].merged_acc,
                    res[p].finetuned_val_acc, res[p].finetuned_acc, res[p].tasks_done,
                    res[p].tasks, res[p].checkpoint);
        }
        fclose(f);
    }
    sotu_path_join(path, sizeof path, sw->dir, "sweep.csv");
    st = write_stream(path, f ? text : NULL, n);

    text = NULL;
    n = 0;
    f = st == SOTU_OK ? open_memstream(&text, &n) : NULL;
    if (f) {
        fprintf(f, "## Sweep\n\n%d points", sw->n_points);
        if (sw->n_groups < sw->n_points)
            fprintf(f, " in %d training groups (points differing only in merge-time keys "
                    "share their training)", sw->n_groups);
        bool any_val = false;
        for (int p = 0; p < sw->n_points; p++)
            any_val |= !isnan(res[p].val_acc);
        if (any_val)
            fprintf(f, ", ranked by mean merged task-head accuracy on the validation hold-outs "
                       "(data.val_fraction); test accuracy is reported, never used to rank.\n\n");
        else
            fprintf(f, ", NOT ranked: no validation hold-out (data.val_fraction = 0), and test "
                       "accuracy is never used to rank.\n\n");
        sotu_sweep_print_ranking(sw, res, f);
        fclose(f);
    }
    if (st == SOTU_OK) {
        sotu_path_join(path, sizeof path, sw->dir, "sweep.md");
        st = write_stream(path, f ? text : NULL, n);
    }
    free(order);
    return st;
}
