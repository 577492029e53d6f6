/* The loop's queued store writes (dispatcher/inflight_queue.c) against a
 * store that queues them and reports the outcomes the test chooses, as
 * PostgreSQL's does when its connection drops: a run whose write failed is
 * dropped and its lease released, once the store answers again, in the
 * state the store surely has, never in one only a lost write gave it; a
 * write fenced out leaves the run to its new owner, nothing released; the
 * outcome of a dropped run's later write touches nothing; a run's end
 * waits for its final write to stand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatcher/loop_impl.h"
#include "lib/http.h"
#include "lib/log.h"

#define FAKE_WRITES_MAX 160

/* The store: update_queue keeps each write; update_settle reports them in
 * order, failing the one at fail_at (from 1) with fail_rc; update writes
 * at once unless down. What reaches the store is in written. */
static struct {
	struct pp_store base;
	struct fake_write {
		char id[PP_ID_LEN];
		enum pp_store_state state;
		int attempt;
		char event[96];
		bool released;
		int64_t fence;
	} queued[FAKE_WRITES_MAX], written[FAKE_WRITES_MAX];
	int nqueued, nwritten;
	int fail_at, fail_rc;
	bool down;
	/* The runs leased to the loop's owner, as the leased op lists them
	 * until a write releases one; an update of update_fails fails with
	 * update_rc. */
	struct pp_leased_run leased[8];
	int nleased;
	const char *update_fails;
	int update_rc;
	const char *answered; /* the run a claim's answer brings */
} fs;

static void keep(struct fake_write *w, const char *id, const struct pp_run_update *u)
{
	snprintf(w->id, sizeof(w->id), "%s", id);
	w->state = u->state;
	w->attempt = u->attempt;
	snprintf(w->event, sizeof(w->event), "%s", u->event ? u->event : "");
	w->released = u->release_lease;
}

static int fake_update_queue(struct pp_store *s, const char *id, int64_t fence,
			     const struct pp_run_update *u, struct pp_error *err)
{
	assert_true(fs.nqueued < FAKE_WRITES_MAX);
	keep(&fs.queued[fs.nqueued++], id, u);
	return 0;
}

static void fake_update_settle(struct pp_store *s,
			       void (*done)(void *ud, int i, int rc, const struct pp_error *err),
			       void *ud)
{
	int n = fs.nqueued;
	for (int i = 0; i < n; i++) {
		struct pp_error err = {0};
		if (i + 1 == fs.fail_at) {
			pp_fail(&err, fs.fail_rc, "fake store: write %d failed", i + 1);
			done(ud, i, fs.fail_rc, &err);
			continue;
		}
		if (fs.nwritten < FAKE_WRITES_MAX)
			fs.written[fs.nwritten++] = fs.queued[i];
		done(ud, i, 0, NULL);
	}
	fs.nqueued -= n;
	memmove(fs.queued, fs.queued + n, (size_t)fs.nqueued * sizeof(fs.queued[0]));
	fs.fail_at = 0;
}

static int fake_update(struct pp_store *s, const char *id, int64_t fence,
		       const struct pp_run_update *u, struct pp_error *err)
{
	if (fs.down)
		return pp_fail(err, PP_ETRANSIENT, "fake store: connection lost");
	if (fs.update_fails && !strcmp(id, fs.update_fails))
		return pp_fail(err, fs.update_rc, "fake store: the write of %s failed", id);
	assert_true(fs.nwritten < FAKE_WRITES_MAX);
	keep(&fs.written[fs.nwritten], id, u);
	fs.written[fs.nwritten++].fence = fence;
	return 0;
}

static bool released_before(const char *id)
{
	for (int i = 0; i < fs.nwritten; i++)
		if (fs.written[i].released && !strcmp(fs.written[i].id, id))
			return true;
	return false;
}

