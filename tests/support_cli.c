/* support_cli: subprocess runs, temporary directories, file hashing and
 * fixtures for black-box tests of the w2s programs (see support_cli.h).
 * Output is captured through unlinked temporary files rather than pipes, so
 * a chatty child can never block on a full pipe. */
#include "support_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/fileio.h"
#include "base/rng.h"

const char *scli_program(const char *name)
{
    static char path[1024];
    const char *build = getenv("BUILD");
    snprintf(path, sizeof path, "%s/%s", build && *build ? build : "build", name);
    return path;
}

/* Reads the whole of fd (rewound) into a NUL-terminated malloc'ed buffer. */
static char *read_fd(int fd, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf || lseek(fd, 0, SEEK_SET) < 0) {
        free(buf);
        return NULL;
    }
    for (;;) {
        if (n + 1 >= cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            free(buf);
            return NULL;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* An unlinked temporary file for a child's stream. */
static int temp_fd(void)
{
    const char *tmp = getenv("TMPDIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/w2s-cli-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd >= 0)
        unlink(path);
    return fd;
}

/* In the child: redirects, limits, execs; never returns. */
static _Noreturn void child_exec(const char *const *argv, const char *cwd, int fd_out, int fd_err,
                                 long long fsize_limit)
{
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(fd_out >= 0 ? fd_out : null_fd, 1) < 0 ||
        dup2(fd_err >= 0 ? fd_err : null_fd, 2) < 0)
        _exit(127);
    /* Resolve the program before leaving the parent's directory. */
    char prog[PATH_MAX];
    if (!realpath(argv[0][0] == '/' ? argv[0] : scli_program(argv[0]), prog))
        _exit(127);
    if (cwd && chdir(cwd) != 0)
        _exit(127);
    if (fsize_limit > 0) {
        /* Ignored SIGXFSZ stays ignored across exec: write() then fails with
         * EFBIG, which is what a program sees on a full disk. */
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {.rlim_cur = (rlim_t)fsize_limit, .rlim_max = (rlim_t)fsize_limit};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(127);
    }
    execv(prog, (char *const *)argv);
    _exit(127);
}

int scli_run(const char *const *argv, scli_result *res)
{
    return scli_run_in(NULL, argv, res);
}

int scli_run_in(const char *cwd, const char *const *argv, scli_result *res)
{
    memset(res, 0, sizeof *res);
    int fo = temp_fd(), fe = temp_fd();
    if (fo < 0 || fe < 0) {
        perror("scli_run: temporary file");
        goto fail;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("scli_run: fork");
        goto fail;
    }
    if (pid == 0)
        child_exec(argv, cwd, fo, fe, 0);
    res->status = scli_wait(pid);
    res->out = read_fd(fo, &res->out_len);
    res->err = read_fd(fe, &res->err_len);
    close(fo);
    close(fe);
    if (res->status < 0 || !res->out || !res->err) {
        scli_result_free(res);
        return -1;
    }
    return 0;
fail:
    if (fo >= 0)
        close(fo);
    if (fe >= 0)
        close(fe);
    return -1;
}

void scli_result_free(scli_result *res)
{
    free(res->out);
    free(res->err);
    res->out = res->err = NULL;
}

pid_t scli_spawn(const char *const *argv, const char *cwd, const char *log, long long fsize_limit)
{
    int fd = -1;
    if (log && (fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644)) < 0) {
        perror(log);
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        perror("scli_spawn: fork");
    if (pid == 0)
        child_exec(argv, cwd, fd, fd, fsize_limit);
    if (fd >= 0)
        close(fd);
    return pid;
}

int scli_wait(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("scli_wait");
            return -1;
        }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int scli_count_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p; p++)
        if (*p == '\n' || p[1] == '\0')
            n++;
    return n;
}

char *scli_tempdir(const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/w2s-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    if (!mkdtemp(path)) {
        perror(path);
        return NULL;
    }
    return strdup(path);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT) {
        perror(path);
        return -1;
    }
    return 0;
}

