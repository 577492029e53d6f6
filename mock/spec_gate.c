/* The gate between the fake clouds and the spec validators: loads each spec
 * on first use, keeps one on/off switch per API (POST /control/validate),
 * and turns a validator's report into the cloud's own error answer. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/grpc.h"
#include "lib/log.h"
#include "mock/spec.h"

static const char *const apis[] = {"ecs", "arm", "cloudrun", "modal", "logs", "gcpinfra"};
#define NSPEC_APIS (sizeof(apis) / sizeof(apis[0]))

struct pp_mock_specs {
	pthread_mutex_t lock;
	bool enabled[NSPEC_APIS];
	struct pp_spec_botocore *ecs, *logs;
	struct pp_spec_swagger *aci;
	struct pp_spec_proto *run, *modal, *gcpinfra;
	char load_error[NSPEC_APIS][PP_ERRMSG_MAX]; /* a load that failed stays failed */
	/* PUSHPOOL_MOCK_BODY_DIR: every body the gate sees is also written there,
	 * for the interop suite to judge with the clouds' own libraries. */
	char dump_dir[512];
	unsigned long dumped;
};

int pp_mock_specs_new(struct pp_mock_specs **out, struct pp_error *err)
{
	struct pp_mock_specs *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return pp_fail(err, PP_ENOMEM, "mock: out of memory");
	pthread_mutex_init(&s->lock, NULL);
	for (size_t i = 0; i < NSPEC_APIS; i++)
		s->enabled[i] = true;
	if (getenv("PUSHPOOL_MOCK_BODY_DIR"))
		snprintf(s->dump_dir, sizeof(s->dump_dir), "%s", getenv("PUSHPOOL_MOCK_BODY_DIR"));
	*out = s;
	return 0;
}

