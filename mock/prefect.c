/* Mock Prefect server API under /prefect/api: the subset a worker uses
 * (work pools and queues, deployments, flows, flow runs with orchestrated
 * set_state, worker heartbeats, block documents), in Prefect's own shapes
 * (src/prefect/server/schemas). The whole state is one JSON tree, so it can
 * be written to PUSHPOOL_MOCK_PREFECT_STATE after every change and read back
 * by a restarted mock. PUSHPOOL_MOCK_PREFECT_KEY, when set, is the API key
 * every request must carry as a Bearer token. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lib/clock.h"
#include "lib/time.h"
#include "mock/mock.h"

#define PF_JSON	    "application/json"
#define PF_LIST_MAX 1000

struct pf_flow;

struct pf_state {
	struct pp_json *db; /* {work_pools, work_queues, ...}: one array per table */
	char *state_path;   /* NULL: memory only */
	char *api_key;	    /* NULL: no auth (a local Prefect server) */
	/* PREFECT_SERVER_API_AUTH_STRING: Basic auth on every call but the
	 * health checks (server.py, token_validation); NULL: off. */
	char *auth_string;
	/* PREFECT_SERVER_CSRF_PROTECTION_ENABLED (middleware.py,
	 * CsrfMiddleware): change requests carry a token from GET /csrf-token.
	 * The tokens live in memory, so a restarted mock has forgotten them. */
	bool csrf;
	double csrf_ttl;	     /* seconds, PREFECT_SERVER_CSRF_TOKEN_EXPIRATION */
	struct pp_json *csrf_tokens; /* {client: {token, expires (wall ms)}} */
	struct pp_mock *m;
	bool simulate;	       /* jobs run simulated flows (/prefect/control/flows) */
	char default_plan[16]; /* their end when the job does not name one */
	struct pf_flow *flows; /* under the mock lock */
	/* POST /prefect/control/barrier, on API actions ("POST
	 * flow_runs/set_state"), passed in pf_admit, outside the mock lock */
	struct pp_mock_barrier bar;
	struct pf_state *next; /* pf_instances */
};

static const char *const pf_tables[] = {
	"work_pools",	   "work_queues", "deployments", "flows", "flow_runs",
	"block_documents", "workers",	  "variables",	 NULL,
};

static struct pp_json *table(struct pf_state *st, const char *name)
{
	return pp_json_get(st->db, name);
}

static int db_fresh(struct pp_json **out)
{
	struct pp_json *db = pp_json_new(PP_JSON_OBJECT);
	for (size_t i = 0; db && pf_tables[i]; i++)
		if (pp_json_set(db, pf_tables[i], pp_json_new(PP_JSON_ARRAY))) {
			pp_json_free(db);
			db = NULL;
		}
	*out = db;
	return db ? 0 : PP_ENOMEM;
}

static void iso_now(char *out, size_t n)
{
	char ts[PP_TIME_LEN];

	pp_time_format(pp_wall_ms(), true, ts);
	snprintf(out, n, "%s", ts);
}

/* ISO 8601 timestamps as Prefect writes them (fractional seconds, "Z" or
 * "+00:00"), to seconds since the epoch; -1 when unreadable. */
static double iso_parse(const char *s)
{
	int64_t ms;

	return s && pp_time_parse(s, PP_TIME_ZONE_OPTIONAL, &ms) == 0 ? (double)ms / 1000 : -1;
}

static void new_uuid(struct pp_mock *m, char out[37])
{
	char h[33];
	pp_mock_random_hex(m, h, 32);
	snprintf(out, 37, "%.8s-%.4s-4%.3s-a%.3s-%.12s", h, h + 8, h + 13, h + 17, h + 20);
}

static struct pp_json *find_by(struct pp_json *arr, const char *key, const char *value)
{
	pp_json_foreach (it, arr) {
		const char *v = pp_json_get_string(it, key);
		if (v && !strcmp(v, value))
			return it;
	}
	return NULL;
}

/* Whole-state snapshot through a rename: a mock killed at any moment leaves
 * either the old or the new file. */
static void persist(struct pf_state *st)
{
	if (!st->state_path)
		return;
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", st->state_path);
	char *text = pp_json_to_string(st->db, PP_JSON_COMPACT);
	FILE *f = text ? fopen(tmp, "w") : NULL;
	bool ok = f && fputs(text, f) >= 0;
	if (f && fclose(f))
		ok = false;
	if (ok && rename(tmp, st->state_path))
		ok = false;
	if (!ok)
		fprintf(stderr, "mock prefect: cannot write %s: %s\n", st->state_path,
			strerror(errno));
	free(text);
}

/* ---- answers ---- */

static void pf_detail(struct pp_mock_resp *resp, int status, const char *reason, const char *detail)
{
	if (reason && status != 404)
		resp->reject_reason = reason;
	pp_mock_resp_printf(resp, status, PF_JSON, "{\"detail\":");
	pp_json_write_string(&resp->body, detail, strlen(detail));
	pp_buf_putc(&resp->body, '}');
}

/* FastAPI's request-validation answer (Prefect's 422). */
static void pf_invalid(struct pp_mock_resp *resp, const char *loc, const char *msg)
{
	resp->reject_reason = "prefect.validation";
	pp_mock_resp_printf(resp, 422, PF_JSON,
			    "{\"exception_message\":\"Invalid request received.\","
			    "\"exception_detail\":[{\"loc\":[\"body\",\"%s\"],\"msg\":",
			    loc);
	pp_json_write_string(&resp->body, msg, strlen(msg));
	pp_buf_puts(&resp->body, ",\"type\":\"value_error\"}],\"request_body\":null}");
}

static void pf_json(struct pp_mock_resp *resp, int status, const struct pp_json *j)
{
	pp_mock_resp_json(resp, status, PF_JSON, j);
}

static void pf_no_content(struct pp_mock_resp *resp)
{
	pp_mock_resp_printf(resp, 204, PF_JSON, "%s", "");
}

/* ---- states ---- */

static const char *state_name_for(const char *type)
{
	static const char *const names[][2] = {
		{"SCHEDULED", "Scheduled"}, {"PENDING", "Pending"}, {"RUNNING", "Running"},
		{"COMPLETED", "Completed"}, {"FAILED", "Failed"},   {"CANCELLED", "Cancelled"},
		{"CRASHED", "Crashed"},	    {"PAUSED", "Paused"},   {"CANCELLING", "Cancelling"},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(names[i][0], type))
			return names[i][1];
	return NULL;
}

/* A record's string field, "" when absent: records built while memory ran
 * out may lack fields, and comparisons must not fault on them. */
static const char *field(const struct pp_json *o, const char *key)
{
	const char *s = pp_json_get_string(o, key);
	return s ? s : "";
}

static bool state_terminal(const char *type)
{
	return type && (!strcmp(type, "COMPLETED") || !strcmp(type, "FAILED") ||
			!strcmp(type, "CANCELLED") || !strcmp(type, "CRASHED"));
}

/* A state as the server stores it. details: the proposal's state_details
 * (transition_id, scheduled_time, pause_key...), kept as sent; a SCHEDULED
 * state without a scheduled_time is due now, as Prefect's Scheduled(). */
static struct pp_json *state_new(struct pp_mock *m, const char *run_id, const char *type,
				 const char *name, const char *message,
				 const struct pp_json *details_in)
{
	char id[37], ts[40];
	new_uuid(m, id);
	iso_now(ts, sizeof(ts));
	struct pp_json *s = pp_json_new(PP_JSON_OBJECT);
	struct pp_json *details = pp_json_is(details_in, PP_JSON_OBJECT)
					  ? pp_json_clone(details_in)
					  : pp_json_new(PP_JSON_OBJECT);
	if (!s || !details) {
		pp_json_free(s);
		pp_json_free(details);
		return NULL;
	}
	pp_json_set_string(s, "id", id);
	pp_json_set_string(s, "type", type);
	pp_json_set_string(s, "name", name && *name ? name : state_name_for(type));
	pp_json_set_string(s, "timestamp", ts);
	pp_json_set(s, "message",
		    message ? pp_json_new_string(message) : pp_json_new(PP_JSON_NULL));
	pp_json_set_string(details, "flow_run_id", run_id);
	if (!strcmp(type, "SCHEDULED") && !pp_json_get_string(details, "scheduled_time"))
		pp_json_set_string(details, "scheduled_time", ts);
	pp_json_set(s, "state_details", details);
	return s;
}

/* The run fields a committed state moves, as the global policy's universal
 * transforms do (server/orchestration/global_policy.py): SetStartTime on the
 * first RUNNING, SetEndTime (cleared when a terminal run leaves for a
 * non-final state, set once on entering a final one), IncrementFlowRunCount
 * (every RUNNING but a resume's) with RemoveResumingIndicator, and
 * SetNextScheduledStartTime. HandleResumingPausedFlows.after_transition
 * marks a run leaving PAUSED as resuming. */
static void run_set_state(struct pp_json *run, struct pp_json *state)
{
	char ts[40];
	const char *type = field(state, "type");
	char from[16];
	struct pp_json *policy = pp_json_get(run, "empirical_policy");
	bool resuming = pp_json_get_bool(policy, "resuming", false);
	bool running = !strcmp(type, "RUNNING");
	snprintf(from, sizeof(from), "%s", field(run, "state_type"));
	iso_now(ts, sizeof(ts));
	pp_json_set_string(run, "state_type", type);
	pp_json_set_string(run, "state_name", pp_json_get_string(state, "name"));
	pp_json_set_string(run, "state_id", pp_json_get_string(state, "id"));
	pp_json_set_string(run, "updated", ts);
	if (running && !pp_json_get_string(run, "start_time"))
		pp_json_set_string(run, "start_time", ts);
	if (state_terminal(from) && !state_terminal(type))
		pp_json_set(run, "end_time", pp_json_new(PP_JSON_NULL));
	if (state_terminal(type) && !pp_json_get_string(run, "end_time")) {
		if (!pp_json_get_string(run, "start_time"))
			pp_json_set_string(run, "start_time", ts);
		pp_json_set_string(run, "end_time", ts);
	}
	pp_json_set_int(run, "run_count",
			pp_json_get_int(run, "run_count", 0) + (running && !resuming));
	if (policy && resuming && (running || state_terminal(type)))
		pp_json_set_bool(policy, "resuming", false);
	if (policy && !strcmp(from, "PAUSED") && strcmp(type, "PAUSED"))
		pp_json_set_bool(policy, "resuming", true);
	if (!strcmp(from, "SCHEDULED"))
		pp_json_set(run, "next_scheduled_start_time", pp_json_new(PP_JSON_NULL));
	if (!strcmp(type, "SCHEDULED")) {
		const char *when =
			pp_json_string(pp_json_path(state, "state_details.scheduled_time"));
		pp_json_set_string(run, "next_scheduled_start_time", when ? when : ts);
	}
	pp_json_set(run, "state", state);
}

