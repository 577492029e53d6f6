/* AWS ECS (ecs:push): the task execution role (trusted by
 * ecs-tasks.amazonaws.com, the managed AmazonECSTaskExecutionRolePolicy and
 * an inline logs:CreateLogGroup, which Prefect's provisioner leaves out:
 * PrefectHQ/prefect#20237), the ECS cluster, a CloudWatch log group, an ECR
 * repository, the network (the default VPC's subnets when the region has
 * one, else a VPC with a public subnet in up to three zones, an internet
 * gateway, a route table) with a security group that lets nothing in, and
 * the dispatcher's permissions: a customer managed policy attached to the
 * identity the dispatcher already runs as (keyless, the default), or with
 * --create-key to a new IAM user with an access key.
 *
 * Ownership: every resource carries the tag pushpool-pool=POOL in its
 * create call (Tags, tags, TagSpecifications), and is found again by it, so
 * a re-run after kill -9 adopts what an interrupted run made. The role's
 * policies belong to the role; the attachment to the dispatcher's own
 * identity carries nothing and is recorded in the journal before it is made.
 *
 * Protocols: IAM, STS and EC2 speak the Query protocol (form requests
 * serialised as botocore does by aws_query.c, XML answers read by lib/xml); ECS, ECR and
 * CloudWatch Logs JSON 1.1. All are signed with SigV4 by the credential
 * (pp_cred_set_scope names the service before each call).
 *
 * Endpoints: the AWS hosts (iam.amazonaws.com and sts.amazonaws.com, signed
 * for us-east-1; ec2, ecs, logs and api.ecr in the region), or with a pool
 * endpoint E ending in /ecs (the ECS endpoint the pool dispatches to, the
 * mock's BASE/aws/ecs) its siblings: E/../iam, E/../sts, E/../ec2,
 * E/../ecr, E/../logs. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/auth.h"
#include "lib/file.h"
#include "lib/log.h"
#include "lib/xml.h"
#include "provision/aws_query.h"
#include "provision/provision.h"

#define EXEC_POLICY_ARN "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
#define INLINE_LOGS	"pushpool-create-log-group"
#define VPC_CIDR	"10.0.0.0/16"
#define MAX_ZONES	3
/* Throttled answers AWS gives with HTTP 400 retried this many times. */
#define THROTTLE_TRIES 6

struct aws {
	char region[32];
	char pool[PP_NAME_MAX];
	char base[512]; /* E/.. when the pool has an endpoint, else "" */
	/* deterministic names */
	char role[64], cluster[64], log_group[128], repo[128], policy[128], user[64], net[64];
	/* what inspect found or create made */
	char account[16];
	bool principal_is_user;
	char principal[128];
	char role_arn[256], cluster_arn[300], policy_arn[300];
	bool default_vpc;
	char vpc[32], igw[32], rtb[32], sg[32];
	char zones[MAX_ZONES][32];
	char subnets[MAX_ZONES][32];
	size_t nzones;
	char key_id[32], key_secret[64];
	bool key_kept; /* the key file's key is the user's: no new key */
};

/* The --create-key user's key, a shared credentials file in the pool's
 * key directory (read by source profile). */
#define KEY_FILE     "aws-credentials"
#define KEY_FILE_MAX 4096

/* ---- names ---- */

static void slug(const char *pool, char *out, size_t size)
{
	size_t n = 0;

	for (const char *p = pool; *p && n + 1 < size && n < 40; p++) {
		char c = (char)tolower((unsigned char)*p);

		out[n++] = isalnum((unsigned char)c) ? c : '-';
	}
	out[n] = '\0';
}

/* An element's text, "" when absent. */
static const char *text_of(const struct pp_xml *x, const char *path)
{
	const char *t = pp_xml_path_text(x, path);

	return t ? t : "";
}

/* The execution role's trust policy. */
#define TRUST_POLICY                                                                               \
	"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","                        \
	"\"Principal\":{\"Service\":\"ecs-tasks.amazonaws.com\"},\"Action\":\"sts:AssumeRole\"}]}"

/* Whether a policy document IAM answered (percent-encoded JSON) says what
 * want says: the same JSON, whatever its spacing or key order. */
static bool same_document(const char *encoded, const char *want)
{
	struct pp_json *a = NULL, *b = NULL;
	char buf[8192];
	size_t n = 0;
	bool same;

	for (const char *s = encoded; s && *s && n + 1 < sizeof(buf); s++) {
		if (s[0] == '%' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
			char hex[3] = {s[1], s[2], '\0'};

			buf[n++] = (char)strtol(hex, NULL, 16);
			s += 2;
		} else {
			buf[n++] = *s;
		}
	}
	buf[n] = '\0';
	same = !pp_json_parse(buf, n, NULL, &a, NULL) &&
	       !pp_json_parse(want, strlen(want), NULL, &b, NULL) && pp_json_equal(a, b);
	pp_json_free(a);
	pp_json_free(b);
	return same;
}

/* The access key id of the key file an earlier apply wrote; "" if none. */
static void local_key_id(const struct pp_prov_ctx *ctx, char *out, size_t size)
{
	struct pp_buf text;
	char path[4200];
	const char *line;

	out[0] = '\0';
	if (!ctx->opts->keydir)
		return;
	snprintf(path, sizeof(path), "%s/" KEY_FILE, ctx->opts->keydir);
	pp_buf_init(&text, KEY_FILE_MAX);
	if (!pp_file_read(path, KEY_FILE_MAX, &text, NULL) &&
	    (line = strstr(pp_buf_str(&text), "aws_access_key_id = ")))
		snprintf(out, size, "%.*s", (int)strcspn(line + 20, "\r\n"), line + 20);
	OPENSSL_cleanse(text.data, text.len);
	pp_buf_free(&text);
}

/* ---- endpoints and sending ---- */

static void service_url(const struct aws *a, const char *service, char *out, size_t size)
{
	if (a->base[0])
		snprintf(out, size, "%s/%s", a->base, service);
	else if (!strcmp(service, "iam") || !strcmp(service, "sts"))
		snprintf(out, size, "https://%s.amazonaws.com/", service);
	else if (!strcmp(service, "ecr"))
		snprintf(out, size, "https://api.ecr.%s.amazonaws.com/", a->region);
	else
		snprintf(out, size, "https://%s.%s.amazonaws.com/", service, a->region);
}

static void scope(struct pp_prov_ctx *ctx, const struct aws *a, const char *service)
{
	bool global = !strcmp(service, "iam") || !strcmp(service, "sts");

	pp_cred_set_scope(ctx->cred, global ? "us-east-1" : a->region, service);
}

/* Send with the throttling AWS answers as HTTP 400 retried; *code gets the
 * error's code when the call failed with an answer. */
static int send(struct pp_prov_ctx *ctx, const struct aws *a, const char *service,
		const char *ctype, const char *const *headers, const char *body,
		struct pp_http_resp *resp, char *code, size_t code_size, struct pp_error *err)
{
	char url[600];
	int rc;

	service_url(a, service, url, sizeof(url));
	for (int attempt = 0;; attempt++) {
		scope(ctx, a, service);
		rc = pp_prov_send_headers(ctx, "POST", url, ctype, headers, body, strlen(body),
					  resp, err);
		code[0] = '\0';
		if (!rc)
			return 0;
		pp_awsq_error_code(resp->body.data, resp->body.len, code, code_size);
		if (attempt + 1 < THROTTLE_TRIES &&
		    (!strcmp(code, "Throttling") || !strcmp(code, "ThrottlingException") ||
		     !strcmp(code, "RequestLimitExceeded"))) {
			pp_http_resp_free(resp);
			if ((rc = pp_prov_pause(ctx, attempt, err)))
				return rc;
			continue;
		}
		return rc;
	}
}

/* ---- the Query protocol ---- */

/* One Query call; params (may be NULL) is taken. The answer's XML in *out
 * (caller frees); code as for send. */
static int query(struct pp_prov_ctx *ctx, const struct aws *a, const char *service,
		 const char *action, struct pp_json *params, struct pp_xml **out, char *code,
		 size_t code_size, struct pp_error *err)
{
	const char *version = !strcmp(service, "ec2")	? "2016-11-15"
			      : !strcmp(service, "iam") ? "2010-05-08"
							: "2011-06-15";
	struct pp_http_resp resp;
	struct pp_buf b;
	int rc;

	*out = NULL;
	pp_buf_init(&b, 1 << 20);
	rc = pp_awsq_form(&b, action, version, params,
			  !strcmp(service, "ec2") ? PP_AWSQ_EC2 : PP_AWSQ_QUERY);
	pp_json_free(params);
	if (rc) {
		pp_buf_free(&b);
		return pp_fail(err, rc, "%s %s: %s", service, action,
			       rc == PP_ENOMEM ? "out of memory"
					       : "a parameter name is not a wire name");
	}
	rc = send(ctx, a, service, "application/x-www-form-urlencoded; charset=utf-8", NULL,
		  pp_buf_str(&b), &resp, code, code_size, err);
	pp_buf_free(&b);
	if (!rc && pp_xml_parse(resp.body.data, resp.body.len, NULL, out, err))
		rc = pp_error_prefix(err, "%s %s: answer: ", service, action);
	pp_http_resp_free(&resp);
	return rc;
}

