/* AWS credential chain: order of the sources, each source against a local
 * libmicrohttpd server standing in for STS / the ECS agent / IMDS, each
 * failure's message, refresh before expiry, and request signing. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "auth/aws.h"
#include "dispatcher/config.h"
#include "lib/http.h"
#include "lib/log.h"
#include "tests/unit/http_server.h"

#define MAX_RECS 32
#define MAX_HDRS 24

struct rec {
	char method[8];
	char url[512];
	char body[8192];
	size_t body_len;
	int nhdr;
	char hname[MAX_HDRS][64];
	char hvalue[MAX_HDRS][2048];
};

/* What the fake endpoints answer; tests set it before the calls. */
struct script {
	int sts_status;	      /* 0: 200 with credentials */
	const char *sts_code; /* error code for sts_status */
	long container_ttl;   /* seconds the container credentials live */
	int container_status;
	int imds_delay_ms; /* answer the token PUT this late */
};

struct server {
	struct hs_server hs;
	char base[80];
	pthread_mutex_t lock;
	struct rec recs[MAX_RECS];
	int n;
	struct script sc;
};

static struct server srv;

static const char *rec_header(const struct rec *r, const char *name)
{
	for (int i = 0; i < r->nhdr; i++)
		if (!strcasecmp(r->hname[i], name))
			return r->hvalue[i];
	return NULL;
}

static void iso_time(time_t t, char *out, size_t size)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int respond(struct hs_response *rs, unsigned status, const char *body, const char *type)
{
	rs->status = (int)status;
	snprintf(rs->body, sizeof(rs->body), "%s", body);
	snprintf(rs->content_type, sizeof(rs->content_type), "%s", type);
	return 0;
}

