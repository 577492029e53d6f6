/* The mock's one request router: every API module lists its routes as
 * {method, pattern, handler} tables (struct pp_mock_router), and this file
 * matches a request against them and runs the hooks the routes share. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mock/mock.h"

const char *pp_mock_param(const struct pp_mock_params *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->names[i], name) == 0)
			return p->values[i];
	return NULL;
}

/* Store one capture: its name and n bytes of value, each NUL-terminated. */
static bool capture(struct pp_mock_params *p, size_t *used, const char *name, size_t nlen,
		    const char *value, size_t vlen)
{
	if (p->n == PP_MOCK_PARAMS_MAX || *used + nlen + vlen + 2 > sizeof(p->buf))
		return false;
	memcpy(p->buf + *used, name, nlen);
	p->buf[*used + nlen] = '\0';
	p->names[p->n] = p->buf + *used;
	*used += nlen + 1;
	memcpy(p->buf + *used, value, vlen);
	p->buf[*used + vlen] = '\0';
	p->values[p->n++] = p->buf + *used;
	*used += vlen + 1;
	return true;
}

static bool same(const char *a, const char *b, size_t n, bool nocase)
{
	return nocase ? strncasecmp(a, b, n) == 0 : strncmp(a, b, n) == 0;
}

bool pp_mock_pattern_match(const char *pattern, const char *path, bool nocase,
			   struct pp_mock_params *p)
{
	const char *pt = pattern, *pa = path;
	size_t used = 0;

	p->n = 0;
	for (;;) {
		pt += strspn(pt, "/");
		pa += strspn(pa, "/");
		size_t tlen = strcspn(pt, "/"), alen = strcspn(pa, "/");

		if (tlen == 0)
			return alen == 0;
		if (pt[0] != '{') {
			if (tlen != alen || !same(pt, pa, tlen, nocase))
				return false;
		} else {
			const char *close = memchr(pt, '}', tlen);
			const char *suffix;
			size_t slen;

			if (!close)
				return false; /* a broken pattern matches nothing */
			if (close > pt + 1 && close[-1] == '*') {
				/* The rest of the path, without its trailing slashes. */
				size_t rest = strlen(pa);

				while (rest && pa[rest - 1] == '/')
					rest--;
				bool last = pt[tlen + strspn(pt + tlen, "/")] == '\0';

				return close + 1 == pt + tlen && last &&
				       capture(p, &used, pt + 1, (size_t)(close - pt - 2), pa,
					       rest);
			}
			suffix = close + 1;
			slen = tlen - (size_t)(suffix - pt);
			if (alen <= slen || !same(pa + alen - slen, suffix, slen, nocase) ||
			    !capture(p, &used, pt + 1, (size_t)(close - pt - 1), pa, alen - slen))
				return false;
		}
		pt += tlen;
		pa += alen;
	}
}

static bool in_scope(const char *path, const char *scope, bool nocase)
{
	size_t n = strlen(scope);

	if (n && scope[n - 1] == '/')
		n--;
	return same(path, scope, n, nocase) && (path[n] == '\0' || path[n] == '/');
}

static void run(const struct pp_mock_router *r, struct pp_mock_call *c)
{
	const struct pp_mock_req *req = c->req;

	if (r->admit && !r->admit(c))
		return;
	if (r->json_body && req->body_len) {
		struct pp_error err = {0};

		if (pp_json_parse(req->body, req->body_len, NULL, &c->body, &err)) {
			if (r->bad_body)
				r->bad_body(c, err.msg);
			else
				pp_mock_resp_printf(c->resp, 400, "text/plain",
						    "request body: %s\n", err.msg);
			return;
		}
	}
	if (r->validate && !r->validate(c))
		return;
	if (c->route->validate && !c->route->validate(c))
		return;
	if (r->locked)
		pp_mock_lock(c->m);
	c->route->handle(c);
	if (r->after)
		r->after(c);
	if (r->locked)
		pp_mock_unlock(c->m);
}

bool pp_mock_route_request(struct pp_mock *m, void *state,
			   const struct pp_mock_router *const *routers,
			   const struct pp_mock_req *req, struct pp_mock_resp *resp)
{
	for (size_t i = 0; routers && routers[i]; i++) {
		const struct pp_mock_router *r = routers[i];
		struct pp_mock_call c = {.m = m, .state = state, .req = req, .resp = resp};
		bool other_method = false;

		if (r->scope && !in_scope(req->path, r->scope, r->nocase))
			continue;
		for (const struct pp_mock_route *rt = r->routes; rt->method; rt++) {
			if (!pp_mock_pattern_match(rt->pattern, req->path, r->nocase, &c.params))
				continue;
			if (strcmp(rt->method, req->method) == 0) {
				c.route = rt;
				break;
			}
			other_method = true;
		}
		/* Without a scope a router answers only the paths of its routes. */
		if (!r->scope && !c.route && !other_method)
			continue;
		snprintf(resp->api, sizeof(resp->api), "%s", r->api);
		if (c.route) {
			run(r, &c);
		} else {
			c.params.n = 0;
			if (r->unmatched)
				r->unmatched(&c, other_method);
			else if (other_method)
				pp_mock_resp_printf(resp, 405, "text/plain",
						    "%s is not allowed on %s\n", req->method,
						    req->path);
			else
				pp_mock_resp_printf(resp, 404, "text/plain",
						    "mock %s has no route %s %s\n", r->api,
						    req->method, req->path);
		}
		pp_json_free(c.body);
		return true;
	}
	return false;
}
