/* The ACI backend driven op by op with canned ARM answers: the PUT body
 * built from Prefect's template, adoption, async operations, status
 * mapping, throttling and deletion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "dispatcher/op_driver.h"
#include "lib/json.h"
#include "lib/log.h"
#include "providers/provider.h"

#define RUN_ID	 "0B7E1A52-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
#define STORE_ID "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
#define GROUP	 "pp-0b7e1a523c4d4e5f8a9b0c1d2e3f4a5b-1"
#define BASE	 "http://127.0.0.1:9"
#define GROUP_ID                                                                                   \
	"/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-(x)/providers/"     \
	"Microsoft.ContainerInstance/containerGroups/" GROUP
#define GROUP_ID_WIRE                                                                              \
	"/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-%28x%29/"           \
	"providers/Microsoft.ContainerInstance/containerGroups/" GROUP
#define GROUP_URL BASE GROUP_ID_WIRE "?api-version=2023-05-01"

#define JOB_TEXT                                                                                   \
	"{\"command\": \"prefect flow-run execute 'a b'\", \"image\": \"repo/img:1\","             \
	" \"resource_group_name\": \"rg-(x)\","                                                    \
	" \"subscription_id\": \"00000000-1111-2222-3333-444444444444\","                          \
	" \"env\": {\"PREFECT_API_URL\": \"http://api\", \"PREFECT_API_KEY\": \"pnu_secret1\"},"   \
	" \"labels\": {\"team\": \"data\"}, \"identities\": [\"/id/one\"],"                        \
	" \"entrypoint\": \"/opt/prefect/entrypoint.sh\","                                         \
	" \"image_registry\": {\"registry_url\": \"r.azurecr.io\", \"username\": \"u\","           \
	"  \"password\": \"regpass99\"},"                                                          \
	" \"cpu\": 2, \"memory\": 4, \"gpu_count\": 1, \"gpu_sku\": \"V100\","                     \
	" \"subnet_ids\": [\"/subnets/s1\"], \"dns_servers\": [\"10.0.0.2\"],"                     \
	" \"task_start_timeout_seconds\": %d, \"task_watch_poll_interval\": 0.5,"                  \
	" \"keep_container_group\": %s,"                                                           \
	" \"arm_template\": {\"parameters\": {}, \"resources\": [{"                                \
	"  \"type\": \"Microsoft.ContainerInstance/containerGroups\","                             \
	"  \"apiVersion\": \"2022-09-01\","                                                        \
	"  \"name\": \"[parameters('container_group_name')]\","                                    \
	"  \"location\": \"[parameters('location')]\", \"properties\": {\"containers\": [{"        \
	"   \"name\": \"[parameters('container_name')]\", \"properties\": {"                       \
	"    \"image\": \"repo/img:1\", \"command\": \"prefect flow-run execute\","                \
	"    \"resources\": {\"requests\": {\"cpu\": \"2\", \"memoryInGB\": 4}},"                  \
	"    \"environmentVariables\": [], \"ports\": [{\"port\": 80}]}}],"                        \
	"   \"osType\": \"Linux\", \"restartPolicy\": \"OnFailure\", \"sku\": \"Standard\"}}]}}"

struct fixture {
	struct pp_json *job;
	struct pp_run_io io;
	struct pp_error err;
	char last_url[2048];
	char last_method[8];
	struct pp_json *last_body;
	struct pp_json *put_body;
};

static struct fixture *fixture_new(int start_timeout, bool keep)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char text[4096];
	snprintf(text, sizeof(text), JOB_TEXT, start_timeout, keep ? "true" : "false");
	assert_int_equal(pp_json_parse(text, strlen(text), NULL, &f->job, &f->err), 0);
	f->io.run_id = RUN_ID;
	f->io.store_id = STORE_ID;
	f->io.attempt = 1;
	f->io.job = f->job;
	f->io.endpoint = BASE;
	return f;
}

static void fixture_free(struct fixture *f)
{
	pp_http_req_free(&f->io.req);
	pp_exec_io_release(&f->io, pp_provider_find("azure-container-instance:push"));
	pp_json_free(f->job);
	pp_json_free(f->last_body);
	pp_json_free(f->put_body);
	free(f);
}

/* Call op without a response: it must ask to send; remember the request. */
static int step_send(struct fixture *f, int (*op)(struct pp_run_io *, struct pp_error *))
{
	f->io.resp = NULL;
	int rc = op(&f->io, &f->err);
	if (rc != PP_STEP_SEND)
		return rc;
	snprintf(f->last_url, sizeof(f->last_url), "%s", f->io.req.url);
	snprintf(f->last_method, sizeof(f->last_method), "%s", f->io.req.method);
	pp_json_free(f->last_body);
	f->last_body = NULL;
	if (f->io.req.body)
		assert_int_equal(pp_json_parse(f->io.req.body, f->io.req.body_len, NULL,
					       &f->last_body, &f->err),
				 0);
	return rc;
}

