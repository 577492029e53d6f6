/* Batched status polls (dispatcher/inflight_batch.c) on a loop built by
 * hand, with a fake cloud that polls up to four runs a request, grouped by
 * the part of their infra id before the slash: due runs go in requests of
 * at most four, each group alone; a group's last request takes runs due
 * within half a status interval and no later ones; each run gets its own
 * outcome; a failed request fails each of its runs; a run freed while its
 * request is out leaves it, and when it is the one that sent it, the
 * others are polled again at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher/loop_impl.h"
#include "lib/clock.h"

#define BATCH_MAX 4
#define RUNS_MAX  16

/* The fake cloud: each request's runs (the lead first) as the op saw
 * them; hold keeps a request out (PP_STEP_WAIT) until released. */
static struct {
	char requests[RUNS_MAX][RUNS_MAX][32];
	int sizes[RUNS_MAX];
	int nrequests;
	long hold_ms; /* > 0: keep requests out this long */
	bool fail_request;
	const char *gone; /* the infra id whose task the cloud no longer has */
} cloud;

static void outcome(struct pp_run_io *io)
{
	io->state_out = PP_RUN_RUNNING;
	io->batch_rc = 0;
	if (cloud.gone && !strcmp(io->infra_id, cloud.gone)) {
		io->batch_rc = PP_ENOTFOUND;
		pp_set_message(io, "fake cloud: %s is gone", io->infra_id);
	}
}

static int fake_status(struct pp_run_io *io, struct pp_error *err)
{
	if (cloud.hold_ms) {
		io->poll_after_ms = cloud.hold_ms;
		return PP_STEP_WAIT;
	}
	if (cloud.fail_request)
		return pp_fail(err, PP_EINVALID, "fake cloud: request refused");
	int r = cloud.nrequests++;
	assert_true(r < RUNS_MAX);
	snprintf(cloud.requests[r][0], sizeof(cloud.requests[r][0]), "%s", io->infra_id);
	cloud.sizes[r] = 1;
	outcome(io);
	for (size_t i = 0; i < io->npeers; i++) {
		if (!io->peers[i])
			continue;
		snprintf(cloud.requests[r][cloud.sizes[r]++], sizeof(cloud.requests[r][0]), "%s",
			 io->peers[i]->infra_id);
		outcome(io->peers[i]);
	}
	return PP_STEP_DONE;
}

static bool fake_key(const struct pp_run_io *io, char *key, size_t size)
{
	size_t n = strcspn(io->infra_id, "/");
	if (n >= size)
		return false;
	memcpy(key, io->infra_id, n);
	key[n] = '\0';
	return true;
}

static int fake_done(struct pp_run_io *io, struct pp_error *err)
{
	return PP_STEP_DONE;
}

static const char *const fake_types[] = {"fakebatch:push", NULL};

static const struct pp_provider fake_batch = {
	.abi = PP_PROVIDER_ABI,
	.name = "fakebatch",
	.pool_types = fake_types,
	.submit = fake_done,
	.status = fake_status,
	.cancel = fake_done,
	.status_batch_max = BATCH_MAX,
	.status_batch_key = fake_key,
};

/* The store: every write stands; the last final one is kept. */
static struct {
	char id[PP_ID_LEN];
	enum pp_store_state state;
	char error[256];
} final;

static int fake_update(struct pp_store *s, const char *id, int64_t fence,
		       const struct pp_run_update *u, struct pp_error *err)
{
	if (pp_store_state_terminal(u->state)) {
		snprintf(final.id, sizeof(final.id), "%s", id);
		final.state = u->state;
		snprintf(final.error, sizeof(final.error), "%s", u->error ? u->error : "");
	}
	return 0;
}

static const struct pp_store_ops fake_store_ops = {.name = "fake", .update = fake_update};
static struct pp_store store = {.ops = &fake_store_ops};

/* ---- a loop with nothing but its runs and the store ---- */

static struct pp_config cfg;
static struct pp_loop_opts opts;
static struct pp_loop_summary sum;
static struct pp_loop L;
static struct pp_pool pool;
static struct pool_rt prt;

static int setup(void **state)
{
	struct pp_error err = {0};
	memset(&cloud, 0, sizeof(cloud));
	assert_int_equal(pp_config_init(&cfg, &err), 0);
	cfg.dispatcher.status_interval = 2.0;
	memset(&sum, 0, sizeof(sum));
	memset(&pool, 0, sizeof(pool));
	pool.prov = &fake_batch;
	snprintf(pool.name, sizeof(pool.name), "b");
	prt = (struct pool_rt){.p = &pool};
	memset(&final, 0, sizeof(final));
	L = (struct pp_loop){
		.cfg = &cfg, .opts = &opts, .sum = &sum, .store = &store, .store_fd = -1};
	L.exec = pp_exec_new();
	assert_non_null(L.exec);
	return 0;
}

