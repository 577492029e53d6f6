#include "auth/modal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/backend.h"
#include "lib/file.h"
#include "lib/grpc.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/pb.h"

#define SERVICE_PREFIX "/modal.client.ModalClient/"
#define AUTH_TOKEN_RPC "modal.client.ModalClient/AuthTokenGet"
#define TOKEN_MAX      4096
/* A token whose exp cannot be read is kept this long: the SDK's fallback. */
#define UNKNOWN_EXP_LIFETIME_S 1200

struct pp_modal_auth {
	char *token_id;
	char *token_secret;
	char *server_url;
	char auth_token[TOKEN_MAX];
	time_t auth_exp;
	unsigned long refreshes;
};

static char *dup_trim(const char *s, size_t n)
{
	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
		s++;
		n -= 2;
	}
	return strndup(s, n);
}

struct toml_profile {
	char *name;
	char *token_id, *token_secret, *server_url;
	bool active;
};

static void profile_free(struct toml_profile *p)
{
	free(p->name);
	free(p->token_id);
	free(p->token_secret);
	free(p->server_url);
	memset(p, 0, sizeof(*p));
}

/* Read the wanted profile (or the first active one when want is NULL) from
 * a ~/.modal.toml: flat tables of `key = "value"` lines. */
static int read_modal_toml(const char *path, const char *want, struct toml_profile *out,
			   struct pp_error *err)
{
	int fd = pp_file_open(path, err);
	if (fd < 0) {
		/* Whatever kept it from opening, the credential is unusable. */
		pp_error_prefix(err, "cannot open Modal config ");
		if (err)
			err->code = PP_EAUTH;
		return PP_EAUTH;
	}
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return pp_fail(err, PP_ENOMEM, "%s: out of memory", path);
	}
	char line[2048];
	int lineno = 0;
	struct toml_profile cur = {0};
	bool found = false;
	int rc = 0;
	while (!found && fgets(line, sizeof(line), f)) {
		lineno++;
		char *s = line + strspn(line, " \t");
		if (*s == '#' || *s == '\n' || !*s)
			continue;
		if (*s == '[') {
			if (cur.name && (want ? !strcmp(cur.name, want) : cur.active)) {
				found = true;
				break;
			}
			profile_free(&cur);
			char *end = strchr(s, ']');
			if (!end) {
				rc = pp_fail(err, PP_EINVALID, "%s:%d: unterminated table header",
					     path, lineno);
				break;
			}
			cur.name = dup_trim(s + 1, (size_t)(end - s - 1));
			continue;
		}
		char *eq = strchr(s, '=');
		if (!eq || !cur.name)
			continue;
		char *key = dup_trim(s, (size_t)(eq - s));
		char *val = dup_trim(eq + 1, strcspn(eq + 1, "\n"));
		char **slot = !strcmp(key, "token_id")	     ? &cur.token_id
			      : !strcmp(key, "token_secret") ? &cur.token_secret
			      : !strcmp(key, "server_url")   ? &cur.server_url
							     : NULL;
		if (slot) {
			free(*slot);
			*slot = val;
			val = NULL;
		} else if (!strcmp(key, "active")) {
			cur.active = val && !strcmp(val, "true");
		}
		free(key);
		free(val);
	}
	fclose(f);
	if (!rc && !found && cur.name && (want ? !strcmp(cur.name, want) : cur.active))
		found = true;
	if (rc || !found) {
		profile_free(&cur);
		if (rc)
			return rc;
		if (want)
			return pp_fail(err, PP_EAUTH, "%s: no profile [%s]", path, want);
		return pp_fail(err, PP_EAUTH,
			       "%s: no profile has active = true (set MODAL_PROFILE)", path);
	}
	*out = cur;
	return 0;
}

static int set_str(char **dst, const char *src)
{
	if (!src || *dst)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : PP_ENOMEM;
}

static const char *nz(const char *s)
{
	return s && *s ? s : NULL;
}

/* Token pair from the profile file: conf->file, MODAL_CONFIG_PATH or
 * ~/.modal.toml; profile conf->profile, MODAL_PROFILE or the active one. */
