/* Azure Container Instances through Azure Resource Manager (pool type
 * azure-container-instance:push).
 *
 * Prefect's worker deploys its rendered arm_template as an ARM deployment;
 * we take the containerGroups resource out of that template and PUT it
 * directly with a name derived from the run, so a replay can only update the
 * same group, never create a second one.
 * submit: [GET resource group for its location] -> GET group (adopt it when
 * an earlier try created it: a re-PUT could restart a finished group) -> PUT
 * -> follow Azure-AsyncOperation / Location until provisioning ends.
 * status: GET group, read containers[0].properties.instanceView.
 * cancel / cleanup: DELETE group and follow the deletion to its end.
 * list: the resource group's container groups (ListByResourceGroup, pages
 * by nextLink), those tagged pushpool-run-id. remove: as cleanup, on the
 * group id list reported.
 * Shaping the PUT body from the rendered template is in aci_group.c. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/time.h"
#include "providers/aci.h"
#include "providers/common.h"
#include "providers/logs.h"
#include "providers/provider.h"

#define ACI_DEFAULT_ENDPOINT	    "https://management.azure.com"
#define ACI_DEFAULT_API_VERSION	    "2023-05-01"
#define ACI_RG_API_VERSION	    "2021-04-01"
#define ACI_DEFAULT_START_TIMEOUT_S 240
#define ACI_DEFAULT_POLL_MS	    5000
#define ACI_ASYNC_POLL_MS	    2000

static void log_ratelimit(const struct pp_run_io *io)
{
	for (const struct pp_http_header *h = io->resp->headers; h; h = h->next)
		if (!strncmp(h->name, "x-ms-ratelimit-remaining-", 25))
			pp_debug("aci run %s: %s: %s", io->run_id, h->name, h->value);
}

/* Map an ARM answer {"error":{"code","message"}} to our code and a message
 * naming the call, the HTTP status, ARM's code and message. */
static int aci_error(const struct pp_run_io *io, const char *what, char *code_out, size_t code_size,
		     struct pp_error *err)
{
	int code = io->resp_rc;
	long http = io->resp->status;
	long retry_ms = io->resp_err ? io->resp_err->retry_after_ms : 0;
	struct pp_json *body = NULL;
	const char *acode = NULL, *amsg = NULL;

	if (code_out)
		code_out[0] = '\0';
	if (http == 0) {
		pp_fail(err, code, "ACI %s: %s", what,
			io->resp_err ? io->resp_err->msg : "no response");
		err->retry_after_ms = retry_ms;
		return code;
	}
	if (retry_ms < io->resp->retry_after_ms)
		retry_ms = io->resp->retry_after_ms;
	struct pp_json_limits lim = {.max_bytes = PP_PROVIDER_MAX_RESPONSE, .max_depth = 0};
	if (io->resp->body.len &&
	    pp_json_parse(io->resp->body.data, io->resp->body.len, &lim, &body, NULL) == 0) {
		struct pp_json *e = pp_json_get(body, "error");
		acode = pp_json_get_string(e, "code");
		amsg = pp_json_get_string(e, "message");
	}
	/* ARM answers 409 while a group is still transitioning. */
	if (http == 409)
		code = PP_ETRANSIENT;
	if (http == 429)
		code = PP_ETHROTTLED;
	if (code_out && acode)
		snprintf(code_out, code_size, "%s", acode);
	if (acode || amsg)
		pp_fail(err, code, "ACI %s: HTTP %ld %s: %s", what, http, acode ? acode : "",
			amsg ? amsg : "");
	else
		pp_fail(err, code, "ACI %s: %s", what,
			io->resp_err ? io->resp_err->msg : "request failed");
	err->retry_after_ms = retry_ms;
	pp_json_free(body);
	return code;
}

static bool valid_chars(const char *s, const char *extra, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
			return false;
	return true;
}

static int group_url(struct aci_state *st, struct pp_error *err)
{
	int n = snprintf(st->group_url, sizeof(st->group_url),
			 "%s/subscriptions/%s/resourceGroups/%s/providers/"
			 "Microsoft.ContainerInstance/containerGroups/%s?api-version=%s",
			 st->base, st->sub, st->rg, st->group, st->api_version);
	if (n < 0 || (size_t)n >= sizeof(st->group_url))
		return pp_fail(err, PP_EINVALID, "aci: container group URL is too long");
	return 0;
}

