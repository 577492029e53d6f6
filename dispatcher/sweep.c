/* The sweeper (sweep.h): one pass per pool lists the objects carrying
 * pushpool's label, judges those labelled with our store's id against the
 * store, and removes the orphans a few at a time through the op driver. */
#include "dispatcher/sweep.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/clock.h"
#include "lib/log.h"

/* Removals under way at once per pool: an old backlog of orphans must not
 * crowd the runs' own calls off the op driver. */
#define SWEEP_MAX_REMOVING 8
/* Objects whose first sighting is remembered (for clouds that report no
 * creation time); past it the oldest sightings are forgotten, which only
 * restarts their grace. */
#define SWEEP_MAX_SEEN 20000

struct seen {
	char pool[PP_NAME_MAX];
	char id[sizeof(((struct pp_remote_obj *)0)->id)];
	int64_t first_ms; /* wall */
	bool listed;	  /* in the latest listing of its pool */
};

struct sweep_rm;

struct orphan {
	struct pp_remote_obj obj;
	char why[64]; /* its run's state, or "unknown to the store" */
};

/* One pool's pass: the list op, then the removals it decided. */
struct sweep_pass {
	struct pp_sweep *s;
	struct pp_pool *pool;
	int *refs;
	struct pp_exec_policy policy;
	struct pp_json *job; /* the pool's own job, rendered for no run */
	char run_id[PP_ID_LEN];
	struct pp_run_io io; /* the list op's */
	bool io_ready;
	bool listing;
	struct pp_remote_list listed;
	struct orphan *orphans; /* after listing: the objects to remove */
	size_t norphans, next;	/* next: the next orphan to start removing */
	int removing;
	struct sweep_rm *rms;
	struct sweep_pass *next_pass;
};

struct sweep_rm {
	struct sweep_pass *pass;
	struct pp_run_io io;
	struct pp_remote_obj obj;
	char why[64];
	struct sweep_rm *next;
};

struct pp_sweep {
	struct pp_store *store;
	char store_id[PP_ID_LEN];
	struct pp_exec *exec;
	struct pp_metrics *metrics;
	struct sweep_pass *passes;
	int npasses;
	unsigned long removed;
	struct seen *seen;
	size_t nseen;
};

enum pp_sweep_verdict pp_sweep_decide(bool known, enum pp_store_state st, int64_t age_ms)
{
	if (known && !pp_store_state_terminal(st))
		return PP_SWEEP_KEEP_LIVE;
	return age_ms < PP_SWEEP_GRACE_MS ? PP_SWEEP_KEEP_YOUNG : PP_SWEEP_REMOVE;
}

struct pp_sweep *pp_sweep_new(struct pp_store *store, const char *store_id, struct pp_exec *exec,
			      struct pp_metrics *metrics)
{
	struct pp_sweep *s = calloc(1, sizeof(*s));
	if (s) {
		s->store = store;
		snprintf(s->store_id, sizeof(s->store_id), "%s", store_id);
		s->exec = exec;
		s->metrics = metrics;
	}
	return s;
}

static void pass_free(struct pp_sweep *s, struct sweep_pass *pass)
{
	for (struct sweep_pass **pp = &s->passes; *pp; pp = &(*pp)->next_pass)
		if (*pp == pass) {
			*pp = pass->next_pass;
			s->npasses--;
			break;
		}
	const struct pp_provider *prov = pass->pool->prov;
	while (pass->rms) {
		struct sweep_rm *rm = pass->rms;
		pass->rms = rm->next;
		pp_exec_io_release(&rm->io, prov);
		free(rm);
	}
	if (pass->io_ready)
		pp_exec_io_release(&pass->io, prov);
	pp_remote_list_free(&pass->listed);
	free(pass->orphans);
	pp_json_free(pass->job);
	(*pass->refs)--;
	free(pass);
}

void pp_sweep_free(struct pp_sweep *s)
{
	if (!s)
		return;
	while (s->passes)
		pass_free(s, s->passes);
	free(s->seen);
	free(s);
}

int pp_sweep_active(const struct pp_sweep *s)
{
	return s ? s->npasses : 0;
}

unsigned long pp_sweep_removed(const struct pp_sweep *s)
{
	return s ? s->removed : 0;
}

/* Our run ids are UUIDs: a label holding anything else was not written by
 * a run of any store, so the object is left to whoever wrote it. */
static bool is_run_id(const char *s)
{
	size_t n = strlen(s);
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] != '-'
							      : !isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* When the object was first listed by this process (now, the first time). */
