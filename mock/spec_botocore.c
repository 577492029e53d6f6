/* Requests of botocore JSON 1.1 services (ECS) judged against the service's
 * own model, botocore's service-2.json: the operation's input shape, walked
 * member by member. Constraints follow the model's keywords: required, enum,
 * min/max (string length in characters, list and map sizes, numeric
 * values), pattern (PCRE2, matched against the whole value as AWS's
 * validator does: `\p{L}` classes need Unicode properties, which POSIX
 * regex.h lacks). Messages follow AWS's wording ("1 validation error
 * detected: Value 'x' at 'tags.1.member.key' failed to satisfy constraint:
 * ..."); the mock joins them as AWS does. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/strmap.h"
#include "mock/spec.h"

#define MAX_PATTERNS 128
#define MAX_DEPTH    32
#define VALUE_SHOWN  80 /* characters of an offending value quoted back */

struct pattern {
	const char *src; /* points into the model */
	pcre2_code *code;
};

struct pp_spec_botocore {
	struct pp_json *model;
	const struct pp_json *shapes, *operations;
	/* shapes by name: a walk looks one up per value it checks, and ECS
	 * has hundreds (a search of the object was a quarter of the mock's
	 * time under `make bench`) */
	struct pp_strmap by_name;
	struct pattern patterns[MAX_PATTERNS];
	size_t npatterns;
};

/* Java reads a '-' right after a class escape ([\\w-_], in the Logs model) as
 * a literal hyphen where PCRE2 refuses the range: escape it. */
static void java_to_pcre(const char *src, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; src[i] && o + 5 < size; i++) {
		out[o++] = src[i];
		if (src[i] == '\\' && src[i + 1]) {
			out[o++] = src[++i];
			if (strchr("wdsWDS", src[i]) && src[i + 1] == '-') {
				out[o++] = '\\';
				out[o++] = '-';
				i++;
			}
		}
	}
	out[o] = '\0';
}

static int compile_patterns(struct pp_spec_botocore *b, struct pp_error *err)
{
	pp_json_foreach (shape, b->shapes) {
		const char *src = pp_json_get_string(shape, "pattern");
		char java[1024];
		int ec;
		PCRE2_SIZE off;
		pcre2_code *code;

		if (!src)
			continue;
		if (b->npatterns == MAX_PATTERNS)
			return pp_fail(err, PP_ENOMEM, "botocore model: more than %d patterns",
				       MAX_PATTERNS);
		/* AWS validates with Java's regex, where \uXXXX names a character
		 * (IAM's patterns use it); PCRE2 reads that only with ALT_BSUX. */
		if (strlen(src) >= sizeof(java) / 2)
			return pp_fail(err, PP_ENOMEM, "botocore model: shape %s: pattern too long",
				       shape->key);
		java_to_pcre(src, java, sizeof(java));
		/* Anchored at both ends as a whole-value match, when compiled:
		 * given to pcre2_match instead, they would keep it off the JIT. */
		code = pcre2_compile((PCRE2_SPTR)java, PCRE2_ZERO_TERMINATED,
				     PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED | PCRE2_ENDANCHORED |
					     (strstr(src, "\\u") ? PCRE2_ALT_BSUX : 0),
				     &ec, &off, NULL);
		if (!code) {
			PCRE2_UCHAR msg[160];

			pcre2_get_error_message(ec, msg, sizeof(msg));
			return pp_fail(err, PP_EINVALID,
				       "botocore model: shape %s: pattern %s: %s at offset %zu",
				       shape->key, src, (const char *)msg, (size_t)off);
		}
		/* Compiled to machine code where PCRE2 can (it matches several
		 * times faster); where it cannot, pcre2_match interprets. */
		(void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
		b->patterns[b->npatterns].src = src;
		b->patterns[b->npatterns++].code = code;
	}
	return 0;
}

void pp_spec_botocore_free(struct pp_spec_botocore *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->npatterns; i++)
		pcre2_code_free(b->patterns[i].code);
	pp_strmap_clear(&b->by_name);
	pp_json_free(b->model);
	free(b);
}

int pp_spec_botocore_load(const char *text, size_t len, struct pp_spec_botocore **out,
			  struct pp_error *err)
{
	struct pp_spec_botocore *b = calloc(1, sizeof(*b));
	int rc;

