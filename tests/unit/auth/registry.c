/* The credential backends behind one table: each is found by its type, an
 * unknown type is refused naming the known ones, each backend's check
 * refuses a bad section with FILE:LINE, and apply adds the header its cloud
 * expects (bearer token, SigV4 signature, Modal token metadata). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "auth/azure.h"
#include "auth/backend.h"
#include "auth/gcp.h"
#include "auth/token_cache.h"
#include "lib/http.h"
#include "lib/log.h"

static void conf_init(struct pp_cred_conf *c, const char *type, const char *source)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "sec");
	c->type = (char *)type;
	c->source = (char *)source;
	c->file_name = "pp.conf";
	c->line = 7;
}

static void test_every_backend_found_by_type(void **state)
{
	(void)state;
	static const char *const want[] = {"gcp", "aws", "azure", "modal"};
	const struct pp_cred_backend *const *all = pp_cred_backends();
	size_t n = 0;
	for (; all[n]; n++) {
		const struct pp_cred_backend *b = all[n], *found = NULL;
		struct pp_cred_conf c;
		struct pp_error err = {0};
		conf_init(&c, b->type, NULL);
		assert_int_equal(pp_cred_backend_for(&c, &found, &err), 0);
		assert_ptr_equal(found, b);
		assert_int_equal(b->abi, PP_CRED_BACKEND_ABI);
		char list[256];
		pp_cred_source_list(b, list, sizeof(list));
		assert_true(!strncmp(list, "chain, ", 7) && b->nrows > 0);
		assert_non_null(b->what);
		assert_true(b->check && b->open && b->apply && b->invalidate && b->identity &&
			    b->seconds_left && b->refreshes && b->close);
	}
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++)
		assert_string_equal(all[i]->type, want[i]);
}

static void test_unknown_type_lists_known(void **state)
{
	(void)state;
	struct pp_cred_conf c;
	struct pp_error err = {0};
	const struct pp_cred_backend *b = NULL;
	conf_init(&c, "oci", NULL);
	assert_int_equal(pp_cred_backend_for(&c, &b, &err), PP_EINVALID);
	assert_null(b);
	assert_string_equal(err.msg, "pp.conf:7: credentials \"sec\": type must be one of gcp, "
				     "aws, azure, modal (got \"oci\")");
	assert_int_equal(pp_cred_check(&c, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "gcp, aws, azure, modal"));
}

/* Opening checks the source the same way check does. */
static void test_open_refuses_unknown_source(void **state)
{
	(void)state;
	struct pp_cred_conf c;
	struct pp_cred *cred = NULL;
	struct pp_error err = {0};
	conf_init(&c, "azure", "imds");
	assert_int_equal(pp_cred_new(&c, &cred, &err), PP_EINVALID);
	assert_null(cred);
	assert_string_equal(err.msg, "pp.conf:7: credentials \"sec\": source imds does not apply "
				     "to type azure (use one of: chain, env, secret, certificate, "
				     "workload_identity, managed_identity)");
}

/* A section and the message its check must give ("" when it passes). */
struct check_case {
	const char *type, *source;
	const char *akid, *secret, *tenant, *client, *client_secret, *file, *token_id,
		*token_secret;
	const char *want;
};

