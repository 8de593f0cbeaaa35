/* `sotu export safetensors CKPT OUT [--task T | --pretrained-head] [--force]`:
 * a checkpoint's merged weights with one task's head (or a pretrained
 * weights file) as a float32 safetensors file with timm's names, which
 * PyTorch/timm load with strict=True. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/model_source.h"
#include "io/fsutil.h"
#include "io/safetensors.h"

static void export_usage(FILE *f)
{
    fprintf(f,
            "usage: sotu export safetensors CKPT OUT.safetensors [--task T | --pretrained-head]\n"
            "                               [--force]\n\n"
            "Writes the weights of CKPT as F32 safetensors with timm's names: /merged of a\n"
            "run checkpoint, or /weights of a pretrained weights file.\n"
            "  --task T           (name or index) the head is task T's own head (/heads/T).\n"
            "                     Required for a run checkpoint with task heads: /merged's\n"
            "                     head is the pretrained backbone's, which no task trained\n"
            "  --pretrained-head  export a run checkpoint with /merged's own head anyway\n"
            "                     (the merged backbone for a new head of your own)\n"
            "  --force            replace OUT if it exists (never CKPT itself)\n"
            "__metadata__ records format \"pt\", num_heads, the model config, source, and\n"
            "with --task the task and its class_names (a JSON list), so `sotu import` reads\n"
            "the file back without --heads. Weights that are not finite are refused.\n"
            "\nexit codes: 0 ok, 2 usage (also: OUT exists, or is CKPT), 3 bad input, 4 I/O error\n");
}

/* SOTU_ERR_DATA naming the first weight of m that is NaN or infinite. */
static sotu_status check_finite(const vit_model *m, const char *in)
{
    for (int i = 0; i < m->table.n; i++) {
        const sotu_tensor_info *ti = &m->table.t[i];
        for (size_t k = 0; k < ti->count; k++) {
            float v = m->params[ti->offset + k];
            if (!isfinite(v))
                return sotu_error(SOTU_ERR_DATA, "%s: tensor '%s' element %zu is %g; refusing to "
                                  "export weights that are not finite", in, ti->name, k,
                                  (double)v);
        }
    }
    return SOTU_OK;
}

static sotu_status export_safetensors(const char *in, const char *out, const char *task,
                                      bool pretrained_head, bool force)
{
    const char *inputs[] = {in};
    sotu_status s = sotu_output_check(out, inputs, 1, force);
    if (s != SOTU_OK)
        return s;
    vit_model m;
    sotu_model_head head;
    if ((s = sotu_model_load(in, task, pretrained_head, 1, &m, &head)) != SOTU_OK)
        return s;
    char *classes_json = NULL;
    if ((s = check_finite(&m, in)) != SOTU_OK)
        goto cleanup;
    if (head.class_names) {
        json_t *a = json_array();
        for (int k = 0; a && k < head.classes; k++)
            json_array_append_new(a, json_string(head.class_names[k]));
        classes_json = a ? json_dumps(a, JSON_COMPACT) : NULL;
        json_decref(a);
        if (!classes_json) {
            s = sotu_error(SOTU_ERR_NOMEM, "%s: class names", out);
            goto cleanup;
        }
    }
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
    const char *meta[32] = {"format",     "pt",      "num_heads", v[0],    "img_size",
                            v[1],         "in_chans", v[2],       "patch_size", v[3],
                            "embed_dim",  v[4],      "depth",     v[5],    "mlp_hidden",
                            v[6],         "num_classes", v[7],    "source", in};
    int n_meta = 10;
    if (head.task[0]) {
        meta[2 * n_meta] = "task";
        meta[2 * n_meta++ + 1] = head.task;
    } else if (head.pretrained_head) {
        meta[2 * n_meta] = "head";
        meta[2 * n_meta++ + 1] = "pretrained";
    }
    if (classes_json) {
        meta[2 * n_meta] = "class_names";
        meta[2 * n_meta++ + 1] = classes_json;
    }
    s = sotu_safetensors_write(out, &m.table, m.params, meta, n_meta);
    if (s == SOTU_OK)
        printf("exported %s%s%s -> %s: %d tensors, %zu parameters (F32)\n", in,
               head.task[0] ? " with the head of task " : head.pretrained_head
                                                            ? " with the pretrained head" : "",
               head.task, out, m.table.n, m.num_params);
cleanup:
    free(classes_json);
    sotu_model_head_free(&head);
    vit_free(&m);
    return s;
}

int sotu_cmd_export(int argc, char **argv)
{
    enum { OPT_TASK = 0x2000, OPT_PRETRAINED_HEAD, OPT_FORCE };
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"task", required_argument, NULL, OPT_TASK},
                                         {"pretrained-head", no_argument, NULL,
                                          OPT_PRETRAINED_HEAD},
                                         {"force", no_argument, NULL, OPT_FORCE},
                                         {NULL, 0, NULL, 0}};
    const char *pos[3] = {NULL, NULL, NULL}, *task = NULL;
    bool pretrained_head = false, force = false;
    int n_pos = 0, c;
    sotu_status s = SOTU_OK;
    optind = 0;
    opterr = 0;
    while (s == SOTU_OK && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': export_usage(stdout); return SOTU_EXIT_OK;
        case OPT_TASK: task = optarg; break;
        case OPT_PRETRAINED_HEAD: pretrained_head = true; break;
        case OPT_FORCE: force = true; break;
        default: s = sotu_cli_getopt_error(c, argv); break;
        }
    }
    if (s == SOTU_OK)
        s = sotu_cli_take_positionals(argc, argv, pos, 3, &n_pos);
    if (s == SOTU_OK && (n_pos != 3 || strcmp(pos[0], "safetensors"))) {
        export_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    if (s == SOTU_OK)
        s = export_safetensors(pos[1], pos[2], task, pretrained_head, force);
    return s == SOTU_OK ? SOTU_EXIT_OK : sotu_cmd_fail("export", s);
}
