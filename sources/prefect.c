/* The Prefect server API as a run source: pushpool acts as the worker of
 * the configured push pools. Every 30 s a poll syncs (heartbeats every
 * pool, reads its type and base job template); each poll takes the
 * scheduled flow runs in the look-ahead window and claims each by
 * proposing PENDING; only a run the server let us have goes into the store
 * (id = flow run id, so the idempotency keys of every replica name the
 * same remote job). Each step's calls go out together. Progress goes back
 * as infrastructure_pid and state proposals through an outbox that
 * survives a server outage, delivered together once a turn (flush); runs
 * the server moves to CANCELLING are cancelled here.
 * Shapes follow PrefectHQ/prefect src/prefect/server/api/{workers,flow_runs}.py
 * and src/prefect/workers/base.py.
 * The HTTP client is prefect_client.c; deployments and blocks, cached, are
 * prefect_blocks.c. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "auth/token_cache.h"
#include "lib/file.h"
#include "lib/http.h"
#include "lib/log.h"
#include "sources/prefect.h"
#include "sources/prefect_states.h"
#include "render/render.h"
#include "sources/source.h"

#define PF_BATCH	200
#define PF_OUTBOX_MAX	100000
#define PF_RECONCILE_MS 30000
/* Calls made together (a poll's steps, its claims, a round of reports)
 * keep at most this many on the wire at once: Prefect's worker submits the
 * runs of a poll together too, through a client whose connection pool
 * holds 16 ("We see instability when allowing the client to open many
 * connections at once": client/orchestration/__init__.py, httpx.Limits). */
#define PF_CALLS_AT_ONCE 16
#define PF_SYNC_SECONDS	 30.0

static struct pf_pool *pool_of(struct prefect_source *s, const char *name)
{
	for (size_t i = 0; i < s->npools; i++)
		if (!strcmp(s->pools[i].name, name))
			return &s->pools[i];
	return NULL;
}

/* "/work_pools/NAME" and then suffix, the name percent-encoded, into
 * out: 0, or PP_ENOMEM when it does not fit. */
static int pool_path(const struct pf_pool *p, const char *suffix, char *out, size_t n)
{
	struct pp_buf path;
	pp_buf_init(&path, n);
	int rc = pp_buf_puts(&path, "/work_pools/");
	if (!rc)
		rc = pp_url_encode(&path, p->name, false);
	if (!rc)
		rc = pp_buf_puts(&path, suffix);
	if (!rc && path.len >= n)
		rc = PP_ENOMEM;
	if (!rc)
		memcpy(out, path.data, path.len + 1);
	pp_buf_free(&path);
	return rc;
}

/* A work pool as read (wp, freed here): its type must be the one pushpool
 * serves it as (the push or the hybrid flavour of it), and its template
 * becomes the pool's. */
static int take_pool(struct pf_pool *p, struct pp_json *wp, struct pp_error *err)
{
	const char *type = pp_json_get_string(wp, "type");
	/* Prefect names a push type "NAME:push" and its hybrid (worker) twin
	 * "NAME"; both mean the same template. */
	char hybrid[80];
	snprintf(hybrid, sizeof(hybrid), "%s:push", type ? type : "");
	if (!type || (strcmp(type, p->type) && (strchr(type, ':') || strcmp(hybrid, p->type)))) {
		/* type points into wp: format the message before freeing it. */
		int rc =
			pp_fail(err, PP_EINVALID,
				"work pool \"%s\" has type \"%s\" on the server, but [pool \"%s\"] "
				"is %s",
				p->name, type ? type : "(none)", p->name, p->type);
		pp_json_free(wp);
		return rc;
	}
	struct pp_json *tmpl = pp_json_detach(pp_json_get(wp, "base_job_template"));
	pp_json_free(wp);
	if (tmpl && tmpl->count == 0) {
		/* A pool created without a template: the type's default. */
		pp_json_free(tmpl);
		tmpl = NULL;
	} else if (!pp_json_is(pp_json_get(tmpl, "job_configuration"), PP_JSON_OBJECT)) {
		pp_json_free(tmpl);
		return pp_fail(
			err, PP_EINVALID,
			"work pool \"%s\": base_job_template has no job_configuration object",
			p->name);
	}
	pp_json_free(p->tmpl);
	p->tmpl = tmpl;
	p->read = true;
	/* Runs resolve the template as read now, never one read before. */
	pp_json_free(p->resolved);
	p->resolved = NULL;
	return 0;
}

static int read_pool(struct prefect_source *s, struct pf_pool *p, struct pp_error *err)
{
	char path[PF_PATH_MAX];
	struct pp_json *wp = NULL;
	int rc = pool_path(p, "", path, sizeof(path));
	rc = rc ? pp_fail(err, PP_ENOMEM, "out of memory")
		: pp_prefect_api_call(s, "GET", path, NULL, 0, &wp, err);
	return rc ? rc : take_pool(p, wp, err);
}

/* ---- reports ---- */

static int outbox_add(struct prefect_source *s, const char *flow_run, const char *infra_pid,
		      const char *state_type, const char *message, const char *attempt_infra)
{
	if (s->noutbox >= PF_OUTBOX_MAX)
		return PP_ENOMEM;
	struct pf_report *r = calloc(1, sizeof(*r));
	if (!r)
		return PP_ENOMEM;
	snprintf(r->flow_run, sizeof(r->flow_run), "%s", flow_run);
	snprintf(r->state_type, sizeof(r->state_type), "%s", state_type ? state_type : "");
	r->infra_pid = infra_pid ? strdup(infra_pid) : NULL;
	r->message = message ? strdup(message) : NULL;
	r->attempt_infra = attempt_infra ? strdup(attempt_infra) : NULL;
	r->queued_ms = pp_wall_ms();
	r->force = state_type && !strcmp(state_type, "CANCELLED");
	if ((infra_pid && !r->infra_pid) || (message && !r->message) ||
	    (attempt_infra && !r->attempt_infra) || (state_type && pp_uuid4(r->transition_id))) {
		free(r->infra_pid);
		free(r->message);
		free(r->attempt_infra);
		free(r);
		return PP_ENOMEM;
	}
	*s->outbox_tail = r;
	s->outbox_tail = &r->next;
	s->noutbox++;
	return 0;
}

static void report_free(struct pf_report *r)
{
	free(r->infra_pid);
	free(r->message);
	free(r->attempt_infra);
	free(r);
}

/* Take the reports marked done out of the outbox, the others in order; a
 * report with a call on the wire stays until it is answered. */
static void outbox_sweep(struct prefect_source *s)
{
	struct pf_report **at = &s->outbox;
	s->outbox_tail = &s->outbox;
	while (*at) {
		struct pf_report *r = *at;
		if (r->done && !r->flying) {
			*at = r->next;
			s->noutbox--;
			report_free(r);
			continue;
		}
		at = &r->next;
		s->outbox_tail = at;
	}
}

/* Drop the reports still queued for a flow run: it starts a new attempt,
 * and what they say was about the old one. */
static void outbox_forget(struct prefect_source *s, const char *flow_run)
{
	for (struct pf_report *r = s->outbox; r; r = r->next)
		r->done |= !strcmp(r->flow_run, flow_run);
	outbox_sweep(s);
}

/* A read of a flow run (GET path) that answered rc and *out: an answer
 * that is not an object is an error, and *out NULL. */
static int flow_run_read(const char *path, int rc, struct pp_json **out, struct pp_error *err)
{
	if (!rc && !pp_json_is(*out, PP_JSON_OBJECT)) {
		pp_json_free(*out);
		*out = NULL;
		rc = pp_fail(err, PP_EINVALID, "Prefect GET %s: not a flow run", path);
	}
	return rc;
}

/* The flow run as the server has it now (caller frees *out). */
static int read_flow_run(struct prefect_source *s, const char *flow_run, struct pp_json **out,
			 struct pp_error *err)
{
	char path[128];
	*out = NULL;
	snprintf(path, sizeof(path), "/flow_runs/%s", flow_run);
	return flow_run_read(path, pp_prefect_api_call(s, "GET", path, NULL, 0, out, err), out,
			     err);
}

/* A flow run's state type ("" when it has none). */
static const char *run_state_type(const struct pp_json *fr)
{
	const char *t = pp_json_get_string(fr, "state_type");
	if (!t)
		t = pp_json_string(pp_json_path(fr, "state.type"));
	return t ? t : "";
}

/* When a flow run entered its state (0: unknown). */
static int64_t run_state_ms(const struct pp_json *fr)
{
	int64_t at = 0;
	if (pp_prefect_time_parse(pp_json_string(pp_json_path(fr, "state.timestamp")), &at))
		return 0;
	return at;
}

/* The proposal body: the state with its transition_id in state_details, as
 * Prefect's client sends it (client/orchestration/_flow_runs/client.py,
 * set_flow_run_state), and force for a CANCELLED. */
