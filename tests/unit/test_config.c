/* Configuration: defaults, the example files, --set overrides, the
 * print/load round trip, and one test per kind of error with its message. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/config.h"

static char tmpdir[] = "/tmp/sotu_test_config_XXXXXX";

/* Writes text to tmpdir/name and returns the path (static buffer per call site use). */
static const char *write_yaml(const char *name, const char *text)
{
    static char path[4][512];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    if (!f) {
        perror(p);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return p;
}

static bool contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* Loading `text` fails with `want`; the message contains each of the needles. */
static void expect_load_error(const char *name, const char *text, sotu_status want,
                              const char *needle1, const char *needle2)
{
    const char *path = write_yaml(name, text);
    sotu_config cfg;
    sotu_clear_error();
    sotu_status s = sotu_config_load(&cfg, path);
    const char *msg = sotu_last_error();
    printf("%s -> %s\n", name, msg);
    CHECK_MSG(s == want, "%s: status %d, want %d", name, s, want);
    CHECK_MSG(contains(msg, path), "%s: message lacks the path: %s", name, msg);
    CHECK_MSG(!needle1 || contains(msg, needle1), "%s: message lacks '%s': %s", name, needle1,
              msg);
    CHECK_MSG(!needle2 || contains(msg, needle2), "%s: message lacks '%s': %s", name, needle2,
              msg);
    /* A failed load leaves the defaults. */
    CHECK(cfg.train.epochs == 2 && cfg.sotu.n_keep == 0 && cfg.source_path[0] == '\0');
}

static void expect_set_error(sotu_config *cfg, const char *assignment, const char *needle)
{
    char *before = sotu_config_to_yaml(cfg);
    sotu_clear_error();
    sotu_status s = sotu_config_set(cfg, assignment);
    const char *msg = sotu_last_error();
    printf("--set %s -> %s\n", assignment, msg);
    CHECK_MSG(s == SOTU_ERR_CONFIG, "--set %s: status %d", assignment, s);
    char want[300];
    snprintf(want, sizeof want, "--set %s", assignment);
    CHECK_MSG(contains(msg, want), "message lacks '%s': %s", want, msg);
    CHECK_MSG(!needle || contains(msg, needle), "message lacks '%s': %s", needle, msg);
    char *after = sotu_config_to_yaml(cfg);
    CHECK_MSG(before && after && !strcmp(before, after), "a failed --set %s changed cfg",
              assignment);
    free(before);
    free(after);
}

static void test_defaults(void)
{
    sotu_config c;
    sotu_config_defaults(&c);
    CHECK(!strcmp(c.method, "sotu"));
    CHECK(!strcmp(c.model.pretrained, "data/pretrained/vit-tiny-fmnist.h5"));
    CHECK(c.model.image_size == 28 && c.model.channels == 1 && c.model.patch == 4);
    CHECK(c.model.dim == 96 && c.model.depth == 6 && c.model.heads == 3 && c.model.mlp_ratio == 4);
    CHECK(!strcmp(c.model.arch, "vit") && c.model.width == 64 && c.model.small_input);
    CHECK(!strcmp(c.clr.variant, "clr"));
    CHECK(!strcmp(c.data.manifest, "data/tasks/fmnist5/manifest.yaml"));
    CHECK(c.data.mean == 0.5 && c.data.std == 0.5);
    CHECK(c.train.epochs == 2 && c.train.batch_size == 64 && c.train.lr == 1e-3);
    CHECK(!strcmp(c.train.optimizer, "adamw"));
    CHECK(c.train.weight_decay == 0.05 && c.train.momentum == 0.9);
    CHECK(c.train.beta1 == 0.9 && c.train.beta2 == 0.999 && c.train.eps == 1e-8);
    CHECK(c.train.warmup_steps == 20 && c.train.grad_clip == 1.0 && c.train.label_smoothing == 0);
    CHECK(!strcmp(c.train.tune, "all") && c.train.threads == 0 && c.train.seed == 0);
    CHECK(c.train.augment_pad == 2 && !c.train.augment_flip && c.train.max_steps == 0);
    CHECK(c.train.head_epochs == 0);
    CHECK(c.sotu.n_keep == 0 && !c.sotu.rescale && !strcmp(c.sotu.value_dtype, "f32"));
    CHECK(!strcmp(c.merge.mode, "sum") && c.merge.scale == 1.0);
    CHECK(c.eval.n_classifiers == 3 && !strcmp(c.eval.classifiers[0], "task_heads") &&
          !strcmp(c.eval.classifiers[1], "ncm") && !strcmp(c.eval.classifiers[2], "ridge"));
    CHECK(c.eval.every == 1 && c.eval.n_baselines == 4 &&
          !strcmp(c.eval.baselines[0], "finetuned") && !strcmp(c.eval.baselines[3], "sequential"));
    CHECK(c.checkpoint.every == 0 && !strcmp(c.output.dir, "runs/quickstart"));
    CHECK(!c.mpi.coordinator_trains && c.mpi.task_timeout == SOTU_CONFIG_AUTO);
    CHECK(c.pretrain.epochs == 10 && c.pretrain.batch_size == 128 && c.pretrain.lr == 1e-3 &&
          c.pretrain.warmup_steps == 200);
    CHECK(!strcmp(c.pretrain.data_dir, "/usr/share/datasets/fashion-mnist"));
    CHECK(!strcmp(c.pretrain.out, "data/pretrained/vit-tiny-fmnist.h5"));
    CHECK(c.n_sweep == 0 && c.source_path[0] == '\0');
    CHECK(sotu_config_validate(&c) == SOTU_OK);
}

static void test_examples(void)
{
    const char *src = getenv("SOTU_SOURCE_DIR");
    CHECK_MSG(src != NULL, "SOTU_SOURCE_DIR is not set (CTest sets it)");
    if (!src)
        return;
    char path[1024], want[1200];
    sotu_config c, d;
    sotu_config_defaults(&d);

    snprintf(path, sizeof path, "%s/examples/quickstart.yaml", src);
    sotu_status s = sotu_config_load(&c, path);
    CHECK_MSG(s == SOTU_OK, "%s", sotu_last_error());
    CHECK(sotu_config_validate(&c) == SOTU_OK);
    CHECK(!strcmp(c.source_path, path));
    /* Relative paths are taken from the file's directory. */
    snprintf(want, sizeof want, "%s/examples/../data/pretrained/vit-tiny-fmnist.h5", src);
    CHECK_MSG(!strcmp(c.model.pretrained, want), "%s", c.model.pretrained);
    CHECK(!strcmp(c.pretrain.out, want));
    snprintf(want, sizeof want, "%s/examples/../data/tasks/fmnist5/manifest.yaml", src);
    CHECK_MSG(!strcmp(c.data.manifest, want), "%s", c.data.manifest);
    /* Everything else is the defaults written out. */
    snprintf(c.model.pretrained, sizeof c.model.pretrained, "%s", d.model.pretrained);
    snprintf(c.data.manifest, sizeof c.data.manifest, "%s", d.data.manifest);
    snprintf(c.pretrain.out, sizeof c.pretrain.out, "%s", d.pretrain.out);
    char *a = sotu_config_to_yaml(&c), *b = sotu_config_to_yaml(&d);
    CHECK_MSG(a && b && !strcmp(a, b), "quickstart.yaml differs from the defaults:\n%s\n%s", a, b);
    free(a);
    free(b);

    snprintf(path, sizeof path, "%s/examples/fmnist53.yaml", src);
    s = sotu_config_load(&c, path);
    CHECK_MSG(s == SOTU_OK, "%s", sotu_last_error());
    CHECK(sotu_config_validate(&c) == SOTU_OK);
    CHECK(contains(c.data.manifest, "/examples/../data/tasks/fmnist53/manifest.yaml"));
    CHECK(!strcmp(c.output.dir, "runs/fmnist53"));

    snprintf(path, sizeof path, "%s/examples/split5.yaml", src);
    s = sotu_config_load(&c, path);
    CHECK_MSG(s == SOTU_OK, "%s", sotu_last_error());
    CHECK(sotu_config_validate(&c) == SOTU_OK);
    CHECK(contains(c.data.manifest, "/examples/../data/tasks/split5-inv/manifest.yaml"));
    CHECK(!strcmp(c.output.dir, "runs/split5"));
    /* The recipe issue 17's study chose on validation (bench/RESULTS.md). */
    CHECK(c.train.epochs == d.train.epochs && c.train.lr == 5e-3 &&
          c.train.batch_size == d.train.batch_size && c.train.head_epochs == 3);
    CHECK(c.sotu.n_keep == 1 && c.sotu.keep[0] == 0.05 && !strcmp(c.sotu.tuning, "posthoc"));

    snprintf(path, sizeof path, "%s/examples/sweep.yaml", src);
    s = sotu_config_load(&c, path);
    CHECK_MSG(s == SOTU_OK, "%s", sotu_last_error());
    CHECK(sotu_config_validate(&c) == SOTU_OK);
    CHECK(c.n_sweep == 2);
    CHECK(!strcmp(c.sweep[0].key, "train.lr") && c.sweep[0].n_values == 2);
    CHECK(!strcmp(c.sweep[1].key, "sotu.keep") && c.sweep[1].n_values == 2 &&
          !strcmp(c.sweep[1].values[0], "0.2") && !strcmp(c.sweep[1].values[1], "0.05"));
    /* Each value applies through --set. */
    for (int i = 0; i < c.n_sweep; i++) {
        for (int j = 0; j < c.sweep[i].n_values; j++) {
            char assignment[200];
            snprintf(assignment, sizeof assignment, "%s=%s", c.sweep[i].key, c.sweep[i].values[j]);
            CHECK_MSG(sotu_config_set(&c, assignment) == SOTU_OK, "%s", sotu_last_error());
        }
    }
    CHECK(c.train.lr == 3e-4 && c.sotu.n_keep == 1 && c.sotu.keep[0] == 0.05);
}

static void test_overrides(void)
{
    sotu_config c;
    sotu_config_defaults(&c);
    CHECK(sotu_config_set(&c, "train.lr=3e-4") == SOTU_OK && c.train.lr == 3e-4);
    CHECK(sotu_config_set(&c, " train.epochs = 5") == SOTU_OK && c.train.epochs == 5);
    CHECK(sotu_config_set(&c, "train.optimizer=sgd") == SOTU_OK &&
          !strcmp(c.train.optimizer, "sgd"));
    CHECK(sotu_config_set(&c, "train.augment_flip=yes") == SOTU_OK && c.train.augment_flip);
    CHECK(sotu_config_set(&c, "train.augment_flip=False") == SOTU_OK && !c.train.augment_flip);
    CHECK(sotu_config_set(&c, "train.seed=18446744073709551615") == SOTU_OK &&
          c.train.seed == UINT64_MAX);
    CHECK(sotu_config_set(&c, "eval.classifiers=[ncm, ridge]") == SOTU_OK &&
          c.eval.n_classifiers == 2 && !strcmp(c.eval.classifiers[1], "ridge"));
    CHECK(sotu_config_set(&c, "eval.classifiers=ncm") == SOTU_OK && c.eval.n_classifiers == 1 &&
          !strcmp(c.eval.classifiers[0], "ncm"));
    CHECK(sotu_config_set(&c, "eval.baselines=[]") == SOTU_OK && c.eval.n_baselines == 0);
    CHECK(sotu_config_set(&c, "sotu.keep=0.1") == SOTU_OK && c.sotu.n_keep == 1 &&
          c.sotu.keep[0] == 0.1);
    CHECK(sotu_config_set(&c, "sotu.keep=[0.2, 0.05, 1]") == SOTU_OK && c.sotu.n_keep == 3 &&
          c.sotu.keep[0] == 0.2 && c.sotu.keep[1] == 0.05 && c.sotu.keep[2] == 1.0);
    CHECK(sotu_config_set(&c, "sotu.keep=auto") == SOTU_OK && c.sotu.n_keep == 0);
    CHECK(sotu_config_set(&c, "train={lr: 0.01, batch_size: 32}") == SOTU_OK &&
          c.train.lr == 0.01 && c.train.batch_size == 32 && c.train.epochs == 5);
    /* --set paths stay relative to the working directory. */
    CHECK(sotu_config_set(&c, "model.pretrained=w/x.h5") == SOTU_OK &&
          !strcmp(c.model.pretrained, "w/x.h5"));
    CHECK(sotu_config_set(&c, "output.dir=runs/a=b") == SOTU_OK &&
          !strcmp(c.output.dir, "runs/a=b"));
    CHECK(sotu_config_set(&c, "sweep.train.lr=[1e-3, 3e-4]") == SOTU_OK && c.n_sweep == 1 &&
          c.sweep[0].n_values == 2 && !strcmp(c.sweep[0].values[1], "3e-4"));
    CHECK(sotu_config_set(&c, "sweep.train.lr=[0.1]") == SOTU_OK && c.n_sweep == 1 &&
          c.sweep[0].n_values == 1);
    CHECK(sotu_config_set(&c, "sweep.sotu.keep=[0.5, 0.25]") == SOTU_OK && c.n_sweep == 2);
    CHECK(sotu_config_set(&c, "sweep={}") == SOTU_OK && c.n_sweep == 0);
    CHECK(sotu_config_validate(&c) == SOTU_OK);
}

static void test_set_errors(void)
{
    sotu_config c;
    sotu_config_defaults(&c);
    CHECK(sotu_config_set(&c, "sotu.keep=0.3") == SOTU_OK);
    expect_set_error(&c, "train.lr", "key=value");
    expect_set_error(&c, "=1", "key=value");
    expect_set_error(&c, "train.lr=fast", "train.lr: expected a number");
    expect_set_error(&c, "train.lrr=1", "unknown key \"train.lrr\"");
    expect_set_error(&c, "train.epochs=1.5", "train.epochs: expected an integer");
    expect_set_error(&c, "train.epochs=0", "train.epochs");
    expect_set_error(&c, "train.epochs=99999999999999", "train.epochs");
    expect_set_error(&c, "train.seed=-1", "train.seed");
    expect_set_error(&c, "train.lr=[1, 2]", "got a list");
    expect_set_error(&c, "train.lr={a: 1}", "got a mapping");
    expect_set_error(&c, "train=3", "expected a mapping");
    expect_set_error(&c, "train.optimizer=adam", "one of adamw, sgd");
    expect_set_error(&c, "train.augment_flip=maybe", "true or false");
    expect_set_error(&c, "train.lr=nan", "train.lr");
    expect_set_error(&c, "train.lr=1e999", "train.lr");
    expect_set_error(&c, "sotu.keep=0", "sotu.keep");
    expect_set_error(&c, "sotu.keep=1.5", "sotu.keep");
    expect_set_error(&c, "sotu.keep=[0.2, 2]", "got \"2\"");
    expect_set_error(&c, "sotu.keep=[]", "sotu.keep");
    expect_set_error(&c, "sotu.keep=[0.1, [0.2]]", "sotu.keep");
    expect_set_error(&c, "eval.classifiers=[ncm, knn]", "got \"knn\"");
    expect_set_error(&c, "eval.classifiers=[ncm, ncm]", "distinct");
    expect_set_error(&c, "eval.classifiers=[]", "eval.classifiers");
    expect_set_error(&c, "output.dir=", "output.dir");
    expect_set_error(&c, "train.lr=[1, 2", "YAML syntax error");
    expect_set_error(&c, "train={lr: 1, lr: 2}", "set twice");
    expect_set_error(&c, "sweep.train.lrx=[1]", "unknown key \"sweep.train.lrx\"");
    expect_set_error(&c, "sweep.train.lr=0.1", "list of values");
    expect_set_error(&c, "sweep.train.lr=[0.1, -1]", "sweep.train.lr: expected a number");
    expect_set_error(&c, "sweep=3", "sweep: expected a mapping");
    expect_set_error(&c, "mpi.task_timeout=-1", "mpi.task_timeout: expected auto or a number in [0");
    expect_set_error(&c, "mpi.task_timeout=soon", "got \"soon\"");
    CHECK(sotu_config_set(&c, "mpi.task_timeout=0") == SOTU_OK && c.mpi.task_timeout == 0);
    CHECK(sotu_config_set(&c, "mpi.task_timeout=auto") == SOTU_OK &&
          c.mpi.task_timeout == SOTU_CONFIG_AUTO);
    CHECK(c.sotu.n_keep == 1 && c.sotu.keep[0] == 0.3);
}

static void test_round_trip(void)
{
    sotu_config c, d;
    sotu_config_defaults(&c);
    const char *sets[] = {
        "method=clr",
        "model.pretrained='/abs/odd: path #1.h5'",
        "model.dim=192",
        "model.arch=resnet34",
        "model.width=16",
        "model.small_input=false",
        "clr.variant=clr-full",
        "data.manifest=rel/manifest.yaml",
        "data.mean=-0.25",
        "train.lr=0.30000000000000004",
        "train.eps=1e-12",
        "train.tune=\"*attn*, head\"",
        "train.seed=12345678901234",
        "train.augment_flip=true",
        "train.max_steps=7",
        "train.head_epochs=3",
        "sotu.keep=[0.2, 0.05, 0.0125]",
        "sotu.rescale=true",
        "sotu.value_dtype=bf16",
        "merge.mode=disjoint",
        "merge.scale=0.7",
        "eval.classifiers=[ridge]",
        "eval.baselines=[]",
        "output.dir='runs/x y: [z]'",
        "mpi.coordinator_trains=true",
        "mpi.task_timeout=90.5",
        "pretrain.out=out.h5",
        "sweep.train.lr=[1e-3, 3e-4]",
        "sweep.merge.mode=[sum, mean]",
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        CHECK_MSG(sotu_config_set(&c, sets[i]) == SOTU_OK, "%s", sotu_last_error());
    CHECK(!strcmp(c.train.tune, "*attn*, head") && !strcmp(c.output.dir, "runs/x y: [z]"));

    char *text = sotu_config_to_yaml(&c);
    CHECK(text != NULL);
    if (!text)
        return;
    printf("printed:\n%s", text);
    /* print and to_yaml agree */
    char path[512];
    snprintf(path, sizeof path, "%s/printed.yaml", tmpdir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    sotu_config_print(&c, f);
    fclose(f);
    f = fopen(path, "r");
    char buf[16384] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    CHECK(!strcmp(buf, text));

    sotu_status s = sotu_config_load(&d, path);
    CHECK_MSG(s == SOTU_OK, "%s", sotu_last_error());
    char *again = sotu_config_to_yaml(&d);
    CHECK_MSG(again && !strcmp(text, again), "round trip differs:\n%s", again);
    CHECK(!strcmp(d.method, "clr") && d.model.dim == 192 && d.data.mean == -0.25);
    CHECK(d.train.lr == 0.30000000000000004 && d.train.eps == 1e-12);
    CHECK(!strcmp(d.train.tune, "*attn*, head") && d.train.seed == 12345678901234ull);
    CHECK(d.train.augment_flip && d.train.max_steps == 7);
    CHECK(d.train.head_epochs == 3);
    CHECK(d.sotu.n_keep == 3 && d.sotu.keep[2] == 0.0125 && d.sotu.rescale);
    CHECK(!strcmp(d.sotu.value_dtype, "bf16") && !strcmp(d.merge.mode, "disjoint"));
    CHECK(d.merge.scale == 0.7 && d.eval.n_classifiers == 1 && d.eval.n_baselines == 0);
    CHECK(!strcmp(d.output.dir, "runs/x y: [z]") && d.mpi.coordinator_trains);
    CHECK(d.mpi.task_timeout == 90.5);
    CHECK(!strcmp(d.model.pretrained, "/abs/odd: path #1.h5"));
    CHECK(!strcmp(d.model.arch, "resnet34") && d.model.width == 16 && !d.model.small_input);
    CHECK(!strcmp(d.clr.variant, "clr-full"));
    /* Relative paths were written absolute, so they survive the move to tmpdir. */
    char cwd[512], want[1100];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    snprintf(want, sizeof want, "%s/rel/manifest.yaml", cwd);
    CHECK_MSG(!strcmp(d.data.manifest, want), "%s", d.data.manifest);
    CHECK(d.n_sweep == 2 && !strcmp(d.sweep[1].key, "merge.mode") &&
          !strcmp(d.sweep[1].values[1], "mean") && !strcmp(d.sweep[0].values[0], "1e-3"));
    free(text);
    free(again);

    /* keep: a single number prints as a number */
    CHECK(sotu_config_set(&c, "sotu.keep=0.5") == SOTU_OK);
    text = sotu_config_to_yaml(&c);
    CHECK(text && contains(text, "keep: 0.5\n"));
    free(text);
}

static void test_load(void)
{
    sotu_config c;
    const char *p = write_yaml("good.yaml",
                               "# comment\n"
                               "train:\n"
                               "  lr: 5.0e-4\n"
                               "  epochs: 3\n"
                               "model: {pretrained: weights/w.h5, heads: 4, dim: 128}\n"
                               "data.manifest: /abs/m.yaml\n"
                               "output:\n"
                               "  dir: out\n"
                               "sotu:\n"
                               "  keep: [0.1, 0.01]\n"
                               "sweep:\n"
                               "  train:\n"
                               "    epochs: [1, 2, 3]\n");
    sotu_status s = sotu_config_load(&c, p);
    CHECK_MSG(s == SOTU_OK, "%s", sotu_last_error());
    CHECK(c.train.lr == 5e-4 && c.train.epochs == 3 && c.model.heads == 4 && c.model.dim == 128);
    char want[600];
    snprintf(want, sizeof want, "%s/weights/w.h5", tmpdir);
    CHECK_MSG(!strcmp(c.model.pretrained, want), "%s", c.model.pretrained);
    CHECK(!strcmp(c.data.manifest, "/abs/m.yaml"));
    CHECK(!strcmp(c.output.dir, "out"));
    CHECK(c.sotu.n_keep == 2 && c.sotu.keep[1] == 0.01);
    CHECK(c.n_sweep == 1 && !strcmp(c.sweep[0].key, "train.epochs") && c.sweep[0].n_values == 3);
    CHECK(!strcmp(c.source_path, p));
    CHECK(sotu_config_validate(&c) == SOTU_OK);

    /* Only the defaults are written {}; an empty file is refused (below). */
    s = sotu_config_load(&c, write_yaml("defaults.yaml", "{}\n"));
    CHECK(s == SOTU_OK && c.train.epochs == 2);

    /* A file in the working directory keeps relative paths as written. */
    char cwd[512];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(tmpdir) == 0);
    s = sotu_config_load(&c, "good.yaml");
    CHECK(s == SOTU_OK && !strcmp(c.model.pretrained, "weights/w.h5"));
    CHECK(chdir(cwd) == 0);
}

static void test_load_errors(void)
{
    /* issue 14: an empty file (or only comments) is a mistake, not the defaults. */
    expect_load_error("empty.yaml", "", SOTU_ERR_CONFIG, "the file is empty", "{}");
    expect_load_error("comments.yaml", "# nothing\n", SOTU_ERR_CONFIG, "the file is empty",
                      NULL);
    /* issue 14: sequential is a baseline, not a method that trains. */
    expect_load_error("sequential.yaml", "method: sequential\n", SOTU_ERR_CONFIG,
                      ":1: method: expected one of sotu, clr", "eval.baselines");
    expect_load_error("unknown.yaml", "train:\n  epochs: 3\n  lrr: 0.1\n", SOTU_ERR_CONFIG,
                      ":3: unknown key \"train.lrr\"", "lr");
    expect_load_error("unknown_top.yaml", "method: sotu\nbogus: 1\n", SOTU_ERR_CONFIG,
                      ":2: unknown key \"bogus\"", NULL);
    expect_load_error("type.yaml", "train:\n  epochs: abc\n", SOTU_ERR_CONFIG,
                      ":2: train.epochs: expected an integer", "got \"abc\"");
    expect_load_error("type_map.yaml", "train:\n  lr:\n    a: 1\n", SOTU_ERR_CONFIG,
                      ":3: train.lr: expected a number", "got a mapping");
    expect_load_error("range.yaml", "\ntrain:\n  lr: -0.1\n", SOTU_ERR_CONFIG,
                      ":3: train.lr: expected a number > 0", "got \"-0.1\"");
    expect_load_error("range_int.yaml", "model:\n  depth: 0\n", SOTU_ERR_CONFIG,
                      ":2: model.depth: expected an integer in [1, 1024]", NULL);
    expect_load_error("choice.yaml", "merge:\n  mode: average\n", SOTU_ERR_CONFIG,
                      ":2: merge.mode: expected one of sum, mean, disjoint", "got \"average\"");
    expect_load_error("keep.yaml", "sotu:\n  keep: [0.2,\n         1.5]\n", SOTU_ERR_CONFIG,
                      ":3: sotu.keep", "got \"1.5\"");
    expect_load_error("syntax.yaml", "train:\n  lr: 1\n   epochs: 2\n  x: [\n", SOTU_ERR_CONFIG,
                      ":3:", "YAML syntax error");
    expect_load_error("syntax2.yaml", "train: {lr: 1\nmodel: 2\n", SOTU_ERR_CONFIG,
                      "YAML syntax error", NULL);
    expect_load_error("sweep_unknown.yaml", "sweep:\n  train.lr: [1e-3]\n  train.lrx: [1]\n",
                      SOTU_ERR_CONFIG, ":3: unknown key \"sweep.train.lrx\"", NULL);
    expect_load_error("sweep_value.yaml", "sweep:\n  merge.mode: [sum, avg]\n", SOTU_ERR_CONFIG,
                      ":2: sweep.merge.mode: expected one of", "got \"avg\"");
    expect_load_error("sweep_twice.yaml", "sweep:\n  train.lr: [1]\n  train: {lr: [2]}\n",
                      SOTU_ERR_CONFIG, ":3: sweep.train.lr: listed twice", NULL);
    expect_load_error("duplicate.yaml", "train:\n  lr: 1\ntrain.lr: 2\n", SOTU_ERR_CONFIG,
                      ":3: train.lr: set twice", NULL);
    expect_load_error("list_root.yaml", "- a\n- b\n", SOTU_ERR_CONFIG, ":1: expected a mapping",
                      NULL);
    expect_load_error("two_docs.yaml", "train: {lr: 1}\n---\ntrain: {lr: 2}\n", SOTU_ERR_CONFIG,
                      ":2: expected one YAML document", NULL);
    expect_load_error("section_scalar.yaml", "model: big\n", SOTU_ERR_CONFIG,
                      ":1: model: expected a mapping", NULL);

    char missing[512];
    snprintf(missing, sizeof missing, "%s/missing.yaml", tmpdir);
    sotu_config c;
    sotu_status s = sotu_config_load(&c, missing);
    CHECK(s == SOTU_ERR_IO);
    CHECK_MSG(contains(sotu_last_error(), missing), "%s", sotu_last_error());
    s = sotu_config_load(&c, tmpdir);
    CHECK(s == SOTU_ERR_IO);
}

static void test_validate(void)
{
    sotu_config c;
    const char *p = write_yaml("heads.yaml", "model:\n  dim: 100\n  heads: 3\n");
    CHECK(sotu_config_load(&c, p) == SOTU_OK);
    CHECK(sotu_config_validate(&c) == SOTU_ERR_CONFIG);
    CHECK_MSG(contains(sotu_last_error(), "model.dim") && contains(sotu_last_error(), p),
              "%s", sotu_last_error());
    sotu_config_defaults(&c);
    CHECK(sotu_config_set(&c, "model.patch=5") == SOTU_OK);
    CHECK(sotu_config_validate(&c) == SOTU_ERR_CONFIG);
    CHECK_MSG(contains(sotu_last_error(), "model.patch"), "%s", sotu_last_error());
}

/* eval.rank_by: one of the five classifiers (the parser), one that
 * eval.classifiers computes and not a sweep axis (validate). */
static void test_rank_by(void)
{
    sotu_config c;
    sotu_config_defaults(&c);
    CHECK(!strcmp(c.eval.rank_by, "task_heads") && sotu_config_validate(&c) == SOTU_OK);
    const char *ok[] = {"ncm", "ridge", "ncm_til", "ridge_til", "task_heads"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char set[64];
        snprintf(set, sizeof set, "eval.rank_by=%s", ok[i]);
        CHECK_MSG(sotu_config_set(&c, set) == SOTU_OK, "%s", sotu_last_error());
        CHECK(!strcmp(c.eval.rank_by, ok[i]) && sotu_config_validate(&c) == SOTU_OK);
    }
    expect_set_error(&c, "eval.rank_by=test_acc",
                     "eval.rank_by: expected one of task_heads, ncm, ridge, ncm_til, ridge_til, "
                     "got \"test_acc\"");
    expect_set_error(&c, "eval.rank_by=[ridge]", "eval.rank_by");
    const char *p = write_yaml("rank_by.yaml", "eval:\n  rank_by: merged\n");
    CHECK(sotu_config_load(&c, p) == SOTU_ERR_CONFIG);
    CHECK_MSG(contains(sotu_last_error(), "eval.rank_by") && contains(sotu_last_error(), "ridge_til"),
              "%s", sotu_last_error());

    /* The classifier must be computed: ridge and ridge_til need ridge. */
    sotu_config_defaults(&c);
    CHECK(sotu_config_set(&c, "eval.classifiers=[task_heads, ncm]") == SOTU_OK);
    CHECK(sotu_config_set(&c, "eval.rank_by=ridge") == SOTU_OK);
    CHECK(sotu_config_validate(&c) == SOTU_ERR_CONFIG);
    printf("validate -> %s\n", sotu_last_error());
    CHECK_MSG(contains(sotu_last_error(), "eval.rank_by: ridge needs ridge in eval.classifiers "
                                          "(it lists [task_heads, ncm])"), "%s", sotu_last_error());
    CHECK(sotu_config_set(&c, "eval.rank_by=ridge_til") == SOTU_OK);
    CHECK(sotu_config_validate(&c) == SOTU_ERR_CONFIG);
    CHECK(contains(sotu_last_error(), "ridge_til needs ridge in eval.classifiers"));
    CHECK(sotu_config_set(&c, "eval.rank_by=ncm_til") == SOTU_OK);
    CHECK(sotu_config_validate(&c) == SOTU_OK);
    /* task_heads (the default) must be computed only where it ranks: with a sweep. */
    CHECK(sotu_config_set(&c, "eval.classifiers=[ncm]") == SOTU_OK);
    CHECK(sotu_config_set(&c, "eval.rank_by=task_heads") == SOTU_OK);
    CHECK(sotu_config_validate(&c) == SOTU_OK);
    CHECK(sotu_config_set(&c, "sweep.train.lr=[1e-3, 1e-4]") == SOTU_OK);
    CHECK(sotu_config_validate(&c) == SOTU_ERR_CONFIG);
    CHECK(contains(sotu_last_error(), "eval.rank_by: task_heads needs task_heads"));
    CHECK(sotu_config_set(&c, "eval.rank_by=ncm") == SOTU_OK);
    CHECK(sotu_config_validate(&c) == SOTU_OK);
    /* Not a sweep axis: one ranking per sweep. */
    CHECK(sotu_config_set(&c, "sweep.eval.rank_by=[ncm, ncm_til]") == SOTU_OK);
    CHECK(sotu_config_validate(&c) == SOTU_ERR_CONFIG);
    CHECK(contains(sotu_last_error(), "sweep.eval.rank_by"));
    /* It round-trips through the printed YAML. */
    sotu_config_defaults(&c);
    CHECK(sotu_config_set(&c, "eval.rank_by=ridge_til") == SOTU_OK);
    char *text = sotu_config_to_yaml(&c);
    CHECK(text && contains(text, "rank_by: ridge_til"));
    free(text);
}

/* Every key of the table has a role (what resume and merge compare), and
 * the training text holds exactly the keys that train the method. */
static void test_key_roles(void)
{
    int n = sotu_config_key_count(), trains = 0;
    CHECK(n > 40);
    for (int i = 0; i < n; i++) {
        sotu_key_role r = sotu_config_key_role(i);
        CHECK_MSG(r >= SOTU_KEY_TRAINS && r <= SOTU_KEY_RUN, "%s: no role",
                  sotu_config_key_name(i));
        CHECK(strcmp(sotu_key_role_name(r), "?") != 0);
        trains += r == SOTU_KEY_TRAINS;
    }
    CHECK(sotu_config_key_role(n) == 0 && sotu_config_key_name(n) == NULL);
    struct {
        const char *key;
        sotu_key_role role;
    } want[] = {{"train.lr", SOTU_KEY_TRAINS},          {"train.seed", SOTU_KEY_TRAINS},
                {"train.max_steps", SOTU_KEY_TRAINS},   {"data.normalize", SOTU_KEY_TRAINS},
                {"method", SOTU_KEY_TRAINS},            {"train.threads", SOTU_KEY_RUN},
                {"sotu.value_dtype", SOTU_KEY_TRAINS_SOTU}, {"clr.variant", SOTU_KEY_TRAINS_CLR},
                {"model.pretrained", SOTU_KEY_THETA0},  {"sotu.keep", SOTU_KEY_SHIP_KEEP},
                {"data.manifest", SOTU_KEY_TASKS},      {"model.dim", SOTU_KEY_PRETRAIN},
                {"eval.baselines", SOTU_KEY_RUN},       {"merge.scale", SOTU_KEY_RUN},
                {"output.dir", SOTU_KEY_RUN},           {"data.val_fraction", SOTU_KEY_TRAINS},
                {"sotu.tuning", SOTU_KEY_TRAINS_SOTU},  {"eval.rank_by", SOTU_KEY_RUN}};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        int i = 0;
        while (i < n && strcmp(sotu_config_key_name(i), want[w].key))
            i++;
        CHECK_MSG(i < n && sotu_config_key_role(i) == want[w].role, "%s: role %s", want[w].key,
                  i < n ? sotu_key_role_name(sotu_config_key_role(i)) : "(no such key)");
    }

    sotu_config cfg;
    sotu_config_defaults(&cfg);
    char *text = sotu_config_training_text(&cfg);
    CHECK(text && contains(text, "train.lr: 0.001\n") && contains(text, "train.seed: 0\n"));
    CHECK(contains(text, "sotu.value_dtype: f32\n") && !contains(text, "clr.variant"));
    CHECK(!contains(text, "train.threads") && !contains(text, "eval.") &&
          !contains(text, "merge.") && !contains(text, "output.") && !contains(text, "pretrain"));
    int lines = 0;
    for (const char *p = text; p && *p; p++)
        lines += *p == '\n';
    CHECK_MSG(lines == trains + 3, "%d lines for %d trains keys + 3 sotu keys", lines, trains);
    CHECK(contains(text, "sotu.tuning: posthoc\n") && contains(text, "data.val_fraction: 0.1\n"));
    {
        sotu_config mc;
        sotu_config_defaults(&mc);
        CHECK(sotu_config_set(&mc, "sotu.tuning=masked") == SOTU_OK);
        CHECK(sotu_config_validate(&mc) == SOTU_OK);
        CHECK(sotu_config_set(&mc, "sotu.rescale=true") == SOTU_OK);
        CHECK(sotu_config_validate(&mc) == SOTU_ERR_CONFIG);
        CHECK(contains(sotu_last_error(), "sotu.tuning masked with sotu.rescale true"));
        CHECK(sotu_config_set(&mc, "sotu.tuning=sparse") == SOTU_ERR_CONFIG);
        CHECK(sotu_config_set(&mc, "data.val_fraction=0.95") == SOTU_ERR_CONFIG);
        CHECK(sotu_config_set(&mc, "data.val_fraction=-0.1") == SOTU_ERR_CONFIG);
    }
    /* A key that cannot change a delta leaves the text as it was; one that can changes it. */
    CHECK(sotu_config_set(&cfg, "eval.fit_per_task=7") == SOTU_OK);
    CHECK(sotu_config_set(&cfg, "eval.rank_by=ridge") == SOTU_OK);
    CHECK(sotu_config_set(&cfg, "train.threads=3") == SOTU_OK);
    CHECK(sotu_config_set(&cfg, "sotu.keep=[0.1, 0.05]") == SOTU_OK);
    char *same = sotu_config_training_text(&cfg);
    CHECK(same && !strcmp(same, text));
    CHECK(sotu_config_set(&cfg, "train.lr=5e-4") == SOTU_OK);
    char *other = sotu_config_training_text(&cfg);
    CHECK(other && contains(other, "train.lr: 0.0005\n"));
    CHECK(sotu_config_set(&cfg, "method=clr") == SOTU_OK);
    char *clr = sotu_config_training_text(&cfg);
    CHECK(clr && contains(clr, "clr.variant: clr\n") && !contains(clr, "sotu.value_dtype"));
    free(text);
    free(same);
    free(other);
    free(clr);
    printf("key roles: %d keys, %d train every method\n", n, trains);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults();
    test_examples();
    test_overrides();
    test_set_errors();
    test_round_trip();
    test_load();
    test_load_errors();
    test_validate();
    test_rank_by();
    test_key_roles();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_finish("test_config");
}
