/* The pp_cred handle: backend dispatch, bearer tokens through the shared cache,
 * the 401 path (invalidate, refresh once, a second 401 is PP_EAUTH), token
 * endpoint failures, and secrets kept out of error messages. */
#include <microhttpd.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "lib/http.h"
#include "lib/log.h"

#define TENANT "tenant-0001"
#define CLIENT "client-0001"
#define SECRET "cred-test-client-secret-value"

/* ---- a recording HTTP server ---- */
#define HS_RECORDING_VIEW
#include "tests/unit/http_server.h"

static void srv_start(struct srv *s, handler_fn fn)
{
	srv_start_with(s, fn, NULL, NULL);
}

/* ---- fixtures ---- */

/* What the fake Entra + API server does. */
static int tokens_issued;
static bool api_accepts_second_token; /* else every API call is refused */
static bool token_endpoint_refuses;

static int handler(struct srv *s, const struct rec *r, char *out, size_t cap)
{
	(void)s;
	if (!strcmp(r->path, "/" TENANT "/oauth2/v2.0/token")) {
		if (token_endpoint_refuses) {
			char secret[256];
			form_get(r->body, "client_secret", secret, sizeof(secret));
			/* Echo the secret back, as a careless server might. */
			snprintf(out, cap,
				 "{\"error\":\"invalid_client\",\"error_description\":"
				 "\"AADSTS7000215: Invalid client secret provided: %s\"}",
				 secret);
			return 401;
		}
		tokens_issued++;
		snprintf(out, cap,
			 "{\"token_type\":\"Bearer\",\"expires_in\":3600,"
			 "\"access_token\":\"api-token-%d\"}",
			 tokens_issued);
		return 200;
	}
	if (!strcmp(r->path, "/api")) {
		if (api_accepts_second_token && !strcmp(r->auth, "Bearer api-token-2")) {
			snprintf(out, cap, "{\"ok\":true}");
			return 200;
		}
		snprintf(out, cap,
			 "{\"error\":{\"code\":\"InvalidAuthenticationToken\","
			 "\"message\":\"The access token is invalid.\"}}");
		return 401;
	}
	return 404;
}

static void reset_server_mode(void)
{
	tokens_issued = 0;
	api_accepts_second_token = false;
	token_endpoint_refuses = false;
}

static void azure_conf(struct pp_cred_conf *c, const struct srv *s, const char *name)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->type = (char *)"azure";
	c->source = (char *)"secret";
	c->tenant_id = (char *)TENANT;
	c->client_id = (char *)CLIENT;
	c->client_secret = (char *)SECRET;
	c->subscription_id = (char *)"sub-42";
	c->authority = (char *)s->base;
	c->file_name = "pushpool.conf";
	c->line = 12;
}

/* One API call, credentials applied before it goes to the HTTP layer. */
static int call_api(struct srv *s, struct pp_cred *c, struct pp_error *err)
{
	struct pp_http_req req;
	struct pp_http_resp resp;
	char url[128];
	snprintf(url, sizeof(url), "%s/api", s->base);
	pp_http_req_init(&req, "GET", url);
	pp_http_resp_init(&resp, 0);
	int rc = pp_cred_perform(c, &req, &resp, err);
	if (!rc)
		rc = pp_http_classify(&req, &resp, err);
	pp_http_resp_free(&resp);
	pp_http_req_free(&req);
	return rc;
}

static void test_type_must_be_known(void **state)
{
	(void)state;
	struct pp_cred_conf conf;
	struct pp_cred *c = NULL;
	struct pp_error err;
	memset(&conf, 0, sizeof(conf));
	snprintf(conf.name, sizeof(conf.name), "prod");
	conf.type = (char *)"gce";
	conf.file_name = "pushpool.conf";
	conf.line = 31;
	assert_int_equal(pp_cred_new(&conf, &c, &err), PP_EINVALID);
	assert_null(c);
	assert_non_null(strstr(err.msg, "pushpool.conf:31: credentials \"prod\": type must be one "
					"of gcp, aws, azure, modal"));
	conf.type = NULL;
	assert_int_equal(pp_cred_new(&conf, &c, &err), PP_EINVALID);
}

