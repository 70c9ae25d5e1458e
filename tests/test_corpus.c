/* Tests of the corpus reader: archives written here with libarchive's writer in
 * every format x filter it can write, read back to the exact records; raw
 * compressed and plain files; a directory walk; stdin; every record mode on
 * hand-made text (also fed one byte at a time); jsonl errors; truncated and
 * corrupt archives; a 5 MB single-line record; a callback that stops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "text/corpus.h"
#include "text/corpus_cut.h"
#include "base/err.h"

static char tmp_root[64];

/* ---- collecting records ---- */

typedef struct rec_copy {
    char *source, *member;
    uint64_t index, hash;
    unsigned char *data;
    size_t len;
} rec_copy;

typedef struct collector {
    rec_copy *r;
    size_t n, cap;
    size_t stop_after;      /* > 0: the callback fails when this many were taken */
} collector;

static int collect(void *ctx, const corpus_record *rec)
{
    collector *c = ctx;
    assert_true(rec->hash == XXH3_64bits(rec->data, rec->len));
    assert_true(rec->len > 0);
    if (c->stop_after && c->n == c->stop_after)
        return err_set("stop here");
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->r = realloc(c->r, c->cap * sizeof *c->r);
        assert_non_null(c->r);
    }
    rec_copy *d = &c->r[c->n++];
    d->source = strdup(rec->source);
    d->member = strdup(rec->member);
    d->index = rec->index;
    d->hash = rec->hash;
    d->data = malloc(rec->len);
    assert_true(d->source && d->member && d->data);
    memcpy(d->data, rec->data, rec->len);
    d->len = rec->len;
    return 0;
}

static void collector_free(collector *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->r[i].source);
        free(c->r[i].member);
        free(c->r[i].data);
    }
    free(c->r);
    memset(c, 0, sizeof *c);
}

typedef struct want {
    const char *member;
    uint64_t index;
    const char *text;
} want;

/* Checks the records exactly: member, index and bytes (and source when given).
 * Returns 0 when equal, else prints the first difference and returns -1. */
static int compare_records(const collector *c, const char *source, const want *w, size_t n)
{
    if (c->n != n) {
        print_message("got %zu records, want %zu\n", c->n, n);
        for (size_t i = 0; i < c->n; i++)
            print_message("  [%s] %s #%llu: %.*s\n", c->r[i].source, c->r[i].member,
                          (unsigned long long)c->r[i].index, (int)c->r[i].len, (const char *)c->r[i].data);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const rec_copy *r = &c->r[i];
        if (strcmp(r->member, w[i].member) != 0 || r->index != w[i].index || r->len != strlen(w[i].text) ||
            memcmp(r->data, w[i].text, r->len) != 0 || (source && strcmp(r->source, source) != 0)) {
            print_message("record %zu: got [%s] %s #%llu \"%.*s\", want %s #%llu \"%s\"\n", i, r->source,
                          r->member, (unsigned long long)r->index, (int)r->len, (const char *)r->data,
                          w[i].member, (unsigned long long)w[i].index, w[i].text);
            return -1;
        }
    }
    return 0;
}

static void read_text(const char *text, size_t len, const char *mode, collector *c, int expect_rc)
{
    record_spec spec;
    assert_int_equal(corpus_parse_mode(mode, &spec), 0);
    int rc = corpus_read_memory("text", text, len, &spec, collect, c);
    if (rc != expect_rc)
        print_message("corpus_read_memory: %s\n", err_message());
    assert_int_equal(rc, expect_rc);
}

/* ---- files and archives ---- */

