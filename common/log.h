/* Logging with a rank prefix and levels, and a progress line.
 *
 * Every line goes to stderr as "[sotu r<rank> <elapsed>s] message". The level
 * is set once from -v / -q; rank is set once MPI is up (or stays 0).
 *
 * A progress line (sotu_progress) redraws in place when stderr is a terminal
 * and otherwise prints one line every few seconds, as a Slurm log wants:
 *   [sotu r0 12.3s] fine-tune shirts  340/1000 steps  112.4 steps/s  ETA 6s
 */
#ifndef SOTU_COMMON_LOG_H
#define SOTU_COMMON_LOG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    SOTU_LOG_ERROR = 0,
    SOTU_LOG_WARN = 1,
    SOTU_LOG_INFO = 2,
    SOTU_LOG_DEBUG = 3,
} sotu_log_level;

void sotu_log_set_level(sotu_log_level level);
sotu_log_level sotu_log_get_level(void);
void sotu_log_set_rank(int rank);

void sotu_log(sotu_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define SOTU_ERROR(...) sotu_log(SOTU_LOG_ERROR, __VA_ARGS__)
#define SOTU_WARN(...) sotu_log(SOTU_LOG_WARN, __VA_ARGS__)
#define SOTU_INFO(...) sotu_log(SOTU_LOG_INFO, __VA_ARGS__)
#define SOTU_DEBUG(...) sotu_log(SOTU_LOG_DEBUG, __VA_ARGS__)

/* Monotonic seconds since an arbitrary origin. */
double sotu_now(void);
/* Seconds since the process first called a sotu_log/sotu_now-based clock. */
double sotu_elapsed(void);

typedef struct {
    char label[96];
    char unit[16];
    int64_t total; /* 0 = unknown */
    int64_t done;
    double start, last_print;
    double interval; /* seconds between lines when not a terminal */
    bool tty;
    bool active;
    char extra[128]; /* free text appended to the line (e.g. "loss 0.31") */
} sotu_progress;

/* Starts a progress line; shown only at INFO level or above. */
void sotu_progress_begin(sotu_progress *p, const char *label, const char *unit, int64_t total);
/* Sets the count done and redraws if due. extra may be NULL. */
void sotu_progress_update(sotu_progress *p, int64_t done, const char *extra);
/* Prints the final line (count, rate, elapsed). */
void sotu_progress_end(sotu_progress *p);

#endif
