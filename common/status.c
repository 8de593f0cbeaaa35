#include "common/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_message[2048];

const char *sotu_strerror(sotu_status s)
{
    switch (s) {
    case SOTU_OK: return "success";
    case SOTU_ERR_USAGE: return "usage error";
    case SOTU_ERR_CONFIG: return "configuration error";
    case SOTU_ERR_DATA: return "input data error";
    case SOTU_ERR_IO: return "I/O error";
    case SOTU_ERR_NUMERIC: return "numerical failure";
    case SOTU_ERR_NOMEM: return "out of memory";
    case SOTU_ERR_MPI: return "MPI error";
    case SOTU_ERR_INTERNAL: return "internal error";
    case SOTU_ERR_COUNT_: break;
    }
    return "unknown status";
}

int sotu_exit_code(sotu_status s)
{
    switch (s) {
    case SOTU_OK: return SOTU_EXIT_OK;
    case SOTU_ERR_USAGE:
    case SOTU_ERR_CONFIG: return SOTU_EXIT_USAGE;
    case SOTU_ERR_DATA: return SOTU_EXIT_DATA;
    case SOTU_ERR_IO: return SOTU_EXIT_IO;
    case SOTU_ERR_NUMERIC: return SOTU_EXIT_NUMERIC;
    default: return SOTU_EXIT_OTHER;
    }
}

sotu_status sotu_error(sotu_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    return s;
}

sotu_status sotu_error_context(sotu_status s, const char *fmt, ...)
{
    char prefix[512], old[sizeof last_message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_message, sizeof old);
    snprintf(last_message, sizeof last_message, "%s: %s", prefix,
             old[0] ? old : sotu_strerror(s));
    return s;
}

const char *sotu_last_error(void) { return last_message; }

void sotu_clear_error(void) { last_message[0] = '\0'; }
