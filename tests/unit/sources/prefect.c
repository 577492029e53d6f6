/* The Prefect run source: timestamps, state mapping and block references
 * offline; then the source against the mock's Prefect API in-process
 * (claiming, arbitration, reports, cancellation, 429, auth). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dispatcher/config.h"
#include "lib/clock.h"
#include "lib/http.h"
#include "lib/log.h"
#include "sources/prefect_states.h"
#include "sources/source.h"
#include "store/store.h"
#include "mock/mock.h"
#include "tests/unit/http_server.h"

#define KEY "unit-prefect-key-42"

static void test_time(void **state)
{
	(void)state;
	int64_t ms = 0;
	assert_int_equal(pp_prefect_time_parse("2024-05-01T10:00:00.250000Z", &ms), 0);
	assert_int_equal(ms, 1714557600250LL);
	assert_int_equal(pp_prefect_time_parse("2024-05-01T12:00:00+02:00", &ms), 0);
	assert_int_equal(ms, 1714557600000LL);
	assert_int_equal(pp_prefect_time_parse("2024-05-01T10:00:00", &ms), 0);
	assert_int_equal(ms, 1714557600000LL);
	assert_int_equal(pp_prefect_time_parse("yesterday", &ms), PP_EINVALID);
	assert_int_equal(pp_prefect_time_parse("2024-13-01T10:00:00Z", &ms), PP_EINVALID);
	assert_int_equal(pp_prefect_time_parse("2024-05-01T10:00:00Q", &ms), PP_EINVALID);
	char buf[40];
	pp_prefect_time_format(1714557600250LL, buf, sizeof(buf));
	assert_string_equal(buf, "2024-05-01T10:00:00.250Z");
}

static void test_state_mapping(void **state)
{
	(void)state;
	/* What workers/base.py reports: CRASHED for failed infrastructure
	 * (non-zero exit, never started, disappeared), CANCELLED after a
	 * cancellation; never RUNNING or COMPLETED, which are the flow's. */
	assert_string_equal(pp_prefect_state_for(PP_ST_FAILED), "CRASHED");
	assert_string_equal(pp_prefect_state_for(PP_ST_CRASHED), "CRASHED");
	assert_string_equal(pp_prefect_state_for(PP_ST_DEAD), "CRASHED");
	assert_string_equal(pp_prefect_state_for(PP_ST_CANCELLED), "CANCELLED");
	assert_null(pp_prefect_state_for(PP_ST_SUCCEEDED));
	assert_null(pp_prefect_state_for(PP_ST_RUNNING));
	assert_null(pp_prefect_state_for(PP_ST_SUBMITTED));
	assert_null(pp_prefect_state_for(PP_ST_SCHEDULED));
}

static void test_report_wanted(void **state)
{
	(void)state;
	/* A flow that ended keeps its own state. */
	static const char *const final[] = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"};
	for (size_t i = 0; i < 4; i++) {
		assert_true(pp_prefect_state_final(final[i]));
		assert_false(pp_prefect_report_wanted("CRASHED", final[i]));
		assert_false(pp_prefect_report_wanted("CANCELLED", final[i]));
	}
	static const char *const live[] = {"PENDING", "RUNNING", "CANCELLING", "SCHEDULED",
					   "PAUSED"};
	for (size_t i = 0; i < 5; i++) {
		assert_false(pp_prefect_state_final(live[i]));
		assert_true(pp_prefect_report_wanted("CRASHED", live[i]));
		assert_true(pp_prefect_report_wanted("CANCELLED", live[i]));
	}
	assert_true(pp_prefect_report_wanted("CRASHED", NULL));
	assert_false(pp_prefect_report_wanted(NULL, "RUNNING"));
	/* Whether the run is still on the attempt a report is about (ended
	 * at 1000 on "job-1"). */
	assert_true(pp_prefect_same_attempt("RUNNING", 900, "job-1", "job-1", 1000));
	assert_true(pp_prefect_same_attempt("PENDING", 500, NULL, NULL, 1000));
	assert_true(pp_prefect_same_attempt("CANCELLING", 1500, "job-1", "job-1", 1000));
	assert_true(pp_prefect_same_attempt("RUNNING", 900, "job-1", NULL, 1000));
	/* The flow's own AwaitingRetry before the process died: still ours,
	 * crashed as a worker does; a SCHEDULED after the end is a rerun. */
	assert_true(pp_prefect_same_attempt("SCHEDULED", 500, NULL, "job-1", 1000));
	assert_false(pp_prefect_same_attempt("SCHEDULED", 1001, NULL, "job-1", 1000));
	assert_false(pp_prefect_same_attempt("RUNNING", 900, "job-2", "job-1", 1000));
	assert_false(pp_prefect_same_attempt("PENDING", 1001, NULL, "job-1", 1000));
	assert_false(pp_prefect_same_attempt("RUNNING", 1001, "job-1", "job-1", 1000));
}

static int fake_blocks(void *ud, const char *slug, const char *name, struct pp_json **data,
		       struct pp_error *err)
{
	int *calls = ud;
	(*calls)++;
	const char *text = NULL;
	if (!strcmp(slug, "aws-credentials") && !strcmp(name, "prod"))
		text = "{\"aws_access_key_id\":\"AKID\",\"region_name\":\"eu-west-1\",\"port\":5}";
	else if (!strcmp(slug, "secret") && !strcmp(name, "token"))
		text = "{\"value\":\"s3cr3t\"}";
	if (!text)
		return pp_fail(err, PP_ENOTFOUND, "block %s/%s: not found", slug, name);
	return pp_json_parse(text, strlen(text), NULL, data, err);
}

static struct pp_json *parse(const char *s)
{
	struct pp_json *j = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_json_parse(s, strlen(s), NULL, &j, &err), 0);
	return j;
}

static void test_blocks(void **state)
{
	(void)state;
	int calls = 0;
	struct pp_error err = {0};
	struct pp_json *t =
		parse("{\"job_configuration\":{\"aws_credentials\":\"{{ aws_credentials }}\","
		      "\"env\":{\"T\":\"Bearer {{ prefect.blocks.secret.token }}!\","
		      "\"P\":\"port {{prefect.blocks.aws-credentials.prod.port}}\"}},"
		      "\"variables\":{\"properties\":{\"aws_credentials\":"
		      "{\"default\":\"{{ prefect.blocks.aws-credentials.prod }}\"},"
		      "\"region\":{\"default\":\"{{ "
		      "prefect.blocks.aws-credentials.prod.region_name }}\"},"
		      "\"token\":{\"default\":\"{{ prefect.blocks.secret.token }}\"}}}}");
	assert_int_equal(pp_prefect_resolve_blocks(t, fake_blocks, &calls, &err), 0);
	assert_int_equal(calls, 5);
	const struct pp_json *creds =
		pp_json_path(t, "variables.properties.aws_credentials.default");
	assert_true(pp_json_is(creds, PP_JSON_OBJECT));
	assert_string_equal(pp_json_get_string(creds, "region_name"), "eu-west-1");
	assert_string_equal(pp_json_string(pp_json_path(t, "variables.properties.region.default")),
			    "eu-west-1");
	/* A {"value": x} block stands for x. */
	assert_string_equal(pp_json_string(pp_json_path(t, "variables.properties.token.default")),
			    "s3cr3t");
	assert_string_equal(pp_json_string(pp_json_path(t, "job_configuration.env.T")),
			    "Bearer s3cr3t!");
	assert_string_equal(pp_json_string(pp_json_path(t, "job_configuration.env.P")), "port 5");
	/* Ordinary placeholders are the renderer's business. */
	assert_string_equal(pp_json_string(pp_json_path(t, "job_configuration.aws_credentials")),
			    "{{ aws_credentials }}");
	pp_json_free(t);

	t = parse("{\"a\":[\"x {{ prefect.blocks.aws-credentials.prod }} y\"]}");
	assert_int_equal(pp_prefect_resolve_blocks(t, fake_blocks, &calls, &err), PP_EINVALID);
	/* The path is written out for the message only: exactly as before. */
	assert_string_equal(err.msg,
			    "$.a[0]: block reference inside text must name a string or number");
	pp_json_free(t);
	t = parse("[1,{\"k\":[0,{\"z\":\"{{ prefect.blocks.x.y }}\"}]}]");
	assert_int_equal(pp_prefect_resolve_blocks(t, fake_blocks, &calls, &err), PP_ENOTFOUND);
	assert_string_equal(err.msg, "$[1].k[1].z: block x/y: not found");
	pp_json_free(t);
	t = parse("{\"a\":{\"b\":\"{{ prefect.blocks.aws-credentials.dev }}\"}}");
	assert_int_equal(pp_prefect_resolve_blocks(t, fake_blocks, &calls, &err), PP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "$.a.b"));
	pp_json_free(t);
	t = parse("{\"a\":\"{{ prefect.blocks.aws-credentials.prod.nope }}\"}");
	assert_int_equal(pp_prefect_resolve_blocks(t, fake_blocks, &calls, &err), PP_EINVALID);
	pp_json_free(t);
	t = parse("{\"a\":\"{{ prefect.blocks.secret }}\"}");
	assert_int_equal(pp_prefect_resolve_blocks(t, fake_blocks, &calls, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "needs a type and a name"));
	pp_json_free(t);
}

static int fake_variables(void *ud, const char *name, struct pp_json **value, struct pp_error *err)
{
	int *calls = ud;
	(*calls)++;
	const char *text = NULL;
	if (!strcmp(name, "image"))
		text = "\"repo/flows:2\"";
	else if (!strcmp(name, "cpu"))
		text = "2048";
	else if (!strcmp(name, "flags"))
		text = "{\"debug\":true,\"level\":\"x\"}";
	else if (!strcmp(name, "down"))
		return pp_fail(err, PP_ETRANSIENT, "HTTP 503");
	*value = NULL;
	return text ? pp_json_parse(text, strlen(text), NULL, value, err) : 0;
}

/* {{ prefect.variables.NAME }} as resolve_variables does it: alone, the
 * value with its type ("" when missing); inside text, str() of it; other
 * placeholders left alone. */
