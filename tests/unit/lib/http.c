/* lib/http.c's connection policy on the multi interface: a non-GET
 * request goes out on a connection of its own (curl would resend it by
 * itself if a reused connection turned out dead) unless it is marked
 * PP_HTTP_RESENDABLE; GETs and resendable requests share kept-alive
 * connections; resendable gRPC calls over h2c are multiplexed on shared
 * HTTP/2 connections. Counted by the fake servers' accepted connections.
 * And libcurl set up by the first request, not before: a multi handle
 * driven while it has nothing to do (a daemon's idle turns). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/grpc.h"
#include "lib/http.h"
#include "tests/unit/http_server.h"

static void ok(struct hs_server *s, const struct hs_request *rq, struct hs_response *rs)
{
	(void)s;
	(void)rq;
	rs->status = 200;
	snprintf(rs->body, sizeof(rs->body), "{}");
}

static void done(void *ud, struct pp_http_req *req, struct pp_http_resp *resp, int rc,
		 const struct pp_error *err)
{
	(void)req;
	(void)err;
	assert_int_equal(rc, 0);
	assert_int_equal(resp->status, 200);
	(*(int *)ud)++;
}

/* One request to base's /thing on m, driven until done() has its answer
 * (200); body and marker (an X-Marker header) when not NULL. */
static void send_one(struct pp_http_multi *m, const char *base, const char *method, unsigned flags,
		     const char *body, const char *marker)
{
	struct pp_http_req req;
	struct pp_http_resp resp;
	struct pp_error err = {0};
	char url[128];
	snprintf(url, sizeof(url), "%s/thing", base);
	pp_http_req_init(&req, method, url);
	req.flags = flags;
	if (body)
		assert_int_equal(pp_http_req_body(&req, body, strlen(body)), 0);
	if (marker)
		assert_int_equal(pp_http_req_set_header(&req, "X-Marker", marker), 0);
	pp_http_resp_init(&resp, 1 << 16);
	int finished = 0;
	assert_int_equal(pp_http_multi_add(m, &req, &resp, done, &finished, &err), 0);
	while (!finished)
		pp_http_multi_run(m, 100);
	pp_http_resp_free(&resp);
	pp_http_req_free(&req);
}

/* n requests one after another on one multi handle (its connection cache
 * is what reuse draws on) to a server answering with handler; returns the
 * connections the server accepted. */
static int connections_to(hs_handler handler, const char *method, unsigned flags, int n)
{
	struct hs_server s;
	assert_int_equal(hs_start(&s, handler, NULL), 0);
	struct pp_http_multi *m = pp_http_multi_new();
	assert_non_null(m);
	for (int i = 0; i < n; i++)
		send_one(m, s.base, method, flags, strcmp(method, "GET") ? "{}" : NULL, NULL);
	pp_http_multi_free(m);
	hs_stop(&s);
	return __atomic_load_n(&s.connections, __ATOMIC_SEQ_CST);
}

static int connections_for(const char *method, unsigned flags, int n)
{
	return connections_to(ok, method, flags, n);
}

/* Runs first: nothing in this process has used libcurl yet. */
static void test_idle_multi_then_first_request(void **state)
{
	(void)state;
	pp_http_multi_free(pp_http_multi_new()); /* never used */
	struct pp_http_multi *m = pp_http_multi_new();
	assert_non_null(m);
	for (int turn = 0; turn < 3; turn++)
		assert_int_equal(pp_http_multi_run(m, 10), 0);
	assert_int_equal(pp_http_multi_pending(m), 0);
	pp_http_multi_free(m);
	assert_int_equal(connections_for("GET", 0, 2), 1);
}

static void test_creates_get_their_own_connection(void **state)
{
	(void)state;
	assert_int_equal(connections_for("POST", 0, 3), 3);
	assert_int_equal(connections_for("PUT", 0, 3), 3);
}

/* What the server got of each request, for test_a_handle_carries_nothing_
 * of_its_last_request. */