static int load_profile(struct pp_modal_auth *m, const struct pp_cred_conf *conf,
			struct pp_error *err)
{
	char home_path[1024];
	const char *path = nz(conf->file) ? conf->file : nz(getenv("MODAL_CONFIG_PATH"));
	if (!path && nz(getenv("HOME"))) {
		snprintf(home_path, sizeof(home_path), "%s/.modal.toml", getenv("HOME"));
		path = home_path;
	}
	if (!path)
		return pp_fail(err, PP_EAUTH,
			       "no Modal token: set token_id/token_secret, "
			       "MODAL_TOKEN_ID/MODAL_TOKEN_SECRET or ~/.modal.toml");
	struct toml_profile p = {0};
	const char *want = nz(conf->profile) ? conf->profile : nz(getenv("MODAL_PROFILE"));
	int rc = read_modal_toml(path, want, &p, err);
	if (rc)
		return rc;
	rc = set_str(&m->token_id, p.token_id) ?: set_str(&m->token_secret, p.token_secret) ?:
		set_str(&m->server_url, nz(conf->modal_server_url)) ?:
		set_str(&m->server_url, nz(getenv("MODAL_SERVER_URL"))) ?:
		set_str(&m->server_url, p.server_url);
	profile_free(&p);
	if (rc)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	if (!m->token_id || !m->token_secret)
		return pp_fail(err, PP_EAUTH, "%s: Modal profile lacks token_id/token_secret",
			       path);
	return 0;
}

/* ---- sources: one row each; the section's source picks the row ---- */

static int from_conf(struct pp_modal_auth *m, const struct pp_cred_conf *conf, struct pp_error *err)
{
	if (!nz(conf->token_id) || !nz(conf->token_secret))
		return pp_cred_conf_fail(conf, PP_EINVALID, err,
					 "token_id and token_secret go together");
	if (set_str(&m->token_id, conf->token_id) || set_str(&m->token_secret, conf->token_secret))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	return 0;
}

static bool env_pair(void)
{
	return nz(getenv("MODAL_TOKEN_ID")) && nz(getenv("MODAL_TOKEN_SECRET"));
}

static int from_env(struct pp_modal_auth *m, const struct pp_cred_conf *conf, struct pp_error *err)
{
	if (!env_pair())
		return pp_fail(err, PP_EAUTH,
			       "credentials \"%s\": MODAL_TOKEN_ID and "
			       "MODAL_TOKEN_SECRET are not set",
			       conf->name);
	if (set_str(&m->token_id, getenv("MODAL_TOKEN_ID")) ||
	    set_str(&m->token_secret, getenv("MODAL_TOKEN_SECRET")))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	return 0;
}

/* The SDK's order: the section's pair, the environment's (unless a file is
 * named), then the profile file. */
static int from_chain(struct pp_modal_auth *m, const struct pp_cred_conf *conf,
		      struct pp_error *err)
{
	if (nz(conf->token_id) || nz(conf->token_secret))
		return from_conf(m, conf, err);
	if (env_pair() && !nz(conf->file))
		return from_env(m, conf, err);
	return load_profile(m, conf, err);
}

static const struct {
	const char *name;
	int (*resolve)(struct pp_modal_auth *m, const struct pp_cred_conf *conf,
		       struct pp_error *err);
} sources[] = {
	{"chain", from_chain},	   {"env", from_env},	 {"file", load_profile},
	{"profile", load_profile}, {"token", from_conf}, {"static", from_conf},
};

int pp_modal_auth_new(const struct pp_cred_conf *conf, struct pp_modal_auth **out,
		      struct pp_error *err)
{
	const char *src = pp_cred_source(conf);
	int row = pp_cred_source_row(sources, sizeof(sources) / sizeof(sources[0]),
				     sizeof(sources[0]), src);
	if (row < 0)
		return pp_cred_conf_fail(conf, PP_EINVALID, err, "unknown Modal source \"%s\"",
					 src);
	struct pp_modal_auth *m = calloc(1, sizeof(*m));
	if (!m)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	int rc = sources[row].resolve(m, conf, err);
	if (rc)
		goto fail;
	rc = set_str(&m->server_url, nz(conf->modal_server_url)) ?:
		set_str(&m->server_url, nz(getenv("MODAL_SERVER_URL"))) ?:
		set_str(&m->server_url, PP_MODAL_DEFAULT_SERVER);
	if (rc) {
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
		goto fail;
	}
	size_t n = strlen(m->server_url);
	while (n && m->server_url[n - 1] == '/')
		m->server_url[--n] = '\0';
	pp_secret_register(m->token_secret);
	*out = m;
	return 0;
fail:
	pp_modal_auth_free(m);
	return rc;
}

void pp_modal_auth_free(struct pp_modal_auth *m)
{
	if (!m)
		return;
	free(m->token_id);
	free(m->token_secret);
	free(m->server_url);
	free(m);
}

