/* Declared deployments into store records, and stored schedules back into
 * slots (deployment.h). */
#include "dispatcher/deployment.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/json.h"

static const char *const catchup_names[] = {"skip", "latest", "all"};
static const char *const overlap_names[] = {"allow", "skip", "buffer_one", "cancel_other"};
static const char *const kind_names[] = {"cron", "interval", "rrule"};

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* The content key: what the rule means, not how it was written or which
 * row holds it, so a redeploy of the same rule names the same schedule
 * (and its slots the same runs). */
static int content_key(const struct pp_schedule *sch, char key[PP_SCHED_KEY_LEN],
		       struct pp_error *err)
{
	struct pp_buf b;
	pp_buf_init(&b, 1 << 16);
	int rc = pp_schedule_canonical(sch, &b);
	if (rc) {
		pp_buf_free(&b);
		return pp_fail(err, rc, "schedule: cannot describe the rule");
	}
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)b.data, b.len, md);
	pp_buf_free(&b);
	for (int i = 0; i < (PP_SCHED_KEY_LEN - 1) / 2; i++)
		snprintf(key + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static int sched_rec(const struct pp_deploy_schedule *ds, struct pp_dep_sched *c,
		     struct pp_error *err)
{
	struct pp_schedule *sch = NULL;
	int rc = pp_schedule_new(&ds->spec, &sch, err);
	if (!rc)
		rc = content_key(sch, c->key, err);
	pp_schedule_free(sch);
	if (rc)
		return rc;
	snprintf(c->kind, sizeof(c->kind), "%s", kind_names[ds->spec.kind]);
	c->timezone = dup_or_null(ds->spec.timezone);
	c->cron = dup_or_null(ds->spec.cron);
	c->rrule = dup_or_null(ds->spec.rrule);
	c->day_or = ds->spec.day_or;
	c->parameters = strdup(ds->parameters ? ds->parameters : "{}");
	c->interval = ds->spec.interval;
	c->anchor = ds->spec.anchor;
	c->active = ds->active;
	snprintf(c->catchup, sizeof(c->catchup), "%s", catchup_names[ds->catchup]);
	c->catchup_window = ds->catchup_window;
	snprintf(c->overlap, sizeof(c->overlap), "%s", overlap_names[ds->overlap]);
	if ((ds->spec.timezone && !c->timezone) || (ds->spec.cron && !c->cron) ||
	    (ds->spec.rrule && !c->rrule) || !c->parameters)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	return 0;
}

int pp_deployment_recs(const struct pp_deploy_spec *specs, size_t n, struct pp_dep_rec **out,
		       struct pp_error *err)
{
	*out = NULL;
	struct pp_dep_rec *v = n ? calloc(n, sizeof(*v)) : NULL;
	if (n && !v)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		const struct pp_deploy_spec *sp = &specs[i];
		struct pp_dep_rec *d = &v[i];
		d->name = strdup(sp->name);
		d->pool = strdup(sp->pool);
		d->queue = strdup(sp->queue ? sp->queue : PP_DEFAULT_QUEUE);
		d->description = dup_or_null(sp->description);
		d->entrypoint = dup_or_null(sp->entrypoint);
		d->job_variables = strdup(sp->job_variables ? sp->job_variables : "{}");
		d->parameters = strdup(sp->parameters ? sp->parameters : "{}");
		d->parameter_schema = dup_or_null(sp->parameter_schema);
		d->tags = strdup(sp->tags ? sp->tags : "[]");
		d->paused = sp->paused;
		d->concurrency_limit = sp->concurrency_limit;
		snprintf(d->collision, sizeof(d->collision), "%s",
			 sp->collision == PP_COLLISION_CANCEL_NEW ? "cancel_new" : "enqueue");
		if (!d->name || !d->pool || !d->queue || !d->job_variables || !d->parameters ||
		    !d->tags) {
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
			break;
		}
		if (sp->nschedules && !(d->sched = calloc(sp->nschedules, sizeof(*d->sched)))) {
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
			break;
		}
		for (size_t j = 0; j < sp->nschedules && !rc; j++) {
			rc = sched_rec(&sp->schedules[j], &d->sched[j], err);
			d->nsched++;
			if (rc)
				pp_error_prefix(
					err, "deployment %s: schedule %zu (%s): ", sp->name, j + 1,
					sp->schedules[j].where ? sp->schedules[j].where : "?");
		}
	}
	if (rc) {
		pp_dep_recs_free(v, (int)n);
		return rc;
	}
	*out = v;
	return 0;
}

