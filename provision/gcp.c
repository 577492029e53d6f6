/* Google Cloud Run (cloud-run-v2:push): the APIs enabled (Service Usage,
 * each enable a long-running operation followed to its end), an Artifact
 * Registry Docker repository, the jobs' runtime service account, and the
 * project IAM bindings the dispatcher's identity needs (roles/run.developer,
 * roles/iam.serviceAccountUser), by read-modify-write of the project's
 * policy with its etag, retried when another writer got there first and
 * never touching a binding it did not add.
 *
 * Ownership: the repository carries the label pushpool-pool=POOL and the
 * service account the same words in its description, both in the create
 * call. An enabled API and an IAM binding carry nothing: apply records them
 * in the journal before the change, and destroy undoes only recorded ones.
 *
 * Endpoints: the Google hosts (serviceusage, iam, cloudresourcemanager,
 * artifactregistry .googleapis.com), or with a pool endpoint E,
 * E/serviceusage, E/iam, E/cloudresourcemanager, E/artifactregistry (the
 * mock's layout). */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "auth/auth.h"
#include "lib/clock.h"
#include "lib/file.h"
#include "lib/grpc.h"
#include "lib/log.h"
#include "provision/provision.h"

#define REGION_DEFAULT "us-central1"
/* Tries of one IAM policy read-modify-write against concurrent writers. */
#define IAM_RMW_TRIES 8
#define ROLE_RUN      "roles/run.developer"
#define ROLE_SA_USER  "roles/iam.serviceAccountUser"

static const char *const services[] = {"run.googleapis.com", "artifactregistry.googleapis.com"};

struct gcp {
	char project[128];
	char region[64];
	char repo_id[64];
	char repo_name[320]; /* projects/P/locations/R/repositories/ID */
	char run_sa[160];    /* the runtime account's email */
	char member[200];    /* who gets the roles: serviceAccount:EMAIL */
	char tag[PP_NAME_MAX + 32];
	/* --create-key: a dispatcher account of its own, with a key. */
	char dsp_sa[160];
	char *key_json; /* the key file made by this apply; secret */
};

/* ---- names ---- */

/* FNV-1a: a short stable suffix when a pool's name must be cut to fit. */
static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* The pool's name as lower-case letters, digits and single hyphens, cut to
 * max characters (with a hash of the whole name when cut, so two long
 * names never share one). */
static void slug(const char *pool, size_t max, char *out, size_t size)
{
	char s[PP_NAME_MAX + 1];
	size_t n = 0;

	for (const char *p = pool; *p && n < sizeof(s) - 1; p++) {
		char c = (char)tolower((unsigned char)*p);

		if (!isalnum((unsigned char)c))
			c = '-';
		if (c == '-' && (n == 0 || s[n - 1] == '-'))
			continue;
		s[n++] = c;
	}
	while (n && s[n - 1] == '-')
		n--;
	s[n] = '\0';
	if (n > max)
		snprintf(out, size, "%.*s-%06x", (int)(max - 7), s, fnv1a(pool) & 0xffffff);
	else
		snprintf(out, size, "%s", s);
	/* A cut can end on a hyphen before the hash; the hash keeps it unique. */
}

static int base_url(const struct pp_prov_ctx *ctx, const char *service, char *out, size_t size)
{
	if (ctx->endpoint)
		snprintf(out, size, "%s/%s", ctx->endpoint, service);
	else
		snprintf(out, size, "https://%s.googleapis.com", service);
	return 0;
}

