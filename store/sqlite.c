/* The embedded run store: one SQLite file in WAL mode. Leases use the
 * monotonic clock; since every process sharing the file runs on this host,
 * CLOCK_MONOTONIC is common to them, and the boot id stored with each lease
 * makes leases from before a reboot count as expired. Each owner also holds
 * an flock on a file named after it next to the database ("DB.owners/"):
 * a lease whose owner's lock can be taken belongs to a dead process (kill -9)
 * and is free at once instead of at its expiry. flock works across PID
 * namespaces, so dispatchers in containers sharing the volume are judged
 * right too. */
#include "store/store.h"
#include "store/db.h"
#include "store/deploy.h"
#include "store/sqlite_checkpoint.h"
#include "store/sqlite_vfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"

/* How long a statement waits for another process's lock on the store. */
#define STORE_BUSY_TIMEOUT_MS 10000

#define OWNER_VERDICTS 8
#define OWNER_MAX      128
#define QUERY_CACHE    24
#define TERMINAL       "('SUCCEEDED','FAILED','CRASHED','CANCELLED','DEAD','QUARANTINED')"
/* The states a run ends in (a quarantined row is set aside, not ended). */
#define FINISHED "('SUCCEEDED','FAILED','CRASHED','CANCELLED','DEAD')"
/* The states after SCHEDULED that are not terminal: migration 6 indexed
 * them so, before IN_FLIGHT_WHERE. */
#define IN_FLIGHT "('SUBMITTING','SUBMITTED','RUNNING','CANCELLING')"
/* The same as a chain of comparisons: the predicate of runs_lease since
 * migration 8, and so of every query that reads runs_lease. SQLite builds
 * a list of more than two constants on the right of IN into a temporary
 * b-tree each time it evaluates it, and a partial index's predicate is
 * evaluated on every write to a row (before and after): with IN, each
 * update of a run opened two temporary databases, about 100,000 of its
 * 150,000 instructions (issue 23). */
#define IN_FLIGHT_WHERE                                                                            \
	"(state = 'SUBMITTING' OR state = 'SUBMITTED' OR state = 'RUNNING'"                        \
	" OR state = 'CANCELLING')"

/* Whether a run's lease is free for a claim to take (or a cancel to end
 * the run at once), NOW the monotonic clock's parameter and ?3 this
 * boot: released, from another boot, or its owner's lease (owner_leases,
 * migration 12) has expired and so has the run's own, which its claim
 * set. A renewal writes the owner's row alone; a run claimed just now is
 * held by its own expiry even while its owner's row lags. An owner with
 * no row holds its runs: every owner a run names has one (the migration
 * made them, a claim writes its own in the transaction that leases, and
 * a row goes only when no unfinished run names it). The query's table is
 * runs. */
#define LEASE_FREE(NOW)                                                                            \
	"(lease_owner IS NULL OR lease_boot IS NOT ?3 OR (lease_expires < " NOW                    \
	" AND NOT EXISTS (SELECT 1 FROM owner_leases o WHERE o.owner = runs.lease_owner"           \
	" AND o.boot IS ?3 AND o.expires >= " NOW ")))"

/* The statements that begin and end transactions (tx_exec). */
enum tx_op { TX_BEGIN, TX_COMMIT, TX_ROLLBACK, TX_SAVEPOINT, TX_RELEASE, TX_ROLLBACK_TO, TX_OPS };

struct sqlite_store {
	struct pp_store base;
	sqlite3 *db;
	/* Takes the WAL's checkpoints off the writer's thread; NULL when it
	 * could not be made, and SQLite checkpoints in the commit. */
	struct pp_sqlite_checkpointer *ckpt;
	sqlite3_stmt *upd_st[2][2], *ev_st; /* upd_st[release_lease][by rowid] */
	/* The claim's statements, prepared on first use: the quarantine and
	 * the claim of one pool ([0]) or of every pool ([1]), and ([.][1])
	 * the look for anything it could take first. Preparing them
	 * on every claim was half of its cost (docs/performance.md). */
	sqlite3_stmt *quar_st, *claim_st[2][2];
	/* The data_version the quarantine last looked at (-1: never), and
	 * the statement that reads it. */
	int64_t quarantined_at;
	sqlite3_stmt *version_st;
	/* The due claim's lease of one run (db_lease), alone ([0]) or with
	 * the run's intent ([1], claim_intents), and db_query's statements by
	 * their text: store/deploy.c's claim runs the same few on every
	 * claim, and preparing them was most of its cost. */
	sqlite3_stmt *lease_st[2], *leased_st;
	/* The owner's lease: renewed ([0]), or made by a claim that leased
	 * runs if it has none in this boot ([1]) (own_lease). */
	sqlite3_stmt *own_st[2];
	/* get by the exact id, the loop's and the run sources' case */
	sqlite3_stmt *get_st;
	sqlite3_stmt *cancel_ids_st, *live_ids_st;
	/* a run's insert: a run source records every run it claims so */
	sqlite3_stmt *ins_st;
	struct {
		char *sql;
		sqlite3_stmt *st;
	} queries[QUERY_CACHE];
	int nqueries, next_query;
	sqlite3_stmt *tx_st[TX_OPS];
	/* Group commit: a turn is open; its transaction is open; SQLite
	 * rolled that back under a write (store.h's turn_end reports it). */
	bool turn, turn_tx, turn_lost;
	char *path;
	char boot_id[40];
	char *owners_dir;
	/* flocks held on owners_dir/<owner> for every owner this handle claims as */
	struct {
		char name[OWNER_MAX];
		int fd;
	} held[OWNER_VERDICTS];
	int nheld;
	/* Liveness verdicts within one claim, so each owner's lock is tried once. */
	struct {
		char owner[OWNER_MAX];
		bool gone;
	} verdicts[OWNER_VERDICTS];
	int nverdicts;
	/* The counts, kept between calls (sqlite_counts). */
	struct pp_store_counts_cache counted;
	/* Dead owners whose lock files may go once what took their leases is
	 * committed (forget_dead_owners). */
	char dead[OWNER_VERDICTS][OWNER_MAX];
	int ndead;
};

static const char *const migrations[] = {
	/* 1: runs and their history */
	"CREATE TABLE runs ("
	" id TEXT PRIMARY KEY, pool TEXT NOT NULL, name TEXT, deployment TEXT,"
	" job_variables TEXT NOT NULL DEFAULT '{}', parameters TEXT NOT NULL DEFAULT '{}',"
	" source TEXT NOT NULL DEFAULT 'local', source_ref TEXT,"
	" scheduled_ms INTEGER NOT NULL, next_attempt_ms INTEGER NOT NULL DEFAULT 0,"
	" priority INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL,"
	" infra_id TEXT, idem_key TEXT, attempt INTEGER NOT NULL DEFAULT 0,"
	" lease_owner TEXT, lease_expires INTEGER NOT NULL DEFAULT 0, lease_boot TEXT,"
	" fence INTEGER NOT NULL DEFAULT 0, cancel_requested INTEGER NOT NULL DEFAULT 0,"
	" last_error TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
	"CREATE INDEX runs_due ON runs(state, pool, priority DESC, scheduled_ms);"
	"CREATE INDEX runs_owner ON runs(lease_owner);"
	"CREATE UNIQUE INDEX runs_source_ref ON runs(source, source_ref);"
	"CREATE TABLE run_events ("
	" run_id TEXT NOT NULL REFERENCES runs(id), ts_ms INTEGER NOT NULL,"
	" state TEXT NOT NULL, message TEXT);"
	"CREATE INDEX run_events_run ON run_events(run_id, ts_ms);",
	/* 2: provisioning locks and journals (`pushpool provision`) */
	"CREATE TABLE provisions ("
	" pool TEXT PRIMARY KEY, owner TEXT, lease_expires INTEGER NOT NULL DEFAULT 0,"
	" owned TEXT NOT NULL DEFAULT '', updated_ms INTEGER NOT NULL);",
	/* 3: the store's identity, labelled on every remote object its runs
	 * create, so a sweeper removes only its own store's objects: a random
	 * UUID (version 4 layout), made once. */
	"CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"INSERT INTO store_meta VALUES ('store_id', lower(hex(randomblob(4))) || '-' ||"
	" lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' ||"
	" substr('89ab', 1 + abs(random() % 4), 1) || substr(lower(hex(randomblob(2))), 2) ||"
	" '-' || lower(hex(randomblob(6))));",
	/* 4: reruns of a finished run (reopen) */
	"ALTER TABLE runs ADD COLUMN rerun INTEGER NOT NULL DEFAULT 0;",
	/* 5: deployments, schedules, work queues, pool settings (store/db.h) */
	PP_DEPLOY_MIGRATION,
	/* 6: runs in flight by lease, so that a claim finds the free ones
	 * without reading every run a live dispatcher holds (issue 23) */
	"CREATE INDEX runs_lease ON runs(lease_owner, lease_boot, lease_expires)"
	" WHERE state IN " IN_FLIGHT ";",
	/* 7: SCHEDULED runs somebody holds (claimed, not yet submitting), so
	 * that the claim's look for abandoned ones reads only those, not every
	 * due run of the pool (issue 23) */
	"CREATE INDEX runs_sched_held ON runs(pool, priority DESC, scheduled_ms)"
	" WHERE state = 'SCHEDULED' AND lease_owner IS NOT NULL;",
	/* 8: runs_lease again, with a predicate that costs no temporary
	 * b-tree on every write (IN_FLIGHT_WHERE; issue 23) */
	"DROP INDEX runs_lease;"
	"CREATE INDEX runs_lease ON runs(lease_owner, lease_boot, lease_expires)"
	" WHERE " IN_FLIGHT_WHERE ";",
	/* 9: indexes on columns most runs leave NULL hold only the runs that
	 * have a value (store/db.h) */
	PP_SPARSE_INDEX_MIGRATION,
	/* 10: the runs a dispatcher holds that somebody asked to cancel, so
	 * that its look for them every half second reads those few, not every
	 * run it holds through runs_owner (27 ms with 100,000 in flight;
	 * issue 23) */
	"CREATE INDEX runs_cancel ON runs(lease_owner)"
	" WHERE cancel_requested = 1 AND lease_owner IS NOT NULL;",
	/* 11: runs in the order lists show them (the status page's newest
	 * first every 5 s, `pushpool runs`), so that a list reads the runs it
	 * returns, not every run (1 s a page with 1,000,000 stored). A run's
	 * writes never change these columns, so they never touch it. */
	"CREATE INDEX runs_time ON runs(scheduled_ms, id);",
	/* 12: one lease a dispatcher instead of one a run: a renewal wrote
	 * every run its dispatcher held (0.3-0.5 s every 20 s with 100,000
	 * in flight, an idle `serve` at 8.7 times the CPU of an empty one).
	 * Now it writes its owner's row (LEASE_FREE; issue 23). Each owner
	 * holding runs gets its row here, with the boot and expiry of its
	 * latest lease. */
	"CREATE TABLE owner_leases (owner TEXT PRIMARY KEY, boot TEXT,"
	" expires INTEGER NOT NULL);"
	"INSERT INTO owner_leases SELECT lease_owner, lease_boot, max(lease_expires) FROM runs"
	" WHERE lease_owner IS NOT NULL GROUP BY lease_owner;",
};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

static int db_fail(struct sqlite_store *s, struct pp_error *err, const char *what)
{
	int ec = sqlite3_errcode(s->db);
	int code = (ec == SQLITE_BUSY || ec == SQLITE_LOCKED)	   ? PP_ETRANSIENT
		   : (ec == SQLITE_CORRUPT || ec == SQLITE_NOTADB) ? PP_EINVALID
								   : PP_EIO;
	return pp_fail(err, code, "store %s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static int exec_sql(struct sqlite_store *s, const char *sql, struct pp_error *err)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int rc = pp_fail(err, PP_EIO, "store %s: %s", s->path, msg ? msg : "error");
		if (sqlite3_errcode(s->db) == SQLITE_BUSY)
			err->code = rc = PP_ETRANSIENT;
		sqlite3_free(msg);
		return rc;
	}
	return 0;
}

/* WAL: readers never block the writer; NORMAL sync is durable across a
 * process crash (kill -9), which is the failure leases must survive.
 * Switching a new store to WAL needs an exclusive lock, and SQLite calls no
 * busy handler for it: two commands opening a store that does not exist
 * yet (`serve` and `runs ls` started together) saw "database is locked".
 * Retried for as long as the busy timeout would have waited.
 * temp_store=MEMORY: each write in a turn's transaction is a savepoint,
 * and a page it changes is copied first into a journal of its own, to
 * undo that write alone; past 64 KiB (a claim's leases of a few dozen
 * runs) SQLite moved that journal into a file it created, wrote and
 * deleted in /var/tmp, a dozen times a thousand runs (docs/performance.md,
 * step 100). In memory it is freed with the savepoint. */
static int set_journal(struct sqlite_store *s, struct pp_error *err)
{
	int64_t until = pp_mono_ms() + STORE_BUSY_TIMEOUT_MS;
	for (int attempt = 0;; attempt++) {
		int rc = exec_sql(s,
				  "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
				  "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;",
				  err);
		if (rc != PP_ETRANSIENT || pp_mono_ms() >= until)
			return rc;
		usleep((useconds_t)pp_backoff_ms(attempt, 1, 64, 0) * 1000);
	}
}

static void read_boot_id(char *out, size_t n)
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	out[0] = '\0';
	if (f) {
		if (fgets(out, (int)n, f))
			out[strcspn(out, "\n")] = '\0';
		fclose(f);
	}
	if (!out[0])
		snprintf(out, n, "unknown");
}