static int set_ids(struct aci_state *st, const char *sub, const char *rg, struct pp_error *err)
{
	if (!sub || !valid_chars(sub, "-", sizeof(st->sub) - 1))
		return pp_fail(err, PP_EINVALID,
			       "aci: subscription_id is missing or not a subscription id");
	if (!rg || !valid_chars(rg, "-_.()", 90) || rg[strlen(rg) - 1] == '.')
		return pp_fail(err, PP_EINVALID,
			       "aci: resource_group_name '%s' is missing or invalid (1-90 of "
			       "letters, digits, -_.() not ending in '.')",
			       rg ? rg : "");
	snprintf(st->sub, sizeof(st->sub), "%s", sub);
	/* Parentheses are the only path-unsafe characters allowed. */
	size_t k = 0;
	for (const char *p = rg; *p && k + 4 < sizeof(st->rg); p++) {
		if (*p == '(' || *p == ')')
			k += (size_t)snprintf(st->rg + k, sizeof(st->rg) - k, "%%%02X", *p);
		else
			st->rg[k++] = *p;
	}
	st->rg[k] = '\0';
	return 0;
}

static void read_options(struct aci_state *st, const struct pp_json *job)
{
	const char *ver = pp_json_get_string(job, "api_version");
	if (!ver || !valid_chars(ver, "-", sizeof(st->api_version) - 1))
		ver = ACI_DEFAULT_API_VERSION;
	snprintf(st->api_version, sizeof(st->api_version), "%s", ver);
	st->keep_group = pp_json_get_bool(job, "keep_container_group", false);
	st->start_timeout_s = (long)pp_json_get_int(job, "task_start_timeout_seconds",
						    ACI_DEFAULT_START_TIMEOUT_S);
	double poll;
	st->poll_ms = pp_json_get_number(job, "task_watch_poll_interval", &poll) && poll > 0
			      ? (long)(poll * 1000.0)
			      : ACI_DEFAULT_POLL_MS;
	st->started_ms = pp_mono_ms();
}

static int aci_prepare(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	const struct pp_json *job = io->job;
	int rc;

	if (!pp_json_is(job, PP_JSON_OBJECT))
		return pp_fail(err, PP_EINVALID, "aci: rendered job configuration is missing");
	if ((rc = pp_job_cred(io, &st->job_cred, "aci_credentials", "azure", err)))
		return pp_error_prefix(err, "aci: ");
	const char *sub = pp_json_get_string(job, "subscription_id");
	if ((!sub || !*sub) && pp_run_cred(io))
		sub = pp_cred_project(pp_run_cred(io));
	read_options(st, job);
	if ((rc = set_ids(st, sub, pp_json_get_string(job, "resource_group_name"), err)))
		return rc;
	if ((rc = pp_base_url(st->base, sizeof(st->base), io->endpoint, ACI_DEFAULT_ENDPOINT,
			      err)) ||
	    (rc = pp_derive_name(st->group, sizeof(st->group), io->run_id, io->attempt, err)) ||
	    (rc = group_url(st, err)))
		return pp_error_prefix(err, "aci: ");
	if ((rc = pp_aci_shape_body(io, st, err)))
		return pp_error_prefix(err, "aci: ");
	st->step = pp_json_get(st->body, "location") ? S_GET : S_RG;
	st->del = D_DELETE;
	return 0;
}

/* infra id: the group's ARM id, /subscriptions/S/resourceGroups/R/providers/
 * Microsoft.ContainerInstance/containerGroups/N. */
static int parse_group_id(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	char sub[64], rg[288], name[64];
	if (!io->infra_id || sscanf(io->infra_id,
				    "/subscriptions/%63[^/]/resourceGroups/%287[^/]/providers/"
				    "Microsoft.ContainerInstance/containerGroups/%63[^/]",
				    sub, rg, name) != 3)
		return pp_fail(err, PP_EINVALID,
			       "aci: infra id '%s' is not a container group id (/subscriptions/S/"
			       "resourceGroups/R/providers/Microsoft.ContainerInstance/"
			       "containerGroups/N)",
			       io->infra_id);
	/* The id carries the resource group already encoded as on the wire. */
	snprintf(st->sub, sizeof(st->sub), "%s", sub);
	snprintf(st->rg, sizeof(st->rg), "%s", rg);
	snprintf(st->group, sizeof(st->group), "%s", name);
	int rc = pp_base_url(st->base, sizeof(st->base), io->endpoint, ACI_DEFAULT_ENDPOINT, err);
	return rc ? rc : group_url(st, err);
}

