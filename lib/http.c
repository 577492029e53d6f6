/* HTTP on libcurl. Requests are plain values built by providers and auth;
 * this file sends them as they are, reads into capped buffers, and maps
 * outcomes to pp_err codes. TLS verification is never turned off: the
 * mocks are plain http on loopback. */
#include "lib/http.h"

#include <ctype.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>

#include "lib/clock.h"
#include "lib/log.h"

#define DEFAULT_TIMEOUT_MS   30000L
#define DEFAULT_MAX_RESPONSE ((size_t)8 << 20)
#define MAX_RESPONSE_HEADERS 200
#define MAX_HOST_CONNECTIONS 256L
/* HTTP/2 streams libcurl puts on one connection (the server's own
 * SETTINGS_MAX_CONCURRENT_STREAMS may lower it); more calls open another
 * connection. gRPC servers commonly allow 100. */
#define MAX_STREAMS_PER_CONNECTION 100L
/* An h2c call refused a new socket joins again at most this often (while
 * an opener sets up the connection it can join) before it opens one. */
#define MAX_H2C_JOINS 2
#define MAX_H2C_CONNS 256
/* Easy handles a multi keeps for reuse: about the transfers it runs at
 * once (max_submitting, 32 by default); each holds a few KiB. */
#define SPARE_EASY_HANDLES 32

/* libcurl, and with it OpenSSL and the system's configuration for it, is
 * set up by the first transfer rather than at program start: a daemon with
 * nothing due does not hold TLS (about 2 MiB of libcrypto's pages). Once,
 * whichever thread gets there first; curl_global_init itself would not be
 * safe to race on a libcurl built without CURL_VERSION_THREADSAFE. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;
static bool curl_inited;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	curl_inited = curl_init_rc == CURLE_OK;
}

static int curl_ready(struct pp_error *err)
{
	pthread_once(&curl_once, curl_init_once);
	return curl_inited ? 0
			   : pp_fail(err, PP_ENOMEM, "libcurl initialisation failed: %s",
				     curl_easy_strerror(curl_init_rc));
}

void pp_http_cleanup(void)
{
	if (curl_inited)
		curl_global_cleanup();
	pp_http_set_ca_file(NULL);
}

/* pp_http_set_ca_file's, or NULL: the system's authorities. */
static char *ca_file;

int pp_http_set_ca_file(const char *path)
{
	char *copy = NULL;
	if (path && !(copy = strdup(path)))
		return PP_ENOMEM;
	free(ca_file);
	ca_file = copy;
	return 0;
}

void pp_http_req_init(struct pp_http_req *r, const char *method, const char *url)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->method, sizeof(r->method), "%s", method);
	if (url)
		r->url = strdup(url);
}

int pp_http_req_set_url(struct pp_http_req *r, const char *url)
{
	char *u = strdup(url);
	if (!u)
		return PP_ENOMEM;
	free(r->url);
	r->url = u;
	return 0;
}

/* One allocation a header: the node, then its name and value, each
 * NUL-terminated. An answer brings about nine headers, and three
 * allocations and three frees each cost about 250 instructions a header
 * more than one of each (issue 23, step 103). */
static struct pp_http_header *header_new(const char *name, size_t nlen, const char *value,
					 size_t vlen)
{
	if (nlen > SIZE_MAX / 2 - sizeof(struct pp_http_header) ||
	    vlen > SIZE_MAX / 2 - sizeof(struct pp_http_header))
		return NULL;
	struct pp_http_header *h = malloc(sizeof(*h) + nlen + vlen + 2);
	if (!h)
		return NULL;
	h->name = (char *)(h + 1);
	h->value = h->name + nlen + 1;
	memcpy(h->name, name, nlen);
	h->name[nlen] = '\0';
	memcpy(h->value, value, vlen);
	h->value[vlen] = '\0';
	h->next = NULL;
	return h;
}

static void header_append(struct pp_http_header **list, struct pp_http_header *h)
{
	while (*list)
		list = &(*list)->next;
	*list = h;
}

static void headers_free(struct pp_http_header *h)
{
	while (h) {
		struct pp_http_header *n = h->next;
		free(h);
		h = n;
	}
}

static const char *header_find(const struct pp_http_header *h, const char *name)
{
	for (; h; h = h->next)
		if (!strcasecmp(h->name, name))
			return h->value;
	return NULL;
}

int pp_http_req_header(struct pp_http_req *r, const char *name, const char *fmt, ...)
{
	char *v = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&v, fmt, ap);
	va_end(ap);
	if (n < 0)
		return PP_ENOMEM;
	struct pp_http_header *h = header_new(name, strlen(name), v, (size_t)n);
	free(v);
	if (!h)
		return PP_ENOMEM;
	header_append(&r->headers, h);
	return 0;
}

