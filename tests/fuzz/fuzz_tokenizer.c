/* libFuzzer target for tok_deserialize, both blob versions (the corpus holds
 * a version 1 blob and tests/data/gpt2/tiny_v2.tok, a GPT-2 kind version 2
 * one): arbitrary bytes must be rejected with a message or accepted as a
 * tokenizer that encodes and decodes exactly, never emits a special token
 * and serialises back to the same bytes. The first input byte selects
 * whether the trailing checksum is recomputed first, so that mutations also
 * reach the validation behind the checksum. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/err.h"
#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int reseal = data[0] & 1;
    data++;
    size--;
    unsigned char *blob = malloc(size ? size : 1);
    if (!blob)
        return 0;
    memcpy(blob, data, size);
    if (reseal && size >= 8) {
        uint64_t h = XXH3_64bits(blob, size - 8);
        for (int i = 0; i < 8; i++)
            blob[size - 8 + i] = (unsigned char)(h >> (8 * i));
    }
    tokenizer *t = tok_deserialize(blob, size);
    if (!t) {
        if (err_message()[0] == '\0')
            __builtin_trap(); /* a rejection must say why */
        free(blob);
        return 0;
    }
    /* Encode some of the input and a fixed text; both must round-trip. */
    static const unsigned char fixed[] = "Hello,  world 42!\n\xff\x00 aaaa it's \xc3\xa9t\xc3\xa9 \xe4\xbd\xa0";
    const unsigned char *texts[2] = {data, fixed};
    size_t lens[2] = {size < 256 ? size : 256, sizeof fixed - 1};
    int32_t ids[256];
    unsigned char back[256];
    for (int k = 0; k < 2; k++) {
        size_t n = tok_encode(t, texts[k], lens[k], ids), back_len = 0;
        if (n > lens[k] || tok_decode(t, ids, n, back, sizeof back, &back_len) < 0 ||
            back_len != lens[k] || memcmp(back, texts[k], lens[k]) != 0)
            __builtin_trap();
        for (size_t i = 0; i < n; i++) {
            size_t len;
            if (ids[i] == tok_eot(t) || !tok_token_bytes(t, ids[i], &len) || len == 0)
                __builtin_trap(); /* a special token has no bytes */
        }
    }
    unsigned char *again;
    size_t again_len;
    if (tok_serialize(t, &again, &again_len) == 0) {
        if (again_len != size || memcmp(again, blob, size) != 0)
            __builtin_trap(); /* an accepted blob is canonical */
        free(again);
    }
    tok_free(t);
    free(blob);
    return 0;
}