/* ---- resources ---- */

static struct pp_json *queue_new(struct pp_mock *m, struct pp_json *pool, const char *name)
{
	char id[37], ts[40];
	new_uuid(m, id);
	iso_now(ts, sizeof(ts));
	struct pp_json *q = pp_json_new(PP_JSON_OBJECT);
	if (!q)
		return NULL;
	pp_json_set_string(q, "id", id);
	pp_json_set_string(q, "created", ts);
	pp_json_set_string(q, "name", name);
	pp_json_set(q, "description", pp_json_new_string(""));
	pp_json_set_bool(q, "is_paused", false);
	pp_json_set(q, "concurrency_limit", pp_json_new(PP_JSON_NULL));
	pp_json_set_int(q, "priority", 1);
	pp_json_set_string(q, "work_pool_id", pp_json_get_string(pool, "id"));
	pp_json_set_string(q, "work_pool_name", pp_json_get_string(pool, "name"));
	pp_json_set(q, "last_polled", pp_json_new(PP_JSON_NULL));
	pp_json_set_string(q, "status", "NOT_READY");
	return q;
}

static struct pp_json *queue_find(struct pf_state *st, const char *pool, const char *name)
{
	if (!pool || !name)
		return NULL;
	pp_json_foreach (q, table(st, "work_queues")) {
		if (!strcmp(field(q, "work_pool_name"), pool) && !strcmp(field(q, "name"), name))
			return q;
	}
	return NULL;
}

static void work_pool_create(struct pp_mock *m, struct pf_state *st, const struct pp_json *body,
			     struct pp_mock_resp *resp)
{
	const char *name = pp_json_get_string(body, "name");
	const char *type = pp_json_get_string(body, "type");
	if (!name || !*name || strchr(name, '/') || strchr(name, '%')) {
		pf_invalid(resp, "name", "name must be a non-empty string without '/' or '%'");
		return;
	}
	if (find_by(table(st, "work_pools"), "name", name)) {
		pf_detail(resp, 409, "prefect.conflict",
			  "A work pool with this name already exists.");
		return;
	}
	const struct pp_json *tmpl = pp_json_get(body, "base_job_template");
	if (tmpl &&
	    (!pp_json_is(tmpl, PP_JSON_OBJECT) ||
	     (tmpl->count && (!pp_json_is(pp_json_get(tmpl, "job_configuration"), PP_JSON_OBJECT) ||
			      !pp_json_is(pp_json_get(tmpl, "variables"), PP_JSON_OBJECT))))) {
		pf_invalid(
			resp, "base_job_template",
			"The `base_job_template` must contain both a `job_configuration` key and "
			"a `variables` key.");
		return;
	}
	char id[37], ts[40];
	new_uuid(m, id);
	iso_now(ts, sizeof(ts));
	struct pp_json *p = pp_json_new(PP_JSON_OBJECT);
	if (!p)
		return;
	pp_json_set_string(p, "id", id);
	pp_json_set_string(p, "created", ts);
	pp_json_set_string(p, "name", name);
	pp_json_set(p, "description",
		    pp_json_new_string(pp_json_get_string(body, "description")
					       ? pp_json_get_string(body, "description")
					       : ""));
	pp_json_set_string(p, "type", type && *type ? type : "prefect-agent");
	pp_json_set(p, "base_job_template",
		    tmpl ? pp_json_clone(tmpl) : pp_json_new(PP_JSON_OBJECT));
	pp_json_set_bool(p, "is_paused", pp_json_get_bool(body, "is_paused", false));
	const struct pp_json *limit = pp_json_get(body, "concurrency_limit");
	pp_json_set(p, "concurrency_limit",
		    limit ? pp_json_clone(limit) : pp_json_new(PP_JSON_NULL));
	pp_json_set_string(p, "status", "NOT_READY");
	struct pp_json *q = queue_new(m, p, "default");
	pp_json_set_string(p, "default_queue_id", q ? pp_json_get_string(q, "id") : "");
	pp_json_append(table(st, "work_queues"), q);
	pp_json_append(table(st, "work_pools"), p);
	pf_json(resp, 201, p);
}

static void queue_create(struct pp_mock *m, struct pf_state *st, struct pp_json *pool,
			 const struct pp_json *body, struct pp_mock_resp *resp)
{
	const char *name = pp_json_get_string(body, "name");
	if (!name || !*name) {
		pf_invalid(resp, "name", "field required");
		return;
	}
	if (queue_find(st, pp_json_get_string(pool, "name"), name)) {
		pf_detail(resp, 409, "prefect.conflict",
			  "A work queue with this name already exists.");
		return;
	}
	struct pp_json *q = queue_new(m, pool, name);
	if (!q)
		return;
	pp_json_set_int(q, "priority", pp_json_get_int(body, "priority", 1));
	pp_json_append(table(st, "work_queues"), q);
	pf_json(resp, 201, q);
}

static void flow_create(struct pp_mock *m, struct pf_state *st, const struct pp_json *body,
			struct pp_mock_resp *resp)
{
	const char *name = pp_json_get_string(body, "name");
	if (!name || !*name) {
		pf_invalid(resp, "name", "field required");
		return;
	}
	/* Prefect answers 200 with the existing flow of the same name. */
	struct pp_json *f = find_by(table(st, "flows"), "name", name);
	if (f) {
		pf_json(resp, 200, f);
		return;
	}
	char id[37], ts[40];
	new_uuid(m, id);
	iso_now(ts, sizeof(ts));
	if (!(f = pp_json_new(PP_JSON_OBJECT)))
		return;
	pp_json_set_string(f, "id", id);
	pp_json_set_string(f, "created", ts);
	pp_json_set_string(f, "name", name);
	pp_json_set(f, "tags", pp_json_new(PP_JSON_ARRAY));
	pp_json_append(table(st, "flows"), f);
	pf_json(resp, 201, f);
}

static void deployment_create(struct pp_mock *m, struct pf_state *st, const struct pp_json *body,
			      struct pp_mock_resp *resp)
{
	const char *name = pp_json_get_string(body, "name");
	const char *flow_id = pp_json_get_string(body, "flow_id");
	const char *pool_name = pp_json_get_string(body, "work_pool_name");
	const char *queue_name = pp_json_get_string(body, "work_queue_name");
	const struct pp_json *vars = pp_json_get(body, "job_variables");
	if (!name || !*name) {
		pf_invalid(resp, "name", "field required");
		return;
	}
	if (!flow_id || !find_by(table(st, "flows"), "id", flow_id)) {
		pf_detail(resp, 404, NULL, "Flow not found.");
		return;
	}
	if (vars && !pp_json_is(vars, PP_JSON_OBJECT)) {
		pf_invalid(resp, "job_variables", "value is not a valid dict");
		return;
	}
	struct pp_json *pool =
		pool_name ? find_by(table(st, "work_pools"), "name", pool_name) : NULL;
	if (pool_name && !pool) {
		pf_detail(resp, 404, NULL, "Work pool not found.");
		return;
	}
	if (pool && queue_name && !queue_find(st, pool_name, queue_name)) {
		struct pp_json *q = queue_new(m, pool, queue_name);
		pp_json_append(table(st, "work_queues"), q);
	}
	char id[37], ts[40];
	new_uuid(m, id);
	iso_now(ts, sizeof(ts));
	struct pp_json *d = pp_json_new(PP_JSON_OBJECT);
	if (!d)
		return;
	pp_json_set_string(d, "id", id);
	pp_json_set_string(d, "created", ts);
	pp_json_set_string(d, "name", name);
	pp_json_set_string(d, "flow_id", flow_id);
	pp_json_set(d, "work_pool_name",
		    pool_name ? pp_json_new_string(pool_name) : pp_json_new(PP_JSON_NULL));
	pp_json_set_string(d, "work_queue_name", queue_name ? queue_name : "default");
	pp_json_set(d, "job_variables", vars ? pp_json_clone(vars) : pp_json_new(PP_JSON_OBJECT));
	const struct pp_json *params = pp_json_get(body, "parameters");
	pp_json_set(d, "parameters", params ? pp_json_clone(params) : pp_json_new(PP_JSON_OBJECT));
	pp_json_set_bool(d, "paused", false);
	pp_json_append(table(st, "deployments"), d);
	pf_json(resp, 201, d);
}

