/* output_path: the refusals of output_path.h, on stat(2) and realpath(3). */
#include "base/output_path.h"

#include "base/err.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int output_path_starts_with(const char *path, const void *prefix, size_t n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return err_errno(path, "cannot open to check what it is");
    unsigned char head[64];
    size_t got = n <= sizeof head ? fread(head, 1, n, fp) : 0;
    fclose(fp);
    return got == n && memcmp(head, prefix, n) == 0;
}

int output_path_check(const char *path, const char *kind, output_kind_fn is_kind)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? 0 : err_errno(path, "cannot check the output");
    if (S_ISDIR(st.st_mode))
        return err_set("%s: exists and is a directory, not a %s (refusing to overwrite it)", path, kind);
    if (S_ISREG(st.st_mode) && st.st_size == 0)
        return 0;
    int ours = S_ISREG(st.st_mode) ? is_kind(path) : 0;
    if (ours < 0)
        return -1;
    if (!ours)
        return err_set("%s: exists and is not a %s (refusing to overwrite it)", path, kind);
    return 0;
}

/* The real path of path's folder followed by its last component, in out
 * (PATH_MAX + NAME_MAX bytes). @return 0, or -1 when the folder is missing. */
static int canonical(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    char real[PATH_MAX];
    if (!realpath(dir, real))
        return -1;
    snprintf(out, size, "%s/%s", real, slash ? slash + 1 : path);
    return 0;
}

int output_path_same(const char *a, const char *b)
{
    if (!a || !b || strcmp(a, "-") == 0 || strcmp(b, "-") == 0)
        return 0;
    struct stat sa, sb;
    int ha = stat(a, &sa) == 0, hb = stat(b, &sb) == 0;
    if (ha && hb)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    if (ha || hb)
        return 0;
    char ca[PATH_MAX + NAME_MAX + 2], cb[PATH_MAX + NAME_MAX + 2];
    return canonical(a, ca, sizeof ca) == 0 && canonical(b, cb, sizeof cb) == 0 && strcmp(ca, cb) == 0;
}

int output_path_distinct(const char *out, const char *out_opt, const char *other, const char *other_opt)
{
    if (output_path_same(out, other))
        return err_set("%s: %s is also %s (refusing to overwrite it)", out, out_opt, other_opt);
    return 0;
}
