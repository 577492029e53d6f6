/* Status polls of many runs in one request, for providers whose cloud
 * answers for several jobs at once (pp_provider.status_batch_max; ECS's
 * DescribeTasks takes 100 tasks). A request a run, at the built-in ECS
 * template's pace (5 s), made 2,000 DescribeTasks a second with 10,000
 * runs in flight, where ECS throttles an account's calls far below that
 * (docs/performance.md, step 93).
 *
 * The walk of due runs (inflight_poll_due) hands each batchable one to
 * inflight_batch_add, which groups them by pool and by the provider's
 * batch key (the scope one request covers). inflight_batch_send then fills
 * each group's last request with runs of the same group due within half a
 * status interval: they are polled early, never late, and only where a
 * request goes anyway, and their next polls fall together with the others'
 * from then on, so a group's runs come to be polled in full requests. Each
 * request is the op of its first run (the lead), which carries the others
 * in io->peers; its answer fans out to every run's own status handling. */
#include "dispatcher/loop_impl.h"

#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"

/* Longest batch key: a provider's base URL (PP_BASE_URL_MAX) and scope. */
#define BATCH_KEY_MAX 1024

/* Runs polled by one request, the lead first. A run being freed leaves
 * its slot NULL (inflight_batch_leave). */
struct status_batch {
	bool answered; /* its op finished: batch_done is handing the answer out */
	int n;
	struct pp_run_io **peers; /* the io of members[1..n-1], for the lead's op */
	struct inflight *members[];
};

struct poll_group {
	struct pool_rt *pool;
	char key[BATCH_KEY_MAX];
	struct inflight **runs;
	int n, cap;
};

static int batch_max(const struct inflight *a)
{
	const struct pp_provider *p = a->pool->p->prov;
	return p->status_batch_key ? p->status_batch_max : 0;
}

/* A run a batched poll may carry: idle, watched, not to be cancelled, and
 * needing no look at its lease first (inflight_op does that alone). */
static bool batchable(const struct inflight *a)
{
	return a->phase == PH_WATCH && !a->busy && !a->held && !a->after_settle &&
	       !a->cancel_wanted && !a->recheck_lease && !a->batch && a->io.infra_id &&
	       batch_max(a) > 1;
}

static struct poll_group *group_of(struct poll_groups *g, const struct inflight *a, const char *key)
{
	for (int i = 0; i < g->n; i++)
		if (g->v[i].pool == a->pool && !strcmp(g->v[i].key, key))
			return &g->v[i];
	return NULL;
}

static bool group_push(struct poll_group *grp, struct inflight *a)
{
	if (grp->n == grp->cap) {
		int cap = grp->cap ? grp->cap * 2 : 16;
		struct inflight **v = realloc(grp->runs, (size_t)cap * sizeof(*v));
		if (!v)
			return false;
		grp->runs = v;
		grp->cap = cap;
	}
	grp->runs[grp->n++] = a;
	return true;
}

bool inflight_batch_add(struct poll_groups *g, struct inflight *a)
{
	char key[BATCH_KEY_MAX];
	if (!batchable(a) || !a->pool->p->prov->status_batch_key(&a->io, key, sizeof(key)))
		return false;
	struct poll_group *grp = group_of(g, a, key);
	if (!grp) {
		if (g->n == g->cap) {
			int cap = g->cap ? g->cap * 2 : 4;
			struct poll_group *v = realloc(g->v, (size_t)cap * sizeof(*v));
			if (!v)
				return false;
			g->v = v;
			g->cap = cap;
		}
		grp = &g->v[g->n++];
		memset(grp, 0, sizeof(*grp));
		grp->pool = a->pool;
		memcpy(grp->key, key, strlen(key) + 1);
	}
	return group_push(grp, a);
}

/* Room left in the group's last request. */
static int room(const struct poll_group *grp)
{
	int max = batch_max(grp->runs[0]);
	return grp->n % max ? max - grp->n % max : 0;
}

/* Fill the groups' last requests with runs due within half a status
 * interval. */
static void pull_forward(struct pp_loop *L, struct poll_groups *g, int64_t now)
{
	int open = 0;
	for (int i = 0; i < g->n; i++)
		open += room(&g->v[i]) > 0;
	int64_t until = now + (int64_t)(L->cfg->dispatcher.status_interval * 500);
	char key[BATCH_KEY_MAX];
	for (struct inflight *a = L->runs; a && open; a = a->next) {
		if (a->next_mono <= now || a->next_mono > until || !batchable(a) ||
		    !a->pool->p->prov->status_batch_key(&a->io, key, sizeof(key)))
			continue;
		struct poll_group *grp = group_of(g, a, key);
		if (!grp || !room(grp))
			continue;
		if (group_push(grp, a) && !room(grp))
			open--;
	}
}

