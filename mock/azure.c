/* Mock Azure: the Entra ID v2 token endpoint (client secret, or an RS256
 * client assertion verified against a configured certificate), the IMDS
 * managed-identity endpoint, and ARM containerGroups (create-or-update, get
 * with an instance view that follows the mock timeline, async delete), all
 * bearer-protected. Resource groups, the other provisioning APIs
 * (mock/azure_infra.c) and Microsoft Graph (mock/azure_graph.c) share its
 * tokens and state. Access tokens are JWT-shaped with Entra's oid claim.
 *
 * Clients come from the environment, so the shared mock flags stay as they
 * are: PUSHPOOL_MOCK_AZURE_CLIENTS="ID:SECRET[,ID:SECRET...]" and
 * PUSHPOOL_MOCK_AZURE_CERTS="ID:cert.pem[,...]". Without either, the client
 * AZ_DEFAULT_CLIENT with secret AZ_DEFAULT_SECRET is accepted. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lib/log.h"
#include "lib/time.h"
#include "mock/azure.h"
#include "mock/mock.h"
#include "mock/spec.h"

#define AZ_DEFAULT_CLIENT	  "11111111-2222-3333-4444-555555555555"
#define AZ_DEFAULT_SECRET	  "mock-azure-client-secret"
#define AZ_LOCATION		  "westeurope"
#define AZ_MAX_CLIENTS		  8
#define AZ_MAX_ITEMS		  100000
#define AZ_CLOCK_SKEW		  300
#define AZ_MAX_ASSERTION_LIFETIME 3600
#define AZ_MAX_ASSERTION	  16384
#define AZ_GROUP_TYPE		  "Microsoft.ContainerInstance/containerGroups"
#define AZ_JSON			  "application/json; charset=utf-8"
#define AZ_ASSERTION_TYPE	  "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

struct az_client {
	char *id;
	char *secret;	/* NULL: certificate only */
	EVP_PKEY *pkey; /* NULL: secret only */
};

struct az_token {
	struct az_token *next;
	bool graph; /* audience: Microsoft Graph, else ARM */
	char value[512];
	double expires; /* wall clock */
};

struct az_group {
	struct az_group *next;
	char *key; /* "sub/rg/name", lowercase: ARM names are case-insensitive */
	char *id;  /* ARM id as first written */
	char *name;
	struct pp_json *body; /* as PUT, secureValue kept (never echoed) */
	double created;
	double ready_at; /* creation done (aci.async); the timeline runs from here */
	double gone_at;	 /* while deleting: the delete is done (aci.async) */
	enum pp_mock_outcome outcome;
	bool pull_fails;    /* aci.pull_failure: the image cannot be pulled */
	bool pull_injected; /* a start failure fault made it fail */
	bool deleting;
	struct pp_mock_joblog *log; /* its container's output, from ready_at */
};

struct az_op {
	struct az_op *next;
	char id[33];
	char *group_key;
	bool is_delete;
	int polls;
	double done_at; /* aci.async: done from this clock on; < 0: the old poll count */
};

struct azure_state {
	struct az_client clients[AZ_MAX_CLIENTS];
	size_t nclients;
	struct az_token *tokens;
	size_t ntokens;
	struct az_group *groups;
	struct az_op *ops;
	size_t ngroups, nops;
	struct pp_mock_azi *infra; /* the provisioning APIs (mock/azure_infra.c) */
	struct pp_mock_azg *graph; /* Microsoft Graph (mock/azure_graph.c) */
};

struct pp_mock_azg *pp_mock_azg_of(void *state)
{
	return ((struct azure_state *)state)->graph;
}

struct pp_mock_azi *pp_mock_azi_of(void *state)
{
	return ((struct azure_state *)state)->infra;
}

/* The object id Entra gives a client's service principal in this mock: a
 * name-based id, the same on every run, so tests can name it. */
void pp_mock_azure_oid(const char *client_id, char out[37])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	EVP_Digest(client_id, strlen(client_id), md, &n, EVP_sha256(), NULL);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-4%01x%02x-8%01x%02x-%02x%02x%02x%02x%02x%02x",
		 md[0], md[1], md[2], md[3], md[4], md[5], md[6] & 15, md[7], md[8] & 15, md[9],
		 md[10], md[11], md[12], md[13], md[14], md[15]);
}

/* ---- answers ---- */

