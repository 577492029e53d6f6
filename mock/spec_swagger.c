/* ARM request bodies judged against the resource provider's swagger 2.0
 * file (ACI's containerinstance-2023-05-01.json): the operation's body
 * parameter schema, with $ref and allOf resolved, object members known,
 * required members present, JSON types and enums as declared. Messages
 * follow the deserializer ARM resource providers answer with
 * (InvalidRequestContent: "... Path 'properties.containers[0]...'").
 * readOnly members are accepted and ignored, as ARM does on PUT.
 *
 * ARM's platform rules are in no swagger; they are stated here from
 * Microsoft's documentation (tests/data/cloud-specs/SOURCES.md quotes it):
 * tag names without < > % & \ ? /, at most 50 tags, names up to 512 and
 * values up to 256 characters; container group and container names of 1-63
 * lowercase letters, digits and single hyphens. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock/spec.h"

#define MAX_DEPTH     32
#define ARM_MAX_TAGS  50
#define ARM_TAG_NAME  512
#define ARM_TAG_VALUE 256
#define ARM_NAME_MAX  63
#define TAG_RESERVED  "<>%&\\?/"

struct pp_spec_swagger {
	struct pp_json *doc;
	const struct pp_json *definitions, *paths;
};

void pp_spec_swagger_free(struct pp_spec_swagger *s)
{
	if (!s)
		return;
	pp_json_free(s->doc);
	free(s);
}

int pp_spec_swagger_load(const char *text, size_t len, struct pp_spec_swagger **out,
			 struct pp_error *err)
{
	struct pp_spec_swagger *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return pp_fail(err, PP_ENOMEM, "swagger: out of memory");
	if (pp_json_parse(text, len, NULL, &s->doc, err) < 0) {
		free(s);
		return pp_error_prefix(err, "swagger: ");
	}
	s->definitions = pp_json_get(s->doc, "definitions");
	s->paths = pp_json_get(s->doc, "paths");
	if (!pp_json_is(s->definitions, PP_JSON_OBJECT) || !pp_json_is(s->paths, PP_JSON_OBJECT)) {
		pp_spec_swagger_free(s);
		return pp_fail(err, PP_EINVALID, "swagger: no definitions or paths");
	}
	*out = s;
	return 0;
}

/* "#/definitions/X" -> the schema, and its name in *name. */
static const struct pp_json *deref(const struct pp_spec_swagger *s, const struct pp_json *schema,
				   const char **name)
{
	for (int hops = 0; hops < 16; hops++) {
		const char *ref = pp_json_get_string(schema, "$ref");

		if (!ref)
			return schema;
		if (strncmp(ref, "#/definitions/", 14) != 0)
			return NULL;
		*name = ref + 14;
		schema = pp_json_get(s->definitions, ref + 14);
	}
	return NULL;
}

struct walk {
	const struct pp_spec_swagger *s;
	struct pp_spec_report *rep;
};