static int state_body(const char *type, const char *name, const char *message,
		      const char *transition_id, bool force, struct pp_json **out,
		      struct pp_error *err)
{
	struct pp_buf text;
	pp_buf_init(&text, 1 << 16);
	int rc = pp_buf_printf(&text, "{\"state\":{\"type\":\"%s\",", type);
	if (!rc && name)
		rc = pp_buf_printf(&text, "\"name\":\"%s\",", name);
	if (!rc)
		rc = pp_buf_puts(&text, "\"message\":");
	if (!rc && message)
		rc = pp_json_write_string(&text, message, strlen(message));
	else if (!rc)
		rc = pp_buf_puts(&text, "null");
	if (!rc)
		rc = pp_buf_printf(&text,
				   ",\"state_details\":{\"transition_id\":\"%s\"}},\"force\":%s}",
				   transition_id, force ? "true" : "false");
	if (!rc)
		rc = pp_json_parse(text.data, text.len, NULL, out, err);
	pp_buf_free(&text);
	return rc ? pp_fail(err, PP_ENOMEM, "out of memory") : 0;
}

/* Reports delivered together in a round: the oldest queued report of each
 * flow run, at most this many. A run's later reports wait for the next
 * round, so each run's reports still reach the server in order. */
#define PF_REPORTS_ROUND 256

/* One report on its way in a round of outbox_flush. */
struct pf_delivery {
	struct pf_report *r;
	struct pp_json *body; /* what it sends: the PATCH, or the proposal */
	int rc;		      /* its outcome */
	struct pp_error err;
	bool proposing; /* a state report the read let through */
};

/* The round's first calls: a PATCH of infrastructure_pid (as
 * BaseWorker._submit_run's update_flow_run once the infrastructure is up),
 * or the read of the flow run a state report is about. */
static int first_call(struct pf_delivery *d, struct pf_call *c, struct pp_error *err)
{
	memset(c, 0, sizeof(*c));
	if (d->r->infra_pid) {
		c->method = "PATCH";
		c->flags = PP_HTTP_RESENDABLE; /* the same value set again */
		snprintf(c->path, sizeof(c->path), "/flow_runs/%s", d->r->flow_run);
		d->body = pp_json_new(PP_JSON_OBJECT);
		if (!d->body || pp_json_set_string(d->body, "infrastructure_pid", d->r->infra_pid))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		c->body = d->body;
	} else {
		c->method = "GET";
		snprintf(c->path, sizeof(c->path), "/flow_runs/%s", d->r->flow_run);
	}
	return 0;
}

/* A state report's read is in (c): whether to propose. A flow that already
 * ended keeps its own state (the worker's CRASHED would be aborted, a
 * forced CANCELLED would overwrite the flow's COMPLETED or FAILED), and a
 * run that moved on to another attempt must not get this one's outcome. */
static void judge_read(struct pf_delivery *d, struct pf_call *c)
{
	const struct pf_report *r = d->r;
	d->rc = flow_run_read(c->path, c->rc, &c->out, &c->err);
	if (d->rc) {
		d->err = c->err;
		return;
	}
	char cur[32];
	snprintf(cur, sizeof(cur), "%s", run_state_type(c->out));
	bool same = pp_prefect_same_attempt(cur, run_state_ms(c->out),
					    pp_json_get_string(c->out, "infrastructure_pid"),
					    r->attempt_infra, r->queued_ms);
	if (!pp_prefect_report_wanted(r->state_type, cur))
		pp_info("prefect: flow run %s is %s already; not reporting %s", r->flow_run, cur,
			r->state_type);
	else if (!same)
		pp_info("prefect: flow run %s moved on to another attempt (%s); not reporting %s",
			r->flow_run, cur, r->state_type);
	else
		d->proposing = !(d->rc = state_body(r->state_type, NULL, r->message,
						    r->transition_id, r->force, &d->body, &d->err));
}

/* A proposal's answer: anything but ACCEPT is said, and the report done
 * (the server has decided). */
static void proposal_answered(struct pf_delivery *d, struct pf_call *c)
{
	d->rc = c->rc;
	d->err = c->err;
	const char *status = c->rc ? NULL : pp_json_get_string(c->out, "status");
	if (status && strcmp(status, "ACCEPT"))
		pp_info("prefect: flow run %s: %s proposal answered %s: %s", d->r->flow_run,
			d->r->state_type, status,
			pp_json_string(pp_json_path(c->out, "details.reason"))
				? pp_json_string(pp_json_path(c->out, "details.reason"))
				: "");
}

/* The proposal a report's read let through (d->body), as call c. */
static void proposal_call(const struct pf_delivery *d, struct pf_call *c)
{
	memset(c, 0, sizeof(*c));
	c->method = "POST";
	snprintf(c->path, sizeof(c->path), "/flow_runs/%s/set_state", d->r->flow_run);
	c->body = d->body;
	/* A resend of an applied report carries its transition_id, which the
	 * server refuses as a duplicate (PreventDuplicateTransitions); a
	 * forced one skips the rules and would be applied again. */
	c->flags = d->r->force ? 0 : PP_HTTP_RESENDABLE;
}

/* A delivery's outcome (d->rc) settles its report: done (a failure the
 * server will not get over is said, and the report dropped), or, when it
 * may go through later, kept in place with the server's Retry-After noted.
 * Whether it is done. */
static bool delivered(struct prefect_source *s, struct pf_delivery *d)
{
	if (d->rc && pp_err_retryable(d->rc)) {
		pp_prefect_note_failure(s, d->rc, &d->err);
		return false;
	}
	if (d->rc)
		pp_warn("prefect: dropping report for flow run %s: %s", d->r->flow_run, d->err.msg);
	d->r->done = true;
	return true;
}

/* Whether r is the report of its flow run to send now, picked the oldest
 * not done of each run (picked: the runs seen so far): 1 to send, 0 to
 * pass over (its run has an earlier report, or it is done; one on the wire
 * is passed over but holds its run's later ones back), -1 out of memory. */
static int pick(struct pp_strmap *picked, struct pf_report *r)
{
	if (pp_strmap_get(picked, r->flow_run) || (r->done && !r->flying))
		return 0;
	if (pp_strmap_put(picked, r->flow_run, r))
		return -1;
	return r->flying ? 0 : 1;
}

/* One round (no flight left: outbox_flush waits for them first): the
 * oldest report of each flow run (up to PF_REPORTS_ROUND),
 * their PATCHes and reads together, then the proposals the reads let
 * through together. Delivered reports, and those the server refuses for
 * good (said, and dropped), leave the outbox; the others stay in place.
 * Returns 0 or the first retryable failure. */
static int flush_round(struct prefect_source *s, struct pp_error *err)
{
	/* A call is 1.6 KiB: as many as this round can have, not the most. */
	size_t most = s->noutbox < PF_REPORTS_ROUND ? s->noutbox : PF_REPORTS_ROUND;
	struct pf_delivery *d = calloc(most ? most : 1, sizeof(*d));
	struct pf_call *calls = calloc(most ? most : 1, sizeof(*calls));
	struct pp_strmap picked = {0};
	size_t n = 0;
	int rc = d && calls ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
	for (struct pf_report *r = s->outbox; !rc && r && n < most; r = r->next) {
		int take = pick(&picked, r);
		if (take < 0) {
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
			break;
		}
		if (!take)
			continue;
		d[n].r = r;
		rc = first_call(&d[n], &calls[n], err);
		n++;
	}
	if (!rc && pp_prefect_api_calls(s, calls, n, PF_CALLS_AT_ONCE))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	size_t np = 0;
	for (size_t i = 0; !rc && i < n; i++) {
		if (d[i].r->infra_pid) {
			d[i].rc = calls[i].rc;
			d[i].err = calls[i].err;
		} else {
			judge_read(&d[i], &calls[i]);
		}
		pp_json_free(calls[i].out);
	}
	/* The reads' answers are judged: calls takes the proposals. */
	for (size_t i = 0; !rc && i < n; i++)
		if (d[i].proposing)
			proposal_call(&d[i], &calls[np++]);
	if (!rc && pp_prefect_api_calls(s, calls, np, PF_CALLS_AT_ONCE))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	for (size_t i = 0, j = 0; !rc && i < n; i++) {
		if (!d[i].proposing)
			continue;
		proposal_answered(&d[i], &calls[j]);
		pp_json_free(calls[j++].out);
	}
	/* Settle the round: what is done leaves the outbox. */
	int failed = rc;
	for (size_t i = 0; !rc && i < n; i++) {
		if (!delivered(s, &d[i]) && !failed) {
			failed = d[i].rc;
			*err = d[i].err;
		}
	}
	outbox_sweep(s);
	for (size_t i = 0; d && i < n; i++)
		pp_json_free(d[i].body);
	pp_strmap_clear(&picked);
	free(calls);
	free(d);
	return failed;
}

/* ---- reports left on the wire (the loop's handle) ---- */

/* A report's delivery left on the wire (pp_prefect_api_send): its PATCH or
 * read, then the proposal its read lets through. The loop waits on it with
 * its own requests; the turns' flushes take up its answers. */
struct pf_flight {
	struct pf_delivery d;
	struct pf_flight_call call;
	struct pf_flight *next;
};

/* A failed delivery holds the outbox until the next poll (flush_held),
 * said once. */
