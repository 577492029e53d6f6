/* The Cloud Run v2 backend against a small in-process imitation of the
 * Admin API: request shapes, adoption, effectively-once RunJob, status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dispatcher/op_driver.h"
#include "lib/json.h"
#include "dispatcher/dry_run.h"
#include "providers/common.h"
#define HS_FAKE_SERVER_VIEW
#include "tests/unit/http_server.h"

#define RUN_ID	  "0B7E1A52-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
#define JOB_ID	  "pp-0b7e1a523c4d4e5f8a9b0c1d2e3f4a5b-1"
#define JOB_NAME  "projects/proj-1/locations/europe-west1/jobs/" JOB_ID
#define EXEC_NAME JOB_NAME "/executions/" JOB_ID "-x7k2p"

struct cloud {
	bool job_exists;
	bool has_execution;
	int run_failures_after_start; /* answer :run with 503 after starting it */
	int create_status;	      /* forced answer to create, 0: normal */
	const char *execution;	      /* GetExecution body */
	int running_gets;	      /* answer GetExecution "still running" this often first */
	int cancel_status;	      /* forced answer to :cancel, 0: normal */
	const char *cancel_code;      /* its google.rpc status name */
	bool delete_refused_while_running;
	int runs, deletes, cancels, execution_gets, list_pages;
};

#define EXEC_RUNNING "{\"name\":\"" EXEC_NAME "\",\"runningCount\":1}"
#define EXEC_DONE                                                                                  \
	"{\"name\":\"" EXEC_NAME "\",\"completionTime\":\"2026-01-01T00:00:09Z\","                 \
	"\"cancelledCount\":1}"

static void cloud_answer(const struct fs_request *rq, struct fs_response *rs, void *ud)
{
	struct cloud *c = ud;
	const char *u = rq->url;
	if (!strcmp(rq->method, "POST") && strstr(u, "/jobs?jobId=")) {
		if (c->create_status) {
			rs->status = c->create_status;
			snprintf(rs->body, sizeof(rs->body),
				 "{\"error\":{\"code\":400,\"message\":\"Invalid value at "
				 "'job.template.template.containers[0].resources.limits' "
				 "(cpu)\",\"status\":\"INVALID_ARGUMENT\"}}");
			return;
		}
		if (c->job_exists) {
			rs->status = 409;
			snprintf(rs->body, sizeof(rs->body),
				 "{\"error\":{\"code\":409,\"message\":\"Resource '%s' already "
				 "exists.\",\"status\":\"ALREADY_EXISTS\"}}",
				 JOB_ID);
			return;
		}
		c->job_exists = true;
		snprintf(rs->body, sizeof(rs->body),
			 "{\"name\":\"projects/proj-1/locations/europe-west1/operations/op1\"}");
	} else if (!strcmp(rq->method, "GET") && strlen(u) > 5 &&
		   !strcmp(u + strlen(u) - 5, "/jobs")) {
		/* ListJobs (the fake server keeps no query): two pages. */
		if (c->list_pages++ == 0)
			snprintf(rs->body, sizeof(rs->body),
				 "{\"jobs\":[{\"name\":\"%s\",\"createTime\":"
				 "\"2026-01-01T00:00:09.5Z\",\"labels\":{\"pushpool-run-id\":"
				 "\"run-a\"}},{\"name\":\"projects/proj-1/locations/europe-west1/"
				 "jobs/theirs\",\"labels\":{\"team\":\"x\"}}],"
				 "\"nextPageToken\":\"t/2=\"}",
				 JOB_NAME);
		else
			snprintf(rs->body, sizeof(rs->body),
				 "{\"jobs\":[{\"name\":\"projects/proj-1/locations/"
				 "europe-west1/jobs/pp-b\",\"labels\":{\"pushpool-run-id\":"
				 "\"run-b\"}}]}");
	} else if (!strcmp(rq->method, "GET") && strstr(u, "/executions/")) {
		c->execution_gets++;
		if (c->running_gets > 0) {
			c->running_gets--;
			snprintf(rs->body, sizeof(rs->body), "%s", EXEC_RUNNING);
			return;
		}
		snprintf(rs->body, sizeof(rs->body), "%s", c->execution ? c->execution : "{}");
	} else if (!strcmp(rq->method, "GET")) {
		if (!c->job_exists) {
			rs->status = 404;
			return;
		}
		if (c->has_execution)
			snprintf(rs->body, sizeof(rs->body),
				 "{\"name\":\"%s\",\"latestCreatedExecution\":{\"name\":\"%s\"}}",
				 JOB_NAME, EXEC_NAME);
		else
			snprintf(rs->body, sizeof(rs->body), "{\"name\":\"%s\"}", JOB_NAME);
	} else if (!strcmp(rq->method, "POST") && strstr(u, ":run")) {
		c->runs++;
		c->has_execution = true;
		if (c->run_failures_after_start > 0) {
			c->run_failures_after_start--;
			rs->status = 503;
			snprintf(rs->body, sizeof(rs->body),
				 "{\"error\":{\"code\":503,\"message\":\"backend "
				 "unavailable\",\"status\":\"UNAVAILABLE\"}}");
			return;
		}
		snprintf(rs->body, sizeof(rs->body),
			 "{\"name\":\"projects/proj-1/locations/europe-west1/operations/op2\","
			 "\"metadata\":{\"@type\":\"type.googleapis.com/"
			 "google.cloud.run.v2.Execution\",\"name\":\"%s\"}}",
			 EXEC_NAME);
	} else if (!strcmp(rq->method, "POST") && strstr(u, ":cancel")) {
		c->cancels++;
		if (c->cancel_status) {
			rs->status = c->cancel_status;
			snprintf(rs->body, sizeof(rs->body),
				 "{\"error\":{\"code\":%d,\"message\":\"Execution %s cannot be "
				 "cancelled in its current state.\",\"status\":\"%s\"}}",
				 c->cancel_status, EXEC_NAME, c->cancel_code);
		}
	} else if (!strcmp(rq->method, "DELETE")) {
		if (c->delete_refused_while_running && c->running_gets > 0) {
			rs->status = 400;
			snprintf(rs->body, sizeof(rs->body),
				 "{\"error\":{\"code\":400,\"message\":\"Job has running "
				 "executions\",\"status\":\"FAILED_PRECONDITION\"}}");
			return;
		}
		c->deletes++;
		c->job_exists = false;
	} else {
		rs->status = 400;
	}
}