static int url(const struct pp_prov_ctx *ctx, char *out, size_t size, const char *service,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int url(const struct pp_prov_ctx *ctx, char *out, size_t size, const char *service,
	       const char *fmt, ...)
{
	char base[512];
	va_list ap;
	size_t n;

	base_url(ctx, service, base, sizeof(base));
	n = (size_t)snprintf(out, size, "%s", base);
	va_start(ap, fmt);
	if (n < size)
		n += (size_t)vsnprintf(out + n, size - n, fmt, ap);
	va_end(ap);
	return n >= size ? PP_EINVALID : 0;
}

/* ---- long-running operations ---- */

/* Follow a google.longrunning.Operation until done; its error, if any,
 * becomes ours. service: where GET v1/{name} answers. */
static int follow(struct pp_prov_ctx *ctx, const char *service, struct pp_json *op,
		  struct pp_error *err)
{
	char u[1024], name[512];
	int64_t deadline = pp_mono_ms() + PP_PROV_OP_WAIT_MS;
	int rc = 0;

	for (int attempt = 0; !rc; attempt++) {
		const struct pp_json *e = pp_json_get(op, "error");
		const char *n = pp_json_get_string(op, "name");

		if (e) {
			/* A google.rpc.Status: its code says what to do next. */
			long long code = pp_json_get_int(e, "code", PP_GRPC_UNKNOWN);

			rc = pp_fail(err, pp_grpc_code_to_err((int)code),
				     "operation %s failed: %s: %s", n ? n : "?",
				     pp_grpc_code_name((int)code),
				     pp_json_get_string(e, "message") ?: "no message");
			break;
		}
		if (pp_json_get_bool(op, "done", false))
			break;
		if (!n || !*n) {
			rc = pp_fail(err, PP_EINVALID, "an operation without a name");
			break;
		}
		if (pp_mono_ms() > deadline) {
			rc = pp_fail(err, PP_ETRANSIENT, "operation %s not done after %d s", n,
				     PP_PROV_OP_WAIT_MS / 1000);
			break;
		}
		snprintf(name, sizeof(name), "%s", n);
		if ((rc = pp_prov_pause(ctx, attempt, err)) ||
		    (rc = url(ctx, u, sizeof(u), service, "/v1/%s", name)))
			break;
		pp_json_free(op);
		op = NULL;
		rc = pp_prov_json(ctx, "GET", u, NULL, &op, err);
	}
	pp_json_free(op);
	return rc;
}

/* ---- services ---- */

static int service_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct gcp *g = ctx->state;
	char u[1024], key[320];
	struct pp_json *body = pp_json_new(PP_JSON_OBJECT), *op = NULL;
	int rc;

	snprintf(key, sizeof(key), "service:%s", res->name);
	/* Recorded first: an apply killed after the enable still owns it. */
	rc = !body ? pp_fail(err, PP_ENOMEM, "out of memory") : pp_prov_owned_add(ctx, key, err);
	if (!rc)
		rc = url(ctx, u, sizeof(u), "serviceusage", "/v1/projects/%s/services/%s:enable",
			 g->project, res->name);
	if (!rc)
		rc = pp_prov_json(ctx, "POST", u, body, &op, err);
	pp_json_free(body);
	if (!rc)
		return follow(ctx, "serviceusage", op, err);
	return rc;
}

static int service_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct gcp *g = ctx->state;
	char u[1024], key[320];
	struct pp_json *body = pp_json_new(PP_JSON_OBJECT), *op = NULL;
	int rc;

	/* Never the services that depend on it, and not while it is in use. */
	if (!body || pp_json_set_bool(body, "disableDependentServices", false) ||
	    pp_json_set_string(body, "checkIfServiceHasUsage", "CHECK"))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	else
		rc = url(ctx, u, sizeof(u), "serviceusage", "/v1/projects/%s/services/%s:disable",
			 g->project, res->name);
	if (!rc)
		rc = pp_prov_json(ctx, "POST", u, body, &op, err);
	pp_json_free(body);
	if (!rc)
		rc = follow(ctx, "serviceusage", op, err);
	snprintf(key, sizeof(key), "service:%s", res->name);
	return rc ? rc : pp_prov_owned_del(ctx, key, err);
}

static const struct pp_prov_kind kind_service = {
	.name = "service",
	.create_perms = "serviceusage.services.get,serviceusage.services.enable",
	.destroy_perms = "serviceusage.services.disable",
	.create = service_create,
	.remove = service_remove,
};

static int service_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, const char *svc,
			   struct pp_error *err)
{
	struct gcp *g = ctx->state;
	struct pp_prov_res *r = pp_prov_plan_add(plan, &kind_service, svc, err);
	struct pp_json *j = NULL;
	char u[1024], key[320];
	int rc;

	if (!r)
		return err->code;
	if ((rc = url(ctx, u, sizeof(u), "serviceusage", "/v1/projects/%s/services/%s", g->project,
		      svc)) ||
	    (rc = pp_prov_json(ctx, "GET", u, NULL, &j, err)))
		return rc;
	const char *state = pp_json_get_string(j, "state");

	snprintf(key, sizeof(key), "service:%s", svc);
	r->owned = pp_prov_owned_has(ctx, key);
	if (state && !strcmp(state, "ENABLED")) {
		r->state = PP_PROV_PRESENT;
		if (!r->owned)
			snprintf(r->note, sizeof(r->note), "enabled before pushpool: kept");
	} else {
		r->state = PP_PROV_ABSENT;
	}
	pp_json_free(j);
	return 0;
}

/* ---- the Artifact Registry repository ---- */

static bool tagged(const struct pp_json *labels, const char *pool)
{
	const char *v = pp_json_get_string(labels, PP_PROV_TAG);

	return v && !strcmp(v, pool);
}

static int repo_get(struct pp_prov_ctx *ctx, struct pp_json **out, struct pp_error *err)
{
	struct gcp *g = ctx->state;
	char u[1024];
	int rc = url(ctx, u, sizeof(u), "artifactregistry", "/v1/%s", g->repo_name);

	return rc ? pp_fail(err, rc, "URL too long") : pp_prov_json(ctx, "GET", u, NULL, out, err);
}

