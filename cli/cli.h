/* Command-line helpers shared by the subcommands that take a configuration:
 *
 *     sotu CMD [CONFIG] [--set key=value ...] [--print-config] [--help] [own flags]
 *
 * A command parses argv with getopt_long, lets sotu_cli_option() take the
 * common options, then builds its configuration with sotu_cli_config():
 *
 *     static const struct option opts[] = {
 *         SOTU_CLI_OPTIONS,
 *         {"resume", no_argument, NULL, 'r'},
 *         {NULL, 0, NULL, 0}};
 *     sotu_cli_args a = {0};
 *     bool resume = false;
 *     int o;
 *     optind = 0;                          (argv[0] is the subcommand name)
 *     while ((o = getopt_long(argc, argv, SOTU_CLI_SHORT "r", opts, NULL)) != -1) {
 *         int r = sotu_cli_option(&a, "train", o, optarg);
 *         if (r < 0)
 *             return SOTU_EXIT_USAGE;
 *         if (r > 0)
 *             continue;
 *         if (o == 'r') resume = true;
 *         else { usage(stderr); return SOTU_EXIT_USAGE; }
 *     }
 *     if (a.help) { usage(stdout); return SOTU_EXIT_OK; }
 *     if (optind != argc - 1) { usage(stderr); return SOTU_EXIT_USAGE; }
 *     sotu_config cfg;
 *     int rc = sotu_cli_config("train", argv[optind], a.sets, a.n_sets, &cfg);
 *     if (rc) return rc;
 *     if (a.print_config) { sotu_config_print(&cfg, stdout); return SOTU_EXIT_OK; }
 */
#ifndef SOTU_CLI_CLI_H
#define SOTU_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "common/status.h"

#define SOTU_CLI_MAX_SETS 128

/* getopt_long codes of the common long options (outside the char range). */
enum { SOTU_CLI_OPT_SET = 0x1000, SOTU_CLI_OPT_PRINT_CONFIG };

/* The common entries of a command's struct option table, and its short
 * options ("-h" for --help, "-s k=v" for --set). */
#define SOTU_CLI_OPTIONS                                                  \
    {"set", required_argument, NULL, SOTU_CLI_OPT_SET},                   \
    {"print-config", no_argument, NULL, SOTU_CLI_OPT_PRINT_CONFIG},       \
    {"help", no_argument, NULL, 'h'}
#define SOTU_CLI_SHORT "hs:"

/* The common options seen so far. sets point into argv, in command-line order. */
typedef struct {
    char *sets[SOTU_CLI_MAX_SETS];
    int n_sets;
    bool print_config;
    bool help;
} sotu_cli_args;

/* Takes one getopt_long result. Returns 1 if it was a common option (now
 * recorded in a), 0 if it is the command's own (or '?'), and -1 after
 * printing "sotu CMD: ..." for an unusable common option (too many --set);
 * the command then exits with SOTU_EXIT_USAGE. */
int sotu_cli_option(sotu_cli_args *a, const char *cmd, int opt, char *arg);

/* Checks the positional arguments argv[first..argc) of command cmd, which
 * takes min to max of them (what names one, e.g. "CONFIG file"). A stray
 * "key=value" among them (`--set a=1 b=2`: an override without its own
 * --set) is named with the fix. Prints "sotu CMD: ..." and returns
 * SOTU_EXIT_USAGE, or returns 0. */
int sotu_cli_positionals(const char *cmd, int argc, char **argv, int first, int min, int max,
                         const char *what);

/* Builds a checked configuration: loads config_path over the defaults (or
 * takes the defaults when config_path is NULL), applies the n_sets "k=v"
 * overrides in order, and validates. On failure prints "sotu CMD: message"
 * to stderr and returns the exit code (2 for a configuration error, 4 for an
 * unreadable file); returns 0 on success. */
int sotu_cli_config(const char *cmd, const char *config_path, char *const *sets, int n_sets,
                    sotu_config *cfg);

/* The one number parser of the command line: the value v of option opt (the
 * option as the user wrote it, e.g. "--batch") as an integer in [lo, hi], a
 * non-negative 64-bit integer (seeds), or a finite number in [lo, hi]
 * (open: SOTU_CLI_LO_OPEN for (lo, .., SOTU_CLI_HI_OPEN for .., hi)). Nothing else is accepted: no empty value, no
 * trailing characters, no overflow. On failure returns SOTU_ERR_USAGE with
 * "OPT 'V': expected an integer in LO..HI" (a non-negative integer, a number
 * in [LO, HI]) and leaves *out unchanged; the command prints it with
 * sotu_cmd_fail and exits 2. */
sotu_status sotu_cli_int(const char *opt, const char *v, int lo, int hi, int *out);
sotu_status sotu_cli_uint64(const char *opt, const char *v, uint64_t *out);
enum { SOTU_CLI_LO_OPEN = 1, SOTU_CLI_HI_OPEN = 2 };
sotu_status sotu_cli_number(const char *opt, const char *v, double lo, double hi, int open,
                            double *out);

/* The arguments getopt_long left, argv[optind..argc), into pos[0..max)
 * (*n of them); one more is "unexpected argument 'X' (see --help)",
 * SOTU_ERR_USAGE. */
sotu_status sotu_cli_take_positionals(int argc, char **argv, const char **pos, int max, int *n);

/* The usage error of a getopt_long result '?' (unknown option) or ':'
 * (missing value; the option string starts with ':' and opterr is 0), after
 * the call that returned it: "option --x needs a value" or "unknown argument
 * '--x' (see --help)". */
sotu_status sotu_cli_getopt_error(int opt, char *const *argv);

#endif
