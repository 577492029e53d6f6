/* Azure credentials against a libmicrohttpd Entra token endpoint and IMDS:
 * client secret, certificate assertion (x5t, claims and signature checked
 * with the test public key), workload identity, managed identity, the chain
 * order, Entra error bodies, and secrets kept out of error messages. */
#include <jwt.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "auth/azure.h"
#include "lib/http.h"
#include "lib/log.h"

#define CLIENT_PEM "tests/data/keys/test_only_azure_client.pem"
#define CERT_PEM   "tests/data/keys/test_only_azure_cert.pem"
#define PUB_PEM	   "tests/data/keys/test_only_azure_pub.pem"
#define EC_PEM	   "tests/data/keys/test_only_ec_key.pem"
#define TENANT	   "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define CLIENT	   "0c5f8d2e-app-client-id"
#define SECRET	   "Zk8Q~client.secret-value"

/* ---- a recording HTTP server ---- */
#define HS_RECORDING_VIEW
#include "tests/unit/http_server.h"

static void srv_start(struct srv *s, handler_fn fn)
{
	srv_start_with(s, fn, "Metadata", NULL);
}

/* ---- fixtures ---- */

static char tmpdir[256];

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	static char buf[16384];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strdup(buf);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *tpath(const char *name)
{
	static char p[4][512];
	static int i;
	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", tmpdir, name);
	return p[i];
}

static void clear_env(void)
{
	static const char *vars[] = {"AZURE_TENANT_ID",
				     "AZURE_CLIENT_ID",
				     "AZURE_CLIENT_SECRET",
				     "AZURE_CLIENT_CERTIFICATE_PATH",
				     "AZURE_FEDERATED_TOKEN_FILE",
				     "AZURE_SUBSCRIPTION_ID",
				     "AZURE_AUTHORITY_HOST"};
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pp-test-azure-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	clear_env();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void conf_init(struct pp_cred_conf *c, const struct srv *s)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "az");
	c->type = (char *)"azure";
	c->file_name = "test.conf";
	c->line = 3;
	c->tenant_id = (char *)TENANT;
	c->client_id = (char *)CLIENT;
	if (s) {
		c->authority = (char *)s->base;
		c->imds_endpoint = (char *)s->base;
	}
}

/* ---- handlers ---- */

static int entra(struct srv *s, const struct rec *r, char *out, size_t cap)
{
	(void)s;
	if (!strcmp(r->path, "/" TENANT "/oauth2/v2.0/token") && !strcmp(r->method, "POST")) {
		if (strstr(r->body, "client_secret=wrong")) {
			snprintf(out, cap,
				 "{\"error\":\"invalid_client\",\"error_description\":"
				 "\"AADSTS7000215: Invalid client secret provided. Ensure the "
				 "secret being sent in the request is the client secret value.\","
				 "\"error_codes\":[7000215],"
				 "\"trace_id\":\"t\",\"correlation_id\":\"c\"}");
			return 401;
		}
		snprintf(out, cap,
			 "{\"token_type\":\"Bearer\",\"expires_in\":3599,"
			 "\"ext_expires_in\":3599,"
			 "\"access_token\":\"eyJ0.azure-token\"}");
		return 200;
	}
	if (!strcmp(r->path, "/metadata/identity/oauth2/token")) {
		if (strcmp(r->meta, "true")) {
			snprintf(out, cap,
				 "{\"error\":\"invalid_request\",\"error_description\":"
				 "\"Required metadata header not specified\"}");
			return 400;
		}
		snprintf(out, cap,
			 "{\"access_token\":\"eyJ0.mi-token\",\"expires_in\":\"86399\","
			 "\"expires_on\":\"1700000000\",\"resource\":"
			 "\"https://management.azure.com/\",\"token_type\":\"Bearer\"}");
		return 200;
	}
	snprintf(out, cap, "{\"error\":\"not_found\"}");
	return 404;
}

/* ---- tests ---- */