static int repo_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct gcp *g = ctx->state;
	struct pp_json *body = pp_json_new(PP_JSON_OBJECT), *labels = pp_json_new(PP_JSON_OBJECT);
	struct pp_json *op = NULL, *got = NULL;
	char u[1024], desc[PP_NAME_MAX + 64];
	int rc;

	snprintf(desc, sizeof(desc), "Images of pushpool pool %s", ctx->pool->name);
	if (!body || !labels || pp_json_set_string(labels, PP_PROV_TAG, ctx->pool->name) ||
	    pp_json_set_string(body, "format", "DOCKER") ||
	    pp_json_set_string(body, "description", desc) || pp_json_set(body, "labels", labels)) {
		pp_json_free(body);
		pp_json_free(labels);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	rc = url(ctx, u, sizeof(u), "artifactregistry",
		 "/v1/projects/%s/locations/%s/repositories?repositoryId=%s", g->project, g->region,
		 g->repo_id);
	if (!rc)
		rc = pp_prov_json(ctx, "POST", u, body, &op, err);
	pp_json_free(body);
	if (!rc)
		return follow(ctx, "artifactregistry", op, err);
	if (rc != PP_ECONFLICT)
		return rc;
	/* Made by a killed apply (or a concurrent one): ours if labelled. */
	pp_error_clear(err);
	if ((rc = repo_get(ctx, &got, err)))
		return rc;
	rc = tagged(pp_json_get(got, "labels"), ctx->pool->name)
		     ? 0
		     : pp_fail(err, PP_ECONFLICT, "%s exists without the %s label", res->name,
			       PP_PROV_TAG);
	pp_json_free(got);
	return rc;
}

static int repo_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	char u[1024];
	struct pp_json *op = NULL;
	int rc = url(ctx, u, sizeof(u), "artifactregistry", "/v1/%s", res->name);

	if (!rc)
		rc = pp_prov_json(ctx, "DELETE", u, NULL, &op, err);
	if (rc == PP_ENOTFOUND) {
		pp_error_clear(err);
		return 0;
	}
	return rc ? rc : follow(ctx, "artifactregistry", op, err);
}

static const struct pp_prov_kind kind_repo = {
	.name = "docker-repository",
	.create_perms = "artifactregistry.repositories.get,artifactregistry.repositories.create",
	.destroy_perms = "artifactregistry.repositories.delete",
	.create = repo_create,
	.remove = repo_remove,
};

static int repo_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, struct pp_error *err)
{
	struct gcp *g = ctx->state;
	struct pp_prov_res *r = pp_prov_plan_add(plan, &kind_repo, g->repo_name, err);
	struct pp_json *j = NULL;
	int rc;

	if (!r)
		return err->code;
	rc = repo_get(ctx, &j, err);
	if (rc == PP_ENOTFOUND) {
		pp_error_clear(err);
		r->state = PP_PROV_ABSENT;
		return 0;
	}
	if (rc)
		return rc;
	const char *format = pp_json_get_string(j, "format");

	r->owned = tagged(pp_json_get(j, "labels"), ctx->pool->name);
	if (!r->owned) {
		r->state = PP_PROV_FOREIGN;
		snprintf(r->note, sizeof(r->note), "no %s=%s label", PP_PROV_TAG, ctx->pool->name);
	} else if (format && strcmp(format, "DOCKER")) {
		/* A format cannot be changed: shown, never "fixed" by a delete. */
		r->state = PP_PROV_FOREIGN;
		snprintf(r->note, sizeof(r->note), "format %s, not DOCKER", format);
	} else {
		r->state = PP_PROV_PRESENT;
	}
	pp_json_free(j);
	return 0;
}

/* ---- service accounts ---- */

static bool sa_tagged(const struct pp_json *sa, const char *tag)
{
	const char *d = pp_json_get_string(sa, "description");

	return d && !strncmp(d, tag, strlen(tag));
}

static int sa_get(struct pp_prov_ctx *ctx, const char *email, struct pp_json **out,
		  struct pp_error *err)
{
	struct gcp *g = ctx->state;
	char u[1024];
	int rc = url(ctx, u, sizeof(u), "iam", "/v1/projects/%s/serviceAccounts/%s", g->project,
		     email);

	return rc ? pp_fail(err, rc, "URL too long") : pp_prov_json(ctx, "GET", u, NULL, out, err);
}

/* A disabled account of ours: enable it (it keeps its keys and roles). */
static int sa_enable(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct gcp *g = ctx->state;
	struct pp_json *body = pp_json_new(PP_JSON_OBJECT);
	char u[1024];
	int rc = body ? url(ctx, u, sizeof(u), "iam", "/v1/projects/%s/serviceAccounts/%s:enable",
			    g->project, res->name)
		      : pp_fail(err, PP_ENOMEM, "out of memory");

	if (!rc)
		rc = pp_prov_json(ctx, "POST", u, body, NULL, err);
	pp_json_free(body);
	return rc;
}