static struct seen_request {
	char method[16];
	char body[64];
	char marker[32]; /* X-Marker, "" when not sent */
} seen[8];
static int nseen;

static void record(struct hs_server *s, const struct hs_request *rq, struct hs_response *rs)
{
	(void)s;
	if (nseen < (int)(sizeof(seen) / sizeof(seen[0]))) {
		struct seen_request *r = &seen[nseen++];
		const char *marker = hs_header(rq, "X-Marker");
		snprintf(r->method, sizeof(r->method), "%s", rq->method);
		snprintf(r->body, sizeof(r->body), "%.*s", (int)rq->body_len, rq->body);
		snprintf(r->marker, sizeof(r->marker), "%s", marker ? marker : "");
	}
	rs->status = 200;
	snprintf(rs->body, sizeof(rs->body), "{}");
}

/* Requests one after another on one multi take over the easy handle the
 * last one left, options and all (libcurl's defaults are not restored
 * between them: issue 23): each must go as it was asked, whatever its
 * handle sent before. */
static void test_a_handle_carries_nothing_of_its_last_request(void **state)
{
	(void)state;
	static const struct {
		const char *method, *body, *marker;
		unsigned flags;
	} reqs[] = {
		{"HEAD", NULL, NULL, 0}, {"POST", "{\"a\":1}", "post", 0},
		{"GET", NULL, NULL, 0},	 {"DELETE", NULL, "delete", PP_HTTP_RESENDABLE},
		{"HEAD", NULL, NULL, 0}, {"PUT", "{\"b\":2}", NULL, PP_HTTP_RESENDABLE},
		{"GET", NULL, "get", 0},
	};
	int n = (int)(sizeof(reqs) / sizeof(reqs[0]));
	struct hs_server s;
	nseen = 0;
	assert_int_equal(hs_start(&s, record, NULL), 0);
	struct pp_http_multi *m = pp_http_multi_new();
	assert_non_null(m);
	for (int i = 0; i < n; i++)
		send_one(m, s.base, reqs[i].method, reqs[i].flags, reqs[i].body, reqs[i].marker);
	pp_http_multi_free(m);
	hs_stop(&s);
	assert_int_equal(nseen, n);
	for (int i = 0; i < n; i++) {
		assert_string_equal(seen[i].method, reqs[i].method);
		assert_string_equal(seen[i].body, reqs[i].body ? reqs[i].body : "");
		assert_string_equal(seen[i].marker, reqs[i].marker ? reqs[i].marker : "");
	}
}

static void test_resendable_and_reads_reuse(void **state)
{
	(void)state;
	assert_int_equal(connections_for("GET", 0, 3), 1);
	assert_int_equal(connections_for("POST", PP_HTTP_RESENDABLE, 3), 1);
	assert_int_equal(connections_for("DELETE", PP_HTTP_RESENDABLE, 3), 1);
}

/* ---- an h2c gRPC server: answers every call with an empty message and
 * grpc-status 0, a thread per connection, counting connections ---- */

struct h2c_server {
	int listen_fd;
	int port;
	pthread_t acceptor;
	int connections; /* accepted so far (atomic) */
	int live;	 /* connection threads still running (atomic) */
	int calls;	 /* answered (atomic) */
	/* hold: calls are held, not answered; each `release` (atomic) lets
	 * one held call be answered, counted in `answered` (atomic) once its
	 * answer is sent. `received` counts calls read (atomic). */
	bool hold;
	int release, answered, received;
	int coded; /* calls that asked for an HTTP content coding (atomic) */
};

static const uint8_t empty_message[5] = {0};

#define H2C_HELD_MAX 16
struct h2c_conn {
	struct h2c_server *srv;
	int fd;
	int32_t held[H2C_HELD_MAX];
	int nheld;
};

static ssize_t h2c_send(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
			void *ud)
{
	ssize_t n = send(((struct h2c_conn *)ud)->fd, data, length, MSG_NOSIGNAL);
	return n < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : n;
}

