/* AWS ECS (pool type ecs:push), JSON 1.1 protocol signed with SigV4.
 *
 * submit: a task definition is registered once per distinct rendered
 * definition and pool: runs share a cache keyed by the SHA-256 of the
 * definition, and while one run registers, the others wait (single flight).
 * With match_latest_revision_in_family the family's latest revision is
 * reused when it matches. RegisterTaskDefinition is not idempotent, so an
 * ambiguous failure is followed by DescribeTaskDefinition looking for our
 * hash tag before registering again; once the task of the run that
 * registered it has started, an equal lower revision registered
 * concurrently elsewhere replaces ours (converging). RunTask carries a
 * clientToken derived from the run id and attempt, so a repeated RunTask
 * returns the same task.
 * status: DescribeTasks, of up to 100 runs at once (the core batches the
 * polls of runs in one cluster). cancel: StopTask. cleanup: DeregisterTaskDefinition
 * of definitions this process registered, when the last run using it ends.
 * The task definition steps and their cache are in ecs_taskdef.c. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth.h"
#include "lib/clock.h"
#include "lib/intern.h"
#include "lib/log.h"
#include "providers/common.h"
#include "providers/ecs.h"
#include "providers/logs.h"
#include "providers/provider.h"

#define ECS_TARGET_PREFIX     "AmazonEC2ContainerServiceV20141113."
#define ECS_CONTENT_TYPE      "application/x-amz-json-1.1"
#define ECS_DEFAULT_CONTAINER "prefect"
#define ECS_MAX_OVERRIDES     8192
/* botocore ECS model: TagKey max 128, TagValue max 256, Tags max 50 */
#define ECS_TAG_KEY_MAX	  128
#define ECS_TAG_VALUE_MAX 256
#define ECS_MAX_TAGS	  50
/* DescribeTasks is eventually consistent after RunTask: a task that is
 * starting may answer failures[].reason = MISSING for a while. A run is
 * declared gone only after MISSING answers for this long, polled with
 * backoff from ECS_MISSING_POLL_MS up to ECS_MISSING_POLL_MAX_MS. */
#define ECS_MISSING_GRACE_MS	60000L
#define ECS_MISSING_POLL_MS	1000L
#define ECS_MISSING_POLL_MAX_MS 10000L
/* Tasks one DescribeTasks may name (the ECS API reference's limit, which
 * the mock enforces): the most runs one batched status poll covers. */
#define ECS_DESCRIBE_MAX 100
/* RunTask's ClientException "Tasks provisioning capacity limit exceeded."
 * (the per-cluster quota of tasks in PROVISIONING) clears as tasks start:
 * retried as a capacity error, waiting at least this long between tries. */
#define ECS_PROVISIONING_QUOTA_MSG     "provisioning capacity limit exceeded"
#define ECS_PROVISIONING_QUOTA_WAIT_MS 2000L

/* ---- errors ---- */

static const char *const throttle_codes[] = {
	"Throttling",
	"ThrottlingException",
	"ThrottledException",
	"RequestThrottledException",
	"TooManyRequestsException",
	"RequestLimitExceeded",
	"RequestThrottled",
	"LimitExceededException",
	"SlowDown",
	NULL,
};
static const char *const transient_codes[] = {
	"ServerException",
	"RequestTimeout",
	"RequestTimeoutException",
	"PriorRequestNotComplete",
	"ServiceUnavailableException",
	"InternalFailure",
	NULL,
};
static const char *const auth_codes[] = {
	"AccessDeniedException",
	"UnrecognizedClientException",
	"InvalidSignatureException",
	"ExpiredTokenException",
	"MissingAuthenticationTokenException",
	"IncompleteSignatureException",
	NULL,
};

static bool in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (!strcmp(*list, s))
			return true;
	return false;
}

/* "com.amazon.coral.validate#ValidationException:http://..." -> code, the
 * way botocore reads __type. */
