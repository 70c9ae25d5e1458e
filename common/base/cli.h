/* cli: the conventions every w2s program follows on its command line.
 *
 * Options are parsed with getopt_long. --help prints usage to stdout and exits
 * 0; --version prints "w2s <version>"; a bad option or value prints one line
 * "<prog>: <problem>" to stderr and exits 2. Numbers are parsed with range and
 * overflow checks by the helpers below, which set err_message() on failure. */
#ifndef W2S_CLI_H
#define W2S_CLI_H

#include <stdint.h>

#define W2S_VERSION "0.1.0"

/* Exit codes shared by the programs. */
enum { EXIT_USAGE = 2 };

/* Integer in [min, max]; accepts k/M/G suffixes (x1000). opt names the option
 * in the message, e.g. "--batch: 'x' is not an integer in [1, 4096]". */
int cli_parse_int(const char *opt, const char *text, long long min, long long max, long long *out);
/* Finite real number in [min, max]. */
int cli_parse_double(const char *opt, const char *text, double min, double max, double *out);
/* "I/N" with 0 <= I < N. */
int cli_parse_shard(const char *opt, const char *text, int *index, int *count);

/* Prints "<prog>: <message>" to stderr and exits with code. For main() only. */
_Noreturn void cli_die(const char *prog, int code, const char *message);

/* cli_parse_int / cli_parse_double for option parsers in main(): the value,
 * or on a bad one "<prog>: <problem>" on stderr and exit EXIT_USAGE. */
long long cli_int_arg(const char *prog, const char *opt, const char *text, long long min, long long max);
double cli_double_arg(const char *prog, const char *opt, const char *text, double min, double max);

#endif
