/* Issue 18: 4 MiB of JSON nesting once kept `serve` busy for an hour. Every
 * place that parses JSON from outside gets that answer here and must fail
 * at once with a message saying why: a provider's response (the shared
 * parser every provider's ops use), a token endpoint's answer, the Prefect
 * API's answer, and a template file. The HTTP answers come from a small
 * hostile server on loopback. An alarm only backstops a regression (the
 * old parser took hours); it is far above what even valgrind needs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/token_cache.h"
#include "dispatcher/config.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/log.h"
#include "providers/common.h"
#include "render/render.h"
#include "sources/prefect_states.h"
#include "sources/source.h"
#include "store/store.h"

#define NEST_BYTES ((size_t)4 << 20)
#define WANT	   "JSON nested deeper than 64 levels at byte 64"

static char *nest; /* "[" x 2 Mi then "]" x 2 Mi */

/* The hostile server: answers every request 200 with the nesting. */
static struct {
	int fd;
	unsigned short port;
	pthread_t thread;
	char base[64];
} srv;

static void send_all(int c, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(c, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void *serve(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept(srv.fd, NULL, NULL);
		if (c < 0)
			return NULL; /* the listening socket was shut down */
		/* Read the request head and any body the Content-Length names. */
		char buf[16384];
		size_t have = 0;
		char *end = NULL;
		while (!end && have < sizeof(buf) - 1) {
			ssize_t r = recv(c, buf + have, sizeof(buf) - 1 - have, 0);
			if (r <= 0)
				break;
			have += (size_t)r;
			buf[have] = '\0';
			end = strstr(buf, "\r\n\r\n");
		}
		if (end) {
			const char *cl = strcasestr(buf, "content-length:");
			size_t body = cl ? strtoul(cl + 15, NULL, 10) : 0;
			size_t got = have - (size_t)(end + 4 - buf);
			while (got < body) {
				ssize_t r = recv(c, buf, sizeof(buf), 0);
				if (r <= 0)
					break;
				got += (size_t)r;
			}
			char head[160];
			int n = snprintf(head, sizeof(head),
					 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
					 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
					 NEST_BYTES);
			send_all(c, head, (size_t)n);
			send_all(c, nest, NEST_BYTES);
		}
		close(c);
	}
}

static int group_setup(void **state)
{
	(void)state;
	nest = malloc(NEST_BYTES + 1);
	if (!nest)
		return -1;
	memset(nest, '[', NEST_BYTES / 2);
	memset(nest + NEST_BYTES / 2, ']', NEST_BYTES / 2);
	nest[NEST_BYTES] = '\0';
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	srv.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv.fd < 0 || bind(srv.fd, (struct sockaddr *)&a, sizeof(a)) || listen(srv.fd, 16) ||
	    getsockname(srv.fd, (struct sockaddr *)&a, &len))
		return -1;
	srv.port = ntohs(a.sin_port);
	snprintf(srv.base, sizeof(srv.base), "http://127.0.0.1:%u", srv.port);
	FILE *devnull = fopen("/dev/null", "w");
	pp_log_setup(PP_LOG_ERROR, PP_LOG_TEXT, devnull);
	alarm(120);
	return pthread_create(&srv.thread, NULL, serve, NULL);
}

static int group_teardown(void **state)
{
	(void)state;
	shutdown(srv.fd, SHUT_RDWR);
	pthread_join(srv.thread, NULL);
	close(srv.fd);
	free(nest);
	return 0;
}

static void expect_nesting_error(int rc, const struct pp_error *err, const char *where)
{
	assert_true(rc < 0);
	if (!strstr(err->msg, WANT))
		fail_msg("%s: '%s', expected '%s'", where, err->msg, WANT);
}

/* Every provider's ops read answers through pp_resp_json. */
static void test_provider_answer(void **state)
{
	(void)state;
	struct pp_http_resp resp;
	pp_http_resp_init(&resp, PP_PROVIDER_MAX_RESPONSE);
	assert_int_equal(pp_buf_append(&resp.body, nest, NEST_BYTES), 0);
	resp.status = 200;
	struct pp_run_io io = {.resp = &resp};
	struct pp_json *out = NULL;
	struct pp_error err = {0};
	int rc = pp_resp_json(&io, "get job", &out, &err);
	expect_nesting_error(rc, &err, "provider answer");
	assert_null(out);
	assert_non_null(strstr(err.msg, "get job: HTTP 200: response is not JSON: "));
	pp_http_resp_free(&resp);
}

static void test_token_answer(void **state)
{
	(void)state;
	char url[128];
	snprintf(url, sizeof(url), "%s/token", srv.base);
	struct pp_http_req req;
	pp_http_req_init(&req, "POST", url);
	assert_int_equal(pp_http_req_body(&req, "grant_type=x", 12), 0);
	/* Let the whole answer reach the parser (the default cap is 64 KiB). */
	req.max_response = (size_t)8 << 20;
	struct pp_token_grant g;
	struct pp_error err = {0};
	int rc = pp_oauth_exchange(&req, "token", &g, &err);
	expect_nesting_error(rc, &err, "token answer");
	assert_null(g.access_token);
	assert_non_null(strstr(err.msg, ": token response: "));
	pp_http_req_free(&req);
}

static void test_prefect_answer(void **state)
{
	(void)state;
	char dir[] = "/tmp/pp-json-entry-XXXXXX", conf[96];
	assert_non_null(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/pushpool.conf", dir);
	FILE *f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f,
		"[dispatcher]\nstate_dir = %s\n\n[pool \"ecs\"]\ntype = ecs:push\n\n"
		"[source \"prefect\"]\napi_url = %s/api/\napi_key = pnu_entrytest0123456789\n",
		dir, srv.base);
	fclose(f);
	struct pp_config cfg;
	struct pp_error err = {0};
	struct pp_store *store = NULL;
	struct pp_source *src = NULL;
	if (pp_config_init(&cfg, &err) || pp_config_load(&cfg, conf, &err))
		fail_msg("config: %s", err.msg);
	unlink(conf);
	rmdir(dir);
	assert_int_equal(pp_store_open(":memory:", &store, &err), 0);
	assert_int_equal(pp_source_prefect.open(&cfg, &src, &err), 0);
	assert_non_null(src);
	int rc = src->ops->poll(src, store, &err);
	expect_nesting_error(rc, &err, "Prefect answer");
	src->ops->close(src);
	pp_store_close(store);
	pp_config_free(&cfg);
}

static void test_template_file(void **state)
{
	(void)state;
	char path[] = "/tmp/pp-json-entry-tmpl-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, nest, NEST_BYTES), (ssize_t)NEST_BYTES);
	close(fd);
	struct pp_json *t = NULL;
	struct pp_error err = {0};
	int rc = pp_template_load(path, &t, &err);
	expect_nesting_error(rc, &err, "template");
	assert_null(t);
	assert_non_null(strstr(err.msg, path));
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_provider_answer),
		cmocka_unit_test(test_token_answer),
		cmocka_unit_test(test_prefect_answer),
		cmocka_unit_test(test_template_file),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
