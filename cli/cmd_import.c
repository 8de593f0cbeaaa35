/* `sotu import safetensors IN OUT.h5`: a timm ViT's or a torchvision
 * ResNet-18/34's safetensors weights (one file or a sharded index) as a sotu
 * pretrained weights file (io/weights.h, io/resnet_io.h). The
 * architecture is inferred from the tensor names and shapes; features the
 * engines do not implement are rejected by name rather than silently
 * dropped. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "io/fsutil.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "worker/resnet.h"
#include "worker/vit.h"

static void import_usage(FILE *f)
{
    fprintf(f,
            "usage: sotu import safetensors IN OUT.h5 [--heads H] [--image-size S] [--force]\n\n"
            "Converts a timm VisionTransformer state dict stored as safetensors (F32, F16 or\n"
            "BF16; IN may be a sharded *.safetensors.index.json) into a sotu weights file.\n"
            "The model config comes from the shapes: width from cls_token, depth from\n"
            "blocks.*, patch and channels from patch_embed.proj.weight, image size from\n"
            "pos_embed, MLP width from fc1, classes from head.\n\n"
            "  --heads H        attention heads (else __metadata__ \"num_heads\"; required\n"
            "                   if neither: timm's vit_tiny 3, vit_small 6, vit_base 12,\n"
            "                   vit_large 16)\n"
            "  --image-size S   check that the position embedding is for S x S images;\n"
            "                   for a ResNet, the image size recorded in OUT (default 32\n"
            "                   with a 3x3 conv1, 224 with torchvision's 7x7 conv1)\n"
            "  --force          replace OUT.h5 if it exists (never IN or one of its shards)\n\n"
            "Rejected by name: register tokens, no class token, average pooling (fc_norm),\n"
            "layer scale, qk-norm, pre-norm, attention pooling, bias-free projections.\n\n"
            "A torchvision ResNet (conv1.weight, bn1.*, layer1.0.conv1.weight, fc.*) is\n"
            "imported as a ResNet: depth 18 or 34 from the blocks per layer, width from\n"
            "conv1, small_input from conv1's kernel (3: 3x3/1 and no max-pool, 7:\n"
            "torchvision's stem), classes from fc, BatchNorm running statistics\n"
            "included; CLR weights (<conv>.clr.weight) are kept. Bottleneck ResNets\n"
            "(ResNet-50 and deeper) are rejected.\n"
            "\nexit codes: 0 ok, 2 usage (also: OUT.h5 exists, or is an input), 3 bad or\n"
            "unsupported input, 4 I/O error\n");
}

static void shape_str(char *dst, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(dst, cap, "[");
    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(dst + n, cap - n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (n < cap)
        snprintf(dst + n, cap - n, "]");
}

static const sotu_safetensors_tensor *get(const sotu_safetensors *st, const char *name)
{
    int i = sotu_safetensors_find(st, name);
    return i < 0 ? NULL : &st->tensors[i];
}

/* Reads tensor j of st into dst after checking its shape against ti and
 * that every value is finite; ctx describes the inferred model for the
 * shape message. */
static sotu_status read_checked(const sotu_safetensors *st, const char *in, int j,
                                const sotu_tensor_info *ti, float *dst, const char *ctx)
{
    const sotu_safetensors_tensor *t = &st->tensors[j];
    int same = t->ndim == ti->ndim;
    for (int d = 0; d < ti->ndim && same; d++)
        same = t->shape[d] == ti->shape[d];
    if (!same) {
        char want[96], got[96];
        shape_str(want, sizeof want, ti->ndim, ti->shape);
        shape_str(got, sizeof got, t->ndim, t->shape);
        return sotu_error(SOTU_ERR_DATA, "%s: tensor '%s' has shape %s, expected %s (%s)", in,
                          ti->name, got, want, ctx);
    }
    sotu_status s = sotu_safetensors_read_f32(st, j, dst);
    if (s != SOTU_OK)
        return s;
    for (size_t k = 0; k < ti->count; k++)
        if (!isfinite(dst[k]))
            return sotu_error(SOTU_ERR_DATA, "%s: tensor '%s' element %zu is %g", in, ti->name,
                              k, (double)dst[k]);
    return SOTU_OK;
}

