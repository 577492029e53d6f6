/* The run store: where scheduled runs wait, who holds each one (a lease
 * with an owner, an expiry and a fencing generation), and every run's event
 * history. One interface, several backends (SQLite embedded by default,
 * PostgreSQL for several hosts); the loop only sees this header. */
#ifndef PP_STORE_H
#define PP_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/err.h"

enum pp_store_state {
	PP_ST_SCHEDULED,  /* waiting until due */
	PP_ST_SUBMITTING, /* intent and idempotency key committed; submission under way */
	PP_ST_SUBMITTED,  /* accepted by the provider, not yet running */
	PP_ST_RUNNING,
	PP_ST_CANCELLING, /* cancel requested; remote job to be stopped */
	PP_ST_SUCCEEDED,
	PP_ST_FAILED,  /* the job ran and failed, or the run was invalid */
	PP_ST_CRASHED, /* the job never ran to an exit (failed to start, timed out) */
	PP_ST_CANCELLED,
	PP_ST_DEAD, /* submission retries exhausted */
	/* The row could not be read as a run (an unknown state, written by a
	 * newer pushpool or by hand): never claimed, kept with its reason in
	 * last_error for an operator to look at. */
	PP_ST_QUARANTINED,
};
#define PP_ST_COUNT (PP_ST_QUARANTINED + 1)

const char *pp_store_state_name(enum pp_store_state s);
int pp_store_state_parse(const char *s, enum pp_store_state *out);
bool pp_store_state_terminal(enum pp_store_state s);

/* For the backends. Every state name, as an SQL list: a row whose state is
 * not in it is quarantined by the next claim, which sets last_error to
 * PP_QUARANTINE_WHY followed by the state in double quotes (its first
 * PP_QUARANTINE_STATE_MAX bytes), adds an event and logs one warning. */
#define PP_STORE_STATES_SQL                                                                        \
	"('SCHEDULED','SUBMITTING','SUBMITTED','RUNNING','CANCELLING','SUCCEEDED','FAILED',"       \
	"'CRASHED','CANCELLED','DEAD','QUARANTINED')"
#define PP_QUARANTINE_WHY	"quarantined: unknown state "
#define PP_QUARANTINE_STATE_MAX 64
/* Read a stored state: an unknown one reads as PP_ST_QUARANTINED with its
 * reason in *last_error (replacing what was there), so a row not yet
 * quarantined lists as it will be. 0, or PP_ENOMEM. */
int pp_store_state_read(const char *text, enum pp_store_state *out, char **last_error);

/* Run ids are UUIDs (lib/clock.h). */
#define PP_ID_LEN PP_UUID_LEN

struct pp_run_rec {
	char id[PP_ID_LEN];
	char pool[64];
	char *name;
	char *deployment;
	char *job_variables; /* JSON object text */
	char *parameters;    /* JSON object text */
	char *source;	     /* "local" or "prefect" */
	char *source_ref;    /* e.g. the Prefect flow run id */
	char *infra_id;
	char *idem_key;
	char *last_error;
	char *queue;		 /* work queue; NULL: the pool's default queue */
	char *waiting;		 /* why a due run is held back (a limit, a pause), or NULL */
	char *slot_key;		 /* a schedule's slot (deployment, schedule, instant), or NULL */
	int64_t scheduled_ms;	 /* wall clock, ms since the epoch */
	int64_t next_attempt_ms; /* wall clock; not claimable before */
	int64_t created_ms, updated_ms;
	int priority; /* higher first */
	int attempt;  /* submission tries so far (of this rerun) */
	/* Times the run was reopened for an upstream rerun (reopen): rerun r
	 * is the run's remote attempt r + 1, with its own idempotency key and
	 * remote names. */
	int rerun;
	enum pp_store_state state;
	bool cancel_requested;
	int64_t fence; /* generation of the lease this copy was claimed with */
	/* The claim that returned this copy recorded the intent of its try
	 * `attempt` (pp_store.claim_intents): nothing of that try has been
	 * sent yet. */
	bool intent_claimed;
	/* The store's own address of the row (SQLite: its rowid), 0 when it
	 * has none; opaque to everyone else, handed back in pp_run_update. */
	int64_t row;
};

