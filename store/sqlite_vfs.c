/* The SQLite store's VFS: the platform's own VFS, except that a WAL frame
 * goes to the file in one write.
 *
 * SQLite writes each WAL frame as two writes: its 24-byte header, then its
 * page at the offset where the header ends. A loop turn's commit writes
 * about 26 frames (1.55 a run, docs/performance.md step 38), so half of
 * the store's system calls carry 24 bytes each, and a system call costs
 * 3-4 us on the virtual machines this runs on. Here a frame header
 * appended to a WAL file (24 bytes written where this connection's writes
 * end) is held back, and the write that follows it goes out with it as
 * one write when it starts where the header ends: a new frame's page,
 * always (SQLite's walWriteOneFrame writes nothing between the two).
 * Only appended headers: when a commit ends by rewriting the checksums of
 * frames it wrote before (a transaction that wrote a page twice), the
 * headers it writes over have no page write after them, and the last
 * would stay held past the commit, to be lost with the process.
 * Every other call on the file (a read, a sync, a truncation, a size, a
 * lock, a close) writes a held header first, so what reaches the file,
 * and its order against every sync and read, is what SQLite asked for;
 * SQLite publishes a frame in its shared index only after both writes
 * returned. The only change a caller can see is when a header's own write
 * error is reported: on the call after it. Files other than WAL files are
 * the platform VFS's files, untouched. */
#include "store/sqlite_vfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define VFS_NAME "pushpool"
/* SQLite's WAL_FRAME_HDRSIZE: a frame's header, written before its page. */
#define WAL_FRAME_HEADER 24
#define ALIGN8(n)	 (((n) + 7) & ~(size_t)7)

struct wal_file {
	sqlite3_file base;
	sqlite3_file *real; /* the platform VFS's file, in the same allocation */
	unsigned char header[WAL_FRAME_HEADER];
	sqlite3_int64 header_at; /* where the held header goes; -1: none held */
	/* Where this connection's writes end: a write at offset 0 (the WAL's
	 * header, a new cycle) starts it again. */
	sqlite3_int64 end;
	unsigned char *frame; /* header and page together, for one write */
	size_t frame_room;
};

static sqlite3_vfs *platform;
static sqlite3_vfs vfs;
static const char *vfs_name;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void wrote(struct wal_file *f, sqlite3_int64 off, int amt)
{
	if (off == 0 || off + amt > f->end)
		f->end = off + amt;
}

static int put_held(struct wal_file *f)
{
	if (f->header_at < 0)
		return SQLITE_OK;
	sqlite3_int64 at = f->header_at;
	f->header_at = -1;
	wrote(f, at, WAL_FRAME_HEADER);
	return f->real->pMethods->xWrite(f->real, f->header, WAL_FRAME_HEADER, at);
}

static int wal_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off)
{
	struct wal_file *f = (struct wal_file *)file;
	if (f->header_at >= 0 && amt > 0 && off == f->header_at + WAL_FRAME_HEADER) {
		size_t need = WAL_FRAME_HEADER + (size_t)amt;
		if (need > f->frame_room) {
			unsigned char *grown = realloc(f->frame, need);
			if (grown) {
				f->frame = grown;
				f->frame_room = need;
			}
		}
		if (need <= f->frame_room) {
			memcpy(f->frame, f->header, WAL_FRAME_HEADER);
			memcpy(f->frame + WAL_FRAME_HEADER, data, (size_t)amt);
			sqlite3_int64 at = f->header_at;
			f->header_at = -1;
			wrote(f, at, (int)need);
			return f->real->pMethods->xWrite(f->real, f->frame, (int)need, at);
		}
		/* No room for the joined frame: the two writes SQLite asked for. */
	}
	int rc = put_held(f);
	if (rc != SQLITE_OK)
		return rc;
	if (amt == WAL_FRAME_HEADER && off == f->end && off > 0) {
		memcpy(f->header, data, WAL_FRAME_HEADER);
		f->header_at = off;
		return SQLITE_OK;
	}
	wrote(f, off, amt);
	return f->real->pMethods->xWrite(f->real, data, amt, off);
}

static int wal_close(sqlite3_file *file)
{
	struct wal_file *f = (struct wal_file *)file;
	int rc = put_held(f);
	int crc = f->real->pMethods->xClose(f->real);
	free(f->frame);
	f->frame = NULL;
	return rc != SQLITE_OK ? rc : crc;
}

/* Each of these writes the held header first, then is the platform's. */
#define HELD_FIRST(f, call)                                                                        \
	do {                                                                                       \
		int held_rc_ = put_held(f);                                                        \
		if (held_rc_ != SQLITE_OK)                                                         \
			return held_rc_;                                                           \
		return f->real->pMethods->call;                                                    \
	} while (0)

static int wal_read(sqlite3_file *file, void *data, int amt, sqlite3_int64 off)
{
	struct wal_file *f = (struct wal_file *)file;
	HELD_FIRST(f, xRead(f->real, data, amt, off));
}

static int wal_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct wal_file *f = (struct wal_file *)file;
	int rc = put_held(f);
	if (rc != SQLITE_OK)
		return rc;
	if (f->end > size)
		f->end = size;
	return f->real->pMethods->xTruncate(f->real, size);
}