static int sa_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct gcp *g = ctx->state;
	struct pp_json *body = pp_json_new(PP_JSON_OBJECT), *sa = pp_json_new(PP_JSON_OBJECT);
	struct pp_json *got = NULL;
	char u[1024], id[64], desc[PP_NAME_MAX + 128], display[100];
	int rc;

	if (res->state == PP_PROV_DRIFTED) {
		pp_json_free(body);
		pp_json_free(sa);
		return sa_enable(ctx, res, err);
	}
	snprintf(id, sizeof(id), "%.*s", (int)strcspn(res->name, "@"), res->name);
	bool dsp = !strcmp(res->name, g->dsp_sa);

	/* The tag leads the description: it is how destroy knows it. */
	snprintf(desc, sizeof(desc), "%s: the identity %s of pushpool pool %s", g->tag,
		 dsp ? "the dispatcher uses for" : "Cloud Run jobs run as, for", ctx->pool->name);
	snprintf(display, sizeof(display), "pushpool %.60s %s", ctx->pool->name,
		 dsp ? "dispatcher" : "jobs");
	if (!body || !sa || pp_json_set_string(sa, "displayName", display) ||
	    pp_json_set_string(sa, "description", desc) ||
	    pp_json_set_string(body, "accountId", id) || pp_json_set(body, "serviceAccount", sa)) {
		pp_json_free(body);
		pp_json_free(sa);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	rc = url(ctx, u, sizeof(u), "iam", "/v1/projects/%s/serviceAccounts", g->project);
	if (!rc)
		rc = pp_prov_json(ctx, "POST", u, body, NULL, err);
	pp_json_free(body);
	if (rc != PP_ECONFLICT)
		return rc;
	pp_error_clear(err);
	if ((rc = sa_get(ctx, res->name, &got, err)))
		return rc;
	rc = sa_tagged(got, g->tag) ? 0
				    : pp_fail(err, PP_ECONFLICT, "%s exists without the %s tag",
					      res->name, g->tag);
	pp_json_free(got);
	return rc;
}

static int sa_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct gcp *g = ctx->state;
	char u[1024];
	int rc = url(ctx, u, sizeof(u), "iam", "/v1/projects/%s/serviceAccounts/%s", g->project,
		     res->name);

	if (!rc)
		rc = pp_prov_json(ctx, "DELETE", u, NULL, NULL, err);
	if (rc == PP_ENOTFOUND) {
		pp_error_clear(err);
		rc = 0;
	}
	return rc;
}

static const struct pp_prov_kind kind_sa = {
	.name = "service-account",
	.create_perms = "iam.serviceAccounts.get,iam.serviceAccounts.create,"
			"iam.serviceAccounts.enable",
	.destroy_perms = "iam.serviceAccounts.delete",
	.create = sa_create,
	.remove = sa_remove,
};

static int sa_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, const char *email,
		      struct pp_error *err)
{
	struct gcp *g = ctx->state;
	struct pp_prov_res *r = pp_prov_plan_add(plan, &kind_sa, email, err);
	struct pp_json *j = NULL;
	int rc;

	if (!r)
		return err->code;
	rc = sa_get(ctx, email, &j, err);
	if (rc == PP_ENOTFOUND) {
		pp_error_clear(err);
		r->state = PP_PROV_ABSENT;
		return 0;
	}
	if (rc)
		return rc;
	r->owned = sa_tagged(j, g->tag);
	r->state = r->owned ? PP_PROV_PRESENT : PP_PROV_FOREIGN;
	if (!r->owned)
		snprintf(r->note, sizeof(r->note), "description does not start with \"%s\"",
			 g->tag);
	else if (pp_json_get_bool(j, "disabled", false)) {
		/* Jobs cannot run as a disabled account: apply enables it. */
		r->state = PP_PROV_DRIFTED;
		snprintf(r->note, sizeof(r->note), "disabled: apply enables it");
	}
	pp_json_free(j);
	return 0;
}

/* ---- the dispatcher account's key (--create-key) ---- */

#define KEY_FILE "key.json"

/* The private_key_id of the key file an earlier apply wrote; "" if none. */
static void local_key_id(const struct pp_prov_ctx *ctx, char *out, size_t size)
{
	char path[4200];
	struct pp_json *j = NULL;

	out[0] = '\0';
	if (!ctx->opts->keydir)
		return;
	snprintf(path, sizeof(path), "%s/" KEY_FILE, ctx->opts->keydir);
	if (!pp_json_parse_file(path, NULL, &j, NULL) && pp_json_get_string(j, "private_key_id"))
		snprintf(out, size, "%s", pp_json_get_string(j, "private_key_id"));
	pp_json_free(j);
}

/* The user-managed keys of the dispatcher account, by id. */
static int keys_list(struct pp_prov_ctx *ctx, struct pp_json **keys, struct pp_error *err)
{
	struct gcp *g = ctx->state;
	char u[1024];
	int rc = url(ctx, u, sizeof(u), "iam",
		     "/v1/projects/%s/serviceAccounts/%s/keys?keyTypes=USER_MANAGED", g->project,
		     g->dsp_sa);

	return rc ? pp_fail(err, rc, "URL too long") : pp_prov_json(ctx, "GET", u, NULL, keys, err);
}

static const char *key_id_of(const struct pp_json *key)
{
	const char *name = pp_json_get_string(key, "name");
	const char *slash = name ? strrchr(name, '/') : NULL;

	return slash ? slash + 1 : "";
}

