/* Azure Container Instances (azure-container-instance:push): the resource
 * providers registered (Microsoft.ContainerInstance, .ManagedIdentity,
 * .ContainerRegistry: a new subscription has none, and the first run would
 * fail), the resource group, a user-assigned managed identity the container
 * groups run as, a container registry with AcrPull for that identity, and
 * the dispatcher's own identity granted the least custom role of the
 * README's ACI table (or Contributor with --contributor) on the group.
 *
 * Every ARM write is a PUT to a deterministic name: the resource group
 * pushpool-POOL (or the pool's resource_group_name), the identity
 * pushpool-POOL-jobs, the registry pp + the pool's letters and digits + a
 * hash of pool and subscription (5-50 alphanumerics, unique in Azure), role
 * definitions and assignments named by UUIDs derived from what they say
 * (name-based, RFC 4122 version 5: the same scope, principal and role give
 * the same name). Resources carry the tag pushpool-pool=POOL in the PUT
 * itself; role definitions and assignments, which take no tags, carry it at
 * the head of their description. Asynchronous answers (Azure-AsyncOperation
 * or Location) are followed to their end. A provider registration carries
 * nothing: it is recorded in the journal before the register call, and
 * destroy unregisters only recorded ones.
 *
 * Keyless: the grant goes to the identity of the pool's credentials (a
 * service principal, workload identity or managed identity), whose object
 * id is the oid claim of its ARM access token. A role assignment to a
 * principal Entra has just made fails with PrincipalNotFound until the
 * principal replicates: retried. A grant the principal already holds
 * under another name (made by hand) is shown as there and kept.
 *
 * --create-key: an app registration of its own through Microsoft Graph
 * (its uniqueName deterministic, the tag in its tags), its service
 * principal, and one client secret (365 days; secrets of the app without a
 * file here are removed first), written 0600 with a credentials section
 * that records client_secret_expires for `check`. The app is deleted by
 * destroy, its principal and secrets with it.
 *
 * Endpoints: https://management.azure.com and
 * https://graph.microsoft.com/v1.0, or with the pool's endpoint E: ARM
 * paths under E (as the ACI provider uses it) and E/graph/v1.0. */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "auth/auth.h"
#include "lib/clock.h"
#include "lib/file.h"
#include "lib/log.h"
#include "lib/time.h"
#include "provision/provision.h"

#define ARM_DEFAULT   "https://management.azure.com"
#define API_RESOURCES "2021-04-01"
#define API_MSI	      "2023-01-31"
#define API_ACR	      "2023-07-01"
#define API_AUTHZ     "2022-04-01"
/* Built-in role definitions (the same ids in every tenant). */
#define ROLE_ACR_PULL	 "7f951dda-4ed3-4680-a7ca-43fe172d538d"
#define ROLE_CONTRIBUTOR "b24988ac-6180-42a0-ab88-20f7382dd24c"
/* Tries of a role assignment while its principal replicates. */
#define REPLICATION_TRIES 10
#define GRAPH_DEFAULT	  "https://graph.microsoft.com/v1.0"
/* A client secret --create-key makes lives this long (check warns 30 days
 * before it ends). */
#define SECRET_DAYS 365
#define SECRET_FILE "client_secret"
#define SECRET_META "client_secret.json"

static const char *const providers[] = {
	"Microsoft.ContainerInstance",
	"Microsoft.ManagedIdentity",
	"Microsoft.ContainerRegistry",
};

/* The least the dispatcher needs on the group: README's ACI table. */
static const char *const dispatcher_actions[] = {
	"Microsoft.Resources/subscriptions/resourceGroups/read",
	"Microsoft.ContainerInstance/containerGroups/read",
	"Microsoft.ContainerInstance/containerGroups/write",
	"Microsoft.ContainerInstance/containerGroups/delete",
	"Microsoft.ContainerInstance/locations/operations/read",
	"Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
	"Microsoft.Network/virtualNetworks/subnets/join/action",
};

struct az {
	char base[512]; /* ARM root */
	char sub[64];
	char rg[96];
	char location[64];
	char rg_id[256];
	char identity[128]; /* name */
	char identity_id[512];
	char identity_principal[64]; /* once it exists */
	char registry[64];
	char registry_id[512];
	char login_server[128];
	char role_def[40]; /* the custom role's GUID */
	char role_def_id[256];
	char dsp_principal[64]; /* the dispatcher's object id */
	char dsp_type[32];	/* its principalType */
	char tag[PP_NAME_MAX + 32];
	/* --create-key: an app registration of its own, with a secret. */
	char graph[512];      /* Graph's root */
	char app_unique[128]; /* its uniqueName */
	char app_object[64];  /* its object id, once it exists */
	char app_client[64];  /* its appId */
	char sp_id[64];	      /* its service principal's object id */
	char *secret;	      /* made by this apply; secret */
	char secret_key[64];  /* its keyId */
	char secret_end[48];  /* its endDateTime */
};

/* ---- names ---- */

static uint32_t fnv1a(const char *s, uint32_t h)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* An RFC 4122 version-5 UUID of name in a namespace of our own: the same
 * words always give the same id, so a re-run PUTs to the same name. */
static void uuid5(const char *name, char out[37])
{
	static const unsigned char ns[16] = {0x7c, 0x1d, 0x52, 0x0e, 0x3b, 0x55, 0x4d, 0x3a,
					     0x9f, 0x2e, 0x70, 0x75, 0x73, 0x68, 0x70, 0x6c};
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	memset(md, 0, sizeof(md));
	if (c && EVP_DigestInit_ex(c, EVP_sha1(), NULL) && EVP_DigestUpdate(c, ns, sizeof(ns)) &&
	    EVP_DigestUpdate(c, name, strlen(name)))
		EVP_DigestFinal_ex(c, md, &n);
	EVP_MD_CTX_free(c);
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10],
		 md[11], md[12], md[13], md[14], md[15]);
}

/* The pool's name as lower-case letters, digits and single hyphens (ARM
 * resource group and identity names allow more; this is the common set). */
static void slug(const char *pool, size_t max, bool hyphens, char *out, size_t size)
{
	size_t n = 0;

	for (const char *p = pool; *p && n < max && n + 1 < size; p++) {
		char c = (char)tolower((unsigned char)*p);

		if (!isalnum((unsigned char)c)) {
			if (!hyphens || n == 0 || out[n - 1] == '-')
				continue;
			c = '-';
		}
		out[n++] = c;
	}
	while (n && out[n - 1] == '-')
		n--;
	out[n] = '\0';
}

