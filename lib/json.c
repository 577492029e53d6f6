/* The JSON tree: nodes, lookup, typed access, builders and comparison.
 * Parsing is in json_parse.c, writing in json_write.c. Object members keep
 * their order. */
#include "lib/json.h"
#include "lib/json_node.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pp_json *pp_json_alloc(enum pp_json_type t, size_t str_cap, size_t key_cap)
{
	struct pp_json *j = malloc(sizeof(*j) + str_cap + key_cap);
	if (!j)
		return NULL;
	*j = (struct pp_json){.type = t, .str_inline = str_cap > 0, .key_inline = key_cap > 0};
	char *room = (char *)(j + 1);
	if (str_cap)
		j->str = room;
	if (key_cap)
		j->key = room + str_cap;
	return j;
}

struct pp_json *pp_json_new(enum pp_json_type t)
{
	return pp_json_alloc(t, 0, 0);
}

void pp_json_free(struct pp_json *j)
{
	if (!j)
		return;
	for (struct pp_json *c = j->child, *next; c; c = next) {
		next = c->next;
		pp_json_free(c);
	}
	/* jemalloc's free(NULL) costs as much as a real free, and most nodes
	 * hold their key and str in their own allocation or lack them. */
	if (j->key && !j->key_inline)
		free(j->key);
	if (j->str && !j->str_inline)
		free(j->str);
	free(j);
}

void pp_json_own_str(struct pp_json *j, char *s, size_t len)
{
	if (j->str && !j->str_inline)
		free(j->str);
	j->str = s;
	j->len = len;
	j->str_inline = false;
}

void pp_json_own_key(struct pp_json *j, char *k)
{
	if (j->key && !j->key_inline)
		free(j->key);
	j->key = k;
	j->key_inline = false;
}

char *pp_json_take_str(struct pp_json *j)
{
	char *s = j->str;
	if (s && j->str_inline) {
		if (!(s = malloc(j->len + 1)))
			return NULL;
		memcpy(s, j->str, j->len + 1);
	}
	j->str = NULL;
	j->len = 0;
	j->str_inline = false;
	return s;
}

void pp_json_link(struct pp_json *parent, struct pp_json *child)
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