void pp_run_rec_free(struct pp_run_rec *r);

struct pp_run_update {
	enum pp_store_state state;
	const char *infra_id;	 /* NULL: unchanged */
	const char *idem_key;	 /* NULL: unchanged */
	int attempt;		 /* < 0: unchanged */
	int64_t next_attempt_ms; /* < 0: unchanged */
	const char *error;	 /* NULL: unchanged, "": clear */
	bool release_lease;
	const char *event; /* appended to the history when non-NULL */
	/* The run's pp_run_rec.row, so that the store finds the row without
	 * a search by id; 0: by id. A stale value costs a search, never the
	 * wrong row: the id is checked too. */
	int64_t row;
};

struct pp_run_event {
	int64_t ts_ms;
	char state[16];
	char *message;
};

/* A run as store.h's leased op lists it. */
struct pp_leased_run {
	char id[PP_ID_LEN];
	int64_t fence;
	enum pp_store_state state;
};

struct pp_run_filter {
	const char *pool;  /* NULL: all */
	int state;	   /* -1: all */
	int limit;	   /* 0: no limit */
	bool newest_first; /* latest scheduled first (default: oldest due first) */
};

/* The checkpoints of a store that copies its own write-ahead log back
 * (SQLite's: store/sqlite_checkpoint.c), since it was opened: taken on
 * the store's checkpoint thread, taken inside a commit (the thread fell
 * behind the writer, or could not run), and the thread's that failed. */
struct pp_store_checkpoints {
	uint64_t background;
	uint64_t in_commit;
	uint64_t failed;
};

/* Pools counts keeps apart; runs of more pools count in the totals only. */
#define PP_STORE_COUNT_POOLS 64

struct pp_store_counts {
	long by_state[PP_ST_COUNT];
	int64_t oldest_due_ms; /* scheduled time of the oldest due SCHEDULED run, 0 if none */
	/* The same by pool, ordered by name: the first PP_STORE_COUNT_POOLS
	 * pools (more_pools set when there were others). */
	struct {
		char pool[64];
		long by_state[PP_ST_COUNT];
	} pools[PP_STORE_COUNT_POOLS];
	int npools;
	bool more_pools;
};

/* For the backends: add n runs of pool in state to c, in any order: c's
 * pools stay ordered by name, the first PP_STORE_COUNT_POOLS kept. */
void pp_store_counts_add(struct pp_store_counts *c, const char *pool, enum pp_store_state state,
			 long n);
/* Add every count of from to c (not oldest_due_ms, which from's part has
 * none of). */
void pp_store_counts_merge(struct pp_store_counts *c, const struct pp_store_counts *from);

/* For the backends: when to count a part of the runs again. Counting
 * finished runs reads every one (0.12 s with 1,000,000 stored on SQLite,
 * 0.47 s on PostgreSQL), and the loop counts every second when metrics
 * are on. A part that counted PP_RECOUNT_FREE_ROWS runs or more is
 * counted again only once PP_RECOUNT_US_PER_ROW microseconds a run it
 * counted have passed (50 s at 1,000,000: about 1 % of the caller's time
 * on PostgreSQL, 0.25 % on SQLite, however many runs are stored); a
 * smaller one on every call. By runs, not by the time a count took,
 * which a busy machine stretches: a small store's counts are always
 * current. Monotonic milliseconds. */
#define PP_RECOUNT_FREE_ROWS  10000
#define PP_RECOUNT_US_PER_ROW 50
struct pp_store_recount {
	int64_t at_ms;
	long rows;
	bool known;
};
bool pp_store_recount_due(const struct pp_store_recount *r, int64_t now_ms);
void pp_store_recount_done(struct pp_store_recount *r, long rows, int64_t now_ms);

/* For the backends' counts op: the runs in two parts, PP_COUNT_UNFINISHED
 * (SCHEDULED through CANCELLING, and oldest_due_ms) and PP_COUNT_FINISHED
 * (every other state, an unknown one included), each kept and counted
 * again as pp_store_recount_due says, by count(s, part, out, err) into a
 * zeroed out. A backend whose unfinished part comes from its indexes has
 * it current on every call. */
