/* Google Cloud Run Admin API v2 jobs (pool type cloud-run-v2:push).
 *
 * submit: CreateJob with a job id derived from the run id, so a replay gets
 * 409 ALREADY_EXISTS and adopts the job; GetJob (waits while the job
 * reconciles, adopts latestCreatedExecution when one exists); RunJob, whose
 * Operation metadata is the Execution. RunJob is not idempotent, so after an
 * ambiguous RunJob failure the next try reads the job again before running.
 * status: GetExecution. cancel: CancelExecution (a refusal ends it when the
 * execution has stopped). cleanup: DeleteJob once the execution has stopped.
 * list: ListJobs in the pool's project and region (the API has no label
 * filter: the pushpool-run-id label is read from each job). remove:
 * DeleteJob. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "lib/buf.h"
#include "lib/intern.h"
#include "lib/log.h"
#include "lib/time.h"
#include "providers/common.h"
#include "providers/logs.h"
#include "providers/provider.h"

#define CR_DEFAULT_ENDPOINT "https://run.googleapis.com"
#define CR_DEFAULT_REGION   "us-central1"
#define CR_DEFAULT_IMAGE    "docker.io/prefecthq/prefect:3-latest"
#define CR_MAX_LABELS	    64
#define CR_READY_POLL_MS    1000
/* Cleanup deletes the job only once its execution has stopped, as Prefect's
 * worker does (it deletes after its watch loop sees completionTime): a
 * cancelled execution keeps running its tasks for a while, and DeleteJob is
 * refused while one runs. Checked this often until then; the op's time
 * budget bounds the wait. */
#define CR_STOP_POLL_MS 1000
/* Jobs asked for per ListJobs page (the API's maximum is 1000). */
#define CR_LIST_PAGE_SIZE 200
/* Longest project, region, job name and ListJobs page token a state takes. */
#define CR_PROJECT_MAX	  127
#define CR_REGION_MAX	  63
#define CR_JOB_NAME_MAX	  319
#define CR_PAGE_TOKEN_MAX 511

enum cr_step { CR_CREATE, CR_GET_JOB, CR_RUN, CR_SUBMITTED };
enum cr_cleanup_step { CL_CHECK = 0, CL_DELETE };
enum cr_cancel_step { CC_CANCEL = 0, CC_CHECK };

/* What every run of a pool shares (base URL, project, region) is interned
 * (pp_intern_set); the rest a watched run needs is allocated to size. */
struct cr_state {
	struct pp_cred *job_cred; /* from the job's credentials (GcpCredentials), or NULL */
	const char *base;
	const char *project;
	const char *region;
	char job_id[49];
	char *job_name; /* projects/P/locations/R/jobs/ID */
	bool keep_job;
	bool create_sent; /* a CreateJob went out: the job may exist without an execution */
	enum cr_step step;
	enum cr_cleanup_step clean;
	enum cr_cancel_step cancel;
	struct pp_error *cancel_err; /* a refused cancel, while we look at the execution */
	struct pp_json *body;	     /* CreateJob body until the job is created, owned */
	char *page_token;	     /* list: the next ListJobs page, NULL for the first */
};

static int set_job_name(struct cr_state *st, const char *name, size_t len, struct pp_error *err)
{
	if (len > CR_JOB_NAME_MAX)
		return pp_fail(err, PP_EINVALID, "job name is too long (%zu bytes, at most %d)",
			       len, CR_JOB_NAME_MAX);
	free(st->job_name);
	st->job_name = strndup(name, len);
	return st->job_name ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
}

/* The job is created and an execution runs: its body is not needed again
 * (a start retry prepares a new state). */
static int submitted(struct cr_state *st)
{
	pp_json_free(st->body);
	st->body = NULL;
	st->step = CR_SUBMITTED;
	return PP_STEP_DONE;
}

/* Turn a google.rpc.Status error body into our code and a message naming
 * the call, the HTTP status, the canonical code and Google's message. */
static int cr_error(const struct pp_run_io *io, const char *what, char *status_name,
		    size_t status_size, struct pp_error *err)
{
	int code = io->resp_rc;
	long http = io->resp->status;
	struct pp_json *body = NULL;
	const char *gstatus = NULL, *gmsg = NULL;
	long retry_ms = io->resp_err ? io->resp_err->retry_after_ms : 0;

	if (status_name)
		status_name[0] = '\0';
	if (http == 0) {
		pp_fail(err, code, "Cloud Run %s: %s", what,
			io->resp_err ? io->resp_err->msg : "no response");
		err->retry_after_ms = retry_ms;
		return code;
	}
	struct pp_json_limits lim = {.max_bytes = PP_PROVIDER_MAX_RESPONSE, .max_depth = 0};
	if (io->resp->body.len &&
	    pp_json_parse(io->resp->body.data, io->resp->body.len, &lim, &body, NULL) == 0) {
		struct pp_json *e = pp_json_get(body, "error");
		gstatus = pp_json_get_string(e, "status");
		gmsg = pp_json_get_string(e, "message");
		/* google.rpc.RetryInfo: the server's own backoff hint. */
		pp_json_foreach (d, pp_json_get(e, "details")) {
			const char *type = pp_json_get_string(d, "@type");
			const char *delay = pp_json_get_string(d, "retryDelay");
			if (type && strstr(type, "google.rpc.RetryInfo") && delay) {
				long ms = (long)(strtod(delay, NULL) * 1000.0);
				if (ms > retry_ms)
					retry_ms = ms;
			}
		}
	}
	if (gstatus) {
		if (!strcmp(gstatus, "ABORTED") || !strcmp(gstatus, "UNAVAILABLE") ||
		    !strcmp(gstatus, "DEADLINE_EXCEEDED") || !strcmp(gstatus, "INTERNAL"))
			code = PP_ETRANSIENT;
		else if (!strcmp(gstatus, "RESOURCE_EXHAUSTED"))
			code = PP_ETHROTTLED;
		if (status_name)
			snprintf(status_name, status_size, "%s", gstatus);
	}
	if (gmsg)
		pp_fail(err, code, "Cloud Run %s: HTTP %ld %s: %s", what, http,
			gstatus ? gstatus : "", gmsg);
	else
		pp_fail(err, code, "Cloud Run %s: %s", what, io->resp_err->msg);
	err->retry_after_ms = retry_ms;
	pp_json_free(body);
	return code;
}

