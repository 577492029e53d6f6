/* The store contract: what every run-store backend promises the loop
 * (store/store.h), run against SQLite and PostgreSQL alike. Claim order and
 * leases, fencing of stale writers, renewal, release and re-claim, terminal
 * runs never claimed, concurrent claimers never sharing a run, cancellation,
 * lookup by id prefix, listing, unique source references, and rows with an
 * unknown state quarantined instead of blocking their pool, and provisioning
 * locks with their journals. What only one
 * backend does (SQLite's dead-owner detection, PostgreSQL's schema versions,
 * LISTEN/NOTIFY and reconnection) is tested in sqlite.c and pg.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <sqlite3.h>

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
	int64_t due;
	assert_int_equal(s->ops->next_due(s, &due, &err), 0);
	assert_int_equal(due, now + 60000);
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

/* Four processes claim 400 runs in small batches at once, each on its own
 * handle: every run is leased exactly once. Each claimer stays alive until
 * all are done, since a dead owner's leases are free at once (SQLite). */
static void test_concurrent_claims_never_share_a_run(void **state)
{
	struct pp_store *s = *state;
	enum { RUNS = 400, PROCS = 4 };
	static const char done[PP_ID_LEN]; /* all zero: this claimer found no more */
	for (int i = 0; i < RUNS; i++)
		schedule(s, "a", i % 3, pp_wall_ms() - 1, NULL);
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
	char prefix[9];
	snprintf(prefix, sizeof(prefix), "%s", a);
	assert_int_equal(s->ops->get(s, prefix, &r, NULL, NULL, &err), 0);
	assert_string_equal(r.id, a);
	assert_int_equal(r.state, PP_ST_CANCELLED);
	assert_true(r.cancel_requested);
	pp_run_rec_free(&r);
	assert_int_equal(s->ops->get(s, "no-such-run", &r, NULL, NULL, &err), PP_ENOTFOUND);
	/* `%` and `_` are characters, not wildcards: no run id holds them. */
	assert_int_equal(s->ops->get(s, "%", &r, NULL, NULL, &err), PP_ENOTFOUND);
	snprintf(prefix, sizeof(prefix), "%.7s_", a);
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

	/* Never claimed, by anyone, even once every lease is free; never due. */
	struct pp_store *other = NULL;
	assert_int_equal(pp_store_open(store_url(), &other, &err), 0);
	assert_int_equal(other->ops->claim(other, NULL, "d2", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 0);
	free(runs);
	pp_store_close(other);
	assert_int_equal(s->ops->request_cancel(s, bad, &err), PP_ENOTFOUND);
	schedule(s, "a", 0, pp_wall_ms() + 3600000, NULL);
	int64_t due = 0;
	assert_int_equal(s->ops->next_due(s, &due, &err), 0);
	assert_true(due > pp_wall_ms());
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

#define CONTRACT(SETUP)                                                                            \
	{                                                                                          \
		cmocka_unit_test_setup_teardown(test_claim_orders_and_leases, SETUP,               \
						store_teardown),                                   \
			cmocka_unit_test_setup_teardown(test_fencing_rejects_stale_writer, SETUP,  \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_renew_keeps_lease, SETUP,             \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(                                           \
				test_released_runs_are_reclaimed_terminal_never, SETUP,            \
				store_teardown),                                                   \
			cmocka_unit_test_setup_teardown(test_concurrent_claims_never_share_a_run,  \
							SETUP, store_teardown),                    \
			cmocka_unit_test_setup_teardown(test_cancel_get_list, SETUP,               \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_source_ref_is_unique, SETUP,          \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_unknown_state_is_quarantined, SETUP,  \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_provisioning_lock, SETUP,             \
							store_teardown),                           \
	}

int main(void)
{
	const struct CMUnitTest on_sqlite[] = CONTRACT(sqlite_setup);
	const struct CMUnitTest on_pg[] = CONTRACT(pg_setup);
	int failed = cmocka_run_group_tests_name("store contract on SQLite", on_sqlite, NULL, NULL);
	return failed + cmocka_run_group_tests_name("store contract on PostgreSQL", on_pg,
						    pg_server_up, pg_server_down);
}
