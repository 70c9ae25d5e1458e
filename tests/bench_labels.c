/* Benchmark of the label kinds side by side: topk:32, topk:12
 * and sample:50 blobs of the same synthetic teacher (the bench_softlabel
 * teacher: a shuffled Zipf prior over a 4096 vocabulary, a few boosted
 * context tokens, Gaussian noise; top-1 mean ~0.47). Reports bytes per
 * position of each kind, distinct ids per position at N = 50, the teacher
 * mass each kind's ids cover, and the sampled kind's encode/decode
 * throughput. Every blob is decoded and checked (top-k ids exact, sampled
 * counts exact) before anything is timed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/progress.h"
#include "base/rng.h"
#include "labels/softlabel.h"
#include "support_fixtures.h"

#define VOCAB 4096
#define SEQ_POS 127                 /* positions per blob: a T = 128 window */
#define N_SEQ 200                   /* 25,400 positions */
#define N_SAMPLES 50

/* The teacher's next-token distributions: (N_SEQ * SEQ_POS, VOCAB) probs. */
static float *make_teacher(uint64_t seed)
{
    size_t n = (size_t)N_SEQ * SEQ_POS;
    float *probs = mem_alloc(n * VOCAB * sizeof *probs, "bench teacher");
    float *prior = mem_alloc(VOCAB * sizeof *prior, "bench prior");
    uint32_t *perm = mem_alloc(VOCAB * sizeof *perm, "bench permutation");
    if (!probs || !prior || !perm) {
        free(probs);
        free(prior);
        free(perm);
        return NULL;
    }
    rng_state rng;
    rng_seed(&rng, seed);
    sfix_zipf_prior(&rng, VOCAB, perm, prior);
    for (size_t i = 0; i < n; i++) {
        float *p = probs + i * VOCAB;
        for (int v = 0; v < VOCAB; v++)
            p[v] = prior[v] + 0.6f * rng_normal(&rng);
        int n_ctx = 1 + (int)rng_below(&rng, 8);
        for (int j = 0; j < n_ctx; j++) {
            uint32_t r = (uint32_t)(VOCAB * powf(rng_uniform(&rng), 3.0f));
            p[perm[r]] += 2.5f + 2.0f * rng_normal(&rng) - 0.6f * (float)j;
        }
        double max = -1e30, sum = 0.0;
        for (int v = 0; v < VOCAB; v++)
            max = 1.6 * p[v] > max ? 1.6 * p[v] : max;
        for (int v = 0; v < VOCAB; v++)
            sum += exp(1.6 * p[v] - max);
        for (int v = 0; v < VOCAB; v++)
            p[v] = (float)(exp(1.6 * p[v] - max) / sum);
    }
    free(prior);
    free(perm);
    return probs;
}

/* Top-k of one distribution into ids / lp (rank order); @return their mass. */
static double top_k(const float *p, int k, int32_t *ids, float *lp)
{
    int n = 0;
    for (int v = 0; v < VOCAB; v++) {
        if (n == k && p[v] <= p[ids[k - 1]])
            continue;
        int at = n < k ? n++ : k - 1;
        while (at > 0 && p[ids[at - 1]] < p[v]) {
            ids[at] = ids[at - 1];
            at--;
        }
        ids[at] = v;
    }
    double mass = 0.0;
    for (int r = 0; r < k; r++) {
        lp[r] = logf(p[ids[r]]);
        mass += p[ids[r]];
    }
    return mass;
}

/* N draws with replacement (inverse CDF, binary search) as (id, count) rows
 * of N entries; @return the number of distinct ids, *mass their teacher mass. */
static int sample(const float *p, double *cdf, rng_state *rng, int32_t *ids, uint8_t *counts, double *mass)
{
    double acc = 0.0;
    for (int v = 0; v < VOCAB; v++)
        cdf[v] = acc += p[v];
    return rng_draw_counts(rng, cdf, VOCAB, N_SAMPLES, ids, counts, mass);
}

typedef struct kind_result {
    size_t bytes;
    double mass;           /* teacher mass on the stored ids, summed over positions */
    double seconds_enc;
} kind_result;

/* Encodes and verifies the top-k blobs of every sequence. */
static int run_topk(softlabel_codec *c, const float *probs, int k, kind_result *res)
{
    size_t n = (size_t)SEQ_POS * k;
    int32_t *ids = mem_alloc(n * sizeof *ids, "ids"), *got = mem_alloc(n * sizeof *got, "ids");
    float *lp = mem_alloc(n * sizeof *lp, "lp"), *glp = mem_alloc(n * sizeof *glp, "lp");
    float *tail = mem_alloc(SEQ_POS * sizeof *tail, "tail");
    unsigned char *blob = NULL;
    size_t cap = 0, len = 0;
    int rc = -1;
    memset(res, 0, sizeof *res);
    if (!ids || !got || !lp || !glp || !tail)
        goto done;
    for (int s = 0; s < N_SEQ; s++) {
        for (int i = 0; i < SEQ_POS; i++)
            res->mass += top_k(probs + ((size_t)s * SEQ_POS + i) * VOCAB, k, ids + i * k, lp + i * k);
        double t0 = time_now();
        if (softlabel_encode(c, ids, lp, SEQ_POS, k, VOCAB, &blob, &cap, &len) < 0)
            goto done;
        res->seconds_enc += time_now() - t0;
        res->bytes += len;
        int np, kk;
        if (softlabel_decode(c, blob, len, VOCAB, SEQ_POS, k, got, glp, tail, &np, &kk) < 0)
            goto done;
        if (np != SEQ_POS || kk != k || memcmp(ids, got, n * sizeof *ids)) {
            err_set("topk:%d: ids differ after the round trip (blob %d)", k, s);
            goto done;
        }
    }
    rc = 0;
done:
    free(ids);
    free(got);
    free(lp);
    free(glp);
    free(tail);
    free(blob);
    return rc;
}

