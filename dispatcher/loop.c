/* The dispatch loop. Every run it holds is an `active` record moving
 * through phases; each phase is one provider op driven by the exec engine.
 * The store is written before and after every remote action, fenced by the
 * lease, so a crash at any point leaves a state that the next claimer can
 * reconcile: SUBMITTING runs are resubmitted with the same idempotency key
 * (the provider adopts what exists), SUBMITTED/RUNNING runs are watched. */
#include "dispatcher/loop.h"

#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/token_cache.h"
#include "dispatcher/op_driver.h"
#include "lib/log.h"
#include "dispatcher/metrics.h"
#include "lib/notify.h"
#include "render/render.h"
#include "sources/source.h"
#include "store/store.h"
#include "dispatcher/pool.h"
#include "providers/provider.h"

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

void pp_loop_request_stop(void)
{
	stop_requested = 1;
}

void pp_loop_request_reload(void)
{
	reload_requested = 1;
}

/* A pool as the loop uses it: the pool runtime plus its share of the caps. */
struct pool_rt {
	struct pp_pool *p;
	int in_flight, submitting;
	int refs; /* in-flight runs using it; a pool dropped by reload lives until 0 */
	bool retired;
	struct pool_rt *next;
};

enum phase { PH_SUBMIT, PH_WATCH, PH_CANCEL, PH_CLEANUP };

struct active {
	struct pp_run_rec rec;
	struct pool_rt *pool;
	struct pp_run_io io;
	struct pp_json *job;
	enum phase phase;
	bool busy; /* an op is under way in the exec engine */
	bool cancel_wanted;
	bool release_after_submit; /* once without --wait */
	bool single_status;	   /* once without --wait: look once, then let go */
	bool recheck_lease;	   /* leases lapsed: confirm the run is still ours first */
	int64_t next_mono;	   /* next status poll */
	int64_t watch_since;	   /* when the run was first seen not yet running */
	int status_failures;
	enum pp_store_state final;
	char final_msg[512];
	struct pp_loop *loop;
	struct active *prev, *next;
};

struct pp_loop {
	struct pp_config *cfg;
	const struct pp_loop_opts *opts;
	struct pp_loop_summary *sum;
	struct pp_store *store;
	struct pp_exec *exec;
	struct pp_source **sources;
	size_t nsources;
	struct pool_rt *pools;
	struct active *runs;
	int nactive, nsubmitting;
	char owner[96];
	struct pp_exec_policy policy;
	struct pp_metrics *metrics;
	struct pp_metrics_snapshot snap;
	int64_t last_renew, last_cancel_check, last_source_poll, last_snapshot;
	/* Monotonic: when the oldest lease held ends unless renewed (a renewal
	 * extends them all). No op starts or sends past it. */
	int64_t lease_until;
	bool draining;
	bool backlog;		 /* a claim filled its capacity: more runs may be due */
	unsigned claim_turn;	 /* which pool is served first in the next claim */
	bool claimed_everything; /* once: nothing more due */
	/* Runs dropped after a failed store write: their leases are released
	 * once the store answers again, so another pass recovers them (by key
	 * and by the recorded outcome) instead of our renewals holding them. */
	struct orphan {
		char id[PP_ID_LEN];
		int64_t fence;
		enum pp_store_state state;
	} orphans[64];
	int norphans;
};

static void pool_release(struct pool_rt *p)
{
	pp_pool_close(p->p);
	free(p);
}

static void pools_free(struct pool_rt *head)
{
	while (head) {
		struct pool_rt *n = head->next;
		pool_release(head);
		head = n;
	}
}

static int pools_build(const struct pp_config *cfg, struct pool_rt **out, struct pp_error *err)
{
	struct pool_rt *head = NULL, **tail = &head;
	int rc = 0;
	for (size_t i = 0; i < cfg->npools && !rc; i++) {
		struct pool_rt *p = calloc(1, sizeof(*p));
		if (!p) {
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
			break;
		}
		*tail = p;
		tail = &p->next;
		rc = pp_pool_open(cfg, &cfg->pools[i], 0, &p->p, err);
	}
	if (rc) {
		pools_free(head);
		return rc;
	}
	*out = head;
	return 0;
}

static struct pool_rt *pool_find(struct pp_loop *L, const char *name)
{
	for (struct pool_rt *p = L->pools; p; p = p->next)
		if (!p->retired && !strcmp(p->p->name, name))
			return p;
	return NULL;
}

/* ---- active runs ---- */

static void active_free(struct pp_loop *L, struct active *a)
{
	if (a->prev)
		a->prev->next = a->next;
	else
		L->runs = a->next;
	if (a->next)
		a->next->prev = a->prev;
	L->nactive--;
	if (a->pool) {
		a->pool->in_flight--;
		a->pool->refs--;
	}
	if (a->pool && a->pool->p->prov->release && a->io.state)
		a->pool->p->prov->release(a->io.state);
	free(a->io.state);
	pp_http_req_free(&a->io.req);
	pp_json_free(a->job);
	pp_run_rec_free(&a->rec);
	free(a);
}