static void hold(struct prefect_source *s, const struct pp_error *err)
{
	if (!s->flush_held)
		pp_warn("prefect: %zu report(s) queued: %s", s->noutbox, err->msg);
	s->flush_held = true;
}

/* Answered flights taken up: a PATCH or a proposal settles its report; a
 * read is judged, and the proposal it lets through sent. A flight whose
 * report was forgotten meanwhile (its run began another attempt) only
 * ends. */
static void flights_land(struct prefect_source *s)
{
	for (struct pf_flight **at = &s->flights; *at;) {
		struct pf_flight *f = *at;
		struct pf_delivery *d = &f->d;
		struct pf_call *c = &f->call.call;
		if (!f->call.answered) {
			at = &f->next;
			continue;
		}
		bool again = pp_prefect_api_take(s, &f->call);
		bool settle = !again && !d->r->done;
		if (settle && !d->proposing && !d->r->infra_pid) {
			judge_read(d, c);
			pp_json_free(c->out);
			c->out = NULL;
			if (d->proposing) {
				proposal_call(d, c);
				d->rc = pp_prefect_api_send(s, &f->call, &d->err);
				if (!d->rc) {
					at = &f->next; /* on the wire again */
					continue;
				}
			}
		} else if (settle && d->proposing) {
			proposal_answered(d, c);
		} else if (settle) {
			d->rc = c->rc;
			d->err = c->err;
		}
		pp_json_free(c->out);
		if (settle && !delivered(s, d))
			hold(s, &d->err);
		d->r->flying = false;
		pp_json_free(d->body);
		*at = f->next;
		free(f);
	}
	outbox_sweep(s);
}

/* Flights for the oldest report of each flow run not yet on its way, while
 * fewer than PF_CALLS_AT_ONCE calls are on the wire (out of them a batch's
 * that waits). */
static void flights_start(struct prefect_source *s, size_t out)
{
	if (s->flush_held || pp_wall_ms() < s->backoff_until)
		return;
	struct pp_strmap picked = {0};
	for (struct pf_report *r = s->outbox; r && s->flying + out < PF_CALLS_AT_ONCE;
	     r = r->next) {
		int take = pick(&picked, r);
		struct pf_flight *f = NULL;
		if (take < 0 || (take && !(f = calloc(1, sizeof(*f)))))
			break; /* out of memory: the next turn tries again */
		if (!take)
			continue;
		f->d.r = r;
		f->d.rc = first_call(&f->d, &f->call.call, &f->d.err);
		if (!f->d.rc)
			f->d.rc = pp_prefect_api_send(s, &f->call, &f->d.err);
		if (!f->d.rc) {
			r->flying = true;
			f->next = s->flights;
			s->flights = f;
			continue;
		}
		bool done = delivered(s, &f->d);
		if (!done)
			hold(s, &f->d.err);
		pp_json_free(f->d.body);
		free(f);
		if (!done)
			break;
	}
	pp_strmap_clear(&picked);
	outbox_sweep(s);
}

void pp_prefect_flights_step(struct prefect_source *s, size_t out)
{
	if (!s->base.multi || s->flights_busy)
		return;
	s->flights_busy = true;
	flights_land(s);
	flights_start(s, out);
	s->flights_busy = false;
}

/* Deliver queued reports, round after round, until none is left or the
 * server could not take some for now; flights first waited for. */
static int outbox_flush(struct prefect_source *s, struct pp_error *err)
{
	s->flights_busy = true;
	int rc = 0;
	while (s->flights && !pp_prefect_api_wait(s))
		flights_land(s);
	/* The turn is lost: what is on the wire is taken off it unanswered,
	 * and the rounds below fail those reports like every other (nothing
	 * goes upstream after a lost turn). */
	while (s->flights) {
		struct pf_flight *f = s->flights;
		s->flights = f->next;
		pp_prefect_api_abandon(s, &f->call);
		f->d.r->flying = false;
		pp_json_free(f->d.body);
		free(f);
	}
	while (!rc && s->outbox) {
		memset(err, 0, sizeof(*err));
		if ((rc = flush_round(s, err)))
			pp_error_prefix(err, "%zu report(s) queued: ", s->noutbox);
	}
	s->flights_busy = false;
	return rc;
}

static int prefect_report(struct pp_source *src, const struct pp_run_rec *rec,
			  enum pp_store_state state, const char *infra_id, const char *message,
			  struct pp_error *err)
{
	struct prefect_source *s = (struct prefect_source *)src;
	const char *ref = rec->source_ref ? rec->source_ref : rec->id;
	int rc = 0;
	if (state == PP_ST_SUBMITTED && infra_id && *infra_id)
		rc = outbox_add(s, ref, infra_id, NULL, NULL, NULL);
	const char *type = pp_prefect_state_for(state);
	if (!rc && type)
		rc = outbox_add(s, ref, NULL, type, message, infra_id);
	if (rc)
		return pp_fail(err, PP_ENOMEM, "prefect: report queue full");
	return 0;
}

/* The reports queued since: on the loop's handle, sent (at most
 * PF_CALLS_AT_ONCE calls on the wire) and taken up as they are answered, the
 * loop waiting for none; without it, delivered together before returning.
 * After a failure the outbox waits for the next poll, which delivers it
 * first (or for the Retry-After). */
static void outbox_send(struct prefect_source *s)
{
	if (s->base.multi) {
		pp_prefect_flights_step(s, 0);
		return;
	}
	if (!s->outbox || s->flush_held || pp_wall_ms() < s->backoff_until)
		return;
	struct pp_error err = {0};
	if (outbox_flush(s, &err))
		hold(s, &err);
}

static void prefect_flush(struct pp_source *src)
{
	outbox_send((struct prefect_source *)src);
}

/* ---- claiming ---- */

/* Claims remembered at most (run_deployments): past that the memo starts
 * over, and the runs it forgot are read again when they are rendered. */
#define PF_RUN_DEPLOYMENTS_MAX 4096

struct pf_run_deployment {
	char run[PP_ID_LEN]; /* the key */
	char deployment[PP_ID_LEN];
};

static void run_deployments_clear(struct prefect_source *s)
{
	for (size_t i = 0; i < s->run_deployments.cap; i++)
		if (s->run_deployments.slots[i].key)
			free(s->run_deployments.slots[i].value);
	pp_strmap_clear(&s->run_deployments);
}

/* Remember flow run id's deployment (out of memory, the render reads it). */
static void remember_deployment(struct prefect_source *s, const char *id, const char *deployment)
{
	if (!deployment || strlen(id) >= PP_ID_LEN || strlen(deployment) >= PP_ID_LEN)
		return;
	struct pf_run_deployment *d = pp_strmap_get(&s->run_deployments, id);
	if (!d) {
		if (s->run_deployments.n >= PF_RUN_DEPLOYMENTS_MAX)
			run_deployments_clear(s);
		if (!(d = calloc(1, sizeof(*d))))
			return;
		snprintf(d->run, sizeof(d->run), "%s", id);
		if (pp_strmap_put(&s->run_deployments, d->run, d)) {
			free(d);
			return;
		}
	}
	snprintf(d->deployment, sizeof(d->deployment), "%s", deployment);
}

/* A forced SCHEDULED: the run is free for any worker again. Only for a run
 * we have just claimed and not submitted (nothing of ours can be running). */
static int hand_back(struct prefect_source *s, const char *id, const char *message,
		     struct pp_error *err)
{
	char path[128], tid[PP_UUID_LEN];
	struct pp_json *body = NULL;
	if (pp_uuid4(tid))
		return pp_fail(err, PP_EIO, "no random bytes for a transition id");
	int rc = state_body("SCHEDULED", NULL, message, tid, true, &body, err);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "/flow_runs/%s/set_state", id);
	/* Forced: the server would apply a resend again. */
	rc = pp_prefect_api_call(s, "POST", path, body, 0, NULL, err);
	pp_json_free(body);
	return rc;
}

/* The body of a PENDING proposal, under a transition id of its own. */
static int pending_body(const char *name, const char *message, struct pp_json **body,
			struct pp_error *err)
{
	char tid[PP_UUID_LEN];
	*body = NULL;
	if (pp_uuid4(tid))
		return pp_fail(err, PP_EIO, "no random bytes for a transition id");
	return state_body("PENDING", name, message, tid, false, body, err);
}

/* Whether the server's answer res to the PENDING proposal body for id
 * leaves the claim ours (pp_prefect_claim_ours). */
static bool pending_accepted(const char *id, const struct pp_json *body, const struct pp_json *res)
{
	const char *status = pp_json_get_string(res, "status");
	bool accepted = pp_prefect_claim_ours(
		res, pp_json_string(pp_json_path(body, "state.state_details.transition_id")));
	if (!accepted)
		/* REJECT/ABORT: another worker has it or it moved on; WAIT: the
		 * server comes back with it in a later poll. */
		pp_debug("prefect: flow run %s: PENDING %s: %s", id, status ? status : "?",
			 pp_json_string(pp_json_path(res, "details.reason"))
				 ? pp_json_string(pp_json_path(res, "details.reason"))
				 : "");
	return accepted;
}