	*out = NULL;
	if (!b)
		return pp_fail(err, PP_ENOMEM, "botocore model: out of memory");
	rc = pp_json_parse(text, len, NULL, &b->model, err);
	if (rc < 0) {
		free(b);
		return pp_error_prefix(err, "botocore model: ");
	}
	b->shapes = pp_json_get(b->model, "shapes");
	b->operations = pp_json_get(b->model, "operations");
	if (!pp_json_is(b->shapes, PP_JSON_OBJECT) || !pp_json_is(b->operations, PP_JSON_OBJECT)) {
		pp_spec_botocore_free(b);
		return pp_fail(err, PP_EINVALID, "botocore model: no shapes or operations");
	}
	pp_json_foreach (shape, b->shapes)
		if (pp_strmap_put(&b->by_name, shape->key, (void *)shape)) {
			pp_spec_botocore_free(b);
			return pp_fail(err, PP_ENOMEM, "botocore model: out of memory");
		}
	rc = compile_patterns(b, err);
	if (rc < 0) {
		pp_spec_botocore_free(b);
		return rc;
	}
	*out = b;
	return 0;
}

/* ---- the walk ---- */

static const struct pp_json *shape_named(const struct pp_spec_botocore *b, const char *name)
{
	return name ? pp_strmap_get(&b->by_name, name) : NULL;
}

struct walk {
	const struct pp_spec_botocore *b;
	struct pp_spec_report *rep;
	pcre2_match_data *md;
};

static const char *value_text(const struct pp_json *v, char *out, size_t size)
{
	if (pp_json_is(v, PP_JSON_STRING))
		snprintf(out, size, "%.*s", VALUE_SHOWN, v->str);
	else if (pp_json_is(v, PP_JSON_NUMBER))
		snprintf(out, size, "%s", v->str);
	else
		snprintf(out, size, "%s", pp_json_type_name(v->type));
	return out;
}

static void constraint(struct walk *w, const char *path, const struct pp_json *v, const char *fmt,
		       ...) __attribute__((format(printf, 4, 5)));