static int fake_leased(struct pp_store *s, const char *owner, struct pp_leased_run **out, int *n,
		       struct pp_error *err)
{
	if (fs.down)
		return pp_fail(err, PP_ETRANSIENT, "fake store: connection lost");
	*out = calloc((size_t)fs.nleased + 1, sizeof(**out));
	assert_non_null(*out);
	*n = 0;
	for (int i = 0; i < fs.nleased; i++)
		if (!released_before(fs.leased[i].id))
			(*out)[(*n)++] = fs.leased[i];
	return 0;
}

static int fake_renew(struct pp_store *s, const char *owner, int64_t lease_ms, struct pp_error *err)
{
	return fs.down ? pp_fail(err, PP_ETRANSIENT, "fake store: connection lost") : 0;
}

/* A claim's answer: one run, fs.answered, with fence 8. */
static int fake_claim_take(struct pp_store *s, bool wait, bool *done, struct pp_run_rec **out,
			   int *n, struct pp_error *err)
{
	*done = true;
	*out = calloc(1, sizeof(**out));
	assert_non_null(*out);
	snprintf((*out)[0].id, sizeof((*out)[0].id), "%s", fs.answered);
	(*out)[0].state = PP_ST_SUBMITTING;
	(*out)[0].fence = 8;
	*n = 1;
	return 0;
}

static const struct pp_store_ops fake_store_ops = {
	.name = "fake",
	.update = fake_update,
	.update_queue = fake_update_queue,
	.update_settle = fake_update_settle,
	.renew = fake_renew,
	.leased = fake_leased,
	.claim_take = fake_claim_take,
};

/* ---- a loop with nothing but its runs and the store ---- */

static struct pp_config cfg;
static struct pp_loop_opts opts;
static struct pp_loop_summary sum;
static struct pp_loop L;

static int setup(void **state)
{
	struct pp_error err = {0};
	memset(&fs, 0, sizeof(fs));
	fs.base.ops = &fake_store_ops;
	assert_int_equal(pp_config_init(&cfg, &err), 0);
	memset(&sum, 0, sizeof(sum));
	L = (struct pp_loop){
		.cfg = &cfg, .opts = &opts, .sum = &sum, .store = &fs.base, .store_fd = -1};
	return 0;
}

static int teardown(void **state)
{
	while (L.runs)
		inflight_free(&L, L.runs);
	free(L.queued);
	free(L.orphans);
	pp_config_free(&cfg);
	return 0;
}

/* A run claimed under fence 7, in state st as the store has it. */
static struct inflight *add_run(const char *id, enum pp_store_state st)
{
	struct inflight *a = calloc(1, sizeof(*a));
	assert_non_null(a);
	snprintf(a->rec.id, sizeof(a->rec.id), "%s", id);
	a->rec.state = st;
	a->rec.fence = 7;
	a->loop = &L;
	a->next = L.runs;
	if (L.runs)
		L.runs->prev = a;
	L.runs = a;
	L.ninflight++;
	return a;
}

static bool in_flight(const char *id)
{
	for (struct inflight *a = L.runs; a; a = a->next)
		if (!strcmp(a->rec.id, id))
			return true;
	return false;
}

static void queue(struct inflight *a, enum pp_store_state st, const char *infra_id)
{
	struct pp_run_update u = {
		.state = st, .infra_id = infra_id, .attempt = -1, .next_attempt_ms = -1};
	assert_true(inflight_store_queue(&L, a, &u));
	assert_int_equal(a->rec.state, st); /* the loop acts on it at once */
}

/* The settle fails the first write queued, with rc. */
static void fail_first_queued(int rc)
{
	fs.fail_at = 1;
	fs.fail_rc = rc;
}

/* The store's write i released id's lease in state st. */
static void assert_released(int i, const char *id, enum pp_store_state st)
{
	assert_true(i >= 0 && i < fs.nwritten);
	assert_string_equal(fs.written[i].id, id);
	assert_int_equal(fs.written[i].state, st);
	assert_true(fs.written[i].released);
}

