#include "eval/report.h"
#include "eval/report_svg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/build_info.h"
#include "common/config.h"
#include "io/fsutil.h"

/* Tasks' training curves: hues no method uses (sotu_report_method_color). */
static const char *const task_palette[] = {"#8c564b", "#e377c2", "#bcbd22", "#393b79", "#637939",
                                           "#8c6d31", "#843c39", "#7b4173", "#5254a3", "#6b6ecf"};
enum { N_TASK_PALETTE = sizeof task_palette / sizeof task_palette[0] };

static char command_line[4096];

void sotu_report_set_command(int argc, char **argv)
{
    size_t len = 0;
    command_line[0] = '\0';
    for (int i = 0; i < argc && argv[i] && len + 1 < sizeof command_line; i++) {
        snprintf(command_line + len, sizeof command_line - len, "%s%s", i ? " " : "", argv[i]);
        len = strlen(command_line);
    }
}

const char *sotu_report_method_color(const char *method)
{
    if (!strcmp(method, "sotu") || !strcmp(method, "clr"))
        return "#1f77b4";
    if (!strcmp(method, "dense"))
        return "#d62728";
    if (!strcmp(method, "frozen"))
        return "#2ca02c";
    if (!strcmp(method, "sequential"))
        return "#ff7f0e";
    if (!strcmp(method, "finetuned"))
        return "#9467bd";
    if (!strncmp(method, "sotu@", 5))
        return "#17becf";
    return "#7f7f7f";
}

/* The line pattern of a classifier in every chart ("" solid). */
static const char *classifier_dash(int c)
{
    switch (c) {
    case SOTU_EV_NCM: return "6 3";
    case SOTU_EV_RIDGE: return "2 3";
    case SOTU_EV_RIDGE_TIL: return "8 3 2 3";
    case SOTU_EV_NCM_TIL: return "1 3";
    default: return "";
    }
}

/* Writes the memory stream's text to path atomically and closes it. */
static sotu_status finish_file(FILE *f, char **buf, size_t *len, const char *path)
{
    if (fclose(f) != 0 || !*buf)
        return sotu_error(SOTU_ERR_NOMEM, "%s: cannot format the file", path);
    sotu_status st = sotu_write_file_atomic(path, *buf, *len);
    free(*buf);
    *buf = NULL;
    return st;
}

static void put_num(FILE *f, double v, const char *fmt)
{
    if (isnan(v))
        return;
    fprintf(f, fmt, v);
}

static void put_html(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else
            fputc(*s, f);
    }
}

/* Mean of A[i][0..i] over the entries evaluated, NaN if none. */
static double row_mean(const double *A, int T, int i)
{
    double s = 0;
    int n = 0;
    for (int j = 0; j <= i; j++)
        if (!isnan(A[(size_t)i * T + j])) {
            s += A[(size_t)i * T + j];
            n++;
        }
    return n ? s / n : NAN;
}

/* Last evaluated row's entry for task j, NaN if none. */
static double last_row(const sotu_eval_method *m, int c, int T, int j)
{
    if (!m || !m->acc[c] || m->metrics[c].last_row < 0)
        return NAN;
    return m->acc[c][(size_t)m->metrics[c].last_row * T + j];
}

/* Task j's status as people read it: "ok", "failed", "not run", "left out". */
static const char *status_text(const sotu_report_info *info, int j)
{
    const char *s = info->status && info->status[j] ? info->status[j] : "ok";
    if (!strcmp(s, "not_run"))
        return "not run";
    if (!strcmp(s, "left_out"))
        return "left out";
    return s;
}

static int tasks_merged(const sotu_report_info *info)
{
    int n = 0;
    for (int j = 0; j < info->T; j++)
        n += !strcmp(status_text(info, j), "ok");
    return n;
}

/* "Partial result: 4 of 5 tasks merged; not in it: t03 (left out of this
 * merge), ..." with esc writing each task name; nothing when complete. */
static void write_partial(FILE *f, const sotu_report_info *info, void (*esc)(FILE *, const char *))
{
    int merged = tasks_merged(info);
    if (merged == info->T)
        return;
    fprintf(f, "Partial result: %d of %d tasks merged; not in it:", merged, info->T);
    for (int j = 0, k = 0; j < info->T; j++) {
        const char *st = status_text(info, j);
        if (!strcmp(st, "ok"))
            continue;
        fputs(k++ ? ", " : " ", f);
        esc(f, info->task_names[j]);
        fprintf(f, " (%s)", !strcmp(st, "left out") ? "left out of this merge" : st);
    }
    fputc('.', f);
}

static void put_plain(FILE *f, const char *s)
{
    fputs(s, f);
}

/* ------------------------------------------------------------------------ */
/* summary.csv and report.md                                                 */
/* ------------------------------------------------------------------------ */

