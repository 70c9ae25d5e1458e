/* support_tok: the exact round-trip check shared by the tokenizer tests and
 * the tokenizer bench, for both kinds. Like every tests/support_*.c it uses
 * no cmocka: it returns 0 / -1 with the problem on stderr. */
#ifndef W2S_SUPPORT_TOK_H
#define W2S_SUPPORT_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "text/tokenizer.h"

/* Encodes s[0..len) into ids (room for len) and checks that there are at
 * most len ids, none of them a special token (every id has bytes), that
 * their bytes concatenate to s and that tok_decode gives s back. *n receives
 * the id count. @return 0, or -1 naming the first failure on stderr. */
int stok_roundtrip(tokenizer *t, const unsigned char *s, size_t len, int32_t *ids, size_t *n);

#endif
