/* End-to-end test: `pipeline.sh --quick` runs every stage (split, teacher,
 * distill, three students, evaluation) and writes a report with the table;
 * reruns skip exactly the stages whose command and inputs are unchanged.
 * Skipped under the sanitizer build, which does not build the programs the
 * pipeline runs (W2S_ASAN is set by `make asan`). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"

static void test_quick_pipeline(void **state)
{
    (void)state;
    if (getenv("W2S_ASAN"))
        skip();
    char dir[] = "/tmp/w2s-pipeline-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "./pipeline.sh --quick --out %s/work --reports %s/runs > %s/stdout 2>&1",
             dir, dir, dir);
    int status = system(cmd);
    if (status != 0) {
        snprintf(cmd, sizeof cmd, "cat %s/stdout", dir);
        assert_int_equal(system(cmd), 0);
    }
    assert_int_equal(status, 0);

    char runs[512];
    snprintf(runs, sizeof runs, "%s/runs", dir);
    DIR *d = opendir(runs);
    assert_non_null(d);
    struct dirent *e;
    char report[1024] = "";
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            snprintf(report, sizeof report, "%s/%s/report.md", runs, e->d_name);
    closedir(d);
    unsigned char *text;
    size_t len;
    assert_int_equal(file_read_all(report, &text, &len), 0);
    const char *want[] = {"| model | params | test loss", "| teacher |", "| baseline-s1 |",
                          "| w2s-s1 |", "| ceiling-s1 |", "PGR",
                          "| teacher top-1 | tokens | teacher | baseline | w2s | ceiling | gap share |",
                          "| 0.0-0.2 |", "![gap](gap.png)"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        assert_non_null(strstr((const char *)text, want[i]));
    free(text);
    /* both plots, beside the report (gnuplot is one of the pipeline's packages) */
    char *slash = strrchr(report, '/');
    for (size_t i = 0; i < 2; i++) {
        snprintf(slash + 1, sizeof report - (size_t)(slash + 1 - report), "%s", i ? "gap.png" : "curves.png");
        assert_int_equal(file_exists(report), 1);
    }

    /* A rerun does nothing; a retrained teacher (another step count) makes
     * its labels, the students and the evaluations run again even where
     * their command lines are unchanged, and leaves no stale database. */
    snprintf(cmd, sizeof cmd, "./pipeline.sh --quick --out %s/work --reports %s/runs > %s/again 2>&1 && "
             "./pipeline.sh --quick --kd-loss fkl,rkl --kd-weight conf --out %s/work --reports %s/variants "
             "> %s/variant 2>&1 && "
             "./pipeline.sh --quick --teacher-steps 31 --out %s/work --reports %s/runs > %s/retrain 2>&1",
             dir, dir, dir, dir, dir, dir, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/again", dir);
    assert_int_equal(file_read_all(path, &text, &len), 0);
    assert_null(strstr((const char *)text, "== teacher\n"));
    assert_non_null(strstr((const char *)text, "== eval-w2s-s1: up to date"));
    free(text);
    /* KD variants reuse the teacher, labels, baseline and ceiling and get
     * their own stages, report rows and summary lines. */
    snprintf(path, sizeof path, "%s/variant", dir);
    assert_int_equal(file_read_all(path, &text, &len), 0);
    const char *variant_want[] = {"== teacher: up to date", "== distill: up to date", "== baseline-s1: up to date",
                                  "== ceiling-s1: up to date", "== w2s-conf-s1\n", "== w2s-rkl-conf-s1\n",
                                  "| w2s-rkl-conf-s1 |", "| w2s-rkl-conf | --kd-loss rkl --kd-weight conf |",
                                  "w2s-conf: PGR mean"};
    for (size_t i = 0; i < sizeof variant_want / sizeof *variant_want; i++)
        if (!strstr((const char *)text, variant_want[i]))
            fail_msg("the variant run's output lacks '%s'", variant_want[i]);
    free(text);
    snprintf(path, sizeof path, "%s/retrain", dir);
    assert_int_equal(file_read_all(path, &text, &len), 0);
    const char *rerun[] = {"== teacher\n", "== distill\n", "== w2s-s1\n", "== eval-teacher\n", "== eval-w2s-s1\n"};
    for (size_t i = 0; i < sizeof rerun / sizeof *rerun; i++)
        assert_non_null(strstr((const char *)text, rerun[i]));
    free(text);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quick_pipeline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
