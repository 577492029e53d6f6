/* Google credentials in the application-default order (google-auth's
 * _default.py): the configured key file, GOOGLE_APPLICATION_CREDENTIALS, the
 * gcloud ADC file, then the metadata server. */
#include "auth/gcp.h"

#include <ctype.h>
#include <jwt.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/backend.h"
#include "lib/file.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/pem.h"
#include "lib/time.h"

#define KEY_FILE_MAX	     ((size_t)1 << 20)
#define SUBJECT_TOKEN_MAX    ((size_t)64 << 10)
#define JWT_LIFETIME	     3600
#define GRANT_JWT_BEARER     "urn:ietf:params:oauth:grant-type:jwt-bearer"
#define GRANT_TOKEN_EXCHANGE "urn:ietf:params:oauth:grant-type:token-exchange"
#define TOKEN_TYPE_ACCESS    "urn:ietf:params:oauth:token-type:access_token"

enum gcp_src { SRC_SERVICE_ACCOUNT, SRC_AUTHORIZED_USER, SRC_EXTERNAL, SRC_METADATA };

struct pp_gcp {
	enum gcp_src src;
	char *origin;  /* key file path, or the metadata base URL */
	char *project; /* from the environment or the key file */
	char *cache_key;
	/* service_account */
	char *email;
	char *key_id;
	char *private_key; /* PEM, registered as secret */
	char *audience;	   /* the key's token_uri: the JWT's aud */
	char *token_url;   /* where the grant is POSTed: conf->token_uri or the key's */
	/* authorized_user */
	char *client_id;
	char *client_secret;
	char *refresh_token;
	/* external_account */
	char *sts_audience;
	char *subject_token_type;
	char *subject_file;
	char *subject_url;
	struct pp_json *subject_headers;
	char *subject_json_field; /* NULL: the file is the token as text */
	char *impersonation_url;
	/* metadata server */
	char *metadata_base;
	pthread_mutex_t mu; /* guards the lazily asked metadata project */
	bool meta_project_asked;
	char *meta_project;
};

static const char *source_names[] = {
	[SRC_SERVICE_ACCOUNT] = "service_account",
	[SRC_AUTHORIZED_USER] = "authorized_user",
	[SRC_EXTERNAL] = "external_account",
	[SRC_METADATA] = "metadata",
};

static int dup_field(char **dst, const struct pp_json *j, const char *field, bool required,
		     const char *path, struct pp_error *err)
{
	const struct pp_json *v = pp_json_get(j, field);
	if (!v || (v->type == PP_JSON_STRING && !*v->str)) {
		if (required)
			return pp_fail(err, PP_EINVALID, "%s: %s missing", path, field);
		return 0;
	}
	if (v->type != PP_JSON_STRING)
		return pp_fail(err, PP_EINVALID, "%s: %s must be a string, not %s", path, field,
			       pp_json_type_name(v->type));
	if (!(*dst = strdup(v->str)))
		return pp_fail(err, PP_ENOMEM, "%s: out of memory", path);
	return 0;
}

/* libjwt only reports failure, so check the key ourselves to name it; by
 * its shape, so that loading the configuration does not set up OpenSSL
 * (lib/pem.h). */
static int check_rsa_pem(const char *pem, const char *path, const char *field, struct pp_error *err)
{
	int rc = pp_pem_rsa_private_key_check(pem);
	if (rc == PP_ENOMEM)
		return pp_fail(err, rc, "%s: %s: out of memory", path, field);
	return rc ? pp_fail(err, rc, "%s: %s is not a PEM RSA key", path, field) : 0;
}

static int load_service_account(struct pp_gcp *g, const struct pp_json *j, const char *path,
				struct pp_error *err)
{
	int rc;
	if ((rc = dup_field(&g->email, j, "client_email", true, path, err)) ||
	    (rc = dup_field(&g->private_key, j, "private_key", true, path, err)) ||
	    (rc = dup_field(&g->key_id, j, "private_key_id", false, path, err)) ||
	    (rc = dup_field(&g->audience, j, "token_uri", false, path, err)))
		return rc;
	pp_secret_register(g->private_key);
	return check_rsa_pem(g->private_key, path, "private_key", err);
}