static void arm_error(struct pp_mock_resp *resp, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void arm_error(struct pp_mock_resp *resp, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (status == 400 || status == 401 || status == 403)
		resp->reject_reason = code;
	pp_mock_resp_printf(resp, status, AZ_JSON,
			    "{\"error\":{\"code\":\"%s\",\"message\":", code);
	pp_json_write_string(&resp->body, msg, strlen(msg));
	pp_buf_puts(&resp->body, "}}");
}

static void aad_error(struct pp_mock_resp *resp, int status, const char *error, const char *desc)
{
	char codes[16] = "";

	resp->reject_reason = error;
	/* "AADSTS7000215: ..." -> error_codes [7000215] */
	if (!strncmp(desc, "AADSTS", 6))
		snprintf(codes, sizeof(codes), "%.*s", (int)strspn(desc + 6, "0123456789"),
			 desc + 6);
	pp_mock_resp_printf(resp, status, AZ_JSON,
			    "{\"error\":\"%s\",\"error_description\":", error);
	pp_json_write_string(&resp->body, desc, strlen(desc));
	pp_buf_printf(&resp->body,
		      ",\"error_codes\":[%s],"
		      "\"trace_id\":\"00000000-0000-0000-0000-000000000000\"}",
		      codes[0] ? codes : "0");
}

/* ---- small parsers ---- */

static int hexval(int c)
{
	return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

static bool form_value(const char *body, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);

	for (const char *p = body; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
		size_t n = 0;

		if (strncmp(p, key, klen) || p[klen] != '=')
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

static unsigned char *b64url_decode(const char *in, size_t n, size_t *out_len)
{
	while (n > 0 && in[n - 1] == '=')
		n--;
	size_t padded = (n + 3) / 4 * 4;
	char *std = calloc(1, padded + 1);
	unsigned char *out = malloc(padded / 4 * 3 + 1);
	int len;

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
	len -= (int)(padded - n); /* padding decodes as zero bytes */
	out[len] = '\0';
	*out_len = (size_t)len;
	free(std);
	return out;
fail:
	free(std);
	free(out);
	return NULL;
}

bool pp_mock_azure_client_oid(void *state, const char *oid)
{
	struct azure_state *st = state;
	char o[37];

	pp_mock_azure_oid(AZ_DEFAULT_CLIENT, o);
	if (!strcasecmp(o, oid))
		return true;
	for (size_t i = 0; i < st->nclients; i++) {
		pp_mock_azure_oid(st->clients[i].id, o);
		if (!strcasecmp(o, oid))
			return true;
	}
	return false;
}

static struct az_client *client_find(struct azure_state *st, const char *id);

int pp_mock_azure_client_set(void *state, const char *id, const char *secret)
{
	struct azure_state *st = state;
	struct az_client *c = client_find(st, id);

	if (!c) {
		if (st->nclients == AZ_MAX_CLIENTS)
			return PP_ENOMEM;
		c = &st->clients[st->nclients++];
		if (!(c->id = strdup(id))) {
			st->nclients--;
			return PP_ENOMEM;
		}
	}
	free(c->secret);
	c->secret = secret ? strdup(secret) : NULL;
	if (c->secret)
		pp_secret_register(c->secret);
	return secret && !c->secret ? PP_ENOMEM : 0;
}

/* ---- tokens ---- */

/* base64url without padding. */
static void b64url(const char *in, char *out, size_t size)
{
	unsigned char tmp[600];
	int n;

	if (strlen(in) * 4 / 3 + 4 >= sizeof(tmp) || strlen(in) * 4 / 3 + 4 >= size) {
		out[0] = '\0';
		return;
	}
	n = EVP_EncodeBlock(tmp, (const unsigned char *)in, (int)strlen(in));
	while (n > 0 && tmp[n - 1] == '=')
		n--;
	for (int i = 0; i < n; i++)
		out[i] = tmp[i] == '+' ? '-' : tmp[i] == '/' ? '_' : (char)tmp[i];
	out[n] = '\0';
}

/* Entra's access tokens are JWTs naming the caller: oid (its object id),
 * appid, idtyp ("app" for a service principal or a managed identity). The
 * mock's carry those claims and a random signature it never checks (it
 * knows its own tokens). */
static struct az_token *token_issue(struct pp_mock *m, struct azure_state *st, const char *client,
				    bool graph)
{
	struct az_token *t = calloc(1, sizeof(*t));
	char hex[65], oid[37], claims[300], payload[420];

	if (!t)
		return NULL;
	t->graph = graph;
	pp_mock_random_hex(m, hex, 64);
	pp_mock_azure_oid(client, oid);
	snprintf(claims, sizeof(claims), "{\"oid\":\"%s\",\"appid\":\"%.64s\",\"idtyp\":\"app\"}",
		 oid, client);
	b64url(claims, payload, sizeof(payload));
	snprintf(t->value, sizeof(t->value), "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.%s.mock%s",
		 payload, hex);
	t->expires = pp_mock_wall(m, pp_mock_clock(m)) + pp_mock_opts(m)->token_lifetime_seconds;
	pp_mock_lock(m);
	t->next = st->tokens;
	st->tokens = t;
	if (++st->ntokens > AZ_MAX_ITEMS) {
		struct az_token **pp = &st->tokens;

		while ((*pp)->next)
			pp = &(*pp)->next;
		free(*pp);
		*pp = NULL;
		st->ntokens--;
	}
	pp_mock_unlock(m);
	return t;
}

/* 0 ok; else the ARM error code to answer. */
/* A token of this mock's, unexpired, for the API's audience (Graph's
 * tokens are not ARM's and the other way round). */
static const char *bearer_check(struct pp_mock *m, struct azure_state *st,
				const struct pp_mock_req *req, bool graph)
{
	const char *auth = pp_mock_header(req, "Authorization");
	double now = pp_mock_wall(m, pp_mock_clock(m));
	const char *verdict = "InvalidAuthenticationToken";

	if (!auth || strncasecmp(auth, "Bearer ", 7))
		return "AuthenticationFailed";
	pp_mock_lock(m);
	for (struct az_token *t = st->tokens; t; t = t->next)
		if (!strcmp(t->value, auth + 7)) {
			verdict = t->expires <= now   ? "ExpiredAuthenticationToken"
				  : t->graph != graph ? "InvalidAuthenticationTokenAudience"
						      : NULL;
			break;
		}
	pp_mock_unlock(m);
	return verdict;
}

static struct az_client *client_find(struct azure_state *st, const char *id)
{
	for (size_t i = 0; i < st->nclients; i++)
		if (!strcmp(st->clients[i].id, id))
			return &st->clients[i];
	return NULL;
}

/* RS256 client assertion: signature by the client's certificate, aud the
 * token URL, iss = sub = client id, exp/nbf around now. */
static bool assertion_ok(struct pp_mock *m, const struct az_client *c, const char *tenant,
			 const char *jwt, struct pp_mock_resp *resp)
{
	const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	unsigned char *hdr_raw = NULL, *claims_raw = NULL, *sig = NULL;
	size_t hdr_len, claims_len, sig_len;
	struct pp_json *hdr = NULL, *claims = NULL;
	EVP_MD_CTX *md = NULL;
	/* The client signed with its own clock: check against the real time,
	 * not the lifecycle clock tests may hold or advance. */
	double now = (double)time(NULL), exp, nbf;
	char want_aud[512], real_aud[256];
	bool ok = false;

	if (!d1 || !d2 || strchr(d2 + 1, '.') ||
	    !(hdr_raw = b64url_decode(jwt, (size_t)(d1 - jwt), &hdr_len)) ||
	    !(claims_raw = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &claims_len)) ||
	    !(sig = b64url_decode(d2 + 1, strlen(d2 + 1), &sig_len)) ||
	    pp_json_parse((char *)hdr_raw, hdr_len, NULL, &hdr, NULL) ||
	    pp_json_parse((char *)claims_raw, claims_len, NULL, &claims, NULL)) {
		aad_error(resp, 400, "invalid_request",
			  "AADSTS50027: JWT token is invalid or malformed.");
		goto out;
	}
	const char *alg = pp_json_get_string(hdr, "alg");
	if (!alg || strcmp(alg, "RS256")) {
		aad_error(resp, 401, "invalid_client",
			  "AADSTS5002730: Invalid JWT token. Unsupported key for the signing "
			  "algorithm (mock accepts RS256).");
		goto out;
	}
	md = EVP_MD_CTX_new();
	if (!c->pkey || !md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, c->pkey) != 1 ||
	    EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)jwt, (size_t)(d2 - jwt)) !=
		    1) {
		aad_error(resp, 401, "invalid_client",
			  "AADSTS700027: Client assertion contains an invalid signature.");
		goto out;
	}
	const char *iss = pp_json_get_string(claims, "iss");
	const char *sub = pp_json_get_string(claims, "sub");
	if (!iss || !sub || strcmp(iss, c->id) || strcmp(sub, c->id)) {
		aad_error(resp, 401, "invalid_client",
			  "AADSTS700021: Client assertion application identifier doesn't match "
			  "'client_id' parameter (iss and sub must be the client id).");
		goto out;
	}
	snprintf(want_aud, sizeof(want_aud), "%s/azure/%s/oauth2/v2.0/token", pp_mock_base_url(m),
		 tenant);
	snprintf(real_aud, sizeof(real_aud),
		 "https://login.microsoftonline.com/%s/oauth2/v2.0/token", tenant);
	const char *aud = pp_json_get_string(claims, "aud");
	if (!aud || (strcmp(aud, want_aud) && strcmp(aud, real_aud))) {
		aad_error(resp, 401, "invalid_client",
			  "AADSTS700212: No matching federated identity record found for presented "
			  "assertion audience.");
		goto out;
	}
	if (!pp_json_get_number(claims, "exp", &exp) || !pp_json_get_number(claims, "nbf", &nbf) ||
	    exp < now - AZ_CLOCK_SKEW || nbf > now + AZ_CLOCK_SKEW || exp <= nbf ||
	    exp - nbf > AZ_MAX_ASSERTION_LIFETIME) {
		aad_error(resp, 401, "invalid_client",
			  "AADSTS700024: Client assertion is not within its valid time range.");
		goto out;
	}
	ok = true;
out:
	EVP_MD_CTX_free(md);
	pp_json_free(hdr);
	pp_json_free(claims);
	free(hdr_raw);
	free(claims_raw);
	free(sig);
	return ok;
}

