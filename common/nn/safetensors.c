/* safetensors: mapped, fully validated reader and streaming F32 writer of
 * schemas/safetensors.md; see safetensors.h.
 *
 * Workload: a model file of a few MB to a few GB, read once at import; the
 * header (a few hundred tensors) is parsed with jansson and checked in full
 * before any tensor byte is touched. Values are decoded with bytes.h, so the
 * code is the same on any host byte order. */
#include "nn/safetensors.h"

#include "base/bytes.h"
#include "base/err.h"
#include "base/mem.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct { const char *name; unsigned bits; } dtypes[ST_NUM_DTYPES] = {
    [ST_BOOL] = {"BOOL", 8},       [ST_U8] = {"U8", 8},           [ST_I8] = {"I8", 8},
    [ST_F8_E5M2] = {"F8_E5M2", 8}, [ST_F8_E4M3] = {"F8_E4M3", 8}, [ST_F8_E8M0] = {"F8_E8M0", 8},
    [ST_I16] = {"I16", 16},        [ST_U16] = {"U16", 16},        [ST_F16] = {"F16", 16},
    [ST_BF16] = {"BF16", 16},      [ST_I32] = {"I32", 32},        [ST_U32] = {"U32", 32},
    [ST_F32] = {"F32", 32},        [ST_C64] = {"C64", 64},        [ST_F64] = {"F64", 64},
    [ST_I64] = {"I64", 64},        [ST_U64] = {"U64", 64},        [ST_F4] = {"F4", 4},
    [ST_F6_E2M3] = {"F6_E2M3", 6}, [ST_F6_E3M2] = {"F6_E3M2", 6},
};

const char *safetensors_dtype_name(safetensors_dtype dtype)
{
    return (unsigned)dtype < ST_NUM_DTYPES ? dtypes[dtype].name : "?";
}

struct safetensors_file {
    char *path;
    unsigned char *map;
    size_t map_len;
    json_t *header;              /* owns the tensor names and the metadata */
    json_t *metadata;            /* borrowed from header, or NULL */
    safetensors_tensor *tensors; /* sorted by (begin, end) */
    size_t n;
};

const char *safetensors_path(const safetensors_file *f) { return f->path; }
size_t safetensors_count(const safetensors_file *f) { return f->n; }

const safetensors_tensor *safetensors_at(const safetensors_file *f, size_t i)
{
    return i < f->n ? &f->tensors[i] : NULL;
}

const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const char *safetensors_metadata(const safetensors_file *f, const char *key)
{
    return f->metadata ? json_string_value(json_object_get(f->metadata, key)) : NULL;
}

void safetensors_close(safetensors_file *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->map_len);
    json_decref(f->header);
    free(f->tensors);
    free(f->path);
    free(f);
}

/* A non-negative JSON integer. */
static int get_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int check_metadata(const char *path, json_t *meta)
{
    if (!json_is_object(meta))
        return err_set("%s: __metadata__ is not an object of strings", path);
    const char *key;
    json_t *value;
    json_object_foreach(meta, key, value)
        if (!json_is_string(value))
            return err_set("%s: __metadata__ '%s' is not a string (safetensors metadata maps "
                           "strings to strings)", path, key);
    return 0;
}

