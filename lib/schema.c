/* Validation of job variables against a template's "variables" schema. */
#include "lib/schema.h"

#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"

/* $ref chains and nesting deeper than this are treated as a cycle. */
#define MAX_SCHEMA_DEPTH 32
#define PATH_MAX_LEN	 512
#define SHOWN_VALUE_MAX	 60

struct vctx {
	const struct pp_json *root;
	struct pp_error *err;
	pp_schema_secret_fn *noted; /* NULL: nobody asked */
	void *noted_arg;
};

static int validate(struct vctx *v, const struct pp_json *schema, const struct pp_json *value,
		    const char *path, int depth);

static bool is_integer(const struct pp_json *j)
{
	return j->type == PP_JSON_NUMBER && isfinite(j->num) && j->num == floor(j->num);
}

static bool type_matches(const char *type, const struct pp_json *value)
{
	if (!strcmp(type, "integer"))
		return is_integer(value);
	if (!strcmp(type, "number"))
		return value->type == PP_JSON_NUMBER;
	if (!strcmp(type, "string"))
		return value->type == PP_JSON_STRING;
	if (!strcmp(type, "boolean"))
		return value->type == PP_JSON_BOOL;
	if (!strcmp(type, "object"))
		return value->type == PP_JSON_OBJECT;
	if (!strcmp(type, "array"))
		return value->type == PP_JSON_ARRAY;
	if (!strcmp(type, "null"))
		return value->type == PP_JSON_NULL;
	return true; /* an unknown type name constrains nothing */
}

static bool is_secret_schema(const struct pp_json *schema)
{
	const char *format = pp_json_get_string(schema, "format");
	return pp_json_get_bool(schema, "writeOnly", false) ||
	       (format && !strcmp(format, "password"));
}

/* `string "abc"`, `integer 3`, `object {...}`: what the user gave, short,
 * and without the value itself when the schema marks it secret. */
static void describe(const struct pp_json *value, bool secret, char *out, size_t n)
{
	const char *type = is_integer(value) ? "integer" : pp_json_type_name(value->type);
	if (value->type == PP_JSON_NULL || secret) {
		snprintf(out, n, "%s", type);
		return;
	}
	char *text = pp_json_to_string(value, PP_JSON_COMPACT);
	if (!text) {
		snprintf(out, n, "%s", type);
		return;
	}
	if (strlen(text) > SHOWN_VALUE_MAX)
		strcpy(text + SHOWN_VALUE_MAX - 3, "...");
	snprintf(out, n, "%s %s", type, text);
	free(text);
}

static const struct pp_json *resolve_ref(struct vctx *v, const char *ref, const char *path)
{
	/* Local JSON pointers only ("#/definitions/X", "#/$defs/X"): templates
	 * are self-contained. */
	if (strncmp(ref, "#/", 2)) {
		pp_fail(v->err, PP_EINVALID, "\"%s\": unsupported $ref \"%s\" (only local #/ refs)",
			path, ref);
		return NULL;
	}
	const struct pp_json *cur = v->root;
	char seg[256];
	const char *p = ref + 2;
	while (cur && *p) {
		size_t n = strcspn(p, "/");
		size_t o = 0;
		for (size_t i = 0; i < n && o + 1 < sizeof(seg); i++) {
			/* JSON pointer escapes: ~1 is '/', ~0 is '~' */
			if (p[i] == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1')) {
				seg[o++] = p[i + 1] == '1' ? '/' : '~';
				i++;
			} else {
				seg[o++] = p[i];
			}
		}
		seg[o] = '\0';
		cur = pp_json_get(cur, seg);
		p += n;
		if (*p == '/')
			p++;
	}
	if (!cur)
		pp_fail(v->err, PP_EINVALID, "\"%s\": $ref \"%s\" does not resolve in the template",
			path, ref);
	return cur;
}

