/* The Modal backend against the Modal mock over real h2c gRPC: submit,
 * status, cancel, adoption after a lost answer, auth failures; plus the
 * auth module's metadata and config parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/modal.h"
#include "dispatcher/op_driver.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/pb.h"
#include "mock/mock.h"
#include "providers/common.h"
#include "providers/provider.h"

struct fixture {
	struct pp_mock *mock;
	char url[128];
	char control[128]; /* the mock's HTTP base, for /control */
	struct pp_cred *cred;
};

static struct pp_cred *make_cred(const char *id, const char *secret)
{
	struct pp_cred_conf conf;
	struct pp_cred *c = NULL;
	struct pp_error err = {0};
	memset(&conf, 0, sizeof(conf));
	snprintf(conf.name, sizeof(conf.name), "modal-test");
	conf.type = (char *)"modal";
	conf.token_id = (char *)id;
	conf.token_secret = (char *)secret;
	if (pp_cred_new(&conf, &c, &err))
		fail_msg("pp_cred_new: %s", err.msg);
	return c;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct pp_mock_opts o;
	struct pp_error err = {0};
	struct pp_buf d;
	setenv("PUSHPOOL_MOCK_MODAL_TOKEN", "ak-test:as-test-secret", 1);
	pp_mock_opts_defaults(&o);
	o.provision_seconds = 0.05;
	o.run_seconds = 0.2;
	if (pp_mock_new(&o, &f->mock, &err) || pp_mock_start(f->mock, &err))
		fail_msg("mock: %s", err.msg);
	pp_buf_init(&d, 4096);
	assert_int_equal(pp_mock_describe(f->mock, &d), 0);
	const char *line = strstr(d.data, "\nmodal=");
	assert_non_null(line);
	snprintf(f->url, sizeof(f->url), "%.*s", (int)strcspn(line + 7, "\n"), line + 7);
	assert_int_equal(strncmp(d.data, "url=", 4), 0);
	snprintf(f->control, sizeof(f->control), "%.*s", (int)strcspn(d.data + 4, "\n"),
		 d.data + 4);
	pp_buf_free(&d);
	f->cred = make_cred("ak-test", "as-test-secret");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	pp_cred_free(f->cred);
	pp_mock_free(f->mock);
	free(f);
	pp_secret_clear();
	return 0;
}

struct run {
	struct pp_run_io io;
	struct pp_json *job;
	const struct pp_provider *p;
};

static void run_init(struct run *r, struct fixture *f, const char *run_id, const char *job_json)
{
	memset(r, 0, sizeof(*r));
	r->p = pp_provider_find("modal:push");
	assert_non_null(r->p);
	struct pp_error err = {0};
	if (pp_json_parse(job_json, strlen(job_json), NULL, &r->job, &err))
		fail_msg("job: %s", err.msg);
	r->io.run_id = run_id;
	r->io.attempt = 1;
	r->io.idem_key = run_id;
	r->io.job = r->job;
	r->io.endpoint = f->url;
	r->io.cred = f->cred;
	r->io.state = calloc(1, r->p->state_size);
	r->io.exit_code = -1;
}

static void run_free(struct run *r)
{
	r->p->release(r->io.state);
	free(r->io.state);
	pp_run_io_free_strings(&r->io);
	pp_json_free(r->job);
}

typedef int (*op_fn)(struct pp_run_io *io, struct pp_error *err);

static void set_drop(struct fixture *f, int rate)
{
	char json[96];
	struct pp_error err = {0};
	snprintf(json, sizeof(json), "{\"api\":\"modal\",\"reset_after_action_rate\":%d}", rate);
	assert_int_equal(pp_mock_set_faults(f->mock, json, &err), 0);
}

/* The core's part (as dispatcher/op_driver.c does it): send what the op asks
 * for, hand back the answer. drop_at > 0: the drop_at-th request is
 * answered by a dropped connection after the mock acted on it. Returns the
 * op's final code; on a retryable failure the caller calls drive again. */
/* drop_at: the request whose answer is lost, by its number, or
 * DROP_AT_CREATE for the SandboxCreate call wherever it falls (an image
 * still building adds ImageJoinStreaming calls before it). */
#define DROP_AT_CREATE (-1)

static int drive(struct run *r, struct fixture *f, op_fn op, int drop_at, struct pp_error *err)
{
	struct pp_http_resp resp;
	struct pp_error herr = {0};
	bool have = false;
	for (int n = 1; n < 50; n++) {
		pp_http_req_free(&r->io.req);
		memset(&r->io.req, 0, sizeof(r->io.req));
		r->io.resp = have ? &resp : NULL;
		r->io.resp_err = have ? &herr : NULL;
		pp_error_clear(err);
		int rc = op(&r->io, err);
		r->io.resp = NULL;
		if (have)
			pp_http_resp_free(&resp);
		have = false;
		if (rc != PP_STEP_SEND) {
			pp_http_req_free(&r->io.req);
			memset(&r->io.req, 0, sizeof(r->io.req));
			return rc;
		}
		bool drop = n == drop_at ||
			    (drop_at == DROP_AT_CREATE && strstr(r->io.req.url, "/SandboxCreate"));
		if (drop)
			set_drop(f, 1);
		pp_error_clear(&herr);
		pp_http_resp_init(&resp, r->io.req.max_response);
		int hrc = pp_exec_authorize(&r->io, &herr);
		if (!hrc)
			hrc = pp_http_perform(&r->io.req, &resp, &herr);
		r->io.resp_rc = hrc ? hrc : pp_http_classify(&r->io.req, &resp, &herr);
		have = true;
		if (drop)
			set_drop(f, 0);
	}
	return PP_EINVALID;
}

