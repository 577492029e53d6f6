/* Requests judged against protobuf definitions: a FileDescriptorSet that
 * protoc compiled from the clouds' own .proto files at build time
 * (mk/cloud-specs.mk), read here with lib/pb.c's wire reader. Two checks:
 *  - JSON (Google REST transcoding): proto3 JSON mapping, unknown names
 *    refused, google.api.field_behavior REQUIRED present and OUTPUT_ONLY
 *    absent, enums by name or number, well-known types (Duration,
 *    Timestamp, wrappers, Struct, Empty...) in their JSON forms. The
 *    method's google.api.http option says which request field the body is.
 *  - wire (gRPC): every field number declared, every wire type the declared
 *    one (packed repeated scalars allowed), strings UTF-8, nested messages
 *    checked the same way.
 * Descriptor fields used (descriptor.proto numbers) are named where read. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/pb.h"
#include "mock/spec.h"

#define MAX_DEPTH 48

/* FieldDescriptorProto.Type */
enum ftype {
	T_DOUBLE = 1,
	T_FLOAT = 2,
	T_INT64 = 3,
	T_UINT64 = 4,
	T_INT32 = 5,
	T_FIXED64 = 6,
	T_FIXED32 = 7,
	T_BOOL = 8,
	T_STRING = 9,
	T_GROUP = 10,
	T_MESSAGE = 11,
	T_BYTES = 12,
	T_UINT32 = 13,
	T_ENUM = 14,
	T_SFIXED32 = 15,
	T_SFIXED64 = 16,
	T_SINT32 = 17,
	T_SINT64 = 18,
};
#define LABEL_REPEATED	   3
#define BEHAVIOR_REQUIRED  2 /* google.api.FieldBehavior */
#define BEHAVIOR_OUTPUT	   3
#define EXT_FIELD_BEHAVIOR 1052	    /* FieldOptions extension, field_behavior.proto */
#define EXT_HTTP	   72295728 /* MethodOptions extension, annotations.proto */

struct pmsg;
struct penum;

struct pfield {
	char *name, *json_name, *type_name;
	uint32_t number;
	int label, type;
	bool required, output_only;
	const struct pmsg *msg;
	const struct penum *en;
};

struct pmsg {
	char *full; /* ".pkg.Outer.Inner" as type_name spells it */
	struct pfield *fields;
	size_t nfields;
	bool map_entry;
};

struct pvalue {
	char *name;
	long number;
};

struct penum {
	char *full;
	struct pvalue *values;
	size_t nvalues;
};

struct pmethod {
	char *full;	      /* "pkg.Service.Method" */
	char *input;	      /* ".pkg.Request" */
	char *body;	      /* google.api.http body: NULL none, "*" or a field */
	char *path_fields[4]; /* fields bound in the http path template */
	const struct pmsg *in;
};

struct pp_spec_proto {
	struct pmsg *msgs;
	size_t nmsgs, cmsgs;
	struct penum *enums;
	size_t nenums, cenums;
	struct pmethod *methods;
	size_t nmethods, cmethods;
};

/* ---- reading the descriptor set ---- */

static char *dup_field(const struct pp_pb_field *f)
{
	char *s = malloc(f->len + 1);

	if (s) {
		memcpy(s, f->data, f->len);
		s[f->len] = '\0';
	}
	return s;
}

static char *join_name(const char *scope, const struct pp_pb_field *f)
{
	size_t n = strlen(scope) + 1 + f->len + 1;
	char *s = malloc(n);

	if (s)
		snprintf(s, n, "%s.%.*s", scope, (int)f->len, (const char *)f->data);
	return s;
}

static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	void *p;
	size_t c;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 64;
	p = realloc(*arr, c * size);
	if (!p)
		return PP_ENOMEM;
	*arr = p;
	*cap = c;
	return 0;
}

#define NOMEM(err) pp_fail(err, PP_ENOMEM, "descriptor set: out of memory")

/* FieldOptions: 1052 field_behavior, packed or not. */
static int read_field_options(struct pfield *pf, const uint8_t *p, size_t len, struct pp_error *err)
{
	struct pp_pb_reader r;
	struct pp_pb_field f;
	int rc;

	pp_pb_reader_init(&r, p, len);
	while ((rc = pp_pb_next(&r, &f, err)) == 1) {
		if (f.num != EXT_FIELD_BEHAVIOR)
			continue;
		if (f.wire == PP_PB_VARINT) {
			pf->required |= f.u64 == BEHAVIOR_REQUIRED;
			pf->output_only |= f.u64 == BEHAVIOR_OUTPUT;
		} else if (f.wire == PP_PB_LEN) {
			for (size_t i = 0; i < f.len; i++) { /* values < 128: one byte each */
				pf->required |= f.data[i] == BEHAVIOR_REQUIRED;
				pf->output_only |= f.data[i] == BEHAVIOR_OUTPUT;
			}
		}
	}
	return rc;
}

