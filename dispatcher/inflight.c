/* The life of a run in flight: every run the loop holds is a `struct
 * inflight` moving through phases; each phase is one provider op driven by
 * the op driver. The store is written before and after every remote action,
 * fenced by the lease, so a crash at any point leaves a state that the next
 * claimer can reconcile: SUBMITTING runs are resubmitted with the same
 * idempotency key (the provider adopts what exists), SUBMITTED/RUNNING runs
 * are watched. */
#include "dispatcher/loop_impl.h"
#include "store/deploy.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher/attempts.h"
#include "lib/intern.h"
#include "lib/log.h"
#include "lib/time.h"

/* A parked job text: the runs of a pool render the same text but for a
 * few values (run id, name, labels), so a run keeps only what lies between
 * the start and the end it shares with the pool's reference text. */
struct parked_job {
	const char *ref;   /* interned (counted), or NULL: middle is the whole text */
	size_t head, tail; /* bytes equal to ref's first and last ones */
	char middle[];
};

static void parked_free(struct parked_job *pj)
{
	if (!pj)
		return;
	pp_intern_drop(pj->ref);
	free(pj);
}

static bool words_equal(const char *a, const char *b)
{
	uint64_t x, y;
	memcpy(&x, a, 8);
	memcpy(&y, b, 8);
	return x == y;
}

/* Park text against the pool's reference; a text sharing less than half
 * of itself with it (another deployment's job) becomes the reference.
 * NULL when out of memory. */
static struct parked_job *park_text(struct pool_rt *p, const char *text)
{
	size_t n = strlen(text), head = 0, tail = 0;
	const char *ref = p ? p->job_ref : NULL;
	if (ref) {
		size_t rn = strlen(ref), most = n < rn ? n : rn;
		/* Eight bytes a step while they match (the text is mostly the
		 * reference's), then byte by byte to the first difference. */
		while (head + 8 <= most && words_equal(text + head, ref + head))
			head += 8;
		while (head < most && text[head] == ref[head])
			head++;
		while (tail + 8 <= most - head &&
		       words_equal(text + n - 8 - tail, ref + rn - 8 - tail))
			tail += 8;
		while (tail < most - head && text[n - 1 - tail] == ref[rn - 1 - tail])
			tail++;
	}
	if (p && (!ref || head + tail < n / 2)) {
		const char *fresh = pp_intern(text);
		if (fresh) {
			pp_intern_drop(p->job_ref);
			p->job_ref = ref = fresh;
			head = n;
			tail = 0;
		}
	}
	if (ref && head + tail < n / 2) {
		ref = NULL; /* interning failed: keep the whole text */
		head = tail = 0;
	}
	size_t mid = n - head - tail;
	struct parked_job *pj = malloc(offsetof(struct parked_job, middle) + mid + 1);
	if (!pj)
		return NULL;
	pj->ref = ref ? pp_intern_hold(ref) : NULL;
	pj->head = head;
	pj->tail = tail;
	memcpy(pj->middle, text + head, mid);
	pj->middle[mid] = '\0';
	return pj;
}

/* The parked text whole again (*n bytes), to free(); NULL when out of memory. */
static char *unpark_text(const struct parked_job *pj, size_t *n)
{
	size_t mid = strlen(pj->middle);
	*n = pj->head + mid + pj->tail;
	char *text = malloc(*n + 1);
	if (!text)
		return NULL;
	if (pj->ref) {
		memcpy(text, pj->ref, pj->head);
		memcpy(text + pj->head + mid, pj->ref + strlen(pj->ref) - pj->tail, pj->tail);
	}
	memcpy(text + pj->head, pj->middle, mid);
	text[*n] = '\0';
	return text;
}

void inflight_free(struct pp_loop *L, struct inflight *a)
{
	/* An op under way points into the run (its io, or its tail's): it
	 * goes first, never to call back into freed memory. A run left to
	 * recovery or to its new owner while its status poll was out is one
	 * (a queued write that failed at the settle). */
	if (a->batch)
		inflight_batch_leave(L, a);
	if (a->busy && L->exec)
		pp_exec_abandon(L->exec, a);
	if (a->prev)
		a->prev->next = a->next;
	else
		L->runs = a->next;
	if (a->next)
		a->next->prev = a->prev;
	L->ninflight--;
	L->nheld -= a->held;
	inflight_unqueue(L, a);
	if (a->pool) {
		a->pool->in_flight -= !a->held;
		a->pool->refs--;
	}
	inflight_tail_free(a);
	if (a->pool && a->pool->p->prov->release && a->io.state)
		a->pool->p->prov->release(a->io.state);
	free(a->io.state);
	pp_run_io_free_strings(&a->io);
	pp_http_req_free(&a->io.req);
	pp_json_free(a->job);
	parked_free(a->parked);
	free(a->final_msg);
	pp_run_rec_free(&a->rec);
	free(a);
}

