/* What the dispatch loop's files share (loop.c: the loop itself and its
 * sources; loop_pools.c: pools, claims and reloads; inflight.c: the life of
 * each run in flight; inflight_queue.c: its store writes the store queues;
 * inflight_logs.c: a failed run's last output; inflight_batch.c:
 * status polls of many runs in one request; lease.c: renewing and
 * releasing leases). Not an interface: only those files include it, and
 * tests/unit/dispatcher/inflight_queue.c, which drives the queued writes
 * against a store that fails them on cue. */
#ifndef PP_LOOP_IMPL_H
#define PP_LOOP_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "dispatcher/loop.h"
#include "dispatcher/metrics.h"
#include "dispatcher/op_driver.h"
#include "dispatcher/pool.h"
#include "sources/source.h"
#include "store/store.h"

/* The time one cleanup op may take (its retries and waits included) before
 * the run is recorded with what was left; the sweeper removes that later. */
#define PP_CLEANUP_BUDGET_MS 60000L

/* A pool as the loop uses it: the pool runtime plus its share of the caps. */
struct pool_rt {
	struct pp_pool *p;
	/* interned: a job text of this pool that parked jobs share their
	 * start and end with (inflight.c, park_job); NULL before the first */
	const char *job_ref;
	int in_flight, submitting;
	int refs; /* in-flight runs using it; a pool dropped by reload lives until 0 */
	bool retired;
	bool hungry;   /* loop_claim: took all of its share and could take more */
	bool backlog;  /* its last claim filled its part: more of its runs may be due */
	bool in_claim; /* loop_claim: offered slots in this claim turn */
	/* Runs claimed ahead of a free slot (loop_pools.c): leased to us,
	 * still SCHEDULED, started in claim order as slots free. */
	struct pp_run_rec *ahead;
	int nahead, ahead_first;
	/* Doublings of the runs a claim takes ahead (ahead_for): one more
	 * after each claim that came back full, none after one that did not. */
	int ahead_doublings;
	/* A timed claim or a wake-up came while this pool's claim was out
	 * (loop_claim): asked again after its answer, which may predate
	 * the runs that woke the loop. */
	bool claim_again;
	struct pool_rt *next;
};

enum phase { PH_SUBMIT, PH_WATCH, PH_CANCEL, PH_CLEANUP };

struct inflight {
	struct pp_run_rec rec;
	struct pool_rt *pool;
	struct pp_run_io io;
	/* The rendered job: a tree while an op runs, its compact text while
	 * the run waits for its next poll (a tree is several times larger),
	 * kept as the part that differs from the pool's job_ref;
	 * inflight_job() turns it back into a tree. */
	struct pp_json *job;
	struct parked_job *parked;
	enum phase phase;
	bool busy; /* an op is under way in the exec engine */
	bool cancel_wanted;
	/* once without --wait: after submitting (or one status look at a run
	 * submitted earlier) the run is held, its lease kept, until the pass
	 * ends; releasing it at once let the same pass claim it again and poll
	 * it in a tight loop. */
	bool hold_when_settled;
	bool held;
	bool recheck_lease; /* leases lapsed: confirm the run is still ours first */
	/* Store writes of this run queued and not yet settled (loop.queued),
	 * and what the run does once they stand: a submission waits for its
	 * intent, a cleanup for the outcome recorded before it, and a run's
	 * end (its count, its slot) for its final write. Until then it is
	 * neither polled nor cancelled. */
	int queued_writes;
	enum after_settle { AFTER_NOTHING, AFTER_SUBMIT, AFTER_CLEANUP, AFTER_END } after_settle;
	int64_t next_mono;   /* next status poll */
	int64_t watch_since; /* when the run was first seen not yet running */
	/* Monotonic ms since the cloud reports the job running (0: not yet);
	 * after a restart, from the stored "running" event's time. */
	int64_t running_since;
	int64_t max_runtime_ms; /* the run's max_runtime; 0: no limit */
	bool start_retry;	/* cleaning up a failed start before starting again */
	int status_failures;
	enum pp_store_state final;
	/* with the last lines of a failed run's output (inflight_logs.c):
	 * allocated when the run ends, since a watched run needs none of it
	 * (INFLIGHT_MSG_MAX bytes); final_short holds it if that fails.
	 * Through inflight_msg* only. */
	char *final_msg;
	char final_short[128];
	struct inflight_tail *tail; /* reading them, else NULL */
	struct status_batch *batch; /* the batched status poll it is in, else NULL */
	struct pp_loop *loop;
	struct inflight *prev, *next;
};