static void sqlite_close(struct pp_store *base)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	for (int i = 0; i < 4; i++)
		sqlite3_finalize(s->upd_st[i / 2][i % 2]);
	sqlite3_finalize(s->ev_st);
	sqlite3_finalize(s->quar_st);
	for (int i = 0; i < 4; i++)
		sqlite3_finalize(s->claim_st[i / 2][i % 2]);
	sqlite3_finalize(s->lease_st[0]);
	sqlite3_finalize(s->lease_st[1]);
	sqlite3_finalize(s->own_st[0]);
	sqlite3_finalize(s->own_st[1]);
	sqlite3_finalize(s->leased_st);
	sqlite3_finalize(s->version_st);
	sqlite3_finalize(s->get_st);
	sqlite3_finalize(s->cancel_ids_st);
	sqlite3_finalize(s->live_ids_st);
	sqlite3_finalize(s->ins_st);
	for (int i = 0; i < TX_OPS; i++)
		sqlite3_finalize(s->tx_st[i]);
	for (int i = 0; i < s->nqueries; i++) {
		sqlite3_finalize(s->queries[i].st);
		free(s->queries[i].sql);
	}
	pp_sqlite_checkpointer_free(s->ckpt);
	sqlite3_close(s->db);
	for (int i = 0; i < s->nheld; i++)
		if (s->held[i].fd >= 0)
			close(s->held[i].fd);
	free(s->owners_dir);
	free(s->path);
	free(s);
}

/* owners_dir/<owner in hex>: hex keeps any owner string a safe file name. */
static void owner_file(const struct sqlite_store *s, const char *owner, char *out, size_t n)
{
	size_t len = (size_t)snprintf(out, n, "%s/", s->owners_dir);
	for (const unsigned char *p = (const unsigned char *)owner; *p && len + 3 < n; p++)
		len += (size_t)snprintf(out + len, n - len, "%02x", *p);
}

/* Hold our owner's lock for as long as the store is open. Best effort: without
 * it, leases of dead owners are still freed at expiry. */
static void hold_owner_lock(struct sqlite_store *s, const char *owner)
{
	for (int i = 0; i < s->nheld; i++)
		if (!strcmp(s->held[i].name, owner))
			return;
	if (s->nheld == OWNER_VERDICTS)
		return;
	int slot = s->nheld++;
	snprintf(s->held[slot].name, OWNER_MAX, "%s", owner);
	s->held[slot].fd = -1;
	char file[PATH_MAX];
	if (mkdir(s->owners_dir, 0750) && errno != EEXIST)
		return;
	owner_file(s, owner, file, sizeof(file));
	int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		close(fd); /* the same owner name is live elsewhere */
		return;
	}
	s->held[slot].fd = fd;
}

static bool owner_gone(struct sqlite_store *s, const char *owner)
{
	for (int i = 0; i < s->nverdicts; i++)
		if (!strcmp(s->verdicts[i].owner, owner))
			return s->verdicts[i].gone;
	char file[PATH_MAX];
	bool gone = false;
	owner_file(s, owner, file, sizeof(file));
	int fd = open(file, O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		gone = !flock(fd, LOCK_EX | LOCK_NB);
		close(fd);
	}
	if (s->nverdicts < OWNER_VERDICTS) {
		snprintf(s->verdicts[s->nverdicts].owner, OWNER_MAX, "%s", owner);
		s->verdicts[s->nverdicts++].gone = gone;
	}
	return gone;
}

/* Remember this claim's dead owners: their lock files may go once what
 * the claim took is committed. */
static void note_dead_owners(struct sqlite_store *s)
{
	for (int i = 0; i < s->nverdicts; i++) {
		if (!s->verdicts[i].gone)
			continue;
		bool known = false;
		for (int j = 0; j < s->ndead && !known; j++)
			known = !strcmp(s->dead[j], s->verdicts[i].owner);
		if (!known && s->ndead < OWNER_VERDICTS)
			memcpy(s->dead[s->ndead++], s->verdicts[i].owner, OWNER_MAX);
	}
}

/* A dead owner's lock file goes once none of its leases is left to free,
 * in the committed store. Inside a turn a claim's commit only releases a
 * savepoint: a dispatcher killed before the turn committed had its claims
 * rolled back, the dead owner's leases back with it, and, had its file
 * gone already, that owner would have looked alive until its leases
 * expired (recovery.sh, with make check's load). */
static void forget_dead_owners(struct sqlite_store *s)
{
	int n = s->ndead;
	s->ndead = 0;
	if (!n)
		return;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM runs WHERE lease_owner = ? LIMIT 1", -1, &st,
			       NULL) != SQLITE_OK)
		return;
	for (int i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, s->dead[i], -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_DONE) {
			char file[PATH_MAX];
			owner_file(s, s->dead[i], file, sizeof(file));
			unlink(file);
		}
	}
	sqlite3_finalize(st);
}

static void sql_owner_gone(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct sqlite_store *s = sqlite3_user_data(ctx);
	const unsigned char *owner = argc == 1 ? sqlite3_value_text(argv[0]) : NULL;
	sqlite3_result_int(ctx, owner && owner_gone(s, (const char *)owner));
}

static int schema_version(struct sqlite_store *s)
{
	sqlite3_stmt *st;
	int version = 0;
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			version = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	return version;
}

static int sqlite_migrate(struct pp_store *base, struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	/* Up to date (every open but the first after an upgrade): no write
	 * lock, so a command opening the store does not wait for a
	 * dispatcher's turn to commit. */
	int version = schema_version(s);
	if (version == NMIGRATIONS)
		return 0;
	int rc = exec_sql(s, "BEGIN IMMEDIATE", err);
	if (rc)
		return rc;
	version = schema_version(s);
	if (version > NMIGRATIONS) {
		exec_sql(s, "ROLLBACK", NULL);
		return pp_fail(err, PP_EINVALID,
			       "store %s: schema version %d is newer than this pushpool (%d)",
			       s->path, version, NMIGRATIONS);
	}
	for (int v = version; v < NMIGRATIONS && !rc; v++) {
		rc = exec_sql(s, migrations[v], err);
		if (!rc) {
			char pragma[64];
			snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
			rc = exec_sql(s, pragma, err);
		}
	}
	if (rc) {
		exec_sql(s, "ROLLBACK", NULL);
		return rc;
	}
	return exec_sql(s, "COMMIT", err);
}

