/* Continual-learning figures of an accuracy matrix: pure functions.
 *
 * A is [T, T] row-major: A[i][j] = accuracy on task j after learning (here:
 * merging) tasks 0..i in stream order. Entries not evaluated are NaN: rows
 * thinned by eval.every, entries above the diagonal, failed tasks. A row
 * counts as evaluated when one of its entries j <= i is not NaN.
 *
 *   final_avg_acc    mean of the last evaluated row over its entries j <= i
 *   avg_inc_acc      mean over evaluated rows i of (mean_{j<=i} A[i][j])
 *                    (average incremental accuracy, Rebuffi et al.)
 *   forgetting       mean over tasks j of the last row's i_L, j < i_L, of
 *                    max_{i evaluated, j <= i < i_L} A[i][j] - A[i_L][j]
 *                    (Chaudhry et al.)
 *   bwt              mean over j < i_L with A[j][j] evaluated of
 *                    A[i_L][j] - A[j][j] (backward transfer, Lopez-Paz)
 * A figure with nothing to average is NaN.
 */
#ifndef SOTU_EVAL_METRICS_H
#define SOTU_EVAL_METRICS_H

typedef struct {
    double final_avg_acc;
    double avg_inc_acc;
    double forgetting;
    double bwt;
    int rows;            /* evaluated rows */
    int last_row;        /* i_L, -1 if no row was evaluated */
} sotu_cl_metrics;

void sotu_metrics_compute(const double *A, int T, sotu_cl_metrics *out);

/* True iff row i of T is evaluated under eval.every = every: (i + 1) % every
 * == 0, or i is the last row; every == 0 keeps only the last row. */
int sotu_metrics_row_selected(int i, int T, int every);

#endif
