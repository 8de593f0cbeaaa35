/* The pieces of report.html's charts and tables that other reports reuse
 * (coordinator/sweep_report.c draws the sweep's page with them), so every
 * page has the same frame, colours and line patterns (eval/report.c).
 *
 * A chart is one inline <svg> with accuracy 0..1 on y; the caller writes the
 * frame, its x tick labels, polylines at (sotu_svg_x, sotu_svg_y), legend
 * entries, then "</svg>\n".
 */
#ifndef SOTU_EVAL_REPORT_SVG_H
#define SOTU_EVAL_REPORT_SVG_H

#include <stdbool.h>
#include <stdio.h>

/* The data range a chart shows on x, linear or log10. */
typedef struct {
    double x0, x1;
    bool log_x;
} sotu_svg_axis;

/* s with HTML's special characters escaped. */
void sotu_report_put_html(FILE *f, const char *s);
/* v in printf format fmt; nothing for NaN. */
void sotu_report_put_num(FILE *f, double v, const char *fmt);
/* The stroke-dasharray of classifier c (SOTU_EV_*) in every chart; "" solid. */
const char *sotu_report_classifier_dash(int c);

/* Pixel coordinates of data x on axis a and of accuracy y. */
double sotu_svg_x(const sotu_svg_axis *a, double x);
double sotu_svg_y(double y);
/* Opens the <svg> with id, its accuracy axis and the caption xlabel of x. */
void sotu_svg_frame(FILE *f, const char *id, const char *xlabel);
/* A tick label under x. */
void sotu_svg_xtick(FILE *f, const sotu_svg_axis *a, double x, const char *label);
/* Legend entry k (0 on top): a line in color with dash ("" or NULL: solid). */
void sotu_svg_legend(FILE *f, int k, const char *color, const char *dash, const char *label);

#endif