static int aci_restore(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	read_options(st, io->job);
	int rc = io->job ? pp_job_cred(io, &st->job_cred, "aci_credentials", "azure", err) : 0;
	if (!rc)
		rc = parse_group_id(io, err);
	st->step = S_DONE;
	st->del = D_DELETE;
	return rc;
}

static int send(struct pp_run_io *io, const char *method, const char *url,
		const struct pp_json *body, struct pp_error *err)
{
	int rc = pp_req_json(io, method, url, "application/json", body, err);
	if (rc)
		return rc;
	/* ARM writes are PUTs and DELETEs of a named resource: the same
	 * request twice leaves the same resource. Each answer but a list's
	 * (send_list) is the one resource the request names. */
	io->req.flags |= PP_HTTP_RESENDABLE | PP_HTTP_SMALL_ANSWER;
	return PP_STEP_SEND;
}

static int send_rg(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	char url[512];
	int n = snprintf(url, sizeof(url), "%s/subscriptions/%s/resourcegroups/%s?api-version=%s",
			 st->base, st->sub, st->rg, ACI_RG_API_VERSION);
	if (n < 0 || (size_t)n >= sizeof(url))
		return pp_fail(err, PP_EINVALID, "aci: resource group URL is too long");
	return send(io, "GET", url, NULL, err);
}

/* Status URLs come from the server; the token goes only to the ARM host we
 * were configured with. */
static int take_async_url(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	const char *url = pp_http_resp_header(io->resp, "azure-asyncoperation");
	st->async_is_location = false;
	if (!url || !*url) {
		url = pp_http_resp_header(io->resp, "location");
		st->async_is_location = true;
	}
	st->async_url[0] = '\0';
	if (!url || !*url)
		return 0;
	const char *scheme = strstr(st->base, "://");
	const char *host_end = scheme ? strchr(scheme + 3, '/') : NULL;
	size_t origin = host_end ? (size_t)(host_end - st->base) : strlen(st->base);
	if (strncmp(url, st->base, origin) || (url[origin] != '/' && url[origin] != '\0'))
		return pp_fail(err, PP_EINVALID,
			       "aci: status URL '%.200s' is not on the ARM endpoint %s", url,
			       st->base);
	return pp_copy_str(st->async_url, sizeof(st->async_url), url, "aci status URL", err);
}

static long wait_ms(const struct pp_run_io *io)
{
	return io->resp && io->resp->retry_after_ms > 0 ? io->resp->retry_after_ms
							: ACI_ASYNC_POLL_MS;
}

/* One answer from an async operation status URL: 1 finished, 0 still
 * running, negative on failure. */
static int async_result(struct pp_run_io *io, const char *what, struct pp_error *err)
{
	struct aci_state *st = io->state;
	if (st->async_is_location) {
		if (io->resp->status == 202)
			return 0;
		return 1;
	}
	struct pp_json *op;
	int rc = pp_resp_json(io, what, &op, err);
	if (rc)
		return rc;
	const char *status = pp_json_get_string(op, "status");
	if (!status || !strcmp(status, "InProgress") || !strcmp(status, "Accepted") ||
	    !strcmp(status, "Running") || !strcmp(status, "Creating") ||
	    !strcmp(status, "Deleting")) {
		pp_json_free(op);
		return 0;
	}
	if (!strcmp(status, "Succeeded")) {
		pp_json_free(op);
		return 1;
	}
	struct pp_json *e = pp_json_get(op, "error");
	rc = pp_fail(err, PP_EINVALID, "ACI %s %s: operation %s: %s: %s", what, st->group, status,
		     pp_json_get_string(e, "code") ? pp_json_get_string(e, "code") : "",
		     pp_json_get_string(e, "message") ? pp_json_get_string(e, "message") : "");
	pp_json_free(op);
	return rc;
}

