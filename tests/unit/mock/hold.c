/* Answers held back by injected latency (mock/hold.h): the request acts at
 * once, its connection waits without a thread of its own, a shorter
 * latency overtakes a longer one, a drop waits too, and a stop lets every
 * held answer go. No test here waits on a clock: a held answer is one with
 * ten minutes to wait, and each wait is for an event the mock counts. */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/clock.h"
#include "lib/http.h"
#include "tests/unit/http_call.h"
#include "mock/hold.h"
#include "mock/mock.h"

#define TOKEN_PATH     "/computeMetadata/v1/instance/service-accounts/default/token"
#define CALLS	       48
#define TEN_MINUTES_MS "600000"

static struct pp_mock *started_mock(const char *faults)
{
	struct pp_mock_opts o;
	struct pp_mock *m = NULL;
	struct pp_error err = {0};

	pp_mock_opts_defaults(&o);
	assert_int_equal(pp_mock_new(&o, &m, &err), 0);
	assert_int_equal(pp_mock_start(m, &err), 0);
	if (pp_mock_set_faults(m, faults, &err))
		fail_msg("faults %s: %s", faults, err.msg);
	return m;
}

static void add_call(struct pp_http_multi *multi, struct pp_mock *m, struct call *c)
{
	char url[128];
	struct pp_error err = {0};

	snprintf(url, sizeof(url), "http://127.0.0.1:%d" TOKEN_PATH, pp_mock_port(m));
	memset(c, 0, sizeof(*c));
	pp_http_req_init(&c->req, "GET", url);
	assert_int_equal(pp_http_req_set_header(&c->req, "Metadata-Flavor", "Google"), 0);
	pp_http_resp_init(&c->resp, 1 << 16);
	if (pp_http_multi_add(multi, &c->req, &c->resp, http_call_done, c, &err))
		fail_msg("add: %s", err.msg);
}

/* Drive the transfers until the mock has counted n delayed token calls. */
static void until_delayed(struct pp_http_multi *multi, struct pp_mock *m, unsigned long n)
{
	while (pp_mock_count_get(m, "delayed", "metadata") < n)
		pp_http_multi_run(multi, 10);
}

static int threads_of_this_process(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Forty-eight answers held at once cost the mock no thread each: the
 * process runs on its daemon's threads, the holder and this one (a thread
 * per connection made it more than forty-eight). Each call acted at once:
 * the mock issued its token before the answer left. */
static void test_held_answers_take_no_thread(void **state)
{
	struct pp_mock *m =
		started_mock("{\"api\":\"metadata\",\"latency_ms\":" TEN_MINUTES_MS "}");
	struct pp_http_multi *multi = pp_http_multi_new();
	static struct call calls[CALLS];

	assert_non_null(multi);
	for (int i = 0; i < CALLS; i++)
		add_call(multi, m, &calls[i]);
	until_delayed(multi, m, CALLS);
	assert_int_equal(pp_mock_count_get(m, "requests", "metadata:token"), CALLS);
	assert_in_range(threads_of_this_process(), 1, 8);
	for (int i = 0; i < CALLS; i++)
		assert_false(calls[i].done);
	/* The stop lets them go rather than wait out their ten minutes (a
	 * suspended connection left behind would abort the process). */
	pp_mock_free(m);
	while (pp_http_multi_pending(multi) > 0)
		pp_http_multi_run(multi, 100);
	for (int i = 0; i < CALLS; i++) {
		assert_true(calls[i].done);
		http_call_free(&calls[i]);
	}
	pp_http_multi_free(multi);
}