static void answer(struct hs_server *hs, const struct hs_request *rq, struct hs_response *c)
{
	struct server *s = hs->view;
	const char *url = rq->path, *method = rq->method;
	char out[4096], exp[32];

	struct rec *r = calloc(1, sizeof(*r));
	if (!r) {
		respond(c, 500, "out of memory", "text/plain");
		return;
	}
	snprintf(r->method, sizeof(r->method), "%s", method);
	snprintf(r->url, sizeof(r->url), "%s", url);
	r->body_len = rq->body_len < sizeof(r->body) ? rq->body_len : sizeof(r->body) - 1;
	memcpy(r->body, rq->body, r->body_len);
	for (int i = 0; i < rq->nheaders && r->nhdr < MAX_HDRS; i++, r->nhdr++) {
		snprintf(r->hname[r->nhdr], sizeof(r->hname[0]), "%s", rq->names[i]);
		snprintf(r->hvalue[r->nhdr], sizeof(r->hvalue[0]), "%s", rq->values[i]);
	}
	pthread_mutex_lock(&s->lock);
	if (s->n < MAX_RECS)
		s->recs[s->n++] = *r;
	struct script sc = s->sc;
	pthread_mutex_unlock(&s->lock);

	int ret;
	if (!strcmp(url, "/sts")) {
		bool web = strstr(r->body, "Action=AssumeRoleWithWebIdentity") != NULL;
		if (sc.sts_status) {
			snprintf(out, sizeof(out),
				 "<ErrorResponse "
				 "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
				 "<Error><Type>Sender</Type><Code>%s</Code><Message>Not authorized "
				 "to "
				 "perform sts:AssumeRole</Message></Error><RequestId>r1</RequestId>"
				 "</ErrorResponse>",
				 sc.sts_code);
			ret = respond(c, (unsigned)sc.sts_status, out, "text/xml");
		} else {
			iso_time(time(NULL) + 3600, exp, sizeof(exp));
			snprintf(
				out, sizeof(out),
				"<%sResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
				"  <%sResult>\n    <Credentials>\n"
				"      <AccessKeyId>%s</AccessKeyId>\n"
				"      <SecretAccessKey>stssecret/+=&amp;x</SecretAccessKey>\n"
				"      <SessionToken>ststoken-%s</SessionToken>\n"
				"      <Expiration>%s</Expiration>\n    </Credentials>\n"
				"  </%sResult>\n</%sResponse>\n",
				web ? "AssumeRoleWithWebIdentity" : "AssumeRole",
				web ? "AssumeRoleWithWebIdentity" : "AssumeRole",
				web ? "ASIAWEB" : "ASIAROLE", web ? "web" : "role", exp,
				web ? "AssumeRoleWithWebIdentity" : "AssumeRole",
				web ? "AssumeRoleWithWebIdentity" : "AssumeRole");
			ret = respond(c, 200, out, "text/xml");
		}
	} else if (!strcmp(url, "/container/creds")) {
		iso_time(time(NULL) + sc.container_ttl, exp, sizeof(exp));
		snprintf(
			out, sizeof(out),
			"{\"AccessKeyId\":\"ASIACONTAINER\",\"SecretAccessKey\":"
			"\"containersecret\","
			"\"Token\":\"containertoken\",\"Expiration\":\"%s\",\"RoleArn\":\"arn:x\"}",
			exp);
		ret = respond(c, sc.container_status ? (unsigned)sc.container_status : 200, out,
			      "application/json");
	} else if (!strcmp(url, "/latest/api/token") && !strcmp(method, "PUT")) {
		if (sc.imds_delay_ms)
			usleep((useconds_t)sc.imds_delay_ms * 1000);
		ret = rec_header(r, "X-aws-ec2-metadata-token-ttl-seconds")
			      ? respond(c, 200, "imdstoken-123", "text/plain")
			      : respond(c, 400, "missing ttl", "text/plain");
	} else if (!strncmp(url, "/latest/meta-data/iam/security-credentials/", 43)) {
		const char *tok = rec_header(r, "X-aws-ec2-metadata-token");
		iso_time(time(NULL) + 21600, exp, sizeof(exp));
		snprintf(out, sizeof(out),
			 "{\"Code\":\"Success\",\"LastUpdated\":\"%s\",\"Type\":\"AWS-HMAC\","
			 "\"AccessKeyId\":\"ASIAIMDS\",\"SecretAccessKey\":\"imdssecret\","
			 "\"Token\":\"imdstoken\",\"Expiration\":\"%s\"}",
			 exp, exp);
		if (!tok || strcmp(tok, "imdstoken-123"))
			ret = respond(c, 401, "", "text/plain");
		else if (!url[43])
			ret = respond(c, 200, "my-role\n", "text/plain");
		else if (!strcmp(url + 43, "my-role"))
			ret = respond(c, 200, out, "text/plain");
		else
			ret = respond(c, 404, "no such role", "text/plain");
	} else {
		ret = respond(c, 404, "not found", "text/plain");
	}
	(void)ret;
	free(r);
}

static char home[256];
static char path_buf[512];

static const char *tmp_path(const char *name)
{
	snprintf(path_buf, sizeof(path_buf), "%s/%s", home, name);
	return path_buf;
}

static void write_file(const char *name, const char *text)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/.aws", home);
	mkdir(dir, 0700);
	FILE *f = fopen(tmp_path(name), "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static const char *const aws_env[] = {
	"AWS_ACCESS_KEY_ID",
	"AWS_SECRET_ACCESS_KEY",
	"AWS_SESSION_TOKEN",
	"AWS_SECURITY_TOKEN",
	"AWS_WEB_IDENTITY_TOKEN_FILE",
	"AWS_ROLE_ARN",
	"AWS_ROLE_SESSION_NAME",
	"AWS_SHARED_CREDENTIALS_FILE",
	"AWS_CONFIG_FILE",
	"AWS_PROFILE",
	"AWS_DEFAULT_PROFILE",
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	"AWS_CONTAINER_CREDENTIALS_FULL_URI",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
	"AWS_EC2_METADATA_SERVICE_ENDPOINT",
	"AWS_REGION",
	"AWS_DEFAULT_REGION",
};

