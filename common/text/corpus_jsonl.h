/* corpus_jsonl: internal to the corpus module (not for other modules).
 *
 * The reader behind the jsonl:FIELD record mode (rules in corpus.h): parses
 * one line as a JSON object with jansson and hands back the decoded string
 * value of FIELD. It knows nothing of records or of where the line came
 * from: the record cutter (corpus_records.c) names the source, member and
 * line in a message and delivers the value as a record. */
#ifndef W2S_CORPUS_JSONL_H
#define W2S_CORPUS_JSONL_H

#include <stddef.h>

/* A field's value: data[0..len) (it may hold NUL bytes) points into the
 * parsed document, which owns it until corpus_jsonl_release. */
typedef struct corpus_jsonl_value {
    const unsigned char *data;
    size_t len;
    void *doc;      /* the jansson document (json_t *) */
} corpus_jsonl_value;

/* Parses line[0..len) (one line without its "\n") and finds its string member
 * field. @return 1 with *out set (release it with corpus_jsonl_release); 0 for
 * a line of only " \t\r" (nothing to release); or -1 with a message naming
 * the problem ("invalid JSON (column N): ...", "not a JSON object", "field
 * \"F\" missing" / "is not a string") but not the line: the caller prefixes
 * where it was. */
int corpus_jsonl_field(const unsigned char *line, size_t len, const char *field,
                       corpus_jsonl_value *out);
/* Frees the document behind a value corpus_jsonl_field returned 1 for. */
void corpus_jsonl_release(corpus_jsonl_value *value);

#endif