static int url(const struct az *a, char *out, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int url(const struct az *a, char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	size_t n = (size_t)snprintf(out, size, "%s", a->base);

	va_start(ap, fmt);
	if (n < size)
		n += (size_t)vsnprintf(out + n, size - n, fmt, ap);
	va_end(ap);
	return n >= size ? PP_EINVALID : 0;
}

static bool tagged(const struct pp_json *tags, const char *pool)
{
	const char *v = pp_json_get_string(tags, PP_PROV_TAG);

	return v && !strcmp(v, pool);
}

static bool described(const struct pp_json *props, const char *tag)
{
	const char *d = pp_json_get_string(props, "description");

	return d && !strncmp(d, tag, strlen(tag));
}

/* ---- asynchronous operations ---- */

/* Follow an ARM answer to its end: Azure-AsyncOperation (a status body:
 * InProgress until Succeeded, Failed or Canceled) or Location (202 until
 * done). No header: the answer was the end. */
static int follow(struct pp_prov_ctx *ctx, const char *what, const struct pp_http_resp *first,
		  struct pp_error *err)
{
	const char *h = pp_http_resp_header(first, "azure-asyncoperation");
	bool async = h && *h;
	char poll[2048];
	int64_t deadline = pp_mono_ms() + PP_PROV_OP_WAIT_MS;
	int rc = 0;

	if (!async)
		h = first->status == 202 ? pp_http_resp_header(first, "location") : NULL;
	if (!h || !*h)
		return 0;
	snprintf(poll, sizeof(poll), "%s", h);
	for (int attempt = 0;; attempt++) {
		struct pp_http_resp resp;
		struct pp_json *j = NULL;
		const char *status;

		if (pp_mono_ms() > deadline)
			return pp_fail(err, PP_ETRANSIENT, "%s: not done after %d s", what,
				       PP_PROV_OP_WAIT_MS / 1000);
		if ((rc = pp_prov_pause(ctx, attempt, err)))
			return rc;
		rc = pp_prov_send(ctx, "GET", poll, NULL, NULL, 0, &resp, err);
		if (rc) {
			pp_http_resp_free(&resp);
			return rc;
		}
		if (!async) {
			long st = resp.status;

			pp_http_resp_free(&resp);
			if (st != 202)
				return 0;
			continue;
		}
		if (pp_json_parse(resp.body.data, resp.body.len, NULL, &j, err)) {
			pp_http_resp_free(&resp);
			return pp_error_prefix(err, "%s: operation status: ", what);
		}
		pp_http_resp_free(&resp);
		status = pp_json_get_string(j, "status");
		if (status && !strcasecmp(status, "Succeeded")) {
			pp_json_free(j);
			return 0;
		}
		if (status && (!strcasecmp(status, "Failed") || !strcasecmp(status, "Canceled"))) {
			const struct pp_json *e = pp_json_get(j, "error");

			rc = pp_fail(err, PP_EINVALID, "%s: operation %s: %s: %s", what, status,
				     pp_json_get_string(e, "code") ?: "?",
				     pp_json_get_string(e, "message") ?: "no message");
			pp_json_free(j);
			return rc;
		}
		pp_json_free(j);
	}
}

/* A PUT (or POST, DELETE) whose answer may be asynchronous, followed. */
static int write_call(struct pp_prov_ctx *ctx, const char *method, const char *u,
		      const struct pp_json *body, const char *what, struct pp_json **out,
		      struct pp_error *err)
{
	struct pp_http_resp resp;
	char *text = body ? pp_json_to_string(body, PP_JSON_COMPACT) : NULL;
	int rc;

	if (body && !text)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	rc = pp_prov_send(ctx, method, u, NULL, text, text ? strlen(text) : 0, &resp, err);
	free(text);
	if (!rc && out && resp.body.len &&
	    pp_json_parse(resp.body.data, resp.body.len, NULL, out, err))
		rc = pp_error_prefix(err, "%s: answer: ", what);
	if (!rc)
		rc = follow(ctx, what, &resp, err);
	pp_http_resp_free(&resp);
	return rc;
}

/* GET; PP_ENOTFOUND for a 404. */
static int get(struct pp_prov_ctx *ctx, const char *u, struct pp_json **out, struct pp_error *err)
{
	return pp_prov_json(ctx, "GET", u, NULL, out, err);
}

/* An object {"pushpool-pool": POOL} for a PUT's tags. */
static int set_tags(struct pp_prov_ctx *ctx, struct pp_json *body)
{
	struct pp_json *t = pp_json_new(PP_JSON_OBJECT);

	if (!t || pp_json_set_string(t, PP_PROV_TAG, ctx->pool->name) ||
	    pp_json_set(body, "tags", t)) {
		pp_json_free(t);
		return PP_ENOMEM;
	}
	return 0;
}

/* ---- resource providers ---- */

static int provider_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct az *a = ctx->state;
	char u[1024], key[160];
	int rc;

	snprintf(key, sizeof(key), "provider:%s", res->name);
	/* Recorded first: an apply killed after the call still owns it. */
	if ((rc = pp_prov_owned_add(ctx, key, err)) ||
	    (rc = url(a, u, sizeof(u), "/subscriptions/%s/providers/%s/register?api-version=%s",
		      a->sub, res->name, API_RESOURCES)) ||
	    (rc = pp_prov_json(ctx, "POST", u, NULL, NULL, err)))
		return rc;
	/* Registration has no operation to follow: the provider's state says. */
	if ((rc = url(a, u, sizeof(u), "/subscriptions/%s/providers/%s?api-version=%s", a->sub,
		      res->name, API_RESOURCES)))
		return rc;
	int64_t deadline = pp_mono_ms() + PP_PROV_OP_WAIT_MS;

	for (int attempt = 0;; attempt++) {
		struct pp_json *j = NULL;
		const char *st;

		if ((rc = get(ctx, u, &j, err)))
			return rc;
		st = pp_json_get_string(j, "registrationState");
		bool done = st && !strcmp(st, "Registered");

		pp_json_free(j);
		if (done)
			return 0;
		if (pp_mono_ms() > deadline)
			return pp_fail(err, PP_ETRANSIENT, "%s: not registered after %d s",
				       res->name, PP_PROV_OP_WAIT_MS / 1000);
		if ((rc = pp_prov_pause(ctx, attempt, err)))
			return rc;
	}
}

static int provider_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct az *a = ctx->state;
	char u[1024], key[160];
	int rc;

	snprintf(key, sizeof(key), "provider:%s", res->name);
	if ((rc = url(a, u, sizeof(u), "/subscriptions/%s/providers/%s/unregister?api-version=%s",
		      a->sub, res->name, API_RESOURCES)) ||
	    (rc = pp_prov_json(ctx, "POST", u, NULL, NULL, err)))
		return rc;
	return pp_prov_owned_del(ctx, key, err);
}

static const struct pp_prov_kind kind_provider = {
	.name = "resource-provider",
	.create_perms = "Microsoft.Resources/subscriptions/providers/read,*/register/action",
	.destroy_perms = "*/unregister/action",
	.create = provider_create,
	.remove = provider_remove,
};

static int provider_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, const char *ns,
			    struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_prov_res *r = pp_prov_plan_add(plan, &kind_provider, ns, err);
	struct pp_json *j = NULL;
	char u[1024], key[160];
	int rc;

	if (!r)
		return err->code;
	if ((rc = url(a, u, sizeof(u), "/subscriptions/%s/providers/%s?api-version=%s", a->sub, ns,
		      API_RESOURCES)) ||
	    (rc = get(ctx, u, &j, err)))
		return rc;
	const char *st = pp_json_get_string(j, "registrationState");

	snprintf(key, sizeof(key), "provider:%s", ns);
	r->owned = pp_prov_owned_has(ctx, key);
	if (st && !strcmp(st, "Registered")) {
		r->state = PP_PROV_PRESENT;
		if (!r->owned)
			snprintf(r->note, sizeof(r->note), "registered before pushpool: kept");
	} else {
		r->state = PP_PROV_ABSENT;
	}
	pp_json_free(j);
	return 0;
}

/* ---- the resource group ---- */

static int rg_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_json *body = pp_json_new(PP_JSON_OBJECT);
	char u[1024];
	int rc;

	(void)res;
	if (!body || pp_json_set_string(body, "location", a->location) || set_tags(ctx, body))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	else
		rc = url(a, u, sizeof(u), "%s?api-version=%s", a->rg_id, API_RESOURCES);
	if (!rc)
		rc = write_call(ctx, "PUT", u, body, a->rg_id, NULL, err);
	pp_json_free(body);
	return rc;
}