/* Propose PENDING (named name, NULL: Prefect's "Pending"); *accepted when
 * the answer leaves the claim ours (pending_accepted).
 * BaseWorker._propose_pending_state: PENDING
 * is the claim, which the server aborts for a run another worker holds or
 * that is running (PreventPendingTransitions). */
static int propose_pending(struct prefect_source *s, const char *id, const char *name,
			   const char *message, bool *accepted, struct pp_error *err)
{
	char path[128];
	struct pp_json *body = NULL, *res = NULL;
	*accepted = false;
	int rc = pending_body(name, message, &body, err);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "/flow_runs/%s/set_state", id);
	/* A resend of an applied proposal is refused as a duplicate of its
	 * transition_id, which pending_accepted reads as the claim it is. */
	rc = pp_prefect_api_call(s, "POST", path, body, PP_HTTP_RESENDABLE, &res, err);
	if (!rc)
		*accepted = pending_accepted(id, body, res);
	pp_json_free(body);
	pp_json_free(res);
	return rc;
}

/* Record a run we hold PENDING on the server: a new store run, or, when
 * the store has finished it before (rerun), that run reopened as its next
 * attempt. Reports still queued for the old attempt are dropped. Not
 * recorded, the run is handed back rather than left PENDING. */
static int record_claim(struct prefect_source *s, struct pp_store *store, struct pf_pool *p,
			const struct pp_json *fr, bool rerun, struct pp_error *err)
{
	const char *id = pp_json_get_string(fr, "id");
	int64_t when = 0;
	if (pp_prefect_time_parse(pp_json_get_string(fr, "next_scheduled_start_time"), &when) &&
	    pp_prefect_time_parse(pp_json_get_string(fr, "expected_start_time"), &when))
		when = pp_wall_ms();
	const struct pp_json *jv = pp_json_get(fr, "job_variables");
	char *vars = pp_json_is(jv, PP_JSON_OBJECT) ? pp_json_to_string(jv, PP_JSON_COMPACT) : NULL;
	int rc = 0;
	if (pp_json_is(jv, PP_JSON_OBJECT) && !vars)
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc && rerun) {
		char ev[160];
		snprintf(ev, sizeof(ev), "Prefect runs it again: claimed by %s", s->worker);
		outbox_forget(s, id);
		rc = store->ops->reopen(store, id, when, vars, ev, err);
	} else if (!rc) {
		struct pp_run_rec rec = {0};
		snprintf(rec.id, sizeof(rec.id), "%s", id);
		snprintf(rec.pool, sizeof(rec.pool), "%s", p->name);
		const char *dep_id = pp_json_get_string(fr, "deployment_id");
		const struct pp_json *dep = NULL;
		if (dep_id && pp_prefect_read_deployment(s, dep_id, &dep, err))
			pp_warn("prefect: flow run %s: %s", id, err->msg);
		const char *name = pp_json_get_string(fr, "name");
		const char *dname = dep ? pp_json_get_string(dep, "name") : NULL;
		rec.name = strdup(name ? name : id);
		rec.deployment = strdup(dname ? dname : "");
		rec.job_variables = vars;
		vars = NULL;
		rec.parameters = pp_json_to_string(pp_json_get(fr, "parameters"), PP_JSON_COMPACT);
		rec.source = strdup("prefect");
		rec.source_ref = strdup(id);
		rec.scheduled_ms = when;
		rec.state = PP_ST_SCHEDULED;
		if (!rec.name || !rec.deployment || !rec.source || !rec.source_ref)
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
		if (!rc)
			rc = store->ops->insert(store, &rec, err);
		if (rc == PP_ECONFLICT)
			rc = 0;
		pp_run_rec_free(&rec);
	}
	free(vars);
	if (rc) {
		char m[PP_ERRMSG_MAX + 64];
		struct pp_error e2 = {0};
		snprintf(m, sizeof(m), "pushpool could not record the claim: %s", err->msg);
		if (hand_back(s, id, m, &e2))
			pp_warn("prefect: flow run %s: handing back failed: %s", id, e2.msg);
		return rc;
	}
	remember_deployment(s, id, pp_json_get_string(fr, "deployment_id"));
	pp_info("prefect: flow run %s (%s) claimed for pool %s%s", id,
		pp_json_get_string(fr, "name") ? pp_json_get_string(fr, "name") : "", p->name,
		rerun ? " again, as a new attempt" : "");
	return 0;
}

/* The store's record of a flow run: none, in flight (ours already),
 * finished (*ended_ms: when; its record into *finished, the caller's to
 * free, when finished is not NULL), or unknown for now (the store failed:
 * the run is left for a later poll rather than taken for a new one). */
enum pf_known { PF_NEW, PF_LIVE, PF_FINISHED, PF_UNKNOWN };

static enum pf_known known_run(struct pp_store *store, const char *id, int64_t *ended_ms,
			       struct pp_run_rec *finished)
{
	struct pp_run_rec have;
	struct pp_error gerr = {0};
	int rc = store->ops->get(store, id, &have, NULL, NULL, &gerr);
	if (rc == PP_ENOTFOUND)
		return PF_NEW;
	if (rc) {
		pp_warn("prefect: flow run %s: reading the store: %s", id, gerr.msg);
		return PF_UNKNOWN;
	}
	enum pf_known k = pp_store_state_terminal(have.state) && have.state != PP_ST_QUARANTINED
				  ? PF_FINISHED
				  : PF_LIVE;
	*ended_ms = have.updated_ms;
	if (k == PF_FINISHED && finished)
		*finished = have;
	else
		pp_run_rec_free(&have);
	return k;
}

/* A pool's list of due runs, from a poll (its owner's to free). */
struct pf_listed {
	struct pf_pool *pool;
	struct pp_json *runs;
};

/* A run a poll listed, on its way to being claimed. */
struct pf_candidate {
	const char *id; /* in the listing */
	struct pf_pool *pool;
	enum pf_known known;
	int64_t ended;	      /* PF_FINISHED: when the store finished it */
	struct pp_json *fr;   /* the run as read */
	struct pp_json *body; /* its PENDING proposal */
};

/* A claim's call failed: remembered for the next polls, and said. */
static void claim_failed(struct prefect_source *s, struct pf_pool *p, int rc,
			 const struct pp_error *err)
{
	pp_prefect_note_failure(s, rc, err);
	pp_warn("prefect: pool %s: %s", p->name, err->msg);
}

/* Claim the runs a poll listed, every pool's together. Each is read first:
 * the list may be stale, and the server accepts PENDING over a run that
 * already ended
 * (HandleFlowTerminalStateTransitions lets a final state go to PENDING, a
 * rerun), so a claim from an old list would start a finished run again.
 * The reads of every pool's runs go out together, then the proposals for
 * the runs still SCHEDULED: two round trips a poll rather than two a run,
 * or two a pool. A retryable failure among the reads proposes nothing this
 * poll; every proposal the server accepted is recorded. Returns the runs
 * recorded. */