struct fixture {
	struct fake_server srv;
	struct cloud cloud;
	struct pp_json *job;
	struct pp_run_io io;
};

static const char *job_text =
	"{\"command\":null,\"env\":{\"PREFECT__FLOW_RUN_ID\":\"" RUN_ID "\",\"N\":5},"
	"\"labels\":{\"prefect.io/flow-run-id\":\"" RUN_ID
	"\",\"Team\":\"Data Eng\",\"9Lives\":\"\u00e9t\u00e9\"},"
	"\"name\":\"my-flow\",\"credentials\":{\"project\":\"proj-1\"},"
	"\"env_from_secrets\":{\"DB_PASSWORD\":{\"secret\":\"db-pass\",\"version\":\"latest\"}},"
	"\"job_body\":{\"client\":\"prefect\",\"launchStage\":\"BETA\",\"template\":{\"template\":{"
	"\"serviceAccount\":\"\",\"maxRetries\":0,\"timeout\":600,"
	"\"vpcAccess\":{\"connector\":null},"
	"\"containers\":[{\"env\":[],\"image\":\"docker.io/prefecthq/prefect:3-latest\","
	"\"command\":\"prefect flow-run execute --flag 'a b'\","
	"\"resources\":{\"limits\":{\"cpu\":\"1000m\",\"memory\":\"512Mi\"}}}]}}},"
	"\"keep_job\":false,\"region\":\"europe-west1\",\"timeout\":900}";