static void constraint(struct walk *w, const char *path, const struct pp_json *v, const char *fmt,
		       ...)
{
	char what[512], val[VALUE_SHOWN + 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (v)
		pp_spec_report_add(w->rep, "ValidationException", path,
				   "Value '%s' at '%s' failed to satisfy constraint: %s",
				   value_text(v, val, sizeof(val)), path, what);
	else
		pp_spec_report_add(w->rep, "ValidationException", path,
				   "Value null at '%s' failed to satisfy constraint: %s", path,
				   what);
}

static void wrong_type(struct walk *w, const char *path, const struct pp_json *v, const char *want)
{
	pp_spec_report_add(w->rep, "SerializationException", path,
			   "Value at '%s' must be %s, not a JSON %s", path, want,
			   pp_json_type_name(v->type));
}

static size_t utf8_chars(const char *s, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			c++;
	return c;
}

static const pcre2_code *pattern_code(const struct pp_spec_botocore *b, const char *src)
{
	for (size_t i = 0; i < b->npatterns; i++)
		if (b->patterns[i].src == src)
			return b->patterns[i].code;
	return NULL;
}

/* out = path.first[.second] (first alone under the top), cut to size; by
 * copying rather than printf, as it runs for every member of every request
 * the mock checks. */
static void join(char *out, size_t size, const char *path, const char *first, const char *second)
{
	const char *parts[] = {path, first, second};
	size_t n = 0;

	for (size_t i = 0; i < 3 && parts[i]; i++) {
		size_t len = strlen(parts[i]);

		if (n && n < size - 1)
			out[n++] = '.';
		if (len > size - 1 - n)
			len = size - 1 - n;
		memcpy(out + n, parts[i], len);
		n += len;
	}
	out[n] = '\0';
}

/* "a, b, c": the string of each element of list, or each member's name
 * (names), cut to size; for a message naming what was allowed. */
static void list_words(char *out, size_t size, const struct pp_json *list, bool names)
{
	size_t off = 0;

	out[0] = '\0';
	pp_json_foreach (e, list) {
		const char *word = names ? e->key : e->str;

		if (off < size)
			off += (size_t)snprintf(out + off, size - off, "%s%s", off ? ", " : "",
						word ? word : "");
	}
}

static void check_shape(struct walk *w, const char *shape_name, const struct pp_json *v,
			const char *path, int depth);

static void check_length(struct walk *w, const struct pp_json *shape, const struct pp_json *v,
			 const char *path, size_t n)
{
	double min, max;

	if (pp_json_get_number(shape, "min", &min) && (double)n < min)
		constraint(w, path, v, "Member must have length greater than or equal to %.0f",
			   min);
	if (pp_json_get_number(shape, "max", &max) && (double)n > max)
		constraint(w, path, v, "Member must have length less than or equal to %.0f", max);
}

static void check_string(struct walk *w, const struct pp_json *shape, const struct pp_json *v,
			 const char *path)
{
	const struct pp_json *en = pp_json_get(shape, "enum");
	const char *pat = pp_json_get_string(shape, "pattern");

	if (!pp_json_is(v, PP_JSON_STRING)) {
		wrong_type(w, path, v, "a string");
		return;
	}
	check_length(w, shape, v, path, utf8_chars(v->str, v->len));
	if (en) {
		bool found = false;

		pp_json_foreach (e, en)
			found = found || (e->str && strcmp(e->str, v->str) == 0);
		if (!found) {
			char set[512];

			list_words(set, sizeof(set), en, false);
			constraint(w, path, v, "Member must satisfy enum value set: [%s]", set);
		}
	}
	if (pat) {
		const pcre2_code *code = pattern_code(w->b, pat);
		int rc = code ? pcre2_match(code, (PCRE2_SPTR)v->str, v->len, 0, 0, w->md, NULL)
			      : -1;

		if (rc < 0)
			constraint(w, path, v, "Member must satisfy regular expression pattern: %s",
				   pat);
	}
}

static void check_number(struct walk *w, const struct pp_json *shape, const char *type,
			 const struct pp_json *v, const char *path)
{
	bool integral = strcmp(type, "integer") == 0 || strcmp(type, "long") == 0;
	double min, max;

	if (!pp_json_is(v, PP_JSON_NUMBER)) {
		wrong_type(w, path, v, integral ? "an integer" : "a number");
		return;
	}
	if (integral &&
	    (v->num != floor(v->num) || fabs(v->num) > 9.2e18 ||
	     (strcmp(type, "integer") == 0 && (v->num > 2147483647.0 || v->num < -2147483648.0)))) {
		wrong_type(w, path, v,
			   strcmp(type, "integer") == 0 ? "a 32-bit integer" : "a 64-bit integer");
		return;
	}
	if (pp_json_get_number(shape, "min", &min) && v->num < min)
		constraint(w, path, v, "Member must have value greater than or equal to %.0f", min);
	if (pp_json_get_number(shape, "max", &max) && v->num > max)
		constraint(w, path, v, "Member must have value less than or equal to %.0f", max);
}

static void check_structure(struct walk *w, const struct pp_json *shape, const struct pp_json *v,
			    const char *path, int depth)
{
	const struct pp_json *members = pp_json_get(shape, "members");
	char sub[512];

	if (!pp_json_is(v, PP_JSON_OBJECT)) {
		wrong_type(w, path, v, "an object");
		return;
	}
	pp_json_foreach (req, pp_json_get(shape, "required")) {
		const struct pp_json *got = req->str ? pp_json_get(v, req->str) : NULL;

		if (!got || pp_json_is(got, PP_JSON_NULL)) {
			join(sub, sizeof(sub), path, req->str ? req->str : "", NULL);
			constraint(w, sub, NULL, "Member must not be null");
		}
	}
	pp_json_foreach (m, v) {
		const struct pp_json *member = pp_json_get(members, m->key);

		join(sub, sizeof(sub), path, m->key, NULL);
		if (!member) {
			char names[512];

			list_words(names, sizeof(names), members, true);
			pp_spec_report_add(w->rep, "ValidationException", sub,
					   "Unknown parameter at '%s': \"%s\", must be one of: %s",
					   sub, m->key, names);
			continue;
		}
		if (pp_json_is(m, PP_JSON_NULL))
			continue; /* JSON 1.1: an explicit null is an absent member */
		check_shape(w, pp_json_get_string(member, "shape"), m, sub, depth + 1);
	}
}

static void check_shape(struct walk *w, const char *shape_name, const struct pp_json *v,
			const char *path, int depth)
{
	const struct pp_json *shape = shape_named(w->b, shape_name);
	const char *type = pp_json_get_string(shape, "type");
	char sub[512];

	if (!type) {
		pp_spec_report_add(w->rep, "ValidationException", path,
				   "model has no shape %s for '%s'", shape_name ? shape_name : "?",
				   path);
		return;
	}
	if (depth > MAX_DEPTH) {
		pp_spec_report_add(w->rep, "SerializationException", path,
				   "Value at '%s' is nested too deeply", path);
		return;
	}
	if (pp_json_get_bool(shape, "document", false))
		return; /* a document member takes any JSON */
	if (strcmp(type, "structure") == 0) {
		check_structure(w, shape, v, path, depth);
	} else if (strcmp(type, "list") == 0) {
		size_t i = 0;
		char index[24];

		if (!pp_json_is(v, PP_JSON_ARRAY)) {
			wrong_type(w, path, v, "an array");
			return;
		}
		check_length(w, shape, v, path, v->count);
		pp_json_foreach (e, v) {
			/* AWS counts list members from 1: 'tags.1.member.key'. */
			snprintf(index, sizeof(index), "%zu", ++i);
			join(sub, sizeof(sub), path, index, "member");
			check_shape(w, pp_json_get_string(pp_json_get(shape, "member"), "shape"), e,
				    sub, depth + 1);
		}
	} else if (strcmp(type, "map") == 0) {
		const char *kshape = pp_json_get_string(pp_json_get(shape, "key"), "shape");
		const char *vshape = pp_json_get_string(pp_json_get(shape, "value"), "shape");

		if (!pp_json_is(v, PP_JSON_OBJECT)) {
			wrong_type(w, path, v, "an object");
			return;
		}
		check_length(w, shape, v, path, v->count);
		pp_json_foreach (e, v) {
			struct pp_json key = {
				.type = PP_JSON_STRING, .str = e->key, .len = strlen(e->key)};

			join(sub, sizeof(sub), path, e->key, "key");
			check_shape(w, kshape, &key, sub, depth + 1);
			join(sub, sizeof(sub), path, e->key, "value");
			check_shape(w, vshape, e, sub, depth + 1);
		}
	} else if (strcmp(type, "string") == 0) {
		check_string(w, shape, v, path);
	} else if (strcmp(type, "integer") == 0 || strcmp(type, "long") == 0 ||
		   strcmp(type, "double") == 0 || strcmp(type, "float") == 0) {
		check_number(w, shape, type, v, path);
	} else if (strcmp(type, "boolean") == 0) {
		if (!pp_json_is(v, PP_JSON_BOOL))
			wrong_type(w, path, v, "a boolean");
	} else if (strcmp(type, "timestamp") == 0) {
		/* JSON 1.1 sends epoch seconds; botocore also accepts ISO 8601 text. */
		if (!pp_json_is(v, PP_JSON_NUMBER) && !pp_json_is(v, PP_JSON_STRING))
			wrong_type(w, path, v, "a timestamp");
	} else if (strcmp(type, "blob") == 0) {
		if (!pp_json_is(v, PP_JSON_STRING))
			wrong_type(w, path, v, "base64 text");
	} else {
		pp_spec_report_add(w->rep, "ValidationException", path,
				   "model shape %s has type %s, which this validator does not know",
				   shape_name, type);
	}
}

size_t pp_spec_botocore_check(const struct pp_spec_botocore *b, const char *operation,
			      const struct pp_json *body, struct pp_spec_report *rep)
{
	const struct pp_json *op = pp_json_get(b->operations, operation);
	const char *input = pp_json_get_string(pp_json_get(op, "input"), "shape");
	struct walk w = {.b = b, .rep = rep};

	pp_spec_report_init(rep);
	if (!op) {
		pp_spec_report_add(rep, "InvalidAction", "", "Operation %s is not supported.",
				   operation);
		return rep->total;
	}
	if (!input) /* operations without input take an empty object */
		return 0;
	w.md = pcre2_match_data_create(4, NULL);
	if (!w.md) {
		pp_spec_report_add(rep, "InternalFailure", "", "out of memory");
		return rep->total;
	}
	check_shape(&w, input, body, "", 0);
	pcre2_match_data_free(w.md);
	return rep->total;
}

/* ---- the Query and EC2 protocols: form bodies read by the model ----
 *
 * A Query request is Action=Op&Version=V&Name.sub.1.x=v: the names come from
 * the model, by botocore's serialisation rules (serialize.py,
 * QuerySerializer and EC2Serializer), read here in reverse. A member is
 * written under its locationName (Query) or its queryName, else its
 * locationName with a capital first letter (EC2), else its own name. Query
 * lists are Name.member.N (the member's locationName replacing "member"),
 * or Name.N when flattened, and an empty one is "Name="; EC2 lists are
 * always Name.N. Query maps are Name.entry.N.key / .value (flattened:
 * Name.N.key). N counts from 1. */

#define FORM_MAX_PARAMS 1000

struct fparam {
	char *key, *value;
	bool used;
};

struct form {
	struct fparam p[FORM_MAX_PARAMS];
	size_t n;
};

struct qwalk {
	const struct pp_spec_botocore *b;
	struct form *f;
	bool ec2;
	bool oom;
};

static int unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decoded copy of n bytes ('+' is a space); NULL on a broken escape. */
static char *form_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1);
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%') {
			if (i + 2 >= n) {
				free(out);
				return NULL;
			}
			int hi = unhex(s[i + 1]), lo = unhex(s[i + 2]);

			if (hi < 0 || lo < 0) {
				free(out);
				return NULL;
			}
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

