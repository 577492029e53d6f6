/* Error codes and the error buffer every fallible function fills. */
#ifndef PP_ERR_H
#define PP_ERR_H

#include <stdbool.h>
#include <stddef.h>

/* Functions return 0 or one of these negative codes. */
enum pp_err {
	PP_OK = 0,
	PP_ENOTFOUND = -1,  /* the thing asked for does not exist */
	PP_ECONFLICT = -2,  /* already exists / idempotency clash */
	PP_ETHROTTLED = -3, /* rate limited: retry later, honour retry_after */
	PP_ETRANSIENT = -4, /* network, 5xx, timeout: retry with backoff */
	PP_EAUTH = -5,	    /* credentials missing, rejected or expired */
	PP_EINVALID = -6,   /* bad input: config, template, request, response */
	PP_EIO = -7,	    /* local file or system error */
	PP_ENOMEM = -8,	    /* allocation failed or a hard cap was hit */
};

#define PP_ERRMSG_MAX 1024

struct pp_error {
	int code;
	/* Milliseconds the peer asked us to wait (Retry-After), 0 if none. */
	long retry_after_ms;
	char msg[PP_ERRMSG_MAX];
};

/* Fill err (may be NULL) and return code, so callers write
 * `return pp_fail(err, PP_EINVALID, "%s:%d: ...", file, line);` */
int pp_fail(struct pp_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepend context ("sa.json: ") to an existing message; returns err->code. */
int pp_error_prefix(struct pp_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void pp_error_clear(struct pp_error *err);
const char *pp_strerror(int code);
bool pp_err_retryable(int code);

/* sysexits-style exit status for a code: 65 data, 66 no input, 69
 * unavailable, 75 temporary failure, 77 auth, 78 config, 70 software. */
int pp_exit_status(int code);

enum {
	PP_EXIT_OK = 0,
	PP_EXIT_FAILURE = 1, /* the job ran and failed (run --wait) */
	PP_EXIT_USAGE = 64,
	PP_EXIT_DATAERR = 65,
	PP_EXIT_NOINPUT = 66,
	PP_EXIT_UNAVAILABLE = 69,
	PP_EXIT_SOFTWARE = 70,
	PP_EXIT_IOERR = 74,
	PP_EXIT_TEMPFAIL = 75,
	PP_EXIT_NOPERM = 77,
	PP_EXIT_CONFIG = 78,
};

#endif
