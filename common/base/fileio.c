/* fileio: whole-file reads and atomic writes; see fileio.h. */
#include "base/fileio.h"

#include "base/err.h"
#include "base/mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int file_read_all(const char *path, unsigned char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return err_errno(path, "cannot open");
    struct stat st;
    if (fstat(fileno(fp), &st) != 0) {
        err_errno(path, "cannot stat");
        fclose(fp);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(fp);
        return err_set("%s: is a directory, expected a file", path);
    }
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
    unsigned char *buf = mem_alloc(cap, path);
    size_t n = 0;
    if (!buf) {
        fclose(fp);
        return -1;
    }
    for (;;) {
        if (n + 1 >= cap) {
            unsigned char *grown = mem_realloc(buf, cap * 2, path);
            if (!grown)
                goto fail;
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, fp);
        n += got;
        if (got == 0) {
            if (ferror(fp)) {
                err_errno(path, "read error");
                goto fail;
            }
            break;
        }
    }
    fclose(fp);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
fail:
    free(buf);
    fclose(fp);
    return -1;
}

int atomic_file_open(atomic_file *af, const char *path)
{
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->path = mem_strdup(path);
    af->tmp_path = mem_alloc(n, "temporary file name");
    if (!af->path || !af->tmp_path)
        goto fail;
    snprintf(af->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    af->fp = fopen(af->tmp_path, "wb");
    if (!af->fp) {
        err_errno(af->tmp_path, "cannot create");
        goto fail;
    }
    return 0;
fail:
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
    return -1;
}

int atomic_file_write(atomic_file *af, const void *data, size_t len)
{
    if (len && fwrite(data, 1, len, af->fp) != len)
        return err_errno(af->path, "write failed");
    return 0;
}

static void atomic_file_release(atomic_file *af)
{
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

void atomic_file_abort(atomic_file *af)
{
    if (af->fp)
        fclose(af->fp);
    if (af->tmp_path)
        remove(af->tmp_path);
    atomic_file_release(af);
}

int atomic_file_commit_locked(atomic_file *af, filelock *lock, const char *what)
{
    FILE *fp = af->fp;
    filelock moved = {-1};
    af->fp = NULL;
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
        err_errno(af->path, "write failed");
        fclose(fp);
        goto fail;
    }
    if (fclose(fp) != 0) {
        err_errno(af->path, "write failed");
        goto fail;
    }
    if (lock && filelock_acquire(&moved, af->tmp_path, what) < 0)
        goto fail;
    if (rename(af->tmp_path, af->path) != 0) {
        err_errno(af->path, "cannot rename temporary file into place");
        filelock_release(&moved);
        goto fail;
    }
    if (lock) {
        filelock_release(lock);
        *lock = moved;
    }
    atomic_file_release(af);
    return 0;
fail:
    remove(af->tmp_path);
    atomic_file_release(af);
    return -1;
}

int atomic_file_commit(atomic_file *af)
{
    return atomic_file_commit_locked(af, NULL, NULL);
}

int file_write_atomic(const char *path, const void *data, size_t len)
{
    atomic_file af;
    TRY(atomic_file_open(&af, path));
    if (atomic_file_write(&af, data, len) < 0) {
        atomic_file_abort(&af);
        return -1;
    }
    return atomic_file_commit(&af);
}

int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}