static void form_free(struct form *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->p[i].key);
		free(f->p[i].value);
	}
	f->n = 0;
}

/* 0, or a violation's description in why. */
static int form_parse(const char *body, size_t len, struct form *f, char *why, size_t why_size)
{
	size_t i = 0;

	f->n = 0;
	while (i < len) {
		size_t end = i, eq;

		while (end < len && body[end] != '&')
			end++;
		if (end > i) {
			if (f->n == FORM_MAX_PARAMS) {
				snprintf(why, why_size, "more than %d parameters", FORM_MAX_PARAMS);
				return -1;
			}
			for (eq = i; eq < end && body[eq] != '='; eq++)
				;
			f->p[f->n].key = form_decode(body + i, eq - i);
			f->p[f->n].value = form_decode(eq < end ? body + eq + 1 : "",
						       eq < end ? end - eq - 1 : 0);
			f->p[f->n].used = false;
			f->n++;
			if (!f->p[f->n - 1].key || !f->p[f->n - 1].value) {
				snprintf(why, why_size, "a parameter near byte %zu is not %s", i,
					 "percent-encoded correctly");
				return -1;
			}
		}
		i = end + 1;
	}
	return 0;
}

static struct fparam *form_get(struct form *f, const char *key)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->p[i].key, key) == 0)
			return &f->p[i];
	return NULL;
}