struct pp_store;
enum { PP_COUNT_UNFINISHED, PP_COUNT_FINISHED, PP_COUNT_PARTS };
struct pp_store_counts_cache {
	struct pp_store_counts part[PP_COUNT_PARTS];
	struct pp_store_recount recount[PP_COUNT_PARTS];
};
int pp_store_counts_cached(struct pp_store *s, struct pp_store_counts_cache *c,
			   int (*count)(struct pp_store *s, int part, struct pp_store_counts *out,
					struct pp_error *err),
			   struct pp_store_counts *out, struct pp_error *err);

struct pp_store;

struct pp_store_ops {
	const char *name;
	int (*open)(const char *url, struct pp_store **out, struct pp_error *err);
	void (*close)(struct pp_store *s);
	int (*migrate)(struct pp_store *s, struct pp_error *err);
	int (*insert)(struct pp_store *s, struct pp_run_rec *r, struct pp_error *err);
	/* Lease up to max claimable runs of pool (NULL: any): due SCHEDULED
	 * runs by priority then time, and non-terminal runs whose lease is free
	 * or expired (a crashed dispatcher's). Each claim bumps the fence. */
	int (*claim)(struct pp_store *s, const char *pool, const char *owner, int64_t lease_ms,
		     int max, struct pp_run_rec **out, int *n, struct pp_error *err);
	/* Optional, both or neither (NULL: the caller claims with claim).
	 * The same claim, sent without waiting for its answer, so the caller
	 * drives its requests while the store works on it: claim_send
	 * returns the descriptor that turns readable as the answer comes
	 * (>= 0), or an error with err set and nothing sent. One claim is
	 * unanswered at a time (a second send is PP_ECONFLICT). claim_take
	 * sets *done once the answer is in (waiting for it when wait) and
	 * then returns what claim would have: 0 with *out and *n, or an
	 * error; not done, it returns 0 with *n 0. Every other call may come
	 * between the two and does not wait for the claim, nor the claim for
	 * them: the two are ordered as two dispatchers' statements are (the
	 * claim cannot take a run the caller holds). Closing the store with
	 * a claim unanswered leaves what it leased to the owner's lease. */
	int (*claim_send)(struct pp_store *s, const char *pool, const char *owner, int64_t lease_ms,
			  int max, struct pp_error *err);
	int (*claim_take)(struct pp_store *s, bool wait, bool *done, struct pp_run_rec **out,
			  int *n, struct pp_error *err);
	/* Extend every lease owner holds. */
	int (*renew)(struct pp_store *s, const char *owner, int64_t lease_ms, struct pp_error *err);
	/* Optional (NULL: release each run with a fenced update). Let go of
	 * every lease owner holds from this dispatcher's boot, each run's
	 * state and history unchanged, so another dispatcher can take them
	 * at once: what a dispatcher that stops does, as one write. */
	int (*release_all)(struct pp_store *s, const char *owner, struct pp_error *err);
	/* Fenced write: PP_ECONFLICT when the lease has moved on. */
	int (*update)(struct pp_store *s, const char *id, int64_t fence,
		      const struct pp_run_update *u, struct pp_error *err);
	/* Optional (NULL: the caller uses update). The same fenced write,
	 * sent without waiting for its outcome, so the store works on it
	 * while the caller goes on; update_settle reports it. Until then the
	 * write may yet be fenced out or lost: nothing that depends on it
	 * (a request sent, a report upstream) may happen before. Other calls
	 * may come between; they do not report queued outcomes. 0 when
	 * queued, else an error and nothing queued. Until the settle, a
	 * write of a run whose queued write failed, queued or through
	 * update, is refused with that failure: it could not stand without
	 * the earlier one. */
	int (*update_queue)(struct pp_store *s, const char *id, int64_t fence,
			    const struct pp_run_update *u, struct pp_error *err);
	/* Wait for every write update_queue sent since the last settle and
	 * report each, in the order queued: done(ud, i, rc, err), i from 0.
	 * rc is what update would have returned: 0 (written), PP_ECONFLICT
	 * (fenced out, nothing written), or another error with err set
	 * (perhaps written: the connection was lost before its answer).
	 * Closing the store before settling drops what it had not sent. */
	void (*update_settle)(struct pp_store *s,
			      void (*done)(void *ud, int i, int rc, const struct pp_error *err),
			      void *ud);
	/* Optional, both or neither (NULL: the caller settles). Send the
	 * writes queued and not yet sent, without waiting for their outcome
	 * (nothing is sent while an earlier send is unanswered); returns the
	 * descriptor that turns readable as the outcome comes while a send
	 * is unanswered, else -1. update_collect reports, as update_settle
	 * does and without waiting, the first writes queued whose outcome is
	 * known (every write before the unanswered send), and returns how
	 * many it reported; update_settle still waits for all. Any other call
	 * waits for the unanswered send first. */
	int (*update_send)(struct pp_store *s);
	int (*update_collect)(struct pp_store *s,
			      void (*done)(void *ud, int i, int rc, const struct pp_error *err),
			      void *ud);
	int (*get)(struct pp_store *s, const char *id, struct pp_run_rec *out,
		   struct pp_run_event **ev, int *nev, struct pp_error *err);
	int (*list)(struct pp_store *s, const struct pp_run_filter *f, struct pp_run_rec **out,
		    int *n, struct pp_error *err);
	/* Reopen a finished run as its next rerun, when its source runs it
	 * again (a retry from Prefect's UI, a rescheduled run): SCHEDULED at
	 * scheduled_ms, rerun + 1, a fresh submission count, the idempotency
	 * key "<id>-<rerun + 1>", infra id, last error, cancel request and
	 * lease cleared; job_variables replaced when not NULL; the history
	 * kept, event appended. PP_ECONFLICT when the run is not finished
	 * (in flight, or reopened already), PP_ENOTFOUND when absent. */
	int (*reopen)(struct pp_store *s, const char *id, int64_t scheduled_ms,
		      const char *job_variables, const char *event, struct pp_error *err);
	/* Mark cancel requested; SCHEDULED runs become CANCELLED at once. */
	int (*request_cancel)(struct pp_store *s, const char *id, struct pp_error *err);
	/* Ids among those owner holds whose cancel was requested. */
	int (*cancel_requests)(struct pp_store *s, const char *owner, char (**ids)[PP_ID_LEN],
			       int *n, struct pp_error *err);
	/* Optional (NULL: a store whose claims cannot take effect without
	 * their caller learning of it, as SQLite's in-process ones). The
	 * unfinished runs owner holds, each with the fence and state it has:
	 * a claim whose answer was lost (the connection dropped after the
	 * server committed it) leased runs to its caller all the same, and
	 * the caller's renewals would hold them, unstarted, while it lives.
	 * *out is allocated (caller frees), in no order. */
	int (*leased)(struct pp_store *s, const char *owner, struct pp_leased_run **out, int *n,
		      struct pp_error *err);
	/* Ids of source's runs that may still start or run a job (SCHEDULED,
	 * SUBMITTING, SUBMITTED, RUNNING) and whose cancel nobody requested,
	 * in no order: what a run source asks its server about. Read as whole
	 * records through list, they took a fifth of an idle dispatcher's CPU
	 * with thousands of runs in flight (issue 23). */
	int (*live_ids)(struct pp_store *s, const char *source, char (**ids)[PP_ID_LEN], int *n,
			struct pp_error *err);
	/* Runs by state and pool (pp_store_counts_cached): on a large store
	 * the finished ones' counts may be older than the call. */
	int (*counts)(struct pp_store *s, struct pp_store_counts *out, struct pp_error *err);
	/* Optional (NULL: the store checkpoints no log of its own, as a
	 * PostgreSQL server does its own). Its checkpoints so far. */
	void (*checkpoints)(struct pp_store *s, struct pp_store_checkpoints *out);
	/* Optional (NULL: poll only). A descriptor that turns readable when a
	 * run may have become claimable, or -1 for now; the loop waits on it
	 * and then calls wake_drain, which returns > 0 when it should claim
	 * at once. */
	int (*wake_fd)(struct pp_store *s);
	int (*wake_drain)(struct pp_store *s);
	/* Provisioning (`pushpool provision`): one row per pool with the lock
	 * an apply or destroy holds (owner and wall-clock expiry, so two hosts
	 * on one store never provision a pool at once) and the journal of what
	 * apply made that carries no tag (text, one record per line).
	 * prov_lock takes the pool's lock for owner when it is free, expired,
	 * already owner's, or held by steal_from (may be NULL: a holder the
	 * caller knows is dead); 0 with *owned (caller frees) set, or
	 * PP_ECONFLICT with holder (PP_PROV_OWNER_MAX) naming who has it. */
	int (*prov_lock)(struct pp_store *s, const char *pool, const char *owner, int64_t lease_ms,
			 const char *steal_from, char **owned, char *holder, struct pp_error *err);
	/* Save the journal and renew the lease (release: and let go); fenced by
	 * owner: PP_ECONFLICT when the lock has moved on. */
	int (*prov_save)(struct pp_store *s, const char *pool, const char *owner, int64_t lease_ms,
			 const char *owned, bool release, struct pp_error *err);
	/* Read the journal without the lock (plan): *owned "" when none. */
	int (*prov_get)(struct pp_store *s, const char *pool, char **owned, struct pp_error *err);
	/* The store's id: a UUID made once when the store was created (a
	 * migration), the same for every dispatcher sharing the store. Remote
	 * objects are labelled with it, and the sweeper removes only objects of
	 * its own store. */
	int (*store_id)(struct pp_store *s, char out[PP_ID_LEN], struct pp_error *err);
	/* Optional (NULL: every write commits on its own). Group commit: after
	 * turn_begin, the writes of this handle join one transaction, opened
	 * at the first of them, until turn_end commits them together and
	 * ends the turn. Nothing a write of the turn records
	 * is durable before turn_end returns 0: a caller commits before anyone
	 * outside the store acts on it (a request sent, a report upstream)
	 * and before it waits (the write lock is held from the turn's first
	 * write to its end). A write that is fenced out changes nothing; one
	 * that fails undoes only itself, or, when the backend cannot undo it
	 * alone (SQLite: a run's update whose event failed after its row
	 * changed), rolls the whole turn back and refuses the turn's later
	 * writes; it is never half-applied. turn_end fails when the commit
	 * does, or when the backend rolled the turn back under a failed
	 * write; either way every write of the turn is lost. */
	void (*turn_begin)(struct pp_store *s);
	int (*turn_end)(struct pp_store *s, struct pp_error *err);
};
#define PP_PROV_OWNER_MAX 128

