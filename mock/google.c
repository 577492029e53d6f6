/* Mock Google: the OAuth2 JWT-bearer token endpoint (RS256 verified against
 * configured service-account keys), the metadata server token endpoint and
 * the Cloud Run Admin API v2 jobs/executions/operations, bearer-protected. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "lib/log.h"
#include "lib/time.h"
#include "mock/google.h"
#include "mock/mock.h"
#include "mock/spec.h"

#define GOOGLE_TOKEN_URL "https://oauth2.googleapis.com/token"
#define MAX_ITEMS	 100000
#define MAX_JWT_LIFETIME 3600
#define CLOCK_SKEW	 60
#define METADATA_EMAIL	 "runner@mock-project.iam.gserviceaccount.com"

struct gkey {
	char *kid; /* private_key_id, NULL for a bare public key */
	char *iss; /* client_email, NULL: any issuer */
	EVP_PKEY *pkey;
	bool revoked; /* a key the IAM API made, since deleted */
};

/* The --gcp-key files, then the keys the IAM API makes (google_infra.c). */
#define GKEYS_MAX (PP_MOCK_MAX_KEYS + 256)

struct token {
	struct token *next;
	char value[64];
	double expires; /* wall clock */
};

struct job {
	struct job *next;
	char *name; /* projects/P/locations/L/jobs/ID */
	char *id;
	struct pp_json *body; /* as created, output fields filled on GET */
	double created;
	char uid[37];
	long executions;
	char *latest_execution;
};

struct execution {
	struct execution *next;
	char *name; /* JOB/executions/ID-xxxxx */
	char *job_name;
	enum pp_mock_outcome outcome;
	double created;
	double cancelled; /* < 0 if not */
	long long task_count;
	char uid[37];
	char *missing_image; /* a start failure fault: this image is not found */
};

struct operation {
	struct operation *next;
	char *name;
	char *json;	 /* as first answered */
	char *done_json; /* answered from done_at on; NULL: json for ever */
	double done_at;
};

/* An execution's output as Cloud Logging keeps it: past the execution's
 * and its job's deletion, until /control/reset. */
struct exec_log {
	struct exec_log *next;
	char *name; /* the execution's: projects/P/locations/L/jobs/J/executions/E */
	struct pp_mock_joblog *log;
	double stopped; /* clock of its cancellation, < 0 if none */
};

struct google_state {
	struct gkey keys[GKEYS_MAX];
	size_t nkeys; /* guarded by the mock lock once serving */
	struct token *tokens;
	struct job *jobs;
	struct execution *executions;
	struct operation *operations;
	struct exec_log *logs;
	size_t ntokens, njobs, nexecutions, noperations, nlogs;
	struct pp_mock_gi *infra; /* the provisioning APIs (mock/google_infra.c) */
};

struct google_state *pp_mock_google_state(void *state)
{
	return state;
}

int pp_mock_google_key_add(void *state, const char *kid, const char *iss, EVP_PKEY *pkey)
{
	struct google_state *st = state;
	struct gkey *k;

	if (st->nkeys == GKEYS_MAX)
		return PP_ENOMEM;
	k = &st->keys[st->nkeys];
	memset(k, 0, sizeof(*k));
	if (!(k->kid = strdup(kid)) || !(k->iss = strdup(iss)) || EVP_PKEY_up_ref(pkey) != 1) {
		free(k->kid);
		free(k->iss);
		return PP_ENOMEM;
	}
	k->pkey = pkey;
	st->nkeys++;
	return 0;
}

void pp_mock_google_key_revoke(void *state, const char *kid)
{
	struct google_state *st = state;

	for (size_t i = 0; i < st->nkeys; i++)
		if (st->keys[i].kid && !strcmp(st->keys[i].kid, kid))
			st->keys[i].revoked = true;
}

struct pp_mock_gi *pp_mock_gi_of(void *state)
{
	return ((struct google_state *)state)->infra;
}

/* ---- helpers ---- */

static void set_time(struct pp_mock *m, struct pp_json *o, const char *key, double clock)
{
	char ts[PP_TIME_LEN];

	pp_time_format((int64_t)(pp_mock_wall(m, clock) * 1000), true, ts);
	pp_json_set_string(o, key, ts);
}

static void uuid4(struct pp_mock *m, char out[37])
{
	char hex[33];

	pp_mock_random_hex(m, hex, 32);
	snprintf(out, 37, "%.8s-%.4s-4%.3s-8%.3s-%.12s", hex, hex + 8, hex + 12, hex + 16,
		 hex + 20);
}

static const char *status_name(int code)
{
	switch (code) {
	case 400: return "INVALID_ARGUMENT";
	case 401: return "UNAUTHENTICATED";
	case 403: return "PERMISSION_DENIED";
	case 404: return "NOT_FOUND";
	case 409: return "ALREADY_EXISTS";
	case 429: return "RESOURCE_EXHAUSTED";
	case 501: return "UNIMPLEMENTED";
	case 503: return "UNAVAILABLE";
	default: return "INTERNAL";
	}
}

/* google.rpc.Status error body; field adds a BadRequest field violation. */
static void rpc_error(struct pp_mock_resp *resp, int code, const char *status, const char *field,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void rpc_error(struct pp_mock_resp *resp, int code, const char *status, const char *field,
		      const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!status)
		status = status_name(code);
	resp->reject_reason = status;
	pp_mock_resp_printf(resp, code, "application/json; charset=UTF-8",
			    "{\"error\":{\"code\":%d,\"message\":", code);
	pp_json_write_string(&resp->body, msg, strlen(msg));
	pp_buf_printf(&resp->body, ",\"status\":\"%s\"", status);
	if (field) {
		pp_buf_puts(&resp->body, ",\"details\":[{\"@type\":"
					 "\"type.googleapis.com/google.rpc.BadRequest\","
					 "\"fieldViolations\":[{\"field\":");
		pp_json_write_string(&resp->body, field, strlen(field));
		pp_buf_puts(&resp->body, ",\"description\":");
		pp_json_write_string(&resp->body, msg, strlen(msg));
		pp_buf_puts(&resp->body, "}]}]");
	}
	pp_buf_puts(&resp->body, "}}");
}

void pp_mock_google_error(struct pp_mock_resp *resp, int code, const char *status, const char *fmt,
			  ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rpc_error(resp, code, status, NULL, "%s", msg);
}

void pp_mock_google_uuid(struct pp_mock *m, char out[37])
{
	uuid4(m, out);
}

static void oauth_error(struct pp_mock_resp *resp, int status, const char *error,
			const char *description)
{
	resp->reject_reason = error;
	pp_mock_resp_printf(resp, status, "application/json; charset=utf-8",
			    "{\"error\":\"%s\",\"error_description\":", error);
	pp_json_write_string(&resp->body, description, strlen(description));
	pp_buf_puts(&resp->body, "}");
}

static int hexval(int c)
{
	return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

static bool form_value(const char *body, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);

	for (const char *p = body; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
		size_t n = 0;

		if (strncmp(p, key, klen) != 0 || p[klen] != '=')
			continue;
		for (p += klen + 1; *p && *p != '&'; p++) {
			if (n + 1 >= size)
				return false;
			if (*p == '+') {
				out[n++] = ' ';
			} else if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
				out[n++] = (char)(hexval(p[1]) * 16 + hexval(p[2]));
				p += 2;
			} else {
				out[n++] = *p;
			}
		}
		out[n] = '\0';
		return true;
	}
	return false;
}

/* base64url without padding -> bytes (malloc'd, NUL-terminated). */
static unsigned char *b64url_decode(const char *in, size_t n, size_t *out_len)
{
	size_t padded = (n + 3) / 4 * 4;
	char *std = calloc(1, padded + 1);
	unsigned char *out = malloc(padded / 4 * 3 + 1);
	int len;

	/* Some signers (google-auth 1.x) keep the '=' padding. */
	while (n > 0 && in[n - 1] == '=')
		n--;
	padded = (n + 3) / 4 * 4;
	if (n == 0 || !std || !out)
		goto fail;
	for (size_t i = 0; i < padded; i++) {
		char c = i < n ? in[i] : '=';

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (i < n && !isalnum((unsigned char)c))
			goto fail;
		std[i] = c;
	}
	len = EVP_DecodeBlock(out, (unsigned char *)std, (int)padded);
	if (len < 0)
		goto fail;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	for (size_t i = n; i < padded; i++)
		len--;
	out[len] = '\0';
	*out_len = (size_t)len;
	free(std);
	return out;
fail:
	free(std);
	free(out);
	return NULL;
}

/* ---- keys ---- */

static int load_key(struct gkey *k, const char *path, struct pp_error *err)
{
	struct pp_json *j = NULL;
	struct pp_error jerr = {0};
	FILE *f;
	BIO *bio = NULL;

	if (pp_json_parse_file(path, NULL, &j, &jerr) == 0) {
		const char *pem = pp_json_get_string(j, "private_key");
		const char *kid = pp_json_get_string(j, "private_key_id");
		const char *iss = pp_json_get_string(j, "client_email");

		if (!pem || !iss) {
			pp_json_free(j);
			return pp_fail(err, PP_EINVALID,
				       "%s: service-account JSON needs private_key and "
				       "client_email",
				       path);
		}
		bio = BIO_new_mem_buf(pem, -1);
		k->pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
		k->kid = kid ? strdup(kid) : NULL;
		k->iss = strdup(iss);
		BIO_free(bio);
		pp_json_free(j);
		if (!k->pkey)
			return pp_fail(err, PP_EINVALID, "%s: private_key is not a PEM private key",
				       path);
		return 0;
	}
	f = fopen(path, "r");
	if (!f)
		return pp_fail(err, PP_EIO, "%s: cannot open", path);
	k->pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (!k->pkey)
		return pp_fail(err, PP_EINVALID,
			       "%s: neither service-account JSON (%s) nor a PEM public key", path,
			       jerr.msg);
	return 0;
}