static int rg_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_json *list = NULL;
	char u[1024];
	size_t others = 0;
	int rc;

	/* Deleting a group deletes everything in it: only an empty one goes. */
	if ((rc = url(a, u, sizeof(u), "%s/resources?api-version=%s", a->rg_id, API_RESOURCES)) ||
	    (rc = get(ctx, u, &list, err)))
		return rc == PP_ENOTFOUND ? (pp_error_clear(err), 0) : rc;
	for (size_t i = 0; pp_json_at(pp_json_get(list, "value"), i); i++)
		others++;
	pp_json_free(list);
	if (others) {
		pp_info("provision: %s still holds %zu resource(s) pushpool did not make: kept",
			res->name, others);
		return 0;
	}
	if ((rc = url(a, u, sizeof(u), "%s?api-version=%s", a->rg_id, API_RESOURCES)))
		return rc;
	rc = write_call(ctx, "DELETE", u, NULL, res->name, NULL, err);
	return rc == PP_ENOTFOUND ? (pp_error_clear(err), 0) : rc;
}

static const struct pp_prov_kind kind_rg = {
	.name = "resource-group",
	.create_perms = "Microsoft.Resources/subscriptions/resourceGroups/read,"
			"Microsoft.Resources/subscriptions/resourceGroups/write",
	.destroy_perms = "Microsoft.Resources/subscriptions/resourceGroups/resources/read,"
			 "Microsoft.Resources/subscriptions/resourceGroups/delete",
	.create = rg_create,
	.remove = rg_remove,
};

static int rg_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, bool *present,
		      struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_prov_res *r = pp_prov_plan_add(plan, &kind_rg, a->rg_id, err);
	struct pp_json *j = NULL;
	char u[1024];
	int rc;

	*present = false;
	if (!r)
		return err->code;
	if ((rc = url(a, u, sizeof(u), "%s?api-version=%s", a->rg_id, API_RESOURCES)))
		return rc;
	rc = get(ctx, u, &j, err);
	if (rc == PP_ENOTFOUND) {
		pp_error_clear(err);
		r->state = PP_PROV_ABSENT;
		if (!a->location[0])
			return pp_fail(err, PP_EINVALID,
				       "no location for the resource group %s: set the pool's "
				       "job_variables location or give --location",
				       a->rg);
		return 0;
	}
	if (rc)
		return rc;
	*present = true;
	/* A group the user made is used as it is, and kept. */
	r->owned = tagged(pp_json_get(j, "tags"), ctx->pool->name);
	r->state = PP_PROV_PRESENT;
	if (!r->owned)
		snprintf(r->note, sizeof(r->note), "made before pushpool: used, kept");
	if (!a->location[0])
		snprintf(a->location, sizeof(a->location), "%s",
			 pp_json_get_string(j, "location") ?: "");
	pp_json_free(j);
	return 0;
}

/* ---- tagged resources in the group: the identity and the registry ---- */

static int identity_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_json *body = pp_json_new(PP_JSON_OBJECT), *got = NULL;
	char u[1024];
	int rc;

	if (!body || pp_json_set_string(body, "location", a->location) || set_tags(ctx, body))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	else
		rc = url(a, u, sizeof(u), "%s?api-version=%s", a->identity_id, API_MSI);
	if (!rc)
		rc = write_call(ctx, "PUT", u, body, res->name, &got, err);
	pp_json_free(body);
	if (!rc) {
		const struct pp_json *p = pp_json_get(got, "properties");

		snprintf(a->identity_principal, sizeof(a->identity_principal), "%s",
			 pp_json_get_string(p, "principalId") ?: "");
		if (!a->identity_principal[0])
			rc = pp_fail(err, PP_EINVALID, "%s: the answer has no principalId",
				     res->name);
	}
	pp_json_free(got);
	return rc;
}

static int registry_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_json *body = pp_json_new(PP_JSON_OBJECT), *sku = pp_json_new(PP_JSON_OBJECT);
	struct pp_json *props = pp_json_new(PP_JSON_OBJECT);
	char u[1024];
	int rc;

	/* Pulls go through the identity: no admin user, no password. */
	if (!body || !sku || !props || pp_json_set_string(sku, "name", "Basic") ||
	    pp_json_set_bool(props, "adminUserEnabled", false) ||
	    pp_json_set_string(body, "location", a->location) || set_tags(ctx, body) ||
	    pp_json_set(body, "sku", sku) || (sku = NULL, pp_json_set(body, "properties", props))) {
		pp_json_free(sku);
		pp_json_free(props);
		pp_json_free(body);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	rc = url(a, u, sizeof(u), "%s?api-version=%s", a->registry_id, API_ACR);
	if (!rc)
		rc = write_call(ctx, "PUT", u, body, res->name, NULL, err);
	pp_json_free(body);
	return rc;
}

/* res->data: the resource's ARM id; api: its api-version. */
static int tagged_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, const char *api,
			 struct pp_error *err)
{
	struct az *a = ctx->state;
	char u[1024];
	int rc = url(a, u, sizeof(u), "%s?api-version=%s", res->data, api);

	if (!rc)
		rc = write_call(ctx, "DELETE", u, NULL, res->name, NULL, err);
	return rc == PP_ENOTFOUND ? (pp_error_clear(err), 0) : rc;
}

static int identity_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	return tagged_remove(ctx, res, API_MSI, err);
}

static int registry_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	return tagged_remove(ctx, res, API_ACR, err);
}

static const struct pp_prov_kind kind_identity = {
	.name = "managed-identity",
	.create_perms = "Microsoft.ManagedIdentity/userAssignedIdentities/read,"
			"Microsoft.ManagedIdentity/userAssignedIdentities/write",
	.destroy_perms = "Microsoft.ManagedIdentity/userAssignedIdentities/delete",
	.create = identity_create,
	.remove = identity_remove,
};

static const struct pp_prov_kind kind_registry = {
	.name = "container-registry",
	.create_perms = "Microsoft.ContainerRegistry/registries/read,"
			"Microsoft.ContainerRegistry/registries/write",
	.destroy_perms = "Microsoft.ContainerRegistry/registries/delete",
	.create = registry_create,
	.remove = registry_remove,
};

/* A tagged resource by id: absent, ours, or foreign (the name is taken). */
static int tagged_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan,
			  const struct pp_prov_kind *kind, const char *id, const char *api,
			  bool rg_there, struct pp_json **found, struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_prov_res *r = pp_prov_plan_add(plan, kind, strrchr(id, '/') + 1, err);
	struct pp_json *j = NULL;
	char u[1024];
	int rc;

	*found = NULL;
	if (!r)
		return err->code;
	if (!(r->data = strdup(id)))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	r->state = PP_PROV_ABSENT;
	if (!rg_there)
		return 0;
	if ((rc = url(a, u, sizeof(u), "%s?api-version=%s", id, api)))
		return rc;
	rc = get(ctx, u, &j, err);
	if (rc == PP_ENOTFOUND) {
		pp_error_clear(err);
		return 0;
	}
	if (rc)
		return rc;
	r->owned = tagged(pp_json_get(j, "tags"), ctx->pool->name);
	r->state = r->owned ? PP_PROV_PRESENT : PP_PROV_FOREIGN;
	if (!r->owned)
		snprintf(r->note, sizeof(r->note), "no %s=%s tag", PP_PROV_TAG, ctx->pool->name);
	*found = j;
	return 0;
}

/* ---- role definition (the dispatcher's least role) ---- */

