/* JSON tree: parse (json_parse.c, its own tokenizer reading as strict jsmn
 * did), typed access, path lookup, build (json.c), write (json_write.c).
 * Object members keep their order; writing then parsing gives the same
 * tree. */
#ifndef PP_JSON_H
#define PP_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"
#include "lib/err.h"

enum pp_json_type {
	PP_JSON_NULL,
	PP_JSON_BOOL,
	PP_JSON_NUMBER,
	PP_JSON_STRING,
	PP_JSON_ARRAY,
	PP_JSON_OBJECT,
};

/* A node's str, and its key when it gets one as it is made (parsed members,
 * clones, pp_json_set_string and its kin), share the node's own allocation:
 * one malloc and one free per node. A key or string given later is a
 * malloc'd block of its own. So read key and str freely, but change them
 * only through pp_json_own_str, pp_json_own_key and pp_json_take_str (and
 * pp_json_set / pp_json_append), which know which is which. */
struct pp_json {
	enum pp_json_type type;
	char *key;  /* member name when the parent is an object */
	char *str;  /* STRING: decoded UTF-8 (may hold NUL); NUMBER: source text */
	size_t len; /* bytes in str */
	double num; /* NUMBER */
	bool b;	    /* BOOL */
	/* Private to lib/json*.c: whether str / key lie in the node's own
	 * allocation (freed with it) rather than in a block of their own. */
	bool str_inline, key_inline;
	size_t count; /* ARRAY/OBJECT: number of children */
	struct pp_json *child, *last, *next, *parent;
	int line; /* source line of the value (1-based) when a reader knows it, else 0 */
};

struct pp_json_limits {
	size_t max_bytes;  /* 0: 16 MiB */
	int max_depth;	   /* 0: 64 nested values */
	size_t max_tokens; /* 0: 1 Mi values and keys */
};

/* Parse text; on error err->msg reads "LINE:COL: what" and *out is NULL.
 * lim may be NULL for defaults. Time and memory are linear in len: depth and
 * token limits are checked before any tree is built ("JSON nested deeper
 * than N levels at byte M"). */
int pp_json_parse(const char *text, size_t len, const struct pp_json_limits *lim,
		  struct pp_json **out, struct pp_error *err);
/* pp_json_parse, keeping only the paths keep names (NULL-terminated, at
 * most 16): of an object, "name" keeps its member name whole and "a.b"
 * keeps member b of member a, when a is an object; an array, at the top or
 * on a path, has each of its elements cut down to the same paths; a value
 * on a path that is neither is kept whole. Duplicate members merge as in the whole
 * tree; keys with dots cannot be named. The members not kept are checked
 * as strictly but never built: an answer read for a few fields costs its
 * bytes, not a tree of them. A document pp_json_parse refuses is refused
 * with the same error. */
int pp_json_parse_keep(const char *text, size_t len, const struct pp_json_limits *lim,
		       const char *const *keep, struct pp_json **out, struct pp_error *err);
/* Read and parse a file; errors are prefixed with the path. */
int pp_json_parse_file(const char *path, const struct pp_json_limits *lim, struct pp_json **out,
		       struct pp_error *err);
void pp_json_free(struct pp_json *j);

/* Lookup: NULL when absent or j is not an object/array. */
struct pp_json *pp_json_get(const struct pp_json *obj, const char *key);
struct pp_json *pp_json_at(const struct pp_json *arr, size_t idx);
/* Path "a.b[2].c" (optional leading "$." ); keys with dots can be quoted:
 * a["x.y"]. */
struct pp_json *pp_json_path(const struct pp_json *root, const char *path);

/* Typed getters: NULL / default when missing or of another type. */
const char *pp_json_string(const struct pp_json *j);
const char *pp_json_get_string(const struct pp_json *obj, const char *key);
bool pp_json_get_number(const struct pp_json *obj, const char *key, double *out);
long long pp_json_get_int(const struct pp_json *obj, const char *key, long long def);
bool pp_json_get_bool(const struct pp_json *obj, const char *key, bool def);
bool pp_json_is(const struct pp_json *j, enum pp_json_type t);
const char *pp_json_type_name(enum pp_json_type t);

/* Builders: NULL on allocation failure. */
struct pp_json *pp_json_new(enum pp_json_type t);
struct pp_json *pp_json_new_string(const char *s);
struct pp_json *pp_json_new_stringn(const char *s, size_t n);
struct pp_json *pp_json_new_number(double v);
struct pp_json *pp_json_new_int(long long v);
struct pp_json *pp_json_new_bool(bool v);
struct pp_json *pp_json_clone(const struct pp_json *j);

/* Ownership of val passes to the container (also on failure). set replaces
 * an existing member in place (keeping its position) or appends; key may be
 * val's own key (a member moved from another object keeps it as it is). */
int pp_json_set(struct pp_json *obj, const char *key, struct pp_json *val);
int pp_json_set_string(struct pp_json *obj, const char *key, const char *s);
int pp_json_set_int(struct pp_json *obj, const char *key, long long v);
int pp_json_set_bool(struct pp_json *obj, const char *key, bool v);
int pp_json_append(struct pp_json *arr, struct pp_json *val);
/* Append child as parent's last member, without the checks of
 * pp_json_append/pp_json_set (for the parser, which has done them). */
void pp_json_link(struct pp_json *parent, struct pp_json *child);
/* Unlink child from its parent and return it (caller owns it). */
struct pp_json *pp_json_detach(struct pp_json *child);
/* Remove and free a member; returns true when it existed. */
bool pp_json_remove(struct pp_json *obj, const char *key);

/* Give j the string s (malloc'd, len bytes before its NUL), which j owns
 * from now on, in place of the one it had (freed). */
void pp_json_own_str(struct pp_json *j, char *s, size_t len);
/* Give j the key k (malloc'd, or NULL for none), which j owns from now on,
 * in place of the one it had (freed). */
void pp_json_own_key(struct pp_json *j, char *k);
/* j's string as a malloc'd block the caller owns (copied when it shares
 * j's allocation), j keeping none; NULL when j has none or on allocation
 * failure, when j keeps it. */
char *pp_json_take_str(struct pp_json *j);

/* Equal values: objects as sets of members, numbers by value. */
bool pp_json_equal(const struct pp_json *a, const struct pp_json *b);
/* Whether a and b write the same text: equal, with the members of each
 * object in the same order and numbers in the same source text. */
bool pp_json_identical(const struct pp_json *a, const struct pp_json *b);

enum { PP_JSON_COMPACT = 0, PP_JSON_PRETTY = 1 };
int pp_json_write(const struct pp_json *j, struct pp_buf *out, int flags);
/* malloc'd text, NULL on failure. */
char *pp_json_to_string(const struct pp_json *j, int flags);
/* Append s as a quoted, escaped JSON string. */
int pp_json_write_string(struct pp_buf *out, const char *s, size_t n);

#define pp_json_foreach(it, container)                                                             \
	for (struct pp_json *it = (container) ? (container)->child : NULL; it; it = it->next)

#endif
