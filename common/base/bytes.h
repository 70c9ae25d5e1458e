/* bytes: little-endian integer put/get on byte buffers, the one byte order of
 * every w2s file format (checkpoint, tokenizer blob, train state, labels.db
 * token blobs, soft-label blob headers). Header-only so the SQLite extension and the fuzz targets get
 * them without linking anything. The caller guarantees room for the width;
 * nothing here checks bounds. */
#ifndef W2S_BYTES_H
#define W2S_BYTES_H

#include <stdint.h>

static inline void bytes_put_u16(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static inline void bytes_put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void bytes_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t bytes_get_u16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static inline uint32_t bytes_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t bytes_get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

#endif