static void write_csv(FILE *f, const sotu_report_info *info, const sotu_eval_report *rep)
{
    fprintf(f, "method,keep,classifier,setting,final_avg_acc,avg_inc_acc,forgetting,bwt,rows,"
               "seconds,tasks_merged,tasks,val_acc\n");
    for (int i = 0; i < rep->n_methods; i++) {
        const sotu_eval_method *m = &rep->methods[i];
        for (int c = 0; c < SOTU_EV_N; c++) {
            if (!m->acc[c])
                continue;
            const sotu_cl_metrics *x = &m->metrics[c];
            fprintf(f, "%s,", m->name);
            put_num(f, m->keep, "%.6g");
            fprintf(f, ",%s,%s,", sotu_eval_classifier_name(c),
                    sotu_eval_classifier_til(c) ? "TIL" : "CIL");
            put_num(f, x->final_avg_acc, "%.6f");
            fputc(',', f);
            put_num(f, x->avg_inc_acc, "%.6f");
            fputc(',', f);
            put_num(f, x->forgetting, "%.6f");
            fputc(',', f);
            put_num(f, x->bwt, "%.6f");
            fprintf(f, ",%d,%.2f,%d,%d,", x->rows, m->seconds, tasks_merged(info), info->T);
            put_num(f, m->cls_val_acc[c], "%.6f");
            fputc('\n', f);
        }
    }
}

/* The run's own method ("sotu" or "clr") and how headings name it. */
static const char *primary(const sotu_report_info *info)
{
    return info->method ? info->method : "sotu";
}

static const char *primary_title(const sotu_report_info *info)
{
    return info->cost ? "CLR" : "SoTU";
}

/* CLR's cost table (CLR paper, Table: parameters and compute per task). */
static void write_cost_md(FILE *f, const sotu_report_cost *c)
{
    fprintf(f, "\n## CLR cost per task (%s)\n\n| figure | value |\n|---|---|\n", c->variant);
    fprintf(f, "| frozen backbone parameters | %.0f |\n", c->backbone);
    fprintf(f, "| added per task: CLR + BatchNorm + fc | %.0f + %.0f + %.0f |\n", c->clr, c->bn,
            c->head);
    fprintf(f, "| parameters added per task, %% of the backbone | %.3f%% |\n", c->added_pct);
    fprintf(f, "| CLR layers alone, %% of the backbone | %.3f%% |\n", c->clr_pct);
    fprintf(f, "| module shipped per task | %.0f values, %.0f bytes (zstd) |\n",
            c->module_values, c->module_bytes);
    fprintf(f, "| training compute relative to full fine-tuning (FLOPs per step) | %.3f |\n",
            c->flops_ratio);
    if (!isnan(c->time_ratio))
        fprintf(f, "| measured: CLR job time / full fine-tuning job time | %.3f |\n",
                c->time_ratio);
    fprintf(f, "| fc only (frozen baseline), FLOPs relative to full fine-tuning | %.3f |\n",
            c->frozen_flops_ratio);
}

/* ------------------------------------------------------------------------ */
/* Glossary and provenance                                                   */
/* ------------------------------------------------------------------------ */

static const char *const glossary[][2] = {
    {"task_heads", "task-incremental: each task's own trained head on the (merged) backbone."},
    {"ridge_til", "task-incremental: a ridge-regression head refit on the backbone's features of "
                  "the task's training images, restricted to the task's classes (\"refit heads\")."},
    {"ncm_til", "task-incremental: cosine nearest-class-mean on the backbone's features, "
                "restricted to the task's classes."},
    {"ncm", "class-incremental: cosine nearest-class-mean over the classes of every task merged "
            "so far (no task id)."},
    {"ridge", "class-incremental: ridge regression over the classes of every task merged so far "
              "(λ chosen on held-out training images)."},
    {"TIL / CIL", "task-incremental (the task id is given) / class-incremental (it is not)."},
    {"final avg acc", "the mean over tasks of the last evaluated row of the accuracy matrix."},
    {"avg inc acc", "the mean over evaluated rows of each row's mean accuracy (average "
                    "incremental accuracy)."},
    {"forgetting", "mean over tasks of the best earlier accuracy minus the final one."},
    {"BWT", "backward transfer: mean of final minus just-merged accuracy; negative = forgetting."},
    {"keep", "the share of each tensor's entries a task's sparse delta keeps (its seeded mask)."},
    {"collision rate", "the share of kept entries that more than one task's mask keeps (where "
                       "the merged deltas overlap and add)."},
    {"cosine", "the cosine similarity of two tasks' kept deltas (checkpoint /merge/cosine): "
               "near 0 = the task updates barely interfere."},
};

static void write_glossary_html(FILE *f)
{
    fputs("<h2>Glossary</h2>\n<dl id=\"glossary\">\n", f);
    for (size_t k = 0; k < sizeof glossary / sizeof glossary[0]; k++) {
        fputs("<dt>", f);
        put_html(f, glossary[k][0]);
        fputs("</dt><dd>", f);
        put_html(f, glossary[k][1]);
        fputs("</dd>\n", f);
    }
    fputs("</dl>\n", f);
}

static void provenance_rows(FILE *f, const sotu_report_info *info, bool html)
{
    char host[256] = "unknown";
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    char threads[32] = "unknown", wall[32] = "unknown", ranks[32];
    if (info->threads > 0)
        snprintf(threads, sizeof threads, "%d", info->threads);
    if (!isnan(info->seconds))
        snprintf(wall, sizeof wall, "%.1f s", info->seconds);
    snprintf(ranks, sizeof ranks, "%d", info->ranks);
    const char *rows[][2] = {
        {"sotu version", sotu_build_version()}, {"commit", sotu_build_commit()},
        {"command line", command_line[0] ? command_line : "unknown"}, {"host", host},
        {"ranks", ranks}, {"threads per rank", threads}, {"wall time", wall},
    };
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        if (html) {
            fprintf(f, "<tr><th>%s</th><td><code>", rows[k][0]);
            put_html(f, rows[k][1]);
            fputs("</code></td></tr>\n", f);
        } else {
            fprintf(f, "| %s | `%s` |\n", rows[k][0], rows[k][1]);
        }
    }
}

