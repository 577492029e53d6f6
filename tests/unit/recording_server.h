/* Shared by the credential tests: a libmicrohttpd server on a free loopback
 * port that answers through a per-test handler and records every request
 * (method, path, query, Authorization, one chosen header, body). Included,
 * not linked: each test binary is one translation unit. */
#ifndef PP_TEST_RECORDING_SERVER_H
#define PP_TEST_RECORDING_SERVER_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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
	struct MHD_Daemon *d;
	char base[80];
	char host[64];
	pthread_mutex_t mu;
	struct rec reqs[MAX_REQS];
	int n;
	handler_fn fn;
	const char *meta_header;  /* request header recorded in rec.meta, or NULL */
	const char *reply_header; /* "Name: value" added to every answer, or NULL */
};
struct upload {
	char *data;
	size_t len;
};

static inline enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *k,
				      const char *v)
{
	(void)kind;
	struct rec *r = cls;
	size_t n = strlen(r->query);
	snprintf(r->query + n, sizeof(r->query) - n, "%s%s=%s", n ? "&" : "", k, v ? v : "");
	return MHD_YES;
}

static inline enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
					 const char *method, const char *version, const char *data,
					 size_t *size, void **ctx)
{
	(void)version;
	struct srv *s = cls;
	struct upload *u = *ctx;
	if (!u) {
		*ctx = calloc(1, sizeof(*u));
		return MHD_YES;
	}
	if (*size) {
		u->data = realloc(u->data, u->len + *size + 1);
		memcpy(u->data + u->len, data, *size);
		u->len += *size;
		u->data[u->len] = '\0';
		*size = 0;
		return MHD_YES;
	}
	struct rec r;
	memset(&r, 0, sizeof(r));
	snprintf(r.method, sizeof(r.method), "%s", method);
	snprintf(r.path, sizeof(r.path), "%s", url);
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_arg, &r);
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	snprintf(r.auth, sizeof(r.auth), "%s", h ? h : "");
	h = s->meta_header ? MHD_lookup_connection_value(c, MHD_HEADER_KIND, s->meta_header) : NULL;
	snprintf(r.meta, sizeof(r.meta), "%s", h ? h : "");
	r.body = strdup(u->data ? u->data : "");
	char out[4096] = "";
	pthread_mutex_lock(&s->mu);
	int status = s->fn(s, &r, out, sizeof(out));
	if (s->n < MAX_REQS)
		s->reqs[s->n++] = r;
	else
		free(r.body);
	pthread_mutex_unlock(&s->mu);
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(strlen(out), out, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(resp, "Content-Type",
				out[0] == '{' ? "application/json" : "text/plain");
	if (s->reply_header) {
		char name[64];
		const char *colon = strchr(s->reply_header, ':');
		snprintf(name, sizeof(name), "%.*s", (int)(colon - s->reply_header),
			 s->reply_header);
		MHD_add_response_header(resp, name, colon + 2);
	}
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static inline void on_done(void *cls, struct MHD_Connection *c, void **ctx,
			   enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	struct upload *u = *ctx;
	if (u)
		free(u->data);
	free(u);
	*ctx = NULL;
}

static inline void srv_start_with(struct srv *s, handler_fn fn, const char *meta_header,
				  const char *reply_header)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	s->fn = fn;
	s->meta_header = meta_header;
	s->reply_header = reply_header;
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_request, s,
				MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
	assert_non_null(s->d);
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	snprintf(s->host, sizeof(s->host), "127.0.0.1:%u", i->port);
	snprintf(s->base, sizeof(s->base), "http://%s", s->host);
}

static inline void srv_stop(struct srv *s)
{
	MHD_stop_daemon(s->d);
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

#endif
