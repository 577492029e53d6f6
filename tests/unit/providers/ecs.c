/* The ECS backend against an in-process imitation of the JSON 1.1 API:
 * request shapes, single-flight task definition registration, clientToken
 * idempotency, failures[] handling, status mapping and cleanup. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dispatcher/op_driver.h"
#include "lib/json.h"
#include "providers/ecs.h"
#include "dispatcher/dry_run.h"
#define HS_FAKE_SERVER_VIEW
#include "tests/unit/http_server.h"

#define RUN_ID	      "6f1c2d3e-4a5b-4c6d-8e9f-a0b1c2d3e4f5"
#define STORE_ID      "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
#define TOKEN	      "pp-6f1c2d3e4a5b4c6d8e9fa0b1c2d3e4f5-1"
#define TD_ARN_PREFIX "arn:aws:ecs:eu-west-1:123456789012:task-definition/"

struct aws {
	int registers, run_calls, stops, deregisters, describes_td;
	int register_lost; /* register, then answer 503 */
	int capacity_failures;
	int inactive;		 /* answer RunTask "TaskDefinition is inactive" this many times */
	int list_pages;		 /* ListTasks calls answered */
	int quota_errors;	 /* answer RunTask with the PROVISIONING quota ClientException */
	int missing;		 /* answer DescribeTasks MISSING this many times first */
	const char *fail_reason; /* answer RunTask with this failure */
	int throttles;
	bool conflict;
	/* Registrations answer revision registers + rev_base; with
	 * lower_listed, ListTaskDefinitions shows revision 1 below ours, with
	 * our content (described with the last registration's tags). */
	int rev_base;
	bool lower_listed;
	char calls[512];       /* the actions called, in order, each followed by a space */
	char last_run_td[256]; /* RunTask's taskDefinition */
	char deregistered[256];
	char tokens[64][64];
	int ntokens;
	char last_td[8192];
	const char *task;	    /* DescribeTasks answer */
	const char *describe_error; /* answer DescribeTasks 400 with this __type */
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

static void describe_td(struct aws *a, int revision, struct fs_response *rs)
{
	struct pp_json *td = NULL;
	if (!a->last_td[0] || pp_json_parse(a->last_td, strlen(a->last_td), NULL, &td, NULL)) {
		rs->status = 400;
		snprintf(rs->body, sizeof(rs->body),
			 "{\"__type\":\"ClientException\",\"message\":\"Unable to describe task "
			 "definition.\"}");
		return;
	}
	struct pp_json *tags = pp_json_detach(pp_json_get(td, "tags"));
	char arn[256];
	snprintf(arn, sizeof(arn), TD_ARN_PREFIX "%s:%d", pp_json_get_string(td, "family"),
		 revision);
	pp_json_set_string(td, "taskDefinitionArn", arn);
	pp_json_set_string(td, "status", "ACTIVE");
	pp_json_set_int(td, "revision", revision);
	struct pp_json *out = pp_json_new(PP_JSON_OBJECT);
	pp_json_set(out, "taskDefinition", td);
	if (tags)
		pp_json_set(out, "tags", tags);
	char *text = pp_json_to_string(out, PP_JSON_COMPACT);
	snprintf(rs->body, sizeof(rs->body), "%s", text);
	free(text);
	pp_json_free(out);
}

static void run_task(struct aws *a, const struct fs_request *rq, struct fs_response *rs)
{
	a->run_calls++;
	if (a->throttles > 0) {
		a->throttles--;
		rs->status = 400;
		snprintf(rs->body, sizeof(rs->body),
			 "{\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded\"}");
		return;
	}
	if (a->inactive > 0) {
		a->inactive--;
		rs->status = 400;
		snprintf(rs->body, sizeof(rs->body),
			 "{\"__type\":\"ClientException\",\"message\":\"TaskDefinition is "
			 "inactive\"}");
		return;
	}
	if (a->quota_errors > 0) {
		a->quota_errors--;
		rs->status = 400;
		snprintf(rs->body, sizeof(rs->body),
			 "{\"__type\":\"ClientException\",\"message\":\"Tasks provisioning "
			 "capacity limit exceeded.\"}");
		return;
	}
	if (a->capacity_failures > 0) {
		a->capacity_failures--;
		snprintf(rs->body, sizeof(rs->body),
			 "{\"tasks\":[],\"failures\":[{\"reason\":\"Capacity is unavailable at "
			 "this time. Please try again later or in a different availability "
			 "zone\"}]}");
		return;
	}
	if (a->fail_reason) {
		snprintf(rs->body, sizeof(rs->body),
			 "{\"tasks\":[],\"failures\":[{\"arn\":\"arn:aws:ecs:eu-west-1:1:"
			 "container-instance/x\",\"reason\":\"%s\",\"detail\":\"needs "
			 "ecs.capability.efs\"}]}",
			 a->fail_reason);
		return;
	}
	if (a->conflict) {
		rs->status = 400;
		snprintf(rs->body, sizeof(rs->body),
			 "{\"__type\":\"ConflictException\",\"message\":\"The clientToken is in "
			 "use\",\"resourceIds\":[\"arn:aws:ecs:eu-west-1:123456789012:task/c1/"
			 "earlier\"]}");
		return;
	}
	struct pp_json *b = NULL;
	assert_int_equal(pp_json_parse(rq->body, rq->body_len, NULL, &b, NULL), 0);
	const char *tok = pp_json_get_string(b, "clientToken");
	snprintf(a->last_run_td, sizeof(a->last_run_td), "%s",
		 pp_json_get_string(b, "taskDefinition"));
	int i;
	for (i = 0; i < a->ntokens; i++)
		if (!strcmp(a->tokens[i], tok))
			break;
	if (i == a->ntokens && a->ntokens < 64)
		snprintf(a->tokens[a->ntokens++], sizeof(a->tokens[0]), "%s", tok);
	snprintf(rs->body, sizeof(rs->body),
		 "{\"tasks\":[{\"taskArn\":\"arn:aws:ecs:eu-west-1:123456789012:task/c1/t%d\","
		 "\"lastStatus\":\"PROVISIONING\"}],\"failures\":[]}",
		 i);
	pp_json_free(b);
}

