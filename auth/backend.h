/* One credential backend per cloud, the way providers/provider.h gives one
 * provider per cloud: a const table of ops, listed in auth/registry.c and
 * found by the [credentials] section's type. auth/cred.c wraps an opened
 * backend in the generic pp_cred handle; nothing outside auth/ sees this
 * header. Internal to auth/. */
#ifndef PP_AUTH_BACKEND_H
#define PP_AUTH_BACKEND_H

#include <stddef.h>

#include "dispatcher/config.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/json.h"

struct pp_http_req;

/* Bumped whenever an op changes meaning or a field is added, so a backend
 * built against an older table is refused instead of misread. */
#define PP_CRED_BACKEND_ABI 1

struct pp_cred_backend {
	unsigned abi;		   /* PP_CRED_BACKEND_ABI */
	const char *type;	   /* the section's type: "gcp", "aws", "azure", "modal" */
	const char *what;	   /* what apply adds, as the dry run shows it */
	const char *project_label; /* what project() names ("project", "subscription"), or NULL */
	/* The backend's table of sources, one row per source a section may
	 * name: rows of row_size bytes, each beginning with the source's
	 * `const char *name`. "chain" (every source in turn) is always valid,
	 * with or without a row of its own. Set with PP_CRED_SOURCES(table). */
	const void *rows;
	size_t nrows, row_size;

	/* Validate the section without I/O (no files read, no environment
	 * consulted): a message "FILE:LINE: credentials "NAME": ..." on the
	 * first problem. The source is already known to be one of sources. */
	int (*check)(const struct pp_cred_conf *conf, struct pp_error *err);
	/* Resolve the source (may read key files; no network) into *state.
	 * conf outlives the state. */
	int (*open)(const struct pp_cred_conf *conf, void **state, struct pp_error *err);
	/* Authorize req in place (bearer token, SigV4 signature, Modal token
	 * metadata). May block on a token exchange. */
	int (*apply)(void *state, struct pp_http_req *req, struct pp_error *err);
	/* A 401 arrived: the next apply fetches a fresh token or key. */
	void (*invalidate)(void *state);
	/* Who we are, never a secret; may obtain a token to prove it. */
	int (*identity)(void *state, struct pp_buf *out, struct pp_error *err);
	/* Seconds the current token or key stays valid; -1: none held yet, or
	 * it does not expire. */
	long (*seconds_left)(void *state);
	/* Successful token or key refreshes so far (for /metrics). */
	unsigned long (*refreshes)(void *state);
	void (*close)(void *state);

	/* Optional (NULL when the cloud has no such notion). */
	const char *(*project)(void *state); /* GCP project, Azure subscription */
	const char *(*region)(void *state);
	/* Region and service to sign for ("us-east-1", "ecs"). */
	void (*set_scope)(void *state, const char *region, const char *service);
	/* Fill conf (its strings allocated, the caller's) from a job's credentials
	 * object: the data of the cloud's Prefect credentials block, resolved
	 * into the job (prefect-aws AwsCredentials, prefect-gcp
	 * GcpCredentials, prefect-azure AzureContainerInstanceCredentials).
	 * PP_ENOTFOUND when it names no credential of its own. */
	int (*from_block)(const struct pp_json *data, struct pp_cred_conf *conf,
			  struct pp_error *err);
	/* A URL that apply can authorize for `auth check` without sending
	 * it; may set the scope. NULL: any URL does. */
	int (*probe_url)(void *state, char *url, size_t size);
};

#define PP_CRED_SOURCES(table)                                                                     \
	.rows = (table), .nrows = sizeof(table) / sizeof((table)[0]), .row_size = sizeof((table)[0])

extern const struct pp_cred_backend pp_cred_gcp;
extern const struct pp_cred_backend pp_cred_aws;
extern const struct pp_cred_backend pp_cred_azure;
extern const struct pp_cred_backend pp_cred_modal;

/* NULL-terminated list, in the order messages name them. */
const struct pp_cred_backend *const *pp_cred_backends(void);
/* conf's source is one b accepts; otherwise a FILE:LINE message listing
 * them. */
int pp_cred_source_check(const struct pp_cred_backend *b, const struct pp_cred_conf *conf,
			 struct pp_error *err);
/* "chain, a, b": the sources b accepts, for messages. */
void pp_cred_source_list(const struct pp_cred_backend *b, char *out, size_t size);
/* The backend for conf->type; otherwise a "FILE:LINE: credentials "NAME":
 * type must be one of ..." message naming every known type. */
int pp_cred_backend_for(const struct pp_cred_conf *conf, const struct pp_cred_backend **out,
			struct pp_error *err);

/* ---- helpers for the backends' check and open ---- */

/* Fail with "FILE:LINE: credentials "NAME": <fmt>". */
int pp_cred_conf_fail(const struct pp_cred_conf *conf, int code, struct pp_error *err,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* conf->source, or "chain" when unset. */
const char *pp_cred_source(const struct pp_cred_conf *conf);
/* Index of name in a table whose rows are structs of row_size bytes
 * beginning with a `const char *name`; -1 when absent. */
int pp_cred_source_row(const void *rows, size_t nrows, size_t row_size, const char *name);
/* A string is set and not empty. */
/* For from_block: *field = a copy of data's string member key, when it is
 * a non-empty string; PP_ENOMEM (err filled) when the copy fails. */
int pp_cred_block_field(char **field, const struct pp_json *data, const char *key,
			struct pp_error *err);

static inline int pp_cred_has(const char *s)
{
	return s && *s;
}

#endif
