/* `sotu inspect FILE.sotud`: header, per-tensor kept counts, bytes. */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"
#include "cli/commands.h"
#include "cli/inspect/inspect.h"
#include "io/delta.h"

void sotu_inspect_print_provenance(const sotu_provenance *p)
{
    printf("theta0      XXH64 %016llx (model.pretrained %s)\n", (unsigned long long)p->theta0,
           p->pretrained);
    printf("task file   XXH64 %016llx\n", (unsigned long long)p->task_file);
    printf("trained by  sotu %s, commit %s\n", p->version, p->commit);
    printf("settings    XXH64 %016llx:\n", (unsigned long long)p->config_hash);
    for (const char *l = p->config; *l;) {
        const char *end = strchr(l, '\n');
        int n = end ? (int)(end - l) : (int)strlen(l);
        printf("            %.*s\n", n, l);
        l += n + (end != NULL);
    }
}

void sotu_inspect_print_provenance_attrs(const sotu_provenance_attrs *a)
{
    if (!a->theta0_xxh64[0]) {
        printf("provenance  not recorded (written by an older sotu)\n");
        return;
    }
    printf("theta0      XXH64 %s (model.pretrained %s)\n", a->theta0_xxh64, a->pretrained);
    printf("manifest    XXH64 %s\n", a->manifest_xxh64);
    printf("written by  commit %s\n", a->commit[0] ? a->commit : "(not recorded)");
}

static const char *mask_name(sotu_mask_kind k)
{
    return k == SOTU_MASK_SEEDED ? "seeded" : k == SOTU_MASK_DENSE ? "dense" : "indexed";
}

int sotu_inspect_delta(const char *path)
{
    sotu_delta d;
    sotu_status s = sotu_delta_read_file(path, NULL, &d);
    if (s != SOTU_OK)
        return sotu_cmd_fail("inspect", s);
    uint64_t kept = 0, count = 0, seeded_kept = 0, seeded_count = 0;
    bool verbose = sotu_log_get_level() >= SOTU_LOG_DEBUG;
    if (verbose)
        printf("%-40s %-8s %12s %12s\n", "tensor", "mask", "elements", "kept");
    for (int k = 0; k < d.n_tensors; k++) {
        const sotu_delta_tensor *t = &d.tensors[k];
        kept += t->kept;
        count += t->count;
        if (t->mask == SOTU_MASK_SEEDED)
            seeded_kept += t->kept, seeded_count += t->count;
        if (verbose)
            printf("%-40s %-8s %12llu %12llu\n", t->name, mask_name(t->mask),
                   (unsigned long long)t->count, (unsigned long long)t->kept);
    }
    if (verbose)
        printf("\n");
    printf("delta       %s (sotud version %u, verified)\n", path, d.version);
    printf("task        %u '%s'\n", d.task_index, d.task_name);
    printf("mask        seed %llu, keep %.6g%s, values %s\n", (unsigned long long)d.seed,
           d.keep, d.flags & SOTU_DELTA_FLAG_RESCALE ? ", rescale 1/keep at merge" : "",
           d.dtype == SOTU_DELTA_BF16 ? "bf16" : "f32");
    printf("tensors     %d shipped (%llu of %llu elements kept", d.n_tensors,
           (unsigned long long)kept, (unsigned long long)count);
    if (seeded_count)
        printf("; seeded %.4f of %llu", (double)seeded_kept / (double)seeded_count,
               (unsigned long long)seeded_count);
    printf(")\n");
    printf("bytes       %llu in all, %.3f per kept value (dense f32 would be %llu)\n",
           (unsigned long long)d.encoded_bytes,
           kept ? (double)d.encoded_bytes / (double)kept : 0.0,
           (unsigned long long)count * 4);
    sotu_inspect_print_provenance(&d.prov);
    sotu_delta_free(&d);
    return SOTU_EXIT_OK;
}
