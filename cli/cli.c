#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/status.h"
#include "cli/commands.h"

int sotu_cmd_fail(const char *cmd, int s)
{
    const char *msg = sotu_last_error();
    fprintf(stderr, "sotu %s: %s\n", cmd, msg[0] ? msg : sotu_strerror((sotu_status)s));
    return sotu_exit_code((sotu_status)s);
}

int sotu_cli_option(sotu_cli_args *a, const char *cmd, int opt, char *arg)
{
    switch (opt) {
    case SOTU_CLI_OPT_SET:
    case 's':
        if (a->n_sets == SOTU_CLI_MAX_SETS) {
            fprintf(stderr, "sotu %s: too many --set options (at most %d)\n", cmd,
                    SOTU_CLI_MAX_SETS);
            return -1;
        }
        a->sets[a->n_sets++] = arg;
        return 1;
    case SOTU_CLI_OPT_PRINT_CONFIG: a->print_config = true; return 1;
    case 'h': a->help = true; return 1;
    default: return 0;
    }
}

/* "train.lr=3e-4": a configuration key (letters, digits, '_', '.') and '='. */
static bool looks_like_override(const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return false;
    for (const char *c = arg; c < eq; c++)
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '.')
            return false;
    return true;
}

int sotu_cli_positionals(const char *cmd, int argc, char **argv, int first, int min, int max,
                         const char *what)
{
    for (int i = first; i < argc; i++)
        if (looks_like_override(argv[i]) && access(argv[i], F_OK) != 0) {
            fprintf(stderr, "sotu %s: '%s' looks like a configuration override without its "
                    "--set: each override needs its own --set (--set %s)\n", cmd, argv[i],
                    argv[i]);
            return SOTU_EXIT_USAGE;
        }
    int n = argc - first;
    if (n >= min && n <= max)
        return 0;
    if (min == max)
        fprintf(stderr, "sotu %s: expected one %s, got %d arguments\n", cmd, what, n);
    else
        fprintf(stderr, "sotu %s: expected at most one %s, got %d arguments\n", cmd, what, n);
    return SOTU_EXIT_USAGE;
}

int sotu_cli_config(const char *cmd, const char *config_path, char *const *sets, int n_sets,
                    sotu_config *cfg)
{
    sotu_status s = SOTU_OK;
    sotu_clear_error();
    if (config_path)
        s = sotu_config_load(cfg, config_path);
    else
        sotu_config_defaults(cfg);
    for (int i = 0; !s && i < n_sets; i++)
        s = sotu_config_set(cfg, sets[i]);
    if (!s)
        s = sotu_config_validate(cfg);
    return s ? sotu_cmd_fail(cmd, s) : SOTU_EXIT_OK;
}

sotu_status sotu_cli_int(const char *opt, const char *v, int lo, int hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!v[0] || *end || errno || x < lo || x > hi)
        return sotu_error(SOTU_ERR_USAGE, "%s '%s': expected an integer in %d..%d", opt, v, lo,
                          hi);
    *out = (int)x;
    return SOTU_OK;
}

sotu_status sotu_cli_uint64(const char *opt, const char *v, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (!isdigit((unsigned char)v[0]) || *end || errno)
        return sotu_error(SOTU_ERR_USAGE, "%s '%s': expected a non-negative integer", opt, v);
    *out = x;
    return SOTU_OK;
}

sotu_status sotu_cli_number(const char *opt, const char *v, double lo, double hi, int open,
                            double *out)
{
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    bool lo_ok = open & SOTU_CLI_LO_OPEN ? x > lo : x >= lo;
    bool hi_ok = open & SOTU_CLI_HI_OPEN ? x < hi : x <= hi;
    if (!v[0] || *end || errno || !isfinite(x) || !lo_ok || !hi_ok)
        return sotu_error(SOTU_ERR_USAGE, "%s '%s': expected a number in %c%g, %g%c", opt, v,
                          open & SOTU_CLI_LO_OPEN ? '(' : '[', lo, hi,
                          open & SOTU_CLI_HI_OPEN ? ')' : ']');
    *out = x;
    return SOTU_OK;
}

sotu_status sotu_cli_take_positionals(int argc, char **argv, const char **pos, int max, int *n)
{
    *n = 0;
    for (int i = optind; i < argc; i++) {
        if (*n == max)
            return sotu_error(SOTU_ERR_USAGE, "unexpected argument '%s' (see --help)", argv[i]);
        pos[(*n)++] = argv[i];
    }
    return SOTU_OK;
}

sotu_status sotu_cli_getopt_error(int opt, char *const *argv)
{
    const char *arg = argv[optind - 1];
    if (opt == ':')
        return sotu_error(SOTU_ERR_USAGE, "option %s needs a value", arg);
    if (strncmp(arg, "--", 2) && optopt > 0 && optopt < 0x100)
        return sotu_error(SOTU_ERR_USAGE, "unknown argument '-%c' (see --help)", optopt);
    return sotu_error(SOTU_ERR_USAGE, "unknown argument '%s' (see --help)", arg);
}