/* SQLite gives every page cache it makes an initial bulk of 20 pages
 * (about 90 KB), the temporary b-trees of a claim's statements included;
 * freed at the statement's end, glibc hands it back to the kernel, and the
 * next claim faults it in again: 64 brk calls a second and 4 % of a core in
 * an idle `serve`. Without the bulk, pages come one by one as used. Its
 * memory statistics, which nothing here reads, cost a global mutex taken
 * and released on every allocation: about 200 a run, 3 % of `serve`'s
 * instructions (issue 23). Set once, before SQLite initialises itself
 * (sqlite3_config refuses after). */
static pthread_once_t config_once = PTHREAD_ONCE_INIT;

static void configure_sqlite(void)
{
	sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int sqlite_open(const char *path, struct pp_store **out, struct pp_error *err)
{
	pthread_once(&config_once, configure_sqlite);
	*out = NULL;
	struct sqlite_store *s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(path))) {
		free(s);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	s->base.ops = &pp_store_sqlite;
	s->quarantined_at = -1;
	if (asprintf(&s->owners_dir, "%s.owners", path) < 0) {
		s->owners_dir = NULL;
		sqlite_close(&s->base);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	read_boot_id(s->boot_id, sizeof(s->boot_id));
	if (sqlite3_open_v2(path, &s->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    pp_sqlite_vfs()) != SQLITE_OK) {
		int rc = pp_fail(err, PP_EIO, "store %s: cannot open: %s", path,
				 s->db ? sqlite3_errmsg(s->db) : strerror(errno));
		sqlite_close(&s->base);
		return rc;
	}
	sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
	sqlite3_create_function(s->db, "pp_owner_gone", 1, SQLITE_UTF8, s, sql_owner_gone, NULL,
				NULL);
	int rc = set_journal(s, err);
	if (!rc)
		rc = sqlite_migrate(&s->base, err);
	if (rc) {
		if (sqlite3_errcode(s->db) == SQLITE_NOTADB ||
		    sqlite3_errcode(s->db) == SQLITE_CORRUPT)
			rc = pp_fail(err, PP_EINVALID,
				     "store %s: not a pushpool store or corrupt: %s", path,
				     sqlite3_errmsg(s->db));
		sqlite_close(&s->base);
		return rc;
	}
	s->ckpt = pp_sqlite_checkpointer_attach(s->db, pp_sqlite_vfs());
	*out = &s->base;
	return 0;
}

/* *stp prepared from sql on first use, kept for the handle's life. */
static int prepare_once(struct sqlite_store *s, sqlite3_stmt **stp, const char *sql,
			const char *what, struct pp_error *err)
{
	if (!*stp &&
	    sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, stp, NULL) != SQLITE_OK)
		return db_fail(s, err, what);
	return 0;
}

/* Transactions. Outside a turn each write is its own transaction
 * (BEGIN IMMEDIATE: the write lock first, so two dispatchers never
 * deadlock upgrading a read). In a turn (group commit, store.h) the first
 * write opens the turn's transaction, and the turn's commit makes its
 * writes durable together. Each write but a run's update is a savepoint
 * in it, so that one that fails undoes only itself; sqlite_update says
 * why a run's update takes none. The statements are prepared once:
 * parsing them was a fifth of a write's cost. */
static int tx_exec(struct sqlite_store *s, enum tx_op op, struct pp_error *err)
{
	static const char *const sql[TX_OPS] = {
		"BEGIN IMMEDIATE",    "COMMIT",		  "ROLLBACK",
		"SAVEPOINT pp_write", "RELEASE pp_write", "ROLLBACK TO pp_write",
	};
	sqlite3_stmt **st = &s->tx_st[op];
	int rc = prepare_once(s, st, sql[op], sql[op], err);
	if (rc)
		return rc;
	rc = sqlite3_step(*st) == SQLITE_DONE ? 0 : db_fail(s, err, sql[op]);
	sqlite3_reset(*st);
	return rc;
}

/* The turn's transaction, opened by its first write; refused once SQLite
 * has rolled it back. */
static int turn_tx_open(struct sqlite_store *s, struct pp_error *err)
{
	if (s->turn_tx && sqlite3_get_autocommit(s->db)) {
		/* SQLite rolled the turn back itself (an I/O error, a full
		 * disk): its earlier writes are gone, and so is this one. */
		s->turn_lost = true;
		return pp_fail(err, PP_EIO, "store %s: this turn's transaction was rolled back",
			       s->path);
	}
	if (!s->turn_tx) {
		int rc = tx_exec(s, TX_BEGIN, err);
		if (rc)
			return rc;
		s->turn_tx = true;
	}
	return 0;
}

static int tx_begin(struct sqlite_store *s, struct pp_error *err)
{
	if (!s->turn)
		return tx_exec(s, TX_BEGIN, err);
	int rc = turn_tx_open(s, err);
	return rc ? rc : tx_exec(s, TX_SAVEPOINT, err);
}

static int tx_commit(struct sqlite_store *s, struct pp_error *err)
{
	return tx_exec(s, s->turn ? TX_RELEASE : TX_COMMIT, err);
}

static void tx_rollback(struct sqlite_store *s)
{
	if (!s->turn) {
		tx_exec(s, TX_ROLLBACK, NULL);
		return;
	}
	if (sqlite3_get_autocommit(s->db)) {
		s->turn_lost = s->turn_tx;
		return;
	}
	tx_exec(s, TX_ROLLBACK_TO, NULL);
	tx_exec(s, TX_RELEASE, NULL);
}

/* Rolls the turn's transaction back: its later writes are refused, and
 * turn_end reports every write of it lost. */
static void turn_lose(struct sqlite_store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		tx_exec(s, TX_ROLLBACK, NULL);
	s->turn_lost = true;
}

static void sqlite_turn_begin(struct pp_store *base)
{
	((struct sqlite_store *)base)->turn = true;
}

static int sqlite_turn_end(struct pp_store *base, struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	bool open = s->turn_tx, lost = s->turn_lost || (open && sqlite3_get_autocommit(s->db));
	s->turn = s->turn_tx = s->turn_lost = false;
	if (lost) {
		s->ndead = 0; /* their leases came back with the rollback */
		return pp_fail(err, PP_EIO, "store %s: this turn's transaction was rolled back",
			       s->path);
	}
	int rc = open ? tx_exec(s, TX_COMMIT, err) : 0;
	if (rc) {
		s->ndead = 0;
		if (!sqlite3_get_autocommit(s->db))
			tx_exec(s, TX_ROLLBACK, NULL);
		return rc;
	}
	forget_dead_owners(s);
	return 0;
}

static char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? strdup((const char *)t) : NULL;
}

#define RUN_COLUMNS                                                                                \
	"id, pool, name, deployment, job_variables, parameters, source, source_ref, infra_id,"     \
	" idem_key, last_error, scheduled_ms, next_attempt_ms, created_ms, updated_ms, priority,"  \
	" attempt, state, cancel_requested, fence, rerun, queue, waiting, slot_key, rowid"

static int row_to_rec(sqlite3_stmt *st, struct pp_run_rec *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "%s", (const char *)sqlite3_column_text(st, 0));
	snprintf(r->pool, sizeof(r->pool), "%s", (const char *)sqlite3_column_text(st, 1));
	r->name = col_text(st, 2);
	r->deployment = col_text(st, 3);
	r->job_variables = col_text(st, 4);
	r->parameters = col_text(st, 5);
	r->source = col_text(st, 6);
	r->source_ref = col_text(st, 7);
	r->infra_id = col_text(st, 8);
	r->idem_key = col_text(st, 9);
	r->last_error = col_text(st, 10);
	r->scheduled_ms = sqlite3_column_int64(st, 11);
	r->next_attempt_ms = sqlite3_column_int64(st, 12);
	r->created_ms = sqlite3_column_int64(st, 13);
	r->updated_ms = sqlite3_column_int64(st, 14);
	r->priority = sqlite3_column_int(st, 15);
	r->attempt = sqlite3_column_int(st, 16);
	if (pp_store_state_read((const char *)sqlite3_column_text(st, 17), &r->state,
				&r->last_error))
		return PP_ENOMEM;
	r->cancel_requested = sqlite3_column_int(st, 18) != 0;
	r->fence = sqlite3_column_int64(st, 19);
	r->rerun = sqlite3_column_int(st, 20);
	r->queue = col_text(st, 21);
	r->waiting = col_text(st, 22);
	r->slot_key = col_text(st, 23);
	r->row = sqlite3_column_int64(st, 24);
	return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* bind_text without SQLite's copy, for the statements every run goes
 * through (a copy is an allocation and a memcpy per value: about 5,000
 * instructions a run, issue 23). v must stay unchanged until the statement
 * is reset, and the statement's user clears its bindings right after
 * (unbind), so that no pointer outlives the call that bound it. */
