/* What built this binary: the release version and the git commit of the
 * source tree, recorded in every file sotu writes (checkpoints, deltas,
 * modules, reports) and printed by `sotu --version`. */
#ifndef SOTU_COMMON_BUILD_INFO_H
#define SOTU_COMMON_BUILD_INFO_H

/* The release version, e.g. "0.1.0". */
const char *sotu_build_version(void);

/* The source tree's commit (12 hex digits, "-dirty" when tracked files had
 * uncommitted changes at build time), or "unknown" outside a git checkout.
 * Generated at every build (cmake/build_info.cmake). */
const char *sotu_build_commit(void);

#endif