/* The provider's outcome message, "" when it gave none. */
static const char *io_message(const struct inflight *a)
{
	return a->io.message ? a->io.message : "";
}

/* The infra id a submission returned ("" when it named none). */
static const char *io_infra_id(const struct inflight *a)
{
	return a->io.infra_id ? a->io.infra_id : "";
}

char *inflight_msg(struct inflight *a, size_t *cap)
{
	if (!a->final_msg)
		a->final_msg = calloc(1, INFLIGHT_MSG_MAX);
	*cap = a->final_msg ? INFLIGHT_MSG_MAX : sizeof(a->final_short);
	return a->final_msg ? a->final_msg : a->final_short;
}

void inflight_msg_set(struct inflight *a, const char *fmt, ...)
{
	size_t cap;
	char *m = inflight_msg(a, &cap);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, cap, fmt, ap);
	va_end(ap);
}

const char *inflight_msg_text(const struct inflight *a)
{
	return a->final_msg ? a->final_msg : a->final_short;
}

int inflight_job(struct inflight *a, struct pp_error *err)
{
	if (!a->job && a->parked) {
		size_t n;
		char *text = unpark_text(a->parked, &n);
		if (!text)
			return pp_fail(err, PP_ENOMEM, "out of memory");
		int rc = pp_json_parse(text, n, NULL, &a->job, err);
		free(text);
		if (rc)
			return rc;
		parked_free(a->parked);
		a->parked = NULL;
	}
	a->io.job = a->job;
	return 0;
}

/* Between polls a watched run keeps only what its next op needs: the job
 * as text, and none of the inputs it was rendered from. */
static void park_job(struct inflight *a)
{
	free(a->rec.job_variables);
	free(a->rec.parameters);
	a->rec.job_variables = a->rec.parameters = NULL;
	if (!a->job)
		return;
	char *text = pp_json_to_string(a->job, PP_JSON_COMPACT);
	if (!text)
		return; /* out of memory: keep the tree */
	struct parked_job *pj = park_text(a->pool, text);
	free(text);
	if (!pj)
		return;
	pp_json_free(a->job);
	a->job = NULL;
	a->io.job = NULL;
	a->parked = pj;
}

static void report_source(struct pp_loop *L, struct inflight *a, enum pp_store_state st,
			  const char *msg)
{
	for (size_t i = 0; i < L->nsources; i++) {
		struct pp_source *s = L->sources[i].src;
		if (!a->rec.source || strcmp(s->ops->name, a->rec.source))
			continue;
		struct pp_error err = {0};
		if (s->ops->report(s, &a->rec, st, a->rec.infra_id, msg, &err))
			pp_warn("run %s: reporting %s to %s failed: %s", a->rec.id,
				pp_store_state_name(st), s->ops->name, err.msg);
	}
}

void inflight_write_failed(struct pp_loop *L, struct inflight *a, int rc,
			   const struct pp_error *err)
{
	enum pp_store_state stored = inflight_stored_state(L, a);
	if (a->after_settle == AFTER_SUBMIT) {
		L->nsubmitting--;
		a->pool->submitting--;
	}
	if (rc == PP_ECONFLICT) {
		pp_warn("run %s: %s; leaving it to its new owner", a->rec.id, err->msg);
		L->sum->lost_lease++;
		inflight_free(L, a);
		return;
	}
	pp_metrics_count(L->metrics, "store_errors", 1);
	/* The store is the record: without it we must not go on acting. */
	pp_error("run %s: store write failed: %s; leaving it for recovery", a->rec.id, err->msg);
	inflight_orphan(L, a->rec.id, a->rec.fence, stored, -1, NULL);
	inflight_free(L, a);
}

void inflight_orphan(struct pp_loop *L, const char *id, int64_t fence, enum pp_store_state state,
		     int attempt, const char *event)
{
	if (L->norphans == L->orphans_cap) {
		int cap = L->orphans_cap ? 2 * L->orphans_cap : 64;
		struct run_to_release *more = realloc(L->orphans, (size_t)cap * sizeof(*more));
		if (!more) {
			pp_error("run %s: out of memory recording it for release: it stays leased "
				 "to this dispatcher until it stops",
				 id);
			return;
		}
		L->orphans = more;
		L->orphans_cap = cap;
	}
	struct run_to_release *o = &L->orphans[L->norphans++];
	snprintf(o->id, sizeof(o->id), "%s", id);
	o->fence = fence;
	o->state = state;
	o->attempt = attempt;
	o->event = event;
}

void inflight_write_applied(struct inflight *a, const struct pp_run_update *u)
{
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
}

