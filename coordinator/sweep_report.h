/* The sweep's report.html (coordinator/sweep.h writes it beside sweep.csv
 * and sweep.md).
 */
#ifndef SOTU_COORDINATOR_SWEEP_REPORT_H
#define SOTU_COORDINATOR_SWEEP_REPORT_H

#include <stdio.h>

#include "coordinator/sweep.h"

/* The sweep's report.html into f: the points in `order` (best first, ranked
 * by `basis`) with every classifier's final and average incremental
 * accuracy, the frozen backbone's, forgetting, BWT, bytes, kept values and
 * seconds, each point linked to its own report; with agg (sweep seed groups,
 * NULL: none) the mean ± std over seeds; and for each axis of two or more
 * numeric values a chart of final accuracy against it (mean over the other
 * axes; one colour per method, one line pattern per classifier, markers on
 * SoTU's lines). */
void sotu_sweep_report_write(FILE *f, const sotu_sweep *sw, const sotu_sweep_result *res,
                             const int *order, const int *agg, const char *basis);

#endif