/* The store answers again: the next renewal releases what was left. */
static void store_back(void)
{
	fs.down = false;
	lease_renew(&L);
	assert_int_equal(L.norphans, 0);
}

/* The connection drops under a queued SUBMITTED write: the run is left
 * for recovery in SUBMITTING, the state before that write (its
 * submission is then replayed with its key and adopted). */
static void test_failed_queued_write_releases_the_state_before_it(void **state)
{
	struct inflight *a = add_run("run-a", PP_ST_SUBMITTING);
	add_run("run-b", PP_ST_SUBMITTING);
	queue(a, PP_ST_SUBMITTED, "job/a");
	queue(L.runs, PP_ST_SUBMITTED, "job/b"); /* run-b, added last */
	fail_first_queued(PP_ETRANSIENT);
	fs.down = true;
	inflight_settle(&L);
	assert_false(in_flight("run-a"));
	assert_true(in_flight("run-b"));
	assert_int_equal(fs.nwritten, 1); /* run-b's write, nothing else yet */
	assert_string_equal(fs.written[0].id, "run-b");
	lease_renew(&L); /* still down: kept for later */
	assert_int_equal(L.norphans, 1);
	store_back();
	assert_int_equal(fs.nwritten, 2);
	assert_released(1, "run-a", PP_ST_SUBMITTING);
}

/* A queued SUBMITTED write is still out when a synchronous write of the
 * same run fails: the run is released in SUBMITTING, not in the SUBMITTED
 * it took from the queued write (which the store may not have: released
 * so, it would hold SUBMITTED with no infra id, and its next claim could
 * only crash it). The queued write's outcome then finds the run gone. */
static void test_sync_write_failing_behind_a_queued_one(void **state)
{
	struct inflight *a = add_run("run-a", PP_ST_SUBMITTING);
	queue(a, PP_ST_SUBMITTED, "job/a");
	fs.down = true;
	struct pp_run_update running = {
		.state = PP_ST_RUNNING, .attempt = -1, .next_attempt_ms = -1};
	assert_false(inflight_store_write(&L, a, &running));
	assert_false(in_flight("run-a"));
	assert_int_equal(L.norphans, 1);
	fail_first_queued(PP_ETRANSIENT);
	inflight_settle(&L); /* reports the lost write of a run already gone */
	assert_int_equal(L.nqueued, 0);
	store_back();
	assert_int_equal(fs.nwritten, 1);
	assert_released(0, "run-a", PP_ST_SUBMITTING);
}

/* Two writes of a run queued, the first lost: the run goes back in the
 * state before both, and the second's success (written after the first
 * failed, as far as the loop knows) changes nothing. */
static void test_first_of_two_queued_writes_lost(void **state)
{
	struct inflight *a = add_run("run-a", PP_ST_SCHEDULED);
	queue(a, PP_ST_SUBMITTING, NULL);
	queue(a, PP_ST_SUBMITTED, "job/a");
	fail_first_queued(PP_EIO);
	inflight_settle(&L);
	assert_false(in_flight("run-a"));
	assert_int_equal(L.norphans, 1);
	assert_int_equal(L.orphans[0].state, PP_ST_SCHEDULED);
	store_back();
	assert_released(fs.nwritten - 1, "run-a", PP_ST_SCHEDULED);
}

/* An outage fails more writes than the first list of runs to release
 * held (64): each of 150 runs dropped is released once the store answers,
 * none left leased to this dispatcher, which would renew its lease while
 * watching it no more (pg_restart.sh under load). */
