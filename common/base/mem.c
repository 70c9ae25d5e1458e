/* mem: checked allocation; see mem.h. */
#include "base/mem.h"

#include "base/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void *mem_alloc(size_t size, const char *what)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        err_set("out of memory allocating %zu bytes for %s", size, what);
    return p;
}

void *mem_calloc(size_t count, size_t size, const char *what)
{
    if (size && count > SIZE_MAX / size) {
        err_set("size overflow allocating %zu x %zu bytes for %s", count, size, what);
        return NULL;
    }
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        err_set("out of memory allocating %zu x %zu bytes for %s", count, size, what);
    return p;
}

void *mem_realloc(void *ptr, size_t size, const char *what)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        err_set("out of memory growing %s to %zu bytes", what, size);
    return p;
}

int mem_reserve(void **ptr, size_t *capacity, size_t need, size_t elem_size, const char *what)
{
    if (need <= *capacity)
        return 0;
    size_t cap = *capacity ? *capacity : 16;
    while (cap < need) {
        if (cap > SIZE_MAX / 2 / elem_size)
            return err_set("size overflow growing %s to %zu elements", what, need);
        cap *= 2;
    }
    void *p = mem_realloc(*ptr, cap * elem_size, what);
    if (!p)
        return -1;
    *ptr = p;
    *capacity = cap;
    return 0;
}

/* Buffers of a huge page or more are aligned to it and offered to the
 * kernel's transparent huge pages: the first touch then faults once per
 * 2 MiB instead of once per 4 KiB, which is most of its cost here (README,
 * "Memory and speed"). The advice is only advice: without THP the pages are small. */
enum { HUGE_PAGE = 2 << 20 };

void *mem_alloc_big(size_t size, const char *what)
{
    size_t align = size >= HUGE_PAGE ? HUGE_PAGE : 64;
    size_t rounded = (size + align - 1) & ~(align - 1);
    if (rounded < size) {
        err_set("size overflow allocating %zu bytes for %s", size, what);
        return NULL;
    }
    void *p = aligned_alloc(align, rounded ? rounded : align);
    if (!p) {
        err_set("out of memory allocating %zu bytes for %s", size, what);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    if (align == HUGE_PAGE)
        (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
    memset(p, 0, rounded);
    return p;
}

void mem_free_big(void *ptr)
{
    free(ptr);
}

char *mem_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = mem_alloc(n, "string");
    if (p)
        memcpy(p, s, n);
    return p;
}