/* Delete every key of the account but keep (NULL: all). Every key of an
 * account pushpool made is pushpool's: one whose file never got written
 * (an apply killed in between) is useless to anyone. */
static int keys_delete(struct pp_prov_ctx *ctx, const char *keep, struct pp_error *err)
{
	struct gcp *g = ctx->state;
	struct pp_json *keys = NULL;
	char u[1024];
	int rc = keys_list(ctx, &keys, err);
	const struct pp_json *a = pp_json_get(keys, "keys");

	for (size_t i = 0; !rc && pp_json_at(a, i); i++) {
		const char *id = key_id_of(pp_json_at(a, i));

		if (keep && !strcmp(id, keep))
			continue;
		rc = url(ctx, u, sizeof(u), "iam", "/v1/projects/%s/serviceAccounts/%s/keys/%s",
			 g->project, g->dsp_sa, id);
		if (!rc)
			rc = pp_prov_json(ctx, "DELETE", u, NULL, NULL, err);
		if (rc == PP_ENOTFOUND) {
			pp_error_clear(err);
			rc = 0;
		}
	}
	pp_json_free(keys);
	return rc;
}

static int key_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct gcp *g = ctx->state;
	struct pp_json *body = pp_json_new(PP_JSON_OBJECT), *key = NULL;
	char u[1024];
	const char *data;
	int rc, n;

	if (!body)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	/* No key file here: whatever keys the account has are orphans. */
	rc = keys_delete(ctx, NULL, err);
	if (!rc)
		rc = url(ctx, u, sizeof(u), "iam", "/v1/projects/%s/serviceAccounts/%s/keys",
			 g->project, g->dsp_sa);
	if (!rc)
		rc = pp_prov_json(ctx, "POST", u, body, &key, err);
	pp_json_free(body);
	if (rc)
		return rc;
	data = pp_json_get_string(key, "privateKeyData");
	size_t len = data ? strlen(data) : 0;
	if (!len || len % 4 || !(g->key_json = calloc(1, len / 4 * 3 + 1)) ||
	    (n = EVP_DecodeBlock((unsigned char *)g->key_json, (const unsigned char *)data,
				 (int)len)) < 0) {
		pp_json_free(key);
		return pp_fail(err, PP_EINVALID, "%s: the answer has no usable privateKeyData",
			       res->name);
	}
	/* EVP_DecodeBlock writes the padding as NUL bytes: the text ends
	 * at the first one either way. */
	g->key_json[n] = '\0';
	pp_secret_register(g->key_json);
	pp_json_free(key);
	return 0;
}

static int key_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	int rc = keys_delete(ctx, NULL, err);

	if (rc == PP_ENOTFOUND) {
		pp_error_clear(err);
		rc = 0;
	}
	return rc;
}

static const struct pp_prov_kind kind_key = {
	.name = "service-account-key",
	.create_perms = "iam.serviceAccountKeys.list,iam.serviceAccountKeys.create,"
			"iam.serviceAccountKeys.delete",
	.destroy_perms = "iam.serviceAccountKeys.list,iam.serviceAccountKeys.delete",
	.create = key_create,
	.remove = key_remove,
};

static int key_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, bool sa_there,
		       struct pp_error *err)
{
	struct gcp *g = ctx->state;
	char name[PP_PROV_NAME_MAX], local[128];
	struct pp_prov_res *r;
	struct pp_json *keys = NULL;
	size_t n = 0;
	bool found = false;
	int rc;

	snprintf(name, sizeof(name), "%s (" KEY_FILE ")", g->dsp_sa);
	if (!(r = pp_prov_plan_add(plan, &kind_key, name, err)))
		return err->code;
	r->owned = true; /* the account is ours, so are its keys */
	r->state = PP_PROV_ABSENT;
	if (!sa_there)
		return 0;
	local_key_id(ctx, local, sizeof(local));
	if ((rc = keys_list(ctx, &keys, err)))
		return rc;
	for (; pp_json_at(pp_json_get(keys, "keys"), n); n++)
		found |= local[0] &&
			 !strcmp(key_id_of(pp_json_at(pp_json_get(keys, "keys"), n)), local);
	pp_json_free(keys);
	if (found) {
		r->state = PP_PROV_PRESENT;
		if (n > 1)
			snprintf(r->note, sizeof(r->note), "%zu other key(s)", n - 1);
	} else if (n) {
		snprintf(r->note, sizeof(r->note), "%zu key(s) without a file here: deleted first",
			 n);
	}
	return 0;
}

/* ---- project IAM bindings ---- */

