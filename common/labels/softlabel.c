/* softlabel: the soft-label codec's header, framing and top-k kind (codec
 * versions 3 and 1, schemas/softlabel.md); the sampled kind is in softlabel_sampled.c.
 *
 * Per position (ranks from 0): ranks 1..k-1 as closed-loop gap codes on an integer grid of
 * 1/1024 nat whose step grows as the predecessor's probability falls (KL cost
 * of a relative error e on probability q is about q e^2 / 2); the mass they
 * leave split between rank 0 and the tail by a log-odds code, so the tail is
 * stored, not derived from rounded values; ids move-to-front coded across
 * positions (frequent tokens recur). The codes go into byte planes grouped by
 * rank, compressed as one zstd frame with a block per plane so that every
 * plane gets its own entropy tables. Integer arithmetic decides every
 * reconstructed log-prob, so encoder and decoder agree on any machine. */
#include "labels/softlabel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "base/err.h"
#include "base/mem.h"
#include "labels/softlabel_internal.h"

#define HEADER_SIZE SOFTLABEL_HEADER_SIZE
#define UNITS_PER_NAT 1024.0
#define NLP_MAX 65535            /* largest negative log-prob code: 64 nats */
#define SPLIT_UNITS_PER_NAT 64.0    /* step of the tail : rank-0 log-odds */
#define SPLIT_ZERO 32768             /* split code of log-odds 0 */
/* Level 1: the planes are short and already decorrelated, so zstd's entropy
 * stage does nearly all the work; level 6 saved 0.3% on a byte-level teacher
 * (4% at vocab 1024) for 1.5x the encode time (tests/bench_softlabel.c). */
#define ZSTD_LEVEL 1

/* Quantisation step (in 1/1024 nat) for a rank whose predecessor has negative
 * log-prob code r: entry min(r >> 9, 17), i.e. per half nat. Entry b is
 * round(c * 1024 * exp(b / 4)) capped at 512: a step of about c / sqrt(q) nat
 * for predecessor probability q, so every rank adds about the same KL
 * (~c^2 / 24 nats), and at most half a nat. Version 3 (written now) takes
 * c = 0.01, which spends most of the 1e-4 nat mean-KL budget (bench_softlabel) on real
 * teachers; version 1 (still decoded) took c = 0.0075. */
static const uint16_t step_table_v3[18] = {
    10, 13, 17, 22, 28, 36, 46, 59, 76, 97, 125, 160, 206, 264, 339, 435, 512, 512
};
static const uint16_t step_table_v1[18] = {
    8, 10, 13, 16, 21, 27, 34, 44, 57, 73, 94, 120, 154, 198, 254, 327, 419, 512
};

#define N_STEPS (sizeof step_table_v3 / sizeof step_table_v3[0])

/* The step table of a top-k codec version (1 or 3). */
static const uint16_t *step_table_of(int version)
{
    return version == SOFTLABEL_TOPK_V1_VERSION ? step_table_v1 : step_table_v3;
}

static unsigned step_of(const uint16_t *table, uint32_t prev_nlp)
{
    uint32_t b = prev_nlp >> 9;
    return table[b < N_STEPS ? b : (uint32_t)N_STEPS - 1];
}

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
        c->prob_high[i] = exp(-256.0 * i / UNITS_PER_NAT);
        c->prob_low[i] = exp(-(double)i / UNITS_PER_NAT);
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

/* Rank groups: planes hold ranks [group_start[g], group_start[g + 1]) so that
 * each zstd block sees codes of similar statistics (rank 1's gap codes are
 * wide, deep ranks' are mostly 0 or 1). Ranks are 0-based here. */
#define N_GROUPS 7
static const int group_start[N_GROUPS + 1] = {0, 1, 2, 4, 8, 16, 32, SOFTLABEL_MAX_K};
#define N_PLANES (4 * N_GROUPS + 2)

/* The planes of n positions of k ranks in blob order: for each id group its
 * low then high bytes, for each gap group (ranks >= 1) its low then high
 * bytes, then the tail code's low and high bytes. Each plane stores its ranks
 * rank-major (all positions of one rank, then the next rank). */
typedef struct layout {
    size_t off[N_PLANES + 1];      /* plane p is raw[off[p] .. off[p + 1]) */
} layout;

static void layout_of(size_t n, int k, layout *l)
{
    size_t at = 0;
    int p = 0;
    for (int kind = 0; kind < 2; kind++) {
        for (int g = 0; g < N_GROUPS; g++) {
            int lo = group_start[g] > kind ? group_start[g] : kind;
            int hi = group_start[g + 1] < k ? group_start[g + 1] : k;
            size_t bytes = hi > lo ? (size_t)(hi - lo) * n : 0;
            l->off[p++] = at;
            at += bytes;
            l->off[p++] = at;
            at += bytes;
        }
    }
    l->off[p++] = at;
    at += n;
    l->off[p++] = at;
    at += n;
    l->off[p] = at;
}