int pp_deployment_schedule(const struct pp_dep_sched *c, struct pp_schedule **out,
			   struct pp_error *err)
{
	struct pp_schedule_spec spec = {
		.timezone = c->timezone,
		.cron = c->cron,
		.day_or = c->day_or,
		.interval = c->interval,
		.anchor = c->anchor,
		.rrule = c->rrule,
	};
	if (!strcmp(c->kind, "cron"))
		spec.kind = PP_SCHEDULE_CRON;
	else if (!strcmp(c->kind, "interval"))
		spec.kind = PP_SCHEDULE_INTERVAL;
	else if (!strcmp(c->kind, "rrule"))
		spec.kind = PP_SCHEDULE_RRULE;
	else
		return pp_fail(err, PP_EINVALID, "schedule %s: unknown kind \"%s\"", c->key,
			       c->kind);
	return pp_schedule_new(&spec, out, err);
}

int pp_deployment_run_parameters(const struct pp_dep_rec *d, const struct pp_dep_sched *c,
				 char **out, struct pp_error *err)
{
	struct pp_json *base = NULL, *over = NULL;
	const char *bt = d->parameters ? d->parameters : "{}";
	const char *ot = c->parameters ? c->parameters : "{}";
	int rc = pp_json_parse(bt, strlen(bt), NULL, &base, err);
	if (!rc)
		rc = pp_json_parse(ot, strlen(ot), NULL, &over, err);
	if (!rc && (base->type != PP_JSON_OBJECT || over->type != PP_JSON_OBJECT))
		rc = pp_fail(err, PP_EINVALID, "deployment %s: parameters are not an object",
			     d->name);
	if (!rc) {
		pp_json_foreach (p, over) {
			if (!rc && pp_json_set(base, p->key, pp_json_clone(p)))
				rc = pp_fail(err, PP_ENOMEM, "out of memory");
		}
	}
	if (!rc && !(*out = pp_json_to_string(base, 0)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	pp_json_free(base);
	pp_json_free(over);
	return rc;
}

void pp_deployment_slot_run(const struct pp_dep_rec *d, const struct pp_dep_sched *c, int64_t slot,
			    const char *parameters, char *key, char *name, size_t name_len,
			    struct pp_run_rec *r)
{
	/* name|schedule|instant: the schedule key and the instant hold no '|',
	 * so the key reads back unambiguously from the right. */
	snprintf(key, PP_SLOT_KEY_MAX, "%s|%s|%lld", d->name, c->key, (long long)slot);
	time_t t = (time_t)slot;
	struct tm tm;
	gmtime_r(&t, &tm);
	char when[32];
	strftime(when, sizeof(when), "%Y%m%d-%H%M%S", &tm);
	snprintf(name, name_len, "%s-%s", d->name, when);
	memset(r, 0, sizeof(*r));
	snprintf(r->pool, sizeof(r->pool), "%s", d->pool);
	r->name = name;
	r->deployment = d->name;
	r->queue = d->queue;
	r->job_variables = d->job_variables;
	r->parameters = (char *)parameters;
	r->slot_key = key;
	r->scheduled_ms = slot * 1000;
	r->state = PP_ST_SCHEDULED;
}

int pp_deployment_next_slots(const struct pp_dep_sched *c, int64_t after, size_t n, int64_t *slots,
			     size_t *got, struct pp_error *err)
{
	struct pp_schedule *sch = NULL;
	int rc = pp_deployment_schedule(c, &sch, err);
	if (!rc)
		rc = pp_schedule_next(sch, after, n, slots, got, err);
	pp_schedule_free(sch);
	return rc;
}
