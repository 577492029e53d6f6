/* The mock AWS account's provisioned resources: IAM roles, policies and
 * users, EC2 networks, ECR repositories, log groups and ECS clusters, one
 * list for every service (aws_iam.c, aws_ec2.c, aws_json.c write to it).
 * Each resource keeps its description in its service's names and its tags
 * apart, so every API answers them in its own tag shape, and the tests can
 * count what is live and what carries no tag at all (GET /aws/account). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock/aws.h"

struct pp_mock_aws_account {
	struct pp_mock_aws_res *list;
	size_t n;
	char seeded_regions[8][32]; /* regions whose default VPC exists (or was refused) */
	size_t nseeded;
};

/* A cap like the ECS module's: far more than any test creates. */
#define MAX_RESOURCES 100000

int pp_mock_aws_account_new(struct pp_mock_aws_account **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : PP_ENOMEM;
}

static void res_free(struct pp_mock_aws_res *r)
{
	pp_json_free(r->obj);
	pp_json_free(r->tags);
	pp_json_free(r->extra);
	free(r);
}

static void drop_all(struct pp_mock_aws_account *a)
{
	while (a->list) {
		struct pp_mock_aws_res *r = a->list;

		a->list = r->next;
		res_free(r);
	}
	a->n = 0;
	a->nseeded = 0;
}

void pp_mock_aws_account_free(struct pp_mock_aws_account *a)
{
	if (!a)
		return;
	drop_all(a);
	free(a);
}

struct pp_mock_aws_res *pp_mock_aws_first(struct pp_mock_aws_account *a)
{
	return a->list;
}

struct pp_mock_aws_res *pp_mock_aws_find(struct pp_mock_aws_account *a, const char *type,
					 const char *region, const char *id)
{
	for (struct pp_mock_aws_res *r = a->list; r; r = r->next)
		if (strcmp(r->type, type) == 0 && strcmp(r->region, region) == 0 &&
		    strcmp(r->id, id) == 0)
			return r;
	return NULL;
}

static struct pp_mock_aws_res *add(struct pp_mock_aws_account *a, const char *type,
				   const char *region, const char *id, struct pp_json *obj,
				   struct pp_json *tags)
{
	struct pp_mock_aws_res *r = a->n < MAX_RESOURCES ? calloc(1, sizeof(*r)) : NULL;

	if (!r || !obj || !tags) {
		free(r);
		pp_json_free(obj);
		pp_json_free(tags);
		return NULL;
	}
	snprintf(r->type, sizeof(r->type), "%s", type);
	snprintf(r->region, sizeof(r->region), "%s", region);
	snprintf(r->id, sizeof(r->id), "%s", id);
	r->obj = obj;
	r->tags = tags;
	/* Appended: Describe answers list resources in creation order. */
	struct pp_mock_aws_res **pp = &a->list;

	while (*pp)
		pp = &(*pp)->next;
	*pp = r;
	a->n++;
	return r;
}

struct pp_mock_aws_res *pp_mock_aws_add(struct pp_mock *m, struct pp_mock_aws_account *a,
					const char *type, const char *region, const char *id,
					struct pp_json *obj, struct pp_json *tags)
{
	struct pp_mock_aws_res *r = add(a, type, region, id, obj, tags);

	if (r)
		pp_mock_count(m, "aws.created", type);
	return r;
}

void pp_mock_aws_remove(struct pp_mock *m, struct pp_mock_aws_account *a, struct pp_mock_aws_res *r)
{
	for (struct pp_mock_aws_res **pp = &a->list; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			a->n--;
			pp_mock_count(m, "aws.deleted", r->type);
			res_free(r);
			return;
		}
	}
}

struct pp_json *pp_mock_aws_tags(const struct pp_json *list, const char *key_name,
				 const char *value_name)
{
	struct pp_json *tags = pp_json_new(PP_JSON_OBJECT);

	pp_json_foreach (t, list) {
		const char *k = pp_json_get_string(t, key_name);
		const char *v = pp_json_get_string(t, value_name);

		if (tags && k && pp_json_set_string(tags, k, v ? v : "")) {
			pp_json_free(tags);
			return NULL;
		}
	}
	return tags;
}

struct pp_json *pp_mock_aws_tag_list(const struct pp_json *tags, const char *key_name,
				     const char *value_name)
{
	struct pp_json *list = pp_json_new(PP_JSON_ARRAY);

	pp_json_foreach (t, tags) {
		struct pp_json *o = pp_json_new(PP_JSON_OBJECT);

		if (!o || pp_json_set_string(o, key_name, t->key) ||
		    pp_json_set_string(o, value_name, t->str ? t->str : "") ||
		    pp_json_append(list, o)) {
			pp_json_free(list);
			return NULL;
		}
	}
	return list;
}

