/* The loop's pools: built with the pool runtime (pool.h), claimed from
 * with fair shares of the free capacity, and swapped on reload while runs
 * under way keep the pools they started on. */
#include "dispatcher/loop_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher/ui.h"
#include "lib/log.h"
#include "lib/intern.h"

static void ahead_drop(struct pool_rt *p)
{
	for (int i = p->ahead_first; i < p->ahead_first + p->nahead; i++)
		pp_run_rec_free(&p->ahead[i]);
	free(p->ahead);
	p->ahead = NULL;
	p->nahead = p->ahead_first = 0;
}

static void pool_release(struct pool_rt *p)
{
	ahead_drop(p);
	pp_pool_close(p->p);
	pp_intern_drop(p->job_ref);
	free(p);
}

void loop_pools_free(struct pool_rt *head)
{
	while (head) {
		struct pool_rt *n = head->next;
		pool_release(head);
		head = n;
	}
}

int loop_pools_build(const struct pp_config *cfg, struct pool_rt **out, struct pp_error *err)
{
	struct pool_rt *head = NULL, **tail = &head;
	int rc = 0;
	for (size_t i = 0; i < cfg->npools && !rc; i++) {
		struct pool_rt *p = calloc(1, sizeof(*p));
		if (!p) {
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
			break;
		}
		*tail = p;
		tail = &p->next;
		rc = pp_pool_open(cfg, &cfg->pools[i], 0, &p->p, err);
	}
	if (rc) {
		loop_pools_free(head);
		return rc;
	}
	*out = head;
	return 0;
}

struct pool_rt *loop_pool_find(struct pp_loop *L, const char *name)
{
	for (struct pool_rt *p = L->pools; p; p = p->next)
		if (!p->retired && !strcmp(p->p->name, name))
			return p;
	return NULL;
}

/* Runs pool p may claim now; p NULL: the global room alone. */
static int pool_capacity(struct pp_loop *L, struct pool_rt *p)
{
	long global = L->cfg->dispatcher.max_in_flight - (L->ninflight - L->nheld);
	long subm = L->cfg->dispatcher.max_submitting - L->nsubmitting;
	long cap = global < subm ? global : subm;
	if (p && p->p->max_in_flight > 0 && p->p->max_in_flight - p->in_flight < cap)
		cap = p->p->max_in_flight - p->in_flight;
	if (p && p->p->max_submitting > 0 && p->p->max_submitting - p->submitting < cap)
		cap = p->p->max_submitting - p->submitting;
	return cap > 0 ? (int)(cap > 256 ? 256 : cap) : 0;
}

#define CLAIM_AHEAD_MAX 64
/* A quarter of max_submitting doubled this often is two rounds of it. */
#define CLAIM_AHEAD_DOUBLINGS_MAX 3

/* Runs a claim of cap takes beyond the free slots of pool p: a busy pool
 * then reads the store once per that many submissions rather than once
 * per submission, and a submission slot that frees is filled without a
 * store round trip first. Only runs the in-flight caps have room for: a
 * run claimed ahead waits for a submission slot (seconds at most), never
 * for a run in flight to end, which could take hours while another
 * dispatcher had room for it.
 * A quarter of max_submitting at first, doubled after each claim that
 * came back full up to two rounds of max_submitting (CLAIM_AHEAD_MAX at
 * most), a quarter again after one that did not: a pool's backlog is read
 * in claims a few times larger, each a round trip fewer on PostgreSQL
 * (issue 23), while a burst that several dispatchers share is still split
 * between them in small claims, not taken whole by the first to ask. */
static int ahead_for(const struct pp_loop *L, const struct pool_rt *p, int cap)
{
	if (L->opts->once)
		return 0;
	long ahead = (L->cfg->dispatcher.max_submitting / 4) << p->ahead_doublings;
	long room = L->cfg->dispatcher.max_in_flight - (L->ninflight - L->nheld) - cap;
	if (p->p->max_in_flight > 0 && p->p->max_in_flight - p->in_flight - cap < room)
		room = p->p->max_in_flight - p->in_flight - cap;
	if (room < ahead)
		ahead = room;
	if (ahead > CLAIM_AHEAD_MAX)
		ahead = CLAIM_AHEAD_MAX;
	return ahead > 0 ? (int)ahead : 0;
}

