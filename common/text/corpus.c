/* corpus: opens what the user gave (file, archive, compressed file, directory,
 * stdin or a memory buffer) with libarchive and streams every regular member
 * through a cutter (corpus_records.c) that delivers the records; see corpus.h
 * for the rules. One libarchive reader is opened per file; data arrives in the
 * blocks libarchive decodes, so memory stays at one block plus one record (plus
 * the whole of a compressed or archived member inside an archive). */
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
/* Bytes of a member checked for text and for being compressed or archived. */
#define CORPUS_PROBE (64 * 1024)
/* Archives in archives deeper than this are refused (a self-reproducing
 * archive would otherwise be read forever). */
#define CORPUS_MAX_NESTING 8

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

/* ---- what a name promises ---- */

/* A name's suffixes, read from the end: compressions first (each must be among
 * the filters libarchive found), then at most one archive format (which must be
 * the format it found). "x.tar.gz" promises gzip, then tar. */
typedef struct name_promise { const char *suffix; int filter, format; const char *what; } name_promise;

static const name_promise name_promises[] = {
    {".gz", ARCHIVE_FILTER_GZIP, 0, "gzip file"},         {".bz2", ARCHIVE_FILTER_BZIP2, 0, "bzip2 file"},
    {".xz", ARCHIVE_FILTER_XZ, 0, "xz file"},             {".lzma", ARCHIVE_FILTER_LZMA, 0, "lzma file"},
    {".lz", ARCHIVE_FILTER_LZIP, 0, "lzip file"},         {".zst", ARCHIVE_FILTER_ZSTD, 0, "zstd file"},
    {".lz4", ARCHIVE_FILTER_LZ4, 0, "lz4 file"},          {".Z", ARCHIVE_FILTER_COMPRESS, 0, "compress (.Z) file"},
    {".tgz", ARCHIVE_FILTER_GZIP, ARCHIVE_FORMAT_TAR, "gzip-compressed tar archive"},
    {".tbz2", ARCHIVE_FILTER_BZIP2, ARCHIVE_FORMAT_TAR, "bzip2-compressed tar archive"},
    {".txz", ARCHIVE_FILTER_XZ, ARCHIVE_FORMAT_TAR, "xz-compressed tar archive"},
    {".tzst", ARCHIVE_FILTER_ZSTD, ARCHIVE_FORMAT_TAR, "zstd-compressed tar archive"},
    {".tar", 0, ARCHIVE_FORMAT_TAR, "tar archive"},       {".zip", 0, ARCHIVE_FORMAT_ZIP, "zip archive"},
    {".7z", 0, ARCHIVE_FORMAT_7ZIP, "7z archive"},        {".cpio", 0, ARCHIVE_FORMAT_CPIO, "cpio archive"},
    {".iso", 0, ARCHIVE_FORMAT_ISO9660, "ISO 9660 image"},
};

/* The promise of name's last suffix before end (a base name must remain). */
static const name_promise *promise_at(const char *name, size_t end)
{
    for (size_t i = 0; i < sizeof name_promises / sizeof name_promises[0]; i++) {
        size_t n = strlen(name_promises[i].suffix);
        if (end > n && name[end - n - 1] != '/' && memcmp(name + end - n, name_promises[i].suffix, n) == 0)
            return &name_promises[i];
    }
    return NULL;
}

/* 1 when name's suffix says it is compressed or an archive. */
static int name_promises_container(const char *name)
{
    return promise_at(name, strlen(name)) != NULL;
}

static int has_filter(struct archive *a, int code)
{
    for (int i = 0; i < archive_filter_count(a); i++)
        if (archive_filter_code(a, i) == code)
            return 1;
    return 0;
}

/* Checks what libarchive found in a (after its first header) against what the
 * name of what a reads promises: member inside source, or source itself. */
static int check_name(struct archive *a, const char *source, const char *member)
{
    const char *name = *member ? member : source;
    const int format = archive_format(a) & ARCHIVE_FORMAT_BASE_MASK;
    size_t end = strlen(name);
    const name_promise *p;
    while ((p = promise_at(name, end)) != NULL) {
        if ((p->filter && !has_filter(a, p->filter)) || (p->format && format != p->format))
            return err_set("%s%s%s: not a %s (its name says it is)", source, *member ? ": " : "", member,
                           p->what);
        if (p->format)
            return 0;
        end -= strlen(p->suffix);
    }
    return 0;
}

