/* The pp_cred handle: dispatch by kind. Google and Azure hand out bearer
 * tokens through the shared token cache; AWS signs each request (SigV4);
 * Modal adds its token metadata. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "auth/aws.h"
#include "auth/azure.h"
#include "auth/gcp.h"
#include "auth/modal.h"
#include "auth/token_cache.h"
#include "lib/http.h"

struct pp_cred {
	enum pp_cred_kind kind;
	struct pp_token_cache *cache; /* GCP, Azure */
	struct pp_gcp *gcp;
	struct pp_azure *azure;
	struct pp_aws aws;
	bool aws_ready;
	struct pp_modal_auth *modal;
};

static int parse_kind(const struct pp_cred_conf *conf, enum pp_cred_kind *kind,
		      struct pp_error *err)
{
	static const struct {
		const char *name;
		enum pp_cred_kind kind;
	} kinds[] = {
		{"gcp", PP_CRED_GCP},
		{"aws", PP_CRED_AWS},
		{"azure", PP_CRED_AZURE},
		{"modal", PP_CRED_MODAL},
	};
	for (size_t i = 0; conf->type && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (!strcmp(conf->type, kinds[i].name)) {
			*kind = kinds[i].kind;
			return 0;
		}
	}
	return pp_fail(err, PP_EINVALID,
		       "%s:%d: credentials \"%s\": type must be one of gcp, aws, azure, modal "
		       "(got \"%s\")",
		       conf->file_name ? conf->file_name : "(config)", conf->line, conf->name,
		       conf->type ? conf->type : "");
}