static void report_source(struct pp_loop *L, struct active *a, enum pp_store_state st,
			  const char *msg)
{
	for (size_t i = 0; i < L->nsources; i++) {
		struct pp_source *s = L->sources[i];
		if (!a->rec.source || strcmp(s->ops->name, a->rec.source))
			continue;
		struct pp_error err = {0};
		if (s->ops->report(s, &a->rec, st, a->rec.infra_id, msg, &err))
			pp_warn("run %s: reporting %s to %s failed: %s", a->rec.id,
				pp_store_state_name(st), s->ops->name, err.msg);
	}
}

/* Fenced store write; on a lost lease the run is dropped here at once:
 * another dispatcher owns it now. Returns false when the run was dropped. */
static bool store_write(struct pp_loop *L, struct active *a, const struct pp_run_update *u)
{
	struct pp_error err = {0};
	int rc = L->store->ops->update(L->store, a->rec.id, a->rec.fence, u, &err);
	if (rc == PP_ECONFLICT) {
		pp_warn("run %s: %s; leaving it to its new owner", a->rec.id, err.msg);
		L->sum->lost_lease++;
		active_free(L, a);
		return false;
	}
	if (rc) {
		/* The store is the record: without it we must not go on acting. */
		pp_error("run %s: store write failed: %s; leaving it for recovery", a->rec.id,
			 err.msg);
		if (L->norphans < (int)(sizeof(L->orphans) / sizeof(L->orphans[0]))) {
			struct orphan *o = &L->orphans[L->norphans++];
			memcpy(o->id, a->rec.id, sizeof(o->id));
			o->fence = a->rec.fence;
			o->state = a->rec.state;
		}
		active_free(L, a);
		return false;
	}
	a->rec.state = u->state;
	if (u->infra_id) {
		free(a->rec.infra_id);
		a->rec.infra_id = strdup(u->infra_id);
	}
	if (u->idem_key) {
		free(a->rec.idem_key);
		a->rec.idem_key = strdup(u->idem_key);
	}
	if (u->attempt >= 0)
		a->rec.attempt = u->attempt;
	return true;
}

static void count_terminal(struct pp_loop *L, enum pp_store_state st)
{
	switch (st) {
	case PP_ST_SUCCEEDED: L->sum->succeeded++; break;
	case PP_ST_FAILED: L->sum->failed++; break;
	case PP_ST_CRASHED: L->sum->crashed++; break;
	case PP_ST_CANCELLED: L->sum->cancelled++; break;
	case PP_ST_DEAD: L->sum->dead++; break;
	default: break;
	}
	pp_metrics_count_terminal(L->metrics, st);
}

static void finish(struct pp_loop *L, struct active *a, enum pp_store_state st, const char *msg)
{
	struct pp_run_update u = {.state = st,
				  .attempt = -1,
				  .next_attempt_ms = -1,
				  .error = st == PP_ST_SUCCEEDED ? "" : msg,
				  .release_lease = true,
				  .event = msg && *msg ? msg : pp_store_state_name(st)};
	pp_info("run %s (%s): %s%s%s", a->rec.id, a->pool ? a->pool->p->name : a->rec.pool,
		pp_store_state_name(st), msg && *msg ? ": " : "", msg ? msg : "");
	if (!store_write(L, a, &u))
		return;
	count_terminal(L, st);
	report_source(L, a, st, msg);
	active_free(L, a);
}

static void start_op(struct pp_loop *L, struct active *a, enum pp_op op);

static void idem_key_for(const struct pp_run_rec *r, char *out, size_t n)
{
	/* One key per run: every retry and every recovery after a crash
	 * reuses it, so the provider sees one submission however often it is
	 * sent. */
	snprintf(out, n, "%s-1", r->id);
}

static void begin_watch(struct pp_loop *L, struct active *a, long delay_ms)
{
	a->phase = PH_WATCH;
	a->next_mono = pp_mono_ms() + delay_ms;
	if (!a->watch_since)
		a->watch_since = pp_mono_ms();
}

static void on_submit(struct pp_loop *L, struct active *a, int rc, const struct pp_error *err)
{
	L->nsubmitting--;
	a->pool->submitting--;
	if (rc == 0) {
		L->sum->submitted++;
		pp_metrics_count(L->metrics, "submissions", 1);
		struct pp_run_update u = {.state = PP_ST_SUBMITTED,
					  .infra_id = a->io.infra_id,
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  .error = "",
					  .release_lease = a->release_after_submit,
					  .event = "submitted"};
		char ev[640];
		snprintf(ev, sizeof(ev), "submitted: %s", a->io.infra_id);
		u.event = ev;
		pp_info("run %s (%s): submitted as %s", a->rec.id, a->pool->p->name,
			a->io.infra_id);
		if (!store_write(L, a, &u))
			return;
		report_source(L, a, PP_ST_SUBMITTED, NULL);
		if (a->release_after_submit) {
			active_free(L, a);
			return;
		}
		if (a->cancel_wanted) {
			start_op(L, a, PP_OP_CANCEL);
			return;
		}
		begin_watch(L, a, (long)(L->cfg->dispatcher.status_interval * 1000));
		return;
	}
	const char *msg = err && err->msg[0] ? err->msg : pp_strerror(rc);
	if (pp_err_retryable(rc)) {
		int tries = a->rec.attempt; /* already counts this try */
		if (tries >= L->cfg->dispatcher.submit_attempts) {
			char m[PP_ERRMSG_MAX + 64];
			snprintf(m, sizeof(m), "submission failed %d times: %s", tries, msg);
			finish(L, a, PP_ST_DEAD, m);
			return;
		}
		long wait = pp_backoff_ms(tries, L->cfg->dispatcher.backoff_base_ms,
					  L->cfg->dispatcher.backoff_max_ms,
					  err ? err->retry_after_ms : 0);
		char m[PP_ERRMSG_MAX + 64];
		snprintf(m, sizeof(m), "submission failed (try %d, retry in %ld ms): %s", tries,
			 wait, msg);
		pp_warn("run %s (%s): %s", a->rec.id, a->pool->p->name, m);
		L->sum->retrying++;
		pp_metrics_count(L->metrics, "retries", 1);
		struct pp_run_update u = {.state = PP_ST_SUBMITTING,
					  .attempt = -1,
					  .next_attempt_ms = pp_wall_ms() + wait,
					  .error = msg,
					  .release_lease = true,
					  .event = m};
		if (store_write(L, a, &u))
			active_free(L, a);
		return;
	}
	char m[PP_ERRMSG_MAX + 32];
	snprintf(m, sizeof(m), "submission rejected: %s", msg);
	finish(L, a, PP_ST_FAILED, m);
}

