/* The mock's spec gate: each cloud's refusal comes in that cloud's error
 * shape, naming the field, and /control/validate switches one API off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/grpc.h"
#include "lib/pb.h"
#include "mock/spec.h"

static struct pp_mock *new_mock(void)
{
	struct pp_mock_opts o;
	struct pp_mock *m = NULL;
	struct pp_error err = {0};

	pp_mock_opts_defaults(&o);
	assert_int_equal(pp_mock_new(&o, &m, &err), 0);
	return m;
}

static struct pp_json *parse(const char *s)
{
	struct pp_json *j = NULL;

	assert_int_equal(pp_json_parse(s, strlen(s), NULL, &j, NULL), 0);
	return j;
}

static void resp_init(struct pp_mock_resp *r)
{
	memset(r, 0, sizeof(*r));
	pp_buf_init(&r->body, PP_MOCK_BODY_MAX);
}

static void resp_free(struct pp_mock_resp *r)
{
	pp_buf_free(&r->body);
	for (size_t i = 0; i < r->nhdr; i++)
		free(r->hdr_values[i]);
}

static void assert_body_has(const struct pp_mock_resp *r, const char *want)
{
	if (!strstr(pp_buf_str(&r->body), want))
		fail_msg("body %s lacks %s", pp_buf_str(&r->body), want);
}

/* POST /control/validate with body. */
static void set_validate(struct pp_mock *m, const char *body, int want_status)
{
	struct pp_mock_req req = {.method = "POST", .body = body, .body_len = strlen(body)};
	struct pp_mock_resp r;

	resp_init(&r);
	pp_mock_specs_control(pp_mock_specs_of(m), &req, &r);
	assert_int_equal(r.status, want_status);
	resp_free(&r);
}

static void test_ecs_error_shape(void **state)
{
	struct pp_mock *m = new_mock();
	struct pp_json *body = parse("{\"taskDefinition\":\"td\",\"tags\":[{\"key\":\"team\","
				     "\"value\":\"a&b\"}]}");
	struct pp_mock_resp r;

	resp_init(&r);
	assert_true(pp_mock_spec_ecs(m, "RunTask", body, &r));
	assert_int_equal(r.status, 400);
	assert_string_equal(r.reject_reason, "ValidationException");
	assert_body_has(&r, "{\"__type\":\"ValidationException\",\"message\":\"1 validation error "
			    "detected: Value 'a&b' at 'tags.1.member.value' failed to satisfy");
	resp_free(&r);

	/* Switched off, the same request goes through to the handler. */
	set_validate(m, "{\"api\":\"ecs\",\"enabled\":false}", 200);
	resp_init(&r);
	assert_false(pp_mock_spec_ecs(m, "RunTask", body, &r));
	resp_free(&r);
	assert_true(pp_mock_specs_enabled(pp_mock_specs_of(m), "arm"));
	set_validate(m, "{\"api\":\"nope\",\"enabled\":false}", 400);
	set_validate(m, "{\"enabled\":true}", 200);
	assert_true(pp_mock_specs_enabled(pp_mock_specs_of(m), "ecs"));
	pp_json_free(body);
	pp_mock_free(m);
}

static void test_arm_error_shape(void **state)
{
	struct pp_mock *m = new_mock();
	struct pp_json *body = parse(
		"{\"location\":\"eastus\",\"tags\":{\"prefect.io/"
		"flow-run-id\":\"x\"},\"properties\":"
		"{\"osType\":\"Linux\",\"containers\":[{\"name\":\"job\",\"properties\":{\"image\":"
		"\"i\",\"resources\":{\"requests\":{\"cpu\":1,\"memoryInGB\":1}}}}]}}");
	struct pp_mock_resp r;

	resp_init(&r);
	assert_true(pp_mock_spec_arm(m, "ContainerGroups_CreateOrUpdate", "grp", body, &r));
	assert_int_equal(r.status, 400);
	assert_body_has(&r, "{\"error\":{\"code\":\"InvalidTagNameCharacters\",\"message\":\"The "
			    "tag names 'prefect.io/flow-run-id' have reserved characters");
	resp_free(&r);
	pp_json_remove(pp_json_get(body, "tags"), "prefect.io/flow-run-id");
	resp_init(&r);
	assert_false(pp_mock_spec_arm(m, "ContainerGroups_CreateOrUpdate", "grp", body, &r));
	assert_true(pp_mock_spec_arm(m, "ContainerGroups_CreateOrUpdate", "Grp", body, &r));
	assert_body_has(&r, "InvalidContainerGroupName");
	resp_free(&r);
	pp_json_free(body);
	pp_mock_free(m);
}

static void test_cloudrun_error_shape(void **state)
{
	struct pp_mock *m = new_mock();
	const char *body = "{\"template\":{\"template\":{\"containers\":[{\"image\":\"i\"}]}},"
			   "\"generation\":\"3\"}";
	struct pp_mock_req req = {.method = "POST", .body = body, .body_len = strlen(body)};
	struct pp_mock_resp r;

	resp_init(&r);
	assert_true(pp_mock_spec_cloudrun(m, "google.cloud.run.v2.Jobs.CreateJob", &req, &r));
	assert_int_equal(r.status, 400);
	assert_string_equal(r.action, "CreateJob");
	assert_body_has(&r,
			"\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type."
			"googleapis.com/google.rpc.BadRequest\",\"fieldViolations\":[{\"field\":"
			"\"job.generation\"");
	resp_free(&r);
	pp_mock_free(m);
}