static ssize_t h2c_read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
			     size_t length, uint32_t *data_flags, nghttp2_data_source *source,
			     void *ud)
{
	static const nghttp2_nv trailer = {(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1,
					   NGHTTP2_NV_FLAG_NONE};
	memcpy(buf, empty_message, sizeof(empty_message));
	*data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
	if (nghttp2_submit_trailer(session, stream_id, &trailer, 1))
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return sizeof(empty_message);
}

static int h2c_answer(nghttp2_session *session, int32_t stream_id)
{
	static const nghttp2_nv hdrs[] = {
		{(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
		{(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
		 NGHTTP2_NV_FLAG_NONE},
	};
	nghttp2_data_provider body = {.read_callback = h2c_read_body};
	return nghttp2_submit_response(session, stream_id, hdrs, 2, &body);
}

static int h2c_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
	struct h2c_conn *c = ud;
	if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	__atomic_add_fetch(&c->srv->received, 1, __ATOMIC_SEQ_CST);
	if (c->srv->hold) {
		assert_true(c->nheld < H2C_HELD_MAX);
		c->held[c->nheld++] = frame->hd.stream_id;
		return 0;
	}
	return h2c_answer(session, frame->hd.stream_id) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

/* hold: answers the first held call if a release is owed, and sends it at
 * once; false when the connection failed. */
static bool h2c_release_one(nghttp2_session *session, struct h2c_conn *c)
{
	struct h2c_server *s = c->srv;
	if (!c->nheld || __atomic_load_n(&s->release, __ATOMIC_SEQ_CST) <=
				 __atomic_load_n(&s->answered, __ATOMIC_SEQ_CST))
		return true;
	int32_t id = c->held[0];
	memmove(c->held, c->held + 1, (size_t)--c->nheld * sizeof(c->held[0]));
	if (h2c_answer(session, id) || nghttp2_session_send(session))
		return false;
	__atomic_add_fetch(&s->answered, 1, __ATOMIC_SEQ_CST);
	return true;
}

static int h2c_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
		      size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		      void *ud)
{
	static const char coding[] = "accept-encoding";
	if (namelen == sizeof(coding) - 1 && !memcmp(name, coding, namelen))
		__atomic_add_fetch(&((struct h2c_conn *)ud)->srv->coded, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static int h2c_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
			    void *ud)
{
	struct h2c_conn *c = ud;
	if (error_code == NGHTTP2_NO_ERROR)
		__atomic_add_fetch(&c->srv->calls, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static void *h2c_conn_main(void *arg)
{
	struct h2c_conn *c = arg;
	nghttp2_session_callbacks *cbs;
	nghttp2_session *session;
	uint8_t buf[16384];
	assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
	nghttp2_session_callbacks_set_send_callback(cbs, h2c_send);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, h2c_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2c_stream_close);
	nghttp2_session_callbacks_set_on_header_callback(cbs, h2c_header);
	assert_int_equal(nghttp2_session_server_new(&session, cbs, c), 0);
	nghttp2_session_callbacks_del(cbs);
	nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100};
	nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, &iv, 1);
	while (nghttp2_session_send(session) == 0 &&
	       (nghttp2_session_want_read(session) || nghttp2_session_want_write(session))) {
		if (c->srv->hold) {
			/* Looks for a release every millisecond while waiting. */
			struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
			int ready = poll(&pfd, 1, 1);
			if (!h2c_release_one(session, c) || ready < 0)
				break;
			if (ready == 0)
				continue;
		}
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
		if (n <= 0 || nghttp2_session_mem_recv(session, buf, (size_t)n) < 0)
			break;
	}
	nghttp2_session_del(session);
	close(c->fd);
	__atomic_sub_fetch(&c->srv->live, 1, __ATOMIC_SEQ_CST);
	free(c);
	return NULL;
}

static void *h2c_accept_main(void *arg)
{
	struct h2c_server *s = arg;
	for (;;) {
		int fd = accept(s->listen_fd, NULL, NULL);
		if (fd < 0)
			return NULL;
		__atomic_add_fetch(&s->connections, 1, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&s->live, 1, __ATOMIC_SEQ_CST);
		struct h2c_conn *c = calloc(1, sizeof(*c));
		assert_non_null(c);
		c->srv = s;
		c->fd = fd;
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, h2c_conn_main, c), 0);
		pthread_detach(t);
	}
}

static void h2c_start(struct h2c_server *s)
{
	memset(s, 0, sizeof(*s));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->listen_fd >= 0);
	assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->listen_fd, 64), 0);
	assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&a, &len), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->acceptor, NULL, h2c_accept_main, s), 0);
}