static bool allows_null_type(const struct pp_json *schema)
{
	const struct pp_json *type = pp_json_get(schema, "type");
	if (type && type->type == PP_JSON_STRING)
		return !strcmp(type->str, "null");
	pp_json_foreach (t, type)
		if (t->type == PP_JSON_STRING && !strcmp(t->str, "null"))
			return true;
	const struct pp_json *any = pp_json_get(schema, "anyOf");
	pp_json_foreach (alt, any)
		if (allows_null_type(alt))
			return true;
	return false;
}

bool pp_schema_allows_null(const struct pp_json *schema)
{
	if (!schema || schema->type != PP_JSON_OBJECT)
		return true;
	const struct pp_json *def = pp_json_get(schema, "default");
	if (!def || def->type == PP_JSON_NULL)
		return true;
	if (pp_json_get(schema, "allOf") || pp_json_get(schema, "anyOf"))
		return true;
	return allows_null_type(schema);
}

static int check_type(struct vctx *v, const struct pp_json *schema, const struct pp_json *value,
		      const char *path)
{
	const struct pp_json *type = pp_json_get(schema, "type");
	if (!type)
		return 0;
	char want[128] = "";
	if (type->type == PP_JSON_STRING) {
		if (type_matches(type->str, value))
			return 0;
		snprintf(want, sizeof(want), "%s", type->str);
	} else if (type->type == PP_JSON_ARRAY) {
		size_t o = 0;
		pp_json_foreach (t, type) {
			if (t->type != PP_JSON_STRING)
				continue;
			if (type_matches(t->str, value))
				return 0;
			int w = snprintf(want + o, sizeof(want) - o, "%s%s", o ? " or " : "",
					 t->str);
			if (w < 0 || (size_t)w >= sizeof(want) - o)
				break;
			o += (size_t)w;
		}
	} else {
		return 0;
	}
	char got[SHOWN_VALUE_MAX + 32];
	describe(value, is_secret_schema(schema), got, sizeof(got));
	return pp_fail(v->err, PP_EINVALID, "\"%s\": expected %s, got %s", path, want, got);
}

static int check_enum(struct vctx *v, const struct pp_json *schema, const struct pp_json *value,
		      const char *path)
{
	const struct pp_json *en = pp_json_get(schema, "enum");
	const struct pp_json *cst = pp_json_get(schema, "const");
	if (cst && !pp_json_equal(cst, value)) {
		char *want = pp_json_to_string(cst, PP_JSON_COMPACT);
		int rc = pp_fail(v->err, PP_EINVALID, "\"%s\": must be %s", path,
				 want ? want : "the schema's const");
		free(want);
		return rc;
	}
	if (!en || en->type != PP_JSON_ARRAY)
		return 0;
	pp_json_foreach (e, en)
		if (pp_json_equal(e, value))
			return 0;
	char *allowed = pp_json_to_string(en, PP_JSON_COMPACT);
	char got[SHOWN_VALUE_MAX + 32];
	describe(value, is_secret_schema(schema), got, sizeof(got));
	int rc = pp_fail(v->err, PP_EINVALID, "\"%s\": %s is not one of %s", path, got,
			 allowed ? allowed : "the allowed values");
	free(allowed);
	return rc;
}

static int check_bounds(struct vctx *v, const struct pp_json *schema, const struct pp_json *value,
			const char *path)
{
	if (value->type != PP_JSON_NUMBER)
		return 0;
	double x = value->num, b;
	const struct pp_json *emin = pp_json_get(schema, "exclusiveMinimum");
	const struct pp_json *emax = pp_json_get(schema, "exclusiveMaximum");
	/* draft 4 spells exclusivity as a boolean next to minimum/maximum */
	bool min_excl = emin && emin->type == PP_JSON_BOOL && emin->b;
	bool max_excl = emax && emax->type == PP_JSON_BOOL && emax->b;
	if (pp_json_get_number(schema, "minimum", &b) && (min_excl ? x <= b : x < b))
		return pp_fail(v->err, PP_EINVALID, "\"%s\": %s is below the %s %g", path,
			       value->str, min_excl ? "exclusive minimum" : "minimum", b);
	if (pp_json_get_number(schema, "maximum", &b) && (max_excl ? x >= b : x > b))
		return pp_fail(v->err, PP_EINVALID, "\"%s\": %s is above the %s %g", path,
			       value->str, max_excl ? "exclusive maximum" : "maximum", b);
	if (pp_json_get_number(schema, "exclusiveMinimum", &b) && x <= b)
		return pp_fail(v->err, PP_EINVALID, "\"%s\": %s must be greater than %g", path,
			       value->str, b);
	if (pp_json_get_number(schema, "exclusiveMaximum", &b) && x >= b)
		return pp_fail(v->err, PP_EINVALID, "\"%s\": %s must be less than %g", path,
			       value->str, b);
	return 0;
}

