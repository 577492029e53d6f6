/* Mock Prefect server API under /prefect/api: the subset a worker uses
 * (work pools and queues, deployments, flows, flow runs with orchestrated
 * set_state, worker heartbeats, block documents), in Prefect's own shapes
 * (src/prefect/server/schemas). The whole state is one JSON tree, so it can
 * be written to PUSHPOOL_MOCK_PREFECT_STATE after every change and read back
 * by a restarted mock. PUSHPOOL_MOCK_PREFECT_KEY, when set, is the API key
 * every request must carry as a Bearer token. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "mock/mock.h"

#define PF_JSON	    "application/json"
#define PF_LIST_MAX 1000

struct pf_state {
	struct pp_json *db; /* {work_pools, work_queues, ...}: one array per table */
	char *state_path;   /* NULL: memory only */
	char *api_key;	    /* NULL: no auth (a local Prefect server) */
};

static const char *const pf_tables[] = {
	"work_pools", "work_queues",	 "deployments", "flows",
	"flow_runs",  "block_documents", "workers",	NULL,
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
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec);
}

/* ISO 8601 timestamps as Prefect writes them (fractional seconds, "Z" or
 * "+00:00"), to seconds since the epoch; -1 when unreadable. */
static double iso_parse(const char *s)
{
	struct tm tm = {0};
	int y, mo, d, h, mi;
	double sec;
	int used = 0;
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &used) < 6)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	double t = (double)timegm(&tm) + sec;
	const char *z = s + used;
	if (*z == '+' || *z == '-') {
		int oh = 0, om = 0;
		sscanf(z + 1, "%2d:%2d", &oh, &om);
		t -= (*z == '+' ? 1 : -1) * (oh * 3600.0 + om * 60.0);
	}
	return t;
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

static struct pp_json *state_new(struct pp_mock *m, const char *run_id, const char *type,
				 const char *name, const char *message)
{
	char id[37], ts[40];
	new_uuid(m, id);
	iso_now(ts, sizeof(ts));
	struct pp_json *s = pp_json_new(PP_JSON_OBJECT), *details = pp_json_new(PP_JSON_OBJECT);
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
	pp_json_set(s, "state_details", details);
	return s;
}

static void run_set_state(struct pp_json *run, struct pp_json *state)
{
	char ts[40];
	const char *type = field(state, "type");
	iso_now(ts, sizeof(ts));
	pp_json_set_string(run, "state_type", type);
	pp_json_set_string(run, "state_name", pp_json_get_string(state, "name"));
	pp_json_set_string(run, "state_id", pp_json_get_string(state, "id"));
	pp_json_set_string(run, "updated", ts);
	if (!strcmp(type, "RUNNING") && !pp_json_get_string(run, "start_time"))
		pp_json_set_string(run, "start_time", ts);
	if (state_terminal(type))
		pp_json_set_string(run, "end_time", ts);
	pp_json_set_int(run, "run_count",
			pp_json_get_int(run, "run_count", 0) + !strcmp(type, "RUNNING"));
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
	/* "state" in the body may carry a scheduled time in the future:
	 * {"type":"SCHEDULED","state_details":{"scheduled_time":...}}. */
	const char *when = pp_json_string(pp_json_path(body, "state.state_details.scheduled_time"));
	pp_json_set_string(r, "expected_start_time", when ? when : ts);
	pp_json_set_string(r, "next_scheduled_start_time", when ? when : ts);
	struct pp_json *state = state_new(m, id, "SCHEDULED", NULL, NULL);
	if (state)
		pp_json_set_string(pp_json_get(state, "state_details"), "scheduled_time",
				   when ? when : ts);
	run_set_state(r, state);
	pp_json_append(table(st, "flow_runs"), r);
	pp_mock_count(m, "prefect.flow_runs_created", NULL);
	pf_json(resp, 201, r);
}

/* Prefect's core orchestration policy, reduced to what a worker meets:
 * PreventPendingTransitions aborts a second PENDING proposal (that is what
 * keeps two workers from both starting a run), a terminal run only moves
 * when forced, and a pool at its concurrency limit makes PENDING wait. */
enum pf_verdict { PF_ACCEPT, PF_ABORT, PF_WAIT };

/* Prefect's orchestration rules for a proposed state type: what the server
 * answers and, when not ACCEPT, why (and how long to wait). */
