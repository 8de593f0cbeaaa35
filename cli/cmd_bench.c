/* `sotu bench SUB [options]`: dispatch to the benchmark of SUB. */
#include <stdio.h>
#include <string.h>

#include "common/status.h"
#include "cli/bench/bench.h"
#include "cli/commands.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} benches[] = {
    {"train", sotu_bench_train, "training step (forward, backward, AdamW) on synthetic data"},
    {"codec", sotu_bench_codec, "delta codec: bytes per kept value, encode/decode MB/s"},
    {"merge", sotu_bench_merge, "merge of sparse deltas beside memcpy bandwidth"},
};

static void bench_usage(FILE *f)
{
    fprintf(f, "usage: sotu bench SUB [options]   (sotu bench SUB --help for each)\n"
               "Prints one JSON object per line on stdout.\n\n");
    for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++)
        fprintf(f, "  %-8s %s\n", benches[i].name, benches[i].summary);
}

int sotu_cmd_bench(int argc, char **argv)
{
    if (argc < 2) {
        bench_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        bench_usage(stdout);
        return SOTU_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++)
        if (!strcmp(argv[1], benches[i].name))
            return benches[i].run(argc - 1, argv + 1);
    fprintf(stderr, "sotu bench: unknown benchmark '%s'\n", argv[1]);
    bench_usage(stderr);
    return SOTU_EXIT_USAGE;
}