static void path_in_tmp(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmp_root, name);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    unsigned char *d = malloc((size_t)n + 1);
    assert_non_null(d);
    assert_int_equal(fread(d, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return d;
}

typedef struct member {
    const char *name;
    char type;              /* 'f' file, 'd' directory, 'l' symlink to a.txt */
    const char *data;       /* file contents (NUL-terminated unless len given) */
    size_t len;             /* 0: strlen(data) */
} member;

/* Writes an archive of format and filter (libarchive writer names; filter
 * "none" adds none). @return 0, or -1 with the writer's reason in why. */
static int write_archive(const char *path, const char *format, const char *filter, const member *m,
                         size_t n, char *why, size_t why_cap)
{
    struct archive *a = archive_write_new();
    assert_non_null(a);
    int rc = -1;
    struct archive_entry *e = NULL;
    const char *step = "format";
    if (archive_write_set_format_by_name(a, format) != ARCHIVE_OK)
        goto out;
    step = "filter";
    if (strcmp(filter, "none") != 0 && archive_write_add_filter_by_name(a, filter) < ARCHIVE_WARN)
        goto out;
    step = "open";
    if (archive_write_open_filename(a, path) != ARCHIVE_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        e = archive_entry_new();
        assert_non_null(e);
        size_t len = m[i].type == 'f' ? (m[i].len ? m[i].len : strlen(m[i].data)) : 0;
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_mtime(e, 1700000000, 0);
        archive_entry_set_filetype(e, m[i].type == 'd' ? AE_IFDIR : m[i].type == 'l' ? AE_IFLNK : AE_IFREG);
        archive_entry_set_perm(e, m[i].type == 'd' ? 0755 : 0644);
        if (m[i].type == 'l')
            archive_entry_set_symlink(e, "a.txt");
        archive_entry_set_size(e, (la_int64_t)len);
        step = "header";
        if (archive_write_header(a, e) < ARCHIVE_WARN)
            goto out;
        step = "data";
        if (len > 0 && archive_write_data(a, m[i].data, len) != (la_ssize_t)len)
            goto out;
        archive_entry_free(e);
        e = NULL;
    }
    step = "close";
    if (archive_write_close(a) != ARCHIVE_OK)
        goto out;
    rc = 0;
out:
    if (rc < 0)
        snprintf(why, why_cap, "%s: %s", step, archive_error_string(a) ? archive_error_string(a) : "?");
    archive_entry_free(e);
    archive_write_free(a);
    return rc;
}

static int read_path(const char *path, const char *mode, collector *c)
{
    record_spec spec;
    assert_int_equal(corpus_parse_mode(mode, &spec), 0);
    return corpus_read(path, &spec, collect, c);
}

/* ---- tests ---- */

static void test_parse_mode(void **state)
{
    (void)state;
    record_spec s;
    assert_int_equal(corpus_parse_mode("file", &s), 0);
    assert_int_equal(s.mode, RECORDS_FILE);
    assert_int_equal(corpus_parse_mode("line", &s), 0);
    assert_int_equal(s.mode, RECORDS_LINE);
    assert_int_equal(corpus_parse_mode("paragraph", &s), 0);
    assert_int_equal(s.mode, RECORDS_PARAGRAPH);
    assert_int_equal(corpus_parse_mode("fortune", &s), 0);
    assert_int_equal(s.mode, RECORDS_FORTUNE);
    assert_int_equal(corpus_parse_mode("jsonl:text", &s), 0);
    assert_int_equal(s.mode, RECORDS_JSONL);
    assert_string_equal(s.field, "text");
    assert_int_equal(corpus_parse_mode("jsonl:", &s), -1);
    assert_non_null(strstr(err_message(), "jsonl:"));
    char long_field[200] = "jsonl:";
    memset(long_field + 6, 'x', 150);
    long_field[156] = '\0';
    assert_int_equal(corpus_parse_mode(long_field, &s), -1);
    assert_int_equal(corpus_parse_mode("lines", &s), -1);
    assert_non_null(strstr(err_message(), "lines"));
    assert_int_equal(corpus_parse_mode("", &s), -1);
}

static const char line_text[] = "one\r\ntwo\n\nthree\r\n \n\r\nlast\r";
static const want line_want[] = {
    {"", 0, "one"}, {"", 1, "two"}, {"", 2, "three"}, {"", 3, " "}, {"", 4, "last"},
};

static const char para_text[] =
    "\n\npara one\nline two\r\n\r\n  \t\npara two\n\n\n\na\r\nb\r\n\r\nlast para\nno newline";
static const want para_want[] = {
    {"", 0, "para one\nline two"}, {"", 1, "para two"}, {"", 2, "a\r\nb"}, {"", 3, "last para\nno newline"},
};

static const char fortune_text[] =
    "first\n%\nsecond 100%\nmulti\n%\n%\n  \n\n%\r\n%%\nthird\r\n%\n%";
static const want fortune_want[] = {
    {"", 0, "first"}, {"", 1, "second 100%\nmulti"}, {"", 2, "%%\nthird"},
};

static const char jsonl_text[] =
    "{\"text\": \"a\\nb\", \"id\": 1}\n"
    "\n"
    "  \r\n"
    "{\"id\": 2, \"text\": \"caf\\u00e9 \\\"q\\\"\"}\r\n"
    "{\"text\": \"\"}\n"
    "{\"text\": \"tab\\tslash\\/\"}";
static const want jsonl_want[] = {
    {"", 0, "a\nb"}, {"", 1, "caf\xc3\xa9 \"q\""}, {"", 2, "tab\tslash/"},
};

static const char file_text[] = "whole\r\nthing\n\n";
static const want file_want[] = {{"", 0, "whole\r\nthing\n\n"}};

static void test_record_modes(void **state)
{
    (void)state;
    static const struct {
        const char *mode, *text;
        const want *w;
        size_t n;
    } cases[] = {
        {"line", line_text, line_want, 5},
        {"paragraph", para_text, para_want, 4},
        {"fortune", fortune_text, fortune_want, 3},
        {"jsonl:text", jsonl_text, jsonl_want, 3},
        {"file", file_text, file_want, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        collector c = {0};
        read_text(cases[i].text, strlen(cases[i].text), cases[i].mode, &c, 0);
        if (compare_records(&c, "text", cases[i].w, cases[i].n) != 0)
            fail_msg("mode %s", cases[i].mode);
        collector_free(&c);
    }
}

/* The cutter must give the same records however the stream is split. */
static void test_block_split_invariance(void **state)
{
    (void)state;
    static const struct { const char *mode, *text; } cases[] = {
        {"line", line_text}, {"paragraph", para_text}, {"fortune", fortune_text},
        {"jsonl:text", jsonl_text}, {"file", file_text},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        record_spec spec;
        assert_int_equal(corpus_parse_mode(cases[i].mode, &spec), 0);
        size_t len = strlen(cases[i].text);
        collector whole = {0};
        read_text(cases[i].text, len, cases[i].mode, &whole, 0);
        for (size_t step = 1; step <= 7; step++) {
            collector c = {0};
            corpus_cutter cut;
            corpus_cutter_init(&cut, &spec, collect, &c);
            corpus_cutter_begin(&cut, "text", "");
            for (size_t off = 0; off < len; off += step) {
                size_t n = len - off < step ? len - off : step;
                assert_int_equal(corpus_cutter_feed(&cut, (const unsigned char *)cases[i].text + off, n), 0);
            }
            assert_int_equal(corpus_cutter_finish(&cut), 0);
            corpus_cutter_free(&cut);
            assert_int_equal(c.n, whole.n);
            for (size_t r = 0; r < c.n; r++) {
                assert_int_equal(c.r[r].len, whole.r[r].len);
                assert_memory_equal(c.r[r].data, whole.r[r].data, c.r[r].len);
                assert_int_equal(c.r[r].index, whole.r[r].index);
            }
            collector_free(&c);
        }
        collector_free(&whole);
    }
}

static void test_empty_input(void **state)
{
    (void)state;
    static const char *modes[] = {"file", "line", "paragraph", "fortune", "jsonl:text"};
    char path[128];
    path_in_tmp(path, sizeof path, "empty.txt");
    write_file(path, "", 0);
    for (size_t i = 0; i < 5; i++) {
        collector c = {0};
        read_text("", 0, modes[i], &c, 0);
        assert_int_equal(c.n, 0);
        assert_int_equal(read_path(path, modes[i], &c), 0);
        assert_int_equal(c.n, 0);
        read_text("\n\n", 2, modes[i], &c, 0);
        assert_int_equal(c.n, i == 0 ? 1 : 0);   /* file mode keeps "\n\n" */
        collector_free(&c);
    }
}

static void test_jsonl_nul_and_errors(void **state)
{
    (void)state;
    collector c = {0};
    const char nul[] = "{\"text\": \"x\\u0000y\"}\n";
    read_text(nul, strlen(nul), "jsonl:text", &c, 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.r[0].len, 3);
    assert_memory_equal(c.r[0].data, "x\0y", 3);
    collector_free(&c);

    static const struct { const char *text, *needle; size_t delivered; } bad[] = {
        {"{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\"\n{\"text\": \"d\"}\n", "line 3: invalid JSON", 2},
        {"{\"text\": \"a\"}\n{\"body\": \"b\"}\n", "line 2: field \"text\" missing", 1},
        {"\n{\"text\": 5}\n", "line 2: field \"text\" is not a string", 0},
        {"[\"text\"]\n", "line 1: not a JSON object", 0},
        {"{\"text\": \"a\"} trailing\n", "line 1: invalid JSON", 0},
        {"{\"text\": \"\xff\"}\n", "line 1: invalid JSON", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        read_text(bad[i].text, strlen(bad[i].text), "jsonl:text", &c, -1);
        if (!strstr(err_message(), bad[i].needle) || strncmp(err_message(), "text: ", 6) != 0)
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err_message(), bad[i].needle);
        assert_int_equal(c.n, bad[i].delivered);
        collector_free(&c);
    }

    /* Inside an archive the message names archive, member and line. */
    char path[128], why[256];
    path_in_tmp(path, sizeof path, "bad.tar");
    const member m[] = {
        {"ok.jsonl", 'f', "{\"text\": \"fine\"}\n", 0},
        {"sub/bad.jsonl", 'f', "{\"text\": \"one\"}\n{oops}\n", 0},
    };
    assert_int_equal(write_archive(path, "pax", "none", m, 2, why, sizeof why), 0);
    assert_int_equal(read_path(path, "jsonl:text", &c), -1);
    char want_msg[256];
    snprintf(want_msg, sizeof want_msg, "%s: sub/bad.jsonl: line 2: invalid JSON", path);
    if (strncmp(err_message(), want_msg, strlen(want_msg)) != 0)
        fail_msg("message \"%s\"", err_message());
    assert_int_equal(c.n, 2);
    collector_free(&c);
}

static const char *const formats[] = {
    "pax", "ustar", "gnutar", "v7tar", "odc", "newc", "zip", "7zip", "arbsd", "arsvr4",
    "iso9660", "xar", "warc", "raw",
};
static const char *const filters[] = {
    "none", "gzip", "bzip2", "xz", "lzma", "lzip", "zstd", "lz4", "compress",
};

static void test_format_filter_matrix(void **state)
{
    (void)state;
    const member full[] = {
        {"a.txt", 'f', "alpha\r\nbeta\n", 0},
        {"dir", 'd', NULL, 0},
        {"dir/b.txt", 'f', "gamma", 0},
        {"empty.txt", 'f', "", 0},
        {"link", 'l', NULL, 0},
    };
    const member flat[] = {
        {"a.txt", 'f', "alpha\r\nbeta\n", 0}, {"b.txt", 'f', "gamma", 0}, {"empty.txt", 'f', "", 0},
    };
    const member single[] = {{"notes.txt", 'f', "alpha\r\nbeta\ngamma", 0}};
    const want want_full[] = {{"a.txt", 0, "alpha"}, {"a.txt", 1, "beta"}, {"dir/b.txt", 0, "gamma"}};
    const want want_flat[] = {{"a.txt", 0, "alpha"}, {"a.txt", 1, "beta"}, {"b.txt", 0, "gamma"}};
    const want want_single[] = {{"", 0, "alpha"}, {"", 1, "beta"}, {"", 2, "gamma"}};
    size_t ok = 0, skipped = 0, failed = 0, unreadable = 0;
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
        const char *fmt = formats[f];
        int is_ar = strncmp(fmt, "ar", 2) == 0, is_raw = strcmp(fmt, "raw") == 0;
        /* warc holds regular files only; ar has no directories or links. */
        const member *m = is_raw ? single : is_ar ? flat : full;
        size_t nm = is_raw ? 1 : is_ar ? 3 : 5;
        if (strcmp(fmt, "warc") == 0) {
            static const member warc_m[] = {
                {"a.txt", 'f', "alpha\r\nbeta\n", 0}, {"dir/b.txt", 'f', "gamma", 0}, {"empty.txt", 'f', "", 0},
            };
            m = warc_m;
            nm = 3;
        }
        const want *w = is_raw ? want_single : is_ar ? want_flat : want_full;
        for (size_t z = 0; z < sizeof filters / sizeof filters[0]; z++) {
            char path[160], why[256];
            snprintf(path, sizeof path, "%s/m_%s_%s", tmp_root, fmt, filters[z]);
            if (write_archive(path, fmt, filters[z], m, nm, why, sizeof why) != 0) {
                print_message("skip %s+%s (writer: %s)\n", fmt, filters[z], why);
                skipped++;
                continue;
            }
            /* libarchive limits: a 7z needs seeking, which an outer filter
             * prevents (reading fails, with a message); a zip under a filter is
             * read by the streaming reader, which cannot see the central
             * directory and so takes the symlink for a file holding "a.txt". */
            int no_7z = strcmp(fmt, "7zip") == 0 && strcmp(filters[z], "none") != 0;
            int zip_link = strcmp(fmt, "zip") == 0 && strcmp(filters[z], "none") != 0;
            const want zip_want[] = {want_full[0], want_full[1], want_full[2], {"link", 0, "a.txt"}};
            for (int pass = 0; pass < 2; pass++) {
                collector c = {0};
                int rc = 0;
                if (pass == 0) {
                    rc = read_path(path, "line", &c);
                } else {
                    size_t len;
                    unsigned char *data = slurp(path, &len);
                    record_spec spec;
                    assert_int_equal(corpus_parse_mode("line", &spec), 0);
                    rc = corpus_read_memory(path, data, len, &spec, collect, &c);
                    free(data);
                }
                if (no_7z) {
                    if (rc != -1 || strncmp(err_message(), path, strlen(path)) != 0) {
                        print_message("FAILED %s+%s: expected an error, got %d: %s\n", fmt, filters[z], rc,
                                      err_message());
                        failed++;
                    } else if (pass == 1) {
                        print_message("unreadable %s+%s: %s\n", fmt, filters[z], err_message());
                        unreadable++;
                    }
                } else if (rc != 0 || compare_records(&c, path, zip_link ? zip_want : w, zip_link ? 4 : 3) != 0) {
                    print_message("FAILED %s+%s (%s): %s\n", fmt, filters[z], pass ? "memory" : "file",
                                  rc ? err_message() : "records differ");
                    failed++;
                } else if (pass == 1) {
                    ok++;
                }
                collector_free(&c);
            }
        }
    }
    print_message("format x filter: %zu read back exactly, %zu unreadable (7z), %zu not writable here\n",
                  ok, unreadable, skipped);
    assert_int_equal(failed, 0);
    assert_int_equal(ok + unreadable + skipped, 126);
    assert_true(ok >= 110);
}

static void test_directory_walk(void **state)
{
    (void)state;
    char dir[128], p[192], why[256];
    path_in_tmp(dir, sizeof dir, "walk");
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(p, sizeof p, "%s/a", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/a/empty_dir", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/b.txt", dir);
    write_file(p, "b1\nb2\n", 6);
    snprintf(p, sizeof p, "%s/A.txt", dir);
    write_file(p, "upper", 5);
    snprintf(p, sizeof p, "%s/a/z.txt", dir);
    write_file(p, "z1", 2);
    snprintf(p, sizeof p, "%s/a/y.txt.gz", dir);
    const member gz[] = {{"y.txt", 'f', "y1\ny2\n", 0}};
    assert_int_equal(write_archive(p, "raw", "gzip", gz, 1, why, sizeof why), 0);
    snprintf(p, sizeof p, "%s/c.tar", dir);
    const member tar[] = {{"m2", 'f', "t2", 0}, {"m1", 'f', "t1", 0}};
    assert_int_equal(write_archive(p, "ustar", "none", tar, 2, why, sizeof why), 0);
    snprintf(p, sizeof p, "%s/loop", dir);
    assert_int_equal(symlink(".", p), 0);       /* a symlinked directory is not followed */
    snprintf(p, sizeof p, "%s/zlink.txt", dir);
    assert_int_equal(symlink("b.txt", p), 0);    /* a symlinked file is read */

    static const struct { const char *source, *member, *text; uint64_t index; } w[] = {
        {"A.txt", "", "upper", 0}, {"a/y.txt.gz", "", "y1", 0}, {"a/y.txt.gz", "", "y2", 1},
        {"a/z.txt", "", "z1", 0}, {"b.txt", "", "b1", 0}, {"b.txt", "", "b2", 1},
        {"c.tar", "m2", "t2", 0}, {"c.tar", "m1", "t1", 0},
        {"zlink.txt", "", "b1", 0}, {"zlink.txt", "", "b2", 1},
    };
    for (int slash = 0; slash < 2; slash++) {
        char given[160];
        snprintf(given, sizeof given, "%s%s", dir, slash ? "/" : "");
        collector c = {0};
        if (read_path(given, "line", &c) != 0)
            fail_msg("%s", err_message());
        assert_int_equal(c.n, sizeof w / sizeof w[0]);
        for (size_t i = 0; i < c.n; i++) {
            char src[192];
            snprintf(src, sizeof src, "%s/%s", dir, w[i].source);
            assert_string_equal(c.r[i].source, src);
            assert_string_equal(c.r[i].member, w[i].member);
            assert_int_equal(c.r[i].index, w[i].index);
            assert_int_equal(c.r[i].len, strlen(w[i].text));
            assert_memory_equal(c.r[i].data, w[i].text, c.r[i].len);
        }
        collector_free(&c);
    }
}

static void test_stdin(void **state)
{
    (void)state;
    char path[128], why[256];
    path_in_tmp(path, sizeof path, "stdin.tar.xz");
    const member m[] = {{"s.txt", 'f', "s1\ns2", 0}};
    assert_int_equal(write_archive(path, "pax", "xz", m, 1, why, sizeof why), 0);
    int saved = dup(0);
    int fd = open(path, O_RDONLY);
    assert_true(saved >= 0 && fd >= 0);
    assert_int_equal(dup2(fd, 0), 0);
    close(fd);
    collector c = {0};
    int rc = read_path("-", "line", &c);
    assert_int_equal(dup2(saved, 0), 0);
    close(saved);
    assert_int_equal(rc, 0);
    const want w[] = {{"s.txt", 0, "s1"}, {"s.txt", 1, "s2"}};
    assert_int_equal(compare_records(&c, "-", w, 2), 0);
    collector_free(&c);
}

/* Fills buf with lines of pseudo-random letters so compression cannot shrink
 * it much; the first line of "data.txt" starts at byte 0. */
static void fill_lines(char *buf, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        buf[i] = (i % 61 == 60) ? '\n' : (char)('a' + (seed >> 59));
    }
    buf[n - 1] = '\n';
}

