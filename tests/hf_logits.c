/* hf_logits: the logits w2s computes for one sequence, for the manual parity
 * check tests/hf_parity.py (not part of make test; build it with
 * `make build/tests/hf_logits`).
 *
 *   hf_logits MODEL.ckpt OUT.bin ID...
 *
 * runs MODEL.ckpt's inference forward (the path of train --eval and distill)
 * over the ids as one row, position i attending to 0..i, and writes the
 * logits (n, V) to OUT.bin as little-endian float32. Exit 0, or 1 with the
 * reason on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "base/cli.h"
#include "base/err.h"
#include "nn/checkpoint.h"
#include "nn/model.h"

int main(int argc, char **argv)
{
    if (argc < 4)
        cli_die("hf_logits", EXIT_USAGE, "usage: hf_logits MODEL.ckpt OUT.bin ID...");
    checkpoint ck;
    if (checkpoint_read(argv[1], &ck) < 0)
        cli_die("hf_logits", 1, err_message());
    int n = argc - 3;
    int32_t *ids = calloc((size_t)n, sizeof *ids), *pos = calloc((size_t)n, sizeof *pos);
    if (!ids || !pos)
        cli_die("hf_logits", 1, "out of memory");
    for (int i = 0; i < n; i++) {
        ids[i] = (int32_t)cli_int_arg("hf_logits", "ID", argv[3 + i], 0, ck.config.vocab - 1);
        pos[i] = i;
    }
    model *m = model_create_inference(&ck.config, 1, 1);
    if (!m)
        cli_die("hf_logits", 1, err_message());
    memcpy(model_params(m), ck.params, model_num_params(m) * sizeof(float));
    const float *logits = model_forward(m, ids, pos, 1, n);
    if (!logits)
        cli_die("hf_logits", 1, err_message());
    FILE *fp = fopen(argv[2], "wb");
    size_t count = (size_t)n * (size_t)ck.config.vocab;
    for (size_t i = 0; fp && i < count; i++) {
        unsigned char b[4];
        uint32_t bits;
        memcpy(&bits, &logits[i], 4);
        bytes_put_u32(b, bits);
        if (fwrite(b, 1, 4, fp) != 4)
            break;
    }
    if (!fp || fclose(fp) != 0)
        cli_die("hf_logits", 1, "cannot write the logits");
    model_free(m);
    checkpoint_free(&ck);
    free(ids);
    free(pos);
    return 0;
}
