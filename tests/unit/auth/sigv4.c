/* SigV4 signer: every case of the AWS test suite (tests/data/sigv4, header
 * signing), the documented key-derivation example, and edge cases of the
 * canonicalizer. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "auth/auth.h"
#include "auth/aws.h"
#include "lib/json.h"

#define MAX_HEADERS 40

static const char *suite_dir(void)
{
	const char *d = getenv("PP_SIGV4_SUITE");
	return d ? d : "tests/data/sigv4";
}

static char *read_text(const char *dir, const char *name)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct pp_buf b;
	char chunk[4096];
	size_t n;
	pp_buf_init(&b, 1 << 20);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(pp_buf_append(&b, chunk, n), 0);
	fclose(f);
	return pp_buf_steal(&b);
}

static void chomp(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

/* request.txt: request line, headers (continuation lines start with
 * whitespace and stay part of the value), blank line, body. Pointers go
 * into the text, which is modified in place. */
struct suite_request {
	char *method, *path, *query;
	const char *names[MAX_HEADERS];
	const char *values[MAX_HEADERS];
	size_t nheaders;
	const char *body;
	size_t body_len;
};

static void parse_request(char *text, struct suite_request *r)
{
	memset(r, 0, sizeof(*r));
	char *eol = strchr(text, '\n');
	assert_non_null(eol);
	*eol = '\0';
	char *first_space = strchr(text, ' '), *last_space = strrchr(text, ' ');
	assert_non_null(first_space);
	assert_true(last_space > first_space);
	*first_space = '\0';
	*last_space = '\0';
	r->method = text;
	r->path = first_space + 1;
	char *q = strchr(r->path, '?');
	if (q) {
		*q = '\0';
		r->query = q + 1;
	}
	char *line = eol + 1;
	char *value_end = NULL;
	while (*line && *line != '\n') {
		char *next = strchr(line, '\n');
		if (next)
			*next = '\0';
		if ((*line == ' ' || *line == '\t') && value_end) {
			/* Fold: rejoin with the newline the signer treats as space. */
			*value_end = '\n';
		} else {
			char *colon = strchr(line, ':');
			assert_non_null(colon);
			assert_true(r->nheaders < MAX_HEADERS);
			*colon = '\0';
			r->names[r->nheaders] = line;
			r->values[r->nheaders++] = colon + 1;
		}
		value_end = next;
		if (!next) {
			line = line + strlen(line);
			break;
		}
		line = next + 1;
	}
	if (*line == '\n')
		line++;
	r->body = line;
	r->body_len = strlen(line);
}

static time_t parse_timestamp(const char *s)
{
	struct tm tm = {0};
	assert_non_null(strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm));
	return timegm(&tm);
}

static void hex(const unsigned char *k, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", k[i]);
}

/* One suite case in header mode: canonical request, string to sign,
 * signature and Authorization must match the folder's header-* files. */