static void bind_held(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* Reset st and drop what bind_held lent it. */
static void unbind(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int add_event(struct sqlite_store *s, const char *id, const char *state, const char *msg,
		     int64_t now, struct pp_error *err)
{
	int rc = prepare_once(
		s, &s->ev_st,
		"INSERT INTO run_events(run_id, ts_ms, state, message) VALUES (?,?,?,?)",
		"prepare event", err);
	if (rc)
		return rc;
	sqlite3_stmt *st = s->ev_st;
	bind_held(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	bind_held(st, 3, state);
	bind_held(st, 4, msg);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(s, err, "insert event");
	unbind(st);
	return rc;
}

static int sqlite_insert(struct pp_store *base, struct pp_run_rec *r, struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	if (!r->id[0] && pp_uuid7(r->id))
		return pp_fail(err, PP_EIO, "no random bytes for a run id");
	int64_t now = pp_wall_ms();
	r->created_ms = r->updated_ms = now;
	int rc = tx_begin(s, err);
	if (rc)
		return rc;
	if ((rc = prepare_once(s, &s->ins_st,
			       "INSERT INTO runs(id, pool, name, deployment, job_variables,"
			       " parameters, source, source_ref, scheduled_ms, next_attempt_ms,"
			       " priority, state, created_ms, updated_ms, queue, slot_key)"
			       " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
			       "prepare insert", err))) {
		tx_rollback(s);
		return rc;
	}
	sqlite3_stmt *st = s->ins_st;
	bind_held(st, 1, r->id);
	bind_held(st, 2, r->pool);
	bind_held(st, 3, r->name);
	bind_held(st, 4, r->deployment);
	bind_held(st, 5, r->job_variables ? r->job_variables : "{}");
	bind_held(st, 6, r->parameters ? r->parameters : "{}");
	bind_held(st, 7, r->source ? r->source : "local");
	bind_held(st, 8, r->source_ref);
	sqlite3_bind_int64(st, 9, r->scheduled_ms);
	sqlite3_bind_int64(st, 10, r->next_attempt_ms);
	sqlite3_bind_int(st, 11, r->priority);
	bind_held(st, 12, pp_store_state_name(r->state));
	sqlite3_bind_int64(st, 13, now);
	sqlite3_bind_int64(st, 14, now);
	bind_held(st, 15, r->queue);
	bind_held(st, 16, r->slot_key);
	int step = sqlite3_step(st);
	unbind(st);
	if (step == SQLITE_CONSTRAINT) {
		tx_rollback(s);
		return pp_fail(err, PP_ECONFLICT, "run %s (source %s %s) already exists", r->id,
			       r->source ? r->source : "local", r->source_ref ? r->source_ref : "");
	}
	if (step != SQLITE_DONE)
		rc = db_fail(s, err, "insert run");
	if (!rc)
		rc = add_event(s, r->id, pp_store_state_name(r->state), "created", now, err);
	if (rc) {
		tx_rollback(s);
		return rc;
	}
	return tx_commit(s, err);
}

static int collect(struct sqlite_store *s, sqlite3_stmt *st, struct pp_run_rec **out, int *n,
		   struct pp_error *err)
{
	int cap = 0, cnt = 0, step;
	struct pp_run_rec *v = NULL;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			int ncap = cap ? cap * 2 : 16;
			struct pp_run_rec *nv = realloc(v, (size_t)ncap * sizeof(*v));
			if (!nv) {
				pp_run_recs_free(v, cnt);
				return pp_fail(err, PP_ENOMEM, "out of memory");
			}
			v = nv;
			cap = ncap;
		}
		if (row_to_rec(st, &v[cnt])) {
			pp_run_recs_free(v, cnt + 1);
			return pp_fail(err, PP_ENOMEM, "store %s: out of memory reading runs",
				       s->path);
		}
		cnt++;
	}
	if (step != SQLITE_DONE) {
		pp_run_recs_free(v, cnt);
		return db_fail(s, err, "read runs");
	}
	*out = v;
	*n = cnt;
	return 0;
}

/* Inside the claim's transaction: a row whose state no pushpool state
 * names is set aside (QUARANTINED, never claimed) with its reason, instead of
 * failing every claim of its pool; the others are claimed as usual. Each
 * row is quarantined once, so it is reported once. */
/* SQL for a state no pushpool state names, as ranges between the known
 * names in byte order ("state < 'CANCELLED' OR (state > 'CANCELLED' AND
 * state < 'CANCELLING') OR ..."): unlike NOT IN, each range is a search
 * of the runs_due index, so the check costs the same with a million rows
 * stored. The names are pushpool's own (capital letters and '_'). */
static int unknown_state_sql(char *out, size_t size)
{
	const char *v[PP_ST_COUNT];
	for (int i = 0; i < PP_ST_COUNT; i++) {
		int k = i;
		for (v[k] = pp_store_state_name((enum pp_store_state)i);
		     k > 0 && strcmp(v[k - 1], v[k]) > 0; k--) {
			const char *t = v[k - 1];
			v[k - 1] = v[k];
			v[k] = t;
		}
	}
	int n = snprintf(out, size, "(state < '%s'", v[0]);
	for (int i = 1; i < PP_ST_COUNT && n > 0 && (size_t)n < size; i++)
		n += snprintf(out + n, size - (size_t)n, " OR (state > '%s' AND state < '%s')",
			      v[i - 1], v[i]);
	if (n > 0 && (size_t)n < size)
		n += snprintf(out + n, size - (size_t)n, " OR state > '%s')", v[PP_ST_COUNT - 1]);
	return n > 0 && (size_t)n < size ? 0 : -1;
}

/* PRAGMA data_version: changes when another connection commits; -1 when
 * it cannot be read (the quarantine then always looks). */
static int64_t data_version(struct sqlite_store *s)
{
	if (!s->version_st &&
	    sqlite3_prepare_v3(s->db, "PRAGMA data_version", -1, SQLITE_PREPARE_PERSISTENT,
			       &s->version_st, NULL) != SQLITE_OK)
		return -1;
	int64_t v = sqlite3_step(s->version_st) == SQLITE_ROW
			    ? sqlite3_column_int64(s->version_st, 0)
			    : -1;
	sqlite3_reset(s->version_st);
	return v;
}

static int quarantine_unknown(struct sqlite_store *s, int64_t now, struct pp_error *err)
{
	if (!s->quar_st) {
		char unknown[1024], sql[1536];
		if (unknown_state_sql(unknown, sizeof(unknown)) ||
		    snprintf(sql, sizeof(sql),
			     "UPDATE runs SET state = 'QUARANTINED', lease_owner = NULL,"
			     " updated_ms = ?1, last_error = '" PP_QUARANTINE_WHY "\"'"
			     " || substr(state, 1, ?2) || '\"'"
			     " WHERE %s RETURNING id, last_error",
			     unknown) >= (int)sizeof(sql))
			return pp_fail(err, PP_EINVALID, "store %s: quarantine SQL too long",
				       s->path);
		int rc = prepare_once(s, &s->quar_st, sql, "prepare quarantine", err);
		if (rc)
			return rc;
	}
	sqlite3_stmt *st = s->quar_st;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int(st, 2, PP_QUARANTINE_STATE_MAX);
	struct pp_run_rec *v = NULL;
	int n = 0, cap = 0, step, rc = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4;
			struct pp_run_rec *nv = realloc(v, (size_t)cap * sizeof(*v));
			if (!nv) {
				rc = pp_fail(err, PP_ENOMEM, "out of memory");
				break;
			}
			v = nv;
		}
		memset(&v[n], 0, sizeof(v[n]));
		snprintf(v[n].id, sizeof(v[n].id), "%s", (const char *)sqlite3_column_text(st, 0));
		v[n++].last_error = col_text(st, 1);
	}
	if (!rc && step != SQLITE_DONE)
		rc = db_fail(s, err, "quarantine runs");
	sqlite3_reset(st);
	for (int i = 0; i < n && !rc; i++) {
		const char *why = v[i].last_error ? v[i].last_error : PP_QUARANTINE_WHY;
		rc = add_event(s, v[i].id, "QUARANTINED", why, now, err);
		if (!rc)
			pp_warn("store %s: run %s %s; it will not be dispatched (see runs show)",
				s->path, v[i].id, why);
	}
	pp_run_recs_free(v, n);
	return rc;
}

/* The claim's parameters, the same in its look for free leases (which
 * has no use for ?2 and ?7). */
static void claim_bind(struct sqlite_store *s, sqlite3_stmt *st, const char *owner,
		       const char *pool, int64_t now, int64_t mono, int64_t lease_ms, int max)
{
	bind_text(st, 1, owner);
	sqlite3_bind_int64(st, 2, mono + lease_ms);
	bind_text(st, 3, s->boot_id);
	sqlite3_bind_int64(st, 4, now);
	bind_text(st, 5, pool);
	sqlite3_bind_int64(st, 6, mono);
	sqlite3_bind_int(st, 7, max);
}

/* owner's lease in this boot: renewed until at least until (monotonic
 * ms), never shortened, its row made or moved to this boot; or, for a
 * claim (made), only made or moved when it has none in this boot. A claim
 * needs no more: the runs it leases are held by their own expiry until
 * then, and renewals keep the row. So a claim writes no page for it while
 * renewals do their work (a page more in every turn's commit otherwise). */
static int own_lease(struct sqlite_store *s, const char *owner, int64_t until, bool made,
		     struct pp_error *err)
{
	static const char *const sql[] = {
		"INSERT INTO owner_leases(owner, boot, expires) VALUES (?1, ?2, ?3)"
		" ON CONFLICT(owner) DO UPDATE SET expires = CASE WHEN boot IS excluded.boot"
		" THEN max(expires, excluded.expires) ELSE excluded.expires END,"
		" boot = excluded.boot",
		"INSERT INTO owner_leases(owner, boot, expires) VALUES (?1, ?2, ?3)"
		" ON CONFLICT(owner) DO UPDATE SET expires = excluded.expires,"
		" boot = excluded.boot WHERE boot IS NOT excluded.boot",
	};
	sqlite3_stmt **st = &s->own_st[made];
	int rc = prepare_once(s, st, sql[made], "prepare owner lease", err);
	if (rc)
		return rc;
	bind_held(*st, 1, owner);
	bind_held(*st, 2, s->boot_id);
	sqlite3_bind_int64(*st, 3, until);
	if (sqlite3_step(*st) != SQLITE_DONE)
		rc = db_fail(s, err, "write owner lease");
	unbind(*st);
	return rc;
}

