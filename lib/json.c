/* JSON tree built from jsmn tokens. jsmn only tokenizes; this file adds the
 * strict checks jsmn leaves out (number grammar, escapes, UTF-8, a single
 * top-level value), limits, and line:column errors. */
#include "lib/json.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#define DEFAULT_MAX_BYTES ((size_t)16 << 20)
#define DEFAULT_MAX_DEPTH 64

struct parse_ctx {
	const char *text;
	size_t len;
	jsmntok_t *tok;
	int ntok;
	int max_depth;
	struct pp_error *err;
};

static void line_col(const char *text, size_t pos, int *line, int *col)
{
	int l = 1, c = 1;
	for (size_t i = 0; i < pos; i++) {
		if (text[i] == '\n') {
			l++;
			c = 1;
		} else if (((unsigned char)text[i] & 0xC0) != 0x80) {
			c++;
		}
	}
	*line = l;
	*col = c;
}

static int fail_at(struct parse_ctx *c, size_t pos, const char *what)
{
	int line, col;
	if (pos > c->len)
		pos = c->len;
	line_col(c->text, pos, &line, &col);
	return pp_fail(c->err, PP_EINVALID, "%d:%d: %s", line, col, what);
}

struct pp_json *pp_json_new(enum pp_json_type t)
{
	struct pp_json *j = calloc(1, sizeof(*j));
	if (j)
		j->type = t;
	return j;
}

static void free_children(struct pp_json *j);

void pp_json_free(struct pp_json *j)
{
	if (!j)
		return;
	free_children(j);
	free(j->key);
	free(j->str);
	free(j);
}

static void link_child(struct pp_json *parent, struct pp_json *child)
{
	child->parent = parent;
	child->next = NULL;
	if (parent->last)
		parent->last->next = child;
	else
		parent->child = child;
	parent->last = child;
	parent->count++;
}

static void free_children(struct pp_json *j)
{
	struct pp_json *c = j->child;
	while (c) {
		struct pp_json *n = c->next;
		c->next = NULL;
		pp_json_free(c);
		c = n;
	}
	j->child = j->last = NULL;
	j->count = 0;
}

/* Length of a valid UTF-8 sequence at p (max n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	if (p[0] < 0x80)
		return 1;
	size_t len;
	uint32_t cp;
	if ((p[0] & 0xE0) == 0xC0) {
		len = 2;
		cp = p[0] & 0x1F;
	} else if ((p[0] & 0xF0) == 0xE0) {
		len = 3;
		cp = p[0] & 0x0F;
	} else if ((p[0] & 0xF8) == 0xF0) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
		return 0; /* overlong */
	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

