/* A store backend's claims and queued writes run on a thread of its own,
 * for a backend whose statements run in the caller's process (SQLite):
 * store.h's claim_send / claim_take and update_queue / update_settle /
 * update_send / update_collect, built on the backend's own synchronous
 * claim and update (worker.c says why). */
#ifndef PP_STORE_WORKER_H
#define PP_STORE_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/err.h"
#include "store/store.h"

/* What the worker calls on the backend, from its thread or from the
 * caller's, one call at a time and with nothing else using the store:
 * the backend's claim and update as store.h describes them, and a group
 * commit (as turn_begin / turn_end) around each batch of updates. */
struct pp_store_worker_ops {
	int (*claim)(struct pp_store *s, const char *pool, const char *owner, int64_t lease_ms,
		     int max, struct pp_run_rec **out, int *n, struct pp_error *err);
	int (*update)(struct pp_store *s, const char *id, int64_t fence,
		      const struct pp_run_update *u, struct pp_error *err);
	void (*batch_begin)(struct pp_store *s);
	int (*batch_end)(struct pp_store *s, struct pp_error *err);
};

struct pp_store_worker;

/* A worker for s: its descriptors made, its thread started by the first
 * send. NULL with err set when a descriptor cannot be made. */
struct pp_store_worker *pp_store_worker_new(struct pp_store *s,
					    const struct pp_store_worker_ops *ops,
					    struct pp_error *err);

/* Waits until nothing the caller sent runs or waits to run, then writes
 * the writes queued and not sent, here (each reported at the next settle
 * or collect). Every other call of the caller's goes after this: the
 * backend never shares its connection with the thread, and the call sees
 * the store as the caller wrote it. NULL: no-op. */
void pp_store_worker_flush(struct pp_store_worker *w);

/* After pp_store_worker_flush, before the caller's own update of a run:
 * the failure of an earlier write of the run (same id and fence) whose
 * outcome is not yet reported, or 0; store.h's update refuses the write
 * with it. NULL: 0. */
int pp_store_worker_failed(struct pp_store_worker *w, const char *id, int64_t fence,
			   struct pp_error *err);

/* store.h's calls of the same names. */
int pp_store_worker_claim_send(struct pp_store_worker *w, const char *pool, const char *owner,
			       int64_t lease_ms, int max, struct pp_error *err);
int pp_store_worker_claim_take(struct pp_store_worker *w, bool wait, bool *done,
			       struct pp_run_rec **out, int *n, struct pp_error *err);
int pp_store_worker_update_queue(struct pp_store_worker *w, const char *id, int64_t fence,
				 const struct pp_run_update *u, struct pp_error *err);
void pp_store_worker_update_settle(struct pp_store_worker *w,
				   void (*done)(void *ud, int i, int rc,
						const struct pp_error *err),
				   void *ud);
int pp_store_worker_update_send(struct pp_store_worker *w);
int pp_store_worker_update_collect(struct pp_store_worker *w,
				   void (*done)(void *ud, int i, int rc,
						const struct pp_error *err),
				   void *ud);

/* Waits for what was sent to run, stops the thread and closes the
 * descriptors. Writes not sent are dropped, a claim's answer not taken is
 * freed (its runs stay leased to their owner). NULL is a no-op. */
void pp_store_worker_free(struct pp_store_worker *w);

#endif