/* ---- access tokens ---- */

static struct token *token_issue(struct pp_mock *m, struct google_state *st)
{
	struct token *t = calloc(1, sizeof(*t));
	char hex[49];

	if (!t)
		return NULL;
	pp_mock_random_hex(m, hex, 48);
	snprintf(t->value, sizeof(t->value), "ya29.mock%s", hex);
	t->expires = pp_mock_wall(m, pp_mock_clock(m)) + pp_mock_opts(m)->token_lifetime_seconds;
	pp_mock_lock(m);
	t->next = st->tokens;
	st->tokens = t;
	if (++st->ntokens > MAX_ITEMS) {
		struct token **pp = &st->tokens;

		while ((*pp)->next)
			pp = &(*pp)->next;
		free(*pp);
		*pp = NULL;
		st->ntokens--;
	}
	pp_mock_unlock(m);
	return t;
}

/* google-auth 1.x parses metadata answers only under exactly "application/json". */
static void token_answer(struct pp_mock *m, struct token *t, struct pp_mock_resp *resp)
{
	pp_mock_resp_printf(resp, 200, "application/json",
			    "{\"access_token\":\"%s\",\"expires_in\":%d,\"token_type\":\"Bearer\"}",
			    t->value, (int)pp_mock_opts(m)->token_lifetime_seconds);
}

static bool bearer_ok(struct pp_mock *m, struct google_state *st, const struct pp_mock_req *req,
		      bool *expired)
{
	const char *auth = pp_mock_header(req, "Authorization");
	double now = pp_mock_wall(m, pp_mock_clock(m));
	bool found = false;

	*expired = false;
	if (!auth || strncmp(auth, "Bearer ", 7) != 0)
		return false;
	pp_mock_lock(m);
	for (struct token *t = st->tokens; t; t = t->next) {
		if (strcmp(t->value, auth + 7) == 0) {
			found = t->expires > now;
			*expired = !found;
			break;
		}
	}
	pp_mock_unlock(m);
	return found;
}

/* Check one RS256 JWT-bearer assertion; on failure write the OAuth error. */
static bool assertion_ok(struct pp_mock *m, struct google_state *st, const char *jwt,
			 struct pp_mock_resp *resp)
{
	const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	unsigned char *hdr_raw = NULL, *claims_raw = NULL, *sig = NULL;
	size_t hdr_len, claims_len, sig_len;
	struct pp_json *hdr = NULL, *claims = NULL;
	struct gkey *key = NULL;
	EVP_PKEY *pkey = NULL;
	const char *kid, *iss, *aud, *scope;
	/* The client signed with its own clock: check against the real time,
	 * not the lifecycle clock tests may hold or advance. */
	double iat, exp, now = (double)time(NULL);
	char want_aud[160];
	EVP_MD_CTX *md = NULL;
	bool ok = false;

	if (!d1 || !d2 || strchr(d2 + 1, '.') ||
	    !(hdr_raw = b64url_decode(jwt, (size_t)(d1 - jwt), &hdr_len)) ||
	    !(claims_raw = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &claims_len)) ||
	    !(sig = b64url_decode(d2 + 1, strlen(d2 + 1), &sig_len)) ||
	    pp_json_parse((char *)hdr_raw, hdr_len, NULL, &hdr, NULL) ||
	    pp_json_parse((char *)claims_raw, claims_len, NULL, &claims, NULL)) {
		oauth_error(resp, 400, "invalid_grant", "Invalid JWT: malformed assertion.");
		goto out;
	}
	if (!pp_json_get_string(hdr, "alg") ||
	    strcmp(pp_json_get_string(hdr, "alg"), "RS256") != 0) {
		oauth_error(resp, 400, "invalid_grant", "Invalid JWT: alg must be RS256.");
		goto out;
	}
	kid = pp_json_get_string(hdr, "kid");
	iss = pp_json_get_string(claims, "iss");
	/* Keys come and go (the IAM API): the lookup under the lock, the
	 * verification on a reference of our own. */
	pp_mock_lock(m);
	for (size_t i = 0; i < st->nkeys && !key; i++) {
		struct gkey *k = &st->keys[i];

		if (k->revoked || (k->iss && (!iss || strcmp(k->iss, iss) != 0)))
			continue;
		if (k->kid && kid && strcmp(k->kid, kid) != 0)
			continue;
		key = k;
	}
	if (key && EVP_PKEY_up_ref(key->pkey) == 1)
		pkey = key->pkey;
	pp_mock_unlock(m);
	if (!pkey) {
		oauth_error(resp, 400, "invalid_grant", "Invalid grant: account not found");
		goto out;
	}
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
	    EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)jwt, (size_t)(d2 - jwt)) !=
		    1) {
		oauth_error(resp, 400, "invalid_grant", "Invalid JWT Signature.");
		goto out;
	}
	if (!pp_json_get_number(claims, "iat", &iat) || !pp_json_get_number(claims, "exp", &exp) ||
	    exp <= iat || exp - iat > MAX_JWT_LIFETIME || iat > now + CLOCK_SKEW ||
	    exp < now - CLOCK_SKEW) {
		oauth_error(resp, 400, "invalid_grant",
			    "Invalid JWT: Token must be a short-lived token (60 minutes) and in "
			    "a reasonable timeframe. Check your iat and exp values in the JWT "
			    "claim.");
		goto out;
	}
	aud = pp_json_get_string(claims, "aud");
	snprintf(want_aud, sizeof(want_aud), "%s/google/token", pp_mock_base_url(m));
	if (!aud || (pp_mock_opts(m)->gcp_token_audience
			     ? strcmp(aud, pp_mock_opts(m)->gcp_token_audience) != 0
			     : strcmp(aud, want_aud) != 0 && strcmp(aud, GOOGLE_TOKEN_URL) != 0)) {
		oauth_error(resp, 400, "invalid_grant", "Invalid JWT: audience mismatch.");
		goto out;
	}
	scope = pp_json_get_string(claims, "scope");
	if (!scope || !*scope) {
		oauth_error(resp, 400, "invalid_scope",
			    "Invalid OAuth scope or ID token audience provided.");
		goto out;
	}
	ok = true;
out:
	EVP_PKEY_free(pkey);
	EVP_MD_CTX_free(md);
	pp_json_free(hdr);
	pp_json_free(claims);
	free(hdr_raw);
	free(claims_raw);
	free(sig);
	return ok;
}

static void oauth_token(struct pp_mock_call *c)
{
	struct pp_mock *m = c->m;
	struct google_state *st = c->state;
	const struct pp_mock_req *req = c->req;
	struct pp_mock_resp *resp = c->resp;
	char grant[128], assertion[16384];
	struct token *t;

	snprintf(resp->action, sizeof(resp->action), "token");
	switch (pp_mock_fault_check(m, "oauth", true, resp, NULL)) {
	case PP_MOCK_FAULT_THROTTLE:
		oauth_error(resp, 429, "rate_limit_exceeded", "Rate limit exceeded");
		return;
	case PP_MOCK_FAULT_ERROR:
		oauth_error(resp, 503, "temporarily_unavailable", "mock: injected failure");
		return;
	default: break;
	}
	if (!form_value(req->body, "grant_type", grant, sizeof(grant)) ||
	    strcmp(grant, "urn:ietf:params:oauth:grant-type:jwt-bearer") != 0) {
		oauth_error(resp, 400, "unsupported_grant_type", "Invalid grant_type: ");
		return;
	}
	if (!form_value(req->body, "assertion", assertion, sizeof(assertion))) {
		oauth_error(resp, 400, "invalid_request", "Missing required parameter: assertion");
		return;
	}
	if (!assertion_ok(m, st, assertion, resp))
		return;
	t = token_issue(m, st);
	if (!t) {
		oauth_error(resp, 500, "server_error", "mock: out of memory");
		return;
	}
	pp_mock_count(m, "oauth.tokens", NULL);
	token_answer(m, t, resp);
}

static void oauth_unmatched(struct pp_mock_call *c, bool other_method)
{
	snprintf(c->resp->action, sizeof(c->resp->action), "token");
	oauth_error(c->resp, 405, "invalid_request", "token endpoint takes POST");
}

static const struct pp_mock_route oauth_routes[] = {
	{"POST", "/google/token", oauth_token, .changes = true},
	{NULL},
};

static const struct pp_mock_router oauth_router = {
	.api = "oauth",
	.scope = "/google/token",
	.routes = oauth_routes,
	.unmatched = oauth_unmatched,
};

/* The metadata server, at the root (GCE_METADATA_HOST) and under /google.
 * Every answer carries Metadata-Flavor: Google; every request but the
 * detection ping must carry it too. */
static bool metadata_admit(struct pp_mock_call *c)
{
	const char *flavor = pp_mock_header(c->req, "Metadata-Flavor");
	const char *account = pp_mock_param(&c->params, "account");

	snprintf(c->resp->action, sizeof(c->resp->action), "other");
	pp_mock_resp_header(c->resp, "Metadata-Flavor", "Google");
	if (strcmp(c->req->path, "/") == 0)
		return true;
	if (!flavor || strcmp(flavor, "Google") != 0) {
		c->resp->reject_reason = "metadata_flavor_missing";
		pp_mock_resp_printf(c->resp, 403, "text/html",
				    "Missing Metadata-Flavor:Google header.\n");
		return false;
	}
	if (account && strcmp(account, "default") != 0 && strcmp(account, METADATA_EMAIL) != 0) {
		pp_mock_resp_printf(c->resp, 404, "text/html", "Not Found\n");
		return false;
	}
	return true;
}