/* Names of timm ViT variants sotu does not implement, matched as substrings. */
static const struct {
    const char *pattern;
    const char *feature;
} unsupported[] = {
    {"reg_token", "register tokens (reg_token)"},
    {".ls1.", "layer scale (blocks.*.ls1/ls2.gamma, init_values)"},
    {".ls2.", "layer scale (blocks.*.ls1/ls2.gamma, init_values)"},
    {".q_norm.", "qk-norm (attn.q_norm/k_norm)"},
    {".k_norm.", "qk-norm (attn.q_norm/k_norm)"},
    {"fc_norm.", "average pooling (fc_norm, global_pool='avg')"},
    {"norm_pre.", "a norm before the blocks (norm_pre, pre_norm=True)"},
    {"attn_pool.", "attention pooling (attn_pool, global_pool='map')"},
    {"dist_token", "a distillation token (DeiT dist_token)"},
    {"head_dist.", "a distillation head (DeiT head_dist)"},
};

static sotu_status check_features(const sotu_safetensors *st, const char *path)
{
    for (int i = 0; i < st->n_tensors; i++)
        for (size_t k = 0; k < sizeof unsupported / sizeof unsupported[0]; k++)
            if (strstr(st->tensors[i].name, unsupported[k].pattern))
                return sotu_error(SOTU_ERR_DATA,
                                  "%s: tensor '%s': the model uses %s, which sotu's ViT does not "
                                  "implement",
                                  path, st->tensors[i].name, unsupported[k].feature);
    if (!get(st, "cls_token"))
        return sotu_error(SOTU_ERR_DATA,
                          "%s: no cls_token: the model has no class token (class_token=False, "
                          "pooling over patches), which sotu's ViT does not implement",
                          path);
    if (!get(st, "pos_embed"))
        return sotu_error(SOTU_ERR_DATA,
                          "%s: no pos_embed: the model has no learned absolute position "
                          "embedding, which sotu's ViT requires",
                          path);
    if (!get(st, "patch_embed.proj.weight"))
        return sotu_error(SOTU_ERR_DATA,
                          "%s: no patch_embed.proj.weight: not a timm VisionTransformer "
                          "(expected a conv patch embedding)",
                          path);
    if (!get(st, "patch_embed.proj.bias"))
        return sotu_error(SOTU_ERR_DATA,
                          "%s: no patch_embed.proj.bias: a bias-free patch embedding "
                          "(as CLIP) is not supported by sotu",
                          path);
    if (get(st, "blocks.0.attn.qkv.weight") && !get(st, "blocks.0.attn.qkv.bias"))
        return sotu_error(SOTU_ERR_DATA,
                          "%s: no blocks.0.attn.qkv.bias: attention without qkv bias "
                          "(qkv_bias=False) is not supported by sotu",
                          path);
    return SOTU_OK;
}

