/* The mock's generic router (mock/route.c): pattern matching and the order
 * of a router's hooks, on tables made up for the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mock/mock.h"

static bool match(const char *pattern, const char *path, bool nocase, struct pp_mock_params *p)
{
	return pp_mock_pattern_match(pattern, path, nocase, p);
}

static void test_patterns(void **state)
{
	struct pp_mock_params p;

	assert_true(match("/a/b", "/a/b", false, &p));
	assert_int_equal(p.n, 0);
	/* Empty segments do not count, on either side. */
	assert_true(match("/a/b", "//a///b/", false, &p));
	assert_true(match("/a//b/", "/a/b", false, &p));
	assert_false(match("/a/b", "/a", false, &p));
	assert_false(match("/a", "/a/b", false, &p));
	assert_false(match("/a/b", "/a/c", false, &p));
	assert_false(match("/a/b", "/a/bb", false, &p));
	assert_false(match("/A/b", "/a/b", false, &p));
	assert_true(match("/A/b", "/a/B", true, &p));

	assert_true(match("/jobs/{job}", "/jobs/j1", false, &p));
	assert_int_equal(p.n, 1);
	assert_string_equal(pp_mock_param(&p, "job"), "j1");
	assert_null(pp_mock_param(&p, "other"));
	assert_false(match("/jobs/{job}", "/jobs", false, &p));
	assert_false(match("/jobs/{job}", "/jobs/j1/x", false, &p));

	/* A capture with a literal suffix ("{job}:run"). */
	assert_true(match("/jobs/{job}:run", "/jobs/j1:run", false, &p));
	assert_string_equal(pp_mock_param(&p, "job"), "j1");
	assert_false(match("/jobs/{job}:run", "/jobs/:run", false, &p));
	assert_false(match("/jobs/{job}:run", "/jobs/j1:cancel", false, &p));
	assert_false(match("/jobs/{job}:run", "/jobs/j1", false, &p));
	assert_true(match("/x/{a}:RUN", "/X/v:run", true, &p));

	/* Several captures. */
	assert_true(match("/p/{project}/l/{location}/jobs/{job}", "/p/pr/l/eu/jobs/j", false, &p));
	assert_int_equal(p.n, 3);
	assert_string_equal(pp_mock_param(&p, "project"), "pr");
	assert_string_equal(pp_mock_param(&p, "location"), "eu");
	assert_string_equal(pp_mock_param(&p, "job"), "j");

	/* The rest of the path, possibly empty, without trailing slashes. */
	assert_true(match("/c/{rest*}", "/c/a/b/", false, &p));
	assert_string_equal(pp_mock_param(&p, "rest"), "a/b");
	assert_true(match("/c/{rest*}", "/c", false, &p));
	assert_string_equal(pp_mock_param(&p, "rest"), "");
	assert_false(match("/c/{rest*}", "/d/a", false, &p));
	/* "{rest*}" only as the last segment. */
	assert_false(match("/c/{rest*}/x", "/c/a/x", false, &p));

	/* A broken pattern matches nothing. */
	assert_false(match("/c/{open", "/c/open", false, &p));
	/* The root. */
	assert_true(match("/", "/", false, &p));
	assert_false(match("/", "/a", false, &p));
}

/* Captures that do not fit the parameter buffer make the match fail
 * rather than cut a value. */
