/* Run configuration: one key table, a libyaml document walker that applies
 * a YAML mapping to dotted keys, and a libyaml emitter that writes it back. */
#include "common/config.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

/* ------------------------------------------------------------------------ */
/* The key table                                                            */
/* ------------------------------------------------------------------------ */

typedef enum {
    K_INT,    /* int, range min..max */
    K_UINT64, /* uint64_t, any value */
    K_DOUBLE, /* double, range min..max (OPEN_MIN/OPEN_MAX exclude the bound) */
    K_BOOL,
    K_STRING, /* char[size], non-empty */
    K_PATH,   /* K_STRING resolved against the YAML file's directory */
    K_CHOICE, /* char[size], one of choices */
    K_NAMES,  /* char[SOTU_LIST_MAX][size] + int count, each one of choices */
    K_KEEP,   /* auto | number | list of numbers, each in (min, max] */
    K_AUTO,   /* auto (stored as SOTU_CONFIG_AUTO) | double in min..max, min >= 0 */
} key_type;

enum { OPEN_MIN = 1u << 0, OPEN_MAX = 1u << 1 };

typedef struct {
    const char *key;
    key_type type;
    size_t off, size;           /* the field; for K_NAMES the element size */
    size_t count_off;           /* K_NAMES, K_KEEP: the int count */
    const char *dflt;           /* YAML text */
    double min, max;
    unsigned flags;
    const char *const *choices; /* NULL-terminated */
    int min_count;              /* K_NAMES */
    sotu_key_role role;
} key_spec;

static const char *const methods[] = {"sotu", "clr", NULL}; /* sequential: a baseline */
static const char *const optimizers[] = {"adamw", "sgd", NULL};
static const char *const dtypes[] = {"f32", "bf16", NULL};
static const char *const tunings[] = {"posthoc", "masked", NULL};
static const char *const merge_modes[] = {"sum", "mean", "disjoint", NULL};
static const char *const classifiers[] = {"task_heads", "ncm", "ridge", NULL};
static const char *const rank_bys[] = {"task_heads", "ncm", "ridge", "ncm_til", "ridge_til",
                                       NULL};
static const char *const baselines[] = {"finetuned", "frozen", "dense", "sequential", NULL};
static const char *const normalizations[] = {"scalar", "inception", "imagenet", NULL};
static const char *const archs[] = {"vit", "resnet18", "resnet34", NULL};
static const char *const clr_variants[] = {"clr", "clr-full", NULL};

#define FIELD(m) offsetof(sotu_config, m), sizeof(((sotu_config *)0)->m)
/* The last argument of every row is the key's role (sotu_key_role): what a
 * change of its value does to a task's trained result. It is required, so a
 * new key cannot be added without saying whether resume and merge compare
 * it (README, "What resume and merge compare"). */
#define INT(k, m, d, lo, hi, r) {k, K_INT, FIELD(m), 0, d, lo, hi, 0, NULL, 0, r}
#define U64(k, m, d, r) {k, K_UINT64, FIELD(m), 0, d, 0, 0, 0, NULL, 0, r}
#define DBL(k, m, d, lo, hi, fl, r) {k, K_DOUBLE, FIELD(m), 0, d, lo, hi, fl, NULL, 0, r}
#define AUTO(k, m, d, lo, hi, r) {k, K_AUTO, FIELD(m), 0, d, lo, hi, 0, NULL, 0, r}
#define BOOL(k, m, d, r) {k, K_BOOL, FIELD(m), 0, d, 0, 0, 0, NULL, 0, r}
#define STR(k, m, d, r) {k, K_STRING, FIELD(m), 0, d, 0, 0, 0, NULL, 0, r}
#define PATH(k, m, d, r) {k, K_PATH, FIELD(m), 0, d, 0, 0, 0, NULL, 0, r}
#define CHOICE(k, m, d, c, r) {k, K_CHOICE, FIELD(m), 0, d, 0, 0, 0, c, 0, r}
#define NAMES(k, m, n, d, c, mincount, r)                                               \
    {k, K_NAMES, offsetof(sotu_config, m), sizeof(((sotu_config *)0)->m[0]),              \
     offsetof(sotu_config, n), d, 0, 0, 0, c, mincount, r}
/* Short names for the roles in the table below. */
#define TRAINS SOTU_KEY_TRAINS
#define TRAINS_SOTU SOTU_KEY_TRAINS_SOTU
#define TRAINS_CLR SOTU_KEY_TRAINS_CLR
#define THETA0 SOTU_KEY_THETA0
#define SHIP_KEEP SOTU_KEY_SHIP_KEEP
#define TASKS SOTU_KEY_TASKS
#define PRETRAIN SOTU_KEY_PRETRAIN
#define RUN SOTU_KEY_RUN