/* One JSON 1.1 call; body is taken; the answer in *out (caller frees). */
static int jcall(struct pp_prov_ctx *ctx, const struct aws *a, const char *service,
		 const char *target, struct pp_json *body, struct pp_json **out, char *code,
		 size_t code_size, struct pp_error *err)
{
	const char *headers[] = {"X-Amz-Target", target, NULL, NULL};
	struct pp_http_resp resp;
	char *text = body ? pp_json_to_string(body, PP_JSON_COMPACT) : NULL;
	int rc;

	*out = NULL;
	pp_json_free(body);
	if (!text)
		return pp_fail(err, PP_ENOMEM, "%s: out of memory", target);
	rc = send(ctx, a, service, "application/x-amz-json-1.1", headers, text, &resp, code,
		  code_size, err);
	free(text);
	if (!rc && !resp.body.len && !(*out = pp_json_new(PP_JSON_OBJECT)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	else if (!rc && resp.body.len &&
		 pp_json_parse(resp.body.data, resp.body.len, NULL, out, err))
		rc = pp_error_prefix(err, "%s: answer: ", target);
	pp_http_resp_free(&resp);
	return rc;
}

/* ---- building requests ---- */

static struct pp_json *obj(void)
{
	return pp_json_new(PP_JSON_OBJECT);
}

/* [{Key: pushpool-pool, Value: POOL}] in the names each API uses. */
static struct pp_json *tag_list(const struct aws *a, const char *k, const char *v)
{
	struct pp_json *list = pp_json_new(PP_JSON_ARRAY), *t = obj();

	pp_json_set_string(t, k, PP_PROV_TAG);
	pp_json_set_string(t, v, a->pool);
	pp_json_append(list, t);
	return list;
}

/* EC2's TagSpecification.1.ResourceType / .Tag.1.Key / .Value. */
static struct pp_json *tag_spec(const struct aws *a, const char *type, const char *name)
{
	struct pp_json *specs = pp_json_new(PP_JSON_ARRAY), *spec = obj();
	struct pp_json *tags = tag_list(a, "Key", "Value"), *nt = obj();

	pp_json_set_string(nt, "Key", "Name");
	pp_json_set_string(nt, "Value", name);
	pp_json_append(tags, nt);
	pp_json_set_string(spec, "ResourceType", type);
	pp_json_set(spec, "Tag", tags);
	pp_json_append(specs, spec);
	return specs;
}

/* EC2 Filter.N.Name / Value.1. */
static void filter(struct pp_json *params, const char *name, const char *value)
{
	struct pp_json *list = pp_json_get(params, "Filter"), *f = obj(), *vals;

	if (!list) {
		pp_json_set(params, "Filter", pp_json_new(PP_JSON_ARRAY));
		list = pp_json_get(params, "Filter");
	}
	vals = pp_json_new(PP_JSON_ARRAY);
	pp_json_append(vals, pp_json_new_string(value));
	pp_json_set_string(f, "Name", name);
	pp_json_set(f, "Value", vals);
	pp_json_append(list, f);
}

static struct pp_json *our_filter(const struct aws *a)
{
	struct pp_json *p = obj();
	char k[64];

	snprintf(k, sizeof(k), "tag:%s", PP_PROV_TAG);
	filter(p, k, a->pool);
	return p;
}

/* Whether an EC2 tagSet or an IAM Tags list carries our tag. */
static bool xml_tagged(const struct aws *a, const struct pp_xml *set, bool ec2)
{
	pp_xml_foreach(t, set)
	{
		const char *k = pp_xml_path_text(t, ec2 ? "key" : "Key");
		const char *v = pp_xml_path_text(t, ec2 ? "value" : "Value");

		if (k && v && !strcmp(k, PP_PROV_TAG) && !strcmp(v, a->pool))
			return true;
	}
	return false;
}

static void mark(struct pp_prov_res *r, bool exists, bool ours)
{
	r->state = !exists ? PP_PROV_ABSENT : ours ? PP_PROV_PRESENT : PP_PROV_FOREIGN;
	r->owned = exists && ours;
	if (exists && !ours)
		snprintf(r->note, sizeof(r->note), "exists without this pool's %s tag",
			 PP_PROV_TAG);
}

/* ---- kinds ---- */

static int role_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int role_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int attach_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int attach_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int inline_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int inline_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int cluster_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int cluster_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int logs_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int logs_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int repo_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int repo_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int vpc_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int vpc_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int subnet_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int subnet_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int igw_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int igw_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int rtb_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int rtb_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int sg_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int sg_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int policy_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int policy_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int grant_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int grant_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int user_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int user_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int key_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
static int key_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);

/* Each step's permissions: the reads inspect makes for it, then the
 * writes (destroy inspects too, so its reads come with its deletes). */
static const struct pp_prov_kind k_role = {
	"execution-role", "iam:GetRole,iam:CreateRole,iam:TagRole,iam:UpdateAssumeRolePolicy",
	"iam:GetRole,iam:DeleteRole", role_create, role_remove};
static const struct pp_prov_kind k_attach = {
	"role-policy", "iam:ListAttachedRolePolicies,iam:AttachRolePolicy",
	"iam:ListAttachedRolePolicies,iam:DetachRolePolicy", attach_create, attach_remove};
static const struct pp_prov_kind k_inline = {
	"role-inline-policy", "iam:GetRolePolicy,iam:PutRolePolicy",
	"iam:GetRolePolicy,iam:DeleteRolePolicy", inline_create, inline_remove};
static const struct pp_prov_kind k_cluster = {
	"ecs-cluster", "ecs:DescribeClusters,ecs:CreateCluster,ecs:TagResource",
	"ecs:DescribeClusters,ecs:DeleteCluster", cluster_create, cluster_remove};
static const struct pp_prov_kind k_logs = {
	"log-group",
	"logs:DescribeLogGroups,logs:ListTagsForResource,logs:CreateLogGroup,logs:TagResource",
	"logs:DescribeLogGroups,logs:ListTagsForResource,logs:DeleteLogGroup", logs_create,
	logs_remove};
static const struct pp_prov_kind k_repo = {
	"ecr-repository",
	"ecr:DescribeRepositories,ecr:ListTagsForResource,ecr:CreateRepository,ecr:TagResource",
	"ecr:DescribeRepositories,ecr:ListTagsForResource,ecr:DeleteRepository", repo_create,
	repo_remove};
static const struct pp_prov_kind k_default_vpc = {
	"default-vpc", "ec2:DescribeVpcs,ec2:DescribeSubnets",
	"ec2:DescribeVpcs,ec2:DescribeSubnets", NULL, NULL};
static const struct pp_prov_kind k_vpc = {"vpc", "ec2:DescribeVpcs,ec2:CreateVpc,ec2:CreateTags",
					  "ec2:DescribeVpcs,ec2:DeleteVpc", vpc_create, vpc_remove};
static const struct pp_prov_kind k_subnet = {
	"subnet",
	"ec2:DescribeAvailabilityZones,ec2:DescribeSubnets,ec2:CreateSubnet,ec2:CreateTags",
	"ec2:DescribeSubnets,ec2:DeleteSubnet", subnet_create, subnet_remove};
static const struct pp_prov_kind k_igw = {
	"internet-gateway",
	"ec2:DescribeInternetGateways,ec2:CreateInternetGateway,ec2:CreateTags,"
	"ec2:AttachInternetGateway",
	"ec2:DescribeInternetGateways,ec2:DetachInternetGateway,ec2:DeleteInternetGateway",
	igw_create, igw_remove};
static const struct pp_prov_kind k_rtb = {
	"route-table",
	"ec2:DescribeRouteTables,ec2:CreateRouteTable,ec2:CreateTags,ec2:CreateRoute,"
	"ec2:AssociateRouteTable",
	"ec2:DescribeRouteTables,ec2:DisassociateRouteTable,ec2:DeleteRouteTable", rtb_create,
	rtb_remove};
static const struct pp_prov_kind k_sg = {
	"security-group", "ec2:DescribeSecurityGroups,ec2:CreateSecurityGroup,ec2:CreateTags",
	"ec2:DescribeSecurityGroups,ec2:DeleteSecurityGroup", sg_create, sg_remove};
static const struct pp_prov_kind k_policy = {
	"dispatcher-policy",
	"iam:GetPolicy,iam:GetPolicyVersion,iam:CreatePolicy,iam:TagPolicy,"
	"iam:CreatePolicyVersion,iam:ListPolicyVersions,iam:DeletePolicyVersion",
	"iam:GetPolicy,iam:ListPolicyVersions,iam:DeletePolicyVersion,iam:DeletePolicy",
	policy_create, policy_remove};
static const struct pp_prov_kind k_grant = {
	"policy-attachment", "iam:ListAttached{Role,User}Policies,iam:Attach{Role,User}Policy",
	"iam:ListAttached{Role,User}Policies,iam:Detach{Role,User}Policy", grant_create,
	grant_remove};
static const struct pp_prov_kind k_user = {"dispatcher-user",
					   "iam:GetUser,iam:CreateUser,iam:TagUser",
					   "iam:GetUser,iam:DeleteUser", user_create, user_remove};
static const struct pp_prov_kind k_key = {
	"access-key", "iam:ListAccessKeys,iam:CreateAccessKey,iam:DeleteAccessKey",
	"iam:ListAccessKeys,iam:DeleteAccessKey", key_create, key_remove};

#define CODE char code[96]

/* One IAM call whose answer is not needed; params is taken. gone_ok: what
 * IAM no longer has counts as done (a removal). */
static int iam_do(struct pp_prov_ctx *ctx, const char *action, struct pp_json *params, bool gone_ok,
		  struct pp_error *err)
{
	struct pp_xml *x;
	CODE;
	int rc = query(ctx, ctx->state, "iam", action, params, &x, code, sizeof(code), err);

	pp_xml_free(x);
	return gone_ok && rc == PP_ENOTFOUND ? 0 : rc;
}

/* One JSON 1.1 call whose answer is not needed; body is taken. ok_code (may
 * be NULL): the cloud's error code that counts as done. */
static int json_do(struct pp_prov_ctx *ctx, const char *service, const char *target,
		   struct pp_json *body, const char *ok_code, struct pp_error *err)
{
	struct pp_json *out;
	CODE;
	int rc = jcall(ctx, ctx->state, service, target, body, &out, code, sizeof(code), err);

	pp_json_free(out);
	return rc && ok_code && !strcmp(code, ok_code) ? 0 : rc;
}

/* Parameters naming the execution role, for the calls on it. */
static struct pp_json *role_params(const struct aws *a)
{
	struct pp_json *p = obj();

	pp_json_set_string(p, "RoleName", a->role);
	return p;
}

/* ---- IAM: the execution role ---- */

static int role_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *p = obj();
	struct pp_xml *x;
	CODE;
	int rc;

	pp_json_set_string(p, "RoleName", a->role);
	if (res->state == PP_PROV_DRIFTED) {
		/* Ours, with another trust policy: put ours back. */
		pp_json_set_string(p, "PolicyDocument", TRUST_POLICY);
		return iam_do(ctx, "UpdateAssumeRolePolicy", p, false, err);
	}
	pp_json_set_string(p, "AssumeRolePolicyDocument", TRUST_POLICY);
	pp_json_set_string(p, "Description", "ECS task execution role of a pushpool pool");
	pp_json_set(p, "Tags", tag_list(a, "Key", "Value"));
	rc = query(ctx, a, "iam", "CreateRole", p, &x, code, sizeof(code), err);
	if (!rc)
		snprintf(a->role_arn, sizeof(a->role_arn), "%s",
			 text_of(x, "CreateRoleResult/Role/Arn"));
	pp_xml_free(x);
	return rc;
}