static void add_header(struct pp_http_resp *r, const char *name, const char *value)
{
	assert_int_equal(pp_http_resp_add_header(r, name, value), 0);
}

/* Answer the request last sent; returns the op's result. hdr is
 * "name: value" pairs separated by '\n' (names lowercase), may be NULL. */
static int step_answer(struct fixture *f, int (*op)(struct pp_run_io *, struct pp_error *),
		       long status, const char *body, const char *hdrs, long retry_after_ms)
{
	struct pp_http_resp resp;
	struct pp_error cls;
	pp_http_resp_init(&resp, 0);
	resp.status = status;
	resp.retry_after_ms = retry_after_ms;
	if (body)
		assert_int_equal(pp_buf_puts(&resp.body, body), 0);
	for (const char *p = hdrs; p && *p;) {
		const char *colon = strchr(p, ':');
		const char *nl = strchr(p, '\n');
		size_t end = nl ? (size_t)(nl - p) : strlen(p);
		char name[64], value[512];
		snprintf(name, sizeof(name), "%.*s", (int)(colon - p), p);
		snprintf(value, sizeof(value), "%.*s", (int)(end - (size_t)(colon - p) - 2),
			 colon + 2);
		add_header(&resp, name, value);
		p += end + (nl ? 1 : 0);
	}
	pp_error_clear(&cls);
	/* The op may fill io.req with its next request, as under the driver. */
	struct pp_http_req sent = f->io.req;
	memset(&f->io.req, 0, sizeof(f->io.req));
	f->io.resp = &resp;
	f->io.resp_rc = pp_http_classify(&sent, &resp, &cls);
	f->io.resp_err = &cls;
	pp_error_clear(&f->err);
	int rc = op(&f->io, &f->err);
	f->io.resp = NULL;
	f->io.resp_err = NULL;
	pp_http_resp_free(&resp);
	pp_http_req_free(&sent);
	return rc;
}

static const struct pp_provider *aci(void)
{
	const struct pp_provider *p = pp_provider_find("azure-container-instance");
	assert_non_null(p);
	return p;
}

static void prepare(struct fixture *f)
{
	assert_int_equal(pp_exec_io_prepare(&f->io, aci(), &f->err), 0);
}

#define RG_BODY "{\"id\":\"/subscriptions/x/resourceGroups/rg-(x)\",\"location\":\"westeurope\"}"
#define GROUP_BODY(ps, state, extra)                                                               \
	"{\"name\":\"" GROUP "\",\"properties\":{\"provisioningState\":\"" ps "\","                \
	"\"containers\":[{\"name\":\"" GROUP "\",\"properties\":{\"instanceView\":{"               \
	"\"currentState\":{\"state\":\"" state "\"" extra "}}}}]}}"

/* Resource group lookup, 404 on the group, PUT, async op until Succeeded. */
static void submit_fresh(struct fixture *f)
{
	const struct pp_provider *p = aci();
	assert_int_equal(step_send(f, p->submit), PP_STEP_SEND);
	assert_string_equal(f->last_url, BASE "/subscriptions/00000000-1111-2222-3333-444444444444"
					      "/resourcegroups/rg-%28x%29?api-version=2021-04-01");
	assert_int_equal(step_answer(f, p->submit, 200, RG_BODY, NULL, 0), PP_STEP_SEND);
	assert_string_equal(f->last_method, "GET");
	assert_string_equal(f->io.req.url, GROUP_URL);
	assert_int_equal(step_answer(f, p->submit, 404,
				     "{\"error\":{\"code\":\"ResourceNotFound\","
				     "\"message\":\"no\"}}",
				     NULL, 0),
			 PP_STEP_SEND);
	assert_string_equal(f->io.req.method, "PUT");
	assert_string_equal(f->io.req.url, GROUP_URL);
	assert_int_equal(
		pp_json_parse(f->io.req.body, f->io.req.body_len, NULL, &f->put_body, &f->err), 0);
	assert_int_equal(step_answer(f, p->submit, 201, GROUP_BODY("Creating", "Waiting", ""),
				     "azure-asyncoperation: " BASE "/ops/1?api-version=x\n"
				     "x-ms-ratelimit-remaining-subscription-writes: 199",
				     1000),
			 PP_STEP_WAIT);
	assert_int_equal(f->io.poll_after_ms, 1000);
	assert_int_equal(step_send(f, p->submit), PP_STEP_SEND);
	assert_string_equal(f->last_url, BASE "/ops/1?api-version=x");
	assert_int_equal(step_answer(f, p->submit, 200, "{\"status\":\"InProgress\"}", NULL, 0),
			 PP_STEP_WAIT);
	assert_int_equal(f->io.poll_after_ms, 2000);
	assert_int_equal(step_send(f, p->submit), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->submit, 200, "{\"status\":\"Succeeded\"}", NULL, 0),
			 PP_STEP_DONE);
	assert_string_equal(f->io.infra_id, GROUP_ID_WIRE);
}

