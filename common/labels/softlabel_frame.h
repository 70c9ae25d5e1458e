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

/* Header sizes: the common fields (magic, version, kind, n_pos, k, vocab - 1
 * in 2 bytes, narrow versions, or 4, wide ones), then for sampled blobs the
 * number of pairs (u32). */
#define SOFTLABEL_HEADER_SIZE 12          /* the common fields, narrow */
#define SOFTLABEL_WIDE_HEADER_SIZE 14     /* the common fields, wide */
#define SOFTLABEL_ENTRIES_SIZE 4          /* sampled: the pairs field after them */
#define SOFTLABEL_UNITS_PER_NAT 1024.0    /* top-k log-prob grid (prob tables below) */
#define SOFTLABEL_MAX_ID_BYTES 3          /* id code bytes of the wide versions */

struct softlabel_codec {
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    unsigned char *raw;  size_t raw_cap;    /* planes before/after zstd */
    uint16_t *mtf;       size_t mtf_cap;    /* move-to-front list, vocab entries */
    uint32_t *last;      size_t last_cap;   /* move-to-front trees: per id, its last use */
    uint32_t *id_at;     size_t id_at_cap;  /* trees: per use, the id */
    int32_t *by_time;    size_t by_time_cap;/* trees: Fenwick tree over uses */
    int32_t *unused;     size_t unused_cap; /* trees: Fenwick tree over ids */
    uint32_t *nlp;       size_t nlp_cap;    /* per-rank codes, k entries */
    size_t *base;        size_t base_cap;   /* plane offsets per rank, 5 k entries */
    uint32_t *stamp;     size_t stamp_cap;  /* sampled: per id, 1 + last position seen */
    uint32_t *pairs;     size_t pairs_cap;  /* sampled: a position's (count, id) pairs */
    double prob_high[256], prob_low[256];   /* exp(-256 i / 1024), exp(-i / 1024) */
};

/* The move-to-front transform of one blob (schemas/softlabel.md): a list
 * holds 0 .. vocab - 1 at the start, an id's code is its index in the list,
 * and a coded id moves to the front.
 *
 * Small vocabularies keep the list itself (16-bit entries): a search that
 * compares 16 entries at a time and a memmove, fast while the list is a few
 * thousand entries. Over a large vocabulary an unseen id sits thousands of
 * entries down, so the same codes come from two Fenwick trees instead, in
 * O(log) per id: one over the uses so far (1 where some id was last used:
 * the ids used after it are in front of it), one over the ids (1 while
 * unused: unused ids follow the used ones in id order). The list is also the
 * obvious reference the trees are tested against. */
typedef struct softlabel_mtf {
    int vocab, tree;                      /* tree: the Fenwick trees, not the list */
    uint16_t *list;                       /* the list */
    int used;                             /* trees: distinct ids coded so far */
    uint32_t now, uses;                   /* trees: uses so far, room for uses */
    uint32_t *last, *id_at;
    int32_t *by_time, *unused;
} softlabel_mtf;

/* Starts the transform for a blob of vocab ids and at most uses coded
 * entries, in c's scratch. @return 0, or -1 + message on allocation failure. */
int softlabel_mtf_start(softlabel_codec *c, int vocab, size_t uses, softlabel_mtf *m);

/* The transform by the trees (softlabel_frame.c): the code of id, and the id
 * of a code (< vocab). Each counts as one use; at most the uses given to
 * start. */
unsigned softlabel_mtf_tree_encode(softlabel_mtf *m, uint32_t id);
uint32_t softlabel_mtf_tree_decode(softlabel_mtf *m, unsigned code);

/* Moves the entry at index i of the list to the front. */
static inline void softlabel_mtf_promote(uint16_t *list, unsigned i)
{
    uint16_t v = list[i];
    memmove(list + 1, list, i * sizeof *list);
    list[0] = v;
}

/* The search compares 16 entries at a time (GCC/Clang vector extensions;
 * scalar code where there is no SIMD): the encoders' hot loop, since deep
 * ranks sit far down the list. */
typedef uint16_t softlabel_u16x16 __attribute__((vector_size(32)));

static inline unsigned softlabel_mtf_list_encode(uint16_t *list, int vocab, uint16_t id)
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

/* The code of id (< vocab); id then moves to the front. */
static inline unsigned softlabel_mtf_encode(softlabel_mtf *m, uint32_t id)
{
    return m->tree ? softlabel_mtf_tree_encode(m, id) : softlabel_mtf_list_encode(m->list, m->vocab, (uint16_t)id);
}

/* The id of code (< vocab); it then moves to the front. */
static inline uint32_t softlabel_mtf_decode(softlabel_mtf *m, unsigned code)
{
    if (m->tree)
        return softlabel_mtf_tree_decode(m, code);
    uint32_t id = m->list[code];
    softlabel_mtf_promote(m->list, code);
    return id;
}

/* Id code bytes of blobs of a version: 3 for the wide versions, else 2. */
static inline int softlabel_id_bytes(int version)
{
    return version == SOFTLABEL_TOPK_WIDE_VERSION || version == SOFTLABEL_SAMPLED_WIDE_VERSION ? 3 : 2;
}

/* Stores byte b of each id code in plane b: code's bytes at planes[b] + at. */
static inline void softlabel_put_id_code(unsigned char *raw, const size_t *planes, size_t stride, int id_bytes,
                                         size_t at, unsigned code)
{
    for (int b = 0; b < id_bytes; b++)
        raw[planes[b * stride] + at] = (unsigned char)(code >> 8 * b);
}

static inline unsigned softlabel_get_id_code(const unsigned char *raw, const size_t *planes, size_t stride,
                                             int id_bytes, size_t at)
{
    unsigned code = 0;
    for (int b = 0; b < id_bytes; b++)
        code |= (unsigned)raw[planes[b * stride] + at] << 8 * b;
    return code;
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
 * n_pos, k (N of a sampled blob) and vocab - 1 (in 2 bytes, or 4 for the
 * wide versions). @return the bytes written (12 or 14). */
size_t softlabel_frame_put_header(unsigned char *out, int version, softlabel_kind kind, int n_pos, int k,
                                  int vocab);

#endif
