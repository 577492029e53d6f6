/* [deployment "NAME"] and [schedule "NAME"] sections of pushpool.conf into
 * declared deployments, the same structs prefect.yaml gives
 * (dispatcher/deploy_file.c), checked the same way. The keys are rows of
 * the configuration's key table (dispatcher/config_keys.c); this file
 * turns the loaded values into a spec. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher/config.h"
#include "dispatcher/deploy_impl.h"
#include "lib/buf.h"
#include "lib/json.h"

/* The schedule keys both sections have. */
struct sched_keys {
	const char *cron, *interval, *rrule, *timezone, *anchor_date, *catchup, *overlap;
	const char *parameters;
	bool day_or, active;
	double catchup_window;
};

static bool has(const char *s)
{
	return s && *s;
}

static int fail_at(struct pp_error *err, const char *file, int line, const char *section,
		   const char *name, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
static int fail_at(struct pp_error *err, const char *file, int line, const char *section,
		   const char *name, const char *key, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return pp_fail(err, PP_EINVALID, "%s:%d: [%s \"%s\"] %s: %s", file, line, section, name,
		       key, what);
}

static char *copy_or_null(const char *s)
{
	return has(s) ? strdup(s) : NULL;
}

static int fill_schedule(const struct sched_keys *k, const char *file, int line,
			 const char *section, const char *name, struct pp_deploy_schedule *s,
			 struct pp_error *err)
{
	char why[512];
	int kinds = has(k->cron) + has(k->interval) + has(k->rrule);
	if (kinds != 1)
		return fail_at(err, file, line, section, name, "cron, interval, rrule",
			       "exactly one is needed (got %d)", kinds);
	s->active = k->active;
	s->spec.day_or = k->day_or;
	s->catchup_window = (int64_t)ceil(k->catchup_window);
	/* The key table has checked the words. */
	deploy_parse_catchup(k->catchup, &s->catchup);
	deploy_parse_overlap(k->overlap, &s->overlap);
	if (s->catchup_window && s->catchup != PP_CATCHUP_ALL)
		return fail_at(err, file, line, section, name, "catchup_window",
			       "only means something with catchup = all");
	if (!(s->where = deploy_where(file, line)) ||
	    !(s->parameters = strdup(has(k->parameters) ? k->parameters : "{}")) ||
	    (has(k->timezone) && !(s->timezone = strdup(k->timezone))))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	if (has(k->anchor_date) && !has(k->interval))
		return fail_at(err, file, line, section, name, "anchor_date",
			       "belongs to an interval schedule");
	if (has(k->cron)) {
		s->spec.kind = PP_SCHEDULE_CRON;
		s->cron = strdup(k->cron);
	} else if (has(k->rrule)) {
		s->spec.kind = PP_SCHEDULE_RRULE;
		s->rrule = strdup(k->rrule);
	} else {
		s->spec.kind = PP_SCHEDULE_INTERVAL;
		if (deploy_parse_interval(k->interval, &s->spec.interval, why, sizeof(why)))
			return fail_at(err, file, line, section, name, "interval", "%s", why);
		int rc = has(k->anchor_date)
				 ? deploy_parse_anchor(k->anchor_date, s->timezone, &s->spec.anchor,
						       why, sizeof(why))
				 : deploy_default_anchor(s->timezone, &s->spec.anchor, why,
							 sizeof(why));
		if (rc)
			return fail_at(err, file, line, section, name,
				       has(k->anchor_date) ? "anchor_date" : "timezone", "%s", why);
		return 0;
	}
	return s->cron || s->rrule ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
}

/* "a, b,c" into ["a","b","c"] (empty items dropped). */
static char *tags_json(const char *list)
{
	struct pp_json *arr = pp_json_new(PP_JSON_ARRAY);
	const char *p = list ? list : "";
	while (arr && *p) {
		size_t n = strcspn(p, ",");
		const char *a = p, *b = p + n;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (b > a && pp_json_append(arr, pp_json_new_stringn(a, (size_t)(b - a)))) {
			pp_json_free(arr);
			return NULL;
		}
		p += n + (p[n] == ',');
	}
	char *text = arr ? pp_json_to_string(arr, PP_JSON_COMPACT) : NULL;
	pp_json_free(arr);
	return text;
}

static int read_schema_file(const struct pp_deploy_conf *dc, struct pp_deploy_spec *d,
			    struct pp_error *err)
{
	struct pp_json *schema = NULL;
	int rc = pp_json_parse_file(dc->parameter_schema_file, NULL, &schema, err);
	if (rc) {
		pp_error_prefix(err, "%s:%d: [deployment \"%s\"] parameter_schema_file: ", dc->file,
				dc->line, dc->name);
		return rc == PP_ENOTFOUND ? (err->code = PP_EINVALID) : rc;
	}
	if (schema->type != PP_JSON_OBJECT) {
		rc = fail_at(err, dc->file, dc->line, "deployment", dc->name,
			     "parameter_schema_file",
			     "%s holds JSON of type %s, not a schema object",
			     dc->parameter_schema_file, pp_json_type_name(schema->type));
	} else if (!(d->parameter_schema = pp_json_to_string(schema, PP_JSON_COMPACT))) {
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	}
	pp_json_free(schema);
	return rc;
}

static int read_deployment(const struct pp_config *cfg, const struct pp_deploy_conf *dc,
			   struct pp_deploy_spec *d, struct pp_error *err)
{
	const char *problem = deploy_name_problem(dc->name);
	if (problem)
		return fail_at(err, dc->file, dc->line, "deployment", dc->name, "name", "%s",
			       problem);
	if (!(d->name = strdup(dc->name)) || !(d->pool = strdup(dc->pool)) ||
	    !(d->where = deploy_where(dc->file, dc->line)) ||
	    !(d->job_variables = strdup(has(dc->job_variables) ? dc->job_variables : "{}")) ||
	    !(d->parameters = strdup(has(dc->parameters) ? dc->parameters : "{}")) ||
	    !(d->tags = tags_json(dc->tags)) ||
	    (has(dc->queue) && !(d->queue = copy_or_null(dc->queue))) ||
	    (has(dc->description) && !(d->description = copy_or_null(dc->description))) ||
	    (has(dc->entrypoint) && !(d->entrypoint = copy_or_null(dc->entrypoint))))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	d->paused = dc->paused;
	d->concurrency_limit = (int)dc->concurrency_limit;
	deploy_parse_collision(dc->collision_strategy, &d->collision);
	int rc;
	if (has(dc->parameter_schema_file) && (rc = read_schema_file(dc, d, err)))
		return rc;

	/* Its own schedule, then every [schedule] naming it, in file order. */
	bool own = has(dc->cron) || has(dc->interval) || has(dc->rrule);
	if (!own && (has(dc->timezone) || has(dc->anchor_date)))
		return fail_at(err, dc->file, dc->line, "deployment", dc->name,
			       has(dc->timezone) ? "timezone" : "anchor_date",
			       "set without cron, interval or rrule");
	size_t n = own;
	for (size_t i = 0; i < cfg->nschedules; i++)
		n += !strcmp(cfg->schedules[i].deployment, dc->name);
	if (n > PP_DEPLOY_SCHEDULES_MAX)
		return fail_at(err, dc->file, dc->line, "deployment", dc->name, "schedules",
			       "more than %d", PP_DEPLOY_SCHEDULES_MAX);
	if (n && !(d->schedules = calloc(n, sizeof(*d->schedules))))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	if (own) {
		struct sched_keys k = {
			dc->cron,	 dc->interval, dc->rrule,	  dc->timezone,
			dc->anchor_date, dc->catchup,  dc->overlap,	  NULL,
			dc->day_or,	 dc->active,   dc->catchup_window};
		d->nschedules++;
		if ((rc = fill_schedule(&k, dc->file, dc->line, "deployment", dc->name,
					&d->schedules[0], err)))
			return rc;
	}
	for (size_t i = 0; i < cfg->nschedules; i++) {
		const struct pp_sched_conf *sc = &cfg->schedules[i];
		if (strcmp(sc->deployment, dc->name))
			continue;
		struct sched_keys k = {sc->cron,     sc->interval,	sc->rrule,
				       sc->timezone, sc->anchor_date,	sc->catchup,
				       sc->overlap,  sc->parameters,	sc->day_or,
				       sc->active,   sc->catchup_window};
		if ((rc = fill_schedule(&k, sc->file, sc->line, "schedule", sc->name,
					&d->schedules[d->nschedules++], err)))
			return rc;
	}
	return deploy_check(d, cfg, err);
}

int pp_deploy_specs_from_config(const struct pp_config *cfg, struct pp_deploy_spec **out, size_t *n,
				struct pp_error *err)
{
	for (size_t i = 0; i < cfg->nschedules; i++) {
		const struct pp_sched_conf *sc = &cfg->schedules[i];
		bool found = false;
		for (size_t k = 0; k < cfg->ndeployments && !found; k++)
			found = !strcmp(cfg->deployments[k].name, sc->deployment);
		if (!found)
			return fail_at(err, sc->file, sc->line, "schedule", sc->name, "deployment",
				       "no [deployment \"%s\"] section", sc->deployment);
	}
	if (cfg->ndeployments > PP_DEPLOY_MAX)
		return pp_fail(err, PP_EINVALID, "%s: more than %d [deployment] sections",
			       cfg->path ? cfg->path : "configuration", PP_DEPLOY_MAX);
	struct pp_deploy_spec *specs =
		cfg->ndeployments ? calloc(cfg->ndeployments, sizeof(*specs)) : NULL;
	if (cfg->ndeployments && !specs)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	for (size_t i = 0; i < cfg->ndeployments; i++) {
		int rc = read_deployment(cfg, &cfg->deployments[i], &specs[i], err);
		if (rc) {
			pp_deploy_specs_free(specs, cfg->ndeployments);
			return rc;
		}
	}
	*out = specs;
	*n = cfg->ndeployments;
	return 0;
}
