/* Entra ID tokens for Azure Resource Manager: client credentials (secret or
 * certificate assertion), workload identity federation, managed identity. */
#include "auth/azure.h"

#include <ctype.h>
#include <jwt.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/backend.h"
#include "lib/file.h"
#include "lib/http.h"
#include "lib/clock.h"
#include "lib/log.h"

#define FILE_MAX       ((size_t)1 << 20)
#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

enum az_src { AZ_SECRET, AZ_CERTIFICATE, AZ_WORKLOAD, AZ_MANAGED };

static const char *source_names[] = {
	[AZ_SECRET] = "secret",
	[AZ_CERTIFICATE] = "certificate",
	[AZ_WORKLOAD] = "workload_identity",
	[AZ_MANAGED] = "managed_identity",
};

struct pp_azure {
	enum az_src src;
	char *tenant;
	char *client_id;
	char *secret; /* registered as secret */
	const char *secret_from;
	char *cert_path;
	char *key_pem;	   /* the certificate's private key, registered as secret */
	char x5t[64];	   /* base64url SHA-1 of the certificate DER */
	char x5t_s256[64]; /* base64url SHA-256 */
	char *federated_file;
	char *token_url;
	char *imds_url;
	char *imds_graph_url; /* the same for Graph's audience */
	bool graph;	      /* tokens for Microsoft Graph, not ARM */
	char *subscription;
	char *cache_key;
};

/* conf value, else the environment variable; NULL when neither is set. */
static const char *pick(const char *conf_value, const char *env)
{
	if (conf_value && *conf_value)
		return conf_value;
	const char *v = env ? getenv(env) : NULL;
	return v && *v ? v : NULL;
}