int pp_http_req_set_header(struct pp_http_req *r, const char *name, const char *value)
{
	struct pp_http_header **at = &r->headers;
	while (*at && strcasecmp((*at)->name, name))
		at = &(*at)->next;
	/* A replacement keeps the name as first written, and the place. */
	const char *kept = *at ? (*at)->name : name;
	struct pp_http_header *h = header_new(kept, strlen(kept), value, strlen(value));
	if (!h)
		return PP_ENOMEM;
	if (*at) {
		h->next = (*at)->next;
		free(*at);
	}
	*at = h;
	return 0;
}

const char *pp_http_req_get_header(const struct pp_http_req *r, const char *name)
{
	return header_find(r->headers, name);
}

int pp_http_req_body(struct pp_http_req *r, const void *body, size_t len)
{
	char *b = malloc(len + 1);
	if (!b)
		return PP_ENOMEM;
	memcpy(b, body, len);
	b[len] = '\0';
	free(r->body);
	r->body = b;
	r->body_len = len;
	return 0;
}

void pp_http_req_free(struct pp_http_req *r)
{
	free(r->url);
	free(r->body);
	headers_free(r->headers);
	memset(r, 0, sizeof(*r));
}

void pp_http_resp_init(struct pp_http_resp *r, size_t max)
{
	memset(r, 0, sizeof(*r));
	pp_buf_init(&r->body, max ? max : DEFAULT_MAX_RESPONSE);
}

const char *pp_http_resp_header(const struct pp_http_resp *r, const char *name)
{
	return header_find(r->headers, name);
}

int pp_http_resp_add_header(struct pp_http_resp *r, const char *name, const char *value)
{
	struct pp_http_header *h = header_new(name, strlen(name), value, strlen(value));
	if (!h)
		return PP_ENOMEM;
	h->next = r->headers;
	r->headers = h;
	return 0;
}

void pp_http_resp_free(struct pp_http_resp *r)
{
	pp_buf_free(&r->body);
	headers_free(r->headers);
	r->headers = NULL;
}

static void resp_reset(struct pp_http_resp *r)
{
	size_t max = r->body.max;
	pp_http_resp_free(r);
	memset(r, 0, sizeof(*r));
	pp_buf_init(&r->body, max);
}

/* ---- one transfer ---- */

struct xfer {
	CURL *easy;
	struct curl_slist *slist;
	struct pp_http_req *req;
	struct pp_http_resp *resp;
	size_t nheaders;
	bool overflow;
	pp_http_done_fn done;
	void *ud;
	struct xfer *prev, *next;    /* in the multi's list of live transfers */
	long long deadline_ms;	     /* monotonic; multi transfers only */
	bool held_back;		     /* the deadline passed before the request went out */
	struct pp_http_multi *multi; /* NULL for pp_http_perform */
	enum { H2C_NONE, H2C_JOIN, H2C_OPEN } h2c; /* h2c_policy */
	bool rejoin;				   /* a joiner stopped before anything was sent */
	int joins;				   /* tries at joining */
	char errbuf[CURL_ERROR_SIZE];
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct xfer *x = ud;
	if (pp_buf_append(&x->resp->body, p, sz * n)) {
		x->overflow = true;
		return 0; /* abort: the response is larger than its cap */
	}
	return sz * n;
}

static long parse_retry_after(const char *v)
{
	while (*v == ' ')
		v++;
	if (isdigit((unsigned char)*v)) {
		double secs = strtod(v, NULL);
		return secs > 3600 ? 3600000L : (long)(secs * 1000);
	}
	time_t when = curl_getdate(v, NULL);
	time_t now = time(NULL);
	if (when <= now)
		return 0;
	return when - now > 3600 ? 3600000L : (long)(when - now) * 1000;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = sz * n;
	if (len >= 5 && !strncmp(p, "HTTP/", 5)) {
		/* A new response (after 100-continue or a redirect): drop the
		 * headers of the previous one. */
		headers_free(x->resp->headers);
		x->resp->headers = NULL;
		x->nheaders = 0;
		return len;
	}
	const char *colon = memchr(p, ':', len);
	if (!colon || x->nheaders >= MAX_RESPONSE_HEADERS)
		return len;
	size_t nlen = (size_t)(colon - p);
	const char *v = colon + 1;
	const char *end = p + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	struct pp_http_header *h = header_new(p, nlen, v, (size_t)(end - v));
	if (!h)
		return 0;
	for (char *c = h->name; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	header_append(&x->resp->headers, h);
	x->nheaders++;
	if (!strcmp(h->name, "retry-after"))
		x->resp->retry_after_ms = parse_retry_after(h->value);
	return len;
}

static void easy_release(struct pp_http_multi *m, CURL *easy);

static void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	if (x->easy)
		easy_release(x->multi, x->easy);
	curl_slist_free_all(x->slist);
	free(x);
}