static void test_every_run_a_failed_write_dropped_is_released(void **state)
{
	enum { RUNS = 150 };
	struct pp_run_update running = {
		.state = PP_ST_RUNNING, .attempt = -1, .next_attempt_ms = -1};
	for (int i = 0; i < RUNS; i++) {
		char id[PP_ID_LEN];
		snprintf(id, sizeof(id), "run-%03d", i);
		add_run(id, PP_ST_SUBMITTED);
	}
	fs.down = true;
	while (L.runs)
		assert_false(inflight_store_write(&L, L.runs, &running));
	assert_int_equal(L.norphans, RUNS);
	lease_renew(&L); /* still down: all kept */
	assert_int_equal(L.norphans, RUNS);
	fs.down = false;
	lease_renew(&L);
	assert_int_equal(L.norphans, 0);
	assert_int_equal(fs.nwritten, RUNS);
	bool released[RUNS] = {false};
	for (int i = 0; i < RUNS; i++) {
		int n = -1;
		assert_int_equal(sscanf(fs.written[i].id, "run-%d", &n), 1);
		assert_true(n >= 0 && n < RUNS && !released[n]);
		assert_int_equal(fs.written[i].state, PP_ST_SUBMITTED);
		assert_true(fs.written[i].released);
		released[n] = true;
	}
}

/* Runs claimed ahead (their claim took their first try's intent) given
 * back while the store fails, as after a lapse its renewal noticed: each
 * is released once the store answers, its try withdrawn, rather than left
 * leased to this dispatcher, which renews its lease and no longer holds
 * them (pg_restart.sh found 8 such runs SUBMITTING under a live one). */
static void test_runs_given_back_while_the_store_fails_are_released(void **state)
{
	struct pool_rt p = {0};
	p.ahead = calloc(2, sizeof(*p.ahead));
	assert_non_null(p.ahead);
	for (int i = 0; i < 2; i++) {
		snprintf(p.ahead[i].id, sizeof(p.ahead[i].id), "run-%d", i);
		p.ahead[i].state = PP_ST_SUBMITTING;
		p.ahead[i].attempt = 1;
		p.ahead[i].fence = 7;
		p.ahead[i].intent_claimed = true;
	}
	p.nahead = 2;
	fs.down = true;
	loop_ahead_release(&L, &p);
	assert_int_equal(p.nahead, 0);
	assert_int_equal(fs.nwritten, 0);
	assert_int_equal(L.norphans, 2);
	lease_renew(&L); /* still down: kept */
	assert_int_equal(L.norphans, 2);
	fs.down = false;
	lease_renew(&L);
	assert_int_equal(L.norphans, 0);
	assert_int_equal(fs.nwritten, 2);
	for (int i = 0; i < 2; i++) {
		assert_true(fs.written[i].released);
		assert_int_equal(fs.written[i].state, PP_ST_SCHEDULED);
		assert_int_equal(fs.written[i].attempt, 0);
		assert_string_equal(fs.written[i].event, INTENT_WITHDRAWN_EVENT);
	}
}

/* A queued write fenced out: another dispatcher holds the run now. It is
 * dropped and counted as a lost lease, and nothing is released for it. */
static void test_fenced_out_write_leaves_the_run_to_its_owner(void **state)
{
	struct inflight *a = add_run("run-a", PP_ST_SUBMITTING);
	queue(a, PP_ST_SUBMITTED, "job/a");
	fail_first_queued(PP_ECONFLICT);
	inflight_settle(&L);
	assert_false(in_flight("run-a"));
	assert_int_equal(sum.lost_lease, 1);
	assert_int_equal(L.norphans, 0);
	store_back();
	assert_int_equal(fs.nwritten, 0);
}

/* A run taken into flight for a pool this dispatcher does not serve:
 * it ends FAILED at once, through finish. */
static void start_unservable(const char *id)
{
	struct pp_run_rec rec = {.state = PP_ST_SCHEDULED, .fence = 7};
	snprintf(rec.id, sizeof(rec.id), "%s", id);
	snprintf(rec.pool, sizeof(rec.pool), "no-such-pool");
	inflight_start(&L, &rec);
}