static void test_variables(void **state)
{
	(void)state;
	int calls = 0;
	struct pp_error err = {0};
	struct pp_json *j = parse(
		"{\"image\":\"{{ prefect.variables.image "
		"}}\",\"cpu\":\"{{prefect.variables.cpu}}\","
		"\"env\":{\"A\":\"v={{ prefect.variables.cpu }}/{{ prefect.variables.flags }}\","
		"\"B\":\"{{ prefect.variables.nope }}\",\"C\":\"x{{ prefect.variables.nope }}y\","
		"\"D\":\"{{ prefect.blocks.secret.k }} {{ prefect.variables.image }}\"},"
		"\"list\":[\"{{ prefect.variables.flags }}\",7]}");
	assert_int_equal(pp_prefect_resolve_variables(j, fake_variables, &calls, &err), 0);
	assert_int_equal(calls, 8);
	assert_string_equal(pp_json_get_string(j, "image"), "repo/flows:2");
	assert_int_equal(pp_json_get_int(j, "cpu", 0), 2048);
	assert_string_equal(pp_json_string(pp_json_path(j, "env.A")),
			    "v=2048/{'debug': True, 'level': 'x'}");
	assert_string_equal(pp_json_string(pp_json_path(j, "env.B")), "");
	assert_string_equal(pp_json_string(pp_json_path(j, "env.C")), "xy");
	assert_string_equal(pp_json_string(pp_json_path(j, "env.D")),
			    "{{ prefect.blocks.secret.k }} repo/flows:2");
	assert_true(pp_json_get(pp_json_get(j, "list")->child, "debug")->b);
	pp_json_free(j);
	j = parse("{\"x\":[\"{{ prefect.variables.down }}\"]}");
	assert_int_equal(pp_prefect_resolve_variables(j, fake_variables, &calls, &err),
			 PP_ETRANSIENT);
	assert_string_equal(err.msg, "$.x[0]: HTTP 503");
	pp_json_free(j);
}

static int fake_documents(void *ud, const char *id, struct pp_json **data, struct pp_error *err)
{
	int *calls = ud;
	(*calls)++;
	if (strcmp(id, "0b9e6a2e-aaaa-4bbb-8ccc-000000000001"))
		return pp_fail(err, PP_ENOTFOUND, "block document %s: not found", id);
	const char *text = "{\"aws_access_key_id\":\"AKID\",\"aws_secret_access_key\":\"sk\","
			   "\"region_name\":\"eu-west-1\"}";
	return pp_json_parse(text, strlen(text), NULL, data, err);
}

/* {"$ref": {"block_document_id": ID}} objects take the block's data. */
static void test_documents(void **state)
{
	(void)state;
	int calls = 0;
	struct pp_error err = {0};
	struct pp_json *j =
		parse("{\"aws_credentials\":{\"$ref\":{\"block_document_id\":"
		      "\"0b9e6a2e-aaaa-4bbb-8ccc-000000000001\"}},\"nested\":[{\"a\":{\"$ref\":"
		      "{\"block_document_id\":\"0b9e6a2e-aaaa-4bbb-8ccc-000000000001\"}}}],"
		      "\"other\":{\"$ref\":\"#/definitions/AwsCredentials\"}}");
	assert_int_equal(pp_prefect_resolve_documents(j, fake_documents, &calls, &err), 0);
	assert_int_equal(calls, 2);
	assert_string_equal(pp_json_string(pp_json_path(j, "aws_credentials.region_name")),
			    "eu-west-1");
	assert_string_equal(pp_json_get_string(pp_json_get(pp_json_get(j, "nested")->child, "a"),
					       "aws_secret_access_key"),
			    "sk");
	assert_string_equal(pp_json_string(pp_json_path(j, "other.$ref")),
			    "#/definitions/AwsCredentials");
	pp_json_free(j);
	j = parse("{\"c\":{\"$ref\":{\"block_document_id\":\"gone\"}}}");
	assert_int_equal(pp_prefect_resolve_documents(j, fake_documents, &calls, &err),
			 PP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "$.c"));
	pp_json_free(j);
}

/* ---- against the mock ---- */

struct env {
	struct pp_mock *mock;
	char dir[64];
	char api[256];
	struct pp_config cfg;
	struct pp_store *store;
	struct pp_source *src;
	char deployment[64];
	char limited_deployment[64]; /* in pool "limited", concurrency_limit 1 */
	struct pp_http_multi *multi; /* the loop's handle (pp_source.multi) */
	unsigned long wakes;	     /* pp_source.wake calls */
};

static void woken(void *ud)
{
	((struct env *)ud)->wakes++;
}

/* As the loop does: the source's calls may stay on the loop's handle. */
static void attach(struct env *e)
{
	e->src->multi = e->multi;
	e->src->wake = woken;
	e->src->wake_ud = e;
}

/* Call the mock's Prefect API; returns the HTTP status, *out the body. */
static long call(struct env *e, const char *method, const char *path, const char *body,
		 const char *key, struct pp_json **out)
{
	char url[512];
	snprintf(url, sizeof(url), "%s%s", e->api, path);
	struct pp_http_req req;
	struct pp_http_resp resp;
	struct pp_error err = {0};
	pp_http_req_init(&req, method, url);
	pp_http_resp_init(&resp, 0);
	if (key)
		pp_http_req_header(&req, "Authorization", "Bearer %s", key);
	if (body)
		pp_http_req_body(&req, body, strlen(body));
	assert_int_equal(pp_http_perform(&req, &resp, &err), 0);
	long status = resp.status;
	if (out) {
		*out = NULL;
		if (resp.body.len)
			assert_int_equal(
				pp_json_parse(resp.body.data, resp.body.len, NULL, out, &err), 0);
	}
	pp_http_req_free(&req);
	pp_http_resp_free(&resp);
	return status;
}

static struct pp_json *run_of(struct env *e, const char *id)
{
	char path[128];
	struct pp_json *r = NULL;
	snprintf(path, sizeof(path), "/flow_runs/%s", id);
	assert_int_equal(call(e, "GET", path, NULL, KEY, &r), 200);
	return r;
}

static char *new_run_in(struct env *e, const char *deployment)
{
	char path[128];
	struct pp_json *r = NULL;
	snprintf(path, sizeof(path), "/deployments/%s/create_flow_run", deployment);
	assert_int_equal(call(e, "POST", path, "{\"job_variables\":{\"cpu\":1024}}", KEY, &r), 201);
	char *id = strdup(pp_json_get_string(r, "id"));
	pp_json_free(r);
	return id;
}

static char *new_run(struct env *e)
{
	return new_run_in(e, e->deployment);
}

static int env_setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct pp_mock_opts o;
	struct pp_error err = {0};
	setenv("PUSHPOOL_MOCK_PREFECT_KEY", KEY, 1);
	unsetenv("PUSHPOOL_MOCK_PREFECT_STATE");
	pp_mock_opts_defaults(&o);
	assert_int_equal(pp_mock_new(&o, &e->mock, &err), 0);
	assert_int_equal(pp_mock_start(e->mock, &err), 0);
	snprintf(e->api, sizeof(e->api), "%s/prefect/api", pp_mock_base_url(e->mock));
	snprintf(e->dir, sizeof(e->dir), "/tmp/pp-prefect-XXXXXX");
	assert_non_null(mkdtemp(e->dir));

	struct pp_json *r = NULL;
	assert_int_equal(call(e, "POST", "/work_pools/",
			      "{\"name\":\"ecs\",\"type\":\"ecs\",\"base_job_template\":"
			      "{\"job_configuration\":{\"cpu\":\"{{ cpu }}\"},\"variables\":"
			      "{\"properties\":{\"cpu\":{\"type\":\"integer\",\"default\":"
			      "\"{{ prefect.blocks.secret.cpu }}\"}}}}}",
			      KEY, NULL),
			 201);
	assert_int_equal(call(e, "POST", "/block_documents/",
			      "{\"name\":\"cpu\",\"block_type_slug\":\"secret\","
			      "\"data\":{\"value\":256}}",
			      KEY, NULL),
			 201);
	assert_int_equal(call(e, "POST", "/flows/", "{\"name\":\"f\"}", KEY, &r), 201);
	char body[256], flow_id[64];
	snprintf(flow_id, sizeof(flow_id), "%s", pp_json_get_string(r, "id"));
	pp_json_free(r);
	snprintf(body, sizeof(body),
		 "{\"name\":\"d\",\"flow_id\":\"%s\",\"work_pool_name\":\"ecs\","
		 "\"job_variables\":{\"memory\":2048}}",
		 flow_id);
	assert_int_equal(call(e, "POST", "/deployments/", body, KEY, &r), 201);
	snprintf(e->deployment, sizeof(e->deployment), "%s", pp_json_get_string(r, "id"));
	pp_json_free(r);
	assert_int_equal(
		call(e, "POST", "/work_pools/",
		     "{\"name\":\"limited\",\"type\":\"ecs:push\",\"concurrency_limit\":1}", KEY,
		     NULL),
		201);
	snprintf(body, sizeof(body),
		 "{\"name\":\"l\",\"flow_id\":\"%s\",\"work_pool_name\":\"limited\"}", flow_id);
	assert_int_equal(call(e, "POST", "/deployments/", body, KEY, &r), 201);
	snprintf(e->limited_deployment, sizeof(e->limited_deployment), "%s",
		 pp_json_get_string(r, "id"));
	pp_json_free(r);

	char conf[128], db[128];
	snprintf(conf, sizeof(conf), "%s/pushpool.conf", e->dir);
	snprintf(db, sizeof(db), "%s/pushpool.db", e->dir);
	FILE *f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f,
		"[dispatcher]\nstate_dir = %s\n\n[pool \"ecs\"]\ntype = ecs:push\n\n"
		"[pool \"limited\"]\ntype = ecs:push\n\n"
		"[source \"prefect\"]\napi_url = %s/\napi_key = %s\nlookahead_seconds = 5\n",
		e->dir, e->api, KEY);
	fclose(f);
	assert_int_equal(pp_config_init(&e->cfg, &err), 0);
	assert_int_equal(pp_config_load(&e->cfg, conf, &err), 0);
	assert_int_equal(pp_store_open(db, &e->store, &err), 0);
	assert_int_equal(pp_source_prefect.open(&e->cfg, &e->src, &err), 0);
	assert_non_null(e->src);
	assert_non_null(e->multi = pp_http_multi_new());
	attach(e);
	*state = e;
	return 0;
}

static int env_teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];
	e->src->ops->close(e->src);
	pp_http_multi_free(e->multi);
	pp_store_close(e->store);
	pp_config_free(&e->cfg);
	pp_mock_free(e->mock);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	assert_int_equal(system(cmd), 0);
	free(e);
	pp_secret_clear();
	return 0;
}

static int store_count(struct env *e)
{
	struct pp_run_rec *recs = NULL;
	int n = 0;
	struct pp_error err = {0};
	struct pp_run_filter f = {.state = -1};
	assert_int_equal(e->store->ops->list(e->store, &f, &recs, &n, &err), 0);
	pp_run_recs_free(recs, n);
	return n;
}

/* What the loop does once a turn: the reports go out (together); the
 * turns go on, waiting on the handle, until every answer is taken up. */
static void flush(struct env *e)
{
	e->src->ops->flush(e->src);
	while (pp_http_multi_pending(e->multi) > 0) {
		pp_http_multi_run(e->multi, 100);
		e->src->ops->flush(e->src);
	}
}

/* A barrier on the mock's Prefect API: the next count calls of action
 * are held until all have come (or timeout_ms passed). */
