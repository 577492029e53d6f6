/* Mock Amazon ECR repositories and CloudWatch Logs log groups: JSON 1.1
 * services (X-Amz-Target names the operation), judged by botocore's ECR and
 * Logs models (mock/spec_gate.c). Both take their tags in the create call:
 * ECR as a list of {Key, Value}, Logs as a map. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock/aws.h"
#include "mock/spec.h"

struct json_call {
	struct pp_mock *m;
	struct pp_mock_aws_account *a;
	const struct pp_json *in;
	struct pp_mock_resp *resp;
	const char *region;
	struct pp_json *out;
};

static void oom(struct json_call *c)
{
	pp_mock_aws_error(c->resp, PP_MOCK_AWS_JSON, 500, "ServerException", "mock: out of memory");
}

static const char *in_str(struct json_call *c, const char *key)
{
	return pp_json_get_string(c->in, key);
}

static double now_epoch(struct pp_mock *m)
{
	return pp_mock_wall(m, pp_mock_clock(m));
}

/* ---- ECR ---- */

static void ecr_not_found(struct json_call *c, const char *name)
{
	pp_mock_aws_error(c->resp, PP_MOCK_AWS_JSON, 400, "RepositoryNotFoundException",
			  "The repository with name '%s' does not exist in the registry with id "
			  "'" PP_MOCK_AWS_ACCOUNT "'",
			  name ? name : "");
}

static void ecr_create(struct json_call *c)
{
	const char *name = in_str(c, "repositoryName");
	struct pp_mock_aws_res *r;
	struct pp_json *o;
	char arn[400], uri[400];

	if (pp_mock_aws_find(c->a, "ecr.repository", c->region, name)) {
		pp_mock_aws_error(c->resp, PP_MOCK_AWS_JSON, 400,
				  "RepositoryAlreadyExistsException",
				  "The repository with name '%s' already exists in the registry "
				  "with id '" PP_MOCK_AWS_ACCOUNT "'",
				  name);
		return;
	}
	snprintf(arn, sizeof(arn), "arn:aws:ecr:%s:" PP_MOCK_AWS_ACCOUNT ":repository/%s",
		 c->region, name);
	snprintf(uri, sizeof(uri), PP_MOCK_AWS_ACCOUNT ".dkr.ecr.%s.amazonaws.com/%s", c->region,
		 name);
	o = pp_json_new(PP_JSON_OBJECT);
	if (o) {
		pp_json_set_string(o, "repositoryArn", arn);
		pp_json_set_string(o, "registryId", PP_MOCK_AWS_ACCOUNT);
		pp_json_set_string(o, "repositoryName", name);
		pp_json_set_string(o, "repositoryUri", uri);
		pp_json_set(o, "createdAt", pp_json_new_number(now_epoch(c->m)));
		pp_json_set_string(o, "imageTagMutability",
				   in_str(c, "imageTagMutability") ? in_str(c, "imageTagMutability")
								   : "MUTABLE");
	}
	r = pp_mock_aws_add(c->m, c->a, "ecr.repository", c->region, name, o,
			    pp_mock_aws_tags(pp_json_get(c->in, "tags"), "Key", "Value"));
	if (!r || !(c->out = pp_json_new(PP_JSON_OBJECT)) ||
	    pp_json_set(c->out, "repository", pp_json_clone(r->obj)))
		oom(c);
}

static void ecr_describe(struct json_call *c)
{
	const struct pp_json *names = pp_json_get(c->in, "repositoryNames");
	struct pp_json *list = pp_json_new(PP_JSON_ARRAY);

	pp_json_foreach (n, names) {
		if (!pp_mock_aws_find(c->a, "ecr.repository", c->region, n->str)) {
			pp_json_free(list);
			ecr_not_found(c, n->str);
			return;
		}
	}
	for (struct pp_mock_aws_res *r = pp_mock_aws_first(c->a); list && r; r = r->next) {
		bool listed = !names || !names->count;

		if (strcmp(r->type, "ecr.repository") != 0 || strcmp(r->region, c->region) != 0)
			continue;
		pp_json_foreach (n, names)
			listed = listed || strcmp(n->str, r->id) == 0;
		if (listed)
			pp_json_append(list, pp_json_clone(r->obj));
	}
	if (!list || !(c->out = pp_json_new(PP_JSON_OBJECT)) ||
	    pp_json_set(c->out, "repositories", list))
		oom(c);
}

static void ecr_delete(struct json_call *c)
{
	struct pp_mock_aws_res *r =
		pp_mock_aws_find(c->a, "ecr.repository", c->region, in_str(c, "repositoryName"));

	if (!r) {
		ecr_not_found(c, in_str(c, "repositoryName"));
		return;
	}
	if (!(c->out = pp_json_new(PP_JSON_OBJECT)) ||
	    pp_json_set(c->out, "repository", pp_json_clone(r->obj))) {
		oom(c);
		return;
	}
	pp_mock_aws_remove(c->m, c->a, r);
}