static int setup(void **state)
{
	(void)state;
	snprintf(home, sizeof(home), "/tmp/pp-aws-chain-XXXXXX");
	if (!mkdtemp(home))
		return -1;
	for (size_t i = 0; i < sizeof(aws_env) / sizeof(aws_env[0]); i++)
		unsetenv(aws_env[i]);
	setenv("HOME", home, 1);
	/* Never reach a real metadata service from a test. */
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	memset(&srv.sc, 0, sizeof(srv.sc));
	srv.sc.container_ttl = 3600;
	pthread_mutex_lock(&srv.lock);
	srv.n = 0;
	pthread_mutex_unlock(&srv.lock);
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", home);
	return system(cmd) == 0 ? 0 : -1;
}

static int group_setup(void **state)
{
	(void)state;
	pthread_mutex_init(&srv.lock, NULL);
	if (hs_start(&srv.hs, answer, &srv))
		return -1;
	snprintf(srv.base, sizeof(srv.base), "%s", srv.hs.base);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	hs_stop(&srv.hs);
	pthread_mutex_destroy(&srv.lock);
	pp_secret_clear();
	return 0;
}

static struct pp_cred_conf base_conf(void)
{
	struct pp_cred_conf c;
	memset(&c, 0, sizeof(c));
	snprintf(c.name, sizeof(c.name), "aws-test");
	c.type = (char *)"aws";
	c.source = (char *)"chain";
	c.region = (char *)"us-east-1";
	c.file_name = "pushpool.ini";
	c.line = 7;
	return c;
}

static char sts_url[128];

static const char *server_url(const char *path)
{
	snprintf(sts_url, sizeof(sts_url), "%s%s", srv.base, path);
	return sts_url;
}

static int requests(void)
{
	pthread_mutex_lock(&srv.lock);
	int n = srv.n;
	pthread_mutex_unlock(&srv.lock);
	return n;
}

/* Resolve with conf; returns rc and fills a (caller frees). */
static int resolve(const struct pp_cred_conf *conf, struct pp_aws *a, struct pp_error *err)
{
	assert_int_equal(pp_aws_init(a, conf, err), 0);
	return pp_aws_ensure(a, err);
}

static void test_static_config_first(void **state)
{
	(void)state;
	struct pp_cred_conf conf = base_conf();
	struct pp_aws a;
	struct pp_error err = {0};

	conf.access_key_id = (char *)"AKIASTATIC";
	conf.secret_access_key = (char *)"staticsecret";
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	assert_int_equal(resolve(&conf, &a, &err), 0);
	assert_string_equal(a.access_key_id, "AKIASTATIC");
	assert_string_equal(a.source, "static");
	assert_int_equal(a.expires, 0);
	pp_aws_free(&a);

	/* Half of a static key pair is a config error that names the file. */
	conf.secret_access_key = NULL;
	assert_int_equal(resolve(&conf, &a, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "pushpool.ini:7"));
	assert_non_null(strstr(err.msg, "secret_access_key missing"));
	pp_aws_free(&a);
}

static void test_env_before_files(void **state)
{
	(void)state;
	struct pp_cred_conf conf = base_conf();
	struct pp_aws a;
	struct pp_error err = {0};

	write_file(".aws/credentials", "[default]\naws_access_key_id = AKIAFILE\n"
				       "aws_secret_access_key = filesecret\n");
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	setenv("AWS_SESSION_TOKEN", "envtoken", 1);
	assert_int_equal(resolve(&conf, &a, &err), 0);
	assert_string_equal(a.access_key_id, "AKIAENV");
	assert_string_equal(a.session_token, "envtoken");
	assert_string_equal(a.source, "env");
	pp_aws_free(&a);

	/* An explicit profile skips the environment, as botocore does. */
	conf.profile = (char *)"default";
	assert_int_equal(resolve(&conf, &a, &err), 0);
	assert_string_equal(a.access_key_id, "AKIAFILE");
	assert_string_equal(a.source, "profile");
	assert_null(a.session_token);
	pp_aws_free(&a);

	conf.profile = NULL;
	unsetenv("AWS_SECRET_ACCESS_KEY");
	assert_int_equal(resolve(&conf, &a, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "AWS_SECRET_ACCESS_KEY missing"));
	pp_aws_free(&a);
}

