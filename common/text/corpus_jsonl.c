/* corpus_jsonl: the jsonl:FIELD record mode, one JSON object per line parsed
 * with jansson; the record is the decoded string value of FIELD. */
#include "text/corpus_cut.h"

#include <jansson.h>
#include <stdio.h>

#include "base/err.h"

static int line_error(const corpus_cutter *c, uint64_t line_no, const char *what)
{
    if (c->member[0])
        return err_set("%s: %s: line %llu: %s", c->source, c->member, (unsigned long long)line_no, what);
    return err_set("%s: line %llu: %s", c->source, (unsigned long long)line_no, what);
}

int corpus_jsonl_line(corpus_cutter *c, const unsigned char *line, size_t len, uint64_t line_no)
{
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
        i++;
    if (i == len)
        return 0;
    json_error_t jerr;
    /* JSON_ALLOW_NUL: "\u0000" is a valid escape and the record keeps the byte. */
    json_t *root = json_loadb((const char *)line, len, JSON_ALLOW_NUL, &jerr);
    if (!root) {
        char what[256];
        snprintf(what, sizeof what, "invalid JSON (column %d): %s", jerr.column, jerr.text);
        return line_error(c, line_no, what);
    }
    int rc;
    json_t *value = json_is_object(root) ? json_object_get(root, c->spec.field) : NULL;
    if (!json_is_object(root)) {
        rc = line_error(c, line_no, "not a JSON object");
    } else if (!json_is_string(value)) {
        char what[192];
        snprintf(what, sizeof what, "field \"%s\" %s", c->spec.field, value ? "is not a string" : "missing");
        rc = line_error(c, line_no, what);
    } else {
        size_t n = json_string_length(value);
        rc = n > 0 ? corpus_cutter_emit(c, (const unsigned char *)json_string_value(value), n) : 0;
    }
    json_decref(root);
    return rc;
}