/* FieldDescriptorProto: 1 name, 3 number, 4 label, 5 type, 6 type_name,
 * 8 options, 10 json_name. */
static int read_field(struct pfield *pf, const uint8_t *p, size_t len, struct pp_error *err)
{
	struct pp_pb_reader r;
	struct pp_pb_field f;
	int rc;

	pp_pb_reader_init(&r, p, len);
	while ((rc = pp_pb_next(&r, &f, err)) == 1) {
		if (f.num == 1 && f.wire == PP_PB_LEN && !(pf->name = dup_field(&f)))
			return NOMEM(err);
		else if (f.num == 3 && f.wire == PP_PB_VARINT)
			pf->number = (uint32_t)f.u64;
		else if (f.num == 4 && f.wire == PP_PB_VARINT)
			pf->label = (int)f.u64;
		else if (f.num == 5 && f.wire == PP_PB_VARINT)
			pf->type = (int)f.u64;
		else if (f.num == 6 && f.wire == PP_PB_LEN && !(pf->type_name = dup_field(&f)))
			return NOMEM(err);
		else if (f.num == 8 && f.wire == PP_PB_LEN &&
			 read_field_options(pf, f.data, f.len, err) < 0)
			return PP_EINVALID;
		else if (f.num == 10 && f.wire == PP_PB_LEN && !(pf->json_name = dup_field(&f)))
			return NOMEM(err);
	}
	if (rc == 0 && !pf->json_name && pf->name && !(pf->json_name = strdup(pf->name)))
		return NOMEM(err);
	return rc;
}

/* EnumDescriptorProto: 1 name, 2 value {1 name, 2 number}. */
static int read_enum(struct pp_spec_proto *sp, const char *scope, const uint8_t *p, size_t len,
		     struct pp_error *err)
{
	struct pp_pb_reader r;
	struct pp_pb_field f;
	struct penum *e;
	int rc;

	if (grow((void **)&sp->enums, &sp->cenums, sp->nenums, sizeof(*sp->enums)))
		return NOMEM(err);
	e = &sp->enums[sp->nenums++];
	memset(e, 0, sizeof(*e));
	pp_pb_reader_init(&r, p, len);
	while ((rc = pp_pb_next(&r, &f, err)) == 1) {
		if (f.num == 1 && f.wire == PP_PB_LEN && !(e->full = join_name(scope, &f)))
			return NOMEM(err);
		if (f.num == 2 && f.wire == PP_PB_LEN) {
			struct pp_pb_reader vr;
			struct pp_pb_field vf;
			struct pvalue *v;
			void *grown = realloc(e->values, (e->nvalues + 1) * sizeof(*e->values));

			if (!grown)
				return NOMEM(err);
			e->values = grown;
			v = &e->values[e->nvalues++];
			memset(v, 0, sizeof(*v));
			pp_pb_reader_init(&vr, f.data, f.len);
			while ((rc = pp_pb_next(&vr, &vf, err)) == 1) {
				if (vf.num == 1 && vf.wire == PP_PB_LEN &&
				    !(v->name = dup_field(&vf)))
					return NOMEM(err);
				if (vf.num == 2 && vf.wire == PP_PB_VARINT)
					v->number = (long)(int32_t)vf.u64;
			}
			if (rc < 0)
				return rc;
		}
	}
	return rc < 0 ? rc : (e->full ? 0 : pp_fail(err, PP_EINVALID, "enum without a name"));
}

/* DescriptorProto: 1 name, 2 field, 3 nested_type, 4 enum_type, 7 options
 * (MessageOptions 7 map_entry). */
static int read_message(struct pp_spec_proto *sp, const char *scope, const uint8_t *p, size_t len,
			struct pp_error *err)
{
	struct pp_pb_reader r;
	struct pp_pb_field f;
	size_t idx;
	char *full = NULL;
	int rc;

	/* The name comes first in protoc's output, but do not rely on it. */
	pp_pb_reader_init(&r, p, len);
	while ((rc = pp_pb_next(&r, &f, err)) == 1)
		if (f.num == 1 && f.wire == PP_PB_LEN)
			full = join_name(scope, &f);
	if (rc < 0 || !full) {
		free(full);
		return rc < 0 ? rc : pp_fail(err, PP_EINVALID, "message without a name");
	}
	if (grow((void **)&sp->msgs, &sp->cmsgs, sp->nmsgs, sizeof(*sp->msgs))) {
		free(full);
		return NOMEM(err);
	}
	idx = sp->nmsgs++;
	memset(&sp->msgs[idx], 0, sizeof(sp->msgs[idx]));
	sp->msgs[idx].full = full;
	pp_pb_reader_init(&r, p, len);
	while ((rc = pp_pb_next(&r, &f, err)) == 1) {
		if (f.num == 2 && f.wire == PP_PB_LEN) {
			struct pmsg *m = &sp->msgs[idx];
			void *grown = realloc(m->fields, (m->nfields + 1) * sizeof(*m->fields));

			if (!grown)
				return NOMEM(err);
			m->fields = grown;
			memset(&m->fields[m->nfields], 0, sizeof(m->fields[0]));
			rc = read_field(&m->fields[m->nfields++], f.data, f.len, err);
		} else if (f.num == 3 && f.wire == PP_PB_LEN) {
			rc = read_message(sp, full, f.data, f.len, err); /* may move sp->msgs */
		} else if (f.num == 4 && f.wire == PP_PB_LEN) {
			rc = read_enum(sp, full, f.data, f.len, err);
		} else if (f.num == 7 && f.wire == PP_PB_LEN) {
			struct pp_pb_reader orr;
			struct pp_pb_field of;

			pp_pb_reader_init(&orr, f.data, f.len);
			while ((rc = pp_pb_next(&orr, &of, err)) == 1)
				if (of.num == 7 && of.wire == PP_PB_VARINT)
					sp->msgs[idx].map_entry = of.u64 != 0;
		}
		if (rc < 0)
			return rc;
	}
	return rc;
}