/* libcurl calls this once connected, right before the request goes out:
 * the last point where a stall (SIGSTOP, a VM pause) inside one
 * curl_multi_perform call, past the transfer's deadline, can still stop
 * it. */
static bool h2c_is_up(const struct pp_http_multi *m, const char *peer, int peer_port,
		      int local_port);
static void h2c_up(struct pp_http_multi *m, const char *peer, int peer_port, int local_port);

static int before_send(void *clientp, char *primary_ip, char *local_ip, int primary_port,
		       int local_port)
{
	struct xfer *x = clientp;
	if (x->deadline_ms && pp_mono_ms() >= x->deadline_ms) {
		x->held_back = true;
		return CURL_PREREQFUNC_ABORT;
	}
	if (x->h2c == H2C_OPEN && x->multi)
		h2c_up(x->multi, primary_ip, primary_port, local_port);
	if (x->h2c == H2C_JOIN && !h2c_is_up(x->multi, primary_ip, primary_port, local_port)) {
		/* If nothing else uses the connection it is one the ring has
		 * forgotten: it is closed as this transfer ends, rather than
		 * drawing every joiner to it. In use, it stays (an opener's). */
		curl_easy_setopt(x->easy, CURLOPT_FORBID_REUSE, 1L);
		x->rejoin = true;
		return CURL_PREREQFUNC_ABORT;
	}
	return CURL_PREREQFUNC_OK;
}

/* libcurl refuses a new socket to a call that may only join (h2c_policy):
 * nothing has been sent, so the call can go again as an opener. */
static curl_socket_t refuse_socket(void *clientp, curlsocktype purpose,
				   struct curl_sockaddr *address)
{
	struct xfer *x = clientp;
	x->rejoin = true;
	return CURL_SOCKET_BAD;
}

/* h2c, HTTP/2 over plain TCP with prior knowledge (gRPC to http:// URLs):
 * libcurl 7.88 breaks a reused prior-knowledge connection, layering a
 * second HTTP/2 session on it, so every later call on it fails with "Error
 * in the HTTP2 framing layer" before a byte goes out (curl/curl#10634,
 * fixed in 8.0.0). A transfer asking for HTTP/2 without prior knowledge
 * multiplexes onto the same connection cleanly, but on a new connection it
 * would speak HTTP/1.1 with an Upgrade no gRPC server takes. So a call
 * first only joins a connection that is up (or waits for one being set up,
 * CURLOPT_PIPEWAIT); when libcurl has none for it and asks for a socket,
 * the call is refused before anything is sent and goes again as the opener
 * of a new prior-knowledge connection (a fresh one: reusing would meet the
 * bug). A call that may not be resent (fresh) is an opener from the start.
 * libcurl may also hand a joiner an opener's connection that is not HTTP/2
 * yet (it switches when the opener's request goes out); the joiner would
 * write HTTP/1.1 into it. So openers note their connection when their
 * request goes out (h2c_up, in before_send), and a joiner that finds its
 * connection unknown there stops before sending and joins again. */
static void h2c_policy(struct xfer *x, bool join)
{
	CURL *e = x->easy;
	x->h2c = join ? H2C_JOIN : H2C_OPEN;
	x->rejoin = false;
	curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 0L); /* before_send may have set it */
	if (join) {
		x->joins++;
		curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_0);
		curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, refuse_socket);
		curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
	} else {
		curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
				 (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
		curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, NULL);
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
	}
}

/* The transfer's options, every one that any transfer sets, each to this
 * request's value or libcurl's default: a spare handle keeps the last
 * request's (curl_easy_reset, which would restore the defaults, cost 7,000
 * instructions a request, most of them freeing about 90 string options
 * never set; issue 23). An option set here only for some requests must be
 * set, to its default, for the others too. */
