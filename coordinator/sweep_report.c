#include "coordinator/sweep_report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/sweep_internal.h"
#include "eval/report.h"
#include "eval/report_svg.h"

/* The sweep's report.html (eval/report_svg.h draws the frames, so the
 * sweep's charts look like a run's). */
/* Final accuracy of classifier c against axis a: the mean over the points
 * with each value (the other axes averaged); SoTU and frozen in their colours. */
static bool svg_sweep_axis(FILE *f, const sotu_sweep *sw, const sotu_sweep_result *res, int a)
{
    const sotu_sweep_axis *ax = &sw->axes[a];
    double x[SOTU_LIST_MAX];
    int n = 0;
    bool positive = true;
    for (int k = 0; k < ax->n_values && k < SOTU_LIST_MAX; k++) {
        char *end;
        double v = strtod(ax->values[k], &end);
        if (end == ax->values[k] || *end || !isfinite(v))
            return false; /* not a numeric axis (merge.mode, ...) */
        x[n++] = v;
        positive &= v > 0;
    }
    double x0 = x[0], x1 = x[0];
    for (int k = 1; k < n; k++) {
        x0 = fmin(x0, x[k]);
        x1 = fmax(x1, x[k]);
    }
    if (n < 2 || x1 <= x0)
        return false;
    bool log_x = positive && x1 / x0 >= 4;
    sotu_svg_axis xa = log_x ? (sotu_svg_axis){x0 / 1.5, x1 * 1.5, true}
                             : (sotu_svg_axis){x0 - 0.1 * (x1 - x0), x1 + 0.1 * (x1 - x0), false};
    char id[96], label[96];
    snprintf(id, sizeof id, "sweep-axis-%d", a);
    snprintf(label, sizeof label, "%s%s (mean over the other axes)", ax->key,
             log_x ? ", log scale" : "");
    sotu_svg_frame(f, id, label);
    for (int k = 0; k < n; k++)
        sotu_svg_xtick(f, &xa, x[k], ax->values[k]);
    int legend = 0;
    for (int s = 0; s < SOTU_SWEEP_N_CLS; s++) {
        const char *title;
        int c = sotu_sweep_summary_classifier(s, &title);
        for (int frozen = 0; frozen < 2; frozen++) {
            const char *color = sotu_report_method_color(frozen ? "frozen" : "sotu");
            const char *dash = sotu_report_classifier_dash(c);
            double y[SOTU_LIST_MAX];
            int have = 0;
            for (int k = 0; k < n; k++) {
                double sum = 0;
                int cnt = 0;
                for (int p = 0; p < sw->n_points; p++) {
                    double v = frozen ? res[p].frozen_final[c] : res[p].final_acc[c];
                    if (!strcmp(sw->points[p].values[a], ax->values[k]) && !isnan(v))
                        sum += v, cnt++;
                }
                y[k] = cnt ? sum / cnt : NAN;
                have += cnt > 0;
            }
            if (!have)
                continue;
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"", color);
            if (dash[0])
                fprintf(f, " stroke-dasharray=\"%s\"", dash);
            fputs(" points=\"", f);
            for (int k = 0; k < n; k++)
                if (!isnan(y[k]))
                    fprintf(f, "%.1f,%.1f ", sotu_svg_x(&xa, x[k]), sotu_svg_y(y[k]));
            fputs("\"/>\n", f);
            for (int k = 0; k < n && !frozen; k++)
                if (!isnan(y[k])) {
                    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>%s %s=",
                            sotu_svg_x(&xa, x[k]), sotu_svg_y(y[k]), color, title, ax->key);
                    sotu_report_put_html(f, ax->values[k]);
                    fprintf(f, ": %.4f</title></circle>\n", y[k]);
                }
            char name[96];
            snprintf(name, sizeof name, "%s %s", frozen ? "frozen" : "sotu", title);
            if (legend < 14)
                sotu_svg_legend(f, legend++, color, dash, name);
        }
    }
    fputs("</svg>\n", f);
    return true;
}

static void html_fig(FILE *f, double v, const char *fmt)
{
    if (isnan(v))
        fputs("<td>-</td>", f);
    else {
        fputs("<td>", f);
        fprintf(f, fmt, v);
        fputs("</td>", f);
    }
}