static void barrier(struct env *e, const char *action, int count)
{
	char url[256], body[256];
	struct pp_error err = {0};
	snprintf(url, sizeof(url), "%s/prefect/control/barrier", pp_mock_base_url(e->mock));
	snprintf(body, sizeof(body), "{\"action\":\"%s\",\"count\":%d,\"timeout_ms\":10000}",
		 action, count);
	struct pp_http_req req;
	struct pp_http_resp resp;
	pp_http_req_init(&req, "POST", url);
	pp_http_resp_init(&resp, 0);
	pp_http_req_header(&req, "Content-Type", "application/json");
	pp_http_req_body(&req, body, strlen(body));
	assert_int_equal(pp_http_perform(&req, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	pp_http_req_free(&req);
	pp_http_resp_free(&resp);
}

/* Every one of the barrier's count calls of action came while the others
 * were held: they were made together. */
static void passed_together(struct env *e, const char *action, int count)
{
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.barrier_passed", action),
			 (unsigned long)count);
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.barrier_timeouts", action), 0);
}

static void test_claim_report(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	char *a = new_run(e), *b = new_run(e);
	/* b already belongs to another worker. */
	char path[128];
	snprintf(path, sizeof(path), "/flow_runs/%s/set_state", b);
	assert_int_equal(call(e, "POST", path, "{\"state\":{\"type\":\"PENDING\"}}", KEY, NULL),
			 201);

	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	assert_int_equal(store_count(e), 1);
	struct pp_run_rec rec;
	assert_int_equal(e->store->ops->get(e->store, a, &rec, NULL, NULL, &err), 0);
	assert_string_equal(rec.source, "prefect");
	assert_string_equal(rec.source_ref, a);
	assert_string_equal(rec.pool, "ecs");
	assert_string_equal(rec.deployment, "d");
	assert_non_null(strstr(rec.job_variables, "1024"));
	struct pp_json *r = run_of(e, a);
	assert_string_equal(pp_json_get_string(r, "state_type"), "PENDING");
	pp_json_free(r);
	/* The next poll finds nothing new: no second claim. */
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	assert_int_equal(store_count(e), 1);
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.pending_accepted", a), 1);

	/* Template from the server, block resolved; deployment variables.
	 * The claim read the run: the render knows its deployment from that
	 * read and does not read it again (a round trip a run, in series). */
	unsigned long reads = pp_mock_count_get(e->mock, "requests", "prefect:GET flow_runs");
	const struct pp_json *tmpl = NULL;
	struct pp_json *dvars = NULL;
	uint64_t version = 0;
	assert_int_equal(e->src->ops->job_inputs(e->src, &rec, &tmpl, &version, &dvars, &err), 0);
	assert_true(version != 0);
	assert_int_equal(pp_mock_count_get(e->mock, "requests", "prefect:GET flow_runs"), reads);
	assert_int_equal(
		pp_json_get_int(pp_json_path(tmpl, "variables.properties.cpu"), "default", 0), 256);
	assert_int_equal(pp_json_get_int(dvars, "memory", 0), 2048);
	pp_json_free(dvars);

	assert_int_equal(
		e->src->ops->report(e->src, &rec, PP_ST_SUBMITTED, "arn:task/1", NULL, &err), 0);
	assert_int_equal(e->src->ops->report(e->src, &rec, PP_ST_RUNNING, "arn:task/1", NULL, &err),
			 0);
	assert_int_equal(e->src->ops->report(e->src, &rec, PP_ST_FAILED, "arn:task/1",
					     "FAILED (exit code 1)", &err),
			 0);
	/* Held until the turn's flush: nothing reached the server yet. */
	struct pp_json *held = run_of(e, a);
	assert_null(pp_json_get_string(held, "infrastructure_pid"));
	pp_json_free(held);
	flush(e);
	/* A non-zero exit is the infrastructure failing: CRASHED, as
	 * workers/base.py reports it; RUNNING is never proposed. */
	r = run_of(e, a);
	assert_string_equal(pp_json_get_string(r, "infrastructure_pid"), "arn:task/1");
	assert_string_equal(pp_json_get_string(r, "state_type"), "CRASHED");
	assert_string_equal(pp_json_string(pp_json_path(r, "state.message")),
			    "FAILED (exit code 1)");
	assert_int_equal(pp_json_get_int(r, "run_count", -1), 0);
	pp_json_free(r);
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.set_state", "RUNNING:ACCEPT"), 0);
	pp_run_rec_free(&rec);
	free(a);
	free(b);
}

/* The runs a poll lists are claimed together: their PENDING proposals
 * reach the server at once (the mock's barrier holds each until all three
 * have come; made one after the other, the first would wait out the
 * barrier's timeout alone), and each is recorded. */
static void test_claims_together(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	char *ids[3];
	for (int i = 0; i < 3; i++)
		ids[i] = new_run(e);
	barrier(e, "POST flow_runs/set_state", 3);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	passed_together(e, "POST flow_runs/set_state", 3);
	assert_int_equal(store_count(e), 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pp_mock_count_get(e->mock, "prefect.pending_accepted", ids[i]), 1);
		free(ids[i]);
	}
}

/* The runs of several pools are claimed together: the reads of a run of
 * "ecs" and one of "limited" pass a barrier of two (a pool after the
 * other, the first read would wait out its timeout alone), then both
 * proposals one of two. */
static void test_pools_claimed_together(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	char *a = new_run(e), *b = new_run_in(e, e->limited_deployment);
	barrier(e, "GET flow_runs", 2);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	passed_together(e, "GET flow_runs", 2);
	assert_int_equal(store_count(e), 2);
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.pending_accepted", a), 1);
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.pending_accepted", b), 1);
	free(a);
	free(b);
}

/* n new runs (ids[], the caller's to free), claimed by a poll and each
 * reported SUBMITTED on task "t-<i>"; the first FAILED too when asked. */
static void submitted_runs(struct env *e, char **ids, int n, bool first_fails)
{
	struct pp_error err = {0};
	for (int i = 0; i < n; i++)
		ids[i] = new_run(e);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	assert_int_equal(store_count(e), n);
	for (int i = 0; i < n; i++) {
		struct pp_run_rec rec;
		char task[32];
		snprintf(task, sizeof(task), "t-%d", i);
		assert_int_equal(e->store->ops->get(e->store, ids[i], &rec, NULL, NULL, &err), 0);
		assert_int_equal(
			e->src->ops->report(e->src, &rec, PP_ST_SUBMITTED, task, NULL, &err), 0);
		if (i == 0 && first_fails)
			assert_int_equal(e->src->ops->report(e->src, &rec, PP_ST_FAILED, task,
							     "exit code 137", &err),
					 0);
		pp_run_rec_free(&rec);
	}
}

/* A turn's reports go out together: the infrastructure_pid of three runs
 * pass a barrier of three (one after the other, the first would wait out
 * its timeout alone); a run's own reports keep their order (its CRASHED
 * follows its infrastructure_pid, in the flush's next round). */
static void test_reports_together(void **state)
{
	struct env *e = *state;
	char *ids[3];
	submitted_runs(e, ids, 3, true);
	barrier(e, "PATCH flow_runs", 3);
	flush(e);
	passed_together(e, "PATCH flow_runs", 3);
	for (int i = 0; i < 3; i++) {
		struct pp_json *r = run_of(e, ids[i]);
		char task[32];
		snprintf(task, sizeof(task), "t-%d", i);
		assert_string_equal(pp_json_get_string(r, "infrastructure_pid"), task);
		assert_string_equal(pp_json_get_string(r, "state_type"),
				    i == 0 ? "CRASHED" : "PENDING");
		pp_json_free(r);
		free(ids[i]);
	}
}

/* On the loop's handle a turn's flush sends the reports and returns: at
 * most PF_CALLS_AT_ONCE (16) calls on the wire, none answered yet, the
 * rest sent as answers free room, each answer waking the loop; a poll
 * meanwhile shares the limit and the wire with them. */
static void test_reports_without_waiting(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	enum { N = 20 };
	char *ids[N];
	submitted_runs(e, ids, N, false);
	unsigned long wakes = e->wakes;
	e->src->ops->flush(e->src);
	assert_int_equal(pp_http_multi_pending(e->multi), 16);
	assert_int_equal(pp_mock_count_get(e->mock, "requests", "prefect:PATCH flow_runs"), 0);
	assert_int_equal(e->wakes, wakes);
	char *late = new_run(e);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	assert_int_equal(store_count(e), N + 1);
	flush(e);
	assert_true(e->wakes >= wakes + N);
	assert_int_equal(pp_mock_count_get(e->mock, "requests", "prefect:PATCH flow_runs"), N);
	for (int i = 0; i < N; i++) {
		struct pp_json *r = run_of(e, ids[i]);
		char task[32];
		snprintf(task, sizeof(task), "t-%d", i);
		assert_string_equal(pp_json_get_string(r, "infrastructure_pid"), task);
		pp_json_free(r);
		free(ids[i]);
	}
	free(late);
}

static int turn_lost(void *ud)
{
	(void)ud;
	return 1;
}

/* The loop's turn lost (its commit failed) with reports left on the
 * handle: the close drives nothing there (the loop's own requests on it
 * would go out unrecorded), takes them off it and sends none. */
static void test_reports_after_a_lost_turn(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	char *ids[3];
	submitted_runs(e, ids, 3, false);
	e->src->ops->flush(e->src);
	assert_int_equal(pp_http_multi_pending(e->multi), 3);
	e->src->before_send = turn_lost;
	e->src->ops->close(e->src);
	assert_int_equal(pp_http_multi_pending(e->multi), 0);
	assert_int_equal(pp_mock_count_get(e->mock, "requests", "prefect:PATCH flow_runs"), 0);
	assert_int_equal(pp_source_prefect.open(&e->cfg, &e->src, &err), 0);
	attach(e);
	for (int i = 0; i < 3; i++)
		free(ids[i]);
}

/* A poll syncs with the server (heartbeats and pool reads, every pool's
 * together: a barrier of two passes the two pools' heartbeats) only when
 * a sync is due, every 30 s as Prefect's worker; the polls in between
 * only list the synced pools' flow runs. */
static void test_poll_syncs_together(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	barrier(e, "POST work_pools/heartbeat", 2);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	passed_together(e, "POST work_pools/heartbeat", 2);
	assert_int_equal(pp_mock_count_get(e->mock, "requests", "prefect:GET work_pools"), 2);
	assert_int_equal(pp_mock_count_get(e->mock, "requests",
					   "prefect:POST work_pools/get_scheduled_flow_runs"),
			 2);
	char *a = new_run(e);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	assert_int_equal(store_count(e), 1);
	assert_int_equal(
		pp_mock_count_get(e->mock, "requests", "prefect:POST work_pools/heartbeat"), 2);
	assert_int_equal(pp_mock_count_get(e->mock, "requests", "prefect:GET work_pools"), 2);
	assert_int_equal(pp_mock_count_get(e->mock, "requests",
					   "prefect:POST work_pools/get_scheduled_flow_runs"),
			 4);
	free(a);
}

