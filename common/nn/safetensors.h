/* safetensors: reader and writer of Hugging Face's safetensors files, the
 * weights format of a Hugging Face model directory (schemas/safetensors.md,
 * byte by byte: what is checked, what is written).
 *
 * A file is an 8-byte little-endian header length N, N bytes of a JSON object
 * mapping tensor names to {dtype, shape, data_offsets} (plus an optional
 * "__metadata__" object of strings), then the raw little-endian, row-major
 * tensor bytes. The reader maps the file read-only and validates the whole
 * header before anything is read: N against the file size and the 100 MB
 * limit, every tensor's dtype (an unknown one is named), shape (at most
 * SAFETENSORS_MAX_DIMS dimensions, product overflow-checked), byte span
 * (= elements times the dtype's size, inside the file) and that the spans
 * tile the data section exactly: no overlap, no gap, no trailing bytes, no
 * repeated name. A tensor is then converted to float32 straight into the
 * caller's buffer (F32, F16 and BF16; other dtypes are refused by name), so
 * reading a model costs the map plus one copy of its weights. The map stays
 * valid until safetensors_close; a file truncated by another process while
 * mapped raises SIGBUS, as any mapped reader would.
 *
 * The writer writes F32 tensors only (what w2s exports): the header lists the
 * tensors in the order given with consecutive offsets, padded with spaces to
 * a multiple of 8 bytes so the data starts 8-byte aligned; the data is then
 * streamed in that order through an atomic_file (common/base/fileio.h), so a
 * failed or interrupted write leaves no file. */
#ifndef W2S_SAFETENSORS_H
#define W2S_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/fileio.h"

#define SAFETENSORS_MAX_HEADER 100000000u  /* bytes, as the reference implementation */
#define SAFETENSORS_MAX_DIMS 8

typedef enum safetensors_dtype {
    ST_BOOL, ST_U8, ST_I8, ST_F8_E5M2, ST_F8_E4M3, ST_F8_E8M0, ST_I16, ST_U16, ST_F16, ST_BF16,
    ST_I32, ST_U32, ST_F32, ST_C64, ST_F64, ST_I64, ST_U64, ST_F4, ST_F6_E2M3, ST_F6_E3M2,
    ST_NUM_DTYPES
} safetensors_dtype;

typedef struct safetensors_tensor {
    const char *name;            /* owned by the file */
    safetensors_dtype dtype;
    int ndim;                    /* 0 = a scalar */
    uint64_t shape[SAFETENSORS_MAX_DIMS];
    uint64_t count;              /* product of shape (1 for a scalar) */
    uint64_t begin, end;         /* byte span, relative to the data section */
    const unsigned char *data;   /* begin's byte in the map */
} safetensors_tensor;

typedef struct safetensors_file safetensors_file;

/* The dtype's name as the header spells it ("F32", "BF16", ...). */
const char *safetensors_dtype_name(safetensors_dtype dtype);

/* Maps and validates path. @return the file, or NULL with a message naming
 * path and the first problem (and the tensor, when one is at fault). */
safetensors_file *safetensors_open(const char *path);
/* Unmaps and frees f (NULL is fine); its tensors' pointers become invalid. */
void safetensors_close(safetensors_file *f);
const char *safetensors_path(const safetensors_file *f);

/* Number of tensors; safetensors_at(f, i) for i < count lists them in the
 * order of their data (by begin offset). */
size_t safetensors_count(const safetensors_file *f);
const safetensors_tensor *safetensors_at(const safetensors_file *f, size_t i);
/* The tensor named name, or NULL. */
const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name);
/* The "__metadata__" value of key, or NULL (no metadata or no such key);
 * owned by f. */
const char *safetensors_metadata(const safetensors_file *f, const char *key);

/* Converts elements [first, first + n) of t (row-major order) to float32
 * into dst (n floats): F32 copied, F16 and BF16 widened exactly (subnormals,
 * infinities and NaN kept). @return 0, or -1 with a message naming the file
 * and the tensor for another dtype or a range past t->count. */
int safetensors_read_f32(const safetensors_file *f, const safetensors_tensor *t, uint64_t first,
                         uint64_t n, float *dst);
/* A 2-D tensor of shape (rows, cols) converted as above into dst laid out as
 * its transpose (cols, rows): dst[c * rows + r] = t[r][c]. @return 0, or -1
 * with a message for another dtype or a tensor that is not 2-D. */
int safetensors_read_f32_transposed(const safetensors_file *f, const safetensors_tensor *t,
                                    float *dst);

/* One tensor the writer declares: name (not "__metadata__", not repeated)
 * and shape; its data are the product of the shape in float32. */
typedef struct safetensors_decl {
    const char *name;
    int ndim;
    uint64_t shape[SAFETENSORS_MAX_DIMS];
} safetensors_decl;

typedef struct safetensors_writer {
    atomic_file af;
    uint64_t due;                /* floats still to put, over all tensors */
} safetensors_writer;

/* Creates path's temporary file and writes the header for the n tensors,
 * in that order, plus "__metadata__" from meta (key, value pairs ending with
 * a NULL key; meta may be NULL). @return 0, or -1 with a message naming path
 * (a bad declaration, a header over the limit, I/O); nothing is left then. */
int safetensors_writer_open(safetensors_writer *w, const char *path, const safetensors_decl *t,
                            size_t n, const char *const *meta);
/* Appends the next n floats of the declared tensors' data, in declaration
 * order and row-major within a tensor (calls may split or span tensors).
 * @return 0, or -1 (more floats than declared, I/O) naming the path; the
 * caller then calls safetensors_writer_abort. */
int safetensors_writer_put(safetensors_writer *w, const float *v, size_t n);
/* Checks that every declared float was put, then flushes, fsyncs and renames
 * the file into place. Releases w either way. @return 0 or -1 + message. */
int safetensors_writer_commit(safetensors_writer *w);
/* Removes the temporary file and releases w. Safe on a zeroed writer. */
void safetensors_writer_abort(safetensors_writer *w);

#endif
