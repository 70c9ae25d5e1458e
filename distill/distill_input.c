/* distill_input: how much input a distill run has to read, for the ETA of
 * its progress line. Only plain files have a size comparable to the record
 * bytes the run consumes: compressed files, archives, directories and stdin
 * make the total unknown (no ETA is shown then). A file is taken as plain
 * unless it starts with the magic bytes of a compression or archive format
 * libarchive reads; a format missed here only makes the ETA wrong. */
#include "distill_internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int looks_packed(const unsigned char *h, size_t n)
{
    static const struct { size_t off, len; const char *magic; } formats[] = {
        {0, 2, "\x1f\x8b"},                  /* gzip */
        {0, 2, "\x1f\x9d"},                  /* compress */
        {0, 3, "BZh"},                       /* bzip2 */
        {0, 6, "\xfd" "7zXZ\x00"},           /* xz */
        {0, 4, "\x28\xb5\x2f\xfd"},          /* zstd */
        {0, 4, "\x04\x22\x4d\x18"},          /* lz4 */
        {0, 4, "LZIP"},                      /* lzip */
        {0, 4, "PK\x03\x04"},                /* zip */
        {0, 6, "7z\xbc\xaf\x27\x1c"},        /* 7z */
        {0, 8, "!<arch>\n"},                 /* ar */
        {0, 5, "07070"},                     /* cpio (ASCII) */
        {0, 2, "\xc7\x71"},                  /* cpio (binary) */
        {0, 4, "xar!"},                      /* xar */
        {257, 5, "ustar"},                   /* tar */
    };
    for (size_t i = 0; i < sizeof formats / sizeof *formats; i++)
        if (formats[i].off + formats[i].len <= n &&
            memcmp(h + formats[i].off, formats[i].magic, formats[i].len) == 0)
            return 1;
    return 0;
}

uint64_t distill_input_bytes(const char *const *inputs, int n)
{
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (strcmp(inputs[i], "-") == 0 || stat(inputs[i], &st) != 0 || !S_ISREG(st.st_mode))
            return 0;
        unsigned char head[512];
        FILE *f = fopen(inputs[i], "rb");
        if (!f)
            return 0;
        size_t got = fread(head, 1, sizeof head, f);
        fclose(f);
        if (looks_packed(head, got))
            return 0;
        total += (uint64_t)st.st_size;
    }
    return total;
}