static size_t claim_listed(struct prefect_source *s, struct pp_store *store,
			   const struct pf_listed *lists, size_t nlists)
{
	size_t n = 0, k = 0, recorded = 0;
	for (size_t l = 0; l < nlists; l++)
		n += pp_json_is(lists[l].runs, PP_JSON_ARRAY) ? lists[l].runs->count : 0;
	struct pf_pool *p = nlists ? lists[0].pool : NULL; /* for what concerns them all */
	struct pf_candidate *cand = calloc(n ? n : 1, sizeof(*cand));
	struct pf_call *calls = calloc(n ? n : 1, sizeof(*calls));
	struct pp_error err = {0};
	if (!cand || !calls) {
		pp_fail(&err, PP_ENOMEM, "out of memory");
		claim_failed(s, p, err.code, &err);
		goto out;
	}
	for (size_t l = 0; l < nlists; l++) {
		pp_json_foreach (item, lists[l].runs) {
			const char *id = pp_json_get_string(pp_json_get(item, "flow_run"), "id");
			if (!id || strlen(id) != PP_ID_LEN - 1) {
				pp_fail(&err, PP_EINVALID,
					"work pool \"%s\": flow run without a valid id",
					lists[l].pool->name);
				claim_failed(s, lists[l].pool, err.code, &err);
				continue;
			}
			cand[k] = (struct pf_candidate){.id = id, .pool = lists[l].pool};
			struct pf_candidate *c = &cand[k];
			c->known = known_run(store, id, &c->ended, NULL);
			/* Ours already (the server lost our PENDING, e.g. a restore), or
				 * the store cannot say for now. */
			if (c->known == PF_LIVE || c->known == PF_UNKNOWN)
				continue;
			calls[k].method = "GET";
			snprintf(calls[k].path, sizeof(calls[k].path), "/flow_runs/%s", id);
			k++;
		}
	}
	if (pp_prefect_api_calls(s, calls, k, PF_CALLS_AT_ONCE)) {
		pp_fail(&err, PP_ENOMEM, "out of memory");
		claim_failed(s, p, err.code, &err);
		goto out;
	}
	bool propose = true;
	for (size_t i = 0; i < k; i++) {
		int rc = flow_run_read(calls[i].path, calls[i].rc, &calls[i].out, &calls[i].err);
		cand[i].fr = calls[i].out;
		if (rc) {
			claim_failed(s, cand[i].pool, rc, &calls[i].err);
			propose &= !pp_err_retryable(rc);
		}
	}
	char msg[200];
	snprintf(msg, sizeof(msg), "Claimed by pushpool worker %s", s->worker);
	size_t np = 0;
	for (size_t i = 0; propose && i < k; i++) {
		struct pf_candidate *c = &cand[i];
		if (!c->fr)
			continue;
		const char *cur = run_state_type(c->fr);
		if (strcmp(cur, "SCHEDULED")) {
			pp_debug("prefect: flow run %s is %s now; not claiming it", c->id, cur);
			continue;
		}
		/* A run finished here and offered again (a retry from the UI, a
		 * resume, a reschedule) is rerun as a new attempt, if its
		 * SCHEDULED state came after our end. */
		if (c->known == PF_FINISHED && run_state_ms(c->fr) <= c->ended) {
			pp_debug("prefect: flow run %s is SCHEDULED from before it ended here",
				 c->id);
			continue;
		}
		struct pp_error berr = {0};
		int rc = pending_body(NULL, msg, &c->body, &berr);
		if (rc) {
			claim_failed(s, c->pool, rc, &berr);
			continue;
		}
		/* The reads' answers are in cand: calls takes the proposals, in
		 * the order of the candidates that have a body (resendable: see
		 * propose_pending). */
		memset(&calls[np], 0, sizeof(calls[np]));
		calls[np].method = "POST";
		snprintf(calls[np].path, sizeof(calls[np].path), "/flow_runs/%s/set_state", c->id);
		calls[np].body = c->body;
		calls[np].flags = PP_HTTP_RESENDABLE;
		np++;
	}
	if (propose && pp_prefect_api_calls(s, calls, np, PF_CALLS_AT_ONCE)) {
		pp_fail(&err, PP_ENOMEM, "out of memory");
		claim_failed(s, p, err.code, &err);
		np = 0;
	}
	for (size_t i = 0, j = 0; propose && i < k && j < np; i++) {
		struct pf_candidate *c = &cand[i];
		if (!c->body)
			continue; /* not proposed */
		struct pf_call *call = &calls[j++];
		if (call->rc) {
			claim_failed(s, c->pool, call->rc, &call->err);
		} else if (pending_accepted(c->id, c->body, call->out)) {
			struct pp_error rerr = {0};
			int rc = record_claim(s, store, c->pool, c->fr, c->known == PF_FINISHED,
					      &rerr);
			if (rc)
				claim_failed(s, c->pool, rc, &rerr);
			else
				recorded++;
		}
		pp_json_free(call->out);
	}
out:
	for (size_t i = 0; cand && i < n; i++) {
		pp_json_free(cand[i].fr);
		pp_json_free(cand[i].body);
	}
	free(cand);
	free(calls);
	return recorded;
}

/* How often a poll syncs with the server: every PF_SYNC_SECONDS, as
 * Prefect's worker syncs every PREFECT_WORKER_HEARTBEAT_SECONDS (30 s by
 * default; settings/models/worker.py), and only at a poll: the first poll
 * that many seconds after the last sync. */
static int64_t pf_sync_ms(const struct prefect_source *s)
{
	double every = s->interval > 0 ? s->interval : 1;
	double polls = ceil(PF_SYNC_SECONDS / every);
	return (int64_t)(polls * every * 1000);
}

/* The heartbeat every pool sends, as the worker's sync_with_backend: its
 * interval is how often the polls sync (the server takes a worker that
 * missed a few of them for offline). */
static struct pp_json *heartbeat_body(const struct prefect_source *s)
{
	struct pp_json *hb = pp_json_new(PP_JSON_OBJECT);
	int64_t every = (pf_sync_ms(s) + 999) / 1000;
	if (hb && (pp_json_set_string(hb, "name", s->worker) ||
		   pp_json_set_int(hb, "heartbeat_interval_seconds", (long long)every))) {
		pp_json_free(hb);
		hb = NULL;
	}
	return hb;
}

/* get_scheduled_flow_runs' body: the look-ahead window, the batch, the
 * queues. */
static struct pp_json *scheduled_body(const struct prefect_source *s)
{
	struct pp_json *q = pp_json_new(PP_JSON_OBJECT);
	char before[40];
	pp_prefect_time_format(pp_wall_ms() + (int64_t)(s->lookahead * 1000), before,
			       sizeof(before));
	int rc = q ? pp_json_set_string(q, "scheduled_before", before) : PP_ENOMEM;
	if (!rc)
		rc = pp_json_set_int(q, "limit", s->batch);
	if (!rc && s->nqueues) {
		struct pp_json *names = pp_json_new(PP_JSON_ARRAY);
		for (size_t i = 0; !rc && names && i < s->nqueues; i++)
			rc = pp_json_append(names, pp_json_new_string(s->queues[i]));
		rc = rc || !names ? PP_ENOMEM : pp_json_set(q, "work_queue_names", names);
	}
	if (rc) {
		pp_json_free(q);
		q = NULL;
	}
	return q;
}

/* A poll's calls, one step after the other, each step's calls for every
 * pool together: syncing with the server when it is due (each pool's
 * heartbeat, and the pool read for its type and template), then listing
 * each synced pool's scheduled flow runs (then claimed, pool by pool). */
enum pf_poll_step { PF_SYNC, PF_LIST_RUNS, PF_POLL_STEPS };

/* Calls a step makes for a pool. */
static size_t step_calls(enum pf_poll_step step)
{
	return step == PF_SYNC ? 2 : 1;
}

/* The step's call i for pool p. */
static int step_call(enum pf_poll_step step, size_t i, const struct pf_pool *p,
		     const struct pp_json *hb, const struct pp_json *q, struct pf_call *c)
{
	memset(c, 0, sizeof(*c));
	c->flags = PP_HTTP_RESENDABLE; /* a heartbeat, reads */
	if (step == PF_SYNC && i == 0) {
		c->method = "POST";
		c->body = hb;
		return pool_path(p, "/workers/heartbeat", c->path, sizeof(c->path));
	}
	if (step == PF_SYNC) {
		c->method = "GET";
		return pool_path(p, "", c->path, sizeof(c->path));
	}
	c->method = "POST";
	c->body = q;
	return pool_path(p, "/get_scheduled_flow_runs", c->path, sizeof(c->path));
}

/* A pool's call failed: noted (Retry-After), and the poll's error when it
 * is the first, else said. */
static void pool_failed(struct prefect_source *s, const struct pf_pool *p, struct pf_call *c,
			int *first, struct pp_error *err)
{
	pp_prefect_note_failure(s, c->rc, &c->err);
	pp_error_prefix(&c->err, "pool %s: ", p->name);
	if (*first) {
		pp_warn("prefect: %s", c->err.msg);
	} else {
		*first = c->rc;
		*err = c->err;
	}
}

/* Poll every pool. A pool whose sync fails is not listed until a sync
 * succeeds; a retryable failure (the server struggling) ends the poll
 * after its step, and the sync is tried again at the next poll. Returns
 * the first failure, its pool named. */
static int poll_pools(struct prefect_source *s, struct pp_store *store, struct pp_error *err)
{
	size_t n = s->npools, most = n * 2, nlists = 0;
	struct pf_call *calls = calloc(most ? most : 1, sizeof(*calls));
	struct pf_listed *lists = calloc(n ? n : 1, sizeof(*lists));
	struct pp_json *hb = heartbeat_body(s), *q = scheduled_body(s);
	int first = 0;
	bool stop = false, full = false;
	if (!calls || !lists || !hb || !q) {
		first = pp_fail(err, PP_ENOMEM, "out of memory");
		stop = true;
	}
	int64_t now = pp_wall_ms();
	for (int step = now >= s->next_sync ? PF_SYNC : PF_LIST_RUNS; step < PF_POLL_STEPS && !stop;
	     step++) {
		size_t per = step_calls(step), k = 0;
		for (size_t i = 0; i < n && !stop; i++) {
			if (step == PF_LIST_RUNS && !s->pools[i].synced)
				continue;
			for (size_t j = 0; j < per && !stop; j++)
				if (step_call(step, j, &s->pools[i], hb, q, &calls[k++])) {
					first = first ? first
						      : pp_fail(err, PP_ENOMEM, "out of memory");
					stop = true;
				}
		}
		if (!stop && pp_prefect_api_calls(s, calls, k, PF_CALLS_AT_ONCE)) {
			first = first ? first : pp_fail(err, PP_ENOMEM, "out of memory");
			stop = true;
		}
		bool retry = false;
		for (size_t i = 0, c = 0; i < n && !stop; i++) {
			struct pf_pool *p = &s->pools[i];
			if (step == PF_LIST_RUNS && !p->synced)
				continue;
			struct pf_call *call = &calls[c];
			c += per;
			if (step == PF_SYNC) {
				struct pf_call *read = &call[1];
				if (!call->rc && !read->rc) {
					read->rc = take_pool(p, read->out, &read->err);
					read->out = NULL;
				}
				struct pf_call *failed = call->rc ? call : read->rc ? read : NULL;
				p->synced = !failed;
				if (failed) {
					pool_failed(s, p, failed, &first, err);
					retry |= pp_err_retryable(failed->rc);
				}
				pp_json_free(read->out);
			} else if (call->rc) {
				pool_failed(s, p, call, &first, err);
				retry |= pp_err_retryable(call->rc);
			} else {
				lists[nlists++] = (struct pf_listed){.pool = p, .runs = call->out};
				/* A full page: more are due than it held. */
				full |= pp_json_is(call->out, PP_JSON_ARRAY) &&
					call->out->count >= (size_t)s->batch;
				continue; /* its list is freed once claimed */
			}
			pp_json_free(call->out);
		}
		/* A full page and runs taken: a backlog (pp_source_ops.backlog). */
		if (nlists && claim_listed(s, store, lists, nlists) && full)
			s->backlog = true;
		for (size_t i = 0; i < nlists; i++)
			pp_json_free(lists[i].runs);
		nlists = 0;
		if (step == PF_SYNC && !retry)
			s->next_sync = now + pf_sync_ms(s);
		stop |= retry;
	}
	pp_json_free(hb);
	pp_json_free(q);
	free(calls);
	free(lists);
	return first;
}