/* Until the server's counter *v is want, at most 10 s: the server's
 * progress, not a time, is what it waits for. With m, drives it meanwhile
 * without waiting. */
static bool wait_value(int *v, int want, struct pp_http_multi *m)
{
	for (int i = 0; i < 10000 && __atomic_load_n(v, __ATOMIC_SEQ_CST) != want; i++) {
		if (m)
			pp_http_multi_run(m, 0);
		usleep(1000);
	}
	return __atomic_load_n(v, __ATOMIC_SEQ_CST) == want;
}

/* After the clients closed their connections: their threads end on it,
 * and must be gone before the server (on the test's stack) is. */
static void h2c_stop(struct h2c_server *s)
{
	shutdown(s->listen_fd, SHUT_RDWR);
	close(s->listen_fd);
	pthread_join(s->acceptor, NULL);
	assert_true(wait_value(&s->live, 0, NULL));
}

static void grpc_done(void *ud, struct pp_http_req *req, struct pp_http_resp *resp, int rc,
		      const struct pp_error *err)
{
	const uint8_t *msg;
	size_t len;
	struct pp_error e = {0};
	assert_int_equal(rc, 0);
	assert_int_equal(pp_grpc_result(resp, "call", NULL, &msg, &len, NULL, &e), 0);
	(*(int *)ud)++;
}

/* One gRPC call on m with the given flags; grpc_done counts it in
 * *finished. Its timeout outlasts any wait of these tests. */
static void add_call(struct pp_http_multi *m, const char *base, unsigned flags, struct pp_buf *msg,
		     struct pp_http_req *req, struct pp_http_resp *resp, int *finished)
{
	struct pp_error err = {0};
	assert_int_equal(pp_grpc_request(req, base, "test.Svc/Call", msg, 60000, &err), 0);
	req->flags |= flags;
	pp_http_resp_init(resp, 0);
	assert_int_equal(pp_http_multi_add(m, req, resp, grpc_done, finished, &err), 0);
}

/* n gRPC calls to an h2c server, at most `wide` under way at a time, on
 * one multi handle; returns the connections the server accepted, and in
 * *coded (when not NULL) the calls that asked for an HTTP content coding. */
static int h2c_connections_for(unsigned flags, int n, int wide, int *coded)
{
	struct h2c_server s;
	h2c_start(&s);
	char base[64];
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", s.port);
	struct pp_http_multi *m = pp_http_multi_new();
	assert_non_null(m);
	struct pp_http_req *reqs = calloc((size_t)n, sizeof(*reqs));
	struct pp_http_resp *resps = calloc((size_t)n, sizeof(*resps));
	assert_non_null(reqs);
	assert_non_null(resps);
	struct pp_buf msg;
	pp_buf_init(&msg, 16);
	int started = 0, finished = 0;
	while (finished < n) {
		for (; started < n && started - finished < wide; started++)
			add_call(m, base, flags, &msg, &reqs[started], &resps[started], &finished);
		pp_http_multi_run(m, 100);
	}
	for (int i = 0; i < n; i++) {
		pp_http_req_free(&reqs[i]);
		pp_http_resp_free(&resps[i]);
	}
	free(reqs);
	free(resps);
	pp_http_multi_free(m);
	h2c_stop(&s);
	assert_int_equal(__atomic_load_n(&s.calls, __ATOMIC_SEQ_CST), n);
	if (coded)
		*coded = __atomic_load_n(&s.coded, __ATOMIC_SEQ_CST);
	return __atomic_load_n(&s.connections, __ATOMIC_SEQ_CST);
}

