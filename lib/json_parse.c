/* JSON text to a tree. lex() tokenizes as strict jsmn with parent links
 * did (this file's tokenizer until issue 23; same tokens, same errors at
 * the same bytes) and build() adds the strict checks jsmn left out (number
 * grammar, escapes, UTF-8, separators, a single top-level value), limits,
 * and line:column errors.
 *
 * Linear time: at every closing bracket the tokenizer walks from the last
 * token up the parent links to the open container, so n nested brackets
 * cost n^2 steps ("[" x 10^6 then "]" x 10^6 ran for an hour). The depth
 * and token limits are counted as prescan() counts them, in the same pass
 * (a second pass over the text cost as much as the tokenizer), and lex()
 * stops at the first excess, which bounds that walk by the depth limit.
 * When lex() stops for any reason, prescan() reads the whole text first, as
 * it did before jsmn ran, so a limit anywhere is reported before a syntax
 * error. */
#include "lib/json.h"
#include "lib/json_node.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/file.h"
#include "lib/json_scan.h"

#define DEFAULT_MAX_BYTES  ((size_t)16 << 20)
#define DEFAULT_MAX_DEPTH  64
#define DEFAULT_MAX_TOKENS ((size_t)1 << 20)
#define STACK_TOKENS	   512

enum tok_type { TOK_OBJECT, TOK_ARRAY, TOK_STRING, TOK_PRIMITIVE };

/* A value or key: [start,end) of its text (a string's without the quotes;
 * end is -1 while a container is open), its children (a key's: its value),
 * the index of its parent token, -1 at the top. A plain string holds no
 * escape, control or non-ASCII byte: its text is its value. */
struct tok {
	enum tok_type type;
	int start, end, size, parent;
	bool plain;
};

struct parse_ctx {
	const char *text;
	size_t len;
	struct tok *tok;
	int ntok;
	int max_depth;
	struct pp_error *err;
	/* Where pp_json_parse_keep decodes the strings it checks without
	 * keeping them, and the names of members it picks from. */
	char *scratch;
	size_t scratch_room;
};

/* At most this many paths a pp_json_parse_keep call. */
#define KEEP_MAX 16

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