static void aws_answer(const struct fs_request *rq, struct fs_response *rs, void *ud)
{
	struct aws *a = ud;
	const char *t = rq->target;
	const char *action = strrchr(t, '.');
	if (action && strlen(a->calls) + strlen(action) + 1 < sizeof(a->calls)) {
		strcat(a->calls, action + 1);
		strcat(a->calls, " ");
	}
	if (!t[0] && rq->body && strstr(rq->body, "Action=DescribeSubnets")) {
		/* EC2: the Query protocol's XML. */
		if (strstr(rq->body, "vpc-0dead")) {
			rs->status = 403;
			snprintf(rs->body, sizeof(rs->body),
				 "<Response><Errors><Error><Code>UnauthorizedOperation</Code>"
				 "<Message>You are not authorized to perform this operation."
				 "</Message></Error></Errors></Response>");
			return;
		}
		snprintf(rs->body, sizeof(rs->body),
			 "<DescribeSubnetsResponse "
			 "xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
			 "<requestId>r</requestId><subnetSet>%s</subnetSet></"
			 "DescribeSubnetsResponse>",
			 strstr(rq->body, "vpc-00000")
				 ? ""
				 : "<item><subnetId>subnet-a</subnetId></item>"
				   "<item><subnetId>subnet-b</subnetId></item>");
		return;
	}
	if (ends_with(t, ".RegisterTaskDefinition")) {
		a->registers++;
		snprintf(a->last_td, sizeof(a->last_td), "%s", rq->body);
		if (a->register_lost > 0) {
			a->register_lost--;
			rs->status = 503;
			return;
		}
		snprintf(rs->body, sizeof(rs->body),
			 "{\"taskDefinition\":{\"taskDefinitionArn\":\"" TD_ARN_PREFIX
			 "pushpool-test:%d\",\"status\":\"ACTIVE\"}}",
			 a->registers + a->rev_base);
	} else if (ends_with(t, ".DescribeTaskDefinition")) {
		a->describes_td++;
		bool lower = a->lower_listed && strstr(rq->body, "pushpool-test:1\"");
		describe_td(a, lower ? 1 : a->registers + a->rev_base, rs);
	} else if (ends_with(t, ".ListTaskDefinitions") && a->lower_listed) {
		snprintf(rs->body, sizeof(rs->body),
			 "{\"taskDefinitionArns\":[\"" TD_ARN_PREFIX
			 "pushpool-test:%d\",\"" TD_ARN_PREFIX "pushpool-test:1\"]}",
			 a->registers + a->rev_base);
	} else if (ends_with(t, ".RunTask")) {
		run_task(a, rq, rs);
	} else if (ends_with(t, ".DescribeTasks") && strstr(rq->body, "\"TAGS\"")) {
		snprintf(rs->body, sizeof(rs->body), "%s",
			 strstr(rq->body, "task/c1/a")
				 ? "{\"tasks\":[{\"taskArn\":\"arn:aws:ecs:eu-west-1:1:task/c1/a\","
				   "\"createdAt\":1700000000.5,\"tags\":[{\"key\":\"pushpool:run-"
				   "id\","
				   "\"value\":\"" RUN_ID
				   "\"},{\"key\":\"pushpool:store-id\",\"value\":"
				   "\"" STORE_ID
				   "\"}]},{\"taskArn\":\"arn:aws:ecs:eu-west-1:1:task/c1/"
				   "b\",\"tags\":[{\"key\":\"team\",\"value\":\"x\"}]}]}"
				 : "{\"tasks\":[{\"taskArn\":\"arn:aws:ecs:eu-west-1:1:task/c1/c\","
				   "\"tags\":[{\"key\":\"pushpool:run-id\",\"value\":\"" RUN_ID
				   "\"}]}]}");
	} else if (ends_with(t, ".DescribeTasks")) {
		if (a->describe_error) {
			rs->status = 400;
			snprintf(rs->body, sizeof(rs->body),
				 "{\"__type\":\"%s\",\"message\":\"not allowed\"}",
				 a->describe_error);
			return;
		}
		if (a->missing > 0) {
			a->missing--;
			snprintf(rs->body, sizeof(rs->body),
				 "{\"tasks\":[],\"failures\":[{\"arn\":\"%s\",\"reason\":"
				 "\"MISSING\"}]}",
				 "arn:aws:ecs:eu-west-1:123456789012:task/c1/t0");
			return;
		}
		snprintf(rs->body, sizeof(rs->body), "%s", a->task ? a->task : "{}");
	} else if (ends_with(t, ".ListTasks")) {
		/* Two pages: a task of ours and a foreign one, then one of ours
		 * without a store tag. */
		a->list_pages++;
		bool first = !strstr(rq->body, "\"nextToken\"");
		snprintf(rs->body, sizeof(rs->body),
			 first ? "{\"taskArns\":[\"arn:aws:ecs:eu-west-1:1:task/c1/a\","
				 "\"arn:aws:ecs:eu-west-1:1:task/c1/b\"],\"nextToken\":\"p2\"}"
			       : "{\"taskArns\":[\"arn:aws:ecs:eu-west-1:1:task/c1/c\"]}");
	} else if (ends_with(t, ".StopTask")) {
		a->stops++;
		snprintf(rs->body, sizeof(rs->body), "{\"task\":{}}");
	} else if (ends_with(t, ".DeregisterTaskDefinition")) {
		a->deregisters++;
		struct pp_json *b = NULL;
		assert_int_equal(pp_json_parse(rq->body, rq->body_len, NULL, &b, NULL), 0);
		snprintf(a->deregistered, sizeof(a->deregistered), "%s",
			 pp_json_get_string(b, "taskDefinition"));
		pp_json_free(b);
		snprintf(rs->body, sizeof(rs->body),
			 "{\"taskDefinition\":{\"status\":\"INACTIVE\"}}");
	} else {
		rs->status = 400;
		snprintf(rs->body, sizeof(rs->body),
			 "{\"__type\":\"UnknownOperationException\",\"message\":\"%s\"}", t);
	}
}

static const char *job_text =
	"{\"command\":null,\"env\":{\"PREFECT__FLOW_RUN_ID\":\"" RUN_ID "\"},"
	"\"labels\":{\"prefect.io/flow-run-id\":\"" RUN_ID "\"},\"name\":\"my-flow\","
	"\"region\":\"eu-west-1\","
	"\"task_definition\":{\"containerDefinitions\":[{\"image\":\"repo/flows:1\","
	"\"name\":\"prefect\"}],\"cpu\":1024,\"family\":\"pushpool-test\",\"memory\":2048,"
	"\"executionRoleArn\":\"arn:aws:iam::123456789012:role/exec\"},"
	"\"task_run_request\":{\"launchType\":\"FARGATE\",\"cluster\":\"c1\","
	"\"overrides\":{\"containerOverrides\":[{\"name\":\"prefect\",\"command\":\"prefect "
	"flow-run execute\",\"environment\":{\"PREFECT__FLOW_RUN_ID\":\"" RUN_ID "\"},"
	"\"cpu\":null,\"memory\":null}],\"cpu\":1024,\"memory\":2048},"
	"\"tags\":{\"team\":\"data\"},\"taskDefinition\":null,\"capacityProviderStrategy\":[]},"
	"\"network_configuration\":{\"subnets\":[\"subnet-1\"],\"securityGroups\":[\"sg-1\"],"
	"\"assignPublicIp\":\"ENABLED\"},"
	"\"auto_deregister_task_definition\":true,\"match_latest_revision_in_family\":false,"
	"\"task_watch_poll_interval\":2.5,\"cluster\":\"c1\"}";

struct fixture {
	struct fake_server srv;
	struct aws aws;
	struct pp_json *job;
	void *shared;
	struct pp_run_io io;
};

static const struct pp_provider *ecs(void)
{
	return pp_provider_find("ecs:push");
}

static const struct pp_exec_policy fast = {.base_ms = 1, .cap_ms = 5};

static void io_init(struct fixture *f, struct pp_run_io *io, const char *run_id)
{
	memset(io, 0, sizeof(*io));
	io->run_id = run_id;
	io->store_id = STORE_ID;
	io->attempt = 1;
	io->job = f->job;
	io->endpoint = f->srv.base;
	io->pool_shared = &f->shared;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || fs_start(&f->srv, aws_answer, &f->aws))
		return -1;
	if (pp_json_parse(job_text, strlen(job_text), NULL, &f->job, NULL))
		return -1;
	io_init(f, &f->io, RUN_ID);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f->io.state)
		pp_exec_io_release(&f->io, ecs());
	ecs()->release_shared(f->shared);
	pp_json_free(f->job);
	fs_stop(&f->srv);
	free(f);
	return 0;
}

/* The first request for action (its X-Amz-Target ends with it). */
static const struct fs_request *request_for(struct fake_server *srv, const char *action)
{
	for (int i = 0; i < srv->count; i++)
		if (ends_with(srv->log[i].target, action))
			return &srv->log[i];
	fail_msg("no %s request", action);
	return NULL;
}

static struct pp_json *body_of(struct fake_server *srv, const char *action)
{
	const struct fs_request *r = request_for(srv, action);
	struct pp_json *j = NULL;
	assert_int_equal(pp_json_parse(r->body, r->body_len, NULL, &j, NULL), 0);
	return j;
}