/* Fills base (4 k entries) with the offset of (position 0, rank r) in the
 * raw planes: base[r] id low byte, base[k + r] id high byte, base[2k + r] gap
 * low byte, base[3k + r] gap high byte (gap entries of rank 0 unused);
 * position i is at base + i. */
static void bases_of(const layout *l, size_t n, int k, size_t *base)
{
    for (int kind = 0; kind < 2; kind++) {
        for (int g = 0; g < N_GROUPS; g++) {
            int lo = group_start[g] > kind ? group_start[g] : kind;
            int hi = group_start[g + 1] < k ? group_start[g + 1] : k;
            const size_t *off = l->off + 2 * (kind * N_GROUPS + g);
            for (int r = lo; r < hi; r++) {
                base[2 * kind * k + r] = off[0] + (size_t)(r - lo) * n;
                base[(2 * kind + 1) * k + r] = off[1] + (size_t)(r - lo) * n;
            }
        }
    }
}

static int reserve_scratch(softlabel_codec *c, size_t raw_bytes, int vocab, int k)
{
    TRY(mem_reserve((void **)&c->raw, &c->raw_cap, raw_bytes, 1, "soft-label planes"));
    TRY(mem_reserve((void **)&c->mtf, &c->mtf_cap, (size_t)vocab, sizeof *c->mtf, "soft-label id list"));
    TRY(mem_reserve((void **)&c->nlp, &c->nlp_cap, (size_t)k, sizeof *c->nlp, "soft-label scratch"));
    TRY(mem_reserve((void **)&c->base, &c->base_cap, 4 * (size_t)k, sizeof *c->base, "soft-label scratch"));
    return 0;
}

/* Probability of a negative log-prob code (the decoder's exact arithmetic):
 * exp(-nlp / 1024) as the product of exp of its high and low bytes, tabled
 * by softlabel_codec_create, within 2 ulp of exp() and a fraction of its
 * cost (encoders and decoders evaluate it for every entry). */
static double prob_of(const softlabel_codec *c, uint32_t nlp)
{
    return c->prob_high[nlp >> 8] * c->prob_low[nlp & 255];
}

/* Rank-0 probability and tail implied by the ranks 1..k-1 and the split code:
 * the mass they leave, R = 1 - sum, is split between rank 0 and the tail by
 * the log-odds (code - 32768) / 64 of tail : rank 0 (code 0: no tail).
 * @return 0, or -1 when ranks 1..k-1 leave no mass. */
static int split_of(const softlabel_codec *c, const uint32_t *nlp, int k, unsigned code, double *q1,
                    double *tail)
{
    double rest = 1.0;
    for (int r = 1; r < k; r++)
        rest -= prob_of(c, nlp[r]);
    if (!(rest > 0))
        return -1;
    if (code == 0) {
        *q1 = rest;
        *tail = 0.0;
        return 0;
    }
    double odds = ((double)code - SPLIT_ZERO) / SPLIT_UNITS_PER_NAT;
    *q1 = rest / (1.0 + exp(odds));
    *tail = rest / (1.0 + exp(-odds));
    return 0;
}

static unsigned split_code_of(double tail, double p1)
{
    if (!(tail > 0))
        return 0;
    double t = SPLIT_ZERO + floor(log(tail / p1) * SPLIT_UNITS_PER_NAT + 0.5);
    return t < 1 ? 1 : t > 65535 ? 65535 : (unsigned)t;
}

/* Gap codes for ranks 1..k-1 of one position into nlp[1..k-1] (nlp[0] = 0 is the
 * predecessor of rank 1), each rounded to the nearest multiple of its step
 * above the predecessor's reconstruction, so errors never accumulate. */
static void quantise_ranks(const float *lp, int k, uint32_t *nlp)
{
    nlp[0] = 0;
    for (int r = 1; r < k; r++) {
        uint32_t prev = nlp[r - 1];
        unsigned s = step_of(step_table_v3, prev);
        double x = -(double)lp[r] * UNITS_PER_NAT;
        if (!(x < NLP_MAX))
            x = NLP_MAX;
        double steps = (x - prev) / s;
        uint32_t n = steps > 0 ? (uint32_t)floor(steps + 0.5) : 0;
        if (prev + n * s > NLP_MAX)
            n = (NLP_MAX - prev) / s;
        nlp[r] = prev + n * s;
    }
}