/* Write cp as UTF-8 at d (room for 4 bytes); returns the bytes written. */
static size_t put_utf8(char *d, uint32_t cp)
{
	if (cp < 0x80) {
		d[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		d[0] = (char)(0xC0 | (cp >> 6));
		d[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		d[0] = (char)(0xE0 | (cp >> 12));
		d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		d[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	d[0] = (char)(0xF0 | (cp >> 18));
	d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	d[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
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

/* Decode the string token body [start,end) into d. The decoded text is
 * never longer than its source (an escape shrinks, UTF-8 is copied as is),
 * so d holds end - start + 1 bytes (a node's room for it, see
 * token_room()), and runs of plain ASCII are copied at once: responses are
 * mostly such runs. */
static int decode_string(struct parse_ctx *c, int start, int end, char *d, size_t *outlen)
{
	size_t n_out = 0;
	const char *s = c->text;
	int i = start;
	while (i < end) {
		/* The lexer's scan: inside a token a '"' comes only after the
		 * '\\' that escapes it, where the scan stops first. */
		int run = (int)pp_json_skip_plain(s, (size_t)i, (size_t)end, PP_JSON_STOPS_LEX);
		while (run < end) {
			unsigned char ch = (unsigned char)s[run];
			if (ch < 0x20 || ch >= 0x80 || ch == '\\')
				break;
			run++;
		}
		if (run > i) {
			memcpy(d + n_out, s + i, (size_t)(run - i));
			n_out += (size_t)(run - i);
			i = run;
			continue;
		}
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20)
			return fail_at(c, (size_t)i, "control character in string");
		if (ch == '\\') {
			if (i + 1 >= end)
				return fail_at(c, (size_t)i, "unterminated escape");
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
				if (i + 6 > end || hex4(s + i + 2, &cp))
					return fail_at(c, (size_t)i, "bad \\u escape");
				i += 6;
				if (cp >= 0xD800 && cp <= 0xDBFF) {
					uint32_t lo;
					if (i + 6 > end || s[i] != '\\' || s[i + 1] != 'u' ||
					    hex4(s + i + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
						return fail_at(c, (size_t)i,
							       "unpaired UTF-16 surrogate");
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					i += 6;
				} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
					return fail_at(c, (size_t)i - 6,
						       "unpaired UTF-16 surrogate");
				}
				n_out += put_utf8(d + n_out, cp);
				continue;
			}
			default: return fail_at(c, (size_t)i, "invalid escape");
			}
			d[n_out++] = lit;
			i += 2;
			continue;
		}
		size_t n = utf8_seq((const unsigned char *)s + i, (size_t)(end - i));
		if (!n)
			return fail_at(c, (size_t)i, "invalid UTF-8 in string");
		memcpy(d + n_out, s + i, n);
		n_out += n;
		i += (int)n;
	}
	d[n_out] = '\0';
	*outlen = n_out;
	return 0;
}

/* The bytes a string or number token's text takes in its node: its
 * source length (which decoding a string never exceeds) and the NUL. */
static size_t token_room(const struct tok *t)
{
	return (size_t)(t->end - t->start) + 1;
}

/* A string token's value into d (token_room(t) bytes): a plain one's text
 * as it is, else decoded. */
static int token_string(struct parse_ctx *c, const struct tok *t, char *d, size_t *outlen)
{
	if (!t->plain)
		return decode_string(c, t->start, t->end, d, outlen);
	size_t n = (size_t)(t->end - t->start);
	memcpy(d, c->text + t->start, n);
	d[n] = '\0';
	*outlen = n;
	return 0;
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

static int raw_start(const struct tok *t)
{
	return t->type == TOK_STRING ? t->start - 1 : t->start;
}

static int raw_end(const struct tok *t)
{
	return t->type == TOK_STRING ? t->end + 1 : t->end;
}

/* lex() does not check separators (it accepts "[1,]" and "{"a" 1}"), so the
 * text between two tokens must be whitespace around exactly sep (or
 * nothing when sep is 0). */
static int check_spaced_gap(struct parse_ctx *c, int from, int to, char sep)
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

/* Compact text, what APIs send, has sep alone between two tokens, or
 * nothing: decided here without a call, once a token (issue 23). */
static inline int check_gap(struct parse_ctx *c, int from, int to, char sep)
{
	if (sep ? to - from == 1 && c->text[from] == sep : to == from)
		return 0;
	return check_spaced_gap(c, from, to, sep);
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

/* Up to this many members, comparing every pair is cheaper than the sort
 * (and its two allocations) for the usual object without repeated keys. */
#define SMALL_OBJECT 16

static bool has_duplicate_key(const struct pp_json *obj)
{
	for (const struct pp_json *a = obj->child; a; a = a->next)
		for (const struct pp_json *b = a->next; b; b = b->next)
			if (a->key[0] == b->key[0] && !strcmp(a->key, b->key))
				return true;
	return false;
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
	if (n <= SMALL_OBJECT && !has_duplicate_key(obj))
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
				pp_json_link(obj, slot[i]);
	}
	free(refs);
	free(slot);
	return 0;
}

/* Where lex() ends a primitive: white space, ',', ']', '}' or NUL. */
static bool ends_primitive(char ch)
{
	switch (ch) {
	case ' ':
	case '\t':
	case '\n':
	case '\r':
	case ',':
	case ']':
	case '}':
	case '\0': return true;
	default: return false;
	}
}

/* One pass over the text that lexes as lex() does (strings end at an
 * unescaped quote, primitives at white space, ',', ']' or '}', everything
 * stops at a NUL), so it sees exactly the containers lex() opens. A value
 * (or key) inside d open containers is at depth d + 1, as build() counts.
 * On success *ntok is at least the number of tokens lex() makes. lex()
 * keeps the same counts; this pass runs when lex() stops, to find a limit
 * exceeded anywhere in the text (the check that comes first). */
static int prescan(struct parse_ctx *c, size_t max_tokens, size_t *ntok)
{
	const char *s = c->text;
	size_t n = c->len, tokens = 0;
	int open = 0;
	for (size_t i = 0; i < n && s[i]; i++) {
		char ch = s[i];
		if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == ',' || ch == ':')
			continue;
		if (ch == ']' || ch == '}') {
			if (open)
				open--;
			continue;
		}
		if (open + 1 > c->max_depth) {
			char what[96];
			snprintf(what, sizeof(what),
				 "JSON nested deeper than %d levels at byte %zu", c->max_depth, i);
			return fail_at(c, i, what);
		}
		if (++tokens > max_tokens) {
			char what[96];
			snprintf(what, sizeof(what), "JSON holds more than %zu tokens at byte %zu",
				 max_tokens, i);
			return fail_at(c, i, what);
		}
		if (ch == '[' || ch == '{') {
			open++;
		} else if (ch == '"') {
			for (i++; i < n && s[i] && s[i] != '"'; i++)
				if (s[i] == '\\' && i + 1 < n)
					i++;
			if (i >= n || !s[i])
				break;
		} else {
			while (i + 1 < n && !ends_primitive(s[i + 1]))
				i++;
		}
	}
	*ntok = tokens;
	return 0;
}

/* Why lex() stopped: the text is not JSON as the tokenizer reads it
 * (LEX_PARTIAL: it ends inside a value), a limit prescan() counts was
 * reached, or tokens could not be allocated. */
enum { LEX_INVALID = -1, LEX_PARTIAL = -2, LEX_LIMIT = -3, LEX_NOMEM = -4 };

struct lexer {
	struct tok *tok, *stack; /* the caller's stack array until it is full */
	size_t cap, next;	 /* tokens allocated, used */
	size_t max;		 /* tokens it may hold: the token limit */
	size_t pos;		 /* where an error is */
};

static bool is_hex(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'F') || (ch >= 'a' && ch <= 'f');
}

/* Double the token array, up to the limit: lex() counts a token before it
 * allocates one, so the array never exceeds it. */
static int grow_toks(struct lexer *lx)
{
	size_t cap = lx->cap * 2 < lx->max ? lx->cap * 2 : lx->max;
	if (cap <= lx->cap || cap > SIZE_MAX / sizeof(struct tok))
		return PP_ENOMEM;
	struct tok *t = lx->tok == lx->stack ? malloc(cap * sizeof(*t))
					     : realloc(lx->tok, cap * sizeof(*t));
	if (!t)
		return PP_ENOMEM;
	if (lx->tok == lx->stack)
		memcpy(t, lx->stack, lx->next * sizeof(*t));
	lx->tok = t;
	lx->cap = cap;
	return 0;
}

/* A new token, its parent -1; NULL when the array cannot grow. */
static inline struct tok *new_tok(struct lexer *lx)
{
	if (lx->next == lx->cap && grow_toks(lx))
		return NULL;
	struct tok *t = &lx->tok[lx->next++];
	t->end = -1;
	t->size = 0;
	t->parent = -1;
	return t;
}

/* Tokenize the text as strict jsmn with parent links: the same tokens, and
 * the same error at the same byte (for a string or primitive, its first
 * byte). Runs of string bytes are skipped 16 or 8 at a time. Counts
 * depth and tokens as prescan() does and stops with LEX_LIMIT at the first
 * excess; returns the number of tokens. */
static int lex(struct parse_ctx *c, struct lexer *lx)
{
	const char *s = c->text;
	size_t n = c->len, pos, unclosed = 0;
	int open = 0, super = -1;
	struct tok *t;
	for (pos = 0; pos < n && s[pos]; pos++) {
		char ch = s[pos];
		switch (ch) {
		case '{':
		case '[':
			if (open + 1 > c->max_depth || lx->next >= lx->max)
				return LEX_LIMIT;
			open++;
			if (!(t = new_tok(lx)))
				return LEX_NOMEM;
			if (super != -1) {
				struct tok *up = &lx->tok[super];
				if (up->type == TOK_OBJECT) {
					lx->pos = pos;
					return LEX_INVALID;
				}
				up->size++;
				t->parent = super;
			}
			t->type = ch == '{' ? TOK_OBJECT : TOK_ARRAY;
			t->start = (int)pos;
			super = (int)lx->next - 1;
			unclosed++;
			break;
		case '}':
		case ']': {
			if (open)
				open--;
			enum tok_type type = ch == '}' ? TOK_OBJECT : TOK_ARRAY;
			lx->pos = pos;
			if (lx->next < 1)
				return LEX_INVALID;
			t = &lx->tok[lx->next - 1];
			for (;;) {
				if (t->end == -1) {
					if (t->type != type)
						return LEX_INVALID;
					t->end = (int)pos + 1;
					super = t->parent;
					unclosed--;
					break;
				}
				if (t->parent == -1) {
					if (t->type != type || super == -1)
						return LEX_INVALID;
					break;
				}
				t = &lx->tok[t->parent];
			}
			break;
		}
		case '"': {
			if (open + 1 > c->max_depth || lx->next >= lx->max)
				return LEX_LIMIT;
			size_t start = pos;
			bool plain = true;
			lx->pos = start;
			for (pos++;; pos++) {
				pos = pp_json_skip_plain(s, pos, n, PP_JSON_STOPS_LEX);
				if (pos >= n || !s[pos])
					return LEX_PARTIAL;
				unsigned char b = (unsigned char)s[pos];
				if (b == '"')
					break;
				if (b == '\\' || b < 0x20 || b >= 0x80)
					plain = false;
				if (b != '\\' || pos + 1 >= n)
					continue;
				switch (s[++pos]) {
				case '"':
				case '/':
				case '\\':
				case 'b':
				case 'f':
				case 'r':
				case 'n':
				case 't': break;
				case 'u':
					pos++;
					for (int i = 0; i < 4 && pos < n && s[pos]; i++, pos++)
						if (!is_hex(s[pos]))
							return LEX_INVALID;
					pos--;
					break;
				default: return LEX_INVALID;
				}
			}
			if (!(t = new_tok(lx)))
				return LEX_NOMEM;
			t->plain = plain;
			t->type = TOK_STRING;
			t->start = (int)start + 1;
			t->end = (int)pos;
			t->parent = super;
			if (super != -1)
				lx->tok[super].size++;
			break;
		}
		case '\t':
		case '\r':
		case '\n':
		case ' ': break;
		case ':': super = (int)lx->next - 1; break;
		case ',':
			if (super != -1 && lx->tok[super].type != TOK_ARRAY &&
			    lx->tok[super].type != TOK_OBJECT)
				super = lx->tok[super].parent;
			break;
		case '-':
		case '0':
		case '1':
		case '2':
		case '3':
		case '4':
		case '5':
		case '6':
		case '7':
		case '8':
		case '9':
		case 't':
		case 'f':
		case 'n': {
			if (open + 1 > c->max_depth || lx->next >= lx->max)
				return LEX_LIMIT;
			/* A primitive is never a key, nor a second value of one. */
			if (super != -1) {
				const struct tok *up = &lx->tok[super];
				if (up->type == TOK_OBJECT ||
				    (up->type == TOK_STRING && up->size)) {
					lx->pos = pos;
					return LEX_INVALID;
				}
			}
			size_t start = pos;
			lx->pos = start;
			for (; pos < n && !ends_primitive(s[pos]); pos++)
				if ((unsigned char)s[pos] < 32 || (unsigned char)s[pos] >= 127)
					return LEX_INVALID;
			if (pos >= n || !s[pos])
				return LEX_PARTIAL;
			if (!(t = new_tok(lx)))
				return LEX_NOMEM;
			t->type = TOK_PRIMITIVE;
			t->start = (int)start;
			t->end = (int)pos;
			t->parent = super;
			if (super != -1)
				lx->tok[super].size++;
			pos--;
			break;
		}
		default: lx->pos = pos; return LEX_INVALID;
		}
	}
	lx->pos = pos;
	return unclosed ? LEX_PARTIAL : (int)lx->next;
}

/* What a primitive token is: a number or literal's node type, or -1 when
 * it is none. */
static int primitive_type(const char *p, size_t n)
{
	if (n == 4 && !memcmp(p, "true", 4))
		return PP_JSON_BOOL;
	if (n == 5 && !memcmp(p, "false", 5))
		return PP_JSON_BOOL;
	if (n == 4 && !memcmp(p, "null", 4))
		return PP_JSON_NULL;
	return valid_number(p, n) ? PP_JSON_NUMBER : -1;
}

/* The name k of member value t, decoded into d (room for token_room(k)
 * bytes: the key of the member's node, or scratch; NULL when k is plain and
 * its text need not be copied), checked before the value (so errors come
 * in the order of the text). */
static int member_key(struct parse_ctx *c, const struct tok *k, const struct tok *t, char *d)
{
	if (d) {
		size_t klen;
		int rc = token_string(c, k, d, &klen);
		if (rc)
			return rc;
		if (!k->plain && strlen(d) != klen)
			return fail_at(c, (size_t)k->start, "NUL in object key");
	}
	return check_gap(c, raw_end(k), raw_start(t), ':');
}

/* Room for a string token's value in c->scratch, where the values that
 * are checked but not kept are decoded; NULL when out of memory. */
static char *scratch_for(struct parse_ctx *c, const struct tok *t)
{
	size_t room = token_room(t);
	if (room > c->scratch_room) {
		char *grown = realloc(c->scratch, room);
		if (!grown)
			return NULL;
		c->scratch = grown;
		c->scratch_room = room;
	}
	return c->scratch;
}

/* Which of an object's members to keep, for the filter keep (paths
 * relative to the object, NULL-terminated; NULL keeps all): whole
 * (returns NULL, the default), none (*skip), or the members of its own
 * that the paths through it name (written to sub, returned). */
static const char *const *member_filter(const char *const *keep, const char *name, size_t len,
					const char **sub, bool *skip)
{
	*skip = false;
	if (!keep)
		return NULL;
	size_t nsub = 0;
	for (; *keep; keep++) {
		/* By length: a key may hold a NUL (refused once it is built).
		 * Most keys differ from a path at its first byte. */
		if ((len && (*keep)[0] != name[0]) || strlen(*keep) < len ||
		    memcmp(*keep, name, len))
			continue;
		if ((*keep)[len] == '\0')
			return NULL;
		if ((*keep)[len] == '.')
			sub[nsub++] = *keep + len + 1;
	}
	sub[nsub] = NULL;
	*skip = nsub == 0;
	return sub;
}

/* The value at tok[*idx], a member named by the string token key when key
 * is not NULL: the node holds its text and key in one allocation. Depth is
 * bounded by lex(), so this recursion is too. An object keeps the members
 * keep names (see member_filter), an array passes keep on to its objects
 * and arrays; with out NULL, the value is checked as it would be built,
 * and nothing is made. */
static int build(struct parse_ctx *c, int *idx, const struct tok *key, const char *const *keep,
		 struct pp_json **out)
{
	if (*idx >= c->ntok)
		return fail_at(c, c->len, "unexpected end of input");
	struct tok *t = &c->tok[*idx];
	const char *p = c->text + t->start;
	size_t n = (size_t)(t->end - t->start);
	(*idx)++;
	int type = PP_JSON_NULL;
	size_t str_room = 0;
	switch (t->type) {
	case TOK_PRIMITIVE:
		/* An invalid literal is reported once the key is checked. */
		type = primitive_type(p, n);
		if (type == PP_JSON_NUMBER)
			str_room = token_room(t);
		break;
	case TOK_STRING:
		type = PP_JSON_STRING;
		str_room = token_room(t);
		break;
	case TOK_ARRAY: type = PP_JSON_ARRAY; break;
	case TOK_OBJECT: type = PP_JSON_OBJECT; break;
	}
	struct pp_json *j = NULL;
	int rc = 0;
	if (out) {
		j = pp_json_alloc(type < 0 ? PP_JSON_NULL : (enum pp_json_type)type, str_room,
				  key ? token_room(key) : 0);
		if (!j)
			return PP_ENOMEM;
		rc = key ? member_key(c, key, t, j->key) : 0;
	} else if (key) {
		char *k = key->plain ? NULL : scratch_for(c, key);
		rc = key->plain || k ? member_key(c, key, t, k) : PP_ENOMEM;
	}
	if (rc)
		goto out;
	switch (t->type) {
	case TOK_PRIMITIVE:
		if (type < 0) {
			rc = fail_at(c, (size_t)t->start, "invalid literal");
		} else if (!j) {
			break;
		} else if (type == PP_JSON_BOOL) {
			j->b = *p == 't';
		} else if (type == PP_JSON_NUMBER) {
			memcpy(j->str, p, n);
			j->str[n] = '\0';
			j->len = n;
			j->num = strtod(j->str, NULL);
		}
		break;
	case TOK_STRING:
		if (j) {
			rc = token_string(c, t, j->str, &j->len);
		} else if (!t->plain) {
			char *d = scratch_for(c, t);
			size_t dlen;
			rc = d ? token_string(c, t, d, &dlen) : PP_ENOMEM;
		}
		break;
	case TOK_ARRAY:
		if (t->size == 0)
			rc = check_gap(c, t->start + 1, t->end - 1, 0);
		for (int i = 0, prev = t->start + 1; i < t->size && !rc; i++) {
			struct pp_json *child = NULL;
			if (*idx < c->ntok)
				rc = check_gap(c, prev, raw_start(&c->tok[*idx]), i ? ',' : 0);
			int at = *idx;
			/* A path through an array goes through each of its
			 * objects and arrays; anything else in it is kept. */
			enum tok_type et = c->tok[at].type;
			const char *const *within =
				et == TOK_OBJECT || et == TOK_ARRAY ? keep : NULL;
			if (!rc)
				rc = build(c, idx, NULL, within, j ? &child : NULL);
			if (!rc) {
				if (j)
					pp_json_link(j, child);
				prev = raw_end(&c->tok[at]);
				if (i == t->size - 1)
					rc = check_gap(c, prev, t->end - 1, 0);
			}
		}
		break;
	case TOK_OBJECT:
		if (t->size == 0)
			rc = check_gap(c, t->start + 1, t->end - 1, 0);
		for (int i = 0, prev = t->start + 1; i < t->size && !rc; i++) {
			if (*idx >= c->ntok) {
				rc = fail_at(c, c->len, "unexpected end of input");
				break;
			}
			struct tok *k = &c->tok[*idx];
			if (k->type != TOK_STRING || k->size != 1) {
				rc = fail_at(c, (size_t)k->start,
					     "object key must be a string followed by ':'");
				break;
			}
			rc = check_gap(c, prev, raw_start(k), i ? ',' : 0);
			if (rc)
				break;
			(*idx)++;
			/* A key's one child follows it (size 1), so tok[at]
			 * exists. */
			struct pp_json *child = NULL;
			int at = *idx;
			const char *sub[KEEP_MAX + 1];
			bool skip = !j;
			const char *const *within = NULL;
			if (j && keep) {
				const char *name = c->text + k->start;
				size_t nlen = (size_t)(k->end - k->start);
				if (!k->plain) {
					char *d = scratch_for(c, k);
					rc = d ? token_string(c, k, d, &nlen) : PP_ENOMEM;
					if (rc)
						break;
					name = d;
				}
				within = member_filter(keep, name, nlen, sub, &skip);
				/* Paths go through objects and arrays: anything
				 * else on one is kept whole. */
				if (within && c->tok[at].type != TOK_OBJECT &&
				    c->tok[at].type != TOK_ARRAY)
					within = NULL;
			}
			rc = build(c, idx, k, within, skip ? NULL : &child);
			if (rc)
				break;
			if (child)
				pp_json_link(j, child);
			prev = raw_end(&c->tok[at]);
			if (i == t->size - 1)
				rc = check_gap(c, prev, t->end - 1, 0);
		}
		if (!rc && j)
			rc = merge_duplicate_keys(j);
		break;
	}
out:
	if (rc) {
		pp_json_free(j);
		return rc;
	}
	if (out)
		*out = j;
	return 0;
}

static int parse_text(const char *text, size_t len, const struct pp_json_limits *lim,
		      const char *const *keep, struct pp_json **out, struct pp_error *err)
{
	*out = NULL;
	size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : DEFAULT_MAX_BYTES;
	int max_depth = lim && lim->max_depth ? lim->max_depth : DEFAULT_MAX_DEPTH;
	if (len > max_bytes)
		return pp_fail(err, PP_EINVALID,
			       "1:1: document of %zu bytes exceeds the %zu-byte limit", len,
			       max_bytes);
	size_t max_tokens = lim && lim->max_tokens ? lim->max_tokens : DEFAULT_MAX_TOKENS;
	struct parse_ctx c = {.text = text, .len = len, .max_depth = max_depth, .err = err};
	struct tok stack_tok[STACK_TOKENS];
	/* Counting more than INT32_MAX tokens stops lex() too: the check
	 * after prescan() below refuses them. */
	size_t lex_max = max_tokens < (size_t)INT32_MAX ? max_tokens : (size_t)INT32_MAX - 1;
	struct lexer lx = {
		.tok = stack_tok, .stack = stack_tok, .cap = STACK_TOKENS, .max = lex_max};
	int n = lex(&c, &lx);
	int rc = 0;
	if (n == LEX_NOMEM) {
		rc = pp_fail(err, PP_ENOMEM, "out of memory parsing JSON");
	} else if (n < 0) {
		size_t ntok = 0;
		rc = prescan(&c, max_tokens, &ntok);
		if (!rc && ntok >= (size_t)INT32_MAX)
			rc = fail_at(&c, 0, "JSON holds too many tokens");
		if (!rc)
			rc = fail_at(&c, lx.pos,
				     n == LEX_PARTIAL ? "unexpected end of input" : "invalid JSON");
	} else if (n == 0) {
		rc = fail_at(&c, len, "empty document");
	}
	if (rc) {
		if (lx.tok != stack_tok)
			free(lx.tok);
		return rc;
	}
	c.tok = lx.tok;
	c.ntok = n;
	int idx = 0;
	struct pp_json *root = NULL;
	rc = build(&c, &idx, NULL, keep, &root);
	if (rc == PP_ENOMEM)
		rc = pp_fail(err, PP_ENOMEM, "out of memory parsing JSON");
	if (!rc && idx != n) {
		rc = fail_at(&c, (size_t)c.tok[idx].start, "trailing data after the JSON value");
	}
	if (!rc) {
		/* lex() does not require separators between primitives; check that
		 * only whitespace follows the root. */
		for (size_t i = (size_t)c.tok[0].end + (c.tok[0].type == TOK_STRING); i < len;
		     i++) {
			char ch = text[i];
			if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
				rc = fail_at(&c, i, "trailing data after the JSON value");
				break;
			}
		}
	}
	if (lx.tok != stack_tok)
		free(lx.tok);
	free(c.scratch);
	if (rc) {
		pp_json_free(root);
		return rc;
	}
	*out = root;
	return 0;
}

static int parse_keep(const char *text, size_t len, const struct pp_json_limits *lim,
		      const char *const *keep, struct pp_json **out, struct pp_error *err)
{
	size_t i = 0;
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
		i++;
	if (i == len || text[i] == '{' || text[i] == '[' || text[i] == '"')
		return parse_text(text, len, lim, keep, out, err);
	/* lex() wants a delimiter after a primitive, so a bare top-level
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
	int rc = parse_text(copy, len + 1, &l, keep, out, err);
	free(copy);
	return rc;
}

int pp_json_parse(const char *text, size_t len, const struct pp_json_limits *lim,
		  struct pp_json **out, struct pp_error *err)
{
	return parse_keep(text, len, lim, NULL, out, err);
}

int pp_json_parse_keep(const char *text, size_t len, const struct pp_json_limits *lim,
		       const char *const *keep, struct pp_json **out, struct pp_error *err)
{
	size_t n = 0;
	while (keep && keep[n])
		n++;
	if (n > KEEP_MAX) {
		*out = NULL;
		return pp_fail(err, PP_EINVALID, "JSON: %zu paths to keep, at most %d", n,
			       KEEP_MAX);
	}
	return parse_keep(text, len, lim, keep, out, err);
}

int pp_json_parse_file(const char *path, const struct pp_json_limits *lim, struct pp_json **out,
		       struct pp_error *err)
{
	*out = NULL;
	size_t max = lim && lim->max_bytes ? lim->max_bytes : DEFAULT_MAX_BYTES;
	struct pp_buf b;
	pp_buf_init(&b, max);
	int rc = pp_file_read(path, max, &b, err);
	if (!rc) {
		rc = pp_json_parse(pp_buf_str(&b), b.len, lim, out, err);
		if (rc)
			pp_error_prefix(err, "%s:", path);
	}
	pp_buf_free(&b);
	return rc;
}