/* Start up to cap runs claimed ahead; returns runs started. */
static int start_ahead(struct pp_loop *L, struct pool_rt *p, int cap)
{
	int n = 0;
	while (n < cap && p->nahead > 0) {
		inflight_start(L, &p->ahead[p->ahead_first++]);
		p->nahead--;
		n++;
	}
	if (!p->nahead)
		ahead_drop(p);
	return n;
}

/* Give n claimed runs whose tries were not sent back to the store, each
 * by a fenced write (inflight_unsent_state). */
static void give_back(struct pp_loop *L, const struct pp_run_rec *r, int n)
{
	for (int i = 0; i < n; i++) {
		struct pp_run_update u = {
			.next_attempt_ms = -1, .release_lease = true, .row = r[i].row};
		inflight_unsent_state(&r[i], &u);
		struct pp_error err = {0};
		int rc = L->store->ops->update(L->store, r[i].id, r[i].fence, &u, &err);
		if (rc == PP_ECONFLICT) {
			pp_warn("run %s: %s; leaving it to its new owner", r[i].id, err.msg);
			L->sum->lost_lease++;
		} else if (rc) {
			/* Not left to lapse: this dispatcher renews its lease
			 * while it runs, so the run would stay leased to it,
			 * unstarted, until it stopped (pg_restart.sh). */
			pp_warn("run %s: releasing its lease failed: %s; released when the store "
				"answers",
				r[i].id, err.msg);
			inflight_orphan(L, r[i].id, r[i].fence, u.state, u.attempt, u.event);
		}
	}
}

void loop_ahead_release(struct pp_loop *L, struct pool_rt *p)
{
	give_back(L, p->ahead + p->ahead_first, p->nahead);
	ahead_drop(p);
}

void loop_ahead_release_all(struct pp_loop *L)
{
	loop_claim_take(L, true);
	for (struct pool_rt *p = L->pools; p; p = p->next)
		loop_ahead_release(L, p);
}

bool loop_ahead_cancel(struct pp_loop *L, const char *id)
{
	/* A retired pool has none: loop_reload moved or released them. */
	for (struct pool_rt *p = L->pools; p; p = p->next)
		for (int i = p->ahead_first; !p->retired && i < p->ahead_first + p->nahead; i++) {
			if (strcmp(p->ahead[i].id, id))
				continue;
			/* Out of the queue, and ended at once: inflight_start
			 * cancels a run not yet submitted, slot or no slot. */
			struct pp_run_rec rec = p->ahead[i];
			memmove(&p->ahead[i], &p->ahead[i + 1],
				(size_t)(p->ahead_first + p->nahead - i - 1) * sizeof(rec));
			if (!--p->nahead)
				ahead_drop(p);
			rec.cancel_requested = true;
			inflight_start(L, &rec);
			return true;
		}
	return false;
}

/* A claim of pool p that failed (err), counted and logged. */
static void claim_failed(struct pp_loop *L, const struct pool_rt *p, const struct pp_error *err)
{
	pp_metrics_count(L->metrics, "store_errors", 1);
	pp_warn("claim for pool %s failed: %s", p->p->name, err->msg);
	if (L->store->ops->leased)
		L->audit_until = pp_mono_ms() + LEASE_AUDIT_LEASES * loop_lease_ms(L);
}

/* n runs leased by a claim that went at claimed_at (monotonic): holding
 * nothing before, their fresh leases are the oldest. */
static void claimed_leases(struct pp_loop *L, int n, int64_t claimed_at)
{
	if (n && !L->ninflight)
		lease_set_until(L, claimed_at + loop_lease_ms(L));
}