static int check_args(const int32_t *ids, const float *logprobs, int n_pos, int k, int vocab)
{
    if (n_pos < 1 || n_pos > SOFTLABEL_MAX_POS)
        return err_set("soft-label encode: n_pos %d outside 1..%d", n_pos, SOFTLABEL_MAX_POS);
    if (k < 1 || k > SOFTLABEL_MAX_K)
        return err_set("soft-label encode: k %d outside 1..%d", k, SOFTLABEL_MAX_K);
    if (vocab < 1 || vocab > SOFTLABEL_MAX_VOCAB)
        return err_set("soft-label encode: vocab %d outside 1..%d", vocab, SOFTLABEL_MAX_VOCAB);
    if (k > vocab)
        return err_set("soft-label encode: k %d larger than vocab %d", k, vocab);
    for (size_t i = 0; i < (size_t)n_pos * k; i++) {
        if (ids[i] < 0 || ids[i] >= vocab)
            return err_set("soft-label encode: position %zu rank %zu: id %d outside 0..%d",
                           i / k, i % k, (int)ids[i], vocab - 1);
        if (isnan(logprobs[i]) || logprobs[i] > 0)
            return err_set("soft-label encode: position %zu rank %zu: log-prob %g is not <= 0",
                           i / k, i % k, (double)logprobs[i]);
    }
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

int softlabel_encode(softlabel_codec *c, const int32_t *ids, const float *logprobs,
                     int n_pos, int k, int vocab, unsigned char **out, size_t *out_cap, size_t *out_len)
{
    TRY(check_args(ids, logprobs, n_pos, k, vocab));
    size_t n = (size_t)n_pos, kk = (size_t)k;
    layout l;
    layout_of(n, k, &l);
    TRY(reserve_scratch(c, l.off[N_PLANES], vocab, k));
    unsigned char *raw = c->raw;
    const size_t *base = c->base;
    bases_of(&l, n, k, c->base);

    softlabel_mtf_reset(c->mtf, vocab);
    for (size_t i = 0; i < n; i++) {
        const float *lp = logprobs + i * kk;
        double p1 = exp((double)lp[0]), exact_sum = p1, q1, tail;
        for (size_t r = 1; r < kk; r++)
            exact_sum += exp((double)lp[r]);
        unsigned tail_code = split_code_of(1.0 - exact_sum, p1);
        quantise_ranks(lp, k, c->nlp);
        if (split_of(c, c->nlp, k, tail_code, &q1, &tail) < 0)
            return err_set("soft-label encode: position %zu: ranks 2..%d sum to 1 or more "
                           "(log-probs not sorted?)", i, k);
        raw[l.off[N_PLANES - 2] + i] = (unsigned char)tail_code;
        raw[l.off[N_PLANES - 1] + i] = (unsigned char)(tail_code >> 8);
        for (int r = 1; r < k; r++) {
            unsigned code = (c->nlp[r] - c->nlp[r - 1]) / step_of(step_table_v3, c->nlp[r - 1]);
            raw[base[2 * kk + r] + i] = (unsigned char)code;
            raw[base[3 * kk + r] + i] = (unsigned char)(code >> 8);
        }
        for (int r = 0; r < k; r++) {
            unsigned idx = softlabel_mtf_encode(c->mtf, vocab, (uint16_t)ids[i * kk + r]);
            raw[base[r] + i] = (unsigned char)idx;
            raw[base[kk + r] + i] = (unsigned char)(idx >> 8);
        }
    }

    size_t bound = HEADER_SIZE + ZSTD_compressBound(l.off[N_PLANES]) + 64 * N_PLANES;
    TRY(mem_reserve((void **)out, out_cap, bound, 1, "soft-label blob"));
    unsigned char *o = *out;
    o[0] = 'S';
    o[1] = 'L';
    o[2] = SOFTLABEL_CODEC_VERSION;
    o[3] = 0;
    bytes_put_u32(o + 4, (uint32_t)n_pos);
    bytes_put_u16(o + 8, (unsigned)k);
    bytes_put_u16(o + 10, (unsigned)(vocab - 1));
    size_t frame_len = 0;
    TRY(softlabel_compress_planes(c, l.off, N_PLANES, o + HEADER_SIZE, bound - HEADER_SIZE, &frame_len));
    *out_len = HEADER_SIZE + frame_len;
    return 0;
}

int softlabel_peek_info(const unsigned char *blob, size_t len, softlabel_info *info)
{
    if (len < HEADER_SIZE)
        return err_set("soft-label blob: %zu bytes, shorter than its %d-byte header", len, HEADER_SIZE);
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

int softlabel_decode(softlabel_codec *c, const unsigned char *blob, size_t len, int vocab,
                     int max_pos, int max_k, int32_t *ids, float *logprobs, float *tail,
                     int *n_pos, int *k)
{
    softlabel_info info;
    TRY(softlabel_peek_info(blob, len, &info));
    int np = info.n_pos, kk = info.k, v = info.vocab;
    if (np > max_pos || kk > max_k)
        return err_set("soft-label blob: %d positions of k %d exceed the room for %d of k %d",
                       np, kk, max_pos, max_k);
    if (v > vocab)
        return err_set("soft-label blob: vocab %d larger than the expected %d", v, vocab);
    if (info.kind == SOFTLABEL_KIND_SAMPLED) {
        TRY(softlabel_decode_sampled_as_topk(c, &info, blob, len, ids, logprobs, tail));
        *n_pos = np;
        *k = kk;
        return 0;
    }
    size_t n = (size_t)np;
    layout l;
    layout_of(n, kk, &l);
    TRY(softlabel_inflate_payload(c, blob, len, HEADER_SIZE, l.off[N_PLANES]));
    TRY(reserve_scratch(c, l.off[N_PLANES], v, kk));
    const unsigned char *raw = c->raw;
    const size_t *base = c->base;
    bases_of(&l, n, kk, c->base);

    softlabel_mtf_reset(c->mtf, v);
    const uint16_t *steps = step_table_of(info.version);
    for (size_t i = 0; i < n; i++) {
        int32_t *id = ids + i * kk;
        float *lp = logprobs + i * kk;
        for (int r = 0; r < kk; r++) {
            unsigned idx = raw[base[r] + i] | (unsigned)raw[base[kk + r] + i] << 8;
            if (idx >= (unsigned)v)
                return err_set("soft-label blob: position %zu rank %d: id index %u outside vocab %d",
                               i, r, idx, v);
            id[r] = c->mtf[idx];
            softlabel_mtf_promote(c->mtf, idx);
        }
        c->nlp[0] = 0;
        for (int r = 1; r < kk; r++) {
            uint32_t code = raw[base[2 * kk + r] + i] | (uint32_t)raw[base[3 * kk + r] + i] << 8;
            uint32_t next = c->nlp[r - 1] + code * step_of(steps, c->nlp[r - 1]);
            if (next > NLP_MAX)
                return err_set("soft-label blob: position %zu rank %d: log-prob beyond -64 nats", i, r);
            c->nlp[r] = next;
            lp[r] = -(float)((double)next / UNITS_PER_NAT);
        }
        double q1, m;
        unsigned split = raw[l.off[N_PLANES - 2] + i] | (unsigned)raw[l.off[N_PLANES - 1] + i] << 8;
        if (split_of(c, c->nlp, kk, split, &q1, &m) < 0)
            return err_set("soft-label blob: position %zu: probabilities sum above 1", i);
        lp[0] = (float)log(q1);
        tail[i] = (float)m;
    }
    *n_pos = np;
    *k = kk;
    return 0;
}

/* A decimal in 1..max with nothing after it. @return it, or -1. */
static int parse_count(const char *text, int max)
{
    long v = 0;
    if (*text < '0' || *text > '9')
        return -1;
    for (; *text >= '0' && *text <= '9'; text++)
        if ((v = v * 10 + (*text - '0')) > max)
            return -1;
    return *text || v < 1 ? -1 : (int)v;
}

int softlabel_kind_parse(const char *text, softlabel_kind *kind, int *n)
{
    if (!strcmp(text, "topk")) {
        *kind = SOFTLABEL_KIND_TOPK;
        *n = 0;
        return 0;
    }
    int v = -1;
    if (!strncmp(text, "topk:", 5) && (v = parse_count(text + 5, SOFTLABEL_MAX_K)) > 0)
        *kind = SOFTLABEL_KIND_TOPK;
    else if (!strncmp(text, "sample:", 7) && (v = parse_count(text + 7, SOFTLABEL_MAX_SAMPLES)) > 0)
        *kind = SOFTLABEL_KIND_SAMPLED;
    else
        return err_set("label kind '%s': not topk:K (K 1..%d) or sample:N (N 1..%d)", text,
                       SOFTLABEL_MAX_K, SOFTLABEL_MAX_SAMPLES);
    *n = v;
    return 0;
}

double softlabel_error_bound(float logprob)
{
    /* The predecessor's reconstruction lies at most half a (capped) step
     * beyond this entry, and the steps never decrease with the code; an
     * entry rounded for error diffusion may be off by a whole step. */
    double x = -(double)logprob * UNITS_PER_NAT + 256.0;
    return step_of(step_table_v3, (uint32_t)(x < NLP_MAX ? x : NLP_MAX)) / UNITS_PER_NAT;
}
