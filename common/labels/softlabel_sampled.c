/* softlabel_sampled: the sampled kind of the soft-label codec (kind 1, codec
 * versions 2 and 5, schemas/softlabel.md): per position the distinct ids of N
 * tokens drawn from the teacher with their counts, exact.
 *
 * A position's pairs are stored in one canonical order (count descending,
 * then id ascending) so a set of samples has exactly one blob; the last
 * count of each position is implied by the sum N, and the decoder checks
 * everything the order and the sum imply (counts >= 1, non-increasing, ids
 * distinct) so that a decoded blob is always a valid empirical distribution.
 * Ids are move-to-front coded across positions like the top-k kind; the
 * planes (distinct counts, id code bytes low first, counts) are one zstd
 * frame with a block per plane (softlabel_frame.c). */
#include "labels/softlabel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "labels/softlabel_frame.h"
#include "labels/softlabel_internal.h"

#define MAX_PLANES (2 + SOFTLABEL_MAX_ID_BYTES)
#define ID_PLANE 1                  /* the first id code plane */
#define ID_BITS 24                  /* pair sort keys: count above the id */

/* Plane offsets of n positions with D pairs in all: distinct counts minus
 * one (n), the id codes' bytes, low first (D each), the counts of every pair
 * but each position's last (D - n). @return the number of planes. */
static int layout_of(size_t n, size_t entries, int id_bytes, size_t off[MAX_PLANES + 1])
{
    int p = 0;
    off[p++] = 0;
    size_t at = n;
    for (int b = 0; b < id_bytes; b++, at += entries)
        off[p++] = at;
    off[p++] = at;
    off[p] = at + entries - n;
    return p;
}

static int check_args(int n_pos, int n_samples, int vocab)
{
    if (n_pos < 1 || n_pos > SOFTLABEL_MAX_POS)
        return err_set("soft-label encode: n_pos %d outside 1..%d", n_pos, SOFTLABEL_MAX_POS);
    if (n_samples < 1 || n_samples > SOFTLABEL_MAX_SAMPLES)
        return err_set("soft-label encode: %d samples per position, outside 1..%d", n_samples,
                       SOFTLABEL_MAX_SAMPLES);
    if (vocab < 1 || vocab > SOFTLABEL_MAX_VOCAB)
        return err_set("soft-label encode: vocab %d outside 1..%d", vocab, SOFTLABEL_MAX_VOCAB);
    return 0;
}

static int reserve_ids(softlabel_codec *c, int vocab, int n_samples)
{
    TRY(mem_reserve((void **)&c->stamp, &c->stamp_cap, (size_t)vocab, sizeof *c->stamp, "soft-label id marks"));
    TRY(mem_reserve((void **)&c->pairs, &c->pairs_cap, (size_t)n_samples, sizeof *c->pairs,
                    "soft-label pairs"));
    memset(c->stamp, 0, sizeof *c->stamp * (size_t)vocab);
    return 0;
}

/* Checks the input pairs and @return their number (D), or -1 + message. */
static long count_pairs(softlabel_codec *c, const int32_t *ids, const uint8_t *counts, int n_pos,
                        int n_samples, int vocab)
{
    long total = 0;
    for (int i = 0; i < n_pos; i++) {
        const int32_t *id = ids + (size_t)i * n_samples;
        const uint8_t *cnt = counts + (size_t)i * n_samples;
        int sum = 0;
        for (int r = 0; r < n_samples; r++) {
            if (!cnt[r])
                continue;
            if (id[r] < 0 || id[r] >= vocab)
                return err_set("soft-label encode: position %d entry %d: id %d outside 0..%d", i, r,
                               (int)id[r], vocab - 1);
            if (c->stamp[id[r]] == (uint32_t)i + 1)
                return err_set("soft-label encode: position %d: id %d given twice", i, (int)id[r]);
            c->stamp[id[r]] = (uint32_t)i + 1;
            sum += cnt[r];
            total++;
        }
        if (sum != n_samples)
            return err_set("soft-label encode: position %d: counts sum to %d, not %d", i, sum, n_samples);
    }
    return total;
}

