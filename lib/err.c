#include "lib/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"

int pp_fail(struct pp_error *err, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	/* Messages quote what servers and files said, which can hold a
	 * registered secret: none may leave in an error. */
	pp_redact(err->msg);
	err->code = code;
	/* A new failure says for itself how long to wait: a reused error must
	 * not carry the last one's Retry-After (callers set it after). */
	err->retry_after_ms = 0;
	return code;
}

int pp_error_prefix(struct pp_error *err, const char *fmt, ...)
{
	if (!err)
		return PP_EINVALID;
	char prefix[PP_ERRMSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	char old[PP_ERRMSG_MAX];
	memcpy(old, err->msg, sizeof(old));
	size_t n = strlen(prefix);
	if (n >= sizeof(err->msg))
		n = sizeof(err->msg) - 1;
	memcpy(err->msg, prefix, n);
	size_t rest = strnlen(old, sizeof(old));
	if (rest > sizeof(err->msg) - 1 - n)
		rest = sizeof(err->msg) - 1 - n;
	memcpy(err->msg + n, old, rest);
	err->msg[n + rest] = '\0';
	pp_redact(err->msg);
	return err->code;
}

void pp_error_clear(struct pp_error *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}

const char *pp_strerror(int code)
{
	switch (code) {
	case PP_OK: return "ok";
	case PP_ENOTFOUND: return "not found";
	case PP_ECONFLICT: return "conflict";
	case PP_ETHROTTLED: return "throttled";
	case PP_ETRANSIENT: return "transient";
	case PP_EAUTH: return "auth";
	case PP_EINVALID: return "invalid";
	case PP_EIO: return "io";
	case PP_ENOMEM: return "out of memory";
	default: return "unknown";
	}
}

bool pp_err_retryable(int code)
{
	return code == PP_ETHROTTLED || code == PP_ETRANSIENT;
}

int pp_exit_status(int code)
{
	switch (code) {
	case PP_OK: return PP_EXIT_OK;
	case PP_ENOTFOUND: return PP_EXIT_NOINPUT;
	case PP_EINVALID: return PP_EXIT_DATAERR;
	case PP_EAUTH: return PP_EXIT_NOPERM;
	case PP_ETHROTTLED:
	case PP_ETRANSIENT: return PP_EXIT_TEMPFAIL;
	case PP_EIO: return PP_EXIT_IOERR;
	case PP_ECONFLICT: return PP_EXIT_DATAERR;
	default: return PP_EXIT_SOFTWARE;
	}
}
