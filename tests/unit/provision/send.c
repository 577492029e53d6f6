/* The provisioners' requests: 5xx and 429 retried with backoff, a
 * Retry-After longer than the backoff honoured, a 4xx answered at once with
 * the cloud's words, the attempts capped, JSON bodies sent and parsed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "provision/provision.h"
#include "tests/unit/http_server.h"

static struct hs_server srv;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int hits;
static char last_body[256], last_type[64];

static void handler(struct hs_server *s, const struct hs_request *rq, struct hs_response *rs)
{
	int n;

	pthread_mutex_lock(&mu);
	n = ++hits;
	snprintf(last_body, sizeof(last_body), "%s", rq->body);
	snprintf(last_type, sizeof(last_type), "%s", hs_header(rq, "Content-Type") ?: "");
	pthread_mutex_unlock(&mu);
	if (!strcmp(rq->path, "/retry-after") && n == 1) {
		rs->status = 503;
		hs_add_header(rs, "Retry-After", "1");
		snprintf(rs->body, sizeof(rs->body), "{\"error\":{\"status\":\"UNAVAILABLE\"}}");
	} else if (!strcmp(rq->path, "/retry-after") || (!strcmp(rq->path, "/throttle") && n > 2)) {
		snprintf(rs->body, sizeof(rs->body), "{\"ok\":true,\"n\":%d}", n);
	} else if (!strcmp(rq->path, "/throttle")) {
		rs->status = 429;
		snprintf(rs->body, sizeof(rs->body),
			 "{\"error\":{\"status\":\"RESOURCE_EXHAUSTED\"}}");
	} else if (!strcmp(rq->path, "/missing")) {
		rs->status = 404;
		snprintf(rs->body, sizeof(rs->body),
			 "{\"error\":{\"message\":\"Repository r was not found\"}}");
	} else if (!strcmp(rq->path, "/empty")) {
		rs->status = 204;
	} else {
		rs->status = 500;
		snprintf(rs->body, sizeof(rs->body), "always");
	}
}

static struct pp_config cfg;
static struct pp_prov_ctx ctx;

static int setup(void **state)
{
	struct pp_error err = {0};

	assert_int_equal(pp_config_init(&cfg, &err), 0);
	cfg.dispatcher.backoff_base_ms = 10;
	cfg.dispatcher.backoff_max_ms = 20;
	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = &cfg;
	pp_buf_init(&ctx.owned, 4096);
	hits = 0;
	return hs_start(&srv, handler, NULL);
}

static int teardown(void **state)
{
	hs_stop(&srv);
	pp_buf_free(&ctx.owned);
	pp_config_free(&cfg);
	return 0;
}

static void url(char *out, size_t n, const char *path)
{
	snprintf(out, n, "%s%s", srv.base, path);
}

static void test_retry_after_honoured(void **state)
{
	struct pp_error err = {0};
	struct pp_json *out = NULL, *body = pp_json_new(PP_JSON_OBJECT);
	char u[128];
	int64_t t0 = pp_mono_ms();

	url(u, sizeof(u), "/retry-after");
	pp_json_set_string(body, "name", "x");
	assert_int_equal(pp_prov_json(&ctx, "POST", u, body, &out, &err), 0);
	/* The backoff alone is at most 20 ms; the server asked for 1 s. */
	assert_true(pp_mono_ms() - t0 >= 950);
	assert_int_equal(hits, 2);
	assert_int_equal(pp_json_get_int(out, "n", 0), 2);
	assert_string_equal(last_body, "{\"name\":\"x\"}");
	assert_string_equal(last_type, "application/json");
	pp_json_free(out);
	pp_json_free(body);
}

static void test_throttle_retried(void **state)
{
	struct pp_error err = {0};
	struct pp_json *out = NULL;
	char u[128];

	url(u, sizeof(u), "/throttle");
	assert_int_equal(pp_prov_json(&ctx, "GET", u, NULL, &out, &err), 0);
	assert_int_equal(hits, 3);
	pp_json_free(out);
}

static void test_not_found_at_once(void **state)
{
	struct pp_error err = {0};
	struct pp_json *out = NULL;
	char u[128];

	url(u, sizeof(u), "/missing");
	assert_int_equal(pp_prov_json(&ctx, "GET", u, NULL, &out, &err), PP_ENOTFOUND);
	assert_null(out);
	assert_int_equal(hits, 1);
	assert_non_null(strstr(err.msg, "Repository r was not found"));
}

static void test_attempts_capped(void **state)
{
	struct pp_error err = {0};
	char u[128];

	url(u, sizeof(u), "/broken");
	assert_int_equal(pp_prov_json(&ctx, "DELETE", u, NULL, NULL, &err), PP_ETRANSIENT);
	assert_int_equal(hits, PP_PROV_ATTEMPTS);
	assert_non_null(strstr(err.msg, "HTTP 500"));
}

static void test_empty_answer_is_object(void **state)
{
	struct pp_error err = {0};
	struct pp_json *out = NULL;
	char u[128];

	url(u, sizeof(u), "/empty");
	assert_int_equal(pp_prov_json(&ctx, "DELETE", u, NULL, &out, &err), 0);
	assert_true(pp_json_is(out, PP_JSON_OBJECT));
	pp_json_free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_retry_after_honoured, setup, teardown),
		cmocka_unit_test_setup_teardown(test_throttle_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_found_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attempts_capped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_answer_is_object, setup, teardown),
	};

	pp_log_setup(PP_LOG_ERROR, PP_LOG_TEXT, stderr);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
