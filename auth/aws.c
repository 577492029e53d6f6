/* AWS credentials in the SDKs' chain order (static config, env, web
 * identity, shared files, container, IMDSv2) and request signing with a
 * per-day derived key. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/auth.h"
#include "auth/aws.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/log.h"

/* Temporary keys are replaced this long before they expire (botocore's
 * advisory refresh is 15 min, mandatory 10; 5 min keeps requests signed
 * with keys that outlive any retry). */
#define REFRESH_MARGIN	     300
#define FILE_MAX	     ((size_t)1 << 20)
#define TOKEN_FILE_MAX	     ((size_t)64 << 10)
#define RESPONSE_MAX	     ((size_t)256 << 10)
#define IMDS_TIMEOUT_MS	     1000L
#define CONTAINER_TIMEOUT_MS 2000L
#define STS_TIMEOUT_MS	     10000L
#define PROFILE_DEPTH_MAX    4

struct aws_creds {
	char *akid;
	char *secret;
	char *token;
	time_t expires; /* 0: does not expire */
	const char *source;
};

static void creds_free(struct aws_creds *c)
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

static const char *nonempty_env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static bool has(const char *s)
{
	return s && *s;
}

/* A source that was asked for (by name or by its settings) but is absent
 * is an authentication failure, not "try the next one". */
static int as_auth_failure(int rc, struct pp_error *err)
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
static int creds_set(struct aws_creds *c, const char *akid, const char *secret, const char *token,
		     time_t expires, const char *source, struct pp_error *err)
{
	int rc = dup_field(&c->akid, akid, err);
	if (!rc)
		rc = dup_field(&c->secret, secret, err);
	if (!rc)
		rc = dup_field(&c->token, has(token) ? token : NULL, err);
	c->expires = expires;
	c->source = source;
	if (rc)
		creds_free(c);
	return rc;
}

/* ---- small parsers ---- */

/* "2026-11-29T02:00:00Z", with optional fraction and "+hh:mm" offset. */
static bool parse_iso8601(const char *s, time_t *out)
{
	struct tm tm = {0};
	const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	long offset = 0;

	if (!p)
		return false;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			;
	if (*p == '+' || *p == '-') {
		int hh, mm;
		if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
			return false;
		offset = (hh * 3600L + mm * 60L) * (*p == '+' ? 1 : -1);
		p += 6;
	} else if (*p == 'Z' || *p == 'z') {
		p++;
	}
	if (*p)
		return false;
	*out = timegm(&tm) - offset;
	return true;
}