/* HttpRule: 2 get, 3 put, 4 post, 5 delete, 6 patch (path templates), 7 body. */
static int read_http_rule(struct pmethod *pm, const uint8_t *p, size_t len, struct pp_error *err)
{
	struct pp_pb_reader r;
	struct pp_pb_field f;
	int rc;

	pp_pb_reader_init(&r, p, len);
	while ((rc = pp_pb_next(&r, &f, err)) == 1) {
		if (f.num == 7 && f.wire == PP_PB_LEN && !(pm->body = dup_field(&f)))
			return NOMEM(err);
		if (f.num >= 2 && f.num <= 6 && f.wire == PP_PB_LEN) {
			size_t n = 0;

			/* "{name=projects/...}" or "{name}": each binds a field. */
			for (size_t i = 0; i < f.len && n < 4; i++) {
				size_t j = i + 1;

				if (f.data[i] != '{')
					continue;
				while (j < f.len && f.data[j] != '=' && f.data[j] != '}')
					j++;
				pm->path_fields[n] = malloc(j - i);
				if (!pm->path_fields[n])
					return NOMEM(err);
				memcpy(pm->path_fields[n], f.data + i + 1, j - i - 1);
				pm->path_fields[n++][j - i - 1] = '\0';
			}
		}
	}
	return rc;
}

/* ServiceDescriptorProto: 1 name, 2 method {1 name, 2 input_type, 4 options}. */
static int read_service(struct pp_spec_proto *sp, const char *pkg, const uint8_t *p, size_t len,
			struct pp_error *err)
{
	struct pp_pb_reader r;
	struct pp_pb_field f;
	char *svc = NULL;
	int rc;

	pp_pb_reader_init(&r, p, len);
	while ((rc = pp_pb_next(&r, &f, err)) == 1)
		if (f.num == 1 && f.wire == PP_PB_LEN && !svc)
			svc = join_name(pkg, &f);
	if (rc < 0 || !svc) {
		free(svc);
		return rc < 0 ? rc : pp_fail(err, PP_EINVALID, "service without a name");
	}
	pp_pb_reader_init(&r, p, len);
	while (rc >= 0 && (rc = pp_pb_next(&r, &f, err)) == 1) {
		struct pp_pb_reader mr;
		struct pp_pb_field mf;
		struct pmethod *pm;

		if (f.num != 2 || f.wire != PP_PB_LEN)
			continue;
		if (grow((void **)&sp->methods, &sp->cmethods, sp->nmethods, sizeof(*pm))) {
			rc = NOMEM(err);
			break;
		}
		pm = &sp->methods[sp->nmethods++];
		memset(pm, 0, sizeof(*pm));
		pp_pb_reader_init(&mr, f.data, f.len);
		while ((rc = pp_pb_next(&mr, &mf, err)) == 1) {
			if (mf.num == 1 && mf.wire == PP_PB_LEN &&
			    !(pm->full = join_name(svc, &mf)))
				rc = NOMEM(err);
			else if (mf.num == 2 && mf.wire == PP_PB_LEN &&
				 !(pm->input = dup_field(&mf)))
				rc = NOMEM(err);
			else if (mf.num == 4 && mf.wire == PP_PB_LEN) {
				struct pp_pb_reader orr;
				struct pp_pb_field of;

				pp_pb_reader_init(&orr, mf.data, mf.len);
				while ((rc = pp_pb_next(&orr, &of, err)) == 1)
					if (of.num == EXT_HTTP && of.wire == PP_PB_LEN &&
					    read_http_rule(pm, of.data, of.len, err) < 0)
						rc = PP_EINVALID;
			}
			if (rc < 0)
				break;
		}
	}
	free(svc);
	return rc;
}

