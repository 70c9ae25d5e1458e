/* train_settings: the settings hash and text of a run and their comparison
 * on resume; see train_settings.h. */
#include "train_settings.h"

#include "base/err.h"
#include "base/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* Appends printf output to a growing string (for the settings fingerprint). */
static int append(char **s, size_t *len, size_t *cap, const char *fmt, ...) W2S_PRINTF(4, 5);
static int append(char **s, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*s ? *s + *len : NULL, *s ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return err_set("settings: formatting failed");
        if (*s && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return 0;
        }
        TRY(mem_reserve((void **)s, cap, *len + (size_t)n + 1, 1, "settings"));
    }
}

/* XXH3 of every option that shapes the trajectory (not threads, evaluation,
 * checkpoint cadence or output), plus the labels' teacher and row count so a
 * database that grew since the checkpoint is noticed. */
int train_settings_hash(const train_run *r, uint64_t *hash)
{
    const train_options *o = r->o;
    char *s = NULL;
    size_t len = 0, cap = 0;
    int rc = append(&s, &len, &cap, "records %d %s|", (int)o->records.mode, o->records.field);
    for (int i = 0; rc == 0 && i < o->n_gt; i++)
        rc = append(&s, &len, &cap, "gt %s|", o->gt[i]);
    if (rc == 0)
        rc = append(&s, &len, &cap,
                    "labels %s|where %s|hard %d|alpha %a|tau %a|tail %d|preset %s|L %d H %d C %d T %d|"
                    "init %s|tokenizer %s|vocab %d|steps %ld|batch %d %d|lr %a|warmup %ld|wd %a|"
                    "clip %a|seed %llu|tok %016llx",
                    o->labels ? o->labels : "", o->labels_where ? o->labels_where : "",
                    o->labels_hard, o->alpha, o->tau, (int)o->kd_tail, o->preset ? o->preset : "",
                    o->layers, o->heads, o->channels, o->seq, o->init ? o->init : "",
                    o->tokenizer ? o->tokenizer : "", o->vocab, r->total_steps, o->batch,
                    o->kd_batch, o->lr, r->warmup, o->weight_decay, o->clip,
                    (unsigned long long)o->seed, (unsigned long long)tok_hash(r->tok));
    if (rc == 0 && o->precision != MODEL_FP32) /* absent in fp32, as before it existed */
        rc = append(&s, &len, &cap, "|precision %s", model_precision_name(o->precision));
    if (rc == 0 && o->aux_conf > 0)   /* absent when off: older resume states stay valid */
        rc = append(&s, &len, &cap, "|aux %a %ld", o->aux_conf, o->aux_warmup);
    if (rc == 0 && o->kd_loss.kind != KD_LOSS_FKL)   /* likewise absent at the defaults */
        rc = append(&s, &len, &cap, "|kd-loss %d %a %a", (int)o->kd_loss.kind, o->kd_loss.beta,
                    o->kd_loss.skew);
    if (rc == 0 && (o->kd_weight != KD_WEIGHT_NONE || o->kd_min_conf > 0))
        rc = append(&s, &len, &cap, "|kd-weight %d %a", (int)o->kd_weight, o->kd_min_conf);
    if (rc == 0 && r->labels)
        rc = append(&s, &len, &cap, "|teacher %016llx rows %zu",
                    (unsigned long long)label_reader_meta(r->labels)->teacher_hash,
                    label_reader_rows(r->labels));
    if (rc == 0)
        *hash = XXH3_64bits(s, len);
    free(s);
    return rc;
}

