/* Bearer-token cache and the OAuth2 token-endpoint helpers. */
#include "auth/token_cache.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/http.h"
#include "lib/json.h"
#include "lib/clock.h"
#include "lib/log.h"

#define TOKEN_RESPONSE_MAX ((size_t)64 << 10)

struct pp_token_cache {
	char *key;
	int refs;
	struct pp_token_cache *next;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool fetching;
	int waiting;		     /* callers waiting for the fetch under way */
	unsigned long flight;	     /* incremented when a fetch starts */
	unsigned long failed_flight; /* the last flight that ended in an error */
	struct pp_error flight_err;
	char *token;
	long long refresh_at_ms; /* monotonic */
	long long expires_at_ms;
	unsigned long refreshes;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pp_token_cache *registry;

struct pp_token_cache *pp_token_cache_acquire(const char *key)
{
	struct pp_token_cache *c;

	pthread_mutex_lock(&registry_mu);
	for (c = registry; c; c = c->next) {
		if (!strcmp(c->key, key)) {
			c->refs++;
			pthread_mutex_unlock(&registry_mu);
			return c;
		}
	}
	c = calloc(1, sizeof(*c));
	if (c && !(c->key = strdup(key))) {
		free(c);
		c = NULL;
	}
	if (c) {
		pthread_mutex_init(&c->mu, NULL);
		pthread_cond_init(&c->cv, NULL);
		c->refs = 1;
		c->next = registry;
		registry = c;
	}
	pthread_mutex_unlock(&registry_mu);
	return c;
}

void pp_token_cache_release(struct pp_token_cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&registry_mu);
	if (--c->refs > 0) {
		pthread_mutex_unlock(&registry_mu);
		return;
	}
	for (struct pp_token_cache **pp = &registry; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	pthread_mutex_unlock(&registry_mu);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c->token);
	free(c->key);
	free(c);
}

/* Called with c->mu held. */
static void store_grant(struct pp_token_cache *c, struct pp_token_grant *g)
{
	long long now = pp_mono_ms();
	long long life_ms = (long long)g->expires_in * 1000;

	free(c->token);
	c->token = g->access_token;
	g->access_token = NULL;
	c->expires_at_ms = now + life_ms;
	/* Refresh with a fifth of the lifetime left, so a request signed just
	 * before the deadline still reaches the server with a live token. */
	c->refresh_at_ms = now + life_ms - life_ms / 5;
	c->refreshes++;
}

int pp_token_cache_get(struct pp_token_cache *c, pp_token_fetch_fn fetch, void *ud,
		       struct pp_buf *out, struct pp_error *err)
{
	int rc;

	pp_buf_reset(out);
	/* pp_token_cache_acquire returns NULL when out of memory. */
	if (!c)
		return pp_fail(err, PP_ENOMEM, "token cache: out of memory");
	pthread_mutex_lock(&c->mu);
	for (;;) {
		long long now = pp_mono_ms();
		if (c->token && now < c->refresh_at_ms)
			break;
		/* In the refresh window another caller is already fetching:
		 * the old token is still good, use it rather than wait. */
		if (c->fetching && c->token && now < c->expires_at_ms)
			break;
		if (!c->fetching)
			goto do_fetch;
		unsigned long waited = c->flight;
		c->waiting++;
		while (c->fetching && c->flight == waited)
			pthread_cond_wait(&c->cv, &c->mu);
		c->waiting--;
		if (c->failed_flight == waited) {
			rc = c->flight_err.code ? c->flight_err.code : PP_EAUTH;
			if (err)
				*err = c->flight_err;
			pthread_mutex_unlock(&c->mu);
			return rc;
		}
	}
	rc = pp_buf_puts(out, c->token);
	pthread_mutex_unlock(&c->mu);
	return rc ? pp_fail(err, rc, "token: out of memory") : 0;

do_fetch:
	c->fetching = true;
	unsigned long mine = ++c->flight;
	pthread_mutex_unlock(&c->mu);