static void error_code(const char *type, char *out, size_t size)
{
	const char *hash = strrchr(type, '#');
	const char *s = hash ? hash + 1 : type;
	size_t n = strcspn(s, ":");
	if (n >= size)
		n = size - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

/* Map an ECS error response; fills `code` with the error code name and
 * keeps the parsed body in *body_out when asked (ConflictException). */
int pp_ecs_error(const struct pp_run_io *io, const char *action, char *code, size_t code_size,
		 struct pp_json **body_out, struct pp_error *err)
{
	int rc = io->resp_rc;
	long http = io->resp->status;
	long retry_ms = io->resp_err ? io->resp_err->retry_after_ms : 0;
	struct pp_json *body = NULL;

	code[0] = '\0';
	if (body_out)
		*body_out = NULL;
	if (http == 0) {
		pp_fail(err, rc, "ECS %s: %s", action,
			io->resp_err ? io->resp_err->msg : "no response");
		err->retry_after_ms = retry_ms;
		return rc;
	}
	const char *ra = pp_http_resp_header(io->resp, "x-amz-retry-after");
	if (ra && atol(ra) > retry_ms)
		retry_ms = atol(ra);
	struct pp_json_limits lim = {.max_bytes = PP_PROVIDER_MAX_RESPONSE, .max_depth = 0};
	const char *msg = NULL;
	if (io->resp->body.len &&
	    pp_json_parse(io->resp->body.data, io->resp->body.len, &lim, &body, NULL) == 0) {
		const char *type = pp_json_get_string(body, "__type");
		if (type)
			error_code(type, code, code_size);
		msg = pp_json_get_string(body, "message");
		if (!msg)
			msg = pp_json_get_string(body, "Message");
	}
	if (!code[0]) {
		const char *hdr = pp_http_resp_header(io->resp, "x-amzn-errortype");
		if (hdr)
			error_code(hdr, code, code_size);
	}
	if (code[0]) {
		if (in_list(throttle_codes, code))
			rc = PP_ETHROTTLED;
		else if (in_list(transient_codes, code))
			rc = PP_ETRANSIENT;
		else if (in_list(auth_codes, code) && http != 401)
			rc = PP_EAUTH;
		else if (!strcmp(code, "ConflictException"))
			rc = PP_ECONFLICT;
	}
	if (code[0] || msg)
		pp_fail(err, rc, "ECS %s: HTTP %ld %s: %s", action, http, code,
			msg ? msg : "(no message)");
	else
		pp_fail(err, rc, "ECS %s: %s", action, io->resp_err->msg);
	err->retry_after_ms = retry_ms;
	if (body_out)
		*body_out = body;
	else
		pp_json_free(body);
	return rc;
}

/* ---- requests ---- */

int pp_ecs_send_action(struct pp_run_io *io, const char *action, const struct pp_json *body,
		       struct pp_error *err)
{
	struct ecs_state *st = io->state;
	/* The URL and target are joined by hand: through printf they took
	 * two thirds of what this function spends besides writing the body
	 * (issue 23). */
	char url[PP_BASE_URL_MAX + 2], target[sizeof(ECS_TARGET_PREFIX) + 64];
	size_t n = strlen(st->base), k = strlen(action);
	if (k >= sizeof(target) - sizeof(ECS_TARGET_PREFIX) + 1)
		return pp_fail(err, PP_EINVALID, "ECS action %.40s: name too long", action);
	memcpy(url, st->base, n);
	memcpy(url + n, "/", 2);
	memcpy(target, ECS_TARGET_PREFIX, sizeof(ECS_TARGET_PREFIX) - 1);
	memcpy(target + sizeof(ECS_TARGET_PREFIX) - 1, action, k + 1);
	/* Set for every call: the logs op signs CloudWatch Logs calls with the
	 * same credential (ecs_logs.c), and the scope is the credential's. */
	struct pp_cred *c = io->run_cred ? io->run_cred : io->cred;
	if (c)
		pp_cred_set_scope(c, st->region, "ecs");
	int rc = pp_req_json(io, "POST", url, ECS_CONTENT_TYPE, body, err);
	if (rc)
		return rc;
	if (pp_http_req_set_header(&io->req, "X-Amz-Target", target))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	/* Every action but registration is harmless to send twice: RunTask
	 * carries its clientToken (ECS answers a repeat with the first task),
	 * Describe and List only read, StopTask and Deregister of what is
	 * already stopped or inactive change nothing. A second Register
	 * would add a revision. */
	if (strcmp(action, "RegisterTaskDefinition"))
		io->req.flags |= PP_HTTP_RESENDABLE;
	/* Lists and DescribeTasks (up to 100 tasks a call) ask for their
	 * answer compressed; the other actions answer with the one task or
	 * definition they name. */
	if (strncmp(action, "List", 4) && strcmp(action, "DescribeTasks"))
		io->req.flags |= PP_HTTP_SMALL_ANSWER;
	return PP_STEP_SEND;
}

struct pp_json *pp_ecs_string_array(const char *s)
{
	struct pp_json *a = pp_json_new(PP_JSON_ARRAY);
	if (pp_json_append(a, pp_json_new_string(s))) {
		pp_json_free(a);
		return NULL;
	}
	return a;
}

static int set_cluster(struct pp_json *obj, const struct ecs_state *st)
{
	return st->cluster ? pp_json_set_string(obj, "cluster", st->cluster) : 0;
}

/* ---- the rendered job -> request bodies ---- */

bool pp_ecs_is_fargate(const struct pp_json *run)
{
	const char *lt = pp_json_get_string(run, "launchType");
	if (lt && !strncmp(lt, "FARGATE", 7))
		return true;
	pp_json_foreach (cp, pp_json_get(run, "capacityProviderStrategy")) {
		const char *name = pp_json_get_string(cp, "capacityProvider");
		if (name && !strncmp(name, "FARGATE", 7))
			return true;
	}
	return false;
}

int pp_ecs_ensure_member(struct pp_json *obj, const char *key, enum pp_json_type t,
			 struct pp_json **out, struct pp_error *err)
{
	struct pp_json *v = pp_json_get(obj, key);
	if (!v) {
		if (pp_json_set(obj, key, pp_json_new(t)))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		v = pp_json_get(obj, key);
	}
	if (v->type != t)
		return pp_fail(err, PP_EINVALID, "%s must be %s, not %s", key, pp_json_type_name(t),
			       pp_json_type_name(v->type));
	*out = v;
	return 0;
}

static int shape_network(struct ecs_state *st, struct pp_json *run, const struct pp_json *job,
			 bool fargate, struct pp_error *err)
{
	if (pp_json_get(run, "networkConfiguration"))
		return 0;
	const struct pp_json *net = pp_json_get(job, "network_configuration");
	if (net && net->type == PP_JSON_OBJECT && net->count) {
		struct pp_json *nc = pp_json_new(PP_JSON_OBJECT);
		const struct pp_json *vpc = pp_json_get(net, "awsvpcConfiguration");
		if (pp_json_set(nc, "awsvpcConfiguration", pp_json_clone(vpc ? vpc : net))) {
			pp_json_free(nc);
			return pp_fail(err, PP_ENOMEM, "out of memory");
		}
		if (pp_json_set(run, "networkConfiguration", nc))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		return 0;
	}
	if (!fargate)
		return 0;
	const char *vpc = pp_json_get_string(job, "vpc_id");
	if (vpc && *vpc) {
		/* Its subnets are looked up before the task is run (ecs_subnets.c). */
		if (!pp_ecs_vpc_id_ok(vpc))
			return pp_fail(err, PP_EINVALID, "vpc_id '%.40s' is not a VPC id (vpc-...)",
				       vpc);
		snprintf(st->vpc_id, sizeof(st->vpc_id), "%s", vpc);
		return 0;
	}
	return pp_fail(err, PP_EINVALID,
		       "Fargate tasks need network_configuration with subnets (and optionally "
		       "securityGroups, assignPublicIp), or vpc_id (every subnet of that VPC "
		       "is used, as Prefect's worker does)");
}

/* At most how many bytes j's compact text takes: a string byte escapes to
 * at most 6 ("\u00XX"), a number is written as its source text. Writing
 * the overrides out only to measure them cost more than the rest of
 * shaping them (issue 23), so they are written only when this bound is
 * over the cap. */
static size_t text_bound(const struct pp_json *j)
{
	switch (j->type) {
	case PP_JSON_NULL:
	case PP_JSON_BOOL: return 5;
	case PP_JSON_NUMBER: return j->len;
	case PP_JSON_STRING: return 2 + 6 * j->len;
	case PP_JSON_ARRAY:
	case PP_JSON_OBJECT: break;
	}
	size_t n = 2;
	pp_json_foreach (c, j) {
		n += 1 + text_bound(c);
		if (j->type == PP_JSON_OBJECT)
			n += 3 + 6 * strlen(c->key);
	}
	return n;
}

/* Prefect's worker's default command, "prefect flow-run execute", as the
 * words pp_shell_split would make of it. */
static struct pp_json *default_command(void)
{
	static const char *const words[] = {"prefect", "flow-run", "execute"};
	struct pp_json *cmd = pp_json_new(PP_JSON_ARRAY);
	for (size_t i = 0; cmd && i < sizeof(words) / sizeof(*words); i++)
		if (pp_json_append(cmd, pp_json_new_string(words[i]))) {
			pp_json_free(cmd);
			cmd = NULL;
		}
	return cmd;
}

static int shape_overrides(struct ecs_state *st, struct pp_json *run, const struct pp_json *job,
			   struct pp_error *err)
{
	struct pp_json *ov, *cos;
	int rc = pp_ecs_ensure_member(run, "overrides", PP_JSON_OBJECT, &ov, err);
	rc = rc ? rc : pp_ecs_ensure_member(ov, "containerOverrides", PP_JSON_ARRAY, &cos, err);
	if (rc)
		return pp_error_prefix(err, "task_run_request.");
	if (!cos->count && pp_json_append(cos, pp_json_new(PP_JSON_OBJECT)))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	struct pp_json *co = pp_json_at(cos, 0);
	if (co->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID, "containerOverrides[0] must be an object");
	if (pp_json_set_string(co, "name", st->container))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	rc = pp_normalize_command(co, "command", err);
	if (rc)
		return pp_error_prefix(err, "task_run_request.overrides.containerOverrides[0].");
	if (!pp_json_get(co, "command") && pp_json_set(co, "command", default_command()))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	struct pp_json *env = pp_json_get(co, "environment");
	if (env && env->type == PP_JSON_OBJECT) {
		struct pp_json *list = pp_json_new(PP_JSON_ARRAY);
		rc = pp_map_to_pairs(env, list, "name", "value", err);
		if (rc) {
			pp_json_free(list);
			return pp_error_prefix(err, "env: ");
		}
		if (pp_json_set(co, "environment", list))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	/* The job's env (PREFECT_API_URL, PREFECT__FLOW_RUN_ID and the run's
	 * own variables) goes over the container's, as
	 * ECSWorker._prepare_task_run_request does (prefect_aws/workers/
	 * ecs_worker.py): the template's "{{ env }}" holds only the
	 * variables, and a job without the flow run's id runs nothing. A null
	 * member unsets the variable. */
	const struct pp_json *job_env = pp_json_get(job, "env");
	if (pp_json_is(job_env, PP_JSON_OBJECT) && job_env->count) {
		if (!pp_json_is(pp_json_get(co, "environment"), PP_JSON_ARRAY) &&
		    pp_json_set(co, "environment", pp_json_new(PP_JSON_ARRAY)))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		env = pp_json_get(co, "environment");
		for (struct pp_json *e = env->child, *next; e; e = next) {
			next = e->next;
			const char *n = pp_json_get_string(e, "name");
			if (n && pp_json_is(pp_json_get(job_env, n), PP_JSON_NULL))
				pp_json_free(pp_json_detach(e));
		}
		rc = pp_map_to_pairs(job_env, env, "name", "value", err);
		if (rc)
			return pp_error_prefix(err, "env: ");
	}
	env = pp_json_get(co, "environment");
	if (env && env->type == PP_JSON_ARRAY && env->count == 0)
		pp_json_remove(co, "environment");
	/* Task-level overrides are strings, container-level ones integers
	 * (botocore: TaskOverride cpu/memory String, ContainerOverride
	 * cpu/memory/memoryReservation BoxedInteger). */
	if (pp_number_to_string(ov, "cpu") || pp_number_to_string(ov, "memory"))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	static const char *const ints[] = {"cpu", "memory", "memoryReservation"};
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		const char *v = pp_json_get_string(co, ints[i]);
		if (v && !*v)
			pp_json_remove(co, ints[i]);
		if (!v || !*v)
			continue;
		char *end;
		long long n = strtoll(v, &end, 10);
		if (*end || n < 0)
			return pp_fail(
				err, PP_EINVALID,
				"task_run_request.overrides.containerOverrides[0].%s '%s' is "
				"not a whole number",
				ints[i], v);
		if (pp_json_set_int(co, ints[i], n))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if (text_bound(ov) <= ECS_MAX_OVERRIDES)
		return 0;
	char *text = pp_json_to_string(ov, PP_JSON_COMPACT);
	if (!text)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	size_t n = strlen(text);
	free(text);
	if (n > ECS_MAX_OVERRIDES)
		return pp_fail(err, PP_EINVALID,
			       "task_run_request.overrides is %zu characters; ECS allows %d (move "
			       "large environment values into the task definition or secrets)",
			       n, ECS_MAX_OVERRIDES);
	return 0;
}

/* The characters of ecs_tag_text's pattern, ASCII only (compared here: isalnum and
 * strchr for every byte cost twice as much). */
static bool tag_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '/' || c == '=' || c == '+' || c == ':' || c == '@' ||
	       c == '-';
}

/* Prefect's ECS worker passes every tag key and value through python-slugify
 * with the pattern [^a-zA-Z0-9_./=+:@-] and case kept: each other character
 * becomes '-', runs of '-' collapse to one, leading and trailing '-' go, and
 * a comma between two digits is dropped ("1,000" -> "1000"). A multi-byte
 * UTF-8 character becomes one '-' either way, as the run collapses. The
 * result is cut to the model's length limit (TagKey 128, TagValue 256). */
static void ecs_tag_text(char *out, size_t max, const char *in)
{
	size_t k = 0;
	for (const char *p = in; *p && k < max; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == ',' && p > in && isdigit((unsigned char)p[-1]) &&
		    isdigit((unsigned char)p[1]))
			continue;
		char o = tag_char(c) ? (char)c : '-';
		if (o == '-' && (k == 0 || out[k - 1] == '-'))
			continue;
		out[k++] = o;
	}
	while (k && out[k - 1] == '-')
		k--;
	out[k] = '\0';
}