static void metadata_unmatched(struct pp_mock_call *c, bool other_method)
{
	if (metadata_admit(c))
		pp_mock_resp_printf(c->resp, 404, "text/html", "Not Found\n");
}

/* google-auth's detection ping: 200 plus the flavor header. */
static void metadata_ping(struct pp_mock_call *c)
{
	pp_mock_resp_printf(c->resp, 200, "text/plain", "computeMetadata/\n");
}

static void metadata_token(struct pp_mock_call *c)
{
	struct token *t;

	snprintf(c->resp->action, sizeof(c->resp->action), "token");
	if (pp_mock_fault_check(c->m, "metadata", true, c->resp, NULL) != PP_MOCK_FAULT_NONE) {
		pp_mock_resp_printf(c->resp, 503, "text/plain", "mock: injected failure\n");
		return;
	}
	t = token_issue(c->m, c->state);
	if (!t) {
		pp_mock_resp_printf(c->resp, 500, "text/plain", "mock: out of memory\n");
		return;
	}
	pp_mock_count(c->m, "metadata.tokens", NULL);
	token_answer(c->m, t, c->resp);
}

/* google-auth reads the account info (?recursive=true) first. */
static void metadata_account(struct pp_mock_call *c)
{
	c->resp->action[0] = '\0';
	pp_mock_resp_printf(c->resp, 200, "application/json",
			    "{\"aliases\":[\"default\"],\"email\":\"" METADATA_EMAIL "\","
			    "\"scopes\":[\"https://www.googleapis.com/auth/"
			    "cloud-platform\"]}");
}

static void metadata_email(struct pp_mock_call *c)
{
	snprintf(c->resp->action, sizeof(c->resp->action), "email");
	pp_mock_resp_printf(c->resp, 200, "application/text", METADATA_EMAIL);
}

static void metadata_project(struct pp_mock_call *c)
{
	pp_mock_resp_printf(c->resp, 200, "application/text", "mock-project");
}

#define SA "/computeMetadata/v1/instance/service-accounts/{account}"
static const struct pp_mock_route metadata_routes[] = {
	{"GET", "/", metadata_ping, .changes = false},
	{"GET", SA "/token", metadata_token, .changes = false},
	{"GET", "/google" SA "/token", metadata_token, .changes = false},
	{"GET", SA, metadata_account, .changes = false},
	{"GET", "/google" SA, metadata_account, .changes = false},
	{"GET", SA "/email", metadata_email, .changes = false},
	{"GET", "/google" SA "/email", metadata_email, .changes = false},
	{"GET", "/computeMetadata/v1/project/project-id", metadata_project, .changes = false},
	{"GET", "/google/computeMetadata/v1/project/project-id", metadata_project,
	 .changes = false},
	{NULL},
};
#undef SA

static const struct pp_mock_router metadata_router = {
	.api = "metadata",
	.scope = "/", /* last: whatever the other routers do not take */
	.routes = metadata_routes,
	.admit = metadata_admit,
	.unmatched = metadata_unmatched,
};

/* ---- Cloud Run v2 ---- */

static bool job_id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n < 1 || n > 63 || !islower((unsigned char)id[0]) || id[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)id[i]) && !isdigit((unsigned char)id[i]) &&
		    id[i] != '-')
			return false;
	return true;
}

static struct job *job_find(struct google_state *st, const char *name)
{
	for (struct job *j = st->jobs; j; j = j->next)
		if (strcmp(j->name, name) == 0)
			return j;
	return NULL;
}

