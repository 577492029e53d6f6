/* Rendering of a base job template's job_configuration, following Prefect's
 * apply_values() (prefect/utilities/templating) and
 * BaseJobConfiguration.from_template_and_values() / prepare_for_flow_run()
 * (prefect/workers/base.py). */
#include "render/render.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/schema.h"

/* One interpolated string may not grow past this (a template repeating a
 * large variable many times). */
#define RENDERED_STRING_MAX ((size_t)1 << 20)
/* The whole rendered job_configuration may not grow past this: no cloud
 * takes a larger job (an ECS task definition is at most 64 KiB, an ARM
 * request 4 MiB), and without it a large template repeating a large
 * variable took 4 GB before failing. Counted as values are rendered, so
 * the run fails before the job is built. */
#define RENDERED_JOB_MAX   ((size_t)4 << 20)
#define TEMPLATE_DEPTH_MAX 64
#define JSON_PATH_MAX	   512

#define DEFAULT_COMMAND "prefect flow-run execute"

/* Result of rendering one template value: Prefect's NotSet is "absent". */
struct rendered {
	struct pp_json *value; /* NULL: NotSet, drop the key or list item */
};

struct placeholder {
	size_t start, end; /* the whole "{{ name }}" */
	size_t name_start, name_end;
};

enum placeholder_kind { PH_STANDARD, PH_BLOCK, PH_VARIABLE, PH_ENV };

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* [\w.\-\[\]$]: bytes >= 0x80 stand for the non-ASCII word characters
 * Python's \w also accepts. */
static bool is_name_char(char c)
{
	unsigned char u = (unsigned char)c;
	return isalnum(u) || u >= 0x80 || c == '_' || c == '.' || c == '-' || c == '[' ||
	       c == ']' || c == '$';
}

/* Next match of ({{\s*([\w\.\-\[\]$]+)\s*}}) at or after from. */
static bool next_placeholder(const char *s, size_t n, size_t from, struct placeholder *ph)
{
	for (size_t i = from; i + 1 < n; i++) {
		if (s[i] != '{' || s[i + 1] != '{')
			continue;
		size_t p = i + 2;
		while (p < n && is_space(s[p]))
			p++;
		size_t ns = p;
		while (p < n && is_name_char(s[p]))
			p++;
		size_t ne = p;
		while (p < n && is_space(s[p]))
			p++;
		if (ne > ns && p + 1 < n && s[p] == '}' && s[p + 1] == '}') {
			ph->start = i;
			ph->end = p + 2;
			ph->name_start = ns;
			ph->name_end = ne;
			return true;
		}
	}
	return false;
}

static enum placeholder_kind placeholder_kind(const char *name, size_t n)
{
	if (n >= 15 && !memcmp(name, "prefect.blocks.", 15))
		return PH_BLOCK;
	if (n >= 18 && !memcmp(name, "prefect.variables.", 18))
		return PH_VARIABLE;
	if (n >= 1 && name[0] == '$')
		return PH_ENV;
	return PH_STANDARD;
}

/* Python int(): optional sign, digits (underscores between digits allowed). */
static bool parse_index(const char *s, size_t n, long *out)
{
	size_t i = 0;
	while (i < n && is_space(s[i]))
		i++;
	while (n > i && is_space(s[n - 1]))
		n--;
	bool neg = false;
	if (i < n && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	if (i >= n)
		return false;
	long v = 0;
	bool prev_digit = false;
	for (; i < n; i++) {
		if (s[i] == '_' && prev_digit && i + 1 < n && isdigit((unsigned char)s[i + 1])) {
			prev_digit = false;
			continue;
		}
		if (!isdigit((unsigned char)s[i]) || v > 100000000)
			return false;
		v = v * 10 + (s[i] - '0');
		prev_digit = true;
	}
	*out = neg ? -v : v;
	return true;
}

struct render_ctx {
	const struct pp_json *values;
	const struct pp_run_ctx *run;
	struct pp_json *builtins; /* the run's built-in names, made at the first that is read */
	/* Whether the render read what differs from run to run (a built-in
	 * name, the environment): only a render that did not may be reused. */
	bool per_run;
	struct pp_error *err;
	size_t size; /* bytes of compact JSON rendered so far */
	char path[JSON_PATH_MAX];
};

static int add_builtins(struct pp_json *builtins, const struct pp_run_ctx *ctx);

/* The built-in names, in the order of add_builtins' ids and labels. */
static const char *const builtin_names[] = {"flow_run", "deployment", "flow", "work_pool",
					    "work_queue"};
#define BUILTINS (sizeof(builtin_names) / sizeof(builtin_names[0]))

static bool is_builtin_name(const char *name)
{
	for (size_t i = 0; i < BUILTINS; i++)
		if (!strcmp(name, builtin_names[i]))
			return true;
	return false;
}

/* A first key no job variable has: a built-in name ({{ flow_run.id }}) or
 * NotSet. Built-ins stand under the variables, as when Prefect adds them
 * to the values only where no variable has the name. */
static int lookup_builtin(struct render_ctx *rc, const char *name, const struct pp_json **found)
{
	*found = NULL;
	if (!is_builtin_name(name))
		return 0;
	rc->per_run = true;
	if (!rc->builtins) {
		struct pp_json *b = pp_json_new(PP_JSON_OBJECT);
		if (!b || add_builtins(b, rc->run)) {
			pp_json_free(b);
			return PP_ENOMEM;
		}
		rc->builtins = b;
	}
	*found = pp_json_get(rc->builtins, name);
	return 0;
}

/* Prefect's get_from_dict(): "a.b[0].c" becomes keys a, b, 0, c; a key that
 * parses as an int indexes a list (negative from the end). *found is NULL
 * for NotSet. */
static int lookup(struct render_ctx *rc, const char *name, size_t n, const struct pp_json **found)
{
	*found = NULL;
	char stack_keys[128];
	char *keys = n < sizeof(stack_keys) ? stack_keys : malloc(n + 1);
	if (!keys)
		return PP_ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (name[i] == '[')
			keys[k++] = '.';
		else if (name[i] != ']')
			keys[k++] = name[i];
	}
	keys[k] = '\0';
	const struct pp_json *cur = rc->values;
	char *seg = keys;
	int err = 0;
	for (;;) {
		char *dot = strchr(seg, '.');
		if (dot)
			*dot = '\0';
		long idx;
		if (parse_index(seg, strlen(seg), &idx)) {
			/* JSON object keys are strings, so an int key never finds one */
			if (!cur || cur->type != PP_JSON_ARRAY) {
				cur = NULL;
			} else {
				if (idx < 0)
					idx += (long)cur->count;
				cur = idx < 0 ? NULL : pp_json_at(cur, (size_t)idx);
			}
		} else if (cur == rc->values) {
			cur = pp_json_get(cur, seg);
			if (!cur)
				err = lookup_builtin(rc, seg, &cur);
		} else {
			cur = cur && cur->type == PP_JSON_OBJECT ? pp_json_get(cur, seg) : NULL;
		}
		if (!cur || !dot)
			break;
		seg = dot + 1;
	}
	if (keys != stack_keys)
		free(keys);
	*found = err ? NULL : cur;
	return err;
}