static void test_grpc_calls_share_h2c_connections(void **state)
{
	(void)state;
	/* One after another: every call after the first joins its connection
	 * (libcurl 7.88 would break a reused prior-knowledge connection). */
	assert_int_equal(h2c_connections_for(PP_HTTP_RESENDABLE, 10, 1, NULL), 1);
	/* 60 calls, 12 at a time: the first calls find no connection, one
	 * opens it and the others wait for it or join it; a joiner that lands
	 * on it before it is HTTP/2 may open another. */
	int wide = h2c_connections_for(PP_HTTP_RESENDABLE, 60, 12, NULL);
	assert_in_range(wide, 1, 3);
	print_message("60 multiplexed calls, 12 at a time: %d connection(s)\n", wide);
}

/* A JSON request on the handle gRPC calls left (a joiner's refused
 * sockets, its HTTP/2 without prior knowledge) goes as plain HTTP/1.1
 * on a connection of its own choosing. */
static void test_a_json_request_after_grpc_calls_on_their_handle(void **state)
{
	(void)state;
	struct h2c_server g;
	h2c_start(&g);
	struct hs_server s;
	nseen = 0;
	assert_int_equal(hs_start(&s, record, NULL), 0);
	char base[64];
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", g.port);
	struct pp_http_multi *m = pp_http_multi_new();
	assert_non_null(m);
	struct pp_buf msg;
	pp_buf_init(&msg, 16);
	for (int i = 0; i < 2; i++) {
		struct pp_http_req req;
		struct pp_http_resp resp;
		int finished = 0;
		add_call(m, base, PP_HTTP_RESENDABLE, &msg, &req, &resp, &finished);
		while (!finished)
			pp_http_multi_run(m, 100);
		pp_http_resp_free(&resp);
		pp_http_req_free(&req);
	}
	assert_int_equal(g.connections, 1); /* the second call joined the first's */
	send_one(m, s.base, "GET", 0, NULL, NULL);
	assert_int_equal(nseen, 1);
	assert_string_equal(seen[0].method, "GET");
	pp_buf_free(&msg);
	pp_http_multi_free(m);
	hs_stop(&s);
	h2c_stop(&g);
}

static void test_grpc_calls_not_resendable_get_their_own_connection(void **state)
{
	(void)state;
	assert_int_equal(h2c_connections_for(0, 5, 1, NULL), 5);
	assert_int_equal(h2c_connections_for(0, 12, 4, NULL), 12);
}

/* One request on a multi handle, as the dispatcher sends them, to a server
 * answering with handler: a "{}" body unless a GET, the User-Agent
 * user_agent when not NULL. The answer is left in resp (the caller frees
 * it). */
static void request_to(hs_handler handler, const char *method, const char *user_agent,
		       struct pp_http_resp *resp)
{
	struct hs_server s;
	assert_int_equal(hs_start(&s, handler, NULL), 0);
	char url[128];
	snprintf(url, sizeof(url), "%s/thing", s.base);
	struct pp_http_req req;
	struct pp_error err = {0};
	pp_http_req_init(&req, method, url);
	if (strcmp(method, "GET"))
		assert_int_equal(pp_http_req_body(&req, "{}", 2), 0);
	if (user_agent)
		assert_int_equal(pp_http_req_set_header(&req, "User-Agent", user_agent), 0);
	pp_http_resp_init(resp, 1 << 16);
	struct pp_http_multi *m = pp_http_multi_new();
	int finished = 0;
	assert_int_equal(pp_http_multi_add(m, &req, resp, done, &finished, &err), 0);
	while (!finished)
		pp_http_multi_run(m, 100);
	pp_http_multi_free(m);
	pp_http_req_free(&req);
	hs_stop(&s);
}