static void flow_run_create(struct pp_mock *m, struct pf_state *st, struct pp_json *dep,
			    const struct pp_json *body, struct pp_mock_resp *resp)
{
	const struct pp_json *vars = pp_json_get(body, "job_variables");
	if (vars && !pp_json_is(vars, PP_JSON_OBJECT)) {
		pf_invalid(resp, "job_variables", "value is not a valid dict");
		return;
	}
	char id[37], ts[40], name[64];
	new_uuid(m, id);
	iso_now(ts, sizeof(ts));
	const char *rname = pp_json_get_string(body, "name");
	snprintf(name, sizeof(name), "mock-run-%.8s", id);
	struct pp_json *r = pp_json_new(PP_JSON_OBJECT);
	if (!r)
		return;
	const char *pool = pp_json_get_string(dep, "work_pool_name");
	const char *queue = pp_json_get_string(dep, "work_queue_name");
	struct pp_json *q = pool ? queue_find(st, pool, queue) : NULL;
	pp_json_set_string(r, "id", id);
	pp_json_set_string(r, "created", ts);
	pp_json_set_string(r, "updated", ts);
	pp_json_set_string(r, "name", rname && *rname ? rname : name);
	pp_json_set_string(r, "flow_id", pp_json_get_string(dep, "flow_id"));
	pp_json_set_string(r, "deployment_id", pp_json_get_string(dep, "id"));
	pp_json_set(r, "work_pool_name",
		    pool ? pp_json_new_string(pool) : pp_json_new(PP_JSON_NULL));
	pp_json_set_string(r, "work_queue_name", queue);
	pp_json_set(r, "work_queue_id",
		    q ? pp_json_new_string(pp_json_get_string(q, "id"))
		      : pp_json_new(PP_JSON_NULL));
	const struct pp_json *params = pp_json_get(body, "parameters");
	pp_json_set(r, "parameters",
		    params ? pp_json_clone(params) : pp_json_clone(pp_json_get(dep, "parameters")));
	pp_json_set(r, "job_variables", vars ? pp_json_clone(vars) : pp_json_new(PP_JSON_OBJECT));
	pp_json_set(r, "infrastructure_pid", pp_json_new(PP_JSON_NULL));
	pp_json_set_int(r, "run_count", 0);
	/* FlowRunPolicy: retries and retry_delay are what RetryFailedFlows
	 * reads; a client creating the run may set them. */
	const struct pp_json *pol = pp_json_get(body, "empirical_policy");
	struct pp_json *policy =
		pp_json_is(pol, PP_JSON_OBJECT) ? pp_json_clone(pol) : pp_json_new(PP_JSON_OBJECT);
	if (policy && !pp_json_get(policy, "retries"))
		pp_json_set(policy, "retries", pp_json_new(PP_JSON_NULL));
	if (policy && !pp_json_get(policy, "retry_delay"))
		pp_json_set(policy, "retry_delay", pp_json_new(PP_JSON_NULL));
	if (policy)
		pp_json_set_bool(policy, "resuming", false);
	pp_json_set(r, "empirical_policy", policy);
	/* "state" in the body may carry a scheduled time in the future:
	 * {"type":"SCHEDULED","state_details":{"scheduled_time":...}}. */
	const char *when = pp_json_string(pp_json_path(body, "state.state_details.scheduled_time"));
	pp_json_set_string(r, "expected_start_time", when ? when : ts);
	pp_json_set_string(r, "next_scheduled_start_time", when ? when : ts);
	struct pp_json *state = state_new(m, id, "SCHEDULED", NULL, NULL, NULL);
	if (state)
		pp_json_set_string(pp_json_get(state, "state_details"), "scheduled_time",
				   when ? when : ts);
	run_set_state(r, state);
	pp_json_append(table(st, "flow_runs"), r);
	pp_mock_count(m, "prefect.flow_runs_created", NULL);
	pf_json(resp, 201, r);
}

/* ---- orchestration ----
 * A proposal goes through Prefect's rules (orchestrate), is committed
 * (commit) and answered (set_state). The rules are
 * src/prefect/server/orchestration/core_policy.py, CoreFlowPolicy in its
 * priority order, for the transitions a worker and a flow can cause; a
 * forced proposal goes through MinimalFlowPolicy instead. Result data is
 * not modelled, so the rules about persisted results never fire. */
enum pf_verdict { PF_ACCEPT, PF_REJECT, PF_ABORT, PF_WAIT };
static const char *const verdict_names[] = {"ACCEPT", "REJECT", "ABORT", "WAIT"};

struct pf_decision {
	enum pf_verdict verdict;
	/* A REJECT that commits a state of the server's choosing instead
	 * (AwaitingRetry, Cancelled); NULL: the run keeps its state. */
	const char *commit_type, *commit_name;
	double commit_delay; /* its scheduled_time, seconds from now */
	double wait_seconds;
	char reason[200];
};

static void decide(struct pf_decision *d, enum pf_verdict v, const char *reason)
{
	d->verdict = v;
	snprintf(d->reason, sizeof(d->reason), "%s", reason);
}

static bool type_is(const char *type, const char *a)
{
	return type && !strcmp(type, a);
}

/* BypassCancellingFlowRunsWithNoInfra: SCHEDULED (without infrastructure)
 * or a suspended PAUSED run asked to cancel has nothing to tear down. */
static bool bypass_cancelling(const struct pp_json *run, const char *type, struct pf_decision *d)
{
	const char *cur = field(run, "state_type");
	const struct pp_json *cs = pp_json_get(run, "state");
	if (!type_is(type, "CANCELLING"))
		return false;
	if ((type_is(cur, "SCHEDULED") && !pp_json_get_string(run, "infrastructure_pid")) ||
	    type_is(field(cs, "name"), "Resuming"))
		decide(d, PF_REJECT, "Scheduled flow run has no infrastructure to terminate.");
	else if (type_is(cur, "PAUSED") &&
		 pp_json_get_bool(pp_json_get(cs, "state_details"), "pause_reschedule", false))
		decide(d, PF_REJECT, "Suspended flow run has no infrastructure to terminate.");
	else
		return false;
	d->commit_type = "CANCELLED";
	d->commit_name = "Cancelled";
	return true;
}

/* Pool concurrency: Prefect holds runs back in get_scheduled_flow_runs
 * rather than in a rule; the mock also makes PENDING wait at the limit so
 * a worker that claims anyway is told to wait. */
static bool pool_full(struct pf_state *st, const struct pp_json *run, struct pf_decision *d)
{
	const char *pool_name = pp_json_get_string(run, "work_pool_name");
	struct pp_json *pool =
		pool_name ? find_by(table(st, "work_pools"), "name", pool_name) : NULL;
	long long limit = pp_json_get_int(pool, "concurrency_limit", -1);
	long long busy = 0;
	pp_json_foreach (r, table(st, "flow_runs")) {
		const char *t = field(r, "state_type");
		const char *p = pp_json_get_string(r, "work_pool_name");
		if (p && pool_name && !strcmp(p, pool_name) &&
		    (type_is(t, "PENDING") || type_is(t, "RUNNING")))
			busy++;
	}
	if (limit < 0 || busy < limit)
		return false;
	d->verdict = PF_WAIT;
	d->wait_seconds = 1;
	snprintf(d->reason, sizeof(d->reason), "Work pool %s is at its concurrency limit of %lld.",
		 pool_name, limit);
	return true;
}

static void orchestrate(struct pf_state *st, const struct pp_json *run,
			const struct pp_json *proposed, bool force, struct pf_decision *d)
{
	const char *type = field(proposed, "type");
	const char *name = pp_json_get_string(proposed, "name");
	const char *cur = field(run, "state_type");
	const struct pp_json *cs = pp_json_get(run, "state");
	const struct pp_json *policy = pp_json_get(run, "empirical_policy");

	memset(d, 0, sizeof(*d));
	if (!name || !*name)
		name = state_name_for(type);
	if (force) {
		/* MinimalFlowPolicy: PreventResultDataLoss (no result data
		 * here), BypassCancellingFlowRunsWithNoInfra. */
		bypass_cancelling(run, type, d);
		return;
	}
	/* PreventDuplicateTransitions: a retried request whose transition
	 * was committed gets the current state back. */
	const char *tid_cur = pp_json_string(pp_json_path(cs, "state_details.transition_id"));
	const char *tid_new = pp_json_string(pp_json_path(proposed, "state_details.transition_id"));
	if (tid_cur && tid_new && !strcmp(tid_cur, tid_new)) {
		decide(d, PF_REJECT, "This run has already made this state transition.");
		return;
	}
	/* HandleFlowTerminalStateTransitions: a terminal run may move to any
	 * other state but CRASHED, CANCELLING and PAUSED (so terminal ->
	 * other terminal, and PENDING for a rerun, are accepted), and is
	 * rescheduled only with a deployment. */
	if (state_terminal(cur)) {
		if (type_is(type, "CANCELLING") || type_is(type, "PAUSED") ||
		    type_is(type, "CRASHED")) {
			snprintf(d->reason, sizeof(d->reason),
				 "Run is already in terminal state %s.", cur);
			d->verdict = PF_ABORT;
			return;
		}
		if (type_is(type, "SCHEDULED") && !pp_json_get_string(run, "deployment_id")) {
			decide(d, PF_ABORT,
			       "Cannot reschedule a run without an associated deployment.");
			return;
		}
	}
	/* EnforceCancellingToCancelledTransition. */
	if (type_is(cur, "CANCELLING") && !type_is(type, "CANCELLED")) {
		decide(d, PF_REJECT,
		       "Cannot transition flows that are cancelling to a state other than "
		       "Cancelled.");
		return;
	}
	if (bypass_cancelling(run, type, d))
		return;
	/* PreventPendingTransitions: what keeps two workers from both
	 * submitting a run; a named PENDING sub-state may follow PENDING. */
	if (type_is(type, "PENDING") &&
	    (type_is(cur, "PENDING") || type_is(cur, "CANCELLING") || type_is(cur, "RUNNING") ||
	     type_is(cur, "CANCELLED")) &&
	    !(type_is(cur, "PENDING") && strcmp(field(cs, "name"), name) &&
	      strcmp(name, "Pending"))) {
		snprintf(d->reason, sizeof(d->reason),
			 "This run is in a %s state and cannot transition to a PENDING state.",
			 cur);
		d->verdict = PF_ABORT;
		return;
	}
	if (type_is(type, "PENDING") && pool_full(st, run, d))
		return;
	/* HandlePausingFlows: only a running flow pauses, once per key. */
	if (type_is(type, "PAUSED")) {
		if (!type_is(cur, "RUNNING")) {
			decide(d, PF_REJECT, "Cannot pause flows that are not currently running.");
			return;
		}
		const char *key = pp_json_string(pp_json_path(proposed, "state_details.pause_key"));
		pp_json_foreach (k, pp_json_get(policy, "pause_keys")) {
			if (key && pp_json_string(k) && !strcmp(pp_json_string(k), key)) {
				decide(d, PF_REJECT, "This pause has already fired.");
				return;
			}
		}
	}
	/* HandleResumingPausedFlows: a paused run leaves only for RUNNING,
	 * SCHEDULED or a final state. */
	if (type_is(cur, "PAUSED") && !type_is(type, "RUNNING") && !type_is(type, "SCHEDULED") &&
	    !state_terminal(type)) {
		snprintf(d->reason, sizeof(d->reason),
			 "This run cannot transition to the %s state from the PAUSED state.", type);
		d->verdict = PF_REJECT;
		return;
	}
	/* RetryFailedFlows: RUNNING -> FAILED while run_count <= retries
	 * becomes AwaitingRetry, scheduled retry_delay seconds on. */
	const struct pp_json *retries = pp_json_get(policy, "retries");
	if (type_is(cur, "RUNNING") && type_is(type, "FAILED") &&
	    pp_json_is(retries, PP_JSON_NUMBER) &&
	    pp_json_get_int(run, "run_count", 0) <= (long long)retries->num) {
		decide(d, PF_REJECT, "Retrying");
		d->commit_type = "SCHEDULED";
		d->commit_name = "AwaitingRetry";
		const struct pp_json *delay = pp_json_get(policy, "retry_delay");
		d->commit_delay = pp_json_is(delay, PP_JSON_NUMBER) ? delay->num : 0;
	}
}