static void test_web_identity(void **state)
{
	(void)state;
	struct pp_cred_conf conf = base_conf();
	struct pp_aws a;
	struct pp_error err = {0};

	conf.sts_endpoint = (char *)server_url("/sts");
	write_file("token.jwt", "eyJhbGciOiJSUzI1NiJ9.payload.sig\n");
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tmp_path("token.jwt"), 1);
	setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/push", 1);
	setenv("AWS_ROLE_SESSION_NAME", "sess-1", 1);
	/* Web identity comes before the shared files. */
	write_file(".aws/credentials", "[default]\naws_access_key_id = AKIAFILE\n"
				       "aws_secret_access_key = filesecret\n");
	assert_int_equal(resolve(&conf, &a, &err), 0);
	assert_string_equal(a.access_key_id, "ASIAWEB");
	assert_string_equal(a.secret_access_key, "stssecret/+=&x");
	assert_string_equal(a.session_token, "ststoken-web");
	assert_string_equal(a.source, "web_identity");
	assert_true(a.expires > time(NULL) + 3000);
	assert_int_equal(requests(), 1);
	const struct rec *r = &srv.recs[0];
	assert_string_equal(r->method, "POST");
	/* AssumeRoleWithWebIdentity is unsigned. */
	assert_null(rec_header(r, "Authorization"));
	assert_non_null(strstr(r->body, "Action=AssumeRoleWithWebIdentity"));
	assert_non_null(strstr(r->body, "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fpush"));
	assert_non_null(strstr(r->body, "RoleSessionName=sess-1"));
	assert_non_null(strstr(r->body, "WebIdentityToken=eyJhbGciOiJSUzI1NiJ9.payload.sig"));
	pp_aws_free(&a);

	/* Environment keys come before web identity. */
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	assert_int_equal(resolve(&conf, &a, &err), 0);
	assert_string_equal(a.source, "env");
	assert_int_equal(requests(), 1);
	pp_aws_free(&a);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");

	/* The token file named by the environment is missing. */
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tmp_path("missing.jwt"), 1);
	assert_int_equal(resolve(&conf, &a, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "missing.jwt"));
	pp_aws_free(&a);
}

static void test_sts_errors(void **state)
{
	(void)state;
	struct pp_cred_conf conf = base_conf();
	struct pp_aws a;
	struct pp_error err = {0};

	conf.sts_endpoint = (char *)server_url("/sts");
	conf.source = (char *)"web_identity";
	write_file("token.jwt", "tok-abcdef");
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tmp_path("token.jwt"), 1);
	setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/push", 1);
	srv.sc.sts_status = 403;
	srv.sc.sts_code = "AccessDenied";
	assert_int_equal(resolve(&conf, &a, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "HTTP 403 AccessDenied: Not authorized"));
	assert_non_null(strstr(err.msg, "AssumeRoleWithWebIdentity"));
	assert_null(strstr(err.msg, "tok-abcdef"));
	pp_aws_free(&a);

	srv.sc.sts_status = 503;
	srv.sc.sts_code = "ServiceUnavailable";
	assert_int_equal(resolve(&conf, &a, &err), PP_ETRANSIENT);
	pp_aws_free(&a);

	srv.sc.sts_status = 400;
	srv.sc.sts_code = "Throttling";
	assert_int_equal(resolve(&conf, &a, &err), PP_ETHROTTLED);
	pp_aws_free(&a);
}

