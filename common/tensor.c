#include "common/tensor.h"

#include <string.h>

int sotu_tensor_find(const sotu_tensor_table *tab, const char *name)
{
    for (int i = 0; i < tab->n; i++)
        if (!strcmp(tab->t[i].name, name))
            return i;
    return -1;
}
