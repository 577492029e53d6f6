/* The scheduling pass (deployment.h): inside `serve` and `once`, every
 * active schedule's due and upcoming slots become runs in the store.
 *
 * Exactly once: a slot's run carries the key (deployment, schedule content
 * key, instant), UNIQUE in the store, so two dispatchers, an overlapping
 * `once`, a restart after kill -9 or a redeploy of the same rule insert it
 * at most once; and a pass writes only if the schedule row is still the
 * generation it read (pp_deploy_materialise), so a pass racing a redeploy
 * or a pause writes nothing instead of runs of a removed schedule.
 *
 * Catch-up: a due slot is missed when the next slot is due too (nobody
 * started it within its period) and no claim held it back on purpose; skip
 * drops missed slots, latest keeps the newest, all keeps those within the
 * window. Whether a missed slot was already a run (made ahead before the
 * dispatchers stopped) or not makes no difference. */
#include "dispatcher/deployment.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

/* Slots looked at in one question about the past; a longer past is looked
 * at nearer to now. */
#define DUE_CAP 10000

struct due {
	int64_t t;
	int run; /* index into the schedule's unstarted runs, -1: not made yet */
};

static int cmp_due(const void *a, const void *b)
{
	const struct due *x = a, *y = b;
	return x->t < y->t ? -1 : x->t > y->t;
}

/* Slots in (cursor, now] not made into runs yet: the nearest DUE_CAP. */
static int unmade_due(struct pp_schedule *sch, int64_t cursor, int64_t now, int64_t **out,
		      size_t *n, struct pp_error *err)
{
	*out = NULL;
	*n = 0;
	if (cursor >= now)
		return 0;
	int64_t *v = malloc(DUE_CAP * sizeof(*v));
	if (!v)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	int64_t look = PP_AHEAD_MAX_SECONDS;
	for (;;) {
		int64_t from = cursor + 1 > now - look ? cursor + 1 : now - look;
		bool more = false;
		int rc = pp_schedule_between(sch, from, now + 1, DUE_CAP, v, n, &more, err);
		if (rc) {
			free(v);
			return rc;
		}
		if (!more || look <= 60)
			break;
		look /= 10;
	}
	*out = v;
	return 0;
}

struct plan {
	struct pp_run_rec *runs;
	char (*keys)[PP_SLOT_KEY_MAX];
	char (*names)[160];
	int nruns, cap;
	char *params; /* the runs' parameters, made once */
	char (*drop)[PP_ID_LEN];
	int ndrop;
};

static int plan_add(struct plan *p, const struct pp_dep_rec *d, const struct pp_dep_sched *c,
		    int64_t t, struct pp_error *err)
{
	if (!p->params) {
		int rc = pp_deployment_run_parameters(d, c, &p->params, err);
		if (rc)
			return rc;
	}
	if (p->nruns == p->cap) {
		int ncap = p->cap ? p->cap * 2 : 16;
		struct pp_run_rec *r = realloc(p->runs, (size_t)ncap * sizeof(*r));
		if (r)
			p->runs = r;
		char(*k)[PP_SLOT_KEY_MAX] = realloc(p->keys, (size_t)ncap * sizeof(*k));
		if (k)
			p->keys = k;
		char(*nm)[160] = realloc(p->names, (size_t)ncap * sizeof(*nm));
		if (nm)
			p->names = nm;
		if (!r || !k || !nm)
			return pp_fail(err, PP_ENOMEM, "out of memory");
		p->cap = ncap;
	}
	/* Pointers into keys/names are set once the arrays stop moving. */
	pp_deployment_slot_run(d, c, t, p->params, p->keys[p->nruns], p->names[p->nruns], 160,
			       &p->runs[p->nruns]);
	p->nruns++;
	return 0;
}

static void plan_free(struct plan *p)
{
	free(p->runs);
	free(p->keys);
	free(p->names);
	free(p->params);
	free(p->drop);
}