/* The cancellation check's filters go out together: with 201 runs of the
 * source live in the store, the CANCELLING page and the two pages of live
 * runs asked for as CANCELLED pass a barrier of three. */
static void test_cancellation_pages_together(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0); /* reconciled */
	for (int i = 0; i < 201; i++) {
		struct pp_run_rec rec = {0};
		assert_int_equal(pp_uuid4(rec.id), 0);
		snprintf(rec.pool, sizeof(rec.pool), "ecs");
		rec.name = strdup("r");
		rec.deployment = strdup("d");
		rec.source = strdup("prefect");
		rec.source_ref = strdup(rec.id);
		rec.state = PP_ST_SCHEDULED;
		assert_int_equal(e->store->ops->insert(e->store, &rec, &err), 0);
		pp_run_rec_free(&rec);
	}
	barrier(e, "POST flow_runs", 3);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	passed_together(e, "POST flow_runs", 3);
}

/* A PENDING proposal sent twice (libcurl resends one whose kept connection
 * closed before the answer) is answered as the duplicate of an applied
 * transition: REJECT with the run's state, which carries the proposal's
 * transition_id, and the claim is ours. Another worker's PENDING over it
 * is aborted and not ours; neither is a REJECT for another transition. */
static void test_claim_resent(void **state)
{
	struct env *e = *state;
	char *a = new_run(e);
	char path[128];
	const char *body = "{\"state\":{\"type\":\"PENDING\",\"state_details\":"
			   "{\"transition_id\":\"7d3c1f0e-2b4a-4c5d-9e8f-0a1b2c3d4e5f\"}}}";
	snprintf(path, sizeof(path), "/flow_runs/%s/set_state", a);
	struct pp_json *first = NULL, *again = NULL, *other = NULL;
	assert_int_equal(call(e, "POST", path, body, KEY, &first), 201);
	assert_true(pp_prefect_claim_ours(first, "7d3c1f0e-2b4a-4c5d-9e8f-0a1b2c3d4e5f"));
	assert_int_equal(call(e, "POST", path, body, KEY, &again), 200);
	assert_string_equal(pp_json_get_string(again, "status"), "REJECT");
	assert_true(pp_prefect_claim_ours(again, "7d3c1f0e-2b4a-4c5d-9e8f-0a1b2c3d4e5f"));
	assert_false(pp_prefect_claim_ours(again, "0f9e8d7c-6b5a-4493-8271-605f4e3d2c1b"));
	assert_int_equal(call(e, "POST", path,
			      "{\"state\":{\"type\":\"PENDING\",\"state_details\":"
			      "{\"transition_id\":\"0f9e8d7c-6b5a-4493-8271-605f4e3d2c1b\"}}}",
			      KEY, &other),
			 200);
	assert_string_equal(pp_json_get_string(other, "status"), "ABORT");
	assert_false(pp_prefect_claim_ours(other, "0f9e8d7c-6b5a-4493-8271-605f4e3d2c1b"));
	pp_json_free(first);
	pp_json_free(again);
	pp_json_free(other);
	free(a);
}

static void test_crashed_and_cancelling(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	char *a = new_run(e), *b = new_run(e);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	struct pp_run_rec rec;
	/* Submission refused for good, never submitted: Crashed with the reason. */
	assert_int_equal(e->store->ops->get(e->store, a, &rec, NULL, NULL, &err), 0);
	assert_int_equal(e->src->ops->report(e->src, &rec, PP_ST_FAILED, NULL,
					     "submission rejected: bad subnet", &err),
			 0);
	pp_run_rec_free(&rec);
	flush(e);
	struct pp_json *r = run_of(e, a);
	assert_string_equal(pp_json_get_string(r, "state_type"), "CRASHED");
	assert_string_equal(pp_json_string(pp_json_path(r, "state.message")),
			    "submission rejected: bad subnet");
	pp_json_free(r);

	/* b is still SCHEDULED in the store: cancelled at once, reported. */
	char path[128];
	snprintf(path, sizeof(path), "/flow_runs/%s/set_state", b);
	assert_int_equal(call(e, "POST", path,
			      "{\"state\":{\"type\":\"CANCELLING\"},\"force\":true}", KEY, NULL),
			 201);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	flush(e); /* the loop's turn after the poll */
	assert_int_equal(e->store->ops->get(e->store, b, &rec, NULL, NULL, &err), 0);
	assert_int_equal(rec.state, PP_ST_CANCELLED);
	pp_run_rec_free(&rec);
	r = run_of(e, b);
	assert_string_equal(pp_json_get_string(r, "state_type"), "CANCELLED");
	pp_json_free(r);
	free(a);
	free(b);
}

static void test_throttled_and_outage(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	char *a = new_run(e);
	assert_int_equal(
		pp_mock_set_faults(e->mock,
				   "{\"api\":\"prefect\",\"throttle_rate\":1,\"retry_after\":2}",
				   &err),
		0);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), PP_ETHROTTLED);
	assert_int_equal(err.retry_after_ms, 2000);
	assert_non_null(strstr(err.msg, "HTTP 429"));
	assert_int_equal(store_count(e), 0);
	/* Inside the Retry-After window the server is left alone. */
	unsigned long before = pp_mock_count_get(e->mock, "injected", "prefect.throttled");
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	assert_int_equal(pp_mock_count_get(e->mock, "injected", "prefect.throttled"), before);
	assert_int_equal(
		pp_mock_set_faults(e->mock, "{\"api\":\"prefect\",\"throttle_rate\":0}", &err), 0);
	sleep(2);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	assert_int_equal(store_count(e), 1);

	/* Reports made while the server fails wait in order, then arrive. */
	struct pp_run_rec rec;
	assert_int_equal(e->store->ops->get(e->store, a, &rec, NULL, NULL, &err), 0);
	assert_int_equal(
		pp_mock_set_faults(e->mock, "{\"api\":\"prefect\",\"error_rate\":1}", &err), 0);
	assert_int_equal(e->src->ops->report(e->src, &rec, PP_ST_SUBMITTED, "t-1", NULL, &err), 0);
	assert_int_equal(
		e->src->ops->report(e->src, &rec, PP_ST_FAILED, "t-1", "exit code 137", &err), 0);
	flush(e);
	assert_int_equal(
		pp_mock_set_faults(e->mock, "{\"api\":\"prefect\",\"error_rate\":0}", &err), 0);
	/* After a failed delivery the turns' flushes leave the server alone:
	 * the reports wait for the next poll. */
	unsigned long patches = pp_mock_count_get(e->mock, "requests", "prefect:PATCH flow_runs");
	flush(e);
	assert_int_equal(pp_mock_count_get(e->mock, "requests", "prefect:PATCH flow_runs"),
			 patches);
	struct pp_json *r = run_of(e, a);
	assert_string_equal(pp_json_get_string(r, "state_type"), "PENDING");
	pp_json_free(r);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	r = run_of(e, a);
	assert_string_equal(pp_json_get_string(r, "state_type"), "CRASHED");
	assert_string_equal(pp_json_get_string(r, "infrastructure_pid"), "t-1");
	pp_json_free(r);
	pp_run_rec_free(&rec);
	free(a);
}

/* A pool at its concurrency limit answers WAIT: the run stays SCHEDULED
 * upstream and is claimed once a slot frees. */
static void test_wait(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	char *a = new_run_in(e, e->limited_deployment), *b = new_run_in(e, e->limited_deployment);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	assert_int_equal(store_count(e), 1);
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.set_state", "PENDING:WAIT"), 1);
	struct pp_run_rec rec;
	const char *first = e->store->ops->get(e->store, a, &rec, NULL, NULL, &err) ? b : a;
	if (first == b)
		assert_int_equal(e->store->ops->get(e->store, b, &rec, NULL, NULL, &err), 0);
	/* The flow ends the first run itself (pushpool reports nothing for
	 * an exit 0), freeing the slot. */
	char path[128];
	snprintf(path, sizeof(path), "/flow_runs/%s/set_state", first);
	assert_int_equal(call(e, "POST", path, "{\"state\":{\"type\":\"RUNNING\"}}", KEY, NULL),
			 201);
	assert_int_equal(call(e, "POST", path, "{\"state\":{\"type\":\"COMPLETED\"}}", KEY, NULL),
			 201);
	assert_int_equal(e->src->ops->report(e->src, &rec, PP_ST_SUCCEEDED, "t-1", NULL, &err), 0);
	pp_run_rec_free(&rec);
	flush(e);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	assert_int_equal(store_count(e), 2);
	free(a);
	free(b);
}

static void propose(struct env *e, const char *id, const char *state_json, bool force,
		    const char *want_status, const char *want_type);

static void test_reconcile(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	char *a = new_run(e), *b = new_run(e), *d = new_run(e);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	/* a ended here but its reports died with the process; so did d's,
	 * but d was rerun since (below). */
	struct pp_run_rec *recs = NULL;
	int n = 0;
	assert_int_equal(e->store->ops->claim(e->store, "ecs", "t", 60000, 10, &recs, &n, &err), 0);
	assert_int_equal(n, 3);
	for (int i = 0; i < n; i++) {
		if (strcmp(recs[i].id, a) && strcmp(recs[i].id, d))
			continue;
		struct pp_run_update u = {.state = PP_ST_FAILED,
					  .infra_id = "t-9",
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  .error = "",
					  .release_lease = true};
		assert_int_equal(
			e->store->ops->update(e->store, recs[i].id, recs[i].fence, &u, &err), 0);
	}
	pp_run_recs_free(recs, n);
	/* d is retried from the UI and taken by another worker. */
	usleep(20 * 1000);
	propose(e, d, "{\"type\":\"SCHEDULED\"}", true, "ACCEPT", "SCHEDULED");
	propose(e, d, "{\"type\":\"PENDING\"}", false, "ACCEPT", "PENDING");
	/* c was claimed by a worker that died before recording it. */
	char *c = new_run(e), path[128];
	snprintf(path, sizeof(path), "/flow_runs/%s/set_state", c);
	assert_int_equal(call(e, "POST", path, "{\"state\":{\"type\":\"PENDING\"}}", KEY, NULL),
			 201);

	e->src->ops->close(e->src);
	e->cfg.prefect.claim_timeout = 1;
	assert_int_equal(pp_source_prefect.open(&e->cfg, &e->src, &err), 0);
	attach(e);
	usleep(1100 * 1000);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	flush(e);
	struct pp_json *r = run_of(e, a);
	assert_string_equal(pp_json_get_string(r, "state_type"), "CRASHED");
	assert_string_equal(pp_json_get_string(r, "infrastructure_pid"), "t-9");
	pp_json_free(r);
	r = run_of(e, b);
	assert_string_equal(pp_json_get_string(r, "state_type"), "PENDING");
	pp_json_free(r);
	/* d's old outcome does not land on its rerun; that rerun's claim
	 * (another worker's, never recorded) expired, and d is taken over
	 * here as its next attempt. */
	r = run_of(e, d);
	assert_string_equal(pp_json_get_string(r, "state_type"), "PENDING");
	assert_string_equal(pp_json_string(pp_json_path(r, "state.name")), "Reclaimed");
	pp_json_free(r);
	struct pp_run_rec rec;
	assert_int_equal(e->store->ops->get(e->store, d, &rec, NULL, NULL, &err), 0);
	assert_int_equal(rec.state, PP_ST_SCHEDULED);
	assert_int_equal(rec.rerun, 1);
	pp_run_rec_free(&rec);
	free(d);
	/* c's expired claim is taken over with a compare-and-set (a named
	 * PENDING, which the server accepts only over PENDING) and recorded
	 * here. */
	r = run_of(e, c);
	assert_string_equal(pp_json_get_string(r, "state_type"), "PENDING");
	assert_string_equal(pp_json_string(pp_json_path(r, "state.name")), "Reclaimed");
	assert_non_null(strstr(pp_json_string(pp_json_path(r, "state.message")), "taken over"));
	pp_json_free(r);
	assert_int_equal(store_count(e), 4);
	assert_int_equal(e->store->ops->get(e->store, c, &rec, NULL, NULL, &err), 0);
	assert_int_equal(rec.state, PP_ST_SCHEDULED);
	assert_int_equal(rec.rerun, 0);
	pp_run_rec_free(&rec);
	free(a);
	free(b);
	free(c);
}