static void test_damaged_archives(void **state)
{
    (void)state;
    enum { BIG = 400000 };
    char *big = malloc(BIG + 1);
    assert_non_null(big);
    fill_lines(big, BIG, 7);
    big[BIG] = '\0';
    const member m[] = {{"first.txt", 'f', "f1\nf2\n", 0}, {"big.txt", 'f', big, 0}};
    /* Not corrupted here: gzip, whose CRC libarchive 3.6 does not check, so
     * flipped deflate bits may decode to wrong text without an error. A 7z
     * keeps its index at the end: truncated, nothing can be read. The whole
     * bzip2 stream is one checked block here, so its damage shows before any
     * record is delivered. */
    static const struct {
        const char *format, *filter;
        int corrupt;
        const char *member_named;
        size_t min_records;
    } cases[] = {
        {"pax", "gzip", 0, "big.txt", 2},  {"pax", "none", 0, "big.txt", 2}, {"pax", "xz", 0, "big.txt", 2},
        {"pax", "zstd", 0, "big.txt", 2},  {"zip", "none", 0, "big.txt", 2}, {"7zip", "none", 0, NULL, 0},
        {"zip", "none", 1, "big.txt", 2},  {"pax", "bzip2", 1, NULL, 0},      {"pax", "xz", 1, "big.txt", 2},
        {"ustar", "none", 1, NULL, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[160], why[256];
        snprintf(path, sizeof path, "%s/damaged_%zu_%s.%s", tmp_root, i, cases[i].format, cases[i].filter);
        assert_int_equal(write_archive(path, cases[i].format, cases[i].filter, m, 2, why, sizeof why), 0);
        size_t len;
        unsigned char *data = slurp(path, &len);
        if (cases[i].corrupt && strcmp(cases[i].format, "ustar") == 0) {
            /* Break the checksum of big.txt's header (the second 512-byte block
             * after first.txt's header and data). */
            memset(data + 1024 + 148, 'x', 8);
        } else if (cases[i].corrupt) {
            for (size_t k = len / 2; k < len / 2 + 64; k++)
                data[k] ^= 0x5a;
        } else {
            len = len * 6 / 10;
        }
        write_file(path, data, len);
        free(data);
        collector c = {0};
        int rc = read_path(path, "line", &c);
        if (rc != -1 || strncmp(err_message(), path, strlen(path)) != 0 ||
            (cases[i].member_named && !strstr(err_message(), cases[i].member_named)))
            fail_msg("case %zu: rc %d, message \"%s\"", i, rc, err_message());
        print_message("%s+%s %s: %s (after %zu records)\n", cases[i].format, cases[i].filter,
                      cases[i].corrupt ? "corrupt" : "truncated", err_message(), c.n);
        assert_true(c.n >= cases[i].min_records);
        if (c.n == 0) {
            collector_free(&c);
            continue;
        }
        assert_string_equal(c.r[0].member, "first.txt");
        assert_memory_equal(c.r[0].data, "f1", 2);
        assert_memory_equal(c.r[1].data, "f2", 2);
        /* Before a truncation every big.txt record delivered is a complete,
         * correct line; a corruption found by a checksum at the end of a block
         * or member comes after that block's records were delivered. */
        for (size_t r = 2; r < c.n && !cases[i].corrupt; r++) {
            assert_string_equal(c.r[r].member, "big.txt");
            assert_int_equal(c.r[r].len, 60);
            assert_memory_equal(c.r[r].data, big + 61 * (r - 2), 60);
        }
        collector_free(&c);
    }
    free(big);
}

static void test_errors(void **state)
{
    (void)state;
    char path[128];
    path_in_tmp(path, sizeof path, "does-not-exist.tar");
    collector c = {0};
    assert_int_equal(read_path(path, "line", &c), -1);
    assert_non_null(strstr(err_message(), path));
    assert_int_equal(c.n, 0);

    /* A callback's -1 stops the reading and its message survives. */
    char text[64] = "r0\nr1\nr2\nr3\n";
    c.stop_after = 2;
    read_text(text, strlen(text), "line", &c, -1);
    assert_string_equal(err_message(), "stop here");
    assert_int_equal(c.n, 2);
    collector_free(&c);
}

static void test_long_line(void **state)
{
    (void)state;
    enum { LONG = 5 << 20 };
    char *text = malloc(LONG + 16);
    assert_non_null(text);
    for (size_t i = 0; i < LONG; i++)
        text[i] = (char)('a' + i % 23);
    memcpy(text + LONG, "\nshort", 7);
    char path[128], why[256];
    path_in_tmp(path, sizeof path, "long.tar.gz");
    const member m[] = {{"long.txt", 'f', text, LONG + 6}};
    assert_int_equal(write_archive(path, "pax", "gzip", m, 1, why, sizeof why), 0);
    collector c = {0};
    assert_int_equal(read_path(path, "line", &c), 0);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.r[0].len, LONG);
    assert_true(c.r[0].hash == XXH3_64bits(text, LONG));
    assert_memory_equal(c.r[1].data, "short", 5);
    collector_free(&c);
    free(text);
}