/* Keys of one section stay together: sotu_config_print relies on it. */
static const key_spec keys[] = {
    CHOICE("method", method, "sotu", methods, TRAINS),

    PATH("model.pretrained", model.pretrained, "data/pretrained/vit-tiny-fmnist.h5", THETA0),
    CHOICE("model.arch", model.arch, "vit", archs, PRETRAIN),
    INT("model.image_size", model.image_size, "28", 1, 4096, PRETRAIN),
    INT("model.channels", model.channels, "1", 1, 64, PRETRAIN),
    INT("model.patch", model.patch, "4", 1, 4096, PRETRAIN),
    INT("model.dim", model.dim, "96", 1, 65536, PRETRAIN),
    INT("model.depth", model.depth, "6", 1, 1024, PRETRAIN),
    INT("model.heads", model.heads, "3", 1, 1024, PRETRAIN),
    INT("model.mlp_ratio", model.mlp_ratio, "4", 1, 64, PRETRAIN),
    INT("model.width", model.width, "64", 1, 65536, PRETRAIN),
    BOOL("model.small_input", model.small_input, "true", PRETRAIN),

    PATH("data.manifest", data.manifest, "data/tasks/fmnist5/manifest.yaml", TASKS),
    DBL("data.mean", data.mean, "0.5", -INFINITY, INFINITY, 0, TRAINS),
    DBL("data.std", data.std, "0.5", 0, 1e3, OPEN_MIN, TRAINS),
    CHOICE("data.normalize", data.normalize, "scalar", normalizations, TRAINS),
    DBL("data.crop_pct", data.crop_pct, "1.0", 0, 1, OPEN_MIN, TRAINS),
    DBL("data.val_fraction", data.val_fraction, "0.1", 0, 0.9, 0, TRAINS),

    INT("train.epochs", train.epochs, "2", 1, 1000000, TRAINS),
    INT("train.head_epochs", train.head_epochs, "0", 0, 1000000, TRAINS),
    INT("train.batch_size", train.batch_size, "64", 1, 1 << 20, TRAINS),
    DBL("train.lr", train.lr, "1e-3", 0, INFINITY, OPEN_MIN, TRAINS),
    CHOICE("train.optimizer", train.optimizer, "adamw", optimizers, TRAINS),
    DBL("train.weight_decay", train.weight_decay, "0.05", 0, 10, 0, TRAINS),
    DBL("train.momentum", train.momentum, "0.9", 0, 1, OPEN_MAX, TRAINS),
    DBL("train.beta1", train.beta1, "0.9", 0, 1, OPEN_MAX, TRAINS),
    DBL("train.beta2", train.beta2, "0.999", 0, 1, OPEN_MAX, TRAINS),
    DBL("train.eps", train.eps, "1e-8", 0, 1, OPEN_MIN, TRAINS),
    INT("train.warmup_steps", train.warmup_steps, "20", 0, INT_MAX, TRAINS),
    DBL("train.grad_clip", train.grad_clip, "1.0", 0, 1e6, 0, TRAINS),
    DBL("train.label_smoothing", train.label_smoothing, "0", 0, 1, OPEN_MAX, TRAINS),
    STR("train.tune", train.tune, "all", TRAINS),
    INT("train.threads", train.threads, "0", 0, 4096, RUN),
    U64("train.seed", train.seed, "0", TRAINS),
    INT("train.augment_pad", train.augment_pad, "2", 0, 1024, TRAINS),
    BOOL("train.augment_flip", train.augment_flip, "false", TRAINS),
    INT("train.max_steps", train.max_steps, "0", 0, INT_MAX, TRAINS),
    INT("train.log_every", train.log_every, "1", 0, INT_MAX, RUN),

    {"sotu.keep", K_KEEP, FIELD(sotu.keep), offsetof(sotu_config, sotu.n_keep), "auto", 0, 1,
     OPEN_MIN, NULL, 0, SHIP_KEEP},
    BOOL("sotu.rescale", sotu.rescale, "false", TRAINS_SOTU),
    CHOICE("sotu.value_dtype", sotu.value_dtype, "f32", dtypes, TRAINS_SOTU),
    CHOICE("sotu.tuning", sotu.tuning, "posthoc", tunings, TRAINS_SOTU),

    CHOICE("clr.variant", clr.variant, "clr", clr_variants, TRAINS_CLR),

    CHOICE("merge.mode", merge.mode, "sum", merge_modes, RUN),
    DBL("merge.scale", merge.scale, "1.0", 0, 1e3, OPEN_MIN, RUN),

    NAMES("eval.classifiers", eval.classifiers, eval.n_classifiers, "[task_heads, ncm, ridge]",
          classifiers, 1, RUN),
    INT("eval.every", eval.every, "1", 0, INT_MAX, RUN),
    NAMES("eval.baselines", eval.baselines, eval.n_baselines,
          "[finetuned, frozen, dense, sequential]", baselines, 0, RUN),
    INT("eval.rp_dim", eval.rp_dim, "512", 0, 1 << 16, RUN),
    INT("eval.fit_per_task", eval.fit_per_task, "500", 0, INT_MAX, RUN),
    CHOICE("eval.rank_by", eval.rank_by, "task_heads", rank_bys, RUN),

    INT("checkpoint.every", checkpoint.every, "0", 0, INT_MAX, RUN),

    STR("output.dir", output.dir, "runs/quickstart", RUN),

    BOOL("mpi.coordinator_trains", mpi.coordinator_trains, "false", RUN),
    AUTO("mpi.task_timeout", mpi.task_timeout, "auto", 0, 1e9, RUN),

    INT("pretrain.epochs", pretrain.epochs, "10", 1, 1000000, PRETRAIN),
    INT("pretrain.batch_size", pretrain.batch_size, "128", 1, 1 << 20, PRETRAIN),
    DBL("pretrain.lr", pretrain.lr, "1e-3", 0, INFINITY, OPEN_MIN, PRETRAIN),
    INT("pretrain.warmup_steps", pretrain.warmup_steps, "200", 0, INT_MAX, PRETRAIN),
    PATH("pretrain.data_dir", pretrain.data_dir, "/usr/share/datasets/fashion-mnist", PRETRAIN),
    PATH("pretrain.out", pretrain.out, "data/pretrained/vit-tiny-fmnist.h5", PRETRAIN),
};
enum { N_KEYS = sizeof keys / sizeof keys[0] };

int sotu_config_key_count(void) { return N_KEYS; }

const char *sotu_config_key_name(int i) { return i >= 0 && i < N_KEYS ? keys[i].key : NULL; }

sotu_key_role sotu_config_key_role(int i)
{
    return i >= 0 && i < N_KEYS ? keys[i].role : (sotu_key_role)0;
}

