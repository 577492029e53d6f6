#include "dispatcher/op_driver.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "lib/clock.h"
#include "lib/http.h"
#include "lib/log.h"

enum op_phase {
	PHASE_CALL,	 /* call the provider op when wake_ms is reached */
	PHASE_SENDING,	 /* request in flight on the multi handle */
	PHASE_RESPONSE,	 /* response arrived; feed it to the op */
	PHASE_ABANDONED, /* dropped by pp_exec_abandon, freed by the next pass */
};

struct exec_op {
	struct pp_exec *x;
	const struct pp_provider *p;
	struct pp_exec_stats *stats; /* p's counters in x */
	enum pp_op op;
	struct pp_run_io *io;
	struct pp_exec_policy pol;
	pp_exec_done_fn done;
	void *ud;

	enum op_phase phase;
	long long wake_ms;
	long long deadline_ms;
	long long sent_ms;
	int tries;			/* sends of the current request */
	bool retrying;			/* next send repeats the previous request */
	bool auth_retried;		/* a 401 already caused one credential refresh */
	bool peer_wait;			/* PP_STEP_WAIT_PEER: woken by another op's answer */
	struct exec_op *next_waiter;	/* in x->waiters while peer_wait */
	struct exec_op *next_abandoned; /* in x->abandoned */

	struct pp_http_resp resp;
	bool have_resp;
	int resp_rc;
	struct pp_error resp_err;
	struct pp_error err;
	struct exec_op *next;
};

struct pp_exec {
	struct pp_http_multi *multi;
	bool multi_shared;   /* the caller's (pp_exec_new_on), shared with others */
	unsigned long wakes; /* pp_exec_wake calls, so poll can return early */
	struct exec_op *ops;
	int active;
	unsigned long finished;	 /* ops completed, so poll can return early */
	struct exec_op *waiters; /* ops with peer_wait: all wake_peers walks */
	/* Ops pp_exec_abandon took out of ops: a pass of run_ready may hold
	 * one as its next, so they are freed only between passes. */
	struct exec_op *abandoned;
	int (*gate)(void *ud); /* before sending or waiting (pp_exec_set_gate) */
	void *gate_ud;
	struct pp_exec_provider_stats stats[PP_EXEC_PROVIDERS_MAX];
	size_t nstats;
};

static const double latency_bounds[11] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
					  0.5,	 1.0,  2.5,   5.0,  10.0};

const char *pp_op_name(enum pp_op op)
{
	switch (op) {
	case PP_OP_SUBMIT: return "submit";
	case PP_OP_STATUS: return "status";
	case PP_OP_CANCEL: return "cancel";
	case PP_OP_CLEANUP: return "cleanup";
	case PP_OP_LIST: return "list";
	case PP_OP_REMOVE: return "remove";
	case PP_OP_LOGS: return "logs";
	}
	return "unknown";
}

static void resolve_policy(const struct pp_exec_policy *in, struct pp_exec_policy *out)
{
	static const struct pp_exec_policy none;
	if (!in)
		in = &none;
	out->max_attempts = in->max_attempts > 0 ? in->max_attempts : 6;
	out->base_ms = in->base_ms > 0 ? in->base_ms : 200;
	out->cap_ms = in->cap_ms > 0 ? in->cap_ms : 20000;
	out->budget_ms = in->budget_ms > 0 ? in->budget_ms : 120000;
	out->call_timeout_ms = in->call_timeout_ms > 0 ? in->call_timeout_ms : 30000;
	out->not_after_ms = in->not_after_ms;
}

struct pp_exec *pp_exec_new(void)
{
	struct pp_exec *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->multi = pp_http_multi_new();
	if (!x->multi) {
		free(x);
		return NULL;
	}
	return x;
}

static void op_free(struct exec_op *o)
{
	if (o->have_resp)
		pp_http_resp_free(&o->resp);
	free(o);
}

static void free_abandoned(struct pp_exec *x)
{
	while (x->abandoned) {
		struct exec_op *o = x->abandoned;
		x->abandoned = o->next_abandoned;
		op_free(o);
	}
}

