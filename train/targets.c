/* targets: next-token targets of packed windows; see targets.h. */
#include "targets.h"

void targets_clear(int32_t *targets, long cells)
{
    for (long i = 0; i < cells; i++)
        targets[i] = -1;
}

long targets_place_window(packer *p, int32_t *targets, const int32_t *tok, int len)
{
    long off = packer_place(p, tok, len);
    for (int j = 0; off >= 0 && j + 1 < len; j++)
        targets[off + j] = tok[j + 1];
    return off;
}
