/* The mock's SigV4 verifier (mock/sigv4_check.c) against AWS's own suite in
 * tests/data/sigv4: every signed request of the suite is accepted with the
 * suite's secret, with the suite's canonical request and string to sign, and
 * refused once anything signed is changed. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/json.h"
#include "mock/sigv4_check.h"

#define MAX_HEADERS 40

static const char *suite_dir(void)
{
	const char *d = getenv("PP_SIGV4_SUITE");
	return d ? d : "tests/data/sigv4";
}

static char *slurp(const char *dir, const char *name)
{
	char path[1024];
	struct pp_buf b;
	char chunk[4096];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	pp_buf_init(&b, 1 << 20);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(pp_buf_append(&b, chunk, n), 0);
	fclose(f);
	return pp_buf_steal(&b);
}

/* A signed request of the suite: "METHOD PATH[?QUERY] HTTP/1.1", header
 * lines (a line starting with a blank continues the previous value), an
 * empty line, the body. Split in place. */
struct wire {
	char *method, *path, *query;
	const char *names[MAX_HEADERS], *values[MAX_HEADERS];
	size_t n;
	char *body;
};

static void split_request(char *text, struct wire *w)
{
	char *line, *sp1, *sp2, *q;

	memset(w, 0, sizeof(*w));
	line = strsep(&text, "\n");
	sp1 = strchr(line, ' ');
	sp2 = strrchr(line, ' ');
	assert_true(sp1 && sp2 > sp1);
	*sp1 = *sp2 = '\0';
	w->method = line;
	w->path = sp1 + 1;
	q = strchr(w->path, '?');
	if (q) {
		*q = '\0';
		w->query = q + 1;
	}
	while (text && *text && *text != '\n') {
		char *next = strchr(text, '\n');

		if (*text == ' ' || *text == '\t') {
			/* A continuation: keep it in the previous value, the
			 * newline included, as a server would see a folded line. */
			assert_true(w->n > 0);
			text = next ? next + 1 : NULL;
			continue;
		}
		char *colon = strchr(text, ':');
		assert_non_null(colon);
		assert_true(w->n < MAX_HEADERS);
		*colon = '\0';
		w->names[w->n] = text;
		w->values[w->n++] = colon + 1;
		/* End this value at the next line that is not a continuation. */
		while (next && (next[1] == ' ' || next[1] == '\t'))
			next = strchr(next + 1, '\n');
		if (next)
			*next = '\0';
		text = next ? next + 1 : NULL;
	}
	w->body = text && *text == '\n' ? text + 1 : (text ? text : (char *)"");
}

static const char *wire_header(const struct wire *w, const char *name)
{
	for (size_t i = 0; i < w->n; i++)
		if (strcasecmp(w->names[i], name) == 0)
			return w->values[i];
	return NULL;
}

static void chomp(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

static int check(const struct wire *w, const char *secret, bool normalize, struct pp_buf *cr,
		 struct pp_buf *sts)
{
	struct pp_mock_sigv4_auth a;
	struct pp_error err = {0};
	struct pp_mock_sigv4_request r = {
		.method = w->method,
		.path = w->path,
		.query = w->query,
		.names = w->names,
		.values = w->values,
		.nheaders = w->n,
		.body = w->body,
		.body_len = strlen(w->body),
	};

	assert_int_equal(pp_mock_sigv4_parse(wire_header(w, "Authorization"), &a, &err), 0);
	return pp_mock_sigv4_check(&r, &a, secret, normalize, cr, sts, &err);
}

/* One case: accepted as signed; refused with another secret, another
 * signature, another body or query, or a signed header taken away. */
static void run_case(const char *dir)
{
	struct pp_json *ctx = NULL;
	struct pp_error err = {0};
	char path[1024];
	struct wire w;
	struct pp_buf cr, sts;

	snprintf(path, sizeof(path), "%s/context.json", dir);
	assert_int_equal(pp_json_parse_file(path, NULL, &ctx, &err), 0);
	const char *secret =
		pp_json_get_string(pp_json_get(ctx, "credentials"), "secret_access_key");
	bool normalize = pp_json_get_bool(ctx, "normalize", true);
	char *text = slurp(dir, "header-signed-request.txt");
	char *want_cr = slurp(dir, "header-canonical-request.txt");
	char *want_sts = slurp(dir, "header-string-to-sign.txt");
	assert_non_null(text);
	assert_non_null(want_cr);
	assert_non_null(want_sts);
	chomp(want_cr);
	chomp(want_sts);
	split_request(text, &w);
	/* The suite's files end with a newline that is no part of the body. */
	chomp(w.body);

	pp_buf_init(&cr, 1 << 20);
	pp_buf_init(&sts, 1 << 20);
	int rc = check(&w, secret, normalize, &cr, &sts);
	if (strcmp(pp_buf_str(&cr), want_cr))
		fail_msg("%s: canonical request\n--- got\n%s\n--- want\n%s", dir, pp_buf_str(&cr),
			 want_cr);
	if (strcmp(pp_buf_str(&sts), want_sts))
		fail_msg("%s: string to sign\n--- got\n%s\n--- want\n%s", dir, pp_buf_str(&sts),
			 want_sts);
	if (rc)
		fail_msg("%s: refused a valid signature (%d)", dir, rc);

	assert_int_equal(check(&w, "not-the-secret", normalize, NULL, NULL), PP_EAUTH);

	/* One hex digit of the signature changed. */
	char *auth = (char *)wire_header(&w, "Authorization");
	char *last = auth + strlen(auth) - 1;
	char saved = *last;
	*last = saved == '0' ? '1' : '0';
	assert_int_equal(check(&w, secret, normalize, NULL, NULL), PP_EAUTH);
	*last = saved;

	/* Another query. */
	char *query = w.query;
	w.query = (char *)"extra=1";
	assert_int_equal(check(&w, secret, normalize, NULL, NULL), PP_EAUTH);
	w.query = query;

	/* Another body: refused as a mismatch, or as a body that is not the
	 * one X-Amz-Content-Sha256 names. */
	char *body = w.body;
	w.body = (char *)"tampered";
	rc = check(&w, secret, normalize, NULL, NULL);
	assert_true(rc == PP_EAUTH || rc == PP_EINVALID);
	w.body = body;

	/* X-Amz-Date (always signed) taken away. */
	for (size_t i = 0; i < w.n; i++)
		if (strcasecmp(w.names[i], "X-Amz-Date") == 0)
			w.names[i] = "X-Other";
	assert_int_equal(check(&w, secret, normalize, NULL, NULL), PP_EINVALID);

	pp_buf_free(&cr);
	pp_buf_free(&sts);
	pp_json_free(ctx);
	free(text);
	free(want_cr);
	free(want_sts);
}

static void test_aws_suite(void **state)
{
	(void)state;
	DIR *d = opendir(suite_dir());
	struct dirent *e;
	int cases = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char dir[512], ctx[600];

		if (e->d_name[0] == '.')
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", suite_dir(), e->d_name);
		snprintf(ctx, sizeof(ctx), "%s/context.json", dir);
		if (access(ctx, R_OK))
			continue; /* LICENSE, NOTICE */
		run_case(dir);
		cases++;
	}
	closedir(d);
	/* The copied suite has 38 cases: fewer means a lost copy. */
	assert_true(cases >= 38);
}