const char *sotu_key_role_name(sotu_key_role r)
{
    switch (r) {
    case SOTU_KEY_TRAINS: return "trains";
    case SOTU_KEY_TRAINS_SOTU: return "trains (sotu)";
    case SOTU_KEY_TRAINS_CLR: return "trains (clr)";
    case SOTU_KEY_THETA0: return "theta0";
    case SOTU_KEY_SHIP_KEEP: return "shipped keep";
    case SOTU_KEY_TASKS: return "tasks";
    case SOTU_KEY_PRETRAIN: return "pretrain";
    case SOTU_KEY_RUN: return "run";
    }
    return "?";
}

static const key_spec *find_key(const char *key)
{
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].key, key))
            return &keys[i];
    return NULL;
}

/* True if some key lies below `prefix` ("train" for "train.lr"). */
static bool is_section(const char *prefix)
{
    size_t n = strlen(prefix);
    for (int i = 0; i < N_KEYS; i++)
        if (!strncmp(keys[i].key, prefix, n) && keys[i].key[n] == '.')
            return true;
    return false;
}

static void *field(sotu_config *cfg, const key_spec *k) { return (char *)cfg + k->off; }
static int *count_field(sotu_config *cfg, const key_spec *k)
{
    return (int *)((char *)cfg + k->count_off);
}
static const void *cfield(const sotu_config *cfg, const key_spec *k)
{
    return (const char *)cfg + k->off;
}
static int ccount(const sotu_config *cfg, const key_spec *k)
{
    return *(const int *)((const char *)cfg + k->count_off);
}

/* "a number > 0", "an integer in [1, 4096]", "one of adamw, sgd", ... */
static void describe(const key_spec *k, char *buf, size_t cap)
{
    char range[96] = "";
    if (k->type == K_INT || k->type == K_DOUBLE || k->type == K_KEEP || k->type == K_AUTO) {
        bool has_min = k->min > -INFINITY;
        bool has_max = k->max < INFINITY && !(k->type == K_INT && k->max == INT_MAX);
        int prec = k->type == K_INT ? 10 : 6; /* integers in full, not 1e+06 */
        if (has_min && has_max)
            snprintf(range, sizeof range, " in %c%.*g, %.*g%c", k->flags & OPEN_MIN ? '(' : '[',
                     prec, k->min, prec, k->max, k->flags & OPEN_MAX ? ')' : ']');
        else if (has_min)
            snprintf(range, sizeof range, " %s %.*g", k->flags & OPEN_MIN ? ">" : ">=", prec,
                     k->min);
        else if (has_max)
            snprintf(range, sizeof range, " %s %.*g", k->flags & OPEN_MAX ? "<" : "<=", prec,
                     k->max);
    }
    char names[256] = "";
    if (k->choices)
        for (int i = 0; k->choices[i]; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     k->choices[i]);
    switch (k->type) {
    case K_INT: snprintf(buf, cap, "an integer%s", range); break;
    case K_UINT64: snprintf(buf, cap, "an integer in [0, 2^64)"); break;
    case K_DOUBLE: snprintf(buf, cap, "a number%s", range); break;
    case K_AUTO: snprintf(buf, cap, "auto or a number%s", range); break;
    case K_BOOL: snprintf(buf, cap, "true or false"); break;
    case K_STRING:
    case K_PATH: snprintf(buf, cap, "a non-empty string shorter than %zu bytes", k->size); break;
    case K_CHOICE: snprintf(buf, cap, "one of %s", names); break;
    case K_NAMES:
        snprintf(buf, cap, "a list of %d to %d distinct names from %s", k->min_count,
                 SOTU_LIST_MAX, names);
        break;
    case K_KEEP:
        snprintf(buf, cap, "auto, a number%s or a list of up to %d such numbers", range,
                 SOTU_LIST_MAX);
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* Applying YAML nodes to keys                                              */
/* ------------------------------------------------------------------------ */

typedef struct {
    yaml_document_t *doc;
    const char *where;     /* file path, or "--set a.b=v" */
    bool lines;            /* where is a file: messages carry :line */
    char dir[SOTU_PATH_MAX]; /* "dir/" that relative K_PATH values are joined to, or "" */
    bool seen[N_KEYS];     /* duplicate detection within one file */
    bool sweep_replace;    /* --set: a repeated sweep axis replaces the old one */
} load_ctx;

static sotu_status fail_at(const load_ctx *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static sotu_status fail_at(const load_ctx *c, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->lines && n)
        return sotu_error(SOTU_ERR_CONFIG, "%s:%zu: %s", c->where, n->start_mark.line + 1, msg);
    return sotu_error(SOTU_ERR_CONFIG, "%s: %s", c->where, msg);
}

/* `got "fast"`, `got a list`, `got a mapping` */
static void describe_node(const yaml_node_t *n, char *buf, size_t cap)
{
    if (n->type == YAML_SEQUENCE_NODE)
        snprintf(buf, cap, "a list");
    else if (n->type == YAML_MAPPING_NODE)
        snprintf(buf, cap, "a mapping");
    else if (n->data.scalar.length > 60)
        snprintf(buf, cap, "\"%.57s...\"", (const char *)n->data.scalar.value);
    else
        snprintf(buf, cap, "\"%s\"", (const char *)n->data.scalar.value);
}

static sotu_status fail_expected(const load_ctx *c, const key_spec *k, const yaml_node_t *n)
{
    char want[512], got[80];
    describe(k, want, sizeof want);
    describe_node(n, got, sizeof got);
    if (k->choices == methods && n->type == YAML_SCALAR_NODE &&
        !strcmp((const char *)n->data.scalar.value, "sequential"))
        return fail_at(c, n, "%s: expected %s, got %s: sequential fine-tuning is a baseline, "
                       "evaluated beside the method when eval.baselines lists it", k->key, want,
                       got);
    return fail_at(c, n, "%s: expected %s, got %s", k->key, want, got);
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool in_range(const key_spec *k, double v)
{
    if (k->flags & OPEN_MIN ? v <= k->min : v < k->min)
        return false;
    return k->flags & OPEN_MAX ? v < k->max : v <= k->max;
}

static sotu_status apply_scalar_list(const load_ctx *c, sotu_config *cfg, const key_spec *k,
                                     const yaml_node_t *n)
{
    const yaml_node_t *items[SOTU_LIST_MAX];
    int count = 0;
    if (n->type == YAML_SCALAR_NODE) {
        items[count++] = n;
    } else if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            if (count == SOTU_LIST_MAX)
                return fail_expected(c, k, n);
            items[count] = yaml_document_get_node(c->doc, *it);
            if (!scalar(items[count]))
                return fail_expected(c, k, items[count]);
            count++;
        }
    } else {
        return fail_expected(c, k, n);
    }

    if (k->type == K_KEEP) {
        double *keep = field(cfg, k);
        if (count == 1 && n->type == YAML_SCALAR_NODE && !strcmp(scalar(n), "auto")) {
            *count_field(cfg, k) = 0;
            return SOTU_OK;
        }
        if (count == 0)
            return fail_expected(c, k, n);
        for (int i = 0; i < count; i++)
            if (!parse_double(scalar(items[i]), &keep[i]) || !in_range(k, keep[i]))
                return fail_expected(c, k, items[i]);
        *count_field(cfg, k) = count;
        return SOTU_OK;
    }

    assert(k->type == K_NAMES);
    if (count < k->min_count)
        return fail_expected(c, k, n);
    char *names = field(cfg, k);
    for (int i = 0; i < count; i++) {
        const char *s = scalar(items[i]);
        bool ok = false;
        for (int j = 0; k->choices[j]; j++)
            ok |= !strcmp(k->choices[j], s);
        for (int j = 0; j < i; j++)
            ok &= strcmp(names + (size_t)j * k->size, s) != 0;
        if (!ok)
            return fail_expected(c, k, items[i]);
        snprintf(names + (size_t)i * k->size, k->size, "%s", s);
    }
    *count_field(cfg, k) = count;
    return SOTU_OK;
}

/* Checks n against k and stores it in cfg. */
static sotu_status apply_value(const load_ctx *c, sotu_config *cfg, const key_spec *k,
                               const yaml_node_t *n)
{
    if (k->type == K_NAMES || k->type == K_KEEP)
        return apply_scalar_list(c, cfg, k, n);
    const char *s = scalar(n);
    if (!s)
        return fail_expected(c, k, n);

    switch (k->type) {
    case K_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (!*s || *end || errno == ERANGE || v < k->min || v > k->max)
            return fail_expected(c, k, n);
        *(int *)field(cfg, k) = (int)v;
        return SOTU_OK;
    }
    case K_UINT64: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (!*s || *s == '-' || *end || errno == ERANGE)
            return fail_expected(c, k, n);
        *(uint64_t *)field(cfg, k) = (uint64_t)v;
        return SOTU_OK;
    }
    case K_DOUBLE:
    case K_AUTO: {
        double v;
        if (k->type == K_AUTO && !strcmp(s, "auto"))
            v = SOTU_CONFIG_AUTO;
        else if (!parse_double(s, &v) || !in_range(k, v))
            return fail_expected(c, k, n);
        *(double *)field(cfg, k) = v;
        return SOTU_OK;
    }
    case K_BOOL: {
        static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
        for (int i = 0; i < 3; i++) {
            if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
                *(bool *)field(cfg, k) = !strcasecmp(s, yes[i]);
                return SOTU_OK;
            }
        }
        return fail_expected(c, k, n);
    }
    case K_STRING:
    case K_PATH: {
        char joined[SOTU_PATH_MAX * 2];
        if (k->type == K_PATH && c->dir[0] && s[0] != '/' && *s) {
            snprintf(joined, sizeof joined, "%s%s", c->dir, s);
            s = joined;
        }
        if (!*s || strlen(s) >= k->size)
            return fail_expected(c, k, n);
        memcpy(field(cfg, k), s, strlen(s) + 1);
        return SOTU_OK;
    }
    case K_CHOICE:
        for (int i = 0; k->choices[i]; i++) {
            if (!strcmp(k->choices[i], s)) {
                snprintf(field(cfg, k), k->size, "%s", s);
                return SOTU_OK;
            }
        }
        return fail_expected(c, k, n);
    case K_NAMES:
    case K_KEEP: break;
    }
    assert(!"unhandled key type");
    return SOTU_ERR_INTERNAL;
}

