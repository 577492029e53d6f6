/* Fixtures shared by the store suites: a fresh SQLite file in a temporary
 * directory, or a throwaway PostgreSQL server started by tests/pg-env.sh
 * (the Debian package postgresql, which `make test-deps` installs: without
 * it the PostgreSQL suites fail rather than pass unseen). Each suite that
 * includes this is one test binary, so the static state is its own. */
#ifndef PP_TEST_STORE_FIXTURE_H
#define PP_TEST_STORE_FIXTURE_H

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/pg.h"
#include "store/store.h"

static char sqlite_dir[64];
static char sqlite_path[96];
static char pgdir[256];
static char pgurl[256];

/* Run one SQL statement on its own connection (test set-up, not the store);
 * returns its first value as a number (0 when it returns no rows). */
static inline long long sql(const char *url, const char *text)
{
	PGconn *c = PQconnectdb(url);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	PGresult *r = PQexec(c, text);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", text, PQresultErrorMessage(r));
	long long v = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
	PQclear(r);
	PQfinish(c);
	return v;
}

/* Group set-up: start the server and migrate its database once. */
static inline int pg_server_up(void **state)
{
	(void)state;
	FILE *p = popen("sh tests/pg-env.sh start", "r");
	if (!p)
		return -1;
	char line[512];
	while (fgets(line, sizeof(line), p)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "PGDIR=", 6))
			snprintf(pgdir, sizeof(pgdir), "%s", line + 6);
		else if (!strncmp(line, "PGURL=", 6))
			snprintf(pgurl, sizeof(pgurl), "%s", line + 6);
	}
	if (pclose(p) != 0 || !pgurl[0]) {
		fprintf(stderr, "tests/pg-env.sh start failed: is the Debian package postgresql "
				"installed (make test-deps)?\n");
		return -1;
	}
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

static inline int pg_server_down(void **state)
{
	(void)state;
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "sh tests/pg-env.sh stop %s", pgdir);
	return pgdir[0] ? system(cmd) : 0;
}

/* Per-test set-up: an empty store of each kind, opened as a dispatcher does. */
static inline int pg_setup(void **state)
{
	sql(pgurl, "TRUNCATE runs, run_events, owner_leases, deployments, deployment_schedules, "
		   "work_queues, "
		   "pool_settings");
	struct pp_store *s = NULL;
	struct pp_error err = {0};
	if (pp_store_open(pgurl, &s, &err))
		fail_msg("open %s: %s", pgurl, err.msg);
	*state = s;
	return 0;
}

static inline int sqlite_setup(void **state)
{
	snprintf(sqlite_dir, sizeof(sqlite_dir), "/tmp/pp-store-XXXXXX");
	assert_non_null(mkdtemp(sqlite_dir));
	snprintf(sqlite_path, sizeof(sqlite_path), "%s/runs.db", sqlite_dir);
	struct pp_store *s = NULL;
	struct pp_error err = {0};
	if (pp_store_open(sqlite_path, &s, &err))
		fail_msg("open %s: %s", sqlite_path, err.msg);
	*state = s;
	return 0;
}

static inline int store_teardown(void **state)
{
	pp_store_close(*state);
	if (sqlite_dir[0]) {
		char cmd[160];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", sqlite_dir);
		sqlite_dir[0] = '\0';
		return system(cmd);
	}
	return 0;
}

/* The URL a second handle (another dispatcher) opens on the same store. */
static inline const char *store_url(void)
{
	return sqlite_dir[0] ? sqlite_path : pgurl;
}

/* Insert a SCHEDULED run due at `at` (wall ms); its id goes to id_out. */
static inline void schedule(struct pp_store *s, const char *pool, int prio, int64_t at,
			    char *id_out)
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

/* After owner d1 renewed (the store's own test of owner leases): another
 * claimer takes only DEAD_RUN, the run of an owner whose lease expired,
 * none of d1's; d1's release lets its lease row go with its runs. COUNT
 * reads a number from the store's tables (CTX: its connection). */
static inline void expect_d1_holds_until_released(struct pp_store *s, const char *dead_run,
						  long long (*count)(void *ctx, const char *sql),
						  void *ctx)
{
	struct pp_error err = {0};
	struct pp_run_rec *runs;
	int n;
	assert_int_equal(s->ops->claim(s, "a", "d2", 60000, 10, &runs, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].id, dead_run);
	pp_run_recs_free(runs, n);
	assert_int_equal(s->ops->release_all(s, "d1", &err), 0);
	assert_int_equal(count(ctx, "SELECT count(*) FROM owner_leases WHERE owner = 'd1'"), 0);
	assert_int_equal(count(ctx, "SELECT count(*) FROM runs WHERE lease_owner = 'd1'"), 0);
}

/* A list of the store returns exactly the runs want names, in order. */
static inline void expect_listed(struct pp_store *s, struct pp_run_filter f,
				 const char *const *want, int nwant)
{
	struct pp_run_rec *runs;
	int n;
	struct pp_error err = {0};
	assert_int_equal(s->ops->list(s, &f, &runs, &n, &err), 0);
	assert_int_equal(n, nwant);
	for (int i = 0; i < n; i++)
		assert_string_equal(runs[i].id, want[i]);
	pp_run_recs_free(runs, n);
}

#endif
