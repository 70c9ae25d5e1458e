/* libFuzzer target for the record cutter, jsonl mode first: the input is the
 * byte stream of one member. The first byte picks the record mode (jsonl with
 * field "text" most of the time) and a block size; the rest is fed whole and
 * then in blocks of that size. It must never crash, and both feeds must give
 * the same records, or fail at the same point with the same message. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "text/corpus.h"
#include "text/corpus_cut.h"
#include "base/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct tally { uint64_t n, digest; } tally;

static int check(void *ctx, const corpus_record *rec)
{
    tally *t = ctx;
    if (rec->len == 0 || rec->hash != XXH3_64bits(rec->data, rec->len) || rec->index != t->n)
        abort();
    t->digest = t->digest * 1000003u ^ rec->hash;
    t->n++;
    return 0;
}

/* Cuts data in blocks of step bytes; returns the cutter's result and leaves the
 * error message in msg. */
static int cut(const record_spec *spec, const uint8_t *data, size_t size, size_t step, tally *t,
               char *msg, size_t msg_cap)
{
    corpus_cutter c;
    corpus_cutter_init(&c, spec, check, t);
    corpus_cutter_begin(&c, "fuzz", "member.jsonl");
    err_clear();
    int rc = 0;
    for (size_t off = 0; off < size && rc == 0; off += step)
        rc = corpus_cutter_feed(&c, data + off, size - off < step ? size - off : step);
    if (rc == 0)
        rc = corpus_cutter_finish(&c);
    corpus_cutter_free(&c);
    strncpy(msg, err_message(), msg_cap - 1);
    msg[msg_cap - 1] = '\0';
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const modes[] = {"jsonl:text", "jsonl:text", "jsonl:a", "jsonl:text",
                                        "line", "paragraph", "fortune", "file"};
    if (size < 1)
        return 0;
    record_spec spec;
    if (corpus_parse_mode(modes[data[0] & 7], &spec) != 0)
        abort();
    size_t step = 1 + (data[0] >> 3);
    tally whole = {0, 0}, split = {0, 0};
    char msg_whole[1024], msg_split[1024];
    int rw = cut(&spec, data + 1, size - 1, size, &whole, msg_whole, sizeof msg_whole);
    int rs = cut(&spec, data + 1, size - 1, step, &split, msg_split, sizeof msg_split);
    if (rw != rs || whole.n != split.n || whole.digest != split.digest || strcmp(msg_whole, msg_split) != 0)
        abort();
    return 0;
}
