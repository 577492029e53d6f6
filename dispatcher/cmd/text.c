/* Text the commands take from the command line or print from the store. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher/cmd/cmd.h"
#include "lib/buf.h"
#include "render/render.h"

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), 0 when
 * the bytes there are not one: overlong forms, surrogates and code points
 * past U+10FFFF are refused, as RFC 3629 says. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	if (p[0] < 0x80)
		return 1;
	size_t len;
	uint32_t cp, min;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2, cp = p[0] & 0x1fu, min = 0x80;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3, cp = p[0] & 0x0fu, min = 0x800;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4, cp = p[0] & 0x07u, min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Why s (n bytes) cannot be a job variable's text, or NULL when it can. */
static const char *text_problem(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		if (!s[i])
			return "a NUL character";
		size_t len = utf8_len((const unsigned char *)s + i, n - i);
		if (!len)
			return "invalid UTF-8";
		i += len;
	}
	return NULL;
}

/* The first member name or string in v that is not clean text. */
static const char *tree_problem(const struct pp_json *v)
{
	const char *why = v->key ? text_problem(v->key, strlen(v->key)) : NULL;
	if (!why && v->type == PP_JSON_STRING)
		why = text_problem(v->str, v->len);
	for (const struct pp_json *c = v->child; c && !why; c = c->next)
		why = tree_problem(c);
	return why;
}

int pp_cmd_check_vars(const struct pp_json *vars, struct pp_error *err)
{
	for (const struct pp_json *v = vars ? vars->child : NULL; v; v = v->next) {
		const char *why = tree_problem(v);
		if (why) {
			char *name = pp_cmd_printable(v->key);
			int rc = pp_fail(err, PP_EINVALID,
					 "job variable \"%s\": its value holds %s; job variables "
					 "must be UTF-8 text without NUL",
					 name ? name : "?", why);
			free(name);
			return rc;
		}
	}
	return 0;
}

char *pp_cmd_printable(const char *s)
{
	struct pp_buf b;
	/* Every byte may become four ("\x1b"). */
	size_t n = s ? strlen(s) : 0;
	pp_buf_init(&b, 4 * n + 1);
	int rc = 0;
	for (size_t i = 0; i < n && !rc;) {
		const unsigned char *p = (const unsigned char *)s + i;
		size_t len = utf8_len(p, n - i);
		/* C0 and C1 controls and DEL move the cursor, erase or recolour a
		 * terminal (a forged line, a hidden one); bytes that are not UTF-8
		 * may be read as C1 by the terminal. Shown escaped instead. */
		bool control = len == 1	  ? (*p < 0x20 || *p == 0x7f)
			       : len == 2 ? (p[0] == 0xc2 && p[1] < 0xa0)
					  : len == 0;
		if (!control) {
			rc = pp_buf_append(&b, p, len);
			i += len;
			continue;
		}
		if (*p == '\n')
			rc = pp_buf_puts(&b, "\\n");
		else if (*p == '\r')
			rc = pp_buf_puts(&b, "\\r");
		else if (*p == '\t')
			rc = pp_buf_puts(&b, "\\t");
		else
			for (size_t k = 0; k < (len ? len : 1) && !rc; k++)
				rc = pp_buf_printf(&b, "\\x%02x", p[k]);
		i += len ? len : 1;
	}
	if (rc) {
		pp_buf_free(&b);
		return NULL;
	}
	char *out = pp_buf_steal(&b);
	return out ? out : strdup("");
}