/* Python repr() of a str: single quotes unless the text has ' and no ". */
static int put_py_repr_string(struct pp_buf *b, const char *s, size_t n)
{
	char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
	int rc = pp_buf_putc(b, q);
	for (size_t i = 0; i < n && !rc; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\' || c == (unsigned char)q)
			rc = pp_buf_printf(b, "\\%c", c);
		else if (c == '\n')
			rc = pp_buf_puts(b, "\\n");
		else if (c == '\r')
			rc = pp_buf_puts(b, "\\r");
		else if (c == '\t')
			rc = pp_buf_puts(b, "\\t");
		else if (c < 0x20 || c == 0x7f)
			rc = pp_buf_printf(b, "\\x%02x", c);
		else
			rc = pp_buf_putc(b, (char)c);
	}
	return rc ? rc : pp_buf_putc(b, q);
}

/* Python repr() of a float: the shortest digits that round-trip, in
 * positional form for exponents -4..15 and scientific otherwise. */
static int put_py_float(struct pp_buf *b, double v)
{
	if (isnan(v))
		return pp_buf_puts(b, "nan");
	if (isinf(v))
		return pp_buf_puts(b, v < 0 ? "-inf" : "inf");
	char sci[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(sci, sizeof(sci), "%.*e", prec - 1, v);
		if (strtod(sci, NULL) == v)
			break;
	}
	char digits[24];
	size_t nd = 0;
	const char *p = sci;
	bool neg = *p == '-';
	if (neg)
		p++;
	for (; *p && *p != 'e'; p++)
		if (isdigit((unsigned char)*p) && nd < sizeof(digits) - 1)
			digits[nd++] = *p;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	int exp = *p == 'e' ? atoi(p + 1) : 0;
	int rc = neg ? pp_buf_putc(b, '-') : 0;
	if (exp < -4 || exp >= 16) {
		rc = rc ? rc : pp_buf_putc(b, digits[0]);
		if (!rc && nd > 1)
			rc = pp_buf_printf(b, ".%s", digits + 1);
		return rc ? rc : pp_buf_printf(b, "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
	}
	if (exp < 0) {
		rc = rc ? rc : pp_buf_puts(b, "0.");
		for (int i = -1; i > exp && !rc; i--)
			rc = pp_buf_putc(b, '0');
		return rc ? rc : pp_buf_puts(b, digits);
	}
	for (int i = 0; i <= exp && !rc; i++)
		rc = pp_buf_putc(b, (size_t)i < nd ? digits[i] : '0');
	if (!rc && (size_t)exp + 1 < nd)
		return pp_buf_printf(b, ".%s", digits + exp + 1);
	return rc ? rc : pp_buf_puts(b, ".0");
}

static bool number_is_float_text(const struct pp_json *j)
{
	return j->str && strpbrk(j->str, ".eE");
}

/* Python str() of a JSON value, as Prefect's interpolation writes it. */
static int put_py_str(struct pp_buf *b, const struct pp_json *j, bool nested)
{
	int rc = 0;
	switch (j->type) {
	case PP_JSON_NULL: return pp_buf_puts(b, "None");
	case PP_JSON_BOOL: return pp_buf_puts(b, j->b ? "True" : "False");
	case PP_JSON_NUMBER:
		if (number_is_float_text(j))
			return put_py_float(b, j->num);
		return pp_buf_append(b, j->str, j->len);
	case PP_JSON_STRING:
		return nested ? put_py_repr_string(b, j->str, j->len)
			      : pp_buf_append(b, j->str, j->len);
	case PP_JSON_ARRAY:
	case PP_JSON_OBJECT: {
		bool obj = j->type == PP_JSON_OBJECT;
		rc = pp_buf_putc(b, obj ? '{' : '[');
		pp_json_foreach (c, j) {
			if (rc)
				break;
			if (c != j->child)
				rc = pp_buf_puts(b, ", ");
			if (!rc && obj) {
				rc = put_py_repr_string(b, c->key, strlen(c->key));
				if (!rc)
					rc = pp_buf_puts(b, ": ");
			}
			if (!rc)
				rc = put_py_str(b, c, true);
		}
		return rc ? rc : pp_buf_putc(b, obj ? '}' : ']');
	}
	}
	return rc;
}

int pp_render_py_str(struct pp_buf *b, const struct pp_json *v)
{
	return put_py_str(b, v, false);
}

/* Bytes of j as compact JSON (escapes aside, its own key not counted);
 * stops counting past limit. */
static size_t json_size(const struct pp_json *j, size_t limit)
{
	switch (j->type) {
	case PP_JSON_NULL: return 4;
	case PP_JSON_BOOL: return j->b ? 4 : 5;
	case PP_JSON_NUMBER: return j->len;
	case PP_JSON_STRING: return j->len + 2;
	case PP_JSON_ARRAY:
	case PP_JSON_OBJECT: {
		size_t n = 2;
		for (const struct pp_json *c = j->child; c && n <= limit; c = c->next)
			n += (c->key ? strlen(c->key) + 4 : 1) + json_size(c, limit - n);
		return n;
	}
	}
	return 0;
}

/* Count n more bytes of the job against RENDERED_JOB_MAX, as they are
 * rendered, so an oversized job fails before it is built. */
static int count_bytes(struct render_ctx *rc, size_t n)
{
	rc->size += n;
	if (rc->size <= RENDERED_JOB_MAX)
		return 0;
	return pp_fail(rc->err, PP_EINVALID,
		       "rendered job is %zu bytes at job_configuration%s, over the %zu-byte limit",
		       rc->size, rc->path, RENDERED_JOB_MAX);
}

static int count_value(struct render_ctx *rc, const struct pp_json *v)
{
	return count_bytes(rc, json_size(v, RENDERED_JOB_MAX));
}

/* A string with placeholders. One standard placeholder and nothing else takes
 * the value as is (any JSON type; absent makes the key disappear); otherwise
 * each placeholder is replaced by the value's str(), or "" when absent. Block
 * and Prefect-variable references are left for the server side to resolve,
 * as in Prefect. */
static int render_string(struct render_ctx *rc, const struct pp_json *tpl, struct rendered *out)
{
	const char *s = tpl->str;
	size_t n = tpl->len;
	struct placeholder ph;
	if (!next_placeholder(s, n, 0, &ph)) {
		if (count_value(rc, tpl))
			return PP_EINVALID;
		out->value = pp_json_clone(tpl);
		return out->value ? 0 : PP_ENOMEM;
	}
	const char *name = s + ph.name_start;
	size_t name_len = ph.name_end - ph.name_start;
	bool whole = ph.start == 0 && ph.end == n;
	if (whole && placeholder_kind(name, name_len) == PH_STANDARD) {
		const struct pp_json *v;
		if (lookup(rc, name, name_len, &v))
			return PP_ENOMEM;
		if (v && count_value(rc, v))
			return PP_EINVALID;
		out->value = v ? pp_json_clone(v) : NULL;
		return v && !out->value ? PP_ENOMEM : 0;
	}
	struct pp_buf b;
	pp_buf_init(&b, RENDERED_STRING_MAX);
	size_t at = 0;
	int err = 0;
	bool more = true;
	while (more && !err) {
		err = pp_buf_append(&b, s + at, ph.start - at);
		const char *nm = s + ph.name_start;
		size_t nl = ph.name_end - ph.name_start;
		switch (placeholder_kind(nm, nl)) {
		case PH_BLOCK:
		case PH_VARIABLE:
			if (!err)
				err = pp_buf_append(&b, s + ph.start, ph.end - ph.start);
			break;
		case PH_ENV: {
			rc->per_run = true;
			size_t skip = 0;
			while (skip < nl && nm[skip] == '$')
				skip++;
			char *var = strndup(nm + skip, nl - skip);
			const char *ev = var ? getenv(var) : NULL;
			if (!var)
				err = PP_ENOMEM;
			else if (ev && !err)
				err = pp_buf_puts(&b, ev);
			free(var);
			break;
		}
		case PH_STANDARD: {
			const struct pp_json *v = NULL;
			if (!err)
				err = lookup(rc, nm, nl, &v);
			if (v && !err)
				err = put_py_str(&b, v, false);
			break;
		}
		}
		at = ph.end;
		more = next_placeholder(s, n, at, &ph);
	}
	if (!err)
		err = pp_buf_append(&b, s + at, n - at);
	if (err) {
		pp_buf_free(&b);
		return pp_fail(rc->err, err,
			       "job_configuration%s: rendered text longer than %zu bytes", rc->path,
			       RENDERED_STRING_MAX);
	}
	if (count_bytes(rc, b.len + 2)) {
		pp_buf_free(&b);
		return PP_EINVALID;
	}
	out->value = pp_json_new_stringn(pp_buf_str(&b), b.len);
	pp_buf_free(&b);
	return out->value ? 0 : PP_ENOMEM;
}

static int render_value(struct render_ctx *rc, const struct pp_json *tpl, int depth,
			struct rendered *out);

/* path[plen..] = ".key" or "[idx]", cut to fit as snprintf would: only
 * error messages read it, and this runs for every value rendered. */
static void path_push(char path[JSON_PATH_MAX], size_t plen, const char *key, size_t idx)
{
	char num[24];
	const char *open = key ? "." : "[", *close = key ? "" : "]";
	if (!key) {
		size_t d = sizeof(num);
		num[--d] = '\0';
		do
			num[--d] = (char)('0' + idx % 10);
		while ((idx /= 10) && d);
		key = num + d;
	}
	const char *parts[3] = {open, key, close};
	size_t at = plen;
	for (int i = 0; i < 3; i++)
		for (const char *p = parts[i]; *p && at + 1 < JSON_PATH_MAX; p++)
			path[at++] = *p;
	path[at] = '\0';
}

static int render_container(struct render_ctx *rc, const struct pp_json *tpl, int depth,
			    struct rendered *out)
{
	bool obj = tpl->type == PP_JSON_OBJECT;
	if (count_bytes(rc, 2))
		return PP_EINVALID;
	struct pp_json *res = pp_json_new(tpl->type);
	if (!res)
		return PP_ENOMEM;
	size_t plen = strlen(rc->path);
	size_t idx = 0;
	pp_json_foreach (c, tpl) {
		path_push(rc->path, plen, obj ? c->key : NULL, idx);
		idx++;
		struct rendered r = {0};
		int e = count_bytes(rc, obj ? strlen(c->key) + 4 : 1);
		if (!e)
			e = render_value(rc, c, depth + 1, &r);
		if (!e && r.value)
			e = obj ? pp_json_set(res, c->key, r.value) : pp_json_append(res, r.value);
		if (e) {
			rc->path[plen] = '\0';
			pp_json_free(res);
			return e == PP_ENOMEM && !rc->err->msg[0]
				       ? pp_fail(rc->err, e, "out of memory rendering the template")
				       : e;
		}
	}
	rc->path[plen] = '\0';
	out->value = res;
	return 0;
}

static int render_value(struct render_ctx *rc, const struct pp_json *tpl, int depth,
			struct rendered *out)
{
	if (depth > TEMPLATE_DEPTH_MAX)
		return pp_fail(rc->err, PP_EINVALID, "job_configuration%s: nested too deeply",
			       rc->path);
	switch (tpl->type) {
	case PP_JSON_STRING: return render_string(rc, tpl, out);
	case PP_JSON_ARRAY:
	case PP_JSON_OBJECT: return render_container(rc, tpl, depth, out);
	default:
		if (count_value(rc, tpl))
			return PP_EINVALID;
		out->value = pp_json_clone(tpl);
		return out->value ? 0 : PP_ENOMEM;
	}
}

/* Copy a layer of job variables over acc; "env" is merged key by key as
 * Prefect merges deployment and flow-run env. */
static int merge_layer(struct pp_json *acc, const struct pp_json *layer)
{
	pp_json_foreach (m, layer) {
		struct pp_json *have = pp_json_get(acc, m->key);
		if (!strcmp(m->key, "env") && have && have->type == PP_JSON_OBJECT &&
		    m->type == PP_JSON_OBJECT) {
			pp_json_foreach (e, m) {
				int rc = pp_json_set(have, e->key, pp_json_clone(e));
				if (rc)
					return rc;
			}
			continue;
		}
		int rc = pp_json_set(acc, m->key, pp_json_clone(m));
		if (rc)
			return rc;
	}
	return 0;
}

static int check_layer(const struct pp_json *layer, const char *what, const struct pp_json *props,
		       struct pp_error *err)
{
	if (!layer)
		return 0;
	if (layer->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID, "%s job variables: expected an object, got %s",
			       what, pp_json_type_name(layer->type));
	pp_json_foreach (m, layer) {
		if (pp_json_get(props, m->key))
			continue;
		struct pp_buf known;
		pp_buf_init(&known, 600);
		pp_json_foreach (p, props) {
			if (pp_buf_printf(&known, "%s%s", known.len ? ", " : "", p->key))
				break;
		}
		int rc =
			pp_fail(err, PP_EINVALID,
				"job variable \"%s\" (%s): not defined in the template's variables "
				"(known: %s)",
				m->key, what, pp_buf_str(&known));
		pp_buf_free(&known);
		return rc;
	}
	return 0;
}

/* Copies of the strings validation registered as secrets (lib/schema.h),
 * kept with the values they came from so that a render cache hit registers
 * them again without validating again: the log's ring of secrets may have
 * let them go since. lost: one could not be copied. */
struct secret_strings {
	char **v;
	size_t n, cap;
	bool lost;
};

static void secret_strings_free(struct secret_strings *ss)
{
	for (size_t i = 0; i < ss->n; i++)
		free(ss->v[i]);
	free(ss->v);
	*ss = (struct secret_strings){0};
}

static void note_secret(const char *secret, void *arg)
{
	struct secret_strings *ss = arg;
	if (ss->n == ss->cap) {
		size_t cap = ss->cap ? ss->cap * 2 : 4;
		char **v = realloc(ss->v, cap * sizeof(*v));
		if (!v) {
			ss->lost = true;
			return;
		}
		ss->v = v;
		ss->cap = cap;
	}
	if (!(ss->v[ss->n] = strdup(secret)))
		ss->lost = true;
	else
		ss->n++;
}

/* A null in env means "unset this variable" (prepare_for_run drops it), so
 * it is not held against the schema's value type. */
static int validate_env(const struct pp_json *schema, const struct pp_json *variables,
			const struct pp_json *env, struct secret_strings *ss, struct pp_error *err)
{
	struct pp_json *set = pp_json_new(PP_JSON_OBJECT);
	if (!set)
		return pp_fail(err, PP_ENOMEM, "out of memory validating env");
	int rc = 0;
	pp_json_foreach (e, env) {
		if (e->type != PP_JSON_NULL && (rc = pp_json_set(set, e->key, pp_json_clone(e))))
			break;
	}
	if (rc)
		rc = pp_fail(err, rc, "out of memory validating env");
	else
		rc = pp_schema_validate_noting(schema, variables, set, "env", note_secret, ss, err);
	pp_json_free(set);
	return rc;
}

static int validate_value(const struct pp_json *variables, const struct pp_json *props,
			  const struct pp_json *v, struct secret_strings *ss, struct pp_error *err)
{
	const struct pp_json *schema = pp_json_get(props, v->key);
	if (v->type == PP_JSON_NULL && pp_schema_allows_null(schema))
		return 0;
	int rc;
	if (!strcmp(v->key, "env") && v->type == PP_JSON_OBJECT)
		rc = validate_env(schema, variables, v, ss, err);
	else
		rc = pp_schema_validate_noting(schema, variables, v, v->key, note_secret, ss, err);
	if (!rc && ss->lost)
		return pp_fail(err, PP_ENOMEM, "out of memory validating job variables");
	return rc ? pp_error_prefix(err, "job variable ") : 0;
}

static int validate_values(const struct pp_json *variables, const struct pp_json *values,
			   struct secret_strings *ss, struct pp_error *err)
{
	const struct pp_json *props = pp_json_get(variables, "properties");
	pp_json_foreach (r, pp_json_get(variables, "required")) {
		const struct pp_json *v =
			r->type == PP_JSON_STRING ? pp_json_get(values, r->str) : NULL;
		if (r->type == PP_JSON_STRING && (!v || v->type == PP_JSON_NULL))
			return pp_fail(err, PP_EINVALID,
				       "job variable \"%s\": required, but no value "
				       "was given",
				       r->str);
	}
	pp_json_foreach (v, values) {
		int rc = validate_value(variables, props, v, ss, err);
		if (rc)
			return rc;
	}
	return 0;
}

/* The variables a placeholder can name: schema defaults (null defaults left
 * out, as Prefect does, so their keys disappear), then each layer. */
static int build_values(const struct pp_json *variables, const struct pp_json *const layers[3],
			struct pp_json **out, struct secret_strings *ss, struct pp_error *err)
{
	static const char *const layer_names[3] = {"pool", "deployment", "run"};
	const struct pp_json *props = pp_json_get(variables, "properties");
	for (int i = 0; i < 3; i++) {
		int rc = check_layer(layers[i], layer_names[i], props, err);
		if (rc)
			return rc;
	}
	struct pp_json *values = pp_json_new(PP_JSON_OBJECT);
	if (!values)
		return PP_ENOMEM;
	int rc = 0;
	pp_json_foreach (p, props) {
		const struct pp_json *def = pp_json_get(p, "default");
		if (def && def->type != PP_JSON_NULL)
			rc = pp_json_set(values, p->key, pp_json_clone(def));
		if (rc)
			break;
	}
	for (int i = 0; i < 3 && !rc; i++)
		rc = merge_layer(values, layers[i]);
	if (rc) {
		pp_json_free(values);
		return pp_fail(err, rc, "out of memory merging job variables");
	}
	rc = validate_values(variables, values, ss, err);
	if (rc) {
		pp_json_free(values);
		return rc;
	}
	*out = values;
	return 0;
}

static int set_opt_string(struct pp_json *obj, const char *key, const char *val)
{
	return val ? pp_json_set_string(obj, key, val) : 0;
}

/* Built-in names ({{ flow_run.id }} ...), those of ctx's that are set. */
static int add_builtins(struct pp_json *builtins, const struct pp_run_ctx *ctx)
{
	const char *const ids[BUILTINS] = {ctx->flow_run_id, ctx->deployment_id, ctx->flow_id};
	const char *const labels[BUILTINS] = {ctx->flow_run_name, ctx->deployment_name,
					      ctx->flow_name, ctx->work_pool_name,
					      ctx->work_queue_name};
	for (size_t i = 0; i < BUILTINS; i++) {
		if (!ids[i] && !labels[i])
			continue;
		struct pp_json *o = pp_json_new(PP_JSON_OBJECT);
		if (!o)
			return PP_ENOMEM;
		int rc = set_opt_string(o, "id", ids[i]);
		if (!rc)
			rc = set_opt_string(o, "name", labels[i]);
		if (rc) {
			pp_json_free(o);
			return rc;
		}
		if ((rc = pp_json_set(builtins, builtin_names[i], o)))
			return rc;
	}
	return 0;
}

static bool blank(const struct pp_json *j)
{
	return !j || j->type == PP_JSON_NULL || (j->type == PP_JSON_STRING && j->len == 0);
}

/* BaseJobConfiguration coerces env values to strings (str(), so 42 -> "42",
 * true -> "True"); null stays null. */
static struct pp_json *env_value(const struct pp_json *v)
{
	if (v->type == PP_JSON_STRING || v->type == PP_JSON_NULL)
		return pp_json_clone(v);
	struct pp_buf b;
	pp_buf_init(&b, RENDERED_STRING_MAX);
	struct pp_json *s = put_py_str(&b, v, false) ? NULL : pp_json_new_stringn(b.data, b.len);
	pp_buf_free(&b);
	return s;
}

/* prepare_for_flow_run(): the env and labels Prefect adds under the user's,
 * the flow run name as the default name, and the default command. */
static int prepare_for_run(struct pp_json *cfg, const struct pp_run_ctx *ctx, struct pp_error *err)
{
	const struct pp_json *user_env = pp_json_get(cfg, "env");
	const struct pp_json *user_labels = pp_json_get(cfg, "labels");
	if (!blank(user_env) && user_env->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID,
			       "job_configuration.env: expected an object after "
			       "rendering, got %s",
			       pp_json_type_name(user_env->type));
	if (!blank(user_labels) && user_labels->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID,
			       "job_configuration.labels: expected an object after "
			       "rendering, got %s",
			       pp_json_type_name(user_labels->type));
	struct pp_json *env = pp_json_new(PP_JSON_OBJECT);
	struct pp_json *labels = pp_json_new(PP_JSON_OBJECT);
	int rc = env && labels ? 0 : PP_ENOMEM;
	if (!rc)
		rc = set_opt_string(env, "PREFECT_API_URL", ctx->api_url);
	if (!rc)
		rc = set_opt_string(env, "PREFECT_API_KEY", ctx->api_key);
	if (!rc)
		rc = set_opt_string(env, "PREFECT_API_AUTH_STRING", ctx->api_auth_string);
	if (!rc)
		rc = set_opt_string(env, "PREFECT__FLOW_RUN_ID", ctx->flow_run_id);
	if (!rc && ctx->parameters) {
		rc = set_opt_string(env, "PUSHPOOL_RUN_ID", ctx->run_id);
		if (!rc)
			rc = set_opt_string(env, "PUSHPOOL_DEPLOYMENT", ctx->deployment_name);
		if (!rc)
			rc = pp_json_set_string(env, "PUSHPOOL_PARAMETERS", ctx->parameters);
	}
	pp_json_foreach (e, user_env) {
		if (!rc)
			rc = pp_json_set(env, e->key, env_value(e));
	}
	/* Prefect drops env entries whose value is None: a run can unset a
	 * variable the pool or deployment set. */
	for (struct pp_json *e = env ? env->child : NULL, *next; e && !rc; e = next) {
		next = e->next;
		if (e->type == PP_JSON_NULL)
			pp_json_free(pp_json_detach(e));
	}
	const struct {
		const char *key, *val;
	} base_labels[] = {
		{"prefect.io/flow-run-id", ctx->flow_run_id},
		{"prefect.io/flow-run-name", ctx->flow_run_name},
		{"prefect.io/work-pool-name", ctx->work_pool_name},
		{"prefect.io/deployment-id", ctx->deployment_id},
		{"prefect.io/deployment-name", ctx->deployment_name},
		{"prefect.io/flow-id", ctx->flow_id},
		{"prefect.io/flow-name", ctx->flow_name},
	};
	for (size_t i = 0; i < sizeof(base_labels) / sizeof(base_labels[0]) && !rc; i++)
		rc = set_opt_string(labels, base_labels[i].key, base_labels[i].val);
	pp_json_foreach (l, user_labels) {
		if (!rc)
			rc = pp_json_set(labels, l->key, pp_json_clone(l));
	}
	if (rc) {
		pp_json_free(env);
		pp_json_free(labels);
		return pp_fail(err, PP_ENOMEM, "out of memory preparing the job configuration");
	}
	rc = pp_json_set(cfg, "env", env);
	if (!rc)
		rc = pp_json_set(cfg, "labels", labels);
	else
		pp_json_free(labels);
	if (!rc && blank(pp_json_get(cfg, "name")) && ctx->flow_run_name)
		rc = pp_json_set_string(cfg, "name", ctx->flow_run_name);
	if (!rc && blank(pp_json_get(cfg, "command")))
		rc = pp_json_set_string(cfg, "command", DEFAULT_COMMAND);
	return rc ? pp_fail(err, rc, "out of memory preparing the job configuration") : 0;
}

/* What a render takes from the template and the variable layers alone. */
struct render_inputs {
	struct pp_json *values;	       /* merged and validated; built-in names apart */
	struct pp_json *job_copy;      /* NULL: the template's job_configuration as is */
	struct secret_strings secrets; /* of values */
};

static void inputs_free(struct render_inputs *in)
{
	pp_json_free(in->values);
	pp_json_free(in->job_copy);
	secret_strings_free(&in->secrets);
	*in = (struct render_inputs){0};
}

static int render_inputs(const struct pp_json *tmpl, const struct pp_json *const layers[3],
			 struct render_inputs *in, struct pp_error *err)
{
	*in = (struct render_inputs){0};
	const struct pp_json *job = pp_json_get(tmpl, "job_configuration");
	if (!job || job->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID, "template: job_configuration must be an object");
	int rc = build_values(pp_json_get(tmpl, "variables"), layers, &in->values, &in->secrets,
			      err);
	if (rc) {
		inputs_free(in);
		return rc;
	}
	/* A literal env object in the template takes the variables' env on top,
	 * as from_template_and_values() does: only then is the template copied
	 * to take it. */
	const struct pp_json *tenv = pp_json_get(job, "env");
	const struct pp_json *venv = pp_json_get(in->values, "env");
	if (tenv && tenv->type == PP_JSON_OBJECT && venv && venv->type == PP_JSON_OBJECT) {
		in->job_copy = pp_json_clone(job);
		struct pp_json *copy_env = in->job_copy ? pp_json_get(in->job_copy, "env") : NULL;
		rc = copy_env ? 0 : PP_ENOMEM;
		pp_json_foreach (e, venv) {
			if (!rc)
				rc = pp_json_set(copy_env, e->key, pp_json_clone(e));
		}
	}
	if (rc) {
		inputs_free(in);
		return pp_fail(err, rc, "out of memory rendering the template");
	}
	return 0;
}

/* Render the job of in for the run ctx: *out is job_configuration before
 * prepare_for_run; *per_run says whether it read what another run may
 * have otherwise (a built-in name, the environment). */
static int render_job(const struct pp_json *tmpl, const struct render_inputs *in,
		      const struct pp_run_ctx *ctx, bool *per_run, struct pp_json **out,
		      struct pp_error *err)
{
	struct pp_error scratch = {0};
	struct render_ctx r = {.values = in->values, .run = ctx, .err = err ? err : &scratch};
	struct rendered res = {0};
	const struct pp_json *job =
		in->job_copy ? in->job_copy : pp_json_get(tmpl, "job_configuration");
	int rc = render_value(&r, job, 0, &res);
	pp_json_free(r.builtins);
	*per_run = r.per_run;
	*out = rc ? NULL : res.value;
	return rc;
}

/* prepare_for_run on job, which becomes *out (or is freed). */
static int finish(struct pp_json *job, const struct pp_run_ctx *ctx, struct pp_json **out,
		  struct pp_error *err)
{
	int rc = prepare_for_run(job, ctx, err);
	if (rc) {
		pp_json_free(job);
		return rc;
	}
	*out = job;
	return 0;
}

static const struct pp_run_ctx no_ctx;

int pp_render_job(const struct pp_json *tmpl, const struct pp_json *pool_vars,
		  const struct pp_json *deployment_vars, const struct pp_json *run_vars,
		  const struct pp_run_ctx *ctx, struct pp_json **out, struct pp_error *err)
{
	*out = NULL;
	if (!ctx)
		ctx = &no_ctx;
	const struct pp_json *const layers[3] = {pool_vars, deployment_vars, run_vars};
	struct render_inputs in;
	int rc = render_inputs(tmpl, layers, &in, err);
	if (rc)
		return rc;
	struct pp_json *job;
	bool per_run;
	rc = render_job(tmpl, &in, ctx, &per_run, &job, err);
	inputs_free(&in);
	return rc ? rc : finish(job, ctx, out, err);
}

/* Runs of a pool mostly repeat a few layers (none, or their deployment's):
 * this many of them are kept, the least recently used making room. */
#define RENDER_CACHE_ENTRIES 8

struct cache_entry {
	bool used;
	/* The key: copies of the layers, NULL for a layer not given. */
	struct pp_json *deployment_vars, *run_vars;
	struct render_inputs in;
	/* job_configuration before prepare_for_run, once the same layers are
	 * rendered again and read nothing of the run's: a run's own variables
	 * rendered once are never copied. NULL: not (yet). */
	struct pp_json *job;
	unsigned long last_use;
};

struct pp_render_cache {
	const struct pp_json *tmpl, *pool_vars; /* borrowed */
	unsigned long uses;
	struct cache_entry entries[RENDER_CACHE_ENTRIES];
};

struct pp_render_cache *pp_render_cache_new(const struct pp_json *tmpl,
					    const struct pp_json *pool_vars)
{
	struct pp_render_cache *c = calloc(1, sizeof(*c));
	if (c) {
		c->tmpl = tmpl;
		c->pool_vars = pool_vars;
	}
	return c;
}

static void entry_free(struct cache_entry *e)
{
	pp_json_free(e->deployment_vars);
	pp_json_free(e->run_vars);
	inputs_free(&e->in);
	pp_json_free(e->job);
	*e = (struct cache_entry){0};
}

void pp_render_cache_free(struct pp_render_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < RENDER_CACHE_ENTRIES; i++)
		entry_free(&c->entries[i]);
	free(c);
}