static void write_provenance_html(FILE *f, const sotu_report_info *info)
{
    fputs("<h2>Provenance</h2>\n<table id=\"provenance\">\n", f);
    provenance_rows(f, info, true);
    fputs("</table>\n", f);
    if (info->config_yaml) {
        fputs("<details id=\"config\"><summary>the resolved configuration</summary><pre>", f);
        put_html(f, info->config_yaml);
        fputs("</pre></details>\n", f);
    }
}

static void write_provenance_md(FILE *f, const sotu_report_info *info)
{
    fputs("\n## Glossary\n\n", f);
    for (size_t k = 0; k < sizeof glossary / sizeof glossary[0]; k++)
        fprintf(f, "- **%s**: %s\n", glossary[k][0], glossary[k][1]);
    fputs("\n## Provenance\n\n| | |\n|---|---|\n", f);
    provenance_rows(f, info, false);
    if (info->config_yaml)
        fprintf(f, "\n```yaml\n%s%s```\n", info->config_yaml,
                info->config_yaml[0] && info->config_yaml[strlen(info->config_yaml) - 1] == '\n'
                    ? "" : "\n");
}

static void md_num(FILE *f, double v)
{
    if (isnan(v))
        fputs(" - |", f);
    else
        fprintf(f, " %.4f |", v);
}

static void write_md(FILE *f, const sotu_report_info *info, const sotu_eval_report *rep)
{
    int T = info->T;
    fprintf(f, "# sotu report: %s\n\n", info->title);
    if (info->cost)
        fprintf(f, "%d tasks, %d ranks, method clr (%s) on a frozen ResNet backbone", T,
                info->ranks, info->cost->variant);
    else
        fprintf(f, "%d tasks, %d ranks, keep %.6g, merge %s", T, info->ranks, info->keep,
                info->merge_mode ? info->merge_mode : "sum");
    if (!isnan(info->collision_rate))
        fprintf(f, ", collision rate %.4f", info->collision_rate);
    if (!isnan(info->seconds))
        fprintf(f, ", wall time %.1fs", info->seconds);
    fprintf(f, ".\n\n");
    if (info->note)
        fprintf(f, "%s\n\n", info->note);
    if (tasks_merged(info) < T) {
        fputs("**", f);
        write_partial(f, info, put_plain);
        fputs("**\n\n", f);
    }
    fprintf(f, "TIL: task-incremental (task id given). CIL: class-incremental over the "
               "classes of the tasks merged so far.\n\n");
    fprintf(f, "| method | keep | classifier | setting | final avg acc | avg inc acc | "
               "forgetting | BWT |\n|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < rep->n_methods; i++) {
        const sotu_eval_method *m = &rep->methods[i];
        for (int c = 0; c < SOTU_EV_N; c++) {
            if (!m->acc[c])
                continue;
            const sotu_cl_metrics *x = &m->metrics[c];
            fprintf(f, "| %s |", m->name);
            if (isnan(m->keep))
                fputs(" - |", f);
            else
                fprintf(f, " %.6g |", m->keep);
            fprintf(f, " %s | %s |", sotu_eval_classifier_name(c),
                    sotu_eval_classifier_til(c) ? "TIL" : "CIL");
            md_num(f, x->final_avg_acc);
            md_num(f, x->avg_inc_acc);
            md_num(f, x->forgetting);
            md_num(f, x->bwt);
            fputc('\n', f);
        }
    }
    if (info->cost)
        write_cost_md(f, info->cost);
    const char *cols[] = {primary(info), "dense", "frozen", "sequential"};
    fprintf(f, "\n## Per task (final row, task heads)\n\n| task | classes | status |");
    if (info->kept)
        fprintf(f, " kept values | bytes shipped |");
    fprintf(f, " fine-tuned |");
    for (int k = 0; k < 4; k++)
        if (sotu_eval_report_find(rep, cols[k]))
            fprintf(f, " %s |", cols[k]);
    fprintf(f, "\n|---|---|---|---|");
    if (info->kept)
        fprintf(f, "---|---|");
    for (int k = 0; k < 4; k++)
        if (sotu_eval_report_find(rep, cols[k]))
            fprintf(f, "---|");
    fputc('\n', f);
    for (int j = 0; j < T; j++) {
        fprintf(f, "| %s | %d | %s |", info->task_names[j], info->classes[j],
                status_text(info, j));
        if (info->kept)
            fprintf(f, " %lld | %lld |", (long long)info->kept[j],
                    info->bytes ? (long long)info->bytes[j] : 0LL);
        md_num(f, info->finetuned[j]);
        for (int k = 0; k < 4; k++) {
            const sotu_eval_method *m = sotu_eval_report_find(rep, cols[k]);
            if (m)
                md_num(f, last_row(m, SOTU_EV_TASK_HEADS, T, j));
        }
        fputc('\n', f);
    }
    const sotu_eval_method *s = sotu_eval_report_find(rep, primary(info));
    for (int c = 0; s && c < SOTU_EV_N; c++) {
        if (!s->acc[c] || (c != SOTU_EV_TASK_HEADS && c != SOTU_EV_RIDGE))
            continue;
        fprintf(f, "\n## %s accuracy matrix, %s (row i: after %s tasks 1..i)\n\n| i \\ j |",
                primary_title(info), sotu_eval_classifier_name(c),
                info->cost ? "learning" : "merging");
        for (int j = 0; j < T; j++)
            fprintf(f, " %d |", j + 1);
        fprintf(f, "\n|---|");
        for (int j = 0; j < T; j++)
            fprintf(f, "---|");
        fputc('\n', f);
        for (int i = 0; i < T; i++) {
            if (isnan(row_mean(s->acc[c], T, i)))
                continue;
            fprintf(f, "| %d |", i + 1);
            for (int j = 0; j < T; j++)
                md_num(f, s->acc[c][(size_t)i * T + j]);
            fputc('\n', f);
        }
    }
    write_provenance_md(f, info);
}

