/* corpus_cut: internal to the corpus module (not for other modules).
 *
 * A cutter turns the byte stream of one member, fed in blocks of any size,
 * into records by a record_spec (rules in corpus.h) and hands each non-empty
 * one to the callback. Only the current line / record is buffered; the result
 * does not depend on how the stream is split into blocks. A cutter is reused
 * across members: its buffers are kept and grow to the longest record seen. */
#ifndef W2S_CORPUS_CUT_H
#define W2S_CORPUS_CUT_H

#include <stddef.h>
#include <stdint.h>

#include "text/corpus.h"

typedef struct corpus_cutter {
    record_spec spec;
    corpus_record_fn fn;
    void *ctx;
    const char *source, *member;    /* borrowed for the current member */
    uint64_t index;                 /* next record index */
    uint64_t line_no;               /* lines completed so far (jsonl messages) */
    unsigned char *line;            /* partial line carried across blocks */
    size_t line_len, line_cap;
    unsigned char *rec;             /* record being built (file/paragraph/fortune) */
    size_t rec_len, rec_cap;
} corpus_cutter;

/* Sets up an empty cutter (no allocation yet). */
void corpus_cutter_init(corpus_cutter *c, const record_spec *spec, corpus_record_fn fn, void *ctx);
/* Releases the buffers; the cutter may be initialised again. */
void corpus_cutter_free(corpus_cutter *c);
/* Starts a member; source and member are borrowed until the next begin. */
void corpus_cutter_begin(corpus_cutter *c, const char *source, const char *member);
/* Feeds the next len bytes of the member. @return 0, or -1 when the callback
 * stopped (its message kept), a jsonl line was bad or memory ran out. */
int corpus_cutter_feed(corpus_cutter *c, const unsigned char *data, size_t len);
/* Ends the member, delivering the last record. @return as corpus_cutter_feed. */
int corpus_cutter_finish(corpus_cutter *c);

#endif