/* Any parameter at prefix or under it (prefix.*). */
static bool form_has(const struct form *f, const char *prefix)
{
	size_t n = strlen(prefix);

	for (size_t i = 0; i < f->n; i++)
		if (strncmp(f->p[i].key, prefix, n) == 0 &&
		    (f->p[i].key[n] == '\0' || f->p[i].key[n] == '.'))
			return true;
	return false;
}

/* The name member (its reference in a structure) is written under. */
static void wire_name(const struct qwalk *q, const char *name, const struct pp_json *member,
		      char *out, size_t size)
{
	const char *qn = pp_json_get_string(member, "queryName");
	const char *ln = pp_json_get_string(member, "locationName");

	if (q->ec2 && qn)
		snprintf(out, size, "%s", qn);
	else if (q->ec2 && ln && *ln)
		snprintf(out, size, "%c%s", toupper((unsigned char)ln[0]), ln + 1);
	else
		snprintf(out, size, "%s", ln && *ln ? ln : name);
}

static struct pp_json *qdecode(struct qwalk *q, const char *shape_name, const char *prefix,
			       int depth);

static struct pp_json *qscalar(struct qwalk *q, const char *type, const char *prefix)
{
	struct fparam *fp = form_get(q->f, prefix);
	struct pp_json *v = NULL;
	char *end;