static int role_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	return iam_do(ctx, "DeleteRole", role_params(ctx->state), true, err);
}

static int attach_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct pp_json *p = role_params(ctx->state);

	pp_json_set_string(p, "PolicyArn", EXEC_POLICY_ARN);
	return iam_do(ctx, "AttachRolePolicy", p, false, err);
}

static int attach_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct pp_json *p = role_params(ctx->state);

	pp_json_set_string(p, "PolicyArn", EXEC_POLICY_ARN);
	return iam_do(ctx, "DetachRolePolicy", p, true, err);
}

static int inline_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct pp_json *p = role_params(ctx->state);

	pp_json_set_string(p, "PolicyName", INLINE_LOGS);
	pp_json_set_string(p, "PolicyDocument",
			   "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
			   "\"Action\":\"logs:CreateLogGroup\",\"Resource\":\"*\"}]}");
	return iam_do(ctx, "PutRolePolicy", p, false, err);
}

static int inline_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct pp_json *p = role_params(ctx->state);

	pp_json_set_string(p, "PolicyName", INLINE_LOGS);
	return iam_do(ctx, "DeleteRolePolicy", p, true, err);
}

/* ---- ECS, Logs, ECR ---- */

static int cluster_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *b = obj(), *out;
	CODE;
	int rc;

	pp_json_set_string(b, "clusterName", a->cluster);
	pp_json_set(b, "tags", tag_list(a, "key", "value"));
	rc = jcall(ctx, a, "ecs", "AmazonEC2ContainerServiceV20141113.CreateCluster", b, &out, code,
		   sizeof(code), err);
	if (!rc)
		snprintf(a->cluster_arn, sizeof(a->cluster_arn), "%s",
			 pp_json_string(pp_json_path(out, "cluster.clusterArn"))
				 ? pp_json_string(pp_json_path(out, "cluster.clusterArn"))
				 : a->cluster);
	pp_json_free(out);
	return rc;
}

static int cluster_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *b = obj();

	pp_json_set_string(b, "cluster", a->cluster);
	return json_do(ctx, "ecs", "AmazonEC2ContainerServiceV20141113.DeleteCluster", b,
		       "ClusterNotFoundException", err);
}

static int logs_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *b = obj(), *tags = obj();

	pp_json_set_string(b, "logGroupName", a->log_group);
	pp_json_set_string(tags, PP_PROV_TAG, a->pool);
	pp_json_set(b, "tags", tags);
	return json_do(ctx, "logs", "Logs_20140328.CreateLogGroup", b, NULL, err);
}

static int logs_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *b = obj();

	pp_json_set_string(b, "logGroupName", a->log_group);
	return json_do(ctx, "logs", "Logs_20140328.DeleteLogGroup", b, "ResourceNotFoundException",
		       err);
}

static int repo_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *b = obj();

	pp_json_set_string(b, "repositoryName", a->repo);
	pp_json_set(b, "tags", tag_list(a, "Key", "Value"));
	return json_do(ctx, "ecr", "AmazonEC2ContainerRegistry_V20150921.CreateRepository", b, NULL,
		       err);
}

static int repo_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *b = obj();

	pp_json_set_string(b, "repositoryName", a->repo);
	return json_do(ctx, "ecr", "AmazonEC2ContainerRegistry_V20150921.DeleteRepository", b,
		       "RepositoryNotFoundException", err);
}

/* ---- EC2 ---- */

/* One EC2 call whose answer's id at path goes to out (may be NULL). */
static int ec2(struct pp_prov_ctx *ctx, const char *action, struct pp_json *p, const char *path,
	       char *out, size_t size, const char *ok_code, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_xml *x;
	CODE;
	int rc = query(ctx, a, "ec2", action, p, &x, code, sizeof(code), err);

	if (!rc && out) {
		const char *id = pp_xml_path_text(x, path);

		if (!id || !*id)
			rc = pp_fail(err, PP_EINVALID, "ec2 %s: the answer has no %s", action,
				     path);
		else
			snprintf(out, size, "%s", id);
	}
	pp_xml_free(x);
	return rc && ok_code && strstr(code, ok_code) ? 0 : rc;
}

static int vpc_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *p = obj();

	pp_json_set_string(p, "CidrBlock", VPC_CIDR);
	pp_json_set(p, "TagSpecification", tag_spec(a, "vpc", a->net));
	return ec2(ctx, "CreateVpc", p, "vpc/vpcId", a->vpc, sizeof(a->vpc), NULL, err);
}

static int vpc_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct pp_json *p = obj();

	pp_json_set_string(p, "VpcId", res->data);
	return ec2(ctx, "DeleteVpc", p, NULL, NULL, 0, ".NotFound", err);
}

static int subnet_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	size_t z = (size_t)(res->data ? atoi(res->data) : 0);
	struct pp_json *p = obj();
	char cidr[32];

	snprintf(cidr, sizeof(cidr), "10.0.%zu.0/20", z * 16);
	pp_json_set_string(p, "VpcId", a->vpc);
	pp_json_set_string(p, "CidrBlock", cidr);
	pp_json_set_string(p, "AvailabilityZone", a->zones[z]);
	pp_json_set(p, "TagSpecification", tag_spec(a, "subnet", res->name));
	return ec2(ctx, "CreateSubnet", p, "subnet/subnetId", a->subnets[z], sizeof(a->subnets[z]),
		   NULL, err);
}

static int subnet_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	size_t z = (size_t)(res->data ? atoi(res->data) : 0);
	struct pp_json *p = obj();

	pp_json_set_string(p, "SubnetId", a->subnets[z]);
	return ec2(ctx, "DeleteSubnet", p, NULL, NULL, 0, ".NotFound", err);
}

static int igw_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *p;
	int rc = 0;

	if (!a->igw[0]) {
		p = obj();
		pp_json_set(p, "TagSpecification", tag_spec(a, "internet-gateway", a->net));
		rc = ec2(ctx, "CreateInternetGateway", p, "internetGateway/internetGatewayId",
			 a->igw, sizeof(a->igw), NULL, err);
	}
	if (rc)
		return rc;
	/* The attachment: an interrupted run finds the gateway detached. */
	p = obj();
	pp_json_set_string(p, "InternetGatewayId", a->igw);
	pp_json_set_string(p, "VpcId", a->vpc);
	return ec2(ctx, "AttachInternetGateway", p, NULL, NULL, 0, "AlreadyAssociated", err);
}

