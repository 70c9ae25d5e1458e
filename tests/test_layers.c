/* Tests of tests/check_layers.sh, the include rule of README "Module map":
 * the repository passes; small fake trees written to a temporary directory
 * fail, naming file:line and the rule, for an include of a higher layer,
 * distill/ and train/ including each other, two modules including each
 * other's headers and two headers including each other; a tree that only
 * includes downwards passes. Run from the repository root (as `make test`
 * does). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support_cli.h"

typedef struct outcome {
    int status;      /* exit status of the script */
    char out[8192];  /* stdout and stderr */
} outcome;

/* Runs the script on root. */
static void check(const char *root, outcome *o)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh tests/check_layers.sh '%s' 2>&1", root);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(o->out, 1, sizeof o->out - 1, p);
    o->out[n] = '\0';
    int status = pclose(p);
    assert_true(WIFEXITED(status));
    o->status = WEXITSTATUS(status);
}

/* Writes text to dir/rel, creating the folders of rel. */
static void put(const char *dir, const char *rel, const char *text)
{
    char *path = scli_path(dir, rel);
    assert_non_null(path);
    for (char *s = strchr(path + strlen(dir) + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        assert_true(mkdir(path, 0755) == 0 || access(path, F_OK) == 0);
        *s = '/';
    }
    assert_int_equal(scli_write_file(path, text, strlen(text)), 0);
    free(path);
}

/* A fake tree of files {path, text, ...}, NULL-terminated; the outcome of
 * the script on it. */
static void check_tree(const char *const *files, outcome *o)
{
    char *dir = scli_tempdir("layers");
    assert_non_null(dir);
    for (int i = 0; files[i]; i += 2)
        put(dir, files[i], files[i + 1]);
    check(dir, o);
    assert_int_equal(scli_rmtree(dir), 0);
    free(dir);
}

static void assert_fails_with(const char *const *files, const char *where, const char *rule)
{
    outcome o;
    check_tree(files, &o);
    if (o.status != 1 || !strstr(o.out, where) || !strstr(o.out, rule))
        fail_msg("want exit 1 naming %s and '%s', got exit %d:\n%s", where, rule, o.status, o.out);
}

static void test_repository_passes(void **state)
{
    (void)state;
    outcome o;
    check(".", &o);
    if (o.status != 0)
        fail_msg("check_layers.sh fails on the repository:\n%s", o.out);
}

static void test_downward_includes_pass(void **state)
{
    (void)state;
    const char *const files[] = {
        "common/base/x.h", "",
        "common/base/x.c", "#include \"base/x.h\"\n",
        "common/nn/model.h", "#include \"base/x.h\"\n",
        "common/nn/model.c", "#include \"nn/model.h\"\n#include \"base/x.h\"\n",
        "train/main.c", "#include \"nn/model.h\"\n#include \"local.h\"\n",
        "train/local.h", "",
        "tests/test_x.c", "#include \"../train/local.h\"\n#include \"nn/model.h\"\n",
        NULL};
    outcome o;
    check_tree(files, &o);
    if (o.status != 0)
        fail_msg("a tree that includes downwards fails:\n%s", o.out);
}

static void test_upward_include_fails(void **state)
{
    (void)state;
    const char *const files[] = {
        "common/nn/model.h", "",
        "common/base/x.c", "/* x */\n#include <stdio.h>\n#include \"nn/model.h\"\n",
        NULL};
    assert_fails_with(files, "common/base/x.c:3:", "only its own and lower layers");
}

static void test_programs_apart(void **state)
{
    (void)state;
    const char *const files[] = {
        "train/objective.h", "",
        "distill/main.c", "#include \"../train/objective.h\"\n",
        NULL};
    assert_fails_with(files, "distill/main.c:1:", "distill/ and train/ may not include each other");
}

static void test_module_cycle_fails(void **state)
{
    (void)state;
    const char *const files[] = {
        "common/text/a.h", "", "common/text/b.h", "",
        "common/text/a.c", "#include \"text/a.h\"\n#include \"text/b.h\"\n",
        "common/text/b.c", "#include \"text/b.h\"\n#include \"text/a.h\"\n",
        NULL};
    assert_fails_with(files, "common/text/a.c:2:", "include cycle");
}

static void test_header_cycle_fails(void **state)
{
    (void)state;
    const char *const files[] = {
        "common/nn/p.h", "#include \"q.h\"\n",
        "common/nn/q.h", "#include \"p.h\"\n",
        NULL};
    assert_fails_with(files, "common/nn/p.h:1:", "include cycle");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repository_passes),
        cmocka_unit_test(test_downward_includes_pass),
        cmocka_unit_test(test_upward_include_fails),
        cmocka_unit_test(test_programs_apart),
        cmocka_unit_test(test_module_cycle_fails),
        cmocka_unit_test(test_header_cycle_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
