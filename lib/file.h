/* Reading small files we are pointed at (configuration, key and secret
 * files), guarded against paths that are not files: a directory, a FIFO (a
 * read would wait for a writer) or a device such as /dev/zero (a read
 * would never end) is refused at once with a message that says so. */
#ifndef PP_FILE_H
#define PP_FILE_H

#include <stddef.h>

#include "lib/buf.h"
#include "lib/err.h"

/* A secret file holds one value of at most this many bytes. */
#define PP_SECRET_FILE_MAX ((size_t)64 << 10)

/* Open path read-only (close-on-exec) if it is a regular file; returns the
 * descriptor, or a negative code with err filled: "PATH: strerror" when
 * open(2) failed (PP_ENOTFOUND for a missing file, PP_EIO otherwise; errno
 * is left as open(2) set it), "PATH: is a directory, not a regular file"
 * and the like (PP_EINVALID). Never blocks, not even on a FIFO. */
int pp_file_open(const char *path, struct pp_error *err);

/* The whole regular file, at most max bytes, into out (reset first);
 * errors name the path ("PATH: larger than MAX bytes"). */
int pp_file_read(const char *path, size_t max, struct pp_buf *out, struct pp_error *err);

/* One secret value (an API key, a client secret, a token file). The rule
 * for every such file: the value is the file's text less leading and
 * trailing white space, so the newline (or CRLF) an editor adds is not
 * part of it, while white space inside is kept; an empty value fails with
 * empty_code ("PATH: WHAT file is empty"), a NUL byte with PP_EINVALID;
 * at most PP_SECRET_FILE_MAX bytes. The value is registered as a secret
 * (lib/log.h) before it is returned; *out is the caller's to free. */
int pp_file_read_secret(const char *path, const char *what, int empty_code, char **out,
			struct pp_error *err);

#endif