static struct execution *execution_find(struct google_state *st, const char *name)
{
	for (struct execution *e = st->executions; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

/* Behaviour cloudrun.cancel_drain: a cancelled execution is CANCELLING, its
 * tasks still running, until they have been stopped. */
static double cancel_ends(struct pp_mock *m, const struct execution *e)
{
	double drain;

	pp_mock_behaviour(m, "cloudrun.cancel_drain", &drain);
	return e->cancelled + drain;
}

static bool execution_done(struct pp_mock *m, const struct execution *e, double now)
{
	if (e->cancelled >= 0)
		return now >= cancel_ends(m, e);
	if (e->outcome == PP_MOCK_CRASH)
		return pp_mock_phase_at(m, e->created, now) != PP_MOCK_PROVISIONING;
	return pp_mock_job_phase(m, e->outcome, e->created, now) == PP_MOCK_FINISHED;
}

static struct pp_json *condition(struct pp_mock *m, const char *type, const char *state,
				 const char *reason, const char *message, double clock)
{
	struct pp_json *c = pp_json_new(PP_JSON_OBJECT);

	if (!c)
		return NULL;
	pp_json_set_string(c, "type", type);
	pp_json_set_string(c, "state", state);
	if (message)
		pp_json_set_string(c, "message", message);
	set_time(m, c, "lastTransitionTime", clock);
	if (reason)
		pp_json_set_string(c, "executionReason", reason);
	return c;
}

static struct pp_json *execution_json(struct pp_mock *m, const struct execution *e, double now)
{
	const struct pp_mock_opts *o = pp_mock_opts(m);
	struct pp_json *j = pp_json_new(PP_JSON_OBJECT), *conds = pp_json_new(PP_JSON_ARRAY);
	double start_at = e->created + o->provision_seconds;
	double end_at = e->outcome == PP_MOCK_CRASH ? start_at : start_at + o->run_seconds;
	bool done = execution_done(m, e, now);
	bool started = e->outcome != PP_MOCK_CRASH && now >= start_at &&
		       (e->cancelled < 0 || e->cancelled >= start_at);
	bool cancelling = e->cancelled >= 0 && !done;
	long long running = 0, succeeded = 0, failed = 0, cancelled = 0;
	char msg[512];

	if (!j || !conds) {
		pp_json_free(j);
		pp_json_free(conds);
		return NULL;
	}
	if (e->cancelled >= 0)
		end_at = cancel_ends(m, e);
	pp_json_set_string(j, "name", e->name);
	pp_json_set_string(j, "uid", e->uid);
	pp_json_set_string(j, "generation", "1");
	set_time(m, j, "createTime", e->created);
	if (started)
		set_time(m, j, "startTime", start_at);
	if (done)
		set_time(m, j, "completionTime", end_at);
	set_time(m, j, "updateTime", done ? end_at : now);
	pp_json_set_string(j, "launchStage", "GA");
	pp_json_set_string(j, "job", strrchr(e->job_name, '/') + 1);
	pp_json_set_int(j, "parallelism", 1);
	pp_json_set_int(j, "taskCount", e->task_count);
	if (!done && started)
		running = e->task_count;
	else if (done && e->cancelled >= 0)
		cancelled = e->task_count;
	else if (done && e->outcome == PP_MOCK_SUCCEED)
		succeeded = e->task_count;
	else if (done)
		failed = e->task_count;
	if (e->missing_image && done && e->cancelled < 0) {
		/* Condition.CommonReason CONTAINER_MISSING on the condition that
		 * failed, as Cloud Run reports an image it cannot find. */
		struct pp_json *ra;
		snprintf(msg, sizeof(msg), "Image '%s' not found.", e->missing_image);
		ra = condition(m, "ResourcesAvailable", "CONDITION_FAILED", NULL, msg, end_at);
		if (ra)
			pp_json_set_string(ra, "reason", "CONTAINER_MISSING");
		pp_json_append(conds, ra);
	} else {
		pp_json_append(conds, condition(m, "ResourcesAvailable", "CONDITION_SUCCEEDED",
						NULL, NULL, e->created));
	}
	pp_json_append(conds, condition(m, "Started",
					e->missing_image  ? "CONDITION_PENDING"
					: started || done ? "CONDITION_SUCCEEDED"
							  : "CONDITION_PENDING",
					NULL, NULL, started ? start_at : e->created));
	if (cancelling) {
		pp_json_append(conds, condition(m, "Completed", "CONDITION_PENDING", "CANCELLING",
						"The execution is being cancelled.", e->cancelled));
	} else if (!done) {
		pp_json_append(conds, condition(m, "Completed", "CONDITION_PENDING", NULL,
						started ? "Tasks are running." : "Provisioning.",
						started ? start_at : e->created));
	} else if (cancelled) {
		pp_json_append(conds, condition(m, "Completed", "CONDITION_FAILED", "CANCELLED",
						"The execution was cancelled.", end_at));
	} else if (succeeded) {
		pp_json_append(conds, condition(m, "Completed", "CONDITION_SUCCEEDED", NULL,
						"Execution completed successfully.", end_at));
	} else {
		snprintf(msg, sizeof(msg),
			 e->outcome == PP_MOCK_CRASH
				 ? "Task %s-0 failed: the container could not start "
				   "(mock: PUSHPOOL_MOCK_CRASH=1)."
				 : "Task %s-0 failed with message: The container exited with an "
				   "error: exit code 1 (mock: PUSHPOOL_MOCK_FAIL=1).",
			 strrchr(e->name, '/') + 1);
		pp_json_append(conds, condition(m, "Completed", "CONDITION_FAILED",
						"NON_ZERO_EXIT_CODE", msg, end_at));
	}
	pp_json_set(j, "conditions", conds);
	pp_json_set_int(j, "runningCount", running);
	pp_json_set_int(j, "succeededCount", succeeded);
	pp_json_set_int(j, "failedCount", failed);
	pp_json_set_int(j, "cancelledCount", cancelled);
	pp_json_set_string(j, "logUri", "http://127.0.0.1/mock-logs");
	pp_json_set_string(j, "etag", "\"mock\"");
	return j;
}

/* Behaviour cloudrun.reconcile: a new job is reconciling (reconciling true,
 * terminalCondition CONDITION_RECONCILING) until this clock. */
static double job_ready_at(struct pp_mock *m, const struct job *jb)
{
	double reconcile;

	pp_mock_behaviour(m, "cloudrun.reconcile", &reconcile);
	return jb->created + reconcile;
}

static struct pp_json *job_json(struct pp_mock *m, struct google_state *st, const struct job *jb)
{
	struct pp_json *j = pp_json_clone(jb->body), *cond = pp_json_new(PP_JSON_OBJECT);
	struct execution *latest =
		jb->latest_execution ? execution_find(st, jb->latest_execution) : NULL;
	double ready_at = job_ready_at(m, jb);
	bool reconciling = pp_mock_clock(m) < ready_at;

	if (!j || !cond) {
		pp_json_free(j);
		pp_json_free(cond);
		return NULL;
	}
	pp_json_set_string(j, "name", jb->name);
	pp_json_set_string(j, "uid", jb->uid);
	pp_json_set_string(j, "generation", "1");
	set_time(m, j, "createTime", jb->created);
	set_time(m, j, "updateTime", jb->created);
	if (!pp_json_get(j, "launchStage"))
		pp_json_set_string(j, "launchStage", "GA");
	pp_json_set_string(cond, "type", "Ready");
	pp_json_set_string(cond, "state",
			   reconciling ? "CONDITION_RECONCILING" : "CONDITION_SUCCEEDED");
	set_time(m, cond, "lastTransitionTime", reconciling ? jb->created : ready_at);
	pp_json_set(j, "terminalCondition", cond);
	if (reconciling)
		pp_json_set_bool(j, "reconciling", true);
	pp_json_set_string(j, "observedGeneration", "1");
	pp_json_set_int(j, "executionCount", jb->executions);
	if (latest) {
		struct pp_json *le = pp_json_new(PP_JSON_OBJECT);

		pp_json_set_string(le, "name", strrchr(latest->name, '/') + 1);
		set_time(m, le, "createTime", latest->created);
		pp_json_set(j, "latestCreatedExecution", le);
	}
	pp_json_set_string(j, "etag", "\"mock\"");
	return j;
}

static void operation_free(struct operation *o)
{
	free(o->name);
	free(o->json);
	free(o->done_json);
	free(o);
}

/* The Operation as operations.get answers it once done (keeps resource). */
static char *operation_done_json(const struct pp_json *op, const char *type,
				 const struct pp_json *resource)
{
	struct pp_json *d = pp_json_clone(op), *r = pp_json_clone(resource);
	char *s = NULL;

	if (d && r) {
		pp_json_set_string(r, "@type", type);
		pp_json_set_bool(d, "done", true);
		pp_json_set(d, "response", r);
		r = NULL;
		s = pp_json_to_string(d, PP_JSON_COMPACT);
	}
	pp_json_free(d);
	pp_json_free(r);
	return s;
}

/* Operation wrapping a resource; remembered for operations.get. done_after
 * > 0 (the cloudrun.lro behaviour): answered not done, and done from that
 * many seconds on. */
static void operation_lro(struct pp_mock *m, struct google_state *st, const char *location,
			  const char *type, struct pp_json *resource, bool done, double done_after,
			  struct pp_mock_resp *resp)
{
	struct pp_json *op = pp_json_new(PP_JSON_OBJECT), *meta;
	struct operation *o = calloc(1, sizeof(*o));
	char id[37], name[512];

	if (done && done_after > 0)
		done = false;
	else
		done_after = 0;

	uuid4(m, id);
	snprintf(name, sizeof(name), "%s/operations/%s", location, id);
	meta = pp_json_clone(resource);
	if (!op || !o || !meta || !resource) {
		pp_json_free(op);
		pp_json_free(meta);
		pp_json_free(resource);
		free(o);
		rpc_error(resp, 500, NULL, NULL, "mock: out of memory");
		return;
	}
	pp_json_set_string(meta, "@type", type);
	pp_json_set_string(op, "name", name);
	pp_json_set(op, "metadata", meta);
	pp_json_set_bool(op, "done", done);
	if (done_after > 0) {
		o->done_json = operation_done_json(op, type, resource);
		o->done_at = pp_mock_clock(m) + done_after;
	}
	if (done) {
		pp_json_set_string(resource, "@type", type);
		pp_json_set(op, "response", resource);
	} else {
		pp_json_free(resource);
	}
	o->name = strdup(name);
	/* The operation as answered is the one kept for its GETs: written once. */
	if (pp_mock_resp_json(resp, 200, NULL, op) == 0)
		o->json = strndup(resp->body.data, resp->body.len);
	pp_json_free(op);
	if (!o->name || !o->json || (done_after > 0 && !o->done_json)) {
		operation_free(o);
		return;
	}
	o->next = st->operations;
	st->operations = o;
	if (++st->noperations > MAX_ITEMS) {
		struct operation **pp = &st->operations;

		while ((*pp)->next)
			pp = &(*pp)->next;
		operation_free(*pp);
		*pp = NULL;
		st->noperations--;
	}
}

static void operation(struct pp_mock *m, struct google_state *st, const char *location,
		      const char *type, struct pp_json *resource, bool done,
		      struct pp_mock_resp *resp)
{
	operation_lro(m, st, location, type, resource, done, 0, resp);
}

/* Behaviour cloudrun.lro: CreateJob and DeleteJob are long-running
 * operations; the resource is created (reconciling) or gone at once, the
 * Operation is done this many seconds later. */
static double lro_seconds(struct pp_mock *m)
{
	double s;

	pp_mock_behaviour(m, "cloudrun.lro", &s);
	return s;
}

static void job_create(struct pp_mock *m, struct google_state *st, const char *parent,
		       const struct pp_mock_req *req, struct pp_mock_resp *resp)
{
	const char *id = pp_mock_arg(req, "jobId");
	const char *validate = pp_mock_arg(req, "validateOnly");
	struct pp_json *body = NULL;
	struct pp_error err = {0};
	struct job *jb;
	char name[600];

	snprintf(resp->action, sizeof(resp->action), "CreateJob");
	if (!id || !job_id_ok(id)) {
		rpc_error(resp, 400, NULL, "job_id",
			  "Resource name must use only lowercase letters, numbers and '-'. Must "
			  "begin with a letter and cannot end with a '-'. Maximum length is 63 "
			  "characters.");
		return;
	}
	if (pp_json_parse(req->body, req->body_len, NULL, &body, &err) ||
	    !pp_json_is(body, PP_JSON_OBJECT)) {
		pp_json_free(body);
		rpc_error(resp, 400, NULL, NULL, "Invalid JSON payload received. %s", err.msg);
		return;
	}
	if (!pp_json_path(body, "template.template.containers[0].image") ||
	    !*pp_json_string(pp_json_path(body, "template.template.containers[0].image"))) {
		pp_json_free(body);
		rpc_error(resp, 400, NULL, "job.template.template.containers[0].image",
			  "spec.template.spec.containers[0].image: Required");
		return;
	}
	snprintf(name, sizeof(name), "%.500s/jobs/%.63s", parent, id);
	pp_mock_lock(m);
	if (job_find(st, name)) {
		pp_mock_unlock(m);
		pp_json_free(body);
		pp_mock_count(m, "cloudrun.duplicates", NULL);
		rpc_error(resp, 409, "ALREADY_EXISTS", NULL, "Resource '%s' already exists.", id);
		return;
	}
	if (st->njobs >= 1000) {
		pp_mock_unlock(m);
		pp_json_free(body);
		rpc_error(resp, 429, NULL, NULL,
			  "Quota exceeded for quota metric 'Jobs' (1000 per project per region).");
		return;
	}
	jb = calloc(1, sizeof(*jb));
	if (!jb || !(jb->name = strdup(name)) || !(jb->id = strdup(id))) {
		pp_mock_unlock(m);
		if (jb)
			free(jb->name);
		free(jb);
		pp_json_free(body);
		rpc_error(resp, 500, NULL, NULL, "mock: out of memory");
		return;
	}
	jb->body = body;
	jb->created = pp_mock_clock(m);
	uuid4(m, jb->uid);
	if (validate && strcmp(validate, "true") == 0) {
		operation(m, st, parent, "type.googleapis.com/google.cloud.run.v2.Job",
			  job_json(m, st, jb), true, resp);
		pp_mock_unlock(m);
		pp_json_free(jb->body);
		free(jb->name);
		free(jb->id);
		free(jb);
		return;
	}
	jb->next = st->jobs;
	st->jobs = jb;
	st->njobs++;
	operation_lro(m, st, parent, "type.googleapis.com/google.cloud.run.v2.Job",
		      job_json(m, st, jb), true, lro_seconds(m), resp);
	pp_mock_unlock(m);
	pp_mock_count(m, "cloudrun.creates", NULL);
}

/* ---- Cloud Logging: what executions write ---- */

/* Executions whose output is kept at most; the oldest is dropped first. */
#define MAX_EXEC_LOGS 10000

static void exec_log_free(struct exec_log *l)
{
	free(l->name);
	pp_mock_joblog_free(l->log);
	free(l);
}

/* Keep an execution's output (under the lock). */
static void log_add(struct pp_mock *m, struct google_state *st, const char *name,
		    const struct pp_json *spec, const struct pp_json *overrides,
		    enum pp_mock_outcome outcome, double created)
{
	struct exec_log *l = calloc(1, sizeof(*l));

	if (!l || !(l->name = strdup(name)) ||
	    !(l->log = pp_mock_joblog_new(m, spec, overrides, outcome, created))) {
		if (l)
			exec_log_free(l);
		return;
	}
	l->stopped = -1;
	l->next = st->logs;
	st->logs = l;
	if (++st->nlogs > MAX_EXEC_LOGS) {
		struct exec_log **pp = &st->logs;

		while ((*pp)->next)
			pp = &(*pp)->next;
		exec_log_free(*pp);
		*pp = NULL;
		st->nlogs--;
	}
}

static void log_stop(struct google_state *st, const char *name, double now)
{
	for (struct exec_log *l = st->logs; l; l = l->next)
		if (!strcmp(l->name, name) && l->stopped < 0)
			l->stopped = now;
}

static void job_run(struct pp_mock *m, struct google_state *st, const char *job_name,
		    const char *location, const struct pp_mock_req *req, struct pp_mock_resp *resp)
{
	struct pp_json *body = NULL;
	struct execution *e;
	struct job *jb;
	enum pp_mock_outcome outcome;
	char suffix[6], name[600];
	long long tasks;
	struct pp_json *overrides = NULL; /* the run's, for its output */

	snprintf(resp->action, sizeof(resp->action), "RunJob");
	if (req->body_len && (pp_json_parse(req->body, req->body_len, NULL, &body, NULL) ||
			      !pp_json_is(body, PP_JSON_OBJECT))) {
		pp_json_free(body);
		rpc_error(resp, 400, NULL, NULL, "Invalid JSON payload received.");
		return;
	}
	pp_mock_lock(m);
	jb = job_find(st, job_name);
	if (!jb) {
		pp_mock_unlock(m);
		pp_json_free(body);
		rpc_error(resp, 404, NULL, NULL, "Resource '%s' was not found", job_name);
		return;
	}
	if (pp_mock_clock(m) < job_ready_at(m, jb)) {
		pp_mock_unlock(m);
		pp_json_free(body);
		pp_mock_count(m, "cloudrun.run_not_ready", NULL);
		rpc_error(resp, 400, "FAILED_PRECONDITION", NULL,
			  "Job '%s' is not ready: it is still being reconciled.", jb->id);
		return;
	}
	outcome = pp_mock_outcome_of(pp_json_get(jb->body, "template"));
	if (pp_mock_outcome_of(pp_json_get(body, "overrides")) > outcome)
		outcome = pp_mock_outcome_of(pp_json_get(body, "overrides"));
	overrides = pp_json_clone(pp_json_get(body, "overrides"));
	tasks = pp_json_get_int(pp_json_get(body, "overrides"), "taskCount",
				pp_json_get_int(pp_json_get(jb->body, "template"), "taskCount", 1));
	e = calloc(1, sizeof(*e));
	/* The image went missing after the job was created: the execution
	 * fails before any task starts. */
	if (e && pp_mock_start_failure(m, "cloudrun")) {
		const char *img = pp_json_get_string(
			pp_json_at(pp_json_path(jb->body, "template.template.containers"), 0),
			"image");
		outcome = PP_MOCK_CRASH;
		e->missing_image = strdup(img ? img : "the image");
	}
	if (e)
		pp_mock_prefect_job_started(m, pp_json_get(jb->body, "template"),
					    pp_json_get(body, "overrides"), outcome,
					    pp_mock_clock(m));
	pp_json_free(body);
	pp_mock_random_hex(m, suffix, 5);
	snprintf(name, sizeof(name), "%.500s/executions/%.63s-%s", job_name, jb->id, suffix);
	if (!e || !(e->name = strdup(name)) || !(e->job_name = strdup(job_name))) {
		pp_mock_unlock(m);
		if (e) {
			free(e->name);
			free(e->missing_image);
		}
		free(e);
		pp_json_free(overrides);
		rpc_error(resp, 500, NULL, NULL, "mock: out of memory");
		return;
	}
	e->outcome = outcome;
	e->created = pp_mock_clock(m);
	e->cancelled = -1;
	log_add(m, st, name, pp_json_get(jb->body, "template"), overrides, outcome, e->created);
	e->task_count = tasks > 0 ? tasks : 1;
	uuid4(m, e->uid);
	e->next = st->executions;
	st->executions = e;
	st->nexecutions++;
	jb->executions++;
	free(jb->latest_execution);
	jb->latest_execution = strdup(name);
	operation(m, st, location, "type.googleapis.com/google.cloud.run.v2.Execution",
		  execution_json(m, e, e->created), false, resp);
	pp_mock_unlock(m);
	pp_json_free(overrides);
	/* The only counter keyed by job id: scripts read "JOB_ID":N from stats. */
	pp_mock_count(m, "cloudrun.executions", jb->id);
}

static void execution_free(struct execution *e)
{
	free(e->name);
	free(e->job_name);
	free(e->missing_image);
	free(e);
}

static void job_free(struct job *j)
{
	free(j->name);
	free(j->id);
	free(j->latest_execution);
	pp_json_free(j->body);
	free(j);
}

/* Behaviour cloudrun.delete_busy: DeleteJob is refused while one of the
 * job's executions runs or is cancelling (true after answering). */
static bool job_busy_refused(struct pp_mock *m, struct google_state *st, const char *job_name,
			     double now, struct pp_mock_resp *resp)
{
	if (!pp_mock_behaviour(m, "cloudrun.delete_busy", NULL))
		return false;
	for (struct execution *e = st->executions; e; e = e->next) {
		if (strcmp(e->job_name, job_name) != 0 || execution_done(m, e, now))
			continue;
		pp_mock_count(m, "cloudrun.delete_refused", NULL);
		rpc_error(resp, 400, "FAILED_PRECONDITION", NULL,
			  "Job '%s' has %s execution '%s'; wait for it to stop before deleting "
			  "the job.",
			  strrchr(job_name, '/') + 1,
			  e->cancelled >= 0 ? "a cancelling" : "a running",
			  strrchr(e->name, '/') + 1);
		return true;
	}
	return false;
}

/* DELETE job: running executions are cancelled with it (unless
 * cloudrun.delete_busy refuses). */
static void job_delete(struct pp_mock *m, struct google_state *st, const char *job_name,
		       const char *location, struct pp_mock_resp *resp)
{
	struct job **pp, *jb = NULL;
	double now = pp_mock_clock(m);

	snprintf(resp->action, sizeof(resp->action), "DeleteJob");
	pp_mock_lock(m);
	if (job_busy_refused(m, st, job_name, now, resp)) {
		pp_mock_unlock(m);
		return;
	}
	for (pp = &st->jobs; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, job_name) == 0) {
			jb = *pp;
			*pp = jb->next;
			st->njobs--;
			break;
		}
	}
	if (!jb) {
		pp_mock_unlock(m);
		rpc_error(resp, 404, NULL, NULL, "Resource '%s' was not found", job_name);
		return;
	}
	for (struct execution **ep = &st->executions; *ep;) {
		struct execution *e = *ep;

		if (strcmp(e->job_name, job_name) != 0) {
			ep = &e->next;
			continue;
		}
		if (!execution_done(m, e, now))
			pp_mock_count(m, "cloudrun.cancelledByDelete", NULL);
		*ep = e->next;
		st->nexecutions--;
		execution_free(e);
	}
	operation_lro(m, st, location, "type.googleapis.com/google.cloud.run.v2.Job",
		      job_json(m, st, jb), true, lro_seconds(m), resp);
	pp_mock_unlock(m);
	pp_mock_count(m, "cloudrun.deletes", NULL);
	job_free(jb);
}