static void test_bearer_shared_and_applied(void **state)
{
	(void)state;
	struct srv s;
	struct pp_cred_conf ca, cb;
	struct pp_cred *a = NULL, *b = NULL;
	struct pp_error err;

	reset_server_mode();
	srv_start(&s, handler);
	azure_conf(&ca, &s, "pool-a");
	azure_conf(&cb, &s, "pool-b");
	assert_int_equal(pp_cred_new(&ca, &a, &err), 0);
	assert_int_equal(pp_cred_new(&cb, &b, &err), 0);
	assert_string_equal(pp_cred_type(a), "azure");
	assert_string_equal(pp_cred_name(a), "pool-a");
	assert_string_equal(pp_cred_what(a), "bearer token");
	assert_string_equal(pp_cred_project(a), "sub-42");
	assert_string_equal(pp_cred_project_label(a), "subscription");
	assert_null(pp_cred_region(a));
	assert_int_equal(pp_cred_seconds_left(a), -1);

	struct pp_http_req req;
	pp_http_req_init(&req, "PUT", "https://management.azure.com/x");
	assert_int_equal(pp_cred_apply(a, &req, &err), 0);
	assert_string_equal(pp_http_req_get_header(&req, "Authorization"), "Bearer api-token-1");
	assert_int_equal(pp_cred_apply(b, &req, &err), 0);
	assert_string_equal(pp_http_req_get_header(&req, "Authorization"), "Bearer api-token-1");
	pp_http_req_free(&req);
	/* Same identity, one token: pools sharing credentials share it. */
	assert_int_equal(tokens_issued, 1);
	assert_int_equal(pp_cred_refreshes(a), 1);
	long left = pp_cred_seconds_left(b);
	assert_true(left > 3590 && left <= 3600);
	pp_cred_free(a);
	pp_cred_free(b);
	srv_stop(&s);
}

static void test_401_refreshes_once_then_auth_error(void **state)
{
	(void)state;
	struct srv s;
	struct pp_cred_conf conf;
	struct pp_cred *c = NULL;
	struct pp_error err;

	reset_server_mode();
	srv_start(&s, handler);
	azure_conf(&conf, &s, "refresh");
	assert_int_equal(pp_cred_new(&conf, &c, &err), 0);

	/* A revoked token: the API refuses, invalidate, the next call gets a
	 * new token, which is accepted. */
	api_accepts_second_token = true;
	assert_int_equal(call_api(&s, c, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "HTTP 401"));
	pp_cred_invalidate(c);
	assert_int_equal(call_api(&s, c, &err), 0);
	assert_int_equal(tokens_issued, 2);
	assert_int_equal(pp_cred_refreshes(c), 2);

	/* Refused even with a fresh token: the second 401 stands. */
	api_accepts_second_token = false;
	pp_cred_invalidate(c);
	assert_int_equal(call_api(&s, c, &err), PP_EAUTH);
	pp_cred_invalidate(c);
	assert_int_equal(call_api(&s, c, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "InvalidAuthenticationToken"));
	assert_int_equal(tokens_issued, 4);
	/* Without an invalidation the cached token is reused. */
	assert_int_equal(call_api(&s, c, &err), PP_EAUTH);
	assert_int_equal(tokens_issued, 4);
	pp_cred_free(c);
	srv_stop(&s);
}

static void test_token_endpoint_refusal_is_redacted(void **state)
{
	(void)state;
	struct srv s;
	struct pp_cred_conf conf;
	struct pp_cred *c = NULL;
	struct pp_error err;

	reset_server_mode();
	token_endpoint_refuses = true;
	srv_start(&s, handler);
	azure_conf(&conf, &s, "refused");
	assert_int_equal(pp_cred_new(&conf, &c, &err), 0);
	assert_int_equal(call_api(&s, c, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "invalid_client: AADSTS7000215"));
	assert_null(strstr(err.msg, SECRET));
	assert_non_null(strstr(err.msg, "[REDACTED]"));
	/* Nothing reached the API without a token. */
	for (int i = 0; i < s.n; i++)
		assert_string_not_equal(s.reqs[i].path, "/api");
	assert_int_equal(pp_cred_refreshes(c), 0);
	struct pp_buf id;
	pp_buf_init(&id, 1024);
	assert_int_equal(pp_cred_identity(c, &id, &err), 0);
	assert_non_null(strstr(id.data, CLIENT));
	assert_null(strstr(id.data, SECRET));
	pp_buf_free(&id);
	pp_cred_free(c);
	srv_stop(&s);
}