/* ---- members that are compressed or archives themselves ---- */

/* The bytes of an archive written by write_archive (freed by the caller). */
static unsigned char *archive_bytes(const char *format, const char *filter, const member *m, size_t n,
                                    size_t *len)
{
    char path[160], why[256];
    snprintf(path, sizeof path, "%s/bytes_%s_%s", tmp_root, format, filter);
    if (write_archive(path, format, filter, m, n, why, sizeof why) != 0)
        fail_msg("writing %s+%s: %s", format, filter, why);
    unsigned char *d = slurp(path, len);
    remove(path);
    return d;
}

/* The text compressed by filter (one raw member). */
static unsigned char *compressed(const char *filter, const char *text, size_t *len)
{
    const member m[] = {{"data", 'f', text, 0}};
    return archive_bytes("raw", filter, m, 1, len);
}

static void expect_error(int rc, const char *expected)
{
    if (rc != -1 || !strstr(err_message(), expected))
        fail_msg("got %d \"%s\", want an error holding \"%s\"", rc, rc ? err_message() : "", expected);
}

/* A tar of .gz files (man pages, /usr/share/doc) gives the records of the
 * files decompressed, named by their member paths, exactly as a directory of
 * the same files does. */
static void test_tar_of_gz_like_directory(void **state)
{
    (void)state;
    size_t la, lb;
    unsigned char *a = compressed("gzip", "ls - list\ndirectory contents\n", &la);
    unsigned char *b = compressed("gzip", "cp - copy files\n", &lb);
    assert_memory_equal(a, "\x1f\x8b\x08", 3);
    const member m[] = {{"man1", 'd', NULL, 0}, {"man1/cp.1.gz", 'f', (char *)b, lb},
                        {"man1/ls.1.gz", 'f', (char *)a, la}};
    char tar[160], dir[160], file[200];
    path_in_tmp(tar, sizeof tar, "man.tar");
    char why[256];
    assert_int_equal(write_archive(tar, "pax", "none", m, 3, why, sizeof why), 0);
    const want w[] = {{"man1/cp.1.gz", 0, "cp - copy files"}, {"man1/ls.1.gz", 0, "ls - list"},
                      {"man1/ls.1.gz", 1, "directory contents"}};
    collector c = {0};
    assert_int_equal(read_path(tar, "line", &c), 0);
    assert_int_equal(compare_records(&c, tar, w, 3), 0);
    collector_free(&c);

    path_in_tmp(dir, sizeof dir, "man");
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(file, sizeof file, "%s/cp.1.gz", dir);
    write_file(file, b, lb);
    snprintf(file, sizeof file, "%s/ls.1.gz", dir);
    write_file(file, a, la);
    const want wd[] = {{"", 0, "cp - copy files"}, {"", 0, "ls - list"}, {"", 1, "directory contents"}};
    assert_int_equal(read_path(dir, "line", &c), 0);
    assert_int_equal(compare_records(&c, NULL, wd, 3), 0);
    collector_free(&c);
    free(a);
    free(b);
}

