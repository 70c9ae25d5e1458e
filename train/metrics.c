/* metrics: JSON lines of training steps; see metrics.h. */
#include "metrics.h"

#include "base/err.h"
#include "base/json_out.h"
#include "base/mem.h"
#include "base/output_path.h"

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

int metrics_file_is_ours(const char *path)
{
    static const char first_key[] = "{\"step\":";   /* json_out keeps the keys' order */
    return output_path_starts_with(path, first_key, sizeof first_key - 1);
}

int metrics_write(metrics *mt, const metrics_step *s)
{
    json_out j;
    json_out_begin(&j);
    json_out_int(&j, "step", s->step);
    if (s->has_lm)
        json_out_real(&j, "lm_loss", s->lm_loss);
    if (s->has_kd)
        json_out_real(&j, "kd_loss", s->kd_loss);
    json_out_real(&j, "loss", s->loss);
    json_out_real(&j, "lr", s->lr);
    json_out_real(&j, "grad_norm", s->grad_norm);
    json_out_real(&j, "tokens_per_s", s->tokens_per_s);
    if (s->has_eval)
        json_out_real(&j, "eval_loss", s->eval_loss);
    return json_out_write(&j, mt->fp, mt->path, "cannot write metrics");
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
