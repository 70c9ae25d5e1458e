/* cli: checked number parsing for command lines, and its exit-on-error
 * forms for option parsers; see cli.h. */
#include "base/cli.h"

#include "base/err.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int cli_parse_int(const char *opt, const char *text, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    long long scale = 1;
    if (end != text && *end && !end[1]) {
        switch (*end) {
        case 'k': case 'K': scale = 1000; end++; break;
        case 'M': scale = 1000000; end++; break;
        case 'G': scale = 1000000000; end++; break;
        default: break;
        }
    }
    if (end == text || *end || errno == ERANGE || (v > 0 && v > LLONG_MAX / scale) ||
        (v < 0 && v < LLONG_MIN / scale) || v * scale < min || v * scale > max)
        return err_set("%s: '%s' is not an integer in [%lld, %lld]", opt, text, min, max);
    *out = v * scale;
    return 0;
}

int cli_parse_double(const char *opt, const char *text, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || errno == ERANGE || !isfinite(v) || v < min || v > max)
        return err_set("%s: '%s' is not a number in [%g, %g]", opt, text, min, max);
    *out = v;
    return 0;
}

int cli_parse_shard(const char *opt, const char *text, int *index, int *count)
{
    char *end;
    errno = 0;
    long i = strtol(text, &end, 10);
    if (end == text || *end != '/')
        goto bad;
    const char *rest = end + 1;
    long n = strtol(rest, &end, 10);
    if (end == rest || *end || errno == ERANGE || n < 1 || n > 1000000 || i < 0 || i >= n)
        goto bad;
    *index = (int)i;
    *count = (int)n;
    return 0;
bad:
    return err_set("%s: '%s' is not a shard I/N with 0 <= I < N", opt, text);
}

void cli_die(const char *prog, int code, const char *message)
{
    fprintf(stderr, "%s: %s\n", prog, message);
    exit(code);
}

long long cli_int_arg(const char *prog, const char *opt, const char *text, long long min, long long max)
{
    long long v;
    if (cli_parse_int(opt, text, min, max, &v) < 0)
        cli_die(prog, EXIT_USAGE, err_message());
    return v;
}

double cli_double_arg(const char *prog, const char *opt, const char *text, double min, double max)
{
    double v;
    if (cli_parse_double(opt, text, min, max, &v) < 0)
        cli_die(prog, EXIT_USAGE, err_message());
    return v;
}
