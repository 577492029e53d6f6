/* YAML to the JSON tree, on libyaml's event parser (no recursion, no
 * document graph): collections are built on an explicit stack whose height
 * is the depth cap, anchors point at finished nodes, aliases are copied
 * after their cost is checked against the node cap. Rules: lib/yaml.h. */
#include "lib/yaml.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "lib/buf.h"
#include "lib/file.h"

#define TAG_PREFIX "tag:yaml.org,2002:"

struct anchor {
	char *name;
	const struct pp_json *node; /* in the tree or in ctx.spare, freed with them */
};

struct frame {
	struct pp_json *node; /* the collection being built */
	char *key;	      /* mapping: the key waiting for its value */
	bool merging;	      /* that key is the merge key "<<" */
	/* mapping: the mappings "<<" named, in order (borrowed from spare) */
	const struct pp_json **merges;
	size_t nmerges;
	char *anchor; /* registered when the collection ends */
	int height;   /* collections nested in the tallest child so far */
};

struct ctx {
	const char *name;
	struct pp_error *err;
	int max_depth;
	size_t max_nodes, max_anchors;
	size_t nodes;
	struct frame *stack;
	int depth;
	struct anchor *anchors;
	size_t nanchors;
	/* Merge values are not members of the tree, but anchors may point
	 * into them: they live here until the parse ends. */
	struct pp_json *spare;
	struct pp_json *root;
	bool have_root;
};

static int fail_line(struct ctx *c, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail_line(struct ctx *c, int line, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return pp_fail(c->err, PP_EINVALID, "%s:%d: %s", c->name, line, what);
}

static int oom(struct ctx *c)
{
	return pp_fail(c->err, PP_ENOMEM, "%s: out of memory", c->name);
}

static int line_of(const yaml_event_t *ev)
{
	return (int)ev->start_mark.line + 1;
}

static int count_nodes(struct ctx *c, size_t n, int line)
{
	if (n > c->max_nodes - c->nodes)
		return fail_line(c, line,
				 "more than %zu values (aliases expanded); the cap "
				 "guards against alias bombs",
				 c->max_nodes);
	c->nodes += n;
	return 0;
}

/* ------------------------------------------------------- scalar resolution */

static bool word_is(const char *s, size_t n, const char *const *words)
{
	for (; *words; words++)
		if (strlen(*words) == n && !memcmp(s, *words, n))
			return true;
	return false;
}

static bool null_word(const char *s, size_t n)
{
	static const char *const w[] = {"~", "null", "Null", "NULL", NULL};
	return n == 0 || word_is(s, n, w);
}

/* 1 true, 0 false, -1 neither (YAML 1.1's words, as PyYAML reads them). */
static int bool_word(const char *s, size_t n)
{
	static const char *const t[] = {"yes",	"Yes", "YES", "true", "True",
					"TRUE", "on",  "On",  "ON",   NULL};
	static const char *const f[] = {"no",	 "No",	"NO",  "false", "False",
					"FALSE", "off", "Off", "OFF",	NULL};
	return word_is(s, n, t) ? 1 : word_is(s, n, f) ? 0 : -1;
}

static bool in_set(char ch, const char *set)
{
	return ch && strchr(set, ch);
}

/* s[i..n) is one or more characters of set (underscores allowed). */
static bool all_of(const char *s, size_t i, size_t n, const char *set)
{
	if (i >= n)
		return false;
	for (; i < n; i++)
		if (!in_set(s[i], set) && s[i] != '_')
			return false;
	return true;
}

/* The text without underscores, for strtoll/strtod; NULL when too long. */
static bool strip_underscores(const char *s, size_t n, char *out, size_t size)
{
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '_')
			continue;
		if (j + 1 >= size)
			return false;
		out[j++] = s[i];
	}
	out[j] = '\0';
	return true;
}

enum resolved { R_NO, R_YES, R_RANGE };

/* YAML 1.1 integers: [-+]? then 0b..., 0x..., 0 followed by octal digits,
 * or decimal (sexagesimal stays a string, see lib/yaml.h). */
