/* topk: top-k selection and softmax statistics of one logits row; see topk.h.
 *
 * The fast path uses GCC/Clang vector extensions (8 floats), which compile to
 * AVX on the development machines and to plain scalar code elsewhere, so no
 * kernel is tied to one instruction set. (16-float vectors measured slower on
 * the AVX-512 development machines, whose units split them in two.) */
#include "nn/topk.h"

#include "base/err.h"
#include "base/mem.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

enum { LANES = 8, BLOCK = 256 };

/* Vector helpers are always inlined and vectors never cross this file's
 * interface, so the calling convention for them (which depends on whether
 * AVX is enabled, as Clang warns) never matters. */
#define VEC_INLINE static inline __attribute__((always_inline))
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi"
#endif

/* -std=c11 turns GCC's multiply-add contraction off; the exp pass is worth
 * its FMAs (Clang contracts by default). */
#if defined(__GNUC__) && !defined(__clang__)
#define FP_CONTRACT __attribute__((optimize("fp-contract=fast")))
#else
#define FP_CONTRACT
#endif

/* exp(d) is taken as 0 below this: the contribution is < 1e-37 of the sum,
 * whose largest term is 1, and 2^n stays a normal float. */
#define EXP_CUTOFF (-86.0f)
/* Offset below the max for lanes past the end of a row: finite (pad * 0 = 0
 * in the sums) and below EXP_CUTOFF (e = 0). */
#define PAD_D (-100.0f)

