/* The pool runtime (pool.h): one way from a [pool] section to what runs
 * need, shared by serve, run, render and check. */
#include "dispatcher/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "lib/file.h"
#include "lib/log.h"

int pp_pool_job_api(const struct pp_config *cfg, const char **url, char **key, struct pp_error *err)
{
	const struct pp_dispatcher_conf *d = &cfg->dispatcher;
	const struct pp_prefect_conf *pc = &cfg->prefect;
	const char *env_key = getenv("PREFECT_API_KEY");
	*url = d->prefect_api_url && *d->prefect_api_url    ? d->prefect_api_url
	       : pc->enabled && pc->api_url && *pc->api_url ? pc->api_url
							    : NULL;
	*key = NULL;
	if (d->prefect_api_key_file && *d->prefect_api_key_file)
		return pp_file_read_secret(d->prefect_api_key_file, "prefect_api_key_file",
					   PP_EINVALID, key, err);
	/* The source's key goes only with the source's own URL. */
	if (!pc->enabled || *url != pc->api_url)
		return 0;
	if (pc->api_key && *pc->api_key)
		*key = strdup(pc->api_key);
	else if (pc->api_key_file && *pc->api_key_file)
		return pp_file_read_secret(pc->api_key_file, "Prefect API key", PP_EINVALID, key,
					   err);
	else if (env_key && *env_key)
		*key = strdup(env_key);
	else
		return 0;
	return *key ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
}

/* The source's auth string goes with the source's URL only, as its key:
 * a self-hosted server with PREFECT_SERVER_API_AUTH_STRING wants it from
 * the flows too (a Prefect worker passes its own PREFECT_API_AUTH_STRING). */
static int job_auth_string(const struct pp_config *cfg, const char *url, char **out,
			   struct pp_error *err)
{
	const struct pp_prefect_conf *pc = &cfg->prefect;
	const char *env = getenv("PREFECT_API_AUTH_STRING");
	*out = NULL;
	if (!pc->enabled || !url || url != pc->api_url)
		return 0;
	if (pc->api_auth_string_file && *pc->api_auth_string_file)
		return pp_file_read_secret(pc->api_auth_string_file, "Prefect API auth string",
					   PP_EINVALID, out, err);
	if (env && *env && !(*out = strdup(env)))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	return 0;
}

static int dup_or_null(const char *s, char **out, struct pp_error *err)
{
	*out = NULL;
	if (!s || !*s)
		return 0;
	return (*out = strdup(s)) ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
}

/* "image_pull, capacity" into one bit per class; an unknown word is an
 * error naming the known ones. */
static int parse_retry_on(const struct pp_pool_conf *pc, unsigned *mask, struct pp_error *err)
{
	*mask = 0;
	const char *s = pc->start_retry_on ? pc->start_retry_on : "";
	while (*s) {
		size_t skip = strspn(s, ", \t"), n;
		s += skip;
		n = strcspn(s, ", \t");
		if (!n)
			break;
		char word[32];
		int f = -1;
		if (n < sizeof(word)) {
			memcpy(word, s, n);
			word[n] = '\0';
			f = pp_start_failure_parse(word);
		}
		if (f < 0) {
			char known[128] = "";
			for (int i = PP_START_OK + 1; i < PP_START_FAILURE_COUNT; i++)
				snprintf(known + strlen(known), sizeof(known) - strlen(known),
					 "%s%s", i > PP_START_OK + 1 ? ", " : "",
					 pp_start_failure_name((enum pp_start_failure)i));
			return pp_fail(err, PP_EINVALID,
				       "%s:%d: pool \"%s\": start_retry_on: unknown start failure "
				       "class \"%.*s\" (known: %s)",
				       pc->file ? pc->file : "config", pc->line, pc->name, (int)n,
				       s, known);
		}
		*mask |= 1u << f;
		s += n;
	}
	return 0;
}

bool pp_pool_start_retry(const struct pp_pool *p, enum pp_start_failure f, int attempt)
{
	return f != PP_START_OK && (p->start_retry_on & (1u << f)) && attempt <= p->start_retries;
}

