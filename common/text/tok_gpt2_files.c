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

/* One token before decoding: its text, spelled in the alphabet (a model
 * vocabulary key) or raw (an added token of tokenizer.json), and whether it
 * is special. */
typedef struct entry {
    const char *text;
    int raw, special;
} entry;

/* The largest id of a JSON object of token -> id, checking every id; *max
 * is raised to it. @return 0, or -1 + message. */
static int vocab_max_id(json_t *vocab, json_int_t *max)
{
    const char *key;
    json_t *value;
    json_object_foreach(vocab, key, value) {
        json_int_t id = json_is_integer(value) ? json_integer_value(value) : -1;
        if (id < 0 || id >= TOK_GPT2_MAX_VOCAB)
            return err_set("token \"%s\": id is not an integer in 0..%d", key, TOK_GPT2_MAX_VOCAB - 1);
        *max = id > *max ? id : *max;
    }
    return 0;
}

/* Records text as the token of id in e (checked ids). @return 0, or -1 +
 * message when id already has another token. */
static int entry_set(entry *e, json_int_t id, const char *text, int raw)
{
    if (e[id].text)
        return err_set("id %lld is used by both \"%s\" and \"%s\"", (long long)id, e[id].text, text);
    e[id] = (entry){text, raw, 0};
    return 0;
}

/* Puts the tokens of a JSON object of token -> id (ids checked by
 * vocab_max_id) into e. @return 0, or -1 + message. */
static int entries_from_vocab(json_t *vocab, entry *e)
{
    const char *key;
    json_t *value;
    json_object_foreach(vocab, key, value)
        TRY(entry_set(e, json_integer_value(value), key, 0));
    return 0;
}

/* Decodes e[0..n) (every id set) into parts: the token table, the special
 * tokens in id order and the EOT, the special token <|endoftext|>.
 * @return 0, or -1 + message. */
static int parts_from_entries(const alphabet *a, const entry *e, size_t n, tok_gpt2_parts *parts)
{
    if (n < 257)
        return err_set("%zu tokens (must be 257..%d)", n, TOK_GPT2_MAX_VOCAB);
    size_t total = 0;
    int n_specials = 0;
    for (size_t id = 0; id < n; id++) {
        if (!e[id].text)
            return err_set("id %zu has no token", id);
        total += strlen(e[id].text);
        n_specials += e[id].special;
    }
    parts->vocab = (int)n;
    parts->tok_off = mem_alloc(sizeof(uint32_t) * (n + 1), "GPT-2 token offsets");
    parts->tok_bytes = mem_alloc(total ? total : 1, "GPT-2 token bytes");
    parts->specials = mem_alloc(sizeof(int32_t) * (size_t)(n_specials ? n_specials : 1), "GPT-2 special tokens");
    if (!parts->tok_off || !parts->tok_bytes || !parts->specials)
        return -1;
    parts->tok_off[0] = 0;
    parts->eot = -1;
    for (size_t id = 0; id < n; id++) {
        size_t tl = strlen(e[id].text);
        unsigned char *out = parts->tok_bytes + parts->tok_off[id];
        long len = e[id].raw ? (long)tl : alphabet_decode(a, e[id].text, tl, out);
        if (len < 0)
            return err_wrap("token \"%s\" (id %zu)", e[id].text, id);
        if (e[id].raw)
            memcpy(out, e[id].text, tl);
        parts->tok_off[id + 1] = parts->tok_off[id] + (uint32_t)len;
        if (e[id].special) {
            parts->specials[parts->n_specials++] = (int32_t)id;
            if (strcmp(e[id].text, EOT_TEXT) == 0)
                parts->eot = (int32_t)id;
        }
    }
    if (parts->eot < 0)
        return err_set("no special token " EOT_TEXT " (GPT-2's end of text)");
    return 0;
}

/* Reads vocab.json into parts (the token table, <|endoftext|> as the one
 * special token). @return 0, or -1 + message (without the path). */
static int read_vocab(const alphabet *a, const char *path, tok_gpt2_parts *parts)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return err_set("line %d column %d: %s", jerr.line, jerr.column, jerr.text);
    entry *e = NULL;
    json_int_t max = -1;
    int rc = -1;
    if (!json_is_object(root))
        err_set("not a JSON object of token -> id");
    else if (vocab_max_id(root, &max) == 0 && (e = mem_calloc((size_t)max + 2, sizeof *e, "GPT-2 tokens")) &&
             entries_from_vocab(root, e) == 0) {
        json_t *eot = json_object_get(root, EOT_TEXT);
        if (eot)
            e[json_integer_value(eot)].special = 1;
        rc = parts_from_entries(a, e, (size_t)max + 1, parts);
    }
    free(e);
    json_decref(root);
    return rc;
}

