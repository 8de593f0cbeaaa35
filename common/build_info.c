#include "common/build_info.h"

const char *sotu_build_version(void) { return SOTU_VERSION; }