static void execution_action(struct pp_mock *m, struct google_state *st, const char *name,
			     const char *verb, const char *location, const char *method,
			     struct pp_mock_resp *resp)
{
	double now = pp_mock_clock(m);
	struct execution *e;

	snprintf(resp->action, sizeof(resp->action), "%s",
		 verb				 ? "CancelExecution"
		 : strcmp(method, "DELETE") == 0 ? "DeleteExecution"
						 : "GetExecution");
	pp_mock_lock(m);
	e = execution_find(st, name);
	if (!e) {
		pp_mock_unlock(m);
		rpc_error(resp, 404, NULL, NULL, "Resource '%s' was not found", name);
		return;
	}
	if (verb) {
		if (execution_done(m, e, now) &&
		    pp_mock_behaviour(m, "cloudrun.cancel_finished", NULL)) {
			pp_mock_unlock(m);
			pp_mock_count(m, "cloudrun.cancel_refused", NULL);
			rpc_error(resp, 400, "FAILED_PRECONDITION", NULL,
				  "Execution '%s' has already completed and cannot be cancelled.",
				  strrchr(name, '/') + 1);
			return;
		}
		if (e->cancelled < 0 && !execution_done(m, e, now)) {
			e->cancelled = now;
			log_stop(st, e->name, now);
			pp_mock_count(m, "cloudrun.cancel", NULL);
		}
		operation(m, st, location, "type.googleapis.com/google.cloud.run.v2.Execution",
			  execution_json(m, e, now), true, resp);
	} else if (strcmp(method, "DELETE") == 0) {
		struct execution **pp = &st->executions;

		if (e->cancelled < 0 && !execution_done(m, e, now)) {
			e->cancelled = now;
			log_stop(st, e->name, now);
		}
		operation(m, st, location, "type.googleapis.com/google.cloud.run.v2.Execution",
			  execution_json(m, e, now), true, resp);
		while (*pp != e)
			pp = &(*pp)->next;
		*pp = e->next;
		st->nexecutions--;
		execution_free(e);
	} else {
		struct pp_json *j = execution_json(m, e, now);

		if (j)
			pp_mock_resp_json(resp, 200, NULL, j);
		else
			rpc_error(resp, 500, NULL, NULL, "mock: out of memory");
		pp_json_free(j);
	}
	pp_mock_unlock(m);
}