static int policy_get(struct pp_prov_ctx *ctx, struct pp_json **policy, struct pp_error *err)
{
	struct gcp *g = ctx->state;
	struct pp_json *body = pp_json_new(PP_JSON_OBJECT), *opts = pp_json_new(PP_JSON_OBJECT);
	char u[1024];
	int rc;

	/* Version 3: conditional bindings come back as they are, and are
	 * written back untouched. */
	if (!body || !opts || pp_json_set_int(opts, "requestedPolicyVersion", 3) ||
	    pp_json_set(body, "options", opts)) {
		pp_json_free(body);
		pp_json_free(opts);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	rc = url(ctx, u, sizeof(u), "cloudresourcemanager", "/v3/projects/%s:getIamPolicy",
		 g->project);
	if (!rc)
		rc = pp_prov_json(ctx, "POST", u, body, policy, err);
	pp_json_free(body);
	return rc;
}

/* The unconditional binding of role in policy, or NULL. */
static struct pp_json *binding_of(const struct pp_json *policy, const char *role)
{
	const struct pp_json *bs = pp_json_get(policy, "bindings");

	for (size_t i = 0; bs && pp_json_at(bs, i); i++) {
		struct pp_json *b = pp_json_at(bs, i);
		const char *r = pp_json_get_string(b, "role");

		if (r && !strcmp(r, role) && !pp_json_get(b, "condition"))
			return b;
	}
	return NULL;
}

static long member_index(const struct pp_json *binding, const char *member)
{
	const struct pp_json *ms = pp_json_get(binding, "members");

	for (size_t i = 0; ms && pp_json_at(ms, i); i++)
		if (pp_json_string(pp_json_at(ms, i)) &&
		    !strcmp(pp_json_string(pp_json_at(ms, i)), member))
			return (long)i;
	return -1;
}

/* Add (or remove) member in role's binding, in place; false when there
 * was nothing to change. Every other binding and member stays as read. */
static int policy_edit(struct pp_json *policy, const char *role, const char *member, bool add,
		       bool *changed)
{
	struct pp_json *b = binding_of(policy, role), *bs = pp_json_get(policy, "bindings");
	long at = b ? member_index(b, member) : -1;

	*changed = add ? at < 0 : at >= 0;
	if (!*changed)
		return 0;
	if (!add) {
		struct pp_json *ms = pp_json_get(b, "members");

		pp_json_free(pp_json_detach(pp_json_at(ms, (size_t)at)));
		if (!pp_json_at(ms, 0))
			pp_json_free(pp_json_detach(b)); /* an empty binding is refused */
		return 0;
	}
	if (!bs) {
		if (!(bs = pp_json_new(PP_JSON_ARRAY)) || pp_json_set(policy, "bindings", bs))
			return PP_ENOMEM;
	}
	if (!b) {
		struct pp_json *ms = pp_json_new(PP_JSON_ARRAY);

		if (!(b = pp_json_new(PP_JSON_OBJECT)) || !ms ||
		    pp_json_set_string(b, "role", role) || pp_json_set(b, "members", ms) ||
		    pp_json_append(bs, b))
			return PP_ENOMEM;
	}
	return pp_json_append(pp_json_get(b, "members"), pp_json_new_string(member)) ? PP_ENOMEM
										     : 0;
}

/* Read, change, write with the etag read; a 409 (ABORTED: the policy
 * changed since it was read) starts over from a fresh read. */
static int policy_rmw(struct pp_prov_ctx *ctx, const char *role, const char *member, bool add,
		      struct pp_error *err)
{
	struct gcp *g = ctx->state;
	char u[1024];
	int rc = 0;

	for (int attempt = 0; attempt < IAM_RMW_TRIES; attempt++) {
		struct pp_json *policy = NULL, *body = NULL;
		bool changed;

		if ((rc = policy_get(ctx, &policy, err)))
			return rc;
		if (policy_edit(policy, role, member, add, &changed)) {
			pp_json_free(policy);
			return pp_fail(err, PP_ENOMEM, "out of memory");
		}
		if (!changed) {
			pp_json_free(policy);
			return 0;
		}
		if (!(body = pp_json_new(PP_JSON_OBJECT)) || pp_json_set(body, "policy", policy)) {
			pp_json_free(body);
			pp_json_free(policy);
			return pp_fail(err, PP_ENOMEM, "out of memory");
		}
		rc = url(ctx, u, sizeof(u), "cloudresourcemanager", "/v3/projects/%s:setIamPolicy",
			 g->project);
		if (!rc)
			rc = pp_prov_json(ctx, "POST", u, body, NULL, err);
		pp_json_free(body);
		if (rc != PP_ECONFLICT)
			return rc;
		pp_info("provision: project %s's IAM policy changed under us; reading it again",
			g->project);
		if ((rc = pp_prov_pause(ctx, attempt, err)))
			return rc;
		rc = PP_ECONFLICT;
	}
	return pp_fail(err, rc, "project %s's IAM policy kept changing: %d tries", g->project,
		       IAM_RMW_TRIES);
}

/* res->data: "ROLE MEMBER". */
static int binding_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	char key[512], role[128];
	const char *member = strchr(res->data, ' ') + 1;
	int rc;

	snprintf(role, sizeof(role), "%.*s", (int)(member - 1 - res->data), res->data);
	snprintf(key, sizeof(key), "binding:%s", res->data);
	if ((rc = pp_prov_owned_add(ctx, key, err)))
		return rc;
	return policy_rmw(ctx, role, member, true, err);
}

