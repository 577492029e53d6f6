/* Modal (modal:push): no cloud resources, the same flow. The plan checks
 * the token (AuthTokenGet), names the workspace it acts in
 * (WorkspaceNameLookup) and finds the environment (EnvironmentList): the
 * pool's modal_environment or --environment, else the workspace's default.
 * A missing one is created (EnvironmentCreate) only with
 * --create-environment, recorded in the journal before the call since an
 * environment carries no label, and only such a one is deleted by destroy.
 * Outputs: the job variable modal_environment and, when the token pair
 * sits in the configuration or the environment (where a service would not
 * find it), a credentials file (mode 0600) with a profile for the pool.
 *
 * Endpoint: the pool's, else $MODAL_SERVER_URL, else api.modal.com, as the
 * provider sends runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/modal.h"
#include "lib/file.h"
#include "lib/pb.h"
#include "provision/provision.h"

#define SERVICE "modal.client.ModalClient/"

struct modal_prov {
	char base[512];
	char env[64];	/* the environment jobs run in; "" until inspect */
	bool env_named; /* given by --environment or the pool, not the default */
	char workspace[128];
	char user[128];
};

static int call(struct pp_prov_ctx *ctx, const char *rpc, const struct pp_buf *msg,
		struct pp_buf *out, struct pp_error *err)
{
	struct modal_prov *mp = ctx->state;
	char path[128];

	snprintf(path, sizeof(path), SERVICE "%s", rpc);
	return pp_prov_grpc(ctx, mp->base, path, msg, out, err);
}

/* The first string of field num in a message; "" when absent. */
static int read_string(const struct pp_buf *msg, uint32_t num, char *out, size_t size,
		       struct pp_error *err)
{
	struct pp_pb_reader r;
	struct pp_pb_field f;
	int rc;

	out[0] = '\0';
	pp_pb_reader_init(&r, msg->data, msg->len);
	while ((rc = pp_pb_next(&r, &f, err)) > 0)
		if (f.num == num)
			return pp_pb_field_string(&f, out, size, err);
	return rc;
}

/* ---- the token: a read-only check ---- */

static const struct pp_prov_kind kind_token = {
	.name = "token",
	.create_perms = "a valid token pair (AuthTokenGet)",
	.destroy_perms = NULL,
};

/* ---- the environment ---- */

static int env_message(const char *name, struct pp_buf *msg, struct pp_error *err)
{
	return pp_pb_string(msg, 1, name) ? pp_fail(err, PP_ENOMEM, "out of memory") : 0;
}

static int env_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct pp_buf msg, out;
	char key[128];
	bool retried;
	int rc;

	if (!ctx->opts->create_env)
		return pp_fail(err, PP_EINVALID,
			       "environment %s does not exist in workspace %s: create it with "
			       "--create-environment, or name another (--environment)",
			       res->name, ((struct modal_prov *)ctx->state)->workspace);
	snprintf(key, sizeof(key), "environment:%s", res->name);
	/* Recorded before the call: a killed apply still owns what it made. */
	retried = pp_prov_owned_has(ctx, key);
	if ((rc = pp_prov_owned_add(ctx, key, err)))
		return rc;
	pp_buf_init(&msg, 1024);
	pp_buf_init(&out, 1024);
	rc = env_message(res->name, &msg, err);
	if (!rc)
		rc = call(ctx, "EnvironmentCreate", &msg, &out, err);
	pp_buf_free(&msg);
	pp_buf_free(&out);
	if (rc == PP_ECONFLICT && retried) {
		/* A previous apply's call went through before it died. */
		pp_error_clear(err);
		return 0;
	}
	if (rc == PP_ECONFLICT) {
		/* Someone else made it between our plan and now: not ours. */
		struct pp_error ignored = {0};

		pp_prov_owned_del(ctx, key, &ignored);
	}
	return rc;
}

