/* Mock core without the network: outcome markers, the timeline, fault
 * settings and their seeded decisions, counters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/json.h"
#include "mock/mock.h"
#include "tests/unit/http_get.h"

static struct pp_mock *new_mock(uint64_t seed)
{
	struct pp_mock_opts o;
	struct pp_mock *m = NULL;
	struct pp_error err = {0};

	pp_mock_opts_defaults(&o);
	o.seed = seed;
	o.provision_seconds = 1;
	o.run_seconds = 2;
	assert_int_equal(pp_mock_new(&o, &m, &err), 0);
	return m;
}

static enum pp_mock_outcome outcome(const char *json)
{
	struct pp_json *j = NULL;
	enum pp_mock_outcome o;

	assert_int_equal(pp_json_parse(json, strlen(json), NULL, &j, NULL), 0);
	o = pp_mock_outcome_of(j);
	pp_json_free(j);
	return o;
}

static void test_outcome_markers(void **state)
{
	assert_int_equal(outcome("{\"containers\":[{\"image\":\"x\"}]}"), PP_MOCK_SUCCEED);
	assert_int_equal(outcome("{\"env\":[{\"name\":\"PUSHPOOL_MOCK_FAIL\",\"value\":\"1\"}]}"),
			 PP_MOCK_FAIL);
	assert_int_equal(outcome("{\"env\":[{\"name\":\"PUSHPOOL_MOCK_FAIL\",\"value\":\"0\"}]}"),
			 PP_MOCK_SUCCEED);
	assert_int_equal(outcome("{\"command\":[\"sh\",\"-c\",\"PUSHPOOL_MOCK_CRASH=1 run\"]}"),
			 PP_MOCK_CRASH);
	assert_int_equal(outcome("{\"env\":{\"PUSHPOOL_MOCK_FAIL\":\"1\"}}"), PP_MOCK_FAIL);
	/* A crash wins over a failure anywhere in the spec. */
	assert_int_equal(outcome("[\"PUSHPOOL_MOCK_FAIL=1\",{\"a\":[\"PUSHPOOL_MOCK_CRASH=1\"]}]"),
			 PP_MOCK_CRASH);
	assert_int_equal(pp_mock_outcome_of(NULL), PP_MOCK_SUCCEED);
	assert_int_equal(outcome("{\"env\":[{\"name\":\"PUSHPOOL_MOCK_HOLD\",\"value\":\"1\"}]}"),
			 PP_MOCK_HOLD);
	assert_int_equal(outcome("{\"env\":{\"PUSHPOOL_MOCK_HOLD\":\"1\"}}"), PP_MOCK_HOLD);
	assert_int_equal(outcome("[\"PUSHPOOL_MOCK_HOLD=1\"]"), PP_MOCK_HOLD);
	assert_int_equal(outcome("{\"env\":{\"PUSHPOOL_MOCK_HOLD\":\"0\"}}"), PP_MOCK_SUCCEED);
	/* A held job still fails or crashes when marked so, in either order. */
	assert_int_equal(outcome("[\"PUSHPOOL_MOCK_HOLD=1\",\"PUSHPOOL_MOCK_FAIL=1\"]"),
			 PP_MOCK_FAIL);
	assert_int_equal(outcome("[\"PUSHPOOL_MOCK_FAIL=1\",\"PUSHPOOL_MOCK_HOLD=1\"]"),
			 PP_MOCK_FAIL);
	assert_int_equal(
		outcome("{\"env\":{\"PUSHPOOL_MOCK_CRASH\":\"1\",\"PUSHPOOL_MOCK_HOLD\":\"1\"}}"),
		PP_MOCK_CRASH);
}

static void test_timeline(void **state)
{
	struct pp_mock *m = new_mock(1);

	assert_int_equal(pp_mock_phase_at(m, 10, 10.5), PP_MOCK_PROVISIONING);
	assert_int_equal(pp_mock_phase_at(m, 10, 11.0), PP_MOCK_RUNNING);
	assert_int_equal(pp_mock_phase_at(m, 10, 12.9), PP_MOCK_RUNNING);
	assert_int_equal(pp_mock_phase_at(m, 10, 13.0), PP_MOCK_FINISHED);
	/* A held job provisions on the timeline, then never ends by itself. */
	assert_int_equal(pp_mock_job_phase(m, PP_MOCK_HOLD, 10, 10.5), PP_MOCK_PROVISIONING);
	assert_int_equal(pp_mock_job_phase(m, PP_MOCK_HOLD, 10, 11.0), PP_MOCK_RUNNING);
	assert_int_equal(pp_mock_job_phase(m, PP_MOCK_HOLD, 10, 1e6), PP_MOCK_RUNNING);
	assert_int_equal(pp_mock_job_phase(m, PP_MOCK_SUCCEED, 10, 13.0), PP_MOCK_FINISHED);
	assert_int_equal(pp_mock_job_phase(m, PP_MOCK_FAIL, 10, 13.0), PP_MOCK_FINISHED);
	assert_true(pp_mock_clock(m) >= 0);
	assert_true(pp_mock_wall(m, 5) - pp_mock_wall(m, 0) == 5);
	pp_mock_free(m);
}