	struct pp_token_grant g = {0};
	struct pp_error ferr;
	pp_error_clear(&ferr);
	rc = fetch(ud, &g, &ferr);
	if (!rc && (!g.access_token || !*g.access_token || g.expires_in <= 0))
		rc = pp_fail(&ferr, PP_EAUTH, "token source returned no usable token");

	pthread_mutex_lock(&c->mu);
	if (rc && c->token && pp_mono_ms() < c->expires_at_ms) {
		/* An early refresh failed but the current token still works:
		 * keep using it and try again halfway to its expiry. */
		long long now = pp_mono_ms();
		c->refresh_at_ms = now + (c->expires_at_ms - now) / 2;
		pp_redact(ferr.msg);
		pp_warn("token refresh failed, using the current token until it expires: %s",
			ferr.msg);
		rc = pp_buf_puts(out, c->token);
		if (rc)
			pp_fail(&ferr, rc, "token: out of memory");
	} else if (rc) {
		pp_redact(ferr.msg);
		c->flight_err = ferr;
		c->failed_flight = mine;
	} else {
		store_grant(c, &g);
		rc = pp_buf_puts(out, c->token);
		if (rc)
			pp_fail(&ferr, rc, "token: out of memory");
	}
	c->fetching = false;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	free(g.access_token);
	if (rc && err)
		*err = ferr;
	return rc;
}

void pp_token_cache_invalidate(struct pp_token_cache *c)
{
	pthread_mutex_lock(&c->mu);
	free(c->token);
	c->token = NULL;
	pthread_mutex_unlock(&c->mu);
}

int pp_token_cache_waiting(struct pp_token_cache *c)
{
	pthread_mutex_lock(&c->mu);
	int n = c->waiting;
	pthread_mutex_unlock(&c->mu);
	return n;
}

unsigned long pp_token_cache_refreshes(const struct pp_token_cache *c)
{
	struct pp_token_cache *m = (struct pp_token_cache *)c;
	pthread_mutex_lock(&m->mu);
	unsigned long n = m->refreshes;
	pthread_mutex_unlock(&m->mu);
	return n;
}

long pp_token_cache_seconds_left(const struct pp_token_cache *c)
{
	struct pp_token_cache *m = (struct pp_token_cache *)c;
	long left = -1;
	pthread_mutex_lock(&m->mu);
	if (m->token) {
		long long ms = m->expires_at_ms - pp_mono_ms();
		left = ms > 0 ? (long)(ms / 1000) : 0;
	}
	pthread_mutex_unlock(&m->mu);
	return left;
}

/* ---- OAuth2 helpers ---- */

int pp_form_add(struct pp_buf *form, const char *name, const char *value)
{
	int rc = 0;
	if (form->len)
		rc = pp_buf_putc(form, '&');
	if (!rc)
		rc = pp_url_encode(form, name, false);
	if (!rc)
		rc = pp_buf_putc(form, '=');
	if (!rc)
		rc = pp_url_encode(form, value, false);
	return rc;
}

/* expires_in arrives as a number (Google, Entra) or a string (IMDS). */
static long parse_expires_in(const struct pp_json *root)
{
	const struct pp_json *e = pp_json_get(root, "expires_in");
	if (!e)
		return -1;
	if (e->type == PP_JSON_NUMBER)
		return e->num > 0 && e->num < (double)LONG_MAX ? (long)e->num : -1;
	if (e->type == PP_JSON_STRING) {
		char *end;
		errno = 0;
		long v = strtol(e->str, &end, 10);
		return !errno && end != e->str && !*end && v > 0 ? v : -1;
	}
	return -1;
}