static enum resolved resolve_int(const char *s, size_t n, long long *v)
{
	size_t i = n && (s[0] == '-' || s[0] == '+');
	int base;
	size_t digits;
	if (n - i >= 2 && s[i] == '0' && s[i + 1] == 'b') {
		base = 2, digits = i + 2;
		if (!all_of(s, digits, n, "01"))
			return R_NO;
	} else if (n - i >= 2 && s[i] == '0' && s[i + 1] == 'x') {
		base = 16, digits = i + 2;
		if (!all_of(s, digits, n, "0123456789abcdefABCDEF"))
			return R_NO;
	} else if (n - i >= 2 && s[i] == '0') {
		base = 8, digits = i; /* the 0 too: "0_" is 0 */
		if (!all_of(s, i + 1, n, "01234567"))
			return R_NO;
	} else if (n - i == 1 && s[i] == '0') {
		base = 10, digits = i;
	} else {
		base = 10, digits = i;
		if (n - i < 1 || s[i] < '1' || s[i] > '9' || !all_of(s, digits, n, "0123456789"))
			return R_NO;
	}
	char buf[96];
	if (!strip_underscores(s + digits, n - digits, buf, sizeof(buf)))
		return R_RANGE;
	if (!buf[0])
		return R_NO; /* "0b_": PyYAML fails on it; here it stays text */
	errno = 0;
	char *end;
	unsigned long long u = strtoull(buf, &end, base);
	bool neg = s[0] == '-';
	if (errno || *end || u > (unsigned long long)LLONG_MAX + neg)
		return R_RANGE;
	*v = neg ? (long long)(0 - u) : (long long)u;
	return R_YES;
}

/* YAML 1.1 floats: [-+]? digits "." digits? exponent?, or "." digits
 * exponent? (no sign); the exponent needs its sign ([eE][-+][0-9]+), as PyYAML's
 * resolver has it, so 1e3 is a string there and here. */
static enum resolved resolve_float(const char *s, size_t n, double *v, bool *special)
{
	*special = false;
	size_t i = n && (s[0] == '-' || s[0] == '+');
	static const char *const inf[] = {".inf", ".Inf", ".INF", NULL};
	static const char *const nan[] = {".nan", ".NaN", ".NAN", NULL};
	if (word_is(s + i, n - i, inf) || (i == 0 && word_is(s, n, nan))) {
		*special = true;
		return R_YES;
	}
	size_t j = i;
	while (j < n && (in_set(s[j], "0123456789") || (s[j] == '_' && j > i)))
		j++;
	bool int_part = j > i;
	if (j >= n || s[j] != '.')
		return R_NO;
	j++;
	size_t frac = j;
	while (j < n && (in_set(s[j], "0123456789") || s[j] == '_'))
		j++;
	/* ".5" but not "-.5", as PyYAML's pattern has it */
	if (!int_part && (j == frac || i))
		return R_NO;
	if (j < n) {
		if ((s[j] != 'e' && s[j] != 'E') || j + 2 >= n + 0 || !in_set(s[j + 1], "+-"))
			return R_NO;
		j += 2;
		if (j >= n || !all_of(s, j, n, "0123456789"))
			return R_NO;
		for (size_t k = j; k < n; k++)
			if (s[k] == '_')
				return R_NO;
	}
	char buf[128];
	if (!strip_underscores(s, n, buf, sizeof(buf)))
		return R_RANGE;
	char *end;
	*v = strtod(buf, &end);
	if (*end || !isfinite(*v))
		return R_RANGE;
	return R_YES;
}

/* The shortest text that reads back as v, so 6.02 stays 6.02. */
static struct pp_json *float_node(double v)
{
	char text[40];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(text, sizeof(text), "%.*g", prec, v);
		if (strtod(text, NULL) == v)
			break;
	}
	struct pp_json *j = pp_json_new(PP_JSON_NUMBER);
	char *s = j ? strdup(text) : NULL;
	if (!s) {
		pp_json_free(j);
		return NULL;
	}
	pp_json_own_str(j, s, strlen(s));
	j->num = v;
	return j;
}

/* The node a scalar event stands for, by its tag or, untagged and plain,
 * by the implicit rules. */
