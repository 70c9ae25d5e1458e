/* corpus_jsonl: one JSON object per line parsed with jansson, and the decoded
 * string value of one of its members; see corpus_jsonl.h. */
#include "text/corpus_jsonl.h"

#include <jansson.h>

#include "base/err.h"

int corpus_jsonl_field(const unsigned char *line, size_t len, const char *field,
                       corpus_jsonl_value *out)
{
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
        i++;
    if (i == len)
        return 0;
    json_error_t jerr;
    /* JSON_ALLOW_NUL: "\u0000" is a valid escape and the record keeps the byte. */
    json_t *root = json_loadb((const char *)line, len, JSON_ALLOW_NUL, &jerr);
    if (!root)
        return err_set("invalid JSON (column %d): %s", jerr.column, jerr.text);
    json_t *value = json_is_object(root) ? json_object_get(root, field) : NULL;
    if (json_is_string(value)) {
        out->data = (const unsigned char *)json_string_value(value);
        out->len = json_string_length(value);
        out->doc = root;
        return 1;
    }
    if (!json_is_object(root))
        err_set("not a JSON object");
    else
        err_set("field \"%s\" %s", field, value ? "is not a string" : "missing");
    json_decref(root);
    return -1;
}

void corpus_jsonl_release(corpus_jsonl_value *value)
{
    json_decref(value->doc);
    value->doc = NULL;
}
