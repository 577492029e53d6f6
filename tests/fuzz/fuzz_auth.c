/* libFuzzer entry for the credential chains' response parsers: OAuth2 token
 * answers (Google service account and refresh token, Entra ID), the Google
 * metadata server, AWS IMDS (v2 token, role, keys), the ECS container
 * endpoint and STS (XML); static AWS keys sign with no call), driven through pp_cred_apply and
 * pp_cred_identity as providers and `auth check` use them. Blocking HTTP
 * calls take canned answers from the input (canned_http.h); the input's
 * first line picks the credential.
 *
 * Beyond "no crash, no leak": every failure carries a message, no
 * configured secret appears in one, every request goes to the configured
 * endpoints, and a successful apply leaves the request authorized.
 * Build: clang -fsanitize=fuzzer,address,undefined. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "auth/auth.h"
#include "lib/http.h"
#include "lib/log.h"
#include "tests/fuzz/canned_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
unsigned int __wrap_sleep(unsigned int seconds);

#define BASE	      "http://auth.invalid"
#define CLIENT_SECRET "fuzz-client-secret-canary-8c1f"
#define AWS_SECRET    "fuzzAwsSecretCanary0123456789abcdefABCD"
#define REFRESH_TOKEN "fuzz-refresh-token-canary-77e2"

static const char *const endpoints[] = {BASE "/", NULL};
static const char *const secrets[] = {CLIENT_SECRET, AWS_SECRET, REFRESH_TOKEN, NULL};

static char dir[] = "/tmp/pp-fuzz-auth-XXXXXX";
static char *files[3];
static struct pp_cred_conf confs[9];
static size_t nconfs;

/* The key files are read at every pp_cred_new: remove them at exit. */
static void remove_files(void)
{
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (files[i])
			unlink(files[i]);
		free(files[i]);
	}
	rmdir(dir);
}

/* The chains pause between tries (the ECS agent may not be up yet); time
 * is not under test here, and a fuzzer that sleeps finds nothing. */
unsigned int __wrap_sleep(unsigned int seconds)
{
	return 0;
}

static void setup_failed(const char *what)
{
	fprintf(stderr, "fuzz_auth setup: %s\n", what);
	abort();
}

static char *path_in_dir(const char *name)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		setup_failed("out of memory");
	return p;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f))
		setup_failed(path);
}

/* A service-account key file with a fresh RSA key: the JWT path signs for
 * real before its token request. */
static void write_service_account(const char *path)
{
	EVP_PKEY *key = EVP_RSA_gen(2048);
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL;
	if (!key || !bio || !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
		setup_failed("RSA key");
	long n = BIO_get_mem_data(bio, &pem);
	FILE *f = fopen(path, "w");
	if (!f)
		setup_failed(path);
	fputs("{\"type\":\"service_account\",\"project_id\":\"fuzz-proj\",\"private_key_id\":"
	      "\"k1\",\"client_email\":\"sa@fuzz-proj.iam.gserviceaccount.com\",\"token_uri\":"
	      "\"" BASE "/google/token\",\"private_key\":\"",
	      f);
	for (long i = 0; i < n; i++)
		pem[i] == '\n' ? fputs("\\n", f) : fputc(pem[i], f);
	fputs("\"}", f);
	fclose(f);
	BIO_free(bio);
	EVP_PKEY_free(key);
}

static struct pp_cred_conf *add(const char *type, const char *source)
{
	struct pp_cred_conf *c = &confs[nconfs++];
	snprintf(c->name, sizeof(c->name), "c%zu", nconfs);
	c->type = (char *)type;
	c->source = (char *)source;
	return c;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (!mkdtemp(dir))
		setup_failed("mkdtemp");
	char *sa = files[0] = path_in_dir("sa.json"), *user = files[1] = path_in_dir("user.json");
	char *token = files[2] = path_in_dir("web-identity.jwt");
	atexit(remove_files);
	write_service_account(sa);
	write_file(user,
		   "{\"type\":\"authorized_user\",\"client_id\":\"fuzz.apps\",\"client_secret\":"
		   "\"" CLIENT_SECRET "\",\"refresh_token\":\"" REFRESH_TOKEN
		   "\",\"quota_project_id\":\"fuzz-proj\"}");
	write_file(token, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmdXp6In0.c2ln\n");
	/* The AWS sources that read their settings from the environment. */
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token, 1);
	setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/fuzz", 1);
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds", 1);
	unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");

	struct pp_cred_conf *c = add("gcp", "file");
	c->file = sa;
	c = add("gcp", "file");
	c->file = user;
	c->token_uri = BASE "/google/token";
	c = add("gcp", "metadata");
	c->metadata_host = BASE "/metadata";
	c = add("aws", "imds");
	c->imds_endpoint = BASE "/imds";
	c->region = "us-east-1";
	c = add("aws", "web_identity");
	c->sts_endpoint = BASE "/sts";
	c->region = "us-east-1";
	c = add("aws", "container");
	c->container_endpoint = BASE "/container";
	c->region = "us-east-1";
	c = add("aws", "static");
	c->access_key_id = "AKIAFUZZEXAMPLE";
	c->secret_access_key = AWS_SECRET;
	c->region = "us-east-1";
	c = add("azure", "secret");
	c->tenant_id = "tenant-1";
	c->client_id = "client-1";
	c->client_secret = CLIENT_SECRET;
	c->authority = BASE "/azure";
	c = add("azure", "managed_identity");
	c->imds_endpoint = BASE "/azure-imds";

	FILE *devnull = fopen("/dev/null", "w");
	if (!devnull)
		abort();
	pp_log_setup(PP_LOG_ERROR, PP_LOG_TEXT, devnull);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char pick[16];
	struct pp_error err = {0};
	struct pp_cred *cred = NULL;
	canned_start(data, size, endpoints);
	canned_line(pick, sizeof(pick));
	const struct pp_cred_conf *conf = &confs[strtoul(pick, NULL, 10) % nconfs];

	int rc = pp_cred_new(conf, &cred, &err);
	canned_check_failure(rc, &err, secrets);
	if (rc)
		return 0;
	/* A fresh answer for every input, whatever an earlier one cached. */
	pp_cred_invalidate(cred);
	/* Signing credentials need a scope; bearer ones ignore it. */
	pp_cred_set_scope(cred, "us-east-1", "ecs");
	for (int round = 0; round < 2; round++) {
		struct pp_http_req req;
		pp_http_req_init(&req, "POST", "https://api.example.invalid/v1/things");
		if (pp_http_req_body(&req, "{}", 2))
			abort();
		pp_error_clear(&err);
		rc = pp_cred_apply(cred, &req, &err);
		canned_check_failure(rc, &err, secrets);
		if (!rc && !pp_http_req_get_header(&req, "Authorization"))
			abort(); /* applied, yet not authorized */
		pp_http_req_free(&req);
	}
	struct pp_buf who;
	pp_buf_init(&who, 4096);
	pp_error_clear(&err);
	canned_check_failure(pp_cred_identity(cred, &who, &err), &err, secrets);
	pp_buf_free(&who);
	pp_cred_free(cred);
	return 0;
}