static void token_answer(struct pp_mock *m, struct azure_state *st, struct pp_mock_resp *resp,
			 bool imds, const char *resource, const char *client)
{
	/* The scope (Entra) or resource (IMDS) names the audience. */
	struct az_token *t =
		token_issue(m, st, client, !strncmp(resource, "https://graph.microsoft.com", 27));
	int life = (int)pp_mock_opts(m)->token_lifetime_seconds;

	if (!t) {
		aad_error(resp, 500, "server_error", "AADSTS90033: mock out of memory");
		return;
	}
	if (imds) {
		/* IMDS writes every number as a string. */
		pp_mock_resp_printf(resp, 200, AZ_JSON,
				    "{\"access_token\":\"%s\",\"client_id\":\"%s\",\"expires_in\":"
				    "\"%d\",\"expires_on\":\"%.0f\",\"resource\":",
				    t->value, AZ_DEFAULT_CLIENT, life, t->expires);
		pp_json_write_string(&resp->body, resource, strlen(resource));
		pp_buf_puts(&resp->body, ",\"token_type\":\"Bearer\"}");
		return;
	}
	pp_mock_resp_printf(resp, 200, AZ_JSON,
			    "{\"token_type\":\"Bearer\",\"expires_in\":%d,\"ext_expires_in\":%d,"
			    "\"access_token\":\"%s\"}",
			    life, life, t->value);
}

static void entra_token(struct pp_mock *m, struct azure_state *st, const char *tenant,
			const struct pp_mock_req *req, struct pp_mock_resp *resp)
{
	char grant[64], client_id[128], secret[512], scope[512], atype[128];
	char desc[512];

	snprintf(resp->action, sizeof(resp->action), "token");
	switch (pp_mock_fault_check(m, "entra", true, resp, NULL)) {
	case PP_MOCK_FAULT_THROTTLE:
		aad_error(resp, 429, "temporarily_unavailable",
			  "AADSTS50196: The server terminated an operation because it encountered "
			  "a client request loop.");
		return;
	case PP_MOCK_FAULT_ERROR:
		aad_error(resp, 503, "temporarily_unavailable",
			  "AADSTS90033: A transient error has occurred. Please try again.");
		return;
	default: break;
	}
	if (!form_value(req->body, "grant_type", grant, sizeof(grant)) ||
	    strcmp(grant, "client_credentials")) {
		aad_error(resp, 400, "unsupported_grant_type",
			  "AADSTS70003: The app requested an unsupported grant type.");
		return;
	}
	if (!form_value(req->body, "client_id", client_id, sizeof(client_id))) {
		aad_error(resp, 400, "invalid_request",
			  "AADSTS900144: The request body must contain the following parameter: "
			  "'client_id'.");
		return;
	}
	if (!form_value(req->body, "scope", scope, sizeof(scope)) || strlen(scope) < 9 ||
	    strcmp(scope + strlen(scope) - 9, "/.default")) {
		aad_error(resp, 400, "invalid_scope",
			  "AADSTS1002012: The provided value for scope is not valid. Client "
			  "credential flows must have a scope value with /.default suffixed to the "
			  "resource identifier (application ID URI).");
		return;
	}
	struct az_client *c = client_find(st, client_id);
	if (!c) {
		snprintf(desc, sizeof(desc),
			 "AADSTS700016: Application with identifier '%.128s' was not found in the "
			 "directory '%.64s'.",
			 client_id, tenant);
		aad_error(resp, 400, "unauthorized_client", desc);
		return;
	}
	if (form_value(req->body, "client_secret", secret, sizeof(secret))) {
		if (!c->secret || strcmp(secret, c->secret)) {
			snprintf(desc, sizeof(desc),
				 "AADSTS7000215: Invalid client secret provided. Ensure the "
				 "secret being sent in the request is the client secret value, "
				 "not the client secret ID, for a secret added to app '%.128s'.",
				 client_id);
			aad_error(resp, 401, "invalid_client", desc);
			return;
		}
	} else {
		char *assertion = malloc(AZ_MAX_ASSERTION);
		bool have = assertion &&
			    form_value(req->body, "client_assertion_type", atype, sizeof(atype)) &&
			    !strcmp(atype, AZ_ASSERTION_TYPE) &&
			    form_value(req->body, "client_assertion", assertion, AZ_MAX_ASSERTION);
		bool ok = have && assertion_ok(m, c, tenant, assertion, resp);
		free(assertion);
		if (!have)
			aad_error(resp, 401, "invalid_client",
				  "AADSTS7000218: The request body must contain the following "
				  "parameter: 'client_assertion' or 'client_secret'.");
		if (!ok)
			return;
	}
	pp_mock_count(m, "entra.tokens", client_id);
	token_answer(m, st, resp, false, scope, client_id);
}

static void imds_token(struct pp_mock *m, struct azure_state *st, const struct pp_mock_req *req,
		       struct pp_mock_resp *resp)
{
	const char *meta = pp_mock_header(req, "Metadata");
	const char *resource = pp_mock_arg(req, "resource");

	snprintf(resp->action, sizeof(resp->action), "token");
	if (!meta || strcmp(meta, "true")) {
		aad_error(resp, 400, "invalid_request", "Required metadata header not specified");
		return;
	}
	if (!resource || !*resource) {
		aad_error(resp, 400, "invalid_request",
			  "Required audience parameter not specified");
		return;
	}
	if (pp_mock_fault_check(m, "imds", true, resp, NULL) != PP_MOCK_FAULT_NONE) {
		aad_error(resp, 500, "unknown", "mock: injected failure");
		return;
	}
	pp_mock_count(m, "imds.tokens", NULL);
	token_answer(m, st, resp, true, resource, AZ_DEFAULT_CLIENT);
}

/* ---- ARM: container groups ---- */

/* 1-63 of [a-z0-9-], no leading, trailing or doubled '-'. */
static bool group_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 63 || s[0] == '-' || s[n - 1] == '-' || strstr(s, "--"))
		return false;
	for (; *s; s++)
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '-')
			return false;
	return true;
}

static struct az_group *group_find(struct azure_state *st, const char *key)
{
	for (struct az_group *g = st->groups; g; g = g->next)
		if (!strcmp(g->key, key))
			return g;
	return NULL;
}

static void group_free(struct az_group *g)
{
	pp_mock_joblog_free(g->log);
	pp_json_free(g->body);
	free(g->key);
	free(g->id);
	free(g->name);
	free(g);
}

static void group_remove(struct azure_state *st, struct az_group *g)
{
	for (struct az_group **pp = &st->groups; *pp; pp = &(*pp)->next)
		if (*pp == g) {
			*pp = g->next;
			group_free(g);
			st->ngroups--;
			return;
		}
}

static bool env_marker(const struct pp_json *j, const char *name)
{
	pp_json_foreach (c, pp_json_path(j, "properties.containers")) {
		pp_json_foreach (e, pp_json_path(c, "properties.environmentVariables")) {
			const char *n = pp_json_get_string(e, "name");
			const char *v = pp_json_get_string(e, "value");
			if (!v)
				v = pp_json_get_string(e, "secureValue");
			if (n && v && !strcmp(n, name) && !strcmp(v, "1"))
				return true;
		}
	}
	return false;
}