static void submit(struct fixture *f, int want)
{
	struct pp_error err = {0};
	assert_int_equal(pp_exec_io_prepare(&f->io, ecs(), &err), 0);
	int rc = pp_exec_run_op(ecs(), PP_OP_SUBMIT, &f->io, &fast, &err);
	if (rc != want)
		fail_msg("submit: %d %s", rc, err.msg);
}

static void test_requests_have_the_ecs_shape(void **state)
{
	struct fixture *f = *state;
	submit(f, 0);
	assert_string_equal(f->io.infra_id, "arn:aws:ecs:eu-west-1:123456789012:task/c1/t0");
	assert_int_equal(f->aws.registers, 1);
	assert_string_equal(f->srv.log[0].target,
			    "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition");
	assert_string_equal(f->srv.log[0].url, "/");

	struct pp_json *td = body_of(&f->srv, ".RegisterTaskDefinition");
	assert_string_equal(pp_json_get_string(td, "cpu"), "1024");
	assert_string_equal(pp_json_get_string(td, "memory"), "2048");
	assert_string_equal(pp_json_get_string(td, "networkMode"), "awsvpc");
	assert_string_equal(pp_json_string(pp_json_path(td, "requiresCompatibilities[0]")),
			    "FARGATE");
	assert_string_equal(pp_json_string(pp_json_path(td, "tags[0].key")), "pushpool:td-hash");
	assert_int_equal(strlen(pp_json_string(pp_json_path(td, "tags[0].value"))), 64);
	pp_json_free(td);

	struct pp_json *run = body_of(&f->srv, ".RunTask");
	assert_string_equal(pp_json_get_string(run, "clientToken"), TOKEN);
	assert_string_equal(pp_json_get_string(run, "startedBy"), TOKEN);
	assert_string_equal(pp_json_get_string(run, "cluster"), "c1");
	assert_string_equal(pp_json_get_string(run, "launchType"), "FARGATE");
	assert_null(pp_json_get(run, "capacityProviderStrategy"));
	assert_string_equal(pp_json_get_string(run, "taskDefinition"),
			    TD_ARN_PREFIX "pushpool-test:1");
	assert_string_equal(pp_json_string(pp_json_path(
				    run, "networkConfiguration.awsvpcConfiguration.subnets[0]")),
			    "subnet-1");
	struct pp_json *co = pp_json_path(run, "overrides.containerOverrides[0]");
	assert_string_equal(pp_json_string(pp_json_path(co, "command[1]")), "flow-run");
	assert_string_equal(pp_json_string(pp_json_path(co, "environment[0].name")),
			    "PREFECT__FLOW_RUN_ID");
	assert_null(pp_json_get(co, "cpu"));
	assert_string_equal(pp_json_string(pp_json_path(run, "overrides.cpu")), "1024");
	assert_string_equal(pp_json_string(pp_json_path(run, "tags[0].key")), "team");
	assert_string_equal(pp_json_string(pp_json_path(run, "tags[1].key")),
			    "prefect.io/flow-run-id");
	assert_string_equal(pp_json_string(pp_json_path(run, "tags[1].value")), RUN_ID);
	assert_string_equal(pp_json_string(pp_json_path(run, "tags[2].key")), "pushpool:run-id");
	assert_string_equal(pp_json_string(pp_json_path(run, "tags[2].value")), RUN_ID);
	pp_json_free(run);
	/* Each answers with the one definition or task it names: no coding
	 * asked for (lib/http.h, PP_HTTP_SMALL_ANSWER). */
	assert_string_equal(request_for(&f->srv, ".RegisterTaskDefinition")->coding, "");
	assert_string_equal(request_for(&f->srv, ".RunTask")->coding, "");
}

static const char *tag_value(const struct pp_json *run, const char *key)
{
	pp_json_foreach (t, pp_json_get(run, "tags"))
		if (!strcmp(pp_json_get_string(t, "key"), key))
			return pp_json_get_string(t, "value");
	return NULL;
}

/* Every key and value must match the model's TagKey/TagValue pattern
 * ([\p{L}\p{Z}\p{N}_.:/=+\-@]*, ASCII here) and lengths (128/256, 50 tags). */
static void assert_valid_ecs_tags(const struct pp_json *run)
{
	const struct pp_json *tags = pp_json_get(run, "tags");
	assert_true(tags->count <= 50);
	pp_json_foreach (t, tags) {
		const char *k = pp_json_get_string(t, "key");
		const char *v = pp_json_get_string(t, "value");
		assert_non_null(k);
		assert_non_null(v);
		assert_true(strlen(k) >= 1 && strlen(k) <= 128);
		assert_true(strlen(v) <= 256);
		for (const char *p = k; *p; p++)
			assert_true(isalnum((unsigned char)*p) || strchr("_.:/=+-@ ", *p));
		for (const char *p = v; *p; p++)
			assert_true(isalnum((unsigned char)*p) || strchr("_.:/=+-@ ", *p));
	}
}

/* botocore types: ContainerOverride cpu/memory are integers, TaskOverride
 * cpu/memory strings, whatever type the template rendered. */
static void test_override_types_follow_the_model(void **state)
{
	struct fixture *f = *state;
	struct pp_json *co =
		pp_json_path(f->job, "task_run_request.overrides.containerOverrides[0]");
	pp_json_set_string(co, "cpu", "512");
	pp_json_set_string(co, "memory", "1024");
	submit(f, 0);
	struct pp_json *run = body_of(&f->srv, ".RunTask");
	assert_int_equal(pp_json_path(run, "overrides.containerOverrides[0].cpu")->type,
			 PP_JSON_NUMBER);
	assert_int_equal((int)pp_json_get_int(pp_json_path(run, "overrides.containerOverrides[0]"),
					      "memory", 0),
			 1024);
	assert_string_equal(pp_json_string(pp_json_path(run, "overrides.cpu")), "1024");
	pp_json_free(run);
}

