/* The dispatch loop: claims due runs, drives them through inflight.c,
 * renews leases (lease.c), polls run sources, reloads pools
 * (loop_pools.c) and publishes metrics. One thread, one libcurl multi. */
#include "dispatcher/loop_impl.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "auth/auth.h"
#include "dispatcher/deployment.h"
#include "dispatcher/sweep.h"
#include "dispatcher/ui.h"
#include "lib/http.h"
#include "lib/log.h"
#include "lib/notify.h"

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

static void update_snapshot(struct pp_loop *L)
{
	struct pp_metrics_snapshot *s = &L->snap;
	struct pp_error err = {0};
	struct pp_store_counts c;
	if (!L->store->ops->counts(L->store, &c, &err)) {
		memcpy(s->by_state, c.by_state, sizeof(s->by_state));
		s->queue_lag_seconds =
			c.oldest_due_ms ? (double)(pp_wall_ms() - c.oldest_due_ms) / 1000.0 : 0;
	} else {
		pp_metrics_count(L->metrics, "store_errors", 1);
	}
	s->has_checkpoints = L->store->ops->checkpoints != NULL;
	if (s->has_checkpoints)
		L->store->ops->checkpoints(L->store, &s->checkpoints);
	s->active = L->ninflight;
	s->submitting = L->nsubmitting;
	pp_exec_stats(L->exec, &s->exec);
	s->nproviders = pp_exec_stats_by_provider(L->exec, s->providers, PP_EXEC_PROVIDERS_MAX);
	s->token_refreshes = 0;
	s->ncreds = 0;
	for (struct pool_rt *p = L->pools; p; p = p->next) {
		if (p->retired)
			continue;
		/* Every pool's series exists from the start (at 0), so rates
		 * and alerts over it work before its first removal. */
		pp_metrics_count_swept(L->metrics, p->p->name, 0);
		if (!p->p->cred)
			continue;
		s->token_refreshes += pp_cred_refreshes(p->p->cred);
		long left = pp_cred_seconds_left(p->p->cred);
		if (left >= 0 && s->ncreds < PP_METRICS_CRED_POOLS) {
			snprintf(s->creds[s->ncreds].pool, sizeof(s->creds[0].pool), "%s",
				 p->p->name);
			s->creds[s->ncreds++].seconds_left = left;
		}
	}
	pp_metrics_publish(L->metrics, s);
}

/* The status page, on the metrics listener. Off a loopback address it is
 * only served behind ui_token_file's token. */
static int start_ui(struct pp_loop *L, const char *store_url, struct pp_error *err)
{
	const struct pp_dispatcher_conf *d = &L->cfg->dispatcher;
	if (!d->ui)
		return 0;
	struct sockaddr_in sa;
	bool loopback = !pp_metrics_parse_listen(d->metrics_listen, &sa, err) &&
			(ntohl(sa.sin_addr.s_addr) >> 24) == 127;
	if (!loopback && !(d->ui_token_file && *d->ui_token_file)) {
		pp_warn("status page off: metrics_listen %s is not a loopback address and "
			"ui_token_file is not set",
			d->metrics_listen);
		return 0;
	}
	int rc = pp_ui_new(L->cfg, store_url, L->metrics, &L->ui, err);
	if (!rc && L->ui) {
		pp_metrics_set_page(L->metrics, pp_ui_answer, L->ui);
		pp_info("status page on http://%s/%s", d->metrics_listen,
			L->ui && d->ui_token_file && *d->ui_token_file ? " (token required)" : "");
	}
	return rc;
}

/* Poll each source whose interval has passed since its last poll ended
 * (a poll waits on the server: the loop gets its interval between two), or
 * at once when it left a backlog upstream (pp_source_ops.backlog) and the
 * loop has room: a claim since that poll took every run the store had due,
 * and a submission slot and room in flight are free. Returns whether a
 * source was polled: the runs it recorded are claimed in the same turn. */
