/* libFuzzer target: the input is one file (archive, compressed file or plain
 * text) read from memory through the whole corpus reader in every record mode.
 * It must never crash or hang, every record must be non-empty and carry the
 * hash of its bytes, and reading the same bytes twice must give the same
 * records. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <xxhash.h>

#include "text/corpus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct tally { uint64_t n, digest; } tally;

static int check(void *ctx, const corpus_record *rec)
{
    tally *t = ctx;
    if (rec->len == 0 || rec->hash != XXH3_64bits(rec->data, rec->len) || rec->index > t->n)
        abort();
    t->digest = t->digest * 1000003u ^ rec->hash ^ XXH3_64bits(rec->member, 0) ^ rec->index;
    t->n++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const modes[] = {"file", "line", "paragraph", "fortune", "jsonl:text"};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        record_spec spec;
        if (corpus_parse_mode(modes[m], &spec) != 0)
            abort();
        tally a = {0, 0}, b = {0, 0};
        int ra = corpus_read_memory("fuzz", data, size, &spec, check, &a);
        int rb = corpus_read_memory("fuzz", data, size, &spec, check, &b);
        if (ra != rb || a.n != b.n || a.digest != b.digest)
            abort();
    }
    return 0;
}