/* The entry of these layers, or NULL (then *room is the slot to fill). */
static struct cache_entry *cache_find(struct pp_render_cache *c,
				      const struct pp_json *deployment_vars,
				      const struct pp_json *run_vars, struct cache_entry **room)
{
	*room = &c->entries[0];
	for (size_t i = 0; i < RENDER_CACHE_ENTRIES; i++) {
		struct cache_entry *e = &c->entries[i];
		if (e->used && pp_json_identical(e->deployment_vars, deployment_vars) &&
		    pp_json_identical(e->run_vars, run_vars))
			return e;
		if ((*room)->used && (!e->used || e->last_use < (*room)->last_use))
			*room = e;
	}
	return NULL;
}

static int cache_fill(struct pp_render_cache *c, struct cache_entry *e,
		      const struct pp_json *deployment_vars, const struct pp_json *run_vars,
		      struct pp_error *err)
{
	const struct pp_json *const layers[3] = {c->pool_vars, deployment_vars, run_vars};
	struct render_inputs in;
	int rc = render_inputs(c->tmpl, layers, &in, err);
	if (rc)
		return rc;
	entry_free(e);
	e->in = in;
	e->deployment_vars = pp_json_clone(deployment_vars);
	e->run_vars = pp_json_clone(run_vars);
	if ((deployment_vars && !e->deployment_vars) || (run_vars && !e->run_vars)) {
		entry_free(e);
		return pp_fail(err, PP_ENOMEM, "out of memory rendering the template");
	}
	e->used = true;
	return 0;
}