/* Field checks ARM and ACI make before accepting a group. */
static bool group_body_ok(const struct pp_json *b, struct pp_mock_resp *resp)
{
	const char *loc = pp_json_get_string(b, "location");
	const struct pp_json *cs = pp_json_path(b, "properties.containers");
	size_t i = 0;

	if (!loc || !*loc) {
		arm_error(resp, 400, "LocationRequired",
			  "The location property is required for this definition.");
		return false;
	}
	if (!pp_json_is(cs, PP_JSON_ARRAY) || cs->count == 0) {
		arm_error(resp, 400, "MissingContainers",
			  "The container group must have at least one container: "
			  "'properties.containers' is required.");
		return false;
	}
	pp_json_foreach (c, cs) {
		const struct pp_json *cp = pp_json_get(c, "properties");
		const struct pp_json *rq = pp_json_path(cp, "resources.requests");
		double v;
		if (!pp_json_get_string(c, "name") || !*pp_json_get_string(c, "name")) {
			arm_error(resp, 400, "InvalidContainerName",
				  "The container name in container group is invalid: "
				  "properties.containers[%zu].name is required.",
				  i);
			return false;
		}
		if (!pp_json_get_string(cp, "image") || !*pp_json_get_string(cp, "image")) {
			arm_error(resp, 400, "InvalidContainerImage",
				  "The image of container '%s' is required.",
				  pp_json_get_string(c, "name"));
			return false;
		}
		if (!pp_json_get_number(rq, "cpu", &v) || v <= 0 ||
		    !pp_json_get_number(rq, "memoryInGB", &v) || v <= 0) {
			arm_error(resp, 400, "InvalidRequestedResource",
				  "The requested resource of container '%s' is invalid: "
				  "resources.requests.cpu and memoryInGB must be positive numbers.",
				  pp_json_get_string(c, "name"));
			return false;
		}
		i++;
	}
	return true;
}

static struct az_op *op_new(struct pp_mock *m, struct azure_state *st, const char *key,
			    bool is_delete, double done_at)
{
	struct az_op *o = calloc(1, sizeof(*o));

	if (!o || !(o->group_key = strdup(key))) {
		free(o);
		return NULL;
	}
	o->done_at = done_at;
	pp_mock_random_hex(m, o->id, 32);
	o->is_delete = is_delete;
	o->next = st->ops;
	st->ops = o;
	if (++st->nops > AZ_MAX_ITEMS) {
		struct az_op **pp = &st->ops;

		while ((*pp)->next)
			pp = &(*pp)->next;
		free((*pp)->group_key);
		free(*pp);
		*pp = NULL;
		st->nops--;
	}
	return o;
}

/* Azure-AsyncOperation + Location + Retry-After for op o. */
static void async_headers(struct pp_mock *m, struct pp_mock_resp *resp, const char *sub,
			  const struct az_op *o)
{
	char base[512], url[600];

	snprintf(base, sizeof(base),
		 "%s/azure/subscriptions/%s/providers/Microsoft.ContainerInstance/"
		 "locations/" AZ_LOCATION "/operations/%s",
		 pp_mock_base_url(m), sub, o->id);
	snprintf(url, sizeof(url), "%s?api-version=2023-05-01", base);
	pp_mock_resp_header(resp, "Azure-AsyncOperation", url);
	snprintf(url, sizeof(url), "%s/result?api-version=2023-05-01", base);
	pp_mock_resp_header(resp, "Location", url);
	pp_mock_resp_header(resp, "Retry-After", "1");
}

static void set_str(struct pp_json *o, const char *key, const char *v)
{
	pp_json_set_string(o, key, v);
}

