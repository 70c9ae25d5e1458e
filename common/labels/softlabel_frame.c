/* softlabel_frame: the soft-label codec's shared layer (schemas/softlabel.md):
 * the codec object, the blob header both kinds start with, and the zstd
 * frame that carries a blob's byte planes. The top-k and sampled kinds
 * (softlabel_topk.c, softlabel_sampled.c) lay out their planes and call
 * these; this file knows nothing of what the planes hold. */
#include "labels/softlabel_frame.h"

#include <math.h>
#include <stdlib.h>
#include <zstd.h>

#include "base/err.h"
#include "base/mem.h"

/* Level 1: the planes are short and already decorrelated, so zstd's entropy
 * stage does nearly all the work; level 6 saved 0.3% on a byte-level teacher
 * (4% at vocab 1024) for 1.5x the encode time (tests/bench_softlabel.c). */
#define ZSTD_LEVEL 1

softlabel_codec *softlabel_codec_create(void)
{
    softlabel_codec *c = mem_calloc(1, sizeof *c, "soft-label codec");
    if (!c)
        return NULL;
    c->cctx = ZSTD_createCCtx();
    c->dctx = ZSTD_createDCtx();
    if (!c->cctx || !c->dctx) {
        softlabel_codec_free(c);
        err_set("soft-label codec: cannot create zstd context");
        return NULL;
    }
    for (int i = 0; i < 256; i++) {
        c->prob_high[i] = exp(-256.0 * i / SOFTLABEL_UNITS_PER_NAT);
        c->prob_low[i] = exp(-(double)i / SOFTLABEL_UNITS_PER_NAT);
    }
    return c;
}

void softlabel_codec_free(softlabel_codec *c)
{
    if (!c)
        return;
    ZSTD_freeCCtx(c->cctx);
    ZSTD_freeDCtx(c->dctx);
    free(c->raw);
    free(c->mtf);
    free(c->nlp);
    free(c->base);
    free(c->stamp);
    free(c->pairs);
    free(c);
}

void softlabel_frame_put_header(unsigned char *out, int version, softlabel_kind kind, int n_pos, int k,
                                int vocab)
{
    out[0] = 'S';
    out[1] = 'L';
    out[2] = (unsigned char)version;
    out[3] = (unsigned char)kind;
    bytes_put_u32(out + 4, (uint32_t)n_pos);
    bytes_put_u16(out + 8, (unsigned)k);
    bytes_put_u16(out + 10, (unsigned)(vocab - 1));
}

int softlabel_peek_info(const unsigned char *blob, size_t len, softlabel_info *info)
{
    if (len < SOFTLABEL_HEADER_SIZE)
        return err_set("soft-label blob: %zu bytes, shorter than its %d-byte header", len,
                       SOFTLABEL_HEADER_SIZE);
    if (blob[0] != 'S' || blob[1] != 'L')
        return err_set("soft-label blob: bad magic (not a soft-label blob)");
    if (blob[2] != SOFTLABEL_CODEC_VERSION && blob[2] != SOFTLABEL_TOPK_V1_VERSION &&
        blob[2] != SOFTLABEL_SAMPLED_VERSION)
        return err_set("soft-label blob: codec version %d, expected %d or %d (top-k) or %d (sampled)",
                       blob[2], SOFTLABEL_CODEC_VERSION, SOFTLABEL_TOPK_V1_VERSION,
                       SOFTLABEL_SAMPLED_VERSION);
    int want_kind = blob[2] == SOFTLABEL_SAMPLED_VERSION ? SOFTLABEL_KIND_SAMPLED : SOFTLABEL_KIND_TOPK;
    if (blob[3] != want_kind)
        return err_set("soft-label blob: unknown label kind %d for codec version %d", blob[3], blob[2]);
    uint32_t np = bytes_get_u32(blob + 4);
    unsigned kk = bytes_get_u16(blob + 8), v = bytes_get_u16(blob + 10) + 1u;
    if (np < 1 || np > SOFTLABEL_MAX_POS)
        return err_set("soft-label blob: n_pos %u outside 1..%d", np, SOFTLABEL_MAX_POS);
    info->version = blob[2];
    info->kind = (softlabel_kind)want_kind;
    info->n_pos = (int)np;
    info->k = (int)kk;
    info->vocab = (int)v;
    if (want_kind == SOFTLABEL_KIND_TOPK) {
        if (kk < 1 || kk > SOFTLABEL_MAX_K || kk > v)
            return err_set("soft-label blob: k %u outside 1..%d or above vocab %u", kk, SOFTLABEL_MAX_K, v);
        info->entries = (long)np * kk;
        return 0;
    }
    if (kk < 1 || kk > SOFTLABEL_MAX_SAMPLES)
        return err_set("soft-label blob: %u samples per position, outside 1..%d", kk, SOFTLABEL_MAX_SAMPLES);
    if (len < SOFTLABEL_SAMPLED_HEADER_SIZE)
        return err_set("soft-label blob: %zu bytes, shorter than its %d-byte header", len,
                       SOFTLABEL_SAMPLED_HEADER_SIZE);
    uint32_t entries = bytes_get_u32(blob + 12);
    unsigned widest = kk < v ? kk : v;   /* distinct ids per position */
    if (entries < np || entries > (uint64_t)np * widest)
        return err_set("soft-label blob: %u entries for %u positions of at most %u distinct ids", entries,
                       np, widest);
    info->entries = (long)entries;
    return 0;
}