static int teardown(void **state)
{
	pp_exec_free(L.exec);
	L.exec = NULL;
	while (L.runs)
		inflight_free(&L, L.runs);
	free(L.queued);
	free(L.orphans);
	pp_config_free(&cfg);
	return 0;
}

/* A watched run, RUNNING as the store has it, whose next poll is in
 * due_in ms (0 or less: due). */
static struct inflight *watched(const char *infra_id, int64_t due_in)
{
	struct inflight *a = calloc(1, sizeof(*a));
	assert_non_null(a);
	snprintf(a->rec.id, sizeof(a->rec.id), "run-%s", infra_id);
	a->rec.state = PP_ST_RUNNING;
	a->rec.fence = 7;
	a->loop = &L;
	a->pool = &prt;
	prt.refs++;
	prt.in_flight++;
	a->phase = PH_WATCH;
	a->watch_since = pp_mono_ms();
	a->io.run_id = a->rec.id;
	pp_run_io_set_infra_id(&a->io, NULL, "%s", infra_id);
	a->io.exit_code = -1;
	/* Appended: the walk meets runs in the order they were added. */
	struct inflight **tail = &L.runs, *prev = NULL;
	while (*tail) {
		prev = *tail;
		tail = &(*tail)->next;
	}
	a->prev = prev;
	*tail = a;
	L.ninflight++;
	inflight_poll_at(a, pp_mono_ms() + due_in);
	return a;
}

static struct inflight *run_of(const char *infra_id)
{
	for (struct inflight *a = L.runs; a; a = a->next)
		if (!strcmp(a->io.infra_id, infra_id))
			return a;
	return NULL;
}

/* Make every due poll, and let the driver finish what it can. */
static void poll_due(void)
{
	L.next_poll = 0;
	inflight_poll_due(&L);
	for (int i = 0; i < 10 && pp_exec_active(L.exec); i++)
		pp_exec_poll(L.exec, 0);
}

static bool asked(int r, const char *infra_id)
{
	for (int i = 0; i < cloud.sizes[r]; i++)
		if (!strcmp(cloud.requests[r][i], infra_id))
			return true;
	return false;
}

static int request_of(const char *infra_id)
{
	for (int r = 0; r < cloud.nrequests; r++)
		if (asked(r, infra_id))
			return r;
	return -1;
}

static void test_due_runs_go_in_full_requests_by_key(void **state)
{
	static const char *const due_a[] = {"a/1", "a/2", "a/3", "a/4", "a/5"};
	for (size_t i = 0; i < 5; i++)
		watched(due_a[i], 0);
	watched("b/1", 0);
	watched("b/2", -100);
	watched("a/soon", 900);	  /* within half the 2 s interval: pulled forward */
	watched("a/later", 1500); /* beyond it: polled at its own time */
	watched("b/soon", 500);
	watched("b/soon2", 600);
	watched("b/soon3", 700); /* the b request is full without it */
	int64_t before = pp_mono_ms();
	poll_due();

	assert_int_equal(cloud.nrequests, 3);
	for (int r = 0; r < cloud.nrequests; r++) {
		assert_true(cloud.sizes[r] <= BATCH_MAX);
		char key = cloud.requests[r][0][0];
		for (int i = 0; i < cloud.sizes[r]; i++)
			assert_int_equal(cloud.requests[r][i][0], key);
	}
	/* five due a runs and the one due soon in two requests, 4 and 2 */
	int first = request_of("a/1");
	assert_true(first >= 0);
	assert_int_equal(cloud.sizes[first] + cloud.sizes[request_of("a/5")], 6);
	assert_true(request_of("a/soon") >= 0);
	assert_int_equal(request_of("a/later"), -1);
	int b = request_of("b/1");
	assert_int_equal(cloud.sizes[b], BATCH_MAX);
	assert_true(asked(b, "b/2") && asked(b, "b/soon") && asked(b, "b/soon2"));
	assert_int_equal(request_of("b/soon3"), -1);

	/* Everyone polled is done with it, and polled next together. */
	for (struct inflight *a = L.runs; a; a = a->next) {
		assert_false(a->busy);
		assert_null(a->batch);
		assert_null(a->io.peers);
		if (request_of(a->io.infra_id) < 0)
			continue;
		assert_int_equal(a->io.state_out, PP_RUN_RUNNING);
		assert_true(a->next_mono >= before + 2000);
		assert_true(a->next_mono <= pp_mono_ms() + 2000);
	}
	assert_true(run_of("a/later")->next_mono < before + 2000);
}

