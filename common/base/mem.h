/* mem: checked allocation. Every function returns NULL after err_set() naming
 * what was being allocated and how much, so callers only propagate.
 *
 * The first touch of fresh memory is slow on these machines (README, "Memory
 * and speed"):
 * big buffers are allocated once at start-up with mem_alloc_big(), which
 * touches (zeroes) every page immediately, and reused afterwards. */
#ifndef W2S_MEM_H
#define W2S_MEM_H

#include <stddef.h>

void *mem_alloc(size_t size, const char *what);
/* Zeroed array of count * size bytes; the product is overflow-checked. */
void *mem_calloc(size_t count, size_t size, const char *what);
void *mem_realloc(void *ptr, size_t size, const char *what);
/* Grows *ptr (of *capacity elements of elem_size) to hold at least need
 * elements, doubling. @return 0, or -1 with *ptr untouched. */
int mem_reserve(void **ptr, size_t *capacity, size_t need, size_t elem_size, const char *what);
/* 64-byte aligned, zeroed (pages touched now). Release with mem_free_big(). */
void *mem_alloc_big(size_t size, const char *what);
void mem_free_big(void *ptr);
/* Copy of a NUL-terminated string. */
char *mem_strdup(const char *s);

#endif