static int igw_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *p = obj();
	int rc;

	pp_json_set_string(p, "InternetGatewayId", a->igw);
	pp_json_set_string(p, "VpcId", a->vpc);
	rc = ec2(ctx, "DetachInternetGateway", p, NULL, NULL, 0, "NotAttached", err);
	if (rc)
		return rc;
	p = obj();
	pp_json_set_string(p, "InternetGatewayId", a->igw);
	return ec2(ctx, "DeleteInternetGateway", p, NULL, NULL, 0, ".NotFound", err);
}

/* The route table with its default route and every subnet associated;
 * each step is skipped when inspect saw it done (res->data lists them). */
static int rtb_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *p;
	int rc = 0;

	if (!a->rtb[0]) {
		p = obj();
		pp_json_set_string(p, "VpcId", a->vpc);
		pp_json_set(p, "TagSpecification", tag_spec(a, "route-table", a->net));
		rc = ec2(ctx, "CreateRouteTable", p, "routeTable/routeTableId", a->rtb,
			 sizeof(a->rtb), NULL, err);
	}
	if (!rc && !(res->data && strstr(res->data, "route ok"))) {
		p = obj();
		pp_json_set_string(p, "RouteTableId", a->rtb);
		pp_json_set_string(p, "DestinationCidrBlock", "0.0.0.0/0");
		pp_json_set_string(p, "GatewayId", a->igw);
		rc = ec2(ctx, "CreateRoute", p, NULL, NULL, 0, "RouteAlreadyExists", err);
	}
	for (size_t z = 0; !rc && z < a->nzones; z++) {
		char mark_[48];

		snprintf(mark_, sizeof(mark_), "assoc %s", a->subnets[z]);
		if (res->data && strstr(res->data, mark_))
			continue;
		p = obj();
		pp_json_set_string(p, "RouteTableId", a->rtb);
		pp_json_set_string(p, "SubnetId", a->subnets[z]);
		rc = ec2(ctx, "AssociateRouteTable", p, NULL, NULL, 0, "AlreadyAssociated", err);
	}
	return rc;
}

static int rtb_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *p = obj();
	struct pp_xml *x;
	CODE;
	int rc;

	/* Associations first: EC2 refuses to delete an associated table. */
	pp_json_set(p, "RouteTableId", pp_json_new(PP_JSON_ARRAY));
	pp_json_append(pp_json_get(p, "RouteTableId"), pp_json_new_string(a->rtb));
	rc = query(ctx, a, "ec2", "DescribeRouteTables", p, &x, code, sizeof(code), err);
	for (const struct pp_xml *as = pp_xml_path(x, "routeTableSet/item/associationSet/item");
	     !rc && as; as = pp_xml_next_same(as)) {
		const char *id = pp_xml_path_text(as, "routeTableAssociationId");

		p = obj();
		pp_json_set_string(p, "AssociationId", id ? id : "");
		rc = ec2(ctx, "DisassociateRouteTable", p, NULL, NULL, 0, ".NotFound", err);
	}
	pp_xml_free(x);
	if (rc)
		return rc && strstr(code, ".NotFound") ? 0 : rc;
	p = obj();
	pp_json_set_string(p, "RouteTableId", a->rtb);
	return ec2(ctx, "DeleteRouteTable", p, NULL, NULL, 0, ".NotFound", err);
}

static int sg_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *p = obj();

	/* A new group lets nothing in (tasks only call out). */
	pp_json_set_string(p, "GroupName", a->net);
	pp_json_set_string(p, "GroupDescription", "pushpool pool tasks: no inbound traffic");
	pp_json_set_string(p, "VpcId", a->vpc);
	pp_json_set(p, "TagSpecification", tag_spec(a, "security-group", a->net));
	return ec2(ctx, "CreateSecurityGroup", p, "groupId", a->sg, sizeof(a->sg), NULL, err);
}

static int sg_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *p = obj();

	pp_json_set_string(p, "GroupId", a->sg);
	return ec2(ctx, "DeleteSecurityGroup", p, NULL, NULL, 0, ".NotFound", err);
}

/* ---- the dispatcher's permissions ---- */

/* What serve does with an ECS pool: run, watch and stop tasks, register
 * and clean up task definitions, hand the execution role to ECS, look up a
 * VPC's subnets. */
static void dispatcher_policy(const struct aws *a, char *out, size_t size)
{
	snprintf(out, size,
		 "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":["
		 "\"ecs:RunTask\",\"ecs:DescribeTasks\",\"ecs:StopTask\",\"ecs:ListTasks\","
		 "\"ecs:RegisterTaskDefinition\",\"ecs:DescribeTaskDefinition\","
		 "\"ecs:DeregisterTaskDefinition\",\"ecs:ListTaskDefinitions\","
		 "\"ecs:TagResource\",\"ec2:DescribeSubnets\",\"logs:GetLogEvents\"],"
		 "\"Resource\":\"*\"},{\"Effect\":\"Allow\",\"Action\":\"iam:PassRole\","
		 "\"Resource\":\"arn:aws:iam::%s:role/%s\"}]}",
		 a->account, a->role);
}

/* Delete the dispatcher policy's versions but the default one; gone_ok:
 * a policy that is no longer there is fine (destroy). */
static int delete_versions(struct pp_prov_ctx *ctx, struct aws *a, bool gone_ok,
			   struct pp_error *err)
{
	struct pp_json *p = obj();
	struct pp_xml *x = NULL;
	CODE;
	int rc;

	pp_json_set_string(p, "PolicyArn", a->policy_arn);
	rc = query(ctx, a, "iam", "ListPolicyVersions", p, &x, code, sizeof(code), err);
	if (rc) {
		pp_xml_free(x);
		return gone_ok && rc == PP_ENOTFOUND ? 0 : rc;
	}
	for (const struct pp_xml *v = pp_xml_path(x, "ListPolicyVersionsResult/Versions/member");
	     !rc && v; v = pp_xml_next_same(v)) {
		if (!strcmp(text_of(v, "IsDefaultVersion"), "true"))
			continue;
		p = obj();
		pp_json_set_string(p, "PolicyArn", a->policy_arn);
		pp_json_set_string(p, "VersionId", text_of(v, "VersionId"));
		rc = iam_do(ctx, "DeletePolicyVersion", p, true, err);
	}
	pp_xml_free(x);
	return rc;
}

static int policy_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *p = obj();
	char doc[1536];
	int rc;

	dispatcher_policy(a, doc, sizeof(doc));
	if (res->state == PP_PROV_DRIFTED) {
		/* Ours, with another document: ours becomes the default version
		 * and the others go (IAM keeps at most five). */
		pp_json_free(p);
		if ((rc = delete_versions(ctx, a, false, err)))
			return rc;
		p = obj();
		pp_json_set_string(p, "PolicyArn", a->policy_arn);
		pp_json_set_string(p, "PolicyDocument", doc);
		pp_json_set_bool(p, "SetAsDefault", true);
		rc = iam_do(ctx, "CreatePolicyVersion", p, false, err);
		return rc ? rc : delete_versions(ctx, a, false, err);
	}
	pp_json_set_string(p, "PolicyName", a->policy);
	pp_json_set_string(p, "PolicyDocument", doc);
	pp_json_set_string(p, "Description", "what a pushpool dispatcher needs for its pool");
	pp_json_set(p, "Tags", tag_list(a, "Key", "Value"));
	return iam_do(ctx, "CreatePolicy", p, false, err);
}

static int policy_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *p;
	int rc;

	/* IAM deletes a policy only once its other versions are gone. */
	if ((rc = delete_versions(ctx, a, true, err)))
		return rc;
	p = obj();
	pp_json_set_string(p, "PolicyArn", a->policy_arn);
	return iam_do(ctx, "DeletePolicy", p, true, err);
}

/* A policy attachment's resource: res->name is the principal, "user/NAME"
 * or "role/NAME"; res->data "recorded" when it is the dispatcher's own
 * identity (keyless), whose attachment carries no tag and is ours only by
 * the journal record "aws-attach:PRINCIPAL:POLICY_ARN". */
#define GRANT_PREFIX "aws-attach:"

static void grant_key(const struct aws *a, const char *principal, char *out, size_t size)
{
	snprintf(out, size, GRANT_PREFIX "%s:%s", principal, a->policy_arn);
}

static int grant(struct pp_prov_ctx *ctx, const char *principal, bool on, struct pp_error *err)
{
	struct aws *a = ctx->state;
	bool user = !strncmp(principal, "user/", 5);
	struct pp_json *p = obj();
	char action[40];

	snprintf(action, sizeof(action), "%s%sPolicy", on ? "Attach" : "Detach",
		 user ? "User" : "Role");
	pp_json_set_string(p, user ? "UserName" : "RoleName", strchr(principal, '/') + 1);
	pp_json_set_string(p, "PolicyArn", a->policy_arn);
	return iam_do(ctx, action, p, !on, err);
}

static bool recorded(const struct pp_prov_res *res)
{
	return res->data && !strcmp(res->data, "recorded");
}

static int grant_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	char key[600];
	int rc;

	/* Recorded before the change: an attachment carries no tag. */
	if (recorded(res)) {
		grant_key(a, res->name, key, sizeof(key));
		if ((rc = pp_prov_owned_add(ctx, key, err)))
			return rc;
	}
	return grant(ctx, res->name, true, err);
}

