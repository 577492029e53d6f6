/* The AWS credential backend: the SDKs' chain of sources (static config,
 * env, web identity, shared files, container, IMDSv2), the helpers its
 * sources share, and request signing with a per-day derived key. The shared
 * files are read in auth/aws_files.c, the remote sources (STS, container,
 * IMDS) are in auth/aws_remote.c. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "auth/auth.h"
#include "auth/aws.h"
#include "auth/backend.h"
#include "lib/http.h"
#include "lib/log.h"

/* Temporary keys are replaced this long before they expire (botocore's
 * advisory refresh is 15 min, mandatory 10; 5 min keeps requests signed
 * with keys that outlive any retry). */
#define REFRESH_MARGIN 300

void pp_aws_creds_free(struct pp_aws_creds *c)
{
	free(c->akid);
	if (c->secret)
		OPENSSL_cleanse(c->secret, strlen(c->secret));
	free(c->secret);
	if (c->token)
		OPENSSL_cleanse(c->token, strlen(c->token));
	free(c->token);
	memset(c, 0, sizeof(*c));
}

const char *pp_aws_env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* A source that was asked for (by name or by its settings) but is absent
 * is an authentication failure, not "try the next one". */
int pp_aws_auth_failure(int rc, struct pp_error *err)
{
	if (rc != PP_ENOTFOUND)
		return rc;
	if (err)
		err->code = PP_EAUTH;
	return PP_EAUTH;
}

static int dup_field(char **dst, const char *src, struct pp_error *err)
{
	if (!src) {
		*dst = NULL;
		return 0;
	}
	if (!(*dst = strdup(src)))
		return pp_fail(err, PP_ENOMEM, "aws credentials: out of memory");
	return 0;
}

/* Fill c from three strings; ENOMEM is the only failure. */
int pp_aws_creds_set(struct pp_aws_creds *c, const char *akid, const char *secret,
		     const char *token, time_t expires, const char *source, struct pp_error *err)
{
	int rc = dup_field(&c->akid, akid, err);
	if (!rc)
		rc = dup_field(&c->secret, secret, err);
	if (!rc)
		rc = dup_field(&c->token, pp_cred_has(token) ? token : NULL, err);
	c->expires = expires;
	c->source = source;
	if (rc)
		pp_aws_creds_free(c);
	return rc;
}

/* ---- small parsers shared by the sources ---- */

int pp_aws_read_file(const char *path, size_t max, char **out, const char *what,
		     struct pp_error *err)
{
	FILE *f = fopen(path, "rb");
	struct pp_buf b;
	char chunk[4096];
	size_t n;

	if (!f)
		return pp_fail(err, errno == ENOENT ? PP_ENOTFOUND : PP_EIO, "%s %s: %s", what,
			       path, strerror(errno));
	pp_buf_init(&b, max);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (pp_buf_append(&b, chunk, n)) {
			fclose(f);
			pp_buf_free(&b);
			return pp_fail(err, PP_EINVALID, "%s %s: larger than %zu bytes", what, path,
				       max);
		}
	}
	bool failed = ferror(f);
	fclose(f);
	if (failed) {
		pp_buf_free(&b);
		return pp_fail(err, PP_EIO, "%s %s: read error", what, path);
	}
	*out = pp_buf_steal(&b);
	return 0;
}

char *pp_aws_trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* ---- sources; each returns PP_ENOTFOUND when it is not configured ---- */

static int from_static(struct pp_aws *a, struct pp_aws_creds *c, struct pp_error *err)
{
	const struct pp_cred_conf *conf = a->conf;
	if (!pp_cred_has(conf->access_key_id) && !pp_cred_has(conf->secret_access_key))
		return pp_fail(err, PP_ENOTFOUND, "static: access_key_id not set");
	if (!pp_cred_has(conf->access_key_id) || !pp_cred_has(conf->secret_access_key))
		return pp_fail(
			err, PP_EAUTH, "%s:%d: credentials \"%s\": %s missing",
			conf->file_name ? conf->file_name : "(config)", conf->line, conf->name,
			pp_cred_has(conf->access_key_id) ? "secret_access_key" : "access_key_id");
	return pp_aws_creds_set(c, conf->access_key_id, conf->secret_access_key,
				conf->session_token, 0, "static", err);
}

