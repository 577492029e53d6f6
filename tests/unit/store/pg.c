/* What only the PostgreSQL run store does, against a real server started
 * by tests/pg-env.sh for this binary: schema versions and migration, URLs
 * and passwords in errors, LISTEN/NOTIFY wake-ups, and reconnection after
 * the server drops the connection. The behaviour every store shares is in
 * contract.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <pthread.h>

#include "store/db.h"
#include "store/deploy.h"
#include "tests/unit/store/fixture.h"

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

/* Every TEXT column an index holds or a foreign key names compares byte by
 * byte (migration 13), whatever the database's locale: the server's
 * btrees over ids call memcmp, not strcoll, and the store orders names as
 * SQLite's does. A later migration that indexes a column under the
 * locale fails here. */
static void test_keys_compare_bytes(void **state)
{
	(void)state;
	assert_int_equal(sql(pgurl,
			     "SELECT count(*) FROM pg_attribute a"
			     " JOIN pg_class t ON t.oid = a.attrelid"
			     " JOIN pg_namespace n ON n.oid = t.relnamespace"
			     " WHERE n.nspname = current_schema() AND t.relkind = 'r'"
			     " AND a.atttypid = 'text'::regtype AND a.attnum > 0"
			     " AND a.attcollation <> '\"C\"'::regcollation"
			     " AND (EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = t.oid"
			     "  AND a.attnum = ANY (i.indkey))"
			     " OR EXISTS (SELECT 1 FROM pg_constraint c WHERE c.contype = 'f'"
			     "  AND ((c.conrelid = t.oid AND a.attnum = ANY (c.conkey))"
			     "  OR (c.confrelid = t.oid AND a.attnum = ANY (c.confkey)))))"),
			 0);
	/* The migration reached the tables it was written for. */
	assert_int_equal(sql(pgurl, "SELECT count(*) FROM pg_attribute WHERE attrelid IN"
				    " ('runs'::regclass, 'run_events'::regclass,"
				    " 'owner_leases'::regclass, 'deployments'::regclass)"
				    " AND attcollation = '\"C\"'::regcollation"),
			 15);
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
	/* The timeout makes the call wait until those sessions have ended
	 * (PostgreSQL 14 on), rather than sleeping and hoping they have. */
	sql(pgurl, "SELECT pg_terminate_backend(pid, 30000) FROM pg_stat_activity"
		   " WHERE application_name = 'pushpool' AND pid <> pg_backend_pid()");
	struct pp_store_counts c;
	assert_int_equal(s->ops->counts(s, &c, &err), PP_ETRANSIENT);
	assert_int_equal(s->ops->wake_fd(s), -1);
	assert_int_equal(s->ops->counts(s, &c, &err), 0);
	assert_int_equal(c.by_state[PP_ST_SCHEDULED], 1);
	assert_true(s->ops->wake_fd(s) >= 0);
	assert_true(s->ops->wake_drain(s) > 0);
	/* The same for a claim, whose statement goes in a pipeline with the
	 * setting of its plan (exec_planned). */
	sql(pgurl, "SELECT pg_terminate_backend(pid, 30000) FROM pg_stat_activity"
		   " WHERE application_name = 'pushpool' AND pid <> pg_backend_pid()");
	struct pp_run_rec *runs = NULL;
	int n = 0;
	assert_int_equal(s->ops->claim(s, "a", "d1", 60000, 1, &runs, &n, &err), PP_ETRANSIENT);
	assert_int_equal(n, 0);
	assert_int_equal(s->ops->claim(s, "a", "d1", 60000, 1, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	pp_run_recs_free(runs, n);
}

/* What update_settle reported, in order. */
struct outcomes {
	int n;
	int rc[400];
	char msg[4][PP_ERRMSG_MAX];
};

static void record(void *ud, int i, int rc, const struct pp_error *err)
{
	struct outcomes *o = ud;
	assert_int_equal(i, o->n); /* in the order queued, from 0 */
	assert_true(o->n < (int)(sizeof(o->rc) / sizeof(o->rc[0])));
	o->rc[o->n] = rc;
	if (o->n < 4)
		snprintf(o->msg[o->n], sizeof(o->msg[0]), "%s", rc ? err->msg : "");
	o->n++;
}

/* want runs scheduled, due, and claimed by d1. */
static void schedule_and_claim(struct pp_store *s, int want, struct pp_run_rec **runs)
{
	struct pp_error err = {0};
	int n;
	for (int i = 0; i < want; i++)
		schedule(s, "a", 0, pp_wall_ms() - 1, NULL);
	assert_int_equal(s->ops->claim(s, NULL, "d1", 60000, want, runs, &n, &err), 0);
	assert_int_equal(n, want);
}

/* Queued writes go to the server together and are reported one by one,
 * in order: each fenced on its own, text of any shape kept as it was,
 * visible to a statement run before the settle, and a run's second write
 * after its first. */
static void test_queued_writes_settle_in_order(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	struct pp_run_rec *runs;
	schedule_and_claim(s, 3, &runs);
	static const char odd[] = "try \"1\", {a,b} \\ NULL\n'x'";
	struct pp_run_update intent = {.state = PP_ST_SUBMITTING,
				       .idem_key = "k,{1}\"",
				       .attempt = 1,
				       .next_attempt_ms = -1,
				       .event = odd};
	struct pp_run_update bare = {
		.state = PP_ST_SUBMITTING, .attempt = -1, .next_attempt_ms = -1};
	assert_int_equal(s->ops->update_queue(s, runs[0].id, runs[0].fence, &intent, &err), 0);
	assert_int_equal(s->ops->update_queue(s, runs[1].id, runs[1].fence - 1, &intent, &err), 0);
	assert_int_equal(s->ops->update_queue(s, runs[2].id, runs[2].fence, &bare, &err), 0);
	/* A statement in between sees the queued writes, and reports none. */
	struct pp_run_rec r;
	assert_int_equal(s->ops->get(s, runs[0].id, &r, NULL, NULL, &err), 0);
	assert_int_equal(r.state, PP_ST_SUBMITTING);
	pp_run_rec_free(&r);
	struct pp_run_update submitted = {.state = PP_ST_SUBMITTED,
					  .infra_id = "arn:aws:ecs:task/1",
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  .error = "",
					  .event = "submitted"};
	assert_int_equal(s->ops->update_queue(s, runs[0].id, runs[0].fence, &submitted, &err), 0);
	struct outcomes o = {0};
	s->ops->update_settle(s, record, &o);
	assert_int_equal(o.n, 4);
	assert_int_equal(o.rc[0], 0);
	assert_int_equal(o.rc[1], PP_ECONFLICT);
	assert_non_null(strstr(o.msg[1], "lease lost"));
	assert_non_null(strstr(o.msg[1], runs[1].id));
	assert_int_equal(o.rc[2], 0);
	assert_int_equal(o.rc[3], 0);
	struct pp_run_event *ev;
	int nev;
	assert_int_equal(s->ops->get(s, runs[0].id, &r, &ev, &nev, &err), 0);
	assert_int_equal(r.state, PP_ST_SUBMITTED);
	assert_string_equal(r.idem_key, "k,{1}\"");
	assert_string_equal(r.infra_id, "arn:aws:ecs:task/1");
	assert_int_equal(r.attempt, 1);
	assert_int_equal(nev, 3);
	assert_string_equal(ev[1].message, odd);
	assert_string_equal(ev[2].message, "submitted");
	pp_run_rec_free(&r);
	pp_run_events_free(ev, nev);
	/* The stale write left nothing; the bare one no event. */
	assert_int_equal(s->ops->get(s, runs[1].id, &r, &ev, &nev, &err), 0);
	assert_int_equal(r.state, PP_ST_SCHEDULED);
	assert_null(r.idem_key);
	assert_int_equal(nev, 1);
	pp_run_rec_free(&r);
	pp_run_events_free(ev, nev);
	assert_int_equal(s->ops->get(s, runs[2].id, &r, &ev, &nev, &err), 0);
	assert_int_equal(r.state, PP_ST_SUBMITTING);
	assert_int_equal(nev, 1);
	pp_run_rec_free(&r);
	pp_run_events_free(ev, nev);
	pp_run_recs_free(runs, 3);
	o.n = 0;
	s->ops->update_settle(s, record, &o); /* nothing queued: nothing reported */
	assert_int_equal(o.n, 0);
}

/* Write u to runs[0..n), queued and then settled: each reported written. */
static void queue_and_settle(struct pp_store *s, const struct pp_run_rec *runs, int n,
			     const struct pp_run_update *u)
{
	struct pp_error err = {0};
	for (int i = 0; i < n; i++)
		assert_int_equal(s->ops->update_queue(s, runs[i].id, runs[i].fence, u, &err), 0);
	struct outcomes o = {0};
	s->ops->update_settle(s, record, &o);
	assert_int_equal(o.n, n);
	for (int i = 0; i < n; i++)
		assert_int_equal(o.rc[i], 0);
}

/* More writes than one statement takes, then the connection lost before
 * the next went out: each is reported, written (and then in the store) or
 * transient, and the next writes go out on a new connection. */
static void test_queued_writes_many_and_lost(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	enum { N = 300, LOST = 40 };
	struct pp_run_rec *runs;
	schedule_and_claim(s, N, &runs);
	struct pp_run_update u = {.state = PP_ST_SUBMITTING,
				  .attempt = 1,
				  .next_attempt_ms = -1,
				  .event = "submitting (try 1)"};
	int first = N - LOST - 1;
	queue_and_settle(s, runs, first, &u);
	struct outcomes o = {0};
	struct pp_store_counts c;
	assert_int_equal(s->ops->counts(s, &c, &err), 0);
	assert_int_equal(c.by_state[PP_ST_SUBMITTING], first);
	for (int i = first; i < first + LOST; i++)
		assert_int_equal(s->ops->update_queue(s, runs[i].id, runs[i].fence, &u, &err), 0);
	sql(pgurl, "SELECT pg_terminate_backend(pid, 30000) FROM pg_stat_activity"
		   " WHERE application_name = 'pushpool' AND pid <> pg_backend_pid()");
	s->ops->update_settle(s, record, &o);
	assert_int_equal(o.n, LOST);
	int written = 0;
	for (int i = 0; i < LOST; i++) {
		if (o.rc[i] != 0)
			assert_int_equal(o.rc[i], PP_ETRANSIENT);
		written += o.rc[i] == 0;
	}
	assert_true(written < LOST); /* some went out on a dead connection */
	/* The store reconnects; what was reported written is. */
	struct pp_run_rec r;
	for (int i = 0; i < LOST; i++) {
		if (o.rc[i] != 0)
			continue;
		assert_int_equal(s->ops->get(s, runs[first + i].id, &r, NULL, NULL, &err), 0);
		assert_int_equal(r.state, PP_ST_SUBMITTING);
		pp_run_rec_free(&r);
	}
	int last = N - 1;
	assert_int_equal(s->ops->update_queue(s, runs[last].id, runs[last].fence, &u, &err), 0);
	o.n = 0;
	s->ops->update_settle(s, record, &o);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.rc[0], 0);
	assert_int_equal(s->ops->get(s, runs[last].id, &r, NULL, NULL, &err), 0);
	assert_int_equal(r.state, PP_ST_SUBMITTING);
	pp_run_rec_free(&r);
	pp_run_recs_free(runs, N);
}

/* A run's write after an earlier one of it failed is refused, queued or
 * not, until the settle has reported that failure: it cannot stand
 * without the earlier one (a status write after a SUBMITTED write that
 * never stored the infra id), even when the connection is back by then. */
static void test_write_after_a_failed_one_is_refused(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	struct pp_run_rec *runs;
	schedule_and_claim(s, 2, &runs);
	struct pp_run_update submitted = {.state = PP_ST_SUBMITTED,
					  .infra_id = "arn:aws:ecs:task/1",
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  .event = "submitted"};
	struct pp_run_update running = {
		.state = PP_ST_RUNNING, .attempt = -1, .next_attempt_ms = -1, .event = "running"};
	for (int i = 0; i < 2; i++)
		assert_int_equal(
			s->ops->update_queue(s, runs[i].id, runs[i].fence, &submitted, &err), 0);
	sql(pgurl, "SELECT pg_terminate_backend(pid, 30000) FROM pg_stat_activity"
		   " WHERE application_name = 'pushpool' AND pid <> pg_backend_pid()");
	/* Run 0's next write sends the batch, which the lost session fails. */
	assert_int_equal(s->ops->update_queue(s, runs[0].id, runs[0].fence, &running, &err),
			 PP_ETRANSIENT);
	/* The next statement reconnects at once: run 1's write is refused
	 * all the same, though the store answers others. */
	assert_int_equal(s->ops->update(s, runs[1].id, runs[1].fence, &running, &err),
			 PP_ETRANSIENT);
	struct pp_store_counts c;
	assert_int_equal(s->ops->counts(s, &c, &err), 0);
	struct outcomes o = {0};
	s->ops->update_settle(s, record, &o);
	assert_int_equal(o.n, 2);
	assert_int_equal(o.rc[0], PP_ETRANSIENT);
	assert_int_equal(o.rc[1], PP_ETRANSIENT);
	struct pp_run_rec r;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(s->ops->get(s, runs[i].id, &r, NULL, NULL, &err), 0);
		assert_int_equal(r.state, PP_ST_SCHEDULED);
		assert_null(r.infra_id);
		pp_run_rec_free(&r);
	}
	/* Once reported, the failure no longer holds the run's writes back. */
	assert_int_equal(s->ops->update(s, runs[0].id, runs[0].fence, &submitted, &err), 0);
	assert_int_equal(s->ops->get(s, runs[0].id, &r, NULL, NULL, &err), 0);
	assert_int_equal(r.state, PP_ST_SUBMITTED);
	assert_string_equal(r.infra_id, "arn:aws:ecs:task/1");
	pp_run_rec_free(&r);
	pp_run_recs_free(runs, 2);
}

