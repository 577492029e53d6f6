/* The SQLite store's checkpoints on a thread of their own.
 *
 * SQLite checkpoints a WAL database inside the commit that finds the WAL
 * PP_CHECKPOINT_PAGES frames long: it reads those frames back, writes
 * their pages into the database file and syncs both files, with
 * synchronous=NORMAL two fdatasync calls. In `serve` that commit is the
 * loop's, and a loop taking ECS runs at +0 ms spent about a tenth of its
 * time there (strace -w, 3,000 runs: 20 fdatasync calls of 2.7 ms each, and
 * 2,854 pwrite64 and 1,598 pread64 calls, nearly all of them the
 * checkpoints'), while no request moved (docs/performance.md, step 99).
 *
 * Here the writer's commit hook only wakes a thread, which checkpoints
 * through a connection of its own in PASSIVE mode: it copies what the
 * writer has committed and never makes the writer wait. What a checkpoint
 * copies and when it syncs are SQLite's, unchanged, so what survives a
 * crash or a power cut is what it was.
 *
 * A WAL restarts from its start only when a writer begins with every frame
 * copied back, and a thread that checkpoints beside a busy writer seldom
 * finishes between two of its commits. So a WAL that reaches
 * PP_CHECKPOINT_INLINE_PAGES is checkpointed inside the commit, as SQLite
 * would (unless the thread's checkpoint is running: the commit's would be
 * refused), and that one catches up, so the next write restarts the WAL.
 * The same happens from PP_CHECKPOINT_PAGES on when the thread cannot run
 * (it could not be started, or its connection not opened). */
#include "store/sqlite_checkpoint.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

/* How long the thread's first read waits on a lock (a recovery, a
 * journal-mode switch by another process) before the thread gives up and
 * leaves the checkpoints to the commit; its checkpoints, PASSIVE, never
 * wait. */
#define CHECKPOINTER_OPEN_WAIT_MS 10000

struct pp_sqlite_checkpointer {
	sqlite3 *db;	  /* the writer's connection, whose hook this is */
	const char *path; /* db's file (sqlite3_db_filename), db's own */
	char *vfs;	  /* NULL: SQLite's default */
	/* The hook's own, read and written only on the writer's thread: the
	 * WAL's length at the last commit (a shorter one has restarted), and
	 * the length at which the thread is next asked. */
	int last_frames, next_ask;
	pthread_mutex_t mu;
	pthread_cond_t wake; /* to the thread: due or stop */
	pthread_cond_t idle; /* from the thread: nothing due, nothing running */
	pthread_t thread;
	/* Under mu. */
	bool started, unusable, due, running, stop;
	int failure; /* a background checkpoint's SQLite code, not yet logged */
	struct pp_store_checkpoints stats;
};

static void *checkpoint_thread(void *arg)
{
	struct pp_sqlite_checkpointer *c = arg;
	sqlite3 *own = NULL;
	int rc =
		sqlite3_open_v2(c->path, &own, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, c->vfs);
	/* A connection learns that the database is in WAL mode, and opens
	 * its WAL, from its first read; before it, a checkpoint through it
	 * does nothing. */
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(own, CHECKPOINTER_OPEN_WAIT_MS);
		rc = sqlite3_exec(own, "SELECT 1 FROM sqlite_schema LIMIT 1", NULL, NULL, NULL);
	}
	pthread_mutex_lock(&c->mu);
	if (rc != SQLITE_OK) {
		c->unusable = true;
		c->failure = rc;
		c->due = false;
		pthread_cond_broadcast(&c->idle);
	}
	while (!c->unusable) {
		while (!c->due && !c->stop)
			pthread_cond_wait(&c->wake, &c->mu);
		if (c->stop)
			break;
		c->due = false;
		c->running = true;
		pthread_mutex_unlock(&c->mu);
		rc = sqlite3_wal_checkpoint_v2(own, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&c->mu);
		c->running = false;
		if (rc == SQLITE_OK) {
			c->stats.background++;
		} else if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) {
			/* BUSY: another connection was checkpointing. */
			c->stats.failed++;
			c->failure = rc;
		}
		if (!c->due)
			pthread_cond_broadcast(&c->idle);
	}
	pthread_mutex_unlock(&c->mu);
	sqlite3_close(own);
	return NULL;
}