static void test_profile_files(void **state)
{
	(void)state;
	struct pp_cred_conf conf = base_conf();
	struct pp_aws a;
	struct pp_error err = {0};

	conf.region = NULL;
	write_file("creds",
		   "# comment\n[default]\naws_access_key_id=AKIADEF\n"
		   "aws_secret_access_key=defsecret\n\n[prod]\n"
		   "aws_access_key_id = AKIAPROD\r\naws_secret_access_key = prodsecret\r\n"
		   "aws_session_token = prodtoken\n[broken]\naws_access_key_id = AKIABROKEN\n");
	write_file("config", "[default]\nregion = eu-west-1\n[profile prod]\nregion = ap-south-1\n"
			     "s3 =\n  region = nested-ignored\n");
	setenv("AWS_SHARED_CREDENTIALS_FILE", tmp_path("creds"), 1);
	setenv("AWS_CONFIG_FILE", tmp_path("config"), 1);
	setenv("AWS_PROFILE", "prod", 1);
	assert_int_equal(resolve(&conf, &a, &err), 0);
	assert_string_equal(a.access_key_id, "AKIAPROD");
	assert_string_equal(a.session_token, "prodtoken");
	assert_string_equal(a.region, "ap-south-1");
	pp_aws_free(&a);

	setenv("AWS_PROFILE", "broken", 1);
	assert_int_equal(resolve(&conf, &a, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "creds [broken]: aws_secret_access_key missing"));
	pp_aws_free(&a);

	setenv("AWS_PROFILE", "nosuch", 1);
	assert_int_equal(resolve(&conf, &a, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "profile [nosuch] not found"));
	pp_aws_free(&a);

	/* Region order: config, AWS_REGION, AWS_DEFAULT_REGION, profile. */
	unsetenv("AWS_PROFILE");
	setenv("AWS_DEFAULT_REGION", "us-west-1", 1);
	assert_int_equal(resolve(&conf, &a, &err), 0);
	assert_string_equal(a.region, "us-west-1");
	assert_string_equal(a.access_key_id, "AKIADEF");
	pp_aws_free(&a);
	setenv("AWS_REGION", "us-west-2", 1);
	assert_int_equal(resolve(&conf, &a, &err), 0);
	assert_string_equal(a.region, "us-west-2");
	pp_aws_free(&a);
	conf.region = (char *)"sa-east-1";
	assert_int_equal(resolve(&conf, &a, &err), 0);
	assert_string_equal(a.region, "sa-east-1");
	pp_aws_free(&a);
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	conf.region = NULL;
	assert_int_equal(resolve(&conf, &a, &err), 0);
	assert_string_equal(a.region, "eu-west-1");
	pp_aws_free(&a);
}