/* A run dropped while leased to us, whose lease is to be released
 * (pp_loop.orphans, inflight_orphan). */
struct run_to_release {
	char id[PP_ID_LEN];
	int64_t fence;
	enum pp_store_state state;
	int attempt;	   /* set on release; -1: as it is */
	const char *event; /* static; NULL: "released after a failed store write" */
};

struct pp_loop {
	struct pp_config *cfg;
	const struct pp_loop_opts *opts;
	struct pp_loop_summary *sum;
	struct pp_store *store;
	char store_id[PP_ID_LEN]; /* labelled on every remote object of our runs */
	/* The transfer handle the op driver runs on, shared with the run
	 * sources (pp_source.multi); freed after both. */
	struct pp_http_multi *multi;
	struct pp_exec *exec;
	/* Each run source, when its last poll ended (monotonic) and the
	 * loop's claims_made then. */
	struct loop_source {
		struct pp_source *src;
		int64_t polled;
		unsigned long claims;
	} * sources;
	size_t nsources;
	unsigned long claims_made; /* loop_claim calls so far */
	struct pool_rt *pools;
	struct inflight *runs;
	int ninflight, nsubmitting;
	int nheld; /* of ninflight: held until a once pass ends (not counted against caps) */
	char owner[96];
	struct pp_exec_policy policy;
	struct pp_metrics *metrics;
	struct pp_ui *ui; /* the status page on the metrics listener, or NULL */
	struct pp_metrics_snapshot snap;
	int64_t last_renew, last_cancel_check, last_snapshot;
	int64_t last_schedule; /* monotonic: the last scheduling pass, 0: none yet */
	/* Monotonic: when the oldest lease held ends unless renewed (a renewal
	 * extends them all). No op starts or sends past it. */
	int64_t lease_until;
	bool draining;
	bool backlog; /* some pool has a backlog (pool_rt.backlog; kept until a claim with room) */
	/* Monotonic: no idle run's next poll is before this, so the loop
	 * walks its runs only then, not on every turn (with 10,000 runs in
	 * flight the walk cost more than a submission). Lowered by
	 * inflight_poll_at. */
	int64_t next_poll;
	unsigned claim_turn;	 /* which pool is served first in the next claim */
	bool claimed_everything; /* once: nothing more due */
	/* Runs dropped after a failed store write (inflight_orphan): their
	 * leases are released once the store answers again, so another pass
	 * recovers them (by key and by the recorded outcome) instead of our
	 * renewals holding them. As many as failed: an outage fails every
	 * write under way, and a run left out would stay leased to us,
	 * unwatched, while we renew. */
	struct run_to_release *orphans;
	int norphans, orphans_cap;
	/* Monotonic: until when renewals look for runs leased to us that the
	 * loop does not know, and release them (lease.c, store.h's leased);
	 * 0: they do not. A failed claim may have leased runs to us all the
	 * same (its answer lost with the connection, or its statement still
	 * running on the server), so it sets this a few leases ahead. */
	int64_t audit_until;
	/* Store writes queued (store.h's update_queue) since the last
	 * inflight_settle, in order; run is NULL once the run is gone. */
	struct queued_write {
		struct inflight *run;
		enum pp_store_state stored; /* its state before the write */
	} * queued;
	int nqueued, queued_cap;
	/* While the store holds queued writes sent and not yet answered
	 * (inflight_send), which inflight_collect reads: the descriptor the
	 * answer comes on; else -1. */
	int store_fd;
	/* Monotonic: when the first write queued since the last send was
	 * (inflight_send gathers them); 0: none. */
	int64_t unsent_since;
	/* The claim sent and not yet answered (store.h's claim_send), which
	 * loop_claim_take reads: its pool (NULL: none), the descriptor its
	 * answer comes on, the runs it asked for (of them claim_ahead beyond
	 * the free slots) and when it went (monotonic). */
	struct pool_rt *claim_out;
	int claim_fd, claim_asked, claim_ahead;
	int64_t claim_sent_at;
};

