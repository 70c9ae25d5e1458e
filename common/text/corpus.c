/* corpus: opens what the user gave (file, archive, compressed file, directory,
 * stdin or a memory buffer) with libarchive and streams every regular member
 * through a cutter (corpus_records.c) that delivers the records; see corpus.h
 * for the rules. One libarchive reader is opened per file; data arrives in the
 * blocks libarchive decodes, so memory stays at one block plus one record. */
#include "text/corpus.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "text/corpus_cut.h"
#include "base/err.h"
#include "base/mem.h"

#define CORPUS_BLOCK (64 * 1024)

int corpus_parse_mode(const char *text, record_spec *spec)
{
    static const struct { const char *name; record_mode mode; } modes[] = {
        {"file", RECORDS_FILE}, {"line", RECORDS_LINE}, {"paragraph", RECORDS_PARAGRAPH},
        {"fortune", RECORDS_FORTUNE},
    };
    memset(spec, 0, sizeof *spec);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(text, modes[i].name) == 0) {
            spec->mode = modes[i].mode;
            return 0;
        }
    }
    if (strncmp(text, "jsonl:", 6) == 0) {
        size_t n = strlen(text + 6);
        if (n == 0 || n >= sizeof spec->field)
            return err_set("record mode \"%s\": the jsonl field name must have 1 to %zu bytes",
                           text, sizeof spec->field - 1);
        spec->mode = RECORDS_JSONL;
        memcpy(spec->field, text + 6, n + 1);
        return 0;
    }
    return err_set("record mode \"%s\": expected file, line, paragraph, fortune or jsonl:FIELD", text);
}

/* Records libarchive's reason, naming the archive and the member when known. */
static int archive_fail(struct archive *a, const char *source, const char *member)
{
    const char *why = archive_error_string(a);
    if (!why)   /* e.g. the data of a 7z read through an outer filter */
        why = "libarchive failed without giving a reason";
    if (member && member[0])
        return err_set("%s: %s: %s", source, member, why);
    return err_set("%s: %s", source, why);
}

/* ARCHIVE_WARN means the step worked with a caveat; ARCHIVE_RETRY (a damaged
 * tar header, say), FAILED and FATAL are errors. */
static int usable(int r)
{
    return r == ARCHIVE_OK || r == ARCHIVE_WARN;
}

/* A reader for every library-backed filter and every format but mtree (an
 * mtree file would make libarchive read the local files it names); raw bids
 * last, so data no format claims is read as one member (plain or compressed). */
static struct archive *open_reader(const char *source)
{
    static int (*const setup[])(struct archive *) = {
        archive_read_support_filter_gzip, archive_read_support_filter_bzip2,
        archive_read_support_filter_xz, archive_read_support_filter_lzma,
        archive_read_support_filter_lzip, archive_read_support_filter_zstd,
        archive_read_support_filter_lz4, archive_read_support_filter_compress,
        archive_read_support_format_tar, archive_read_support_format_zip,
        archive_read_support_format_7zip, archive_read_support_format_cpio,
        archive_read_support_format_ar, archive_read_support_format_iso9660,
        archive_read_support_format_cab, archive_read_support_format_lha,
        archive_read_support_format_rar, archive_read_support_format_rar5,
        archive_read_support_format_xar, archive_read_support_format_warc,
        archive_read_support_format_empty, archive_read_support_format_raw,
    };
    struct archive *a = archive_read_new();
    if (!a) {
        err_set("%s: cannot create a libarchive reader (out of memory)", source);
        return NULL;
    }
    for (size_t i = 0; i < sizeof setup / sizeof setup[0]; i++) {
        if (!usable(setup[i](a))) {
            archive_fail(a, source, NULL);
            archive_read_free(a);
            return NULL;
        }
    }
    return a;
}

/* Streams the current member's data through the cutter. Sparse holes are not
 * invented as zeros: only the bytes stored in the archive are read. Unlike a
 * header's ARCHIVE_WARN (say, a name that cannot be translated), a warning here
 * means damaged data (a zip or lha CRC mismatch), so it is an error. */
static int read_member(struct archive *a, const char *source, const char *member, corpus_cutter *c)
{
    corpus_cutter_begin(c, source, member);
    for (;;) {
        const void *block;
        size_t size;
        la_int64_t offset;
        int r = archive_read_data_block(a, &block, &size, &offset);
        if (r == ARCHIVE_EOF)
            return corpus_cutter_finish(c);
        if (r != ARCHIVE_OK)
            return archive_fail(a, source, member);
        if (size > 0)
            TRY(corpus_cutter_feed(c, block, size));
    }
}

