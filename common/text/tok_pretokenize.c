/* tok_pretokenize: the pre-split rules that cut text into the pieces BPE
 * merges within (both documented in tokenizer.h). Called once per piece on
 * every encoded byte: byte BPE's rule is a table lookup per byte, GPT-2's is
 * its regex run by PCRE2, compiled once per tokenizer (JIT when available)
 * and anchored at the piece's start, with PCRE2_MATCH_INVALID_UTF so that a
 * byte that is not valid UTF-8 matches nothing and no match reads across it. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/tok_internal.h"

#include "base/err.h"
#include "base/mem.h"

#include <pcre2.h>
#include <stdlib.h>

enum { CLS_OTHER = 0, CLS_LETTER = 1, CLS_DIGIT = 2, CLS_SPACE = 3 };

/* Byte classes, built from the rule: LETTER = A-Z a-z >= 0x80, DIGIT = 0-9,
 * SPACE = ' ' \t \n \v \f \r, OTHER = the rest. */
#define R4(c) c, c, c, c
#define R8(c) R4(c), R4(c)
#define R16(c) R8(c), R8(c)
#define R64(c) R16(c), R16(c), R16(c), R16(c)
static const unsigned char byte_class[256] = {
    /* 0x00-0x08 */ R8(CLS_OTHER), CLS_OTHER,
    /* \t \n \v \f \r */ CLS_SPACE, CLS_SPACE, CLS_SPACE, CLS_SPACE, CLS_SPACE,
    /* 0x0e-0x1f */ R16(CLS_OTHER), CLS_OTHER, CLS_OTHER,
    /* ' ' */ CLS_SPACE,
    /* !"#$%&'()*+,-./ */ R8(CLS_OTHER), R4(CLS_OTHER), CLS_OTHER, CLS_OTHER, CLS_OTHER,
    /* 0-9 */ R8(CLS_DIGIT), CLS_DIGIT, CLS_DIGIT,
    /* :;<=>?@ */ R4(CLS_OTHER), CLS_OTHER, CLS_OTHER, CLS_OTHER,
    /* A-Z */ R16(CLS_LETTER), R8(CLS_LETTER), CLS_LETTER, CLS_LETTER,
    /* [\]^_` */ R4(CLS_OTHER), CLS_OTHER, CLS_OTHER,
    /* a-z */ R16(CLS_LETTER), R8(CLS_LETTER), CLS_LETTER, CLS_LETTER,
    /* {|}~ DEL */ R4(CLS_OTHER), CLS_OTHER,
    /* 0x80-0xff */ R64(CLS_LETTER), R64(CLS_LETTER),
};
_Static_assert(sizeof byte_class == 256, "byte class table covers every byte");

size_t tok_pretokenize(const unsigned char *text, size_t len)
{
    if (len == 0)
        return 0;
    size_t limit = len < TOK_PIECE_MAX ? len : TOK_PIECE_MAX;
    size_t i = 0;
    int c = byte_class[text[0]];
    if (text[0] == ' ' && len > 1 && byte_class[text[1]] != CLS_SPACE) {
        c = byte_class[text[1]];
        i = 1;
    }
    if (c != CLS_SPACE) {
        while (i < limit && byte_class[text[i]] == c)
            i++;
        return i;
    }
    /* A whitespace run. Looking one byte past the limit is enough: a longer
     * run is cut at the limit whatever ends it. */
    size_t run = 1;
    while (run < len && run <= limit && byte_class[text[run]] == CLS_SPACE)
        run++;
    if (run > limit)
        return limit;
    if (run < len && run > 1 && text[run - 1] == ' ')
        run--;
    return run;
}

/* GPT-2's pattern as published with its encoder, unchanged. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct tok_regex {
    pcre2_code *code;
    pcre2_match_data *match;
    int jit;               /* JIT compiled: matched by pcre2_jit_match */
};

void tok_regex_free(tok_regex *r)
{
    if (!r)
        return;
    pcre2_match_data_free(r->match);
    pcre2_code_free(r->code);
    free(r);
}

tok_regex *tok_regex_create(void)
{
    tok_regex *r = mem_calloc(1, sizeof *r, "tokenizer regex");
    if (!r)
        return NULL;
    int code;
    PCRE2_SIZE at;
    r->code = pcre2_compile((PCRE2_SPTR)gpt2_pattern, PCRE2_ZERO_TERMINATED,
                            PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_ANCHORED, &code, &at, NULL);
    if (!r->code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        err_set("tokenizer: GPT-2 pattern at offset %zu: %s", (size_t)at, (const char *)msg);
        tok_regex_free(r);
        return NULL;
    }
    /* Without JIT (an unsupported CPU) pcre2_match interprets: same pieces. */
    r->jit = pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE) == 0;
    r->match = pcre2_match_data_create_from_pattern(r->code, NULL);
    if (!r->match) {
        err_set("tokenizer: out of memory for the GPT-2 pattern's match data");
        tok_regex_free(r);
        return NULL;
    }
    return r;
}

size_t tok_first_piece(tokenizer *t, const unsigned char *text, size_t len)
{
    if (t->kind != TOK_KIND_GPT2 || len == 0)
        return tok_pretokenize(text, len);
    /* No match: no valid UTF-8 character starts here (or, never seen, a
     * resource limit of the engine); that byte is a piece of its own. */
    tok_regex *r = t->regex;
    int rc = r->jit ? pcre2_jit_match(r->code, text, len, 0, 0, r->match, NULL)
                    : pcre2_match(r->code, text, len, 0, 0, r->match, NULL);
    if (rc < 0)
        return 1;
    return pcre2_get_ovector_pointer(r->match)[1];
}