int pp_cred_new(const struct pp_cred_conf *conf, struct pp_cred **out, struct pp_error *err)
{
	enum pp_cred_kind kind = PP_CRED_GCP;
	int rc = parse_kind(conf, &kind, err);
	if (rc)
		return rc;
	struct pp_cred *c = calloc(1, sizeof(*c));
	if (!c)
		return pp_fail(err, PP_ENOMEM, "credentials \"%s\": out of memory", conf->name);
	c->kind = kind;
	const char *key = NULL;
	switch (kind) {
	case PP_CRED_GCP:
		rc = pp_gcp_new(conf, &c->gcp, err);
		if (!rc)
			key = pp_gcp_cache_key(c->gcp);
		break;
	case PP_CRED_AZURE:
		rc = pp_azure_new(conf, &c->azure, err);
		if (!rc)
			key = pp_azure_cache_key(c->azure);
		break;
	case PP_CRED_AWS:
		rc = pp_aws_init(&c->aws, conf, err);
		c->aws_ready = !rc;
		break;
	case PP_CRED_MODAL: rc = pp_modal_auth_new(conf, &c->modal, err); break;
	}
	if (!rc && key && !(c->cache = pp_token_cache_acquire(key)))
		rc = pp_fail(err, PP_ENOMEM, "credentials \"%s\": out of memory", conf->name);
	if (rc) {
		if (err)
			pp_error_prefix(err, "credentials \"%s\": ", conf->name);
		pp_cred_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void pp_cred_free(struct pp_cred *c)
{
	if (!c)
		return;
	pp_token_cache_release(c->cache);
	pp_gcp_free(c->gcp);
	pp_azure_free(c->azure);
	if (c->aws_ready)
		pp_aws_free(&c->aws);
	pp_modal_auth_free(c->modal);
	free(c);
}

enum pp_cred_kind pp_cred_kind(const struct pp_cred *c)
{
	return c->kind;
}

static int bearer_token(struct pp_cred *c, struct pp_buf *tok, struct pp_error *err)
{
	if (c->kind == PP_CRED_GCP)
		return pp_token_cache_get(c->cache, pp_gcp_fetch, c->gcp, tok, err);
	return pp_token_cache_get(c->cache, pp_azure_fetch, c->azure, tok, err);
}

int pp_cred_apply(struct pp_cred *c, struct pp_http_req *req, struct pp_error *err)
{
	int rc;

	switch (c->kind) {
	case PP_CRED_GCP:
	case PP_CRED_AZURE: {
		struct pp_buf tok, hdr;
		pp_buf_init(&tok, 64 << 10);
		pp_buf_init(&hdr, 64 << 10);
		rc = bearer_token(c, &tok, err);
		if (!rc && (pp_buf_puts(&hdr, "Bearer ") || pp_buf_puts(&hdr, tok.data) ||
			    pp_http_req_set_header(req, "Authorization", hdr.data)))
			rc = pp_fail(err, PP_ENOMEM, "Authorization header: out of memory");
		pp_buf_free(&tok);
		pp_buf_free(&hdr);
		return rc;
	}
	case PP_CRED_AWS:
		rc = pp_aws_ensure(&c->aws, err);
		return rc ? rc : pp_aws_sign_request(&c->aws, req, time(NULL), err);
	case PP_CRED_MODAL: return pp_modal_auth_apply(c->modal, req, err);
	}
	return pp_fail(err, PP_EINVALID, "unknown credential kind");
}

void pp_cred_invalidate(struct pp_cred *c)
{
	switch (c->kind) {
	case PP_CRED_GCP:
	case PP_CRED_AZURE: pp_token_cache_invalidate(c->cache); break;
	case PP_CRED_AWS:
		/* Temporary keys are fetched again; static keys cannot change. */
		if (c->aws.expires)
			c->aws.expires = 1;
		break;
	case PP_CRED_MODAL: pp_modal_auth_invalidate(c->modal); break;
	}
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

void pp_cred_set_aws_scope(struct pp_cred *c, const char *region, const char *service)
{
	if (c->kind != PP_CRED_AWS)
		return;
	/* Keep the previous scope on allocation failure: signing then fails
	 * visibly at the server rather than with a NULL region here. */
	if (region && (!c->aws.region || strcmp(c->aws.region, region)))
		replace_str(&c->aws.region, region);
	if (service && (!c->aws.service || strcmp(c->aws.service, service)))
		replace_str(&c->aws.service, service);
}

const char *pp_cred_aws_region(const struct pp_cred *c)
{
	return c->kind == PP_CRED_AWS ? c->aws.region : NULL;
}

const char *pp_cred_project(const struct pp_cred *c)
{
	if (c->kind == PP_CRED_GCP)
		return pp_gcp_project(c->gcp);
	if (c->kind == PP_CRED_AZURE)
		return pp_azure_subscription(c->azure);
	return NULL;
}

int pp_cred_identity(struct pp_cred *c, struct pp_buf *out, struct pp_error *err)
{
	int rc;

	switch (c->kind) {
	case PP_CRED_GCP: return pp_gcp_identity(c->gcp, out, err);
	case PP_CRED_AZURE: return pp_azure_identity(c->azure, out, err);
	case PP_CRED_AWS:
		if ((rc = pp_aws_ensure(&c->aws, err)))
			return rc;
		if (pp_buf_printf(out, "access key %s (%s)", c->aws.access_key_id,
				  c->aws.source[0] ? c->aws.source : "static"))
			return pp_fail(err, PP_ENOMEM, "identity: out of memory");
		return 0;
	case PP_CRED_MODAL: return pp_modal_auth_identity(c->modal, out, err);
	}
	return pp_fail(err, PP_EINVALID, "unknown credential kind");
}

unsigned long pp_cred_refreshes(const struct pp_cred *c)
{
	switch (c->kind) {
	case PP_CRED_GCP:
	case PP_CRED_AZURE: return pp_token_cache_refreshes(c->cache);
	case PP_CRED_AWS: return c->aws.refreshes;
	case PP_CRED_MODAL: return pp_modal_auth_refreshes(c->modal);
	}
	return 0;
}

long pp_cred_seconds_left(const struct pp_cred *c)
{
	switch (c->kind) {
	case PP_CRED_GCP:
	case PP_CRED_AZURE: return pp_token_cache_seconds_left(c->cache);
	case PP_CRED_AWS:
		if (!c->aws.expires || !c->aws.access_key_id)
			return -1;
		return c->aws.expires > time(NULL) ? (long)(c->aws.expires - time(NULL)) : 0;
	case PP_CRED_MODAL: return -1;
	}
	return -1;
}