static int grant_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	char key[600];
	int rc = grant(ctx, res->name, false, err);

	if (rc || !recorded(res))
		return rc;
	grant_key(a, res->name, key, sizeof(key));
	return pp_prov_owned_del(ctx, key, err);
}

static int user_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *p = obj();

	pp_json_set_string(p, "UserName", a->user);
	pp_json_set(p, "Tags", tag_list(a, "Key", "Value"));
	return iam_do(ctx, "CreateUser", p, false, err);
}

static int user_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *p = obj();

	pp_json_set_string(p, "UserName", a->user);
	return iam_do(ctx, "DeleteUser", p, true, err);
}

static int key_remove_id(struct pp_prov_ctx *ctx, const char *id, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *p = obj();

	pp_json_set_string(p, "UserName", a->user);
	pp_json_set_string(p, "AccessKeyId", id);
	return iam_do(ctx, "DeleteAccessKey", p, true, err);
}

/* Keys whose secret this host does not hold (an interrupted apply lost it)
 * are deleted; a new one is made unless the key file's key is kept. */
static int key_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct aws *a = ctx->state;
	struct pp_json *p = obj();
	struct pp_xml *x;
	CODE;
	int rc = 0;

	for (char *id = res->data, *next; !rc && id && *id; id = next) {
		next = strchr(id, ',');
		if (next)
			*next++ = '\0';
		rc = key_remove_id(ctx, id, err);
	}
	if (rc || a->key_kept) {
		pp_json_free(p);
		return rc;
	}
	pp_json_set_string(p, "UserName", a->user);
	rc = query(ctx, a, "iam", "CreateAccessKey", p, &x, code, sizeof(code), err);
	if (!rc) {
		const char *id = pp_xml_path_text(x, "CreateAccessKeyResult/AccessKey/AccessKeyId");
		const char *sec =
			pp_xml_path_text(x, "CreateAccessKeyResult/AccessKey/SecretAccessKey");

		if (!id || !sec || strlen(sec) >= sizeof(a->key_secret))
			rc = pp_fail(err, PP_EINVALID, "iam CreateAccessKey: no key in the answer");
		else {
			snprintf(a->key_id, sizeof(a->key_id), "%s", id);
			snprintf(a->key_secret, sizeof(a->key_secret), "%s", sec);
			pp_secret_register(a->key_secret);
		}
	}
	pp_xml_free(x);
	return rc;
}

static int key_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	int rc = 0;

	for (char *id = res->data, *next; !rc && id && *id; id = next) {
		next = strchr(id, ',');
		if (next)
			*next++ = '\0';
		rc = key_remove_id(ctx, id, err);
	}
	return rc;
}

/* ---- open and inspect ---- */

static int aws_open(struct pp_prov_ctx *ctx, struct pp_error *err)
{
	struct aws *a = calloc(1, sizeof(*a));
	const char *region = ctx->opts->location;
	char s[48];

	if (!a)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	ctx->state = a;
	if (!region || !*region)
		region = pp_cred_region(ctx->cred);
	if (!region || !*region)
		return pp_fail(err, PP_EINVALID,
			       "no AWS region: set region in the [credentials] section or pass "
			       "--location");
	for (const char *p = region; *p; p++)
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '-')
			return pp_fail(err, PP_EINVALID, "invalid region '%s'", region);
	snprintf(a->region, sizeof(a->region), "%.31s", region);
	snprintf(a->pool, sizeof(a->pool), "%s", ctx->pool->name);
	if (ctx->endpoint) {
		size_t n = strlen(ctx->endpoint);

		while (n && ctx->endpoint[n - 1] == '/')
			n--;
		if (n < 4 || strncmp(ctx->endpoint + n - 4, "/ecs", 4))
			return pp_fail(err, PP_EINVALID,
				       "%s:%d: pool %s: endpoint %s does not end in /ecs: the "
				       "provisioner finds IAM, EC2, ECR and Logs beside it",
				       ctx->pool->file, ctx->pool->line, a->pool, ctx->endpoint);
		snprintf(a->base, sizeof(a->base), "%.*s", (int)(n - 4), ctx->endpoint);
	}
	slug(a->pool, s, sizeof(s));
	snprintf(a->role, sizeof(a->role), "pushpool-%s-execution", s);
	snprintf(a->cluster, sizeof(a->cluster), "pushpool-%s", s);
	snprintf(a->log_group, sizeof(a->log_group), "/pushpool/%s", s);
	snprintf(a->repo, sizeof(a->repo), "pushpool/%s", s);
	snprintf(a->policy, sizeof(a->policy), "pushpool-%s-dispatcher", s);
	snprintf(a->user, sizeof(a->user), "pushpool-%s-dispatcher", s);
	snprintf(a->net, sizeof(a->net), "pushpool-%s", s);
	return 0;
}

static void aws_close(struct pp_prov_ctx *ctx)
{
	struct aws *a = ctx->state;

	if (a)
		memset(a->key_secret, 0, sizeof(a->key_secret));
	free(a);
	ctx->state = NULL;
}

/* The account, and who the dispatcher is (GetCallerIdentity): a keyless
 * apply grants the pool's own identity (pp_prov_pool_cred, or what
 * provisioning runs as when the pool names none); --create-key and destroy
 * need only the account, so they ask as ctx->cred, which works even when
 * the pool's own key file is gone. */
static int caller(struct pp_prov_ctx *ctx, struct aws *a, struct pp_error *err)
{
	bool keyless = !ctx->opts->create_key && ctx->mode == PP_PROV_MODE_APPLY;
	struct pp_cred *saved = ctx->cred, *pool = NULL;
	struct pp_xml *x;
	const char *arn, *acct;
	CODE;
	int rc;

	if (keyless && ctx->pool_cred_conf && (rc = pp_prov_pool_cred(ctx, &pool, err)))
		return rc;
	if (pool)
		ctx->cred = pool;
	rc = query(ctx, a, "sts", "GetCallerIdentity", NULL, &x, code, sizeof(code), err);
	ctx->cred = saved;
	if (rc)
		return pp_error_prefix(err, "who is the dispatcher (sts GetCallerIdentity): ");
	arn = pp_xml_path_text(x, "GetCallerIdentityResult/Arn");
	acct = pp_xml_path_text(x, "GetCallerIdentityResult/Account");
	if (!arn || !acct || strlen(acct) != 12 || strspn(acct, "0123456789") != 12) {
		pp_xml_free(x);
		return pp_fail(err, PP_EINVALID, "sts GetCallerIdentity: no Arn or Account");
	}
	snprintf(a->account, sizeof(a->account), "%s", acct);
	/* arn:aws:iam::ACCT:user/PATH/NAME or arn:aws:sts::ACCT:assumed-role/ROLE/SESSION:
	 * the resource follows the fifth colon. */
	const char *res = arn;

	for (int i = 0; i < 5 && res; i++)
		res = (res = strchr(res, ':')) ? res + 1 : NULL;
	if (!res)
		res = "";

	if (!strncmp(res, "user/", 5)) {
		a->principal_is_user = true;
		snprintf(a->principal, sizeof(a->principal), "%s", strrchr(res, '/') + 1);
	} else if (!strncmp(res, "assumed-role/", 13)) {
		snprintf(a->principal, sizeof(a->principal), "%.*s", (int)strcspn(res + 13, "/"),
			 res + 13);
	} else if (keyless) {
		rc = pp_fail(err, PP_EINVALID,
			     "the dispatcher runs as %s, which a policy cannot be attached to; use "
			     "--create-key for a user of its own",
			     arn);
	}
	snprintf(a->policy_arn, sizeof(a->policy_arn), "arn:aws:iam::%s:policy/%s", a->account,
		 a->policy);
	pp_xml_free(x);
	return rc;
}

static int iam_get(struct pp_prov_ctx *ctx, struct aws *a, const char *action, const char *k,
		   const char *v, struct pp_xml **x, struct pp_error *err)
{
	struct pp_json *p = obj();
	CODE;
	int rc;

	pp_json_set_string(p, k, v);
	rc = query(ctx, a, "iam", action, p, x, code, sizeof(code), err);
	return rc;
}

/* Whether list (an attached-policies answer) holds arn. */
static bool attached(const struct pp_xml *x, const char *result, const char *arn)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/AttachedPolicies/member", result);
	for (const struct pp_xml *m = pp_xml_path(x, path); m; m = pp_xml_next_same(m))
		if (!strcmp(text_of(m, "PolicyArn"), arn))
			return true;
	return false;
}

static int inspect_role(struct pp_prov_ctx *ctx, struct aws *a, struct pp_prov_plan *plan,
			struct pp_error *err)
{
	struct pp_prov_res *r = pp_prov_plan_add(plan, &k_role, a->role, err);
	struct pp_prov_res *att, *inl;
	struct pp_xml *x = NULL;
	int rc;

