/* The Prefect server API client: one JSON request with the API key as a
 * bearer token (or Basic auth with a self-hosted server's auth string) and
 * the CSRF headers a server with CSRF protection wants, as Prefect's own
 * client sends them (client/base.py, client/orchestration/__init__.py);
 * its error mapped to our codes with the server's own words, and the
 * Retry-After a failure asks for remembered for the next poll. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/http.h"
#include "lib/log.h"
#include "sources/prefect.h"
#include "sources/prefect_states.h"

/* Prefect's clients wait up to PREFECT_API_REQUEST_TIMEOUT, 60 s by default
 * (src/prefect/settings/models/api.py, APISettings.request_timeout): a busy
 * server that answers within that is not taken for a dead one. */
#define PF_TIMEOUT_MS	60000
#define PF_MAX_RESPONSE ((size_t)32 << 20)
/* How long a wait on the server lasts before the loop is called back
 * (pp_source.while_waiting). */
#define PF_WAIT_SLICE_MS 1000

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

/* One request, not sent: the auth header (Basic with the auth string, as
 * Prefect's client prefers it, else the key as a bearer token), the CSRF
 * headers when csrf, the JSON body text. *req and *resp are the caller's
 * to free, whatever it returns. */
static int request(struct prefect_source *s, const char *method, const char *url, const char *text,
		   unsigned flags, bool csrf, struct pp_http_req *req, struct pp_http_resp *resp,
		   struct pp_error *err)
{
	pp_http_req_init(req, method, url);
	pp_http_resp_init(resp, PF_MAX_RESPONSE);
	req->timeout_ms = PF_TIMEOUT_MS;
	req->max_response = PF_MAX_RESPONSE;
	req->flags = flags;
	int rc = pp_http_req_header(req, "Accept", "application/json");
	if (!rc && s->auth_basic)
		rc = pp_http_req_header(req, "Authorization", "Basic %s", s->auth_basic);
	else if (!rc && s->api_key)
		rc = pp_http_req_header(req, "Authorization", "Bearer %s", s->api_key);
	if (!rc && csrf && s->csrf_token) {
		rc = pp_http_req_header(req, "Prefect-Csrf-Token", "%s", s->csrf_token);
		if (!rc)
			rc = pp_http_req_header(req, "Prefect-Csrf-Client", "%s", s->csrf_client);
	}
	if (!rc && text) {
		rc = pp_http_req_header(req, "Content-Type", "application/json");
		if (!rc)
			rc = pp_http_req_body(req, text, strlen(text));
	}
	return rc ? pp_fail(err, PP_ENOMEM, "out of memory") : 0;
}

/* One call on the wire (perform, pp_prefect_api_calls). */
struct pf_sent {
	struct pp_http_req req;
	struct pp_http_resp resp;
	int rc; /* the transport's outcome */
	struct pp_error err;
	bool sent;
	size_t *out; /* the calls on the wire */
};

/* The source's connections to the server: one multi handle for all its
 * calls, made with the first, so that reads and resendable calls reuse
 * what earlier calls opened (a TLS handshake each, against a remote
 * server) rather than a connection each. */
static struct pp_http_multi *connections(struct prefect_source *s, struct pp_error *err)
{
	if (s->base.multi)
		return s->base.multi; /* the loop's (pp_source.multi) */
	if (!s->http && !(s->http = pp_http_multi_new()))
		pp_fail(err, PP_ENOMEM, "out of memory");
	return s->http;
}

static void performed(void *ud, struct pp_http_req *req, struct pp_http_resp *resp, int rc,
		      const struct pp_error *err)
{
	struct pf_sent *x = ud;
	x->rc = rc;
	if (rc && err)
		x->err = *err;
	(*x->out)--;
}

/* Before anything goes upstream: the loop's turn committed
 * (pp_source.before_send). */
static int store_settled(struct prefect_source *s, struct pp_error *err)
{
	if (s->base.before_send && s->base.before_send(s->base.before_send_ud))
		return pp_fail(err, PP_EIO,
			       "not sent: the store lost what this dispatcher last recorded");
	return 0;
}

/* Wait on the server for the calls on the wire, a slice at a time, the
 * loop called back between slices. */
static void wait_slice(struct prefect_source *s, struct pp_http_multi *m, size_t out)
{
	pp_http_multi_run(m, PF_WAIT_SLICE_MS);
	if (out + s->flying > 0 && s->base.while_waiting)
		s->base.while_waiting(s->base.while_waiting_ud);
}