/* ---- text or not ---- */

/* 1 when the bytes are clearly not text: a NUL byte, or more than a quarter of
 * them control characters (other than bell, backspace, tab, line feed,
 * vertical tab, form feed, carriage return and escape, which text uses: a
 * fortune may ring the bell, old manuals overstrike with backspaces) or bytes
 * outside well-formed UTF-8 sequences.
 * A sequence cut off at the end counts as well-formed (the probe may end in
 * the middle of one). Some invalid UTF-8 is fine: byte-level tokenizers take
 * Latin-1 and damaged text as they are. */
static int looks_binary(const unsigned char *p, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n;) {
        unsigned b = p[i];
        if (b == 0)
            return 1;
        size_t follow = b < 0x80 ? 0 : b >= 0xC2 && b <= 0xDF ? 1 : b >= 0xE0 && b <= 0xEF ? 2
                      : b >= 0xF0 && b <= 0xF4 ? 3 : 4;
        if (follow == 0) {
            bad += (b < 0x20 && !memchr("\a\b\t\n\v\f\r\033", (int)b, 8)) || b == 0x7F;
            i++;
            continue;
        }
        size_t k = 1;
        while (follow < 4 && k <= follow && i + k < n && (p[i + k] & 0xC0) == 0x80)
            k++;
        if (follow == 4 || (k <= follow && i + k < n)) {
            bad++;
            i++;
        } else {
            i += k;
        }
    }
    return bad * 4 > n;
}

/* ---- reading ---- */

/* The next data block of the current member: 1 with a block, 0 at its end, or
 * -1. Sparse holes are not invented as zeros: only the bytes stored in the
 * archive are read. Unlike a header's ARCHIVE_WARN (say, a name that cannot be
 * translated), a warning here means damaged data (a zip or lha CRC mismatch),
 * so it is an error. */
static int next_block(struct archive *a, const char *source, const char *member,
                      const void **block, size_t *size)
{
    la_int64_t offset;
    int r = archive_read_data_block(a, block, size, &offset);
    if (r == ARCHIVE_EOF)
        return 0;
    return r == ARCHIVE_OK ? 1 : archive_fail(a, source, member);
}

typedef struct member_buf { unsigned char *data; size_t len, cap; int ended; } member_buf;

/* Appends the member's data to b until it holds at least want bytes or the
 * member ended (b->ended). A member read whole is bounded like a record. */
static int fill(struct archive *a, const char *source, const char *member, member_buf *b, size_t want)
{
    while (b->len < want && !b->ended) {
        const void *block;
        size_t size;
        int r = next_block(a, source, member, &block, &size);
        TRY(r);
        if (r == 0) {
            b->ended = 1;
            break;
        }
        if (size == 0)
            continue;
        if (size >= CORPUS_MAX_RECORD - b->len)
            return err_set("%s: %s: a compressed or archived member of %zu MiB or more cannot be read",
                           source, member, CORPUS_MAX_RECORD >> 20);
        TRY(mem_reserve((void **)&b->data, &b->cap, b->len + size, 1, "archive member"));
        memcpy(b->data + b->len, block, size);
        b->len += size;
    }
    return 0;
}

/* 1 when libarchive reads the bytes as compressed or as an archive, 0 when as
 * plain data. A probe it cannot read counts as one (reading all of it then
 * reports the damage). */
static int holds_container(const char *source, const void *data, size_t len)
{
    struct archive *p = open_reader(source);
    if (!p)
        return -1;
    int found = 1;
    struct archive_entry *entry;
    if (usable(archive_read_open_memory(p, data, len))) {
        int r = archive_read_next_header(p, &entry);
        if (usable(r) || r == ARCHIVE_EOF) {
            int format = archive_format(p) & ARCHIVE_FORMAT_BASE_MASK;
            found = archive_filter_count(p) > 1 || (format != ARCHIVE_FORMAT_RAW && format != ARCHIVE_FORMAT_EMPTY);
        }
    }
    archive_read_free(p);
    return found;
}

static int open_memory(struct archive *a, const void *data, size_t len)
{
    return archive_read_open_memory(a, data, len);
}

static int read_with(const char *source, const char *prefix, int depth,
                     int (*open_fn)(struct archive *, const void *, size_t), const void *arg, size_t len,
                     corpus_cutter *c);