static enum pp_store_state final_state(enum pp_run_state s)
{
	switch (s) {
	case PP_RUN_SUCCEEDED: return PP_ST_SUCCEEDED;
	case PP_RUN_FAILED: return PP_ST_FAILED;
	case PP_RUN_CANCELLED: return PP_ST_CANCELLED;
	default: return PP_ST_CRASHED;
	}
}

/* The outcome is recorded as an event before cleanup starts: cleanup
 * deletes the remote job, so a dispatcher that dies in between must learn
 * the outcome from the store, not from a job that is gone. */
#define FINISHING_EVENT "finishing "

static void after_terminal(struct pp_loop *L, struct active *a, enum pp_store_state st,
			   const char *msg)
{
	a->final = st;
	snprintf(a->final_msg, sizeof(a->final_msg), "%s", msg ? msg : "");
	if (a->pool->p->prov->cleanup) {
		char ev[sizeof(a->final_msg) + 32];
		snprintf(ev, sizeof(ev), FINISHING_EVENT "%s: %s", pp_store_state_name(st),
			 a->final_msg);
		struct pp_run_update u = {
			.state = a->rec.state, .attempt = -1, .next_attempt_ms = -1, .event = ev};
		if (!store_write(L, a, &u))
			return;
		start_op(L, a, PP_OP_CLEANUP);
		return;
	}
	finish(L, a, st, a->final_msg);
}

/* A run recovered after a crash whose outcome was already recorded: true,
 * with a->final and a->final_msg set from the last "finishing" event. */
static bool recorded_outcome(struct pp_loop *L, struct active *a)
{
	struct pp_run_rec rec;
	struct pp_run_event *ev = NULL;
	int nev = 0;
	struct pp_error err = {0};
	bool found = false;
	if (L->store->ops->get(L->store, a->rec.id, &rec, &ev, &nev, &err))
		return false;
	for (int i = nev - 1; i >= 0 && !found; i--) {
		const char *m = ev[i].message;
		if (!m || strncmp(m, FINISHING_EVENT, strlen(FINISHING_EVENT)))
			continue;
		m += strlen(FINISHING_EVENT);
		const char *colon = strstr(m, ": ");
		char name[16];
		if (!colon || (size_t)(colon - m) >= sizeof(name))
			break;
		snprintf(name, sizeof(name), "%.*s", (int)(colon - m), m);
		if (pp_store_state_parse(name, &a->final) == 0 &&
		    pp_store_state_terminal(a->final)) {
			snprintf(a->final_msg, sizeof(a->final_msg), "%s", colon + 2);
			found = true;
		}
		break;
	}
	pp_run_rec_free(&rec);
	pp_run_events_free(ev, nev);
	return found;
}