static const struct pp_provider *cr(void)
{
	return pp_provider_find("cloud-run-v2:push");
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct pp_error err = {0};
	if (!f || fs_start(&f->srv, cloud_answer, &f->cloud))
		return -1;
	if (pp_json_parse(job_text, strlen(job_text), NULL, &f->job, &err))
		return -1;
	f->io.run_id = RUN_ID;
	f->io.attempt = 1;
	f->io.job = f->job;
	f->io.endpoint = f->srv.base;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f->io.state)
		pp_exec_io_release(&f->io, cr());
	pp_json_free(f->job);
	fs_stop(&f->srv);
	free(f);
	return 0;
}

static const struct pp_exec_policy fast = {.base_ms = 1, .cap_ms = 5};

static struct pp_json *request_json(struct fake_server *srv, int i)
{
	struct pp_json *j = NULL;
	assert_true(i < srv->count);
	assert_int_equal(pp_json_parse(srv->log[i].body, srv->log[i].body_len, NULL, &j, NULL), 0);
	return j;
}

static void test_alias_and_derived_id(void **state)
{
	(void)state;
	char name[64];
	struct pp_error err = {0};
	assert_ptr_equal(pp_provider_find("cloud-run-v2"), cr());
	assert_null(pp_provider_find("cloud-run-v3"));
	assert_int_equal(pp_derive_name(name, sizeof(name), RUN_ID, 1, &err), 0);
	assert_string_equal(name, JOB_ID);
	/* Any other id is hashed into the same shape. */
	assert_int_equal(pp_derive_name(name, sizeof(name), "run/42 with spaces", 3, &err), 0);
	assert_int_equal(strlen(name), strlen("pp-") + 32 + strlen("-3"));
	assert_int_equal(strncmp(name, "pp-", 3), 0);
	for (const char *p = name; *p; p++)
		assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-');
	assert_int_equal(pp_derive_name(name, sizeof(name), RUN_ID, 120, &err), 0);
	assert_int_equal(strncmp(name, JOB_ID, strlen(JOB_ID) - 2), 0);
	assert_string_equal(name + strlen(JOB_ID) - 2, "-120");
	/* "pp-", 32 digits, "-120" and the NUL need 40 bytes. */
	assert_int_equal(pp_derive_name(name, 40, RUN_ID, 120, &err), 0);
	assert_int_equal(pp_derive_name(name, 39, RUN_ID, 120, &err), PP_EINVALID);
	assert_int_equal(pp_derive_name(name, sizeof(name), "", 1, &err), PP_EINVALID);
}

static void test_submit_creates_and_runs(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	assert_int_equal(pp_exec_io_prepare(&f->io, cr(), &err), 0);
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_SUBMIT, &f->io, &fast, &err), 0);
	assert_string_equal(f->io.infra_id, EXEC_NAME);
	assert_int_equal(f->srv.count, 3);
	assert_string_equal(f->srv.log[0].method, "POST");
	assert_string_equal(f->srv.log[0].url,
			    "/v2/projects/proj-1/locations/europe-west1/jobs?jobId=" JOB_ID);
	assert_string_equal(f->srv.log[1].method, "GET");
	assert_string_equal(f->srv.log[1].url, "/v2/" JOB_NAME);
	assert_string_equal(f->srv.log[2].url, "/v2/" JOB_NAME ":run");
	assert_int_equal(f->cloud.runs, 1);
	/* Each answers with one operation or job: no coding asked for
	 * (lib/http.h, PP_HTTP_SMALL_ANSWER). */
	for (int i = 0; i < 3; i++)
		assert_string_equal(f->srv.log[i].coding, "");

	struct pp_json *body = request_json(&f->srv, 0);
	struct pp_json *tt = pp_json_path(body, "template.template");
	struct pp_json *c0 = pp_json_path(tt, "containers[0]");
	/* Prefect's worker steps: command split, env list, secrets, timeout. */
	assert_int_equal(pp_json_get(c0, "command")->count, 5);
	assert_string_equal(pp_json_string(pp_json_path(c0, "command[4]")), "a b");
	assert_string_equal(pp_json_string(pp_json_path(c0, "env[0].name")),
			    "PREFECT__FLOW_RUN_ID");
	assert_string_equal(pp_json_string(pp_json_path(c0, "env[1].value")), "5");
	assert_string_equal(
		pp_json_string(pp_json_path(c0, "env[2].valueSource.secretKeyRef.secret")),
		"db-pass");
	assert_string_equal(pp_json_get_string(tt, "timeout"), "900s");
	assert_null(pp_json_get(tt, "vpcAccess"));
	assert_null(pp_json_get(tt, "serviceAccount"));
	assert_string_equal(
		pp_json_string(pp_json_path(body, "labels[\"prefect_io_flow-run-id\"]")),
		"0b7e1a52-3c4d-4e5f-8a9b-0c1d2e3f4a5b");
	assert_string_equal(pp_json_string(pp_json_path(body, "labels.team")), "data_eng");
	/* A key must start with a letter; a byte outside [a-z0-9_-] is "_"
	 * whatever the locale says of it (UTF-8 "été" is five bytes). */
	assert_string_equal(pp_json_string(pp_json_path(body, "labels.l9lives")), "__t__");
	assert_non_null(pp_json_path(body, "template.labels[\"pushpool-run-id\"]"));
	pp_json_free(body);
}