static int plan_schedule(struct pp_store *s, const struct pp_dep_rec *d,
			 const struct pp_dep_sched *c, int64_t now, struct pp_sched_stats *st,
			 struct pp_error *err)
{
	struct pp_schedule *sch = NULL;
	int rc = pp_deployment_schedule(c, &sch, err);
	if (rc)
		return rc;
	struct pp_run_rec *made = NULL;
	int nmade = 0;
	int64_t *unmade = NULL;
	size_t nunmade = 0;
	struct due *due = NULL;
	struct plan p = {0};
	rc = pp_deploy_slot_runs(s, d->name, c->key, now * 1000, &made, &nmade, err);
	if (!rc)
		rc = unmade_due(sch, c->cursor, now, &unmade, &nunmade, err);
	size_t ndue = 0;
	if (!rc && (nmade || nunmade) && !(due = malloc(((size_t)nmade + nunmade) * sizeof(*due))))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc && !(p.drop = malloc(((size_t)nmade + 1) * sizeof(*p.drop))))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	for (int i = 0; !rc && i < nmade; i++)
		due[ndue++] = (struct due){.t = made[i].scheduled_ms / 1000, .run = i};
	for (size_t i = 0; !rc && i < nunmade; i++)
		due[ndue++] = (struct due){.t = unmade[i], .run = -1};
	if (ndue)
		qsort(due, ndue, sizeof(*due), cmp_due);
	/* The newest missed slot, for catchup = latest. */
	int64_t window = c->catchup_window > 0 ? c->catchup_window : PP_CATCHUP_WINDOW_DEFAULT;
	int64_t handled = c->cursor;
	long last_missed = -1;
	bool *missed = ndue ? calloc(ndue, sizeof(*missed)) : NULL;
	if (ndue && !missed && !rc)
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	for (size_t i = 0; !rc && i < ndue; i++) {
		int64_t succ;
		if (i + 1 < ndue) {
			succ = due[i + 1].t;
		} else {
			size_t got = 0;
			rc = pp_schedule_next(sch, due[i].t, 1, &succ, &got, err);
			if (!got)
				succ = INT64_MAX;
		}
		bool held = due[i].run >= 0 && made[due[i].run].waiting;
		missed[i] = succ <= now && !held;
		if (missed[i])
			last_missed = (long)i;
	}
	for (size_t i = 0; !rc && i < ndue; i++) {
		bool keep = !missed[i] ||
			    (!strcmp(c->catchup, "latest") && (long)i == last_missed) ||
			    (!strcmp(c->catchup, "all") && due[i].t >= now - window);
		if (due[i].run < 0) {
			if (due[i].t > handled)
				handled = due[i].t;
			if (keep)
				rc = plan_add(&p, d, c, due[i].t, err);
		} else if (!keep) {
			memcpy(p.drop[p.ndrop++], made[due[i].run].id, PP_ID_LEN);
		}
	}
	free(missed);
	/* Ahead: Prefect's rule, counted from now. */
	int64_t ahead[PP_AHEAD_MAX_RUNS];
	size_t nahead = 0;
	if (!rc)
		rc = pp_schedule_next(sch, now, PP_AHEAD_MAX_RUNS, ahead, &nahead, err);
	for (size_t k = 0; !rc && k < nahead; k++) {
		if (ahead[k] > now + PP_AHEAD_MAX_SECONDS ||
		    (k >= PP_AHEAD_MIN_RUNS && ahead[k] > now + PP_AHEAD_MIN_SECONDS))
			break;
		if (ahead[k] > handled) {
			rc = plan_add(&p, d, c, ahead[k], err);
			handled = ahead[k];
		}
	}
	if (!rc && (p.nruns || p.ndrop || handled != c->cursor)) {
		for (int i = 0; i < p.nruns; i++) {
			p.runs[i].slot_key = p.keys[i];
			p.runs[i].name = p.names[i];
		}
		struct pp_slot_batch b = {
			.deployment = d->name,
			.skey = c->key,
			.expect_gen = c->gen,
			.cursor = handled,
			.runs = p.runs,
			.nruns = p.nruns,
			.drop = (const char(*)[PP_ID_LEN])p.drop,
			.ndrop = p.ndrop,
		};
		int inserted = 0;
		bool applied = false;
		rc = pp_deploy_materialise(s, &b, &inserted, &applied, err);
		if (!rc && applied) {
			st->inserted += inserted;
			st->dropped += p.ndrop;
			if (p.ndrop)
				pp_info("deployment %s: %d missed slot run(s) dropped (catchup %s)",
					d->name, p.ndrop, c->catchup);
		} else if (!rc) {
			st->skipped_writes++; /* changed under us: the next pass redoes it */
		}
	}
	plan_free(&p);
	free(due);
	free(unmade);
	pp_run_recs_free(made, nmade);
	pp_schedule_free(sch);
	return rc;
}

int pp_scheduler_pass(struct pp_store *s, int64_t now, struct pp_sched_stats *st,
		      struct pp_error *err)
{
	memset(st, 0, sizeof(*st));
	struct pp_dep_rec *deps = NULL;
	int n = 0;
	int rc = pp_deploy_list(s, NULL, &deps, &n, err);
	if (rc)
		return rc;
	for (int i = 0; i < n && !rc; i++) {
		if (deps[i].paused)
			continue;
		for (int j = 0; j < deps[i].nsched && !rc; j++) {
			if (!deps[i].sched[j].active)
				continue;
			st->schedules++;
			struct pp_error e = {0};
			int r = plan_schedule(s, &deps[i], &deps[i].sched[j], now, st, &e);
			if (r && pp_err_retryable(r)) {
				rc = r; /* the store: the whole pass waits for the next */
				*err = e;
			} else if (r) {
				pp_warn("deployment %s: schedule %s: %s", deps[i].name,
					deps[i].sched[j].key, e.msg);
			}
		}
	}
	pp_dep_recs_free(deps, n);
	return rc;
}
