/* tok_gpt2_files: vocab.json + merges.txt <-> a GPT-2 kind tokenizer (the
 * contract is in tok_gpt2.h). Loading decodes every token from GPT-2's
 * byte-to-unicode alphabet into an id-ordered byte table, resolves each
 * merges.txt line to (left, right, result) ids through a byte index, and
 * hands the parts to tok_gpt2_build, which validates the rest. Runs once per
 * model import or export: clarity of the messages over speed. */
#include "text/tok_gpt2.h"

#include "text/tok_internal.h"

#include "base/err.h"
#include "base/fileio.h"
#include "base/mem.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define EOT_TEXT "<|endoftext|>"
#define ALPHABET_SIZE 324 /* code points U+0000..U+0143 */

/* GPT-2's byte-to-unicode alphabet: cp_of[byte], and byte_of[cp] (-1 for a
 * code point that stands for no byte). */
typedef struct alphabet {
    uint32_t cp_of[256];
    int byte_of[ALPHABET_SIZE];
} alphabet;

static void alphabet_init(alphabet *a)
{
    int extra = 0;
    for (int c = 0; c < ALPHABET_SIZE; c++)
        a->byte_of[c] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        a->cp_of[b] = printable ? (uint32_t)b : 256u + (uint32_t)extra++;
        a->byte_of[a->cp_of[b]] = b;
    }
}

/* Decodes s[0..len) from the alphabet (whose characters take one or two
 * UTF-8 bytes) into out (room for len bytes). @return the byte count, or -1 +
 * message naming the character or the byte that starts no character of it. */
static long alphabet_decode(const alphabet *a, const char *s, size_t len, unsigned char *out)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    long n = 0;
    while (p < end) {
        uint32_t cp = *p;
        int k = 1;
        if (*p >= 0x80) {
            if (*p < 0xC2 || *p > 0xDF || end - p < 2 || (p[1] & 0xC0) != 0x80)
                return err_set("byte 0x%02x starts no character of GPT-2's byte-to-unicode alphabet", *p);
            cp = (uint32_t)(*p & 0x1F) << 6 | (p[1] & 0x3F);
            k = 2;
        }
        if (cp >= ALPHABET_SIZE || a->byte_of[cp] < 0)
            return err_set("character U+%04X is not in GPT-2's byte-to-unicode alphabet", cp);
        out[n++] = (unsigned char)a->byte_of[cp];
        p += k;
    }
    return n;
}

/* Appends the alphabet spelling of b[0..n) to out (room for 2n bytes). */
static size_t alphabet_encode(const alphabet *a, const unsigned char *b, size_t n, char *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = a->cp_of[b[i]];
        if (cp < 0x80) {
            out[w++] = (char)cp;
        } else {
            out[w++] = (char)(0xC0 | cp >> 6);
            out[w++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return w;
}

/* Reads vocab.json into parts (tok_off, tok_bytes, vocab, the EOT as the one
 * special token). @return 0, or -1 + message (without the path). */
static int read_vocab(const alphabet *a, const char *path, tok_gpt2_parts *parts)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return err_set("line %d column %d: %s", jerr.line, jerr.column, jerr.text);
    const char **keys = NULL;
    int rc = -1;
    size_t n = json_is_object(root) ? json_object_size(root) : 0;
    if (!json_is_object(root)) {
        err_set("not a JSON object of token -> id");
        goto done;
    }
    if (n < 257 || n > TOK_GPT2_MAX_VOCAB) {
        err_set("%zu tokens (must be 257..%d)", n, TOK_GPT2_MAX_VOCAB);
        goto done;
    }
    keys = mem_calloc(n, sizeof *keys, "vocab.json tokens");
    if (!keys)
        goto done;
    size_t total = 0;
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        json_int_t id = json_is_integer(value) ? json_integer_value(value) : -1;
        if (id < 0 || (size_t)id >= n) {
            err_set("token \"%s\": id is not an integer in 0..%zu", key, n - 1);
            goto done;
        }
        if (keys[id]) {
            err_set("id %lld is used by both \"%s\" and \"%s\"", (long long)id, keys[id], key);
            goto done;
        }
        keys[id] = key;
        total += strlen(key);
    }
    parts->vocab = (int)n;
    parts->tok_off = mem_alloc(sizeof(uint32_t) * (n + 1), "vocab.json token offsets");
    parts->tok_bytes = mem_alloc(total ? total : 1, "vocab.json token bytes");
    parts->specials = mem_alloc(sizeof(int32_t), "vocab.json special tokens");
    if (!parts->tok_off || !parts->tok_bytes || !parts->specials)
        goto done;
    parts->tok_off[0] = 0;
    parts->eot = -1;
    for (size_t id = 0; id < n; id++) {
        long len = alphabet_decode(a, keys[id], strlen(keys[id]), parts->tok_bytes + parts->tok_off[id]);
        if (len < 0) {
            err_wrap("token \"%s\" (id %zu)", keys[id], id);
            goto done;
        }
        parts->tok_off[id + 1] = parts->tok_off[id] + (uint32_t)len;
        if (strcmp(keys[id], EOT_TEXT) == 0)
            parts->eot = (int32_t)id;
    }
    if (parts->eot < 0) {
        err_set("no " EOT_TEXT " token (GPT-2's end of text)");
        goto done;
    }
    parts->n_specials = 1;
    parts->specials[0] = parts->eot;
    rc = 0;
done:
    free(keys);
    json_decref(root);
    return rc;
}

