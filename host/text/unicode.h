/* Unicode character classes and UTF-8 decoding for the tokenizers' pre-tokenizers.
 *
 * The classes cover every code point (U+0000..U+10FFFF) and come from the Unicode Character Database through
 * a generated table (host/text/unicode_tables.c, made by third_party/gen_unicode_tables.py from Debian's
 * unicode-data package; see that script for the exact definitions):
 *   UNICODE_LETTER  General_Category L* (Lu, Ll, Lt, Lm, Lo)     -- regex \p{L}
 *   UNICODE_NUMBER  General_Category N* (Nd, Nl, No)             -- regex \p{N}
 *   UNICODE_SPACE   the White_Space property                     -- regex \s
 *   UNICODE_MARK    General_Category M* (Mn, Mc, Me)             -- regex \p{M}
 *   UNICODE_UPPER   General_Category Lu, Lt (with UNICODE_LETTER) -- regex [\p{Lu}\p{Lt}]
 *   UNICODE_LOWER   General_Category Ll (with UNICODE_LETTER)     -- regex \p{Ll}
 * A code point has at most one of LETTER/NUMBER/MARK; unassigned code points have no class. */
#ifndef VKLLM_UNICODE_H
#define VKLLM_UNICODE_H

#include <stddef.h>
#include <stdint.h>

enum {
    UNICODE_LETTER = 1,
    UNICODE_NUMBER = 2,
    UNICODE_SPACE = 4,
    UNICODE_MARK = 8,
    UNICODE_UPPER = 16,
    UNICODE_LOWER = 32,
};

/* What vkl_unicode_utf8_decode reports for a byte that does not start a well-formed UTF-8 character. */
#define UNICODE_INVALID 0xFFFFFFFFu

/* Generated tables (two-stage: stage2[stage1[cp >> 8]][cp & 0xFF]). */
extern const uint8_t vkl_unicode_stage1[0x1100];
extern const uint8_t vkl_unicode_stage2[][256];

/* Class flags of a code point; 0 for UNICODE_INVALID and anything above U+10FFFF. */
static inline unsigned unicode_flags(uint32_t cp)
{
    return cp < 0x110000 ? vkl_unicode_stage2[vkl_unicode_stage1[cp >> 8]][cp & 0xFF] : 0u;
}

/* Decodes the UTF-8 character at s (n >= 1 bytes available). Returns its length in bytes (1..4) and stores
 * the code point; a byte that does not begin a well-formed character (stray continuation byte, overlong
 * form, surrogate, above U+10FFFF, truncated sequence) counts as one character of length 1 with code point
 * UNICODE_INVALID. */
size_t vkl_unicode_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Writes the UTF-8 form of cp (<= U+10FFFF, not a surrogate) to out; returns its length (1..4), or 0 for a
 * value that is not a Unicode scalar value (nothing written). */
size_t vkl_unicode_utf8_encode(uint32_t cp, unsigned char out[4]);

#endif
