/* Deployments, their schedules, work queues and pool settings in the run
 * store, so every dispatcher sharing a store sees the same ones. The store
 * keeps what the dispatcher computed (a schedule's content key, the slots
 * it materialised); it never evaluates a schedule itself. Written once for
 * both backends over the small SQL interface of store/db.h. Model and
 * rules: docs/deployments.md. */
#ifndef PP_STORE_DEPLOY_H
#define PP_STORE_DEPLOY_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/err.h"
#include "store/store.h"

/* A schedule's content key: hex text of a hash of what its rule means
 * (pp_schedule_canonical), computed by the dispatcher. A deployment holds
 * each rule once; the key names the schedule across redeploys. */
#define PP_SCHED_KEY_LEN 33
/* runs.source of the runs deployments make (scheduled or by hand). */
#define PP_DEPLOYMENT_SOURCE "deployment"
/* The queue a run or deployment without one is in. */
#define PP_DEFAULT_QUEUE "default"

struct pp_dep_sched {
	char key[PP_SCHED_KEY_LEN];
	char kind[12];	    /* "cron", "interval" or "rrule" */
	char *timezone;	    /* NULL: UTC */
	char *cron, *rrule; /* by kind; NULL otherwise */
	bool day_or;	    /* cron */
	int64_t interval;   /* seconds, interval */
	int64_t anchor;	    /* UTC seconds, interval */
	bool active;
	char catchup[8];	/* "skip", "latest", "all" */
	int64_t catchup_window; /* seconds; "all" only */
	char overlap[16];	/* "allow", "skip", "buffer_one", "cancel_other" */
	/* Kept by the store: slots at or before the cursor (UTC seconds) were
	 * materialised or judged already; the next pass starts after it. */
	int64_t cursor;
	int64_t gen;	  /* bumped by every change to the row */
	char *parameters; /* JSON object merged over the deployment's for its runs */
};

struct pp_dep_rec {
	char id[PP_ID_LEN]; /* set by the store */
	char *name, *pool, *queue;
	char *description; /* NULL: none */
	char *entrypoint;  /* Prefect's "flows/etl.py:main", NULL: none */
	char *job_variables, *parameters, *parameter_schema, *tags;
	bool paused;
	int concurrency_limit; /* 0: none */
	char collision[12];    /* "enqueue", "cancel_new" */
	int64_t created_ms, updated_ms;
	struct pp_dep_sched *sched;
	int nsched;
};

void pp_dep_recs_free(struct pp_dep_rec *d, int n);

struct pp_apply_result {
	int created, updated, unchanged;	      /* deployments */
	int sched_added, sched_removed, runs_removed; /* schedules, unstarted runs */
	/* Optional, set by the caller: one word per deployment applied,
	 * "created", "updated" or "unchanged". */
	const char **each;
};

/* Create or update every deployment of deps in one transaction: all or
 * nothing. A deployment's schedules become exactly deps' (matched by key:
 * a removed one is deleted with its unstarted future runs; a kept one keeps
 * its cursor, so its slots are not made again). A changed deployment loses
 * its unstarted future runs, which the next pass makes with the new
 * values. Applying the same deps again changes nothing. PP_ENOTFOUND when
 * a deployment's queue was never set on its pool (other than the default
 * queue); the message names the deployment. now: UTC seconds. */
int pp_deploy_apply(struct pp_store *s, const struct pp_dep_rec *deps, int n, int64_t now,
		    struct pp_apply_result *res, struct pp_error *err);

/* Deployments by name (NULL: all), ordered by name, with their schedules.
 * None found is not an error (*n = 0). */
int pp_deploy_list(struct pp_store *s, const char *name, struct pp_dep_rec **out, int *n,
		   struct pp_error *err);

/* Pause or resume deployment name, or only its schedule with key skey.
 * Pausing deletes its unstarted future slot runs (*removed); resuming moves
 * the cursors to now so slots missed while paused are not made. */
int pp_deploy_pause(struct pp_store *s, const char *name, const char *skey, bool paused,
		    int64_t now, int *removed, struct pp_error *err);

