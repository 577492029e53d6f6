/* Cloud Run logs (the logs op, provider.h): an execution's container
 * output from Cloud Logging (logging.googleapis.com v2 entries:list), where
 * Cloud Run jobs write stdout and stderr as entries of resource type
 * cloud_run_job, labelled with the execution's name. Entries come oldest
 * first (orderBy "timestamp asc"); Cloud Logging orders entries with the
 * same timestamp by insertId, so (timestamp, insertId) of the last entry
 * read is where a later query resumes. A query's pages are followed with
 * nextPageToken under the same filter; the filter moves on only once the
 * last page is read.
 *
 * io->logs->where: the filter's start ("TIMESTAMP\tINSERT_ID", "" at first);
 * io->logs->cursor: the last entry read ("TIMESTAMP\tINSERT_ID") and the
 * next page's token, tab-separated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/time.h"
#include "providers/common.h"
#include "providers/logs.h"
#include "providers/provider.h"

#define LOGGING_ENDPOINT "https://logging.googleapis.com"
/* What one page asks for when the caller sets no limit (the API's own
 * maximum is 1000). */
#define LOGGING_PAGE 1000
/* The least wait before asking again once a query is read to its end:
 * Cloud Logging allows 60 entries:list calls a minute per project, shared
 * by every reader. */
#define LOGGING_POLL_MS 2000L

/* projects/P/locations/R/jobs/J/executions/E into its parts. */
static int split_execution(const char *name, char *project, size_t psz, char *region, size_t rsz,
			   char *job, size_t jsz, char *exec, size_t esz, struct pp_error *err)
{
	const char *loc = strstr(name, "/locations/");
	const char *jobs = strstr(name, "/jobs/");
	const char *ex = strstr(name, "/executions/");
	if (strncmp(name, "projects/", 9) || !loc || !jobs || !ex || loc > jobs || jobs > ex ||
	    loc == name + 9 || jobs == loc + 11 || ex == jobs + 6 || !ex[12] ||
	    (size_t)(loc - name - 9) >= psz || (size_t)(jobs - loc - 11) >= rsz ||
	    (size_t)(ex - jobs - 6) >= jsz || strlen(ex + 12) >= esz)
		return pp_fail(err, PP_EINVALID,
			       "cloud-run logs: infra id '%s' is not an execution name "
			       "(projects/P/locations/R/jobs/J/executions/E)",
			       name);
	snprintf(project, psz, "%.*s", (int)(loc - name - 9), name + 9);
	snprintf(region, rsz, "%.*s", (int)(jobs - loc - 11), loc + 11);
	snprintf(job, jsz, "%.*s", (int)(ex - jobs - 6), jobs + 6);
	snprintf(exec, esz, "%s", ex + 12);
	return 0;
}

/* Field f (0-based) of a tab-separated text into out. */
static void field(const char *s, int f, char *out, size_t size)
{
	for (; f > 0 && s; f--)
		if ((s = strchr(s, '\t')))
			s++;
	size_t n = s ? strcspn(s, "\t") : 0;
	if (n >= size)
		n = size - 1;
	memcpy(out, s ? s : "", n);
	out[n] = '\0';
}

static int send_list(struct pp_run_io *io, struct pp_error *err)
{
	struct pp_logs *l = io->logs;
	char project[128], region[64], job[128], exec[160], url[512];
	int rc = split_execution(io->infra_id, project, sizeof(project), region, sizeof(region),
				 job, sizeof(job), exec, sizeof(exec), err);
	if (rc)
		return rc;
	char from[64], token[PP_LOGS_CURSOR_MAX], since[PP_TIME_LEN];
	field(l->where, 0, from, sizeof(from));
	field(l->cursor, 2, token, sizeof(token));
	if (!from[0] && l->since_ms > 0) {
		pp_time_format(l->since_ms, true, since);
		snprintf(from, sizeof(from), "%s", since);
	}
	struct pp_buf f;
	pp_buf_init(&f, 4096);
	rc = pp_buf_printf(&f,
			   "resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"%s\" "
			   "AND resource.labels.location=\"%s\" AND "
			   "labels.\"run.googleapis.com/execution_name\"=\"%s\" AND "
			   "(log_id(\"run.googleapis.com/stdout\") OR "
			   "log_id(\"run.googleapis.com/stderr\"))",
			   job, region, exec);
	if (!rc && from[0])
		rc = pp_buf_printf(&f, " AND timestamp>=\"%s\"", from);
	struct pp_json *b = pp_json_new(PP_JSON_OBJECT), *names = pp_json_new(PP_JSON_ARRAY);
	char res[160];
	snprintf(res, sizeof(res), "projects/%s", project);
	/* b owns names from here on, whatever happens. */
	rc = pp_json_set(b, "resourceNames", names) || rc;
	rc = rc || pp_json_append(names, pp_json_new_string(res)) ||
	     pp_json_set_string(b, "filter", pp_buf_str(&f)) ||
	     pp_json_set_string(b, "orderBy", "timestamp asc") ||
	     pp_json_set_int(b, "pageSize",
			     l->limit > 0 && l->limit <= LOGGING_PAGE ? l->limit : LOGGING_PAGE) ||
	     (token[0] && pp_json_set_string(b, "pageToken", token));
	pp_buf_free(&f);
	char base[256];
	if (rc)
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	else
		rc = pp_base_url(base, sizeof(base), io->endpoint, LOGGING_ENDPOINT, err);
	if (!rc) {
		snprintf(url, sizeof(url), "%s/v2/entries:list", base);
		rc = pp_req_json(io, "POST", url, "application/json", b, err);
	}
	/* entries:list only reads, though by POST: harmless to resend, so it
	 * shares kept-alive connections (a follow polls it every few seconds). */
	if (!rc)
		io->req.flags |= PP_HTTP_RESENDABLE;
	pp_json_free(b);
	return rc ? rc : PP_STEP_SEND;
}

