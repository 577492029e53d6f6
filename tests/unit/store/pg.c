/* The PostgreSQL run store against a real server started by
 * tests/pg-env.sh for this binary: schema and migration, claim order,
 * leases on the server's clock, fencing, SKIP LOCKED under concurrent
 * claimers, LISTEN/NOTIFY wake-ups, and reconnection after the server
 * drops the connection. Skips only when no PostgreSQL server is installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"
#include "store/pg.h"

static char pgdir[256];
static char pgurl[256];

static void sql(const char *url, const char *text)
{
	PGconn *c = PQconnectdb(url);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	PGresult *r = PQexec(c, text);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", text, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
}

static int server_up(void **state)
{
	(void)state;
	FILE *p = popen("sh tests/pg-env.sh start", "r");
	assert_non_null(p);
	char line[512];
	while (fgets(line, sizeof(line), p)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "PGDIR=", 6))
			snprintf(pgdir, sizeof(pgdir), "%s", line + 6);
		else if (!strncmp(line, "PGURL=", 6))
			snprintf(pgurl, sizeof(pgurl), "%s", line + 6);
	}
	int st = pclose(p);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 3)
		return -1;
	if (st != 0 || !pgurl[0])
		return -1;
	struct pp_store *s = NULL;
	struct pp_error err = {0};
	if (pp_store_pg_open_unmigrated(pgurl, &s, &err) || s->ops->migrate(s, &err)) {
		fprintf(stderr, "migrate: %s\n", err.msg);
		pp_store_close(s);
		return -1;
	}
	pp_store_close(s);
	return 0;
}

static int server_down(void **state)
{
	(void)state;
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "sh tests/pg-env.sh stop %s", pgdir);
	return pgdir[0] ? system(cmd) : 0;
}

static int setup(void **state)
{
	sql(pgurl, "TRUNCATE runs, run_events");
	struct pp_store *s = NULL;
	struct pp_error err = {0};
	if (pp_store_open(pgurl, &s, &err))
		fail_msg("open: %s", err.msg);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	pp_store_close(*state);
	return 0;
}

static void schedule(struct pp_store *s, const char *pool, int prio, int64_t at, char *id_out)
{
	struct pp_run_rec r = {0};
	snprintf(r.pool, sizeof(r.pool), "%s", pool);
	r.priority = prio;
	r.scheduled_ms = at;
	r.state = PP_ST_SCHEDULED;
	struct pp_error err = {0};
	if (s->ops->insert(s, &r, &err))
		fail_msg("insert: %s", err.msg);
	if (id_out)
		memcpy(id_out, r.id, PP_ID_LEN);
}

static void test_migrate_and_schema_check(void **state)
{
	(void)state;
	sql(pgurl, "DROP DATABASE IF EXISTS fresh");
	sql(pgurl, "CREATE DATABASE fresh");
	char url[300];
	snprintf(url, sizeof(url), "%.*sfresh", (int)(strrchr(pgurl, '/') + 1 - pgurl), pgurl);
	struct pp_store *s = NULL;
	struct pp_error err = {0};
	/* Dispatchers refuse an unmigrated database and say what to run. */
	assert_int_equal(pp_store_open(url, &s, &err), PP_EINVALID);
	assert_null(s);
	assert_non_null(strstr(err.msg, "schema version 0"));
	assert_non_null(strstr(err.msg, "pushpool store migrate"));
	assert_int_equal(pp_store_pg_open_unmigrated(url, &s, &err), 0);
	assert_int_equal(s->ops->migrate(s, &err), 0);
	assert_int_equal(s->ops->migrate(s, &err), 0); /* twice is a no-op */
	pp_store_close(s);
	assert_int_equal(pp_store_open(url, &s, &err), 0);
	pp_store_close(s);
	/* A schema from a newer pushpool is refused, not used. */
	sql(url, "UPDATE pushpool_schema SET version = 99");
	assert_int_equal(pp_store_open(url, &s, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "schema version 99"));
	assert_int_equal(pp_store_pg_open_unmigrated(url, &s, &err), 0);
	assert_int_equal(s->ops->migrate(s, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "newer than this pushpool"));
	pp_store_close(s);
}

static void test_bad_url_and_password_stay_out_of_errors(void **state)
{
	(void)state;
	struct pp_store *s = NULL;
	struct pp_error err = {0};
	/* Nothing listens on port 1: a transient error naming the server,
	 * not the password. */
	assert_int_equal(pp_store_open("postgresql://u:hunter2secret@127.0.0.1:1/db", &s, &err),
			 PP_ETRANSIENT);
	assert_null(s);
	assert_non_null(strstr(err.msg, "postgresql://u@127.0.0.1:1/db"));
	assert_null(strstr(err.msg, "hunter2secret"));
	assert_int_equal(pp_store_open("postgresql://[broken", &s, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "not a valid PostgreSQL connection URI"));
}

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
}

/* Lease expiry is judged by the server's clock: a 1 ms lease is expired
 * for the next claimer, a renewed one is not. */
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
 * connection: every run is leased exactly once. */
