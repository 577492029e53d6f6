/* Evidence for docs/sigv4.md: is libcurl's CURLOPT_AWS_SIGV4 right for our
 * requests? Each case sends a request through libcurl's signer to a local
 * libmicrohttpd server, which records exactly what arrived; our signer then
 * signs that received request (its method, raw path and query, the headers
 * curl listed in SignedHeaders, the body and curl's own X-Amz-Date). Equal
 * signatures mean AWS would accept curl's request. Cases that curl got wrong
 * before a known fix expect a mismatch on older versions and a match from
 * the fixing release on (versions from curl's lib/http_aws_sigv4.c history). */
#include <curl/curl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "tests/unit/http_server.h"

#define AKID	 "AKIDEXAMPLE"
#define SECRET	 "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define TOKEN	 "FwoGZXIvYXdzEXAMPLEsessiontoken+/="
#define MAX_HDRS 32

struct received {
	char method[8];
	char raw_uri[1024];
	int nhdr;
	char name[MAX_HDRS][64];
	char value[MAX_HDRS][512];
	char body[4096];
	size_t body_len;
};

static struct hs_server server;
static unsigned short port;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct received last;

static void answer(struct hs_server *hs, const struct hs_request *rq, struct hs_response *rs)
{
	size_t len = rq->body_len < sizeof(last.body) - 1 ? rq->body_len : sizeof(last.body) - 1;
	(void)hs;
	pthread_mutex_lock(&lock);
	memset(&last, 0, sizeof(last));
	snprintf(last.method, sizeof(last.method), "%s", rq->method);
	snprintf(last.raw_uri, sizeof(last.raw_uri), "%s", rq->raw_uri);
	memcpy(last.body, rq->body, len);
	last.body_len = len;
	for (int i = 0; i < rq->nheaders && last.nhdr < MAX_HDRS; i++, last.nhdr++) {
		snprintf(last.name[last.nhdr], sizeof(last.name[0]), "%s", rq->names[i]);
		snprintf(last.value[last.nhdr], sizeof(last.value[0]), "%s", rq->values[i]);
	}
	pthread_mutex_unlock(&lock);
	rs->status = 200;
	snprintf(rs->body, sizeof(rs->body), "{}");
}

static int group_setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (hs_start(&server, answer, NULL))
		return -1;
	port = server.port;
	return port ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	hs_stop(&server);
	curl_global_cleanup();
	return 0;
}

static unsigned curl_version_num(void)
{
	return curl_version_info(CURLVERSION_NOW)->version_num;
}

/* How curl gets the body. */
enum body_mode { BODY_NONE, BODY_POSTFIELDS, BODY_READFUNCTION };

struct read_state {
	const char *data;
	size_t left;
};

static size_t read_body(char *buf, size_t size, size_t n, void *ud)
{
	struct read_state *s = ud;
	size_t take = size * n < s->left ? size * n : s->left;
	memcpy(buf, s->data, take);
	s->data += take;
	s->left -= take;
	return take;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return size * n;
}

/* Send through curl's signer; on return `last` holds what arrived. */
static void curl_send(const char *method, const char *path_query, const char *const *headers,
		      const char *body, enum body_mode mode)
{
	char url[1200];
	struct curl_slist *list = NULL;
	struct read_state rs = {body, body ? strlen(body) : 0};
	CURL *e = curl_easy_init();

	assert_non_null(e);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path_query);
	for (size_t i = 0; headers && headers[i]; i++)
		list = curl_slist_append(list, headers[i]);
	curl_easy_setopt(e, CURLOPT_URL, url);
	/* Region and service explicitly: on 127.0.0.1 curl cannot take them
	 * from the host name. */
	curl_easy_setopt(e, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:ecs");
	curl_easy_setopt(e, CURLOPT_USERPWD, AKID ":" SECRET);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (mode == BODY_POSTFIELDS) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	} else if (mode == BODY_READFUNCTION) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, read_body);
		curl_easy_setopt(e, CURLOPT_READDATA, &rs);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	pthread_mutex_lock(&lock);
	memset(&last, 0, sizeof(last));
	pthread_mutex_unlock(&lock);
	CURLcode cc = curl_easy_perform(e);
	curl_slist_free_all(list);
	curl_easy_cleanup(e);
	assert_int_equal(cc, CURLE_OK);
	assert_true(last.method[0] != '\0');
}