VEC_INLINE v8f v8f_load(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

VEC_INLINE v8f v8f_splat(float x)
{
    return (v8f){x, x, x, x, x, x, x, x};
}

VEC_INLINE v8f v8f_select(v8i mask, v8f a, v8f b)
{
    return (v8f)(((v8i)a & mask) | ((v8i)b & ~mask));
}

VEC_INLINE double v8f_sum(v8f v)
{
    double s = 0;
    for (int j = 0; j < LANES; j++)
        s += v[j];
    return s;
}

/* exp(d) for d <= 0: base-2 range reduction to |r| <= ln(2)/2, then
 * 1 + r + r^2 q(r) with q of degree 3 fitted for the smallest relative
 * error (1.1e-7 before float rounding, like expf's own);
 * lanes below EXP_CUTOFF, and NaN lanes, give 0. */
FP_CONTRACT VEC_INLINE v8f v8f_exp_neg(v8f d)
{
    v8i keep = d >= v8f_splat(EXP_CUTOFF);
    v8f x = v8f_select(keep, d, v8f_splat(EXP_CUTOFF));
    /* Adding 1.5 * 2^23 rounds x*log2(e) to an integer held in the low bits. */
    const float magic = 12582912.0f;
    v8f t = x * v8f_splat(1.44269504088896341f) + v8f_splat(magic);
    v8f n = t - v8f_splat(magic);
    v8f r = x - n * v8f_splat(0.693359375f) + n * v8f_splat(2.12194440e-4f);
    v8f p = v8f_splat(8.3125279023e-3f);
    p = p * r + v8f_splat(4.1890125669e-2f);
    p = p * r + v8f_splat(1.6667114477e-1f);
    p = p * r + v8f_splat(4.9999231675e-1f);
    p = p * (r * r) + r + v8f_splat(1.0f);
    v8i scale = ((v8i)t - 0x4B400000) << 23;
    return (v8f)(((v8i)p + scale) & keep);
}

size_t topk_scratch_bytes(int V)
{
    return (size_t)V * (sizeof(int32_t) + sizeof(float));
}

/* Entries each lane keeps while looking for a threshold (chunk_top is
 * written out for 4): the union of the lanes' top-r lists over a chunk holds
 * 8 r distinct entries. */
enum { TOP_R = 4 };

/* Puts a into the descending pair (*hi, a): *hi keeps the larger. */
VEC_INLINE v8f v8f_keep_larger(v8f *hi, v8f a)
{
    v8i up = a > *hi;
    v8f low = v8f_select(up, *hi, a);
    *hi = v8f_select(up, a, *hi);
    return low;
}

/* Over the vectors of x[start, end): the per-lane maximum (*lane_max) and
 * the smallest of the lanes' r-th largest entries (r <= TOP_R, returned). */
static float chunk_top(const float *x, int start, int end, int r, v8f *lane_max)
{
    v8f top[TOP_R];
    v8f t0 = v8f_splat(-INFINITY), t1 = t0, t2 = t0, t3 = t0;
    for (int i = start; i < end; i += LANES) {
        v8f a = v8f_load(x + i);
        a = v8f_keep_larger(&t0, a);
        a = v8f_keep_larger(&t1, a);
        a = v8f_keep_larger(&t2, a);
        v8f_keep_larger(&t3, a);
    }
    top[0] = t0;
    top[1] = t1;
    top[2] = t2;
    top[3] = t3;
    float lowest = INFINITY;
    for (int j = 0; j < LANES; j++)
        lowest = top[r - 1][j] < lowest ? top[r - 1][j] : lowest;
    *lane_max = t0;
    return lowest;
}

/* The row maximum, and *t0, a lower bound of the k-th largest logit that is
 * close to it: the row is cut into chunks of whole vectors, each lane of
 * each chunk keeps its r largest entries (r = min(ceil(k / 8), TOP_R)), and
 * enough chunks are taken that at least k distinct entries are kept; the
 * smallest kept r-th entry is then <= the k-th largest. With V this small
 * against k, t0 = -inf (every entry is a candidate). */
static float row_max(const float *x, int V, int k, float *t0)
{
    int r = (k + LANES - 1) / LANES;
    r = r < TOP_R ? r : TOP_R;
    int n_chunks = (k + LANES * r - 1) / (LANES * r);
    int chunk = V / n_chunks / LANES * LANES;
    if (chunk < r * LANES) {
        n_chunks = 0;
        chunk = 0;
    }
    float lowest = n_chunks > 0 ? INFINITY : -INFINITY;
    v8f best = v8f_splat(-INFINITY);
    for (int c = 0; c < n_chunks * chunk; c += chunk) {
        v8f lane_max;
        float low = chunk_top(x, c, c + chunk, r, &lane_max);
        lowest = low < lowest ? low : lowest;
        best = v8f_select(lane_max > best, lane_max, best);
    }
    int i = n_chunks * chunk;
    for (; i + LANES <= V; i += LANES) {
        v8f a = v8f_load(x + i);
        best = v8f_select(a > best, a, best);
    }
    float m = -INFINITY;
    for (int j = 0; j < LANES; j++)
        m = best[j] > m ? best[j] : m;
    for (; i < V; i++)
        m = x[i] > m ? x[i] : m;
    *t0 = lowest;
    return m;
}

/* Up to this k the result is built by insertion, beyond it in a heap: the
 * threshold leaves about 1.3 k candidates, whose insertion costs about k^2 / 4
 * moves against the heap's k log k steps plus a final sort; insertion wins
 * below a few hundred (measured at V = 4096: 1.5x faster at k = 32, 2.4x
 * slower at k = 1024). */
enum { INSERTION_MAX_K = 256 };

/* The heap keeps the k best entries seen so far with the worst at the root. */
static inline int heap_worse(float va, int32_t ia, float vb, int32_t ib)
{
    return va < vb || (va == vb && ia > ib);
}

static void heap_sift_down(float *hv, int32_t *hi, int n, int at)
{
    float v = hv[at];
    int32_t id = hi[at];
    for (;;) {
        int c = 2 * at + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap_worse(hv[c + 1], hi[c + 1], hv[c], hi[c]))
            c++;
        if (!heap_worse(hv[c], hi[c], v, id))
            break;
        hv[at] = hv[c];
        hi[at] = hi[c];
        at = c;
    }
    hv[at] = v;
    hi[at] = id;
}