static int roledef_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_json *body = pp_json_new(PP_JSON_OBJECT), *props = pp_json_new(PP_JSON_OBJECT);
	struct pp_json *perms = pp_json_new(PP_JSON_ARRAY), *perm = pp_json_new(PP_JSON_OBJECT);
	struct pp_json *actions = pp_json_new(PP_JSON_ARRAY), *scopes = pp_json_new(PP_JSON_ARRAY);
	char u[1024], name[PP_NAME_MAX + 64], desc[PP_NAME_MAX + 160];
	bool bad = !body || !props || !perms || !perm || !actions || !scopes;

	(void)res;
	snprintf(name, sizeof(name), "pushpool dispatcher %s (%s)", ctx->pool->name, a->rg);
	snprintf(desc, sizeof(desc),
		 "%s: what the pushpool dispatcher needs to run pool %s's container groups", a->tag,
		 ctx->pool->name);
	for (size_t i = 0; !bad && i < sizeof(dispatcher_actions) / sizeof(*dispatcher_actions);
	     i++)
		bad = pp_json_append(actions, pp_json_new_string(dispatcher_actions[i])) != 0;
	bad = bad || pp_json_append(scopes, pp_json_new_string(a->rg_id)) ||
	      pp_json_set(perm, "actions", actions) || (actions = NULL, false) ||
	      pp_json_append(perms, perm) || (perm = NULL, false) ||
	      pp_json_set_string(props, "roleName", name) ||
	      pp_json_set_string(props, "description", desc) ||
	      pp_json_set_string(props, "type", "CustomRole") ||
	      pp_json_set(props, "permissions", perms) || (perms = NULL, false) ||
	      pp_json_set(props, "assignableScopes", scopes) || (scopes = NULL, false) ||
	      pp_json_set(body, "properties", props) || (props = NULL, false);
	pp_json_free(actions);
	pp_json_free(perm);
	pp_json_free(perms);
	pp_json_free(scopes);
	pp_json_free(props);
	int rc = bad ? pp_fail(err, PP_ENOMEM, "out of memory")
		     : url(a, u, sizeof(u), "%s?api-version=%s", a->role_def_id, API_AUTHZ);

	if (!rc)
		rc = write_call(ctx, "PUT", u, body, a->role_def_id, NULL, err);
	pp_json_free(body);
	return rc;
}

static int roledef_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct az *a = ctx->state;
	char u[1024];
	int rc = url(a, u, sizeof(u), "%s?api-version=%s", a->role_def_id, API_AUTHZ);

	(void)res;
	if (!rc)
		rc = pp_prov_json(ctx, "DELETE", u, NULL, NULL, err);
	return rc == PP_ENOTFOUND ? (pp_error_clear(err), 0) : rc;
}

static const struct pp_prov_kind kind_roledef = {
	.name = "role-definition",
	.create_perms = "Microsoft.Authorization/roleDefinitions/read,"
			"Microsoft.Authorization/roleDefinitions/write",
	.destroy_perms = "Microsoft.Authorization/roleDefinitions/delete",
	.create = roledef_create,
	.remove = roledef_remove,
};

/* ---- role assignments ---- */

/* res->data: "SCOPE\nROLE_DEFINITION_ID\nPRINCIPAL\nTYPE"; the name is
 * uuid5 of the first three (computed when planned; the principal of a new
 * identity is known only once it exists, so create computes it again). */
struct ra {
	char scope[512], role[256], principal[64], type[32], id[700];
};

static void ra_parse(const char *data, struct ra *r)
{
	memset(r, 0, sizeof(*r));
	sscanf(data, "%511[^\n]\n%255[^\n]\n%63[^\n]\n%31[^\n]", r->scope, r->role, r->principal,
	       r->type);
}

static void ra_id(struct ra *r)
{
	char words[900], guid[37];

	snprintf(words, sizeof(words), "%s|%s|%s", r->scope, r->principal, r->role);
	uuid5(words, guid);
	snprintf(r->id, sizeof(r->id), "%s/providers/Microsoft.Authorization/roleAssignments/%s",
		 r->scope, guid);
}

static int ra_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct az *a = ctx->state;
	struct ra r;
	char u[1400], desc[PP_NAME_MAX + 64];
	int rc = 0;

	ra_parse(res->data, &r);
	/* "-": the jobs' identity, "=": the app's service principal, both
	 * known only once they exist. */
	if (!strcmp(r.principal, "-"))
		snprintf(r.principal, sizeof(r.principal), "%s", a->identity_principal);
	else if (!strcmp(r.principal, "="))
		snprintf(r.principal, sizeof(r.principal), "%s", a->sp_id);
	if (!r.principal[0])
		return pp_fail(err, PP_EINVALID, "%s: the identity's principal is not known",
			       res->name);
	ra_id(&r);
	snprintf(desc, sizeof(desc), "%s: granted by pushpool provision", a->tag);
	struct pp_json *body = pp_json_new(PP_JSON_OBJECT), *props = pp_json_new(PP_JSON_OBJECT);

	if (!body || !props || pp_json_set_string(props, "roleDefinitionId", r.role) ||
	    pp_json_set_string(props, "principalId", r.principal) ||
	    pp_json_set_string(props, "principalType", r.type) ||
	    pp_json_set_string(props, "description", desc) ||
	    pp_json_set(body, "properties", props)) {
		pp_json_free(props);
		pp_json_free(body);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if ((rc = url(a, u, sizeof(u), "%s?api-version=%s", r.id, API_AUTHZ))) {
		pp_json_free(body);
		return rc;
	}
	for (int attempt = 0; attempt < REPLICATION_TRIES; attempt++) {
		rc = pp_prov_json(ctx, "PUT", u, body, NULL, err);
		if (!rc || !strstr(err->msg, "PrincipalNotFound"))
			break;
		pp_info("provision: principal %s not yet replicated; trying again", r.principal);
		if ((rc = pp_prov_pause(ctx, attempt + 2, err)))
			break;
		rc = PP_ENOTFOUND;
	}
	pp_json_free(body);
	return rc;
}

static int ra_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct az *a = ctx->state;
	struct ra r;
	char u[1400];
	int rc;

	ra_parse(res->data, &r);
	ra_id(&r);
	if ((rc = url(a, u, sizeof(u), "%s?api-version=%s", r.id, API_AUTHZ)))
		return rc;
	rc = pp_prov_json(ctx, "DELETE", u, NULL, NULL, err);
	return rc == PP_ENOTFOUND ? (pp_error_clear(err), 0) : rc;
}

static const struct pp_prov_kind kind_ra = {
	.name = "role-assignment",
	.create_perms = "Microsoft.Authorization/roleAssignments/read,"
			"Microsoft.Authorization/roleAssignments/write",
	.destroy_perms = "Microsoft.Authorization/roleAssignments/delete",
	.create = ra_create,
	.remove = ra_remove,
};

/* Not under our name: the same role may be granted to the principal at
 * this scope by someone else (RoleAssignments_ListForScope filtered by
 * principalId). Then it is there, not ours, and kept; a PUT of ours would
 * only meet RoleAssignmentExists. */
static int ra_granted_before(struct pp_prov_ctx *ctx, struct pp_prov_res *r, const struct ra *ra,
			     struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_json *list = NULL;
	char u[1400];
	int rc = url(a, u, sizeof(u),
		     "%s/providers/Microsoft.Authorization/roleAssignments?api-version=%s"
		     "&$filter=principalId%%20eq%%20%%27%s%%27",
		     ra->scope, API_AUTHZ, ra->principal);

	if (rc || (rc = get(ctx, u, &list, err)))
		return rc;
	pp_json_foreach (x, pp_json_get(list, "value")) {
		const struct pp_json *p = pp_json_get(x, "properties");

		if (!strcasecmp(pp_json_get_string(p, "roleDefinitionId") ?: "", ra->role) &&
		    !strcasecmp(pp_json_get_string(p, "scope") ?: "", ra->scope)) {
			r->state = PP_PROV_PRESENT;
			snprintf(r->note, sizeof(r->note), "granted before pushpool (%s): kept",
				 pp_json_get_string(x, "name") ?: "?");
			break;
		}
	}
	pp_json_free(list);
	return 0;
}