static void test_put_body(void **unused)
{
	struct fixture *f = fixture_new(240, false);
	prepare(f);
	submit_fresh(f);
	struct pp_json *b = f->put_body;
	assert_string_equal(pp_json_get_string(b, "location"), "westeurope");
	assert_null(pp_json_get(b, "type"));
	assert_null(pp_json_get(b, "apiVersion"));
	assert_null(pp_json_get(b, "name"));
	assert_string_equal(pp_json_path(b, "tags.team")->str, "data");
	assert_string_equal(pp_json_path(b, "tags[\"pushpool-run-id\"]")->str, RUN_ID);
	assert_string_equal(pp_json_path(b, "identity.type")->str, "UserAssigned");
	assert_non_null(pp_json_path(b, "identity.userAssignedIdentities[\"/id/one\"]"));
	struct pp_json *gp = pp_json_get(b, "properties");
	assert_string_equal(pp_json_get_string(gp, "restartPolicy"), "Never");
	assert_string_equal(pp_json_get_string(gp, "sku"), "Standard");
	assert_string_equal(pp_json_path(gp, "imageRegistryCredentials[0].server")->str,
			    "r.azurecr.io");
	assert_string_equal(pp_json_path(gp, "imageRegistryCredentials[0].password")->str,
			    "regpass99");
	assert_string_equal(pp_json_path(gp, "subnetIds[0].id")->str, "/subnets/s1");
	assert_string_equal(pp_json_path(gp, "dnsConfig.nameServers[0]")->str, "10.0.0.2");
	struct pp_json *c0 = pp_json_path(gp, "containers[0]");
	assert_string_equal(pp_json_get_string(c0, "name"), GROUP);
	struct pp_json *cp = pp_json_get(c0, "properties");
	assert_string_equal(pp_json_get_string(cp, "image"), "repo/img:1");
	struct pp_json *cmd = pp_json_get(cp, "command");
	assert_int_equal(cmd->count, 5);
	assert_string_equal(pp_json_at(cmd, 0)->str, "/opt/prefect/entrypoint.sh");
	assert_string_equal(pp_json_at(cmd, 4)->str, "a b");
	struct pp_json *req = pp_json_path(cp, "resources.requests");
	assert_true(pp_json_is(pp_json_get(req, "cpu"), PP_JSON_NUMBER));
	assert_true(pp_json_get(req, "cpu")->num == 2.0);
	assert_true(pp_json_get(req, "memoryInGB")->num == 4.0);
	assert_int_equal(pp_json_path(req, "gpu.count")->num, 1);
	assert_string_equal(pp_json_path(req, "gpu.sku")->str, "V100");
	assert_int_equal(pp_json_path(cp, "ports[0].port")->num, 80);
	struct pp_json *env = pp_json_get(cp, "environmentVariables");
	assert_int_equal(env->count, 2);
	pp_json_foreach (e, env) {
		const char *name = pp_json_get_string(e, "name");
		if (!strcmp(name, "PREFECT_API_KEY")) {
			assert_string_equal(pp_json_get_string(e, "secureValue"), "pnu_secret1");
			assert_null(pp_json_get(e, "value"));
		} else {
			assert_string_equal(pp_json_get_string(e, "value"), "http://api");
		}
	}
	fixture_free(f);
}

/* A second try after a lost answer finds the group and adopts it: no PUT. */
/* ARM's platform rules for tags (no swagger states them): names without
 * < > % & \ ? /, at most 512 characters, values at most 256, 50 tags, no
 * name starting with microsoft, azure or windows. */
static void assert_valid_arm_tags(const struct pp_json *tags)
{
	assert_true(pp_json_is(tags, PP_JSON_OBJECT));
	assert_true(tags->count <= 50);
	pp_json_foreach (t, tags) {
		assert_true(strlen(t->key) >= 1 && strlen(t->key) <= 512);
		assert_null(strpbrk(t->key, "<>%&\\?/"));
		for (const char *p = t->key; *p; p++)
			assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
		assert_true(strncasecmp(t->key, "azure", 5) &&
			    strncasecmp(t->key, "microsoft", 9) &&
			    strncasecmp(t->key, "windows", 7));
		assert_int_equal(t->type, PP_JSON_STRING);
		assert_true(strlen(t->str) <= 256);
	}
}

