/* libFuzzer target: arbitrary bytes as a soft-label blob. softlabel_decode
 * must accept or reject them without crashing or touching memory outside the
 * caller's arrays; an accepted blob must honour the decoder's contract
 * (ids below the vocabulary, tail >= 0) and re-encode to a blob that decodes
 * to the same ids. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "labels/softlabel.h"

#define MAX_POS 256
#define MAX_K 64
#define VOCAB (1 << 18)    /* beyond 16-bit ids: the wide versions too */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static softlabel_codec *c;
    static int32_t ids[MAX_POS * MAX_K], ids2[MAX_POS * MAX_K];
    static float lp[MAX_POS * MAX_K], lp2[MAX_POS * MAX_K], tail[MAX_POS];
    static unsigned char *blob;
    static size_t cap;
    if (!c && !(c = softlabel_codec_create()))
        abort();
    int n_pos, k, vocab;
    if (softlabel_decode(c, data, size, VOCAB, MAX_POS, MAX_K, ids, lp, tail, &n_pos, &k) < 0)
        return 0;
    if (softlabel_peek(data, size, &n_pos, &k, &vocab) < 0)
        abort();
    for (int i = 0; i < n_pos; i++) {
        if (!(tail[i] >= 0.0f))
            abort();
        for (int r = 0; r < k; r++)
            if (ids[i * k + r] < 0 || ids[i * k + r] >= vocab || !(lp[i * k + r] <= 0.0f))
                abort();
    }
    size_t len;
    int n2, k2;
    if (softlabel_encode(c, ids, lp, n_pos, k, vocab, &blob, &cap, &len) == 0) {
        if (softlabel_decode(c, blob, len, VOCAB, MAX_POS, MAX_K, ids2, lp2, tail, &n2, &k2) < 0 ||
            n2 != n_pos || k2 != k || memcmp(ids, ids2, (size_t)n_pos * k * sizeof *ids) != 0)
            abort();
    }
    return 0;
}