struct pp_exec *pp_exec_new_on(struct pp_http_multi *m)
{
	struct pp_exec *x = calloc(1, sizeof(*x));
	if (x) {
		x->multi = m;
		x->multi_shared = true;
	}
	return x;
}

void pp_exec_free(struct pp_exec *x)
{
	if (!x)
		return;
	free_abandoned(x);
	/* In-flight transfers reference the ops' buffers: drop them first
	 * (on a shared handle only ours: the others' go on). */
	if (!x->multi_shared)
		pp_http_multi_free(x->multi);
	struct exec_op *o = x->ops;
	while (o) {
		struct exec_op *next = o->next;
		if (o->phase == PHASE_SENDING) {
			if (x->multi_shared)
				pp_http_multi_abandon(x->multi, o);
			pp_http_resp_free(&o->resp);
		}
		pp_http_req_free(&o->io->req);
		op_free(o);
		o = next;
	}
	free(x);
}

int pp_exec_active(const struct pp_exec *x)
{
	return x ? x->active : 0;
}

void pp_exec_stats(const struct pp_exec *x, struct pp_exec_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < x->nstats; i++) {
		const struct pp_exec_stats *s = &x->stats[i].s;
		out->requests += s->requests;
		out->retries += s->retries;
		out->throttled += s->throttled;
		out->failures += s->failures;
		out->latency_sum += s->latency_sum;
		for (size_t b = 0; b < sizeof(s->latency_buckets) / sizeof(s->latency_buckets[0]);
		     b++)
			out->latency_buckets[b] += s->latency_buckets[b];
	}
}

size_t pp_exec_stats_by_provider(const struct pp_exec *x, struct pp_exec_provider_stats *out,
				 size_t max)
{
	size_t n = x->nstats < max ? x->nstats : max;
	memcpy(out, x->stats, n * sizeof(*out));
	return n;
}

static struct pp_exec_stats *provider_stats(struct pp_exec *x, const struct pp_provider *p)
{
	for (size_t i = 0; i < x->nstats; i++)
		if (x->stats[i].provider == p->name)
			return &x->stats[i].s;
	if (x->nstats == PP_EXEC_PROVIDERS_MAX)
		return &x->stats[PP_EXEC_PROVIDERS_MAX - 1].s;
	x->stats[x->nstats].provider = p->name;
	return &x->stats[x->nstats++].s;
}

static void stop_peer_wait(struct pp_exec *x, struct exec_op *o)
{
	if (!o->peer_wait)
		return;
	o->peer_wait = false;
	for (struct exec_op **pp = &x->waiters; *pp; pp = &(*pp)->next_waiter) {
		if (*pp == o) {
			*pp = o->next_waiter;
			break;
		}
	}
}

static void unlink_op(struct pp_exec *x, struct exec_op *o)
{
	for (struct exec_op **pp = &x->ops; *pp; pp = &(*pp)->next) {
		if (*pp == o) {
			*pp = o->next;
			break;
		}
	}
	x->active--;
	stop_peer_wait(x, o);
}

static void finish(struct exec_op *o, int rc)
{
	struct pp_exec *x = o->x;
	x->finished++;
	unlink_op(x, o);
	pp_http_req_free(&o->io->req);
	if (rc) {
		o->stats->failures++;
		if (!o->err.msg[0])
			pp_fail(&o->err, rc, "%s %s: %s", o->p->name, pp_op_name(o->op),
				pp_strerror(rc));
		o->err.code = rc;
		pp_redact(o->err.msg);
		pp_debug("%s %s run %s failed: %s", o->p->name, pp_op_name(o->op),
			 o->io->run_id ? o->io->run_id : "-", o->err.msg);
	}
	pp_redact(o->io->message);
	o->done(o->ud, rc, rc ? &o->err : NULL);
	op_free(o);
}

/* Decide what follows a failed step: back off and repeat, refresh a
 * rejected token once, or give up. */