/* The store's get, counted: what the reconciliation reads run by run. */
static const struct pp_store_ops *real_ops;
static int gets;
static int counted_get(struct pp_store *s, const char *id, struct pp_run_rec *out,
		       struct pp_run_event **ev, int *nev, struct pp_error *err)
{
	gets++;
	return real_ops->get(s, id, out, ev, nev, err);
}

/* The reconciliation reads the runs the store has in flight as ids, at
 * once, and looks up one by one only the server's runs among the rest:
 * with RUNS claimed here and PENDING on the server, a restarted source's
 * first poll (which reconciles) reads none of them whole. */
static void test_reconcile_reads_live_runs_as_ids(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	enum { RUNS = 3 };
	char *ids[RUNS];
	for (int i = 0; i < RUNS; i++)
		ids[i] = new_run(e);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	assert_int_equal(store_count(e), RUNS);
	e->src->ops->close(e->src);
	assert_int_equal(pp_source_prefect.open(&e->cfg, &e->src, &err), 0);
	attach(e);
	struct pp_store_ops counting = *e->store->ops;
	counting.get = counted_get;
	real_ops = e->store->ops;
	e->store->ops = &counting;
	gets = 0;
	int rc = e->src->ops->poll(e->src, e->store, &err);
	e->store->ops = real_ops;
	assert_int_equal(rc, 0);
	assert_int_equal(gets, 0);
	for (int i = 0; i < RUNS; i++) {
		struct pp_json *r = run_of(e, ids[i]);
		assert_string_equal(pp_json_get_string(r, "state_type"), "PENDING");
		pp_json_free(r);
		free(ids[i]);
	}
}

/* Finish a stored run (claimed by "t") as state on infrastructure infra. */
static void finish_rec(struct env *e, const char *id, enum pp_store_state st, const char *infra)
{
	struct pp_run_rec *recs = NULL;
	int n = 0;
	struct pp_error err = {0};
	assert_int_equal(e->store->ops->claim(e->store, NULL, "t", 60000, 100, &recs, &n, &err), 0);
	for (int i = 0; i < n; i++) {
		if (strcmp(recs[i].id, id))
			continue;
		struct pp_run_update u = {.state = st,
					  .infra_id = infra,
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  .release_lease = true};
		assert_int_equal(
			e->store->ops->update(e->store, recs[i].id, recs[i].fence, &u, &err), 0);
	}
	pp_run_recs_free(recs, n);
}

/* A run finished here that Prefect offers again as SCHEDULED (a retry from
 * the UI: a forced AwaitingRetry) is claimed again as a new attempt, and
 * the old attempt's outcome, still queued during an outage, never reaches
 * the rerun. */
static void test_rerun(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	char *a = new_run(e);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	finish_rec(e, a, PP_ST_CRASHED, "t-1");
	struct pp_run_rec rec;
	assert_int_equal(e->store->ops->get(e->store, a, &rec, NULL, NULL, &err), 0);
	/* Its CRASHED report waits out an outage... */
	assert_int_equal(
		pp_mock_set_faults(e->mock, "{\"api\":\"prefect\",\"error_rate\":1}", &err), 0);
	assert_int_equal(
		e->src->ops->report(e->src, &rec, PP_ST_CRASHED, "t-1", "exit code 137", &err), 0);
	pp_run_rec_free(&rec);
	flush(e);
	assert_int_equal(
		pp_mock_set_faults(e->mock, "{\"api\":\"prefect\",\"error_rate\":0}", &err), 0);
	/* ...during which the run is retried from the UI. */
	usleep(20 * 1000);
	propose(e, a, "{\"type\":\"SCHEDULED\",\"name\":\"AwaitingRetry\"}", true, "ACCEPT",
		"SCHEDULED");
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	struct pp_json *r = run_of(e, a);
	assert_string_equal(pp_json_get_string(r, "state_type"), "PENDING");
	pp_json_free(r);
	assert_int_equal(e->store->ops->get(e->store, a, &rec, NULL, NULL, &err), 0);
	assert_int_equal(rec.state, PP_ST_SCHEDULED);
	assert_int_equal(rec.rerun, 1);
	assert_null(rec.infra_id);
	pp_run_rec_free(&rec);
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.pending_accepted", a), 2);
	/* Polled again, nothing changes: the rerun is live here. */
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.pending_accepted", a), 2);
	r = run_of(e, a);
	assert_string_equal(pp_json_get_string(r, "state_type"), "PENDING");
	pp_json_free(r);
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.set_state", "CRASHED:ACCEPT"), 0);

	/* A run finished here whose SCHEDULED state is older than its end (a
	 * stale offer) is left alone. */
	char *b = new_run(e);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	propose(e, b, "{\"type\":\"SCHEDULED\"}", true, "ACCEPT", "SCHEDULED");
	usleep(20 * 1000);
	finish_rec(e, b, PP_ST_CANCELLED, NULL);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.pending_accepted", b), 1);

	/* The flow failed with a retry left (AwaitingRetry, SCHEDULED) and its
	 * process died before retrying: CRASHED is reported over that, as a
	 * worker does, instead of a retry nobody will make. */
	char path[128];
	struct pp_json *res = NULL;
	snprintf(path, sizeof(path), "/deployments/%s/create_flow_run", e->deployment);
	assert_int_equal(call(e, "POST", path, "{\"empirical_policy\":{\"retries\":1}}", KEY, &res),
			 201);
	char *c = strdup(pp_json_get_string(res, "id"));
	pp_json_free(res);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	propose(e, c, "{\"type\":\"RUNNING\"}", false, "ACCEPT", "RUNNING");
	propose(e, c, "{\"type\":\"FAILED\"}", false, "REJECT", "SCHEDULED");
	usleep(20 * 1000);
	finish_rec(e, c, PP_ST_FAILED, "t-3");
	assert_int_equal(e->store->ops->get(e->store, c, &rec, NULL, NULL, &err), 0);
	assert_int_equal(
		e->src->ops->report(e->src, &rec, PP_ST_FAILED, "t-3", "exit code 137", &err), 0);
	pp_run_rec_free(&rec);
	flush(e);
	r = run_of(e, c);
	assert_string_equal(pp_json_get_string(r, "state_type"), "CRASHED");
	pp_json_free(r);
	free(a);
	free(b);
	free(c);
}

/* Cancellation whatever the server's state has become: a run the flow's
 * supervisor (or the server's CANCELLING timeout) set CANCELLED before
 * pushpool saw CANCELLING still has its job stopped here; CANCELLING runs
 * are read page after page. */
static void test_cancelled_first(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	char *a = new_run(e);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	struct pp_run_rec *recs = NULL;
	int n = 0;
	assert_int_equal(e->store->ops->claim(e->store, NULL, "t", 60000, 10, &recs, &n, &err), 0);
	assert_int_equal(n, 1);
	struct pp_run_update u = {
		.state = PP_ST_RUNNING, .infra_id = "t-7", .attempt = 1, .next_attempt_ms = -1};
	assert_int_equal(e->store->ops->update(e->store, a, recs[0].fence, &u, &err), 0);
	pp_run_recs_free(recs, n);
	propose(e, a, "{\"type\":\"RUNNING\"}", false, "ACCEPT", "RUNNING");
	propose(e, a, "{\"type\":\"CANCELLING\"}", true, "ACCEPT", "CANCELLING");
	propose(e, a, "{\"type\":\"CANCELLED\"}", false, "ACCEPT", "CANCELLED");
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	struct pp_run_rec rec;
	assert_int_equal(e->store->ops->get(e->store, a, &rec, NULL, NULL, &err), 0);
	assert_true(rec.cancel_requested);
	assert_int_equal(rec.state, PP_ST_RUNNING); /* the loop stops its job */
	char(*ids)[PP_ID_LEN] = NULL;
	assert_int_equal(e->store->ops->cancel_requests(e->store, "t", &ids, &n, &err), 0);
	assert_int_equal(n, 1);
	free(ids);
	pp_run_rec_free(&rec);
	free(a);

	/* More CANCELLING runs than one page holds (200): every one of
	 * ours, not yet submitted, is cancelled and reported. */
	enum { N = 205 };
	char *ids2[N];
	for (int i = 0; i < N; i++)
		ids2[i] = new_run(e);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	for (int i = 0; i < N; i++) {
		char path[128];
		snprintf(path, sizeof(path), "/flow_runs/%s/set_state", ids2[i]);
		assert_int_equal(call(e, "POST", path,
				      "{\"state\":{\"type\":\"CANCELLING\"},\"force\":true}", KEY,
				      NULL),
				 201);
	}
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	flush(e);
	for (int i = 0; i < N; i++) {
		assert_int_equal(e->store->ops->get(e->store, ids2[i], &rec, NULL, NULL, &err), 0);
		assert_int_equal(rec.state, PP_ST_CANCELLED);
		pp_run_rec_free(&rec);
		struct pp_json *r = run_of(e, ids2[i]);
		assert_string_equal(pp_json_get_string(r, "state_type"), "CANCELLED");
		pp_json_free(r);
		free(ids2[i]);
	}
}

/* A set_state proposal through the mock's API: the answer's status and
 * the run's state type afterwards must be the ones wanted. */
static void propose(struct env *e, const char *id, const char *state_json, bool force,
		    const char *want_status, const char *want_type)
{
	char path[128], body[512];
	struct pp_json *res = NULL;
	snprintf(path, sizeof(path), "/flow_runs/%s/set_state", id);
	snprintf(body, sizeof(body), "{\"state\":%s,\"force\":%s}", state_json,
		 force ? "true" : "false");
	call(e, "POST", path, body, KEY, &res);
	assert_string_equal(pp_json_get_string(res, "status"), want_status);
	pp_json_free(res);
	struct pp_json *r = run_of(e, id);
	assert_string_equal(pp_json_get_string(r, "state_type"), want_type);
	pp_json_free(r);
}