/* principal "-": the jobs' identity, known once it exists. */
static int ra_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, const char *label,
		      const char *scope, const char *role, const char *principal, const char *type,
		      bool scope_there, struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_prov_res *r = pp_prov_plan_add(plan, &kind_ra, label, err);
	struct pp_json *j = NULL;
	struct ra ra;
	char u[1400];
	int rc;

	if (!r)
		return err->code;
	if (asprintf(&r->data, "%s\n%s\n%s\n%s", scope, role, principal, type) < 0) {
		r->data = NULL;
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	r->state = PP_PROV_ABSENT;
	if (!scope_there || !strcmp(principal, "-") || !strcmp(principal, "="))
		return 0;
	ra_parse(r->data, &ra);
	ra_id(&ra);
	if ((rc = url(a, u, sizeof(u), "%s?api-version=%s", ra.id, API_AUTHZ)))
		return rc;
	rc = get(ctx, u, &j, err);
	if (rc == PP_ENOTFOUND) {
		pp_error_clear(err);
		return ra_granted_before(ctx, r, &ra, err);
	}
	if (rc)
		return rc;
	r->owned = described(pp_json_get(j, "properties"), a->tag);
	r->state = r->owned ? PP_PROV_PRESENT : PP_PROV_FOREIGN;
	if (!r->owned)
		snprintf(r->note, sizeof(r->note), "description does not start with \"%s\"",
			 a->tag);
	pp_json_free(j);
	return 0;
}

/* ---- --create-key: an app registration through Microsoft Graph ---- */

/* A Graph call: the credential asks for Graph tokens for it, then ARM's
 * again. */
static int graph_json(struct pp_prov_ctx *ctx, const char *method, const char *path,
		      const struct pp_json *body, struct pp_json **out, struct pp_error *err)
{
	struct az *a = ctx->state;
	char u[1024];
	int rc;

	if ((size_t)snprintf(u, sizeof(u), "%s%s", a->graph, path) >= sizeof(u))
		return pp_fail(err, PP_EINVALID, "Graph URL too long");
	pp_cred_set_scope(ctx->cred, NULL, "graph");
	rc = pp_prov_json(ctx, method, u, body, out, err);
	pp_cred_set_scope(ctx->cred, NULL, "arm");
	return rc;
}

static bool app_tagged(const struct pp_json *app, const char *tag)
{
	pp_json_foreach (t, pp_json_get(app, "tags"))
		if (t->str && !strcmp(t->str, tag))
			return true;
	return false;
}

static int app_get(struct pp_prov_ctx *ctx, struct pp_json **out, struct pp_error *err)
{
	struct az *a = ctx->state;
	char path[256];

	snprintf(path, sizeof(path), "/applications(uniqueName='%s')", a->app_unique);
	return graph_json(ctx, "GET", path, NULL, out, err);
}

static void app_learn(struct az *a, const struct pp_json *app)
{
	snprintf(a->app_object, sizeof(a->app_object), "%s", pp_json_get_string(app, "id") ?: "");
	snprintf(a->app_client, sizeof(a->app_client), "%s",
		 pp_json_get_string(app, "appId") ?: "");
}

static int app_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_json *body = pp_json_new(PP_JSON_OBJECT), *tags = pp_json_new(PP_JSON_ARRAY);
	struct pp_json *got = NULL;
	char name[PP_NAME_MAX + 64];
	int rc;

	snprintf(name, sizeof(name), "pushpool dispatcher %s", ctx->pool->name);
	if (!body || !tags || pp_json_append(tags, pp_json_new_string(a->tag)) ||
	    pp_json_set_string(body, "displayName", name) ||
	    pp_json_set_string(body, "uniqueName", a->app_unique) ||
	    pp_json_set(body, "tags", tags)) {
		pp_json_free(tags);
		pp_json_free(body);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	rc = graph_json(ctx, "POST", "/applications", body, &got, err);
	pp_json_free(body);
	if (rc && rc != PP_ENOMEM) {
		/* Made by a killed apply: the uniqueName is taken. Ours if tagged. */
		struct pp_error first = *err;

		pp_json_free(got);
		got = NULL;
		pp_error_clear(err);
		if (app_get(ctx, &got, err) || !app_tagged(got, a->tag)) {
			pp_json_free(got);
			*err = first;
			return first.code;
		}
		rc = 0;
	}
	if (!rc)
		app_learn(a, got);
	pp_json_free(got);
	if (!rc && !a->app_object[0])
		rc = pp_fail(err, PP_EINVALID, "%s: the answer has no id", res->name);
	return rc;
}

static int app_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	char path[256];
	int rc;

	snprintf(path, sizeof(path), "/applications/%s", res->data);
	rc = graph_json(ctx, "DELETE", path, NULL, NULL, err);
	return rc == PP_ENOTFOUND ? (pp_error_clear(err), 0) : rc;
}

static const struct pp_prov_kind kind_app = {
	.name = "app-registration",
	.create_perms = "Graph Application.ReadWrite.OwnedBy",
	.destroy_perms = "Graph Application.ReadWrite.OwnedBy",
	.create = app_create,
	.remove = app_remove,
};

static int sp_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_json *body = pp_json_new(PP_JSON_OBJECT), *tags = pp_json_new(PP_JSON_ARRAY);
	struct pp_json *got = NULL;
	char path[256];
	int rc;

	if (!body || !tags || pp_json_append(tags, pp_json_new_string(a->tag)) ||
	    pp_json_set_string(body, "appId", a->app_client) || pp_json_set(body, "tags", tags)) {
		pp_json_free(tags);
		pp_json_free(body);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	rc = graph_json(ctx, "POST", "/servicePrincipals", body, &got, err);
	pp_json_free(body);
	if (rc == PP_ECONFLICT) {
		/* Made by a killed apply: the app's one principal. */
		pp_error_clear(err);
		snprintf(path, sizeof(path), "/servicePrincipals(appId='%s')", a->app_client);
		rc = graph_json(ctx, "GET", path, NULL, &got, err);
	}
	if (!rc)
		snprintf(a->sp_id, sizeof(a->sp_id), "%s", pp_json_get_string(got, "id") ?: "");
	pp_json_free(got);
	if (!rc && !a->sp_id[0])
		rc = pp_fail(err, PP_EINVALID, "%s: the answer has no id", res->name);
	return rc;
}

static const struct pp_prov_kind kind_sp = {
	.name = "service-principal",
	.create_perms = "Graph Application.ReadWrite.OwnedBy",
	.destroy_perms = "(deleted with the app)",
	.create = sp_create,
};

/* The keyId of the secret an earlier apply wrote here; "" if none. */
static void local_secret(const struct pp_prov_ctx *ctx, char *key, size_t ksize, char *end,
			 size_t esize)
{
	char path[4200];
	struct pp_json *j = NULL;

	key[0] = end[0] = '\0';
	if (!ctx->opts->keydir)
		return;
	/* Both files, or the secret is lost here. */
	snprintf(path, sizeof(path), "%s/" SECRET_FILE, ctx->opts->keydir);
	if (access(path, R_OK))
		return;
	snprintf(path, sizeof(path), "%s/" SECRET_META, ctx->opts->keydir);
	if (!pp_json_parse_file(path, NULL, &j, NULL)) {
		snprintf(key, ksize, "%s", pp_json_get_string(j, "keyId") ?: "");
		snprintf(end, esize, "%s", pp_json_get_string(j, "endDateTime") ?: "");
	}
	pp_json_free(j);
}