static int xfer_setup(struct xfer *x, struct pp_http_req *req, struct pp_http_resp *resp,
		      struct pp_error *err)
{
	x->req = req;
	x->resp = resp;
	resp_reset(resp);
	if (!req->url)
		return pp_fail(err, PP_EINVALID, "%s: request without URL", req->method);
	int rc;
	if (!x->easy && (rc = curl_ready(err)))
		return rc;
	if (!x->easy)
		x->easy = curl_easy_init();
	if (!x->easy)
		return pp_fail(err, PP_ENOMEM, "curl_easy_init failed");
	for (struct pp_http_header *h = req->headers; h; h = h->next) {
		/* curl copies the line: most fit a buffer on the stack. */
		char small[1024], *line = small;
		size_t nlen = strlen(h->name), vlen = strlen(h->value);
		if (nlen + vlen + 3 > sizeof(small) && !(line = malloc(nlen + vlen + 3)))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		memcpy(line, h->name, nlen);
		/* "Name;" is curl's way to send a header with an empty value. */
		if (vlen) {
			memcpy(line + nlen, ": ", 2);
			memcpy(line + nlen + 2, h->value, vlen + 1);
		} else {
			memcpy(line + nlen, ";", 2);
		}
		struct curl_slist *s = curl_slist_append(x->slist, line);
		if (line != small)
			free(line);
		if (!s)
			return pp_fail(err, PP_ENOMEM, "out of memory");
		x->slist = s;
	}
	/* curl adds "Expect: 100-continue" to large POSTs; the peers answer
	 * directly and the extra round trip only adds latency. */
	if (!pp_http_req_get_header(req, "Expect")) {
		struct curl_slist *s = curl_slist_append(x->slist, "Expect:");
		if (!s)
			return pp_fail(err, PP_ENOMEM, "out of memory");
		x->slist = s;
	}
	CURL *e = x->easy;
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->slist);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
			 req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 req->timeout_ms > 0 && req->timeout_ms < 10000 ? req->timeout_ms : 10000L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, before_send);
	curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	if (ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
	curl_easy_setopt(e, CURLOPT_USERAGENT, PP_USER_AGENT);
	/* gRPC compresses message by message (grpc-encoding), never with
	 * HTTP's content codings: asking for them only costs each call a
	 * header built and a decoder set up (issue 23). The others name their
	 * coding: with "" (every coding libcurl was built with) libcurl lists
	 * them afresh for each request, about 11,000 instructions (issue 23). */
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING,
			 (req->flags & (PP_HTTP_GRPC | PP_HTTP_SMALL_ANSWER))
				 ? NULL
				 : PP_HTTP_CONTENT_CODINGS);
	/* curl silently resends a request whose reused keep-alive connection
	 * died before the answer; for a create that could act twice, so
	 * non-GET requests get a connection of their own unless the caller
	 * says a resend is harmless. */
	bool fresh = strcmp(req->method, "GET") && strcmp(req->method, "HEAD") &&
		     !(req->flags & PP_HTTP_RESENDABLE);
	curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, (long)fresh);
	curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 0L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	/* gRPC calls share HTTP/2 connections, many streams on each, as the
	 * gRPC SDKs do: wait for a connection being set up to say it
	 * multiplexes rather than open one more beside it. */
	bool grpc = req->flags & PP_HTTP_GRPC;
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, (long)grpc);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
			 grpc ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_NONE);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, NULL);
	if (grpc && !strncmp(req->url, "http://", 7))
		h2c_policy(x, !fresh);
	if (!strcmp(req->method, "GET")) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else if (!strcmp(req->method, "HEAD")) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
	}
	return 0;
}

static int xfer_finish(struct xfer *x, CURLcode cc, struct pp_error *err)
{
	struct pp_http_resp *resp = x->resp;
	double t = 0;
	curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME, &t);
	resp->total_seconds = t;
	if (x->overflow) {
		resp->status = 0;
		snprintf(resp->transport_error, sizeof(resp->transport_error),
			 "response body larger than the %zu-byte limit", resp->body.max);
		return pp_fail(err, PP_EINVALID, "%s %s: %s", x->req->method, x->req->url,
			       resp->transport_error);
	}
	if (cc != CURLE_OK) {
		resp->status = 0;
		if (x->held_back)
			snprintf(resp->transport_error, sizeof(resp->transport_error),
				 "not sent: its deadline passed before it went out");
		else
			snprintf(resp->transport_error, sizeof(resp->transport_error), "%s",
				 x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
		return pp_fail(err, PP_ETRANSIENT, "%s %s: %s", x->req->method, x->req->url,
			       resp->transport_error);
	}
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &resp->status);
	return 0;
}

int pp_http_perform(struct pp_http_req *req, struct pp_http_resp *resp, struct pp_error *err)
{
	struct xfer *x = calloc(1, sizeof(*x));
	if (!x)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	int rc = xfer_setup(x, req, resp, err);
	/* A lone transfer has no connection to join. */
	if (!rc && x->h2c == H2C_JOIN)
		h2c_policy(x, false);
	if (!rc)
		rc = xfer_finish(x, curl_easy_perform(x->easy), err);
	xfer_free(x);
	return rc;
}

