/* ECS logs (the logs op, provider.h): the task's container output from
 * CloudWatch Logs, where the awslogs driver writes it (Prefect's
 * configure_cloudwatch_logs sets it up, ecs_taskdef.c). The task
 * definition the task ran says where, whoever wrote it: DescribeTasks
 * names the definition and the container, DescribeTaskDefinition gives the
 * container's logConfiguration (awslogs-group, -region, -stream-prefix),
 * and the stream is PREFIX/CONTAINER/TASK-ID (the awslogs driver's rule
 * for Fargate). GetLogEvents then pages forward from the head with
 * nextForwardToken as the cursor: the same token back means the end of
 * what is written so far. With an endpoint override every call goes to it
 * (one edge endpoint, as LocalStack and the mock serve), else to
 * logs.REGION.amazonaws.com. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "providers/common.h"
#include "providers/ecs.h"
#include "providers/logs.h"
#include "providers/provider.h"

#define ECS_TARGET  "AmazonEC2ContainerServiceV20141113."
#define LOGS_TARGET "Logs_20140328."
#define AWS_JSON    "application/x-amz-json-1.1"
/* What GetLogEvents is asked for when the caller sets no limit. */
#define LOGS_PAGE 1000

enum { STEP_TASK, STEP_TASKDEF, STEP_EVENTS };

/* "arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID": region, cluster and id. */
static int split_task_arn(const char *arn, char *region, size_t rsz, char *cluster, size_t csz,
			  char *id, size_t isz, struct pp_error *err)
{
	const char *p = arn;
	for (int i = 0; i < 3 && p; i++)
		p = strchr(p + 1, ':');
	const char *q = p ? strchr(p + 1, ':') : NULL;
	const char *task = q ? strstr(q, ":task/") : NULL;
	const char *slash = task ? strchr(task + 6, '/') : NULL;
	if (strncmp(arn, "arn:", 4) || !task || !slash || strchr(slash + 1, '/') ||
	    (size_t)(q - p - 1) >= rsz || (size_t)(slash - task - 6) >= csz ||
	    strlen(slash + 1) >= isz || q == p + 1 || !slash[1])
		return pp_fail(err, PP_EINVALID,
			       "ecs logs: infra id '%s' is not a task ARN "
			       "(arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID)",
			       arn);
	snprintf(region, rsz, "%.*s", (int)(q - p - 1), p + 1);
	snprintf(cluster, csz, "%.*s", (int)(slash - task - 6), task + 6);
	snprintf(id, isz, "%s", slash + 1);
	return 0;
}

/* POST one JSON 1.1 call of service ("ecs" or "logs") in region, signed
 * for that service: the scope is set just before the request goes out. */
static int send_call(struct pp_run_io *io, const char *service, const char *region,
		     const char *target, const struct pp_json *body, struct pp_error *err)
{
	char url[300];
	if (io->endpoint && *io->endpoint)
		snprintf(url, sizeof(url), "%s/", io->endpoint);
	else
		snprintf(url, sizeof(url), "https://%s.%s.amazonaws.com/", service, region);
	struct pp_cred *c = io->run_cred ? io->run_cred : io->cred;
	if (c)
		pp_cred_set_scope(c, region, service);
	int rc = pp_req_json(io, "POST", url, AWS_JSON, body, err);
	if (rc)
		return rc;
	if (pp_http_req_header(&io->req, "X-Amz-Target", "%s", target))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	/* DescribeTasks, DescribeTaskDefinition and GetLogEvents only read: a
	 * resend on a kept-alive connection that died is harmless, so they
	 * share connections instead of a TCP and TLS handshake each (a failed
	 * run's tail takes three calls or more). */
	io->req.flags |= PP_HTTP_RESENDABLE;
	return PP_STEP_SEND;
}

static const char *container_name(const struct pp_run_io *io)
{
	const char *n = pp_json_get_string(io->job, "container_name");
	return n && *n ? n : "prefect";
}