/* Until the store's descriptor turns readable (at most 10 s), then what
 * update_collect reports, into o. */
static int collect_when_answered(struct pp_store *s, int fd, struct outcomes *o)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 10000), 1);
	int n = 0;
	/* A readable descriptor may carry part of the answer: wait for more. */
	for (int i = 0; (n = s->ops->update_collect(s, record, o)) == 0; i++) {
		assert_true(i < 100);
		assert_int_equal(poll(&p, 1, 10000), 1);
	}
	return n;
}

/* Queued writes sent without waiting (update_send): the answer is read
 * when it has come, reported in order as a settle reports it (each fenced
 * on its own); nothing more goes out while a send is unanswered; a
 * statement in between waits for that answer and sees the writes, which
 * are reported after all; and a run's next write waits for its write in
 * flight. A connection lost with a write in flight reports it transient,
 * and the store reconnects. */
static void test_queued_writes_sent_without_waiting(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	struct pp_run_rec *runs;
	schedule_and_claim(s, 4, &runs);
	struct pp_run_update intent = {.state = PP_ST_SUBMITTING,
				       .attempt = 1,
				       .next_attempt_ms = -1,
				       .event = "submitting (try 1)"};
	struct pp_run_update submitted = {.state = PP_ST_SUBMITTED,
					  .infra_id = "arn:aws:ecs:task/1",
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  .event = "submitted"};
	struct outcomes o = {0};
	assert_int_equal(s->ops->update_send(s), -1); /* nothing queued */
	assert_int_equal(s->ops->update_collect(s, record, &o), 0);
	assert_int_equal(s->ops->update_queue(s, runs[0].id, runs[0].fence, &intent, &err), 0);
	assert_int_equal(s->ops->update_queue(s, runs[1].id, runs[1].fence - 1, &intent, &err), 0);
	int fd = s->ops->update_send(s);
	assert_true(fd >= 0);
	/* Queued while the first send is unanswered: it waits. */
	assert_int_equal(s->ops->update_queue(s, runs[2].id, runs[2].fence, &intent, &err), 0);
	assert_int_equal(s->ops->update_send(s), fd);
	assert_int_equal(collect_when_answered(s, fd, &o), 2);
	assert_int_equal(o.rc[0], 0);
	assert_int_equal(o.rc[1], PP_ECONFLICT);
	assert_non_null(strstr(o.msg[1], "lease lost"));
	assert_int_equal(s->ops->update_collect(s, record, &o), 0);
	assert_int_equal(o.n, 2);
	/* Run 2's write goes now; a read waits for its answer. */
	fd = s->ops->update_send(s);
	assert_true(fd >= 0);
	struct pp_run_rec r;
	assert_int_equal(s->ops->get(s, runs[0].id, &r, NULL, NULL, &err), 0);
	assert_int_equal(r.state, PP_ST_SUBMITTING);
	pp_run_rec_free(&r);
	assert_int_equal(s->ops->get(s, runs[2].id, &r, NULL, NULL, &err), 0);
	assert_int_equal(r.state, PP_ST_SUBMITTING);
	pp_run_rec_free(&r);
	o.n = 0;
	assert_int_equal(s->ops->update_collect(s, record, &o), 1);
	assert_int_equal(o.rc[0], 0);
	/* A run's next write while its first is in flight: written after it. */
	assert_int_equal(s->ops->update_queue(s, runs[3].id, runs[3].fence, &intent, &err), 0);
	assert_true(s->ops->update_send(s) >= 0);
	assert_int_equal(s->ops->update_queue(s, runs[3].id, runs[3].fence, &submitted, &err), 0);
	o.n = 0;
	s->ops->update_settle(s, record, &o);
	assert_int_equal(o.n, 2);
	assert_int_equal(o.rc[0], 0);
	assert_int_equal(o.rc[1], 0);
	assert_int_equal(s->ops->get(s, runs[3].id, &r, NULL, NULL, &err), 0);
	assert_int_equal(r.state, PP_ST_SUBMITTED);
	assert_string_equal(r.infra_id, "arn:aws:ecs:task/1");
	pp_run_rec_free(&r);
	/* The session ends with a write in flight. */
	assert_int_equal(s->ops->update_queue(s, runs[0].id, runs[0].fence, &submitted, &err), 0);
	sql(pgurl, "SELECT pg_terminate_backend(pid, 30000) FROM pg_stat_activity"
		   " WHERE application_name = 'pushpool' AND pid <> pg_backend_pid()");
	fd = s->ops->update_send(s);
	o.n = 0;
	if (fd >= 0)
		assert_int_equal(collect_when_answered(s, fd, &o), 1);
	else
		assert_int_equal(s->ops->update_collect(s, record, &o), 1);
	assert_int_equal(o.rc[0], PP_ETRANSIENT);
	assert_int_equal(s->ops->get(s, runs[0].id, &r, NULL, NULL, &err), 0);
	assert_int_equal(r.state, PP_ST_SUBMITTING); /* the write never ran */
	pp_run_rec_free(&r);
	pp_run_recs_free(runs, 4);
}