/* Fills c from the shapes (heads excepted). */
static sotu_status infer_config(const sotu_safetensors *st, const char *path, sotu_vit_config *c)
{
    const sotu_safetensors_tensor *cls = get(st, "cls_token"), *pos = get(st, "pos_embed"),
                                  *pe = get(st, "patch_embed.proj.weight"),
                                  *fc1 = get(st, "blocks.0.mlp.fc1.weight"),
                                  *head = get(st, "head.weight");
    char sh[96];
    if (cls->ndim != 3 || cls->shape[0] != 1 || cls->shape[1] != 1 || cls->shape[2] < 1) {
        shape_str(sh, sizeof sh, cls->ndim, cls->shape);
        return sotu_error(SOTU_ERR_DATA, "%s: cls_token has shape %s, expected [1, 1, D]", path,
                          sh);
    }
    int64_t D = cls->shape[2];
    if (pe->ndim != 4 || pe->shape[0] != D || pe->shape[2] != pe->shape[3] || pe->shape[2] < 1) {
        shape_str(sh, sizeof sh, pe->ndim, pe->shape);
        return sotu_error(SOTU_ERR_DATA,
                          "%s: patch_embed.proj.weight has shape %s, expected [%lld, C, P, P] "
                          "(square patches)",
                          path, sh, (long long)D);
    }
    if (pos->ndim != 3 || pos->shape[0] != 1 || pos->shape[2] != D || pos->shape[1] < 2) {
        shape_str(sh, sizeof sh, pos->ndim, pos->shape);
        return sotu_error(SOTU_ERR_DATA, "%s: pos_embed has shape %s, expected [1, 1 + N, %lld]",
                          path, sh, (long long)D);
    }
    int64_t T = pos->shape[1], g = (int64_t)llround(sqrt((double)(T - 1)));
    if (g * g != T - 1) {
        int64_t g0 = (int64_t)llround(sqrt((double)T));
        if (g0 * g0 == T)
            return sotu_error(SOTU_ERR_DATA,
                              "%s: pos_embed has %lld positions, a square grid without the "
                              "class token's position (no_embed_class=True), which sotu's ViT "
                              "does not implement",
                              path, (long long)T);
        return sotu_error(SOTU_ERR_DATA,
                          "%s: pos_embed has %lld positions, not 1 + a square grid of patches",
                          path, (long long)T);
    }
    int depth = 0;
    for (int i = 0; i < st->n_tensors; i++) {
        int b;
        if (sscanf(st->tensors[i].name, "blocks.%d.", &b) == 1 && b >= depth && b < 100000)
            depth = b + 1;
    }
    if (depth == 0)
        return sotu_error(SOTU_ERR_DATA, "%s: no tensors blocks.0.* (expected transformer blocks)",
                          path);
    if (!fc1 || fc1->ndim != 2 || fc1->shape[1] != D) {
        return sotu_error(SOTU_ERR_DATA,
                          "%s: blocks.0.mlp.fc1.weight missing or not [F, %lld]", path,
                          (long long)D);
    }
    memset(c, 0, sizeof *c);
    c->dim = (int)D;
    c->channels = (int)pe->shape[1];
    c->patch = (int)pe->shape[2];
    c->image_size = (int)(g * pe->shape[2]);
    c->depth = depth;
    c->mlp_hidden = (int)fc1->shape[0];
    if (head) {
        if (head->ndim != 2 || head->shape[1] != D || head->shape[0] < 1) {
            shape_str(sh, sizeof sh, head->ndim, head->shape);
            return sotu_error(SOTU_ERR_DATA, "%s: head.weight has shape %s, expected [K, %lld]",
                              path, sh, (long long)D);
        }
        c->classes = (int)head->shape[0];
    } else if (get(st, "head.bias")) {
        return sotu_error(SOTU_ERR_DATA, "%s: head.bias without head.weight", path);
    } else {
        c->classes = 1;
    }
    return SOTU_OK;
}

/* ------------------------------------------------------------------------ */
/* torchvision ResNet                                                       */
/* ------------------------------------------------------------------------ */

static bool is_torchvision_resnet(const sotu_safetensors *st)
{
    return get(st, "conv1.weight") && get(st, "bn1.weight") && get(st, "layer1.0.conv1.weight");
}

