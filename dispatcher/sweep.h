/* The sweeper: removes remote objects nobody else will clean up (a
 * dispatcher killed during cleanup, a restore that failed, a create that
 * landed after its run was given up). For each pool it runs the provider's
 * list op on the pool's own job, and removes (the provider's remove op)
 * every object labelled with its own store's id whose run is terminal in
 * the store or unknown to it, once the object is older than
 * PP_SWEEP_GRACE_MS. Objects of other stores, and objects with no store
 * label (made by `pushpool run`, or by a pushpool before store labels),
 * are never removed. Everything goes through the
 * op driver, so a sweep never blocks the loop. */
#ifndef PP_SWEEP_H
#define PP_SWEEP_H

#include <stdbool.h>
#include <stdint.h>

#include "dispatcher/metrics.h"
#include "dispatcher/op_driver.h"
#include "dispatcher/pool.h"
#include "store/store.h"

/* An object younger than this is left alone: its run may be being
 * inserted, claimed or submitted by another dispatcher right now. Counted
 * from the creation time the cloud reports, else from when this process
 * first listed the object. */
#define PP_SWEEP_GRACE_MS (10 * 60 * 1000LL)

enum pp_sweep_verdict {
	PP_SWEEP_KEEP_LIVE,  /* its run is not finished (or not ours to judge) */
	PP_SWEEP_KEEP_YOUNG, /* within the grace period */
	PP_SWEEP_REMOVE,     /* its run is finished or unknown, and it is old enough */
};
/* known: the store has the run, in state st; age_ms: since the object's
 * creation (or first sighting). */
enum pp_sweep_verdict pp_sweep_decide(bool known, enum pp_store_state st, int64_t age_ms);

struct pp_sweep;
/* store, exec and metrics (NULL: none) are borrowed and must outlive it;
 * store_id is the store's (store_id op), copied. */
struct pp_sweep *pp_sweep_new(struct pp_store *store, const char *store_id, struct pp_exec *exec,
			      struct pp_metrics *metrics);
/* Release everything, including ops still under way: call it after
 * pp_exec_free. */
void pp_sweep_free(struct pp_sweep *s);
/* Begin sweeping pool p unless its provider has no list op or a sweep of
 * it is still under way. *refs is incremented while the sweep uses p, so
 * a pool dropped by a reload outlives it. */
int pp_sweep_pool(struct pp_sweep *s, struct pp_pool *p, int *refs,
		  const struct pp_exec_policy *policy, struct pp_error *err);
/* Pools whose sweep is under way. */
int pp_sweep_active(const struct pp_sweep *s);
/* Objects removed since pp_sweep_new. */
unsigned long pp_sweep_removed(const struct pp_sweep *s);

#endif