static void test_replay_adopts_existing_execution(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	f->cloud.job_exists = true;
	f->cloud.has_execution = true;
	assert_int_equal(pp_exec_io_prepare(&f->io, cr(), &err), 0);
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_SUBMIT, &f->io, &fast, &err), 0);
	assert_string_equal(f->io.infra_id, EXEC_NAME);
	assert_int_equal(f->cloud.runs, 0);
	assert_int_equal(f->srv.count, 2);
}

static void test_existing_job_without_execution_is_run(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	f->cloud.job_exists = true;
	assert_int_equal(pp_exec_io_prepare(&f->io, cr(), &err), 0);
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_SUBMIT, &f->io, &fast, &err), 0);
	assert_string_equal(f->io.infra_id, EXEC_NAME);
	assert_int_equal(f->cloud.runs, 1);
}

static void test_lost_run_answer_never_runs_twice(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	f->cloud.run_failures_after_start = 1;
	assert_int_equal(pp_exec_io_prepare(&f->io, cr(), &err), 0);
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_SUBMIT, &f->io, &fast, &err), 0);
	assert_string_equal(f->io.infra_id, EXEC_NAME);
	assert_int_equal(f->cloud.runs, 1);
	/* create, get, run (503), get (adopts) */
	assert_int_equal(f->srv.count, 4);
	assert_string_equal(f->srv.log[3].method, "GET");
}

static void test_invalid_argument_is_reported(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	f->cloud.create_status = 400;
	assert_int_equal(pp_exec_io_prepare(&f->io, cr(), &err), 0);
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_SUBMIT, &f->io, &fast, &err), PP_EINVALID);
	assert_int_equal(f->srv.count, 1);
	assert_non_null(strstr(err.msg, "INVALID_ARGUMENT"));
	assert_non_null(strstr(err.msg, "resources.limits"));
	assert_non_null(strstr(err.msg, "HTTP 400"));
}

static enum pp_run_state status_of(struct fixture *f, const char *execution)
{
	struct pp_error err = {0};
	f->cloud.execution = execution;
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_STATUS, &f->io, &fast, &err), 0);
	return f->io.state_out;
}