static int submitted(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	int rc = pp_run_io_set_infra_id(io, err,
					"/subscriptions/%s/resourceGroups/%s/providers/"
					"Microsoft.ContainerInstance/containerGroups/%s",
					st->sub, st->rg, st->group);
	if (rc)
		return pp_error_prefix(err, "aci: container group id: ");
	st->step = S_DONE;
	st->started_ms = pp_mono_ms();
	return PP_STEP_DONE;
}

static int on_rg(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	struct pp_json *rg;
	int rc = pp_resp_json(io, "ACI get resource group", &rg, err);
	if (rc)
		return rc;
	const char *loc = pp_json_get_string(rg, "location");
	if (!loc || !*loc)
		rc = pp_fail(err, PP_EINVALID, "ACI get resource group: answer has no location");
	else if (pp_json_set_string(st->body, "location", loc))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	pp_json_free(rg);
	if (rc)
		return rc;
	st->step = S_GET;
	return send(io, "GET", st->group_url, NULL, err);
}

static int on_put(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	struct pp_json *g;
	int rc = take_async_url(io, err);
	if (rc || (rc = pp_resp_json(io, "ACI create container group", &g, err)))
		return rc;
	char ps[32];
	snprintf(ps, sizeof(ps), "%s",
		 pp_json_get_string(pp_json_get(g, "properties"), "provisioningState")
			 ? pp_json_get_string(pp_json_get(g, "properties"), "provisioningState")
			 : "");
	pp_json_free(g);
	bool done = !*ps || !strcmp(ps, "Succeeded") || !strcmp(ps, "Failed") ||
		    !strcmp(ps, "Canceled");
	pp_info("aci run %s: container group %s %s (%s)", io->run_id, st->group,
		io->resp->status == 201 ? "created" : "updated", *ps ? ps : "no state");
	/* A failed provisioning shows in the instance view; status reports it. */
	if (done || !st->async_url[0])
		return submitted(io, err);
	st->step = S_POLL;
	io->poll_after_ms = wait_ms(io);
	return PP_STEP_WAIT;
}

static int aci_submit(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	int rc;

	if (io->resp) {
		log_ratelimit(io);
		if (io->resp_rc && !(st->step == S_GET && io->resp_rc == PP_ENOTFOUND)) {
			const char *what = st->step == S_RG    ? "get resource group"
					   : st->step == S_GET ? "get container group"
					   : st->step == S_PUT ? "create container group"
							       : "poll create operation";
			rc = aci_error(io, what, NULL, 0, err);
			/* The PUT may have landed although its answer was lost. */
			if (st->step == S_PUT && pp_err_retryable(rc))
				st->step = S_GET;
			return rc;
		}
	}
	switch (st->step) {
	case S_RG: return io->resp ? on_rg(io, err) : send_rg(io, err);
	case S_GET:
		if (!io->resp)
			return send(io, "GET", st->group_url, NULL, err);
		if (io->resp_rc == PP_ENOTFOUND) {
			st->step = S_PUT;
			st->put_sent = true;
			return send(io, "PUT", st->group_url, st->body, err);
		}
		/* Ours by its name: an earlier try created it. */
		pp_info("aci run %s: container group %s exists, adopting it", io->run_id,
			st->group);
		return submitted(io, err);
	case S_PUT:
		st->put_sent = true;
		return io->resp ? on_put(io, err) : send(io, "PUT", st->group_url, st->body, err);
	case S_POLL:
		if (!io->resp)
			return send(io, "GET", st->async_url, NULL, err);
		rc = async_result(io, "create container group", err);
		if (rc < 0)
			return rc;
		if (rc == 1)
			return submitted(io, err);
		io->poll_after_ms = wait_ms(io);
		return PP_STEP_WAIT;
	case S_DONE: return PP_STEP_DONE;
	}
	return pp_fail(err, PP_EINVALID, "aci: bad submit step %d", (int)st->step);
}

static const char *first_event_message(const struct pp_json *view)
{
	const char *msg = NULL;
	pp_json_foreach (e, pp_json_get(view, "events"))
		if (pp_json_get_string(e, "message"))
			msg = pp_json_get_string(e, "message");
	return msg;
}

