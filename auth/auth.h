/* Credentials behind one handle. A pp_cred is a credential backend
 * (auth/backend.h: one per cloud, listed in auth/registry.c) opened on a
 * [credentials] section. Whoever sends a request applies the credential to
 * it first (the op driver for provider calls, pp_cred_perform for one-off
 * calls): bearer token, SigV4 signature or Modal token metadata. The HTTP
 * layer knows nothing of credentials. */
#ifndef PP_AUTH_H
#define PP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "lib/buf.h"
#include "dispatcher/config.h"
#include "lib/err.h"
#include "lib/json.h"

struct pp_http_req;
struct pp_http_resp;

struct pp_cred;

/* Build a credential from its config section (resolving the chain lazily:
 * nothing is fetched until first use). */
int pp_cred_new(const struct pp_cred_conf *conf, struct pp_cred **out, struct pp_error *err);
void pp_cred_free(struct pp_cred *c);
/* A credential of type from a job's credentials object (the data of a
 * Prefect credentials block, e.g. a job's aws_credentials), mapped by the
 * type's backend; its secrets are registered for redaction. *out is NULL
 * when the object names no credential (an empty block: the pool's own
 * credentials apply). The handle owns a copy of what it needs. */
int pp_cred_from_job(const char *type, const struct pp_json *obj, struct pp_cred **out,
		     struct pp_error *err);
/* Check a section without I/O: the type is a known backend's, the source
 * one of its sources, and the settings that source needs are there. The
 * message starts with "FILE:LINE: credentials "NAME": ". */
int pp_cred_check(const struct pp_cred_conf *conf, struct pp_error *err);

/* The configuration's view of the registry, so that its key table names no
 * cloud: NULL-terminated lists of every credential type and of every
 * source any type accepts ("chain" first), and "TYPE: a, b. TYPE: c." for
 * the documentation. At most PP_CRED_NAMES_MAX names a list. */
#define PP_CRED_NAMES_MAX 32
const char *const *pp_cred_type_names(void);
const char *const *pp_cred_source_names(void);
void pp_cred_sources_by_type(char *out, size_t size);
/* The section's name. */
const char *pp_cred_name(const struct pp_cred *c);
/* A digest (64 hex digits) of the settings the credential was made from,
 * its type, source and every value (its name aside): two credentials with
 * the same one are interchangeable, as two runs' equal job credentials
 * are. It reveals none of them. "" when it cannot be computed (out of
 * memory), which equals no other. */
const char *pp_cred_fingerprint(struct pp_cred *c);
/* The section's type ("gcp"). */
const char *pp_cred_type(const struct pp_cred *c);
/* What apply adds, for display ("bearer token", "AWS SigV4 signature"). */
const char *pp_cred_what(const struct pp_cred *c);

/* Sign / authorize req in place. May perform a blocking token exchange
 * when the cached token is missing or near expiry. */
int pp_cred_apply(struct pp_cred *c, struct pp_http_req *req, struct pp_error *err);
/* Apply c (when not NULL), then send req with pp_http_perform. */
int pp_cred_perform(struct pp_cred *c, struct pp_http_req *req, struct pp_http_resp *resp,
		    struct pp_error *err);
/* A 401 arrived: drop the cached token so the next apply refreshes once. */
void pp_cred_invalidate(struct pp_cred *c);
/* Region and service to sign for ("us-east-1", "ecs"); ignored by
 * credentials that do not sign per region. */
void pp_cred_set_scope(struct pp_cred *c, const char *region, const char *service);
/* The credential's region (AWS); NULL when it has none. */
const char *pp_cred_region(const struct pp_cred *c);
/* The project or subscription the credential belongs to; NULL if unknown. */
const char *pp_cred_project(const struct pp_cred *c);
/* What pp_cred_project names ("project", "subscription"); NULL if nothing. */
const char *pp_cred_project_label(const struct pp_cred *c);
/* Identity for `auth check`: email / access key id / client id; never secret. */
int pp_cred_identity(struct pp_cred *c, struct pp_buf *out, struct pp_error *err);
/* Authorize (never send) a request the credential is good for: proves that
 * a token or key can be obtained. */
int pp_cred_probe(struct pp_cred *c, struct pp_error *err);
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
