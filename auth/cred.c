/* The pp_cred handle: an opened credential backend (auth/backend.h) and
 * the section it came from. Every call forwards to the backend's ops; what
 * a cloud does lives in its backend. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/backend.h"
#include "lib/http.h"
#include "lib/log.h"

#include <openssl/evp.h>

struct pp_cred {
	const struct pp_cred_backend *b;
	void *state;
	char name[PP_NAME_MAX]; /* the section's */
	/* From a job (pp_cred_from_job): the section made up for it, whose
	 * strings the handle owns, as the backend's state borrows it. */
	struct pp_cred_conf *own;
	/* The settings it was made from (own, or the configuration's, which
	 * the backend's state borrows too), for pp_cred_fingerprint, computed
	 * on first use. */
	const struct pp_cred_conf *conf;
	char fingerprint[2 * 32 + 1];
};

/* The string members of a pp_cred_conf, to free a made-up section. */
static const size_t conf_strings[] = {
	offsetof(struct pp_cred_conf, type),
	offsetof(struct pp_cred_conf, source),
	offsetof(struct pp_cred_conf, file),
	offsetof(struct pp_cred_conf, profile),
	offsetof(struct pp_cred_conf, region),
	offsetof(struct pp_cred_conf, access_key_id),
	offsetof(struct pp_cred_conf, secret_access_key),
	offsetof(struct pp_cred_conf, session_token),
	offsetof(struct pp_cred_conf, role_arn),
	offsetof(struct pp_cred_conf, tenant_id),
	offsetof(struct pp_cred_conf, client_id),
	offsetof(struct pp_cred_conf, client_secret),
	offsetof(struct pp_cred_conf, client_secret_file),
	offsetof(struct pp_cred_conf, certificate_path),
	offsetof(struct pp_cred_conf, subscription_id),
	offsetof(struct pp_cred_conf, token_id),
	offsetof(struct pp_cred_conf, token_secret),
	offsetof(struct pp_cred_conf, token_uri),
	offsetof(struct pp_cred_conf, metadata_host),
	offsetof(struct pp_cred_conf, sts_endpoint),
	offsetof(struct pp_cred_conf, authority),
	offsetof(struct pp_cred_conf, imds_endpoint),
	offsetof(struct pp_cred_conf, container_endpoint),
	offsetof(struct pp_cred_conf, modal_server_url),
	offsetof(struct pp_cred_conf, key_json),
};

static void conf_free(struct pp_cred_conf *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < sizeof(conf_strings) / sizeof(conf_strings[0]); i++)
		free(*(char **)((char *)c + conf_strings[i]));
	free(c);
}

