/* The small module layout of the module fuzz target and its seeds (a CLR
 * module in miniature: a CLR weight, BatchNorm affine and running
 * statistics, fc), packed as io/module.h requires. */
#ifndef SOTU_TESTS_FUZZ_MODULE_LAYOUT_H
#define SOTU_TESTS_FUZZ_MODULE_LAYOUT_H

#include "common/tensor.h"

static sotu_tensor_info fuzz_module_tensors[] = {
    {"conv1.clr.weight", 4, {2, 1, 3, 3}, 0, 18},
    {"bn1.weight", 1, {2}, 18, 2},
    {"bn1.bias", 1, {2}, 20, 2},
    {"fc.weight", 2, {3, 2}, 22, 6},
    {"fc.bias", 1, {3}, 28, 3},
    {"bn1.running_mean", 1, {2}, 31, 2},
    {"bn1.running_var", 1, {2}, 33, 2},
};

static const sotu_tensor_table fuzz_module_layout = {
    .n = (int)(sizeof fuzz_module_tensors / sizeof fuzz_module_tensors[0]),
    .t = fuzz_module_tensors,
    .total = 35,
};

#endif
