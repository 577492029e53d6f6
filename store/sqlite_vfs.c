/* The SQLite store's VFS: the platform's own VFS, except that the WAL
 * frames a transaction appends go to the file together, in one write.
 *
 * SQLite writes each WAL frame as two writes, its 24-byte header and then
 * its page at the offset where the header ends, and a loop turn's commit
 * writes about 24 frames (docs/performance.md, steps 38, 39 and 42): on the
 * virtual machines this runs on a system call costs 3-4 us, and these were
 * the store's most frequent ones. Here the frames a connection appends to
 * its WAL file (a 24-byte header where its writes end, then the page that
 * SQLite's walWriteOneFrame always writes right after it) are gathered,
 * and written as one write when the page of a commit frame arrives (a
 * frame whose header holds the database's size after the commit: the
 * last frame of a transaction), or when WAL_BATCH_MAX bytes are gathered.
 * The write of a commit frame therefore returns only when the whole
 * transaction is in the file, and reports that write's error, which fails
 * the commit; SQLite publishes a transaction to other connections (its
 * shared index's header) only after that.
 *
 * Every other call on the file (a read, a write anywhere else, a sync, a
 * truncation, a size, a lock, a close) writes what is gathered first, so
 * what reaches the file, and its order against every sync, read and
 * overwrite, is what SQLite asked for. What a process killed in the middle
 * of a transaction leaves unwritten is frames of a transaction that never
 * committed, which recovery drops anyway. Frames SQLite rewrites in place
 * (a transaction that wrote a page twice: its pages, then the checksums of
 * its headers) are writes elsewhere than the end, written through. The
 * only change a caller can see is when a gathered frame's write error is
 * reported: on the call that wrote it out. Files other than WAL files are
 * the platform VFS's files, untouched. */
#include "store/sqlite_vfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define VFS_NAME "pushpool"
/* SQLite's WAL_FRAME_HDRSIZE: a frame's header, written before its page. */
#define WAL_FRAME_HEADER 24
/* Where a frame header holds the database's size in pages after the
 * commit: nonzero only in a transaction's last frame. */
#define WAL_FRAME_COMMIT_SIZE 4
/* At most this much gathered before it is written: SQLite's unix VFS
 * writes at most 128 KiB - 1 bytes in one call (seekAndWriteFd masks the
 * size to 17 bits), and a turn's commit is about 24 frames of 4 KiB. A
 * larger transaction (a `schedule` of thousands of runs) goes out in
 * writes of up to this size. */
#define WAL_BATCH_MAX (120 * 1024)
#define ALIGN8(n)     (((n) + 7) & ~(size_t)7)

struct wal_file {
	sqlite3_file base;
	sqlite3_file *real; /* the platform VFS's file, in the same allocation */
	/* Frames gathered: batch_len bytes that go at batch_at, always the
	 * tail of this connection's writes (batch_at + batch_len == end). */
	unsigned char *batch; /* WAL_BATCH_MAX bytes, from the first frame on */
	size_t batch_len;
	sqlite3_int64 batch_at;
	bool page_due; /* the last gathered write is a header: its page is next */
	/* Where this connection's writes end: a write at offset 0 (the WAL's
	 * header, a new cycle) starts it again. */
	sqlite3_int64 end;
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

/* Writes what is gathered. A header whose page has not come yet goes out
 * alone: the call that made this necessary is not that page. */
static int put_batch(struct wal_file *f)
{
	if (!f->batch_len)
		return SQLITE_OK;
	int n = (int)f->batch_len;
	f->batch_len = 0;
	f->page_due = false;
	return f->real->pMethods->xWrite(f->real, f->batch, n, f->batch_at);
}

/* Adds a write to the batch; false when there is no room for it (then the
 * caller writes it through). Pages of the buffer that no batch reached are
 * never touched, so never resident. */
static bool gather(struct wal_file *f, const void *data, int amt, sqlite3_int64 off)
{
	if (f->batch_len + (size_t)amt > WAL_BATCH_MAX)
		return false;
	if (!f->batch && !(f->batch = malloc(WAL_BATCH_MAX)))
		return false;
	if (!f->batch_len)
		f->batch_at = off;
	memcpy(f->batch + f->batch_len, data, (size_t)amt);
	f->batch_len += (size_t)amt;
	wrote(f, off, amt);
	return true;
}

static bool commit_header(const unsigned char *h)
{
	static const unsigned char zero[4];
	return memcmp(h + WAL_FRAME_COMMIT_SIZE, zero, sizeof(zero)) != 0;
}

static int wal_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off)
{
	struct wal_file *f = (struct wal_file *)file;
	if (f->page_due && amt > 0 && off == f->end) {
		/* The frame's header is the batch's last 24 bytes. */
		bool commit = commit_header(f->batch + f->batch_len - WAL_FRAME_HEADER);
		if (gather(f, data, amt, off)) {
			f->page_due = false;
			if (commit || f->batch_len + WAL_FRAME_HEADER + (size_t)amt > WAL_BATCH_MAX)
				return put_batch(f);
			return SQLITE_OK;
		}
	}
	if (amt == WAL_FRAME_HEADER && off == f->end && off > 0 && !f->page_due &&
	    gather(f, data, amt, off)) {
		f->page_due = true;
		return SQLITE_OK;
	}
	int rc = put_batch(f);
	if (rc != SQLITE_OK)
		return rc;
	wrote(f, off, amt);
	return f->real->pMethods->xWrite(f->real, data, amt, off);
}

