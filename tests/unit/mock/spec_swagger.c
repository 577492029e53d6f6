/* The ARM validator built from ACI's swagger (tests/data/cloud-specs) plus
 * ARM's platform rules: a container group like pushpool's passes, and each
 * kind of violation is refused with ARM's code and the member's path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mock/spec.h"

static struct pp_spec_swagger *aci;

static int setup(void **state)
{
	const unsigned char *data;
	size_t len;
	struct pp_error err = {0};

	if (pp_spec_blob("aci", &data, &len, &err) ||
	    pp_spec_swagger_load((const char *)data, len, &aci, &err)) {
		print_error("%s\n", err.msg);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	pp_spec_swagger_free(aci);
	return 0;
}

static size_t check(const char *body, struct pp_spec_report *rep)
{
	struct pp_json *j = NULL;
	size_t n;

	assert_int_equal(pp_json_parse(body, strlen(body), NULL, &j, NULL), 0);
	n = pp_spec_swagger_check(aci, "ContainerGroups_CreateOrUpdate", j, rep);
	pp_json_free(j);
	return n;
}

/* A container group with `extra` spliced into the container's resources
 * requests, and `tags` as the tags object. */
static void group(char *out, size_t size, const char *requests, const char *tags,
		  const char *container)
{
	snprintf(
		out, size,
		"{\"location\":\"eastus\",\"tags\":%s,\"identity\":{\"type\":\"UserAssigned\","
		"\"userAssignedIdentities\":{\"/subscriptions/s/id\":{}}},\"properties\":{"
		"\"osType\":\"Linux\",\"restartPolicy\":\"Never\",\"containers\":[{\"name\":\"%s\","
		"\"properties\":{\"image\":\"prefecthq/prefect:3\",\"command\":[\"prefect\"],"
		"\"environmentVariables\":[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"K\","
		"\"secureValue\":\"s\"}],\"resources\":{\"requests\":{%s}}}}],"
		"\"imageRegistryCredentials\":[{\"server\":\"r.azurecr.io\",\"identity\":\"/id\"}],"
		"\"subnetIds\":[{\"id\":\"/subnets/x\"}]}}",
		tags, container, requests);
}

static void assert_refused(const char *body, const char *code, const char *field,
			   const char *in_message)
{
	struct pp_spec_report rep;

	assert_int_equal(check(body, &rep), 1);
	assert_string_equal(rep.code, code);
	assert_string_equal(rep.v[0].field, field);
	if (!strstr(rep.v[0].desc, in_message))
		fail_msg("message \"%s\" lacks \"%s\"", rep.v[0].desc, in_message);
}

static void test_valid_group(void **state)
{
	char body[4096];
	struct pp_spec_report rep;

	group(body, sizeof(body),
	      "\"cpu\":1,\"memoryInGB\":1.5,\"gpu\":{\"count\":1,\"sku\":\"V100\"}",
	      "{\"prefect.io_flow-run-id\":\"0a1b\",\"team\":\"data\"}", "prefect-job");
	assert_int_equal(check(body, &rep), 0);
}

static void test_gpu_needs_sku(void **state)
{
	char body[4096];

	group(body, sizeof(body), "\"cpu\":1,\"memoryInGB\":1.5,\"gpu\":{\"count\":1}", "{}",
	      "job");
	assert_refused(body, "InvalidRequestContent",
		       "properties.containers[0].properties.resources.requests.gpu",
		       "Required property 'sku' not found in JSON. Path "
		       "'properties.containers[0].properties.resources.requests.gpu'");
}