static void handle_failure(struct exec_op *o, int rc, long status)
{
	long long now = pp_mono_ms();

	if (rc == PP_ETHROTTLED)
		o->stats->throttled++;
	if (rc == PP_EAUTH && status == 401 && !o->auth_retried) {
		o->auth_retried = true;
		if (pp_exec_cred(o->io))
			pp_cred_invalidate(pp_exec_cred(o->io));
		pp_info("%s %s: HTTP 401, refreshing credentials and retrying once", o->p->name,
			pp_op_name(o->op));
		o->stats->retries++;
		o->retrying = true;
		o->phase = PHASE_CALL;
		o->wake_ms = now;
		return;
	}
	if (!pp_err_retryable(rc)) {
		finish(o, rc);
		return;
	}
	if (o->tries >= o->pol.max_attempts) {
		pp_error_prefix(&o->err, "gave up after %d attempts: ", o->tries);
		finish(o, rc);
		return;
	}
	long floor_ms = o->err.retry_after_ms;
	if (o->resp_err.retry_after_ms > floor_ms)
		floor_ms = o->resp_err.retry_after_ms;
	long delay = pp_backoff_ms(o->tries - 1, o->pol.base_ms, o->pol.cap_ms, floor_ms);
	if (now + delay > o->deadline_ms) {
		pp_error_prefix(&o->err,
				"gave up after %d attempts (retry budget of %ld ms spent): ",
				o->tries, o->pol.budget_ms);
		finish(o, rc);
		return;
	}
	o->stats->retries++;
	pp_info("%s %s run %s: retrying in %ld ms (attempt %d of %d): %s", o->p->name,
		pp_op_name(o->op), o->io->run_id ? o->io->run_id : "-", delay, o->tries + 1,
		o->pol.max_attempts, o->err.msg);
	o->retrying = true;
	o->phase = PHASE_CALL;
	o->wake_ms = now + delay;
}

static void record_latency(struct pp_exec_stats *stats, double seconds)
{
	stats->latency_sum += seconds;
	size_t i = 0;
	while (i < 11 && seconds > latency_bounds[i])
		i++;
	stats->latency_buckets[i]++;
}

static void on_http_done(void *ud, struct pp_http_req *req, struct pp_http_resp *resp, int rc,
			 const struct pp_error *err)
{
	struct exec_op *o = ud;
	double secs = resp->total_seconds > 0 ? resp->total_seconds
					      : (double)(pp_mono_ms() - o->sent_ms) / 1000.0;
	record_latency(o->stats, secs);
	pp_error_clear(&o->resp_err);
	if (rc && err) {
		/* Transport failure or an oversized body: the HTTP layer's
		 * own verdict is more precise than the missing status. */
		o->resp_rc = rc;
		o->resp_err = *err;
		o->resp_err.code = rc;
	} else {
		o->resp_rc = pp_http_classify(req, resp, &o->resp_err);
	}
	if (resp->retry_after_ms > o->resp_err.retry_after_ms)
		o->resp_err.retry_after_ms = resp->retry_after_ms;
	o->have_resp = true;
	o->phase = PHASE_RESPONSE;
}

static void send_request(struct exec_op *o)
{
	struct pp_exec *x = o->x;
	struct pp_run_io *io = o->io;
	long long now = pp_mono_ms();
	long remaining = (long)(o->deadline_ms - now);

	if (remaining <= 0) {
		pp_fail(&o->err, PP_ETRANSIENT, "%s %s: time budget of %ld ms spent", o->p->name,
			pp_op_name(o->op), o->pol.budget_ms);
		finish(o, PP_ETRANSIENT);
		return;
	}
	if (io->req.timeout_ms <= 0 || io->req.timeout_ms > o->pol.call_timeout_ms)
		io->req.timeout_ms = o->pol.call_timeout_ms;
	if (io->req.timeout_ms > remaining)
		io->req.timeout_ms = remaining;
	/* The op's deadline (its budget, the lease bound) as an absolute time:
	 * whatever holds the request up before it goes out cannot extend it. */
	io->req.not_after_ms = o->deadline_ms;
	o->tries = o->retrying ? o->tries + 1 : 1;
	o->retrying = false;
	pp_http_resp_init(&o->resp, io->req.max_response);
	pp_error_clear(&o->resp_err);
	o->sent_ms = now;
	pp_debug("%s %s: %s %s", o->p->name, pp_op_name(o->op), io->req.method, io->req.url);
	int rc = pp_exec_authorize(io, &o->err);
	if (!rc)
		rc = pp_http_multi_add(x->multi, &io->req, &o->resp, on_http_done, o, &o->err);
	if (rc) {
		/* Nothing went out (e.g. the token fetch failed): same rules as
		 * a failed exchange, and the op re-sends when called again. */
		pp_http_resp_free(&o->resp);
		if (!o->err.msg[0])
			pp_fail(&o->err, rc, "%s %s: cannot start %s %s", o->p->name,
				pp_op_name(o->op), io->req.method, io->req.url);
		handle_failure(o, rc, 0);
		return;
	}
	o->stats->requests++;
	o->phase = PHASE_SENDING;
}

