/* What only the SQLite run store does: a lease whose owner process died is
 * free at once (owner lock files), and a corrupt or unreachable file is a
 * clear error. The behaviour every store shares is in contract.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "store/deploy.h"
#include "tests/unit/store/fixture.h"

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
		char ok = pp_store_open(sqlite_path, &c, &err) == 0 &&
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
	snprintf(lock, sizeof(lock), "%s.owners/%s", sqlite_path, "646f6f6d6564"); /* "doomed" */
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

static void test_corrupt_file_is_a_clear_error(void **state)
{
	(void)state;
	char bad[128];
	snprintf(bad, sizeof(bad), "%s/bad.db", sqlite_dir);
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

/* A store the previous pushpool wrote (schema 1, the text of its migration)
 * migrates on open: its runs read back, in the default queue, and the
 * deployment tables are there. */
static void test_schema_1_store_upgrades(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/v1.db", sqlite_dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
		sqlite3_exec(
			db,
			"CREATE TABLE runs ("
			" id TEXT PRIMARY KEY, pool TEXT NOT NULL, name TEXT, deployment TEXT,"
			" job_variables TEXT NOT NULL DEFAULT '{}', parameters TEXT NOT NULL "
			"DEFAULT '{}',"
			" source TEXT NOT NULL DEFAULT 'local', source_ref TEXT,"
			" scheduled_ms INTEGER NOT NULL, next_attempt_ms INTEGER NOT NULL DEFAULT "
			"0,"
			" priority INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL,"
			" infra_id TEXT, idem_key TEXT, attempt INTEGER NOT NULL DEFAULT 0,"
			" lease_owner TEXT, lease_expires INTEGER NOT NULL DEFAULT 0, lease_boot "
			"TEXT,"
			" fence INTEGER NOT NULL DEFAULT 0, cancel_requested INTEGER NOT NULL "
			"DEFAULT 0,"
			" last_error TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT "
			"NULL);"
			"CREATE INDEX runs_due ON runs(state, pool, priority DESC, scheduled_ms);"
			"CREATE INDEX runs_owner ON runs(lease_owner);"
			"CREATE UNIQUE INDEX runs_source_ref ON runs(source, source_ref);"
			"CREATE TABLE run_events ("
			" run_id TEXT NOT NULL REFERENCES runs(id), ts_ms INTEGER NOT NULL,"
			" state TEXT NOT NULL, message TEXT);"
			"CREATE INDEX run_events_run ON run_events(run_id, ts_ms);"
			"INSERT INTO runs(id, pool, scheduled_ms, state, created_ms, updated_ms)"
			" VALUES ('00000000-0000-4000-8000-000000000001', 'a', 1, 'SCHEDULED', 1, "
			"1);"
			"PRAGMA user_version = 1;",
			NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);
	struct pp_store *s = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_store_open(path, &s, &err), 0);
	struct pp_run_rec *runs;
	int n;
	assert_int_equal(s->ops->claim(s, "a", "d1", 60000, 5, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_null(runs[0].queue);
	pp_run_recs_free(runs, n);
	struct pp_queue_rec *q;
	assert_int_equal(pp_queue_set(s, "a", "fast", 1, 2, -1, &err), 0);
	assert_int_equal(pp_queue_list(s, "a", &q, &n, &err), 0);
	assert_int_equal(n, 1);
	pp_queue_recs_free(q, n);
	pp_store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dead_owner_lease_is_free_at_once, sqlite_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_file_is_a_clear_error, sqlite_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_schema_1_store_upgrades, sqlite_setup,
						store_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
