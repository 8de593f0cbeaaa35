/* `sotu inspect` for CLR's files: a task module (.clrm) and a CLR run's
 * checkpoint ("sotu-clr-checkpoint", coordinator/clr/clr_eval.h). */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"
#include "coordinator/clr/clr_eval.h"
#include "cli/commands.h"
#include "cli/inspect/inspect.h"
#include "io/fsutil.h"
#include "io/h5util.h"
#include "io/module.h"

static const char *kind_name(uint32_t kind)
{
    return kind <= RESNET_CLR_ALL ? resnet_clr_name((resnet_clr)kind) : "unknown";
}

int sotu_inspect_module(const char *path)
{
    char *data = NULL;
    size_t n = 0, payload = 0;
    sotu_module head, full = {0};
    sotu_tensor_table layout = {0};
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    sotu_status s = dctx ? sotu_read_file(path, (size_t)1 << 34, &data, &n)
                         : sotu_error(SOTU_ERR_NOMEM, "zstd decompression context");
    if (s == SOTU_OK)
        s = sotu_module_read_head(data, n, &head, &layout, &payload, path);
    /* The payload against the file's own layout: frame, checksum, values. */
    if (s == SOTU_OK)
        s = sotu_module_decode(data, n, &layout, &full, dctx, path);
    if (s != SOTU_OK) {
        free(layout.t);
        free(data);
        ZSTD_freeDCtx(dctx);
        return sotu_cmd_fail("inspect", s);
    }
    size_t clr = 0, running = 0;
    for (int i = 0; i < layout.n; i++) {
        const char *name = layout.t[i].name;
        if (strstr(name, ".clr.weight"))
            clr += layout.t[i].count;
        else if (strstr(name, ".running_"))
            running += layout.t[i].count;
    }
    printf("module      %s (task module version %u, verified)\n", path, SOTU_MODULE_VERSION);
    printf("task        %u '%s'\n", head.task_index, head.task_name);
    printf("kind        %u (CLR variant %s), num_batches_tracked %lld\n", head.kind,
           kind_name(head.kind), (long long)head.counter);
    printf("tensors     %d, %zu values: %zu CLR, %zu running statistics, %zu BatchNorm "
           "affine and fc\n", layout.n, layout.total, clr, running, layout.total - clr - running);
    printf("bytes       %zu file, %zu payload (one zstd frame), %.3f per value (dense f32 "
           "%zu)\n", n, payload, layout.total ? (double)payload / (double)layout.total : 0.0,
           layout.total * 4);
    sotu_inspect_print_provenance(&head.prov);
    if (sotu_log_get_level() >= SOTU_LOG_DEBUG) {
        printf("\n%-40s %-18s %10s %12s\n", "tensor", "shape", "elements", "mean |x|");
        for (int i = 0; i < layout.n; i++) {
            const sotu_tensor_info *t = &layout.t[i];
            char shape[64] = "";
            for (int d = 0; d < t->ndim; d++)
                snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld",
                         d ? "," : "[", (long long)t->shape[d]);
            strncat(shape, "]", sizeof shape - strlen(shape) - 1);
            double a = 0;
            for (size_t k = 0; k < t->count; k++)
                a += fabs(full.values[t->offset + k]);
            printf("%-40s %-18s %10zu %12.5g\n", t->name, shape, t->count,
                   t->count ? a / (double)t->count : 0.0);
        }
    }
    sotu_module_free(&full);
    free(layout.t);
    free(data);
    ZSTD_freeDCtx(dctx);
    return SOTU_EXIT_OK;
}

static void put_acc(double v)
{
    if (isnan(v))
        printf(" %9s", "-");
    else
        printf(" %9.4f", v);
}

