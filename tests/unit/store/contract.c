/* The store contract: what every run-store backend promises the loop
 * (store/store.h), run against SQLite and PostgreSQL alike. Claim order and
 * leases, fencing of stale writers, renewal, release and re-claim, terminal
 * runs never claimed, concurrent claimers never sharing a run, cancellation,
 * lookup by id prefix, listing, unique source references, rows with an
 * unknown state quarantined instead of blocking their pool, finished runs
 * reopened for a rerun, and provisioning locks with their journals. What only one
 * backend does (SQLite's dead-owner detection, PostgreSQL's schema versions,
 * LISTEN/NOTIFY and reconnection) is tested in sqlite.c and pg.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <sqlite3.h>

#include "store/db.h"
#include "store/deploy.h"
#include "tests/unit/store/fixture.h"

static void test_claim_orders_and_leases(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	int64_t now = pp_wall_ms();
	char low[PP_ID_LEN], high[PP_ID_LEN], later[PP_ID_LEN];
	schedule(s, "a", 0, now - 1000, low);
	schedule(s, "a", 5, now - 10, high);
	schedule(s, "a", 9, now + 60000, later); /* not due */
	struct pp_run_rec *runs;
	int n;
	assert_int_equal(s->ops->claim(s, "a", "d1", 60000, 1, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].id, high); /* priority first */
	assert_int_equal(runs[0].fence, 1);
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->claim(s, "a", "d2", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].id, low); /* high is leased by d1 */
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->claim(s, "b", "d2", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 0);
	free(runs);
	struct pp_store_counts c;
	assert_int_equal(s->ops->counts(s, &c, &err), 0);
	assert_int_equal(c.by_state[PP_ST_SCHEDULED], 3);
	assert_int_equal(c.oldest_due_ms, now - 1000);
	/* The same by pool: only "a" has runs. */
	assert_int_equal(c.npools, 1);
	assert_string_equal(c.pools[0].pool, "a");
	assert_int_equal(c.pools[0].by_state[PP_ST_SCHEDULED], 3);
	assert_false(c.more_pools);
	char other[PP_ID_LEN];
	schedule(s, "0-first", 0, now, other);
	assert_int_equal(s->ops->counts(s, &c, &err), 0);
	assert_int_equal(c.npools, 2);
	assert_string_equal(c.pools[0].pool, "0-first"); /* by name */
	assert_int_equal(c.pools[0].by_state[PP_ST_SCHEDULED], 1);
	assert_int_equal(c.pools[1].by_state[PP_ST_SCHEDULED], 3);
	assert_int_equal(c.by_state[PP_ST_SCHEDULED], 4);
}

/* A 1 ms lease is expired for the next claimer, and the stale owner's
 * writes change nothing (PostgreSQL judges by the server's clock). */