static bool poll_sources(struct pp_loop *L, int64_t now)
{
	bool polled = false;
	for (size_t i = 0; i < L->nsources; i++) {
		struct loop_source *ls = &L->sources[i];
		struct pp_source *src = ls->src;
		bool due = now - ls->polled >= (int64_t)(src->ops->interval(src) * 1000);
		bool room = L->claims_made > ls->claims && !L->backlog &&
			    L->nsubmitting < L->cfg->dispatcher.max_submitting &&
			    L->ninflight - L->nheld < L->cfg->dispatcher.max_in_flight;
		if (!due && !(room && src->ops->backlog && src->ops->backlog(src)))
			continue;
		polled = true;
		struct pp_error err = {0};
		if (src->ops->poll(src, L->store, &err))
			pp_warn("source %s: %s", src->ops->name, err.msg);
		ls->polled = pp_mono_ms();
		ls->claims = L->claims_made;
	}
	return polled;
}

/* The turn's reports to each source, together (pp_source_ops.flush). */
static void flush_sources(struct pp_loop *L)
{
	for (size_t i = 0; i < L->nsources; i++)
		if (L->sources[i].src->ops->flush)
			L->sources[i].src->ops->flush(L->sources[i].src);
}

/* Start a sweep of every pool not being swept (dispatcher/sweep.c). Its
 * ops are bounded like a cleanup and need no lease: removing an orphan
 * twice is harmless. */
static void sweep_pools(struct pp_loop *L, struct pp_sweep *sw)
{
	struct pp_exec_policy pol = L->policy;
	pol.budget_ms = PP_CLEANUP_BUDGET_MS;
	pol.not_after_ms = 0;
	for (struct pool_rt *p = L->pools; p; p = p->next) {
		struct pp_error err = {0};
		if (!p->retired && pp_sweep_pool(sw, p->p, &p->refs, &pol, &err))
			pp_warn("%s", err.msg);
	}
}

/* Deployments' due and upcoming slots into runs (dispatcher/scheduler.c).
 * Before the claims that may take them: a slot missed while no dispatcher
 * ran is judged by its catch-up policy before anyone can start it. */
static void schedule_deployments(struct pp_loop *L, int64_t now)
{
	L->last_schedule = now ? now : 1;
	struct pp_sched_stats st;
	struct pp_error err = {0};
	if (pp_scheduler_pass(L->store, pp_wall_ms() / 1000, &st, &err))
		pp_warn("scheduler: %s", err.msg);
	else if (st.inserted || st.dropped)
		pp_debug("scheduler: %d schedule(s), %d run(s) made, %d missed dropped",
			 st.schedules, st.inserted, st.dropped);
}

static bool once_finished(struct pp_loop *L)
{
	if (!L->claimed_everything)
		return false;
	if (L->opts->wait)
		return L->ninflight == 0;
	/* Without --wait the pass waits only for its own submissions. */
	return L->nsubmitting == 0 && L->ninflight == L->nheld;
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
		struct loop_source *v = realloc(L->sources, (L->nsources + 1) * sizeof(*v));
		if (!v) {
			pp_sources[i]->close(s);
			return pp_fail(err, PP_ENOMEM, "out of memory");
		}
		L->sources = v;
		/* never polled: at once */
		L->sources[L->nsources++] = (struct loop_source){.src = s, .polled = INT64_MIN / 2};
	}
	return 0;
}

/* Group commit (store.h's turn): the store writes of a loop turn (the
 * claim, each run's intent, the outcomes of the ops that finished) commit
 * together, before the loop sends anything (the op driver's gate), before
 * a run source sends anything upstream (pp_source.before_send: upstream
 * must never hear of a state the store could still lose, and no call to
 * the orchestrator may run under the store's write lock) and before it
 * waits. The turn's INFO lines are written together with its commit (lib/log.h's
 * hold): a line waits at most for the turn's end, and one a run would cost
 * a system call a run. A store without turns (PostgreSQL, whose writes go
 * out in the background) has its lines held as well, and written before
 * the loop or the op driver waits or sends (store_answered). */
