/* libFuzzer target for the command line's model-metadata reader: arbitrary
 * bytes as metadata text (NUL-terminated), the network they describe built
 * and freed. A failure must say why; any crash, leak, sanitizer report or
 * allocation beyond the byte bound is a finding. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/cli/model_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *meta = malloc(size + 1);
    if (!meta)
        return 0;
    memcpy(meta, data, size);
    meta[size] = '\0';
    static cli_model cm; /* large: not on the stack */
    char why[512] = "";
    /* at most 16 MiB of tensors, as if the file held that much */
    int rc = cli_model_from_meta(meta, 16.0 * 1024 * 1024, &cm, why, sizeof why);
    if (rc != 0 && why[0] == '\0')
        __builtin_trap();
    if (rc == 0 && (!cm.m || !cm.net || cm.desc.n_sizes < 2))
        __builtin_trap();
    cli_model_close(&cm);
    free(meta);
    return 0;
}