static int binding_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	char key[512], role[128];
	const char *member = strchr(res->data, ' ') + 1;
	int rc;

	snprintf(role, sizeof(role), "%.*s", (int)(member - 1 - res->data), res->data);
	snprintf(key, sizeof(key), "binding:%s", res->data);
	if ((rc = policy_rmw(ctx, role, member, false, err)))
		return rc;
	return pp_prov_owned_del(ctx, key, err);
}

static const struct pp_prov_kind kind_binding = {
	.name = "iam-binding",
	.create_perms = "resourcemanager.projects.getIamPolicy,"
			"resourcemanager.projects.setIamPolicy",
	.destroy_perms = "resourcemanager.projects.getIamPolicy,"
			 "resourcemanager.projects.setIamPolicy",
	.create = binding_create,
	.remove = binding_remove,
};

static int binding_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan,
			   const struct pp_json *policy, const char *role, const char *member,
			   struct pp_error *err)
{
	char name[PP_PROV_NAME_MAX], key[512];
	struct pp_prov_res *r;
	const struct pp_json *b = binding_of(policy, role);

	snprintf(name, sizeof(name), "%s %s", role, member);
	if (!(r = pp_prov_plan_add(plan, &kind_binding, name, err)))
		return err->code;
	if (!(r->data = strdup(name)))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	snprintf(key, sizeof(key), "binding:%s", name);
	r->owned = pp_prov_owned_has(ctx, key);
	r->state = b && member_index(b, member) >= 0 ? PP_PROV_PRESENT : PP_PROV_ABSENT;
	if (r->state == PP_PROV_PRESENT && !r->owned)
		snprintf(r->note, sizeof(r->note), "granted before pushpool: kept");
	return 0;
}

/* ---- the provisioner ---- */

/* The dispatcher's identity as an IAM member: --grant-to, else the
 * service account of the pool's own credential. */
static int dispatcher_member(struct pp_prov_ctx *ctx, struct gcp *g, struct pp_error *err)
{
	struct pp_cred *c;
	struct pp_buf id;
	const char *at, *sa;
	int rc;

	if ((rc = pp_prov_pool_cred(ctx, &c, err)))
		return rc;
	pp_buf_init(&id, 4096);
	if ((rc = pp_cred_identity(c, &id, err))) {
		pp_buf_free(&id);
		return rc;
	}
	/* "service account EMAIL (key K) from F" or "metadata server M,
	 * service account EMAIL": the email follows the last such words. */
	sa = NULL;
	for (at = pp_buf_str(&id); (at = strstr(at, "service account ")); at++)
		sa = at + strlen("service account ");
	if (!sa || !strchr(sa, '@'))
		rc = pp_fail(err, PP_EINVALID,
			     "the pool's credentials (%s) are not a service account: keyless "
			     "provisioning grants roles to the dispatcher's service account; "
			     "give the pool one, or make one with --create-key",
			     pp_buf_str(&id));
	else
		snprintf(g->member, sizeof(g->member), "serviceAccount:%.*s",
			 (int)strcspn(sa, " ,)"), sa);
	pp_buf_free(&id);
	return rc;
}

static int gcp_open(struct pp_prov_ctx *ctx, struct pp_error *err)
{
	struct gcp *g = calloc(1, sizeof(*g));
	const char *project = pp_json_get_string(pp_json_get(ctx->vars, "credentials"), "project");
	const char *region =
		ctx->opts->location ? ctx->opts->location : pp_json_get_string(ctx->vars, "region");
	char s[64];

	if (!g)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	ctx->state = g;
	if (!project || !*project)
		project = pp_cred_project(ctx->cred);
	if (!project || !*project)
		return pp_fail(err, PP_EINVALID,
			       "no GCP project: the credentials name none; set "
			       "job_variables = {\"credentials\": {\"project\": \"P\"}}");
	if (!region || !*region)
		region = REGION_DEFAULT;
	for (const char *p = project; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-.:", *p))
			return pp_fail(err, PP_EINVALID, "invalid project %s", project);
	for (const char *p = region; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-')
			return pp_fail(err, PP_EINVALID, "invalid region %s", region);
	snprintf(g->project, sizeof(g->project), "%s", project);
	snprintf(g->region, sizeof(g->region), "%s", region);
	slug(ctx->pool->name, 53, s, sizeof(s));
	snprintf(g->repo_id, sizeof(g->repo_id), "pushpool-%s", s);
	snprintf(g->repo_name, sizeof(g->repo_name), "projects/%s/locations/%s/repositories/%s",
		 g->project, g->region, g->repo_id);
	/* Account ids: 6-30 of [a-z0-9-], a letter first: "pp-" + 23 + "-run". */
	slug(ctx->pool->name, 23, s, sizeof(s));
	snprintf(g->run_sa, sizeof(g->run_sa), "pp-%s-run@%s.iam.gserviceaccount.com", s,
		 g->project);
	snprintf(g->tag, sizeof(g->tag), "%s=%s", PP_PROV_TAG, ctx->pool->name);
	snprintf(g->dsp_sa, sizeof(g->dsp_sa), "pp-%s-dsp@%s.iam.gserviceaccount.com", s,
		 g->project);
	if (ctx->opts->create_key)
		snprintf(g->member, sizeof(g->member), "serviceAccount:%s", g->dsp_sa);
	return 0;
}

/* The dispatcher's own account and key: planned with --create-key, and
 * shown (so destroy finds them) whenever an earlier keyed apply made them. */
static int dsp_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, struct pp_error *err)
{
	struct gcp *g = ctx->state;
	struct pp_json *j = NULL;
	int rc = sa_get(ctx, g->dsp_sa, &j, err);

	pp_json_free(j);
	if (rc == PP_ENOTFOUND) {
		pp_error_clear(err);
		if (!ctx->opts->create_key)
			return 0;
	} else if (rc) {
		return rc;
	}
	if ((rc = sa_inspect(ctx, plan, g->dsp_sa, err)))
		return rc;
	return key_inspect(ctx, plan, plan->v[plan->n - 1].state == PP_PROV_PRESENT, err);
}

static int gcp_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, struct pp_error *err)
{
	struct gcp *g = ctx->state;
	struct pp_json *policy = NULL;
	int rc = 0;

	for (size_t i = 0; !rc && i < sizeof(services) / sizeof(services[0]); i++)
		rc = service_inspect(ctx, plan, services[i], err);
	if (!rc)
		rc = repo_inspect(ctx, plan, err);
	if (!rc)
		rc = sa_inspect(ctx, plan, g->run_sa, err);
	if (!rc)
		rc = dsp_inspect(ctx, plan, err);
	if (!rc && !g->member[0])
		rc = dispatcher_member(ctx, g, err);
	if (!rc)
		rc = policy_get(ctx, &policy, err);
	if (!rc)
		rc = binding_inspect(ctx, plan, policy, ROLE_RUN, g->member, err);
	if (!rc)
		rc = binding_inspect(ctx, plan, policy, ROLE_SA_USER, g->member, err);
	pp_json_free(policy);
	return rc;
}