static int env_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	struct pp_buf msg, out;
	char key[128];
	int rc;

	pp_buf_init(&msg, 1024);
	pp_buf_init(&out, 1024);
	rc = env_message(res->name, &msg, err);
	if (!rc)
		rc = call(ctx, "EnvironmentDelete", &msg, &out, err);
	pp_buf_free(&msg);
	pp_buf_free(&out);
	if (rc == PP_ENOTFOUND) {
		pp_error_clear(err);
		rc = 0;
	}
	snprintf(key, sizeof(key), "environment:%s", res->name);
	return rc ? rc : pp_prov_owned_del(ctx, key, err);
}

static const struct pp_prov_kind kind_env = {
	.name = "environment",
	.create_perms = "workspace manager (EnvironmentCreate)",
	.destroy_perms = "workspace manager (EnvironmentDelete)",
	.create = env_create,
	.remove = env_remove,
};

/* EnvironmentList: is name there (or, name "", which is the default)? */
static int env_lookup(struct pp_prov_ctx *ctx, bool *found, struct pp_error *err)
{
	struct modal_prov *mp = ctx->state;
	struct pp_buf empty, out;
	struct pp_pb_reader r;
	struct pp_pb_field f;
	int rc;

	*found = false;
	pp_buf_init(&empty, 16);
	pp_buf_init(&out, 1 << 20);
	rc = call(ctx, "EnvironmentList", &empty, &out, err);
	pp_pb_reader_init(&r, out.data, out.len);
	while (!rc && !*found && (rc = pp_pb_next(&r, &f, err)) > 0) {
		struct pp_pb_reader ir;
		struct pp_pb_field g;
		char name[64] = "";
		bool is_default = false;
		int irc;

		if (f.num != 2 || f.wire != PP_PB_LEN)
			continue;
		pp_pb_reader_init(&ir, f.data, f.len);
		while ((irc = pp_pb_next(&ir, &g, err)) > 0) {
			if (g.num == 1 && (irc = pp_pb_field_string(&g, name, sizeof(name), err)))
				break;
			if (g.num == 4)
				is_default = g.u64 != 0;
		}
		if (irc < 0) {
			rc = irc;
			break;
		}
		if (mp->env_named ? !strcmp(name, mp->env) : is_default) {
			snprintf(mp->env, sizeof(mp->env), "%s", name);
			*found = true;
		}
		rc = 0;
	}
	pp_buf_free(&empty);
	pp_buf_free(&out);
	return rc < 0 ? rc : 0;
}

/* ---- the provisioner ---- */

static int modal_open(struct pp_prov_ctx *ctx, struct pp_error *err)
{
	struct modal_prov *mp = calloc(1, sizeof(*mp));
	const char *env = ctx->opts->environment
				  ? ctx->opts->environment
				  : pp_json_get_string(ctx->vars, "modal_environment");
	const char *server = getenv("MODAL_SERVER_URL");
	size_t n;

	if (!mp)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	ctx->state = mp;
	if (ctx->opts->create_key)
		return pp_fail(err, PP_EINVALID,
			       "--create-key: Modal tokens are made in Modal's dashboard; "
			       "provisioning uses the one configured");
	snprintf(mp->base, sizeof(mp->base), "%s",
		 ctx->endpoint	     ? ctx->endpoint
		 : server && *server ? server
				     : PP_MODAL_DEFAULT_SERVER);
	n = strlen(mp->base);
	while (n && mp->base[n - 1] == '/')
		mp->base[--n] = '\0';
	if (env && *env) {
		if (strlen(env) >= sizeof(mp->env) || strchr(env, '\n'))
			return pp_fail(err, PP_EINVALID, "environment name %.64s... too long", env);
		snprintf(mp->env, sizeof(mp->env), "%s", env);
		mp->env_named = true;
	} else if (ctx->opts->create_env) {
		return pp_fail(err, PP_EINVALID,
			       "--create-environment needs a name: --environment NAME, or the "
			       "pool's modal_environment");
	}
	return 0;
}

