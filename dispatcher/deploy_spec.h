/* A deployment as declared: the `deployments:` list of a Prefect project
 * file (prefect.yaml) or a [deployment "NAME"] section of pushpool.conf,
 * read and validated, before `pushpool deploy` applies it to the store.
 * Both forms produce the same structs, so the store, the scheduler and the
 * commands see one model. Every string is owned by the struct holding it. */
#ifndef PP_DEPLOY_SPEC_H
#define PP_DEPLOY_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "lib/schedule.h"

struct pp_config;

/* What a schedule does with slots missed while no dispatcher ran. */
enum pp_catchup {
	PP_CATCHUP_SKIP,   /* default: missed slots are dropped */
	PP_CATCHUP_LATEST, /* only the most recent missed slot runs */
	PP_CATCHUP_ALL,	   /* every missed slot within catchup_window runs */
};

/* What a due slot does while the deployment's previous run is unfinished. */
enum pp_overlap {
	PP_OVERLAP_ALLOW, /* default */
	PP_OVERLAP_SKIP,
	PP_OVERLAP_BUFFER_ONE,
	PP_OVERLAP_CANCEL_OTHER,
};

/* When a deployment's concurrency limit is reached (Prefect's
 * collision_strategy). */
enum pp_collision {
	PP_COLLISION_ENQUEUE, /* default: the new run waits */
	PP_COLLISION_CANCEL_NEW,
};

struct pp_deploy_schedule {
	/* spec's strings (timezone, cron, rrule) point into owned copies */
	struct pp_schedule_spec spec;
	char *timezone, *cron, *rrule;
	bool active;
	enum pp_catchup catchup;
	int64_t catchup_window; /* seconds; PP_CATCHUP_ALL only, 0: the default */
	enum pp_overlap overlap;
	char *where; /* "FILE:LINE" of the schedule, for messages */
	/* Prefect's per-schedule parameters: a JSON object merged over the
	 * deployment's for this schedule's runs, "{}" when none. */
	char *parameters;
};

struct pp_deploy_spec {
	char *name;
	char *pool;
	char *queue; /* NULL: the pool's default queue */
	char *description;
	char *job_variables;	/* JSON object text, "{}" when none */
	char *parameters;	/* JSON object text, "{}" when none */
	char *parameter_schema; /* JSON schema text, NULL when none */
	char *tags;		/* JSON array of strings, "[]" when none */
	bool paused;
	int concurrency_limit; /* 0: none */
	enum pp_collision collision;
	struct pp_deploy_schedule *schedules;
	size_t nschedules;
	char *where; /* "FILE:LINE" of the deployment, for messages */
	/* Prefect's entrypoint ("flows/etl.py:main"), NULL when none: kept with
	 * the deployment for the job, never a parameter (parameters are the
	 * flow function's arguments, checked against its schema). */
	char *entrypoint;
};

/* Read path (a Prefect project file, YAML) and keep the deployments named
 * in names (all when nnames is 0; a name not found is an error). Every
 * deployment is validated (schedules compile, parameters match their
 * schema, the pool exists in cfg when cfg is given); on any error nothing
 * is returned and err names the field and FILE:LINE. PP_EINVALID for bad
 * content, PP_EIO when the file cannot be read. */
int pp_deploy_specs_from_file(const char *path, const struct pp_config *cfg,
			      const char *const *names, size_t nnames, struct pp_deploy_spec **out,
			      size_t *n, struct pp_error *err);

/* The [deployment "NAME"] sections of a loaded configuration, validated
 * the same way. */
int pp_deploy_specs_from_config(const struct pp_config *cfg, struct pp_deploy_spec **out, size_t *n,
				struct pp_error *err);

void pp_deploy_specs_free(struct pp_deploy_spec *specs, size_t n);

#endif