int pp_aws_from_env(struct pp_aws *a, struct pp_aws_creds *c, struct pp_error *err)
{
	const char *akid = pp_aws_env("AWS_ACCESS_KEY_ID");
	const char *secret = pp_aws_env("AWS_SECRET_ACCESS_KEY");
	const char *token = pp_aws_env("AWS_SESSION_TOKEN");

	(void)a;
	if (!token)
		token = pp_aws_env("AWS_SECURITY_TOKEN");
	if (!akid)
		return pp_fail(err, PP_ENOTFOUND, "env: AWS_ACCESS_KEY_ID not set");
	if (!secret)
		return pp_fail(err, PP_EAUTH,
			       "env: AWS_SECRET_ACCESS_KEY missing (AWS_ACCESS_KEY_ID is set)");
	return pp_aws_creds_set(c, akid, secret, token, 0, "env", err);
}

/* ---- the chain ---- */

typedef int (*source_fn)(struct pp_aws *a, struct pp_aws_creds *c, struct pp_error *err);

static const struct {
	const char *name;
	source_fn fn;
} sources[] = {
	{"static", from_static},
	{"env", pp_aws_from_env},
	{"web_identity", pp_aws_from_web_identity},
	{"profile", pp_aws_from_profile},
	{"container", pp_aws_from_container},
	{"imds", pp_aws_from_imds},
};

#define NSOURCES (sizeof(sources) / sizeof(sources[0]))

static bool chain_mode(const struct pp_cred_conf *conf)
{
	return !pp_cred_has(conf->source) || !strcmp(conf->source, "chain");
}

static int resolve(struct pp_aws *a, struct pp_aws_creds *c, struct pp_error *err)
{
	struct pp_buf tried;
	int rc = PP_ENOTFOUND;

	if (!chain_mode(a->conf)) {
		for (size_t i = 0; i < NSOURCES; i++)
			if (!strcmp(a->conf->source, sources[i].name)) {
				return pp_aws_auth_failure(sources[i].fn(a, c, err), err);
			}
		return pp_cred_source_check(&pp_cred_aws, a->conf, err);
	}
	pp_buf_init(&tried, 8192);
	for (size_t i = 0; i < NSOURCES; i++) {
		/* An explicit profile replaces the environment, as in botocore. */
		if (sources[i].fn == pp_aws_from_env && pp_cred_has(a->conf->profile))
			continue;
		rc = sources[i].fn(a, c, err);
		if (rc != PP_ENOTFOUND &&
		    !(rc == PP_ETRANSIENT && sources[i].fn == pp_aws_from_imds))
			break;
		pp_buf_printf(&tried, "%s%s", tried.len ? "; " : "",
			      err ? err->msg : sources[i].name);
	}
	if (rc == PP_ENOTFOUND || rc == PP_ETRANSIENT)
		rc = pp_fail(err, PP_EAUTH, "no AWS credentials found (%s)", pp_buf_str(&tried));
	pp_buf_free(&tried);
	return rc;
}

static void install(struct pp_aws *a, struct pp_aws_creds *c)
{
	free(a->access_key_id);
	if (a->secret_access_key)
		OPENSSL_cleanse(a->secret_access_key, strlen(a->secret_access_key));
	free(a->secret_access_key);
	if (a->session_token)
		OPENSSL_cleanse(a->session_token, strlen(a->session_token));
	free(a->session_token);
	a->access_key_id = c->akid;
	a->secret_access_key = c->secret;
	a->session_token = c->token;
	a->expires = c->expires;
	snprintf(a->source, sizeof(a->source), "%s", c->source ? c->source : "");
	pp_secret_register_rotating(a->secret_access_key);
	pp_secret_register_rotating(a->session_token);
	memset(c, 0, sizeof(*c));
	/* The derived key belongs to the old secret. */
	a->key_scope[0] = '\0';
	OPENSSL_cleanse(a->signing_key, sizeof(a->signing_key));
}

int pp_aws_ensure(struct pp_aws *a, struct pp_error *err)
{
	struct pp_aws_creds c = {0};
	int rc;

	if (a->access_key_id && (!a->expires || time(NULL) < a->expires - REFRESH_MARGIN))
		return 0;
	rc = resolve(a, &c, err);
	if (rc) {
		pp_error_prefix(err, "aws credentials \"%s\": ", a->conf->name);
		return rc;
	}
	if (a->access_key_id || c.expires)
		a->refreshes++;
	install(a, &c);
	pp_debug("aws credentials \"%s\": %s keys %s%s", a->conf->name, a->source, a->access_key_id,
		 a->expires ? " (temporary)" : "");
	return 0;
}