/* n claimed runs recs (the array taken) after the runs p has ahead. */
static void ahead_append(struct pp_loop *L, struct pool_rt *p, struct pp_run_rec *recs, int n)
{
	if (!n) {
		free(recs);
		return;
	}
	if (!p->nahead) {
		ahead_drop(p);
		p->ahead = recs;
		p->nahead = n;
		return;
	}
	struct pp_run_rec *v = malloc((size_t)(p->nahead + n) * sizeof(*v));
	if (!v) {
		pp_warn("out of memory queueing %d claimed run(s); giving them back", n);
		give_back(L, recs, n);
		pp_run_recs_free(recs, n);
		return;
	}
	memcpy(v, p->ahead + p->ahead_first, (size_t)p->nahead * sizeof(*v));
	memcpy(v + p->nahead, recs, (size_t)n * sizeof(*v));
	free(p->ahead);
	free(recs);
	p->ahead = v;
	p->ahead_first = 0;
	p->nahead += n;
}

/* After a claim of p that asked for asked runs (ahead of them beyond the
 * free slots) and took n: whether more may be due, and how many the
 * next claim takes ahead. */
static void claim_taken(struct pool_rt *p, int asked, int ahead, int n)
{
	p->backlog = n == asked || p->nahead > 0;
	if (n < asked || !ahead)
		p->ahead_doublings = 0;
	else if (p->ahead_doublings < CLAIM_AHEAD_DOUBLINGS_MAX)
		p->ahead_doublings++;
}

/* A pool's ahead queue below this many runs is filled by a claim sent
 * without waiting (claim_send) while the runs in it start: half a round
 * of max_submitting, which a turn's answers seldom free at once. */
static int ahead_low(const struct pp_loop *L)
{
	return (int)(L->cfg->dispatcher.max_submitting / 2);
}

bool loop_claim_take(struct pp_loop *L, bool wait)
{
	struct pool_rt *p = L->claim_out;
	if (!p)
		return false;
	struct pp_run_rec *recs = NULL;
	int n = 0;
	bool done;
	struct pp_error err = {0};
	int rc = L->store->ops->claim_take(L->store, wait, &done, &recs, &n, &err);
	if (!done) {
		/* Part of the answer: the wait is for the rest. */
		pp_http_multi_watch(L->multi, WATCH_CLAIM, L->claim_fd);
		return false;
	}
	L->claim_out = NULL;
	pp_http_multi_watch(L->multi, WATCH_CLAIM, -1);
	if (rc) {
		claim_failed(L, p, &err);
		p->ahead_doublings = 0;
		p->claim_again = false;
		return true;
	}
	claimed_leases(L, n, L->claim_sent_at);
	pp_debug("claim %u: pool %s: %d of %d run(s), answered", L->claim_turn, p->p->name, n,
		 L->claim_asked);
	ahead_append(L, p, recs, n);
	claim_taken(p, L->claim_asked, L->claim_ahead, n);
	p->backlog |= p->claim_again;
	p->claim_again = false;
	L->backlog |= p->backlog;
	return true;
}

/* The claim of pool p's next runs, sent without waiting, when its ahead
 * queue runs low and no claim is unanswered: cap free slots left unfilled
 * and runs to take ahead, less those it has. Its answer fills the queue
 * (loop_claim_take). */
static void send_claim(struct pp_loop *L, struct pool_rt *p, int cap)
{
	if (L->claim_out || p->nahead >= ahead_low(L))
		return;
	int ahead = ahead_for(L, p, cap);
	int want = cap + ahead - p->nahead;
	if (want <= 0)
		return;
	struct pp_error err = {0};
	int64_t now = pp_mono_ms();
	int fd = L->store->ops->claim_send(L->store, p->p->name, L->owner, loop_lease_ms(L), want,
					   &err);
	if (fd < 0) {
		claim_failed(L, p, &err);
		return;
	}
	L->claim_out = p;
	L->claim_fd = fd;
	L->claim_asked = want;
	L->claim_ahead = ahead;
	L->claim_sent_at = now;
	pp_http_multi_watch(L->multi, WATCH_CLAIM, fd);
}

