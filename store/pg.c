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
 *   once skip each other's rows instead of queueing on them. Only pools
 *   with limits to count claim their due runs one dispatcher at a time.
 * - Statements are prepared once per connection.
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
#include "store/db.h"
#include "store/deploy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>

#include "lib/buf.h"
#include "lib/log.h"

#define CHANNEL "pushpool_runs"
/* update_sql's parameters (and batch_sql's arrays). */
#define UPDATE_NPARAMS	 10
#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000
/* The server's clock in ms since the epoch, as one value per statement. */
#define NOW_MS "(extract(epoch from now()) * 1000)::bigint"
/* The same as the statement runs, not as its transaction began: the time
 * of a run's intent taken by a claim, whose transaction (a limited claim:
 * several statements) may have begun before writes it then saw commit,
 * so that the history never shows the intent before them. */
#define CLOCK_MS "(extract(epoch from clock_timestamp()) * 1000)::bigint"
#define TERMINAL "('SUCCEEDED','FAILED','CRASHED','CANCELLED','DEAD','QUARANTINED')"
/* The states a run ends in (a quarantined row is set aside, not ended). */
#define FINISHED "('SUCCEEDED','FAILED','CRASHED','CANCELLED','DEAD')"
/* The terminal states when migration 1 was written: its text never changes. */
#define TERMINAL_V1 "('SUCCEEDED','FAILED','CRASHED','CANCELLED','DEAD')"
/* The state lists when migration 6 was written, likewise. */
#define TERMINAL_V6 "('SUCCEEDED','FAILED','CRASHED','CANCELLED','DEAD','QUARANTINED')"
/* runs_lease's predicate (migrations 6 and 11): runs in flight, and
 * SCHEDULED runs somebody claimed. A query names it whole for the planner
 * to take the index. */
#define FREE_LEASE_WHERE                                                                           \
	"state NOT IN " TERMINAL_V6 " AND (state <> 'SCHEDULED' OR lease_owner IS NOT NULL)"
/* Whether run R's lease is free for a claim to take (or a cancel to end
 * the run at once): released, or its owner's lease (owner_leases,
 * migration 11) has expired, and so has the run's own, which its claim
 * set. A renewal writes the owner's row alone; the run's own expiry only
 * matters while a claim is taking it: a claim that finds the row locked
 * by another, just committed, sees that claim's expiry on it and leaves
 * it (the owner's row it read before may still say expired). An owner
 * with no row holds its runs: every owner a run names has one (the
 * migration made them, a claim writes its own in the statement that
 * leases, and a row goes only when no unfinished run names it). */
#define LEASE_FREE(R)                                                                              \
	"(" R ".lease_owner IS NULL OR (" R ".lease_expires < " NOW_MS " AND EXISTS (SELECT 1"     \
	" FROM owner_leases l WHERE l.owner = " R ".lease_owner AND l.expires < " NOW_MS ")))"
/* Owner $1's lease extended to now + $2 ms (never shortened), its row
 * made if it has none: a renewal. */
#define OWN_LEASE                                                                                  \
	"INSERT INTO owner_leases(owner, expires) VALUES ($1, " NOW_MS " + $2::bigint)"            \
	" ON CONFLICT (owner) DO UPDATE SET expires = GREATEST(owner_leases.expires,"              \
	" EXCLUDED.expires)"
/* When COND holds, owner $1's row made if it has none: all a claim needs,
 * as the runs it leases are held by their own expiry meanwhile and
 * renewals keep the row (a claim writes nothing for it otherwise). */
#define OWNER_ROW_IF(COND)                                                                         \
	"INSERT INTO owner_leases(owner, expires) SELECT $1, " NOW_MS " + $2::bigint WHERE " COND  \
	" ON CONFLICT (owner) DO NOTHING"
#define STATES_V6                                                                                  \
	"('SCHEDULED','SUBMITTING','SUBMITTED','RUNNING','CANCELLING','SUCCEEDED','FAILED',"       \
	"'CRASHED','CANCELLED','DEAD','QUARANTINED')"

/* Statements prepared on the current connection: the server parses each
 * once per session and may keep its plan, instead of parsing and planning
 * every run's update again. This file's own statements (static text) are
 * known by their address, store/deploy.c's (some built at run time) by
 * their text. Past the cap statements go unnamed, parsed per call. */
#define PG_PREPARED_MAX 96
struct pg_prepared {
	const char *fixed; /* static text, or NULL: sql holds a copy */
	char *sql;
	unsigned long hash;
};
enum sql_kind {
	SQL_STATIC, /* one statement in static storage: text fixed at its address */
	SQL_BUILT,  /* one statement, possibly in a reused buffer */
	SQL_SCRIPT, /* several statements, no parameters: never prepared */
	/* As SQL_STATIC, run under settings of its own (exec_planned): */
	SQL_GENERIC,  /* always with its generic plan */
	SQL_BY_KEY,   /* its rows joined through their keys */
	SQL_BY_INDEX, /* read through indexes only, without parallel workers */
	SQL_KINDS
};

/* The answer of a pipeline (pipeline_send) as far as pipeline_read has
 * read it: how many of its results (stage), and the statement's result or
 * the first failure once read. */
struct pipeline_read {
	int stage;
	PGresult *res;
};

struct pg_store {
	struct pp_store base;
	PGconn *conn;
	struct pg_prepared prepared[PG_PREPARED_MAX]; /* named "pp<index>" */
	int nprepared;
	char *conninfo;	   /* the url as given; may hold a password */
	char where[256];   /* postgresql://user@host:port/db, for messages */
	int64_t retry_at;  /* monotonic ms; no reconnect attempt before */
	long backoff_ms;   /* 0 while connected */
	int reconnects;	   /* failed attempts since the connection was lost */
	bool wake_pending; /* a reconnect may have missed notifications */
	/* The counts, kept between calls (pg_counts). */
	struct pp_store_counts_cache counted;
	/* update_queue's writes since the last update_settle, in order: the
	 * first nread have their outcome, the next nsent are the batch in
	 * flight (update_send: sent, its answer not read yet), the others
	 * wait in batch, one array per parameter of batch_sql, sent as one
	 * statement when another statement is about to run, update_send or
	 * settle asks. */
	struct pg_queued *queued;
	int nqueued, queued_cap, nread, nsent;
	struct pp_buf batch[UPDATE_NPARAMS];
	/* The batch in flight: its pipeline's answer as read so far. */
	struct pipeline_read sent;
	/* Claims sent without waiting (claim_send) go over a session of
	 * their own, so that neither the queued writes' pipeline nor any
	 * other statement of this session waits behind one, nor it behind
	 * them: that session's store, opened at the first such claim
	 * (without LISTEN: is_claimer), and the claim unanswered, with the
	 * arguments its answer is read with (claim_answer). */
	struct pg_store *claimer;
	bool is_claimer;
	struct {
		bool sent;
		struct pipeline_read read;
		char *pool, *owner;
		int64_t lease_ms;
		int max;
	} claim;
};

