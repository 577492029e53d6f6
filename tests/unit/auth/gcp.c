/* Google credentials against a libmicrohttpd token endpoint and metadata
 * server: the JWT grant (claims and signature checked with the test public
 * key), authorized_user, external_account, the ADC chain order, key-file
 * errors, metadata timeouts, and secrets kept out of error messages. */
#include <arpa/inet.h>
#include <jwt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/gcp.h"
#include "lib/log.h"

#define KEY_PEM "tests/data/keys/test_only_rsa_key.pem"
#define PUB_PEM "tests/data/keys/test_only_rsa_pub.pem"
#define EC_PEM	"tests/data/keys/test_only_ec_key.pem"
#define EMAIL	"pushpool-test@test-project.iam.gserviceaccount.com"

/* ---- a recording HTTP server ---- */
#define HS_RECORDING_VIEW
#include "tests/unit/http_server.h"

static void srv_start(struct srv *s, handler_fn fn)
{
	srv_start_with(s, fn, "Metadata-Flavor", "Metadata-Flavor: Google");
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

/* The key PEM as a JSON string body (newlines escaped). */
static char *json_pem(const char *path)
{
	char *pem = slurp(path);
	char *out = calloc(1, strlen(pem) * 2 + 1), *o = out;
	for (const char *p = pem; *p; p++) {
		if (*p == '\n') {
			*o++ = '\\';
			*o++ = 'n';
		} else {
			*o++ = *p;
		}
	}
	free(pem);
	return out;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A service-account key file; omit names a field to leave out. */
static void write_sa(const char *path, const char *key_pem_path, const char *omit)
{
	char *pem = json_pem(key_pem_path);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "{\"type\": \"service_account\", \"project_id\": \"proj-from-key\",\n");
	if (!omit || strcmp(omit, "private_key_id"))
		fprintf(f, " \"private_key_id\": \"kid-0123\",\n");
	if (!omit || strcmp(omit, "private_key"))
		fprintf(f, " \"private_key\": \"%s\",\n", pem);
	if (!omit || strcmp(omit, "client_email"))
		fprintf(f, " \"client_email\": \"%s\",\n", EMAIL);
	fprintf(f, " \"token_uri\": \"https://oauth2.googleapis.com/token\"}\n");
	fclose(f);
	free(pem);
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
	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	unsetenv("GOOGLE_CLOUD_PROJECT");
	unsetenv("GCLOUD_PROJECT");
	unsetenv("GCE_METADATA_HOST");
	setenv("CLOUDSDK_CONFIG", tpath("no-gcloud"), 1);
	setenv("HOME", tmpdir, 1);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pp-test-gcp-XXXXXX");
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

static void conf_init(struct pp_cred_conf *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "g");
	c->type = (char *)"gcp";
	c->file_name = "test.conf";
	c->line = 7;
}

/* ---- handlers ---- */

static int token_ok(struct srv *s, const struct rec *r, char *out, size_t cap)
{
	(void)s;
	if (!strcmp(r->path, "/token") && !strcmp(r->method, "POST")) {
		snprintf(out, cap,
			 "{\"access_token\":\"ya29.test-access\",\"expires_in\":3599,"
			 "\"token_type\":\"Bearer\"}");
		return 200;
	}
	snprintf(out, cap, "{\"error\":\"not_found\"}");
	return 404;
}

static int token_invalid_grant(struct srv *s, const struct rec *r, char *out, size_t cap)
{
	(void)s;
	(void)r;
	snprintf(out, cap,
		 "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT "
		 "Signature.\"}");
	return 400;
}

static int metadata(struct srv *s, const struct rec *r, char *out, size_t cap)
{
	(void)s;
	if (strcmp(r->meta, "Google")) {
		snprintf(out, cap, "missing Metadata-Flavor");
		return 403;
	}
	if (!strcmp(r->path, "/computeMetadata/v1/instance/service-accounts/default/token")) {
		snprintf(out, cap,
			 "{\"access_token\":\"ya29.meta-token\",\"expires_in\":\"1800\","
			 "\"token_type\":\"Bearer\"}");
		return 200;
	}
	if (!strcmp(r->path, "/computeMetadata/v1/project/project-id")) {
		snprintf(out, cap, "meta-project\n");
		return 200;
	}
	if (!strcmp(r->path, "/computeMetadata/v1/instance/service-accounts/default/email")) {
		snprintf(out, cap, "vm-sa@meta-project.iam.gserviceaccount.com");
		return 200;
	}
	return 404;
}

/* ---- tests ---- */

static void test_service_account_grant(void **state)
{
	(void)state;
	struct srv s;
	struct pp_cred_conf conf;
	struct pp_gcp *g = NULL;
	struct pp_token_grant tok = {0};
	struct pp_error err;
	char url[128], form[8192];

	srv_start(&s, token_ok);
	write_sa(tpath("sa.json"), KEY_PEM, NULL);
	conf_init(&conf);
	conf.file = tpath("sa.json");
	snprintf(url, sizeof(url), "%s/token", s.base);
	conf.token_uri = url;
	assert_int_equal(pp_gcp_new(&conf, &g, &err), 0);
	assert_string_equal(pp_gcp_source(g), "service_account");
	assert_string_equal(pp_gcp_project(g), "proj-from-key");
	time_t before = time(NULL);
	assert_int_equal(pp_gcp_fetch(g, &tok, &err), 0);
	assert_string_equal(tok.access_token, "ya29.test-access");
	assert_int_equal(tok.expires_in, 3599);
	assert_int_equal(s.n, 1);

	form_get(s.reqs[0].body, "grant_type", form, sizeof(form));
	assert_string_equal(form, "urn:ietf:params:oauth:grant-type:jwt-bearer");
	form_get(s.reqs[0].body, "assertion", form, sizeof(form));
	char *pub = slurp(PUB_PEM);
	jwt_t *jwt = NULL;
	assert_int_equal(jwt_decode(&jwt, form, (const unsigned char *)pub, (int)strlen(pub)), 0);
	assert_int_equal(jwt_get_alg(jwt), JWT_ALG_RS256);
	assert_string_equal(jwt_get_header(jwt, "kid"), "kid-0123");
	assert_string_equal(jwt_get_grant(jwt, "iss"), EMAIL);
	assert_string_equal(jwt_get_grant(jwt, "scope"), PP_GCP_SCOPE);
	assert_string_equal(jwt_get_grant(jwt, "aud"), "https://oauth2.googleapis.com/token");
	long iat = jwt_get_grant_int(jwt, "iat"), exp = jwt_get_grant_int(jwt, "exp");
	assert_true(iat >= before && iat <= time(NULL));
	assert_int_equal(exp - iat, 3600);
	jwt_free(jwt);

	/* A tampered signature must not verify with the same key. */
	size_t n = strlen(form);
	form[n - 2] = form[n - 2] == 'A' ? 'B' : 'A';
	assert_int_not_equal(jwt_decode(&jwt, form, (const unsigned char *)pub, (int)strlen(pub)),
			     0);
	free(pub);

	struct pp_buf id;
	pp_buf_init(&id, 1024);
	assert_int_equal(pp_gcp_identity(g, &id, &err), 0);
	assert_non_null(strstr(id.data, EMAIL));
	assert_non_null(strstr(id.data, "kid-0123"));
	pp_buf_free(&id);
	/* The environment names the project before the key does. */
	setenv("GOOGLE_CLOUD_PROJECT", "env-project", 1);
	struct pp_gcp *g2 = NULL;
	assert_int_equal(pp_gcp_new(&conf, &g2, &err), 0);
	assert_string_equal(pp_gcp_project(g2), "env-project");
	assert_string_equal(pp_gcp_cache_key(g), pp_gcp_cache_key(g2));
	pp_gcp_free(g2);
	unsetenv("GOOGLE_CLOUD_PROJECT");
	free(tok.access_token);
	pp_gcp_free(g);
	srv_stop(&s);
}

static void test_key_file_errors(void **state)
{
	(void)state;
	struct pp_cred_conf conf;
	struct pp_gcp *g = NULL;
	struct pp_error err;

	conf_init(&conf);
	conf.file = tpath("absent.json");
	assert_int_equal(pp_gcp_new(&conf, &g, &err), PP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "absent.json"));

	write_sa(tpath("noemail.json"), KEY_PEM, "client_email");
	conf.file = tpath("noemail.json");
	assert_int_equal(pp_gcp_new(&conf, &g, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "noemail.json: client_email missing"));

	write_sa(tpath("ec.json"), EC_PEM, NULL);
	conf.file = tpath("ec.json");
	assert_int_equal(pp_gcp_new(&conf, &g, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "ec.json: private_key is not a PEM RSA key"));

	write_file(tpath("garbage.json"),
		   "{\"type\":\"service_account\",\"client_email\":\"a@b\","
		   "\"private_key\":\"-----BEGIN PRIVATE KEY-----\\nnot-base64-secretish\\n"
		   "-----END PRIVATE KEY-----\\n\"}");
	conf.file = tpath("garbage.json");
	assert_int_equal(pp_gcp_new(&conf, &g, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "garbage.json: private_key is not a PEM RSA key"));
	assert_null(strstr(err.msg, "not-base64-secretish"));

	write_file(tpath("gdch.json"), "{\"type\":\"gdch_service_account\"}");
	conf.file = tpath("gdch.json");
	assert_int_equal(pp_gcp_new(&conf, &g, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "gdch_service_account"));

	write_file(tpath("broken.json"), "{\"type\": \"service_account\",\n\"client_email\": }");
	conf.file = tpath("broken.json");
	assert_int_equal(pp_gcp_new(&conf, &g, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "broken.json:2:"));

	conf.file = NULL;
	conf.source = (char *)"file";
	assert_int_equal(pp_gcp_new(&conf, &g, &err), PP_EINVALID);
	conf.source = (char *)"imds";
	assert_int_equal(pp_gcp_new(&conf, &g, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "not valid for gcp"));
	assert_null(g);
}