struct pp_store {
	const struct pp_store_ops *ops;
	/* Set by a caller that submits what it claims (the dispatcher's
	 * loop): each due run nobody held that a claim leases is taken, in
	 * the same write, as the intent of its next try, which the caller
	 * would otherwise write as its own update right after: SUBMITTING,
	 * attempt + 1, the idempotency key of its first start attempt when it
	 * has none (PP_FIRST_KEY), and the event PP_INTENT_EVENT "N)". It
	 * comes back with intent_claimed set. A run somebody held before
	 * (a lapsed or released lease) comes back as it was stored. Unset
	 * (the default), a claim only leases. */
	bool claim_intents;
};
/* A run's intent, as the dispatcher writes it and a claim with
 * claim_intents does: the event's text before the try's number, and the
 * key of a run's first start attempt, its id followed by PP_FIRST_KEY
 * (pp_attempt_key(id, 1)). */
#define PP_INTENT_EVENT "submitting (try "
#define PP_FIRST_KEY	"-1"

/* url: "postgresql://..." selects PostgreSQL when built in; anything else is
 * a SQLite path (an optional "sqlite:" prefix is stripped). */
int pp_store_open(const char *url, struct pp_store **out, struct pp_error *err);
void pp_store_close(struct pp_store *s);
void pp_run_recs_free(struct pp_run_rec *r, int n);
void pp_run_events_free(struct pp_run_event *ev, int n);

extern const struct pp_store_ops pp_store_sqlite;

#endif