static void test_profile_assume_role(void **state)
{
	(void)state;
	struct pp_cred_conf conf = base_conf();
	struct pp_aws a;
	struct pp_error err = {0};

	conf.sts_endpoint = (char *)server_url("/sts");
	write_file(".aws/credentials", "[base]\naws_access_key_id = AKIABASE\n"
				       "aws_secret_access_key = basesecret\n");
	write_file(".aws/config", "[profile deploy]\nrole_arn = arn:aws:iam::1:role/deploy\n"
				  "source_profile = base\nrole_session_name = pp\n"
				  "external_id = ext-1\nduration_seconds = 900\n");
	conf.profile = (char *)"deploy";
	assert_int_equal(resolve(&conf, &a, &err), 0);
	assert_string_equal(a.access_key_id, "ASIAROLE");
	assert_string_equal(a.session_token, "ststoken-role");
	assert_true(a.expires > 0);
	assert_int_equal(requests(), 1);

	/* The server checks the AssumeRole signature with the base keys. */
	const struct rec *r = &srv.recs[0];
	const char *auth = rec_header(r, "Authorization");
	assert_non_null(auth);
	assert_non_null(strstr(auth, "Credential=AKIABASE/"));
	assert_non_null(strstr(auth, "/us-east-1/sts/aws4_request"));
	assert_non_null(strstr(r->body, "Action=AssumeRole&"));
	assert_non_null(strstr(r->body, "RoleSessionName=pp"));
	assert_non_null(strstr(r->body, "ExternalId=ext-1"));
	assert_non_null(strstr(r->body, "DurationSeconds=900"));
	const char *signed_list = strstr(auth, "SignedHeaders=");
	assert_non_null(signed_list);
	char list[256];
	sscanf(signed_list + 14, "%255[^,]", list);
	assert_string_equal(list, "content-type;host;x-amz-date");
	const char *names[] = {"content-type", "host", "x-amz-date"};
	const char *values[] = {rec_header(r, "Content-Type"), rec_header(r, "Host"),
				rec_header(r, "X-Amz-Date")};
	struct tm tm = {0};
	assert_non_null(strptime(values[2], "%Y%m%dT%H%M%SZ", &tm));
	struct pp_sigv4_input in = {
		.method = "POST",
		.path = "/sts",
		.header_names = names,
		.header_values = values,
		.nheaders = 3,
		.payload = r->body,
		.payload_len = r->body_len,
		.access_key_id = "AKIABASE",
		.secret_access_key = "basesecret",
		.region = "us-east-1",
		.service = "sts",
		.when = timegm(&tm),
		.normalize_path = true,
	};
	struct pp_sigv4_output out;
	pp_sigv4_output_init(&out);
	assert_int_equal(pp_sigv4_sign(&in, &out, &err), 0);
	assert_string_equal(out.authorization.data, auth);
	pp_sigv4_output_free(&out);
	pp_aws_free(&a);

	/* A source profile that does not exist. */
	write_file(".aws/config", "[profile deploy]\nrole_arn = arn:aws:iam::1:role/deploy\n"
				  "source_profile = gone\n");
	assert_int_equal(resolve(&conf, &a, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "profile [gone] not found"));
	pp_aws_free(&a);
}

static void test_container(void **state)
{
	(void)state;
	struct pp_cred_conf conf = base_conf();
	struct pp_aws a;
	struct pp_error err = {0};

	conf.container_endpoint = (char *)srv.base;
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/container/creds", 1);
	/* IMDS answers too, but the container source comes first. */
	unsetenv("AWS_EC2_METADATA_DISABLED");
	conf.imds_endpoint = (char *)srv.base;
	assert_int_equal(resolve(&conf, &a, &err), 0);
	assert_string_equal(a.access_key_id, "ASIACONTAINER");
	assert_string_equal(a.session_token, "containertoken");
	assert_string_equal(a.source, "container");
	assert_null(rec_header(&srv.recs[0], "Authorization"));

	/* Within 5 minutes of expiry the keys are fetched again; before, not. */
	assert_int_equal(pp_aws_ensure(&a, &err), 0);
	assert_int_equal(requests(), 1);
	a.expires = time(NULL) + 299;
	assert_int_equal(pp_aws_ensure(&a, &err), 0);
	assert_int_equal(requests(), 2);
	assert_int_equal(a.refreshes, 2);
	pp_aws_free(&a);

	/* Full URI with an authorization token from a file. */
	unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", server_url("/container/creds"), 1);
	write_file("auth-token", "Bearer-abc-123\n");
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tmp_path("auth-token"), 1);
	assert_int_equal(resolve(&conf, &a, &err), 0);
	assert_string_equal(rec_header(&srv.recs[2], "Authorization"), "Bearer-abc-123");
	pp_aws_free(&a);

	/* Only loopback and the ECS/EKS agent addresses over plain http. */
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/creds", 1);
	assert_int_equal(resolve(&conf, &a, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "only https or a loopback"));
	pp_aws_free(&a);

	/* Expired credentials from the agent. */
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", server_url("/container/creds"), 1);
	srv.sc.container_ttl = -60;
	assert_int_equal(resolve(&conf, &a, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "container: credentials expired"));
	pp_aws_free(&a);

	/* A configured endpoint that answers 404 fails; the chain does not go on. */
	srv.sc.container_ttl = 3600;
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", server_url("/container/none"), 1);
	assert_int_equal(resolve(&conf, &a, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "HTTP 404"));
	pp_aws_free(&a);
}