static int open_parts(const struct pp_config *cfg, const struct pp_pool_conf *pc, unsigned flags,
		      struct pp_pool *p, struct pp_error *err)
{
	snprintf(p->name, sizeof(p->name), "%s", pc->name);
	p->max_in_flight = pc->max_in_flight;
	p->max_submitting = pc->max_submitting;
	p->max_runtime = pc->max_runtime;
	p->start_retries = (int)pc->start_retries;
	p->retry_base_ms = (long)(pc->start_retry_backoff * 1000);
	p->retry_cap_ms = (long)(pc->start_retry_backoff_max * 1000);
	int rc = parse_retry_on(pc, &p->start_retry_on, err);
	if (rc)
		return rc;
	p->type = pp_pool_type_canonical(pc->type);
	p->prov = pp_provider_find(p->type);
	if (!p->prov)
		return pp_fail(err, PP_EINVALID,
			       "%s:%d: pool \"%s\": no provider serves type \"%s\"",
			       pc->file ? pc->file : "config", pc->line, pc->name,
			       pc->type ? pc->type : "");
	rc = dup_or_null(pc->endpoint, &p->endpoint, err);
	if (rc)
		return rc;
	if (pc->template_path && *pc->template_path) {
		if ((rc = pp_template_load(pc->template_path, &p->tmpl, err)))
			return pp_error_prefix(err, "pool \"%s\": template_path: ", pc->name);
	} else if ((rc = pp_template_default(p->type, &p->tmpl, err))) {
		return pp_error_prefix(err, "pool \"%s\": ", pc->name);
	}
	if (pc->job_variables && *pc->job_variables) {
		rc = pp_json_parse(pc->job_variables, strlen(pc->job_variables), NULL, &p->vars,
				   err);
		if (!rc && p->vars->type != PP_JSON_OBJECT)
			rc = pp_fail(err, PP_EINVALID, "must be a JSON object, got %s",
				     pp_json_type_name(p->vars->type));
		if (rc)
			return pp_error_prefix(err, "pool \"%s\": job_variables: ", pc->name);
	}
	if (!(p->renders = pp_render_cache_new(p->tmpl, p->vars)))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	if ((flags & PP_POOL_CHECK) == PP_POOL_CHECK)
		return 0;
	const char *url = NULL;
	if ((rc = pp_pool_job_api(cfg, &url, &p->api_key, err)) ||
	    (rc = job_auth_string(cfg, url, &p->api_auth_string, err)) ||
	    (rc = dup_or_null(url, &p->api_url, err)))
		return rc;
	if (p->api_auth_string)
		pp_secret_register(p->api_auth_string);
	if (!(flags & PP_POOL_NO_CRED) && pc->credentials && *pc->credentials) {
		const struct pp_cred_conf *cc = pp_config_cred(cfg, pc->credentials);
		if (!cc)
			return pp_fail(err, PP_EINVALID,
				       "pool \"%s\": no [credentials \"%s\"] section", pc->name,
				       pc->credentials);
		rc = pp_cred_new(cc, &p->cred, err);
	}
	return rc;
}

int pp_pool_open(const struct pp_config *cfg, const struct pp_pool_conf *pc, unsigned flags,
		 struct pp_pool **out, struct pp_error *err)
{
	*out = NULL;
	struct pp_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	int rc = open_parts(cfg, pc, flags, p, err);
	if (rc) {
		pp_pool_close(p);
		return rc;
	}
	*out = p;
	return 0;
}

void pp_pool_close(struct pp_pool *p)
{
	if (!p)
		return;
	if (p->prov && p->prov->release_shared && p->shared)
		p->prov->release_shared(p->shared);
	pp_cred_free(p->cred);
	pp_render_cache_free(p->renders);
	pp_render_cache_free(p->src_renders);
	pp_json_free(p->src_tmpl);
	pp_json_free(p->tmpl);
	pp_json_free(p->vars);
	free(p->endpoint);
	free(p->api_url);
	free(p->api_key);
	free(p->api_auth_string);
	free(p);
}

/* A source's template of a version new to the pool: its copy (the source
 * may free or replace its own once another version is out) and a render
 * cache of it take the last one's place. */
static int take_source_template(struct pp_pool *p, const struct pp_json *tmpl, uint64_t version,
				struct pp_error *err)
{
	pp_render_cache_free(p->src_renders);
	pp_json_free(p->src_tmpl);
	p->src_renders = NULL;
	p->src_version = 0;
	if (!(p->src_tmpl = pp_json_clone(tmpl)) ||
	    !(p->src_renders = pp_render_cache_new(p->src_tmpl, p->vars)))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	p->src_version = version;
	return 0;
}

int pp_pool_render(struct pp_pool *p, const struct pp_json *tmpl, uint64_t tmpl_version,
		   const struct pp_json *deployment_vars, const struct pp_json *run_vars,
		   const struct pp_run_ctx *ctx, struct pp_json **job, struct pp_error *err)
{
	struct pp_run_ctx c = ctx ? *ctx : (struct pp_run_ctx){0};
	if (!c.work_pool_name)
		c.work_pool_name = p->name;
	if (!c.api_url)
		c.api_url = p->api_url;
	if (!c.api_key)
		c.api_key = p->api_key;
	if (!c.api_auth_string)
		c.api_auth_string = p->api_auth_string;
	if (!tmpl)
		return pp_render_job_cached(p->renders, deployment_vars, run_vars, &c, job, err);
	if (!p->src_renders || tmpl_version != p->src_version) {
		int rc = take_source_template(p, tmpl, tmpl_version, err);
		if (rc)
			return rc;
	}
	return pp_render_job_cached(p->src_renders, deployment_vars, run_vars, &c, job, err);
}

void pp_pool_io_init(struct pp_pool *p, struct pp_run_io *io, const char *run_id,
		     const char *run_name, const struct pp_json *job)
{
	io->run_id = run_id;
	io->run_name = run_name;
	io->attempt = 1;
	io->job = job;
	io->endpoint = p->endpoint;
	io->cred = p->cred;
	io->pool_shared = &p->shared;
	io->exit_code = -1;
	/* The job variable, rendered into the job, wins over the pool's. */
	double v;
	io->max_runtime_s =
		pp_json_get_number(job, "max_runtime", &v) && v >= 0 ? v : p->max_runtime;
}
