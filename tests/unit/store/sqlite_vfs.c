/* The SQLite store's VFS (store/sqlite_vfs.c): the frames of a commit
 * reach the WAL file in one write (a transaction larger than the VFS's
 * batch in a few), what it writes reads back through SQLite's own VFS, a
 * write that fails fails its commit and leaves the database as it was,
 * and a commit is whole in the file when its writer dies right after it.
 * The writes are seen through SQLite's replaceable system calls
 * (xSetSystemCall), below every VFS. */
#include <errno.h>
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
#include <sys/wait.h>
#include <unistd.h>

#include "store/sqlite_vfs.h"
#include "tests/unit/store/sqlite_files.h"

#define PAGE	   4096
#define FRAME_HEAD 24
#define FRAME	   (FRAME_HEAD + PAGE)
#define ROWS	   200
#define ROW_BYTES  1000
/* store/sqlite_vfs.c's WAL_BATCH_MAX: no write of frames is larger. */
#define BATCH_MAX (120 * 1024)

/* Writes of a lone frame header, and writes of whole frames (one or
 * more): how many, the frames they carried, the largest. */
static int writes_of_header, writes_of_frames, frames_written;
static size_t largest_write;
static bool fail_frames;

static ssize_t counting_pwrite(int fd, const void *p, size_t n, off_t off)
{
	if (n == FRAME_HEAD)
		writes_of_header++;
	if (n >= FRAME && n % FRAME == 0) {
		writes_of_frames++;
		frames_written += (int)(n / FRAME);
		if (n > largest_write)
			largest_write = n;
		if (fail_frames) {
			errno = EIO;
			return -1;
		}
	}
	return real_pwrite(fd, p, n, off);
}

static int setup(void **state)
{
	files_setup("/tmp/pp-vfs-XXXXXX");
	return 0;
}

static int teardown(void **state)
{
	files_teardown();
	return 0;
}

/* A WAL database with no automatic checkpoint: every write of a commit
 * goes to the WAL file. */
static sqlite3 *open_wal(const char *vfs)
{
	sqlite3 *db = NULL;
	assert_int_equal(
		sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
		SQLITE_OK);
	exec_ok(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
		    "PRAGMA wal_autocheckpoint=0; "
		    "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, b BLOB)");
	return db;
}

/* n rows of ROW_BYTES in one transaction: ROWS of them about 50 pages. */
static int insert_n(sqlite3 *db, int first, int n)
{
	char sql[160];
	snprintf(sql, sizeof(sql),
		 "BEGIN; WITH RECURSIVE n(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM n "
		 "WHERE i < %d) INSERT INTO t SELECT i, zeroblob(%d) FROM n; COMMIT",
		 first, first + n - 1, ROW_BYTES);
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static int insert_rows(sqlite3 *db, int first)
{
	return insert_n(db, first, ROWS);
}

static void count_writes(bool on)
{
	sqlite3_vfs *platform = sqlite3_vfs_find(NULL);
	if (on) {
		writes_of_header = writes_of_frames = frames_written = 0;
		largest_write = 0;
	}
	assert_int_equal(platform->xSetSystemCall(platform, pwrite_name,
						  on ? (sqlite3_syscall_ptr)counting_pwrite : NULL),
			 SQLITE_OK);
}

/* Rows and integrity, read by a connection on SQLite's default VFS. */
static void expect_rows(int rows)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT count(*), coalesce(sum(length(b)), 0), "
					    "(SELECT integrity_check FROM pragma_integrity_check) "
					    "FROM t",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), rows);
	assert_int_equal(sqlite3_column_int64(st, 1), (sqlite3_int64)rows * ROW_BYTES);
	assert_string_equal((const char *)sqlite3_column_text(st, 2), "ok");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Whole frames a write of the VFS carries at most. */
#define FRAMES_A_WRITE (BATCH_MAX / FRAME)
/* Rows of a commit the size of a loop turn's: about 20 pages. */
#define TURN_ROWS 80

static void test_commit_is_one_write(void **state)
{
	const char *vfs = pp_sqlite_vfs();
	assert_non_null(vfs);

	/* SQLite's own VFS: a header write for each page written. */
	sqlite3 *db = open_wal(NULL);
	count_writes(true);
	assert_int_equal(insert_n(db, 1, TURN_ROWS), SQLITE_OK);
	count_writes(false);
	int plain_headers = writes_of_header;
	sqlite3_close(db);
	assert_true(plain_headers >= 15);

	/* This VFS: the same commit's frames in one write, and not one header
	 * written alone. */
	db = open_wal(vfs);
	count_writes(true);
	assert_int_equal(insert_n(db, 1 + TURN_ROWS, TURN_ROWS), SQLITE_OK);
	count_writes(false);
	assert_int_equal(writes_of_header, 0);
	assert_int_equal(writes_of_frames, 1);
	assert_true(frames_written >= 15 && frames_written <= FRAMES_A_WRITE);
	/* Read while the writer is open, from its WAL alone (no checkpoint). */
	expect_rows(2 * TURN_ROWS);
	sqlite3_close(db);
	expect_rows(2 * TURN_ROWS);
}