void pp_mock_specs_free(struct pp_mock_specs *s)
{
	if (!s)
		return;
	pp_spec_botocore_free(s->ecs);
	pp_spec_botocore_free(s->logs);
	pp_spec_swagger_free(s->aci);
	pp_spec_proto_free(s->run);
	pp_spec_proto_free(s->modal);
	pp_spec_proto_free(s->gcpinfra);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static int api_index(const char *api)
{
	for (size_t i = 0; i < NSPEC_APIS; i++)
		if (strcmp(apis[i], api) == 0)
			return (int)i;
	return -1;
}

bool pp_mock_specs_enabled(struct pp_mock_specs *s, const char *api)
{
	int i = api_index(api);
	bool on;

	pthread_mutex_lock(&s->lock);
	on = i >= 0 && s->enabled[i];
	pthread_mutex_unlock(&s->lock);
	return on;
}

void pp_mock_specs_control(struct pp_mock_specs *s, const struct pp_mock_req *req,
			   struct pp_mock_resp *resp)
{
	if (strcmp(req->method, "POST") == 0) {
		struct pp_json *j = NULL;
		struct pp_error err = {0};
		const char *api;
		int i = -1;

		if (pp_json_parse(req->body, req->body_len, NULL, &j, &err) ||
		    !pp_json_is(pp_json_get(j, "enabled"), PP_JSON_BOOL)) {
			pp_mock_resp_printf(
				resp, 400, "text/plain",
				"validate: want {\"api\":\"ecs\",\"enabled\":false} %s\n", err.msg);
			pp_json_free(j);
			return;
		}
		api = pp_json_get_string(j, "api");
		if (api && strcmp(api, "*") != 0 && (i = api_index(api)) < 0) {
			pp_mock_resp_printf(
				resp, 400, "text/plain",
				"validate: no API %s (ecs, arm, cloudrun, modal, gcpinfra)\n", api);
			pp_json_free(j);
			return;
		}
		pthread_mutex_lock(&s->lock);
		for (size_t k = 0; k < NSPEC_APIS; k++)
			if (i < 0 || (size_t)i == k)
				s->enabled[k] = pp_json_get_bool(j, "enabled", true);
		pthread_mutex_unlock(&s->lock);
		pp_json_free(j);
	} else if (strcmp(req->method, "GET") != 0) {
		pp_mock_resp_printf(resp, 405, "text/plain", "validate: GET or POST\n");
		return;
	}
	pthread_mutex_lock(&s->lock);
	pp_mock_resp_printf(resp, 200, "application/json", "{");
	for (size_t k = 0; k < NSPEC_APIS; k++)
		pp_buf_printf(&resp->body, "%s\"%s\":%s", k ? "," : "", apis[k],
			      s->enabled[k] ? "true" : "false");
	pp_buf_puts(&resp->body, "}\n");
	pthread_mutex_unlock(&s->lock);
}

/* DIR/NNNNNN-api-action.ext, numbered in arrival order. */
static void dump(struct pp_mock_specs *s, const char *api, const char *action, const char *ext,
		 const void *p, size_t n)
{
	char path[700];
	FILE *f;

	if (!s->dump_dir[0])
		return;
	pthread_mutex_lock(&s->lock);
	snprintf(path, sizeof(path), "%s/%06lu-%s-%s.%s", s->dump_dir, ++s->dumped, api, action,
		 ext);
	pthread_mutex_unlock(&s->lock);
	f = fopen(path, "wb");
	if (!f) {
		pp_warn("mock: cannot write %s: %m", path);
		return;
	}
	if (n && fwrite(p, 1, n, f) != n)
		pp_warn("mock: cannot write %s", path);
	fclose(f);
}

static void dump_json(struct pp_mock_specs *s, const char *api, const char *action,
		      const struct pp_json *j)
{
	char *text;

	if (!s->dump_dir[0] || !(text = pp_json_to_string(j, PP_JSON_COMPACT)))
		return;
	dump(s, api, action, "json", text, strlen(text));
	free(text);
}

/* The loaded spec for api, loading it on first use; NULL with why filled
 * when it cannot be loaded. */
static void *spec_for(struct pp_mock_specs *s, const char *api, char *why, size_t why_size)
{
	int i = api_index(api);
	struct pp_error err = {0};
	const unsigned char *data;
	size_t len;
	void *spec = NULL;

	pthread_mutex_lock(&s->lock);
	if (strcmp(api, "ecs") == 0 || strcmp(api, "logs") == 0) {
		struct pp_spec_botocore **slot = strcmp(api, "ecs") == 0 ? &s->ecs : &s->logs;

		if (!*slot && !s->load_error[i][0] &&
		    (pp_spec_blob(api, &data, &len, &err) ||
		     pp_spec_botocore_load((const char *)data, len, slot, &err)))
			snprintf(s->load_error[i], sizeof(s->load_error[i]), "%s", err.msg);
		spec = *slot;
	} else if (strcmp(api, "arm") == 0) {
		if (!s->aci && !s->load_error[i][0] &&
		    (pp_spec_blob("aci", &data, &len, &err) ||
		     pp_spec_swagger_load((const char *)data, len, &s->aci, &err)))
			snprintf(s->load_error[i], sizeof(s->load_error[i]), "%s", err.msg);
		spec = s->aci;
	} else {
		struct pp_spec_proto **slot = strcmp(api, "modal") == 0	     ? &s->modal
					      : strcmp(api, "gcpinfra") == 0 ? &s->gcpinfra
									     : &s->run;
		const char *blob = strcmp(api, "modal") == 0	  ? "modal"
				   : strcmp(api, "gcpinfra") == 0 ? "gcpinfra"
								  : "run";

		if (!*slot && !s->load_error[i][0] &&
		    (pp_spec_blob(blob, &data, &len, &err) ||
		     pp_spec_proto_load(data, len, slot, &err)))
			snprintf(s->load_error[i], sizeof(s->load_error[i]), "%s", err.msg);
		spec = *slot;
	}
	if (!spec)
		snprintf(why, why_size, "mock: %s spec: %s", api, s->load_error[i]);
	pthread_mutex_unlock(&s->lock);
	return spec;
}

/* {"<key>":{"code":CODE,"message":MSG}} (ARM) or {"__type":CODE,"message":MSG} (AWS). */
static void json_error_body(struct pp_mock_resp *resp, bool arm, const char *code, const char *msg)
{
	pp_buf_puts(&resp->body, arm ? "{\"error\":{\"code\":" : "{\"__type\":");
	pp_json_write_string(&resp->body, code, strlen(code));
	pp_buf_puts(&resp->body, ",\"message\":");
	pp_json_write_string(&resp->body, msg, strlen(msg));
	pp_buf_puts(&resp->body, arm ? "}}" : "}");
}

/* A JSON 1.1 request of api ("ecs", "logs") against its botocore model. */
static bool botocore_gate(struct pp_mock *m, const char *api, const char *action,
			  const struct pp_json *body, struct pp_mock_resp *resp)
{
	struct pp_mock_specs *s = pp_mock_specs_of(m);
	struct pp_spec_report rep;
	struct pp_spec_botocore *b;
	char msg[4096], why[PP_ERRMSG_MAX + 32];
	size_t off = 0;

	dump_json(s, api, action, body);
	if (!pp_mock_specs_enabled(s, api))
		return false;
	if (!(b = spec_for(s, api, why, sizeof(why)))) {
		pp_mock_resp_printf(resp, 500, "text/plain", "%s\n", why);
		return true;
	}
	if (!pp_spec_botocore_check(b, action, body, &rep))
		return false;
	/* AWS joins constraint violations: "2 validation errors detected: A; B". */
	if (strcmp(rep.code, "ValidationException") == 0)
		off = (size_t)snprintf(msg, sizeof(msg),
				       "%zu validation error%s detected: ", rep.total,
				       rep.total == 1 ? "" : "s");
	for (size_t i = 0; i < rep.n && off < sizeof(msg); i++)
		off += (size_t)snprintf(msg + off, sizeof(msg) - off, "%s%s", i ? "; " : "",
					rep.v[i].desc);
	resp->reject_reason = rep.code;
	pp_mock_resp_printf(resp, 400, "application/x-amz-json-1.1", "%s", "");
	json_error_body(resp, false, rep.code, msg);
	pp_mock_resp_header(resp, "x-amzn-ErrorType", rep.code);
	return true;
}

bool pp_mock_spec_ecs(struct pp_mock *m, const char *action, const struct pp_json *body,
		      struct pp_mock_resp *resp)
{
	return botocore_gate(m, "ecs", action, body, resp);
}

bool pp_mock_spec_logs(struct pp_mock *m, const char *action, const struct pp_json *body,
		       struct pp_mock_resp *resp)
{
	return botocore_gate(m, "logs", action, body, resp);
}

bool pp_mock_spec_arm(struct pp_mock *m, const char *operation_id, const char *group_name,
		      const struct pp_json *body, struct pp_mock_resp *resp)
{
	struct pp_mock_specs *s = pp_mock_specs_of(m);
	struct pp_spec_report rep;
	struct pp_spec_swagger *sw;
	char why[PP_ERRMSG_MAX + 32];

	dump_json(s, "arm", operation_id, body);
	if (!pp_mock_specs_enabled(s, "arm"))
		return false;
	if (!(sw = spec_for(s, "arm", why, sizeof(why)))) {
		pp_mock_resp_printf(resp, 500, "text/plain", "%s\n", why);
		return true;
	}
	pp_spec_swagger_check(sw, operation_id, body, &rep);
	if (!rep.total && group_name)
		pp_spec_arm_name_check("containerGroup", group_name, &rep);
	if (!rep.total)
		return false;
	/* ARM answers the first problem it meets. */
	resp->reject_reason = rep.code;
	pp_mock_resp_printf(resp, 400, "application/json; charset=utf-8", "%s", "");
	json_error_body(resp, true, rep.code, rep.v[0].desc);
	return true;
}

static const char *req_arg(const void *ctx, const char *name)
{
	return pp_mock_arg(ctx, name);
}

bool pp_mock_spec_arm_query(struct pp_mock *m, const char *operation_id,
			    const struct pp_mock_req *req, struct pp_mock_resp *resp)
{
	struct pp_mock_specs *s = pp_mock_specs_of(m);
	struct pp_spec_report rep;
	struct pp_spec_swagger *sw;
	char why[PP_ERRMSG_MAX + 32];

	dump(s, "arm", operation_id, "query", req->raw_query, strlen(req->raw_query));
	if (!pp_mock_specs_enabled(s, "arm"))
		return false;
	if (!(sw = spec_for(s, "arm", why, sizeof(why)))) {
		pp_mock_resp_printf(resp, 500, "text/plain", "%s\n", why);
		return true;
	}
	if (!pp_spec_swagger_check_query(sw, operation_id, req_arg, req, &rep))
		return false;
	resp->reject_reason = rep.code;
	pp_mock_resp_printf(resp, 400, "application/json; charset=utf-8", "%s", "");
	json_error_body(resp, true, rep.code, rep.v[0].desc);
	return true;
}

/* A Google REST request against the protos of api ("cloudrun", "gcpinfra"). */
static bool spec_google(struct pp_mock *m, const char *api, const char *method,
			const struct pp_mock_req *req, struct pp_mock_resp *resp)
{
	struct pp_mock_specs *s = pp_mock_specs_of(m);
	struct pp_spec_report rep;
	struct pp_spec_proto *p;
	struct pp_json *body = NULL;
	char why[PP_ERRMSG_MAX + 32];
	const char *short_name = strrchr(method, '.');

	dump(s, api, short_name ? short_name + 1 : method, "json", req->body, req->body_len);
	if (!pp_mock_specs_enabled(s, api))
		return false;
	if (!(p = spec_for(s, api, why, sizeof(why)))) {
		pp_mock_resp_printf(resp, 500, "text/plain", "%s\n", why);
		return true;
	}
	/* Not JSON at all: the handler answers that in its own words. */
	if (req->body_len && pp_json_parse(req->body, req->body_len, NULL, &body, NULL))
		return false;
	if (!body && !(body = pp_json_new(PP_JSON_OBJECT)))
		return false;
	pp_spec_proto_check_json(p, method, body, &rep);
	pp_json_free(body);
	if (!rep.total)
		return false;
	snprintf(resp->action, sizeof(resp->action), "%s", short_name ? short_name + 1 : method);
	resp->reject_reason = "INVALID_ARGUMENT";
	pp_mock_resp_printf(resp, 400, "application/json; charset=UTF-8",
			    "{\"error\":{\"code\":400,\"message\":");
	pp_json_write_string(&resp->body, rep.v[0].desc, strlen(rep.v[0].desc));
	pp_buf_puts(&resp->body,
		    ",\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":"
		    "\"type.googleapis.com/google.rpc.BadRequest\",\"fieldViolations\":[");
	for (size_t i = 0; i < rep.n; i++) {
		pp_buf_puts(&resp->body, i ? ",{\"field\":" : "{\"field\":");
		pp_json_write_string(&resp->body, rep.v[i].field, strlen(rep.v[i].field));
		pp_buf_puts(&resp->body, ",\"description\":");
		pp_json_write_string(&resp->body, rep.v[i].desc, strlen(rep.v[i].desc));
		pp_buf_puts(&resp->body, "}");
	}
	pp_buf_puts(&resp->body, "]}]}}");
	return true;
}

bool pp_mock_spec_cloudrun(struct pp_mock *m, const char *method, const struct pp_mock_req *req,
			   struct pp_mock_resp *resp)
{
	return spec_google(m, "cloudrun", method, req, resp);
}

bool pp_mock_spec_gcpinfra(struct pp_mock *m, const char *method, const struct pp_mock_req *req,
			   struct pp_mock_resp *resp)
{
	return spec_google(m, "gcpinfra", method, req, resp);
}

/* The headers the current SDKs send (tests/data/cloud-specs/SOURCES.md):
 * the Python SDK CLIENT_TYPE_CLIENT with its own version (1.x and later);
 * modal-js and modal-go CLIENT_TYPE_LIBMODAL_JS / _GO with "1.0.0" and an
 * x-modal-libmodal-version naming the library. The numbers come from
 * api.proto's ClientType enum. */
static int modal_headers(const struct pp_spec_proto *p, const char *type, const char *version,
			 const char *libmodal, char *why, size_t why_size)
{
	long python = pp_spec_proto_enum_value(p, "modal.client.ClientType", "CLIENT_TYPE_CLIENT");
	long js = pp_spec_proto_enum_value(p, "modal.client.ClientType", "CLIENT_TYPE_LIBMODAL_JS");
	long go = pp_spec_proto_enum_value(p, "modal.client.ClientType", "CLIENT_TYPE_LIBMODAL_GO");
	char *end;
	long t = strtol(type, &end, 10);

	if (!*type || *end || (t != python && t != js && t != go)) {
		snprintf(why, why_size,
			 "x-modal-client-type must be %ld (Python SDK), %ld (modal-js) or %ld "
			 "(modal-go), not '%s'",
			 python, js, go, type);
		return PP_GRPC_INVALID_ARGUMENT;
	}
	if (!*version) {
		snprintf(why, why_size, "Client version is required (x-modal-client-version)");
		return PP_GRPC_INVALID_ARGUMENT;
	}
	if (t == python ? strtol(version, NULL, 10) < 1 : strcmp(version, "1.0.0") != 0) {
		snprintf(why, why_size,
			 "x-modal-client-version '%s' is not one a current SDK of "
			 "client type %ld sends",
			 version, t);
		return PP_GRPC_FAILED_PRECONDITION;
	}
	if (t != python && !*libmodal) {
		snprintf(why, why_size, "x-modal-libmodal-version is required for client type %ld",
			 t);
		return PP_GRPC_INVALID_ARGUMENT;
	}
	return 0;
}

int pp_mock_spec_modal(struct pp_mock *m, const char *rpc, const char *client_type,
		       const char *client_version, const char *libmodal_version, const void *msg,
		       size_t len, char *why, size_t why_size)
{
	struct pp_mock_specs *s = pp_mock_specs_of(m);
	struct pp_spec_report rep;
	struct pp_spec_proto *p;
	char method[160];
	int code;

	dump(s, "modal", rpc, "bin", msg, len);
	if (!pp_mock_specs_enabled(s, "modal"))
		return 0;
	if (!(p = spec_for(s, "modal", why, why_size)))
		return PP_GRPC_INTERNAL;
	code = modal_headers(p, client_type, client_version, libmodal_version, why, why_size);
	if (code)
		return code;
	snprintf(method, sizeof(method), "modal.client.ModalClient.%s", rpc);
	if (!pp_spec_proto_check_wire(p, method, msg, len, &rep))
		return 0;
	snprintf(why, why_size, "%s", rep.v[0].desc);
	return strcmp(rep.code, "UNIMPLEMENTED") == 0 ? PP_GRPC_UNIMPLEMENTED
						      : PP_GRPC_INVALID_ARGUMENT;
}
