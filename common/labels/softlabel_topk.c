/* softlabel_topk: the top-k kind of the soft-label codec (kind 0, codec
 * versions 3 and 4 written, 1 read, schemas/softlabel.md); the header and
 * the zstd framing are softlabel_frame.c's.
 *
 * Per position: ranks 2..k as closed-loop gap codes on an integer grid of
 * 1/1024 nat whose step grows as the predecessor's probability falls (KL cost
 * of a relative error e on probability q is about q e^2 / 2); the mass they
 * leave split between rank 1 and the tail by a log-odds code, so the tail is
 * stored, not derived from rounded values; ids move-to-front coded across
 * positions (frequent tokens recur). The codes go into byte planes grouped by
 * rank, compressed as one zstd frame with a block per plane so that every
 * plane gets its own entropy tables. Integer arithmetic decides every
 * reconstructed log-prob, so encoder and decoder agree on any machine. */
#include "labels/softlabel.h"

#include <math.h>
#include <zstd.h>

#include "base/err.h"
#include "base/mem.h"
#include "labels/softlabel_frame.h"
#include "labels/softlabel_internal.h"

#define UNITS_PER_NAT SOFTLABEL_UNITS_PER_NAT
#define NLP_MAX 65535            /* largest negative log-prob code: 64 nats */
#define SPLIT_UNITS_PER_NAT 64.0    /* step of the tail : rank-1 log-odds */
#define SPLIT_ZERO 32768             /* split code of log-odds 0 */

/* Quantisation step (in 1/1024 nat) for a rank whose predecessor has negative
 * log-prob code r: entry min(r >> 9, 17), i.e. per half nat. Entry b is
 * round(c * 1024 * exp(b / 4)) capped at 512: a step of about c / sqrt(q) nat
 * for predecessor probability q, so every rank adds about the same KL
 * (~c^2 / 24 nats), and at most half a nat. Version 3 (written now) takes
 * c = 0.01, which spends most of the 1e-4 nat mean-KL budget on real
 * teachers (tests/bench_softlabel.c); version 1 (still decoded) took
 * c = 0.0075. */
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

/* Rank groups: planes hold ranks [group_start[g], group_start[g + 1]) so that
 * each zstd block sees codes of similar statistics (rank 2's gap codes are
 * wide, deep ranks' are mostly 0 or 1). Ranks are 0-based here. */
#define N_GROUPS 7
static const int group_start[N_GROUPS + 1] = {0, 1, 2, 4, 8, 16, 32, SOFTLABEL_MAX_K};
#define MAX_PLANES ((SOFTLABEL_MAX_ID_BYTES + 2) * N_GROUPS + 2)

/* The planes of n positions of k ranks in blob order: for each id group its
 * id code bytes (low first; 2 planes, or 3 in the wide version), for each gap
 * group (ranks >= 1) its low then high bytes, then the split code's low and
 * high bytes. Each plane stores its ranks rank-major (all positions of one
 * rank, then the next rank). */
typedef struct layout {
    int n_planes;
    size_t off[MAX_PLANES + 1];    /* plane p is raw[off[p] .. off[p + 1]) */
} layout;

/* Lays out the planes into l and fills base ((id_bytes + 2) k entries) with
 * the offset of (position 0, rank r) of each byte row: base[b k + r] byte b
 * of the id code (b < id_bytes), base[(id_bytes + b) k + r] byte b of the
 * gap code (rank 0's unused); position i is at base + i. */
static void layout_of(size_t n, int k, int id_bytes, layout *l, size_t *base)
{
    size_t at = 0;
    int p = 0;
    for (int field = 0; field < 2; field++) {          /* 0: id codes, 1: gap codes of ranks >= 1 */
        int rows = field ? 2 : id_bytes, row0 = field ? id_bytes : 0;
        for (int g = 0; g < N_GROUPS; g++) {
            int lo = group_start[g] > field ? group_start[g] : field;
            int hi = group_start[g + 1] < k ? group_start[g + 1] : k;
            size_t bytes = hi > lo ? (size_t)(hi - lo) * n : 0;
            for (int b = 0; b < rows; b++) {
                for (int r = lo; r < hi; r++)
                    base[(size_t)(row0 + b) * k + r] = at + (size_t)(r - lo) * n;
                l->off[p++] = at;
                at += bytes;
            }
        }
    }
    l->off[p++] = at;
    at += n;
    l->off[p++] = at;
    at += n;
    l->off[p] = at;
    l->n_planes = p;
}

/* The byte size of the planes of n positions of k ranks: n k id codes, n
 * (k - 1) gap codes and n split codes. */
static size_t payload_size(size_t n, int k, int id_bytes)
{
    return n * ((size_t)k * (size_t)id_bytes + 2 * (size_t)k);
}