/* ------------------------------------------------------------------------ */
/* SVG charts                                                                */
/* ------------------------------------------------------------------------ */

enum { CW = 760, CH = 320, ML = 56, MR = 190, MT = 20, MB = 44 };

typedef sotu_svg_axis axis;

static double px(const axis *a, double x)
{
    double u = a->log_x ? (log10(x) - log10(a->x0)) / (log10(a->x1) - log10(a->x0))
                        : (x - a->x0) / (a->x1 - a->x0);
    if (!isfinite(u))
        u = 0.5;
    return ML + u * (CW - ML - MR);
}

static double py(double y)
{
    return MT + (1 - y) * (CH - MT - MB);
}

/* Frame with a y axis from 0 to ymax (ticks in format yfmt, caption
 * ylabel) and a caption for x. */
static void svg_frame_y(FILE *f, const char *id, const char *xlabel, double ymax,
                        const char *yfmt, const char *ylabel)
{
    fprintf(f, "<svg id=\"%s\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
               "height=\"%d\" viewBox=\"0 0 %d %d\">\n", id, CW, CH, CW, CH);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", CW, CH);
    for (int k = 0; k <= 5; k++) {
        double y = py(k / 5.0);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#dddddd\"/>"
                   "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">",
                ML, y, CW - MR, y, ML - 6, y + 4);
        fprintf(f, yfmt, ymax * k / 5.0);
        fputs("</text>\n", f);
    }
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333333\"/>\n", ML, MT, ML,
            CH - MB);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333333\"/>\n", ML, CH - MB,
            CW - MR, CH - MB);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">%s</text>\n",
            (ML + CW - MR) / 2, CH - 8, xlabel);
    fprintf(f, "<text x=\"14\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\" "
               "transform=\"rotate(-90 14 %d)\">%s</text>\n", (MT + CH - MB) / 2,
            (MT + CH - MB) / 2, ylabel);
}

/* Frame with the accuracy axis (0..1) and a caption for x. */
static void svg_frame(FILE *f, const char *id, const char *xlabel)
{
    svg_frame_y(f, id, xlabel, 1.0, "%.1f", "accuracy");
}

static void svg_legend_dash(FILE *f, int k, const char *color, const char *dash,
                            const char *label)
{
    double y = MT + 10 + 18 * k;
    fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"",
            CW - MR + 12, y, CW - MR + 36, y, color);
    if (dash && dash[0])
        fprintf(f, " stroke-dasharray=\"%s\"", dash);
    fprintf(f, "/><text x=\"%d\" y=\"%.1f\" font-size=\"12\">", CW - MR + 42, y + 4);
    put_html(f, label);
    fputs("</text>\n", f);
}

static void svg_legend(FILE *f, int k, const char *color, bool dashed, const char *label)
{
    svg_legend_dash(f, k, color, dashed ? "6 3" : "", label);
}

/* Accuracy (row mean over the tasks seen) against tasks merged, one line
 * per method for the classifiers in cls (n_cls of them). */
static void svg_lines(FILE *f, const char *id, const sotu_eval_report *rep, const int *cls,
                      int n_cls)
{
    int T = rep->T;
    axis a = {1, T > 1 ? T : 2, false};
    svg_frame(f, id, "tasks merged");
    for (int i = 1; i <= T; i += T > 20 ? (T + 9) / 10 : 1)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%d</text>\n",
                px(&a, i), CH - MB + 15, i);
    int series = 0;
    for (int m = 0; m < rep->n_methods; m++) {
        const sotu_eval_method *me = &rep->methods[m];
        if (me->last_row_only)
            continue;
        for (int k = 0; k < n_cls; k++) {
            int c = cls[k];
            if (!me->acc[c])
                continue;
            const char *color = sotu_report_method_color(me->name);
            const char *dash = classifier_dash(c);
            fprintf(f, "<polyline class=\"series\" data-method=\"%s\" fill=\"none\" stroke=\"%s\" "
                       "stroke-width=\"2\"", me->name, color);
            if (dash[0])
                fprintf(f, " stroke-dasharray=\"%s\"", dash);
            fputs(" points=\"", f);
            for (int i = 0; i < T; i++) {
                double v = row_mean(me->acc[c], T, i);
                if (!isnan(v))
                    fprintf(f, "%.1f,%.1f ", px(&a, i + 1), py(v));
            }
            fputs("\"/>\n", f);
            for (int i = 0; i < T; i++) {
                double v = row_mean(me->acc[c], T, i);
                if (!isnan(v))
                    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                            px(&a, i + 1), py(v), color);
            }
            char label[96];
            snprintf(label, sizeof label, "%s %s", me->name, sotu_eval_classifier_name(c));
            svg_legend_dash(f, series++, color, dash, label);
        }
    }
    fputs("</svg>\n", f);
}

