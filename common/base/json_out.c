/* json_out: one-line JSON objects through jansson; see json_out.h. */
#include "base/json_out.h"

#include "base/err.h"

#include <jansson.h>

void json_out_begin(json_out *j)
{
    j->root = j->cur = json_object();
    j->bad_key = j->root ? NULL : "(the object)";
}

/* Stores value under key in the open object; set_new takes value's
 * reference, and a NULL value (jansson could not make it) fails. */
static void put(json_out *j, const char *key, json_t *value)
{
    if (j->bad_key) {
        json_decref(value);
        return;
    }
    if (!value || json_object_set_new(j->cur, key, value) < 0)
        j->bad_key = key;
}

void json_out_int(json_out *j, const char *key, int64_t value)
{
    put(j, key, json_integer((json_int_t)value));
}

void json_out_real(json_out *j, const char *key, double value)
{
    put(j, key, json_real(value));
}

void json_out_string(json_out *j, const char *key, const char *value)
{
    put(j, key, value ? json_string(value) : json_null());
}

void json_out_begin_object(json_out *j, const char *key)
{
    json_t *child = json_object();
    put(j, key, child);
    if (!j->bad_key)
        j->cur = child;
}

void json_out_end_object(json_out *j)
{
    j->cur = j->root;
}

int json_out_write(json_out *j, FILE *fp, const char *name, const char *what)
{
    int rc = 0;
    if (j->bad_key)
        rc = err_set("%s: %s: the value of \"%s\" cannot be stored (out of memory, a number that "
                     "is not finite or text that is not UTF-8)", name, what, j->bad_key);
    else if (json_dumpf(j->root, fp, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) < 0 ||
             fputc('\n', fp) == EOF || fflush(fp) == EOF)
        rc = err_errno(name, what);
    json_decref(j->root);
    j->root = j->cur = NULL;
    return rc;
}
