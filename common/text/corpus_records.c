/* corpus_records: cuts a member's byte stream into records (corpus_cut.h).
 *
 * Line-based modes find "\n" with memchr; a complete line lying inside one
 * block is handled in place, only a line split across blocks is copied into
 * the line buffer. Paragraph and fortune records are built line by line in the
 * record buffer; file mode appends the whole member there. A jsonl line goes
 * to the JSON reader (corpus_jsonl.h), which hands back the field's value to
 * deliver here. */
#include "text/corpus_cut.h"
#include "text/corpus_jsonl.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/err.h"
#include "base/mem.h"

void corpus_cutter_init(corpus_cutter *c, const record_spec *spec, corpus_record_fn fn, void *ctx)
{
    memset(c, 0, sizeof *c);
    c->spec = *spec;
    c->fn = fn;
    c->ctx = ctx;
    c->source = "";
    c->member = "";
}

void corpus_cutter_free(corpus_cutter *c)
{
    free(c->line);
    free(c->rec);
    c->line = c->rec = NULL;
    c->line_len = c->line_cap = c->rec_len = c->rec_cap = 0;
}

void corpus_cutter_begin(corpus_cutter *c, const char *source, const char *member)
{
    c->source = source;
    c->member = member;
    c->index = 0;
    c->line_no = 0;
    c->line_len = 0;
    c->rec_len = 0;
}

/* Hashes the record and calls the callback with the next index. @return the
 * callback's result. */
static int emit(corpus_cutter *c, const unsigned char *data, size_t len)
{
    corpus_record r = {
        .source = c->source, .member = c->member, .index = c->index,
        .hash = XXH3_64bits(data, len), .data = data, .len = len,
    };
    c->index++;
    return c->fn(c->ctx, &r);
}

/* Appends to one of c's buffers, refusing records over CORPUS_MAX_RECORD. */
static int append(const corpus_cutter *c, unsigned char **buf, size_t *len, size_t *cap,
                  const unsigned char *data, size_t n)
{
    if (n > CORPUS_MAX_RECORD - 1 - *len) {
        if (c->member[0])
            return err_set("%s: %s: record longer than %zu bytes", c->source, c->member, CORPUS_MAX_RECORD - 1);
        return err_set("%s: record longer than %zu bytes", c->source, CORPUS_MAX_RECORD - 1);
    }
    if (mem_reserve((void **)buf, cap, *len + n + 1, 1, "corpus record") < 0)
        return -1;
    memcpy(*buf + *len, data, n);
    *len += n;
    return 0;
}

static int is_blank(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n' && s[i] != '\v' && s[i] != '\f')
            return 0;
    return 1;
}

/* Delivers the paragraph / fortune record built so far without its final
 * line ending, unless it is only whitespace, and empties the record buffer. */
static int flush_block(corpus_cutter *c)
{
    size_t n = c->rec_len;
    if (n > 0 && c->rec[n - 1] == '\n') {
        n--;
        if (n > 0 && c->rec[n - 1] == '\r')
            n--;
    }
    c->rec_len = 0;
    if (is_blank(c->rec, n))
        return 0;
    return emit(c, c->rec, n);
}

/* Appends a non-separator line and its "\n" to the record being built. */
static int add_line(corpus_cutter *c, const unsigned char *s, size_t n)
{
    TRY(append(c, &c->rec, &c->rec_len, &c->rec_cap, s, n));
    return append(c, &c->rec, &c->rec_len, &c->rec_cap, (const unsigned char *)"\n", 1);
}

/* One jsonl line: its field's value, when not empty, is the next record; a
 * bad line is an error naming source, member and 1-based line number. */
static int jsonl_line(corpus_cutter *c, const unsigned char *s, size_t n)
{
    corpus_jsonl_value value;
    int found = corpus_jsonl_field(s, n, c->spec.field, &value);
    if (found < 0) {
        unsigned long long line_no = (unsigned long long)c->line_no;
        if (c->member[0])
            return err_wrap("%s: %s: line %llu", c->source, c->member, line_no);
        return err_wrap("%s: line %llu", c->source, line_no);
    }
    if (found == 0)
        return 0;
    int rc = value.len > 0 ? emit(c, value.data, value.len) : 0;
    corpus_jsonl_release(&value);
    return rc;
}

/* One complete line without its "\n" (the last line of a member may lack one). */
static int on_line(corpus_cutter *c, const unsigned char *s, size_t n)
{
    c->line_no++;
    switch (c->spec.mode) {
    case RECORDS_LINE:
        if (n > 0 && s[n - 1] == '\r')
            n--;
        return n > 0 ? emit(c, s, n) : 0;
    case RECORDS_JSONL:
        return jsonl_line(c, s, n);
    case RECORDS_PARAGRAPH:
        return is_blank(s, n) ? flush_block(c) : add_line(c, s, n);
    case RECORDS_FORTUNE:
        if ((n == 1 && s[0] == '%') || (n == 2 && s[0] == '%' && s[1] == '\r'))
            return flush_block(c);
        return add_line(c, s, n);
    case RECORDS_FILE:
        break;
    }
    return err_set("%s: internal error: bad record mode", c->source);
}

int corpus_cutter_feed(corpus_cutter *c, const unsigned char *data, size_t len)
{
    if (c->spec.mode == RECORDS_FILE)
        return append(c, &c->rec, &c->rec_len, &c->rec_cap, data, len);
    while (len > 0) {
        const unsigned char *nl = memchr(data, '\n', len);
        if (!nl)
            return append(c, &c->line, &c->line_len, &c->line_cap, data, len);
        size_t n = (size_t)(nl - data);
        if (c->line_len == 0) {
            TRY(on_line(c, data, n));
        } else {
            TRY(append(c, &c->line, &c->line_len, &c->line_cap, data, n));
            size_t full = c->line_len;
            c->line_len = 0;
            TRY(on_line(c, c->line, full));
        }
        data += n + 1;
        len -= n + 1;
    }
    return 0;
}

int corpus_cutter_finish(corpus_cutter *c)
{
    if (c->spec.mode == RECORDS_FILE) {
        size_t n = c->rec_len;
        c->rec_len = 0;
        return n > 0 ? emit(c, c->rec, n) : 0;
    }
    if (c->line_len > 0) {
        size_t n = c->line_len;
        c->line_len = 0;
        TRY(on_line(c, c->line, n));
    }
    if (c->spec.mode == RECORDS_PARAGRAPH || c->spec.mode == RECORDS_FORTUNE)
        return flush_block(c);
    return 0;
}