/* The same request, sent and answered. */
static int perform(struct prefect_source *s, const char *method, const char *url, const char *text,
		   unsigned flags, bool csrf, struct pp_http_req *req, struct pp_http_resp *resp,
		   struct pp_error *err)
{
	int rc = request(s, method, url, text, flags, csrf, req, resp, err);
	if (!rc)
		rc = store_settled(s, err);
	struct pp_http_multi *m = rc ? NULL : connections(s, err);
	if (!m)
		return rc ? rc : PP_ENOMEM;
	size_t out = 1;
	struct pf_sent x = {.out = &out};
	if ((rc = pp_http_multi_add(m, req, resp, performed, &x, err)))
		return rc;
	while (out > 0) {
		wait_slice(s, m, out);
		pp_prefect_flights_step(s, out);
	}
	if (x.rc)
		*err = x.err;
	return x.rc;
}

static bool body_says(const struct pp_http_resp *resp, const char *what)
{
	return resp->body.data && memmem(resp->body.data, resp->body.len, what, strlen(what));
}

/* The token is given up: the next change request fetches another. */
static void csrf_forget(struct prefect_source *s)
{
	free(s->csrf_token);
	s->csrf_token = NULL;
}

/* A CSRF token for change requests, as Prefect's client gets one
 * (client/base.py, _add_csrf_headers): GET /csrf-token?client=ID, kept
 * until its expiration; a server that answers 404 (older) or 422 "CSRF
 * protection is disabled." needs none, and is not asked again. */
static int csrf_token(struct prefect_source *s, struct pp_error *err)
{
	if (s->csrf_off || (s->csrf_token && pp_wall_ms() < s->csrf_expires))
		return 0;
	csrf_forget(s);
	if (!s->csrf_client[0] && pp_uuid4(s->csrf_client))
		return pp_fail(err, PP_EIO, "no random bytes for a CSRF client id");
	char url[2048];
	snprintf(url, sizeof(url), "%s/csrf-token?client=%s", s->api_url, s->csrf_client);
	struct pp_http_req req;
	struct pp_http_resp resp;
	int rc = perform(s, "GET", url, NULL, 0, false, &req, &resp, err);
	if (!rc && (resp.status == 404 ||
		    (resp.status == 422 && body_says(&resp, "CSRF protection is disabled.")))) {
		pp_debug("prefect: the server does not use CSRF tokens (HTTP %ld)", resp.status);
		s->csrf_off = true;
	} else if (!rc && (resp.status < 200 || resp.status > 299)) {
		rc = pp_http_classify(&req, &resp, err);
		pp_error_prefix(err, "Prefect CSRF token: ");
	} else if (!rc) {
		struct pp_json *tok = NULL;
		rc = pp_json_parse(resp.body.data ? resp.body.data : "", resp.body.len, NULL, &tok,
				   err);
		const char *t = rc ? NULL : pp_json_get_string(tok, "token");
		int64_t until = 0;
		if (!rc && (!t || !*t ||
			    pp_prefect_time_parse(pp_json_get_string(tok, "expiration"), &until)))
			rc = pp_fail(
				err, PP_EINVALID,
				"Prefect GET /csrf-token: no token and expiration in the answer");
		if (!rc && !(s->csrf_token = strdup(t)))
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
		if (!rc) {
			pp_secret_register_rotating(s->csrf_token);
			s->csrf_expires = until;
		}
		pp_json_free(tok);
	}
	pp_http_req_free(&req);
	pp_http_resp_free(&resp);
	return rc;
}

/* What a request's answer (rc: its transport's outcome) says: 0 with the
 * body parsed into *out when asked, or the failure in the server's words. */
static int answer(const char *method, const char *path, int rc, const struct pp_http_req *req,
		  const struct pp_http_resp *resp, struct pp_json **out, struct pp_error *err)
{
	if (!rc && (resp->status < 200 || resp->status > 299)) {
		rc = pp_http_classify(req, resp, err);
		char said[600];
		server_message(resp, said, sizeof(said));
		if (said[0])
			pp_fail(err, rc, "Prefect %s %s: HTTP %ld: %s", method, path, resp->status,
				said);
		err->retry_after_ms = resp->retry_after_ms;
	} else if (!rc && out) {
		*out = NULL;
		if (resp->body.len &&
		    pp_json_parse(resp->body.data, resp->body.len, NULL, out, err))
			rc = pp_error_prefix(err, "Prefect %s %s: response: ", method, path);
	} else if (rc) {
		pp_error_prefix(err, "Prefect %s %s: ", method, path);
	}
	return rc;
}

