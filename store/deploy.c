/* Deployments, schedules, work queues, pool settings and the limit-aware
 * claim of due runs, written once for both backends on store/db.h.
 *
 * Races with other dispatchers are settled by the schedule row: every
 * change to a schedule (apply, pause, delete, a scheduling pass) first
 * bumps or deletes its row, which takes the row's lock on PostgreSQL (SQLite
 * serialises writers anyway), and only then deletes runs; a pass writes its
 * runs only if the row's generation is still the one it read. So a pass
 * and a redeploy never interleave into runs of a removed schedule, and a
 * slot's run exists at most once (the UNIQUE index on runs.slot_key). */
#include "store/deploy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/db.h"

#define TERMINAL "('SUCCEEDED','FAILED','CRASHED','CANCELLED','DEAD','QUARANTINED')"
/* A run holding a slot of its pool, queue and deployment: started and not
 * finished, or claimed and about to start. */
#define ACTIVE(a)                                                                                  \
	"(" a ".state NOT IN " TERMINAL " AND (" a ".state <> 'SCHEDULED' OR " a                   \
	".lease_owner IS NOT NULL))"
/* Unstarted future slot runs of deployment $1 (schedule $2, NULL: all)
 * after $3 (ms): what pausing or changing a schedule removes. */
#define UNSTARTED_SLOTS                                                                            \
	"source = 'deployment' AND deployment = $1 AND slot_key IS NOT NULL"                       \
	" AND (CAST($2 AS TEXT) IS NULL OR schedule_key = $2) AND state = 'SCHEDULED'"             \
	" AND lease_owner IS NULL AND attempt = 0 AND scheduled_ms > CAST($3 AS BIGINT)"

void pp_rows_free(struct pp_rows *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->nrows * r->ncols; i++)
		free(r->v[i]);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

static const char *i64s(char *buf, int64_t v)
{
	snprintf(buf, 24, "%lld", (long long)v);
	return buf;
}

static int64_t num(const char *s)
{
	return s ? strtoll(s, NULL, 10) : 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static int q(struct pp_store *s, const char *what, const char *sql, int np, const char *const *p,
	     struct pp_rows *out, long *changes, struct pp_error *err)
{
	if (out)
		memset(out, 0, sizeof(*out));
	return pp_store_db(s)->query(s, what, sql, np, p, out, changes, err);
}

static int begin(struct pp_store *s, struct pp_error *err)
{
	return pp_store_db(s)->begin(s, err);
}

/* Commit when rc is 0, else roll back; returns the outcome. */
static int finish(struct pp_store *s, int rc, struct pp_error *err)
{
	if (!rc)
		return pp_store_db(s)->commit(s, err);
	pp_store_db(s)->rollback(s);
	return rc;
}

static void sched_clear(struct pp_dep_sched *c)
{
	free(c->timezone);
	free(c->cron);
	free(c->rrule);
	free(c->parameters);
}

static void dep_clear(struct pp_dep_rec *d)
{
	free(d->name);
	free(d->pool);
	free(d->queue);
	free(d->description);
	free(d->entrypoint);
	free(d->job_variables);
	free(d->parameters);
	free(d->parameter_schema);
	free(d->tags);
	for (int j = 0; j < d->nsched; j++)
		sched_clear(&d->sched[j]);
	free(d->sched);
}

void pp_dep_recs_free(struct pp_dep_rec *d, int n)
{
	for (int i = 0; d && i < n; i++)
		dep_clear(&d[i]);
	free(d);
}

/* Most runs one statement deletes here: the ids are read in pages. */
#define DELETE_PAGE 200

/* Delete the runs where `where` holds (a predicate on runs, parameters
 * $1..$np) and their events; *deleted (when non-NULL) gains how many.
 * PostgreSQL's run_events has no foreign key (migration 14), so this keeps
 * events from outliving their run: the runs are locked as they are read
 * (FOR UPDATE: a run another transaction changes is waited for, then
 * taken only if it still qualifies), and exactly those are deleted,
 * their events first. Every write of an event writes its run's row in the
 * same statement, so no event of a locked run can come before this
 * transaction ends. SQLite's write transaction already shuts out every
 * other writer, and its foreign key stays. */
static int delete_runs(struct pp_store *s, const char *what, const char *where, int np,
		       const char *const *p, long *deleted, struct pp_error *err)
{
	char sql[1024];
	struct pp_rows ids;
	int rc, page;

	if (snprintf(sql, sizeof(sql), "SELECT id FROM runs WHERE %s LIMIT %d%s", where,
		     DELETE_PAGE, pp_store_db(s)->lock_rows) >= (int)sizeof(sql))
		return pp_fail(err, PP_EINVALID, "%s: predicate too long for %zu bytes", what,
			       sizeof(sql));
	do {
		rc = q(s, what, sql, np, p, &ids, NULL, err);
		for (int i = 0; !rc && i < ids.nrows; i++) {
			const char *const id[] = {pp_row(&ids, i, 0)};
			long n = 0;

			rc = q(s, what, "DELETE FROM run_events WHERE run_id = $1", 1, id, NULL,
			       NULL, err);
			if (!rc)
				rc = q(s, what, "DELETE FROM runs WHERE id = $1", 1, id, NULL, &n,
				       err);
			if (!rc && deleted)
				*deleted += n;
		}
		if (rc) {
			pp_rows_free(&ids);
			return rc;
		}
		page = ids.nrows;
		pp_rows_free(&ids);
	} while (page == DELETE_PAGE);
	return 0;
}

/* Delete unstarted future slot runs (UNSTARTED_SLOTS) and their events. */
static int drop_future(struct pp_store *s, const char *dep, const char *skey, int64_t now,
		       int *removed, struct pp_error *err)
{
	char ms[24];
	const char *const p[] = {dep, skey, i64s(ms, now * 1000)};
	long n = 0;
	int rc = delete_runs(s, "delete future runs", UNSTARTED_SLOTS, 3, p, &n, err);

	if (!rc && removed)
		*removed += (int)n;
	return rc;
}

/* ---- apply ---- */

#define DEP_COLS                                                                                   \
	"id, name, pool, queue, description, job_variables, parameters, parameter_schema, tags,"   \
	" paused, concurrency_limit, collision, created_ms, updated_ms, entrypoint"
#define SCHED_COLS                                                                                 \
	"skey, kind, timezone, cron, rrule, day_or, interval_s, anchor, active, catchup,"          \
	" catchup_window, overlap, cursor_s, gen, parameters"

static void row_to_dep(const struct pp_rows *r, int i, struct pp_dep_rec *d)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->id, sizeof(d->id), "%s", pp_row(r, i, 0));
	d->name = dup_or_null(pp_row(r, i, 1));
	d->pool = dup_or_null(pp_row(r, i, 2));
	d->queue = dup_or_null(pp_row(r, i, 3));
	d->description = dup_or_null(pp_row(r, i, 4));
	d->job_variables = dup_or_null(pp_row(r, i, 5));
	d->parameters = dup_or_null(pp_row(r, i, 6));
	d->parameter_schema = dup_or_null(pp_row(r, i, 7));
	d->tags = dup_or_null(pp_row(r, i, 8));
	d->paused = num(pp_row(r, i, 9)) != 0;
	d->concurrency_limit = (int)num(pp_row(r, i, 10));
	snprintf(d->collision, sizeof(d->collision), "%s", pp_row(r, i, 11));
	d->created_ms = num(pp_row(r, i, 12));
	d->updated_ms = num(pp_row(r, i, 13));
	d->entrypoint = dup_or_null(pp_row(r, i, 14));
}

