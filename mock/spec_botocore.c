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
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock/spec.h"

#define MAX_PATTERNS 64
#define MAX_DEPTH    32
#define VALUE_SHOWN  80 /* characters of an offending value quoted back */

struct pattern {
	const char *src; /* points into the model */
	pcre2_code *code;
};

struct pp_spec_botocore {
	struct pp_json *model;
	const struct pp_json *shapes, *operations;
	struct pattern patterns[MAX_PATTERNS];
	size_t npatterns;
};

/* The models' patterns are Java regular expressions, where a '-' after a
 * class escape inside brackets ("[\\w-_]", CloudWatch Logs' ResourceType)
 * is a literal '-'; PCRE2 calls that an invalid range. Write such a '-' as
 * "\\-" (into out, size bytes; false when it does not fit). */
static bool java_class_dashes(const char *src, char *out, size_t size)
{
	size_t k = 0;
	bool in_class = false, after_class_escape = false;

	for (const char *p = src; *p; p++) {
		if (k + 3 >= size)
			return false;
		if (*p == '\\' && p[1]) {
			after_class_escape = in_class && strchr("wdsWDSpP", p[1]);
			out[k++] = *p++;
			out[k++] = *p;
			if ((p[0] == 'p' || p[0] == 'P') && p[1] == '{')
				while (p[1] && p[0] != '}' && k + 3 < size)
					out[k++] = *++p;
			continue;
		}
		if (in_class && *p == '-' && after_class_escape)
			out[k++] = '\\';
		if (!in_class && *p == '[')
			in_class = true;
		else if (in_class && *p == ']')
			in_class = false;
		after_class_escape = false;
		out[k++] = *p;
	}
	out[k] = '\0';
	return true;
}

static int compile_patterns(struct pp_spec_botocore *b, struct pp_error *err)
{
	pp_json_foreach (shape, b->shapes) {
		const char *src = pp_json_get_string(shape, "pattern");
		int ec;
		PCRE2_SIZE off;
		pcre2_code *code;

		if (!src)
			continue;
		if (b->npatterns == MAX_PATTERNS)
			return pp_fail(err, PP_ENOMEM, "botocore model: more than %d patterns",
				       MAX_PATTERNS);
		char re[1024];
		if (!java_class_dashes(src, re, sizeof(re)))
			return pp_fail(err, PP_EINVALID,
				       "botocore model: shape %s: pattern too long", shape->key);
		code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
				     &ec, &off, NULL);
		if (!code) {
			PCRE2_UCHAR msg[160];

			pcre2_get_error_message(ec, msg, sizeof(msg));
			return pp_fail(err, PP_EINVALID,
				       "botocore model: shape %s: pattern %s: %s at offset %zu",
				       shape->key, src, (const char *)msg, (size_t)off);
		}
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
	rc = compile_patterns(b, err);
	if (rc < 0) {
		pp_spec_botocore_free(b);
		return rc;
	}
	*out = b;
	return 0;
}

/* ---- the walk ---- */

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

static void join(char *out, size_t size, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void join(char *out, size_t size, const char *path, const char *fmt, ...)
{
	char tail[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tail, sizeof(tail), fmt, ap);
	va_end(ap);
	snprintf(out, size, "%s%s%s", path, *path ? "." : "", tail);
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
		char set[512] = "";
		size_t off = 0;

		pp_json_foreach (e, en) {
			found = found || (e->str && strcmp(e->str, v->str) == 0);
			if (off < sizeof(set))
				off += (size_t)snprintf(set + off, sizeof(set) - off, "%s%s",
							off ? ", " : "", e->str ? e->str : "");
		}
		if (!found)
			constraint(w, path, v, "Member must satisfy enum value set: [%s]", set);
	}
	if (pat) {
		const pcre2_code *code = pattern_code(w->b, pat);
		int rc = code ? pcre2_match(code, (PCRE2_SPTR)v->str, v->len, 0,
					    PCRE2_ANCHORED | PCRE2_ENDANCHORED, w->md, NULL)
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
			join(sub, sizeof(sub), path, "%s", req->str ? req->str : "");
			constraint(w, sub, NULL, "Member must not be null");
		}
	}
	pp_json_foreach (m, v) {
		const struct pp_json *member = pp_json_get(members, m->key);

		join(sub, sizeof(sub), path, "%s", m->key);
		if (!member) {
			char names[512] = "";
			size_t off = 0;

			pp_json_foreach (k, members)
				if (off < sizeof(names))
					off += (size_t)snprintf(names + off, sizeof(names) - off,
								"%s%s", off ? ", " : "", k->key);
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
	const struct pp_json *shape = shape_name ? pp_json_get(w->b->shapes, shape_name) : NULL;
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

		if (!pp_json_is(v, PP_JSON_ARRAY)) {
			wrong_type(w, path, v, "an array");
			return;
		}
		check_length(w, shape, v, path, v->count);
		pp_json_foreach (e, v) {
			/* AWS counts list members from 1: 'tags.1.member.key'. */
			snprintf(sub, sizeof(sub), "%s.%zu.member", path, ++i);
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

			snprintf(sub, sizeof(sub), "%s.%s.key", path, e->key);
			check_shape(w, kshape, &key, sub, depth + 1);
			snprintf(sub, sizeof(sub), "%s.%s.value", path, e->key);
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