static void test_imds(void **state)
{
	(void)state;
	struct pp_cred_conf conf = base_conf();
	struct pp_aws a;
	struct pp_error err = {0};

	unsetenv("AWS_EC2_METADATA_DISABLED");
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.base, 1);
	assert_int_equal(resolve(&conf, &a, &err), 0);
	assert_string_equal(a.access_key_id, "ASIAIMDS");
	assert_string_equal(a.source, "imds");
	assert_int_equal(requests(), 3);
	assert_string_equal(srv.recs[0].method, "PUT");
	assert_string_equal(rec_header(&srv.recs[0], "X-aws-ec2-metadata-token-ttl-seconds"),
			    "21600");
	assert_string_equal(srv.recs[2].url, "/latest/meta-data/iam/security-credentials/my-role");
	pp_aws_free(&a);

	/* Disabled: the chain ends with nothing found, naming what it tried. */
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	assert_int_equal(resolve(&conf, &a, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "no AWS credentials found"));
	assert_non_null(strstr(err.msg, "AWS_ACCESS_KEY_ID not set"));
	assert_non_null(strstr(err.msg, "AWS_EC2_METADATA_DISABLED"));
	pp_aws_free(&a);
}

static void test_imds_unreachable_is_quick(void **state)
{
	(void)state;
	struct pp_cred_conf conf = base_conf();
	struct pp_aws a;
	struct pp_error err = {0};
	struct timespec t0, t1;

	unsetenv("AWS_EC2_METADATA_DISABLED");
	conf.imds_endpoint = (char *)srv.base;
	srv.sc.imds_delay_ms = 3000;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(resolve(&conf, &a, &err), PP_EAUTH);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(secs < 2.5);
	assert_non_null(strstr(err.msg, "imds"));
	pp_aws_free(&a);

	/* Asked for by name, a timeout stays a temporary failure. */
	conf.source = (char *)"imds";
	assert_int_equal(resolve(&conf, &a, &err), PP_ETRANSIENT);
	pp_aws_free(&a);
}

