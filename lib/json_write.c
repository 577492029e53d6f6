/* Writing a JSON tree as text, compact or indented; strings are escaped so
 * the text parses back to the same tree. */
#include "lib/json.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Bytes written as they are: printable ASCII but '"' and '\\', and every
 * byte of a multi-byte UTF-8 sequence. */
static bool plain_byte(unsigned char ch)
{
	return ch >= 0x20 && ch != '"' && ch != '\\' && ch != 0x7f;
}

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* The bytes of the 8 at p that are not plain_byte(), as the top bit of
 * each, byte k of p at bits 8k..8k+7. Exact per byte: the sums only touch
 * the low 7 bits of each byte, so no carry crosses into the next; bytes of
 * 0x80 and up are plain (UTF-8 is written as is). */
static uint64_t escape_mask(const char *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof(w));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	w = __builtin_bswap64(w);
#endif
	const uint64_t low7 = ~HIGHS;
	/* a byte b of x is 0 iff ((b & 0x7f) + 0x7f) | b has its top bit clear */
	uint64_t q = w ^ (ONES * '"'), bs = w ^ (ONES * '\\'), del = w ^ (ONES * 0x7f);
	uint64_t zero = ~(((q & low7) + low7) | q) | ~(((bs & low7) + low7) | bs) |
			~(((del & low7) + low7) | del);
	/* b < 0x20 (top bit clear) iff (b & 0x7f) + 0x60 has its top bit clear */
	uint64_t control = ~((w & low7) + ONES * (0x80 - 0x20)) & ~w;
	return (zero | control) & HIGHS;
}

#ifdef __SSE2__
/* escape_mask() of the 16 bytes at p, one bit a byte, with SSE2 (every
 * x86-64 has it): half the instructions a byte of the word trick (issue
 * 23). A byte is below 0x20 when the unsigned maximum of it and 0x1f is
 * 0x1f. */
static unsigned escape_mask16(const char *p)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
	__m128i low = _mm_set1_epi8(0x1f);
	__m128i control = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
	__m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
	__m128i backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
	__m128i del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
	return (unsigned)_mm_movemask_epi8(
		_mm_or_si128(_mm_or_si128(control, quote), _mm_or_si128(backslash, del)));
}
#endif

/* Where the run of plain bytes from s[i] ends (n when it reaches the end).
 * Sixteen bytes at a time where SSE2 is, then eight, the first byte to
 * escape found from the mask; a tail shorter than a word is read as the
 * string's last 8 bytes, its bytes before i dropped, so strings of 8 bytes
 * and more never go byte by byte. */
static size_t plain_run(const char *s, size_t i, size_t n)
{
#ifdef __SSE2__
	for (; n - i >= 16; i += 16) {
		unsigned m = escape_mask16(s + i);
		if (m)
			return i + (size_t)__builtin_ctz(m);
	}
#endif
	for (; n - i >= 8; i += 8) {
		uint64_t m = escape_mask(s + i);
		if (m)
			return i + (size_t)__builtin_ctzll(m) / 8;
	}
	if (i == n)
		return n;
	if (n >= 8) {
		uint64_t m = escape_mask(s + n - 8) >> (8 * (i - (n - 8)));
		return m ? i + (size_t)__builtin_ctzll(m) / 8 : n;
	}
	while (i < n && plain_byte((unsigned char)s[i]))
		i++;
	return i;
}

/* n bytes, without a call into the buffer when it has room: most of what
 * the writer emits are short runs and punctuation, for which the call and
 * its checks cost more than the copy. */
static int put(struct pp_buf *out, const char *p, size_t n)
{
	if (out->alloc - out->len > n) {
		memcpy(out->data + out->len, p, n);
		out->len += n;
		out->data[out->len] = '\0';
		return 0;
	}
	return pp_buf_append(out, p, n);
}

static int put1(struct pp_buf *out, char c)
{
	if (out->alloc - out->len > 1) {
		out->data[out->len++] = c;
		out->data[out->len] = '\0';
		return 0;
	}
	return pp_buf_putc(out, c);
}

/* Write the escape of ch, a byte that is not plain_byte(), at d (room for
 * 6 bytes); returns its length. */
static size_t escape(char *d, unsigned char ch)
{
	static const char hex[] = "0123456789abcdef";
	d[0] = '\\';
	switch (ch) {
	case '"': d[1] = '"'; return 2;
	case '\\': d[1] = '\\'; return 2;
	case '\n': d[1] = 'n'; return 2;
	case '\r': d[1] = 'r'; return 2;
	case '\t': d[1] = 't'; return 2;
	case '\b': d[1] = 'b'; return 2;
	case '\f': d[1] = 'f'; return 2;
	default:
		d[1] = 'u';
		d[2] = '0';
		d[3] = '0';
		d[4] = hex[ch >> 4];
		d[5] = hex[ch & 15];
		return 6;
	}
}

int pp_json_write_string(struct pp_buf *out, const char *s, size_t n)
{
	int rc = put1(out, '"');
	size_t i = 0;
	while (i < n && !rc) {
		size_t run = plain_run(s, i, n);
		if (run > i) {
			rc = put(out, s + i, run - i);
			i = run;
			continue;
		}
		char esc[6];
		rc = put(out, esc, escape(esc, (unsigned char)s[i++]));
	}
	if (!rc)
		rc = put1(out, '"');
	return rc;
}

static int indent(struct pp_buf *out, int flags, int depth)
{
	if (!(flags & PP_JSON_PRETTY))
		return 0;
	int rc = put1(out, '\n');
	for (int i = 0; i < depth && !rc; i++)
		rc = put(out, "  ", 2);
	return rc;
}

static int write_node(const struct pp_json *j, struct pp_buf *out, int flags, int depth)
{
	switch (j->type) {
	case PP_JSON_NULL: return put(out, "null", 4);
	case PP_JSON_BOOL: return j->b ? put(out, "true", 4) : put(out, "false", 5);
	case PP_JSON_NUMBER: return put(out, j->str, j->len);
	case PP_JSON_STRING: return pp_json_write_string(out, j->str, j->len);
	case PP_JSON_ARRAY:
	case PP_JSON_OBJECT: {
		bool obj = j->type == PP_JSON_OBJECT;
		int rc = put1(out, obj ? '{' : '[');
		for (const struct pp_json *c = j->child; c && !rc; c = c->next) {
			if (c != j->child)
				rc = put1(out, ',');
			if (!rc)
				rc = indent(out, flags, depth + 1);
			if (!rc && obj) {
				rc = pp_json_write_string(out, c->key, strlen(c->key));
				if (!rc)
					rc = (flags & PP_JSON_PRETTY) ? put(out, ": ", 2)
								      : put1(out, ':');
			}
			if (!rc)
				rc = write_node(c, out, flags, depth + 1);
		}
		if (!rc && j->child)
			rc = indent(out, flags, depth);
		if (!rc)
			rc = put1(out, obj ? '}' : ']');
		return rc;
	}
	}
	return PP_EINVALID;
}

int pp_json_write(const struct pp_json *j, struct pp_buf *out, int flags)
{
	if (!j)
		return pp_buf_puts(out, "null");
	return write_node(j, out, flags, 0);
}

char *pp_json_to_string(const struct pp_json *j, int flags)
{
	struct pp_buf b;
	pp_buf_init(&b, 0);
	if (pp_json_write(j, &b, flags)) {
		pp_buf_free(&b);
		return NULL;
	}
	return pp_buf_steal(&b);
}
