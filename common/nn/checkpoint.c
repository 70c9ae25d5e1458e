/* checkpoint: reader and writer of schemas/checkpoint.md.
 *
 * Writing streams the sections through an atomic_file while an XXH3 state
 * hashes them, then appends the hash. Reading checks the fixed header
 * first, computes the exact file size the header implies (overflow-checked,
 * every length compared with the real file size before it is used), and only
 * then allocates and reads each section, hashing as it goes. Numbers are
 * little-endian on disk; this build stores floats by memory copy and so
 * refuses big-endian hosts rather than write a different format. */
#include "nn/checkpoint.h"

#include "base/bytes.h"
#include "base/err.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "base/output_path.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#define CKPT_MAGIC "W2SCKPT\0"
#define CKPT_VERSION 1u
#define CKPT_HEADER 72
#define CKPT_TRAILER 8
#define CKPT_FLAG_ADAM 1u

static int host_is_little_endian(void)
{
    uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void put_config(unsigned char *p, const model_config *c)
{
    bytes_put_u32(p, (uint32_t)c->vocab);
    bytes_put_u32(p + 4, (uint32_t)c->layers);
    bytes_put_u32(p + 8, (uint32_t)c->heads);
    bytes_put_u32(p + 12, (uint32_t)c->channels);
    bytes_put_u32(p + 16, (uint32_t)c->seq_len);
}

static void get_config(const unsigned char *p, model_config *c)
{
    c->vocab = (int32_t)bytes_get_u32(p);
    c->layers = (int32_t)bytes_get_u32(p + 4);
    c->heads = (int32_t)bytes_get_u32(p + 8);
    c->channels = (int32_t)bytes_get_u32(p + 12);
    c->seq_len = (int32_t)bytes_get_u32(p + 16);
}

uint64_t checkpoint_hash(const model_config *cfg, const float *params)
{
    unsigned char head[20];
    put_config(head, cfg);
    XXH3_state_t *st = XXH3_createState();
    if (!st) /* cannot happen short of OOM; hash the config alone then */
        return XXH3_64bits(head, sizeof head);
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, head, sizeof head);
    XXH3_64bits_update(st, params, model_config_num_params(cfg) * sizeof(float));
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

/* Writes len bytes to af and into the running hash. */
static int emit(atomic_file *af, XXH3_state_t *st, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    XXH3_64bits_update(st, data, len);
    return atomic_file_write(af, data, len);
}

int checkpoint_write(const char *path, const checkpoint *ck)
{
    return checkpoint_write_locked(path, ck, NULL);
}

int checkpoint_has_magic(const char *path)
{
    return output_path_starts_with(path, CKPT_MAGIC, 8);
}

int checkpoint_write_locked(const char *path, const checkpoint *ck, filelock *lock)
{
    if (!host_is_little_endian())
        return err_set("%s: checkpoints are little-endian; big-endian hosts are not supported", path);
    if (model_config_check(&ck->config) < 0)
        return err_wrap("%s", path);
    if (!ck->params || (ck->tokenizer_len && !ck->tokenizer) ||
        (ck->train_state_len && !ck->train_state))
        return err_set("%s: checkpoint to write lacks its parameters or a blob", path);
    int adam = ck->adam_m && ck->adam_v;
    size_t np = model_config_num_params(&ck->config);

    unsigned char head[CKPT_HEADER] = {0};
    memcpy(head, CKPT_MAGIC, 8);
    bytes_put_u32(head + 8, CKPT_VERSION);
    bytes_put_u32(head + 12, adam ? CKPT_FLAG_ADAM : 0u);
    put_config(head + 16, &ck->config);
    bytes_put_u64(head + 40, ck->tokenizer_len);
    bytes_put_u64(head + 48, np);
    bytes_put_u64(head + 56, (uint64_t)(int64_t)ck->step);
    bytes_put_u64(head + 64, ck->train_state_len);

    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return err_set("%s: out of memory for the checksum state", path);
    XXH3_64bits_reset(st);
    atomic_file af = {0};
    int rc = -1;
    if (atomic_file_open(&af, path) < 0)
        goto cleanup;
    if (emit(&af, st, head, sizeof head) < 0 ||
        emit(&af, st, ck->tokenizer, ck->tokenizer_len) < 0 ||
        emit(&af, st, ck->params, np * sizeof(float)) < 0 ||
        (adam && (emit(&af, st, ck->adam_m, np * sizeof(float)) < 0 ||
                  emit(&af, st, ck->adam_v, np * sizeof(float)) < 0)) ||
        emit(&af, st, ck->train_state, ck->train_state_len) < 0) {
        atomic_file_abort(&af);
        goto cleanup;
    }
    unsigned char sum[CKPT_TRAILER];
    bytes_put_u64(sum, XXH3_64bits_digest(st));
    if (atomic_file_write(&af, sum, sizeof sum) < 0) {
        atomic_file_abort(&af);
        goto cleanup;
    }
    rc = atomic_file_commit_locked(&af, lock, "train");
cleanup:
    XXH3_freeState(st);
    return rc;
}

/* Reads exactly len bytes into dst and the hash. */
static int take(FILE *fp, const char *path, XXH3_state_t *st, void *dst, size_t len)
{
    if (len == 0)
        return 0;
    if (fread(dst, 1, len, fp) != len)
        return ferror(fp) ? err_errno(path, "read error") : err_set("%s: truncated", path);
    XXH3_64bits_update(st, dst, len);
    return 0;
}

/* Validates the header against the real file size; sets the section sizes.
 * Every length is bounded by the file size before any arithmetic. */
static int check_header(const char *path, const unsigned char *h, uint64_t file_size,
                        checkpoint *ck, int *adam, uint64_t *np)
{
    if (memcmp(h, CKPT_MAGIC, 8) != 0)
        return err_set("%s: bad magic (not a w2s checkpoint)", path);
    uint32_t version = bytes_get_u32(h + 8);
    if (version != CKPT_VERSION)
        return err_set("%s: unsupported checkpoint format version %u (this build reads %u)", path,
                       version, CKPT_VERSION);
    uint32_t flags = bytes_get_u32(h + 12);
    if (flags & ~CKPT_FLAG_ADAM)
        return err_set("%s: unknown header flags 0x%x", path, flags);
    *adam = (flags & CKPT_FLAG_ADAM) != 0;
    if (bytes_get_u32(h + 36) != 0)
        return err_set("%s: reserved header field is not zero", path);
    get_config(h + 16, &ck->config);
    if (model_config_check(&ck->config) < 0)
        return err_wrap("%s: invalid config", path);
    *np = bytes_get_u64(h + 48);
    if (*np != model_config_num_params(&ck->config))
        return err_set("%s: parameter count %llu does not match the config (%zu)", path,
                       (unsigned long long)*np, model_config_num_params(&ck->config));
    uint64_t tok = bytes_get_u64(h + 40), ts = bytes_get_u64(h + 64);
    int64_t step = (int64_t)bytes_get_u64(h + 56);
    if (step < 0 || (uint64_t)step > (uint64_t)(~0UL >> 1))
        return err_set("%s: step %lld out of range", path, (long long)step);
    ck->step = (long)step;
    /* np <= 2^34 after model_config_check, so 3 * 4 * np cannot overflow. */
    uint64_t fixed = CKPT_HEADER + CKPT_TRAILER + 4 * *np * (*adam ? 3 : 1);
    if (tok > file_size || ts > file_size || fixed > file_size ||
        fixed + tok + ts > file_size)
        return err_set("%s: truncated (%llu bytes, the header needs more)", path,
                       (unsigned long long)file_size);
    if (fixed + tok + ts < file_size)
        return err_set("%s: %llu bytes of trailing garbage", path,
                       (unsigned long long)(file_size - fixed - tok - ts));
    ck->tokenizer_len = (size_t)tok;
    ck->train_state_len = (size_t)ts;
    return 0;
}

int checkpoint_read(const char *path, checkpoint *ck)
{
    memset(ck, 0, sizeof *ck);
    if (!host_is_little_endian())
        return err_set("%s: checkpoints are little-endian; big-endian hosts are not supported", path);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return err_errno(path, "cannot open checkpoint");
    XXH3_state_t *st = NULL;
    int rc = -1;
    struct stat sb;
    if (fstat(fileno(fp), &sb) < 0) {
        err_errno(path, "cannot stat checkpoint");
        goto cleanup;
    }
    if (!S_ISREG(sb.st_mode)) {
        err_set("%s: not a regular file", path);
        goto cleanup;
    }
    uint64_t file_size = (uint64_t)sb.st_size;
    unsigned char head[CKPT_HEADER];
    if (file_size < CKPT_HEADER + CKPT_TRAILER) {
        if (file_size >= 8 && fread(head, 1, 8, fp) == 8 && memcmp(head, CKPT_MAGIC, 8) != 0)
            err_set("%s: bad magic (not a w2s checkpoint)", path);
        else
            err_set("%s: truncated (%llu bytes, a checkpoint has at least %d)", path,
                    (unsigned long long)file_size, CKPT_HEADER + CKPT_TRAILER);
        goto cleanup;
    }
    if (fread(head, 1, sizeof head, fp) != sizeof head) {
        err_errno(path, "read error");
        goto cleanup;
    }
    int adam = 0;
    uint64_t np = 0;
    if (check_header(path, head, file_size, ck, &adam, &np) < 0)
        goto cleanup;
    if (!(st = XXH3_createState())) {
        err_set("%s: out of memory for the checksum state", path);
        goto cleanup;
    }
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, head, sizeof head);
    size_t pbytes = (size_t)np * sizeof(float);
    if ((ck->tokenizer_len && !(ck->tokenizer = mem_alloc(ck->tokenizer_len, path))) ||
        !(ck->params = mem_alloc_big(pbytes, path)) ||
        (adam && (!(ck->adam_m = mem_alloc_big(pbytes, path)) ||
                  !(ck->adam_v = mem_alloc_big(pbytes, path)))) ||
        (ck->train_state_len && !(ck->train_state = mem_alloc(ck->train_state_len, path))))
        goto cleanup;
    unsigned char sum[CKPT_TRAILER];
    if (take(fp, path, st, ck->tokenizer, ck->tokenizer_len) < 0 ||
        take(fp, path, st, ck->params, pbytes) < 0 ||
        (adam && (take(fp, path, st, ck->adam_m, pbytes) < 0 ||
                  take(fp, path, st, ck->adam_v, pbytes) < 0)) ||
        take(fp, path, st, ck->train_state, ck->train_state_len) < 0)
        goto cleanup;
    if (fread(sum, 1, sizeof sum, fp) != sizeof sum) {
        err_set("%s: truncated before the checksum", path);
        goto cleanup;
    }
    if (bytes_get_u64(sum) != XXH3_64bits_digest(st)) {
        err_set("%s: checksum mismatch (file corrupt)", path);
        goto cleanup;
    }
    ck->hash = checkpoint_hash(&ck->config, ck->params);
    rc = 0;
cleanup:
    XXH3_freeState(st);
    fclose(fp);
    if (rc < 0)
        checkpoint_free(ck);
    return rc;
}

void checkpoint_free(checkpoint *ck)
{
    free(ck->tokenizer);
    mem_free_big(ck->params);
    mem_free_big(ck->adam_m);
    mem_free_big(ck->adam_v);
    free(ck->train_state);
    memset(ck, 0, sizeof *ck);
}