/* A queued write and, once sent, its outcome. */
struct pg_queued {
	char id[PP_ID_LEN];
	int64_t fence;
	int rc;
	char *msg; /* why it failed (rc != 0); NULL without memory */
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
	/* 3: the store's identity, labelled on every remote object its runs
	 * create, so a sweeper removes only its own store's objects: a random
	 * UUID (version 4 layout), made once. md5 of random() rather than
	 * gen_random_uuid(), which needs PostgreSQL 13 or pgcrypto. */
	"CREATE TABLE pushpool_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"INSERT INTO pushpool_meta SELECT 'store_id', substr(h, 1, 8) || '-' ||"
	" substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-' ||"
	" substr('89ab', 1 + floor(random() * 4)::int, 1) || substr(h, 18, 3) || '-' ||"
	" substr(h, 21, 12) FROM (SELECT md5(random()::text || clock_timestamp()::text ||"
	" random()::text) AS h) AS r;",
	/* 4: reruns of a finished run (reopen) */
	"ALTER TABLE runs ADD COLUMN rerun INTEGER NOT NULL DEFAULT 0;",
	/* 5: deployments, schedules, work queues, pool settings (store/db.h) */
	PP_DEPLOY_MIGRATION,
	/* 6: the claim's three searches by index (CLAIM_SQL, whose predicates
	 * these are), each reading only what it may take, not every unfinished
	 * run: rows of unknown state (none, normally), leases free to take
	 * (released: 0, else expired by the server's clock), and due runs. */
	"CREATE INDEX runs_unknown_state ON runs(id) WHERE state NOT IN " STATES_V6 ";"
	"CREATE INDEX runs_free_lease ON runs(pool, (CASE WHEN lease_owner IS NULL THEN 0"
	" ELSE lease_expires END)) WHERE " FREE_LEASE_WHERE ";"
	"CREATE INDEX runs_due ON runs(pool, scheduled_ms) WHERE state = 'SCHEDULED'"
	" AND lease_owner IS NULL;",
	/* 7: due runs in the claim's order, for pools without work queues
	 * (CLAIM_SQL's due_plain): the claim reads the few rows it takes
	 * instead of sorting every due run of the pool. */
	"CREATE INDEX runs_due_order ON runs(pool, priority DESC, scheduled_ms, id)"
	" WHERE state = 'SCHEDULED' AND lease_owner IS NULL;",
	/* 8: indexes on columns most runs leave NULL hold only the runs that
	 * have a value (store/db.h). runs_claimable and runs_due go: on a
	 * table not analysed yet (a new store, or one just filled) the
	 * planner chose them for the claim over the indexes made for it
	 * (migrations 6 and 7), and read every unfinished run of the pool,
	 * those in flight included, or every due one, at each claim; and
	 * every write of a run added an entry to runs_claimable. Due runs are
	 * found by runs_due_order alone (issue 23). */
	PP_SPARSE_INDEX_MIGRATION "DROP INDEX runs_claimable;"
				  "DROP INDEX runs_due;",
	/* 9: the runs a dispatcher holds that somebody asked to cancel
	 * (pg_cancel_requests, every half second), found without reading
	 * every run it holds (issue 23) */
	"CREATE INDEX runs_cancel ON runs(lease_owner)"
	" WHERE cancel_requested AND lease_owner IS NOT NULL;",
	/* 10: finished runs in the order lists show them (the status page's
	 * newest first every 5 s, `pushpool runs`), so that a list reads the
	 * runs it returns, not every run (350 ms a page with 1,000,000
	 * stored). Finished runs only: a write of a run in flight is never a
	 * HOT update (its state is in other indexes' predicates) and adds an
	 * entry to every index whose predicate it meets, and this one it
	 * meets only once, at the end. The unfinished runs come from the
	 * claim's indexes (pg_list). */
	"CREATE INDEX runs_done_time ON runs(scheduled_ms, id) WHERE state IN " TERMINAL_V6 ";",
	/* 11: one lease a dispatcher instead of one a run: a renewal wrote
	 * every run its dispatcher held, each a new row version in every
	 * index (lease_expires was in runs_free_lease), about 5 MB of WAL a
	 * renewal with 10,000 held. Now it writes its owner's row (LEASE_FREE;
	 * issue 23). Each owner holding runs gets its row here. The claim
	 * finds free leases by owner: runs released (lease_owner NULL) and
	 * runs of owners whose lease expired, one search each. */
	"CREATE TABLE owner_leases (owner TEXT PRIMARY KEY, expires BIGINT NOT NULL);"
	"INSERT INTO owner_leases SELECT lease_owner, max(lease_expires) FROM runs"
	" WHERE lease_owner IS NOT NULL GROUP BY lease_owner;"
	"DROP INDEX runs_free_lease;"
	"CREATE INDEX runs_lease ON runs(lease_owner, pool) WHERE " FREE_LEASE_WHERE ";",
	/* 12: runs_owner goes. Every statement that looks runs up by owner
	 * asks for unfinished ones and names runs_lease's predicate (a
	 * renewal, a release, a claim's lapsed runs) or has an index of its
	 * own (runs_cancel). In a bench pass the planner never read runs_owner
	 * (idx_scan 0), while each of a held run's three writes added an entry
	 * to it: a quarter of the index entries a run wrote, 7 % of its WAL
	 * (issue 23). SQLite keeps its own: forgetting a dead owner asks
	 * whether any run names it, finished or not. */
	"DROP INDEX runs_owner;",
	/* 13: identifiers compared byte by byte (COLLATE "C"), as SQLite's
	 * store compares them. Under the database's locale every comparison in
	 * a btree over one of these keys, and every sort by id, went through
	 * strcoll: on a database made with en_US.UTF-8 the server spent 0.17
	 * ms of CPU a run against 0.12 now (with Debian's C.UTF-8 the locale's
	 * calls took 1 % of it; issue 23). A locale's order also differs from SQLite's for names
	 * outside ASCII, and an index built under it goes stale when an
	 * upgrade of the C library changes its collation data. The indexes on
	 * these columns are rebuilt; no table is rewritten. */
	"ALTER TABLE runs ALTER COLUMN id TYPE TEXT COLLATE \"C\","
	" ALTER COLUMN pool TYPE TEXT COLLATE \"C\","
	" ALTER COLUMN deployment TYPE TEXT COLLATE \"C\","
	" ALTER COLUMN source TYPE TEXT COLLATE \"C\","
	" ALTER COLUMN source_ref TYPE TEXT COLLATE \"C\","
	" ALTER COLUMN state TYPE TEXT COLLATE \"C\","
	" ALTER COLUMN lease_owner TYPE TEXT COLLATE \"C\","
	" ALTER COLUMN slot_key TYPE TEXT COLLATE \"C\","
	" ALTER COLUMN queue TYPE TEXT COLLATE \"C\";"
	"ALTER TABLE run_events ALTER COLUMN run_id TYPE TEXT COLLATE \"C\";"
	"ALTER TABLE owner_leases ALTER COLUMN owner TYPE TEXT COLLATE \"C\";"
	"ALTER TABLE deployments ALTER COLUMN name TYPE TEXT COLLATE \"C\","
	" ALTER COLUMN id TYPE TEXT COLLATE \"C\","
	" ALTER COLUMN pool TYPE TEXT COLLATE \"C\","
	" ALTER COLUMN queue TYPE TEXT COLLATE \"C\";"
	"ALTER TABLE deployment_schedules ALTER COLUMN deployment TYPE TEXT COLLATE \"C\","
	" ALTER COLUMN skey TYPE TEXT COLLATE \"C\";"
	"ALTER TABLE work_queues ALTER COLUMN pool TYPE TEXT COLLATE \"C\","
	" ALTER COLUMN name TYPE TEXT COLLATE \"C\";"
	"ALTER TABLE pool_settings ALTER COLUMN pool TYPE TEXT COLLATE \"C\";"
	"ALTER TABLE provisions ALTER COLUMN pool TYPE TEXT COLLATE \"C\";"
	"ALTER TABLE pushpool_meta ALTER COLUMN key TYPE TEXT COLLATE \"C\";",
	/* 14: run_events loses its foreign key to runs. Each event's check
	 * ran a query of its own and locked its run's row (FOR KEY SHARE: a
	 * write to the row's page and to the WAL), a sixth of the server's
	 * CPU a run (two events a run; issue 23). What it guarded holds by
	 * construction: every statement that writes an event writes its run's
	 * row too (the run's INSERT or UPDATE in the same statement), and
	 * the runs are deleted in store/deploy.c only, locked first, with
	 * their events (delete_runs). */
	"ALTER TABLE run_events DROP CONSTRAINT IF EXISTS run_events_run_id_fkey;",
};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))
/* Advisory lock key serialising `store migrate` run from several hosts. */
#define MIGRATE_LOCK "7365636"
/* How long a session may sit in a transaction between statements, and a
 * statement may wait for a lock (pg_connect). */
#define PG_IDLE_TX_TIMEOUT "10s"
#define PG_LOCK_TIMEOUT	   "5s"
/* First half of the advisory lock key claims of one pool take. */
#define CLAIM_LOCK "7365637"

static void pg_rollback(struct pg_store *s)
{
	if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
		PQclear(PQexec(s->conn, "ROLLBACK"));
}

static void on_notice(void *arg, const char *message)
{
	(void)arg;
	pp_debug("postgresql: %.*s", (int)strcspn(message, "\n"), message);
}

static void batch_lost(struct pg_store *s, const char *why);

static void pg_disconnect(struct pg_store *s)
{
	batch_lost(s, "connection closed before the answer came");
	if (s->conn)
		PQfinish(s->conn);
	s->conn = NULL;
	/* Prepared statements live and die with their session. */
	for (int i = 0; i < s->nprepared; i++)
		free(s->prepared[i].sql); /* NULL for static text */
	s->nprepared = 0;
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

#define SESSION_SETTINGS                                                                           \
	"SET idle_in_transaction_session_timeout = '" PG_IDLE_TX_TIMEOUT "';"                      \
	" SET lock_timeout = '" PG_LOCK_TIMEOUT "'"

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
	/* Transactions of several statements (claims, deploys, scheduling
	 * passes) hold locks between statements: a dispatcher stopped in one
	 * (SIGSTOP, a VM pause) must not hold them for the others, whose loop
	 * would stall, leases included, waiting on a lock. The server ends
	 * such a session, and no statement waits long for a lock. */
	/* The claimer's session is not woken: its owner's session is. */
	PGresult *res = PQexec(s->conn, s->is_claimer ? SESSION_SETTINGS
						      : "LISTEN " CHANNEL "; " SESSION_SETTINGS);
	int rc = 0;
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = fail_msg(s, err, PP_ETRANSIENT, "LISTEN", PQresultErrorMessage(res));
	PQclear(res);
	if (rc)
		pg_disconnect(s);
	return rc;
}

/* A usable connection, reopening a lost one when its backoff allows. Its
 * callers start a statement with nothing of theirs unanswered, so a
 * session still in pipeline mode is one whose answer could not be read
 * whole (a send or the reading of its answer failed on a connection
 * that still looks fine): no
 * later statement can use it, and a new one is started. */
static int ensure_conn(struct pg_store *s, struct pp_error *err)
{
	if (s->conn && PQpipelineStatus(s->conn) != PQ_PIPELINE_OFF)
		pg_disconnect(s);
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

static unsigned long sql_hash(const char *sql)
{
	unsigned long h = 5381;
	for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
		h = h * 33 + *p;
	return h;
}

static bool prepared_is(const struct pg_prepared *p, enum sql_kind kind, const char *sql,
			unsigned long hash)
{
	if (kind == SQL_STATIC)
		return p->fixed == sql;
	return !p->fixed && p->hash == hash && !strcmp(p->sql, sql);
}

/* The name of statement sql on this connection, prepared the first time
 * it is seen: true with name set; false when it is not prepared (too
 * many statements, or no memory: the caller sends its text), with
 * *failed set to a PREPARE that failed (else NULL). */
static bool prepared_name(struct pg_store *s, enum sql_kind kind, const char *sql, int nparams,
			  char name[static 16], PGresult **failed)
{
	*failed = NULL;
	unsigned long h = kind == SQL_STATIC ? 0 : sql_hash(sql);
	int i = 0;
	while (i < s->nprepared && !prepared_is(&s->prepared[i], kind, sql, h))
		i++;
	snprintf(name, 16, "pp%d", i);
	if (i < s->nprepared)
		return true;
	if (i == PG_PREPARED_MAX)
		return false;
	struct pg_prepared p = {.hash = h};
	if (kind == SQL_STATIC)
		p.fixed = sql;
	else if (!(p.sql = strdup(sql)))
		return false;
	PGresult *prep = PQprepare(s->conn, name, sql, nparams, NULL);
	if (PQresultStatus(prep) != PGRES_COMMAND_OK) {
		free(p.sql);
		*failed = prep;
		return false;
	}
	PQclear(prep);
	s->prepared[s->nprepared++] = p;
	return true;
}

/* The names of a pipeline's two statements (pipeline_send: settings,
 * then sql), both static text, as prepared_name gives them. */
static bool prepared_pair(struct pg_store *s, const char *set_sql, const char *sql, int nparams,
			  char set[static 16], char name[static 16], PGresult **failed)
{
	return prepared_name(s, SQL_STATIC, set_sql, 0, set, failed) &&
	       prepared_name(s, SQL_STATIC, sql, nparams, name, failed);
}

/* A statement prepared_name could not prepare: the PREPARE's failure as
 * its result, else its text sent as it is. */
static PGresult *exec_unprepared(struct pg_store *s, PGresult *failed, const char *sql, int nparams,
				 const char *const *params)
{
	return failed ? failed : PQexecParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0);
}

/* One statement, prepared on this connection the first time it is seen
 * (a failed PREPARE's result is returned as the statement's). */
static PGresult *exec_prepared(struct pg_store *s, enum sql_kind kind, const char *sql, int nparams,
			       const char *const *params)
{
	char name[16];
	PGresult *failed;
	if (prepared_name(s, kind, sql, nparams, name, &failed))
		return PQexecPrepared(s->conn, name, nparams, params, NULL, NULL, 0);
	return exec_unprepared(s, failed, sql, nparams, params);
}

/* Prepared statements set (settings for one transaction) and then name,
 * sent in one pipeline ended by a Sync, without waiting: one round trip,
 * one implicit transaction. False when they could not all be sent. */
static bool pipeline_send(struct pg_store *s, const char *set, const char *name, int nparams,
			  const char *const *params)
{
	return PQenterPipelineMode(s->conn) &&
	       PQsendQueryPrepared(s->conn, set, 0, NULL, NULL, NULL, 0) &&
	       PQsendQueryPrepared(s->conn, name, nparams, params, NULL, NULL, 0) &&
	       PQpipelineSync(s->conn);
}

/* Read the answer of the pipeline pipeline_send sent on conn as far as it
 * has come, waiting for the rest when wait: 1 once read whole (pipeline
 * mode left, pr->res the statement's result or the first failure, the
 * caller's to free), 0 while more is to come, -1 when the connection
 * failed first (pr->res freed; the session is left in pipeline mode,
 * which the next statement's run_sql_now, batch_start or claim_send
 * ends with the session). Each statement's results end with a NULL; a
 * statement after a failure is PGRES_PIPELINE_ABORTED, and the Sync's
 * result comes last. */
