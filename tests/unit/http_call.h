/* A test's request on a pp_http_multi: the request, its answer, and
 * whether and how it ended, which http_call_done (the multi's done
 * callback, ud the call) records. Header-only (static inline): each test
 * binary is one translation unit. */
#ifndef PP_TESTS_HTTP_CALL_H
#define PP_TESTS_HTTP_CALL_H

#include <stdbool.h>

#include "lib/http.h"

struct call {
	struct pp_http_req req;
	struct pp_http_resp resp;
	bool done;
	int rc;
};

static inline void http_call_done(void *ud, struct pp_http_req *req, struct pp_http_resp *resp,
				  int rc, const struct pp_error *err)
{
	struct call *c = ud;
	(void)req;
	(void)resp;
	(void)err;
	c->done = true;
	c->rc = rc;
}

static inline void http_call_free(struct call *c)
{
	pp_http_req_free(&c->req);
	pp_http_resp_free(&c->resp);
}

#endif
