/* Leases: every run in flight is leased to this dispatcher in the store.
 * Renewals extend them all; after a lapse each run is confirmed ours again
 * before it is acted on; runs the loop lets go are released so another
 * dispatcher can take them at once. */
#include "dispatcher/loop_impl.h"

#include <string.h>

#include "lib/log.h"

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

void lease_renew(struct pp_loop *L)
{
	int64_t lease_ms = loop_lease_ms(L);
	int64_t started = pp_mono_ms();
	struct pp_error e = {0};
	L->last_renew = started;
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
	}
	lease_release_orphans(L);
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