static void test_swagger_rules(void **state)
{
	char body[4096];

	group(body, sizeof(body), "\"cpu\":1,\"memoryInGB\":1,\"cpus\":2", "{}", "job");
	assert_refused(body, "InvalidRequestContent",
		       "properties.containers[0].properties.resources.requests.cpus",
		       "Could not find member 'cpus' on object of type 'ResourceRequests'");
	group(body, sizeof(body), "\"cpu\":1,\"memoryInGB\":\"1\"", "{}", "job");
	assert_refused(body, "InvalidRequestContent",
		       "properties.containers[0].properties.resources.requests.memoryInGB",
		       "to type 'System.Double'");
	group(body, sizeof(body),
	      "\"cpu\":1,\"memoryInGB\":1,\"gpu\":{\"count\":1,\"sku\":\"H100\"}", "{}", "job");
	assert_refused(body, "InvalidRequestContent",
		       "properties.containers[0].properties.resources.requests.gpu.sku",
		       "Error converting value \"H100\" to type 'GpuSku'");
	group(body, sizeof(body), "\"cpu\":1", "{}", "job");
	assert_refused(body, "InvalidRequestContent",
		       "properties.containers[0].properties.resources.requests",
		       "Required property 'memoryInGB' not found");
}

static void test_arm_platform_rules(void **state)
{
	char body[16384], tags[12000];
	size_t off = 0;

	group(body, sizeof(body), "\"cpu\":1,\"memoryInGB\":1",
	      "{\"prefect.io/flow-run-id\":\"0a1b\"}", "job");
	assert_refused(body, "InvalidTagNameCharacters", "tags.prefect.io/flow-run-id",
		       "The tag names 'prefect.io/flow-run-id' have reserved characters");
	group(body, sizeof(body), "\"cpu\":1,\"memoryInGB\":1", "{}", "Job");
	assert_refused(body, "InvalidContainerName", "properties.containers[0].name",
		       "The container name 'Job' is invalid");
	off += (size_t)snprintf(tags, sizeof(tags), "{");
	for (int i = 0; i < 51; i++)
		off += (size_t)snprintf(tags + off, sizeof(tags) - off, "%s\"k%d\":\"v\"",
					i ? "," : "", i);
	snprintf(tags + off, sizeof(tags) - off, "}");
	group(body, sizeof(body), "\"cpu\":1,\"memoryInGB\":1", tags, "job");
	assert_refused(body, "InvalidTagCount", "tags", "exceeds the limit of 50");

	struct pp_spec_report rep;
	pp_spec_report_init(&rep);
	assert_int_equal(pp_spec_arm_name_check("containerGroup", "prefect-run-1", &rep), 0);
	assert_int_equal(pp_spec_arm_name_check("containerGroup", "a--b", &rep), 1);
	assert_int_equal(pp_spec_arm_name_check("containerGroup", "-ab", &rep), 1);
	assert_string_equal(rep.code, "InvalidContainerGroupName");
}

static const char *arg_of(const void *ctx, const char *name)
{
	const char *const *kv = ctx;

	for (; kv[0]; kv += 2)
		if (!strcmp(kv[0], name))
			return kv[1];
	return NULL;
}

/* Query parameters as the swagger declares them (Containers_ListLogs:
 * tail an int32, timestamps a boolean). */
static void test_query_parameters(void **state)
{
	struct pp_spec_report rep;
	const char *ok[] = {"tail", "10", "timestamps", "true", "api-version", "2023-05-01", NULL};
	const char *bad[] = {"tail", "ten", "timestamps", "yes", NULL};
	const char *big[] = {"tail", "4294967296", NULL};

	assert_int_equal(pp_spec_swagger_check_query(aci, "Containers_ListLogs", arg_of, ok, &rep),
			 0);
	assert_int_equal(pp_spec_swagger_check_query(aci, "Containers_ListLogs", arg_of, bad, &rep),
			 2);
	assert_string_equal(rep.v[0].field, "tail");
	assert_string_equal(rep.v[1].field, "timestamps");
	assert_int_equal(pp_spec_swagger_check_query(aci, "Containers_ListLogs", arg_of, big, &rep),
			 1);
	assert_int_equal(pp_spec_swagger_check_query(aci, "Containers_NoSuch", arg_of, ok, &rep),
			 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_group),	 cmocka_unit_test(test_gpu_needs_sku),
		cmocka_unit_test(test_swagger_rules),	 cmocka_unit_test(test_arm_platform_rules),
		cmocka_unit_test(test_query_parameters),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