static int secret_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_json *app = NULL, *got = NULL, *body, *pc;
	char path[256], end[PP_TIME_LEN];
	int rc;

	/* No secret file here: the app's secrets of ours are orphans (an apply
	 * killed between addPassword and writing the file). */
	if ((rc = app_get(ctx, &app, err)))
		return rc;
	pp_json_foreach (p, pp_json_get(app, "passwordCredentials")) {
		const char *d = pp_json_get_string(p, "displayName");
		struct pp_json *rm = pp_json_new(PP_JSON_OBJECT);

		if (!d || strcmp(d, a->tag)) {
			pp_json_free(rm);
			continue;
		}
		snprintf(path, sizeof(path), "/applications/%s/removePassword", a->app_object);
		rc = !rm || pp_json_set_string(rm, "keyId", pp_json_get_string(p, "keyId") ?: "")
			     ? pp_fail(err, PP_ENOMEM, "out of memory")
			     : graph_json(ctx, "POST", path, rm, NULL, err);
		pp_json_free(rm);
		if (rc)
			break;
	}
	pp_json_free(app);
	if (rc)
		return rc;
	pp_time_format((pp_wall_ms() / 1000 + (int64_t)SECRET_DAYS * 86400) * 1000, false, end);
	body = pp_json_new(PP_JSON_OBJECT);
	pc = pp_json_new(PP_JSON_OBJECT);
	if (!body || !pc || pp_json_set_string(pc, "displayName", a->tag) ||
	    pp_json_set_string(pc, "endDateTime", end) ||
	    pp_json_set(body, "passwordCredential", pc)) {
		pp_json_free(pc);
		pp_json_free(body);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	snprintf(path, sizeof(path), "/applications/%s/addPassword", a->app_object);
	rc = graph_json(ctx, "POST", path, body, &got, err);
	pp_json_free(body);
	const char *text = pp_json_get_string(got, "secretText");

	if (!rc && (!text || !*text || !(a->secret = strdup(text))))
		rc = pp_fail(err, PP_EINVALID, "%s: the answer has no secretText", res->name);
	if (!rc) {
		pp_secret_register(a->secret);
		snprintf(a->secret_key, sizeof(a->secret_key), "%s",
			 pp_json_get_string(got, "keyId") ?: "");
		snprintf(a->secret_end, sizeof(a->secret_end), "%s",
			 pp_json_get_string(got, "endDateTime") ?: end);
	}
	pp_json_free(got);
	return rc;
}

static const struct pp_prov_kind kind_secret = {
	.name = "client-secret",
	.create_perms = "Graph Application.ReadWrite.OwnedBy (addPassword, removePassword)",
	.destroy_perms = "(deleted with the app)",
	.create = secret_create,
};

/* The app, its principal and its secret: planned with --create-key, and
 * shown (so destroy finds them) whenever an earlier keyed apply made them. */
static int app_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_json *app = NULL, *sp = NULL;
	struct pp_prov_res *r;
	char name[PP_PROV_NAME_MAX], path[256], key[64], end[48];
	int rc = app_get(ctx, &app, err);

	if (rc == PP_ENOTFOUND) {
		pp_error_clear(err);
		rc = 0;
		if (!ctx->opts->create_key)
			return 0;
	} else if (rc) {
		return rc;
	}
	if (!(r = pp_prov_plan_add(plan, &kind_app, a->app_unique, err))) {
		pp_json_free(app);
		return err->code;
	}
	r->state = PP_PROV_ABSENT;
	if (app) {
		r->owned = app_tagged(app, a->tag);
		r->state = r->owned ? PP_PROV_PRESENT : PP_PROV_FOREIGN;
		if (!r->owned)
			snprintf(r->note, sizeof(r->note), "no %s tag", a->tag);
		app_learn(a, app);
		if (!(r->data = strdup(a->app_object))) {
			pp_json_free(app);
			return pp_fail(err, PP_ENOMEM, "out of memory");
		}
	}
	bool ours = app && r->owned;

	snprintf(name, sizeof(name), "of %s", a->app_unique);
	if (!(r = pp_prov_plan_add(plan, &kind_sp, name, err))) {
		pp_json_free(app);
		return err->code;
	}
	r->state = PP_PROV_ABSENT;
	r->owned = ours;
	if (ours) {
		snprintf(path, sizeof(path), "/servicePrincipals(appId='%s')", a->app_client);
		rc = graph_json(ctx, "GET", path, NULL, &sp, err);
		if (rc == PP_ENOTFOUND) {
			pp_error_clear(err);
			rc = 0;
		} else if (!rc) {
			r->state = PP_PROV_PRESENT;
			snprintf(a->sp_id, sizeof(a->sp_id), "%s",
				 pp_json_get_string(sp, "id") ?: "");
		}
		pp_json_free(sp);
	}
	snprintf(name, sizeof(name), "of %s (" SECRET_FILE ")", a->app_unique);
	if (!rc && !(r = pp_prov_plan_add(plan, &kind_secret, name, err)))
		rc = err->code;
	if (!rc) {
		size_t n = 0;
		bool found = false;

		r->state = PP_PROV_ABSENT;
		r->owned = ours;
		local_secret(ctx, key, sizeof(key), end, sizeof(end));
		pp_json_foreach (p, pp_json_get(app, "passwordCredentials")) {
			const char *d = pp_json_get_string(p, "displayName");

			if (!d || strcmp(d, a->tag))
				continue;
			n++;
			found |= key[0] && !strcmp(pp_json_get_string(p, "keyId") ?: "", key);
		}
		if (found) {
			r->state = PP_PROV_PRESENT;
			snprintf(r->note, sizeof(r->note), "expires %s", end);
		} else if (n) {
			snprintf(r->note, sizeof(r->note),
				 "%zu secret(s) without a file here: removed first", n);
		}
	}
	pp_json_free(app);
	return rc;
}

/* ---- the dispatcher's identity ---- */

