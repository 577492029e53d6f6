/* The `deployments:` section of a Prefect project file (prefect.yaml) into
 * declared deployments. Fields and their mapping: docs/deployments-file.md.
 * The file is read whole (lib/yaml: anchors, aliases and merge keys
 * expanded), `{{ $ENV_VAR }}` placeholders are filled in, every deployment
 * is checked, and only then is anything returned: a file applies all or
 * nothing. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher/config.h"
#include "dispatcher/deploy_impl.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/yaml.h"

struct rd {
	const char *file;
	char dep[PP_DEPLOY_NAME_MAX + 32]; /* `deployment "NAME"` or `deployments[I]` */
	struct pp_error *err;
};

static int bad(struct rd *r, const struct pp_json *at, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int bad(struct rd *r, const struct pp_json *at, const char *field, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return pp_fail(r->err, PP_EINVALID, "%s:%d: %s: %s: %s", r->file, at ? at->line : 0, r->dep,
		       field, what);
}

static int oom(struct rd *r)
{
	return pp_fail(r->err, PP_ENOMEM, "out of memory");
}

/* ------------------------------------------------------------ templating */

/* Prefect fills `{{ ... }}` placeholders at deploy time from build and
 * push step outputs, Prefect variables and blocks, and the environment
 * (`{{ $NAME }}`). Only the environment exists here; anything else is an
 * error naming the placeholder, so no run starts with a literal "{{" --
 * except in job variables (lenient), where Prefect keeps a placeholder it
 * cannot fill as text and leaves the values to the worker: kept, with a
 * warning naming it. */
static int fill_string(struct rd *r, struct pp_json *j, const char *path, bool lenient)
{
	if (!memmem(j->str, j->len, "{{", 2))
		return 0;
	struct pp_buf out;
	pp_buf_init(&out, j->len + (64 << 10));
	const char *p = j->str, *end = j->str + j->len;
	int rc = 0;
	while (p < end && !rc) {
		const char *open = memmem(p, (size_t)(end - p), "{{", 2);
		const char *close =
			open ? memmem(open + 2, (size_t)(end - open - 2), "}}", 2) : NULL;
		if (!close) {
			rc = pp_buf_append(&out, p, (size_t)(end - p));
			break;
		}
		rc = pp_buf_append(&out, p, (size_t)(open - p));
		const char *e = open + 2, *ee = close;
		while (e < ee && isspace((unsigned char)*e))
			e++;
		while (ee > e && isspace((unsigned char)ee[-1]))
			ee--;
		size_t n = (size_t)(ee - e);
		bool env = n > 1 && e[0] == '$' && (isalpha((unsigned char)e[1]) || e[1] == '_');
		for (size_t i = 2; env && i < n; i++)
			env = isalnum((unsigned char)e[i]) || e[i] == '_';
		if (!env && lenient) {
			pp_warn("%s:%d: %s: %s: {{ %.*s }} is kept as text: pushpool runs no "
				"build or push steps to fill it in",
				r->file, j->line, r->dep, path, (int)(n > 200 ? 200 : n), e);
			rc = pp_buf_append(&out, open, (size_t)(close + 2 - open));
			p = close + 2;
			continue;
		}
		if (!env) {
			pp_buf_free(&out);
			return bad(
				r, j, path,
				"{{ %.*s }} cannot be resolved: pushpool runs no build or push "
				"steps and reads no Prefect variables or blocks; write the value "
				"itself, or take it from the environment with {{ $NAME }}",
				(int)(n > 200 ? 200 : n), e);
		}
		char name[256];
		snprintf(name, sizeof(name), "%.*s", (int)(n - 1), e + 1);
		const char *v = getenv(name);
		if (!v) {
			pp_buf_free(&out);
			return bad(r, j, path, "{{ $%s }}: environment variable %s is not set",
				   name, name);
		}
		if (!rc)
			rc = pp_buf_puts(&out, v);
		p = close + 2;
	}
	if (rc) {
		pp_buf_free(&out);
		return bad(r, j, path, "longer than %zu bytes once filled in", out.max);
	}
	char *s = out.data ? out.data : strdup("");
	if (!s)
		return oom(r);
	pp_json_own_str(j, s, out.len);
	return 0;
}

/* Every string under j; under work_pool.job_variables leniently. */
static int fill_templates(struct rd *r, struct pp_json *j, char *path, size_t len, size_t cap)
{
	if (j->type == PP_JSON_STRING)
		return fill_string(r, j, path,
				   !strncmp(path, "work_pool.job_variables", 23) &&
					   strchr(".[", path[23] ? path[23] : '.'));
	size_t i = 0;
	pp_json_foreach (c, j) {
		if (j->type == PP_JSON_OBJECT)
			snprintf(path + len, cap - len, "%s%s", len ? "." : "", c->key);
		else
			snprintf(path + len, cap - len, "[%zu]", i);
		i++;
		int rc = fill_templates(r, c, path, strlen(path), cap);
		path[len] = '\0';
		if (rc)
			return rc;
	}
	return 0;
}

/* ---------------------------------------------------------------- fields */

static bool absent(const struct pp_json *j)
{
	return !j || j->type == PP_JSON_NULL;
}

/* A string member into *out (a copy), NULL when absent or null. */
static int get_string(struct rd *r, const struct pp_json *obj, const char *key, const char *path,
		      char **out)
{
	const struct pp_json *j = pp_json_get(obj, key);
	*out = NULL;
	if (absent(j))
		return 0;
	if (j->type != PP_JSON_STRING)
		return bad(r, j, path, "must be a string, not a %s", pp_json_type_name(j->type));
	if (memchr(j->str, '\0', j->len))
		return bad(r, j, path, "holds a NUL character");
	return (*out = strdup(j->str)) ? 0 : oom(r);
}

static int get_bool(struct rd *r, const struct pp_json *obj, const char *key, const char *path,
		    bool *out)
{
	const struct pp_json *j = pp_json_get(obj, key);
	if (absent(j))
		return 0;
	if (j->type != PP_JSON_BOOL)
		return bad(r, j, path, "must be true or false, not a %s",
			   pp_json_type_name(j->type));
	*out = j->b;
	return 0;
}

/* An object member as JSON text ("{}" when absent or null). */
static int get_object_text(struct rd *r, const struct pp_json *obj, const char *key,
			   const char *path, bool null_when_absent, char **out)
{
	const struct pp_json *j = pp_json_get(obj, key);
	*out = NULL;
	if (absent(j))
		return null_when_absent ? 0 : ((*out = strdup("{}")) ? 0 : oom(r));
	if (j->type != PP_JSON_OBJECT)
		return bad(r, j, path, "must be a mapping, not a %s", pp_json_type_name(j->type));
	*out = pp_json_to_string(j, PP_JSON_COMPACT);
	return *out ? 0 : oom(r);
}

/* Keys Prefect reads and pushpool leaves alone, with why. */
struct ignored {
	const char *key;
	bool warn; /* the user may expect something to happen */
	const char *why;
};

static void note_ignored(struct rd *r, const struct pp_json *obj, const struct ignored *list)
{
	for (; list->key; list++) {
		const struct pp_json *j = pp_json_get(obj, list->key);
		if (absent(j))
			continue;
		if (list->warn)
			pp_warn("%s:%d: %s: %s ignored: %s", r->file, j->line, r->dep, list->key,
				list->why);
		else
			pp_info("%s:%d: %s: %s ignored: %s", r->file, j->line, r->dep, list->key,
				list->why);
	}
}

static bool in_list(const char *key, const char *const *known)
{
	for (; *known; known++)
		if (!strcmp(key, *known))
			return true;
	return false;
}

/* -------------------------------------------------------------- schedules */

static const char *const schedule_keys[] = {
	"cron",	      "interval", "rrule",    "timezone", "anchor_date",    "active",  "day_or",
	"parameters", "slug",	  "replaces", "catchup",  "catchup_window", "overlap", NULL};

/* interval: a number of seconds or a duration string. */
static int read_interval(struct rd *r, const struct pp_json *j, const char *path, int64_t *secs)
{
	char why[256];
	if (j->type == PP_JSON_NUMBER) {
		if (!(j->num > 0) || j->num != floor(j->num) ||
		    j->num > (double)PP_INTERVAL_MAX_SECONDS)
			return bad(r, j, path,
				   "%s must be a positive whole number of seconds (at most 100 "
				   "years)",
				   j->str);
		*secs = (int64_t)j->num;
		return 0;
	}
	if (j->type != PP_JSON_STRING)
		return bad(r, j, path, "must be seconds or a duration, not a %s",
			   pp_json_type_name(j->type));
	if (deploy_parse_interval(j->str, secs, why, sizeof(why)))
		return bad(r, j, path, "%s", why);
	return 0;
}

static int read_schedule(struct rd *r, const struct pp_json *j, const char *base,
			 struct pp_deploy_schedule *s)
{
	char path[96], why[512];
	int rc;
#define FIELD_PATH(k) (snprintf(path, sizeof(path), "%s.%s", base, (k)), path)
	if (j->type != PP_JSON_OBJECT)
		return bad(r, j, base,
			   "must be a mapping (cron, interval or rrule, timezone, ...)");
	s->active = true;
	s->spec.day_or = true;
	pp_json_foreach (m, j) {
		if (!in_list(m->key, schedule_keys))
			return bad(r, m, FIELD_PATH(m->key),
				   "not a schedule field (Prefect's are cron, interval, rrule, "
				   "timezone, anchor_date, active, day_or, parameters, slug; "
				   "pushpool adds catchup, catchup_window, overlap)");
	}
	if (!(s->where = deploy_where(r->file, j->line)))
		return oom(r);
	const struct pp_json *cron = pp_json_get(j, "cron"), *iv = pp_json_get(j, "interval"),
			     *rr = pp_json_get(j, "rrule");
	int kinds = !absent(cron) + !absent(iv) + !absent(rr);
	if (kinds != 1)
		return bad(r, j, base, "exactly one of cron, interval or rrule is needed (got %d)",
			   kinds);
	if ((rc = get_string(r, j, "timezone", FIELD_PATH("timezone"), &s->timezone)) ||
	    (rc = get_bool(r, j, "active", FIELD_PATH("active"), &s->active)) ||
	    (rc = get_bool(r, j, "day_or", FIELD_PATH("day_or"), &s->spec.day_or)) ||
	    (rc = get_object_text(r, j, "parameters", FIELD_PATH("parameters"), false,
				  &s->parameters)))
		return rc;
	const struct pp_json *anchor = pp_json_get(j, "anchor_date");
	if (!absent(cron)) {
		s->spec.kind = PP_SCHEDULE_CRON;
		if ((rc = get_string(r, j, "cron", FIELD_PATH("cron"), &s->cron)))
			return rc;
	} else if (!absent(rr)) {
		s->spec.kind = PP_SCHEDULE_RRULE;
		if ((rc = get_string(r, j, "rrule", FIELD_PATH("rrule"), &s->rrule)))
			return rc;
	} else {
		s->spec.kind = PP_SCHEDULE_INTERVAL;
		if ((rc = read_interval(r, iv, FIELD_PATH("interval"), &s->spec.interval)))
			return rc;
		if (!absent(anchor) && anchor->type != PP_JSON_STRING)
			return bad(r, anchor, FIELD_PATH("anchor_date"),
				   "must be a date-time string, not a %s",
				   pp_json_type_name(anchor->type));
		rc = absent(anchor)
			     ? deploy_default_anchor(s->timezone, &s->spec.anchor, why, sizeof(why))
			     : deploy_parse_anchor(anchor->str, s->timezone, &s->spec.anchor, why,
						   sizeof(why));
		if (rc)
			return bad(r, absent(anchor) ? j : anchor, FIELD_PATH("anchor_date"), "%s",
				   why);
	}
	/* Prefect reads these only for their kind of schedule. */
	if (!absent(anchor) && s->spec.kind != PP_SCHEDULE_INTERVAL)
		pp_info("%s:%d: %s: %s ignored: it belongs to an interval schedule (an rrule "
			"has DTSTART)",
			r->file, anchor->line, r->dep, FIELD_PATH("anchor_date"));
	const struct pp_json *day_or = pp_json_get(j, "day_or");
	if (!absent(day_or) && s->spec.kind != PP_SCHEDULE_CRON)
		pp_info("%s:%d: %s: %s ignored: it belongs to a cron schedule", r->file,
			day_or->line, r->dep, FIELD_PATH("day_or"));

	/* pushpool's policies. */
	char *word = NULL;
	if ((rc = get_string(r, j, "catchup", FIELD_PATH("catchup"), &word)))
		return rc;
	if (word && deploy_parse_catchup(word, &s->catchup)) {
		free(word);
		return bad(r, pp_json_get(j, "catchup"), path, "must be skip, latest or all");
	}
	free(word);
	if ((rc = get_string(r, j, "overlap", FIELD_PATH("overlap"), &word)))
		return rc;
	if (word && deploy_parse_overlap(word, &s->overlap)) {
		free(word);
		return bad(r, pp_json_get(j, "overlap"), path,
			   "must be allow, skip, buffer_one or cancel_other");
	}
	free(word);
	const struct pp_json *win = pp_json_get(j, "catchup_window");
	if (!absent(win)) {
		if (s->catchup != PP_CATCHUP_ALL)
			return bad(r, win, FIELD_PATH("catchup_window"),
				   "only means something with catchup: all");
		if ((rc = read_interval(r, win, FIELD_PATH("catchup_window"), &s->catchup_window)))
			return rc;
	}
	const struct pp_json *slug = pp_json_get(j, "slug"), *rep = pp_json_get(j, "replaces");
	if (!absent(slug) || !absent(rep))
		pp_info("%s:%d: %s: %s: slug and replaces ignored: pushpool knows a schedule by "
			"what it says, so an edited schedule replaces the old one by itself",
			r->file, j->line, r->dep, base);
#undef FIELD_PATH
	return 0;
}

static int read_schedules(struct rd *r, const struct pp_json *dep, struct pp_deploy_spec *d)
{
	const struct pp_json *list = pp_json_get(dep, "schedules");
	const struct pp_json *legacy = pp_json_get(dep, "schedule");
	/* Prefect: a non-empty `schedule` next to `schedules` is an error;
	 * alone, it is a one-element `schedules`. */
	if (!absent(legacy) && !(legacy->type == PP_JSON_OBJECT && !legacy->count) && list)
		return bad(r, legacy, "schedule",
			   "both schedule and schedules are given; use schedules only");
	bool single = absent(list) && !absent(legacy) &&
		      !(legacy->type == PP_JSON_OBJECT && !legacy->count);
	if (absent(list) && !single)
		return 0;
	if (!single && list->type != PP_JSON_ARRAY)
		return bad(r, list, "schedules", "must be a list, not a %s",
			   pp_json_type_name(list->type));
	size_t n = single ? 1 : list->count;
	if (n > PP_DEPLOY_SCHEDULES_MAX)
		return bad(r, list, "schedules", "more than %d schedules", PP_DEPLOY_SCHEDULES_MAX);
	if (!n)
		return 0;
	if (!(d->schedules = calloc(n, sizeof(*d->schedules))))
		return oom(r);
	for (size_t i = 0; i < n; i++) {
		const struct pp_json *s = single ? legacy : pp_json_at(list, i);
		char base[32];
		if (single)
			snprintf(base, sizeof(base), "schedule");
		else
			snprintf(base, sizeof(base), "schedules[%zu]", i);
		d->nschedules++;
		int rc = read_schedule(r, s, base, &d->schedules[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------ deployments */

static const char *const deployment_keys[] = {"name",
					      "entrypoint",
					      "work_pool",
					      "parameters",
					      "parameter_openapi_schema",
					      "enforce_parameter_schema",
					      "tags",
					      "description",
					      "paused",
					      "concurrency_limit",
					      "schedules",
					      "schedule",
					      "version",
					      "version_type",
					      "flow_name",
					      "build",
					      "push",
					      "pull",
					      "triggers",
					      "sla",
					      NULL};

static const struct ignored deployment_ignored[] = {
	{"build", true, "pushpool runs no build steps: the image must exist already"},
	{"push", true, "pushpool runs no push steps: the image must be in its registry already"},
	{"pull", true, "the job's image must hold the flow code (pushpool runs no pull steps)"},
	{"triggers", true, "pushpool has no event triggers; only schedules start runs"},
	{"sla", true, "pushpool has no SLAs"},
	{"version", false, "pushpool keeps no deployment versions"},
	{"version_type", false, "pushpool keeps no deployment versions"},
	{"flow_name", false, "pushpool knows a deployment by its name alone"},
	{NULL, false, NULL},
};

static int read_tags(struct rd *r, const struct pp_json *dep, struct pp_deploy_spec *d)
{
	const struct pp_json *t = pp_json_get(dep, "tags");
	if (absent(t))
		return (d->tags = strdup("[]")) ? 0 : oom(r);
	if (t->type != PP_JSON_ARRAY)
		return bad(r, t, "tags", "must be a list of strings, not a %s",
			   pp_json_type_name(t->type));
	pp_json_foreach (e, t)
		if (e->type != PP_JSON_STRING)
			return bad(r, e, "tags", "must be a list of strings (one is a %s)",
				   pp_json_type_name(e->type));
	d->tags = pp_json_to_string(t, PP_JSON_COMPACT);
	return d->tags ? 0 : oom(r);
}

static int read_limit(struct rd *r, const struct pp_json *dep, struct pp_deploy_spec *d)
{
	const struct pp_json *c = pp_json_get(dep, "concurrency_limit"), *lim = c;
	if (absent(c))
		return 0;
	if (c->type == PP_JSON_OBJECT) {
		lim = pp_json_get(c, "limit");
		pp_json_foreach (m, c)
			if (!in_list(m->key, (const char *const[]){"limit", "collision_strategy",
								   "grace_period_seconds", NULL}))
				return bad(r, m, "concurrency_limit",
					   "\"%s\" is not one of limit, collision_strategy, "
					   "grace_period_seconds",
					   m->key);
		char *strategy = NULL;
		int rc = get_string(r, c, "collision_strategy",
				    "concurrency_limit.collision_strategy", &strategy);
		if (rc)
			return rc;
		if (strategy && deploy_parse_collision(strategy, &d->collision)) {
			free(strategy);
			return bad(r, pp_json_get(c, "collision_strategy"),
				   "concurrency_limit.collision_strategy",
				   "must be ENQUEUE or CANCEL_NEW");
		}
		free(strategy);
		const struct pp_json *g = pp_json_get(c, "grace_period_seconds");
		if (!absent(g))
			pp_info("%s:%d: %s: concurrency_limit.grace_period_seconds ignored: a "
				"slot is held while the run is unfinished in the store",
				r->file, g->line, r->dep);
		if (absent(lim))
			return bad(r, c, "concurrency_limit.limit", "is missing");
	}
	if (lim->type != PP_JSON_NUMBER || lim->num != floor(lim->num) || lim->num < 1 ||
	    lim->num > 1000000)
		return bad(r, lim, "concurrency_limit",
			   "must be a whole number from 1 to 1000000, or {limit: N, "
			   "collision_strategy: ENQUEUE|CANCEL_NEW}");
	d->concurrency_limit = (int)lim->num;
	return 0;
}

static int read_deployment(struct rd *r, struct pp_json *dep, size_t idx, struct pp_deploy_spec *d)
{
	snprintf(r->dep, sizeof(r->dep), "deployments[%zu]", idx);
	if (dep->type != PP_JSON_OBJECT)
		return bad(r, dep, "deployment", "must be a mapping, not a %s",
			   pp_json_type_name(dep->type));
	/* Placeholders first: Prefect fills them in everywhere, the name
	 * included (messages name the deployment when its name has none). */
	const char *raw = pp_json_get_string(dep, "name");
	if (raw && !strstr(raw, "{{") && !deploy_name_problem(raw))
		snprintf(r->dep, sizeof(r->dep), "deployment \"%s\"", raw);
	char path[512] = "";
	int rc = fill_templates(r, dep, path, 0, sizeof(path));
	if (rc || (rc = get_string(r, dep, "name", "name", &d->name)))
		return rc;
	if (!d->name)
		return bad(r, dep, "name", "is missing: every deployment needs one");
	const char *problem = deploy_name_problem(d->name);
	if (problem)
		return bad(r, pp_json_get(dep, "name"), "name", "\"%s\" %s", d->name, problem);
	snprintf(r->dep, sizeof(r->dep), "deployment \"%s\"", d->name);
	if (!(d->where = deploy_where(r->file, dep->line)))
		return oom(r);

	pp_json_foreach (m, dep)
		if (!in_list(m->key, deployment_keys))
			pp_info("%s:%d: %s: %s ignored: not a field of a Prefect deployment",
				r->file, m->line, r->dep, m->key);
	note_ignored(r, dep, deployment_ignored);

	const struct pp_json *wp = pp_json_get(dep, "work_pool");
	if (absent(wp))
		return bad(r, dep, "work_pool", "is missing: name the [pool] its runs go to");
	if (wp->type != PP_JSON_OBJECT)
		return bad(r, wp, "work_pool",
			   "must be a mapping with name, work_queue_name, "
			   "job_variables");
	pp_json_foreach (m, wp)
		if (!in_list(m->key, (const char *const[]){"name", "work_queue_name",
							   "job_variables", NULL}))
			pp_info("%s:%d: %s: work_pool.%s ignored: not a Prefect work_pool field",
				r->file, m->line, r->dep, m->key);
	if ((rc = get_string(r, wp, "name", "work_pool.name", &d->pool)) ||
	    (rc = get_string(r, wp, "work_queue_name", "work_pool.work_queue_name", &d->queue)) ||
	    (rc = get_object_text(r, wp, "job_variables", "work_pool.job_variables", false,
				  &d->job_variables)))
		return rc;
	if (!d->pool)
		return bad(r, wp, "work_pool.name", "is missing: name the [pool] its runs go to");

	bool enforce = true;
	if ((rc = get_string(r, dep, "entrypoint", "entrypoint", &d->entrypoint)) ||
	    (rc = get_string(r, dep, "description", "description", &d->description)) ||
	    (rc = get_bool(r, dep, "paused", "paused", &d->paused)) ||
	    (rc = get_bool(r, dep, "enforce_parameter_schema", "enforce_parameter_schema",
			   &enforce)) ||
	    (rc = get_object_text(r, dep, "parameters", "parameters", false, &d->parameters)) ||
	    (rc = read_tags(r, dep, d)) || (rc = read_limit(r, dep, d)) ||
	    (rc = read_schedules(r, dep, d)))
		return rc;
	/* enforce_parameter_schema: false keeps Prefect's meaning: the
	 * parameters are taken as they are. */
	if (enforce &&
	    (rc = get_object_text(r, dep, "parameter_openapi_schema", "parameter_openapi_schema",
				  true, &d->parameter_schema)))
		return rc;
	return 0;
}

static const char *const top_keys[] = {"prefect-version", "name",	 "build", "push", "pull",
				       "deployments",	  "definitions", NULL};

static int read_all(struct rd *r, struct pp_json *root, const struct pp_config *cfg,
		    const char *const *names, size_t nnames, struct pp_deploy_spec **out, size_t *n)
{
	if (root->type != PP_JSON_OBJECT)
		return pp_fail(r->err, PP_EINVALID,
			       "%s:%d: a Prefect project file is a mapping with a deployments: "
			       "list, not a %s",
			       r->file, root->line, pp_json_type_name(root->type));
	pp_json_foreach (m, root)
		if (!in_list(m->key, top_keys))
			pp_info("%s:%d: %s ignored: not a section of a Prefect project file",
				r->file, m->line, m->key);
	struct pp_json *list = pp_json_get(root, "deployments");
	if (absent(list) || (list->type == PP_JSON_ARRAY && !list->count))
		return pp_fail(r->err, PP_EINVALID,
			       "%s:%d: no deployments: the file has no "
			       "deployments: list, or it is empty",
			       r->file, list ? list->line : root->line);
	if (list->type != PP_JSON_ARRAY)
		return pp_fail(r->err, PP_EINVALID, "%s:%d: deployments: must be a list, not a %s",
			       r->file, list->line, pp_json_type_name(list->type));
	if (list->count > PP_DEPLOY_MAX)
		return pp_fail(r->err, PP_EINVALID, "%s:%d: deployments: more than %d", r->file,
			       list->line, PP_DEPLOY_MAX);

	/* One name, one deployment: Prefect would apply the later over the
	 * earlier, which hides a copy-paste slip. */
	size_t i = 0;
	pp_json_foreach (dep, list) {
		const char *name = pp_json_get_string(dep, "name");
		size_t k = 0;
		for (const struct pp_json *o = list->child; name && o != dep; o = o->next, k++) {
			const char *other = pp_json_get_string(o, "name");
			if (other && !strcmp(other, name))
				return pp_fail(r->err, PP_EINVALID,
					       "%s:%d: deployments[%zu]: name \"%s\" is used twice "
					       "(first at line %d, deployments[%zu])",
					       r->file, pp_json_get(dep, "name")->line, i, name,
					       o->line, k);
		}
		i++;
	}

	struct pp_deploy_spec *specs = calloc(list->count, sizeof(*specs));
	if (!specs)
		return oom(r);
	size_t got = 0, idx = 0;
	int rc = 0;
	pp_json_foreach (dep, list) {
		const char *name = pp_json_get_string(dep, "name");
		bool wanted = !nnames;
		for (size_t k = 0; k < nnames && !wanted; k++)
			wanted = name && !strcmp(name, names[k]);
		/* Every deployment is read and checked (the file is one unit:
		 * a broken one is an error even when not asked for); only the
		 * wanted ones are kept. */
		struct pp_deploy_spec one = {0};
		rc = read_deployment(r, dep, idx++, &one);
		if (!rc)
			rc = deploy_check(&one, cfg, r->err);
		if (rc || !wanted) {
			deploy_spec_clear(&one);
			if (rc)
				break;
			continue;
		}
		specs[got++] = one;
	}
	for (size_t k = 0; !rc && k < nnames; k++) {
		bool found = false;
		for (size_t g = 0; g < got && !found; g++)
			found = !strcmp(specs[g].name, names[k]);
		if (!found)
			rc = pp_fail(r->err, PP_EINVALID, "%s: no deployment named \"%s\"", r->file,
				     names[k]);
	}
	if (rc) {
		pp_deploy_specs_free(specs, got);
		return rc;
	}
	*out = specs;
	*n = got;
	return 0;
}

int pp_deploy_specs_from_file(const char *path, const struct pp_config *cfg,
			      const char *const *names, size_t nnames, struct pp_deploy_spec **out,
			      size_t *n, struct pp_error *err)
{
	struct rd r = {.file = path, .err = err};
	struct pp_json *root = NULL;
	int rc = pp_yaml_parse_file(path, NULL, &root, err);
	if (rc == PP_ENOTFOUND)
		rc = PP_EIO; /* the header's promise: unreadable is PP_EIO */
	if (rc)
		return err->code = rc;
	rc = read_all(&r, root, cfg, names, nnames, out, n);
	pp_json_free(root);
	return rc;
}