static void test_config_errors_name_the_section(void **state)
{
	(void)state;
	struct pp_cred_conf conf;
	struct pp_cred *c = NULL;
	struct pp_error err;
	memset(&conf, 0, sizeof(conf));
	snprintf(conf.name, sizeof(conf.name), "gke");
	conf.type = (char *)"gcp";
	conf.file = (char *)"/nonexistent/sa.json";
	assert_int_equal(pp_cred_new(&conf, &c, &err), PP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "credentials \"gke\""));
	assert_non_null(strstr(err.msg, "/nonexistent/sa.json"));
	assert_null(c);
}

static void test_aws_dispatch(void **state)
{
	(void)state;
	struct pp_cred_conf conf;
	struct pp_cred *c = NULL;
	struct pp_error err;
	memset(&conf, 0, sizeof(conf));
	snprintf(conf.name, sizeof(conf.name), "ecs");
	conf.type = (char *)"aws";
	conf.source = (char *)"static";
	conf.access_key_id = (char *)"AKIDEXAMPLE";
	conf.secret_access_key = (char *)"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	conf.region = (char *)"eu-west-1";
	assert_int_equal(pp_cred_new(&conf, &c, &err), 0);
	assert_string_equal(pp_cred_type(c), "aws");
	assert_string_equal(pp_cred_what(c), "AWS SigV4 signature");
	assert_string_equal(pp_cred_region(c), "eu-west-1");
	pp_cred_set_scope(c, "us-east-2", "ecs");
	assert_string_equal(pp_cred_region(c), "us-east-2");
	assert_null(pp_cred_project(c));
	assert_null(pp_cred_project_label(c));

	struct pp_http_req req;
	pp_http_req_init(&req, "POST", "https://ecs.us-east-2.amazonaws.com/");
	pp_http_req_body(&req, "{}", 2);
	assert_int_equal(pp_cred_apply(c, &req, &err), 0);
	const char *auth = pp_http_req_get_header(&req, "Authorization");
	assert_non_null(auth);
	assert_non_null(strstr(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
	assert_non_null(strstr(auth, "/us-east-2/ecs/aws4_request"));
	pp_http_req_free(&req);
	/* Static keys do not expire; invalidation leaves them usable. */
	assert_int_equal(pp_cred_seconds_left(c), -1);
	pp_cred_invalidate(c);
	struct pp_buf id;
	pp_buf_init(&id, 1024);
	assert_int_equal(pp_cred_identity(c, &id, &err), 0);
	assert_non_null(strstr(id.data, "AKIDEXAMPLE"));
	assert_null(strstr(id.data, "wJalrXUtnFEMI"));
	pp_buf_free(&id);
	pp_cred_free(c);
}

static struct pp_json *js(const char *text)
{
	struct pp_json *j = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_json_parse(text, strlen(text), NULL, &j, &err), 0);
	return j;
}

/* A job's credentials object (the data of a Prefect credentials block):
 * each backend maps its block's fields; an empty block leaves the pool's
 * credentials; half a key pair or an unsupported field is an error; the
 * secrets are redacted. */
static void test_from_job(void **state)
{
	(void)state;
	struct pp_cred *c = NULL;
	struct pp_error err = {0};
	struct pp_json *j = js("{\"aws_access_key_id\":\"AKIDBLOCK\",\"aws_secret_access_key\":"
			       "\"block-secret-key-0123456789\",\"region_name\":\"eu-west-3\","
			       "\"aws_client_parameters\":{}}");
	assert_int_equal(pp_cred_from_job("aws", j, &c, &err), 0);
	pp_json_free(j); /* the handle keeps its own copy */
	assert_non_null(c);
	assert_string_equal(pp_cred_type(c), "aws");
	assert_string_equal(pp_cred_region(c), "eu-west-3");
	struct pp_http_req req;
	pp_http_req_init(&req, "POST", "https://ecs.eu-west-3.amazonaws.com/");
	pp_http_req_body(&req, "{}", 2);
	pp_cred_set_scope(c, "eu-west-3", "ecs");
	assert_int_equal(pp_cred_apply(c, &req, &err), 0);
	assert_non_null(
		strstr(pp_http_req_get_header(&req, "Authorization"), "Credential=AKIDBLOCK/"));
	pp_http_req_free(&req);
	pp_cred_free(c);
	char line[128] = "key block-secret-key-0123456789";
	pp_redact(line);
	assert_null(strstr(line, "block-secret"));

	/* Nothing of its own: the pool's credentials apply. */
	j = js("{\"region_name\":\"eu-west-3\",\"aws_access_key_id\":null}");
	assert_int_equal(pp_cred_from_job("aws", j, &c, &err), 0);
	assert_null(c);
	pp_json_free(j);
	j = js("{\"aws_access_key_id\":\"AKIDBLOCK\"}");
	assert_int_equal(pp_cred_from_job("aws", j, &c, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "aws_secret_access_key"));
	pp_json_free(j);
	j = js("{\"assume_role_arn\":\"arn:aws:iam::1:role/x\"}");
	assert_int_equal(pp_cred_from_job("aws", j, &c, &err), PP_EINVALID);
	pp_json_free(j);
	/* Names of this host's files are not taken from a job. */
	j = js("{\"profile_name\":\"other-pool\"}");
	assert_int_equal(pp_cred_from_job("aws", j, &c, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "profile_name"));
	pp_json_free(j);
	j = js("{\"service_account_file\":\"/etc/pushpool/other-pool.json\"}");
	assert_int_equal(pp_cred_from_job("gcp", j, &c, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "service_account_file"));
	pp_json_free(j);

	/* AzureContainerInstanceCredentials: a service principal's secret. */
	j = js("{\"client_id\":\"c-1\",\"tenant_id\":\"t-1\",\"client_secret\":\"az-block-secret-"
	       "99\"}");
	assert_int_equal(pp_cred_from_job("azure", j, &c, &err), 0);
	assert_non_null(c);
	assert_string_equal(pp_cred_type(c), "azure");
	pp_cred_free(c);
	pp_json_free(j);
	j = js("{\"client_id\":\"c-1\"}");
	assert_int_equal(pp_cred_from_job("azure", j, &c, &err), PP_EINVALID);
	pp_json_free(j);
	j = js("{\"credential_kwargs\":{}}");
	assert_int_equal(pp_cred_from_job("azure", j, &c, &err), 0);
	assert_null(c);
	pp_json_free(j);

	/* GcpCredentials: the key's JSON itself goes to the key loader, which
	 * checks it (prefect_resolve.sh signs with a real one). */
	j = js("{\"service_account_info\":{\"type\":\"service_account\",\"project_id\":\"blk-"
	       "proj\","
	       "\"private_key_id\":\"k\",\"private_key\":\"not-a-key\",\"client_email\":"
	       "\"a@blk-proj.iam.gserviceaccount.com\",\"token_uri\":\"https://"
	       "oauth2.googleapis.com/token\"}}");
	assert_int_equal(pp_cred_from_job("gcp", j, &c, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "service_account_info"));
	assert_null(c);
	pp_json_free(j);
	j = js("{\"project\":\"p\"}");
	assert_int_equal(pp_cred_from_job("gcp", j, &c, &err), 0);
	assert_null(c);
	pp_json_free(j);
	/* Modal builds its own from modal_credentials. */
	j = js("{\"token_id\":\"a\"}");
	assert_int_equal(pp_cred_from_job("modal", j, &c, &err), PP_EINVALID);
	pp_json_free(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_type_must_be_known),
		cmocka_unit_test(test_bearer_shared_and_applied),
		cmocka_unit_test(test_401_refreshes_once_then_auth_error),
		cmocka_unit_test(test_token_endpoint_refusal_is_redacted),
		cmocka_unit_test(test_config_errors_name_the_section),
		cmocka_unit_test(test_aws_dispatch),
		cmocka_unit_test(test_from_job),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