static int read_file_capped(const char *path, size_t max, char **out, const char *what,
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

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* Inner text of the first <tag>...</tag> in [s, s+n), XML entities decoded. */
static char *xml_text(const char *s, size_t n, const char *tag, const char **end)
{
	char open[64], close[64];
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	const char *a = memmem(s, n, open, strlen(open));
	if (!a)
		return NULL;
	a += strlen(open);
	const char *b = memmem(a, n - (size_t)(a - s), close, strlen(close));
	if (!b)
		return NULL;
	if (end)
		*end = b + strlen(close);
	char *out = malloc((size_t)(b - a) + 1), *o = out;
	if (!out)
		return NULL;
	static const struct {
		const char *ent;
		char c;
	} ents[] = {
		{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
	for (const char *p = a; p < b;) {
		bool done = false;
		if (*p == '&') {
			for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
				size_t l = strlen(ents[i].ent);
				if ((size_t)(b - p) >= l && !memcmp(p, ents[i].ent, l)) {
					*o++ = ents[i].c;
					p += l;
					done = true;
					break;
				}
			}
			/* Numeric references in ASCII range (tokens and keys are ASCII). */
			unsigned v;
			int used = 0;
			if (!done &&
			    (sscanf(p, "&#x%x;%n", &v, &used) == 1 ||
			     sscanf(p, "&#%u;%n", &v, &used) == 1) &&
			    used > 0 && v > 0 && v < 128 && p + used <= b) {
				*o++ = (char)v;
				p += used;
				done = true;
			}
		}
		if (!done)
			*o++ = *p++;
	}
	*o = '\0';
	return out;
}

/* ---- HTTP ---- */

static int http_get_json(struct pp_http_req *req, const char *what, struct pp_json **out,
			 struct pp_error *err)
{
	struct pp_http_resp resp;
	int rc;

	pp_http_resp_init(&resp, RESPONSE_MAX);
	rc = pp_http_perform(req, &resp, err);
	if (!rc && (resp.status < 200 || resp.status > 299))
		rc = pp_http_classify(req, &resp, err);
	if (!rc) {
		rc = pp_json_parse(resp.body.data ? resp.body.data : "", resp.body.len, NULL, out,
				   err);
		if (rc)
			pp_error_prefix(err, "%s %s: response: ", req->method, req->url);
	}
	if (rc)
		pp_error_prefix(err, "%s: ", what);
	pp_http_resp_free(&resp);
	return rc;
}

/* {AccessKeyId, SecretAccessKey, Token, Expiration} from the container and
 * IMDS endpoints. */
static int creds_from_json(const struct pp_json *j, const char *what, const char *source,
			   struct aws_creds *c, struct pp_error *err)
{
	const char *akid = pp_json_get_string(j, "AccessKeyId");
	const char *secret = pp_json_get_string(j, "SecretAccessKey");
	const char *token = pp_json_get_string(j, "Token");
	const char *exp = pp_json_get_string(j, "Expiration");
	time_t expires = 0;

	if (!has(akid) || !has(secret))
		return pp_fail(err, PP_EAUTH, "%s: response has no %s", what,
			       has(akid) ? "SecretAccessKey" : "AccessKeyId");
	if (exp && !parse_iso8601(exp, &expires))
		return pp_fail(err, PP_EINVALID, "%s: Expiration \"%s\" is not an ISO 8601 time",
			       what, exp);
	if (expires && expires <= time(NULL))
		return pp_fail(err, PP_EAUTH, "%s: credentials expired at %s", what, exp);
	return creds_set(c, akid, secret, token, expires, source, err);
}

static int sts_endpoint(const struct pp_aws *a, struct pp_buf *url, struct pp_error *err)
{
	int rc;
	if (has(a->conf->sts_endpoint))
		rc = pp_buf_puts(url, a->conf->sts_endpoint);
	else if (has(a->region))
		rc = pp_buf_printf(url, "https://sts.%s.amazonaws.com/", a->region);
	else
		rc = pp_buf_puts(url, "https://sts.amazonaws.com/");
	return rc ? pp_fail(err, PP_ENOMEM, "sts: out of memory") : 0;
}

static int form_param(struct pp_buf *body, const char *name, const char *value)
{
	if (body->len && pp_buf_putc(body, '&'))
		return PP_ENOMEM;
	if (pp_buf_puts(body, name) || pp_buf_putc(body, '='))
		return PP_ENOMEM;
	return pp_url_encode(body, value, false);
}

static int sts_error_code(long status, const char *code)
{
	if (status >= 500)
		return PP_ETRANSIENT;
	if (code && (strstr(code, "Throttl") || !strcmp(code, "RequestLimitExceeded")))
		return PP_ETHROTTLED;
	if (code && (!strcmp(code, "IDPCommunicationError") || !strcmp(code, "ServiceUnavailable")))
		return PP_ETRANSIENT;
	if (code && !strcmp(code, "ValidationError"))
		return PP_EINVALID;
	return PP_EAUTH;
}

/* One STS Query-API call (form body, XML answer). signer NULL: unsigned. */
static int sts_call(struct pp_aws *a, const char *action, struct pp_buf *form,
		    const struct aws_creds *signer, const char *source, struct aws_creds *out,
		    struct pp_error *err)
{
	struct pp_buf url;
	struct pp_http_req req;
	struct pp_http_resp resp;
	int rc;

	pp_buf_init(&url, 4096);
	if ((rc = sts_endpoint(a, &url, err))) {
		pp_buf_free(&url);
		return rc;
	}
	pp_http_req_init(&req, "POST", url.data);
	pp_buf_free(&url);
	pp_http_resp_init(&resp, RESPONSE_MAX);
	req.timeout_ms = STS_TIMEOUT_MS;
	if (!req.url ||
	    pp_http_req_set_header(&req, "Content-Type",
				   "application/x-www-form-urlencoded; charset=utf-8") ||
	    pp_http_req_body(&req, form->data, form->len)) {
		rc = pp_fail(err, PP_ENOMEM, "sts %s: out of memory", action);
		goto out;
	}
	if (signer) {
		/* A throwaway signer scoped to sts with the source profile's keys. */
		struct pp_aws s = {.conf = a->conf,
				   .access_key_id = signer->akid,
				   .secret_access_key = signer->secret,
				   .session_token = signer->token,
				   .region = a->region,
				   .service = (char *)"sts"};
		if (!has(s.region))
			s.region = (char *)"us-east-1";
		rc = pp_aws_sign_request(&s, &req, time(NULL), err);
		OPENSSL_cleanse(s.signing_key, sizeof(s.signing_key));
		if (rc)
			goto out;
	}
	rc = pp_http_perform(&req, &resp, err);
	if (rc) {
		pp_error_prefix(err, "sts %s: ", action);
		goto out;
	}
	const char *xml = resp.body.data ? resp.body.data : "";
	if (resp.status < 200 || resp.status > 299) {
		char *code = xml_text(xml, resp.body.len, "Code", NULL);
		char *msg = xml_text(xml, resp.body.len, "Message", NULL);
		rc = pp_fail(err, sts_error_code(resp.status, code), "sts %s %s: HTTP %ld %s: %s",
			     action, req.url, resp.status, code ? code : "(no error code)",
			     msg ? msg : "(no message)");
		free(code);
		free(msg);
		goto out;
	}
	const char *cend = NULL;
	char *cred_xml = xml_text(xml, resp.body.len, "Credentials", &cend);
	if (!cred_xml) {
		rc = pp_fail(err, PP_EINVALID, "sts %s %s: response has no <Credentials>", action,
			     req.url);
		goto out;
	}
	size_t cl = strlen(cred_xml);
	char *akid = xml_text(cred_xml, cl, "AccessKeyId", NULL);
	char *secret = xml_text(cred_xml, cl, "SecretAccessKey", NULL);
	char *token = xml_text(cred_xml, cl, "SessionToken", NULL);
	char *exp = xml_text(cred_xml, cl, "Expiration", NULL);
	time_t expires = 0;
	if (!has(akid) || !has(secret) || !has(token) || !exp)
		rc = pp_fail(err, PP_EINVALID,
			     "sts %s %s: <Credentials> lacks AccessKeyId, SecretAccessKey, "
			     "SessionToken or Expiration",
			     action, req.url);
	else if (!parse_iso8601(trim(exp), &expires))
		rc = pp_fail(err, PP_EINVALID, "sts %s: Expiration \"%s\" is not an ISO 8601 time",
			     action, exp);
	else
		rc = creds_set(out, trim(akid), trim(secret), trim(token), expires, source, err);
	if (secret)
		OPENSSL_cleanse(secret, strlen(secret));
	if (token)
		OPENSSL_cleanse(token, strlen(token));
	OPENSSL_cleanse(cred_xml, cl);
	free(akid);
	free(secret);
	free(token);
	free(exp);
	free(cred_xml);
out:
	if (resp.body.data)
		OPENSSL_cleanse(resp.body.data, resp.body.len);
	pp_http_resp_free(&resp);
	pp_http_req_free(&req);
	return rc;
}

static void default_session_name(char *buf, size_t size)
{
	snprintf(buf, size, "pushpool-%ld", (long)time(NULL));
}

static int assume_role(struct pp_aws *a, const char *role_arn, const char *session_name,
		       const char *external_id, const char *duration, const struct aws_creds *src,
		       struct aws_creds *out, struct pp_error *err)
{
	struct pp_buf form;
	char name[64];
	int rc;

	if (!has(session_name)) {
		default_session_name(name, sizeof(name));
		session_name = name;
	}
	pp_buf_init(&form, 64 << 10);
	rc = form_param(&form, "Action", "AssumeRole") ||
	     form_param(&form, "Version", "2011-06-15") || form_param(&form, "RoleArn", role_arn) ||
	     form_param(&form, "RoleSessionName", session_name) ||
	     (has(duration) && form_param(&form, "DurationSeconds", duration)) ||
	     (has(external_id) && form_param(&form, "ExternalId", external_id));
	rc = rc ? pp_fail(err, PP_ENOMEM, "sts AssumeRole: out of memory")
		: sts_call(a, "AssumeRole", &form, src, "profile", out, err);
	pp_buf_free(&form);
	return rc;
}

/* ---- sources; each returns PP_ENOTFOUND when it is not configured ---- */

static int from_static(struct pp_aws *a, struct aws_creds *c, struct pp_error *err)
{
	const struct pp_cred_conf *conf = a->conf;
	if (!has(conf->access_key_id) && !has(conf->secret_access_key))
		return pp_fail(err, PP_ENOTFOUND, "static: access_key_id not set");
	if (!has(conf->access_key_id) || !has(conf->secret_access_key))
		return pp_fail(err, PP_EAUTH, "%s:%d: credentials \"%s\": %s missing",
			       conf->file_name ? conf->file_name : "(config)", conf->line,
			       conf->name,
			       has(conf->access_key_id) ? "secret_access_key" : "access_key_id");
	return creds_set(c, conf->access_key_id, conf->secret_access_key, conf->session_token, 0,
			 "static", err);
}

static int from_env(struct pp_aws *a, struct aws_creds *c, struct pp_error *err)
{
	const char *akid = nonempty_env("AWS_ACCESS_KEY_ID");
	const char *secret = nonempty_env("AWS_SECRET_ACCESS_KEY");
	const char *token = nonempty_env("AWS_SESSION_TOKEN");

	(void)a;
	if (!token)
		token = nonempty_env("AWS_SECURITY_TOKEN");
	if (!akid)
		return pp_fail(err, PP_ENOTFOUND, "env: AWS_ACCESS_KEY_ID not set");
	if (!secret)
		return pp_fail(err, PP_EAUTH,
			       "env: AWS_SECRET_ACCESS_KEY missing (AWS_ACCESS_KEY_ID is set)");
	return creds_set(c, akid, secret, token, 0, "env", err);
}

static int web_identity(struct pp_aws *a, const char *token_file, const char *role_arn,
			const char *session_name, struct aws_creds *c, struct pp_error *err)
{
	char *tok = NULL, name[64];
	struct pp_buf form;
	int rc = read_file_capped(token_file, TOKEN_FILE_MAX, &tok, "web identity token file", err);

	if (rc)
		return as_auth_failure(rc, err);
	char *t = trim(tok);
	if (!*t) {
		free(tok);
		return pp_fail(err, PP_EAUTH, "web identity token file %s: empty", token_file);
	}
	pp_secret_register_rotating(t);
	if (!has(session_name)) {
		default_session_name(name, sizeof(name));
		session_name = name;
	}
	pp_buf_init(&form, 128 << 10);
	rc = form_param(&form, "Action", "AssumeRoleWithWebIdentity") ||
	     form_param(&form, "Version", "2011-06-15") || form_param(&form, "RoleArn", role_arn) ||
	     form_param(&form, "RoleSessionName", session_name) ||
	     form_param(&form, "WebIdentityToken", t);
	rc = rc ? pp_fail(err, PP_ENOMEM, "sts: out of memory")
		: sts_call(a, "AssumeRoleWithWebIdentity", &form, NULL, "web_identity", c, err);
	if (form.data)
		OPENSSL_cleanse(form.data, form.len);
	pp_buf_free(&form);
	OPENSSL_cleanse(tok, strlen(tok));
	free(tok);
	return rc;
}

static int from_web_identity(struct pp_aws *a, struct aws_creds *c, struct pp_error *err)
{
	const char *file = nonempty_env("AWS_WEB_IDENTITY_TOKEN_FILE");
	const char *role = nonempty_env("AWS_ROLE_ARN");

	if (!role && has(a->conf->role_arn))
		role = a->conf->role_arn;
	if (!file)
		return pp_fail(err, PP_ENOTFOUND,
			       "web identity: AWS_WEB_IDENTITY_TOKEN_FILE not set");
	if (!role)
		return pp_fail(err, PP_EAUTH,
			       "web identity: AWS_ROLE_ARN (or role_arn) missing "
			       "(AWS_WEB_IDENTITY_TOKEN_FILE is set)");
	return web_identity(a, file, role, nonempty_env("AWS_ROLE_SESSION_NAME"), c, err);
}

/* ---- shared config and credentials files ---- */

struct profile {
	char *akid, *secret, *token, *region, *role_arn, *source_profile, *credential_source;
	char *session_name, *external_id, *duration, *web_identity_token_file;
	const char *keys_file; /* where aws_access_key_id came from */
	bool found;
};

static void profile_free(struct profile *p)
{
	free(p->akid);
	free(p->secret);
	free(p->token);
	free(p->region);
	free(p->role_arn);
	free(p->source_profile);
	free(p->credential_source);
	free(p->session_name);
	free(p->external_id);
	free(p->duration);
	free(p->web_identity_token_file);
	memset(p, 0, sizeof(*p));
}

struct shared_files {
	char creds_path[1024];
	char config_path[1024];
};

static int shared_file_paths(const struct pp_aws *a, struct shared_files *f, struct pp_error *err)
{
	const char *home = nonempty_env("HOME");
	const char *cp =
		has(a->conf->file) ? a->conf->file : nonempty_env("AWS_SHARED_CREDENTIALS_FILE");
	const char *fp = nonempty_env("AWS_CONFIG_FILE");
	int n1, n2;

	if ((!cp || !fp) && !home)
		return pp_fail(err, PP_ENOTFOUND, "profile: HOME not set");
	n1 = cp ? snprintf(f->creds_path, sizeof(f->creds_path), "%s", cp)
		: snprintf(f->creds_path, sizeof(f->creds_path), "%s/.aws/credentials", home);
	n2 = fp ? snprintf(f->config_path, sizeof(f->config_path), "%s", fp)
		: snprintf(f->config_path, sizeof(f->config_path), "%s/.aws/config", home);
	if (n1 < 0 || (size_t)n1 >= sizeof(f->creds_path) || n2 < 0 ||
	    (size_t)n2 >= sizeof(f->config_path))
		return pp_fail(err, PP_EINVALID, "profile: shared file path too long");
	return 0;
}

static const char *profile_name(const struct pp_aws *a)
{
	if (has(a->conf->profile))
		return a->conf->profile;
	if (nonempty_env("AWS_PROFILE"))
		return nonempty_env("AWS_PROFILE");
	if (nonempty_env("AWS_DEFAULT_PROFILE"))
		return nonempty_env("AWS_DEFAULT_PROFILE");
	return "default";
}

static bool profile_explicit(const struct pp_aws *a)
{
	return has(a->conf->profile) || nonempty_env("AWS_PROFILE") ||
	       nonempty_env("AWS_DEFAULT_PROFILE");
}

/* A value already set (from the credentials file) wins over the config file. */
static int profile_set(struct profile *p, const char *key, const char *value, const char *file)
{
	static const struct {
		const char *key;
		size_t off;
	} fields[] = {
		{"aws_access_key_id", offsetof(struct profile, akid)},
		{"aws_secret_access_key", offsetof(struct profile, secret)},
		{"aws_session_token", offsetof(struct profile, token)},
		{"aws_security_token", offsetof(struct profile, token)},
		{"region", offsetof(struct profile, region)},
		{"role_arn", offsetof(struct profile, role_arn)},
		{"source_profile", offsetof(struct profile, source_profile)},
		{"credential_source", offsetof(struct profile, credential_source)},
		{"role_session_name", offsetof(struct profile, session_name)},
		{"external_id", offsetof(struct profile, external_id)},
		{"duration_seconds", offsetof(struct profile, duration)},
		{"web_identity_token_file", offsetof(struct profile, web_identity_token_file)},
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (strcasecmp(key, fields[i].key))
			continue;
		char **slot = (char **)((char *)p + fields[i].off);
		if (*slot)
			return 0;
		if (!(*slot = strdup(value)))
			return PP_ENOMEM;
		if (i == 0)
			p->keys_file = file;
		return 0;
	}
	return 0;
}

/* Read section `section` of an INI file into p. A missing file is no error. */
static int read_ini_section(const char *path, const char *section, const char *alt_section,
			    struct profile *p, struct pp_error *err)
{
	char *text = NULL;
	int rc = read_file_capped(path, FILE_MAX, &text, "profile: file", err);
	bool in_section = false;

	if (rc == PP_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	for (char *save = NULL, *line = strtok_r(text, "\r\n", &save); line;
	     line = strtok_r(NULL, "\r\n", &save)) {
		bool indented = *line == ' ' || *line == '\t';
		char *l = trim(line);
		if (!*l || *l == '#' || *l == ';')
			continue;
		if (*l == '[') {
			char *close = strchr(l, ']');
			if (!close) {
				rc = pp_fail(err, PP_EINVALID,
					     "%s: section header without ']': %.60s", path, l);
				break;
			}
			*close = '\0';
			char *name = trim(l + 1);
			in_section = !strcmp(name, section) ||
				     (alt_section && !strcmp(name, alt_section));
			p->found |= in_section;
			continue;
		}
		/* Indented lines are nested settings (s3 = ...), not profile keys. */
		if (!in_section || indented)
			continue;
		char *eq = strchr(l, '=');
		if (!eq)
			continue;
		*eq = '\0';
		if (profile_set(p, trim(l), trim(eq + 1), path)) {
			rc = pp_fail(err, PP_ENOMEM, "%s: out of memory", path);
			break;
		}
	}
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	return rc;
}

static int load_profile(const struct shared_files *f, const char *name, struct profile *p,
			struct pp_error *err)
{
	char cfg_section[PP_NAME_MAX + 16];
	int rc;

	memset(p, 0, sizeof(*p));
	snprintf(cfg_section, sizeof(cfg_section), "profile %s", name);
	rc = read_ini_section(f->creds_path, name, NULL, p, err);
	if (!rc)
		rc = read_ini_section(f->config_path, cfg_section,
				      !strcmp(name, "default") ? "default" : NULL, p, err);
	if (rc)
		profile_free(p);
	return rc;
}

static int from_container(struct pp_aws *a, struct aws_creds *c, struct pp_error *err);
static int from_imds(struct pp_aws *a, struct aws_creds *c, struct pp_error *err);

static int profile_creds(struct pp_aws *a, const struct shared_files *f, const char *name,
			 int depth, struct aws_creds *c, struct pp_error *err)
{
	struct profile p;
	int rc;

	if (depth > PROFILE_DEPTH_MAX)
		return pp_fail(err, PP_EINVALID,
			       "profile [%s]: source_profile chain deeper than %d", name,
			       PROFILE_DEPTH_MAX);
	if ((rc = load_profile(f, name, &p, err)))
		return rc;
	if (!p.found) {
		rc = pp_fail(err, depth || profile_explicit(a) ? PP_EAUTH : PP_ENOTFOUND,
			     "profile [%s] not found in %s or %s", name, f->creds_path,
			     f->config_path);
		goto out;
	}
	if (has(p.role_arn) && (has(p.source_profile) || has(p.credential_source))) {
		struct aws_creds src = {0};
		if (has(p.source_profile) && strcmp(p.source_profile, name) != 0) {
			rc = profile_creds(a, f, p.source_profile, depth + 1, &src, err);
		} else if (has(p.source_profile)) {
			/* A profile that is its own source uses its static keys. */
			if (!has(p.akid) || !has(p.secret))
				rc = pp_fail(err, PP_EAUTH,
					     "%s [%s]: aws_secret_access_key missing",
					     f->creds_path, name);
			else
				rc = creds_set(&src, p.akid, p.secret, p.token, 0, "profile", err);
		} else if (!strcmp(p.credential_source, "Environment")) {
			rc = from_env(a, &src, err);
		} else if (!strcmp(p.credential_source, "EcsContainer")) {
			rc = from_container(a, &src, err);
		} else if (!strcmp(p.credential_source, "Ec2InstanceMetadata")) {
			rc = from_imds(a, &src, err);
		} else {
			rc = pp_fail(
				err, PP_EINVALID,
				"%s [profile %s]: credential_source \"%s\" is not Environment, "
				"EcsContainer or Ec2InstanceMetadata",
				f->config_path, name, p.credential_source);
		}
		rc = as_auth_failure(rc, err);
		if (!rc)
			rc = assume_role(a, p.role_arn, p.session_name, p.external_id, p.duration,
					 &src, c, err);
		if (rc)
			pp_error_prefix(err, "profile [%s] role %s: ", name, p.role_arn);
		creds_free(&src);
		goto out;
	}
	if (has(p.role_arn) && has(p.web_identity_token_file)) {
		rc = web_identity(a, p.web_identity_token_file, p.role_arn, p.session_name, c, err);
		goto out;
	}
	if (has(p.akid)) {
		if (!has(p.secret))
			rc = pp_fail(err, PP_EAUTH, "%s [%s]: aws_secret_access_key missing",
				     p.keys_file, name);
		else
			rc = creds_set(c, p.akid, p.secret, p.token, 0, "profile", err);
		goto out;
	}
	if (has(p.secret)) {
		rc = pp_fail(err, PP_EAUTH, "%s [%s]: aws_access_key_id missing", f->creds_path,
			     name);
		goto out;
	}
	if (has(p.role_arn)) {
		rc = pp_fail(err, PP_EAUTH,
			     "%s [profile %s]: role_arn needs source_profile, credential_source or "
			     "web_identity_token_file",
			     f->config_path, name);
		goto out;
	}
	/* A profile holding only settings (region) leaves credentials to later
	 * sources, unless it was asked for by name. */
	rc = pp_fail(err, depth ? PP_EAUTH : PP_ENOTFOUND,
		     "profile [%s] in %s / %s has no credentials", name, f->creds_path,
		     f->config_path);
out:
	if (p.secret)
		OPENSSL_cleanse(p.secret, strlen(p.secret));
	profile_free(&p);
	return rc;
}

static int from_profile(struct pp_aws *a, struct aws_creds *c, struct pp_error *err)
{
	struct shared_files f;
	int rc = shared_file_paths(a, &f, err);
	return rc ? rc : profile_creds(a, &f, profile_name(a), 0, c, err);
}

/* ---- container and instance metadata ---- */

/* Hosts botocore accepts for AWS_CONTAINER_CREDENTIALS_FULL_URI over http. */
static bool container_host_allowed(const char *url)
{
	static const char *const hosts[] = {"127.",	      "localhost",	"169.254.170.2",
					    "169.254.170.23", "[fd00:ec2::23]", "[::1]"};
	const char *h;
	if (!strncmp(url, "https://", 8))
		return true;
	if (strncmp(url, "http://", 7))
		return false;
	h = url + 7;
	size_t hl = strcspn(h, ":/?");
	if (*h == '[')
		hl = strcspn(h, "]") + 1;
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		size_t l = strlen(hosts[i]);
		bool prefix = hosts[i][l - 1] == '.';
		if ((prefix && hl > l && !strncmp(h, hosts[i], l)) ||
		    (hl == l && !strncmp(h, hosts[i], l)))
			return true;
	}
	return false;
}

static int from_container(struct pp_aws *a, struct aws_creds *c, struct pp_error *err)
{
	const char *rel = nonempty_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = nonempty_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *token_file = nonempty_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *token_env = nonempty_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	struct pp_buf url;
	struct pp_http_req req;
	struct pp_json *j = NULL;
	char *token = NULL;
	int rc = 0;

	if (!rel && !full)
		return pp_fail(
			err, PP_ENOTFOUND,
			"container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI not set");
	pp_buf_init(&url, 8192);
	if (rel) {
		const char *base = has(a->conf->container_endpoint) ? a->conf->container_endpoint
								    : "http://169.254.170.2";
		size_t bl = strlen(base);
		if (bl && base[bl - 1] == '/' && rel[0] == '/')
			bl--;
		rc = pp_buf_append(&url, base, bl) || pp_buf_puts(&url, rel);
	} else if (!container_host_allowed(full)) {
		pp_buf_free(&url);
		return pp_fail(err, PP_EAUTH,
			       "container: AWS_CONTAINER_CREDENTIALS_FULL_URI %s: only https or a "
			       "loopback / ECS / EKS link-local host is allowed",
			       full);
	} else {
		rc = pp_buf_puts(&url, full);
	}
	if (rc) {
		pp_buf_free(&url);
		return pp_fail(err, PP_ENOMEM, "container: out of memory");
	}
	if (!rel && token_file) {
		if ((rc = read_file_capped(token_file, TOKEN_FILE_MAX, &token,
					   "container: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
					   err))) {
			pp_buf_free(&url);
			return as_auth_failure(rc, err);
		}
	} else if (!rel && token_env && !(token = strdup(token_env))) {
		pp_buf_free(&url);
		return pp_fail(err, PP_ENOMEM, "container: out of memory");
	}
	pp_http_req_init(&req, "GET", url.data);
	pp_buf_free(&url);
	req.timeout_ms = CONTAINER_TIMEOUT_MS;
	if (!req.url) {
		rc = pp_fail(err, PP_ENOMEM, "container: out of memory");
	} else if (token) {
		char *t = trim(token);
		if (strpbrk(t, "\r\n"))
			rc = pp_fail(err, PP_EAUTH,
				     "container: authorization token has a line break");
		else {
			pp_secret_register_rotating(t);
			if (pp_http_req_set_header(&req, "Authorization", t))
				rc = pp_fail(err, PP_ENOMEM, "container: out of memory");
		}
	}
	/* botocore tries 3 times, 1 s apart, when the agent is not up yet. */
	for (int attempt = 0; !rc && attempt < 3; attempt++) {
		/* A 404 from a configured endpoint is a failure, not an absent source. */
		rc = as_auth_failure(http_get_json(&req, "container", &j, err), err);
		if (rc != PP_ETRANSIENT || attempt == 2)
			break;
		rc = 0;
		sleep(1);
	}
	if (!rc)
		rc = creds_from_json(j, "container", "container", c, err);
	pp_json_free(j);
	pp_http_req_free(&req);
	if (token) {
		OPENSSL_cleanse(token, strlen(token));
		free(token);
	}
	return rc;
}

static int imds_base(const struct pp_aws *a, char *out, size_t size)
{
	const char *base = has(a->conf->imds_endpoint)
				   ? a->conf->imds_endpoint
				   : nonempty_env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	if (!base)
		base = "http://169.254.169.254";
	size_t n = strlen(base);
	while (n && base[n - 1] == '/')
		n--;
	return snprintf(out, size, "%.*s", (int)n, base) >= (int)size ? PP_EINVALID : 0;
}

/* One IMDS call; body into out (trimmed). */
static int imds_call(const char *method, const char *url, const char *hname, const char *hvalue,
		     struct pp_buf *out, struct pp_error *err)
{
	struct pp_http_req req;
	struct pp_http_resp resp;
	int rc;

	pp_http_req_init(&req, method, url);
	pp_http_resp_init(&resp, 64 << 10);
	req.timeout_ms = IMDS_TIMEOUT_MS;
	if (!req.url || pp_http_req_set_header(&req, hname, hvalue))
		rc = pp_fail(err, PP_ENOMEM, "imds: out of memory");
	else
		rc = pp_http_perform(&req, &resp, err);
	if (!rc && (resp.status < 200 || resp.status > 299))
		rc = pp_http_classify(&req, &resp, err);
	if (!rc) {
		pp_buf_reset(out);
		char *body = trim(resp.body.data ? resp.body.data : (char *)"");
		if (pp_buf_puts(out, body))
			rc = pp_fail(err, PP_ENOMEM, "imds: response too large");
	}
	if (rc)
		pp_error_prefix(err, "imds: ");
	rc = as_auth_failure(rc, err);
	if (resp.body.data)
		OPENSSL_cleanse(resp.body.data, resp.body.len);
	pp_http_resp_free(&resp);
	pp_http_req_free(&req);
	return rc;
}

static int from_imds(struct pp_aws *a, struct aws_creds *c, struct pp_error *err)
{
	const char *disabled = nonempty_env("AWS_EC2_METADATA_DISABLED");
	char base[512], url[1024];
	struct pp_buf token, body;
	struct pp_json *j = NULL;
	int rc;

	if (disabled && !strcasecmp(disabled, "true"))
		return pp_fail(err, PP_ENOTFOUND, "imds: AWS_EC2_METADATA_DISABLED=true");
	if (imds_base(a, base, sizeof(base)))
		return pp_fail(err, PP_EINVALID, "imds: endpoint too long");
	pp_buf_init(&token, 4096);
	pp_buf_init(&body, 64 << 10);
	snprintf(url, sizeof(url), "%s/latest/api/token", base);
	rc = imds_call("PUT", url, "X-aws-ec2-metadata-token-ttl-seconds", "21600", &token, err);
	if (!rc) {
		pp_secret_register_rotating(token.data);
		snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", base);
		rc = imds_call("GET", url, "X-aws-ec2-metadata-token", pp_buf_str(&token), &body,
			       err);
	}
	if (!rc) {
		/* One role per instance profile: the first line names it. */
		size_t rl = strcspn(pp_buf_str(&body), "\r\n");
		if (!rl || rl > 128 || strpbrk(pp_buf_str(&body), "/?#%")) {
			rc = pp_fail(err, PP_EAUTH, "imds: %s: no instance role", url);
		} else {
			snprintf(url, sizeof(url),
				 "%s/latest/meta-data/iam/security-credentials/%.*s", base, (int)rl,
				 body.data);
			rc = imds_call("GET", url, "X-aws-ec2-metadata-token", pp_buf_str(&token),
				       &body, err);
		}
	}
	if (!rc) {
		rc = pp_json_parse(pp_buf_str(&body), body.len, NULL, &j, err);
		if (rc)
			pp_error_prefix(err, "imds: %s: ", url);
	}
	if (!rc) {
		const char *code = pp_json_get_string(j, "Code");
		if (code && strcmp(code, "Success"))
			rc = pp_fail(err, PP_EAUTH, "imds: %s: Code %s: %s", url, code,
				     pp_json_get_string(j, "Message")
					     ? pp_json_get_string(j, "Message")
					     : "(no message)");
		else
			rc = creds_from_json(j, "imds", "imds", c, err);
	}
	pp_json_free(j);
	if (body.data)
		OPENSSL_cleanse(body.data, body.len);
	pp_buf_free(&body);
	pp_buf_free(&token);
	return rc;
}

/* ---- the chain ---- */

typedef int (*source_fn)(struct pp_aws *a, struct aws_creds *c, struct pp_error *err);

static const struct {
	const char *name;
	source_fn fn;
} sources[] = {
	{"static", from_static},
	{"env", from_env},
	{"web_identity", from_web_identity},
	{"profile", from_profile},
	{"container", from_container},
	{"imds", from_imds},
};

#define NSOURCES (sizeof(sources) / sizeof(sources[0]))

static bool chain_mode(const struct pp_cred_conf *conf)
{
	return !has(conf->source) || !strcmp(conf->source, "chain");
}

static int resolve(struct pp_aws *a, struct aws_creds *c, struct pp_error *err)
{
	struct pp_buf tried;
	int rc = PP_ENOTFOUND;

	if (!chain_mode(a->conf)) {
		for (size_t i = 0; i < NSOURCES; i++)
			if (!strcmp(a->conf->source, sources[i].name)) {
				return as_auth_failure(sources[i].fn(a, c, err), err);
			}
		return pp_fail(err, PP_EINVALID,
			       "source \"%s\" is not one of chain, static, env, "
			       "web_identity, profile, container, imds",
			       a->conf->source);
	}
	pp_buf_init(&tried, 8192);
	for (size_t i = 0; i < NSOURCES; i++) {
		/* An explicit profile replaces the environment, as in botocore. */
		if (sources[i].fn == from_env && has(a->conf->profile))
			continue;
		rc = sources[i].fn(a, c, err);
		if (rc != PP_ENOTFOUND && !(rc == PP_ETRANSIENT && sources[i].fn == from_imds))
			break;
		pp_buf_printf(&tried, "%s%s", tried.len ? "; " : "",
			      err ? err->msg : sources[i].name);
	}
	if (rc == PP_ENOTFOUND || rc == PP_ETRANSIENT)
		rc = pp_fail(err, PP_EAUTH, "no AWS credentials found (%s)", pp_buf_str(&tried));
	pp_buf_free(&tried);
	return rc;
}

static void install(struct pp_aws *a, struct aws_creds *c)
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
	struct aws_creds c = {0};
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

static char *profile_region(const struct pp_aws *a)
{
	struct shared_files f;
	struct profile p;
	char *region = NULL;

	if (shared_file_paths(a, &f, NULL) || load_profile(&f, profile_name(a), &p, NULL))
		return NULL;
	if (has(p.region))
		region = strdup(p.region);
	profile_free(&p);
	return region;
}

int pp_aws_init(struct pp_aws *a, const struct pp_cred_conf *conf, struct pp_error *err)
{
	const char *region;

	memset(a, 0, sizeof(*a));
	a->conf = conf;
	if (!chain_mode(conf)) {
		bool known = false;
		for (size_t i = 0; i < NSOURCES; i++)
			known |= !strcmp(conf->source, sources[i].name);
		if (!known)
			return pp_fail(
				err, PP_EINVALID,
				"%s:%d: credentials \"%s\": source \"%s\" does not apply to aws "
				"(chain, static, env, web_identity, profile, container, imds)",
				conf->file_name ? conf->file_name : "(config)", conf->line,
				conf->name, conf->source);
	}
	if (conf->secret_access_key)
		pp_secret_register(conf->secret_access_key);
	if (conf->session_token)
		pp_secret_register(conf->session_token);
	region = has(conf->region) ? conf->region : nonempty_env("AWS_REGION");
	if (!region)
		region = nonempty_env("AWS_DEFAULT_REGION");
	a->region = region ? strdup(region) : profile_region(a);
	if (region && !a->region)
		return pp_fail(err, PP_ENOMEM, "credentials \"%s\": out of memory", conf->name);
	return 0;
}

void pp_aws_free(struct pp_aws *a)
{
	struct aws_creds none = {0};
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

int pp_aws_sign_request(struct pp_aws *a, struct pp_http_req *req, time_t now, struct pp_error *err)
{
	struct url_parts u;
	struct pp_sigv4_output out;
	struct pp_sigv4_input in = {0};
	const char *names[64], *values[64];
	char service_buf[64], date[9], scope[sizeof(a->key_scope)];
	const char *service = a->service;
	struct tm tm;
	int rc;

	if (!a->access_key_id || !a->secret_access_key)
		return pp_fail(err, PP_EAUTH, "sigv4: no AWS credentials resolved");
	if (!has(a->region))
		return pp_fail(
			err, PP_EINVALID,
			"sigv4: no AWS region (set region in [credentials \"%s\"], AWS_REGION "
			"or the profile's region)",
			a->conf ? a->conf->name : "");
	if ((rc = split_url(req->url, &u, err)))
		return rc;
	if (!has(service)) {
		if (service_from_host(u.host, service_buf, sizeof(service_buf))) {
			rc = pp_fail(err, PP_EINVALID, "sigv4: no service for %s (set the scope)",
				     req->url);
			goto out;
		}
		service = service_buf;
	}
	if (!gmtime_r(&now, &tm) || !strftime(date, sizeof(date), "%Y%m%d", &tm)) {
		rc = pp_fail(err, PP_EINVALID, "sigv4: time out of range");
		goto out;
	}
	in.when = now;
	pp_sigv4_output_init(&out);
	char amz_date[17];
	strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
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
	snprintf(scope, sizeof(scope), "%s/%s/%s", date, a->region, service);
	if (strcmp(scope, a->key_scope)) {
		if (pp_sigv4_signing_key(a->secret_access_key, date, a->region, service,
					 a->signing_key)) {
			rc = pp_fail(err, PP_ENOMEM, "sigv4: key derivation failed");
			goto out_free;
		}
		snprintf(a->key_scope, sizeof(a->key_scope), "%s", scope);
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