/* Reads tensor j, which must be an I64 scalar (num_batches_tracked). */
static sotu_status read_i64_scalar(const sotu_safetensors *st, int j, const char *in, int64_t *v)
{
    const sotu_safetensors_tensor *t = &st->tensors[j];
    if (strcmp(t->dtype, "I64") || t->count != 1)
        return sotu_error(SOTU_ERR_DATA, "%s: tensor '%s' is %s with %llu elements, expected an "
                          "I64 scalar", in, t->name, t->dtype, (unsigned long long)t->count);
    const sotu_safetensors_shard *sh = &st->shards[t->shard];
    unsigned char b[8];
    FILE *f = fopen(sh->path, "rb");
    bool ok = f && fseek(f, (long)(sh->data_start + t->begin), SEEK_SET) == 0 &&
              fread(b, 1, sizeof b, f) == sizeof b;
    if (f)
        fclose(f);
    if (!ok)
        return sotu_error(SOTU_ERR_IO, "%s: cannot read tensor '%s'", sh->path, t->name);
    uint64_t u = 0;
    for (int k = 0; k < 8; k++)
        u |= (uint64_t)b[k] << (8 * k);
    *v = (int64_t)u;
    if (*v < 0)
        return sotu_error(SOTU_ERR_DATA, "%s: tensor '%s' is %lld, expected >= 0", in, t->name,
                          (long long)*v);
    return SOTU_OK;
}

/* Fills c from the names and shapes; image_size from the flag or the stem. */
static sotu_status infer_resnet(const sotu_safetensors *st, const char *in, int image_size_flag,
                                resnet_config *c)
{
    int blocks[4] = {0};
    bool clr = false;
    for (int i = 0; i < st->n_tensors; i++) {
        const char *name = st->tensors[i].name;
        int L, b, k;
        if (sscanf(name, "layer%d.%d.conv%d.", &L, &b, &k) == 3 && k == 3)
            return sotu_error(SOTU_ERR_DATA, "%s: tensor '%s': Bottleneck blocks (ResNet-50 and "
                              "deeper) are not supported by sotu, only the BasicBlock "
                              "ResNet-18 and ResNet-34", in, name);
        if (sscanf(name, "layer%d.%d.", &L, &b) == 2 && L >= 1 && L <= 4 && b >= 0 &&
            b < 100000 && b >= blocks[L - 1])
            blocks[L - 1] = b + 1;
        clr |= strstr(name, ".clr.weight") != NULL;
    }
    static const int r18[4] = {2, 2, 2, 2}, r34[4] = {3, 4, 6, 3};
    memset(c, 0, sizeof *c);
    if (!memcmp(blocks, r18, sizeof blocks))
        c->depth = 18;
    else if (!memcmp(blocks, r34, sizeof blocks))
        c->depth = 34;
    else
        return sotu_error(SOTU_ERR_DATA, "%s: %d, %d, %d, %d blocks in layer1..4: sotu "
                          "implements ResNet-18 (2, 2, 2, 2) and ResNet-34 (3, 4, 6, 3)", in,
                          blocks[0], blocks[1], blocks[2], blocks[3]);
    const sotu_safetensors_tensor *conv1 = get(st, "conv1.weight"), *fc = get(st, "fc.weight");
    char sh[96];
    if (conv1->ndim != 4 || conv1->shape[2] != conv1->shape[3] ||
        (conv1->shape[2] != 3 && conv1->shape[2] != 7) || conv1->shape[0] < 1 ||
        conv1->shape[0] > (1 << 16) || conv1->shape[1] < 1 || conv1->shape[1] > (1 << 16)) {
        shape_str(sh, sizeof sh, conv1->ndim, conv1->shape);
        return sotu_error(SOTU_ERR_DATA, "%s: conv1.weight has shape %s, expected [W, C, 7, 7] "
                          "(torchvision's stem) or [W, C, 3, 3] (small-input stem)", in, sh);
    }
    c->width = (int)conv1->shape[0];
    c->channels = (int)conv1->shape[1];
    c->small_input = conv1->shape[2] == 3;
    c->image_size = image_size_flag > 0 ? image_size_flag : c->small_input ? 32 : 224;
    c->clr = !clr ? RESNET_CLR_NONE
             : get(st, "layer2.0.downsample.0.clr.weight") ? RESNET_CLR_ALL
                                                           : RESNET_CLR_CONV3;
    if (fc) {
        if (fc->ndim != 2 || fc->shape[1] != 8 * (int64_t)c->width || fc->shape[0] < 1 ||
            fc->shape[0] > (1 << 24)) {
            shape_str(sh, sizeof sh, fc->ndim, fc->shape);
            return sotu_error(SOTU_ERR_DATA, "%s: fc.weight has shape %s, expected [K, %d]", in,
                              sh, 8 * c->width);
        }
        c->classes = (int)fc->shape[0];
    } else if (get(st, "fc.bias")) {
        return sotu_error(SOTU_ERR_DATA, "%s: fc.bias without fc.weight", in);
    } else {
        c->classes = 1;
    }
    return SOTU_OK;
}