/* Resolves one merges.txt line (s[0..len), without its newline) against the
 * vocabulary into merge (left, right, result). @return 0, or -1 + message. */
static int read_merge(const alphabet *a, const tok_index *x, const char *s, size_t len, unsigned char *buf,
                      int32_t *merge)
{
    const char *space = memchr(s, ' ', len);
    if (!space || space == s || space == s + len - 1 || memchr(space + 1, ' ', (size_t)(s + len - space - 1)))
        return err_set("\"%.*s\" is not two tokens separated by one space", (int)len, s);
    size_t nl = (size_t)(space - s);
    long bl = alphabet_decode(a, s, nl, buf);
    long br = bl < 0 ? -1 : alphabet_decode(a, space + 1, len - nl - 1, buf + bl);
    if (br < 0)
        return err_wrap("\"%.*s\"", (int)len, s);
    merge[0] = tok_index_find(x, buf, (size_t)bl);
    merge[1] = tok_index_find(x, buf + bl, (size_t)br);
    merge[2] = tok_index_find(x, buf, (size_t)(bl + br));
    static const char *const what[3] = {"its left token", "its right token", "the merged token"};
    for (int k = 0; k < 3; k++)
        if (merge[k] < 0)
            return err_set("\"%.*s\": %s is not in the vocabulary", (int)len, s, what[k]);
    return 0;
}

/* Reads merges.txt into parts->merges, against the vocabulary of parts.
 * @return 0, or -1 + message (without the path). */
static int read_merges(const alphabet *a, const char *path, tok_gpt2_parts *parts)
{
    unsigned char *text = NULL, *buf = NULL;
    size_t len;
    if (file_read_all(path, &text, &len) < 0)
        return -1;
    int rc = -1;
    tok_index *x = tok_index_create(parts->tok_off, parts->tok_bytes, parts->vocab);
    size_t n_lines = 0;
    for (size_t i = 0; i < len; i++)
        n_lines += text[i] == '\n';
    parts->merges = mem_alloc(sizeof(int32_t) * 3 * (n_lines + 1), "merges.txt merges");
    buf = mem_alloc(len + 1, "merges.txt line");
    if (!x || !parts->merges || !buf)
        goto done;
    const char *p = (const char *)text, *end = p + len;
    size_t line = 0;
    int n = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *stop = nl ? nl : end;
        size_t ll = (size_t)(stop - p) - (stop > p && stop[-1] == '\r');
        line++;
        if (line == 1 && ll >= 8 && memcmp(p, "#version", 8) == 0) {
            p = stop + (nl != NULL);
            continue;
        }
        if (memchr(p, '\0', ll)) {
            err_set("line %zu: a NUL byte", line);
            goto done;
        }
        if (read_merge(a, x, p, ll, buf, parts->merges + 3 * n) < 0) {
            err_wrap("line %zu", line);
            goto done;
        }
        n++;
        p = stop + (nl != NULL);
    }
    parts->n_merges = n;
    rc = 0;
done:
    tok_index_free(x);
    free(buf);
    free(text);
    return rc;
}

