/* The SQLite store's claims and queued writes on its worker's thread
 * (store/worker.c): what a claim sent without waiting and a send of queued
 * writes commit is written by a thread other than the caller's, while
 * what the caller writes itself stays on its own; a failed batch refuses
 * its runs' later writes, queued or not, until the failure is reported;
 * and a store closed with work sent and queued loses what it had not
 * sent, not what it had. What every store's asynchronous calls promise is
 * in contract.c. Which thread writes is seen through SQLite's replaceable
 * positioned write (xSetSystemCall), below every VFS. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "tests/unit/store/fixture.h"

typedef ssize_t pwrite_fn(int, const void *, size_t, off_t);

static pwrite_fn *real_pwrite;
static const char *pwrite_name;
static pthread_t caller;
/* Writes into the store's files by the caller's thread and by any other,
 * counted from both. */
static _Atomic int writes_by_caller, writes_by_others;

static ssize_t counting_pwrite(int fd, const void *p, size_t n, off_t off)
{
	if (pthread_equal(pthread_self(), caller))
		writes_by_caller++;
	else
		writes_by_others++;
	return real_pwrite(fd, p, n, off);
}

/* From here on, count who writes. */
static void count_writes(void)
{
	sqlite3_vfs *platform = sqlite3_vfs_find(NULL);
	/* SQLite names its positioned write after the call it was built with. */
	static const char *const names[] = {"pwrite64", "pwrite"};
	for (size_t i = 0; i < 2 && !real_pwrite; i++) {
		real_pwrite = (pwrite_fn *)platform->xGetSystemCall(platform, names[i]);
		pwrite_name = names[i];
	}
	assert_non_null(real_pwrite);
	caller = pthread_self();
	writes_by_caller = writes_by_others = 0;
	assert_int_equal(platform->xSetSystemCall(platform, pwrite_name,
						  (sqlite3_syscall_ptr)counting_pwrite),
			 SQLITE_OK);
}

static int teardown(void **state)
{
	sqlite3_vfs *platform = sqlite3_vfs_find(NULL);
	if (pwrite_name)
		platform->xSetSystemCall(platform, pwrite_name, NULL);
	return store_teardown(state);
}

static const struct pp_run_update submitted = {.state = PP_ST_SUBMITTED,
					       .infra_id = "arn:aws:ecs:task/1",
					       .attempt = -1,
					       .next_attempt_ms = -1,
					       .event = "submitted"};

static void expect_state(struct pp_store *s, const char *id, enum pp_store_state want)
{
	struct pp_run_rec r;
	struct pp_error err = {0};
	assert_int_equal(s->ops->get(s, id, &r, NULL, NULL, &err), 0);
	assert_int_equal(r.state, want);
	pp_run_rec_free(&r);
}

static void test_claims_and_sent_writes_commit_on_another_thread(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	struct pp_run_rec *runs = NULL;
	int n = 0;
	s->claim_intents = true;
	for (int i = 0; i < 40; i++)
		schedule(s, "a", 0, pp_wall_ms() - 1, NULL);
	count_writes();
	int fd = s->ops->claim_send(s, "a", "d1", 60000, 40, &err);
	assert_true(fd >= 0);
	assert_int_equal(take_when_answered(s, fd, &runs, &n, &err), 0);
	assert_int_equal(n, 40);
	assert_int_equal(writes_by_caller, 0);
	assert_true(writes_by_others > 0);
	int claimed = writes_by_others;

	for (int i = 0; i < n; i++)
		assert_int_equal(
			s->ops->update_queue(s, runs[i].id, runs[i].fence, &submitted, &err), 0);
	assert_int_equal(writes_by_others, claimed); /* queued: nothing written yet */
	fd = s->ops->update_send(s);
	assert_true(fd >= 0);
	struct outcomes o = {0};
	assert_int_equal(collect_when_answered(s, fd, &o), n);
	for (int i = 0; i < n; i++)
		assert_int_equal(o.rc[i], 0);
	assert_int_equal(writes_by_caller, 0);
	assert_true(writes_by_others > claimed);
	expect_state(s, runs[n - 1].id, PP_ST_SUBMITTED);

	/* The caller's own write is its own. */
	struct pp_run_update running = {
		.state = PP_ST_RUNNING, .attempt = -1, .next_attempt_ms = -1, .event = "running"};
	int others = writes_by_others;
	assert_int_equal(s->ops->update(s, runs[0].id, runs[0].fence, &running, &err), 0);
	assert_true(writes_by_caller > 0);
	assert_int_equal(writes_by_others, others);
	pp_run_recs_free(runs, n);
}