static void test_tags_are_sanitised_like_prefect(void **state)
{
	struct fixture *f = *state;
	struct pp_json *labels = pp_json_get(f->job, "labels");
	pp_json_set_string(labels, "prefect.io/flow-name", "etl (daily), v2 & more");
	pp_json_set_string(labels, "cost,center", "1,000 \u00e9t\u00e9!");
	pp_json_set_string(labels, "aws:owner", "me");
	pp_json_set_string(labels, "team", "платформа");
	char longv[400];
	memset(longv, 'v', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	pp_json_set_string(labels, "long", longv);
	submit(f, 0);
	struct pp_json *run = body_of(&f->srv, ".RunTask");
	assert_valid_ecs_tags(run);
	/* python-slugify with Prefect's pattern, case kept */
	assert_string_equal(tag_value(run, "prefect.io/flow-name"), "etl-daily-v2-more");
	assert_string_equal(tag_value(run, "cost-center"), "1000-t");
	assert_string_equal(tag_value(run, "prefect.io/flow-run-id"), RUN_ID);
	/* a label replaces the template's tag of the same key */
	assert_string_equal(tag_value(run, "team"), "");
	assert_int_equal(strlen(tag_value(run, "long")), 256);
	assert_null(tag_value(run, "aws:owner"));
	assert_string_equal(tag_value(run, "pushpool:run-id"), RUN_ID);
	pp_json_free(run);
}

/* RunTask's overrides are at most 8192 characters as written: a value
 * that fits is sent even when every byte could have needed escaping, and
 * one that only its escapes take over the cap is refused. */
static void test_overrides_capped_as_written(void **state)
{
	struct fixture *f = *state;
	struct pp_json *env = pp_json_get(f->job, "env");
	struct pp_error err = {0};
	char v[4501];

	memset(v, 'x', 1400);
	v[1400] = '\0';
	pp_json_set_string(env, "BIG", v);
	submit(f, 0);
	struct pp_json *run = body_of(&f->srv, ".RunTask");
	char *text = pp_json_to_string(pp_json_get(run, "overrides"), PP_JSON_COMPACT);
	assert_non_null(strstr(text, v));
	free(text);
	pp_json_free(run);
	pp_exec_io_release(&f->io, ecs());

	memset(v, '"', 4500);
	v[4500] = '\0';
	pp_json_set_string(env, "BIG", v);
	io_init(f, &f->io, RUN_ID);
	assert_int_equal(pp_exec_io_prepare(&f->io, ecs(), &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "ECS allows 8192"));
}

static void test_at_most_fifty_tags(void **state)
{
	struct fixture *f = *state;
	struct pp_json *labels = pp_json_get(f->job, "labels");
	for (int i = 0; i < 80; i++) {
		char k[16];
		snprintf(k, sizeof(k), "l%d", i);
		pp_json_set_string(labels, k, "x");
	}
	submit(f, 0);
	struct pp_json *run = body_of(&f->srv, ".RunTask");
	assert_valid_ecs_tags(run);
	assert_int_equal(pp_json_get(run, "tags")->count, 50);
	assert_string_equal(tag_value(run, "pushpool:run-id"), RUN_ID);
	assert_string_equal(tag_value(run, "pushpool:store-id"), STORE_ID);
	pp_json_free(run);
}

static void done_fn(void *ud, int rc, const struct pp_error *e)
{
	int *done = ud;
	assert_int_equal(rc, 0);
	(void)e;
	(*done)++;
}

static void test_fifty_runs_register_once(void **state)
{
	struct fixture *f = *state;
	enum { N = 50 };
	static struct pp_run_io ios[N];
	static char ids[N][40];
	struct pp_error err = {0};
	int done = 0;
	struct pp_exec *x = pp_exec_new();

	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "6f1c2d3e-4a5b-4c6d-8e9f-%012d", i);
		io_init(f, &ios[i], ids[i]);
		assert_int_equal(pp_exec_io_prepare(&ios[i], ecs(), &err), 0);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(
			pp_exec_start(x, ecs(), PP_OP_SUBMIT, &ios[i], &fast, done_fn, &done, &err),
			0);
	while (pp_exec_poll(x, 200) > 0)
		;
	assert_int_equal(done, N);
	assert_int_equal(f->aws.registers, 1);
	assert_int_equal(f->aws.ntokens, N);
	/* Everyone cleans up; only the last user deregisters. */
	for (int i = 0; i < N; i++) {
		assert_int_equal(pp_exec_run_op(ecs(), PP_OP_CLEANUP, &ios[i], &fast, &err), 0);
		assert_int_equal(f->aws.deregisters, i == N - 1 ? 1 : 0);
	}
	for (int i = 0; i < N; i++)
		pp_exec_io_release(&ios[i], ecs());
	pp_exec_free(x);
}

static void test_lost_register_answer_is_reconciled(void **state)
{
	struct fixture *f = *state;
	f->aws.register_lost = 1;
	submit(f, 0);
	assert_int_equal(f->aws.registers, 1);
	assert_int_equal(f->aws.describes_td, 1);
	assert_int_equal(f->aws.ntokens, 1);
	/* Found through our hash tag: we registered it, so we deregister it. */
	struct pp_error err = {0};
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_CLEANUP, &f->io, &fast, &err), 0);
	assert_int_equal(f->aws.deregisters, 1);
}

/* A registered revision serves its run at once: the look for an equal one
 * registered concurrently elsewhere (ListTaskDefinitions) waits until the
 * run's task has started. The lower revision it finds serves the runs that
 * follow, without a registration, and ours is deregistered; at cleanup the
 * lower one stays (another process registered it). */
static void test_task_starts_before_converging(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	f->aws.rev_base = 1;
	f->aws.lower_listed = true;
	submit(f, 0);
	assert_string_equal(f->aws.calls, "RegisterTaskDefinition RunTask ListTaskDefinitions "
					  "DescribeTaskDefinition DeregisterTaskDefinition ");
	assert_string_equal(f->aws.last_run_td, TD_ARN_PREFIX "pushpool-test:2");
	assert_string_equal(f->aws.deregistered, TD_ARN_PREFIX "pushpool-test:2");
	assert_string_equal(f->io.infra_id, "arn:aws:ecs:eu-west-1:123456789012:task/c1/t0");

	struct pp_run_io next;
	io_init(f, &next, "6f1c2d3e-4a5b-4c6d-8e9f-000000000002");
	f->aws.calls[0] = '\0';
	assert_int_equal(pp_exec_io_prepare(&next, ecs(), &err), 0);
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_SUBMIT, &next, &fast, &err), 0);
	assert_string_equal(f->aws.calls, "RunTask ");
	assert_string_equal(f->aws.last_run_td, TD_ARN_PREFIX "pushpool-test:1");
	assert_int_equal(f->aws.registers, 1);

	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_CLEANUP, &f->io, &fast, &err), 0);
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_CLEANUP, &next, &fast, &err), 0);
	assert_int_equal(f->aws.deregisters, 1);
	pp_exec_io_release(&next, ecs());
}

static void test_match_latest_reuses_revision(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	submit(f, 0);
	pp_exec_io_release(&f->io, ecs());
	ecs()->release_shared(f->shared);
	f->shared = NULL;

	pp_json_set_bool(f->job, "match_latest_revision_in_family", true);
	io_init(f, &f->io, "6f1c2d3e-4a5b-4c6d-8e9f-000000000002");
	submit(f, 0);
	assert_int_equal(f->aws.registers, 1);
	assert_int_equal(f->aws.describes_td, 1);
	/* Not registered by this run's process state: never deregistered. */
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_CLEANUP, &f->io, &fast, &err), 0);
	assert_int_equal(f->aws.deregisters, 0);
}

static void test_capacity_failure_is_retried_with_same_token(void **state)
{
	struct fixture *f = *state;
	f->aws.capacity_failures = 2;
	submit(f, 0);
	assert_int_equal(f->aws.run_calls, 3);
	assert_int_equal(f->aws.ntokens, 1);
}

/* Another process deregistered the definition this run resolved (a
 * duplicate it converged away): RunTask refuses it as INACTIVE once, and
 * the run resolves its definition again instead of failing. */
static void test_inactive_definition_is_resolved_again(void **state)
{
	struct fixture *f = *state;
	f->aws.inactive = 1;
	submit(f, 0);
	assert_int_equal(f->aws.run_calls, 2);
	assert_int_equal(f->aws.registers, 2);
	assert_string_equal(f->io.infra_id, "arn:aws:ecs:eu-west-1:123456789012:task/c1/t0");
}

/* A second INACTIVE answer is the run's failure, not a loop. */
static void test_inactive_twice_fails(void **state)
{
	struct fixture *f = *state;
	f->aws.inactive = 2;
	submit(f, PP_EINVALID);
	assert_int_equal(f->aws.run_calls, 2);
}

/* The sweeper's list: every ListTasks page, each described with its tags;
 * only tasks with our run tag are listed, with their store tag ("" when
 * none) and creation time. */
static void test_list_pages_and_reads_tags(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	struct pp_remote_list l = {0};
	f->io.listed = &l;
	assert_int_equal(pp_exec_io_prepare(&f->io, ecs(), &err), 0);
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_LIST, &f->io, &fast, &err), 0);
	assert_int_equal(f->aws.list_pages, 2);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0].id, "arn:aws:ecs:eu-west-1:1:task/c1/a");
	assert_string_equal(l.v[0].run_id, RUN_ID);
	assert_string_equal(l.v[0].store_id, STORE_ID);
	assert_true(l.v[0].created_ms == 1700000000500LL);
	assert_string_equal(l.v[1].id, "arn:aws:ecs:eu-west-1:1:task/c1/c");
	assert_string_equal(l.v[1].store_id, "");
	struct pp_json *req = body_of(&f->srv, ".ListTasks");
	assert_string_equal(pp_json_get_string(req, "cluster"), "c1");
	assert_string_equal(pp_json_get_string(req, "desiredStatus"), "RUNNING");
	pp_json_free(req);
	/* Lists grow: their answers come compressed. */
	assert_string_equal(request_for(&f->srv, ".ListTasks")->coding, "gzip");
	assert_string_equal(request_for(&f->srv, ".DescribeTasks")->coding, "gzip");
	pp_remote_list_free(&l);
}