static int coded_requests; /* JSON requests with Accept-Encoding (atomic) */
static char codings[64];   /* the last one's value */

/* {"coded":"gzip","n":[1,2,3]} as gzip (mtime 0), which a server that
 * honours Accept-Encoding: gzip sends; printf the bytes into gzip -dc to
 * read them. */
static const unsigned char gzipped_json[] = {
	0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xab, 0x56,
	0x4a, 0xce, 0x4f, 0x49, 0x4d, 0x51, 0xb2, 0x52, 0x4a, 0xaf, 0xca, 0x2c,
	0x50, 0xd2, 0x51, 0xca, 0x53, 0xb2, 0x8a, 0x36, 0xd4, 0x31, 0xd2, 0x31,
	0x8e, 0xad, 0x05, 0x00, 0x27, 0x0b, 0x75, 0xb0, 0x1c, 0x00, 0x00, 0x00};

/* Answers in gzip when the request accepts it, else in plain JSON. */
static void ok_noting_coding(struct hs_server *s, const struct hs_request *rq,
			     struct hs_response *rs)
{
	for (int i = 0; i < rq->nheaders; i++)
		if (!strcasecmp(rq->names[i], "Accept-Encoding")) {
			__atomic_add_fetch(&coded_requests, 1, __ATOMIC_SEQ_CST);
			snprintf(codings, sizeof(codings), "%s", rq->values[i]);
		}
	ok(s, rq, rs);
	if (!strcmp(codings, "gzip")) {
		memcpy(rs->body, gzipped_json, sizeof(gzipped_json));
		rs->body_len = sizeof(gzipped_json);
		snprintf(rs->content_type, sizeof(rs->content_type), "application/json");
		hs_add_header(rs, "Content-Encoding", "gzip");
	}
}

/* gRPC compresses message by message (grpc-encoding): its calls ask for
 * no HTTP content coding, which only cost each one a header and a
 * decoder. JSON requests ask for gzip by name (a list libcurl would build
 * afresh for each request cost more than the rest of its header lines),
 * and read a gzip answer decoded; those flagged PP_HTTP_SMALL_ANSWER ask
 * for none. */
static void test_only_json_requests_ask_for_content_codings(void **state)
{
	(void)state;
	int coded = -1;
	assert_int_equal(h2c_connections_for(PP_HTTP_RESENDABLE, 3, 1, &coded), 1);
	assert_int_equal(coded, 0);
	assert_int_equal(connections_to(ok_noting_coding, "GET", 0, 1), 1);
	assert_int_equal(__atomic_load_n(&coded_requests, __ATOMIC_SEQ_CST), 1);
	assert_string_equal(codings, "gzip");

	struct pp_http_resp resp;
	request_to(ok_noting_coding, "POST", NULL, &resp);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body.data, "{\"coded\":\"gzip\",\"n\":[1,2,3]}");
	pp_http_resp_free(&resp);

	/* A request for one small resource asks for none, and the handle it
	 * leaves asks again for the next request that wants gzip. */
	struct hs_server s;
	assert_int_equal(hs_start(&s, ok_noting_coding, NULL), 0);
	struct pp_http_multi *m = pp_http_multi_new();
	assert_non_null(m);
	int before = __atomic_load_n(&coded_requests, __ATOMIC_SEQ_CST);
	send_one(m, s.base, "POST", PP_HTTP_RESENDABLE | PP_HTTP_SMALL_ANSWER, "{}", NULL);
	send_one(m, s.base, "GET", PP_HTTP_SMALL_ANSWER, NULL, NULL);
	assert_int_equal(__atomic_load_n(&coded_requests, __ATOMIC_SEQ_CST), before);
	send_one(m, s.base, "GET", 0, NULL, NULL);
	assert_int_equal(__atomic_load_n(&coded_requests, __ATOMIC_SEQ_CST), before + 1);
	send_one(m, s.base, "GET", PP_HTTP_SMALL_ANSWER, NULL, NULL);
	assert_int_equal(__atomic_load_n(&coded_requests, __ATOMIC_SEQ_CST), before + 1);
	pp_http_multi_free(m);
	hs_stop(&s);
}