/* The message of a failed image pull in a container's events: ACI reports
 * it as a Warning event "Failed" whose message starts "Failed to pull
 * image" (then ErrImagePull / ImagePullBackOff). NULL when there is none. */
static const char *pull_failure(const struct pp_json *view)
{
	pp_json_foreach (e, pp_json_get(view, "events")) {
		const char *name = pp_json_get_string(e, "name");
		const char *msg = pp_json_get_string(e, "message");
		if (name && msg && !strcmp(name, "Failed") &&
		    !strncmp(msg, "Failed to pull image", strlen("Failed to pull image")))
			return msg;
	}
	return NULL;
}

/* The class of a group whose provisioning failed, from the reason ACI
 * gives in its events: an image it could not reach (InaccessibleImage, a
 * failed pull) or a region without capacity (ServiceUnavailable: "the
 * requested resource is not available in the location"). */
static enum pp_start_failure classify_provisioning(const char *why)
{
	if (!why)
		return PP_START_OTHER;
	if (strcasestr(why, "InaccessibleImage") || strcasestr(why, "pull image") ||
	    strcasestr(why, "ErrImagePull"))
		return PP_START_IMAGE_PULL;
	if (strcasestr(why, "capacity") || strcasestr(why, "not available in the location") ||
	    strcasestr(why, "ServiceUnavailable"))
		return PP_START_CAPACITY;
	return PP_START_OTHER;
}

static void map_group(struct pp_run_io *io, const struct pp_json *g)
{
	struct aci_state *st = io->state;
	const struct pp_json *gp = pp_json_get(g, "properties");
	const char *ps = pp_json_get_string(gp, "provisioningState");
	const struct pp_json *c0 = pp_json_at(pp_json_get(gp, "containers"), 0);
	const struct pp_json *view = pp_json_path(c0, "properties.instanceView");
	const struct pp_json *cur = pp_json_get(view, "currentState");
	const char *state = pp_json_get_string(cur, "state");
	const char *detail = pp_json_get_string(cur, "detailStatus");

	io->exit_code = -1;
	pp_clear_message(io);
	io->start_failure = PP_START_OK;
	if (state && !strcmp(state, "Terminated")) {
		io->exit_code = (int)pp_json_get_int(cur, "exitCode", -1);
		io->state_out = io->exit_code == 0 ? PP_RUN_SUCCEEDED : PP_RUN_FAILED;
		if (io->exit_code != 0)
			pp_set_message(io, "container exited with code %d%s%s", io->exit_code,
				       detail && *detail ? ": " : "", detail ? detail : "");
		return;
	}
	/* ACI keeps retrying a pull that failed, but the image is what the
	 * run was given: a failed pull fails the run now, with the registry's
	 * reason, instead of a start timeout later. */
	const char *pull = state && !strcmp(state, "Running") ? NULL : pull_failure(view);
	if (pull) {
		io->state_out = PP_RUN_FAILED;
		io->start_failure = PP_START_IMAGE_PULL;
		pp_set_message(io, "image pull failed: %s", pull);
		return;
	}
	if (ps && (!strcmp(ps, "Failed") || !strcmp(ps, "Canceled"))) {
		const char *why = first_event_message(view);
		if (!why)
			why = first_event_message(pp_json_get(gp, "instanceView"));
		io->state_out = PP_RUN_CRASHED;
		io->start_failure = strcmp(ps, "Failed")
					    ? PP_START_OK
					    : classify_provisioning(why ? why : detail);
		pp_set_message(io, "provisioning %s%s%s", ps, why || detail ? ": " : "",
			       why	? why
			       : detail ? detail
					: "");
		return;
	}
	if (state && !strcmp(state, "Running")) {
		io->state_out = PP_RUN_RUNNING;
		return;
	}
	double waited = (double)(pp_mono_ms() - st->started_ms) / 1000.0;
	if (waited >= (double)st->start_timeout_s) {
		const char *why = first_event_message(view);
		io->state_out = PP_RUN_CRASHED;
		io->start_failure = PP_START_OTHER;
		pp_set_message(io, "container did not start within %ld s (state %s%s%s)",
			       st->start_timeout_s,
			       state ? state
			       : ps  ? ps
				     : "unknown",
			       detail || why ? ": " : "",
			       detail ? detail
			       : why  ? why
				      : "");
		return;
	}
	io->state_out = ps && (!strcmp(ps, "Pending") || !strcmp(ps, "Accepted"))
				? PP_RUN_QUEUED
				: PP_RUN_PROVISIONING;
}