static void bad_content(struct walk *w, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void bad_content(struct walk *w, const char *path, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	pp_spec_report_add(w->rep, "InvalidRequestContent", path,
			   "The request content was invalid and could not be deserialized: "
			   "'%s Path '%s'.'",
			   what, path);
}

/* The member schema of name in schema, looking through allOf. */
static const struct pp_json *find_property(struct walk *w, const struct pp_json *schema,
					   const char *name, int depth)
{
	const struct pp_json *p = pp_json_get(pp_json_get(schema, "properties"), name);
	const char *ignored;

	if (p || depth > MAX_DEPTH)
		return p;
	pp_json_foreach (part, pp_json_get(schema, "allOf")) {
		p = find_property(w, deref(w->s, part, &ignored), name, depth + 1);
		if (p)
			return p;
	}
	return NULL;
}

static void check_required(struct walk *w, const struct pp_json *schema, const struct pp_json *v,
			   const char *path, int depth)
{
	const char *ignored;

	if (depth > MAX_DEPTH)
		return;
	pp_json_foreach (r, pp_json_get(schema, "required")) {
		if (r->str && !pp_json_get(v, r->str))
			bad_content(w, path, "Required property '%s' not found in JSON.", r->str);
	}
	pp_json_foreach (part, pp_json_get(schema, "allOf"))
		check_required(w, deref(w->s, part, &ignored), v, path, depth + 1);
}

static bool has_members(const struct pp_json *schema)
{
	return pp_json_get(schema, "properties") || pp_json_get(schema, "allOf");
}

static void check_schema(struct walk *w, const struct pp_json *schema, const char *type_name,
			 const struct pp_json *v, const char *path, int depth);

static void check_object(struct walk *w, const struct pp_json *schema, const char *type_name,
			 const struct pp_json *v, const char *path, int depth)
{
	const struct pp_json *extra = pp_json_get(schema, "additionalProperties");
	char sub[512];

	if (!pp_json_is(v, PP_JSON_OBJECT)) {
		bad_content(w, path, "Unexpected %s when reading %s, expected an object.",
			    pp_json_type_name(v->type), type_name);
		return;
	}
	check_required(w, schema, v, path, 0);
	pp_json_foreach (m, v) {
		const struct pp_json *ms = find_property(w, schema, m->key, 0);

		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", m->key);
		if (!ms && pp_json_is(extra, PP_JSON_OBJECT)) {
			check_schema(w, extra, type_name, m, sub, depth + 1);
		} else if (!ms && has_members(schema)) {
			bad_content(w, sub, "Could not find member '%s' on object of type '%s'.",
				    m->key, type_name);
		} else if (ms && !pp_json_get_bool(ms, "readOnly", false)) {
			check_schema(w, ms, m->key, m, sub, depth + 1);
		}
	}
}

static void check_schema(struct walk *w, const struct pp_json *schema, const char *type_name,
			 const struct pp_json *v, const char *path, int depth)
{
	const char *type, *fmt, *enum_name;
	const struct pp_json *en;
	char sub[512];

	schema = deref(w->s, schema, &type_name);
	if (!schema || depth > MAX_DEPTH) {
		bad_content(w, path, "The schema of %s cannot be resolved.", type_name);
		return;
	}
	if (pp_json_is(v, PP_JSON_NULL))
		return; /* ARM reads null as absent */
	type = pp_json_get_string(schema, "type");
	if (!type && has_members(schema))
		type = "object";
	if (!type)
		return; /* an untyped schema ("settings") takes any JSON */
	fmt = pp_json_get_string(schema, "format");
	if (strcmp(type, "object") == 0) {
		check_object(w, schema, type_name, v, path, depth);
	} else if (strcmp(type, "array") == 0) {
		size_t i = 0;

		if (!pp_json_is(v, PP_JSON_ARRAY)) {
			bad_content(w, path, "Unexpected %s when reading an array of %s.",
				    pp_json_type_name(v->type), type_name);
			return;
		}
		pp_json_foreach (e, v) {
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i++);
			check_schema(w, pp_json_get(schema, "items"), type_name, e, sub, depth + 1);
		}
	} else if (strcmp(type, "string") == 0) {
		if (!pp_json_is(v, PP_JSON_STRING)) {
			bad_content(w, path, "Error converting value %s to type 'System.String'.",
				    v->str ? v->str : pp_json_type_name(v->type));
			return;
		}
		en = pp_json_get(schema, "enum");
		enum_name = pp_json_get_string(pp_json_get(schema, "x-ms-enum"), "name");
		if (en) {
			bool found = false;

			pp_json_foreach (e, en)
				found = found || (e->str && strcmp(e->str, v->str) == 0);
			if (!found)
				bad_content(w, path, "Error converting value \"%s\" to type '%s'.",
					    v->str, enum_name ? enum_name : type_name);
		}
	} else if (strcmp(type, "integer") == 0) {
		bool i32 = !fmt || strcmp(fmt, "int32") == 0;

		if (!pp_json_is(v, PP_JSON_NUMBER) || v->num != (double)(long long)v->num ||
		    (i32 && (v->num > 2147483647.0 || v->num < -2147483648.0)))
			bad_content(w, path, "Error converting value %s to type '%s'.",
				    v->str ? v->str : pp_json_type_name(v->type),
				    i32 ? "System.Int32" : "System.Int64");
	} else if (strcmp(type, "number") == 0) {
		if (!pp_json_is(v, PP_JSON_NUMBER))
			bad_content(w, path, "Error converting value %s to type 'System.Double'.",
				    v->str ? v->str : pp_json_type_name(v->type));
	} else if (strcmp(type, "boolean") == 0) {
		if (!pp_json_is(v, PP_JSON_BOOL))
			bad_content(w, path, "Error converting value %s to type 'System.Boolean'.",
				    v->str ? v->str : pp_json_type_name(v->type));
	}
}

