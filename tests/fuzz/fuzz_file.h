/* fuzz_file: for fuzz targets whose input is a file (checkpoint, labels.db):
 * a per-process temporary path and the write of the fuzzer's bytes to it.
 * Header-only because each fuzz target is built from its own file plus the
 * common/ sources only. */
#ifndef W2S_FUZZ_FILE_H
#define W2S_FUZZ_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/* Fills path (size bytes) with "/tmp/w2s_fuzz_<name>_<pid><suffix>". */
static inline void fuzz_input_path(char *path, size_t size, const char *name, const char *suffix)
{
    snprintf(path, size, "/tmp/w2s_fuzz_%s_%d%s", name, (int)getpid(), suffix);
}

/* Writes data to path. @return 0, or -1 when the file could not be written
 * (the input is then skipped). */
static inline int fuzz_write_input(const char *path, const uint8_t *data, size_t size)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    size_t wrote = fwrite(data, 1, size, fp);
    return fclose(fp) != 0 || wrote != size ? -1 : 0;
}

#endif