static void test_fault_settings_rejected(void **state)
{
	struct pp_mock *m = new_mock(1);
	struct pp_error err = {0};

	assert_int_equal(pp_mock_set_faults(m, "{\"api\":\"ecs\",\"error_rate\":1.5}", &err),
			 PP_EINVALID);
	assert_non_null(strstr(err.msg, "error_rate"));
	assert_int_equal(pp_mock_set_faults(m, "{\"latency_ms\":-1}", &err), PP_EINVALID);
	assert_int_equal(pp_mock_set_faults(m, "[1]", &err), PP_EINVALID);
	assert_int_not_equal(pp_mock_set_faults(m, "{", &err), 0);
	pp_mock_free(m);
}

/* Run n fault checks for api, returning how many were throttled. */
static int throttled(struct pp_mock *m, const char *api, int n, int *retry_after)
{
	int hits = 0;

	for (int i = 0; i < n; i++) {
		struct pp_mock_resp resp = {0};

		if (pp_mock_fault_check(m, api, false, &resp, retry_after) ==
		    PP_MOCK_FAULT_THROTTLE)
			hits++;
	}
	return hits;
}

static void test_fault_decisions(void **state)
{
	struct pp_mock *a = new_mock(42), *b = new_mock(42);
	struct pp_error err = {0};
	struct pp_mock_resp resp = {0};
	int retry = 0, ha, hb;

	assert_int_equal(throttled(a, "ecs", 100, NULL), 0);
	assert_int_equal(pp_mock_set_faults(a,
					    "{\"api\":\"ecs\",\"throttle_rate\":0.5,"
					    "\"retry_after\":3}",
					    &err),
			 0);
	assert_int_equal(pp_mock_set_faults(b,
					    "{\"api\":\"ecs\",\"throttle_rate\":0.5,"
					    "\"retry_after\":3}",
					    &err),
			 0);
	ha = throttled(a, "ecs", 400, &retry);
	hb = throttled(b, "ecs", 400, NULL);
	assert_int_equal(ha, hb); /* same seed, same decisions */
	assert_in_range(ha, 140, 260);
	assert_int_equal(retry, 3);
	/* Other APIs are untouched; "*" sets a default for them. */
	assert_int_equal(throttled(a, "cloudrun", 100, NULL), 0);
	assert_int_equal(pp_mock_set_faults(a, "{\"throttle_rate\":1}", &err), 0);
	assert_int_equal(throttled(a, "cloudrun", 10, NULL), 10);
	/* Post-action faults only when the request is served. */
	assert_int_equal(pp_mock_set_faults(a,
					    "{\"api\":\"sts\",\"throttle_rate\":0,"
					    "\"reset_after_action_rate\":1}",
					    &err),
			 0);
	assert_int_equal(pp_mock_fault_check(a, "sts", true, &resp, NULL), PP_MOCK_FAULT_NONE);
	assert_true(resp.drop);
	assert_false(resp.cut_body);
	assert_int_equal(pp_mock_count_get(a, "injected", "cloudrun.throttled"), 10);
	pp_mock_free(a);
	pp_mock_free(b);
}

/* start_failures: exactly N starts of exactly that api fail, each counted;
 * the "*" default never sets them for an api; a negative count is refused. */
