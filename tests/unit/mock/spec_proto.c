/* The protobuf validators built from descriptor sets protoc compiled from the
 * vendored protos: Cloud Run v2 JSON bodies under proto3 JSON rules and
 * Modal gRPC messages in wire format. Bodies like pushpool's pass; each kind
 * of violation is refused with INVALID_ARGUMENT and the field's path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/pb.h"
#include "mock/spec.h"

static struct pp_spec_proto *run, *modal;

static int load(const char *name, struct pp_spec_proto **out)
{
	const unsigned char *data;
	size_t len;
	struct pp_error err = {0};

	if (pp_spec_blob(name, &data, &len, &err) || pp_spec_proto_load(data, len, out, &err)) {
		print_error("%s: %s\n", name, err.msg);
		return -1;
	}
	return 0;
}

static int setup(void **state)
{
	return load("run", &run) || load("modal", &modal) ? -1 : 0;
}

static int teardown(void **state)
{
	pp_spec_proto_free(run);
	pp_spec_proto_free(modal);
	return 0;
}

#define CREATE_JOB "google.cloud.run.v2.Jobs.CreateJob"

static size_t check_json(const char *method, const char *body, struct pp_spec_report *rep)
{
	struct pp_json *j = NULL;
	size_t n;

	assert_int_equal(pp_json_parse(body, strlen(body), NULL, &j, NULL), 0);
	n = pp_spec_proto_check_json(run, method, j, rep);
	pp_json_free(j);
	return n;
}

static void assert_refused(const char *method, const char *body, const char *field,
			   const char *in_message)
{
	struct pp_spec_report rep;

	assert_int_equal(check_json(method, body, &rep), 1);
	assert_string_equal(rep.code, "INVALID_ARGUMENT");
	assert_string_equal(rep.v[0].field, field);
	if (!strstr(rep.v[0].desc, in_message))
		fail_msg("message \"%s\" lacks \"%s\"", rep.v[0].desc, in_message);
}

/* A job as the Cloud Run template renders it, with `extra` added to the
 * container. */
static void job(char *out, size_t size, const char *container_extra, const char *job_extra)
{
	snprintf(out, size,
		 "{\"client\":\"prefect\",\"launchStage\":\"BETA\",\"labels\":{\"prefect-io_flow-"
		 "run-id\":\"x\"}%s,\"template\":{\"taskCount\":1,\"template\":{\"serviceAccount\":"
		 "\"sa@p.iam.gserviceaccount.com\",\"maxRetries\":0,\"timeout\":\"600s\","
		 "\"vpcAccess\":{\"connector\":null},\"containers\":[{\"env\":[{\"name\":\"A\","
		 "\"value\":\"1\"}],\"image\":\"prefecthq/prefect:3\",\"command\":[\"prefect\"],"
		 "\"args\":[],\"resources\":{\"limits\":{\"cpu\":\"1000m\",\"memory\":\"512Mi\"}}%"
		 "s}]}}}",
		 job_extra, container_extra);
}

static void test_cloud_run_valid(void **state)
{
	char body[4096];
	struct pp_spec_report rep;

	job(body, sizeof(body), "", "");
	assert_int_equal(check_json(CREATE_JOB, body, &rep), 0);
	/* RunJob's body is the whole request; `name` comes from the URL. */
	assert_int_equal(check_json("google.cloud.run.v2.Jobs.RunJob", "{}", &rep), 0);
	assert_int_equal(check_json("google.cloud.run.v2.Jobs.RunJob",
				    "{\"overrides\":{\"taskCount\":2,\"timeout\":\"3.5s\","
				    "\"containerOverrides\":"
				    "[{\"args\":[\"a\"],\"clearArgs\":false}]}}",
				    &rep),
			 0);
	assert_int_equal(check_json("google.cloud.run.v2.Executions.CancelExecution", "{}", &rep),
			 0);
}

static void test_cloud_run_violations(void **state)
{
	char body[4096];

	job(body, sizeof(body), ",\"imagePullPolicy\":\"Always\"", "");
	assert_refused(CREATE_JOB, body, "job.template.template.containers[0]",
		       "Invalid JSON payload received. Unknown name \"imagePullPolicy\" at "
		       "'job.template.template.containers[0]': Cannot find field.");
	job(body, sizeof(body), "", ",\"uid\":\"u\"");
	assert_refused(CREATE_JOB, body, "job.uid", "output only");
	assert_refused(CREATE_JOB,
		       "{\"launchStage\":\"SOON\",\"template\":{\"template\":{\"containers\":[{"
		       "\"image\":\"i\"}]}}}",
		       "job.launchStage", "(type.googleapis.com/google.api.LaunchStage), SOON");
	assert_refused(
		CREATE_JOB,
		"{\"template\":{\"template\":{\"timeout\":\"600\",\"containers\":[{\"image\":"
		"\"i\"}]}}}",
		"job.template.template.timeout", "Illegal duration format");
	assert_refused(CREATE_JOB,
		       "{\"template\":{\"taskCount\":\"one\",\"template\":{\"containers\":[{"
		       "\"image\":\"i\"}]}}}",
		       "job.template.taskCount", "(TYPE_INT32), one");
	assert_refused(CREATE_JOB, "{\"client\":\"prefect\"}", "job.template",
		       "missing a required field: 'job.template'");
	assert_refused(CREATE_JOB, "{\"template\":{\"template\":{\"containers\":[{\"args\":[]}]}}}",
		       "job.template.template.containers[0].image", "missing a required field");
}