static int b64url_decode(const char *in, size_t n, char *out, size_t size)
{
	unsigned acc = 0;
	int bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		int v = c >= 'A' && c <= 'Z'   ? c - 'A'
			: c >= 'a' && c <= 'z' ? c - 'a' + 26
			: c >= '0' && c <= '9' ? c - '0' + 52
			: c == '-' || c == '+' ? 62
			: c == '_' || c == '/' ? 63
			: c == '='	       ? -2
					       : -1;
		if (v == -2)
			break;
		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= size)
				return -1;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	return 0;
}

time_t pp_modal_jwt_exp(const char *jwt)
{
	const char *dot1 = strchr(jwt, '.');
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (!dot2)
		return 0;
	char payload[2048];
	if (b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload, sizeof(payload)))
		return 0;
	struct pp_json *j = NULL;
	if (pp_json_parse(payload, strlen(payload), NULL, &j, NULL))
		return 0;
	double exp = 0;
	bool ok = pp_json_get_number(j, "exp", &exp);
	pp_json_free(j);
	return ok && exp > 0 ? (time_t)exp : 0;
}

static int add_token_pair(struct pp_modal_auth *m, struct pp_http_req *req)
{
	return pp_http_req_set_header(req, "x-modal-client-type", PP_MODAL_CLIENT_TYPE) ?:
		pp_http_req_set_header(req, "x-modal-client-version", PP_MODAL_CLIENT_VERSION) ?:
		pp_http_req_set_header(req, "x-modal-libmodal-version", PP_MODAL_LIBMODAL_VERSION) ?:
		pp_http_req_set_header(req, "x-modal-token-id", m->token_id) ?:
		pp_http_req_set_header(req, "x-modal-token-secret", m->token_secret);
}

/* AuthTokenGet (empty request) -> AuthTokenGetResponse{token=1}. */
static int fetch_auth_token(struct pp_modal_auth *m, const char *server, struct pp_error *err)
{
	struct pp_http_req req;
	struct pp_http_resp resp;
	struct pp_buf empty;
	pp_buf_init(&empty, 16);
	int rc = pp_grpc_request(&req, server, AUTH_TOKEN_RPC, &empty, 10000, err);
	pp_buf_free(&empty);
	if (rc)
		return rc;
	pp_http_resp_init(&resp, 64 * 1024);
	rc = add_token_pair(m, &req);
	if (rc) {
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
		goto out;
	}
	rc = pp_http_perform(&req, &resp, err);
	const uint8_t *msg = NULL;
	size_t len = 0;
	if (!rc)
		rc = pp_grpc_result(&resp, "Modal AuthTokenGet", pp_modal_retry_hint, &msg, &len,
				    NULL, err);
	if (rc)
		goto out;
	struct pp_pb_reader r;
	struct pp_pb_field f;
	char token[TOKEN_MAX] = "";
	pp_pb_reader_init(&r, msg, len);
	while ((rc = pp_pb_next(&r, &f, err)) == 1)
		if (f.num == 1 && (rc = pp_pb_field_string(&f, token, sizeof(token), err)))
			break;
	if (rc < 0)
		goto out;
	if (!token[0]) {
		rc = pp_fail(err, PP_EAUTH, "Modal AuthTokenGet: response holds no token");
		goto out;
	}
	rc = 0;
	memcpy(m->auth_token, token, sizeof(token));
	pp_secret_register_rotating(m->auth_token);
	time_t exp = pp_modal_jwt_exp(token);
	m->auth_exp = exp ? exp : time(NULL) + UNKNOWN_EXP_LIFETIME_S;
	m->refreshes++;
out:
	pp_http_resp_free(&resp);
	pp_http_req_free(&req);
	return rc;
}

int pp_modal_auth_apply(struct pp_modal_auth *m, struct pp_http_req *req, struct pp_error *err)
{
	if (add_token_pair(m, req))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	const char *svc = req->url ? strstr(req->url, SERVICE_PREFIX) : NULL;
	if (svc && !strcmp(svc + strlen(SERVICE_PREFIX), "AuthTokenGet"))
		return 0;
	if (!m->auth_token[0] || time(NULL) >= m->auth_exp - PP_MODAL_REFRESH_EARLY_S) {
		/* The token comes from the server the call goes to (a mock or
		 * another region), not necessarily the configured default. */
		char server[1024];
		size_t n = svc ? (size_t)(svc - req->url) : strlen(m->server_url);
		if (n >= sizeof(server))
			return pp_fail(err, PP_EINVALID, "Modal server URL too long");
		memcpy(server, svc ? req->url : m->server_url, n);
		server[n] = '\0';
		int rc = fetch_auth_token(m, server, err);
		if (rc)
			return rc;
	}
	if (pp_http_req_set_header(req, "x-modal-auth-token", m->auth_token))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	return 0;
}