static const struct pp_json *body_schema(const struct pp_spec_swagger *s, const char *operation_id)
{
	pp_json_foreach (path, s->paths)
		pp_json_foreach (op, path) {
			const char *id = pp_json_get_string(op, "operationId");

			if (!id || strcmp(id, operation_id) != 0)
				continue;
			pp_json_foreach (param, pp_json_get(op, "parameters")) {
				const char *in = pp_json_get_string(param, "in");

				if (in && strcmp(in, "body") == 0)
					return pp_json_get(param, "schema");
			}
			return NULL;
		}
	return NULL;
}

/* ---- ARM platform rules ---- */

static size_t chars(const char *s)
{
	size_t c = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			c++;
	return c;
}

static void check_tags(const struct pp_json *tags, struct pp_spec_report *rep)
{
	if (!pp_json_is(tags, PP_JSON_OBJECT))
		return;
	if (tags->count > ARM_MAX_TAGS)
		pp_spec_report_add(rep, "InvalidTagCount", "tags",
				   "The number of tags (%zu) exceeds the limit of %d tags per "
				   "resource.",
				   tags->count, ARM_MAX_TAGS);
	pp_json_foreach (t, tags) {
		bool reserved = strpbrk(t->key, TAG_RESERVED) != NULL;
		char path[600];

		for (const char *c = t->key; *c; c++)
			reserved = reserved || iscntrl((unsigned char)*c);
		snprintf(path, sizeof(path), "tags.%s", t->key);
		if (reserved)
			pp_spec_report_add(rep, "InvalidTagNameCharacters", path,
					   "The tag names '%s' have reserved characters "
					   "'<,>,%%,&,\\,?,/' or control characters.",
					   t->key);
		if (chars(t->key) > ARM_TAG_NAME)
			pp_spec_report_add(rep, "InvalidTagNameLength", path,
					   "The tag name '%.64s...' exceeds the maximum length of "
					   "%d characters.",
					   t->key, ARM_TAG_NAME);
		if (pp_json_is(t, PP_JSON_STRING) && chars(t->str) > ARM_TAG_VALUE)
			pp_spec_report_add(rep, "InvalidTagValueLength", path,
					   "The value of tag '%s' exceeds the maximum length of %d "
					   "characters.",
					   t->key, ARM_TAG_VALUE);
	}
}

size_t pp_spec_arm_name_check(const char *kind, const char *name, struct pp_spec_report *rep)
{
	size_t n = strlen(name);
	bool ok = n >= 1 && n <= ARM_NAME_MAX && name[0] != '-' && name[n - 1] != '-' &&
		  !strstr(name, "--");
	bool container = strcmp(kind, "container") == 0;

	for (size_t i = 0; ok && i < n; i++)
		ok = islower((unsigned char)name[i]) || isdigit((unsigned char)name[i]) ||
		     name[i] == '-';
	if (ok && container)
		ok = islower((unsigned char)name[0]);
	if (ok)
		return 0;
	if (container)
		pp_spec_report_add(
			rep, "InvalidContainerName", "name",
			"The container name '%s' is invalid. A valid container name "
			"must consist of lower case alphanumeric characters or '-', start "
			"with an alphabetic character, and end with an alphanumeric "
			"character and cannot contain '--'. The length must be between 1 "
			"and %d.",
			name, ARM_NAME_MAX);
	else
		pp_spec_report_add(rep, "InvalidContainerGroupName", "name",
				   "The container group name '%s' is invalid. It can contain only "
				   "lowercase letters, numbers and hyphens, must not start or end "
				   "with a hyphen nor hold two in a row, and is 1 to %d characters "
				   "long.",
				   name, ARM_NAME_MAX);
	return 1;
}

