/* The AWS sources that ask a server: STS (AssumeRole, web identity), the
 * container credentials endpoint, and EC2 instance metadata (IMDSv2). Part
 * of the AWS backend (auth/aws.c). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/aws.h"
#include "auth/backend.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/time.h"

#define TOKEN_FILE_MAX	     ((size_t)64 << 10)
#define RESPONSE_MAX	     ((size_t)256 << 10)
#define IMDS_TIMEOUT_MS	     1000L
#define CONTAINER_TIMEOUT_MS 2000L
#define STS_TIMEOUT_MS	     10000L

/* ---- small parsers ---- */

/* An AWS expiration time (RFC 3339; a missing zone reads as UTC) in
 * seconds since the epoch. */
static bool parse_iso8601(const char *s, time_t *out)
{
	int64_t ms;
	if (!s || pp_time_parse(s, PP_TIME_ZONE_OPTIONAL, &ms))
		return false;
	*out = (time_t)(ms / 1000);
	return true;
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
			   struct pp_aws_creds *c, struct pp_error *err)
{
	const char *akid = pp_json_get_string(j, "AccessKeyId");
	const char *secret = pp_json_get_string(j, "SecretAccessKey");
	const char *token = pp_json_get_string(j, "Token");
	const char *exp = pp_json_get_string(j, "Expiration");
	time_t expires = 0;

	if (!pp_cred_has(akid) || !pp_cred_has(secret))
		return pp_fail(err, PP_EAUTH, "%s: response has no %s", what,
			       pp_cred_has(akid) ? "SecretAccessKey" : "AccessKeyId");
	if (exp && !parse_iso8601(exp, &expires))
		return pp_fail(err, PP_EINVALID, "%s: Expiration \"%s\" is not an ISO 8601 time",
			       what, exp);
	if (expires && expires <= time(NULL))
		return pp_fail(err, PP_EAUTH, "%s: credentials expired at %s", what, exp);
	return pp_aws_creds_set(c, akid, secret, token, expires, source, err);
}

static int sts_endpoint(const struct pp_aws *a, struct pp_buf *url, struct pp_error *err)
{
	int rc;
	if (pp_cred_has(a->conf->sts_endpoint))
		rc = pp_buf_puts(url, a->conf->sts_endpoint);
	else if (pp_cred_has(a->region))
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
		    const struct pp_aws_creds *signer, const char *source, struct pp_aws_creds *out,
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
		if (!pp_cred_has(s.region))
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
	if (!pp_cred_has(akid) || !pp_cred_has(secret) || !pp_cred_has(token) || !exp)
		rc = pp_fail(err, PP_EINVALID,
			     "sts %s %s: <Credentials> lacks AccessKeyId, SecretAccessKey, "
			     "SessionToken or Expiration",
			     action, req.url);
	else if (!parse_iso8601(pp_aws_trim(exp), &expires))
		rc = pp_fail(err, PP_EINVALID, "sts %s: Expiration \"%s\" is not an ISO 8601 time",
			     action, exp);
	else
		rc = pp_aws_creds_set(out, pp_aws_trim(akid), pp_aws_trim(secret),
				      pp_aws_trim(token), expires, source, err);
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

int pp_aws_assume_role(struct pp_aws *a, const char *role_arn, const char *session_name,
		       const char *external_id, const char *duration,
		       const struct pp_aws_creds *src, struct pp_aws_creds *out,
		       struct pp_error *err)
{
	struct pp_buf form;
	char name[64];
	int rc;

	if (!pp_cred_has(session_name)) {
		default_session_name(name, sizeof(name));
		session_name = name;
	}
	pp_buf_init(&form, 64 << 10);
	rc = form_param(&form, "Action", "AssumeRole") ||
	     form_param(&form, "Version", "2011-06-15") || form_param(&form, "RoleArn", role_arn) ||
	     form_param(&form, "RoleSessionName", session_name) ||
	     (pp_cred_has(duration) && form_param(&form, "DurationSeconds", duration)) ||
	     (pp_cred_has(external_id) && form_param(&form, "ExternalId", external_id));
	rc = rc ? pp_fail(err, PP_ENOMEM, "sts AssumeRole: out of memory")
		: sts_call(a, "AssumeRole", &form, src, "profile", out, err);
	pp_buf_free(&form);
	return rc;
}

int pp_aws_web_identity(struct pp_aws *a, const char *token_file, const char *role_arn,
			const char *session_name, struct pp_aws_creds *c, struct pp_error *err)
{
	char *tok = NULL, name[64];
	struct pp_buf form;
	int rc = pp_aws_read_file(token_file, TOKEN_FILE_MAX, &tok, "web identity token file", err);

	if (rc)
		return pp_aws_auth_failure(rc, err);
	char *t = pp_aws_trim(tok);
	if (!*t) {
		free(tok);
		return pp_fail(err, PP_EAUTH, "web identity token file %s: empty", token_file);
	}
	pp_secret_register_rotating(t);
	if (!pp_cred_has(session_name)) {
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

int pp_aws_from_web_identity(struct pp_aws *a, struct pp_aws_creds *c, struct pp_error *err)
{
	const char *file = pp_aws_env("AWS_WEB_IDENTITY_TOKEN_FILE");
	const char *role = pp_aws_env("AWS_ROLE_ARN");

	if (!role && pp_cred_has(a->conf->role_arn))
		role = a->conf->role_arn;
	if (!file)
		return pp_fail(err, PP_ENOTFOUND,
			       "web identity: AWS_WEB_IDENTITY_TOKEN_FILE not set");
	if (!role)
		return pp_fail(err, PP_EAUTH,
			       "web identity: AWS_ROLE_ARN (or role_arn) missing "
			       "(AWS_WEB_IDENTITY_TOKEN_FILE is set)");
	return pp_aws_web_identity(a, file, role, pp_aws_env("AWS_ROLE_SESSION_NAME"), c, err);
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

int pp_aws_from_container(struct pp_aws *a, struct pp_aws_creds *c, struct pp_error *err)
{
	const char *rel = pp_aws_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = pp_aws_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *token_file = pp_aws_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *token_env = pp_aws_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
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
		const char *base = pp_cred_has(a->conf->container_endpoint)
					   ? a->conf->container_endpoint
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
		if ((rc = pp_aws_read_file(token_file, TOKEN_FILE_MAX, &token,
					   "container: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
					   err))) {
			pp_buf_free(&url);
			return pp_aws_auth_failure(rc, err);
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
		char *t = pp_aws_trim(token);
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
		rc = pp_aws_auth_failure(http_get_json(&req, "container", &j, err), err);
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
	const char *base = pp_cred_has(a->conf->imds_endpoint)
				   ? a->conf->imds_endpoint
				   : pp_aws_env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
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
		char *body = pp_aws_trim(resp.body.data ? resp.body.data : (char *)"");
		if (pp_buf_puts(out, body))
			rc = pp_fail(err, PP_ENOMEM, "imds: response too large");
	}
	if (rc)
		pp_error_prefix(err, "imds: ");
	rc = pp_aws_auth_failure(rc, err);
	if (resp.body.data)
		OPENSSL_cleanse(resp.body.data, resp.body.len);
	pp_http_resp_free(&resp);
	pp_http_req_free(&req);
	return rc;
}

int pp_aws_from_imds(struct pp_aws *a, struct pp_aws_creds *c, struct pp_error *err)
{
	const char *disabled = pp_aws_env("AWS_EC2_METADATA_DISABLED");
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