void pp_mock_aws_changed(struct pp_mock *m, const struct pp_mock_resp *resp)
{
	const char *a = resp->action;

	if (resp->status >= 200 && resp->status < 300 && strncmp(a, "Describe", 8) &&
	    strncmp(a, "Get", 3) && strncmp(a, "List", 4))
		pp_mock_count(m, "aws.changes", a);
}

bool pp_mock_aws_form_action(const char *body, char *out, size_t size)
{
	for (const char *p = body; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
		size_t n;

		if (strncmp(p, "Action=", 7) != 0)
			continue;
		p += 7;
		n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
		if (n == 0 || n >= size || (p[n] && p[n] != '&'))
			return false;
		memcpy(out, p, n);
		out[n] = '\0';
		return true;
	}
	return false;
}

struct pp_json *pp_mock_aws_extra(struct pp_mock_aws_res *r, const char *name, bool array)
{
	struct pp_json *v;

	if (!r->extra && !(r->extra = pp_json_new(PP_JSON_OBJECT)))
		return NULL;
	if ((v = pp_json_get(r->extra, name)))
		return v;
	v = pp_json_new(array ? PP_JSON_ARRAY : PP_JSON_OBJECT);
	if (!v || pp_json_set(r->extra, name, v))
		return NULL;
	return v;
}

/* ---- XML ---- */

void pp_mock_aws_xml_text(struct pp_buf *b, const char *text)
{
	for (const char *s = text; s && *s; s++) {
		switch (*s) {
		case '<': pp_buf_puts(b, "&lt;"); break;
		case '>': pp_buf_puts(b, "&gt;"); break;
		case '&': pp_buf_puts(b, "&amp;"); break;
		case '"': pp_buf_puts(b, "&quot;"); break;
		default: pp_buf_putc(b, *s);
		}
	}
}

static void xml_value(struct pp_buf *b, const struct pp_json *v, bool ec2)
{
	switch (v->type) {
	case PP_JSON_STRING: pp_mock_aws_xml_text(b, v->str); break;
	case PP_JSON_NUMBER: pp_buf_puts(b, v->str); break;
	case PP_JSON_BOOL: pp_buf_puts(b, v->b ? "true" : "false"); break;
	case PP_JSON_OBJECT: pp_mock_aws_xml_json(b, v, ec2); break;
	case PP_JSON_ARRAY:
		pp_json_foreach (e, v) {
			pp_buf_puts(b, ec2 ? "<item>" : "<member>");
			xml_value(b, e, ec2);
			pp_buf_puts(b, ec2 ? "</item>" : "</member>");
		}
		break;
	default: break;
	}
}

void pp_mock_aws_xml_json(struct pp_buf *b, const struct pp_json *j, bool ec2)
{
	pp_json_foreach (m, j) {
		if (pp_json_is(m, PP_JSON_NULL))
			continue;
		pp_buf_printf(b, "<%s>", m->key);
		xml_value(b, m, ec2);
		pp_buf_printf(b, "</%s>", m->key);
	}
}

/* ---- seeding ---- */

static void seed_identities(struct pp_mock_aws_account *a)
{
	struct pp_json *user = pp_json_new(PP_JSON_OBJECT), *role = pp_json_new(PP_JSON_OBJECT);

	if (user) {
		pp_json_set_string(user, "Path", "/");
		pp_json_set_string(user, "UserName", PP_MOCK_AWS_USER);
		pp_json_set_string(user, "UserId", "AIDAPUSHPOOLMOCKUSER");
		pp_json_set_string(user, "Arn",
				   "arn:aws:iam::" PP_MOCK_AWS_ACCOUNT ":user/" PP_MOCK_AWS_USER);
		pp_json_set_string(user, "CreateDate", "2024-01-01T00:00:00Z");
	}
	if (role) {
		pp_json_set_string(role, "Path", "/");
		pp_json_set_string(role, "RoleName", PP_MOCK_AWS_ROLE);
		pp_json_set_string(role, "RoleId", "AROAPUSHPOOLMOCK");
		pp_json_set_string(role, "Arn",
				   "arn:aws:iam::" PP_MOCK_AWS_ACCOUNT ":role/" PP_MOCK_AWS_ROLE);
		pp_json_set_string(role, "CreateDate", "2024-01-01T00:00:00Z");
		pp_json_set_string(
			role, "AssumeRolePolicyDocument",
			"%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D");
	}
	struct pp_mock_aws_res *u =
		add(a, "iam.user", "", PP_MOCK_AWS_USER, user, pp_json_new(PP_JSON_OBJECT));
	struct pp_mock_aws_res *r =
		add(a, "iam.role", "", PP_MOCK_AWS_ROLE, role, pp_json_new(PP_JSON_OBJECT));

	if (u)
		u->seeded = true;
	if (r)
		r->seeded = true;
}