static void on_status(struct pp_loop *L, struct active *a, int rc, const struct pp_error *err)
{
	long interval = (long)(L->cfg->dispatcher.status_interval * 1000);
	if (rc) {
		if (rc == PP_ENOTFOUND) {
			char m[PP_ERRMSG_MAX + 32];
			snprintf(m, sizeof(m), "remote job disappeared: %s", err ? err->msg : "");
			finish(L, a, PP_ST_CRASHED, m);
			return;
		}
		a->status_failures++;
		pp_warn("run %s: status check failed (%d in a row): %s", a->rec.id,
			a->status_failures, err ? err->msg : pp_strerror(rc));
		begin_watch(L, a, pp_backoff_ms(a->status_failures, interval, 60000, 0) + interval);
		return;
	}
	a->status_failures = 0;
	enum pp_run_state rs = a->io.state_out;
	if (a->single_status && !pp_run_state_terminal(rs)) {
		struct pp_run_update u = {.state = rs == PP_RUN_RUNNING ? PP_ST_RUNNING
									: a->rec.state,
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  .release_lease = true};
		if (store_write(L, a, &u))
			active_free(L, a);
		return;
	}
	if (pp_run_state_terminal(rs)) {
		char m[700];
		if (a->io.exit_code >= 0)
			snprintf(m, sizeof(m), "%s (exit code %d)%s%s", pp_run_state_name(rs),
				 a->io.exit_code, a->io.message[0] ? ": " : "", a->io.message);
		else
			snprintf(m, sizeof(m), "%s%s%s", pp_run_state_name(rs),
				 a->io.message[0] ? ": " : "", a->io.message);
		after_terminal(L, a, final_state(rs), m);
		return;
	}
	if (rs == PP_RUN_RUNNING && a->rec.state != PP_ST_RUNNING) {
		struct pp_run_update u = {.state = PP_ST_RUNNING,
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  .event = "running"};
		if (!store_write(L, a, &u))
			return;
		report_source(L, a, PP_ST_RUNNING, NULL);
	}
	if (rs != PP_RUN_RUNNING && L->cfg->dispatcher.start_timeout > 0 &&
	    pp_mono_ms() - a->watch_since > (int64_t)(L->cfg->dispatcher.start_timeout * 1000) &&
	    a->rec.state != PP_ST_RUNNING) {
		snprintf(a->final_msg, sizeof(a->final_msg), "did not start within %.0f s (%s)%s%s",
			 L->cfg->dispatcher.start_timeout, pp_run_state_name(rs),
			 a->io.message[0] ? ": " : "", a->io.message);
		a->final = PP_ST_CRASHED;
		start_op(L, a, PP_OP_CANCEL);
		return;
	}
	begin_watch(L, a, a->io.poll_after_ms > 0 ? a->io.poll_after_ms : interval);
}

static void on_cancel(struct pp_loop *L, struct active *a, int rc, const struct pp_error *err)
{
	if (rc && rc != PP_ENOTFOUND) {
		pp_warn("run %s: cancel failed: %s; will retry", a->rec.id, err ? err->msg : "");
		a->phase = PH_CANCEL;
		a->next_mono = pp_mono_ms() + 2000;
		return;
	}
	enum pp_store_state st = a->final == PP_ST_CRASHED ? PP_ST_CRASHED : PP_ST_CANCELLED;
	if (st == PP_ST_CANCELLED)
		snprintf(a->final_msg, sizeof(a->final_msg), "cancelled on request");
	after_terminal(L, a, st, a->final_msg);
}

static void on_cleanup(struct pp_loop *L, struct active *a, int rc, const struct pp_error *err)
{
	if (rc && rc != PP_ENOTFOUND) {
		/* The job's outcome is known; record it, and say what was left. */
		char m[sizeof(a->final_msg) + PP_ERRMSG_MAX];
		snprintf(m, sizeof(m), "%s (cleanup failed: %s)", a->final_msg,
			 err ? err->msg : "");
		finish(L, a, a->final, m);
		return;
	}
	finish(L, a, a->final, a->final_msg);
}

static void op_done(void *ud, int rc, const struct pp_error *err)
{
	struct active *a = ud;
	struct pp_loop *L = a->loop;
	a->busy = false;
	switch (a->phase) {
	case PH_SUBMIT: on_submit(L, a, rc, err); break;
	case PH_WATCH: on_status(L, a, rc, err); break;
	case PH_CANCEL: on_cancel(L, a, rc, err); break;
	case PH_CLEANUP: on_cleanup(L, a, rc, err); break;
	}
}

static void set_lease_until(struct pp_loop *L, int64_t until)
{
	L->lease_until = until;
	L->policy.not_after_ms = until;
}

/* After the leases lapsed (a stall longer than the lease, a store outage),
 * another dispatcher may have claimed the run: true when its fence is
 * still the one it was claimed with. */
static bool still_ours(struct pp_loop *L, struct active *a, struct pp_error *err)
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

static void start_op(struct pp_loop *L, struct active *a, enum pp_op op)
{
	struct pp_error err = {0};
	if (a->recheck_lease) {
		if (!still_ours(L, a, &err)) {
			if (err.code == PP_ECONFLICT) {
				pp_warn("%s; leaving it to its new owner", err.msg);
				L->sum->lost_lease++;
				active_free(L, a);
			} else {
				/* The store cannot say: try again later. */
				op_done(a, PP_ETRANSIENT, &err);
			}
			return;
		}
		a->recheck_lease = false;
	}
	a->phase = op == PP_OP_SUBMIT	? PH_SUBMIT
		   : op == PP_OP_STATUS ? PH_WATCH
		   : op == PP_OP_CANCEL ? PH_CANCEL
					: PH_CLEANUP;
	a->busy = true;
	a->io.resp = NULL;
	int rc = pp_exec_start(L->exec, a->pool->p->prov, op, &a->io, &L->policy, op_done, a, &err);
	if (rc) {
		a->busy = false;
		op_done(a, rc, &err);
	}
}