/* The mock's orchestration follows core_policy.py for what pushpool and a
 * flow can cause. */
static void test_mock_rules(void **state)
{
	struct env *e = *state;
	char *a = new_run(e);
	propose(e, a, "{\"type\":\"PENDING\"}", false, "ACCEPT", "PENDING");
	propose(e, a, "{\"type\":\"PENDING\"}", false, "ABORT", "PENDING");
	/* A named PENDING sub-state follows PENDING, never RUNNING: the
	 * compare-and-set a take-over of an expired claim rests on. */
	propose(e, a, "{\"type\":\"PENDING\",\"name\":\"Reclaimed\"}", false, "ACCEPT", "PENDING");
	propose(e, a, "{\"type\":\"PENDING\",\"name\":\"Pending\"}", false, "ABORT", "PENDING");
	propose(e, a, "{\"type\":\"RUNNING\"}", false, "ACCEPT", "RUNNING");
	propose(e, a, "{\"type\":\"PENDING\"}", false, "ABORT", "RUNNING");
	propose(e, a, "{\"type\":\"PENDING\",\"name\":\"Reclaimed again\"}", false, "ABORT",
		"RUNNING");
	propose(e, a, "{\"type\":\"FAILED\"}", false, "ACCEPT", "FAILED");
	/* HandleFlowTerminalStateTransitions: terminal -> other terminal is
	 * accepted, CRASHED/CANCELLING/PAUSED aborted, PENDING accepted. */
	propose(e, a, "{\"type\":\"COMPLETED\"}", false, "ACCEPT", "COMPLETED");
	propose(e, a, "{\"type\":\"CRASHED\"}", false, "ABORT", "COMPLETED");
	propose(e, a, "{\"type\":\"CANCELLING\"}", false, "ABORT", "COMPLETED");
	propose(e, a, "{\"type\":\"PAUSED\"}", false, "ABORT", "COMPLETED");
	propose(e, a, "{\"type\":\"PENDING\"}", false, "ACCEPT", "PENDING");
	propose(e, a, "{\"type\":\"RUNNING\"}", false, "ACCEPT", "RUNNING");
	struct pp_json *r = run_of(e, a);
	assert_int_equal(pp_json_get_int(r, "run_count", -1), 2);
	assert_true(pp_json_is(pp_json_get(r, "end_time"), PP_JSON_NULL));
	pp_json_free(r);
	/* EnforceCancellingToCancelledTransition. */
	propose(e, a, "{\"type\":\"CANCELLING\"}", true, "ACCEPT", "CANCELLING");
	propose(e, a, "{\"type\":\"COMPLETED\"}", false, "REJECT", "CANCELLING");
	propose(e, a, "{\"type\":\"FAILED\"}", false, "REJECT", "CANCELLING");
	propose(e, a, "{\"type\":\"CANCELLED\"}", false, "ACCEPT", "CANCELLED");
	/* PreventPendingTransitions covers CANCELLED. */
	propose(e, a, "{\"type\":\"PENDING\"}", false, "ABORT", "CANCELLED");
	/* PreventDuplicateTransitions: the same transition_id twice. */
	propose(e, a, "{\"type\":\"SCHEDULED\"}", true, "ACCEPT", "SCHEDULED");
	const char *p = "{\"type\":\"PENDING\",\"state_details\":{\"transition_id\":"
			"\"6b1b8a52-0000-4000-a000-000000000001\"}}";
	propose(e, a, p, false, "ACCEPT", "PENDING");
	propose(e, a, p, false, "REJECT", "PENDING");
	free(a);

	/* RetryFailedFlows: RUNNING -> FAILED with retries left becomes
	 * AwaitingRetry (SCHEDULED); run_count counts accepted RUNNINGs. */
	char path[128];
	struct pp_json *res = NULL;
	snprintf(path, sizeof(path), "/deployments/%s/create_flow_run", e->deployment);
	assert_int_equal(call(e, "POST", path, "{\"empirical_policy\":{\"retries\":1}}", KEY, &res),
			 201);
	char *b = strdup(pp_json_get_string(res, "id"));
	pp_json_free(res);
	propose(e, b, "{\"type\":\"PENDING\"}", false, "ACCEPT", "PENDING");
	propose(e, b, "{\"type\":\"RUNNING\"}", false, "ACCEPT", "RUNNING");
	propose(e, b, "{\"type\":\"FAILED\"}", false, "REJECT", "SCHEDULED");
	r = run_of(e, b);
	assert_string_equal(pp_json_get_string(r, "state_name"), "AwaitingRetry");
	pp_json_free(r);
	propose(e, b, "{\"type\":\"RUNNING\"}", false, "ACCEPT", "RUNNING");
	propose(e, b, "{\"type\":\"FAILED\"}", false, "ACCEPT", "FAILED");
	r = run_of(e, b);
	assert_int_equal(pp_json_get_int(r, "run_count", -1), 2);
	pp_json_free(r);
	free(b);
}

/* A flow that ended on its own keeps its state: a non-zero exit after it
 * is not reported over it. */
static void test_flow_state_kept(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	char *a = new_run(e);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	propose(e, a, "{\"type\":\"RUNNING\"}", false, "ACCEPT", "RUNNING");
	propose(e, a, "{\"type\":\"FAILED\"}", false, "ACCEPT", "FAILED");
	struct pp_run_rec rec;
	assert_int_equal(e->store->ops->get(e->store, a, &rec, NULL, NULL, &err), 0);
	assert_int_equal(
		e->src->ops->report(e->src, &rec, PP_ST_FAILED, "t-2", "exit code 1", &err), 0);
	assert_int_equal(
		e->src->ops->report(e->src, &rec, PP_ST_CANCELLED, "t-2", "cancelled", &err), 0);
	pp_run_rec_free(&rec);
	flush(e);
	struct pp_json *r = run_of(e, a);
	assert_string_equal(pp_json_get_string(r, "state_type"), "FAILED");
	pp_json_free(r);
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.set_state", "CRASHED:ABORT"), 0);
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.set_state", "CRASHED:ACCEPT"), 0);
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.set_state", "CANCELLED:ACCEPT"), 0);
	free(a);
}

/* A job started with the run's id in its env runs a simulated flow that
 * reports RUNNING when the container starts and its end when it is over;
 * /prefect/control/flows switches it off. */
static void start_job(struct env *e, const char *id, const char *plan)
{
	char text[256];
	struct pp_json *spec = NULL;
	struct pp_error err = {0};
	snprintf(text, sizeof(text),
		 "{\"env\":[{\"name\":\"PREFECT__FLOW_RUN_ID\",\"value\":\"%s\"},"
		 "{\"name\":\"PUSHPOOL_MOCK_FLOW\",\"value\":\"%s\"}]}",
		 id, plan);
	assert_int_equal(pp_json_parse(text, strlen(text), NULL, &spec, &err), 0);
	pp_mock_lock(e->mock);
	pp_mock_prefect_job_started(e->mock, spec, NULL, PP_MOCK_SUCCEED, pp_mock_clock(e->mock));
	pp_mock_unlock(e->mock);
	pp_json_free(spec);
}

