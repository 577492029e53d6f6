/* Google credentials: a service-account key, an authorized-user (gcloud ADC)
 * refresh token, workload identity federation (external_account) or the
 * metadata server, resolved in the application-default order. Internal to
 * auth/: auth/cred.c puts the tokens in the token cache. */
#ifndef PP_AUTH_GCP_H
#define PP_AUTH_GCP_H

#include <time.h>

#include "auth/token_cache.h"
#include "lib/buf.h"
#include "dispatcher/config.h"
#include "lib/err.h"

#define PP_GCP_SCOPE	     "https://www.googleapis.com/auth/cloud-platform"
#define PP_GCP_TOKEN_URI     "https://oauth2.googleapis.com/token"
#define PP_GCP_STS_URI	     "https://sts.googleapis.com/v1/token"
#define PP_GCP_METADATA_HOST "metadata.google.internal"
/* Metadata server requests: a host that is not on GCE must fail fast. */
#define PP_GCP_METADATA_TIMEOUT_MS 1000L

struct pp_gcp;

/* Resolve the source (reads and checks key files; no network). */
int pp_gcp_new(const struct pp_cred_conf *conf, struct pp_gcp **out, struct pp_error *err);
void pp_gcp_free(struct pp_gcp *g);
/* Token-cache key: the same account and endpoint share one token. */
const char *pp_gcp_cache_key(const struct pp_gcp *g);
/* pp_token_fetch_fn: one token exchange (ud is the struct pp_gcp). */
int pp_gcp_fetch(void *ud, struct pp_token_grant *out, struct pp_error *err);
/* GOOGLE_CLOUD_PROJECT, the key's project_id, else the metadata server's
 * project-id (asked once). NULL when unknown. */
const char *pp_gcp_project(struct pp_gcp *g);
/* "service account EMAIL (key KID) from FILE", "metadata server ...". */
int pp_gcp_identity(struct pp_gcp *g, struct pp_buf *out, struct pp_error *err);
/* "service_account", "authorized_user", "external_account", "metadata". */
const char *pp_gcp_source(const struct pp_gcp *g);
/* The signed RS256 JWT-bearer assertion for a service-account key, issued
 * at now (malloc'd). PP_EINVALID for other sources. */
int pp_gcp_assertion(const struct pp_gcp *g, time_t now, char **out, struct pp_error *err);

#endif
