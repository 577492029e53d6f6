/* The provisioning engine: opens a pool's provisioner with its credential,
 * turns what inspect found into actions, and runs them in order (apply) or
 * in reverse order on owned resources only (destroy). Names no cloud. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "lib/log.h"
#include "provision/provision.h"

/* Resources a plan may hold: a pool needs a handful. */
#define PLAN_MAX 256

struct pp_prov {
	struct pp_prov_ctx ctx;
	struct pp_prov_plan plan;
	bool opened; /* prov->open was called: close is due, even after a failed open */
};

const char *pp_prov_state_name(enum pp_prov_state s)
{
	switch (s) {
	case PP_PROV_ABSENT: return "absent";
	case PP_PROV_PRESENT: return "present";
	case PP_PROV_FOREIGN: return "foreign";
	case PP_PROV_DRIFTED: return "drifted";
	}
	return "?";
}

const char *pp_prov_action_name(enum pp_prov_action a)
{
	switch (a) {
	case PP_PROV_NOOP: return "-";
	case PP_PROV_CREATE: return "create";
	case PP_PROV_UPDATE: return "update";
	case PP_PROV_DELETE: return "delete";
	case PP_PROV_BLOCKED: return "blocked";
	case PP_PROV_KEEP: return "keep";
	}
	return "?";
}

struct pp_prov_res *pp_prov_plan_add(struct pp_prov_plan *p, const struct pp_prov_kind *kind,
				     const char *name, struct pp_error *err)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		struct pp_prov_res *v;

		if (cap > PLAN_MAX || !(v = realloc(p->v, cap * sizeof(*v)))) {
			pp_fail(err, PP_ENOMEM, "plan: more than %d resources or out of memory",
				PLAN_MAX);
			return NULL;
		}
		p->v = v;
		p->cap = cap;
	}
	struct pp_prov_res *r = &p->v[p->n];

	memset(r, 0, sizeof(*r));
	r->kind = kind;
	if ((size_t)snprintf(r->name, sizeof(r->name), "%s", name) >= sizeof(r->name)) {
		pp_fail(err, PP_EINVALID, "plan: resource name too long: %.64s...", name);
		return NULL;
	}
	p->n++;
	return r;
}

void pp_prov_plan_free(struct pp_prov_plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].data);
	free(p->v);
	memset(p, 0, sizeof(*p));
}

void pp_prov_out_free(struct pp_prov_out *o)
{
	pp_json_free(o->job_variables);
	for (size_t i = 0; i < o->ncred; i++)
		free(o->cred_values[i]);
	for (size_t i = 0; i < o->nfiles; i++) {
		free(o->file_names[i]);
		free(o->file_data[i]);
	}
	free(o->next_hint);
	memset(o, 0, sizeof(*o));
}

int pp_prov_out_cred(struct pp_prov_out *o, const char *key, const char *value,
		     struct pp_error *err)
{
	if (o->ncred == PP_PROV_OUT_MAX || !(o->cred_values[o->ncred] = strdup(value)))
		return pp_fail(err, PP_ENOMEM, "outputs: too many credential keys");
	o->cred_keys[o->ncred++] = key;
	return 0;
}

int pp_prov_out_file(struct pp_prov_out *o, const char *name, const char *data,
		     struct pp_error *err)
{
	if (strchr(name, '/') || !*name || name[0] == '.')
		return pp_fail(err, PP_EINVALID, "outputs: bad file name %s", name);
	if (o->nfiles == PP_PROV_OUT_MAX)
		return pp_fail(err, PP_ENOMEM, "outputs: too many files");
	o->file_names[o->nfiles] = strdup(name);
	o->file_data[o->nfiles] = strdup(data);
	if (!o->file_names[o->nfiles] || !o->file_data[o->nfiles]) {
		free(o->file_names[o->nfiles]);
		free(o->file_data[o->nfiles]);
		return pp_fail(err, PP_ENOMEM, "outputs: out of memory");
	}
	pp_secret_register(o->file_data[o->nfiles]);
	o->nfiles++;
	return 0;
}