bool inflight_store_write(struct pp_loop *L, struct inflight *a, const struct pp_run_update *u)
{
	struct pp_error err = {0};
	struct pp_run_update w = *u;
	w.row = a->rec.row;
	int rc = L->store->ops->update(L->store, a->rec.id, a->rec.fence, &w, &err);
	if (rc) {
		inflight_write_failed(L, a, rc, &err);
		return false;
	}
	inflight_write_applied(a, u);
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

static void finish(struct pp_loop *L, struct inflight *a, enum pp_store_state st, const char *msg)
{
	struct pp_run_update u = {.state = st,
				  .attempt = -1,
				  .next_attempt_ms = -1,
				  .error = st == PP_ST_SUCCEEDED ? "" : msg,
				  .release_lease = true,
				  .event = msg && *msg ? msg : pp_store_state_name(st)};
	pp_info("run %s (%s): %s%s%s", a->rec.id, a->pool ? a->pool->p->name : a->rec.pool,
		pp_store_state_name(st), msg && *msg ? ": " : "", msg ? msg : "");
	/* Queued: on PostgreSQL a run's end was a round trip of its own, the
	 * loop waiting on it (issue 23). */
	if (!inflight_store_queue(L, a, &u))
		return;
	if (!a->queued_writes) {
		inflight_end(L, a, msg);
		return;
	}
	a->after_settle = AFTER_END;
	inflight_poll_at(a, pp_mono_ms()); /* the next turn settles it */
}

void inflight_end(struct pp_loop *L, struct inflight *a, const char *msg)
{
	/* A write queued only where no run source listens (inflight_store_queue),
	 * so a run ending at a settle has nobody to report to. */
	count_terminal(L, a->rec.state);
	report_source(L, a, a->rec.state, msg);
	inflight_free(L, a);
}

static void idem_key_for(const struct pp_run_rec *r, char *out, size_t n)
{
	/* One key per start attempt: every submission retry and every
	 * recovery after a crash reuses it, so the provider sees one
	 * submission however often it is sent; a start retry takes the next
	 * (start_failed). */
	pp_attempt_key(r->id, 1, out, n);
}

/* Done for this once pass: keep the lease (so the pass does not claim the
 * run again) and free its capacity; the pass's end releases it. */
static void hold(struct pp_loop *L, struct inflight *a)
{
	a->held = true;
	L->nheld++;
	a->pool->in_flight--;
}

static void begin_watch(struct pp_loop *L, struct inflight *a, long delay_ms)
{
	a->phase = PH_WATCH;
	inflight_poll_at(a, pp_mono_ms() + delay_ms);
	if (!a->watch_since)
		a->watch_since = pp_mono_ms();
	park_job(a);
}

static void after_terminal(struct pp_loop *L, struct inflight *a, enum pp_store_state st,
			   const char *msg);

static void on_submit(struct pp_loop *L, struct inflight *a, int rc, const struct pp_error *err)
{
	L->nsubmitting--;
	a->pool->submitting--;
	if (rc == 0) {
		L->sum->submitted++;
		pp_metrics_count(L->metrics, "submissions", 1);
		pp_metrics_observe_submission(
			L->metrics, (double)(pp_wall_ms() - a->rec.scheduled_ms) / 1000.0);
		struct pp_run_update u = {.state = PP_ST_SUBMITTED,
					  .infra_id = a->io.infra_id,
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  .error = "",
					  .event = "submitted"};
		char ev[640];
		snprintf(ev, sizeof(ev), PP_EV_SUBMITTED "%s (attempt %d)", io_infra_id(a),
			 a->io.attempt);
		u.event = ev;
		pp_info("run %s (%s): submitted as %s", a->rec.id, a->pool->p->name,
			io_infra_id(a));
		/* Queued: the run is only watched (or held) until the next
		 * settle, which drops it if the write failed. A cancel due
		 * now is sent at once, so it waits for its write. */
		if (!(a->cancel_wanted ? inflight_store_write(L, a, &u)
				       : inflight_store_queue(L, a, &u)))
			return;
		report_source(L, a, PP_ST_SUBMITTED, NULL);
		if (a->hold_when_settled) {
			hold(L, a);
			return;
		}
		if (a->cancel_wanted) {
			inflight_op(L, a, PP_OP_CANCEL);
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
			/* A step may have created something (a job without its
			 * execution, a group that failed to provision). */
			after_terminal(L, a, PP_ST_DEAD, m);
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
		if (inflight_store_write(L, a, &u))
			inflight_free(L, a);
		return;
	}
	char m[PP_ERRMSG_MAX + 32];
	snprintf(m, sizeof(m), "submission rejected: %s", msg);
	after_terminal(L, a, PP_ST_FAILED, m);
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

static void after_terminal(struct pp_loop *L, struct inflight *a, enum pp_store_state st,
			   const char *msg)
{
	a->final = st;
	/* The cancel path passes the message itself. */
	if (msg != inflight_msg_text(a))
		inflight_msg_set(a, "%s", msg ? msg : "");
	if (!inflight_tail_logs(L, a))
		inflight_after_tail(L, a);
}

void inflight_after_tail(struct pp_loop *L, struct inflight *a)
{
	enum pp_store_state st = a->final;
	if (a->pool->p->prov->cleanup) {
		char ev[INFLIGHT_MSG_MAX + 32];
		snprintf(ev, sizeof(ev), FINISHING_EVENT "%s: %s", pp_store_state_name(st),
			 inflight_msg_text(a));
		struct pp_run_update u = {
			.state = a->rec.state, .attempt = -1, .next_attempt_ms = -1, .event = ev};
		if (!inflight_store_queue(L, a, &u))
			return;
		if (a->queued_writes) {
			a->after_settle = AFTER_CLEANUP;   /* inflight_settle starts it */
			inflight_poll_at(a, pp_mono_ms()); /* in the next turn */
		} else {
			inflight_op(L, a, PP_OP_CLEANUP);
		}
		return;
	}
	finish(L, a, st, inflight_msg_text(a));
}

/* A run recovered after a crash whose outcome was already recorded: true,
 * with a->final and a->final_msg set from the last "finishing" event. */
static bool recorded_outcome(struct pp_loop *L, struct inflight *a)
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
			inflight_msg_set(a, "%s", colon + 2);
			found = true;
		}
		break;
	}
	pp_run_rec_free(&rec);
	pp_run_events_free(ev, nev);
	return found;
}