void sotu_sweep_report_write(FILE *f, const sotu_sweep *sw, const sotu_sweep_result *res,
                             const int *order, const int *agg, const char *basis)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>sotu sweep: ",
          f);
    sotu_report_put_html(f, sw->dir);
    fputs("</title>\n<style>\nbody{font-family:sans-serif;margin:24px;color:#222;max-width:1400px}\n"
          "table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;"
          "padding:3px 8px;text-align:right}th{background:#f0f0f0}td:first-child{text-align:left}\n"
          ".chart{display:block;margin:8px 0 24px 0;border:1px solid #eee}\n</style></head><body>\n"
          "<h1>sotu sweep: ", f);
    sotu_report_put_html(f, sw->dir);
    fputs("</h1>\n<section id=\"sweep\">\n<h2>Sweep</h2>\n", f);
    fprintf(f, "<p>%d points in %d training groups, ranked by %s. Each cell: SoTU's final / "
               "average incremental accuracy (the point's own keep); in brackets the frozen "
               "backbone's final accuracy with the same classifier.</p>\n", sw->n_points,
            sw->n_groups, basis);
    fputs("<table id=\"sweep-table\"><tr><th>rank</th><th>point</th>", f);
    for (int a = 0; a < sw->n_axes; a++) {
        fputs("<th>", f);
        sotu_report_put_html(f, sw->axes[a].key);
        fputs("</th>", f);
    }
    fprintf(f, "<th>%s val acc (ranks)</th>", sotu_eval_classifier_name(sw->rank_by));
    for (int k = 0; k < SOTU_SWEEP_N_CLS; k++) {
        const char *title;
        sotu_sweep_summary_classifier(k, &title);
        fprintf(f, "<th>%s</th>", title);
    }
    fputs("<th>forgetting (task heads)</th><th>BWT (task heads)</th><th>forgetting (ridge)</th>"
          "<th>BWT (ridge)</th><th>bytes per task</th><th>kept per task</th><th>training s</th>"
          "<th>evaluation s</th><th>tasks</th></tr>\n", f);
    for (int r = 0; r < sw->n_points; r++) {
        int p = order[r];
        const sotu_sweep_result *x = &res[p];
        fprintf(f, "<tr><td>%d</td><td><a href=\"points/", r + 1);
        sotu_report_put_html(f, sw->points[p].label);
        fputs("/report.html\">", f);
        sotu_report_put_html(f, sw->points[p].label);
        fputs("</a></td>", f);
        for (int a = 0; a < sw->n_axes; a++) {
            fputs("<td>", f);
            sotu_report_put_html(f, sw->points[p].values[a]);
            fputs("</td>", f);
        }
        html_fig(f, sotu_sweep_rank_value(sw, x), "%.4f");
        for (int k = 0; k < SOTU_SWEEP_N_CLS; k++) {
            const char *title;
            int c = sotu_sweep_summary_classifier(k, &title);
            fputs("<td>", f);
            sotu_report_put_num(f, x->final_acc[c], "%.4f");
            fputs(" / ", f);
            sotu_report_put_num(f, x->inc_acc[c], "%.4f");
            sotu_report_put_num(f, x->frozen_final[c], " (%.4f)");
            fputs("</td>", f);
        }
        html_fig(f, x->forgetting[SOTU_EV_TASK_HEADS], "%.4f");
        html_fig(f, x->bwt[SOTU_EV_TASK_HEADS], "%.4f");
        html_fig(f, x->forgetting[SOTU_EV_RIDGE], "%.4f");
        html_fig(f, x->bwt[SOTU_EV_RIDGE], "%.4f");
        html_fig(f, x->bytes_per_task, "%.0f");
        html_fig(f, x->kept_per_task, "%.0f");
        html_fig(f, x->train_seconds, "%.1f");
        html_fig(f, x->eval_seconds, "%.1f");
        fprintf(f, "<td>%d/%d</td></tr>\n", x->tasks_done, x->tasks);
    }
    fputs("</table>\n", f);
    if (agg) {
        fputs("<h3>Over seeds (mean ± std, n-1)</h3>\n<table id=\"sweep-seeds\"><tr>"
              "<th>first point</th><th>seeds</th>", f);
        for (int k = 0; k < SOTU_SWEEP_N_CLS; k++) {
            const char *title;
            sotu_sweep_summary_classifier(k, &title);
            fprintf(f, "<th>%s final</th>", title);
        }
        fputs("</tr>\n", f);
        for (int g = 0; g < sw->n_points; g++) {
            if (agg[g] != g)
                continue;
            fputs("<tr><td>", f);
            sotu_report_put_html(f, sw->points[g].label);
            fprintf(f, "</td><td>%d</td>", sotu_sweep_seed_group_size(sw, agg, g));
            for (int k = 0; k < SOTU_SWEEP_N_CLS; k++) {
                double mean, sd;
                sotu_sweep_seed_final(sw, res, agg, g, k, &mean, &sd);
                fputs("<td>", f);
                sotu_report_put_num(f, mean, "%.4f");
                sotu_report_put_num(f, sd, " ± %.4f");
                fputs("</td>", f);
            }
            fputs("</tr>\n", f);
        }
        fputs("</table>\n", f);
    }
    for (int a = 0; a < sw->n_axes; a++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *cf = open_memstream(&buf, &len);
        if (!cf)
            continue;
        bool drawn = svg_sweep_axis(cf, sw, res, a);
        fclose(cf);
        if (drawn && buf) {
            fputs("<h3>Final accuracy against ", f);
            sotu_report_put_html(f, sw->axes[a].key);
            fputs("</h3>\n", f);
            fwrite(buf, 1, len, f);
        }
        free(buf);
    }
    fputs("</section>\n</body></html>\n", f);
}