static sotu_status apply_key(load_ctx *c, sotu_config *cfg, const char *key,
                             const yaml_node_t *key_node, const yaml_node_t *value);

/* Walks a mapping below `prefix` ("" at the top), applying each entry. */
static sotu_status apply_mapping(load_ctx *c, sotu_config *cfg, const char *prefix,
                                 const yaml_node_t *map,
                                 sotu_status (*each)(load_ctx *, sotu_config *, const char *,
                                                     const yaml_node_t *, const yaml_node_t *))
{
    assert(map->type == YAML_MAPPING_NODE);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
        const yaml_node_t *vn = yaml_document_get_node(c->doc, p->value);
        const char *name = scalar(kn);
        if (!name || !*name) {
            char got[80];
            describe_node(kn, got, sizeof got);
            return fail_at(c, kn, "%s%sexpected a key name, got %s", prefix, *prefix ? ": " : "",
                           got);
        }
        char full[256];
        if ((size_t)snprintf(full, sizeof full, "%s%s%s", prefix, *prefix ? "." : "", name) >=
            sizeof full)
            return fail_at(c, kn, "unknown key \"%.64s...\"", full);
        sotu_status s = each(c, cfg, full, kn, vn);
        if (s)
            return s;
    }
    return SOTU_OK;
}