static int read_entries(struct archive *a, const char *source, corpus_cutter *c)
{
    for (;;) {
        struct archive_entry *entry;
        int r = archive_read_next_header(a, &entry);
        if (r == ARCHIVE_EOF)
            return 0;
        if (!usable(r))
            return archive_fail(a, source, NULL);
        if (archive_entry_filetype(entry) != AE_IFREG)
            continue;
        /* The raw format names its one entry "data"; the identity uses "". */
        const char *member = archive_entry_pathname(entry);
        if (archive_format(a) == ARCHIVE_FORMAT_RAW || !member)
            member = "";
        TRY(read_member(a, source, member, c));
    }
}

/* Opens a with open_fn (which gets a and arg) and reads all of it. */
static int read_with(const char *source, int (*open_fn)(struct archive *, const void *, size_t),
                     const void *arg, size_t len, corpus_cutter *c)
{
    struct archive *a = open_reader(source);
    if (!a)
        return -1;
    int rc = usable(open_fn(a, arg, len)) ? read_entries(a, source, c) : archive_fail(a, source, NULL);
    if (archive_read_free(a) != ARCHIVE_OK && rc == 0)
        rc = err_set("%s: cannot close the libarchive reader", source);
    return rc;
}

static int open_file(struct archive *a, const void *path, size_t len)
{
    (void)len;
    return archive_read_open_filename(a, path, CORPUS_BLOCK);
}

static int open_stdin(struct archive *a, const void *unused, size_t len)
{
    (void)unused;
    (void)len;
    return archive_read_open_fd(a, 0, CORPUS_BLOCK);
}

static int open_memory(struct archive *a, const void *data, size_t len)
{
    return archive_read_open_memory(a, data, len);
}

static int compare_names(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static int read_path(const char *path, corpus_cutter *c);

/* Reads the entries of dir in strcmp order: subdirectories recursively,
 * regular files (also through a symlink) as files; symlinked directories,
 * devices, fifos and sockets are skipped, so a walk cannot loop. */
static int read_dir(const char *dir, corpus_cutter *c)
{
    int rc = -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    char *child = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return err_errno(dir, "cannot open directory");
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno != 0) {
                err_errno(dir, "cannot read directory");
                goto cleanup;
            }
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (mem_reserve((void **)&names, &cap, n + 1, sizeof *names, "directory listing") < 0)
            goto cleanup;
        if (!(names[n] = mem_strdup(de->d_name)))
            goto cleanup;
        n++;
    }
    if (n > 1)
        qsort(names, n, sizeof *names, compare_names);
    size_t dir_len = strlen(dir);
    int slash = dir_len > 0 && dir[dir_len - 1] == '/';
    for (size_t i = 0; i < n; i++) {
        size_t need = dir_len + strlen(names[i]) + 2;
        if (!(child = mem_alloc(need, "path")))
            goto cleanup;
        snprintf(child, need, "%s%s%s", dir, slash ? "" : "/", names[i]);
        struct stat st;
        if (lstat(child, &st) != 0) {
            err_errno(child, "cannot stat");
            goto cleanup;
        }
        /* Decided on lstat first: stat() below follows a link and would
         * otherwise make a symlinked directory look like a real one. */
        int wanted = S_ISDIR(st.st_mode) || S_ISREG(st.st_mode) ||
                     (S_ISLNK(st.st_mode) && stat(child, &st) == 0 && S_ISREG(st.st_mode));
        if (wanted && read_path(child, c) < 0)
            goto cleanup;
        free(child);
        child = NULL;
    }
    rc = 0;
cleanup:
    free(child);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

static int read_path(const char *path, corpus_cutter *c)
{
    if (strcmp(path, "-") == 0)
        return read_with("-", open_stdin, NULL, 0, c);
    struct stat st;
    if (stat(path, &st) != 0)
        return err_errno(path, "cannot read");
    if (S_ISDIR(st.st_mode))
        return read_dir(path, c);
    return read_with(path, open_file, path, 0, c);
}

int corpus_read(const char *path, const record_spec *spec, corpus_record_fn fn, void *ctx)
{
    corpus_cutter c;
    corpus_cutter_init(&c, spec, fn, ctx);
    int rc = read_path(path, &c);
    corpus_cutter_free(&c);
    return rc;
}

int corpus_read_memory(const char *name, const void *data, size_t len,
                       const record_spec *spec, corpus_record_fn fn, void *ctx)
{
    corpus_cutter c;
    corpus_cutter_init(&c, spec, fn, ctx);
    int rc = read_with(name, open_memory, data, len, &c);
    corpus_cutter_free(&c);
    return rc;
}