static int aci_status(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	if (!io->infra_id)
		return pp_fail(err, PP_EINVALID, "aci status: run %s has no container group",
			       io->run_id);
	if (!io->resp)
		return send(io, "GET", st->group_url, NULL, err);
	log_ratelimit(io);
	if (io->resp_rc == PP_ENOTFOUND) {
		/* Deleted under us: by a cancel, or by someone else. */
		io->state_out = PP_RUN_CRASHED;
		io->exit_code = -1;
		pp_set_message(io, "container group %s no longer exists", st->group);
		return PP_STEP_DONE;
	}
	if (io->resp_rc)
		return aci_error(io, "get container group", NULL, 0, err);
	/* What map_group reads: a poll, a run's steady cost while it runs,
	 * builds no tree of the group's definition. */
	static const char *const fields[] = {
		"properties.provisioningState",
		"properties.containers.properties.instanceView",
		"properties.instanceView",
		NULL,
	};
	struct pp_json *g;
	int rc = pp_resp_json_keep(io, "ACI get container group", fields, &g, err);
	if (rc)
		return rc;
	map_group(io, g);
	pp_json_free(g);
	io->poll_after_ms = st->poll_ms;
	return PP_STEP_DONE;
}

/* DELETE and follow it until the group is gone. */
static int delete_group(struct pp_run_io *io, const char *what, struct pp_error *err)
{
	struct aci_state *st = io->state;
	int rc;

	switch (st->del) {
	case D_DELETE:
		if (!io->resp)
			return send(io, "DELETE", st->group_url, NULL, err);
		log_ratelimit(io);
		if (io->resp_rc == PP_ENOTFOUND || io->resp->status == 204) {
			st->del = D_DONE;
			return PP_STEP_DONE;
		}
		if (io->resp_rc)
			return aci_error(io, what, NULL, 0, err);
		if (io->resp->status != 202) {
			st->del = D_DONE;
			return PP_STEP_DONE;
		}
		if ((rc = take_async_url(io, err)))
			return rc;
		if (!st->async_url[0]) {
			/* No status URL: the group's own GET turns 404 once gone. */
			snprintf(st->async_url, sizeof(st->async_url), "%s", st->group_url);
			st->async_is_location = true;
		}
		st->del = D_POLL;
		io->poll_after_ms = wait_ms(io);
		return PP_STEP_WAIT;
	case D_POLL:
		if (!io->resp)
			return send(io, "GET", st->async_url, NULL, err);
		log_ratelimit(io);
		if (io->resp_rc == PP_ENOTFOUND) {
			st->del = D_DONE;
			return PP_STEP_DONE;
		}
		if (io->resp_rc)
			return aci_error(io, what, NULL, 0, err);
		rc = async_result(io, what, err);
		if (rc < 0)
			return rc;
		/* Polling the group itself: it exists until the GET says 404. */
		if (rc == 1 && strcmp(st->async_url, st->group_url)) {
			pp_info("aci run %s: container group %s deleted", io->run_id, st->group);
			st->del = D_DONE;
			return PP_STEP_DONE;
		}
		io->poll_after_ms = wait_ms(io);
		return PP_STEP_WAIT;
	case D_DONE: return PP_STEP_DONE;
	}
	return pp_fail(err, PP_EINVALID, "aci: bad delete step %d", (int)st->del);
}

static int aci_cancel(struct pp_run_io *io, struct pp_error *err)
{
	if (!io->infra_id)
		return pp_fail(err, PP_EINVALID, "aci cancel: run %s has no container group",
			       io->run_id);
	return delete_group(io, "delete container group (cancel)", err);
}

static int aci_cleanup(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	/* A submission that failed after its PUT (provisioning Failed, the
	 * answer lost) has no infra id, but the group may be there. */
	if (st->keep_group || (!io->infra_id && !st->put_sent))
		return PP_STEP_DONE;
	return delete_group(io, "delete container group", err);
}

