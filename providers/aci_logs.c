/* ACI logs (the logs op, provider.h): a container group's container output
 * from ARM's logs endpoint (Containers_ListLogs, GET .../containerGroups/
 * G/containers/C/logs?timestamps=true), which answers {"content": TEXT}
 * with the whole log so far (up to 4 MB), each line led by its timestamp.
 * The container's name comes from the group itself (a GET of the group:
 * the template may name it, else pushpool gave it the group's name). The
 * cursor is how many lines were already delivered, so a later page hands
 * out only the lines after them. ACI deletes the log with the group: once
 * the run is cleaned up its output is gone (keep_container_group keeps it).
 *
 * io->logs->where: the container's name once known. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/time.h"
#include "providers/common.h"
#include "providers/logs.h"
#include "providers/provider.h"

#define ARM_ENDPOINT	"https://management.azure.com"
#define ACI_API_VERSION "2023-05-01"
#define GROUP_ID_PATTERN                                                                           \
	"/subscriptions/S/resourceGroups/R/providers/Microsoft.ContainerInstance/containerGroups/" \
	"N"

/* ACI answers up to 4 MB of log, JSON-escaped in the answer: room for the
 * escapes. */
#define ACI_LOGS_MAX_RESPONSE ((size_t)8 << 20)

enum { STEP_GROUP, STEP_LOGS };

static int group_url(struct pp_run_io *io, const char *suffix, char *url, size_t size,
		     struct pp_error *err)
{
	char sub[64], rg[288], name[64], base[256], extra;
	if (sscanf(io->infra_id,
		   "/subscriptions/%63[^/]/resourceGroups/%287[^/]/providers/"
		   "Microsoft.ContainerInstance/containerGroups/%63[^/]%c",
		   sub, rg, name, &extra) != 3)
		return pp_fail(
			err, PP_EINVALID,
			"aci logs: infra id '%s' is not a container group id (" GROUP_ID_PATTERN
			")",
			io->infra_id);
	const char *ver = pp_json_get_string(io->job, "api_version");
	bool ver_ok = ver && *ver && strlen(ver) < 32;
	for (const char *p = ver_ok ? ver : ""; *p; p++)
		ver_ok = ver_ok && (isalnum((unsigned char)*p) || *p == '-');
	int rc = pp_base_url(base, sizeof(base), io->endpoint, ARM_ENDPOINT, err);
	if (rc)
		return pp_error_prefix(err, "aci logs: ");
	/* The id holds the resource group as it goes on the wire. */
	int n = snprintf(url, size,
			 "%s/subscriptions/%s/resourceGroups/%s/providers/"
			 "Microsoft.ContainerInstance/containerGroups/%s%s%sapi-version=%s",
			 base, sub, rg, name, suffix, strchr(suffix, '?') ? "&" : "?",
			 ver_ok ? ver : ACI_API_VERSION);
	if (n < 0 || (size_t)n >= size)
		return pp_fail(err, PP_EINVALID, "aci logs: URL too long");
	return 0;
}

static int send_step(struct pp_run_io *io, struct pp_error *err)
{
	struct pp_logs *l = io->logs;
	char url[1024], suffix[160];
	if (l->step == STEP_GROUP)
		suffix[0] = '\0';
	else
		snprintf(suffix, sizeof(suffix), "/containers/%s/logs?timestamps=true", l->where);
	int rc = group_url(io, suffix, url, sizeof(url), err);
	if (!rc)
		rc = pp_req_json(io, "GET", url, NULL, NULL, err);
	if (!rc && l->step == STEP_LOGS)
		io->req.max_response = ACI_LOGS_MAX_RESPONSE;
	return rc ? rc : PP_STEP_SEND;
}