/* FlowRunFilter body: runs of our pools in one of the state types, and
 * among ids (n of them, from ids[0]) when ids is not NULL. */
static int filter_body(const struct prefect_source *s, const char *types, char (*ids)[PP_ID_LEN],
		       size_t n, long offset, struct pp_json **out, struct pp_error *err)
{
	struct pp_buf text;
	pp_buf_init(&text, 1 << 20);
	int rc =
		pp_buf_printf(&text, "{\"flow_runs\":{\"state\":{\"type\":{\"any_\":[%s]}}", types);
	if (!rc && ids) {
		rc = pp_buf_puts(&text, ",\"id\":{\"any_\":[");
		for (size_t i = 0; !rc && i < n; i++)
			rc = pp_buf_printf(&text, "%s\"%s\"", i ? "," : "", ids[i]);
		if (!rc)
			rc = pp_buf_puts(&text, "]}");
	}
	if (!rc)
		rc = pp_buf_puts(&text, "},\"work_pools\":{\"name\":{\"any_\":[");
	for (size_t i = 0; !rc && i < s->npools; i++) {
		if (i)
			rc = pp_buf_putc(&text, ',');
		if (!rc)
			rc = pp_json_write_string(&text, s->pools[i].name,
						  strlen(s->pools[i].name));
	}
	if (!rc)
		rc = pp_buf_printf(&text, "]}},\"limit\":%d,\"offset\":%ld,\"sort\":\"ID_DESC\"}",
				   PF_BATCH, offset);
	if (!rc)
		rc = pp_json_parse(text.data, text.len, NULL, out, err);
	pp_buf_free(&text);
	return rc ? pp_fail(err, PP_ENOMEM, "out of memory") : 0;
}

/* One page of POST /flow_runs/filter (caller frees *runs). */
static int filter_page(struct prefect_source *s, const char *types, char (*ids)[PP_ID_LEN],
		       size_t n, long offset, struct pp_json **runs, struct pp_error *err)
{
	struct pp_json *body = NULL;
	*runs = NULL;
	int rc = filter_body(s, types, ids, n, offset, &body, err);
	if (!rc)
		rc = pp_prefect_api_call(s, "POST", "/flow_runs/filter", body, PP_HTTP_RESENDABLE,
					 runs, err);
	pp_json_free(body);
	return rc;
}

/* A claim nobody recorded (PENDING with no infrastructure for longer than
 * claim_timeout, the claimer died): taken over with a compare-and-set.
 * Prefect's set_state has no condition, and a forced SCHEDULED would take
 * back a flow that has just started (its job submitted before the claimer
 * died): RUNNING to SCHEDULED, then run twice. A PENDING under a new name
 * is accepted only from PENDING (PreventPendingTransitions lets a named
 * sub-state follow PENDING and aborts PENDING over RUNNING, CANCELLING and
 * CANCELLED), so it succeeds only while the run is still unstarted, and
 * then the run is ours: recorded and submitted under its own idempotency
 * key, so a job the dead claimer did create is adopted, not doubled. */
static int take_over(struct prefect_source *s, struct pp_store *store, const struct pp_json *run,
		     bool rerun, struct pp_error *err)
{
	const char *id = pp_json_get_string(run, "id");
	const char *pool = pp_json_get_string(run, "work_pool_name");
	struct pf_pool *p = pool ? pool_of(s, pool) : NULL;
	if (!p)
		return 0;
	const char *was = pp_json_string(pp_json_path(run, "state.name"));
	const char *name = was && !strcmp(was, "Reclaimed") ? "Reclaimed again" : "Reclaimed";
	char m[200];
	snprintf(m, sizeof(m),
		 "pushpool worker %s: claim expired with no infrastructure after %.0f s; taken "
		 "over",
		 s->worker, s->claim_timeout);
	bool accepted = false;
	int rc = propose_pending(s, id, name, m, &accepted, err);
	if (rc || !accepted) {
		if (!rc)
			pp_info("prefect: flow run %s moved on before its expired claim was taken "
				"over",
				id);
		return rc;
	}
	pp_warn("prefect: flow run %s: %s", id, m);
	return record_claim(s, store, p, run, rerun, err);
}

/* What a crash can leave on the server: a run we finished whose reports
 * died with the process (reported again from the store, unless the run
 * has moved on since), and a claim no store ever recorded (taken over once
 * claim_timeout has passed with no infrastructure). */
static int reconcile(struct prefect_source *s, struct pp_store *store, struct pp_error *err)
{
	/* The runs the store has in flight, read at once as ids: most of the
	 * server's PENDING and RUNNING runs are among them, and need nothing.
	 * Each was read whole before (known_run), a lookup a run every 30 s
	 * (issue 23). A run that starts or ends meanwhile is looked up as
	 * before, or waits for the next pass. */
	char(*ids)[PP_ID_LEN] = NULL;
	int nids = 0;
	struct pp_strmap live = {0};
	int rc = store->ops->live_ids(store, s->base.ops->name, &ids, &nids, err);
	for (int i = 0; !rc && i < nids; i++)
		if (pp_strmap_put(&live, ids[i], ids[i]))
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
	for (long offset = 0, got = PF_BATCH; !rc && got == PF_BATCH; offset += PF_BATCH) {
		struct pp_json *runs = NULL;
		rc = filter_page(s, "\"PENDING\",\"RUNNING\"", NULL, 0, offset, &runs, err);
		got = runs ? (long)runs->count : 0;
		pp_json_foreach (run, runs) {
			const char *id = pp_json_get_string(run, "id");
			const char *state_type = run_state_type(run);
			const char *pid = pp_json_get_string(run, "infrastructure_pid");
			struct pp_run_rec rec;
			struct pp_error e = {0};
			int64_t ended = 0;
			enum pf_known known = !id || pp_strmap_get(&live, id)
						      ? PF_LIVE
						      : known_run(store, id, &ended, &rec);
			if (known == PF_LIVE || known == PF_UNKNOWN)
				continue;
			if (known == PF_FINISHED) {
				const char *type = pp_prefect_state_for(rec.state);
				/* A run that moved on (a retry from the UI, a
				 * rescheduled run another worker took) must not
				 * get the old outcome. */
				bool same =
					pp_prefect_same_attempt(state_type, run_state_ms(run), pid,
								rec.infra_id, rec.updated_ms);
				if (type && same) {
					pp_info("prefect: flow run %s ended as %s here; reporting "
						"again",
						id, pp_store_state_name(rec.state));
					if ((rec.infra_id && !pid &&
					     outbox_add(s, id, rec.infra_id, NULL, NULL, NULL)) ||
					    outbox_add(s, id, NULL, type, rec.last_error,
						       rec.infra_id))
						pp_warn("prefect: report queue full");
				} else if (type) {
					pp_info("prefect: flow run %s moved on since it ended here "
						"as "
						"%s; not reporting that again",
						id, pp_store_state_name(rec.state));
				}
				pp_run_rec_free(&rec);
				if (same)
					continue;
			}
			int64_t since = run_state_ms(run);
			if (strcmp(state_type, "PENDING") || pid || !since ||
			    pp_wall_ms() - since < (int64_t)(s->claim_timeout * 1000))
				continue;
			if (take_over(s, store, run, known == PF_FINISHED, &e))
				pp_warn("prefect: flow run %s: taking over its expired claim: %s",
					id, e.msg);
		}
		pp_json_free(runs);
	}
	pp_strmap_clear(&live);
	free(ids);
	return rc;
}

