#include <stdio.h>

#include "common/status.h"
#include "coordinator/commands.h"

int sotu_cmd_fail(const char *cmd, int s)
{
    const char *msg = sotu_last_error();
    fprintf(stderr, "sotu %s: %s\n", cmd, msg[0] ? msg : sotu_strerror((sotu_status)s));
    return sotu_exit_code((sotu_status)s);
}
