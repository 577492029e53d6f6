/* The ECS validator built from botocore's model (tests/data/cloud-specs):
 * requests like pushpool's pass, and each kind of violation is refused with
 * AWS's error type and the member's path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mock/spec.h"

static struct pp_spec_botocore *ecs;

static int setup(void **state)
{
	const unsigned char *data;
	size_t len;
	struct pp_error err = {0};

	if (pp_spec_blob("ecs", &data, &len, &err) ||
	    pp_spec_botocore_load((const char *)data, len, &ecs, &err)) {
		print_error("%s\n", err.msg);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	pp_spec_botocore_free(ecs);
	return 0;
}

/* Violations found in body for op; the report stays in rep. */
static size_t check(const char *op, const char *body, struct pp_spec_report *rep)
{
	struct pp_json *j = NULL;
	size_t n;

	assert_int_equal(pp_json_parse(body, strlen(body), NULL, &j, NULL), 0);
	n = pp_spec_botocore_check(ecs, op, j, rep);
	pp_json_free(j);
	return n;
}

static void assert_refused(const char *op, const char *body, const char *code, const char *field,
			   const char *in_message)
{
	struct pp_spec_report rep;

	assert_int_equal(check(op, body, &rep), 1);
	assert_string_equal(rep.code, code);
	assert_string_equal(rep.v[0].field, field);
	if (!strstr(rep.v[0].desc, in_message))
		fail_msg("message \"%s\" lacks \"%s\"", rep.v[0].desc, in_message);
}

#define RUN_TASK_OK                                                                                \
	"{\"cluster\":\"default\",\"taskDefinition\":\"arn:aws:ecs:us-east-1:123456789012:task-"   \
	"definition/prefect:3\",\"launchType\":\"FARGATE\",\"count\":1,"                           \
	"\"startedBy\":\"pushpool-0123456789abcdef\",\"clientToken\":\"0123456789abcdef\","        \
	"\"networkConfiguration\":{\"awsvpcConfiguration\":{\"subnets\":[\"subnet-1\"],"           \
	"\"assignPublicIp\":\"ENABLED\"}},\"overrides\":{\"containerOverrides\":[{\"name\":"       \
	"\"prefect\",\"environment\":[{\"name\":\"A\",\"value\":\"1\"}],\"command\":[\"prefect\"," \
	"\"flow-run\",\"execute\"]}],\"cpu\":\"1024\"},\"tags\":[{\"key\":\"prefect.io/flow-run-"  \
	"id\",\"value\":\"0a1b-2c\"},{\"key\":\"team\",\"value\":\"data eng\"}]}"

static void test_run_task_valid(void **state)
{
	struct pp_spec_report rep;

	assert_int_equal(check("RunTask", RUN_TASK_OK, &rep), 0);
	assert_int_equal(check("DescribeTasks", "{\"cluster\":\"c\",\"tasks\":[\"arn\"]}", &rep),
			 0);
	assert_int_equal(check("StopTask", "{\"task\":\"arn\",\"reason\":\"cancelled\"}", &rep), 0);
	assert_int_equal(
		check("RegisterTaskDefinition",
		      "{\"family\":\"prefect\",\"containerDefinitions\":[{\"name\":\"p\","
		      "\"image\":\"prefecthq/prefect:3\",\"essential\":true}],"
		      "\"requiresCompatibilities\":[\"FARGATE\"],\"networkMode\":\"awsvpc\","
		      "\"cpu\":\"1024\",\"memory\":\"2048\"}",
		      &rep),
		0);
}

/* The tag pattern ([\p{L}\p{Z}\p{N}_.:/=+\-@]*) must match the whole value. */
static void test_tag_pattern(void **state)
{
	assert_refused(
		"RunTask",
		"{\"taskDefinition\":\"td\",\"tags\":[{\"key\":\"ok\",\"value\":\"a\"},"
		"{\"key\":\"k\",\"value\":\"a,b\"}]}",
		"ValidationException", "tags.2.member.value",
		"Value 'a,b' at 'tags.2.member.value' failed to satisfy constraint: Member "
		"must satisfy regular expression pattern: ([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)");
	/* Letters and spaces of any script are allowed. */
	struct pp_spec_report rep;
	assert_int_equal(
		check("RunTask",
		      "{\"taskDefinition\":\"td\",\"tags\":[{\"key\":\"\xc3\xa9t\xc3\xa9\","
		      "\"value\":\"\xe6\x97\xa5 1\"}]}",
		      &rep),
		0);
}