static char agents[2][64]; /* the User-Agent lines of the last request */
static int nagents;

static void ok_noting_agents(struct hs_server *s, const struct hs_request *rq,
			     struct hs_response *rs)
{
	nagents = 0;
	for (int i = 0; i < rq->nheaders; i++)
		if (!strcasecmp(rq->names[i], "User-Agent") && nagents < 2)
			snprintf(agents[nagents++], sizeof(agents[0]), "%s", rq->values[i]);
	ok(s, rq, rs);
}

/* Every request names pushpool once; a request that carries a User-Agent
 * of its own sends that one alone. */
static void test_user_agent_once(void **state)
{
	(void)state;
	assert_int_equal(connections_to(ok_noting_agents, "POST", 0, 1), 1);
	assert_int_equal(nagents, 1);
	assert_string_equal(agents[0], "pushpool/" PP_VERSION);

	struct pp_http_resp resp;
	request_to(ok_noting_agents, "GET", "theirs/2", &resp);
	assert_int_equal(nagents, 1);
	assert_string_equal(agents[0], "theirs/2");
	pp_http_resp_free(&resp);
}

/* While armed (watched_finished set), a wait of the HTTP layer's is
 * counted and returns at once when it would block: one made after the
 * watched answer was handed over (the caller has what it waits for), or
 * one that would block with no socket ready for the caller's whole
 * timeout (WAIT_MS; a shorter one waits for libcurl's own timer, and is
 * waited as it would be). The test is built with -Wl,--wrap=poll
 * (Makefile's UNIT_LDFLAGS_lib/http): it checks that the HTTP layer does
 * not wait by what it asks of the kernel, not by a clock. Only the
 * arming thread's polls are looked at: the test servers' threads poll
 * too. */
#define WAIT_MS 30000
static const int *watched_finished;
static pthread_t arming_thread;
static int blocking_polls;
int __real_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms);
int __wrap_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms);
int __wrap_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
	if (!watched_finished || timeout_ms <= 0 || !pthread_equal(pthread_self(), arming_thread))
		return __real_poll(fds, nfds, timeout_ms);
	int ready = __real_poll(fds, nfds, 0);
	if (*watched_finished)
		blocking_polls++;
	else if (ready == 0 && timeout_ms < WAIT_MS)
		ready = __real_poll(fds, nfds, timeout_ms);
	else if (ready == 0)
		blocking_polls++;
	return ready;
}

/* One answer in while another call is held: the polls pp_http_multi_run
 * would have blocked in before handing it over. */
static int waits_with_an_answer_in(void)
{
	struct h2c_server s;
	h2c_start(&s);
	s.hold = true; /* before any connection: read by their threads */
	char base[64];
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", s.port);
	struct pp_http_multi *m = pp_http_multi_new();
	assert_non_null(m);
	struct pp_http_req req[2];
	struct pp_http_resp resp[2];
	struct pp_buf msg;
	pp_buf_init(&msg, 16);
	int finished = 0;
	for (int i = 0; i < 2; i++)
		add_call(m, base, PP_HTTP_RESENDABLE, &msg, &req[i], &resp[i], &finished);
	/* Both calls out, driven without waiting; then one answer sent while
	 * nothing drives the multi handle: all of it is in the socket. */
	assert_true(wait_value(&s.received, 2, m));
	__atomic_store_n(&s.release, 1, __ATOMIC_SEQ_CST);
	assert_true(wait_value(&s.answered, 1, NULL));
	assert_int_equal(finished, 0);
	/* A call may return for other frames (a window update) before the
	 * answer's; the held call keeps one pending throughout. */
	blocking_polls = 0;
	arming_thread = pthread_self();
	watched_finished = &finished;
	for (int i = 0; i < 100 && !finished; i++)
		assert_true(pp_http_multi_run(m, WAIT_MS) >= 1);
	watched_finished = NULL;
	assert_int_equal(finished, 1);
	assert_int_equal(pp_http_multi_pending(m), 1);
	pp_http_multi_free(m); /* the held call abandoned */
	for (int i = 0; i < 2; i++) {
		pp_http_req_free(&req[i]);
		pp_http_resp_free(&resp[i]);
	}
	pp_buf_free(&msg);
	h2c_stop(&s);
	return blocking_polls;
}