struct pp_cred *pp_exec_cred(const struct pp_run_io *io)
{
	return io->run_cred ? io->run_cred : io->cred;
}

int pp_exec_authorize(struct pp_run_io *io, struct pp_error *err)
{
	struct pp_cred *c = pp_exec_cred(io);
	int rc = c ? pp_cred_apply(c, &io->req, err) : 0;
	/* Say so when it is the run's own token that failed, not the pool's. */
	if (rc && io->run_cred && err)
		pp_error_prefix(err, "%s: ", pp_cred_name(io->run_cred));
	return rc;
}

static int (*op_fn(const struct pp_provider *p, enum pp_op op))(struct pp_run_io *,
								struct pp_error *)
{
	switch (op) {
	case PP_OP_SUBMIT: return p->submit;
	case PP_OP_STATUS: return p->status;
	case PP_OP_CANCEL: return p->cancel;
	case PP_OP_CLEANUP: return p->cleanup;
	case PP_OP_LIST: return p->list;
	case PP_OP_REMOVE: return p->remove;
	case PP_OP_LOGS: return p->logs;
	}
	return NULL;
}

/* An answer to an op of p may be what ops waiting on a peer of p need (the
 * task definition they wait for is registered, or its registration
 * failed and one of them must take it over): they are called on the next
 * pass instead of at their poll time. Only answers wake them, never
 * their own calls, so waiters do not wake each other in a loop. */
static void wake_peers(struct pp_exec *x, const struct pp_provider *p)
{
	if (!x->waiters)
		return;
	long long now = pp_mono_ms();
	for (struct exec_op *o = x->waiters; o; o = o->next_waiter)
		if (o->p == p && o->wake_ms > now)
			o->wake_ms = now;
}

/* Call the provider once, with the response when one arrived. */
static void step(struct exec_op *o)
{
	struct pp_exec *x = o->x;
	const struct pp_provider *p = o->p;
	struct pp_run_io *io = o->io;
	long status = 0;
	bool answered = o->have_resp;

	stop_peer_wait(x, o);

	pp_http_req_free(&io->req);
	if (o->have_resp) {
		io->resp = &o->resp;
		io->resp_rc = o->resp_rc;
		io->resp_err = &o->resp_err;
		status = o->resp.status;
	} else {
		io->resp = NULL;
		io->resp_rc = 0;
		io->resp_err = NULL;
	}
	io->poll_after_ms = 0;
	pp_error_clear(&o->err);
	int rc = op_fn(o->p, o->op)(io, &o->err);
	io->resp = NULL;
	io->resp_err = NULL;
	if (o->have_resp) {
		pp_http_resp_free(&o->resp);
		o->have_resp = false;
	}
	if (answered)
		wake_peers(x, p);
	if (rc < 0) {
		if (!o->err.msg[0] && o->resp_err.msg[0])
			o->err = o->resp_err;
		o->err.code = rc;
		handle_failure(o, rc, status);
		return;
	}
	switch (rc) {
	case PP_STEP_DONE: finish(o, 0); return;
	case PP_STEP_SEND:
		if (!io->req.url) {
			pp_fail(&o->err, PP_EINVALID, "%s %s asked to send without a request",
				o->p->name, pp_op_name(o->op));
			finish(o, PP_EINVALID);
			return;
		}
		send_request(o);
		return;
	case PP_STEP_WAIT:
	case PP_STEP_WAIT_PEER: {
		long wait = io->poll_after_ms > 0 ? io->poll_after_ms : 500;
		long long now = pp_mono_ms();
		if (now + wait > o->deadline_ms) {
			pp_fail(&o->err, PP_ETRANSIENT,
				"%s %s: still waiting after the time budget of %ld ms", o->p->name,
				pp_op_name(o->op), o->pol.budget_ms);
			finish(o, PP_ETRANSIENT);
			return;
		}
		/* Waiting is progress, not a failed try of the request. */
		o->tries = 0;
		o->phase = PHASE_CALL;
		o->wake_ms = now + wait;
		if (rc == PP_STEP_WAIT_PEER) {
			o->peer_wait = true;
			o->next_waiter = x->waiters;
			x->waiters = o;
		}
		return;
	}
	default:
		pp_fail(&o->err, PP_EINVALID, "%s %s returned unknown step %d", o->p->name,
			pp_op_name(o->op), rc);
		finish(o, PP_EINVALID);
	}
}