/* The accuracy matrix as a heat map (white 0 .. dark blue 1, grey: not
 * evaluated) with its colour scale; rows and columns named by task. */
static void heat_color(double v, char *color, size_t cap)
{
    double u = v < 0 ? 0 : v > 1 ? 1 : v;
    snprintf(color, cap, "#%02x%02x%02x", (int)(255 - u * (255 - 8)), (int)(255 - u * (255 - 48)),
             (int)(255 - u * (255 - 107)));
}

static void svg_heatmap(FILE *f, const char *id, const double *A, int T,
                        const char *const *names)
{
    int cell = T <= 10 ? 44 : T <= 25 ? 22 : 11;
    int left = 130, top = 10, bottom = 110, right = 110;
    int w = left + cell * T + right, h = top + cell * T + bottom;
    fprintf(f, "<svg id=\"%s\" class=\"chart heatmap\" xmlns=\"http://www.w3.org/2000/svg\" "
               "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n", id, w, h, w, h);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", w, h);
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++) {
            double v = A[(size_t)i * T + j];
            char color[16];
            if (isnan(v))
                snprintf(color, sizeof color, "#eeeeee");
            else
                heat_color(v, color, sizeof color);
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" "
                       "stroke=\"#ffffff\"><title>after ", left + j * cell, top + i * cell, cell,
                    cell, color);
            put_html(f, names[i]);
            fputs(", on ", f);
            put_html(f, names[j]);
            fprintf(f, ": %.4f</title></rect>\n", v);
            if (!isnan(v) && cell >= 40)
                fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\" "
                           "fill=\"%s\">%.2f</text>\n", left + j * cell + cell / 2,
                        top + i * cell + cell / 2 + 4, v > 0.6 ? "#ffffff" : "#000000", v);
        }
    int step = T > 25 ? 5 : 1;
    for (int k = 0; k < T; k += step) {
        char shortname[24];
        snprintf(shortname, sizeof shortname, "%.20s", names[k]);
        fprintf(f, "<text class=\"task-label\" x=\"%d\" y=\"%d\" font-size=\"10\" "
                   "text-anchor=\"end\">", left - 4, top + k * cell + cell / 2 + 4);
        put_html(f, shortname);
        fputs("</text>\n", f);
        int x = left + k * cell + cell / 2, y = top + T * cell + 6;
        fprintf(f, "<text class=\"task-label\" x=\"%d\" y=\"%d\" font-size=\"10\" "
                   "text-anchor=\"end\" transform=\"rotate(-50 %d %d)\">", x, y, x, y);
        put_html(f, shortname);
        fputs("</text>\n", f);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">task evaluated "
               "(rows: after merging the tasks down to that row)</text>\n",
            left + cell * T / 2, h - 6);
    /* the colour scale */
    int sx = left + cell * T + 24, sh = cell * T < 120 ? 120 : cell * T;
    fprintf(f, "<defs><linearGradient id=\"%s-scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">", id);
    for (int k = 0; k <= 4; k++) {
        char color[16];
        heat_color(k / 4.0, color, sizeof color);
        fprintf(f, "<stop offset=\"%d%%\" stop-color=\"%s\"/>", 25 * k, color);
    }
    fprintf(f, "</linearGradient></defs>\n<g class=\"color-scale\"><rect x=\"%d\" y=\"%d\" "
               "width=\"14\" height=\"%d\" fill=\"url(#%s-scale)\" stroke=\"#999999\"/>\n",
            sx, top, sh, id);
    for (int k = 0; k <= 4; k++)
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"10\">%.2f</text>\n", sx + 18,
                top + sh - sh * k / 4.0 + 4, k / 4.0);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"10\" fill=\"#eeeeee\"/>"
               "<text x=\"%d\" y=\"%d\" font-size=\"10\">not run</text></g>\n",
            sx, top + sh + 10, sx + 18, top + sh + 19);
    fputs("</svg>\n", f);
}

/* Grouped bars per task: fine-tuned and each merged/frozen method's final row. */
static void svg_bars(FILE *f, const sotu_report_info *info, const sotu_eval_report *rep)
{
    int T = info->T;
    const char *names[] = {"finetuned", primary(info), "dense", "frozen"};
    const double *vals[4] = {0};
    double *tmp[4] = {0};
    int n = 0, which[4];
    for (int k = 0; k < 4; k++) {
        if (k == 0) {
            vals[n] = info->finetuned;
        } else {
            const sotu_eval_method *m = sotu_eval_report_find(rep, names[k]);
            if (!m || !m->acc[SOTU_EV_TASK_HEADS])
                continue;
            tmp[n] = malloc(sizeof(double) * (size_t)T);
            if (!tmp[n])
                continue;
            for (int j = 0; j < T; j++)
                tmp[n][j] = last_row(m, SOTU_EV_TASK_HEADS, T, j);
            vals[n] = tmp[n];
        }
        which[n++] = k;
    }
    axis a = {0, T, false};
    svg_frame(f, "per-task", "");
    double gw = (double)(CW - ML - MR) / T, bw = gw * 0.8 / n;
    for (int j = 0; j < T; j++) {
        for (int k = 0; k < n; k++) {
            double v = vals[k][j];
            if (isnan(v))
                continue;
            double x = px(&a, j) + gw * 0.1 + k * bw;
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                       "<title>", x, py(v), bw, py(0) - py(v),
                    sotu_report_method_color(names[which[k]]));
            put_html(f, info->task_names[j]);
            fprintf(f, " %s %.4f</title></rect>\n", names[which[k]], v);
        }
        if (T <= 20 || j % ((T + 9) / 10) == 0) {
            char shortname[16];
            snprintf(shortname, sizeof shortname, "%.*s", T <= 6 ? 14 : 9, info->task_names[j]);
            fprintf(f, "<text class=\"task-label\" x=\"%.1f\" y=\"%d\" font-size=\"9\" "
                       "text-anchor=\"middle\">", px(&a, j + 0.5), CH - MB + 14);
            put_html(f, shortname);
            fputs("</text>\n", f);
        }
    }
    for (int k = 0; k < n; k++)
        svg_legend(f, k, sotu_report_method_color(names[which[k]]), false, names[which[k]]);
    fputs("</svg>\n", f);
    for (int k = 0; k < 4; k++)
        free(tmp[k]);
}