static int send_list(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	const char *page = st->async_url;
	char url[1024];
	if (!page[0]) {
		int n = snprintf(url, sizeof(url),
				 "%s/subscriptions/%s/resourceGroups/%s/providers/"
				 "Microsoft.ContainerInstance/containerGroups?api-version=%s",
				 st->base, st->sub, st->rg, st->api_version);
		if (n < 0 || (size_t)n >= sizeof(url))
			return pp_fail(err, PP_EINVALID,
				       "aci: container group list URL is too long");
		page = url;
	}
	int rc = send(io, "GET", page, NULL, err);
	/* A page of groups grows with them: asked for compressed. */
	io->req.flags &= ~(unsigned)PP_HTTP_SMALL_ANSWER;
	return rc;
}

/* Groups tagged pushpool-run-id, page after page, with the creation time
 * ARM's systemData carries (it is not in the ACI schema: without it the
 * sweeper counts from when it first saw the group). */
static int aci_list(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	if (!io->resp)
		return send_list(io, err);
	if (io->resp_rc)
		return aci_error(io, "list container groups", NULL, 0, err);
	struct pp_json *body = NULL;
	int rc = pp_resp_json(io, "aci list container groups", &body, err);
	if (rc)
		return rc;
	pp_json_foreach (g, pp_json_get(body, "value")) {
		const char *id = pp_json_get_string(g, "id");
		const struct pp_json *tags = pp_json_get(g, "tags");
		const char *run = pp_json_get_string(tags, PP_LABEL_RUN);
		const char *store = pp_json_get_string(tags, PP_LABEL_STORE);
		int64_t created = 0;
		const char *ct = pp_json_get_string(pp_json_get(g, "systemData"), "createdAt");
		if (ct && pp_time_parse(ct, 0, &created))
			created = 0;
		if (id && run && *run &&
		    (rc = pp_remote_list_add(io->listed, id, run, store, created, err)))
			break;
	}
	const char *next = pp_json_get_string(body, "nextLink");
	st->async_url[0] = '\0';
	/* The next page goes out with our token: only to the API we called. */
	if (!rc && next && *next &&
	    (strncmp(next, st->base, strlen(st->base)) || next[strlen(st->base)] != '/'))
		rc = pp_fail(err, PP_EINVALID, "aci: list nextLink '%.200s' leaves %s", next,
			     st->base);
	if (!rc && next && *next)
		rc = pp_copy_str(st->async_url, sizeof(st->async_url), next, "nextLink", err);
	pp_json_free(body);
	if (rc)
		return pp_error_prefix(err, "aci: ");
	return st->async_url[0] ? send_list(io, err) : PP_STEP_DONE;
}

static int aci_remove(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	if (!io->resp && st->del == D_DELETE) {
		int rc = parse_group_id(io, err);
		if (rc)
			return rc;
	}
	return delete_group(io, "delete container group (sweep)", err);
}

static void aci_release(void *state)
{
	struct aci_state *st = state;
	pp_json_free(st->body);
	st->body = NULL;
	pp_cred_free(st->job_cred);
	st->job_cred = NULL;
}

static const char *const aci_pool_types[] = {"azure-container-instance:push",
					     "azure-container-instance", NULL};

/* The resource group's location is read first; no container group exists
 * yet, so the create request follows. */
static const struct pp_dry_answer aci_dry_run[] = {
	{.method = "GET",
	 .url_part = "/containerGroups/",
	 .status = 404,
	 .body = "{\"error\":{\"code\":\"ResourceNotFound\",\"message\":\"(dry run: no group "
		 "yet)\"}}"},
	{.method = "GET", .status = 200, .body = "{\"location\":\"<resource-group-location>\"}"},
	{.method = "POST", .status = 200, .body = "{}"},
	{0},
};

const struct pp_provider pp_provider_aci = {
	.abi = PP_PROVIDER_ABI,
	.name = "aci",
	.pool_types = aci_pool_types,
	.cred_type = "azure",
	.dry_run = aci_dry_run,
	.state_size = sizeof(struct aci_state),
	.prepare = aci_prepare,
	.restore = aci_restore,
	.submit = aci_submit,
	.status = aci_status,
	.cancel = aci_cancel,
	.cleanup = aci_cleanup,
	.list = aci_list,
	.remove = aci_remove,
	.release = aci_release,
	.release_shared = NULL,
	.logs = pp_aci_logs,
};
