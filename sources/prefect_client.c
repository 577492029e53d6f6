/* The Prefect server API client: one JSON request with the API key as a
 * bearer token, its error mapped to our codes with the server's own words,
 * and the Retry-After a failure asks for remembered for the next poll. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/http.h"
#include "lib/log.h"
#include "sources/prefect.h"

/* Prefect's clients wait up to PREFECT_API_REQUEST_TIMEOUT, 60 s by default
 * (src/prefect/settings/models/api.py, APISettings.request_timeout): a busy
 * server that answers within that is not taken for a dead one. */
#define PF_TIMEOUT_MS	60000
#define PF_MAX_RESPONSE ((size_t)32 << 20)

/* The server's own words from an error body: FastAPI's "detail" or
 * Prefect's "exception_message"/"exception_detail". */
static void server_message(const struct pp_http_resp *resp, char *out, size_t n)
{
	struct pp_json *j = NULL;
	struct pp_error e = {0};
	out[0] = '\0';
	if (pp_json_parse(resp->body.data ? resp->body.data : "", resp->body.len, NULL, &j, &e))
		return;
	const struct pp_json *d = pp_json_get(j, "detail");
	const char *msg =
		pp_json_string(d) ? pp_json_string(d) : pp_json_get_string(j, "exception_message");
	if (msg)
		snprintf(out, n, "%s", msg);
	const struct pp_json *det = pp_json_get(j, "exception_detail");
	if (!det && d && d->type == PP_JSON_ARRAY)
		det = d;
	if (det && det->count) {
		char *t = pp_json_to_string(det, PP_JSON_COMPACT);
		size_t l = strlen(out);
		if (t && l + 3 < n)
			snprintf(out + l, n - l, "%s%s", l ? ": " : "", t);
		free(t);
	}
	pp_json_free(j);
}

int pp_prefect_api_call(struct prefect_source *s, const char *method, const char *path,
			const struct pp_json *body, struct pp_json **out, struct pp_error *err)
{
	struct pp_http_req req;
	struct pp_http_resp resp;
	char url[2048];
	snprintf(url, sizeof(url), "%s%s", s->api_url, path);
	pp_http_req_init(&req, method, url);
	pp_http_resp_init(&resp, PF_MAX_RESPONSE);
	req.timeout_ms = PF_TIMEOUT_MS;
	req.max_response = PF_MAX_RESPONSE;
	int rc = pp_http_req_header(&req, "Accept", "application/json");
	if (!rc && s->api_key)
		rc = pp_http_req_header(&req, "Authorization", "Bearer %s", s->api_key);
	if (!rc && body) {
		char *text = pp_json_to_string(body, PP_JSON_COMPACT);
		rc = text ? pp_http_req_header(&req, "Content-Type", "application/json")
			  : PP_ENOMEM;
		if (!rc)
			rc = pp_http_req_body(&req, text, strlen(text));
		free(text);
	}
	if (rc)
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc)
		rc = pp_http_perform(&req, &resp, err);
	if (!rc && (resp.status < 200 || resp.status > 299)) {
		rc = pp_http_classify(&req, &resp, err);
		char said[600];
		server_message(&resp, said, sizeof(said));
		if (said[0])
			pp_fail(err, rc, "Prefect %s %s: HTTP %ld: %s", method, path, resp.status,
				said);
		err->retry_after_ms = resp.retry_after_ms;
	} else if (!rc && out) {
		*out = NULL;
		if (resp.body.len && pp_json_parse(resp.body.data, resp.body.len, NULL, out, err))
			rc = pp_error_prefix(err, "Prefect %s %s: response: ", method, path);
	} else if (rc) {
		pp_error_prefix(err, "Prefect %s %s: ", method, path);
	}
	pp_http_req_free(&req);
	pp_http_resp_free(&resp);
	return rc;
}

/* Remember the server's Retry-After so polls and reports leave it alone
 * until then; other retryable failures are simply tried at the next poll. */
void pp_prefect_note_failure(struct prefect_source *s, int rc, const struct pp_error *err)
{
	if (!pp_err_retryable(rc))
		return;
	long wait = err->retry_after_ms > 0 ? err->retry_after_ms : 0;
	if (wait)
		s->backoff_until = pp_wall_ms() + wait;
}