static void test_mock_flows(void **state)
{
	struct env *e = *state;
	char *a = new_run(e), *b = new_run(e), *c = new_run(e);
	pp_mock_clock_hold(e->mock, true);
	propose(e, a, "{\"type\":\"PENDING\"}", false, "ACCEPT", "PENDING");
	propose(e, b, "{\"type\":\"PENDING\"}", false, "ACCEPT", "PENDING");
	propose(e, c, "{\"type\":\"PENDING\"}", false, "ACCEPT", "PENDING");
	start_job(e, a, "failed");
	start_job(e, b, "paused");
	char url[300];
	snprintf(url, sizeof(url), "%s/prefect/control/flows", pp_mock_base_url(e->mock));
	struct pp_http_req req;
	struct pp_http_resp resp;
	struct pp_error err = {0};
	pp_http_req_init(&req, "POST", url);
	pp_http_resp_init(&resp, 0);
	pp_http_req_body(&req, "{\"simulate\":false}", 18);
	assert_int_equal(pp_http_perform(&req, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	pp_http_req_free(&req);
	pp_http_resp_free(&resp);
	start_job(e, c, "completed");
	/* Still provisioning: nothing reported. */
	struct pp_json *r = run_of(e, a);
	assert_string_equal(pp_json_get_string(r, "state_type"), "PENDING");
	pp_json_free(r);
	pp_mock_clock_advance(e->mock, 3600);
	r = run_of(e, a);
	assert_string_equal(pp_json_get_string(r, "state_type"), "FAILED");
	assert_int_equal(pp_json_get_int(r, "run_count", -1), 1);
	pp_json_free(r);
	r = run_of(e, b);
	assert_string_equal(pp_json_get_string(r, "state_type"), "PAUSED");
	pp_json_free(r);
	r = run_of(e, c);
	assert_string_equal(pp_json_get_string(r, "state_type"), "PENDING");
	pp_json_free(r);
	free(a);
	free(b);
	free(c);
}

static void test_auth(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	struct pp_json *r = NULL;
	assert_int_equal(call(e, "GET", "/work_pools/ecs", NULL, NULL, &r), 401);
	assert_string_equal(pp_json_get_string(r, "detail"), "Invalid authentication credentials");
	pp_json_free(r);
	struct pp_config cfg;
	struct pp_source *src = NULL;
	assert_int_equal(pp_config_init(&cfg, &err), 0);
	char conf[128];
	snprintf(conf, sizeof(conf), "%s/pushpool.conf", e->dir);
	assert_int_equal(pp_config_load(&cfg, conf, &err), 0);
	free(cfg.prefect.api_key);
	cfg.prefect.api_key = strdup("wrong-key-0000");
	assert_int_equal(pp_source_prefect.open(&cfg, &src, &err), 0);
	assert_int_equal(src->ops->poll(src, e->store, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "Invalid authentication credentials"));
	assert_null(strstr(err.msg, "wrong-key-0000"));
	src->ops->close(src);
	pp_config_free(&cfg);
}

/* POST to the mock's own control endpoints (no auth there). */
static void control(struct env *e, const char *path, const char *body)
{
	char api[sizeof(e->api)];
	snprintf(api, sizeof(api), "%s", e->api);
	snprintf(e->api, sizeof(e->api), "%s/prefect/control", pp_mock_base_url(e->mock));
	assert_int_equal(call(e, "POST", path, body, NULL, NULL), 200);
	snprintf(e->api, sizeof(e->api), "%s", api);
}

/* A self-hosted server with PREFECT_SERVER_API_AUTH_STRING and CSRF
 * protection: Basic auth from api_auth_string_file (the key is not sent),
 * a CSRF token fetched once for the change requests, fetched again when
 * the server has forgotten it; a wrong auth string is an auth error that
 * does not show it. */
static void test_basic_and_csrf(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	char *a = new_run(e), *b = new_run(e);
	control(e, "/auth", "{\"auth_string\":\"admin:s3cret-pass\",\"csrf\":true}");
	assert_int_equal(call(e, "GET", "/work_pools/ecs", NULL, KEY, NULL), 401);
	assert_int_equal(call(e, "GET", "/health", NULL, NULL, NULL), 200);

	char path[128];
	snprintf(path, sizeof(path), "%s/auth", e->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("admin:s3cret-pass\n", f);
	fclose(f);
	e->src->ops->close(e->src);
	free(e->cfg.prefect.api_key);
	e->cfg.prefect.api_key = NULL;
	free(e->cfg.prefect.api_auth_string_file);
	e->cfg.prefect.api_auth_string_file = strdup(path);
	assert_int_equal(pp_source_prefect.open(&e->cfg, &e->src, &err), 0);
	attach(e);
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), 0);
	assert_int_equal(store_count(e), 2);
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.csrf_tokens", NULL), 1);
	/* The server restarted and forgot its tokens: one new token, and the
	 * refused change request goes through with it. */
	control(e, "/auth", "{\"forget_csrf_tokens\":true}");
	struct pp_run_rec rec;
	assert_int_equal(e->store->ops->get(e->store, a, &rec, NULL, NULL, &err), 0);
	assert_int_equal(e->src->ops->report(e->src, &rec, PP_ST_CRASHED, NULL, "oom", &err), 0);
	pp_run_rec_free(&rec);
	flush(e);
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.csrf_tokens", NULL), 2);
	assert_int_equal(pp_mock_count_get(e->mock, "prefect.csrf_refused",
					   "Invalid CSRF token or client identifier."),
			 1);
	control(e, "/auth", "{\"auth_string\":null,\"csrf\":false}");
	struct pp_json *r = run_of(e, a);
	assert_string_equal(pp_json_get_string(r, "state_type"), "CRASHED");
	pp_json_free(r);
	r = run_of(e, b);
	assert_string_equal(pp_json_get_string(r, "state_type"), "PENDING");
	pp_json_free(r);

	/* A wrong auth string. */
	control(e, "/auth", "{\"auth_string\":\"admin:other\"}");
	assert_int_equal(e->src->ops->poll(e->src, e->store, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "Unauthorized"));
	assert_null(strstr(err.msg, "s3cret-pass"));
	control(e, "/auth", "{\"auth_string\":null}");
	free(a);
	free(b);
}

/* A source whose Prefect API is a fake (tests/unit/http_server.h) answering
 * with handler: one ECS pool, no CSRF. */
struct fake_env {
	struct hs_server srv;
	char dir[32];
	struct pp_config cfg;
	struct pp_source *src;
};

static void fake_open(struct fake_env *fe, hs_handler handler)
{
	struct pp_error err = {0};
	char conf[64];
	assert_int_equal(hs_start(&fe->srv, handler, NULL), 0);
	snprintf(fe->dir, sizeof(fe->dir), "/tmp/pp-prefect-XXXXXX");
	assert_non_null(mkdtemp(fe->dir));
	snprintf(conf, sizeof(conf), "%s/pushpool.conf", fe->dir);
	FILE *f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f,
		"[dispatcher]\nstate_dir = %s\n\n[pool \"ecs\"]\ntype = ecs:push\n\n"
		"[source \"prefect\"]\napi_url = %s/api\napi_key = %s\n",
		fe->dir, fe->srv.base, KEY);
	fclose(f);
	assert_int_equal(pp_config_init(&fe->cfg, &err), 0);
	assert_int_equal(pp_config_load(&fe->cfg, conf, &err), 0);
	assert_int_equal(pp_source_prefect.open(&fe->cfg, &fe->src, &err), 0);
}

static void fake_close(struct fake_env *fe)
{
	char cmd[64];
	fe->src->ops->close(fe->src);
	pp_config_free(&fe->cfg);
	hs_stop(&fe->srv);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fe->dir);
	assert_int_equal(system(cmd), 0);
	pp_secret_clear();
}

/* A bare Prefect API for one ECS pool, without CSRF: polls find nothing
 * unless listed_run names a SCHEDULED flow run, which a PENDING proposal
 * then claims; with runs_not_objects, a flow run's read answers an array.
 * Counts the calls it answered. */
static const char *listed_run;
static bool runs_not_objects;
static int fake_calls;

static void fake_prefect(struct hs_server *srv, const struct hs_request *rq, struct hs_response *rs)
{
	(void)srv;
	__atomic_add_fetch(&fake_calls, 1, __ATOMIC_SEQ_CST);
	const char *p = rq->path;
	char run[512] = "";
	if (listed_run)
		snprintf(run, sizeof(run),
			 "{\"id\":\"%s\",\"name\":\"r\",\"parameters\":{},"
			 "\"state_type\":\"SCHEDULED\",\"state\":{\"type\":\"SCHEDULED\","
			 "\"timestamp\":\"2026-01-01T00:00:00Z\"}}",
			 listed_run);
	rs->status = 200;
	if (runs_not_objects && !strncmp(p, "/api/flow_runs/", 15))
		snprintf(rs->body, sizeof(rs->body), "[]");
	else if (!strcmp(p, "/api/work_pools/ecs/workers/heartbeat"))
		rs->status = 204;
	else if (!strcmp(p, "/api/work_pools/ecs"))
		snprintf(rs->body, sizeof(rs->body),
			 "{\"name\":\"ecs\",\"type\":\"ecs:push\",\"base_job_template\":{}}");
	else if (!strcmp(p, "/api/work_pools/ecs/get_scheduled_flow_runs"))
		snprintf(rs->body, sizeof(rs->body), listed_run ? "[{\"flow_run\":%s}]" : "[]",
			 run);
	else if (!strcmp(p, "/api/flow_runs/filter"))
		snprintf(rs->body, sizeof(rs->body), "[]");
	else if (listed_run && !strncmp(p, "/api/flow_runs/", 15) && !strstr(p, "set_state"))
		snprintf(rs->body, sizeof(rs->body), "%s", run);
	else if (listed_run && strstr(p, "/set_state"))
		snprintf(rs->body, sizeof(rs->body), "{\"status\":\"ACCEPT\"}");
	else
		rs->status = 404;
}

/* A run rendered without the claim's read (after a restart) reads its
 * flow run, and an answer that is not a flow run fails the render instead
 * of rendering it as a run without deployment. */
static void test_job_inputs_not_a_run(void **state)
{
	(void)state;
	struct fake_env fe;
	struct pp_error err = {0};
	runs_not_objects = true;
	fake_open(&fe, fake_prefect);
	struct pp_run_rec rec = {0};
	snprintf(rec.id, sizeof(rec.id), "0191c3a2-7e55-7b1e-9a3e-5a2b8c1d4e6f");
	snprintf(rec.pool, sizeof(rec.pool), "ecs");
	const struct pp_json *tmpl = NULL;
	struct pp_json *dvars = NULL;
	uint64_t version = 0;
	assert_int_equal(fe.src->ops->job_inputs(fe.src, &rec, &tmpl, &version, &dvars, &err),
			 PP_EINVALID);
	assert_non_null(strstr(err.msg, "not a flow run"));
	assert_null(tmpl);
	assert_int_equal(version, 0);
	assert_null(dvars);
	runs_not_objects = false;
	fake_close(&fe);
}

/* fake_prefect, but the pool's template defaults cpu to a block whose
 * value is block_cpu, and a flow run (of no deployment) reads back: the
 * reads of the block and of the pool are counted. */
static int block_cpu = 256, block_reads, pool_reads;

static void fake_block_pool(struct hs_server *srv, const struct hs_request *rq,
			    struct hs_response *rs)
{
	const char *p = rq->path;
	rs->status = 200;
	if (!strcmp(p, "/api/work_pools/ecs")) {
		__atomic_add_fetch(&pool_reads, 1, __ATOMIC_SEQ_CST);
		snprintf(rs->body, sizeof(rs->body),
			 "{\"name\":\"ecs\",\"type\":\"ecs:push\",\"base_job_template\":"
			 "{\"job_configuration\":{\"cpu\":\"{{ cpu }}\"},\"variables\":"
			 "{\"properties\":{\"cpu\":{\"type\":\"integer\",\"default\":"
			 "\"{{ prefect.blocks.secret.cpu }}\"}}}}}");
	} else if (!strcmp(p, "/api/block_types/slug/secret/block_documents/name/cpu")) {
		__atomic_add_fetch(&block_reads, 1, __ATOMIC_SEQ_CST);
		snprintf(rs->body, sizeof(rs->body), "{\"data\":{\"value\":%d}}",
			 __atomic_load_n(&block_cpu, __ATOMIC_SEQ_CST));
	} else if (!strcmp(p, "/api/flow_runs/0191c3a2-7e55-7b1e-9a3e-5a2b8c1d4e6f")) {
		snprintf(rs->body, sizeof(rs->body),
			 "{\"id\":\"0191c3a2-7e55-7b1e-9a3e-5a2b8c1d4e6f\",\"name\":\"r\"}");
	} else {
		fake_prefect(srv, rq, rs);
	}
}

/* The monotonic clock, moved on by skip_clock rather than slept through. */
static int64_t clock_skipped;

static int64_t skipped_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 +
	       __atomic_load_n(&clock_skipped, __ATOMIC_SEQ_CST);
}

static void skip_clock(int64_t ms)
{
	__atomic_add_fetch(&clock_skipped, ms, __ATOMIC_SEQ_CST);
}

/* The run the fake servers know, of pool ecs. */
static void fake_run(struct pp_run_rec *rec)
{
	*rec = (struct pp_run_rec){0};
	snprintf(rec->id, sizeof(rec->id), "0191c3a2-7e55-7b1e-9a3e-5a2b8c1d4e6f");
	snprintf(rec->pool, sizeof(rec->pool), "ecs");
}

/* The template job_inputs lends for rec (its deployment sets no
 * variables), which must come with a version; *version is set to it. */
static const struct pp_json *lent_template(struct fake_env *fe, const struct pp_run_rec *rec,
					   uint64_t *version)
{
	struct pp_error err = {0};
	const struct pp_json *tmpl = NULL;
	struct pp_json *dvars = NULL;
	assert_int_equal(fe->src->ops->job_inputs(fe->src, rec, &tmpl, version, &dvars, &err), 0);
	assert_true(*version != 0);
	assert_null(dvars);
	return tmpl;
}

/* The cpu default of the template lent for rec (lent_template). */
static int resolved_cpu(struct fake_env *fe, const struct pp_run_rec *rec, uint64_t *version)
{
	return (int)pp_json_get_int(
		pp_json_path(lent_template(fe, rec, version), "variables.properties.cpu"),
		"default", 0);
}