static void run_case(const char *dir)
{
	struct pp_json *ctx = NULL;
	struct pp_error err = {0};
	char path[1024], amz_date[17], body_hash[65] = "";
	struct suite_request r;
	struct pp_sigv4_input in = {0};
	struct pp_sigv4_output out;

	snprintf(path, sizeof(path), "%s/context.json", dir);
	assert_int_equal(pp_json_parse_file(path, NULL, &ctx, &err), 0);
	char *req_text = read_text(dir, "request.txt");
	char *want_cr = read_text(dir, "header-canonical-request.txt");
	char *want_sts = read_text(dir, "header-string-to-sign.txt");
	char *want_sig = read_text(dir, "header-signature.txt");
	char *want_signed = read_text(dir, "header-signed-request.txt");
	assert_non_null(req_text);
	assert_non_null(want_cr);
	assert_non_null(want_sts);
	assert_non_null(want_sig);
	assert_non_null(want_signed);
	chomp(want_sig);

	parse_request(req_text, &r);
	const struct pp_json *creds = pp_json_get(ctx, "credentials");
	const char *token = pp_json_get_string(creds, "token");
	time_t when = parse_timestamp(pp_json_get_string(ctx, "timestamp"));
	struct tm tm;
	gmtime_r(&when, &tm);
	strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);

	r.names[r.nheaders] = "X-Amz-Date";
	r.values[r.nheaders++] = amz_date;
	if (pp_json_get_bool(ctx, "sign_body", false)) {
		/* The suite's "sign_body" means: send x-amz-content-sha256. */
		unsigned char md[32];
		unsigned int mdlen = 0;
		assert_true(EVP_Digest(r.body, r.body_len, md, &mdlen, EVP_sha256(), NULL));
		hex(md, mdlen, body_hash);
		r.names[r.nheaders] = "X-Amz-Content-Sha256";
		r.values[r.nheaders++] = body_hash;
	}
	if (token && !pp_json_get_bool(ctx, "omit_session_token", false)) {
		r.names[r.nheaders] = "X-Amz-Security-Token";
		r.values[r.nheaders++] = token;
	}
	in.method = r.method;
	in.path = r.path;
	in.query = r.query;
	in.header_names = r.names;
	in.header_values = r.values;
	in.nheaders = r.nheaders;
	in.payload = r.body;
	in.payload_len = r.body_len;
	in.access_key_id = pp_json_get_string(creds, "access_key_id");
	in.secret_access_key = pp_json_get_string(creds, "secret_access_key");
	in.session_token = token;
	in.region = pp_json_get_string(ctx, "region");
	in.service = pp_json_get_string(ctx, "service");
	in.when = when;
	in.normalize_path = pp_json_get_bool(ctx, "normalize", true);

	pp_sigv4_output_init(&out);
	int rc = pp_sigv4_sign(&in, &out, &err);
	if (rc)
		fail_msg("%s: %s", dir, err.msg);
	if (strcmp(out.canonical_request.data, want_cr))
		fail_msg("%s: canonical request\n--- got\n%s\n--- want\n%s", dir,
			 out.canonical_request.data, want_cr);
	if (strcmp(out.string_to_sign.data, want_sts))
		fail_msg("%s: string to sign\n--- got\n%s\n--- want\n%s", dir,
			 out.string_to_sign.data, want_sts);
	if (strcmp(out.signature, want_sig))
		fail_msg("%s: signature %s, want %s", dir, out.signature, want_sig);
	char auth_line[1024];
	snprintf(auth_line, sizeof(auth_line), "\nAuthorization:%s\n", out.authorization.data);
	char *signed_nl = NULL;
	if (asprintf(&signed_nl, "%s\n", want_signed) < 0)
		fail();
	if (!strstr(signed_nl, auth_line))
		fail_msg("%s: Authorization %s not in header-signed-request.txt", dir,
			 out.authorization.data);
	free(signed_nl);
	pp_sigv4_output_free(&out);
	pp_json_free(ctx);
	free(req_text);
	free(want_cr);
	free(want_sts);
	free(want_sig);
	free(want_signed);
}

static void test_suite_header_signing(void **state)
{
	(void)state;
	DIR *d = opendir(suite_dir());
	struct dirent *e;
	int cases = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char dir[512];
		char ctx[600];
		if (e->d_name[0] == '.')
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", suite_dir(), e->d_name);
		/* Case folders hold context.json; NOTICE and LICENSE do not. */
		snprintf(ctx, sizeof(ctx), "%s/context.json", dir);
		if (access(ctx, R_OK))
			continue;
		run_case(dir);
		cases++;
	}
	closedir(d);
	/* The suite copied from aws-c-auth has 38 cases; fewer means a lost copy. */
	assert_true(cases >= 38);
}

/* The worked example of the IAM user guide ("Examples of how to derive a
 * signing key for Signature Version 4"). */
