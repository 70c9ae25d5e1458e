/* libFuzzer target: arbitrary bytes as a safetensors file. safetensors_open
 * must accept or refuse them with a message, never crash or read outside
 * the mapped file; every tensor it accepts is then converted (plainly and,
 * when 2-D, transposed), which succeeds exactly for F32, F16 and BF16. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_file.h"
#include "nn/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0])
        fuzz_input_path(path, sizeof path, "safetensors", ".safetensors");
    if (fuzz_write_input(path, data, size) < 0)
        return 0;
    safetensors_file *f = safetensors_open(path);
    if (!f)
        return 0;
    (void)safetensors_metadata(f, "format");
    for (size_t i = 0; i < safetensors_count(f); i++) {
        const safetensors_tensor *t = safetensors_at(f, i);
        if (safetensors_find(f, t->name) != t)
            abort();
        /* a valid tensor's elements fit in the file, so this is bounded */
        float *dst = malloc((size_t)t->count * sizeof *dst + 1);
        if (!dst)
            break;
        int is_float = t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16;
        if ((safetensors_read_f32(f, t, 0, t->count, dst) == 0) != is_float)
            abort();
        if (t->ndim == 2 && (safetensors_read_f32_transposed(f, t, dst) == 0) != is_float)
            abort();
        free(dst);
    }
    safetensors_close(f);
    return 0;
}