static bool aws_reserved(const char *s)
{
	return !strncasecmp(s, "aws:", 4);
}

/* RunTask tags as Prefect's worker builds them: the template's tags, then
 * every label (prefect.io/flow-run-id, ... and the user's), a label
 * replacing a tag of the same key, keys and values sanitised; plus our
 * run and store tags. Tags ECS would refuse (an empty or aws:-prefixed key, more than
 * ECS_MAX_TAGS) are left out with a warning rather than failing the run. */
static int shape_tags(struct pp_run_io *io, struct pp_json *run, struct pp_error *err)
{
	struct pp_json *tags = pp_json_get(run, "tags");
	struct pp_json *list = pp_json_new(PP_JSON_ARRAY);
	struct pp_json *out = pp_json_new(PP_JSON_ARRAY);
	int rc = list && out ? 0 : PP_ENOMEM;
	if (!rc && pp_json_is(tags, PP_JSON_ARRAY)) {
		size_t i = 0;
		pp_json_foreach (t, tags) {
			if (!rc && !pp_json_get_string(t, "key"))
				rc = pp_fail(err, PP_EINVALID,
					     "task_run_request.tags[%zu] needs a string key", i);
			if (!rc && pp_json_append(list, pp_json_clone(t)))
				rc = PP_ENOMEM;
			i++;
		}
	} else if (!rc && tags) {
		rc = pp_map_to_pairs(tags, list, "key", "value", err);
	}
	if (!rc)
		rc = pp_map_to_pairs(pp_json_get(io->job, "labels"), list, "key", "value", err);
	pp_json_foreach (t, list) {
		if (rc)
			break;
		char key[ECS_TAG_KEY_MAX + 1], val[ECS_TAG_VALUE_MAX + 1];
		const char *v = pp_json_string(pp_json_get(t, "value"));
		ecs_tag_text(key, ECS_TAG_KEY_MAX, pp_json_get_string(t, "key"));
		ecs_tag_text(val, ECS_TAG_VALUE_MAX, v ? v : "");
		if (!key[0] || aws_reserved(key) || aws_reserved(val) ||
		    !strcmp(key, ECS_RUN_TAG) || !strcmp(key, ECS_STORE_TAG)) {
			pp_warn("ecs run %s: tag '%s' left out (an empty key, an aws: prefix or "
				"our own run or store tag)",
				io->run_id, pp_json_get_string(t, "key"));
			continue;
		}
		struct pp_json *pair = pp_json_new(PP_JSON_OBJECT);
		if (pp_json_set_string(pair, "key", key) ||
		    pp_json_set_string(pair, "value", val)) {
			pp_json_free(pair);
			rc = PP_ENOMEM;
			break;
		}
		/* Two labels may sanitise to one key; ECS wants keys unique. */
		pp_json_foreach (o, out)
			if (!strcmp(pp_json_get_string(o, "key"), key)) {
				pp_json_free(pp_json_detach(o));
				break;
			}
		/* Two left for our run and store tags. */
		if (out->count >= ECS_MAX_TAGS - 2) {
			pp_warn("ecs run %s: tag '%s' left out: ECS allows %d tags", io->run_id,
				key, ECS_MAX_TAGS);
			pp_json_free(pair);
			continue;
		}
		if (pp_json_append(out, pair))
			rc = PP_ENOMEM;
	}
	pp_json_free(list);
	rc = rc ? rc : pp_ecs_add_tag(out, ECS_RUN_TAG, io->run_id);
	if (!rc && io->store_id && *io->store_id)
		rc = pp_ecs_add_tag(out, ECS_STORE_TAG, io->store_id);
	if (rc) {
		pp_json_free(out);
		return rc == PP_ENOMEM ? pp_fail(err, rc, "out of memory")
				       : pp_error_prefix(err, "labels: ");
	}
	return pp_json_set(run, "tags", out) ? pp_fail(err, PP_ENOMEM, "out of memory") : 0;
}