static int b64url_json(const char *in, size_t n, struct pp_json **out, struct pp_error *err)
{
	char *b = malloc(n + 4);
	unsigned char *raw = malloc(n + 4);
	size_t len = 0;
	int got;

	if (!b || !raw) {
		free(b);
		free(raw);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		b[len++] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	while (len % 4)
		b[len++] = '=';
	got = EVP_DecodeBlock(raw, (unsigned char *)b, (int)len);
	free(b);
	if (got < 0) {
		free(raw);
		return pp_fail(err, PP_EINVALID, "the access token is not a JWT");
	}
	while (got > 0 && raw[got - 1] == '\0')
		got--; /* the padding decodes as NULs */
	int rc = pp_json_parse((char *)raw, (size_t)got, NULL, out, err);

	free(raw);
	return rc;
}

/* The object id (oid claim) and kind of the pool's identity, from the
 * access token it gets for ARM: Entra writes both into every token. */
static int dispatcher_principal(struct pp_prov_ctx *ctx, struct az *a, struct pp_error *err)
{
	struct pp_cred *c;
	struct pp_http_req req;
	struct pp_json *claims = NULL;
	const char *tok = NULL, *dot1, *dot2;
	int rc;

	if ((rc = pp_prov_pool_cred(ctx, &c, err)))
		return rc;
	pp_http_req_init(&req, "GET", a->base);
	if (!req.url) {
		pp_http_req_free(&req);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if ((rc = pp_cred_apply(c, &req, err))) {
		pp_http_req_free(&req);
		return rc;
	}
	for (struct pp_http_header *h = req.headers; h; h = h->next)
		if (!strcasecmp(h->name, "Authorization") && !strncasecmp(h->value, "Bearer ", 7))
			tok = h->value + 7;
	dot1 = tok ? strchr(tok, '.') : NULL;
	dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (!dot2)
		rc = pp_fail(err, PP_EINVALID,
			     "the pool's Azure token is not a JWT: its object id is unknown");
	else
		rc = b64url_json(dot1 + 1, (size_t)(dot2 - dot1 - 1), &claims, err);
	pp_http_req_free(&req);
	if (rc)
		return pp_error_prefix(err, "the dispatcher's identity: ");
	const char *oid = pp_json_get_string(claims, "oid");
	const char *idtyp = pp_json_get_string(claims, "idtyp");

	if (!oid || strlen(oid) >= sizeof(a->dsp_principal)) {
		pp_json_free(claims);
		return pp_fail(err, PP_EINVALID,
			       "the pool's Azure token names no object id (oid claim)");
	}
	snprintf(a->dsp_principal, sizeof(a->dsp_principal), "%s", oid);
	/* Apps and managed identities are service principals; a user's token
	 * (idtyp "user") is a user. */
	snprintf(a->dsp_type, sizeof(a->dsp_type), "%s",
		 idtyp && !strcmp(idtyp, "user") ? "User" : "ServicePrincipal");
	pp_json_free(claims);
	return 0;
}

/* ---- the provisioner ---- */

static bool name_ok(const char *s, const char *extra, size_t max)
{
	size_t n = strlen(s);

	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(extra, *p))
			return false;
	return n > 0 && n <= max;
}

static int az_open(struct pp_prov_ctx *ctx, struct pp_error *err)
{
	struct az *a = calloc(1, sizeof(*a));
	const char *sub = pp_json_get_string(ctx->vars, "subscription_id");
	const char *rg = pp_json_get_string(ctx->vars, "resource_group_name");
	const char *loc = ctx->opts->location ?: pp_json_get_string(ctx->vars, "location");
	char s[64], words[256], guid[37];

	if (!a)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	ctx->state = a;
	if (!sub || !*sub)
		sub = pp_cred_project(ctx->cred);
	if (!sub || !name_ok(sub, "-", 63))
		return pp_fail(err, PP_EINVALID,
			       "no Azure subscription: set the pool's job_variables "
			       "subscription_id or the credentials' subscription_id");
	slug(ctx->pool->name, 60, true, s, sizeof(s));
	if (!s[0])
		return pp_fail(err, PP_EINVALID, "pool %s: no letter or digit in its name",
			       ctx->pool->name);
	snprintf(a->sub, sizeof(a->sub), "%s", sub);
	if (rg && *rg)
		snprintf(a->rg, sizeof(a->rg), "%s", rg);
	else
		snprintf(a->rg, sizeof(a->rg), "pushpool-%s", s);
	if (!name_ok(a->rg, "-_.()", 90))
		return pp_fail(err, PP_EINVALID, "invalid resource group name %s", a->rg);
	if (loc && *loc) {
		if (!name_ok(loc, "", 40))
			return pp_fail(err, PP_EINVALID, "invalid location %s", loc);
		snprintf(a->location, sizeof(a->location), "%s", loc);
	}
	snprintf(a->base, sizeof(a->base), "%s", ctx->endpoint ? ctx->endpoint : ARM_DEFAULT);
	/* The pool's endpoint serves Graph under /graph/v1.0 (the mock's
	 * layout). */
	if (ctx->endpoint)
		snprintf(a->graph, sizeof(a->graph), "%s/graph/v1.0", ctx->endpoint);
	else
		snprintf(a->graph, sizeof(a->graph), GRAPH_DEFAULT);
	snprintf(a->tag, sizeof(a->tag), "%s=%s", PP_PROV_TAG, ctx->pool->name);
	snprintf(a->rg_id, sizeof(a->rg_id), "/subscriptions/%s/resourceGroups/%s", a->sub, a->rg);
	snprintf(a->identity, sizeof(a->identity), "pushpool-%.60s-jobs", s);
	snprintf(a->identity_id, sizeof(a->identity_id),
		 "%s/providers/Microsoft.ManagedIdentity/userAssignedIdentities/%s", a->rg_id,
		 a->identity);
	/* Registry names are global: letters and digits of the pool, and a
	 * hash of pool and subscription so two subscriptions never collide. */
	slug(ctx->pool->name, 32, false, s, sizeof(s));
	snprintf(words, sizeof(words), "%s|%s", ctx->pool->name, a->sub);
	snprintf(a->registry, sizeof(a->registry), "pp%s%08x", s, fnv1a(words, 2166136261u));
	snprintf(a->registry_id, sizeof(a->registry_id),
		 "%s/providers/Microsoft.ContainerRegistry/registries/%s", a->rg_id, a->registry);
	snprintf(a->login_server, sizeof(a->login_server), "%s.azurecr.io", a->registry);
	/* App uniqueNames are unique in the tenant: the pool's, and a hash of
	 * pool and subscription. */
	slug(ctx->pool->name, 60, true, s, sizeof(s));
	snprintf(words, sizeof(words), "%s|%s", ctx->pool->name, a->sub);
	snprintf(a->app_unique, sizeof(a->app_unique), "pushpool-%s-%08x", s,
		 fnv1a(words, 2166136261u));
	snprintf(words, sizeof(words), "role|%s|%s", a->rg_id, ctx->pool->name);
	uuid5(words, guid);
	snprintf(a->role_def, sizeof(a->role_def), "%s", guid);
	snprintf(a->role_def_id, sizeof(a->role_def_id),
		 "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s", a->sub,
		 a->role_def);
	return 0;
}

static int roledef_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, bool rg_there,
			   bool *present, struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_prov_res *r = pp_prov_plan_add(plan, &kind_roledef, a->role_def, err);
	struct pp_json *j = NULL;
	char u[1024];
	int rc;

	*present = false;
	if (!r)
		return err->code;
	r->state = PP_PROV_ABSENT;
	if (!rg_there)
		return 0;
	if ((rc = url(a, u, sizeof(u), "%s?api-version=%s", a->role_def_id, API_AUTHZ)))
		return rc;
	rc = get(ctx, u, &j, err);
	if (rc == PP_ENOTFOUND) {
		pp_error_clear(err);
		return 0;
	}
	if (rc)
		return rc;
	*present = true;
	r->owned = described(pp_json_get(j, "properties"), a->tag);
	r->state = r->owned ? PP_PROV_PRESENT : PP_PROV_FOREIGN;
	if (!r->owned)
		snprintf(r->note, sizeof(r->note), "description does not start with \"%s\"",
			 a->tag);
	pp_json_free(j);
	return 0;
}

/* The dispatcher's role on the group for principal (who: its label): the
 * one planned, and in destroy mode whichever an earlier apply granted. */
static int grant_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, const char *who,
			 const char *principal, const char *type, bool rg_there,
			 struct pp_error *err)
{
	struct az *a = ctx->state;
	char contributor[256], label[PP_PROV_NAME_MAX];
	int rc = 0;

	snprintf(contributor, sizeof(contributor),
		 "/subscriptions/%s/providers/Microsoft.Authorization/"
		 "roleDefinitions/" ROLE_CONTRIBUTOR,
		 a->sub);
	for (int pass = 0; !rc && pass < 2; pass++) {
		bool contrib = pass ? !ctx->opts->contributor : ctx->opts->contributor;
		size_t n = plan->n;

		if (pass && ctx->mode != PP_PROV_MODE_DESTROY)
			break;
		snprintf(label, sizeof(label), "%s on %s for %s",
			 contrib ? "Contributor" : "pushpool dispatcher role", a->rg, who);
		rc = ra_inspect(ctx, plan, label, a->rg_id, contrib ? contributor : a->role_def_id,
				principal, type, rg_there, err);
		if (!rc && pass && plan->v[n].state == PP_PROV_ABSENT) {
			free(plan->v[n].data); /* nothing to show */
			plan->v[n].data = NULL;
			plan->n = n;
		}
	}
	return rc;
}