static void test_start_failures(void **state)
{
	struct pp_mock *m = new_mock(1);
	struct pp_error err = {0};

	assert_false(pp_mock_start_failure(m, "ecs"));
	assert_int_equal(pp_mock_set_faults(m, "{\"start_failures\":5}", &err), 0);
	assert_false(pp_mock_start_failure(m, "ecs"));
	assert_int_equal(pp_mock_set_faults(m, "{\"api\":\"ecs\",\"start_failures\":2}", &err), 0);
	assert_false(pp_mock_start_failure(m, "aci"));
	assert_true(pp_mock_start_failure(m, "ecs"));
	assert_true(pp_mock_start_failure(m, "ecs"));
	assert_false(pp_mock_start_failure(m, "ecs"));
	assert_int_equal(pp_mock_count_get(m, "injected", "ecs.start_failure"), 2);
	assert_int_equal(pp_mock_set_faults(m, "{\"api\":\"ecs\",\"start_failures\":-1}", &err),
			 PP_EINVALID);
	assert_non_null(strstr(err.msg, "start_failures"));
	pp_mock_free(m);
}

static void test_counters(void **state)
{
	struct pp_mock *m = new_mock(1);
	char hex[17];

	pp_mock_count(m, "RunTaskStarted", NULL);
	pp_mock_count(m, "RunTaskStarted", NULL);
	pp_mock_count(m, "ecs.clientToken", "t1");
	pp_mock_count(m, "ecs.clientToken", "t2");
	pp_mock_count(m, "ecs.clientToken", "t1");
	assert_int_equal(pp_mock_count_get(m, "RunTaskStarted", NULL), 2);
	assert_int_equal(pp_mock_count_get(m, "ecs.clientToken", "t1"), 2);
	assert_int_equal(pp_mock_count_get(m, "ecs.clientToken", "t2"), 1);
	assert_int_equal(pp_mock_count_get(m, "ecs.clientToken", NULL), 0);
	assert_int_equal(pp_mock_count_get(m, "nothing", "t1"), 0);
	/* Keys past the lookup's stack buffer (PP_MOCK_KEY_INLINE) are found
	 * alike, and one that differs only past it is another key. */
	char long_key[PP_MOCK_KEY_INLINE + 40];
	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	pp_mock_count(m, "ecs.clientToken", long_key);
	pp_mock_count(m, "ecs.clientToken", long_key);
	assert_int_equal(pp_mock_count_get(m, "ecs.clientToken", long_key), 2);
	long_key[sizeof(long_key) - 2] = 'x';
	assert_int_equal(pp_mock_count_get(m, "ecs.clientToken", long_key), 0);
	pp_mock_random_hex(m, hex, 16);
	assert_int_equal(strlen(hex), 16);
	assert_int_equal(strspn(hex, "0123456789abcdef"), 16);
	pp_mock_free(m);
}

/* A held clock stands still however long the test takes, and moves only by
 * what is advanced: a resource's phase is the test's to choose. */
static void test_clock_hold_advance(void **state)
{
	struct pp_mock *m = new_mock(1); /* provisioned at 1 s, ended at 3 s */
	double created, t;

	pp_mock_clock_hold(m, true);
	assert_true(pp_mock_clock_held(m));
	created = pp_mock_clock(m);
	/* Time passes for the machine, not for the mock. */
	for (volatile long i = 0; i < 20000000; i++)
		;
	assert_true(pp_mock_clock(m) == created);
	assert_int_equal(pp_mock_phase_at(m, created, pp_mock_clock(m)), PP_MOCK_PROVISIONING);
	pp_mock_clock_advance(m, 1.5);
	assert_true(pp_mock_clock(m) == created + 1.5);
	assert_int_equal(pp_mock_phase_at(m, created, pp_mock_clock(m)), PP_MOCK_RUNNING);
	pp_mock_clock_advance(m, 2); /* 3.5 s: well past the end, whatever the rounding */
	assert_int_equal(pp_mock_phase_at(m, created, pp_mock_clock(m)), PP_MOCK_FINISHED);
	/* Running again goes on from the held value, never back (to within
	 * the rounding of elapsed + offset, below). */
	t = pp_mock_clock(m);
	pp_mock_clock_hold(m, false);
	assert_false(pp_mock_clock_held(m));
	assert_true(pp_mock_clock(m) >= t - 1e-6);
	assert_true(pp_mock_clock(m) < t + 60);
	/* Advancing a running clock moves it too. A running clock is elapsed
	 * time plus an offset, two doubles summed on every read, so a read in
	 * the same millisecond may come out an ulp below the exact sum: compare
	 * to within a microsecond, far below the clock's resolution. */
	t = pp_mock_clock(m);
	pp_mock_clock_advance(m, 100);
	assert_true(pp_mock_clock(m) >= t + 100 - 1e-6);
	pp_mock_free(m);
}