/* A statistic of runs (query, one number) as the sessions that have
 * ended left it. A session's counts reach the statistics as it exits,
 * before it leaves pg_stat_activity: so first wait (at most 10 s) until no
 * other client session is there but, with store_open, the store's own. */
static long long runs_stat(bool store_open, const char *query)
{
	char others[256];
	snprintf(others, sizeof(others),
		 "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
		 " AND pid <> pg_backend_pid()%s",
		 store_open ? " AND application_name <> 'pushpool'" : "");
	for (int i = 0; sql(pgurl, others) > 0; i++) {
		assert_true(i < 1000);
		usleep(10000);
	}
	return sql(pgurl, query);
}

/* Index entries of runs read. */
static long long runs_index_reads(bool store_open)
{
	return runs_stat(store_open, "SELECT COALESCE(sum(idx_tup_read), 0)"
				     " FROM pg_stat_user_indexes WHERE relname = 'runs'");
}

/* Runs a claim takes in the tests of what a claim reads. */
#define CLAIM_TAKE 5

/* Claims on the empty table, as a new dispatcher's on a new store: the
 * claim's generic plan is made for it, at the first (exec_planned), and
 * kept; no ANALYZE behind the test's back (reset by the test when it
 * closes the store). */
static void claims_planned_on_empty_table(struct pp_store *s)
{
	struct pp_error err = {0};
	sql(pgurl, "ALTER TABLE runs SET (autovacuum_enabled = false)");
	for (int i = 0; i < 8; i++) {
		struct pp_run_rec *runs;
		int n;
		assert_int_equal(s->ops->claim(s, "a", "d2", 60000, CLAIM_TAKE, &runs, &n, &err),
				 0);
		assert_int_equal(n, 0);
		free(runs);
	}
}

