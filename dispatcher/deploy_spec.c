/* Declared deployments: what prefect.yaml and [deployment] sections share
 * (dispatcher/deploy_impl.h): names, interval and anchor grammars, the
 * policy words, the checks every spec passes, and freeing. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dispatcher/config.h"
#include "dispatcher/deploy_impl.h"
#include "lib/schedule.h"
#include "lib/schema.h"
#include "lib/time.h"
#include "lib/tz.h"

const char *const deploy_catchup_names[] = {"skip", "latest", "all", NULL};
const char *const deploy_overlap_names[] = {"allow", "skip", "buffer_one", "cancel_other", NULL};

char *deploy_where(const char *file, int line)
{
	char *w = NULL;
	if (asprintf(&w, "%s:%d", file, line) < 0)
		return NULL;
	return w;
}

const char *deploy_name_problem(const char *name)
{
	if (!name || !*name)
		return "is empty";
	if (strlen(name) > PP_DEPLOY_NAME_MAX)
		return "is longer than 128 bytes";
	for (const char *p = name; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return "holds a control character";
		if (strchr("/%&<>", *p))
			return "holds one of / % & < > (Prefect refuses them too)";
	}
	return NULL;
}

static int word_index(const char *text, const char *const *words)
{
	for (int i = 0; text && words[i]; i++)
		if (!strcmp(text, words[i]))
			return i;
	return -1;
}

int deploy_parse_catchup(const char *text, enum pp_catchup *out)
{
	int i = word_index(text, deploy_catchup_names);
	if (i < 0)
		return PP_EINVALID;
	*out = (enum pp_catchup)i;
	return 0;
}

int deploy_parse_overlap(const char *text, enum pp_overlap *out)
{
	int i = word_index(text, deploy_overlap_names);
	if (i < 0)
		return PP_EINVALID;
	*out = (enum pp_overlap)i;
	return 0;
}

int deploy_parse_collision(const char *text, enum pp_collision *out)
{
	if (text && !strcasecmp(text, "ENQUEUE"))
		*out = PP_COLLISION_ENQUEUE;
	else if (text && !strcasecmp(text, "CANCEL_NEW"))
		*out = PP_COLLISION_CANCEL_NEW;
	else
		return PP_EINVALID;
	return 0;
}

/* ------------------------------------------------------------- intervals */

/* A non-negative decimal number at *p (advanced past it). */
static bool read_number(const char **p, double *v)
{
	char *end;
	if (!isdigit((unsigned char)**p) && **p != '.')
		return false;
	errno = 0;
	*v = strtod(*p, &end);
	if (end == *p || errno || !isfinite(*v))
		return false;
	*p = end;
	return true;
}

/* ISO 8601 durations as pydantic reads them for a timedelta: weeks, days,
 * hours, minutes, seconds (years and months have no fixed length). */
static int iso_duration(const char *s, double *secs, char *why, size_t whyn)
{
	const char *p = s + 1; /* after 'P' */
	bool in_time = false, any = false;
	double total = 0;
	while (*p) {
		if (*p == 'T' && !in_time) {
			in_time = true;
			p++;
			continue;
		}
		double v;
		if (!read_number(&p, &v))
			goto bad;
		double unit;
		switch (*p) {
		case 'W': unit = in_time ? -1 : 604800; break;
		case 'D': unit = in_time ? -1 : 86400; break;
		case 'H': unit = in_time ? 3600 : -1; break;
		case 'M':
			if (!in_time) {
				snprintf(why, whyn, "\"%s\": months have no fixed length", s);
				return PP_EINVALID;
			}
			unit = 60;
			break;
		case 'S': unit = in_time ? 1 : -1; break;
		case 'Y':
			snprintf(why, whyn, "\"%s\": years have no fixed length", s);
			return PP_EINVALID;
		default: unit = -1;
		}
		if (unit < 0)
			goto bad;
		total += v * unit;
		any = true;
		p++;
	}
	if (!any)
		goto bad;
	*secs = total;
	return 0;
bad:
	snprintf(why, whyn, "\"%s\" is not an ISO 8601 duration (P1DT2H, PT30M, P2W)", s);
	return PP_EINVALID;
}

/* Python's str(timedelta) and the forms pydantic reads back:
 * "[D day[s], ][H:]MM:SS[.f]". */
