/* Writing a JSON tree as text, compact or indented; strings are escaped so
 * the text parses back to the same tree. */
#include "lib/json.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "lib/json_scan.h"

/* Bytes written as they are: printable ASCII but '"' and '\\', and every
 * byte of a multi-byte UTF-8 sequence. */
static bool plain_byte(unsigned char ch)
{
	return ch >= 0x20 && ch != '"' && ch != '\\' && ch != 0x7f;
}

/* Where the run of plain bytes from s[i] ends (n when it reaches the end).
 * A tail shorter than a word is read as the string's last 8 bytes, its
 * bytes before i dropped, so strings of 8 bytes and more never go byte by
 * byte. */
static size_t plain_run(const char *s, size_t i, size_t n)
{
	i = pp_json_skip_plain(s, i, n, PP_JSON_STOPS_ESCAPE);
	if (n - i >= 8 || i == n)
		return i;
	if (n >= 8) {
		uint64_t m = pp_json_stops8(pp_json_load8(s + n - 8), PP_JSON_STOPS_ESCAPE) >>
			     (8 * (i - (n - 8)));
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