static int send_step(struct pp_run_io *io, const char *region, const char *cluster,
		     struct pp_error *err)
{
	struct pp_logs *l = io->logs;
	struct pp_json *b = pp_json_new(PP_JSON_OBJECT);
	int rc = 0;
	if (l->step == STEP_TASK) {
		rc = pp_json_set_string(b, "cluster", cluster) ||
		     pp_json_set(b, "tasks", pp_ecs_string_array(io->infra_id));
		rc = rc ? pp_fail(err, PP_ENOMEM, "out of memory")
			: send_call(io, "ecs", region, ECS_TARGET "DescribeTasks", b, err);
	} else {
		/* where: the task definition's ARN, then the container's name */
		char *tab = strchr(l->where, '\t');
		*tab = '\0';
		rc = pp_json_set_string(b, "taskDefinition", l->where);
		*tab = '\t';
		rc = rc ? pp_fail(err, PP_ENOMEM, "out of memory")
			: send_call(io, "ecs", region, ECS_TARGET "DescribeTaskDefinition", b, err);
	}
	pp_json_free(b);
	return rc;
}

/* DescribeTasks: the task's definition and the name of our container. */
static int on_task(struct pp_run_io *io, const struct pp_json *body, struct pp_error *err)
{
	struct pp_logs *l = io->logs;
	const struct pp_json *task = pp_json_at(pp_json_get(body, "tasks"), 0);
	const char *td = pp_json_get_string(task, "taskDefinitionArn");
	const char *why =
		pp_json_get_string(pp_json_at(pp_json_get(body, "failures"), 0), "reason");
	/* Right after RunTask a task may not be visible yet (ecs.c): no
	 * output so far, ask again later. */
	if (!task && why && !strcmp(why, "MISSING"))
		return 0;
	if (!task || !td)
		return pp_fail(err, PP_ENOTFOUND,
			       "ecs logs: DescribeTasks does not know task %s (%s): ECS forgets "
			       "stopped tasks after about an hour, their logs stay in CloudWatch",
			       io->infra_id, why ? why : "no task in the answer");
	const char *want = container_name(io), *name = NULL;
	pp_json_foreach (c, pp_json_get(task, "containers")) {
		const char *n = pp_json_get_string(c, "name");
		if (n && (!name || !strcmp(n, want)))
			name = n;
	}
	if (!name)
		name = want;
	int n = snprintf(l->where, sizeof(l->where), "%s\t%s", td, name);
	if (n < 0 || (size_t)n >= sizeof(l->where))
		return pp_fail(err, PP_EINVALID, "ecs logs: task definition ARN too long");
	l->step = STEP_TASKDEF;
	return 0;
}

/* DescribeTaskDefinition: where the container's awslogs driver writes. */
static int on_taskdef(struct pp_run_io *io, const struct pp_json *body, const char *task_id,
		      struct pp_error *err)
{
	struct pp_logs *l = io->logs;
	const char *name = strchr(l->where, '\t') + 1;
	const struct pp_json *cdef = NULL;
	pp_json_foreach (c,
			 pp_json_get(pp_json_get(body, "taskDefinition"), "containerDefinitions"))
		if (pp_json_get_string(c, "name") && !strcmp(pp_json_get_string(c, "name"), name))
			cdef = c;
	const struct pp_json *lc = pp_json_get(cdef, "logConfiguration");
	const char *driver = pp_json_get_string(lc, "logDriver");
	const struct pp_json *o = pp_json_get(lc, "options");
	const char *group = pp_json_get_string(o, "awslogs-group");
	const char *region = pp_json_get_string(o, "awslogs-region");
	const char *prefix = pp_json_get_string(o, "awslogs-stream-prefix");
	if (!cdef)
		return pp_fail(err, PP_EINVALID,
			       "ecs logs: the task definition has no container %s", name);
	if (!driver || strcmp(driver, "awslogs"))
		return pp_fail(
			err, PP_EINVALID,
			"ecs logs: container %s logs with %s, not CloudWatch Logs (awslogs): "
			"set configure_cloudwatch_logs or an awslogs logConfiguration",
			name, driver ? driver : "no log driver");
	if (!group || !*group || !prefix || !*prefix)
		return pp_fail(err, PP_EINVALID,
			       "ecs logs: container %s's awslogs options name no %s, so its stream "
			       "is not known",
			       name, !group || !*group ? "awslogs-group" : "awslogs-stream-prefix");
	/* where: group, region, stream */
	int n = snprintf(l->where, sizeof(l->where), "%s\t%s\t%s/%s/%s", group,
			 region ? region : "", prefix, name, task_id);
	if (n < 0 || (size_t)n >= sizeof(l->where))
		return pp_fail(err, PP_EINVALID, "ecs logs: log stream name too long");
	l->step = STEP_EVENTS;
	return 0;
}