static struct pp_mock_aws_res *by_field(struct json_call *c, const char *type, const char *field,
					const char *value)
{
	for (struct pp_mock_aws_res *r = pp_mock_aws_first(c->a); value && r; r = r->next)
		if (strcmp(r->type, type) == 0 && pp_json_get_string(r->obj, field) &&
		    strcmp(pp_json_get_string(r->obj, field), value) == 0)
			return r;
	return NULL;
}

static void ecr_tags(struct json_call *c)
{
	struct pp_mock_aws_res *r =
		by_field(c, "ecr.repository", "repositoryArn", in_str(c, "resourceArn"));

	if (!r) {
		pp_mock_aws_error(
			c->resp, PP_MOCK_AWS_JSON, 400, "InvalidParameterException",
			"Invalid parameter at 'resourceArn' failed to satisfy constraint: "
			"'Invalid ARN'");
		return;
	}
	if (!(c->out = pp_json_new(PP_JSON_OBJECT)) ||
	    pp_json_set(c->out, "tags", pp_mock_aws_tag_list(r->tags, "Key", "Value")))
		oom(c);
}

/* ---- CloudWatch Logs ---- */

static void logs_not_found(struct json_call *c)
{
	pp_mock_aws_error(c->resp, PP_MOCK_AWS_JSON, 400, "ResourceNotFoundException",
			  "The specified log group does not exist.");
}

static void logs_create(struct json_call *c)
{
	const char *name = in_str(c, "logGroupName");
	struct pp_json *o;
	char arn[600];

	if (pp_mock_aws_find(c->a, "logs.group", c->region, name)) {
		pp_mock_aws_error(c->resp, PP_MOCK_AWS_JSON, 400, "ResourceAlreadyExistsException",
				  "The specified log group already exists");
		return;
	}
	o = pp_json_new(PP_JSON_OBJECT);
	if (o) {
		pp_json_set_string(o, "logGroupName", name);
		pp_json_set_int(o, "creationTime", (long long)(now_epoch(c->m) * 1000));
		pp_json_set_int(o, "metricFilterCount", 0);
		snprintf(arn, sizeof(arn), "arn:aws:logs:%s:" PP_MOCK_AWS_ACCOUNT ":log-group:%s:*",
			 c->region, name);
		pp_json_set_string(o, "arn", arn);
		arn[strlen(arn) - 2] = '\0';
		pp_json_set_string(o, "logGroupArn", arn);
		pp_json_set_int(o, "storedBytes", 0);
		pp_json_set_string(o, "logGroupClass", "STANDARD");
	}
	/* Logs takes its tags as a map, already the account's shape. */
	if (!pp_mock_aws_add(c->m, c->a, "logs.group", c->region, name, o,
			     pp_json_get(c->in, "tags") ? pp_json_clone(pp_json_get(c->in, "tags"))
							: pp_json_new(PP_JSON_OBJECT)) ||
	    !(c->out = pp_json_new(PP_JSON_OBJECT)))
		oom(c);
}

static void logs_describe(struct json_call *c)
{
	const char *prefix = in_str(c, "logGroupNamePrefix");
	struct pp_json *list = pp_json_new(PP_JSON_ARRAY);

	for (struct pp_mock_aws_res *r = pp_mock_aws_first(c->a); list && r; r = r->next)
		if (strcmp(r->type, "logs.group") == 0 && strcmp(r->region, c->region) == 0 &&
		    (!prefix || strncmp(r->id, prefix, strlen(prefix)) == 0))
			pp_json_append(list, pp_json_clone(r->obj));
	if (!list || !(c->out = pp_json_new(PP_JSON_OBJECT)) ||
	    pp_json_set(c->out, "logGroups", list))
		oom(c);
}

static void logs_delete(struct json_call *c)
{
	struct pp_mock_aws_res *r =
		pp_mock_aws_find(c->a, "logs.group", c->region, in_str(c, "logGroupName"));

	if (!r) {
		logs_not_found(c);
		return;
	}
	pp_mock_aws_remove(c->m, c->a, r);
	if (!(c->out = pp_json_new(PP_JSON_OBJECT)))
		oom(c);
}

static void logs_tags(struct json_call *c)
{
	struct pp_mock_aws_res *r =
		by_field(c, "logs.group", "logGroupArn", in_str(c, "resourceArn"));

	if (!r) {
		logs_not_found(c);
		return;
	}
	if (!(c->out = pp_json_new(PP_JSON_OBJECT)) ||
	    pp_json_set(c->out, "tags", pp_json_clone(r->tags)))
		oom(c);
}

/* ---- the two endpoints ---- */

struct action {
	const char *name;
	void (*run)(struct json_call *c);
};