/* Validating registered the strings of secret variables with the log's
 * redaction, whose ring of them may have let a cache's go since. */
static void register_secrets(const struct secret_strings *ss)
{
	for (size_t i = 0; i < ss->n; i++)
		pp_secret_register_rotating(ss->v[i]);
}

int pp_render_job_cached(struct pp_render_cache *c, const struct pp_json *deployment_vars,
			 const struct pp_json *run_vars, const struct pp_run_ctx *ctx,
			 struct pp_json **out, struct pp_error *err)
{
	*out = NULL;
	if (!ctx)
		ctx = &no_ctx;
	struct cache_entry *room;
	struct cache_entry *e = cache_find(c, deployment_vars, run_vars, &room);
	bool again = e != NULL;
	int rc = 0;
	if (again) {
		register_secrets(&e->in.secrets);
	} else {
		e = room;
		rc = cache_fill(c, e, deployment_vars, run_vars, err);
	}
	if (rc)
		return rc;
	e->last_use = ++c->uses;
	struct pp_json *job;
	if (e->job) {
		job = pp_json_clone(e->job);
		if (!job)
			return pp_fail(err, PP_ENOMEM, "out of memory rendering the template");
		return finish(job, ctx, out, err);
	}
	bool per_run;
	rc = render_job(c->tmpl, &e->in, ctx, &per_run, &job, err);
	if (rc)
		return rc;
	if (again && !per_run) {
		e->job = job;
		job = pp_json_clone(e->job);
		if (!job)
			return pp_fail(err, PP_ENOMEM, "out of memory rendering the template");
	}
	return finish(job, ctx, out, err);
}