	if (!fp)
		return NULL;
	fp->used = true;
	if (strcmp(type, "integer") == 0 || strcmp(type, "long") == 0 ||
	    strcmp(type, "double") == 0 || strcmp(type, "float") == 0) {
		double d = strtod(fp->value, &end);

		if (*fp->value && !*end && (v = pp_json_new_number(d)))
			return v;
	} else if (strcmp(type, "boolean") == 0) {
		if (strcmp(fp->value, "true") == 0 || strcmp(fp->value, "false") == 0)
			v = pp_json_new_bool(fp->value[0] == 't');
		if (v)
			return v;
	}
	/* Strings, and numbers or booleans that do not read as one: the check
	 * that follows reports the wrong type. */
	v = pp_json_new_string(fp->value);
	if (!v)
		q->oom = true;
	return v;
}

static struct pp_json *qstructure(struct qwalk *q, const struct pp_json *shape, const char *prefix,
				  int depth, bool top)
{
	struct pp_json *obj = top ? pp_json_new(PP_JSON_OBJECT) : NULL;
	char name[256], sub[512];

	if (top && !obj) {
		q->oom = true;
		return NULL;
	}
	pp_json_foreach (m, pp_json_get(shape, "members")) {
		struct pp_json *v;

		wire_name(q, m->key, m, name, sizeof(name));
		snprintf(sub, sizeof(sub), "%s%s%s", prefix, *prefix ? "." : "", name);
		if (!form_has(q->f, sub))
			continue;
		v = qdecode(q, pp_json_get_string(m, "shape"), sub, depth + 1);
		if (!v)
			continue;
		if (!obj && !(obj = pp_json_new(PP_JSON_OBJECT))) {
			pp_json_free(v);
			q->oom = true;
			return NULL;
		}
		if (pp_json_set(obj, m->key, v))
			q->oom = true;
	}
	return obj;
}

static struct pp_json *qlist(struct qwalk *q, const struct pp_json *shape, const char *prefix,
			     int depth)
{
	const struct pp_json *member = pp_json_get(shape, "member");
	const char *ln = pp_json_get_string(member, "locationName");
	struct pp_json *arr;
	char base[512], sub[600];
	struct fparam *empty;

	if (q->ec2 || pp_json_get_bool(shape, "flattened", false))
		snprintf(base, sizeof(base), "%s", prefix);
	else
		snprintf(base, sizeof(base), "%s.%s", prefix, ln && *ln ? ln : "member");
	if (!(arr = pp_json_new(PP_JSON_ARRAY))) {
		q->oom = true;
		return NULL;
	}
	/* Query writes an empty list as "Name=". */
	if (!q->ec2 && (empty = form_get(q->f, prefix)) && !*empty->value) {
		empty->used = true;
		return arr;
	}
	for (size_t i = 1; i <= FORM_MAX_PARAMS; i++) {
		struct pp_json *v;

		snprintf(sub, sizeof(sub), "%s.%zu", base, i);
		if (!form_has(q->f, sub))
			break; /* a later N after a gap stays unused: reported as unknown */
		v = qdecode(q, pp_json_get_string(member, "shape"), sub, depth + 1);
		if (!v || pp_json_append(arr, v))
			break;
	}
	return arr;
}

static struct pp_json *qmap(struct qwalk *q, const struct pp_json *shape, const char *prefix,
			    int depth)
{
	const char *kn = pp_json_get_string(pp_json_get(shape, "key"), "locationName");
	const char *vn = pp_json_get_string(pp_json_get(shape, "value"), "locationName");
	struct pp_json *obj = pp_json_new(PP_JSON_OBJECT);
	bool flat = pp_json_get_bool(shape, "flattened", false);
	char sub[600];

	if (!obj) {
		q->oom = true;
		return NULL;
	}
	for (size_t i = 1; i <= FORM_MAX_PARAMS; i++) {
		struct fparam *k;
		struct pp_json *v;

		snprintf(sub, sizeof(sub), "%s%s.%zu.%s", prefix, flat ? "" : ".entry", i,
			 kn ? kn : "key");
		if (!(k = form_get(q->f, sub)))
			break;
		k->used = true;
		snprintf(sub, sizeof(sub), "%s%s.%zu.%s", prefix, flat ? "" : ".entry", i,
			 vn ? vn : "value");
		v = qdecode(q, pp_json_get_string(pp_json_get(shape, "value"), "shape"), sub,
			    depth + 1);
		if (pp_json_set(obj, k->value, v ? v : pp_json_new(PP_JSON_NULL)))
			q->oom = true;
	}
	return obj;
}