/* Reads every tensor of tab (parameters or running statistics) into dst;
 * fc.* may be absent when skip_fc. */
static sotu_status read_resnet_table(const sotu_safetensors *st, const char *in,
                                     const sotu_tensor_table *tab, float *dst, bool skip_fc,
                                     const char *ctx)
{
    for (int i = 0; i < tab->n; i++) {
        const sotu_tensor_info *ti = &tab->t[i];
        int j = sotu_safetensors_find(st, ti->name);
        if (j < 0 && skip_fc && !strncmp(ti->name, "fc.", 3))
            continue;
        if (j < 0) {
            char want[96];
            shape_str(want, sizeof want, ti->ndim, ti->shape);
            return sotu_error(SOTU_ERR_DATA, "%s: tensor '%s' %s is missing (%s)", in, ti->name,
                              want, ctx);
        }
        sotu_status s = read_checked(st, in, j, ti, dst + ti->offset, ctx);
        if (s != SOTU_OK)
            return s;
    }
    return SOTU_OK;
}

static sotu_status import_resnet(const sotu_safetensors *st, const char *in, const char *out,
                                 int image_size_flag)
{
    resnet_config c;
    resnet_model m = {0};
    sotu_status s = infer_resnet(st, in, image_size_flag, &c);
    if (s != SOTU_OK)
        return s;
    if ((s = resnet_init(&m, &c, 1)) != SOTU_OK)
        goto cleanup;
    char ctx[96];
    snprintf(ctx, sizeof ctx, "resnet%d width %d, %d classes", c.depth, c.width, c.classes);
    /* Every tensor of the file has a place: a parameter, a running statistic
     * or a BatchNorm's counter. */
    for (int i = 0; i < st->n_tensors; i++) {
        const char *name = st->tensors[i].name;
        const char *suffix = strstr(name, ".num_batches_tracked");
        char mean[SOTU_TENSOR_NAME_MAX + 16];
        snprintf(mean, sizeof mean, "%.*s.running_mean", suffix ? (int)(suffix - name) : 0, name);
        bool known = sotu_tensor_find(&m.table, name) >= 0 ||
                     sotu_tensor_find(&m.buffers, name) >= 0 ||
                     (suffix && !suffix[20] && sotu_tensor_find(&m.buffers, mean) >= 0);
        if (!known) {
            s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s' is not part of the torchvision ResNet "
                           "that sotu implements (%s)", in, name, ctx);
            goto cleanup;
        }
        int64_t nbt = 0;
        if (suffix && (s = read_i64_scalar(st, i, in, &nbt)) != SOTU_OK)
            goto cleanup;
        if (suffix && !strcmp(name, "bn1.num_batches_tracked"))
            m.num_batches_tracked = nbt;
    }
    bool have_fc = get(st, "fc.weight") != NULL;
    if ((s = read_resnet_table(st, in, &m.table, m.params, !have_fc, ctx)) != SOTU_OK ||
        (s = read_resnet_table(st, in, &m.buffers, m.running, false, ctx)) != SOTU_OK)
        goto cleanup;
    for (int b = 0; b < m.buffers.n; b++) {
        const sotu_tensor_info *ti = &m.buffers.t[b];
        for (size_t k = 0; k < ti->count && strstr(ti->name, "running_var"); k++)
            if (m.running[ti->offset + k] < 0) {
                s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s' element %zu is a negative "
                               "variance", in, ti->name, k);
                goto cleanup;
            }
    }
    if (!have_fc)
        SOTU_WARN("%s: no fc (a headless backbone); writing a zero fc with 1 class "
                  "(fine-tuning gives each task its own head)", in);
    if ((s = resnet_weights_write(out, &m)) != SOTU_OK)
        goto cleanup;
    printf("imported %s -> %s: ResNet-%d, %zu parameters; width %d, channels %d, %s stem, "
           "clr %s, classes %d, image size %d\n",
           in, out, c.depth, m.num_params, c.width, c.channels,
           c.small_input ? "small-input (3x3/1, no max-pool)" : "torchvision (7x7/2, max-pool)",
           resnet_clr_name(c.clr), c.classes, c.image_size);
