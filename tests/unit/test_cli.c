/* The common command-line pattern: getopt_long with SOTU_CLI_OPTIONS,
 * repeated --set in order, --print-config, --help, and the exit codes of
 * sotu_cli_config (0, 2 for a bad config or override, 4 for a missing file). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/status.h"
#include "cli/cli.h"

static char tmpdir[] = "/tmp/sotu_test_cli_XXXXXX";

/* Parses argv like a command with one own flag (--resume/-r). Returns the
 * getopt result state: 0 ok, else the exit code. */
static int parse(int argc, char **argv, sotu_cli_args *a, bool *resume, int *first_positional)
{
    static const struct option opts[] = {
        SOTU_CLI_OPTIONS, {"resume", no_argument, NULL, 'r'}, {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    *resume = false;
    optind = 0;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, SOTU_CLI_SHORT "r", opts, NULL)) != -1) {
        int r = sotu_cli_option(a, "test", o, optarg);
        if (r < 0)
            return SOTU_EXIT_USAGE;
        if (r > 0)
            continue;
        if (o == 'r')
            *resume = true;
        else
            return SOTU_EXIT_USAGE;
    }
    *first_positional = optind;
    return 0;
}

static void test_parse_and_config(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/c.yaml", tmpdir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs("train:\n  lr: 0.01\n  epochs: 4\n", f);
    fclose(f);

    char *argv[] = {"train",      "--set",          "train.lr=0.5", path, "-r",
                    "-s",         "train.lr=0.25",  "--set=sotu.keep=[0.2, 0.1]",
                    "--print-config", NULL};
    int argc = (int)(sizeof argv / sizeof argv[0]) - 1;
    sotu_cli_args a;
    bool resume;
    int pos;
    CHECK(parse(argc, argv, &a, &resume, &pos) == 0);
    CHECK(resume && a.print_config && !a.help);
    CHECK(a.n_sets == 3 && !strcmp(a.sets[0], "train.lr=0.5") &&
          !strcmp(a.sets[1], "train.lr=0.25") && !strcmp(a.sets[2], "sotu.keep=[0.2, 0.1]"));
    CHECK(pos == argc - 1 && !strcmp(argv[pos], path));

    sotu_config cfg;
    CHECK(sotu_cli_config("train", argv[pos], a.sets, a.n_sets, &cfg) == 0);
    CHECK(cfg.train.lr == 0.25 && cfg.train.epochs == 4 && cfg.sotu.n_keep == 2);

    /* Defaults when no file is given. */
    CHECK(sotu_cli_config("train", NULL, NULL, 0, &cfg) == 0 && cfg.train.lr == 1e-3);

    char *help[] = {"train", "--help", NULL};
    CHECK(parse(2, help, &a, &resume, &pos) == 0 && a.help);
    char *bad[] = {"train", "--bogus", NULL};
    CHECK(parse(2, bad, &a, &resume, &pos) == SOTU_EXIT_USAGE);
    char *noarg[] = {"train", "--set", NULL};
    CHECK(parse(2, noarg, &a, &resume, &pos) == SOTU_EXIT_USAGE);

    char *bad_set[] = {"train.lr"};
    CHECK(sotu_cli_config("train", path, bad_set, 1, &cfg) == SOTU_EXIT_USAGE);
    char *bad_value[] = {"train.lr=0.1", "train.lr=fast"};
    CHECK(sotu_cli_config("train", path, bad_value, 2, &cfg) == SOTU_EXIT_USAGE);
    CHECK(strstr(sotu_last_error(), "--set train.lr=fast") != NULL);
    char *bad_heads[] = {"model.heads=5"};
    CHECK(sotu_cli_config("train", path, bad_heads, 1, &cfg) == SOTU_EXIT_USAGE);

    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing.yaml", tmpdir);
    CHECK(sotu_cli_config("train", missing, NULL, 0, &cfg) == SOTU_EXIT_IO);
    CHECK(strstr(sotu_last_error(), missing) != NULL);

    /* Too many --set is a usage error, not an overflow. */
    sotu_cli_args many = {0};
    int r = 0;
    for (int i = 0; i <= SOTU_CLI_MAX_SETS && r >= 0; i++)
        r = sotu_cli_option(&many, "train", SOTU_CLI_OPT_SET, "train.lr=1");
    CHECK(r < 0 && many.n_sets == SOTU_CLI_MAX_SETS);
    unlink(path);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_parse_and_config();
    rmdir(tmpdir);
    return check_finish("test_cli");
}