static sotu_status fail_unknown(const load_ctx *c, const char *prefix, const char *key,
                                const yaml_node_t *kn)
{
    /* Name the keys of the section, the likely intent of a typo. */
    char section[256], known[1024] = "";
    snprintf(section, sizeof section, "%s", key);
    char *dot = strrchr(section, '.');
    if (dot) {
        *dot = '\0';
        size_t n = strlen(section);
        for (int i = 0; i < N_KEYS; i++)
            if (!strncmp(keys[i].key, section, n) && keys[i].key[n] == '.')
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                         known[0] ? ", " : "", keys[i].key + n + 1);
    }
    if (known[0])
        return fail_at(c, kn, "unknown key \"%s%s\" (%s%s has: %s)", prefix, key, prefix, section,
                       known);
    return fail_at(c, kn, "unknown key \"%s%s\"", prefix, key);
}

/* One sweep axis: key -> list of scalar values, each checked on a scratch copy. */
static sotu_status apply_sweep_axis(load_ctx *c, sotu_config *cfg, const char *key,
                                    const yaml_node_t *kn, const yaml_node_t *vn)
{
    const key_spec *k = find_key(key);
    if (!k) {
        if (vn->type == YAML_MAPPING_NODE && is_section(key))
            return apply_mapping(c, cfg, key, vn, apply_sweep_axis);
        return fail_unknown(c, "sweep.", key, kn ? kn : vn);
    }
    if (vn->type != YAML_SEQUENCE_NODE || vn->data.sequence.items.top == vn->data.sequence.items.start)
        return fail_at(c, vn, "sweep.%s: expected a non-empty list of values", key);
    if (vn->data.sequence.items.top - vn->data.sequence.items.start > SOTU_LIST_MAX)
        return fail_at(c, vn, "sweep.%s: at most %d values", key, SOTU_LIST_MAX);

    int slot = cfg->n_sweep;
    for (int i = 0; i < cfg->n_sweep; i++) {
        if (!strcmp(cfg->sweep[i].key, key)) {
            if (!c->sweep_replace)
                return fail_at(c, kn ? kn : vn, "sweep.%s: listed twice", key);
            slot = i;
        }
    }
    if (slot == SOTU_SWEEP_MAX)
        return fail_at(c, kn ? kn : vn, "sweep: at most %d keys", SOTU_SWEEP_MAX);

    sotu_sweep_axis axis = {0};
    if (strlen(key) >= sizeof axis.key)
        return fail_at(c, kn ? kn : vn, "sweep.%s: key too long", key);
    snprintf(axis.key, sizeof axis.key, "%s", key);
    char shown_key[80];
    snprintf(shown_key, sizeof shown_key, "sweep.%s", key);
    key_spec shown = *k;
    shown.key = shown_key;
    sotu_config *scratch = malloc(sizeof *scratch);
    if (!scratch)
        return sotu_error(SOTU_ERR_NOMEM, "%s: sweep.%s: out of memory", c->where, key);
    sotu_status s = SOTU_OK;
    for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = yaml_document_get_node(c->doc, *it);
        const char *v = scalar(item);
        if (!v || strlen(v) >= sizeof axis.values[0]) {
            s = fail_at(c, item, "sweep.%s: expected a scalar value shorter than %zu bytes", key,
                        sizeof axis.values[0]);
            goto cleanup;
        }
        *scratch = *cfg;
        if ((s = apply_value(c, scratch, &shown, item)))
            goto cleanup;
        snprintf(axis.values[axis.n_values++], sizeof axis.values[0], "%s", v);
    }
    cfg->sweep[slot] = axis;
    if (slot == cfg->n_sweep)
        cfg->n_sweep++;

cleanup:
    free(scratch);
    return s;
}

static sotu_status apply_key(load_ctx *c, sotu_config *cfg, const char *key,
                             const yaml_node_t *kn, const yaml_node_t *vn)
{
    const yaml_node_t *at = kn ? kn : vn;
    if (!strcmp(key, "sweep")) {
        if (vn->type == YAML_SCALAR_NODE && !strcmp(scalar(vn), "") &&
            vn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
            cfg->n_sweep = 0;
            return SOTU_OK;
        }
        if (vn->type != YAML_MAPPING_NODE)
            return fail_at(c, vn, "sweep: expected a mapping of key: [values]");
        cfg->n_sweep = 0;
        return apply_mapping(c, cfg, "", vn, apply_sweep_axis);
    }
    if (!strncmp(key, "sweep.", 6))
        return apply_sweep_axis(c, cfg, key + 6, kn, vn);

    const key_spec *k = find_key(key);
    if (k) {
        if (c->seen[k - keys])
            return fail_at(c, at, "%s: set twice", key);
        c->seen[k - keys] = true;
        return apply_value(c, cfg, k, vn);
    }
    if (vn->type == YAML_MAPPING_NODE && is_section(key))
        return apply_mapping(c, cfg, key, vn, apply_key);
    if (is_section(key)) {
        char got[80];
        describe_node(vn, got, sizeof got);
        return fail_at(c, at, "%s: expected a mapping of %s.* keys, got %s", key, key, got);
    }
    return fail_unknown(c, "", key, at);
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                  */
/* ------------------------------------------------------------------------ */

/* Loads the one document of an initialised parser; a syntax error names
 * where:line. An empty input gives a document without a root node. */
static sotu_status load_document(yaml_parser_t *p, yaml_document_t *doc, const char *where,
                                 bool lines)
{
    if (!yaml_parser_load(p, doc)) {
        if (lines)
            return sotu_error(SOTU_ERR_CONFIG, "%s:%zu:%zu: YAML syntax error: %s%s%s", where,
                              p->problem_mark.line + 1, p->problem_mark.column + 1,
                              p->problem ? p->problem : "unknown",
                              p->context ? " " : "", p->context ? p->context : "");
        return sotu_error(SOTU_ERR_CONFIG, "%s: YAML syntax error at column %zu: %s%s%s", where,
                          p->problem_mark.column + 1, p->problem ? p->problem : "unknown",
                          p->context ? " " : "", p->context ? p->context : "");
    }
    if (!yaml_document_get_root_node(doc))
        return SOTU_OK;
    yaml_document_t next;
    if (!yaml_parser_load(p, &next)) {
        yaml_document_delete(doc);
        return sotu_error(SOTU_ERR_CONFIG, "%s:%zu: YAML syntax error: %s", where,
                          p->problem_mark.line + 1, p->problem ? p->problem : "unknown");
    }
    bool more = yaml_document_get_root_node(&next) != NULL;
    size_t line = next.start_mark.line + 1;
    yaml_document_delete(&next);
    if (more) {
        yaml_document_delete(doc);
        return sotu_error(SOTU_ERR_CONFIG, "%s:%zu: expected one YAML document, found another",
                          where, line);
    }
    return SOTU_OK;
}

/* Parses `text` as YAML and applies it as the value of `key`. */
static sotu_status apply_text(load_ctx *c, sotu_config *cfg, const char *key, const char *text)
{
    yaml_parser_t p;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&p))
        return sotu_error(SOTU_ERR_NOMEM, "%s: cannot create a YAML parser", c->where);
    const char *t = text[strspn(text, " \t")] ? text : "''";
    yaml_parser_set_input_string(&p, (const unsigned char *)t, strlen(t));
    sotu_status s = load_document(&p, &doc, c->where, false);
    yaml_parser_delete(&p);
    if (s)
        return s;
    c->doc = &doc;
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root)
        s = apply_key(c, cfg, key, NULL, root);
    else
        s = sotu_error(SOTU_ERR_CONFIG, "%s: expected a YAML value after '=', got none",
                       c->where);
    c->doc = NULL;
    yaml_document_delete(&doc);
    return s;
}