/* A claim reads what it takes, not the runs other dispatchers hold, on a
 * table the planner knows nothing of (issue 23). The claims of a new
 * dispatcher on a new store are planned for an empty table, and the plan
 * is kept as the table fills; until migration 8 that plan read every run
 * in flight, through indexes made for other reads, at every claim. */
static void test_claim_reads_only_what_it_takes(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	enum { TAKE = CLAIM_TAKE };
	claims_planned_on_empty_table(s);
	struct pp_run_rec *runs;
	int n;
	sql(pgurl, "INSERT INTO runs(id, pool, scheduled_ms, state, lease_owner, lease_expires,"
		   " created_ms, updated_ms) SELECT 'f' || i, 'a', 0, 'SUBMITTED', 'd1',"
		   " (extract(epoch FROM now()) * 1000)::bigint + 600000, 0, 0"
		   " FROM generate_series(1, 1000) AS i");
	sql(pgurl, "INSERT INTO runs(id, pool, scheduled_ms, state, created_ms, updated_ms)"
		   " SELECT 'd' || i, 'a', i, 'SCHEDULED', 0, 0 FROM generate_series(1, 10) AS i");
	long long before = runs_index_reads(true);
	assert_int_equal(s->ops->claim(s, "a", "d2", 60000, TAKE, &runs, &n, &err), 0);
	assert_int_equal(n, TAKE);
	assert_string_equal(runs[0].id, "d1");
	pp_run_recs_free(runs, n);
	pp_store_close(s);
	*state = NULL;
	long long read = runs_index_reads(false) - before;
	sql(pgurl, "ALTER TABLE runs RESET (autovacuum_enabled)");
	/* The due runs it takes, each found again by id to be updated: not
	 * the 1,000 runs in flight. */
	assert_true(read <= 4 * TAKE);
}

/* N runs of pool a named PREFIX1..PREFIXN, in STATE, held by OWNER with
 * their own lease ending SECONDS from now (negative: lapsed). */
static void held_runs(const char *prefix, int n, const char *state, const char *owner, int seconds)
{
	char q[512];
	snprintf(q, sizeof(q),
		 "INSERT INTO runs(id, pool, scheduled_ms, state, lease_owner, lease_expires,"
		 " created_ms, updated_ms) SELECT '%s' || i, 'a', i, '%s', '%s',"
		 " (extract(epoch FROM now()) * 1000)::bigint + %d000, 0, 0"
		 " FROM generate_series(1, %d) AS i",
		 prefix, state, owner, seconds, n);
	sql(pgurl, q);
}

/* OWNER's own lease (owner_leases) ending SECONDS from now. */
static void owner_lease(const char *owner, int seconds)
{
	char q[256];
	snprintf(q, sizeof(q),
		 "INSERT INTO owner_leases VALUES ('%s', (extract(epoch FROM now()) * 1000)::bigint"
		 " + %d000)",
		 owner, seconds);
	sql(pgurl, q);
}

static long long count_in(void *ctx, const char *query)
{
	(void)ctx;
	return sql(pgurl, query);
}

/* Rows of runs read by scans of the whole table. */
static long long runs_scan_reads(bool store_open)
{
	return runs_stat(store_open,
			 "SELECT seq_tup_read FROM pg_stat_user_tables WHERE relname = 'runs'");
}

static long long runs_written(bool store_open)
{
	return runs_stat(store_open,
			 "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'runs'");
}

/* A renewal writes its owner's lease, one row, not each run it holds:
 * it wrote every one, about 5 MB of WAL with 10,000 held (issue 23).
 * The runs stay held by it, their own leases long lapsed. It also clears
 * away the rows of owners gone a lease ago that no unfinished run names,
 * and a release lets the owner's row go with its runs. */
static void test_renewal_writes_one_row(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	held_runs("f", 300, "RUNNING", "d1", -100);
	owner_lease("d1", -1);
	owner_lease("gone", -7200); /* no run */
	owner_lease("done", -7200); /* a finished run only */
	held_runs("z", 1, "SUCCEEDED", "done", -7200);
	owner_lease("dead", -7200); /* a run nobody took over yet */
	held_runs("g", 1, "SUBMITTED", "dead", -7200);
	owner_lease("live", 600);
	pp_store_close(s);
	long long before = runs_written(false);
	assert_int_equal(pp_store_open(pgurl, &s, &err), 0);
	*state = s;
	assert_int_equal(s->ops->renew(s, "d1", 60000, &err), 0);
	pp_store_close(s);
	*state = NULL;
	assert_int_equal(runs_written(false) - before, 0);
	assert_int_equal(sql(pgurl, "SELECT (expires - (extract(epoch FROM now()) * 1000)::bigint"
				    " > 50000)::int FROM owner_leases WHERE owner = 'd1'"),
			 1);
	assert_int_equal(sql(pgurl, "SELECT count(*) FROM owner_leases WHERE owner IN"
				    " ('d1', 'dead', 'live')"),
			 3);
	assert_int_equal(sql(pgurl, "SELECT count(*) FROM owner_leases"), 3);
	assert_int_equal(pp_store_open(pgurl, &s, &err), 0);
	*state = s;
	expect_d1_holds_until_released(s, "g1", count_in, NULL);
}