static int modal_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, struct pp_error *err)
{
	struct modal_prov *mp = ctx->state;
	struct pp_buf empty, out, id;
	struct pp_prov_res *r;
	bool found;
	int rc;

	pp_buf_init(&empty, 16);
	pp_buf_init(&out, 1 << 16);
	pp_buf_init(&id, 1024);
	/* The token pair itself: AuthTokenGet carries nothing else. */
	rc = call(ctx, "AuthTokenGet", &empty, &out, err);
	if (!rc) {
		pp_buf_reset(&out);
		rc = call(ctx, "WorkspaceNameLookup", &empty, &out, err);
	}
	if (!rc)
		rc = read_string(&out, 1, mp->workspace, sizeof(mp->workspace), err);
	if (!rc)
		rc = read_string(&out, 2, mp->user, sizeof(mp->user), err);
	/* Named by its id where the configuration shows it (the identity op
	 * would ask the default server, not the pool's endpoint). */
	if (!rc && pp_buf_puts(&id, ctx->cred_conf->token_id && *ctx->cred_conf->token_id
					    ? ctx->cred_conf->token_id
					    : ctx->cred_conf->name))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc && (r = pp_prov_plan_add(plan, &kind_token, pp_buf_str(&id), err))) {
		r->state = PP_PROV_PRESENT;
		snprintf(r->note, sizeof(r->note), "workspace %s, user %s", mp->workspace,
			 mp->user[0] ? mp->user : "?");
	} else if (!rc) {
		rc = err->code;
	}
	pp_buf_free(&empty);
	pp_buf_free(&out);
	pp_buf_free(&id);
	if (rc)
		return rc;
	if ((rc = env_lookup(ctx, &found, err)))
		return rc;
	if (!mp->env_named && !found)
		return pp_fail(err, PP_EINVALID, "workspace %s has no default environment",
			       mp->workspace);
	if (!(r = pp_prov_plan_add(plan, &kind_env, mp->env, err)))
		return err->code;
	char key[128];

	snprintf(key, sizeof(key), "environment:%s", mp->env);
	r->owned = pp_prov_owned_has(ctx, key);
	r->state = found ? PP_PROV_PRESENT : PP_PROV_ABSENT;
	if (!found && !ctx->opts->create_env)
		snprintf(r->note, sizeof(r->note), "missing: apply needs --create-environment");
	else if (found && !r->owned)
		snprintf(r->note, sizeof(r->note), "%s: kept",
			 mp->env_named ? "made before pushpool" : "the workspace's default");
	return 0;
}

/* The token pair when it sits where a service would not find it (this
 * configuration, or this shell's environment); NULL when it lives in a
 * file the credentials already name. */
static void token_pair(const struct pp_prov_ctx *ctx, const char **id, const char **secret)
{
	/* Only the pool's own pair goes into its file. */
	const struct pp_cred_conf *cc =
		ctx->pool_cred_conf == ctx->cred_conf ? ctx->cred_conf : NULL;
	const char *src = cc && cc->source ? cc->source : "chain";

	*id = *secret = NULL;
	if (!cc)
		return;
	if (cc->token_id && *cc->token_id && cc->token_secret && *cc->token_secret &&
	    (!strcmp(src, "token") || !strcmp(src, "static") || !strcmp(src, "chain"))) {
		*id = cc->token_id;
		*secret = cc->token_secret;
	} else if ((!strcmp(src, "env") || !strcmp(src, "chain")) && getenv("MODAL_TOKEN_ID") &&
		   *getenv("MODAL_TOKEN_ID") && getenv("MODAL_TOKEN_SECRET") &&
		   *getenv("MODAL_TOKEN_SECRET")) {
		*id = getenv("MODAL_TOKEN_ID");
		*secret = getenv("MODAL_TOKEN_SECRET");
	}
}

/* The pool already runs on the file an earlier apply wrote: write it and
 * its section again as they are, so a re-apply leaves them in place. */