int scli_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    /* Read-only directories made by a test must not stop the clean-up. */
    if (S_ISDIR(st.st_mode))
        chmod(path, 0755);
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

char *scli_path(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%s/%s", dir, name);
    return p;
}

int scli_hash_file(const char *path, uint64_t *hash)
{
    unsigned char *data;
    size_t len;
    if (file_read_all(path, &data, &len) != 0)
        return -1;
    *hash = XXH3_64bits(data, len);
    free(data);
    return 0;
}

int scli_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return -1;
    }
    int ok = fwrite(data, 1, len, f) == len;
    if (fclose(f) != 0 || !ok) {
        perror(path);
        return -1;
    }
    return 0;
}

int scli_copy_file(const char *src, const char *dst)
{
    unsigned char *data;
    size_t len;
    if (file_read_all(src, &data, &len) != 0) {
        fprintf(stderr, "scli_copy_file: cannot read %s\n", src);
        return -1;
    }
    int rc = scli_write_file(dst, data, len);
    free(data);
    return rc;
}

int scli_truncate(const char *path, off_t len)
{
    if (truncate(path, len) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

int scli_flip_byte(const char *path, long long offset, unsigned char mask)
{
    int fd = open(path, O_RDWR);
    if (fd < 0) {
        perror(path);
        return -1;
    }
    struct stat st;
    int rc = -1;
    if (fstat(fd, &st) != 0)
        goto done;
    off_t at = offset < 0 ? st.st_size + offset : offset;
    unsigned char b;
    if (at < 0 || at >= st.st_size || pread(fd, &b, 1, at) != 1)
        goto done;
    b ^= mask;
    if (pwrite(fd, &b, 1, at) != 1)
        goto done;
    rc = 0;
done:
    if (rc != 0)
        fprintf(stderr, "scli_flip_byte: %s: cannot flip byte %lld\n", path, offset);
    close(fd);
    return rc;
}

static const char *const fortune_words[] = {
    "the", "a", "cat", "dog", "sat", "on", "mat", "and", "ran", "far", "away", "from",
    "home", "while", "it", "rained", "all", "day", "long", "but", "nobody", "cared",
    "because", "coffee", "was", "hot", "never", "trust", "computer", "you", "cannot",
    "see", "fortune", "favors", "bold", "bugs", "are", "features", "in", "disguise",
};

int scli_write_fortunes(const char *path, uint64_t seed, int n)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    rng_state rng;
    rng_seed(&rng, seed);
    size_t nwords = sizeof fortune_words / sizeof *fortune_words;
    for (int r = 0; r < n; r++) {
        int nw = 3 + (int)rng_below(&rng, r % 16 == 15 ? 60 : 15);
        for (int w = 0; w < nw; w++)
            fprintf(f, "%s%s", w ? (w % 10 == 0 ? "\n" : " ") : "",
                    fortune_words[rng_below(&rng, nwords)]);
        fputs(".\n%\n", f);
    }
    if (fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

int scli_make_teacher(const char *gt, const char *out, int steps, int vocab)
{
    char steps_s[32], vocab_s[32];
    snprintf(steps_s, sizeof steps_s, "%d", steps);
    snprintf(vocab_s, sizeof vocab_s, "%d", vocab);
    const char *argv[] = {"train", "--gt", gt, "--records", "fortune", "--out", out,
                          "--layers", "1", "--heads", "2", "--channels", "32", "--seq", "32",
                          "--vocab", vocab_s, "--steps", steps_s, "--batch", "4",
                          "--checkpoint-every", "0", "--threads", "1", "--seed", "1", "--quiet",
                          NULL};
    scli_result r;
    if (scli_run(argv, &r) != 0)
        return -1;
    int rc = r.status == 0 ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "scli_make_teacher: train exited %d:\n%s", r.status, r.err);
    scli_result_free(&r);
    return rc;
}