/* The mock issues tokens to whoever asks: it listens on loopback only. */
static void test_loopback_only(void **state)
{
	const char *refused[] = {"0.0.0.0", "10.0.0.1", "192.168.1.2", "128.0.0.1",
				 "::1",	    "",		"localhost"};
	struct pp_mock_opts o;
	struct pp_mock *m = NULL;
	struct pp_error err = {0};

	assert_true(pp_mock_loopback("127.0.0.1"));
	assert_true(pp_mock_loopback("127.255.0.9"));
	assert_false(pp_mock_loopback(NULL));
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		if (pp_mock_loopback(refused[i]))
			fail_msg("%s taken for loopback", refused[i]);
	}
	pp_mock_opts_defaults(&o);
	assert_string_equal(o.listen_host, "127.0.0.1");
	o.listen_host = "0.0.0.0";
	assert_int_equal(pp_mock_new(&o, &m, &err), 0);
	assert_int_equal(pp_mock_start(m, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "0.0.0.0 is not loopback"));
	pp_mock_free(m);
}

static void request_time(const struct pp_json *times, const char *key, double *first, double *last)
{
	const struct pp_json *pair = pp_json_get(times, key);
	assert_non_null(pair);
	assert_true(pp_json_is(pair, PP_JSON_ARRAY));
	assert_non_null(pp_json_at(pair, 1));
	assert_null(pp_json_at(pair, 2));
	*first = pp_json_at(pair, 0)->num;
	*last = pp_json_at(pair, 1)->num;
}

/* /control/stats tells when each kind of request was first and last
 * answered, in the order they came (the bench's window, docs/performance.md). */
static void test_request_times(void **state)
{
	struct pp_mock *m = new_mock(1);
	struct pp_error err = {0};
	struct pp_http_resp resp;
	assert_int_equal(pp_mock_start(m, &err), 0);
	int port = pp_mock_port(m);
	static const char *const order[] = {"/control/faults", "/control/clock", "/control/faults"};
	for (size_t i = 0; i < 3; i++) {
		hg_get(port, order[i], NULL, 1 << 16, &resp);
		assert_int_equal(resp.status, 200);
		pp_http_resp_free(&resp);
	}
	hg_get(port, "/control/stats", NULL, 1 << 20, &resp);
	assert_int_equal(resp.status, 200);
	struct pp_json *stats = NULL;
	assert_int_equal(pp_json_parse(resp.body.data, resp.body.len, NULL, &stats, NULL), 0);
	pp_http_resp_free(&resp);
	const struct pp_json *times = pp_json_get(stats, "request_times");
	assert_non_null(times);
	double f_first, f_last, c_first, c_last;
	request_time(times, "control:faults", &f_first, &f_last);
	request_time(times, "control:clock", &c_first, &c_last);
	assert_true(f_first <= c_first);
	assert_true(c_first == c_last);
	assert_true(c_last <= f_last);
	assert_true(f_first < f_last);
	pp_json_free(stats);
	pp_mock_free(m);
}

/* The mock gives each connection 16 KiB for a request's head
 * (MOCK_CONNECTION_MEMORY): a head of 8 KiB, as a long bearer token and a
 * request's own headers make, is still answered. */
static void test_large_request_head(void **state)
{
	(void)state;
	struct pp_mock *m = new_mock(1);
	struct pp_error err = {0};
	assert_int_equal(pp_mock_start(m, &err), 0);
	char url[64], pad[2700];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/control/faults", pp_mock_port(m));
	memset(pad, 'a', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	struct pp_http_req req;
	struct pp_http_resp resp;
	pp_http_req_init(&req, "GET", url);
	for (int i = 0; i < 3; i++) {
		char name[16];
		snprintf(name, sizeof(name), "X-Pad-%d", i);
		assert_int_equal(pp_http_req_set_header(&req, name, pad), 0);
	}
	pp_http_resp_init(&resp, 1 << 16);
	assert_int_equal(pp_http_perform(&req, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	pp_http_resp_free(&resp);
	pp_http_req_free(&req);
	pp_mock_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outcome_markers),
		cmocka_unit_test(test_request_times),
		cmocka_unit_test(test_timeline),
		cmocka_unit_test(test_fault_settings_rejected),
		cmocka_unit_test(test_fault_decisions),
		cmocka_unit_test(test_counters),
		cmocka_unit_test(test_start_failures),
		cmocka_unit_test(test_loopback_only),
		cmocka_unit_test(test_clock_hold_advance),
		cmocka_unit_test(test_large_request_head),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