/* Final average accuracy against keep (log axis), when two keeps or more. */
static bool svg_keep_curve(FILE *f, const sotu_eval_report *rep)
{
    int idx[SOTU_EVAL_METHODS_MAX], n = 0;
    for (int m = 0; m < rep->n_methods; m++)
        if (!isnan(rep->methods[m].keep) && rep->methods[m].keep > 0)
            idx[n++] = m;
    if (n < 2)
        return false;
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && rep->methods[idx[b]].keep < rep->methods[idx[b - 1]].keep; b--) {
            int t = idx[b];
            idx[b] = idx[b - 1];
            idx[b - 1] = t;
        }
    double k0 = rep->methods[idx[0]].keep, k1 = rep->methods[idx[n - 1]].keep;
    if (k1 <= k0)
        return false;
    axis a = {k0 / 1.5, k1 * 1.5, true};
    svg_frame(f, "keep-curve", "keep (log scale)");
    for (int k = 0; k < n; k++)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%.3g</text>\n",
                px(&a, rep->methods[idx[k]].keep), CH - MB + 15, rep->methods[idx[k]].keep);
    const int cls[] = {SOTU_EV_TASK_HEADS, SOTU_EV_NCM, SOTU_EV_RIDGE};
    for (int s = 0; s < 3; s++) {
        int c = cls[s];
        const char *color = sotu_report_method_color("sotu");
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"", color);
        if (classifier_dash(c)[0])
            fprintf(f, " stroke-dasharray=\"%s\"", classifier_dash(c));
        fputs(" points=\"", f);
        for (int k = 0; k < n; k++) {
            const sotu_eval_method *m = &rep->methods[idx[k]];
            if (m->acc[c] && !isnan(m->metrics[c].final_avg_acc))
                fprintf(f, "%.1f,%.1f ", px(&a, m->keep), py(m->metrics[c].final_avg_acc));
        }
        fputs("\"/>\n", f);
        for (int k = 0; k < n; k++) {
            const sotu_eval_method *m = &rep->methods[idx[k]];
            if (m->acc[c] && !isnan(m->metrics[c].final_avg_acc))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>%s keep "
                           "%.6g: %.4f</title></circle>\n", px(&a, m->keep),
                        py(m->metrics[c].final_avg_acc), color, m->name, m->keep,
                        m->metrics[c].final_avg_acc);
        }
        svg_legend_dash(f, s, color, classifier_dash(c), sotu_eval_classifier_name(c));
    }
    fputs("</svg>\n", f);
    return true;
}

/* One training figure (loss, lr or grad norm: which = 0, 1, 2) against the
 * task's step, one line per task (colour by task; its name in the tooltip
 * and, for the first ten, the legend); y from 0 to the largest value. */
static bool svg_curves(FILE *f, const sotu_report_info *info, int which, const char *id,
                       const char *ylabel)
{
    const sotu_scalar_curve *cv = info->curves;
    double xmax = 0, ymax = 0;
    for (int t = 0; cv && t < info->T; t++)
        for (int k = 0; k < cv[t].n; k++) {
            const double *y = which == 0 ? cv[t].loss : which == 1 ? cv[t].lr : cv[t].grad_norm;
            if (isfinite(y[k]) && y[k] > ymax)
                ymax = y[k];
            if (cv[t].x[k] > xmax)
                xmax = cv[t].x[k];
        }
    if (xmax <= 0 || ymax <= 0)
        return false;
    axis a = {1, xmax > 1 ? xmax : 2, false};
    svg_frame_y(f, id, "step of the task (LP-FT: head steps first)", ymax, "%.3g", ylabel);
    for (int k = 0, last = 0; k <= 4; k++) {
        int x = (int)lround(1 + (a.x1 - 1) * k / 4.0);
        if (x == last)
            continue;
        last = x;
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%d</text>\n",
                px(&a, x), CH - MB + 15, x);
    }
    int legend = 0;
    for (int t = 0; t < info->T; t++) {
        if (!cv[t].n)
            continue;
        const double *y = which == 0 ? cv[t].loss : which == 1 ? cv[t].lr : cv[t].grad_norm;
        const char *color = task_palette[t % N_TASK_PALETTE];
        fprintf(f, "<polyline class=\"curve\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
                   "points=\"", color);
        for (int k = 0; k < cv[t].n; k++)
            if (isfinite(y[k]))
                fprintf(f, "%.1f,%.1f ", px(&a, cv[t].x[k]), py(y[k] / ymax));
        fputs("\"><title>", f);
        put_html(f, info->task_names[t]);
        fputs("</title></polyline>\n", f);
        if (legend < 10)
            svg_legend(f, legend++, color, false, info->task_names[t]);
        else if (legend == 10) {
            svg_legend(f, legend++, "#ffffff", false, "... (hover a line)");
        }
    }
    fputs("</svg>\n", f);
    return true;
}