static void test_conflict_adopts_bound_task(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	f->aws.capacity_failures = 0;
	pp_json_set_string(pp_json_get(f->job, "task_run_request"), "taskDefinition",
			   TD_ARN_PREFIX "given:7");
	assert_int_equal(pp_exec_io_prepare(&f->io, ecs(), &err), 0);
	f->aws.conflict = true;
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_SUBMIT, &f->io, &fast, &err), 0);
	/* ConflictException names the task already bound to the token. */
	assert_string_equal(f->io.infra_id, "arn:aws:ecs:eu-west-1:123456789012:task/c1/earlier");
	assert_int_equal(f->aws.registers, 0);
}

static void test_other_failure_is_reported(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	f->aws.fail_reason = "ATTRIBUTE";
	assert_int_equal(pp_exec_io_prepare(&f->io, ecs(), &err), 0);
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_SUBMIT, &f->io, &fast, &err), PP_EINVALID);
	assert_int_equal(f->aws.run_calls, 1);
	assert_non_null(strstr(err.msg, "ATTRIBUTE"));
	assert_non_null(strstr(err.msg, "ecs.capability.efs"));
}

static void test_throttling_is_retried(void **state)
{
	struct fixture *f = *state;
	f->aws.throttles = 2;
	submit(f, 0);
	assert_int_equal(f->aws.run_calls, 3);
}

static void test_default_family_follows_content(void **state)
{
	struct fixture *f = *state;
	pp_json_remove(pp_json_get(f->job, "task_definition"), "family");
	submit(f, 0);
	struct pp_json *td = body_of(&f->srv, ".RegisterTaskDefinition");
	const char *family = pp_json_get_string(td, "family");
	assert_non_null(family);
	assert_int_equal(strncmp(family, "pushpool-", 9), 0);
	assert_int_equal(strlen(family), 9 + 16);
	pp_json_free(td);
}

/* The family and hash tag in a RegisterTaskDefinition body. */
static void td_names(const char *body, char family[64], char hash[65])
{
	const char *fam = strstr(body, "\"family\":");
	const char *tag = strstr(body, "\"pushpool:td-hash\"");
	assert_non_null(fam);
	assert_non_null(tag);
	/* A space in a scanf format matches any white space, or none: the
	 * body may be compact or pretty. */
	assert_int_equal(sscanf(fam, "\"family\": \"%63[^\"]", family), 1);
	const char *value = strstr(tag, "\"value\":");
	assert_non_null(value);
	assert_int_equal(sscanf(value, "\"value\": \"%64[0-9a-f]", hash), 1);
	assert_int_equal(strlen(hash), 64);
}

/* The names a run of job gives its definition alone, with no pool to
 * share: from its request dump, which always registers. */
static void names_alone(struct fixture *f, const struct pp_json *job, char family[64],
			char hash[65])
{
	struct pp_run_io io;
	io_init(f, &io, RUN_ID);
	io.job = job;
	io.pool_shared = NULL;
	struct pp_error err = {0};
	struct pp_buf out;
	pp_buf_init(&out, 0);
	assert_int_equal(pp_exec_io_prepare(&io, ecs(), &err), 0);
	assert_int_equal(pp_request_dump(ecs(), &io, &out, &err), 0);
	const char *reg = strstr(pp_buf_str(&out), " RegisterTaskDefinition\nPOST ");
	assert_non_null(reg);
	td_names(reg, family, hash);
	pp_exec_io_release(&io, ecs());
	pp_buf_free(&out);
}

/* A pool names each run's definition as the run alone would: the pool
 * keeps its last definition's names for a run whose definition writes the
 * same text, and for no other (the same members in another order, which
 * hashes otherwise, or another image). A run whose names match a
 * definition registered in the pool registers nothing. */
static void test_pool_names_definitions_as_runs_alone(void **state)
{
	struct fixture *f = *state;
	pp_json_remove(pp_json_get(f->job, "task_definition"), "family");
	struct pp_json *other = pp_json_clone(f->job), *reordered = pp_json_clone(f->job);
	pp_json_set_string(pp_json_path(other, "task_definition.containerDefinitions[0]"), "image",
			   "repo/flows:2");
	struct pp_json *td = pp_json_get(reordered, "task_definition");
	pp_json_link(td, pp_json_detach(td->child));
	const struct {
		const struct pp_json *job;
		int registers; /* in the pool after this run */
	} runs[] = {{f->job, 1}, {f->job, 1}, {reordered, 2}, {other, 3}, {f->job, 3}};
	enum { N = sizeof(runs) / sizeof(runs[0]) };
	struct pp_run_io ios[N];
	char ids[N][40], first_family[64] = "", first_hash[65] = "";
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "6f1c2d3e-4a5b-4c6d-8e9f-%012d", i);
		io_init(f, &ios[i], ids[i]);
		ios[i].job = runs[i].job;
		struct pp_error err = {0};
		assert_int_equal(pp_exec_io_prepare(&ios[i], ecs(), &err), 0);
		assert_int_equal(pp_exec_run_op(ecs(), PP_OP_SUBMIT, &ios[i], &fast, &err), 0);
		assert_int_equal(f->aws.registers, runs[i].registers);
		char family[64], hash[65], alone_family[64], alone_hash[65];
		td_names(f->aws.last_td, family, hash);
		names_alone(f, runs[i].job, alone_family, alone_hash);
		if (i == 0) {
			snprintf(first_family, sizeof(first_family), "%s", family);
			snprintf(first_hash, sizeof(first_hash), "%s", hash);
		}
		if (runs[i].job == f->job) {
			assert_string_equal(alone_family, first_family);
			assert_string_equal(alone_hash, first_hash);
		} else {
			assert_string_equal(family, alone_family);
			assert_string_equal(hash, alone_hash);
			assert_string_not_equal(hash, first_hash);
			assert_string_not_equal(family, first_family);
		}
		assert_int_equal(strncmp(family, "pushpool-", 9), 0);
	}
	for (int i = 0; i < N; i++)
		pp_exec_io_release(&ios[i], ecs());
	pp_json_free(other);
	pp_json_free(reordered);
}

static void test_fargate_needs_subnets(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	pp_json_remove(f->job, "network_configuration");
	assert_int_equal(pp_exec_io_prepare(&f->io, ecs(), &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "network_configuration"));
	assert_non_null(strstr(err.msg, "vpc_id"));
	assert_null(f->io.state);
	pp_json_set_string(f->job, "vpc_id", "vpc-1&Action=RunInstances");
	assert_int_equal(pp_exec_io_prepare(&f->io, ecs(), &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "is not a VPC id"));
	assert_null(f->io.state);
}

/* vpc_id without network_configuration: the VPC's subnets from EC2
 * DescribeSubnets (beside the ECS endpoint), then the task on all of them
 * with a public address, as Prefect's worker does. */
static void test_vpc_id_subnets_are_looked_up(void **state)
{
	struct fixture *f = *state;
	char ecs_url[300];
	snprintf(ecs_url, sizeof(ecs_url), "%s/aws/ecs", f->srv.base);
	f->io.endpoint = ecs_url;
	pp_json_remove(f->job, "network_configuration");
	pp_json_set_string(f->job, "vpc_id", "vpc-0abc");
	submit(f, 0);
	assert_string_equal(f->srv.log[0].target, "");
	assert_non_null(strstr(f->srv.log[0].url, "/aws/ec2"));
	assert_string_equal(f->srv.log[0].body, "Action=DescribeSubnets&Version=2016-11-15"
						"&Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-0abc");
	struct pp_json *run = body_of(&f->srv, ".RunTask");
	const struct pp_json *vpc = pp_json_path(run, "networkConfiguration.awsvpcConfiguration");
	assert_int_equal(pp_json_get(vpc, "subnets")->count, 2);
	assert_string_equal(pp_json_string(pp_json_path(vpc, "subnets[1]")), "subnet-b");
	assert_string_equal(pp_json_get_string(vpc, "assignPublicIp"), "ENABLED");
	pp_json_free(run);
}