static int load_authorized_user(struct pp_gcp *g, const struct pp_json *j, const char *path,
				struct pp_error *err)
{
	int rc;
	if ((rc = dup_field(&g->client_id, j, "client_id", true, path, err)) ||
	    (rc = dup_field(&g->client_secret, j, "client_secret", true, path, err)) ||
	    (rc = dup_field(&g->refresh_token, j, "refresh_token", true, path, err)) ||
	    (rc = dup_field(&g->audience, j, "token_uri", false, path, err)))
		return rc;
	pp_secret_register(g->client_secret);
	pp_secret_register(g->refresh_token);
	return 0;
}

static int load_external_account(struct pp_gcp *g, const struct pp_json *j, const char *path,
				 struct pp_error *err)
{
	int rc;
	if ((rc = dup_field(&g->sts_audience, j, "audience", true, path, err)) ||
	    (rc = dup_field(&g->subject_token_type, j, "subject_token_type", true, path, err)) ||
	    (rc = dup_field(&g->audience, j, "token_url", false, path, err)) ||
	    (rc = dup_field(&g->impersonation_url, j, "service_account_impersonation_url", false,
			    path, err)))
		return rc;
	const struct pp_json *cs = pp_json_get(j, "credential_source");
	if (!pp_json_is(cs, PP_JSON_OBJECT))
		return pp_fail(err, PP_EINVALID, "%s: credential_source missing", path);
	if (pp_json_get(cs, "environment_id") || pp_json_get(cs, "executable"))
		return pp_fail(err, PP_EINVALID,
			       "%s: credential_source: only file and url sources are supported "
			       "(not AWS or executable-sourced subject tokens)",
			       path);
	if ((rc = dup_field(&g->subject_file, cs, "file", false, path, err)) ||
	    (rc = dup_field(&g->subject_url, cs, "url", false, path, err)))
		return rc;
	if (!g->subject_file == !g->subject_url)
		return pp_fail(err, PP_EINVALID,
			       "%s: credential_source needs exactly one of file and url", path);
	const struct pp_json *hdrs = pp_json_get(cs, "headers");
	if (hdrs && !(g->subject_headers = pp_json_clone(hdrs)))
		return pp_fail(err, PP_ENOMEM, "%s: out of memory", path);
	const struct pp_json *fmt = pp_json_get(cs, "format");
	const char *ftype = pp_json_get_string(fmt, "type");
	if (ftype && !strcmp(ftype, "json"))
		return dup_field(&g->subject_json_field, fmt, "subject_token_field_name", true,
				 path, err);
	if (ftype && strcmp(ftype, "text"))
		return pp_fail(err, PP_EINVALID,
			       "%s: credential_source.format.type must be text or json", path);
	return 0;
}

/* The "type" of a Google key file, one row each. */
static const struct {
	const char *name;
	enum gcp_src src;
	int (*load)(struct pp_gcp *g, const struct pp_json *j, const char *path,
		    struct pp_error *err);
} key_types[] = {
	{"service_account", SRC_SERVICE_ACCOUNT, load_service_account},
	{"authorized_user", SRC_AUTHORIZED_USER, load_authorized_user},
	{"external_account", SRC_EXTERNAL, load_external_account},
};

/* A key, parsed (j is the caller's); origin names where it came from. */
static int load_key(struct pp_gcp *g, const struct pp_json *j, const char *path,
		    const struct pp_cred_conf *conf, struct pp_error *err)
{
	int rc = 0;
	if (!(g->origin = strdup(path)))
		return pp_fail(err, PP_ENOMEM, "%s: out of memory", path);
	const char *type = pp_json_get_string(j, "type");
	int row = pp_cred_source_row(key_types, sizeof(key_types) / sizeof(key_types[0]),
				     sizeof(key_types[0]), type);
	if (!type) {
		rc = pp_fail(err, PP_EINVALID, "%s: type missing", path);
	} else if (row < 0) {
		rc = pp_fail(err, PP_EINVALID,
			     "%s: type \"%s\" is not supported (service_account, authorized_user, "
			     "external_account)",
			     path, type);
	} else {
		g->src = key_types[row].src;
		rc = key_types[row].load(g, j, path, err);
	}
	if (!rc)
		rc = dup_field(&g->project, j, "project_id", false, path, err);
	if (rc)
		return rc;

	const char *def = g->src == SRC_EXTERNAL ? PP_GCP_STS_URI : PP_GCP_TOKEN_URI;
	if (!g->audience && !(g->audience = strdup(def)))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	const char *override = g->src == SRC_EXTERNAL ? conf->sts_endpoint : conf->token_uri;
	g->token_url = strdup(override && *override ? override : g->audience);
	return g->token_url ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
}