static int token_error(const struct pp_http_req *req, const struct pp_http_resp *resp,
		       const char *what, struct pp_error *err)
{
	/* Token endpoints answer a bad client, key or assertion with 400 or
	 * 401; both mean the credentials are wrong, not the request. */
	int code = pp_http_classify(req, resp, err);
	if (resp->status == 400 || resp->status == 401)
		code = err ? (err->code = PP_EAUTH) : PP_EAUTH;

	struct pp_json *j = NULL;
	if (resp->status && !pp_json_parse(resp->body.data ? resp->body.data : "", resp->body.len,
					   NULL, &j, NULL)) {
		const char *e = pp_json_get_string(j, "error");
		const char *d = pp_json_get_string(j, "error_description");
		if (!e && pp_json_is(pp_json_get(j, "error"), PP_JSON_OBJECT))
			e = pp_json_get_string(pp_json_get(j, "error"), "message");
		if (e) {
			long retry = err ? err->retry_after_ms : 0;
			pp_fail(err, code, "%s %s: HTTP %ld: %s%s%s", req->method, req->url,
				resp->status, e, d ? ": " : "", d ? d : "");
			if (err)
				err->retry_after_ms = retry;
		}
	}
	pp_json_free(j);
	pp_error_prefix(err, "%s: ", what);
	return code;
}

int pp_oauth_exchange(struct pp_http_req *req, const char *what, struct pp_token_grant *out,
		      struct pp_error *err)
{
	struct pp_http_resp resp;
	struct pp_json *j = NULL;
	int rc;

	out->access_token = NULL;
	out->expires_in = 0;
	if (!req->max_response)
		req->max_response = TOKEN_RESPONSE_MAX;
	pp_http_resp_init(&resp, req->max_response);
	rc = pp_http_perform(req, &resp, err);
	if (rc) {
		pp_error_prefix(err, "%s: ", what);
		goto out;
	}
	if (resp.status < 200 || resp.status >= 300) {
		rc = token_error(req, &resp, what, err);
		goto out;
	}
	rc = pp_json_parse(pp_buf_str(&resp.body), resp.body.len, NULL, &j, err);
	if (rc) {
		rc = pp_error_prefix(err, "%s: %s %s: token response: ", what, req->method,
				     req->url);
		goto out;
	}
	const char *tok = pp_json_get_string(j, "access_token");
	long exp = parse_expires_in(j);
	if (!tok || !*tok || exp <= 0) {
		rc = pp_fail(err, PP_EAUTH, "%s: %s %s: token response without %s", what,
			     req->method, req->url, !tok || !*tok ? "access_token" : "expires_in");
		goto out;
	}
	pp_secret_register_rotating(tok);
	out->access_token = strdup(tok);
	out->expires_in = exp;
	if (!out->access_token)
		rc = pp_fail(err, PP_ENOMEM, "%s: out of memory", what);
out:
	pp_json_free(j);
	pp_http_resp_free(&resp);
	return rc;
}

int pp_b64url(struct pp_buf *out, const unsigned char *p, size_t n)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	int rc = 0;
	size_t i;
	for (i = 0; !rc && i + 2 < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		char q[4] = {tbl[v >> 18], tbl[(v >> 12) & 63], tbl[(v >> 6) & 63], tbl[v & 63]};
		rc = pp_buf_append(out, q, 4);
	}
	if (!rc && n - i == 1) {
		unsigned v = (unsigned)p[i] << 16;
		char q[2] = {tbl[v >> 18], tbl[(v >> 12) & 63]};
		rc = pp_buf_append(out, q, 2);
	} else if (!rc && n - i == 2) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
		char q[3] = {tbl[v >> 18], tbl[(v >> 12) & 63], tbl[(v >> 6) & 63]};
		rc = pp_buf_append(out, q, 3);
	}
	return rc;
}

int pp_bearer_apply(struct pp_token_cache *c, pp_token_fetch_fn fetch, void *ud,
		    struct pp_http_req *req, struct pp_error *err)
{
	struct pp_buf tok, hdr;
	pp_buf_init(&tok, 64 << 10);
	pp_buf_init(&hdr, 64 << 10);
	int rc = pp_token_cache_get(c, fetch, ud, &tok, err);
	if (!rc && (pp_buf_puts(&hdr, "Bearer ") || pp_buf_puts(&hdr, tok.data) ||
		    pp_http_req_set_header(req, "Authorization", hdr.data)))
		rc = pp_fail(err, PP_ENOMEM, "Authorization header: out of memory");
	pp_buf_free(&tok);
	pp_buf_free(&hdr);
	return rc;
}