static void test_capture_limits(void **state)
{
	struct pp_mock_params p;
	char path[4096], pattern[256] = "";
	size_t n;

	memset(path, 'x', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_false(match("/{big}", path, false, &p));
	for (int i = 0; i <= PP_MOCK_PARAMS_MAX; i++) {
		n = strlen(pattern);
		snprintf(pattern + n, sizeof(pattern) - n, "/{p%d}", i);
	}
	assert_false(match(pattern, "/1/2/3/4/5/6/7/8/9", false, &p));
}

/* ---- a router made up for the test ---- */

struct trace {
	char steps[256];
};

static void step(struct pp_mock_call *c, const char *what)
{
	struct trace *t = c->state;
	size_t n = strlen(t->steps);

	snprintf(t->steps + n, sizeof(t->steps) - n, "%s%s", n ? " " : "", what);
}

static void h_get(struct pp_mock_call *c)
{
	step(c, "get");
	pp_mock_resp_printf(c->resp, 200, "text/plain", "%s", pp_mock_param(&c->params, "id"));
}

static void h_first(struct pp_mock_call *c)
{
	step(c, "first");
	pp_mock_resp_printf(c->resp, 200, "text/plain", "first");
}

static void h_post(struct pp_mock_call *c)
{
	step(c, c->body ? "post-json" : "post");
	pp_mock_resp_printf(c->resp, 201, "text/plain", "made");
}

static bool refuse_if_header_body(struct pp_mock_call *c)
{
	step(c, "route-validate");
	if (c->body && pp_json_get(c->body, "bad")) {
		pp_mock_resp_printf(c->resp, 422, "text/plain", "refused by the route");
		return false;
	}
	return true;
}

static bool admit(struct pp_mock_call *c)
{
	step(c, "admit");
	if (strstr(c->req->path, "/forbidden")) {
		pp_mock_resp_printf(c->resp, 403, "text/plain", "no");
		return false;
	}
	return true;
}

static void bad_body(struct pp_mock_call *c, const char *why)
{
	step(c, "bad-body");
	pp_mock_resp_printf(c->resp, 400, "text/plain", "bad body");
}

static bool validate(struct pp_mock_call *c)
{
	step(c, "validate");
	return true;
}

static void after(struct pp_mock_call *c)
{
	step(c, c->route->changes ? "after-changed" : "after");
}

static void unmatched(struct pp_mock_call *c, bool other_method)
{
	step(c, other_method ? "unmatched-method" : "unmatched");
	pp_mock_resp_printf(c->resp, other_method ? 405 : 404, "text/plain", "none");
}

static const struct pp_mock_route test_routes[] = {
	{"GET", "/t/items/special", h_first, .changes = false},
	{"GET", "/t/items/{id}", h_get, .changes = false},
	{"POST", "/t/items", h_post, .validate = refuse_if_header_body, .changes = true},
	{"GET", "/t/forbidden", h_get, .changes = false},
	{NULL},
};

static const struct pp_mock_router test_router = {
	.api = "test",
	.scope = "/t",
	.json_body = true,
	.locked = true,
	.routes = test_routes,
	.admit = admit,
	.bad_body = bad_body,
	.validate = validate,
	.after = after,
	.unmatched = unmatched,
};

static void h_other(struct pp_mock_call *c)
{
	step(c, "other");
	pp_mock_resp_printf(c->resp, 200, "text/plain", "other");
}

static const struct pp_mock_route scopeless_routes[] = {
	{"POST", "/s/{tenant}/token", h_other, .changes = true},
	{NULL},
};

static const struct pp_mock_router scopeless_router = {
	.api = "scopeless",
	.routes = scopeless_routes,
	.unmatched = unmatched,
};

/* Takes whatever under /s the scopeless router does not. */
static const struct pp_mock_router catch_router = {
	.api = "catch", .scope = "/s", .routes = test_routes + 4, /* no routes */
};

static const struct pp_mock_router *const routers[] = {
	&scopeless_router,
	&test_router,
	&catch_router,
	NULL,
};

struct answer {
	bool taken;
	int status;
	char api[24];
	char body[128];
	char steps[256];
};

static struct answer ask(struct pp_mock *m, const char *method, const char *path, const char *body)
{
	struct trace t = {""};
	struct pp_mock_req req = {
		.method = method,
		.path = path,
		.subpath = path,
		.raw_query = "",
		.body = body ? body : "",
		.body_len = body ? strlen(body) : 0,
		.remote = "127.0.0.1",
		.raw_path = path,
	};
	struct pp_mock_resp resp = {0};
	struct answer a = {0};

	pp_buf_init(&resp.body, PP_MOCK_BODY_MAX);
	a.taken = pp_mock_route_request(m, &t, routers, &req, &resp);
	a.status = resp.status;
	snprintf(a.api, sizeof(a.api), "%s", resp.api);
	snprintf(a.body, sizeof(a.body), "%s", pp_buf_str(&resp.body));
	snprintf(a.steps, sizeof(a.steps), "%s", t.steps);
	pp_buf_free(&resp.body);
	for (size_t i = 0; i < resp.nhdr; i++)
		free(resp.hdr_values[i]);
	return a;
}

static void test_router_hooks(void **state)
{
	struct pp_mock_opts o;
	struct pp_mock *m = NULL;
	struct pp_error err = {0};
	struct answer a;

	pp_mock_opts_defaults(&o);
	assert_int_equal(pp_mock_new(&o, &m, &err), 0);

	/* Every hook, in order, around the handler; captures reach it. */
	a = ask(m, "GET", "/t/items/42", NULL);
	assert_true(a.taken);
	assert_int_equal(a.status, 200);
	assert_string_equal(a.body, "42");
	assert_string_equal(a.api, "test");
	assert_string_equal(a.steps, "admit validate get after");

	/* The first route that matches wins. */
	a = ask(m, "GET", "/t/items/special", NULL);
	assert_string_equal(a.steps, "admit validate first after");

	/* A JSON body is parsed for the handler; the route's own validator
	 * runs after the router's and may refuse. */
	a = ask(m, "POST", "/t/items", "{\"a\":1}");
	assert_int_equal(a.status, 201);
	assert_string_equal(a.steps, "admit validate route-validate post-json after-changed");
	a = ask(m, "POST", "/t/items", "{\"bad\":1}");
	assert_int_equal(a.status, 422);
	assert_string_equal(a.steps, "admit validate route-validate");
	a = ask(m, "POST", "/t/items", NULL);
	assert_string_equal(a.steps, "admit validate route-validate post after-changed");
	a = ask(m, "POST", "/t/items", "{broken");
	assert_int_equal(a.status, 400);
	assert_string_equal(a.steps, "admit bad-body");

	/* admit stops everything after it. */
	a = ask(m, "GET", "/t/forbidden", NULL);
	assert_int_equal(a.status, 403);
	assert_string_equal(a.steps, "admit");

	/* In scope but no route: another method, or no such path. */
	a = ask(m, "DELETE", "/t/items/42", NULL);
	assert_int_equal(a.status, 405);
	assert_string_equal(a.steps, "unmatched-method");
	a = ask(m, "GET", "/t/nothing", NULL);
	assert_int_equal(a.status, 404);
	assert_string_equal(a.steps, "unmatched");

	/* A router without scope takes only its own paths (any method) and
	 * leaves the rest to the next router in scope. */
	a = ask(m, "POST", "/s/tenant1/token", NULL);
	assert_string_equal(a.steps, "other");
	assert_string_equal(a.api, "scopeless");
	a = ask(m, "GET", "/s/tenant1/token", NULL);
	assert_string_equal(a.steps, "unmatched-method");
	a = ask(m, "GET", "/s/elsewhere", NULL);
	assert_true(a.taken);
	assert_string_equal(a.api, "catch");
	assert_int_equal(a.status, 404);
	assert_non_null(strstr(a.body, "no route"));

	/* Out of every scope: not taken at all. */
	a = ask(m, "GET", "/u", NULL);
	assert_false(a.taken);
	assert_int_equal(a.status, 0);

	pp_mock_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_capture_limits),
		cmocka_unit_test(test_router_hooks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
