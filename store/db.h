/* For store backends only: the few SQL primitives store/deploy.c is
 * written on, so deployments, queues and the limit-aware claim exist once
 * for SQLite and PostgreSQL. Statements use $1..$N parameters (SQLite binds
 * them by name), values travel as text (SQLite binds integer-looking text
 * as an integer), and the SQL sticks to what both dialects accept
 * (CAST(x AS BIGINT), ON CONFLICT DO NOTHING, RETURNING). */
#ifndef PP_STORE_DB_H
#define PP_STORE_DB_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/err.h"
#include "store/store.h"

/* A result: nrows x ncols values, NULL for SQL NULL; all owned. */
struct pp_rows {
	int nrows, ncols;
	char **v;
};
void pp_rows_free(struct pp_rows *r);
static inline const char *pp_row(const struct pp_rows *r, int row, int col)
{
	return r->v[row * r->ncols + col];
}

struct pp_db_ops {
	/* A write transaction (SQLite: BEGIN IMMEDIATE). */
	int (*begin)(struct pp_store *s, struct pp_error *err);
	int (*commit)(struct pp_store *s, struct pp_error *err);
	void (*rollback)(struct pp_store *s);
	/* One statement; rows into out when non-NULL, rows changed into
	 * *changes when non-NULL. PP_ECONFLICT on a unique violation. */
	int (*query)(struct pp_store *s, const char *what, const char *sql, int np,
		     const char *const *p, struct pp_rows *out, long *changes,
		     struct pp_error *err);
	/* The store's clock in ms (PostgreSQL: the server's, the one its leases
	 * and due times are judged by). */
	int (*now_ms)(struct pp_store *s, int64_t *ms, struct pp_error *err);
	/* Lease the n runs ids, each SCHEDULED and held by nobody, to owner
	 * as the backend's claim does (fence + 1): got[i] says whether ids[i]
	 * was free and is leased now, out[i] (the caller's to free) holds it
	 * then. One statement on PostgreSQL, whose round trip each run cost. */
	int (*lease)(struct pp_store *s, const char *const *ids, int n, const char *owner,
		     int64_t lease_ms, struct pp_run_rec *out, bool *got, struct pp_error *err);
	/* The count of runs holding a slot of pool $1 ([PP_SLOT_POOL]), of
	 * queue $2 of pool $1 ([PP_SLOT_QUEUE]) or of deployment $1
	 * ([PP_SLOT_DEPLOYMENT]), as this backend's indexes answer it
	 * without reading finished runs; NULL: store/deploy.c's own (which
	 * PostgreSQL answers for a deployment through runs_deployment). */
	const char *count_active[3];
	/* What a SELECT ends with to lock the rows it reads until the
	 * transaction ends (PostgreSQL: " FOR UPDATE"; SQLite: "", whose write
	 * transaction holds the whole database). */
	const char *lock_rows;
};
enum { PP_SLOT_POOL, PP_SLOT_QUEUE, PP_SLOT_DEPLOYMENT };
/* The states of a run not finished: due or under way. */
#define PP_UNFINISHED_SQL "('SCHEDULED','SUBMITTING','SUBMITTED','RUNNING','CANCELLING')"

/* A later migration of both backends: the indexes on columns that most
 * runs leave NULL hold only the runs that have a value. A run scheduled
 * here has no schedule slot, deployment or source reference, and a run
 * nobody holds (every finished one) has no lease owner. A state change
 * then writes none of these indexes for such a run: SQLite rewrites an
 * index whose columns change (runs_deployment holds the state),
 * PostgreSQL adds an entry to every index whose predicate the new row
 * version meets (issue 23). Lookups name the column with `=`, which
 * implies IS NOT NULL to both planners; uniqueness is unchanged, as NULLs
 * never collide. And no planner can read runs_owner for `lease_owner IS
 * NULL`, every finished run, when it means the due runs (as a claim on a
 * new PostgreSQL store did). */