	if (!r)
		return PP_ENOMEM;
	rc = iam_get(ctx, a, "GetRole", "RoleName", a->role, &x, err);
	if (rc && rc != PP_ENOTFOUND)
		return rc;
	mark(r, !rc, !rc && xml_tagged(a, pp_xml_path(x, "GetRoleResult/Role/Tags"), false));
	if (r->state == PP_PROV_PRESENT &&
	    !same_document(text_of(x, "GetRoleResult/Role/AssumeRolePolicyDocument"),
			   TRUST_POLICY)) {
		r->state = PP_PROV_DRIFTED;
		snprintf(r->note, sizeof(r->note),
			 "its trust policy is not ecs-tasks.amazonaws.com's alone: put back");
	}
	if (!rc)
		snprintf(a->role_arn, sizeof(a->role_arn), "%s",
			 text_of(x, "GetRoleResult/Role/Arn"));
	else
		snprintf(a->role_arn, sizeof(a->role_arn), "arn:aws:iam::%s:role/%s", a->account,
			 a->role);
	pp_xml_free(x);
	x = NULL;
	/* pp_prov_plan_add may move the plan: entries are kept by index. */
	bool role_ours = r->owned;
	size_t iatt = plan->n, iinl = plan->n + 1;

	if (!pp_prov_plan_add(plan, &k_attach, strrchr(EXEC_POLICY_ARN, '/') + 1, err) ||
	    !pp_prov_plan_add(plan, &k_inline, INLINE_LOGS, err))
		return PP_ENOMEM;
	att = &plan->v[iatt];
	inl = &plan->v[iinl];
	if (!role_ours) {
		/* Nothing to look at on a role that is not there (or not ours). */
		return 0;
	}
	if ((rc = iam_get(ctx, a, "ListAttachedRolePolicies", "RoleName", a->role, &x, err)))
		return rc;
	mark(att, attached(x, "ListAttachedRolePoliciesResult", EXEC_POLICY_ARN), true);
	pp_xml_free(x);
	struct pp_json *p = role_params(a);

	pp_json_set_string(p, "PolicyName", INLINE_LOGS);
	rc = iam_do(ctx, "GetRolePolicy", p, false, err);
	if (rc && rc != PP_ENOTFOUND)
		return rc;
	mark(inl, !rc, true);
	return 0;
}

static int inspect_json(struct pp_prov_ctx *ctx, struct aws *a, struct pp_prov_plan *plan,
			struct pp_error *err)
{
	struct pp_prov_res *r;
	struct pp_json *b, *out = NULL, *tags = NULL;
	const struct pp_json *c;
	CODE;
	int rc;

	/* the cluster */
	if (!(r = pp_prov_plan_add(plan, &k_cluster, a->cluster, err)))
		return PP_ENOMEM;
	b = obj();
	pp_json_set(b, "clusters", pp_json_new(PP_JSON_ARRAY));
	pp_json_append(pp_json_get(b, "clusters"), pp_json_new_string(a->cluster));
	pp_json_set(b, "include", pp_json_new(PP_JSON_ARRAY));
	pp_json_append(pp_json_get(b, "include"), pp_json_new_string("TAGS"));
	if ((rc = jcall(ctx, a, "ecs", "AmazonEC2ContainerServiceV20141113.DescribeClusters", b,
			&out, code, sizeof(code), err)))
		return rc;
	c = pp_json_at(pp_json_get(out, "clusters"), 0);
	if (c && pp_json_get_string(c, "status") &&
	    strcmp(pp_json_get_string(c, "status"), "ACTIVE"))
		c = NULL; /* an INACTIVE cluster is a deleted one */
	bool ours = false;

	pp_json_foreach (t, pp_json_get(c, "tags"))
		ours = ours ||
		       (!strcmp(pp_json_get_string(t, "key") ? pp_json_get_string(t, "key") : "",
				PP_PROV_TAG) &&
			pp_json_get_string(t, "value") &&
			!strcmp(pp_json_get_string(t, "value"), a->pool));
	mark(r, c != NULL, ours);
	snprintf(a->cluster_arn, sizeof(a->cluster_arn), "%s",
		 c && pp_json_get_string(c, "clusterArn") ? pp_json_get_string(c, "clusterArn")
							  : "");
	pp_json_free(out);

	/* the log group */
	if (!(r = pp_prov_plan_add(plan, &k_logs, a->log_group, err)))
		return PP_ENOMEM;
	b = obj();
	pp_json_set_string(b, "logGroupNamePrefix", a->log_group);
	if ((rc = jcall(ctx, a, "logs", "Logs_20140328.DescribeLogGroups", b, &out, code,
			sizeof(code), err)))
		return rc;
	const char *lg_arn = NULL;

	pp_json_foreach (g, pp_json_get(out, "logGroups"))
		if (pp_json_get_string(g, "logGroupName") &&
		    !strcmp(pp_json_get_string(g, "logGroupName"), a->log_group))
			lg_arn = pp_json_get_string(g, "logGroupArn");
	ours = false;
	if (lg_arn) {
		b = obj();
		pp_json_set_string(b, "resourceArn", lg_arn);
		if ((rc = jcall(ctx, a, "logs", "Logs_20140328.ListTagsForResource", b, &tags, code,
				sizeof(code), err))) {
			pp_json_free(out);
			return rc;
		}
		ours = pp_json_get_string(pp_json_get(tags, "tags"), PP_PROV_TAG) &&
		       !strcmp(pp_json_get_string(pp_json_get(tags, "tags"), PP_PROV_TAG), a->pool);
		pp_json_free(tags);
	}
	mark(r, lg_arn != NULL, ours);
	pp_json_free(out);

	/* the repository */
	if (!(r = pp_prov_plan_add(plan, &k_repo, a->repo, err)))
		return PP_ENOMEM;
	b = obj();
	pp_json_set(b, "repositoryNames", pp_json_new(PP_JSON_ARRAY));
	pp_json_append(pp_json_get(b, "repositoryNames"), pp_json_new_string(a->repo));
	rc = jcall(ctx, a, "ecr", "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories", b,
		   &out, code, sizeof(code), err);
	if (rc && strcmp(code, "RepositoryNotFoundException"))
		return rc;
	const char *arn = pp_json_get_string(pp_json_at(pp_json_get(out, "repositories"), 0),
					     "repositoryArn");

	ours = false;
	if (!rc && arn) {
		b = obj();
		pp_json_set_string(b, "resourceArn", arn);
		if ((rc = jcall(ctx, a, "ecr",
				"AmazonEC2ContainerRegistry_V20150921.ListTagsForResource", b,
				&tags, code, sizeof(code), err))) {
			pp_json_free(out);
			return rc;
		}
		pp_json_foreach (t, pp_json_get(tags, "tags"))
			ours = ours || (pp_json_get_string(t, "Key") &&
					!strcmp(pp_json_get_string(t, "Key"), PP_PROV_TAG) &&
					pp_json_get_string(t, "Value") &&
					!strcmp(pp_json_get_string(t, "Value"), a->pool));
		pp_json_free(tags);
	}
	mark(r, !rc && arn, ours);
	pp_json_free(out);
	return 0;
}

/* First tagged item of an EC2 Describe answer's set; its id to out. */
static int ec2_find(struct pp_prov_ctx *ctx, struct aws *a, const char *action, struct pp_json *p,
		    const char *set, const char *id_name, char *out, size_t size,
		    struct pp_xml **keep, struct pp_error *err)
{
	struct pp_xml *x;
	CODE;
	int rc = query(ctx, a, "ec2", action, p, &x, code, sizeof(code), err);
	char path[96];

	out[0] = '\0';
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/item", set);
	const struct pp_xml *it = pp_xml_path(x, path);

	if (it && pp_xml_path_text(it, id_name))
		snprintf(out, size, "%s", pp_xml_path_text(it, id_name));
	if (keep)
		*keep = x;
	else
		pp_xml_free(x);
	return 0;
}

static int inspect_network(struct pp_prov_ctx *ctx, struct aws *a, struct pp_prov_plan *plan,
			   struct pp_error *err)
{
	struct pp_prov_res *r;
	struct pp_json *p = obj();
	struct pp_xml *x = NULL;
	char dflt[32];
	int rc;