/* Every nesting: each compression inside a tar.gz and a zip, archives inside
 * archives (a tar in a zip, a zip in a tar.xz, a 7z in a tar, a tar.zst in a
 * cpio), three levels deep, and a member compressed but not named so. */
static void test_nested_members(void **state)
{
    (void)state;
    static const char *const inner_filters[] = {"gzip", "bzip2", "xz", "lzma", "lzip", "zstd", "lz4", "compress"};
    static const char *const ext[] = {".gz", ".bz2", ".xz", ".lzma", ".lz", ".zst", ".lz4", ".Z"};
    enum { NF = sizeof inner_filters / sizeof inner_filters[0] };
    static const char *const outers[][2] = {{"pax", "gzip"}, {"zip", "none"}, {"7zip", "none"}, {"newc", "bzip2"}};
    unsigned char *data[NF];
    size_t len[NF];
    char names[NF][32];
    member m[NF + 1];
    for (size_t i = 0; i < NF; i++) {
        data[i] = compressed(inner_filters[i], "first\nsecond", &len[i]);
        snprintf(names[i], sizeof names[i], "f%zu.txt%s", i, ext[i]);
        m[i] = (member){names[i], 'f', (char *)data[i], len[i]};
    }
    m[NF] = (member){"hidden.txt", 'f', (char *)data[0], len[0]};    /* gzip, name says nothing */
    for (size_t o = 0; o < sizeof outers / sizeof outers[0]; o++) {
        size_t n;
        unsigned char *outer = archive_bytes(outers[o][0], outers[o][1], m, NF + 1, &n);
        collector c = {0};
        record_spec spec;
        assert_int_equal(corpus_parse_mode("line", &spec), 0);
        if (corpus_read_memory("outer", outer, n, &spec, collect, &c) != 0)
            fail_msg("%s+%s: %s", outers[o][0], outers[o][1], err_message());
        assert_int_equal(c.n, 2 * (NF + 1));
        for (size_t i = 0; i < c.n; i++) {
            assert_string_equal(c.r[i].member, i / 2 < NF ? names[i / 2] : "hidden.txt");
            assert_int_equal(c.r[i].index, i % 2);
            assert_memory_equal(c.r[i].data, i % 2 ? "second" : "first", c.r[i].len);
        }
        collector_free(&c);
        free(outer);
    }
    /* Each archive format inside a tar and inside a zip, plain and named as
     * it is (a .tar inside a .zip, a .7z inside a .tar, ...). */
    static const char *const inner_formats[][2] = {
        {"ustar", "in.tar"}, {"zip", "in.zip"}, {"7zip", "in.7z"}, {"newc", "in.cpio"}, {"iso9660", "in.iso"},
        {"ustar", "in.data"},
    };
    const member one[] = {{"a.txt", 'f', "inner text", 0}};
    for (size_t i = 0; i < sizeof inner_formats / sizeof inner_formats[0]; i++) {
        for (int z = 0; z < 2; z++) {
            size_t li, lo;
            unsigned char *inner = archive_bytes(inner_formats[i][0], "none", one, 1, &li);
            const member wrap[] = {{inner_formats[i][1], 'f', (char *)inner, li}};
            unsigned char *outer = archive_bytes(z ? "zip" : "pax", "none", wrap, 1, &lo);
            collector c = {0};
            record_spec spec;
            assert_int_equal(corpus_parse_mode("file", &spec), 0);
            if (corpus_read_memory("outer", outer, lo, &spec, collect, &c) != 0)
                fail_msg("%s in %s: %s", inner_formats[i][1], z ? "zip" : "tar", err_message());
            char name[64];
            snprintf(name, sizeof name, "%s/a.txt", inner_formats[i][1]);
            const want w[] = {{name, 0, "inner text"}};
            assert_int_equal(compare_records(&c, "outer", w, 1), 0);
            collector_free(&c);
            free(inner);
            free(outer);
        }
    }
    /* Three levels: a tar holding a zip holding a tar.gz holding notes.txt. */
    const member leaf[] = {{"notes.txt", 'f', "deep text", 0}};
    size_t l1, l2, l3;
    unsigned char *tgz = archive_bytes("ustar", "gzip", leaf, 1, &l1);
    const member mid[] = {{"in/x.tar.gz", 'f', (char *)tgz, l1}};
    unsigned char *zip = archive_bytes("zip", "none", mid, 1, &l2);
    const member top[] = {{"y.zip", 'f', (char *)zip, l2}, {"plain.txt", 'f', "shallow", 0}};
    unsigned char *tar = archive_bytes("gnutar", "xz", top, 2, &l3);
    collector c = {0};
    record_spec spec;
    assert_int_equal(corpus_parse_mode("file", &spec), 0);
    assert_int_equal(corpus_read_memory("top.tar.xz", tar, l3, &spec, collect, &c), 0);
    const want w[] = {{"y.zip/in/x.tar.gz/notes.txt", 0, "deep text"}, {"plain.txt", 0, "shallow"}};
    assert_int_equal(compare_records(&c, "top.tar.xz", w, 2), 0);
    collector_free(&c);
    free(tgz);
    free(zip);
    free(tar);
    for (size_t i = 0; i < NF; i++)
        free(data[i]);
}

