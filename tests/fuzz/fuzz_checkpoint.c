/* libFuzzer target: arbitrary bytes as a checkpoint file. checkpoint_read
 * must accept or reject them without crashing, reading out of bounds or
 * allocating more than the file holds. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/w2s_fuzz_checkpoint_%d.ckpt", (int)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return 0;
    size_t wrote = fwrite(data, 1, size, fp);
    if (fclose(fp) != 0 || wrote != size)
        return 0;
    checkpoint ck;
    if (checkpoint_read(path, &ck) == 0)
        checkpoint_free(&ck);
    return 0;
}
