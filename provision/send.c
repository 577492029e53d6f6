/* Requests of the provisioners: synchronous, one at a time (a plan or an
 * apply is a short sequence of dependent calls), the credential applied to
 * each, retried on throttling, 5xx and transport errors with full-jitter
 * backoff that honours Retry-After. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "lib/clock.h"
#include "lib/grpc.h"
#include "lib/log.h"
#include "provision/provision.h"

/* Largest answer a provisioning call reads (an IAM policy, a list page). */
#define PROV_RESP_MAX ((size_t)4 << 20)
/* One request's own timeout. */
#define PROV_TIMEOUT_MS 60000

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (ms > 0 && nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void backoff(struct pp_prov_ctx *ctx, int attempt, long retry_after_ms)
{
	long ms = pp_backoff_ms(attempt, ctx->cfg->dispatcher.backoff_base_ms,
				ctx->cfg->dispatcher.backoff_max_ms, retry_after_ms);
	struct pp_error err = {0};

	pp_debug("provision: retry in %ld ms", ms);
	sleep_ms(ms);
	/* Tries backing off for minutes must not let the lock lapse; a lost
	 * lock shows at the next step's save, which stops the apply. */
	if (ctx->journal && ctx->journal->save(ctx->journal->ud, pp_buf_str(&ctx->owned), &err))
		pp_warn("provision: renewing the lock: %s", err.msg);
}

/* One exchange: the request built by build (fresh for every try, so a
 * signature or token is never reused), sent, then judged by judge. */
typedef int (*build_fn)(void *ud, struct pp_http_req *req, struct pp_error *err);
typedef int (*judge_fn)(void *ud, const struct pp_http_req *req, const struct pp_http_resp *resp,
			struct pp_error *err);

static int exchange(struct pp_prov_ctx *ctx, build_fn build, judge_fn judge, void *ud,
		    struct pp_http_resp *resp, struct pp_error *err)
{
	bool reauthed = false;
	int rc;

	pp_http_resp_init(resp, PROV_RESP_MAX);
	for (int attempt = 0;; attempt++) {
		struct pp_http_req req;

		pp_http_resp_free(resp);
		pp_http_resp_init(resp, PROV_RESP_MAX);
		memset(&req, 0, sizeof(req));
		pp_error_clear(err);
		rc = build(ud, &req, err);
		if (!rc && ctx->cred)
			rc = pp_cred_apply(ctx->cred, &req, err);
		if (!rc)
			rc = pp_http_perform(&req, resp, err);
		if (!rc)
			rc = judge(ud, &req, resp, err);
		pp_http_req_free(&req);
		if (!rc)
			return 0;
		if (rc == PP_EAUTH && resp->status == 401 && !reauthed && ctx->cred) {
			/* A token revoked or expired early: fetch a new one once. */
			reauthed = true;
			pp_cred_invalidate(ctx->cred);
			continue;
		}
		if (!pp_err_retryable(rc) || attempt + 1 >= PP_PROV_ATTEMPTS)
			return rc;
		backoff(ctx, attempt,
			resp->retry_after_ms > err->retry_after_ms ? resp->retry_after_ms
								   : err->retry_after_ms);
	}
}

struct rest_call {
	const char *method, *url, *content_type, *body;
	size_t body_len;
};

static int rest_build(void *ud, struct pp_http_req *req, struct pp_error *err)
{
	const struct rest_call *c = ud;

	pp_http_req_init(req, c->method, c->url);
	req->timeout_ms = PROV_TIMEOUT_MS;
	req->max_response = PROV_RESP_MAX;
	if (!req->url ||
	    (c->body &&
	     (pp_http_req_body(req, c->body, c->body_len) ||
	      pp_http_req_set_header(req, "Content-Type",
				     c->content_type ? c->content_type : "application/json"))))
		return pp_fail(err, PP_ENOMEM, "%s %s: out of memory", c->method, c->url);
	return 0;
}

static int rest_judge(void *ud, const struct pp_http_req *req, const struct pp_http_resp *resp,
		      struct pp_error *err)
{
	(void)ud;
	return pp_http_classify(req, resp, err);
}

int pp_prov_send(struct pp_prov_ctx *ctx, const char *method, const char *url,
		 const char *content_type, const char *body, size_t body_len,
		 struct pp_http_resp *resp, struct pp_error *err)
{
	struct rest_call c = {method, url, content_type, body, body_len};

	return exchange(ctx, rest_build, rest_judge, &c, resp, err);
}

int pp_prov_json(struct pp_prov_ctx *ctx, const char *method, const char *url,
		 const struct pp_json *body, struct pp_json **out, struct pp_error *err)
{
	struct pp_http_resp resp;
	char *text = NULL;
	int rc;

	if (out)
		*out = NULL;
	if (body && !(text = pp_json_to_string(body, PP_JSON_COMPACT)))
		return pp_fail(err, PP_ENOMEM, "%s %s: out of memory", method, url);
	rc = pp_prov_send(ctx, method, url, NULL, text, text ? strlen(text) : 0, &resp, err);
	free(text);
	if (!rc && out) {
		if (resp.body.len == 0)
			*out = pp_json_new(PP_JSON_OBJECT);
		else if (pp_json_parse(resp.body.data, resp.body.len, NULL, out, err))
			rc = pp_error_prefix(err, "%s %s: answer: ", method, url);
		if (!rc && !*out)
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
	}
	pp_http_resp_free(&resp);
	return rc;
}

struct grpc_call {
	const char *base, *path;
	const struct pp_buf *msg;
	const uint8_t *answer;
	size_t answer_len;
};

static int grpc_build(void *ud, struct pp_http_req *req, struct pp_error *err)
{
	const struct grpc_call *c = ud;

	return pp_grpc_request(req, c->base, c->path, c->msg, PROV_TIMEOUT_MS, err);
}

static int grpc_judge(void *ud, const struct pp_http_req *req, const struct pp_http_resp *resp,
		      struct pp_error *err)
{
	struct grpc_call *c = ud;

	(void)req;
	return pp_grpc_result(resp, c->path, NULL, &c->answer, &c->answer_len, NULL, err);
}

int pp_prov_grpc(struct pp_prov_ctx *ctx, const char *base_url, const char *path,
		 const struct pp_buf *msg, struct pp_buf *out, struct pp_error *err)
{
	struct grpc_call c = {.base = base_url, .path = path, .msg = msg};
	struct pp_http_resp resp;
	int rc = exchange(ctx, grpc_build, grpc_judge, &c, &resp, err);

	if (!rc && pp_buf_append(out, c.answer, c.answer_len))
		rc = pp_fail(err, PP_ENOMEM, "%s: answer of %zu bytes: out of memory", path,
			     c.answer_len);
	pp_http_resp_free(&resp);
	return rc;
}

int pp_prov_pause(struct pp_prov_ctx *ctx, int attempt, struct pp_error *err)
{
	long ms = ctx->cfg->dispatcher.backoff_base_ms;

	for (int i = 0; i < attempt && ms < ctx->cfg->dispatcher.backoff_max_ms; i++)
		ms *= 2;
	if (ms > ctx->cfg->dispatcher.backoff_max_ms)
		ms = ctx->cfg->dispatcher.backoff_max_ms;
	sleep_ms(ms);
	/* A long operation must not let the lock lapse under it. */
	return ctx->journal ? ctx->journal->save(ctx->journal->ud, pp_buf_str(&ctx->owned), err)
			    : 0;
}
