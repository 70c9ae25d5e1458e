/* support_tok: see support_tok.h. */
#include "support_tok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int stok_roundtrip(tokenizer *t, const unsigned char *s, size_t len, int32_t *ids, size_t *n)
{
    *n = tok_encode(t, s, len, ids);
    if (*n > len) {
        fprintf(stderr, "stok_roundtrip: %zu ids for %zu bytes\n", *n, len);
        return -1;
    }
    size_t pos = 0;
    for (size_t i = 0; i < *n; i++) {
        size_t tl;
        const unsigned char *b = tok_token_bytes(t, ids[i], &tl);
        if (!b || tl == 0 || ids[i] == tok_eot(t) || tl > len - pos || memcmp(b, s + pos, tl) != 0) {
            fprintf(stderr, "stok_roundtrip: id %d at %zu (byte %zu) is %s\n", ids[i], i, pos,
                    !b ? "outside the vocabulary" : tl == 0 || ids[i] == tok_eot(t) ? "a special token"
                                                                                 : "not the text's bytes");
            return -1;
        }
        pos += tl;
    }
    unsigned char *back = malloc(len + 1);
    size_t dlen = 0;
    int rc = back && pos == len && tok_decode(t, ids, *n, back, len, &dlen) == 0 && dlen == len &&
                     memcmp(back, s, len) == 0 ? 0 : -1;
    if (rc < 0)
        fprintf(stderr, "stok_roundtrip: %s\n",
                !back ? "out of memory" : pos != len ? "the ids' bytes stop short" : "tok_decode differs");
    free(back);
    return rc;
}