/* FileDescriptorProto: 2 package, 4 message_type, 5 enum_type, 6 service. */
static int read_file(struct pp_spec_proto *sp, const uint8_t *p, size_t len, struct pp_error *err)
{
	struct pp_pb_reader r;
	struct pp_pb_field f;
	char scope[256] = "", pkg[256] = "";
	int rc;

	pp_pb_reader_init(&r, p, len);
	while ((rc = pp_pb_next(&r, &f, err)) == 1)
		if (f.num == 2 && f.wire == PP_PB_LEN && f.len < sizeof(pkg) - 2) {
			snprintf(scope, sizeof(scope), ".%.*s", (int)f.len, (const char *)f.data);
			snprintf(pkg, sizeof(pkg), "%.*s", (int)f.len, (const char *)f.data);
		}
	if (rc < 0)
		return rc;
	pp_pb_reader_init(&r, p, len);
	while ((rc = pp_pb_next(&r, &f, err)) == 1) {
		if (f.wire != PP_PB_LEN)
			continue;
		if (f.num == 4)
			rc = read_message(sp, scope, f.data, f.len, err);
		else if (f.num == 5)
			rc = read_enum(sp, scope, f.data, f.len, err);
		else if (f.num == 6)
			rc = read_service(sp, pkg, f.data, f.len, err);
		if (rc < 0)
			return rc;
	}
	return rc;
}

static int cmp_msg(const void *a, const void *b)
{
	return strcmp(((const struct pmsg *)a)->full, ((const struct pmsg *)b)->full);
}

static int cmp_enum(const void *a, const void *b)
{
	return strcmp(((const struct penum *)a)->full, ((const struct penum *)b)->full);
}

static const struct pmsg *find_msg(const struct pp_spec_proto *sp, const char *full)
{
	struct pmsg key = {.full = (char *)(uintptr_t)full};

	return full ? bsearch(&key, sp->msgs, sp->nmsgs, sizeof(key), cmp_msg) : NULL;
}

static const struct penum *find_enum(const struct pp_spec_proto *sp, const char *full)
{
	struct penum key = {.full = (char *)(uintptr_t)full};

	return full ? bsearch(&key, sp->enums, sp->nenums, sizeof(key), cmp_enum) : NULL;
}

void pp_spec_proto_free(struct pp_spec_proto *sp)
{
	if (!sp)
		return;
	for (size_t i = 0; i < sp->nmsgs; i++) {
		for (size_t j = 0; j < sp->msgs[i].nfields; j++) {
			free(sp->msgs[i].fields[j].name);
			free(sp->msgs[i].fields[j].json_name);
			free(sp->msgs[i].fields[j].type_name);
		}
		free(sp->msgs[i].fields);
		free(sp->msgs[i].full);
	}
	for (size_t i = 0; i < sp->nenums; i++) {
		for (size_t j = 0; j < sp->enums[i].nvalues; j++)
			free(sp->enums[i].values[j].name);
		free(sp->enums[i].values);
		free(sp->enums[i].full);
	}
	for (size_t i = 0; i < sp->nmethods; i++) {
		free(sp->methods[i].full);
		free(sp->methods[i].input);
		free(sp->methods[i].body);
		for (size_t j = 0; j < 4; j++)
			free(sp->methods[i].path_fields[j]);
	}
	free(sp->msgs);
	free(sp->enums);
	free(sp->methods);
	free(sp);
}

int pp_spec_proto_load(const unsigned char *set, size_t len, struct pp_spec_proto **out,
		       struct pp_error *err)
{
	struct pp_spec_proto *sp = calloc(1, sizeof(*sp));
	struct pp_pb_reader r;
	struct pp_pb_field f;
	int rc;

	*out = NULL;
	if (!sp)
		return NOMEM(err);
	pp_pb_reader_init(&r, set, len);
	while ((rc = pp_pb_next(&r, &f, err)) == 1) /* FileDescriptorSet: 1 file */
		if (f.num == 1 && f.wire == PP_PB_LEN &&
		    (rc = read_file(sp, f.data, f.len, err)) < 0)
			break;
	if (rc < 0) {
		pp_spec_proto_free(sp);
		return pp_error_prefix(err, "descriptor set: ");
	}
	qsort(sp->msgs, sp->nmsgs, sizeof(*sp->msgs), cmp_msg);
	qsort(sp->enums, sp->nenums, sizeof(*sp->enums), cmp_enum);
	/* Resolve type names once the arrays no longer move. */
	for (size_t i = 0; i < sp->nmsgs; i++) {
		for (size_t j = 0; j < sp->msgs[i].nfields; j++) {
			struct pfield *pf = &sp->msgs[i].fields[j];

			if (pf->type == T_MESSAGE && !(pf->msg = find_msg(sp, pf->type_name)))
				rc = pp_fail(err, PP_EINVALID, "descriptor set: %s.%s: no type %s",
					     sp->msgs[i].full, pf->name, pf->type_name);
			if (pf->type == T_ENUM && !(pf->en = find_enum(sp, pf->type_name)))
				rc = pp_fail(err, PP_EINVALID, "descriptor set: %s.%s: no enum %s",
					     sp->msgs[i].full, pf->name, pf->type_name);
		}
	}
	for (size_t i = 0; i < sp->nmethods; i++)
		if (!(sp->methods[i].in = find_msg(sp, sp->methods[i].input)))
			rc = pp_fail(err, PP_EINVALID, "descriptor set: %s: no input type",
				     sp->methods[i].full ? sp->methods[i].full : "?");
	if (rc < 0) {
		pp_spec_proto_free(sp);
		return rc;
	}
	*out = sp;
	return 0;
}

