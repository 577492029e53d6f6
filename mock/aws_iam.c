/* Mock AWS IAM (Query protocol, XML answers): roles with their trust policy,
 * managed policies attached to roles and users, inline role policies,
 * users and access keys, all tagged in their create call. Every request is
 * read and judged by botocore's IAM model (mock/spec_gate.c), then answered
 * as IAM does: <ActionResponse><ActionResult>, tags and lists as <member>
 * elements, policy documents URL-encoded, NoSuchEntity (404),
 * EntityAlreadyExists and DeleteConflict (409). IAM is global: resources
 * carry no region. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock/aws.h"
#include "mock/spec.h"

#define IAM_NS "https://iam.amazonaws.com/doc/2010-05-08/"
#define ARN    "arn:aws:iam::" PP_MOCK_AWS_ACCOUNT

/* The AWS managed policies the mock knows: attachable by ARN, never created. */
static const char *const managed[] = {
	"arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
	"arn:aws:iam::aws:policy/AmazonECS_FullAccess",
	"arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
	"arn:aws:iam::aws:policy/CloudWatchLogsFullAccess",
};

struct iam_call {
	struct pp_mock *m;
	struct pp_mock_aws_account *a;
	const struct pp_json *in;
	struct pp_mock_resp *resp;
	const char *action;
	struct pp_json *out; /* the Result's members; NULL: an answer without Result */
};

