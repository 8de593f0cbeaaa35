#include "common/tensor.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sotu_tensor_table_add(sotu_tensor_table *tab, const char *name, int ndim,
                           const int64_t *shape)
{
    sotu_tensor_info *t = &tab->t[tab->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->count = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->count *= (size_t)shape[i];
    }
    t->offset = tab->total;
    tab->total += t->count;
}

int sotu_tensor_find(const sotu_tensor_table *tab, const char *name)
{
    for (int i = 0; i < tab->n; i++)
        if (!strcmp(tab->t[i].name, name))
            return i;
    return -1;
}

static int mark_glob(const sotu_tensor_table *tab, const char *glob, size_t len, bool *mark)
{
    char pat[256];
    snprintf(pat, sizeof pat, "%.*s", (int)len, glob);
    int hits = 0;
    for (int i = 0; i < tab->n; i++)
        if (fnmatch(pat, tab->t[i].name, 0) == 0) {
            mark[i] = true;
            hits++;
        }
    return hits;
}

sotu_status sotu_tensor_select(const sotu_tensor_table *tab, const char *spec,
                               const sotu_tune_word *words, int n_words, const char *keywords,
                               const char *names, bool *mark)
{
    sotu_status st = SOTU_OK;
    bool *sel = calloc((size_t)tab->n + 1, sizeof *sel);
    char *copy = strdup(spec ? spec : "");
    if (!sel || !copy) {
        st = sotu_error(SOTU_ERR_NOMEM, "train.tune: out of memory");
        goto cleanup;
    }
    int items = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t len = strlen(tok);
        while (len && tok[len - 1] == ' ')
            tok[--len] = '\0';
        if (!len)
            continue;
        items++;
        const sotu_tune_word *w = NULL;
        for (int k = 0; k < n_words && !w; k++)
            if (!strcmp(tok, words[k].word))
                w = &words[k];
        if (w && w->refusal) {
            st = sotu_error(SOTU_ERR_CONFIG, "train.tune: %s", w->refusal);
            goto cleanup;
        }
        int hits = 0;
        if (!w) {
            hits = mark_glob(tab, tok, len, sel);
        } else {
            for (const char *g = w->globs; *g;) {
                size_t n = strcspn(g, "|");
                hits += mark_glob(tab, g, n, sel);
                g += n + (g[n] == '|');
            }
        }
        if (!hits) {
            st = sotu_error(SOTU_ERR_CONFIG,
                            "train.tune: '%s' matches no parameter (expected %s or a glob over %s)",
                            tok, keywords, names);
            goto cleanup;
        }
    }
    if (!items) {
        st = sotu_error(SOTU_ERR_CONFIG, "train.tune: empty, expected %s or name globs", keywords);
        goto cleanup;
    }
    memcpy(mark, sel, (size_t)tab->n * sizeof *mark);
cleanup:
    free(sel);
    free(copy);
    return st;
}