long pp_spec_proto_enum_value(const struct pp_spec_proto *sp, const char *enum_name,
			      const char *value_name)
{
	char full[256];
	const struct penum *e;

	snprintf(full, sizeof(full), ".%s", enum_name);
	e = find_enum(sp, full);
	for (size_t i = 0; e && i < e->nvalues; i++)
		if (strcmp(e->values[i].name, value_name) == 0)
			return e->values[i].number;
	return -1;
}

static const struct pmethod *find_method(const struct pp_spec_proto *sp, const char *full)
{
	for (size_t i = 0; i < sp->nmethods; i++)
		if (sp->methods[i].full && strcmp(sp->methods[i].full, full) == 0)
			return &sp->methods[i];
	return NULL;
}

static const struct pfield *field_by_name(const struct pmsg *m, const char *key)
{
	for (size_t i = 0; i < m->nfields; i++)
		if (strcmp(m->fields[i].json_name, key) == 0 || strcmp(m->fields[i].name, key) == 0)
			return &m->fields[i];
	return NULL;
}

static const struct pfield *field_by_number(const struct pmsg *m, uint32_t num)
{
	for (size_t i = 0; i < m->nfields; i++)
		if (m->fields[i].number == num)
			return &m->fields[i];
	return NULL;
}

/* ---- proto3 JSON ---- */

static const char *const type_names[] = {
	[T_DOUBLE] = "TYPE_DOUBLE",	[T_FLOAT] = "TYPE_FLOAT",
	[T_INT64] = "TYPE_INT64",	[T_UINT64] = "TYPE_UINT64",
	[T_INT32] = "TYPE_INT32",	[T_FIXED64] = "TYPE_FIXED64",
	[T_FIXED32] = "TYPE_FIXED32",	[T_BOOL] = "TYPE_BOOL",
	[T_STRING] = "TYPE_STRING",	[T_GROUP] = "TYPE_GROUP",
	[T_MESSAGE] = "TYPE_MESSAGE",	[T_BYTES] = "TYPE_BYTES",
	[T_UINT32] = "TYPE_UINT32",	[T_ENUM] = "TYPE_ENUM",
	[T_SFIXED32] = "TYPE_SFIXED32", [T_SFIXED64] = "TYPE_SFIXED64",
	[T_SINT32] = "TYPE_SINT32",	[T_SINT64] = "TYPE_SINT64",
};

struct jwalk {
	const struct pp_spec_proto *sp;
	struct pp_spec_report *rep;
};