/* DescribeSubnets only reads: it is sent as harmless to resend, so it
 * shares kept-alive connections (lib/http.c) rather than opening its own. */
static void test_subnets_lookup_is_resendable(void **state)
{
	struct ecs_state st = {.base = "http://127.0.0.1:9/aws/ecs", .region = "eu-west-1"};
	struct pp_run_io io = {.state = &st, .endpoint = st.base};
	struct pp_error err = {0};
	(void)state;
	snprintf(st.vpc_id, sizeof(st.vpc_id), "vpc-0abc");
	assert_int_equal(pp_ecs_send_subnets(&io, &err), PP_STEP_SEND);
	assert_string_equal(io.req.method, "POST");
	assert_string_equal(io.req.url, "http://127.0.0.1:9/aws/ec2/");
	assert_true(io.req.flags & PP_HTTP_RESENDABLE);
	pp_http_req_free(&io.req);
}

static void test_vpc_without_subnets_is_reported(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	char ecs_url[300];
	snprintf(ecs_url, sizeof(ecs_url), "%s/aws/ecs", f->srv.base);
	f->io.endpoint = ecs_url;
	pp_json_remove(f->job, "network_configuration");
	pp_json_set_string(f->job, "vpc_id", "vpc-00000");
	assert_int_equal(pp_exec_io_prepare(&f->io, ecs(), &err), 0);
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_SUBMIT, &f->io, &fast, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "vpc_id vpc-00000 has no subnets"));
	assert_int_equal(f->aws.run_calls, 0);
	pp_json_set_string(f->job, "vpc_id", "vpc-0dead");
	pp_exec_io_release(&f->io, ecs());
	assert_int_equal(pp_exec_io_prepare(&f->io, ecs(), &err), 0);
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_SUBMIT, &f->io, &fast, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "UnauthorizedOperation"));
}

static enum pp_run_state status_of(struct fixture *f, const char *task)
{
	struct pp_error err = {0};
	char body[2048];
	snprintf(body, sizeof(body), "{\"tasks\":[%s],\"failures\":[]}", task);
	f->aws.task = body;
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_STATUS, &f->io, &fast, &err), 0);
	f->aws.task = NULL;
	return f->io.state_out;
}

static void test_status_mapping(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	pp_run_io_set_infra_id(&f->io, NULL, "arn:aws:ecs:eu-west-1:123456789012:task/c1/abc");
	assert_int_equal(pp_exec_io_restore(&f->io, ecs(), &err), 0);

	assert_int_equal(status_of(f, "{\"lastStatus\":\"PENDING\"}"), PP_RUN_PROVISIONING);
	assert_int_equal(f->io.poll_after_ms, 2500);
	assert_int_equal(status_of(f, "{\"lastStatus\":\"RUNNING\"}"), PP_RUN_RUNNING);
	assert_int_equal(status_of(f, "{\"lastStatus\":\"STOPPED\",\"stopCode\":"
				      "\"EssentialContainerExited\",\"containers\":[{\"name\":"
				      "\"prefect\",\"exitCode\":0}]}"),
			 PP_RUN_SUCCEEDED);
	assert_int_equal(f->io.exit_code, 0);
	assert_int_equal(
		status_of(f, "{\"lastStatus\":\"STOPPED\",\"stopCode\":"
			     "\"EssentialContainerExited\",\"stoppedReason\":\"Essential "
			     "container in task exited\",\"containers\":[{\"name\":"
			     "\"sidecar\",\"exitCode\":0},{\"name\":\"prefect\",\"exitCode\":3}]}"),
		PP_RUN_FAILED);
	assert_int_equal(f->io.exit_code, 3);
	assert_non_null(strstr(f->io.message, "exited with code 3"));
	assert_int_equal(status_of(f, "{\"lastStatus\":\"STOPPED\",\"stopCode\":"
				      "\"TaskFailedToStart\",\"stoppedReason\":"
				      "\"CannotPullContainerError: pull access denied\"}"),
			 PP_RUN_CRASHED);
	assert_non_null(strstr(f->io.message, "CannotPullContainerError"));
	assert_int_equal(status_of(f,
				   "{\"lastStatus\":\"STOPPED\",\"stopCode\":"
				   "\"UserInitiated\",\"stoppedReason\":\"Cancelled by pushpool\","
				   "\"containers\":[{\"name\":\"prefect\",\"exitCode\":143}]}"),
			 PP_RUN_CANCELLED);

	struct pp_json *req = body_of(&f->srv, ".DescribeTasks");
	assert_string_equal(pp_json_get_string(req, "cluster"), "c1");
	assert_string_equal(pp_json_string(pp_json_path(req, "tasks[0]")), f->io.infra_id);
	pp_json_free(req);

	/* Only MISSING is eventual consistency; another reason is final. */
	f->aws.task = "{\"tasks\":[],\"failures\":[{\"reason\":\"ACCESS_DENIED\"}]}";
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_STATUS, &f->io, &fast, &err), PP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "ACCESS_DENIED"));
}

/* One DescribeTasks for several runs (pp_run_io.peers): every task named
 * once, a gone peer left out, and each answer, in whatever order ECS gives
 * them, mapped to its own run by ARN, a failure to its run alone. */
