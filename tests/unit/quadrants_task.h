/* A synthetic task the fine-tuning tests learn in seconds: S x S grey
 * images, class k (of K = 4) lights quadrant k over uniform noise. */
#ifndef SOTU_TESTS_QUADRANTS_TASK_H
#define SOTU_TESTS_QUADRANTS_TASK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "io/taskset.h"

static void quadrants_images(uint8_t *img, int32_t *lab, int n, int S, sotu_rng *r)
{
    for (int i = 0; i < n; i++) {
        int k = (int)sotu_rng_below(r, 4);
        lab[i] = k;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                int q = (y >= S / 2) * 2 + (x >= S / 2);
                int v = (int)sotu_rng_below(r, 120) + (q == k ? 120 : 0);
                img[(size_t)i * S * S + y * S + x] = (uint8_t)v;
            }
    }
}

/* Fills t (freed with sotu_taskset_free) from (seed, SOTU_STREAM_DATA). */
static void quadrants_task(sotu_taskset *t, int S, int n_train, int n_test, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "quadrants");
    t->classes = 4;
    t->height = t->width = S;
    t->channels = 1;
    t->n_train = n_train;
    t->n_test = n_test;
    t->train_images = malloc((size_t)n_train * S * S);
    t->train_labels = malloc(sizeof(int32_t) * (size_t)n_train);
    t->test_images = malloc((size_t)n_test * S * S);
    t->test_labels = malloc(sizeof(int32_t) * (size_t)n_test);
    sotu_rng r;
    sotu_rng_init(&r, seed, SOTU_STREAM_DATA);
    quadrants_images(t->train_images, t->train_labels, n_train, S, &r);
    quadrants_images(t->test_images, t->test_labels, n_test, S, &r);
}

#endif