static int shape_run(struct ecs_state *st, struct pp_run_io *io, const struct pp_json *job,
		     const char *token, struct pp_error *err)
{
	const struct pp_json *src = pp_json_get(job, "task_run_request");
	st->run = src ? pp_json_clone(src) : pp_json_new(PP_JSON_OBJECT);
	if (!st->run || st->run->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID, "task_run_request must be an object");
	struct pp_json *run = st->run;
	pp_json_strip_nulls(run);

	const char *arn = pp_json_get_string(run, "taskDefinition");
	if (arn && *arn) {
		st->td_given = true;
		int rc = pp_intern_set(&st->td_arn, arn, ECS_ARN_MAX, "taskDefinition", err);
		if (rc)
			return rc;
	}
	pp_json_remove(run, "taskDefinition");
	const char *cluster = pp_json_get_string(run, "cluster");
	if (!cluster || !*cluster)
		cluster = pp_json_get_string(job, "cluster");
	if (cluster && *cluster) {
		int rc = pp_intern_set(&st->cluster, cluster, ECS_CLUSTER_MAX, "cluster", err);
		if (rc)
			return rc;
	}
	pp_json_remove(run, "cluster");
	if (set_cluster(run, st))
		return pp_fail(err, PP_ENOMEM, "out of memory");

	/* FARGATE_SPOT is a capacity provider, not a launch type; an explicit
	 * strategy excludes launchType. */
	struct pp_json *cps = pp_json_get(run, "capacityProviderStrategy");
	if (cps && (cps->type != PP_JSON_ARRAY || cps->count == 0)) {
		pp_json_remove(run, "capacityProviderStrategy");
		cps = NULL;
	}
	const char *lt = pp_json_get_string(run, "launchType");
	if (lt && !strcmp(lt, "FARGATE_SPOT") && !cps) {
		struct pp_json *s = pp_json_new(PP_JSON_OBJECT);
		struct pp_json *arr = pp_json_new(PP_JSON_ARRAY);
		if (pp_json_set_string(s, "capacityProvider", "FARGATE_SPOT") ||
		    pp_json_set_int(s, "weight", 1)) {
			pp_json_free(s);
			pp_json_free(arr);
			return pp_fail(err, PP_ENOMEM, "out of memory");
		}
		if (pp_json_append(arr, s) || pp_json_set(run, "capacityProviderStrategy", arr))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		cps = pp_json_get(run, "capacityProviderStrategy");
	}
	bool fargate = pp_ecs_is_fargate(run);
	if (cps)
		pp_json_remove(run, "launchType");

	int rc = shape_network(st, run, job, fargate, err);
	rc = rc ? rc : shape_overrides(st, run, job, err);
	rc = rc ? rc : shape_tags(io, run, err);
	if (rc)
		return rc;
	if (pp_json_set_string(run, "startedBy", token) ||
	    pp_json_set_string(run, "clientToken", token))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	return 0;
}