static int load_key_file(struct pp_gcp *g, const char *path, const struct pp_cred_conf *conf,
			 struct pp_error *err)
{
	struct pp_json_limits lim = {.max_bytes = KEY_FILE_MAX};
	struct pp_json *j = NULL;
	int rc = pp_json_parse_file(path, &lim, &j, err);
	if (!rc)
		rc = load_key(g, j, path, conf, err);
	pp_json_free(j);
	return rc;
}

/* The key's JSON itself (a job's service_account_info). */
static int load_key_json(struct pp_gcp *g, const struct pp_cred_conf *conf, struct pp_error *err)
{
	struct pp_json_limits lim = {.max_bytes = KEY_FILE_MAX};
	struct pp_json *j = NULL;
	int rc = pp_json_parse(conf->key_json, strlen(conf->key_json), &lim, &j, err);
	if (rc)
		return pp_error_prefix(err, "service_account_info: ");
	rc = load_key(g, j, "service_account_info", conf, err);
	pp_json_free(j);
	return rc;
}

static int set_metadata(struct pp_gcp *g, const struct pp_cred_conf *conf, struct pp_error *err)
{
	const char *host = conf->metadata_host;
	if (!host || !*host)
		host = getenv("GCE_METADATA_HOST");
	if (!host || !*host)
		host = PP_GCP_METADATA_HOST;
	size_t n = strlen(host);
	while (n && host[n - 1] == '/')
		n--;
	g->src = SRC_METADATA;
	if (asprintf(&g->metadata_base, "%s%.*s", strstr(host, "://") ? "" : "http://", (int)n,
		     host) < 0) {
		g->metadata_base = NULL;
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	g->origin = strdup(g->metadata_base);
	return g->origin ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
}

static bool env_set(const char *name)
{
	const char *v = getenv(name);
	return v && *v;
}

/* gcloud's ADC file: $CLOUDSDK_CONFIG or ~/.config/gcloud. */
static int adc_path(char *out, size_t size)
{
	const char *dir = getenv("CLOUDSDK_CONFIG");
	int n;
	if (dir && *dir)
		n = snprintf(out, size, "%s/application_default_credentials.json", dir);
	else if (env_set("HOME"))
		n = snprintf(out, size, "%s/.config/gcloud/application_default_credentials.json",
			     getenv("HOME"));
	else
		return -1;
	return n > 0 && (size_t)n < size ? 0 : -1;
}

/* ---- sources: one row each; the section's source picks the row ---- */

static int from_file(struct pp_gcp *g, const struct pp_cred_conf *conf, struct pp_error *err)
{
	if (!pp_cred_has(conf->file))
		return pp_fail(err, PP_EINVALID, "source = file needs file = PATH");
	return load_key_file(g, conf->file, conf, err);
}

static int from_env(struct pp_gcp *g, const struct pp_cred_conf *conf, struct pp_error *err)
{
	if (!env_set("GOOGLE_APPLICATION_CREDENTIALS"))
		return pp_fail(err, PP_EAUTH,
			       "source = env but "
			       "GOOGLE_APPLICATION_CREDENTIALS is not set");
	return load_key_file(g, getenv("GOOGLE_APPLICATION_CREDENTIALS"), conf, err);
}

/* The application-default order. */
static int from_chain(struct pp_gcp *g, const struct pp_cred_conf *conf, struct pp_error *err)
{
	char adc[4096];
	if (pp_cred_has(conf->key_json))
		return load_key_json(g, conf, err);
	/* A file named in the config or the environment must work: falling
	 * through to another identity would hide the mistake. */
	if (pp_cred_has(conf->file))
		return load_key_file(g, conf->file, conf, err);
	if (env_set("GOOGLE_APPLICATION_CREDENTIALS"))
		return load_key_file(g, getenv("GOOGLE_APPLICATION_CREDENTIALS"), conf, err);
	if (!adc_path(adc, sizeof(adc)) && access(adc, F_OK) == 0)
		return load_key_file(g, adc, conf, err);
	return set_metadata(g, conf, err);
}

static const struct {
	const char *name;
	int (*resolve)(struct pp_gcp *g, const struct pp_cred_conf *conf, struct pp_error *err);
} sources[] = {
	{"chain", from_chain},
	{"env", from_env},
	{"file", from_file},
	{"metadata", set_metadata},
};

static int resolve(struct pp_gcp *g, const struct pp_cred_conf *conf, struct pp_error *err)
{
	const char *source = pp_cred_source(conf);
	int row = pp_cred_source_row(sources, sizeof(sources) / sizeof(sources[0]),
				     sizeof(sources[0]), source);
	if (row < 0)
		return pp_cred_source_check(&pp_cred_gcp, conf, err);
	return sources[row].resolve(g, conf, err);
}

int pp_gcp_new(const struct pp_cred_conf *conf, struct pp_gcp **out, struct pp_error *err)
{
	struct pp_gcp *g = calloc(1, sizeof(*g));
	if (!g)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	pthread_mutex_init(&g->mu, NULL);
	int rc = resolve(g, conf, err);
	const char *env_project = getenv("GOOGLE_CLOUD_PROJECT");
	if (!env_project || !*env_project)
		env_project = getenv("GCLOUD_PROJECT");
	/* google-auth: the environment names the project before the key does. */
	if (!rc && env_project && *env_project) {
		free(g->project);
		if (!(g->project = strdup(env_project)))
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if (!rc) {
		const char *who = g->email	    ? g->email
				  : g->client_id    ? g->client_id
				  : g->sts_audience ? g->sts_audience
						    : "default";
		if (asprintf(&g->cache_key, "gcp|%s|%s|%s|%s", source_names[g->src], who,
			     g->token_url ? g->token_url : g->metadata_base,
			     g->impersonation_url ? g->impersonation_url : "") < 0) {
			g->cache_key = NULL;
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
		}
	}
	if (rc) {
		pp_gcp_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

void pp_gcp_free(struct pp_gcp *g)
{
	if (!g)
		return;
	char **strs[] = {&g->origin,
			 &g->project,
			 &g->cache_key,
			 &g->email,
			 &g->key_id,
			 &g->private_key,
			 &g->audience,
			 &g->token_url,
			 &g->client_id,
			 &g->client_secret,
			 &g->refresh_token,
			 &g->sts_audience,
			 &g->subject_token_type,
			 &g->subject_file,
			 &g->subject_url,
			 &g->subject_json_field,
			 &g->impersonation_url,
			 &g->metadata_base,
			 &g->meta_project};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		free(*strs[i]);
	pp_json_free(g->subject_headers);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

const char *pp_gcp_cache_key(const struct pp_gcp *g)
{
	return g->cache_key;
}

const char *pp_gcp_source(const struct pp_gcp *g)
{
	return source_names[g->src];
}

int pp_gcp_assertion(const struct pp_gcp *g, time_t now, char **out, struct pp_error *err)
{
	if (g->src != SRC_SERVICE_ACCOUNT)
		return pp_fail(err, PP_EINVALID, "%s: not a service-account key", g->origin);
	jwt_t *jwt = NULL;
	char *s = NULL;
	/* aud is the key's token_uri (google-auth uses the fixed Google
	 * endpoint, which is what real keys carry); a token_uri override only
	 * changes where the grant is sent. */
	if (jwt_new(&jwt) == 0 &&
	    jwt_set_alg(jwt, JWT_ALG_RS256, (const unsigned char *)g->private_key,
			(int)strlen(g->private_key)) == 0 &&
	    (!g->key_id || jwt_add_header(jwt, "kid", g->key_id) == 0) &&
	    jwt_add_grant(jwt, "iss", g->email) == 0 &&
	    jwt_add_grant(jwt, "scope", PP_GCP_SCOPE) == 0 &&
	    jwt_add_grant(jwt, "aud", g->audience) == 0 &&
	    jwt_add_grant_int(jwt, "iat", (long)now) == 0 &&
	    jwt_add_grant_int(jwt, "exp", (long)now + JWT_LIFETIME) == 0)
		s = jwt_encode_str(jwt);
	jwt_free(jwt);
	ERR_clear_error();
	if (!s)
		return pp_fail(err, PP_EAUTH,
			       "%s: signing the JWT assertion with private_key failed", g->origin);
	*out = s;
	return 0;
}

static void post_form_init(struct pp_http_req *req, const char *url, struct pp_buf *form)
{
	pp_http_req_init(req, "POST", url);
	pp_http_req_set_header(req, "Content-Type", "application/x-www-form-urlencoded");
	pp_http_req_set_header(req, "Accept", "application/json");
	pp_http_req_body(req, form->data, form->len);
}

static int post_token_form(struct pp_gcp *g, struct pp_buf *form, const char *what,
			   struct pp_token_grant *out, struct pp_error *err)
{
	struct pp_http_req req;
	post_form_init(&req, g->token_url, form);
	int rc = req.url && req.body ? pp_oauth_exchange(&req, what, out, err)
				     : pp_fail(err, PP_ENOMEM, "%s: out of memory", what);
	pp_http_req_free(&req);
	return rc;
}

static int fetch_service_account(struct pp_gcp *g, struct pp_token_grant *out, struct pp_error *err)
{
	char *assertion = NULL;
	int rc = pp_gcp_assertion(g, time(NULL), &assertion, err);
	if (rc)
		return rc;
	struct pp_buf form;
	pp_buf_init(&form, 64 << 10);
	if (pp_form_add(&form, "grant_type", GRANT_JWT_BEARER) ||
	    pp_form_add(&form, "assertion", assertion))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	free(assertion);
	if (!rc)
		rc = post_token_form(g, &form, g->origin, out, err);
	pp_buf_free(&form);
	return rc;
}

static int fetch_authorized_user(struct pp_gcp *g, struct pp_token_grant *out, struct pp_error *err)
{
	struct pp_buf form;
	int rc = 0;
	pp_buf_init(&form, 64 << 10);
	if (pp_form_add(&form, "grant_type", "refresh_token") ||
	    pp_form_add(&form, "client_id", g->client_id) ||
	    pp_form_add(&form, "client_secret", g->client_secret) ||
	    pp_form_add(&form, "refresh_token", g->refresh_token))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc)
		rc = post_token_form(g, &form, g->origin, out, err);
	pp_buf_free(&form);
	return rc;
}

static void trim(struct pp_buf *b)
{
	if (!b->len)
		return;
	while (b->len && isspace((unsigned char)b->data[b->len - 1]))
		b->data[--b->len] = '\0';
	size_t i = 0;
	while (i < b->len && isspace((unsigned char)b->data[i]))
		i++;
	memmove(b->data, b->data + i, b->len - i + 1);
	b->len -= i;
}

static int read_subject_token(struct pp_gcp *g, struct pp_buf *tok, struct pp_error *err)
{
	int rc;
	const char *where = g->subject_file ? g->subject_file : g->subject_url;

	if (g->subject_file) {
		rc = pp_file_read(g->subject_file, SUBJECT_TOKEN_MAX, tok, err);
	} else {
		struct pp_http_req req;
		struct pp_http_resp resp;
		pp_http_req_init(&req, "GET", g->subject_url);
		pp_json_foreach (h, g->subject_headers)
			if (h->type == PP_JSON_STRING)
				pp_http_req_set_header(&req, h->key, h->str);
		req.max_response = SUBJECT_TOKEN_MAX;
		pp_http_resp_init(&resp, SUBJECT_TOKEN_MAX);
		rc = pp_http_perform(&req, &resp, err);
		if (!rc)
			rc = pp_http_classify(&req, &resp, err);
		if (!rc && pp_buf_append(tok, pp_buf_str(&resp.body), resp.body.len))
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
		pp_http_resp_free(&resp);
		pp_http_req_free(&req);
	}
	if (rc)
		return pp_error_prefix(err, "%s: subject token: ", g->origin);
	if (g->subject_json_field) {
		struct pp_json *j = NULL;
		const char *v = NULL;
		if (!pp_json_parse(pp_buf_str(tok), tok->len, NULL, &j, NULL))
			v = pp_json_get_string(j, g->subject_json_field);
		char *copy = v ? strdup(v) : NULL;
		pp_json_free(j);
		pp_buf_reset(tok);
		if (!copy)
			return pp_fail(err, PP_EAUTH,
				       "%s: subject token %s: no string field \"%s\"", g->origin,
				       where, g->subject_json_field);
		rc = pp_buf_puts(tok, copy);
		free(copy);
		if (rc)
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	trim(tok);
	if (!tok->len)
		return pp_fail(err, PP_EAUTH, "%s: subject token %s is empty", g->origin, where);
	pp_secret_register_rotating(tok->data);
	return 0;
}

/* An RFC 3339 time in seconds since the epoch; -1 if absent or bad. */
static time_t parse_rfc3339_utc(const char *s)
{
	int64_t ms;
	return s && !pp_time_parse(s, 0, &ms) ? (time_t)(ms / 1000) : -1;
}

static int impersonate(struct pp_gcp *g, const char *sts_token, struct pp_token_grant *out,
		       struct pp_error *err)
{
	static const char body[] = "{\"scope\":[\"" PP_GCP_SCOPE "\"],\"lifetime\":\"3600s\"}";
	struct pp_http_req req;
	struct pp_http_resp resp;
	struct pp_json *j = NULL;
	int rc;

	pp_http_req_init(&req, "POST", g->impersonation_url);
	pp_http_req_set_header(&req, "Content-Type", "application/json");
	pp_http_req_header(&req, "Authorization", "Bearer %s", sts_token);
	pp_http_req_body(&req, body, sizeof(body) - 1);
	pp_http_resp_init(&resp, 64 << 10);
	rc = pp_http_perform(&req, &resp, err);
	if (!rc)
		rc = pp_http_classify(&req, &resp, err);
	if (!rc)
		rc = pp_json_parse(pp_buf_str(&resp.body), resp.body.len, NULL, &j, err);
	if (!rc) {
		const char *tok = pp_json_get_string(j, "accessToken");
		time_t exp = parse_rfc3339_utc(pp_json_get_string(j, "expireTime"));
		time_t now = time(NULL);
		if (!tok || !*tok || exp <= now)
			rc = pp_fail(err, PP_EAUTH,
				     "POST %s: response without accessToken or a future expireTime",
				     g->impersonation_url);
		else if (!(out->access_token = strdup(tok)))
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
		else
			out->expires_in = (long)(exp - now);
		if (tok)
			pp_secret_register_rotating(tok);
	}
	pp_json_free(j);
	pp_http_resp_free(&resp);
	pp_http_req_free(&req);
	if (rc)
		pp_error_prefix(err, "%s: service account impersonation: ", g->origin);
	return rc;
}

static int fetch_external(struct pp_gcp *g, struct pp_token_grant *out, struct pp_error *err)
{
	struct pp_buf tok, form;
	struct pp_token_grant sts = {0};
	int rc;

	pp_buf_init(&tok, SUBJECT_TOKEN_MAX);
	pp_buf_init(&form, 2 * SUBJECT_TOKEN_MAX);
	rc = read_subject_token(g, &tok, err);
	if (!rc && (pp_form_add(&form, "grant_type", GRANT_TOKEN_EXCHANGE) ||
		    pp_form_add(&form, "audience", g->sts_audience) ||
		    pp_form_add(&form, "scope", PP_GCP_SCOPE) ||
		    pp_form_add(&form, "requested_token_type", TOKEN_TYPE_ACCESS) ||
		    pp_form_add(&form, "subject_token", tok.data) ||
		    pp_form_add(&form, "subject_token_type", g->subject_token_type)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc)
		rc = post_token_form(g, &form, g->origin, g->impersonation_url ? &sts : out, err);
	if (!rc && g->impersonation_url)
		rc = impersonate(g, sts.access_token, out, err);
	free(sts.access_token);
	pp_buf_free(&tok);
	pp_buf_free(&form);
	return rc;
}

static int metadata_get(struct pp_gcp *g, const char *path, struct pp_http_resp *resp,
			struct pp_error *err)
{
	struct pp_http_req req;
	char *url = NULL;
	int rc;

	pp_http_resp_init(resp, 64 << 10);
	if (asprintf(&url, "%s/computeMetadata/v1/%s", g->metadata_base, path) < 0)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	pp_http_req_init(&req, "GET", url);
	free(url);
	pp_http_req_set_header(&req, "Metadata-Flavor", "Google");
	req.timeout_ms = PP_GCP_METADATA_TIMEOUT_MS;
	req.max_response = 64 << 10;
	rc = pp_http_perform(&req, resp, err);
	if (!rc)
		rc = pp_http_classify(&req, resp, err);
	pp_http_req_free(&req);
	if (rc)
		pp_error_prefix(err, "metadata server: ");
	return rc;
}

static int fetch_metadata(struct pp_gcp *g, struct pp_token_grant *out, struct pp_error *err)
{
	struct pp_http_req req;
	char *url = NULL;

	if (asprintf(&url, "%s/computeMetadata/v1/instance/service-accounts/default/token",
		     g->metadata_base) < 0)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	pp_http_req_init(&req, "GET", url);
	free(url);
	pp_http_req_set_header(&req, "Metadata-Flavor", "Google");
	req.timeout_ms = PP_GCP_METADATA_TIMEOUT_MS;
	int rc = req.url ? pp_oauth_exchange(&req, "metadata server", out, err)
			 : pp_fail(err, PP_ENOMEM, "out of memory");
	pp_http_req_free(&req);
	if (rc == PP_ETRANSIENT && err)
		pp_error_prefix(err, "no Google credentials (no key file, no "
				     "GOOGLE_APPLICATION_CREDENTIALS, no gcloud ADC file) and ");
	return rc;
}

int pp_gcp_fetch(void *ud, struct pp_token_grant *out, struct pp_error *err)
{
	struct pp_gcp *g = ud;
	switch (g->src) {
	case SRC_SERVICE_ACCOUNT: return fetch_service_account(g, out, err);
	case SRC_AUTHORIZED_USER: return fetch_authorized_user(g, out, err);
	case SRC_EXTERNAL: return fetch_external(g, out, err);
	case SRC_METADATA: return fetch_metadata(g, out, err);
	}
	return pp_fail(err, PP_EINVALID, "unknown Google credential source");
}

const char *pp_gcp_project(struct pp_gcp *g)
{
	if (g->project || g->src != SRC_METADATA)
		return g->project;
	pthread_mutex_lock(&g->mu);
	/* Ask once: off GCE every attempt costs the metadata timeout. */
	if (!g->meta_project_asked) {
		struct pp_http_resp resp;
		struct pp_error err;
		g->meta_project_asked = true;
		if (!metadata_get(g, "project/project-id", &resp, &err)) {
			trim(&resp.body);
			if (resp.body.len)
				g->meta_project = strdup(resp.body.data);
		} else {
			pp_warn("GCP project from the metadata server: %s", err.msg);
		}
		pp_http_resp_free(&resp);
	}
	pthread_mutex_unlock(&g->mu);
	return g->meta_project;
}

int pp_gcp_identity(struct pp_gcp *g, struct pp_buf *out, struct pp_error *err)
{
	int rc = 0;
	switch (g->src) {
	case SRC_SERVICE_ACCOUNT:
		rc = pp_buf_printf(out, "service account %s (key %s) from %s", g->email,
				   g->key_id ? g->key_id : "without id", g->origin);
		break;
	case SRC_AUTHORIZED_USER:
		rc = pp_buf_printf(out, "user credentials (OAuth client %s) from %s", g->client_id,
				   g->origin);
		break;
	case SRC_EXTERNAL:
		rc = pp_buf_printf(out, "workload identity federation %s%s%s from %s",
				   g->sts_audience, g->impersonation_url ? " impersonating " : "",
				   g->impersonation_url ? g->impersonation_url : "", g->origin);
		break;
	case SRC_METADATA: {
		struct pp_http_resp resp;
		rc = metadata_get(g, "instance/service-accounts/default/email", &resp, err);
		if (!rc) {
			trim(&resp.body);
			rc = pp_buf_printf(out, "metadata server %s, service account %s",
					   g->metadata_base, pp_buf_str(&resp.body));
		}
		pp_http_resp_free(&resp);
		if (rc && rc != PP_ENOMEM)
			return rc;
		break;
	}
	}
	return rc ? pp_fail(err, PP_ENOMEM, "identity: out of memory") : 0;
}

/* ---- the backend ---- */

/* An opened GCP credential: the resolved source and its shared token. */
struct gcp_cred {
	struct pp_gcp *g;
	struct pp_token_cache *cache;
};

static int gcp_check(const struct pp_cred_conf *conf, struct pp_error *err)
{
	if (!strcmp(pp_cred_source(conf), "file") && !pp_cred_has(conf->file))
		return pp_cred_conf_fail(conf, PP_EINVALID, err, "source file needs file");
	return 0;
}

static void gcp_close(void *state)
{
	struct gcp_cred *c = state;
	if (!c)
		return;
	pp_token_cache_release(c->cache);
	pp_gcp_free(c->g);
	free(c);
}

static int gcp_open(const struct pp_cred_conf *conf, void **state, struct pp_error *err)
{
	struct gcp_cred *c = calloc(1, sizeof(*c));
	if (!c)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	int rc = pp_gcp_new(conf, &c->g, err);
	if (!rc && !(c->cache = pp_token_cache_acquire(pp_gcp_cache_key(c->g))))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (rc) {
		gcp_close(c);
		return rc;
	}
	*state = c;
	return 0;
}

static int gcp_apply(void *state, struct pp_http_req *req, struct pp_error *err)
{
	struct gcp_cred *c = state;
	return pp_bearer_apply(c->cache, pp_gcp_fetch, c->g, req, err);
}

static void gcp_invalidate(void *state)
{
	pp_token_cache_invalidate(((struct gcp_cred *)state)->cache);
}

static int gcp_identity(void *state, struct pp_buf *out, struct pp_error *err)
{
	return pp_gcp_identity(((struct gcp_cred *)state)->g, out, err);
}

static long gcp_seconds_left(void *state)
{
	return pp_token_cache_seconds_left(((struct gcp_cred *)state)->cache);
}

static unsigned long gcp_refreshes(void *state)
{
	return pp_token_cache_refreshes(((struct gcp_cred *)state)->cache);
}

static const char *gcp_project(void *state)
{
	return pp_gcp_project(((struct gcp_cred *)state)->g);
}

/* A job's credentials: prefect-gcp GcpCredentials (credentials.py:
 * service_account_info, the key's JSON itself). Without it, the pool's
 * credentials (Prefect: application default). A service_account_file is
 * refused: it names a file on this host, and a job must not pick one (one
 * pool's deployment could take another pool's key). */
static int gcp_from_block(const struct pp_json *d, struct pp_cred_conf *conf, struct pp_error *err)
{
	const struct pp_json *info = pp_json_get(d, "service_account_info");
	if (pp_json_is(info, PP_JSON_OBJECT) && info->count) {
		if (!(conf->key_json = pp_json_to_string(info, PP_JSON_COMPACT)))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		return 0;
	}
	const char *file = pp_json_get_string(d, "service_account_file");
	if (file && *file)
		return pp_fail(err, PP_EINVALID,
			       "credentials: service_account_file is not read from a job (it "
			       "names a file on this host); give service_account_info, or the file "
			       "to the pool's [credentials] section");
	return PP_ENOTFOUND;
}

const struct pp_cred_backend pp_cred_gcp = {
	.abi = PP_CRED_BACKEND_ABI,
	.type = "gcp",
	.what = "bearer token",
	.project_label = "project",
	PP_CRED_SOURCES(sources),
	.check = gcp_check,
	.open = gcp_open,
	.apply = gcp_apply,
	.invalidate = gcp_invalidate,
	.identity = gcp_identity,
	.seconds_left = gcp_seconds_left,
	.refreshes = gcp_refreshes,
	.close = gcp_close,
	.project = gcp_project,
	.from_block = gcp_from_block,
};