/* A run of ours whose cancellation the server asked for (CANCELLING) or
 * already finished (CANCELLED: the flow's own supervisor got there first,
 * or the server's cancellation_cleanup service forced it after its
 * CANCELLING timeout): its remote job is stopped whatever the state is now;
 * the loop stops it and reports CANCELLED, which the server keeps only if
 * the run is not final yet. */
static void cancel_seen(struct prefect_source *s, struct pp_store *store, const struct pp_json *run)
{
	const char *id = pp_json_get_string(run, "id");
	struct pp_run_rec rec;
	struct pp_error e = {0};
	if (!id || store->ops->get(store, id, &rec, NULL, NULL, &e))
		return; /* not a run this store handles */
	bool ended = pp_store_state_terminal(rec.state);
	if (!ended && !rec.cancel_requested) {
		pp_info("prefect: flow run %s is %s; cancelling run %s", id, run_state_type(run),
			rec.id);
		if (store->ops->request_cancel(store, id, &e))
			pp_warn("prefect: cancelling %s: %s", id, e.msg);
		pp_run_rec_free(&rec);
		if (store->ops->get(store, id, &rec, NULL, NULL, &e))
			return;
		ended = rec.state == PP_ST_CANCELLED;
	}
	/* Nothing left running here (cancelled before submission, or ended
	 * already): a CANCELLING server only waits for the word. */
	if (ended && !strcmp(run_state_type(run), "CANCELLING") &&
	    outbox_add(s, id, NULL, "CANCELLED",
		       rec.state == PP_ST_CANCELLED ? "cancelled by pushpool"
						    : "the run had already ended",
		       rec.infra_id))
		pp_warn("prefect: report queue full");
	pp_run_rec_free(&rec);
}

/* Cancellations: every page of the CANCELLING runs of our pools, and our
 * live runs that the server shows CANCELLED already. The first page of
 * the one and every page of the other go out together; more CANCELLING
 * pages (over PF_BATCH runs being cancelled at once) follow one by one. */
static int poll_cancellations(struct prefect_source *s, struct pp_store *store,
			      struct pp_error *err)
{
	char(*ids)[PP_ID_LEN] = NULL;
	int nids = 0;
	int rc = store->ops->live_ids(store, s->base.ops->name, &ids, &nids, err);
	size_t n = (size_t)nids;
	size_t pages = 1 + (n + PF_BATCH - 1) / PF_BATCH;
	struct pf_call *calls = rc ? NULL : calloc(pages, sizeof(*calls));
	struct pp_json **bodies = rc ? NULL : calloc(pages, sizeof(*bodies));
	if (!rc && (!calls || !bodies))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	for (size_t i = 0; !rc && i < pages; i++) {
		size_t at = i ? (i - 1) * PF_BATCH : 0;
		size_t k = n - at < PF_BATCH ? n - at : PF_BATCH;
		rc = i ? filter_body(s, "\"CANCELLED\"", ids + at, k, 0, &bodies[i], err)
		       : filter_body(s, "\"CANCELLING\"", NULL, 0, 0, &bodies[i], err);
		calls[i].method = "POST";
		snprintf(calls[i].path, sizeof(calls[i].path), "/flow_runs/filter");
		calls[i].body = bodies[i];
		calls[i].flags = PP_HTTP_RESENDABLE;
	}
	if (!rc && pp_prefect_api_calls(s, calls, pages, PF_CALLS_AT_ONCE))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	bool answered = !rc;
	for (size_t i = 0; answered && i < pages; i++) {
		if (calls[i].rc && !rc) {
			rc = calls[i].rc;
			*err = calls[i].err;
		}
		pp_json_foreach (run, calls[i].out)
			cancel_seen(s, store, run);
	}
	long got = answered && calls[0].out ? (long)calls[0].out->count : 0;
	for (size_t i = 0; calls && bodies && i < pages; i++) {
		pp_json_free(calls[i].out);
		pp_json_free(bodies[i]);
	}
	free(calls);
	free(bodies);
	free(ids);
	for (long offset = PF_BATCH; !rc && got == PF_BATCH; offset += PF_BATCH) {
		struct pp_json *runs = NULL;
		rc = filter_page(s, "\"CANCELLING\"", NULL, 0, offset, &runs, err);
		got = runs ? (long)runs->count : 0;
		pp_json_foreach (run, runs)
			cancel_seen(s, store, run);
		pp_json_free(runs);
	}
	return rc;
}

static int prefect_poll(struct pp_source *src, struct pp_store *store, struct pp_error *err)
{
	struct prefect_source *s = (struct prefect_source *)src;
	/* A poll brought forward by a backlog reads the cancellations only
	 * when an interval has passed since they were last read. */
	bool cancels = !s->backlog || pp_wall_ms() >= s->next_cancel_check;
	s->backlog = false;
	if (pp_wall_ms() < s->backoff_until)
		return 0;
	/* After a failed delivery every queued report goes first, and a
	 * server that still refuses them is not polled; else the reports go
	 * on beside the poll's calls. */
	int rc = 0;
	if (s->flush_held || !s->base.multi) {
		if ((rc = outbox_flush(s, err)))
			return rc;
		s->flush_held = false;
	}
	outbox_send(s);
	rc = poll_pools(s, store, err);
	if (rc && pp_err_retryable(rc))
		return rc;
	/* The reconciliation reads the server with every report delivered,
	 * as it would read it after our own. */
	struct pp_error rerr = {0};
	if (pp_wall_ms() >= s->next_reconcile && outbox_flush(s, &rerr)) {
		hold(s, &rerr);
	} else if (pp_wall_ms() >= s->next_reconcile) {
		int rrc = reconcile(s, store, &rerr);
		if (rrc && !rc) {
			*err = rerr;
			rc = rrc;
		}
		s->next_reconcile = pp_wall_ms() + PF_RECONCILE_MS;
	}
	struct pp_error cerr = {0};
	int crc = 0;
	if (cancels) {
		crc = poll_cancellations(s, store, &cerr);
		s->next_cancel_check = pp_wall_ms() + (int64_t)(s->interval * 1000);
	}
	if (crc && !rc) {
		*err = cerr;
		rc = crc;
	}
	if (!s->base.multi) {
		struct pp_error ferr = {0};
		if (outbox_flush(s, &ferr) && !rc) {
			*err = ferr;
			rc = ferr.code;
		}
		return rc;
	}
	outbox_send(s);
	return rc;
}

/* p's resolved template, made again unless the one made last still
 * stands: made from the template as read, and every block it resolved
 * still the one the cache serves (PF_CACHE_MS), so that a run sees a block
 * changed upstream exactly when it would, resolving for itself. */