static int wal_close(sqlite3_file *file)
{
	struct wal_file *f = (struct wal_file *)file;
	int rc = put_batch(f);
	int crc = f->real->pMethods->xClose(f->real);
	free(f->batch);
	f->batch = NULL;
	return rc != SQLITE_OK ? rc : crc;
}

/* Each of these writes what is gathered first, then is the platform's. */
#define BATCH_FIRST(f, call)                                                                       \
	do {                                                                                       \
		int batch_rc_ = put_batch(f);                                                      \
		if (batch_rc_ != SQLITE_OK)                                                        \
			return batch_rc_;                                                          \
		return f->real->pMethods->call;                                                    \
	} while (0)

static int wal_read(sqlite3_file *file, void *data, int amt, sqlite3_int64 off)
{
	struct wal_file *f = (struct wal_file *)file;
	BATCH_FIRST(f, xRead(f->real, data, amt, off));
}

static int wal_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct wal_file *f = (struct wal_file *)file;
	int rc = put_batch(f);
	if (rc != SQLITE_OK)
		return rc;
	if (f->end > size)
		f->end = size;
	return f->real->pMethods->xTruncate(f->real, size);
}

static int wal_sync(sqlite3_file *file, int flags)
{
	struct wal_file *f = (struct wal_file *)file;
	BATCH_FIRST(f, xSync(f->real, flags));
}

static int wal_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct wal_file *f = (struct wal_file *)file;
	BATCH_FIRST(f, xFileSize(f->real, size));
}

static int wal_lock(sqlite3_file *file, int level)
{
	struct wal_file *f = (struct wal_file *)file;
	BATCH_FIRST(f, xLock(f->real, level));
}

static int wal_unlock(sqlite3_file *file, int level)
{
	struct wal_file *f = (struct wal_file *)file;
	BATCH_FIRST(f, xUnlock(f->real, level));
}

static int wal_check_reserved(sqlite3_file *file, int *out)
{
	struct wal_file *f = (struct wal_file *)file;
	BATCH_FIRST(f, xCheckReservedLock(f->real, out));
}

static int wal_file_control(sqlite3_file *file, int op, void *arg)
{
	struct wal_file *f = (struct wal_file *)file;
	BATCH_FIRST(f, xFileControl(f->real, op, arg));
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
	BATCH_FIRST(f, xShmMap(f->real, page, size, extend, out));
}

static int wal_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
	struct wal_file *f = (struct wal_file *)file;
	BATCH_FIRST(f, xShmLock(f->real, offset, n, flags));
}

static void wal_shm_barrier(sqlite3_file *file)
{
	struct wal_file *f = (struct wal_file *)file;
	put_batch(f); /* a barrier reports nothing; a failed write shows on the next call */
	f->real->pMethods->xShmBarrier(f->real);
}

static int wal_shm_unmap(sqlite3_file *file, int delete_flag)
{
	struct wal_file *f = (struct wal_file *)file;
	BATCH_FIRST(f, xShmUnmap(f->real, delete_flag));
}

static int wal_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **out)
{
	struct wal_file *f = (struct wal_file *)file;
	BATCH_FIRST(f, xFetch(f->real, off, amt, out));
}

static int wal_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
	struct wal_file *f = (struct wal_file *)file;
	BATCH_FIRST(f, xUnfetch(f->real, off, p));
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
