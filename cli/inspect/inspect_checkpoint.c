/* `sotu inspect CKPT`: a run checkpoint (io/checkpoint.h) on stdout. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"
#include "cli/commands.h"
#include "cli/inspect/inspect.h"
#include "io/checkpoint.h"

/* The last row of A with any evaluated entry, or -1. */
static int last_evaluated_row(const double *acc, int T)
{
    for (int i = T - 1; i >= 0; i--)
        for (int j = 0; j < T; j++)
            if (!isnan(acc[(size_t)i * T + j]))
                return i;
    return -1;
}

static void print_cosine_summary(const sotu_checkpoint_info *ck)
{
    int T = ck->n_tasks, n = 0;
    double sum = 0.0, max = 0.0;
    for (int i = 0; i < T; i++)
        for (int j = i + 1; j < T; j++) {
            double c = ck->cosine[(size_t)i * T + j];
            if (isnan(c))
                continue;
            sum += fabs(c);
            max = fabs(c) > max ? fabs(c) : max;
            n++;
        }
    if (n)
        printf("cosine      off-diagonal |cos| mean %.4g, max %.4g over %d pairs\n", sum / n, max,
               n);
    else
        printf("cosine      no pair of tasks measured\n");
}

static void print_accuracy_summary(const sotu_checkpoint_info *ck, int row)
{
    int T = ck->n_tasks;
    if (row >= 0) {
        double sum = 0.0;
        int n = 0;
        for (int j = 0; j < T; j++) {
            double a = ck->acc_matrix[(size_t)row * T + j];
            if (!isnan(a)) {
                sum += a;
                n++;
            }
        }
        printf("accuracy    after merging %d of %d tasks: mean %.4f over %d evaluated tasks\n",
               row + 1, T, sum / n, n);
    } else {
        printf("accuracy    not evaluated\n");
    }
    for (int i = 0; i < ck->n_summary; i++)
        printf("            %-24s %.6g\n", ck->summary_names[i], ck->summary_values[i]);
}

static void print_matrix(const char *title, const double *m, int T)
{
    printf("\n%s\n", title);
    for (int i = 0; i < T; i++) {
        printf("  %3d ", i);
        for (int j = 0; j < T; j++) {
            double v = m[(size_t)i * T + j];
            if (isnan(v))
                printf(" %7s", "-");
            else
                printf(" %7.4f", v);
        }
        printf("\n");
    }
}

int sotu_inspect_checkpoint(const char *path)
{
    sotu_checkpoint_info ck;
    sotu_status s = sotu_checkpoint_read_info(path, &ck);
    if (s != SOTU_OK)
        return sotu_cmd_fail("inspect", s);
    int T = ck.n_tasks, failed = 0, not_run = 0, left_out = 0;
    int64_t kept = 0, bytes = 0;
    for (int i = 0; i < T; i++) {
        failed += !strcmp(ck.tasks[i].status, "failed");
        not_run += !strcmp(ck.tasks[i].status, "not_run");
        left_out += !strcmp(ck.tasks[i].status, "left_out");
        if (!ck.tasks[i].failed) {
            kept += ck.tasks[i].kept_values;
            bytes += ck.tasks[i].bytes;
        }
    }
    const sotu_vit_config *c = &ck.model;
    printf("checkpoint  %s\n", path);
    printf("format      %s v%d, written by sotu %s at %s\n", SOTU_CHECKPOINT_FORMAT,
           ck.format_version, ck.sotu_version, ck.created);
    sotu_inspect_print_provenance_attrs(&ck.prov);
    printf("model       image %d, channels %d, patch %d, dim %d, depth %d, heads %d, "
           "mlp %d, classes %d\n",
           c->image_size, c->channels, c->patch, c->dim, c->depth, c->heads, c->mlp_hidden,
           c->classes);
    printf("merged      %d tensors, %lld parameters (%.2f M), keep %g\n", ck.n_merged_tensors,
           (long long)ck.merged_values, (double)ck.merged_values / 1e6, ck.keep);
    if (ck.n_keeps > 0) {
        printf("also merged at keep");
        for (int k = 0; k < ck.n_keeps; k++)
            printf("%s %g", k ? "," : "", ck.keeps[k]);
        printf(" (/keeps)\n");
    }
    printf("merge       mode %s, scale %g, collision rate %.4g\n", ck.merge_mode, ck.merge_scale,
           ck.collision_rate);
    print_cosine_summary(&ck);
    int row = last_evaluated_row(ck.acc_matrix, T);
    print_accuracy_summary(&ck, row);
    printf("tasks       %d", T);
    if (failed + not_run + left_out == 0)
        printf(" (all merged)");
    else
        printf(" (PARTIAL: %d merged; %d failed, %d not run, %d left out of the merge)",
               T - failed - not_run - left_out, failed, not_run, left_out);
    printf(", %lld kept values, %lld bytes shipped", (long long)kept, (long long)bytes);
    if (kept > 0)
        printf(", %.3f bytes per kept value", (double)bytes / (double)kept);
    printf("\n\n%4s  %-24s %7s %8s %12s %10s %8s %9s %9s %8s  %s\n", "#", "task", "classes",
           "keep", "kept values", "bytes", "B/value", "ft acc", "merged", "train s", "status");
    for (int i = 0; i < T; i++) {
        const sotu_checkpoint_task_info *t = &ck.tasks[i];
        char bpv[16] = "-", ft[16] = "-", merged[16] = "-";
        if (t->kept_values > 0)
            snprintf(bpv, sizeof bpv, "%.3f", (double)t->bytes / (double)t->kept_values);
        if (!isnan(t->finetuned_acc))
            snprintf(ft, sizeof ft, "%.4f", t->finetuned_acc);
        if (row >= 0 && !isnan(ck.acc_matrix[(size_t)row * T + i]))
            snprintf(merged, sizeof merged, "%.4f", ck.acc_matrix[(size_t)row * T + i]);
        printf("%4d  %-24s %7d %8.4g %12lld %10lld %8s %9s %9s %8.1f  %s%s\n", i, t->name,
               t->classes, t->keep, (long long)t->kept_values, (long long)t->bytes, bpv, ft,
               merged, t->train_seconds, t->status,
               t->head_weight ? "" : " (no head)");
    }
    if (sotu_log_get_level() >= SOTU_LOG_DEBUG) {
        print_matrix("cosine of masked deltas (task x task)", ck.cosine, T);
        print_matrix("accuracy matrix A[i][j] (after merging 0..i, on task j)", ck.acc_matrix, T);
        printf("\nconfig\n%s\n", ck.config_yaml);
    }
    sotu_checkpoint_info_free(&ck);
    printf("\n");
    if ((s = sotu_inspect_checksums(path)) != SOTU_OK)
        return sotu_cmd_fail("inspect", s);
    return SOTU_EXIT_OK;
}