static int scalar_node(struct ctx *c, const yaml_event_t *ev, struct pp_json **out)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;
	int line = line_of(ev);
	bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	const char *want = NULL; /* core tag without prefix, or NULL: implicit */

	/* PyYAML reads the non-specific tag "!" on a plain scalar as no tag. */
	if (tag && !strcmp(tag, "!"))
		tag = NULL;
	if (tag) {
		static const char *const core[] = {"str", "int", "float", "bool", "null", NULL};
		const char *t = strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX))
					? NULL
					: tag + strlen(TAG_PREFIX);
		if (!t || !word_is(t, strlen(t), core))
			return fail_line(c, line, "unsupported tag %s on a scalar", tag);
		want = t;
	} else if (!plain) {
		want = "str";
	}

	struct pp_json *j = NULL;
	long long iv;
	double dv;
	bool special;
	enum resolved r;
	if (want && !strcmp(want, "str")) {
		j = pp_json_new_stringn(s, n);
	} else if ((!want || !strcmp(want, "null")) && null_word(s, n)) {
		j = pp_json_new(PP_JSON_NULL);
	} else if ((!want || !strcmp(want, "bool")) && bool_word(s, n) >= 0) {
		j = pp_json_new_bool(bool_word(s, n) == 1);
	} else if ((!want || !strcmp(want, "int") || !strcmp(want, "float")) &&
		   (r = resolve_int(s, n, &iv)) != R_NO) {
		if (r == R_RANGE)
			return fail_line(c, line, "integer %.*s out of range",
					 (int)(n > 64 ? 64 : n), s);
		j = want && !strcmp(want, "float") ? pp_json_new_number((double)iv)
						   : pp_json_new_int(iv);
	} else if ((!want || !strcmp(want, "float") || !strcmp(want, "int")) &&
		   (r = resolve_float(s, n, &dv, &special)) != R_NO) {
		if (want && !strcmp(want, "int"))
			return fail_line(c, line, "!!int value \"%.*s\" is not an integer",
					 (int)(n > 64 ? 64 : n), s);
		if (special)
			return fail_line(c, line,
					 "%.*s has no JSON equivalent (infinity or not-a-number)",
					 (int)n, s);
		if (r == R_RANGE)
			return fail_line(c, line, "number %.*s out of range",
					 (int)(n > 64 ? 64 : n), s);
		j = float_node(dv);
	} else if (want) {
		return fail_line(c, line, "!!%s value \"%.*s\" is not one", want,
				 (int)(n > 64 ? 64 : n), s);
	} else {
		j = pp_json_new_stringn(s, n);
	}
	if (!j)
		return oom(c);
	*out = j;
	return 0;
}

/* ------------------------------------------------------------------ anchors */

static const struct anchor *anchor_find(const struct ctx *c, const char *name)
{
	for (size_t i = 0; i < c->nanchors; i++)
		if (!strcmp(c->anchors[i].name, name))
			return &c->anchors[i];
	return NULL;
}

/* name is taken over (freed on failure too). A redefined anchor names the
 * newer node from here on, as YAML says. */
static int anchor_add(struct ctx *c, char *name, const struct pp_json *node, int line)
{
	struct anchor *a = (struct anchor *)anchor_find(c, name);
	if (a) {
		free(name);
		a->node = node;
		return 0;
	}
	if (c->nanchors >= c->max_anchors) {
		free(name);
		return fail_line(c, line, "more than %zu anchors", c->max_anchors);
	}
	struct anchor *v = realloc(c->anchors, (c->nanchors + 1) * sizeof(*v));
	if (!v) {
		free(name);
		return oom(c);
	}
	c->anchors = v;
	v[c->nanchors++] = (struct anchor){name, node};
	return 0;
}

/* Nodes in j's subtree and the collections nested in it (0 for a scalar),
 * without recursion. */
static void measure(const struct pp_json *j, size_t *size, int *height)
{
	size_t n = 0;
	int depth = 0, tallest = 0;
	const struct pp_json *p = j;
	while (p) {
		n++;
		bool coll = p->type == PP_JSON_ARRAY || p->type == PP_JSON_OBJECT;
		if (coll && depth + 1 > tallest)
			tallest = depth + 1;
		if (p->child) {
			p = p->child;
			depth++;
			continue;
		}
		while (p != j && !p->next) {
			p = p->parent;
			depth--;
		}
		p = p == j ? NULL : p->next;
	}
	*size = n;
	*height = tallest;
}

/* A copy of src for use at nesting level `level`, checked against the caps
 * before it is made. */
static int copy_node(struct ctx *c, const struct pp_json *src, int level, int line,
		     struct pp_json **out, int *height)
{
	size_t size;
	measure(src, &size, height);
	if (level + *height > c->max_depth)
		return fail_line(c, line, "nested deeper than %d levels (aliases expanded)",
				 c->max_depth);
	int rc = count_nodes(c, size, line);
	if (rc)
		return rc;
	*out = pp_json_clone(src);
	return *out ? 0 : oom(c);
}