void pp_mock_aws_account_reset(struct pp_mock *m, struct pp_mock_aws_account *a)
{
	drop_all(a);
	seed_identities(a);
}

void pp_mock_aws_region_seed(struct pp_mock *m, struct pp_mock_aws_account *a, const char *region)
{
	char vpc_id[32], hex[24];
	struct pp_json *vpc;
	struct pp_mock_aws_res *r;

	for (size_t i = 0; i < a->nseeded; i++)
		if (strcmp(a->seeded_regions[i], region) == 0)
			return;
	if (a->nseeded == sizeof(a->seeded_regions) / sizeof(a->seeded_regions[0]))
		return; /* more regions than any test uses: no default VPC there */
	snprintf(a->seeded_regions[a->nseeded++], sizeof(a->seeded_regions[0]), "%s", region);
	if (!pp_mock_behaviour(m, "aws.default_vpc", NULL))
		return;
	pp_mock_random_hex(m, hex, 17);
	snprintf(vpc_id, sizeof(vpc_id), "vpc-%s", hex);
	vpc = pp_json_new(PP_JSON_OBJECT);
	if (vpc) {
		pp_json_set_string(vpc, "vpcId", vpc_id);
		pp_json_set_string(vpc, "ownerId", PP_MOCK_AWS_ACCOUNT);
		pp_json_set_string(vpc, "state", "available");
		pp_json_set_string(vpc, "cidrBlock", "172.31.0.0/16");
		pp_json_set_string(vpc, "instanceTenancy", "default");
		pp_json_set_bool(vpc, "isDefault", true);
	}
	r = add(a, "ec2.vpc", region, vpc_id, vpc, pp_json_new(PP_JSON_OBJECT));
	if (r)
		r->seeded = true;
	/* One default subnet per zone, as AWS creates them. */
	for (int z = 0; z < 3; z++) {
		struct pp_json *sn = pp_json_new(PP_JSON_OBJECT);
		char id[32], az[40], cidr[24];

		pp_mock_random_hex(m, hex, 17);
		snprintf(id, sizeof(id), "subnet-%s", hex);
		snprintf(az, sizeof(az), "%s%c", region, 'a' + z);
		snprintf(cidr, sizeof(cidr), "172.31.%d.0/20", z * 16);
		if (sn) {
			pp_json_set_string(sn, "subnetId", id);
			pp_json_set_string(sn, "vpcId", vpc_id);
			pp_json_set_string(sn, "state", "available");
			pp_json_set_string(sn, "cidrBlock", cidr);
			pp_json_set_string(sn, "availabilityZone", az);
			pp_json_set_string(sn, "availableIpAddressCount", "4091");
			pp_json_set_bool(sn, "defaultForAz", true);
			pp_json_set_bool(sn, "mapPublicIpOnLaunch", true);
			pp_json_set_string(sn, "ownerId", PP_MOCK_AWS_ACCOUNT);
		}
		r = add(a, "ec2.subnet", region, id, sn, pp_json_new(PP_JSON_OBJECT));
		if (r)
			r->seeded = true;
	}
}

/* ---- counters and the account view ---- */

void pp_mock_aws_account_stats(struct pp_mock_aws_account *a, struct pp_json *live)
{
	long long untagged = 0;

	for (struct pp_mock_aws_res *r = a->list; r; r = r->next) {
		char key[64];

		snprintf(key, sizeof(key), "live_aws_%s", r->type);
		for (char *s = key; *s; s++)
			if (*s == '.')
				*s = '_';
		pp_json_set_int(live, key, pp_json_get_int(live, key, 0) + 1);
		untagged += !r->seeded && r->tags->count == 0;
	}
	pp_json_set_int(live, "live_aws_untagged", untagged);
}

static struct pp_json *extra_clone(const struct pp_mock_aws_res *r, const char *name, bool array)
{
	const struct pp_json *v = r->extra ? pp_json_get(r->extra, name) : NULL;

	return v ? pp_json_clone(v) : pp_json_new(array ? PP_JSON_ARRAY : PP_JSON_OBJECT);
}

/* GET /aws/account: every resource with its type, id, region, tags,
 * whether it was there from the start, and an IAM entity's attached and
 * inline policies; the tests' view of the account. */