static int pipeline_read(PGconn *conn, struct pipeline_read *pr, bool wait)
{
	enum { SET, SET_END, STATEMENT, STATEMENT_END, SYNC };
	for (;;) {
		if (!wait && !PQconsumeInput(conn))
			break;
		if (!wait && PQisBusy(conn))
			return 0;
		PGresult *r = PQgetResult(conn);
		ExecStatusType st = PQresultStatus(r);
		if (pr->stage == SET_END || pr->stage == STATEMENT_END) {
			pr->stage += !r;
			PQclear(r); /* past a statement's result: none more is expected */
			continue;
		}
		if (!r)
			break; /* the connection failed before the stage's result */
		if (pr->stage == SYNC) {
			PQclear(r);
			if (st != PGRES_PIPELINE_SYNC)
				break;
			PQexitPipelineMode(conn);
			return 1;
		}
		if (!pr->res &&
		    (pr->stage == STATEMENT || (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)))
			pr->res = r;
		else
			PQclear(r);
		pr->stage++;
	}
	PQclear(pr->res);
	pr->res = NULL;
	return -1;
}

/* set_sql (static text: settings for one transaction) and then sql,
 * both prepared, in one pipeline (pipeline_send), waiting for the
 * answer. The statement's result, or a failure's, as PQexecPrepared's;
 * NULL when the pipeline could not be finished. */
static PGresult *exec_set(struct pg_store *s, const char *set_sql, const char *sql, int nparams,
			  const char *const *params)
{
	char set[16], name[16];
	PGresult *failed;
	if (!prepared_pair(s, set_sql, sql, nparams, set, name, &failed))
		return exec_unprepared(s, failed, sql, nparams, params);
	struct pipeline_read pr = {0};
	if (pipeline_send(s, set, name, nparams, params) && pipeline_read(s->conn, &pr, true) == 1)
		return pr.res;
	return NULL;
}

/* The settings each planned kind of statement runs under, for its
 * transaction alone (set_config(..., true), sent in one pipeline with the
 * statement by exec_set: the two run together in the implicit transaction
 * their Sync ends, one round trip), so that the session's own settings
 * stay as they were for every other statement. Such a statement is always
 * a transaction of its own: every statement sends the queued writes
 * before it (run_sql), a BEGIN among them. */
static const char *const planned_settings[SQL_KINDS] = {
	/* The claim. PostgreSQL plans a prepared statement for its arguments
	 * (a custom plan) as long as it judges that cheaper than the plan it
	 * made for any arguments, and it may judge so at every call: the
	 * claim, on a store with 10,000 finished and 1,000 due runs,
	 * analysed, was planned anew at each call, 2.1 ms of planning against
	 * 0.4-0.7 ms of execution, and its custom plans ran slower than the
	 * generic one (issue 23). The session's setting stays for the lists
	 * and deployments' reads, whose filters want their arguments seen. A
	 * server older than plan_cache_mode (PostgreSQL 12) plans the
	 * statement as it chooses (exec_planned). */
	[SQL_GENERIC] = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true)",
	/* The queued writes' batch (batch_sql), which joins an array of keys
	 * to the rows they name: each found through its key, with no read of
	 * the whole table, and so no hash or merge join against one. On a
	 * young store, or one whose statistics lag its growth, the planner
	 * judged the table small enough to read whole: the batch read every
	 * row of runs, dead versions included, to update 32 (2.0 of its 3.2
	 * ms at 2,000 runs; 32 primary-key lookups take 0.8), hashed against
	 * the keys, or, with hash joins off, compared each key with every row
	 * (500 runs: 2.4-2.7 ms against 1.1-1.4); and the dead versions grow
	 * with every write until vacuum comes. Found through the primary key,
	 * a batch costs its rows, whatever the table holds. */
	[SQL_BY_KEY] = "SELECT set_config('enable_seqscan', 'off', true),"
		       " set_config('enable_hashjoin', 'off', true),"
		       " set_config('enable_mergejoin', 'off', true)",
	/* A read that every part of has an index to go by, through them
	 * whatever the planner believes of the table (never analysed, or a
	 * sample that misjudged a partial index): no sequential scan unless
	 * nothing else can answer, and no parallel workers, whose start cost
	 * more than such a read (docs/performance.md, step 54). */
	[SQL_BY_INDEX] = "SELECT set_config('enable_seqscan', 'off', true),"
			 " set_config('max_parallel_workers_per_gather', '0', true)",
};

#define PG_PLAN_CACHE_MODE_VERSION 120000
/* Statement sql (static text) of a planned kind, under its settings. */
static PGresult *exec_planned(struct pg_store *s, enum sql_kind kind, const char *sql, int nparams,
			      const char *const *params)
{
	if (kind == SQL_GENERIC && PQserverVersion(s->conn) < PG_PLAN_CACHE_MODE_VERSION)
		return exec_prepared(s, SQL_STATIC, sql, nparams, params);
	return exec_set(s, planned_settings[kind], sql, nparams, params);
}

static void batch_send(struct pg_store *s);
static bool batch_collect(struct pg_store *s, bool wait);

/* A statement's failed result res (NULL: none came): its code, err set
 * (PP_ECONFLICT for a unique violation, PP_ETRANSIENT for a lost
 * connection, a server shutting down, or a serialisation failure, else
 * PP_EIO); res is freed, and a lost connection closed. */
static int sql_failed(struct pg_store *s, const char *what, PGresult *res, struct pp_error *err)
{
	bool lost = PQstatus(s->conn) != CONNECTION_OK;
	int code = PP_EIO;
	if (sqlstate_is(res, "23505"))
		code = PP_ECONFLICT;
	else if (lost || sqlstate_is(res, "08") || sqlstate_is(res, "57P") ||
		 sqlstate_is(res, "53") || sqlstate_is(res, "40001") || sqlstate_is(res, "40P01") ||
		 sqlstate_is(res, "55P03") || sqlstate_is(res, "25P03"))
		code = PP_ETRANSIENT;
	int rc = fail_msg(s, err, code, what,
			  res ? PQresultErrorMessage(res) : PQerrorMessage(s->conn));
	PQclear(res);
	if (lost) {
		pp_warn("%s", err->msg);
		pg_disconnect(s);
	}
	return rc;
}

/* Run one statement with text parameters (NULL entries are SQL NULL),
 * prepared once per connection, or a script of several statements,
 * parsed each time, once the batch in flight (if any) is answered.
 * Returns the result, or NULL with *rc and err set as sql_failed says. */
static PGresult *run_sql_now(struct pg_store *s, const char *what, enum sql_kind kind,
			     const char *sql, int nparams, const char *const *params, int *rc,
			     struct pp_error *err)
{
	batch_collect(s, true);
	*rc = ensure_conn(s, err);
	if (*rc)
		return NULL;
	PGresult *res = kind == SQL_SCRIPT	 ? PQexec(s->conn, sql)
			: planned_settings[kind] ? exec_planned(s, kind, sql, nparams, params)
						 : exec_prepared(s, kind, sql, nparams, params);
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	*rc = sql_failed(s, what, res, err);
	return NULL;
}

/* The same after the queued writes: statements see the store in the
 * order the caller wrote it. */
static PGresult *run_sql(struct pg_store *s, const char *what, enum sql_kind kind, const char *sql,
			 int nparams, const char *const *params, int *rc, struct pp_error *err)
{
	batch_send(s);
	return run_sql_now(s, what, kind, sql, nparams, params, rc, err);
}

/* One statement of this file: its text in static storage. */
static PGresult *query(struct pg_store *s, const char *what, const char *sql, int nparams,
		       const char *const *params, int *rc, struct pp_error *err)
{
	return run_sql(s, what, SQL_STATIC, sql, nparams, params, rc, err);
}

static int command(struct pg_store *s, const char *what, const char *sql, struct pp_error *err)
{
	int rc;
	PGresult *res = run_sql(s, what, SQL_SCRIPT, sql, 0, NULL, &rc, err);
	PQclear(res);
	return rc;
}

/* A read through indexes only (SQL_BY_INDEX). */
static PGresult *query_by_index(struct pg_store *s, const char *what, const char *sql, int nparams,
				const char *const *params, int *rc, struct pp_error *err)
{
	return run_sql(s, what, SQL_BY_INDEX, sql, nparams, params, rc, err);
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
	pg_close(s->claimer ? &s->claimer->base : NULL);
	PQclear(s->claim.read.res);
	free(s->claim.pool);
	free(s->claim.owner);
	for (int i = 0; i < s->nqueued; i++)
		free(s->queued[i].msg);
	free(s->queued);
	for (int c = 0; c < UPDATE_NPARAMS; c++)
		pp_buf_free(&s->batch[c]);
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
	for (int c = 0; c < UPDATE_NPARAMS; c++)
		pp_buf_init(&s->batch[c], PP_BUF_DEFAULT_MAX);
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
	" attempt, state, cancel_requested, fence, rerun, queue, waiting, slot_key"

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
	r->rerun = atoi(PQgetvalue(res, row, 20));
	r->queue = dup_value(res, row, 21);
	r->waiting = dup_value(res, row, 22);
	r->slot_key = dup_value(res, row, 23);
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
	if (!r->id[0] && pp_uuid7(r->id))
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
		r->queue,
		r->slot_key,
	};
	/* One statement, so one transaction: the run, its first event, and the
	 * wake-up of idle dispatchers (delivered at commit) when it is due. */
	static const char sql[] =
		"WITH r AS (INSERT INTO runs(id, pool, name, deployment, job_variables, parameters,"
		"  source, source_ref, scheduled_ms, next_attempt_ms, priority, state, created_ms,"
		"  updated_ms, queue, slot_key) VALUES "
		"($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12," NOW_MS "," NOW_MS ",$13,$14)"
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

/* The claim in one statement, so one round trip and one transaction:
 * - q: a row whose state no pushpool state names is set aside
 *   (QUARANTINED, never claimed) with its reason and an event, instead of
 *   failing every claim of its pool; each row once, so reported once;
 * - held: runs somebody held whose lease is free (LEASE_FREE), unfinished
 *   work first: freed, those released (lease_owner NULL), then lapsed,
 *   those of owners whose lease expired, each one search of runs_lease
 *   (the owners as an array, so that the planner looks each one up
 *   rather than reading every held run of the pool to join them). The
 *   planner cannot know the array is empty, as it is unless a dispatcher
 *   died: from statistics of a table whose runs few owners hold, it read
 *   every run to find none, 10 ms a claim with 10,000 held. So lapsed
 *   runs only when an owner's lease has expired (a test made once, before
 *   any run is read);
 * - open: whether the pool's due runs may be claimed without counting
 *   slots: no pause or limit on the pool or its queues, and no due run of
 *   a deployment with a limit or an overlap policy. Then nothing a claim
 *   takes changes what another claim may take, so dispatchers claim side
 *   by side: FOR UPDATE SKIP LOCKED leaves rows another claim is taking to
 *   it, and re-checks the WHERE on rows committed since the snapshot, so a
 *   row is never leased twice;
 * - due: when open, due runs in the deployments' claim order (queue
 *   priority, run priority, due time, id), up to what held left; for a
 *   pool without work queues (open's plain) due_plain instead, the same
 *   order without the queue's priority, read in order from its index
 *   (migration 7) rather than every due run joined and sorted: a claim's
 *   cost stays flat in the number of due runs.
 * - own: the owner's row, made when the claim leased anything and it has
 *   none, in the statement that leased it (LEASE_FREE: an owner always
 *   has a row).
 * Rows: RUN_COLUMNS, a kind (0 held, 1 due, 2 / 3 no run: the pool was
 * open / limited, 4 quarantined: id and last_error only), queue priority. */