static enum pp_run_state wait_terminal(struct run *r, struct fixture *f)
{
	struct pp_error err = {0};
	for (int i = 0; i < 200; i++) {
		int rc = drive(r, f, r->p->status, 0, &err);
		if (rc)
			fail_msg("status: %d %s", rc, err.msg);
		if (pp_run_state_terminal(r->io.state_out))
			return r->io.state_out;
		usleep(20000);
	}
	fail_msg("run never finished");
	return PP_RUN_PENDING;
}

static const char job_ok[] =
	"{\"image\":\"python:3.12\",\"command\":\"python -c 'print(1)'\",\"env\":{\"A\":\"1\"},"
	"\"cpu\":0.5,\"memory\":256,\"gpu\":\"a10g:2\",\"timeout\":600,\"region\":\"us-east\","
	"\"cloud\":\"aws\",\"app_name\":\"pp-test\"}";

static void test_success(void **state)
{
	struct fixture *f = *state;
	struct run r;
	struct pp_error err = {0};
	run_init(&r, f, "11111111-2222-3333-4444-555555555555", job_ok);
	assert_int_equal(r.p->prepare(&r.io, &err), 0);
	assert_int_equal(drive(&r, f, r.p->submit, 0, &err), PP_STEP_DONE);
	assert_true(!strncmp(r.io.infra_id, "sb-", 3));
	assert_int_equal(wait_terminal(&r, f), PP_RUN_SUCCEEDED);
	assert_int_equal(r.io.exit_code, 0);
	assert_int_equal(pp_mock_count_get(f->mock, "modal_sandbox_creates",
					   "pp-11111111222233334444555555555555-1"),
			 1);
	assert_true(pp_cred_refreshes(f->cred) >= 1);
	run_free(&r);
}

static void test_failure_marker_in_env(void **state)
{
	struct fixture *f = *state;
	struct run r;
	struct pp_error err = {0};
	run_init(&r, f, "run-fail",
		 "{\"image\":\"alpine\",\"command\":[\"false\"],"
		 "\"env\":{\"PUSHPOOL_MOCK_FAIL\":\"1\"}}");
	assert_int_equal(r.p->prepare(&r.io, &err), 0);
	assert_int_equal(drive(&r, f, r.p->submit, 0, &err), PP_STEP_DONE);
	assert_int_equal(wait_terminal(&r, f), PP_RUN_FAILED);
	assert_int_equal(r.io.exit_code, 1);
	assert_non_null(strstr(r.io.message, "exited with code 1"));
	run_free(&r);
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	struct run r;
	struct pp_error err = {0};
	run_init(&r, f, "run-cancel",
		 "{\"image\":\"alpine\",\"command\":\"sleep 1\","
		 "\"env\":{\"PUSHPOOL_MOCK_NOSTART\":\"1\"}}");
	assert_int_equal(r.p->prepare(&r.io, &err), 0);
	assert_int_equal(drive(&r, f, r.p->submit, 0, &err), PP_STEP_DONE);
	assert_int_equal(drive(&r, f, r.p->status, 0, &err), PP_STEP_DONE);
	assert_int_equal(r.io.state_out, PP_RUN_RUNNING);
	assert_int_equal(drive(&r, f, r.p->cancel, 0, &err), PP_STEP_DONE);
	assert_int_equal(wait_terminal(&r, f), PP_RUN_CANCELLED);
	assert_int_equal(r.io.exit_code, 137);
	/* cancelling again (e.g. after a restart) is harmless */
	assert_int_equal(drive(&r, f, r.p->cancel, 0, &err), PP_STEP_DONE);
	run_free(&r);
}