static int keep_own_file(struct pp_prov_ctx *ctx, struct pp_prov_out *out, struct pp_error *err)
{
	const struct pp_cred_conf *cc = ctx->cred_conf;
	char own[4200];
	struct pp_buf text;
	int rc;

	snprintf(own, sizeof(own), "%s/modal.toml", ctx->opts->keydir ? ctx->opts->keydir : "");
	if (!ctx->opts->keydir || !cc->source || strcmp(cc->source, "file") || !cc->file ||
	    strcmp(cc->file, own))
		return 0;
	pp_buf_init(&text, 1 << 16);
	rc = pp_file_read(own, 1 << 16, &text, err);
	if (!rc)
		rc = pp_prov_out_file(out, "modal.toml", pp_buf_str(&text), err) ?:
		     pp_prov_out_cred(out, "type", "modal", err) ?:
		     pp_prov_out_cred(out, "source", "file", err) ?:
		     pp_prov_out_cred(out, "file", "@modal.toml", err);
	if (!rc && cc->profile && *cc->profile)
		rc = pp_prov_out_cred(out, "profile", cc->profile, err);
	if (!rc && cc->modal_server_url && *cc->modal_server_url)
		rc = pp_prov_out_cred(out, "modal_server_url", cc->modal_server_url, err);
	pp_buf_free(&text);
	return rc;
}

static int modal_outputs(struct pp_prov_ctx *ctx, struct pp_prov_out *out, struct pp_error *err)
{
	struct modal_prov *mp = ctx->state;
	const char *id, *secret;
	char profile[PP_NAME_MAX + 16];
	struct pp_buf toml;
	int rc = 0;

	if (!(out->job_variables = pp_json_clone(ctx->vars)) ||
	    pp_json_set_string(out->job_variables, "modal_environment", mp->env))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	token_pair(ctx, &id, &secret);
	if (!id)
		return keep_own_file(ctx, out, err);
	if (strpbrk(id, "\"\n") || strpbrk(secret, "\"\n"))
		return pp_fail(err, PP_EINVALID, "the token pair holds a quote or a line break");
	snprintf(profile, sizeof(profile), "pushpool-%s", ctx->pool->name);
	pp_buf_init(&toml, 1 << 16);
	if (pp_buf_printf(&toml,
			  "# Written by `pushpool provision apply -p %s`.\n[%s]\n"
			  "token_id = \"%s\"\ntoken_secret = \"%s\"\nenvironment = \"%s\"\n",
			  ctx->pool->name, profile, id, secret, mp->env))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc)
		rc = pp_prov_out_file(out, "modal.toml", pp_buf_str(&toml), err) ?:
		     pp_prov_out_cred(out, "type", "modal", err) ?:
		     pp_prov_out_cred(out, "source", "file", err) ?:
		     pp_prov_out_cred(out, "file", "@modal.toml", err) ?:
		     pp_prov_out_cred(out, "profile", profile, err);
	if (!rc && asprintf(&out->next_hint,
			    "The token pair is now in the credentials file (mode 0600): "
			    "[credentials \"%s\"] may drop token_id and token_secret.",
			    ctx->cred_conf->name) < 0) {
		out->next_hint = NULL;
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if (!rc && ctx->cred_conf->modal_server_url && *ctx->cred_conf->modal_server_url)
		rc = pp_prov_out_cred(out, "modal_server_url", ctx->cred_conf->modal_server_url,
				      err);
	pp_buf_free(&toml);
	return rc;
}

static void modal_close(struct pp_prov_ctx *ctx)
{
	free(ctx->state);
	ctx->state = NULL;
}

static const char *const modal_types[] = {"modal:push", NULL};

const struct pp_provisioner pp_provisioner_modal = {
	.abi = PP_PROVISIONER_ABI,
	.name = "modal",
	.pool_types = modal_types,
	.cred_type = "modal",
	.summary = "token check, workspace environment, credentials file",
	.open = modal_open,
	.inspect = modal_inspect,
	.outputs = modal_outputs,
	.close = modal_close,
};
