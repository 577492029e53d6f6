/* The unit tests' one fake HTTP server: libmicrohttpd on 127.0.0.1, an
 * ephemeral port, a thread per connection. Every request is captured whole
 * (method, path as sent and decoded, decoded query, every header, body up
 * to HS_MAX_BODY) and
 * answered by the test's handler; the server keeps a log of what it got.
 * Header-only (static inline): each test binary is one translation unit.
 *
 * Tests use the server directly (hs_start with an hs_handler), or through
 * one of two views, so they keep the handler shape they were written with;
 * a test asks for a view by defining its macro before the include:
 *   - HS_FAKE_SERVER_VIEW: struct fake_server / fs_*; the handler fills a
 *     struct fs_response (status, body, Retry-After, one extra header); the
 *     log is counted by X-Amz-Target (provider and op driver tests);
 *   - HS_RECORDING_VIEW: struct srv / srv_*; the handler writes the body and
 *     returns the status; records carry Authorization and one chosen header
 *     (credential tests). */
#ifndef PP_TEST_HTTP_SERVER_H
#define PP_TEST_HTTP_SERVER_H

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HS_MAX_BODY	((size_t)1 << 20)
#define HS_MAX_HEADERS	32
#define HS_MAX_REQUESTS 256

/* One request as the server received it. Pointers live as long as the
 * request is being answered. */
struct hs_request {
	const char *method;
	const char *path;    /* decoded */
	const char *raw_uri; /* as sent: still percent-encoded, query included */
	const char *query;   /* decoded arguments joined as k=v&k=v, "" when none */
	const char *names[HS_MAX_HEADERS];
	const char *values[HS_MAX_HEADERS];
	int nheaders;
	const char *body; /* NUL-terminated */
	size_t body_len;
	long long at_ms; /* CLOCK_MONOTONIC arrival time */
};

#define HS_RESP_HEADERS 4

struct hs_response {
	int status;
	char content_type[64];
	char body[16384];
	size_t body_len; /* 0: body is text, up to its NUL */
	char hnames[HS_RESP_HEADERS][64];
	char hvalues[HS_RESP_HEADERS][256];
	int nheaders;
};

struct hs_server;
typedef void (*hs_handler)(struct hs_server *s, const struct hs_request *rq,
			   struct hs_response *rs);

struct hs_server {
	struct MHD_Daemon *d;
	unsigned short port;
	char host[64]; /* "127.0.0.1:PORT" */
	char base[80]; /* "http://127.0.0.1:PORT" */
	hs_handler handler;
	void *view;	 /* the fake_server or srv this server serves */
	int connections; /* TCP connections accepted so far (atomic) */
};

static inline long long hs_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline const char *hs_header(const struct hs_request *rq, const char *name)
{
	for (int i = 0; i < rq->nheaders; i++)
		if (!strcasecmp(rq->names[i], name))
			return rq->values[i];
	return NULL;
}

/* name may be n bytes of a longer string (n < 0: all of it). */
static inline void hs_add_headern(struct hs_response *rs, const char *name, int n,
				  const char *value)
{
	if (rs->nheaders < HS_RESP_HEADERS) {
		snprintf(rs->hnames[rs->nheaders], sizeof(rs->hnames[0]), "%.*s",
			 n < 0 ? (int)strlen(name) : n, name);
		snprintf(rs->hvalues[rs->nheaders++], sizeof(rs->hvalues[0]), "%s", value);
	}
}

static inline void hs_add_header(struct hs_response *rs, const char *name, const char *value)
{
	hs_add_headern(rs, name, -1, value);
}

/* Per-request state, made by the URI logger (the first callback, which
 * alone sees the URI as sent): the body so far (capped) and the texts. */
struct hs_conn {
	char *raw_uri;
	bool headers_seen;
	char *body;
	size_t len;
	bool too_big;
	struct hs_request rq;
	char query[4096];
};

static inline void *hs_log_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct hs_conn *hc = calloc(1, sizeof(*hc));
	(void)cls;
	(void)c;
	if (hc && !(hc->raw_uri = strdup(uri ? uri : "/"))) {
		free(hc);
		hc = NULL;
	}
	return hc;
}

