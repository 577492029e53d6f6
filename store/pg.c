/* The shared run store: one PostgreSQL database behind any number of
 * dispatcher hosts. Same schema and semantics as the SQLite store, with
 * these differences, each for the same reason (several hosts, one queue):
 *
 * - Leases expire by the database server's clock. Hosts share no
 *   monotonic clock and their wall clocks drift, so every lease expiry is
 *   computed and compared inside SQL with now(); due times (scheduled_ms,
 *   next_attempt_ms) are compared with the server clock too.
 * - Claims are one statement: SELECT ... FOR UPDATE SKIP LOCKED picks the
 *   rows, the UPDATE around it bumps each fence; dispatchers claiming at
 *   once skip each other's rows instead of queueing on them.
 * - Every write after a claim names the fence it was claimed with and
 *   changes nothing (PP_ECONFLICT) when another claim has bumped it.
 * - A lost connection is reopened on the next call, with backoff; the
 *   calls in between fail PP_ETRANSIENT and the loop retries them.
 * - Each connection LISTENs on "pushpool_runs"; inserting a due run or
 *   releasing a claimable one NOTIFYs, so idle dispatchers claim at once.
 * - The schema is applied by `pushpool store migrate`, not on open: the
 *   dispatchers' role needs no DDL rights, and hosts of a rolling upgrade
 *   never race to change it. */
#include "store/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>

#include "lib/log.h"

#define CHANNEL		 "pushpool_runs"
#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000
/* The server's clock in ms since the epoch, as one value per statement. */
#define NOW_MS	 "(extract(epoch from now()) * 1000)::bigint"
#define TERMINAL "('SUCCEEDED','FAILED','CRASHED','CANCELLED','DEAD','QUARANTINED')"
/* The terminal states when migration 1 was written: its text never changes. */
#define TERMINAL_V1 "('SUCCEEDED','FAILED','CRASHED','CANCELLED','DEAD')"

struct pg_store {
	struct pp_store base;
	PGconn *conn;
	char *conninfo;	   /* the url as given; may hold a password */
	char where[256];   /* postgresql://user@host:port/db, for messages */
	int64_t retry_at;  /* monotonic ms; no reconnect attempt before */
	long backoff_ms;   /* 0 while connected */
	int reconnects;	   /* failed attempts since the connection was lost */
	bool wake_pending; /* a reconnect may have missed notifications */
};

static const char *const migrations[] = {
	/* 1: runs and their history */
	"CREATE TABLE runs ("
	" id TEXT PRIMARY KEY, pool TEXT NOT NULL, name TEXT, deployment TEXT,"
	" job_variables TEXT NOT NULL DEFAULT '{}', parameters TEXT NOT NULL DEFAULT '{}',"
	" source TEXT NOT NULL DEFAULT 'local', source_ref TEXT,"
	" scheduled_ms BIGINT NOT NULL, next_attempt_ms BIGINT NOT NULL DEFAULT 0,"
	" priority INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL,"
	" infra_id TEXT, idem_key TEXT, attempt INTEGER NOT NULL DEFAULT 0,"
	" lease_owner TEXT, lease_expires BIGINT NOT NULL DEFAULT 0,"
	" fence BIGINT NOT NULL DEFAULT 0, cancel_requested BOOLEAN NOT NULL DEFAULT false,"
	" last_error TEXT, created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL);"
	"CREATE INDEX runs_claimable ON runs(pool, priority DESC, scheduled_ms)"
	" WHERE state NOT IN " TERMINAL_V1 ";"
	"CREATE INDEX runs_owner ON runs(lease_owner);"
	"CREATE UNIQUE INDEX runs_source_ref ON runs(source, source_ref);"
	"CREATE TABLE run_events ("
	" seq BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id),"
	" ts_ms BIGINT NOT NULL, state TEXT NOT NULL, message TEXT);"
	"CREATE INDEX run_events_run ON run_events(run_id, seq);",
	/* 2: provisioning locks and journals (`pushpool provision`) */
	"CREATE TABLE provisions ("
	" pool TEXT PRIMARY KEY, owner TEXT, lease_expires BIGINT NOT NULL DEFAULT 0,"
	" owned TEXT NOT NULL DEFAULT '', updated_ms BIGINT NOT NULL);",
};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))
/* Advisory lock key serialising `store migrate` run from several hosts. */
#define MIGRATE_LOCK "7365636"

static void on_notice(void *arg, const char *message)
{
	(void)arg;
	pp_debug("postgresql: %.*s", (int)strcspn(message, "\n"), message);
}

static void pg_disconnect(struct pg_store *s)
{
	if (s->conn)
		PQfinish(s->conn);
	s->conn = NULL;
}