tokenizer *tok_gpt2_load(const char *vocab_json_path, const char *merges_txt_path)
{
    alphabet a;
    alphabet_init(&a);
    tok_gpt2_parts parts = {0};
    if (read_vocab(&a, vocab_json_path, &parts) < 0) {
        err_wrap("%s", vocab_json_path);
    } else if (read_merges(&a, merges_txt_path, &parts) < 0) {
        err_wrap("%s", merges_txt_path);
    } else {
        tokenizer *t = tok_gpt2_build(&parts);
        if (!t)
            err_wrap("%s + %s", vocab_json_path, merges_txt_path);
        return t;
    }
    free(parts.tok_off);
    free(parts.tok_bytes);
    free(parts.merges);
    free(parts.specials);
    return NULL;
}

/* The alphabet spelling of token id as a NUL-terminated string in buf (room
 * for 2 * token length + 1). */
static const char *spelling(const alphabet *a, const tokenizer *t, int32_t id, char *buf)
{
    uint32_t off = t->tok_off[id];
    buf[alphabet_encode(a, t->tok_bytes + off, t->tok_off[id + 1] - off, buf)] = '\0';
    return buf;
}

static int save_vocab(const alphabet *a, const tokenizer *t, const char *path, char *buf)
{
    json_t *root = json_object();
    int rc = root ? 0 : err_set("%s: out of memory building the JSON", path);
    for (int32_t id = 0; rc == 0 && id < t->vocab; id++)
        if (json_object_set_new(root, spelling(a, t, id, buf), json_integer(id)) < 0)
            rc = err_set("%s: out of memory building the JSON", path);
    char *text = rc == 0 ? json_dumps(root, JSON_COMPACT) : NULL;
    if (rc == 0 && !text)
        rc = err_set("%s: out of memory writing the JSON", path);
    if (rc == 0)
        rc = file_write_atomic(path, text, strlen(text));
    free(text);
    json_decref(root);
    return rc;
}

static int save_merges(const alphabet *a, const tokenizer *t, const char *path, char *buf)
{
    static const char header[] = "#version: 0.2\n";
    size_t cap = sizeof header + 2 * (size_t)t->tok_off[t->vocab] + 2 * (size_t)t->n_merges, w = 0;
    char *text = mem_alloc(cap, "merges.txt text");
    if (!text)
        return -1;
    memcpy(text, header, sizeof header - 1);
    w = sizeof header - 1;
    for (int i = 0; i < t->n_merges; i++) {
        size_t nl = strlen(spelling(a, t, t->merges[2 * i], buf));
        memcpy(text + w, buf, nl);
        w += nl;
        text[w++] = ' ';
        nl = strlen(spelling(a, t, t->merges[2 * i + 1], buf));
        memcpy(text + w, buf, nl);
        w += nl;
        text[w++] = '\n';
    }
    int rc = file_write_atomic(path, text, w);
    free(text);
    return rc;
}

int tok_gpt2_save(const tokenizer *t, const char *vocab_json_path, const char *merges_txt_path)
{
    if (t->kind != TOK_KIND_GPT2)
        return err_set("%s: a w2s byte BPE tokenizer cannot be written as GPT-2 files: its pre-split rule "
                       "is w2s's own, not GPT-2's regex, so a GPT-2 tokenizer reading them would cut text "
                       "differently", vocab_json_path);
    size_t eot_len = t->tok_off[t->eot + 1] - t->tok_off[t->eot];
    if (t->n_specials != 1 || eot_len != strlen(EOT_TEXT) ||
        memcmp(t->tok_bytes + t->tok_off[t->eot], EOT_TEXT, eot_len) != 0)
        return err_set("%s: only one special token, " EOT_TEXT ", can be written to vocab.json (this "
                       "tokenizer has %d, end of text \"%.*s\")", vocab_json_path, t->n_specials,
                       (int)eot_len, (const char *)t->tok_bytes + t->tok_off[t->eot]);
    uint32_t longest = 0;
    for (int32_t id = 0; id < t->vocab; id++)
        if (t->tok_off[id + 1] - t->tok_off[id] > longest)
            longest = t->tok_off[id + 1] - t->tok_off[id];
    alphabet a;
    alphabet_init(&a);
    char *buf = mem_alloc(2 * (size_t)longest + 1, "GPT-2 token spelling");
    if (!buf)
        return -1;
    int rc = save_vocab(&a, t, vocab_json_path, buf);
    if (rc == 0)
        rc = save_merges(&a, t, merges_txt_path, buf);
    free(buf);
    return rc;
}