/* Fills t from one header entry; data_size bounds its span. */
static int parse_tensor(const char *path, const char *name, json_t *entry, uint64_t data_size,
                        safetensors_tensor *t)
{
    if (!json_is_object(entry))
        return err_set("%s: tensor '%s': header entry is not an object", path, name);
    const char *key;
    json_t *value;
    json_object_foreach(entry, key, value)
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 &&
            strcmp(key, "data_offsets") != 0)
            return err_set("%s: tensor '%s': unknown key '%s' (expected dtype, shape, data_offsets)",
                           path, name, key);
    t->name = name;
    const char *dtype = json_string_value(json_object_get(entry, "dtype"));
    json_t *shape = json_object_get(entry, "shape"), *offsets = json_object_get(entry, "data_offsets");
    if (!dtype || !json_is_array(shape) || !json_is_array(offsets))
        return err_set("%s: tensor '%s': needs a string dtype, a shape array and a data_offsets array",
                       path, name);
    t->dtype = ST_NUM_DTYPES;
    for (int d = 0; d < ST_NUM_DTYPES; d++)
        if (strcmp(dtype, dtypes[d].name) == 0)
            t->dtype = (safetensors_dtype)d;
    if (t->dtype == ST_NUM_DTYPES)
        return err_set("%s: tensor '%s': unknown dtype '%s'", path, name, dtype);
    size_t ndim = json_array_size(shape);
    if (ndim > SAFETENSORS_MAX_DIMS)
        return err_set("%s: tensor '%s': %zu dimensions (w2s reads at most %d)", path, name, ndim,
                       SAFETENSORS_MAX_DIMS);
    t->ndim = (int)ndim;
    uint64_t count = 1, bits;
    for (size_t i = 0; i < ndim; i++) {
        if (get_u64(json_array_get(shape, i), &t->shape[i]) < 0)
            return err_set("%s: tensor '%s': shape[%zu] is not a non-negative integer", path, name, i);
        if (__builtin_mul_overflow(count, t->shape[i], &count))
            return err_set("%s: tensor '%s': the shape's element count overflows", path, name);
    }
    t->count = count;
    if (__builtin_mul_overflow(count, (uint64_t)dtypes[t->dtype].bits, &bits))
        return err_set("%s: tensor '%s': the shape's byte size overflows", path, name);
    if (bits % 8)
        return err_set("%s: tensor '%s': %llu elements of %s do not fill whole bytes", path, name,
                       (unsigned long long)count, dtype);
    if (json_array_size(offsets) != 2 || get_u64(json_array_get(offsets, 0), &t->begin) < 0 ||
        get_u64(json_array_get(offsets, 1), &t->end) < 0)
        return err_set("%s: tensor '%s': data_offsets is not [begin, end] of non-negative integers",
                       path, name);
    if (t->begin > t->end)
        return err_set("%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", path, name,
                       (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > data_size)
        return err_set("%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the data "
                       "(%llu bytes after the header)", path, name, (unsigned long long)t->begin,
                       (unsigned long long)t->end, (unsigned long long)data_size);
    if (t->end - t->begin != bits / 8)
        return err_set("%s: tensor '%s': data_offsets span %llu bytes, but %llu elements of %s "
                       "take %llu", path, name, (unsigned long long)(t->end - t->begin),
                       (unsigned long long)count, dtype, (unsigned long long)(bits / 8));
    return 0;
}

static int by_span(const void *a, const void *b)
{
    const safetensors_tensor *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The spans, sorted, must cover [0, data_size) exactly once. */
static int check_tiling(const char *path, const safetensors_tensor *t, size_t n, uint64_t data_size)
{
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].begin < at)
            return err_set("%s: tensors '%s' and '%s' overlap (bytes [%llu, %llu) and [%llu, %llu))",
                           path, t[i - 1].name, t[i].name, (unsigned long long)t[i - 1].begin,
                           (unsigned long long)t[i - 1].end, (unsigned long long)t[i].begin,
                           (unsigned long long)t[i].end);
        if (t[i].begin > at)
            return err_set("%s: %llu bytes before tensor '%s' belong to no tensor (a gap)", path,
                           (unsigned long long)(t[i].begin - at), t[i].name);
        at = t[i].end;
    }
    if (at != data_size)
        return err_set("%s: %llu bytes after the last tensor belong to no tensor", path,
                       (unsigned long long)(data_size - at));
    return 0;
}

static int parse_header(safetensors_file *f, uint64_t header_len)
{
    const char *path = f->path;
    const char *text = (const char *)f->map + 8;
    if (header_len == 0 || text[0] != '{')
        return err_set("%s: the header does not start with '{' (not a safetensors file)", path);
    json_error_t jerr;
    f->header = json_loadb(text, (size_t)header_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!f->header)
        return err_set("%s: the header is not valid JSON: %s (line %d, column %d)", path, jerr.text,
                       jerr.line, jerr.column);
    if (!json_is_object(f->header))
        return err_set("%s: the header is not a JSON object", path);
    uint64_t data_size = f->map_len - 8 - header_len;
    size_t cap = json_object_size(f->header);
    if (!(f->tensors = mem_calloc(cap ? cap : 1, sizeof *f->tensors, path)))
        return -1;
    const char *name;
    json_t *entry;
    json_object_foreach(f->header, name, entry) {
        if (strcmp(name, "__metadata__") == 0) {
            TRY(check_metadata(path, entry));
            f->metadata = entry;
            continue;
        }
        safetensors_tensor *t = &f->tensors[f->n];
        TRY(parse_tensor(path, name, entry, data_size, t));
        t->data = f->map + 8 + header_len + t->begin;
        f->n++;
    }
    qsort(f->tensors, f->n, sizeof *f->tensors, by_span);
    return check_tiling(path, f->tensors, f->n, data_size);
}