/* A damaged compressed member is an error naming the archive and member. */
static void test_nested_damage(void **state)
{
    (void)state;
    size_t n, t;
    unsigned char *xz = compressed("xz", "some text that will be cut\n", &n);
    const member m[] = {{"doc/a.txt.xz", 'f', (char *)xz, n / 2}};
    unsigned char *tar = archive_bytes("pax", "none", m, 1, &t);
    collector c = {0};
    record_spec spec;
    assert_int_equal(corpus_parse_mode("line", &spec), 0);
    expect_error(corpus_read_memory("d.tar", tar, t, &spec, collect, &c), "d.tar: doc/a.txt.xz: ");
    collector_free(&c);
    free(tar);
    free(xz);
}

/* ---- names that promise another format, content that is not text ---- */

static void test_name_promises(void **state)
{
    (void)state;
    enum { N = 100 * 1024 };
    unsigned char *noise = malloc(N);
    assert_non_null(noise);
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        noise[i] = (unsigned char)(x >> 24);
    }
    record_spec spec;
    assert_int_equal(corpus_parse_mode("file", &spec), 0);
    collector c = {0};
    static const struct { const char *name, *want; } cases[] = {
        {"x.tar.gz", "x.tar.gz: not a gzip file (its name says it is)"},
        {"x.tgz", "x.tgz: not a gzip-compressed tar archive (its name says it is)"},
        {"x.zst", "x.zst: not a zstd file"}, {"x.xz", "x.xz: not a xz file"},
        {"x.bz2", "x.bz2: not a bzip2 file"}, {"x.zip", "x.zip: not a zip archive"},
        {"x.7z", "x.7z: not a 7z archive"}, {"x.tar", "x.tar: not a tar archive"},
        {"x.lz4", "x.lz4: not a lz4 file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_error(corpus_read_memory(cases[i].name, noise, N, &spec, collect, &c), cases[i].want);
    /* gzip that holds text, not a tar, named .tar.gz; and on disk. */
    size_t n;
    unsigned char *gz = compressed("gzip", "just text", &n);
    expect_error(corpus_read_memory("t.tar.gz", gz, n, &spec, collect, &c),
                 "t.tar.gz: not a tar archive (its name says it is)");
    char path[160];
    path_in_tmp(path, sizeof path, "noise.tar.gz");
    write_file(path, noise, N);
    expect_error(read_path(path, "file", &c), "noise.tar.gz: not a gzip file (its name says it is)");
    /* A member named .gz that is plain text, inside a tar. */
    const member m[] = {{"doc/readme.gz", 'f', "plain", 0}};
    size_t t;
    unsigned char *tar = archive_bytes("pax", "none", m, 1, &t);
    expect_error(corpus_read_memory("d.tar", tar, t, &spec, collect, &c),
                 "d.tar: doc/readme.gz: not a gzip file (its name says it is)");
    /* What the name says, holds: no error. */
    assert_int_equal(corpus_read_memory("ok.txt.gz", gz, n, &spec, collect, &c), 0);
    assert_int_equal(c.n, 1);
    collector_free(&c);
    free(tar);
    free(gz);
    free(noise);
}

static void test_binary_content(void **state)
{
    (void)state;
    record_spec spec;
    assert_int_equal(corpus_parse_mode("file", &spec), 0);
    collector c = {0};
    /* A NUL byte in a member of an archive. */
    const member m[] = {{"a.txt", 'f', "fine", 0}, {"bin/prog", 'f', "ELF\0\1\2", 6}};
    size_t t;
    unsigned char *tar = archive_bytes("pax", "none", m, 2, &t);
    expect_error(corpus_read_memory("b.tar", tar, t, &spec, collect, &c), "b.tar: bin/prog: not text");
    collector_free(&c);
    spec.allow_binary = 1;
    assert_int_equal(corpus_read_memory("b.tar", tar, t, &spec, collect, &c), 0);
    assert_int_equal(c.n, 2);
    collector_free(&c);
    spec.allow_binary = 0;
    /* Many control bytes, no NUL: binary; Latin-1 text and a few stray bytes: text. */
    char ctl[400];
    for (size_t i = 0; i < sizeof ctl; i++)
        ctl[i] = (char)(i % 3 ? 'a' : 1 + i % 7);
    expect_error(corpus_read_memory("ctl", ctl, sizeof ctl, &spec, collect, &c), "ctl: not text");
    const char latin1[] = "Le caf\xe9 est tr\xe8s bon, \xe0 Paris. \xc3\xa9t\xc3\xa9 \xff\xfe ok\n";
    assert_int_equal(corpus_read_memory("l", latin1, sizeof latin1 - 1, &spec, collect, &c), 0);
    assert_int_equal(c.n, 1);
    /* A fortune of the default corpus: half of it bells. Overstrike too. */
    const char bells[] = "Look out!  Behind you!\a\a\a\a\a\a\a\a\a\a\a\a\a\a\a\a\a\a\a\a\a\a";
    const char overstrike[] = "_\bu_\bn_\bd_\be_\br_\bl_\bi_\bn_\be_\bd";
    assert_int_equal(corpus_read_memory("b", bells, sizeof bells - 1, &spec, collect, &c), 0);
    assert_int_equal(corpus_read_memory("o", overstrike, sizeof overstrike - 1, &spec, collect, &c), 0);
    assert_int_equal(c.n, 3);
    collector_free(&c);
    free(tar);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    strcpy(tmp_root, "/tmp/w2s_corpus_XXXXXX");
    return mkdtemp(tmp_root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(tmp_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_mode),
        cmocka_unit_test(test_record_modes),
        cmocka_unit_test(test_block_split_invariance),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_jsonl_nul_and_errors),
        cmocka_unit_test(test_format_filter_matrix),
        cmocka_unit_test(test_directory_walk),
        cmocka_unit_test(test_stdin),
        cmocka_unit_test(test_damaged_archives),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_tar_of_gz_like_directory),
        cmocka_unit_test(test_nested_members),
        cmocka_unit_test(test_nested_damage),
        cmocka_unit_test(test_name_promises),
        cmocka_unit_test(test_binary_content),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