static void test_constraints(void **state)
{
	assert_refused("RunTask", "{\"cluster\":\"c\"}", "ValidationException", "taskDefinition",
		       "Value null at 'taskDefinition' failed to satisfy constraint: Member must "
		       "not be null");
	assert_refused(
		"RunTask", "{\"taskDefinition\":\"td\",\"launchType\":\"LAMBDA\"}",
		"ValidationException", "launchType",
		"Member must satisfy enum value set: [EC2, FARGATE, EXTERNAL, MANAGED_INSTANCES]");
	assert_refused("RunTask", "{\"taskDefinition\":\"td\",\"tags\":[{\"key\":\"\"}]}",
		       "ValidationException", "tags.1.member.key",
		       "Member must have length greater than or equal to 1");
	assert_refused("RunTask", "{\"taskDefinition\":\"td\",\"overrides\":{\"cpuu\":\"1\"}}",
		       "ValidationException", "overrides.cpuu",
		       "Unknown parameter at 'overrides.cpuu': \"cpuu\", must be one of: "
		       "containerOverrides, cpu, inferenceAcceleratorOverrides, executionRoleArn, "
		       "memory, taskRoleArn, ephemeralStorage");
	assert_refused("RunTask", "{\"taskDefinition\":\"td\",\"count\":\"1\"}",
		       "SerializationException", "count", "must be an integer");
	assert_refused("RunTask", "{\"taskDefinition\":\"td\",\"count\":1.5}",
		       "SerializationException", "count", "32-bit integer");
	assert_refused("DescribeTasks", "{\"tasks\":\"arn\"}", "SerializationException", "tasks",
		       "must be an array");
	assert_refused("Nope", "{}", "InvalidAction", "", "Nope");
}

static void test_many_tags(void **state)
{
	char body[8192] = "{\"taskDefinition\":\"td\",\"tags\":[";
	size_t off = strlen(body);

	for (int i = 0; i < 51; i++)
		off += (size_t)snprintf(body + off, sizeof(body) - off, "%s{\"key\":\"k%d\"}",
					i ? "," : "", i);
	snprintf(body + off, sizeof(body) - off, "]}");
	assert_refused("RunTask", body, "ValidationException", "tags",
		       "Member must have length less than or equal to 50");
}

/* CloudWatch Logs' model loads (its Java patterns, "[\\w-_]*", read as
 * AWS means them) and judges GetLogEvents as pushpool sends it. */
static void test_logs_model(void **state)
{
	const unsigned char *data;
	size_t len;
	struct pp_error err = {0};
	struct pp_spec_botocore *logs = NULL;
	struct pp_spec_report rep;
	struct pp_json *j = NULL;
	const char *ok = "{\"logGroupName\":\"/flows\",\"logStreamName\":\"pp/prefect/0a1b\","
			 "\"startFromHead\":true,\"limit\":1000,\"nextToken\":\"f/1\"}";
	const char *bad = "{\"logGroupName\":\"bad group!\",\"limit\":0}";

	assert_int_equal(pp_spec_blob("logs", &data, &len, &err), 0);
	assert_int_equal(pp_spec_botocore_load((const char *)data, len, &logs, &err), 0);
	assert_int_equal(pp_json_parse(ok, strlen(ok), NULL, &j, NULL), 0);
	assert_int_equal(pp_spec_botocore_check(logs, "GetLogEvents", j, &rep), 0);
	pp_json_free(j);
	assert_int_equal(pp_json_parse(bad, strlen(bad), NULL, &j, NULL), 0);
	/* logStreamName missing, the group's pattern, limit under its minimum */
	assert_int_equal(pp_spec_botocore_check(logs, "GetLogEvents", j, &rep), 3);
	pp_json_free(j);
	pp_spec_botocore_free(logs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run_task_valid), cmocka_unit_test(test_tag_pattern),
		cmocka_unit_test(test_constraints),    cmocka_unit_test(test_many_tags),
		cmocka_unit_test(test_logs_model),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