static void test_batched_status_maps_each_task_to_its_run(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
#define ARN(x) "arn:aws:ecs:eu-west-1:123456789012:task/c1/" x
	static const char *const arns[] = {ARN("lead"), ARN("ran"), ARN("gone"), ARN("failed")};
	struct pp_run_io peers[3];
	struct pp_run_io *ptrs[3];
	pp_run_io_set_infra_id(&f->io, NULL, "%s", arns[0]);
	assert_int_equal(pp_exec_io_restore(&f->io, ecs(), &err), 0);
	for (int i = 0; i < 3; i++) {
		io_init(f, &peers[i], RUN_ID);
		pp_run_io_set_infra_id(&peers[i], NULL, "%s", arns[i + 1]);
		assert_int_equal(pp_exec_io_restore(&peers[i], ecs(), &err), 0);
		ptrs[i] = &peers[i];
	}
	char key[1024], other[1024];
	assert_true(ecs()->status_batch_key(&f->io, key, sizeof(key)));
	assert_true(ecs()->status_batch_key(&peers[0], other, sizeof(other)));
	assert_string_equal(key, other);
	assert_false(ecs()->status_batch_key(&f->io, key, 8));

	/* The run that ran and the one that failed answer in reverse order;
	 * the one left out (its run went while the poll was being made) is
	 * not asked about; the lead's task is gone for good. */
	ptrs[1] = NULL;
	f->io.peers = ptrs;
	f->io.npeers = 3;
	f->aws.task = "{\"tasks\":[{\"taskArn\":\"" ARN(
		"failed") "\",\"lastStatus\":\"STOPPED\","
			  "\"stopCode\":\"EssentialContainerExited\",\"containers\":[{\"name\":"
			  "\"prefect\",\"exitCode\":1}]},{\"taskArn\":\"" ARN(
				  "ran") "\","
					 "\"lastStatus\":\"STOPPED\",\"stopCode\":"
					 "\"EssentialContainerExited\","
					 "\"containers\":[{\"name\":\"prefect\",\"exitCode\":0}]}],"
					 "\"failures\":[{\"arn\":\"" ARN(
						 "lead") "\",\"reason\":\"ACCESS_DENIED\"}]}";
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_STATUS, &f->io, &fast, &err), 0);
	f->aws.task = NULL;

	struct pp_json *req = body_of(&f->srv, ".DescribeTasks");
	assert_string_equal(pp_json_get_string(req, "cluster"), "c1");
	const struct pp_json *asked = pp_json_get(req, "tasks");
	assert_int_equal(asked->count, 3);
	assert_string_equal(pp_json_string(pp_json_at(asked, 0)), arns[0]);
	assert_string_equal(pp_json_string(pp_json_at(asked, 1)), arns[1]);
	assert_string_equal(pp_json_string(pp_json_at(asked, 2)), arns[3]);
	pp_json_free(req);

	assert_int_equal(f->io.batch_rc, PP_ENOTFOUND);
	assert_non_null(strstr(f->io.message, "ACCESS_DENIED"));
	assert_non_null(strstr(f->io.message, arns[0]));
	assert_int_equal(peers[0].batch_rc, 0);
	assert_int_equal(peers[0].state_out, PP_RUN_SUCCEEDED);
	assert_int_equal(peers[0].exit_code, 0);
	assert_int_equal(peers[2].batch_rc, 0);
	assert_int_equal(peers[2].state_out, PP_RUN_FAILED);
	assert_int_equal(peers[2].exit_code, 1);
	assert_non_null(strstr(peers[2].message, "exited with code 1"));

	/* A peer MISSING (just started) keeps its state and its own backoff;
	 * one the answer does not mention at all is gone. */
	f->io.npeers = 1;
	peers[0].state_out = PP_RUN_RUNNING;
	f->aws.task = "{\"tasks\":[],\"failures\":[{\"arn\":\"" ARN("lead") "\",\"reason\":"
									    "\"MISSING\"}]}";
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_STATUS, &f->io, &fast, &err), 0);
	f->aws.task = NULL;
	assert_int_equal(f->io.batch_rc, 0);
	assert_int_equal(f->io.poll_after_ms, 1000);
	assert_int_equal(peers[0].batch_rc, PP_ENOTFOUND);
	assert_non_null(strstr(peers[0].message, "no task in the response"));

	/* The request itself refused: the op fails, for every run of it. */
	f->aws.task = NULL;
	f->aws.describe_error = "AccessDeniedException";
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_STATUS, &f->io, &fast, &err), PP_EAUTH);
	f->aws.describe_error = NULL;
	f->io.peers = NULL;
	f->io.npeers = 0;
	for (int i = 0; i < 3; i++)
		pp_exec_io_release(&peers[i], ecs());
#undef ARN
}

/* A stopped task that never ran is classified from ECS's own words: the
 * stop code, then the error prefix in stoppedReason or the container's
 * reason; a task that ran and exited is no start failure. */
static void test_start_failure_classes(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	pp_run_io_set_infra_id(&f->io, NULL, "arn:aws:ecs:eu-west-1:123456789012:task/c1/abc");
	assert_int_equal(pp_exec_io_restore(&f->io, ecs(), &err), 0);
	static const struct {
		const char *task;
		enum pp_run_state state;
		enum pp_start_failure f;
	} cases[] = {
		{"{\"lastStatus\":\"STOPPED\",\"stopCode\":\"TaskFailedToStart\",\"stoppedReason\":"
		 "\"CannotPullContainerError: pull image manifest has been retried 5 time(s): "
		 "failed to resolve ref: not found\"}",
		 PP_RUN_CRASHED, PP_START_IMAGE_PULL},
		/* the reason only on the container */
		{"{\"lastStatus\":\"STOPPED\",\"stopCode\":\"TaskFailedToStart\",\"stoppedReason\":"
		 "\"Task failed to start\",\"containers\":[{\"name\":\"prefect\",\"reason\":"
		 "\"CannotPullContainerError: pull access denied\"}]}",
		 PP_RUN_CRASHED, PP_START_IMAGE_PULL},
		{"{\"lastStatus\":\"STOPPED\",\"stopCode\":\"TaskFailedToStart\",\"stoppedReason\":"
		 "\"ResourceInitializationError: unable to pull secrets or registry auth\"}",
		 PP_RUN_CRASHED, PP_START_RESOURCE_INIT},
		{"{\"lastStatus\":\"STOPPED\",\"stopCode\":\"TaskFailedToStart\",\"stoppedReason\":"
		 "\"Capacity is unavailable at this time. Please try again later or in a "
		 "different availability zone\"}",
		 PP_RUN_CRASHED, PP_START_CAPACITY},
		{"{\"lastStatus\":\"STOPPED\",\"stopCode\":\"TaskFailedToStart\",\"stoppedReason\":"
		 "\"Essential container in task exited\"}",
		 PP_RUN_CRASHED, PP_START_OTHER},
		{"{\"lastStatus\":\"STOPPED\",\"stopCode\":\"SpotInterruption\",\"stoppedReason\":"
		 "\"Your Spot Task was interrupted.\",\"containers\":[{\"name\":\"prefect\","
		 "\"exitCode\":143}]}",
		 PP_RUN_FAILED, PP_START_SPOT_INTERRUPTION},
		{"{\"lastStatus\":\"STOPPED\",\"stopCode\":\"TerminationNotice\"}", PP_RUN_CRASHED,
		 PP_START_SPOT_INTERRUPTION},
		{"{\"lastStatus\":\"STOPPED\",\"stopCode\":\"EssentialContainerExited\","
		 "\"stoppedReason\":\"CannotPullContainerError in a log line\",\"containers\":[{"
		 "\"name\":\"prefect\",\"exitCode\":1}]}",
		 PP_RUN_FAILED, PP_START_OK},
		{"{\"lastStatus\":\"STOPPED\",\"stopCode\":\"UserInitiated\"}", PP_RUN_CANCELLED,
		 PP_START_OK},
		{"{\"lastStatus\":\"RUNNING\"}", PP_RUN_RUNNING, PP_START_OK},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(status_of(f, cases[i].task), cases[i].state);
		assert_string_equal(pp_start_failure_name(f->io.start_failure),
				    pp_start_failure_name(cases[i].f));
	}
}

/* RunTask's task may be MISSING from DescribeTasks for a while: the run
 * stays in its last state and is polled again with growing delays. */
static void test_missing_task_is_polled_through_the_grace_period(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	submit(f, 0);
	f->aws.missing = 3;
	long last_delay = 0;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pp_exec_run_op(ecs(), PP_OP_STATUS, &f->io, &fast, &err), 0);
		assert_int_equal(f->io.state_out, PP_RUN_PROVISIONING);
		assert_true(f->io.poll_after_ms > last_delay);
		last_delay = f->io.poll_after_ms;
		assert_non_null(strstr(f->io.message, "MISSING"));
	}
	f->aws.task = "{\"tasks\":[{\"lastStatus\":\"RUNNING\"}],\"failures\":[]}";
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_STATUS, &f->io, &fast, &err), 0);
	assert_int_equal(f->io.state_out, PP_RUN_RUNNING);
	/* An answer about another task says nothing of this one: its task is
	 * not in it, however alone the element is. */
	f->aws.task = "{\"tasks\":[{\"taskArn\":\"arn:aws:ecs:eu-west-1:1:task/c1/other\","
		      "\"lastStatus\":\"STOPPED\",\"stopCode\":\"EssentialContainerExited\","
		      "\"containers\":[{\"name\":\"prefect\",\"exitCode\":0}]}],"
		      "\"failures\":[]}";
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_STATUS, &f->io, &fast, &err), PP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "no task in the response"));
	pp_error_clear(&err);
	f->aws.task = "{\"tasks\":[],\"failures\":[{\"arn\":\"arn:aws:ecs:eu-west-1:1:task/c1/"
		      "other\",\"reason\":\"MISSING\"}]}";
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_STATUS, &f->io, &fast, &err), PP_ENOTFOUND);
	pp_error_clear(&err);
	f->aws.task = "{\"tasks\":[{\"lastStatus\":\"RUNNING\"}],\"failures\":[]}";
	/* A later MISSING streak starts its backoff afresh and keeps RUNNING. */
	f->aws.missing = 1;
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_STATUS, &f->io, &fast, &err), 0);
	assert_int_equal(f->io.state_out, PP_RUN_RUNNING);
	assert_int_equal(f->io.poll_after_ms, 1000);
}

