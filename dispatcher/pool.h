/* The pool runtime: everything a [pool] section turns into before a run can
 * be rendered and submitted (provider, credentials, base job template, pool
 * variables, endpoint, and the Prefect URL and key the jobs are given).
 * `serve`/`once`, `run`, `render` and `check` all open pools here, so what
 * `render` shows and `check` accepts is what `serve` submits. */
#ifndef PP_POOL_H
#define PP_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "dispatcher/config.h"
#include "lib/err.h"
#include "lib/json.h"
#include "providers/provider.h"
#include "render/render.h"

struct pp_cred;

struct pp_pool {
	char name[PP_NAME_MAX];
	const char *type; /* canonical pool type, from the provider registry */
	const struct pp_provider *prov;
	struct pp_cred *cred;  /* NULL: the pool names no credentials, or PP_POOL_CHECK */
	struct pp_json *tmpl;  /* base job template: the pool's file, else the type's default */
	struct pp_json *vars;  /* pool job_variables, or NULL */
	char *endpoint;	       /* API base URL override, or NULL */
	char *api_url;	       /* PREFECT_API_URL given to jobs, or NULL */
	char *api_key;	       /* PREFECT_API_KEY (registered secret), or NULL */
	char *api_auth_string; /* PREFECT_API_AUTH_STRING (registered secret), or NULL */
	void *shared;	       /* provider's per-pool cache (prov->release_shared) */
	/* What the runs repeat of rendering tmpl with vars (pp_pool_render). */
	struct pp_render_cache *renders;
	/* The same for the last template a source rendered runs with: the
	 * pool's own copy of it, its version, and its renders (NULL, 0: none). */
	struct pp_json *src_tmpl;
	uint64_t src_version;
	struct pp_render_cache *src_renders;
	long max_in_flight, max_submitting;
	/* Run time and start retry rules (docs/dispatch.md). */
	double max_runtime;		  /* seconds; 0: no limit */
	int start_retries;		  /* further starts after a start failure */
	unsigned start_retry_on;	  /* bit 1 << enum pp_start_failure per class retried */
	long retry_base_ms, retry_cap_ms; /* full-jitter delay bounds of a start retry */
};

/* Whether pool p starts a run again whose attempt (from 1) failed to start
 * with class f. */
bool pp_pool_start_retry(const struct pp_pool *p, enum pp_start_failure f, int attempt);

enum {
	/* No credentials: for `render`, which contacts no cloud. */
	PP_POOL_NO_CRED = 1u << 0,
	/* For `check`: everything but what reads secrets (credentials and the
	 * Prefect key file), which the config validation reports on its own. */
	PP_POOL_CHECK = 1u << 1 | PP_POOL_NO_CRED,
};

/* Open pool pc of cfg. Errors say which pool and what: no provider for the
 * type, the template (file or built-in), job_variables, credentials, the
 * Prefect key file. *out is the caller's (pp_pool_close). cfg must outlive
 * nothing: the pool copies what it keeps. */
int pp_pool_open(const struct pp_config *cfg, const struct pp_pool_conf *pc, unsigned flags,
		 struct pp_pool **out, struct pp_error *err);
void pp_pool_close(struct pp_pool *p);

/* Render a run's job on the pool: tmpl (a source's, of version
 * tmpl_version: sources/source.h, job_inputs) or, NULL, the pool's, the
 * pool's variables under deployment and run variables. Either goes
 * through a render cache: a source's template is copied once a version,
 * tmpl itself is read only when its version is new to the pool. ctx
 * fields left NULL get the pool's name, Prefect URL and key. */
int pp_pool_render(struct pp_pool *p, const struct pp_json *tmpl, uint64_t tmpl_version,
		   const struct pp_json *deployment_vars, const struct pp_json *run_vars,
		   const struct pp_run_ctx *ctx, struct pp_json **job, struct pp_error *err);

/* Point io at the pool (endpoint, credentials, shared cache) for a run of
 * job, and set attempt 1: remote names derive from (run id, attempt), so
 * every try and every recovery names the same remote job. io's
 * max_runtime_s is the job's max_runtime variable, else the pool's. */
void pp_pool_io_init(struct pp_pool *p, struct pp_run_io *io, const char *run_id,
		     const char *run_name, const struct pp_json *job);

/* What jobs use to reach Prefect: [dispatcher] prefect_api_url /
 * prefect_api_key_file, else the Prefect source's api_url and key (its
 * api_key, api_key_file, else $PREFECT_API_KEY), as a Prefect worker passes
 * its own settings to its jobs. *url points into cfg; *key is the caller's. */
int pp_pool_job_api(const struct pp_config *cfg, const char **url, char **key,
		    struct pp_error *err);

#endif
