/* Canned answers for fuzz targets whose code under test makes blocking
 * pp_http_perform calls: link with -Wl,--wrap=pp_http_perform and every call
 * takes the next answer from the input instead of the network.
 *
 * Input text: answers separated by lines "---"; each answer is a first line
 * "STATUS [RETRY_AFTER_S] [HEADER:VALUE]" (no valid status: the connection
 * failed) and the body after it. Text keeps the seeds in tests/fuzz/seeds/
 * readable and lets the mutator work on the bodies. */
#ifndef PP_FUZZ_CANNED_HTTP_H
#define PP_FUZZ_CANNED_HTTP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/http.h"
#include "tests/fuzz/fuzz_resp.h"

int __wrap_pp_http_perform(struct pp_http_req *req, struct pp_http_resp *resp,
			   struct pp_error *err);

static struct {
	const char *p;
	size_t left;
	/* Requests must go under one of these URL prefixes (NULL ends). */
	const char *const *allowed;
	unsigned calls;
} canned;

/* A failure must say what went wrong, and no secret the harness planted
 * (a NULL-terminated list) may appear in what it says. */
static void canned_check_failure(int rc, const struct pp_error *err, const char *const *secrets)
{
	if (rc >= 0)
		return;
	if (!err->msg[0])
		abort();
	for (const char *const *s = secrets; *s; s++)
		if (strstr(err->msg, *s))
			abort();
}

static void canned_start(const uint8_t *data, size_t size, const char *const *allowed)
{
	canned.p = (const char *)data;
	canned.left = size;
	canned.allowed = allowed;
	canned.calls = 0;
}

/* The next line-delimited field of the input, "" past its end. */
static size_t canned_line(char *out, size_t n)
{
	const char *nl = memchr(canned.p, '\n', canned.left);
	size_t len = nl ? (size_t)(nl - canned.p) : canned.left;
	size_t copy = len < n - 1 ? len : n - 1;
	memcpy(out, canned.p, copy);
	out[copy] = '\0';
	canned.p += nl ? len + 1 : len;
	canned.left -= nl ? len + 1 : len;
	return copy;
}

int __wrap_pp_http_perform(struct pp_http_req *req, struct pp_http_resp *resp, struct pp_error *err)
{
	bool ok = false;
	for (const char *const *a = canned.allowed; req->url && a && *a; a++)
		ok = ok || !strncmp(req->url, *a, strlen(*a));
	if (!ok) {
		fprintf(stderr, "request to an unexpected place: %s %s\n", req->method,
			req->url ? req->url : "(null)");
		abort();
	}
	canned.calls++;
	if (!canned.left) {
		snprintf(resp->transport_error, sizeof(resp->transport_error),
			 "Connection refused");
		return pp_fail(err, PP_ETRANSIENT, "%s %s: Connection refused", req->method,
			       req->url);
	}
	const char *end = canned.p + canned.left;
	const char *sep = memmem(canned.p, canned.left, "\n---\n", 5);
	const char *stop = sep ? sep : end;
	const char *nl = memchr(canned.p, '\n', (size_t)(stop - canned.p));
	const char *body = nl ? nl + 1 : stop;
	char line[256] = "", header[200] = "";
	size_t n = (size_t)((nl ? nl : stop) - canned.p);
	memcpy(line, canned.p, n < sizeof(line) - 1 ? n : sizeof(line) - 1);
	canned.p = sep ? sep + 5 : end;
	canned.left = (size_t)(end - canned.p);

	long status = 0, retry_after = 0;
	if (sscanf(line, "%ld %ld %199s", &status, &retry_after, header) < 1 || status < 100 ||
	    status > 599) {
		snprintf(resp->transport_error, sizeof(resp->transport_error),
			 "Connection reset by peer");
		return pp_fail(err, PP_ETRANSIENT, "%s %s: Connection reset by peer", req->method,
			       req->url);
	}
	resp->status = status;
	if (retry_after > 0 && retry_after < 3600)
		resp->retry_after_ms = retry_after * 1000;
	char *colon = strchr(header, ':');
	if (colon) {
		*colon = '\0';
		fuzz_add_header(resp, header, colon + 1);
	}
	/* As http.c does: the body must fit the cap the caller set. */
	if (pp_buf_append(&resp->body, body, (size_t)(stop - body)))
		return pp_fail(err, PP_ETRANSIENT, "%s %s: response body larger than the limit",
			       req->method, req->url);
	return 0;
}

#endif