static int set_str(char **dst, const char *src, struct pp_error *err)
{
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static int thumbprint(const EVP_MD *md, const unsigned char *der, int der_len, char *out,
		      size_t size)
{
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	struct pp_buf b;
	pp_buf_init(&b, 128);
	int rc = EVP_Digest(der, (size_t)der_len, dig, &n, md, NULL) == 1 ? pp_b64url(&b, dig, n)
									  : PP_EINVALID;
	if (!rc && b.len < size)
		memcpy(out, b.data, b.len + 1);
	else
		rc = rc ? rc : PP_ENOMEM;
	pp_buf_free(&b);
	return rc;
}

/* A PEM file with the RSA private key and the certificate, as
 * AZURE_CLIENT_CERTIFICATE_PATH holds it. */
static int load_certificate(struct pp_azure *a, struct pp_error *err)
{
	const char *path = a->cert_path;
	struct pp_buf file;
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	unsigned char *der = NULL;
	BIO *in = NULL, *out = NULL;
	int rc;

	pp_buf_init(&file, FILE_MAX);
	rc = pp_file_read(path, FILE_MAX, &file, err);
	if (rc)
		goto done;
	if (!(in = BIO_new_mem_buf(file.data, (int)file.len)) ||
	    !(pkey = PEM_read_bio_PrivateKey(in, NULL, no_passphrase, NULL)) ||
	    EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
		rc = pp_fail(err, PP_EINVALID,
			     "%s: no unencrypted PEM RSA private key (the file must hold the key "
			     "and the certificate)",
			     path);
		goto done;
	}
	BIO_free(in);
	if (!(in = BIO_new_mem_buf(file.data, (int)file.len)) ||
	    !(cert = PEM_read_bio_X509(in, NULL, no_passphrase, NULL))) {
		rc = pp_fail(err, PP_EINVALID, "%s: no PEM certificate", path);
		goto done;
	}
	int der_len = i2d_X509(cert, &der);
	if (der_len <= 0 || thumbprint(EVP_sha1(), der, der_len, a->x5t, sizeof(a->x5t)) ||
	    thumbprint(EVP_sha256(), der, der_len, a->x5t_s256, sizeof(a->x5t_s256))) {
		rc = pp_fail(err, PP_EINVALID, "%s: cannot encode the certificate", path);
		goto done;
	}
	/* libjwt wants the key alone as PEM. */
	BUF_MEM *mem = NULL;
	if (!(out = BIO_new(BIO_s_mem())) ||
	    PEM_write_bio_PrivateKey(out, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    BIO_get_mem_ptr(out, &mem) != 1 || !(a->key_pem = strndup(mem->data, mem->length))) {
		rc = pp_fail(err, PP_ENOMEM, "%s: out of memory", path);
		goto done;
	}
	pp_secret_register(a->key_pem);
done:
	OPENSSL_free(der);
	X509_free(cert);
	EVP_PKEY_free(pkey);
	BIO_free(in);
	BIO_free(out);
	ERR_clear_error();
	/* The file holds the key: do not leave a copy in freed memory. */
	if (file.data)
		OPENSSL_cleanse(file.data, file.len);
	pp_buf_free(&file);
	return rc;
}

static bool tenant_ok(const char *t)
{
	for (const char *p = t; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
			return false;
	return *t != '\0';
}

static int build_token_url(struct pp_azure *a, const struct pp_cred_conf *conf,
			   struct pp_error *err)
{
	const char *auth = pick(conf->authority, "AZURE_AUTHORITY_HOST");
	if (!auth)
		auth = PP_AZURE_AUTHORITY;
	if (!tenant_ok(a->tenant))
		return pp_fail(err, PP_EINVALID,
			       "tenant_id \"%s\" may hold only letters, digits, '-', '.', '_'",
			       a->tenant);
	size_t n = strlen(auth);
	while (n && auth[n - 1] == '/')
		n--;
	if (asprintf(&a->token_url, "%s%.*s/%s/oauth2/v2.0/token",
		     strstr(auth, "://") ? "" : "https://", (int)n, auth, a->tenant) < 0) {
		a->token_url = NULL;
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	return 0;
}

static int build_imds_url(struct pp_azure *a, const struct pp_cred_conf *conf, const char *resource,
			  char **out, struct pp_error *err)
{
	const char *base =
		conf->imds_endpoint && *conf->imds_endpoint ? conf->imds_endpoint : PP_AZURE_IMDS;
	const char *host = strstr(base, "://");
	/* A bare "http://host:port" override gets IMDS's token path. */
	bool bare = host && !strchr(host + 3, '/');
	struct pp_buf u;
	int rc;
	pp_buf_init(&u, 4096);
	rc = pp_buf_printf(&u, "%s%s?api-version=2018-02-01&resource=", base,
			   bare ? "/metadata/identity/oauth2/token" : "");
	if (!rc)
		rc = pp_url_encode(&u, resource, false);
	if (!rc && a->client_id) {
		rc = pp_buf_puts(&u, "&client_id=");
		if (!rc)
			rc = pp_url_encode(&u, a->client_id, false);
	}
	if (rc) {
		pp_buf_free(&u);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	*out = pp_buf_steal(&u);
	return 0;
}

static int need(const char *value, const char *what, const char *source, struct pp_error *err)
{
	return value ? 0 : pp_fail(err, PP_EAUTH, "source = %s needs %s", source, what);
}

/* What the section and the environment offer, gathered once. */
struct offer {
	const char *source;
	const char *tenant, *client, *cert, *fed;
	const char *secret, *secret_file;
	bool app; /* tenant and client */
};

/* ---- sources: one row each; a row picks the source to use ---- */

/* EnvironmentCredential, WorkloadIdentity, ManagedIdentity. */
static int pick_chain(struct pp_azure *a, const struct offer *o, struct pp_error *err)
{
	(void)err;
	if (o->app && (o->secret || o->secret_file))
		a->src = AZ_SECRET;
	else if (o->app && o->cert)
		a->src = AZ_CERTIFICATE;
	else if (o->app && o->fed)
		a->src = AZ_WORKLOAD;
	else
		a->src = AZ_MANAGED;
	return 0;
}

static int pick_env(struct pp_azure *a, const struct offer *o, struct pp_error *err)
{
	if (o->app && (o->secret || o->secret_file))
		a->src = AZ_SECRET;
	else if (o->app && o->cert)
		a->src = AZ_CERTIFICATE;
	else
		return pp_fail(err, PP_EAUTH,
			       "source = env needs AZURE_TENANT_ID, AZURE_CLIENT_ID and "
			       "AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH");
	return 0;
}

static int pick_secret(struct pp_azure *a, const struct offer *o, struct pp_error *err)
{
	a->src = AZ_SECRET;
	return need(o->secret || o->secret_file ? "" : NULL,
		    "client_secret, client_secret_file or AZURE_CLIENT_SECRET", o->source, err);
}

static int pick_certificate(struct pp_azure *a, const struct offer *o, struct pp_error *err)
{
	a->src = AZ_CERTIFICATE;
	return need(o->cert, "certificate_path or AZURE_CLIENT_CERTIFICATE_PATH", o->source, err);
}

static int pick_workload(struct pp_azure *a, const struct offer *o, struct pp_error *err)
{
	a->src = AZ_WORKLOAD;
	return need(o->fed, "AZURE_FEDERATED_TOKEN_FILE (or file = PATH)", o->source, err);
}

static int pick_managed(struct pp_azure *a, const struct offer *o, struct pp_error *err)
{
	(void)o;
	(void)err;
	a->src = AZ_MANAGED;
	return 0;
}

static const struct {
	const char *name;
	int (*pick)(struct pp_azure *a, const struct offer *o, struct pp_error *err);
} sources[] = {
	{"chain", pick_chain},
	{"env", pick_env},
	{"secret", pick_secret},
	{"certificate", pick_certificate},
	{"workload_identity", pick_workload},
	{"managed_identity", pick_managed},
};

static int resolve(struct pp_azure *a, const struct pp_cred_conf *conf, struct pp_error *err)
{
	struct offer o = {.source = pp_cred_source(conf)};
	int rc;

	o.tenant = pick(conf->tenant_id, "AZURE_TENANT_ID");
	o.client = pick(conf->client_id, "AZURE_CLIENT_ID");
	o.cert = pick(conf->certificate_path, "AZURE_CLIENT_CERTIFICATE_PATH");
	o.fed = pick(!strcmp(o.source, "workload_identity") ? conf->file : NULL,
		     "AZURE_FEDERATED_TOKEN_FILE");
	if (conf->client_secret && *conf->client_secret) {
		o.secret = conf->client_secret;
		a->secret_from = "client_secret";
	} else if (conf->client_secret_file && *conf->client_secret_file) {
		o.secret_file = conf->client_secret_file;
		a->secret_from = "client_secret_file";
	} else if ((o.secret = pick(NULL, "AZURE_CLIENT_SECRET"))) {
		a->secret_from = "AZURE_CLIENT_SECRET";
	}
	o.app = o.tenant && o.client;

	int row = pp_cred_source_row(sources, sizeof(sources) / sizeof(sources[0]),
				     sizeof(sources[0]), o.source);
	if (row < 0)
		return pp_cred_source_check(&pp_cred_azure, conf, err);
	if ((rc = sources[row].pick(a, &o, err)))
		return rc;

	const char *tenant = o.tenant, *client = o.client, *cert = o.cert, *fed = o.fed,
		   *secret = o.secret, *secret_file = o.secret_file;
	if ((rc = set_str(&a->client_id, client, err)))
		return rc;
	if (a->src == AZ_MANAGED)
		return build_imds_url(a, conf, PP_AZURE_RESOURCE, &a->imds_url, err)
			       ?: build_imds_url(a, conf, PP_AZURE_GRAPH_RESOURCE,
						 &a->imds_graph_url, err);
	if ((rc = need(tenant, "tenant_id or AZURE_TENANT_ID", source_names[a->src], err)) ||
	    (rc = need(client, "client_id or AZURE_CLIENT_ID", source_names[a->src], err)) ||
	    (rc = set_str(&a->tenant, tenant, err)) || (rc = build_token_url(a, conf, err)))
		return rc;
	switch (a->src) {
	case AZ_SECRET:
		if (secret_file)
			return pp_file_read_secret(secret_file, "client secret", PP_EAUTH,
						   &a->secret, err);
		pp_secret_register(secret);
		return set_str(&a->secret, secret, err);
	case AZ_CERTIFICATE:
		if ((rc = set_str(&a->cert_path, cert, err)))
			return rc;
		return load_certificate(a, err);
	case AZ_WORKLOAD: return set_str(&a->federated_file, fed, err);
	case AZ_MANAGED: break;
	}
	return 0;
}

int pp_azure_new(const struct pp_cred_conf *conf, struct pp_azure **out, struct pp_error *err)
{
	struct pp_azure *a = calloc(1, sizeof(*a));
	if (!a)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	int rc = resolve(a, conf, err);
	if (!rc)
		rc = set_str(&a->subscription, pick(conf->subscription_id, "AZURE_SUBSCRIPTION_ID"),
			     err);
	if (!rc && asprintf(&a->cache_key, "azure|%s|%s|%s|%s", source_names[a->src],
			    a->tenant ? a->tenant : "", a->client_id ? a->client_id : "",
			    a->token_url ? a->token_url : a->imds_url) < 0) {
		a->cache_key = NULL;
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if (rc) {
		pp_azure_free(a);
		return rc;
	}
	*out = a;
	return 0;
}

void pp_azure_free(struct pp_azure *a)
{
	if (!a)
		return;
	char **strs[] = {&a->tenant,	     &a->client_id,	 &a->secret,	&a->cert_path,
			 &a->key_pem,	     &a->federated_file, &a->token_url, &a->imds_url,
			 &a->imds_graph_url, &a->subscription,	 &a->cache_key};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		free(*strs[i]);
	free(a);
}

const char *pp_azure_cache_key(const struct pp_azure *a)
{
	return a->cache_key;
}

const char *pp_azure_subscription(const struct pp_azure *a)
{
	return a->subscription;
}

const char *pp_azure_source(const struct pp_azure *a)
{
	return source_names[a->src];
}

const char *pp_azure_token_url(const struct pp_azure *a)
{
	return a->token_url;
}

int pp_azure_cert_assertion(const struct pp_azure *a, time_t now, char **out, struct pp_error *err)
{
	char jti[PP_UUID_LEN];
	if (a->src != AZ_CERTIFICATE)
		return pp_fail(err, PP_EINVALID, "not a certificate credential");
	if (pp_uuid4(jti))
		return pp_fail(err, PP_EIO, "no random bytes for the assertion's jti");
	jwt_t *jwt = NULL;
	char *s = NULL;
	/* RS256 with x5t: libjwt 1.10 has no PS256. x5t#S256 is sent too for
	 * the newer documented form. */
	if (jwt_new(&jwt) == 0 &&
	    jwt_set_alg(jwt, JWT_ALG_RS256, (const unsigned char *)a->key_pem,
			(int)strlen(a->key_pem)) == 0 &&
	    jwt_add_header(jwt, "x5t", a->x5t) == 0 &&
	    jwt_add_header(jwt, "x5t#S256", a->x5t_s256) == 0 &&
	    jwt_add_grant(jwt, "aud", a->token_url) == 0 &&
	    jwt_add_grant(jwt, "iss", a->client_id) == 0 &&
	    jwt_add_grant(jwt, "sub", a->client_id) == 0 && jwt_add_grant(jwt, "jti", jti) == 0 &&
	    jwt_add_grant_int(jwt, "nbf", (long)now) == 0 &&
	    jwt_add_grant_int(jwt, "iat", (long)now) == 0 &&
	    jwt_add_grant_int(jwt, "exp", (long)now + PP_AZURE_ASSERTION_SECONDS) == 0)
		s = jwt_encode_str(jwt);
	jwt_free(jwt);
	ERR_clear_error();
	if (!s)
		return pp_fail(err, PP_EAUTH, "%s: signing the client assertion failed",
			       a->cert_path);
	*out = s;
	return 0;
}

static int post_client_credentials(struct pp_azure *a, const char *secret_name,
				   const char *secret_value, struct pp_token_grant *out,
				   struct pp_error *err)
{
	struct pp_buf form;
	struct pp_http_req req;
	int rc = 0;
	char what[160];

	snprintf(what, sizeof(what), "Azure %s for client %s", source_names[a->src], a->client_id);
	pp_buf_init(&form, 256 << 10);
	if (pp_form_add(&form, "client_id", a->client_id) ||
	    pp_form_add(&form, "scope", a->graph ? PP_AZURE_GRAPH_SCOPE : PP_AZURE_SCOPE) ||
	    (strcmp(secret_name, "client_secret") &&
	     pp_form_add(&form, "client_assertion_type", ASSERTION_TYPE)) ||
	    pp_form_add(&form, secret_name, secret_value) ||
	    pp_form_add(&form, "grant_type", "client_credentials"))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	pp_http_req_init(&req, "POST", a->token_url);
	if (!rc &&
	    (!req.url ||
	     pp_http_req_set_header(&req, "Content-Type", "application/x-www-form-urlencoded") ||
	     pp_http_req_set_header(&req, "Accept", "application/json") ||
	     pp_http_req_body(&req, form.data, form.len)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc)
		rc = pp_oauth_exchange(&req, what, out, err);
	pp_http_req_free(&req);
	pp_buf_free(&form);
	return rc;
}

static int fetch_managed(struct pp_azure *a, struct pp_token_grant *out, struct pp_error *err)
{
	struct pp_http_req req;
	pp_http_req_init(&req, "GET", a->graph ? a->imds_graph_url : a->imds_url);
	req.timeout_ms = PP_AZURE_IMDS_TIMEOUT_MS;
	int rc = req.url && !pp_http_req_set_header(&req, "Metadata", "true")
			 ? pp_oauth_exchange(&req, "Azure managed identity (IMDS)", out, err)
			 : pp_fail(err, PP_ENOMEM, "out of memory");
	pp_http_req_free(&req);
	return rc;
}

int pp_azure_fetch(void *ud, struct pp_token_grant *out, struct pp_error *err)
{
	struct pp_azure *a = ud;
	char *assertion = NULL;
	int rc;

	switch (a->src) {
	case AZ_SECRET: return post_client_credentials(a, "client_secret", a->secret, out, err);
	case AZ_CERTIFICATE:
		if ((rc = pp_azure_cert_assertion(a, time(NULL), &assertion, err)))
			return rc;
		rc = post_client_credentials(a, "client_assertion", assertion, out, err);
		free(assertion);
		return rc;
	case AZ_WORKLOAD:
		/* The federated token rotates: read it for every exchange. */
		if ((rc = pp_file_read_secret(a->federated_file, "federated token", PP_EAUTH,
					      &assertion, err)))
			return rc;
		rc = post_client_credentials(a, "client_assertion", assertion, out, err);
		free(assertion);
		return rc;
	case AZ_MANAGED: return fetch_managed(a, out, err);
	}
	return pp_fail(err, PP_EINVALID, "unknown Azure credential source");
}

int pp_azure_identity(struct pp_azure *a, struct pp_buf *out, struct pp_error *err)
{
	int rc = 0;
	switch (a->src) {
	case AZ_SECRET:
		rc = pp_buf_printf(out, "app %s in tenant %s (client secret from %s)", a->client_id,
				   a->tenant, a->secret_from);
		break;
	case AZ_CERTIFICATE:
		rc = pp_buf_printf(out, "app %s in tenant %s (certificate %s, x5t %s)",
				   a->client_id, a->tenant, a->cert_path, a->x5t);
		break;
	case AZ_WORKLOAD:
		rc = pp_buf_printf(out, "app %s in tenant %s (workload identity, token file %s)",
				   a->client_id, a->tenant, a->federated_file);
		break;
	case AZ_MANAGED:
		if (a->client_id)
			rc = pp_buf_printf(out, "user-assigned managed identity %s", a->client_id);
		else
			rc = pp_buf_puts(out, "system-assigned managed identity");
		break;
	}
	return rc ? pp_fail(err, PP_ENOMEM, "identity: out of memory") : 0;
}

/* ---- the backend ---- */

/* An opened Azure credential: the resolved source and its shared token. */
struct azure_cred {
	struct pp_azure *a;
	struct pp_token_cache *cache;
	struct pp_token_cache *graph_cache; /* acquired on the first Graph scope */
	bool graph;
};

static int azure_check(const struct pp_cred_conf *conf, struct pp_error *err)
{
	const char *src = pp_cred_source(conf);
	if (!strcmp(src, "secret") &&
	    (!pp_cred_has(conf->tenant_id) || !pp_cred_has(conf->client_id) ||
	     (!pp_cred_has(conf->client_secret) && !pp_cred_has(conf->client_secret_file))))
		return pp_cred_conf_fail(conf, PP_EINVALID, err,
					 "source secret needs tenant_id, client_id and "
					 "client_secret or client_secret_file");
	if (!strcmp(src, "certificate") &&
	    (!pp_cred_has(conf->tenant_id) || !pp_cred_has(conf->client_id) ||
	     !pp_cred_has(conf->certificate_path)))
		return pp_cred_conf_fail(conf, PP_EINVALID, err,
					 "source certificate needs tenant_id, client_id and "
					 "certificate_path");
	return 0;
}

static void azure_close(void *state)
{
	struct azure_cred *c = state;
	if (!c)
		return;
	pp_token_cache_release(c->cache);
	if (c->graph_cache)
		pp_token_cache_release(c->graph_cache);
	pp_azure_free(c->a);
	free(c);
}

static int azure_open(const struct pp_cred_conf *conf, void **state, struct pp_error *err)
{
	struct azure_cred *c = calloc(1, sizeof(*c));
	if (!c)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	int rc = pp_azure_new(conf, &c->a, err);
	if (!rc && !(c->cache = pp_token_cache_acquire(pp_azure_cache_key(c->a))))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (rc) {
		azure_close(c);
		return rc;
	}
	*state = c;
	return 0;
}

static int azure_apply(void *state, struct pp_http_req *req, struct pp_error *err)
{
	struct azure_cred *c = state;

	if (c->graph && !c->graph_cache) {
		char key[1024];

		snprintf(key, sizeof(key), "%s|graph", pp_azure_cache_key(c->a));
		if (!(c->graph_cache = pp_token_cache_acquire(key)))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	c->a->graph = c->graph;
	return pp_bearer_apply(c->graph ? c->graph_cache : c->cache, pp_azure_fetch, c->a, req,
			       err);
}

static void azure_invalidate(void *state)
{
	struct azure_cred *c = state;

	pp_token_cache_invalidate(c->graph && c->graph_cache ? c->graph_cache : c->cache);
}

/* "graph": Microsoft Graph tokens from now on; anything else: ARM's. */
static void azure_set_scope(void *state, const char *region, const char *service)
{
	((struct azure_cred *)state)->graph = service && !strcmp(service, "graph");
}

static int azure_identity(void *state, struct pp_buf *out, struct pp_error *err)
{
	return pp_azure_identity(((struct azure_cred *)state)->a, out, err);
}

static long azure_seconds_left(void *state)
{
	return pp_token_cache_seconds_left(((struct azure_cred *)state)->cache);
}

static unsigned long azure_refreshes(void *state)
{
	return pp_token_cache_refreshes(((struct azure_cred *)state)->cache);
}

static const char *azure_subscription(void *state)
{
	return pp_azure_subscription(((struct azure_cred *)state)->a);
}

/* A job's aci_credentials: prefect-azure AzureContainerInstanceCredentials
 * (credentials.py: client_id, tenant_id, client_secret), a service
 * principal's secret. Without them Prefect falls back to
 * DefaultAzureCredential: here, the pool's credentials. */
static int azure_from_block(const struct pp_json *d, struct pp_cred_conf *conf,
			    struct pp_error *err)
{
	int rc = pp_cred_block_field(&conf->client_id, d, "client_id", err);
	if (!rc)
		rc = pp_cred_block_field(&conf->tenant_id, d, "tenant_id", err);
	if (!rc)
		rc = pp_cred_block_field(&conf->client_secret, d, "client_secret", err);
	if (rc)
		return rc;
	if (!conf->client_id && !conf->tenant_id && !conf->client_secret)
		return PP_ENOTFOUND;
	if (!conf->client_id || !conf->tenant_id || !conf->client_secret)
		return pp_fail(
			err, PP_EINVALID,
			"aci_credentials: client_id, tenant_id and client_secret go together");
	return (conf->source = strdup("secret")) ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
}

const struct pp_cred_backend pp_cred_azure = {
	.abi = PP_CRED_BACKEND_ABI,
	.type = "azure",
	.what = "bearer token",
	.project_label = "subscription",
	PP_CRED_SOURCES(sources),
	.check = azure_check,
	.open = azure_open,
	.apply = azure_apply,
	.invalidate = azure_invalidate,
	.set_scope = azure_set_scope,
	.identity = azure_identity,
	.seconds_left = azure_seconds_left,
	.refreshes = azure_refreshes,
	.close = azure_close,
	.project = azure_subscription,
	.from_block = azure_from_block,
};