/* A google.rpc.Status answer: the canonical code decides what follows. */
static int logging_error(const struct pp_run_io *io, struct pp_error *err)
{
	int code = io->resp_rc;
	if (!io->resp->status)
		return pp_fail(err, code, "Cloud Logging entries:list: %s",
			       io->resp_err ? io->resp_err->msg : "no response");
	struct pp_json *body = NULL;
	struct pp_json_limits lim = {.max_bytes = PP_PROVIDER_MAX_RESPONSE};
	if (io->resp->body.len)
		pp_json_parse(io->resp->body.data, io->resp->body.len, &lim, &body, NULL);
	const struct pp_json *e = pp_json_get(body, "error");
	const char *status = pp_json_get_string(e, "status");
	if (status && !strcmp(status, "RESOURCE_EXHAUSTED"))
		code = PP_ETHROTTLED;
	else if (status && (!strcmp(status, "UNAVAILABLE") || !strcmp(status, "INTERNAL") ||
			    !strcmp(status, "DEADLINE_EXCEEDED")))
		code = PP_ETRANSIENT;
	pp_fail(err, code, "Cloud Logging entries:list: HTTP %ld %s: %s", io->resp->status,
		status ? status : "", pp_json_get_string(e, "message") ?: "(no message)");
	if (io->resp_err)
		err->retry_after_ms = io->resp_err->retry_after_ms;
	pp_json_free(body);
	return code;
}

/* The text of one entry: textPayload, else jsonPayload's message, else
 * the JSON payload itself. *owned is set when the text must be freed. */
static const char *entry_text(const struct pp_json *e, char **owned)
{
	*owned = NULL;
	const char *t = pp_json_get_string(e, "textPayload");
	const struct pp_json *j = pp_json_get(e, "jsonPayload");
	if (t || !j)
		return t;
	if ((t = pp_json_get_string(j, "message")))
		return t;
	return *owned = pp_json_to_string(j, PP_JSON_COMPACT);
}

static int on_list(struct pp_run_io *io, const struct pp_json *body, struct pp_error *err)
{
	struct pp_logs *l = io->logs;
	char from_ts[64], from_id[128], last_ts[64], last_id[128];
	field(l->where, 0, from_ts, sizeof(from_ts));
	field(l->where, 1, from_id, sizeof(from_id));
	field(l->cursor, 0, last_ts, sizeof(last_ts));
	field(l->cursor, 1, last_id, sizeof(last_id));
	pp_json_foreach (e, pp_json_get(body, "entries")) {
		const char *ts = pp_json_get_string(e, "timestamp");
		const char *id = pp_json_get_string(e, "insertId");
		if (!ts || !id || strlen(ts) >= sizeof(last_ts) || strlen(id) >= sizeof(last_id))
			continue;
		/* Read by the query before: the filter starts at its timestamp. */
		if (!strcmp(ts, from_ts) && strcmp(id, from_id) <= 0)
			continue;
		int64_t ms = 0;
		pp_time_parse(ts, 0, &ms);
		char *owned;
		const char *text = entry_text(e, &owned);
		int rc = text ? pp_logs_add(l, ms, text, strlen(text), err) : 0;
		free(owned);
		if (rc)
			return pp_error_prefix(err, "cloud-run logs: ");
		snprintf(last_ts, sizeof(last_ts), "%s", ts);
		snprintf(last_id, sizeof(last_id), "%s", id);
	}
	const char *next = pp_json_get_string(body, "nextPageToken");
	if (next && *next) {
		l->more = true;
		int n = snprintf(l->cursor, sizeof(l->cursor), "%s\t%s\t%s", last_ts, last_id,
				 next);
		if (n < 0 || (size_t)n >= sizeof(l->cursor))
			return pp_fail(err, PP_EINVALID, "cloud-run logs: page token too long");
		return 0;
	}
	/* The query is read to its end: the next one starts after the last entry. */
	l->more = false;
	snprintf(l->cursor, sizeof(l->cursor), "%s\t%s", last_ts, last_id);
	if (last_ts[0])
		snprintf(l->where, sizeof(l->where), "%s\t%s", last_ts, last_id);
	return 0;
}

int pp_cloudrun_logs(struct pp_run_io *io, struct pp_error *err)
{
	if (!io->resp)
		return send_list(io, err);
	if (io->resp_rc)
		return logging_error(io, err);
	struct pp_json *body;
	int rc = pp_resp_json(io, "Cloud Logging entries:list", &body, err);
	if (rc)
		return rc;
	rc = on_list(io, body, err);
	pp_json_free(body);
	if (!rc && !io->logs->more)
		io->poll_after_ms = LOGGING_POLL_MS;
	return rc ? rc : PP_STEP_DONE;
}