int pp_http_classify(const struct pp_http_req *req, const struct pp_http_resp *resp,
		     struct pp_error *err)
{
	long s = resp->status;
	if (s >= 200 && s < 300)
		return 0;
	int code;
	if (s == 0)
		code = PP_ETRANSIENT;
	else if (s == 401 || s == 403)
		code = PP_EAUTH;
	else if (s == 404 || s == 410)
		code = PP_ENOTFOUND;
	else if (s == 409)
		code = PP_ECONFLICT;
	else if (s == 429)
		code = PP_ETHROTTLED;
	else if (s == 408 || s >= 500)
		code = PP_ETRANSIENT;
	else
		code = PP_EINVALID;
	if (!err)
		return code;
	if (s == 0) {
		pp_fail(err, code, "%s %s: %s", req->method, req->url,
			resp->transport_error[0] ? resp->transport_error : "no response");
	} else {
		/* The body excerpt carries the provider's own message. */
		int n = (int)(resp->body.len > 400 ? 400 : resp->body.len);
		pp_fail(err, code, "%s %s: HTTP %ld: %.*s", req->method, req->url, s, n,
			pp_buf_str(&resp->body));
		for (char *c = err->msg; *c; c++)
			if (*c == '\n' || *c == '\r')
				*c = ' ';
	}
	err->retry_after_ms = resp->retry_after_ms;
	pp_redact(err->msg);
	return code;
}

/* ---- multi ---- */

struct pp_http_multi {
	CURLM *multi; /* NULL until the first transfer (curl_ready) */
	/* TLS sessions of every handle of the multi. libcurl keeps a cache
	 * in each easy handle otherwise, so a fresh connection (Cloud Run's
	 * :run, one a run) made a full handshake unless the handle it drew
	 * had met the host before. Made with multi; one thread drives a
	 * multi, so the share needs no locks. */
	CURLSH *tls_sessions;
	int running;
	int pending;	   /* transfers added and not yet reported */
	struct xfer *live; /* so pp_http_multi_free can release abandoned ones */
	int h2c_opening;   /* h2c openers under way (h2c_policy) */
	/* Easy handles of finished transfers, taken by the next ones with the
	 * options they had: xfer_setup sets every option a transfer may use,
	 * so nothing of the last request carries over. */
	CURL *spare[SPARE_EASY_HANDLES];
	int nspare;
	/* h2c connections that speak HTTP/2 (h2c_policy), by their ends; a
	 * ring: the oldest is forgotten (its joiners then open anew) */
	struct h2c_conn {
		char peer[48];
		int peer_port, local_port;
	} h2c_conns[MAX_H2C_CONNS];
	size_t h2c_next;
	/* Descriptors waited on with the transfers (pp_http_multi_watch; -1
	 * in a slot not watched), and whether one turned readable since a
	 * slot was last set. */
	int watch_fd[PP_HTTP_WATCH_SLOTS];
	bool watch_ready;
	/* libcurl's sockets and what it waits for on each (its socket
	 * callback keeps them; each socket's libcurl pointer is its index
	 * + 1), and when it wants its timers run (monotonic ms, -1: never).
	 * The multi drives libcurl by socket, so a pass touches only the
	 * transfers whose socket is ready: curl_multi_perform checked every
	 * transfer's socket with a poll of its own, 8 a run at +20 ms with
	 * 32 transfers out (docs/performance.md, step 110). */
	struct pollfd *socks;
	struct {
		curl_socket_t fd;
		int bits;
	} * ready; /* multi_drive's, as long as socks */
	int nsocks, socks_cap;
	long long timer_due;
};

/* The watched descriptors as pollfds at p (POLLIN): how many. */
static int watch_pollfds(const struct pp_http_multi *m, struct pollfd *p)
{
	int n = 0;
	for (int i = 0; i < PP_HTTP_WATCH_SLOTS; i++)
		if (m->watch_fd[i] >= 0)
			p[n++] = (struct pollfd){.fd = m->watch_fd[i], .events = POLLIN};
	return n;
}

/* After a poll of the n watched pollfds at p: whether one turned readable. */
static void watch_seen(struct pp_http_multi *m, const struct pollfd *p, int n)
{
	for (int i = 0; i < n; i++)
		m->watch_ready |= p[i].revents != 0;
}

void pp_http_multi_wait_watched(struct pp_http_multi *m, long timeout_ms)
{
	struct pollfd p[PP_HTTP_WATCH_SLOTS];
	int n = watch_pollfds(m, p);
	if (poll(p, (nfds_t)n, (int)timeout_ms) > 0)
		watch_seen(m, p, n);
}