static void test_status_mapping(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	pp_run_io_set_infra_id(&f->io, NULL, "%s", EXEC_NAME);
	assert_int_equal(pp_exec_io_restore(&f->io, cr(), &err), 0);

	assert_int_equal(status_of(f, "{\"taskCount\":1}"), PP_RUN_QUEUED);
	assert_int_equal(
		status_of(f, "{\"startTime\":\"2026-01-01T00:00:00Z\",\"runningCount\":1}"),
		PP_RUN_RUNNING);
	assert_int_equal(status_of(f,
				   "{\"completionTime\":\"2026-01-01T00:01:00Z\","
				   "\"succeededCount\":1,\"conditions\":[{\"type\":\"Completed\","
				   "\"state\":\"CONDITION_SUCCEEDED\"}]}"),
			 PP_RUN_SUCCEEDED);
	assert_int_equal(f->io.exit_code, 0);
	assert_int_equal(
		status_of(f, "{\"completionTime\":\"2026-01-01T00:01:00Z\",\"failedCount\":1,"
			     "\"conditions\":[{\"type\":\"Completed\",\"state\":"
			     "\"CONDITION_FAILED\",\"executionReason\":\"NON_ZERO_EXIT_CODE\","
			     "\"message\":\"Task pp-1 failed with exit code 3\"}]}"),
		PP_RUN_FAILED);
	assert_non_null(strstr(f->io.message, "NON_ZERO_EXIT_CODE"));
	assert_non_null(strstr(f->io.message, "exit code 3"));
	assert_non_null(strstr(f->io.message, "(1 of 1 tasks failed)"));
	/* Read as the poll reads it, for its counts and conditions alone: the
	 * execution's template and the members around them change nothing. */
	assert_int_equal(status_of(f,
				   "{\"name\":\"" EXEC_NAME "\",\"template\":{\"containers\":[{"
				   "\"image\":\"x\",\"env\":[{\"name\":\"A\",\"value\":\"1\"}]}]},"
				   "\"completionTime\":\"2026-01-01T00:01:00Z\",\"taskCount\":2,"
				   "\"succeededCount\":2,\"logUri\":\"https://x\"}"),
			 PP_RUN_SUCCEEDED);
	assert_int_equal(status_of(f,
				   "{\"template\":{\"taskCount\":9},\"completionTime\":"
				   "\"2026-01-01T00:01:00Z\",\"taskCount\":2,\"succeededCount\":1,"
				   "\"failedCount\":1}"),
			 PP_RUN_FAILED);
	assert_non_null(strstr(f->io.message, "(1 of 2 tasks failed)"));
	assert_int_equal(status_of(f, "{\"completionTime\":\"2026-01-01T00:01:00Z\","
				      "\"taskCount\":1,\"cancelledCount\":1}"),
			 PP_RUN_CANCELLED);
	assert_int_equal(
		status_of(f, "{\"completionTime\":\"2026-01-01T00:01:00Z\",\"cancelledCount\":1,"
			     "\"conditions\":[{\"type\":\"Completed\",\"state\":"
			     "\"CONDITION_FAILED\",\"executionReason\":\"CANCELLED\"}]}"),
		PP_RUN_CANCELLED);
	assert_string_equal(f->srv.log[0].url, "/v2/" EXEC_NAME);
}

/* A failed execution whose tasks never started: the failed condition's
 * CommonReason is the class; a task that ran and exited non-zero is none. */
static void test_start_failure_classes(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	pp_run_io_set_infra_id(&f->io, NULL, "%s", EXEC_NAME);
	assert_int_equal(pp_exec_io_restore(&f->io, cr(), &err), 0);
	static const struct {
		const char *type, *reason;
		enum pp_start_failure f;
	} cases[] = {
		{"ResourcesAvailable", "CONTAINER_MISSING", PP_START_IMAGE_PULL},
		{"ResourcesAvailable", "CONTAINER_IMAGE_UNAUTHORIZED", PP_START_IMAGE_PULL},
		{"Started", "CONTAINER_PERMISSION_DENIED", PP_START_IMAGE_PULL},
		{"ResourcesAvailable", "VPC_NETWORK_NOT_FOUND", PP_START_RESOURCE_INIT},
		{"Started", "SECRETS_ACCESS_CHECK_FAILED", PP_START_RESOURCE_INIT},
		{"ResourcesAvailable", "INTERNAL", PP_START_CAPACITY},
		{"Started", "UNKNOWN", PP_START_OTHER},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char ex[1024];
		snprintf(ex, sizeof(ex),
			 "{\"completionTime\":\"2026-01-01T00:01:00Z\",\"failedCount\":1,"
			 "\"conditions\":[{\"type\":\"%s\",\"state\":\"CONDITION_FAILED\","
			 "\"reason\":\"%s\",\"message\":\"Image 'repo/x:1' not found.\"},"
			 "{\"type\":\"Completed\",\"state\":\"CONDITION_FAILED\","
			 "\"message\":\"Task failed\"}]}",
			 cases[i].type, cases[i].reason);
		assert_int_equal(status_of(f, ex), PP_RUN_FAILED);
		assert_string_equal(pp_start_failure_name(f->io.start_failure),
				    pp_start_failure_name(cases[i].f));
		assert_non_null(strstr(f->io.message, "Image 'repo/x:1' not found."));
	}
	/* started, then exited non-zero: the exit is the outcome */
	assert_int_equal(
		status_of(f, "{\"startTime\":\"2026-01-01T00:00:00Z\",\"completionTime\":"
			     "\"2026-01-01T00:01:00Z\",\"failedCount\":1,\"conditions\":[{\"type\":"
			     "\"Completed\",\"state\":\"CONDITION_FAILED\",\"executionReason\":"
			     "\"NON_ZERO_EXIT_CODE\"}]}"),
		PP_RUN_FAILED);
	assert_int_equal(f->io.start_failure, PP_START_OK);
}