static void test_concurrent_claims_never_share_a_run(void **state)
{
	struct pp_store *s = *state;
	enum { RUNS = 400, PROCS = 4 };
	for (int i = 0; i < RUNS; i++)
		schedule(s, "a", i % 3, pp_wall_ms() - 1, NULL);
	int fds[PROCS][2];
	pid_t pids[PROCS];
	for (int p = 0; p < PROCS; p++) {
		assert_int_equal(pipe(fds[p]), 0);
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			struct pp_store *c = NULL;
			struct pp_error err = {0};
			char owner[16];
			snprintf(owner, sizeof(owner), "proc%d", p);
			if (pp_store_open(pgurl, &c, &err))
				_exit(2);
			for (;;) {
				struct pp_run_rec *runs = NULL;
				int n = 0;
				if (c->ops->claim(c, "a", owner, 60000, 7, &runs, &n, &err))
					_exit(3);
				for (int i = 0; i < n; i++)
					(void)!write(fds[p][1], runs[i].id, PP_ID_LEN);
				pp_run_recs_free(runs, n);
				if (n == 0)
					break;
			}
			pp_store_close(c);
			_exit(0);
		}
		close(fds[p][1]);
	}
	static char seen[RUNS * 2][PP_ID_LEN];
	int total = 0;
	for (int p = 0; p < PROCS; p++) {
		while (total < RUNS * 2 && read(fds[p][0], seen[total], PP_ID_LEN) == PP_ID_LEN)
			total++;
		close(fds[p][0]);
		int st;
		assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	assert_int_equal(total, RUNS);
	qsort(seen, (size_t)total, PP_ID_LEN, (int (*)(const void *, const void *))strcmp);
	for (int i = 1; i < total; i++)
		assert_string_not_equal(seen[i - 1], seen[i]);
}

static bool readable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, ms) == 1;
}

static void test_notify_wakes_idle_dispatcher(void **state)
{
	struct pp_store *s = *state;
	struct pp_store *other = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_store_open(pgurl, &other, &err), 0);
	int fd = s->ops->wake_fd(s);
	assert_true(fd >= 0);
	while (s->ops->wake_drain(s) > 0)
		;					       /* earlier tests' notifications */
	schedule(other, "a", 0, pp_wall_ms() + 3600000, NULL); /* not due: no wake-up */
	assert_false(readable(fd, 200));
	assert_int_equal(s->ops->wake_drain(s), 0);
	char id[PP_ID_LEN];
	schedule(other, "a", 0, pp_wall_ms() - 1, id);
	assert_true(readable(fd, 2000));
	assert_int_equal(s->ops->wake_drain(s), 1);
	/* A run released unfinished wakes the others too. */
	struct pp_run_rec *runs;
	int n;
	assert_int_equal(other->ops->claim(other, NULL, "d1", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	struct pp_run_update u = {.state = PP_ST_SUBMITTED,
				  .attempt = -1,
				  .next_attempt_ms = -1,
				  .release_lease = true};
	assert_int_equal(other->ops->update(other, id, runs[0].fence, &u, &err), 0);
	pp_run_recs_free(runs, n);
	assert_true(readable(fd, 2000));
	assert_int_equal(s->ops->wake_drain(s), 1);
	pp_store_close(other);
}

/* The server ends our session (as a restart does): the call that finds
 * out fails transient, the next reconnects, and the wake-up channel asks
 * for a claim since notifications may have been missed meanwhile. */
static void test_reconnects_after_connection_loss(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	schedule(s, "a", 0, pp_wall_ms() - 1, NULL);
	sql(pgurl, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
		   " WHERE application_name = 'pushpool' AND pid <> pg_backend_pid()");
	usleep(100000);
	struct pp_store_counts c;
	assert_int_equal(s->ops->counts(s, &c, &err), PP_ETRANSIENT);
	assert_int_equal(s->ops->wake_fd(s), -1);
	assert_int_equal(s->ops->counts(s, &c, &err), 0);
	assert_int_equal(c.by_state[PP_ST_SCHEDULED], 1);
	assert_true(s->ops->wake_fd(s) >= 0);
	assert_true(s->ops->wake_drain(s) > 0);
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

int main(void)
{
	int have = system("sh tests/pg-env.sh check");
	if (WIFEXITED(have) && WEXITSTATUS(have) == 3) {
		printf("test_store_pg: SKIPPED: no PostgreSQL server binaries; install the Debian "
		       "package postgresql (make test-deps does)\n");
		return 0;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrate_and_schema_check),
		cmocka_unit_test(test_bad_url_and_password_stay_out_of_errors),
		cmocka_unit_test_setup_teardown(test_claim_orders_and_leases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fencing_rejects_stale_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renew_keeps_lease, setup, teardown),
		cmocka_unit_test_setup_teardown(test_released_runs_are_reclaimed_terminal_never,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_claims_never_share_a_run, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_notify_wakes_idle_dispatcher, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnects_after_connection_loss, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cancel_get_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_source_ref_is_unique, setup, teardown),
	};
	return cmocka_run_group_tests(tests, server_up, server_down);
}
