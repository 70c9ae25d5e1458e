/* softlabel: the codec's entry points that serve both blob kinds:
 * softlabel_decode, which reads the header and hands the blob to its kind's
 * decoder (softlabel_topk.c or softlabel_sampled.c), and the parser of label
 * kinds as distill and labels.db spell them. */
#include "labels/softlabel.h"

#include <string.h>

#include "base/err.h"
#include "labels/softlabel_internal.h"

int softlabel_decode(softlabel_codec *c, const unsigned char *blob, size_t len, int vocab,
                     int max_pos, int max_k, int32_t *ids, float *logprobs, float *tail,
                     int *n_pos, int *k)
{
    softlabel_info info;
    TRY(softlabel_peek_info(blob, len, &info));
    if (info.n_pos > max_pos || info.k > max_k)
        return err_set("soft-label blob: %d positions of k %d exceed the room for %d of k %d",
                       info.n_pos, info.k, max_pos, max_k);
    if (info.vocab > vocab)
        return err_set("soft-label blob: vocab %d larger than the expected %d", info.vocab, vocab);
    if (info.kind == SOFTLABEL_KIND_SAMPLED)
        TRY(softlabel_decode_sampled_as_topk(c, &info, blob, len, ids, logprobs, tail));
    else
        TRY(softlabel_decode_topk(c, &info, blob, len, ids, logprobs, tail));
    *n_pos = info.n_pos;
    *k = info.k;
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