/* ---------------------------------------------------------------- building */

/* Keys of one mapping: an open-addressing set over the members, to find
 * duplicates and the keys a merge may still add in linear time. */
struct keyset {
	const struct pp_json **slot;
	size_t mask;
};

static size_t hash_key(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)h;
}

static int keyset_init(struct keyset *k, size_t n)
{
	size_t cap = 8;
	while (cap < 2 * n)
		cap <<= 1;
	k->slot = calloc(cap, sizeof(*k->slot));
	k->mask = cap - 1;
	return k->slot ? 0 : -1;
}

/* The member already holding m's key; NULL after adding m. */
static const struct pp_json *keyset_add(struct keyset *k, const struct pp_json *m)
{
	size_t i = hash_key(m->key) & k->mask;
	while (k->slot[i]) {
		if (!strcmp(k->slot[i]->key, m->key))
			return k->slot[i];
		i = (i + 1) & k->mask;
	}
	k->slot[i] = m;
	return NULL;
}

/* Refuse duplicate keys, then add copies of merged members whose keys are
 * not there yet: explicit keys win, then earlier merged mappings
 * ("<<: [*a, *b]": a's over b's). */
static int finish_mapping(struct ctx *c, struct frame *f)
{
	struct pp_json *map = f->node;
	size_t total = map->count;
	for (size_t i = 0; i < f->nmerges; i++)
		total += f->merges[i]->count;
	struct keyset ks;
	if (keyset_init(&ks, total))
		return oom(c);
	int rc = 0;
	pp_json_foreach (m, map) {
		const struct pp_json *first = keyset_add(&ks, m);
		if (first) {
			rc = fail_line(c, m->line, "duplicate key \"%s\" (first at line %d)",
				       m->key, first->line);
			goto out;
		}
	}
	for (size_t i = 0; i < f->nmerges && !rc; i++) {
		pp_json_foreach (m, f->merges[i]) {
			struct pp_json probe = {.key = m->key};
			if (keyset_add(&ks, &probe))
				continue;
			struct pp_json *copy;
			int h;
			/* probe's slot now holds a stack address: replaced below
			 * or the set is dropped on failure. */
			if ((rc = copy_node(c, m, c->depth, map->line, &copy, &h))) {
				break;
			}
			pp_json_link(map, copy);
			/* The member now holds the key in the set. */
			size_t s = hash_key(copy->key) & ks.mask;
			while (ks.slot[s] != &probe)
				s = (s + 1) & ks.mask;
			ks.slot[s] = copy;
			if (h > f->height)
				f->height = h;
		}
	}
out:
	free(ks.slot);
	return rc;
}

static int attach(struct ctx *c, struct pp_json *node, int height, int line);