static void test_checks_refuse_bad_sections(void **state)
{
	(void)state;
	static const struct check_case cases[] = {
		{"aws", "static", .akid = "AKID",
		 .want = "source static needs access_key_id "
			 "and secret_access_key"},
		{"aws", NULL, .secret = "s", .want = "secret_access_key set without access_key_id"},
		{"aws", "static", .akid = "AKID", .secret = "s", .want = ""},
		{"aws", "secret",
		 .want = "source secret does not apply to type aws (use one of: "
			 "chain, static, env, web_identity, profile, container, "
			 "imds)"},
		{"azure", "secret", .client = "c", .client_secret = "s",
		 .want = "source secret needs tenant_id, client_id and client_secret or "
			 "client_secret_file"},
		{"azure", "certificate", .tenant = "t", .client = "c",
		 .want = "source certificate needs tenant_id, client_id and certificate_path"},
		{"azure", "secret", .tenant = "t", .client = "c", .client_secret = "s", .want = ""},
		{"azure", "imds", .want = "source imds does not apply to type azure"},
		{"gcp", "file", .want = "source file needs file"},
		{"gcp", "file", .file = "/k.json", .want = ""},
		{"gcp", "token",
		 .want = "source token does not apply to type gcp (use one of: "
			 "chain, env, file, metadata)"},
		{"modal", "token", .token_id = "ak",
		 .want = "source token needs token_id and "
			 "token_secret"},
		{"modal", NULL, .token_secret = "as",
		 .want = "token_id and token_secret go together"},
		{"modal", "file", .want = "source file needs file"},
		{"modal", "static", .token_id = "ak", .token_secret = "as", .want = ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct check_case *k = &cases[i];
		struct pp_cred_conf c;
		struct pp_error err = {0};
		conf_init(&c, k->type, k->source);
		c.access_key_id = (char *)k->akid;
		c.secret_access_key = (char *)k->secret;
		c.tenant_id = (char *)k->tenant;
		c.client_id = (char *)k->client;
		c.client_secret = (char *)k->client_secret;
		c.file = (char *)k->file;
		c.token_id = (char *)k->token_id;
		c.token_secret = (char *)k->token_secret;
		int rc = pp_cred_check(&c, &err);
		if (!*k->want) {
			if (rc)
				fail_msg("case %zu: %s", i, err.msg);
			continue;
		}
		if (rc != PP_EINVALID || strncmp(err.msg, "pp.conf:7: credentials \"sec\": ", 30) ||
		    !strstr(err.msg, k->want))
			fail_msg("case %zu: rc %d, \"%s\"; want \"%s\"", i, rc, err.msg, k->want);
	}
}

/* The canned token a bearer test plants in the shared cache. */
static int canned_fetch(void *ud, struct pp_token_grant *out, struct pp_error *err)
{
	(void)err;
	out->access_token = strdup(ud);
	out->expires_in = 3600;
	return out->access_token ? 0 : PP_ENOMEM;
}

/* Plant token under key: credentials with that identity share it, so the
 * backend's apply needs no token endpoint. The returned reference keeps
 * the entry alive until released. */
static struct pp_token_cache *plant(const char *key, const char *token)
{
	struct pp_token_cache *tc = pp_token_cache_acquire(key);
	struct pp_buf got;
	struct pp_error err = {0};
	assert_non_null(tc);
	pp_buf_init(&got, 4096);
	assert_int_equal(pp_token_cache_get(tc, canned_fetch, (void *)token, &got, &err), 0);
	pp_buf_free(&got);
	return tc;
}

static void assert_bearer(const struct pp_cred_conf *c, const char *token)
{
	struct pp_cred *cred = NULL;
	struct pp_http_req req;
	struct pp_error err = {0};
	char want[128];
	if (pp_cred_new(c, &cred, &err))
		fail_msg("%s: %s", c->type, err.msg);
	pp_http_req_init(&req, "GET", "https://api.example.invalid/x");
	if (pp_cred_apply(cred, &req, &err))
		fail_msg("%s apply: %s", c->type, err.msg);
	snprintf(want, sizeof(want), "Bearer %s", token);
	assert_string_equal(pp_http_req_get_header(&req, "Authorization"), want);
	assert_string_equal(pp_cred_what(cred), "bearer token");
	pp_http_req_free(&req);
	pp_cred_free(cred);
}

static void test_apply_gcp_bearer(void **state)
{
	(void)state;
	struct pp_cred_conf c;
	struct pp_gcp *g = NULL;
	struct pp_error err = {0};
	/* The metadata source opens without I/O; nothing listens there. */
	conf_init(&c, "gcp", "metadata");
	c.metadata_host = (char *)"http://127.0.0.1:1";
	assert_int_equal(pp_gcp_new(&c, &g, &err), 0);
	struct pp_token_cache *tc = plant(pp_gcp_cache_key(g), "canned-gcp-token");
	pp_gcp_free(g);
	assert_bearer(&c, "canned-gcp-token");
	pp_token_cache_release(tc);
}

static void test_apply_azure_bearer(void **state)
{
	(void)state;
	struct pp_cred_conf c;
	struct pp_azure *a = NULL;
	struct pp_error err = {0};
	conf_init(&c, "azure", "managed_identity");
	c.imds_endpoint = (char *)"http://127.0.0.1:1";
	assert_int_equal(pp_azure_new(&c, &a, &err), 0);
	struct pp_token_cache *tc = plant(pp_azure_cache_key(a), "canned-azure-token");
	pp_azure_free(a);
	assert_bearer(&c, "canned-azure-token");
	pp_token_cache_release(tc);
}

static void test_apply_aws_sigv4(void **state)
{
	(void)state;
	struct pp_cred_conf c;
	struct pp_cred *cred = NULL;
	struct pp_http_req req;
	struct pp_error err = {0};
	conf_init(&c, "aws", "static");
	c.access_key_id = (char *)"AKIDREGISTRY";
	c.secret_access_key = (char *)"registry-secret-key";
	c.session_token = (char *)"registry-session-token";
	c.region = (char *)"eu-central-1";
	assert_int_equal(pp_cred_new(&c, &cred, &err), 0);
	assert_string_equal(pp_cred_what(cred), "AWS SigV4 signature");
	pp_cred_set_scope(cred, NULL, "ecs");
	pp_http_req_init(&req, "POST", "https://ecs.eu-central-1.amazonaws.com/");
	assert_int_equal(pp_http_req_body(&req, "{}", 2), 0);
	assert_int_equal(pp_cred_apply(cred, &req, &err), 0);
	const char *auth = pp_http_req_get_header(&req, "Authorization");
	assert_non_null(auth);
	assert_non_null(strstr(auth, "AWS4-HMAC-SHA256 Credential=AKIDREGISTRY/"));
	assert_non_null(strstr(auth, "/eu-central-1/ecs/aws4_request"));
	assert_null(strstr(auth, "registry-secret-key"));
	assert_non_null(pp_http_req_get_header(&req, "X-Amz-Date"));
	assert_string_equal(pp_http_req_get_header(&req, "X-Amz-Security-Token"),
			    "registry-session-token");
	pp_http_req_free(&req);
	pp_cred_free(cred);
}

static void test_apply_modal_metadata(void **state)
{
	(void)state;
	struct pp_cred_conf c;
	struct pp_cred *cred = NULL;
	struct pp_http_req req;
	struct pp_error err = {0};
	conf_init(&c, "modal", "token");
	c.token_id = (char *)"ak-registry";
	c.token_secret = (char *)"as-registry-secret";
	assert_int_equal(pp_cred_new(&c, &cred, &err), 0);
	/* AuthTokenGet carries the token pair alone: no server is asked. */
	pp_http_req_init(&req, "POST", "http://127.0.0.1:1/modal.client.ModalClient/AuthTokenGet");
	assert_int_equal(pp_cred_apply(cred, &req, &err), 0);
	assert_string_equal(pp_http_req_get_header(&req, "x-modal-token-id"), "ak-registry");
	assert_string_equal(pp_http_req_get_header(&req, "x-modal-token-secret"),
			    "as-registry-secret");
	assert_string_equal(pp_http_req_get_header(&req, "x-modal-client-type"), "7");
	assert_non_null(pp_http_req_get_header(&req, "x-modal-client-version"));
	assert_null(pp_http_req_get_header(&req, "Authorization"));
	pp_http_req_free(&req);
	/* Any other call first needs the auth token: with nothing listening
	 * the apply fails, and says so without the secret. */
	pp_http_req_init(&req, "POST",
			 "http://127.0.0.1:1/modal.client.ModalClient/AppGetOrCreate");
	assert_int_not_equal(pp_cred_apply(cred, &req, &err), 0);
	assert_non_null(strstr(err.msg, "AuthTokenGet"));
	pp_redact(err.msg);
	assert_null(strstr(err.msg, "as-registry-secret"));
	pp_http_req_free(&req);
	pp_cred_free(cred);
}

int main(void)
{
	pp_log_setup(PP_LOG_ERROR, PP_LOG_TEXT, NULL);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_backend_found_by_type),
		cmocka_unit_test(test_unknown_type_lists_known),
		cmocka_unit_test(test_checks_refuse_bad_sections),
		cmocka_unit_test(test_open_refuses_unknown_source),
		cmocka_unit_test(test_apply_gcp_bearer),
		cmocka_unit_test(test_apply_azure_bearer),
		cmocka_unit_test(test_apply_aws_sigv4),
		cmocka_unit_test(test_apply_modal_metadata),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	pp_secret_clear();
	return rc;
}