static int ecs_prepare(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	const struct pp_json *job = io->job;
	int rc;

	if (!job || job->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID, "ecs: rendered job configuration is missing");
	if ((rc = pp_job_cred(io, &st->job_cred, "aws_credentials", "aws", err)))
		return pp_error_prefix(err, "ecs: ");
	const char *region = pp_json_get_string(job, "region");
	if (!region || !*region)
		region = pp_json_get_string(pp_json_get(job, "aws_credentials"), "region_name");
	if ((!region || !*region) && pp_run_cred(io))
		region = pp_cred_region(pp_run_cred(io));
	if (!region || !*region)
		return pp_fail(err, PP_EINVALID,
			       "ecs: no AWS region: set region in the "
			       "[credentials] section or aws_credentials.region_name");
	for (const char *p = region; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-')
			return pp_fail(err, PP_EINVALID, "ecs: invalid region '%s'", region);
	if ((rc = pp_intern_set(&st->region, region, ECS_REGION_MAX, "region", err)))
		return pp_error_prefix(err, "ecs: ");
	char def[128] = "", token[64];
	if (!io->endpoint || !*io->endpoint)
		snprintf(def, sizeof(def), "https://ecs.%s.amazonaws.com", st->region);
	if ((rc = pp_base_url_intern(&st->base, io->endpoint, def, err)) ||
	    (rc = pp_derive_name(token, sizeof(token), io->run_id, io->attempt, err)))
		return pp_error_prefix(err, "ecs: ");
	if (pp_run_cred(io))
		pp_cred_set_scope(pp_run_cred(io), st->region, "ecs");

	const char *cname = pp_json_get_string(job, "container_name");
	if ((rc = pp_intern_set(&st->container, cname && *cname ? cname : ECS_DEFAULT_CONTAINER,
				ECS_CONTAINER_MAX, "container_name", err)))
		return pp_error_prefix(err, "ecs: ");
	st->match_latest = pp_json_get_bool(job, "match_latest_revision_in_family", false);
	st->auto_deregister = pp_json_get_bool(job, "auto_deregister_task_definition", false);
	double poll = 0;
	if (pp_json_get_number(job, "task_watch_poll_interval", &poll) && poll > 0)
		st->poll_ms = (long)(poll * 1000.0);

	rc = shape_run(st, io, job, token, err);
	if (rc)
		return pp_error_prefix(err, "ecs: ");
	if (io->pool_shared) {
		if (!*io->pool_shared) {
			*io->pool_shared = calloc(1, sizeof(struct ecs_shared));
			if (!*io->pool_shared)
				return pp_fail(err, PP_ENOMEM, "ecs: out of memory");
		}
		st->shared = *io->pool_shared;
	}
	if (!st->td_given &&
	    ((rc = pp_ecs_shape_td(st, job, err)) || (rc = pp_ecs_name_td(st, err))))
		return pp_error_prefix(err, "ecs: ");
	st->step = st->vpc_id[0] ? ECS_SUBNETS : ECS_TD;
	return 0;
}

/* "arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID" (the long ARN format). */
static int ecs_restore(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	const char *arn = io->infra_id ? io->infra_id : "";
	char region[32] = "";
	int rc = io->job ? pp_job_cred(io, &st->job_cred, "aws_credentials", "aws", err) : 0;
	if (rc)
		return pp_error_prefix(err, "ecs: ");
	if (strncmp(arn, "arn:", 4))
		return pp_fail(err, PP_EINVALID, "ecs: infra id '%s' is not a task ARN", arn);
	const char *p = arn;
	for (int i = 0; i < 3 && p; i++)
		p = strchr(p + 1, ':');
	const char *q = p ? strchr(p + 1, ':') : NULL;
	if (!p || !q || (size_t)(q - p - 1) >= sizeof(region))
		return pp_fail(err, PP_EINVALID, "ecs: infra id '%s' is not a task ARN", arn);
	snprintf(region, sizeof(region), "%.*s", (int)(q - p - 1), p + 1);
	const char *task = strstr(q, ":task/");
	if (!task)
		return pp_fail(err, PP_EINVALID, "ecs: infra id '%s' is not a task ARN", arn);
	const char *slash = strchr(task + 6, '/');
	char cluster[ECS_CLUSTER_MAX + 1];
	if (slash && (size_t)(slash - task - 6) < sizeof(cluster))
		snprintf(cluster, sizeof(cluster), "%.*s", (int)(slash - task - 6), task + 6);
	else
		snprintf(cluster, sizeof(cluster), "%s",
			 pp_json_get_string(io->job, "cluster")
				 ? pp_json_get_string(io->job, "cluster")
				 : "");
	if ((*cluster &&
	     (rc = pp_intern_set(&st->cluster, cluster, ECS_CLUSTER_MAX, "cluster", err))) ||
	    (rc = pp_intern_set(&st->region, region, ECS_REGION_MAX, "region", err)))
		return rc;
	char def[128];
	snprintf(def, sizeof(def), "https://ecs.%s.amazonaws.com", st->region);
	if (pp_run_cred(io))
		pp_cred_set_scope(pp_run_cred(io), st->region, "ecs");
	const char *cname = pp_json_get_string(io->job, "container_name");
	if ((rc = pp_intern_set(&st->container, cname && *cname ? cname : ECS_DEFAULT_CONTAINER,
				ECS_CONTAINER_MAX, "container_name", err)))
		return pp_error_prefix(err, "ecs: ");
	double poll = 0;
	if (pp_json_get_number(io->job, "task_watch_poll_interval", &poll) && poll > 0)
		st->poll_ms = (long)(poll * 1000.0);
	st->step = ECS_SUBMITTED;
	return pp_base_url_intern(&st->base, io->endpoint, def, err);
}

/* ---- RunTask ---- */

int pp_ecs_send_run(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	if (pp_json_set_string(st->run, "taskDefinition", st->td_arn))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	st->step = ECS_RUN;
	return pp_ecs_send_action(io, "RunTask", st->run, err);
}

static bool capacity_reason(const char *reason)
{
	return reason && (strcasestr(reason, "capacity") || !strncmp(reason, "RESOURCE:", 9) ||
			  strstr(reason, "AGENT"));
}

static int adopt_task(struct pp_run_io *io, const char *arn, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	int rc = pp_run_io_set_infra_id(io, err, "%s", arn);
	if (rc)
		return rc;
	/* The request bodies are not sent again (a start retry prepares a new
	 * state), and a watched run holds its state until it ends: about
	 * 5 KiB of JSON per run in flight (docs/performance.md). The
	 * definition's body goes once the converge step is done with it. */
	pp_json_free(st->run);
	st->run = NULL;
	return pp_ecs_after_run(io, err);
}

static int on_run(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	char code[96];
	struct pp_json *body = NULL;
	if (io->resp_rc) {
		int rc = pp_ecs_error(io, "RunTask", code, sizeof(code), &body, err);
		/* The token is bound to tasks started with other parameters
		 * (e.g. another revision): those tasks are this run's. */
		const char *arn = pp_json_string(pp_json_at(pp_json_get(body, "resourceIds"), 0));
		if (rc == PP_ECONFLICT && arn) {
			pp_info("ecs run %s: clientToken already used, adopting %s", io->run_id,
				arn);
			pp_error_clear(err);
			rc = adopt_task(io, arn, err);
		} else if (!strcmp(code, "ClientException") && strcasestr(err->msg, "inactive") &&
			   !st->td_given && !st->td_refreshed) {
			pp_json_free(body);
			return pp_ecs_td_inactive(io, err);
		} else if (!strcmp(code, "ClientException") &&
			   strcasestr(err->msg, ECS_PROVISIONING_QUOTA_MSG)) {
			rc = err->code = PP_ETRANSIENT;
			if (err->retry_after_ms < ECS_PROVISIONING_QUOTA_WAIT_MS)
				err->retry_after_ms = ECS_PROVISIONING_QUOTA_WAIT_MS;
		}
		pp_json_free(body);
		return rc;
	}
	/* The task's ARN, of all that is said of it (issue 23). */
	static const char *const fields[] = {"tasks.taskArn", "failures", NULL};
	int rc = pp_resp_json_keep(io, "ECS RunTask", fields, &body, err);
	if (rc)
		return rc;
	const char *arn = pp_json_get_string(pp_json_at(pp_json_get(body, "tasks"), 0), "taskArn");
	if (arn) {
		rc = adopt_task(io, arn, err);
		pp_json_free(body);
		return rc;
	}
	/* HTTP 200 with failures[] only: no task was started. */
	struct pp_json *f = pp_json_at(pp_json_get(body, "failures"), 0);
	const char *reason = pp_json_get_string(f, "reason");
	const char *detail = pp_json_get_string(f, "detail");
	rc = pp_fail(err, capacity_reason(reason) ? PP_ETRANSIENT : PP_EINVALID,
		     "ECS RunTask started no task: %s%s%s%s", reason ? reason : "no reason given",
		     detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
	pp_json_free(body);
	return rc;
}

static int ecs_submit(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	switch (st->step) {
	case ECS_SUBNETS:
		return io->resp ? pp_ecs_on_subnets(io, err) : pp_ecs_send_subnets(io, err);
	case ECS_TD: return pp_ecs_start_td(io, err);
	case ECS_DESCRIBE_TD:
		return io->resp ? pp_ecs_on_describe_td(io, err) : pp_ecs_send_describe_td(io, err);
	case ECS_REGISTER:
		return io->resp ? pp_ecs_on_register(io, err)
				: pp_ecs_send_action(io, "RegisterTaskDefinition", st->td, err);
	case ECS_CONVERGE: return pp_ecs_converge(io, err);
	case ECS_RUN: return io->resp ? on_run(io, err) : pp_ecs_send_run(io, err);
	case ECS_SUBMITTED: break;
	}
	return PP_STEP_DONE;
}

/* ---- status, cancel, cleanup ---- */

/* DescribeTasks of the run's task and of its peers' (a batched poll). */
static int send_describe(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	struct pp_json *b = pp_json_new(PP_JSON_OBJECT);
	struct pp_json *tasks = pp_ecs_string_array(io->infra_id);
	int rc = !b || !tasks || set_cluster(b, st);
	for (size_t i = 0; !rc && i < io->npeers; i++)
		if (io->peers[i] && io->peers[i]->infra_id)
			rc = pp_json_append(tasks, pp_json_new_string(io->peers[i]->infra_id));
	if (!rc) {
		rc = pp_json_set(b, "tasks", tasks);
		tasks = NULL;
	}
	pp_json_free(tasks);
	rc = rc ? pp_fail(err, PP_ENOMEM, "out of memory")
		: pp_ecs_send_action(io, "DescribeTasks", b, err);
	pp_json_free(b);
	return rc;
}

static int send_stop(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	struct pp_json *b = pp_json_new(PP_JSON_OBJECT);
	char reason[160];
	snprintf(reason, sizeof(reason), "Cancelled by pushpool (run %s)", io->run_id);
	int rc = !b || set_cluster(b, st) || pp_json_set_string(b, "task", io->infra_id) ||
		 pp_json_set_string(b, "reason", reason);
	rc = rc ? pp_fail(err, PP_ENOMEM, "out of memory")
		: pp_ecs_send_action(io, "StopTask", b, err);
	pp_json_free(b);
	return rc;
}

static const struct pp_json *our_container(const struct pp_json *task, const char *name)
{
	const struct pp_json *first = NULL;
	pp_json_foreach (c, pp_json_get(task, "containers")) {
		const char *n = pp_json_get_string(c, "name");
		if (n && !strcmp(n, name))
			return c;
		if (!first)
			first = c;
	}
	return first;
}

static bool mentions(const char *s, const char *what)
{
	return s && strcasestr(s, what);
}

/* The class of a stopped task that did not run: ECS's stop code first
 * (SpotInterruption, TerminationNotice: Fargate Spot or the instance taking
 * it away; TaskFailedToStart), then the error prefix ECS writes into
 * stoppedReason or the container's reason (CannotPullContainerError,
 * ResourceInitializationError) and its capacity messages. */
static enum pp_start_failure classify_stop(const char *stop_code, const char *stopped,
					   const char *creason)
{
	if (stop_code &&
	    (!strcmp(stop_code, "SpotInterruption") || !strcmp(stop_code, "TerminationNotice")))
		return PP_START_SPOT_INTERRUPTION;
	if (!stop_code || strcmp(stop_code, "TaskFailedToStart"))
		return PP_START_OK;
	if (mentions(stopped, "CannotPullContainerError") ||
	    mentions(creason, "CannotPullContainerError"))
		return PP_START_IMAGE_PULL;
	if (mentions(stopped, "ResourceInitializationError") ||
	    mentions(creason, "ResourceInitializationError"))
		return PP_START_RESOURCE_INIT;
	if (mentions(stopped, "capacity") || mentions(creason, "capacity"))
		return PP_START_CAPACITY;
	return PP_START_OTHER;
}

static void map_task(struct pp_run_io *io, const struct pp_json *task)
{
	struct ecs_state *st = io->state;
	const char *last = pp_json_get_string(task, "lastStatus");
	const char *stop_code = pp_json_get_string(task, "stopCode");
	const char *stopped = pp_json_get_string(task, "stoppedReason");
	const struct pp_json *c = our_container(task, st->container);
	const char *creason = pp_json_get_string(c, "reason");
	double exit_code;
	bool has_exit = pp_json_get_number(c, "exitCode", &exit_code);

	io->exit_code = has_exit ? (int)exit_code : -1;
	pp_clear_message(io);
	io->start_failure = PP_START_OK;
	if (!last || !strcmp(last, "PROVISIONING") || !strcmp(last, "PENDING") ||
	    !strcmp(last, "ACTIVATING")) {
		io->state_out = PP_RUN_PROVISIONING;
		return;
	}
	if (strcmp(last, "STOPPED") && strcmp(last, "DELETED")) {
		io->state_out = PP_RUN_RUNNING;
		return;
	}
	io->start_failure = classify_stop(stop_code, stopped, creason);
	if (stop_code && !strcmp(stop_code, "UserInitiated")) {
		io->state_out = PP_RUN_CANCELLED;
		pp_set_message(io, "%s", stopped ? stopped : "stopped by a StopTask call");
	} else if (stop_code && !strcmp(stop_code, "TaskFailedToStart")) {
		io->state_out = PP_RUN_CRASHED;
		pp_set_message(io, "TaskFailedToStart: %s%s%s",
			       stopped ? stopped : "no reason given", creason ? "; " : "",
			       creason ? creason : "");
	} else if (has_exit && io->exit_code == 0) {
		io->state_out = PP_RUN_SUCCEEDED;
	} else if (has_exit) {
		io->state_out = PP_RUN_FAILED;
		pp_set_message(io, "container %s exited with code %d%s%s",
			       pp_json_get_string(c, "name") ? pp_json_get_string(c, "name") : "?",
			       io->exit_code, creason ? ": " : (stopped ? ": " : ""),
			       creason ? creason : (stopped ? stopped : ""));
	} else {
		io->state_out = PP_RUN_CRASHED;
		pp_set_message(io, "task stopped without an exit code: %s%s%s",
			       stopped ? stopped : (stop_code ? stop_code : "no reason given"),
			       creason ? "; " : "", creason ? creason : "");
	}
}

/* No task in the answer. MISSING within the grace period keeps the run in
 * its last known state and asks to be polled again, backing off; anything
 * else, or MISSING past the grace period, is PP_ENOTFOUND. */
static int task_not_found(struct pp_run_io *io, const char *reason, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	bool missing = reason && !strcmp(reason, "MISSING");
	long long now = pp_mono_ms();
	if (missing && !st->missing_since_ms)
		st->missing_since_ms = now;
	long long waited = missing ? now - st->missing_since_ms : 0;
	if (!missing || waited >= ECS_MISSING_GRACE_MS)
		return pp_fail(err, PP_ENOTFOUND, "ECS DescribeTasks: task %s not found (%s)%s",
			       io->infra_id, reason ? reason : "no task in the response",
			       missing ? " through the whole grace period" : "");
	long delay = ECS_MISSING_POLL_MS;
	for (int i = 0; i < st->missing_answers && delay < ECS_MISSING_POLL_MAX_MS; i++)
		delay *= 2;
	if (delay > ECS_MISSING_POLL_MAX_MS)
		delay = ECS_MISSING_POLL_MAX_MS;
	st->missing_answers++;
	pp_info("ecs run %s: task %s not visible yet (MISSING for %lld ms), polling again in %ld "
		"ms",
		io->run_id, io->infra_id, waited, delay);
	io->state_out = st->last_state ? st->last_state : PP_RUN_PROVISIONING;
	io->exit_code = -1;
	pp_set_message(io, "DescribeTasks answers MISSING (eventual consistency after RunTask)");
	io->poll_after_ms = delay;
	return PP_STEP_DONE;
}

/* The element of list (tasks or failures) whose key (taskArn or arn) is
 * the run's task. botocore's model makes both keys optional: in the answer
 * to a poll of one task, an element that names no task can only be about
 * it, while one that names another task is not (and the run's task is
 * then missing from the answer). */
static const struct pp_json *of_task(const struct pp_json *list, const char *key,
				     const struct pp_run_io *io, bool alone)
{
	pp_json_foreach (e, list) {
		const char *arn = pp_json_get_string(e, key);
		if (arn && !strcmp(arn, io->infra_id))
			return e;
	}
	if (!alone || !list || list->count != 1)
		return NULL;
	const struct pp_json *only = pp_json_at(list, 0);
	return pp_json_get(only, key) ? NULL : only;
}

/* One run's status from a DescribeTasks answer: PP_STEP_DONE, or
 * PP_ENOTFOUND when its task is gone. */
static int status_from(struct pp_run_io *io, const struct pp_json *body, bool alone,
		       struct pp_error *err)
{
	struct ecs_state *st = io->state;
	const struct pp_json *task = of_task(pp_json_get(body, "tasks"), "taskArn", io, alone);
	if (!task) {
		const struct pp_json *f = of_task(pp_json_get(body, "failures"), "arn", io, alone);
		return task_not_found(io, pp_json_get_string(f, "reason"), err);
	}
	st->missing_since_ms = 0;
	st->missing_answers = 0;
	map_task(io, task);
	st->last_state = io->state_out;
	io->poll_after_ms = st->poll_ms;
	return PP_STEP_DONE;
}

static void batch_status(struct pp_run_io *io, const struct pp_json *body)
{
	struct pp_error e = {0};
	int rc = status_from(io, body, false, &e);
	io->batch_rc = rc < 0 ? rc : 0;
	if (rc < 0)
		pp_set_message(io, "%s", e.msg);
}

static int ecs_status(struct pp_run_io *io, struct pp_error *err)
{
	char code[96];
	if (!io->infra_id)
		return pp_fail(err, PP_EINVALID, "ecs status: run %s has no task", io->run_id);
	if (!io->resp)
		return send_describe(io, err);
	if (io->resp_rc)
		return pp_ecs_error(io, "DescribeTasks", code, sizeof(code), NULL, err);
	/* What status_from reads of each task: a poll, a run's steady cost
	 * while it runs, builds no tree of the rest. */
	static const char *const fields[] = {
		"tasks.taskArn",
		"tasks.lastStatus",
		"tasks.stopCode",
		"tasks.stoppedReason",
		"tasks.containers.name",
		"tasks.containers.reason",
		"tasks.containers.exitCode",
		"failures",
		NULL,
	};
	struct pp_json *body;
	int rc = pp_resp_json_keep(io, "ECS DescribeTasks", fields, &body, err);
	if (rc)
		return rc;
	if (!io->peers) {
		rc = status_from(io, body, true, err);
	} else {
		batch_status(io, body);
		for (size_t i = 0; i < io->npeers; i++)
			if (io->peers[i])
				batch_status(io->peers[i], body);
		rc = PP_STEP_DONE;
	}
	pp_json_free(body);
	return rc;
}

/* One DescribeTasks covers tasks of one cluster, region and endpoint,
 * signed with one credential: the pool's (the core groups runs by pool),
 * or a job's own, which runs share when it is made from the same settings
 * (a Prefect deployment's aws_credentials block). */
static bool ecs_status_batch_key(const struct pp_run_io *io, char *key, size_t size)
{
	const struct ecs_state *st = io->state;
	const char *cred = io->run_cred ? pp_cred_fingerprint(io->run_cred) : "-";
	if (!st || !st->base || !st->region || !*cred)
		return false;
	int n = snprintf(key, size, "%s\n%s\n%s\n%s", st->base, st->region,
			 st->cluster ? st->cluster : "", cred);
	return n > 0 && (size_t)n < size;
}

static int ecs_cancel(struct pp_run_io *io, struct pp_error *err)
{
	char code[96];
	if (!io->infra_id)
		return pp_fail(err, PP_EINVALID, "ecs cancel: run %s has no task", io->run_id);
	if (!io->resp)
		return send_stop(io, err);
	if (io->resp_rc)
		return pp_ecs_error(io, "StopTask", code, sizeof(code), NULL, err);
	return PP_STEP_DONE;
}

static int ecs_cleanup(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	char code[96];
	if (!io->resp) {
		/* A retry re-sends; the use count is given up only once. */
		if (!st->deregistering && !pp_ecs_release_td(st))
			return PP_STEP_DONE;
		st->deregistering = true;
		pp_info("ecs run %s: deregistering task definition %s", io->run_id, st->td_arn);
		struct pp_json *b = pp_json_new(PP_JSON_OBJECT);
		int rc = pp_json_set_string(b, "taskDefinition", st->td_arn)
				 ? pp_fail(err, PP_ENOMEM, "out of memory")
				 : pp_ecs_send_action(io, "DeregisterTaskDefinition", b, err);
		pp_json_free(b);
		return rc;
	}
	if (!io->resp_rc) {
		st->deregistering = false;
		st->registered_here = false;
		return PP_STEP_DONE;
	}
	return pp_ecs_error(io, "DeregisterTaskDefinition", code, sizeof(code), NULL, err);
}

static void ecs_release(void *state)
{
	struct ecs_state *st = state;
	struct ecs_td_entry *e = pp_ecs_cache_find(st->shared, st->hash);
	/* A registration this run started and never finished must not keep
	 * other runs waiting. */
	if (e && e->owner == st)
		pp_ecs_cache_remove(st->shared, e);
	else if (e && st->using_entry)
		e->users--;
	pp_json_free(st->td);
	pp_json_free(st->run);
	pp_json_free(st->conv_candidates);
	st->td = st->run = st->conv_candidates = NULL;
	pp_ecs_sweep_release(st);
	pp_cred_free(st->job_cred);
	st->job_cred = NULL;
	const char **interned[] = {&st->base,	&st->region,	&st->cluster,	 &st->container,
				   &st->td_arn, &st->conv_mine, &st->conv_winner};
	for (size_t i = 0; i < sizeof(interned) / sizeof(*interned); i++) {
		pp_intern_drop(*interned[i]);
		*interned[i] = NULL;
	}
}

static void ecs_release_shared(void *shared)
{
	struct ecs_shared *sh = shared;
	if (!sh)
		return;
	while (sh->entries)
		pp_ecs_cache_remove(sh, sh->entries);
	pp_json_free(sh->named_td);
	free(sh);
}

static const char *const ecs_pool_types[] = {"ecs:push", "ecs", NULL};

/* A vpc_id's subnets (EC2), no task definition revision to reuse, so one is
 * registered; then the task, and no equal revision registered concurrently
 * is found. */
static const struct pp_dry_answer ecs_dry_run[] = {
	{.url_part = "://ec2.",
	 .status = 200,
	 .body = "<DescribeSubnetsResponse><subnetSet><item><subnetId>&lt;subnet-id&gt;</subnetId>"
		 "</item></subnetSet></DescribeSubnetsResponse>"},
	{.url_suffix = "/ec2/",
	 .status = 200,
	 .body = "<DescribeSubnetsResponse><subnetSet><item><subnetId>&lt;subnet-id&gt;</subnetId>"
		 "</item></subnetSet></DescribeSubnetsResponse>"},
	{.header = "X-Amz-Target",
	 .header_suffix = ".RegisterTaskDefinition",
	 .status = 200,
	 .body = "{\"taskDefinition\":{\"taskDefinitionArn\":\"<task-definition-arn>\"}}"},
	{.header = "X-Amz-Target",
	 .header_suffix = ".DescribeTaskDefinition",
	 .status = 400,
	 .body = "{\"__type\":\"ClientException\",\"message\":\"(dry run: no revision to "
		 "reuse)\"}"},
	{.header = "X-Amz-Target",
	 .header_suffix = ".ListTaskDefinitions",
	 .status = 200,
	 .body = "{\"taskDefinitionArns\":[]}"},
	{.header = "X-Amz-Target",
	 .header_suffix = ".RunTask",
	 .status = 200,
	 .body = "{\"tasks\":[{\"taskArn\":\"<task-arn>\"}]}"},
	{0},
};

const struct pp_provider pp_provider_ecs = {
	.abi = PP_PROVIDER_ABI,
	.name = "ecs",
	.pool_types = ecs_pool_types,
	.cred_type = "aws",
	.dry_run = ecs_dry_run,
	.call_header = "X-Amz-Target",
	.state_size = sizeof(struct ecs_state),
	.prepare = ecs_prepare,
	.restore = ecs_restore,
	.submit = ecs_submit,
	.status = ecs_status,
	.cancel = ecs_cancel,
	.cleanup = ecs_cleanup,
	.list = pp_ecs_list,
	.remove = pp_ecs_remove,
	.release = ecs_release,
	.release_shared = ecs_release_shared,
	.logs = pp_ecs_logs,
	.status_batch_max = ECS_DESCRIBE_MAX,
	.status_batch_key = ecs_status_batch_key,
};