	filter(p, "is-default", "true");
	if ((rc = ec2_find(ctx, a, "DescribeVpcs", p, "vpcSet", "vpcId", dflt, sizeof(dflt), NULL,
			   err)))
		return rc;
	a->default_vpc = dflt[0] != '\0';
	if (a->default_vpc) {
		/* The default VPC's default subnets, one per zone, three at most. */
		snprintf(a->vpc, sizeof(a->vpc), "%s", dflt);
		if (!(r = pp_prov_plan_add(plan, &k_default_vpc, a->vpc, err)))
			return PP_ENOMEM;
		r->state = PP_PROV_PRESENT;
		p = obj();
		filter(p, "vpc-id", a->vpc);
		filter(p, "default-for-az", "true");
		if ((rc = ec2_find(ctx, a, "DescribeSubnets", p, "subnetSet", "subnetId", dflt,
				   sizeof(dflt), &x, err)))
			return rc;
		for (const struct pp_xml *it = pp_xml_path(x, "subnetSet/item");
		     it && a->nzones < MAX_ZONES; it = pp_xml_next_same(it))
			snprintf(a->subnets[a->nzones++], sizeof(a->subnets[0]), "%s",
				 text_of(it, "subnetId"));
		pp_xml_free(x);
		snprintf(r->note, sizeof(r->note), "the region's default VPC: %zu subnet%s used",
			 a->nzones, a->nzones == 1 ? "" : "s");
		if (!a->nzones)
			return pp_fail(err, PP_EINVALID,
				       "the default VPC %s has no default subnet to run tasks in",
				       a->vpc);
	} else {
		if (!(r = pp_prov_plan_add(plan, &k_vpc, a->net, err)))
			return PP_ENOMEM;
		if ((rc = ec2_find(ctx, a, "DescribeVpcs", our_filter(a), "vpcSet", "vpcId", a->vpc,
				   sizeof(a->vpc), NULL, err)))
			return rc;
		mark(r, a->vpc[0], true);
		if ((r->data = strdup(a->vpc)) == NULL)
			return pp_fail(err, PP_ENOMEM, "out of memory");
		/* Zones: the first three the region offers. */
		p = obj();
		filter(p, "state", "available");
		if ((rc = query(ctx, a, "ec2", "DescribeAvailabilityZones", p, &x, dflt,
				sizeof(dflt), err)))
			return rc;
		for (const struct pp_xml *it = pp_xml_path(x, "availabilityZoneInfo/item");
		     it && a->nzones < MAX_ZONES; it = pp_xml_next_same(it))
			snprintf(a->zones[a->nzones++], sizeof(a->zones[0]), "%s",
				 text_of(it, "zoneName"));
		pp_xml_free(x);
		x = NULL;
		if (a->vpc[0]) {
			p = our_filter(a);
			filter(p, "vpc-id", a->vpc);
			if ((rc = ec2_find(ctx, a, "DescribeSubnets", p, "subnetSet", "subnetId",
					   dflt, sizeof(dflt), &x, err)))
				return rc;
		}
		for (size_t z = 0; z < a->nzones; z++) {
			char name[PP_PROV_NAME_MAX], idx[8];

			snprintf(name, sizeof(name), "%s-%s", a->net, a->zones[z]);
			if (!(r = pp_prov_plan_add(plan, &k_subnet, name, err)))
				return PP_ENOMEM;
			for (const struct pp_xml *it = pp_xml_path(x, "subnetSet/item"); it;
			     it = pp_xml_next_same(it))
				if (!strcmp(text_of(it, "availabilityZone"), a->zones[z]))
					snprintf(a->subnets[z], sizeof(a->subnets[z]), "%s",
						 text_of(it, "subnetId"));
			mark(r, a->subnets[z][0], true);
			snprintf(idx, sizeof(idx), "%zu", z);
			if (!(r->data = strdup(idx)))
				return pp_fail(err, PP_ENOMEM, "out of memory");
		}
		pp_xml_free(x);
		x = NULL;

		/* the internet gateway and whether it is attached */
		if (!(r = pp_prov_plan_add(plan, &k_igw, a->net, err)))
			return PP_ENOMEM;
		if ((rc = ec2_find(ctx, a, "DescribeInternetGateways", our_filter(a),
				   "internetGatewaySet", "internetGatewayId", a->igw,
				   sizeof(a->igw), &x, err)))
			return rc;
		mark(r, a->igw[0], true);
		const char *att =
			pp_xml_path_text(x, "internetGatewaySet/item/attachmentSet/item/vpcId");
		if (a->igw[0] && (!att || !a->vpc[0] || strcmp(att, a->vpc))) {
			r->state = PP_PROV_DRIFTED;
			snprintf(r->note, sizeof(r->note), "not attached to the VPC");
		}
		pp_xml_free(x);
		x = NULL;

		/* the route table, its default route and associations */
		if (!(r = pp_prov_plan_add(plan, &k_rtb, a->net, err)))
			return PP_ENOMEM;
		if ((rc = ec2_find(ctx, a, "DescribeRouteTables", our_filter(a), "routeTableSet",
				   "routeTableId", a->rtb, sizeof(a->rtb), &x, err)))
			return rc;
		mark(r, a->rtb[0], true);
		if (a->rtb[0]) {
			const struct pp_xml *t = pp_xml_path(x, "routeTableSet/item");
			bool route = false;
			size_t n = 0, off = 0;
			char done[200] = "";

			for (const struct pp_xml *rt = pp_xml_path(t, "routeSet/item"); rt;
			     rt = pp_xml_next_same(rt))
				route = route ||
					(!strcmp(text_of(rt, "destinationCidrBlock"), "0.0.0.0/0"));
			if (route)
				off += (size_t)snprintf(done, sizeof(done), "route ok");
			for (const struct pp_xml *as = pp_xml_path(t, "associationSet/item"); as;
			     as = pp_xml_next_same(as))
				for (size_t z = 0; z < a->nzones; z++)
					if (!strcmp(text_of(as, "subnetId"), a->subnets[z]) &&
					    off < sizeof(done)) {
						off += (size_t)snprintf(done + off,
									sizeof(done) - off,
									" assoc %s", a->subnets[z]);
						n++;
					}
			/* What is done already, for create to skip. */
			if (!(r->data = strdup(done)))
				rc = pp_fail(err, PP_ENOMEM, "out of memory");
			if (!route || n < a->nzones) {
				r->state = PP_PROV_DRIFTED;
				snprintf(r->note, sizeof(r->note),
					 "%s%zu of %zu subnets associated",
					 route ? "" : "no default route; ", n, a->nzones);
			}
		}
		pp_xml_free(x);
		x = NULL;
		if (rc)
			return rc;
	}

	/* the security group, in whichever VPC the tasks use */
	if (!(r = pp_prov_plan_add(plan, &k_sg, a->net, err)))
		return PP_ENOMEM;
	if (a->vpc[0]) {
		p = obj();
		filter(p, "vpc-id", a->vpc);
		filter(p, "group-name", a->net);
		if ((rc = ec2_find(ctx, a, "DescribeSecurityGroups", p, "securityGroupInfo",
				   "groupId", a->sg, sizeof(a->sg), &x, err)))
			return rc;
		mark(r, a->sg[0],
		     a->sg[0] &&
			     xml_tagged(a, pp_xml_path(x, "securityGroupInfo/item/tagSet"), true));
		pp_xml_free(x);
	}
	return 0;
}

/* One policy attachment to principal ("user/NAME", "role/NAME"); keyless:
 * the dispatcher's own identity, ours only by the journal. */
static int inspect_grant(struct pp_prov_ctx *ctx, struct aws *a, struct pp_prov_plan *plan,
			 const char *principal, bool keyless, bool policy_there,
			 struct pp_error *err)
{
	bool user = !strncmp(principal, "user/", 5);
	struct pp_prov_res *g = pp_prov_plan_add(plan, &k_grant, principal, err);
	struct pp_xml *x = NULL;
	char key[600];
	int rc;

	if (!g)
		return PP_ENOMEM;
	if (keyless && !(g->data = strdup("recorded")))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	grant_key(a, principal, key, sizeof(key));
	g->owned = !keyless || pp_prov_owned_has(ctx, key);
	if (!policy_there)
		return 0;
	rc = iam_get(ctx, a, user ? "ListAttachedUserPolicies" : "ListAttachedRolePolicies",
		     user ? "UserName" : "RoleName", strchr(principal, '/') + 1, &x, err);
	if (rc && rc != PP_ENOTFOUND)
		return rc;
	g->state = !rc && attached(x,
				   user ? "ListAttachedUserPoliciesResult"
					: "ListAttachedRolePoliciesResult",
				   a->policy_arn)
			   ? PP_PROV_PRESENT
			   : PP_PROV_ABSENT;
	pp_xml_free(x);
	return 0;
}

/* The user's access keys. Apply: the one whose secret this host's key file
 * holds is kept; any other (an apply killed after CreateAccessKey, before
 * the file) is deleted, since AWS never shows a secret again. Destroy:
 * every key. */
static int inspect_keys(struct pp_prov_ctx *ctx, struct aws *a, struct pp_prov_res *k,
			struct pp_error *err)
{
	struct pp_xml *x = NULL;
	char local[32], ids[256] = "";
	size_t off = 0, n = 0;
	bool have_local = false;
	int rc;

	if ((rc = iam_get(ctx, a, "ListAccessKeys", "UserName", a->user, &x, err)))
		return rc;
	local_key_id(ctx, local, sizeof(local));
	for (const struct pp_xml *m =
		     pp_xml_path(x, "ListAccessKeysResult/AccessKeyMetadata/member");
	     m && off < sizeof(ids); m = pp_xml_next_same(m)) {
		const char *id = text_of(m, "AccessKeyId");

		if (local[0] && !strcmp(id, local) && ctx->mode == PP_PROV_MODE_APPLY) {
			have_local = true;
			continue;
		}
		n++;
		off += (size_t)snprintf(ids + off, sizeof(ids) - off, "%s%s", off ? "," : "", id);
	}
	pp_xml_free(x);
	if (n && !(k->data = strdup(ids)))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	if (ctx->mode == PP_PROV_MODE_DESTROY) {
		k->state = n ? PP_PROV_PRESENT : PP_PROV_ABSENT;
		return 0;
	}
	k->state = n ? PP_PROV_DRIFTED : have_local ? PP_PROV_PRESENT : PP_PROV_ABSENT;
	if (n)
		snprintf(k->note, sizeof(k->note), "%zu key%s without a key file here: deleted%s",
			 n, n == 1 ? "" : "s", have_local ? "" : ", a new one made");
	a->key_kept = have_local;
	return 0;
}