#define CLAIM_RUN_COLUMNS                                                                          \
	"r.id, r.pool, r.name, r.deployment, r.job_variables, r.parameters, r.source,"             \
	" r.source_ref, r.infra_id, r.idem_key, r.last_error, r.scheduled_ms, r.next_attempt_ms,"  \
	" r.created_ms, r.updated_ms, r.priority, r.attempt, r.state, r.cancel_requested,"         \
	" r.fence, r.rerun, r.queue, r.waiting, r.slot_key"
#define CLAIM_LEASE                                                                                \
	"lease_owner = $1, lease_expires = " NOW_MS " + $2::bigint, fence = r.fence + 1,"          \
	" updated_ms = " NOW_MS
#define NULLS9 "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
/* Runs somebody held that may be taken again once their lease is free:
 * runs_lease's predicate (FREE_LEASE_WHERE) and what a claim asks of a
 * run; unfinished work first. */
#define HELD_WHERE                                                                                 \
	"x.state NOT IN " TERMINAL " AND x.state IN " PP_STORE_STATES_SQL " AND " CLAIM_POOL       \
	" AND (x.state <> 'SCHEDULED' OR x.lease_owner IS NOT NULL)"                               \
	" AND (x.state <> 'SCHEDULED' OR x.scheduled_ms <= " NOW_MS ")"                            \
	" AND x.next_attempt_ms <= " NOW_MS
#define HELD_ORDER "(x.state = 'SCHEDULED'), x.priority DESC, x.scheduled_ms"
/* Whether the claim leased any run (its own lease is written then). */
#define CLAIM_LEASED_ANY                                                                           \
	"EXISTS (SELECT 1 FROM held) OR EXISTS (SELECT 1 FROM due)"                                \
	" OR EXISTS (SELECT 1 FROM due_plain)"
#define CLAIM_OWN_LEASE OWNER_ROW_IF(CLAIM_LEASED_ANY)
/* Each search has its index (migration 6), whatever the statistics say:
 * on a store not analysed yet (a new one, or one just filled) the planner
 * read every row for the quarantine, and every due run of the pool for
 * the deployments with limits, on each claim (0.4 and 0.3 ms of a 1.4 ms
 * claim with 3,000 runs, growing with the store; issue 23). The
 * quarantine reads runs_unknown_state in its order, QUARANTINE_BATCH rows
 * a claim at most, which the planner takes over a sorted scan of the
 * table; OFFSET 0 keeps the deployments' EXISTS a lookup per deployment
 * with limits (runs_deployment), not a join over the pool's due runs.
 * due_plain reads runs_due_order, the only index of due runs by pool
 * (migration 8), in the claim's order. CLAIM_POOL tests alias x. */
#define QUARANTINE_BATCH "100"
#define CLAIM_SQL(INTENT, INTENT_EVENTS)                                                           \
	"WITH q AS (UPDATE runs SET state = 'QUARANTINED', lease_owner = NULL,"                    \
	"  updated_ms = " NOW_MS ", last_error = '" PP_QUARANTINE_WHY "\"'"                        \
	"  || left(state, $5::int) || '\"'"                                                        \
	"  WHERE id IN (SELECT id FROM runs WHERE state NOT IN " PP_STORE_STATES_SQL               \
	"  ORDER BY id LIMIT " QUARANTINE_BATCH ")  RETURNING id, last_error, updated_ms),"        \
	" qe AS (INSERT INTO run_events(run_id, ts_ms, state, message)"                            \
	"  SELECT id, updated_ms, 'QUARANTINED', last_error FROM q),"                              \
	" freed AS (UPDATE runs r SET " CLAIM_LEASE " FROM (SELECT id FROM runs x"                 \
	"  WHERE " HELD_WHERE " AND x.lease_owner IS NULL ORDER BY " HELD_ORDER                    \
	"  LIMIT $4::int FOR UPDATE SKIP LOCKED) c WHERE r.id = c.id"                              \
	"  RETURNING " CLAIM_RUN_COLUMNS "),"                                                      \
	" lapsed AS (UPDATE runs r SET " CLAIM_LEASE " FROM (SELECT id FROM runs x"                \
	"  WHERE " HELD_WHERE " AND EXISTS (SELECT 1 FROM owner_leases WHERE expires < " NOW_MS    \
	") AND x.lease_owner = ANY (ARRAY(SELECT owner FROM owner_leases"                          \
	"  WHERE expires < " NOW_MS ")) AND x.lease_expires < " NOW_MS " ORDER BY " HELD_ORDER     \
	"  LIMIT GREATEST($4::int - (SELECT count(*) FROM freed), 0) FOR UPDATE SKIP LOCKED) c"    \
	"  WHERE r.id = c.id RETURNING " CLAIM_RUN_COLUMNS "),"                                    \
	" held AS (SELECT * FROM freed UNION ALL SELECT * FROM lapsed),"                           \
	" open AS (SELECT NOT EXISTS (SELECT 1 FROM pool_settings x WHERE " CLAIM_POOL             \
	"  AND (x.paused <> 0 OR x.concurrency_limit > 0))"                                        \
	"  AND NOT EXISTS (SELECT 1 FROM work_queues x WHERE " CLAIM_POOL                          \
	"  AND (x.paused <> 0 OR x.concurrency_limit > 0))"                                        \
	"  AND NOT EXISTS (SELECT 1 FROM deployments d WHERE (d.concurrency_limit > 0"             \
	"   OR EXISTS (SELECT 1 FROM deployment_schedules sc WHERE sc.deployment = d.name"         \
	"    AND sc.overlap <> 'allow'))"                                                          \
	"   AND EXISTS (SELECT 1 FROM runs x WHERE x.deployment = d.name"                          \
	"    AND x.state = 'SCHEDULED' AND x.source = 'deployment' AND x.lease_owner IS NULL"      \
	"    AND " CLAIM_POOL " AND x.scheduled_ms <= " NOW_MS                                     \
	"    AND x.next_attempt_ms <= " NOW_MS " OFFSET 0)) AS ok,"                                \
	"  NOT EXISTS (SELECT 1 FROM work_queues x WHERE " CLAIM_POOL ") AS plain),"               \
	" due AS (UPDATE runs r SET " CLAIM_LEASE ", waiting = NULL" INTENT " FROM (SELECT x.id"   \
	"  FROM runs x"                                                                            \
	"  LEFT JOIN work_queues wq ON wq.pool = x.pool AND wq.name = COALESCE(x.queue, "          \
	"'default')"                                                                               \
	"  WHERE (SELECT ok AND NOT plain FROM open) AND x.state = 'SCHEDULED'"                    \
	"  AND x.lease_owner IS NULL"                                                              \
	"  AND " CLAIM_POOL " AND x.scheduled_ms <= " NOW_MS "  AND x.next_attempt_ms <= " NOW_MS  \
	"  ORDER BY COALESCE(wq.priority, 2147483647), x.priority DESC, x.scheduled_ms, x.id"      \
	"  LIMIT GREATEST($4::int - (SELECT count(*) FROM held), 0)"                               \
	"  FOR UPDATE OF x SKIP LOCKED) c WHERE r.id = c.id"                                       \
	"  RETURNING " CLAIM_RUN_COLUMNS "),"                                                      \
	" due_plain AS (UPDATE runs r SET " CLAIM_LEASE ", waiting = NULL" INTENT                  \
	"  FROM (SELECT x.id"                                                                      \
	"  FROM runs x WHERE (SELECT ok AND plain FROM open) AND x.state = 'SCHEDULED'"            \
	"  AND x.lease_owner IS NULL AND " CLAIM_POOL " AND x.scheduled_ms <= " NOW_MS             \
	"  AND x.next_attempt_ms <= " NOW_MS " ORDER BY x.priority DESC, x.scheduled_ms, x.id"     \
	"  LIMIT GREATEST($4::int - (SELECT count(*) FROM held), 0)"                               \
	"  FOR UPDATE OF x SKIP LOCKED) c WHERE r.id = c.id"                                       \
	"  RETURNING " CLAIM_RUN_COLUMNS ")," INTENT_EVENTS " own AS (" CLAIM_OWN_LEASE ")"        \
	" SELECT * FROM (SELECT " RUN_COLUMNS ", 0 AS kind, 0 AS qprio FROM held"                  \
	" UNION ALL SELECT " CLAIM_RUN_COLUMNS ", 1, COALESCE(wq.priority, 2147483647)"            \
	"  FROM due r LEFT JOIN work_queues wq ON wq.pool = r.pool"                                \
	"  AND wq.name = COALESCE(r.queue, 'default')"                                             \
	" UNION ALL SELECT " CLAIM_RUN_COLUMNS ", 1, 2147483647 FROM due_plain r"                  \
	" UNION ALL SELECT " NULLS9 ", " NULLS9 ", NULL, NULL, NULL, NULL, NULL, NULL,"            \
	"  CASE WHEN ok THEN 2 ELSE 3 END, 0 FROM open"                                            \
	" UNION ALL SELECT id, " NULLS9 ", last_error, " NULLS9 ", NULL, NULL, NULL, NULL, 4, 0"   \
	"  FROM q) c ORDER BY kind, (state = 'SCHEDULED'), qprio, priority DESC, scheduled_ms, id"
#define CLAIM_KIND 24 /* the column after RUN_COLUMNS */
/* With claim_intents: each due run leased as its next try's intent, in
 * the row's write that leases it (one row version where the dispatcher's
 * own write made a second), with its event. */
#define CLAIM_INTENT                                                                               \
	", state = 'SUBMITTING', attempt = r.attempt + 1,"                                         \
	" idem_key = COALESCE(r.idem_key, r.id || '" PP_FIRST_KEY "')"
/* The intents' events of the runs in FROM (id, state, attempt). */
#define INTENT_EVENTS(FROM)                                                                        \
	"INSERT INTO run_events(run_id, ts_ms, state, message)"                                    \
	" SELECT id, " CLOCK_MS ", state, '" PP_INTENT_EVENT "' || attempt || ')' FROM " FROM
#define CLAIM_INTENT_EVENTS                                                                        \
	" de AS (" INTENT_EVENTS("(SELECT id, state, attempt FROM due"                             \
				 " UNION ALL SELECT id, state, attempt FROM due_plain) i") "),"
/* The claim of one pool ($3) or of every pool ($3 NULL), without or with
 * the intents: [every pool][intents]. */
#define CLAIM_POOL "x.pool = $3"
static const char claim_one_pool[] = CLAIM_SQL("", "");
static const char claim_one_pool_intents[] = CLAIM_SQL(CLAIM_INTENT, CLAIM_INTENT_EVENTS);
#undef CLAIM_POOL
#define CLAIM_POOL "$3::text IS NULL"
static const char claim_every_pool[] = CLAIM_SQL("", "");
static const char claim_every_pool_intents[] = CLAIM_SQL(CLAIM_INTENT, CLAIM_INTENT_EVENTS);
#undef CLAIM_POOL
static const char *const claim_sql[2][2] = {
	{claim_one_pool, claim_one_pool_intents},
	{claim_every_pool, claim_every_pool_intents},
};