/* Cloud Logging's ListLogEntries, in the same descriptor set: the body is
 * the whole request ("*"); resourceNames is REQUIRED. */
static void test_list_log_entries(void **state)
{
	struct pp_spec_report rep;
	const char *list = "google.logging.v2.LoggingServiceV2.ListLogEntries";

	assert_int_equal(check_json(list,
				    "{\"resourceNames\":[\"projects/p\"],\"filter\":\"x\","
				    "\"orderBy\":\"timestamp asc\",\"pageSize\":1000,"
				    "\"pageToken\":\"t\"}",
				    &rep),
			 0);
	assert_refused(list, "{\"filter\":\"x\"}", "resourceNames", "missing a required field");
	assert_refused(list, "{\"resourceNames\":[\"projects/p\"],\"projectIds\":[\"p\"]}",
		       "projectIds", "Unknown name \"projectIds\"");
	assert_refused(list, "{\"resourceNames\":[\"projects/p\"],\"pageSize\":\"many\"}",
		       "pageSize", "many");
}

/* AppGetOrCreateRequest {1 app_name, 2 environment_name, 3 object_creation_type}. */
static void test_modal_wire(void **state)
{
	struct pp_buf b, inner;
	struct pp_spec_report rep;
	const char *m = "modal.client.ModalClient.AppGetOrCreate";

	pp_buf_init(&b, 4096);
	pp_buf_init(&inner, 4096);
	assert_int_equal(pp_pb_string(&b, 1, "prefect-app"), 0);
	assert_int_equal(pp_pb_varint(&b, 3, 1), 0);
	assert_int_equal(pp_spec_proto_check_wire(modal, m, b.data, b.len, &rep), 0);

	/* Field 3 is an enum: a string there is the wrong wire type. */
	assert_int_equal(pp_pb_string(&b, 3, "x"), 0);
	assert_int_equal(pp_spec_proto_check_wire(modal, m, b.data, b.len, &rep), 1);
	assert_string_equal(rep.code, "INVALID_ARGUMENT");
	assert_string_equal(rep.v[0].field, "object_creation_type");
	assert_non_null(strstr(rep.v[0].desc, "wire type length-delimited, declared TYPE_ENUM"));

	/* An unknown field number, inside a nested message:
	 * SandboxCreateRequest {2 definition: Sandbox}. */
	pp_buf_reset(&b);
	assert_int_equal(pp_pb_string(&inner, 1, "cmd"), 0); /* Sandbox.entrypoint_args */
	assert_int_equal(pp_pb_varint(&inner, 999, 1), 0);
	assert_int_equal(pp_pb_string(&b, 1, "ap-1"), 0);
	assert_int_equal(pp_pb_message(&b, 2, &inner), 0);
	assert_int_equal(pp_spec_proto_check_wire(modal, "modal.client.ModalClient.SandboxCreate",
						  b.data, b.len, &rep),
			 1);
	assert_string_equal(rep.v[0].field, "definition.#999");
	assert_non_null(strstr(rep.v[0].desc, "field number 999 is not declared in "
					      "modal.client.Sandbox"));

	/* Invalid UTF-8 in a string. */
	pp_buf_reset(&b);
	assert_int_equal(pp_pb_bytes(&b, 1, "\xff\xfe", 2), 0);
	assert_int_equal(pp_spec_proto_check_wire(modal, m, b.data, b.len, &rep), 1);
	assert_string_equal(rep.v[0].field, "app_name");
	pp_buf_free(&b);
	pp_buf_free(&inner);

	assert_int_equal(pp_spec_proto_enum_value(modal, "modal.client.ClientType",
						  "CLIENT_TYPE_LIBMODAL_GO"),
			 9);
	assert_int_equal(pp_spec_proto_enum_value(modal, "modal.client.ClientType", "NOPE"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cloud_run_valid),
		cmocka_unit_test(test_cloud_run_violations),
		cmocka_unit_test(test_list_log_entries),
		cmocka_unit_test(test_modal_wire),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
