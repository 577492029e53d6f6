/* The SQLite store's VFS: the platform's own, with the WAL frames of a
 * commit written in one system call (sqlite_vfs.c says why and how). */
#ifndef PP_STORE_SQLITE_VFS_H
#define PP_STORE_SQLITE_VFS_H

/* Registers the VFS on first call (not as the default); its name for
 * sqlite3_open_v2, or NULL when it could not be registered, in which case
 * the caller opens with SQLite's default VFS. Thread-safe. */
const char *pp_sqlite_vfs(void);

#endif