int pp_aws_init(struct pp_aws *a, const struct pp_cred_conf *conf, struct pp_error *err)
{
	const char *region;

	memset(a, 0, sizeof(*a));
	a->conf = conf;
	int rc = pp_cred_source_check(&pp_cred_aws, conf, err);
	if (rc)
		return rc;
	if (conf->secret_access_key)
		pp_secret_register(conf->secret_access_key);
	if (conf->session_token)
		pp_secret_register(conf->session_token);
	region = pp_cred_has(conf->region) ? conf->region : pp_aws_env("AWS_REGION");
	if (!region)
		region = pp_aws_env("AWS_DEFAULT_REGION");
	a->region = region ? strdup(region) : pp_aws_profile_region(a);
	if (region && !a->region)
		return pp_fail(err, PP_ENOMEM, "credentials \"%s\": out of memory", conf->name);
	return 0;
}

void pp_aws_free(struct pp_aws *a)
{
	struct pp_aws_creds none = {0};
	install(a, &none);
	free(a->access_key_id);
	free(a->region);
	free(a->service);
	memset(a, 0, sizeof(*a));
}

/* ---- signing ---- */

struct url_parts {
	char host[512]; /* host[:port] as sent in Host: */
	char *path;
	char *query;
};

static int split_url(const char *url, struct url_parts *u, struct pp_error *err)
{
	/* pp_http_req_init leaves url NULL when its copy could not be made. */
	const char *p = url ? strstr(url, "://") : NULL;
	bool https;

	memset(u, 0, sizeof(*u));
	if (!url)
		return pp_fail(err, PP_ENOMEM, "sigv4: the request has no URL (out of memory)");
	if (!p)
		return pp_fail(err, PP_EINVALID, "sigv4: URL %s has no scheme", url);
	https = (size_t)(p - url) == 5 && !strncasecmp(url, "https", 5);
	p += 3;
	size_t auth_len = strcspn(p, "/?#");
	const char *at = memchr(p, '@', auth_len);
	if (at) {
		auth_len -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	const char *host_end = p + auth_len;
	const char *colon = NULL;
	for (const char *c = p; c < host_end; c++)
		if (*c == ':' && !memchr(c, ']', (size_t)(host_end - c)))
			colon = c;
	size_t host_len = auth_len;
	/* curl leaves the scheme's default port out of Host:, so must we. */
	if (colon && !strncmp(colon + 1, https ? "443" : "80", (size_t)(host_end - colon - 1)) &&
	    (size_t)(host_end - colon - 1) == (https ? 3u : 2u))
		host_len = (size_t)(colon - p);
	if (!host_len || host_len >= sizeof(u->host))
		return pp_fail(err, PP_EINVALID, "sigv4: URL %s: bad host", url);
	memcpy(u->host, p, host_len);
	u->host[host_len] = '\0';
	for (char *c = u->host; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	const char *rest = host_end;
	size_t path_len = strcspn(rest, "?#");
	u->path = path_len ? strndup(rest, path_len) : strdup("/");
	if (rest[path_len] == '?')
		u->query = strndup(rest + path_len + 1, strcspn(rest + path_len + 1, "#"));
	if (!u->path || (rest[path_len] == '?' && !u->query)) {
		free(u->path);
		free(u->query);
		return pp_fail(err, PP_ENOMEM, "sigv4: out of memory");
	}
	return 0;
}

static bool signable_header(const char *name)
{
	return !strcasecmp(name, "content-type") || !strncasecmp(name, "x-amz-", 6);
}

/* Service from an AWS endpoint host: "ecs.us-east-1.amazonaws.com" -> "ecs". */
static int service_from_host(const char *host, char *out, size_t size)
{
	size_t n = strcspn(host, ".:");
	if (!n || n >= size || host[n] != '.' || !strstr(host, ".amazonaws.com"))
		return PP_EINVALID;
	memcpy(out, host, n);
	out[n] = '\0';
	return 0;
}

/* Is the key held derived for date/region/service? Compared in place:
 * formatting the scope to compare it cost as much as the rest of the
 * request's bookkeeping. */
static bool key_scope_is(const char *scope, const char *date, const char *region,
			 const char *service)
{
	const char *parts[] = {date, region, service};
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(parts[i]);
		if (strncmp(scope, parts[i], n) || scope[n] != (i < 2 ? '/' : '\0'))
			return false;
		scope += n + 1;
	}
	return true;
}

int pp_aws_sign_request(struct pp_aws *a, struct pp_http_req *req, time_t now, struct pp_error *err)
{
	struct url_parts u;
	struct pp_sigv4_output out;
	struct pp_sigv4_input in = {0};
	const char *names[64], *values[64];
	char service_buf[64], date[9], amz_date[17];
	const char *service = a->service;
	struct tm tm;
	int rc;

	if (!a->access_key_id || !a->secret_access_key)
		return pp_fail(err, PP_EAUTH, "sigv4: no AWS credentials resolved");
	if (!pp_cred_has(a->region))
		return pp_fail(
			err, PP_EINVALID,
			"sigv4: no AWS region (set region in [credentials \"%s\"], AWS_REGION "
			"or the profile's region)",
			a->conf ? a->conf->name : "");
	if ((rc = split_url(req->url, &u, err)))
		return rc;
	if (!pp_cred_has(service)) {
		if (service_from_host(u.host, service_buf, sizeof(service_buf))) {
			rc = pp_fail(err, PP_EINVALID, "sigv4: no service for %s (set the scope)",
				     req->url);
			goto out;
		}
		service = service_buf;
	}
	if (!gmtime_r(&now, &tm) || !strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm)) {
		rc = pp_fail(err, PP_EINVALID, "sigv4: time out of range");
		goto out;
	}
	memcpy(date, amz_date, 8);
	date[8] = '\0';
	in.when = now;
	pp_sigv4_output_init(&out);
	if (pp_http_req_set_header(req, "X-Amz-Date", amz_date) ||
	    (a->session_token &&
	     pp_http_req_set_header(req, "X-Amz-Security-Token", a->session_token))) {
		rc = pp_fail(err, PP_ENOMEM, "sigv4: out of memory");
		goto out_free;
	}
	size_t n = 0;
	names[n] = "host";
	values[n++] = u.host;
	for (const struct pp_http_header *h = req->headers; h; h = h->next) {
		if (!signable_header(h->name))
			continue;
		if (n == sizeof(names) / sizeof(names[0])) {
			rc = pp_fail(err, PP_EINVALID, "sigv4: more than %zu headers to sign", n);
			goto out_free;
		}
		names[n] = h->name;
		values[n++] = h->value;
	}
	if (!key_scope_is(a->key_scope, date, a->region, service)) {
		if (pp_sigv4_signing_key(a->secret_access_key, date, a->region, service,
					 a->signing_key)) {
			rc = pp_fail(err, PP_ENOMEM, "sigv4: key derivation failed");
			goto out_free;
		}
		snprintf(a->key_scope, sizeof(a->key_scope), "%s/%s/%s", date, a->region, service);
	}
	in.method = req->method;
	in.path = u.path;
	in.query = u.query;
	in.header_names = names;
	in.header_values = values;
	in.nheaders = n;
	in.payload = req->body;
	in.payload_len = req->body_len;
	in.access_key_id = a->access_key_id;
	in.session_token = a->session_token;
	in.region = a->region;
	in.service = service;
	/* S3 alone signs the path exactly as sent. */
	in.normalize_path = strcmp(service, "s3") != 0;
	rc = pp_sigv4_sign_with_key(&in, a->signing_key, &out, err);
	if (!rc && pp_http_req_set_header(req, "Authorization", out.authorization.data))
		rc = pp_fail(err, PP_ENOMEM, "sigv4: out of memory");
out_free:
	pp_sigv4_output_free(&out);
out:
	free(u.path);
	free(u.query);
	return rc;
}

