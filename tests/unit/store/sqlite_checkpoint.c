/* The SQLite store's checkpointer (store/sqlite_checkpoint.c): the pages a
 * checkpoint writes back into the database file are written by its thread,
 * never by the thread that commits; when the thread cannot run, the commit
 * checkpoints as SQLite would; freeing it mid-checkpoint loses nothing.
 * Which thread writes a page is seen through SQLite's replaceable system
 * calls (xSetSystemCall), below every VFS: with the store's VFS a commit
 * writes whole WAL frames, so a write of one page alone is a checkpoint's,
 * into the database file. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <unistd.h>

#include "store/sqlite_checkpoint.h"
#include "store/sqlite_vfs.h"
#include "tests/unit/store/sqlite_files.h"

#define PAGE 4096
/* Rows of about a page each, so that a commit of COMMIT_ROWS appends about
 * as many frames. */
#define ROW_BYTES   3500
#define COMMIT_ROWS 100

static pthread_t committer;
/* Pages written into the database file, by the committing thread and by
 * any other. Counted from both threads. */
static _Atomic int pages_by_committer, pages_by_others;

static ssize_t counting_pwrite(int fd, const void *p, size_t n, off_t off)
{
	if (n == PAGE) {
		if (pthread_equal(pthread_self(), committer))
			pages_by_committer++;
		else
			pages_by_others++;
	}
	return real_pwrite(fd, p, n, off);
}

static int setup(void **state)
{
	(void)state;
	files_setup("/tmp/pp-ckpt-XXXXXX");
	committer = pthread_self();
	pages_by_committer = pages_by_others = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	files_teardown();
	return 0;
}

/* The store's settings: WAL, synchronous=NORMAL, its VFS. Page writes are
 * counted from here on. */
static sqlite3 *open_store_like(void)
{
	sqlite3 *db = NULL;
	assert_int_equal(
		sqlite3_open_v2(path, &db,
				SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				pp_sqlite_vfs()),
		SQLITE_OK);
	exec_ok(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
		    "CREATE TABLE t (k INTEGER PRIMARY KEY, b BLOB)");
	sqlite3_vfs *platform = sqlite3_vfs_find(NULL);
	assert_int_equal(platform->xSetSystemCall(platform, pwrite_name,
						  (sqlite3_syscall_ptr)counting_pwrite),
			 SQLITE_OK);
	return db;
}

/* COMMITS transactions of COMMIT_ROWS rows each. */
static void commit_rows(sqlite3 *db, int commits)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(
		sqlite3_prepare_v2(db, "INSERT INTO t (b) VALUES (zeroblob(?))", -1, &st, NULL),
		SQLITE_OK);
	for (int c = 0; c < commits; c++) {
		exec_ok(db, "BEGIN IMMEDIATE");
		for (int r = 0; r < COMMIT_ROWS; r++) {
			sqlite3_bind_int(st, 1, ROW_BYTES);
			assert_int_equal(sqlite3_step(st), SQLITE_DONE);
			sqlite3_reset(st);
		}
		exec_ok(db, "COMMIT");
	}
	sqlite3_finalize(st);
}

/* Rows in the database, read by a connection of its own. */
static int rows_in(void)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* Frames enough for three checkpoints, well short of the length at which
 * a commit checkpoints itself. */
#define COMMITS (3 * PP_CHECKPOINT_PAGES / COMMIT_ROWS + 1)

static void test_checkpoints_are_written_by_the_thread(void **state)
{
	(void)state;
	sqlite3 *db = open_store_like();
	struct pp_sqlite_checkpointer *c = pp_sqlite_checkpointer_attach(db, pp_sqlite_vfs());
	assert_non_null(c);
	commit_rows(db, COMMITS);
	pp_sqlite_checkpointer_settle(c);
	struct pp_store_checkpoints st;
	pp_sqlite_checkpointer_stats(c, &st);
	assert_true(st.background >= 1);
	assert_int_equal(st.in_commit, 0);
	assert_int_equal(st.failed, 0);
	/* The checkpoints copied pages back, and none of them on the thread
	 * that committed. With SQLite's own checkpoint (no checkpointer
	 * attached) every one of them is the committer's. */
	assert_true(pages_by_others >= PP_CHECKPOINT_PAGES);
	assert_int_equal(pages_by_committer, 0);
	pp_sqlite_checkpointer_free(c);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	assert_int_equal(rows_in(), COMMITS * COMMIT_ROWS);
}

/* The control: without the checkpointer, SQLite checkpoints in the commit,
 * and the counting above sees it. */
static void test_without_it_the_committer_checkpoints(void **state)
{
	(void)state;
	sqlite3 *db = open_store_like();
	commit_rows(db, COMMITS);
	assert_true(pages_by_committer >= PP_CHECKPOINT_PAGES);
	assert_int_equal(pages_by_others, 0);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* A thread that cannot open its connection (here: a VFS that does not
 * exist) leaves the checkpoints to the commit, from the usual length on:
 * the WAL does not grow without bound. */
static void test_a_thread_that_cannot_run_leaves_them_to_the_commit(void **state)
{
	(void)state;
	sqlite3 *db = open_store_like();
	struct pp_sqlite_checkpointer *c = pp_sqlite_checkpointer_attach(db, "no-such-vfs");
	assert_non_null(c);
	commit_rows(db, COMMITS);
	pp_sqlite_checkpointer_settle(c);
	/* The commit that found it unusable checkpointed; so do the next. */
	commit_rows(db, COMMITS);
	struct pp_store_checkpoints st;
	pp_sqlite_checkpointer_stats(c, &st);
	assert_int_equal(st.background, 0);
	assert_true(st.in_commit >= 1);
	assert_true(pages_by_committer >= PP_CHECKPOINT_PAGES);
	pp_sqlite_checkpointer_free(c);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	assert_int_equal(rows_in(), 2 * COMMITS * COMMIT_ROWS);
}

/* Freed while a checkpoint is asked for or running: the thread finishes
 * it and stops, and every committed row is there. */
static void test_freed_mid_checkpoint_loses_nothing(void **state)
{
	(void)state;
	sqlite3 *db = open_store_like();
	for (int round = 0; round < 3; round++) {
		struct pp_sqlite_checkpointer *c =
			pp_sqlite_checkpointer_attach(db, pp_sqlite_vfs());
		assert_non_null(c);
		commit_rows(db, COMMITS);
		pp_sqlite_checkpointer_free(c);
	}
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	assert_int_equal(rows_in(), 3 * COMMITS * COMMIT_ROWS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_checkpoints_are_written_by_the_thread, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_without_it_the_committer_checkpoints, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_a_thread_that_cannot_run_leaves_them_to_the_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_freed_mid_checkpoint_loses_nothing, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