/* The op driver's waits watch the store's descriptors in these slots
 * (pp_http_multi_watch): the queued writes' answer, the claim's. */
enum { WATCH_WRITES, WATCH_CLAIM };

/* How many leases after a failed claim the renewals look for runs it may
 * have leased to us all the same (pp_loop.audit_until): a statement the
 * server still runs when the connection drops commits later. */
#define LEASE_AUDIT_LEASES 3
/* The lease a claim takes and a renewal extends, in ms. */
static inline int64_t loop_lease_ms(const struct pp_loop *L)
{
	return (int64_t)(L->cfg->dispatcher.lease_seconds * 1000);
}

/* loop_pools.c */
int loop_pools_build(const struct pp_config *cfg, struct pool_rt **out, struct pp_error *err);
void loop_pools_free(struct pool_rt *head);
/* The pool new runs of name go to (retired pools are not found). */
struct pool_rt *loop_pool_find(struct pp_loop *L, const char *name);
/* Claim what is due, each pool its fair share: all pools (a timed claim,
 * a wake-up), or only those with a backlog. Returns runs claimed. */
int loop_claim(struct pp_loop *L, bool all);
/* A cancel requested for a run claimed ahead: true when it is one, which
 * is then cancelled instead of submitted when it starts. */
bool loop_ahead_cancel(struct pp_loop *L, const char *id);
/* The unanswered claim's runs, once its answer is in (waiting for it when
 * wait), join its pool's ahead queue, which the next claim turn starts
 * from: whether the claim was answered. */
bool loop_claim_take(struct pp_loop *L, bool wait);
/* Give the runs pool p (every pool, the unanswered claim's runs first)
 * claimed ahead back to the store, leases released, each by a fenced
 * write (inflight_unsent_state). */
void loop_ahead_release(struct pp_loop *L, struct pool_rt *p);
void loop_ahead_release_all(struct pp_loop *L);
/* Load the configuration again; on any problem keep the running one. */
int loop_reload(struct pp_loop *L);
void loop_drop_retired_pools(struct pp_loop *L);

/* inflight.c */
/* Take a claimed run (moved out of *rec) into flight. */
void inflight_start(struct pp_loop *L, struct pp_run_rec *rec);
void inflight_op(struct pp_loop *L, struct inflight *a, enum pp_op op);
void inflight_free(struct pp_loop *L, struct inflight *a);
/* A run's final write stands: count it, report it, free its slot. */
void inflight_end(struct pp_loop *L, struct inflight *a, const char *msg);
/* Fenced store write; on a lost lease or a failed write the run is
 * dropped at once (inflight_write_failed). Returns false when it was. */
bool inflight_store_write(struct pp_loop *L, struct inflight *a, const struct pp_run_update *u);
/* The same write queued (inflight_queue.c): a->rec takes it now, and the
 * run is dropped at the next inflight_settle if it failed; until then
 * nothing that depends on it may be sent. A synchronous write where the
 * store queues none, or a run source would hear of it at once. */
bool inflight_store_queue(struct pp_loop *L, struct inflight *a, const struct pp_run_update *u);
/* Learn every queued write's outcome: drop the runs whose write failed,
 * send the submissions whose intent stands (not once L->exec is gone). */
void inflight_settle(struct pp_loop *L);
/* Where the store can (store.h's update_send), without waiting: report
 * the queued writes whose outcome has come (inflight_settle's work), then
 * send the others, unless an earlier send is unanswered; the op driver's
 * wait ends when the answer comes (pp_http_multi_watch). Elsewhere
 * inflight_settle. The loop sends after each claim; an answer is read
 * by inflight_collect, which returns how many writes it reported. */
void inflight_send(struct pp_loop *L);
int inflight_collect(struct pp_loop *L);
/* Settle at the start of a turn when a run may act on its queued writes
 * in it (a poll is due), or many are queued. The loop settles after each
 * claim and before it waits. */