/* The event that records when the cloud first reported the job running:
 * a dispatcher that takes the run over measures max_runtime from its time. */
#define RUNNING_EVENT "running"

/* A run past its max_runtime is cancelled in the cloud and ends FAILED
 * with the reason. The store keeps its state until the cancel is done: a
 * dispatcher taking it over meanwhile finds it over the limit again. */
static bool over_max_runtime(struct pp_loop *L, struct inflight *a)
{
	if (a->max_runtime_ms <= 0 || !a->running_since || a->cancel_wanted)
		return false;
	int64_t ran = pp_mono_ms() - a->running_since;
	if (ran <= a->max_runtime_ms)
		return false;
	char lim[PP_DURATION_LEN], took[PP_DURATION_LEN], ev[160];
	pp_duration_format((double)a->max_runtime_ms / 1000, lim);
	pp_duration_format((double)(ran / 1000), took);
	inflight_msg_set(a, "max_runtime %s exceeded (ran %s)", lim, took);
	snprintf(ev, sizeof(ev), "max_runtime %s exceeded; cancelling remote job", lim);
	pp_info("run %s (%s): %s", a->rec.id, a->pool->p->name, ev);
	struct pp_run_update u = {
		.state = a->rec.state, .attempt = -1, .next_attempt_ms = -1, .event = ev};
	if (!inflight_store_write(L, a, &u))
		return true;
	a->final = PP_ST_FAILED;
	pp_metrics_count(L->metrics, "max_runtime_cancels", 1);
	inflight_op(L, a, PP_OP_CANCEL);
	return true;
}

/* The job ended without having run (the provider classified why). When
 * the pool's rules retry that class and attempts are left, the run goes
 * back to SUBMITTING under the next attempt's key (a new remote object,
 * its own name), due after a full-jitter delay; the failed attempt's
 * object is cleaned up first. The intent is written before the cleanup: a
 * crash in between starts the next attempt and leaves the old object, which
 * cannot run again, to the sweeper. Otherwise the run is CRASHED. */
static void start_failed(struct pp_loop *L, struct inflight *a)
{
	const struct pp_pool *p = a->pool->p;
	enum pp_start_failure f = a->io.start_failure;
	int n = a->io.attempt;
	const char *cls = pp_start_failure_name(f);
	const char *why = *io_message(a) ? io_message(a) : pp_run_state_name(a->io.state_out);
	if (!a->cancel_wanted && pp_pool_start_retry(p, f, n)) {
		long wait = pp_backoff_ms(n - 1, p->retry_base_ms, p->retry_cap_ms, 0);
		char key[PP_ID_LEN + 16], ev[PP_RUN_MESSAGE_MAX + 1 + 128];
		pp_attempt_key(a->rec.id, n + 1, key, sizeof(key));
		snprintf(ev, sizeof(ev),
			 PP_EV_ATTEMPT "%d failed to start (%s): %s" PP_EV_RETRYING "%d in %ld ms",
			 n, cls, why, n + 1, wait);
		pp_warn("run %s (%s): %s", a->rec.id, p->name, ev);
		struct pp_run_update u = {.state = PP_ST_SUBMITTING,
					  .idem_key = key,
					  .attempt = 0,
					  .next_attempt_ms = pp_wall_ms() + wait,
					  .error = why,
					  .event = ev};
		if (!inflight_store_write(L, a, &u))
			return;
		a->start_retry = true;
		/* once exits 75 for it, as for a submission waiting to be retried */
		L->sum->retrying++;
		pp_metrics_count(L->metrics, "start_retries", 1);
		if (p->prov->cleanup) {
			inflight_op(L, a, PP_OP_CLEANUP);
			return;
		}
		struct pp_run_update rel = {.state = PP_ST_SUBMITTING,
					    .attempt = -1,
					    .next_attempt_ms = -1,
					    .release_lease = true};
		if (inflight_store_write(L, a, &rel))
			inflight_free(L, a);
		return;
	}
	char m[PP_RUN_MESSAGE_MAX + 1 + 96];
	if (n > 1)
		snprintf(m, sizeof(m), "failed to start (%s) on attempt %d: %s", cls, n, why);
	else
		snprintf(m, sizeof(m), "failed to start (%s): %s", cls, why);
	after_terminal(L, a, PP_ST_CRASHED, m);
}