/* Asks the thread for a checkpoint, starting it the first time; false
 * when it cannot run. *failure: a failure of the thread's not yet logged. */
static bool ask_thread(struct pp_sqlite_checkpointer *c, int *failure)
{
	pthread_mutex_lock(&c->mu);
	if (!c->started && !c->unusable) {
		c->started = pthread_create(&c->thread, NULL, checkpoint_thread, c) == 0;
		c->unusable = !c->started;
	}
	bool asked = !c->unusable;
	if (asked) {
		c->due = true;
		pthread_cond_signal(&c->wake);
	}
	*failure = c->failure;
	c->failure = 0;
	pthread_mutex_unlock(&c->mu);
	return asked;
}

/* Under mu: a checkpoint of the thread's is asked for or running. */
static bool pending(const struct pp_sqlite_checkpointer *c)
{
	return c->started && !c->unusable && (c->due || c->running);
}

/* A checkpoint of the thread's is asked for or running: it holds, or is
 * about to take, SQLite's checkpoint lock. */
static bool thread_checkpointing(struct pp_sqlite_checkpointer *c)
{
	pthread_mutex_lock(&c->mu);
	bool busy = pending(c);
	pthread_mutex_unlock(&c->mu);
	return busy;
}

static int on_commit(void *arg, sqlite3 *db, const char *schema, int frames)
{
	struct pp_sqlite_checkpointer *c = arg;
	if (frames < c->last_frames)
		c->next_ask = PP_CHECKPOINT_PAGES;
	c->last_frames = frames;
	if (frames < c->next_ask)
		return SQLITE_OK;
	int failure = 0;
	if (frames < PP_CHECKPOINT_INLINE_PAGES && ask_thread(c, &failure)) {
		c->next_ask = frames + PP_CHECKPOINT_PAGES;
	} else if (!thread_checkpointing(c) &&
		   sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL) ==
			   SQLITE_OK) {
		/* While the thread's checkpoint runs, this one would only be
		 * refused (BUSY) after locking calls of its own: the next
		 * commit tries again. */
		pthread_mutex_lock(&c->mu);
		c->stats.in_commit++;
		pthread_mutex_unlock(&c->mu);
	}
	/* Logged here, on the writer's thread: the log is that thread's. */
	if (failure)
		pp_log(PP_LOG_WARN,
		       "store %s: a background checkpoint failed (%s); the WAL is checkpointed "
		       "in a commit once it is %d frames long",
		       c->path, sqlite3_errstr(failure), PP_CHECKPOINT_INLINE_PAGES);
	return SQLITE_OK;
}

struct pp_sqlite_checkpointer *pp_sqlite_checkpointer_attach(sqlite3 *db, const char *vfs)
{
	const char *path = sqlite3_db_filename(db, "main");
	if (!path || !*path)
		return NULL; /* a database in memory has no WAL */
	struct pp_sqlite_checkpointer *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->db = db;
	c->path = path;
	c->next_ask = PP_CHECKPOINT_PAGES;
	c->vfs = vfs ? strdup(vfs) : NULL;
	if (vfs && !c->vfs) {
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->wake, NULL);
	pthread_cond_init(&c->idle, NULL);
	sqlite3_wal_hook(db, on_commit, c);
	return c;
}

void pp_sqlite_checkpointer_settle(struct pp_sqlite_checkpointer *c)
{
	pthread_mutex_lock(&c->mu);
	while (pending(c))
		pthread_cond_wait(&c->idle, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

void pp_sqlite_checkpointer_stats(struct pp_sqlite_checkpointer *c,
				  struct pp_store_checkpoints *out)
{
	pthread_mutex_lock(&c->mu);
	*out = c->stats;
	pthread_mutex_unlock(&c->mu);
}

void pp_sqlite_checkpointer_free(struct pp_sqlite_checkpointer *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_signal(&c->wake);
	bool started = c->started;
	pthread_mutex_unlock(&c->mu);
	if (started)
		pthread_join(c->thread, NULL);
	sqlite3_wal_autocheckpoint(c->db, PP_CHECKPOINT_PAGES);
	pthread_cond_destroy(&c->idle);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->mu);
	free(c->vfs);
	free(c);
}