safetensors_file *safetensors_open(const char *path)
{
    safetensors_file *f = mem_calloc(1, sizeof *f, path);
    if (!f)
        return NULL;
    int fd = -1;
    if (!(f->path = mem_strdup(path)))
        goto fail;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        err_errno(path, fd < 0 ? "cannot open" : "cannot stat");
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        err_set("%s: not a regular file", path);
        goto fail;
    }
    if (st.st_size < 8) {
        err_set("%s: truncated (%lld bytes; a safetensors file starts with an 8-byte header length)",
                path, (long long)st.st_size);
        goto fail;
    }
    f->map_len = (size_t)st.st_size;
    void *map = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        err_errno(path, "cannot map");
        goto fail;
    }
    f->map = map;
    close(fd);
    fd = -1;
    uint64_t header_len = bytes_get_u64(f->map);
    if (header_len > SAFETENSORS_MAX_HEADER) {
        err_set("%s: header length %llu exceeds the %u-byte limit", path,
                (unsigned long long)header_len, SAFETENSORS_MAX_HEADER);
        goto fail;
    }
    if (header_len > f->map_len - 8) {
        err_set("%s: header length %llu runs past the end of the file (%zu bytes)", path,
                (unsigned long long)header_len, f->map_len);
        goto fail;
    }
    if (parse_header(f, header_len) < 0)
        goto fail;
    return f;
fail:
    if (fd >= 0)
        close(fd);
    safetensors_close(f);
    return NULL;
}