static int sqlite_claim(struct pp_store *base, const char *pool, const char *owner,
			int64_t lease_ms, int max, struct pp_run_rec **out, int *n,
			struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	*out = NULL;
	*n = 0;
	if (max <= 0)
		return 0;
	int64_t now = pp_wall_ms(), mono = pp_mono_ms();
	hold_owner_lock(s, owner);
	s->nverdicts = 0;
	int rc = tx_begin(s, err);
	if (rc)
		return rc;
	/* Only another connection writes a state no pushpool state names (a
	 * newer pushpool, a hand edit): look again only when one has
	 * committed since the last look. Inside the write transaction nobody
	 * else commits, so the version read here is the one looked at. */
	int64_t version = data_version(s);
	if (version < 0 || version != s->quarantined_at)
		rc = quarantine_unknown(s, now, err);
	if (rc) {
		tx_rollback(s);
		return rc;
	}
	/* Runs somebody held (their work under way, or claimed and
	 * abandoned) whose lease is free: never held, released, from another
	 * boot, or expired (its owner's and its own: LEASE_FREE), or whose
	 * owner is gone. They hold their slots already; due runs nobody held
	 * are claimed after them within the limits (pp_deploy_claim_due).
	 * Each arm below is one search of an index: runs in flight by lease
	 * (runs_lease), owner by owner from owner_leases for all but the
	 * released ones, so that the runs of a live owner are never read,
	 * however many there are (the test of an owner's row comes before
	 * its runs are looked at); due SCHEDULED runs someone claimed
	 * (runs_sched_held, which holds only those: neither the due runs
	 * nobody holds, however many, nor finished runs are read), only the
	 * first max of them kept before the two are sorted together. A row
	 * of an unknown state was just quarantined, and is in no arm
	 * anyway. */
#define CLAIM_GONE "(o.owner != ?1 AND pp_owner_gone(o.owner))"
#define CLAIM_FREE "(" LEASE_FREE("?6") " OR (lease_owner != ?1 AND pp_owner_gone(lease_owner)))"
	/* The arms over runs_lease, each one search: S (the released runs)
	 * or J (an owner's) before each, T after. */
#define CLAIM_ARMS(S, J, T)                                                                        \
	S "lease_owner IS NULL" T " UNION ALL" J "r.lease_boot IS NULL" T " UNION ALL" J           \
	  "r.lease_boot < ?3" T " UNION ALL" J "r.lease_boot > ?3" T " UNION ALL" J                \
	  "r.lease_boot = ?3 AND (o.boot IS NOT ?3 OR o.expires < ?6 OR " CLAIM_GONE ")"           \
	  " AND (r.lease_expires < ?6 OR " CLAIM_GONE ")" T
#define CLAIM_OWNERS(COL)                                                                          \
	" SELECT " COL " FROM owner_leases o CROSS JOIN runs r INDEXED BY runs_lease"              \
	" WHERE r.lease_owner = o.owner AND " IN_FLIGHT_WHERE " AND "
#define CLAIM_LEASED " SELECT id FROM runs INDEXED BY runs_lease WHERE " IN_FLIGHT_WHERE " AND "
#define CLAIM_HELD                                                                                 \
	" FROM runs INDEXED BY runs_sched_held WHERE state = 'SCHEDULED'"                          \
	" AND lease_owner IS NOT NULL AND scheduled_ms <= ?4 AND next_attempt_ms <= ?4"            \
	" AND " CLAIM_FREE
#define CLAIM_HEAD                                                                                 \
	"UPDATE runs SET lease_owner = ?1, lease_expires = ?2, lease_boot = ?3,"                   \
	" fence = fence + 1, updated_ms = ?4"                                                      \
	" WHERE id IN (SELECT id FROM runs WHERE id IN (" CLAIM_ARMS(                              \
		CLAIM_LEASED, CLAIM_OWNERS("r.id"),                                                \
		"") " UNION ALL SELECT id FROM (SELECT id" CLAIM_HELD
#define CLAIM_MID " ORDER BY priority DESC, scheduled_ms LIMIT ?7))"
#define CLAIM_TAIL                                                                                 \
	" AND next_attempt_ms <= ?4"                                                               \
	" ORDER BY (state = 'SCHEDULED'), priority DESC, scheduled_ms LIMIT ?7)"                   \
	" RETURNING " RUN_COLUMNS
	/* Whether any row is there for the claim above to take: the same
	 * arms, each with the claim's other conditions, as one plain read
	 * that stops at the first row. The claim itself builds temporary
	 * b-trees (its IN lists, its order, RETURNING) each time it runs,
	 * more than half of a claim that finds nothing, which most do: with
	 * no dispatcher gone, no lease is free (issue 23). */
#define CLAIM_PROBE(P)                                                                             \
	CLAIM_ARMS(" SELECT 1 FROM runs INDEXED BY runs_lease WHERE " IN_FLIGHT_WHERE " AND ",     \
		   CLAIM_OWNERS("1"), " AND next_attempt_ms <= ?4 AND " P)                         \
	" UNION ALL SELECT 1" CLAIM_HELD " AND " P " LIMIT 1"
	static const char *const sql[2][2] = {
		{CLAIM_HEAD " AND pool = ?5" CLAIM_MID " AND pool = ?5" CLAIM_TAIL,
		 CLAIM_PROBE("pool = ?5")},
		{CLAIM_HEAD " AND ?5 IS NULL" CLAIM_MID " AND ?5 IS NULL" CLAIM_TAIL,
		 CLAIM_PROBE("?5 IS NULL")},
	};
#undef CLAIM_GONE
#undef CLAIM_FREE
#undef CLAIM_ARMS
#undef CLAIM_OWNERS
#undef CLAIM_LEASED
#undef CLAIM_HELD
#undef CLAIM_HEAD
#undef CLAIM_MID
#undef CLAIM_TAIL
#undef CLAIM_PROBE
	sqlite3_stmt **claim = &s->claim_st[pool == NULL][0],
		     **probe = &s->claim_st[pool == NULL][1];
	bool found = false;
	rc = prepare_once(s, probe, sql[pool == NULL][1], "prepare claim", err);
	if (!rc) {
		claim_bind(s, *probe, owner, pool, now, mono, lease_ms, max);
		int step = sqlite3_step(*probe);
		found = step == SQLITE_ROW;
		if (!found && step != SQLITE_DONE)
			rc = db_fail(s, err, "look for free leases");
		sqlite3_reset(*probe);
	}
	if (!rc && found &&
	    !(rc = prepare_once(s, claim, sql[pool == NULL][0], "prepare claim", err))) {
		claim_bind(s, *claim, owner, pool, now, mono, lease_ms, max);
		rc = collect(s, *claim, out, n, err);
		sqlite3_reset(*claim);
	}
	if (!rc && *n < max)
		rc = pp_deploy_claim_due(base, pool, owner, lease_ms, max - *n, out, n, err);
	/* The runs it leased name the owner: its row commits with them. */
	if (!rc && *n)
		rc = own_lease(s, owner, mono + lease_ms, true, err);
	if (rc) {
		pp_run_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
		tx_rollback(s);
		return rc;
	}
	rc = tx_commit(s, err);
	if (rc) {
		pp_run_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
		return rc;
	}
	s->quarantined_at = version;
	note_dead_owners(s);
	if (!s->turn)
		forget_dead_owners(s);
	return 0;
}

static int sqlite_renew(struct pp_store *base, const char *owner, int64_t lease_ms,
			struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	int64_t mono = pp_mono_ms();
	/* One row, however many runs owner holds (LEASE_FREE). Leases that
	 * expired while we stalled are extended too when nobody has claimed
	 * them since: a claim replaces lease_owner, so a run still naming us
	 * was never taken over. */
	int rc = own_lease(s, owner, mono + lease_ms, false, err);
	if (rc)
		return rc;
	/* The rows of owners whose lease has expired, or from another boot,
	 * that no unfinished run names (a dispatcher's owner name may be new
	 * at each start): a claim taking the last of a dead owner's runs
	 * leaves its row behind. */
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "DELETE FROM owner_leases WHERE owner != ?1 AND (boot IS NOT ?2"
			       " OR expires < ?3) AND NOT EXISTS (SELECT 1 FROM runs WHERE"
			       " lease_owner = owner_leases.owner AND state NOT IN " TERMINAL ")",
			       -1, &st, NULL) != SQLITE_OK)
		return db_fail(s, err, "prepare renew");
	bind_text(st, 1, owner);
	bind_text(st, 2, s->boot_id);
	sqlite3_bind_int64(st, 3, mono);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(s, err, "clear gone owners' leases");
	sqlite3_finalize(st);
	return rc;
}

static int sqlite_release_all(struct pp_store *base, const char *owner, struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	/* A lease is held on a run in flight (runs_lease) or on a SCHEDULED
	 * run claimed before its start (runs_sched_held): each found by its
	 * index, not by reading every run. */
	static const char *const sql[] = {
		"UPDATE runs INDEXED BY runs_lease SET lease_owner = NULL, updated_ms = ?3"
		" WHERE " IN_FLIGHT_WHERE " AND lease_owner = ?1 AND lease_boot = ?2",
		"UPDATE runs INDEXED BY runs_sched_held SET lease_owner = NULL, updated_ms = ?3"
		" WHERE state = 'SCHEDULED' AND lease_owner = ?1 AND lease_boot = ?2",
		"DELETE FROM owner_leases WHERE owner = ?1 AND boot = ?2",
	};
	int rc = tx_begin(s, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]) && !rc; i++) {
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(s->db, sql[i], -1, &st, NULL) != SQLITE_OK) {
			rc = db_fail(s, err, "prepare release");
			break;
		}
		bind_text(st, 1, owner);
		bind_text(st, 2, s->boot_id);
		sqlite3_bind_int64(st, 3, pp_wall_ms());
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_fail(s, err, "release leases");
		sqlite3_finalize(st);
	}
	if (rc) {
		tx_rollback(s);
		return rc;
	}
	return tx_commit(s, err);
}