/* A run's end is queued with the other writes: it stays in flight, not
 * yet counted, its slot held, until the settle says its final write
 * stands; then it is counted and gone. */
static void test_end_waits_for_its_queued_write(void **state)
{
	start_unservable("run-a");
	assert_true(in_flight("run-a"));
	assert_int_equal(L.ninflight, 1);
	assert_int_equal(sum.failed, 0);
	assert_int_equal(fs.nqueued, 1);
	assert_int_equal(fs.nwritten, 0);
	assert_int_equal(fs.queued[0].state, PP_ST_FAILED);
	assert_true(fs.queued[0].released);
	inflight_settle(&L);
	assert_false(in_flight("run-a"));
	assert_int_equal(L.ninflight, 0);
	assert_int_equal(sum.failed, 1);
	assert_int_equal(fs.nwritten, 1);
	assert_released(0, "run-a", PP_ST_FAILED);
}

/* The final write lost with the connection: the run is neither counted
 * as ended nor kept; it is released, once the store answers, in the
 * state the store surely has, for its next claimer to finish. */
static void test_end_whose_write_is_lost_is_not_counted(void **state)
{
	start_unservable("run-a");
	fail_first_queued(PP_ETRANSIENT);
	fs.down = true;
	inflight_settle(&L);
	assert_false(in_flight("run-a"));
	assert_int_equal(sum.failed, 0);
	assert_int_equal(L.norphans, 1);
	assert_int_equal(L.orphans[0].state, PP_ST_SCHEDULED);
	store_back();
	assert_int_equal(fs.nwritten, 1);
	assert_released(0, "run-a", PP_ST_SCHEDULED);
}

/* The same store answering without the loop waiting (store.h's
 * update_send): a send takes what is queued while nothing sent is
 * unanswered, and a collect reports the writes sent once the test has
 * answered them (answered); the descriptor is a pipe's read end. */
static struct {
	int nsent;
	bool answered;
	int pipe[2];
} as;

static int fake_update_send(struct pp_store *s)
{
	if (!as.nsent)
		as.nsent = fs.nqueued;
	return as.nsent ? as.pipe[0] : -1;
}

static int fake_update_collect(struct pp_store *s,
			       void (*done)(void *ud, int i, int rc, const struct pp_error *err),
			       void *ud)
{
	int n = as.answered ? as.nsent : 0;
	for (int i = 0; i < n; i++) {
		fs.written[fs.nwritten++] = fs.queued[i];
		done(ud, i, 0, NULL);
	}
	fs.nqueued -= n;
	memmove(fs.queued, fs.queued + n, (size_t)fs.nqueued * sizeof(fs.queued[0]));
	as.nsent -= n;
	as.answered = false;
	return n;
}

/* A run's end sent without waiting: the run stays in flight, its slot
 * held, until the store's answer comes (the loop waits on the store's
 * descriptor meanwhile) and is read; a write queued meanwhile is not sent
 * on top of the unanswered one, and goes with the next send. */