static const char *received_header(const char *name)
{
	for (int i = 0; i < last.nhdr; i++)
		if (!strcasecmp(last.name[i], name))
			return last.value[i];
	return NULL;
}

/* Pull "Field=value" (up to ',' or end) out of curl's Authorization. */
static void auth_field(const char *auth, const char *field, char *out, size_t size)
{
	const char *p = strstr(auth, field);
	assert_non_null(p);
	p += strlen(field);
	size_t n = strcspn(p, ",");
	assert_true(n < size);
	memcpy(out, p, n);
	out[n] = '\0';
}

/* Sign the received request as AWS would verify it; true when curl's
 * signature is the one AWS computes. */
static bool aws_would_accept(void)
{
	const char *auth = received_header("Authorization");
	const char *date = received_header("X-Amz-Date");
	char signed_list[512], sig[80];
	const char *names[MAX_HDRS], *values[MAX_HDRS];
	size_t n = 0;
	struct tm tm = {0};

	assert_non_null(auth);
	assert_non_null(date);
	auth_field(auth, "SignedHeaders=", signed_list, sizeof(signed_list));
	auth_field(auth, "Signature=", sig, sizeof(sig));
	assert_non_null(strptime(date, "%Y%m%dT%H%M%SZ", &tm));
	/* Every occurrence of each signed header, in arrival order. */
	for (char *save = NULL, *h = strtok_r(signed_list, ";", &save); h;
	     h = strtok_r(NULL, ";", &save)) {
		bool found = false;
		for (int i = 0; i < last.nhdr && n < MAX_HDRS; i++) {
			if (!strcasecmp(last.name[i], h)) {
				names[n] = last.name[i];
				values[n++] = last.value[i];
				found = true;
			}
		}
		/* A signed header that never arrived: AWS rejects the request. */
		if (!found)
			return false;
	}
	char *q = strchr(last.raw_uri, '?');
	if (q)
		*q++ = '\0';
	struct pp_sigv4_input in = {
		.method = last.method,
		.path = last.raw_uri,
		.query = q,
		.header_names = names,
		.header_values = values,
		.nheaders = n,
		.payload = last.body,
		.payload_len = last.body_len,
		.access_key_id = AKID,
		.secret_access_key = SECRET,
		.region = "us-east-1",
		.service = "ecs",
		.when = timegm(&tm),
		.normalize_path = true,
	};
	struct pp_sigv4_output out;
	struct pp_error err = {0};
	pp_sigv4_output_init(&out);
	assert_int_equal(pp_sigv4_sign(&in, &out, &err), 0);
	bool same = !strcmp(out.signature, sig);
	pp_sigv4_output_free(&out);
	return same;
}

static const char *const ecs_headers[] = {
	"Content-Type: application/x-amz-json-1.1",
	"X-Amz-Target: AmazonEC2ContainerServiceV20141113.RunTask",
	"X-Amz-Security-Token: " TOKEN,
	NULL,
};

#define ECS_BODY "{\"cluster\":\"default\",\"taskDefinition\":\"td:1\",\"count\":1}"

/* Our ECS call: JSON 1.1 POST, X-Amz-Target, session token, POSTFIELDS. */
static void test_ecs_post_postfields_matches(void **state)
{
	(void)state;
	curl_send("POST", "/", ecs_headers, ECS_BODY, BODY_POSTFIELDS);
	assert_string_equal(received_header("X-Amz-Security-Token"), TOKEN);
	assert_non_null(strstr(received_header("Authorization"),
			       "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;"
			       "x-amz-target"));
	assert_true(aws_would_accept());
}

/* 7.88 hashes only CURLOPT_POSTFIELDS: a streamed body is signed as empty. */
static void test_streamed_body_is_signed_as_empty(void **state)
{
	(void)state;
	curl_send("POST", "/", ecs_headers, ECS_BODY, BODY_READFUNCTION);
	assert_int_equal(last.body_len, strlen(ECS_BODY));
	assert_false(aws_would_accept());
	/* ...and it is exactly the empty-body signature. */
	last.body_len = 0;
	assert_true(aws_would_accept());
}