/* Commit what the decision says; the state the run is in afterwards, for
 * the answer (caller frees), or NULL after an ABORT (Prefect answers no
 * state then). */
static struct pp_json *commit(struct pp_mock *m, struct pp_json *run,
			      const struct pp_json *proposed, const struct pf_decision *d)
{
	const char *run_id = field(run, "id");
	struct pp_json *s = NULL;
	if (d->verdict == PF_ABORT)
		return NULL;
	if (d->verdict == PF_ACCEPT) {
		s = state_new(m, run_id, field(proposed, "type"),
			      pp_json_get_string(proposed, "name"),
			      pp_json_get_string(proposed, "message"),
			      pp_json_get(proposed, "state_details"));
		if (s && type_is(field(proposed, "type"), "PAUSED")) {
			/* HandlePausingFlows.after_transition: the key has fired. */
			struct pp_json *policy = pp_json_get(run, "empirical_policy");
			const char *key =
				pp_json_string(pp_json_path(s, "state_details.pause_key"));
			if (policy && !pp_json_get(policy, "pause_keys"))
				pp_json_set(policy, "pause_keys", pp_json_new(PP_JSON_ARRAY));
			if (policy && key)
				pp_json_append(pp_json_get(policy, "pause_keys"),
					       pp_json_new_string(key));
		}
	} else if (d->verdict == PF_REJECT && d->commit_type) {
		struct pp_json *details = pp_json_new(PP_JSON_OBJECT);
		char when[40];
		pp_time_format(pp_wall_ms() + (int64_t)(d->commit_delay * 1000), true, when);
		if (details && type_is(d->commit_type, "SCHEDULED"))
			pp_json_set_string(details, "scheduled_time", when);
		s = state_new(m, run_id, d->commit_type, d->commit_name,
			      pp_json_get_string(proposed, "message"), details);
		pp_json_free(details);
	}
	if (!s)
		return pp_json_clone(pp_json_get(run, "state"));
	/* run_set_state owns s from here: copy it for the answer first. */
	struct pp_json *answer = pp_json_clone(s);
	run_set_state(run, s);
	return answer;
}

/* One proposal through the rules and into the run; counted under counter
 * as "TYPE:VERDICT". */
static enum pf_verdict transition(struct pp_mock *m, struct pf_state *st, struct pp_json *run,
				  const struct pp_json *proposed, bool force, const char *counter,
				  struct pf_decision *d, struct pp_json **state_out)
{
	char key[96];
	orchestrate(st, run, proposed, force, d);
	snprintf(key, sizeof(key), "%s:%s", field(proposed, "type"), verdict_names[d->verdict]);
	pp_mock_count(m, counter, key);
	if (d->verdict == PF_ACCEPT && type_is(field(proposed, "type"), "PENDING"))
		pp_mock_count(m, "prefect.pending_accepted", field(run, "id"));
	struct pp_json *s = commit(m, run, proposed, d);
	if (state_out)
		*state_out = s;
	else
		pp_json_free(s);
	return d->verdict;
}

/* POST /flow_runs/{id}/set_state: OrchestrationResult, 201 when accepted
 * (server/api/flow_runs.py set_flow_run_state). */
static void set_state(struct pp_mock *m, struct pf_state *st, struct pp_json *run,
		      const struct pp_json *body, struct pp_mock_resp *resp)
{
	const struct pp_json *proposed = pp_json_get(body, "state");
	const char *type = pp_json_get_string(proposed, "type");
	if (!type || !state_name_for(type)) {
		pf_invalid(resp, "state.type", "value is not a valid enumeration member");
		return;
	}
	struct pf_decision d;
	struct pp_json *state = NULL;
	transition(m, st, run, proposed, pp_json_get_bool(body, "force", false),
		   "prefect.set_state", &d, &state);
	static const char *const detail_types[] = {"accept_details", "reject_details",
						   "abort_details", "wait_details"};
	struct pp_json *res = pp_json_new(PP_JSON_OBJECT), *details = pp_json_new(PP_JSON_OBJECT);
	if (!res || !details) {
		pp_json_free(res);
		pp_json_free(details);
		pp_json_free(state);
		return;
	}
	pp_json_set(res, "state", state ? state : pp_json_new(PP_JSON_NULL));
	pp_json_set_string(details, "type", detail_types[d.verdict]);
	if (d.verdict != PF_ACCEPT)
		pp_json_set_string(details, "reason", d.reason);
	if (d.wait_seconds > 0)
		pp_json_set(details, "delay_seconds", pp_json_new_number(d.wait_seconds));
	pp_json_set_string(res, "status", verdict_names[d.verdict]);
	pp_json_set(res, "details", details);
	pf_json(resp, d.verdict == PF_ACCEPT ? 201 : 200, res);
	pp_json_free(res);
}

/* ---- simulated flows ----
 * Each mock job started with PREFECT__FLOW_RUN_ID in its environment runs a
 * flow that reports its own states through this API, as
 * `prefect flow-run execute` does (src/prefect/flow_engine.py): RUNNING when
 * the container starts, then its end. The job's variable
 * PUSHPOOL_MOCK_FLOW picks the end (or /prefect/control/flows sets the
 * default): completed; failed (FAILED, retried in process while the server
 * answers AwaitingRetry, as FlowRunEngine.handle_exception does); fail_once
 * (fails, then completes on the retry); cancelled; paused; silent (reports
 * nothing). The process exits 0 in all of these, whatever the flow's end. A
 * container that exits non-zero (PUSHPOOL_MOCK_FAIL, an OOM kill) is killed
 * after RUNNING and reports no end; one that never starts reports nothing;
 * a held one (PUSHPOOL_MOCK_HOLD) never ends by itself, so it reports
 * RUNNING and no end; one whose run went CANCELLING was torn down and
 * reports nothing more.
 * Flows move with the mock's timeline, whenever the API is called. */
struct pf_flow {
	char run_id[40];
	double created; /* mock clock at the job's start */
	enum pp_mock_outcome outcome;
	char plan[16];
	int stage; /* 0: not started, 1: RUNNING reported, 2: over */
	/* The job's PREFECT_API_AUTH_STRING: against a server with an auth
	 * string, a flow without it gets 401 at its first call and never
	 * reports (prefect flow-run execute crashes). */
	char *auth_string;
	struct pf_flow *next;
};

static const char *const flow_plans[] = {"completed", "failed", "fail_once", "cancelled",
					 "paused",    "silent", NULL};

static bool plan_known(const char *p)
{
	for (size_t i = 0; p && flow_plans[i]; i++)
		if (!strcmp(p, flow_plans[i]))
			return true;
	return false;
}

/* Propose a state the way the flow's engine does; the verdict. */
static enum pf_verdict flow_propose(struct pp_mock *m, struct pf_state *st, struct pp_json *run,
				    const char *type, const char *name)
{
	struct pp_json *p = pp_json_new(PP_JSON_OBJECT), *details = pp_json_new(PP_JSON_OBJECT);
	char tid[37];
	struct pf_decision d;
	if (!p || !details) {
		pp_json_free(p);
		pp_json_free(details);
		return PF_ABORT;
	}
	/* Prefect's client sends a fresh transition_id with every proposal
	 * (client/orchestration/_flow_runs/client.py set_flow_run_state). */
	new_uuid(m, tid);
	pp_json_set_string(details, "transition_id", tid);
	pp_json_set_string(p, "type", type);
	if (name)
		pp_json_set_string(p, "name", name);
	pp_json_set_string(p, "message", "reported by the simulated flow");
	pp_json_set(p, "state_details", details);
	enum pf_verdict v = transition(m, st, run, p, false, "prefect.flow_set_state", &d, NULL);
	pp_json_free(p);
	return v;
}

static void flow_finish(struct pp_mock *m, struct pf_state *st, struct pf_flow *f,
			struct pp_json *run)
{
	if (!strcmp(f->plan, "completed")) {
		flow_propose(m, st, run, "COMPLETED", NULL);
	} else if (!strcmp(f->plan, "failed") || !strcmp(f->plan, "fail_once")) {
		/* A bound on the loop in case a policy retries forever. */
		for (int attempt = 0; attempt < 100; attempt++) {
			flow_propose(m, st, run, "FAILED", NULL);
			if (!type_is(field(run, "state_type"), "SCHEDULED") ||
			    flow_propose(m, st, run, "RUNNING", NULL) != PF_ACCEPT)
				break;
			if (!strcmp(f->plan, "fail_once")) {
				flow_propose(m, st, run, "COMPLETED", NULL);
				break;
			}
		}
	} else if (!strcmp(f->plan, "cancelled")) {
		flow_propose(m, st, run, "CANCELLED", NULL);
	} else if (!strcmp(f->plan, "paused")) {
		flow_propose(m, st, run, "PAUSED", NULL);
	}
}