void sotu_config_defaults(sotu_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < N_KEYS; i++) {
        load_ctx c = {.where = "default"};
        sotu_status s = apply_text(&c, cfg, keys[i].key, keys[i].dflt);
        assert(s == SOTU_OK && "a default in the key table fails its own checks");
        (void)s;
    }
}

sotu_status sotu_config_load(sotu_config *cfg, const char *path)
{
    sotu_config_defaults(cfg);
    FILE *f = NULL;
    yaml_parser_t p;
    bool parser = false, have_doc = false;
    yaml_document_t doc;
    sotu_status s = SOTU_OK;
    load_ctx *c = calloc(1, sizeof *c);
    sotu_config *next = malloc(sizeof *next);
    if (!c || !next) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    *next = *cfg;
    if (strlen(path) >= sizeof cfg->source_path) {
        s = sotu_error(SOTU_ERR_CONFIG, "%.64s...: path longer than %zu bytes", path,
                       sizeof cfg->source_path - 1);
        goto cleanup;
    }
    if (!(f = fopen(path, "rb"))) {
        s = sotu_error(SOTU_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto cleanup;
    }
    if (!yaml_parser_initialize(&p)) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: cannot create a YAML parser", path);
        goto cleanup;
    }
    parser = true;
    yaml_parser_set_input_file(&p, f);
    if ((s = load_document(&p, &doc, path, true))) {
        if (ferror(f))
            s = sotu_error(SOTU_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        goto cleanup;
    }
    have_doc = true;

    c->doc = &doc;
    c->where = path;
    c->lines = true;
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(c->dir, sizeof c->dir, "%.*s", (int)(slash - path + 1), path);

    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        /* An empty file is most likely a mistake (a truncated copy, a wrong
         * path); a configuration of only the defaults is written `{}`. */
        s = sotu_error(SOTU_ERR_CONFIG, "%s: the file is empty (no configuration keys); expected "
                       "a mapping of keys such as examples/quickstart.yaml (write {} for the "
                       "defaults)", path);
        goto cleanup;
    }
    if (root->type != YAML_MAPPING_NODE) {
        char got[80];
        describe_node(root, got, sizeof got);
        s = fail_at(c, root, "expected a mapping of configuration keys, got %s", got);
        goto cleanup;
    }
    if ((s = apply_mapping(c, next, "", root, apply_key)))
        goto cleanup;
    snprintf(next->source_path, sizeof next->source_path, "%s", path);
    *cfg = *next;

cleanup:
    if (have_doc)
        yaml_document_delete(&doc);
    if (parser)
        yaml_parser_delete(&p);
    if (f)
        fclose(f);
    free(c);
    free(next);
    return s;
}

sotu_status sotu_config_set(sotu_config *cfg, const char *assignment)
{
    char where[256];
    snprintf(where, sizeof where, "--set %s", assignment);
    if (strlen(assignment) > 200)
        memcpy(where + 200, "...", 4);
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return sotu_error(SOTU_ERR_CONFIG, "%s: expected key=value, e.g. --set train.lr=1e-3",
                          where);
    char key[256];
    const char *b = assignment, *e = eq;
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (b == e || (size_t)(e - b) >= sizeof key)
        return sotu_error(SOTU_ERR_CONFIG, "%s: expected key=value with a key such as train.lr",
                          where);
    memcpy(key, b, (size_t)(e - b));
    key[e - b] = '\0';

    sotu_status s = SOTU_OK;
    load_ctx *c = calloc(1, sizeof *c);
    sotu_config *next = malloc(sizeof *next);
    if (!c || !next) {
        s = sotu_error(SOTU_ERR_NOMEM, "%s: out of memory", where);
        goto cleanup;
    }
    c->where = where;
    c->sweep_replace = true;
    *next = *cfg;
    if (!(s = apply_text(c, next, key, eq + 1)))
        *cfg = *next;

cleanup:
    free(c);
    free(next);
    return s;
}

/* eval.rank_by names a classifier eval.classifiers computes (ncm_til and
 * ridge_til come with ncm and ridge). The default, task_heads, is checked
 * only with a sweep (the only place it ranks), so that a run without one
 * may leave the task heads out. One ranking per sweep: not an axis. */