static bool clock_duration(const char *s, double *secs)
{
	const char *p = s;
	double days = 0, a, b, c = -1;
	if (!read_number(&p, &a))
		return false;
	if (*p == ' ') {
		/* "1 day, 2:00:00" / "3 days, 0:30:00" */
		if (a != floor(a))
			return false;
		days = a;
		p++;
		if (!strncmp(p, "days", 4))
			p += 4;
		else if (!strncmp(p, "day", 3))
			p += 3;
		else
			return false;
		if (*p == ',')
			p++;
		while (*p == ' ')
			p++;
		if (!read_number(&p, &a))
			return false;
	}
	if (*p != ':')
		return false;
	p++;
	if (!read_number(&p, &b))
		return false;
	if (*p == ':') {
		p++;
		if (!read_number(&p, &c))
			return false;
	}
	if (*p)
		return false;
	double h = c >= 0 ? a : 0, m = c >= 0 ? b : a, sec = c >= 0 ? c : b;
	if (m >= 60 || sec >= 60 || m != floor(m) || (c >= 0 && h != floor(h)))
		return false;
	*secs = days * 86400 + h * 3600 + m * 60 + sec;
	return true;
}

int deploy_parse_interval(const char *text, int64_t *seconds, char *why, size_t whyn)
{
	double secs;
	if (!text || !*text) {
		snprintf(why, whyn, "is empty");
		return PP_EINVALID;
	}
	if (text[0] == 'P') {
		int rc = iso_duration(text, &secs, why, whyn);
		if (rc)
			return rc;
	} else if (strchr(text, ':')) {
		if (!clock_duration(text, &secs)) {
			snprintf(why, whyn, "\"%s\" is not a duration like 01:30:00", text);
			return PP_EINVALID;
		}
	} else if (pp_duration_parse(text, &secs)) {
		snprintf(why, whyn,
			 "\"%s\" is not a duration (seconds, 90s, 15m, 1h, 1d, PT1H or 01:00:00)",
			 text);
		return PP_EINVALID;
	}
	if (!(secs > 0) || secs != floor(secs)) {
		snprintf(why, whyn, "\"%s\" must be a positive whole number of seconds", text);
		return PP_EINVALID;
	}
	if (secs > (double)PP_INTERVAL_MAX_SECONDS) {
		snprintf(why, whyn, "\"%s\" is longer than 100 years", text);
		return PP_EINVALID;
	}
	*seconds = (int64_t)secs;
	return 0;
}

/* ---------------------------------------------------------------- anchors */

static int wall_to_instant(int64_t wall, const char *tz, int64_t *instant, char *why, size_t whyn)
{
	struct pp_tz *z = NULL;
	struct pp_error err = {0};
	if (pp_tz_load(tz && *tz ? tz : "UTC", &z, &err)) {
		snprintf(why, whyn, "%s", err.msg);
		return PP_EINVALID;
	}
	*instant = pp_tz_to_utc(z, wall);
	pp_tz_free(z);
	return 0;
}

int deploy_parse_anchor(const char *text, const char *tz, int64_t *instant, char *why, size_t whyn)
{
	int64_t ms;
	if (text && !pp_time_parse(text, 0, &ms)) {
		*instant = ms / 1000;
		return 0;
	}
	char buf[64];
	if (text && strlen(text) == 10) {
		snprintf(buf, sizeof(buf), "%sT00:00:00", text); /* a date: its midnight */
		text = buf;
	}
	if (!text || pp_time_parse(text, PP_TIME_ZONE_OPTIONAL, &ms)) {
		snprintf(why, whyn,
			 "\"%s\" is not a date-time (2024-01-01T09:00:00, with an offset or Z "
			 "for an instant, without one for a time on the schedule's clock)",
			 text ? text : "");
		return PP_EINVALID;
	}
	/* Read as UTC, it is the wall time: place it on tz's clock. */
	return wall_to_instant(ms / 1000, tz, instant, why, whyn);
}

int deploy_default_anchor(const char *tz, int64_t *instant, char *why, size_t whyn)
{
	return wall_to_instant(pp_days_from_civil(2020, 1, 1) * 86400, tz, instant, why, whyn);
}

/* ----------------------------------------------------------------- checks */

