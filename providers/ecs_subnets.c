/* A pool that names vpc_id but no network_configuration (what Prefect's
 * provisioner writes) gets its network as Prefect's ECS worker builds it
 * (prefect_aws workers/ecs network configuration: load_network_configuration):
 * EC2 DescribeSubnets with the filter vpc-id, every subnet of the VPC, a
 * public address assigned, and no security group named (the VPC's default
 * group applies). One request before the task definition step.
 *
 * EC2 speaks the Query protocol: a form body, an XML answer (lib/xml). Its
 * host is ec2.REGION.amazonaws.com, or with a pool endpoint ending in /ecs
 * (the mock's BASE/aws/ecs) the sibling path /ec2, signed for service ec2. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "lib/log.h"
#include "lib/xml.h"
#include "providers/common.h"
#include "providers/ecs.h"

#define EC2_VERSION "2016-11-15"

static void ec2_scope(struct pp_run_io *io, const char *region, const char *service)
{
	if (io->run_cred)
		pp_cred_set_scope(io->run_cred, region, service);
	if (io->cred)
		pp_cred_set_scope(io->cred, region, service);
}

bool pp_ecs_vpc_id_ok(const char *vpc)
{
	size_t n = vpc ? strlen(vpc) : 0;

	if (n < 5 || n >= sizeof(((struct ecs_state *)0)->vpc_id) || strncmp(vpc, "vpc-", 4))
		return false;
	for (size_t i = 4; i < n; i++)
		if (!isxdigit((unsigned char)vpc[i]))
			return false;
	return true;
}

int pp_ecs_send_subnets(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	size_t n = strlen(st->base);
	char url[320], body[256];

	if (io->endpoint && *io->endpoint && n >= 4 && !strcmp(st->base + n - 4, "/ecs"))
		snprintf(url, sizeof(url), "%.*s/ec2/", (int)(n - 4), st->base);
	else
		snprintf(url, sizeof(url), "https://ec2.%s.amazonaws.com/", st->region);
	/* vpc_id is "vpc-" and hex digits (checked in prepare): nothing to escape. */
	snprintf(body, sizeof(body),
		 "Action=DescribeSubnets&Version=" EC2_VERSION
		 "&Filter.1.Name=vpc-id&Filter.1.Value.1=%s",
		 st->vpc_id);
	pp_http_req_init(&io->req, "POST", url);
	io->req.max_response = PP_PROVIDER_MAX_RESPONSE;
	if (!io->req.url ||
	    pp_http_req_set_header(&io->req, "Content-Type",
				   "application/x-www-form-urlencoded; charset=utf-8") ||
	    pp_http_req_body(&io->req, body, strlen(body)))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	/* DescribeSubnets only reads: harmless to resend on a reused connection. */
	io->req.flags |= PP_HTTP_RESENDABLE;
	/* Signed for EC2; the next ECS call signs for ECS again (pp_ecs_send_action). */
	ec2_scope(io, st->region, "ec2");
	st->step = ECS_SUBNETS;
	return PP_STEP_SEND;
}

/* EC2's own words from <Response><Errors><Error><Code>/<Message>. */
static int ec2_error(const struct pp_run_io *io, const char *vpc, struct pp_error *err)
{
	struct pp_xml *x = NULL;
	const struct pp_buf *b = &io->resp->body;
	int code = io->resp_rc ? io->resp_rc : PP_EINVALID;

	if (b->len && !pp_xml_parse(b->data, b->len, NULL, &x, NULL)) {
		const char *c = pp_xml_path_text(x, "Errors/Error/Code");
		const char *m = pp_xml_path_text(x, "Errors/Error/Message");

		if (c && (!strcmp(c, "RequestLimitExceeded") || !strcmp(c, "Throttling")))
			code = PP_ETHROTTLED;
		pp_fail(err, code, "EC2 DescribeSubnets (vpc_id %s): HTTP %ld: %s: %s", vpc,
			io->resp->status, c ? c : "?", m ? m : "");
		pp_xml_free(x);
		return code;
	}
	pp_xml_free(x);
	return pp_fail(err, code, "EC2 DescribeSubnets (vpc_id %s): HTTP %ld", vpc,
		       io->resp->status);
}

int pp_ecs_on_subnets(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	struct pp_xml *x = NULL;
	struct pp_json *subnets, *vpc, *nc;
	int rc;

	ec2_scope(io, st->region, "ecs");
	if (io->resp_rc)
		return ec2_error(io, st->vpc_id, err);
	if ((rc = pp_xml_parse(io->resp->body.data, io->resp->body.len, NULL, &x, err)))
		return pp_error_prefix(err, "EC2 DescribeSubnets answer: ");
	subnets = pp_json_new(PP_JSON_ARRAY);
	for (const struct pp_xml *it = pp_xml_path(x, "subnetSet/item"); subnets && it;
	     it = pp_xml_next_same(it)) {
		const char *id = pp_xml_path_text(it, "subnetId");

		if (id && *id && pp_json_append(subnets, pp_json_new_string(id))) {
			pp_json_free(subnets);
			subnets = NULL;
		}
	}
	pp_xml_free(x);
	if (!subnets)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	if (!subnets->count) {
		pp_json_free(subnets);
		return pp_fail(err, PP_EINVALID,
			       "vpc_id %s has no subnets in %s (or no such VPC there): the "
			       "network configuration cannot be inferred; set "
			       "network_configuration",
			       st->vpc_id, st->region);
	}
	pp_info("ecs run %s: vpc_id %s: %zu subnets", io->run_id, st->vpc_id, subnets->count);
	/* Each set owns what it is given, also when it fails. */
	if (!(vpc = pp_json_new(PP_JSON_OBJECT))) {
		pp_json_free(subnets);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if (pp_json_set(vpc, "subnets", subnets) ||
	    pp_json_set_string(vpc, "assignPublicIp", "ENABLED") ||
	    !(nc = pp_json_new(PP_JSON_OBJECT))) {
		pp_json_free(vpc);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if (pp_json_set(nc, "awsvpcConfiguration", vpc)) {
		pp_json_free(nc);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if (pp_json_set(st->run, "networkConfiguration", nc))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	st->step = ECS_TD;
	return pp_ecs_start_td(io, err);
}