/* A dispatcher that stops lets go of its runs, found by owner through
 * runs_lease, the only index by owner since migration 12, on a table the
 * planner knows nothing of: not by reading every run, nor the runs of
 * other owners. Renewing reads no run of a live owner either. */
static void test_release_finds_runs_by_owner(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	enum { OTHERS = 2000, OWN = 3 };
	sql(pgurl, "ALTER TABLE runs SET (autovacuum_enabled = false)");
	owner_lease("d1", 600);
	held_runs("f", OTHERS, "SUBMITTED", "d1", 600);
	owner_lease("d2", 600);
	held_runs("g", OWN, "RUNNING", "d2", 600);
	held_runs("h", 1, "SUCCEEDED", "d2", 600);
	long long scanned = runs_scan_reads(true), entries = runs_index_reads(true);
	assert_int_equal(s->ops->renew(s, "d2", 60000, &err), 0);
	assert_int_equal(s->ops->release_all(s, "d2", &err), 0);
	pp_store_close(s);
	*state = NULL;
	scanned = runs_scan_reads(false) - scanned;
	entries = runs_index_reads(false) - entries;
	sql(pgurl, "ALTER TABLE runs RESET (autovacuum_enabled)");
	assert_int_equal(sql(pgurl, "SELECT count(*) FROM runs WHERE lease_owner = 'd2'"), 1);
	assert_int_equal(sql(pgurl, "SELECT count(*) FROM runs WHERE lease_owner = 'd1'"), OTHERS);
	assert_int_equal(sql(pgurl, "SELECT count(*) FROM owner_leases WHERE owner = 'd2'"), 0);
	assert_int_equal(scanned, 0);
	assert_true(entries <= 4 * OWN);
}

/* The runs an owner holds, as a dispatcher asks after a claim whose answer
 * it lost: its unfinished runs with their fence and state, not its finished
 * ones nor another owner's, found by its lease index without reading the
 * others' runs. */
static void test_leased_lists_an_owners_unfinished_runs(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	enum { OTHERS = 2000 };
	sql(pgurl, "ALTER TABLE runs SET (autovacuum_enabled = false)");
	owner_lease("d1", 600);
	held_runs("f", OTHERS, "SUBMITTED", "d1", 600);
	owner_lease("d2", 600);
	held_runs("g", 2, "SUBMITTING", "d2", 600);
	held_runs("r", 1, "RUNNING", "d2", 600);
	held_runs("h", 1, "SUCCEEDED", "d2", 600);
	sql(pgurl, "UPDATE runs SET fence = 41 WHERE id = 'g2'");
	long long scanned = runs_scan_reads(true);
	struct pp_leased_run *v = NULL;
	int n = 0;
	assert_int_equal(s->ops->leased(s, "d2", &v, &n, &err), 0);
	scanned = runs_scan_reads(true) - scanned;
	sql(pgurl, "ALTER TABLE runs RESET (autovacuum_enabled)");
	assert_int_equal(n, 3);
	int seen = 0;
	for (int i = 0; i < n; i++) {
		if (!strcmp(v[i].id, "g2")) {
			assert_int_equal(v[i].fence, 41);
			assert_int_equal(v[i].state, PP_ST_SUBMITTING);
			seen |= 1;
		} else if (!strcmp(v[i].id, "r1")) {
			assert_int_equal(v[i].state, PP_ST_RUNNING);
			seen |= 2;
		} else {
			assert_string_equal(v[i].id, "g1");
			assert_int_equal(v[i].fence, 0);
			seen |= 4;
		}
	}
	assert_int_equal(seen, 7);
	free(v);
	assert_int_equal(scanned, 0);
	assert_int_equal(s->ops->leased(s, "nobody", &v, &n, &err), 0);
	assert_int_equal(n, 0);
	free(v);
}

/* The runs of an owner whose lease lapsed are taken again, found by that
 * owner, without reading the runs of live owners, even on a table the
 * planner knows nothing of; the claimer's lease row is made with them.
 * (The contract's concurrent claimers share such runs too.) */
static void test_lapsed_owners_runs_are_found_by_owner(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	enum { TAKE = CLAIM_TAKE };
	claims_planned_on_empty_table(s);
	struct pp_run_rec *runs;
	int n;
	/* Claims that lease nothing write no lease. */
	assert_int_equal(sql(pgurl, "SELECT count(*) FROM owner_leases"), 0);
	owner_lease("d1", 600);
	held_runs("f", 1000, "SUBMITTED", "d1", -100);
	owner_lease("d3", -5);
	held_runs("g", 3, "RUNNING", "d3", -5);
	long long before = runs_index_reads(true);
	assert_int_equal(s->ops->claim(s, "a", "d2", 60000, TAKE, &runs, &n, &err), 0);
	assert_int_equal(n, 3);
	for (int i = 0; i < n; i++)
		assert_int_equal(runs[i].id[0], 'g');
	pp_run_recs_free(runs, n);
	pp_store_close(s);
	*state = NULL;
	long long read = runs_index_reads(false) - before;
	sql(pgurl, "ALTER TABLE runs RESET (autovacuum_enabled)");
	/* d3's runs, each found again by id to be updated: not d1's 1,000. */
	assert_true(read <= 4 * TAKE);
	assert_int_equal(sql(pgurl, "SELECT count(*) FROM runs WHERE lease_owner = 'd2'"
				    " AND fence = 1"),
			 3);
	assert_int_equal(sql(pgurl, "SELECT (expires - (extract(epoch FROM now()) * 1000)::bigint"
				    " > 50000)::int FROM owner_leases WHERE owner = 'd2'"),
			 1);
	/* d3 comes back and claims: its runs are d2's now. */
	assert_int_equal(pp_store_open(pgurl, &s, &err), 0);
	*state = s;
	assert_int_equal(s->ops->claim(s, "a", "d3", 60000, TAKE, &runs, &n, &err), 0);
	assert_int_equal(n, 0);
	free(runs);
}

/* Migration 11 gives each owner holding runs a lease of its own, the
 * latest of its runs' leases: the runs of a store upgraded in place stay
 * held exactly as long as they were. */