static int check_schedule(const struct pp_deploy_spec *d, struct pp_deploy_schedule *s,
			  struct pp_error *err)
{
	s->spec.timezone = s->timezone;
	s->spec.cron = s->cron;
	s->spec.rrule = s->rrule;
	struct pp_schedule *compiled = NULL;
	int rc = pp_schedule_new(&s->spec, &compiled, err);
	pp_schedule_free(compiled);
	if (rc)
		pp_error_prefix(err, "%s: deployment \"%s\": schedule: ", s->where, d->name);
	return rc;
}

static int parse_owned(const char *text, const char *what, const struct pp_deploy_spec *d,
		       struct pp_json **out, struct pp_error *err)
{
	int rc = pp_json_parse(text, strlen(text), NULL, out, err);
	if (rc)
		pp_error_prefix(err, "%s: deployment \"%s\": %s: ", d->where, d->name, what);
	return rc;
}

/* Shallow-merge overrides over base (both objects), into a new object. */
static struct pp_json *merged(const struct pp_json *base, const struct pp_json *over)
{
	struct pp_json *m = pp_json_clone(base);
	if (!m)
		return NULL;
	pp_json_foreach (o, over) {
		if (pp_json_set(m, o->key, pp_json_clone(o))) {
			pp_json_free(m);
			return NULL;
		}
	}
	return m;
}

static int check_parameters(const struct pp_deploy_spec *d, struct pp_error *err)
{
	struct pp_json *schema = NULL, *params = NULL, *loose = NULL;
	int rc = parse_owned(d->parameters, "parameters", d, &params, err);
	if (rc || !d->parameter_schema)
		goto out;
	if ((rc = parse_owned(d->parameter_schema, "parameter_openapi_schema", d, &schema, err)))
		goto out;
	/* The deployment may leave required parameters to each run (as
	 * Prefect does), so its own are checked without "required". */
	if (!(loose = pp_json_clone(schema))) {
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
		goto out;
	}
	pp_json_remove(loose, "required");
	if ((rc = pp_schema_validate(loose, schema, params, "parameters", err))) {
		pp_error_prefix(err, "%s: deployment \"%s\": ", d->where, d->name);
		goto out;
	}
	/* A scheduled run gets nothing but the deployment's and its
	 * schedule's parameters: they must be complete. */
	for (size_t i = 0; i < d->nschedules && !rc; i++) {
		const struct pp_deploy_schedule *s = &d->schedules[i];
		if (!s->active)
			continue;
		struct pp_json *over = NULL, *all = NULL;
		if ((rc = parse_owned(s->parameters, "schedule parameters", d, &over, err)))
			break;
		if (!(all = merged(params, over)))
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
		else if ((rc = pp_schema_validate(schema, schema, all, "parameters", err)))
			pp_error_prefix(err,
					"%s: deployment \"%s\": the runs of this schedule would "
					"fail: ",
					s->where, d->name);
		pp_json_free(over);
		pp_json_free(all);
	}
out:
	pp_json_free(schema);
	pp_json_free(params);
	pp_json_free(loose);
	return rc;
}

int deploy_check(struct pp_deploy_spec *d, const struct pp_config *cfg, struct pp_error *err)
{
	if (cfg && !pp_config_pool(cfg, d->pool))
		return pp_fail(err, PP_EINVALID,
			       "%s: deployment \"%s\": work pool \"%s\" is not a [pool \"%s\"] "
			       "section of %s",
			       d->where, d->name, d->pool, d->pool,
			       cfg->path ? cfg->path : "the configuration");
	for (size_t i = 0; i < d->nschedules; i++) {
		int rc = check_schedule(d, &d->schedules[i], err);
		if (rc)
			return rc;
	}
	return check_parameters(d, err);
}

void deploy_spec_clear(struct pp_deploy_spec *d)
{
	{
		for (size_t k = 0; k < d->nschedules; k++) {
			struct pp_deploy_schedule *s = &d->schedules[k];
			free(s->timezone);
			free(s->cron);
			free(s->rrule);
			free(s->where);
			free(s->parameters);
		}
		free(d->schedules);
		free(d->name);
		free(d->pool);
		free(d->queue);
		free(d->description);
		free(d->job_variables);
		free(d->parameters);
		free(d->parameter_schema);
		free(d->tags);
		free(d->where);
		free(d->entrypoint);
	}
	memset(d, 0, sizeof(*d));
}

void pp_deploy_specs_free(struct pp_deploy_spec *specs, size_t n)
{
	for (size_t i = 0; specs && i < n; i++)
		deploy_spec_clear(&specs[i]);
	free(specs);
}