static void test_signing_key_documented_example(void **state)
{
	(void)state;
	unsigned char key[32];
	char got[65];

	assert_int_equal(pp_sigv4_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
					      "20120215", "us-east-1", "iam", key),
			 0);
	hex(key, sizeof(key), got);
	assert_string_equal(got,
			    "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

struct sign_case {
	const char *method, *path, *query;
	bool normalize;
};

static void sign_simple(const struct sign_case *c, struct pp_sigv4_output *out)
{
	const char *names[] = {"Host"}, *values[] = {"example.amazonaws.com"};
	struct pp_sigv4_input in = {
		.method = c->method,
		.path = c->path,
		.query = c->query,
		.header_names = names,
		.header_values = values,
		.nheaders = 1,
		.access_key_id = "AKIDEXAMPLE",
		.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
		.region = "us-east-1",
		.service = "ecs",
		.when = 1440938160,
		.normalize_path = c->normalize,
	};
	struct pp_error err = {0};
	pp_sigv4_output_init(out);
	assert_int_equal(pp_sigv4_sign(&in, out, &err), 0);
}

/* Second and third lines of the canonical request: path and query. */
static void assert_path_query(const struct sign_case *c, const char *want_path,
			      const char *want_query)
{
	struct pp_sigv4_output out;
	char want[2048];

	sign_simple(c, &out);
	snprintf(want, sizeof(want), "%s\n%s\n%s\nhost:", c->method, want_path, want_query);
	if (strncmp(out.canonical_request.data, want, strlen(want)))
		fail_msg("path %s query %s: got\n%s\nwant prefix\n%s", c->path,
			 c->query ? c->query : "(null)", out.canonical_request.data, want);
	pp_sigv4_output_free(&out);
}

static void test_canonical_path(void **state)
{
	(void)state;
	const struct {
		const char *path;
		bool normalize;
		const char *want;
	} cases[] = {
		{"", true, "/"},
		{"/", true, "/"},
		{"/a/b/../../..", true, "/"},
		{"/a/./b/", true, "/a/b/"},
		{"//a///b", true, "/a/b"},
		{"/a/b/..", true, "/a"},
		{"/a%20b", true, "/a%2520b"}, /* wire path encoded again, as botocore */
		{"/a b+c=d", true, "/a%20b%2Bc%3Dd"},
		{"/~user/x:y", false, "/~user/x%3Ay"},
		{"//a/../b", false, "//a/../b"},
		{"a/b", true, "a/b"},
		{"..", true, "/"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sign_case c = {"GET", cases[i].path, NULL, cases[i].normalize};
		assert_path_query(&c, cases[i].want, "");
	}
}

static void test_canonical_query(void **state)
{
	(void)state;
	const struct {
		const char *query, *want;
	} cases[] = {
		{"b=2&a=1", "a=1&b=2"},
		{"a=2&a=1&a=10", "a=1&a=10&a=2"},
		{"b&a=", "a=&b="},
		{"x=%e1%88%b4", "x=%E1%88%B4"},
		{"x=100%&y=%zz", "x=100%25&y=%25zz"},
		{"k=a b+c/d", "k=a%20b%2Bc%2Fd"},
		{"&&a=1&", "a=1"},
		{"a=b=c", "a=b%3Dc"},
		{"B=1&a=1&_=1", "B=1&_=1&a=1"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sign_case c = {"GET", "/", cases[i].query, true};
		assert_path_query(&c, "/", cases[i].want);
	}
}

/* An ECS POST of "{}" at the suite's fixed time, signed with AKID/SECRET. */
static struct pp_sigv4_input ecs_post(const char **names, const char **values, size_t n)
{
	return (struct pp_sigv4_input){
		.method = "POST",
		.path = "/",
		.header_names = names,
		.header_values = values,
		.nheaders = n,
		.payload = "{}",
		.payload_len = 2,
		.access_key_id = "AKID",
		.secret_access_key = "SECRET",
		.region = "us-east-1",
		.service = "ecs",
		.when = 1440938160,
		.normalize_path = true,
	};
}
static void test_headers_and_key_reuse(void **state)
{
	(void)state;
	const char *names[] = {"X-Amz-Target", "content-type", "HOST", "X-Amz-Date",
			       "x-amz-target"};
	const char *values[] = {"  A\t\t B  ", "application/x-amz-json-1.1",
				"ecs.us-east-1.amazonaws.com", "20150830T123600Z", "C"};
	struct pp_sigv4_input in = ecs_post(names, values, 5);
	struct pp_sigv4_output a, b;
	struct pp_error err = {0};
	unsigned char key[32];

	pp_sigv4_output_init(&a);
	pp_sigv4_output_init(&b);
	assert_int_equal(pp_sigv4_sign(&in, &a, &err), 0);
	assert_string_equal(a.signed_headers.data, "content-type;host;x-amz-date;x-amz-target");
	assert_non_null(strstr(a.canonical_request.data, "\nx-amz-target:A B,C\n\n"));
	assert_string_equal(a.amz_date, "20150830T123600Z");

	assert_int_equal(pp_sigv4_signing_key("SECRET", "20150830", "us-east-1", "ecs", key), 0);
	in.secret_access_key = NULL;
	assert_int_equal(pp_sigv4_sign_with_key(&in, key, &b, &err), 0);
	assert_string_equal(a.authorization.data, b.authorization.data);

	/* Signing again into the same output replaces, not appends. */
	in.secret_access_key = "OTHER";
	assert_int_equal(pp_sigv4_sign(&in, &b, &err), 0);
	assert_string_equal(a.canonical_request.data, b.canonical_request.data);
	assert_string_not_equal(a.signature, b.signature);
	pp_sigv4_output_free(&a);
	pp_sigv4_output_free(&b);
}

/* A signed-headers list longer than the signer joins on its stack: the
 * string to sign and the Authorization header keep their layout. */
static void test_long_signed_headers(void **state)
{
	(void)state;
	enum { N = 30 };
	char name_text[N][32];
	const char *names[N + 1], *values[N + 1];
	names[0] = "host";
	values[0] = "ecs.us-east-1.amazonaws.com";
	for (int i = 0; i < N; i++) {
		snprintf(name_text[i], sizeof(name_text[i]), "x-amz-a-long-header-name-%02d", i);
		names[i + 1] = name_text[i];
		values[i + 1] = "v";
	}
	struct pp_sigv4_input in = ecs_post(names, values, N + 1);
	struct pp_sigv4_output out;
	struct pp_error err = {0};

	pp_sigv4_output_init(&out);
	assert_int_equal(pp_sigv4_sign(&in, &out, &err), 0);
	assert_true(out.signed_headers.len > 512);

	unsigned char md[32];
	unsigned int mdlen = 0;
	char cr_hash[65], want[4096];
	assert_true(EVP_Digest(out.canonical_request.data, out.canonical_request.len, md, &mdlen,
			       EVP_sha256(), NULL));
	for (int i = 0; i < 32; i++)
		snprintf(cr_hash + 2 * i, 3, "%02x", md[i]);
	snprintf(want, sizeof(want),
		 "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/ecs/aws4_request\n%s",
		 cr_hash);
	assert_string_equal(out.string_to_sign.data, want);
	snprintf(want, sizeof(want),
		 "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/ecs/aws4_request, "
		 "SignedHeaders=%s, Signature=%s",
		 out.signed_headers.data, out.signature);
	assert_string_equal(out.authorization.data, want);
	pp_sigv4_output_free(&out);
}

static void test_invalid_input(void **state)
{
	(void)state;
	const char *names[] = {"host"}, *values[] = {"h"};
	struct pp_sigv4_input in = {
		.method = "GET",
		.path = "/",
		.header_names = names,
		.header_values = values,
		.nheaders = 1,
		.access_key_id = "AKID",
		.secret_access_key = "S",
		.region = "us-east-1",
		.service = "ecs",
		.when = 0,
	};
	struct pp_sigv4_output out;
	struct pp_error err = {0};

	pp_sigv4_output_init(&out);
	in.region = NULL;
	assert_int_equal(pp_sigv4_sign(&in, &out, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "region"));
	in.region = "us-east-1";
	in.secret_access_key = "";
	assert_int_equal(pp_sigv4_sign(&in, &out, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "secret"));
	in.secret_access_key = "S";
	in.nheaders = 0;
	assert_int_equal(pp_sigv4_sign(&in, &out, &err), PP_EINVALID);
	in.nheaders = 1;
	names[0] = "bad;name";
	assert_int_equal(pp_sigv4_sign(&in, &out, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "invalid name"));
	names[0] = "host";
	in.payload_len = 3;
	assert_int_equal(pp_sigv4_sign(&in, &out, &err), PP_EINVALID);
	in.payload_len = 0;

	/* More query parameters than any AWS API takes. */
	struct pp_buf q;
	pp_buf_init(&q, 1 << 20);
	for (int i = 0; i < 2000; i++)
		assert_int_equal(pp_buf_printf(&q, "%sp%d=v", i ? "&" : "", i), 0);
	in.query = q.data;
	assert_int_equal(pp_sigv4_sign(&in, &out, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "query"));
	pp_buf_free(&q);
	pp_sigv4_output_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suite_header_signing),
		cmocka_unit_test(test_signing_key_documented_example),
		cmocka_unit_test(test_canonical_path),
		cmocka_unit_test(test_canonical_query),
		cmocka_unit_test(test_headers_and_key_reuse),
		cmocka_unit_test(test_long_signed_headers),
		cmocka_unit_test(test_invalid_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