static void test_labels_become_valid_arm_tags(void **unused)
{
	struct fixture *f = fixture_new(240, false);
	struct pp_json *labels = pp_json_get(f->job, "labels");
	pp_json_set_string(labels, "prefect.io/flow-run-id", RUN_ID);
	pp_json_set_string(labels, "prefect.io/flow-name", "etl & co");
	pp_json_set_string(labels, "a<b>c%d&e\\f?g", "v");
	pp_json_set_string(labels, "Azure-thing", "x");
	pp_json_set_string(labels, "tab\there", "t");
	char longv[300];
	memset(longv, 'v', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	pp_json_set_string(labels, "long", longv);
	for (int i = 0; i < 60; i++) {
		char k[16];
		snprintf(k, sizeof(k), "l%02d", i);
		pp_json_set_string(labels, k, "x");
	}
	prepare(f);
	submit_fresh(f);
	struct pp_json *tags = pp_json_get(f->put_body, "tags");
	assert_valid_arm_tags(tags);
	assert_int_equal(tags->count, 50);
	assert_string_equal(pp_json_path(tags, "[\"prefect.io_flow-run-id\"]")->str, RUN_ID);
	assert_string_equal(pp_json_path(tags, "[\"prefect.io_flow-name\"]")->str, "etl & co");
	assert_string_equal(pp_json_path(tags, "[\"a_b_c_d_e_f_g\"]")->str, "v");
	assert_int_equal(strlen(pp_json_get_string(tags, "long")), 256);
	assert_null(pp_json_get(tags, "Azure-thing"));
	assert_string_equal(pp_json_get_string(tags, "tab_here"), "t");
	assert_string_equal(pp_json_get_string(tags, "team"), "data");
	assert_string_equal(pp_json_get_string(tags, "pushpool-run-id"), RUN_ID);
	assert_string_equal(pp_json_get_string(tags, "pushpool-store-id"), STORE_ID);
	fixture_free(f);
}

/* The swagger's GpuResource requires count and sku: refuse one without
 * the other before anything is sent. */
static void test_gpu_needs_sku(void **unused)
{
	struct fixture *f = fixture_new(240, false);
	pp_json_set(f->job, "gpu_sku", pp_json_new(PP_JSON_NULL));
	assert_int_equal(pp_exec_io_prepare(&f->io, aci(), &f->err), PP_EINVALID);
	assert_non_null(strstr(f->err.msg, "gpu_sku"));
	fixture_free(f);
	f = fixture_new(240, false);
	pp_json_set_int(f->job, "gpu_count", 0);
	assert_int_equal(pp_exec_io_prepare(&f->io, aci(), &f->err), PP_EINVALID);
	assert_non_null(strstr(f->err.msg, "gpu_count"));
	fixture_free(f);
	f = fixture_new(240, false);
	prepare(f);
	submit_fresh(f);
	struct pp_json *gpu = pp_json_path(
		f->put_body, "properties.containers[0].properties.resources.requests.gpu");
	assert_int_equal((int)pp_json_get_int(gpu, "count", 0), 1);
	assert_string_equal(pp_json_get_string(gpu, "sku"), "V100");
	fixture_free(f);
}

static void test_adopt_existing(void **unused)
{
	struct fixture *f = fixture_new(240, false);
	const struct pp_provider *p = aci();
	prepare(f);
	assert_int_equal(step_send(f, p->submit), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->submit, 200, RG_BODY, NULL, 0), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->submit, 200,
				     GROUP_BODY("Succeeded", "Terminated", ",\"exitCode\":0"), NULL,
				     0),
			 PP_STEP_DONE);
	assert_string_equal(f->io.infra_id, GROUP_ID_WIRE);
	fixture_free(f);
}

/* A PUT whose answer was lost is followed by a GET, not a blind re-PUT. */
static void test_put_lost_then_get(void **unused)
{
	struct fixture *f = fixture_new(240, false);
	const struct pp_provider *p = aci();
	prepare(f);
	assert_int_equal(step_send(f, p->submit), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->submit, 200, RG_BODY, NULL, 0), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->submit, 404, "", NULL, 0), PP_STEP_SEND);
	assert_string_equal(f->io.req.method, "PUT");
	assert_int_equal(step_answer(f, p->submit, 503, "", NULL, 0), PP_ETRANSIENT);
	assert_int_equal(step_send(f, p->submit), PP_STEP_SEND);
	assert_string_equal(f->last_method, "GET");
	assert_string_equal(f->last_url, GROUP_URL);
	fixture_free(f);
}