/* Due runs of a pool with limits, pauses or overlap policies: counted and
 * used up inside one transaction per pool at a time across every
 * dispatcher (store/deploy.c), so the limits hold store-wide. Without
 * waiting for the pool: when another dispatcher holds it, this one claims
 * the due runs at its next claim. */
static int claim_limited(struct pg_store *s, const char *pool, const char *owner, int64_t lease_ms,
			 int max, struct pp_run_rec **out, int *n, struct pp_error *err)
{
	int rc = command(s, "begin claim", "BEGIN", err);
	bool pool_locked = false;
	if (!rc) {
		const char *const lk[] = {pool ? pool : ""};
		PGresult *lres =
			query(s, "lock pool for claim",
			      "SELECT pg_try_advisory_xact_lock(" CLAIM_LOCK ", hashtext($1))", 1,
			      lk, &rc, err);
		pool_locked = lres && PQgetvalue(lres, 0, 0)[0] == 't';
		PQclear(lres);
	}
	int before = *n;
	if (!rc && pool_locked)
		rc = pp_deploy_claim_due(&s->base, pool, owner, lease_ms, max, out, n, err);
	if (!rc && *n > before) {
		/* The runs it leased name the owner: its row, made if missing,
		 * commits with them. */
		char lease[24];
		i64(lease, sizeof(lease), lease_ms);
		const char *const p[] = {owner, lease};
		PQclear(query(s, "lease owner", OWNER_ROW_IF("true"), 2, p, &rc, err));
	}
	if (!rc)
		rc = command(s, "commit claim", "COMMIT", err);
	if (rc)
		pg_rollback(s);
	return rc;
}

/* The claim statement's parameters. */
#define CLAIM_NPARAMS 5
struct claim_params {
	char lease[24], lim[16], qmax[16];
	const char *v[CLAIM_NPARAMS];
};

static void claim_params(struct claim_params *c, const char *pool, const char *owner,
			 int64_t lease_ms, int max)
{
	i64(c->lease, sizeof(c->lease), lease_ms);
	snprintf(c->lim, sizeof(c->lim), "%d", max);
	snprintf(c->qmax, sizeof(c->qmax), "%d", PP_QUARANTINE_STATE_MAX);
	const char *const v[CLAIM_NPARAMS] = {owner, c->lease, pool, c->lim, c->qmax};
	memcpy(c->v, v, sizeof(v));
}

static const char claim_what[] = "claim runs";

/* The runs of a claim's answer res (freed here) into *out, and then, when
 * it says a pool has limits, the limited claim's (claim_limited, on s's
 * own session). */