/* Resolves the merge of left[0..nl) and right[0..nr) against the vocabulary
 * into merge (left, right, result ids). @return 0, or -1 + message. */
static int read_merge(const alphabet *a, const tok_index *x, const char *left, size_t nl, const char *right,
                      size_t nr, unsigned char *buf, int32_t *merge)
{
    long bl = alphabet_decode(a, left, nl, buf);
    long br = bl < 0 ? -1 : alphabet_decode(a, right, nr, buf + bl);
    if (br < 0)
        return err_wrap("\"%.*s %.*s\"", (int)nl, left, (int)nr, right);
    merge[0] = tok_index_find(x, buf, (size_t)bl);
    merge[1] = tok_index_find(x, buf + bl, (size_t)br);
    merge[2] = tok_index_find(x, buf, (size_t)(bl + br));
    static const char *const what[3] = {"its left token", "its right token", "the merged token"};
    for (int k = 0; k < 3; k++)
        if (merge[k] < 0)
            return err_set("\"%.*s %.*s\": %s is not in the vocabulary", (int)nl, left, (int)nr, right, what[k]);
    return 0;
}

/* read_merge of one "left right" line s[0..len). */
static int read_merge_line(const alphabet *a, const tok_index *x, const char *s, size_t len, unsigned char *buf,
                           int32_t *merge)
{
    const char *space = memchr(s, ' ', len);
    if (!space || space == s || space == s + len - 1 || memchr(space + 1, ' ', (size_t)(s + len - space - 1)))
        return err_set("\"%.*s\" is not two tokens separated by one space", (int)len, s);
    size_t nl = (size_t)(space - s);
    return read_merge(a, x, s, nl, space + 1, len - nl - 1, buf, merge);
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
        if (read_merge_line(a, x, p, ll, buf, parts->merges + 3 * n) < 0) {
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

/* What tokenizer.json must say for w2s to encode exactly as it does: a BPE
 * model under GPT-2's byte-level pre-tokenizer and nothing else around it.
 * @return 0, or -1 + message naming the field. */
static int check_pipeline(json_t *root, json_t *model)
{
    json_t *pre = json_object_get(root, "pre_tokenizer"), *norm = json_object_get(root, "normalizer");
    const char *pre_type = json_string_value(json_object_get(pre, "type"));
    const char *model_type = json_string_value(json_object_get(model, "type"));
    if (!model_type || strcmp(model_type, "BPE") != 0)
        return err_set("model.type is \"%s\", not \"BPE\"", model_type ? model_type : "(none)");
    if (!pre_type || strcmp(pre_type, "ByteLevel") != 0)
        return err_set("pre_tokenizer.type is \"%s\", not GPT-2's \"ByteLevel\" (w2s would cut the text "
                       "differently)", pre_type ? pre_type : "(none)");
    if (json_is_true(json_object_get(pre, "add_prefix_space")) || json_is_false(json_object_get(pre, "use_regex")))
        return err_set("pre_tokenizer: add_prefix_space or no use_regex is not GPT-2's pre-split");
    if (norm && !json_is_null(norm))
        return err_set("normalizer is set (GPT-2 has none; w2s does not normalise text)");
    static const char *const off[] = {"dropout", "continuing_subword_prefix", "end_of_word_suffix",
                                      "byte_fallback", "ignore_merges"};
    for (size_t k = 0; k < sizeof off / sizeof *off; k++) {
        json_t *v = json_object_get(model, off[k]);
        if (v && !json_is_null(v) && !json_is_false(v) && !(json_is_string(v) && !*json_string_value(v)))
            return err_set("model.%s is set (GPT-2's BPE has none)", off[k]);
    }
    return 0;
}

/* Adds tokenizer.json's added_tokens to e (room for max + 1 ids): each must
 * be special (Hugging Face cuts text at a non-special one before the model;
 * w2s does not), and one already in the vocabulary must be the same text.
 * @return 0, or -1 + message. */
static int entries_from_added(json_t *added, entry *e)
{
    size_t i;
    json_t *tok;
    json_array_foreach(added, i, tok) {
        json_t *id_v = json_object_get(tok, "id");
        const char *content = json_string_value(json_object_get(tok, "content"));
        json_int_t id = json_integer_value(id_v);
        if (!content || !*content)
            return err_set("added_tokens[%zu]: no content", i);
        if (!json_is_true(json_object_get(tok, "special")))
            return err_set("added_tokens[%zu] \"%s\" is not special (Hugging Face would cut text at it, "
                           "w2s does not)", i, content);
        if (e[id].text && strcmp(e[id].text, content) != 0)
            return err_set("added_tokens[%zu] \"%s\" has the id %lld of \"%s\"", i, content, (long long)id,
                           e[id].text);
        if (!e[id].text)
            TRY(entry_set(e, id, content, 1));
        e[id].special = 1;
    }
    return 0;
}

/* The largest id of tokenizer.json's added_tokens, checking each; *max is
 * raised to it. @return 0, or -1 + message. */
static int added_max_id(json_t *added, json_int_t *max)
{
    if (added && !json_is_array(added))
        return err_set("added_tokens is not an array");
    size_t i;
    json_t *tok;
    json_array_foreach(added, i, tok) {
        json_t *id_v = json_object_get(tok, "id");
        json_int_t id = json_is_integer(id_v) ? json_integer_value(id_v) : -1;
        if (id < 0 || id >= TOK_GPT2_MAX_VOCAB)
            return err_set("added_tokens[%zu]: id is not an integer in 0..%d", i, TOK_GPT2_MAX_VOCAB - 1);
        *max = id > *max ? id : *max;
    }
    return 0;
}

/* Reads tokenizer.json's model.merges ("a b" strings or ["a", "b"] pairs)
 * into parts->merges. @return 0, or -1 + message. */
static int merges_from_json(const alphabet *a, json_t *merges, tok_gpt2_parts *parts)
{
    if (!json_is_array(merges))
        return err_set("model.merges is not an array");
    size_t n = json_array_size(merges), longest = 0, i;
    json_t *m;
    json_array_foreach(merges, i, m) {
        json_t *l = json_array_get(m, 0), *r = json_array_get(m, 1);
        size_t len = json_is_string(m) ? json_string_length(m)
                     : json_array_size(m) == 2 && json_is_string(l) && json_is_string(r)
                         ? json_string_length(l) + json_string_length(r)
                         : SIZE_MAX;
        if (len == SIZE_MAX)
            return err_set("model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", i);
        longest = len > longest ? len : longest;
    }
    int rc = -1;
    tok_index *x = tok_index_create(parts->tok_off, parts->tok_bytes, parts->vocab);
    unsigned char *buf = mem_alloc(longest + 1, "tokenizer.json merge");
    parts->merges = mem_alloc(sizeof(int32_t) * 3 * (n ? n : 1), "tokenizer.json merges");
    if (!x || !buf || !parts->merges)
        goto done;
    json_array_foreach(merges, i, m) {
        json_t *l = json_array_get(m, 0), *r = json_array_get(m, 1);
        int32_t *out = parts->merges + 3 * i;
        if ((json_is_string(m) ? read_merge_line(a, x, json_string_value(m), json_string_length(m), buf, out)
                               : read_merge(a, x, json_string_value(l), json_string_length(l),
                                            json_string_value(r), json_string_length(r), buf, out)) < 0) {
            err_wrap("model.merges[%zu]", i);
            goto done;
        }
    }
    parts->n_merges = (int)n;
    rc = 0;
done:
    tok_index_free(x);
    free(buf);
    return rc;
}

tokenizer *tok_gpt2_load_tokenizer_json(const char *path)
{
    alphabet a;
    alphabet_init(&a);
    tok_gpt2_parts parts = {0};
    tokenizer *t = NULL;
    entry *e = NULL;
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        err_set("%s: line %d column %d: %s", path, jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    json_t *model = json_object_get(root, "model"), *vocab = json_object_get(model, "vocab");
    json_t *added = json_object_get(root, "added_tokens");
    json_int_t max = -1;
    if (!json_is_object(vocab))
        err_set("model.vocab is not a JSON object of token -> id");
    else if (check_pipeline(root, model) == 0 && vocab_max_id(vocab, &max) == 0 &&
             added_max_id(added, &max) == 0 && (e = mem_calloc((size_t)max + 2, sizeof *e, "GPT-2 tokens")) &&
             entries_from_vocab(vocab, e) == 0 && entries_from_added(added, e) == 0 &&
             parts_from_entries(&a, e, (size_t)max + 1, &parts) == 0 &&
             merges_from_json(&a, json_object_get(model, "merges"), &parts) == 0)
        t = tok_gpt2_build(&parts);
    if (!t)
        err_wrap("%s", path);
    free(parts.tok_off);
    free(parts.tok_bytes);
    free(parts.merges);
    free(parts.specials);
    free(e);
    json_decref(root);
    return t;
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