static void test_errors_and_throttling(void **unused)
{
	struct fixture *f = fixture_new(240, false);
	const struct pp_provider *p = aci();
	prepare(f);
	assert_int_equal(step_send(f, p->submit), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->submit, 429,
				     "{\"error\":{\"code\":\"TooManyRequests\",\"message\":\"slow "
				     "down\"}}",
				     "retry-after: 7", 7000),
			 PP_ETHROTTLED);
	assert_int_equal(f->err.retry_after_ms, 7000);
	assert_non_null(strstr(f->err.msg, "HTTP 429 TooManyRequests: slow down"));
	assert_int_equal(step_send(f, p->submit), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->submit, 200, RG_BODY, NULL, 0), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->submit, 404, "", NULL, 0), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->submit, 400,
				     "{\"error\":{\"code\":\"InvalidContainerGroupName\","
				     "\"message\":"
				     "\"The container group name 'X' is invalid.\"}}",
				     NULL, 0),
			 PP_EINVALID);
	assert_non_null(strstr(f->err.msg, "create container group: HTTP 400 "
					   "InvalidContainerGroupName: The container group name"));
	fixture_free(f);
}

static void test_template_expression_rejected(void **unused)
{
	struct fixture *f = fixture_new(240, false);
	struct pp_json *props = pp_json_path(f->job, "arm_template.resources[0].properties");
	assert_int_equal(pp_json_set_string(props, "sku", "[variables('sku')]"), 0);
	int rc = pp_exec_io_prepare(&f->io, aci(), &f->err);
	assert_int_equal(rc, PP_EINVALID);
	assert_non_null(strstr(f->err.msg, "properties.sku"));
	assert_non_null(strstr(f->err.msg, "[variables('sku')]"));
	fixture_free(f);
}

static int status_of(struct fixture *f, const char *body, long http)
{
	const struct pp_provider *p = aci();
	assert_int_equal(step_send(f, p->status), PP_STEP_SEND);
	assert_string_equal(f->last_url, GROUP_URL);
	return step_answer(f, p->status, http, body, NULL, 0);
}

static void restore(struct fixture *f)
{
	pp_run_io_set_infra_id(&f->io, NULL, "%s", GROUP_ID_WIRE);
	assert_int_equal(pp_exec_io_restore(&f->io, aci(), &f->err), 0);
}

/* A fresh run polled once with body (200): the state, start failure and
 * message its status op read from it. */
static void expect_status(const char *body, enum pp_run_state state, enum pp_start_failure failure,
			  const char *message)
{
	struct fixture *f = fixture_new(240, false);
	restore(f);
	assert_int_equal(status_of(f, body, 200), PP_STEP_DONE);
	assert_int_equal(f->io.state_out, state);
	assert_int_equal(f->io.start_failure, failure);
	assert_string_equal(f->io.message, message);
	fixture_free(f);
}

static void test_status_mapping(void **unused)
{
	struct fixture *f = fixture_new(240, false);
	restore(f);
	assert_int_equal(status_of(f, GROUP_BODY("Pending", "Waiting", ""), 200), PP_STEP_DONE);
	assert_int_equal(f->io.state_out, PP_RUN_QUEUED);
	assert_int_equal(f->io.poll_after_ms, 500);
	assert_int_equal(status_of(f, GROUP_BODY("Succeeded", "Running", ""), 200), PP_STEP_DONE);
	assert_int_equal(f->io.state_out, PP_RUN_RUNNING);
	assert_int_equal(status_of(f,
				   GROUP_BODY("Succeeded", "Terminated",
					      ",\"exitCode\":0,\"detailStatus\":\"Completed\""),
				   200),
			 PP_STEP_DONE);
	assert_int_equal(f->io.state_out, PP_RUN_SUCCEEDED);
	assert_int_equal(f->io.exit_code, 0);
	assert_int_equal(status_of(f,
				   GROUP_BODY("Succeeded", "Terminated",
					      ",\"exitCode\":3,\"detailStatus\":\"Error\""),
				   200),
			 PP_STEP_DONE);
	assert_int_equal(f->io.state_out, PP_RUN_FAILED);
	assert_int_equal(f->io.exit_code, 3);
	assert_string_equal(f->io.message, "container exited with code 3: Error");
	assert_int_equal(status_of(f, "{\"error\":{\"code\":\"ResourceNotFound\"}}", 404),
			 PP_STEP_DONE);
	assert_int_equal(f->io.state_out, PP_RUN_CRASHED);
	fixture_free(f);
}

static void test_start_timeout(void **unused)
{
	struct fixture *f = fixture_new(0, false);
	restore(f);
	assert_int_equal(
		status_of(f,
			  GROUP_BODY("Succeeded", "Waiting", ",\"detailStatus\":\"ErrImagePull\""),
			  200),
		PP_STEP_DONE);
	assert_int_equal(f->io.state_out, PP_RUN_CRASHED);
	assert_string_equal(f->io.message,
			    "container did not start within 0 s (state Waiting: ErrImagePull)");
	fixture_free(f);
}

/* A failed pull shows in the container's events: FAILED at once, with the
 * registry's reason, not a start timeout later. */