/* The k best of the n >= k candidates (ascending ids, logits cand_x) into
 * v, id in rank order. A candidate equal to a kept entry has the larger id
 * and ranks below it, so only strictly larger logits displace the k-th. */
static void select_topk(const float *cand_x, const int32_t *cand, int n, int k, float *v, int32_t *id)
{
    if (k <= INSERTION_MAX_K) {
        int have = 0;
        for (int c = 0; c < n; c++) {
            float x = cand_x[c];
            if (have == k && !(x > v[k - 1]))
                continue;
            int at = have < k ? have++ : k - 1;
            for (; at > 0 && v[at - 1] < x; at--) {
                v[at] = v[at - 1];
                id[at] = id[at - 1];
            }
            v[at] = x;
            id[at] = cand[c];
        }
        return;
    }
    for (int i = 0; i < k; i++) {
        id[i] = cand[i];
        v[i] = cand_x[i];
    }
    for (int i = k / 2 - 1; i >= 0; i--)
        heap_sift_down(v, id, k, i);
    for (int c = k; c < n; c++) {
        if (cand_x[c] > v[0]) {
            v[0] = cand_x[c];
            id[0] = cand[c];
            heap_sift_down(v, id, k, 0);
        }
    }
    for (int last = k - 1; last > 0; last--) {   /* heap-sort, worst to the end */
        float x = v[0];
        int32_t i0 = id[0];
        v[0] = v[last];
        id[0] = id[last];
        heap_sift_down(v, id, last, 0);
        v[last] = x;
        id[last] = i0;
    }
}

/* Whether any lane of a comparison result is set: one instruction with AVX,
 * which the generic spelling does not become. */
VEC_INLINE bool v8i_any(v8i mask)
{
#if defined(__AVX__)
    __m256i v;
    memcpy(&v, &mask, sizeof v);
    return !_mm256_testz_si256(v, v);
#else
    uint64_t w[LANES / 2];
    memcpy(w, &mask, sizeof w);
    return (w[0] | w[1] | w[2] | w[3]) != 0;
#endif
}

/* The entries >= t0: ascending ids into cand, their logits into cand_x.
 * @return their count. */
static int candidates(const float *x, int V, float t0, int32_t *cand, float *cand_x)
{
    v8f tv = v8f_splat(t0);
    int n = 0, i = 0;
    for (; i + LANES <= V; i += LANES) {
        if (v8i_any(v8f_load(x + i) >= tv)) {
            for (int j = i; j < i + LANES; j++) {
                cand[n] = j;
                cand_x[n] = x[j];
                n += x[j] >= t0;
            }
        }
    }
    for (; i < V; i++) {
        if (x[i] >= t0) {
            cand[n] = i;
            cand_x[n++] = x[i];
        }
    }
    return n;
}

/* e[i] = exp(x[i] - m) for n values (in place). */
static void exp_values(float *x, int n, float m)
{
    v8f mv = v8f_splat(m);
    for (int i = 0; i < n; i += LANES) {
        v8f a = v8f_splat(m);
        for (int j = 0; j < LANES && i + j < n; j++)
            a[j] = x[i + j];
        v8f e = v8f_exp_neg(a - mv);
        for (int j = 0; j < LANES && i + j < n; j++)
            x[i + j] = e[j];
    }
}

/* The one pass of exp(x - m) over the row: returns Z = sum e and sets
 * *s = sum e (x - m) and *below = sum of e over the entries < t0. Float
 * partial sums per BLOCK entries keep the rounding error at ~1e-7; blocks
 * add up in double. */