static void test_each_run_gets_its_own_outcome(void **state)
{
	watched("a/1", 0);
	watched("a/2", 0);
	watched("a/3", 0);
	cloud.fail_request = true;
	poll_due();
	/* the request refused: each of its runs counts a failed check, and
	 * is polled later, not dropped */
	for (struct inflight *a = L.runs; a; a = a->next) {
		assert_int_equal(a->status_failures, 1);
		assert_false(a->busy);
		assert_true(a->next_mono > pp_mono_ms());
	}
	assert_int_equal(L.ninflight, 3);

	cloud.fail_request = false;
	for (struct inflight *a = L.runs; a; a = a->next)
		inflight_poll_at(a, pp_mono_ms());
	poll_due();
	assert_int_equal(cloud.nrequests, 1);
	assert_int_equal(cloud.sizes[0], 3);
	for (struct inflight *a = L.runs; a; a = a->next)
		assert_int_equal(a->status_failures, 0);

	/* The cloud no longer has a/2's task: it alone ends (CRASHED, its
	 * remote job gone); the others are still watched. */
	cloud.gone = "a/2";
	for (struct inflight *a = L.runs; a; a = a->next)
		inflight_poll_at(a, pp_mono_ms());
	poll_due();
	assert_int_equal(cloud.nrequests, 2);
	assert_int_equal(cloud.sizes[1], 3);
	assert_null(run_of("a/2"));
	assert_string_equal(final.id, "run-a/2");
	assert_int_equal(final.state, PP_ST_CRASHED);
	assert_non_null(strstr(final.error, "remote job disappeared: fake cloud: a/2 is gone"));
	assert_int_equal(run_of("a/1")->phase, PH_WATCH);
	assert_int_equal(run_of("a/3")->phase, PH_WATCH);
	assert_int_equal(run_of("a/1")->status_failures, 0);
}

static void test_runs_freed_while_their_request_is_out(void **state)
{
	watched("a/lead", 0);
	watched("a/2", 0);
	watched("a/3", 0);
	watched("a/4", 0);
	cloud.hold_ms = 60000;
	poll_due();
	assert_int_equal(pp_exec_active(L.exec), 1);
	struct inflight *lead = run_of("a/lead");
	assert_non_null(lead->batch);
	assert_int_equal(lead->io.npeers, 3);
	for (struct inflight *a = L.runs; a; a = a->next)
		assert_true(a->busy);

	/* A run that is not the lead leaves: the request stays out. */
	inflight_free(&L, run_of("a/3"));
	assert_int_equal(pp_exec_active(L.exec), 1);
	assert_true(run_of("a/2")->busy);

	/* The lead goes: its request with it, the others are due at once. */
	int64_t now = pp_mono_ms();
	inflight_free(&L, lead);
	assert_int_equal(pp_exec_active(L.exec), 0);
	for (struct inflight *a = L.runs; a; a = a->next) {
		assert_false(a->busy);
		assert_null(a->batch);
		assert_true(a->next_mono <= pp_mono_ms() && a->next_mono >= now);
	}
	cloud.hold_ms = 0;
	poll_due();
	assert_int_equal(cloud.nrequests, 1);
	assert_int_equal(cloud.sizes[0], 2);
	assert_true(asked(0, "a/2") && asked(0, "a/4"));
}

static void test_member_freed_before_the_answer(void **state)
{
	watched("a/lead", 0);
	watched("a/2", 0);
	watched("a/3", 0);
	cloud.hold_ms = 20;
	poll_due();
	inflight_free(&L, run_of("a/2"));
	/* The op is called again when its wait is over, and answers now:
	 * the run that left is not in it. */
	cloud.hold_ms = 0;
	for (int i = 0; i < 200 && pp_exec_active(L.exec); i++)
		pp_exec_poll(L.exec, 50);
	assert_int_equal(cloud.nrequests, 1);
	assert_int_equal(cloud.sizes[0], 2);
	assert_true(asked(0, "a/lead") && asked(0, "a/3"));
	for (struct inflight *a = L.runs; a; a = a->next) {
		assert_false(a->busy);
		assert_int_equal(a->io.state_out, PP_RUN_RUNNING);
	}
}

/* The driver goes first, its request with it (a shutdown): each run then
 * leaves the batch as it is freed (teardown), nothing leaked. */
static void test_driver_freed_with_a_request_out(void **state)
{
	watched("a/lead", 0);
	watched("a/2", 0);
	cloud.hold_ms = 60000;
	poll_due();
	assert_non_null(run_of("a/2")->batch);
	pp_exec_free(L.exec);
	L.exec = NULL;
}

int main(void)
{
	struct pp_error err = {0};
	if (pp_provider_register(&fake_batch, &err))
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_due_runs_go_in_full_requests_by_key, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_each_run_gets_its_own_outcome, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_runs_freed_while_their_request_is_out, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_member_freed_before_the_answer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_driver_freed_with_a_request_out, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
