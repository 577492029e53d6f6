/* The Cloud Run logs op (providers/cloudrun_logs.c) by hand: entries:list
 * filtered on the execution, pages followed by nextPageToken under one
 * filter, the next query starting at the last entry read (by timestamp,
 * then insertId), payloads read from textPayload or jsonPayload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "providers/logs.h"
#include "tests/unit/logs_step.h"

#define EXEC "projects/p1/locations/europe-west1/jobs/pp-job-1/executions/pp-job-1-abcde"
#define EP   "http://127.0.0.1:9/google"
#define T1   "2026-01-02T03:04:05.123456789Z"
#define T2   "2026-01-02T03:04:06.5Z"

static struct pp_json *req_body(const struct logs_rig *r)
{
	struct pp_json *j = NULL;
	assert_string_equal(r->io.req.method, "POST");
	assert_string_equal(r->io.req.url, EP "/v2/entries:list");
	/* A read by POST: it shares kept-alive connections. */
	assert_true(r->io.req.flags & PP_HTTP_RESENDABLE);
	assert_int_equal(pp_json_parse(r->io.req.body, r->io.req.body_len, NULL, &j, NULL), 0);
	assert_string_equal(pp_json_string(pp_json_at(pp_json_get(j, "resourceNames"), 0)),
			    "projects/p1");
	assert_string_equal(pp_json_get_string(j, "orderBy"), "timestamp asc");
	return j;
}

static void test_filters_on_the_execution_and_pages(void **state)
{
	struct logs_rig r;
	struct pp_error err = {0};
	rig_init(&r, EXEC, "{}", EP);
	assert_int_equal(rig_start(&r, pp_cloudrun_logs, &err), PP_STEP_SEND);
	struct pp_json *b = req_body(&r);
	const char *f = pp_json_get_string(b, "filter");
	assert_non_null(strstr(f, "resource.type=\"cloud_run_job\""));
	assert_non_null(strstr(f, "resource.labels.job_name=\"pp-job-1\""));
	assert_non_null(strstr(f, "resource.labels.location=\"europe-west1\""));
	assert_non_null(
		strstr(f, "labels.\"run.googleapis.com/execution_name\"=\"pp-job-1-abcde\""));
	assert_non_null(strstr(f, "log_id(\"run.googleapis.com/stderr\")"));
	assert_null(strstr(f, "timestamp"));
	assert_int_equal(pp_json_get_int(b, "pageSize", 0), 1000);
	assert_null(pp_json_get(b, "pageToken"));
	pp_json_free(b);
	assert_int_equal(
		rig_answer_json(&r, pp_cloudrun_logs, 200,
				"{\"entries\":[{\"textPayload\":\"first\",\"timestamp\":\"" T1
				"\",\"insertId\":\"a1\"},{\"jsonPayload\":{\"message\":"
				"\"second\"},\"timestamp\":\"" T1 "\",\"insertId\":\"a2\"},{"
				"\"jsonPayload\":{\"k\":1},\"timestamp\":\"" T1
				"\",\"insertId\":\"a3\"}],\"nextPageToken\":\"tok-2\"}",
				&err),
		PP_STEP_DONE);
	assert_int_equal(r.logs.n, 3);
	assert_string_equal(r.logs.v[0].text, "first");
	assert_string_equal(r.logs.v[1].text, "second");
	assert_string_equal(r.logs.v[2].text, "{\"k\":1}");
	assert_int_equal(r.logs.v[0].ts_ms, 1767323045123LL);
	assert_true(r.logs.more);
	assert_int_equal(r.io.poll_after_ms, 0);
	pp_logs_clear(&r.logs);

	/* The next page of the same query. */
	assert_int_equal(rig_start(&r, pp_cloudrun_logs, &err), PP_STEP_SEND);
	b = req_body(&r);
	assert_string_equal(pp_json_get_string(b, "pageToken"), "tok-2");
	assert_null(strstr(pp_json_get_string(b, "filter"), "timestamp"));
	pp_json_free(b);
	assert_int_equal(
		rig_answer_json(&r, pp_cloudrun_logs, 200,
				"{\"entries\":[{\"textPayload\":\"third\",\"timestamp\":\"" T2
				"\",\"insertId\":\"b1\"}]}",
				&err),
		PP_STEP_DONE);
	assert_int_equal(r.logs.n, 1);
	assert_false(r.logs.more);
	/* Read to the end: the next query waits for the read quota. */
	assert_int_equal(r.io.poll_after_ms, 2000);
	pp_logs_clear(&r.logs);

	/* A new query from the last entry: what it held already is skipped. */
	assert_int_equal(rig_start(&r, pp_cloudrun_logs, &err), PP_STEP_SEND);
	b = req_body(&r);
	assert_non_null(strstr(pp_json_get_string(b, "filter"), " AND timestamp>=\"" T2 "\""));
	assert_null(pp_json_get(b, "pageToken"));
	pp_json_free(b);
	assert_int_equal(
		rig_answer_json(&r, pp_cloudrun_logs, 200,
				"{\"entries\":[{\"textPayload\":\"third\",\"timestamp\":\"" T2
				"\",\"insertId\":\"b1\"},{\"textPayload\":\"fourth\","
				"\"timestamp\":\"" T2 "\",\"insertId\":\"b2\"}]}",
				&err),
		PP_STEP_DONE);
	assert_int_equal(r.logs.n, 1);
	assert_string_equal(r.logs.v[0].text, "fourth");
	rig_free(&r);
}

static void test_since_and_errors(void **state)
{
	struct logs_rig r;
	struct pp_error err = {0};
	rig_init(&r, EXEC, "{}", NULL);
	r.logs.since_ms = 1767323045123LL;
	r.logs.limit = 20;
	assert_int_equal(rig_start(&r, pp_cloudrun_logs, &err), PP_STEP_SEND);
	assert_string_equal(r.io.req.url, "https://logging.googleapis.com/v2/entries:list");
	struct pp_json *b = NULL;
	assert_int_equal(pp_json_parse(r.io.req.body, r.io.req.body_len, NULL, &b, NULL), 0);
	assert_non_null(
		strstr(pp_json_get_string(b, "filter"), "timestamp>=\"2026-01-02T03:04:05.123Z\""));
	assert_int_equal(pp_json_get_int(b, "pageSize", 0), 20);
	pp_json_free(b);
	assert_int_equal(rig_answer_json(&r, pp_cloudrun_logs, 429,
					 "{\"error\":{\"code\":429,\"message\":\"Quota exceeded\","
					 "\"status\":\"RESOURCE_EXHAUSTED\"}}",
					 &err),
			 PP_ETHROTTLED);
	assert_non_null(strstr(err.msg, "Quota exceeded"));
	assert_int_equal(rig_start(&r, pp_cloudrun_logs, &err), PP_STEP_SEND);
	assert_int_equal(rig_answer_json(&r, pp_cloudrun_logs, 403,
					 "{\"error\":{\"code\":403,\"message\":\"Permission "
					 "'logging.logEntries.list' denied\",\"status\":"
					 "\"PERMISSION_DENIED\"}}",
					 &err),
			 PP_EAUTH);
	assert_non_null(strstr(err.msg, "logging.logEntries.list"));
	rig_free(&r);
	rig_init(&r, "projects/p1/locations/r/jobs/j", "{}", EP);
	assert_int_equal(rig_start(&r, pp_cloudrun_logs, &err), PP_EINVALID);
	rig_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filters_on_the_execution_and_pages),
		cmocka_unit_test(test_since_and_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