static void add_event(struct pp_mock *m, struct pp_json *events, const char *name, const char *type,
		      double at, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void add_event(struct pp_mock *m, struct pp_json *events, const char *name, const char *type,
		      double at, const char *fmt, ...)
{
	struct pp_json *ev = pp_json_new(PP_JSON_OBJECT);
	char msg[768], ts[PP_TIME_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pp_time_format((int64_t)(pp_mock_wall(m, at) * 1000), true, ts);
	pp_json_set_int(ev, "count", 1);
	set_str(ev, "firstTimestamp", ts);
	set_str(ev, "lastTimestamp", ts);
	set_str(ev, "name", name);
	set_str(ev, "message", msg);
	set_str(ev, "type", type);
	pp_json_append(events, ev);
}

/* A failed pull as ACI reports it in the container's instanceView.events:
 * the kubelet-style Pulling / Failed (the registry's answer, then
 * ErrImagePull) / BackOff / Failed (ImagePullBackOff) sequence. */
static void pull_failure_events(struct pp_mock *m, struct pp_json *events, const char *image,
				double at, bool backoff)
{
	if (!image)
		image = "";
	add_event(m, events, "Pulling", "Normal", at, "pulling image \"%s\"", image);
	add_event(m, events, "Failed", "Warning", at,
		  "Failed to pull image \"%s\": rpc error: code = NotFound desc = failed to "
		  "pull and unpack image: manifest unknown (mock: pushpool-mock-pull-fail)",
		  image);
	add_event(m, events, "Failed", "Warning", at, "Error: ErrImagePull");
	if (!backoff)
		return;
	add_event(m, events, "BackOff", "Normal", at, "Back-off pulling image \"%s\"", image);
	add_event(m, events, "Failed", "Warning", at, "Error: ImagePullBackOff");
}

/* Behaviour aci.pull_failure: an image named with this marker cannot be
 * pulled. */
static bool image_pull_fails(struct pp_mock *m, const struct pp_json *body)
{
	if (!pp_mock_behaviour(m, "aci.pull_failure", NULL))
		return false;
	pp_json_foreach (c, pp_json_path(body, "properties.containers")) {
		const char *image = pp_json_get_string(pp_json_get(c, "properties"), "image");
		if (image && strstr(image, "pushpool-mock-pull-fail"))
			return true;
	}
	return false;
}

/* Behaviour aci.async: how long creating or deleting a group takes. */
static double async_seconds(struct pp_mock *m)
{
	double s;

	pp_mock_behaviour(m, "aci.async", &s);
	return s;
}

/* The group as GET shows it at clock now. */
static struct pp_json *group_view(struct pp_mock *m, const struct az_group *g, double now)
{
	struct pp_json *j = pp_json_clone(g->body);
	struct pp_json *gp = pp_json_get(j, "properties");
	bool creating = now < g->ready_at;
	enum pp_mock_phase phase = creating ? PP_MOCK_PROVISIONING
					    : pp_mock_job_phase(m, g->outcome, g->ready_at, now);
	bool never = g->outcome == PP_MOCK_CRASH;
	const char *ps, *gstate, *cstate, *detail = NULL;

	set_str(j, "id", g->id);
	set_str(j, "name", g->name);
	set_str(j, "type", AZ_GROUP_TYPE);
	if (g->deleting) {
		ps = "Deleting";
	} else if (creating) {
		ps = "Creating";
	} else if (phase == PP_MOCK_PROVISIONING) {
		ps = "Pending";
	} else {
		ps = "Succeeded";
	}
	if (g->pull_fails && !creating) {
		gstate = "Pending";
		cstate = "Waiting";
		detail = phase == PP_MOCK_PROVISIONING ? "ErrImagePull" : "ImagePullBackOff";
	} else if (never || phase == PP_MOCK_PROVISIONING) {
		gstate = "Pending";
		cstate = "Waiting";
		detail = never && phase != PP_MOCK_PROVISIONING ? "ContainerNeverStarts"
								: "Pulling image";
	} else if (phase == PP_MOCK_RUNNING) {
		gstate = cstate = "Running";
	} else {
		cstate = "Terminated";
		gstate = g->outcome == PP_MOCK_FAIL ? "Failed" : "Succeeded";
		detail = g->outcome == PP_MOCK_FAIL ? "Error" : "Completed";
	}
	set_str(gp, "provisioningState", ps);
	struct pp_json *giv = pp_json_new(PP_JSON_OBJECT);
	set_str(giv, "state", gstate);
	pp_json_set(giv, "events", pp_json_new(PP_JSON_ARRAY));
	pp_json_set(gp, "instanceView", giv);
	pp_json_foreach (c, pp_json_get(gp, "containers")) {
		struct pp_json *cp = pp_json_get(c, "properties");
		/* secureValue is write-only: ARM never returns it. */
		pp_json_foreach (e, pp_json_get(cp, "environmentVariables"))
			pp_json_remove(e, "secureValue");
		struct pp_json *iv = pp_json_new(PP_JSON_OBJECT);
		struct pp_json *cur = pp_json_new(PP_JSON_OBJECT);
		pp_json_set_int(iv, "restartCount", 0);
		set_str(cur, "state", cstate);
		if (detail)
			set_str(cur, "detailStatus", detail);
		if (!strcmp(cstate, "Terminated"))
			pp_json_set_int(cur, "exitCode", g->outcome == PP_MOCK_FAIL ? 1 : 0);
		pp_json_set(iv, "currentState", cur);
		struct pp_json *events = pp_json_new(PP_JSON_ARRAY);
		if (g->pull_fails && !creating)
			pull_failure_events(m, events, pp_json_get_string(cp, "image"), g->ready_at,
					    phase != PP_MOCK_PROVISIONING);
		pp_json_set(iv, "events", events);
		pp_json_set(cp, "instanceView", iv);
	}
	return j;
}

static void group_put(struct pp_mock *m, struct azure_state *st, const char *key, const char *id,
		      const char *sub, const char *name, const struct pp_mock_req *req,
		      struct pp_mock_resp *resp)
{
	struct pp_json *body = NULL;
	struct pp_error perr;

	snprintf(resp->action, sizeof(resp->action), "ContainerGroups_CreateOrUpdate");
	if (!group_name_ok(name)) {
		arm_error(resp, 400, "InvalidContainerGroupName",
			  "The container group name '%s' is invalid. The container group name "
			  "must contain no more than 63 characters and only contain lower case "
			  "alphanumeric characters or '-'. It can't start or end with '-' and "
			  "can't have '--'.",
			  name);
		return;
	}
	if (pp_json_parse(req->body, req->body_len, NULL, &body, &perr) ||
	    body->type != PP_JSON_OBJECT) {
		arm_error(resp, 400, "InvalidRequestContent",
			  "The request content was invalid and could not be deserialized: %s",
			  body ? "not an object" : perr.msg);
		pp_json_free(body);
		return;
	}
	/* ARM's own checks (location...) come before the provider reads the body. */
	if (!group_body_ok(body, resp) ||
	    pp_mock_spec_arm(m, "ContainerGroups_CreateOrUpdate", name, body, resp)) {
		pp_json_free(body);
		return;
	}
	pp_mock_count(m, "aci.puts", NULL);
	pp_mock_lock(m);
	struct az_group *g = group_find(st, key);
	int status = 200;
	if (g && g->deleting) {
		pp_mock_unlock(m);
		pp_json_free(body);
		arm_error(resp, 409, "Conflict",
			  "The container group '%s' is being deleted; retry later.", name);
		return;
	}
	if (!g) {
		g = calloc(1, sizeof(*g));
		if (!g || !(g->key = strdup(key)) || !(g->id = strdup(id)) ||
		    !(g->name = strdup(name))) {
			if (g)
				group_free(g);
			pp_mock_unlock(m);
			pp_json_free(body);
			arm_error(resp, 500, "InternalServerError", "mock: out of memory");
			return;
		}
		g->created = pp_mock_clock(m);
		g->ready_at = g->created + async_seconds(m);
		g->next = st->groups;
		st->groups = g;
		st->ngroups++;
		status = 201;
	}
	/* An update of a finished restartPolicy=Never group does not rerun it. */
	pp_json_free(g->body);
	g->body = body;
	g->outcome = pp_mock_outcome_of(body);
	if (env_marker(body, "PUSHPOOL_MOCK_NOSTART"))
		g->outcome = PP_MOCK_CRASH;
	/* A start failure fault: this group's image cannot be pulled, kept
	 * across a PUT that adopts it. */
	if (status == 201)
		g->pull_injected = pp_mock_start_failure(m, "aci");
	g->pull_fails = image_pull_fails(m, body) || g->pull_injected;
	if (g->pull_fails)
		pp_mock_count(m, "aci.pull_failures", NULL);
	/* A group whose image cannot be pulled never runs its flow. */
	if (status == 201) {
		pp_mock_prefect_job_started(m, body, NULL,
					    g->pull_fails ? PP_MOCK_CRASH : g->outcome, g->created);
		g->log = pp_mock_joblog_new(
			m, body, NULL, g->pull_fails ? PP_MOCK_CRASH : g->outcome, g->ready_at);
	}
	struct pp_json *view = group_view(m, g, pp_mock_clock(m));
	struct az_op *o = op_new(m, st, key, false, async_seconds(m) > 0 ? g->ready_at : -1);
	pp_mock_unlock(m);
	if (status == 201)
		pp_mock_count(m, "aci.creates", name);
	if (o)
		async_headers(m, resp, sub, o);
	pp_mock_resp_json(resp, status, AZ_JSON, view);
	pp_json_free(view);
}

static void group_delete(struct pp_mock *m, struct azure_state *st, const char *key,
			 const char *sub, struct pp_mock_resp *resp)
{
	snprintf(resp->action, sizeof(resp->action), "ContainerGroups_Delete");
	pp_mock_lock(m);
	struct az_group *g = group_find(st, key);
	if (!g) {
		pp_mock_unlock(m);
		pp_mock_resp_printf(resp, 204, AZ_JSON, "%s", "");
		return;
	}
	double async = async_seconds(m);
	if (!g->deleting) {
		g->deleting = true;
		g->gone_at = pp_mock_clock(m) + async;
	}
	struct az_op *o = op_new(m, st, key, true, async > 0 ? g->gone_at : -1);
	pp_mock_unlock(m);
	pp_mock_count(m, "aci.deletes", NULL);
	if (o)
		async_headers(m, resp, sub, o);
	pp_mock_resp_printf(resp, 202, AZ_JSON, "%s", "");
}

static void group_get(struct pp_mock *m, struct azure_state *st, const char *key, const char *name,
		      struct pp_mock_resp *resp)
{
	snprintf(resp->action, sizeof(resp->action), "ContainerGroups_Get");
	pp_mock_lock(m);
	struct az_group *g = group_find(st, key);
	/* With aci.async a delete ends on the clock, polled or not. */
	if (g && g->deleting && async_seconds(m) > 0 && pp_mock_clock(m) >= g->gone_at) {
		group_remove(st, g);
		g = NULL;
	}
	struct pp_json *view = g ? group_view(m, g, pp_mock_clock(m)) : NULL;
	pp_mock_unlock(m);
	if (!g) {
		arm_error(resp, 404, "ResourceNotFound",
			  "The Resource '" AZ_GROUP_TYPE "/%s' under resource group was not found. "
			  "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
			  name);
		return;
	}
	pp_mock_resp_json(resp, 200, AZ_JSON, view);
	pp_json_free(view);
}

/* InProgress, then Succeeded; a finished delete removes the group. */
static void operation_get(struct pp_mock *m, struct azure_state *st, const char *id, bool result,
			  struct pp_mock_resp *resp)
{
	struct az_op *o;

	snprintf(resp->action, sizeof(resp->action), "OperationStatus");
	pp_mock_lock(m);
	for (o = st->ops; o; o = o->next)
		if (!strcmp(o->id, id))
			break;
	if (!o) {
		pp_mock_unlock(m);
		arm_error(resp, 404, "OperationNotFound", "The operation '%s' was not found.", id);
		return;
	}
	struct az_group *g = group_find(st, o->group_key);
	/* With aci.async an operation is done on the clock (done_at);
	 * without, a create is done once the group is provisioned, a delete
	 * on the second poll (so clients must follow it). */
	bool provisioned =
		!g || pp_mock_phase_at(m, g->created, pp_mock_clock(m)) != PP_MOCK_PROVISIONING;
	bool done = o->done_at >= 0 ? pp_mock_clock(m) >= o->done_at
				    : o->polls++ >= 1 || (!o->is_delete && provisioned);
	bool is_create = !o->is_delete;
	if (done && o->is_delete && g && g->deleting)
		group_remove(st, g);
	pp_mock_unlock(m);
	if (!done)
		pp_mock_resp_header(resp, "Retry-After", "1");
	/* "aci.provision": the create ends Failed while the group stays, as
	 * when ARM cannot pull the image; the client must delete it. */
	if (done && is_create && !result && pp_mock_step_fault(m, "aci.provision")) {
		pp_mock_resp_printf(
			resp, 200, AZ_JSON,
			"{\"id\":\"%s\",\"name\":\"%s\",\"status\":\"Failed\","
			"\"error\":{\"code\":\"InaccessibleImage\",\"message\":"
			"\"The image 'repo/flows:1' in container group is not accessible "
			"(mock fault aci.provision).\"}}",
			id, id);
		return;
	}
	if (result) {
		pp_mock_resp_printf(resp, done ? 200 : 202, AZ_JSON, "%s", "");
		return;
	}
	pp_mock_resp_printf(resp, 200, AZ_JSON, "{\"id\":\"%s\",\"name\":\"%s\",\"status\":\"%s\"}",
			    id, id, done ? "Succeeded" : "InProgress");
}

/* ---- routes ---- */

static void imds_token_route(struct pp_mock_call *c)
{
	imds_token(c->m, c->state, c->req, c->resp);
}

static const struct pp_mock_route imds_routes[] = {
	{"GET", "/metadata/identity/oauth2/token", imds_token_route, .changes = true},
	{NULL},
};

static const struct pp_mock_router imds_router = {
	.api = "imds",
	.scope = "/metadata",
	.routes = imds_routes,
};

static void entra_token_route(struct pp_mock_call *c)
{
	entra_token(c->m, c->state, pp_mock_param(&c->params, "tenant"), c->req, c->resp);
}

static void entra_unmatched(struct pp_mock_call *c, bool other_method)
{
	snprintf(c->resp->action, sizeof(c->resp->action), "token");
	aad_error(c->resp, 405, "invalid_request",
		  "AADSTS900561: The endpoint only accepts POST requests.");
}

static const struct pp_mock_route entra_routes[] = {
	{"POST", "/azure/{tenant}/oauth2/v2.0/token", entra_token_route, .changes = true},
	{NULL},
};

/* No scope: it shares /azure with ARM and answers only its own path. */
static const struct pp_mock_router entra_router = {
	.api = "entra",
	.routes = entra_routes,
	.unmatched = entra_unmatched,
};

/* ARM: a bearer token from this mock's Entra, then faults, then the
 * api-version every ARM call must name. */
static bool arm_admit(struct pp_mock_call *c)
{
	return pp_mock_azure_admit(c, "aci", true);
}

bool pp_mock_azure_admit(struct pp_mock_call *c, const char *fault_api, bool arm)
{
	struct pp_mock_resp *resp = c->resp;
	const char *verdict = bearer_check(c->m, c->state, c->req, !arm);
	const char *ver = pp_mock_arg(c->req, "api-version");
	int retry_after = 0;

	if (verdict) {
		pp_mock_resp_header(resp, "WWW-Authenticate",
				    "Bearer authorization_uri=\"https://login.windows.net/\", "
				    "error=\"invalid_token\"");
		/* Graph names every token failure InvalidAuthenticationToken. */
		arm_error(
			resp, 401, arm ? verdict : "InvalidAuthenticationToken",
			!strcmp(verdict, "AuthenticationFailed")
				? "Authentication failed. The 'Authorization' header is missing."
			: !strcmp(verdict, "ExpiredAuthenticationToken")
				? "The access token expiry UTC time is earlier than current UTC "
				  "time."
			: !strcmp(verdict, "InvalidAuthenticationTokenAudience")
				? (arm ? "The access token has been obtained for wrong audience or "
					 "resource 'https://graph.microsoft.com'."
				       : "Access token validation failure. Invalid audience.")
				: "The access token is invalid.");
		return false;
	}
	switch (pp_mock_fault_check(c->m, fault_api, false, resp, &retry_after)) {
	case PP_MOCK_FAULT_THROTTLE: {
		char v[16];
		snprintf(v, sizeof(v), "%d", retry_after > 0 ? retry_after : 1);
		pp_mock_resp_header(resp, "Retry-After", v);
		pp_mock_resp_header(resp, "x-ms-ratelimit-remaining-subscription-writes", "0");
		arm_error(resp, 429, "TooManyRequests",
			  "The request is being throttled as the limit has been reached for "
			  "operation type - Write_ObservationWindow_00:01:00.");
		return false;
	}
	case PP_MOCK_FAULT_ERROR:
		arm_error(resp, 500, "InternalServerError",
			  "Encountered internal server error. Diagnostic information: mock fault.");
		return false;
	default: break;
	}
	if (arm && (!ver || !*ver)) {
		arm_error(resp, 400, "MissingApiVersionParameter",
			  "The api-version query parameter (?api-version=) is required for all "
			  "requests.");
		return false;
	}
	return true;
}

static void arm_unmatched(struct pp_mock_call *c, bool other_method)
{
	if (other_method)
		arm_error(c->resp, 405, "MethodNotAllowed", "The method %s is not allowed.",
			  c->req->method);
	else
		arm_error(c->resp, 404, "InvalidResourceType", "No route for %s", c->req->subpath);
}

/* The status of an operation, or (with a trailing segment) its result. */
static void operation_route(struct pp_mock_call *c)
{
	operation_get(c->m, c->state, pp_mock_param(&c->params, "op"),
		      pp_mock_param(&c->params, "what") != NULL, c->resp);
}

/* A container group's ARM id and its store key (ARM names are
 * case-insensitive: the key is lowercase). */
struct group_ref {
	char id[700], key[600];
	const char *sub, *name;
};

static void group_ref(const struct pp_mock_call *c, struct group_ref *g)
{
	const char *rg = pp_mock_param(&c->params, "rg");

	g->sub = pp_mock_param(&c->params, "sub");
	g->name = pp_mock_param(&c->params, "name");
	snprintf(g->id, sizeof(g->id),
		 "/subscriptions/%s/resourceGroups/%s/providers/" AZ_GROUP_TYPE "/%s", g->sub, rg,
		 g->name);
	snprintf(g->key, sizeof(g->key), "%s/%s/%s", g->sub, rg, g->name);
	for (char *p = g->key; *p; p++)
		*p = (char)tolower((unsigned char)*p);
}

static void group_put_route(struct pp_mock_call *c)
{
	struct group_ref g;

	group_ref(c, &g);
	group_put(c->m, c->state, g.key, g.id, g.sub, g.name, c->req, c->resp);
}

static void group_get_route(struct pp_mock_call *c)
{
	struct group_ref g;

	group_ref(c, &g);
	group_get(c->m, c->state, g.key, g.name, c->resp);
}

static void group_delete_route(struct pp_mock_call *c)
{
	struct group_ref g;

	group_ref(c, &g);
	group_delete(c->m, c->state, g.key, g.sub, c->resp);
}

/* Containers_ListLogs: {"content": the container's output so far}, each
 * line led by its RFC 3339 time with timestamps=true, the last `tail`
 * lines when asked. */
static void container_logs_route(struct pp_mock_call *c)
{
	struct azure_state *st = c->state;
	struct pp_mock *m = c->m;
	struct group_ref ref;
	const char *cname = pp_mock_param(&c->params, "container");
	const char *tail = pp_mock_arg(c->req, "tail");
	const char *ts = pp_mock_arg(c->req, "timestamps");
	bool stamps = ts && !strcmp(ts, "true");
	struct pp_buf text;

	group_ref(c, &ref);
	snprintf(c->resp->action, sizeof(c->resp->action), "Containers_ListLogs");
	if (pp_mock_spec_arm_query(m, "Containers_ListLogs", c->req, c->resp))
		return;
	pp_buf_init(&text, (size_t)4 << 20);
	pp_mock_lock(m);
	struct az_group *g = group_find(st, ref.key);
	bool found = false;
	pp_json_foreach (ct, g ? pp_json_path(g->body, "properties.containers") : NULL)
		found = found || (pp_json_get_string(ct, "name") &&
				  !strcmp(pp_json_get_string(ct, "name"), cname));
	if (!g || !found) {
		pp_mock_unlock(m);
		pp_buf_free(&text);
		if (g)
			arm_error(c->resp, 404, "ResourceNotFound",
				  "The container '%s' is not found in container group '%s'.", cname,
				  ref.name);
		else
			arm_error(c->resp, 404, "ResourceNotFound",
				  "The Resource '" AZ_GROUP_TYPE
				  "/%s' under resource group was not "
				  "found.",
				  ref.name);
		return;
	}
	double now = pp_mock_clock(m);
	size_t n = pp_mock_joblog_written(g->log, now, -1), from = 0;
	if (tail && atol(tail) >= 0 && (size_t)atol(tail) < n)
		from = n - (size_t)atol(tail);
	for (size_t i = from; i < n; i++) {
		double at;
		const char *line = pp_mock_joblog_line(g->log, i, &at, NULL);
		if (stamps) {
			long long ms = (long long)(pp_mock_wall(m, at) * 1000.0);
			char t[PP_TIME_LEN];
			pp_time_format(ms - ms % 1000, false, t);
			t[strlen(t) - 1] = '\0';
			pp_buf_printf(&text, "%s.%03lld000000Z ", t, ms % 1000);
		}
		pp_buf_printf(&text, "%s\n", line);
	}
	pp_mock_unlock(m);
	struct pp_json *o = pp_json_new(PP_JSON_OBJECT);
	if (!o || pp_json_set_string(o, "content", pp_buf_str(&text)))
		arm_error(c->resp, 500, "InternalServerError", "mock: out of memory");
	else
		pp_mock_resp_json(c->resp, 200, AZ_JSON, o);
	pp_json_free(o);
	pp_buf_free(&text);
}

/* ContainerGroups_ListByResourceGroup: the resource group's groups, each
 * as GET shows it plus ARM's systemData.createdAt (one page). */
static void group_list_route(struct pp_mock_call *c)
{
	struct azure_state *st = c->state;
	char prefix[600];
	struct pp_json *o = pp_json_new(PP_JSON_OBJECT), *items = pp_json_new(PP_JSON_ARRAY);

	snprintf(c->resp->action, sizeof(c->resp->action), "ContainerGroups_ListByResourceGroup");
	snprintf(prefix, sizeof(prefix), "%s/%s/", pp_mock_param(&c->params, "sub"),
		 pp_mock_param(&c->params, "rg"));
	for (char *p = prefix; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	pp_mock_lock(c->m);
	double now = pp_mock_clock(c->m);
	for (struct az_group *g = st->groups; g && items; g = g->next) {
		if (strncmp(g->key, prefix, strlen(prefix)))
			continue;
		struct pp_json *v = group_view(c->m, g, now), *sd = pp_json_new(PP_JSON_OBJECT);
		char ts[PP_TIME_LEN];
		pp_time_format((int64_t)(pp_mock_wall(c->m, g->created) * 1000), true, ts);
		set_str(sd, "createdAt", ts);
		pp_json_set(v, "systemData", sd);
		pp_json_append(items, v);
	}
	pp_mock_unlock(c->m);
	if (o && items && !pp_json_set(o, "value", items))
		pp_mock_resp_json(c->resp, 200, AZ_JSON, o);
	else
		arm_error(c->resp, 500, "InternalServerError", "mock: out of memory");
	pp_json_free(o);
}

/* POST /azure/control/orphan {"id": ARM id of a container group, "run_id":
 * "...", "store_id": "...", "age_seconds": N}: a group as a lost submission
 * leaves it, created N seconds ago on the mock's clock, tagged
 * pushpool-run-id and pushpool-store-id when given (without a run id, a
 * group pushpool does not own). */
static void plant_orphan_group(struct pp_mock_call *c)
{
	struct azure_state *st = c->state;
	const char *id = pp_json_get_string(c->body, "id");
	const char *run = pp_json_get_string(c->body, "run_id");
	const char *store = pp_json_get_string(c->body, "store_id");
	char sub[64], rg[91], name[64], key[300];
	double age = 0;

	snprintf(c->resp->action, sizeof(c->resp->action), "control/orphan");
	pp_json_get_number(c->body, "age_seconds", &age);
	if (!id || age < 0 ||
	    sscanf(id,
		   "/subscriptions/%63[^/]/resourceGroups/%90[^/]/providers/" AZ_GROUP_TYPE
		   "/%63[^/]",
		   sub, rg, name) != 3 ||
	    !group_name_ok(name)) {
		pp_mock_resp_printf(c->resp, 400, "text/plain",
				    "orphan: want {\"id\": a container group's ARM id, "
				    "\"run_id\": RUN, \"age_seconds\": N >= 0}\n");
		return;
	}
	snprintf(key, sizeof(key), "%s/%s/%s", sub, rg, name);
	for (char *p = key; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	struct az_group *g = calloc(1, sizeof(*g));
	struct pp_json *tags = pp_json_new(PP_JSON_OBJECT), *props = pp_json_new(PP_JSON_OBJECT);
	if (!g || !tags || !props || !(g->key = strdup(key)) || !(g->id = strdup(id)) ||
	    !(g->name = strdup(name)) || !(g->body = pp_json_new(PP_JSON_OBJECT)) ||
	    (run && pp_json_set_string(tags, "pushpool-run-id", run)) ||
	    (store && pp_json_set_string(tags, "pushpool-store-id", store)) ||
	    pp_json_set(props, "containers", pp_json_new(PP_JSON_ARRAY)) ||
	    pp_json_set_string(g->body, "location", AZ_LOCATION) ||
	    /* once set, tags belong to the body */
	    pp_json_set(g->body, "tags", tags) || (tags = NULL) ||
	    pp_json_set(g->body, "properties", props)) {
		pp_json_free(tags);
		pp_json_free(props);
		if (g)
			group_free(g);
		pp_mock_resp_printf(c->resp, 500, "text/plain", "orphan: out of memory\n");
		return;
	}
	pp_mock_lock(c->m);
	g->created = pp_mock_clock(c->m) - age;
	g->next = st->groups;
	st->groups = g;
	st->ngroups++;
	pp_mock_unlock(c->m);
	pp_mock_resp_printf(c->resp, 201, "text/plain", "planted %s\n", name);
}

static const struct pp_mock_route azure_control_routes[] = {
	{"POST", "/azure/control/orphan", plant_orphan_group, .changes = true},
	{NULL},
};

static const struct pp_mock_router azure_control_router = {
	.api = "control",
	.json_body = true,
	.routes = azure_control_routes,
};

#define OPS                                                                                        \
	"/azure/subscriptions/{sub}/providers/Microsoft.ContainerInstance/locations/{loc}/"        \
	"operations/{op}"
#define GROUPS                                                                                     \
	"/azure/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/"    \
	"containerGroups"
#define GROUP GROUPS "/{name}"
static const struct pp_mock_route arm_routes[] = {
	{"GET", OPS, operation_route, .changes = false},
	{"GET", OPS "/{what}", operation_route, .changes = false},
	{"GET", GROUPS, group_list_route, .changes = false},
	{"PUT", GROUP, group_put_route, .changes = true},
	{"GET", GROUP, group_get_route, .changes = false},
	{"DELETE", GROUP, group_delete_route, .changes = true},
	{"GET", GROUP "/containers/{container}/logs", container_logs_route, .changes = false},
	{NULL},
};
#undef OPS
#undef GROUP
#undef GROUPS

static const struct pp_mock_router arm_router = {
	.api = "arm",
	.scope = "/azure",
	.nocase = true,
	.routes = arm_routes,
	.admit = arm_admit,
	.unmatched = arm_unmatched,
};

/* The provisioning APIs' routers take only their own paths: before ARM's,
 * whose scope is all of /azure. */
static const struct pp_mock_router *const azure_routers[] = {
	&imds_router,
	&entra_router,
	&azure_control_router,
	&pp_mock_azi_control_router,
	&pp_mock_azi_router,
	&pp_mock_azg_router,
	&pp_mock_azg_control_router,
	&arm_router,
	NULL,
};

static void azure_reset(struct pp_mock *m, void *state)
{
	struct azure_state *st = state;

	while (st->groups) {
		struct az_group *g = st->groups;
		st->groups = g->next;
		group_free(g);
	}
	while (st->ops) {
		struct az_op *o = st->ops;
		st->ops = o->next;
		free(o->group_key);
		free(o);
	}
	st->ngroups = st->nops = 0;
	pp_mock_azi_reset(st->infra);
	pp_mock_azg_reset(st->graph);
	/* Issued tokens survive: clients keep using them. */
}

static void azure_free(void *state)
{
	struct azure_state *st = state;

	if (!st)
		return;
	azure_reset(NULL, st);
	pp_mock_azi_free(st->infra);
	pp_mock_azg_free(st->graph);
	while (st->tokens) {
		struct az_token *t = st->tokens;
		st->tokens = t->next;
		free(t);
	}
	for (size_t i = 0; i < st->nclients; i++) {
		free(st->clients[i].id);
		free(st->clients[i].secret);
		EVP_PKEY_free(st->clients[i].pkey);
	}
	free(st);
}

static EVP_PKEY *load_cert_key(const char *path, struct pp_error *err)
{
	BIO *bio = BIO_new_file(path, "r");
	EVP_PKEY *k = NULL;

	if (!bio) {
		pp_fail(err, PP_EIO, "%s: cannot open certificate", path);
		return NULL;
	}
	X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (x) {
		k = X509_get_pubkey(x);
		X509_free(x);
	} else {
		(void)BIO_reset(bio);
		k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	}
	BIO_free(bio);
	if (!k)
		pp_fail(err, PP_EINVALID, "%s: no PEM certificate or public key", path);
	return k;
}

/* "ID:VALUE[,ID:VALUE...]" from the environment. */
static int load_clients(struct azure_state *st, const char *var, bool certs, struct pp_error *err)
{
	const char *v = getenv(var);
	char *copy, *save = NULL;

	if (!v || !*v)
		return 0;
	copy = strdup(v);
	if (!copy)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(item, ':');
		if (!colon || colon == item || !colon[1]) {
			free(copy);
			return pp_fail(err, PP_EINVALID, "%s: entry '%s' is not ID:VALUE", var,
				       item);
		}
		*colon = '\0';
		struct az_client *c = client_find(st, item);
		if (!c) {
			if (st->nclients == AZ_MAX_CLIENTS) {
				free(copy);
				return pp_fail(err, PP_EINVALID, "%s: more than %d clients", var,
					       AZ_MAX_CLIENTS);
			}
			c = &st->clients[st->nclients++];
			c->id = strdup(item);
		}
		if (certs) {
			EVP_PKEY_free(c->pkey);
			c->pkey = load_cert_key(colon + 1, err);
		} else {
			free(c->secret);
			c->secret = strdup(colon + 1);
			pp_secret_register(c->secret);
		}
		if (!c->id || (certs ? !c->pkey : !c->secret)) {
			free(copy);
			if (certs && !c->pkey)
				return err->code;
			return pp_fail(err, PP_ENOMEM, "out of memory");
		}
	}
	free(copy);
	return 0;
}

static int azure_init(struct pp_mock *m, void **state, struct pp_error *err)
{
	struct azure_state *st = calloc(1, sizeof(*st));
	int rc;

	*state = st;
	if (!st || !(st->infra = pp_mock_azi_new()) || !(st->graph = pp_mock_azg_new()))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	if ((rc = load_clients(st, "PUSHPOOL_MOCK_AZURE_CLIENTS", false, err)) ||
	    (rc = load_clients(st, "PUSHPOOL_MOCK_AZURE_CERTS", true, err)))
		return rc;
	if (st->nclients == 0) {
		st->clients[0].id = strdup(AZ_DEFAULT_CLIENT);
		st->clients[0].secret = strdup(AZ_DEFAULT_SECRET);
		st->nclients = 1;
		if (!st->clients[0].id || !st->clients[0].secret)
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	return 0;
}

static void azure_stats(struct pp_mock *m, void *state, struct pp_json *live)
{
	struct azure_state *st = state;
	long long live_groups = 0;

	for (struct az_group *g = st->groups; g; g = g->next)
		live_groups += !g->deleting;
	pp_json_set_int(live, "live_container_groups", live_groups);
	pp_mock_azi_stats(st->infra, live);
	pp_mock_azg_stats(st->graph, live);
}

const struct pp_mock_api pp_mock_api_azure = {
	.name = "azure",
	.prefixes = {"/azure", "/metadata", NULL},
	.init = azure_init,
	.free = azure_free,
	.routers = azure_routers,
	.reset = azure_reset,
	.stats = azure_stats,
};