/* Query parameters must be sorted; curl sorts from 8.3.0 (fc76a24c). */
static void test_unsorted_query(void **state)
{
	(void)state;
	curl_send("GET", "/?Param2=value2&Param1=value1", NULL, NULL, BODY_NONE);
	assert_int_equal(aws_would_accept(), curl_version_num() >= 0x080300);
	/* Control: the same parameters already in order. */
	curl_send("GET", "/?Param1=value1&Param2=value2", NULL, NULL, BODY_NONE);
	assert_true(aws_would_accept());
}

/* Paths are URI-encoded once more for signing; curl does from 8.9.0 (768909d8). */
static void test_encoded_path(void **state)
{
	(void)state;
	curl_send("GET", "/example%20space/", NULL, NULL, BODY_NONE);
	assert_int_equal(aws_would_accept(), curl_version_num() >= 0x080900);
}

/* Header names sharing a prefix: 7.88 sorts "name:value" lines, so
 * "x-amz-meta-a-b" lands before "x-amz-meta-a"; fixed in 8.10.0 (cf3e3d93). */
static void test_header_prefix_order(void **state)
{
	(void)state;
	const char *const h[] = {"X-Amz-Meta-A: 1", "X-Amz-Meta-A-B: 2", NULL};
	curl_send("GET", "/", h, NULL, BODY_NONE);
	assert_int_equal(aws_would_accept(), curl_version_num() >= 0x080a00);
	/* Control: two names where neither is a prefix of the other. */
	const char *const control[] = {"X-Amz-Meta-A: 1", "X-Amz-Meta-B: 2", NULL};
	curl_send("GET", "/", control, NULL, BODY_NONE);
	assert_true(aws_would_accept());
}

/* Repeated headers must be joined with ','; curl merges from 8.13.0 (3978bd44). */
static void test_repeated_header(void **state)
{
	(void)state;
	const char *const h[] = {"My-Header1: value2", "My-Header1: value1", NULL};
	curl_send("GET", "/", h, NULL, BODY_NONE);
	assert_int_equal(aws_would_accept(), curl_version_num() >= 0x080d00);
	/* Control: the same header once. */
	curl_send("GET", "/", h + 1, NULL, BODY_NONE);
	assert_true(aws_would_accept());
}

/* An empty token header is removed from the request but still signed
 * (curl#11007): AWS answers "x-amz-security-token is named as a
 * SignedHeader, but it does not exist". */
static void test_empty_token_header_signed_not_sent(void **state)
{
	(void)state;
	const char *const h[] = {"Content-Type: application/x-amz-json-1.1",
				 "X-Amz-Security-Token:", NULL};
	curl_send("POST", "/", h, ECS_BODY, BODY_POSTFIELDS);
	if (curl_version_num() < 0x080300) {
		assert_null(received_header("X-Amz-Security-Token"));
		assert_non_null(strstr(received_header("Authorization"), "x-amz-security-token"));
		assert_false(aws_would_accept());
	} else {
		/* b5c65f8b (8.3.0) handles valueless user headers. */
		assert_true(aws_would_accept());
	}
}

/* Values trimmed and inner whitespace runs squeezed to one space (the
 * suite's get-header-value-trim): 7.88 already does both. */
static void test_header_inner_whitespace(void **state)
{
	(void)state;
	const char *const h[] = {"My-Header1:  value1  ", "My-Header2: \"a   b   c\"", NULL};
	curl_send("GET", "/", h, NULL, BODY_NONE);
	assert_true(aws_would_accept());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ecs_post_postfields_matches),
		cmocka_unit_test(test_streamed_body_is_signed_as_empty),
		cmocka_unit_test(test_unsorted_query),
		cmocka_unit_test(test_encoded_path),
		cmocka_unit_test(test_header_prefix_order),
		cmocka_unit_test(test_repeated_header),
		cmocka_unit_test(test_empty_token_header_signed_not_sent),
		cmocka_unit_test(test_header_inner_whitespace),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