static int64_t first_seen(struct pp_sweep *s, const char *pool, const char *id, int64_t now)
{
	for (size_t i = 0; i < s->nseen; i++)
		if (!strcmp(s->seen[i].id, id) && !strcmp(s->seen[i].pool, pool)) {
			s->seen[i].listed = true;
			return s->seen[i].first_ms;
		}
	if (!s->seen && !(s->seen = calloc(SWEEP_MAX_SEEN, sizeof(*s->seen))))
		return now;
	if (s->nseen == SWEEP_MAX_SEEN)
		memmove(s->seen, s->seen + 1, --s->nseen * sizeof(*s->seen));
	struct seen *e = &s->seen[s->nseen++];
	snprintf(e->pool, sizeof(e->pool), "%s", pool);
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->first_ms = now;
	e->listed = true;
	return now;
}

/* Forget the pool's objects the latest listing no longer has. */
static void prune_seen(struct pp_sweep *s, const char *pool)
{
	size_t k = 0;
	for (size_t i = 0; i < s->nseen; i++) {
		struct seen *e = &s->seen[i];
		bool mine = !strcmp(e->pool, pool);
		if (mine && !e->listed)
			continue;
		if (mine)
			e->listed = false;
		if (k != i)
			s->seen[k] = *e;
		k++;
	}
	s->nseen = k;
}

/* Whose an object is, by its store label. */
enum owner { OWNER_US, OWNER_OTHER_STORE, OWNER_NO_STORE };

static enum owner owner_of(const struct pp_sweep *s, const struct pp_remote_obj *o)
{
	if (!o->store_id[0])
		return OWNER_NO_STORE;
	return strcasecmp(o->store_id, s->store_id) ? OWNER_OTHER_STORE : OWNER_US;
}

/* Judge one listed object; why says what a removal is for. Only objects
 * labelled with our store's id are judged by our store: another store's
 * runs are unknown here but not orphans, and an object without a store
 * label (a pushpool from before store labels, or `pushpool run`) may
 * belong to any store. */
static enum pp_sweep_verdict judge(struct sweep_pass *pass, const struct pp_remote_obj *o,
				   int64_t now, char *why, size_t n)
{
	struct pp_sweep *s = pass->s;
	int64_t seen = first_seen(s, pass->pool->name, o->id, now);
	if (!is_run_id(o->run_id) || owner_of(s, o) != OWNER_US)
		return PP_SWEEP_KEEP_LIVE;
	struct pp_run_rec rec = {0};
	struct pp_error err = {0};
	int rc = s->store->ops->get(s->store, o->run_id, &rec, NULL, NULL, &err);
	if (rc && rc != PP_ENOTFOUND) {
		pp_warn("pool %s: sweep: run %s of %s not read, kept: %s", pass->pool->name,
			o->run_id, o->id, err.msg);
		return PP_SWEEP_KEEP_LIVE;
	}
	enum pp_store_state st = rc ? PP_ST_DEAD : rec.state;
	snprintf(why, n, "%s", rc ? "unknown to the store" : pp_store_state_name(st));
	if (!rc)
		pp_run_rec_free(&rec);
	int64_t since = o->created_ms > 0 && o->created_ms < seen ? o->created_ms : seen;
	return pp_sweep_decide(!rc, st, now - since);
}

static void pump(struct sweep_pass *pass);

static void pass_maybe_done(struct sweep_pass *pass)
{
	if (!pass->listing && !pass->removing && pass->next >= pass->norphans)
		pass_free(pass->s, pass);
}

static void rm_done(void *ud, int rc, const struct pp_error *err)
{
	struct sweep_rm *rm = ud;
	struct sweep_pass *pass = rm->pass;
	struct pp_sweep *s = pass->s;
	if (rc) {
		pp_warn("pool %s: sweep: %s (run %s, %s) not removed, tried again next sweep: %s",
			pass->pool->name, rm->obj.id, rm->obj.run_id, rm->why, err->msg);
	} else {
		s->removed++;
		pp_metrics_count_swept(s->metrics, pass->pool->name, 1);
		pp_info("pool %s: swept %s: run %s is %s", pass->pool->name, rm->obj.id,
			rm->obj.run_id, rm->why);
	}
	for (struct sweep_rm **pp = &pass->rms; *pp; pp = &(*pp)->next)
		if (*pp == rm) {
			*pp = rm->next;
			break;
		}
	pp_exec_io_release(&rm->io, pass->pool->prov);
	free(rm);
	pass->removing--;
	pump(pass);
}