static size_t utf8_chars(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			c++;
	return c;
}

/* ECMA-262 patterns in templates use \d, \w, \s and (?:...), which POSIX
 * ERE spells differently; translate those and let regcomp judge the rest. */
static int translate_pattern(const char *re, struct pp_buf *out)
{
	int rc = 0;
	for (const char *p = re; *p && !rc; p++) {
		if (p[0] == '\\' && p[1]) {
			const char *cls = NULL;
			switch (p[1]) {
			case 'd': cls = "[0-9]"; break;
			case 'D': cls = "[^0-9]"; break;
			case 'w': cls = "[A-Za-z0-9_]"; break;
			case 'W': cls = "[^A-Za-z0-9_]"; break;
			case 's': cls = "[[:space:]]"; break;
			case 'S': cls = "[^[:space:]]"; break;
			}
			if (cls)
				rc = pp_buf_puts(out, cls);
			else
				rc = pp_buf_append(out, p, 2);
			p++;
		} else if (p[0] == '(' && p[1] == '?' && p[2] == ':') {
			rc = pp_buf_putc(out, '(');
			p += 2;
		} else {
			rc = pp_buf_putc(out, *p);
		}
	}
	return rc;
}

/* Compiled patterns, kept because every run validates its variables against
 * the same few patterns of its pool's template, and compiling one costs
 * more than the rest of the validation. The oldest gives way. */
#define PATTERN_CACHE 16
enum { PATTERN_TOO_LONG = -1, PATTERN_UNSUPPORTED = -2 };
static struct {
	char *pattern;
	regex_t re;
} pattern_cache[PATTERN_CACHE];
static size_t pattern_next;
static pthread_mutex_t pattern_lock = PTHREAD_MUTEX_INITIALIZER;

/* 0 when text matches pattern, 1 when not, or a negative PATTERN_*. */
static int pattern_match(const char *pattern, const char *text)
{
	int nomatch = PATTERN_UNSUPPORTED;
	pthread_mutex_lock(&pattern_lock);
	for (size_t i = 0; i < PATTERN_CACHE; i++) {
		if (pattern_cache[i].pattern && !strcmp(pattern_cache[i].pattern, pattern)) {
			nomatch = regexec(&pattern_cache[i].re, text, 0, NULL, 0) != 0;
			pthread_mutex_unlock(&pattern_lock);
			return nomatch;
		}
	}
	struct pp_buf ere;
	pp_buf_init(&ere, 4096);
	regex_t re;
	if (translate_pattern(pattern, &ere)) {
		nomatch = PATTERN_TOO_LONG;
	} else if (!regcomp(&re, pp_buf_str(&ere), REG_EXTENDED | REG_NOSUB)) {
		nomatch = regexec(&re, text, 0, NULL, 0) != 0;
		char *key = strdup(pattern);
		size_t slot = pattern_next;
		if (key) {
			pattern_next = (pattern_next + 1) % PATTERN_CACHE;
			if (pattern_cache[slot].pattern) {
				free(pattern_cache[slot].pattern);
				regfree(&pattern_cache[slot].re);
			}
			pattern_cache[slot].pattern = key;
			pattern_cache[slot].re = re;
		} else {
			regfree(&re);
		}
	}
	pp_buf_free(&ere);
	pthread_mutex_unlock(&pattern_lock);
	return nomatch;
}