static void test_token_endpoint_rejects(void **state)
{
	(void)state;
	struct srv s;
	struct pp_cred_conf conf;
	struct pp_gcp *g = NULL;
	struct pp_token_grant tok = {0};
	struct pp_error err;
	char url[128], assertion[8192];

	srv_start(&s, token_invalid_grant);
	write_sa(tpath("sa.json"), KEY_PEM, NULL);
	conf_init(&conf);
	conf.file = tpath("sa.json");
	snprintf(url, sizeof(url), "%s/token", s.base);
	conf.token_uri = url;
	assert_int_equal(pp_gcp_new(&conf, &g, &err), 0);
	assert_int_equal(pp_gcp_fetch(g, &tok, &err), PP_EAUTH);
	assert_null(tok.access_token);
	assert_non_null(strstr(err.msg, "HTTP 400: invalid_grant: Invalid JWT Signature."));
	assert_non_null(strstr(err.msg, "sa.json"));
	form_get(s.reqs[0].body, "assertion", assertion, sizeof(assertion));
	assert_true(strlen(assertion) > 100);
	assert_null(strstr(err.msg, assertion));
	assert_null(strstr(err.msg, "PRIVATE KEY"));
	pp_gcp_free(g);
	srv_stop(&s);
}

static void test_authorized_user(void **state)
{
	(void)state;
	struct srv s;
	struct pp_cred_conf conf;
	struct pp_gcp *g = NULL;
	struct pp_token_grant tok = {0};
	struct pp_error err;
	char url[512], v[256];

	srv_start(&s, token_ok);
	/* Through the gcloud ADC file: no config file, no env. */
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/gcloud", tmpdir);
	mkdir(dir, 0700);
	setenv("CLOUDSDK_CONFIG", dir, 1);
	snprintf(url, sizeof(url), "%s/application_default_credentials.json", dir);
	write_file(url, "{\"type\":\"authorized_user\",\"client_id\":\"123.apps.googleusercontent."
			"com\",\"client_secret\":\"d-FL95Q19q7MQmFpd7hHD0Ty\",\"refresh_token\":"
			"\"1//refresh-secret-value\"}");
	conf_init(&conf);
	snprintf(url, sizeof(url), "%s/token", s.base);
	conf.token_uri = url;
	assert_int_equal(pp_gcp_new(&conf, &g, &err), 0);
	assert_string_equal(pp_gcp_source(g), "authorized_user");
	assert_null(pp_gcp_project(g));
	assert_int_equal(pp_gcp_fetch(g, &tok, &err), 0);
	form_get(s.reqs[0].body, "grant_type", v, sizeof(v));
	assert_string_equal(v, "refresh_token");
	form_get(s.reqs[0].body, "refresh_token", v, sizeof(v));
	assert_string_equal(v, "1//refresh-secret-value");
	form_get(s.reqs[0].body, "client_id", v, sizeof(v));
	assert_string_equal(v, "123.apps.googleusercontent.com");
	struct pp_buf id;
	pp_buf_init(&id, 1024);
	assert_int_equal(pp_gcp_identity(g, &id, &err), 0);
	assert_null(strstr(id.data, "refresh-secret"));
	assert_null(strstr(id.data, "d-FL95Q"));
	pp_buf_free(&id);
	free(tok.access_token);
	pp_gcp_free(g);
	srv_stop(&s);
	clear_env();
}