/* ---- the journal of untaggable things ---- */

static bool owned_line(const char *list, const char *key, const char **at)
{
	size_t n = strlen(key);

	for (const char *p = list; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (len == n && !memcmp(p, key, n)) {
			if (at)
				*at = p;
			return true;
		}
		p = nl ? nl + 1 : NULL;
	}
	return false;
}

bool pp_prov_owned_has(const struct pp_prov_ctx *ctx, const char *key)
{
	return owned_line(pp_buf_str(&ctx->owned), key, NULL);
}

static int journal_save(struct pp_prov_ctx *ctx, struct pp_error *err)
{
	return ctx->journal ? ctx->journal->save(ctx->journal->ud, pp_buf_str(&ctx->owned), err)
			    : 0;
}

int pp_prov_owned_add(struct pp_prov_ctx *ctx, const char *key, struct pp_error *err)
{
	if (strchr(key, '\n'))
		return pp_fail(err, PP_EINVALID, "journal: key with a newline");
	if (pp_prov_owned_has(ctx, key))
		return 0;
	if (pp_buf_printf(&ctx->owned, "%s\n", key))
		return pp_fail(err, PP_ENOMEM, "journal: out of memory");
	return journal_save(ctx, err);
}

int pp_prov_owned_del(struct pp_prov_ctx *ctx, const char *key, struct pp_error *err)
{
	const char *at;

	if (!owned_line(pp_buf_str(&ctx->owned), key, &at))
		return 0;
	size_t off = (size_t)(at - ctx->owned.data), n = strlen(key) + 1;

	if (off + n > ctx->owned.len)
		n = ctx->owned.len - off;
	memmove(ctx->owned.data + off, ctx->owned.data + off + n, ctx->owned.len - off - n + 1);
	ctx->owned.len -= n;
	return journal_save(ctx, err);
}

/* ---- the engine ---- */

int pp_prov_open(const struct pp_config *cfg, const char *pool, const char *cred_name,
		 const struct pp_prov_opts *opts, enum pp_prov_mode mode,
		 const struct pp_prov_journal *journal, const char *owned, struct pp_prov **out,
		 struct pp_error *err)
{
	const struct pp_pool_conf *pc = pp_config_pool(cfg, pool);
	const struct pp_provisioner *prov;
	struct pp_prov *p;
	char types[256];
	int rc;