static void account_list(struct pp_mock_call *c)
{
	struct pp_mock_aws_account *a = pp_mock_aws_account_of(c->state);
	struct pp_json *out = pp_json_new(PP_JSON_ARRAY);

	snprintf(c->resp->action, sizeof(c->resp->action), "account");
	for (struct pp_mock_aws_res *r = a->list; out && r; r = r->next) {
		struct pp_json *o = pp_json_new(PP_JSON_OBJECT);

		if (!o || pp_json_set_string(o, "type", r->type) ||
		    pp_json_set_string(o, "id", r->id) ||
		    pp_json_set_string(o, "region", r->region) ||
		    pp_json_set_bool(o, "seeded", r->seeded) ||
		    pp_json_set(o, "tags", pp_json_clone(r->tags)) ||
		    pp_json_set(o, "description", pp_json_clone(r->obj)) ||
		    pp_json_set(o, "attached", extra_clone(r, "attached", true)) ||
		    pp_json_set(o, "inline", extra_clone(r, "inline", false)) ||
		    pp_json_append(out, o)) {
			pp_json_free(out);
			out = NULL;
		}
	}
	if (out)
		pp_mock_resp_json(c->resp, 200, "application/json", out);
	else
		pp_mock_resp_printf(c->resp, 500, "text/plain", "mock: out of memory\n");
	pp_json_free(out);
}

/* POST /aws/account {"type","id","region","description","tags"}: a
 * resource made outside pushpool (tests plant what destroy must keep);
 * with "update": true and "extra", an existing one changed in place. */
static void account_plant(struct pp_mock_call *c)
{
	struct pp_mock_aws_account *a = pp_mock_aws_account_of(c->state);
	const char *type = pp_json_get_string(c->body, "type");
	const char *id = pp_json_get_string(c->body, "id");
	const char *region = pp_json_get_string(c->body, "region");
	const struct pp_json *desc = pp_json_get(c->body, "description");
	const struct pp_json *tags = pp_json_get(c->body, "tags");
	struct pp_mock_aws_res *r;

	snprintf(c->resp->action, sizeof(c->resp->action), "plant");
	bool update = pp_json_get_bool(c->body, "update", false);

	if (!type || !id || (!update && !pp_json_is(desc, PP_JSON_OBJECT)) ||
	    (tags && !pp_json_is(tags, PP_JSON_OBJECT))) {
		pp_mock_resp_printf(c->resp, 400, "text/plain",
				    "want {\"type\",\"id\",\"region\",\"description\":{},"
				    "\"tags\":{}}\n");
		return;
	}
	if ((r = pp_mock_aws_find(a, type, region ? region : "", id))) {
		/* "update": change a resource behind its owner's back (a test's
		 * drift): description and extra members replaced one by one. */
		if (!update) {
			pp_mock_resp_printf(c->resp, 409, "text/plain", "%s %s exists\n", type, id);
			return;
		}
		pp_json_foreach (m, desc)
			pp_json_set(r->obj, m->key, pp_json_clone(m));
		pp_json_foreach (m, pp_json_get(c->body, "extra"))
			if (pp_mock_aws_extra(r, m->key, m->type == PP_JSON_ARRAY))
				pp_json_set(r->extra, m->key, pp_json_clone(m));
		pp_mock_count(c->m, "aws.updated", type);
		pp_mock_resp_printf(c->resp, 200, "application/json", "{}\n");
		return;
	}
	if (update) {
		pp_mock_resp_printf(c->resp, 404, "text/plain", "no %s %s to update\n", type, id);
		return;
	}
	if (!pp_mock_aws_add(c->m, a, type, region ? region : "", id, pp_json_clone(desc),
			     tags ? pp_json_clone(tags) : pp_json_new(PP_JSON_OBJECT))) {
		pp_mock_resp_printf(c->resp, 500, "text/plain", "mock: out of memory\n");
		return;
	}
	pp_mock_resp_printf(c->resp, 201, "application/json", "{}\n");
}

static const struct pp_mock_route account_routes[] = {
	{"GET", "/aws/account", account_list, .changes = false},
	{"POST", "/aws/account", account_plant, .changes = true},
	{NULL},
};

const struct pp_mock_router pp_mock_aws_account_router = {
	.api = "aws",
	.scope = "/aws/account",
	.locked = true,
	.json_body = true,
	.routes = account_routes,
};

/* ---- ECS clusters (JSON 1.1, through aws.c's ECS endpoint) ---- */

static struct pp_json *cluster_json(const struct pp_mock_aws_res *r, bool with_tags)
{
	struct pp_json *o = pp_json_clone(r->obj);