static void row_to_sched(const struct pp_rows *r, int i, struct pp_dep_sched *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->key, sizeof(c->key), "%s", pp_row(r, i, 0));
	snprintf(c->kind, sizeof(c->kind), "%s", pp_row(r, i, 1));
	c->timezone = dup_or_null(pp_row(r, i, 2));
	c->cron = dup_or_null(pp_row(r, i, 3));
	c->rrule = dup_or_null(pp_row(r, i, 4));
	c->day_or = num(pp_row(r, i, 5)) != 0;
	c->interval = num(pp_row(r, i, 6));
	c->anchor = num(pp_row(r, i, 7));
	c->active = num(pp_row(r, i, 8)) != 0;
	snprintf(c->catchup, sizeof(c->catchup), "%s", pp_row(r, i, 9));
	c->catchup_window = num(pp_row(r, i, 10));
	snprintf(c->overlap, sizeof(c->overlap), "%s", pp_row(r, i, 11));
	c->cursor = num(pp_row(r, i, 12));
	c->gen = num(pp_row(r, i, 13));
	c->parameters = dup_or_null(pp_row(r, i, 14));
}

/* The deployment's own fields (not paused, not schedules) equal. */
static bool dep_same(const struct pp_dep_rec *a, const struct pp_dep_rec *b)
{
	return same(a->pool, b->pool) && same(a->queue, b->queue) &&
	       same(a->description, b->description) && same(a->entrypoint, b->entrypoint) &&
	       same(a->job_variables, b->job_variables) && same(a->parameters, b->parameters) &&
	       same(a->parameter_schema, b->parameter_schema) && same(a->tags, b->tags) &&
	       a->concurrency_limit == b->concurrency_limit && same(a->collision, b->collision);
}

static bool sched_opts_same(const struct pp_dep_sched *a, const struct pp_dep_sched *b)
{
	return a->active == b->active && same(a->catchup, b->catchup) &&
	       a->catchup_window == b->catchup_window && same(a->overlap, b->overlap) &&
	       same(a->parameters ? a->parameters : "{}", b->parameters ? b->parameters : "{}");
}

static int check_queue(struct pp_store *s, const struct pp_dep_rec *d, struct pp_error *err)
{
	if (!strcmp(d->queue, PP_DEFAULT_QUEUE))
		return 0;
	const char *const p[] = {d->pool, d->queue};
	struct pp_rows r;
	int rc = q(s, "read queue", "SELECT 1 FROM work_queues WHERE pool = $1 AND name = $2", 2, p,
		   &r, NULL, err);
	if (rc)
		return rc;
	int found = r.nrows;
	pp_rows_free(&r);
	if (!found)
		return pp_fail(err, PP_ENOTFOUND,
			       "deployment %s: work queue \"%s\" of pool \"%s\" does not exist "
			       "(create it with `pushpool queue set %s %s`)",
			       d->name, d->queue, d->pool, d->pool, d->queue);
	return 0;
}

static int insert_sched(struct pp_store *s, const char *dep, const struct pp_dep_sched *c, int pos,
			int64_t now, struct pp_error *err)
{
	char b[7][24];
	const char *const p[] = {
		dep,
		c->key,
		c->kind,
		c->timezone,
		c->cron,
		c->rrule,
		i64s(b[0], c->day_or),
		i64s(b[1], c->interval),
		i64s(b[2], c->anchor),
		i64s(b[3], c->active),
		c->catchup,
		i64s(b[4], c->catchup_window),
		c->overlap,
		i64s(b[5], now),
		i64s(b[6], pos),
		c->parameters ? c->parameters : "{}",
	};
	return q(s, "insert schedule",
		 "INSERT INTO deployment_schedules(deployment, skey, kind, timezone, cron, rrule,"
		 " day_or, interval_s, anchor, active, catchup, catchup_window, overlap, cursor_s,"
		 " pos, parameters, gen) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,"
		 "$15,$16,1)",
		 16, p, NULL, NULL, err);
}

static int apply_schedules(struct pp_store *s, const struct pp_dep_rec *d, bool dep_changed,
			   int64_t now, struct pp_apply_result *res, bool *changed,
			   struct pp_error *err)
{
	const char *const p[] = {d->name};
	struct pp_rows old;
	int rc = q(s, "read schedules",
		   "SELECT " SCHED_COLS ", pos FROM deployment_schedules WHERE deployment = $1", 1,
		   p, &old, NULL, err);
	if (rc)
		return rc;
	char b[6][24];
	for (int i = 0; i < old.nrows && !rc; i++) {
		const char *key = pp_row(&old, i, 0);
		int j = 0;
		while (j < d->nsched && strcmp(d->sched[j].key, key))
			j++;
		if (j == d->nsched) {
			/* Removed: the row first (its lock), then its runs. */
			const char *const k[] = {d->name, key};
			rc = q(s, "delete schedule",
			       "DELETE FROM deployment_schedules WHERE deployment = $1 AND skey = "
			       "$2",
			       2, k, NULL, NULL, err);
			if (!rc)
				rc = drop_future(s, d->name, key, now, &res->runs_removed, err);
			res->sched_removed++;
			*changed = true;
			continue;
		}
		struct pp_dep_sched was;
		row_to_sched(&old, i, &was);
		const struct pp_dep_sched *c = &d->sched[j];
		bool opts_same = sched_opts_same(&was, c);
		bool pos_same = num(pp_row(&old, i, 15)) == j;
		sched_clear(&was);
		if (opts_same && pos_same && !dep_changed)
			continue;
		/* Changed options, or a changed deployment: the row is bumped and
		 * its future runs are made again from now with the new values;
		 * past slots keep their runs. Only moved in the list: the row
		 * keeps its runs. */
		bool remake = !opts_same || dep_changed;
		const char *const u[] = {
			d->name,
			key,
			i64s(b[0], c->active),
			c->catchup,
			c->overlap,
			i64s(b[1], c->catchup_window),
			i64s(b[2], j),
			i64s(b[3], now),
			i64s(b[4], remake),
			c->parameters ? c->parameters : "{}",
		};
		rc = q(s, "update schedule",
		       "UPDATE deployment_schedules SET active = $3, catchup = $4, overlap = $5,"
		       " catchup_window = $6, pos = $7, gen = gen + 1, parameters = $10,"
		       " cursor_s = CASE WHEN $9 = 1 AND cursor_s > $8 THEN $8 ELSE cursor_s END"
		       " WHERE deployment = $1 AND skey = $2",
		       10, u, NULL, NULL, err);
		if (!rc && remake)
			rc = drop_future(s, d->name, key, now, &res->runs_removed, err);
		*changed = true;
	}
	for (int j = 0; j < d->nsched && !rc; j++) {
		int i = 0;
		while (i < old.nrows && strcmp(pp_row(&old, i, 0), d->sched[j].key))
			i++;
		if (i < old.nrows)
			continue;
		rc = insert_sched(s, d->name, &d->sched[j], j, now, err);
		res->sched_added++;
		*changed = true;
	}
	pp_rows_free(&old);
	return rc;
}

