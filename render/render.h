/* Prefect-compatible base job templates: defaults per pool type, job
 * variable merging and validation, and rendering of job_configuration. */
#ifndef PP_RENDER_H
#define PP_RENDER_H

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/json.h"

/* Built-in values a template may reference ({{ flow_run.id }} etc.) and the
 * environment Prefect injects. Any field may be NULL. */
struct pp_run_ctx {
	const char *flow_run_id;
	const char *flow_run_name;
	const char *deployment_id;
	const char *deployment_name;
	const char *flow_id;
	const char *flow_name;
	const char *work_pool_name;
	const char *work_queue_name;
	const char *api_url;	     /* PREFECT_API_URL */
	const char *api_key;	     /* PREFECT_API_KEY (secret) */
	const char *api_auth_string; /* PREFECT_API_AUTH_STRING (secret) */
	/* A run of a pushpool deployment: its id and parameters (JSON object
	 * text) reach the job as PUSHPOOL_RUN_ID, PUSHPOOL_DEPLOYMENT and
	 * PUSHPOOL_PARAMETERS; NULL for other runs. */
	const char *run_id;
	const char *parameters;
};

/* The bundled default base job template for a pool type ("ecs:push", or
 * its hybrid name "ecs": file ecs-push.json; which types exist is the
 * provider registry's business, providers/provider.h).
 * Looks in $PUSHPOOL_TEMPLATE_DIR, then the installed share dir, then the
 * copy compiled into the binary. */
int pp_template_default(const char *pool_type, struct pp_json **out, struct pp_error *err);
/* Load a user's template file and check its shape (job_configuration and
 * variables objects). */
int pp_template_load(const char *path, struct pp_json **out, struct pp_error *err);

/* Merge layers (later wins; "env" merged key by key) on top of the schema
 * defaults, validate against template.variables, and render
 * job_configuration. Any layer may be NULL. *out is the rendered
 * job_configuration (caller frees). Errors name the variable and rule or the
 * JSON path of the template placeholder. */
int pp_render_job(const struct pp_json *tmpl, const struct pp_json *pool_vars,
		  const struct pp_json *deployment_vars, const struct pp_json *run_vars,
		  const struct pp_run_ctx *ctx, struct pp_json **out, struct pp_error *err);

/* Renders of one template with one pool's variables, for runs that repeat
 * the same deployment and run variables: what those layers alone decide
 * (the merged, validated values; the job itself when the template reads
 * nothing of the run but its prepare_for_flow_run() additions) is kept
 * for a few of them. tmpl and pool_vars are borrowed: they must outlive
 * the cache unchanged. NULL when out of memory; free with
 * pp_render_cache_free (NULL accepted). */
struct pp_render_cache;
struct pp_render_cache *pp_render_cache_new(const struct pp_json *tmpl,
					    const struct pp_json *pool_vars);
void pp_render_cache_free(struct pp_render_cache *c);
/* pp_render_job of the cache's template and pool variables: the same job
 * or error. */
int pp_render_job_cached(struct pp_render_cache *c, const struct pp_json *deployment_vars,
			 const struct pp_json *run_vars, const struct pp_run_ctx *ctx,
			 struct pp_json **out, struct pp_error *err);

/* Append Python's str() of v, as Prefect writes a value into surrounding
 * text (for resolvers that substitute after rendering). */
int pp_render_py_str(struct pp_buf *b, const struct pp_json *v);

/* Parse "-v key=value": value as JSON when valid JSON, else a string. */
int pp_vars_set_kv(struct pp_json *vars, const char *kv, struct pp_error *err);

#endif