static int arm_error(const struct pp_run_io *io, const char *what, struct pp_error *err)
{
	int code = io->resp_rc;
	long http = io->resp->status;
	if (!http)
		return pp_fail(err, code, "ACI %s: %s", what,
			       io->resp_err ? io->resp_err->msg : "no response");
	struct pp_json *body = NULL;
	struct pp_json_limits lim = {.max_bytes = PP_PROVIDER_MAX_RESPONSE};
	if (io->resp->body.len)
		pp_json_parse(io->resp->body.data, io->resp->body.len, &lim, &body, NULL);
	const struct pp_json *e = pp_json_get(body, "error");
	if (http == 429)
		code = PP_ETHROTTLED;
	pp_fail(err, code, "ACI %s: HTTP %ld %s: %s%s", what, http,
		pp_json_get_string(e, "code") ?: "", pp_json_get_string(e, "message") ?: "",
		http == 404 ? " (ACI deletes a container's logs with its group)" : "");
	if (io->resp_err)
		err->retry_after_ms = io->resp_err->retry_after_ms;
	pp_json_free(body);
	return code;
}

/* The group's first container: the one pushpool's template runs. */
static int on_group(struct pp_run_io *io, const struct pp_json *body, struct pp_error *err)
{
	struct pp_logs *l = io->logs;
	const char *name = pp_json_get_string(
		pp_json_at(pp_json_get(pp_json_get(body, "properties"), "containers"), 0), "name");
	if (!name || !*name)
		return pp_fail(err, PP_EINVALID, "aci logs: container group %s has no container",
			       io->infra_id);
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-')
			return pp_fail(err, PP_EINVALID, "aci logs: container name '%s' is invalid",
				       name);
	int rc = pp_copy_str(l->where, sizeof(l->where), name, "container name", err);
	l->step = STEP_LOGS;
	return rc;
}

/* Each line: "TIMESTAMP TEXT" (timestamps=true); lines before the cursor's
 * count were delivered already. */
static int on_logs(struct pp_run_io *io, const struct pp_json *body, struct pp_error *err)
{
	struct pp_logs *l = io->logs;
	const struct pp_json *c = pp_json_get(body, "content");
	const char *s = pp_json_string(c);
	long long done = atoll(l->cursor), seen = 0;
	size_t len = s ? c->len : 0;
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(s + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (s + i)) : len - i;
		/* A last line without its end may still be written to. */
		if (!nl)
			break;
		size_t next = i + n + 1;
		if (seen++ >= done) {
			const char *line = s + i;
			size_t sp = strcspn(line, " \n");
			char ts[64];
			int64_t ms = 0;
			if (sp < n && sp < sizeof(ts)) {
				memcpy(ts, line, sp);
				ts[sp] = '\0';
				if (!pp_time_parse(ts, 0, &ms)) {
					line += sp + 1;
					n -= sp + 1;
				} else {
					ms = 0;
				}
			}
			int rc = pp_logs_add(l, ms, line, n, err);
			if (rc)
				return pp_error_prefix(err, "aci logs: ");
		}
		i = next;
	}
	if (seen > done)
		snprintf(l->cursor, sizeof(l->cursor), "%lld", seen);
	l->more = false;
	return 0;
}

int pp_aci_logs(struct pp_run_io *io, struct pp_error *err)
{
	struct pp_logs *l = io->logs;
	if (!io->resp)
		return send_step(io, err);
	int step = l->step;
	if (io->resp_rc)
		return arm_error(io, step == STEP_GROUP ? "GET container group" : "container logs",
				 err);
	struct pp_json *body;
	struct pp_json_limits lim = {.max_bytes = ACI_LOGS_MAX_RESPONSE};
	const struct pp_buf *b = &io->resp->body;
	int rc = step == STEP_GROUP
			 ? pp_resp_json(io, "ACI GET container group", &body, err)
			 : pp_json_parse(b->data ? b->data : "", b->len, &lim, &body, err);
	if (rc)
		return step == STEP_GROUP ? rc : pp_error_prefix(err, "ACI container logs: ");
	rc = step == STEP_GROUP ? on_group(io, body, err) : on_logs(io, body, err);
	pp_json_free(body);
	if (rc)
		return rc;
	return step == STEP_GROUP ? send_step(io, err) : PP_STEP_DONE;
}