/* GCP label rules: keys start with a lowercase letter, keys and values use
 * [a-z0-9_-], at most 63 characters. */
static void gcp_label(char *out, size_t size, const char *in, bool is_key)
{
	size_t k = 0;
	if (is_key && !isalpha((unsigned char)in[0]))
		out[k++] = 'l';
	for (const char *p = in; *p && k + 1 < size && k < 63; p++) {
		char c = (char)tolower((unsigned char)*p);
		out[k++] = (islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-' ||
			    c == '_')
				   ? c
				   : '_';
	}
	out[k] = '\0';
}

static int add_labels(struct pp_json *target, const struct pp_json *labels, const char *run_id,
		      const char *store_id, struct pp_error *err)
{
	struct pp_json *dst = pp_json_get(target, "labels");
	if (!dst) {
		if (pp_json_set(target, "labels", pp_json_new(PP_JSON_OBJECT)))
			return pp_fail(err, PP_ENOMEM, "out of memory adding labels");
		dst = pp_json_get(target, "labels");
	}
	if (dst->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID, "job_body labels must be an object, not %s",
			       pp_json_type_name(dst->type));
	char key[64], val[64];
	/* Ours are set over any of the same name: the sweeper trusts them. A
	 * UUID is a valid GCP label value as it is. */
	gcp_label(val, sizeof(val), run_id, false);
	if (pp_json_set_string(dst, PP_LABEL_RUN, val))
		return pp_fail(err, PP_ENOMEM, "out of memory adding labels");
	if (store_id && *store_id) {
		gcp_label(val, sizeof(val), store_id, false);
		if (pp_json_set_string(dst, PP_LABEL_STORE, val))
			return pp_fail(err, PP_ENOMEM, "out of memory adding labels");
	}
	pp_json_foreach (l, labels) {
		if (dst->count >= CR_MAX_LABELS)
			break;
		const char *v = pp_json_string(l);
		if (!v)
			continue;
		gcp_label(key, sizeof(key), l->key, true);
		gcp_label(val, sizeof(val), v, false);
		/* Labels written in the job body itself take precedence. */
		if (!pp_json_get(dst, key) && pp_json_set_string(dst, key, val))
			return pp_fail(err, PP_ENOMEM, "out of memory adding labels");
	}
	return 0;
}

static int add_env(struct pp_json *container, const struct pp_json *job, struct pp_error *err)
{
	struct pp_json *env = pp_json_get(container, "env");
	if (env && env->type == PP_JSON_OBJECT) {
		struct pp_json *list = pp_json_new(PP_JSON_ARRAY);
		if (!list)
			return pp_fail(err, PP_ENOMEM, "out of memory building env");
		int rc = pp_map_to_pairs(env, list, "name", "value", err);
		if (pp_json_set(container, "env", list) || rc)
			return rc ? rc : pp_fail(err, PP_ENOMEM, "out of memory building env");
		env = pp_json_get(container, "env");
	} else if (!env) {
		if (pp_json_set(container, "env", pp_json_new(PP_JSON_ARRAY)))
			return pp_fail(err, PP_ENOMEM, "out of memory building env");
		env = pp_json_get(container, "env");
	} else if (env->type != PP_JSON_ARRAY) {
		return pp_fail(err, PP_EINVALID, "job_body container env must be a list, not %s",
			       pp_json_type_name(env->type));
	}
	int rc = pp_map_to_pairs(pp_json_get(job, "env"), env, "name", "value", err);
	if (rc)
		return pp_error_prefix(err, "env: ");
	/* {"NAME": {"secret": "s", "version": "latest"}}: Secret Manager refs. */
	pp_json_foreach (s, pp_json_get(job, "env_from_secrets")) {
		if (s->type != PP_JSON_OBJECT || !pp_json_get_string(s, "secret"))
			return pp_fail(
				err, PP_EINVALID,
				"env_from_secrets.%s must be {\"secret\": ..., \"version\": ...}",
				s->key);
		struct pp_json *src = pp_json_new(PP_JSON_OBJECT);
		if (pp_json_set(src, "secretKeyRef", pp_json_clone(s))) {
			pp_json_free(src);
			return pp_fail(err, PP_ENOMEM, "out of memory building env");
		}
		struct pp_json *item = pp_json_new(PP_JSON_OBJECT);
		if (pp_json_set_string(item, "name", s->key)) {
			pp_json_free(src);
			pp_json_free(item);
			return pp_fail(err, PP_ENOMEM, "out of memory building env");
		}
		if (pp_json_set(item, "valueSource", src)) {
			pp_json_free(item);
			return pp_fail(err, PP_ENOMEM, "out of memory building env");
		}
		if (pp_json_append(env, item))
			return pp_fail(err, PP_ENOMEM, "out of memory building env");
	}
	if (env->count == 0)
		pp_json_remove(container, "env");
	return 0;
}