static void test_chain_order(void **state)
{
	(void)state;
	struct pp_cred_conf conf;
	struct pp_gcp *g = NULL;
	struct pp_error err;
	char dir[300], adc[400];

	write_sa(tpath("conf-sa.json"), KEY_PEM, NULL);
	write_file(tpath("env-user.json"),
		   "{\"type\":\"authorized_user\",\"client_id\":\"env-client\",\"client_secret\":"
		   "\"s3cr3t-env\",\"refresh_token\":\"r3fr3sh-env\"}");
	snprintf(dir, sizeof(dir), "%s/adc", tmpdir);
	mkdir(dir, 0700);
	snprintf(adc, sizeof(adc), "%s/application_default_credentials.json", dir);
	write_file(adc, "{\"type\":\"authorized_user\",\"client_id\":\"adc-client\","
			"\"client_secret\":\"s3cr3t-adc\",\"refresh_token\":\"r3fr3sh-adc\"}");
	setenv("CLOUDSDK_CONFIG", dir, 1);
	setenv("GOOGLE_APPLICATION_CREDENTIALS", tpath("env-user.json"), 1);
	conf_init(&conf);
	conf.file = tpath("conf-sa.json");

	/* 1. the configured file */
	assert_int_equal(pp_gcp_new(&conf, &g, &err), 0);
	assert_string_equal(pp_gcp_source(g), "service_account");
	pp_gcp_free(g);
	/* 2. GOOGLE_APPLICATION_CREDENTIALS */
	conf.file = NULL;
	assert_int_equal(pp_gcp_new(&conf, &g, &err), 0);
	assert_non_null(strstr(pp_gcp_cache_key(g), "env-client"));
	pp_gcp_free(g);
	/* a named file that is missing is an error, not a fall-through */
	setenv("GOOGLE_APPLICATION_CREDENTIALS", tpath("missing.json"), 1);
	assert_int_equal(pp_gcp_new(&conf, &g, &err), PP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "missing.json"));
	/* 3. the gcloud ADC file */
	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	assert_int_equal(pp_gcp_new(&conf, &g, &err), 0);
	assert_non_null(strstr(pp_gcp_cache_key(g), "adc-client"));
	pp_gcp_free(g);
	/* 4. the metadata server; GCE_METADATA_HOST then metadata_host */
	unlink(adc);
	setenv("GCE_METADATA_HOST", "127.0.0.1:9", 1);
	assert_int_equal(pp_gcp_new(&conf, &g, &err), 0);
	assert_string_equal(pp_gcp_source(g), "metadata");
	assert_non_null(strstr(pp_gcp_cache_key(g), "http://127.0.0.1:9"));
	pp_gcp_free(g);
	conf.metadata_host = (char *)"http://127.0.0.1:10/";
	assert_int_equal(pp_gcp_new(&conf, &g, &err), 0);
	assert_non_null(strstr(pp_gcp_cache_key(g), "|http://127.0.0.1:10|"));
	pp_gcp_free(g);
	/* source = env without the variable */
	conf.source = (char *)"env";
	assert_int_equal(pp_gcp_new(&conf, &g, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "GOOGLE_APPLICATION_CREDENTIALS"));
	clear_env();
}