static void test_failed_frame_fails_its_commit(void **state)
{
	const char *vfs = pp_sqlite_vfs();
	sqlite3 *db = open_wal(vfs);
	assert_int_equal(insert_rows(db, 1), SQLITE_OK);
	count_writes(true);
	fail_frames = true;
	int rc = insert_rows(db, 1 + ROWS);
	fail_frames = false;
	count_writes(false);
	assert_int_equal(rc & 0xff, SQLITE_IOERR);
	assert_true(writes_of_frames >= 1);
	expect_rows(ROWS);
	/* The connection goes on: the next commit lands whole. */
	assert_int_equal(insert_rows(db, 1 + 2 * ROWS), SQLITE_OK);
	sqlite3_close(db);
	expect_rows(2 * ROWS);
}

/* A transaction larger than the batch: its frames go out in writes of at
 * most the batch, as many as its size needs, and read back whole. */
static void test_large_commit_in_batches(void **state)
{
	const char *vfs = pp_sqlite_vfs();
	sqlite3 *db = open_wal(vfs);
	count_writes(true);
	assert_int_equal(insert_n(db, 1, 10 * ROWS), SQLITE_OK);
	count_writes(false);
	assert_int_equal(writes_of_header, 0);
	assert_true(frames_written >= 400);
	assert_true(largest_write <= BATCH_MAX);
	/* Each write as full as whole frames allow, the last with the rest. */
	assert_int_equal(writes_of_frames, (frames_written + FRAMES_A_WRITE - 1) / FRAMES_A_WRITE);
	expect_rows(10 * ROWS);
	sqlite3_close(db);
	expect_rows(10 * ROWS);
}

/* A transaction larger than its page cache spills pages to the WAL before
 * it commits (frames the VFS gathers) and reads them back before it
 * writes anything else: the reads must see them. */
static void test_transaction_reads_what_it_spilled(void **state)
{
	const char *vfs = pp_sqlite_vfs();
	sqlite3 *db = open_wal(vfs);
	exec_ok(db, "PRAGMA cache_size = 2; BEGIN");
	count_writes(true);
	assert_int_equal(sqlite3_exec(db,
				      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
				      "FROM n WHERE i < 40) INSERT INTO t SELECT i, zeroblob(1000) "
				      "FROM n",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	count_writes(false);
	/* Spilled, and still gathered: nothing written yet. */
	assert_int_equal(writes_of_frames, 0);
	sqlite3_stmt *st = NULL;
	assert_int_equal(
		sqlite3_prepare_v2(db, "SELECT count(*), sum(length(b)) FROM t", -1, &st, NULL),
		SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 40);
	assert_int_equal(sqlite3_column_int64(st, 1), 40 * ROW_BYTES);
	sqlite3_finalize(st);
	exec_ok(db, "COMMIT");
	expect_rows(40);
	sqlite3_close(db);
	expect_rows(40);
}

/* A commit whose transaction wrote a page twice (a cache too small for
 * it spills pages, then dirties them again) ends with SQLite rewriting the
 * checksums of frames it already wrote: header writes that no page write
 * follows. The writer dies right after its commit, making no further
 * call: the commit must be whole in the file for the next opener's
 * recovery, which drops frames whose checksums do not chain. */
static void test_commit_survives_a_crash_after_it(void **state)
{
	const char *vfs = pp_sqlite_vfs();
	sqlite3 *db = open_wal(vfs);
	assert_int_equal(insert_rows(db, 1), SQLITE_OK);
	sqlite3_close(db);
	/* The verdict by a pipe: valgrind makes the exit status its own, and
	 * the writer, dying without a close, leaks its connection. */
	int verdict[2];
	assert_int_equal(pipe(verdict), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		sqlite3 *c = NULL;
		char ok = sqlite3_open_v2(path, &c, SQLITE_OPEN_READWRITE, vfs) == SQLITE_OK &&
			  sqlite3_exec(c,
				       "PRAGMA synchronous = NORMAL; PRAGMA cache_size = 4; "
				       "PRAGMA wal_autocheckpoint = 0; "
				       "BEGIN; UPDATE t SET b = zeroblob(900); "
				       "UPDATE t SET b = zeroblob(1000); "
				       "INSERT INTO t VALUES (100000, zeroblob(1000)); COMMIT",
				       NULL, NULL, NULL) == SQLITE_OK;
		(void)!write(verdict[1], &ok, 1);
		_exit(0); /* no close: nothing after the commit */
	}
	close(verdict[1]);
	char ok = 0;
	assert_int_equal(read(verdict[0], &ok, 1), 1);
	close(verdict[0]);
	assert_true(ok);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	expect_rows(ROWS + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit_is_one_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_commit_in_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transaction_reads_what_it_spilled, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_failed_frame_fails_its_commit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_commit_survives_a_crash_after_it, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