static void invalid(struct jwalk *w, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void invalid(struct jwalk *w, const char *path, const char *fmt, ...)
{
	char what[640];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	pp_spec_report_add(w->rep, "INVALID_ARGUMENT", path, "%s", what);
}

static const char *shown(const struct pp_json *v)
{
	return pp_json_is(v, PP_JSON_STRING) || pp_json_is(v, PP_JSON_NUMBER)
		       ? v->str
		       : pp_json_type_name(v->type);
}

/* An integer as JSON number or decimal string, within [lo, hi]. */
static bool json_integer(const struct pp_json *v, double lo, double hi)
{
	double d;
	char *end;

	if (pp_json_is(v, PP_JSON_NUMBER))
		d = v->num;
	else if (pp_json_is(v, PP_JSON_STRING) && v->len && !isspace((unsigned char)v->str[0])) {
		d = strtod(v->str, &end);
		if (*end)
			return false;
	} else {
		return false;
	}
	return d == floor(d) && d >= lo && d <= hi;
}

static bool json_float(const struct pp_json *v)
{
	char *end;

	if (pp_json_is(v, PP_JSON_NUMBER))
		return true;
	if (!pp_json_is(v, PP_JSON_STRING) || !v->len)
		return false;
	if (!strcmp(v->str, "NaN") || !strcmp(v->str, "Infinity") || !strcmp(v->str, "-Infinity"))
		return true;
	strtod(v->str, &end);
	return *end == '\0';
}

static bool base64_text(const struct pp_json *v)
{
	if (!pp_json_is(v, PP_JSON_STRING))
		return false;
	for (size_t i = 0; i < v->len; i++) {
		char c = v->str[i];

		if (!isalnum((unsigned char)c) && !strchr("+/-_=", c))
			return false;
	}
	return true;
}

/* "-12.5s": up to 9 fractional digits, seconds within +-315576000000. */
static bool duration_text(const char *s, size_t n)
{
	size_t i = 0, digits = 0, frac = 0;

	if (n < 2 || s[n - 1] != 's')
		return false;
	if (s[i] == '-')
		i++;
	for (; i < n - 1 && isdigit((unsigned char)s[i]); i++)
		digits++;
	if (i < n - 1 && s[i] == '.')
		for (i++; i < n - 1 && isdigit((unsigned char)s[i]); i++)
			frac++;
	return i == n - 1 && digits >= 1 && digits <= 12 && frac <= 9;
}

/* RFC 3339 with "T", optional fraction, "Z" or an offset. */
static bool timestamp_text(const char *s)
{
	int y, mo, d, h, mi, sec, used = 0;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6 ||
	    used != 19 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return false;
	s += used;
	if (*s == '.') {
		size_t f = 0;

		for (s++; isdigit((unsigned char)*s); s++)
			f++;
		if (f < 1 || f > 9)
			return false;
	}
	if (strcmp(s, "Z") == 0)
		return true;
	return (s[0] == '+' || s[0] == '-') && isdigit((unsigned char)s[1]) &&
	       isdigit((unsigned char)s[2]) && s[3] == ':' && isdigit((unsigned char)s[4]) &&
	       isdigit((unsigned char)s[5]) && s[6] == '\0';
}

static void check_json_message(struct jwalk *w, const struct pmsg *m, const struct pp_json *v,
			       const char *path, int depth, const struct pmethod *top);

static void check_json_single(struct jwalk *w, const struct pfield *pf, const struct pp_json *v,
			      const char *path, int depth);

/* Well-known types have their own JSON forms; true when m is one. */
static bool check_wkt(struct jwalk *w, const struct pmsg *m, const struct pp_json *v,
		      const char *path)
{
	const char *n = m->full;

	if (strncmp(n, ".google.protobuf.", 17) != 0)
		return false;
	n += 17;
	if (!strcmp(n, "Duration")) {
		if (!pp_json_is(v, PP_JSON_STRING) || !duration_text(v->str, v->len))
			invalid(w, path,
				"Invalid value at '%s' "
				"(type.googleapis.com/google.protobuf.Duration), "
				"%s: Illegal duration format; duration must end with 's'",
				path, shown(v));
	} else if (!strcmp(n, "Timestamp")) {
		if (!pp_json_is(v, PP_JSON_STRING) || !timestamp_text(v->str))
			invalid(w, path,
				"Invalid value at '%s' "
				"(type.googleapis.com/google.protobuf.Timestamp), "
				"%s",
				path, shown(v));
	} else if (!strcmp(n, "FieldMask")) {
		if (!pp_json_is(v, PP_JSON_STRING))
			invalid(w, path, "Invalid value at '%s' (FieldMask), %s", path, shown(v));
	} else if (!strcmp(n, "Struct")) {
		if (!pp_json_is(v, PP_JSON_OBJECT))
			invalid(w, path, "Invalid value at '%s' (Struct), %s", path, shown(v));
	} else if (!strcmp(n, "ListValue")) {
		if (!pp_json_is(v, PP_JSON_ARRAY))
			invalid(w, path, "Invalid value at '%s' (ListValue), %s", path, shown(v));
	} else if (!strcmp(n, "Value")) {
		/* any JSON */
	} else if (!strcmp(n, "Empty")) {
		if (!pp_json_is(v, PP_JSON_OBJECT) || v->count)
			invalid(w, path, "Invalid value at '%s' (Empty): must be {}", path);
	} else if (!strcmp(n, "Any")) {
		if (!pp_json_is(v, PP_JSON_OBJECT) || !pp_json_get_string(v, "@type"))
			invalid(w, path, "Invalid value at '%s' (Any): needs \"@type\"", path);
	} else {
		/* Wrappers (Int32Value, StringValue...): the JSON of their field 1. */
		const struct pfield *inner = field_by_number(m, 1);

		if (!inner)
			return false;
		check_json_single(w, inner, v, path, 0);
	}
	return true;
}

static void check_json_single(struct jwalk *w, const struct pfield *pf, const struct pp_json *v,
			      const char *path, int depth)
{
	bool ok = true;

	if (pp_json_is(v, PP_JSON_NULL) &&
	    !(pf->msg && !strcmp(pf->msg->full, ".google.protobuf.Value")))
		return; /* null: the field's default */
	switch (pf->type) {
	case T_MESSAGE:
		if (!check_wkt(w, pf->msg, v, path))
			check_json_message(w, pf->msg, v, path, depth + 1, NULL);
		return;
	case T_ENUM:
		if (pp_json_is(v, PP_JSON_STRING)) {
			ok = false;
			for (size_t i = 0; i < pf->en->nvalues; i++)
				ok = ok || strcmp(pf->en->values[i].name, v->str) == 0;
		} else {
			ok = json_integer(v, -2147483648.0, 2147483647.0);
		}
		if (!ok)
			invalid(w, path, "Invalid value at '%s' (type.googleapis.com/%s), %s", path,
				pf->en->full + 1, shown(v));
		return;
	case T_INT32:
	case T_SINT32:
	case T_SFIXED32: ok = json_integer(v, -2147483648.0, 2147483647.0); break;
	case T_UINT32:
	case T_FIXED32: ok = json_integer(v, 0, 4294967295.0); break;
	case T_INT64:
	case T_SINT64:
	case T_SFIXED64: ok = json_integer(v, -9.3e18, 9.3e18); break;
	case T_UINT64:
	case T_FIXED64: ok = json_integer(v, 0, 1.9e19); break;
	case T_DOUBLE:
	case T_FLOAT: ok = json_float(v); break;
	case T_BOOL: ok = pp_json_is(v, PP_JSON_BOOL); break;
	case T_STRING: ok = pp_json_is(v, PP_JSON_STRING); break;
	case T_BYTES: ok = base64_text(v); break;
	default: ok = false;
	}
	if (!ok)
		invalid(w, path, "Invalid value at '%s' (%s), %s", path,
			pf->type > 0 && pf->type <= T_SINT64 ? type_names[pf->type] : "?",
			shown(v));
}

static void check_json_field(struct jwalk *w, const struct pfield *pf, const struct pp_json *v,
			     const char *path, int depth)
{
	char sub[512];
	size_t i = 0;

	if (pf->output_only && !pp_json_is(v, PP_JSON_NULL)) {
		invalid(w, path, "The field '%s' is output only and cannot be set in a request.",
			path);
		return;
	}
	if (pf->label != LABEL_REPEATED) {
		check_json_single(w, pf, v, path, depth);
		return;
	}
	if (pp_json_is(v, PP_JSON_NULL))
		return;
	if (pf->msg && pf->msg->map_entry) {
		const struct pfield *key = field_by_number(pf->msg, 1);
		const struct pfield *val = field_by_number(pf->msg, 2);

		if (!pp_json_is(v, PP_JSON_OBJECT)) {
			invalid(w, path, "Invalid value at '%s', %s: a map must be a JSON object",
				path, shown(v));
			return;
		}
		pp_json_foreach (e, v) {
			snprintf(sub, sizeof(sub), "%s[%s]", path, e->key);
			if (key && key->type == T_BOOL && strcmp(e->key, "true") &&
			    strcmp(e->key, "false"))
				invalid(w, sub, "Invalid map key at '%s' (TYPE_BOOL)", sub);
			if (val)
				check_json_single(w, val, e, sub, depth);
		}
		return;
	}
	if (!pp_json_is(v, PP_JSON_ARRAY)) {
		invalid(w, path, "Invalid value at '%s', %s: a repeated field must be a JSON array",
			path, shown(v));
		return;
	}
	pp_json_foreach (e, v) {
		snprintf(sub, sizeof(sub), "%s[%zu]", path, i++);
		if (pp_json_is(e, PP_JSON_NULL))
			invalid(w, sub, "Invalid value at '%s': null in a repeated field", sub);
		else
			check_json_single(w, pf, e, sub, depth);
	}
}

static bool bound_in_path(const struct pmethod *top, const char *name)
{
	for (size_t i = 0; top && i < 4 && top->path_fields[i]; i++)
		if (strcmp(top->path_fields[i], name) == 0)
			return true;
	return false;
}

static void check_json_message(struct jwalk *w, const struct pmsg *m, const struct pp_json *v,
			       const char *path, int depth, const struct pmethod *top)
{
	char sub[512];

	if (depth > MAX_DEPTH) {
		invalid(w, path, "Invalid JSON payload received. Nesting too deep at '%s'.", path);
		return;
	}
	if (!pp_json_is(v, PP_JSON_OBJECT)) {
		invalid(w, path, "Invalid value at '%s' (type.googleapis.com/%s), %s", path,
			m->full + 1, shown(v));
		return;
	}
	pp_json_foreach (e, v) {
		const struct pfield *pf = field_by_name(m, e->key);

		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", e->key);
		if (!pf) {
			invalid(w, *path ? path : e->key,
				"Invalid JSON payload received. Unknown name \"%s\" at '%s': "
				"Cannot "
				"find field.",
				e->key, path);
			continue;
		}
		check_json_field(w, pf, e, sub, depth);
	}
	/* REQUIRED fields bound in the URL path (top == the request) come from there. */
	for (size_t i = 0; i < m->nfields; i++) {
		const struct pfield *pf = &m->fields[i];
		const struct pp_json *got;

		if (!pf->required || bound_in_path(top, pf->name))
			continue;
		got = pp_json_get(v, pf->json_name);
		if (!got)
			got = pp_json_get(v, pf->name);
		if (!got || pp_json_is(got, PP_JSON_NULL) ||
		    (pp_json_is(got, PP_JSON_STRING) && got->len == 0) ||
		    (pp_json_is(got, PP_JSON_ARRAY) && got->count == 0)) {
			snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", pf->json_name);
			invalid(w, sub, "The request is missing a required field: '%s'.", sub);
		}
	}
}

size_t pp_spec_proto_check_json(const struct pp_spec_proto *sp, const char *method,
				const struct pp_json *body, struct pp_spec_report *rep)
{
	const struct pmethod *pm = find_method(sp, method);
	struct jwalk w = {.sp = sp, .rep = rep};
	const struct pfield *pf;

	pp_spec_report_init(rep);
	if (!pm) {
		pp_spec_report_add(rep, "UNIMPLEMENTED", "", "Method %s is not in the spec.",
				   method);
		return rep->total;
	}
	if (!pm->body) {
		if (body && !(pp_json_is(body, PP_JSON_OBJECT) && body->count == 0))
			invalid(&w, "", "Invalid JSON payload received. %s takes no body.", method);
		return rep->total;
	}
	if (strcmp(pm->body, "*") == 0) {
		check_json_message(&w, pm->in, body, "", 0, pm);
		return rep->total;
	}
	pf = field_by_name(pm->in, pm->body);
	if (!pf) {
		invalid(&w, "", "Spec: %s has no body field %s.", method, pm->body);
		return rep->total;
	}
	if (!body || pp_json_is(body, PP_JSON_NULL)) {
		if (pf->required)
			invalid(&w, pf->name, "The request is missing a required field: '%s'.",
				pf->name);
		return rep->total;
	}
	check_json_field(&w, pf, body, pf->name, 0);
	return rep->total;
}

/* ---- wire format ---- */

static bool utf8_valid(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = s[i] < 0x80	       ? 1
			   : (s[i] >> 5) == 6  ? 2
			   : (s[i] >> 4) == 14 ? 3
			   : (s[i] >> 3) == 30 ? 4
					       : 0;

		if (!k || i + k > n)
			return false;
		for (size_t j = 1; j < k; j++)
			if ((s[i + j] & 0xC0) != 0x80)
				return false;
		i += k;
	}
	return true;
}