FP_CONTRACT static double exp_pass(const float *x, int V, float m, float t0, double *s,
                                   double *below)
{
    double z_total = 0, s_total = 0, b_total = 0;
    v8f mv = v8f_splat(m), tv = v8f_splat(t0);
    int i = 0;
    while (i < V) {
        int end = i + BLOCK < V ? i + BLOCK : V;
        v8f z = v8f_splat(0), sd = v8f_splat(0), bz = v8f_splat(0);
        for (; i < end; i += LANES) {
            v8f a;
            if (i + LANES <= V) {
                a = v8f_load(x + i);
            } else {
                /* Past the end: e = 0. */
                a = v8f_splat(m + PAD_D);
                for (int j = 0; i + j < V; j++)
                    a[j] = x[i + j];
            }
            v8f d = a - mv;
            v8f ev = v8f_exp_neg(d);
            z += ev;
            sd += ev * d;
            bz += v8f_select(a < tv, ev, v8f_splat(0));
        }
        z_total += v8f_sum(z);
        s_total += v8f_sum(sd);
        b_total += v8f_sum(bz);
    }
    *s = s_total;
    *below = b_total;
    return z_total;
}

int topk_row(const float *logits, int V, int k, int32_t target, void *scratch,
             int32_t *ids, float *logprobs, topk_stats *st)
{
    float t0;
    float m = row_max(logits, V, k, &t0);
    int32_t *cand = scratch;
    float *cand_e = (float *)(cand + V);
    int n_cand = 0;
    double s = NAN, below = 0, z = NAN;
    if (isfinite(m)) {
        z = exp_pass(logits, V, m, t0, &s, &below);
        n_cand = candidates(logits, V, t0, cand, cand_e);
    }
    if (!isfinite(s) || !isfinite(z) || n_cand < k)
        return err_set("logits row holds NaN or infinity");
    select_topk(cand_e, cand, n_cand, k, logprobs, ids);
    /* The tail: entries below t0, plus the candidates below the selection's
     * worst logit t, plus those equal to t that lost the tie (larger ids). */
    float t = logprobs[k - 1];
    int eq_selected = 0;
    for (int j = 0; j < k; j++)
        eq_selected += logprobs[j] == t;
    exp_values(cand_e, n_cand, m);
    double tail = below;
    for (int c = 0; c < n_cand; c++) {
        float v = logits[cand[c]];
        if (v < t || (v == t && eq_selected-- <= 0))
            tail += cand_e[c];
    }
    double log_z = log(z);
    for (int j = 0; j < k; j++)
        logprobs[j] = (float)((double)logprobs[j] - m - log_z);
    st->entropy = log_z - s / z;
    st->nll = target >= 0 && target < V ? log_z - ((double)logits[target] - m) : NAN;
    st->tail = tail / z;
    /* exp(0) is exactly 1 in v8f_exp_neg. */
    st->top1 = 1.0 / z;
    return 0;
}

typedef struct ref_entry { float v; int32_t id; } ref_entry;

static int ref_cmp(const void *a, const void *b)
{
    const ref_entry *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

int topk_row_reference(const float *logits, int V, int k, int32_t target,
                       int32_t *ids, float *logprobs, topk_stats *st)
{
    ref_entry *all = mem_calloc((size_t)V, sizeof *all, "top-k reference");
    if (!all)
        return -1;
    double m = -INFINITY;
    for (int i = 0; i < V; i++) {
        if (!isfinite(logits[i])) {
            free(all);
            return err_set("logits row holds NaN or infinity");
        }
        all[i].v = logits[i];
        all[i].id = i;
        m = logits[i] > m ? logits[i] : m;
    }
    double z = 0;
    for (int i = 0; i < V; i++)
        z += exp((double)logits[i] - m);
    qsort(all, (size_t)V, sizeof *all, ref_cmp);
    double log_z = log(z), entropy = 0, tail = 0;
    for (int r = 0; r < V; r++) {
        double lp = (double)all[r].v - m - log_z;
        double p = exp(lp);
        entropy -= p * lp;
        if (r < k) {
            ids[r] = all[r].id;
            logprobs[r] = (float)lp;
        } else {
            tail += p;
        }
    }
    st->entropy = entropy;
    st->nll = target >= 0 && target < V ? log_z - ((double)logits[target] - m) : NAN;
    st->tail = tail;
    st->top1 = exp((double)all[0].v - m - log_z);
    free(all);
    return 0;
}
