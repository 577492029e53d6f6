/* lib/http.c's connection policy on the multi interface: a non-GET
 * request goes out on a connection of its own (curl would resend it by
 * itself if a reused connection turned out dead) unless it is marked
 * PP_HTTP_RESENDABLE; GETs and resendable requests share kept-alive
 * connections. Counted by the fake server's accepted connections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

/* n requests one after another on one multi handle (its connection cache
 * is what reuse draws on); returns the connections the server accepted. */
static int connections_for(const char *method, unsigned flags, int n)
{
	struct hs_server s;
	assert_int_equal(hs_start(&s, ok, NULL), 0);
	struct pp_http_multi *m = pp_http_multi_new();
	assert_non_null(m);
	for (int i = 0; i < n; i++) {
		struct pp_http_req req;
		struct pp_http_resp resp;
		struct pp_error err = {0};
		char url[128];
		snprintf(url, sizeof(url), "%s/thing", s.base);
		pp_http_req_init(&req, method, url);
		req.flags = flags;
		if (strcmp(method, "GET"))
			assert_int_equal(pp_http_req_body(&req, "{}", 2), 0);
		pp_http_resp_init(&resp, 1 << 16);
		int finished = 0;
		assert_int_equal(pp_http_multi_add(m, &req, &resp, done, &finished, &err), 0);
		while (!finished)
			pp_http_multi_run(m, 100);
		pp_http_resp_free(&resp);
		pp_http_req_free(&req);
	}
	pp_http_multi_free(m);
	hs_stop(&s);
	return __atomic_load_n(&s.connections, __ATOMIC_SEQ_CST);
}

static void test_creates_get_their_own_connection(void **state)
{
	(void)state;
	assert_int_equal(connections_for("POST", 0, 3), 3);
	assert_int_equal(connections_for("PUT", 0, 3), 3);
}

static void test_resendable_and_reads_reuse(void **state)
{
	(void)state;
	assert_int_equal(connections_for("GET", 0, 3), 1);
	assert_int_equal(connections_for("POST", PP_HTTP_RESENDABLE, 3), 1);
	assert_int_equal(connections_for("DELETE", PP_HTTP_RESENDABLE, 3), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_creates_get_their_own_connection),
		cmocka_unit_test(test_resendable_and_reads_reuse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
