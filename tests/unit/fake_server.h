/* A scripted HTTP server for unit tests: libmicrohttpd on 127.0.0.1, an
 * ephemeral port and its own thread. Each request is recorded and answered
 * by the test's handler. Included by one test file each (static). */
#ifndef PP_TEST_FAKE_SERVER_H
#define PP_TEST_FAKE_SERVER_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FS_MAX_REQUESTS 256
#define FS_MAX_BODY	65536

struct fs_request {
	char method[8];
	char url[512];	  /* path and query */
	char target[128]; /* X-Amz-Target, when present */
	char auth[512];	  /* Authorization, when present */
	char *body;
	size_t body_len;
	long long at_ms; /* CLOCK_MONOTONIC arrival time */
};

struct fs_response {
	int status;
	char body[8192];
	char retry_after[32]; /* Retry-After header value, when set */
	char extra_name[64], extra_value[128];
};

typedef void (*fs_handler)(const struct fs_request *req, struct fs_response *resp, void *ud);

struct fake_server {
	struct MHD_Daemon *d;
	unsigned short port;
	char base[64];
	fs_handler handler;
	void *ud;
	pthread_mutex_t lock;
	struct fs_request log[FS_MAX_REQUESTS];
	int count;
};

struct fs_conn {
	char *body;
	size_t len;
};

static inline long long fs_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline enum MHD_Result fs_answer(void *cls, struct MHD_Connection *c, const char *url,
					const char *method, const char *version, const char *upload,
					size_t *upload_size, void **con_cls)
{
	struct fake_server *s = cls;
	struct fs_conn *fc = *con_cls;
	(void)version;
	if (!fc) {
		fc = calloc(1, sizeof(*fc));
		*con_cls = fc;
		return MHD_YES;
	}
	if (*upload_size) {
		if (fc->len + *upload_size <= FS_MAX_BODY) {
			fc->body = realloc(fc->body, fc->len + *upload_size + 1);
			memcpy(fc->body + fc->len, upload, *upload_size);
			fc->len += *upload_size;
			fc->body[fc->len] = '\0';
		}
		*upload_size = 0;
		return MHD_YES;
	}
	struct fs_request rq;
	memset(&rq, 0, sizeof(rq));
	snprintf(rq.method, sizeof(rq.method), "%s", method);
	const char *q = NULL;
	/* Rebuild the query string the handler may want to see (jobId=...). */
	q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "jobId");
	if (q)
		snprintf(rq.url, sizeof(rq.url), "%s?jobId=%s", url, q);
	else
		snprintf(rq.url, sizeof(rq.url), "%s", url);
	const char *t = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Amz-Target");
	snprintf(rq.target, sizeof(rq.target), "%s", t ? t : "");
	const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	snprintf(rq.auth, sizeof(rq.auth), "%s", a ? a : "");
	rq.body = fc->body ? strdup(fc->body) : strdup("");
	rq.body_len = fc->len;
	rq.at_ms = fs_now_ms();

	struct fs_response rs;
	memset(&rs, 0, sizeof(rs));
	rs.status = 200;
	pthread_mutex_lock(&s->lock);
	s->handler(&rq, &rs, s->ud);
	if (s->count < FS_MAX_REQUESTS)
		s->log[s->count++] = rq;
	else
		free(rq.body);
	pthread_mutex_unlock(&s->lock);

	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(rs.body), rs.body, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", "application/json");
	if (rs.retry_after[0])
		MHD_add_response_header(r, "Retry-After", rs.retry_after);
	if (rs.extra_name[0])
		MHD_add_response_header(r, rs.extra_name, rs.extra_value);
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)rs.status, r);
	MHD_destroy_response(r);
	return ret;
}

static inline void fs_completed(void *cls, struct MHD_Connection *c, void **con_cls,
				enum MHD_RequestTerminationCode toe)
{
	struct fs_conn *fc = *con_cls;
	(void)cls;
	(void)c;
	(void)toe;
	if (fc) {
		free(fc->body);
		free(fc);
	}
	*con_cls = NULL;
}

static inline int fs_start(struct fake_server *s, fs_handler handler, void *ud)
{
	memset(s, 0, sizeof(*s));
	s->handler = handler;
	s->ud = ud;
	pthread_mutex_init(&s->lock, NULL);
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
				fs_answer, s, MHD_OPTION_NOTIFY_COMPLETED, fs_completed, NULL,
				MHD_OPTION_END);
	if (!s->d)
		return -1;
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : 0;
	snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%u", s->port);
	return s->port ? 0 : -1;
}

static inline void fs_stop(struct fake_server *s)
{
	if (s->d)
		MHD_stop_daemon(s->d);
	for (int i = 0; i < s->count; i++)
		free(s->log[i].body);
	pthread_mutex_destroy(&s->lock);
	s->d = NULL;
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

#endif