	*out = NULL;
	if (!pc)
		return pp_fail(err, PP_ENOTFOUND, "no [pool \"%s\"] in %s", pool,
			       cfg->path ? cfg->path : "the configuration");
	if (!(prov = pp_provisioner_find(pc->type))) {
		pp_provisioner_types(types, sizeof(types));
		return pp_fail(err, PP_EINVALID,
			       "%s:%d: pool %s: type %s has nothing to provision (types with a "
			       "provisioner: %s)",
			       pc->file, pc->line, pool, pc->type, types);
	}
	if (!(p = calloc(1, sizeof(*p))))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	p->ctx.prov = prov;
	p->ctx.cfg = cfg;
	p->ctx.pool = pc;
	p->ctx.opts = opts;
	p->ctx.mode = mode;
	p->ctx.journal = journal;
	p->ctx.endpoint = pc->endpoint && *pc->endpoint ? pc->endpoint : NULL;
	pp_buf_init(&p->ctx.owned, 1 << 20);
	if (owned && *owned && pp_buf_puts(&p->ctx.owned, owned)) {
		pp_prov_close(p);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if (!cred_name || !*cred_name)
		cred_name = pc->credentials;
	if (!cred_name || !*cred_name) {
		pp_prov_close(p);
		return pp_fail(err, PP_EINVALID,
			       "%s:%d: pool %s has no credentials to provision with (set "
			       "credentials = NAME, or --credentials NAME)",
			       pc->file, pc->line, pool);
	}
	if (!(p->ctx.cred_conf = pp_config_cred(cfg, cred_name))) {
		pp_prov_close(p);
		return pp_fail(err, PP_ENOTFOUND, "no [credentials \"%s\"] in %s", cred_name,
			       cfg->path ? cfg->path : "the configuration");
	}
	if (strcmp(p->ctx.cred_conf->type, prov->cred_type)) {
		pp_prov_close(p);
		return pp_fail(err, PP_EINVALID,
			       "credentials %s are of type %s; pool %s (%s) provisions with %s",
			       cred_name, p->ctx.cred_conf->type, pool, pc->type, prov->cred_type);
	}
	if ((rc = pp_cred_new(p->ctx.cred_conf, &p->ctx.cred, err))) {
		pp_prov_close(p);
		return rc;
	}
	p->ctx.pool_cred_conf =
		pc->credentials && *pc->credentials ? pp_config_cred(cfg, pc->credentials) : NULL;
	rc = pc->job_variables && *pc->job_variables
		     ? pp_json_parse(pc->job_variables, strlen(pc->job_variables), NULL,
				     &p->ctx.vars, err)
		     : 0;
	if (!rc && !p->ctx.vars && !(p->ctx.vars = pp_json_new(PP_JSON_OBJECT)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc && !pp_json_is(p->ctx.vars, PP_JSON_OBJECT))
		rc = pp_fail(err, PP_EINVALID, "%s:%d: pool %s: job_variables is not an object",
			     pc->file, pc->line, pool);
	if (!rc) {
		p->opened = true;
		rc = prov->open(&p->ctx, err);
	}
	if (rc) {
		pp_error_prefix(err, "provision %s: ", pool);
		pp_prov_close(p);
		return rc;
	}
	*out = p;
	return 0;
}

void pp_prov_close(struct pp_prov *p)
{
	if (!p)
		return;
	if (p->opened && p->ctx.prov->close)
		p->ctx.prov->close(&p->ctx);
	pp_prov_plan_free(&p->plan);
	pp_json_free(p->ctx.vars);
	pp_cred_free(p->ctx.cred);
	pp_cred_free(p->ctx.pool_cred);
	pp_buf_free(&p->ctx.owned);
	free(p);
}

int pp_prov_pool_cred(struct pp_prov_ctx *ctx, struct pp_cred **out, struct pp_error *err)
{
	int rc;

	*out = NULL;
	if (!ctx->pool_cred_conf)
		return pp_fail(err, PP_EINVALID, "pool %s names no credentials of its own",
			       ctx->pool->name);
	if (ctx->pool_cred_conf == ctx->cred_conf) {
		*out = ctx->cred;
		return 0;
	}
	if (!ctx->pool_cred && (rc = pp_cred_new(ctx->pool_cred_conf, &ctx->pool_cred, err)))
		return pp_error_prefix(err, "pool %s's own credentials: ", ctx->pool->name);
	*out = ctx->pool_cred;
	return 0;
}

const struct pp_prov_plan *pp_prov_plan_of(const struct pp_prov *p)
{
	return &p->plan;
}

const struct pp_prov_ctx *pp_prov_ctx_of(const struct pp_prov *p)
{
	return &p->ctx;
}

static enum pp_prov_action action_for(enum pp_prov_mode mode, const struct pp_prov_res *r)
{
	if (mode == PP_PROV_MODE_APPLY) {
		switch (r->state) {
		case PP_PROV_ABSENT: return PP_PROV_CREATE;
		case PP_PROV_DRIFTED: return PP_PROV_UPDATE;
		case PP_PROV_FOREIGN: return PP_PROV_BLOCKED;
		case PP_PROV_PRESENT: return PP_PROV_NOOP;
		}
		return PP_PROV_NOOP;
	}
	if (r->state == PP_PROV_ABSENT || !r->kind->remove)
		return PP_PROV_NOOP;
	return r->owned && r->state != PP_PROV_FOREIGN ? PP_PROV_DELETE : PP_PROV_KEEP;
}

int pp_prov_inspect(struct pp_prov *p, int *pending, struct pp_error *err)
{
	int rc;

	*pending = 0;
	pp_prov_plan_free(&p->plan);
	if ((rc = p->ctx.prov->inspect(&p->ctx, &p->plan, err)))
		return pp_error_prefix(err, "provision %s: ", p->ctx.pool->name);
	for (size_t i = 0; i < p->plan.n; i++) {
		struct pp_prov_res *r = &p->plan.v[i];

		r->action = action_for(p->ctx.mode, r);
		if (r->action != PP_PROV_NOOP && r->action != PP_PROV_KEEP)
			(*pending)++;
	}
	return 0;
}

int pp_prov_plan_print(const struct pp_prov *p, struct pp_buf *out)
{
	const bool destroy = p->ctx.mode == PP_PROV_MODE_DESTROY;
	int rc = pp_buf_printf(out, "%-3s %-20s %-44s %-8s %-8s %s\n", "#", "KIND", "NAME", "STATE",
			       "ACTION", "PERMISSIONS / NOTE");

	for (size_t i = 0; !rc && i < p->plan.n; i++) {
		const struct pp_prov_res *r = &p->plan.v[i];
		const char *perms = destroy ? r->kind->destroy_perms : r->kind->create_perms;

		rc = pp_buf_printf(out, "%-3zu %-20s %-44s %-8s %-8s %s%s%s\n", i + 1,
				   r->kind->name, r->name, pp_prov_state_name(r->state),
				   pp_prov_action_name(r->action), perms ? perms : "-",
				   r->note[0] ? "; " : "", r->note);
	}
	return rc ? PP_ENOMEM : 0;
}

int pp_prov_run(struct pp_prov *p, pp_prov_progress_fn progress, void *ud, struct pp_error *err)
{
	const bool destroy = p->ctx.mode == PP_PROV_MODE_DESTROY;
	size_t total = 0, done = 0;
	char line[PP_PROV_NAME_MAX + 128];

	for (size_t i = 0; i < p->plan.n; i++) {
		const struct pp_prov_res *r = &p->plan.v[i];

		/* Nothing half-applied: a name held by a foreign object stops the
		 * apply before its first change. */
		if (r->action == PP_PROV_BLOCKED)
			return pp_fail(err, PP_ECONFLICT,
				       "provision %s: %s %s exists without the %s label (%s); "
				       "nothing was changed: remove or rename it, or pick another "
				       "pool name",
				       p->ctx.pool->name, r->kind->name, r->name, PP_PROV_TAG,
				       r->note[0] ? r->note : "not made by pushpool");
		total += r->action == PP_PROV_CREATE || r->action == PP_PROV_UPDATE ||
			 r->action == PP_PROV_DELETE;
	}
	for (size_t k = 0; k < p->plan.n; k++) {
		struct pp_prov_res *r = &p->plan.v[destroy ? p->plan.n - 1 - k : k];
		int rc;

		if (r->action != PP_PROV_CREATE && r->action != PP_PROV_UPDATE &&
		    r->action != PP_PROV_DELETE)
			continue;
		done++;
		snprintf(line, sizeof(line), "[%zu/%zu] %s %s %s", done, total,
			 pp_prov_action_name(r->action), r->kind->name, r->name);
		if (progress)
			progress(ud, line);
		rc = destroy ? r->kind->remove(&p->ctx, r, err) : r->kind->create(&p->ctx, r, err);
		if (rc)
			return pp_error_prefix(err, "provision %s: %s %s %s: ", p->ctx.pool->name,
					       pp_prov_action_name(r->action), r->kind->name,
					       r->name);
		r->state = destroy ? PP_PROV_ABSENT : PP_PROV_PRESENT;
		/* Between steps the lock is renewed, so a long apply keeps it. */
		if ((rc = journal_save(&p->ctx, err)))
			return rc;
	}
	return 0;
}

int pp_prov_outputs(struct pp_prov *p, struct pp_prov_out *out, struct pp_error *err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = p->ctx.prov->outputs(&p->ctx, out, err))) {
		pp_prov_out_free(out);
		return pp_error_prefix(err, "provision %s: outputs: ", p->ctx.pool->name);
	}
	return 0;
}