/* Whether the loop's claims go without waiting (store.h's claim_send):
 * not in a once pass, whose end is a claim that found nothing. */
static bool claims_sent(const struct pp_loop *L)
{
	return L->store->ops->claim_send && !L->opts->once;
}

/* Claim up to cap runs of pool p; returns runs claimed. */
static int claim_pool(struct pp_loop *L, struct pool_rt *p, int cap)
{
	struct pp_run_rec *recs = NULL;
	int n = 0;
	struct pp_error err = {0};
	int started = start_ahead(L, p, cap);
	if (claims_sent(L)) {
		send_claim(L, p, cap - started);
		/* Asked again next turn while a claim is out: its own (its
		 * answer decides), or another pool's (this one was not asked). */
		p->backlog = p->nahead > 0 || L->claim_out || started == cap;
		return started;
	}
	if (started == cap) {
		p->backlog = true;
		return started;
	}
	cap -= started;
	int ahead = ahead_for(L, p, cap);
	int64_t claimed_at = pp_mono_ms();
	int rc = L->store->ops->claim(L->store, p->p->name, L->owner, loop_lease_ms(L), cap + ahead,
				      &recs, &n, &err);
	if (rc) {
		claim_failed(L, p, &err);
		return started;
	}
	claimed_leases(L, n, claimed_at);
	pp_debug("claim %u: pool %s: %d of %d run(s)", L->claim_turn, p->p->name, n, cap + ahead);
	int to_start = n < cap ? n : cap;
	for (int i = 0; i < to_start; i++)
		inflight_start(L, &recs[i]);
	if (n > to_start) {
		p->ahead = recs;
		p->ahead_first = to_start;
		p->nahead = n - to_start;
	} else {
		free(recs);
	}
	claim_taken(p, cap + ahead, ahead, n);
	return started + to_start;
}

/* Offer pool p its part of the free slots (left pools still to serve,
 * p included); returns runs claimed, and whether p took all of its part
 * and could take more. */
static int offer(struct pp_loop *L, struct pool_rt *p, int left, bool *hungry)
{
	int own = pool_capacity(L, p);
	int room = pool_capacity(L, NULL);
	int share = (room + left - 1) / left;
	int cap = own > share ? share : own;
	*hungry = false;
	if (cap <= 0)
		return 0;
	int n = claim_pool(L, p, cap);
	*hungry = n == cap && cap < own;
	return n;
}

int loop_claim(struct pp_loop *L, bool all)
{
	int total = 0, npools = 0;
	/* Between timed claims only pools whose last claim filled its part
	 * are asked again: a pool that came back short had nothing more due,
	 * and asking it on every turn cost a store claim per idle pool per
	 * submission once the cloud answered at once (issue 23). Who is
	 * asked is fixed before the first offer changes any backlog. */
	for (struct pool_rt *p = L->pools; p; p = p->next) {
		p->in_claim = !p->retired && (all || p->backlog);
		npools += p->in_claim;
	}
	/* Its answer may predate what made this claim timed (a wake-up: runs
	 * inserted since the claim out was sent). */
	if (all && L->claim_out) {
		L->claim_out->claim_again = true;
		pp_debug("pool %s: its claim is out; asked again after the answer",
			 L->claim_out->p->name);
	}
	/* With no free slot, whether more runs are due stays unknown: a
	 * backlog waits for the first turn with room, rather than being
	 * dropped and left to the next timed claim (poll_interval / 4 later,
	 * which capped a full dispatcher at its slots per 250 ms). */
	if (!npools || pool_capacity(L, NULL) <= 0)
		return 0;

	/* Free slots are shared: each pool may take its fair part of what is
	 * left, and the first pool served rotates, so one pool whose runs keep
	 * retrying (a quota, an outage) cannot hold every slot. */
	int start = (int)(++L->claim_turn % (unsigned)npools), left = npools, nhungry = 0;
	for (int pass = 0; pass < 2; pass++) {
		int idx = 0;
		for (struct pool_rt *p = L->pools; p; p = p->next) {
			if (!p->in_claim || (pass == 0) != (idx++ >= start))
				continue;
			total += offer(L, p, left--, &p->hungry);
			nhungry += p->hungry;
		}
	}
	/* What the others did not take goes to the pools that took all of
	 * theirs, so a pool busy among idle ones gets every free slot in one
	 * turn rather than a part of them. */
	for (struct pool_rt *p = L->pools; p && nhungry; p = p->next) {
		if (!p->in_claim || !p->hungry)
			continue;
		bool more;
		total += offer(L, p, nhungry--, &more);
		p->hungry = false;
	}
	/* A pool offered no slot (its own caps full) keeps its backlog, and
	 * is asked again on the first turn it has room. */
	L->backlog = false;
	for (struct pool_rt *p = L->pools; p; p = p->next)
		L->backlog |= !p->retired && p->backlog;
	return total;
}