static int reserve_scratch(softlabel_codec *c, size_t raw_bytes, int k, int id_bytes)
{
    TRY(mem_reserve((void **)&c->raw, &c->raw_cap, raw_bytes, 1, "soft-label planes"));
    TRY(mem_reserve((void **)&c->nlp, &c->nlp_cap, (size_t)k, sizeof *c->nlp, "soft-label scratch"));
    TRY(mem_reserve((void **)&c->base, &c->base_cap, (size_t)(id_bytes + 2) * (size_t)k, sizeof *c->base,
                    "soft-label scratch"));
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

/* Rank-1 probability and tail implied by the ranks 2..k and the split code:
 * the mass they leave, R = 1 - sum, is split between rank 1 and the tail by
 * the log-odds (code - 32768) / 64 of tail : rank 1 (code 0: no tail).
 * @return 0, or -1 when ranks 2..k leave no mass. */
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

/* Gap codes for ranks 2..k of one position into nlp[1..k-1] (nlp[0] = 0 is the
 * predecessor of rank 2), each rounded to the nearest multiple of its step
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

int softlabel_encode(softlabel_codec *c, const int32_t *ids, const float *logprobs,
                     int n_pos, int k, int vocab, unsigned char **out, size_t *out_cap, size_t *out_len)
{
    TRY(check_args(ids, logprobs, n_pos, k, vocab));
    const int version = softlabel_version_for(SOFTLABEL_KIND_TOPK, vocab);
    const int id_bytes = softlabel_id_bytes(version);
    size_t n = (size_t)n_pos, kk = (size_t)k, payload = payload_size(n, k, id_bytes);
    TRY(reserve_scratch(c, payload, k, id_bytes));
    softlabel_mtf mtf;
    TRY(softlabel_mtf_start(c, vocab, n * kk, &mtf));
    layout l;
    layout_of(n, k, id_bytes, &l, c->base);
    unsigned char *raw = c->raw;
    const size_t *base = c->base;
    const size_t *gap_lo = base + (size_t)id_bytes * kk, *gap_hi = gap_lo + kk;
    const size_t split_lo = l.off[l.n_planes - 2], split_hi = l.off[l.n_planes - 1];

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
        raw[split_lo + i] = (unsigned char)tail_code;
        raw[split_hi + i] = (unsigned char)(tail_code >> 8);
        for (int r = 1; r < k; r++) {
            unsigned code = (c->nlp[r] - c->nlp[r - 1]) / step_of(step_table_v3, c->nlp[r - 1]);
            raw[gap_lo[r] + i] = (unsigned char)code;
            raw[gap_hi[r] + i] = (unsigned char)(code >> 8);
        }
        for (int r = 0; r < k; r++) {
            unsigned idx = softlabel_mtf_encode(&mtf, (uint32_t)ids[i * kk + r]);
            softlabel_put_id_code(raw, base + r, kk, id_bytes, i, idx);
        }
    }

    size_t bound = SOFTLABEL_WIDE_HEADER_SIZE + ZSTD_compressBound(payload) + 64 * MAX_PLANES;
    TRY(mem_reserve((void **)out, out_cap, bound, 1, "soft-label blob"));
    unsigned char *o = *out;
    size_t header = softlabel_frame_put_header(o, version, SOFTLABEL_KIND_TOPK, n_pos, k, vocab);
    size_t frame_len = 0;
    TRY(softlabel_compress_planes(c, l.off, l.n_planes, o + header, bound - header, &frame_len));
    *out_len = header + frame_len;
    return 0;
}

int softlabel_decode_topk(softlabel_codec *c, const softlabel_info *info, const unsigned char *blob,
                          size_t len, int32_t *ids, float *logprobs, float *tail)
{
    const int np = info->n_pos, kk = info->k, v = info->vocab, id_bytes = info->id_bytes;
    size_t n = (size_t)np, payload = payload_size(n, kk, id_bytes);
    TRY(softlabel_inflate_payload(c, blob, len, info->header_size, payload));
    TRY(reserve_scratch(c, payload, kk, id_bytes));
    softlabel_mtf mtf;
    TRY(softlabel_mtf_start(c, v, n * (size_t)kk, &mtf));
    layout l;
    layout_of(n, kk, id_bytes, &l, c->base);
    const unsigned char *raw = c->raw;
    const size_t *base = c->base;
    const size_t *gap_lo = base + (size_t)id_bytes * kk, *gap_hi = gap_lo + kk;
    const size_t split_lo = l.off[l.n_planes - 2], split_hi = l.off[l.n_planes - 1];

    const uint16_t *steps = step_table_of(info->version);
    for (size_t i = 0; i < n; i++) {
        int32_t *id = ids + i * kk;
        float *lp = logprobs + i * kk;
        for (int r = 0; r < kk; r++) {
            unsigned idx = softlabel_get_id_code(raw, base + r, (size_t)kk, id_bytes, i);
            if (idx >= (unsigned)v)
                return err_set("soft-label blob: position %zu rank %d: id index %u outside vocab %d",
                               i, r, idx, v);
            id[r] = (int32_t)softlabel_mtf_decode(&mtf, idx);
        }
        c->nlp[0] = 0;
        for (int r = 1; r < kk; r++) {
            uint32_t code = raw[gap_lo[r] + i] | (uint32_t)raw[gap_hi[r] + i] << 8;
            uint32_t next = c->nlp[r - 1] + code * step_of(steps, c->nlp[r - 1]);
            if (next > NLP_MAX)
                return err_set("soft-label blob: position %zu rank %d: log-prob beyond -64 nats", i, r);
            c->nlp[r] = next;
            lp[r] = -(float)((double)next / UNITS_PER_NAT);
        }
        double q1, m;
        unsigned split = raw[split_lo + i] | (unsigned)raw[split_hi + i] << 8;
        if (split_of(c, c->nlp, kk, split, &q1, &m) < 0)
            return err_set("soft-label blob: position %zu: probabilities sum above 1", i);
        lp[0] = (float)log(q1);
        tail[i] = (float)m;
    }
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