/* Bring every simulated flow up to the mock's clock. */
static void flows_advance(struct pp_mock *m, struct pf_state *st)
{
	double now = pp_mock_clock(m);
	bool changed = false;
	for (struct pf_flow *f = st->flows; f; f = f->next) {
		if (f->stage == 2)
			continue;
		if (f->outcome == PP_MOCK_CRASH) {
			f->stage = 2;
			continue;
		}
		/* The run is looked up only when its flow has something to
		 * report: a search of the runs for every flow at every request
		 * made the mock slower than the dispatchers it served. */
		enum pp_mock_phase ph = pp_mock_job_phase(m, f->outcome, f->created, now);
		if (ph == PP_MOCK_PROVISIONING || (f->stage == 1 && ph != PP_MOCK_FINISHED))
			continue;
		struct pp_json *run = find_by(table(st, "flow_runs"), "id", f->run_id);
		if (!run) {
			f->stage = 2;
			continue;
		}
		if (st->auth_string && ph != PP_MOCK_PROVISIONING &&
		    (!f->auth_string || strcmp(f->auth_string, st->auth_string))) {
			pp_mock_count(m, "prefect.flows_unauthorized", f->run_id);
			f->stage = 2;
			continue;
		}
		if (f->stage == 0 && ph != PP_MOCK_PROVISIONING) {
			changed = true;
			f->stage = !strcmp(f->plan, "silent") || flow_propose(m, st, run, "RUNNING",
									      NULL) != PF_ACCEPT
					   ? 2
					   : 1;
		}
		if (f->stage == 1 && ph == PP_MOCK_FINISHED) {
			const char *cur = field(run, "state_type");
			changed = true;
			f->stage = 2;
			if (f->outcome == PP_MOCK_SUCCEED && !type_is(cur, "CANCELLING") &&
			    !type_is(cur, "CANCELLED"))
				flow_finish(m, st, f, run);
		}
	}
	if (changed)
		persist(st);
}

/* The value of environment variable name anywhere in j: an entry
 * {"name": N, "value": V}, a member N: "V", or a string "N=V". */
static const char *env_lookup(const struct pp_json *j, const char *name)
{
	size_t n = strlen(name);
	if (!j)
		return NULL;
	if (j->type == PP_JSON_STRING) {
		if (j->key && !strcmp(j->key, name))
			return j->str;
		if (!strncmp(j->str, name, n) && j->str[n] == '=')
			return j->str + n + 1;
		return NULL;
	}
	if (j->type == PP_JSON_OBJECT && type_is(pp_json_get_string(j, "name"), name) &&
	    pp_json_get_string(j, "value"))
		return pp_json_get_string(j, "value");
	pp_json_foreach (it, j) {
		const char *v = env_lookup(it, name);
		if (v)
			return v;
	}
	return NULL;
}

/* The Prefect states of every mock (tests may run several in a process):
 * the cloud modules find theirs by the mock it belongs to. */
static pthread_mutex_t pf_instances_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pf_state *pf_instances;

void pp_mock_prefect_job_started(struct pp_mock *m, const struct pp_json *spec,
				 const struct pp_json *overrides, enum pp_mock_outcome outcome,
				 double created)
{
	const char *id = env_lookup(overrides, "PREFECT__FLOW_RUN_ID");
	const char *plan = env_lookup(overrides, "PUSHPOOL_MOCK_FLOW");
	const char *auth = env_lookup(overrides, "PREFECT_API_AUTH_STRING");
	struct pf_state *st;
	if (!id)
		id = env_lookup(spec, "PREFECT__FLOW_RUN_ID");
	if (!plan)
		plan = env_lookup(spec, "PUSHPOOL_MOCK_FLOW");
	if (!auth)
		auth = env_lookup(spec, "PREFECT_API_AUTH_STRING");
	if (!id)
		return;
	pthread_mutex_lock(&pf_instances_lock);
	for (st = pf_instances; st && st->m != m; st = st->next)
		;
	pthread_mutex_unlock(&pf_instances_lock);
	if (!st || !st->simulate)
		return;
	struct pf_flow *f = calloc(1, sizeof(*f));
	if (!f)
		return;
	snprintf(f->run_id, sizeof(f->run_id), "%s", id);
	snprintf(f->plan, sizeof(f->plan), "%s", plan_known(plan) ? plan : st->default_plan);
	f->auth_string = auth ? strdup(auth) : NULL;
	f->created = created;
	f->outcome = outcome;
	f->next = st->flows;
	st->flows = f;
	pp_mock_count(m, "prefect.flows_started", f->plan);
}

static void flows_free(struct pf_state *st)
{
	while (st->flows) {
		struct pf_flow *f = st->flows;
		st->flows = f->next;
		free(f->auth_string);
		free(f);
	}
}

static void flow_run_patch(struct pp_mock *m, struct pp_json *run, const struct pp_json *body,
			   struct pp_mock_resp *resp)
{
	static const char *const fields[] = {"infrastructure_pid", "name", "job_variables",
					     "parameters", NULL};
	for (size_t i = 0; fields[i]; i++) {
		const struct pp_json *v = pp_json_get(body, fields[i]);
		if (!v)
			continue;
		if (!strcmp(fields[i], "infrastructure_pid")) {
			const char *old = pp_json_get_string(run, "infrastructure_pid");
			const char *now = pp_json_string(v);
			/* A second, different infrastructure for one run is the
			 * duplicate the tests look for. */
			if (now && (!old || strcmp(old, now)))
				pp_mock_count(m, "prefect.infrastructure_pid_set",
					      pp_json_get_string(run, "id"));
		}
		pp_json_set(run, fields[i], pp_json_clone(v));
	}
	pf_no_content(resp);
}

static bool any_match(const struct pp_json *filter, const char *value)
{
	const struct pp_json *any = pp_json_get(filter, "any_");
	if (!any)
		return true;
	if (!value)
		return false;
	pp_json_foreach (it, any) {
		const char *s = pp_json_string(it);
		if (s && !strcmp(s, value))
			return true;
	}
	return false;
}

/* Subset of FlowRunFilter and WorkPoolFilter: flow_runs.{id,state.type,
 * state.name,deployment_id,work_queue_name}.any_, work_pools.name.any_. */
static bool run_matches(const struct pp_json *run, const struct pp_json *body)
{
	const struct pp_json *fr = pp_json_get(body, "flow_runs");
	return any_match(pp_json_get(fr, "id"), pp_json_get_string(run, "id")) &&
	       any_match(pp_json_path(fr, "state.type"), pp_json_get_string(run, "state_type")) &&
	       any_match(pp_json_path(fr, "state.name"), pp_json_get_string(run, "state_name")) &&
	       any_match(pp_json_get(fr, "deployment_id"),
			 pp_json_get_string(run, "deployment_id")) &&
	       any_match(pp_json_get(fr, "work_queue_name"),
			 pp_json_get_string(run, "work_queue_name")) &&
	       any_match(pp_json_path(body, "work_pools.name"),
			 pp_json_get_string(run, "work_pool_name"));
}

static void flow_runs_filter(struct pf_state *st, const struct pp_json *body, bool count_only,
			     struct pp_mock_resp *resp)
{
	long long limit = pp_json_get_int(body, "limit", 200);
	long long offset = pp_json_get_int(body, "offset", 0);
	if (limit < 0 || limit > PF_LIST_MAX) {
		pf_invalid(resp, "limit", "Invalid limit: must be between 0 and 1000.");
		return;
	}
	struct pp_json *out = pp_json_new(PP_JSON_ARRAY);
	long long seen = 0;
	pp_json_foreach (r, table(st, "flow_runs")) {
		if (!run_matches(r, body))
			continue;
		if (!count_only && (seen++ < offset || (long long)out->count >= limit))
			continue;
		if (count_only)
			seen++;
		else
			pp_json_append(out, pp_json_clone(r));
	}
	if (count_only)
		pp_mock_resp_printf(resp, 200, PF_JSON, "%lld", seen);
	else
		pf_json(resp, 200, out);
	pp_json_free(out);
}

/* A run a listing may return: oldest first, then in the table's order. */
struct pf_due {
	struct pp_json *run;
	double t;
	size_t i;
};