static void easy_release(struct pp_http_multi *m, CURL *easy)
{
	if (m && m->nspare < SPARE_EASY_HANDLES) {
		m->spare[m->nspare++] = easy;
	} else {
		curl_easy_cleanup(easy);
	}
}

static void h2c_up(struct pp_http_multi *m, const char *peer, int peer_port, int local_port)
{
	struct h2c_conn *c = &m->h2c_conns[m->h2c_next++ % MAX_H2C_CONNS];
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->peer_port = peer_port;
	c->local_port = local_port;
}

static bool h2c_is_up(const struct pp_http_multi *m, const char *peer, int peer_port,
		      int local_port)
{
	for (size_t i = 0; m && i < MAX_H2C_CONNS && i < m->h2c_next; i++) {
		const struct h2c_conn *c = &m->h2c_conns[i];
		if (c->local_port == local_port && c->peer_port == peer_port &&
		    !strcmp(c->peer, peer))
			return true;
	}
	return false;
}

static void live_unlink(struct pp_http_multi *m, struct xfer *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		m->live = x->next;
	if (x->next)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
}

struct pp_http_multi *pp_http_multi_new(void)
{
	struct pp_http_multi *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	for (int i = 0; i < PP_HTTP_WATCH_SLOTS; i++)
		m->watch_fd[i] = -1;
	m->timer_due = -1;
	return m;
}

/* Room for twice the sockets, and for the watched descriptors behind
 * them (multi_drive). */
static int socks_grow(struct pp_http_multi *m)
{
	int cap = m->socks_cap ? 2 * m->socks_cap : SPARE_EASY_HANDLES;
	struct pollfd *socks =
		realloc(m->socks, (size_t)(cap + PP_HTTP_WATCH_SLOTS) * sizeof(*socks));
	if (!socks)
		return -1;
	m->socks = socks;
	void *ready = realloc(m->ready, (size_t)cap * sizeof(*m->ready));
	if (!ready)
		return -1;
	m->ready = ready;
	m->socks_cap = cap;
	return 0;
}

/* CURLMOPT_SOCKETFUNCTION: libcurl says what it waits for on a socket, or
 * that it is done with one (whose slot the last one then takes). */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *ud, void *socketp)
{
	(void)easy;
	struct pp_http_multi *m = ud;
	intptr_t slot = (intptr_t)socketp;
	if (what == CURL_POLL_REMOVE) {
		if (slot > 0 && slot <= m->nsocks && m->socks[slot - 1].fd == s) {
			int last = --m->nsocks;
			if (slot - 1 != last) {
				m->socks[slot - 1] = m->socks[last];
				curl_multi_assign(m->multi, m->socks[last].fd, (void *)slot);
			}
		}
		return 0;
	}
	short events = (short)(((what & CURL_POLL_IN) ? POLLIN : 0) |
			       ((what & CURL_POLL_OUT) ? POLLOUT : 0));
	if (slot > 0 && slot <= m->nsocks && m->socks[slot - 1].fd == s) {
		m->socks[slot - 1].events = events;
		return 0;
	}
	/* pp_http_multi_add keeps room for two sockets a transfer (a connect
	 * may try two addresses at once). Past that, without memory, the
	 * socket is not watched and its transfer fails at its deadline: an
	 * error returned here would abort every transfer of the multi. */
	if (m->nsocks == m->socks_cap && socks_grow(m))
		return 0;
	m->socks[m->nsocks++] = (struct pollfd){.fd = s, .events = events};
	curl_multi_assign(m->multi, s, (void *)(intptr_t)m->nsocks);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: when libcurl's timers are next due. */
static int on_timer(CURLM *multi, long timeout_ms, void *ud)
{
	(void)multi;
	struct pp_http_multi *m = ud;
	m->timer_due = timeout_ms < 0 ? -1 : pp_mono_ms() + timeout_ms;
	return 0;
}

/* The libcurl multi handle, made with the first transfer added. */
static int multi_start(struct pp_http_multi *m, struct pp_error *err)
{
	int rc;
	if (m->multi)
		return 0;
	if ((rc = curl_ready(err)))
		return rc;
	if (!(m->tls_sessions = curl_share_init()) ||
	    curl_share_setopt(m->tls_sessions, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
		    CURLSHE_OK ||
	    !(m->multi = curl_multi_init())) {
		curl_share_cleanup(m->tls_sessions);
		m->tls_sessions = NULL;
		return pp_fail(err, PP_ENOMEM, "curl_multi_init failed");
	}
	curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, MAX_HOST_CONNECTIONS);
	curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, MAX_HOST_CONNECTIONS);
	curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(m->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, MAX_STREAMS_PER_CONNECTION);
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
	return 0;
}