int pp_cred_new(const struct pp_cred_conf *conf, struct pp_cred **out, struct pp_error *err)
{
	const struct pp_cred_backend *b = NULL;
	int rc = pp_cred_backend_for(conf, &b, err);
	if (!rc)
		rc = pp_cred_source_check(b, conf, err);
	if (rc)
		return rc;
	struct pp_cred *c = calloc(1, sizeof(*c));
	if (!c)
		return pp_fail(err, PP_ENOMEM, "credentials \"%s\": out of memory", conf->name);
	c->b = b;
	c->conf = conf;
	snprintf(c->name, sizeof(c->name), "%s", conf->name);
	rc = b->open(conf, &c->state, err);
	if (rc) {
		if (err)
			pp_error_prefix(err, "credentials \"%s\": ", conf->name);
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void pp_cred_free(struct pp_cred *c)
{
	if (!c)
		return;
	c->b->close(c->state);
	conf_free(c->own);
	free(c);
}

int pp_cred_from_job(const char *type, const struct pp_json *obj, struct pp_cred **out,
		     struct pp_error *err)
{
	*out = NULL;
	const struct pp_cred_backend *b = NULL;
	for (const struct pp_cred_backend *const *it = pp_cred_backends(); *it && !b; it++)
		if (!strcmp((*it)->type, type))
			b = *it;
	if (!b || !b->from_block)
		return pp_fail(err, PP_EINVALID, "credentials of type %s cannot come from a job",
			       type);
	struct pp_cred_conf *own = calloc(1, sizeof(*own));
	if (!own)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	snprintf(own->name, sizeof(own->name), "job %s credentials", type);
	int rc = b->from_block(obj, own, err);
	if (!rc && !(own->type = strdup(type)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (rc) {
		conf_free(own);
		return rc == PP_ENOTFOUND ? 0 : rc;
	}
	/* What a block carries is secret: keep every part out of the logs. */
	const char *secrets[] = {own->secret_access_key, own->session_token, own->client_secret,
				 own->token_secret, own->key_json};
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		if (secrets[i] && *secrets[i])
			pp_secret_register(secrets[i]);
	rc = pp_cred_new(own, out, err);
	if (rc) {
		conf_free(own);
		return rc;
	}
	(*out)->own = own;
	return 0;
}

const char *pp_cred_fingerprint(struct pp_cred *c)
{
	if (c->fingerprint[0])
		return c->fingerprint;
	/* Each setting as its length and bytes, an unset one as a length of
	 * zero and an empty one as one: no two sets of settings run together
	 * into the same bytes. Streamed into the digest rather than gathered
	 * for pp_sha256_hex (providers/common.h, a layer above): the settings
	 * hold secrets, and a gathered copy (and its reallocations) would be
	 * more of them left to clear. */
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (size_t i = 0; ok && i < sizeof(conf_strings) / sizeof(conf_strings[0]); i++) {
		const char *v = *(char *const *)((const char *)c->conf + conf_strings[i]);
		uint64_t len = v ? strlen(v) + 1 : 0;
		ok = EVP_DigestUpdate(ctx, &len, sizeof(len)) &&
		     (!v || EVP_DigestUpdate(ctx, v, len - 1));
	}
	ok = ok && EVP_DigestFinal_ex(ctx, md, &n) && n == 32;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return "";
	for (unsigned int i = 0; i < n; i++)
		snprintf(c->fingerprint + 2 * i, 3, "%02x", md[i]);
	return c->fingerprint;
}

const char *pp_cred_name(const struct pp_cred *c)
{
	return c->name;
}

const char *pp_cred_type(const struct pp_cred *c)
{
	return c->b->type;
}

const char *pp_cred_what(const struct pp_cred *c)
{
	return c->b->what;
}

int pp_cred_apply(struct pp_cred *c, struct pp_http_req *req, struct pp_error *err)
{
	return c->b->apply(c->state, req, err);
}

void pp_cred_invalidate(struct pp_cred *c)
{
	c->b->invalidate(c->state);
}

void pp_cred_set_scope(struct pp_cred *c, const char *region, const char *service)
{
	if (c->b->set_scope)
		c->b->set_scope(c->state, region, service);
}

const char *pp_cred_region(const struct pp_cred *c)
{
	return c->b->region ? c->b->region(c->state) : NULL;
}

const char *pp_cred_project(const struct pp_cred *c)
{
	return c->b->project ? c->b->project(c->state) : NULL;
}

const char *pp_cred_project_label(const struct pp_cred *c)
{
	return c->b->project_label;
}

int pp_cred_identity(struct pp_cred *c, struct pp_buf *out, struct pp_error *err)
{
	return c->b->identity(c->state, out, err);
}

unsigned long pp_cred_refreshes(const struct pp_cred *c)
{
	return c->b->refreshes(c->state);
}

long pp_cred_seconds_left(const struct pp_cred *c)
{
	return c->b->seconds_left(c->state);
}

int pp_cred_probe(struct pp_cred *c, struct pp_error *err)
{
	struct pp_http_req req;
	char url[1024];
	int rc = 0;

	snprintf(url, sizeof(url), "https://auth-check.invalid/");
	if (c->b->probe_url && (rc = c->b->probe_url(c->state, url, sizeof(url))))
		return pp_fail(err, rc, "probe URL too long");
	pp_http_req_init(&req, "POST", url);
	rc = req.url ? pp_http_req_body(&req, "", 0) : PP_ENOMEM;
	if (rc)
		rc = pp_fail(err, rc, "out of memory");
	else
		rc = pp_cred_apply(c, &req, err);
	pp_http_req_free(&req);
	return rc;
}

int pp_cred_perform(struct pp_cred *c, struct pp_http_req *req, struct pp_http_resp *resp,
		    struct pp_error *err)
{
	int rc = c ? pp_cred_apply(c, req, err) : 0;
	return rc ? rc : pp_http_perform(req, resp, err);
}