static inline enum MHD_Result hs_take_header(void *cls, enum MHD_ValueKind kind, const char *k,
					     const char *v)
{
	struct hs_request *rq = cls;
	(void)kind;
	if (rq->nheaders < HS_MAX_HEADERS) {
		rq->names[rq->nheaders] = k;
		rq->values[rq->nheaders++] = v ? v : "";
	}
	return MHD_YES;
}

static inline enum MHD_Result hs_take_arg(void *cls, enum MHD_ValueKind kind, const char *k,
					  const char *v)
{
	struct hs_conn *hc = cls;
	size_t n = strlen(hc->query);
	(void)kind;
	snprintf(hc->query + n, sizeof(hc->query) - n, "%s%s=%s", n ? "&" : "", k, v ? v : "");
	return MHD_YES;
}

static inline enum MHD_Result hs_answer(void *cls, struct MHD_Connection *c, const char *url,
					const char *method, const char *version, const char *upload,
					size_t *upload_size, void **con_cls)
{
	struct hs_server *s = cls;
	struct hs_conn *hc = *con_cls;
	struct hs_response rs;
	struct MHD_Response *r;
	enum MHD_Result ret;
	(void)version;

	if (!hc)
		return MHD_NO;
	if (!hc->headers_seen) {
		hc->headers_seen = true;
		return MHD_YES;
	}
	if (*upload_size) {
		if (hc->len + *upload_size > HS_MAX_BODY) {
			hc->too_big = true;
		} else if (!hc->too_big) {
			char *grown = realloc(hc->body, hc->len + *upload_size + 1);
			if (!grown)
				return MHD_NO;
			hc->body = grown;
			memcpy(hc->body + hc->len, upload, *upload_size);
			hc->len += *upload_size;
			hc->body[hc->len] = '\0';
		}
		*upload_size = 0;
		return MHD_YES;
	}
	memset(&rs, 0, sizeof(rs));
	if (hc->too_big) {
		rs.status = 413;
		snprintf(rs.body, sizeof(rs.body), "request body over %zu bytes", HS_MAX_BODY);
	} else {
		hc->rq.method = method;
		hc->rq.path = url;
		hc->rq.raw_uri = hc->raw_uri;
		MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, hs_take_arg, hc);
		hc->rq.query = hc->query;
		MHD_get_connection_values(c, MHD_HEADER_KIND, hs_take_header, &hc->rq);
		hc->rq.body = hc->body ? hc->body : "";
		hc->rq.body_len = hc->len;
		hc->rq.at_ms = hs_now_ms();
		rs.status = 200;
		s->handler(s, &hc->rq, &rs);
	}
	r = MHD_create_response_from_buffer(rs.body_len ? rs.body_len : strlen(rs.body), rs.body,
					    MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type",
				rs.content_type[0]			 ? rs.content_type
				: rs.body[0] == '{' || rs.body[0] == '[' ? "application/json"
									 : "text/plain");
	for (int i = 0; i < rs.nheaders; i++)
		MHD_add_response_header(r, rs.hnames[i], rs.hvalues[i]);
	ret = MHD_queue_response(c, (unsigned)rs.status, r);
	MHD_destroy_response(r);
	return ret;
}

static inline void hs_completed(void *cls, struct MHD_Connection *c, void **con_cls,
				enum MHD_RequestTerminationCode toe)
{
	struct hs_conn *hc = *con_cls;
	(void)cls;
	(void)c;
	(void)toe;
	if (hc) {
		free(hc->raw_uri);
		free(hc->body);
	}
	free(hc);
	*con_cls = NULL;
}

static inline void hs_connected(void *cls, struct MHD_Connection *c, void **socket_context,
				enum MHD_ConnectionNotificationCode code)
{
	struct hs_server *s = cls;
	(void)c;
	(void)socket_context;
	if (code == MHD_CONNECTION_NOTIFY_STARTED)
		__atomic_add_fetch(&s->connections, 1, __ATOMIC_SEQ_CST);
}