static int send_events(struct pp_run_io *io, const char *task_region, struct pp_error *err)
{
	struct pp_logs *l = io->logs;
	char where[sizeof(l->where)];
	snprintf(where, sizeof(where), "%s", l->where);
	char *region = strchr(where, '\t');
	*region++ = '\0';
	char *stream = strchr(region, '\t');
	*stream++ = '\0';
	struct pp_json *b = pp_json_new(PP_JSON_OBJECT);
	int rc = pp_json_set_string(b, "logGroupName", where) ||
		 pp_json_set_string(b, "logStreamName", stream) ||
		 pp_json_set_bool(b, "startFromHead", true) ||
		 pp_json_set_int(b, "limit",
				 l->limit > 0 && l->limit <= 10000 ? l->limit : LOGS_PAGE);
	if (!rc && l->cursor[0])
		rc = pp_json_set_string(b, "nextToken", l->cursor);
	else if (!rc && l->since_ms > 0)
		rc = pp_json_set_int(b, "startTime", l->since_ms);
	rc = rc ? pp_fail(err, PP_ENOMEM, "out of memory")
		: send_call(io, "logs", *region ? region : task_region, LOGS_TARGET "GetLogEvents",
			    b, err);
	pp_json_free(b);
	return rc;
}

static int on_events(struct pp_run_io *io, const struct pp_json *body, struct pp_error *err)
{
	struct pp_logs *l = io->logs;
	pp_json_foreach (e, pp_json_get(body, "events")) {
		const char *msg = pp_json_get_string(e, "message");
		int rc = msg ? pp_logs_add(l, pp_json_get_int(e, "timestamp", 0), msg, strlen(msg),
					   err)
			     : 0;
		if (rc)
			return pp_error_prefix(err, "ecs logs: ");
	}
	const char *next = pp_json_get_string(body, "nextForwardToken");
	/* The token we sent, back again: nothing more is written yet. Any
	 * other token may lead to more, even after an empty page (AWS's
	 * GetLogEvents reference). */
	l->more = next && strcmp(next, l->cursor);
	if (next)
		return pp_copy_str(l->cursor, sizeof(l->cursor), next, "nextForwardToken", err);
	return 0;
}

int pp_ecs_logs(struct pp_run_io *io, struct pp_error *err)
{
	struct pp_logs *l = io->logs;
	char region[64], cluster[256], task_id[128], code[96];
	int rc = split_task_arn(io->infra_id, region, sizeof(region), cluster, sizeof(cluster),
				task_id, sizeof(task_id), err);
	if (rc)
		return rc;
	if (!io->resp)
		return l->step == STEP_EVENTS ? send_events(io, region, err)
					      : send_step(io, region, cluster, err);
	static const char *const calls[] = {"DescribeTasks", "DescribeTaskDefinition",
					    "GetLogEvents (CloudWatch Logs)"};
	if (io->resp_rc) {
		rc = pp_ecs_error(io, calls[l->step], code, sizeof(code), NULL, err);
		/* No stream yet: the container has written nothing so far. */
		if (l->step == STEP_EVENTS && !strcmp(code, "ResourceNotFoundException")) {
			pp_error_clear(err);
			l->more = false;
			return PP_STEP_DONE;
		}
		return rc;
	}
	struct pp_json *body;
	int step = l->step;
	if ((rc = pp_resp_json(io, calls[step], &body, err)))
		return rc;
	switch (step) {
	case STEP_TASK: rc = on_task(io, body, err); break;
	case STEP_TASKDEF: rc = on_taskdef(io, body, task_id, err); break;
	default: rc = on_events(io, body, err); break;
	}
	pp_json_free(body);
	if (rc || step == STEP_EVENTS || l->step == step)
		return rc ? rc : PP_STEP_DONE;
	/* Found where the logs are: on to the next call at once. */
	return l->step == STEP_EVENTS ? send_events(io, region, err)
				      : send_step(io, region, cluster, err);
}