/* Render the job and prepare the provider's per-run state. */
static int prepare_run(struct pp_loop *L, struct active *a, struct pp_error *err)
{
	struct pool_rt *p = a->pool;
	struct pp_json *run_vars = NULL, *dep_vars = NULL, *src_tmpl = NULL;
	int rc = 0;
	for (size_t i = 0; i < L->nsources && !rc; i++) {
		struct pp_source *s = L->sources[i];
		if (a->rec.source && !strcmp(s->ops->name, a->rec.source) && s->ops->job_inputs)
			rc = s->ops->job_inputs(s, &a->rec, &src_tmpl, &dep_vars, err);
	}
	if (!rc && a->rec.job_variables && *a->rec.job_variables) {
		rc = pp_json_parse(a->rec.job_variables, strlen(a->rec.job_variables), NULL,
				   &run_vars, err);
		if (rc)
			pp_error_prefix(err, "job variables:");
	}
	if (!rc) {
		struct pp_run_ctx ctx = {
			.flow_run_id = a->rec.source_ref ? a->rec.source_ref : a->rec.id,
			.flow_run_name = a->rec.name,
			.deployment_name = a->rec.deployment,
		};
		rc = pp_pool_render(p->p, src_tmpl, dep_vars, run_vars, &ctx, &a->job, err);
	}
	pp_json_free(run_vars);
	pp_json_free(dep_vars);
	pp_json_free(src_tmpl);
	if (rc)
		return rc;
	pp_pool_io_init(p->p, &a->io, a->rec.id, a->rec.name, a->job);
	return pp_exec_io_prepare(&a->io, p->p->prov, err);
}

static void start_run(struct pp_loop *L, struct pp_run_rec *rec)
{
	struct active *a = calloc(1, sizeof(*a));
	if (!a) {
		pp_run_rec_free(rec);
		return;
	}
	a->rec = *rec;
	memset(rec, 0, sizeof(*rec));
	a->loop = L;
	a->pool = pool_find(L, a->rec.pool);
	a->next = L->runs;
	if (L->runs)
		L->runs->prev = a;
	L->runs = a;
	L->nactive++;
	L->sum->claimed++;
	if (!a->pool) {
		char m[160];
		snprintf(m, sizeof(m), "pool \"%s\" is not configured", a->rec.pool);
		finish(L, a, PP_ST_FAILED, m);
		return;
	}
	a->pool->in_flight++;
	a->pool->refs++;
	if (a->rec.cancel_requested && a->rec.state == PP_ST_SCHEDULED) {
		finish(L, a, PP_ST_CANCELLED, "cancelled before submission");
		return;
	}
	struct pp_error err = {0};
	int rc = prepare_run(L, a, &err);
	if (rc && pp_err_retryable(rc)) {
		/* The run's source (e.g. the Prefect API) is unreachable: try
		 * again later instead of failing a run that may well be fine. */
		pp_warn("run %s: inputs unavailable, retrying later: %s", a->rec.id, err.msg);
		struct pp_run_update u = {.state = a->rec.state,
					  .attempt = -1,
					  .next_attempt_ms =
						  pp_wall_ms() +
						  pp_backoff_ms(1, 1000, 30000, err.retry_after_ms),
					  .release_lease = true};
		if (store_write(L, a, &u))
			active_free(L, a);
		return;
	}
	if (rc) {
		/* The template or variables are wrong: this run cannot succeed,
		 * and it must not hold up the others. */
		finish(L, a, PP_ST_FAILED, err.msg);
		return;
	}
	if (a->rec.infra_id)
		snprintf(a->io.infra_id, sizeof(a->io.infra_id), "%s", a->rec.infra_id);
	a->io.idem_key = NULL;
	switch (a->rec.state) {
	case PP_ST_SCHEDULED:
	case PP_ST_SUBMITTING: {
		char key[PP_ID_LEN + 8];
		if (!a->rec.idem_key)
			idem_key_for(&a->rec, key, sizeof(key));
		int attempt = a->rec.attempt + 1;
		char ev[128];
		snprintf(ev, sizeof(ev), "submitting (try %d)", attempt);
		/* Intent first: once this commits, any later claimer resubmits
		 * with the same key instead of starting over. */
		struct pp_run_update u = {.state = PP_ST_SUBMITTING,
					  .idem_key = a->rec.idem_key ? NULL : key,
					  .attempt = attempt,
					  .next_attempt_ms = -1,
					  .event = ev};
		if (!store_write(L, a, &u))
			return;
		a->io.idem_key = a->rec.idem_key;
		a->release_after_submit = L->opts->once && !L->opts->wait;
		L->nsubmitting++;
		a->pool->submitting++;
		start_op(L, a, PP_OP_SUBMIT);
		return;
	}
	case PP_ST_SUBMITTED:
	case PP_ST_RUNNING:
	case PP_ST_CANCELLING:
		a->io.idem_key = a->rec.idem_key;
		if (a->pool->p->prov->restore && (rc = a->pool->p->prov->restore(&a->io, &err))) {
			finish(L, a, PP_ST_CRASHED, err.msg);
			return;
		}
		if (recorded_outcome(L, a)) {
			start_op(L, a, PP_OP_CLEANUP);
			return;
		}
		if (a->rec.state == PP_ST_CANCELLING || a->rec.cancel_requested) {
			start_op(L, a, PP_OP_CANCEL);
			return;
		}
		a->single_status = L->opts->once && !L->opts->wait;
		begin_watch(L, a, 0);
		return;
	default: finish(L, a, a->rec.state, a->rec.last_error); return;
	}
}