struct turn {
	struct pp_store *store;
	bool on;
	int rc; /* a commit failed: the turn's writes are lost, the loop stops */
	struct pp_error err;
};

static int commit_turn(void *ud)
{
	struct turn *t = ud;
	if (!t->on || t->rc) {
		pp_log_flush(); /* no turn to wait for: the lines go now */
		return t->rc;
	}
	t->rc = t->store->ops->turn_end(t->store, &t->err);
	pp_log_flush();
	if (t->rc) {
		t->on = false;
		pp_error("store: %s; stopping, since what this turn recorded is lost (its "
			 "requests are not sent; the runs are recovered from the store)",
			 t->err.msg);
		return t->rc;
	}
	t->store->ops->turn_begin(t->store);
	return 0;
}

/* The op driver's gate where the store answers queued writes without the
 * loop waiting (store.h's update_send): before the driver waits, what has
 * come of them is reported, so the requests of intents that stand go,
 * and the wait ends when something was. Outcomes may come in without the
 * store's descriptor turning readable (another statement read them), so
 * the descriptor alone would leave them until the wait's end. */
static int store_answered(void *ud)
{
	pp_log_flush();
	return inflight_collect(ud) > 0;
}

/* While a run source waits on its orchestrator (pp_source.while_waiting),
 * what keeps the dispatcher in good standing, though its work waits: the
 * leases renewed when due, the renewal committed at once (no write lock
 * held through the wait), the health check's heartbeat and the watchdog. */
struct source_wait {
	struct pp_loop *L;
	struct turn *turn;
};

/* Renew the leases when a third of the lease has passed since the last
 * renewal: whether it renewed. */
static bool renew_when_due(struct pp_loop *L, int64_t now)
{
	if (now - L->last_renew < loop_lease_ms(L) / 3)
		return false;
	lease_renew(L);
	return true;
}

/* The metrics snapshot (the health check's heartbeat), once a second. */
static void snapshot_when_due(struct pp_loop *L, int64_t now)
{
	if (L->metrics && now - L->last_snapshot >= 1000) {
		L->last_snapshot = now;
		update_snapshot(L);
	}
}

static void source_waiting(void *ud)
{
	struct source_wait *w = ud;
	int64_t now = pp_mono_ms();
	if (renew_when_due(w->L, now))
		commit_turn(w->turn);
	else if (!w->turn->on)
		pp_log_flush(); /* a turn's lines wait for its commit */
	snapshot_when_due(w->L, now);
	pp_notify_watchdog(now);
}

/* A run source's call on the loop's handle was answered (pp_source.wake):
 * the loop's wait returns, and the turn's flush takes the answer up. */
static void source_answered(void *ud)
{
	pp_exec_wake(ud);
}