static int put_utf8(struct pp_buf *b, uint32_t cp)
{
	char s[4];
	size_t n;
	if (cp < 0x80) {
		s[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		s[0] = (char)(0xC0 | (cp >> 6));
		s[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		s[0] = (char)(0xE0 | (cp >> 12));
		s[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		s[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		s[0] = (char)(0xF0 | (cp >> 18));
		s[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		s[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		s[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return pp_buf_append(b, s, n);
}

static int hex4(const char *p, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		char ch = p[i];
		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= (uint32_t)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v |= (uint32_t)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			v |= (uint32_t)(ch - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Decode the string token body [start,end) into a fresh allocation. */
static int decode_string(struct parse_ctx *c, int start, int end, char **out, size_t *outlen)
{
	struct pp_buf b;
	pp_buf_init(&b, (size_t)(end - start) + 1);
	const char *s = c->text;
	int i = start;
	while (i < end) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20) {
			pp_buf_free(&b);
			return fail_at(c, (size_t)i, "control character in string");
		}
		if (ch == '\\') {
			if (i + 1 >= end) {
				pp_buf_free(&b);
				return fail_at(c, (size_t)i, "unterminated escape");
			}
			char e = s[i + 1];
			char lit = 0;
			switch (e) {
			case '"': lit = '"'; break;
			case '\\': lit = '\\'; break;
			case '/': lit = '/'; break;
			case 'b': lit = '\b'; break;
			case 'f': lit = '\f'; break;
			case 'n': lit = '\n'; break;
			case 'r': lit = '\r'; break;
			case 't': lit = '\t'; break;
			case 'u': {
				uint32_t cp;
				if (i + 6 > end || hex4(s + i + 2, &cp)) {
					pp_buf_free(&b);
					return fail_at(c, (size_t)i, "bad \\u escape");
				}
				i += 6;
				if (cp >= 0xD800 && cp <= 0xDBFF) {
					uint32_t lo;
					if (i + 6 > end || s[i] != '\\' || s[i + 1] != 'u' ||
					    hex4(s + i + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
						pp_buf_free(&b);
						return fail_at(c, (size_t)i,
							       "unpaired UTF-16 surrogate");
					}
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					i += 6;
				} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
					pp_buf_free(&b);
					return fail_at(c, (size_t)i - 6,
						       "unpaired UTF-16 surrogate");
				}
				if (put_utf8(&b, cp)) {
					pp_buf_free(&b);
					return PP_ENOMEM;
				}
				continue;
			}
			default: pp_buf_free(&b); return fail_at(c, (size_t)i, "invalid escape");
			}
			if (pp_buf_putc(&b, lit)) {
				pp_buf_free(&b);
				return PP_ENOMEM;
			}
			i += 2;
			continue;
		}
		size_t n = utf8_seq((const unsigned char *)s + i, (size_t)(end - i));
		if (!n) {
			pp_buf_free(&b);
			return fail_at(c, (size_t)i, "invalid UTF-8 in string");
		}
		if (pp_buf_append(&b, s + i, n)) {
			pp_buf_free(&b);
			return PP_ENOMEM;
		}
		i += (int)n;
	}
	*outlen = b.len;
	*out = pp_buf_steal(&b);
	return *out ? 0 : PP_ENOMEM;
}

static bool valid_number(const char *p, size_t n)
{
	size_t i = 0;
	if (i < n && p[i] == '-')
		i++;
	if (i >= n)
		return false;
	if (p[i] == '0') {
		i++;
	} else if (p[i] >= '1' && p[i] <= '9') {
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	} else {
		return false;
	}
	if (i < n && p[i] == '.') {
		i++;
		size_t d = i;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
		if (i == d)
			return false;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		i++;
		if (i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		size_t d = i;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
		if (i == d)
			return false;
	}
	return i == n;
}

static int raw_start(const jsmntok_t *t)
{
	return t->type == JSMN_STRING ? t->start - 1 : t->start;
}

static int raw_end(const jsmntok_t *t)
{
	return t->type == JSMN_STRING ? t->end + 1 : t->end;
}

/* jsmn does not check separators (it accepts "[1,]" and "{"a" 1}"), so the
 * text between two tokens must be whitespace around exactly sep (or
 * nothing when sep is 0). */
static int check_gap(struct parse_ctx *c, int from, int to, char sep)
{
	bool seen = sep == 0;
	for (int i = from; i < to; i++) {
		char ch = c->text[i];
		if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')
			continue;
		if (ch == sep && !seen) {
			seen = true;
			continue;
		}
		return fail_at(c, (size_t)i, "invalid JSON: unexpected character");
	}
	if (!seen)
		return fail_at(c, (size_t)to, sep == ':' ? "expected ':'" : "expected ','");
	return 0;
}

struct member_ref {
	struct pp_json *m;
	size_t pos;
};

static int member_cmp(const void *a, const void *b)
{
	const struct member_ref *x = a, *y = b;
	int c = strcmp(x->m->key, y->m->key);
	return c ? c : x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* A repeated key keeps its last value at its first position, as Python's
 * json (so Prefect) reads it. Lookups return the first member, so keeping
 * both would let a template validate one value and render another. Sorting
 * keeps this O(n log n) for hostile objects with many members. */
static int merge_duplicate_keys(struct pp_json *obj)
{
	size_t n = obj->count;
	if (n < 2)
		return 0;
	struct member_ref *refs = malloc(n * sizeof(*refs));
	struct pp_json **slot = malloc(n * sizeof(*slot));
	if (!refs || !slot) {
		free(refs);
		free(slot);
		return PP_ENOMEM;
	}
	size_t i = 0;
	for (struct pp_json *m = obj->child; m; m = m->next, i++) {
		refs[i] = (struct member_ref){m, i};
		slot[i] = m;
	}
	qsort(refs, n, sizeof(*refs), member_cmp);
	bool merged = false;
	for (size_t run = 0, end; run < n; run = end) {
		for (end = run + 1; end < n && !strcmp(refs[end].m->key, refs[run].m->key); end++)
			;
		if (end - run < 2)
			continue;
		merged = true;
		slot[refs[run].pos] = refs[end - 1].m;
		slot[refs[end - 1].pos] = NULL;
		for (size_t k = run; k < end - 1; k++) {
			if (k > run)
				slot[refs[k].pos] = NULL;
			refs[k].m->next = NULL;
			pp_json_free(refs[k].m);
		}
	}
	if (merged) {
		obj->child = obj->last = NULL;
		obj->count = 0;
		for (i = 0; i < n; i++)
			if (slot[i])
				link_child(obj, slot[i]);
	}
	free(refs);
	free(slot);
	return 0;
}

static int build(struct parse_ctx *c, int *idx, int depth, struct pp_json **out)
{
	if (*idx >= c->ntok)
		return fail_at(c, c->len, "unexpected end of input");
	jsmntok_t *t = &c->tok[*idx];
	if (depth > c->max_depth)
		return fail_at(c, (size_t)t->start, "nesting too deep");
	struct pp_json *j = NULL;
	int rc = 0;
	(*idx)++;
	switch (t->type) {
	case JSMN_PRIMITIVE: {
		const char *p = c->text + t->start;
		size_t n = (size_t)(t->end - t->start);
		if (n == 4 && !memcmp(p, "true", 4)) {
			j = pp_json_new_bool(true);
		} else if (n == 5 && !memcmp(p, "false", 5)) {
			j = pp_json_new_bool(false);
		} else if (n == 4 && !memcmp(p, "null", 4)) {
			j = pp_json_new(PP_JSON_NULL);
		} else if (valid_number(p, n)) {
			j = pp_json_new(PP_JSON_NUMBER);
			if (j) {
				j->str = strndup(p, n);
				j->len = n;
				if (!j->str) {
					pp_json_free(j);
					return PP_ENOMEM;
				}
				j->num = strtod(j->str, NULL);
			}
		} else {
			return fail_at(c, (size_t)t->start, "invalid literal");
		}
		if (!j)
			return PP_ENOMEM;
		break;
	}
	case JSMN_STRING:
		j = pp_json_new(PP_JSON_STRING);
		if (!j)
			return PP_ENOMEM;
		rc = decode_string(c, t->start, t->end, &j->str, &j->len);
		break;
	case JSMN_ARRAY:
		j = pp_json_new(PP_JSON_ARRAY);
		if (!j)
			return PP_ENOMEM;
		if (t->size == 0)
			rc = check_gap(c, t->start + 1, t->end - 1, 0);
		for (int i = 0, prev = t->start + 1; i < t->size && !rc; i++) {
			struct pp_json *child = NULL;
			if (*idx < c->ntok)
				rc = check_gap(c, prev, raw_start(&c->tok[*idx]), i ? ',' : 0);
			int at = *idx;
			if (!rc)
				rc = build(c, idx, depth + 1, &child);
			if (!rc) {
				link_child(j, child);
				prev = raw_end(&c->tok[at]);
				if (i == t->size - 1)
					rc = check_gap(c, prev, t->end - 1, 0);
			}
		}
		break;
	case JSMN_OBJECT:
		j = pp_json_new(PP_JSON_OBJECT);
		if (!j)
			return PP_ENOMEM;
		if (t->size == 0)
			rc = check_gap(c, t->start + 1, t->end - 1, 0);
		for (int i = 0, prev = t->start + 1; i < t->size && !rc; i++) {
			if (*idx >= c->ntok) {
				rc = fail_at(c, c->len, "unexpected end of input");
				break;
			}
			jsmntok_t *k = &c->tok[*idx];
			if (k->type != JSMN_STRING || k->size != 1) {
				rc = fail_at(c, (size_t)k->start,
					     "object key must be a string followed by ':'");
				break;
			}
			rc = check_gap(c, prev, raw_start(k), i ? ',' : 0);
			if (rc)
				break;
			char *key = NULL;
			size_t klen;
			rc = decode_string(c, k->start, k->end, &key, &klen);
			if (rc)
				break;
			if (strlen(key) != klen) {
				free(key);
				rc = fail_at(c, (size_t)k->start, "NUL in object key");
				break;
			}
			(*idx)++;
			struct pp_json *child = NULL;
			int at = *idx;
			if (at < c->ntok)
				rc = check_gap(c, raw_end(k), raw_start(&c->tok[at]), ':');
			if (!rc)
				rc = build(c, idx, depth + 1, &child);
			if (rc) {
				free(key);
				break;
			}
			child->key = key;
			link_child(j, child);
			prev = raw_end(&c->tok[at]);
			if (i == t->size - 1)
				rc = check_gap(c, prev, t->end - 1, 0);
		}
		if (!rc)
			rc = merge_duplicate_keys(j);
		break;
	default: return fail_at(c, (size_t)t->start, "unexpected token");
	}
	if (rc) {
		pp_json_free(j);
		return rc;
	}
	*out = j;
	return 0;
}

static int parse_text(const char *text, size_t len, const struct pp_json_limits *lim,
		      struct pp_json **out, struct pp_error *err)
{
	*out = NULL;
	size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : DEFAULT_MAX_BYTES;
	int max_depth = lim && lim->max_depth ? lim->max_depth : DEFAULT_MAX_DEPTH;
	if (len > max_bytes)
		return pp_fail(err, PP_EINVALID,
			       "1:1: document of %zu bytes exceeds the %zu-byte limit", len,
			       max_bytes);
	struct parse_ctx c = {.text = text, .len = len, .max_depth = max_depth, .err = err};
	jsmn_parser p;
	jsmn_init(&p);
	int n = jsmn_parse(&p, text, len, NULL, 0);
	if (n >= 0) {
		/* Counting pass skips strict checks; the real pass below runs them. */
		c.tok = calloc((size_t)n + 1, sizeof(*c.tok));
		if (!c.tok)
			return pp_fail(err, PP_ENOMEM, "out of memory parsing JSON");
		jsmn_init(&p);
		n = jsmn_parse(&p, text, len, c.tok, (unsigned)n + 1);
	}
	if (n < 0) {
		free(c.tok);
		const char *what = n == JSMN_ERROR_PART	   ? "unexpected end of input"
				   : n == JSMN_ERROR_NOMEM ? "too many tokens"
							   : "invalid JSON";
		return fail_at(&c, p.pos, what);
	}
	if (n == 0) {
		free(c.tok);
		return fail_at(&c, len, "empty document");
	}
	c.ntok = n;
	int idx = 0;
	struct pp_json *root = NULL;
	int rc = build(&c, &idx, 1, &root);
	if (!rc && idx != n) {
		rc = fail_at(&c, (size_t)c.tok[idx].start, "trailing data after the JSON value");
	}
	if (!rc) {
		/* jsmn does not require separators between primitives; check that
		 * only whitespace follows the root. */
		for (size_t i = (size_t)c.tok[0].end + (c.tok[0].type == JSMN_STRING); i < len;
		     i++) {
			char ch = text[i];
			if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
				rc = fail_at(&c, i, "trailing data after the JSON value");
				break;
			}
		}
	}
	free(c.tok);
	if (rc) {
		pp_json_free(root);
		return rc;
	}
	*out = root;
	return 0;
}

int pp_json_parse(const char *text, size_t len, const struct pp_json_limits *lim,
		  struct pp_json **out, struct pp_error *err)
{
	size_t i = 0;
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
		i++;
	if (i == len || text[i] == '{' || text[i] == '[' || text[i] == '"')
		return parse_text(text, len, lim, out, err);
	/* Strict jsmn wants a delimiter after a primitive, so a bare top-level
	 * number or literal at the very end reads as truncated: give it one. */
	*out = NULL;
	size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : DEFAULT_MAX_BYTES;
	if (len > max_bytes)
		return pp_fail(err, PP_EINVALID,
			       "1:1: document of %zu bytes exceeds the %zu-byte limit", len,
			       max_bytes);
	char *copy = malloc(len + 1);
	if (!copy)
		return pp_fail(err, PP_ENOMEM, "out of memory parsing JSON");
	memcpy(copy, text, len);
	copy[len] = '\n';
	struct pp_json_limits l = lim ? *lim : (struct pp_json_limits){0};
	l.max_bytes = max_bytes + 1;
	int rc = parse_text(copy, len + 1, &l, out, err);
	free(copy);
	return rc;
}

int pp_json_parse_file(const char *path, const struct pp_json_limits *lim, struct pp_json **out,
		       struct pp_error *err)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return pp_fail(err, errno == ENOENT ? PP_ENOTFOUND : PP_EIO, "%s: %s", path,
			       strerror(errno));
	size_t max = lim && lim->max_bytes ? lim->max_bytes : DEFAULT_MAX_BYTES;
	struct pp_buf b;
	pp_buf_init(&b, max);
	char chunk[8192];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (pp_buf_append(&b, chunk, n)) {
			rc = pp_fail(err, PP_EINVALID, "%s: larger than the %zu-byte limit", path,
				     max);
			break;
		}
	}
	if (!rc && ferror(f))
		rc = pp_fail(err, PP_EIO, "%s: read error", path);
	fclose(f);
	if (!rc) {
		rc = pp_json_parse(pp_buf_str(&b), b.len, lim, out, err);
		if (rc)
			pp_error_prefix(err, "%s:", path);
	}
	pp_buf_free(&b);
	return rc;
}

struct pp_json *pp_json_get(const struct pp_json *obj, const char *key)
{
	if (!obj || obj->type != PP_JSON_OBJECT)
		return NULL;
	for (struct pp_json *c = obj->child; c; c = c->next)
		if (!strcmp(c->key, key))
			return c;
	return NULL;
}

struct pp_json *pp_json_at(const struct pp_json *arr, size_t idx)
{
	if (!arr || (arr->type != PP_JSON_ARRAY && arr->type != PP_JSON_OBJECT))
		return NULL;
	struct pp_json *c = arr->child;
	while (c && idx--)
		c = c->next;
	return c;
}

struct pp_json *pp_json_path(const struct pp_json *root, const char *path)
{
	const struct pp_json *cur = root;
	const char *p = path;
	if (p[0] == '$')
		p++;
	if (p[0] == '.')
		p++;
	char key[256];
	while (cur && *p) {
		if (*p == '[') {
			p++;
			if (*p == '"') {
				const char *e = strchr(p + 1, '"');
				if (!e || e[1] != ']' || (size_t)(e - p - 1) >= sizeof(key))
					return NULL;
				memcpy(key, p + 1, (size_t)(e - p - 1));
				key[e - p - 1] = '\0';
				cur = pp_json_get(cur, key);
				p = e + 2;
			} else {
				char *e;
				unsigned long i = strtoul(p, &e, 10);
				if (e == p || *e != ']' || cur->type != PP_JSON_ARRAY)
					return NULL;
				cur = pp_json_at(cur, i);
				p = e + 1;
			}
		} else {
			size_t n = strcspn(p, ".[");
			if (n == 0 || n >= sizeof(key))
				return NULL;
			memcpy(key, p, n);
			key[n] = '\0';
			cur = pp_json_get(cur, key);
			p += n;
		}
		if (*p == '.')
			p++;
	}
	return (struct pp_json *)cur;
}

const char *pp_json_string(const struct pp_json *j)
{
	return j && j->type == PP_JSON_STRING ? j->str : NULL;
}

const char *pp_json_get_string(const struct pp_json *obj, const char *key)
{
	return pp_json_string(pp_json_get(obj, key));
}

bool pp_json_get_number(const struct pp_json *obj, const char *key, double *out)
{
	struct pp_json *j = pp_json_get(obj, key);
	if (!j || j->type != PP_JSON_NUMBER)
		return false;
	*out = j->num;
	return true;
}

long long pp_json_get_int(const struct pp_json *obj, const char *key, long long def)
{
	double v;
	if (!pp_json_get_number(obj, key, &v) || v != floor(v) || fabs(v) > 9.0e18)
		return def;
	return (long long)v;
}

bool pp_json_get_bool(const struct pp_json *obj, const char *key, bool def)
{
	struct pp_json *j = pp_json_get(obj, key);
	return j && j->type == PP_JSON_BOOL ? j->b : def;
}

bool pp_json_is(const struct pp_json *j, enum pp_json_type t)
{
	return j && j->type == t;
}

const char *pp_json_type_name(enum pp_json_type t)
{
	switch (t) {
	case PP_JSON_NULL: return "null";
	case PP_JSON_BOOL: return "boolean";
	case PP_JSON_NUMBER: return "number";
	case PP_JSON_STRING: return "string";
	case PP_JSON_ARRAY: return "array";
	case PP_JSON_OBJECT: return "object";
	}
	return "?";
}

struct pp_json *pp_json_new_stringn(const char *s, size_t n)
{
	struct pp_json *j = pp_json_new(PP_JSON_STRING);
	if (!j)
		return NULL;
	j->str = malloc(n + 1);
	if (!j->str) {
		free(j);
		return NULL;
	}
	memcpy(j->str, s, n);
	j->str[n] = '\0';
	j->len = n;
	return j;
}

struct pp_json *pp_json_new_string(const char *s)
{
	/* NULL in, NULL out: a caller passing on another failed allocation
	 * gets the failure, not a crash. */
	return s ? pp_json_new_stringn(s, strlen(s)) : NULL;
}

static struct pp_json *number_from_text(const char *txt, double v)
{
	struct pp_json *j = pp_json_new(PP_JSON_NUMBER);
	if (!j)
		return NULL;
	j->str = strdup(txt);
	if (!j->str) {
		free(j);
		return NULL;
	}
	j->len = strlen(txt);
	j->num = v;
	return j;
}

struct pp_json *pp_json_new_number(double v)
{
	char txt[40];
	if (!isfinite(v))
		return pp_json_new(PP_JSON_NULL); /* JSON has no NaN/Inf */
	if (v == floor(v) && fabs(v) < 1e15)
		snprintf(txt, sizeof(txt), "%.0f", v);
	else
		snprintf(txt, sizeof(txt), "%.17g", v);
	return number_from_text(txt, v);
}

struct pp_json *pp_json_new_int(long long v)
{
	char txt[32];
	snprintf(txt, sizeof(txt), "%lld", v);
	return number_from_text(txt, (double)v);
}

struct pp_json *pp_json_new_bool(bool v)
{
	struct pp_json *j = pp_json_new(PP_JSON_BOOL);
	if (j)
		j->b = v;
	return j;
}

struct pp_json *pp_json_clone(const struct pp_json *src)
{
	if (!src)
		return NULL;
	struct pp_json *j = pp_json_new(src->type);
	if (!j)
		return NULL;
	j->b = src->b;
	j->num = src->num;
	j->len = src->len;
	if (src->str) {
		j->str = malloc(src->len + 1);
		if (!j->str)
			goto fail;
		memcpy(j->str, src->str, src->len + 1);
	}
	if (src->key && !(j->key = strdup(src->key)))
		goto fail;
	for (const struct pp_json *c = src->child; c; c = c->next) {
		struct pp_json *cc = pp_json_clone(c);
		if (!cc)
			goto fail;
		link_child(j, cc);
	}
	return j;
fail:
	pp_json_free(j);
	return NULL;
}

struct pp_json *pp_json_detach(struct pp_json *child)
{
	struct pp_json *parent = child ? child->parent : NULL;
	if (!parent)
		return child;
	struct pp_json *prev = NULL;
	for (struct pp_json *c = parent->child; c; prev = c, c = c->next) {
		if (c != child)
			continue;
		if (prev)
			prev->next = c->next;
		else
			parent->child = c->next;
		if (parent->last == c)
			parent->last = prev;
		parent->count--;
		break;
	}
	child->next = NULL;
	child->parent = NULL;
	return child;
}

int pp_json_set(struct pp_json *obj, const char *key, struct pp_json *val)
{
	if (!val)
		return PP_ENOMEM;
	if (!obj || obj->type != PP_JSON_OBJECT) {
		pp_json_free(val);
		return PP_EINVALID;
	}
	char *k = strdup(key);
	if (!k) {
		pp_json_free(val);
		return PP_ENOMEM;
	}
	free(val->key);
	val->key = k;
	struct pp_json *old = pp_json_get(obj, key);
	if (!old) {
		link_child(obj, val);
		return 0;
	}
	/* Replace in place so member order is kept. */
	val->parent = obj;
	val->next = old->next;
	struct pp_json *prev = NULL;
	for (struct pp_json *c = obj->child; c != old; c = c->next)
		prev = c;
	if (prev)
		prev->next = val;
	else
		obj->child = val;
	if (obj->last == old)
		obj->last = val;
	old->next = NULL;
	pp_json_free(old);
	return 0;
}

int pp_json_set_string(struct pp_json *obj, const char *key, const char *s)
{
	return pp_json_set(obj, key, pp_json_new_string(s));
}

int pp_json_set_int(struct pp_json *obj, const char *key, long long v)
{
	return pp_json_set(obj, key, pp_json_new_int(v));
}

int pp_json_set_bool(struct pp_json *obj, const char *key, bool v)
{
	return pp_json_set(obj, key, pp_json_new_bool(v));
}

int pp_json_append(struct pp_json *arr, struct pp_json *val)
{
	if (!val)
		return PP_ENOMEM;
	if (!arr || arr->type != PP_JSON_ARRAY) {
		pp_json_free(val);
		return PP_EINVALID;
	}
	free(val->key);
	val->key = NULL;
	link_child(arr, val);
	return 0;
}

bool pp_json_remove(struct pp_json *obj, const char *key)
{
	struct pp_json *c = pp_json_get(obj, key);
	if (!c)
		return false;
	pp_json_free(pp_json_detach(c));
	return true;
}

bool pp_json_equal(const struct pp_json *a, const struct pp_json *b)
{
	if (!a || !b)
		return a == b;
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case PP_JSON_NULL: return true;
	case PP_JSON_BOOL: return a->b == b->b;
	case PP_JSON_NUMBER: return a->num == b->num;
	case PP_JSON_STRING: return a->len == b->len && !memcmp(a->str, b->str, a->len);
	case PP_JSON_ARRAY: {
		if (a->count != b->count)
			return false;
		for (const struct pp_json *x = a->child, *y = b->child; x; x = x->next, y = y->next)
			if (!pp_json_equal(x, y))
				return false;
		return true;
	}
	case PP_JSON_OBJECT: {
		if (a->count != b->count)
			return false;
		for (const struct pp_json *x = a->child; x; x = x->next)
			if (!pp_json_equal(x, pp_json_get(b, x->key)))
				return false;
		return true;
	}
	}
	return false;
}

int pp_json_write_string(struct pp_buf *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	int rc = pp_buf_putc(out, '"');
	size_t run = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		unsigned char ch = (unsigned char)s[i];
		const char *esc = NULL;
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
			if (ch < 0x20 || ch == 0x7f) {
				u[0] = '\\';
				u[1] = 'u';
				u[2] = '0';
				u[3] = '0';
				u[4] = hex[ch >> 4];
				u[5] = hex[ch & 15];
				u[6] = '\0';
				esc = u;
			}
		}
		if (!esc) {
			run++;
			continue;
		}
		rc = pp_buf_append(out, s + i - run, run);
		run = 0;
		if (!rc)
			rc = pp_buf_puts(out, esc);
	}
	if (!rc)
		rc = pp_buf_append(out, s + n - run, run);
	if (!rc)
		rc = pp_buf_putc(out, '"');
	return rc;
}

static int indent(struct pp_buf *out, int flags, int depth)
{
	if (!(flags & PP_JSON_PRETTY))
		return 0;
	int rc = pp_buf_putc(out, '\n');
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
		int rc = pp_buf_putc(out, obj ? '{' : '[');
		for (const struct pp_json *c = j->child; c && !rc; c = c->next) {
			if (c != j->child)
				rc = pp_buf_putc(out, ',');
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
			rc = pp_buf_putc(out, obj ? '}' : ']');
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