	if (o && with_tags)
		pp_json_set(o, "tags", pp_mock_aws_tag_list(r->tags, "key", "value"));
	return o;
}

static const char *cluster_name_of(const char *ref)
{
	const char *slash = ref ? strrchr(ref, '/') : NULL;

	return slash ? slash + 1 : ref;
}

void pp_mock_aws_ecs_clusters(struct pp_mock *m, struct pp_mock_aws_account *a, const char *action,
			      const struct pp_json *body, const char *region,
			      struct pp_mock_resp *resp)
{
	struct pp_json *out = pp_json_new(PP_JSON_OBJECT);
	struct pp_mock_aws_res *r;

	if (!out) {
		pp_mock_aws_error(resp, PP_MOCK_AWS_JSON, 500, "ServerException", "out of memory");
		return;
	}
	if (strcmp(action, "CreateCluster") == 0) {
		const char *name = pp_json_get_string(body, "clusterName");
		char arn[300];

		name = name ? name : "default";
		r = pp_mock_aws_find(a, "ecs.cluster", region, name);
		/* CreateCluster of an existing active cluster answers it unchanged. */
		if (!r) {
			struct pp_json *obj = pp_json_new(PP_JSON_OBJECT);

			snprintf(arn, sizeof(arn),
				 "arn:aws:ecs:%s:" PP_MOCK_AWS_ACCOUNT ":cluster/%s", region, name);
			if (obj) {
				pp_json_set_string(obj, "clusterArn", arn);
				pp_json_set_string(obj, "clusterName", name);
				pp_json_set_string(obj, "status", "ACTIVE");
				pp_json_set_int(obj, "registeredContainerInstancesCount", 0);
				pp_json_set_int(obj, "runningTasksCount", 0);
				pp_json_set_int(obj, "pendingTasksCount", 0);
				pp_json_set_int(obj, "activeServicesCount", 0);
			}
			r = pp_mock_aws_add(
				m, a, "ecs.cluster", region, name, obj,
				pp_mock_aws_tags(pp_json_get(body, "tags"), "key", "value"));
		}
		if (!r || pp_json_set(out, "cluster", cluster_json(r, true))) {
			pp_json_free(out);
			pp_mock_aws_error(resp, PP_MOCK_AWS_JSON, 500, "ServerException",
					  "out of memory");
			return;
		}
	} else if (strcmp(action, "DescribeClusters") == 0) {
		struct pp_json *found = pp_json_new(PP_JSON_ARRAY);
		struct pp_json *failures = pp_json_new(PP_JSON_ARRAY);
		const struct pp_json *names = pp_json_get(body, "clusters");
		bool tags = false;
		struct pp_json deflt = {.type = PP_JSON_STRING, .str = (char *)"default", .len = 7};

		pp_json_foreach (i, pp_json_get(body, "include"))
			tags = tags || (i->str && strcmp(i->str, "TAGS") == 0);
		for (const struct pp_json *n = names && names->child ? names->child : &deflt; n;
		     n = n == &deflt ? NULL : n->next) {
			r = n->str ? pp_mock_aws_find(a, "ecs.cluster", region,
						      cluster_name_of(n->str))
				   : NULL;
			if (r) {
				pp_json_append(found, cluster_json(r, tags));
			} else {
				struct pp_json *f = pp_json_new(PP_JSON_OBJECT);
				char arn[300];

				snprintf(arn, sizeof(arn),
					 "arn:aws:ecs:%s:" PP_MOCK_AWS_ACCOUNT ":cluster/%s",
					 region, n->str ? cluster_name_of(n->str) : "");
				pp_json_set_string(f, "arn", arn);
				pp_json_set_string(f, "reason", "MISSING");
				pp_json_append(failures, f);
			}
		}
		pp_json_set(out, "clusters", found);
		pp_json_set(out, "failures", failures);
	} else {
		const char *ref = pp_json_get_string(body, "cluster");

		r = pp_mock_aws_find(a, "ecs.cluster", region, cluster_name_of(ref ? ref : ""));
		if (!r) {
			pp_json_free(out);
			pp_mock_aws_error(resp, PP_MOCK_AWS_JSON, 400, "ClusterNotFoundException",
					  "Cluster not found.");
			return;
		}
		struct pp_json *gone = cluster_json(r, false);

		if (gone)
			pp_json_set_string(gone, "status", "INACTIVE");
		pp_json_set(out, "cluster", gone);
		pp_mock_aws_remove(m, a, r);
	}
	pp_mock_resp_json(resp, 200, "application/x-amz-json-1.1", out);
	pp_json_free(out);
}
