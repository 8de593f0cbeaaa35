/* `sotu export safetensors CKPT OUT [--task T]`: a checkpoint's merged
 * weights (or a pretrained weights file) as a float32 safetensors file with
 * timm's names, which PyTorch/timm load with strict=True. */
#include <stdio.h>
#include <string.h>

#include "common/status.h"
#include "coordinator/commands.h"
#include "coordinator/model_source.h"
#include "io/safetensors.h"

static void export_usage(FILE *f)
{
    fprintf(f,
            "usage: sotu export safetensors CKPT OUT.safetensors [--task T]\n\n"
            "Writes the weights of CKPT as F32 safetensors with timm's names: /merged of a\n"
            "run checkpoint, or /weights of a pretrained weights file. With --task T (name\n"
            "or index) the head is that task's own head (/heads/T) instead of /merged's.\n"
            "__metadata__ records format \"pt\", num_heads and the model config, so\n"
            "`sotu import` reads the file back without --heads.\n"
            "\nexit codes: 0 ok, 2 usage, 3 bad input, 4 I/O error\n");
}

static sotu_status export_safetensors(const char *in, const char *out, const char *task)
{
    vit_model m;
    sotu_status s = sotu_model_load(in, task, 1, &m);
    if (s != SOTU_OK)
        return s;
    const sotu_vit_config *c = &m.cfg;
    char v[8][24];
    snprintf(v[0], sizeof v[0], "%d", c->heads);
    snprintf(v[1], sizeof v[1], "%d", c->image_size);
    snprintf(v[2], sizeof v[2], "%d", c->channels);
    snprintf(v[3], sizeof v[3], "%d", c->patch);
    snprintf(v[4], sizeof v[4], "%d", c->dim);
    snprintf(v[5], sizeof v[5], "%d", c->depth);
    snprintf(v[6], sizeof v[6], "%d", c->mlp_hidden);
    snprintf(v[7], sizeof v[7], "%d", c->classes);
    const char *meta[] = {"format",     "pt",      "num_heads", v[0],    "img_size",
                          v[1],         "in_chans", v[2],       "patch_size", v[3],
                          "embed_dim",  v[4],      "depth",     v[5],    "mlp_hidden",
                          v[6],         "num_classes", v[7],    "source", in,
                          "task",       task ? task : ""};
    int n_meta = (int)(sizeof meta / sizeof meta[0]) / 2 - (task ? 0 : 1);
    s = sotu_safetensors_write(out, &m.table, m.params, meta, n_meta);
    if (s == SOTU_OK)
        printf("exported %s%s%s -> %s: %d tensors, %zu parameters (F32)\n", in,
               task ? " with the head of task " : "", task ? task : "", out, m.table.n,
               m.num_params);
    vit_free(&m);
    return s;
}

int sotu_cmd_export(int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL}, *task = NULL;
    int n_pos = 0;
    sotu_status s = SOTU_OK;
    for (int i = 1; i < argc && s == SOTU_OK; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            export_usage(stdout);
            return SOTU_EXIT_OK;
        }
        if (!strcmp(a, "--task")) {
            if (i + 1 >= argc)
                s = sotu_error(SOTU_ERR_USAGE, "--task needs a value");
            else
                task = argv[++i];
        } else if (!strncmp(a, "--task=", 7)) {
            task = a + 7;
        } else if (a[0] == '-' && a[1]) {
            s = sotu_error(SOTU_ERR_USAGE, "unknown option '%s' (see --help)", a);
        } else if (n_pos < 3) {
            pos[n_pos++] = a;
        } else {
            s = sotu_error(SOTU_ERR_USAGE, "unexpected argument '%s'", a);
        }
    }
    if (s == SOTU_OK && (n_pos != 3 || strcmp(pos[0], "safetensors"))) {
        export_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    if (s == SOTU_OK)
        s = export_safetensors(pos[1], pos[2], task);
    return s == SOTU_OK ? SOTU_EXIT_OK : sotu_cmd_fail("export", s);
}