int sotu_inspect_clr_checkpoint(const char *path)
{
    hid_t f = H5I_INVALID_HID, tasks = H5I_INVALID_HID, g = H5I_INVALID_HID;
    sotu_status s = sotu_h5_open_read(path, &f);
    char variant[32] = "", created[40] = "", version[32] = "";
    int64_t depth = 0, width = 0, image = 0, fv = 0;
    if (s == SOTU_OK)
        s = sotu_h5_read_int_attr(f, "format_version", &fv, path);
    if (s == SOTU_OK && fv != SOTU_CLR_CHECKPOINT_VERSION)
        s = sotu_error(SOTU_ERR_DATA, "%s: format_version %lld, this sotu reads %d", path,
                       (long long)fv, SOTU_CLR_CHECKPOINT_VERSION);
    if (s == SOTU_OK)
        s = sotu_h5_read_str_attr(f, "clr_variant", variant, sizeof variant, path);
    if (s == SOTU_OK)
        s = sotu_h5_read_str_attr(f, "created", created, sizeof created, path);
    if (s == SOTU_OK)
        s = sotu_h5_read_str_attr(f, "sotu_version", version, sizeof version, path);
    if (s == SOTU_OK)
        s = sotu_h5_read_int_attr(f, "depth", &depth, path);
    if (s == SOTU_OK)
        s = sotu_h5_read_int_attr(f, "width", &width, path);
    if (s == SOTU_OK)
        s = sotu_h5_read_int_attr(f, "image_size", &image, path);
    if (s == SOTU_OK && (tasks = H5Gopen2(f, "/tasks", H5P_DEFAULT)) < 0)
        s = sotu_error(SOTU_ERR_DATA, "%s: no /tasks group", path);
    H5G_info_t gi = {0};
    if (s == SOTU_OK && H5Gget_info(tasks, &gi) < 0)
        s = sotu_error(SOTU_ERR_DATA, "%s: /tasks cannot be listed", path);
    hsize_t T = gi.nlinks;
    if (s != SOTU_OK)
        goto done;
    printf("checkpoint  %s (sotu-clr-checkpoint version %lld, sotu %s, %s)\n", path,
           (long long)fv, version, created);
    printf("method      clr, variant %s, on a frozen ResNet-%lld of width %lld (%lldx%lld "
           "images)\n", variant, (long long)depth, (long long)width, (long long)image,
           (long long)image);
    sotu_provenance_attrs prov;
    sotu_h5_read_provenance(f, &prov, path);
    sotu_inspect_print_provenance_attrs(&prov);
    printf("\n%-28s %7s %9s %9s %9s %9s %8s\n", "task", "classes", "clr", "frozen", "finetuned",
           "bytes", "status");
    /* By index: the link order is alphabetical. */
    for (int64_t want = 0; want < (int64_t)T; want++) {
        for (hsize_t i = 0; i < T; i++) {
            char name[SOTU_TASK_NAME_MAX];
            if (H5Lget_name_by_idx(tasks, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                                   H5P_DEFAULT) < 0)
                continue;
            hid_t t = H5Gopen2(tasks, name, H5P_DEFAULT);
            int64_t index = -1, classes = 0, bytes = 0;
            char status[16] = "";
            if (t < 0)
                continue;
            if (sotu_h5_read_int_attr(t, "index", &index, path) != SOTU_OK || index != want) {
                H5Gclose(t);
                continue;
            }
            sotu_h5_read_int_attr(t, "classes", &classes, path);
            sotu_h5_read_int_attr(t, "bytes", &bytes, path);
            sotu_h5_read_str_attr(t, "status", status, sizeof status, path);
            printf("%-28s %7lld", name, (long long)classes);
            put_acc(sotu_h5_f64_attr_or_nan(t, "eval_acc", path));
            put_acc(sotu_h5_f64_attr_or_nan(t, "frozen_acc", path));
            put_acc(sotu_h5_f64_attr_or_nan(t, "full_finetune_acc", path));
            printf(" %9lld %8s\n", (long long)bytes, status);
            H5Gclose(t);
        }
    }
    if (H5Lexists(f, "/eval", H5P_DEFAULT) > 0 && (g = H5Gopen2(f, "/eval", H5P_DEFAULT)) >= 0) {
        printf("\nfinal avg acc (TIL): clr %.4f, frozen %.4f, finetuned %.4f; forgetting %.4f\n",
               sotu_h5_f64_attr_or_nan(g, "clr_task_heads_final_avg_acc", path),
               sotu_h5_f64_attr_or_nan(g, "frozen_task_heads_final_avg_acc", path),
               sotu_h5_f64_attr_or_nan(g, "finetuned_task_heads_final_avg_acc", path),
               sotu_h5_f64_attr_or_nan(g, "clr_task_heads_forgetting", path));
        H5Gclose(g);
    } else {
        printf("\nnot evaluated (a checkpoint written after a stop signal)\n");
    }
    if (H5Lexists(f, "/cost", H5P_DEFAULT) > 0 && (g = H5Gopen2(f, "/cost", H5P_DEFAULT)) >= 0) {
        printf("cost        %.3f%% parameters added per task, FLOPs %.3f of full fine-tuning "
               "(measured %.3f)\n", sotu_h5_f64_attr_or_nan(g, "added_params_pct", path),
               sotu_h5_f64_attr_or_nan(g, "flops_ratio", path), sotu_h5_f64_attr_or_nan(g, "time_ratio", path));
        H5Gclose(g);
    }
done:
    if (tasks >= 0)
        H5Gclose(tasks);
    if (f >= 0)
        H5Fclose(f);
    if (s == SOTU_OK)
        s = sotu_inspect_checksums(path);
    return s == SOTU_OK ? SOTU_EXIT_OK : sotu_cmd_fail("inspect", s);
}
