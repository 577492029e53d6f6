/* Store writes the loop queues instead of waiting for each (store.h's
 * update_queue): a claim's intents, the submissions answered since the
 * last settle, runs seen running, outcomes recorded before a cleanup and
 * runs' ends go to the store together (PostgreSQL: one statement rather
 * than a round trip each), and inflight_settle learns their outcomes at
 * once. What a run does next waits for its writes' outcome (after_settle:
 * its request, its cleanup, its end); a run whose write failed is dropped
 * at the settle, as inflight_store_write drops it at once. */
#include "dispatcher/loop_impl.h"
#include "lib/http.h"

#include <stdlib.h>
#include <string.h>

/* Queued writes past which the loop settles even when nothing waits for
 * them: a claim's worth, more or less. */
#define QUEUED_WRITES_SETTLE 64
/* The loop settles at QUEUED_WRITES_SETTLE queued at the latest, plus
 * what one claim adds, so the array seldom grows past its first size. */
#define QUEUED_WRITES_FIRST 64
/* Writes no run waits on (a submitted run's SUBMITTED, a run seen
 * running) gather this long, or until this many are queued, before
 * inflight_send sends them: with claims sent without waiting the loop
 * answers each request as it comes, and at +20 ms each turn's one or two
 * writes went as a statement of their own (a batch every 1.8 runs, the
 * server's CPU a run 0.37 ms against 0.23; issue 23). A write a run
 * waits on (an intent before its request, an end, a cleanup's outcome)
 * goes at once, and the gathered ones with it. */
#define QUEUED_WRITES_GATHER_MS 20
#define QUEUED_WRITES_GATHER	32

bool inflight_store_queue(struct pp_loop *L, struct inflight *a, const struct pp_run_update *u)
{
	/* A run source is told of a state right after it is written: it must
	 * not hear of one that may yet be fenced out. */
	if (!L->store->ops->update_queue || L->nsources)
		return inflight_store_write(L, a, u);
	if (L->nqueued == L->queued_cap) {
		int cap = L->queued_cap ? L->queued_cap * 2 : QUEUED_WRITES_FIRST;
		struct queued_write *q = realloc(L->queued, (size_t)cap * sizeof(*q));
		if (!q)
			return inflight_store_write(L, a, u);
		L->queued = q;
		L->queued_cap = cap;
	}
	struct pp_error err = {0};
	struct pp_run_update w = *u;
	w.row = a->rec.row;
	int rc = L->store->ops->update_queue(L->store, a->rec.id, a->rec.fence, &w, &err);
	if (rc) {
		inflight_write_failed(L, a, rc, &err);
		return false;
	}
	L->queued[L->nqueued++] = (struct queued_write){.run = a, .stored = a->rec.state};
	if (!L->unsent_since)
		L->unsent_since = pp_mono_ms();
	a->queued_writes++;
	inflight_write_applied(a, u);
	return true;
}

static void settled(void *ud, int i, int rc, const struct pp_error *err)
{
	struct pp_loop *L = ud;
	struct queued_write *q = &L->queued[i];
	struct inflight *a = q->run;
	if (!a)
		return; /* an earlier write of the run failed: it is gone */
	if (rc) {
		/* Still queued, q is the run's first unsettled write: the
		 * state before it is what the store surely has. */
		inflight_write_failed(L, a, rc, err);
		return;
	}
	q->run = NULL;
	a->queued_writes--;
	enum after_settle next = a->after_settle;
	/* Without the exec engine (the loop's end) a submission or a cleanup
	 * stays recorded, for whoever takes the run next. */
	if (!next || a->queued_writes || (next != AFTER_END && !L->exec))
		return;
	a->after_settle = AFTER_NOTHING;
	switch (next) {
	case AFTER_SUBMIT: inflight_op(L, a, PP_OP_SUBMIT); break;
	case AFTER_CLEANUP: inflight_op(L, a, PP_OP_CLEANUP); break;
	case AFTER_END: inflight_end(L, a, NULL); break;
	case AFTER_NOTHING: break;
	}
}

