/* Tests of `distill split`: parts read back under the default record mode
 * (--records file, what train and distill use unless told otherwise) give
 * exactly the records that went in, also records holding a line that is only
 * "%" (which once stopped the split of the whole corpus), and every record
 * lands in exactly one part. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "support_cli.h"
#include "text/corpus.h"

typedef struct texts { char **r; size_t n; } texts;

static int gather(void *ctx, const corpus_record *rec)
{
    texts *t = ctx;
    char **grown = realloc(t->r, (t->n + 1) * sizeof *t->r);
    assert_non_null(grown);
    t->r = grown;
    assert_non_null(t->r[t->n] = strndup((const char *)rec->data, rec->len));
    t->n++;
    return 0;
}

static void read_all(const char *path, const char *mode, texts *t)
{
    record_spec spec;
    assert_int_equal(corpus_parse_mode(mode, &spec), 0);
    if (corpus_read(path, &spec, gather, t) != 0)
        fail_msg("%s", err_message());
}

static int by_text(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static void texts_free(texts *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->r[i]);
    free(t->r);
}

static void test_split_reads_back_under_default_mode(void **state)
{
    (void)state;
    char *dir = scli_tempdir("split");
    assert_non_null(dir);
    char *corpus = scli_path(dir, "corpus.txt"), *a = scli_path(dir, "a.tar"), *b = scli_path(dir, "b.tar");
    FILE *f = fopen(corpus, "w");
    assert_non_null(f);
    /* Paragraph records; the second and fourth hold "%" lines (LF and CRLF). */
    fputs("first record\nline two\n\nsecond\n%\nafter the percent line\n\n%\n\n"
          "third %\n\nfourth\r\n%\r\nend\n\n", f);
    for (int i = 0; i < 40; i++)
        fprintf(f, "record number %d\n\n", i);
    assert_int_equal(fclose(f), 0);
    const char *argv[] = {"distill", "split", "--records", "paragraph", "--input", corpus, "--out", dir,
                          "--parts", "a:50,b:50", "--quiet", NULL};
    scli_result r;
    assert_int_equal(scli_run(argv, &r), 0);
    if (r.status != 0)
        fail_msg("split failed: %s", r.err);
    scli_result_free(&r);

    texts in = {0}, parts = {0};
    read_all(corpus, "paragraph", &in);
    read_all(a, "file", &parts);
    read_all(b, "file", &parts);
    assert_int_equal(parts.n, in.n);
    assert_int_equal(in.n, 4 + 40 + 1);   /* "%" alone is a paragraph record too */
    /* The same records (each part keeps input order; compared as sets). */
    qsort(in.r, in.n, sizeof *in.r, by_text);
    qsort(parts.r, parts.n, sizeof *parts.r, by_text);
    for (size_t i = 0; i < in.n; i++)
        assert_string_equal(parts.r[i], in.r[i]);
    assert_non_null(bsearch(&(const char *){"second\n%\nafter the percent line"}, parts.r, parts.n,
                            sizeof *parts.r, by_text));
    assert_non_null(bsearch(&(const char *){"fourth\r\n%\r\nend"}, parts.r, parts.n, sizeof *parts.r, by_text));
    texts_free(&in);
    texts_free(&parts);
    free(corpus);
    free(a);
    free(b);
    scli_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_reads_back_under_default_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
