#include "io/provenance.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* XXH64_state_t on the stack (its layout is part of xxhash's stable ABI
 * since 0.8): no allocation that could fail. */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "common/build_info.h"
#include "io/bytes.h"

uint64_t sotu_xxh64(const void *p, size_t n) { return (uint64_t)XXH64(p, n, 0); }

uint64_t sotu_theta0_fingerprint(const float *a, size_t n_a, const float *b, size_t n_b)
{
    XXH64_state_t s;
    XXH64_reset(&s, 0);
    XXH64_update(&s, a, n_a * sizeof *a);
    if (b && n_b)
        XXH64_update(&s, b, n_b * sizeof *b);
    return (uint64_t)XXH64_digest(&s);
}

sotu_status sotu_file_xxh64(const char *path, uint64_t *out)
{
    enum { PIECE = 1 << 20 };
    sotu_status st = SOTU_OK;
    XXH64_state_t s;
    char *buf = malloc(PIECE);
    int fd = -1;
    if (!buf) {
        st = sotu_error(SOTU_ERR_NOMEM, "%s: checksum state", path);
        goto cleanup;
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        st = sotu_error(SOTU_ERR_IO, "%s: cannot open to checksum: %s", path, strerror(errno));
        goto cleanup;
    }
    XXH64_reset(&s, 0);
    for (;;) {
        ssize_t r = read(fd, buf, PIECE);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            st = sotu_error(SOTU_ERR_IO, "%s: read failed while checksumming: %s", path,
                            strerror(errno));
            goto cleanup;
        }
        if (r == 0)
            break;
        XXH64_update(&s, buf, (size_t)r);
    }
    *out = (uint64_t)XXH64_digest(&s);

cleanup:
    if (fd >= 0)
        close(fd);
    free(buf);
    return st;
}

sotu_status sotu_provenance_init(sotu_provenance *p, uint64_t theta0, const char *pretrained,
                                 const sotu_config *cfg)
{
    memset(p, 0, sizeof *p);
    p->theta0 = theta0;
    char *text = sotu_config_training_text(cfg);
    if (!text)
        return sotu_error(SOTU_ERR_NOMEM, "training configuration text");
    size_t n = strlen(text);
    if (n == 0 || n >= sizeof p->config) {
        free(text);
        return sotu_error(SOTU_ERR_CONFIG, "the training configuration is %zu bytes as text, "
                          "the delta and module formats hold 1..%zu", n, sizeof p->config - 1);
    }
    memcpy(p->config, text, n + 1);
    free(text);
    p->config_hash = sotu_xxh64(p->config, n);
    snprintf(p->pretrained, sizeof p->pretrained, "%s", pretrained[0] ? pretrained : "?");
    snprintf(p->version, sizeof p->version, "%s", sotu_build_version());
    snprintf(p->commit, sizeof p->commit, "%s", sotu_build_commit());
    return SOTU_OK;
}

size_t sotu_provenance_size(const sotu_provenance *p)
{
    return SOTU_PROVENANCE_FIXED + strlen(p->config) + strlen(p->pretrained) +
           strlen(p->version) + strlen(p->commit);
}

sotu_status sotu_provenance_check(const sotu_provenance *p, const char *what)
{
    struct {
        const char *name, *s;
        size_t cap;
    } f[] = {{"training configuration", p->config, sizeof p->config},
             {"pretrained path", p->pretrained, sizeof p->pretrained},
             {"sotu version", p->version, sizeof p->version},
             {"sotu commit", p->commit, sizeof p->commit}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        size_t n = strnlen(f[i].s, f[i].cap);
        if (n == 0 || n >= f[i].cap)
            return sotu_error(SOTU_ERR_DATA, "%s: provenance %s of %zu bytes, expected 1..%zu",
                              what, f[i].name, n, f[i].cap - 1);
    }
    return SOTU_OK;
}

