/* The unit tests' HTTP GET against a listener on 127.0.0.1 (the metrics
 * server, the status page): the answer whole in resp, which the caller
 * frees with pp_http_resp_free. A transport error fails the test.
 * Header-only (static inline): each test binary is one translation unit;
 * include after <cmocka.h>. */
#ifndef PP_TEST_HTTP_GET_H
#define PP_TEST_HTTP_GET_H

#include <stdio.h>

#include "lib/http.h"

static inline void hg_get(int port, const char *path, const char *authorization, size_t cap,
			  struct pp_http_resp *resp)
{
	char url[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	struct pp_http_req req;
	struct pp_error err = {0};
	pp_http_req_init(&req, "GET", url);
	if (authorization)
		assert_int_equal(pp_http_req_set_header(&req, "Authorization", authorization), 0);
	pp_http_resp_init(resp, cap);
	if (pp_http_perform(&req, resp, &err) < 0)
		fail_msg("GET %s: %s", url, err.msg);
	pp_http_req_free(&req);
}

#endif