int pp_vars_set_kv(struct pp_json *vars, const char *kv, struct pp_error *err)
{
	const char *eq = strchr(kv, '=');
	if (!eq)
		return pp_fail(err, PP_EINVALID, "job variable \"%s\": expected key=value", kv);
	if (eq == kv)
		return pp_fail(err, PP_EINVALID, "\"%s\": empty job variable name", kv);
	if (!vars || vars->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID, "job variables must be an object");
	char *key = strndup(kv, (size_t)(eq - kv));
	if (!key)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	const char *text = eq + 1;
	struct pp_json *val = NULL;
	/* Parsed inside brackets so that bare scalars (1024, true) are JSON text
	 * too; anything else (a bare word, a path) is the string itself. */
	struct pp_buf wrapped;
	pp_buf_init(&wrapped, strlen(text) + 3);
	if (!pp_buf_putc(&wrapped, '[') && !pp_buf_puts(&wrapped, text) &&
	    !pp_buf_putc(&wrapped, ']')) {
		struct pp_json *arr = NULL;
		struct pp_error ignored = {0};
		if (!pp_json_parse(wrapped.data, wrapped.len, NULL, &arr, &ignored) &&
		    arr->count == 1)
			val = pp_json_detach(arr->child);
		pp_json_free(arr);
	}
	pp_buf_free(&wrapped);
	if (!val)
		val = pp_json_new_string(text);
	int rc = pp_json_set(vars, key, val);
	free(key);
	return rc ? pp_fail(err, rc, "out of memory setting a job variable") : 0;
}