static void html_num(FILE *f, double v)
{
    if (isnan(v))
        fputs("<td>-</td>", f);
    else
        fprintf(f, "<td>%.4f</td>", v);
}

static void write_html(FILE *f, const sotu_report_info *info, const sotu_eval_report *rep)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>sotu report: ",
          f);
    put_html(f, info->title);
    fputs("</title>\n<style>\nbody{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}\n"
          "table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;"
          "padding:3px 8px;text-align:right}th{background:#f0f0f0}td:first-child{text-align:left}\n"
          ".chart{display:block;margin:8px 0 24px 0;border:1px solid #eee}\n</style></head><body>\n",
          f);
    fputs("<h1>sotu report: ", f);
    put_html(f, info->title);
    if (info->cost)
        fprintf(f, "</h1>\n<p>%d tasks, %d ranks, method clr (%s) on a frozen ResNet backbone",
                info->T, info->ranks, info->cost->variant);
    else
        fprintf(f, "</h1>\n<p>%d tasks, %d ranks, keep %.6g, merge %s", info->T, info->ranks,
                info->keep, info->merge_mode ? info->merge_mode : "sum");
    if (!isnan(info->collision_rate))
        fprintf(f, ", collision rate %.4f", info->collision_rate);
    if (!isnan(info->max_cosine) && info->max_cosine > 0)
        fprintf(f, ", max |cosine| between task deltas %.4f", info->max_cosine);
    if (!isnan(info->seconds))
        fprintf(f, ", wall time %.1f s", info->seconds);
    fputs(". TIL: task-incremental (task id given); CIL: class-incremental over the classes "
          "of the tasks merged so far.</p>\n", f);
    if (info->note) {
        fputs("<p>", f);
        put_html(f, info->note);
        fputs("</p>\n", f);
    }
    if (tasks_merged(info) < info->T) {
        fputs("<p id=\"partial\"><strong>", f);
        write_partial(f, info, put_html);
        fputs("</strong></p>\n", f);
    }

    fputs("<h2>Summary</h2>\n<table id=\"summary\"><tr><th>method</th><th>keep</th>"
          "<th>classifier</th><th>setting</th><th>final avg acc</th><th>avg inc acc</th>"
          "<th>forgetting</th><th>BWT</th></tr>\n", f);
    for (int i = 0; i < rep->n_methods; i++) {
        const sotu_eval_method *m = &rep->methods[i];
        for (int c = 0; c < SOTU_EV_N; c++) {
            if (!m->acc[c])
                continue;
            fputs("<tr><td>", f);
            put_html(f, m->name);
            fputs("</td>", f);
            html_num(f, m->keep);
            fprintf(f, "<td>%s</td><td>%s</td>", sotu_eval_classifier_name(c),
                    sotu_eval_classifier_til(c) ? "TIL" : "CIL");
            html_num(f, m->metrics[c].final_avg_acc);
            html_num(f, m->metrics[c].avg_inc_acc);
            html_num(f, m->metrics[c].forgetting);
            html_num(f, m->metrics[c].bwt);
            fputs("</tr>\n", f);
        }
    }
    fputs("</table>\n", f);

    if (info->cost) {
        const sotu_report_cost *c = info->cost;
        fprintf(f, "<h2>CLR cost per task (%s)</h2>\n<table id=\"cost\">"
                "<tr><td>frozen backbone parameters</td><td>%.0f</td></tr>\n"
                "<tr><td>added per task: CLR + BatchNorm + fc</td><td>%.0f + %.0f + %.0f</td></tr>\n"
                "<tr><td>parameters added per task, %% of the backbone</td><td>%.3f%%</td></tr>\n"
                "<tr><td>CLR layers alone, %% of the backbone</td><td>%.3f%%</td></tr>\n"
                "<tr><td>module shipped per task</td><td>%.0f values, %.0f bytes</td></tr>\n"
                "<tr><td>training compute relative to full fine-tuning (FLOPs per step)</td>"
                "<td>%.3f</td></tr>\n", c->variant, c->backbone, c->clr, c->bn, c->head,
                c->added_pct, c->clr_pct, c->module_values, c->module_bytes, c->flops_ratio);
        if (!isnan(c->time_ratio))
            fprintf(f, "<tr><td>measured: CLR job time / full fine-tuning job time</td>"
                    "<td>%.3f</td></tr>\n", c->time_ratio);
        fprintf(f, "<tr><td>fc only (frozen baseline), FLOPs relative to full fine-tuning</td>"
                "<td>%.3f</td></tr>\n</table>\n", c->frozen_flops_ratio);
    }
    const sotu_eval_method *s = sotu_eval_report_find(rep, primary(info));
    if (s && s->acc[SOTU_EV_TASK_HEADS]) {
        fprintf(f, "<h2>Accuracy matrix, %s, task heads</h2>\n", primary_title(info));
        svg_heatmap(f, "heatmap-task-heads", s->acc[SOTU_EV_TASK_HEADS], info->T,
                    info->task_names);
    }
    if (s && s->acc[SOTU_EV_RIDGE]) {
        fprintf(f, "<h2>Accuracy matrix, %s, ridge (class-incremental)</h2>\n",
                primary_title(info));
        svg_heatmap(f, "heatmap-ridge", s->acc[SOTU_EV_RIDGE], info->T, info->task_names);
    }
    fputs("<h2>Accuracy against tasks merged, task-incremental</h2>\n", f);
    const int til[] = {SOTU_EV_TASK_HEADS};
    svg_lines(f, "lines-til", rep, til, 1);
    fputs("<h2>Accuracy against tasks merged, class-incremental (dashed NCM, dotted ridge)"
          "</h2>\n", f);
    const int cil[] = {SOTU_EV_NCM, SOTU_EV_RIDGE};
    svg_lines(f, "lines-cil", rep, cil, 2);
    fputs("<h2>Per task: fine-tuned against merged (final row, task heads)</h2>\n", f);
    svg_bars(f, info, rep);
    char *kbuf = NULL;
    size_t klen = 0;
    FILE *kf = open_memstream(&kbuf, &klen);
    if (kf) {
        bool drawn = svg_keep_curve(kf, rep);
        fclose(kf);
        if (drawn && kbuf) {
            fputs("<h2>Final average accuracy against keep</h2>\n", f);
            fwrite(kbuf, 1, klen, f);
        }
        free(kbuf);
    }
    if (info->curves) {
        static const char *const what[] = {"loss", "learning rate", "gradient norm (before clipping)"};
        static const char *const ids[] = {"curve-loss", "curve-lr", "curve-grad-norm"};
        bool any = false;
        for (int k = 0; k < 3; k++) {
            char *buf = NULL;
            size_t len = 0;
            FILE *cf = open_memstream(&buf, &len);
            if (!cf)
                continue;
            bool drawn = svg_curves(cf, info, k, ids[k], what[k]);
            fclose(cf);
            if (drawn && buf) {
                if (!any)
                    fputs("<h2 id=\"training\">Training curves (steps.jsonl)</h2>\n", f);
                any = true;
                fprintf(f, "<h3>%s per step, one line per task</h3>\n", what[k]);
                fwrite(buf, 1, len, f);
            }
            free(buf);
        }
    }
    fputs("<h2>Per task</h2>\n<table id=\"tasks\"><tr><th>task</th><th>classes</th>"
          "<th>status</th>", f);
    if (info->kept)
        fprintf(f, "<th>kept values (keep %.6g)</th>", info->keep);
    if (info->bytes)
        fputs("<th>bytes shipped</th>", f);
    fputs("<th>fine-tuned</th>", f);
    const char *cols[] = {primary(info), "dense", "frozen", "sequential"};
    for (int k = 0; k < 4; k++)
        if (sotu_eval_report_find(rep, cols[k]))
            fprintf(f, "<th>%s</th>", cols[k]);
    fputs("</tr>\n", f);
    for (int j = 0; j < info->T; j++) {
        fputs("<tr><td>", f);
        put_html(f, info->task_names[j]);
        fprintf(f, "</td><td>%d</td><td>%s</td>", info->classes[j], status_text(info, j));
        if (info->kept)
            fprintf(f, "<td>%lld</td>", (long long)info->kept[j]);
        if (info->bytes)
            fprintf(f, "<td>%lld</td>", (long long)info->bytes[j]);
        html_num(f, info->finetuned[j]);
        for (int k = 0; k < 4; k++) {
            const sotu_eval_method *m = sotu_eval_report_find(rep, cols[k]);
            if (m)
                html_num(f, last_row(m, SOTU_EV_TASK_HEADS, info->T, j));
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    write_glossary_html(f);
    write_provenance_html(f, info);
    fputs("</body></html>\n", f);
}

sotu_status sotu_report_write(const char *dir, const sotu_report_info *info,
                              const sotu_eval_report *rep)
{
    static const char *const names[] = {"summary.csv", "report.md", "report.html"};
    sotu_status st = SOTU_OK;
    for (int k = 0; k < 3 && st == SOTU_OK; k++) {
        char path[SOTU_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
            return sotu_error(SOTU_ERR_NOMEM, "%s: cannot format the file", path);
        if (k == 0)
            write_csv(f, info, rep);
        else if (k == 1)
            write_md(f, info, rep);
        else
            write_html(f, info, rep);
        st = finish_file(f, &buf, &len, path);
        free(buf);
    }
    return st;
}

/* ------------------------------------------------------------------------ */
/* The helpers other reports share (eval/report_svg.h)                       */
/* ------------------------------------------------------------------------ */

void sotu_report_put_html(FILE *f, const char *s)
{
    put_html(f, s);
}

void sotu_report_put_num(FILE *f, double v, const char *fmt)
{
    put_num(f, v, fmt);
}

const char *sotu_report_classifier_dash(int c)
{
    return classifier_dash(c);
}

double sotu_svg_x(const sotu_svg_axis *a, double x)
{
    return px(a, x);
}

double sotu_svg_y(double y)
{
    return py(y);
}

void sotu_svg_frame(FILE *f, const char *id, const char *xlabel)
{
    svg_frame(f, id, xlabel);
}

void sotu_svg_xtick(FILE *f, const sotu_svg_axis *a, double x, const char *label)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">", px(a, x),
            CH - MB + 15);
    put_html(f, label);
    fputs("</text>\n", f);
}

void sotu_svg_legend(FILE *f, int k, const char *color, const char *dash, const char *label)
{
    svg_legend_dash(f, k, color, dash, label);
}