static void test_modal_status(void **state)
{
	struct pp_mock *m = new_mock();
	struct pp_buf b;
	char why[256];

	pp_buf_init(&b, 1024);
	assert_int_equal(pp_pb_string(&b, 1, "app"), 0);
	assert_int_equal(pp_mock_spec_modal(m, "AppGetOrCreate", "9", "1.0.0", "modal-go/0.5.0",
					    b.data, b.len, why, sizeof(why)),
			 0);
	assert_int_equal(pp_mock_spec_modal(m, "AppGetOrCreate", "1", "1.1.4", "", b.data, b.len,
					    why, sizeof(why)),
			 0);
	/* CLIENT_TYPE_LIBMODAL (7) is what SDKs sent before modal-go 0.0.15. */
	assert_int_equal(pp_mock_spec_modal(m, "AppGetOrCreate", "7", "1.0.0", "", b.data, b.len,
					    why, sizeof(why)),
			 PP_GRPC_INVALID_ARGUMENT);
	assert_non_null(strstr(why, "x-modal-client-type"));
	assert_int_equal(pp_mock_spec_modal(m, "AppGetOrCreate", "1", "0.64.1", "", b.data, b.len,
					    why, sizeof(why)),
			 PP_GRPC_FAILED_PRECONDITION);
	assert_int_equal(pp_mock_spec_modal(m, "AppGetOrCreate", "9", "1.0.0", "", b.data, b.len,
					    why, sizeof(why)),
			 PP_GRPC_INVALID_ARGUMENT);
	assert_int_equal(pp_pb_varint(&b, 2, 5), 0); /* environment_name is a string */
	assert_int_equal(pp_mock_spec_modal(m, "AppGetOrCreate", "9", "1.0.0", "modal-go/0.5.0",
					    b.data, b.len, why, sizeof(why)),
			 PP_GRPC_INVALID_ARGUMENT);
	assert_non_null(strstr(why, "environment_name"));
	pp_buf_free(&b);
	pp_mock_free(m);
}

/* One request the provisioning APIs' protos refuse or accept. */
static void gcpinfra(struct pp_mock *m, const char *method, const char *body, bool refused,
		     const char *want)
{
	struct pp_mock_req req = {.method = "POST", .body = body, .body_len = strlen(body)};
	struct pp_mock_resp r;

	resp_init(&r);
	assert_int_equal(pp_mock_spec_gcpinfra(m, method, &req, &r), refused);
	if (refused) {
		assert_int_equal(r.status, 400);
		assert_body_has(&r, want);
	}
	resp_free(&r);
}

/* The bodies `pushpool provision` sends pass; what Google refuses is
 * refused: an output-only field, a required one missing, an unknown one. */
static void test_gcpinfra_bodies(void **state)
{
	struct pp_mock *m = new_mock();

	gcpinfra(m, "google.iam.admin.v1.IAM.CreateServiceAccount",
		 "{\"accountId\":\"pp-cr-run\",\"serviceAccount\":{\"displayName\":\"d\","
		 "\"description\":\"pushpool-pool=cr\"}}",
		 false, NULL);
	gcpinfra(m, "google.iam.admin.v1.IAM.CreateServiceAccount",
		 "{\"accountId\":\"pp-cr-run\",\"serviceAccount\":{\"email\":\"x@y\"}}", true,
		 "\"field\":\"serviceAccount.email\"");
	gcpinfra(m, "google.iam.admin.v1.IAM.CreateServiceAccount", "{\"serviceAccount\":{}}", true,
		 "accountId");
	gcpinfra(m, "google.cloud.resourcemanager.v3.Projects.SetIamPolicy",
		 "{\"policy\":{\"bindings\":[{\"role\":\"roles/run.developer\",\"members\":"
		 "[\"user:a@b\"]}],\"etag\":\"BwY1\"}}",
		 false, NULL);
	gcpinfra(m, "google.cloud.resourcemanager.v3.Projects.SetIamPolicy",
		 "{\"policy\":{\"bindings\":[{\"role\":\"r\",\"member\":\"user:a@b\"}]}}", true,
		 "member");
	gcpinfra(m, "google.api.serviceusage.v1.ServiceUsage.DisableService",
		 "{\"disableDependentServices\":false,\"checkIfServiceHasUsage\":\"CHECK\"}", false,
		 NULL);
	gcpinfra(m, "google.api.serviceusage.v1.ServiceUsage.DisableService",
		 "{\"checkIfServiceHasUsage\":\"SOMETIMES\"}", true, "checkIfServiceHasUsage");
	gcpinfra(m, "google.devtools.artifactregistry.v1.ArtifactRegistry.CreateRepository",
		 "{\"format\":\"DOCKER\",\"labels\":{\"pushpool-pool\":\"cr\"}}", false, NULL);
	gcpinfra(m, "google.devtools.artifactregistry.v1.ArtifactRegistry.CreateRepository",
		 "{\"format\":\"DOCKER\",\"createTime\":\"2020-01-01T00:00:00Z\"}", true,
		 "repository.createTime");
	pp_mock_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ecs_error_shape),	     cmocka_unit_test(test_arm_error_shape),
		cmocka_unit_test(test_cloudrun_error_shape), cmocka_unit_test(test_modal_status),
		cmocka_unit_test(test_gcpinfra_bodies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