#define PP_SPARSE_INDEX_MIGRATION                                                                  \
	"DROP INDEX runs_owner;"                                                                   \
	"CREATE INDEX runs_owner ON runs(lease_owner) WHERE lease_owner IS NOT NULL;"              \
	"DROP INDEX runs_slot;"                                                                    \
	"CREATE UNIQUE INDEX runs_slot ON runs(slot_key) WHERE slot_key IS NOT NULL;"              \
	"DROP INDEX runs_deployment;"                                                              \
	"CREATE INDEX runs_deployment ON runs(deployment, state) WHERE deployment IS NOT NULL;"    \
	"DROP INDEX runs_source_ref;"                                                              \
	"CREATE UNIQUE INDEX runs_source_ref ON runs(source, source_ref)"                          \
	" WHERE source_ref IS NOT NULL;"

/* Migration 2 of both backends (the same text: it sticks to types both
 * accept): deployments, their schedules, work queues, pool settings, and
 * the runs' queue, waiting reason, slot and schedule keys. */
#define PP_DEPLOY_MIGRATION                                                                        \
	"ALTER TABLE runs ADD COLUMN queue TEXT;"                                                  \
	"ALTER TABLE runs ADD COLUMN waiting TEXT;"                                                \
	"ALTER TABLE runs ADD COLUMN slot_key TEXT;"                                               \
	"ALTER TABLE runs ADD COLUMN schedule_key TEXT;"                                           \
	"CREATE UNIQUE INDEX runs_slot ON runs(slot_key);"                                         \
	"CREATE INDEX runs_deployment ON runs(deployment, state);"                                 \
	"CREATE TABLE deployments ("                                                               \
	" name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, pool TEXT NOT NULL,"                     \
	" queue TEXT NOT NULL, description TEXT, job_variables TEXT NOT NULL,"                     \
	" parameters TEXT NOT NULL, parameter_schema TEXT, tags TEXT NOT NULL,"                    \
	" paused INTEGER NOT NULL, concurrency_limit INTEGER NOT NULL,"                            \
	" collision TEXT NOT NULL, created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,"        \
	" entrypoint TEXT);"                                                                       \
	"CREATE TABLE deployment_schedules ("                                                      \
	" deployment TEXT NOT NULL REFERENCES deployments(name) ON DELETE CASCADE,"                \
	" skey TEXT NOT NULL, kind TEXT NOT NULL, timezone TEXT, cron TEXT, rrule TEXT,"           \
	" day_or INTEGER NOT NULL, interval_s BIGINT NOT NULL, anchor BIGINT NOT NULL,"            \
	" active INTEGER NOT NULL, catchup TEXT NOT NULL, catchup_window BIGINT NOT NULL,"         \
	" overlap TEXT NOT NULL, cursor_s BIGINT NOT NULL, pos INTEGER NOT NULL,"                  \
	" gen BIGINT NOT NULL, parameters TEXT NOT NULL, PRIMARY KEY (deployment, skey));"         \
	"CREATE TABLE work_queues ("                                                               \
	" pool TEXT NOT NULL, name TEXT NOT NULL, priority INTEGER NOT NULL,"                      \
	" concurrency_limit INTEGER NOT NULL DEFAULT 0, paused INTEGER NOT NULL DEFAULT 0,"        \
	" PRIMARY KEY (pool, name), UNIQUE (pool, priority));"                                     \
	"CREATE TABLE pool_settings ("                                                             \
	" pool TEXT PRIMARY KEY, concurrency_limit INTEGER NOT NULL DEFAULT 0,"                    \
	" paused INTEGER NOT NULL DEFAULT 0);"

/* Backends give theirs here (store.c dispatches on the store's ops). */
const struct pp_db_ops *pp_store_db(const struct pp_store *s);
extern const struct pp_db_ops pp_db_sqlite, pp_db_pg;

#endif