static void test_authorization_parsing(void **state)
{
	(void)state;
	struct pp_mock_sigv4_auth a;
	struct pp_error err = {0};
	const char *sig =
		"Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	char ok[512];

	/* Parameters in any order, with or without the space after ','. */
	snprintf(ok, sizeof(ok),
		 "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date,%s, "
		 "Credential=AKID/20150830/eu-west-1/ecs/aws4_request",
		 sig);
	assert_int_equal(pp_mock_sigv4_parse(ok, &a, &err), 0);
	assert_string_equal(a.akid, "AKID");
	assert_string_equal(a.date, "20150830");
	assert_string_equal(a.region, "eu-west-1");
	assert_string_equal(a.service, "ecs");
	assert_string_equal(a.signed_headers, "host;x-amz-date");

	const char *bad[] = {
		NULL,
		"",
		"AWS4-HMAC-SHA1 Credential=AKID/20150830/r/s/aws4_request, SignedHeaders=host, "
		"Signature=00",
		"AWS4-HMAC-SHA256 Credential=AKID/20150830/r/s/aws4_request, SignedHeaders=host",
		"AWS4-HMAC-SHA256 Credential=AKID/2015083/r/s/aws4_request, SignedHeaders=host, "
		"Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"AWS4-HMAC-SHA256 Credential=AKID/20150830/r/s/aws4_request/x, SignedHeaders=host, "
		"Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"AWS4-HMAC-SHA256 Credential=AKID/20150830/r/s/aws5_request, SignedHeaders=host, "
		"Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"AWS4-HMAC-SHA256 Credential=AKID/20150830/r/s/aws4_request, SignedHeaders=host, "
		"Signature=0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
		"AWS4-HMAC-SHA256 Credential=AKID/20150830/r/s/aws4_request, SignedHeaders=host, "
		"Signature=0123",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (pp_mock_sigv4_parse(bad[i], &a, &err) != PP_EINVALID)
			fail_msg("accepted Authorization \"%s\"", bad[i] ? bad[i] : "(null)");
}

/* Query parameters beyond the cap are refused before any sorting work. */
static void test_query_cap(void **state)
{
	(void)state;
	struct pp_mock_sigv4_auth a;
	struct pp_error err = {0};
	struct pp_buf q;
	const char *names[] = {"Host", "X-Amz-Date"};
	const char *values[] = {"h", "20150830T123600Z"};
	struct pp_mock_sigv4_request r = {
		.method = "GET",
		.path = "/",
		.names = names,
		.values = values,
		.nheaders = 2,
	};

	assert_int_equal(
		pp_mock_sigv4_parse("AWS4-HMAC-SHA256 Credential=AKID/20150830/r/s/aws4_request, "
				    "SignedHeaders=host;x-amz-date, Signature=0123456789abcdef"
				    "0123456789abcdef0123456789abcdef0123456789abcdef",
				    &a, &err),
		0);
	pp_buf_init(&q, 1 << 20);
	for (int i = 0; i < 5000; i++)
		assert_int_equal(pp_buf_printf(&q, "%sp%d=v", i ? "&" : "", i), 0);
	r.query = q.data;
	assert_int_equal(pp_mock_sigv4_check(&r, &a, "S", true, NULL, NULL, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "query"));
	pp_buf_free(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aws_suite),
		cmocka_unit_test(test_authorization_parsing),
		cmocka_unit_test(test_query_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
