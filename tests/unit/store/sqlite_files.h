/* What the tests of the SQLite store's files share (sqlite_vfs.c,
 * sqlite_checkpoint.c): a database in a directory of its own, SQLite's
 * positioned write found among its replaceable system calls (the tests
 * count writes below every VFS by replacing it), and statements that must
 * succeed. One test program includes it. */
#ifndef PP_TEST_STORE_SQLITE_FILES_H
#define PP_TEST_STORE_SQLITE_FILES_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

typedef ssize_t pwrite_fn(int, const void *, size_t, off_t);

static pwrite_fn *real_pwrite;
static const char *pwrite_name;
static char dir[32];
static char path[64];

/* A new directory from TEMPLATE (mkdtemp's, under 32 bytes), the
 * database's path in it, and SQLite's positioned write. */
static inline void files_setup(const char *template)
{
	snprintf(dir, sizeof(dir), "%s", template);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/t.db", dir);
	sqlite3_vfs *platform = sqlite3_vfs_find(NULL);
	/* SQLite names its positioned write after the call it was built with. */
	static const char *const names[] = {"pwrite64", "pwrite"};
	for (size_t i = 0; i < 2 && !real_pwrite; i++) {
		real_pwrite = (pwrite_fn *)platform->xGetSystemCall(platform, names[i]);
		pwrite_name = names[i];
	}
	assert_non_null(real_pwrite);
}

/* SQLite's own positioned write back, and the directory gone. */
static inline void files_teardown(void)
{
	sqlite3_vfs *platform = sqlite3_vfs_find(NULL);
	platform->xSetSystemCall(platform, pwrite_name, NULL);
	char wal[80], shm[80];
	snprintf(wal, sizeof(wal), "%s-wal", path);
	snprintf(shm, sizeof(shm), "%s-shm", path);
	unlink(path);
	unlink(wal);
	unlink(shm);
	rmdir(dir);
}

static inline void exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
}

#endif
