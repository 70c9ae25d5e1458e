/* softlabel_frame: what the two blob kinds of the soft-label codec share
 * (softlabel_topk.c and softlabel_sampled.c both build on it; neither calls
 * the other): the codec's scratch, the blob header, the move-to-front list
 * and the zstd framing of byte planes (schemas/softlabel.md). Not a public
 * API: only the codec's files include it. */
#ifndef W2S_SOFTLABEL_FRAME_H
#define W2S_SOFTLABEL_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <zstd.h>

#include "base/bytes.h"
#include "labels/softlabel.h"

#define SOFTLABEL_HEADER_SIZE 12          /* top-k header */
#define SOFTLABEL_UNITS_PER_NAT 1024.0    /* top-k log-prob grid (prob tables below) */
#define SOFTLABEL_SAMPLED_HEADER_SIZE 16  /* sampled header: + entries (u32) */

struct softlabel_codec {
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    unsigned char *raw;  size_t raw_cap;    /* planes before/after zstd */
    uint16_t *mtf;       size_t mtf_cap;    /* move-to-front list, vocab entries */
    uint32_t *nlp;       size_t nlp_cap;    /* per-rank codes, k entries */
    size_t *base;        size_t base_cap;   /* plane offsets per rank, 4 k entries */
    uint32_t *stamp;     size_t stamp_cap;  /* sampled: per id, 1 + last position seen */
    uint32_t *pairs;     size_t pairs_cap;  /* sampled: a position's (count, id) pairs */
    double prob_high[256], prob_low[256];   /* exp(-256 i / 1024), exp(-i / 1024) */
};

static inline void softlabel_mtf_reset(uint16_t *list, int vocab)
{
    for (int i = 0; i < vocab; i++)
        list[i] = (uint16_t)i;
}

/* Moves the entry at index i to the front. */
static inline void softlabel_mtf_promote(uint16_t *list, unsigned i)
{
    uint16_t v = list[i];
    memmove(list + 1, list, i * sizeof *list);
    list[0] = v;
}

/* The move-to-front code of id, which must be in the list's vocab entries,
 * and the id moved to the front. The search compares 16 entries at a time
 * (GCC/Clang vector extensions; scalar code where there is no SIMD): the
 * encoders' hot loop, since deep ranks sit far down the list. */
typedef uint16_t softlabel_u16x16 __attribute__((vector_size(32)));

static inline unsigned softlabel_mtf_encode(uint16_t *list, int vocab, uint16_t id)
{
    softlabel_u16x16 key = (softlabel_u16x16){0} + id;
    unsigned i = 0;
    for (; i + 16 <= (unsigned)vocab; i += 16) {
        softlabel_u16x16 v;
        memcpy(&v, list + i, sizeof v);
        uint64_t w[4];
        softlabel_u16x16 eq = (softlabel_u16x16)(v == key);
        memcpy(w, &eq, sizeof w);
        for (unsigned q = 0; q < 4; q++)
            if (w[q]) {
                i += 4 * q + (unsigned)__builtin_ctzll(w[q]) / 16;
                softlabel_mtf_promote(list, i);
                return i;
            }
    }
    while (list[i] != id)
        i++;
    softlabel_mtf_promote(list, i);
    return i;
}

/* Compresses c->raw[0 .. off[n_planes]) as one zstd frame at out (room cap)
 * with a block per plane (plane p is raw[off[p] .. off[p + 1]); empty planes
 * are skipped), so every plane gets its own entropy tables. @return 0 with
 * *frame_len set, or -1 + message. */
int softlabel_compress_planes(softlabel_codec *c, const size_t *off, int n_planes, unsigned char *out,
                              size_t cap, size_t *frame_len);

/* Checks that blob[header ..] is exactly one zstd frame declaring expected
 * bytes, sizes c->raw and inflates the frame into it. @return 0, or -1 +
 * message. */
int softlabel_inflate_payload(softlabel_codec *c, const unsigned char *blob, size_t len, size_t header,
                              size_t expected);

/* Writes the common header fields of a blob at out: magic, version, kind,
 * n_pos, k (N of a sampled blob) and vocab - 1 (the first
 * SOFTLABEL_HEADER_SIZE bytes). */
void softlabel_frame_put_header(unsigned char *out, int version, softlabel_kind kind, int n_pos, int k,
                                int vocab);

#endif