static void test_metadata_server(void **state)
{
	(void)state;
	struct srv s;
	struct pp_cred_conf conf;
	struct pp_gcp *g = NULL;
	struct pp_token_grant tok = {0};
	struct pp_error err;

	srv_start(&s, metadata);
	conf_init(&conf);
	conf.source = (char *)"metadata";
	conf.metadata_host = s.host;
	assert_int_equal(pp_gcp_new(&conf, &g, &err), 0);
	assert_int_equal(pp_gcp_fetch(g, &tok, &err), 0);
	assert_string_equal(tok.access_token, "ya29.meta-token");
	assert_int_equal(tok.expires_in, 1800);
	assert_string_equal(s.reqs[0].meta, "Google");
	assert_string_equal(pp_gcp_project(g), "meta-project");
	assert_string_equal(pp_gcp_project(g), "meta-project");
	assert_int_equal(s.n, 2); /* the project is asked once */
	struct pp_buf id;
	pp_buf_init(&id, 1024);
	assert_int_equal(pp_gcp_identity(g, &id, &err), 0);
	assert_non_null(strstr(id.data, "vm-sa@meta-project.iam.gserviceaccount.com"));
	pp_buf_free(&id);
	free(tok.access_token);
	pp_gcp_free(g);
	srv_stop(&s);
}

