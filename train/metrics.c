/* metrics: JSON lines of training steps; see metrics.h. */
#include "metrics.h"

#include "base/err.h"
#include "base/mem.h"

#include <jansson.h>
#include <stdlib.h>

struct metrics {
    FILE *fp;
    char *path;
};

metrics *metrics_open(const char *path, int append)
{
    metrics *mt = mem_calloc(1, sizeof *mt, "metrics");
    if (!mt)
        return NULL;
    mt->path = mem_strdup(path);
    mt->fp = mt->path ? fopen(path, append ? "a" : "w") : NULL;
    if (!mt->fp) {
        if (mt->path)
            err_errno(path, "cannot open metrics file");
        free(mt->path);
        free(mt);
        return NULL;
    }
    return mt;
}

static void set_real(json_t *o, const char *key, double v)
{
    json_object_set_new(o, key, json_real(v));
}

int metrics_write(metrics *mt, const metrics_step *s)
{
    json_t *o = json_object();
    if (!o)
        return err_set("%s: out of memory", mt->path);
    json_object_set_new(o, "step", json_integer(s->step));
    if (s->has_lm)
        set_real(o, "lm_loss", s->lm_loss);
    if (s->has_kd)
        set_real(o, "kd_loss", s->kd_loss);
    set_real(o, "loss", s->loss);
    set_real(o, "lr", s->lr);
    set_real(o, "grad_norm", s->grad_norm);
    set_real(o, "tokens_per_s", s->tokens_per_s);
    if (s->has_eval)
        set_real(o, "eval_loss", s->eval_loss);
    int rc = json_dumpf(o, mt->fp, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(o);
    if (rc < 0 || fputc('\n', mt->fp) == EOF || fflush(mt->fp) == EOF)
        return err_errno(mt->path, "cannot write metrics");
    return 0;
}

int metrics_close(metrics *mt)
{
    if (!mt)
        return 0;
    int rc = 0;
    if (fclose(mt->fp) == EOF)
        rc = err_errno(mt->path, "cannot close metrics file");
    free(mt->path);
    free(mt);
    return rc;
}
