/* libFuzzer target: arbitrary bytes as a labels.db file. Opening it
 * read-only, reading its meta, selecting every sequence, reading each row and
 * decoding its soft-label blob must each succeed or fail with a message,
 * never crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_file.h"
#include "labels/labels_db.h"
#include "labels/softlabel.h"

#define MAX_TOKENS 4096
#define MAX_K 1024
#define FUZZ_MAX_VOCAB (1 << 18)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_all(labels_db *db, softlabel_codec *c)
{
    static int32_t tokens[MAX_TOKENS];
    static int32_t ids[64 * MAX_K];
    static float lp[64 * MAX_K], tail[64];
    static unsigned char *blob;
    static size_t cap;
    labels_meta meta;
    /* Beyond 16-bit ids, but not the format's 2^24: a decoder's scratch grows
     * with the vocabulary, and the fuzzer is after crashes, not memory. */
    int vocab = FUZZ_MAX_VOCAB;
    if (labels_db_meta(db, &meta) == 0) {
        if (meta.teacher_config.vocab >= 1 && meta.teacher_config.vocab <= FUZZ_MAX_VOCAB)
            vocab = meta.teacher_config.vocab;
        labels_meta_free(&meta);
    }
    int64_t *seq_ids, seqs, toks;
    size_t n;
    (void)labels_db_count(db, &seqs, &toks);
    if (labels_db_select_ids(db, NULL, 0, &seq_ids, &n) < 0)
        return;
    for (size_t i = 0; i < n && i < 64; i++) {
        int n_tokens, n_pos, k;
        size_t len;
        if (labels_db_read(db, seq_ids[i], tokens, MAX_TOKENS, &n_tokens, &blob, &cap, &len) == 0)
            (void)softlabel_decode(c, blob, len, vocab, 64, MAX_K, ids, lp, tail, &n_pos, &k);
    }
    free(seq_ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64], wal[80], shm[80];
    static softlabel_codec *c;
    if (!path[0]) {
        fuzz_input_path(path, sizeof path, "labels", ".db");
        snprintf(wal, sizeof wal, "%s-wal", path);
        snprintf(shm, sizeof shm, "%s-shm", path);
    }
    if (!c && !(c = softlabel_codec_create()))
        abort();
    unlink(wal);
    unlink(shm);
    if (fuzz_write_input(path, data, size) < 0)
        return 0;
    labels_db *db = labels_db_open_read(path);
    if (db) {
        read_all(db, c);
        labels_db_close(db);
    }
    return 0;
}