uint8_t *sotu_provenance_put(uint8_t *p, const sotu_provenance *v)
{
    size_t lc = strlen(v->config), lp = strlen(v->pretrained), lv = strlen(v->version),
           lg = strlen(v->commit);
    p = sotu_put_le(p, v->theta0, 8);
    p = sotu_put_le(p, v->task_file, 8);
    p = sotu_put_le(p, sotu_xxh64(v->config, lc), 8);
    p = sotu_put_le(p, lc, 2);
    memcpy(p, v->config, lc);
    p += lc;
    p = sotu_put_le(p, lp, 2);
    memcpy(p, v->pretrained, lp);
    p += lp;
    p = sotu_put_le(p, lv, 1);
    memcpy(p, v->version, lv);
    p += lv;
    p = sotu_put_le(p, lg, 1);
    memcpy(p, v->commit, lg);
    return p + lg;
}

/* A length-prefixed string field: `bytes`-byte length in 1..cap-1, then
 * that many bytes without NUL. */
static sotu_status get_string(const uint8_t *src, size_t n, size_t *pos, int bytes, char *dst,
                              size_t cap, const char *field, const char *what)
{
    if (n - *pos < (size_t)bytes)
        return sotu_error(SOTU_ERR_DATA, "%s: truncated in the provenance %s length", what,
                          field);
    uint64_t l = sotu_get_le(src + *pos, bytes);
    *pos += (size_t)bytes;
    if (l == 0 || l >= cap || n - *pos < l || memchr(src + *pos, 0, (size_t)l))
        return sotu_error(SOTU_ERR_DATA, "%s: provenance %s of %llu bytes, expected 1..%zu "
                          "bytes without NUL within the header", what, field,
                          (unsigned long long)l, cap - 1);
    memcpy(dst, src + *pos, (size_t)l);
    dst[l] = '\0';
    *pos += (size_t)l;
    return SOTU_OK;
}

sotu_status sotu_provenance_get(const uint8_t *src, size_t n, size_t *pos, sotu_provenance *out,
                                const char *what)
{
    memset(out, 0, sizeof *out);
    if (*pos > n || n - *pos < 24)
        return sotu_error(SOTU_ERR_DATA, "%s: truncated in the provenance hashes", what);
    out->theta0 = sotu_get_le(src + *pos, 8);
    out->task_file = sotu_get_le(src + *pos + 8, 8);
    out->config_hash = sotu_get_le(src + *pos + 16, 8);
    *pos += 24;
    sotu_status st = get_string(src, n, pos, 2, out->config, sizeof out->config,
                                "training configuration", what);
    if (st == SOTU_OK)
        st = get_string(src, n, pos, 2, out->pretrained, sizeof out->pretrained,
                        "pretrained path", what);
    if (st == SOTU_OK)
        st = get_string(src, n, pos, 1, out->version, sizeof out->version, "sotu version", what);
    if (st == SOTU_OK)
        st = get_string(src, n, pos, 1, out->commit, sizeof out->commit, "sotu commit", what);
    if (st == SOTU_OK && sotu_xxh64(out->config, strlen(out->config)) != out->config_hash)
        st = sotu_error(SOTU_ERR_DATA, "%s: provenance configuration hash 0x%016llx does not "
                        "match its text", what, (unsigned long long)out->config_hash);
    if (st != SOTU_OK)
        memset(out, 0, sizeof *out);
    return st;
}

/* The value of `key` in a training text ("key: value" lines), or NULL;
 * *len gets its length. */
static const char *find_value(const char *text, const char *key, size_t klen, size_t *len)
{
    for (const char *l = text; l && *l;) {
        const char *end = strchr(l, '\n');
        size_t n = end ? (size_t)(end - l) : strlen(l);
        if (n > klen + 1 && !strncmp(l, key, klen) && l[klen] == ':' && l[klen + 1] == ' ') {
            *len = n - klen - 2;
            return l + klen + 2;
        }
        l = end ? end + 1 : NULL;
    }
    return NULL;
}

/* Appends sep and item to dst[0, cap), ending in "..." when it is full. */
static void append(char *dst, size_t cap, const char *sep, const char *item)
{
    size_t at = strlen(dst);
    if (cap < 4 || at + 4 > cap)
        return;
    int w = snprintf(dst + at, cap - at, "%s%s", sep, item);
    if (w < 0 || (size_t)w >= cap - at)
        memcpy(dst + cap - 4, "...", 4);
}

