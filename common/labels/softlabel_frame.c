/* softlabel_frame: the soft-label codec's shared layer (schemas/softlabel.md):
 * the codec object, the blob header both kinds start with, and the zstd
 * frame that carries a blob's byte planes. The top-k and sampled kinds
 * (softlabel_topk.c, softlabel_sampled.c) lay out their planes and call
 * these; this file knows nothing of what the planes hold. */
#include "labels/softlabel_frame.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
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
    free(c->last);
    free(c->id_at);
    free(c->by_time);
    free(c->unused);
    free(c->nlp);
    free(c->base);
    free(c->stamp);
    free(c->pairs);
    free(c);
}

int softlabel_version_for(softlabel_kind kind, int vocab)
{
    int wide = vocab > SOFTLABEL_NARROW_VOCAB;
    if (kind == SOFTLABEL_KIND_SAMPLED)
        return wide ? SOFTLABEL_SAMPLED_WIDE_VERSION : SOFTLABEL_SAMPLED_VERSION;
    return wide ? SOFTLABEL_TOPK_WIDE_VERSION : SOFTLABEL_CODEC_VERSION;
}

size_t softlabel_frame_put_header(unsigned char *out, int version, softlabel_kind kind, int n_pos, int k,
                                  int vocab)
{
    out[0] = 'S';
    out[1] = 'L';
    out[2] = (unsigned char)version;
    out[3] = (unsigned char)kind;
    bytes_put_u32(out + 4, (uint32_t)n_pos);
    bytes_put_u16(out + 8, (unsigned)k);
    if (softlabel_id_bytes(version) == 2) {
        bytes_put_u16(out + 10, (unsigned)(vocab - 1));
        return SOFTLABEL_HEADER_SIZE;
    }
    bytes_put_u32(out + 10, (uint32_t)(vocab - 1));
    return SOFTLABEL_WIDE_HEADER_SIZE;
}

/* The kind of blobs of a version byte, or -1 for an unknown version. */
static int kind_of_version(int version)
{
    switch (version) {
    case SOFTLABEL_CODEC_VERSION:
    case SOFTLABEL_TOPK_V1_VERSION:
    case SOFTLABEL_TOPK_WIDE_VERSION:
        return SOFTLABEL_KIND_TOPK;
    case SOFTLABEL_SAMPLED_VERSION:
    case SOFTLABEL_SAMPLED_WIDE_VERSION:
        return SOFTLABEL_KIND_SAMPLED;
    default:
        return -1;
    }
}