static void list_answer(struct pp_mock_resp *resp, const char *key, struct pp_json *items)
{
	struct pp_json *o = pp_json_new(PP_JSON_OBJECT);

	if (o && items && pp_json_set(o, key, items) == 0)
		pp_mock_resp_json(resp, 200, NULL, o);
	else
		rpc_error(resp, 500, NULL, NULL, "mock: out of memory");
	pp_json_free(o);
}

/* Every Google API here needs a bearer token this mock issued, then passes
 * fault injection under its own name (api). */
bool pp_mock_google_admit(struct pp_mock_call *c, const char *api)
{
	struct pp_mock_resp *resp = c->resp;
	int retry_after = 0;
	bool expired;

	if (!bearer_ok(c->m, pp_mock_google_state(c->state), c->req, &expired)) {
		rpc_error(resp, 401, NULL, NULL,
			  expired ? "Request had invalid authentication credentials: the access "
				    "token has expired."
				  : "Request had invalid authentication credentials. Expected "
				    "OAuth 2 access token, login cookie or other valid "
				    "authentication credential.");
		return false;
	}
	switch (pp_mock_fault_check(c->m, api, false, resp, &retry_after)) {
	case PP_MOCK_FAULT_THROTTLE:
		rpc_error(resp, 429, NULL, NULL,
			  "Quota exceeded for quota metric 'Job run "
			  "requests' (mock throttle).");
		if (retry_after > 0) {
			char v[16];

			snprintf(v, sizeof(v), "%d", retry_after);
			pp_mock_resp_header(resp, "Retry-After", v);
		}
		return false;
	case PP_MOCK_FAULT_ERROR:
		rpc_error(resp, 503, NULL, NULL, "The service is currently unavailable.");
		return false;
	default: return true;
	}
}

static bool cloudrun_admit(struct pp_mock_call *c)
{
	return pp_mock_google_admit(c, "cloudrun");
}

static void cloudrun_unmatched(struct pp_mock_call *c, bool other_method)
{
	if (other_method)
		rpc_error(c->resp, 405, "UNIMPLEMENTED", NULL, "method not allowed");
	else
		rpc_error(c->resp, 404, NULL, NULL, "mock Cloud Run has no route %s %s",
			  c->req->method, c->req->path);
}

/* "projects/P/locations/L", the parent of everything below it. */
static void cr_location(const struct pp_mock_call *c, char *out, size_t size)
{
	snprintf(out, size, "projects/%s/locations/%s", pp_mock_param(&c->params, "project"),
		 pp_mock_param(&c->params, "location"));
}

/* "projects/P/locations/L/jobs/J" */
static void cr_job(const struct pp_mock_call *c, char *out, size_t size)
{
	char location[512];

	cr_location(c, location, sizeof(location));
	snprintf(out, size, "%s/jobs/%s", location, pp_mock_param(&c->params, "job"));
}

static void cr_operation_get(struct pp_mock_call *c)
{
	struct google_state *st = c->state;
	char location[512], name[800];
	struct operation *o;

	snprintf(c->resp->action, sizeof(c->resp->action), "GetOperation");
	cr_location(c, location, sizeof(location));
	snprintf(name, sizeof(name), "%s/operations/%s", location,
		 pp_mock_param(&c->params, "operation"));
	pp_mock_lock(c->m);
	for (o = st->operations; o && strcmp(o->name, name) != 0; o = o->next)
		;
	if (o)
		pp_mock_resp_printf(c->resp, 200, "application/json", "%s",
				    o->done_json && pp_mock_clock(c->m) >= o->done_at ? o->done_json
										      : o->json);
	pp_mock_unlock(c->m);
	if (!o)
		rpc_error(c->resp, 404, NULL, NULL, "Operation '%s' was not found", name);
}

static void cr_job_create(struct pp_mock_call *c)
{
	char location[512];

	cr_location(c, location, sizeof(location));
	job_create(c->m, c->state, location, c->req, c->resp);
}

static void cr_job_list(struct pp_mock_call *c)
{
	struct google_state *st = c->state;
	struct pp_json *items = pp_json_new(PP_JSON_ARRAY);
	char location[512];

	snprintf(c->resp->action, sizeof(c->resp->action), "ListJobs");
	cr_location(c, location, sizeof(location));
	pp_mock_lock(c->m);
	for (struct job *jb = st->jobs; jb && items; jb = jb->next)
		if (strncmp(jb->name, location, strlen(location)) == 0)
			pp_json_append(items, job_json(c->m, st, jb));
	pp_mock_unlock(c->m);
	list_answer(c->resp, "jobs", items);
}

static void cr_job_run(struct pp_mock_call *c)
{
	char location[512], job[800];

	cr_location(c, location, sizeof(location));
	cr_job(c, job, sizeof(job));
	/* "cloudrun.run": RunJob alone fails, so the job a run created stays
	 * behind unless the client cleans up after the failed submission. */
	if (pp_mock_step_fault(c->m, "cloudrun.run")) {
		snprintf(c->resp->action, sizeof(c->resp->action), "RunJob");
		rpc_error(c->resp, 503, NULL, NULL, "The service is currently unavailable (mock).");
		return;
	}
	job_run(c->m, c->state, job, location, c->req, c->resp);
}

static void cr_job_get(struct pp_mock_call *c)
{
	struct pp_json *j = NULL;
	struct job *jb;
	char job[800];

	snprintf(c->resp->action, sizeof(c->resp->action), "GetJob");
	cr_job(c, job, sizeof(job));
	pp_mock_lock(c->m);
	jb = job_find(c->state, job);
	if (jb)
		j = job_json(c->m, c->state, jb);
	pp_mock_unlock(c->m);
	if (j)
		pp_mock_resp_json(c->resp, 200, NULL, j);
	else
		rpc_error(c->resp, 404, NULL, NULL, "Resource '%s' was not found", job);
	pp_json_free(j);
}

static void cr_job_delete(struct pp_mock_call *c)
{
	char location[512], job[800];

	cr_location(c, location, sizeof(location));
	cr_job(c, job, sizeof(job));
	job_delete(c->m, c->state, job, location, c->resp);
}

static void cr_execution_list(struct pp_mock_call *c)
{
	struct google_state *st = c->state;
	struct pp_json *items = pp_json_new(PP_JSON_ARRAY);
	double now = pp_mock_clock(c->m);
	char job[800];

	snprintf(c->resp->action, sizeof(c->resp->action), "ListExecutions");
	cr_job(c, job, sizeof(job));
	pp_mock_lock(c->m);
	for (struct execution *e = st->executions; e && items; e = e->next)
		if (strcmp(e->job_name, job) == 0)
			pp_json_append(items, execution_json(c->m, e, now));
	pp_mock_unlock(c->m);
	list_answer(c->resp, "executions", items);
}

/* GET, DELETE or :cancel one execution. */
static void cr_execution(struct pp_mock_call *c)
{
	char location[512], job[800], exec[1000];
	bool cancel = strcmp(c->req->method, "POST") == 0;

	cr_location(c, location, sizeof(location));
	cr_job(c, job, sizeof(job));
	snprintf(exec, sizeof(exec), "%.599s/executions/%.180s", job,
		 pp_mock_param(&c->params, "execution"));
	execution_action(c->m, c->state, exec, cancel ? "cancel" : NULL, location, c->req->method,
			 c->resp);
}

#define LOC "/google/v2/projects/{project}/locations/{location}"
/* The bodies against the Cloud Run v2 protos (mock/spec_gate.c). */
static bool cr_validate_create(struct pp_mock_call *c)
{
	return !pp_mock_spec_cloudrun(c->m, "google.cloud.run.v2.Jobs.CreateJob", c->req, c->resp);
}

static bool cr_validate_run(struct pp_mock_call *c)
{
	return !pp_mock_spec_cloudrun(c->m, "google.cloud.run.v2.Jobs.RunJob", c->req, c->resp);
}

static bool cr_validate_cancel(struct pp_mock_call *c)
{
	return !pp_mock_spec_cloudrun(c->m, "google.cloud.run.v2.Executions.CancelExecution",
				      c->req, c->resp);
}

/* ---- Cloud Logging v2: entries:list over the executions' output ---- */

/* The filter subset the mock reads (Logging query language): terms joined
 * by AND, each FIELD="VALUE" (resource.type, resource.labels.job_name,
 * .location, .project_id, labels."run.googleapis.com/execution_name",
 * logName), timestamp>="T" or >"T", or log_id("ID") alone or ORed in
 * parentheses. Anything else is answered INVALID_ARGUMENT, naming it. */
#define FILTER_TERMS 16
#define LOG_IDS	     4

struct lterm {
	enum { LT_EQ, LT_TS_GE, LT_TS_GT, LT_LOG_IDS } kind;
	char field[96];
	char value[320];
	int64_t ts_ms;
	char ids[LOG_IDS][96];
	int nids;
};