static void test_image_pull_failure(void **unused)
{
	expect_status("{\"name\":\"" GROUP "\",\"properties\":{\"provisioningState\":"
		      "\"Succeeded\",\"containers\":[{\"name\":\"" GROUP "\",\"properties\":{"
		      "\"instanceView\":{\"currentState\":{\"state\":\"Waiting\","
		      "\"detailStatus\":\"ErrImagePull\"},\"events\":["
		      "{\"name\":\"Pulling\",\"type\":\"Normal\",\"message\":\"pulling image\"},"
		      "{\"name\":\"Failed\",\"type\":\"Warning\",\"message\":"
		      "\"Failed to pull image \\\"nope:1\\\": manifest unknown\"},"
		      "{\"name\":\"Failed\",\"type\":\"Warning\",\"message\":"
		      "\"Error: ErrImagePull\"}]}}}]}}",
		      PP_RUN_FAILED, PP_START_IMAGE_PULL,
		      "image pull failed: Failed to pull image \"nope:1\": manifest unknown");
}

/* A group whose provisioning failed: the class comes from ACI's event; a
 * container that ran and exited, or a group deleted under us, is none. */
static void test_start_failure_classes(void **unused)
{
	static const struct {
		const char *event;
		enum pp_start_failure f;
	} cases[] = {
		{"InaccessibleImage: The image 'repo/x:1' in container group 'g' is not "
		 "accessible.",
		 PP_START_IMAGE_PULL},
		{"ServiceUnavailable: The requested resource is not available in the location "
		 "'westeurope' at this moment.",
		 PP_START_CAPACITY},
		{"SubnetDelegationsCannotChangeWhenSubnetUsedByContainerGroup: the subnet is in "
		 "use.",
		 PP_START_OTHER},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fixture *f = fixture_new(240, false);
		char body[1024];
		restore(f);
		snprintf(body, sizeof(body),
			 "{\"name\":\"" GROUP "\",\"properties\":{\"provisioningState\":"
			 "\"Failed\",\"containers\":[{\"name\":\"" GROUP "\",\"properties\":{"
			 "\"instanceView\":{\"events\":[{\"name\":\"Failed\",\"type\":\"Warning\","
			 "\"message\":\"%s\"}]}}}]}}",
			 cases[i].event);
		assert_int_equal(status_of(f, body, 200), PP_STEP_DONE);
		assert_int_equal(f->io.state_out, PP_RUN_CRASHED);
		assert_string_equal(pp_start_failure_name(f->io.start_failure),
				    pp_start_failure_name(cases[i].f));
		fixture_free(f);
	}
	/* The reason on the group's own view when its container has none; the
	 * poll reads the group for these views alone (the rest of it, here a
	 * volume, is not built). */
	expect_status("{\"name\":\"" GROUP "\",\"properties\":{\"provisioningState\":"
		      "\"Failed\",\"volumes\":[{\"name\":\"v\",\"emptyDir\":{}}],"
		      "\"containers\":[{\"name\":\"" GROUP "\",\"properties\":{\"image\":"
		      "\"x\"}}],\"instanceView\":{\"events\":[{\"name\":\"Failed\","
		      "\"message\":\"ServiceUnavailable: no capacity in westeurope\"}]}}}",
		      PP_RUN_CRASHED, PP_START_CAPACITY,
		      "provisioning Failed: ServiceUnavailable: no capacity in westeurope");
	struct fixture *f = fixture_new(240, false);
	restore(f);
	assert_int_equal(status_of(f,
				   GROUP_BODY("Succeeded", "Terminated",
					      ",\"exitCode\":3,\"detailStatus\":\"Error\""),
				   200),
			 PP_STEP_DONE);
	assert_int_equal(f->io.start_failure, PP_START_OK);
	assert_int_equal(status_of(f, "{\"error\":{\"code\":\"ResourceNotFound\"}}", 404),
			 PP_STEP_DONE);
	assert_int_equal(f->io.start_failure, PP_START_OK);
	fixture_free(f);
}

/* DELETE answered 202: follow the async operation to Succeeded. */
static void test_cleanup_follows_delete(void **unused)
{
	struct fixture *f = fixture_new(240, false);
	const struct pp_provider *p = aci();
	restore(f);
	assert_int_equal(step_send(f, p->cleanup), PP_STEP_SEND);
	assert_string_equal(f->last_method, "DELETE");
	assert_string_equal(f->last_url, GROUP_URL);
	assert_int_equal(step_answer(f, p->cleanup, 202, "",
				     "azure-asyncoperation: " BASE "/ops/d1\nlocation: " BASE
				     "/ops/d1/result",
				     1000),
			 PP_STEP_WAIT);
	assert_int_equal(step_send(f, p->cleanup), PP_STEP_SEND);
	assert_string_equal(f->last_url, BASE "/ops/d1");
	assert_int_equal(step_answer(f, p->cleanup, 200, "{\"status\":\"InProgress\"}", NULL, 0),
			 PP_STEP_WAIT);
	assert_int_equal(step_send(f, p->cleanup), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->cleanup, 200, "{\"status\":\"Succeeded\"}", NULL, 0),
			 PP_STEP_DONE);
	/* Already gone: a second cleanup sends nothing. */
	assert_int_equal(step_send(f, p->cleanup), PP_STEP_DONE);
	fixture_free(f);
}

