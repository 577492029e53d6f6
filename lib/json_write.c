/* Writing a JSON tree as text, compact or indented; strings are escaped so
 * the text parses back to the same tree. */
#include "lib/json.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Bytes written as they are: printable ASCII but '"' and '\\', and every
 * byte of a multi-byte UTF-8 sequence. */
static bool plain_byte(unsigned char ch)
{
	return ch >= 0x20 && ch != '"' && ch != '\\' && ch != 0x7f;
}

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Whether any of the 8 bytes at p is not a plain_byte(). Exact per byte:
 * the sums only touch the low 7 bits of each byte, so no carry crosses into
 * the next; bytes of 0x80 and up are plain (UTF-8 is written as is). */
static bool word_needs_escape(const char *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof(w));
	const uint64_t low7 = ~HIGHS;
	/* a byte b of x is 0 iff ((b & 0x7f) + 0x7f) | b has its top bit clear */
	uint64_t q = w ^ (ONES * '"'), bs = w ^ (ONES * '\\'), del = w ^ (ONES * 0x7f);
	uint64_t zero = ~(((q & low7) + low7) | q) | ~(((bs & low7) + low7) | bs) |
			~(((del & low7) + low7) | del);
	/* b < 0x20 (top bit clear) iff (b & 0x7f) + 0x60 has its top bit clear */
	uint64_t control = ~((w & low7) + ONES * (0x80 - 0x20)) & ~w;
	return (zero | control) & HIGHS;
}

/* One byte, without a call into the buffer when it has room: the writer
 * emits most of its punctuation this way. */
static int put1(struct pp_buf *out, char c)
{
	if (out->len + 1 < out->alloc) {
		out->data[out->len++] = c;
		out->data[out->len] = '\0';
		return 0;
	}
	return pp_buf_putc(out, c);
}

int pp_json_write_string(struct pp_buf *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	int rc = put1(out, '"');
	size_t i = 0;
	while (i < n && !rc) {
		size_t run = i;
		while (n - run >= 8 && !word_needs_escape(s + run))
			run += 8;
		while (run < n && plain_byte((unsigned char)s[run]))
			run++;
		if (run > i) {
			rc = pp_buf_append(out, s + i, run - i);
			i = run;
			continue;
		}
		unsigned char ch = (unsigned char)s[i++];
		const char *esc;
		char u[7];
		switch (ch) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		default:
			u[0] = '\\';
			u[1] = 'u';
			u[2] = '0';
			u[3] = '0';
			u[4] = hex[ch >> 4];
			u[5] = hex[ch & 15];
			u[6] = '\0';
			esc = u;
		}
		rc = pp_buf_puts(out, esc);
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
		rc = pp_buf_puts(out, "  ");
	return rc;
}

static int write_node(const struct pp_json *j, struct pp_buf *out, int flags, int depth)
{
	switch (j->type) {
	case PP_JSON_NULL: return pp_buf_puts(out, "null");
	case PP_JSON_BOOL: return pp_buf_puts(out, j->b ? "true" : "false");
	case PP_JSON_NUMBER: return pp_buf_append(out, j->str, j->len);
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
					rc = pp_buf_puts(out,
							 (flags & PP_JSON_PRETTY) ? ": " : ":");
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
