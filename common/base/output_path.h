/* output_path: the checks every program makes before it writes an output, so
 * that a run never destroys a user's file (README, "Determinism and resume").
 *
 * An output may go to a new path, to an empty file, or over a file of the
 * same kind that w2s itself made (the caller says how to recognise one: a
 * checkpoint's magic, the first line of a metrics file, ...). Anything else is
 * refused: "<path>: exists and is not a <kind> (refusing to overwrite it)".
 * An output is also refused when it is one of the run's inputs, compared by
 * device and inode when both exist, else by the real path of their folders. */
#ifndef W2S_OUTPUT_PATH_H
#define W2S_OUTPUT_PATH_H

#include <stddef.h>

/* Says whether the existing, non-empty file path is of the output's kind.
 * @return 1 yes, 0 no, -1 + message when it cannot be read. */
typedef int (*output_kind_fn)(const char *path);

/* @return 0 when path may be written (missing, empty, or is_kind says 1),
 * -1 + message otherwise. kind names it in the message ("w2s checkpoint"). */
int output_path_check(const char *path, const char *kind, output_kind_fn is_kind);

/* 1 when a and b name the same file (existing or not), else 0. "-" (stdin or
 * stdout) is never the same as anything. */
int output_path_same(const char *a, const char *b);

/* Refuses writing out (given as out_opt) when it is other, an input or
 * another output (given as other_opt): "<out>: <out_opt> is also <other_opt>
 * (refusing to overwrite it)". other may be NULL (option not given).
 * @return 0 / -1 + message. */
int output_path_distinct(const char *out, const char *out_opt, const char *other, const char *other_opt);

/* 1 when the existing file path starts with the n bytes prefix, 0 when it
 * does not, -1 + message when it cannot be read: the usual is_kind test. */
int output_path_starts_with(const char *path, const void *prefix, size_t n);

#endif