static int az_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_json *ident = NULL, *reg = NULL;
	bool rg_there = false, def_there = false, destroy = ctx->mode == PP_PROV_MODE_DESTROY;
	char label[PP_PROV_NAME_MAX];
	int rc = 0;

	for (size_t i = 0; !rc && i < sizeof(providers) / sizeof(*providers); i++)
		rc = provider_inspect(ctx, plan, providers[i], err);
	if (!rc)
		rc = rg_inspect(ctx, plan, &rg_there, err);
	if (!rc)
		rc = tagged_inspect(ctx, plan, &kind_identity, a->identity_id, API_MSI, rg_there,
				    &ident, err);
	if (ident) {
		const struct pp_json *p = pp_json_get(ident, "properties");

		snprintf(a->identity_principal, sizeof(a->identity_principal), "%s",
			 pp_json_get_string(p, "principalId") ?: "");
		pp_json_free(ident);
	}
	if (!rc)
		rc = tagged_inspect(ctx, plan, &kind_registry, a->registry_id, API_ACR, rg_there,
				    &reg, err);
	bool reg_there = reg != NULL;

	pp_json_free(reg);
	if (!rc) {
		char acr_pull[256];

		snprintf(label, sizeof(label), "AcrPull on %s for %s", a->registry, a->identity);
		snprintf(acr_pull, sizeof(acr_pull),
			 "/subscriptions/%s/providers/Microsoft.Authorization/"
			 "roleDefinitions/" ROLE_ACR_PULL,
			 a->sub);
		/* "-": the identity's principal, learnt when create makes it. */
		rc = ra_inspect(ctx, plan, label, a->registry_id, acr_pull,
				a->identity_principal[0] ? a->identity_principal : "-",
				"ServicePrincipal", reg_there, err);
	}
	/* The custom role: planned unless --contributor, and always shown in
	 * destroy mode when an earlier apply made it. */
	if (!rc && !ctx->opts->contributor)
		rc = roledef_inspect(ctx, plan, rg_there, &def_there, err);
	else if (!rc && destroy) {
		size_t n = plan->n;

		rc = roledef_inspect(ctx, plan, rg_there, &def_there, err);
		if (!rc && !def_there)
			plan->n = n; /* nothing to show */
	}
	bool keyed = ctx->opts->create_key;

	if (!rc)
		rc = app_inspect(ctx, plan, err);
	/* Keyless: the pool's own identity (in destroy mode too, whatever the
	 * flags; not twice when the pool's identity is the app). */
	if (!rc && (!keyed || destroy))
		rc = dispatcher_principal(ctx, a, err);
	if (!rc && (!keyed || destroy) &&
	    !(a->sp_id[0] && !strcasecmp(a->sp_id, a->dsp_principal))) {
		snprintf(label, sizeof(label), "%s %s", a->dsp_type, a->dsp_principal);
		rc = grant_inspect(ctx, plan, label, a->dsp_principal, a->dsp_type, rg_there, err);
	}
	if (!rc && (keyed || (destroy && a->app_object[0]))) {
		snprintf(label, sizeof(label), "ServicePrincipal of %s", a->app_unique);
		rc = grant_inspect(ctx, plan, label, a->sp_id[0] ? a->sp_id : "=",
				   "ServicePrincipal", rg_there, err);
	}
	return rc;
}

/* The secret (made now, or by an earlier apply), its keyId and expiry,
 * and the section that points the pool at the app. */
static int secret_outputs(struct pp_prov_ctx *ctx, struct az *a, struct pp_prov_out *out,
			  struct pp_error *err)
{
	const struct pp_cred_conf *cc = ctx->cred_conf;
	struct pp_json *meta = pp_json_new(PP_JSON_OBJECT);
	char path[4200], *text = NULL, *secret = NULL;
	int rc = 0;

	if (!a->secret) {
		snprintf(path, sizeof(path), "%s/" SECRET_FILE, ctx->opts->keydir);
		rc = pp_file_read_secret(path, "client secret", PP_EINVALID, &secret, err);
		local_secret(ctx, a->secret_key, sizeof(a->secret_key), a->secret_end,
			     sizeof(a->secret_end));
	}
	if (!rc && (!meta || pp_json_set_string(meta, "keyId", a->secret_key) ||
		    pp_json_set_string(meta, "endDateTime", a->secret_end) ||
		    !(text = pp_json_to_string(meta, PP_JSON_COMPACT))))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc)
		rc = pp_prov_out_file(out, SECRET_FILE, a->secret ? a->secret : secret, err) ?:
		     pp_prov_out_file(out, SECRET_META, text, err) ?:
		     pp_prov_out_cred(out, "type", "azure", err) ?:
		     pp_prov_out_cred(out, "source", "secret", err) ?:
		     pp_prov_out_cred(out, "tenant_id", cc->tenant_id ? cc->tenant_id : "", err) ?:
		     pp_prov_out_cred(out, "client_id", a->app_client, err) ?:
		     pp_prov_out_cred(out, "client_secret_file", "@" SECRET_FILE, err) ?:
		     pp_prov_out_cred(out, "client_secret_expires", a->secret_end, err) ?:
		     pp_prov_out_cred(out, "subscription_id", a->sub, err);
	/* A token endpoint the configuration overrides (a sovereign cloud,
	 * the mock) serves the new app too. */
	if (!rc && cc->authority && *cc->authority)
		rc = pp_prov_out_cred(out, "authority", cc->authority, err);
	if (secret) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
	free(text);
	pp_json_free(meta);
	return rc;
}

static int az_outputs(struct pp_prov_ctx *ctx, struct pp_prov_out *out, struct pp_error *err)
{
	struct az *a = ctx->state;
	struct pp_json *v = pp_json_clone(ctx->vars), *ids = pp_json_new(PP_JSON_ARRAY);
	struct pp_json *reg = pp_json_new(PP_JSON_OBJECT);
	char *hint = NULL;

	if (!v || !ids || !reg || pp_json_append(ids, pp_json_new_string(a->identity_id)) ||
	    pp_json_set_string(reg, "registry_url", a->login_server) ||
	    pp_json_set_string(reg, "identity", a->identity_id)) {
		pp_json_free(v);
		pp_json_free(ids);
		pp_json_free(reg);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	out->job_variables = v;
	/* No "location": ACI's job template has no such variable, and a
	 * container group without one lands in its resource group's location,
	 * which is the one provisioned. */
	if (pp_json_set_string(v, "subscription_id", a->sub) ||
	    pp_json_set_string(v, "resource_group_name", a->rg) ||
	    pp_json_set(v, "identities", ids) ||
	    (ids = NULL, pp_json_set(v, "image_registry", reg))) {
		pp_json_free(ids);
		pp_json_free(reg);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if (asprintf(&hint,
		     "Images: push them to %s/IMAGE (the jobs pull as %s); container groups run "
		     "in %s, the resource group's location",
		     a->login_server, a->identity, a->location) < 0)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	out->next_hint = hint;
	return ctx->opts->create_key ? secret_outputs(ctx, a, out, err) : 0;
}

static void az_close(struct pp_prov_ctx *ctx)
{
	struct az *a = ctx->state;

	if (a && a->secret) {
		explicit_bzero(a->secret, strlen(a->secret));
		free(a->secret);
	}
	free(ctx->state);
	ctx->state = NULL;
}

static const char *const az_types[] = {"azure-container-instance:push", NULL};

const struct pp_provisioner pp_provisioner_azure = {
	.abi = PP_PROVISIONER_ABI,
	.name = "azure-container-instance",
	.pool_types = az_types,
	.cred_type = "azure",
	.summary = "resource providers, resource group, managed identity, container registry, "
		   "role assignments",
	.open = az_open,
	.inspect = az_inspect,
	.outputs = az_outputs,
	.close = az_close,
};