static int check_string(struct vctx *v, const struct pp_json *schema, const struct pp_json *value,
			const char *path)
{
	if (value->type != PP_JSON_STRING)
		return 0;
	size_t chars = utf8_chars(value->str, value->len);
	long long lim = pp_json_get_int(schema, "minLength", -1);
	if (lim >= 0 && chars < (size_t)lim)
		return pp_fail(v->err, PP_EINVALID, "\"%s\": shorter than %lld characters", path,
			       lim);
	lim = pp_json_get_int(schema, "maxLength", -1);
	if (lim >= 0 && chars > (size_t)lim)
		return pp_fail(v->err, PP_EINVALID, "\"%s\": longer than %lld characters", path,
			       lim);
	const char *pattern = pp_json_get_string(schema, "pattern");
	if (!pattern || memchr(value->str, '\0', value->len))
		return 0;
	int nomatch = pattern_match(pattern, value->str);
	if (nomatch == PATTERN_TOO_LONG)
		return pp_fail(v->err, PP_EINVALID, "\"%s\": pattern too long", path);
	if (nomatch == PATTERN_UNSUPPORTED)
		return pp_fail(v->err, PP_EINVALID,
			       "\"%s\": the template's pattern \"%s\" is not supported", path,
			       pattern);
	if (nomatch) {
		char got[SHOWN_VALUE_MAX + 32];
		describe(value, is_secret_schema(schema), got, sizeof(got));
		return pp_fail(v->err, PP_EINVALID, "\"%s\": %s does not match the pattern %s",
			       path, got, pattern);
	}
	return 0;
}

static int child_path(char *out, size_t n, const char *path, const char *key, long idx,
		      struct pp_error *err)
{
	int w = key ? snprintf(out, n, "%s.%s", path, key) : snprintf(out, n, "%s[%ld]", path, idx);
	if (w < 0 || (size_t)w >= n)
		return pp_fail(err, PP_EINVALID, "\"%s\": nested too deeply to name", path);
	return 0;
}

static int check_object(struct vctx *v, const struct pp_json *schema, const struct pp_json *value,
			const char *path, int depth)
{
	if (value->type != PP_JSON_OBJECT)
		return 0;
	char sub[PATH_MAX_LEN];
	const struct pp_json *req = pp_json_get(schema, "required");
	pp_json_foreach (r, req) {
		if (r->type == PP_JSON_STRING && !pp_json_get(value, r->str))
			return pp_fail(v->err, PP_EINVALID,
				       "\"%s\": required property \"%s\" missing", path, r->str);
	}
	const struct pp_json *props = pp_json_get(schema, "properties");
	const struct pp_json *extra = pp_json_get(schema, "additionalProperties");
	pp_json_foreach (m, value) {
		int rc = child_path(sub, sizeof(sub), path, m->key, 0, v->err);
		if (rc)
			return rc;
		const struct pp_json *ps = pp_json_get(props, m->key);
		if (ps) {
			rc = validate(v, ps, m, sub, depth + 1);
		} else if (extra && extra->type == PP_JSON_BOOL && !extra->b) {
			rc = pp_fail(v->err, PP_EINVALID, "\"%s\": unknown property", sub);
		} else if (extra && extra->type == PP_JSON_OBJECT) {
			rc = validate(v, extra, m, sub, depth + 1);
		}
		if (rc)
			return rc;
	}
	return 0;
}

static int check_array(struct vctx *v, const struct pp_json *schema, const struct pp_json *value,
		       const char *path, int depth)
{
	if (value->type != PP_JSON_ARRAY)
		return 0;
	long long lim = pp_json_get_int(schema, "minItems", -1);
	if (lim >= 0 && value->count < (size_t)lim)
		return pp_fail(v->err, PP_EINVALID, "\"%s\": fewer than %lld items", path, lim);
	lim = pp_json_get_int(schema, "maxItems", -1);
	if (lim >= 0 && value->count > (size_t)lim)
		return pp_fail(v->err, PP_EINVALID, "\"%s\": more than %lld items", path, lim);
	const struct pp_json *items = pp_json_get(schema, "items");
	if (!items || items->type != PP_JSON_OBJECT)
		return 0;
	char sub[PATH_MAX_LEN];
	long i = 0;
	pp_json_foreach (it, value) {
		int rc = child_path(sub, sizeof(sub), path, NULL, i++, v->err);
		if (!rc)
			rc = validate(v, items, it, sub, depth + 1);
		if (rc)
			return rc;
	}
	return 0;
}