static void test_client_secret(void **state)
{
	(void)state;
	struct srv s;
	struct pp_cred_conf conf;
	struct pp_azure *a = NULL;
	struct pp_token_grant tok = {0};
	struct pp_error err;
	char v[512];

	srv_start(&s, entra);
	conf_init(&conf, &s);
	conf.client_secret = (char *)SECRET;
	conf.subscription_id = (char *)"sub-1234";
	assert_int_equal(pp_azure_new(&conf, &a, &err), 0);
	assert_string_equal(pp_azure_source(a), "secret");
	assert_string_equal(pp_azure_subscription(a), "sub-1234");
	assert_int_equal(pp_azure_fetch(a, &tok, &err), 0);
	assert_string_equal(tok.access_token, "eyJ0.azure-token");
	assert_int_equal(tok.expires_in, 3599);
	form_get(s.reqs[0].body, "grant_type", v, sizeof(v));
	assert_string_equal(v, "client_credentials");
	form_get(s.reqs[0].body, "scope", v, sizeof(v));
	assert_string_equal(v, "https://management.azure.com/.default");
	form_get(s.reqs[0].body, "client_id", v, sizeof(v));
	assert_string_equal(v, CLIENT);
	form_get(s.reqs[0].body, "client_secret", v, sizeof(v));
	assert_string_equal(v, SECRET);
	struct pp_buf id;
	pp_buf_init(&id, 1024);
	assert_int_equal(pp_azure_identity(a, &id, &err), 0);
	assert_non_null(strstr(id.data, CLIENT));
	assert_null(strstr(id.data, SECRET));
	pp_buf_free(&id);
	free(tok.access_token);
	pp_azure_free(a);

	/* From a file and from the environment. */
	write_file(tpath("secret.txt"), SECRET "\n");
	conf.client_secret = NULL;
	conf.client_secret_file = tpath("secret.txt");
	assert_int_equal(pp_azure_new(&conf, &a, &err), 0);
	assert_int_equal(pp_azure_fetch(a, &tok, &err), 0);
	form_get(s.reqs[1].body, "client_secret", v, sizeof(v));
	assert_string_equal(v, SECRET);
	free(tok.access_token);
	pp_azure_free(a);
	conf.client_secret_file = NULL;
	conf.tenant_id = NULL;
	setenv("AZURE_TENANT_ID", TENANT, 1);
	setenv("AZURE_CLIENT_SECRET", SECRET, 1);
	setenv("AZURE_SUBSCRIPTION_ID", "env-sub", 1);
	conf.subscription_id = NULL;
	assert_int_equal(pp_azure_new(&conf, &a, &err), 0);
	assert_string_equal(pp_azure_source(a), "secret");
	assert_string_equal(pp_azure_subscription(a), "env-sub");
	pp_azure_free(a);
	clear_env();
	srv_stop(&s);
}

static void test_entra_error(void **state)
{
	(void)state;
	struct srv s;
	struct pp_cred_conf conf;
	struct pp_azure *a = NULL;
	struct pp_token_grant tok = {0};
	struct pp_error err;

	srv_start(&s, entra);
	conf_init(&conf, &s);
	pp_secret_register("wrong-but-secret-value");
	conf.client_secret = (char *)"wrong-but-secret-value";
	assert_int_equal(pp_azure_new(&conf, &a, &err), 0);
	assert_int_equal(pp_azure_fetch(a, &tok, &err), PP_EAUTH);
	assert_null(tok.access_token);
	assert_non_null(strstr(err.msg, "HTTP 401: invalid_client: AADSTS7000215"));
	assert_non_null(strstr(err.msg, CLIENT));
	assert_null(strstr(err.msg, "wrong-but-secret"));
	pp_azure_free(a);
	pp_secret_clear();
	srv_stop(&s);
}

static void b64url_digest(const EVP_MD *md, const unsigned char *der, int len, char *out,
			  size_t cap)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n;
	unsigned char b64[128];
	assert_int_equal(EVP_Digest(der, (size_t)len, d, &n, md, NULL), 1);
	int m = EVP_EncodeBlock(b64, d, (int)n);
	size_t o = 0;
	for (int i = 0; i < m && o + 1 < cap; i++) {
		char c = (char)b64[i];
		if (c == '=')
			break;
		out[o++] = c == '+' ? '-' : c == '/' ? '_' : c;
	}
	out[o] = '\0';
}

