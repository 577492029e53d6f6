#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"

static char dir[64];
static char path[96];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/pp-store-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/runs.db", dir);
	struct pp_store *s = NULL;
	struct pp_error err = {0};
	if (pp_store_open(path, &s, &err))
		fail_msg("open: %s", err.msg);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	pp_store_close(*state);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static void schedule(struct pp_store *s, const char *pool, int prio, int64_t at, char *id_out)
{
	struct pp_run_rec r = {0};
	snprintf(r.pool, sizeof(r.pool), "%s", pool);
	r.priority = prio;
	r.scheduled_ms = at;
	r.state = PP_ST_SCHEDULED;
	struct pp_error err = {0};
	assert_int_equal(s->ops->insert(s, &r, &err), 0);
	if (id_out)
		memcpy(id_out, r.id, PP_ID_LEN);
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
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->claim(s, "a", "d2", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].id, low); /* high is leased by d1 */
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->claim(s, "b", "d2", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 0);
	free(runs);
}

/* A lease whose owner process died (kill -9) is free at once; a live
 * owner's lease is not. The child claims through its own handle, reports,
 * waits for a byte, then dies without releasing anything. */
static void test_dead_owner_lease_is_free_at_once(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	char id[PP_ID_LEN], id2[PP_ID_LEN];
	schedule(s, "a", 1, pp_wall_ms() - 1, id);
	schedule(s, "a", 0, pp_wall_ms() - 1, id2);
	int up[2], down[2];
	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(down), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct pp_store *c = NULL;
		struct pp_run_rec *runs = NULL;
		int n = 0;
		char ok = pp_store_open(path, &c, &err) == 0 &&
			  c->ops->claim(c, "a", "doomed", 600000, 10, &runs, &n, &err) == 0 &&
			  n == 2;
		(void)!write(up[1], &ok, 1);
		(void)!read(down[0], &ok, 1);
		_exit(0); /* no close, no release: as if killed */
	}
	char ok = 0;
	assert_int_equal(read(up[0], &ok, 1), 1);
	assert_true(ok);
	struct pp_run_rec *runs;
	int n;
	assert_int_equal(s->ops->claim(s, "a", "survivor", 600000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 0); /* the owner lives: its 10-minute lease holds */
	free(runs);
	assert_int_equal(write(down[1], "x", 1), 1);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* One at a time: the dead owner stays dead for the second claim too. */
	assert_int_equal(s->ops->claim(s, "a", "survivor", 600000, 1, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].id, id);
	pp_run_recs_free(runs, n);
	char lock[256];
	snprintf(lock, sizeof(lock), "%s.owners/%s", path, "646f6f6d6564"); /* "doomed" */
	assert_int_equal(access(lock, F_OK), 0);
	assert_int_equal(s->ops->claim(s, "a", "survivor", 600000, 1, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].id, id2);
	pp_run_recs_free(runs, n);
	assert_int_equal(access(lock, F_OK), -1); /* nothing left to free: forgotten */
	close(up[0]);
	close(up[1]);
	close(down[0]);
	close(down[1]);
}

static void test_fencing_rejects_stale_writer(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	char id[PP_ID_LEN];
	schedule(s, "a", 0, pp_wall_ms() - 1, id);
	struct pp_run_rec *runs;
	int n;
	/* A lease of 0 ms is expired at once: a second owner takes over. */
	assert_int_equal(s->ops->claim(s, NULL, "slow", 0, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	int64_t stale = runs[0].fence;
	pp_run_recs_free(runs, n);
	usleep(2000);
	assert_int_equal(s->ops->claim(s, NULL, "fast", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	int64_t fresh = runs[0].fence;
	assert_true(fresh > stale);
	pp_run_recs_free(runs, n);
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
	assert_int_equal(nev, 2);
	assert_string_equal(ev[1].message, "submitting");
	pp_run_rec_free(&r);
	pp_run_events_free(ev, nev);
}

static void test_released_nonterminal_runs_are_reclaimed(void **state)
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
				  .release_lease = true};
	assert_int_equal(s->ops->update(s, id, runs[0].fence, &u, &err), 0);
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->claim(s, NULL, "d2", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(runs[0].state, PP_ST_SUBMITTED);
	assert_string_equal(runs[0].infra_id, "arn:task/1");
	u = (struct pp_run_update){.state = PP_ST_SUCCEEDED,
				   .attempt = -1,
				   .next_attempt_ms = -1,
				   .release_lease = true};
	assert_int_equal(s->ops->update(s, id, runs[0].fence, &u, &err), 0);
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->claim(s, NULL, "d3", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 0); /* terminal runs are never claimed */
	free(runs);
}

static void test_cancel(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	char a[PP_ID_LEN], b[PP_ID_LEN];
	schedule(s, "a", 0, pp_wall_ms() + 100000, a);
	schedule(s, "a", 0, pp_wall_ms() - 1, b);
	assert_int_equal(s->ops->request_cancel(s, a, &err), 0);
	struct pp_run_rec r;
	assert_int_equal(s->ops->get(s, a, &r, NULL, NULL, &err), 0);
	assert_int_equal(r.state, PP_ST_CANCELLED);
	pp_run_rec_free(&r);
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
}

static void test_corrupt_file_is_a_clear_error(void **state)
{
	(void)state;
	char bad[128];
	snprintf(bad, sizeof(bad), "%s/bad.db", dir);
	FILE *f = fopen(bad, "w");
	fputs("this is not a database, just text that is long enough to look like a header....", f);
	fclose(f);
	struct pp_store *s = NULL;
	struct pp_error err = {0};
	assert_int_not_equal(pp_store_open(bad, &s, &err), 0);
	assert_null(s);
	assert_non_null(strstr(err.msg, "bad.db"));
	assert_int_not_equal(pp_store_open("/nonexistent-dir/x.db", &s, &err), 0);
	assert_non_null(strstr(err.msg, "/nonexistent-dir/x.db"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_claim_orders_and_leases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_owner_lease_is_free_at_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fencing_rejects_stale_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_released_nonterminal_runs_are_reclaimed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_file_is_a_clear_error, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