static void test_migration_gives_each_owner_a_lease(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	pp_store_close(s);
	*state = NULL;
	/* This store as migration 10 left it. */
	sql(pgurl,
	    "DROP TABLE owner_leases; DROP INDEX runs_lease;"
	    " CREATE INDEX runs_free_lease ON runs(pool, (CASE WHEN lease_owner IS NULL THEN 0"
	    " ELSE lease_expires END)) WHERE state NOT IN ('SUCCEEDED','FAILED','CRASHED',"
	    "'CANCELLED','DEAD','QUARANTINED') AND (state <> 'SCHEDULED' OR lease_owner IS"
	    " NOT NULL); CREATE INDEX runs_owner ON runs(lease_owner) WHERE lease_owner IS NOT"
	    " NULL; UPDATE pushpool_schema SET version = 10");
	held_runs("a", 2, "RUNNING", "d1", 100);
	held_runs("b", 1, "RUNNING", "d1", 200);
	held_runs("c", 2, "SUBMITTED", "d2", -5);
	assert_int_equal(pp_store_pg_open_unmigrated(pgurl, &s, &err), 0);
	*state = s;
	assert_int_equal(s->ops->migrate(s, &err), 0);
	assert_int_equal(sql(pgurl, "SELECT count(*) FROM owner_leases"), 2);
	assert_int_equal(sql(pgurl, "SELECT ((SELECT expires FROM owner_leases WHERE owner = 'd1')"
				    " = (SELECT lease_expires FROM runs WHERE id = 'b1'))::int"),
			 1);
	struct pp_run_rec *runs;
	int n;
	assert_int_equal(s->ops->claim(s, "a", "d3", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 2);
	for (int i = 0; i < n; i++)
		assert_int_equal(runs[i].id[0], 'c');
	pp_run_recs_free(runs, n);
}

/* A list returns n runs "y<first>", "y<first + step>", ... */
static void expect_first(struct pp_store *s, struct pp_run_filter f, int n, int first, int step)
{
	char ids[16][16];
	const char *want[16];
	assert_true(n <= 16);
	for (int i = 0; i < n; i++) {
		snprintf(ids[i], sizeof(ids[i]), "y%d", first + i * step);
		want[i] = ids[i];
	}
	expect_listed(s, f, want, n);
}

/* The count of unfinished runs, and lists, read through indexes on a
 * table the planner knows nothing of (never analysed: it guesses from the
 * pages). Left to itself it read the whole table for the count, twice,
 * as well as once for the finished runs, which have no index to read; and
 * for a list, every run, to sort them. (The same transaction keeps
 * parallel workers out, which on an analysed table cost ten times the
 * count: docs/performance.md, step 54.) */
static void test_counts_and_lists_read_by_index(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	enum { RUNS = 9000, IN_FLIGHT = 100 };
	sql(pgurl, "ALTER TABLE runs SET (autovacuum_enabled = false)");
	char q[400];
	snprintf(q, sizeof(q),
		 "INSERT INTO runs(id, pool, scheduled_ms, state, lease_owner, lease_expires,"
		 " created_ms, updated_ms) SELECT 'y' || i, 'a', i, CASE WHEN i <= %d"
		 " THEN 'SUBMITTED' ELSE 'SUCCEEDED' END, CASE WHEN i <= %d THEN 'd1' END,"
		 " 9000000000000, 0, 0 FROM generate_series(1, %d) AS i",
		 IN_FLIGHT, IN_FLIGHT, RUNS);
	sql(pgurl, q);
	static const char scans_sql[] = "SELECT seq_scan FROM pg_stat_user_tables"
					" WHERE relname = 'runs'",
			  rows_sql[] = "SELECT seq_tup_read FROM pg_stat_user_tables"
				       " WHERE relname = 'runs'";
	long long scans = runs_stat(true, scans_sql), rows = runs_stat(true, rows_sql),
		  entries = runs_index_reads(true);
	struct pp_store_counts c = {0};
	assert_int_equal(s->ops->counts(s, &c, &err), 0);
	assert_int_equal(c.by_state[PP_ST_SUBMITTED], IN_FLIGHT);
	assert_int_equal(c.by_state[PP_ST_SUCCEEDED], RUNS - IN_FLIGHT);
	/* The count's transaction is over, and the next one like it. */
	assert_int_equal(sql(pgurl, "SELECT count(*) FROM pg_stat_activity WHERE application_name"
				    " = 'pushpool' AND state <> 'idle'"),
			 0);
	assert_int_equal(s->ops->counts(s, &c, &err), 0);
	expect_first(s, (struct pp_run_filter){.state = -1, .limit = 10, .newest_first = true}, 10,
		     RUNS, -1);
	expect_first(s, (struct pp_run_filter){.state = -1, .limit = 10}, 10, 1, 1);
	expect_first(
		s,
		(struct pp_run_filter){
			.pool = "a", .state = PP_ST_SUBMITTED, .limit = 5, .newest_first = true},
		5, IN_FLIGHT, -1);
	pp_store_close(s);
	*state = NULL;
	scans = runs_stat(false, scans_sql) - scans;
	rows = runs_stat(false, rows_sql) - rows;
	entries = runs_index_reads(false) - entries;
	sql(pgurl, "ALTER TABLE runs RESET (autovacuum_enabled)");
	/* Two counts, each of which read the finished runs by one scan; the
	 * lists none. Through the indexes, the unfinished runs a few times
	 * over and the first finished ones (711 entries), not every finished
	 * one (9,711 while a list of SUBMITTED runs still read the finished
	 * part). */
	assert_int_equal(scans, 2);
	assert_int_equal(rows, 2 * RUNS);
	assert_true(entries < RUNS / 4);
}

/* The queued writes' batch finds its runs through the primary key, not by
 * reading the table (issue 23). On a young store, analysed while small,
 * PostgreSQL judged a hash join over a read of every run cheaper than 32
 * key lookups: each batch read the whole table, and the dead row versions
 * the writes leave until vacuum comes. The counters are those of the
 * store's own session. */
static void test_queued_writes_find_runs_by_key(void **state)
{
	struct pp_store *s = *state;
	enum { STORED = 2000, BATCH = 32 };
	sql(pgurl, "ALTER TABLE runs SET (autovacuum_enabled = false)");
	held_runs("f", STORED, "SUBMITTED", "d2", 600);
	struct pp_run_rec *runs;
	schedule_and_claim(s, BATCH, &runs);
	sql(pgurl, "ANALYZE runs");
	struct pp_run_update u = {.state = PP_ST_SUBMITTING,
				  .attempt = 1,
				  .next_attempt_ms = -1,
				  .event = "submitting (try 1)"};
	long long before = runs_scan_reads(true);
	queue_and_settle(s, runs, BATCH, &u);
	pp_run_recs_free(runs, BATCH);
	pp_store_close(s);
	*state = NULL;
	long long read = runs_scan_reads(false) - before;
	sql(pgurl, "ALTER TABLE runs RESET (autovacuum_enabled)");
	assert_int_equal(sql(pgurl, "SELECT count(*) FROM runs WHERE state = 'SUBMITTING'"), BATCH);
	/* The counters hold what the session did before the batch too (its
	 * statistics reach the server as it ends): one row read by a scan
	 * there, against the 2,032 of a batch that reads the table. */
	assert_true(read < STORED / 100);
}

/* A claim runs with its generic plan whatever the statistics say (issue
 * 23). With 10,000 finished and 1,000 due runs, analysed, PostgreSQL
 * judged a plan for each claim's arguments cheaper than its generic one
 * and planned every claim anew (2 ms of planning a claim, against 0.5 ms
 * of execution). The counters are those of the store's own session. */
static void test_claim_keeps_its_generic_plan(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	enum { CLAIMS = 8 };
	sql(pgurl,
	    "INSERT INTO runs(id, pool, scheduled_ms, state, created_ms, updated_ms)"
	    " SELECT 'h' || i, 'a', i, 'SUCCEEDED', 0, 0 FROM generate_series(1, 10000) AS i");
	sql(pgurl,
	    "INSERT INTO runs(id, pool, scheduled_ms, state, created_ms, updated_ms)"
	    " SELECT 'd' || i, 'a', i, 'SCHEDULED', 0, 0 FROM generate_series(1, 1000) AS i");
	sql(pgurl, "ANALYZE runs");
	for (int i = 0; i < CLAIMS; i++) {
		struct pp_run_rec *runs;
		int n;
		assert_int_equal(s->ops->claim(s, "a", "d1", 60000, CLAIM_TAKE, &runs, &n, &err),
				 0);
		assert_int_equal(n, CLAIM_TAKE);
		pp_run_recs_free(runs, n);
	}
	struct pp_rows plans = {0};
	assert_int_equal(
		pp_store_db(s)->query(s, "plans",
				      "SELECT generic_plans, custom_plans"
				      " FROM pg_prepared_statements WHERE statement"
				      " LIKE 'WITH q AS (UPDATE runs SET state = ''QUARANTINED''%'",
				      0, NULL, &plans, NULL, &err),
		0);
	assert_int_equal(plans.nrows, 1);
	assert_int_equal(atoi(pp_row(&plans, 0, 0)), CLAIMS);
	assert_int_equal(atoi(pp_row(&plans, 0, 1)), 0);
	pp_rows_free(&plans);
	/* The session's own setting is left as it was, for every other
	 * statement. */
	assert_int_equal(pp_store_db(s)->query(s, "mode", "SHOW plan_cache_mode", 0, NULL, &plans,
					       NULL, &err),
			 0);
	assert_string_equal(pp_row(&plans, 0, 0), "auto");
	pp_rows_free(&plans);
}

/* The answer of the claim sent on fd, taken (claim_take) once it has come. */
static int take_when_answered(struct pp_store *s, int fd, struct pp_run_rec **runs, int *n,
			      struct pp_error *err)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	bool done = false;
	int rc = 0;
	/* A readable descriptor may carry part of the answer: wait for more. */
	for (int i = 0; !done; i++) {
		assert_true(i < 100);
		assert_int_equal(poll(&p, 1, 10000), 1);
		rc = s->ops->claim_take(s, false, &done, runs, n, err);
	}
	return rc;
}