static void iam_error(struct iam_call *c, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void iam_error(struct iam_call *c, int status, const char *code, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pp_mock_aws_error(c->resp, PP_MOCK_AWS_IAM, status, code, "%s", msg);
}

static void no_such(struct iam_call *c, const char *what, const char *name)
{
	iam_error(c, 404, "NoSuchEntity", "The %s with name %s cannot be found.", what, name);
}

/* RFC 3986 percent-encoding, as IAM answers policy documents. */
static char *url_encode(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(3 * n + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (isalnum(ch) || strchr("-_.~", ch))
			*o++ = (char)ch;
		else
			o += sprintf(o, "%%%02X", ch);
	}
	*o = '\0';
	return out;
}

static int set_encoded(struct pp_json *o, const char *key, const char *doc)
{
	char *enc = url_encode(doc ? doc : "");
	int rc = enc ? pp_json_set_string(o, key, enc) : PP_ENOMEM;

	free(enc);
	return rc;
}

static void new_id(struct pp_mock *m, const char *prefix, char *out, size_t size)
{
	char hex[24];

	pp_mock_random_hex(m, hex, 17);
	for (char *s = hex; *s; s++)
		*s = (char)toupper((unsigned char)*s);
	snprintf(out, size, "%s%s", prefix, hex);
}

static void now_iso(struct pp_mock *m, char *out, size_t size)
{
	time_t t = (time_t)pp_mock_wall(m, pp_mock_clock(m));
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The entity as IAM describes it, its tags included when it has any. */
static struct pp_json *described(const struct pp_mock_aws_res *r)
{
	struct pp_json *o = pp_json_clone(r->obj);

	if (o && r->tags->count)
		pp_json_set(o, "Tags", pp_mock_aws_tag_list(r->tags, "Key", "Value"));
	return o;
}

static const char *in_str(struct iam_call *c, const char *key)
{
	return pp_json_get_string(c->in, key);
}

static struct pp_mock_aws_res *find(struct iam_call *c, const char *type, const char *id)
{
	return id ? pp_mock_aws_find(c->a, type, "", id) : NULL;
}

static bool policy_exists(struct iam_call *c, const char *arn)
{
	for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++)
		if (strcmp(managed[i], arn) == 0)
			return true;
	return find(c, "iam.policy", arn) != NULL;
}

/* Attachment counts live on the customer policy (AttachmentCount). */
static void count_attachment(struct iam_call *c, const char *arn, int delta)
{
	struct pp_mock_aws_res *p = find(c, "iam.policy", arn);

	if (p)
		pp_json_set_int(p->obj, "AttachmentCount",
				pp_json_get_int(p->obj, "AttachmentCount", 0) + delta);
}

/* ---- roles ---- */

/* What differs between a role and a user as IAM makes them. */
static const struct entity {
	const char *kind, *type, *arn_word, *name_key, *id_key, *id_prefix;
} e_role = {"Role", "iam.role", "role", "RoleName", "RoleId", "AROA"},
  e_user = {"User", "iam.user", "user", "UserName", "UserId", "AIDA"};

/* Create the role or user the call names; extra (may be NULL) sets what
 * the kind has beyond the fields both share. */
static void create_entity(struct iam_call *c, const struct entity *e,
			  void (*extra)(struct iam_call *c, struct pp_json *o))
{
	const char *name = in_str(c, e->name_key);
	const char *path = in_str(c, "Path") ? in_str(c, "Path") : "/";
	struct pp_json *o;
	struct pp_mock_aws_res *r;
	char id[32], arn[400], when[32];

	if (find(c, e->type, name)) {
		iam_error(c, 409, "EntityAlreadyExists", "%s with name %s already exists.", e->kind,
			  name);
		return;
	}
	new_id(c->m, e->id_prefix, id, sizeof(id));
	snprintf(arn, sizeof(arn), ARN ":%s%s%s", e->arn_word, path, name);
	now_iso(c->m, when, sizeof(when));
	o = pp_json_new(PP_JSON_OBJECT);
	if (o) {
		pp_json_set_string(o, "Path", path);
		pp_json_set_string(o, e->name_key, name);
		pp_json_set_string(o, e->id_key, id);
		pp_json_set_string(o, "Arn", arn);
		pp_json_set_string(o, "CreateDate", when);
		if (extra)
			extra(c, o);
	}
	r = pp_mock_aws_add(c->m, c->a, e->type, "", name, o,
			    pp_mock_aws_tags(pp_json_get(c->in, "Tags"), "Key", "Value"));
	if (!r || !(c->out = pp_json_new(PP_JSON_OBJECT)) ||
	    pp_json_set(c->out, e->kind, described(r)))
		iam_error(c, 500, "ServiceFailure", "mock: out of memory");
}

static void role_fields(struct iam_call *c, struct pp_json *o)
{
	set_encoded(o, "AssumeRolePolicyDocument", in_str(c, "AssumeRolePolicyDocument"));
	if (in_str(c, "Description"))
		pp_json_set_string(o, "Description", in_str(c, "Description"));
	pp_json_set_int(o, "MaxSessionDuration", 3600);
}

static void create_role(struct iam_call *c)
{
	create_entity(c, &e_role, role_fields);
}

static void get_role(struct iam_call *c)
{
	struct pp_mock_aws_res *r = find(c, "iam.role", in_str(c, "RoleName"));

	if (!r) {
		no_such(c, "role", in_str(c, "RoleName"));
		return;
	}
	if (!(c->out = pp_json_new(PP_JSON_OBJECT)) || pp_json_set(c->out, "Role", described(r)))
		iam_error(c, 500, "ServiceFailure", "mock: out of memory");
}

static void delete_role(struct iam_call *c)
{
	struct pp_mock_aws_res *r = find(c, "iam.role", in_str(c, "RoleName"));
	const struct pp_json *att = r && r->extra ? pp_json_get(r->extra, "attached") : NULL;
	const struct pp_json *inl = r && r->extra ? pp_json_get(r->extra, "inline") : NULL;

	if (!r) {
		no_such(c, "role", in_str(c, "RoleName"));
	} else if ((att && att->count) || (inl && inl->count)) {
		iam_error(c, 409, "DeleteConflict", "Cannot delete entity, must %s first.",
			  att && att->count ? "detach all policies" : "delete policies");
	} else {
		pp_mock_aws_remove(c->m, c->a, r);
	}
}

/* Attach, detach and list managed policies of a role or a user. */
static void attach(struct iam_call *c, const char *type, const char *name_key, bool on)
{
	const char *name = in_str(c, name_key), *arn = in_str(c, "PolicyArn");
	struct pp_mock_aws_res *r = find(c, type, name);
	struct pp_json *att;

	if (!r) {
		no_such(c, strcmp(type, "iam.role") == 0 ? "role" : "user", name);
		return;
	}
	if (!(att = pp_mock_aws_extra(r, "attached", true))) {
		iam_error(c, 500, "ServiceFailure", "mock: out of memory");
		return;
	}
	pp_json_foreach (e, att) {
		if (strcmp(e->str, arn) == 0) {
			if (!on) {
				pp_json_free(pp_json_detach(e));
				count_attachment(c, arn, -1);
			}
			return; /* attaching twice changes nothing, as in IAM */
		}
	}
	if (!on) {
		iam_error(c, 404, "NoSuchEntity", "Policy %s was not found.", arn);
		return;
	}
	if (!policy_exists(c, arn)) {
		iam_error(c, 404, "NoSuchEntity", "Policy %s does not exist or is not attachable.",
			  arn);
		return;
	}
	if (pp_json_append(att, pp_json_new_string(arn)))
		iam_error(c, 500, "ServiceFailure", "mock: out of memory");
	count_attachment(c, arn, 1);
}

static void list_attached(struct iam_call *c, const char *type, const char *name_key)
{
	const char *name = in_str(c, name_key);
	struct pp_mock_aws_res *r = find(c, type, name);
	struct pp_json *list;

	if (!r) {
		no_such(c, strcmp(type, "iam.role") == 0 ? "role" : "user", name);
		return;
	}
	c->out = pp_json_new(PP_JSON_OBJECT);
	list = pp_json_new(PP_JSON_ARRAY);
	pp_json_foreach (e, r->extra ? pp_json_get(r->extra, "attached") : NULL) {
		struct pp_json *o = pp_json_new(PP_JSON_OBJECT);
		const char *slash = strrchr(e->str, '/');

		pp_json_set_string(o, "PolicyName", slash ? slash + 1 : e->str);
		pp_json_set_string(o, "PolicyArn", e->str);
		pp_json_append(list, o);
	}
	pp_json_set(c->out, "AttachedPolicies", list);
	pp_json_set_bool(c->out, "IsTruncated", false);
}

static void put_role_policy(struct iam_call *c)
{
	struct pp_mock_aws_res *r = find(c, "iam.role", in_str(c, "RoleName"));
	struct pp_json *inl;

	if (!r) {
		no_such(c, "role", in_str(c, "RoleName"));
		return;
	}
	if (!(inl = pp_mock_aws_extra(r, "inline", false)) ||
	    pp_json_set_string(inl, in_str(c, "PolicyName"), in_str(c, "PolicyDocument")))
		iam_error(c, 500, "ServiceFailure", "mock: out of memory");
}

static void get_role_policy(struct iam_call *c)
{
	struct pp_mock_aws_res *r = find(c, "iam.role", in_str(c, "RoleName"));
	const char *pol = in_str(c, "PolicyName");
	const char *doc =
		r && r->extra ? pp_json_get_string(pp_json_get(r->extra, "inline"), pol) : NULL;

	if (!doc) {
		iam_error(c, 404, "NoSuchEntity", "The role policy with name %s cannot be found.",
			  pol);
		return;
	}
	c->out = pp_json_new(PP_JSON_OBJECT);
	pp_json_set_string(c->out, "RoleName", r->id);
	pp_json_set_string(c->out, "PolicyName", pol);
	set_encoded(c->out, "PolicyDocument", doc);
}

static void delete_role_policy(struct iam_call *c)
{
	struct pp_mock_aws_res *r = find(c, "iam.role", in_str(c, "RoleName"));
	const char *pol = in_str(c, "PolicyName");

	if (!r || !r->extra || !pp_json_remove(pp_json_get(r->extra, "inline"), pol))
		iam_error(c, 404, "NoSuchEntity", "The role policy with name %s cannot be found.",
			  pol);
}

static void list_role_policies(struct iam_call *c)
{
	struct pp_mock_aws_res *r = find(c, "iam.role", in_str(c, "RoleName"));
	struct pp_json *names;

	if (!r) {
		no_such(c, "role", in_str(c, "RoleName"));
		return;
	}
	c->out = pp_json_new(PP_JSON_OBJECT);
	names = pp_json_new(PP_JSON_ARRAY);
	pp_json_foreach (e, r->extra ? pp_json_get(r->extra, "inline") : NULL)
		pp_json_append(names, pp_json_new_string(e->key));
	pp_json_set(c->out, "PolicyNames", names);
	pp_json_set_bool(c->out, "IsTruncated", false);
}

static void attach_role(struct iam_call *c)
{
	attach(c, "iam.role", "RoleName", true);
}

static void detach_role(struct iam_call *c)
{
	attach(c, "iam.role", "RoleName", false);
}

static void list_attached_role(struct iam_call *c)
{
	list_attached(c, "iam.role", "RoleName");
}

/* ---- customer managed policies ---- */

static void create_policy(struct iam_call *c)
{
	const char *name = in_str(c, "PolicyName");
	const char *path = in_str(c, "Path") ? in_str(c, "Path") : "/";
	struct pp_mock_aws_res *r;
	struct pp_json *o;
	char arn[400], id[32], when[32];

	snprintf(arn, sizeof(arn), ARN ":policy%s%s", path, name);
	if (find(c, "iam.policy", arn)) {
		iam_error(c, 409, "EntityAlreadyExists",
			  "A policy called %s already exists. Duplicate names are not allowed.",
			  name);
		return;
	}
	new_id(c->m, "ANPA", id, sizeof(id));
	now_iso(c->m, when, sizeof(when));
	o = pp_json_new(PP_JSON_OBJECT);
	if (o) {
		pp_json_set_string(o, "PolicyName", name);
		pp_json_set_string(o, "PolicyId", id);
		pp_json_set_string(o, "Arn", arn);
		pp_json_set_string(o, "Path", path);
		pp_json_set_string(o, "DefaultVersionId", "v1");
		pp_json_set_int(o, "AttachmentCount", 0);
		pp_json_set_bool(o, "IsAttachable", true);
		pp_json_set_string(o, "CreateDate", when);
		pp_json_set_string(o, "UpdateDate", when);
	}
	r = pp_mock_aws_add(c->m, c->a, "iam.policy", "", arn, o,
			    pp_mock_aws_tags(pp_json_get(c->in, "Tags"), "Key", "Value"));
	if (r) {
		struct pp_json *doc = pp_mock_aws_extra(r, "document", false);

		pp_json_set_string(doc, "v1", in_str(c, "PolicyDocument"));
	}
	if (!r || !(c->out = pp_json_new(PP_JSON_OBJECT)) ||
	    pp_json_set(c->out, "Policy", described(r)))
		iam_error(c, 500, "ServiceFailure", "mock: out of memory");
}

static void get_policy(struct iam_call *c)
{
	struct pp_mock_aws_res *r = find(c, "iam.policy", in_str(c, "PolicyArn"));

	if (!r) {
		iam_error(c, 404, "NoSuchEntity", "Policy %s was not found.",
			  in_str(c, "PolicyArn"));
		return;
	}
	if (!(c->out = pp_json_new(PP_JSON_OBJECT)) || pp_json_set(c->out, "Policy", described(r)))
		iam_error(c, 500, "ServiceFailure", "mock: out of memory");
}

static void get_policy_version(struct iam_call *c)
{
	struct pp_mock_aws_res *r = find(c, "iam.policy", in_str(c, "PolicyArn"));
	const char *v = in_str(c, "VersionId");
	const char *doc =
		r && r->extra ? pp_json_get_string(pp_json_get(r->extra, "document"), v) : NULL;
	struct pp_json *pv;

	if (!doc) {
		iam_error(c, 404, "NoSuchEntity", "Policy %s version %s does not exist.",
			  in_str(c, "PolicyArn"), v);
		return;
	}
	c->out = pp_json_new(PP_JSON_OBJECT);
	pv = pp_json_new(PP_JSON_OBJECT);
	set_encoded(pv, "Document", doc);
	pp_json_set_string(pv, "VersionId", v);
	pp_json_set_bool(pv, "IsDefaultVersion", true);
	pp_json_set(c->out, "PolicyVersion", pv);
}

/* Versions live in extra.document {"v1": DOC, ...}; IAM keeps five. */
#define POLICY_VERSIONS_MAX 5

static void create_policy_version(struct iam_call *c)
{
	struct pp_mock_aws_res *r = find(c, "iam.policy", in_str(c, "PolicyArn"));
	struct pp_json *docs = r ? pp_mock_aws_extra(r, "document", false) : NULL;
	struct pp_json *pv;
	long long top = 0;
	char id[16], when[32];

	if (!r) {
		iam_error(c, 404, "NoSuchEntity", "Policy %s was not found.",
			  in_str(c, "PolicyArn"));
		return;
	}
	if (!docs || docs->count >= POLICY_VERSIONS_MAX) {
		iam_error(c, 409, "LimitExceeded",
			  "A managed policy can have up to %d versions. Before you create a new "
			  "version, you must delete an existing version.",
			  POLICY_VERSIONS_MAX);
		return;
	}
	pp_json_foreach (v, docs)
		if (v->key[0] == 'v' && atoll(v->key + 1) > top)
			top = atoll(v->key + 1);
	snprintf(id, sizeof(id), "v%lld", top + 1);
	pp_json_set_string(docs, id, in_str(c, "PolicyDocument"));
	if (pp_json_get_bool(c->in, "SetAsDefault", false))
		pp_json_set_string(r->obj, "DefaultVersionId", id);
	now_iso(c->m, when, sizeof(when));
	c->out = pp_json_new(PP_JSON_OBJECT);
	pv = pp_json_new(PP_JSON_OBJECT);
	pp_json_set_string(pv, "VersionId", id);
	pp_json_set_bool(pv, "IsDefaultVersion",
			 !strcmp(pp_json_get_string(r->obj, "DefaultVersionId"), id));
	pp_json_set_string(pv, "CreateDate", when);
	pp_json_set(c->out, "PolicyVersion", pv);
}

static void list_policy_versions(struct iam_call *c)
{
	struct pp_mock_aws_res *r = find(c, "iam.policy", in_str(c, "PolicyArn"));
	struct pp_json *list;

	if (!r) {
		iam_error(c, 404, "NoSuchEntity", "Policy %s was not found.",
			  in_str(c, "PolicyArn"));
		return;
	}
	c->out = pp_json_new(PP_JSON_OBJECT);
	list = pp_json_new(PP_JSON_ARRAY);
	pp_json_foreach (v, r->extra ? pp_json_get(r->extra, "document") : NULL) {
		struct pp_json *o = pp_json_new(PP_JSON_OBJECT);

		pp_json_set_string(o, "VersionId", v->key);
		pp_json_set_bool(o, "IsDefaultVersion",
				 !strcmp(pp_json_get_string(r->obj, "DefaultVersionId"), v->key));
		pp_json_append(list, o);
	}
	pp_json_set(c->out, "Versions", list);
	pp_json_set_bool(c->out, "IsTruncated", false);
}

static void delete_policy_version(struct iam_call *c)
{
	struct pp_mock_aws_res *r = find(c, "iam.policy", in_str(c, "PolicyArn"));
	const char *v = in_str(c, "VersionId");

	if (!r || !r->extra || !pp_json_get(pp_json_get(r->extra, "document"), v)) {
		iam_error(c, 404, "NoSuchEntity", "Policy %s version %s does not exist.",
			  in_str(c, "PolicyArn"), v);
		return;
	}
	if (!strcmp(pp_json_get_string(r->obj, "DefaultVersionId"), v)) {
		iam_error(c, 409, "DeleteConflict",
			  "Cannot delete the default version of a policy.");
		return;
	}
	pp_json_remove(pp_json_get(r->extra, "document"), v);
}

static void update_assume_role_policy(struct iam_call *c)
{
	struct pp_mock_aws_res *r = find(c, "iam.role", in_str(c, "RoleName"));

	if (!r) {
		no_such(c, "role", in_str(c, "RoleName"));
		return;
	}
	if (set_encoded(r->obj, "AssumeRolePolicyDocument", in_str(c, "PolicyDocument")))
		iam_error(c, 500, "ServiceFailure", "mock: out of memory");
}

static void delete_policy(struct iam_call *c)
{
	struct pp_mock_aws_res *r = find(c, "iam.policy", in_str(c, "PolicyArn"));

	if (!r)
		iam_error(c, 404, "NoSuchEntity", "Policy %s was not found.",
			  in_str(c, "PolicyArn"));
	else if (pp_json_get_int(r->obj, "AttachmentCount", 0) > 0)
		iam_error(c, 409, "DeleteConflict", "Cannot delete a policy attached to entities.");
	else if (r->extra && pp_json_get(r->extra, "document") &&
		 pp_json_get(r->extra, "document")->count > 1)
		iam_error(c, 409, "DeleteConflict",
			  "This policy has more than one version. Before you delete a policy, you "
			  "must delete the policy's versions. The default version is deleted with "
			  "the policy.");
	else
		pp_mock_aws_remove(c->m, c->a, r);
}

/* ---- users and access keys ---- */

static void create_user(struct iam_call *c)
{
	create_entity(c, &e_user, NULL);
}

static void get_user(struct iam_call *c)
{
	const char *name = in_str(c, "UserName") ? in_str(c, "UserName") : PP_MOCK_AWS_USER;
	struct pp_mock_aws_res *r = find(c, "iam.user", name);

	if (!r) {
		no_such(c, "user", name);
		return;
	}
	if (!(c->out = pp_json_new(PP_JSON_OBJECT)) || pp_json_set(c->out, "User", described(r)))
		iam_error(c, 500, "ServiceFailure", "mock: out of memory");
}

static bool user_has_keys(struct iam_call *c, const char *user)
{
	for (struct pp_mock_aws_res *r = pp_mock_aws_first(c->a); r; r = r->next)
		if (strcmp(r->type, "iam.accesskey") == 0 &&
		    strcmp(pp_json_get_string(r->obj, "UserName"), user) == 0)
			return true;
	return false;
}

static void delete_user(struct iam_call *c)
{
	struct pp_mock_aws_res *r = find(c, "iam.user", in_str(c, "UserName"));
	const struct pp_json *att = r && r->extra ? pp_json_get(r->extra, "attached") : NULL;

	if (!r)
		no_such(c, "user", in_str(c, "UserName"));
	else if ((att && att->count) || user_has_keys(c, r->id))
		iam_error(c, 409, "DeleteConflict", "Cannot delete entity, must %s first.",
			  att && att->count ? "detach all policies" : "delete access keys");
	else
		pp_mock_aws_remove(c->m, c->a, r);
}

static void attach_user(struct iam_call *c)
{
	attach(c, "iam.user", "UserName", true);
}

static void detach_user(struct iam_call *c)
{
	attach(c, "iam.user", "UserName", false);
}

static void list_attached_user(struct iam_call *c)
{
	list_attached(c, "iam.user", "UserName");
}

static void create_access_key(struct iam_call *c)
{
	const char *user = in_str(c, "UserName") ? in_str(c, "UserName") : PP_MOCK_AWS_USER;
	struct pp_mock_aws_res *r;
	struct pp_json *o, *key;
	char id[32], secret[48], when[32];

	if (!find(c, "iam.user", user)) {
		no_such(c, "user", user);
		return;
	}
	new_id(c->m, "AKIA", id, sizeof(id));
	pp_mock_random_hex(c->m, secret, 40);
	now_iso(c->m, when, sizeof(when));
	o = pp_json_new(PP_JSON_OBJECT);
	if (o) {
		pp_json_set_string(o, "UserName", user);
		pp_json_set_string(o, "AccessKeyId", id);
		pp_json_set_string(o, "Status", "Active");
		pp_json_set_string(o, "CreateDate", when);
	}
	/* An access key has no tags of its own: its user carries them. */
	r = pp_mock_aws_add(c->m, c->a, "iam.accesskey", "", id, o, pp_json_new(PP_JSON_OBJECT));
	key = r ? pp_json_clone(r->obj) : NULL;
	if (r)
		pp_json_set_string(pp_mock_aws_extra(r, "secret", false), "value", secret);
	if (!key || pp_json_set_string(key, "SecretAccessKey", secret) ||
	    !(c->out = pp_json_new(PP_JSON_OBJECT)) || pp_json_set(c->out, "AccessKey", key))
		iam_error(c, 500, "ServiceFailure", "mock: out of memory");
}

static void list_access_keys(struct iam_call *c)
{
	const char *user = in_str(c, "UserName") ? in_str(c, "UserName") : PP_MOCK_AWS_USER;
	struct pp_json *list;

	if (!find(c, "iam.user", user)) {
		no_such(c, "user", user);
		return;
	}
	c->out = pp_json_new(PP_JSON_OBJECT);
	list = pp_json_new(PP_JSON_ARRAY);
	for (struct pp_mock_aws_res *r = pp_mock_aws_first(c->a); r; r = r->next)
		if (strcmp(r->type, "iam.accesskey") == 0 &&
		    strcmp(pp_json_get_string(r->obj, "UserName"), user) == 0)
			pp_json_append(list, pp_json_clone(r->obj));
	pp_json_set(c->out, "AccessKeyMetadata", list);
	pp_json_set_bool(c->out, "IsTruncated", false);
}

static void delete_access_key(struct iam_call *c)
{
	struct pp_mock_aws_res *r = find(c, "iam.accesskey", in_str(c, "AccessKeyId"));

	if (!r)
		iam_error(c, 404, "NoSuchEntity", "The Access Key with id %s cannot be found.",
			  in_str(c, "AccessKeyId"));
	else
		pp_mock_aws_remove(c->m, c->a, r);
}

static const struct {
	const char *name;
	void (*run)(struct iam_call *c);
} actions[] = {
	{"CreateRole", create_role},
	{"GetRole", get_role},
	{"DeleteRole", delete_role},
	{"AttachRolePolicy", attach_role},
	{"DetachRolePolicy", detach_role},
	{"ListAttachedRolePolicies", list_attached_role},
	{"PutRolePolicy", put_role_policy},
	{"GetRolePolicy", get_role_policy},
	{"DeleteRolePolicy", delete_role_policy},
	{"ListRolePolicies", list_role_policies},
	{"CreatePolicy", create_policy},
	{"GetPolicy", get_policy},
	{"GetPolicyVersion", get_policy_version},
	{"CreatePolicyVersion", create_policy_version},
	{"ListPolicyVersions", list_policy_versions},
	{"DeletePolicyVersion", delete_policy_version},
	{"UpdateAssumeRolePolicy", update_assume_role_policy},
	{"DeletePolicy", delete_policy},
	{"CreateUser", create_user},
	{"GetUser", get_user},
	{"DeleteUser", delete_user},
	{"AttachUserPolicy", attach_user},
	{"DetachUserPolicy", detach_user},
	{"ListAttachedUserPolicies", list_attached_user},
	{"CreateAccessKey", create_access_key},
	{"ListAccessKeys", list_access_keys},
	{"DeleteAccessKey", delete_access_key},
};

/* Action, signature (scoped to service iam), content type and faults. */
static bool iam_admit(struct pp_mock_call *c)
{
	const char *ctype = pp_mock_header(c->req, "Content-Type");

	if (!pp_mock_aws_form_action(c->req->body, c->resp->action, sizeof(c->resp->action))) {
		pp_mock_aws_error(c->resp, PP_MOCK_AWS_IAM, 400, "MissingAction",
				  "IAM takes POST with a form body carrying Action=");
		return false;
	}
	if (!pp_mock_aws_signed(c, PP_MOCK_AWS_IAM, "iam", NULL))
		return false;
	if (!ctype || strncmp(ctype, "application/x-www-form-urlencoded", 33) != 0) {
		pp_mock_aws_error(c->resp, PP_MOCK_AWS_IAM, 400, "MalformedQueryString",
				  "Content-Type must be application/x-www-form-urlencoded, not %s",
				  ctype ? ctype : "(none)");
		return false;
	}
	return pp_mock_aws_faults(c, PP_MOCK_AWS_IAM, "iam");
}

static void iam_handle(struct pp_mock_call *c)
{
	struct iam_call ic = {.m = c->m, .resp = c->resp, .action = c->resp->action};
	struct pp_json *in = NULL;
	size_t i;

	if (pp_mock_spec_aws_query(c->m, "iam", ic.action, c->req, &in, c->resp))
		return;
	for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (strcmp(actions[i].name, ic.action) == 0)
			break;
	if (i == sizeof(actions) / sizeof(actions[0])) {
		pp_mock_aws_error(c->resp, PP_MOCK_AWS_IAM, 400, "InvalidAction",
				  "mock IAM does not implement %s", ic.action);
		pp_json_free(in);
		return;
	}
	ic.in = in;
	pp_mock_lock(c->m);
	ic.a = pp_mock_aws_account_of(c->state);
	actions[i].run(&ic);
	pp_mock_unlock(c->m);
	if (!c->resp->status) {
		pp_mock_resp_printf(c->resp, 200, "text/xml", "<%sResponse xmlns=\"" IAM_NS "\">",
				    ic.action);
		if (ic.out) {
			pp_buf_printf(&c->resp->body, "<%sResult>", ic.action);
			pp_mock_aws_xml_json(&c->resp->body, ic.out, false);
			pp_buf_printf(&c->resp->body, "</%sResult>", ic.action);
		}
		pp_buf_printf(&c->resp->body,
			      "<ResponseMetadata><RequestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE"
			      "</RequestId></ResponseMetadata></%sResponse>",
			      ic.action);
	}
	pp_mock_aws_changed(c->m, c->resp);
	pp_json_free(ic.out);
	pp_json_free(in);
}

static void iam_unmatched(struct pp_mock_call *c, bool other_method)
{
	pp_mock_aws_error(c->resp, PP_MOCK_AWS_IAM, 400, "MissingAction",
			  "IAM takes POST with a form body carrying Action=");
}

static const struct pp_mock_route iam_routes[] = {
	{"POST", "/aws/iam", iam_handle, .changes = true},
	{NULL},
};

const struct pp_mock_router pp_mock_aws_iam_router = {
	.api = "iam",
	.scope = "/aws/iam",
	.routes = iam_routes,
	.admit = iam_admit,
	.unmatched = iam_unmatched,
};