static void schedule_reconnect(struct pg_store *s)
{
	if (s->backoff_ms == 0) {
		/* First failure: the next call retries at once (a restarted server
		 * is usually back), later ones back off with jitter. */
		s->backoff_ms = RECONNECT_MIN_MS;
		s->retry_at = 0;
		return;
	}
	long jitter = s->backoff_ms / 2 +
		      (long)((unsigned long)rand() % (unsigned long)(s->backoff_ms / 2 + 1));
	s->retry_at = pp_mono_ms() + jitter;
	s->backoff_ms = s->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : s->backoff_ms * 2;
}

/* Copy libpq's message (one line, secrets redacted) into err. */
static int fail_msg(struct pg_store *s, struct pp_error *err, int code, const char *what,
		    const char *msg)
{
	char m[PP_ERRMSG_MAX];
	snprintf(m, sizeof(m), "%s", msg && *msg ? msg : "unknown error");
	m[strcspn(m, "\n")] = '\0';
	pp_redact(m);
	return pp_fail(err, code, "store %s: %s: %s", s->where, what, m);
}

static int pg_connect(struct pg_store *s, struct pp_error *err)
{
	/* Defaults first: later keywords win, so the url's own settings
	 * override them. Keepalives and a TCP timeout notice a dead server or a
	 * network split instead of blocking the loop on a silent socket. */
	const char *const keys[] = {"connect_timeout",
				    "application_name",
				    "keepalives",
				    "keepalives_idle",
				    "keepalives_interval",
				    "keepalives_count",
				    "tcp_user_timeout",
				    "dbname",
				    NULL};
	const char *const vals[] = {"5", "pushpool", "1",	  "10", "5",
				    "3", "15000",    s->conninfo, NULL};
	pg_disconnect(s);
	s->conn = PQconnectdbParams(keys, vals, 1);
	if (!s->conn)
		return pp_fail(err, PP_ENOMEM, "store %s: out of memory", s->where);
	if (PQstatus(s->conn) != CONNECTION_OK) {
		int rc = fail_msg(s, err, PP_ETRANSIENT, "cannot connect", PQerrorMessage(s->conn));
		pg_disconnect(s);
		return rc;
	}
	PQsetNoticeProcessor(s->conn, on_notice, NULL);
	PGresult *res = PQexec(s->conn, "LISTEN " CHANNEL);
	int rc = 0;
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = fail_msg(s, err, PP_ETRANSIENT, "LISTEN", PQresultErrorMessage(res));
	PQclear(res);
	if (rc)
		pg_disconnect(s);
	return rc;
}

/* A usable connection, reopening a lost one when its backoff allows. */
static int ensure_conn(struct pg_store *s, struct pp_error *err)
{
	if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
		return 0;
	if (s->backoff_ms == 0)
		schedule_reconnect(s);
	int64_t now = pp_mono_ms();
	if (now < s->retry_at)
		return pp_fail(err, PP_ETRANSIENT,
			       "store %s: connection lost; reconnecting in %lld ms", s->where,
			       (long long)(s->retry_at - now));
	int rc = pg_connect(s, err);
	if (rc) {
		s->reconnects++;
		schedule_reconnect(s);
		return rc;
	}
	pp_info("store %s: reconnected after %d failed attempt(s)", s->where, s->reconnects);
	s->backoff_ms = 0;
	s->reconnects = 0;
	s->wake_pending = true;
	return 0;
}

static bool sqlstate_is(const PGresult *res, const char *prefix)
{
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	return st && !strncmp(st, prefix, strlen(prefix));
}

/* Run one statement with text parameters (NULL entries are SQL NULL), or
 * without parameters a script of several.
 * Returns the result, or NULL with *rc and err set: PP_ECONFLICT for a
 * unique violation, PP_ETRANSIENT for a lost connection, a server shutting
 * down, or a serialisation failure, else PP_EIO. */
static PGresult *query(struct pg_store *s, const char *what, const char *sql, int nparams,
		       const char *const *params, int *rc, struct pp_error *err)
{
	*rc = ensure_conn(s, err);
	if (*rc)
		return NULL;
	PGresult *res = nparams ? PQexecParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0)
				: PQexec(s->conn, sql);
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	bool lost = PQstatus(s->conn) != CONNECTION_OK;
	int code = PP_EIO;
	if (sqlstate_is(res, "23505"))
		code = PP_ECONFLICT;
	else if (lost || sqlstate_is(res, "08") || sqlstate_is(res, "57P") ||
		 sqlstate_is(res, "53") || sqlstate_is(res, "40001") || sqlstate_is(res, "40P01"))
		code = PP_ETRANSIENT;
	*rc = fail_msg(s, err, code, what,
		       res ? PQresultErrorMessage(res) : PQerrorMessage(s->conn));
	PQclear(res);
	if (lost) {
		pp_warn("%s", err->msg);
		pg_disconnect(s);
	}
	return NULL;
}