static void test_cancel_gone_and_foreign_status_url(void **unused)
{
	struct fixture *f = fixture_new(240, false);
	const struct pp_provider *p = aci();
	restore(f);
	assert_int_equal(step_send(f, p->cancel), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->cancel, 202, "",
				     "azure-asyncoperation: https://evil.example/ops/1", 0),
			 PP_EINVALID);
	assert_non_null(strstr(f->err.msg, "not on the ARM endpoint"));
	assert_int_equal(step_send(f, p->cancel), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->cancel, 204, "", NULL, 0), PP_STEP_DONE);
	fixture_free(f);

	f = fixture_new(240, true);
	restore(f);
	assert_int_equal(step_send(f, p->cleanup), PP_STEP_DONE);
	fixture_free(f);
}

static void test_restore_rejects_other_ids(void **unused)
{
	struct fixture *f = fixture_new(240, false);
	pp_run_io_set_infra_id(&f->io, NULL, "projects/p/jobs/j");
	assert_int_equal(pp_exec_io_restore(&f->io, aci(), &f->err), PP_EINVALID);
	assert_non_null(strstr(f->err.msg, "not a container group id"));
	fixture_free(f);
}

/* The create operation fails: ARM's error reaches the message. */
static void test_create_operation_failed(void **unused)
{
	struct fixture *f = fixture_new(240, false);
	const struct pp_provider *p = aci();
	struct pp_json *res = pp_json_path(f->job, "arm_template.resources[0]");
	assert_int_equal(pp_json_set_string(res, "location", "northeurope"), 0);
	prepare(f);
	/* A literal location needs no resource group lookup. */
	assert_int_equal(step_send(f, p->submit), PP_STEP_SEND);
	assert_string_equal(f->last_url, GROUP_URL);
	assert_int_equal(step_answer(f, p->submit, 404, "", NULL, 0), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->submit, 201, GROUP_BODY("Creating", "Waiting", ""),
				     "azure-asyncoperation: " BASE "/ops/c1", 0),
			 PP_STEP_WAIT);
	assert_int_equal(step_send(f, p->submit), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->submit, 200,
				     "{\"status\":\"Failed\",\"error\":{\"code\":"
				     "\"InaccessibleImage\",\"message\":\"The image 'repo/img:1' "
				     "is not accessible.\"}}",
				     NULL, 0),
			 PP_EINVALID);
	assert_non_null(strstr(f->err.msg, "operation Failed: InaccessibleImage: The image"));
	/* No infra id, but the group exists: cleanup deletes it by its name. */
	assert_null(f->io.infra_id);
	assert_int_equal(step_send(f, p->cleanup), PP_STEP_SEND);
	assert_string_equal(f->last_method, "DELETE");
	assert_string_equal(f->last_url, GROUP_URL);
	assert_int_equal(step_answer(f, p->cleanup, 204, "", NULL, 0), PP_STEP_DONE);
	fixture_free(f);
}

/* A submission that failed before any PUT left nothing: cleanup sends nothing. */
static void test_cleanup_nothing_before_put(void **unused)
{
	struct fixture *f = fixture_new(240, false);
	const struct pp_provider *p = aci();
	prepare(f);
	assert_int_equal(step_send(f, p->submit), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->submit, 403,
				     "{\"error\":{\"code\":\"AuthorizationFailed\","
				     "\"message\":\"no\"}}",
				     NULL, 0),
			 PP_EAUTH);
	assert_int_equal(step_send(f, p->cleanup), PP_STEP_DONE);
	fixture_free(f);
}

/* Only a Location header: 202 means still deleting, 200 means done. */
static void test_delete_location_only(void **unused)
{
	struct fixture *f = fixture_new(240, false);
	const struct pp_provider *p = aci();
	restore(f);
	assert_int_equal(step_send(f, p->cancel), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->cancel, 202, "", "location: " BASE "/ops/l1", 0),
			 PP_STEP_WAIT);
	assert_int_equal(f->io.poll_after_ms, 2000);
	assert_int_equal(step_send(f, p->cancel), PP_STEP_SEND);
	assert_string_equal(f->last_url, BASE "/ops/l1");
	assert_int_equal(step_answer(f, p->cancel, 202, "", NULL, 0), PP_STEP_WAIT);
	assert_int_equal(step_send(f, p->cancel), PP_STEP_SEND);
	assert_int_equal(step_answer(f, p->cancel, 200, "", NULL, 0), PP_STEP_DONE);
	fixture_free(f);
}