static struct pp_json *qdecode(struct qwalk *q, const char *shape_name, const char *prefix,
			       int depth)
{
	const struct pp_json *shape = shape_named(q->b, shape_name);
	const char *type = pp_json_get_string(shape, "type");

	/* Names deeper than any model nests stay unused and are reported. */
	if (!type || depth > MAX_DEPTH)
		return NULL;
	if (strcmp(type, "structure") == 0)
		return qstructure(q, shape, prefix, depth, false);
	if (strcmp(type, "list") == 0)
		return qlist(q, shape, prefix, depth);
	if (strcmp(type, "map") == 0)
		return qmap(q, shape, prefix, depth);
	return qscalar(q, type, prefix);
}

size_t pp_spec_botocore_check_query(const struct pp_spec_botocore *b, const char *operation,
				    bool ec2, const char *form, size_t len, struct pp_json **out,
				    struct pp_spec_report *rep)
{
	const struct pp_json *op = pp_json_get(b->operations, operation);
	const char *input = pp_json_get_string(pp_json_get(op, "input"), "shape");
	const char *version = pp_json_get_string(pp_json_get(b->model, "metadata"), "apiVersion");
	struct form *f = calloc(1, sizeof(*f));
	struct qwalk q = {.b = b, .f = f, .ec2 = ec2};
	struct fparam *fp;
	struct pp_json *tree = NULL;
	char why[160];

	*out = NULL;
	pp_spec_report_init(rep);
	if (!f) {
		pp_spec_report_add(rep, "InternalFailure", "", "out of memory");
		return rep->total;
	}
	if (form_parse(form, len, f, why, sizeof(why))) {
		pp_spec_report_add(rep, "MalformedQueryString", "",
				   "The request body is malformed: %s", why);
		goto done;
	}
	if (!(fp = form_get(f, "Action")) || strcmp(fp->value, operation) != 0 || !op) {
		pp_spec_report_add(rep, "InvalidAction", "Action",
				   "Could not find operation %s for version %s", operation,
				   version ? version : "?");
		goto done;
	}
	fp->used = true;
	if (!(fp = form_get(f, "Version")) || !version || strcmp(fp->value, version) != 0) {
		pp_spec_report_add(rep, "NoSuchVersion", "Version",
				   "The requested version (%s) of service %s does not exist",
				   fp ? fp->value : "(none)", operation);
		goto done;
	}
	fp->used = true;
	tree = input ? qstructure(&q, shape_named(b, input), "", 0, true)
		     : pp_json_new(PP_JSON_OBJECT);
	if (!tree || q.oom) {
		pp_spec_report_add(rep, "InternalFailure", "", "out of memory");
		goto done;
	}
	for (size_t i = 0; i < f->n; i++)
		if (!f->p[i].used)
			pp_spec_report_add(rep, "UnknownParameter", f->p[i].key,
					   "The parameter %.*s%s is not recognized",
					   VALUE_SHOWN * 2, f->p[i].key,
					   strlen(f->p[i].key) > VALUE_SHOWN * 2 ? "..." : "");
	if (input) {
		struct pp_spec_report shape_rep;

		pp_spec_botocore_check(b, operation, tree, &shape_rep);
		for (size_t i = 0; i < shape_rep.n; i++)
			pp_spec_report_add(rep, shape_rep.code, shape_rep.v[i].field, "%s",
					   shape_rep.v[i].desc);
		rep->total += shape_rep.total - shape_rep.n;
	}
	*out = tree;
	tree = NULL;
done:
	pp_json_free(tree);
	form_free(f);
	free(f);
	return rep->total;
}
