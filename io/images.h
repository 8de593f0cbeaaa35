/* Image files (PNG and JPEG, decoded by stb_image from Debian's libstb-dev)
 * and image-folder datasets.
 *
 * A dataset folder ROOT holds one sub-folder per class, named after the
 * class, with .png/.jpg/.jpeg files (extensions in any case; other files
 * are ignored and counted). Either
 *   ROOT/<class>/<image>      split per class by a seeded shuffle: round(n x
 *                             ratio) images go to the test split, or
 *   ROOT/train/<class>/<image>, ROOT/test/<class>/<image>
 *                             the given split; test classes must be train
 *                             classes.
 * Classes are numbered by the sorted folder names; files are taken in
 * sorted name order. Every image is decoded as RGB (alpha dropped, grey
 * repeated), converted to C channels (1: luma 0.299 R + 0.587 G + 0.114 B,
 * rounded; 3: RGB), its shorter side resized to S (area average when
 * shrinking, bilinear when growing; io/preprocess.h) and the centre S x S
 * kept.
 */
#ifndef SOTU_IO_IMAGES_H
#define SOTU_IO_IMAGES_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"
#include "io/taskset.h"

typedef struct {
    int width, height, channels;
    uint8_t *pixels; /* [height, width, channels] */
} sotu_image;

/* Decodes path into img with `channels` (1 or 3) channels (see above). SOTU_ERR_IO if
 * it cannot be read, SOTU_ERR_DATA naming the path and the decoder's reason
 * if it is not a decodable PNG or JPEG. */
sotu_status sotu_image_load(const char *path, int channels, sotu_image *img);

void sotu_image_free(sotu_image *img); /* accepts NULL and zeroed */

/* The shorter side of img resized to size and the centre size x size cut,
 * into dst [size, size, img->channels]. SOTU_ERR_NOMEM on allocation. */
sotu_status sotu_image_fit(const sotu_image *img, int size, uint8_t *dst);

typedef struct {
    const char *root;
    int size;              /* S */
    int channels;          /* 1 or 3 */
    double test_ratio;     /* share of each class for test (no train/ test/ folders) */
    uint64_t seed;         /* of the per-class split */
    bool skip_bad;         /* unreadable images: warn and skip (else fail) */
    const char *name;      /* task name; NULL = ROOT's base name */
} sotu_image_folder_options;

typedef struct {
    int64_t skipped;       /* unreadable images skipped */
    int64_t ignored;       /* files without an image extension */
} sotu_image_folder_report;

/* Builds a task from an image folder as described above. Errors:
 * SOTU_ERR_DATA naming the folder (no class folders, a class without
 * images, test classes missing from train) or the image (unreadable, with
 * skip_bad false); SOTU_ERR_IO for unreadable directories. */
sotu_status sotu_image_folder_read(const sotu_image_folder_options *o, sotu_taskset *t,
                                   sotu_image_folder_report *rep);

#endif
