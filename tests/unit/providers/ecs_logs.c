/* The ECS logs op (providers/ecs_logs.c) by hand: DescribeTasks, then
 * DescribeTaskDefinition for the container's awslogs options, then
 * GetLogEvents on PREFIX/CONTAINER/TASK-ID paged by nextForwardToken; the
 * requests' shapes (botocore's logs model) and the answers read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "providers/logs.h"
#include "tests/unit/logs_step.h"

#define TASK   "arn:aws:ecs:eu-west-1:123456789012:task/jobs/0a1b2c3d4e5f"
#define TD_ARN "arn:aws:ecs:eu-west-1:123456789012:task-definition/flows:3"
#define EP     "http://127.0.0.1:9/aws"
#define TD_BODY                                                                                    \
	"{\"taskDefinition\":{\"containerDefinitions\":[{\"name\":\"sidecar\"},{\"name\":"         \
	"\"prefect\",\"logConfiguration\":{\"logDriver\":\"awslogs\",\"options\":{\"awslogs-"      \
	"group\":\"/"                                                                              \
	"flows\",\"awslogs-region\":\"eu-west-2\",\"awslogs-stream-prefix\":\"pp\"}}}]}}"

static struct pp_json *req_body(const struct logs_rig *r)
{
	struct pp_json *j = NULL;
	assert_int_equal(pp_json_parse(r->io.req.body, r->io.req.body_len, NULL, &j, NULL), 0);
	return j;
}

static void expect_target(const struct logs_rig *r, const char *target)
{
	assert_string_equal(pp_http_req_get_header(&r->io.req, "X-Amz-Target"), target);
	assert_string_equal(pp_http_req_get_header(&r->io.req, "Content-Type"),
			    "application/x-amz-json-1.1");
	/* Reads: they share kept-alive connections. */
	assert_true(r->io.req.flags & PP_HTTP_RESENDABLE);
}

/* DescribeTasks and DescribeTaskDefinition answered: the op asks for events. */
static void to_events(struct logs_rig *r)
{
	struct pp_error err = {0};
	assert_int_equal(rig_start(r, pp_ecs_logs, &err), PP_STEP_SEND);
	expect_target(r, "AmazonEC2ContainerServiceV20141113.DescribeTasks");
	struct pp_json *b = req_body(r);
	assert_string_equal(pp_json_get_string(b, "cluster"), "jobs");
	assert_string_equal(pp_json_string(pp_json_at(pp_json_get(b, "tasks"), 0)), TASK);
	pp_json_free(b);
	assert_int_equal(rig_answer_json(r, pp_ecs_logs, 200,
					 "{\"tasks\":[{\"taskDefinitionArn\":\"" TD_ARN
					 "\",\"containers\":[{\"name\":\"sidecar\"},{\"name\":"
					 "\"prefect\"}]}],\"failures\":[]}",
					 &err),
			 PP_STEP_SEND);
	expect_target(r, "AmazonEC2ContainerServiceV20141113.DescribeTaskDefinition");
	b = req_body(r);
	assert_string_equal(pp_json_get_string(b, "taskDefinition"), TD_ARN);
	pp_json_free(b);
	assert_int_equal(rig_answer_json(r, pp_ecs_logs, 200, TD_BODY, &err), PP_STEP_SEND);
}

static void test_pages_through_the_awslogs_stream(void **state)
{
	struct logs_rig r;
	struct pp_error err = {0};
	rig_init(&r, TASK, "{\"container_name\": \"prefect\"}", EP);
	r.logs.limit = 50;
	to_events(&r);
	expect_target(&r, "Logs_20140328.GetLogEvents");
	assert_string_equal(r.io.req.url, EP "/");
	struct pp_json *b = req_body(&r);
	assert_string_equal(pp_json_get_string(b, "logGroupName"), "/flows");
	assert_string_equal(pp_json_get_string(b, "logStreamName"), "pp/prefect/0a1b2c3d4e5f");
	assert_true(pp_json_get_bool(b, "startFromHead", false));
	assert_int_equal(pp_json_get_int(b, "limit", 0), 50);
	assert_null(pp_json_get(b, "nextToken"));
	pp_json_free(b);
	assert_int_equal(
		rig_answer_json(&r, pp_ecs_logs, 200,
				"{\"events\":[{\"timestamp\":1700000000000,\"message\":"
				"\"one\\ntwo\",\"ingestionTime\":1700000000005},{"
				"\"timestamp\":1700000000100,\"message\":\"three\"}],"
				"\"nextForwardToken\":\"f/2\",\"nextBackwardToken\":\"b/0\"}",
				&err),
		PP_STEP_DONE);
	assert_int_equal(r.logs.n, 3);
	assert_string_equal(r.logs.v[0].text, "one");
	assert_string_equal(r.logs.v[1].text, "two");
	assert_string_equal(r.logs.v[2].text, "three");
	assert_int_equal(r.logs.v[2].ts_ms, 1700000000100LL);
	assert_string_equal(r.logs.cursor, "f/2");
	assert_true(r.logs.more);
	pp_logs_clear(&r.logs);

	/* The next page starts from the token; the same token back: the end. */
	assert_int_equal(rig_start(&r, pp_ecs_logs, &err), PP_STEP_SEND);
	b = req_body(&r);
	assert_string_equal(pp_json_get_string(b, "nextToken"), "f/2");
	assert_null(pp_json_get(b, "startTime"));
	pp_json_free(b);
	assert_int_equal(rig_answer_json(&r, pp_ecs_logs, 200,
					 "{\"events\":[],\"nextForwardToken\":\"f/2\","
					 "\"nextBackwardToken\":\"b/2\"}",
					 &err),
			 PP_STEP_DONE);
	assert_int_equal(r.logs.n, 0);
	assert_false(r.logs.more);
	rig_free(&r);
}

