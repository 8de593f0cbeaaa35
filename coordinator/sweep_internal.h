/* What coordinator/sweep.c shares with the sweep's report.html
 * (coordinator/sweep_report.c), so both show the same columns and the same
 * seed statistics.
 */
#ifndef SOTU_COORDINATOR_SWEEP_INTERNAL_H
#define SOTU_COORDINATOR_SWEEP_INTERNAL_H

#include "coordinator/sweep.h"

/* The classifiers of the summary: task heads, refit heads (ridge_til),
 * ncm_til, then the class-incremental NCM and ridge. */
enum { SOTU_SWEEP_N_CLS = 5 };

/* Summary classifier k (< SOTU_SWEEP_N_CLS) as SOTU_EV_*; its heading in
 * *title. */
int sotu_sweep_summary_classifier(int k, const char **title);

/* The figure point r is ranked by: cls_val[sw->rank_by] (eval.rank_by). */
double sotu_sweep_rank_value(const sotu_sweep *sw, const sotu_sweep_result *r);

/* The points of point g's seed group (agg: each point's group, the index of
 * its first point; sotu_sweep_write_summary makes it). */
int sotu_sweep_seed_group_size(const sotu_sweep *sw, const int *agg, int g);

/* Mean and sample standard deviation (n-1; NaN with fewer than two values)
 * of summary classifier k's final accuracy over seed group g. */
void sotu_sweep_seed_final(const sotu_sweep *sw, const sotu_sweep_result *res, const int *agg,
                           int g, int k, double *mean, double *sd);

#endif
