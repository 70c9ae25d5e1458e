/* libFuzzer target: arbitrary bytes as a checkpoint file. checkpoint_read
 * must accept or reject them without crashing, reading out of bounds or
 * allocating more than the file holds. */
#include <stddef.h>
#include <stdint.h>

#include "nn/checkpoint.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0])
        fuzz_input_path(path, sizeof path, "checkpoint", ".ckpt");
    if (fuzz_write_input(path, data, size) < 0)
        return 0;
    checkpoint ck;
    if (checkpoint_read(path, &ck) == 0)
        checkpoint_free(&ck);
    return 0;
}