static void test_real_endpoints_and_since(void **state)
{
	struct logs_rig r;
	struct pp_error err = {0};
	rig_init(&r, TASK, "{}", NULL);
	r.logs.since_ms = 1700000000000LL;
	assert_int_equal(rig_start(&r, pp_ecs_logs, &err), PP_STEP_SEND);
	assert_string_equal(r.io.req.url, "https://ecs.eu-west-1.amazonaws.com/");
	rig_free(&r);
	rig_init(&r, TASK, "{}", NULL);
	r.logs.since_ms = 1700000000000LL;
	r.logs.step = 2;
	snprintf(r.logs.where, sizeof(r.logs.where), "/flows\teu-west-2\tpp/prefect/0a1b2c3d4e5f");
	assert_int_equal(rig_start(&r, pp_ecs_logs, &err), PP_STEP_SEND);
	/* The log group's own region, from awslogs-region. */
	assert_string_equal(r.io.req.url, "https://logs.eu-west-2.amazonaws.com/");
	struct pp_json *b = req_body(&r);
	assert_int_equal(pp_json_get_int(b, "startTime", 0), 1700000000000LL);
	pp_json_free(b);
	rig_free(&r);
}

static void test_no_stream_yet_is_an_empty_page(void **state)
{
	struct logs_rig r;
	struct pp_error err = {0};
	rig_init(&r, TASK, "{}", EP);
	to_events(&r);
	assert_int_equal(rig_answer_json(&r, pp_ecs_logs, 400,
					 "{\"__type\":\"ResourceNotFoundException\",\"message\":"
					 "\"The specified log stream does not exist.\"}",
					 &err),
			 PP_STEP_DONE);
	assert_int_equal(r.logs.n, 0);
	assert_false(r.logs.more);
	rig_free(&r);
}

static void test_task_not_visible_yet_is_an_empty_page(void **state)
{
	struct logs_rig r;
	struct pp_error err = {0};
	rig_init(&r, TASK, "{}", EP);
	assert_int_equal(rig_start(&r, pp_ecs_logs, &err), PP_STEP_SEND);
	assert_int_equal(rig_answer_json(&r, pp_ecs_logs, 200,
					 "{\"tasks\":[],\"failures\":[{\"arn\":\"" TASK
					 "\",\"reason\":\"MISSING\"}]}",
					 &err),
			 PP_STEP_DONE);
	assert_int_equal(r.logs.n, 0);
	assert_int_equal(r.logs.step, 0);
	rig_free(&r);
}

static void test_refusals(void **state)
{
	struct logs_rig r;
	struct pp_error err = {0};
	/* A container logging elsewhere: said so, naming the driver. */
	rig_init(&r, TASK, "{}", EP);
	assert_int_equal(rig_start(&r, pp_ecs_logs, &err), PP_STEP_SEND);
	assert_int_equal(rig_answer_json(&r, pp_ecs_logs, 200,
					 "{\"tasks\":[{\"taskDefinitionArn\":\"" TD_ARN
					 "\",\"containers\":[{\"name\":\"prefect\"}]}]}",
					 &err),
			 PP_STEP_SEND);
	assert_int_equal(rig_answer_json(&r, pp_ecs_logs, 200,
					 "{\"taskDefinition\":{\"containerDefinitions\":[{\"name\":"
					 "\"prefect\",\"logConfiguration\":{\"logDriver\":"
					 "\"splunk\"}}]}}",
					 &err),
			 PP_EINVALID);
	assert_non_null(strstr(err.msg, "splunk"));
	rig_free(&r);
	/* Throttling stays retryable; a task ECS forgot is not found. */
	rig_init(&r, TASK, "{}", EP);
	assert_int_equal(rig_start(&r, pp_ecs_logs, &err), PP_STEP_SEND);
	assert_int_equal(rig_answer_json(&r, pp_ecs_logs, 400,
					 "{\"__type\":\"ThrottlingException\",\"message\":\"Rate "
					 "exceeded\"}",
					 &err),
			 PP_ETHROTTLED);
	assert_int_equal(rig_start(&r, pp_ecs_logs, &err), PP_STEP_SEND);
	assert_int_equal(rig_answer_json(&r, pp_ecs_logs, 200,
					 "{\"tasks\":[],\"failures\":[{\"reason\":\"ANOTHER\"}]}",
					 &err),
			 PP_ENOTFOUND);
	rig_free(&r);
	rig_init(&r, "arn:aws:ecs:eu-west-1:1:cluster/jobs", "{}", EP);
	assert_int_equal(rig_start(&r, pp_ecs_logs, &err), PP_EINVALID);
	rig_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pages_through_the_awslogs_stream),
		cmocka_unit_test(test_real_endpoints_and_since),
		cmocka_unit_test(test_no_stream_yet_is_an_empty_page),
		cmocka_unit_test(test_task_not_visible_yet_is_an_empty_page),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