static int pool_resolved(struct prefect_source *s, struct pf_pool *p, struct pp_error *err)
{
	if (p->resolved && pp_mono_ms() < p->resolved_until)
		return 0;
	pp_json_free(p->resolved);
	p->resolved = NULL;
	struct pp_json *t = NULL;
	int rc = 0;
	if (p->tmpl && !(t = pp_json_clone(p->tmpl)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc && !t)
		rc = pp_template_default(p->type, &t, err);
	struct pf_fetch f = {s, INT64_MAX};
	if (!rc)
		rc = pp_prefect_resolve_blocks(t, pp_prefect_fetch_block, &f, err);
	/* Block references among the variables' defaults stand for the
	 * blocks' data when the values are validated, as the server
	 * validates them (api/validation.py, _resolve_default_reference). */
	if (!rc)
		rc = pp_prefect_resolve_documents(pp_json_get(t, "variables"),
						  pp_prefect_fetch_document, &f, err);
	if (rc) {
		pp_json_free(t);
		return rc;
	}
	p->resolved = t;
	p->resolved_version = pp_source_template_version();
	p->resolved_until = f.fresh_until;
	return 0;
}

static int prefect_job_inputs(struct pp_source *src, const struct pp_run_rec *rec,
			      const struct pp_json **tmpl, uint64_t *tmpl_version,
			      struct pp_json **deployment_vars, struct pp_error *err)
{
	struct prefect_source *s = (struct prefect_source *)src;
	struct pf_pool *p = pool_of(s, rec->pool);
	*tmpl = NULL;
	*tmpl_version = 0;
	*deployment_vars = NULL;
	if (!p)
		return pp_fail(err, PP_EINVALID, "pool \"%s\" is not served from Prefect",
			       rec->pool);
	const char *ref = rec->source_ref ? rec->source_ref : rec->id;
	const struct pf_run_deployment *known = pp_strmap_get(&s->run_deployments, ref);
	struct pp_json *fr = NULL;
	int rc = 0;
	if (!known)
		rc = read_flow_run(s, ref, &fr, err);
	const char *dep_id = known ? known->deployment
			     : rc  ? NULL
				   : pp_json_get_string(fr, "deployment_id");
	const struct pp_json *dep = NULL;
	if (dep_id && (rc = pp_prefect_read_deployment(s, dep_id, &dep, err)) == 0) {
		const struct pp_json *v = pp_json_get(dep, "job_variables");
		if (pp_json_is(v, PP_JSON_OBJECT) && !(*deployment_vars = pp_json_clone(v)))
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
	}
	pp_json_free(fr);
	/* Never read yet (the first sync failed): read the pool now. A pool
	 * with no template on the server is read again by the syncs, every
	 * 30 s, as any other; each of its runs read it, and resolved the
	 * type's default anew, before (issue 23). */
	if (!rc && !p->read)
		rc = read_pool(s, p, err);
	if (!rc)
		rc = pool_resolved(s, p, err);
	/* The deployment's values too, as the variables' defaults above. */
	struct pf_fetch f = {s, INT64_MAX};
	if (!rc && *deployment_vars)
		rc = pp_prefect_resolve_documents(*deployment_vars, pp_prefect_fetch_document, &f,
						  err);
	if (rc) {
		pp_prefect_note_failure(s, rc, err);
		pp_json_free(*deployment_vars);
		*deployment_vars = NULL;
		return rc;
	}
	*tmpl = p->resolved;
	*tmpl_version = p->resolved_version;
	return 0;
}

/* What BaseJobConfiguration.from_template_and_values does once the values
 * are applied (workers/base.py): block document references ($ref, then
 * {{ prefect.blocks }} placeholders that job variables brought in), then
 * {{ prefect.variables }}. */
static int prefect_resolve_job(struct pp_source *src, const struct pp_run_rec *rec,
			       struct pp_json *job, struct pp_error *err)
{
	struct pf_fetch f = {(struct prefect_source *)src, INT64_MAX};
	int rc = pp_prefect_resolve_documents(job, pp_prefect_fetch_document, &f, err);
	if (!rc)
		rc = pp_prefect_resolve_blocks(job, pp_prefect_fetch_block, &f, err);
	if (!rc)
		rc = pp_prefect_resolve_variables(job, pp_prefect_fetch_variable, &f, err);
	if (rc) {
		pp_prefect_note_failure(f.s, rc, err);
		pp_error_prefix(err, "job_configuration: ");
	}
	return rc;
}

static double prefect_interval(const struct pp_source *src)
{
	return ((const struct prefect_source *)src)->interval;
}

static bool prefect_backlog(const struct pp_source *src)
{
	return ((const struct prefect_source *)src)->backlog;
}

static void prefect_close(struct pp_source *src)
{
	struct prefect_source *s = (struct prefect_source *)src;
	if (!s)
		return;
	struct pp_error err = {0};
	if (s->outbox && outbox_flush(s, &err))
		pp_warn("prefect: %s; undelivered at exit", err.msg);
	while (s->outbox) {
		struct pf_report *r = s->outbox;
		s->outbox = r->next;
		report_free(r);
	}
	while (s->cache) {
		struct pf_cached *c = s->cache;
		s->cache = c->next;
		pp_json_free(c->value);
		free(c);
	}
	run_deployments_clear(s);
	pp_http_multi_free(s->http);
	for (size_t i = 0; i < s->npools; i++) {
		pp_json_free(s->pools[i].tmpl);
		pp_json_free(s->pools[i].resolved);
	}
	free(s->pools);
	for (size_t i = 0; i < s->nqueues; i++)
		free(s->queues[i]);
	free(s->queues);
	free(s->api_url);
	free(s->api_key);
	free(s->auth_basic);
	free(s->csrf_token);
	free(s);
}

/* The auth string of a self-hosted server (api_auth_string_file, else
 * $PREFECT_API_AUTH_STRING, as Prefect's client takes it) as the base64 a
 * Basic Authorization header carries; both registered as secrets. */
static int read_auth_string(const struct pp_prefect_conf *pc, char **basic, struct pp_error *err)
{
	char *raw = NULL;
	const char *env = getenv("PREFECT_API_AUTH_STRING");
	*basic = NULL;
	int rc = 0;
	if (pc->api_auth_string_file && *pc->api_auth_string_file)
		rc = pp_file_read_secret(pc->api_auth_string_file, "Prefect API auth string",
					 PP_EINVALID, &raw, err);
	else if (env && *env && !(raw = strdup(env)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (rc || !raw)
		return rc;
	pp_secret_register(raw);
	size_t n = strlen(raw);
	*basic = malloc(4 * ((n + 2) / 3) + 1);
	if (!*basic) {
		free(raw);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	EVP_EncodeBlock((unsigned char *)*basic, (const unsigned char *)raw, (int)n);
	pp_secret_register(*basic);
	free(raw);
	return 0;
}

/* Split a comma list into trimmed, non-empty names. */
static int split_list(const char *list, char ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	for (const char *p = list; p && *p;) {
		size_t len = strcspn(p, ",");
		const char *a = p;
		size_t m = len;
		while (m && isspace((unsigned char)*a)) {
			a++;
			m--;
		}
		while (m && isspace((unsigned char)a[m - 1]))
			m--;
		if (m) {
			char **v = realloc(*out, (*n + 1) * sizeof(*v));
			if (!v)
				return PP_ENOMEM;
			*out = v;
			if (!(v[*n] = strndup(a, m)))
				return PP_ENOMEM;
			(*n)++;
		}
		p += len;
		if (*p)
			p++;
	}
	return 0;
}

static int prefect_open(const struct pp_config *cfg, struct pp_source **out, struct pp_error *err)
{
	*out = NULL;
	const struct pp_prefect_conf *pc = &cfg->prefect;
	if (!pc->enabled)
		return 0;
	struct prefect_source *s = calloc(1, sizeof(*s));
	if (!s)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	s->base.ops = &pp_source_prefect;
	s->outbox_tail = &s->outbox;
	s->lookahead = pc->lookahead_seconds;
	s->interval = pc->poll_interval;
	s->claim_timeout = pc->claim_timeout;
	s->batch =
		cfg->dispatcher.max_in_flight < PF_BATCH ? cfg->dispatcher.max_in_flight : PF_BATCH;
	if (s->batch < 1)
		s->batch = 1;
	char host[64] = "host";
	gethostname(host, sizeof(host) - 1);
	snprintf(s->worker, sizeof(s->worker), "pushpool-%.60s-%d", host, (int)getpid());
	int rc = 0;
	size_t n = strlen(pc->api_url ? pc->api_url : "");
	while (n && pc->api_url[n - 1] == '/')
		n--;
	if (!n)
		rc = pp_fail(err, PP_EINVALID, "[source \"prefect\"] needs api_url");
	else if (!(s->api_url = strndup(pc->api_url, n)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	/* Like Prefect's clients: the configured key, else PREFECT_API_KEY. */
	const char *env_key = getenv("PREFECT_API_KEY");
	if (!rc && pc->api_key && *pc->api_key)
		rc = (s->api_key = strdup(pc->api_key)) ? 0
							: pp_fail(err, PP_ENOMEM, "out of memory");
	else if (!rc && pc->api_key_file && *pc->api_key_file)
		rc = pp_file_read_secret(pc->api_key_file, "Prefect API key", PP_EINVALID,
					 &s->api_key, err);
	else if (!rc && env_key && *env_key)
		rc = (s->api_key = strdup(env_key)) ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc && s->api_key)
		pp_secret_register(s->api_key);
	if (!rc)
		rc = read_auth_string(pc, &s->auth_basic, err);
	/* Prefect Cloud has no CSRF tokens (its client never asks there). */
	s->csrf_off = s->api_url && strstr(s->api_url, "api.prefect.cloud") != NULL;
	char **names = NULL;
	size_t nnames = 0;
	if (!rc && split_list(pc->work_queues, &s->queues, &s->nqueues))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc && split_list(pc->pools, &names, &nnames))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	size_t want = nnames ? nnames : cfg->npools;
	if (!rc && want && !(s->pools = calloc(want, sizeof(*s->pools))))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	for (size_t i = 0; !rc && i < want; i++) {
		const struct pp_pool_conf *pool =
			nnames ? pp_config_pool(cfg, names[i]) : &cfg->pools[i];
		if (!pool) {
			rc = pp_fail(err, PP_EINVALID,
				     "[source \"prefect\"] pools: no [pool \"%s\"]", names[i]);
			break;
		}
		struct pf_pool *p = &s->pools[s->npools++];
		snprintf(p->name, sizeof(p->name), "%s", pool->name);
		snprintf(p->type, sizeof(p->type), "%s", pool->type ? pool->type : "");
		if (!*p->type)
			rc = pp_fail(err, PP_EINVALID, "pool \"%s\": unknown type \"%s\"",
				     pool->name, pool->type);
	}
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	if (!rc && !s->npools)
		rc = pp_fail(err, PP_EINVALID, "[source \"prefect\"]: no pools to serve");
	if (rc) {
		prefect_close(&s->base);
		return rc;
	}
	pp_info("prefect: serving %zu work pool(s) from %s as worker %s", s->npools, s->api_url,
		s->worker);
	*out = &s->base;
	return 0;
}

const struct pp_source_ops pp_source_prefect = {
	.name = "prefect",
	.open = prefect_open,
	.close = prefect_close,
	.poll = prefect_poll,
	.report = prefect_report,
	.flush = prefect_flush,
	.job_inputs = prefect_job_inputs,
	.resolve_job = prefect_resolve_job,
	.interval = prefect_interval,
	.backlog = prefect_backlog,
};