#define LIST_URL                                                                                   \
	BASE "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-%28x%29/"      \
	     "providers/Microsoft.ContainerInstance/containerGroups?api-version=2023-05-01"

/* ListByResourceGroup: the tagged groups of every page, nextLink followed
 * only within the API the token is for. */
static void test_list_tagged_groups(void **state)
{
	(void)state;
	struct fixture *f = fixture_new(240, false);
	struct pp_remote_list l = {0};
	prepare(f);
	f->io.listed = &l;
	assert_int_equal(step_send(f, aci()->list), PP_STEP_SEND);
	assert_string_equal(f->last_method, "GET");
	assert_string_equal(f->last_url, LIST_URL);
	/* Pages of groups grow: asked for compressed (lib/http.h). */
	assert_false(f->io.req.flags & PP_HTTP_SMALL_ANSWER);
	assert_int_equal(step_answer(f, aci()->list, 200,
				     "{\"value\":[{\"id\":\"" GROUP_ID "\",\"tags\":"
				     "{\"pushpool-run-id\":\"run-a\"},\"systemData\":"
				     "{\"createdAt\":\"2026-01-01T00:00:09Z\"}},"
				     "{\"id\":\"/subscriptions/s/resourceGroups/r/theirs\","
				     "\"tags\":{\"team\":\"x\"}}],"
				     "\"nextLink\":\"" BASE "/next?page=2\"}",
				     NULL, 0),
			 PP_STEP_SEND);
	assert_string_equal(f->io.req.url, BASE "/next?page=2");
	assert_false(f->io.req.flags & PP_HTTP_SMALL_ANSWER);
	assert_int_equal(step_answer(f, aci()->list, 200,
				     "{\"value\":[{\"id\":\"/g2\",\"tags\":"
				     "{\"pushpool-run-id\":\"run-b\"}}]}",
				     NULL, 0),
			 PP_STEP_DONE);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0].id, GROUP_ID);
	assert_string_equal(l.v[0].run_id, "run-a");
	assert_true(l.v[0].created_ms == 1767225609000LL);
	assert_string_equal(l.v[1].run_id, "run-b");
	assert_true(l.v[1].created_ms == 0);

	/* A nextLink elsewhere would carry our token there: refused. */
	l.n = 0;
	assert_int_equal(step_send(f, aci()->list), PP_STEP_SEND);
	assert_int_equal(step_answer(f, aci()->list, 200,
				     "{\"value\":[],\"nextLink\":\"" BASE ".evil.example/next\"}",
				     NULL, 0),
			 PP_EINVALID);
	assert_non_null(strstr(f->err.msg, "nextLink"));
	pp_remote_list_free(&l);
	fixture_free(f);
}

static void test_remove_deletes_the_listed_group(void **state)
{
	(void)state;
	struct fixture *f = fixture_new(240, false);
	prepare(f);
	pp_run_io_set_infra_id(&f->io, NULL, "%s", GROUP_ID);
	assert_int_equal(step_send(f, aci()->remove), PP_STEP_SEND);
	assert_string_equal(f->last_method, "DELETE");
	assert_string_equal(f->last_url, BASE GROUP_ID "?api-version=2023-05-01");
	/* One group's answer: no coding asked for. */
	assert_true(f->io.req.flags & PP_HTTP_SMALL_ANSWER);
	assert_int_equal(step_answer(f, aci()->remove, 204, NULL, NULL, 0), PP_STEP_DONE);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_body),
		cmocka_unit_test(test_labels_become_valid_arm_tags),
		cmocka_unit_test(test_gpu_needs_sku),
		cmocka_unit_test(test_adopt_existing),
		cmocka_unit_test(test_put_lost_then_get),
		cmocka_unit_test(test_errors_and_throttling),
		cmocka_unit_test(test_template_expression_rejected),
		cmocka_unit_test(test_status_mapping),
		cmocka_unit_test(test_start_timeout),
		cmocka_unit_test(test_image_pull_failure),
		cmocka_unit_test(test_start_failure_classes),
		cmocka_unit_test(test_cleanup_follows_delete),
		cmocka_unit_test(test_cleanup_nothing_before_put),
		cmocka_unit_test(test_cancel_gone_and_foreign_status_url),
		cmocka_unit_test(test_restore_rejects_other_ids),
		cmocka_unit_test(test_create_operation_failed),
		cmocka_unit_test(test_delete_location_only),
		cmocka_unit_test(test_list_tagged_groups),
		cmocka_unit_test(test_remove_deletes_the_listed_group),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