/* The per-cluster PROVISIONING quota is a ClientException, not failures[]. */
static void test_provisioning_quota_is_retried(void **state)
{
	struct fixture *f = *state;
	f->aws.quota_errors = 1;
	long long t0 = fs_now_ms();
	submit(f, 0);
	assert_int_equal(f->aws.run_calls, 2);
	assert_int_equal(f->aws.ntokens, 1);
	/* waited at least the quota's floor, not the policy's 5 ms cap */
	assert_true(fs_now_ms() - t0 >= 2000);
}

static void test_cancel_sends_stop_task(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	submit(f, 0);
	assert_int_equal(pp_exec_run_op(ecs(), PP_OP_CANCEL, &f->io, &fast, &err), 0);
	assert_int_equal(f->aws.stops, 1);
	struct pp_json *req = body_of(&f->srv, ".StopTask");
	assert_string_equal(pp_json_get_string(req, "task"), f->io.infra_id);
	assert_non_null(strstr(pp_json_get_string(req, "reason"), RUN_ID));
	pp_json_free(req);
}

static void test_request_dump_shows_every_call(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	struct pp_buf out;
	pp_buf_init(&out, 0);
	assert_int_equal(pp_exec_io_prepare(&f->io, ecs(), &err), 0);
	assert_int_equal(pp_request_dump(ecs(), &f->io, &out, &err), 0);
	const char *text = pp_buf_str(&out);
	const char *reg = strstr(text, "# 1 RegisterTaskDefinition\nPOST http://127.0.0.1:");
	const char *run = strstr(text, "# 2 RunTask\n");
	/* once the task started, a registration looks for an equal revision
	 * registered concurrently */
	const char *list = strstr(text, "# 3 ListTaskDefinitions\n");
	assert_non_null(reg);
	assert_non_null(list);
	assert_non_null(run);
	assert_true(reg < run && run < list);
	assert_non_null(strstr(run, "\"taskDefinition\": \"<task-definition-arn>\""));
	assert_non_null(strstr(run, "\"clientToken\": \"" TOKEN "\""));
	assert_non_null(strstr(text, "X-Amz-Target: AmazonEC2ContainerServiceV20141113.RunTask"));
	assert_null(strstr(text, "# 4"));
	assert_int_equal(f->srv.count, 0); /* nothing went out */
	assert_string_equal(f->io.infra_id, "<task-arn>");
	pp_buf_free(&out);
}

/* A job's aws_credentials with a key pair (a Prefect AwsCredentials block,
 * resolved) is the run's credential: every call is signed with it, for
 * its region; the pool has none. An unresolved $ref is refused. */
static void test_job_credentials_sign(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	struct pp_json *c = NULL;
	const char *text = "{\"aws_access_key_id\":\"AKIDJOBBLOCK\",\"aws_secret_access_key\":"
			   "\"job-block-secret-000111\",\"region_name\":\"eu-west-3\"}";
	assert_int_equal(pp_json_parse(text, strlen(text), NULL, &c, &err), 0);
	pp_json_remove(f->job, "region");
	pp_json_set(f->job, "aws_credentials", c);
	submit(f, 0);
	assert_non_null(f->io.run_cred);
	int signed_calls = 0;
	for (int i = 0; i < f->srv.count; i++) {
		assert_non_null(strstr(f->srv.log[i].auth, "Credential=AKIDJOBBLOCK/"));
		assert_non_null(strstr(f->srv.log[i].auth, "/eu-west-3/ecs/aws4_request"));
		signed_calls++;
	}
	assert_true(signed_calls >= 2);
	pp_exec_io_release(&f->io, ecs());

	text = "{\"$ref\":{\"block_document_id\":\"7d8c1a52-0000-4000-a000-000000000001\"}}";
	assert_int_equal(pp_json_parse(text, strlen(text), NULL, &c, &err), 0);
	pp_json_set(f->job, "aws_credentials", c);
	pp_json_set_string(f->job, "region", "us-east-1");
	assert_int_equal(pp_exec_io_prepare(&f->io, ecs(), &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "aws_credentials is a block reference"));
}

/* Runs whose jobs carry the same aws_credentials share a batch key (one
 * DescribeTasks signed with either is the same request); another secret,
 * or the pool's credential instead of a job's, is another key. The key
 * shows no secret. */
static void test_batch_key_follows_the_credential(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	static const char *const blocks[] = {
		"{\"aws_access_key_id\":\"AKIDJOBBLOCK\",\"aws_secret_access_key\":"
		"\"job-block-secret-000111\",\"region_name\":\"eu-west-1\"}",
		"{\"aws_access_key_id\":\"AKIDJOBBLOCK\",\"aws_secret_access_key\":"
		"\"job-block-secret-000111\",\"region_name\":\"eu-west-1\"}",
		"{\"aws_access_key_id\":\"AKIDJOBBLOCK\",\"aws_secret_access_key\":"
		"\"job-block-secret-000112\",\"region_name\":\"eu-west-1\"}",
		NULL,
	};
	char keys[4][1024];
	for (int i = 0; i < 4; i++) {
		struct pp_json *job = pp_json_clone(f->job), *c = NULL;
		if (blocks[i]) {
			assert_int_equal(
				pp_json_parse(blocks[i], strlen(blocks[i]), NULL, &c, &err), 0);
			pp_json_set(job, "aws_credentials", c);
		}
		struct pp_run_io io;
		io_init(f, &io, RUN_ID);
		io.job = job;
		pp_run_io_set_infra_id(&io, NULL, "arn:aws:ecs:eu-west-1:123456789012:task/c1/t%d",
				       i);
		assert_int_equal(pp_exec_io_restore(&io, ecs(), &err), 0);
		assert_true(ecs()->status_batch_key(&io, keys[i], sizeof(keys[i])));
		assert_null(strstr(keys[i], "job-block-secret"));
		pp_exec_io_release(&io, ecs());
		pp_json_free(job);
	}
	assert_string_equal(keys[0], keys[1]);
	assert_string_not_equal(keys[0], keys[2]);
	assert_string_not_equal(keys[0], keys[3]);
	assert_string_not_equal(keys[2], keys[3]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_requests_have_the_ecs_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batched_status_maps_each_task_to_its_run,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_key_follows_the_credential, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_override_types_follow_the_model, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tags_are_sanitised_like_prefect, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_overrides_capped_as_written, setup, teardown),
		cmocka_unit_test_setup_teardown(test_at_most_fifty_tags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifty_runs_register_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_register_answer_is_reconciled, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_task_starts_before_converging, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_match_latest_reuses_revision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capacity_failure_is_retried_with_same_token,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_conflict_adopts_bound_task, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inactive_definition_is_resolved_again, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_inactive_twice_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_pages_and_reads_tags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_failure_is_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_throttling_is_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_family_follows_content, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pool_names_definitions_as_runs_alone, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fargate_needs_subnets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpc_id_subnets_are_looked_up, setup, teardown),
		cmocka_unit_test(test_subnets_lookup_is_resendable),
		cmocka_unit_test_setup_teardown(test_vpc_without_subnets_is_reported, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_status_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_failure_classes, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_missing_task_is_polled_through_the_grace_period, setup, teardown),
		cmocka_unit_test_setup_teardown(test_provisioning_quota_is_retried, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cancel_sends_stop_task, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_credentials_sign, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_dump_shows_every_call, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
