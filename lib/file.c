/* Guarded reads of small files; see file.h for the rules. */
#include "lib/file.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"

static const char *kind_of(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "not a file";
}

int pp_file_open(const char *path, struct pp_error *err)
{
	/* O_NONBLOCK: opening a FIFO would otherwise wait for a writer
	 * before we could look at what it is. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		int rc = pp_fail(err, e == ENOENT ? PP_ENOTFOUND : PP_EIO, "%s: %s", path,
				 strerror(e));
		errno = e;
		return rc;
	}
	struct stat sb;
	if (fstat(fd, &sb)) {
		int e = errno;
		close(fd);
		pp_fail(err, PP_EIO, "%s: %s", path, strerror(e));
		errno = e;
		return PP_EIO;
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		return pp_fail(err, PP_EINVALID, "%s: is %s, not a regular file", path,
			       kind_of(sb.st_mode));
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		int e = errno;
		close(fd);
		return pp_fail(err, PP_EIO, "%s: %s", path, strerror(e));
	}
	return fd;
}

int pp_file_read(const char *path, size_t max, struct pp_buf *out, struct pp_error *err)
{
	int fd = pp_file_open(path, err);
	if (fd < 0)
		return fd;
	pp_buf_reset(out);
	char chunk[8192];
	int rc = 0;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = pp_fail(err, PP_EIO, "%s: read error: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if ((size_t)n > max - out->len) {
			rc = pp_fail(err, PP_EINVALID, "%s: larger than %zu bytes", path, max);
			break;
		}
		if (pp_buf_append(out, chunk, (size_t)n)) {
			rc = pp_fail(err, PP_ENOMEM, "%s: out of memory", path);
			break;
		}
	}
	close(fd);
	return rc;
}

int pp_file_read_secret(const char *path, const char *what, int empty_code, char **out,
			struct pp_error *err)
{
	struct pp_buf b;
	pp_buf_init(&b, PP_SECRET_FILE_MAX);
	int rc = pp_file_read(path, PP_SECRET_FILE_MAX, &b, err);
	if (!rc && b.len && memchr(b.data, '\0', b.len))
		rc = pp_fail(err, PP_EINVALID, "%s: %s file holds a NUL byte", path, what);
	if (!rc) {
		size_t start = 0, end = b.len;
		while (end && isspace((unsigned char)b.data[end - 1]))
			end--;
		while (start < end && isspace((unsigned char)b.data[start]))
			start++;
		if (end > start) {
			memmove(b.data, b.data + start, end - start);
			b.len = end - start;
			b.data[b.len] = '\0';
		} else {
			b.len = 0;
		}
		if (!b.len)
			rc = pp_fail(err, empty_code, "%s: %s file is empty", path, what);
	}
	if (!rc) {
		pp_secret_register(b.data);
		*out = pp_buf_steal(&b);
	}
	pp_buf_free(&b);
	return rc;
}