static int sqlite_update(struct pp_store *base, const char *id, int64_t fence,
			 const struct pp_run_update *u, struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	int64_t now = pp_wall_ms();
	/* In a turn, no savepoint: a savepoint copies every page the write
	 * touches into SQLite's statement journal first, and this is two
	 * writes a run (issue 23). Each statement is atomic on its own
	 * (SQLite undoes a failed one, or the whole transaction, which
	 * sqlite3_get_autocommit tells), a fenced-out update changes
	 * nothing, and an event that fails after its run's row changed
	 * rolls the turn back: the write is never half-applied. */
	int rc = s->turn ? turn_tx_open(s, err) : tx_begin(s, err);
	if (rc)
		return rc;
		/* Keeping or letting go of the lease, two statements: assigning
	 * lease_owner at all, even to itself, rewrites its index entries
	 * (runs_owner), a seventh of a write that keeps it (issue 23). */
#define UPDATE_RUN(LEASE, BY)                                                                      \
	"UPDATE runs SET state = ?1, updated_ms = ?2,"                                             \
	" infra_id = COALESCE(?3, infra_id), idem_key = COALESCE(?4, idem_key),"                   \
	" attempt = CASE WHEN ?5 < 0 THEN attempt ELSE ?5 END,"                                    \
	" next_attempt_ms = CASE WHEN ?6 < 0 THEN next_attempt_ms ELSE ?6 END,"                    \
	" last_error = CASE WHEN ?7 IS NULL THEN last_error WHEN ?7 = '' THEN NULL"                \
	"  ELSE ?7 END" LEASE " WHERE " BY "id = ?8 AND fence = ?9"
	/* By the rowid the run was read with, when it has one: a search of
	 * the table by integer instead of runs' index of ids by text (about
	 * 2,500 instructions a write, issue 23); the id is compared too. */
	static const char *const sql[2][2] = {
		{UPDATE_RUN("", ""), UPDATE_RUN("", "rowid = ?10 AND ")},
		{UPDATE_RUN(", lease_owner = NULL", ""),
		 UPDATE_RUN(", lease_owner = NULL", "rowid = ?10 AND ")},
	};
#undef UPDATE_RUN
	const char *state = pp_store_state_name(u->state);
	int changed = 0;
	/* A rowid that finds nothing is tried again by id: VACUUM renumbers
	 * the rows of a table without an INTEGER PRIMARY KEY. */
	for (int by_row = u->row > 0; by_row >= 0 && !rc && !changed; by_row--) {
		sqlite3_stmt **stp = &s->upd_st[u->release_lease][by_row];
		rc = prepare_once(s, stp, sql[u->release_lease][by_row], "prepare update", err);
		if (rc)
			break;
		sqlite3_stmt *st = *stp;
		bind_held(st, 1, state);
		sqlite3_bind_int64(st, 2, now);
		bind_held(st, 3, u->infra_id);
		bind_held(st, 4, u->idem_key);
		sqlite3_bind_int(st, 5, u->attempt);
		sqlite3_bind_int64(st, 6, u->next_attempt_ms);
		bind_held(st, 7, u->error);
		bind_held(st, 8, id);
		sqlite3_bind_int64(st, 9, fence);
		if (by_row)
			sqlite3_bind_int64(st, 10, u->row);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_fail(s, err, "update run");
		else
			changed = sqlite3_changes(s->db);
		unbind(st);
	}
	if (!rc && !changed)
		rc = pp_fail(err, PP_ECONFLICT, "run %s: lease lost (fence %lld is stale)", id,
			     (long long)fence);
	bool row_changed = !rc;
	if (!rc && u->event)
		rc = add_event(s, id, state, u->event, now, err);
	if (s->turn) {
		if (rc && (row_changed || sqlite3_get_autocommit(s->db)))
			turn_lose(s);
		return rc;
	}
	if (rc) {
		tx_rollback(s);
		return rc;
	}
	return tx_commit(s, err);
}

static int sqlite_get(struct pp_store *base, const char *id, struct pp_run_rec *out,
		      struct pp_run_event **ev, int *nev, struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	/* The exact id through the primary key, else, for an id shorter than
	 * any full one, an unambiguous prefix (`runs show`), which reads
	 * every run: a run source asks for runs the store does not have yet
	 * on every poll, and the search of every run each time made a poll
	 * of 200 runs take seconds with 100,000 stored. */
	int rc = prepare_once(s, &s->get_st, "SELECT " RUN_COLUMNS " FROM runs WHERE id = ?",
			      "prepare get", err);
	if (rc)
		return rc;
	bind_text(s->get_st, 1, id);
	struct pp_run_rec *rows = NULL;
	int n = 0;
	rc = collect(s, s->get_st, &rows, &n, err);
	unbind(s->get_st);
	if (!rc && n == 0 && strlen(id) < PP_ID_LEN - 1) {
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(s->db,
				       /* substr, not LIKE: `%` and `_` in what the user
					* typed are characters of the id, not wildcards. */
				       "SELECT " RUN_COLUMNS " FROM runs WHERE substr(id, 1, "
				       "length(?1)) = ?1 LIMIT 2",
				       -1, &st, NULL) != SQLITE_OK)
			return db_fail(s, err, "prepare get");
		bind_text(st, 1, id);
		rc = collect(s, st, &rows, &n, err);
		sqlite3_finalize(st);
	}
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
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT ts_ms, state, message FROM run_events WHERE run_id = ?"
			       " ORDER BY ts_ms, rowid",
			       -1, &st, NULL) != SQLITE_OK)
		return db_fail(s, err, "prepare events");
	bind_text(st, 1, out->id);
	int cap = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (*nev == cap) {
			cap = cap ? cap * 2 : 8;
			struct pp_run_event *nv = realloc(*ev, (size_t)cap * sizeof(**ev));
			if (!nv) {
				sqlite3_finalize(st);
				return pp_fail(err, PP_ENOMEM, "out of memory");
			}
			*ev = nv;
		}
		struct pp_run_event *e = &(*ev)[(*nev)++];
		e->ts_ms = sqlite3_column_int64(st, 0);
		snprintf(e->state, sizeof(e->state), "%s",
			 (const char *)sqlite3_column_text(st, 1));
		e->message = col_text(st, 2);
	}
	sqlite3_finalize(st);
	return 0;
}

static int sqlite_list(struct pp_store *base, const struct pp_run_filter *f,
		       struct pp_run_rec **out, int *n, struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st;
	/* Runs in the list's order through runs_time, the filters tested on
	 * the way, so only as many are read as it takes to find the first ?3
	 * that pass (migration 11). Runs of an unfinished state are few in a
	 * store of any age, and along runs_time perhaps none: those are read
	 * through runs_due, which leads with the state, and sorted. */
#define LIST_SQL(INDEX, STATE, ORDER)                                                              \
	"SELECT " RUN_COLUMNS " FROM runs INDEXED BY " INDEX " WHERE " STATE                       \
	" AND (?1 IS NULL OR pool = ?1) ORDER BY " ORDER " LIMIT ?3"
	static const char *const sql_by[2][2] = {
		{LIST_SQL("runs_time", "(?2 IS NULL OR state = ?2)", "scheduled_ms, id"),
		 LIST_SQL("runs_time", "(?2 IS NULL OR state = ?2)", "scheduled_ms DESC, id DESC")},
		{LIST_SQL("runs_due", "state = ?2", "scheduled_ms, id"),
		 LIST_SQL("runs_due", "state = ?2", "scheduled_ms DESC, id DESC")},
	};
#undef LIST_SQL
	bool unfinished =
		f && f->state >= 0 && !pp_store_state_terminal((enum pp_store_state)f->state);
	const char *sql = sql_by[unfinished][f && f->newest_first];
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_fail(s, err, "prepare list");
	bind_text(st, 1, f ? f->pool : NULL);
	bind_text(st, 2,
		  f && f->state >= 0 ? pp_store_state_name((enum pp_store_state)f->state) : NULL);
	sqlite3_bind_int(st, 3, f && f->limit > 0 ? f->limit : -1);
	int rc = collect(s, st, out, n, err);
	sqlite3_finalize(st);
	return rc;
}

static int sqlite_reopen(struct pp_store *base, const char *id, int64_t scheduled_ms,
			 const char *job_variables, const char *event, struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	int rc = tx_begin(s, err);
	if (rc)
		return rc;
	sqlite3_stmt *st;
	/* Only a finished run: one in flight is somebody's live work, and a
	 * quarantined row is not a run to start. */
	if (sqlite3_prepare_v2(
		    s->db,
		    "UPDATE runs SET state = 'SCHEDULED', rerun = rerun + 1, attempt = 0,"
		    /* The next attempt after the last one (start retries count
		     * too), at least the rerun's number: "ID-N" keys, as
		     * dispatcher/attempts.c writes them. */
		    " idem_key = id || '-' || (MAX(rerun + 1, CASE WHEN idem_key GLOB id || "
		    "'-[0-9]*'"
		    " THEN CAST(substr(idem_key, length(id) + 2) AS INTEGER) ELSE 1 END) + 1),"
		    " infra_id = NULL,"
		    " last_error = NULL, cancel_requested = 0, lease_owner = NULL,"
		    " lease_expires = 0, next_attempt_ms = 0, scheduled_ms = ?2,"
		    " job_variables = COALESCE(?3, job_variables), updated_ms = ?4"
		    " WHERE id = ?1 AND state IN " FINISHED " RETURNING rerun",
		    -1, &st, NULL) != SQLITE_OK) {
		rc = db_fail(s, err, "prepare reopen");
		tx_rollback(s);
		return rc;
	}
	int64_t now = pp_wall_ms();
	bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, scheduled_ms);
	bind_text(st, 3, job_variables);
	sqlite3_bind_int64(st, 4, now);
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	if (step == SQLITE_ROW) {
		rc = add_event(s, id, "SCHEDULED", event ? event : "reopened", now, err);
	} else if (step == SQLITE_DONE) {
		/* Why not: absent, or not finished. */
		if (sqlite3_prepare_v2(s->db, "SELECT state FROM runs WHERE id = ?", -1, &st,
				       NULL) != SQLITE_OK) {
			rc = db_fail(s, err, "prepare reopen check");
		} else {
			bind_text(st, 1, id);
			if (sqlite3_step(st) == SQLITE_ROW)
				rc = pp_fail(err, PP_ECONFLICT,
					     "run %s is %s, not finished: not reopened", id,
					     (const char *)sqlite3_column_text(st, 0));
			else
				rc = pp_fail(err, PP_ENOTFOUND, "run %s not found", id);
			sqlite3_finalize(st);
		}
	} else {
		rc = db_fail(s, err, "reopen run");
	}
	if (rc) {
		tx_rollback(s);
		return rc;
	}
	return tx_commit(s, err);
}