int pp_http_multi_add(struct pp_http_multi *m, struct pp_http_req *req, struct pp_http_resp *resp,
		      pp_http_done_fn done, void *ud, struct pp_error *err)
{
	int rc = multi_start(m, err);
	if (rc)
		return rc;
	struct xfer *x = calloc(1, sizeof(*x));
	if (!x)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	/* The deadline is fixed before credentials are applied: a token fetch
	 * that a stall prolonged past it must not earn the request a fresh
	 * window (a create sent so would land after another dispatcher had
	 * taken the run over, finished it and deleted its job). */
	long long deadline =
		pp_mono_ms() + (req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS);
	if (req->not_after_ms > 0 && req->not_after_ms < deadline)
		deadline = req->not_after_ms;
	x->multi = m;
	if (2 * (m->pending + 1) > m->socks_cap && socks_grow(m)) {
		free(x);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	/* A handle of the multi's joins its TLS sessions once, before its
	 * first transfer (a handle that ran one holds a cache of its own),
	 * and stays with the multi, as a spare, for life. */
	if (m->nspare)
		x->easy = m->spare[--m->nspare];
	else if ((x->easy = curl_easy_init()))
		curl_easy_setopt(x->easy, CURLOPT_SHARE, m->tls_sessions);
	rc = xfer_setup(x, req, resp, err);
	if (!rc && pp_mono_ms() >= deadline)
		rc = pp_fail(err, PP_ETRANSIENT,
			     "%s %s: not sent: its deadline passed while credentials were applied",
			     req->method, req->url);
	if (rc) {
		xfer_free(x);
		return rc;
	}
	x->done = done;
	x->ud = ud;
	x->deadline_ms = deadline;
	if (curl_multi_add_handle(m->multi, x->easy) != CURLM_OK) {
		xfer_free(x);
		return pp_fail(err, PP_ENOMEM, "curl_multi_add_handle failed");
	}
	if (x->h2c == H2C_OPEN)
		m->h2c_opening++;
	m->pending++;
	x->next = m->live;
	if (m->live)
		m->live->prev = x;
	m->live = x;
	return 0;
}

/* Take x off the multi handle and out of its counts. */
static void detach(struct pp_http_multi *m, struct xfer *x)
{
	curl_multi_remove_handle(m->multi, x->easy);
	if (x->h2c == H2C_OPEN)
		m->h2c_opening--;
	live_unlink(m, x);
	m->pending--;
}

static void report(struct pp_http_multi *m, struct xfer *x, CURLcode cc)
{
	detach(m, x);
	struct pp_error err = {0};
	int rc = xfer_finish(x, cc, &err);
	pp_http_done_fn done = x->done;
	void *ud = x->ud;
	struct pp_http_req *req = x->req;
	struct pp_http_resp *resp = x->resp;
	xfer_free(x);
	/* The callback may add new transfers (next step of an op). */
	done(ud, req, resp, rc, &err);
}

/* An h2c joiner stopped before anything was sent (h2c_policy): it joins
 * again while an opener is setting up a connection (which may not have
 * been there yet, or not HTTP/2), else it opens one. Returns false when
 * it cannot be added again (reported then as it ended). */
static bool h2c_again(struct pp_http_multi *m, struct xfer *x)
{
	curl_multi_remove_handle(m->multi, x->easy);
	h2c_policy(x, m->h2c_opening > 0 && x->joins < MAX_H2C_JOINS);
	x->errbuf[0] = '\0';
	if (curl_multi_add_handle(m->multi, x->easy) != CURLM_OK) {
		x->h2c = H2C_NONE; /* not under way: report() must not count it */
		return false;
	}
	if (x->h2c == H2C_OPEN)
		m->h2c_opening++;
	return true;
}

/* Returns the transfers it reported as ended. */
static int multi_reap(struct pp_http_multi *m)
{
	CURLMsg *msg;
	int left, ended = 0;
	while ((msg = curl_multi_info_read(m->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct xfer *x = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (x->rejoin && h2c_again(m, x))
			continue;
		report(m, x, msg->data.result);
		ended++;
	}
	return ended;
}

/* After a stall (SIGSTOP, a VM pause) libcurl would first send what it had
 * queued, and start the timeout clock of a transfer only once it connects:
 * a request whose deadline passed is failed before libcurl is driven, so
 * nothing goes out on behalf of a lease that may be gone. */
static int expire_overdue(struct pp_http_multi *m)
{
	long long now = pp_mono_ms();
	bool again = true;
	int ended = 0;
	while (again) {
		again = false;
		for (struct xfer *x = m->live; x; x = x->next) {
			if (x->deadline_ms > now)
				continue;
			report(m, x, CURLE_OPERATION_TIMEDOUT);
			ended++;
			again = true; /* the callback may have changed the list */
			break;
		}
	}
	return ended;
}

/* Waits up to wait_ms (0: only looks) for libcurl's sockets and the
 * watched descriptors, then lets libcurl act on the sockets found ready
 * and on its timers if they are due. */
static void multi_drive(struct pp_http_multi *m, long wait_ms)
{
	/* The watched descriptors ride behind libcurl's sockets, in the room
	 * socks_grow keeps for them. A wait comes only with transfers
	 * pending, so m->socks was made by the first transfer's add. */
	int n = m->nsocks;
	struct pollfd *p = m->socks;
	int nw = wait_ms > 0 ? watch_pollfds(m, p + n) : 0;
	if (wait_ms > 0 && m->timer_due >= 0) {
		long long until = m->timer_due - pp_mono_ms();
		if (until < wait_ms)
			wait_ms = until > 0 ? (long)until : 0;
	}
	int found = n + nw > 0 || wait_ms > 0 ? poll(p, (nfds_t)(n + nw), (int)wait_ms) : 0;
	if (found > 0)
		watch_seen(m, p + n, nw);
	/* What libcurl is to act on, taken first: acting on one socket may
	 * close others, and on_socket then moves entries of m->socks. */
	int nready = 0;
	for (int i = 0; found > 0 && i < n; i++) {
		short r = p[i].revents;
		if (!r)
			continue;
		m->ready[nready].fd = p[i].fd;
		m->ready[nready++].bits =
			((r & POLLIN) ? CURL_CSELECT_IN : 0) |
			((r & POLLOUT) ? CURL_CSELECT_OUT : 0) |
			((r & (POLLERR | POLLHUP | POLLNVAL)) ? CURL_CSELECT_ERR : 0);
	}
	/* A stall most likely lands in the wait: transfers past their
	 * deadline are failed before libcurl sends anything more. */
	if (wait_ms > 0)
		expire_overdue(m);
	for (int i = 0; i < nready; i++)
		curl_multi_socket_action(m->multi, m->ready[i].fd, m->ready[i].bits, &m->running);
	if (m->timer_due >= 0 && m->timer_due <= pp_mono_ms())
		curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &m->running);
}

int pp_http_multi_run(struct pp_http_multi *m, long timeout_ms)
{
	if (!m->multi)
		return 0; /* nothing was ever added */
	int ended = expire_overdue(m);
	multi_drive(m, 0);
	/* Answers that were already in when it started go back to the
	 * caller at once, without waiting on the others: their next requests
	 * are the caller's to send. Waiting cost each Modal call at +20 ms
	 * 5 ms on average, until frames of some other call on the shared
	 * connection arrived (docs/performance.md, step 32). */
	ended += multi_reap(m);
	if (m->pending > 0 && timeout_ms > 0 && !ended) {
		multi_drive(m, timeout_ms);
		multi_reap(m);
	}
	return m->pending;
}

int pp_http_multi_pending(const struct pp_http_multi *m)
{
	return m->pending;
}

void pp_http_multi_watch(struct pp_http_multi *m, int slot, int fd)
{
	m->watch_fd[slot] = fd;
	m->watch_ready = false;
}

bool pp_http_multi_watch_ready(const struct pp_http_multi *m)
{
	return m->watch_ready;
}

int pp_http_multi_abandon(struct pp_http_multi *m, const void *ud)
{
	int stopped = 0;
	for (struct xfer *x = m->live, *next; x; x = next) {
		next = x->next;
		if (x->ud != ud)
			continue;
		detach(m, x);
		xfer_free(x);
		stopped++;
	}
	return stopped;
}

void pp_http_multi_free(struct pp_http_multi *m)
{
	if (!m)
		return;
	/* Abandoned transfers are released without calling back. */
	while (m->live) {
		struct xfer *x = m->live;
		curl_multi_remove_handle(m->multi, x->easy);
		live_unlink(m, x);
		x->multi = NULL;
		xfer_free(x);
	}
	while (m->nspare)
		curl_easy_cleanup(m->spare[--m->nspare]);
	if (m->multi)
		curl_multi_cleanup(m->multi);
	/* After every handle that used it. */
	curl_share_cleanup(m->tls_sessions);
	free(m->socks);
	free(m->ready);
	free(m);
}

int pp_url_encode(struct pp_buf *out, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
		if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
		    (keep_slash && *p == '/')) {
			rc = pp_buf_putc(out, (char)*p);
		} else {
			char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			rc = pp_buf_append(out, e, 3);
		}
	}
	return rc;
}