/* Encodes and verifies the sample:N blobs; keeps them for the decode timing. */
static int run_sampled(softlabel_codec *c, const float *probs, kind_result *res, double *distinct,
                       unsigned char **blobs, size_t *lens)
{
    size_t n = (size_t)SEQ_POS * N_SAMPLES;
    int32_t *ids = mem_alloc(n * sizeof *ids, "ids"), *got = mem_alloc(n * sizeof *got, "ids");
    uint8_t *counts = mem_alloc(n, "counts"), *gc = mem_alloc(n, "counts");
    double *cdf = mem_alloc(VOCAB * sizeof *cdf, "cdf");
    int rc = -1;
    memset(res, 0, sizeof *res);
    *distinct = 0.0;
    if (!ids || !got || !counts || !gc || !cdf)
        goto done;
    rng_state rng;
    rng_seed(&rng, 7);
    for (int s = 0; s < N_SEQ; s++) {
        for (int i = 0; i < SEQ_POS; i++) {
            double mass;
            *distinct += sample(probs + ((size_t)s * SEQ_POS + i) * VOCAB, cdf, &rng, ids + i * N_SAMPLES,
                                counts + i * N_SAMPLES, &mass);
            res->mass += mass;
        }
        size_t cap = 0;
        double t0 = time_now();
        if (softlabel_encode_sampled(c, ids, counts, SEQ_POS, N_SAMPLES, VOCAB, &blobs[s], &cap, &lens[s]) < 0)
            goto done;
        res->seconds_enc += time_now() - t0;
        res->bytes += lens[s];
        int np, nn;
        if (softlabel_decode_sampled(c, blobs[s], lens[s], VOCAB, SEQ_POS, N_SAMPLES, got, gc, &np, &nn) < 0)
            goto done;
        for (int i = 0; i < SEQ_POS; i++)
            for (int r = 0; r < N_SAMPLES; r++) {
                int32_t id = ids[i * N_SAMPLES + r];
                int want = counts[i * N_SAMPLES + r], have = 0;
                for (int q = 0; want && q < N_SAMPLES; q++)
                    if (gc[i * N_SAMPLES + q] && got[i * N_SAMPLES + q] == id)
                        have = gc[i * N_SAMPLES + q];
                if (have != want) {
                    err_set("sample:%d: blob %d position %d: id %d count %d decoded as %d", N_SAMPLES, s, i,
                            (int)id, want, have);
                    goto done;
                }
            }
    }
    rc = 0;
done:
    free(ids);
    free(got);
    free(counts);
    free(gc);
    free(cdf);
    return rc;
}

int main(void)
{
    const size_t n = (size_t)N_SEQ * SEQ_POS;
    softlabel_codec *c = softlabel_codec_create();
    float *probs = make_teacher(42);
    unsigned char **blobs = mem_calloc(N_SEQ, sizeof *blobs, "blobs");
    size_t *lens = mem_calloc(N_SEQ, sizeof *lens, "blob sizes");
    int32_t *ids = mem_alloc((size_t)SEQ_POS * N_SAMPLES * sizeof *ids, "ids");
    float *lp = mem_alloc((size_t)SEQ_POS * N_SAMPLES * sizeof *lp, "lp");
    float *tail = mem_alloc(SEQ_POS * sizeof *tail, "tail");
    kind_result k32, k12, s50;
    double distinct;
    if (!c || !probs || !blobs || !lens || !ids || !lp || !tail || run_topk(c, probs, 32, &k32) < 0 ||
        run_topk(c, probs, 12, &k12) < 0 || run_sampled(c, probs, &s50, &distinct, blobs, lens) < 0) {
        fprintf(stderr, "bench_labels: %s\n", err_message());
        return 1;
    }
    printf("data: %zu positions of a %d-token teacher\n", n, VOCAB);
    int reps = 5;
    double t0 = time_now();
    for (int rep = 0; rep < reps; rep++)
        for (int s = 0; s < N_SEQ; s++) {
            int np, kk;
            if (softlabel_decode(c, blobs[s], lens[s], VOCAB, SEQ_POS, N_SAMPLES, ids, lp, tail, &np, &kk) < 0) {
                fprintf(stderr, "bench_labels: %s\n", err_message());
                return 1;
            }
        }
    double t_dec = time_now() - t0;
    sfix_bench_emit("labels_bytes_per_position_topk32", (double)k32.bytes / n, "bytes");
    sfix_bench_emit("labels_bytes_per_position_topk12", (double)k12.bytes / n, "bytes");
    sfix_bench_emit("labels_bytes_per_position_sample50", (double)s50.bytes / n, "bytes");
    sfix_bench_emit("labels_distinct_ids_per_position_sample50", distinct / n, "ids");
    sfix_bench_emit("labels_teacher_mass_covered_topk32", k32.mass / n, "probability");
    sfix_bench_emit("labels_teacher_mass_covered_topk12", k12.mass / n, "probability");
    sfix_bench_emit("labels_teacher_mass_covered_sample50", s50.mass / n, "probability");
    sfix_bench_emit("labels_sample50_encode_positions_per_s", n / s50.seconds_enc, "positions/s");
    sfix_bench_emit("labels_sample50_decode_positions_per_s", reps * n / t_dec, "positions/s");
    for (int s = 0; s < N_SEQ; s++)
        free(blobs[s]);
    free(blobs);
    free(lens);
    free(ids);
    free(lp);
    free(tail);
    free(probs);
    softlabel_codec_free(c);
    return 0;
}