static int sqlite_request_cancel(struct pp_store *base, const char *id, struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	int rc = tx_begin(s, err);
	if (rc)
		return rc;
	sqlite3_stmt *st;
	/* A run nobody has submitted yet is cancelled right here; one that may
	 * exist remotely is left for its dispatcher to stop. */
	if (sqlite3_prepare_v2(s->db,
			       "UPDATE runs SET cancel_requested = 1, updated_ms = ?2,"
			       " state = CASE WHEN state = 'SCHEDULED' AND " LEASE_FREE(
				       "?4") " THEN 'CANCELLED' ELSE state END"
					     " WHERE id = ?1 AND state NOT IN " TERMINAL
					     " RETURNING state",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = db_fail(s, err, "prepare cancel");
		tx_rollback(s);
		return rc;
	}
	int64_t now = pp_wall_ms();
	bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	bind_text(st, 3, s->boot_id);
	sqlite3_bind_int64(st, 4, pp_mono_ms());
	int step = sqlite3_step(st);
	char state[16] = "";
	if (step == SQLITE_ROW)
		snprintf(state, sizeof(state), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (step == SQLITE_ROW)
		rc = add_event(s, id, state, "cancel requested", now, err);
	else if (step == SQLITE_DONE)
		rc = pp_fail(err, PP_ENOTFOUND, "run %s not found or already finished", id);
	else
		rc = db_fail(s, err, "cancel run");
	if (rc) {
		tx_rollback(s);
		return rc;
	}
	return tx_commit(s, err);
}

/* The ids sql (prepared into *stp on first use) returns for its one
 * parameter, key, into *ids (to free()). */
static int read_ids(struct sqlite_store *s, sqlite3_stmt **stp, const char *sql, const char *key,
		    const char *what, char (**ids)[PP_ID_LEN], int *n, struct pp_error *err)
{
	*ids = NULL;
	*n = 0;
	int rc = prepare_once(s, stp, sql, what, err);
	if (rc)
		return rc;
	bind_held(*stp, 1, key);
	int cap = 0, step;
	while ((step = sqlite3_step(*stp)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			char(*nv)[PP_ID_LEN] = realloc(*ids, (size_t)cap * PP_ID_LEN);
			if (!nv) {
				rc = pp_fail(err, PP_ENOMEM, "out of memory");
				break;
			}
			*ids = nv;
		}
		snprintf((*ids)[(*n)++], PP_ID_LEN, "%s",
			 (const char *)sqlite3_column_text(*stp, 0));
	}
	if (!rc && step != SQLITE_DONE)
		rc = db_fail(s, err, what);
	unbind(*stp);
	if (rc) {
		free(*ids);
		*ids = NULL;
		*n = 0;
	}
	return rc;
}

static int sqlite_cancel_requests(struct pp_store *base, const char *owner, char (**ids)[PP_ID_LEN],
				  int *n, struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	return read_ids(s, &s->cancel_ids_st,
			"SELECT id FROM runs INDEXED BY runs_cancel WHERE lease_owner = ?1"
			" AND cancel_requested = 1 AND state NOT IN " TERMINAL,
			owner, "read cancel requests", ids, n, err);
}

/* The due runs through runs_due (its leading state), those in flight
 * through runs_lease; each row's source and cancel flag read, no more. */
static int sqlite_live_ids(struct pp_store *base, const char *source, char (**ids)[PP_ID_LEN],
			   int *n, struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	return read_ids(s, &s->live_ids_st,
			"SELECT id FROM runs INDEXED BY runs_due WHERE state = 'SCHEDULED'"
			" AND source = ?1 AND cancel_requested = 0 UNION ALL"
			" SELECT id FROM runs INDEXED BY runs_lease WHERE " IN_FLIGHT_WHERE
			" AND state <> 'CANCELLING' AND source = ?1 AND cancel_requested = 0",
			source, "read live runs", ids, n, err);
}

/* One part of the counts (store.h): unfinished runs by a search of
 * runs_due per state, with the queue lag; finished ones, and rows of an
 * unknown state, by a scan of every run. */
static int count_part(struct pp_store *base, int part, struct pp_store_counts *out,
		      struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       part == PP_COUNT_FINISHED
				       ? "SELECT pool, state, COUNT(*) FROM runs WHERE state NOT "
					 "IN " PP_UNFINISHED_SQL " GROUP BY pool, state"
				       : "SELECT pool, state, COUNT(*) FROM runs WHERE state "
					 "IN " PP_UNFINISHED_SQL " GROUP BY pool, state",
			       -1, &st, NULL) != SQLITE_OK)
		return db_fail(s, err, "prepare counts");
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		enum pp_store_state state;
		char *why = NULL;
		/* A row not yet quarantined counts as the quarantined it will be. */
		if (!pp_store_state_read((const char *)sqlite3_column_text(st, 1), &state, &why))
			pp_store_counts_add(out, (const char *)sqlite3_column_text(st, 0), state,
					    (long)sqlite3_column_int64(st, 2));
		free(why);
	}
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		return db_fail(s, err, "count runs");
	if (part == PP_COUNT_FINISHED)
		return 0;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT MIN(scheduled_ms) FROM runs WHERE state = 'SCHEDULED'"
			       " AND scheduled_ms <= ?",
			       -1, &st, NULL) != SQLITE_OK)
		return db_fail(s, err, "prepare lag");
	sqlite3_bind_int64(st, 1, pp_wall_ms());
	if (sqlite3_step(st) == SQLITE_ROW)
		out->oldest_due_ms = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return 0;
}

/* A store without the thread (its file could not be named, or memory ran
 * out at the open) leaves its checkpoints to SQLite's commits, which
 * nothing counts: it reports none. */
static void sqlite_checkpoints(struct pp_store *base, struct pp_store_checkpoints *out)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	*out = (struct pp_store_checkpoints){0};
	if (s->ckpt)
		pp_sqlite_checkpointer_stats(s->ckpt, out);
}

static int sqlite_counts(struct pp_store *base, struct pp_store_counts *out, struct pp_error *err)
{
	return pp_store_counts_cached(base, &((struct sqlite_store *)base)->counted, count_part,
				      out, err);
}

/* Provisioning locks: wall-clock expiry, since the lock is between hosts. */
static int sqlite_prov_lock(struct pp_store *base, const char *pool, const char *owner,
			    int64_t lease_ms, const char *steal_from, char **owned, char *holder,
			    struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	int64_t now = pp_wall_ms();
	sqlite3_stmt *st;
	int rc, step;

	*owned = NULL;
	holder[0] = '\0';
	if (sqlite3_prepare_v2(
		    s->db,
		    "INSERT INTO provisions(pool, owner, lease_expires, updated_ms)"
		    " VALUES (?1, ?2, ?3, ?4) ON CONFLICT(pool) DO UPDATE SET owner = ?2,"
		    " lease_expires = ?3, updated_ms = ?4 WHERE provisions.owner IS NULL"
		    " OR provisions.owner = ?2 OR provisions.owner = ?5"
		    " OR provisions.lease_expires < ?4 RETURNING owned",
		    -1, &st, NULL) != SQLITE_OK)
		return db_fail(s, err, "prepare provisioning lock");
	bind_text(st, 1, pool);
	bind_text(st, 2, owner);
	sqlite3_bind_int64(st, 3, now + lease_ms);
	sqlite3_bind_int64(st, 4, now);
	bind_text(st, 5, steal_from ? steal_from : owner);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);

		*owned = strdup(t ? (const char *)t : "");
		rc = *owned ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
		while (sqlite3_step(st) == SQLITE_ROW)
			;
	} else if (step == SQLITE_DONE) {
		rc = PP_ECONFLICT;
	} else {
		rc = db_fail(s, err, "provisioning lock");
	}
	sqlite3_finalize(st);
	if (rc != PP_ECONFLICT)
		return rc;
	if (sqlite3_prepare_v2(s->db, "SELECT owner FROM provisions WHERE pool = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return db_fail(s, err, "prepare provisioning lock");
	bind_text(st, 1, pool);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(holder, PP_PROV_OWNER_MAX, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return pp_fail(err, PP_ECONFLICT, "pool %s is being provisioned by %s", pool,
		       holder[0] ? holder : "another process");
}

static int sqlite_prov_save(struct pp_store *base, const char *pool, const char *owner,
			    int64_t lease_ms, const char *owned, bool release, struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	int64_t now = pp_wall_ms();
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db,
			       "UPDATE provisions SET owned = ?3, lease_expires = ?4,"
			       " owner = CASE WHEN ?5 THEN NULL ELSE owner END, updated_ms = ?6"
			       " WHERE pool = ?1 AND owner = ?2",
			       -1, &st, NULL) != SQLITE_OK)
		return db_fail(s, err, "prepare provisioning save");
	bind_text(st, 1, pool);
	bind_text(st, 2, owner);
	bind_text(st, 3, owned);
	sqlite3_bind_int64(st, 4, release ? 0 : now + lease_ms);
	sqlite3_bind_int(st, 5, release);
	sqlite3_bind_int64(st, 6, now);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(s, err, "provisioning save");
	sqlite3_finalize(st);
	if (!rc && sqlite3_changes(s->db) == 0)
		rc = pp_fail(err, PP_ECONFLICT, "pool %s: provisioning lock lost", pool);
	return rc;
}