/* A position's pairs as sort keys (255 - count) << 24 | id (ids < 2^24),
 * ascending = canonical order; insertion sort (a few dozen pairs).
 * @return how many. */
static int canonical_pairs(uint32_t *key, const int32_t *id, const uint8_t *cnt, int n_samples)
{
    int d = 0;
    for (int r = 0; r < n_samples; r++) {
        if (!cnt[r])
            continue;
        uint32_t k = (uint32_t)(255 - cnt[r]) << ID_BITS | (uint32_t)id[r];
        int at = d++;
        while (at > 0 && key[at - 1] > k) {
            key[at] = key[at - 1];
            at--;
        }
        key[at] = k;
    }
    return d;
}

int softlabel_encode_sampled(softlabel_codec *c, const int32_t *ids, const uint8_t *counts, int n_pos,
                             int n_samples, int vocab, unsigned char **out, size_t *out_cap,
                             size_t *out_len)
{
    TRY(check_args(n_pos, n_samples, vocab));
    TRY(reserve_ids(c, vocab, n_samples));
    long total = count_pairs(c, ids, counts, n_pos, n_samples, vocab);
    if (total < 0)
        return -1;
    const int version = softlabel_version_for(SOFTLABEL_KIND_SAMPLED, vocab);
    const int id_bytes = softlabel_id_bytes(version);
    size_t n = (size_t)n_pos, entries = (size_t)total, off[MAX_PLANES + 1];
    int n_planes = layout_of(n, entries, id_bytes, off);
    const size_t count_plane = off[n_planes - 1];
    TRY(mem_reserve((void **)&c->raw, &c->raw_cap, off[n_planes], 1, "soft-label planes"));
    softlabel_mtf mtf;
    TRY(softlabel_mtf_start(c, vocab, entries, &mtf));
    unsigned char *raw = c->raw;
    size_t at = 0, cat = 0;
    for (size_t i = 0; i < n; i++) {
        int d = canonical_pairs(c->pairs, ids + i * n_samples, counts + i * n_samples, n_samples);
        raw[i] = (unsigned char)(d - 1);
        for (int r = 0; r < d; r++, at++) {
            uint32_t id = c->pairs[r] & ((1u << ID_BITS) - 1);
            unsigned idx = softlabel_mtf_encode(&mtf, id);
            softlabel_put_id_code(raw, off + ID_PLANE, 1, id_bytes, at, idx);
            if (r + 1 < d)
                raw[count_plane + cat++] = (unsigned char)(255 - (c->pairs[r] >> ID_BITS));
        }
    }

    size_t bound = SOFTLABEL_WIDE_HEADER_SIZE + SOFTLABEL_ENTRIES_SIZE + ZSTD_compressBound(off[n_planes]) +
                   64 * MAX_PLANES;
    TRY(mem_reserve((void **)out, out_cap, bound, 1, "soft-label blob"));
    unsigned char *o = *out;
    size_t header = softlabel_frame_put_header(o, version, SOFTLABEL_KIND_SAMPLED, n_pos, n_samples, vocab);
    bytes_put_u32(o + header, (uint32_t)entries);
    header += SOFTLABEL_ENTRIES_SIZE;
    size_t frame_len = 0;
    TRY(softlabel_compress_planes(c, off, n_planes, o + header, bound - header, &frame_len));
    *out_len = header + frame_len;
    return 0;
}

/* Decodes a sampled blob whose header info holds into rows of N entries:
 * ids always, counts and/or logprobs + tail when not NULL (pads: the row's
 * first id, count 0, log-prob -inf). */