int softlabel_peek_info(const unsigned char *blob, size_t len, softlabel_info *info)
{
    if (len < SOFTLABEL_HEADER_SIZE)
        return err_set("soft-label blob: %zu bytes, shorter than its %d-byte header", len,
                       SOFTLABEL_HEADER_SIZE);
    if (blob[0] != 'S' || blob[1] != 'L')
        return err_set("soft-label blob: bad magic (not a soft-label blob)");
    int want_kind = kind_of_version(blob[2]);
    if (want_kind < 0)
        return err_set("soft-label blob: codec version %d, expected %d, %d or %d (top-k) or %d or %d "
                       "(sampled)", blob[2], SOFTLABEL_CODEC_VERSION, SOFTLABEL_TOPK_WIDE_VERSION,
                       SOFTLABEL_TOPK_V1_VERSION, SOFTLABEL_SAMPLED_VERSION, SOFTLABEL_SAMPLED_WIDE_VERSION);
    if (blob[3] != want_kind)
        return err_set("soft-label blob: unknown label kind %d for codec version %d", blob[3], blob[2]);
    int id_bytes = softlabel_id_bytes(blob[2]);
    size_t common = id_bytes == 2 ? SOFTLABEL_HEADER_SIZE : SOFTLABEL_WIDE_HEADER_SIZE;
    size_t header = common + (want_kind == SOFTLABEL_KIND_SAMPLED ? SOFTLABEL_ENTRIES_SIZE : 0);
    if (len < header)
        return err_set("soft-label blob: %zu bytes, shorter than its %zu-byte header", len, header);
    uint32_t np = bytes_get_u32(blob + 4);
    unsigned kk = bytes_get_u16(blob + 8);
    uint64_t v = (id_bytes == 2 ? bytes_get_u16(blob + 10) : bytes_get_u32(blob + 10)) + (uint64_t)1;
    if (np < 1 || np > SOFTLABEL_MAX_POS)
        return err_set("soft-label blob: n_pos %u outside 1..%d", np, SOFTLABEL_MAX_POS);
    if (v > SOFTLABEL_MAX_VOCAB)
        return err_set("soft-label blob: vocab %llu above %d", (unsigned long long)v, SOFTLABEL_MAX_VOCAB);
    info->version = blob[2];
    info->kind = (softlabel_kind)want_kind;
    info->n_pos = (int)np;
    info->k = (int)kk;
    info->vocab = (int)v;
    info->id_bytes = id_bytes;
    info->header_size = header;
    if (want_kind == SOFTLABEL_KIND_TOPK) {
        if (kk < 1 || kk > SOFTLABEL_MAX_K || kk > v)
            return err_set("soft-label blob: k %u outside 1..%d or above vocab %d", kk, SOFTLABEL_MAX_K,
                           (int)v);
        info->entries = (long)np * kk;
        return 0;
    }
    if (kk < 1 || kk > SOFTLABEL_MAX_SAMPLES)
        return err_set("soft-label blob: %u samples per position, outside 1..%d", kk, SOFTLABEL_MAX_SAMPLES);
    uint32_t entries = bytes_get_u32(blob + common);
    unsigned widest = kk < v ? kk : (unsigned)v;   /* distinct ids per position */
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

/* The largest vocabulary whose move-to-front codes come from the list. Measured
 * with ids spread like a flat teacher's (tests/bench_softlabel.c has peaked
 * ones): at 4096 ids the list decoded 380 K positions/s of k 32 and the trees
 * 170 K; at 16384 the list 106 K and the trees 158 K, which hold about that
 * up to 150,000 ids (the list: 7 K). The trees encode about 240 K/s at any
 * vocabulary, the list 53 K at 4096 ids. */
#define MTF_LIST_MAX_VOCAB 8192

int softlabel_mtf_start(softlabel_codec *c, int vocab, size_t uses, softlabel_mtf *m)
{
    memset(m, 0, sizeof *m);
    m->vocab = vocab;
    m->tree = vocab > MTF_LIST_MAX_VOCAB;
    if (!m->tree) {
        TRY(mem_reserve((void **)&c->mtf, &c->mtf_cap, (size_t)vocab, sizeof *c->mtf, "soft-label id list"));
        m->list = c->mtf;
        for (int i = 0; i < vocab; i++)
            m->list[i] = (uint16_t)i;
        return 0;
    }
    if (uses >= UINT32_MAX)
        return err_set("soft-label codec: %zu ids in one blob", uses);
    size_t v = (size_t)vocab;
    TRY(mem_reserve((void **)&c->last, &c->last_cap, v, sizeof *c->last, "soft-label id list"));
    TRY(mem_reserve((void **)&c->unused, &c->unused_cap, v + 1, sizeof *c->unused, "soft-label id list"));
    TRY(mem_reserve((void **)&c->id_at, &c->id_at_cap, uses + 1, sizeof *c->id_at, "soft-label id list"));
    TRY(mem_reserve((void **)&c->by_time, &c->by_time_cap, uses + 1, sizeof *c->by_time, "soft-label id list"));
    m->last = c->last;
    m->unused = c->unused;
    m->id_at = c->id_at;
    m->by_time = c->by_time;
    m->uses = (uint32_t)uses;
    memset(m->last, 0, v * sizeof *m->last);
    memset(m->by_time, 0, (uses + 1) * sizeof *m->by_time);
    for (size_t i = 1; i <= v; i++)   /* every id unused: node i covers i & -i ids */
        m->unused[i] = (int32_t)(i & (~i + 1));
    return 0;
}

/* Fenwick trees over 1..n (tree[0] unused). */
static void tree_add(int32_t *tree, size_t n, size_t i, int32_t delta)
{
    for (; i <= n; i += i & (~i + 1))
        tree[i] += delta;
}

static int32_t tree_prefix(const int32_t *tree, size_t i)
{
    int32_t sum = 0;
    for (; i > 0; i -= i & (~i + 1))
        sum += tree[i];
    return sum;
}

/* The smallest i with prefix(i) >= rank (1 <= rank <= the total). */
static size_t tree_find(const int32_t *tree, size_t n, int32_t rank)
{
    size_t at = 0, step = 1;
    while (step * 2 <= n)
        step *= 2;
    for (; step; step /= 2)
        if (at + step <= n && tree[at + step] < rank) {
            at += step;
            rank -= tree[at];
        }
    return at + 1;
}

/* Records that id is used now (it moves to the front). */
static void tree_use(softlabel_mtf *m, uint32_t id)
{
    uint32_t t = ++m->now;
    tree_add(m->by_time, m->uses, t, 1);
    m->last[id] = t;
    m->id_at[t] = id;
}

unsigned softlabel_mtf_tree_encode(softlabel_mtf *m, uint32_t id)
{
    unsigned code;
    uint32_t t = m->last[id];
    if (t) {   /* behind it: the ids used since */
        code = (unsigned)(m->used - tree_prefix(m->by_time, t));
        tree_add(m->by_time, m->uses, t, -1);
    } else {   /* behind the used ids, then the unused ones below it */
        code = (unsigned)(m->used + tree_prefix(m->unused, id));
        tree_add(m->unused, (size_t)m->vocab, (size_t)id + 1, -1);
        m->used++;
    }
    tree_use(m, id);
    return code;
}

uint32_t softlabel_mtf_tree_decode(softlabel_mtf *m, unsigned code)
{
    uint32_t id;
    if (code < (unsigned)m->used) {   /* the (used - code)-th earliest of the last uses */
        size_t t = tree_find(m->by_time, m->uses, m->used - (int32_t)code);
        id = m->id_at[t];
        tree_add(m->by_time, m->uses, t, -1);
    } else {
        id = (uint32_t)tree_find(m->unused, (size_t)m->vocab, (int32_t)(code - (unsigned)m->used) + 1) - 1;
        tree_add(m->unused, (size_t)m->vocab, (size_t)id + 1, -1);
        m->used++;
    }
    tree_use(m, id);
    return id;
}