static int start_remove(struct sweep_pass *pass, const struct orphan *o, struct pp_error *err)
{
	struct sweep_rm *rm = calloc(1, sizeof(*rm));
	if (!rm)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	rm->pass = pass;
	rm->obj = o->obj;
	snprintf(rm->why, sizeof(rm->why), "%s", o->why);
	pp_pool_io_init(pass->pool, &rm->io, rm->obj.run_id, "sweep", pass->job);
	rm->io.store_id = pass->s->store_id;
	int rc = pp_exec_io_prepare(&rm->io, pass->pool->prov, err);
	if (rc) {
		free(rm);
		return rc;
	}
	rc = pp_run_io_set_infra_id(&rm->io, err, "%s", rm->obj.id)
		     ?: pp_exec_start(pass->s->exec, pass->pool->prov, PP_OP_REMOVE, &rm->io,
				      &pass->policy, rm_done, rm, err);
	if (rc) {
		pp_exec_io_release(&rm->io, pass->pool->prov);
		free(rm);
		return rc;
	}
	rm->next = pass->rms;
	pass->rms = rm;
	pass->removing++;
	return 0;
}

/* Start removals up to the cap; end the pass when none is left. */
static void pump(struct sweep_pass *pass)
{
	while (pass->removing < SWEEP_MAX_REMOVING && pass->next < pass->norphans) {
		struct pp_error err = {0};
		const struct orphan *o = &pass->orphans[pass->next++];
		if (start_remove(pass, o, &err))
			pp_warn("pool %s: sweep: %s not removed: %s", pass->pool->name, o->obj.id,
				err.msg);
	}
	pass_maybe_done(pass);
}

static void list_done(void *ud, int rc, const struct pp_error *err)
{
	struct sweep_pass *pass = ud;
	struct pp_sweep *s = pass->s;
	pass->listing = false;
	if (rc) {
		pp_warn("pool %s: sweep: listing failed, tried again next sweep: %s",
			pass->pool->name, err->msg);
		pass_maybe_done(pass);
		return;
	}
	if (pass->listed.n && !(pass->orphans = calloc(pass->listed.n, sizeof(*pass->orphans)))) {
		pp_warn("pool %s: sweep: out of memory", pass->pool->name);
		pass_maybe_done(pass);
		return;
	}
	int64_t now = pp_wall_ms();
	size_t young = 0, others = 0, unlabelled = 0;
	for (size_t i = 0; i < pass->listed.n; i++) {
		struct orphan *o = &pass->orphans[pass->norphans];
		enum owner who = owner_of(s, &pass->listed.v[i]);
		others += who == OWNER_OTHER_STORE;
		unlabelled += who == OWNER_NO_STORE;
		enum pp_sweep_verdict v =
			judge(pass, &pass->listed.v[i], now, o->why, sizeof(o->why));
		if (v == PP_SWEEP_KEEP_YOUNG)
			young++;
		if (v == PP_SWEEP_REMOVE) {
			o->obj = pass->listed.v[i];
			pass->norphans++;
		}
	}
	prune_seen(s, pass->pool->name);
	pp_debug("pool %s: sweep: %zu labelled object(s), %zu to remove, %zu within the grace, "
		 "%zu of other stores",
		 pass->pool->name, pass->listed.n, pass->norphans, young, others);
	/* Said each pass, as the operator has to remove them by hand. */
	if (unlabelled)
		pp_info("pool %s: sweep: %zu object(s) carry a run label but no store label "
			"(made by `pushpool run` or an older pushpool): left alone",
			pass->pool->name, unlabelled);
	pump(pass);
}

int pp_sweep_pool(struct pp_sweep *s, struct pp_pool *p, int *refs,
		  const struct pp_exec_policy *policy, struct pp_error *err)
{
	if (!p->prov->list || !p->prov->remove)
		return 0;
	for (struct sweep_pass *q = s->passes; q; q = q->next_pass)
		if (q->pool == p)
			return 0;
	struct sweep_pass *pass = calloc(1, sizeof(*pass));
	if (!pass)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	pass->s = s;
	pass->pool = p;
	pass->refs = refs;
	pass->policy = *policy;
	(*refs)++;
	pass->next_pass = s->passes;
	s->passes = pass;
	s->npasses++;
	pp_uuid4(pass->run_id);
	struct pp_run_ctx ctx = {.flow_run_id = pass->run_id, .flow_run_name = "sweep"};
	int rc = pp_pool_render(p, NULL, 0, NULL, NULL, &ctx, &pass->job, err);
	if (!rc) {
		pp_pool_io_init(p, &pass->io, pass->run_id, "sweep", pass->job);
		pass->io.store_id = s->store_id;
		rc = pp_exec_io_prepare(&pass->io, p->prov, err);
		pass->io_ready = !rc;
	}
	pass->io.listed = &pass->listed;
	if (!rc)
		rc = pp_exec_start(s->exec, p->prov, PP_OP_LIST, &pass->io, &pass->policy,
				   list_done, pass, err);
	if (rc) {
		pass_free(s, pass);
		return pp_error_prefix(err, "pool %s: sweep: ", p->name);
	}
	pass->listing = true;
	return 0;
}