int loop_reload(struct pp_loop *L)
{
	struct pp_config fresh;
	struct pp_error err = {0};
	struct pool_rt *pools = NULL;
	int rc = pp_config_init(&fresh, &err);
	if (!rc)
		rc = pp_config_load(&fresh, L->cfg->path, &err);
	if (!rc) {
		struct pp_buf problems;
		pp_buf_init(&problems, 1 << 16);
		if (pp_config_validate(&fresh, &problems))
			rc = pp_fail(&err, PP_EINVALID, "%s", pp_buf_str(&problems));
		pp_buf_free(&problems);
	}
	if (!rc)
		rc = loop_pools_build(&fresh, &pools, &err);
	if (rc) {
		pp_error("reload: keeping the running configuration: %s", err.msg);
		loop_pools_free(pools);
		pp_config_free(&fresh);
		return rc;
	}
	/* Runs claimed ahead, the unanswered claim's too, go to the new pool
	 * of their name, or back to the store when their pool is gone. */
	loop_claim_take(L, true);
	for (struct pool_rt *p = L->pools; p; p = p->next) {
		if (p->retired || !p->nahead)
			continue;
		struct pool_rt *to = pools;
		while (to && strcmp(to->p->name, p->p->name))
			to = to->next;
		if (to) {
			to->ahead = p->ahead;
			to->nahead = p->nahead;
			to->ahead_first = p->ahead_first;
			to->backlog = true;
			p->ahead = NULL;
			p->nahead = p->ahead_first = 0;
		} else {
			loop_ahead_release(L, p);
		}
	}
	/* Runs under way keep their pool objects; new claims use the new ones. */
	struct pool_rt **tail = &pools;
	while (*tail)
		tail = &(*tail)->next;
	for (struct pool_rt *p = L->pools; p; p = p->next)
		p->retired = true;
	*tail = L->pools;
	L->pools = pools;
	/* The process's HTTPS trust is set once, before its first request
	 * (lib/http.h), so a new ca_file waits for a restart. */
	const char *ca_was = L->cfg->dispatcher.ca_file, *ca_new = fresh.dispatcher.ca_file;
	if (strcmp(ca_was ? ca_was : "", ca_new ? ca_new : ""))
		pp_warn("reload: ca_file changed; requests trust %s until a restart",
			ca_was && *ca_was ? ca_was : "the system's authorities");
	/* Pools copy what they keep from the configuration, so the old one can
	 * go now. */
	pp_config_free(L->cfg);
	*L->cfg = fresh;
	if (L->ui)
		pp_ui_set_pools(L->ui, L->cfg, &err);
	pp_info("configuration reloaded from %s", L->cfg->path);
	return 0;
}

void loop_drop_retired_pools(struct pp_loop *L)
{
	struct pool_rt **pp = &L->pools;
	while (*pp) {
		struct pool_rt *p = *pp;
		if (p->retired && p->refs == 0) {
			*pp = p->next;
			pool_release(p);
		} else {
			pp = &p->next;
		}
	}
}