static sotu_status validate_rank_by(const sotu_config *cfg, const char *src)
{
    const char *r = cfg->eval.rank_by;
    for (int i = 0; i < cfg->n_sweep; i++)
        if (!strcmp(cfg->sweep[i].key, "eval.rank_by"))
            return sotu_error(SOTU_ERR_CONFIG, "%s: sweep.eval.rank_by: the figure ranking the "
                              "points is one for the whole sweep; set eval.rank_by instead", src);
    if (!strcmp(r, "task_heads") && cfg->n_sweep == 0)
        return SOTU_OK;
    size_t n = !strcmp(r, "task_heads") ? strlen(r) : strcspn(r, "_"); /* ncm_til -> ncm */
    for (int i = 0; i < cfg->eval.n_classifiers; i++)
        if (strlen(cfg->eval.classifiers[i]) == n && !strncmp(cfg->eval.classifiers[i], r, n))
            return SOTU_OK;
    char listed[SOTU_LIST_MAX * 34] = "";
    for (int i = 0; i < cfg->eval.n_classifiers; i++)
        snprintf(listed + strlen(listed), sizeof listed - strlen(listed), "%s%s", i ? ", " : "",
                 cfg->eval.classifiers[i]);
    return sotu_error(SOTU_ERR_CONFIG, "%s: eval.rank_by: %s needs %.*s in eval.classifiers "
                      "(it lists [%s]); eval.rank_by is one of task_heads, ncm, ridge, ncm_til, "
                      "ridge_til", src, r, (int)n, r, listed);
}

sotu_status sotu_config_validate(const sotu_config *cfg)
{
    const char *src = cfg->source_path[0] ? cfg->source_path : "configuration";
    bool vit = !strcmp(cfg->model.arch, "vit"); /* the patch/head checks are the ViT's */
    if (vit && cfg->model.dim % cfg->model.heads)
        return sotu_error(SOTU_ERR_CONFIG,
                          "%s: model.dim (%d) must be a multiple of model.heads (%d)", src,
                          cfg->model.dim, cfg->model.heads);
    if (vit && cfg->model.image_size % cfg->model.patch)
        return sotu_error(SOTU_ERR_CONFIG,
                          "%s: model.image_size (%d) must be a multiple of model.patch (%d)", src,
                          cfg->model.image_size, cfg->model.patch);
    if (!strcmp(cfg->sotu.tuning, "masked") && cfg->sotu.rescale)
        return sotu_error(SOTU_ERR_CONFIG,
                          "%s: sotu.tuning masked with sotu.rescale true: masked tuning ships "
                          "exactly the values it trained; rescaling them by 1/keep would not be "
                          "(set sotu.rescale: false)", src);
    for (int i = 0; i < cfg->n_sweep; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(cfg->sweep[i].key, cfg->sweep[j].key))
                return sotu_error(SOTU_ERR_CONFIG, "%s: sweep.%s: listed twice", src,
                                  cfg->sweep[i].key);
    return validate_rank_by(cfg, src);
}

/* ------------------------------------------------------------------------ */
/* Printing                                                                 */
/* ------------------------------------------------------------------------ */

static bool emit_scalar(yaml_emitter_t *e, const char *s)
{
    yaml_event_t ev;
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
                                 YAML_ANY_SCALAR_STYLE);
    return yaml_emitter_emit(e, &ev);
}

static bool emit_simple(yaml_emitter_t *e, yaml_event_type_t type, bool flow)
{
    yaml_event_t ev;
    switch (type) {
    case YAML_MAPPING_START_EVENT:
        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                            flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
        break;
    case YAML_SEQUENCE_START_EVENT:
        yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_FLOW_SEQUENCE_STYLE);
        break;
    case YAML_MAPPING_END_EVENT: yaml_mapping_end_event_initialize(&ev); break;
    case YAML_SEQUENCE_END_EVENT: yaml_sequence_end_event_initialize(&ev); break;
    default: assert(!"unexpected event type"); return false;
    }
    return yaml_emitter_emit(e, &ev);
}

/* The shortest decimal that reads back as exactly v. */
static void format_double(double v, char *buf, size_t cap)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static bool emit_value(yaml_emitter_t *e, const sotu_config *cfg, const key_spec *k)
{
    char buf[SOTU_PATH_MAX * 2];
    switch (k->type) {
    case K_INT: snprintf(buf, sizeof buf, "%d", *(const int *)cfield(cfg, k)); break;
    case K_UINT64: snprintf(buf, sizeof buf, "%" PRIu64, *(const uint64_t *)cfield(cfg, k)); break;
    case K_DOUBLE: format_double(*(const double *)cfield(cfg, k), buf, sizeof buf); break;
    case K_AUTO:
        if (*(const double *)cfield(cfg, k) == SOTU_CONFIG_AUTO)
            return emit_scalar(e, "auto");
        format_double(*(const double *)cfield(cfg, k), buf, sizeof buf);
        break;
    case K_BOOL: snprintf(buf, sizeof buf, "%s", *(const bool *)cfield(cfg, k) ? "true" : "false"); break;
    case K_STRING:
    case K_CHOICE: snprintf(buf, sizeof buf, "%s", (const char *)cfield(cfg, k)); break;
    case K_PATH: {
        const char *s = cfield(cfg, k);
        char cwd[SOTU_PATH_MAX];
        if (s[0] != '/' && getcwd(cwd, sizeof cwd))
            snprintf(buf, sizeof buf, "%s/%s", cwd, s);
        else
            snprintf(buf, sizeof buf, "%s", s);
        break;
    }
    case K_NAMES: {
        const char *names = cfield(cfg, k);
        if (!emit_simple(e, YAML_SEQUENCE_START_EVENT, true))
            return false;
        for (int i = 0; i < ccount(cfg, k); i++)
            if (!emit_scalar(e, names + (size_t)i * k->size))
                return false;
        return emit_simple(e, YAML_SEQUENCE_END_EVENT, true);
    }
    case K_KEEP: {
        const double *keep = cfield(cfg, k);
        int n = ccount(cfg, k);
        if (n == 0)
            return emit_scalar(e, "auto");
        if (n == 1) {
            format_double(keep[0], buf, sizeof buf);
            return emit_scalar(e, buf);
        }
        if (!emit_simple(e, YAML_SEQUENCE_START_EVENT, true))
            return false;
        for (int i = 0; i < n; i++) {
            format_double(keep[i], buf, sizeof buf);
            if (!emit_scalar(e, buf))
                return false;
        }
        return emit_simple(e, YAML_SEQUENCE_END_EVENT, true);
    }
    }
    return emit_scalar(e, buf);
}