static void test_restore_rejects_other_ids(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	pp_run_io_set_infra_id(&f->io, NULL, "arn:aws:ecs:x");
	assert_int_equal(pp_exec_io_restore(&f->io, cr(), &err), PP_EINVALID);
	assert_null(f->io.state);
	assert_non_null(strstr(err.msg, "not an execution name"));
}

static void test_cancel_and_cleanup(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	f->cloud.execution = EXEC_DONE;
	assert_int_equal(pp_exec_io_prepare(&f->io, cr(), &err), 0);
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_SUBMIT, &f->io, &fast, &err), 0);
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_CANCEL, &f->io, &fast, &err), 0);
	assert_int_equal(f->cloud.cancels, 1);
	assert_string_equal(f->srv.log[3].url, "/v2/" EXEC_NAME ":cancel");
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_CLEANUP, &f->io, &fast, &err), 0);
	assert_int_equal(f->cloud.deletes, 1);
	assert_string_equal(f->srv.log[4].method, "GET");
	assert_string_equal(f->srv.log[4].url, "/v2/" EXEC_NAME);
	assert_string_equal(f->srv.log[5].method, "DELETE");
	assert_string_equal(f->srv.log[5].url, "/v2/" JOB_NAME);
	/* A second cleanup finds nothing (404) and is still done. */
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_CLEANUP, &f->io, &fast, &err), 0);
}

/* Cancel then cleanup: the job is deleted only once GetExecution shows the
 * execution stopped (completionTime), as Prefect's worker deletes after its
 * watch loop ends; never in the same moment as the cancel. */
static void test_delete_waits_for_the_execution_to_stop(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	f->cloud.execution = EXEC_DONE;
	assert_int_equal(pp_exec_io_prepare(&f->io, cr(), &err), 0);
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_SUBMIT, &f->io, &fast, &err), 0);
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_CANCEL, &f->io, &fast, &err), 0);
	int cancel_at = f->srv.count - 1;
	f->cloud.running_gets = 2;
	f->cloud.delete_refused_while_running = true;
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_CLEANUP, &f->io, &fast, &err), 0);
	assert_int_equal(f->cloud.deletes, 1);
	assert_int_equal(f->cloud.execution_gets, 3);
	int n = f->srv.count;
	assert_string_equal(f->srv.log[n - 1].method, "DELETE");
	assert_string_equal(f->srv.log[n - 2].method, "GET");
	for (int i = cancel_at + 1; i < n - 1; i++)
		assert_string_equal(f->srv.log[i].method, "GET");
	/* the delete came after the execution was seen stopped, polls apart */
	assert_true(f->srv.log[n - 1].at_ms - f->srv.log[cancel_at].at_ms >= 2 * 1000 - 50);
}

/* A cancel that arrives after the execution finished ends, whatever code
 * Cloud Run refuses it with; one refused while it still runs stays an error. */