static int claim_answer(struct pg_store *s, PGresult *res, const char *pool, const char *owner,
			int64_t lease_ms, int max, struct pp_run_rec **out, int *n,
			struct pp_error *err)
{
	struct pp_store *base = &s->base;
	int rc = 0;
	int rows = PQntuples(res), runs = 0;
	bool limited = false;
	for (int i = 0; i < rows; i++) {
		int kind = atoi(PQgetvalue(res, i, CLAIM_KIND));
		runs += kind <= 1;
		limited |= kind == 3;
		if (kind == 4)
			pp_warn("store %s: run %s %s; it will not be dispatched (see runs show)",
				s->where, PQgetvalue(res, i, 0), PQgetvalue(res, i, 10));
	}
	struct pp_run_rec *v = runs ? calloc((size_t)runs, sizeof(*v)) : NULL;
	if (runs && !v)
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	for (int i = 0, k = 0; !rc && i < rows; i++) {
		int kind = atoi(PQgetvalue(res, i, CLAIM_KIND));
		if (kind > 1)
			continue;
		if (row_to_rec(res, i, &v[k]))
			rc = pp_fail(err, PP_ENOMEM, "store %s: out of memory reading runs",
				     s->where);
		v[k++].intent_claimed = base->claim_intents && kind == 1; /* 1: due */
		*n = k;
	}
	PQclear(res);
	*out = v;
	/* What this statement leased is committed: when the limited claim
	 * fails (a lock timeout, say), its own leases roll back and those stay
	 * the loop's to drive, or nobody would (renewals keep them ours). */
	int committed = *n;
	if (!rc && limited && *n < max &&
	    (rc = claim_limited(s, pool, owner, lease_ms, max - *n, out, n, err)) && committed) {
		pp_warn("claim for pool %s: %s; keeping the %d run(s) claimed before",
			pool ? pool : "(every pool)", err->msg, committed);
		for (int i = committed; i < *n; i++)
			pp_run_rec_free(&(*out)[i]);
		*n = committed;
		rc = 0;
	}
	if (rc) {
		pp_run_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

static int pg_claim(struct pp_store *base, const char *pool, const char *owner, int64_t lease_ms,
		    int max, struct pp_run_rec **out, int *n, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	*out = NULL;
	*n = 0;
	if (max <= 0)
		return 0;
	struct claim_params p;
	claim_params(&p, pool, owner, lease_ms, max);
	int rc;
	/* Queued writes can join the next batch: they are to runs this
	 * dispatcher holds, which no claim takes while it does; if one of
	 * them lapsed and this claim takes it back, the write's old fence
	 * refuses it, as it would after. */
	PGresult *res = run_sql_now(s, claim_what, SQL_GENERIC,
				    claim_sql[pool == NULL][base->claim_intents], CLAIM_NPARAMS,
				    p.v, &rc, err);
	if (!res)
		return rc;
	return claim_answer(s, res, pool, owner, lease_ms, max, out, n, err);
}

/* The session claim_send's claims go over (s->claimer): a store of its
 * own on the same url, connected at once and again when lost
 * (ensure_conn). */
static int claimer_open(struct pg_store *s, struct pp_error *err)
{
	struct pg_store *c = calloc(1, sizeof(*c));
	if (!c || !(c->conninfo = strdup(s->conninfo))) {
		free(c);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	c->base.ops = &pp_store_pg;
	c->is_claimer = true;
	for (int i = 0; i < UPDATE_NPARAMS; i++)
		pp_buf_init(&c->batch[i], PP_BUF_DEFAULT_MAX);
	memcpy(c->where, s->where, sizeof(c->where));
	int rc = pg_connect(c, err);
	if (rc) {
		pg_close(&c->base);
		return rc;
	}
	s->claimer = c;
	return 0;
}

/* The claim's pipeline on a server without plan_cache_mode (exec_planned
 * sends the claim alone there): a statement in the settings' place, so
 * that the answer has the one shape pipeline_read reads. */
static const char no_settings[] = "SELECT NULL";

static int pg_claim_send(struct pp_store *base, const char *pool, const char *owner,
			 int64_t lease_ms, int max, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	if (s->claim.sent)
		return pp_fail(err, PP_ECONFLICT, "store %s: a claim is unanswered", s->where);
	if (max <= 0)
		return pp_fail(err, PP_EINVALID, "store %s: a claim of %d run(s)", s->where, max);
	int rc = s->claimer ? 0 : claimer_open(s, err);
	if (rc)
		return rc;
	struct pg_store *c = s->claimer;
	if ((rc = ensure_conn(c, err)))
		return rc;
	char *pool_copy = pool ? strdup(pool) : NULL, *owner_copy = strdup(owner);
	if ((pool && !pool_copy) || !owner_copy) {
		free(pool_copy);
		free(owner_copy);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	const char *settings = PQserverVersion(c->conn) < PG_PLAN_CACHE_MODE_VERSION
				       ? no_settings
				       : planned_settings[SQL_GENERIC];
	struct claim_params p;
	claim_params(&p, pool, owner, lease_ms, max);
	char set[16], name[16];
	PGresult *failed = NULL;
	if (!prepared_pair(c, settings, claim_sql[pool == NULL][base->claim_intents], CLAIM_NPARAMS,
			   set, name, &failed))
		rc = failed ? sql_failed(c, claim_what, failed, err)
			    : pp_fail(err, PP_ENOMEM, "store %s: %s: cannot prepare it", s->where,
				      claim_what);
	else if (!pipeline_send(c, set, name, CLAIM_NPARAMS, p.v))
		rc = sql_failed(c, claim_what, NULL, err);
	if (rc) {
		free(pool_copy);
		free(owner_copy);
		return rc;
	}
	s->claim.sent = true;
	s->claim.read = (struct pipeline_read){0};
	s->claim.pool = pool_copy;
	s->claim.owner = owner_copy;
	s->claim.lease_ms = lease_ms;
	s->claim.max = max;
	return PQsocket(c->conn);
}

static int pg_claim_take(struct pp_store *base, bool wait, bool *done, struct pp_run_rec **out,
			 int *n, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	*out = NULL;
	*n = 0;
	*done = true;
	if (!s->claim.sent)
		return pp_fail(err, PP_EINVALID, "store %s: no claim was sent", s->where);
	struct pg_store *c = s->claimer;
	int got = pipeline_read(c->conn, &s->claim.read, wait);
	if (!got) {
		*done = false;
		return 0;
	}
	s->claim.sent = false;
	PGresult *res = s->claim.read.res;
	s->claim.read.res = NULL;
	int rc;
	if (got < 0)
		rc = sql_failed(c, claim_what, NULL, err);
	else if (PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = sql_failed(c, claim_what, res, err);
	else
		rc = claim_answer(s, res, s->claim.pool, s->claim.owner, s->claim.lease_ms,
				  s->claim.max, out, n, err);
	free(s->claim.pool);
	free(s->claim.owner);
	s->claim.pool = s->claim.owner = NULL;
	return rc;
}

static int pg_renew(struct pp_store *base, const char *owner, int64_t lease_ms,
		    struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	char lease[24];
	i64(lease, sizeof(lease), lease_ms);
	const char *const p[] = {owner, lease};
	/* One row, however many runs owner holds (LEASE_FREE). Leases that
	 * expired while we stalled are extended too when nobody has claimed
	 * them since: a claim replaces lease_owner, so a run still naming us
	 * was never taken over. The rows of owners whose lease has expired
	 * that no unfinished run names go (a dispatcher's owner name may be
	 * new at each start): a claim taking the last of a dead owner's runs
	 * leaves its row behind, and while it is there every claim looks for
	 * lapsed runs (CLAIM_SQL). Should that owner come back meanwhile, its
	 * claim or renewal either refreshes the row first (the delete then
	 * finds it live and keeps it) or makes it anew. */
	int rc;
	PGresult *res =
		query(s, "renew leases",
		      "WITH gone AS (DELETE FROM owner_leases o WHERE o.owner <> $1"
		      "  AND o.expires < " NOW_MS " AND NOT EXISTS (SELECT 1"
		      "  FROM runs r WHERE r.lease_owner = o.owner AND r.state NOT IN " TERMINAL
		      "))" OWN_LEASE,
		      2, p, &rc, err);
	PQclear(res);
	return rc;
}

/* One statement for every lease owner holds (a write per run was a third
 * of a stopping dispatcher's work); the pools with runs claimable now are
 * notified once each, as a release by pg_update does. */
static int pg_release_all(struct pp_store *base, const char *owner, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	const char *const p[] = {owner};
	int rc;
	PGresult *res =
		query(s, "release leases",
		      "WITH u AS (UPDATE runs SET lease_owner = NULL, updated_ms = " NOW_MS
		      "  WHERE lease_owner = $1 AND state NOT IN " TERMINAL
		      "  RETURNING pool, next_attempt_ms),"
		      " o AS (DELETE FROM owner_leases WHERE owner = $1)"
		      " SELECT count(pg_notify('" CHANNEL "', pool)) FROM"
		      " (SELECT DISTINCT pool FROM u WHERE next_attempt_ms <= " NOW_MS ") d",
		      1, p, &rc, err);
	PQclear(res);
	return rc;
}

/* The fence in the WHERE is the whole guard: zero rows means a later claim
 * owns the run. A released, still claimable run wakes the other
 * dispatchers. The first value is the number of rows written. */
static const char update_sql[] =
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
	" SELECT (SELECT count(*) FROM u), (SELECT count(pg_notify('" CHANNEL "', pool)) FROM u"
	"  WHERE lease_owner IS NULL AND state NOT IN " TERMINAL "  AND next_attempt_ms <= " NOW_MS
	")";
/* update_sql's parameters, as text. */
struct update_params {
	char fence[24], attempt[16], next[24];
	const char *v[UPDATE_NPARAMS];
};

static void update_params(struct update_params *p, const char *id, int64_t fence,
			  const struct pp_run_update *u)
{
	i64(p->fence, sizeof(p->fence), fence);
	snprintf(p->attempt, sizeof(p->attempt), "%d", u->attempt);
	i64(p->next, sizeof(p->next), u->next_attempt_ms);
	const char *const v[UPDATE_NPARAMS] = {
		pp_store_state_name(u->state),
		u->infra_id,
		u->idem_key,
		p->attempt,
		p->next,
		u->error,
		u->release_lease ? "t" : "f",
		id,
		p->fence,
		u->event,
	};
	memcpy(p->v, v, sizeof(v));
}

static int lease_lost(struct pp_error *err, const char *id, int64_t fence)
{
	return pp_fail(err, PP_ECONFLICT, "run %s: lease lost (fence %lld is stale)", id,
		       (long long)fence);
}

/* The failure of a write of run id queued since the last settle (its code,
 * err set), else 0: a later write of the run must not stand without it, as
 * a status after a SUBMITTED write that never carried the infra id would
 * (the connection back in between: the earlier batch lost, this one not).
 * The caller drops the run, and recovery starts from what the store
 * surely has. */
static int queued_failed(const struct pg_store *s, const char *id, int64_t fence,
			 struct pp_error *err)
{
	for (int i = 0; i < s->nread; i++) {
		const struct pg_queued *q = &s->queued[i];
		if (q->rc && q->fence == fence && !strcmp(q->id, id))
			return pp_fail(err, q->rc, "%s",
				       q->msg ? q->msg
					      : "store: an earlier write of the run failed");
	}
	return 0;
}

static int pg_update(struct pp_store *base, const char *id, int64_t fence,
		     const struct pp_run_update *u, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	batch_send(s); /* the queued writes' outcomes, for queued_failed */
	int rc = queued_failed(s, id, fence, err);
	if (rc)
		return rc;
	struct update_params p;
	update_params(&p, id, fence, u);
	PGresult *res =
		run_sql_now(s, "update run", SQL_STATIC, update_sql, UPDATE_NPARAMS, p.v, &rc, err);
	if (!res)
		return rc;
	bool changed = atoi(PQgetvalue(res, 0, 0)) > 0;
	PQclear(res);
	return changed ? 0 : lease_lost(err, id, fence);
}

/* Queued writes (update_queue) go out together, as one statement: the
 * server parses, plans and commits once for all of them instead of once
 * each. Each row is fenced on its own, as update is: a stale one changes
 * nothing and the others are written. update_sql with arrays, one element
 * per write, and the positions of the rows written in return. */
static const char batch_sql[] =
	"WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[],"
	"  $5::bigint[], $6::text[], $7::bool[], $8::text[], $9::bigint[], $10::text[])"
	"  WITH ORDINALITY AS v(state, infra_id, idem_key, attempt, next_at, error, rel, id,"
	"  fence, event, i)),"
	" u AS (UPDATE runs r SET state = v.state, updated_ms = " NOW_MS ","
	"  infra_id = COALESCE(v.infra_id, r.infra_id), idem_key = COALESCE(v.idem_key, "
	"r.idem_key),"
	"  attempt = CASE WHEN v.attempt < 0 THEN r.attempt ELSE v.attempt END,"
	"  next_attempt_ms = CASE WHEN v.next_at < 0 THEN r.next_attempt_ms ELSE v.next_at END,"
	"  last_error = CASE WHEN v.error IS NULL THEN r.last_error WHEN v.error = '' THEN NULL"
	"   ELSE v.error END,"
	"  lease_owner = CASE WHEN v.rel THEN NULL ELSE r.lease_owner END"
	"  FROM v WHERE r.id = v.id AND r.fence = v.fence"
	"  RETURNING v.i, r.id, r.pool, r.state, r.updated_ms, r.lease_owner, r.next_attempt_ms,"
	"  v.event),"
	" e AS (INSERT INTO run_events(run_id, ts_ms, state, message)"
	"  SELECT id, updated_ms, state, event FROM u WHERE event IS NOT NULL ORDER BY i)"
	" SELECT (SELECT array_agg(i) FROM u), (SELECT count(pg_notify('" CHANNEL "', pool))"
	"  FROM u WHERE lease_owner IS NULL AND state NOT IN " TERMINAL
	"  AND next_attempt_ms <= " NOW_MS ")";
/* Writes sent in one statement at most: a claim's intents, or a turn's
 * submissions, fit. */
#define PG_BATCH_MAX 128

/* One more element of an array literal: NULL, or the text quoted. */
static int batch_put(struct pp_buf *b, const char *v)
{
	int rc = pp_buf_putc(b, b->len ? ',' : '{');
	if (rc || !v)
		return rc ? rc : pp_buf_puts(b, "NULL");
	rc = pp_buf_putc(b, '"');
	for (const char *p = v; *p && !rc; p++) {
		if (*p == '"' || *p == '\\')
			rc = pp_buf_putc(b, '\\');
		if (!rc)
			rc = pp_buf_putc(b, *p);
	}
	return rc ? rc : pp_buf_putc(b, '"');
}

static void batch_reset(struct pg_store *s)
{
	for (int c = 0; c < UPDATE_NPARAMS; c++)
		pp_buf_reset(&s->batch[c]);
}

/* Record the outcome of the n writes from queued[first], which one batch
 * carried: res its answer (freed here), else rc and err say why it has
 * none. */
static void batch_outcomes(struct pg_store *s, int first, int n, PGresult *res, int rc,
			   const struct pp_error *fail)
{
	struct pp_error err = rc ? *fail : (struct pp_error){0};
	bool *written = res ? calloc((size_t)n, sizeof(*written)) : NULL;
	if (res && !written)
		rc = pp_fail(&err, PP_ENOMEM, "out of memory");
	if (written && !PQgetisnull(res, 0, 0)) {
		/* {1,3,4}: the positions, from 1, of the rows written */
		char *p = PQgetvalue(res, 0, 0);
		while (*p) {
			long i = strtol(p + 1, &p, 10);
			if (i >= 1 && i <= n)
				written[i - 1] = true;
		}
	}
	PQclear(res);
	for (int i = 0; i < n; i++) {
		struct pg_queued *q = &s->queued[first + i];
		struct pp_error why = {0};
		if (rc)
			why = err; /* perhaps written: the statement's answer was lost */
		else if (!written[i])
			lease_lost(&why, q->id, q->fence);
		else
			continue;
		q->rc = why.code;
		q->msg = strdup(why.msg);
	}
	free(written);
}

static const char batch_what[] = "update runs";

/* The batch in flight has no answer to come: each of its writes failed
 * with why (perhaps written). */
static void batch_lost(struct pg_store *s, const char *why)
{
	int first = s->nread, n = s->nsent;
	if (!n)
		return;
	s->nsent = 0;
	s->nread += n;
	PQclear(s->sent.res);
	s->sent.res = NULL;
	struct pp_error err = {0};
	int rc = pp_fail(&err, PP_ETRANSIENT, "store %s: %s: %s", s->where, batch_what, why);
	batch_outcomes(s, first, n, NULL, rc, &err);
}

/* Close the batch's arrays: v, one text per parameter of batch_sql;
 * false without memory. */
static bool batch_params(struct pg_store *s, const char *v[UPDATE_NPARAMS])
{
	bool complete = true;
	for (int c = 0; c < UPDATE_NPARAMS; c++) {
		complete = complete && !pp_buf_putc(&s->batch[c], '}');
		v[c] = pp_buf_str(&s->batch[c]);
	}
	return complete;
}

/* Send the writes waiting in batch, without waiting for the answer,
 * which batch_collect reads: batch_sql under its settings, in one
 * pipeline (as exec_set sends it). Where the statements are not prepared
 * (past PG_PREPARED_MAX, or a PREPARE failed), the batch goes as
 * batch_send sends it, waiting. Nothing is sent while a batch is in
 * flight. */
static void batch_start(struct pg_store *s)
{
	int first = s->nread, n = s->nqueued - s->nread;
	if (n == 0 || s->nsent)
		return;
	const char *v[UPDATE_NPARAMS];
	struct pp_error err = {0};
	int rc = batch_params(s, v) ? 0 : pp_fail(&err, PP_ENOMEM, "out of memory");
	if (!rc)
		rc = ensure_conn(s, &err);
	char set[16], name[16];
	PGresult *failed = NULL;
	if (!rc && prepared_pair(s, planned_settings[SQL_BY_KEY], batch_sql, UPDATE_NPARAMS, set,
				 name, &failed)) {
		bool sent = pipeline_send(s, set, name, UPDATE_NPARAMS, v);
		batch_reset(s);
		if (sent) {
			s->nsent = n;
			s->sent = (struct pipeline_read){0};
			return;
		}
		rc = sql_failed(s, batch_what, NULL, &err);
		s->nread += n;
		batch_outcomes(s, first, n, NULL, rc, &err);
		return;
	}
	s->nread = s->nqueued;
	PGresult *res = NULL;
	if (!rc && failed) /* the PREPARE's failure is the batch's, as in exec_set */
		rc = sql_failed(s, batch_what, failed, &err);
	else if (!rc) /* not to be prepared: its text goes, waiting */
		res = run_sql_now(s, batch_what, SQL_BY_KEY, batch_sql, UPDATE_NPARAMS, v, &rc,
				  &err);
	batch_reset(s);
	batch_outcomes(s, first, n, res, rc, &err);
}

/* Read the answer of the batch in flight as far as it has come, waiting
 * for the rest when wait; true once it is read whole (or nothing is in
 * flight), each of its writes' outcomes recorded. */
static bool batch_collect(struct pg_store *s, bool wait)
{
	if (!s->nsent)
		return true;
	int got = pipeline_read(s->conn, &s->sent, wait);
	if (got == 0)
		return false;
	if (got == 1) {
		int first = s->nread, n = s->nsent;
		PGresult *res = s->sent.res;
		s->sent.res = NULL;
		s->nsent = 0;
		s->nread += n;
		struct pp_error err = {0};
		int rc = 0;
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			rc = sql_failed(s, batch_what, res, &err);
			res = NULL;
		}
		batch_outcomes(s, first, n, res, rc, &err);
		return true;
	}
	/* The answer cannot come whole: the session is closed (pg_disconnect
	 * fails what the batch carried). */
	char why[PP_ERRMSG_MAX];
	snprintf(why, sizeof(why), "%s", PQerrorMessage(s->conn));
	why[strcspn(why, "\n")] = '\0';
	pp_redact(why);
	batch_lost(s, *why ? why : "the answer was cut short");
	pp_warn("store %s: %s: the connection failed before the answer came: %s", s->where,
		batch_what, *why ? why : "(no message)");
	pg_disconnect(s);
	return true;
}

/* Send the writes waiting in batch and record each one's outcome. */
static void batch_send(struct pg_store *s)
{
	batch_collect(s, true); /* the batch in flight first: writes stay in order */
	batch_start(s);
	batch_collect(s, true);
}

static int pg_update_queue(struct pp_store *base, const char *id, int64_t fence,
			   const struct pp_run_update *u, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	/* A run's second write waits for its first: one statement updates a
	 * row once. */
	bool again = false;
	for (int i = s->nread; i < s->nqueued && !again; i++)
		again = s->queued[i].fence == fence && !strcmp(s->queued[i].id, id);
	if (again || s->nqueued - s->nread - s->nsent == PG_BATCH_MAX)
		batch_send(s);
	int failed = queued_failed(s, id, fence, err);
	if (failed)
		return failed;
	if (s->nqueued == s->queued_cap) {
		int cap = s->queued_cap ? s->queued_cap * 2 : PG_BATCH_MAX;
		struct pg_queued *q = realloc(s->queued, (size_t)cap * sizeof(*q));
		if (!q)
			return pp_fail(err, PP_ENOMEM, "out of memory");
		s->queued = q;
		s->queued_cap = cap;
	}
	struct update_params p;
	update_params(&p, id, fence, u);
	size_t len[UPDATE_NPARAMS];
	int rc = 0;
	for (int c = 0; c < UPDATE_NPARAMS; c++)
		len[c] = s->batch[c].len;
	for (int c = 0; c < UPDATE_NPARAMS && !rc; c++)
		rc = batch_put(&s->batch[c], p.v[c]);
	if (rc) {
		for (int c = 0; c < UPDATE_NPARAMS; c++)
			s->batch[c].len = len[c]; /* as it was: nothing queued */
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	struct pg_queued *q = &s->queued[s->nqueued++];
	*q = (struct pg_queued){.fence = fence};
	snprintf(q->id, sizeof(q->id), "%s", id);
	return 0;
}

/* Report the first n queued writes' outcomes (update_settle's done) and
 * forget them. */
static void report_outcomes(struct pg_store *s, int n,
			    void (*done)(void *ud, int i, int rc, const struct pp_error *err),
			    void *ud)
{
	if (!n)
		return; /* nothing may have been queued yet: no array to move */
	for (int i = 0; i < n; i++) {
		/* done() may queue more, moving the array. */
		int rc = s->queued[i].rc;
		char *msg = s->queued[i].msg;
		struct pp_error err = {0};
		if (rc)
			pp_fail(&err, rc, "%s", msg ? msg : "store: update run failed");
		done(ud, i, rc, rc ? &err : NULL);
		free(msg);
	}
	/* Writes done() queued wait for the next settle. */
	s->nqueued -= n;
	s->nread -= n;
	memmove(s->queued, s->queued + n, (size_t)s->nqueued * sizeof(*s->queued));
}

static void pg_update_settle(struct pp_store *base,
			     void (*done)(void *ud, int i, int rc, const struct pp_error *err),
			     void *ud)
{
	struct pg_store *s = (struct pg_store *)base;
	batch_send(s);
	report_outcomes(s, s->nqueued, done, ud);
}

static int pg_update_send(struct pp_store *base)
{
	struct pg_store *s = (struct pg_store *)base;
	batch_start(s);
	return s->nsent ? PQsocket(s->conn) : -1;
}

static int pg_update_collect(struct pp_store *base,
			     void (*done)(void *ud, int i, int rc, const struct pp_error *err),
			     void *ud)
{
	struct pg_store *s = (struct pg_store *)base;
	batch_collect(s, false);
	int n = s->nread;
	report_outcomes(s, n, done, ud);
	return n;
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
	/* Every run is in one of three parts, each read through its own
	 * index, their predicates written out for the planner: the finished
	 * (runs_done_time, in the list's order: only the first $3 are read),
	 * those in flight or held (runs_lease) and the due ones nobody
	 * holds (runs_due_order), the unfinished few read whole. A part the
	 * state asked for cannot be in is not read at all (a test of the
	 * parameters alone, which the server makes once). */
#define LIST_FILTER " AND ($1::text IS NULL OR pool = $1) AND ($2::text IS NULL OR state = $2)"
#define LIST_SQL(ORDER)                                                                            \
	"SELECT " RUN_COLUMNS " FROM ((SELECT * FROM runs WHERE state IN " TERMINAL_V6 LIST_FILTER \
	" AND ($2::text IS NULL OR $2 IN " TERMINAL_V6 ") ORDER BY " ORDER                         \
	" LIMIT $3::int) UNION ALL (SELECT * FROM runs WHERE " FREE_LEASE_WHERE LIST_FILTER        \
	" AND ($2::text IS NULL OR $2 NOT IN " TERMINAL_V6 ")) UNION ALL (SELECT * FROM runs"      \
	" WHERE state = 'SCHEDULED' AND lease_owner IS NULL" LIST_FILTER                           \
	" AND ($2::text IS NULL OR $2 = 'SCHEDULED'))) r ORDER BY " ORDER " LIMIT $3::int"
	int rc;
	PGresult *res = query_by_index(s, "list runs",
				       f && f->newest_first ? LIST_SQL("scheduled_ms DESC, id DESC")
							    : LIST_SQL("scheduled_ms, id"),
				       3, p, &rc, err);
#undef LIST_SQL
#undef LIST_FILTER
	if (!res)
		return rc;
	rc = collect(s, res, out, n, err);
	PQclear(res);
	return rc;
}

static int pg_reopen(struct pp_store *base, const char *id, int64_t scheduled_ms,
		     const char *job_variables, const char *event, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	char when[24];
	i64(when, sizeof(when), scheduled_ms);
	const char *const p[] = {id, when, job_variables, event ? event : "reopened"};
	/* Only a finished run: one in flight is somebody's live work, and a
	 * quarantined row is not a run to start. The second SELECT says why
	 * nothing changed. The reopened run is claimable: wake the others. */
	static const char sql[] =
		"WITH u AS (UPDATE runs SET state = 'SCHEDULED', rerun = rerun + 1, attempt = 0,"
		/* The next attempt after the last one (start retries count too),
		 * at least the rerun's number: "ID-N" keys, as dispatcher/attempts.c
		 * writes them. */
		"  idem_key = id || '-' || (GREATEST(rerun + 1, CASE WHEN idem_key ~"
		"  ('^' || id || '-[0-9]{1,9}$') THEN substring(idem_key from length(id) + 2)::int"
		"  ELSE 1 END) + 1), infra_id = NULL, last_error = NULL,"
		"  cancel_requested = false, lease_owner = NULL, lease_expires = 0,"
		"  next_attempt_ms = 0, scheduled_ms = $2::bigint,"
		"  job_variables = COALESCE($3::text, job_variables), updated_ms = " NOW_MS
		"  WHERE id = $1 AND state IN " FINISHED " RETURNING id, pool, updated_ms),"
		" e AS (INSERT INTO run_events(run_id, ts_ms, state, message)"
		"  SELECT id, updated_ms, 'SCHEDULED', $4 FROM u)"
		" SELECT (SELECT count(pg_notify('" CHANNEL "', pool)) FROM u),"
		"  (SELECT state FROM runs WHERE id = $1)";
	int rc;
	PGresult *res = query(s, "reopen run", sql, 4, p, &rc, err);
	if (!res)
		return rc;
	bool changed = atoi(PQgetvalue(res, 0, 0)) > 0;
	bool absent = PQgetisnull(res, 0, 1);
	char state[16];
	snprintf(state, sizeof(state), "%s", absent ? "" : PQgetvalue(res, 0, 1));
	PQclear(res);
	if (changed)
		return 0;
	if (absent)
		return pp_fail(err, PP_ENOTFOUND, "run %s not found", id);
	return pp_fail(err, PP_ECONFLICT, "run %s is %s, not finished: not reopened", id, state);
}

static int pg_request_cancel(struct pp_store *base, const char *id, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	const char *const p[] = {id};
	/* A run nobody has submitted yet is cancelled right here; one that may
	 * exist remotely is left for its dispatcher to stop. */
	int rc;
	PGresult *res =
		query(s, "cancel run",
		      "WITH u AS (UPDATE runs SET cancel_requested = true, updated_ms = " NOW_MS ","
		      "  state = CASE WHEN state = 'SCHEDULED' AND " LEASE_FREE(
			      "runs") "   THEN 'CANCELLED' ELSE state END"
				      "  WHERE id = $1 AND state NOT IN " TERMINAL
				      "  RETURNING id, state, updated_ms),"
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

/* The first column of res's rows, ids, into *ids (to free()); res cleared. */
static int take_ids(PGresult *res, char (**ids)[PP_ID_LEN], int *n, struct pp_error *err)
{
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
	return take_ids(res, ids, n, err);
}

static int pg_leased(struct pp_store *base, const char *owner, struct pp_leased_run **out, int *n,
		     struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	const char *const p[] = {owner};
	*out = NULL;
	*n = 0;
	int rc;
	/* runs_lease's predicate, so that the search is by its index */
	PGresult *res = query(
		s, "read the runs leased to us",
		"SELECT id, fence, state FROM runs WHERE lease_owner = $1 AND " FREE_LEASE_WHERE, 1,
		p, &rc, err);
	if (!res)
		return rc;
	int rows = PQntuples(res);
	if (rows > 0 && !(*out = calloc((size_t)rows, sizeof(**out)))) {
		PQclear(res);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	for (int i = 0; i < rows; i++) {
		struct pp_leased_run *r = &(*out)[i];
		snprintf(r->id, sizeof(r->id), "%s", PQgetvalue(res, i, 0));
		r->fence = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		if (pp_store_state_parse(PQgetvalue(res, i, 2), &r->state)) {
			rc = pp_fail(err, PP_EIO, "store %s: run %s has an unknown state '%s'",
				     s->where, r->id, PQgetvalue(res, i, 2));
			PQclear(res);
			free(*out);
			*out = NULL;
			return rc;
		}
	}
	*n = rows;
	PQclear(res);
	return 0;
}

/* Due runs nobody holds through runs_due_order, the others through
 * runs_lease, their predicates written out for the planner (as pg_list's
 * parts are). */
static int pg_live_ids(struct pp_store *base, const char *source, char (**ids)[PP_ID_LEN], int *n,
		       struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	const char *const p[] = {source};
	*ids = NULL;
	*n = 0;
	int rc;
	PGresult *res = query_by_index(
		s, "read live runs",
		"SELECT id FROM runs WHERE state = 'SCHEDULED' AND lease_owner IS NULL"
		" AND source = $1 AND NOT cancel_requested UNION ALL"
		" SELECT id FROM runs WHERE " FREE_LEASE_WHERE
		" AND state IN ('SCHEDULED','SUBMITTING','SUBMITTED','RUNNING')"
		" AND source = $1 AND NOT cancel_requested",
		1, p, &rc, err);
	if (!res)
		return rc;
	return take_ids(res, ids, n, err);
}

/* One part of the counts (store.h). Unfinished runs through the claim's
 * partial indexes (migrations 6 and 7, their predicates written out so the
 * planner can take them): runs in flight or held (runs_lease), due
 * runs nobody holds (runs_due_order), and the queue lag, the oldest due
 * run held or not, through the same two (a plain MIN over SCHEDULED runs
 * read every run: 0.22 s with 1,000,000 stored). The planner does not
 * take them of its own accord: on a table it has not analysed it scanned
 * every run (0.1-0.9 s with 1,000,000 stored; docs/performance.md, step
 * 43), and on one it has, it split the indexes' reads among parallel
 * workers, whose start cost ten times the count (step 54): so that count
 * is a query_by_index. Finished runs, and rows of unknown state, by a
 * scan of every run. Rows: state, count, pool (state NULL: the lag in
 * count). */
static int count_part(struct pp_store *base, int part, struct pp_store_counts *out,
		      struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	int rc;
	PGresult *res = (part == PP_COUNT_FINISHED ? query : query_by_index)(
		s, "count runs",
		part == PP_COUNT_FINISHED
			? "SELECT state, count(*), pool FROM runs WHERE state NOT "
			  "IN " PP_UNFINISHED_SQL " GROUP BY pool, state"
			: "SELECT state, count(*), pool FROM runs WHERE " FREE_LEASE_WHERE
			  " AND state IN " PP_UNFINISHED_SQL " GROUP BY pool, state"
			  " UNION ALL SELECT 'SCHEDULED', count(*), pool FROM runs"
			  " WHERE state = 'SCHEDULED' AND lease_owner IS NULL GROUP BY pool"
			  " UNION ALL SELECT NULL, LEAST((SELECT MIN(scheduled_ms) FROM runs"
			  "  WHERE state = 'SCHEDULED' AND lease_owner IS NULL"
			  "  AND scheduled_ms <= " NOW_MS "), (SELECT MIN(scheduled_ms) FROM runs"
			  "  WHERE " FREE_LEASE_WHERE
			  " AND state = 'SCHEDULED' AND scheduled_ms <= " NOW_MS ")), NULL",
		0, NULL, &rc, err);
	if (!res)
		return rc;
	for (int i = 0; i < PQntuples(res); i++) {
		if (PQgetisnull(res, i, 0)) {
			if (!PQgetisnull(res, i, 1))
				out->oldest_due_ms = strtoll(PQgetvalue(res, i, 1), NULL, 10);
			continue;
		}
		enum pp_store_state state;
		/* A row not yet quarantined counts as the quarantined it will be. */
		char *why = NULL;
		if (!pp_store_state_read(PQgetvalue(res, i, 0), &state, &why))
			pp_store_counts_add(out, PQgetvalue(res, i, 2), state,
					    strtol(PQgetvalue(res, i, 1), NULL, 10));
		free(why);
	}
	PQclear(res);
	return 0;
}

static int pg_counts(struct pp_store *base, struct pp_store_counts *out, struct pp_error *err)
{
	return pp_store_counts_cached(base, &((struct pg_store *)base)->counted, count_part, out,
				      err);
}

static int pg_store_id(struct pp_store *base, char out[PP_ID_LEN], struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	out[0] = '\0';
	int rc;
	PGresult *res =
		query(s, "read store id", "SELECT value FROM pushpool_meta WHERE key = 'store_id'",
		      0, NULL, &rc, err);
	if (!res)
		return rc;
	if (PQntuples(res) == 1 && strlen(PQgetvalue(res, 0, 0)) < PP_ID_LEN)
		snprintf(out, PP_ID_LEN, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	if (!out[0])
		return pp_fail(err, PP_EINVALID, "store %s: no store id in pushpool_meta",
			       s->where);
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
	.leased = pg_leased,
	.claim_send = pg_claim_send,
	.claim_take = pg_claim_take,
	.renew = pg_renew,
	.release_all = pg_release_all,
	.update = pg_update,
	.update_queue = pg_update_queue,
	.update_settle = pg_update_settle,
	.update_send = pg_update_send,
	.update_collect = pg_update_collect,
	.get = pg_get,
	.list = pg_list,
	.reopen = pg_reopen,
	.request_cancel = pg_request_cancel,
	.cancel_requests = pg_cancel_requests,
	.live_ids = pg_live_ids,
	.counts = pg_counts,
	.store_id = pg_store_id,
	.wake_fd = pg_wake_fd,
	.wake_drain = pg_wake_drain,
	.prov_lock = pg_prov_lock,
	.prov_save = pg_prov_save,
	.prov_get = pg_prov_get,
};

/* store/db.h for store/deploy.c. */

static int db_begin(struct pp_store *base, struct pp_error *err)
{
	return command((struct pg_store *)base, "begin", "BEGIN", err);
}

static int db_commit(struct pp_store *base, struct pp_error *err)
{
	return command((struct pg_store *)base, "commit", "COMMIT", err);
}

static void db_rollback(struct pp_store *base)
{
	pg_rollback((struct pg_store *)base);
}

static int db_query(struct pp_store *base, const char *what, const char *sql, int np,
		    const char *const *p, struct pp_rows *out, long *changes, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	int rc;
	PGresult *res = run_sql(s, what, SQL_BUILT, sql, np, p, &rc, err);
	if (!res)
		return rc;
	if (changes)
		*changes = strtol(PQcmdTuples(res), NULL, 10);
	if (out && PQresultStatus(res) == PGRES_TUPLES_OK) {
		int rows = PQntuples(res), cols = PQnfields(res);
		out->ncols = cols;
		if (rows && !(out->v = calloc((size_t)rows * (size_t)cols, sizeof(char *)))) {
			PQclear(res);
			return pp_fail(err, PP_ENOMEM, "out of memory");
		}
		for (int i = 0; i < rows; i++) {
			for (int c = 0; c < cols; c++)
				out->v[i * cols + c] = dup_value(res, i, c);
			out->nrows++;
		}
	}
	PQclear(res);
	return 0;
}

static int db_now_ms(struct pp_store *base, int64_t *ms, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	int rc;
	PGresult *res = query(s, "read the clock", "SELECT " NOW_MS, 0, NULL, &rc, err);
	if (!res)
		return rc;
	*ms = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

/* The array literal of ids one lease statement takes (a claim's runs,
 * each id quoted): far above any claim's, below what a statement should
 * carry. */
#define PG_LEASE_LIST_MAX (1 << 20)

static int db_lease(struct pp_store *base, const char *const *ids, int n, const char *owner,
		    int64_t lease_ms, struct pp_run_rec *out, bool *got, struct pp_error *err)
{
	struct pg_store *s = (struct pg_store *)base;
	for (int i = 0; i < n; i++)
		got[i] = false;
	if (n == 0)
		return 0;
	struct pp_buf list;
	pp_buf_init(&list, PG_LEASE_LIST_MAX);
	int rc = 0;
	for (int i = 0; i < n && !rc; i++)
		rc = batch_put(&list, ids[i]);
	if (!rc)
		rc = pp_buf_putc(&list, '}');
	if (rc) {
		pp_buf_free(&list);
		return pp_fail(err, PP_ENOMEM, "lease runs: out of memory");
	}
	char lease[24];
	i64(lease, sizeof(lease), lease_ms);
	const char *const p[] = {pp_buf_str(&list), owner, lease};
	/* With claim_intents, as the claim's due runs (CLAIM_INTENT). */
#define LEASE_RUNS(INTENT, EVENTS)                                                                 \
	"WITH u AS (UPDATE runs r SET lease_owner = $2,"                                           \
	" lease_expires = " NOW_MS " + $3::bigint, fence = r.fence + 1, updated_ms = " NOW_MS      \
	", waiting = NULL" INTENT " WHERE r.id = ANY($1::text[]) AND r.state = 'SCHEDULED'"        \
	" AND r.lease_owner IS NULL RETURNING " CLAIM_RUN_COLUMNS ")" EVENTS " SELECT * FROM u"
	static const char *const sql[2] = {
		LEASE_RUNS("", ""),
		LEASE_RUNS(CLAIM_INTENT, ", e AS (" INTENT_EVENTS("u") ")"),
	};
#undef LEASE_RUNS
	bool intent = base->claim_intents;
	PGresult *res = query(s, "lease runs", sql[intent], 3, p, &rc, err);
	pp_buf_free(&list);
	if (!res)
		return rc;
	struct pp_run_rec *v = NULL;
	int nv = 0;
	rc = collect(s, res, &v, &nv, err);
	PQclear(res);
	/* Each row to its id's place; a row not asked for cannot come back. */
	for (int k = 0; !rc && k < nv; k++) {
		int i = 0;
		while (i < n && (got[i] || strcmp(ids[i], v[k].id)))
			i++;
		if (i < n) {
			out[i] = v[k];
			out[i].intent_claimed = intent;
			got[i] = true;
			memset(&v[k], 0, sizeof(v[k]));
		}
	}
	pp_run_recs_free(v, nv);
	return rc;
}

/* The runs holding a slot where F holds (store/db.h's count_active):
 * runs_lease leads with the owner, for the claim, so they are counted
 * owner by owner, the released ones (NULL) and each owner that holds any,
 * found by a walk of the index from one owner to the next: a handful of
 * searches rather than a read of every run in flight of every pool. */
#define SLOT_HELD(F)                                                                               \
	"WITH RECURSIVE o(owner) AS (SELECT min(lease_owner) FROM runs WHERE " FREE_LEASE_WHERE    \
	" UNION ALL SELECT (SELECT min(lease_owner) FROM runs WHERE " FREE_LEASE_WHERE             \
	" AND lease_owner > o.owner) FROM o WHERE o.owner IS NOT NULL)"                            \
	" SELECT (SELECT count(*) FROM runs WHERE " FREE_LEASE_WHERE " AND lease_owner IS NULL"    \
	" AND " F ") + (SELECT count(*) FROM runs WHERE " FREE_LEASE_WHERE                         \
	" AND lease_owner = ANY (ARRAY(SELECT owner FROM o WHERE owner IS NOT NULL)) AND " F ")"

const struct pp_db_ops pp_db_pg = {
	.begin = db_begin,
	.commit = db_commit,
	.rollback = db_rollback,
	.query = db_query,
	.now_ms = db_now_ms,
	.lease = db_lease,
	.count_active =
		{
			[PP_SLOT_POOL] = SLOT_HELD("pool = $1"),
			[PP_SLOT_QUEUE] =
				SLOT_HELD("pool = $1 AND COALESCE(queue, 'default') = $2"),
		},
	.lock_rows = " FOR UPDATE",
};