/* The keys of text a whose value b lacks or differs in, appended to dst as
 * "key: a's -> b's"; with reverse (a = the new text) only the keys b lacks,
 * as "key: (absent) -> a's" (the first pass saw the rest). n: items so far. */
static int diff_pass(const char *a, const char *b, bool reverse, char *dst, size_t cap, int n)
{
    for (const char *l = a; l && *l;) {
        const char *end = strchr(l, '\n');
        size_t ln = end ? (size_t)(end - l) : strlen(l);
        const char *colon = memchr(l, ':', ln);
        if (colon && (size_t)(colon - l) + 2 <= ln) {
            int klen = (int)(colon - l), alen = (int)(ln - (size_t)klen - 2);
            const char *av = colon + 2;
            size_t blen = 0;
            const char *bv = find_value(b, l, (size_t)klen, &blen);
            char item[768];
            item[0] = '\0';
            if (reverse && !bv)
                snprintf(item, sizeof item, "%.*s: (absent) -> %.*s", klen, l, alen, av);
            else if (!reverse && !bv)
                snprintf(item, sizeof item, "%.*s: %.*s -> (absent)", klen, l, alen, av);
            else if (!reverse && (blen != (size_t)alen || memcmp(av, bv, blen)))
                snprintf(item, sizeof item, "%.*s: %.*s -> %.*s", klen, l, alen, av, (int)blen,
                         bv);
            if (item[0])
                append(dst, cap, n++ ? "; " : "", item);
        }
        l = end ? end + 1 : NULL;
    }
    return n;
}

int sotu_provenance_config_diff(const char *old_text, const char *new_text, char *dst, size_t cap)
{
    if (cap)
        dst[0] = '\0';
    int n = diff_pass(old_text, new_text, false, dst, cap, 0);
    return diff_pass(new_text, old_text, true, dst, cap, n);
}

sotu_status sotu_provenance_compare(const sotu_provenance *run, const sotu_provenance *stored,
                                    uint64_t task_file_now, const char *path, const char *task,
                                    const char *task_path, bool retrain, const char *hint,
                                    sotu_provenance_verdict *verdict, char *why, size_t why_cap)
{
    *verdict = SOTU_PROVENANCE_SAME;
    if (why && why_cap)
        why[0] = '\0';
    if (stored->theta0 != run->theta0)
        return sotu_error(SOTU_ERR_CONFIG,
                          "model.pretrained %s (θ0 fingerprint XXH64 %016llx) is not the θ0 that "
                          "%s was trained from: it records %s (XXH64 %016llx), sotu %s commit %s. "
                          "A delta or module computed against other weights cannot be kept: "
                          "use those weights, or another output.dir",
                          run->pretrained, (unsigned long long)run->theta0, path,
                          stored->pretrained, (unsigned long long)stored->theta0,
                          stored->version, stored->commit);
    char diff[1024] = "";
    int n_keys = 0;
    if (stored->config_hash != run->config_hash || strcmp(stored->config, run->config))
        n_keys = sotu_provenance_config_diff(stored->config, run->config, diff, sizeof diff);
    bool data_changed = stored->task_file != task_file_now;
    if (!n_keys && !data_changed)
        return SOTU_OK;
    char reason[1536];
    if (n_keys && data_changed)
        snprintf(reason, sizeof reason, "trained with other settings (%s) and task file %s has "
                 "changed since (XXH64 %016llx recorded, %016llx now)", diff, task_path,
                 (unsigned long long)stored->task_file, (unsigned long long)task_file_now);
    else if (n_keys)
        snprintf(reason, sizeof reason, "trained with other settings: %s", diff);
    else
        snprintf(reason, sizeof reason, "task file %s of task %s has changed since it was "
                 "trained (XXH64 %016llx recorded, %016llx now)", task_path, task,
                 (unsigned long long)stored->task_file, (unsigned long long)task_file_now);
    if (retrain) {
        *verdict = SOTU_PROVENANCE_RETRAIN;
        if (why && why_cap)
            snprintf(why, why_cap, "%s", reason);
        return SOTU_OK;
    }
    return sotu_error(SOTU_ERR_CONFIG, "%s: %s; %s", path, reason, hint);
}