/* A claim sent without waiting (claim_send) runs on a session of its own:
 * its answer is what claim returns (the intents taken, and a pool with a
 * limit claimed through the limited claim); while another session's lock
 * holds it, its answer is not in and the store's own statements go on; a
 * second claim is refused until it is answered; a session lost fails the
 * claim, and the next one reconnects. */
static void test_claim_sent_without_waiting(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	struct pp_run_rec *runs = NULL, r;
	int n = 0;
	bool done = false;
	char first[PP_ID_LEN], second[PP_ID_LEN];
	s->claim_intents = true;
	int64_t due = pp_wall_ms() - 1;
	schedule(s, "a", 0, due, first);
	schedule(s, "a", 0, due + 1, second);
	for (int i = 2; i < 4; i++)
		schedule(s, "a", 0, due + i, NULL);
	assert_int_equal(s->ops->claim_take(s, false, &done, &runs, &n, &err), PP_EINVALID);
	assert_true(done);
	int fd = s->ops->claim_send(s, "a", "d1", 60000, 1, &err);
	if (fd < 0)
		fail_msg("claim_send: %s", err.msg);
	assert_int_equal(take_when_answered(s, fd, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].id, first);
	assert_int_equal(runs[0].state, PP_ST_SUBMITTING);
	assert_int_equal(runs[0].attempt, 1);
	assert_true(runs[0].intent_claimed);
	pp_run_recs_free(runs, n);

	/* A lock that lets reads through and holds every write of runs (the
	 * claim is prepared on its session already: a PREPARE would wait). */
	PGconn *blocker = PQconnectdb(pgurl);
	assert_int_equal(PQstatus(blocker), CONNECTION_OK);
	PQclear(PQexec(blocker, "BEGIN; LOCK TABLE runs IN SHARE ROW EXCLUSIVE MODE"));
	fd = s->ops->claim_send(s, "a", "d1", 60000, 2, &err);
	assert_true(fd >= 0);
	assert_int_equal(s->ops->claim_send(s, "a", "d1", 60000, 2, &err), PP_ECONFLICT);
	usleep(100000);
	assert_int_equal(s->ops->claim_take(s, false, &done, &runs, &n, &err), 0);
	assert_false(done);
	assert_int_equal(n, 0);
	assert_int_equal(s->ops->get(s, second, &r, NULL, NULL, &err), 0);
	assert_int_equal(r.state, PP_ST_SCHEDULED);
	pp_run_rec_free(&r);
	PQclear(PQexec(blocker, "COMMIT"));
	PQfinish(blocker);
	assert_int_equal(take_when_answered(s, fd, &runs, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(runs[0].id, second);
	for (int i = 0; i < n; i++) {
		assert_int_equal(runs[i].state, PP_ST_SUBMITTING);
		assert_int_equal(runs[i].attempt, 1);
		assert_true(runs[i].intent_claimed);
	}
	pp_run_recs_free(runs, n);

	/* A pool with a limit of 1: one run, through the limited claim. */
	assert_int_equal(pp_pool_set(s, "lim", 1, -1, &err), 0);
	schedule(s, "lim", 0, due, NULL);
	schedule(s, "lim", 0, due + 1, NULL);
	fd = s->ops->claim_send(s, "lim", "d1", 60000, 10, &err);
	assert_true(fd >= 0);
	assert_int_equal(take_when_answered(s, fd, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].pool, "lim");
	assert_true(runs[0].intent_claimed);
	pp_run_recs_free(runs, n);

	/* Every session of the store ends: this claim fails, as it is sent
	 * or when its answer is read; the next one reconnects. */
	sql(pgurl, "SELECT pg_terminate_backend(pid, 30000) FROM pg_stat_activity"
		   " WHERE application_name = 'pushpool' AND pid <> pg_backend_pid()");
	fd = s->ops->claim_send(s, "a", "d1", 60000, 2, &err);
	int rc = fd >= 0 ? take_when_answered(s, fd, &runs, &n, &err) : fd;
	assert_int_equal(rc, PP_ETRANSIENT);
	assert_int_equal(n, 0);
	fd = s->ops->claim_send(s, "a", "d1", 60000, 2, &err);
	assert_true(fd >= 0);
	assert_int_equal(take_when_answered(s, fd, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	pp_run_recs_free(runs, n);
}

struct deletion {
	struct pp_store *s;
	int rc, removed;
	struct pp_error err;
	int done;
};

static void *delete_deployment(void *arg)
{
	struct deletion *d = arg;

	d->rc = pp_deploy_delete(d->s, "dep", &d->removed, &d->err);
	__atomic_store_n(&d->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* run_events has no foreign key (migration 14), so a deletion of runs must
 * keep every event with its run by itself: it locks the runs first and
 * deletes only those, each with its events. Here a dispatcher holds one of
 * the deployment's unstarted runs in a transaction of its own (its claim:
 * the row changed, its intent's event written) when the deployment is
 * deleted. The deletion waits for it, then leaves that run, with its whole
 * history, and deletes the others with theirs: no event is left without
 * its run, and no run kept loses an event. (Deleting the events of every
 * run unstarted when the deletion began, as it once did, took the held
 * run's first event.) */
static void test_deleted_runs_take_their_events_only(void **state)
{
	struct pp_store *s = *state;
	struct deletion d = {.s = s};
	pthread_t t;

	assert_int_equal(sql(pgurl, "SELECT count(*) FROM pg_constraint WHERE conrelid ="
				    " 'run_events'::regclass AND contype = 'f'"),
			 0);
	sql(pgurl, "INSERT INTO deployments(name, id, pool, queue, job_variables, parameters,"
		   " tags, paused, concurrency_limit, collision, created_ms, updated_ms)"
		   " VALUES ('dep', 'dep-id', 'a', 'default', '{}', '{}', '[]', 0, 0, 'enqueue',"
		   " 0, 0)");
	sql(pgurl, "INSERT INTO runs(id, pool, deployment, source, scheduled_ms, state,"
		   " created_ms, updated_ms) SELECT 'u' || i, 'a', 'dep', 'deployment', i,"
		   " 'SCHEDULED', 0, 0 FROM generate_series(1, 3) AS i");
	sql(pgurl, "INSERT INTO run_events(run_id, ts_ms, state, message)"
		   " SELECT id, 0, 'SCHEDULED', 'created' FROM runs");
	PGconn *claimer = PQconnectdb(pgurl);
	assert_int_equal(PQstatus(claimer), CONNECTION_OK);
	PQclear(PQexec(claimer,
		       "BEGIN; UPDATE runs SET state = 'SUBMITTING', lease_owner = 'd1',"
		       " attempt = 1 WHERE id = 'u2'; INSERT INTO run_events(run_id, ts_ms,"
		       " state, message) VALUES ('u2', 1, 'SUBMITTING', 'submitting')"));
	assert_int_equal(pthread_create(&t, NULL, delete_deployment, &d), 0);
	/* Until the deletion waits on the claimer's lock (not a time), or
	 * ended without waiting (which the checks below then judge). */
	while (!__atomic_load_n(&d.done, __ATOMIC_ACQUIRE) &&
	       sql(pgurl, "SELECT count(*) FROM pg_locks WHERE NOT granted") == 0)
		poll(NULL, 0, 5);
	PQclear(PQexec(claimer, "COMMIT"));
	PQfinish(claimer);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (d.rc)
		fail_msg("delete: %s", d.err.msg);
	assert_int_equal(d.removed, 2);
	assert_int_equal(sql(pgurl, "SELECT count(*) FROM runs"), 1);
	assert_int_equal(sql(pgurl, "SELECT count(*) FROM run_events WHERE run_id = 'u2'"), 2);
	assert_int_equal(sql(pgurl, "SELECT count(*) FROM run_events e WHERE NOT EXISTS"
				    " (SELECT 1 FROM runs r WHERE r.id = e.run_id)"),
			 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrate_and_schema_check),
		cmocka_unit_test_setup_teardown(test_keys_compare_bytes, pg_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_deleted_runs_take_their_events_only, pg_setup,
						store_teardown),
		cmocka_unit_test(test_bad_url_and_password_stay_out_of_errors),
		cmocka_unit_test_setup_teardown(test_notify_wakes_idle_dispatcher, pg_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_reconnects_after_connection_loss, pg_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_queued_writes_settle_in_order, pg_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_write_after_a_failed_one_is_refused, pg_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_queued_writes_many_and_lost, pg_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_queued_writes_sent_without_waiting, pg_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_queued_writes_find_runs_by_key, pg_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_claim_keeps_its_generic_plan, pg_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_leased_lists_an_owners_unfinished_runs,
						pg_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_claim_sent_without_waiting, pg_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_claim_reads_only_what_it_takes, pg_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_counts_and_lists_read_by_index, pg_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_release_finds_runs_by_owner, pg_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_renewal_writes_one_row, pg_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_lapsed_owners_runs_are_found_by_owner,
						pg_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_migration_gives_each_owner_a_lease, pg_setup,
						store_teardown),
	};
	return cmocka_run_group_tests(tests, pg_server_up, pg_server_down);
}