/* The shortest %g form that reads back as v, so a setting shows as given. */
static void format_real(char *buf, size_t size, double v)
{
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* What the run depends on, one "name\tvalue" line each, kept in the resume
 * state (train_state.h) so a resume names whatever differs: the settings
 * that shape the trajectory (as settings_hash) and the content hashes of
 * --gt, --init and the labels. A name ending in " content" holds a hash. */
int train_settings_text(const train_run *r, char **text)
{
    const train_options *o = r->o;
    char *s = NULL;
    size_t len = 0, cap = 0;
    char alpha[32], tau[32], lr[32], wd[32], clip[32];
    format_real(alpha, sizeof alpha, o->alpha);
    format_real(tau, sizeof tau, o->tau);
    format_real(lr, sizeof lr, o->lr);
    format_real(wd, sizeof wd, o->weight_decay);
    format_real(clip, sizeof clip, o->clip);
    static const char *const modes[] = {"file", "line", "paragraph", "fortune", "jsonl"};
    int rc = append(&s, &len, &cap, "--records\t%s%s%s\n--gt\t", modes[o->records.mode],
                    o->records.mode == RECORDS_JSONL ? ":" : "", o->records.field);
    for (int i = 0; rc == 0 && i < o->n_gt; i++)
        rc = append(&s, &len, &cap, "%s%s", i ? " " : "", o->gt[i]);
    for (int i = 0; rc == 0 && r->gt_content && i < o->n_gt; i++)
        rc = append(&s, &len, &cap, "\n--gt %s content\thash %016llx", o->gt[i],
                    (unsigned long long)r->gt_content[i]);
    if (rc == 0)
        rc = append(&s, &len, &cap,
                    "\n--labels\t%s\n--labels-where\t%s\n--labels-hard\t%d\n--alpha\t%s\n"
                    "--tau\t%s\n--kd-tail\t%s\n--preset\t%s\n--layers\t%d\n--heads\t%d\n"
                    "--channels\t%d\n--seq\t%d\n--init\t%s\n--tokenizer\t%s\n--vocab\t%d\n"
                    "steps\t%ld\n--batch\t%d\n--kd-batch\t%d\n--lr\t%s\nwarm-up steps\t%ld\n"
                    "--weight-decay\t%s\n--clip\t%s\n--seed\t%llu\n--aux-conf\t%g\n"
                    "--aux-warmup\t%ld\ntokenizer\t%016llx\n",
                    o->labels ? o->labels : "", o->labels_where ? o->labels_where : "",
                    o->labels_hard, alpha, tau, kd_tail_name(o->kd_tail), o->preset ? o->preset : "",
                    o->layers, o->heads, o->channels, o->seq, o->init ? o->init : "",
                    o->tokenizer ? o->tokenizer : "", o->vocab, r->total_steps, o->batch,
                    o->kd_batch, lr, r->warmup, wd, clip, (unsigned long long)o->seed, o->aux_conf,
                    o->aux_conf > 0 ? o->aux_warmup : 0, (unsigned long long)tok_hash(r->tok));
    if (rc == 0)
        rc = append(&s, &len, &cap, "--precision\t%s\n", model_precision_name(o->precision));
    if (rc == 0 && o->kd_loss.kind != KD_LOSS_FKL)
        rc = append(&s, &len, &cap, "--kd-loss\t%s beta %g skew %g\n", kd_loss_kind_name(o->kd_loss.kind),
                    o->kd_loss.beta, o->kd_loss.skew);
    if (rc == 0 && (o->kd_weight != KD_WEIGHT_NONE || o->kd_min_conf > 0))
        rc = append(&s, &len, &cap, "--kd-weight\t%s min-conf %g\n", kd_weight_name(o->kd_weight),
                    o->kd_min_conf);
    if (rc == 0 && o->init)
        rc = append(&s, &len, &cap, "--init %s content\thash %016llx\n", o->init,
                    (unsigned long long)r->init_hash);
    if (rc == 0 && r->labels) {
        const labels_meta *m = label_reader_meta(r->labels);
        rc = append(&s, &len, &cap, "--labels %s content\tteacher %016llx tokenizer %016llx rows %zu\n",
                    o->labels, (unsigned long long)m->teacher_hash,
                    (unsigned long long)m->tokenizer_hash, label_reader_rows(r->labels));
    }
    if (rc < 0) {
        free(s);
        return -1;
    }
    *text = s;
    return 0;
}

/* One "name\tvalue" line of a settings text. */
typedef struct setting { const char *name, *value; int name_len, value_len; } setting;

/* Reads the line at *cursor into *st and moves past it. @return 0 at the end. */
static int next_setting(const char **cursor, setting *st)
{
    while (**cursor) {
        const char *line = *cursor, *end = strchr(line, '\n');
        if (!end)
            end = line + strlen(line);
        *cursor = *end ? end + 1 : end;
        const char *tab = memchr(line, '\t', (size_t)(end - line));
        if (tab) {
            *st = (setting){line, tab + 1, (int)(tab - line), (int)(end - tab - 1)};
            return 1;
        }
    }
    return 0;
}

static int is_content(const setting *st)
{
    return st->name_len > 8 && !memcmp(st->name + st->name_len - 8, " content", 8);
}

/* Appends to *msg one "; <what differs>" per setting of run that now lacks
 * or holds otherwise, and per setting only now has (content hashes of
 * inputs only one run reads are left out: their paths already differ). */
static int diff_settings(const char *run, const char *now, char **msg, size_t *len, size_t *cap)
{
    setting a, b;
    for (const char *c = run; next_setting(&c, &a);) {
        int found = 0, same = 0;
        for (const char *d = now; !found && next_setting(&d, &b);)
            if (b.name_len == a.name_len && !memcmp(a.name, b.name, (size_t)a.name_len)) {
                found = 1;
                same = b.value_len == a.value_len && !memcmp(a.value, b.value, (size_t)a.value_len);
            }
        if (same || (!found && is_content(&a)))
            continue;
        if (!found)
            TRY(append(msg, len, cap, "; %.*s: %.*s in the run, not set now", a.name_len, a.name,
                       a.value_len, a.value));
        else if (is_content(&a))
            TRY(append(msg, len, cap, "; %.*s: content changed since the run started (%.*s, now %.*s)",
                       a.name_len - 8, a.name, a.value_len, a.value, b.value_len, b.value));
        else
            TRY(append(msg, len, cap, "; %.*s: %.*s in the run, %.*s now", a.name_len, a.name,
                       a.value_len ? a.value_len : 6, a.value_len ? a.value : "(none)",
                       b.value_len ? b.value_len : 6, b.value_len ? b.value : "(none)"));
    }
    for (const char *d = now; next_setting(&d, &b);) {
        int found = 0;
        for (const char *c = run; !found && next_setting(&c, &a);)
            found = b.name_len == a.name_len && !memcmp(a.name, b.name, (size_t)a.name_len);
        if (!found && !is_content(&b))
            TRY(append(msg, len, cap, "; %.*s: not set in the run, %.*s now", b.name_len, b.name,
                       b.value_len, b.value));
    }
    return 0;
}

/* Refuses a resume whose recorded settings (version 2 state) or settings
 * hash (version 1) differ from this run's, naming every difference. */
int train_settings_check_resume(const train_run *r, const char *now, uint64_t hash)
{
    const char *run = r->state.settings;
    if (!run) {
        if (hash == r->state.settings_hash)
            return 0;
        return err_set("%s: written by a run with other settings (data, labels, model, objective, "
                       "steps, batch, lr or seed differ); rerun without --resume to start over",
                       r->resume_path);
    }
    char *msg = NULL;
    size_t len = 0, cap = 0;
    int rc = diff_settings(run, now, &msg, &len, &cap);
    if (rc == 0 && len)
        rc = err_set("%s: the run differs from the one that wrote it: %s; rerun without --resume "
                     "to start over", r->resume_path, msg + 2);
    free(msg);
    return rc;
}