/* One poll of the source on a store of its own: the first syncs. */
static void fake_poll(struct fake_env *fe)
{
	char db[64];
	struct pp_store *store = NULL;
	struct pp_error err = {0};
	snprintf(db, sizeof(db), "%s/pushpool.db", fe->dir);
	assert_int_equal(pp_store_open(db, &store, &err), 0);
	assert_int_equal(fe->src->ops->poll(fe->src, store, &err), 0);
	pp_store_close(store);
}

/* The runs of a pool share one resolved template, under one version (what
 * lets the pool's render cache serve them), for as long as the block it
 * resolved is what the block cache serves: a block changed upstream shows
 * in the next run once its cached copy is 30 s old, as when each run
 * resolved the template for itself, and not before. A sync that reads
 * the pool's template again makes it anew. */
static void test_template_reused(void **state)
{
	(void)state;
	struct fake_env fe;
	listed_run = NULL;
	block_cpu = 256;
	block_reads = pool_reads = 0;
	pp_mono_set_source(skipped_mono);
	fake_open(&fe, fake_block_pool);
	struct pp_run_rec rec;
	fake_run(&rec);
	uint64_t first = 0, version = 0;
	for (int i = 0; i < 5; i++) {
		assert_int_equal(resolved_cpu(&fe, &rec, &version), 256);
		if (!i)
			first = version;
		assert_true(version == first);
	}
	assert_int_equal(__atomic_load_n(&pool_reads, __ATOMIC_SEQ_CST), 1);
	assert_int_equal(__atomic_load_n(&block_reads, __ATOMIC_SEQ_CST), 1);

	__atomic_store_n(&block_cpu, 512, __ATOMIC_SEQ_CST);
	skip_clock(29000);
	assert_int_equal(resolved_cpu(&fe, &rec, &version), 256);
	assert_true(version == first);
	skip_clock(1000);
	assert_int_equal(resolved_cpu(&fe, &rec, &version), 512);
	assert_true(version != first);
	assert_int_equal(__atomic_load_n(&block_reads, __ATOMIC_SEQ_CST), 2);
	uint64_t second = version;
	assert_int_equal(resolved_cpu(&fe, &rec, &version), 512);
	assert_true(version == second);

	/* The first poll syncs: the pool's template is read again. */
	fake_poll(&fe);
	assert_int_equal(__atomic_load_n(&pool_reads, __ATOMIC_SEQ_CST), 2);
	assert_int_equal(resolved_cpu(&fe, &rec, &version), 512);
	assert_true(version != second);
	/* The block itself was still cached. */
	assert_int_equal(__atomic_load_n(&block_reads, __ATOMIC_SEQ_CST), 2);
	fake_close(&fe);
	pp_mono_set_source(NULL);
}

/* A pool created with no template on the server (the type's default
 * serves it). */
static void fake_bare_pool(struct hs_server *srv, const struct hs_request *rq,
			   struct hs_response *rs)
{
	rs->status = 200;
	if (!strcmp(rq->path, "/api/work_pools/ecs")) {
		__atomic_add_fetch(&pool_reads, 1, __ATOMIC_SEQ_CST);
		snprintf(rs->body, sizeof(rs->body),
			 "{\"name\":\"ecs\",\"type\":\"ecs:push\",\"base_job_template\":{}}");
	} else {
		fake_block_pool(srv, rq, rs);
	}
}

/* A pool with no template on the server is read as often as any other:
 * at the source's syncs, not for every run. Its runs share the type's
 * default, resolved once, under one version, until a sync reads the pool
 * again. */
static void test_bare_pool_read_by_syncs(void **state)
{
	(void)state;
	struct fake_env fe;
	listed_run = NULL;
	pool_reads = 0;
	fake_open(&fe, fake_bare_pool);
	struct pp_run_rec rec;
	fake_run(&rec);
	uint64_t first = 0, version = 0;
	for (int i = 0; i < 5; i++) {
		assert_non_null(
			pp_json_get(lent_template(&fe, &rec, &version), "job_configuration"));
		if (!i)
			first = version;
		assert_true(version == first);
	}
	assert_int_equal(__atomic_load_n(&pool_reads, __ATOMIC_SEQ_CST), 1);
	fake_poll(&fe);
	assert_int_equal(__atomic_load_n(&pool_reads, __ATOMIC_SEQ_CST), 2);
	lent_template(&fe, &rec, &version);
	assert_true(version != first);
	assert_int_equal(__atomic_load_n(&pool_reads, __ATOMIC_SEQ_CST), 2);
	fake_close(&fe);
}

/* The source keeps its connections to the server: polls' reads, heartbeats
 * and lists, and a claim's PENDING proposal too (a resend of it is
 * answered as a duplicate, pp_prefect_claim_ours), go out on the
 * connections earlier calls opened. */
static void test_connections_kept(void **state)
{
	(void)state;
	struct fake_env fe;
	struct pp_error err = {0};
	listed_run = NULL;
	fake_open(&fe, fake_prefect);
	char db[64];
	struct pp_store *store = NULL;
	snprintf(db, sizeof(db), "%s/pushpool.db", fe.dir);
	assert_int_equal(pp_store_open(db, &store, &err), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(fe.src->ops->poll(fe.src, store, &err), 0);
	/* At most two calls are ever on the wire at once (a sync's two, the
	 * cancellation check's two filters once a run is live): two
	 * connections at most, however the calls' timing falls. */
	assert_true(__atomic_load_n(&fake_calls, __ATOMIC_SEQ_CST) >= 8);
	assert_true(__atomic_load_n(&fe.srv.connections, __ATOMIC_SEQ_CST) <= 2);
	/* Three polls that claim a run each: a connection a claim would make
	 * it five at least. */
	static const char *const runs[] = {"0191c3a2-7e55-7b1e-9a3e-5a2b8c1d4e6f",
					   "0191c3a2-7e55-7b1e-9a3e-5a2b8c1d4e70",
					   "0191c3a2-7e55-7b1e-9a3e-5a2b8c1d4e71"};
	for (int i = 0; i < 3; i++) {
		listed_run = runs[i];
		assert_int_equal(fe.src->ops->poll(fe.src, store, &err), 0);
		struct pp_run_rec rec;
		assert_int_equal(store->ops->get(store, runs[i], &rec, NULL, NULL, &err), 0);
		pp_run_rec_free(&rec);
	}
	assert_true(__atomic_load_n(&fe.srv.connections, __ATOMIC_SEQ_CST) <= 2);
	listed_run = NULL;
	pp_store_close(store);
	fake_close(&fe);
}

/* Against the mock's /variables and /block_documents: a rendered job's
 * $ref block references, block placeholders and variables resolve, with
 * the block's secrets; a missing block is a clear error. */
static void test_resolve_job(void **state)
{
	struct env *e = *state;
	struct pp_error err = {0};
	struct pp_json *r = NULL;
	assert_int_equal(call(e, "POST", "/block_documents/",
			      "{\"name\":\"prod\",\"block_type_slug\":\"aws-credentials\",\"data\":"
			      "{\"aws_access_key_id\":\"AKID1\",\"aws_secret_access_key\":"
			      "\"resolve-secret-0001\"}}",
			      KEY, &r),
			 201);
	char id[64], text[1024];
	snprintf(id, sizeof(id), "%s", pp_json_get_string(r, "id"));
	assert_string_equal(pp_json_string(pp_json_path(r, "data.aws_secret_access_key")),
			    "**********");
	pp_json_free(r);
	assert_int_equal(call(e, "POST", "/variables/",
			      "{\"name\":\"image\",\"value\":\"repo/f:3\"}", KEY, NULL),
			 201);
	assert_int_equal(
		call(e, "POST", "/variables/", "{\"name\":\"image\",\"value\":\"x\"}", KEY, NULL),
		409);
	snprintf(text, sizeof(text),
		 "{\"aws_credentials\":{\"$ref\":{\"block_document_id\":\"%s\"}},"
		 "\"image\":\"{{ prefect.variables.image }}\",\"cpu\":\"{{ "
		 "prefect.blocks.secret.cpu }}\","
		 "\"env\":{\"TAG\":\"img={{ prefect.variables.image }} {{ prefect.variables.none "
		 "}}\"}}",
		 id);
	struct pp_json *job = parse(text);
	struct pp_run_rec rec = {0};
	assert_int_equal(e->src->ops->resolve_job(e->src, &rec, job, &err), 0);
	assert_string_equal(
		pp_json_string(pp_json_path(job, "aws_credentials.aws_secret_access_key")),
		"resolve-secret-0001");
	assert_string_equal(pp_json_get_string(job, "image"), "repo/f:3");
	assert_int_equal(pp_json_get_int(job, "cpu", 0), 256);
	assert_string_equal(pp_json_string(pp_json_path(job, "env.TAG")), "img=repo/f:3 ");
	pp_json_free(job);
	char line[128] = "x resolve-secret-0001";
	pp_redact(line);
	assert_null(strstr(line, "resolve-secret"));
	job = parse("{\"c\":{\"$ref\":{\"block_document_id\":\"7d8c1a52-0000-4000-a000-"
		    "00000000dead\"}}}");
	assert_int_equal(e->src->ops->resolve_job(e->src, &rec, job, &err), PP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "$.c"));
	pp_json_free(job);
}

int main(void)
{
	pp_log_setup(PP_LOG_ERROR, PP_LOG_TEXT, stderr);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_state_mapping),
		cmocka_unit_test(test_report_wanted),
		cmocka_unit_test(test_blocks),
		cmocka_unit_test(test_variables),
		cmocka_unit_test(test_documents),
		cmocka_unit_test_setup_teardown(test_claim_report, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_claims_together, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_pools_claimed_together, env_setup,
						env_teardown),
		cmocka_unit_test_setup_teardown(test_reports_together, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_reports_without_waiting, env_setup,
						env_teardown),
		cmocka_unit_test_setup_teardown(test_reports_after_a_lost_turn, env_setup,
						env_teardown),
		cmocka_unit_test_setup_teardown(test_poll_syncs_together, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_cancellation_pages_together, env_setup,
						env_teardown),
		cmocka_unit_test(test_job_inputs_not_a_run),
		cmocka_unit_test(test_connections_kept),
		cmocka_unit_test(test_template_reused),
		cmocka_unit_test(test_bare_pool_read_by_syncs),
		cmocka_unit_test_setup_teardown(test_claim_resent, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_crashed_and_cancelling, env_setup,
						env_teardown),
		cmocka_unit_test_setup_teardown(test_throttled_and_outage, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_wait, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_reconcile, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_reconcile_reads_live_runs_as_ids, env_setup,
						env_teardown),
		cmocka_unit_test_setup_teardown(test_rerun, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_cancelled_first, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_mock_rules, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_flow_state_kept, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_mock_flows, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_auth, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_basic_and_csrf, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_resolve_job, env_setup, env_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
