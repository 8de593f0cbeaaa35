/* Provenance: what produced a task's trained result (a SoTU delta,
 * io/delta.h, or a CLR module, io/module.h). Both formats carry this block
 * inside their checksummed header, so `sotu train --resume` and `sotu merge`
 * can refuse a result that was trained from other pretrained weights, with
 * other training settings or on another task file than the run now names.
 *
 * The block, all integers little-endian (the same bytes in both formats):
 *
 *   8   u64   θ0 fingerprint: XXH64 (seed 0) of the pretrained parameters'
 *             bytes as the rank trains from them (sotu_theta0_fingerprint)
 *   8   u64   task file checksum: XXH64 (seed 0) of the task file's bytes
 *   8   u64   training configuration hash: XXH64 (seed 0) of the text below
 *   2   u16   Lc, 1 <= Lc < SOTU_PROVENANCE_CONFIG_MAX
 *   Lc        the training configuration: one "key: value\n" line per key
 *             the task was trained with (common/config.h,
 *             sotu_config_training_text), no NUL
 *   2   u16   Lp, 1 <= Lp < SOTU_PATH_MAX
 *   Lp        model.pretrained as the run named it (shown in messages; the
 *             fingerprint is what is compared), no NUL
 *   1   u8    Lv, 1 <= Lv < SOTU_PROVENANCE_NAME_MAX
 *   Lv        sotu version that trained it (common/build_info.h), no NUL
 *   1   u8    Lg, 1 <= Lg < SOTU_PROVENANCE_NAME_MAX
 *   Lg        git commit of that sotu, no NUL
 *
 * The task's manifest name and index are fields of the formats themselves.
 */
#ifndef SOTU_IO_PROVENANCE_H
#define SOTU_IO_PROVENANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/status.h"

#define SOTU_PROVENANCE_CONFIG_MAX 4096
#define SOTU_PROVENANCE_NAME_MAX 64
/* Fixed bytes of the block (the three hashes and the four lengths). */
#define SOTU_PROVENANCE_FIXED 30

typedef struct {
    uint64_t theta0;      /* XXH64 of θ0's parameter bytes */
    uint64_t task_file;   /* XXH64 of the task file */
    uint64_t config_hash; /* XXH64 of config */
    char config[SOTU_PROVENANCE_CONFIG_MAX];
    char pretrained[SOTU_PATH_MAX];
    char version[SOTU_PROVENANCE_NAME_MAX];
    char commit[SOTU_PROVENANCE_NAME_MAX];
} sotu_provenance;

/* The provenance an output file (a checkpoint) records as attributes, as
 * text read back (io/h5util.h): "" where a file of an older sotu has none. */
typedef struct {
    char theta0_xxh64[20], manifest_xxh64[20], commit[SOTU_PROVENANCE_NAME_MAX];
    char pretrained[SOTU_PATH_MAX];
} sotu_provenance_attrs;

/* XXH64 (seed 0) of n bytes. */
uint64_t sotu_xxh64(const void *p, size_t n);

/* θ0's fingerprint: XXH64 of a's n_a floats then b's n_b floats (b may be
 * NULL: the ViT has no buffers; CLR's ResNet adds its running statistics). */
uint64_t sotu_theta0_fingerprint(const float *a, size_t n_a, const float *b, size_t n_b);

/* XXH64 of the bytes of the file at path, read in 1 MiB pieces.
 * SOTU_ERR_IO naming path and errno. */
sotu_status sotu_file_xxh64(const char *path, uint64_t *out);

/* Fills p with what a run trains with: θ0's fingerprint and path, cfg's
 * training text and its hash, this sotu's version and commit; task_file 0
 * (the worker sets it). SOTU_ERR_NOMEM, or SOTU_ERR_CONFIG if the text does
 * not fit the format. */
sotu_status sotu_provenance_init(sotu_provenance *p, uint64_t theta0, const char *pretrained,
                                 const sotu_config *cfg);

/* Bytes of p's encoded block. */
size_t sotu_provenance_size(const sotu_provenance *p);

/* SOTU_ERR_DATA (message starting with what) if a string of p is empty or
 * too long for the block. */
sotu_status sotu_provenance_check(const sotu_provenance *p, const char *what);

/* Writes p's block at dst (sotu_provenance_size bytes, p checked); returns
 * the byte after it. */
uint8_t *sotu_provenance_put(uint8_t *dst, const sotu_provenance *p);

/* Reads a block from src[*pos, n) into out and advances *pos; SOTU_ERR_DATA
 * naming what and the field when it is truncated, a length is out of range,
 * a string holds a NUL or the hash does not match the text. */
sotu_status sotu_provenance_get(const uint8_t *src, size_t n, size_t *pos, sotu_provenance *out,
                                const char *what);

/* The keys whose lines differ between two training texts, as
 * "key: old -> new" joined by "; " ("(absent)" for a key only one has), into
 * dst[0, cap) (cut with "..." if longer). Returns the number of keys. */
int sotu_provenance_config_diff(const char *old_text, const char *new_text, char *dst,
                                size_t cap);

/* What comparing a stored result with the run found. */
typedef enum {
    SOTU_PROVENANCE_SAME = 0,     /* trained as the run would train it */
    SOTU_PROVENANCE_RETRAIN,      /* other training settings or task file, and the caller
                                   * allowed retraining: the task is to be trained again */
} sotu_provenance_verdict;

/* The one comparison every loader of stored results makes (coordinator
 * run.c, clr_run.c, sweeps, array elements, sotu merge): `stored` is what
 * file `path` (task `task`, task file `task_path` whose bytes now hash to
 * task_file_now) was trained with; `run` what the run trains with.
 *  - another θ0: SOTU_ERR_CONFIG naming both weights files and fingerprints,
 *    always (nothing trained from other weights can be merged with these);
 *  - other training keys, or a task file that changed: with retrain,
 *    SOTU_OK and *verdict RETRAIN (*why gets the reason for the log);
 *    without, SOTU_ERR_CONFIG listing the keys (old -> new) or naming the
 *    task file, followed by `hint` (what the user can do);
 *  - else SOTU_OK and SAME.
 * why may be NULL. */
sotu_status sotu_provenance_compare(const sotu_provenance *run, const sotu_provenance *stored,
                                    uint64_t task_file_now, const char *path, const char *task,
                                    const char *task_path, bool retrain, const char *hint,
                                    sotu_provenance_verdict *verdict, char *why, size_t why_cap);

#endif
