/* window: window cutting and row packing; see window.h. */
#include "text/window.h"

#include <string.h>

size_t window_count(size_t n_tokens, int T)
{
    if (n_tokens < 2)
        return 0;
    size_t stride = (size_t)T - 1;
    return (n_tokens - 1 + stride - 1) / stride;
}

void window_span(size_t index, size_t n_tokens, int T, size_t *start, size_t *len)
{
    size_t s = index * ((size_t)T - 1);
    size_t l = n_tokens - s;
    *start = s;
    *len = l < (size_t)T ? l : (size_t)T;
}

void packer_reset(packer *p, int rows, int T, int32_t *tokens, int32_t *pos)
{
    p->rows = rows;
    p->T = T;
    p->tokens = tokens;
    p->pos = pos;
    p->row = 0;
    p->col = 0;
    memset(tokens, 0, sizeof *tokens * (size_t)rows * (size_t)T);
    memset(pos, 0, sizeof *pos * (size_t)rows * (size_t)T);
}

long packer_place(packer *p, const int32_t *tokens, int len)
{
    if (p->col + len > p->T) {
        p->row++;
        p->col = 0;
    }
    if (p->row >= p->rows || len > p->T)
        return -1;
    long offset = (long)p->row * p->T + p->col;
    memcpy(p->tokens + offset, tokens, sizeof *tokens * (size_t)len);
    for (int i = 0; i < len; i++)
        p->pos[offset + i] = i;
    p->col += len;
    return offset;
}

int packer_rows_used(const packer *p)
{
    if (p->row >= p->rows)
        return p->rows;
    return p->row + (p->col > 0);
}