struct pp_json *pp_json_get(const struct pp_json *obj, const char *key)
{
	if (!obj || obj->type != PP_JSON_OBJECT)
		return NULL;
	/* The first byte rules out most members without a call to strcmp:
	 * the render and the schema checks look keys up tens of times a run. */
	for (struct pp_json *c = obj->child; c; c = c->next)
		if (c->key[0] == key[0] && !strcmp(c->key, key))
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

/* A string node, keyed when key is not NULL, in one allocation. */
static struct pp_json *new_string(const char *key, const char *s, size_t n)
{
	size_t klen = key ? strlen(key) + 1 : 0;
	struct pp_json *j = pp_json_alloc(PP_JSON_STRING, n + 1, klen);
	if (!j)
		return NULL;
	memcpy(j->str, s, n);
	j->str[n] = '\0';
	j->len = n;
	if (key)
		memcpy(j->key, key, klen);
	return j;
}

struct pp_json *pp_json_new_stringn(const char *s, size_t n)
{
	return new_string(NULL, s, n);
}

struct pp_json *pp_json_new_string(const char *s)
{
	/* NULL in, NULL out: a caller passing on another failed allocation
	 * gets the failure, not a crash. */
	return s ? pp_json_new_stringn(s, strlen(s)) : NULL;
}

static struct pp_json *number_from_text(const char *key, const char *txt, double v)
{
	size_t n = strlen(txt), klen = key ? strlen(key) + 1 : 0;
	struct pp_json *j = pp_json_alloc(PP_JSON_NUMBER, n + 1, klen);
	if (!j)
		return NULL;
	memcpy(j->str, txt, n + 1);
	j->len = n;
	j->num = v;
	if (key)
		memcpy(j->key, key, klen);
	return j;
}

/* v's decimal digits, as "%lld" writes them, into out (at least 21
 * bytes); returns out. A number node a request or an answer builds took
 * a snprintf call, a fifth of the node's cost (the mock's tasks, step
 * 108). */
static char *int_text(long long v, char out[21])
{
	char *p = out + 20;
	/* Negated as unsigned: LLONG_MIN has no positive long long. */
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	*p = '\0';
	do
		*--p = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		*--p = '-';
	return p;
}

struct pp_json *pp_json_new_number(double v)
{
	char txt[40];
	if (!isfinite(v))
		return pp_json_new(PP_JSON_NULL); /* JSON has no NaN/Inf */
	if (v == floor(v) && fabs(v) < 1e15)
		/* "%.0f" wrote negative zero as "-0". */
		return number_from_text(
			NULL, v == 0 && signbit(v) ? "-0" : int_text((long long)v, txt), v);
	snprintf(txt, sizeof(txt), "%.17g", v);
	return number_from_text(NULL, txt, v);
}

static struct pp_json *new_int(const char *key, long long v)
{
	char txt[21];
	return number_from_text(key, int_text(v, txt), (double)v);
}

struct pp_json *pp_json_new_int(long long v)
{
	return new_int(NULL, v);
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
	size_t klen = src->key ? strlen(src->key) + 1 : 0;
	struct pp_json *j = pp_json_alloc(src->type, src->str ? src->len + 1 : 0, klen);
	if (!j)
		return NULL;
	j->b = src->b;
	j->line = src->line;
	j->num = src->num;
	j->len = src->len;
	if (src->str)
		memcpy(j->str, src->str, src->len + 1);
	if (src->key)
		memcpy(j->key, src->key, klen);
	for (const struct pp_json *c = src->child; c; c = c->next) {
		struct pp_json *cc = pp_json_clone(c);
		if (!cc) {
			pp_json_free(j);
			return NULL;
		}
		pp_json_link(j, cc);
	}
	return j;
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
	/* A clone of another member often carries the key already. */
	if (!val->key || strcmp(val->key, key)) {
		char *k = strdup(key);
		if (!k) {
			pp_json_free(val);
			return PP_ENOMEM;
		}
		pp_json_own_key(val, k);
	}
	struct pp_json *old = pp_json_get(obj, key);
	if (!old) {
		pp_json_link(obj, val);
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

/* The set_ helpers make the value with its key, which pp_json_set then
 * keeps: one allocation. */
int pp_json_set_string(struct pp_json *obj, const char *key, const char *s)
{
	return pp_json_set(obj, key, s ? new_string(key, s, strlen(s)) : NULL);
}

int pp_json_set_int(struct pp_json *obj, const char *key, long long v)
{
	return pp_json_set(obj, key, new_int(key, v));
}

int pp_json_set_bool(struct pp_json *obj, const char *key, bool v)
{
	size_t klen = strlen(key) + 1;
	struct pp_json *j = pp_json_alloc(PP_JSON_BOOL, 0, klen);
	if (j) {
		j->b = v;
		memcpy(j->key, key, klen);
	}
	return pp_json_set(obj, key, j);
}

int pp_json_append(struct pp_json *arr, struct pp_json *val)
{
	if (!val)
		return PP_ENOMEM;
	if (!arr || arr->type != PP_JSON_ARRAY) {
		pp_json_free(val);
		return PP_EINVALID;
	}
	if (val->key)
		pp_json_own_key(val, NULL);
	pp_json_link(arr, val);
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

/* as_text: whether a and b write the same text (members in order, numbers
 * as spelled); else whether they hold the same value (objects as sets of
 * members, numbers by value). */
static bool same(const struct pp_json *a, const struct pp_json *b, bool as_text)
{
	if (!a || !b)
		return a == b;
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case PP_JSON_NULL: return true;
	case PP_JSON_BOOL: return a->b == b->b;
	case PP_JSON_NUMBER:
		if (!as_text)
			return a->num == b->num;
		break;
	case PP_JSON_STRING: break;
	case PP_JSON_ARRAY:
	case PP_JSON_OBJECT:
		if (a->count != b->count)
			return false;
		for (const struct pp_json *x = a->child, *y = b->child; x;
		     x = x->next, y = y->next) {
			const struct pp_json *other = y;
			if (a->type == PP_JSON_OBJECT && !as_text)
				other = pp_json_get(b, x->key);
			else if (a->type == PP_JSON_OBJECT && strcmp(x->key, y->key))
				return false;
			if (!same(x, other, as_text))
				return false;
		}
		return true;
	}
	return a->len == b->len && !memcmp(a->str, b->str, a->len);
}

bool pp_json_equal(const struct pp_json *a, const struct pp_json *b)
{
	return same(a, b, false);
}

bool pp_json_identical(const struct pp_json *a, const struct pp_json *b)
{
	return same(a, b, true);
}