int pp_loop_run(struct pp_config *cfg, const struct pp_loop_opts *opts, struct pp_loop_summary *sum,
		struct pp_error *err)
{
	struct pp_loop L = {.cfg = cfg, .opts = opts, .sum = sum, .store_fd = -1};
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
	int rc = loop_pools_build(cfg, &L.pools, err);
	if (!rc && !(rc = pp_store_open(url, &L.store, err)))
		L.store->claim_intents = true; /* each claimed run starts its try */
	if (!rc)
		rc = L.store->ops->store_id(L.store, L.store_id, err);
	if (!rc && (!(L.multi = pp_http_multi_new()) || !(L.exec = pp_exec_new_on(L.multi))))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	struct pp_sweep *sweep = NULL;
	if (!rc)
		rc = open_sources(&L, err);
	if (!rc && !opts->once && cfg->dispatcher.metrics_listen && *cfg->dispatcher.metrics_listen)
		rc = pp_metrics_start(cfg->dispatcher.metrics_listen, &L.metrics, err);
	if (!rc && L.metrics)
		rc = start_ui(&L, url, err);
	if (!rc && !(sweep = pp_sweep_new(L.store, L.store_id, L.exec, L.metrics)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	struct turn turn = {.store = L.store};
	struct source_wait waiting = {.L = &L, .turn = &turn};
	if (rc)
		goto out;
	for (size_t i = 0; i < L.nsources; i++) {
		struct pp_source *src = L.sources[i].src;
		src->while_waiting = source_waiting;
		src->while_waiting_ud = &waiting;
		src->multi = L.multi;
		src->wake = source_answered;
		src->wake_ud = L.exec;
	}
	if (L.store->ops->update_send)
		pp_exec_set_gate(L.exec, store_answered, &L);
	pp_log_hold();
	if (L.store->ops->turn_begin) {
		turn.on = true;
		L.store->ops->turn_begin(L.store);
		pp_exec_set_gate(L.exec, commit_turn, &turn);
		for (size_t i = 0; i < L.nsources; i++) {
			L.sources[i].src->before_send = commit_turn;
			L.sources[i].src->before_send_ud = &turn;
		}
	}
	pp_info("dispatcher %s: store %s, %zu pool(s)%s", L.owner, url, cfg->npools,
		opts->once ? ", one pass" : "");
	if (!opts->once)
		pp_notify_ready();
	int64_t started = pp_mono_ms(), stop_deadline = 0;
	int64_t last_claim = 0, last_sweep = started;
	bool once_swept = false;
	double sweep_every = cfg->dispatcher.sweep_interval;
	for (;;) {
		int64_t now = pp_mono_ms();
		inflight_settle_if_due(&L, now);
		if (stop_requested && !L.draining) {
			L.draining = true;
			stop_deadline = now + (int64_t)(cfg->dispatcher.grace_seconds * 1000);
			pp_info("stopping: no new claims; finishing %d submission(s)",
				L.nsubmitting);
			/* Written now, with what the turn holds: the stop may
			 * wait next, on a claim that is out (pg_claim_out.sh). */
			commit_turn(&turn);
			pp_notify_stopping();
		}
		if (reload_requested) {
			reload_requested = 0;
			pp_notify_reloading();
			loop_reload(&L);
			pp_notify_ready();
		}
		if (L.draining && (L.nsubmitting == 0 || now >= stop_deadline))
			break;
		if (opts->once && opts->timeout > 0 &&
		    now - started > (int64_t)(opts->timeout * 1000)) {
			rc = pp_fail(err, PP_ETRANSIENT,
				     "once: gave up after %.0f s with %d run(s) unfinished",
				     opts->timeout, L.ninflight);
			break;
		}
		if (!L.draining && poll_sources(&L, now))
			last_claim = 0;
		if (!L.draining &&
		    (!L.last_schedule ||
		     (!opts->once &&
		      now - L.last_schedule >= (int64_t)(cfg->dispatcher.poll_interval * 1000))))
			schedule_deployments(&L, now);
		/* Renew before claiming: after a stall the runs held must be
		 * confirmed before anything new starts. */
		renew_when_due(&L, now);
		/* last_claim 0: claim at once (the first turn, a wake-up). */
		bool timed =
			!last_claim ||
			now - last_claim >=
				(opts->once ? 0
					    : (int64_t)(cfg->dispatcher.poll_interval * 1000) / 4);
		if (!L.draining && !L.claimed_everything && (L.backlog || timed)) {
			if (timed)
				last_claim = now;
			int got = loop_claim(&L, timed);
			L.claims_made++;
			/* The claim's intents: their requests go once the store has
			 * them. */
			inflight_send(&L);
			/* once: a pass ends when a claim finds nothing and nothing is
			 * waiting for capacity. */
			if (opts->once && got == 0 && L.nsubmitting == 0)
				L.claimed_everything = true;
		}
		if (now - L.last_cancel_check >= 500) {
			L.last_cancel_check = now;
			inflight_check_cancels(&L);
		}
		inflight_poll_due(&L);
		loop_drop_retired_pools(&L);
		snapshot_when_due(&L, now);
		/* The first sweep waits one interval: a starting dispatcher
		 * fetches its tokens for its runs first. */
		if (!opts->once && !L.draining && sweep_every > 0 &&
		    now - last_sweep >= (int64_t)(sweep_every * 1000)) {
			last_sweep = now;
			sweep_pools(&L, sweep);
		}
		/* once sweeps after its own runs are settled, and ends when the
		 * sweep has. */
		if (opts->once && once_finished(&L)) {
			if (once_swept || sweep_every <= 0) {
				if (!pp_sweep_active(sweep))
					break;
			} else {
				once_swept = true;
				sweep_pools(&L, sweep);
			}
		}
		flush_sources(&L);
		pp_notify_watchdog(now);
		/* Idle, pp_exec_poll returns at once: wait on the store's wake-up
		 * descriptor instead (or just sleep), so a NOTIFYing store wakes
		 * us the moment a run is scheduled and an idle loop does not spin. */
		bool busy = pp_exec_active(L.exec) || pp_http_multi_pending(L.multi) > 0;
		if (!busy) {
			inflight_settle(&L); /* not left unknown while we wait */
			/* The submissions of intents it settled go now, not after
			 * an idle wait. */
			busy = pp_exec_active(L.exec) || pp_http_multi_pending(L.multi) > 0;
		}
		/* After the settle, which may have opened a new connection. */
		int wake_fd = L.store->ops->wake_fd ? L.store->ops->wake_fd(L.store) : -1;
		if (busy) {
			pp_exec_poll(L.exec, L.nsubmitting ? 20 : 50);
			/* The store answered. A claim's answer comes on a session
			 * nothing else reads, so only its descriptor says it came. */
			if (pp_http_multi_watch_ready(L.multi)) {
				inflight_collect(&L);
				loop_claim_take(&L, false);
			}
		} else if (L.claim_out) {
			/* Nothing else to drive: the claim's answer is next, waited
			 * for a turn at a time, so a signal or a reload is not held
			 * up by a claim that waits on the server. The turn ends
			 * first, as before any wait. */
			commit_turn(&turn);
			pp_http_multi_wait_watched(L.multi, 50);
			loop_claim_take(&L, false);
		} else if (!commit_turn(&turn))
			poll(&(struct pollfd){.fd = wake_fd, .events = POLLIN}, wake_fd >= 0, 50);
		if (turn.rc) {
			rc = turn.rc;
			*err = turn.err;
			break;
		}
		if (wake_fd >= 0 && L.store->ops->wake_drain(L.store) > 0)
			last_claim = 0;
	}
out:
	/* Ops still under way (a cleanup when SIGTERM came) go first: they
	 * point into their runs, which releasing the leases frees. Requests
	 * of the last turn that were not sent are dropped with them (so its
	 * writes may commit after), and those runs are recovered from what
	 * they recorded. A source's calls stay on the handle, for its close. */
	for (size_t i = 0; i < L.nsources; i++)
		L.sources[i].src->wake = NULL;
	pp_exec_free(L.exec);
	L.exec = NULL;
	if (L.store)
		inflight_settle(&L); /* submissions not sent stay recorded as intents */
	if (L.store)
		lease_release_all(&L);
	free(L.queued);
	free(L.orphans);
	/* The last turn and the releases commit together. The sources then
	 * deliver what they hold (their close) only if that commit did; their
	 * writes, if any, are their own transactions. */
	if (turn.on) {
		struct pp_error terr = {0};
		int trc = L.store->ops->turn_end(L.store, &terr);
		turn.on = false;
		turn.rc = trc;
		if (trc && !rc) {
			rc = trc;
			*err = terr;
		}
	}
	pp_log_release();
	pp_metrics_stop(L.metrics); /* first: no page request runs after it */
	pp_ui_free(L.ui);
	/* What the sources deliver as they close waits without the loop: its
	 * leases are released and its driver gone. */
	for (size_t i = 0; i < L.nsources; i++) {
		L.sources[i].src->while_waiting = NULL;
		L.sources[i].src->ops->close(L.sources[i].src);
	}
	free(L.sources);
	pp_http_multi_free(L.multi);
	pp_sweep_free(sweep); /* after the ops it started are gone */
	pp_store_close(L.store);
	loop_pools_free(L.pools);
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