/* Key k's value as one line of text, lists as "[a, b]" (paths as stored). */
static void format_value(const sotu_config *cfg, const key_spec *k, char *buf, size_t cap)
{
    char one[64];
    switch (k->type) {
    case K_INT: snprintf(buf, cap, "%d", *(const int *)cfield(cfg, k)); return;
    case K_UINT64: snprintf(buf, cap, "%" PRIu64, *(const uint64_t *)cfield(cfg, k)); return;
    case K_DOUBLE: format_double(*(const double *)cfield(cfg, k), buf, cap); return;
    case K_AUTO:
        if (*(const double *)cfield(cfg, k) == SOTU_CONFIG_AUTO)
            snprintf(buf, cap, "auto");
        else
            format_double(*(const double *)cfield(cfg, k), buf, cap);
        return;
    case K_BOOL: snprintf(buf, cap, "%s", *(const bool *)cfield(cfg, k) ? "true" : "false"); return;
    case K_STRING:
    case K_PATH:
    case K_CHOICE: snprintf(buf, cap, "%s", (const char *)cfield(cfg, k)); return;
    case K_NAMES:
    case K_KEEP: {
        int n = ccount(cfg, k);
        if (k->type == K_KEEP && n == 0) {
            snprintf(buf, cap, "auto");
            return;
        }
        snprintf(buf, cap, "[");
        for (int i = 0; i < n; i++) {
            if (k->type == K_KEEP)
                format_double(((const double *)cfield(cfg, k))[i], one, sizeof one);
            else
                snprintf(one, sizeof one, "%s", (const char *)cfield(cfg, k) + (size_t)i * k->size);
            snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", i ? ", " : "", one);
        }
        snprintf(buf + strlen(buf), cap - strlen(buf), "]");
        return;
    }
    }
}

char *sotu_config_training_text(const sotu_config *cfg)
{
    bool clr = !strcmp(cfg->method, "clr");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    char value[SOTU_PATH_MAX * 2];
    for (int i = 0; i < N_KEYS; i++) {
        sotu_key_role r = keys[i].role;
        if (r != SOTU_KEY_TRAINS && r != (clr ? SOTU_KEY_TRAINS_CLR : SOTU_KEY_TRAINS_SOTU))
            continue;
        format_value(cfg, &keys[i], value, sizeof value);
        fprintf(f, "%s: %s\n", keys[i].key, value);
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static bool emit_config(yaml_emitter_t *e, const sotu_config *cfg)
{
    yaml_event_t ev;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    if (!yaml_emitter_emit(e, &ev))
        return false;
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    if (!yaml_emitter_emit(e, &ev) || !emit_simple(e, YAML_MAPPING_START_EVENT, false))
        return false;

    char section[64] = "";
    for (int i = 0; i < N_KEYS; i++) {
        const char *dot = strchr(keys[i].key, '.');
        assert(!dot || !strchr(dot + 1, '.'));
        size_t n = dot ? (size_t)(dot - keys[i].key) : 0;
        if (strlen(section) != n || strncmp(section, keys[i].key, n)) {
            if (section[0] && !emit_simple(e, YAML_MAPPING_END_EVENT, false))
                return false;
            snprintf(section, sizeof section, "%.*s", (int)n, keys[i].key);
            if (n && (!emit_scalar(e, section) || !emit_simple(e, YAML_MAPPING_START_EVENT, false)))
                return false;
        }
        if (!emit_scalar(e, dot ? dot + 1 : keys[i].key) || !emit_value(e, cfg, &keys[i]))
            return false;
    }
    if (section[0] && !emit_simple(e, YAML_MAPPING_END_EVENT, false))
        return false;

    if (!emit_scalar(e, "sweep") || !emit_simple(e, YAML_MAPPING_START_EVENT, cfg->n_sweep == 0))
        return false;
    for (int i = 0; i < cfg->n_sweep; i++) {
        if (!emit_scalar(e, cfg->sweep[i].key) || !emit_simple(e, YAML_SEQUENCE_START_EVENT, true))
            return false;
        for (int j = 0; j < cfg->sweep[i].n_values; j++)
            if (!emit_scalar(e, cfg->sweep[i].values[j]))
                return false;
        if (!emit_simple(e, YAML_SEQUENCE_END_EVENT, true))
            return false;
    }
    if (!emit_simple(e, YAML_MAPPING_END_EVENT, false) ||
        !emit_simple(e, YAML_MAPPING_END_EVENT, false))
        return false;
    yaml_document_end_event_initialize(&ev, 1);
    if (!yaml_emitter_emit(e, &ev))
        return false;
    yaml_stream_end_event_initialize(&ev);
    return yaml_emitter_emit(e, &ev);
}

void sotu_config_print(const sotu_config *cfg, FILE *out)
{
    yaml_emitter_t e;
    if (!yaml_emitter_initialize(&e))
        return;
    yaml_emitter_set_output_file(&e, out);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, -1);
    yaml_emitter_set_indent(&e, 2);
    emit_config(&e, cfg);
    yaml_emitter_flush(&e);
    yaml_emitter_delete(&e);
}

char *sotu_config_to_yaml(const sotu_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    sotu_config_print(cfg, f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