/* Runs pool p may claim now; p NULL: the global room alone. */
static int pool_capacity(struct pp_loop *L, struct pool_rt *p)
{
	long global = L->cfg->dispatcher.max_in_flight - L->nactive;
	long subm = L->cfg->dispatcher.max_submitting - L->nsubmitting;
	long cap = global < subm ? global : subm;
	if (p && p->p->max_in_flight > 0 && p->p->max_in_flight - p->in_flight < cap)
		cap = p->p->max_in_flight - p->in_flight;
	if (p && p->p->max_submitting > 0 && p->p->max_submitting - p->submitting < cap)
		cap = p->p->max_submitting - p->submitting;
	return cap > 0 ? (int)(cap > 256 ? 256 : cap) : 0;
}

/* Returns runs claimed. */
static int claim_some(struct pp_loop *L)
{
	int total = 0, npools = 0;
	for (struct pool_rt *p = L->pools; p; p = p->next)
		npools += !p->retired;
	if (!npools)
		return 0;
	/* Free slots are shared: each pool may take its fair part of what is
	 * left, and the first pool served rotates, so one pool whose runs keep
	 * retrying (a quota, an outage) cannot hold every slot. */
	int start = (int)(L->claim_turn++ % (unsigned)npools), idx = 0, left = npools;
	for (int pass = 0; pass < 2; pass++) {
		for (struct pool_rt *p = L->pools; p; p = p->next) {
			if (p->retired)
				continue;
			int mine = idx++ % npools;
			if ((pass == 0) != (mine >= start))
				continue;
			int cap = pool_capacity(L, p);
			int room = pool_capacity(L, NULL);
			int share = (room + left - 1) / left;
			left--;
			if (cap > share)
				cap = share;
			if (cap <= 0)
				continue;
			struct pp_run_rec *recs = NULL;
			int n = 0;
			struct pp_error err = {0};
			int64_t claimed_at = pp_mono_ms();
			int rc = L->store->ops->claim(
				L->store, p->p->name, L->owner,
				(int64_t)(L->cfg->dispatcher.lease_seconds * 1000), cap, &recs, &n,
				&err);
			if (rc) {
				pp_warn("claim for pool %s failed: %s", p->p->name, err.msg);
				continue;
			}
			/* Holding nothing before, these fresh leases are the oldest. */
			if (n && !L->nactive)
				set_lease_until(
					L, claimed_at + (int64_t)(L->cfg->dispatcher.lease_seconds *
								  1000));
			for (int i = 0; i < n; i++)
				start_run(L, &recs[i]);
			free(recs);
			total += n;
			if (n == cap)
				L->backlog = true;
		}
	}
	return total;
}

static void check_cancels(struct pp_loop *L)
{
	char(*ids)[PP_ID_LEN] = NULL;
	int n = 0;
	struct pp_error err = {0};
	if (L->store->ops->cancel_requests(L->store, L->owner, &ids, &n, &err)) {
		pp_warn("reading cancel requests failed: %s", err.msg);
		return;
	}
	for (int i = 0; i < n; i++) {
		for (struct active *a = L->runs; a; a = a->next) {
			if (strcmp(a->rec.id, ids[i]) || a->cancel_wanted)
				continue;
			a->cancel_wanted = true;
			if (a->phase == PH_WATCH && !a->busy) {
				struct pp_run_update u = {.state = PP_ST_CANCELLING,
							  .attempt = -1,
							  .next_attempt_ms = -1,
							  .event = "cancelling remote job"};
				if (store_write(L, a, &u))
					start_op(L, a, PP_OP_CANCEL);
			}
			break;
		}
	}
	free(ids);
}

static void release_orphans(struct pp_loop *L)
{
	while (L->norphans > 0) {
		struct orphan *o = &L->orphans[L->norphans - 1];
		struct pp_run_update u = {.state = o->state,
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  .release_lease = true,
					  .event = "released after a failed store write"};
		struct pp_error err = {0};
		int rc = L->store->ops->update(L->store, o->id, o->fence, &u, &err);
		if (rc && rc != PP_ECONFLICT)
			return; /* the store is still failing: try again later */
		L->norphans--;
	}
}

static void poll_due_watches(struct pp_loop *L)
{
	int64_t now = pp_mono_ms();
	struct active *next;
	for (struct active *a = L->runs; a; a = next) {
		next = a->next;
		if (a->busy || a->next_mono > now)
			continue;
		if (a->phase == PH_WATCH)
			start_op(L, a, a->cancel_wanted ? PP_OP_CANCEL : PP_OP_STATUS);
		else if (a->phase == PH_CANCEL)
			start_op(L, a, PP_OP_CANCEL);
	}
}

static void update_snapshot(struct pp_loop *L)
{
	struct pp_metrics_snapshot *s = &L->snap;
	struct pp_error err = {0};
	struct pp_store_counts c;
	if (!L->store->ops->counts(L->store, &c, &err)) {
		memcpy(s->by_state, c.by_state, sizeof(s->by_state));
		s->queue_lag_seconds =
			c.oldest_due_ms ? (double)(pp_wall_ms() - c.oldest_due_ms) / 1000.0 : 0;
	}
	s->active = L->nactive;
	s->submitting = L->nsubmitting;
	pp_exec_stats(L->exec, &s->exec);
	s->token_refreshes = 0;
	for (struct pool_rt *p = L->pools; p; p = p->next)
		if (p->p->cred)
			s->token_refreshes += pp_cred_refreshes(p->p->cred);
	pp_metrics_publish(L->metrics, s);
}