/* A change request the server refused for its CSRF token: it takes a new
 * token and the request again. */
static bool csrf_refused(const struct prefect_source *s, bool change,
			 const struct pp_http_resp *resp)
{
	return change && !s->csrf_off && resp->status == 403 &&
	       body_says(resp, "Invalid CSRF token");
}

int pp_prefect_api_call(struct prefect_source *s, const char *method, const char *path,
			const struct pp_json *body, unsigned flags, struct pp_json **out,
			struct pp_error *err)
{
	struct pp_http_req req;
	struct pp_http_resp resp;
	char url[2048];
	snprintf(url, sizeof(url), "%s%s", s->api_url, path);
	char *text = body ? pp_json_to_string(body, PP_JSON_COMPACT) : NULL;
	if (body && !text)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	/* Prefect's client: the CSRF headers go with every change request. */
	bool change = strcmp(method, "GET") && strcmp(method, "HEAD");
	int rc = change ? csrf_token(s, err) : 0;
	if (rc) {
		free(text);
		return pp_error_prefix(err, "Prefect %s %s: ", method, path);
	}
	rc = perform(s, method, url, text, flags, change, &req, &resp, err);
	if (!rc && csrf_refused(s, change, &resp)) {
		/* Expired or forgotten by the server: a new token, once. */
		csrf_forget(s);
		pp_http_req_free(&req);
		pp_http_resp_free(&resp);
		rc = csrf_token(s, err);
		if (rc) {
			free(text);
			return pp_error_prefix(err, "Prefect %s %s: ", method, path);
		}
		rc = perform(s, method, url, text, flags, change, &req, &resp, err);
	}
	free(text);
	rc = answer(method, path, rc, &req, &resp, out, err);
	pp_http_req_free(&req);
	pp_http_resp_free(&resp);
	return rc;
}

int pp_prefect_api_calls(struct prefect_source *s, struct pf_call *calls, size_t n, size_t at_once)
{
	bool changes = false;
	for (size_t i = 0; i < n; i++) {
		calls[i].out = NULL;
		calls[i].rc = 0;
		memset(&calls[i].err, 0, sizeof(calls[i].err));
		changes |= strcmp(calls[i].method, "GET") != 0;
	}
	struct pf_sent *sent = calloc(n ? n : 1, sizeof(*sent));
	struct pp_error merr = {0};
	struct pp_http_multi *m = connections(s, &merr);
	if (!m || !sent) {
		free(sent);
		return PP_ENOMEM;
	}
	struct pp_error token_err = {0};
	if (store_settled(s, &token_err)) {
		for (size_t i = 0; i < n; i++) {
			calls[i].rc = token_err.code;
			calls[i].err = token_err;
			pp_error_prefix(&calls[i].err, "Prefect %s %s: ", calls[i].method,
					calls[i].path);
		}
		free(sent);
		return 0;
	}
	int token_rc = changes ? csrf_token(s, &token_err) : 0;
	size_t next = 0, out = 0;
	while (next < n || out > 0) {
		/* Calls left on the wire (pp_prefect_api_send) count against
		 * the same limit. */
		for (; next < n && out + s->flying < at_once; next++) {
			struct pf_call *c = &calls[next];
			struct pf_sent *x = &sent[next];
			bool change = strcmp(c->method, "GET") != 0;
			char url[2048];
			snprintf(url, sizeof(url), "%s%s", s->api_url, c->path);
			char *text = c->body ? pp_json_to_string(c->body, PP_JSON_COMPACT) : NULL;
			x->out = &out;
			if (change && token_rc) {
				x->rc = token_rc;
				x->err = token_err;
			} else if (c->body && !text) {
				x->rc = pp_fail(&x->err, PP_ENOMEM, "out of memory");
			} else if (!(x->rc = request(s, c->method, url, text, c->flags, change,
						     &x->req, &x->resp, &x->err)) &&
				   !(x->rc = pp_http_multi_add(m, &x->req, &x->resp, performed, x,
							       &x->err))) {
				x->sent = true;
				out++;
			}
			free(text);
		}
		if (out > 0 || next < n)
			wait_slice(s, m, out);
		/* Past the last call's start the batch leaves room on the
		 * wire as its calls end: the reports take it. */
		if (next == n)
			pp_prefect_flights_step(s, out);
	}
	bool renewed = false;
	for (size_t i = 0; i < n; i++) {
		struct pf_call *c = &calls[i];
		struct pf_sent *x = &sent[i];
		bool change = strcmp(c->method, "GET") != 0;
		if (!x->sent) {
			c->rc = x->rc;
			c->err = x->err;
			pp_error_prefix(&c->err, "Prefect %s %s: ", c->method, c->path);
		} else if (!x->rc && csrf_refused(s, change, &x->resp)) {
			/* Expired or forgotten by the server: this one again, alone,
			 * as pp_prefect_api_call sends it, with a new token (one for
			 * all the calls it refused). */
			if (!renewed) {
				csrf_forget(s);
				renewed = true;
			}
			c->rc = pp_prefect_api_call(s, c->method, c->path, c->body, c->flags,
						    &c->out, &c->err);
		} else {
			c->err = x->err;
			c->rc = answer(c->method, c->path, x->rc, &x->req, &x->resp, &c->out,
				       &c->err);
		}
		pp_http_req_free(&x->req);
		pp_http_resp_free(&x->resp);
	}
	free(sent);
	return 0;
}