/* ---- the backend ---- */

static int aws_check(const struct pp_cred_conf *conf, struct pp_error *err)
{
	bool akid = pp_cred_has(conf->access_key_id), secret = pp_cred_has(conf->secret_access_key);
	if (!strcmp(pp_cred_source(conf), "static") && (!akid || !secret))
		return pp_cred_conf_fail(conf, PP_EINVALID, err,
					 "source static needs access_key_id and secret_access_key");
	if (akid != secret)
		return pp_cred_conf_fail(conf, PP_EINVALID, err, "%s set without %s",
					 akid ? "access_key_id" : "secret_access_key",
					 akid ? "secret_access_key" : "access_key_id");
	return 0;
}

static void aws_close(void *state)
{
	if (!state)
		return;
	pp_aws_free(state);
	free(state);
}

static int aws_open(const struct pp_cred_conf *conf, void **state, struct pp_error *err)
{
	struct pp_aws *a = malloc(sizeof(*a));
	if (!a)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	int rc = pp_aws_init(a, conf, err);
	if (rc) {
		pp_aws_free(a);
		free(a);
		return rc;
	}
	*state = a;
	return 0;
}

static int aws_apply(void *state, struct pp_http_req *req, struct pp_error *err)
{
	struct pp_aws *a = state;
	int rc = pp_aws_ensure(a, err);
	return rc ? rc : pp_aws_sign_request(a, req, time(NULL), err);
}

static void aws_invalidate(void *state)
{
	struct pp_aws *a = state;
	/* Temporary keys are fetched again; static keys cannot change. */
	if (a->expires)
		a->expires = 1;
}