cleanup:
    resnet_free(&m);
    return s;
}

/* OUT must not be IN or one of its shards, nor exist without --force. */
static sotu_status check_output(const sotu_safetensors *st, const char *in, const char *out,
                                bool force)
{
    const char **inputs = malloc(sizeof *inputs * ((size_t)st->n_shards + 1));
    if (!inputs)
        return sotu_error(SOTU_ERR_NOMEM, "%s: %d shard names", in, st->n_shards);
    inputs[0] = in;
    for (int i = 0; i < st->n_shards; i++)
        inputs[i + 1] = st->shards[i].path;
    sotu_status s = sotu_output_check(out, inputs, st->n_shards + 1, force);
    free(inputs);
    return s;
}

static sotu_status import_safetensors(const char *in, const char *out, int heads_flag,
                                      int image_size_flag, bool force)
{
    sotu_safetensors st;
    vit_model m = {0};
    sotu_status s = sotu_safetensors_open(in, &st);
    if (s != SOTU_OK)
        return s;
    if ((s = check_output(&st, in, out, force)) != SOTU_OK)
        goto cleanup;
    if (is_torchvision_resnet(&st)) {
        if (heads_flag > 0)
            s = sotu_error(SOTU_ERR_USAGE, "%s: --heads applies to ViTs; this is a ResNet", in);
        else
            s = import_resnet(&st, in, out, image_size_flag);
        goto cleanup;
    }
    sotu_vit_config c;
    if ((s = check_features(&st, in)) != SOTU_OK || (s = infer_config(&st, in, &c)) != SOTU_OK)
        goto cleanup;

    const char *meta_heads = sotu_safetensors_meta(&st, "num_heads");
    if (heads_flag > 0) {
        c.heads = heads_flag;
    } else if (meta_heads) {
        if ((s = sotu_cli_int("__metadata__ num_heads", meta_heads, 1, 65536, &c.heads)) != SOTU_OK) {
            s = sotu_error(SOTU_ERR_DATA, "%s: __metadata__ num_heads '%s' is not a positive "
                           "integer", in, meta_heads);
            goto cleanup;
        }
    } else {
        s = sotu_error(SOTU_ERR_USAGE,
                       "%s: the number of attention heads is not in the shapes and the file's "
                       "__metadata__ has no \"num_heads\": pass --heads H (dim %d; timm uses "
                       "dim / 64, e.g. 3 for vit_tiny, 6 for vit_small, 12 for vit_base)",
                       in, c.dim);
        goto cleanup;
    }
    if (c.dim % c.heads) {
        s = sotu_error(heads_flag > 0 ? SOTU_ERR_USAGE : SOTU_ERR_DATA,
                       "%s: %d heads do not divide the width %d", in, c.heads, c.dim);
        goto cleanup;
    }
    if (image_size_flag > 0 && image_size_flag != c.image_size) {
        s = sotu_error(SOTU_ERR_USAGE,
                       "%s: --image-size %d, but pos_embed holds a %dx%d grid of %d-pixel "
                       "patches, i.e. %d-pixel images (resampling position embeddings is not "
                       "supported)",
                       in, image_size_flag, c.image_size / c.patch, c.image_size / c.patch,
                       c.patch, c.image_size);
        goto cleanup;
    }

    if ((s = vit_init(&m, &c, 1)) != SOTU_OK)
        goto cleanup;
    for (int i = 0; i < st.n_tensors; i++)
        if (sotu_tensor_find(&m.table, st.tensors[i].name) < 0) {
            s = sotu_error(SOTU_ERR_DATA,
                           "%s: tensor '%s' is not part of the timm ViT that sotu implements "
                           "(depth %d, width %d)",
                           in, st.tensors[i].name, c.depth, c.dim);
            goto cleanup;
        }
    int have_head = sotu_safetensors_find(&st, "head.weight") >= 0;
    for (int i = 0; i < m.table.n; i++) {
        const sotu_tensor_info *ti = &m.table.t[i];
        int j = sotu_safetensors_find(&st, ti->name);
        char want[96];
        shape_str(want, sizeof want, ti->ndim, ti->shape);
        if (j < 0) {
            if (!have_head && !strncmp(ti->name, "head.", 5))
                continue;
            s = sotu_error(SOTU_ERR_DATA, "%s: tensor '%s' %s is missing", in, ti->name, want);
            goto cleanup;
        }
        char ctx[96];
        snprintf(ctx, sizeof ctx, "dim %d, mlp %d, classes %d", c.dim, c.mlp_hidden, c.classes);
        if ((s = read_checked(&st, in, j, ti, m.params + ti->offset, ctx)) != SOTU_OK)
            goto cleanup;
    }
    if (!have_head)
        SOTU_WARN("%s: no head (num_classes=0); writing a zero head with 1 class (fine-tuning "
                  "gives each task its own head)",
                  in);
    if ((s = sotu_weights_write(out, &c, &m.table, m.params)) != SOTU_OK)
        goto cleanup;
    printf("imported %s -> %s: %d tensors, %zu parameters; image %d, channels %d, patch %d, "
           "dim %d, depth %d, heads %d, mlp %d, classes %d\n",
           in, out, m.table.n, m.num_params, c.image_size, c.channels, c.patch, c.dim, c.depth,
           c.heads, c.mlp_hidden, c.classes);
cleanup:
    vit_free(&m);
    sotu_safetensors_free(&st);
    return s;
}

