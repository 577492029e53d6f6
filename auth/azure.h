/* Azure (Entra ID) credentials in azure-identity's DefaultAzureCredential
 * order: environment (client secret or certificate), workload identity,
 * managed identity (IMDS). Tokens are for Azure Resource Manager. Internal
 * to auth/: auth/cred.c puts the tokens in the token cache. */
#ifndef PP_AUTH_AZURE_H
#define PP_AUTH_AZURE_H

#include <time.h>

#include "auth/token_cache.h"
#include "lib/buf.h"
#include "dispatcher/config.h"
#include "lib/err.h"

#define PP_AZURE_AUTHORITY "https://login.microsoftonline.com"
#define PP_AZURE_SCOPE	   "https://management.azure.com/.default"
#define PP_AZURE_RESOURCE  "https://management.azure.com/"
/* Microsoft Graph: pp_cred_set_scope(c, NULL, "graph") switches an Azure
 * credential to Graph tokens, (c, NULL, "arm") back to ARM's. */
#define PP_AZURE_GRAPH_SCOPE	 "https://graph.microsoft.com/.default"
#define PP_AZURE_GRAPH_RESOURCE	 "https://graph.microsoft.com/"
#define PP_AZURE_IMDS		 "http://169.254.169.254/metadata/identity/oauth2/token"
#define PP_AZURE_IMDS_TIMEOUT_MS 2000L
/* Lifetime of a client-certificate assertion (Entra asks for minutes). */
#define PP_AZURE_ASSERTION_SECONDS 600

struct pp_azure;

/* Resolve the source from conf and the environment (no network). */
int pp_azure_new(const struct pp_cred_conf *conf, struct pp_azure **out, struct pp_error *err);
void pp_azure_free(struct pp_azure *a);
const char *pp_azure_cache_key(const struct pp_azure *a);
/* pp_token_fetch_fn (ud is the struct pp_azure). */
int pp_azure_fetch(void *ud, struct pp_token_grant *out, struct pp_error *err);
/* conf->subscription_id or AZURE_SUBSCRIPTION_ID; NULL when unset. */
const char *pp_azure_subscription(const struct pp_azure *a);
int pp_azure_identity(struct pp_azure *a, struct pp_buf *out, struct pp_error *err);
/* "secret", "certificate", "workload_identity", "managed_identity". */
const char *pp_azure_source(const struct pp_azure *a);
/* Token endpoint URL for the tenant (NULL for managed identity). */
const char *pp_azure_token_url(const struct pp_azure *a);
/* The RS256 client assertion for the certificate source (malloc'd). */
int pp_azure_cert_assertion(const struct pp_azure *a, time_t now, char **out, struct pp_error *err);

#endif