/* POST one switch to the mock's /control/behaviours. */
static void set_behaviour(struct fixture *f, const char *json)
{
	char url[192];
	struct pp_http_req req;
	struct pp_http_resp resp;
	struct pp_error err = {0};
	snprintf(url, sizeof(url), "%s/control/behaviours", f->control);
	pp_http_req_init(&req, "POST", url);
	assert_int_equal(pp_http_req_set_header(&req, "Content-Type", "application/json"), 0);
	assert_int_equal(pp_http_req_body(&req, json, strlen(json)), 0);
	pp_http_resp_init(&resp, 65536);
	assert_int_equal(pp_http_perform(&req, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	pp_http_resp_free(&resp);
	pp_http_req_free(&req);
}

#define STORE	 "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
#define LIST_JOB "{\"image\":\"alpine\",\"command\":\"sleep 1\"}"
#define RUNNING_JOB                                                                                \
	"{\"image\":\"alpine\",\"command\":\"sleep 1\",\"env\":{\"PUSHPOOL_MOCK_NOSTART\":\"1\"}}"

/* The sweeper's list: SandboxList by our store's tag, page after page. */
static size_t list_ours(struct fixture *f, struct pp_remote_list *l)
{
	struct run lr;
	struct pp_error err = {0};
	pp_remote_list_free(l);
	run_init(&lr, f, "5c4b3a29-1807-4f6e-8d5c-4b3a29180700", LIST_JOB);
	lr.io.store_id = STORE;
	lr.io.listed = l;
	assert_int_equal(lr.p->prepare(&lr.io, &err), 0);
	if (drive(&lr, f, lr.p->list, 0, &err) != PP_STEP_DONE)
		fail_msg("list: %s", err.msg);
	run_free(&lr);
	return l->n;
}

/* list finds the running sandboxes of our store only (three of them: two
 * SandboxList pages at the mock's two a page), with their runs and store;
 * when the listing carries no tags (modal.list_untagged), the run comes
 * from the sandbox's name. remove terminates one; terminating it again is
 * no error. */
static void test_list_and_remove(void **state)
{
	struct fixture *f = *state;
	static const char *ids[] = {
		"6f1c2d3e-4a5b-4c6d-8e9f-a0b1c2d3e4f1",
		"6f1c2d3e-4a5b-4c6d-8e9f-a0b1c2d3e4f2",
		"6f1c2d3e-4a5b-4c6d-8e9f-a0b1c2d3e4f3",
		"6f1c2d3e-4a5b-4c6d-8e9f-a0b1c2d3e4f4",
	};
	struct run r[4];
	struct pp_error err = {0};
	for (int i = 0; i < 4; i++) {
		run_init(&r[i], f, ids[i], RUNNING_JOB);
		/* the last one is another store's */
		r[i].io.store_id = i < 3 ? STORE : "1b2c3d4e-5f60-4718-9a0b-1c2d3e4f5a6b";
		assert_int_equal(r[i].p->prepare(&r[i].io, &err), 0);
		if (drive(&r[i], f, r[i].p->submit, 0, &err) != PP_STEP_DONE)
			fail_msg("submit %d: %s", i, err.msg);
	}
	struct pp_remote_list l = {0};
	for (int untagged = 0; untagged < 2; untagged++) {
		if (untagged)
			set_behaviour(f, "{\"name\":\"modal.list_untagged\",\"on\":true}");
		assert_int_equal(list_ours(f, &l), 3);
		for (size_t k = 0; k < l.n; k++) {
			bool found = false;
			for (int i = 0; i < 3; i++)
				found |= !strcmp(l.v[k].run_id, ids[i]) &&
					 !strcmp(l.v[k].id, r[i].io.infra_id);
			assert_true(found);
			assert_string_equal(l.v[k].store_id, STORE);
			assert_true(l.v[k].created_ms > 0);
		}
	}
	struct run rm;
	run_init(&rm, f, "5c4b3a29-1807-4f6e-8d5c-4b3a29180701", LIST_JOB);
	rm.io.store_id = STORE;
	assert_int_equal(rm.p->prepare(&rm.io, &err), 0);
	pp_run_io_set_infra_id(&rm.io, NULL, "%s", r[0].io.infra_id);
	assert_int_equal(drive(&rm, f, rm.p->remove, 0, &err), PP_STEP_DONE);
	assert_int_equal(drive(&rm, f, rm.p->remove, 0, &err), PP_STEP_DONE);
	pp_run_io_set_infra_id(&rm.io, NULL, "sb-unknown");
	assert_int_equal(drive(&rm, f, rm.p->remove, 0, &err), PP_STEP_DONE);
	run_free(&rm);
	assert_int_equal(list_ours(f, &l), 2);
	pp_remote_list_free(&l);
	for (int i = 0; i < 4; i++)
		run_free(&r[i]);
}

/* The SandboxCreate answer is lost (request 4: lookup, app, image, create):
 * the retry meets ALREADY_EXISTS and adopts the sandbox, no duplicate. */
static void test_lost_create_answer_adopts(void **state)
{
	struct fixture *f = *state;
	struct run r;
	struct pp_error err = {0};
	run_init(&r, f, "run-lost",
		 "{\"image\":\"alpine\",\"command\":\"sleep 1\","
		 "\"env\":{\"PUSHPOOL_MOCK_NOSTART\":\"1\"}}");
	assert_int_equal(r.p->prepare(&r.io, &err), 0);
	int rc = drive(&r, f, r.p->submit, DROP_AT_CREATE, &err);
	assert_int_equal(rc, PP_ETRANSIENT);
	assert_true(pp_err_retryable(rc));
	assert_int_equal(drive(&r, f, r.p->submit, 0, &err), PP_STEP_DONE);
	assert_true(!strncmp(r.io.infra_id, "sb-", 3));
	char name[64];
	assert_int_equal(pp_derive_name(name, sizeof(name), "run-lost", 1, &err), 0);
	assert_int_equal(pp_mock_count_get(f->mock, "modal_sandbox_creates", name), 1);
	/* a second submission of the same run (fresh state) adopts too */
	struct run again;
	run_init(&again, f, "run-lost",
		 "{\"image\":\"alpine\",\"command\":\"sleep 1\","
		 "\"env\":{\"PUSHPOOL_MOCK_NOSTART\":\"1\"}}");
	assert_int_equal(again.p->prepare(&again.io, &err), 0);
	assert_int_equal(drive(&again, f, again.p->submit, 0, &err), PP_STEP_DONE);
	assert_string_equal(again.io.infra_id, r.io.infra_id);
	assert_int_equal(pp_mock_count_get(f->mock, "modal_sandbox_creates", name), 1);
	assert_int_equal(drive(&r, f, r.p->cancel, 0, &err), PP_STEP_DONE);
	run_free(&again);
	run_free(&r);
}

/* A submission that gave up after its SandboxCreate went out (the answer
 * lost) has no sandbox id: cleanup finds the sandbox by its name and
 * terminates it; a run whose sandbox reported a result cleans nothing. */
static void test_cleanup_after_failed_submission(void **state)
{
	struct fixture *f = *state;
	struct run r;
	struct pp_error err = {0};
	run_init(&r, f, "run-orphan",
		 "{\"image\":\"alpine\",\"command\":\"sleep 1\","
		 "\"env\":{\"PUSHPOOL_MOCK_NOSTART\":\"1\"}}");
	assert_int_equal(r.p->prepare(&r.io, &err), 0);
	assert_int_equal(drive(&r, f, r.p->submit, DROP_AT_CREATE, &err), PP_ETRANSIENT);
	assert_null(r.io.infra_id);
	assert_non_null(r.p->cleanup);
	assert_int_equal(drive(&r, f, r.p->cleanup, 0, &err), PP_STEP_DONE);
	assert_true(!strncmp(r.io.infra_id, "sb-", 3));
	/* Terminated, and not by a cancel of ours: the sandbox has ended. */
	assert_int_equal(wait_terminal(&r, f), PP_RUN_CRASHED);
	assert_int_equal(r.io.exit_code, 137);
	run_free(&r);

	struct run done;
	run_init(&done, f, "run-ended", job_ok);
	assert_int_equal(done.p->prepare(&done.io, &err), 0);
	assert_int_equal(drive(&done, f, done.p->submit, 0, &err), PP_STEP_DONE);
	assert_int_equal(wait_terminal(&done, f), PP_RUN_SUCCEEDED);
	done.io.resp = NULL;
	assert_int_equal(done.p->cleanup(&done.io, &err), PP_STEP_DONE);
	run_free(&done);
}

static void test_wrong_token(void **state)
{
	struct fixture *f = *state;
	struct run r;
	struct pp_error err = {0};
	struct pp_cred *bad = make_cred("ak-test", "as-wrong-secret");
	run_init(&r, f, "run-auth", "{\"image\":\"alpine\"}");
	r.io.cred = bad;
	assert_int_equal(r.p->prepare(&r.io, &err), 0);
	assert_int_equal(drive(&r, f, r.p->submit, 0, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "UNAUTHENTICATED"));
	assert_null(strstr(err.msg, "as-wrong-secret"));
	run_free(&r);
	pp_cred_free(bad);
}

static void test_throttled(void **state)
{
	struct fixture *f = *state;
	struct run r;
	struct pp_error err = {0};
	run_init(&r, f, "run-throttle", "{\"image\":\"alpine\"}");
	assert_int_equal(r.p->prepare(&r.io, &err), 0);
	assert_int_equal(
		pp_mock_set_faults(f->mock, "{\"api\":\"modal\",\"throttle_rate\":1}", &err), 0);
	int rc = drive(&r, f, r.p->submit, 0, &err);
	assert_int_equal(
		pp_mock_set_faults(f->mock, "{\"api\":\"modal\",\"throttle_rate\":0}", &err), 0);
	assert_int_equal(rc, PP_ETHROTTLED);
	assert_non_null(strstr(err.msg, "RESOURCE_EXHAUSTED"));
	/* the same step is simply sent again */
	assert_int_equal(drive(&r, f, r.p->submit, 0, &err), PP_STEP_DONE);
	run_free(&r);
}

/* A token pair in the job wins over the pool's credentials. */
static void test_job_credentials(void **state)
{
	struct fixture *f = *state;
	struct run r;
	struct pp_error err = {0};
	run_init(&r, f, "run-jobcred",
		 "{\"image\":\"alpine\",\"modal_credentials\":"
		 "{\"token_id\":\"ak-test\",\"token_secret\":\"as-job-wrong\"}}");
	assert_int_equal(r.p->prepare(&r.io, &err), 0);
	assert_int_equal(drive(&r, f, r.p->submit, 0, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "modal_credentials"));
	assert_null(strstr(err.msg, "as-job-wrong"));
	run_free(&r);

	struct pp_cred *bad = make_cred("ak-test", "as-pool-wrong");
	run_init(&r, f, "run-jobcred",
		 "{\"image\":\"alpine\",\"modal_credentials\":"
		 "{\"token_id\":\"ak-test\",\"token_secret\":\"as-test-secret\"}}");
	r.io.cred = bad;
	assert_int_equal(r.p->prepare(&r.io, &err), 0);
	assert_int_equal(drive(&r, f, r.p->submit, 0, &err), PP_STEP_DONE);
	assert_int_equal(wait_terminal(&r, f), PP_RUN_SUCCEEDED);
	run_free(&r);
	pp_cred_free(bad);
}

/* A run another dispatcher submitted is taken over as the loop does it:
 * prepared from its job, then restored from its sandbox id on that same
 * state. The restored run keeps the job's own token and frees what only
 * the sandbox's creation read (leaked before: make check's valgrind and
 * ASan runs see it). */
static void test_restore_after_prepare(void **state)
{
	struct fixture *f = *state;
	struct run r;
	struct pp_error err = {0};
	static const char job[] = "{\"image\":\"alpine\",\"modal_credentials\":"
				  "{\"token_id\":\"ak-test\",\"token_secret\":\"as-test-secret\"}}";
	run_init(&r, f, "run-taken-over", job);
	assert_int_equal(r.p->prepare(&r.io, &err), 0);
	assert_int_equal(drive(&r, f, r.p->submit, 0, &err), PP_STEP_DONE);
	char *sandbox = strdup(r.io.infra_id);
	run_free(&r);

	struct pp_cred *bad = make_cred("ak-test", "as-pool-wrong");
	run_init(&r, f, "run-taken-over", job);
	r.io.cred = bad;
	assert_int_equal(r.p->prepare(&r.io, &err), 0);
	assert_int_equal(pp_run_io_set_infra_id(&r.io, &err, "%s", sandbox), 0);
	assert_int_equal(r.p->restore(&r.io, &err), 0);
	assert_int_equal(wait_terminal(&r, f), PP_RUN_SUCCEEDED);
	run_free(&r);
	pp_cred_free(bad);
	free(sandbox);
}

static void test_prepare_rejects(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
		"{\"command\":\"x\"}",
		"{\"image\":\"a\",\"gpu\":\"A100:0\"}",
		"{\"image\":\"a\",\"cpu\":\"lots\"}",
		"{\"image\":\"a\",\"timeout\":100000}",
		"{\"image\":\"a\",\"env\":[1]}",
		"{\"image\":\"a\",\"secrets\":[\"\"]}",
		"{\"image\":\"a\",\"modal_credentials\":{\"token_id\":\"ak\"}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct run r;
		struct pp_error err = {0};
		run_init(&r, f, "run-bad", bad[i]);
		assert_int_equal(r.p->prepare(&r.io, &err), PP_EINVALID);
		assert_non_null(strstr(err.msg, "modal"));
		run_free(&r);
	}
}

/* ---- canned answers, no server: the op sees exactly the stream we build ---- */

/* The op driver's default cap on one call (pp_exec_policy.call_timeout_ms):
 * a longer req.timeout_ms is cut to it, so a deadline must fit under it. */
#define DRIVER_CALL_CAP_MS 30000L

/* Append one gRPC frame holding n bytes of p: uncompressed flag, big-endian
 * length, message. */
static void frame_bytes(struct pp_buf *body, const void *p, size_t n)
{
	uint8_t prefix[5] = {0, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
			     (uint8_t)n};
	assert_int_equal(pp_buf_append(body, prefix, sizeof(prefix)), 0);
	if (n)
		assert_int_equal(pp_buf_append(body, p, n), 0);
}

static void frame(struct pp_buf *body, const struct pp_buf *msg)
{
	frame_bytes(body, msg->data, msg->len);
}

/* Answer the request in r->io.req with HTTP 200, grpc-status and body;
 * returns the op's result, its next request (if any) left in r->io.req.
 * *sent receives the answered request (caller frees). */
static int answer(struct run *r, op_fn op, const char *grpc_status, const struct pp_buf *body,
		  struct pp_http_req *sent, struct pp_error *err)
{
	struct pp_http_resp resp;
	pp_http_resp_init(&resp, 0);
	resp.status = 200;
	assert_int_equal(pp_http_resp_add_header(&resp, "grpc-status", grpc_status), 0);
	if (body && body->len)
		assert_int_equal(pp_buf_append(&resp.body, body->data, body->len), 0);
	*sent = r->io.req;
	memset(&r->io.req, 0, sizeof(r->io.req));
	r->io.resp = &resp;
	r->io.resp_rc = 0;
	r->io.resp_err = NULL;
	pp_error_clear(err);
	int rc = op(&r->io, err);
	r->io.resp = NULL;
	pp_http_resp_free(&resp);
	return rc;
}

/* The RPC name of a request ("SandboxCreate"). */
static const char *rpc_of(const struct pp_http_req *req)
{
	const char *slash = strrchr(req->url, '/');
	return slash ? slash + 1 : "";
}

/* Fields of a request's message (after the 5-byte gRPC prefix). */
static void request_reader(const struct pp_http_req *req, struct pp_pb_reader *rd)
{
	assert_true(req->body_len >= 5);
	pp_pb_reader_init(rd, req->body + 5, req->body_len - 5);
}

/* Walk submit up to the first ImageJoinStreaming request: lookup (not
 * found), app, image (no result yet: still building). */
static void submit_until_image_join(struct run *r, struct pp_error *err)
{
	struct pp_buf m, body;
	struct pp_http_req sent;
	pp_buf_init(&m, 4096);
	pp_buf_init(&body, 8192);
	assert_int_equal(r->p->prepare(&r->io, err), 0);
	assert_int_equal(r->p->submit(&r->io, err), PP_STEP_SEND);
	assert_string_equal(rpc_of(&r->io.req), "SandboxGetFromName");
	assert_int_equal(answer(r, r->p->submit, "5", NULL, &sent, err), PP_STEP_SEND);
	pp_http_req_free(&sent);
	assert_string_equal(rpc_of(&r->io.req), "AppGetOrCreate");
	assert_int_equal(pp_pb_string(&m, 1, "ap-1"), 0);
	frame(&body, &m);
	assert_int_equal(answer(r, r->p->submit, "0", &body, &sent, err), PP_STEP_SEND);
	pp_http_req_free(&sent);
	assert_string_equal(rpc_of(&r->io.req), "ImageGetOrCreate");
	pp_buf_reset(&m);
	pp_buf_reset(&body);
	assert_int_equal(pp_pb_string(&m, 1, "im-1"), 0);
	frame(&body, &m);
	assert_int_equal(answer(r, r->p->submit, "0", &body, &sent, err), PP_STEP_SEND);
	pp_http_req_free(&sent);
	assert_string_equal(rpc_of(&r->io.req), "ImageJoinStreaming");
	pp_buf_free(&m);
	pp_buf_free(&body);
}

/* Appends a framed message whose field 1 is GenericResult{status,
 * exception (NULL: none)}: how ImageJoinStreaming and SandboxWait end. */
static void result_frame(struct pp_buf *body, uint64_t status, const char *exception)
{
	struct pp_buf m, res;
	pp_buf_init(&m, 4096);
	pp_buf_init(&res, 1024);
	assert_int_equal(pp_pb_varint(&res, 1, status), 0);
	if (exception)
		assert_int_equal(pp_pb_string(&res, 2, exception), 0);
	assert_int_equal(pp_pb_message(&m, 1, &res), 0);
	frame(body, &m);
	pp_buf_free(&m);
	pp_buf_free(&res);
}

/* Drives submit up to its SandboxCreate request, the image built. */
static void submit_until_create(struct run *r, struct pp_error *err)
{
	struct pp_http_req sent;
	struct pp_buf body;
	pp_buf_init(&body, 8192);
	submit_until_image_join(r, err);
	result_frame(&body, 1, NULL);
	assert_int_equal(answer(r, r->p->submit, "0", &body, &sent, err), PP_STEP_SEND);
	pp_http_req_free(&sent);
	assert_string_equal(rpc_of(&r->io.req), "SandboxCreate");
	pp_buf_free(&body);
}

/* A run restored onto sandbox sb-1, as after a restart. */
static void run_restored(struct run *r, struct fixture *f, const char *run_id, struct pp_error *err)
{
	run_init(r, f, run_id, "{\"image\":\"python:3.12\",\"command\":\"true\"}");
	r->io.cred = NULL;
	pp_run_io_set_infra_id(&r->io, NULL, "sb-1");
	assert_int_equal(r->p->restore(&r->io, err), 0);
}

/* The long-poll: the deadline of each ImageJoinStreaming call lies past the
 * timeout it asks the server to hold the call for, and survives the op
 * driver's cap; each new call resumes from the last entry id seen; a poll
 * that ends with no entry is asked again; the build result ends the wait. */
static void test_image_join_long_poll(void **state)
{
	struct fixture *f = *state;
	struct run r;
	struct pp_error err = {0};
	struct pp_http_req sent;
	struct pp_buf m, res, body;
	pp_buf_init(&m, 4096);
	pp_buf_init(&res, 1024);
	pp_buf_init(&body, 8192);
	run_init(&r, f, "run-image", "{\"image\":\"python:3.12\",\"command\":\"true\"}");
	r.io.cred = NULL;
	submit_until_image_join(&r, &err);

	struct pp_pb_reader rd;
	struct pp_pb_field fl;
	float poll_s = 0;
	char last[64] = "";
	request_reader(&r.io.req, &rd);
	while (pp_pb_next(&rd, &fl, &err) == 1) {
		if (fl.num == 2)
			poll_s = pp_pb_field_float(&fl);
		if (fl.num == 3)
			assert_int_equal(pp_pb_field_string(&fl, last, sizeof(last), &err), 0);
	}
	assert_true(poll_s > 0);
	const char *gt = pp_http_req_get_header(&r.io.req, "grpc-timeout");
	assert_non_null(gt);
	long deadline_ms = strtol(gt, NULL, 10);
	assert_true(deadline_ms > (long)(poll_s * 1000));
	assert_true(r.io.req.timeout_ms > (long)(poll_s * 1000));
	assert_true(r.io.req.timeout_ms <= DRIVER_CALL_CAP_MS);
	assert_string_equal(last, "");

	/* two log entries, no result: ask again from the last one */
	pp_buf_reset(&m);
	assert_int_equal(pp_pb_string(&m, 3, "entry-1"), 0);
	frame(&body, &m);
	pp_buf_reset(&m);
	assert_int_equal(pp_pb_string(&m, 3, "entry-2"), 0);
	frame(&body, &m);
	assert_int_equal(answer(&r, r.p->submit, "0", &body, &sent, &err), PP_STEP_SEND);
	pp_http_req_free(&sent);
	assert_string_equal(rpc_of(&r.io.req), "ImageJoinStreaming");
	request_reader(&r.io.req, &rd);
	while (pp_pb_next(&rd, &fl, &err) == 1)
		if (fl.num == 3)
			assert_int_equal(pp_pb_field_string(&fl, last, sizeof(last), &err), 0);
	assert_string_equal(last, "entry-2");

	/* nothing new during the poll: an OK stream without messages */
	assert_int_equal(answer(&r, r.p->submit, "0", NULL, &sent, &err), PP_STEP_SEND);
	pp_http_req_free(&sent);
	assert_string_equal(rpc_of(&r.io.req), "ImageJoinStreaming");

	/* the result: GenericResult{status=SUCCESS} */
	pp_buf_reset(&body);
	pp_buf_reset(&m);
	assert_int_equal(pp_pb_varint(&res, 1, 1), 0);
	assert_int_equal(pp_pb_message(&m, 1, &res), 0);
	assert_int_equal(pp_pb_string(&m, 3, "entry-3"), 0);
	frame(&body, &m);
	assert_int_equal(answer(&r, r.p->submit, "0", &body, &sent, &err), PP_STEP_SEND);
	pp_http_req_free(&sent);
	assert_string_equal(rpc_of(&r.io.req), "SandboxCreate");
	pp_http_req_free(&r.io.req);
	memset(&r.io.req, 0, sizeof(r.io.req));
	pp_buf_free(&m);
	pp_buf_free(&res);
	pp_buf_free(&body);
	run_free(&r);
}

/* api.proto marks SandboxCreateRequest.environment_name (3) deprecated:
 * it must not be sent, even with an environment configured. */
static void test_no_deprecated_fields(void **state)
{
	struct fixture *f = *state;
	struct run r;
	struct pp_error err = {0};
	run_init(&r, f, "run-fields",
		 "{\"image\":\"python:3.12\",\"command\":\"true\",\"modal_environment\":\"dev\"}");
	r.io.cred = NULL;
	submit_until_create(&r, &err);
	struct pp_pb_reader rd;
	struct pp_pb_field fl;
	int fields = 0;
	request_reader(&r.io.req, &rd);
	while (pp_pb_next(&rd, &fl, &err) == 1) {
		assert_int_not_equal(fl.num, 3);
		fields++;
	}
	assert_true(fields >= 3); /* app_id, definition, tags */
	pp_http_req_free(&r.io.req);
	memset(&r.io.req, 0, sizeof(r.io.req));
	run_free(&r);
}

/* Sandbox.timeout_secs (7) of the SandboxCreate a job of job_json sends
 * with the run's max_runtime; 0 when absent. */
static uint64_t sandbox_timeout(struct fixture *f, const char *job_json, double max_runtime)
{
	struct run r;
	struct pp_error err = {0};
	run_init(&r, f, "run-timeout", job_json);
	r.io.cred = NULL;
	r.io.max_runtime_s = max_runtime;
	submit_until_create(&r, &err);
	struct pp_pb_reader rd, sb;
	struct pp_pb_field fl;
	uint64_t timeout = 0;
	request_reader(&r.io.req, &rd);
	while (pp_pb_next(&rd, &fl, &err) == 1) {
		if (fl.num != 2 || fl.wire != PP_PB_LEN)
			continue;
		pp_pb_reader_init(&sb, fl.data, fl.len);
		while (pp_pb_next(&sb, &fl, &err) == 1)
			if (fl.num == 7)
				timeout = fl.u64;
	}
	pp_http_req_free(&r.io.req);
	memset(&r.io.req, 0, sizeof(r.io.req));
	run_free(&r);
	return timeout;
}

/* max_runtime is the sandbox's timeout when the job sets none, rounded up
 * to whole seconds; a job's own timeout is kept. */
static void test_max_runtime_sets_timeout(void **state)
{
	struct fixture *f = *state;
	const char *plain = "{\"image\":\"python:3.12\",\"command\":\"true\"}";
	assert_int_equal(sandbox_timeout(f, plain, 89.5), 90);
	assert_int_equal(sandbox_timeout(f, plain, 0), 0);
	assert_int_equal(
		sandbox_timeout(
			f, "{\"image\":\"python:3.12\",\"command\":\"true\",\"timeout\":600}", 90),
		600);
}

/* GENERIC_STATUS_TERMINATED (3) that pushpool did not ask for is not a
 * cancel: Modal or someone else stopped the sandbox. */
static void test_terminated_by_someone_else_is_a_crash(void **state)
{
	struct fixture *f = *state;
	struct run r;
	struct pp_error err = {0};
	struct pp_http_req sent;
	struct pp_buf body;
	pp_buf_init(&body, 8192);
	run_restored(&r, f, "run-term", &err);
	result_frame(&body, 3, "worker preempted");

	assert_int_equal(r.p->status(&r.io, &err), PP_STEP_SEND);
	assert_string_equal(rpc_of(&r.io.req), "SandboxWait");
	assert_int_equal(answer(&r, r.p->status, "0", &body, &sent, &err), PP_STEP_DONE);
	pp_http_req_free(&sent);
	assert_int_equal(r.io.state_out, PP_RUN_CRASHED);
	assert_non_null(strstr(r.io.message, "not by pushpool"));
	assert_non_null(strstr(r.io.message, "worker preempted"));

	/* after our own SandboxTerminate the same answer is a cancel */
	assert_int_equal(r.p->cancel(&r.io, &err), PP_STEP_SEND);
	assert_string_equal(rpc_of(&r.io.req), "SandboxTerminate");
	struct pp_buf empty;
	pp_buf_init(&empty, 64);
	frame_bytes(&empty, "", 0); /* SandboxTerminateResponse{} */
	assert_int_equal(answer(&r, r.p->cancel, "0", &empty, &sent, &err), PP_STEP_DONE);
	pp_http_req_free(&sent);
	assert_int_equal(r.p->status(&r.io, &err), PP_STEP_SEND);
	assert_int_equal(answer(&r, r.p->status, "0", &body, &sent, &err), PP_STEP_DONE);
	pp_http_req_free(&sent);
	assert_int_equal(r.io.state_out, PP_RUN_CANCELLED);
	assert_int_equal(r.io.exit_code, 137);
	pp_buf_free(&empty);
	pp_buf_free(&body);
	run_free(&r);
}

/* SandboxWait's GenericResult status names a start failure: INIT_FAILURE
 * (the container did not set up), MEMORY_MANAGER_EVICTION (the worker took
 * it away), INTERNAL_FAILURE; an exit, success or failure, is none. */
static void test_start_failure_classes(void **state)
{
	struct fixture *f = *state;
	static const struct {
		int status;
		enum pp_run_state state;
		enum pp_start_failure f;
	} cases[] = {
		{5, PP_RUN_CRASHED, PP_START_RESOURCE_INIT},
		{8, PP_RUN_CRASHED, PP_START_SPOT_INTERRUPTION},
		{6, PP_RUN_CRASHED, PP_START_OTHER},
		{2, PP_RUN_FAILED, PP_START_OK},
		{1, PP_RUN_SUCCEEDED, PP_START_OK},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;
		struct pp_error err = {0};
		struct pp_http_req sent;
		struct pp_buf body;
		pp_buf_init(&body, 8192);
		run_restored(&r, f, "run-class", &err);
		result_frame(&body, (uint64_t)cases[i].status, "mount failed");
		assert_int_equal(r.p->status(&r.io, &err), PP_STEP_SEND);
		assert_int_equal(answer(&r, r.p->status, "0", &body, &sent, &err), PP_STEP_DONE);
		pp_http_req_free(&sent);
		assert_int_equal(r.io.state_out, cases[i].state);
		assert_string_equal(pp_start_failure_name(r.io.start_failure),
				    pp_start_failure_name(cases[i].f));
		pp_buf_free(&body);
		run_free(&r);
	}
}

static void test_auth_metadata(void **state)
{
	struct pp_cred_conf conf;
	struct pp_modal_auth *m = NULL;
	struct pp_error err = {0};
	struct pp_http_req req;
	memset(&conf, 0, sizeof(conf));
	conf.token_id = (char *)"ak-1";
	conf.token_secret = (char *)"as-2-secret";
	assert_int_equal(pp_modal_auth_new(&conf, &m, &err), 0);
	pp_http_req_init(&req, "POST", "http://127.0.0.1:1/modal.client.ModalClient/AuthTokenGet");
	assert_int_equal(pp_modal_auth_apply(m, &req, &err), 0);
	assert_string_equal(pp_http_req_get_header(&req, "x-modal-client-version"), "1.0.0");
	/* as modal-go sends them (go/client.go): LIBMODAL_GO, not the retired 7 */
	assert_string_equal(pp_http_req_get_header(&req, "x-modal-client-type"), "9");
	assert_string_equal(pp_http_req_get_header(&req, "x-modal-libmodal-version"),
			    "modal-go/0.9.0");
	assert_string_equal(pp_http_req_get_header(&req, "x-modal-token-id"), "ak-1");
	assert_null(pp_http_req_get_header(&req, "x-modal-auth-token"));
	assert_string_equal(pp_modal_auth_server_url(m), "https://api.modal.com");
	pp_http_req_free(&req);
	pp_modal_auth_free(m);
	/* {"exp":1700000000} */
	assert_int_equal(pp_modal_jwt_exp("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.sig"),
			 1700000000);
	assert_int_equal(pp_modal_jwt_exp("not-a-jwt"), 0);
}

static void test_modal_toml(void **state)
{
	char path[] = "/tmp/pp-modal-tomlXXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *fp = fdopen(fd, "w");
	fputs("[default]\ntoken_id = \"ak-default\"\ntoken_secret = \"as-default\"\n\n"
	      "[work]\ntoken_id = \"ak-work\"\ntoken_secret = 'as-work'\nactive = true\n"
	      "server_url = \"http://127.0.0.1:9/\"\n",
	      fp);
	fclose(fp);
	struct pp_cred_conf conf;
	struct pp_modal_auth *m = NULL;
	struct pp_error err = {0};
	struct pp_buf id;
	memset(&conf, 0, sizeof(conf));
	conf.file = path;
	unsetenv("MODAL_SERVER_URL");
	assert_int_equal(pp_modal_auth_new(&conf, &m, &err), 0);
	assert_string_equal(pp_modal_auth_server_url(m), "http://127.0.0.1:9");
	pp_buf_init(&id, 256);
	/* identity proves the token against the server: nothing listens there */
	assert_int_equal(pp_modal_auth_identity(m, &id, &err), PP_ETRANSIENT);
	pp_buf_free(&id);
	pp_modal_auth_free(m);
	conf.profile = (char *)"default";
	assert_int_equal(pp_modal_auth_new(&conf, &m, &err), 0);
	assert_string_equal(pp_modal_auth_server_url(m), "https://api.modal.com");
	pp_modal_auth_free(m);
	conf.profile = (char *)"missing";
	assert_int_equal(pp_modal_auth_new(&conf, &m, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "no profile [missing]"));
	unlink(path);
}

/* Modal's RPCRetryPolicy{retry_after_secs} detail is its back-off; any
 * other detail, or an absurd value, says nothing. */
static void test_retry_policy_hint(void **state)
{
	(void)state;
	static const char url[] = "type.googleapis.com/modal.client.RPCRetryPolicy";
	struct pp_buf policy, huge;
	pp_buf_init(&policy, 64);
	pp_buf_init(&huge, 64);
	assert_int_equal(pp_pb_float(&policy, 1, 2.5f), 0);
	assert_int_equal(pp_pb_float(&huge, 1, 1e9f), 0);
	assert_int_equal(
		pp_modal_retry_hint(url, strlen(url), (const uint8_t *)policy.data, policy.len),
		2500);
	assert_int_equal(
		pp_modal_retry_hint(url, strlen(url), (const uint8_t *)huge.data, huge.len), 0);
	static const char other[] = "type.googleapis.com/google.rpc.DebugInfo";
	assert_int_equal(
		pp_modal_retry_hint(other, strlen(other), (const uint8_t *)policy.data, policy.len),
		0);
	pp_buf_free(&policy);
	pp_buf_free(&huge);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_success, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_marker_in_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_and_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_create_answer_adopts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_after_failed_submission, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wrong_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_throttled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_credentials, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prepare_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_after_prepare, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_join_long_poll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_deprecated_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_terminated_by_someone_else_is_a_crash, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_start_failure_classes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_runtime_sets_timeout, setup, teardown),
		cmocka_unit_test(test_retry_policy_hint),
		cmocka_unit_test(test_auth_metadata),
		cmocka_unit_test(test_modal_toml),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
