/* Bearer-token cache shared by every pp_cred with the same identity key:
 * one token per key, refreshed ahead of expiry by a single caller while the
 * others wait (single-flight), dropped on a 401. Also the OAuth2 token
 * endpoint helpers Google and Azure share. Internal to auth/. */
#ifndef PP_AUTH_TOKEN_CACHE_H
#define PP_AUTH_TOKEN_CACHE_H

#include <stddef.h>

#include "lib/buf.h"
#include "lib/err.h"

struct pp_http_req;
struct pp_http_resp;

/* What a fetch hands back: a malloc'd token (the cache takes it) and its
 * lifetime in seconds from now. */
struct pp_token_grant {
	char *access_token;
	long expires_in;
};

typedef int (*pp_token_fetch_fn)(void *ud, struct pp_token_grant *out, struct pp_error *err);

struct pp_token_cache;

/* Find or create the entry for key (reference counted). NULL on ENOMEM. */
struct pp_token_cache *pp_token_cache_acquire(const char *key);
void pp_token_cache_release(struct pp_token_cache *c);

/* Copy a valid token into out (reset first), calling fetch(ud) when there is
 * none or it is within the refresh window (the last 20% of its lifetime).
 * Concurrent callers wait for one fetch and share its result or error. */
int pp_token_cache_get(struct pp_token_cache *c, pp_token_fetch_fn fetch, void *ud,
		       struct pp_buf *out, struct pp_error *err);
/* Drop the cached token: the next get fetches a new one. */
void pp_token_cache_invalidate(struct pp_token_cache *c);
/* Successful fetches so far. */
unsigned long pp_token_cache_refreshes(const struct pp_token_cache *c);
/* Callers waiting for another's fetch to end (tests line threads up). */
int pp_token_cache_waiting(struct pp_token_cache *c);
/* Seconds until the cached token expires; -1 when there is none. */
long pp_token_cache_seconds_left(const struct pp_token_cache *c);

/* Add "Authorization: Bearer <token>" to req, the token from c (fetched
 * with fetch(ud) when needed): the apply op of the bearer-token backends. */
int pp_bearer_apply(struct pp_token_cache *c, pp_token_fetch_fn fetch, void *ud,
		    struct pp_http_req *req, struct pp_error *err);

/* ---- OAuth2 token endpoints ---- */

/* Append "name=value" (percent-encoded, '&' separated) to a form body. */
int pp_form_add(struct pp_buf *form, const char *name, const char *value);

/* Send req (unauthenticated) and read a token response
 * {"access_token", "expires_in" (number or string)}. Errors name what (the
 * token source) and carry the endpoint's error / error_description; 400 and
 * 401 from a token endpoint are PP_EAUTH. The token is registered as a
 * secret before it is returned. */
int pp_oauth_exchange(struct pp_http_req *req, const char *what, struct pp_token_grant *out,
		      struct pp_error *err);

/* base64url without padding. */
int pp_b64url(struct pp_buf *out, const unsigned char *p, size_t n);

#endif
