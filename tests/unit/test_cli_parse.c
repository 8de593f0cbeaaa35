/* The command line's one number parser (coordinator/cli.h): whole values
 * only, ranges inclusive or open as asked, overflow refused, the message
 * naming the option and the value; and the getopt_long error messages the
 * commands print (a missing value, an unknown option, a stray argument). */
#include <getopt.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "cli/cli.h"

/* s failed with SOTU_ERR_USAGE and the message holds want. */
static void expect_usage(sotu_status s, const char *want)
{
    CHECK(s == SOTU_ERR_USAGE);
    CHECK_MSG(strstr(sotu_last_error(), want) != NULL, "'%s' lacks '%s'", sotu_last_error(),
              want);
}

static void test_int(void)
{
    int x = 7;
    CHECK(sotu_cli_int("--n", "12", 1, 100, &x) == SOTU_OK && x == 12);
    CHECK(sotu_cli_int("--n", "-3", -5, 5, &x) == SOTU_OK && x == -3);
    CHECK(sotu_cli_int("--n", "100", 1, 100, &x) == SOTU_OK && x == 100);
    x = 7;
    expect_usage(sotu_cli_int("--n", "101", 1, 100, &x), "--n '101': expected an integer in 1..100");
    expect_usage(sotu_cli_int("--n", "0", 1, 100, &x), "--n '0'");
    expect_usage(sotu_cli_int("--n", "", 1, 100, &x), "--n ''");
    expect_usage(sotu_cli_int("--n", "12abc", 1, 100, &x), "'12abc'");
    expect_usage(sotu_cli_int("--n", "1.5", 1, 100, &x), "'1.5'");
    expect_usage(sotu_cli_int("--n", "99999999999999999999", 1, 100, &x), "expected an integer");
    expect_usage(sotu_cli_int("--n", "4294967297", 0, 2147483647, &x), "expected an integer");
    CHECK(x == 7); /* unchanged on failure */
}

static void test_uint64(void)
{
    uint64_t x = 0;
    CHECK(sotu_cli_uint64("--seed", "18446744073709551615", &x) == SOTU_OK && x == UINT64_MAX);
    CHECK(sotu_cli_uint64("--seed", "0", &x) == SOTU_OK && x == 0);
    expect_usage(sotu_cli_uint64("--seed", "-1", &x), "--seed '-1': expected a non-negative integer");
    expect_usage(sotu_cli_uint64("--seed", "18446744073709551616", &x), "non-negative integer");
    expect_usage(sotu_cli_uint64("--seed", " 1", &x), "non-negative integer");
    expect_usage(sotu_cli_uint64("--seed", "", &x), "non-negative integer");
}

static void test_number(void)
{
    double x = 0;
    CHECK(sotu_cli_number("--r", "0.25", 0, 1, 0, &x) == SOTU_OK && x == 0.25);
    CHECK(sotu_cli_number("--r", "0", 0, 1, SOTU_CLI_HI_OPEN, &x) == SOTU_OK && x == 0);
    CHECK(sotu_cli_number("--r", "1", 0, 1, SOTU_CLI_LO_OPEN, &x) == SOTU_OK && x == 1);
    expect_usage(sotu_cli_number("--r", "1", 0, 1, SOTU_CLI_HI_OPEN, &x),
                 "--r '1': expected a number in [0, 1)");
    expect_usage(sotu_cli_number("--r", "0", 0, 1, SOTU_CLI_LO_OPEN, &x),
                 "--r '0': expected a number in (0, 1]");
    expect_usage(sotu_cli_number("--r", "nan", 0, 1, 0, &x), "'nan'");
    expect_usage(sotu_cli_number("--r", "inf", 0, 1e308, 0, &x), "'inf'");
    expect_usage(sotu_cli_number("--r", "0.5x", 0, 1, 0, &x), "'0.5x'");
    expect_usage(sotu_cli_number("--r", "", 0, 1, 0, &x), "''");
}

static void test_getopt(void)
{
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"force", no_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    char *missing[] = {"cmd", "--force", "--out", NULL};
    optind = 0;
    opterr = 0;
    int c, last = 0;
    while ((c = getopt_long(3, missing, ":h", opts, NULL)) != -1)
        last = c;
    CHECK(last == ':');
    expect_usage(sotu_cli_getopt_error(last, missing), "option --out needs a value");

    char *unknown[] = {"cmd", "--frobnicate", NULL};
    optind = 0;
    CHECK((c = getopt_long(2, unknown, ":h", opts, NULL)) == '?');
    expect_usage(sotu_cli_getopt_error(c, unknown), "unknown argument '--frobnicate' (see --help)");

    char *shortopt[] = {"cmd", "-x", NULL};
    optind = 0;
    CHECK((c = getopt_long(2, shortopt, ":h", opts, NULL)) == '?');
    expect_usage(sotu_cli_getopt_error(c, shortopt), "unknown argument '-x'");

    char *extra[] = {"cmd", "a", "--force", "b", NULL};
    optind = 0;
    while (getopt_long(4, extra, ":h", opts, NULL) != -1)
        ;
    const char *pos[1];
    int n = 0;
    expect_usage(sotu_cli_take_positionals(4, extra, pos, 1, &n), "unexpected argument 'b'");
    optind = 0;
    while (getopt_long(4, extra, ":h", opts, NULL) != -1)
        ;
    const char *two[2];
    CHECK(sotu_cli_take_positionals(4, extra, two, 2, &n) == SOTU_OK && n == 2 &&
          !strcmp(two[0], "a") && !strcmp(two[1], "b"));
}

int main(void)
{
    test_int();
    test_uint64();
    test_number();
    test_getopt();
    return check_finish("test_cli_parse");
}