static const struct action ecr_actions[] = {
	{"CreateRepository", ecr_create},
	{"DescribeRepositories", ecr_describe},
	{"DeleteRepository", ecr_delete},
	{"ListTagsForResource", ecr_tags},
	{NULL, NULL},
};

static const struct action logs_actions[] = {
	{"CreateLogGroup", logs_create},
	{"DescribeLogGroups", logs_describe},
	{"DeleteLogGroup", logs_delete},
	{"ListTagsForResource", logs_tags},
	{NULL, NULL},
};

/* The service by its router: signing name, X-Amz-Target prefix, actions. */
static const struct service {
	const char *api, *target;
	const struct action *actions;
} ecr = {"ecr", "AmazonEC2ContainerRegistry_V20150921.", ecr_actions},
  logs = {"logs", "Logs_20140328.", logs_actions};

static const struct service *service_of(const struct pp_mock_call *c)
{
	return strncmp(c->req->path, "/aws/ecr", 8) == 0 ? &ecr : &logs;
}

static bool json_admit(struct pp_mock_call *c)
{
	const struct service *s = service_of(c);
	const char *target = pp_mock_header(c->req, "X-Amz-Target");
	const char *ctype = pp_mock_header(c->req, "Content-Type");

	if (!target || strncmp(target, s->target, strlen(s->target)) != 0) {
		pp_mock_aws_error(c->resp, PP_MOCK_AWS_JSON, 400, "UnknownOperationException",
				  "X-Amz-Target must start with %s", s->target);
		return false;
	}
	snprintf(c->resp->action, sizeof(c->resp->action), "%s", target + strlen(s->target));
	if (!pp_mock_aws_signed(c, PP_MOCK_AWS_JSON, s->api, NULL))
		return false;
	if (!ctype || strncmp(ctype, "application/x-amz-json-1.1", 26) != 0) {
		pp_mock_aws_error(c->resp, PP_MOCK_AWS_JSON, 400, "SerializationException",
				  "Content-Type must be application/x-amz-json-1.1, not %s",
				  ctype ? ctype : "(none)");
		return false;
	}
	return pp_mock_aws_faults(c, PP_MOCK_AWS_JSON, s->api);
}

static void json_bad_body(struct pp_mock_call *c, const char *why)
{
	pp_mock_aws_error(c->resp, PP_MOCK_AWS_JSON, 400, "SerializationException",
			  "request body is not a JSON object: %s", why);
}

static bool json_validate(struct pp_mock_call *c)
{
	return !pp_json_is(c->body, PP_JSON_OBJECT) ||
	       !pp_mock_spec_aws_json(c->m, service_of(c)->api, c->resp->action, c->body, c->resp);
}

static void json_handle(struct pp_mock_call *c)
{
	const struct service *s = service_of(c);
	struct json_call jc = {.m = c->m, .in = c->body, .resp = c->resp, .region = c->note};
	const struct action *act = s->actions;

	if (!pp_json_is(c->body, PP_JSON_OBJECT)) {
		json_bad_body(c, "not an object");
		return;
	}
	while (act->name && strcmp(act->name, c->resp->action) != 0)
		act++;
	if (!act->name) {
		pp_mock_aws_error(c->resp, PP_MOCK_AWS_JSON, 400, "UnknownOperationException",
				  "mock %s does not implement %s", s->api, c->resp->action);
		return;
	}
	pp_mock_lock(c->m);
	jc.a = pp_mock_aws_account_of(c->state);
	act->run(&jc);
	pp_mock_unlock(c->m);
	if (!c->resp->status && jc.out)
		pp_mock_resp_json(c->resp, 200, "application/x-amz-json-1.1", jc.out);
	pp_mock_aws_changed(c->m, c->resp);
	pp_json_free(jc.out);
}

static void json_unmatched(struct pp_mock_call *c, bool other_method)
{
	pp_mock_aws_error(c->resp, PP_MOCK_AWS_JSON, 405, "UnknownOperationException",
			  "%s takes POST with X-Amz-Target", service_of(c)->api);
}

static const struct pp_mock_route ecr_routes[] = {
	{"POST", "/aws/ecr", json_handle, .changes = true},
	{NULL},
};

static const struct pp_mock_route logs_routes[] = {
	{"POST", "/aws/logs", json_handle, .changes = true},
	{NULL},
};

const struct pp_mock_router pp_mock_aws_ecr_router = {
	.api = "ecr",
	.scope = "/aws/ecr",
	.json_body = true,
	.routes = ecr_routes,
	.admit = json_admit,
	.bad_body = json_bad_body,
	.validate = json_validate,
	.unmatched = json_unmatched,
};

const struct pp_mock_router pp_mock_aws_logs_router = {
	.api = "logs",
	.scope = "/aws/logs",
	.json_body = true,
	.routes = logs_routes,
	.admit = json_admit,
	.bad_body = json_bad_body,
	.validate = json_validate,
	.unmatched = json_unmatched,
};