static int aws_identity(void *state, struct pp_buf *out, struct pp_error *err)
{
	struct pp_aws *a = state;
	int rc = pp_aws_ensure(a, err);
	if (rc)
		return rc;
	if (pp_buf_printf(out, "access key %s (%s)", a->access_key_id,
			  a->source[0] ? a->source : "static"))
		return pp_fail(err, PP_ENOMEM, "identity: out of memory");
	return 0;
}

static long aws_seconds_left(void *state)
{
	struct pp_aws *a = state;
	time_t now = time(NULL);
	if (!a->expires || !a->access_key_id)
		return -1;
	return a->expires > now ? (long)(a->expires - now) : 0;
}

static unsigned long aws_refreshes(void *state)
{
	return ((struct pp_aws *)state)->refreshes;
}

static const char *aws_region(void *state)
{
	return ((struct pp_aws *)state)->region;
}

static int replace_str(char **dst, const char *src)
{
	char *n = src ? strdup(src) : NULL;
	if (src && !n)
		return PP_ENOMEM;
	free(*dst);
	*dst = n;
	return 0;
}

static void aws_set_scope(void *state, const char *region, const char *service)
{
	struct pp_aws *a = state;
	/* Keep the previous scope on allocation failure: signing then fails
	 * visibly at the server rather than with a NULL region here. */
	if (region && (!a->region || strcmp(a->region, region)))
		replace_str(&a->region, region);
	if (service && (!a->service || strcmp(a->service, service)))
		replace_str(&a->service, service);
}

/* STS in the credential's region: any key pair can sign for it. */
static int aws_probe_url(void *state, char *url, size_t size)
{
	struct pp_aws *a = state;
	const char *region = pp_cred_has(a->region) ? a->region : "us-east-1";
	aws_set_scope(a, region, "sts");
	int n = snprintf(url, size, "https://sts.%s.amazonaws.com/", region);
	return n < 0 || (size_t)n >= size ? PP_EINVALID : 0;
}

/* A job's aws_credentials: prefect-aws AwsCredentials (credentials.py:
 * aws_access_key_id, aws_secret_access_key, aws_session_token,
 * region_name). A key pair is the static source; none (just a region, or
 * nothing) leaves the pool's credentials in place. A profile_name is
 * refused: it names this host's files, which a job must not pick from (one
 * pool's deployment could take another pool's profile). */
static int aws_from_block(const struct pp_json *d, struct pp_cred_conf *conf, struct pp_error *err)
{
	const char *role = pp_json_get_string(d, "assume_role_arn");
	if (role && *role)
		return pp_fail(err, PP_EINVALID,
			       "aws_credentials: assume_role_arn is not supported in a job's "
			       "credentials; give the role to the pool's [credentials] section");
	int rc = pp_cred_block_field(&conf->access_key_id, d, "aws_access_key_id", err);
	if (!rc)
		rc = pp_cred_block_field(&conf->secret_access_key, d, "aws_secret_access_key", err);
	if (!rc)
		rc = pp_cred_block_field(&conf->session_token, d, "aws_session_token", err);
	if (!rc)
		rc = pp_cred_block_field(&conf->region, d, "region_name", err);
	if (rc)
		return rc;
	const char *profile = pp_json_get_string(d, "profile_name");
	if (profile && *profile)
		return pp_fail(err, PP_EINVALID,
			       "aws_credentials: profile_name is not read from a job (it names "
			       "this host's files); give the key pair, or the profile to the "
			       "pool's [credentials] section");
	if (!conf->access_key_id && !conf->secret_access_key)
		return PP_ENOTFOUND;
	if (!conf->access_key_id || !conf->secret_access_key)
		return pp_fail(err, PP_EINVALID, "aws_credentials: %s without %s",
			       conf->access_key_id ? "aws_access_key_id" : "aws_secret_access_key",
			       conf->access_key_id ? "aws_secret_access_key" : "aws_access_key_id");
	return (conf->source = strdup("static")) ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
}

const struct pp_cred_backend pp_cred_aws = {
	.abi = PP_CRED_BACKEND_ABI,
	.type = "aws",
	.what = "AWS SigV4 signature",
	PP_CRED_SOURCES(sources),
	.check = aws_check,
	.open = aws_open,
	.apply = aws_apply,
	.invalidate = aws_invalidate,
	.identity = aws_identity,
	.seconds_left = aws_seconds_left,
	.refreshes = aws_refreshes,
	.close = aws_close,
	.region = aws_region,
	.set_scope = aws_set_scope,
	.from_block = aws_from_block,
	.probe_url = aws_probe_url,
};