void inflight_settle_if_due(struct pp_loop *L, int64_t now);
/* Forget a run's queued writes (it is being freed). */
void inflight_unqueue(struct pp_loop *L, struct inflight *a);
/* The state the store surely has for a: a->rec takes each queued write at
 * once, so while one is unsettled it is the state before the first of
 * them, else a->rec.state. */
enum pp_store_state inflight_stored_state(const struct pp_loop *L, const struct inflight *a);
/* After a failed write: a lost lease leaves the run to its new owner, any
 * other failure leaves it for recovery, its lease released when the store
 * answers again, in inflight_stored_state (not the state a->rec took from
 * a queued write that may be what failed). Frees a. */
void inflight_write_failed(struct pp_loop *L, struct inflight *a, int rc,
			   const struct pp_error *err);
/* Run id (fence) recorded for its lease to be released, in state (and
 * attempt, -1: as it is; event, NULL: the default), at the next renewal
 * the store answers: a run this dispatcher no longer holds must not stay
 * leased to it while it renews (L->orphans). */
void inflight_orphan(struct pp_loop *L, const char *id, int64_t fence, enum pp_store_state state,
		     int attempt, const char *event);
void inflight_write_applied(struct inflight *a, const struct pp_run_update *u);
/* The run's outcome message: its buffer (allocated on first use) and
 * capacity, set by format, or read ("" until set). */
#define INFLIGHT_MSG_MAX 2048
/* The event of a run whose intent its claim took (store.h's
 * claim_intents) and that goes back to the store SCHEDULED, its try
 * never sent: claimed ahead and released, or its inputs unavailable. */
#define INTENT_WITHDRAWN_EVENT "released before submission"
/* What a release of run r, whose try was not sent, writes into u: the
 * state it was claimed in, or, when its claim took the intent, SCHEDULED
 * with the try uncounted and INTENT_WITHDRAWN_EVENT. */
void inflight_unsent_state(const struct pp_run_rec *r, struct pp_run_update *u);
char *inflight_msg(struct inflight *a, size_t *cap);
void inflight_msg_set(struct inflight *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
const char *inflight_msg_text(const struct inflight *a);
/* a->job as a tree (and a->io.job pointing at it); 0 or PP_ENOMEM. */
int inflight_job(struct inflight *a, struct pp_error *err);
void inflight_check_cancels(struct pp_loop *L);
/* inflight_logs.c: for a run ending FAILED or CRASHED (a->final), read the
 * last lines of its output into a->final_msg; true when that started and
 * will go on with inflight_after_tail, false when there is nothing to read.
 * inflight_tail_free drops a read under way (with the run). */
bool inflight_tail_logs(struct pp_loop *L, struct inflight *a);
void inflight_tail_free(struct inflight *a);
/* inflight.c: record the outcome in a->final and a->final_msg, then clean up. */
void inflight_after_tail(struct pp_loop *L, struct inflight *a);
void inflight_poll_due(struct pp_loop *L);
/* An op's outcome for run ud (the op's callback; a batched poll's
 * answer, handed out, to each run too). */
void inflight_op_done(void *ud, int rc, const struct pp_error *err);
/* inflight_batch.c: status polls of many runs in one request
 * (pp_provider.status_batch_max). The walk of due runs gathers them into
 * groups of one pool and batch key; inflight_batch_add returns false for a
 * run to poll alone (inflight_op). inflight_batch_send adds runs due
 * within half a status interval to the groups' last requests, sends every
 * request, and empties g. */
struct poll_groups {
	struct poll_group *v;
	int n, cap;
};
bool inflight_batch_add(struct poll_groups *g, struct inflight *a);
void inflight_batch_send(struct pp_loop *L, struct poll_groups *g, int64_t now);
/* a is being freed while its batch is out: it leaves it; when it sent the
 * request, the request goes and the others are polled again at once. */
void inflight_batch_leave(struct pp_loop *L, struct inflight *a);
/* Set a->next_mono (the run's next poll or cancel try). */
void inflight_poll_at(struct inflight *a, int64_t mono);

/* lease.c */
void lease_set_until(struct pp_loop *L, int64_t until);
bool lease_still_ours(struct pp_loop *L, struct inflight *a, struct pp_error *err);
void lease_renew(struct pp_loop *L);
void lease_release_all(struct pp_loop *L);

#endif
