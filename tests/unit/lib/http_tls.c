/* HTTPS through lib/http.c against a TLS server of the test's own
 * (`openssl s_server -www`, whose page tells whether the connection's
 * session was new or resumed), on a certificate the test makes: its
 * authority is trusted only through pp_http_set_ca_file, verification
 * stays on without it, and a multi's transfers resume one another's TLS
 * sessions on fresh connections. s_server answers HTTP/1.0 and closes:
 * every request here is a connection and a handshake of its own, one at a
 * time. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/http.h"
#include "tests/unit/http_call.h"

/* How long the server may take to say it listens: a start, not a
 * measurement. */
#define SERVER_START_TRIES 600 /* of 50 ms */

static char dir[64], ca[128], url[64];
static pid_t server = -1;

static int run(const char *cmd)
{
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* The port from s_server's "ACCEPT 127.0.0.1:PORT" line; 0: not yet. */
static int listening_port(const char *log)
{
	char line[256];
	int port = 0;
	FILE *f = fopen(log, "r");
	while (f && !port && fgets(line, sizeof(line), f))
		if (!strncmp(line, "ACCEPT ", 7) && strrchr(line, ':'))
			port = atoi(strrchr(line, ':') + 1);
	if (f)
		fclose(f);
	return port;
}

static int start_server(void **state)
{
	char cmd[512], key[128], log[128];
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/pp-http-tls-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(ca, sizeof(ca), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(log, sizeof(log), "%s/server.log", dir);
	/* Self-signed: the certificate is its own authority. */
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-keyout %s -out %s -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 "
		 "-days 2 2>/dev/null",
		 key, ca);
	if (run(cmd))
		return -1;
	fflush(NULL);
	if ((server = fork()) < 0)
		return -1;
	if (server == 0) {
		if (!freopen(log, "w", stdout) || !freopen("/dev/null", "w", stderr))
			_exit(127);
		execlp("openssl", "openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", ca,
		       "-key", key, "-www", (char *)NULL);
		_exit(127);
	}
	int port = 0;
	for (int i = 0; i < SERVER_START_TRIES && !(port = listening_port(log)); i++)
		usleep(50 * 1000);
	if (!port)
		return -1;
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/", port);
	return 0;
}

static int stop_server(void **state)
{
	char cmd[128];
	(void)state;
	if (server > 0) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
	}
	pp_http_set_ca_file(NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return run(cmd);
}

/* Without the test's authority the server's certificate is refused: a
 * transport failure, libcurl naming the certificate. */
static void test_an_unknown_authority_is_refused(void **state)
{
	struct pp_http_req req;
	struct pp_http_resp resp;
	struct pp_error err = {0};
	(void)state;
	assert_int_equal(pp_http_set_ca_file(NULL), 0);
	pp_http_req_init(&req, "GET", url);
	pp_http_resp_init(&resp, 1 << 16);
	assert_int_equal(pp_http_perform(&req, &resp, &err), PP_ETRANSIENT);
	assert_int_equal(resp.status, 0);
	assert_non_null(strstr(err.msg, "certificate"));
	pp_http_req_free(&req);
	pp_http_resp_free(&resp);
}

static void add(struct pp_http_multi *m, struct call *c)
{
	struct pp_error err = {0};
	memset(c, 0, sizeof(*c));
	pp_http_req_init(&c->req, "GET", url);
	pp_http_resp_init(&c->resp, 1 << 16);
	if (pp_http_multi_add(m, &c->req, &c->resp, http_call_done, c, &err))
		fail_msg("add: %s", err.msg);
}

/* Whether s_server's page says the connection resumed a session ("Reused,
 * TLSv1.3, ...") or made one ("New, ..."). */
static bool resumed(const struct call *c)
{
	const char *page = c->resp.body.data;
	assert_true(c->done);
	assert_int_equal(c->rc, 0);
	assert_int_equal(c->resp.status, 200);
	assert_non_null(page);
	assert_true(strstr(page, "\nReused, ") || strstr(page, "\nNew, "));
	return strstr(page, "\nReused, ") != NULL;
}

/* A plain-HTTP server that takes connections (its backlog) and never
 * answers: a request to it keeps its handle busy. */
static int silent_listener(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* The first request makes a session and leaves its handle to the multi's
 * spares. A request that is never answered takes that handle; the next
 * one to the TLS server gets a new handle, which resumes only from the
 * multi's shared sessions (its own cache is empty). One TLS connection at
 * a time: s_server serves them one after another. */
static void test_a_new_handle_resumes_the_multi_s_session(void **state)
{
	struct pp_http_multi *m = pp_http_multi_new();
	struct call first, held, again;
	struct pp_error err = {0};
	char silent[64];
	int port, fd = silent_listener(&port);
	(void)state;
	assert_non_null(m);
	assert_int_equal(pp_http_set_ca_file(ca), 0);
	add(m, &first);
	while (!first.done)
		pp_http_multi_run(m, 100);
	assert_false(resumed(&first));
	memset(&held, 0, sizeof(held));
	snprintf(silent, sizeof(silent), "http://127.0.0.1:%d/", port);
	pp_http_req_init(&held.req, "GET", silent);
	pp_http_resp_init(&held.resp, 1 << 16);
	if (pp_http_multi_add(m, &held.req, &held.resp, http_call_done, &held, &err))
		fail_msg("add: %s", err.msg);
	add(m, &again);
	while (!again.done)
		pp_http_multi_run(m, 100);
	assert_true(resumed(&again));
	assert_false(held.done);
	assert_int_equal(pp_http_multi_abandon(m, &held), 1);
	http_call_free(&first);
	http_call_free(&held);
	http_call_free(&again);
	pp_http_multi_free(m);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_an_unknown_authority_is_refused),
		cmocka_unit_test(test_a_new_handle_resumes_the_multi_s_session),
	};
	int rc = cmocka_run_group_tests(tests, start_server, stop_server);
	pp_http_cleanup();
	return rc;
}