/* A call with a shorter latency is answered while one held longer waits. */
static void test_shorter_latency_overtakes(void **state)
{
	struct pp_mock *m =
		started_mock("{\"api\":\"metadata\",\"latency_ms\":" TEN_MINUTES_MS "}");
	struct pp_http_multi *multi = pp_http_multi_new();
	struct pp_error err = {0};
	struct call slow, quick;

	assert_non_null(multi);
	add_call(multi, m, &slow);
	until_delayed(multi, m, 1);
	assert_int_equal(pp_mock_set_faults(m, "{\"api\":\"metadata\",\"latency_ms\":1}", &err), 0);
	add_call(multi, m, &quick);
	while (!quick.done)
		pp_http_multi_run(multi, 100);
	assert_int_equal(quick.rc, 0);
	assert_int_equal(quick.resp.status, 200);
	assert_non_null(strstr(quick.resp.body.data, "access_token"));
	assert_false(slow.done);
	assert_int_equal(pp_mock_count_get(m, "delayed", "metadata"), 2);
	pp_mock_free(m);
	while (!slow.done)
		pp_http_multi_run(multi, 100);
	http_call_free(&slow);
	http_call_free(&quick);
	pp_http_multi_free(multi);
}

/* A dropped answer waits out its latency too, then the connection closes
 * without one; the call acted all the same. */
static void test_drop_after_latency(void **state)
{
	struct pp_mock *m = started_mock(
		"{\"api\":\"metadata\",\"latency_ms\":1,\"reset_after_action_rate\":1}");
	struct pp_http_multi *multi = pp_http_multi_new();
	struct call c;

	assert_non_null(multi);
	add_call(multi, m, &c);
	while (!c.done)
		pp_http_multi_run(multi, 100);
	assert_true(c.rc < 0);
	assert_int_equal(c.resp.status, 0);
	assert_int_equal(pp_mock_count_get(m, "delayed", "metadata"), 1);
	assert_int_equal(pp_mock_count_get(m, "dropped", "metadata:token"), 1);
	http_call_free(&c);
	pp_http_multi_free(multi);
	pp_mock_free(m);
}

/* What a holder let go, recorded by its resume callback. The
 * "connections" are the numbers 1 to HELD, never dereferenced. */
#define HELD 3
struct released {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t batches, n;
	size_t batch_of[HELD]; /* 1-based: the wake-up that let each go */
	int64_t at_us[HELD];
};

static void record(void *ud, struct MHD_Connection *const *conns, size_t n)
{
	struct released *r = ud;
	int64_t now = pp_mono_us();

	pthread_mutex_lock(&r->lock);
	r->batches++;
	for (size_t i = 0; i < n; i++) {
		size_t k = (size_t)(uintptr_t)conns[i] - 1;
		r->batch_of[k] = r->batches;
		r->at_us[k] = now;
		r->n++;
	}
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static struct MHD_Connection *fake_conn(size_t k)
{
	return (struct MHD_Connection *)(uintptr_t)k;
}

/* An answer due within the slack after another goes with it, on one
 * wake-up, and none goes before the first one due; one due later waits.
 * The second answer is due 1 µs short of the slack after the first: a
 * holder that let each go on its own wake-up would split them (unless it
 * woke that late). */
static void test_answers_due_together_go_together(void **state)
{
	struct released r = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	struct pp_mock_hold *h = NULL;
	int64_t due[HELD];

	assert_int_equal(pp_mock_hold_new(&h, record, &r), 0);
	due[0] = pp_mono_us() + 50 * 1000;
	due[1] = due[0] + PP_MOCK_HOLD_SLACK_US - 1;
	due[2] = due[0] + (int64_t)600 * 1000 * 1000;
	for (size_t k = 0; k < HELD; k++)
		assert_int_equal(pp_mock_hold_add(h, fake_conn(k + 1), due[k]), 0);
	pthread_mutex_lock(&r.lock);
	while (r.n < 2)
		pthread_cond_wait(&r.cond, &r.lock);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.batches, 1);
	assert_int_equal(r.batch_of[0], 1);
	assert_int_equal(r.batch_of[1], 1);
	assert_true(r.at_us[0] >= due[0]);
	assert_true(r.at_us[1] >= due[1] - PP_MOCK_HOLD_SLACK_US);
	pthread_mutex_unlock(&r.lock);
	/* The third is ten minutes off: only the stop lets it go. */
	pp_mock_hold_release_all(h);
	assert_int_equal(r.n, HELD);
	assert_int_equal(r.batch_of[2], 2);
	pp_mock_hold_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_held_answers_take_no_thread),
		cmocka_unit_test(test_shorter_latency_overtakes),
		cmocka_unit_test(test_drop_after_latency),
		cmocka_unit_test(test_answers_due_together_go_together),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