/* A statement that makes each insert of an event with this message fail,
 * on a connection of the test's own. */
static void fail_events(const char *message)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(sqlite_path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	char *sql = sqlite3_mprintf("CREATE TRIGGER fail_events BEFORE INSERT ON run_events"
				    " WHEN NEW.message = %Q BEGIN SELECT RAISE(ABORT, 'refused');"
				    " END",
				    message);
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
	sqlite3_free(sql);
	sqlite3_close(db);
}

/* A batch whose write fails after its run's row changed is rolled back
 * whole: every write in it is reported failed, and until then each of its
 * runs' next writes, queued or the caller's own, is refused with that
 * failure, while other runs' go on. Once reported, the runs write again. */
static void test_a_failed_batch_holds_its_runs_back_until_reported(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	struct pp_run_rec *runs;
	schedule_and_claim(s, 3, &runs);
	fail_events("refused here");
	struct pp_run_update refused = submitted;
	refused.event = "refused here";
	assert_int_equal(s->ops->update_queue(s, runs[0].id, runs[0].fence, &submitted, &err), 0);
	assert_int_equal(s->ops->update_queue(s, runs[1].id, runs[1].fence, &refused, &err), 0);
	int fd = s->ops->update_send(s);
	assert_true(fd >= 0);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 10000), 1); /* answered, not yet reported */

	assert_int_equal(s->ops->update_queue(s, runs[0].id, runs[0].fence, &submitted, &err),
			 PP_EIO);
	assert_int_equal(s->ops->update(s, runs[1].id, runs[1].fence, &submitted, &err), PP_EIO);
	assert_int_equal(s->ops->update_queue(s, runs[2].id, runs[2].fence, &submitted, &err), 0);
	struct outcomes o = {0};
	s->ops->update_settle(s, record, &o);
	assert_int_equal(o.n, 3);
	assert_int_equal(o.rc[0], PP_EIO);
	assert_int_equal(o.rc[1], PP_EIO);
	assert_non_null(strstr(o.msg[1], "refused"));
	assert_int_equal(o.rc[2], 0);
	expect_state(s, runs[0].id, PP_ST_SCHEDULED);
	expect_state(s, runs[1].id, PP_ST_SCHEDULED);
	expect_state(s, runs[2].id, PP_ST_SUBMITTED);

	assert_int_equal(s->ops->update(s, runs[0].id, runs[0].fence, &submitted, &err), 0);
	expect_state(s, runs[0].id, PP_ST_SUBMITTED);
	pp_run_recs_free(runs, 3);
}

/* Closed with a claim and writes sent and more writes queued, the store
 * keeps what was sent (the claim's leases and intents, the writes) and
 * drops what was only queued; nothing is left allocated (valgrind, ASan). */
static void test_close_keeps_what_was_sent(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	struct pp_run_rec *runs;
	schedule_and_claim(s, 2, &runs);
	char due[PP_ID_LEN];
	schedule(s, "a", 0, pp_wall_ms() - 1, due);
	s->claim_intents = true;
	assert_true(s->ops->claim_send(s, "a", "d1", 60000, 5, &err) >= 0);
	assert_int_equal(s->ops->update_queue(s, runs[0].id, runs[0].fence, &submitted, &err), 0);
	assert_true(s->ops->update_send(s) >= 0);
	assert_int_equal(s->ops->update_queue(s, runs[1].id, runs[1].fence, &submitted, &err), 0);
	pp_store_close(s);
	assert_int_equal(pp_store_open(sqlite_path, &s, &err), 0);
	*state = s;
	expect_state(s, runs[0].id, PP_ST_SUBMITTED);
	expect_state(s, runs[1].id, PP_ST_SCHEDULED);
	struct pp_run_rec r;
	assert_int_equal(s->ops->get(s, due, &r, NULL, NULL, &err), 0);
	assert_int_equal(r.state, PP_ST_SUBMITTING); /* the claim's intent */
	assert_int_equal(r.attempt, 1);
	pp_run_rec_free(&r);
	pp_run_recs_free(runs, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_claims_and_sent_writes_commit_on_another_thread, sqlite_setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_a_failed_batch_holds_its_runs_back_until_reported, sqlite_setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_close_keeps_what_was_sent, sqlite_setup,
						teardown),
	};
	return cmocka_run_group_tests_name("SQLite store's worker", tests, NULL, NULL);
}