static inline int hs_start(struct hs_server *s, hs_handler handler, void *view)
{
	const union MHD_DaemonInfo *info;
	struct sockaddr_in sa = {.sin_family = AF_INET};

	memset(s, 0, sizeof(*s));
	s->handler = handler;
	s->view = view;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
				NULL, NULL, hs_answer, s, MHD_OPTION_SOCK_ADDR,
				(struct sockaddr *)&sa, MHD_OPTION_URI_LOG_CALLBACK, hs_log_uri,
				NULL, MHD_OPTION_NOTIFY_COMPLETED, hs_completed, NULL,
				MHD_OPTION_NOTIFY_CONNECTION, hs_connected, s, MHD_OPTION_END);
	if (!s->d)
		return -1;
	info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : 0;
	snprintf(s->host, sizeof(s->host), "127.0.0.1:%u", s->port);
	snprintf(s->base, sizeof(s->base), "http://%s", s->host);
	return s->port ? 0 : -1;
}

static inline void hs_stop(struct hs_server *s)
{
	if (s->d)
		MHD_stop_daemon(s->d);
	s->d = NULL;
}

#ifdef HS_FAKE_SERVER_VIEW
/* ---- view: struct fake_server, fs_* ---- */

struct fs_request {
	char method[8];
	char url[512];	  /* path, then ?jobId=... when the request had one */
	char target[128]; /* X-Amz-Target, when present */
	char auth[512];	  /* Authorization, when present */
	char coding[32];  /* Accept-Encoding, when present */
	char *body;
	size_t body_len;
	long long at_ms;
};

struct fs_response {
	int status;
	char body[8192];
	char retry_after[32]; /* Retry-After header value, when set */
	char extra_name[64], extra_value[128];
};

typedef void (*fs_handler)(const struct fs_request *req, struct fs_response *resp, void *ud);

struct fake_server {
	struct hs_server hs;
	char base[80];
	fs_handler handler;
	void *ud;
	pthread_mutex_t lock;
	struct fs_request log[HS_MAX_REQUESTS];
	int count;
};

#define fs_now_ms hs_now_ms

static inline void fs_serve(struct hs_server *hs, const struct hs_request *rq,
			    struct hs_response *rs)
{
	struct fake_server *s = hs->view;
	struct fs_request fr;
	struct fs_response fo;
	const char *job = strstr(rq->query, "jobId=");
	const char *t = hs_header(rq, "X-Amz-Target"), *a = hs_header(rq, "Authorization");
	const char *coding = hs_header(rq, "Accept-Encoding");

	memset(&fr, 0, sizeof(fr));
	memset(&fo, 0, sizeof(fo));
	snprintf(fr.method, sizeof(fr.method), "%s", rq->method);
	/* The Cloud Run tests read jobId from the URL. */
	if (job)
		snprintf(fr.url, sizeof(fr.url), "%s?jobId=%.*s", rq->path,
			 (int)strcspn(job + 6, "&"), job + 6);
	else
		snprintf(fr.url, sizeof(fr.url), "%s", rq->path);
	snprintf(fr.target, sizeof(fr.target), "%s", t ? t : "");
	snprintf(fr.auth, sizeof(fr.auth), "%s", a ? a : "");
	snprintf(fr.coding, sizeof(fr.coding), "%s", coding ? coding : "");
	fr.body = strdup(rq->body);
	fr.body_len = rq->body_len;
	fr.at_ms = rq->at_ms;
	fo.status = 200;
	pthread_mutex_lock(&s->lock);
	s->handler(&fr, &fo, s->ud);
	if (s->count < HS_MAX_REQUESTS)
		s->log[s->count++] = fr;
	else
		free(fr.body);
	pthread_mutex_unlock(&s->lock);
	rs->status = fo.status;
	snprintf(rs->content_type, sizeof(rs->content_type), "application/json");
	snprintf(rs->body, sizeof(rs->body), "%s", fo.body);
	if (fo.retry_after[0])
		hs_add_header(rs, "Retry-After", fo.retry_after);
	if (fo.extra_name[0])
		hs_add_header(rs, fo.extra_name, fo.extra_value);
}

static inline int fs_start(struct fake_server *s, fs_handler handler, void *ud)
{
	memset(s, 0, sizeof(*s));
	s->handler = handler;
	s->ud = ud;
	pthread_mutex_init(&s->lock, NULL);
	if (hs_start(&s->hs, fs_serve, s))
		return -1;
	snprintf(s->base, sizeof(s->base), "%s", s->hs.base);
	return 0;
}