int pp_exec_start(struct pp_exec *x, const struct pp_provider *p, enum pp_op op,
		  struct pp_run_io *io, const struct pp_exec_policy *policy, pp_exec_done_fn done,
		  void *ud, struct pp_error *err)
{
	if (!p || p->abi != PP_PROVIDER_ABI)
		return pp_fail(err, PP_EINVALID, "provider %s has ABI %u, expected %u",
			       p ? p->name : "(null)", p ? p->abi : 0, PP_PROVIDER_ABI);
	if (!op_fn(p, op))
		return pp_fail(err, PP_EINVALID, "provider %s does not support %s", p->name,
			       pp_op_name(op));
	if (!done || !io)
		return pp_fail(err, PP_EINVALID, "pp_exec_start: io and done are required");
	long long now = pp_mono_ms();
	if (policy && policy->not_after_ms && now >= policy->not_after_ms)
		return pp_fail(err, PP_ETRANSIENT,
			       "%s %s not started: the run's lease lapsed %lld ms ago and is not "
			       "renewed yet",
			       p->name, pp_op_name(op), now - policy->not_after_ms);
	struct exec_op *o = calloc(1, sizeof(*o));
	if (!o)
		return pp_fail(err, PP_ENOMEM, "out of memory starting %s", pp_op_name(op));
	o->x = x;
	o->p = p;
	o->stats = provider_stats(x, p);
	o->op = op;
	o->io = io;
	o->done = done;
	o->ud = ud;
	resolve_policy(policy, &o->pol);
	o->phase = PHASE_CALL;
	o->wake_ms = now;
	o->deadline_ms = o->wake_ms + o->pol.budget_ms;
	if (o->pol.not_after_ms && o->pol.not_after_ms < o->deadline_ms)
		o->deadline_ms = o->pol.not_after_ms;
	memset(&io->req, 0, sizeof(io->req));
	o->next = x->ops;
	x->ops = o;
	x->active++;
	return 0;
}

/* Run every op whose response arrived or whose timer expired, in one pass:
 * a step frees at most its own op, adds new ones at the head, and may
 * abandon others, which stay in memory, skipped, until the next pass. */
static void run_ready(struct pp_exec *x)
{
	free_abandoned(x);
	long long now = pp_mono_ms();
	struct exec_op *next;
	for (struct exec_op *o = x->ops; o; o = next) {
		next = o->next;
		if (o->phase == PHASE_RESPONSE || (o->phase == PHASE_CALL && o->wake_ms <= now))
			step(o);
	}
}

static long long next_wake(const struct pp_exec *x)
{
	long long wake = -1;
	for (const struct exec_op *o = x->ops; o; o = o->next)
		if (o->phase == PHASE_CALL && (wake < 0 || o->wake_ms < wake))
			wake = o->wake_ms;
	return wake;
}

void pp_exec_abandon(struct pp_exec *x, const void *ud)
{
	for (struct exec_op *o = x->ops, *next; o; o = next) {
		next = o->next;
		if (o->ud != ud)
			continue;
		/* The transfer writes into o->resp and reads io->req. */
		if (o->phase == PHASE_SENDING) {
			pp_http_multi_abandon(x->multi, o);
			pp_http_resp_free(&o->resp);
		}
		/* Unlinked, o->next still leads on: a pass holding o goes on. */
		unlink_op(x, o);
		pp_http_req_free(&o->io->req);
		o->io = NULL;
		o->phase = PHASE_ABANDONED;
		o->next_abandoned = x->abandoned;
		x->abandoned = o;
	}
}