static void check_container_names(const struct pp_json *body, struct pp_spec_report *rep)
{
	static const char *const lists[] = {"containers", "initContainers"};
	const struct pp_json *props = pp_json_get(body, "properties");

	for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++) {
		size_t i = 0;

		pp_json_foreach (c, pp_json_get(props, lists[l])) {
			const char *name = pp_json_get_string(c, "name");
			size_t before = rep->n;

			if (name && pp_spec_arm_name_check("container", name, rep) &&
			    rep->n > before)
				snprintf(rep->v[before].field, sizeof(rep->v[before].field),
					 "properties.%s[%zu].name", lists[l], i);
			i++;
		}
	}
}

size_t pp_spec_swagger_check(const struct pp_spec_swagger *s, const char *operation_id,
			     const struct pp_json *body, struct pp_spec_report *rep)
{
	const struct pp_json *schema = body_schema(s, operation_id);
	struct walk w = {.s = s, .rep = rep};
	const char *name = "body";

	pp_spec_report_init(rep);
	if (!schema) /* an operation without a body parameter: nothing to judge */
		return 0;
	check_schema(&w, schema, name, body, "", 0);
	check_tags(pp_json_get(body, "tags"), rep);
	check_container_names(body, rep);
	return rep->total;
}

/* The operation's object in paths, or NULL. */
static const struct pp_json *operation(const struct pp_spec_swagger *s, const char *operation_id)
{
	pp_json_foreach (path, s->paths)
		pp_json_foreach (op, path) {
			const char *id = pp_json_get_string(op, "operationId");

			if (id && strcmp(id, operation_id) == 0)
				return op;
		}
	return NULL;
}

size_t pp_spec_swagger_check_query(const struct pp_spec_swagger *s, const char *operation_id,
				   const char *(*arg)(const void *ctx, const char *name),
				   const void *ctx, struct pp_spec_report *rep)
{
	const struct pp_json *op = operation(s, operation_id);

	pp_spec_report_init(rep);
	if (!op) {
		pp_spec_report_add(rep, "InvalidResourceType", operation_id,
				   "The operation %s is not in the swagger.", operation_id);
		return rep->total;
	}
	pp_json_foreach (param, pp_json_get(op, "parameters")) {
		const char *in = pp_json_get_string(param, "in");
		const char *name = pp_json_get_string(param, "name");
		const char *type = pp_json_get_string(param, "type");
		const char *v = name ? arg(ctx, name) : NULL;
		char *end;

		if (!in || strcmp(in, "query") || !v || !type)
			continue;
		if (!strcmp(type, "integer")) {
			long long n = strtoll(v, &end, 10);
			bool i32 = !pp_json_get_string(param, "format") ||
				   strcmp(pp_json_get_string(param, "format"), "int32") == 0;

			if (!*v || *end || (i32 && (n < INT32_MIN || n > INT32_MAX)))
				pp_spec_report_add(
					rep, "InvalidParameter", name,
					"The value '%s' is not valid for query parameter "
					"'%s' (%s).",
					v, name, i32 ? "int32" : "integer");
		} else if (!strcmp(type, "boolean") && strcmp(v, "true") && strcmp(v, "false")) {
			pp_spec_report_add(rep, "InvalidParameter", name,
					   "The value '%s' is not valid for query parameter '%s' "
					   "(boolean).",
					   v, name);
		}
	}
	return rep->total;
}