static void test_end_waits_for_an_answer_sent_without_waiting(void **state)
{
	static struct pp_store_ops async_ops;
	async_ops = fake_store_ops;
	async_ops.name = "fake-async";
	async_ops.update_send = fake_update_send;
	async_ops.update_collect = fake_update_collect;
	fs.base.ops = &async_ops;
	memset(&as, 0, sizeof(as));
	assert_int_equal(pipe(as.pipe), 0);
	L.multi = pp_http_multi_new();
	assert_non_null(L.multi);
	start_unservable("run-a");
	inflight_send(&L);
	assert_int_equal(as.nsent, 1);
	assert_true(in_flight("run-a"));
	assert_int_equal(sum.failed, 0);
	assert_int_equal(inflight_collect(&L), 0); /* no answer yet */
	start_unservable("run-b");
	inflight_send(&L); /* nothing more goes while one is unanswered */
	assert_int_equal(as.nsent, 1);
	assert_int_equal(fs.nqueued, 2);
	assert_false(pp_http_multi_watch_ready(L.multi));
	assert_int_equal(write(as.pipe[1], "x", 1), 1);
	pp_http_multi_wait_watched(L.multi, 10000);
	assert_true(pp_http_multi_watch_ready(L.multi));
	as.answered = true;
	assert_int_equal(inflight_collect(&L), 1);
	assert_false(pp_http_multi_watch_ready(L.multi)); /* nothing unanswered */
	assert_false(in_flight("run-a"));
	assert_int_equal(sum.failed, 1);
	assert_released(0, "run-a", PP_ST_FAILED);
	assert_true(in_flight("run-b"));
	assert_int_equal(as.nsent, 0);
	inflight_send(&L); /* run-b's end */
	assert_int_equal(as.nsent, 1);
	as.answered = true;
	assert_int_equal(inflight_collect(&L), 1);
	assert_false(in_flight("run-b"));
	assert_int_equal(sum.failed, 2);
	assert_int_equal(L.nqueued, 0);
	pp_http_multi_free(L.multi);
	close(as.pipe[0]);
	close(as.pipe[1]);
}

/* Where the store queues nothing (SQLite), a run ends at once. */
static void test_end_without_a_queue_is_immediate(void **state)
{
	static const struct pp_store_ops sync_ops = {
		.name = "fake-sync", .update = fake_update, .renew = fake_renew};
	fs.base.ops = &sync_ops;
	start_unservable("run-a");
	assert_false(in_flight("run-a"));
	assert_int_equal(sum.failed, 1);
	assert_int_equal(fs.nqueued, 0);
	assert_released(0, "run-a", PP_ST_FAILED);
}

static void leased_to_us(const char *id, int64_t fence, enum pp_store_state st)
{
	struct pp_leased_run *r = &fs.leased[fs.nleased++];
	snprintf(r->id, sizeof(r->id), "%s", id);
	r->fence = fence;
	r->state = st;
}

/* A claim whose answer was lost leased runs to us all the same (the server
 * committed it; pg_restart.sh found 9 runs SUBMITTING, try 1, leased to a
 * live dispatcher that never knew them). After a failed claim the next
 * renewal that the store answers, with no claim out and nothing queued,
 * releases the runs leased to us that the loop does not know (in flight,
 * claimed ahead, or to be released already), each as the store has it,
 * fenced with its own fence; a write fenced out is another's run now. */
static void test_runs_a_lost_claim_leased_are_released(void **state)
{
	add_run("run-flight", PP_ST_RUNNING);
	struct pool_rt p = {0};
	p.ahead = calloc(3, sizeof(*p.ahead));
	assert_non_null(p.ahead);
	snprintf(p.ahead[1].id, sizeof(p.ahead[1].id), "run-ahead");
	p.ahead_first = 1;
	p.nahead = 1;
	L.pools = &p;
	inflight_orphan(&L, "run-orphan", 5, PP_ST_SUBMITTING, -1, NULL);
	leased_to_us("run-flight", 7, PP_ST_RUNNING);
	leased_to_us("run-ahead", 7, PP_ST_SUBMITTING);
	leased_to_us("run-orphan", 5, PP_ST_SUBMITTING);
	leased_to_us("run-lost-1", 9, PP_ST_SUBMITTING);
	leased_to_us("run-lost-2", 4, PP_ST_SCHEDULED);
	leased_to_us("run-taken", 3, PP_ST_SUBMITTING);
	fs.update_fails = "run-taken";
	fs.update_rc = PP_ECONFLICT;

	/* Nothing failed: no look. */
	lease_renew(&L);
	assert_int_equal(fs.nwritten, 1); /* the orphan's own release */
	/* A claim failed; the store is down at the next renewal: the look
	 * waits for one it answers. */
	L.audit_until = pp_mono_ms() + 60000;
	fs.down = true;
	lease_renew(&L);
	fs.down = false;
	assert_int_equal(fs.nwritten, 1);
	assert_true(L.audit_until);

	lease_renew(&L);
	assert_true(L.audit_until); /* looks again until the window ends */
	assert_int_equal(fs.nwritten, 3);
	for (int i = 1; i < 3; i++) {
		bool first = !strcmp(fs.written[i].id, "run-lost-1");
		assert_true(first || !strcmp(fs.written[i].id, "run-lost-2"));
		assert_true(fs.written[i].released);
		assert_int_equal(fs.written[i].state, first ? PP_ST_SUBMITTING : PP_ST_SCHEDULED);
		assert_int_equal(fs.written[i].attempt, -1);
		assert_int_equal(fs.written[i].fence, first ? 9 : 4);
		assert_non_null(strstr(fs.written[i].event, "whose answer was lost"));
	}
	/* A claim still running on the server when its connection dropped
	 * commits later: a later look in the window finds its runs. */
	leased_to_us("run-late", 6, PP_ST_SUBMITTING);
	L.audit_until = 1; /* and the window is over after it */
	lease_renew(&L);
	assert_int_equal(L.audit_until, 0);
	assert_int_equal(fs.nwritten, 4);
	assert_released(3, "run-late", PP_ST_SUBMITTING);
	L.pools = NULL;
	free(p.ahead);
}