void pp_exec_set_gate(struct pp_exec *x, int (*gate)(void *ud), void *ud)
{
	x->gate = gate;
	x->gate_ud = ud;
}

void pp_exec_wake(struct pp_exec *x)
{
	x->wakes++;
}

int pp_exec_poll(struct pp_exec *x, long timeout_ms)
{
	long long deadline = pp_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	unsigned long finished_before = x->finished, wakes_before = x->wakes;
	for (;;) {
		run_ready(x);
		/* A shared handle's other transfers are waited on too: their
		 * owner is called back from the wait, and wakes us. */
		if (!x->active && !pp_http_multi_pending(x->multi))
			break;
		long long now = pp_mono_ms();
		long wait = (long)(deadline - now);
		long long wake = next_wake(x);
		if (wake >= 0 && wake - now < wait)
			wait = (long)(wake - now);
		if (wait < 0)
			wait = 0;
		if (x->gate && x->gate(x->gate_ud))
			break;
		if (pp_http_multi_pending(x->multi) > 0)
			pp_http_multi_run(x->multi, wait);
		else if (wait > 0)
			pp_http_multi_wait_watched(x->multi, wait);
		run_ready(x);
		if (pp_mono_ms() >= deadline || x->finished != finished_before ||
		    x->wakes != wakes_before || pp_http_multi_watch_ready(x->multi))
			break;
	}
	return x->active;
}

struct blocking_result {
	bool finished;
	int rc;
	struct pp_error err;
};

static void blocking_done(void *ud, int rc, const struct pp_error *err)
{
	struct blocking_result *r = ud;
	r->finished = true;
	r->rc = rc;
	if (err)
		r->err = *err;
}

int pp_exec_run_op(const struct pp_provider *p, enum pp_op op, struct pp_run_io *io,
		   const struct pp_exec_policy *policy, struct pp_error *err)
{
	struct blocking_result r = {0};
	struct pp_exec *x = pp_exec_new();
	if (!x)
		return pp_fail(err, PP_ENOMEM, "out of memory creating the HTTP driver");
	int rc = pp_exec_start(x, p, op, io, policy, blocking_done, &r, err);
	if (rc) {
		pp_exec_free(x);
		return rc;
	}
	while (!r.finished)
		pp_exec_poll(x, 1000);
	pp_exec_free(x);
	if (r.rc && err)
		*err = r.err;
	return r.rc;
}

int pp_exec_io_prepare(struct pp_run_io *io, const struct pp_provider *p, struct pp_error *err)
{
	io->state = p->state_size ? calloc(1, p->state_size) : NULL;
	if (p->state_size && !io->state)
		return pp_fail(err, PP_ENOMEM, "out of memory for %s run state", p->name);
	io->exit_code = -1;
	int rc = p->prepare ? p->prepare(io, err) : 0;
	if (rc)
		pp_exec_io_release(io, p);
	return rc;
}

int pp_exec_io_restore(struct pp_run_io *io, const struct pp_provider *p, struct pp_error *err)
{
	io->state = p->state_size ? calloc(1, p->state_size) : NULL;
	if (p->state_size && !io->state)
		return pp_fail(err, PP_ENOMEM, "out of memory for %s run state", p->name);
	io->exit_code = -1;
	int rc = p->restore ? p->restore(io, err)
			    : pp_fail(err, PP_EINVALID, "provider %s cannot restore runs", p->name);
	if (rc)
		pp_exec_io_release(io, p);
	return rc;
}

void pp_exec_io_release(struct pp_run_io *io, const struct pp_provider *p)
{
	if (io->state && p->release)
		p->release(io->state);
	free(io->state);
	io->state = NULL;
	io->run_cred = NULL; /* it lived in the state */
	pp_run_io_free_strings(io);
	pp_http_req_free(&io->req);
}