static enum pp_pb_wire wire_of(int type)
{
	switch (type) {
	case T_DOUBLE:
	case T_FIXED64:
	case T_SFIXED64: return PP_PB_I64;
	case T_FLOAT:
	case T_FIXED32:
	case T_SFIXED32: return PP_PB_I32;
	case T_STRING:
	case T_BYTES:
	case T_MESSAGE: return PP_PB_LEN;
	default: return PP_PB_VARINT;
	}
}

static const char *wire_name(enum pp_pb_wire wt)
{
	return wt == PP_PB_VARINT ? "varint"
	       : wt == PP_PB_I64  ? "64-bit"
	       : wt == PP_PB_LEN  ? "length-delimited"
				  : "32-bit";
}

static void check_wire_message(struct pp_spec_report *rep, const struct pmsg *m, const uint8_t *p,
			       size_t len, const char *path, int depth)
{
	struct pp_pb_reader r;
	struct pp_pb_field f;
	struct pp_error err = {0};
	char sub[512];
	int rc;

	if (depth > MAX_DEPTH) {
		pp_spec_report_add(rep, "INVALID_ARGUMENT", path, "%s: nested too deeply", path);
		return;
	}
	pp_pb_reader_init(&r, p, len);
	while ((rc = pp_pb_next(&r, &f, &err)) == 1) {
		const struct pfield *pf = field_by_number(m, f.num);
		enum pp_pb_wire want;

		if (!pf) {
			snprintf(sub, sizeof(sub), "%s%s#%u", path, *path ? "." : "", f.num);
			pp_spec_report_add(rep, "INVALID_ARGUMENT", sub,
					   "%s: field number %u is not declared in %s", sub, f.num,
					   m->full + 1);
			continue;
		}
		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", pf->name);
		want = wire_of(pf->type);
		if (f.wire != want &&
		    !(pf->label == LABEL_REPEATED && want != PP_PB_LEN && f.wire == PP_PB_LEN)) {
			pp_spec_report_add(rep, "INVALID_ARGUMENT", sub,
					   "%s (field %u of %s): wire type %s, declared %s (%s)",
					   sub, f.num, m->full + 1, wire_name(f.wire),
					   type_names[pf->type], wire_name(want));
			continue;
		}
		if (pf->type == T_STRING && !utf8_valid(f.data, f.len))
			pp_spec_report_add(rep, "INVALID_ARGUMENT", sub,
					   "%s: string field holds invalid UTF-8", sub);
		if (pf->type == T_MESSAGE)
			check_wire_message(rep, pf->msg, f.data, f.len, sub, depth + 1);
	}
	if (rc < 0)
		pp_spec_report_add(rep, "INVALID_ARGUMENT", path, "%s: %s",
				   *path ? path : m->full + 1, err.msg);
}

size_t pp_spec_proto_check_wire(const struct pp_spec_proto *sp, const char *method, const void *msg,
				size_t len, struct pp_spec_report *rep)
{
	const struct pmethod *pm = find_method(sp, method);

	pp_spec_report_init(rep);
	if (!pm) {
		pp_spec_report_add(rep, "UNIMPLEMENTED", "", "Method %s is not in the spec.",
				   method);
		return rep->total;
	}
	check_wire_message(rep, pm->in, msg, len, "", 0);
	return rep->total;
}