static void test_certificate_assertion(void **state)
{
	(void)state;
	struct srv s;
	struct pp_cred_conf conf;
	struct pp_azure *a = NULL;
	struct pp_token_grant tok = {0};
	struct pp_error err;
	char v[8192], url[256];

	srv_start(&s, entra);
	conf_init(&conf, &s);
	conf.certificate_path = (char *)CLIENT_PEM;
	assert_int_equal(pp_azure_new(&conf, &a, &err), 0);
	assert_string_equal(pp_azure_source(a), "certificate");
	time_t before = time(NULL);
	assert_int_equal(pp_azure_fetch(a, &tok, &err), 0);
	assert_string_equal(tok.access_token, "eyJ0.azure-token");
	form_get(s.reqs[0].body, "client_assertion_type", v, sizeof(v));
	assert_string_equal(v, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
	assert_null(strstr(s.reqs[0].body, "client_secret"));
	form_get(s.reqs[0].body, "client_assertion", v, sizeof(v));

	char *pub = slurp(PUB_PEM);
	jwt_t *jwt = NULL;
	assert_int_equal(jwt_decode(&jwt, v, (const unsigned char *)pub, (int)strlen(pub)), 0);
	free(pub);
	assert_int_equal(jwt_get_alg(jwt), JWT_ALG_RS256);
	/* Thumbprints computed independently from the certificate file. */
	FILE *f = fopen(CERT_PEM, "r");
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	unsigned char *der = NULL;
	int len = i2d_X509(x, &der);
	char want[128];
	b64url_digest(EVP_sha1(), der, len, want, sizeof(want));
	assert_string_equal(jwt_get_header(jwt, "x5t"), want);
	b64url_digest(EVP_sha256(), der, len, want, sizeof(want));
	assert_string_equal(jwt_get_header(jwt, "x5t#S256"), want);
	OPENSSL_free(der);
	X509_free(x);
	snprintf(url, sizeof(url), "%s/%s/oauth2/v2.0/token", s.base, TENANT);
	assert_string_equal(jwt_get_grant(jwt, "aud"), url);
	assert_string_equal(pp_azure_token_url(a), url);
	assert_string_equal(jwt_get_grant(jwt, "iss"), CLIENT);
	assert_string_equal(jwt_get_grant(jwt, "sub"), CLIENT);
	const char *jti = jwt_get_grant(jwt, "jti");
	assert_int_equal(strlen(jti), 36);
	assert_int_equal(jti[14], '4');
	long nbf = jwt_get_grant_int(jwt, "nbf"), exp = jwt_get_grant_int(jwt, "exp");
	assert_true(nbf >= before && nbf <= time(NULL));
	assert_int_equal(jwt_get_grant_int(jwt, "iat"), nbf);
	assert_int_equal(exp - nbf, PP_AZURE_ASSERTION_SECONDS);
	char first_jti[40];
	snprintf(first_jti, sizeof(first_jti), "%s", jti);
	jwt_free(jwt);
	free(tok.access_token);

	/* Each assertion is fresh. */
	char *again = NULL;
	assert_int_equal(pp_azure_cert_assertion(a, time(NULL), &again, &err), 0);
	assert_int_equal(jwt_decode(&jwt, again, NULL, 0), 0);
	assert_string_not_equal(jwt_get_grant(jwt, "jti"), first_jti);
	jwt_free(jwt);
	free(again);
	struct pp_buf id;
	pp_buf_init(&id, 1024);
	assert_int_equal(pp_azure_identity(a, &id, &err), 0);
	assert_non_null(strstr(id.data, "x5t"));
	pp_buf_free(&id);
	pp_azure_free(a);
	srv_stop(&s);
}

static void test_certificate_errors(void **state)
{
	(void)state;
	struct pp_cred_conf conf;
	struct pp_azure *a = NULL;
	struct pp_error err;

	conf_init(&conf, NULL);
	conf.source = (char *)"certificate";
	conf.certificate_path = (char *)EC_PEM;
	assert_int_equal(pp_azure_new(&conf, &a, &err), PP_EINVALID);
	assert_non_null(
		strstr(err.msg, "test_only_ec_key.pem: no unencrypted PEM RSA private key"));
	conf.certificate_path = (char *)"tests/data/keys/test_only_rsa_key.pem";
	assert_int_equal(pp_azure_new(&conf, &a, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "test_only_rsa_key.pem: no PEM certificate"));
	assert_null(strstr(err.msg, "BEGIN"));
	conf.certificate_path = tpath("absent.pem");
	assert_int_equal(pp_azure_new(&conf, &a, &err), PP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "absent.pem"));
	conf.certificate_path = NULL;
	assert_int_equal(pp_azure_new(&conf, &a, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "AZURE_CLIENT_CERTIFICATE_PATH"));
	conf.source = (char *)"secret";
	conf.tenant_id = (char *)"../evil?x=";
	conf.client_secret = (char *)SECRET;
	assert_int_equal(pp_azure_new(&conf, &a, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "tenant_id"));
	conf.source = (char *)"metadata";
	assert_int_equal(pp_azure_new(&conf, &a, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "source metadata does not apply to type azure"));
	assert_null(a);
}