/* Reads the current member. In a real archive (can_nest), a member that is
 * itself compressed or an archive, or whose name says so, is read whole into
 * memory and opened like a file of its own; otherwise its first CORPUS_PROBE
 * bytes are checked for text and it is streamed through the cutter. */
static int read_member(struct archive *a, const char *source, const char *member, int can_nest, int depth,
                       corpus_cutter *c)
{
    member_buf b = {0};
    int rc = -1, nested = 0;
    if (fill(a, source, member, &b, CORPUS_PROBE) < 0)
        goto done;
    if (can_nest) {
        nested = name_promises_container(member);
        if (!nested && b.len > 0 && (nested = holds_container(source, b.data, b.len)) < 0)
            goto done;
    }
    if (nested) {
        if (depth >= CORPUS_MAX_NESTING) {
            err_set("%s: %s: archives or compressions nested more than %d deep", source, member,
                    CORPUS_MAX_NESTING);
            goto done;
        }
        if (fill(a, source, member, &b, SIZE_MAX) == 0)
            rc = read_with(source, member, depth + 1, open_memory, b.data, b.len, c);
        goto done;
    }
    if (!c->spec.allow_binary && looks_binary(b.data, b.len < CORPUS_PROBE ? b.len : CORPUS_PROBE)) {
        err_set("%s%s%s: not text (a NUL byte, or many control bytes or invalid UTF-8 in its first %d KiB); "
                "--allow-binary reads it anyway", source, *member ? ": " : "", member, CORPUS_PROBE >> 10);
        goto done;
    }
    corpus_cutter_begin(c, source, member);
    if (b.len > 0 && corpus_cutter_feed(c, b.data, b.len) < 0)
        goto done;
    for (;;) {
        const void *block;
        size_t size;
        int r = b.ended ? 0 : next_block(a, source, member, &block, &size);
        if (r < 0 || (r > 0 && size > 0 && corpus_cutter_feed(c, block, size) < 0))
            goto done;
        if (r == 0)
            break;
    }
    rc = corpus_cutter_finish(c);
done:
    free(b.data);
    return rc;
}

/* Reads every regular entry of a; prefix is the member a was opened from ("" at
 * the top). A member's name is prefix/entry inside a nested archive, the
 * entry's name at the top, and prefix for the one entry of a compressed file. */
static int read_entries(struct archive *a, const char *source, const char *prefix, int depth, corpus_cutter *c)
{
    for (int first = 1;; first = 0) {
        struct archive_entry *entry;
        int r = archive_read_next_header(a, &entry);
        /* Stdin has no name; its members do. */
        if (first && (usable(r) || r == ARCHIVE_EOF) && (*prefix || strcmp(source, "-") != 0))
            TRY(check_name(a, source, prefix));
        if (r == ARCHIVE_EOF)
            return 0;
        if (!usable(r))
            return archive_fail(a, source, prefix);
        if (archive_entry_filetype(entry) != AE_IFREG)
            continue;
        const char *name = archive_entry_pathname(entry);
        int raw = (archive_format(a) & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_RAW;
        char *member = NULL;
        if (raw || !name)
            member = mem_strdup(prefix);
        else if (asprintf(&member, "%s%s%s", prefix, *prefix ? "/" : "", name) < 0)
            member = NULL;
        if (!member)
            return err_set("%s: out of memory naming a member", source);
        int rc = read_member(a, source, member, !raw, depth, c);
        free(member);
        TRY(rc);
    }
}

/* Opens a reader with open_fn (which gets it, arg and len) and reads all of it. */
static int read_with(const char *source, const char *prefix, int depth,
                     int (*open_fn)(struct archive *, const void *, size_t), const void *arg, size_t len,
                     corpus_cutter *c)
{
    struct archive *a = open_reader(source);
    if (!a)
        return -1;
    int rc = usable(open_fn(a, arg, len)) ? read_entries(a, source, prefix, depth, c)
                                          : archive_fail(a, source, prefix);
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
        return read_with("-", "", 0, open_stdin, NULL, 0, c);
    struct stat st;
    if (stat(path, &st) != 0)
        return err_errno(path, "cannot read");
    if (S_ISDIR(st.st_mode))
        return read_dir(path, c);
    return read_with(path, "", 0, open_file, path, 0, c);
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
    int rc = read_with(name, "", 0, open_memory, data, len, &c);
    corpus_cutter_free(&c);
    return rc;
}