static void test_single_source_and_bad_source(void **state)
{
	(void)state;
	struct pp_cred_conf conf = base_conf();
	struct pp_aws a;
	struct pp_error err = {0};

	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	conf.source = (char *)"container";
	assert_int_equal(resolve(&conf, &a, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"));
	pp_aws_free(&a);

	conf.source = (char *)"metadata";
	assert_int_equal(pp_aws_init(&a, &conf, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "pushpool.ini:7"));
	pp_aws_free(&a);
}

static void test_sign_request_and_redaction(void **state)
{
	(void)state;
	struct pp_cred_conf conf = base_conf();
	struct pp_aws a;
	struct pp_error err = {0};
	struct pp_http_req req;

	conf.source = (char *)"env";
	setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
	setenv("AWS_SESSION_TOKEN", "session-token-value", 1);
	assert_int_equal(resolve(&conf, &a, &err), 0);
	a.service = strdup("ecs");

	pp_http_req_init(&req, "POST", "https://ecs.us-east-1.amazonaws.com:443/");
	assert_int_equal(pp_http_req_set_header(&req, "Content-Type", "application/x-amz-json-1.1"),
			 0);
	assert_int_equal(pp_http_req_set_header(&req, "X-Amz-Target",
						"AmazonEC2ContainerServiceV20141113.RunTask"),
			 0);
	assert_int_equal(pp_http_req_set_header(&req, "User-Agent", "pushpool"), 0);
	assert_int_equal(pp_http_req_body(&req, "{}", 2), 0);
	assert_int_equal(pp_aws_sign_request(&a, &req, 1440938160, &err), 0);
	assert_string_equal(pp_http_req_get_header(&req, "X-Amz-Date"), "20150830T123600Z");
	assert_string_equal(pp_http_req_get_header(&req, "X-Amz-Security-Token"),
			    "session-token-value");
	const char *auth = pp_http_req_get_header(&req, "Authorization");
	assert_non_null(auth);
	assert_non_null(strstr(auth, "Credential=AKIDEXAMPLE/20150830/us-east-1/ecs/aws4_request, "
				     "SignedHeaders=content-type;host;x-amz-date;"
				     "x-amz-security-token;x-amz-target, Signature="));
	assert_string_equal(a.key_scope, "20150830/us-east-1/ecs");

	/* Same request signed from scratch: the cached key gives the same result,
	 * and the default port is not part of the signed host. */
	const char *names[] = {"host", "content-type", "x-amz-date", "x-amz-security-token",
			       "x-amz-target"};
	const char *values[] = {"ecs.us-east-1.amazonaws.com", "application/x-amz-json-1.1",
				"20150830T123600Z", "session-token-value",
				"AmazonEC2ContainerServiceV20141113.RunTask"};
	struct pp_sigv4_input in = {
		.method = "POST",
		.path = "/",
		.header_names = names,
		.header_values = values,
		.nheaders = 5,
		.payload = "{}",
		.payload_len = 2,
		.access_key_id = "AKIDEXAMPLE",
		.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
		.region = "us-east-1",
		.service = "ecs",
		.when = 1440938160,
		.normalize_path = true,
	};
	struct pp_sigv4_output out;
	pp_sigv4_output_init(&out);
	assert_int_equal(pp_sigv4_sign(&in, &out, &err), 0);
	assert_string_equal(out.authorization.data, auth);
	pp_sigv4_output_free(&out);

	/* A re-sign (retry) replaces the headers rather than adding more. */
	assert_int_equal(pp_aws_sign_request(&a, &req, 1440938161, &err), 0);
	int dates = 0;
	for (const struct pp_http_header *h = req.headers; h; h = h->next)
		dates += !strcasecmp(h->name, "X-Amz-Date");
	assert_int_equal(dates, 1);
	pp_http_req_free(&req);

	/* Without a scope the service comes from an AWS endpoint's first label;
	 * other hosts (mocks) must set it. */
	free(a.service);
	a.service = NULL;
	pp_http_req_init(&req, "GET", "https://sts.us-east-1.amazonaws.com/?b=1&a=2");
	assert_int_equal(pp_aws_sign_request(&a, &req, 1440938160, &err), 0);
	assert_non_null(strstr(pp_http_req_get_header(&req, "Authorization"),
			       "/us-east-1/sts/aws4_request"));
	pp_http_req_free(&req);
	pp_http_req_init(&req, "GET", "http://127.0.0.1:8080/x");
	assert_int_equal(pp_aws_sign_request(&a, &req, 1440938160, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "no service"));
	pp_http_req_free(&req);

	/* Secrets are registered for redaction. */
	char line[256];
	snprintf(line, sizeof(line),
		 "key wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY tok "
		 "session-token-value");
	pp_redact(line);
	assert_null(strstr(line, "EXAMPLEKEY"));
	assert_null(strstr(line, "session-token-value"));
	pp_aws_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_static_config_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_before_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_web_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sts_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_profile_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_profile_assume_role, setup, teardown),
		cmocka_unit_test_setup_teardown(test_container, setup, teardown),
		cmocka_unit_test_setup_teardown(test_imds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_imds_unreachable_is_quick, setup, teardown),
		cmocka_unit_test_setup_teardown(test_single_source_and_bad_source, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sign_request_and_redaction, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