/* A claim out when the look is due is answered first: its runs, which
 * the store lists as ours already, are the loop's, not released. */
static void test_a_claim_out_is_answered_before_the_look(void **state)
{
	struct pp_pool pool = {.name = "a"};
	struct pool_rt p = {.p = &pool};
	L.pools = &p;
	L.multi = pp_http_multi_new();
	assert_non_null(L.multi);
	L.claim_out = &p;
	L.claim_asked = 1;
	fs.answered = "run-answered";
	leased_to_us("run-answered", 8, PP_ST_SUBMITTING);
	leased_to_us("run-lost", 2, PP_ST_SUBMITTING);
	L.audit_until = 1;
	lease_renew(&L);
	assert_null(L.claim_out);
	assert_int_equal(p.nahead, 1);
	assert_string_equal(p.ahead[p.ahead_first].id, "run-answered");
	assert_int_equal(fs.nwritten, 1);
	assert_released(0, "run-lost", PP_ST_SUBMITTING);
	L.pools = NULL;
	free(p.ahead);
	pp_http_multi_free(L.multi);
	L.multi = NULL;
}

/* A release that fails for another reason than a fence is looked for
 * again at the next renewal, the window over or not. */
static void test_a_failed_release_of_a_lost_claims_run_is_tried_again(void **state)
{
	leased_to_us("run-lost", 9, PP_ST_SUBMITTING);
	fs.update_fails = "run-lost";
	fs.update_rc = PP_ETRANSIENT;
	L.audit_until = 1; /* the window is over: kept for the failed write */
	lease_renew(&L);
	assert_true(L.audit_until);
	assert_int_equal(fs.nwritten, 0);
	fs.update_fails = NULL;
	lease_renew(&L);
	assert_int_equal(L.audit_until, 0);
	assert_released(0, "run-lost", PP_ST_SUBMITTING);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_failed_queued_write_releases_the_state_before_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_write_failing_behind_a_queued_one, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_first_of_two_queued_writes_lost, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_every_run_a_failed_write_dropped_is_released,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_runs_given_back_while_the_store_fails_are_released, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fenced_out_write_leaves_the_run_to_its_owner,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_runs_a_lost_claim_leased_are_released, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_a_failed_release_of_a_lost_claims_run_is_tried_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_claim_out_is_answered_before_the_look, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_end_waits_for_its_queued_write, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_end_whose_write_is_lost_is_not_counted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_end_without_a_queue_is_immediate, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_end_waits_for_an_answer_sent_without_waiting,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