int sotu_cmd_import(int argc, char **argv)
{
    enum { OPT_HEADS = 0x2000, OPT_IMAGE_SIZE, OPT_FORCE };
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"heads", required_argument, NULL, OPT_HEADS},
                                         {"image-size", required_argument, NULL, OPT_IMAGE_SIZE},
                                         {"force", no_argument, NULL, OPT_FORCE},
                                         {NULL, 0, NULL, 0}};
    const char *pos[3] = {NULL, NULL, NULL};
    int n_pos = 0, heads = 0, image_size = 0, c;
    bool force = false;
    sotu_status s = SOTU_OK;
    optind = 0;
    opterr = 0;
    while (s == SOTU_OK && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': import_usage(stdout); return SOTU_EXIT_OK;
        case OPT_HEADS: s = sotu_cli_int("--heads", optarg, 1, 65536, &heads); break;
        case OPT_IMAGE_SIZE:
            s = sotu_cli_int("--image-size", optarg, 1, 65536, &image_size);
            break;
        case OPT_FORCE: force = true; break;
        default: s = sotu_cli_getopt_error(c, argv); break;
        }
    }
    if (s == SOTU_OK)
        s = sotu_cli_take_positionals(argc, argv, pos, 3, &n_pos);
    if (s == SOTU_OK && (n_pos != 3 || strcmp(pos[0], "safetensors"))) {
        import_usage(stderr);
        return SOTU_EXIT_USAGE;
    }
    if (s == SOTU_OK)
        s = import_safetensors(pos[1], pos[2], heads, image_size, force);
    return s == SOTU_OK ? SOTU_EXIT_OK : sotu_cmd_fail("import", s);
}
