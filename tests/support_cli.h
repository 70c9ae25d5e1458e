/* support_cli: helpers for black-box tests and benches that run the w2s
 * programs as subprocesses.
 *
 * Programs are found in $BUILD (default "build"), so the same test checks the
 * sanitizer builds under `make asan`. A run captures the exit status, stdout
 * and stderr; a spawn returns the child pid for kill tests, optionally with a
 * file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored so write() fails with EFBIG).
 * Also: temporary directories (removed recursively), whole-file XXH3 hashes,
 * small file writers, and a tiny teacher built through `train` itself.
 *
 * Functions return 0 / a pointer on success and -1 / NULL on failure with a
 * message on stderr; they never abort, so a cmocka test asserts on them. */
#ifndef W2S_SUPPORT_CLI_H
#define W2S_SUPPORT_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The outcome of one program run. status: the exit code, or 128 + signal
 * when the child was killed. out/err: NUL-terminated captured streams. */
typedef struct scli_result {
    int status;
    char *out, *err;
    size_t out_len, err_len;
} scli_result;

/* Path of program name ("train", "distill") in $BUILD, in a static buffer
 * valid until the next call. */
const char *scli_program(const char *name);

/* Runs $BUILD/argv[0] with argv (NULL-terminated), stdin from /dev/null,
 * capturing both streams. @return 0 when the child ran (whatever its
 * status), -1 if it could not be started. Free with scli_result_free. */
int scli_run(const char *const *argv, scli_result *res);
/* scli_run in directory cwd (NULL = current); relative paths in argv are
 * then relative to cwd, the program is still found from here. */
int scli_run_in(const char *cwd, const char *const *argv, scli_result *res);
void scli_result_free(scli_result *res);

/* Starts $BUILD/argv[0] with stdout and stderr appended to log (NULL =
 * /dev/null) in directory cwd (NULL = current). fsize_limit > 0 sets
 * RLIMIT_FSIZE to that many bytes in the child and ignores SIGXFSZ.
 * @return the pid, or -1. */
pid_t scli_spawn(const char *const *argv, const char *cwd, const char *log, long long fsize_limit);
/* Waits for pid. @return its exit code, 128 + signal, or -1. */
int scli_wait(pid_t pid);

/* Counts the lines of text (a last line without '\n' counts). */
int scli_count_lines(const char *text);

/* Creates a fresh directory under $TMPDIR (default /tmp) named
 * w2s-<tag>-XXXXXX. @return a malloc'ed path or NULL. */
char *scli_tempdir(const char *tag);
/* Removes path recursively (like rm -rf; missing is fine). @return 0 or -1. */
int scli_rmtree(const char *path);
/* malloc'ed "dir/name". */
char *scli_path(const char *dir, const char *name);

/* XXH3-64 of the whole file into *hash. @return 0, or -1 if unreadable. */
int scli_hash_file(const char *path, uint64_t *hash);
/* Creates/overwrites path with len bytes. @return 0 or -1. */
int scli_write_file(const char *path, const void *data, size_t len);
/* Copies src to dst. @return 0 or -1. */
int scli_copy_file(const char *src, const char *dst);
/* Truncates path to len bytes. @return 0 or -1. */
int scli_truncate(const char *path, off_t len);
/* XORs the byte at offset (negative: from the end) with mask. @return 0 or -1. */
int scli_flip_byte(const char *path, long long offset, unsigned char mask);

/* Writes n fortune-style records ("%" lines between them) of deterministic
 * generated text to path; every 16th record is ~4x longer. @return 0 or -1. */
int scli_write_fortunes(const char *path, uint64_t seed, int n);

/* Trains a tiny teacher (L1 H2 C32 T32, plain LM, given vocab) on the fortune
 * file gt with `train`, writing out. steps as given, one thread, fixed seed.
 * @return 0, or -1 (stderr of train printed). */
int scli_make_teacher(const char *gt, const char *out, int steps, int vocab);

#endif