/* The dispatcher's policy and who holds it. Apply: the identity the
 * dispatcher runs as (keyless), or with --create-key a user of its own and
 * its key. Destroy lists whatever an earlier apply may have made, whatever
 * the flags now: the user, its key, and every recorded keyless attachment. */
static int inspect_dispatcher(struct pp_prov_ctx *ctx, struct aws *a, struct pp_prov_plan *plan,
			      struct pp_error *err)
{
	bool destroy = ctx->mode == PP_PROV_MODE_DESTROY;
	struct pp_prov_res *r, *u = NULL;
	struct pp_xml *x = NULL;
	char principal[200];
	int rc;

	if (!(r = pp_prov_plan_add(plan, &k_policy, a->policy, err)))
		return PP_ENOMEM;
	rc = iam_get(ctx, a, "GetPolicy", "PolicyArn", a->policy_arn, &x, err);
	if (rc && rc != PP_ENOTFOUND)
		return rc;
	mark(r, !rc, !rc && xml_tagged(a, pp_xml_path(x, "GetPolicyResult/Policy/Tags"), false));
	/* pp_prov_plan_add may move the plan: keep what is needed, not pointers. */
	bool policy_there = r->state == PP_PROV_PRESENT, user_there = false;
	char version[32];

	snprintf(version, sizeof(version), "%s",
		 text_of(x, "GetPolicyResult/Policy/DefaultVersionId"));
	pp_xml_free(x);
	x = NULL;
	if (policy_there && !destroy) {
		char doc[1536];
		struct pp_json *p = obj();
		CODE;

		pp_json_set_string(p, "PolicyArn", a->policy_arn);
		pp_json_set_string(p, "VersionId", version);
		if ((rc = query(ctx, a, "iam", "GetPolicyVersion", p, &x, code, sizeof(code), err)))
			return rc;
		dispatcher_policy(a, doc, sizeof(doc));
		if (!same_document(text_of(x, "GetPolicyVersionResult/PolicyVersion/Document"),
				   doc)) {
			r->state = PP_PROV_DRIFTED;
			snprintf(
				r->note, sizeof(r->note),
				"version %s says other than this pushpool's: a new default version",
				version);
		}
		pp_xml_free(x);
		x = NULL;
	}
	if (ctx->opts->create_key || destroy) {
		if (!(u = pp_prov_plan_add(plan, &k_user, a->user, err)))
			return PP_ENOMEM;
		rc = iam_get(ctx, a, "GetUser", "UserName", a->user, &x, err);
		if (rc && rc != PP_ENOTFOUND)
			return rc;
		mark(u, !rc,
		     !rc && xml_tagged(a, pp_xml_path(x, "GetUserResult/User/Tags"), false));
		user_there = u->state == PP_PROV_PRESENT;
		pp_xml_free(x);
		x = NULL;
	}
	if (u && (!destroy || user_there)) {
		snprintf(principal, sizeof(principal), "user/%s", a->user);
		if ((rc = inspect_grant(ctx, a, plan, principal, false, policy_there && user_there,
					err)))
			return rc;
	}
	if (!ctx->opts->create_key && !destroy) {
		snprintf(principal, sizeof(principal), "%s/%s",
			 a->principal_is_user ? "user" : "role", a->principal);
		if ((rc = inspect_grant(ctx, a, plan, principal, true, policy_there, err)))
			return rc;
	}
	/* Destroy: each attachment apply recorded on a dispatcher's identity. */
	for (const char *p = destroy ? pp_buf_str(&ctx->owned) : ""; *p;) {
		size_t len = strcspn(p, "\n"), pre = strlen(GRANT_PREFIX);
		const char *colon = len > pre ? memchr(p + pre, ':', len - pre) : NULL;

		if (colon && !strncmp(p, GRANT_PREFIX, pre) &&
		    (size_t)(p + len - colon - 1) == strlen(a->policy_arn) &&
		    !strncmp(colon + 1, a->policy_arn, strlen(a->policy_arn)) &&
		    (size_t)(colon - p - pre) < sizeof(principal)) {
			snprintf(principal, sizeof(principal), "%.*s", (int)(colon - p - pre),
				 p + pre);
			if ((rc = inspect_grant(ctx, a, plan, principal, true, policy_there, err)))
				return rc;
		}
		p += len + (p[len] == '\n');
	}
	if (!u)
		return 0;
	struct pp_prov_res *k = pp_prov_plan_add(plan, &k_key, a->user, err);

	if (!k)
		return PP_ENOMEM;
	k->owned = true;
	return user_there ? inspect_keys(ctx, a, k, err) : 0;
}

static int aws_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, struct pp_error *err)
{
	struct aws *a = ctx->state;
	int rc;

	a->nzones = 0;
	memset(a->subnets, 0, sizeof(a->subnets));
	a->vpc[0] = a->igw[0] = a->rtb[0] = a->sg[0] = '\0';
	if ((rc = caller(ctx, a, err)) || (rc = inspect_role(ctx, a, plan, err)) ||
	    (rc = inspect_json(ctx, a, plan, err)) || (rc = inspect_network(ctx, a, plan, err)) ||
	    (rc = inspect_dispatcher(ctx, a, plan, err)))
		return rc;
	return 0;
}

/* ---- outputs ---- */

/* The key file (made now, or by an earlier apply and kept) and the
 * section that points the pool at it. */
static int key_outputs(struct pp_prov_ctx *ctx, struct aws *a, struct pp_prov_out *out,
		       struct pp_error *err)
{
	struct pp_buf text;
	char path[4200];
	int rc = 0;

	pp_buf_init(&text, KEY_FILE_MAX);
	if (a->key_secret[0]) {
		rc = pp_buf_printf(
			     &text,
			     "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
			     a->key_id, a->key_secret)
			     ? pp_fail(err, PP_ENOMEM, "out of memory")
			     : 0;
	} else if (ctx->opts->keydir) {
		snprintf(path, sizeof(path), "%s/" KEY_FILE, ctx->opts->keydir);
		rc = pp_file_read(path, KEY_FILE_MAX, &text, err);
	} else {
		rc = pp_fail(err, PP_EINVALID, "no key file to write");
	}
	if (!rc)
		pp_secret_register(pp_buf_str(&text));
	if (!rc && !(rc = pp_prov_out_file(out, KEY_FILE, pp_buf_str(&text), err)))
		rc = pp_prov_out_cred(out, "type", "aws", err) ?:
		     pp_prov_out_cred(out, "source", "profile", err) ?:
		     pp_prov_out_cred(out, "file", "@" KEY_FILE, err) ?:
		     pp_prov_out_cred(out, "profile", "default", err) ?:
		     pp_prov_out_cred(out, "region", a->region, err);
	OPENSSL_cleanse(text.data, text.len);
	pp_buf_free(&text);
	return rc;
}

static int aws_outputs(struct pp_prov_ctx *ctx, struct pp_prov_out *out, struct pp_error *err)
{
	struct aws *a = ctx->state;
	/* The drop-in's job_variables replace the pool's: start from them. */
	struct pp_json *v = pp_json_clone(ctx->vars), *net = obj();
	struct pp_json *subnets = pp_json_new(PP_JSON_ARRAY);
	struct pp_json *sgs = pp_json_new(PP_JSON_ARRAY), *logs = obj();
	int rc = 0;

	for (size_t z = 0; z < a->nzones; z++)
		pp_json_append(subnets, pp_json_new_string(a->subnets[z]));
	pp_json_append(sgs, pp_json_new_string(a->sg));
	pp_json_set(net, "subnets", subnets);
	pp_json_set(net, "securityGroups", sgs);
	/* Public subnets without a NAT: a task needs a public address to pull. */
	pp_json_set_string(net, "assignPublicIp", "ENABLED");
	pp_json_set_string(logs, "awslogs-group", a->log_group);
	if (!v ||
	    pp_json_set_string(v, "cluster", a->cluster_arn[0] ? a->cluster_arn : a->cluster) ||
	    pp_json_set_string(v, "execution_role_arn", a->role_arn) ||
	    pp_json_set(v, "network_configuration", net) ||
	    pp_json_set_bool(v, "configure_cloudwatch_logs", true) ||
	    pp_json_set(v, "cloudwatch_logs_options", logs) ||
	    pp_json_set_string(v, "cloudwatch_logs_prefix", "pushpool")) {
		pp_json_free(v);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	out->job_variables = v;
	if (ctx->opts->create_key)
		rc = key_outputs(ctx, a, out, err);
	return rc;
}

static const char *const aws_types[] = {"ecs:push", "ecs", NULL};

const struct pp_provisioner pp_provisioner_aws = {
	.abi = PP_PROVISIONER_ABI,
	.name = "ecs",
	.pool_types = aws_types,
	.cred_type = "aws",
	.summary = "ECS: execution role, cluster, network, ECR repository, log group, "
		   "dispatcher policy",
	.open = aws_open,
	.inspect = aws_inspect,
	.outputs = aws_outputs,
	.close = aws_close,
};