static void test_fencing_rejects_stale_writer(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	char id[PP_ID_LEN];
	schedule(s, "a", 0, pp_wall_ms() - 1, id);
	struct pp_run_rec *runs;
	int n;
	assert_int_equal(s->ops->claim(s, NULL, "slow", 1, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	int64_t stale = runs[0].fence;
	pp_run_recs_free(runs, n);
	usleep(20000);
	assert_int_equal(s->ops->claim(s, NULL, "fast", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	int64_t fresh = runs[0].fence;
	assert_true(fresh > stale);
	pp_run_recs_free(runs, n);
	/* The stale owner renewing does not take it back. */
	assert_int_equal(s->ops->renew(s, "slow", 60000, &err), 0);
	assert_int_equal(s->ops->claim(s, NULL, "third", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 0);
	free(runs);
	struct pp_run_update u = {.state = PP_ST_SUBMITTING,
				  .attempt = 1,
				  .next_attempt_ms = -1,
				  .idem_key = "k1",
				  .event = "submitting"};
	assert_int_equal(s->ops->update(s, id, stale, &u, &err), PP_ECONFLICT);
	assert_non_null(strstr(err.msg, "lease lost"));
	assert_int_equal(s->ops->update(s, id, fresh, &u, &err), 0);
	struct pp_run_rec r;
	struct pp_run_event *ev;
	int nev;
	assert_int_equal(s->ops->get(s, id, &r, &ev, &nev, &err), 0);
	assert_int_equal(r.state, PP_ST_SUBMITTING);
	assert_string_equal(r.idem_key, "k1");
	assert_int_equal(r.attempt, 1);
	assert_int_equal(nev, 2); /* the stale write left no event either */
	assert_string_equal(ev[0].message, "created");
	assert_string_equal(ev[1].message, "submitting");
	pp_run_rec_free(&r);
	pp_run_events_free(ev, nev);
}

/* Counts by state and pool, finished runs included, as the runs change. */
static void test_counts_follow_the_runs(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	int64_t now = pp_wall_ms();
	char a1[PP_ID_LEN], a2[PP_ID_LEN], b1[PP_ID_LEN];
	schedule(s, "b", 0, now - 30, b1);
	schedule(s, "a", 0, now - 20, a1);
	schedule(s, "a", 0, now - 10, a2);
	struct pp_run_rec *runs;
	int n;
	assert_int_equal(s->ops->claim(s, "a", "d1", 60000, 2, &runs, &n, &err), 0);
	assert_int_equal(n, 2);
	struct pp_run_update done = {.state = PP_ST_SUCCEEDED,
				     .attempt = -1,
				     .next_attempt_ms = -1,
				     .release_lease = true,
				     .event = "succeeded"};
	struct pp_run_update running = {
		.state = PP_ST_RUNNING, .attempt = -1, .next_attempt_ms = -1, .event = "running"};
	assert_int_equal(s->ops->update(s, runs[0].id, runs[0].fence, &done, &err), 0);
	assert_int_equal(s->ops->update(s, runs[1].id, runs[1].fence, &running, &err), 0);
	struct pp_store_counts c;
	assert_int_equal(s->ops->counts(s, &c, &err), 0);
	assert_int_equal(c.by_state[PP_ST_SCHEDULED], 1);
	assert_int_equal(c.by_state[PP_ST_RUNNING], 1);
	assert_int_equal(c.by_state[PP_ST_SUCCEEDED], 1);
	assert_int_equal(c.npools, 2);
	assert_string_equal(c.pools[0].pool, "a");
	assert_int_equal(c.pools[0].by_state[PP_ST_RUNNING], 1);
	assert_int_equal(c.pools[0].by_state[PP_ST_SUCCEEDED], 1);
	assert_string_equal(c.pools[1].pool, "b");
	assert_int_equal(c.pools[1].by_state[PP_ST_SCHEDULED], 1);
	assert_int_equal(c.oldest_due_ms, now - 30);
	/* A run that finishes right after a count is in the next one. */
	done.state = PP_ST_FAILED;
	assert_int_equal(s->ops->update(s, runs[1].id, runs[1].fence, &done, &err), 0);
	assert_int_equal(s->ops->counts(s, &c, &err), 0);
	assert_int_equal(c.by_state[PP_ST_RUNNING], 0);
	assert_int_equal(c.by_state[PP_ST_FAILED], 1);
	assert_int_equal(c.pools[0].by_state[PP_ST_FAILED], 1);
	pp_run_recs_free(runs, n);
}

static void test_renew_keeps_lease(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	schedule(s, "a", 0, pp_wall_ms() - 1, NULL);
	struct pp_run_rec *runs;
	int n;
	assert_int_equal(s->ops->claim(s, NULL, "d1", 300, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->renew(s, "d1", 60000, &err), 0);
	usleep(400000);
	assert_int_equal(s->ops->claim(s, NULL, "d2", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 0);
	free(runs);
}

static void test_released_runs_are_reclaimed_terminal_never(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	char id[PP_ID_LEN];
	schedule(s, "a", 0, pp_wall_ms() - 1, id);
	struct pp_run_rec *runs;
	int n;
	assert_int_equal(s->ops->claim(s, NULL, "d1", 60000, 10, &runs, &n, &err), 0);
	struct pp_run_update u = {.state = PP_ST_SUBMITTED,
				  .attempt = -1,
				  .next_attempt_ms = -1,
				  .infra_id = "arn:task/1",
				  .error = "boom",
				  .release_lease = true};
	assert_int_equal(s->ops->update(s, id, runs[0].fence, &u, &err), 0);
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->claim(s, NULL, "d2", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(runs[0].state, PP_ST_SUBMITTED);
	assert_string_equal(runs[0].infra_id, "arn:task/1");
	assert_string_equal(runs[0].last_error, "boom");
	u = (struct pp_run_update){.state = PP_ST_SUCCEEDED,
				   .attempt = -1,
				   .next_attempt_ms = -1,
				   .error = "",
				   .release_lease = true};
	assert_int_equal(s->ops->update(s, id, runs[0].fence, &u, &err), 0);
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->claim(s, NULL, "d3", 1, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 0);
	free(runs);
	struct pp_run_rec r;
	assert_int_equal(s->ops->get(s, id, &r, NULL, NULL, &err), 0);
	assert_null(r.last_error); /* "" clears */
	pp_run_rec_free(&r);
}

/* A dispatcher that stops lets go of all its leases at once (release_all,
 * where the store has it): its run in flight and its claimed, unstarted
 * run are free to the next claim at once, in flight first, their states
 * and histories as they were; another owner's lease is untouched. */
static void test_release_all_frees_only_the_owners_runs(void **state)
{
	struct pp_store *s = *state;
	if (!s->ops->release_all)
		skip(); /* this backend releases run by run (dispatcher/lease.c) */
	struct pp_error err = {0};
	int64_t now = pp_wall_ms();
	char flying[PP_ID_LEN], waiting[PP_ID_LEN], others[PP_ID_LEN];
	schedule(s, "a", 2, now - 30, flying);
	schedule(s, "a", 1, now - 20, waiting);
	schedule(s, "a", 0, now - 10, others);
	struct pp_run_rec *runs;
	int n;
	assert_int_equal(s->ops->claim(s, "a", "d1", 60000, 2, &runs, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(runs[0].id, flying);
	struct pp_run_update u = {.state = PP_ST_SUBMITTED,
				  .attempt = -1,
				  .next_attempt_ms = -1,
				  .infra_id = "arn:task/1",
				  .event = "submitted"};
	assert_int_equal(s->ops->update(s, flying, runs[0].fence, &u, &err), 0);
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->claim(s, "a", "d2", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].id, others);
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->release_all(s, "d1", &err), 0);
	assert_int_equal(s->ops->claim(s, "a", "d3", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(runs[0].id, flying);
	assert_int_equal(runs[0].state, PP_ST_SUBMITTED);
	assert_string_equal(runs[0].infra_id, "arn:task/1");
	assert_int_equal(runs[0].fence, 2);
	assert_string_equal(runs[1].id, waiting);
	assert_int_equal(runs[1].state, PP_ST_SCHEDULED);
	assert_int_equal(runs[1].fence, 2);
	pp_run_recs_free(runs, n);
	struct pp_run_rec r;
	struct pp_run_event *ev;
	int nev;
	assert_int_equal(s->ops->get(s, flying, &r, &ev, &nev, &err), 0);
	assert_int_equal(nev, 2); /* created, submitted: releasing is no event */
	pp_run_rec_free(&r);
	pp_run_events_free(ev, nev);
	/* d2 still holds its run: d3 (nor anyone) gets it. */
	assert_int_equal(s->ops->claim(s, "a", "d4", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 0);
	free(runs);
}

/* Four processes claim 400 runs in small batches at once, each on its own
 * handle: every run is leased exactly once, the 100 of them a claimer
 * before them held and let lapse (taken again) as well as the due ones.
 * Each claimer stays alive until all are done, since a dead owner's leases
 * are free at once (SQLite). */
static void test_concurrent_claims_never_share_a_run(void **state)
{
	struct pp_store *s = *state;
	enum { RUNS = 400, PROCS = 4, LAPSED = 100 };
	static const char done[PP_ID_LEN]; /* all zero: this claimer found no more */
	for (int i = 0; i < RUNS; i++)
		schedule(s, "a", i % 3, pp_wall_ms() - 1, NULL);
	struct pp_run_rec *lapsed;
	int nlapsed;
	struct pp_error lerr = {0};
	assert_int_equal(s->ops->claim(s, "a", "ghost", 1, LAPSED, &lapsed, &nlapsed, &lerr), 0);
	assert_int_equal(nlapsed, LAPSED);
	pp_run_recs_free(lapsed, nlapsed);
	usleep(10000); /* ten times the 1 ms lease, on any clock */
	/* No handle crosses the fork (SQLite forbids it, and the children's
	 * copies would be leaked at their exit): the fixture's is reopened
	 * once the claimers are done. */
	pp_store_close(s);
	*state = NULL;
	int fds[PROCS][2], hold[2];
	pid_t pids[PROCS];
	assert_int_equal(pipe(hold), 0);
	for (int p = 0; p < PROCS; p++) {
		assert_int_equal(pipe(fds[p]), 0);
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			struct pp_store *c = NULL;
			struct pp_error err = {0};
			char owner[16];
			snprintf(owner, sizeof(owner), "proc%d", p);
			close(hold[1]);
			if (pp_store_open(store_url(), &c, &err))
				_exit(2);
			for (int busy = 0;;) {
				struct pp_run_rec *runs = NULL;
				int n = 0;
				int rc = c->ops->claim(c, "a", owner, 60000, 7, &runs, &n, &err);
				/* A store too busy to answer (SQLite's lock under
				 * valgrind on a loaded machine) is retried, as the
				 * loop retries a claim; anything else fails. */
				if (rc && pp_err_retryable(rc) && ++busy < 100) {
					usleep(10000);
					continue;
				}
				if (rc)
					_exit(3);
				for (int i = 0; i < n; i++)
					(void)!write(fds[p][1], runs[i].id, PP_ID_LEN);
				pp_run_recs_free(runs, n);
				if (n == 0)
					break;
			}
			(void)!write(fds[p][1], done, PP_ID_LEN);
			char byte;
			(void)!read(hold[0], &byte, 1); /* EOF once every claimer is done */
			pp_store_close(c);
			_exit(0);
		}
		close(fds[p][1]);
	}
	close(hold[0]);
	static char seen[RUNS * 2][PP_ID_LEN];
	int total = 0;
	for (int p = 0; p < PROCS; p++) {
		char id[PP_ID_LEN];
		while (read(fds[p][0], id, PP_ID_LEN) == PP_ID_LEN && memcmp(id, done, PP_ID_LEN))
			if (total < RUNS * 2)
				memcpy(seen[total++], id, PP_ID_LEN);
	}
	close(hold[1]);
	for (int p = 0; p < PROCS; p++) {
		close(fds[p][0]);
		int st;
		assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
		if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			fail_msg("claimer %d: status %d", p, st);
	}
	struct pp_error err = {0};
	if (pp_store_open(store_url(), (struct pp_store **)state, &err))
		fail_msg("reopen %s: %s", store_url(), err.msg);
	assert_int_equal(total, RUNS);
	qsort(seen, (size_t)total, PP_ID_LEN, (int (*)(const void *, const void *))strcmp);
	for (int i = 1; i < total; i++)
		assert_string_not_equal(seen[i - 1], seen[i]);
}

static void test_cancel_get_list(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	char a[PP_ID_LEN], b[PP_ID_LEN];
	schedule(s, "a", 0, pp_wall_ms() + 100000, a);
	schedule(s, "b", 0, pp_wall_ms() - 1, b);
	assert_int_equal(s->ops->request_cancel(s, a, &err), 0);
	struct pp_run_rec r;
	/* Through the first random digits: a and b were made in one
	 * millisecond, and time-ordered ids share their start (store.md). */
	char prefix[24];
	snprintf(prefix, sizeof(prefix), "%s", a);
	assert_int_equal(s->ops->get(s, prefix, &r, NULL, NULL, &err), 0);
	assert_string_equal(r.id, a);
	assert_int_equal(r.state, PP_ST_CANCELLED);
	assert_true(r.cancel_requested);
	pp_run_rec_free(&r);
	assert_int_equal(s->ops->get(s, "no-such-run", &r, NULL, NULL, &err), PP_ENOTFOUND);
	/* `%` and `_` are characters, not wildcards: no run id holds them. */
	assert_int_equal(s->ops->get(s, "%", &r, NULL, NULL, &err), PP_ENOTFOUND);
	snprintf(prefix, sizeof(prefix), "%.22s_", a);
	assert_int_equal(s->ops->get(s, prefix, &r, NULL, NULL, &err), PP_ENOTFOUND);
	assert_int_equal(s->ops->request_cancel(s, a, &err), PP_ENOTFOUND);
	struct pp_run_rec *runs;
	int n;
	assert_int_equal(s->ops->claim(s, NULL, "d1", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->request_cancel(s, b, &err), 0);
	char(*ids)[PP_ID_LEN];
	assert_int_equal(s->ops->cancel_requests(s, "d1", &ids, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], b);
	free(ids);
	struct pp_run_filter f = {.pool = "b", .state = PP_ST_SCHEDULED};
	assert_int_equal(s->ops->list(s, &f, &runs, &n, &err), 0);
	assert_int_equal(n, 1); /* b: leased, cancel requested, still SCHEDULED */
	assert_string_equal(runs[0].id, b);
	pp_run_recs_free(runs, n);
	f = (struct pp_run_filter){.state = -1, .limit = 1};
	assert_int_equal(s->ops->list(s, &f, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].id, b); /* earliest scheduled first */
	pp_run_recs_free(runs, n);
	f.newest_first = true;
	assert_int_equal(s->ops->list(s, &f, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].id, a); /* latest scheduled first */
	pp_run_recs_free(runs, n);
}

/* want: the runs a list returns, in order, as indexes into r. */
static void expect_list(struct pp_store *s, struct pp_run_filter f, char (*r)[PP_ID_LEN],
			const int *want, int nwant)
{
	const char *ids[16];
	assert_true(nwant <= (int)(sizeof(ids) / sizeof(ids[0])));
	for (int i = 0; i < nwant; i++)
		ids[i] = r[want[i]];
	expect_listed(s, f, ids, nwant);
}

/* A list holds each run once, whatever its state or lease (PostgreSQL
 * reads the finished, the unfinished held and the unfinished free
 * through three indexes), in the order asked, its limit over all of
 * them. */
static void test_list_shows_every_run_once(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	enum { NR = 8 };
	char r[NR + 1][PP_ID_LEN];
	int64_t base = pp_wall_ms() - 60000;
	for (int i = 0; i < NR; i++)
		schedule(s, "a", 0, base + i * 1000, r[i]);
	schedule(s, "b", 0, base + 4500, r[NR]);
	/* r0 in flight, r1 succeeded, r2 claimed and held, r3 failed; the
	 * rest, and r[NR] in pool b, due and free. */
	struct pp_run_rec *runs;
	int n;
	assert_int_equal(s->ops->claim(s, "a", "d1", 60000, 4, &runs, &n, &err), 0);
	assert_int_equal(n, 4);
	static const enum pp_store_state to[] = {PP_ST_SUBMITTED, PP_ST_SUCCEEDED, -1,
						 PP_ST_FAILED};
	for (int i = 0; i < n; i++) {
		assert_string_equal(runs[i].id, r[i]);
		if ((int)to[i] < 0)
			continue;
		struct pp_run_update u = {.state = to[i],
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  .release_lease = to[i] != PP_ST_SUBMITTED};
		assert_int_equal(s->ops->update(s, runs[i].id, runs[i].fence, &u, &err), 0);
	}
	pp_run_recs_free(runs, n);
	static const int newest[] = {7, 6, 5, NR, 4, 3, 2, 1, 0};
	expect_list(s, (struct pp_run_filter){.state = -1, .newest_first = true}, r, newest, 9);
	expect_list(s, (struct pp_run_filter){.state = -1, .limit = 4, .newest_first = true}, r,
		    newest, 4);
	static const int oldest[] = {0, 1, 2, 3, 4, NR, 5, 6, 7};
	expect_list(s, (struct pp_run_filter){.state = -1}, r, oldest, 9);
	expect_list(s, (struct pp_run_filter){.state = -1, .limit = 3}, r, oldest, 3);
	static const int scheduled[] = {7, 6, 5, NR, 4, 2}, failed[] = {3}, in_b[] = {NR},
			 a_old[] = {0, 1};
	expect_list(s, (struct pp_run_filter){.state = PP_ST_SCHEDULED, .newest_first = true}, r,
		    scheduled, 6);
	expect_list(s, (struct pp_run_filter){.state = PP_ST_FAILED}, r, failed, 1);
	expect_list(s, (struct pp_run_filter){.pool = "b", .state = -1}, r, in_b, 1);
	expect_list(s, (struct pp_run_filter){.pool = "a", .state = -1, .limit = 2}, r, a_old, 2);
}

static void test_source_ref_is_unique(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	struct pp_run_rec r = {.scheduled_ms = pp_wall_ms(), .state = PP_ST_SCHEDULED};
	snprintf(r.pool, sizeof(r.pool), "a");
	r.source = (char *)"prefect";
	r.source_ref = (char *)"flow-run-1";
	assert_int_equal(s->ops->insert(s, &r, &err), 0);
	struct pp_run_rec again = r;
	again.id[0] = '\0';
	assert_int_equal(s->ops->insert(s, &again, &err), PP_ECONFLICT);
	assert_non_null(strstr(err.msg, "flow-run-1"));
}

/* A finished run reopened for an upstream rerun: SCHEDULED again with the
 * next rerun number, a fresh submission count and idempotency key, no
 * infrastructure, error or lease, its history kept; claimable again. A run
 * in flight, a run reopened already and an unknown id are refused. */
static void test_reopen_finished_run(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	char id[PP_ID_LEN];
	schedule(s, "a", 0, pp_wall_ms() - 1, id);
	struct pp_run_rec *runs;
	int n;
	assert_int_equal(s->ops->claim(s, NULL, "d1", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(runs[0].rerun, 0);
	int64_t fence = runs[0].fence;
	pp_run_recs_free(runs, n);
	/* In flight: not reopened. */
	struct pp_run_update u = {.state = PP_ST_SUBMITTED,
				  .infra_id = "job-1",
				  .idem_key = "k-1",
				  .attempt = 2,
				  .next_attempt_ms = -1,
				  .event = "submitted"};
	assert_int_equal(s->ops->update(s, id, fence, &u, &err), 0);
	assert_int_equal(s->ops->reopen(s, id, pp_wall_ms(), NULL, "rerun", &err), PP_ECONFLICT);
	assert_non_null(strstr(err.msg, "SUBMITTED"));
	u = (struct pp_run_update){.state = PP_ST_CRASHED,
				   .attempt = -1,
				   .next_attempt_ms = -1,
				   .error = "exit 137",
				   .release_lease = true,
				   .event = "crashed"};
	assert_int_equal(s->ops->update(s, id, fence, &u, &err), 0);
	int64_t when = pp_wall_ms() - 5;
	assert_int_equal(s->ops->reopen(s, id, when, "{\"cpu\":2}", "rerun 1", &err), 0);
	/* Reopened already: a second reopen of the same rerun is refused. */
	assert_int_equal(s->ops->reopen(s, id, when, NULL, "rerun 1", &err), PP_ECONFLICT);
	assert_int_equal(s->ops->reopen(s, "no-such-run", when, NULL, "x", &err), PP_ENOTFOUND);
	struct pp_run_rec r;
	struct pp_run_event *ev;
	int nev;
	assert_int_equal(s->ops->get(s, id, &r, &ev, &nev, &err), 0);
	assert_int_equal(r.state, PP_ST_SCHEDULED);
	assert_int_equal(r.rerun, 1);
	assert_int_equal(r.attempt, 0);
	assert_int_equal(r.scheduled_ms, when);
	assert_null(r.infra_id);
	assert_null(r.last_error);
	assert_false(r.cancel_requested);
	char key[PP_ID_LEN + 8];
	snprintf(key, sizeof(key), "%s-2", id);
	assert_string_equal(r.idem_key, key);
	assert_string_equal(r.job_variables, "{\"cpu\":2}");
	assert_int_equal(nev, 4); /* created, submitted, crashed, rerun 1 */
	assert_string_equal(ev[2].message, "crashed");
	assert_string_equal(ev[3].message, "rerun 1");
	assert_string_equal(ev[3].state, "SCHEDULED");
	pp_run_rec_free(&r);
	pp_run_events_free(ev, nev);
	/* Claimable again, by anyone, and fenced past the old lease. */
	assert_int_equal(s->ops->claim(s, NULL, "d2", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].id, id);
	assert_int_equal(runs[0].rerun, 1);
	assert_true(runs[0].fence > fence);
	assert_int_equal(s->ops->update(s, id, fence, &u, &err), PP_ECONFLICT);
	/* A rerun whose start was retried up to attempt 5, then cancelled, is
	 * reopened once more: rerun 2, and the attempt count goes on (key -6),
	 * so no remote name is ever used twice. */
	char retried[PP_ID_LEN + 8];
	snprintf(retried, sizeof(retried), "%s-5", id);
	u.state = PP_ST_CANCELLED;
	u.idem_key = retried;
	assert_int_equal(s->ops->update(s, id, runs[0].fence, &u, &err), 0);
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->reopen(s, id, when, NULL, "rerun 2", &err), 0);
	assert_int_equal(s->ops->get(s, id, &r, NULL, NULL, &err), 0);
	assert_int_equal(r.rerun, 2);
	snprintf(key, sizeof(key), "%s-6", id);
	assert_string_equal(r.idem_key, key);
	assert_string_equal(r.job_variables, "{\"cpu\":2}"); /* NULL: kept */
	pp_run_rec_free(&r);
}

/* Write a state no pushpool names straight into a run's row, as a newer
 * version or a hand edit might. */
static void set_state_raw(const char *id, const char *state)
{
	char text[256];
	snprintf(text, sizeof(text), "UPDATE runs SET state = '%s' WHERE id = '%s'", state, id);
	if (!sqlite_dir[0]) {
		sql(pgurl, text);
		return;
	}
	sqlite3 *db;
	assert_int_equal(sqlite3_open(sqlite_path, &db), SQLITE_OK);
	char *msg = NULL;
	if (sqlite3_exec(db, text, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", text, msg);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_close(db);
}

/* One row with an unknown state neither blocks its pool nor fails a
 * listing: it lists as QUARANTINED with its reason, is counted, is set
 * aside by the next claim (an event says why) and never claimed, while the
 * other runs of the pool are dispatched. */
static void test_unknown_state_is_quarantined(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	char bad[PP_ID_LEN], ok1[PP_ID_LEN], ok2[PP_ID_LEN];
	schedule(s, "a", 9, pp_wall_ms() - 1, bad); /* first in claim order */
	schedule(s, "a", 0, pp_wall_ms() - 1, ok1);
	schedule(s, "a", 0, pp_wall_ms() - 1, ok2);
	set_state_raw(bad, "PAUSED_BY_V9");

	struct pp_run_rec *runs;
	int n;
	struct pp_run_filter all = {.state = -1};
	assert_int_equal(s->ops->list(s, &all, &runs, &n, &err), 0);
	assert_int_equal(n, 3);
	for (int i = 0; i < n; i++) {
		if (strcmp(runs[i].id, bad))
			continue;
		assert_int_equal(runs[i].state, PP_ST_QUARANTINED);
		assert_string_equal(runs[i].last_error,
				    "quarantined: unknown state \"PAUSED_BY_V9\"");
	}
	pp_run_recs_free(runs, n);
	struct pp_store_counts counts;
	assert_int_equal(s->ops->counts(s, &counts, &err), 0);
	assert_int_equal(counts.by_state[PP_ST_QUARANTINED], 1);
	assert_int_equal(counts.by_state[PP_ST_SCHEDULED], 2);

	assert_int_equal(s->ops->claim(s, "a", "d1", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 2);
	for (int i = 0; i < n; i++)
		assert_string_not_equal(runs[i].id, bad);
	pp_run_recs_free(runs, n);

	/* Set aside for good, with the reason and an event. */
	struct pp_run_rec r;
	struct pp_run_event *ev;
	int nev;
	assert_int_equal(s->ops->get(s, bad, &r, &ev, &nev, &err), 0);
	assert_int_equal(r.state, PP_ST_QUARANTINED);
	assert_string_equal(r.last_error, "quarantined: unknown state \"PAUSED_BY_V9\"");
	assert_true(nev >= 2);
	assert_string_equal(ev[nev - 1].state, "QUARANTINED");
	assert_string_equal(ev[nev - 1].message, r.last_error);
	pp_run_rec_free(&r);
	pp_run_events_free(ev, nev);
	struct pp_run_filter q = {.state = PP_ST_QUARANTINED};
	assert_int_equal(s->ops->list(s, &q, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].id, bad);
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->counts(s, &counts, &err), 0);
	assert_int_equal(counts.by_state[PP_ST_QUARANTINED], 1);

	/* Never claimed, by anyone, even once every lease is free. */
	struct pp_store *other = NULL;
	assert_int_equal(pp_store_open(store_url(), &other, &err), 0);
	assert_int_equal(other->ops->claim(other, NULL, "d2", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 0);
	free(runs);
	pp_store_close(other);
	assert_int_equal(s->ops->request_cancel(s, bad, &err), PP_ENOTFOUND);
}

/* Provisioning locks: one holder per pool; a second owner is refused with
 * the holder's name until the lease lapses or the holder is named as
 * dead; saves are fenced by owner; the journal survives release. */
static void test_provisioning_lock(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	char holder[PP_PROV_OWNER_MAX], *owned = NULL;

	assert_int_equal(s->ops->prov_get(s, "p", &owned, &err), 0);
	assert_string_equal(owned, "");
	free(owned);
	assert_int_equal(s->ops->prov_lock(s, "p", "h/1", 60000, NULL, &owned, holder, &err), 0);
	assert_string_equal(owned, "");
	free(owned);
	/* Another pool is another lock. */
	assert_int_equal(s->ops->prov_lock(s, "q", "h/2", 60000, NULL, &owned, holder, &err), 0);
	free(owned);
	assert_int_equal(s->ops->prov_lock(s, "p", "h/2", 60000, NULL, &owned, holder, &err),
			 PP_ECONFLICT);
	assert_string_equal(holder, "h/1");
	assert_null(owned);
	assert_int_equal(s->ops->prov_save(s, "p", "h/2", 60000, "x\n", false, &err), PP_ECONFLICT);
	assert_int_equal(s->ops->prov_save(s, "p", "h/1", 60000, "service:a\n", false, &err), 0);
	/* A holder known dead gives way; the journal comes with the lock. */
	assert_int_equal(s->ops->prov_lock(s, "p", "h/3", 60000, "h/1", &owned, holder, &err), 0);
	assert_string_equal(owned, "service:a\n");
	free(owned);
	assert_int_equal(s->ops->prov_save(s, "p", "h/1", 60000, "", false, &err), PP_ECONFLICT);
	assert_int_equal(s->ops->prov_save(s, "p", "h/3", 0, "service:a\nbinding:b\n", true, &err),
			 0);
	assert_int_equal(s->ops->prov_get(s, "p", &owned, &err), 0);
	assert_string_equal(owned, "service:a\nbinding:b\n");
	free(owned);
	/* Released: anyone may take it. A lapsed lease too. */
	assert_int_equal(s->ops->prov_lock(s, "p", "h/4", 200, NULL, &owned, holder, &err), 0);
	free(owned);
	usleep(400000);
	assert_int_equal(s->ops->prov_lock(s, "p", "h/5", 60000, NULL, &owned, holder, &err), 0);
	free(owned);
}

static bool uuid_shaped(const char *id)
{
	if (strlen(id) != 36 || id[14] != '4' || !strchr("89ab", id[19]))
		return false;
	for (int i = 0; i < 36; i++)
		if ((i == 8 || i == 13 || i == 18 || i == 23) ? id[i] != '-'
							      : !strchr("0123456789abcdef", id[i]))
			return false;
	return true;
}

/* The store id: a UUID made once, the same through every handle (each
 * dispatcher sharing the store) and after a repeated migration; another
 * store has another. */
static void test_store_id_is_stable(void **state)
{
	struct pp_store *s = *state, *other = NULL;
	struct pp_error err = {0};
	char id[PP_ID_LEN], again[PP_ID_LEN], theirs[PP_ID_LEN];
	assert_int_equal(s->ops->store_id(s, id, &err), 0);
	assert_true(uuid_shaped(id));
	assert_int_equal(s->ops->migrate(s, &err), 0);
	assert_int_equal(pp_store_open(store_url(), &other, &err), 0);
	assert_int_equal(other->ops->store_id(other, again, &err), 0);
	assert_string_equal(id, again);
	pp_store_close(other);

	char dir[] = "/tmp/pp-store-id-XXXXXX", path[64], cmd[96];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/other.db", dir);
	assert_int_equal(pp_store_open(path, &other, &err), 0);
	assert_int_equal(other->ops->store_id(other, theirs, &err), 0);
	pp_store_close(other);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	assert_true(uuid_shaped(theirs));
	assert_string_not_equal(id, theirs);
}

/* ---- deployments, schedules, queues and limits (store/deploy.h) ---- */

static struct pp_dep_rec *dep_new(const char *name, const char *pool, int nsched)
{
	struct pp_dep_rec *d = calloc(1, sizeof(*d));
	d->name = strdup(name);
	d->pool = strdup(pool);
	d->queue = strdup(PP_DEFAULT_QUEUE);
	d->job_variables = strdup("{\"image\": \"x\"}");
	d->parameters = strdup("{\"n\": 1}");
	d->tags = strdup("[]");
	snprintf(d->collision, sizeof(d->collision), "enqueue");
	d->sched = calloc((size_t)nsched, sizeof(*d->sched));
	d->nsched = nsched;
	for (int i = 0; i < nsched; i++) {
		struct pp_dep_sched *c = &d->sched[i];
		snprintf(c->key, sizeof(c->key), "k%d", i);
		snprintf(c->kind, sizeof(c->kind), "interval");
		c->interval = 60 * (i + 1);
		c->active = true;
		snprintf(c->catchup, sizeof(c->catchup), "skip");
		snprintf(c->overlap, sizeof(c->overlap), "allow");
	}
	return d;
}

/* A slot run of schedule skey of dep at `at` ms, through materialise. */
static int materialise(struct pp_store *s, const char *dep, const char *skey, int64_t at,
		       int *inserted, bool *applied)
{
	struct pp_dep_rec *d;
	int n;
	struct pp_error err = {0};
	assert_int_equal(pp_deploy_list(s, dep, &d, &n, &err), 0);
	assert_int_equal(n, 1);
	int64_t gen = -1;
	for (int i = 0; i < d->nsched; i++)
		if (!strcmp(d->sched[i].key, skey))
			gen = d->sched[i].gen;
	struct pp_run_rec r = {0};
	snprintf(r.pool, sizeof(r.pool), "%s", d->pool);
	r.name = (char *)dep;
	r.deployment = (char *)dep;
	r.queue = d->queue;
	char key[128];
	snprintf(key, sizeof(key), "%s|%s|%lld", dep, skey, (long long)at);
	r.slot_key = key;
	r.scheduled_ms = at;
	struct pp_slot_batch b = {.deployment = dep,
				  .skey = skey,
				  .expect_gen = gen,
				  .cursor = at / 1000,
				  .runs = &r,
				  .nruns = 1};
	int rc = pp_deploy_materialise(s, &b, inserted, applied, &err);
	pp_dep_recs_free(d, n);
	return rc;
}

static long count_runs(struct pp_store *s, int state)
{
	struct pp_run_rec *runs;
	int n;
	struct pp_error err = {0};
	struct pp_run_filter f = {.state = state};
	assert_int_equal(s->ops->list(s, &f, &runs, &n, &err), 0);
	pp_run_recs_free(runs, n);
	return n;
}

/* Applying the same deployment twice changes nothing; a removed schedule
 * goes with its unstarted future runs, a kept one keeps its cursor; the
 * same slot is never made twice, and a pass that read an older generation
 * writes nothing. */
static void test_deploy_apply_is_idempotent(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	struct pp_apply_result res = {0};
	struct pp_dep_rec *d = dep_new("nightly", "a", 2);
	int64_t now = pp_wall_ms() / 1000;
	assert_int_equal(pp_deploy_apply(s, d, 1, now, &res, &err), 0);
	assert_int_equal(res.created, 1);
	assert_int_equal(res.sched_added, 2);
	const char *each[1] = {NULL};
	res.each = each;
	assert_int_equal(pp_deploy_apply(s, d, 1, now, &res, &err), 0);
	assert_int_equal(res.created + res.updated + res.sched_added + res.sched_removed, 0);
	assert_int_equal(res.unchanged, 1);
	assert_string_equal(each[0], "unchanged");
	res.each = NULL;
	struct pp_dep_rec *got;
	int n;
	assert_int_equal(pp_deploy_list(s, NULL, &got, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(got->parameters, "{\"n\": 1}");
	assert_int_equal(got->nsched, 2);
	assert_string_equal(got->sched[1].key, "k1");
	assert_int_equal(got->sched[1].interval, 120);
	assert_int_equal(got->sched[0].cursor, now);
	pp_dep_recs_free(got, n);

	int64_t future = (now + 3600) * 1000;
	int ins;
	bool applied;
	assert_int_equal(materialise(s, "nightly", "k0", future, &ins, &applied), 0);
	assert_true(applied);
	assert_int_equal(ins, 1);
	assert_int_equal(materialise(s, "nightly", "k1", future, &ins, &applied), 0);
	assert_int_equal(ins, 1);
	/* The same slot again: nothing new. */
	assert_int_equal(materialise(s, "nightly", "k1", future, &ins, &applied), 0);
	assert_true(applied);
	assert_int_equal(ins, 0);
	assert_int_equal(count_runs(s, PP_ST_SCHEDULED), 2);

	/* Drop schedule k0: its future run goes, k1's stays with its cursor. */
	free(d->sched[0].cron);
	d->sched[0] = d->sched[1];
	d->nsched = 1;
	assert_int_equal(pp_deploy_apply(s, d, 1, now + 10, &res, &err), 0);
	assert_int_equal(res.sched_removed, 1);
	assert_int_equal(res.runs_removed, 1);
	assert_int_equal(res.updated, 1);
	assert_int_equal(count_runs(s, PP_ST_SCHEDULED), 1);
	assert_int_equal(pp_deploy_list(s, "nightly", &got, &n, &err), 0);
	assert_int_equal(got->nsched, 1);
	assert_int_equal(got->sched[0].cursor, future / 1000);
	int64_t stale = got->sched[0].gen - 1;
	pp_dep_recs_free(got, n);

	/* A pass holding an older generation writes nothing. */
	struct pp_run_rec r = {0};
	snprintf(r.pool, sizeof(r.pool), "a");
	r.deployment = (char *)"nightly";
	r.slot_key = (char *)"nightly|k1|late";
	r.scheduled_ms = future + 60000;
	struct pp_slot_batch b = {.deployment = "nightly",
				  .skey = "k1",
				  .expect_gen = stale,
				  .cursor = now + 7200,
				  .runs = &r,
				  .nruns = 1};
	assert_int_equal(pp_deploy_materialise(s, &b, &ins, &applied, &err), 0);
	assert_false(applied);
	assert_int_equal(count_runs(s, PP_ST_SCHEDULED), 1);

	/* Pausing removes the unstarted future runs; resuming starts from now. */
	int removed;
	assert_int_equal(pp_deploy_pause(s, "nightly", NULL, true, now + 20, &removed, &err), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(count_runs(s, PP_ST_SCHEDULED), 0);
	assert_int_equal(materialise(s, "nightly", "k1", future, &ins, &applied), 0);
	assert_false(applied); /* paused: no pass writes */
	assert_int_equal(pp_deploy_pause(s, "nightly", NULL, false, now + 30, &removed, &err), 0);
	assert_int_equal(pp_deploy_list(s, "nightly", &got, &n, &err), 0);
	assert_false(got->paused);
	assert_int_equal(got->sched[0].cursor, now + 30);
	pp_dep_recs_free(got, n);
	assert_int_equal(pp_deploy_pause(s, "nope", NULL, true, now, &removed, &err), PP_ENOTFOUND);
	assert_int_equal(pp_deploy_delete(s, "nightly", &removed, &err), 0);
	assert_int_equal(pp_deploy_list(s, NULL, &got, &n, &err), 0);
	assert_int_equal(n, 0);
	free(got);
	pp_dep_recs_free(d, 1);
}

/* All or nothing: a deployment naming a queue its pool lacks fails the
 * whole apply. */
static void test_deploy_apply_all_or_nothing(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	struct pp_apply_result res = {0};
	struct pp_dep_rec *v = calloc(2, sizeof(*v));
	struct pp_dep_rec *a = dep_new("first", "a", 1), *b = dep_new("second", "a", 0);
	v[0] = *a;
	v[1] = *b;
	free(a);
	free(b);
	free(v[1].queue);
	v[1].queue = strdup("urgent");
	assert_int_equal(pp_deploy_apply(s, v, 2, 1000, &res, &err), PP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "second"));
	assert_non_null(strstr(err.msg, "urgent"));
	struct pp_dep_rec *got;
	int n;
	assert_int_equal(pp_deploy_list(s, NULL, &got, &n, &err), 0);
	assert_int_equal(n, 0);
	free(got);
	assert_int_equal(pp_queue_set(s, "a", "urgent", 1, -1, -1, &err), 0);
	assert_int_equal(pp_deploy_apply(s, v, 2, 1000, &res, &err), 0);
	assert_int_equal(res.created, 2);
	/* Priorities are unique per pool. */
	assert_int_equal(pp_queue_set(s, "a", "bulk", 1, -1, -1, &err), PP_ECONFLICT);
	assert_int_equal(pp_queue_set(s, "a", "bulk", 0, 2, -1, &err), 0);
	struct pp_queue_rec *qs;
	assert_int_equal(pp_queue_list(s, "a", &qs, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(qs[1].name, "bulk");
	assert_int_equal(qs[1].priority, 2);
	assert_int_equal(qs[1].concurrency_limit, 2);
	pp_queue_recs_free(qs, n);
	pp_dep_recs_free(v, 2);
}

static void insert_run(struct pp_store *s, const char *pool, const char *queue, const char *dep,
		       int64_t at, char *id)
{
	struct pp_run_rec r = {0};
	snprintf(r.pool, sizeof(r.pool), "%s", pool);
	r.queue = (char *)queue;
	r.deployment = (char *)dep;
	r.source = dep ? (char *)"deployment" : NULL;
	r.scheduled_ms = at;
	r.state = PP_ST_SCHEDULED;
	struct pp_error err = {0};
	if (s->ops->insert(s, &r, &err))
		fail_msg("insert: %s", err.msg);
	memcpy(id, r.id, PP_ID_LEN);
	r.queue = r.deployment = r.source = NULL;
}

static int claim_ids(struct pp_store *s, const char *pool, int max, char ids[][PP_ID_LEN])
{
	struct pp_run_rec *runs;
	int n;
	struct pp_error err = {0};
	assert_int_equal(s->ops->claim(s, pool, "d1", 60000, max, &runs, &n, &err), 0);
	for (int i = 0; i < n; i++)
		memcpy(ids[i], runs[i].id, PP_ID_LEN);
	pp_run_recs_free(runs, n);
	return n;
}

static char *waiting_of(struct pp_store *s, const char *id)
{
	struct pp_run_rec r;
	struct pp_error err = {0};
	assert_int_equal(s->ops->get(s, id, &r, NULL, NULL, &err), 0);
	char *w = r.waiting ? strdup(r.waiting) : NULL;
	pp_run_rec_free(&r);
	return w;
}

static void start(struct pp_store *s, const char *id)
{
	struct pp_run_rec r;
	struct pp_error err = {0};
	assert_int_equal(s->ops->get(s, id, &r, NULL, NULL, &err), 0);
	struct pp_run_update u = {.state = PP_ST_RUNNING, .attempt = 1, .next_attempt_ms = -1};
	assert_int_equal(s->ops->update(s, id, r.fence, &u, &err), 0);
	pp_run_rec_free(&r);
}

static void finish_run(struct pp_store *s, const char *id)
{
	struct pp_run_rec r;
	struct pp_error err = {0};
	assert_int_equal(s->ops->get(s, id, &r, NULL, NULL, &err), 0);
	struct pp_run_update u = {.state = PP_ST_SUCCEEDED,
				  .attempt = -1,
				  .next_attempt_ms = -1,
				  .release_lease = true};
	assert_int_equal(s->ops->update(s, id, r.fence, &u, &err), 0);
	pp_run_rec_free(&r);
}

/* Queue priority first; pool, queue and deployment limits count the runs
 * under way in the store; a held-back run says why; pauses hold runs. */
static void test_claim_within_limits(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	int64_t t = pp_wall_ms() - 10000;
	assert_int_equal(pp_queue_set(s, "a", "urgent", 1, -1, -1, &err), 0);
	assert_int_equal(pp_queue_set(s, "a", "bulk", 2, 1, -1, &err), 0);
	char b1[PP_ID_LEN], b2[PP_ID_LEN], u1[PP_ID_LEN], plain[PP_ID_LEN], got[8][PP_ID_LEN];
	insert_run(s, "a", "bulk", NULL, t, b1);
	insert_run(s, "a", "bulk", NULL, t + 1, b2);
	insert_run(s, "a", NULL, NULL, t - 5000, plain); /* default queue: after set ones */
	insert_run(s, "a", "urgent", NULL, t + 2, u1);
	assert_int_equal(claim_ids(s, "a", 1, got), 1);
	assert_string_equal(got[0], u1);
	/* bulk's limit is 1: b1 comes, b2 waits, the default queue's follows. */
	assert_int_equal(claim_ids(s, "a", 8, got), 2);
	assert_string_equal(got[0], b1);
	assert_string_equal(got[1], plain);
	char *w = waiting_of(s, b2);
	assert_non_null(w);
	assert_non_null(strstr(w, "queue bulk concurrency limit 1"));
	free(w);
	start(s, b1);
	finish_run(s, b1);
	assert_int_equal(claim_ids(s, "a", 8, got), 1);
	assert_string_equal(got[0], b2);

	/* Pool limit: 3 under way (u1, plain, b2) against a limit of 3. */
	char p1[PP_ID_LEN];
	assert_int_equal(pp_pool_set(s, "a", 3, -1, &err), 0);
	insert_run(s, "a", "urgent", NULL, t, p1);
	assert_int_equal(claim_ids(s, "a", 8, got), 0);
	w = waiting_of(s, p1);
	assert_non_null(strstr(w, "pool a concurrency limit 3"));
	free(w);
	assert_int_equal(pp_pool_set(s, "a", 0, 1, &err), 0);
	assert_int_equal(claim_ids(s, "a", 8, got), 0);
	w = waiting_of(s, p1);
	assert_non_null(strstr(w, "pool a is paused"));
	free(w);
	assert_int_equal(pp_pool_set(s, "a", -1, 0, &err), 0);
	assert_int_equal(claim_ids(s, "a", 8, got), 1);
	assert_null(waiting_of(s, p1));
	struct pp_pool_rec *pools;
	int n;
	assert_int_equal(pp_pool_list(s, true, &pools, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pools[0].by_state[PP_ST_SCHEDULED], 4);
	assert_false(pools[0].paused);
	pp_pool_recs_free(pools, n);
	/* Settings alone: the same pool, its runs not counted. */
	assert_int_equal(pp_pool_list(s, false, &pools, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(pools[0].name, "a");
	assert_int_equal(pools[0].by_state[PP_ST_SCHEDULED], 0);
	pp_pool_recs_free(pools, n);
}

/* Pool "a" with work queue (priority 1, limit) holding n due runs, and one
 * due run in its default queue, whose id goes to other. */
static void queue_with_runs(struct pp_store *s, const char *queue, int limit, int n, char *other)
{
	struct pp_error err = {0};
	int64_t t = pp_wall_ms() - 10000;
	assert_int_equal(pp_queue_set(s, "a", queue, 1, limit, -1, &err), 0);
	char id[PP_ID_LEN];
	for (int i = 0; i < n; i++)
		insert_run(s, "a", queue, NULL, t + i, id);
	insert_run(s, "a", NULL, NULL, t, other);
}

/* The queue list counts each queue's runs under way, claimed or in
 * flight, and its due runs nobody holds; finished runs in neither. */
static void test_queue_list_counts(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	char other[PP_ID_LEN];
	queue_with_runs(s, "q1", 0, 4, other);
	struct pp_run_rec *runs;
	int n;
	assert_int_equal(s->ops->claim(s, "a", "d1", 60000, 3, &runs, &n, &err), 0);
	assert_int_equal(n, 3);
	struct pp_run_update u = {.state = PP_ST_SUBMITTED, .attempt = -1, .next_attempt_ms = -1};
	assert_int_equal(s->ops->update(s, runs[0].id, runs[0].fence, &u, &err), 0);
	u.state = PP_ST_SUCCEEDED;
	u.release_lease = true;
	assert_int_equal(s->ops->update(s, runs[1].id, runs[1].fence, &u, &err), 0);
	pp_run_recs_free(runs, n);
	struct pp_queue_rec *qs;
	int nq;
	assert_int_equal(pp_queue_list(s, "a", &qs, &nq, &err), 0);
	assert_int_equal(nq, 1);
	assert_string_equal(qs[0].name, "q1");
	assert_int_equal(qs[0].active, 2); /* one SUBMITTED, one claimed */
	assert_int_equal(qs[0].waiting, 1);
	pp_queue_recs_free(qs, nq);
}

/* Many due runs held back by their queue's limit do not hide the runs of
 * the queues after it. */
static void test_held_runs_do_not_crowd_out_others(void **state)
{
	struct pp_store *s = *state;
	char last[PP_ID_LEN], got[4][PP_ID_LEN];
	queue_with_runs(s, "first", 1, 150, last);
	assert_int_equal(claim_ids(s, "a", 2, got), 2);
	assert_string_equal(got[1], last);
}

/* A deployment's limit with collision cancel_new cancels the new run; its
 * schedule's overlap policies skip, buffer one, or cancel the other. */
static void test_deployment_limit_and_overlap(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	struct pp_apply_result res = {0};
	struct pp_dep_rec *d = dep_new("job", "a", 1);
	d->concurrency_limit = 1;
	snprintf(d->collision, sizeof(d->collision), "cancel_new");
	int64_t now = pp_wall_ms();
	assert_int_equal(pp_deploy_apply(s, d, 1, now / 1000 - 600, &res, &err), 0);
	char r1[PP_ID_LEN], r2[PP_ID_LEN], got[4][PP_ID_LEN];
	insert_run(s, "a", NULL, "job", now - 2000, r1);
	insert_run(s, "a", NULL, "job", now - 1000, r2);
	assert_int_equal(claim_ids(s, "a", 4, got), 1);
	assert_string_equal(got[0], r1);
	assert_int_equal(count_runs(s, PP_ST_CANCELLED), 1);
	struct pp_run_rec rec;
	assert_int_equal(s->ops->get(s, r2, &rec, NULL, NULL, &err), 0);
	assert_int_equal(rec.state, PP_ST_CANCELLED);
	assert_non_null(strstr(rec.last_error, "cancel_new"));
	pp_run_rec_free(&rec);
	start(s, r1);

	/* No limit now; overlap policies of the schedule decide. */
	const char *policies[] = {"skip", "buffer_one", "cancel_other"};
	for (int i = 0; i < 3; i++) {
		d->concurrency_limit = 0;
		snprintf(d->sched[0].overlap, sizeof(d->sched[0].overlap), "%s", policies[i]);
		assert_int_equal(pp_deploy_apply(s, d, 1, now / 1000 - 600, &res, &err), 0);
		long cancelled = count_runs(s, PP_ST_CANCELLED);
		int ins;
		bool applied;
		assert_int_equal(materialise(s, "job", "k0", now - 500 + i, &ins, &applied), 0);
		assert_int_equal(ins, 1);
		assert_int_equal(materialise(s, "job", "k0", now - 400 + i, &ins, &applied), 0);
		int n = claim_ids(s, "a", 4, got);
		if (i == 0) { /* skip: both slots dropped while r1 runs */
			assert_int_equal(n, 0);
			assert_int_equal(count_runs(s, PP_ST_CANCELLED), cancelled + 2);
		} else if (i == 1) { /* buffer_one: the older waits, the newer goes */
			assert_int_equal(n, 0);
			assert_int_equal(count_runs(s, PP_ST_CANCELLED), cancelled + 1);
			assert_int_equal(count_runs(s, PP_ST_SCHEDULED), 1);
			struct pp_run_rec *sch;
			int ns;
			struct pp_run_filter f = {.state = PP_ST_SCHEDULED};
			assert_int_equal(s->ops->list(s, &f, &sch, &ns, &err), 0);
			assert_non_null(strstr(sch[0].waiting, "buffer_one"));
			/* Once r1 ends, the buffered run starts. */
			finish_run(s, r1);
			assert_int_equal(claim_ids(s, "a", 4, got), 1);
			assert_string_equal(got[0], sch[0].id);
			start(s, got[0]);
			memcpy(r1, got[0], PP_ID_LEN);
			pp_run_recs_free(sch, ns);
		} else { /* cancel_other: both start, each asking the other to stop */
			assert_int_equal(n, 2);
			assert_int_equal(s->ops->get(s, r1, &rec, NULL, NULL, &err), 0);
			assert_true(rec.cancel_requested);
			pp_run_rec_free(&rec);
		}
	}
	pp_dep_recs_free(d, 1);
}

/* Four processes claim at once from a pool with a store-wide limit of 5
 * (and 60 due runs): together they lease exactly 5, however the claims
 * interleave, since the limit is counted inside each claim's transaction
 * (PostgreSQL: one claim of a pool at a time). */
static void test_concurrent_claims_hold_the_limit(void **state)
{
	struct pp_store *s = *state;
	enum { RUNS = 60, PROCS = 4, LIMIT = 5 };
	struct pp_error err = {0};
	assert_int_equal(pp_pool_set(s, "a", LIMIT, -1, &err), 0);
	for (int i = 0; i < RUNS; i++)
		schedule(s, "a", 0, pp_wall_ms() - 1, NULL);
	pp_store_close(s);
	*state = NULL;
	int fds[PROCS][2], hold[2], go[2];
	pid_t pids[PROCS];
	assert_int_equal(pipe(hold), 0);
	assert_int_equal(pipe(go), 0);
	for (int p = 0; p < PROCS; p++) {
		assert_int_equal(pipe(fds[p]), 0);
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			struct pp_store *c = NULL;
			char owner[16], byte;
			snprintf(owner, sizeof(owner), "proc%d", p);
			close(hold[1]);
			close(go[1]);
			if (pp_store_open(store_url(), &c, &err))
				_exit(2);
			(void)!read(go[0], &byte, 1); /* all start together */
			int mine = 0;
			for (int tries = 0; tries < 20; tries++) {
				struct pp_run_rec *runs = NULL;
				int n = 0;
				int rc = c->ops->claim(c, "a", owner, 60000, 2, &runs, &n, &err);
				if (rc && !pp_err_retryable(rc))
					_exit(3);
				mine += rc ? 0 : n;
				pp_run_recs_free(runs, n);
				usleep(1000);
			}
			(void)!write(fds[p][1], &mine, sizeof(mine));
			(void)!read(hold[0], &byte, 1);
			pp_store_close(c);
			_exit(0);
		}
		close(fds[p][1]);
	}
	close(hold[0]);
	close(go[0]);
	close(go[1]);
	int total = 0;
	for (int p = 0; p < PROCS; p++) {
		int mine = 0;
		assert_int_equal(read(fds[p][0], &mine, sizeof(mine)), (ssize_t)sizeof(mine));
		total += mine;
		close(fds[p][0]);
	}
	close(hold[1]);
	for (int p = 0; p < PROCS; p++) {
		int st;
		assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
		if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			fail_msg("claimer %d: status %d", p, st);
	}
	if (pp_store_open(store_url(), (struct pp_store **)state, &err))
		fail_msg("reopen %s: %s", store_url(), err.msg);
	assert_int_equal(total, LIMIT);
}

/* store/db.h's lease, which the limit-aware claim calls once for the runs
 * it judged free: each id its own answer, in the order asked, whatever
 * order the backend finds them in; a run held, or no run, is not leased. */
static void test_lease_answers_each_run_in_order(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	char a[PP_ID_LEN], b[PP_ID_LEN], c[PP_ID_LEN], d[PP_ID_LEN];
	int64_t due = pp_wall_ms() - 1000;
	schedule(s, "a", 0, due, a);
	schedule(s, "a", 0, due + 1, b);
	schedule(s, "a", 0, due + 2, c);
	schedule(s, "a", 0, due + 3, d);
	struct pp_run_rec *held;
	int n;
	assert_int_equal(s->ops->claim(s, "a", "d1", 60000, 1, &held, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(held[0].id, a);
	const char *const ids[] = {d, "no-such-run", b, a, c};
	enum { N = sizeof(ids) / sizeof(ids[0]) };
	struct pp_run_rec out[N];
	bool got[N];
	memset(out, 0, sizeof(out));
	assert_int_equal(pp_store_db(s)->lease(s, ids, N, "d2", 60000, out, got, &err), 0);
	const bool want[N] = {true, false, true, false, true};
	for (int i = 0; i < N; i++) {
		assert_int_equal(got[i], want[i]);
		if (got[i]) {
			assert_string_equal(out[i].id, ids[i]);
			assert_int_equal(out[i].fence, 1);
			pp_run_rec_free(&out[i]);
		}
	}
	/* Leased now: none of them is free a second time. */
	assert_int_equal(pp_store_db(s)->lease(s, ids, N, "d3", 60000, out, got, &err), 0);
	for (int i = 0; i < N; i++)
		assert_false(got[i]);
	assert_int_equal(pp_store_db(s)->lease(s, ids, 0, "d3", 60000, out, got, &err), 0);
	pp_run_recs_free(held, n);
}

/* Run id's events: whether one of state st says msg, and how many do. */
static int events_saying(struct pp_store *s, const char *id, const char *st, const char *msg)
{
	struct pp_run_rec r;
	struct pp_run_event *ev = NULL;
	int nev = 0, found = 0;
	struct pp_error err = {0};
	assert_int_equal(s->ops->get(s, id, &r, &ev, &nev, &err), 0);
	for (int i = 0; i < nev; i++)
		found += !strcmp(ev[i].state, st) && !strcmp(ev[i].message, msg);
	pp_run_rec_free(&r);
	pp_run_events_free(ev, nev);
	return found;
}

/* claim_intents: each due run nobody held is leased as its next try's
 * intent (SUBMITTING, attempt + 1, its first key unless it has one, the
 * event), through every form of the claim: a plain pool, a pool with work
 * queues, one with a limit (store/deploy.c's lease), where the intent
 * holds a slot; a run somebody held comes back as it was; a withdrawn
 * intent is taken again as the same try. */
static void test_claim_takes_due_runs_as_intents(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	int64_t due = pp_wall_ms() - 1000;
	char a[PP_ID_LEN], held[PP_ID_LEN], rerun[PP_ID_LEN], q[PP_ID_LEN], l1[PP_ID_LEN],
		l2[PP_ID_LEN];
	schedule(s, "a", 0, due, a);
	schedule(s, "a", 0, due - 20, held);
	schedule(s, "a", 0, due - 10, rerun);
	struct pp_run_rec *runs;
	int n;
	/* Without the flag a claim only leases. */
	assert_int_equal(s->ops->claim(s, "a", "d0", 60000, 2, &runs, &n, &err), 0);
	assert_int_equal(n, 2);
	for (int i = 0; i < n; i++) {
		assert_int_equal(runs[i].state, PP_ST_SCHEDULED);
		assert_false(runs[i].intent_claimed);
		assert_int_equal(runs[i].attempt, 0);
	}
	struct pp_run_update sub = {.state = PP_ST_SUBMITTED,
				    .attempt = 1,
				    .next_attempt_ms = -1,
				    .release_lease = true};
	assert_string_equal(runs[0].id, held);
	assert_int_equal(s->ops->update(s, held, runs[0].fence, &sub, &err), 0);
	struct pp_run_update done = {.state = PP_ST_SUCCEEDED,
				     .attempt = -1,
				     .next_attempt_ms = -1,
				     .release_lease = true};
	assert_string_equal(runs[1].id, rerun);
	assert_int_equal(s->ops->update(s, rerun, runs[1].fence, &done, &err), 0);
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->reopen(s, rerun, due - 10, NULL, "rerun", &err), 0);

	s->claim_intents = true;
	assert_int_equal(s->ops->claim(s, "a", "d1", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 3);
	/* The run somebody held first, as it was. */
	assert_string_equal(runs[0].id, held);
	assert_int_equal(runs[0].state, PP_ST_SUBMITTED);
	assert_int_equal(runs[0].attempt, 1);
	assert_false(runs[0].intent_claimed);
	assert_string_equal(runs[1].id, rerun);
	assert_string_equal(runs[2].id, a);
	char key[PP_ID_LEN + 8];
	for (int i = 1; i < 3; i++) {
		assert_int_equal(runs[i].state, PP_ST_SUBMITTING);
		assert_int_equal(runs[i].attempt, 1);
		assert_true(runs[i].intent_claimed);
		assert_int_equal(events_saying(s, runs[i].id, "SUBMITTING", "submitting (try 1)"),
				 1);
	}
	snprintf(key, sizeof(key), "%s-2", rerun); /* the rerun's own key, kept */
	assert_string_equal(runs[1].idem_key, key);
	snprintf(key, sizeof(key), "%s" PP_FIRST_KEY, a);
	assert_string_equal(runs[2].idem_key, key);
	/* As the store holds it. */
	struct pp_run_rec got;
	assert_int_equal(s->ops->get(s, a, &got, NULL, NULL, &err), 0);
	assert_int_equal(got.state, PP_ST_SUBMITTING);
	assert_int_equal(got.attempt, 1);
	assert_string_equal(got.idem_key, key);
	assert_int_equal(got.fence, runs[2].fence);
	pp_run_rec_free(&got);
	/* Withdrawn (released before its try): taken again as try 1. */
	struct pp_run_update back = {.state = PP_ST_SCHEDULED,
				     .attempt = 0,
				     .next_attempt_ms = -1,
				     .release_lease = true,
				     .event = "released before submission"};
	assert_int_equal(s->ops->update(s, a, runs[2].fence, &back, &err), 0);
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->claim(s, "a", "d2", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].id, a);
	assert_int_equal(runs[0].attempt, 1);
	assert_true(runs[0].intent_claimed);
	assert_string_equal(runs[0].idem_key, key);
	assert_int_equal(events_saying(s, a, "SUBMITTING", "submitting (try 1)"), 2);
	pp_run_recs_free(runs, n);

	/* A pool with work queues. */
	assert_int_equal(pp_queue_set(s, "q", "urgent", 1, -1, -1, &err), 0);
	insert_run(s, "q", "urgent", NULL, due, q);
	assert_int_equal(s->ops->claim(s, "q", "d1", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].id, q);
	assert_int_equal(runs[0].state, PP_ST_SUBMITTING);
	assert_true(runs[0].intent_claimed);
	assert_int_equal(events_saying(s, q, "SUBMITTING", "submitting (try 1)"), 1);
	pp_run_recs_free(runs, n);

	/* A pool with a limit of 1: the intent holds its slot. */
	assert_int_equal(pp_pool_set(s, "lim", 1, -1, &err), 0);
	schedule(s, "lim", 0, due, l1);
	schedule(s, "lim", 0, due + 1, l2);
	assert_int_equal(s->ops->claim(s, "lim", "d1", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].id, l1);
	assert_int_equal(runs[0].state, PP_ST_SUBMITTING);
	assert_int_equal(runs[0].attempt, 1);
	assert_true(runs[0].intent_claimed);
	assert_int_equal(events_saying(s, l1, "SUBMITTING", "submitting (try 1)"), 1);
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->claim(s, "lim", "d2", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 0);
	free(runs);
	assert_int_equal(events_saying(s, l2, "SUBMITTING", "submitting (try 1)"), 0);
}

/* live_ids: a source's runs that may still start or run a job, whose
 * cancel nobody requested, due (held or not) or in flight; never a
 * finished one, one being cancelled, or another source's. */
static void test_live_ids_of_a_source(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	static const struct {
		const char *source;
		enum pp_store_state state;
		bool live;
	} runs[] = {
		{"prefect", PP_ST_SCHEDULED, true},   {"prefect", PP_ST_SCHEDULED, true},
		{"prefect", PP_ST_SUBMITTING, true},  {"prefect", PP_ST_SUBMITTED, true},
		{"prefect", PP_ST_RUNNING, true},     {"prefect", PP_ST_RUNNING, false},
		{"prefect", PP_ST_CANCELLING, false}, {"prefect", PP_ST_SUCCEEDED, false},
		{"prefect", PP_ST_FAILED, false},     {"local", PP_ST_SCHEDULED, false},
		{"local", PP_ST_RUNNING, false},
	};
	enum { NRUNS = sizeof(runs) / sizeof(runs[0]) };
	char ids[NRUNS][PP_ID_LEN];
	for (int i = 0; i < NRUNS; i++) {
		char ref[16];
		snprintf(ref, sizeof(ref), "ref-%d", i);
		struct pp_run_rec r = {.scheduled_ms = pp_wall_ms() - 1, .state = runs[i].state};
		snprintf(r.pool, sizeof(r.pool), "p");
		r.source = (char *)runs[i].source;
		r.source_ref = ref;
		assert_int_equal(s->ops->insert(s, &r, &err), 0);
		memcpy(ids[i], r.id, PP_ID_LEN);
	}
	/* The second due run is held by a claim; the second RUNNING one is
	 * being cancelled. */
	struct pp_run_rec *claimed;
	int n;
	assert_int_equal(s->ops->claim(s, "p", "d1", 60000, 1, &claimed, &n, &err), 0);
	assert_int_equal(n, 1);
	pp_run_recs_free(claimed, n);
	assert_int_equal(s->ops->request_cancel(s, ids[5], &err), 0);
	char(*live)[PP_ID_LEN];
	assert_int_equal(s->ops->live_ids(s, "prefect", &live, &n, &err), 0);
	int want = 0;
	for (int i = 0; i < NRUNS; i++) {
		bool found = false;
		for (int k = 0; k < n; k++)
			found = found || !strcmp(live[k], ids[i]);
		if (found != runs[i].live)
			fail_msg("run %d (%s, %s): %s", i, runs[i].source,
				 pp_store_state_name(runs[i].state), found ? "listed" : "missing");
		want += runs[i].live;
	}
	assert_int_equal(n, want);
	free(live);
	assert_int_equal(s->ops->live_ids(s, "nobody", &live, &n, &err), 0);
	assert_int_equal(n, 0);
	free(live);
}

#define CONTRACT(SETUP)                                                                            \
	{                                                                                          \
		cmocka_unit_test_setup_teardown(test_claim_orders_and_leases, SETUP,               \
						store_teardown),                                   \
			cmocka_unit_test_setup_teardown(test_fencing_rejects_stale_writer, SETUP,  \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_counts_follow_the_runs, SETUP,        \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_renew_keeps_lease, SETUP,             \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(                                           \
				test_released_runs_are_reclaimed_terminal_never, SETUP,            \
				store_teardown),                                                   \
			cmocka_unit_test_setup_teardown(                                           \
				test_release_all_frees_only_the_owners_runs, SETUP,                \
				store_teardown),                                                   \
			cmocka_unit_test_setup_teardown(test_concurrent_claims_never_share_a_run,  \
							SETUP, store_teardown),                    \
			cmocka_unit_test_setup_teardown(test_cancel_get_list, SETUP,               \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_list_shows_every_run_once, SETUP,     \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_source_ref_is_unique, SETUP,          \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_unknown_state_is_quarantined, SETUP,  \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_provisioning_lock, SETUP,             \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_store_id_is_stable, SETUP,            \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_reopen_finished_run, SETUP,           \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_deploy_apply_is_idempotent, SETUP,    \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_deploy_apply_all_or_nothing, SETUP,   \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_claim_within_limits, SETUP,           \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_queue_list_counts, SETUP,             \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_held_runs_do_not_crowd_out_others,    \
							SETUP, store_teardown),                    \
			cmocka_unit_test_setup_teardown(test_deployment_limit_and_overlap, SETUP,  \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_concurrent_claims_hold_the_limit,     \
							SETUP, store_teardown),                    \
			cmocka_unit_test_setup_teardown(test_lease_answers_each_run_in_order,      \
							SETUP, store_teardown),                    \
			cmocka_unit_test_setup_teardown(test_live_ids_of_a_source, SETUP,          \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_claim_takes_due_runs_as_intents,      \
							SETUP, store_teardown),                    \
	}

int main(void)
{
	const struct CMUnitTest on_sqlite[] = CONTRACT(sqlite_setup);
	const struct CMUnitTest on_pg[] = CONTRACT(pg_setup);
	int failed = cmocka_run_group_tests_name("store contract on SQLite", on_sqlite, NULL, NULL);
	return failed + cmocka_run_group_tests_name("store contract on PostgreSQL", on_pg,
						    pg_server_up, pg_server_down);
}
