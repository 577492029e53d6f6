/* The SQLite store's checkpoints, taken on a thread of their own rather
 * than inside the commit that crosses SQLite's threshold
 * (sqlite_checkpoint.c says why and how). */
#ifndef PP_STORE_SQLITE_CHECKPOINT_H
#define PP_STORE_SQLITE_CHECKPOINT_H

#include <sqlite3.h>
#include <stdint.h>

#include "store/store.h"

/* WAL frames appended between two checkpoints: SQLite's own
 * autocheckpoint threshold, kept. */
#define PP_CHECKPOINT_PAGES 1000
/* A WAL this many frames long is checkpointed inside the commit, as
 * SQLite would, whatever the thread has done: the bound on the WAL's
 * length when the thread cannot catch up with the writer. */
#define PP_CHECKPOINT_INLINE_PAGES (8 * PP_CHECKPOINT_PAGES)

struct pp_sqlite_checkpointer;

/* Takes over the checkpoints of db, the writing connection to a WAL
 * database file (its path is db's, sqlite3_db_filename), opened with vfs
 * (NULL for SQLite's default): replaces SQLite's autocheckpoint with a
 * commit hook that wakes a thread of its own, started on the first commit
 * that needs it, with its own connection. Returns NULL when out of memory
 * or when db has no file, in which case db keeps SQLite's autocheckpoint.
 * The checkpointer must be freed before db is closed. */
struct pp_sqlite_checkpointer *pp_sqlite_checkpointer_attach(sqlite3 *db, const char *vfs);

/* Waits until the thread has nothing left to do: no checkpoint asked for
 * and none running. Returns at once if it never started. */
void pp_sqlite_checkpointer_settle(struct pp_sqlite_checkpointer *c);

/* What it has done: the thread's checkpoints that completed and those
 * that failed (not BUSY), and those taken inside a commit. */
void pp_sqlite_checkpointer_stats(struct pp_sqlite_checkpointer *c,
				  struct pp_store_checkpoints *out);

/* Stops the thread (after the checkpoint it is running, if any), closes
 * its connection and gives db's hook back to SQLite's autocheckpoint.
 * NULL is a no-op. */
void pp_sqlite_checkpointer_free(struct pp_sqlite_checkpointer *c);

#endif
