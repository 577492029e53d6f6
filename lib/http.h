/* HTTP on libcurl: request/response values, a blocking call, and a multi
 * event loop for many requests at once. Responses are read into a buffer
 * with a hard cap. Requests go out as given: whoever sends one applies its
 * credentials first (dispatcher/op_driver.c, pp_cred_perform in auth/). */
#ifndef PP_HTTP_H
#define PP_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"
#include "lib/err.h"

/* Every request's User-Agent, unless it carries one of its own. */
#define PP_USER_AGENT "pushpool/" PP_VERSION
/* What a request with a JSON answer accepts as its Accept-Encoding: gzip,
 * which every cloud API pushpool calls serves. gRPC calls ask for none,
 * and so do requests flagged PP_HTTP_SMALL_ANSWER. */
#define PP_HTTP_CONTENT_CODINGS "gzip"

/* One allocation (lib/http.c's header_new): the strings follow the node. */
struct pp_http_header {
	char *name;
	char *value;
	struct pp_http_header *next;
};

enum {
	PP_HTTP_GRPC = 1u << 0, /* HTTP/2 (h2c prior knowledge on http://), read trailers */
	/* Sending the request twice has no second effect (it carries an
	 * idempotency key or names what it creates, or only reads). Such a
	 * request may go out on a kept-alive connection even when it is not a
	 * GET: curl resends a request on its own when a reused connection
	 * turns out dead, which only these can afford. */
	PP_HTTP_RESENDABLE = 1u << 1,
	/* The answer is one resource of a few KB, such as what a submission
	 * creates or starts: the request asks for no content coding.
	 * Compression saves little there, and asking costs libcurl about 5,000
	 * instructions a request (the header line through its printf, the
	 * decoder's setup). Lists and logs, whose answers grow, ask for gzip. */
	PP_HTTP_SMALL_ANSWER = 1u << 2,
};

struct pp_http_req {
	char method[8];
	char *url;
	struct pp_http_header *headers; /* in insertion order */
	char *body;
	size_t body_len;
	long timeout_ms; /* 0: 30 s */
	/* CLOCK_MONOTONIC ms, 0: none. A multi transfer never goes out after
	 * it, however long applying credentials (a token fetch, a stall inside
	 * one) held it up: the caller's own bound, such as an op's lease. */
	long long not_after_ms;
	size_t max_response; /* 0: 8 MiB */
	unsigned flags;
};

struct pp_http_resp {
	long status; /* 0 when no HTTP response arrived */
	struct pp_buf body;
	struct pp_http_header *headers; /* response headers and trailers, names lowercase */
	long retry_after_ms;		/* from Retry-After (seconds or date), 0 if none */
	double total_seconds;
	char transport_error[256]; /* curl's message when status == 0 */
};

void pp_http_req_init(struct pp_http_req *r, const char *method, const char *url);
int pp_http_req_set_url(struct pp_http_req *r, const char *url);
/* Adds (does not replace) a header. */
int pp_http_req_header(struct pp_http_req *r, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Replace or add. */
int pp_http_req_set_header(struct pp_http_req *r, const char *name, const char *value);
const char *pp_http_req_get_header(const struct pp_http_req *r, const char *name);
int pp_http_req_body(struct pp_http_req *r, const void *body, size_t len);
void pp_http_req_free(struct pp_http_req *r);

void pp_http_resp_init(struct pp_http_resp *r, size_t max);
const char *pp_http_resp_header(const struct pp_http_resp *r, const char *name);
/* Put a header (or trailer) first, as a transfer's callbacks would have
 * added it: for code that answers a request itself, such as a test. */
int pp_http_resp_add_header(struct pp_http_resp *r, const char *name, const char *value);
void pp_http_resp_free(struct pp_http_resp *r);

/* Map a finished exchange to our codes: 2xx -> 0; 401/403 -> AUTH; 404 ->
 * NOTFOUND; 409 -> CONFLICT; 429 -> THROTTLED; 5xx and transport errors ->
 * TRANSIENT; other 4xx -> INVALID. Message: "METHOD URL: HTTP 400: <body
 * excerpt>" with secrets redacted. Providers refine with their own bodies. */
int pp_http_classify(const struct pp_http_req *req, const struct pp_http_resp *resp,
		     struct pp_error *err);

/* Releases libcurl at program exit if a transfer set it up (libcurl and
 * OpenSSL are initialised by the first transfer, not before). */
void pp_http_cleanup(void);

/* HTTPS trusts the certificate authorities of the PEM file path instead of
 * the system's (NULL: the system's again); verification stays on. Process
 * wide: call it before the first request, on the thread that starts the
 * others. 0, or PP_ENOMEM. */
int pp_http_set_ca_file(const char *path);

/* Blocking single request (no retries). Returns 0 when an HTTP
 * response arrived (any status), PP_ETRANSIENT on transport failure. */
int pp_http_perform(struct pp_http_req *req, struct pp_http_resp *resp, struct pp_error *err);

/* ---- many requests at once, one thread ----
 * A multi's transfers share its connections and its TLS sessions: a
 * request on a fresh connection resumes a session another one made with
 * that host, rather than a full handshake. */
struct pp_http_multi;
typedef void (*pp_http_done_fn)(void *ud, struct pp_http_req *req, struct pp_http_resp *resp,
				int rc, const struct pp_error *err);

struct pp_http_multi *pp_http_multi_new(void);
void pp_http_multi_free(struct pp_http_multi *m);
/* Start req. req and resp must stay valid until done is
 * called; done is called from pp_http_multi_run. */
int pp_http_multi_add(struct pp_http_multi *m, struct pp_http_req *req, struct pp_http_resp *resp,
		      pp_http_done_fn done, void *ud, struct pp_error *err);
/* Drive transfers; returns the number still running. It waits, at most
 * timeout_ms, only when no transfer has ended yet in the call: a done
 * callback that ran makes it return, so what follows an answer (the next
 * request) goes out without waiting on the others. */
int pp_http_multi_run(struct pp_http_multi *m, long timeout_ms);
int pp_http_multi_pending(const struct pp_http_multi *m);
/* Wait on the descriptor of each watch slot (fd -1: none) too whenever
 * pp_http_multi_run waits: a readable one ends the wait, and
 * pp_http_multi_watch_ready says so until the next pp_http_multi_watch of
 * any slot. pp_http_multi_wait_watched waits on them alone, at most
 * timeout_ms (none: a sleep). */
#define PP_HTTP_WATCH_SLOTS 2
void pp_http_multi_watch(struct pp_http_multi *m, int slot, int fd);
bool pp_http_multi_watch_ready(const struct pp_http_multi *m);
void pp_http_multi_wait_watched(struct pp_http_multi *m, long timeout_ms);
/* Stop every transfer added with ud, without calling done: their req and
 * resp are the caller's again. A request under way may have reached the
 * server already. Returns how many were stopped. */
int pp_http_multi_abandon(struct pp_http_multi *m, const void *ud);

/* Percent-encode for URL paths/queries (RFC 3986 unreserved kept). */
int pp_url_encode(struct pp_buf *out, const char *s, bool keep_slash);

#endif