static void batch_done(void *ud, int rc, const struct pp_error *err);

/* Give the lead's io its peers and send; a lone run is polled as any. */
static void start_batch(struct pp_loop *L, struct inflight **runs, int n)
{
	if (n == 1) {
		inflight_op(L, runs[0], PP_OP_STATUS);
		return;
	}
	struct status_batch *b = malloc(sizeof(*b) + (size_t)n * sizeof(b->members[0]) +
					(size_t)(n - 1) * sizeof(b->peers[0]));
	struct inflight *lead = runs[0];
	struct pp_error err = {0};
	if (!b || inflight_job(lead, &err)) {
		/* Out of memory: each alone, as before there were batches. */
		free(b);
		for (int i = 0; i < n; i++)
			inflight_op(L, runs[i], PP_OP_STATUS);
		return;
	}
	b->answered = false;
	b->n = n;
	b->peers = (struct pp_run_io **)&b->members[n];
	for (int i = 0; i < n; i++) {
		struct inflight *a = runs[i];
		b->members[i] = a;
		if (i)
			b->peers[i - 1] = &a->io;
		a->batch = b;
		a->busy = true;
		a->io.start_failure = PP_START_OK;
		a->io.poll_after_ms = 0;
		a->io.batch_rc = 0;
	}
	lead->io.resp = NULL;
	lead->io.peers = b->peers;
	lead->io.npeers = (size_t)(n - 1);
	int rc = pp_exec_start(L->exec, lead->pool->p->prov, PP_OP_STATUS, &lead->io, &L->policy,
			       batch_done, b, &err);
	if (rc)
		batch_done(b, rc, &err);
}

void inflight_batch_send(struct pp_loop *L, struct poll_groups *g, int64_t now)
{
	pull_forward(L, g, now);
	for (int i = 0; i < g->n; i++) {
		struct poll_group *grp = &g->v[i];
		int max = batch_max(grp->runs[0]);
		for (int at = 0; at < grp->n; at += max)
			start_batch(L, grp->runs + at, grp->n - at < max ? grp->n - at : max);
		free(grp->runs);
	}
	free(g->v);
	memset(g, 0, sizeof(*g));
}

/* Each run's outcome to its own status handling: the request's failure,
 * or what the op read for that run. A handler may free runs of the batch
 * (their slots go NULL), so the batch lives until the last is served. */
static void batch_done(void *ud, int rc, const struct pp_error *err)
{
	struct status_batch *b = ud;
	b->answered = true;
	if (b->members[0]) {
		b->members[0]->io.peers = NULL;
		b->members[0]->io.npeers = 0;
	}
	for (int i = 0; i < b->n; i++) {
		struct inflight *a = b->members[i];
		if (!a)
			continue;
		a->batch = NULL;
		b->members[i] = NULL;
		if (rc) {
			inflight_op_done(a, rc, err);
		} else if (a->io.batch_rc) {
			struct pp_error own = {0};
			pp_fail(&own, a->io.batch_rc, "%s",
				a->io.message ? a->io.message : pp_strerror(a->io.batch_rc));
			pp_clear_message(&a->io);
			inflight_op_done(a, own.code, &own);
		} else {
			inflight_op_done(a, 0, NULL);
		}
	}
	free(b);
}

void inflight_batch_leave(struct pp_loop *L, struct inflight *a)
{
	struct status_batch *b = a->batch;
	a->batch = NULL;
	int i = 0;
	while (i < b->n && b->members[i] != a)
		i++;
	if (i == b->n)
		return;
	b->members[i] = NULL;
	if (i)
		b->peers[i - 1] = NULL;
	if (i || b->answered)
		return;
	/* The request was the lead's: the others are polled again, at once. */
	if (L->exec)
		pp_exec_abandon(L->exec, b);
	int64_t now = pp_mono_ms();
	for (int j = 1; j < b->n; j++) {
		struct inflight *m = b->members[j];
		if (!m)
			continue;
		m->batch = NULL;
		m->busy = false;
		inflight_poll_at(m, now);
	}
	free(b);
}