static inline void fs_stop(struct fake_server *s)
{
	hs_stop(&s->hs);
	for (int i = 0; i < s->count; i++)
		free(s->log[i].body);
	pthread_mutex_destroy(&s->lock);
	s->count = 0;
}

/* Requests whose X-Amz-Target ends with action (or all when NULL). */
static inline int fs_count(struct fake_server *s, const char *action)
{
	int n = 0;
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < s->count; i++) {
		size_t tl = strlen(s->log[i].target), al = action ? strlen(action) : 0;
		if (!action || (tl >= al && !strcmp(s->log[i].target + tl - al, action)))
			n++;
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

#endif /* HS_FAKE_SERVER_VIEW */

#ifdef HS_RECORDING_VIEW
/* ---- view: struct srv, srv_* ---- */

#define MAX_REQS 32
struct rec {
	char method[8];
	char path[256];
	char query[1024];
	char auth[2048];
	char meta[64]; /* the value of the server's meta_header */
	char *body;
};
struct srv;
typedef int (*handler_fn)(struct srv *s, const struct rec *r, char *out, size_t cap);
struct srv {
	struct hs_server hs;
	char base[80];
	char host[64];
	pthread_mutex_t mu;
	struct rec reqs[MAX_REQS];
	int n;
	handler_fn fn;
	const char *meta_header;  /* request header recorded in rec.meta, or NULL */
	const char *reply_header; /* "Name: value" added to every answer, or NULL */
};

static inline void srv_serve(struct hs_server *hs, const struct hs_request *rq,
			     struct hs_response *rs)
{
	struct srv *s = hs->view;
	const char *a = hs_header(rq, "Authorization");
	const char *meta = s->meta_header ? hs_header(rq, s->meta_header) : NULL;
	struct rec r;

	memset(&r, 0, sizeof(r));
	snprintf(r.method, sizeof(r.method), "%s", rq->method);
	snprintf(r.path, sizeof(r.path), "%s", rq->path);
	snprintf(r.query, sizeof(r.query), "%s", rq->query);
	snprintf(r.auth, sizeof(r.auth), "%s", a ? a : "");
	snprintf(r.meta, sizeof(r.meta), "%s", meta ? meta : "");
	r.body = strdup(rq->body);
	pthread_mutex_lock(&s->mu);
	rs->status = s->fn(s, &r, rs->body, 4096);
	if (s->n < MAX_REQS)
		s->reqs[s->n++] = r;
	else
		free(r.body);
	pthread_mutex_unlock(&s->mu);
	if (s->reply_header) { /* "Name: value" */
		const char *colon = strchr(s->reply_header, ':');
		hs_add_headern(rs, s->reply_header, (int)(colon - s->reply_header), colon + 2);
	}
}

static inline void srv_start_with(struct srv *s, handler_fn fn, const char *meta_header,
				  const char *reply_header)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	s->fn = fn;
	s->meta_header = meta_header;
	s->reply_header = reply_header;
	assert_int_equal(hs_start(&s->hs, srv_serve, s), 0);
	snprintf(s->host, sizeof(s->host), "%s", s->hs.host);
	snprintf(s->base, sizeof(s->base), "%s", s->hs.base);
}

static inline void srv_stop(struct srv *s)
{
	hs_stop(&s->hs);
	for (int i = 0; i < s->n; i++)
		free(s->reqs[i].body);
	pthread_mutex_destroy(&s->mu);
}

/* Decoded value of name in an x-www-form-urlencoded body; "" if absent. */
static inline void form_get(const char *body, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name), o = 0;
	const char *p = body;
	out[0] = '\0';
	while (p && *p) {
		if (!strncmp(p, name, nl) && p[nl] == '=') {
			p += nl + 1;
			while (*p && *p != '&' && o + 1 < cap) {
				if (*p == '%' && p[1] && p[2]) {
					char hex[3] = {p[1], p[2], 0};
					out[o++] = (char)strtol(hex, NULL, 16);
					p += 3;
				} else {
					out[o++] = *p == '+' ? ' ' : *p;
					p++;
				}
			}
			out[o] = '\0';
			return;
		}
		p = strchr(p, '&');
		if (p)
			p++;
	}
}

#endif /* HS_RECORDING_VIEW */

#endif