/* An answer that came in is handed over at once, without waiting on the
 * calls still out: an op's next call must not wait for some other answer
 * to arrive, or for the timeout (Modal's calls multiplexed on one
 * connection: docs/performance.md, step 32). Whether libcurl finishes the
 * answer in the first read of a call depends on how its frames arrived;
 * 8 rounds. The code before the fix, which polled after handing an
 * answer over, fails in the first. */
static void test_an_answer_in_returns_without_waiting(void **state)
{
	(void)state;
	for (int round = 0; round < 8; round++) {
		int waits = waits_with_an_answer_in();
		if (waits)
			fail_msg("round %d: %d poll(s) would have blocked with the answer in",
				 round, waits);
	}
}

/* A header is one allocation with its strings (valgrind checks that
 * freeing it frees them): a replaced value keeps the header's place and
 * the name as first written; an answer's headers are found by any case. */
static void test_headers_replace_in_place(void **state)
{
	(void)state;
	struct pp_http_req req;
	pp_http_req_init(&req, "POST", "http://127.0.0.1:1/x");
	assert_int_equal(pp_http_req_header(&req, "Content-Type", "%s", "text/plain"), 0);
	assert_int_equal(pp_http_req_set_header(&req, "X-Amz-Target", "A.B"), 0);
	assert_int_equal(pp_http_req_header(&req, "Accept", "*/*"), 0);
	assert_int_equal(pp_http_req_set_header(&req, "x-amz-target", "Much.Longer.Target.Value"),
			 0);
	const char *want[][2] = {{"Content-Type", "text/plain"},
				 {"X-Amz-Target", "Much.Longer.Target.Value"},
				 {"Accept", "*/*"}};
	int i = 0;
	for (const struct pp_http_header *h = req.headers; h; h = h->next, i++) {
		assert_true(i < 3);
		assert_string_equal(h->name, want[i][0]);
		assert_string_equal(h->value, want[i][1]);
	}
	assert_int_equal(i, 3);
	pp_http_req_free(&req);

	struct pp_http_resp resp;
	pp_http_resp_init(&resp, 0);
	assert_int_equal(pp_http_resp_add_header(&resp, "retry-after", "3"), 0);
	assert_int_equal(pp_http_resp_add_header(&resp, "grpc-status", ""), 0);
	assert_string_equal(pp_http_resp_header(&resp, "Retry-After"), "3");
	assert_string_equal(pp_http_resp_header(&resp, "grpc-status"), "");
	assert_null(pp_http_resp_header(&resp, "location"));
	pp_http_resp_free(&resp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_multi_then_first_request),
		cmocka_unit_test(test_creates_get_their_own_connection),
		cmocka_unit_test(test_resendable_and_reads_reuse),
		cmocka_unit_test(test_a_handle_carries_nothing_of_its_last_request),
		cmocka_unit_test(test_a_json_request_after_grpc_calls_on_their_handle),
		cmocka_unit_test(test_grpc_calls_share_h2c_connections),
		cmocka_unit_test(test_grpc_calls_not_resendable_get_their_own_connection),
		cmocka_unit_test(test_an_answer_in_returns_without_waiting),
		cmocka_unit_test(test_only_json_requests_ask_for_content_codings),
		cmocka_unit_test(test_user_agent_once),
		cmocka_unit_test(test_headers_replace_in_place),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