static void test_cancel_of_a_finished_execution_ends(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	pp_run_io_set_infra_id(&f->io, NULL, "%s", EXEC_NAME);
	assert_int_equal(pp_exec_io_restore(&f->io, cr(), &err), 0);
	static const struct {
		int http;
		const char *code;
	} refusals[] = {{400, "FAILED_PRECONDITION"},
			{400, "INVALID_ARGUMENT"},
			{409, "ALREADY_EXISTS"},
			{403, "PERMISSION_DENIED"}};
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		f->cloud.cancel_status = refusals[i].http;
		f->cloud.cancel_code = refusals[i].code;
		f->cloud.execution = EXEC_DONE;
		int rc = pp_exec_run_op(cr(), PP_OP_CANCEL, &f->io, &fast, &err);
		if (rc)
			fail_msg("cancel refused with %s: %d %s", refusals[i].code, rc, err.msg);
	}
	f->cloud.cancel_code = "INVALID_ARGUMENT";
	f->cloud.cancel_status = 400;
	f->cloud.running_gets = 1;
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_CANCEL, &f->io, &fast, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "cannot be cancelled"));
}

/* Values the Job message's proto3 JSON form refuses: a Duration without
 * its "s", a number in the string map resources.limits, an empty enum. */
static void test_body_is_proto3_json(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	pp_json_remove(f->job, "timeout");
	struct pp_json *jb = pp_json_get(f->job, "job_body");
	pp_json_set_string(jb, "launchStage", "");
	struct pp_json *tt = pp_json_path(jb, "template.template");
	pp_json_set_string(tt, "timeout", "600");
	struct pp_json *limits = pp_json_path(tt, "containers[0].resources.limits");
	pp_json_set_int(limits, "cpu", 2);
	pp_json_set_int(limits, "nvidia.com/gpu", 1);
	assert_int_equal(pp_exec_io_prepare(&f->io, cr(), &err), 0);
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_SUBMIT, &f->io, &fast, &err), 0);
	struct pp_json *body = request_json(&f->srv, 0);
	assert_null(pp_json_get(body, "launchStage"));
	assert_string_equal(pp_json_string(pp_json_path(body, "template.template.timeout")),
			    "600s");
	struct pp_json *sent =
		pp_json_path(body, "template.template.containers[0].resources.limits");
	assert_string_equal(pp_json_get_string(sent, "cpu"), "2");
	assert_string_equal(pp_json_get_string(sent, "nvidia.com/gpu"), "1");
	assert_string_equal(pp_json_get_string(sent, "memory"), "512Mi");
	pp_json_free(body);
}

/* max_runtime is Cloud Run's task timeout when the job sets none (rounded
 * up to whole seconds); a job's own timeout is kept. */
static void test_max_runtime_sets_timeout(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	pp_json_remove(f->job, "timeout");
	pp_json_remove(pp_json_path(f->job, "job_body.template.template"), "timeout");
	f->io.max_runtime_s = 89.5;
	assert_int_equal(pp_exec_io_prepare(&f->io, cr(), &err), 0);
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_SUBMIT, &f->io, &fast, &err), 0);
	struct pp_json *body = request_json(&f->srv, 0);
	assert_string_equal(pp_json_string(pp_json_path(body, "template.template.timeout")), "90s");
	pp_json_free(body);
}

static void test_max_runtime_keeps_the_jobs_timeout(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	f->io.max_runtime_s = 30;
	assert_int_equal(pp_exec_io_prepare(&f->io, cr(), &err), 0);
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_SUBMIT, &f->io, &fast, &err), 0);
	struct pp_json *body = request_json(&f->srv, 0);
	assert_string_equal(pp_json_string(pp_json_path(body, "template.template.timeout")),
			    "900s");
	pp_json_free(body);
}

static void test_keep_job_skips_delete(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	pp_json_set_bool(f->job, "keep_job", true);
	assert_int_equal(pp_exec_io_prepare(&f->io, cr(), &err), 0);
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_CLEANUP, &f->io, &fast, &err), 0);
	assert_int_equal(f->srv.count, 0);
}