int softlabel_peek(const unsigned char *blob, size_t len, int *n_pos, int *k, int *vocab)
{
    softlabel_info info;
    TRY(softlabel_peek_info(blob, len, &info));
    *n_pos = info.n_pos;
    *k = info.k;
    *vocab = info.vocab;
    return 0;
}

int softlabel_compress_planes(softlabel_codec *c, const size_t *off, int n_planes, unsigned char *out,
                              size_t cap, size_t *frame_len)
{
    size_t total = off[n_planes], r;
    if (ZSTD_isError(r = ZSTD_CCtx_reset(c->cctx, ZSTD_reset_session_only)) ||
        ZSTD_isError(r = ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL)) ||
        ZSTD_isError(r = ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 0)) ||
        ZSTD_isError(r = ZSTD_CCtx_setPledgedSrcSize(c->cctx, total)))
        return err_set("soft-label encode: zstd: %s", ZSTD_getErrorName(r));
    ZSTD_outBuffer ob = {out, cap, 0};
    for (int p = 0; p <= n_planes; p++) {
        size_t bytes = p < n_planes ? off[p + 1] - off[p] : 0;
        if (p < n_planes && bytes == 0)
            continue;
        ZSTD_EndDirective mode = p < n_planes ? ZSTD_e_flush : ZSTD_e_end;
        ZSTD_inBuffer ib = {c->raw + (p < n_planes ? off[p] : total), bytes, 0};
        do {
            r = ZSTD_compressStream2(c->cctx, &ob, &ib, mode);
            if (ZSTD_isError(r))
                return err_set("soft-label encode: zstd: %s", ZSTD_getErrorName(r));
            if (r != 0 && ob.pos == ob.size)
                return err_set("soft-label encode: zstd output exceeds its bound");
        } while (r != 0);
    }
    *frame_len = ob.pos;
    return 0;
}

int softlabel_inflate_payload(softlabel_codec *c, const unsigned char *blob, size_t len, size_t header,
                              size_t expected)
{
    const unsigned char *frame = blob + header;
    size_t avail = len - header;
    unsigned long long content = ZSTD_getFrameContentSize(frame, avail);
    if (content == ZSTD_CONTENTSIZE_ERROR || content == ZSTD_CONTENTSIZE_UNKNOWN)
        return err_set("soft-label blob: payload is not a zstd frame with a declared size");
    if (content != expected)
        return err_set("soft-label blob: payload declares %llu bytes, expected %zu", content, expected);
    size_t frame_len = ZSTD_findFrameCompressedSize(frame, avail);
    if (ZSTD_isError(frame_len))
        return err_set("soft-label blob: truncated payload: %s", ZSTD_getErrorName(frame_len));
    if (frame_len != avail)
        return err_set("soft-label blob: %zu bytes after the payload", avail - frame_len);
    TRY(mem_reserve((void **)&c->raw, &c->raw_cap, expected, 1, "soft-label planes"));
    size_t got = ZSTD_decompressDCtx(c->dctx, c->raw, expected, frame, avail);
    if (ZSTD_isError(got))
        return err_set("soft-label blob: payload: zstd: %s", ZSTD_getErrorName(got));
    if (got != expected)
        return err_set("soft-label blob: payload decompressed to %zu bytes, expected %zu", got, expected);
    return 0;
}