static void test_workload_identity_rereads(void **state)
{
	(void)state;
	struct srv s;
	struct pp_cred_conf conf;
	struct pp_azure *a = NULL;
	struct pp_token_grant tok = {0};
	struct pp_error err;
	char v[512];

	srv_start(&s, entra);
	conf_init(&conf, &s);
	write_file(tpath("federated"), "federated-jwt-one\n");
	setenv("AZURE_FEDERATED_TOKEN_FILE", tpath("federated"), 1);
	assert_int_equal(pp_azure_new(&conf, &a, &err), 0);
	assert_string_equal(pp_azure_source(a), "workload_identity");
	assert_int_equal(pp_azure_fetch(a, &tok, &err), 0);
	free(tok.access_token);
	form_get(s.reqs[0].body, "client_assertion", v, sizeof(v));
	assert_string_equal(v, "federated-jwt-one");
	form_get(s.reqs[0].body, "client_assertion_type", v, sizeof(v));
	assert_string_equal(v, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
	write_file(tpath("federated"), "federated-jwt-two");
	assert_int_equal(pp_azure_fetch(a, &tok, &err), 0);
	free(tok.access_token);
	form_get(s.reqs[1].body, "client_assertion", v, sizeof(v));
	assert_string_equal(v, "federated-jwt-two");
	/* An emptied token file is an auth error naming it. */
	write_file(tpath("federated"), "");
	assert_int_equal(pp_azure_fetch(a, &tok, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "federated"));
	pp_azure_free(a);
	clear_env();
	srv_stop(&s);
}

static void test_managed_identity(void **state)
{
	(void)state;
	struct srv s;
	struct pp_cred_conf conf;
	struct pp_azure *a = NULL;
	struct pp_token_grant tok = {0};
	struct pp_error err;

	srv_start(&s, entra);
	conf_init(&conf, &s);
	conf.tenant_id = NULL;
	conf.client_id = NULL;
	assert_int_equal(pp_azure_new(&conf, &a, &err), 0);
	assert_string_equal(pp_azure_source(a), "managed_identity");
	assert_int_equal(pp_azure_fetch(a, &tok, &err), 0);
	assert_string_equal(tok.access_token, "eyJ0.mi-token");
	assert_int_equal(tok.expires_in, 86399);
	assert_string_equal(s.reqs[0].method, "GET");
	assert_string_equal(s.reqs[0].meta, "true");
	assert_string_equal(s.reqs[0].query,
			    "api-version=2018-02-01&resource=https://management.azure.com/");
	free(tok.access_token);
	pp_azure_free(a);

	/* User-assigned: the client id goes along. */
	conf.source = (char *)"managed_identity";
	conf.client_id = (char *)"mi-client-id";
	char full[256];
	snprintf(full, sizeof(full), "%s/metadata/identity/oauth2/token", s.base);
	conf.imds_endpoint = full;
	assert_int_equal(pp_azure_new(&conf, &a, &err), 0);
	assert_int_equal(pp_azure_fetch(a, &tok, &err), 0);
	assert_non_null(strstr(s.reqs[1].query, "client_id=mi-client-id"));
	struct pp_buf id;
	pp_buf_init(&id, 1024);
	assert_int_equal(pp_azure_identity(a, &id, &err), 0);
	assert_string_equal(id.data, "user-assigned managed identity mi-client-id");
	pp_buf_free(&id);
	free(tok.access_token);
	pp_azure_free(a);
	srv_stop(&s);
}

/* pp_cred_set_scope(c, NULL, "graph"): the credential asks Entra (or IMDS)
 * for Microsoft Graph tokens, cached apart from ARM's; "arm" switches back
 * to the ARM token it already holds. */
static void test_graph_scope(void **state)
{
	(void)state;
	struct srv s;
	struct pp_cred_conf conf;
	struct pp_cred *c = NULL;
	struct pp_http_req req;
	struct pp_error err;
	char v[512];

	srv_start(&s, entra);
	conf_init(&conf, &s);
	conf.client_id = (char *)"graph-scope-client";
	conf.client_secret = (char *)SECRET;
	assert_int_equal(pp_cred_new(&conf, &c, &err), 0);
	for (int i = 0; i < 4; i++) {
		/* ARM, Graph, ARM again (cached), Graph again (cached). */
		pp_cred_set_scope(c, NULL, i % 2 ? "graph" : "arm");
		pp_http_req_init(&req, "GET", "https://example.invalid/");
		assert_int_equal(pp_cred_apply(c, &req, &err), 0);
		pp_http_req_free(&req);
	}
	assert_int_equal(s.n, 2);
	form_get(s.reqs[0].body, "scope", v, sizeof(v));
	assert_string_equal(v, "https://management.azure.com/.default");
	form_get(s.reqs[1].body, "scope", v, sizeof(v));
	assert_string_equal(v, "https://graph.microsoft.com/.default");
	pp_cred_free(c);

	/* A managed identity asks IMDS for Graph's resource. */
	conf_init(&conf, &s);
	conf.tenant_id = NULL;
	conf.client_id = NULL;
	conf.source = (char *)"managed_identity";
	assert_int_equal(pp_cred_new(&conf, &c, &err), 0);
	pp_cred_set_scope(c, NULL, "graph");
	pp_http_req_init(&req, "GET", "https://example.invalid/");
	assert_int_equal(pp_cred_apply(c, &req, &err), 0);
	pp_http_req_free(&req);
	assert_string_equal(s.reqs[2].query,
			    "api-version=2018-02-01&resource=https://graph.microsoft.com/");
	pp_cred_free(c);
	srv_stop(&s);
}

static void test_chain_order(void **state)
{
	(void)state;
	struct pp_cred_conf conf;
	struct pp_azure *a = NULL;
	struct pp_error err;

	conf_init(&conf, NULL);
	setenv("AZURE_CLIENT_SECRET", SECRET, 1);
	setenv("AZURE_CLIENT_CERTIFICATE_PATH", CLIENT_PEM, 1);
	write_file(tpath("fed"), "x");
	setenv("AZURE_FEDERATED_TOKEN_FILE", tpath("fed"), 1);
	const char *want[] = {"secret", "certificate", "workload_identity", "managed_identity"};
	const char *drop[] = {"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
			      "AZURE_FEDERATED_TOKEN_FILE", NULL};
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pp_azure_new(&conf, &a, &err), 0);
		assert_string_equal(pp_azure_source(a), want[i]);
		pp_azure_free(a);
		if (drop[i])
			unsetenv(drop[i]);
	}
	/* Without a tenant the app credentials are skipped entirely. */
	setenv("AZURE_CLIENT_SECRET", SECRET, 1);
	conf.tenant_id = NULL;
	assert_int_equal(pp_azure_new(&conf, &a, &err), 0);
	assert_string_equal(pp_azure_source(a), "managed_identity");
	pp_azure_free(a);
	conf.source = (char *)"env";
	assert_int_equal(pp_azure_new(&conf, &a, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "AZURE_TENANT_ID"));
	clear_env();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client_secret),
		cmocka_unit_test(test_entra_error),
		cmocka_unit_test(test_certificate_assertion),
		cmocka_unit_test(test_certificate_errors),
		cmocka_unit_test(test_workload_identity_rereads),
		cmocka_unit_test(test_managed_identity),
		cmocka_unit_test(test_chain_order),
		cmocka_unit_test(test_graph_scope),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