static int command(struct pg_store *s, const char *what, const char *sql, struct pp_error *err)
{
	int rc;
	PGresult *res = query(s, what, sql, 0, NULL, &rc, err);
	PQclear(res);
	return rc;
}

static void i64(char *buf, size_t n, int64_t v)
{
	snprintf(buf, n, "%lld", (long long)v);
}

static int schema_version(struct pg_store *s, int *version, struct pp_error *err)
{
	int rc;
	*version = 0;
	PGresult *res =
		query(s, "read schema version", "SELECT to_regclass('pushpool_schema') IS NOT NULL",
		      0, NULL, &rc, err);
	if (!res)
		return rc;
	bool exists = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!exists)
		return 0;
	res = query(s, "read schema version",
		    "SELECT COALESCE(MAX(version), 0) FROM pushpool_schema", 0, NULL, &rc, err);
	if (!res)
		return rc;
	*version = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

static int pg_migrate(struct pp_store *base, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	int rc = command(s, "begin migration", "BEGIN", err);
	if (rc)
		return rc;
	int version = 0;
	rc = command(s, "lock for migration", "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")",
		     err);
	if (!rc)
		rc = command(
			s, "create schema table",
			"CREATE TABLE IF NOT EXISTS pushpool_schema (version INTEGER NOT NULL)",
			err);
	if (!rc)
		rc = schema_version(s, &version, err);
	if (!rc && version > NMIGRATIONS)
		rc = pp_fail(err, PP_EINVALID,
			     "store %s: schema version %d is newer than this pushpool (%d)",
			     s->where, version, NMIGRATIONS);
	for (int v = version; v < NMIGRATIONS && !rc; v++) {
		char what[48];
		snprintf(what, sizeof(what), "migration %d", v + 1);
		rc = command(s, what, migrations[v], err);
		if (!rc) {
			char sql[96];
			snprintf(sql, sizeof(sql),
				 "DELETE FROM pushpool_schema; INSERT INTO pushpool_schema VALUES "
				 "(%d)",
				 v + 1);
			rc = command(s, "record schema version", sql, err);
		}
	}
	if (rc) {
		if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
			PQclear(PQexec(s->conn, "ROLLBACK"));
		return rc;
	}
	if (version < NMIGRATIONS)
		pp_info("store %s: schema migrated from version %d to %d", s->where, version,
			NMIGRATIONS);
	return command(s, "commit migration", "COMMIT", err);
}

static void pg_close(struct pp_store *base)
{
	struct pg_store *s = (struct pg_store *)base;
	if (!s)
		return;
	pg_disconnect(s);
	free(s->conninfo);
	free(s);
}

/* "postgresql://user@host:port/db" from the url, without its password;
 * the password itself is registered as a secret. */
static int describe_url(struct pg_store *s, const char *url, struct pp_error *err)
{
	char *msg = NULL;
	PQconninfoOption *opts = PQconninfoParse(url, &msg);
	if (!opts) {
		PQfreemem(msg);
		return pp_fail(err, PP_EINVALID,
			       "store url is not a valid PostgreSQL connection URI (see "
			       "https://www.postgresql.org/docs/current/libpq-connect.html)");
	}
	const char *user = "", *host = "", *port = "", *db = "";
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val)
			continue;
		if (!strcmp(o->keyword, "password") || !strcmp(o->keyword, "sslpassword"))
			pp_secret_register(o->val);
		else if (!strcmp(o->keyword, "user"))
			user = o->val;
		else if (!strcmp(o->keyword, "host"))
			host = o->val;
		else if (!strcmp(o->keyword, "port"))
			port = o->val;
		else if (!strcmp(o->keyword, "dbname"))
			db = o->val;
	}
	snprintf(s->where, sizeof(s->where), "postgresql://%s%s%s%s%s/%s", user, *user ? "@" : "",
		 host, *port ? ":" : "", port, db);
	PQconninfoFree(opts);
	return 0;
}