/* The key file (made now, or by an earlier apply) and the section that
 * points the pool at it. */
static int key_outputs(struct pp_prov_ctx *ctx, struct gcp *g, struct pp_prov_out *out,
		       struct pp_error *err)
{
	struct pp_buf text;
	char path[4200];
	int rc = 0;

	pp_buf_init(&text, 1 << 16);
	if (!g->key_json) {
		snprintf(path, sizeof(path), "%s/" KEY_FILE, ctx->opts->keydir);
		rc = pp_file_read(path, 1 << 16, &text, err);
	}
	if (!rc)
		rc = pp_prov_out_file(out, KEY_FILE, g->key_json ? g->key_json : pp_buf_str(&text),
				      err) ?:
		     pp_prov_out_cred(out, "type", "gcp", err) ?:
		     pp_prov_out_cred(out, "source", "file", err) ?:
		     pp_prov_out_cred(out, "file", "@" KEY_FILE, err);
	/* A token endpoint the configuration overrides (a private one, the
	 * mock) serves the new account too. */
	if (!rc && ctx->cred_conf->token_uri && *ctx->cred_conf->token_uri)
		rc = pp_prov_out_cred(out, "token_uri", ctx->cred_conf->token_uri, err);
	pp_buf_free(&text);
	return rc;
}

static int gcp_outputs(struct pp_prov_ctx *ctx, struct pp_prov_out *out, struct pp_error *err)
{
	struct gcp *g = ctx->state;
	struct pp_json *v = pp_json_clone(ctx->vars), *cred;
	char *hint = NULL;

	if (!v)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	out->job_variables = v;
	cred = pp_json_get(v, "credentials");
	if (!cred) {
		if (!(cred = pp_json_new(PP_JSON_OBJECT)) || pp_json_set(v, "credentials", cred))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if (pp_json_set_string(cred, "project", g->project) ||
	    pp_json_set_string(v, "region", g->region) ||
	    pp_json_set_string(v, "service_account_name", g->run_sa))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	if (asprintf(&hint, "Images: push them to %s-docker.pkg.dev/%s/%s/IMAGE", g->region,
		     g->project, g->repo_id) < 0)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	out->next_hint = hint;
	return ctx->opts->create_key ? key_outputs(ctx, g, out, err) : 0;
}

static void gcp_close(struct pp_prov_ctx *ctx)
{
	struct gcp *g = ctx->state;

	if (g && g->key_json) {
		explicit_bzero(g->key_json, strlen(g->key_json));
		free(g->key_json);
	}
	free(ctx->state);
	ctx->state = NULL;
}

static const char *const gcp_types[] = {"cloud-run-v2:push", NULL};

const struct pp_provisioner pp_provisioner_gcp = {
	.abi = PP_PROVISIONER_ABI,
	.name = "cloud-run",
	.pool_types = gcp_types,
	.cred_type = "gcp",
	.summary = "APIs, Artifact Registry repository, runtime service account, IAM roles",
	.open = gcp_open,
	.inspect = gcp_inspect,
	.outputs = gcp_outputs,
	.close = gcp_close,
};