static enum pf_verdict orchestrate(struct pf_state *st, const struct pp_json *run, const char *type,
				   bool force, char *reason, size_t reason_size,
				   double *wait_seconds)
{
	const char *cur = field(run, "state_type");

	*wait_seconds = 0;
	if (force)
		return PF_ACCEPT;
	if (state_terminal(cur) && strcmp(type, cur)) {
		snprintf(reason, reason_size, "This run has already terminated.");
		return PF_ABORT;
	}
	if (!strcmp(cur, "CANCELLING") && !state_terminal(type)) {
		/* Only the end of the run may follow a cancellation request. */
		snprintf(reason, reason_size,
			 "This run is CANCELLING and cannot transition to a %s state.", type);
		return PF_ABORT;
	}
	if (strcmp(type, "PENDING") != 0)
		return PF_ACCEPT;
	if (!strcmp(cur, "PENDING") || !strcmp(cur, "RUNNING") || !strcmp(cur, "CANCELLING") ||
	    state_terminal(cur)) {
		snprintf(reason, reason_size,
			 "This run is in a %s state and cannot transition to a PENDING state.",
			 cur);
		return PF_ABORT;
	}
	/* PENDING takes a slot of the work pool's concurrency limit. */
	const char *pool_name = pp_json_get_string(run, "work_pool_name");
	struct pp_json *pool =
		pool_name ? find_by(table(st, "work_pools"), "name", pool_name) : NULL;
	long long limit = pp_json_get_int(pool, "concurrency_limit", -1);
	long long busy = 0;
	pp_json_foreach (r, table(st, "flow_runs")) {
		const char *t = field(r, "state_type");
		const char *p = pp_json_get_string(r, "work_pool_name");
		if (p && pool_name && !strcmp(p, pool_name) &&
		    (!strcmp(t, "PENDING") || !strcmp(t, "RUNNING")))
			busy++;
	}
	if (limit >= 0 && busy >= limit) {
		*wait_seconds = 1;
		snprintf(reason, reason_size, "Work pool %s is at its concurrency limit of %lld.",
			 pool_name, limit);
		return PF_WAIT;
	}
	return PF_ACCEPT;
}

