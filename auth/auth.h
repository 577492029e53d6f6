/* Credentials for the four clouds behind one handle. A provider attaches a
 * pp_cred to each request; the HTTP layer calls pp_cred_apply() just before
 * sending, which adds the Authorization (bearer token from the cache, SigV4
 * signature, Modal token headers). Providers never sign on their own. */
#ifndef PP_AUTH_H
#define PP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "lib/buf.h"
#include "dispatcher/config.h"
#include "lib/err.h"

struct pp_http_req;

enum pp_cred_kind { PP_CRED_GCP, PP_CRED_AWS, PP_CRED_AZURE, PP_CRED_MODAL };

struct pp_cred;

/* Build a credential from its config section (resolving the chain lazily:
 * nothing is fetched until first use). */
int pp_cred_new(const struct pp_cred_conf *conf, struct pp_cred **out, struct pp_error *err);
void pp_cred_free(struct pp_cred *c);
enum pp_cred_kind pp_cred_kind(const struct pp_cred *c);

/* Sign / authorize req in place. For AWS, service comes from
 * pp_cred_set_aws_scope or the request host. May perform a blocking token
 * exchange when the cached token is missing or near expiry. */
int pp_cred_apply(struct pp_cred *c, struct pp_http_req *req, struct pp_error *err);
/* A 401 arrived: drop the cached token so the next apply refreshes once. */
void pp_cred_invalidate(struct pp_cred *c);
/* AWS: region and service for signing ("us-east-1", "ecs"). */
void pp_cred_set_aws_scope(struct pp_cred *c, const char *region, const char *service);
const char *pp_cred_aws_region(const struct pp_cred *c);
/* GCP: project from the key file / ADC; Azure: subscription. NULL if unknown. */
const char *pp_cred_project(const struct pp_cred *c);
/* Identity for `auth check`: email / access key id / client id; never secret. */
int pp_cred_identity(struct pp_cred *c, struct pp_buf *out, struct pp_error *err);
/* Counters for /metrics. */
unsigned long pp_cred_refreshes(const struct pp_cred *c);
/* Seconds the current token or temporary key stays valid; -1 when none is
 * held yet or the credential does not expire (static keys). */
long pp_cred_seconds_left(const struct pp_cred *c);

/* ---- AWS Signature Version 4 (also used by the mock to verify) ---- */
struct pp_sigv4_input {
	const char *method;
	const char *path;		 /* raw path as on the wire, before normalization */
	const char *query;		 /* raw query string without '?', may be NULL */
	const char *const *header_names; /* headers to sign (any case) */
	const char *const *header_values;
	size_t nheaders;
	const void *payload;
	size_t payload_len;
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token; /* NULL unless temporary credentials */
	const char *region;
	const char *service;
	time_t when;	     /* signing time (UTC) */
	bool normalize_path; /* true for every service except S3 */
};

struct pp_sigv4_output {
	char amz_date[17]; /* 20150830T123600Z */
	char signature[65];
	struct pp_buf canonical_request;
	struct pp_buf string_to_sign;
	struct pp_buf authorization; /* full Authorization header value */
	struct pp_buf signed_headers;
};

void pp_sigv4_output_init(struct pp_sigv4_output *o);
void pp_sigv4_output_free(struct pp_sigv4_output *o);
/* The input must already contain X-Amz-Date / host / security token
 * headers as they will be sent. */
int pp_sigv4_sign(const struct pp_sigv4_input *in, struct pp_sigv4_output *out,
		  struct pp_error *err);

#endif