static int sqlite_prov_get(struct pp_store *base, const char *pool, char **owned,
			   struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st;
	const unsigned char *t = NULL;

	if (sqlite3_prepare_v2(s->db, "SELECT owned FROM provisions WHERE pool = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return db_fail(s, err, "prepare provisioning read");
	bind_text(st, 1, pool);
	if (sqlite3_step(st) == SQLITE_ROW)
		t = sqlite3_column_text(st, 0);
	*owned = strdup(t ? (const char *)t : "");
	sqlite3_finalize(st);
	return *owned ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
}

static int sqlite_store_id(struct pp_store *base, char out[PP_ID_LEN], struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st;
	out[0] = '\0';
	if (sqlite3_prepare_v2(s->db, "SELECT value FROM store_meta WHERE key = 'store_id'", -1,
			       &st, NULL) != SQLITE_OK)
		return db_fail(s, err, "prepare store id");
	int rc = sqlite3_step(st);
	const unsigned char *v = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
	if (v && strlen((const char *)v) < PP_ID_LEN)
		snprintf(out, PP_ID_LEN, "%s", (const char *)v);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(s, err, "read store id");
	if (!out[0])
		return pp_fail(err, PP_EINVALID, "store %s: no store id in store_meta", s->path);
	return 0;
}

const struct pp_store_ops pp_store_sqlite = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.migrate = sqlite_migrate,
	.insert = sqlite_insert,
	.claim = sqlite_claim,
	.renew = sqlite_renew,
	.release_all = sqlite_release_all,
	.update = sqlite_update,
	.get = sqlite_get,
	.list = sqlite_list,
	.reopen = sqlite_reopen,
	.request_cancel = sqlite_request_cancel,
	.cancel_requests = sqlite_cancel_requests,
	.live_ids = sqlite_live_ids,
	.counts = sqlite_counts,
	.checkpoints = sqlite_checkpoints,
	.prov_lock = sqlite_prov_lock,
	.prov_save = sqlite_prov_save,
	.prov_get = sqlite_prov_get,
	.store_id = sqlite_store_id,
	.turn_begin = sqlite_turn_begin,
	.turn_end = sqlite_turn_end,
};

/* store/db.h for store/deploy.c. */

static int db_begin(struct pp_store *base, struct pp_error *err)
{
	return tx_begin((struct sqlite_store *)base, err);
}

static int db_commit(struct pp_store *base, struct pp_error *err)
{
	return tx_commit((struct sqlite_store *)base, err);
}

static void db_rollback(struct pp_store *base)
{
	tx_rollback((struct sqlite_store *)base);
}

/* Text that is a plain integer binds as one, so it compares and sums as
 * the integer columns it is meant for. */
static void bind_value(sqlite3_stmt *st, int i, const char *v)
{
	if (!v) {
		sqlite3_bind_null(st, i);
		return;
	}
	const char *d = v + (*v == '-');
	size_t len = strlen(d);
	bool integer = len > 0 && len < 19 && (d[0] != '0' || len == 1);
	for (size_t k = 0; integer && k < len; k++)
		integer = d[k] >= '0' && d[k] <= '9';
	if (integer)
		sqlite3_bind_int64(st, i, strtoll(v, NULL, 10));
	else
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

/* sql's statement, prepared once: from the cache, else prepared into it
 * (the oldest entry makes room). Borrowed; reset it after use. */
static int cached_query(struct sqlite_store *s, const char *what, const char *sql,
			sqlite3_stmt **out, struct pp_error *err)
{
	for (int i = 0; i < s->nqueries; i++)
		if (!strcmp(s->queries[i].sql, sql)) {
			*out = s->queries[i].st;
			return 0;
		}
	sqlite3_stmt *st;
	char *copy = strdup(sql);
	if (!copy)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		free(copy);
		return db_fail(s, err, what);
	}
	int i = s->nqueries < QUERY_CACHE ? s->nqueries++ : s->next_query++ % QUERY_CACHE;
	if (s->queries[i].st) {
		sqlite3_finalize(s->queries[i].st);
		free(s->queries[i].sql);
	}
	s->queries[i].sql = copy;
	s->queries[i].st = st;
	*out = st;
	return 0;
}

static int db_query(struct pp_store *base, const char *what, const char *sql, int np,
		    const char *const *p, struct pp_rows *out, long *changes, struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st = NULL;
	int rc = cached_query(s, what, sql, &st, err);
	if (rc)
		return rc;
	for (int i = 0; i < np; i++) {
		char name[12];
		snprintf(name, sizeof(name), "$%d", i + 1);
		int idx = sqlite3_bind_parameter_index(st, name);
		if (idx)
			bind_value(st, idx, p[i]);
	}
	int step, ncols = sqlite3_column_count(st), cap = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (!out)
			continue;
		if (out->nrows == cap) {
			cap = cap ? cap * 2 : 16;
			char **nv = realloc(out->v, (size_t)cap * (size_t)ncols * sizeof(*nv));
			if (!nv) {
				rc = pp_fail(err, PP_ENOMEM, "out of memory");
				break;
			}
			out->v = nv;
		}
		out->ncols = ncols;
		for (int c = 0; c < ncols; c++)
			out->v[out->nrows * ncols + c] = col_text(st, c);
		out->nrows++;
	}
	if (!rc && step != SQLITE_DONE) {
		int ext = sqlite3_extended_errcode(s->db);
		rc = ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY
			     ? pp_fail(err, PP_ECONFLICT, "store %s: %s: %s", s->path, what,
				       sqlite3_errmsg(s->db))
			     : db_fail(s, err, what);
	}
	if (!rc && changes)
		*changes = sqlite3_changes(s->db);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc && out)
		pp_rows_free(out);
	return rc;
}

static int db_now_ms(struct pp_store *base, int64_t *ms, struct pp_error *err)
{
	(void)base;
	(void)err;
	*ms = pp_wall_ms();
	return 0;
}

static int lease_one(struct pp_store *base, const char *id, const char *owner, int64_t lease_ms,
		     struct pp_run_rec *out, bool *got, struct pp_error *err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	*got = false;
	/* The row is read back by its key rather than with RETURNING, which
	 * SQLite gathers into a temporary b-tree each time (the cost of most
	 * of a lease; issue 23). Inside the claim's write transaction nobody
	 * else writes between the two. With the intent, the row goes from
	 * due straight to in flight: one write of the row and its indexes
	 * where the lease and the dispatcher's intent made two. */
#define LEASE_RUN(INTENT)                                                                          \
	"UPDATE runs SET lease_owner = ?1, lease_expires = ?2, lease_boot = ?3,"                   \
	" fence = fence + 1, updated_ms = ?4, waiting = NULL" INTENT                               \
	" WHERE id = ?5 AND state = 'SCHEDULED' AND lease_owner IS NULL"
	static const char *const sql[2] = {
		LEASE_RUN(""),
		LEASE_RUN(", state = 'SUBMITTING', attempt = attempt + 1,"
			  " idem_key = COALESCE(idem_key, id || '" PP_FIRST_KEY "')"),
	};
#undef LEASE_RUN
	bool intent = base->claim_intents;
	int rc = prepare_once(s, &s->lease_st[intent], sql[intent], "prepare lease", err);
	if (!rc)
		rc = prepare_once(s, &s->leased_st,
				  "SELECT " RUN_COLUMNS " FROM runs WHERE id = ?1",
				  "prepare leased run", err);
	if (rc)
		return rc;
	sqlite3_stmt *st = s->lease_st[intent];
	int64_t now = pp_wall_ms();
	bind_held(st, 1, owner);
	sqlite3_bind_int64(st, 2, pp_mono_ms() + lease_ms);
	bind_held(st, 3, s->boot_id);
	sqlite3_bind_int64(st, 4, now);
	bind_held(st, 5, id);
	int changed = 0;
	if (sqlite3_step(st) == SQLITE_DONE)
		changed = sqlite3_changes(s->db);
	else
		rc = db_fail(s, err, "lease run");
	unbind(st);
	if (rc || !changed)
		return rc;
	st = s->leased_st;
	bind_held(st, 1, id);
	struct pp_run_rec *v = NULL;
	int n = 0;
	rc = collect(s, st, &v, &n, err);
	unbind(st);
	if (!rc && n == 1 && intent) {
		char ev[sizeof(PP_INTENT_EVENT) + 16];
		snprintf(ev, sizeof(ev), PP_INTENT_EVENT "%d)", v[0].attempt);
		rc = add_event(s, id, "SUBMITTING", ev, now, err);
		v[0].intent_claimed = true;
	}
	if (!rc && n == 1) {
		*out = v[0];
		*got = true;
		free(v);
	} else {
		pp_run_recs_free(v, n);
	}
	return rc;
}

/* In process, a statement a run costs no round trip. */
static int db_lease(struct pp_store *base, const char *const *ids, int n, const char *owner,
		    int64_t lease_ms, struct pp_run_rec *out, bool *got, struct pp_error *err)
{
	int rc = 0;
	for (int i = 0; i < n; i++)
		got[i] = false;
	for (int i = 0; i < n && !rc; i++)
		rc = lease_one(base, ids[i], owner, lease_ms, &out[i], &got[i], err);
	return rc;
}

/* Runs holding a slot (store/deploy.c's ACTIVE): those in flight, read
 * through runs_lease (every run in flight, not one finished), and
 * SCHEDULED runs someone claimed, through runs_sched_held; a deployment's
 * through runs_deployment, by state. Without them SQLite read every run of
 * the pool at each claim of a pool or queue with a limit (188 ms a claim
 * with 1,000,000 finished runs stored, issue 23). A row of unknown state,
 * which ACTIVE counts, is quarantined by the claim before it counts. */
#define SLOT_HELD(F)                                                                               \
	"SELECT (SELECT count(*) FROM runs INDEXED BY runs_lease WHERE " IN_FLIGHT_WHERE " AND " F \
	") + (SELECT count(*) FROM runs INDEXED BY runs_sched_held"                                \
	" WHERE state = 'SCHEDULED' AND lease_owner IS NOT NULL AND " F ")"

const struct pp_db_ops pp_db_sqlite = {
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
			[PP_SLOT_DEPLOYMENT] =
				"SELECT count(*) FROM runs INDEXED BY runs_deployment"
				" WHERE deployment = $1 AND source = 'deployment' AND state "
				"IN " PP_UNFINISHED_SQL
				" AND (state <> 'SCHEDULED' OR lease_owner IS NOT NULL)",
		},
	.lock_rows = "",
};
