#include "cli/cli.h"

#include <ctype.h>
#include <stdio.h>
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
