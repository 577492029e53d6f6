/* The dispatcher's side of deployments: declared specs (deploy_spec.h)
 * turned into the store's records with each schedule's content key, a
 * stored schedule compiled back into slots, and the scheduling pass that
 * materialises upcoming slots into runs (scheduler.c). Rules:
 * docs/deployments.md. */
#ifndef PP_DEPLOYMENT_H
#define PP_DEPLOYMENT_H

#include <stdint.h>

#include "dispatcher/deploy_spec.h"
#include "lib/err.h"
#include "lib/schedule.h"
#include "store/deploy.h"
#include "store/store.h"

/* Prefect's scheduler rule for how far ahead slots become runs: at least
 * PP_AHEAD_MIN_RUNS runs and PP_AHEAD_MIN_SECONDS, at most
 * PP_AHEAD_MAX_RUNS runs and PP_AHEAD_MAX_SECONDS. */
#define PP_AHEAD_MIN_RUNS    3
#define PP_AHEAD_MIN_SECONDS 3600
#define PP_AHEAD_MAX_RUNS    100
#define PP_AHEAD_MAX_SECONDS (100 * 86400)
/* catchup = all without a window: missed slots of the last day run. */
#define PP_CATCHUP_WINDOW_DEFAULT 86400

/* specs[0..n) as store records (*out, caller frees with pp_dep_recs_free):
 * schedules compiled, content keys computed. PP_EINVALID names the
 * deployment and the schedule's FILE:LINE. */
int pp_deployment_recs(const struct pp_deploy_spec *specs, size_t n, struct pp_dep_rec **out,
		       struct pp_error *err);

/* Compile a stored schedule. */
int pp_deployment_schedule(const struct pp_dep_sched *c, struct pp_schedule **out,
			   struct pp_error *err);

/* The parameters of schedule c's runs: the deployment's with the
 * schedule's own over them, as JSON object text (*out, caller frees). */
int pp_deployment_run_parameters(const struct pp_dep_rec *d, const struct pp_dep_sched *c,
				 char **out, struct pp_error *err);

/* The run a slot of schedule c of d becomes (strings borrowed from d, key,
 * name and parameters; key must hold PP_SLOT_KEY_MAX bytes). */
#define PP_SLOT_KEY_MAX 512
void pp_deployment_slot_run(const struct pp_dep_rec *d, const struct pp_dep_sched *c, int64_t slot,
			    const char *parameters, char *key, char *name, size_t name_len,
			    struct pp_run_rec *r);

struct pp_sched_stats {
	int schedules, inserted, dropped, skipped_writes;
};

/* One scheduling pass over every deployment in the store at now (UTC
 * seconds): due and upcoming slots of each active schedule become runs,
 * exactly once each; catch-up drops or keeps missed slots. A schedule
 * that fails (it no longer compiles) is logged and skipped. */
int pp_scheduler_pass(struct pp_store *s, int64_t now, struct pp_sched_stats *st,
		      struct pp_error *err);

/* The next n slots of schedule c after `after` (for `deployment show`). */
int pp_deployment_next_slots(const struct pp_dep_sched *c, int64_t after, size_t n, int64_t *slots,
			     size_t *got, struct pp_error *err);

#endif
