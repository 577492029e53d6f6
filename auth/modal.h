/* Modal API credentials: the token pair (config, MODAL_TOKEN_ID/SECRET or the
 * active profile of ~/.modal.toml), the server URL, and the short-lived auth
 * token from AuthTokenGet that every other RPC carries. auth/cred.c forwards
 * pp_cred_* calls for type "modal" here. */
#ifndef PP_AUTH_MODAL_H
#define PP_AUTH_MODAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/buf.h"
#include "dispatcher/config.h"
#include "lib/err.h"

struct pp_http_req;
struct pp_modal_auth;

/* Pinned metadata: the SDK behaviour we implement (see docs/modal.md), as
 * modal-go sends it (go/client.go injectRequiredHeaders): its own client
 * type (7, LIBMODAL, is for libmodal releases before modal-go 0.0.15), the
 * Python SDK version whose behaviour it declares, and its release. pushpool
 * follows modal-go's call sequence (image build, sandbox create and wait). */
#define PP_MODAL_CLIENT_TYPE	  "9" /* ClientType LIBMODAL_GO */
#define PP_MODAL_CLIENT_VERSION	  "1.0.0"
#define PP_MODAL_LIBMODAL_VERSION "modal-go/0.9.0"
#define PP_MODAL_DEFAULT_SERVER	  "https://api.modal.com"
/* Refresh the auth token this long before its exp, as the SDKs do. */
#define PP_MODAL_REFRESH_EARLY_S 300

int pp_modal_auth_new(const struct pp_cred_conf *conf, struct pp_modal_auth **out,
		      struct pp_error *err);
void pp_modal_auth_free(struct pp_modal_auth *m);
/* Add the x-modal-* metadata; fetches the auth token first (blocking
 * AuthTokenGet) when none is cached or it is about to expire. Requests to
 * AuthTokenGet itself get only the token pair. */
int pp_modal_auth_apply(struct pp_modal_auth *m, struct pp_http_req *req, struct pp_error *err);
void pp_modal_auth_invalidate(struct pp_modal_auth *m);
/* The token id (never the secret). */
int pp_modal_auth_identity(struct pp_modal_auth *m, struct pp_buf *out, struct pp_error *err);
unsigned long pp_modal_auth_refreshes(const struct pp_modal_auth *m);

/* Server base URL without trailing slash ("https://api.modal.com"). */
const char *pp_modal_auth_server_url(const struct pp_modal_auth *m);
/* Seconds since the epoch in a JWT's "exp" claim; 0 when absent/unreadable. */
time_t pp_modal_jwt_exp(const char *jwt);

/* The longest back-off a Modal RPCRetryPolicy may ask for; longer ones are
 * ignored (a day: past any call's budget anyway). */
#define PP_MODAL_RETRY_AFTER_MAX_S 86400

/* lib/grpc's pp_grpc_retry_hint for Modal: the back-off in ms from a
 * modal.client.RPCRetryPolicy detail, 0 for any other detail. */
long pp_modal_retry_hint(const char *type_url, size_t type_len, const uint8_t *value,
			 size_t value_len);

#endif
