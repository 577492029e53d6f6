/* Canned answers for fuzz targets whose code under test makes HTTP calls:
 * linked with -Wl,--wrap=pp_http_perform, every blocking call takes the next
 * answer from the input instead of the network. Code that adds its requests
 * to a pp_http_multi links with CANNED_MULTI_WRAPS (mk/fuzz.mk) as well: each
 * request added takes its answer at once, in the order added, and its done
 * callback runs from the next pp_http_multi_run, as a transfer's does.
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
int __wrap_pp_http_multi_add(struct pp_http_multi *m, struct pp_http_req *req,
			     struct pp_http_resp *resp, pp_http_done_fn done, void *ud,
			     struct pp_error *err);
int __wrap_pp_http_multi_run(struct pp_http_multi *m, long timeout_ms);
int __wrap_pp_http_multi_pending(const struct pp_http_multi *m);
int __wrap_pp_http_multi_abandon(struct pp_http_multi *m, const void *ud);

/* Requests added and answered whose done callback has not run yet. The
 * Prefect source keeps at most 16 on the wire; more is the harness's
 * mistake. */
#define CANNED_MAX_ANSWERED 256
struct canned_answered {
	struct pp_http_req *req;
	struct pp_http_resp *resp;
	pp_http_done_fn done;
	void *ud;
	int rc;
	struct pp_error err;
};

static struct {
	const char *p;
	size_t left;
	/* Requests must go under one of these URL prefixes (NULL ends). */
	const char *const *allowed;
	unsigned calls;
	struct canned_answered answered[CANNED_MAX_ANSWERED];
	int nanswered;
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
	/* What the last input left unanswered belonged to code that has been
	 * torn down since: dropped, never called. */
	canned.nanswered = 0;
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

/* The next answer of the input for req, as pp_http_perform returns it. */
static int canned_answer(struct pp_http_req *req, struct pp_http_resp *resp, struct pp_error *err)
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

int __wrap_pp_http_perform(struct pp_http_req *req, struct pp_http_resp *resp, struct pp_error *err)
{
	return canned_answer(req, resp, err);
}

int __wrap_pp_http_multi_add(struct pp_http_multi *m, struct pp_http_req *req,
			     struct pp_http_resp *resp, pp_http_done_fn done, void *ud,
			     struct pp_error *err)
{
	(void)m;
	(void)err;
	if (canned.nanswered == CANNED_MAX_ANSWERED) {
		fprintf(stderr, "more than %d requests on the wire\n", CANNED_MAX_ANSWERED);
		abort();
	}
	struct canned_answered *a = &canned.answered[canned.nanswered++];
	*a = (struct canned_answered){.req = req, .resp = resp, .done = done, .ud = ud};
	a->rc = canned_answer(req, resp, &a->err);
	return 0;
}

/* The callbacks of what was answered before this call, in order; those
 * they add wait for the next call. Nothing waits. */
int __wrap_pp_http_multi_run(struct pp_http_multi *m, long timeout_ms)
{
	(void)m;
	(void)timeout_ms;
	int n = canned.nanswered;
	/* A callback may abandon others that were answered. */
	for (int i = 0; i < n && canned.nanswered > 0; i++) {
		struct canned_answered a = canned.answered[0];
		memmove(&canned.answered[0], &canned.answered[1],
			(size_t)(--canned.nanswered) * sizeof(canned.answered[0]));
		a.done(a.ud, a.req, a.resp, a.rc, &a.err);
	}
	return canned.nanswered;
}

int __wrap_pp_http_multi_pending(const struct pp_http_multi *m)
{
	(void)m;
	return canned.nanswered;
}

int __wrap_pp_http_multi_abandon(struct pp_http_multi *m, const void *ud)
{
	(void)m;
	int kept = 0, stopped = 0;
	for (int i = 0; i < canned.nanswered; i++) {
		if (canned.answered[i].ud == ud)
			stopped++;
		else
			canned.answered[kept++] = canned.answered[i];
	}
	canned.nanswered = kept;
	return stopped;
}

#endif