int pp_store_pg_open_unmigrated(const char *url, struct pp_store **out, struct pp_error *err)
{
	*out = NULL;
	struct pg_store *s = calloc(1, sizeof(*s));
	if (!s || !(s->conninfo = strdup(url))) {
		free(s);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	s->base.ops = &pp_store_pg;
	int rc = describe_url(s, url, err);
	if (!rc)
		rc = pg_connect(s, err);
	if (rc) {
		pg_close(&s->base);
		return rc;
	}
	*out = &s->base;
	return 0;
}

static int pg_open(const char *url, struct pp_store **out, struct pp_error *err)
{
	struct pp_store *base;
	int rc = pp_store_pg_open_unmigrated(url, &base, err);
	if (rc)
		return rc;
	struct pg_store *s = (struct pg_store *)base;
	int version = 0;
	rc = schema_version(s, &version, err);
	if (!rc && version != NMIGRATIONS)
		rc = pp_fail(err, PP_EINVALID,
			     "store %s: schema version %d, this pushpool needs %d%s", s->where,
			     version, NMIGRATIONS,
			     version < NMIGRATIONS ? ": run `pushpool store migrate` first" : "");
	if (rc) {
		pg_close(base);
		return rc;
	}
	*out = base;
	return 0;
}

static char *dup_value(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : strdup(PQgetvalue(res, row, col));
}

#define RUN_COLUMNS                                                                                \
	"id, pool, name, deployment, job_variables, parameters, source, source_ref, infra_id,"     \
	" idem_key, last_error, scheduled_ms, next_attempt_ms, created_ms, updated_ms, priority,"  \
	" attempt, state, cancel_requested, fence"

static int row_to_rec(const PGresult *res, int row, struct pp_run_rec *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "%s", PQgetvalue(res, row, 0));
	snprintf(r->pool, sizeof(r->pool), "%s", PQgetvalue(res, row, 1));
	r->name = dup_value(res, row, 2);
	r->deployment = dup_value(res, row, 3);
	r->job_variables = dup_value(res, row, 4);
	r->parameters = dup_value(res, row, 5);
	r->source = dup_value(res, row, 6);
	r->source_ref = dup_value(res, row, 7);
	r->infra_id = dup_value(res, row, 8);
	r->idem_key = dup_value(res, row, 9);
	r->last_error = dup_value(res, row, 10);
	r->scheduled_ms = strtoll(PQgetvalue(res, row, 11), NULL, 10);
	r->next_attempt_ms = strtoll(PQgetvalue(res, row, 12), NULL, 10);
	r->created_ms = strtoll(PQgetvalue(res, row, 13), NULL, 10);
	r->updated_ms = strtoll(PQgetvalue(res, row, 14), NULL, 10);
	r->priority = atoi(PQgetvalue(res, row, 15));
	r->attempt = atoi(PQgetvalue(res, row, 16));
	if (pp_store_state_read(PQgetvalue(res, row, 17), &r->state, &r->last_error))
		return PP_ENOMEM;
	r->cancel_requested = PQgetvalue(res, row, 18)[0] == 't';
	r->fence = strtoll(PQgetvalue(res, row, 19), NULL, 10);
	return 0;
}

static int collect(struct pg_store *s, PGresult *res, struct pp_run_rec **out, int *n,
		   struct pp_error *err)
{
	int rows = PQntuples(res);
	*out = NULL;
	*n = 0;
	if (rows == 0)
		return 0;
	struct pp_run_rec *v = calloc((size_t)rows, sizeof(*v));
	if (!v)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	for (int i = 0; i < rows; i++) {
		if (row_to_rec(res, i, &v[i])) {
			pp_run_recs_free(v, i + 1);
			return pp_fail(err, PP_ENOMEM, "store %s: out of memory reading runs",
				       s->where);
		}
	}
	*out = v;
	*n = rows;
	return 0;
}