static void set_state(struct pp_mock *m, struct pf_state *st, struct pp_json *run,
		      const struct pp_json *body, struct pp_mock_resp *resp)
{
	const struct pp_json *proposed = pp_json_get(body, "state");
	const char *type = pp_json_get_string(proposed, "type");
	bool force = pp_json_get_bool(body, "force", false);
	if (!type || !state_name_for(type)) {
		pf_invalid(resp, "state.type", "value is not a valid enumeration member");
		return;
	}
	const char *run_id = field(run, "id");
	char reason[160] = "";
	static const char *const status_names[] = {"ACCEPT", "ABORT", "WAIT"};
	double wait_seconds;
	enum pf_verdict status =
		orchestrate(st, run, type, force, reason, sizeof(reason), &wait_seconds);
	struct pp_json *res = pp_json_new(PP_JSON_OBJECT), *details = pp_json_new(PP_JSON_OBJECT);
	if (!res || !details) {
		pp_json_free(res);
		pp_json_free(details);
		return;
	}
	char key[96];
	snprintf(key, sizeof(key), "%s:%s", type, status_names[status]);
	pp_mock_count(m, "prefect.set_state", key);
	if (status == PF_ACCEPT) {
		struct pp_json *s = state_new(m, run_id, type, pp_json_get_string(proposed, "name"),
					      pp_json_get_string(proposed, "message"));
		if (!strcmp(type, "PENDING"))
			pp_mock_count(m, "prefect.pending_accepted", run_id);
		/* run_set_state owns s from here, and frees it if it cannot
		 * keep it: copy it for the answer first. */
		struct pp_json *answer = pp_json_clone(s);
		run_set_state(run, s);
		pp_json_set(res, "state", answer);
		pp_json_set_string(details, "type", "accept_details");
	} else {
		pp_json_set(res, "state",
			    status == PF_ABORT ? pp_json_new(PP_JSON_NULL)
					       : pp_json_clone(pp_json_get(run, "state")));
		pp_json_set_string(details, "type",
				   status == PF_WAIT ? "wait_details" : "abort_details");
		pp_json_set_string(details, "reason", reason);
		if (wait_seconds > 0)
			pp_json_set(details, "delay_seconds", pp_json_new_number(wait_seconds));
	}
	pp_json_set_string(res, "status", status_names[status]);
	pp_json_set(res, "details", details);
	pf_json(resp, status == PF_ACCEPT ? 201 : 200, res);
	pp_json_free(res);
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
	if (!out)
		return;
	while (!pp_json_get_bool(pool, "is_paused", false) && (long long)out->count < limit) {
		struct pp_json *best = NULL;
		double best_t = 0;
		pp_json_foreach (r, table(st, "flow_runs")) {
			const char *p = pp_json_get_string(r, "work_pool_name");
			const char *qn = pp_json_get_string(r, "work_queue_name");
			if (!p || strcmp(p, pool_name) ||
			    strcmp(field(r, "state_type"), "SCHEDULED"))
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
			bool taken = false;
			pp_json_foreach (o, out) {
				if (pp_json_get(o, "flow_run") &&
				    !strcmp(field(pp_json_get(o, "flow_run"), "id"),
					    field(r, "id")))
					taken = true;
			}
			if (taken)
				continue;
			if (!best || t < best_t) {
				best = r;
				best_t = t;
			}
		}
		if (!best)
			break;
		struct pp_json *item = pp_json_new(PP_JSON_OBJECT);
		struct pp_json *q =
			queue_find(st, pool_name, pp_json_get_string(best, "work_queue_name"));
		pp_json_set_string(item, "work_pool_id", pp_json_get_string(pool, "id"));
		pp_json_set(item, "work_queue_id",
			    q ? pp_json_new_string(pp_json_get_string(q, "id"))
			      : pp_json_new(PP_JSON_NULL));
		pp_json_set(item, "flow_run", pp_json_clone(best));
		pp_json_append(out, item);
	}
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
			free(it->str);
			it->str = strdup("**********");
			it->len = it->str ? strlen(it->str) : 0;
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

static bool authorized(struct pf_state *st, const struct pp_mock_req *req)
{
	if (!st->api_key)
		return true;
	const char *h = pp_mock_header(req, "Authorization");
	return h && !strncmp(h, "Bearer ", 7) && !strcmp(h + 7, st->api_key);
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
	if (!authorized(c->state, c->req)) {
		pf_detail(c->resp, 401, "prefect.unauthorized",
			  "Invalid authentication credentials");
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
	default: return true;
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
	flow_runs_filter(c->state, c->body, false, c->resp);
}

static void pf_runs_count(struct pp_mock_call *c)
{
	flow_runs_filter(c->state, c->body, true, c->resp);
}

static void pf_run_get(struct pp_mock_call *c)
{
	struct pp_json *r = pf_row(c, "flow_runs", "id", "id", "Flow run not found");
	if (r)
		pf_json(c->resp, 200, r);
}

static void pf_run_patch(struct pp_mock_call *c)
{
	struct pp_json *r = pf_row(c, "flow_runs", "id", "id", "Flow run not found");
	if (r)
		flow_run_patch(c->m, r, c->body, c->resp);
}

static void pf_run_set_state(struct pp_mock_call *c)
{
	struct pp_json *r = pf_row(c, "flow_runs", "id", "id", "Flow run not found");
	if (r)
		set_state(c->m, c->state, r, c->body, c->resp);
}

static void pf_block_create(struct pp_mock_call *c)
{
	block_create(c->m, c->state, c->body, c->resp);
}

static void pf_block_read(struct pp_mock_call *c)
{
	block_read(c->m, c->state, pp_mock_param(&c->params, "slug"),
		   pp_mock_param(&c->params, "name"), c->req, c->resp);
}

#define API "/prefect/api"
static const struct pp_mock_route prefect_routes[] = {
	{"GET", API "/health", pf_health, .changes = false},
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

static const struct pp_mock_router *const prefect_routers[] = {&prefect_router, NULL};

static int prefect_init(struct pp_mock *m, void **state, struct pp_error *err)
{
	(void)m;
	struct pf_state *st = calloc(1, sizeof(*st));
	if (!st)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	const char *path = getenv("PUSHPOOL_MOCK_PREFECT_STATE");
	const char *key = getenv("PUSHPOOL_MOCK_PREFECT_KEY");
	int rc = 0;
	if (path && *path && !(st->state_path = strdup(path)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc && key && *key && !(st->api_key = strdup(key)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc && st->state_path && access(st->state_path, F_OK) == 0) {
		rc = pp_json_parse_file(st->state_path, NULL, &st->db, err);
		for (size_t i = 0; !rc && pf_tables[i]; i++)
			if (!pp_json_is(table(st, pf_tables[i]), PP_JSON_ARRAY))
				rc = pp_fail(err, PP_EINVALID, "%s: \"%s\" is not an array",
					     st->state_path, pf_tables[i]);
	} else if (!rc && db_fresh(&st->db)) {
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if (rc) {
		pp_json_free(st->db);
		free(st->state_path);
		free(st->api_key);
		free(st);
		return rc;
	}
	*state = st;
	return 0;
}

static void prefect_free(void *state)
{
	struct pf_state *st = state;
	pp_json_free(st->db);
	free(st->state_path);
	free(st->api_key);
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
