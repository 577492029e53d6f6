/* The ECS sweeper's ops (provider.h: list, remove).
 *
 * list: ListTasks in the pool's cluster (desiredStatus RUNNING: a stopped
 * task costs nothing and ECS forgets it), page by page, each page's ARNs
 * then DescribeTasks with include ["TAGS"] (ListTasks has no tag filter,
 * and its startedBy filter matches one value, while ours differ per run).
 * Tasks tagged pushpool:run-id are listed with their pushpool:store-id tag
 * and createdAt. remove: StopTask; a task ECS no longer knows is gone, and
 * StopTask on a stopped task succeeds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "providers/common.h"
#include "providers/ecs.h"
#include "providers/provider.h"

/* ListTasks' maximum page, which is also DescribeTasks' maximum. */
#define ECS_LIST_PAGE 100
/* A nextToken longer than this is refused rather than kept. */
#define ECS_TOKEN_MAX 4096

int pp_ecs_add_tag(struct pp_json *tags, const char *key, const char *value)
{
	struct pp_json *t = pp_json_new(PP_JSON_OBJECT);
	if (!t || pp_json_set_string(t, "key", key) || pp_json_set_string(t, "value", value)) {
		pp_json_free(t);
		return PP_ENOMEM;
	}
	return pp_json_append(tags, t) ? PP_ENOMEM : 0;
}

void pp_ecs_sweep_release(struct ecs_state *st)
{
	pp_json_free(st->list_arns);
	st->list_arns = NULL;
	free(st->list_token);
	st->list_token = NULL;
}

static const char *tag_value(const struct pp_json *tags, const char *key)
{
	pp_json_foreach (t, tags) {
		const char *k = pp_json_get_string(t, "key");
		if (k && !strcmp(k, key))
			return pp_json_get_string(t, "value");
	}
	return NULL;
}

static int send_list_tasks(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	struct pp_json *b = pp_json_new(PP_JSON_OBJECT);
	int rc = !b || (st->cluster && pp_json_set_string(b, "cluster", st->cluster)) ||
		 pp_json_set_string(b, "desiredStatus", "RUNNING") ||
		 pp_json_set_int(b, "maxResults", ECS_LIST_PAGE) ||
		 (st->list_token && pp_json_set_string(b, "nextToken", st->list_token));
	rc = rc ? pp_fail(err, PP_ENOMEM, "out of memory")
		: pp_ecs_send_action(io, "ListTasks", b, err);
	pp_json_free(b);
	return rc;
}

static int send_describe(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	struct pp_json *b = pp_json_new(PP_JSON_OBJECT);
	int rc = !b || (st->cluster && pp_json_set_string(b, "cluster", st->cluster)) ||
		 pp_json_set(b, "tasks", pp_json_clone(st->list_arns)) ||
		 pp_json_set(b, "include", pp_ecs_string_array("TAGS"));
	rc = rc ? pp_fail(err, PP_ENOMEM, "out of memory")
		: pp_ecs_send_action(io, "DescribeTasks", b, err);
	pp_json_free(b);
	return rc;
}

/* A ListTasks page: keep its ARNs and the next token, describe them. */
static int on_list_tasks(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	struct pp_json *body;
	int rc = pp_resp_json(io, "ECS ListTasks", &body, err);
	if (rc)
		return rc;
	const char *next = pp_json_get_string(body, "nextToken");
	free(st->list_token);
	st->list_token = NULL;
	if (next && *next && strlen(next) > ECS_TOKEN_MAX)
		rc = pp_fail(err, PP_EINVALID, "ECS ListTasks: nextToken of %zu bytes",
			     strlen(next));
	else if (next && *next && !(st->list_token = strdup(next)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	struct pp_json *arns = pp_json_detach(pp_json_get(body, "taskArns"));
	pp_json_free(body);
	if (rc) {
		pp_json_free(arns);
		return rc;
	}
	if (!pp_json_is(arns, PP_JSON_ARRAY) || arns->count == 0 || arns->count > ECS_LIST_PAGE) {
		bool bad = arns && (arns->type != PP_JSON_ARRAY || arns->count > ECS_LIST_PAGE);
		pp_json_free(arns);
		if (bad)
			return pp_fail(err, PP_EINVALID,
				       "ECS ListTasks: taskArns is not a list of at most %d",
				       ECS_LIST_PAGE);
		return st->list_token ? send_list_tasks(io, err) : PP_STEP_DONE;
	}
	pp_json_free(st->list_arns);
	st->list_arns = arns;
	return send_describe(io, err);
}

/* The described page's tasks carrying our run tag, then the next page. */
static int on_describe(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	struct pp_json *body;
	int rc = pp_resp_json(io, "ECS DescribeTasks", &body, err);
	if (rc)
		return rc;
	pp_json_foreach (t, pp_json_get(body, "tasks")) {
		const struct pp_json *tags = pp_json_get(t, "tags");
		const char *arn = pp_json_get_string(t, "taskArn");
		const char *run = tag_value(tags, ECS_RUN_TAG);
		if (!arn || !run || !*run)
			continue;
		double created = 0;
		pp_json_get_number(t, "createdAt", &created);
		if ((rc = pp_remote_list_add(io->listed, arn, run, tag_value(tags, ECS_STORE_TAG),
					     created > 0 ? (long long)(created * 1000.0) : 0, err)))
			break;
	}
	pp_json_free(body);
	pp_json_free(st->list_arns);
	st->list_arns = NULL;
	if (rc)
		return pp_error_prefix(err, "ecs: ");
	return st->list_token ? send_list_tasks(io, err) : PP_STEP_DONE;
}

int pp_ecs_list(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	char code[96];
	const char *action = st->list_arns ? "DescribeTasks" : "ListTasks";
	if (!io->resp)
		return st->list_arns ? send_describe(io, err) : send_list_tasks(io, err);
	if (io->resp_rc)
		return pp_ecs_error(io, action, code, sizeof(code), NULL, err);
	return st->list_arns ? on_describe(io, err) : on_list_tasks(io, err);
}

int pp_ecs_remove(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	char code[96];
	if (!io->resp) {
		if (strncmp(io->infra_id, "arn:", 4) || !strstr(io->infra_id, ":task/"))
			return pp_fail(err, PP_EINVALID, "ecs: '%s' is not a task ARN",
				       io->infra_id);
		struct pp_json *b = pp_json_new(PP_JSON_OBJECT);
		int rc = !b || (st->cluster && pp_json_set_string(b, "cluster", st->cluster)) ||
			 pp_json_set_string(b, "task", io->infra_id) ||
			 pp_json_set_string(b, "reason",
					    "Stopped by pushpool's sweeper: its run is over");
		rc = rc ? pp_fail(err, PP_ENOMEM, "out of memory")
			: pp_ecs_send_action(io, "StopTask", b, err);
		pp_json_free(b);
		return rc;
	}
	if (!io->resp_rc)
		return PP_STEP_DONE;
	int rc = pp_ecs_error(io, "StopTask", code, sizeof(code), NULL, err);
	/* ECS has forgotten the task (stopped long ago): nothing to stop. */
	if (rc == PP_ENOTFOUND ||
	    (!strcmp(code, "InvalidParameterException") && strstr(err->msg, "not found"))) {
		pp_error_clear(err);
		return PP_STEP_DONE;
	}
	return rc;
}