static int wal_sync(sqlite3_file *file, int flags)
{
	struct wal_file *f = (struct wal_file *)file;
	HELD_FIRST(f, xSync(f->real, flags));
}

static int wal_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct wal_file *f = (struct wal_file *)file;
	HELD_FIRST(f, xFileSize(f->real, size));
}

static int wal_lock(sqlite3_file *file, int level)
{
	struct wal_file *f = (struct wal_file *)file;
	HELD_FIRST(f, xLock(f->real, level));
}

static int wal_unlock(sqlite3_file *file, int level)
{
	struct wal_file *f = (struct wal_file *)file;
	HELD_FIRST(f, xUnlock(f->real, level));
}

static int wal_check_reserved(sqlite3_file *file, int *out)
{
	struct wal_file *f = (struct wal_file *)file;
	HELD_FIRST(f, xCheckReservedLock(f->real, out));
}

static int wal_file_control(sqlite3_file *file, int op, void *arg)
{
	struct wal_file *f = (struct wal_file *)file;
	HELD_FIRST(f, xFileControl(f->real, op, arg));
}

static int wal_sector_size(sqlite3_file *file)
{
	struct wal_file *f = (struct wal_file *)file;
	return f->real->pMethods->xSectorSize(f->real);
}

static int wal_device_characteristics(sqlite3_file *file)
{
	struct wal_file *f = (struct wal_file *)file;
	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int wal_shm_map(sqlite3_file *file, int page, int size, int extend, void volatile **out)
{
	struct wal_file *f = (struct wal_file *)file;
	HELD_FIRST(f, xShmMap(f->real, page, size, extend, out));
}

static int wal_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
	struct wal_file *f = (struct wal_file *)file;
	HELD_FIRST(f, xShmLock(f->real, offset, n, flags));
}

static void wal_shm_barrier(sqlite3_file *file)
{
	struct wal_file *f = (struct wal_file *)file;
	put_held(f); /* a barrier reports nothing; a failed write shows on the next call */
	f->real->pMethods->xShmBarrier(f->real);
}

static int wal_shm_unmap(sqlite3_file *file, int delete_flag)
{
	struct wal_file *f = (struct wal_file *)file;
	HELD_FIRST(f, xShmUnmap(f->real, delete_flag));
}

static int wal_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **out)
{
	struct wal_file *f = (struct wal_file *)file;
	HELD_FIRST(f, xFetch(f->real, off, amt, out));
}

static int wal_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
	struct wal_file *f = (struct wal_file *)file;
	HELD_FIRST(f, xUnfetch(f->real, off, p));
}

/* One table per version: a WAL file presents the platform file's version
 * (at most 3), so SQLite calls only the methods the platform has. */
#define WAL_METHODS(version)                                                                       \
	{                                                                                          \
		.iVersion = (version), .xClose = wal_close, .xRead = wal_read,                     \
		.xWrite = wal_write, .xTruncate = wal_truncate, .xSync = wal_sync,                 \
		.xFileSize = wal_file_size, .xLock = wal_lock, .xUnlock = wal_unlock,              \
		.xCheckReservedLock = wal_check_reserved, .xFileControl = wal_file_control,        \
		.xSectorSize = wal_sector_size,                                                    \
		.xDeviceCharacteristics = wal_device_characteristics, .xShmMap = wal_shm_map,      \
		.xShmLock = wal_shm_lock, .xShmBarrier = wal_shm_barrier,                          \
		.xShmUnmap = wal_shm_unmap, .xFetch = wal_fetch, .xUnfetch = wal_unfetch,          \
	}
static const sqlite3_io_methods wal_methods[] = {WAL_METHODS(1), WAL_METHODS(2), WAL_METHODS(3)};

static int vfs_open(sqlite3_vfs *self, const char *name, sqlite3_file *file, int flags,
		    int *out_flags)
{
	if (!(flags & SQLITE_OPEN_WAL))
		return platform->xOpen(platform, name, file, flags, out_flags);
	struct wal_file *f = (struct wal_file *)file;
	memset(f, 0, sizeof(*f));
	f->header_at = -1;
	f->real = (sqlite3_file *)((char *)file + ALIGN8(sizeof(*f)));
	int rc = platform->xOpen(platform, name, f->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		if (f->real->pMethods)
			f->real->pMethods->xClose(f->real);
		f->base.pMethods = NULL;
		return rc;
	}
	int v = f->real->pMethods->iVersion;
	f->base.pMethods = &wal_methods[v < 1 ? 0 : v > 3 ? 2 : v - 1];
	return SQLITE_OK;
}

static void register_vfs(void)
{
	platform = sqlite3_vfs_find(NULL);
	if (!platform)
		return;
	/* The platform's methods for everything but opening a file, with its
	 * own pAppData (which they may read). */
	vfs = *platform;
	vfs.pNext = NULL;
	vfs.zName = VFS_NAME;
	vfs.szOsFile = (int)(ALIGN8(sizeof(struct wal_file)) + (size_t)platform->szOsFile);
	vfs.xOpen = vfs_open;
	if (sqlite3_vfs_register(&vfs, 0) == SQLITE_OK)
		vfs_name = VFS_NAME;
}

const char *pp_sqlite_vfs(void)
{
	pthread_once(&once, register_vfs);
	return vfs_name;
}