static int apply_one(struct pp_store *s, const struct pp_dep_rec *d, int64_t now,
		     struct pp_apply_result *res, const char **outcome, struct pp_error *err)
{
	for (int i = 0; i < d->nsched; i++)
		for (int j = 0; j < i; j++)
			if (!strcmp(d->sched[i].key, d->sched[j].key))
				return pp_fail(
					err, PP_EINVALID,
					"deployment %s: schedules %d and %d are the same rule",
					d->name, j + 1, i + 1);
	int rc = check_queue(s, d, err);
	if (rc)
		return rc;
	const char *const p[] = {d->name};
	struct pp_rows r;
	rc = q(s, "read deployment", "SELECT " DEP_COLS " FROM deployments WHERE name = $1", 1, p,
	       &r, NULL, err);
	if (rc)
		return rc;
	char b[4][24];
	bool dep_changed = false, changed = false, pause_changed = false, existed = r.nrows > 0;
	if (r.nrows == 0) {
		char id[PP_ID_LEN];
		if (pp_uuid4(id)) {
			pp_rows_free(&r);
			return pp_fail(err, PP_EIO, "no random bytes for a deployment id");
		}
		const char *const v[] = {id,
					 d->name,
					 d->pool,
					 d->queue,
					 d->description,
					 d->job_variables,
					 d->parameters,
					 d->parameter_schema,
					 d->tags,
					 i64s(b[0], d->paused),
					 i64s(b[1], d->concurrency_limit),
					 d->collision,
					 i64s(b[2], now * 1000),
					 d->entrypoint};
		rc = q(s, "insert deployment",
		       "INSERT INTO deployments(" DEP_COLS
		       ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$13,$14)",
		       14, v, NULL, NULL, err);
		res->created++;
		*outcome = "created";
		changed = true;
	} else {
		struct pp_dep_rec was;
		row_to_dep(&r, 0, &was);
		dep_changed = !dep_same(&was, d);
		pause_changed = was.paused != d->paused;
		dep_clear(&was);
		if (dep_changed || pause_changed) {
			const char *const v[] = {d->name,
						 d->pool,
						 d->queue,
						 d->description,
						 d->job_variables,
						 d->parameters,
						 d->parameter_schema,
						 d->tags,
						 i64s(b[0], d->paused),
						 i64s(b[1], d->concurrency_limit),
						 d->collision,
						 i64s(b[2], now * 1000),
						 d->entrypoint};
			rc = q(s, "update deployment",
			       "UPDATE deployments SET pool = $2, queue = $3, description = $4,"
			       " job_variables = $5, parameters = $6, parameter_schema = $7,"
			       " tags = $8, paused = $9, concurrency_limit = $10, collision = $11,"
			       " updated_ms = $12, entrypoint = $13 WHERE name = $1",
			       13, v, NULL, NULL, err);
			changed = true;
		}
	}
	pp_rows_free(&r);
	if (!rc)
		rc = apply_schedules(s, d, dep_changed || pause_changed, now, res, &changed, err);
	if (!rc && pause_changed && !d->paused) {
		/* Resumed by the file: schedules start from now. */
		const char *const v[] = {d->name, i64s(b[3], now)};
		rc = q(s, "resume schedules",
		       "UPDATE deployment_schedules SET cursor_s = $2 WHERE deployment = $1", 2, v,
		       NULL, NULL, err);
	}
	if (!rc && (dep_changed || pause_changed))
		rc = drop_future(s, d->name, NULL, now, &res->runs_removed, err);
	if (existed && changed) {
		res->updated++;
		*outcome = "updated";
	} else if (existed) {
		res->unchanged++;
		*outcome = "unchanged";
	}
	return rc;
}

int pp_deploy_apply(struct pp_store *s, const struct pp_dep_rec *deps, int n, int64_t now,
		    struct pp_apply_result *res, struct pp_error *err)
{
	const char **each = res->each;
	memset(res, 0, sizeof(*res));
	res->each = each;
	int rc = begin(s, err);
	if (rc)
		return rc;
	for (int i = 0; i < n && !rc; i++) {
		const char *outcome = NULL;
		rc = apply_one(s, &deps[i], now, res, &outcome, err);
		if (each)
			each[i] = outcome;
	}
	return finish(s, rc, err);
}

/* ---- read ---- */

int pp_deploy_list(struct pp_store *s, const char *name, struct pp_dep_rec **out, int *n,
		   struct pp_error *err)
{
	*out = NULL;
	*n = 0;
	const char *const p[] = {name};
	struct pp_rows r, sc;
	int rc =
		q(s, "list deployments",
		  "SELECT " DEP_COLS " FROM deployments WHERE CAST($1 AS TEXT) IS NULL OR name = $1"
		  " ORDER BY name",
		  1, p, &r, NULL, err);
	if (rc)
		return rc;
	rc = q(s, "list schedules",
	       "SELECT " SCHED_COLS ", deployment FROM deployment_schedules"
	       " WHERE CAST($1 AS TEXT) IS NULL OR deployment = $1 ORDER BY deployment, pos",
	       1, p, &sc, NULL, err);
	if (rc) {
		pp_rows_free(&r);
		return rc;
	}
	int cnt_deps = r.nrows;
	struct pp_dep_rec *v = r.nrows ? calloc((size_t)r.nrows, sizeof(*v)) : NULL;
	if (r.nrows && !v)
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	for (int i = 0; i < r.nrows && !rc; i++) {
		row_to_dep(&r, i, &v[i]);
		int cnt = 0;
		for (int j = 0; j < sc.nrows; j++)
			cnt += !strcmp(pp_row(&sc, j, 15), v[i].name);
		if (cnt && !(v[i].sched = calloc((size_t)cnt, sizeof(*v[i].sched)))) {
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
			break;
		}
		for (int j = 0; j < sc.nrows; j++)
			if (!strcmp(pp_row(&sc, j, 15), v[i].name))
				row_to_sched(&sc, j, &v[i].sched[v[i].nsched++]);
	}
	pp_rows_free(&r);
	pp_rows_free(&sc);
	if (rc) {
		pp_dep_recs_free(v, cnt_deps);
		return rc;
	}
	*out = v;
	*n = cnt_deps;
	return 0;
}