static int due_cmp(const void *a, const void *b)
{
	const struct pf_due *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* WorkerFlowRunResponse list: the pool's SCHEDULED runs due before
 * scheduled_before, oldest first, from the named queues (all when absent),
 * none while the pool or a queue is paused. */
static void scheduled_runs(struct pf_state *st, struct pp_json *pool, const struct pp_json *body,
			   struct pp_mock_resp *resp)
{
	const char *pool_name = field(pool, "name");
	const struct pp_json *queues = pp_json_get(body, "work_queue_names");
	double before = iso_parse(pp_json_get_string(body, "scheduled_before"));
	double after = iso_parse(pp_json_get_string(body, "scheduled_after"));
	long long limit = pp_json_get_int(body, "limit", PF_LIST_MAX);
	char ts[40];
	iso_now(ts, sizeof(ts));
	pp_json_set_string(pool, "status", "READY");
	struct pp_json *out = pp_json_new(PP_JSON_ARRAY);
	size_t n = table(st, "flow_runs")->count, k = 0;
	struct pf_due *due = calloc(n ? n : 1, sizeof(*due));
	if (!out || !due) {
		pp_json_free(out);
		free(due);
		return;
	}
	/* The eligible runs, then sorted: one pass over the table whatever the
	 * limit (a selection pass per run listed made a page of 500 take half
	 * a second). */
	pp_json_foreach (r, table(st, "flow_runs")) {
		if (pp_json_get_bool(pool, "is_paused", false))
			break;
		const char *p = pp_json_get_string(r, "work_pool_name");
		const char *qn = pp_json_get_string(r, "work_queue_name");
		if (!p || strcmp(p, pool_name) || strcmp(field(r, "state_type"), "SCHEDULED"))
			continue;
		if (queues) {
			bool listed = false;
			pp_json_foreach (q, queues) {
				const char *s = pp_json_string(q);
				if (s && qn && !strcmp(s, qn))
					listed = true;
			}
			if (!listed)
				continue;
		}
		struct pp_json *q = queue_find(st, pool_name, qn ? qn : "default");
		if (q && pp_json_get_bool(q, "is_paused", false))
			continue;
		double t = iso_parse(pp_json_get_string(r, "next_scheduled_start_time"));
		if ((before >= 0 && t > before) || (after >= 0 && t < after))
			continue;
		due[k] = (struct pf_due){.run = r, .t = t, .i = k};
		k++;
	}
	qsort(due, k, sizeof(*due), due_cmp);
	for (size_t i = 0; i < k && (long long)i < limit; i++) {
		struct pp_json *item = pp_json_new(PP_JSON_OBJECT);
		struct pp_json *q = queue_find(st, pool_name,
					       pp_json_get_string(due[i].run, "work_queue_name"));
		pp_json_set_string(item, "work_pool_id", pp_json_get_string(pool, "id"));
		pp_json_set(item, "work_queue_id",
			    q ? pp_json_new_string(pp_json_get_string(q, "id"))
			      : pp_json_new(PP_JSON_NULL));
		pp_json_set(item, "flow_run", pp_json_clone(due[i].run));
		pp_json_append(out, item);
	}
	free(due);
	pp_json_foreach (q, table(st, "work_queues")) {
		if (!strcmp(field(q, "work_pool_name"), pool_name)) {
			pp_json_set_string(q, "last_polled", ts);
			pp_json_set_string(q, "status", "READY");
		}
	}
	pf_json(resp, 200, out);
	pp_json_free(out);
}

static void heartbeat(struct pp_mock *m, struct pf_state *st, struct pp_json *pool,
		      const struct pp_json *body, struct pp_mock_resp *resp)
{
	const char *name = pp_json_get_string(body, "name");
	if (!name || !*name) {
		pf_invalid(resp, "name", "field required");
		return;
	}
	char ts[40];
	iso_now(ts, sizeof(ts));
	struct pp_json *w = NULL;
	pp_json_foreach (it, table(st, "workers")) {
		if (!strcmp(field(it, "name"), name) &&
		    !strcmp(field(it, "work_pool_id"), field(pool, "id")))
			w = it;
	}
	if (!w) {
		char id[37];
		new_uuid(m, id);
		if (!(w = pp_json_new(PP_JSON_OBJECT)))
			return;
		pp_json_set_string(w, "id", id);
		pp_json_set_string(w, "created", ts);
		pp_json_set_string(w, "name", name);
		pp_json_set_string(w, "work_pool_id", pp_json_get_string(pool, "id"));
		pp_json_append(table(st, "workers"), w);
	}
	pp_json_set_string(w, "last_heartbeat_time", ts);
	pp_json_set_int(w, "heartbeat_interval_seconds",
			pp_json_get_int(body, "heartbeat_interval_seconds", 30));
	pp_json_set_string(w, "status", "ONLINE");
	pp_mock_count(m, "prefect.heartbeats", name);
	pf_no_content(resp);
}

static void workers_list(struct pf_state *st, struct pp_json *pool, struct pp_mock_resp *resp)
{
	struct pp_json *out = pp_json_new(PP_JSON_ARRAY);
	pp_json_foreach (w, table(st, "workers")) {
		if (!strcmp(field(w, "work_pool_id"), field(pool, "id")))
			pp_json_append(out, pp_json_clone(w));
	}
	pf_json(resp, 200, out);
	pp_json_free(out);
}

/* SecretStr fields come back masked unless include_secrets=true. */
static bool secret_field(const char *key)
{
	static const char *const words[] = {"secret", "password", "token", "key", NULL};
	for (size_t i = 0; key && words[i]; i++)
		if (strstr(key, words[i]) && strcmp(key, "aws_access_key_id"))
			return true;
	return false;
}

static void mask_secrets(struct pp_json *data)
{
	pp_json_foreach (it, data) {
		if (it->type == PP_JSON_STRING && secret_field(it->key)) {
			char *mask = strdup("**********");
			pp_json_own_str(it, mask, mask ? strlen(mask) : 0);
		} else if (it->type == PP_JSON_OBJECT) {
			mask_secrets(it);
		}
	}
}

static void block_create(struct pp_mock *m, struct pf_state *st, const struct pp_json *body,
			 struct pp_mock_resp *resp)
{
	const char *name = pp_json_get_string(body, "name");
	const char *slug = pp_json_get_string(body, "block_type_slug");
	if (!slug)
		slug = pp_json_string(pp_json_path(body, "block_type.slug"));
	const struct pp_json *data = pp_json_get(body, "data");
	if (!name || !*name || !slug || !*slug || !pp_json_is(data, PP_JSON_OBJECT)) {
		pf_invalid(resp, "data", "name, block_type_slug and a data object are required");
		return;
	}
	pp_json_foreach (b, table(st, "block_documents")) {
		if (!strcmp(field(b, "name"), name) &&
		    !strcmp(pp_json_string(pp_json_path(b, "block_type.slug")), slug)) {
			pf_detail(resp, 409, "prefect.conflict", "Block already exists");
			return;
		}
	}
	char id[37], tid[37], ts[40];
	new_uuid(m, id);
	new_uuid(m, tid);
	iso_now(ts, sizeof(ts));
	struct pp_json *b = pp_json_new(PP_JSON_OBJECT), *bt = pp_json_new(PP_JSON_OBJECT);
	if (!b || !bt) {
		pp_json_free(b);
		pp_json_free(bt);
		return;
	}
	pp_json_set_string(bt, "id", tid);
	pp_json_set_string(bt, "slug", slug);
	pp_json_set_string(bt, "name", slug);
	pp_json_set_string(b, "id", id);
	pp_json_set_string(b, "created", ts);
	pp_json_set_string(b, "name", name);
	pp_json_set(b, "data", pp_json_clone(data));
	pp_json_set_string(b, "block_type_id", tid);
	pp_json_set_string(b, "block_type_name", slug);
	pp_json_set(b, "block_type", bt);
	pp_json_set_bool(b, "is_anonymous", false);
	pp_json_append(table(st, "block_documents"), b);
	struct pp_json *shown = pp_json_clone(b);
	mask_secrets(pp_json_get(shown, "data"));
	pf_json(resp, 201, shown);
	pp_json_free(shown);
}

static void block_read(struct pp_mock *m, struct pf_state *st, const char *slug, const char *name,
		       const struct pp_mock_req *req, struct pp_mock_resp *resp)
{
	pp_json_foreach (b, table(st, "block_documents")) {
		if (strcmp(field(b, "name"), name) ||
		    strcmp(pp_json_string(pp_json_path(b, "block_type.slug")), slug))
			continue;
		struct pp_json *shown = pp_json_clone(b);
		const char *inc = pp_mock_arg(req, "include_secrets");
		if (!inc || strcmp(inc, "true"))
			mask_secrets(pp_json_get(shown, "data"));
		pp_mock_count(m, "prefect.block_reads", slug);
		pf_json(resp, 200, shown);
		pp_json_free(shown);
		return;
	}
	pf_detail(resp, 404, NULL, "Block document not found");
}

/* ---- routing ---- */

/* "Basic B64" decoding to exactly the auth string. */
static bool basic_ok(const char *want, const char *h)
{
	if (!h || strncmp(h, "Basic ", 6))
		return false;
	const char *b64 = h + 6;
	size_t n = strlen(b64);
	if (!n || n % 4 || n > 4096)
		return false;
	unsigned char out[3072 + 1];
	int got = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
	if (got < 0)
		return false;
	for (size_t i = n; i > 0 && b64[i - 1] == '='; i--)
		got--;
	return (size_t)got == strlen(want) && !memcmp(out, want, (size_t)got);
}

static bool authorized(struct pf_state *st, const struct pp_mock_req *req)
{
	const char *h = pp_mock_header(req, "Authorization");
	if (st->auth_string) {
		/* The health probes are open (server.py: health_check_paths). */
		if (!strcmp(req->method, "GET") && (!strcmp(req->path, "/prefect/api/health") ||
						    !strcmp(req->path, "/prefect/api/ready")))
			return true;
		return basic_ok(st->auth_string, h);
	}
	if (!st->api_key)
		return true;
	return h && !strncmp(h, "Bearer ", 7) && !strcmp(h + 7, st->api_key);
}

/* CsrfMiddleware: a POST, PUT, PATCH or DELETE needs the token the client
 * was given, unexpired; NULL when it passes, else the refusal's detail. */
static const char *csrf_refusal(struct pf_state *st, const struct pp_mock_req *req)
{
	static const char *const change[] = {"POST", "PUT", "PATCH", "DELETE", NULL};
	bool needs = false;
	for (size_t i = 0; change[i]; i++)
		needs = needs || !strcmp(req->method, change[i]);
	if (!st->csrf || !needs)
		return NULL;
	const char *token = pp_mock_header(req, "Prefect-Csrf-Token");
	const char *client = pp_mock_header(req, "Prefect-Csrf-Client");
	if (!token)
		return "Missing CSRF token.";
	if (!client)
		return "Missing client identifier.";
	const struct pp_json *t = pp_json_get(st->csrf_tokens, client);
	if (!t ||
	    strcmp(pp_json_get_string(t, "token") ? pp_json_get_string(t, "token") : "", token) ||
	    pp_json_get_int(t, "expires", 0) <= pp_wall_ms())
		return "Invalid CSRF token or client identifier.";
	return NULL;
}

/* Label "METHOD first[/last]" for the log, then the API key and faults. */
static bool pf_admit(struct pp_mock_call *c)
{
	const char *rest = c->req->path + strlen("/prefect/api/");
	const char *last = strrchr(rest, '/');
	size_t first = strcspn(rest, "/");
	bool deep = last && rest[first] && strchr(rest + first + 1, '/');
	int retry_after = 0;

	snprintf(c->resp->action, sizeof(c->resp->action), "%s %.*s%s%s", c->req->method,
		 (int)first, rest, deep ? "/" : "", deep ? last + 1 : "");
	struct pf_state *st = c->state;
	if (!authorized(st, c->req)) {
		if (st->auth_string) {
			c->resp->reject_reason = "prefect.unauthorized";
			pp_mock_resp_printf(c->resp, 401, PF_JSON,
					    "{\"exception_message\":\"Unauthorized\"}");
		} else {
			pf_detail(c->resp, 401, "prefect.unauthorized",
				  "Invalid authentication credentials");
		}
		return false;
	}
	const char *csrf = csrf_refusal(st, c->req);
	if (csrf) {
		pp_mock_count(c->m, "prefect.csrf_refused", csrf);
		pf_detail(c->resp, 403, "prefect.csrf", csrf);
		return false;
	}
	switch (pp_mock_fault_check(c->m, "prefect", false, c->resp, &retry_after)) {
	case PP_MOCK_FAULT_THROTTLE: {
		char v[16];
		snprintf(v, sizeof(v), "%d", retry_after > 0 ? retry_after : 1);
		pp_mock_resp_header(c->resp, "Retry-After", v);
		pf_detail(c->resp, 429, NULL, "Too many requests. Please retry later.");
		return false;
	}
	case PP_MOCK_FAULT_ERROR:
		pp_mock_resp_printf(c->resp, 500, PF_JSON,
				    "{\"exception_message\":\"Internal Server Error\"}");
		return false;
	default: pp_mock_barrier_pass(c->m, &st->bar, "prefect", c->resp->action); return true;
	}
}

static void pf_bad_body(struct pp_mock_call *c, const char *why)
{
	pf_invalid(c->resp, "body", why);
}

/* Routes that changed state are written out (PUSHPOOL_MOCK_PREFECT_STATE). */
static void pf_after(struct pp_mock_call *c)
{
	if (c->route->changes && c->resp->status < 300)
		persist(c->state);
}

static void pf_unmatched(struct pp_mock_call *c, bool other_method)
{
	pf_detail(c->resp, 404, NULL, "Not Found");
}

/* The row of table whose key is the route's {param}; answers 404 with
 * missing when there is none. */
static struct pp_json *pf_row(struct pp_mock_call *c, const char *table_name, const char *key,
			      const char *param, const char *missing)
{
	struct pp_json *row =
		find_by(table(c->state, table_name), key, pp_mock_param(&c->params, param));
	if (!row)
		pf_detail(c->resp, 404, NULL, missing);
	return row;
}

static void pf_health(struct pp_mock_call *c)
{
	pp_mock_resp_printf(c->resp, 200, PF_JSON, "true");
}

/* GET /csrf-token?client=ID (api/csrf_token.py): a new token for the
 * client, replacing its old one; 422 when CSRF protection is off. */
static void pf_csrf_token(struct pp_mock_call *c)
{
	struct pf_state *st = c->state;
	const char *client = pp_mock_arg(c->req, "client");
	if (!st->csrf) {
		pf_detail(c->resp, 422, NULL, "CSRF protection is disabled.");
		return;
	}
	if (!client || !*client) {
		/* FastAPI's answer to a missing required query parameter. */
		c->resp->reject_reason = "prefect.validation";
		pp_mock_resp_printf(c->resp, 422, PF_JSON,
				    "{\"exception_message\":\"Invalid request received.\","
				    "\"exception_detail\":[{\"loc\":[\"query\",\"client\"],"
				    "\"msg\":\"field required\",\"type\":\"value_error.missing\"}],"
				    "\"request_body\":null}");
		return;
	}
	char token[65], id[37], now[40], until[PP_TIME_LEN];
	pp_mock_random_hex(c->m, token, 64);
	new_uuid(c->m, id);
	iso_now(now, sizeof(now));
	int64_t expires = pp_wall_ms() + (int64_t)(st->csrf_ttl * 1000);
	pp_time_format(expires, true, until);
	struct pp_json *t = pp_json_new(PP_JSON_OBJECT), *shown = pp_json_new(PP_JSON_OBJECT);
	if (!t || !shown || pp_json_set_string(t, "token", token) ||
	    pp_json_set_int(t, "expires", expires) || pp_json_set(st->csrf_tokens, client, t)) {
		pp_json_free(t);
		pp_json_free(shown);
		return;
	}
	pp_json_set_string(shown, "id", id);
	pp_json_set_string(shown, "created", now);
	pp_json_set_string(shown, "updated", now);
	pp_json_set_string(shown, "token", token);
	pp_json_set_string(shown, "client", client);
	pp_json_set_string(shown, "expiration", until);
	pp_mock_count(c->m, "prefect.csrf_tokens", NULL);
	pf_json(c->resp, 200, shown);
	pp_json_free(shown);
}

/* GET/POST /prefect/control/auth {"auth_string": "user:pass" | null,
 * "csrf": bool, "csrf_ttl": seconds, "forget_csrf_tokens": true}: the
 * server's auth settings from now on. The test's switch, not Prefect's. */
static void pf_auth_control(struct pp_mock_call *c)
{
	struct pf_state *st = c->state;
	snprintf(c->resp->action, sizeof(c->resp->action), "%s control/auth", c->req->method);
	if (!strcmp(c->req->method, "POST")) {
		const struct pp_json *as = pp_json_get(c->body, "auth_string");
		const struct pp_json *csrf = pp_json_get(c->body, "csrf");
		const struct pp_json *ttl = pp_json_get(c->body, "csrf_ttl");
		const struct pp_json *forget = pp_json_get(c->body, "forget_csrf_tokens");
		if ((as && as->type != PP_JSON_NULL && as->type != PP_JSON_STRING) ||
		    (csrf && csrf->type != PP_JSON_BOOL) ||
		    (ttl && (ttl->type != PP_JSON_NUMBER || ttl->num <= 0)) ||
		    (forget && forget->type != PP_JSON_BOOL)) {
			pf_invalid(c->resp, "auth_string",
				   "auth_string is a string or null, csrf and forget_csrf_tokens "
				   "booleans, csrf_ttl a positive number");
			return;
		}
		if (as) {
			free(st->auth_string);
			st->auth_string = as->type == PP_JSON_STRING ? strdup(as->str) : NULL;
		}
		if (csrf)
			st->csrf = csrf->b;
		if (ttl)
			st->csrf_ttl = ttl->num;
		if (forget && forget->b) {
			struct pp_json *fresh = pp_json_new(PP_JSON_OBJECT);
			if (fresh) {
				pp_json_free(st->csrf_tokens);
				st->csrf_tokens = fresh;
			}
		}
	}
	pp_mock_resp_printf(
		c->resp, 200, PF_JSON, "{\"auth_string\":%s,\"csrf\":%s,\"csrf_ttl\":%g}",
		st->auth_string ? "\"set\"" : "null", st->csrf ? "true" : "false", st->csrf_ttl);
}

static void pf_pool_create(struct pp_mock_call *c)
{
	work_pool_create(c->m, c->state, c->body, c->resp);
}

static void pf_pool_get(struct pp_mock_call *c)
{
	struct pp_json *pool = pf_row(c, "work_pools", "name", "pool", "Work pool not found.");
	if (pool)
		pf_json(c->resp, 200, pool);
}

static void pf_pool_scheduled(struct pp_mock_call *c)
{
	flows_advance(c->m, c->state);
	struct pp_json *pool = pf_row(c, "work_pools", "name", "pool", "Work pool not found.");
	if (pool)
		scheduled_runs(c->state, pool, c->body, c->resp);
}

static void pf_queue_create(struct pp_mock_call *c)
{
	struct pp_json *pool = pf_row(c, "work_pools", "name", "pool", "Work pool not found.");
	if (pool)
		queue_create(c->m, c->state, pool, c->body, c->resp);
}

static void pf_heartbeat(struct pp_mock_call *c)
{
	struct pp_json *pool = pf_row(c, "work_pools", "name", "pool", "Work pool not found.");
	if (pool)
		heartbeat(c->m, c->state, pool, c->body, c->resp);
}

static void pf_workers(struct pp_mock_call *c)
{
	struct pp_json *pool = pf_row(c, "work_pools", "name", "pool", "Work pool not found.");
	if (pool)
		workers_list(c->state, pool, c->resp);
}

static void pf_flow_create(struct pp_mock_call *c)
{
	flow_create(c->m, c->state, c->body, c->resp);
}

static void pf_flow_get(struct pp_mock_call *c)
{
	struct pp_json *f = pf_row(c, "flows", "id", "id", "Flow not found");
	if (f)
		pf_json(c->resp, 200, f);
}

static void pf_deployment_create(struct pp_mock_call *c)
{
	deployment_create(c->m, c->state, c->body, c->resp);
}

static void pf_deployment_get(struct pp_mock_call *c)
{
	struct pp_json *d = pf_row(c, "deployments", "id", "id", "Deployment not found");
	if (d)
		pf_json(c->resp, 200, d);
}

static void pf_run_create(struct pp_mock_call *c)
{
	struct pp_json *d = pf_row(c, "deployments", "id", "id", "Deployment not found");
	if (d)
		flow_run_create(c->m, c->state, d, c->body, c->resp);
}

static void pf_runs_filter(struct pp_mock_call *c)
{
	flows_advance(c->m, c->state);
	flow_runs_filter(c->state, c->body, false, c->resp);
}

static void pf_runs_count(struct pp_mock_call *c)
{
	flows_advance(c->m, c->state);
	flow_runs_filter(c->state, c->body, true, c->resp);
}

static void pf_run_get(struct pp_mock_call *c)
{
	flows_advance(c->m, c->state);
	struct pp_json *r = pf_row(c, "flow_runs", "id", "id", "Flow run not found");
	if (r)
		pf_json(c->resp, 200, r);
}

static void pf_run_patch(struct pp_mock_call *c)
{
	flows_advance(c->m, c->state);
	struct pp_json *r = pf_row(c, "flow_runs", "id", "id", "Flow run not found");
	if (r)
		flow_run_patch(c->m, r, c->body, c->resp);
}

static void pf_run_set_state(struct pp_mock_call *c)
{
	flows_advance(c->m, c->state);
	struct pp_json *r = pf_row(c, "flow_runs", "id", "id", "Flow run not found");
	if (r)
		set_state(c->m, c->state, r, c->body, c->resp);
}

static void pf_block_create(struct pp_mock_call *c)
{
	block_create(c->m, c->state, c->body, c->resp);
}

/* GET /block_documents/{id} (api/block_documents.py): include_secrets
 * defaults to false there, which masks the secret fields. */
static void pf_block_read_id(struct pp_mock_call *c)
{
	struct pp_json *b = pf_row(c, "block_documents", "id", "id", "Block document not found");
	if (!b)
		return;
	struct pp_json *shown = pp_json_clone(b);
	const char *inc = pp_mock_arg(c->req, "include_secrets");
	if (!inc || strcmp(inc, "true"))
		mask_secrets(pp_json_get(shown, "data"));
	pp_mock_count(c->m, "prefect.block_reads",
		      pp_json_string(pp_json_path(b, "block_type.slug")));
	pf_json(c->resp, 200, shown);
	pp_json_free(shown);
}

/* POST /variables/ (api/variables.py): {name, value, tags}; a name taken
 * is 409. */
static void pf_variable_create(struct pp_mock_call *c)
{
	struct pf_state *st = c->state;
	const char *name = pp_json_get_string(c->body, "name");
	const struct pp_json *value = pp_json_get(c->body, "value");
	const struct pp_json *tags = pp_json_get(c->body, "tags");
	if (!name || !*name || strlen(name) > 255 || strpbrk(name, "/%") || !value ||
	    (tags && tags->type != PP_JSON_ARRAY)) {
		pf_invalid(c->resp, "name", "name (at most 255 characters) and value are required");
		return;
	}
	if (find_by(table(st, "variables"), "name", name)) {
		char m[320];
		snprintf(m, sizeof(m), "A variable with the name %s already exists.", name);
		pf_detail(c->resp, 409, "prefect.conflict", m);
		return;
	}
	char id[37], ts[40];
	new_uuid(c->m, id);
	iso_now(ts, sizeof(ts));
	struct pp_json *v = pp_json_new(PP_JSON_OBJECT);
	if (!v)
		return;
	pp_json_set_string(v, "id", id);
	pp_json_set_string(v, "created", ts);
	pp_json_set_string(v, "updated", ts);
	pp_json_set_string(v, "name", name);
	pp_json_set(v, "value", pp_json_clone(value));
	pp_json_set(v, "tags", tags ? pp_json_clone(tags) : pp_json_new(PP_JSON_ARRAY));
	pp_json_append(table(st, "variables"), v);
	pf_json(c->resp, 201, v);
}

static void pf_variable_read(struct pp_mock_call *c)
{
	struct pp_json *v = pf_row(c, "variables", "name", "name", "Variable not found.");
	if (v) {
		pp_mock_count(c->m, "prefect.variable_reads", field(v, "name"));
		pf_json(c->resp, 200, v);
	}
}

static void pf_block_read(struct pp_mock_call *c)
{
	block_read(c->m, c->state, pp_mock_param(&c->params, "slug"),
		   pp_mock_param(&c->params, "name"), c->req, c->resp);
}

/* GET/POST /prefect/control/flows {"simulate": bool, "plan": "completed"}:
 * whether jobs started from now on run a simulated flow, and its default
 * end. The test's switch, not part of Prefect's API. */
static void pf_flows_control(struct pp_mock_call *c)
{
	struct pf_state *st = c->state;
	snprintf(c->resp->action, sizeof(c->resp->action), "%s control/flows", c->req->method);
	if (!strcmp(c->req->method, "POST")) {
		const struct pp_json *sim = pp_json_get(c->body, "simulate");
		const char *plan = pp_json_get_string(c->body, "plan");
		if ((sim && sim->type != PP_JSON_BOOL) || (plan && !plan_known(plan))) {
			pf_invalid(c->resp, "plan",
				   "simulate is a boolean; plan one of completed, failed, "
				   "fail_once, cancelled, paused, silent");
			return;
		}
		if (sim)
			st->simulate = sim->b;
		if (plan)
			snprintf(st->default_plan, sizeof(st->default_plan), "%s", plan);
	}
	pp_mock_resp_printf(c->resp, 200, PF_JSON, "{\"simulate\":%s,\"plan\":\"%s\"}",
			    st->simulate ? "true" : "false", st->default_plan);
}

/* POST /prefect/control/barrier {"action": "POST flow_runs/set_state",
 * "count": N, "timeout_ms": T}: see struct pp_mock_barrier. */
static void pf_barrier_control(struct pp_mock_call *c)
{
	pp_mock_barrier_set(c, &((struct pf_state *)c->state)->bar, "API action");
}

static const struct pp_mock_route flows_control_routes[] = {
	{"GET", "/prefect/control/flows", pf_flows_control, .changes = false},
	{"POST", "/prefect/control/flows", pf_flows_control, .changes = true},
	{"GET", "/prefect/control/auth", pf_auth_control, .changes = false},
	{"POST", "/prefect/control/auth", pf_auth_control, .changes = true},
	{"POST", "/prefect/control/barrier", pf_barrier_control, .changes = false},
	{NULL},
};

static const struct pp_mock_router flows_control_router = {
	.api = "prefect",
	.scope = "/prefect/control",
	.json_body = true,
	.locked = true,
	.routes = flows_control_routes,
	.bad_body = pf_bad_body,
	.unmatched = pf_unmatched,
};

#define API "/prefect/api"
static const struct pp_mock_route prefect_routes[] = {
	{"GET", API "/health", pf_health, .changes = false},
	{"GET", API "/ready", pf_health, .changes = false},
	{"GET", API "/csrf-token", pf_csrf_token, .changes = false},
	{"POST", API "/work_pools", pf_pool_create, .changes = true},
	{"GET", API "/work_pools/{pool}", pf_pool_get, .changes = false},
	{"POST", API "/work_pools/{pool}/get_scheduled_flow_runs", pf_pool_scheduled,
	 .changes = false},
	{"POST", API "/work_pools/{pool}/queues", pf_queue_create, .changes = true},
	{"POST", API "/work_pools/{pool}/workers/heartbeat", pf_heartbeat, .changes = true},
	{"POST", API "/work_pools/{pool}/workers/filter", pf_workers, .changes = false},
	{"POST", API "/flows", pf_flow_create, .changes = true},
	{"GET", API "/flows/{id}", pf_flow_get, .changes = false},
	{"POST", API "/deployments", pf_deployment_create, .changes = true},
	{"GET", API "/deployments/{id}", pf_deployment_get, .changes = false},
	{"POST", API "/deployments/{id}/create_flow_run", pf_run_create, .changes = true},
	{"POST", API "/flow_runs/filter", pf_runs_filter, .changes = false},
	{"POST", API "/flow_runs/count", pf_runs_count, .changes = false},
	{"GET", API "/flow_runs/{id}", pf_run_get, .changes = false},
	{"PATCH", API "/flow_runs/{id}", pf_run_patch, .changes = true},
	{"POST", API "/flow_runs/{id}/set_state", pf_run_set_state, .changes = true},
	{"POST", API "/block_documents", pf_block_create, .changes = true},
	{"GET", API "/block_documents/{id}", pf_block_read_id, .changes = false},
	{"POST", API "/variables", pf_variable_create, .changes = true},
	{"GET", API "/variables/name/{name}", pf_variable_read, .changes = false},
	{"GET", API "/block_types/slug/{slug}/block_documents/name/{name}", pf_block_read,
	 .changes = false},
	{NULL},
};
#undef API

/* Handlers share the JSON tables: they run under the mock lock. */
static const struct pp_mock_router prefect_router = {
	.api = "prefect",
	.scope = "/prefect",
	.json_body = true,
	.locked = true,
	.routes = prefect_routes,
	.admit = pf_admit,
	.bad_body = pf_bad_body,
	.after = pf_after,
	.unmatched = pf_unmatched,
};

static const struct pp_mock_router *const prefect_routers[] = {&flows_control_router,
							       &prefect_router, NULL};

static int prefect_init(struct pp_mock *m, void **state, struct pp_error *err)
{
	struct pf_state *st = calloc(1, sizeof(*st));
	if (!st)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	const char *path = getenv("PUSHPOOL_MOCK_PREFECT_STATE");
	const char *key = getenv("PUSHPOOL_MOCK_PREFECT_KEY");
	const char *auth = getenv("PUSHPOOL_MOCK_PREFECT_AUTH_STRING");
	const char *csrf = getenv("PUSHPOOL_MOCK_PREFECT_CSRF");
	int rc = 0;
	st->csrf = csrf && !strcmp(csrf, "1");
	st->csrf_ttl = 3600;
	if (!(st->csrf_tokens = pp_json_new(PP_JSON_OBJECT)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc && auth && *auth && !(st->auth_string = strdup(auth)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (path && *path && !(st->state_path = strdup(path)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc && key && *key && !(st->api_key = strdup(key)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc && st->state_path && access(st->state_path, F_OK) == 0) {
		rc = pp_json_parse_file(st->state_path, NULL, &st->db, err);
		for (size_t i = 0; !rc && pf_tables[i]; i++)
			/* A table newer than the file starts empty. */
			if (!pp_json_get(st->db, pf_tables[i]) &&
			    pp_json_set(st->db, pf_tables[i], pp_json_new(PP_JSON_ARRAY)))
				rc = pp_fail(err, PP_ENOMEM, "out of memory");
		for (size_t i = 0; !rc && pf_tables[i]; i++)
			if (!pp_json_is(table(st, pf_tables[i]), PP_JSON_ARRAY))
				rc = pp_fail(err, PP_EINVALID, "%s: \"%s\" is not an array",
					     st->state_path, pf_tables[i]);
	} else if (!rc && db_fresh(&st->db)) {
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if (rc) {
		pp_json_free(st->db);
		pp_json_free(st->csrf_tokens);
		free(st->state_path);
		free(st->api_key);
		free(st->auth_string);
		free(st);
		return rc;
	}
	st->m = m;
	st->simulate = true;
	snprintf(st->default_plan, sizeof(st->default_plan), "completed");
	pp_mock_barrier_init(m, &st->bar);
	pthread_mutex_lock(&pf_instances_lock);
	st->next = pf_instances;
	pf_instances = st;
	pthread_mutex_unlock(&pf_instances_lock);
	*state = st;
	return 0;
}

static void prefect_free(void *state)
{
	struct pf_state *st = state;
	pthread_mutex_lock(&pf_instances_lock);
	for (struct pf_state **p = &pf_instances; *p; p = &(*p)->next)
		if (*p == st) {
			*p = st->next;
			break;
		}
	pthread_mutex_unlock(&pf_instances_lock);
	flows_free(st);
	pp_json_free(st->db);
	pp_json_free(st->csrf_tokens);
	free(st->state_path);
	free(st->api_key);
	free(st->auth_string);
	pp_mock_barrier_destroy(&st->bar);
	free(st);
}

static void prefect_reset(struct pp_mock *m, void *state)
{
	(void)m;
	struct pf_state *st = state;
	struct pp_json *fresh = NULL;
	if (db_fresh(&fresh))
		return;
	pp_json_free(st->db);
	st->db = fresh;
	flows_free(st);
	st->simulate = true;
	snprintf(st->default_plan, sizeof(st->default_plan), "completed");
	persist(st);
}

static void prefect_stats(struct pp_mock *m, void *state, struct pp_json *live)
{
	(void)m;
	struct pf_state *st = state;
	pp_json_set_int(live, "live_flow_runs", (long long)table(st, "flow_runs")->count);
	pp_json_set_int(live, "live_work_pools", (long long)table(st, "work_pools")->count);
}

const struct pp_mock_api pp_mock_api_prefect = {
	.name = "prefect",
	.prefixes = {"/prefect", NULL},
	.init = prefect_init,
	.free = prefect_free,
	.routers = prefect_routers,
	.reset = prefect_reset,
	.stats = prefect_stats,
};