static int reload(struct pp_loop *L)
{
	struct pp_config fresh;
	struct pp_error err = {0};
	struct pool_rt *pools = NULL;
	int rc = pp_config_init(&fresh, &err);
	if (!rc)
		rc = pp_config_load(&fresh, L->cfg->path, &err);
	if (!rc) {
		struct pp_buf problems;
		pp_buf_init(&problems, 1 << 16);
		if (pp_config_validate(&fresh, &problems))
			rc = pp_fail(&err, PP_EINVALID, "%s", pp_buf_str(&problems));
		pp_buf_free(&problems);
	}
	if (!rc)
		rc = pools_build(&fresh, &pools, &err);
	if (rc) {
		pp_error("reload: keeping the running configuration: %s", err.msg);
		pools_free(pools);
		pp_config_free(&fresh);
		return rc;
	}
	/* Runs under way keep their pool objects; new claims use the new ones. */
	struct pool_rt **tail = &pools;
	while (*tail)
		tail = &(*tail)->next;
	for (struct pool_rt *p = L->pools; p; p = p->next)
		p->retired = true;
	*tail = L->pools;
	L->pools = pools;
	/* Pools copy what they keep from the configuration, so the old one can
	 * go now. */
	pp_config_free(L->cfg);
	*L->cfg = fresh;
	pp_info("configuration reloaded from %s", L->cfg->path);
	return 0;
}

static void drop_retired_pools(struct pp_loop *L)
{
	struct pool_rt **pp = &L->pools;
	while (*pp) {
		struct pool_rt *p = *pp;
		if (p->retired && p->refs == 0) {
			*pp = p->next;
			pool_release(p);
		} else {
			pp = &p->next;
		}
	}
}

static void poll_sources(struct pp_loop *L)
{
	for (size_t i = 0; i < L->nsources; i++) {
		struct pp_error err = {0};
		if (L->sources[i]->ops->poll(L->sources[i], L->store, &err))
			pp_warn("source %s: %s", L->sources[i]->ops->name, err.msg);
	}
}

static bool once_finished(struct pp_loop *L)
{
	if (!L->claimed_everything)
		return false;
	if (L->opts->wait)
		return L->nactive == 0;
	return L->nsubmitting == 0 && L->nactive == 0;
}

static void renew_leases(struct pp_loop *L)
{
	int64_t lease_ms = (int64_t)(L->cfg->dispatcher.lease_seconds * 1000);
	int64_t started = pp_mono_ms();
	struct pp_error e = {0};
	L->last_renew = started;
	if (L->store->ops->renew(L->store, L->owner, lease_ms, &e)) {
		pp_warn("lease renewal failed: %s", e.msg);
	} else {
		if (L->nactive && L->lease_until && started >= L->lease_until) {
			pp_warn("leases lapsed %lld ms before this renewal; confirming each of "
				"%d run(s) is still ours before acting on it",
				(long long)(started - L->lease_until), L->nactive);
			for (struct active *a = L->runs; a; a = a->next)
				a->recheck_lease = true;
		}
		set_lease_until(L, started + lease_ms);
	}
	release_orphans(L);
}

/* Release every lease we hold so another dispatcher can pick up at once. */
static void release_all(struct pp_loop *L)
{
	while (L->runs) {
		struct active *a = L->runs;
		struct pp_run_update u = {.state = a->rec.state,
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  .release_lease = true};
		if (store_write(L, a, &u))
			active_free(L, a);
		else if (L->runs == a)
			active_free(L, a);
	}
}

int pp_store_url(const struct pp_config *cfg, char *out, size_t n)
{
	if (cfg->store.url && *cfg->store.url)
		snprintf(out, n, "%s", cfg->store.url);
	else
		snprintf(out, n, "%s/pushpool.db", cfg->dispatcher.state_dir);
	return 0;
}

static int open_sources(struct pp_loop *L, struct pp_error *err)
{
	for (size_t i = 0; pp_sources[i]; i++) {
		struct pp_source *s = NULL;
		int rc = pp_sources[i]->open(L->cfg, &s, err);
		if (rc)
			return rc;
		if (!s)
			continue; /* not configured */
		struct pp_source **v = realloc(L->sources, (L->nsources + 1) * sizeof(*v));
		if (!v) {
			pp_sources[i]->close(s);
			return pp_fail(err, PP_ENOMEM, "out of memory");
		}
		L->sources = v;
		L->sources[L->nsources++] = s;
	}
	return 0;
}

