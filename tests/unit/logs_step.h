/* For the logs op tests (tests/unit/providers/NAME_logs.c): drive one
 * provider's logs op by hand, a request at a time, answering each with a
 * canned status, body and headers, as the op driver would hand them over. */
#ifndef PP_TEST_LOGS_STEP_H
#define PP_TEST_LOGS_STEP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/http.h"
#include "lib/json.h"
#include "providers/provider.h"

struct logs_rig {
	struct pp_run_io io;
	struct pp_logs logs;
	struct pp_json *job;
	struct pp_http_resp resp;
	struct pp_error resp_err;
};

static inline void rig_init(struct logs_rig *r, const char *infra_id, const char *job_json,
			    const char *endpoint)
{
	memset(r, 0, sizeof(*r));
	if (job_json)
		pp_json_parse(job_json, strlen(job_json), NULL, &r->job, NULL);
	r->io.run_id = "6f1c2d3e-4a5b-4c6d-8e9f-a0b1c2d3e4f5";
	r->io.attempt = 1;
	r->io.job = r->job;
	r->io.endpoint = endpoint;
	r->io.logs = &r->logs;
	r->io.exit_code = -1;
	pp_run_io_set_infra_id(&r->io, NULL, "%s", infra_id);
}

static inline void rig_free(struct logs_rig *r)
{
	pp_http_req_free(&r->io.req);
	pp_http_resp_free(&r->resp);
	pp_logs_clear(&r->logs);
	pp_json_free(r->job);
	pp_run_io_free_strings(&r->io);
}

/* The op's first call of a page: it must ask for a request. */
static inline int rig_start(struct logs_rig *r, int (*op)(struct pp_run_io *, struct pp_error *),
			    struct pp_error *err)
{
	pp_http_req_free(&r->io.req);
	memset(&r->io.req, 0, sizeof(r->io.req));
	r->io.resp = NULL;
	r->io.poll_after_ms = 0;
	return op(&r->io, err);
}

/* Answer the request last asked for; header_name/value may be NULL. */
static inline int rig_answer(struct logs_rig *r, int (*op)(struct pp_run_io *, struct pp_error *),
			     long status, const void *body, size_t len, const char *header_name,
			     const char *header_value, struct pp_error *err)
{
	pp_http_resp_free(&r->resp);
	pp_http_resp_init(&r->resp, (size_t)8 << 20);
	r->resp.status = status;
	pp_buf_append(&r->resp.body, body, len);
	if (header_name) {
		assert_int_equal(pp_http_resp_add_header(&r->resp, header_name, header_value), 0);
	}
	pp_error_clear(&r->resp_err);
	r->io.resp = &r->resp;
	r->io.resp_err = &r->resp_err;
	r->io.resp_rc = pp_http_classify(&r->io.req, &r->resp, &r->resp_err);
	struct pp_http_req sent = r->io.req;
	memset(&r->io.req, 0, sizeof(r->io.req));
	r->io.poll_after_ms = 0;
	int rc = op(&r->io, err);
	pp_http_req_free(&sent);
	r->io.resp = NULL;
	return rc;
}

static inline int rig_answer_json(struct logs_rig *r,
				  int (*op)(struct pp_run_io *, struct pp_error *), long status,
				  const char *body, struct pp_error *err)
{
	return rig_answer(r, op, status, body, strlen(body), NULL, NULL, err);
}

#endif