/* anyOf / oneOf: count the alternatives value satisfies; keep the first
 * failure's message to explain a miss. */
static int check_alternatives(struct vctx *v, const struct pp_json *alts, bool exactly_one,
			      const struct pp_json *value, const char *path, int depth)
{
	struct pp_error first = {0};
	struct pp_error *saved = v->err;
	int matched = 0;
	pp_json_foreach (alt, alts) {
		struct pp_error e = {0};
		v->err = &e;
		int rc = validate(v, alt, value, path, depth + 1);
		v->err = saved;
		if (rc == PP_ENOMEM)
			return pp_fail(saved, rc, "%s", e.msg);
		if (!rc)
			matched++;
		else if (!first.msg[0])
			first = e;
	}
	if (exactly_one ? matched == 1 : matched > 0)
		return 0;
	if (matched > 1)
		return pp_fail(v->err, PP_EINVALID,
			       "\"%s\": matches %d of the oneOf schemas, "
			       "expected exactly one",
			       path, matched);
	return pp_fail(v->err, PP_EINVALID, "\"%s\": matches none of the allowed schemas (%s)",
		       path, first.msg);
}

static int validate(struct vctx *v, const struct pp_json *schema, const struct pp_json *value,
		    const char *path, int depth)
{
	if (depth > MAX_SCHEMA_DEPTH)
		return pp_fail(v->err, PP_EINVALID,
			       "\"%s\": schema nested too deeply or $ref cycle", path);
	if (schema->type == PP_JSON_BOOL)
		return schema->b ? 0 : pp_fail(v->err, PP_EINVALID, "\"%s\": not allowed", path);
	if (schema->type != PP_JSON_OBJECT)
		return 0;
	const char *ref = pp_json_get_string(schema, "$ref");
	if (ref) {
		const struct pp_json *target = resolve_ref(v, ref, path);
		if (!target)
			return v->err ? v->err->code : PP_EINVALID;
		int rc = validate(v, target, value, path, depth + 1);
		if (rc)
			return rc;
	}
	int rc = check_type(v, schema, value, path);
	if (!rc)
		rc = check_enum(v, schema, value, path);
	if (!rc)
		rc = check_bounds(v, schema, value, path);
	if (!rc)
		rc = check_string(v, schema, value, path);
	if (!rc)
		rc = check_object(v, schema, value, path, depth);
	if (!rc)
		rc = check_array(v, schema, value, path, depth);
	const struct pp_json *all = pp_json_get(schema, "allOf");
	pp_json_foreach (sub, all) {
		if (rc)
			break;
		rc = validate(v, sub, value, path, depth + 1);
	}
	const struct pp_json *any = pp_json_get(schema, "anyOf");
	if (!rc && any && any->type == PP_JSON_ARRAY)
		rc = check_alternatives(v, any, false, value, path, depth);
	const struct pp_json *one = pp_json_get(schema, "oneOf");
	if (!rc && one && one->type == PP_JSON_ARRAY)
		rc = check_alternatives(v, one, true, value, path, depth);
	if (!rc && value->type == PP_JSON_STRING && is_secret_schema(schema)) {
		pp_secret_register_rotating(value->str);
		if (v->noted)
			v->noted(value->str, v->noted_arg);
	}
	return rc;
}

int pp_schema_validate_noting(const struct pp_json *schema, const struct pp_json *root,
			      const struct pp_json *value, const char *path,
			      pp_schema_secret_fn *noted, void *arg, struct pp_error *err)
{
	struct vctx v = {.root = root, .err = err, .noted = noted, .noted_arg = arg};
	if (!schema || !value)
		return 0;
	return validate(&v, schema, value, path, 0);
}

int pp_schema_validate(const struct pp_json *schema, const struct pp_json *root,
		       const struct pp_json *value, const char *path, struct pp_error *err)
{
	return pp_schema_validate_noting(schema, root, value, path, NULL, NULL, err);
}