static void test_prepare_errors(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	pp_json_remove(f->job, "credentials");
	assert_int_equal(pp_exec_io_prepare(&f->io, cr(), &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "no GCP project"));
	pp_json_set_string(f->job, "project", "proj-1");
	pp_json_set(f->job, "job_body", pp_json_new(PP_JSON_OBJECT));
	assert_int_equal(pp_exec_io_prepare(&f->io, cr(), &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "containers[0]"));
	assert_null(f->io.state);
}

static void test_request_dump(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	struct pp_buf out;
	pp_buf_init(&out, 0);
	assert_int_equal(pp_exec_io_prepare(&f->io, cr(), &err), 0);
	assert_int_equal(pp_request_dump(cr(), &f->io, &out, &err), 0);
	const char *text = pp_buf_str(&out);
	assert_non_null(strstr(text, "# 1\nPOST http://127.0.0.1:"));
	assert_non_null(strstr(text, "/jobs?jobId=" JOB_ID "\nContent-Type: application/json\n"));
	assert_non_null(strstr(text, "# 2\nGET "));
	assert_non_null(strstr(text, "# 3\nPOST "));
	assert_non_null(strstr(text, JOB_NAME ":run"));
	assert_non_null(strstr(text, "\"timeout\": \"900s\""));
	assert_int_equal(f->srv.count, 0);
	assert_string_equal(f->io.infra_id, "<execution-name>");
	pp_buf_free(&out);
}

static void test_list_pages_through_labelled_jobs(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	struct pp_remote_list l = {0};
	assert_int_equal(pp_exec_io_prepare(&f->io, cr(), &err), 0);
	f->io.listed = &l;
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_LIST, &f->io, &fast, &err), 0);
	/* Until a page comes without a token. */
	assert_int_equal(f->srv.count, 2);
	assert_int_equal(f->cloud.list_pages, 2);
	assert_string_equal(f->srv.log[1].url, "/v2/projects/proj-1/locations/europe-west1/jobs");
	/* Pages of jobs grow: they come compressed. */
	assert_string_equal(f->srv.log[0].coding, "gzip");
	assert_string_equal(f->srv.log[1].coding, "gzip");
	/* The job without our label is not listed. */
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0].id, JOB_NAME);
	assert_string_equal(l.v[0].run_id, "run-a");
	assert_true(l.v[0].created_ms == 1767225609500LL);
	assert_string_equal(l.v[1].id, "projects/proj-1/locations/europe-west1/jobs/pp-b");
	assert_string_equal(l.v[1].run_id, "run-b");
	assert_true(l.v[1].created_ms == 0);
	pp_remote_list_free(&l);
}

static void test_remove_deletes_the_listed_job(void **state)
{
	struct fixture *f = *state;
	struct pp_error err = {0};
	f->cloud.job_exists = true;
	assert_int_equal(pp_exec_io_prepare(&f->io, cr(), &err), 0);
	pp_run_io_set_infra_id(&f->io, NULL, "%s", JOB_NAME);
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_REMOVE, &f->io, &fast, &err), 0);
	assert_int_equal(f->cloud.deletes, 1);
	assert_string_equal(f->srv.log[0].method, "DELETE");
	assert_string_equal(f->srv.log[0].url, "/v2/" JOB_NAME);
	/* Gone already (another dispatcher swept it): still a success. */
	f->cloud.job_exists = false;
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_REMOVE, &f->io, &fast, &err), 0);
	pp_run_io_set_infra_id(&f->io, NULL, "not-a-job");
	assert_int_equal(pp_exec_run_op(cr(), PP_OP_REMOVE, &f->io, &fast, &err), PP_EINVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alias_and_derived_id),
		cmocka_unit_test_setup_teardown(test_submit_creates_and_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_adopts_existing_execution, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_existing_job_without_execution_is_run, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lost_run_answer_never_runs_twice, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_invalid_argument_is_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_failure_classes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_runtime_sets_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_runtime_keeps_the_jobs_timeout, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_restore_rejects_other_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_and_cleanup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_waits_for_the_execution_to_stop, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cancel_of_a_finished_execution_ends, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_body_is_proto3_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_job_skips_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prepare_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_dump, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_pages_through_labelled_jobs, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_remove_deletes_the_listed_job, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