int pp_loop_run(struct pp_config *cfg, const struct pp_loop_opts *opts, struct pp_loop_summary *sum,
		struct pp_error *err)
{
	struct pp_loop L = {.cfg = cfg, .opts = opts, .sum = sum};
	memset(sum, 0, sizeof(*sum));
	stop_requested = reload_requested = 0;
	char url[1024];
	pp_store_url(cfg, url, sizeof(url));
	if (opts->owner) {
		snprintf(L.owner, sizeof(L.owner), "%s", opts->owner);
	} else {
		char host[64] = "host", id[PP_ID_LEN];
		gethostname(host, sizeof(host) - 1);
		pp_uuid4(id);
		snprintf(L.owner, sizeof(L.owner), "%.40s:%d:%.8s", host, (int)getpid(), id);
	}
	L.policy.max_attempts = 6;
	L.policy.base_ms = cfg->dispatcher.backoff_base_ms;
	L.policy.cap_ms = cfg->dispatcher.backoff_max_ms;
	/* No op outlives the lease it started under: after a stall (SIGSTOP, a
	 * VM pause) longer than the lease, its next request is refused and the
	 * fenced write that follows drops a run another dispatcher may own by
	 * now. Two thirds, as a renewal is due every third of the lease. */
	L.policy.budget_ms = (long)(cfg->dispatcher.lease_seconds * 1000) * 2 / 3;
	int rc = pools_build(cfg, &L.pools, err);
	if (!rc)
		rc = pp_store_open(url, &L.store, err);
	if (!rc && !(L.exec = pp_exec_new()))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc)
		rc = open_sources(&L, err);
	if (!rc && !opts->once && cfg->dispatcher.metrics_listen && *cfg->dispatcher.metrics_listen)
		rc = pp_metrics_start(cfg->dispatcher.metrics_listen, &L.metrics, err);
	if (rc)
		goto out;
	pp_info("dispatcher %s: store %s, %zu pool(s)%s", L.owner, url, cfg->npools,
		opts->once ? ", one pass" : "");
	if (!opts->once)
		pp_notify_ready();
	int64_t started = pp_mono_ms(), stop_deadline = 0;
	int64_t last_claim = 0;
	for (;;) {
		int64_t now = pp_mono_ms();
		if (stop_requested && !L.draining) {
			L.draining = true;
			stop_deadline = now + (int64_t)(cfg->dispatcher.grace_seconds * 1000);
			pp_info("stopping: no new claims; finishing %d submission(s)",
				L.nsubmitting);
			pp_notify_stopping();
		}
		if (reload_requested) {
			reload_requested = 0;
			pp_notify_reloading();
			reload(&L);
			pp_notify_ready();
		}
		if (L.draining && (L.nsubmitting == 0 || now >= stop_deadline))
			break;
		if (opts->once && opts->timeout > 0 &&
		    now - started > (int64_t)(opts->timeout * 1000)) {
			rc = pp_fail(err, PP_ETRANSIENT,
				     "once: gave up after %.0f s with %d run(s) unfinished",
				     opts->timeout, L.nactive);
			break;
		}
		if (L.nsources && !L.draining &&
		    now - L.last_source_poll >= (int64_t)(cfg->prefect.poll_interval * 1000)) {
			L.last_source_poll = now;
			poll_sources(&L);
		}
		/* Renew before claiming: after a stall the runs held must be
		 * confirmed before anything new starts. */
		if (now - L.last_renew >= (int64_t)(cfg->dispatcher.lease_seconds * 1000) / 3)
			renew_leases(&L);
		if (!L.draining && !L.claimed_everything &&
		    (L.backlog ||
		     now - last_claim >=
			     (opts->once ? 0
					 : (int64_t)(cfg->dispatcher.poll_interval * 1000) / 4))) {
			last_claim = now;
			L.backlog = false;
			int got = claim_some(&L);
			/* once: a pass ends when a claim finds nothing and nothing is
			 * waiting for capacity. */
			if (opts->once && got == 0 && L.nsubmitting == 0)
				L.claimed_everything = true;
		}
		if (now - L.last_cancel_check >= 500) {
			L.last_cancel_check = now;
			check_cancels(&L);
		}
		poll_due_watches(&L);
		drop_retired_pools(&L);
		if (L.metrics && now - L.last_snapshot >= 1000) {
			L.last_snapshot = now;
			update_snapshot(&L);
		}
		if (opts->once && once_finished(&L))
			break;
		pp_notify_watchdog(now);
		/* Idle, pp_exec_poll returns at once: wait on the store's wake-up
		 * descriptor instead (or just sleep), so a NOTIFYing store wakes
		 * us the moment a run is scheduled and an idle loop does not spin. */
		int wake_fd = L.store->ops->wake_fd ? L.store->ops->wake_fd(L.store) : -1;
		if (pp_exec_active(L.exec))
			pp_exec_poll(L.exec, L.nsubmitting ? 20 : 50);
		else
			poll(&(struct pollfd){.fd = wake_fd, .events = POLLIN}, wake_fd >= 0, 50);
		if (wake_fd >= 0 && L.store->ops->wake_drain(L.store) > 0)
			last_claim = 0;
	}
out:
	if (L.store && L.runs)
		release_all(&L);
	pp_metrics_stop(L.metrics);
	for (size_t i = 0; i < L.nsources; i++)
		L.sources[i]->ops->close(L.sources[i]);
	free(L.sources);
	pp_exec_free(L.exec);
	pp_store_close(L.store);
	pools_free(L.pools);
	return rc;
}

int pp_loop_once_status(const struct pp_loop_summary *s, bool wait)
{
	if (s->failed || s->crashed || s->dead || s->cancelled)
		return PP_EXIT_FAILURE;
	if (s->retrying || (wait && s->succeeded < s->claimed - s->lost_lease))
		return PP_EXIT_TEMPFAIL;
	return PP_EXIT_OK;
}