int pp_deploy_slot_runs(struct pp_store *s, const char *deployment, const char *skey,
			int64_t until_ms, struct pp_run_rec **out, int *n, struct pp_error *err)
{
	*out = NULL;
	*n = 0;
	char ms[24];
	const char *const p[] = {deployment, skey, i64s(ms, until_ms)};
	struct pp_rows r;
	int rc = q(s, "read slot runs",
		   "SELECT id, pool, slot_key, scheduled_ms, waiting FROM runs"
		   " WHERE source = 'deployment'"
		   " AND deployment = $1 AND schedule_key = $2 AND state = 'SCHEDULED'"
		   " AND lease_owner IS NULL AND attempt = 0 AND scheduled_ms <= CAST($3 AS BIGINT)"
		   " ORDER BY scheduled_ms",
		   3, p, &r, NULL, err);
	if (rc)
		return rc;
	struct pp_run_rec *v = r.nrows ? calloc((size_t)r.nrows, sizeof(*v)) : NULL;
	if (r.nrows && !v) {
		pp_rows_free(&r);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	for (int i = 0; i < r.nrows; i++) {
		snprintf(v[i].id, sizeof(v[i].id), "%s", pp_row(&r, i, 0));
		snprintf(v[i].pool, sizeof(v[i].pool), "%s", pp_row(&r, i, 1));
		v[i].slot_key = dup_or_null(pp_row(&r, i, 2));
		v[i].scheduled_ms = num(pp_row(&r, i, 3));
		v[i].waiting = dup_or_null(pp_row(&r, i, 4));
		v[i].state = PP_ST_SCHEDULED;
	}
	*out = v;
	*n = r.nrows;
	pp_rows_free(&r);
	return 0;
}

int pp_deploy_runs(struct pp_store *s, const char *name, int state, int limit,
		   struct pp_run_rec **out, int *n, struct pp_error *err)
{
	*out = NULL;
	*n = 0;
	char lim[24];
	const char *const p[] = {
		name, state >= 0 ? pp_store_state_name((enum pp_store_state)state) : NULL,
		i64s(lim, limit > 0 ? limit : 1000000)};
	struct pp_rows r;
	int rc = q(s, "read deployment runs",
		   "SELECT id, name, state, scheduled_ms, waiting, slot_key FROM runs"
		   " WHERE source = 'deployment' AND deployment = $1"
		   " AND (CAST($2 AS TEXT) IS NULL OR state = $2)"
		   " ORDER BY scheduled_ms, id LIMIT CAST($3 AS BIGINT)",
		   3, p, &r, NULL, err);
	if (rc)
		return rc;
	struct pp_run_rec *v = r.nrows ? calloc((size_t)r.nrows, sizeof(*v)) : NULL;
	if (r.nrows && !v) {
		pp_rows_free(&r);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	for (int i = 0; i < r.nrows; i++) {
		snprintf(v[i].id, sizeof(v[i].id), "%s", pp_row(&r, i, 0));
		v[i].name = dup_or_null(pp_row(&r, i, 1));
		char *why = NULL;
		pp_store_state_read(pp_row(&r, i, 2), &v[i].state, &why);
		free(why);
		v[i].scheduled_ms = num(pp_row(&r, i, 3));
		v[i].waiting = dup_or_null(pp_row(&r, i, 4));
		v[i].slot_key = dup_or_null(pp_row(&r, i, 5));
	}
	*out = v;
	*n = r.nrows;
	pp_rows_free(&r);
	return 0;
}

/* ---- pause, delete ---- */

int pp_deploy_pause(struct pp_store *s, const char *name, const char *skey, bool paused,
		    int64_t now, int *removed, struct pp_error *err)
{
	*removed = 0;
	int rc = begin(s, err);
	if (rc)
		return rc;
	char b[3][24];
	long changed = 0;
	const char *const p[] = {name, skey, i64s(b[0], now), i64s(b[1], paused)};
	/* The schedule rows first: a pass that read them writes nothing now. */
	rc = q(s, "pause schedules",
	       "UPDATE deployment_schedules SET gen = gen + 1,"
	       " active = CASE WHEN CAST($2 AS TEXT) IS NULL THEN active ELSE 1 - $4 END,"
	       " cursor_s = CASE WHEN $4 = 0 THEN $3 ELSE cursor_s END"
	       " WHERE deployment = $1 AND (CAST($2 AS TEXT) IS NULL OR skey = $2)",
	       4, p, NULL, &changed, err);
	if (!rc && skey && !changed)
		rc = pp_fail(err, PP_ENOTFOUND, "deployment %s has no schedule %s", name, skey);
	if (!rc && !skey) {
		const char *const d[] = {name, b[1], i64s(b[2], now * 1000)};
		rc = q(s, "pause deployment",
		       "UPDATE deployments SET paused = $2, updated_ms = $3 WHERE name = $1", 3, d,
		       NULL, &changed, err);
		if (!rc && !changed)
			rc = pp_fail(err, PP_ENOTFOUND, "deployment %s not found", name);
	}
	if (!rc && paused)
		rc = drop_future(s, name, skey, now, removed, err);
	return finish(s, rc, err);
}

int pp_deploy_delete(struct pp_store *s, const char *name, int *removed, struct pp_error *err)
{
	*removed = 0;
	int rc = begin(s, err);
	if (rc)
		return rc;
	const char *const p[] = {name};
	long changed = 0;
	rc = q(s, "delete schedules", "DELETE FROM deployment_schedules WHERE deployment = $1", 1,
	       p, NULL, NULL, err);
	if (!rc)
		rc = q(s, "delete deployment", "DELETE FROM deployments WHERE name = $1", 1, p,
		       NULL, &changed, err);
	if (!rc && !changed)
		rc = pp_fail(err, PP_ENOTFOUND, "deployment %s not found", name);
#define UNSTARTED                                                                                  \
	"source = 'deployment' AND deployment = $1 AND state = 'SCHEDULED'"                        \
	" AND lease_owner IS NULL AND attempt = 0"
	long deleted = 0;
	if (!rc)
		rc = delete_runs(s, "delete runs", UNSTARTED, 1, p, &deleted, err);
#undef UNSTARTED
	if (!rc)
		*removed = (int)deleted;
	return finish(s, rc, err);
}

/* ---- materialise ---- */

int pp_deploy_materialise(struct pp_store *s, const struct pp_slot_batch *b, int *inserted,
			  bool *applied, struct pp_error *err)
{
	*inserted = 0;
	*applied = false;
	int rc = begin(s, err);
	if (rc)
		return rc;
	char t[4][24];
	const char *const p[] = {b->deployment, b->skey, i64s(t[0], b->expect_gen),
				 i64s(t[1], b->cursor)};
	long changed = 0;
	rc = q(s, "advance schedule",
	       "UPDATE deployment_schedules SET cursor_s = $4, gen = gen + 1"
	       " WHERE deployment = $1 AND skey = $2 AND gen = $3 AND active = 1"
	       " AND EXISTS (SELECT 1 FROM deployments d WHERE d.name = $1 AND d.paused = 0)",
	       4, p, NULL, &changed, err);
	if (rc || !changed) {
		pp_store_db(s)->rollback(s);
		return rc;
	}
	int64_t now_ms = 0;
	rc = pp_store_db(s)->now_ms(s, &now_ms, err);
	for (int i = 0; i < b->ndrop && !rc; i++) {
		const char *const d[] = {b->drop[i]};
		/* Only while nobody has taken it: a run claimed meanwhile keeps
		 * its history. */
		rc = delete_runs(s, "drop missed run",
				 "id = $1 AND state = 'SCHEDULED' AND lease_owner IS NULL", 1, d,
				 NULL, err);
	}
	for (int i = 0; i < b->nruns && !rc; i++) {
		struct pp_run_rec *r = &b->runs[i];
		if (!r->id[0] && pp_uuid7(r->id)) {
			rc = pp_fail(err, PP_EIO, "no random bytes for a run id");
			break;
		}
		const char *const v[] = {r->id,
					 r->pool,
					 r->name,
					 r->deployment,
					 r->job_variables ? r->job_variables : "{}",
					 r->parameters ? r->parameters : "{}",
					 i64s(t[2], r->scheduled_ms),
					 i64s(t[3], now_ms),
					 r->queue,
					 r->slot_key,
					 b->skey};
		long added = 0;
		rc = q(s, "insert slot run",
		       "INSERT INTO runs(id, pool, name, deployment, job_variables, parameters,"
		       " source, scheduled_ms, next_attempt_ms, priority, state, created_ms,"
		       " updated_ms, queue, slot_key, schedule_key) VALUES ($1,$2,$3,$4,$5,$6,"
		       "'deployment',$7,0,0,'SCHEDULED',$8,$8,$9,$10,$11) ON CONFLICT DO NOTHING",
		       11, v, NULL, &added, err);
		if (!rc && added) {
			const char *const e[] = {r->id, t[3]};
			rc = q(s, "insert event",
			       "INSERT INTO run_events(run_id, ts_ms, state, message)"
			       " VALUES ($1, $2, 'SCHEDULED', 'created by its schedule')",
			       2, e, NULL, NULL, err);
			(*inserted)++;
		}
	}
	rc = finish(s, rc, err);
	if (!rc)
		*applied = true;
	return rc;
}

/* ---- queues and pools ---- */

void pp_queue_recs_free(struct pp_queue_rec *v, int n)
{
	for (int i = 0; v && i < n; i++) {
		free(v[i].pool);
		free(v[i].name);
	}
	free(v);
}

void pp_pool_recs_free(struct pp_pool_rec *v, int n)
{
	for (int i = 0; v && i < n; i++)
		free(v[i].name);
	free(v);
}

int pp_queue_set(struct pp_store *s, const char *pool, const char *name, int priority, int limit,
		 int paused, struct pp_error *err)
{
	int rc = begin(s, err);
	if (rc)
		return rc;
	char b[3][24];
	const char *const p[] = {pool, name, i64s(b[0], priority), i64s(b[1], limit),
				 i64s(b[2], paused)};
	rc = q(s, "create queue",
	       "INSERT INTO work_queues(pool, name, priority, concurrency_limit, paused)"
	       " SELECT $1, $2, CASE WHEN $3 > 0 THEN $3 ELSE"
	       "  (SELECT COALESCE(MAX(priority), 0) + 1 FROM work_queues WHERE pool = $1) END,"
	       " CASE WHEN $4 > 0 THEN $4 ELSE 0 END, CASE WHEN $5 > 0 THEN 1 ELSE 0 END"
	       " WHERE NOT EXISTS (SELECT 1 FROM work_queues WHERE pool = $1 AND name = $2)",
	       5, p, NULL, NULL, err);
	if (!rc)
		rc = q(s, "change queue",
		       "UPDATE work_queues SET"
		       " priority = CASE WHEN $3 > 0 THEN $3 ELSE priority END,"
		       " concurrency_limit = CASE WHEN $4 < 0 THEN concurrency_limit ELSE $4 END,"
		       " paused = CASE WHEN $5 < 0 THEN paused ELSE $5 END"
		       " WHERE pool = $1 AND name = $2",
		       5, p, NULL, NULL, err);
	if (rc == PP_ECONFLICT)
		pp_fail(err, PP_ECONFLICT,
			"pool %s: another queue has priority %d (priorities are unique per pool)",
			pool, priority);
	return finish(s, rc, err);
}

/* The count of runs holding a slot of pool $1, queue $2 of pool $1, or
 * deployment $1 (db.h's count_active), when the backend has none of its
 * own. */
static const char *const slot_count_own[] = {
	[PP_SLOT_POOL] = "SELECT count(*) FROM runs a WHERE a.pool = $1 AND " ACTIVE("a"),
	[PP_SLOT_QUEUE] = "SELECT count(*) FROM runs a WHERE a.pool = $1"
			  " AND COALESCE(a.queue, 'default') = $2 AND " ACTIVE("a"),
	/* By state, so runs_deployment (deployment, state) finds them
	 * without reading the deployment's finished runs (PostgreSQL:
	 * 78 ms to 1.4 ms a count with 1,000,000 of them). Rows of
	 * unknown state, which ACTIVE counts, are quarantined by the
	 * claim first. */
	[PP_SLOT_DEPLOYMENT] = "SELECT count(*) FROM runs a WHERE a.source = 'deployment'"
			       " AND a.deployment = $1 AND a.state IN " PP_UNFINISHED_SQL
			       " AND (a.state <> 'SCHEDULED' OR a.lease_owner IS NOT NULL)",
};

static const char *slot_count_sql(struct pp_store *s, int slot)
{
	const char *sql = pp_store_db(s)->count_active[slot];
	return sql ? sql : slot_count_own[slot];
}

#define QUEUE_WAITING                                                                              \
	"(SELECT count(*) FROM runs a WHERE a.pool = q.pool"                                       \
	" AND COALESCE(a.queue, 'default') = q.name AND a.state = 'SCHEDULED'"                     \
	" AND a.lease_owner IS NULL AND a.scheduled_ms <= CAST($2 AS BIGINT))"

int pp_queue_list(struct pp_store *s, const char *pool, struct pp_queue_rec **out, int *n,
		  struct pp_error *err)
{
	*out = NULL;
	*n = 0;
	int64_t now = 0;
	int rc = pp_store_db(s)->now_ms(s, &now, err);
	if (rc)
		return rc;
	char b[24];
	const char *const p[] = {pool, i64s(b, now)};
	struct pp_rows r;
	rc = q(s, "list queues",
	       "SELECT q.pool, q.name, q.priority, q.concurrency_limit, q.paused, " QUEUE_WAITING
	       " FROM work_queues q"
	       " WHERE CAST($1 AS TEXT) IS NULL OR q.pool = $1 ORDER BY q.pool, q.priority",
	       2, p, &r, NULL, err);
	if (rc)
		return rc;
	struct pp_queue_rec *v = r.nrows ? calloc((size_t)r.nrows, sizeof(*v)) : NULL;
	if (r.nrows && !v) {
		pp_rows_free(&r);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	for (int i = 0; i < r.nrows; i++) {
		v[i].pool = dup_or_null(pp_row(&r, i, 0));
		v[i].name = dup_or_null(pp_row(&r, i, 1));
		v[i].priority = (int)num(pp_row(&r, i, 2));
		v[i].concurrency_limit = (int)num(pp_row(&r, i, 3));
		v[i].paused = num(pp_row(&r, i, 4)) != 0;
		v[i].waiting = (long)num(pp_row(&r, i, 5));
	}
	*n = r.nrows;
	pp_rows_free(&r);
	/* Each queue's runs under way as its claim counts them, through the
	 * backend's indexes, not by reading every run of its pool. */
	for (int i = 0; i < *n && !rc; i++) {
		const char *const c[] = {v[i].pool, v[i].name};
		struct pp_rows cr;
		rc = q(s, "count queue's runs", slot_count_sql(s, PP_SLOT_QUEUE), 2, c, &cr, NULL,
		       err);
		if (!rc) {
			v[i].active = cr.nrows ? (long)num(pp_row(&cr, 0, 0)) : 0;
			pp_rows_free(&cr);
		}
	}
	if (rc) {
		pp_queue_recs_free(v, *n);
		*n = 0;
		return rc;
	}
	*out = v;
	return 0;
}

int pp_pool_set(struct pp_store *s, const char *pool, int limit, int paused, struct pp_error *err)
{
	int rc = begin(s, err);
	if (rc)
		return rc;
	char b[2][24];
	const char *const p[] = {pool, i64s(b[0], limit), i64s(b[1], paused)};
	rc = q(s, "create pool settings",
	       "INSERT INTO pool_settings(pool, concurrency_limit, paused) VALUES ($1, 0, 0)"
	       " ON CONFLICT DO NOTHING",
	       1, p, NULL, NULL, err);
	if (!rc)
		rc = q(s, "change pool settings",
		       "UPDATE pool_settings SET"
		       " concurrency_limit = CASE WHEN $2 < 0 THEN concurrency_limit ELSE $2 END,"
		       " paused = CASE WHEN $3 < 0 THEN paused ELSE $3 END WHERE pool = $1",
		       3, p, NULL, NULL, err);
	return finish(s, rc, err);
}

int pp_pool_list(struct pp_store *s, bool runs, struct pp_pool_rec **out, int *n,
		 struct pp_error *err)
{
	*out = NULL;
	*n = 0;
	struct pp_rows r;
	int rc = q(s, "list pools",
		   runs ? "SELECT pool, NULL, NULL, concurrency_limit, paused FROM pool_settings"
			  " UNION ALL SELECT pool, state, count(*), NULL, NULL FROM runs"
			  " GROUP BY pool, state ORDER BY 1"
			: "SELECT pool, NULL, NULL, concurrency_limit, paused FROM pool_settings"
			  " ORDER BY 1",
		   0, NULL, &r, NULL, err);
	if (rc)
		return rc;
	struct pp_pool_rec *v = r.nrows ? calloc((size_t)r.nrows, sizeof(*v)) : NULL;
	int cnt = 0;
	if (r.nrows && !v) {
		pp_rows_free(&r);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	for (int i = 0; i < r.nrows; i++) {
		const char *name = pp_row(&r, i, 0);
		if (!cnt || strcmp(v[cnt - 1].name, name)) {
			if (!(v[cnt].name = strdup(name))) {
				pp_pool_recs_free(v, cnt);
				pp_rows_free(&r);
				return pp_fail(err, PP_ENOMEM, "out of memory");
			}
			cnt++;
		}
		struct pp_pool_rec *pr = &v[cnt - 1];
		if (pp_row(&r, i, 1)) {
			enum pp_store_state st;
			char *why = NULL;
			if (!pp_store_state_read(pp_row(&r, i, 1), &st, &why))
				pr->by_state[st] += (long)num(pp_row(&r, i, 2));
			free(why);
		} else {
			pr->concurrency_limit = (int)num(pp_row(&r, i, 3));
			pr->paused = num(pp_row(&r, i, 4)) != 0;
		}
	}
	pp_rows_free(&r);
	*out = v;
	*n = cnt;
	return 0;
}

/* ---- the claim of due runs ---- */

/* Runs holding a slot per pool, queue or deployment, counted at most
 * once per claim (when a rule needs the number) and kept up to date as
 * this claim leases more. */
struct slot_count {
	char kind; /* 'p', 'q', 'd' */
	char *a, *b;
	long n;	       /* when counted */
	bool counted;  /* counted on first use: only a limit or an overlap rule needs n */
	bool buffered; /* 'd': a run already waits under buffer_one */
	bool marked;   /* its due runs were told why they wait, in this claim */
};

struct counts {
	struct slot_count *v;
	int n, cap;
};

static int count_for(struct counts *c, char kind, const char *a, const char *b,
		     struct slot_count **out, struct pp_error *err)
{
	for (int i = 0; i < c->n; i++)
		if (c->v[i].kind == kind && same(c->v[i].a, a) && same(c->v[i].b, b)) {
			*out = &c->v[i];
			return 0;
		}
	if (c->n == c->cap) {
		int ncap = c->cap ? c->cap * 2 : 8;
		struct slot_count *nv = realloc(c->v, (size_t)ncap * sizeof(*nv));
		if (!nv)
			return pp_fail(err, PP_ENOMEM, "out of memory");
		c->v = nv;
		c->cap = ncap;
	}
	struct slot_count *e = &c->v[c->n++];
	*e = (struct slot_count){.kind = kind, .a = dup_or_null(a), .b = dup_or_null(b)};
	*out = e;
	return 0;
}

/* The runs holding e's slots, counted the first time a rule asks: most
 * runs are under no limit, and a count reads every active run of its
 * pool. Runs this claim leased before count (they hold a lease). */
static int slot_n(struct pp_store *s, struct slot_count *e, long *n, struct pp_error *err)
{
	if (e->counted) {
		*n = e->n;
		return 0;
	}
	int slot = e->kind == 'p'   ? PP_SLOT_POOL
		   : e->kind == 'q' ? PP_SLOT_QUEUE
				    : PP_SLOT_DEPLOYMENT;
	const char *sql = slot_count_sql(s, slot);
	const char *const p[] = {e->a, e->b};
	struct pp_rows r;
	int rc = q(s, "count active runs", sql, e->kind == 'q' ? 2 : 1, p, &r, NULL, err);
	if (rc)
		return rc;
	e->n = r.nrows ? (long)num(pp_row(&r, 0, 0)) : 0;
	e->counted = true;
	pp_rows_free(&r);
	*n = e->n;
	return 0;
}

static void counts_free(struct counts *c)
{
	for (int i = 0; i < c->n; i++) {
		free(c->v[i].a);
		free(c->v[i].b);
	}
	free(c->v);
}

static int cancel_due(struct pp_store *s, const char *id, const char *why, int64_t now,
		      struct pp_error *err)
{
	char b[24];
	const char *const p[] = {id, why, i64s(b, now)};
	long changed = 0;
	int rc = q(s, "cancel run",
		   "UPDATE runs SET state = 'CANCELLED', waiting = NULL, last_error = $2,"
		   " updated_ms = $3 WHERE id = $1 AND state = 'SCHEDULED' AND lease_owner IS NULL",
		   3, p, NULL, &changed, err);
	if (!rc && changed)
		rc = q(s, "insert event",
		       "INSERT INTO run_events(run_id, ts_ms, state, message)"
		       " VALUES ($1, $3, 'CANCELLED', $2)",
		       3, p, NULL, NULL, err);
	return rc;
}

/* overlap cancel_other: ask the deployment's runs under way to stop. */
static int cancel_others(struct pp_store *s, const char *dep, const char *except, int64_t now,
			 struct pp_error *err)
{
	char b[24];
	const char *const p[] = {dep, except, i64s(b, now)};
	struct pp_rows r;
	int rc = q(s, "cancel other runs",
		   "UPDATE runs SET cancel_requested = true, updated_ms = $3"
		   " WHERE source = 'deployment' AND deployment = $1 AND id <> $2"
		   " AND NOT cancel_requested AND " ACTIVE("runs") " RETURNING id",
		   3, p, &r, NULL, err);
	for (int i = 0; !rc && i < r.nrows; i++) {
		const char *const e[] = {pp_row(&r, i, 0), i64s(b, now)};
		rc = q(s, "insert event",
		       "INSERT INTO run_events(run_id, ts_ms, state, message) SELECT id, $2, state,"
		       " 'cancel requested: a newer run of its deployment started (overlap"
		       " cancel_other)' FROM runs WHERE id = $1",
		       2, e, NULL, NULL, err);
	}
	pp_rows_free(&r);
	return rc;
}

enum {
	C_ID,
	C_POOL,
	C_QUEUE,
	C_DEP,
	C_WAITING,
	C_PPAUSED,
	C_PLIMIT,
	C_QPAUSED,
	C_QLIMIT,
	C_DLIMIT,
	C_COLLISION,
	C_OVERLAP,
	C_COLS
};

/* What holds candidate i back (into why), or a reason to cancel it
 * (*cancel), or nothing: it may start. */
static int judge(struct pp_store *s, struct counts *c, const struct pp_rows *r, int i, int64_t now,
		 char *why, size_t whyn, bool *cancel, int *scope, struct slot_count *slots[3],
		 struct pp_error *err)
{
	*scope = -1;
	const char *pool = pp_row(r, i, C_POOL), *queue = pp_row(r, i, C_QUEUE);
	const char *dep = pp_row(r, i, C_DEP), *overlap = pp_row(r, i, C_OVERLAP);
	long plimit = (long)num(pp_row(r, i, C_PLIMIT)), qlimit = (long)num(pp_row(r, i, C_QLIMIT));
	long dlimit = (long)num(pp_row(r, i, C_DLIMIT));
	bool is_dep = pp_row(r, i, C_COLLISION) != NULL;
	*cancel = false;
	why[0] = '\0';
	slots[2] = NULL;
	int rc = count_for(c, 'p', pool, NULL, &slots[0], err);
	if (!rc)
		rc = count_for(c, 'q', pool, queue, &slots[1], err);
	if (!rc && is_dep)
		rc = count_for(c, 'd', dep, NULL, &slots[2], err);
	if (rc)
		return rc;
	long dn = 0, qn = 0, pn = 0;
	if (num(pp_row(r, i, C_PPAUSED))) {
		snprintf(why, whyn, "pool %s is paused", pool);
		*scope = 0;
		return 0;
	}
	if (num(pp_row(r, i, C_QPAUSED))) {
		snprintf(why, whyn, "queue %s of pool %s is paused", queue, pool);
		*scope = 1;
		return 0;
	}
	if (slots[2] && overlap && strcmp(overlap, "allow") && (rc = slot_n(s, slots[2], &dn, err)))
		return rc;
	if (slots[2] && overlap && strcmp(overlap, "allow") && dn > 0) {
		if (!strcmp(overlap, "skip")) {
			snprintf(why, whyn,
				 "skipped: the previous run of deployment %s is unfinished "
				 "(overlap skip)",
				 dep);
			*cancel = true;
			return 0;
		}
		if (!strcmp(overlap, "buffer_one")) {
			if (slots[2]->buffered) {
				snprintf(why, whyn,
					 "skipped: a run of deployment %s already waits for the "
					 "previous one (overlap buffer_one)",
					 dep);
				*cancel = true;
			} else {
				slots[2]->buffered = true;
				snprintf(why, whyn,
					 "waiting for the previous run of deployment %s (overlap "
					 "buffer_one)",
					 dep);
			}
			return 0;
		}
		if (!strcmp(overlap, "cancel_other")) {
			rc = cancel_others(s, dep, pp_row(r, i, C_ID), now, err);
			if (rc)
				return rc;
		}
	}
	if (slots[2] && dlimit > 0 && (rc = slot_n(s, slots[2], &dn, err)))
		return rc;
	if (slots[2] && dlimit > 0 && dn >= dlimit) {
		if (!strcmp(pp_row(r, i, C_COLLISION), "cancel_new")) {
			snprintf(why, whyn,
				 "cancelled: deployment %s is at its concurrency limit %ld "
				 "(collision_strategy cancel_new)",
				 dep, dlimit);
			*cancel = true;
		} else {
			snprintf(why, whyn, "deployment %s concurrency limit %ld reached", dep,
				 dlimit);
			*scope = 2;
		}
		return 0;
	}
	if (qlimit > 0 && (rc = slot_n(s, slots[1], &qn, err)))
		return rc;
	if (qlimit > 0 && qn >= qlimit) {
		snprintf(why, whyn, "queue %s concurrency limit %ld reached", queue, qlimit);
		*scope = 1;
		return 0;
	}
	if (plimit > 0 && (rc = slot_n(s, slots[0], &pn, err)))
		return rc;
	if (plimit > 0 && pn >= plimit) {
		snprintf(why, whyn, "pool %s concurrency limit %ld reached", pool, plimit);
		*scope = 0;
	}
	return 0;
}

/* Tell every due run of the pool (scope 0), its queue (1) or its
 * deployment (2) why it waits: the claim looks at only a few of them, and
 * catch-up must see that all of them are held back on purpose. */
static int mark_group(struct pp_store *s, int scope, const char *pool, const char *queue,
		      const char *dep, const char *why, int64_t now, struct pp_error *err)
{
	char t[24];
	const char *const p[] = {scope == 2 ? dep : pool, why, i64s(t, now), queue};
	static const char *const where[] = {
		"pool = $1",
		"pool = $1 AND COALESCE(queue, 'default') = $4",
		"source = 'deployment' AND deployment = $1",
	};
	char sql[512];
	snprintf(
		sql, sizeof(sql),
		"UPDATE runs SET waiting = $2 WHERE %s AND state = 'SCHEDULED'"
		" AND lease_owner IS NULL AND scheduled_ms <= CAST($3 AS BIGINT)"
		" AND next_attempt_ms <= CAST($3 AS BIGINT) AND (waiting IS NULL OR waiting <> $2)",
		where[scope]);
	return q(s, "note waiting runs", sql, scope == 1 ? 4 : 3, p, NULL, NULL, err);
}

/* Whether judged (the rows of this claim's first read) holds id. */
static bool judged_already(const struct pp_rows *judged, const char *id)
{
	for (int i = 0; judged && i < judged->nrows; i++)
		if (!strcmp(pp_row(judged, i, C_ID), id))
			return true;
	return false;
}

/* One run more (delta 1) or fewer (-1) in each of a run's slots that a
 * rule has counted. */
static void slots_add(struct slot_count *const slots[3], int delta)
{
	for (int k = 0; k < 3; k++)
		if (slots[k] && slots[k]->counted)
			slots[k]->n += delta;
}

/* A run judged free to start, leased with the others of its read. */
struct take {
	int row;
	struct slot_count *slots[3];
};

/* Lease the runs takes[0..n) names in one call, in order into out; a run
 * that was not free any more (another dispatcher took it first) gives its
 * slots back and is *held. */
static int lease_taken(struct pp_store *s, const struct pp_rows *r, const struct take *takes, int n,
		       const char *owner, int64_t lease_ms, int *got, bool *held,
		       struct pp_run_rec **out, int *nout, struct pp_error *err)
{
	if (n == 0)
		return 0;
	const char **ids = calloc((size_t)n, sizeof(*ids));
	struct pp_run_rec *recs = calloc((size_t)n, sizeof(*recs));
	bool *leased = calloc((size_t)n, sizeof(*leased));
	/* out grows once for all of them: a claim of hundreds grown a record
	 * at a time copied its array at every step (issue 23). */
	struct pp_run_rec *grown = realloc(*out, (size_t)(*nout + n) * sizeof(*grown));
	if (grown)
		*out = grown;
	int rc = ids && recs && leased && grown ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
	for (int i = 0; !rc && i < n; i++)
		ids[i] = pp_row(r, takes[i].row, C_ID);
	if (!rc)
		rc = pp_store_db(s)->lease(s, ids, n, owner, lease_ms, recs, leased, err);
	for (int i = 0; i < n; i++) {
		if (!rc && leased[i]) {
			(*out)[(*nout)++] = recs[i];
			continue;
		}
		if (leased && leased[i])
			pp_run_rec_free(&recs[i]);
		*held = true;
		(*got)--;
		slots_add(takes[i].slots, -1);
	}
	free(ids);
	free(recs);
	free(leased);
	return rc;
}

/* Judge the candidates of r in order and lease those that may start,
 * until *got reaches max; rows in judged were judged by this claim
 * already. *held when one was not leased (a pause or limit held it back,
 * it was cancelled, or another dispatcher took it first). The runs judged
 * free are leased together at the end, each counted in its slots when
 * judged: a run another dispatcher took meanwhile only makes the runs
 * judged after it see one run too many, never one too few. */
static int take_due(struct pp_store *s, struct counts *c, const struct pp_rows *r,
		    const struct pp_rows *judged, const char *owner, int64_t lease_ms, int64_t now,
		    int max, int *got, bool *held, struct pp_run_rec **out, int *n,
		    struct pp_error *err)
{
	int rc = 0, ntakes = 0;
	struct take *takes = calloc((size_t)(max > *got ? max - *got : 1), sizeof(*takes));
	if (!takes)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	for (int i = 0; i < r->nrows && *got < max && !rc; i++) {
		const char *id = pp_row(r, i, C_ID);
		if (judged_already(judged, id))
			continue;
		char why[256];
		bool cancel;
		int scope;
		struct slot_count *slots[3];
		rc = judge(s, c, r, i, now, why, sizeof(why), &cancel, &scope, slots, err);
		if (rc)
			break;
		if (cancel || why[0])
			*held = true;
		if (cancel) {
			rc = cancel_due(s, id, why, now, err);
			continue;
		}
		if (why[0] && scope >= 0) {
			if (!slots[scope]->marked)
				rc = mark_group(s, scope, pp_row(r, i, C_POOL),
						pp_row(r, i, C_QUEUE), pp_row(r, i, C_DEP), why,
						now, err);
			slots[scope]->marked = true;
			continue;
		}
		if (why[0]) {
			if (!same(why, pp_row(r, i, C_WAITING))) {
				const char *const w[] = {id, why};
				rc = q(s, "note waiting run",
				       "UPDATE runs SET waiting = $2 WHERE id = $1", 2, w, NULL,
				       NULL, err);
			}
			continue;
		}
		takes[ntakes] = (struct take){.row = i};
		memcpy(takes[ntakes].slots, slots, sizeof(slots));
		ntakes++;
		(*got)++;
		slots_add(slots, 1);
	}
	if (!rc)
		rc = lease_taken(s, r, takes, ntakes, owner, lease_ms, got, held, out, n, err);
	free(takes);
	return rc;
}

/* The columns both reads below return (enum C_*). */
#define DUE_COLUMNS                                                                                \
	"r.id, r.pool, COALESCE(r.queue, 'default') AS queue, r.deployment, r.waiting,"            \
	" COALESCE(ps.paused, 0) AS ppaused, COALESCE(ps.concurrency_limit, 0) AS plimit,"
#define DUE_JOINS                                                                                  \
	" FROM runs r LEFT JOIN pool_settings ps ON ps.pool = r.pool"                              \
	" LEFT JOIN deployments d ON r.source = 'deployment' AND d.name = r.deployment"            \
	" LEFT JOIN deployment_schedules sc ON r.slot_key IS NOT NULL"                             \
	"  AND sc.deployment = r.deployment AND sc.skey = r.schedule_key"
#define DUE_WHERE                                                                                  \
	" WHERE r.state = 'SCHEDULED' AND r.lease_owner IS NULL"                                   \
	" AND r.scheduled_ms <= CAST($2 AS BIGINT) AND r.next_attempt_ms <= CAST($2 AS BIGINT)"

/* Due runs looked at per claim: at most the runs wanted plus one from
 * each (pool, queue, deployment), so runs held back by a pause or a limit
 * cannot crowd the others out of view, and at most CLAIM_WINDOW in all. */
#define CLAIM_WINDOW 1000

int pp_deploy_claim_due(struct pp_store *s, const char *pool, const char *owner, int64_t lease_ms,
			int max, struct pp_run_rec **out, int *n, struct pp_error *err)
{
	int64_t now = 0;
	int rc = pp_store_db(s)->now_ms(s, &now, err);
	if (rc)
		return rc;
	char b[3][24];
	const char *const p[] = {pool, i64s(b[0], now), i64s(b[1], max + 1),
				 i64s(b[2], CLAIM_WINDOW)};
	struct counts c = {0};
	struct pp_rows first = {0}, r = {0};
	int got = 0;
	bool held = false, fast = false;
	/* One pool without work queues (the common case: every run in its
	 * default queue, so queue priority orders nothing): the first max + 1
	 * due runs in the claim's order (the due runs' index: SQLite's
	 * runs_due, PostgreSQL's runs_due_order) are the candidates,
	 * read without numbering every due run of the pool as the window
	 * below does. Only when some of them are held back, and more are
	 * due, does the claim go on to that window. */
	if (pool) {
		struct pp_rows qr;
		rc = q(s, "read queues", "SELECT count(*) FROM work_queues WHERE pool = $1", 1, p,
		       &qr, NULL, err);
		fast = !rc && qr.nrows && num(pp_row(&qr, 0, 0)) == 0;
		pp_rows_free(&qr);
	}
	if (!rc && fast) {
		rc = q(s, "read due runs",
		       "SELECT " DUE_COLUMNS " 0, 0, COALESCE(d.concurrency_limit, 0), d.collision,"
		       " sc.overlap" DUE_JOINS DUE_WHERE " AND r.pool = $1"
		       " ORDER BY r.priority DESC, r.scheduled_ms LIMIT CAST($3 AS BIGINT)",
		       3, p, &first, NULL, err);
		if (!rc)
			rc = take_due(s, &c, &first, NULL, owner, lease_ms, now, max, &got, &held,
				      out, n, err);
	}
	if (!rc && got < max && (!fast || (held && first.nrows == max + 1))) {
		/* Queue priority (a queue never set comes last), then the run's
		 * own priority, then time. */
		rc = q(s, "read due runs",
		       "SELECT id, pool, queue, deployment, waiting, ppaused, plimit, qpaused, "
		       "qlimit,"
		       " dlimit, collision, overlap FROM (SELECT " DUE_COLUMNS
		       " COALESCE(wq.paused, 0) AS qpaused,"
		       " COALESCE(wq.concurrency_limit, 0) AS qlimit,"
		       " COALESCE(d.concurrency_limit, 0) AS dlimit, d.collision, sc.overlap,"
		       " COALESCE(wq.priority, 2147483647) AS qprio, r.priority AS rprio,"
		       " r.scheduled_ms AS due, ROW_NUMBER() OVER (PARTITION BY r.pool,"
		       "  COALESCE(r.queue, 'default'), COALESCE(r.deployment, '')"
		       "  ORDER BY r.priority DESC, r.scheduled_ms, r.id) AS nth" DUE_JOINS
		       " LEFT JOIN work_queues wq ON wq.pool = r.pool"
		       "  AND wq.name = COALESCE(r.queue, 'default')" DUE_WHERE
		       " AND (CAST($1 AS TEXT) IS NULL OR r.pool = $1)) c"
		       " WHERE nth <= CAST($3 AS BIGINT)"
		       " ORDER BY qprio, rprio DESC, due, id LIMIT CAST($4 AS BIGINT)",
		       4, p, &r, NULL, err);
		if (!rc)
			rc = take_due(s, &c, &r, fast ? &first : NULL, owner, lease_ms, now, max,
				      &got, &held, out, n, err);
	}
	counts_free(&c);
	pp_rows_free(&first);
	pp_rows_free(&r);
	return rc;
}