static int decode_rows(softlabel_codec *c, const softlabel_info *info, const unsigned char *blob, size_t len,
                       int32_t *ids, uint8_t *counts, float *logprobs, float *tail)
{
    const size_t n = (size_t)info->n_pos, entries = (size_t)info->entries;
    const int N = info->k, v = info->vocab, widest = N < v ? N : v;
    size_t off[MAX_PLANES + 1];
    int n_planes = layout_of(n, entries, info->id_bytes, off);
    const size_t count_plane = off[n_planes - 1];
    TRY(softlabel_inflate_payload(c, blob, len, info->header_size, off[n_planes]));
    TRY(reserve_ids(c, v, N));
    float log_of[SOFTLABEL_MAX_SAMPLES + 1];
    log_of[0] = -INFINITY;
    for (int k = 1; k <= N; k++)
        log_of[k] = (float)log((double)k / N);
    softlabel_mtf mtf;
    TRY(softlabel_mtf_start(c, v, entries, &mtf));
    const unsigned char *raw = c->raw;
    size_t at = 0, cat = 0;
    for (size_t i = 0; i < n; i++) {
        int d = raw[i] + 1;
        if (d > widest)
            return err_set("soft-label blob: position %zu: %d distinct ids, more than %d", i, d, widest);
        /* every later position needs at least one pair */
        if ((size_t)d > entries - at - (n - 1 - i))
            return err_set("soft-label blob: position %zu: pairs beyond the header's %zu", i, entries);
        int32_t *id = ids + i * N;
        int sum = 0, prev_count = 256;
        for (int r = 0; r < d; r++, at++) {
            unsigned idx = softlabel_get_id_code(raw, off + ID_PLANE, 1, info->id_bytes, at);
            if (idx >= (unsigned)v)
                return err_set("soft-label blob: position %zu pair %d: id index %u outside vocab %d", i, r,
                               idx, v);
            id[r] = (int32_t)softlabel_mtf_decode(&mtf, idx);
            int count = r + 1 < d ? raw[count_plane + cat++] : N - sum;
            if (count < 1)
                return err_set("soft-label blob: position %zu pair %d: count %d (counts must be >= 1 "
                               "and sum to %d)", i, r, count, N);
            if (count > prev_count || (count == prev_count && id[r] <= id[r - 1]))
                return err_set("soft-label blob: position %zu pair %d: not in canonical order "
                               "(count descending, id ascending)", i, r);
            if (c->stamp[id[r]] == (uint32_t)i + 1)
                return err_set("soft-label blob: position %zu: id %d twice", i, (int)id[r]);
            c->stamp[id[r]] = (uint32_t)i + 1;
            prev_count = count;
            sum += count;
            if (counts)
                counts[i * N + r] = (uint8_t)count;
            if (logprobs)
                logprobs[i * N + r] = log_of[count];
        }
        for (int r = d; r < N; r++) {
            id[r] = id[0];
            if (counts)
                counts[i * N + r] = 0;
            if (logprobs)
                logprobs[i * N + r] = -INFINITY;
        }
        if (tail)
            tail[i] = 0.0f;
    }
    if (at != entries)
        return err_set("soft-label blob: %zu pairs, the header says %zu", at, entries);
    return 0;
}

int softlabel_decode_sampled_as_topk(softlabel_codec *c, const softlabel_info *info,
                                     const unsigned char *blob, size_t len, int32_t *ids,
                                     float *logprobs, float *tail)
{
    return decode_rows(c, info, blob, len, ids, NULL, logprobs, tail);
}

int softlabel_decode_sampled(softlabel_codec *c, const unsigned char *blob, size_t len, int vocab,
                             int max_pos, int max_n, int32_t *ids, uint8_t *counts, int *n_pos,
                             int *n_samples)
{
    softlabel_info info;
    TRY(softlabel_peek_info(blob, len, &info));
    if (info.kind != SOFTLABEL_KIND_SAMPLED)
        return err_set("soft-label blob: top-k labels, not sampled ones");
    if (info.n_pos > max_pos || info.k > max_n)
        return err_set("soft-label blob: %d positions of %d samples exceed the room for %d of %d",
                       info.n_pos, info.k, max_pos, max_n);
    if (info.vocab > vocab)
        return err_set("soft-label blob: vocab %d larger than the expected %d", info.vocab, vocab);
    TRY(decode_rows(c, &info, blob, len, ids, counts, NULL, NULL));
    *n_pos = info.n_pos;
    *n_samples = info.k;
    return 0;
}