static int open_collection(struct ctx *c, const yaml_event_t *ev, bool mapping)
{
	int line = line_of(ev);
	const char *tag =
		(const char *)(mapping ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
	const char *anchor = (const char *)(mapping ? ev->data.mapping_start.anchor
						    : ev->data.sequence_start.anchor);
	if (c->depth && c->stack[c->depth - 1].node->type == PP_JSON_OBJECT &&
	    !c->stack[c->depth - 1].key)
		return fail_line(c, line, "a mapping key must be a scalar, not a %s",
				 mapping ? "mapping" : "list");
	if (tag && strcmp(tag, mapping ? TAG_PREFIX "map" : TAG_PREFIX "seq"))
		return fail_line(c, line, "unsupported tag %s on a %s", tag,
				 mapping ? "mapping" : "list");
	if (c->depth >= c->max_depth)
		return fail_line(c, line, "nested deeper than %d levels", c->max_depth);
	int rc = count_nodes(c, 1, line);
	if (rc)
		return rc;
	struct frame *f = &c->stack[c->depth];
	memset(f, 0, sizeof(*f));
	f->node = pp_json_new(mapping ? PP_JSON_OBJECT : PP_JSON_ARRAY);
	if (!f->node || (anchor && !(f->anchor = strdup(anchor)))) {
		pp_json_free(f->node);
		free(f->anchor);
		memset(f, 0, sizeof(*f));
		return oom(c);
	}
	f->node->line = line;
	c->depth++;
	return 0;
}

static void frame_release(struct frame *f)
{
	pp_json_free(f->node);
	free(f->merges);
	free(f->key);
	free(f->anchor);
	memset(f, 0, sizeof(*f));
}

static int close_collection(struct ctx *c)
{
	struct frame *f = &c->stack[c->depth - 1];
	int rc = 0;
	if (f->node->type == PP_JSON_OBJECT && (rc = finish_mapping(c, f)))
		return rc;
	struct pp_json *node = f->node;
	int height = f->height + 1, line = node->line;
	char *anchor = f->anchor;
	free(f->merges);
	memset(f, 0, sizeof(*f));
	c->depth--;
	/* In the tree (or spare) before its anchor names it. */
	if ((rc = attach(c, node, height, line))) {
		free(anchor);
		return rc;
	}
	return anchor ? anchor_add(c, anchor, node, line) : 0;
}

static int add_merge(struct ctx *c, struct frame *f, const struct pp_json *m)
{
	const struct pp_json **v = realloc(f->merges, (f->nmerges + 1) * sizeof(*v));
	if (!v)
		return oom(c);
	f->merges = v;
	v[f->nmerges++] = m;
	return 0;
}

/* A finished node into its parent, or as the root. Ownership passes, also
 * on failure. */
static int attach(struct ctx *c, struct pp_json *node, int height, int line)
{
	pp_json_own_key(node, NULL);
	if (!c->depth) {
		c->root = node;
		return 0;
	}
	struct frame *f = &c->stack[c->depth - 1];
	if (f->node->type == PP_JSON_ARRAY) {
		pp_json_link(f->node, node);
	} else if (f->merging) {
		f->merging = false;
		free(f->key);
		f->key = NULL;
		/* Kept whole in spare, where anchors into it stay valid; the
		 * frame borrows the mappings to merge. */
		pp_json_link(c->spare, node);
		bool ok = node->type == PP_JSON_OBJECT;
		if (ok)
			return add_merge(c, f, node);
		if (node->type == PP_JSON_ARRAY) {
			ok = true;
			pp_json_foreach (m, node)
				ok = ok && m->type == PP_JSON_OBJECT;
			for (struct pp_json *m = node->child; ok && m; m = m->next)
				if (add_merge(c, f, m))
					return c->err->code;
		}
		if (!ok)
			return fail_line(c, line,
					 "the merge key << takes a mapping or a list of mappings");
		return 0;
	} else {
		pp_json_own_key(node, f->key);
		f->key = NULL;
		pp_json_link(f->node, node);
	}
	if (height > f->height)
		f->height = height;
	return 0;
}

static int on_scalar(struct ctx *c, const yaml_event_t *ev)
{
	int line = line_of(ev);
	struct frame *f = c->depth ? &c->stack[c->depth - 1] : NULL;
	if (f && f->node->type == PP_JSON_OBJECT && !f->key) {
		const char *s = (const char *)ev->data.scalar.value;
		size_t n = ev->data.scalar.length;
		if (memchr(s, '\0', n))
			return fail_line(c, line, "NUL character in a mapping key");
		if (!(f->key = strndup(s, n)))
			return oom(c);
		/* Only the plain, untagged << is the merge key; a quoted one
		 * is an ordinary key. */
		f->merging = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
			     !ev->data.scalar.tag && !strcmp(f->key, "<<");
		if (ev->data.scalar.anchor)
			return fail_line(c, line, "anchors on mapping keys are not supported");
		return 0;
	}
	int rc = count_nodes(c, 1, line);
	struct pp_json *node = NULL;
	if (rc || (rc = scalar_node(c, ev, &node)))
		return rc;
	node->line = line;
	if ((rc = attach(c, node, 0, line)))
		return rc;
	if (ev->data.scalar.anchor) {
		char *name = strdup((const char *)ev->data.scalar.anchor);
		if (!name)
			return oom(c);
		return anchor_add(c, name, node, line);
	}
	return 0;
}

static int on_alias(struct ctx *c, const yaml_event_t *ev)
{
	int line = line_of(ev);
	const char *name = (const char *)ev->data.alias.anchor;
	struct frame *f = c->depth ? &c->stack[c->depth - 1] : NULL;
	if (f && f->node->type == PP_JSON_OBJECT && !f->key)
		return fail_line(c, line, "an alias (*%s) as a mapping key is not supported", name);
	const struct anchor *a = anchor_find(c, name);
	if (!a)
		return fail_line(c, line,
				 "alias *%s names no anchor defined before it (an alias "
				 "cannot refer to a node that contains it)",
				 name);
	if (f && f->merging && a->node->type == PP_JSON_OBJECT) {
		/* "<<: *base" merges the anchored mapping itself: no copy. */
		f->merging = false;
		free(f->key);
		f->key = NULL;
		return add_merge(c, f, a->node);
	}
	struct pp_json *copy;
	int height;
	int rc = copy_node(c, a->node, c->depth, line, &copy, &height);
	if (rc)
		return rc;
	copy->line = line;
	return attach(c, copy, height, line);
}

static int parser_error(struct ctx *c, const yaml_parser_t *p)
{
	if (p->error == YAML_MEMORY_ERROR)
		return oom(c);
	const yaml_mark_t *m = p->error == YAML_READER_ERROR ? NULL : &p->problem_mark;
	if (!m)
		return pp_fail(c->err, PP_EINVALID, "%s: byte %zu: %s", c->name, p->problem_offset,
			       p->problem ? p->problem : "unreadable");
	return pp_fail(c->err, PP_EINVALID, "%s:%zu:%zu: %s%s%s", c->name, m->line + 1,
		       m->column + 1, p->problem ? p->problem : "syntax error",
		       p->context ? " " : "", p->context ? p->context : "");
}

int pp_yaml_parse(const char *text, size_t len, const char *name, const struct pp_yaml_limits *lim,
		  struct pp_json **out, struct pp_error *err)
{
	*out = NULL;
	struct ctx c = {
		.name = name ? name : "YAML",
		.err = err,
		.max_depth = lim && lim->max_depth > 0 ? lim->max_depth : PP_YAML_MAX_DEPTH,
		.max_nodes = lim && lim->max_nodes ? lim->max_nodes : PP_YAML_MAX_NODES,
		.max_anchors = lim && lim->max_anchors ? lim->max_anchors : PP_YAML_MAX_ANCHORS,
	};
	size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : PP_YAML_MAX_BYTES;
	if (len > max_bytes)
		return pp_fail(err, PP_EINVALID, "%s: larger than %zu bytes", c.name, max_bytes);
	c.stack = calloc((size_t)c.max_depth, sizeof(*c.stack));
	c.spare = pp_json_new(PP_JSON_ARRAY);
	yaml_parser_t p;
	bool parser_ok = yaml_parser_initialize(&p);
	if (!c.stack || !c.spare || !parser_ok) {
		if (parser_ok)
			yaml_parser_delete(&p);
		free(c.stack);
		pp_json_free(c.spare);
		return pp_fail(err, PP_ENOMEM, "%s: out of memory", c.name);
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);

	int rc = 0, docs = 0;
	bool done = false;
	while (!rc && !done) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&p, &ev)) {
			rc = parser_error(&c, &p);
			break;
		}
		switch (ev.type) {
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1)
				rc = fail_line(&c, line_of(&ev),
					       "a second document: one YAML document expected");
			break;
		case YAML_STREAM_END_EVENT: done = true; break;
		case YAML_SCALAR_EVENT: rc = on_scalar(&c, &ev); break;
		case YAML_ALIAS_EVENT: rc = on_alias(&c, &ev); break;
		case YAML_SEQUENCE_START_EVENT: rc = open_collection(&c, &ev, false); break;
		case YAML_MAPPING_START_EVENT: rc = open_collection(&c, &ev, true); break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT: rc = close_collection(&c); break;
		default: break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	while (c.depth)
		frame_release(&c.stack[--c.depth]);
	free(c.stack);
	for (size_t i = 0; i < c.nanchors; i++)
		free(c.anchors[i].name);
	free(c.anchors);
	pp_json_free(c.spare);
	if (rc) {
		pp_json_free(c.root);
		return rc;
	}
	if (!c.root && !(c.root = pp_json_new(PP_JSON_NULL)))
		return pp_fail(err, PP_ENOMEM, "%s: out of memory", c.name);
	*out = c.root;
	return 0;
}

int pp_yaml_parse_file(const char *path, const struct pp_yaml_limits *lim, struct pp_json **out,
		       struct pp_error *err)
{
	*out = NULL;
	size_t max = lim && lim->max_bytes ? lim->max_bytes : PP_YAML_MAX_BYTES;
	struct pp_buf b;
	pp_buf_init(&b, max + 1);
	int rc = pp_file_read(path, max, &b, err);
	if (!rc)
		rc = pp_yaml_parse(b.data ? b.data : "", b.len, path, lim, out, err);
	pp_buf_free(&b);
	return rc;
}