static void test_metadata_unreachable_times_out(void **state)
{
	(void)state;
	/* A listener that never answers: connect succeeds, the reply never
	 * comes, so only the short timeout ends the wait. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(sa);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	char host[64];
	snprintf(host, sizeof(host), "127.0.0.1:%u", ntohs(sa.sin_port));

	struct pp_cred_conf conf;
	struct pp_gcp *g = NULL;
	struct pp_token_grant tok = {0};
	struct pp_error err;
	conf_init(&conf);
	conf.metadata_host = host;
	assert_int_equal(pp_gcp_new(&conf, &g, &err), 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(pp_gcp_fetch(g, &tok, &err), PP_ETRANSIENT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(secs >= 0.9 && secs < 3.0);
	assert_non_null(strstr(err.msg, "metadata server"));
	assert_non_null(strstr(err.msg, "no Google credentials"));
	assert_null(pp_gcp_project(g));
	pp_gcp_free(g);
	close(fd);
}

static int sts_and_iam(struct srv *s, const struct rec *r, char *out, size_t cap)
{
	(void)s;
	if (!strcmp(r->path, "/sts")) {
		snprintf(out, cap,
			 "{\"access_token\":\"sts-federated-token\",\"expires_in\":3600,"
			 "\"issued_token_type\":\"urn:ietf:params:oauth:token-type:"
			 "access_token\"}");
		return 200;
	}
	if (!strcmp(r->path, "/iam") && !strcmp(r->auth, "Bearer sts-federated-token")) {
		time_t exp = time(NULL) + 1200;
		struct tm tm;
		gmtime_r(&exp, &tm);
		char when[64];
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S.123456Z", &tm);
		snprintf(out, cap, "{\"accessToken\":\"impersonated-token\",\"expireTime\":\"%s\"}",
			 when);
		return 200;
	}
	return 401;
}

static void test_external_account(void **state)
{
	(void)state;
	struct srv s;
	struct pp_cred_conf conf;
	struct pp_gcp *g = NULL;
	struct pp_token_grant tok = {0};
	struct pp_error err;
	char text[2048], v[512];

	srv_start(&s, sts_and_iam);
	write_file(tpath("oidc.json"), "{\"id_token\": \"subject-oidc-jwt\"}");
	snprintf(text, sizeof(text),
		 "{\"type\":\"external_account\",\"audience\":\"//iam.googleapis.com/projects/1/"
		 "locations/global/workloadIdentityPools/p/providers/k\",\"subject_token_type\":"
		 "\"urn:ietf:params:oauth:token-type:jwt\",\"token_url\":\"%s/sts\","
		 "\"service_account_impersonation_url\":\"%s/iam\",\"credential_source\":{"
		 "\"file\":\"%s\",\"format\":{\"type\":\"json\",\"subject_token_field_name\":"
		 "\"id_token\"}}}",
		 s.base, s.base, tpath("oidc.json"));
	write_file(tpath("wif.json"), text);
	conf_init(&conf);
	conf.file = tpath("wif.json");
	assert_int_equal(pp_gcp_new(&conf, &g, &err), 0);
	assert_string_equal(pp_gcp_source(g), "external_account");
	assert_int_equal(pp_gcp_fetch(g, &tok, &err), 0);
	assert_string_equal(tok.access_token, "impersonated-token");
	assert_true(tok.expires_in > 1190 && tok.expires_in <= 1200);
	assert_int_equal(s.n, 2);
	form_get(s.reqs[0].body, "subject_token", v, sizeof(v));
	assert_string_equal(v, "subject-oidc-jwt");
	form_get(s.reqs[0].body, "grant_type", v, sizeof(v));
	assert_string_equal(v, "urn:ietf:params:oauth:grant-type:token-exchange");
	form_get(s.reqs[0].body, "audience", v, sizeof(v));
	assert_non_null(strstr(v, "workloadIdentityPools/p"));
	assert_non_null(strstr(s.reqs[1].body, PP_GCP_SCOPE));
	free(tok.access_token);
	pp_gcp_free(g);

	/* AWS-sourced subject tokens are refused by name. */
	write_file(tpath("aws.json"), "{\"type\":\"external_account\",\"audience\":\"a\","
				      "\"subject_token_type\":\"t\",\"credential_source\":{"
				      "\"environment_id\":\"aws1\"}}");
	conf.file = tpath("aws.json");
	assert_int_equal(pp_gcp_new(&conf, &g, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "aws.json: credential_source"));
	srv_stop(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_service_account_grant),
		cmocka_unit_test(test_key_file_errors),
		cmocka_unit_test(test_token_endpoint_rejects),
		cmocka_unit_test(test_authorized_user),
		cmocka_unit_test(test_chain_order),
		cmocka_unit_test(test_metadata_server),
		cmocka_unit_test(test_metadata_unreachable_times_out),
		cmocka_unit_test(test_external_account),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