static void flight_answered(void *ud, struct pp_http_req *req, struct pp_http_resp *resp, int rc,
			    const struct pp_error *err)
{
	struct pf_flight_call *f = ud;
	f->transport_rc = rc;
	if (rc && err)
		f->transport_err = *err;
	f->answered = true;
	f->s->flying--;
	if (f->s->base.wake)
		f->s->base.wake(f->s->base.wake_ud);
}

int pp_prefect_api_send(struct prefect_source *s, struct pf_flight_call *f, struct pp_error *err)
{
	struct pf_call *c = &f->call;
	bool change = strcmp(c->method, "GET") != 0;
	c->out = NULL;
	c->rc = 0;
	memset(&c->err, 0, sizeof(c->err));
	f->answered = false;
	f->transport_rc = 0;
	memset(&f->transport_err, 0, sizeof(f->transport_err));
	f->s = s;
	struct pp_http_multi *m = connections(s, err);
	if (!m)
		return PP_ENOMEM;
	int rc = store_settled(s, err);
	if (!rc && change)
		rc = csrf_token(s, err);
	char url[2048];
	snprintf(url, sizeof(url), "%s%s", s->api_url, c->path);
	char *text = !rc && c->body ? pp_json_to_string(c->body, PP_JSON_COMPACT) : NULL;
	if (!rc && c->body && !text)
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc) {
		rc = request(s, c->method, url, text, c->flags, change, &f->req, &f->resp, err);
		if (!rc)
			rc = pp_http_multi_add(m, &f->req, &f->resp, flight_answered, f, err);
		if (rc) {
			pp_http_req_free(&f->req);
			pp_http_resp_free(&f->resp);
		}
	}
	free(text);
	if (rc)
		return pp_error_prefix(err, "Prefect %s %s: ", c->method, c->path);
	s->flying++;
	return 0;
}

int pp_prefect_api_take(struct prefect_source *s, struct pf_flight_call *f)
{
	struct pf_call *c = &f->call;
	bool change = strcmp(c->method, "GET") != 0;
	int again = !f->transport_rc && csrf_refused(s, change, &f->resp);
	if (again) {
		/* Expired or forgotten by the server: the next send fetches a
		 * new one. */
		csrf_forget(s);
	} else {
		c->err = f->transport_err;
		c->rc = answer(c->method, c->path, f->transport_rc, &f->req, &f->resp, &c->out,
			       &c->err);
	}
	pp_http_req_free(&f->req);
	pp_http_resp_free(&f->resp);
	return again;
}

int pp_prefect_api_wait(struct prefect_source *s)
{
	struct pp_error err = {0};
	struct pp_http_multi *m = s->flying ? connections(s, &err) : NULL;
	if (!m)
		return 0;
	/* The loop's requests on the handle go out only after their turn's
	 * commit: the wait drives them too. */
	if (store_settled(s, &err))
		return err.code;
	wait_slice(s, m, 0);
	return 0;
}

void pp_prefect_api_abandon(struct prefect_source *s, struct pf_flight_call *f)
{
	if (!f->answered && pp_http_multi_abandon(connections(s, &(struct pp_error){0}), f))
		s->flying--;
	pp_http_req_free(&f->req);
	pp_http_resp_free(&f->resp);
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
