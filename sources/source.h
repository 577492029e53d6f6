/* Where runs come from besides `pushpool schedule`. A source feeds runs into
 * the store and hears back about their progress; the loop calls it without
 * knowing which orchestrator is behind it. */
#ifndef PP_SOURCE_H
#define PP_SOURCE_H

#include <stdbool.h>
#include <stdint.h>

#include "dispatcher/config.h"
#include "lib/err.h"
#include "lib/json.h"
#include "store/store.h"

struct pp_source;

struct pp_source_ops {
	const char *name; /* matches pp_run_rec.source */
	int (*open)(const struct pp_config *cfg, struct pp_source **out, struct pp_error *err);
	void (*close)(struct pp_source *src);
	/* Take the orchestrator's due runs (arbitrating with other dispatchers
	 * upstream) and insert them into the store; mark upstream
	 * cancellations with request_cancel. */
	int (*poll)(struct pp_source *src, struct pp_store *store, struct pp_error *err);
	/* A run of this source changed state in the loop: report upstream,
	 * now or at the next flush. */
	int (*report)(struct pp_source *src, const struct pp_run_rec *rec,
		      enum pp_store_state state, const char *infra_id, const char *message,
		      struct pp_error *err);
	/* Optional: deliver what report held back. The loop calls it once a
	 * turn, after the turn's reports, so that they can go out together
	 * rather than one round trip each on the loop's thread; with the
	 * loop's handle (pp_source.multi) it sends them and returns, and takes
	 * up their answers at a later turn. */
	void (*flush)(struct pp_source *src);
	/* Template and deployment-level variables for a run, when the source
	 * owns them (NULL outputs: use the local pool config). *tmpl stays
	 * the source's: borrowed until the source's next call, and never
	 * changed under a version. *tmpl_version (nonzero, from
	 * pp_source_template_version) names it: runs handed the same number
	 * are rendered through one render cache (pp_pool_render), and a
	 * template made anew (re-read, or resolved again) takes a new number.
	 * *deployment_vars is the caller's. */
	int (*job_inputs)(struct pp_source *src, const struct pp_run_rec *rec,
			  const struct pp_json **tmpl, uint64_t *tmpl_version,
			  struct pp_json **deployment_vars, struct pp_error *err);
	/* Optional: resolve in place, in a run's rendered job, what the
	 * orchestrator resolves once values are applied (Prefect: block
	 * references and variables). A retryable error: try later. */
	int (*resolve_job)(struct pp_source *src, const struct pp_run_rec *rec, struct pp_json *job,
			   struct pp_error *err);
	/* Seconds between polls. */
	double (*interval)(const struct pp_source *src);
	/* Optional: whether the last poll left due runs upstream that it had
	 * no room to take (a page came back full, and it took some of it).
	 * The loop then polls again as soon as it has claimed what that poll
	 * recorded and has room for more, rather than after the interval: a
	 * burst of runs is drained at the pace of the submissions, not a page
	 * an interval. */
	bool (*backlog)(const struct pp_source *src);
};

struct pp_source {
	const struct pp_source_ops *ops;
	/* Set by the loop (NULL: none): called before the source sends
	 * anything upstream, it commits the store's open turn (store.h's group
	 * commit), so that upstream never hears of a state the store could
	 * still lose and no call to the orchestrator runs under the store's
	 * write lock. Nonzero: the turn is lost; send nothing. */
	int (*before_send)(void *ud);
	void *before_send_ud;
	/* Set by the loop (NULL: none): called about once a second while the
	 * source waits on its orchestrator, so that a slow or silent server
	 * does not let the loop's leases lapse or its watchdog and health
	 * check go quiet. */
	void (*while_waiting)(void *ud);
	void *while_waiting_ud;
	/* Set by the loop (NULL: none; the source then makes a handle of its
	 * own): the transfer handle the loop drives its requests on, which
	 * outlives the source (its close may still wait on it). A source may
	 * leave calls on it between turns: they go on while the loop waits.
	 * Their callbacks run from that wait; one that has something for the
	 * source's flush to take up calls wake(wake_ud), and the loop turns. */
	struct pp_http_multi *multi;
	void (*wake)(void *ud);
	void *wake_ud;
};

/* NULL-terminated list of every source backend. */
extern const struct pp_source_ops *const pp_sources[];

/* A template version (job_inputs) that no source has handed out before:
 * one counter for all of them, so that a pool fed by two sources never
 * takes one's template for the other's (sources/registry.c). */
uint64_t pp_source_template_version(void);

#endif