/* Apply what Prefect's Cloud Run v2 worker does to job_body before
 * creating the job (prefect_gcp/workers/cloud_run_v2.py prepare_for_flow_run). */
static int shape_body(struct pp_run_io *io, struct pp_json *body, struct pp_error *err)
{
	const struct pp_json *job = io->job;
	pp_json_strip_nulls(body);
	struct pp_json *tt = pp_json_path(body, "template.template");
	struct pp_json *c0 = pp_json_at(pp_json_get(tt, "containers"), 0);
	if (!tt || tt->type != PP_JSON_OBJECT || !c0 || c0->type != PP_JSON_OBJECT)
		return pp_fail(
			err, PP_EINVALID,
			"job_body.template.template.containers[0] is missing or not an object");
	int rc = add_env(c0, job, err);
	if (!rc)
		rc = pp_normalize_command(c0, "command", err);
	if (!rc)
		rc = pp_normalize_command(c0, "args", err);
	if (rc)
		return pp_error_prefix(err, "job_body.template.template.containers[0].");
	if (!pp_json_get(c0, "command")) {
		struct pp_json *cmd;
		rc = pp_shell_split("prefect flow-run execute", &cmd, err);
		if (rc || pp_json_set(c0, "command", cmd))
			return rc ? rc : pp_fail(err, PP_ENOMEM, "out of memory");
	}
	const char *image = pp_json_get_string(c0, "image");
	if ((!image || !*image) && pp_json_set_string(c0, "image", CR_DEFAULT_IMAGE))
		return pp_fail(err, PP_ENOMEM, "out of memory");

	/* Durations are "<seconds>s" in proto3 JSON. */
	struct pp_json *t = pp_json_get(job, "timeout");
	if (!pp_json_is(t, PP_JSON_NUMBER))
		t = pp_json_get(tt, "timeout");
	if (pp_json_is(t, PP_JSON_NUMBER)) {
		char d[32];
		if (t->num <= 0 || t->num > 604800)
			return pp_fail(err, PP_EINVALID,
				       "timeout %.0f is out of range (1..604800 seconds)", t->num);
		snprintf(d, sizeof(d), "%llds", (long long)t->num);
		if (pp_json_set_string(tt, "timeout", d))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	/* A numeric string ("600") is no proto3 JSON Duration either. */
	const char *ts = pp_json_get_string(tt, "timeout");
	if (ts && *ts) {
		char *end;
		strtod(ts, &end);
		if (!*end) {
			char d[64];
			snprintf(d, sizeof(d), "%.60ss", ts);
			if (pp_json_set_string(tt, "timeout", d))
				return pp_fail(err, PP_ENOMEM, "out of memory");
		}
	}
	/* No timeout of the job's own: the run's max_runtime is Cloud Run's
	 * task timeout too, so the cloud stops the task even if pushpool is
	 * not watching. */
	if (!pp_json_get(tt, "timeout") && io->max_runtime_s > 0) {
		char d[32];
		double secs = io->max_runtime_s < 604800 ? io->max_runtime_s : 604800;
		snprintf(d, sizeof(d), "%llds", (long long)ceil(secs));
		if (pp_json_set_string(tt, "timeout", d))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	/* proto3 JSON: resources.limits is a map<string, string> (a cpu of 2 is
	 * "2"), and an enum such as launchStage is never "". */
	struct pp_json *limits = pp_json_path(c0, "resources.limits");
	for (bool again = pp_json_is(limits, PP_JSON_OBJECT); again;) {
		again = false;
		pp_json_foreach (l, limits)
			if (l->type == PP_JSON_NUMBER) {
				if (pp_number_to_string(limits, l->key))
					return pp_fail(err, PP_ENOMEM, "out of memory");
				again = true;
				break;
			}
	}
	const char *stage = pp_json_get_string(body, "launchStage");
	if (stage && !*stage)
		pp_json_remove(body, "launchStage");
	struct pp_json *vpc = pp_json_get(tt, "vpcAccess");
	if (vpc) {
		const char *conn = pp_json_get_string(vpc, "connector");
		if (conn && !*conn)
			pp_json_remove(vpc, "connector");
		if (vpc->type != PP_JSON_OBJECT || vpc->count == 0)
			pp_json_remove(tt, "vpcAccess");
	}
	const char *sa = pp_json_get_string(tt, "serviceAccount");
	if (sa && !*sa)
		pp_json_remove(tt, "serviceAccount");

	struct pp_json *labels = pp_json_get(job, "labels");
	struct pp_json *exec_tpl = pp_json_get(body, "template");
	rc = add_labels(body, labels, io->run_id, io->store_id, err);
	if (!rc)
		rc = add_labels(exec_tpl, labels, io->run_id, io->store_id, err);
	return rc;
}

/* Project and region go into URL paths: keep them to their own alphabets. */
static bool valid_segment(const char *s, const char *extra)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
			return false;
	return true;
}

static int cr_prepare(struct pp_run_io *io, struct pp_error *err)
{
	struct cr_state *st = io->state;
	const struct pp_json *job = io->job;
	int rc;

	if (!job || job->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID,
			       "cloud-run: rendered job configuration is missing");
	struct pp_json *jb = pp_json_get(job, "job_body");
	if (!jb || jb->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID, "cloud-run: job_body must be an object");
	st->keep_job = pp_json_get_bool(job, "keep_job", false);
	if ((rc = pp_job_cred(io, &st->job_cred, "credentials", "gcp", err)))
		return pp_error_prefix(err, "cloud-run: ");

	const char *region = pp_json_get_string(job, "region");
	const char *project = pp_json_get_string(job, "project");
	if (!project || !*project)
		project = pp_json_get_string(pp_json_get(job, "credentials"), "project");
	if ((!project || !*project) && pp_run_cred(io))
		project = pp_cred_project(pp_run_cred(io));
	if (!project || !*project)
		return pp_fail(
			err, PP_EINVALID,
			"cloud-run: no GCP project: the credential has none; set "
			"credentials.project in the job variables or use a service-account key");
	if (!region || !*region)
		region = CR_DEFAULT_REGION;
	if (!valid_segment(project, "-.:") || !valid_segment(region, "-"))
		return pp_fail(err, PP_EINVALID, "cloud-run: invalid project '%s' or region '%s'",
			       project, region);
	char name[CR_JOB_NAME_MAX + 2];
	if ((rc = pp_intern_set(&st->project, project, CR_PROJECT_MAX, "project", err)) ||
	    (rc = pp_intern_set(&st->region, region, CR_REGION_MAX, "region", err)) ||
	    (rc = pp_base_url_intern(&st->base, io->endpoint, CR_DEFAULT_ENDPOINT, err)) ||
	    (rc = pp_derive_name(st->job_id, sizeof(st->job_id), io->run_id, io->attempt, err)))
		return pp_error_prefix(err, "cloud-run: ");
	int n = snprintf(name, sizeof(name), "projects/%s/locations/%s/jobs/%s", st->project,
			 st->region, st->job_id);
	if ((rc = set_job_name(st, name, (size_t)n, err)))
		return pp_error_prefix(err, "cloud-run: ");

	st->body = pp_json_clone(jb);
	if (!st->body)
		return pp_fail(err, PP_ENOMEM, "cloud-run: out of memory");
	pp_json_remove(st->body, "name");
	rc = shape_body(io, st->body, err);
	if (rc)
		return pp_error_prefix(err, "cloud-run: ");
	st->step = CR_CREATE;
	return 0;
}

static int cr_restore(struct pp_run_io *io, struct pp_error *err)
{
	struct cr_state *st = io->state;
	const char *name = io->infra_id ? io->infra_id : "";
	const char *loc = strstr(name, "/locations/");
	const char *jobs = strstr(name, "/jobs/");
	const char *ex = strstr(name, "/executions/");
	int jrc = io->job ? pp_job_cred(io, &st->job_cred, "credentials", "gcp", err) : 0;
	if (jrc)
		return pp_error_prefix(err, "cloud-run: ");

	if (strncmp(name, "projects/", 9) || !loc || !jobs || !ex || loc > jobs || jobs > ex)
		return pp_fail(err, PP_EINVALID,
			       "cloud-run: infra id '%s' is not an execution name "
			       "(projects/P/locations/R/jobs/J/executions/E)",
			       name);
	int np = (int)(loc - (name + 9)), nr = (int)(jobs - (loc + 11));
	int nj = (int)(ex - name);
	int nid = (int)(ex - (jobs + 6));
	if (np <= 0 || np > CR_PROJECT_MAX || nr <= 0 || nr > CR_REGION_MAX ||
	    nj > CR_JOB_NAME_MAX || (size_t)nid >= sizeof(st->job_id))
		return pp_fail(err, PP_EINVALID, "cloud-run: infra id '%s' is malformed", name);
	char project[CR_PROJECT_MAX + 1], region[CR_REGION_MAX + 1];
	snprintf(project, sizeof(project), "%.*s", np, name + 9);
	snprintf(region, sizeof(region), "%.*s", nr, loc + 11);
	snprintf(st->job_id, sizeof(st->job_id), "%.*s", nid, jobs + 6);
	st->keep_job = pp_json_get_bool(io->job, "keep_job", false);
	st->step = CR_SUBMITTED;
	return pp_intern_set(&st->project, project, CR_PROJECT_MAX, "project", err) ?:
		       pp_intern_set(&st->region, region, CR_REGION_MAX, "region", err) ?:
		       set_job_name(st, name, (size_t)nj, err) ?:
		       pp_base_url_intern(&st->base, io->endpoint, CR_DEFAULT_ENDPOINT, err);
}

static int send_to(struct pp_run_io *io, const char *method, const char *suffix,
		   const struct pp_json *body, const char *name, struct pp_error *err)
{
	struct cr_state *st = io->state;
	char url[1024];
	int n = snprintf(url, sizeof(url), "%s/v2/%s%s", st->base, name, suffix);
	if (n < 0 || (size_t)n >= sizeof(url))
		return pp_fail(err, PP_EINVALID, "cloud-run: URL for %s is too long", name);
	int rc = pp_req_json(io, method, url, "application/json", body, err);
	if (rc)
		return rc;
	/* Reads, DELETE and :cancel are harmless twice; :run is not: a
	 * resend would start a second execution. Each answers with one job,
	 * execution or operation. */
	io->req.flags |= PP_HTTP_SMALL_ANSWER;
	if (strcmp(suffix, ":run"))
		io->req.flags |= PP_HTTP_RESENDABLE;
	return PP_STEP_SEND;
}

static int send_create(struct pp_run_io *io, struct pp_error *err)
{
	struct cr_state *st = io->state;
	char url[1024];
	int n = snprintf(url, sizeof(url), "%s/v2/projects/%s/locations/%s/jobs?jobId=%s", st->base,
			 st->project, st->region, st->job_id);
	if (n < 0 || (size_t)n >= sizeof(url))
		return pp_fail(err, PP_EINVALID, "cloud-run: create URL is too long");
	int rc = pp_req_json(io, "POST", url, "application/json", st->body, err);
	if (rc)
		return rc;
	/* A repeated create of the same jobId answers 409, which is adopted.
	 * The answer is the job's operation. */
	io->req.flags |= PP_HTTP_RESENDABLE | PP_HTTP_SMALL_ANSWER;
	return PP_STEP_SEND;
}

static int send_run(struct pp_run_io *io, struct pp_error *err)
{
	struct cr_state *st = io->state;
	struct pp_json *empty = pp_json_new(PP_JSON_OBJECT);
	if (!empty)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	int rc = send_to(io, "POST", ":run", empty, st->job_name, err);
	pp_json_free(empty);
	return rc;
}

/* The job exists: adopt its execution, wait until it is ready, or run it. */
static int on_job(struct pp_run_io *io, struct pp_error *err)
{
	struct cr_state *st = io->state;
	struct pp_json *job;
	/* What of the job this reads: its template, most of the answer, is
	 * our own (issue 23). */
	static const char *const fields[] = {"latestCreatedExecution.name", "terminalCondition",
					     "reconciling", NULL};
	int rc = pp_resp_json_keep(io, "Cloud Run get job", fields, &job, err);
	if (rc)
		return rc;
	const char *exec = pp_json_get_string(pp_json_get(job, "latestCreatedExecution"), "name");
	if (exec && *exec) {
		/* A bare id is relative to the job; infra ids are full names. */
		rc = strchr(exec, '/') ? pp_run_io_set_infra_id(io, err, "%s", exec)
				       : pp_run_io_set_infra_id(io, err, "%s/executions/%s",
								st->job_name, exec);
		pp_json_free(job);
		if (rc)
			return pp_error_prefix(err,
					       "Cloud Run job %s: execution name: ", st->job_name);
		pp_info("cloud-run run %s: adopted execution %s of job %s", io->run_id,
			io->infra_id, st->job_id);
		return submitted(st);
	}
	struct pp_json *tc = pp_json_get(job, "terminalCondition");
	const char *state = pp_json_get_string(tc, "state");
	if (state && !strcmp(state, "CONDITION_FAILED")) {
		const char *reason = pp_json_get_string(tc, "reason");
		rc = pp_fail(err, PP_EINVALID, "Cloud Run job %s is not ready: %s: %s",
			     st->job_name, reason ? reason : "CONDITION_FAILED",
			     pp_json_get_string(tc, "message") ? pp_json_get_string(tc, "message")
							       : "");
		pp_json_free(job);
		return rc;
	}
	bool busy = pp_json_get_bool(job, "reconciling", false) ||
		    (state && (!strcmp(state, "CONDITION_PENDING") ||
			       !strcmp(state, "CONDITION_RECONCILING")));
	pp_json_free(job);
	if (busy) {
		io->poll_after_ms = CR_READY_POLL_MS;
		return PP_STEP_WAIT;
	}
	st->step = CR_RUN;
	return send_run(io, err);
}

static int cr_submit(struct pp_run_io *io, struct pp_error *err)
{
	struct cr_state *st = io->state;
	char gstatus[64];
	int rc;

	switch (st->step) {
	case CR_CREATE:
		st->create_sent = true;
		if (!io->resp)
			return send_create(io, err);
		if (io->resp_rc) {
			rc = cr_error(io, "create job", gstatus, sizeof(gstatus), err);
			/* Our deterministic id exists: an earlier try created it. */
			if (io->resp->status != 409 || !strcmp(gstatus, "ABORTED"))
				return rc;
			pp_error_clear(err);
			pp_info("cloud-run run %s: job %s already exists, adopting it", io->run_id,
				st->job_id);
		}
		st->step = CR_GET_JOB;
		return send_to(io, "GET", "", NULL, st->job_name, err);
	case CR_GET_JOB:
		if (!io->resp)
			return send_to(io, "GET", "", NULL, st->job_name, err);
		if (io->resp_rc) {
			rc = cr_error(io, "get job", NULL, 0, err);
			/* We created it a moment ago: a 404 is a lagging read. */
			if (rc == PP_ENOTFOUND)
				rc = err->code = PP_ETRANSIENT;
			return rc;
		}
		return on_job(io, err);
	case CR_RUN:
		if (!io->resp)
			return send_run(io, err);
		if (io->resp_rc) {
			rc = cr_error(io, "run job", NULL, 0, err);
			/* The run may have started even though the answer was
			 * lost: look at the job again before running it. A
			 * throttled call was refused, so it is simply repeated. */
			if (rc == PP_ETRANSIENT)
				st->step = CR_GET_JOB;
			return rc;
		}
		break;
	case CR_SUBMITTED: return PP_STEP_DONE;
	}

	struct pp_json *op;
	/* The execution's name, of all the operation says about it. */
	static const char *const names[] = {"metadata.name", "response.name", NULL};
	rc = pp_resp_json_keep(io, "Cloud Run run job", names, &op, err);
	if (rc)
		return rc;
	const char *exec = pp_json_get_string(pp_json_get(op, "metadata"), "name");
	if (!exec)
		exec = pp_json_get_string(pp_json_get(op, "response"), "name");
	if (!exec || !*exec) {
		pp_json_free(op);
		st->step = CR_GET_JOB;
		return pp_fail(err, PP_ETRANSIENT,
			       "Cloud Run run job %s: the operation names no execution",
			       st->job_id);
	}
	rc = pp_run_io_set_infra_id(io, err, "%s", exec);
	pp_json_free(op);
	return rc ? rc : submitted(st);
}

static const struct pp_json *find_condition(const struct pp_json *ex, const char *type)
{
	pp_json_foreach (c, pp_json_get(ex, "conditions")) {
		const char *t = pp_json_get_string(c, "type");
		if (t && !strcmp(t, type))
			return c;
	}
	return NULL;
}

static bool one_of(const char *s, const char *const *list)
{
	for (; s && *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

/* A failed execution whose tasks never ran: the first failed condition
 * says why, by its CommonReason (condition.proto): the image missing or not
 * readable, or a network, secret or key the task needs; a failed
 * ResourcesAvailable is capacity, a failed Started anything else. NULL
 * *why and PP_START_OK when a task ran (then its exit is the outcome). */
static enum pp_start_failure classify_execution(const struct pp_json *ex, const char **why)
{
	static const char *const image[] = {"CONTAINER_MISSING", "CONTAINER_IMAGE_UNAUTHORIZED",
					    "CONTAINER_IMAGE_AUTHORIZATION_CHECK_FAILED",
					    "CONTAINER_PERMISSION_DENIED", NULL};
	static const char *const init[] = {"VPC_NETWORK_NOT_FOUND", "SECRETS_ACCESS_CHECK_FAILED",
					   "ENCRYPTION_KEY_PERMISSION_DENIED",
					   "ENCRYPTION_KEY_CHECK_FAILED", NULL};
	*why = NULL;
	if (pp_json_get_string(ex, "startTime"))
		return PP_START_OK;
	pp_json_foreach (c, pp_json_get(ex, "conditions")) {
		const char *type = pp_json_get_string(c, "type");
		const char *state = pp_json_get_string(c, "state");
		const char *reason = pp_json_get_string(c, "reason");
		if (!type || !state || strcmp(state, "CONDITION_FAILED") ||
		    !strcmp(type, "Completed"))
			continue;
		*why = pp_json_get_string(c, "message");
		if (one_of(reason, image))
			return PP_START_IMAGE_PULL;
		if (one_of(reason, init))
			return PP_START_RESOURCE_INIT;
		return !strcmp(type, "ResourcesAvailable") ? PP_START_CAPACITY : PP_START_OTHER;
	}
	return PP_START_OK;
}

static void map_execution(struct pp_run_io *io, const struct pp_json *ex)
{
	long long running = pp_json_get_int(ex, "runningCount", 0);
	long long succeeded = pp_json_get_int(ex, "succeededCount", 0);
	long long failed = pp_json_get_int(ex, "failedCount", 0);
	long long cancelled = pp_json_get_int(ex, "cancelledCount", 0);
	long long tasks = pp_json_get_int(ex, "taskCount", 1);
	const struct pp_json *done = find_condition(ex, "Completed");
	const char *state = pp_json_get_string(done, "state");
	const char *reason = pp_json_get_string(done, "executionReason");
	const char *msg = pp_json_get_string(done, "message");

	io->exit_code = -1;
	pp_clear_message(io);
	io->start_failure = PP_START_OK;
	if (!pp_json_get_string(ex, "completionTime")) {
		if (running > 0)
			io->state_out = PP_RUN_RUNNING;
		else if (pp_json_get_string(ex, "startTime"))
			io->state_out = PP_RUN_PROVISIONING;
		else
			io->state_out = PP_RUN_QUEUED;
		return;
	}
	if (state && !strcmp(state, "CONDITION_SUCCEEDED")) {
		io->state_out = PP_RUN_SUCCEEDED;
		io->exit_code = 0;
		return;
	}
	if (!state && succeeded >= tasks && failed == 0 && cancelled == 0) {
		io->state_out = PP_RUN_SUCCEEDED;
		io->exit_code = 0;
		return;
	}
	if ((reason && (!strcmp(reason, "CANCELLED") || !strcmp(reason, "CANCELLING"))) ||
	    (cancelled > 0 && failed == 0)) {
		io->state_out = PP_RUN_CANCELLED;
		pp_set_message(io, "%s", msg ? msg : "execution was cancelled");
		return;
	}
	io->state_out = PP_RUN_FAILED;
	const char *why;
	io->start_failure = classify_execution(ex, &why);
	if (io->start_failure != PP_START_OK && why) {
		pp_set_message(io, "%s (%lld of %lld tasks failed)", why, failed, tasks);
		return;
	}
	pp_set_message(io, "%s%s%s (%lld of %lld tasks failed)",
		       reason ? reason : "execution failed", msg ? ": " : "", msg ? msg : "",
		       failed, tasks);
}

static int cr_status(struct pp_run_io *io, struct pp_error *err)
{
	if (!io->infra_id)
		return pp_fail(err, PP_EINVALID, "cloud-run status: run %s has no execution",
			       io->run_id);
	if (!io->resp)
		return send_to(io, "GET", "", NULL, io->infra_id, err);
	if (io->resp_rc)
		return cr_error(io, "get execution", NULL, 0, err);
	/* What map_execution reads: a poll, a run's steady cost while it runs,
	 * builds no tree of the execution's template. */
	static const char *const fields[] = {
		"runningCount",	  "succeededCount", "failedCount",
		"cancelledCount", "taskCount",	    "completionTime",
		"startTime",	  "conditions",	    NULL,
	};
	struct pp_json *ex;
	int rc = pp_resp_json_keep(io, "Cloud Run get execution", fields, &ex, err);
	if (rc)
		return rc;
	map_execution(io, ex);
	pp_json_free(ex);
	return PP_STEP_DONE;
}

/* The answer to GetExecution: 1 when the execution has stopped
 * (completionTime set), 0 while it runs, negative on a bad answer. */
static int execution_stopped(struct pp_run_io *io, struct pp_error *err)
{
	struct pp_json *ex;
	int rc = pp_resp_json(io, "Cloud Run get execution", &ex, err);
	if (rc)
		return rc;
	rc = pp_json_get_string(ex, "completionTime") ? 1 : 0;
	pp_json_free(ex);
	return rc;
}

static int send_cancel(struct pp_run_io *io, struct pp_error *err)
{
	struct pp_json *empty = pp_json_new(PP_JSON_OBJECT);
	if (!empty)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	int rc = send_to(io, "POST", ":cancel", empty, io->infra_id, err);
	pp_json_free(empty);
	return rc;
}

/* CancelExecution. A refusal of any code ends the cancel when the execution
 * has already stopped (Cloud Run answers FAILED_PRECONDITION, or another
 * error, for a finished one): we look at the execution before deciding. */
static int cr_cancel(struct pp_run_io *io, struct pp_error *err)
{
	struct cr_state *st = io->state;
	char gstatus[64];
	if (!io->infra_id)
		return pp_fail(err, PP_EINVALID, "cloud-run cancel: run %s has no execution",
			       io->run_id);
	if (st->cancel == CC_CHECK) {
		if (!io->resp)
			return send_to(io, "GET", "", NULL, io->infra_id, err);
		int rc = io->resp_rc == PP_ENOTFOUND ? 1
			 : io->resp_rc ? cr_error(io, "get execution after a refused cancel", NULL,
						  0, err)
				       : execution_stopped(io, err);
		if (rc < 0 && pp_err_retryable(rc))
			return rc;
		st->cancel = CC_CANCEL;
		if (rc == 1) {
			pp_set_message(io, "execution had already stopped (%s)",
				       st->cancel_err->msg);
			pp_error_clear(err);
			return PP_STEP_DONE;
		}
		*err = *st->cancel_err;
		return err->code;
	}
	if (!io->resp)
		return send_cancel(io, err);
	if (!io->resp_rc)
		return PP_STEP_DONE;
	int rc = cr_error(io, "cancel execution", gstatus, sizeof(gstatus), err);
	/* Cancelling a finished execution is refused; nothing is left to stop. */
	if (!strcmp(gstatus, "FAILED_PRECONDITION")) {
		pp_set_message(io, "%s", err->msg);
		pp_error_clear(err);
		return PP_STEP_DONE;
	}
	if (pp_err_retryable(rc) || rc == PP_ENOTFOUND)
		return rc;
	/* Kept apart from the state: a cancel is refused rarely. */
	if (!st->cancel_err && !(st->cancel_err = malloc(sizeof(*st->cancel_err))))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	*st->cancel_err = *err;
	st->cancel = CC_CHECK;
	pp_error_clear(err);
	return send_to(io, "GET", "", NULL, io->infra_id, err);
}

static int send_delete(struct pp_run_io *io, struct pp_error *err)
{
	struct cr_state *st = io->state;
	st->clean = CL_DELETE;
	return send_to(io, "DELETE", "", NULL, st->job_name, err);
}

/* GetExecution until it has stopped, then DeleteJob. */
static int cr_cleanup(struct pp_run_io *io, struct pp_error *err)
{
	struct cr_state *st = io->state;
	char gstatus[64];
	/* Nothing to remove when no CreateJob went out and no execution is
	 * known (a restored run has one). */
	if (st->keep_job || !st->job_name || (!st->create_sent && !io->infra_id))
		return PP_STEP_DONE;
	if (st->clean == CL_CHECK) {
		if (!io->infra_id)
			return send_delete(io, err);
		if (!io->resp)
			return send_to(io, "GET", "", NULL, io->infra_id, err);
		if (io->resp_rc == PP_ENOTFOUND)
			return send_delete(io, err);
		int rc = io->resp_rc ? cr_error(io, "get execution before deleting the job", NULL,
						0, err)
				     : execution_stopped(io, err);
		if (rc < 0)
			return rc;
		if (rc == 1)
			return send_delete(io, err);
		pp_debug("cloud-run run %s: execution %s still stopping, job delete waits",
			 io->run_id, io->infra_id);
		io->poll_after_ms = CR_STOP_POLL_MS;
		return PP_STEP_WAIT;
	}
	if (!io->resp)
		return send_delete(io, err);
	if (!io->resp_rc || io->resp_rc == PP_ENOTFOUND) {
		st->clean = CL_CHECK;
		return PP_STEP_DONE;
	}
	int rc = cr_error(io, "delete job", gstatus, sizeof(gstatus), err);
	/* Refused while an execution still runs: look again, then retry. */
	if (!strcmp(gstatus, "FAILED_PRECONDITION") && io->infra_id) {
		pp_error_clear(err);
		st->clean = CL_CHECK;
		io->poll_after_ms = CR_STOP_POLL_MS;
		return PP_STEP_WAIT;
	}
	return rc;
}

/* The next ListJobs page's token (NULL or "": the last page was read). */
static int set_page_token(struct cr_state *st, const char *next, struct pp_error *err)
{
	free(st->page_token);
	st->page_token = NULL;
	if (!next || !*next)
		return 0;
	if (strlen(next) > CR_PAGE_TOKEN_MAX)
		return pp_fail(err, PP_EINVALID,
			       "ListJobs page token is too long (at most %d bytes)",
			       CR_PAGE_TOKEN_MAX);
	st->page_token = strdup(next);
	return st->page_token ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
}

static int send_list(struct pp_run_io *io, struct pp_error *err)
{
	struct cr_state *st = io->state;
	struct pp_buf url;
	pp_buf_init(&url, 2048);
	int rc = pp_buf_printf(&url, "%s/v2/projects/%s/locations/%s/jobs?pageSize=%d", st->base,
			       st->project, st->region, CR_LIST_PAGE_SIZE);
	if (!rc && st->page_token)
		rc = pp_buf_puts(&url, "&pageToken=") ?: pp_url_encode(&url, st->page_token, false);
	if (!rc)
		rc = pp_req_json(io, "GET", url.data, "application/json", NULL, err);
	else
		pp_fail(err, PP_EINVALID, "cloud-run: ListJobs URL is too long");
	pp_buf_free(&url);
	return rc ? rc : PP_STEP_SEND;
}

/* Each page's jobs with our label, then the next page until none is left. */
static int cr_list(struct pp_run_io *io, struct pp_error *err)
{
	struct cr_state *st = io->state;
	if (!io->resp)
		return send_list(io, err);
	if (io->resp_rc)
		return cr_error(io, "list jobs", NULL, 0, err);
	struct pp_json *body = NULL;
	int rc = pp_resp_json(io, "cloud-run list jobs", &body, err);
	if (rc)
		return rc;
	pp_json_foreach (job, pp_json_get(body, "jobs")) {
		const char *name = pp_json_get_string(job, "name");
		const struct pp_json *labels = pp_json_get(job, "labels");
		const char *run = pp_json_get_string(labels, PP_LABEL_RUN);
		const char *store = pp_json_get_string(labels, PP_LABEL_STORE);
		if (!name || !run || !*run)
			continue;
		int64_t created = 0;
		const char *ct = pp_json_get_string(job, "createTime");
		if (ct && pp_time_parse(ct, 0, &created))
			created = 0;
		if ((rc = pp_remote_list_add(io->listed, name, run, store, created, err)))
			break;
	}
	const char *next = pp_json_get_string(body, "nextPageToken");
	if (!rc)
		rc = set_page_token(st, next, err);
	pp_json_free(body);
	if (rc)
		return pp_error_prefix(err, "cloud-run: ");
	return st->page_token ? send_list(io, err) : PP_STEP_DONE;
}

/* DeleteJob on the job list named; a job already gone is removed. */
static int cr_remove(struct pp_run_io *io, struct pp_error *err)
{
	if (!io->resp) {
		if (strncmp(io->infra_id, "projects/", 9) || !strstr(io->infra_id, "/jobs/"))
			return pp_fail(err, PP_EINVALID, "cloud-run: '%s' is not a job name",
				       io->infra_id);
		return send_to(io, "DELETE", "", NULL, io->infra_id, err);
	}
	if (!io->resp_rc || io->resp_rc == PP_ENOTFOUND)
		return PP_STEP_DONE;
	return cr_error(io, "delete job", NULL, 0, err);
}

static void cr_release(void *state)
{
	struct cr_state *st = state;
	pp_json_free(st->body);
	st->body = NULL;
	pp_intern_drop(st->base);
	pp_intern_drop(st->project);
	pp_intern_drop(st->region);
	st->base = st->project = st->region = NULL;
	free(st->job_name);
	free(st->cancel_err);
	free(st->page_token);
	st->job_name = st->page_token = NULL;
	st->cancel_err = NULL;
	pp_cred_free(st->job_cred);
	st->job_cred = NULL;
}

static const char *const cr_pool_types[] = {"cloud-run-v2:push", "cloud-run-v2", NULL};

/* CreateJob answers with an operation, GetJob with a job that is ready (no
 * reconciling, no terminal condition), RunJob with the execution. */
static const struct pp_dry_answer cr_dry_run[] = {
	{.url_suffix = ":run",
	 .status = 200,
	 .body = "{\"metadata\":{\"name\":\"<execution-name>\"}}"},
	{.method = "GET", .status = 200, .body = "{}"},
	{.method = "POST", .status = 200, .body = "{}"},
	{0},
};

const struct pp_provider pp_provider_cloudrun = {
	.abi = PP_PROVIDER_ABI,
	.name = "cloud-run",
	.pool_types = cr_pool_types,
	.cred_type = "gcp",
	.dry_run = cr_dry_run,
	.state_size = sizeof(struct cr_state),
	.prepare = cr_prepare,
	.restore = cr_restore,
	.submit = cr_submit,
	.status = cr_status,
	.cancel = cr_cancel,
	.cleanup = cr_cleanup,
	.list = cr_list,
	.remove = cr_remove,
	.release = cr_release,
	.release_shared = NULL,
	.logs = pp_cloudrun_logs,
};
