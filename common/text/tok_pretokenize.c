/* tok_pretokenize: the pre-split rule that cuts text into the pieces BPE
 * merges within (rule documented in tokenizer.h). Called once per piece on
 * every encoded byte, so it is a table lookup per byte. */
#include "text/tokenizer.h"

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
