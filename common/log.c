#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static sotu_log_level log_level = SOTU_LOG_INFO;
static int log_rank = 0;
static double log_origin = -1.0;

void sotu_log_set_level(sotu_log_level level) { log_level = level; }
sotu_log_level sotu_log_get_level(void) { return log_level; }
void sotu_log_set_rank(int rank) { log_rank = rank; }

double sotu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double sotu_elapsed(void)
{
    double now = sotu_now();
    if (log_origin < 0)
        log_origin = now;
    return now - log_origin;
}

static void log_prefix(FILE *f)
{
    fprintf(f, "[sotu r%d %.1fs] ", log_rank, sotu_elapsed());
}

void sotu_log(sotu_log_level level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    static const char *tags[] = {"error: ", "warning: ", "", ""};
    /* One fprintf per line so lines from ranks sharing a stream stay whole. */
    fprintf(stderr, "[sotu r%d %.1fs] %s%s\n", log_rank, sotu_elapsed(), tags[level], line);
}

static void format_seconds(char *buf, size_t n, double s)
{
    if (s < 0 || s > 1e7)
        snprintf(buf, n, "?");
    else if (s < 60)
        snprintf(buf, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static void progress_print(sotu_progress *p, bool final)
{
    double now = sotu_now();
    double dt = now - p->start;
    double rate = dt > 0 ? (double)p->done / dt : 0.0;
    char count[64], eta[32] = "", tail[64];
    if (p->total > 0)
        snprintf(count, sizeof count, "%lld/%lld", (long long)p->done, (long long)p->total);
    else
        snprintf(count, sizeof count, "%lld", (long long)p->done);
    if (final) {
        char el[32];
        format_seconds(el, sizeof el, dt);
        snprintf(tail, sizeof tail, "done in %s", el);
    } else if (p->total > 0 && rate > 0) {
        format_seconds(eta, sizeof eta, (double)(p->total - p->done) / rate);
        snprintf(tail, sizeof tail, "ETA %s", eta);
    } else {
        tail[0] = '\0';
    }
    if (p->tty)
        fputs("\r\033[K", stderr);
    log_prefix(stderr);
    fprintf(stderr, "%s %s %s %.3g %s/s %s%s%s", p->label, count, p->unit, rate, p->unit, tail,
            p->extra[0] ? "  " : "", p->extra);
    if (!p->tty || final)
        fputc('\n', stderr);
    fflush(stderr);
    p->last_print = now;
}

void sotu_progress_begin(sotu_progress *p, const char *label, const char *unit, int64_t total)
{
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->unit, sizeof p->unit, "%s", unit);
    p->total = total;
    p->start = sotu_now();
    p->last_print = p->start;
    p->tty = isatty(STDERR_FILENO);
    p->interval = p->tty ? 0.2 : 5.0;
    p->active = log_level >= SOTU_LOG_INFO;
}

void sotu_progress_update(sotu_progress *p, int64_t done, const char *extra)
{
    p->done = done;
    if (extra)
        snprintf(p->extra, sizeof p->extra, "%s", extra);
    if (p->active && sotu_now() - p->last_print >= p->interval)
        progress_print(p, false);
}

void sotu_progress_end(sotu_progress *p)
{
    if (p->active)
        progress_print(p, true);
    p->active = false;
}