static int pg_insert(struct pp_store *base, struct pp_run_rec *r, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	if (!r->id[0] && pp_uuid4(r->id))
		return pp_fail(err, PP_EIO, "no random bytes for a run id");
	char sched[24], next[24], prio[16];
	i64(sched, sizeof(sched), r->scheduled_ms);
	i64(next, sizeof(next), r->next_attempt_ms);
	snprintf(prio, sizeof(prio), "%d", r->priority);
	const char *const p[] = {
		r->id,
		r->pool,
		r->name,
		r->deployment,
		r->job_variables ? r->job_variables : "{}",
		r->parameters ? r->parameters : "{}",
		r->source ? r->source : "local",
		r->source_ref,
		sched,
		next,
		prio,
		pp_store_state_name(r->state),
	};
	/* One statement, so one transaction: the run, its first event, and the
	 * wake-up of idle dispatchers (delivered at commit) when it is due. */
	static const char sql[] =
		"WITH r AS (INSERT INTO runs(id, pool, name, deployment, job_variables, parameters,"
		"  source, source_ref, scheduled_ms, next_attempt_ms, priority, state, created_ms,"
		"  updated_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12," NOW_MS "," NOW_MS
		")"
		"  RETURNING id, pool, state, scheduled_ms, next_attempt_ms, created_ms),"
		" e AS (INSERT INTO run_events(run_id, ts_ms, state, message)"
		"  SELECT id, created_ms, state, 'created' FROM r)"
		" SELECT created_ms, (SELECT count(pg_notify('" CHANNEL "', pool)) FROM r"
		"  WHERE state = 'SCHEDULED' AND GREATEST(scheduled_ms, next_attempt_ms) <= " NOW_MS
		")"
		" FROM r";
	int rc;
	PGresult *res = query(s, "insert run", sql, (int)(sizeof(p) / sizeof(p[0])), p, &rc, err);
	if (!res) {
		if (rc == PP_ECONFLICT)
			return pp_fail(err, PP_ECONFLICT, "run %s (source %s %s) already exists",
				       r->id, r->source ? r->source : "local",
				       r->source_ref ? r->source_ref : "");
		return rc;
	}
	r->created_ms = r->updated_ms = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

/* Before each claim: a row whose state no pushpool state names is set
 * aside (QUARANTINED, never claimed) with its reason and an event, instead
 * of failing every claim of its pool. Each row is quarantined once, so it is
 * reported once. */
static int quarantine_unknown(struct pg_store *s, struct pp_error *err)
{
	char max[16];
	snprintf(max, sizeof(max), "%d", PP_QUARANTINE_STATE_MAX);
	const char *const p[] = {max};
	static const char sql[] =
		"WITH q AS (UPDATE runs SET state = 'QUARANTINED', lease_owner = NULL,"
		"  updated_ms = " NOW_MS ", last_error = '" PP_QUARANTINE_WHY "\"'"
		"  || left(state, $1::int) || '\"'"
		/* The first test lets the claimable index (whose predicate it is)
		 * narrow the scan to unfinished rows. */
		"  WHERE state NOT IN " TERMINAL_V1 " AND state NOT IN " PP_STORE_STATES_SQL
		"  RETURNING id, last_error, updated_ms),"
		" e AS (INSERT INTO run_events(run_id, ts_ms, state, message)"
		"  SELECT id, updated_ms, 'QUARANTINED', last_error FROM q)"
		" SELECT id, last_error FROM q";
	int rc;
	PGresult *res = query(s, "quarantine runs", sql, 1, p, &rc, err);
	if (!res)
		return rc;
	for (int i = 0; i < PQntuples(res); i++)
		pp_warn("store %s: run %s %s; it will not be dispatched (see runs show)", s->where,
			PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
	PQclear(res);
	return 0;
}

static int pg_claim(struct pp_store *base, const char *pool, const char *owner, int64_t lease_ms,
		    int max, struct pp_run_rec **out, int *n, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	*out = NULL;
	*n = 0;
	if (max <= 0)
		return 0;
	int qrc = quarantine_unknown(s, err);
	if (qrc)
		return qrc;
	char lease[24], lim[16];
	i64(lease, sizeof(lease), lease_ms);
	snprintf(lim, sizeof(lim), "%d", max);
	const char *const p[] = {owner, lease, pool, lim};
	/* Running and submitting runs come first (they are somebody's
	 * unfinished work), then due runs by priority and age. SKIP LOCKED:
	 * rows another dispatcher is claiming right now are left to it, and
	 * FOR UPDATE re-checks the WHERE on rows committed since our snapshot,
	 * so a row is never leased twice. */
	static const char sql[] =
		"UPDATE runs r SET lease_owner = $1, lease_expires = " NOW_MS " + $2::bigint,"
		" fence = r.fence + 1, updated_ms = " NOW_MS
		" FROM (SELECT id FROM runs WHERE state NOT IN " TERMINAL
		"  AND ($3::text IS NULL OR pool = $3)"
		"  AND (state <> 'SCHEDULED' OR scheduled_ms <= " NOW_MS ")"
		"  AND next_attempt_ms <= " NOW_MS
		"  AND (lease_owner IS NULL OR lease_expires < " NOW_MS ")"
		"  ORDER BY (state = 'SCHEDULED'), priority DESC, scheduled_ms"
		"  LIMIT $4::int FOR UPDATE SKIP LOCKED) c"
		" WHERE r.id = c.id RETURNING r.id, r.pool, r.name, r.deployment, r.job_variables,"
		" r.parameters, r.source, r.source_ref, r.infra_id, r.idem_key, r.last_error,"
		" r.scheduled_ms, r.next_attempt_ms, r.created_ms, r.updated_ms, r.priority,"
		" r.attempt, r.state, r.cancel_requested, r.fence";
	int rc;
	PGresult *res = query(s, "claim runs", sql, 4, p, &rc, err);
	if (!res)
		return rc;
	rc = collect(s, res, out, n, err);
	PQclear(res);
	return rc;
}

static int pg_renew(struct pp_store *base, const char *owner, int64_t lease_ms,
		    struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	char lease[24];
	i64(lease, sizeof(lease), lease_ms);
	const char *const p[] = {owner, lease};
	/* Leases that expired while we stalled are extended too when nobody
	 * has claimed them since: a claim replaces lease_owner, so a row still
	 * naming us was never taken over. */
	int rc;
	PGresult *res = query(s, "renew leases",
			      "UPDATE runs SET lease_expires = " NOW_MS " + $2::bigint"
			      " WHERE lease_owner = $1 AND state NOT IN " TERMINAL,
			      2, p, &rc, err);
	PQclear(res);
	return rc;
}

static int pg_update(struct pp_store *base, const char *id, int64_t fence,
		     const struct pp_run_update *u, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	char fen[24], att[16], next[24];
	i64(fen, sizeof(fen), fence);
	snprintf(att, sizeof(att), "%d", u->attempt);
	i64(next, sizeof(next), u->next_attempt_ms);
	const char *const p[] = {
		pp_store_state_name(u->state), u->infra_id, u->idem_key, att,	   next, u->error,
		u->release_lease ? "t" : "f",  id,	    fen,	 u->event,
	};
	/* The fence in the WHERE is the whole guard: zero rows means a later
	 * claim owns the run. A released, still claimable run wakes the other
	 * dispatchers. */
	static const char sql[] =
		"WITH u AS (UPDATE runs SET state = $1, updated_ms = " NOW_MS ","
		"  infra_id = COALESCE($2, infra_id), idem_key = COALESCE($3, idem_key),"
		"  attempt = CASE WHEN $4::int < 0 THEN attempt ELSE $4::int END,"
		"  next_attempt_ms = CASE WHEN $5::bigint < 0 THEN next_attempt_ms ELSE $5::bigint "
		"END,"
		"  last_error = CASE WHEN $6::text IS NULL THEN last_error WHEN $6::text = '' THEN "
		"NULL"
		"   ELSE $6::text END,"
		"  lease_owner = CASE WHEN $7::bool THEN NULL ELSE lease_owner END"
		"  WHERE id = $8 AND fence = $9::bigint"
		"  RETURNING id, pool, state, updated_ms, lease_owner, next_attempt_ms),"
		" e AS (INSERT INTO run_events(run_id, ts_ms, state, message)"
		"  SELECT id, updated_ms, state, $10 FROM u WHERE $10::text IS NOT NULL)"
		" SELECT (SELECT count(*) FROM u), (SELECT count(pg_notify('" CHANNEL
		"', pool)) FROM u"
		"  WHERE lease_owner IS NULL AND state NOT IN " TERMINAL
		"  AND next_attempt_ms <= " NOW_MS ")";
	int rc;
	PGresult *res = query(s, "update run", sql, (int)(sizeof(p) / sizeof(p[0])), p, &rc, err);
	if (!res)
		return rc;
	bool changed = atoi(PQgetvalue(res, 0, 0)) > 0;
	PQclear(res);
	if (!changed)
		return pp_fail(err, PP_ECONFLICT, "run %s: lease lost (fence %lld is stale)", id,
			       (long long)fence);
	return 0;
}

static int pg_get(struct pp_store *base, const char *id, struct pp_run_rec *out,
		  struct pp_run_event **ev, int *nev, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	const char *const p[] = {id};
	int rc;
	/* The exact id through the primary key (the loop's case), else an
	 * unambiguous prefix (`runs show`); left() needs no LIKE escaping. */
	PGresult *res = query(s, "get run", "SELECT " RUN_COLUMNS " FROM runs WHERE id = $1", 1, p,
			      &rc, err);
	if (res && PQntuples(res) == 0 && strlen(id) < PP_ID_LEN - 1) {
		PQclear(res);
		res = query(s, "get run",
			    "SELECT " RUN_COLUMNS
			    " FROM runs WHERE left(id, length($1)) = $1 LIMIT 2",
			    1, p, &rc, err);
	}
	if (!res)
		return rc;
	struct pp_run_rec *rows = NULL;
	int n = 0;
	rc = collect(s, res, &rows, &n, err);
	PQclear(res);
	if (rc)
		return rc;
	if (n == 0 || (n == 2 && strcmp(rows[0].id, id))) {
		pp_run_recs_free(rows, n);
		return pp_fail(err, n ? PP_EINVALID : PP_ENOTFOUND,
			       n ? "run id prefix %s is ambiguous" : "run %s not found", id);
	}
	*out = rows[0];
	memset(&rows[0], 0, sizeof(rows[0]));
	pp_run_recs_free(rows, n);
	if (!ev)
		return 0;
	*ev = NULL;
	*nev = 0;
	const char *const q[] = {out->id};
	res = query(s, "read events",
		    "SELECT ts_ms, state, message FROM run_events WHERE run_id = $1 ORDER BY seq",
		    1, q, &rc, err);
	if (!res) {
		pp_run_rec_free(out);
		return rc;
	}
	int rows_ev = PQntuples(res);
	if (rows_ev > 0 && !(*ev = calloc((size_t)rows_ev, sizeof(**ev)))) {
		PQclear(res);
		pp_run_rec_free(out);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	for (int i = 0; i < rows_ev; i++) {
		struct pp_run_event *e = &(*ev)[i];
		e->ts_ms = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		snprintf(e->state, sizeof(e->state), "%s", PQgetvalue(res, i, 1));
		e->message = dup_value(res, i, 2);
	}
	*nev = rows_ev;
	PQclear(res);
	return 0;
}

static int pg_list(struct pp_store *base, const struct pp_run_filter *f, struct pp_run_rec **out,
		   int *n, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", f ? f->limit : 0);
	const char *const p[] = {
		f ? f->pool : NULL,
		f && f->state >= 0 ? pp_store_state_name((enum pp_store_state)f->state) : NULL,
		f && f->limit > 0 ? lim : NULL,
	};
	int rc;
	PGresult *res = query(
		s, "list runs",
		f && f->newest_first
			? "SELECT " RUN_COLUMNS " FROM runs WHERE ($1::text IS NULL OR pool = $1)"
			  " AND ($2::text IS NULL OR state = $2)"
			  " ORDER BY scheduled_ms DESC, id DESC LIMIT $3::int"
			: "SELECT " RUN_COLUMNS " FROM runs WHERE ($1::text IS NULL OR pool = $1)"
			  " AND ($2::text IS NULL OR state = $2) ORDER BY scheduled_ms, id"
			  " LIMIT $3::int",
		3, p, &rc, err);
	if (!res)
		return rc;
	rc = collect(s, res, out, n, err);
	PQclear(res);
	return rc;
}

static int pg_request_cancel(struct pp_store *base, const char *id, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	const char *const p[] = {id};
	/* A run nobody has submitted yet is cancelled right here; one that may
	 * exist remotely is left for its dispatcher to stop. */
	int rc;
	PGresult *res = query(
		s, "cancel run",
		"WITH u AS (UPDATE runs SET cancel_requested = true, updated_ms = " NOW_MS ","
		"  state = CASE WHEN state = 'SCHEDULED' AND (lease_owner IS NULL"
		"   OR lease_expires < " NOW_MS ") THEN 'CANCELLED' ELSE state END"
		"  WHERE id = $1 AND state NOT IN " TERMINAL "  RETURNING id, state, updated_ms),"
		" e AS (INSERT INTO run_events(run_id, ts_ms, state, message)"
		"  SELECT id, updated_ms, state, 'cancel requested' FROM u)"
		" SELECT state FROM u",
		1, p, &rc, err);
	if (!res)
		return rc;
	int rows = PQntuples(res);
	PQclear(res);
	if (rows == 0)
		return pp_fail(err, PP_ENOTFOUND, "run %s not found or already finished", id);
	return 0;
}

static int pg_cancel_requests(struct pp_store *base, const char *owner, char (**ids)[PP_ID_LEN],
			      int *n, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	const char *const p[] = {owner};
	*ids = NULL;
	*n = 0;
	int rc;
	PGresult *res = query(s, "read cancel requests",
			      "SELECT id FROM runs WHERE lease_owner = $1 AND cancel_requested"
			      " AND state NOT IN " TERMINAL,
			      1, p, &rc, err);
	if (!res)
		return rc;
	int rows = PQntuples(res);
	if (rows > 0 && !(*ids = calloc((size_t)rows, PP_ID_LEN))) {
		PQclear(res);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	for (int i = 0; i < rows; i++)
		snprintf((*ids)[i], PP_ID_LEN, "%s", PQgetvalue(res, i, 0));
	*n = rows;
	PQclear(res);
	return 0;
}

static int pg_counts(struct pp_store *base, struct pp_store_counts *out, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	memset(out, 0, sizeof(*out));
	int rc;
	PGresult *res =
		query(s, "count runs",
		      "SELECT state, count(*), NULL::bigint, pool FROM runs GROUP BY pool, state"
		      " UNION ALL SELECT NULL, NULL, MIN(scheduled_ms), NULL FROM runs"
		      " WHERE state = 'SCHEDULED' AND scheduled_ms <= " NOW_MS " ORDER BY 4",
		      0, NULL, &rc, err);
	if (!res)
		return rc;
	for (int i = 0; i < PQntuples(res); i++) {
		enum pp_store_state state;
		if (!PQgetisnull(res, i, 0)) {
			/* A row not yet quarantined counts as the quarantined it
			 * will be. */
			char *why = NULL;
			if (!pp_store_state_read(PQgetvalue(res, i, 0), &state, &why))
				pp_store_counts_add(out, PQgetvalue(res, i, 3), state,
						    strtol(PQgetvalue(res, i, 1), NULL, 10));
			free(why);
		} else if (!PQgetisnull(res, i, 2)) {
			out->oldest_due_ms = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		}
	}
	PQclear(res);
	return 0;
}

static int pg_next_due(struct pp_store *base, int64_t *ms, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	*ms = 0;
	int rc;
	PGresult *res = query(s, "next due run",
			      "SELECT MIN(GREATEST(scheduled_ms, next_attempt_ms)) FROM runs"
			      " WHERE state NOT IN " TERMINAL " AND lease_owner IS NULL",
			      0, NULL, &rc, err);
	if (!res)
		return rc;
	if (!PQgetisnull(res, 0, 0))
		*ms = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

static int pg_wake_fd(struct pp_store *base)
{
	struct pg_store *s = (struct pg_store *)base;
	return s->conn && PQstatus(s->conn) == CONNECTION_OK ? PQsocket(s->conn) : -1;
}

static int pg_wake_drain(struct pp_store *base)
{
	struct pg_store *s = (struct pg_store *)base;
	int woken = s->wake_pending;
	s->wake_pending = false;
	if (!s->conn || PQstatus(s->conn) != CONNECTION_OK)
		return woken;
	if (!PQconsumeInput(s->conn)) {
		/* The server went away while we were idle; the next call reconnects. */
		char m[PP_ERRMSG_MAX];
		snprintf(m, sizeof(m), "%s", PQerrorMessage(s->conn));
		m[strcspn(m, "\n")] = '\0';
		pp_redact(m);
		pp_warn("store %s: connection lost: %s", s->where, m);
		pg_disconnect(s);
		return woken;
	}
	PGnotify *nt;
	while ((nt = PQnotifies(s->conn))) {
		woken++;
		PQfreemem(nt);
	}
	return woken;
}

/* Provisioning locks, on the server's clock: every host agrees on it. */
static int pg_prov_lock(struct pp_store *base, const char *pool, const char *owner,
			int64_t lease_ms, const char *steal_from, char **owned, char *holder,
			struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	char lease[24];
	int rc;

	*owned = NULL;
	holder[0] = '\0';
	i64(lease, sizeof(lease), lease_ms);
	const char *const p[] = {pool, owner, lease, steal_from ? steal_from : owner};
	PGresult *res = query(
		s, "provisioning lock",
		"INSERT INTO provisions(pool, owner, lease_expires, updated_ms)"
		" VALUES ($1, $2, " NOW_MS " + $3::bigint, " NOW_MS ") ON CONFLICT (pool) DO UPDATE"
		" SET owner = $2, lease_expires = " NOW_MS " + $3::bigint, updated_ms = " NOW_MS
		" WHERE provisions.owner IS NULL OR provisions.owner = $2 OR provisions.owner = $4"
		" OR provisions.lease_expires < " NOW_MS " RETURNING owned",
		4, p, &rc, err);
	if (!res)
		return rc;
	if (PQntuples(res) == 1) {
		*owned = strdup(PQgetvalue(res, 0, 0));
		PQclear(res);
		return *owned ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
	}
	PQclear(res);
	const char *const q[] = {pool};
	res = query(s, "provisioning lock", "SELECT owner FROM provisions WHERE pool = $1", 1, q,
		    &rc, err);
	if (!res)
		return rc;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		snprintf(holder, PP_PROV_OWNER_MAX, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return pp_fail(err, PP_ECONFLICT, "pool %s is being provisioned by %s", pool,
		       holder[0] ? holder : "another process");
}

static int pg_prov_save(struct pp_store *base, const char *pool, const char *owner,
			int64_t lease_ms, const char *owned, bool release, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	char lease[24];
	int rc;

	i64(lease, sizeof(lease), lease_ms);
	const char *const p[] = {pool, owner, owned, lease, release ? "t" : "f"};
	PGresult *res = query(s, "provisioning save",
			      "UPDATE provisions SET owned = $3,"
			      " lease_expires = CASE WHEN $5::boolean THEN 0 ELSE " NOW_MS
			      " + $4::bigint END,"
			      " owner = CASE WHEN $5::boolean THEN NULL ELSE owner END,"
			      " updated_ms = " NOW_MS " WHERE pool = $1 AND owner = $2",
			      5, p, &rc, err);
	if (!res)
		return rc;
	rc = atoi(PQcmdTuples(res)) == 0
		     ? pp_fail(err, PP_ECONFLICT, "pool %s: provisioning lock lost", pool)
		     : 0;
	PQclear(res);
	return rc;
}

static int pg_prov_get(struct pp_store *base, const char *pool, char **owned, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	const char *const p[] = {pool};
	int rc;
	PGresult *res = query(s, "provisioning read",
			      "SELECT owned FROM provisions WHERE pool = $1", 1, p, &rc, err);

	if (!res)
		return rc;
	*owned = strdup(PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	return *owned ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
}

const struct pp_store_ops pp_store_pg = {
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.migrate = pg_migrate,
	.insert = pg_insert,
	.claim = pg_claim,
	.renew = pg_renew,
	.update = pg_update,
	.get = pg_get,
	.list = pg_list,
	.request_cancel = pg_request_cancel,
	.cancel_requests = pg_cancel_requests,
	.counts = pg_counts,
	.next_due = pg_next_due,
	.wake_fd = pg_wake_fd,
	.wake_drain = pg_wake_drain,
	.prov_lock = pg_prov_lock,
	.prov_save = pg_prov_save,
	.prov_get = pg_prov_get,
};