static void on_status(struct pp_loop *L, struct inflight *a, int rc, const struct pp_error *err)
{
	long interval = (long)(L->cfg->dispatcher.status_interval * 1000);
	if (rc) {
		if (rc == PP_ENOTFOUND) {
			char m[PP_ERRMSG_MAX + 32];
			snprintf(m, sizeof(m), "remote job disappeared: %s", err ? err->msg : "");
			/* Part of it may remain (a Cloud Run job whose execution is
			 * gone), or the answer was wrong: clean up either way. */
			after_terminal(L, a, PP_ST_CRASHED, m);
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
	if (rs == PP_RUN_RUNNING && !a->running_since)
		a->running_since = pp_mono_ms();
	if (!pp_run_state_terminal(rs) && over_max_runtime(L, a))
		return;
	if (a->hold_when_settled && !pp_run_state_terminal(rs)) {
		bool now_running = rs == PP_RUN_RUNNING && a->rec.state != PP_ST_RUNNING;
		struct pp_run_update u = {.state = rs == PP_RUN_RUNNING ? PP_ST_RUNNING
									: a->rec.state,
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  /* when it started, for max_runtime in a later pass */
					  .event = now_running ? RUNNING_EVENT : NULL};
		if (inflight_store_write(L, a, &u))
			hold(L, a);
		return;
	}
	if (pp_run_state_terminal(rs) && a->io.start_failure != PP_START_OK) {
		start_failed(L, a);
		return;
	}
	if (pp_run_state_terminal(rs)) {
		char m[700];
		if (a->io.exit_code >= 0)
			snprintf(m, sizeof(m), "%s (exit code %d)%s%s", pp_run_state_name(rs),
				 a->io.exit_code, *io_message(a) ? ": " : "", io_message(a));
		else
			snprintf(m, sizeof(m), "%s%s%s", pp_run_state_name(rs),
				 *io_message(a) ? ": " : "", io_message(a));
		after_terminal(L, a, final_state(rs), m);
		return;
	}
	if (rs == PP_RUN_RUNNING && a->rec.state != PP_ST_RUNNING) {
		struct pp_run_update u = {.state = PP_ST_RUNNING,
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  .event = RUNNING_EVENT};
		/* Queued, as the submission's: the run's next poll comes after
		 * the settle, which drops it if the write failed. */
		if (!inflight_store_queue(L, a, &u))
			return;
		report_source(L, a, PP_ST_RUNNING, NULL);
	}
	if (rs != PP_RUN_RUNNING && L->cfg->dispatcher.start_timeout > 0 &&
	    pp_mono_ms() - a->watch_since > (int64_t)(L->cfg->dispatcher.start_timeout * 1000) &&
	    a->rec.state != PP_ST_RUNNING) {
		inflight_msg_set(a, "did not start within %.0f s (%s)%s%s",
				 L->cfg->dispatcher.start_timeout, pp_run_state_name(rs),
				 *io_message(a) ? ": " : "", io_message(a));
		a->final = PP_ST_CRASHED;
		inflight_op(L, a, PP_OP_CANCEL);
		return;
	}
	begin_watch(L, a, a->io.poll_after_ms > 0 ? a->io.poll_after_ms : interval);
}

static void on_cancel(struct pp_loop *L, struct inflight *a, int rc, const struct pp_error *err)
{
	if (rc && rc != PP_ENOTFOUND) {
		pp_warn("run %s: cancel failed: %s; will retry", a->rec.id, err ? err->msg : "");
		a->phase = PH_CANCEL;
		inflight_poll_at(a, pp_mono_ms() + 2000);
		return;
	}
	/* A start timeout (CRASHED) or max_runtime (FAILED) cancelled it;
	 * anything else is a cancel someone asked for. */
	enum pp_store_state st =
		a->final == PP_ST_CRASHED || a->final == PP_ST_FAILED ? a->final : PP_ST_CANCELLED;
	if (st == PP_ST_CANCELLED)
		inflight_msg_set(a, "cancelled on request");
	after_terminal(L, a, st, inflight_msg_text(a));
}

static void on_cleanup(struct pp_loop *L, struct inflight *a, int rc, const struct pp_error *err)
{
	if (a->start_retry) {
		/* The next attempt is recorded: hand the run back to be claimed
		 * when its delay is over. */
		if (rc && rc != PP_ENOTFOUND)
			pp_warn("run %s: cleanup of the failed attempt failed, leaving %s to the "
				"sweeper: %s",
				a->rec.id, a->io.infra_id ? a->io.infra_id : "what it created",
				err ? err->msg : pp_strerror(rc));
		struct pp_run_update u = {.state = PP_ST_SUBMITTING,
					  .attempt = -1,
					  .next_attempt_ms = -1,
					  .release_lease = true};
		if (inflight_store_write(L, a, &u))
			inflight_free(L, a);
		return;
	}
	if (rc && rc != PP_ENOTFOUND) {
		/* The job's outcome is known; record it, and say what was left:
		 * the sweeper (dispatcher/sweep.c) removes it later. */
		pp_warn("run %s: cleanup failed, leaving %s to the sweeper: %s", a->rec.id,
			a->io.infra_id ? a->io.infra_id : "what it created",
			err ? err->msg : pp_strerror(rc));
		char m[INFLIGHT_MSG_MAX + PP_ERRMSG_MAX];
		snprintf(m, sizeof(m), "%s (cleanup failed: %s)", inflight_msg_text(a),
			 err ? err->msg : "");
		finish(L, a, a->final, m);
		return;
	}
	finish(L, a, a->final, inflight_msg_text(a));
}

void inflight_op_done(void *ud, int rc, const struct pp_error *err)
{
	struct inflight *a = ud;
	struct pp_loop *L = a->loop;
	a->busy = false;
	switch (a->phase) {
	case PH_SUBMIT: on_submit(L, a, rc, err); break;
	case PH_WATCH: on_status(L, a, rc, err); break;
	case PH_CANCEL: on_cancel(L, a, rc, err); break;
	case PH_CLEANUP: on_cleanup(L, a, rc, err); break;
	}
}

void inflight_op(struct pp_loop *L, struct inflight *a, enum pp_op op)
{
	struct pp_error err = {0};
	if (a->recheck_lease) {
		if (!lease_still_ours(L, a, &err)) {
			if (err.code == PP_ECONFLICT) {
				pp_warn("%s; leaving it to its new owner", err.msg);
				L->sum->lost_lease++;
				inflight_free(L, a);
			} else {
				/* The store cannot say: try again later. */
				inflight_op_done(a, PP_ETRANSIENT, &err);
			}
			return;
		}
		a->recheck_lease = false;
	}
	if (inflight_job(a, &err)) {
		/* Only out of memory: the poll is tried again later. */
		inflight_op_done(a, PP_ETRANSIENT, &err);
		return;
	}
	a->phase = op == PP_OP_SUBMIT	? PH_SUBMIT
		   : op == PP_OP_STATUS ? PH_WATCH
		   : op == PP_OP_CANCEL ? PH_CANCEL
					: PH_CLEANUP;
	a->busy = true;
	a->io.resp = NULL;
	a->io.start_failure = PP_START_OK;
	/* Cleanup has its own, shorter budget: the outcome is known, and what
	 * a cleanup cannot remove in that time is left to the sweeper. */
	struct pp_exec_policy pol = L->policy;
	if (op == PP_OP_CLEANUP && (!pol.budget_ms || pol.budget_ms > PP_CLEANUP_BUDGET_MS))
		pol.budget_ms = PP_CLEANUP_BUDGET_MS;
	int rc = pp_exec_start(L->exec, a->pool->p->prov, op, &a->io, &pol, inflight_op_done, a,
			       &err);
	if (rc) {
		a->busy = false;
		inflight_op_done(a, rc, &err);
	}
}

/* Render the job and prepare the provider's per-run state. */
static int prepare_run(struct pp_loop *L, struct inflight *a, struct pp_error *err)
{
	struct pool_rt *p = a->pool;
	struct pp_json *run_vars = NULL, *dep_vars = NULL;
	/* The source's, borrowed until it is called again: rendered below,
	 * before any other call of it. */
	const struct pp_json *src_tmpl = NULL;
	uint64_t tmpl_version = 0;
	int rc = 0;
	for (size_t i = 0; i < L->nsources && !rc; i++) {
		struct pp_source *s = L->sources[i].src;
		if (a->rec.source && !strcmp(s->ops->name, a->rec.source) && s->ops->job_inputs)
			rc = s->ops->job_inputs(s, &a->rec, &src_tmpl, &tmpl_version, &dep_vars,
						err);
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
		/* Runs of a pushpool deployment: the job learns its parameters. */
		if (a->rec.source && !strcmp(a->rec.source, PP_DEPLOYMENT_SOURCE)) {
			ctx.run_id = a->rec.id;
			ctx.parameters = a->rec.parameters ? a->rec.parameters : "{}";
		}
		rc = pp_pool_render(p->p, src_tmpl, tmpl_version, dep_vars, run_vars, &ctx, &a->job,
				    err);
	}
	for (size_t i = 0; i < L->nsources && !rc; i++) {
		struct pp_source *s = L->sources[i].src;
		if (a->rec.source && !strcmp(s->ops->name, a->rec.source) && s->ops->resolve_job)
			rc = s->ops->resolve_job(s, &a->rec, a->job, err);
	}
	pp_json_free(run_vars);
	pp_json_free(dep_vars);
	if (rc)
		return rc;
	pp_pool_io_init(p->p, &a->io, a->rec.id, a->rec.name, a->job);
	/* Names and keys derive from the attempt, counted across start retries
	 * and reruns (store reopen continues the count): a retried start and a
	 * rerun are each a new remote object. */
	a->io.attempt = pp_attempt_of(&a->rec);
	a->max_runtime_ms = (int64_t)(a->io.max_runtime_s * 1000);
	a->io.store_id = L->store_id;
	rc = pp_exec_io_prepare(&a->io, p->p->prov, err);
	if (!rc && a->rec.infra_id)
		rc = pp_run_io_set_infra_id(&a->io, err, "%s", a->rec.infra_id);
	return rc;
}

/* When a RUNNING run taken over (after a restart, or by another
 * dispatcher) started: its last "running" event of this attempt, moved
 * from the wall clock onto the monotonic one. Without one (written before
 * it was recorded), now: the limit is never enforced early. */
static int64_t stored_running_since(struct pp_loop *L, struct inflight *a)
{
	struct pp_run_rec rec;
	struct pp_run_event *ev = NULL;
	int nev = 0;
	struct pp_error err = {0};
	int64_t now = pp_mono_ms(), since = now;
	if (L->store->ops->get(L->store, a->rec.id, &rec, &ev, &nev, &err)) {
		pp_warn("run %s: reading its events failed, max_runtime counts from now: %s",
			a->rec.id, err.msg);
		return now;
	}
	for (int i = nev - 1; i >= 0; i--) {
		const char *m = ev[i].message;
		if (!m)
			continue;
		if (!strncmp(m, PP_EV_SUBMITTED, strlen(PP_EV_SUBMITTED)))
			break;
		if (!strcmp(m, RUNNING_EVENT)) {
			int64_t ago = pp_wall_ms() - ev[i].ts_ms;
			since = now - (ago > 0 ? ago : 0);
			break;
		}
	}
	pp_run_rec_free(&rec);
	pp_run_events_free(ev, nev);
	return since;
}

void inflight_unsent_state(const struct pp_run_rec *r, struct pp_run_update *u)
{
	bool intent = r->intent_claimed;
	u->state = intent ? PP_ST_SCHEDULED : r->state;
	u->attempt = intent ? r->attempt - 1 : -1;
	u->event = intent ? INTENT_WITHDRAWN_EVENT : NULL;
}

/* Send run a's try once its intent stands (written, or queued to be). */
static void submit(struct pp_loop *L, struct inflight *a)
{
	a->io.idem_key = a->rec.idem_key;
	a->hold_when_settled = L->opts->once && !L->opts->wait;
	L->nsubmitting++;
	a->pool->submitting++;
	if (a->queued_writes)
		a->after_settle = AFTER_SUBMIT; /* inflight_settle sends it */
	else
		inflight_op(L, a, PP_OP_SUBMIT);
}

void inflight_start(struct pp_loop *L, struct pp_run_rec *rec)
{
	struct inflight *a = calloc(1, sizeof(*a));
	if (!a) {
		pp_run_rec_free(rec);
		return;
	}
	a->rec = *rec;
	memset(rec, 0, sizeof(*rec));
	a->loop = L;
	a->pool = loop_pool_find(L, a->rec.pool);
	a->next = L->runs;
	if (L->runs)
		L->runs->prev = a;
	L->runs = a;
	L->ninflight++;
	L->sum->claimed++;
	if (a->rec.state != PP_ST_SCHEDULED && !a->rec.intent_claimed)
		pp_metrics_count(L->metrics, "adopted", 1);
	if (!a->pool) {
		char m[160];
		snprintf(m, sizeof(m), "pool \"%s\" is not configured", a->rec.pool);
		finish(L, a, PP_ST_FAILED, m);
		return;
	}
	a->pool->in_flight++;
	a->pool->refs++;
	/* Nothing of this attempt exists yet: a new run (its intent perhaps
	 * taken by the claim), or a start retry (SUBMITTING with no try of its
	 * attempt) whose failed attempt is cleaned up. */
	bool unsubmitted = a->rec.state == PP_ST_SCHEDULED || a->rec.intent_claimed ||
			   (a->rec.state == PP_ST_SUBMITTING && a->rec.attempt == 0);
	if (a->rec.cancel_requested && unsubmitted) {
		finish(L, a, PP_ST_CANCELLED, "cancelled before submission");
		return;
	}
	struct pp_error err = {0};
	int rc = prepare_run(L, a, &err);
	if (rc && pp_err_retryable(rc)) {
		/* The run's source (e.g. the Prefect API) is unreachable: try
		 * again later instead of failing a run that may well be fine. */
		pp_warn("run %s: inputs unavailable, retrying later: %s", a->rec.id, err.msg);
		struct pp_run_update u = {.next_attempt_ms =
						  pp_wall_ms() +
						  pp_backoff_ms(1, 1000, 30000, err.retry_after_ms),
					  .release_lease = true};
		inflight_unsent_state(&a->rec, &u);
		if (inflight_store_write(L, a, &u))
			inflight_free(L, a);
		return;
	}
	if (rc) {
		/* The template or variables are wrong: this run cannot succeed,
		 * and it must not hold up the others. */
		finish(L, a, PP_ST_FAILED, err.msg);
		return;
	}
	a->io.idem_key = NULL;
	switch (a->rec.state) {
	case PP_ST_SCHEDULED:
	case PP_ST_SUBMITTING: {
		if (a->rec.intent_claimed) {
			submit(L, a);
			return;
		}
		/* A failed submission whose cleanup a crash interrupted: finish
		 * the cleanup instead of submitting again. */
		if (a->rec.state == PP_ST_SUBMITTING && a->rec.attempt > 0 &&
		    recorded_outcome(L, a)) {
			inflight_op(L, a, PP_OP_CLEANUP);
			return;
		}
		char key[PP_ID_LEN + 8];
		if (!a->rec.idem_key)
			idem_key_for(&a->rec, key, sizeof(key));
		int attempt = a->rec.attempt + 1;
		char ev[128];
		snprintf(ev, sizeof(ev), PP_INTENT_EVENT "%d)", attempt);
		/* Intent first: once this commits, any later claimer resubmits
		 * with the same key instead of starting over. */
		struct pp_run_update u = {.state = PP_ST_SUBMITTING,
					  .idem_key = a->rec.idem_key ? NULL : key,
					  .attempt = attempt,
					  .next_attempt_ms = -1,
					  .event = ev};
		if (!inflight_store_queue(L, a, &u))
			return;
		submit(L, a);
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
			inflight_op(L, a, PP_OP_CLEANUP);
			return;
		}
		if (a->rec.state == PP_ST_CANCELLING || a->rec.cancel_requested) {
			inflight_op(L, a, PP_OP_CANCEL);
			return;
		}
		if (a->rec.state == PP_ST_RUNNING && a->max_runtime_ms > 0)
			a->running_since = stored_running_since(L, a);
		a->hold_when_settled = L->opts->once && !L->opts->wait;
		begin_watch(L, a, 0);
		return;
	default: finish(L, a, a->rec.state, a->rec.last_error); return;
	}
}

void inflight_check_cancels(struct pp_loop *L)
{
	char(*ids)[PP_ID_LEN] = NULL;
	int n = 0;
	struct pp_error err = {0};
	if (L->store->ops->cancel_requests(L->store, L->owner, &ids, &n, &err)) {
		pp_warn("reading cancel requests failed: %s", err.msg);
		return;
	}
	for (int i = 0; i < n; i++) {
		if (loop_ahead_cancel(L, ids[i]))
			continue;
		for (struct inflight *a = L->runs; a; a = a->next) {
			if (strcmp(a->rec.id, ids[i]) || a->cancel_wanted)
				continue;
			a->cancel_wanted = true;
			if (a->phase == PH_WATCH && !a->busy && !a->held && !a->after_settle) {
				struct pp_run_update u = {.state = PP_ST_CANCELLING,
							  .attempt = -1,
							  .next_attempt_ms = -1,
							  .event = "cancelling remote job"};
				if (inflight_store_write(L, a, &u))
					inflight_op(L, a, PP_OP_CANCEL);
			}
			break;
		}
	}
	free(ids);
}

void inflight_poll_at(struct inflight *a, int64_t mono)
{
	a->next_mono = mono;
	if (mono < a->loop->next_poll)
		a->loop->next_poll = mono;
}

void inflight_poll_due(struct pp_loop *L)
{
	int64_t now = pp_mono_ms();
	if (now < L->next_poll)
		return;
	/* The walk finds the next time one is due; a run that becomes idle
	 * meanwhile (during the walk too) lowers it through inflight_poll_at. */
	L->next_poll = INT64_MAX;
	int64_t soonest = INT64_MAX;
	struct poll_groups groups = {0};
	struct inflight *next;
	for (struct inflight *a = L->runs; a; a = next) {
		next = a->next;
		if (a->busy || a->held || a->after_settle)
			continue;
		if (a->next_mono > now) {
			if ((a->phase == PH_WATCH || a->phase == PH_CANCEL) &&
			    a->next_mono < soonest)
				soonest = a->next_mono;
			continue;
		}
		if (a->phase == PH_WATCH && !inflight_batch_add(&groups, a))
			inflight_op(L, a, a->cancel_wanted ? PP_OP_CANCEL : PP_OP_STATUS);
		else if (a->phase == PH_CANCEL)
			inflight_op(L, a, PP_OP_CANCEL);
	}
	if (groups.n)
		inflight_batch_send(L, &groups, now);
	if (soonest < L->next_poll)
		L->next_poll = soonest;
}