/* The first n queued writes were reported: forget them. What their
 * outcomes queued meanwhile (a failed submission's own writes) stays,
 * for the next settle or send. */
static void forget_reported(struct pp_loop *L, int n)
{
	L->nqueued -= n;
	memmove(L->queued, L->queued + n, (size_t)L->nqueued * sizeof(*L->queued));
}

void inflight_settle(struct pp_loop *L)
{
	int n = L->nqueued;
	if (!n)
		return;
	L->unsent_since = 0;
	L->store->ops->update_settle(L->store, settled, L);
	if (L->store_fd >= 0) {
		L->store_fd = -1; /* the settle waited for every answer */
		pp_http_multi_watch(L->multi, WATCH_WRITES, -1);
	}
	forget_reported(L, n);
}

/* Report the queued writes whose outcome the store has (update_collect);
 * returns how many. */
static int report_collected(struct pp_loop *L)
{
	int n = L->store->ops->update_collect(L->store, settled, L);
	forget_reported(L, n);
	return n;
}

int inflight_collect(struct pp_loop *L)
{
	if (L->store_fd < 0)
		return 0;
	int n = report_collected(L);
	/* Outcomes come in order and a send's all at once, and any other
	 * statement reads the send's answer first: once one is reported,
	 * nothing sent is unanswered. Until then the descriptor is watched
	 * afresh, so the wait is for the rest of the answer rather than ended
	 * by what was read already. */
	if (n)
		L->store_fd = -1;
	pp_http_multi_watch(L->multi, WATCH_WRITES, L->store_fd);
	return n;
}

/* Whether the queued writes go now (QUEUED_WRITES_GATHER_MS). */
static bool send_due(const struct pp_loop *L)
{
	if (L->nqueued >= QUEUED_WRITES_GATHER ||
	    pp_mono_ms() - L->unsent_since >= QUEUED_WRITES_GATHER_MS)
		return true;
	for (int i = 0; i < L->nqueued; i++)
		if (L->queued[i].run && L->queued[i].run->after_settle)
			return true;
	return false;
}

void inflight_send(struct pp_loop *L)
{
	const struct pp_store_ops *o = L->store->ops;
	if (!o->update_send) {
		inflight_settle(L);
		return;
	}
	if (!L->unsent_since || !send_due(L))
		return;
	/* With no send unanswered, this one takes every write queued. */
	if (L->store_fd < 0)
		L->unsent_since = 0;
	int fd = -1;
	/* Outcomes the store has already go first; a send answered at once
	 * (the store sent it waiting, or could not send it) is reported on
	 * the second round. */
	for (int round = 0; round < 2 && L->nqueued && fd < 0; round++) {
		report_collected(L);
		if (L->nqueued)
			fd = o->update_send(L->store);
	}
	L->store_fd = fd;
	pp_http_multi_watch(L->multi, WATCH_WRITES, fd);
}

void inflight_settle_if_due(struct pp_loop *L, int64_t now)
{
	/* A run's next op starts from a poll (inflight_poll_due) or a claim,
	 * which settles its own; a cancel writes synchronously first. */
	if (L->nqueued >= QUEUED_WRITES_SETTLE || (L->nqueued && now >= L->next_poll))
		inflight_settle(L);
}

enum pp_store_state inflight_stored_state(const struct pp_loop *L, const struct inflight *a)
{
	for (int i = 0; a->queued_writes && i < L->nqueued; i++)
		if (L->queued[i].run == a)
			return L->queued[i].stored;
	return a->rec.state;
}

void inflight_unqueue(struct pp_loop *L, struct inflight *a)
{
	for (int i = 0; a->queued_writes && i < L->nqueued; i++) {
		if (L->queued[i].run == a) {
			L->queued[i].run = NULL;
			a->queued_writes--;
		}
	}
}