/* Delete a deployment and its schedules; its unstarted runs go too. */
int pp_deploy_delete(struct pp_store *s, const char *name, int *removed, struct pp_error *err);

/* One scheduling pass's result for one schedule, written in one
 * transaction and only if the schedule is still there, active, of an
 * unpaused deployment, and its generation is still expect_gen (another pass, a
 * redeploy or a pause in between makes this one write nothing: *applied
 * false). Runs are inserted unless their slot_key exists (never twice);
 * drop lists unstarted runs (ids) catch-up decided against. */
struct pp_slot_batch {
	const char *deployment, *skey;
	int64_t expect_gen, cursor;
	struct pp_run_rec *runs; /* pool, queue, name, deployment, variables, slot_key, time */
	int nruns;
	const char (*drop)[PP_ID_LEN];
	int ndrop;
};
int pp_deploy_materialise(struct pp_store *s, const struct pp_slot_batch *b, int *inserted,
			  bool *applied, struct pp_error *err);

/* Unstarted slot runs of a schedule due at or before until_ms, oldest
 * first (the candidates for catch-up): id, pool, slot_key, scheduled_ms
 * and waiting are filled. */
int pp_deploy_slot_runs(struct pp_store *s, const char *deployment, const char *skey,
			int64_t until_ms, struct pp_run_rec **out, int *n, struct pp_error *err);

/* Runs of deployment name (any source 'deployment' made), in state (-1:
 * any), oldest first, at most limit: id, name, state, scheduled_ms,
 * waiting and slot_key are filled. */
int pp_deploy_runs(struct pp_store *s, const char *name, int state, int limit,
		   struct pp_run_rec **out, int *n, struct pp_error *err);

/* A work queue of a pool. Priority is unique within the pool, 1 first. */
struct pp_queue_rec {
	char *pool, *name;
	int priority;
	int concurrency_limit; /* 0: none */
	bool paused;
	long active, waiting; /* runs under way, due runs not started */
};
void pp_queue_recs_free(struct pp_queue_rec *q, int n);

/* Create or change queue name of pool: priority (> 0; 0 leaves it, and a
 * new queue gets the next free one), limit (< 0 leaves it), paused (< 0
 * leaves it). PP_ECONFLICT when another queue of the pool has the
 * priority. */
int pp_queue_set(struct pp_store *s, const char *pool, const char *name, int priority, int limit,
		 int paused, struct pp_error *err);
/* Queues of pool (NULL: all), by pool then priority. */
int pp_queue_list(struct pp_store *s, const char *pool, struct pp_queue_rec **out, int *n,
		  struct pp_error *err);

/* A pool as the store knows it: its limit and pause, runs by state. */
struct pp_pool_rec {
	char *name;
	int concurrency_limit;
	bool paused;
	long by_state[PP_ST_COUNT];
};
void pp_pool_recs_free(struct pp_pool_rec *p, int n);
/* limit < 0, paused < 0: unchanged. */
int pp_pool_set(struct pp_store *s, const char *pool, int limit, int paused, struct pp_error *err);
/* Every pool with settings or runs, by name, with its runs by state; or,
 * without runs, the pools with settings alone, by_state 0 (counting them
 * reads every run: the status page has them from counts). */
int pp_pool_list(struct pp_store *s, bool runs, struct pp_pool_rec **out, int *n,
		 struct pp_error *err);

/* For the backends' claim, inside its write transaction (PostgreSQL: with
 * the pool's lock held): lease up to max due SCHEDULED runs nobody holds,
 * by queue priority, run priority, then time, within every limit and
 * pause of their pool, queue and deployment and their schedule's overlap
 * policy; runs held back get the reason in `waiting`, runs a policy
 * drops are CANCELLED. Appends to *out / *n (an array of cap *cap). */
int pp_deploy_claim_due(struct pp_store *s, const char *pool, const char *owner, int64_t lease_ms,
			int max, struct pp_run_rec **out, int *n, struct pp_error *err);

#endif