/* The quoted string at *p ("..." with \" and \\), into out; *p moves past it. */
static bool quoted(const char **p, char *out, size_t size)
{
	const char *s = *p;
	size_t n = 0;

	if (*s++ != '"')
		return false;
	for (; *s && *s != '"'; s++) {
		if (*s == '\\' && s[1])
			s++;
		if (n + 1 < size)
			out[n++] = *s;
	}
	out[n] = '\0';
	if (*s != '"')
		return false;
	*p = s + 1;
	return true;
}

static bool parse_log_ids(const char *s, struct lterm *t)
{
	t->kind = LT_LOG_IDS;
	t->nids = 0;
	while (*s) {
		while (*s == ' ')
			s++;
		if (strncmp(s, "log_id(", 7) || t->nids == LOG_IDS)
			return false;
		s += 7;
		if (!quoted(&s, t->ids[t->nids++], sizeof(t->ids[0])) || *s++ != ')')
			return false;
		while (*s == ' ')
			s++;
		if (!*s)
			return true;
		if (strncmp(s, "OR ", 3))
			return false;
		s += 3;
	}
	return false;
}

static bool parse_term(const char *s, size_t n, struct lterm *t)
{
	char buf[1024];

	while (n && *s == ' ')
		s++, n--;
	while (n && s[n - 1] == ' ')
		n--;
	if (n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (buf[0] == '(' && buf[n - 1] == ')') {
		buf[n - 1] = '\0';
		return parse_log_ids(buf + 1, t);
	}
	if (!strncmp(buf, "log_id(", 7))
		return parse_log_ids(buf, t);
	const char *op = strpbrk(buf, "=>");
	if (!op || (size_t)(op - buf) >= sizeof(t->field))
		return false;
	snprintf(t->field, sizeof(t->field), "%.*s", (int)(op - buf), buf);
	const char *v = op + (op[0] == '>' && op[1] == '=' ? 2 : 1);
	if (!quoted(&v, t->value, sizeof(t->value)) || *v)
		return false;
	if (!strcmp(t->field, "timestamp")) {
		if (op[0] != '>' || pp_time_parse(t->value, 0, &t->ts_ms))
			return false;
		t->kind = op[1] == '=' ? LT_TS_GE : LT_TS_GT;
		return true;
	}
	t->kind = LT_EQ;
	return op[0] == '=' &&
	       (!strcmp(t->field, "resource.type") || !strcmp(t->field, "logName") ||
		!strcmp(t->field, "resource.labels.job_name") ||
		!strcmp(t->field, "resource.labels.location") ||
		!strcmp(t->field, "resource.labels.project_id") ||
		!strcmp(t->field, "labels.\"run.googleapis.com/execution_name\""));
}

/* Split filter at the top-level ANDs (outside quotes and parentheses). */
static int parse_filter(const char *f, struct lterm *terms, char *bad, size_t bad_size)
{
	int n = 0, depth = 0;
	bool q = false;
	const char *start = f;

	for (const char *p = f;; p++) {
		if (*p == '\\' && q && p[1]) {
			p++;
			continue;
		}
		if (*p == '"')
			q = !q;
		else if (!q && *p == '(')
			depth++;
		else if (!q && *p == ')')
			depth--;
		bool end = !*p;
		if (!end && (q || depth || strncmp(p, " AND ", 5)))
			continue;
		if (n == FILTER_TERMS || !parse_term(start, (size_t)(p - start), &terms[n])) {
			snprintf(bad, bad_size, "%.*s", (int)(p - start), start);
			return -1;
		}
		n++;
		if (end)
			return n;
		start = p + 5;
		p += 4;
	}
}

struct lentry {
	long long ms;
	char id[40];
	const char *text;
	int fd;
	const struct exec_log *l;
};

static int lentry_cmp(const void *a, const void *b)
{
	const struct lentry *x = a, *y = b;

	if (x->ms != y->ms)
		return x->ms < y->ms ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* Does the entry (execution name parts, stream, time) pass every term? */
static bool lentry_matches(const struct lterm *terms, int n, const char *project,
			   const char *location, const char *job, const char *exec,
			   const char *log_name, const char *log_id, long long ms)
{
	for (int i = 0; i < n; i++) {
		const struct lterm *t = &terms[i];
		const char *have = NULL;
		bool ok = false;

		switch (t->kind) {
		case LT_TS_GE: ok = ms >= t->ts_ms; break;
		case LT_TS_GT: ok = ms > t->ts_ms; break;
		case LT_LOG_IDS:
			for (int k = 0; k < t->nids && !ok; k++)
				ok = !strcmp(t->ids[k], log_id);
			break;
		case LT_EQ:
			have = !strcmp(t->field, "resource.type")		 ? "cloud_run_job"
			       : !strcmp(t->field, "logName")			 ? log_name
			       : !strcmp(t->field, "resource.labels.job_name")	 ? job
			       : !strcmp(t->field, "resource.labels.location")	 ? location
			       : !strcmp(t->field, "resource.labels.project_id") ? project
										 : exec;
			ok = !strcmp(have, t->value);
			break;
		}
		if (!ok)
			return false;
	}
	return true;
}

/* projects/P/locations/L/jobs/J/executions/E into its parts (each of
 * EXEC_PART bytes). */
#define EXEC_PART 128
static bool exec_parts(const char *name, char *p, char *l, char *j, char *e)
{
	return sscanf(name,
		      "projects/%127[^/]/locations/%127[^/]/jobs/%127[^/]/executions/%127[^/]", p,
		      l, j, e) == 4;
}

static struct pp_json *lentry_json(const struct lentry *le)
{
	char p[EXEC_PART], l[EXEC_PART], j[EXEC_PART], e[EXEC_PART], log_name[300], ts[64];
	struct pp_json *o = pp_json_new(PP_JSON_OBJECT), *res = pp_json_new(PP_JSON_OBJECT);
	struct pp_json *rl = pp_json_new(PP_JSON_OBJECT), *labels = pp_json_new(PP_JSON_OBJECT);
	long long ms = le->ms;

	exec_parts(le->l->name, p, l, j, e);
	snprintf(log_name, sizeof(log_name), "projects/%s/logs/run.googleapis.com%%2F%s", p,
		 le->fd == 2 ? "stderr" : "stdout");
	/* RFC 3339 with nanoseconds, as Cloud Logging writes them. */
	pp_time_format(ms - ms % 1000, false, ts);
	snprintf(ts + strlen(ts) - 1, sizeof(ts) - strlen(ts) + 1, ".%03lld000000Z", ms % 1000);
	pp_json_set_string(o, "logName", log_name);
	pp_json_set_string(res, "type", "cloud_run_job");
	pp_json_set_string(rl, "project_id", p);
	pp_json_set_string(rl, "job_name", j);
	pp_json_set_string(rl, "location", l);
	pp_json_set(res, "labels", rl);
	pp_json_set(o, "resource", res);
	pp_json_set_string(o, "textPayload", le->text);
	pp_json_set_string(o, "timestamp", ts);
	pp_json_set_string(o, "receiveTimestamp", ts);
	pp_json_set_string(o, "severity", le->fd == 2 ? "ERROR" : "INFO");
	pp_json_set_string(o, "insertId", le->id);
	pp_json_set_string(labels, "run.googleapis.com/execution_name", e);
	pp_json_set_string(labels, "run.googleapis.com/task_index", "0");
	pp_json_set_string(labels, "run.googleapis.com/task_attempt", "0");
	pp_json_set(o, "labels", labels);
	return o;
}

/* entries:list: the written lines of every kept execution that pass the
 * filter, in the projects named, oldest first, pageSize at a time (page
 * tokens are offsets into that order). */
static void logging_list(struct pp_mock_call *c)
{
	struct google_state *st = c->state;
	struct pp_mock *m = c->m;
	struct pp_json *body = NULL;
	struct lterm terms[FILTER_TERMS];
	char bad[256];
	double now = pp_mock_clock(m);

	snprintf(c->resp->api, sizeof(c->resp->api), "logging");
	snprintf(c->resp->action, sizeof(c->resp->action), "ListLogEntries");
	if (pp_json_parse(c->req->body, c->req->body_len, NULL, &body, NULL) ||
	    !pp_json_is(body, PP_JSON_OBJECT)) {
		pp_json_free(body);
		rpc_error(c->resp, 400, NULL, NULL, "Invalid JSON payload received.");
		return;
	}
	const char *order = pp_json_get_string(body, "orderBy");
	const char *filter = pp_json_get_string(body, "filter");
	const char *token = pp_json_get_string(body, "pageToken");
	long long size = pp_json_get_int(body, "pageSize", 50);
	int nterms = filter && *filter ? parse_filter(filter, terms, bad, sizeof(bad)) : 0;
	if (nterms < 0 || (order && strcmp(order, "timestamp asc")) || size < 1 || size > 1000) {
		pp_json_free(body);
		rpc_error(c->resp, 400, NULL,
			  nterms < 0 ? "filter"
			  : order    ? "order_by"
				     : "page_size",
			  nterms < 0 ? "mock: unsupported filter term: %s"
				     : "mock: only orderBy \"timestamp asc\" and pageSize 1-1000",
			  nterms < 0 ? bad : "");
		return;
	}
	size_t cap = 1024, n = 0;
	struct lentry *v = malloc(cap * sizeof(*v));
	pp_mock_lock(m);
	for (const struct exec_log *l = st->logs; l && v; l = l->next) {
		char p[EXEC_PART], loc[EXEC_PART], j[EXEC_PART], e[EXEC_PART], res[160],
			log_name[300];
		bool named = false;

		if (!exec_parts(l->name, p, loc, j, e))
			continue;
		snprintf(res, sizeof(res), "projects/%s", p);
		pp_json_foreach (r, pp_json_get(body, "resourceNames"))
			named = named || (pp_json_string(r) && !strcmp(pp_json_string(r), res));
		size_t written = pp_mock_joblog_written(l->log, now, l->stopped);
		for (size_t i = 0; named && i < written && v; i++) {
			double at;
			int fd;
			const char *text = pp_mock_joblog_line(l->log, i, &at, &fd);
			long long ms = (long long)(pp_mock_wall(m, at) * 1000.0);
			const char *id =
				fd == 2 ? "run.googleapis.com/stderr" : "run.googleapis.com/stdout";
			snprintf(log_name, sizeof(log_name), "projects/%s/logs/%s%%2F%s", p,
				 "run.googleapis.com", fd == 2 ? "stderr" : "stdout");
			if (!lentry_matches(terms, nterms, p, loc, j, e, log_name, id, ms))
				continue;
			if (n == cap) {
				struct lentry *w = realloc(v, (cap *= 2) * sizeof(*v));
				if (!w) {
					free(v);
					v = NULL;
					break;
				}
				v = w;
			}
			v[n].ms = ms;
			v[n].text = text;
			v[n].fd = fd;
			v[n].l = l;
			snprintf(v[n].id, sizeof(v[n].id), "%.20s-%04zu", e, i);
			n++;
		}
	}
	if (!v) {
		pp_mock_unlock(m);
		pp_json_free(body);
		rpc_error(c->resp, 500, NULL, NULL, "mock: out of memory");
		return;
	}
	qsort(v, n, sizeof(*v), lentry_cmp);
	size_t from = token ? (size_t)strtoull(token, NULL, 10) : 0;
	struct pp_json *out = pp_json_new(PP_JSON_OBJECT), *entries = pp_json_new(PP_JSON_ARRAY);
	size_t i = from;
	for (; i < n && i < from + (size_t)size; i++)
		pp_json_append(entries, lentry_json(&v[i]));
	pp_mock_unlock(m);
	if (!out || pp_json_set(out, "entries", entries)) {
		pp_json_free(out);
		pp_json_free(body);
		free(v);
		rpc_error(c->resp, 500, NULL, NULL, "mock: out of memory");
		return;
	}
	if (i < n) {
		char next[32];
		snprintf(next, sizeof(next), "%zu", i);
		pp_json_set_string(out, "nextPageToken", next);
	}
	pp_mock_resp_json(c->resp, 200, NULL, out);
	pp_json_free(out);
	pp_json_free(body);
	free(v);
}

static bool logging_validate(struct pp_mock_call *c)
{
	return !pp_mock_spec_cloudrun(c->m, "google.logging.v2.LoggingServiceV2.ListLogEntries",
				      c->req, c->resp);
}

static const struct pp_mock_route cloudrun_routes[] = {
	{"GET", LOC "/operations/{operation}", cr_operation_get, .changes = false},
	{"POST", LOC "/jobs", cr_job_create, .validate = cr_validate_create, .changes = true},
	{"GET", LOC "/jobs", cr_job_list, .changes = false},
	{"POST", LOC "/jobs/{job}:run", cr_job_run, .validate = cr_validate_run, .changes = true},
	{"GET", LOC "/jobs/{job}", cr_job_get, .changes = false},
	{"DELETE", LOC "/jobs/{job}", cr_job_delete, .changes = true},
	{"GET", LOC "/jobs/{job}/executions", cr_execution_list, .changes = false},
	{"POST", LOC "/jobs/{job}/executions/{execution}:cancel", cr_execution,
	 .validate = cr_validate_cancel, .changes = true},
	{"GET", LOC "/jobs/{job}/executions/{execution}", cr_execution, .changes = false},
	{"DELETE", LOC "/jobs/{job}/executions/{execution}", cr_execution, .changes = true},
	{"POST", "/google/v2/entries:list", logging_list, .validate = logging_validate},
	{NULL},
};
#undef LOC

static const struct pp_mock_router cloudrun_router = {
	.api = "cloudrun",
	.scope = "/google/v2",
	.routes = cloudrun_routes,
	.admit = cloudrun_admit,
	.unmatched = cloudrun_unmatched,
};

/* POST /google/control/orphan {"job": "projects/P/locations/L/jobs/ID",
 * "run_id": "...", "store_id": "...", "age_seconds": N}: a job as a lost
 * submission leaves it, created N seconds ago on the mock's clock, labelled
 * pushpool-run-id and pushpool-store-id when given (without a run id, a job
 * pushpool does not own). */
static void plant_orphan_job(struct pp_mock_call *c)
{
	struct google_state *st = c->state;
	const char *name = pp_json_get_string(c->body, "job");
	const char *run = pp_json_get_string(c->body, "run_id");
	const char *store = pp_json_get_string(c->body, "store_id");
	double age = 0;
	const char *id = name ? strstr(name, "/jobs/") : NULL;

	snprintf(c->resp->action, sizeof(c->resp->action), "control/orphan");
	pp_json_get_number(c->body, "age_seconds", &age);
	if (!id || strncmp(name, "projects/", 9) || !job_id_ok(id + 6) || age < 0) {
		pp_mock_resp_printf(c->resp, 400, "text/plain",
				    "orphan: want {\"job\": \"projects/P/locations/L/jobs/ID\", "
				    "\"run_id\": RUN, \"age_seconds\": N >= 0}\n");
		return;
	}
	struct job *jb = calloc(1, sizeof(*jb));
	struct pp_json *labels = pp_json_new(PP_JSON_OBJECT);
	if (!jb || !labels || !(jb->name = strdup(name)) || !(jb->id = strdup(id + 6)) ||
	    !(jb->body = pp_json_new(PP_JSON_OBJECT)) ||
	    (run && pp_json_set_string(labels, "pushpool-run-id", run)) ||
	    (store && pp_json_set_string(labels, "pushpool-store-id", store)) ||
	    pp_json_set(jb->body, "labels", labels)) {
		pp_json_free(labels);
		if (jb)
			job_free(jb);
		pp_mock_resp_printf(c->resp, 500, "text/plain", "orphan: out of memory\n");
		return;
	}
	pp_mock_lock(c->m);
	jb->created = pp_mock_clock(c->m) - age;
	uuid4(c->m, jb->uid);
	jb->next = st->jobs;
	st->jobs = jb;
	st->njobs++;
	pp_mock_unlock(c->m);
	pp_mock_resp_printf(c->resp, 201, "text/plain", "planted %s\n", name);
}

static const struct pp_mock_route google_control_routes[] = {
	{"POST", "/google/control/orphan", plant_orphan_job, .changes = true},
	{NULL},
};

static const struct pp_mock_router google_control_router = {
	.api = "control",
	.json_body = true,
	.routes = google_control_routes,
};

/* ---- module ---- */

/* The metadata router comes last: its scope is every path. */
static const struct pp_mock_router *const google_routers[] = {
	&oauth_router,		&google_control_router,
	&cloudrun_router,	&pp_mock_gi_serviceusage_router,
	&pp_mock_gi_iam_router, &pp_mock_gi_crm_router,
	&pp_mock_gi_ar_router,	&pp_mock_gi_control_router,
	&metadata_router,	NULL,
};

static void google_reset(struct pp_mock *m, void *state)
{
	struct google_state *st = state;

	while (st->jobs) {
		struct job *j = st->jobs;

		st->jobs = j->next;
		job_free(j);
	}
	while (st->executions) {
		struct execution *e = st->executions;

		st->executions = e->next;
		execution_free(e);
	}
	while (st->operations) {
		struct operation *o = st->operations;

		st->operations = o->next;
		operation_free(o);
	}
	while (st->logs) {
		struct exec_log *l = st->logs;

		st->logs = l->next;
		exec_log_free(l);
	}
	st->njobs = st->nexecutions = st->noperations = st->nlogs = 0;
	pp_mock_gi_reset(st->infra);
	/* Issued tokens survive: clients keep using them. */
}

static void google_free(void *state)
{
	struct google_state *st = state;

	google_reset(NULL, st);
	pp_mock_gi_free(st->infra);
	while (st->tokens) {
		struct token *t = st->tokens;

		st->tokens = t->next;
		free(t);
	}
	for (size_t i = 0; i < st->nkeys; i++) {
		EVP_PKEY_free(st->keys[i].pkey);
		free(st->keys[i].kid);
		free(st->keys[i].iss);
	}
	free(st);
}

static int google_init(struct pp_mock *m, void **state, struct pp_error *err)
{
	const struct pp_mock_opts *o = pp_mock_opts(m);
	struct google_state *st = calloc(1, sizeof(*st));

	*state = st;
	if (!st || !(st->infra = pp_mock_gi_new()))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	for (size_t i = 0; i < o->ngcp_keys; i++) {
		int rc = load_key(&st->keys[st->nkeys], o->gcp_keys[i], err);

		st->nkeys++;
		if (rc)
			return rc;
	}
	return 0;
}

static void google_stats(struct pp_mock *m, void *state, struct pp_json *live)
{
	struct google_state *st = state;
	long long running = 0;
	double now = pp_mock_clock(m);

	for (struct execution *e = st->executions; e; e = e->next)
		running += !execution_done(m, e, now);
	pp_json_set_int(live, "live_jobs", (long long)st->njobs);
	pp_mock_gi_stats(st->infra, live);
	pp_json_set_int(live, "live_executions", running);
}

const struct pp_mock_api pp_mock_api_google = {
	.name = "google",
	.prefixes = {"/google", "/computeMetadata", "/", NULL},
	.init = google_init,
	.free = google_free,
	.routers = google_routers,
	.reset = google_reset,
	.stats = google_stats,
};