void pp_modal_auth_invalidate(struct pp_modal_auth *m)
{
	m->auth_token[0] = '\0';
	m->auth_exp = 0;
}

int pp_modal_auth_identity(struct pp_modal_auth *m, struct pp_buf *out, struct pp_error *err)
{
	/* Fetching an auth token proves the pair is accepted. */
	int rc = fetch_auth_token(m, m->server_url, err);
	if (rc)
		return rc;
	if (pp_buf_printf(out, "%s (%s)", m->token_id, m->server_url))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	return 0;
}

unsigned long pp_modal_auth_refreshes(const struct pp_modal_auth *m)
{
	return m->refreshes;
}

const char *pp_modal_auth_server_url(const struct pp_modal_auth *m)
{
	return m->server_url;
}

/* ---- the backend ---- */

static int modal_check(const struct pp_cred_conf *conf, struct pp_error *err)
{
	const char *src = pp_cred_source(conf);
	if (!strcmp(src, "file") && !nz(conf->file))
		return pp_cred_conf_fail(conf, PP_EINVALID, err, "source file needs file");
	if ((!strcmp(src, "token") || !strcmp(src, "static")) &&
	    (!nz(conf->token_id) || !nz(conf->token_secret)))
		return pp_cred_conf_fail(conf, PP_EINVALID, err,
					 "source %s needs token_id and token_secret", src);
	if (!nz(conf->token_id) != !nz(conf->token_secret))
		return pp_cred_conf_fail(conf, PP_EINVALID, err,
					 "token_id and token_secret go together");
	return 0;
}

static int modal_open(const struct pp_cred_conf *conf, void **state, struct pp_error *err)
{
	return pp_modal_auth_new(conf, (struct pp_modal_auth **)state, err);
}

static int modal_apply(void *state, struct pp_http_req *req, struct pp_error *err)
{
	return pp_modal_auth_apply(state, req, err);
}

static void modal_invalidate(void *state)
{
	pp_modal_auth_invalidate(state);
}

static int modal_identity(void *state, struct pp_buf *out, struct pp_error *err)
{
	return pp_modal_auth_identity(state, out, err);
}

/* The auth token is the server's business: apply renews it unasked, and
 * the token pair itself does not expire. */
static long modal_seconds_left(void *state)
{
	(void)state;
	return -1;
}

static unsigned long modal_refreshes(void *state)
{
	return pp_modal_auth_refreshes(state);
}

static void modal_close(void *state)
{
	pp_modal_auth_free(state);
}

static int modal_probe_url(void *state, char *url, size_t size)
{
	struct pp_modal_auth *m = state;
	int n = snprintf(url, size, "%s/modal.client.ModalClient/ClientHello", m->server_url);
	return n < 0 || (size_t)n >= size ? PP_EINVALID : 0;
}

const struct pp_cred_backend pp_cred_modal = {
	.abi = PP_CRED_BACKEND_ABI,
	.type = "modal",
	.what = "bearer token",
	PP_CRED_SOURCES(sources),
	.check = modal_check,
	.open = modal_open,
	.apply = modal_apply,
	.invalidate = modal_invalidate,
	.identity = modal_identity,
	.seconds_left = modal_seconds_left,
	.refreshes = modal_refreshes,
	.close = modal_close,
	.probe_url = modal_probe_url,
};

long pp_modal_retry_hint(const char *type_url, size_t type_len, const uint8_t *value,
			 size_t value_len)
{
	/* modal.client.RPCRetryPolicy{retry_after_secs = 1 float}: Modal's way
	 * to say how long to back off, under any type URL prefix. */
	static const char suffix[] = "modal.client.RPCRetryPolicy";
	size_t sl = sizeof(suffix) - 1;
	if (type_len < sl || memcmp(type_url + type_len - sl, suffix, sl))
		return 0;
	struct pp_pb_reader r;
	struct pp_pb_field f;
	long ms = 0;
	pp_pb_reader_init(&r, value, value_len);
	while (pp_pb_next(&r, &f, NULL) == 1)
		if (f.num == 1 && f.wire == PP_PB_I32) {
			float s = pp_pb_field_float(&f);
			if (s > 0 && s < PP_MODAL_RETRY_AFTER_MAX_S)
				ms = (long)(s * 1000.0f);
		}
	return ms;
}
