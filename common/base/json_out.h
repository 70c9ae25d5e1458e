/* json_out: the one-line JSON objects the programs print -- the --json
 * summaries on stdout and the lines of a --metrics file.
 *
 * One writer gives them one form: compact (no spaces), keys in the order
 * they were added, reals with 9 significant digits (enough to tell two
 * floats apart, and what readers of the metrics files expect), one object
 * per line, flushed. Built with jansson, so strings are escaped properly.
 *
 * Building never fails on the spot: a value that cannot be stored (out of
 * memory, a NaN or infinite real, text that is not UTF-8) marks the object
 * failed, and json_out_write reports it, naming the key. */
#ifndef W2S_JSON_OUT_H
#define W2S_JSON_OUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct json_t;

typedef struct json_out {
    struct json_t *root;     /* the object; NULL when it could not be made */
    struct json_t *cur;      /* where values go: root, or the open nested object */
    const char *bad_key;     /* the first key whose value could not be stored */
} json_out;

/* Starts an empty object. */
void json_out_begin(json_out *j);

void json_out_int(json_out *j, const char *key, int64_t value);
/* value must be finite (JSON has no NaN or infinity). */
void json_out_real(json_out *j, const char *key, double value);
/* value: UTF-8 text, or NULL for null. */
void json_out_string(json_out *j, const char *key, const char *value);

/* Opens a nested object under key; the values up to json_out_end_object go
 * into it. One level deep. */
void json_out_begin_object(json_out *j, const char *key);
void json_out_end_object(json_out *j);

/* Writes the object and a newline to fp and flushes, then releases the
 * object. name and what make the message: "<name>: <what>: <problem>",
 * e.g. "stdout: cannot write the summary: No space left on device".
 * @return 0, or -1 + message (a value that could not be stored, or a write
 * error). */
int json_out_write(json_out *j, FILE *fp, const char *name, const char *what);

#endif
