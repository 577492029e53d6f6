/* Private to lib/json_parse.c and lib/json_write.c: finding, in a string's
 * bytes, the first one the lexer or the writer must look at. 16 bytes at a
 * time with SSE2 (every x86-64 has it), 8 with a word's arithmetic, and
 * the fewer than 8 left over are the caller's (issue 23, step 105). */
#ifndef PP_JSON_SCAN_H
#define PP_JSON_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define PP_JSON_ONES  0x0101010101010101ULL
#define PP_JSON_HIGHS 0x8080808080808080ULL

/* Which bytes end a run. */
enum pp_json_stops {
	/* The lexer's: '"' and NUL end a string, and '\\', control and
	 * non-ASCII bytes make it more than a copy of its text. */
	PP_JSON_STOPS_LEX,
	/* The writer's: the bytes it escapes, '"', '\\', control and 0x7f;
	 * UTF-8 is written as it is. */
	PP_JSON_STOPS_ESCAPE,
};

/* Eight bytes at p, in any alignment, the first in the low byte. */
static inline uint64_t pp_json_load8(const char *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof(w));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	w = __builtin_bswap64(w);
#endif
	return w;
}

/* The top bit of each byte of w that is 0, and maybe of bytes above the
 * first one: a borrow only runs past a zero byte, so the lowest bit set is
 * exact. */
static inline uint64_t pp_json_zero_bytes(uint64_t w)
{
	return (w - PP_JSON_ONES) & ~w & PP_JSON_HIGHS;
}

/* The same, exact for every byte: the top bit of ((b & 0x7f) + 0x7f) | b
 * is clear iff b is 0, and the sum stays within the byte. */
static inline uint64_t pp_json_zero_bytes_exact(uint64_t w)
{
	const uint64_t low7 = ~PP_JSON_HIGHS;
	return ~(((w & low7) + low7) | w) & PP_JSON_HIGHS;
}

/* The stops among w's 8 bytes, as the top bit of each. The lexer's are
 * exact in their lowest bit, which is all it reads; the writer's in every
 * byte, as it also reads a word from inside one (plain_run's last 8
 * bytes). Control bytes: (b & 0x7f) + 0x60 has its top bit clear for
 * b & 0x7f below 0x20, which for the writer must also have its own top
 * bit clear; the lexer stops at 0x80 and up anyway. */
static inline uint64_t pp_json_stops8(uint64_t w, enum pp_json_stops kind)
{
	const uint64_t low7 = ~PP_JSON_HIGHS;
	uint64_t below = ~((w & low7) + PP_JSON_ONES * (0x80 - 0x20));
	if (kind == PP_JSON_STOPS_LEX)
		return pp_json_zero_bytes(w ^ (PP_JSON_ONES * '"')) |
		       pp_json_zero_bytes(w ^ (PP_JSON_ONES * '\\')) |
		       ((below | w) & PP_JSON_HIGHS);
	return pp_json_zero_bytes_exact(w ^ (PP_JSON_ONES * '"')) |
	       pp_json_zero_bytes_exact(w ^ (PP_JSON_ONES * '\\')) |
	       pp_json_zero_bytes_exact(w ^ (PP_JSON_ONES * 0x7f)) | (below & ~w & PP_JSON_HIGHS);
}

#ifdef __SSE2__
/* The stops among the 16 bytes at p, one bit a byte. A signed compare
 * below 0x20 takes control bytes and those of 0x80 and up together (the
 * lexer's); an unsigned one, a byte whose maximum with 0x1f is 0x1f,
 * control bytes alone (the writer's). */
static inline unsigned pp_json_stops16(const char *p, enum pp_json_stops kind)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
	__m128i stops = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
				     _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
	if (kind == PP_JSON_STOPS_LEX)
		return (unsigned)_mm_movemask_epi8(
			_mm_or_si128(stops, _mm_cmplt_epi8(v, _mm_set1_epi8(0x20))));
	__m128i low = _mm_set1_epi8(0x1f);
	stops = _mm_or_si128(stops, _mm_cmpeq_epi8(_mm_max_epu8(v, low), low));
	return (unsigned)_mm_movemask_epi8(
		_mm_or_si128(stops, _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f))));
}
#endif

/* From i, where the first stop of s[..n) is, or the first of the fewer
 * than 8 bytes before n when none comes before them. */
static inline size_t pp_json_skip_plain(const char *s, size_t i, size_t n, enum pp_json_stops kind)
{
#ifdef __SSE2__
	for (; n - i >= 16; i += 16) {
		unsigned m = pp_json_stops16(s + i, kind);
		if (m)
			return i + (size_t)__builtin_ctz(m);
	}
#endif
	for (; n - i >= 8; i += 8) {
		uint64_t m = pp_json_stops8(pp_json_load8(s + i), kind);
		if (m)
			return i + (size_t)__builtin_ctzll(m) / 8;
	}
	return i;
}

#endif
