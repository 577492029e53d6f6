/* The ACI logs op (providers/aci_logs.c) by hand: the group's container
 * name from a GET of the group, then Containers_ListLogs with timestamps;
 * each line's time read off its front, and a later page hands out only the
 * lines after those delivered (a last line without its end waits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "providers/logs.h"
#include "tests/unit/logs_step.h"

#define GROUP                                                                                      \
	"/subscriptions/6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f/resourceGroups/rg-flows/providers/"   \
	"Microsoft.ContainerInstance/containerGroups/pp-group-1"
#define EP "http://127.0.0.1:9/azure"

static void test_reads_the_containers_log(void **state)
{
	struct logs_rig r;
	struct pp_error err = {0};
	rig_init(&r, GROUP, "{\"api_version\": \"2024-10-01-preview\"}", EP);
	assert_int_equal(rig_start(&r, pp_aci_logs, &err), PP_STEP_SEND);
	assert_string_equal(r.io.req.method, "GET");
	assert_string_equal(r.io.req.url, EP GROUP "?api-version=2024-10-01-preview");
	assert_int_equal(
		rig_answer_json(&r, pp_aci_logs, 200,
				"{\"name\":\"pp-group-1\",\"properties\":{\"containers\":[{"
				"\"name\":\"flow\"},{\"name\":\"other\"}]}}",
				&err),
		PP_STEP_SEND);
	assert_string_equal(r.io.req.url, EP GROUP "/containers/flow/logs?timestamps=true"
						   "&api-version=2024-10-01-preview");
	assert_int_equal(rig_answer_json(&r, pp_aci_logs, 200,
					 "{\"content\":\"2026-01-02T03:04:05.123456789Z one\\n"
					 "2026-01-02T03:04:06Z two words\\nno time here\\nparti\"}",
					 &err),
			 PP_STEP_DONE);
	assert_int_equal(r.logs.n, 3);
	assert_string_equal(r.logs.v[0].text, "one");
	assert_int_equal(r.logs.v[0].ts_ms, 1767323045123LL);
	assert_string_equal(r.logs.v[1].text, "two words");
	assert_string_equal(r.logs.v[2].text, "no time here");
	assert_int_equal(r.logs.v[2].ts_ms, 0);
	assert_string_equal(r.logs.cursor, "3");
	assert_false(r.logs.more);
	pp_logs_clear(&r.logs);

	/* The whole log again: only what follows the delivered lines. */
	assert_int_equal(rig_start(&r, pp_aci_logs, &err), PP_STEP_SEND);
	assert_non_null(strstr(r.io.req.url, "/containers/flow/logs?"));
	assert_int_equal(rig_answer_json(&r, pp_aci_logs, 200,
					 "{\"content\":\"2026-01-02T03:04:05.123456789Z one\\n"
					 "2026-01-02T03:04:06Z two words\\nno time here\\n"
					 "2026-01-02T03:04:07Z partial, now whole\\n\"}",
					 &err),
			 PP_STEP_DONE);
	assert_int_equal(r.logs.n, 1);
	assert_string_equal(r.logs.v[0].text, "partial, now whole");
	assert_string_equal(r.logs.cursor, "4");
	rig_free(&r);
}

static void test_a_deleted_group_is_not_found(void **state)
{
	struct logs_rig r;
	struct pp_error err = {0};
	rig_init(&r, GROUP, "{}", NULL);
	assert_int_equal(rig_start(&r, pp_aci_logs, &err), PP_STEP_SEND);
	assert_string_equal(r.io.req.url,
			    "https://management.azure.com" GROUP "?api-version=2023-05-01");
	assert_int_equal(
		rig_answer_json(&r, pp_aci_logs, 404,
				"{\"error\":{\"code\":\"ResourceNotFound\",\"message\":\"The "
				"Resource was not found.\"}}",
				&err),
		PP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "ResourceNotFound"));
	assert_non_null(strstr(err.msg, "deletes a container's logs with its group"));
	rig_free(&r);
	rig_init(&r, "/subscriptions/s/resourceGroups/rg", "{}", EP);
	assert_int_equal(rig_start(&r, pp_aci_logs, &err), PP_EINVALID);
	rig_free(&r);
	/* A container name that would change the URL is refused. */
	rig_init(&r, GROUP, "{}", EP);
	assert_int_equal(rig_start(&r, pp_aci_logs, &err), PP_STEP_SEND);
	assert_int_equal(rig_answer_json(&r, pp_aci_logs, 200,
					 "{\"properties\":{\"containers\":[{\"name\":\"../x\"}]}}",
					 &err),
			 PP_EINVALID);
	rig_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_the_containers_log),
		cmocka_unit_test(test_a_deleted_group_is_not_found),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
