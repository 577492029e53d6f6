/* Leases: every run in flight is leased to this dispatcher in the store.
 * Renewals extend them all; after a lapse each run is confirmed ours again
 * before it is acted on; runs the loop lets go are released so another
 * dispatcher can take them at once. */
#include "dispatcher/loop_impl.h"

#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/strmap.h"

void lease_set_until(struct pp_loop *L, int64_t until)
{
	L->lease_until = until;
	L->policy.not_after_ms = until;
}

/* After the leases lapsed (a stall longer than the lease, a store outage),
 * another dispatcher may have claimed the run: true when its fence is
 * still the one it was claimed with. */
bool lease_still_ours(struct pp_loop *L, struct inflight *a, struct pp_error *err)
{
	struct pp_run_rec now;
	if (L->store->ops->get(L->store, a->rec.id, &now, NULL, NULL, err))
		return false;
	bool ours = now.fence == a->rec.fence;
	pp_run_rec_free(&now);
	if (!ours)
		pp_fail(err, PP_ECONFLICT, "run %s: lease lost (claimed again while ours lapsed)",
			a->rec.id);
	return ours;
}

static void lease_release_orphans(struct pp_loop *L)
{
	while (L->norphans > 0) {
		struct run_to_release *o = &L->orphans[L->norphans - 1];
		struct pp_run_update u = {
			.state = o->state,
			.attempt = o->attempt,
			.next_attempt_ms = -1,
			.release_lease = true,
			.event = o->event ? o->event : "released after a failed store write"};
		struct pp_error err = {0};
		int rc = L->store->ops->update(L->store, o->id, o->fence, &u, &err);
		if (rc && rc != PP_ECONFLICT)
			return; /* the store is still failing: try again later */
		L->norphans--;
	}
}

#define LOST_CLAIM_EVENT "released: leased to this dispatcher by a claim whose answer was lost"

/* Every run the loop knows into known, by id: in flight, claimed ahead,
 * or recorded to be released (L->orphans). 0 or PP_ENOMEM. */
static int know_runs(struct pp_loop *L, struct pp_strmap *known)
{
	for (struct inflight *a = L->runs; a; a = a->next)
		if (pp_strmap_put(known, a->rec.id, a))
			return PP_ENOMEM;
	for (struct pool_rt *p = L->pools; p; p = p->next)
		for (int i = p->ahead_first; i < p->ahead_first + p->nahead; i++)
			if (pp_strmap_put(known, p->ahead[i].id, p))
				return PP_ENOMEM;
	for (int i = 0; i < L->norphans; i++)
		if (pp_strmap_put(known, L->orphans[i].id, L))
			return PP_ENOMEM;
	return 0;
}

/* After a failed claim (L->audit_until): the runs the store says are
 * leased to us that the loop does not know were leased by a claim whose
 * answer never came; they are released as the store has them, each by a
 * write fenced with the fence it has, so another dispatcher (or our next
 * claim) takes them. A claim still out is answered first: the store may
 * list its runs before the loop knows them. (A queued write is of a run
 * the loop knows, or of one it dropped and records in L->orphans.) */
static bool lease_audit(struct pp_loop *L)
{
	loop_claim_take(L, true);
	struct pp_leased_run *v = NULL;
	int n = 0;
	struct pp_error e = {0};
	struct pp_strmap known = {0};
	if (L->store->ops->leased(L->store, L->owner, &v, &n, &e) || know_runs(L, &known)) {
		pp_warn("looking for runs leased to us by a lost claim failed: %s; trying again at "
			"the next renewal",
			e.msg[0] ? e.msg : "out of memory");
		pp_strmap_clear(&known);
		free(v);
		return false;
	}
	int released = 0, failed = 0;
	for (int i = 0; i < n; i++) {
		if (pp_strmap_get(&known, v[i].id))
			continue;
		struct pp_run_update u = {.state = v[i].state,
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  .release_lease = true,
					  .event = LOST_CLAIM_EVENT};
		int rc = L->store->ops->update(L->store, v[i].id, v[i].fence, &u, &e);
		if (!rc)
			released++;
		else if (rc != PP_ECONFLICT)
			failed++;
	}
	pp_strmap_clear(&known);
	free(v);
	if (released) {
		pp_metrics_count(L->metrics, "lost_claim_releases", (unsigned long)released);
		pp_warn("released %d run(s) leased to us by a claim whose answer was lost",
			released);
	}
	return !failed;
}

void lease_renew(struct pp_loop *L)
{
	int64_t lease_ms = loop_lease_ms(L);
	int64_t started = pp_mono_ms();
	struct pp_error e = {0};
	L->last_renew = started;
	bool renewed = false;
	if (L->store->ops->renew(L->store, L->owner, lease_ms, &e)) {
		pp_metrics_count(L->metrics, "store_errors", 1);
		pp_warn("lease renewal failed: %s", e.msg);
	} else {
		bool lapsed = L->lease_until && started >= L->lease_until;
		if (lapsed && L->ninflight) {
			pp_warn("leases lapsed %lld ms before this renewal; confirming each of "
				"%d run(s) is still ours before acting on it",
				(long long)(started - L->lease_until), L->ninflight);
			for (struct inflight *a = L->runs; a; a = a->next)
				a->recheck_lease = true;
		}
		/* A run claimed ahead starts its try with no store write first
		 * (its claim took the intent), so nothing would notice another
		 * dispatcher had claimed it meanwhile: they are given back, by
		 * fenced writes, and claimed again if still due. */
		if (lapsed)
			loop_ahead_release_all(L);
		lease_set_until(L, started + lease_ms);
		renewed = true;
	}
	lease_release_orphans(L);
	/* Until the window is over and a look has released all it found. */
	if (L->audit_until && renewed && lease_audit(L) && started >= L->audit_until)
		L->audit_until = 0;
}

/* Release every lease we hold so another dispatcher can pick up at once:
 * in one write where the store has one (a write per run was a third of
 * the store's work per run; issue 23), else run by run, fenced. Runs
 * claimed ahead go first, run by run: their claimed intents are taken
 * back, as no try of theirs was sent. */
void lease_release_all(struct pp_loop *L)
{
	loop_ahead_release_all(L);
	if (!L->runs)
		return;
	if (L->store->ops->release_all) {
		struct pp_error e = {0};
		if (L->store->ops->release_all(L->store, L->owner, &e)) {
			pp_metrics_count(L->metrics, "store_errors", 1);
			pp_warn("releasing %d lease(s) failed: %s; they lapse instead",
				L->ninflight, e.msg);
		}
		while (L->runs)
			inflight_free(L, L->runs);
		return;
	}
	while (L->runs) {
		struct inflight *a = L->runs;
		struct pp_run_update u = {.state = a->rec.state,
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  .release_lease = true};
		if (inflight_store_write(L, a, &u))
			inflight_free(L, a);
		else if (L->runs == a)
			inflight_free(L, a);
	}
}