static float bits_to_f32(uint32_t bits)
{
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* IEEE binary16 to binary32, exact. */
static float f16_to_f32(uint32_t h)
{
    uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
    if (exp == 0x1f)
        bits = sign | 0x7f800000u | mant << 13;
    else if (exp)
        bits = sign | (exp + 112) << 23 | mant << 13;   /* rebias 15 -> 127 */
    else {
        float v = (float)mant * 0x1p-24f;               /* zero or subnormal */
        return sign ? -v : v;
    }
    return bits_to_f32(bits);
}

/* Element i of a F32, F16 or BF16 tensor (dtype checked by the caller). */
static inline float element(const safetensors_tensor *t, uint64_t i)
{
    switch (t->dtype) {
    case ST_F32: return bits_to_f32(bytes_get_u32(t->data + 4 * i));
    case ST_F16: return f16_to_f32(bytes_get_u16(t->data + 2 * i));
    default: return bits_to_f32(bytes_get_u16(t->data + 2 * i) << 16);   /* BF16 */
    }
}

static int check_float(const safetensors_file *f, const safetensors_tensor *t)
{
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return err_set("%s: tensor '%s' has dtype %s; w2s reads F32, F16 and BF16", f->path,
                       t->name, dtypes[t->dtype].name);
    return 0;
}

int safetensors_read_f32(const safetensors_file *f, const safetensors_tensor *t, uint64_t first,
                         uint64_t n, float *dst)
{
    TRY(check_float(f, t));
    if (first > t->count || n > t->count - first)
        return err_set("%s: tensor '%s': elements [%llu, +%llu) outside its %llu", f->path, t->name,
                       (unsigned long long)first, (unsigned long long)n,
                       (unsigned long long)t->count);
    for (uint64_t i = 0; i < n; i++)
        dst[i] = element(t, first + i);
    return 0;
}

int safetensors_read_f32_transposed(const safetensors_file *f, const safetensors_tensor *t,
                                    float *dst)
{
    TRY(check_float(f, t));
    if (t->ndim != 2)
        return err_set("%s: tensor '%s' has %d dimensions, a transposed read needs 2", f->path,
                       t->name, t->ndim);
    uint64_t rows = t->shape[0], cols = t->shape[1];
    for (uint64_t r = 0; r < rows; r++)
        for (uint64_t c = 0; c < cols; c++)
            dst[c * rows + r] = element(t, r * cols + c);
    return 0;
}

/* The header JSON of the declared tensors; *floats receives their total. */
static char *build_header(const char *path, const safetensors_decl *t, size_t n,
                          const char *const *meta, uint64_t *floats)
{
    json_t *root = json_object(), *m = NULL;
    char *text = NULL;
    uint64_t at = 0;
    if (!root)
        goto oom;
    if (meta && meta[0]) {
        if (!(m = json_object()) || json_object_set_new(root, "__metadata__", m) < 0)
            goto oom;
        for (size_t i = 0; meta[i]; i += 2)
            if (!meta[i + 1] || json_object_set_new(m, meta[i], json_string(meta[i + 1])) < 0) {
                err_set("%s: bad metadata entry '%s'", path, meta[i]);
                goto fail;
            }
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].name, "__metadata__") == 0 || json_object_get(root, t[i].name) ||
            t[i].ndim < 0 || t[i].ndim > SAFETENSORS_MAX_DIMS) {
            err_set("%s: tensor '%s' declared twice, reserved or of %d dimensions", path, t[i].name,
                    t[i].ndim);
            goto fail;
        }
        uint64_t count = 1, bytes;
        int bad = 0;
        json_t *shape = json_array(), *entry = NULL;
        for (int d = 0; shape && d < t[i].ndim; d++)
            bad |= __builtin_mul_overflow(count, t[i].shape[d], &count) ||
                   t[i].shape[d] > (uint64_t)INT64_MAX ||
                   json_array_append_new(shape, json_integer((json_int_t)t[i].shape[d])) < 0;
        if (!shape || bad || __builtin_mul_overflow(count, 4, &bytes) ||
            __builtin_add_overflow(at, bytes, &bytes) || bytes > (uint64_t)INT64_MAX) {
            json_decref(shape);
            err_set("%s: tensor '%s': shape too large", path, t[i].name);
            goto fail;
        }
        entry = json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape, "data_offsets",
                          (json_int_t)at, (json_int_t)bytes);
        if (!entry || json_object_set_new(root, t[i].name, entry) < 0)
            goto oom;
        *floats += count;
        at = bytes;
    }
    if (!(text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        goto oom;
    json_decref(root);
    return text;
oom:
    err_set("%s: out of memory for the header", path);
fail:
    json_decref(root);
    return NULL;
}

int safetensors_writer_open(safetensors_writer *w, const char *path, const safetensors_decl *t,
                            size_t n, const char *const *meta)
{
    memset(w, 0, sizeof *w);
    uint64_t floats = 0;
    char *json = build_header(path, t, n, meta, &floats);
    if (!json)
        return -1;
    size_t len = strlen(json), padded = (len + 7) / 8 * 8;
    unsigned char *head = NULL;
    int rc = -1;
    if (padded > SAFETENSORS_MAX_HEADER) {
        err_set("%s: the header would take %zu bytes, over the %u-byte limit", path, padded,
                SAFETENSORS_MAX_HEADER);
        goto done;
    }
    if (!(head = mem_alloc(8 + padded, path)))
        goto done;
    bytes_put_u64(head, padded);
    memcpy(head + 8, json, len);
    memset(head + 8 + len, ' ', padded - len);   /* the format's padding */
    if (atomic_file_open(&w->af, path) < 0)
        goto done;
    if (atomic_file_write(&w->af, head, 8 + padded) < 0) {
        atomic_file_abort(&w->af);
        goto done;
    }
    w->due = floats;
    rc = 0;
done:
    free(head);
    free(json);
    return rc;
}

int safetensors_writer_put(safetensors_writer *w, const float *v, size_t n)
{
    if (n > w->due)
        return err_set("%s: %zu floats put, %llu were declared", w->af.path, n,
                       (unsigned long long)w->due);
    unsigned char buf[4096];
    while (n) {
        size_t k = n < sizeof buf / 4 ? n : sizeof buf / 4;
        for (size_t i = 0; i < k; i++) {
            uint32_t bits;
            memcpy(&bits, &v[i], 4);
            bytes_put_u32(buf + 4 * i, bits);
        }
        TRY(atomic_file_write(&w->af, buf, 4 * k));
        v += k;
        n -= k;
        w->due -= k;
    }
    return 0;
}

int safetensors_writer_commit(safetensors_writer *w)
{
    if (w->due) {
        err_set("%s: %llu declared floats were never put", w->af.path, (unsigned long long)w->due);
        safetensors_writer_abort(w);
        return -1;
    }
    int rc = atomic_file_commit(&w->af);
    memset(w, 0, sizeof *w);
    return rc;
}

void safetensors_writer_abort(safetensors_writer *w)
{
    atomic_file_abort(&w->af);
    memset(w, 0, sizeof *w);
}
