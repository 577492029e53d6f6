/* ECS task definitions: shaping the RegisterTaskDefinition body from the
 * rendered job, and the submit steps that find or register it. Runs of a
 * pool share a cache keyed by the SHA-256 of the definition; while one run
 * registers, the others wait (single flight). With
 * match_latest_revision_in_family, or a family named after the content,
 * the family's latest revision is reused when it matches. Register is not
 * idempotent, so an ambiguous failure is followed by DescribeTaskDefinition
 * looking for our hash tag before registering again. A registered revision
 * is used at once; once the registering run's task has started, an equal
 * lower revision another process registered concurrently replaces it for
 * later runs and ours is deregistered (converging, below). pp_ecs_release_td
 * gives up a run's use of a definition at cleanup. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "lib/intern.h"
#include "lib/log.h"
#include "providers/common.h"
#include "providers/ecs.h"
#include "providers/provider.h"

#define ECS_DEFAULT_IMAGE	  "prefecthq/prefect:3-latest"
#define ECS_SINGLE_FLIGHT_WAIT_MS 200

/* ---- shaping the task definition ---- */

static struct pp_json *pick_container(struct pp_json *defs, const char *name)
{
	pp_json_foreach (c, defs) {
		const char *n = pp_json_get_string(c, "name");
		if (n && !strcmp(n, name))
			return c;
	}
	return pp_json_at(defs, 0);
}

static int shape_logs(struct ecs_state *st, const struct pp_json *job, struct pp_json *td,
		      struct pp_json *c, struct pp_error *err)
{
	if (!pp_json_get_bool(job, "configure_cloudwatch_logs", false) ||
	    pp_json_get(c, "logConfiguration"))
		return 0;
	if (!pp_json_get_string(td, "executionRoleArn"))
		return pp_fail(err, PP_EINVALID,
			       "configure_cloudwatch_logs needs execution_role_arn (the role "
			       "that writes the logs)");
	const char *prefix = pp_json_get_string(job, "cloudwatch_logs_prefix");
	struct pp_json *lc = pp_json_new(PP_JSON_OBJECT);
	struct pp_json *opts = pp_json_new(PP_JSON_OBJECT);
	int rc = pp_json_set_string(lc, "logDriver", "awslogs");
	rc = rc ? rc : pp_json_set_string(opts, "awslogs-create-group", "true");
	rc = rc ? rc : pp_json_set_string(opts, "awslogs-group", "prefect");
	rc = rc ? rc : pp_json_set_string(opts, "awslogs-region", st->region);
	rc = rc ? rc
		: pp_json_set_string(opts, "awslogs-stream-prefix", prefix ? prefix : "prefect");
	pp_json_foreach (o, pp_json_get(job, "cloudwatch_logs_options"))
		if (!rc && o->type == PP_JSON_STRING)
			rc = pp_json_set_string(opts, o->key, o->str);
	if (rc) {
		pp_json_free(opts);
		pp_json_free(lc);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if (pp_json_set(lc, "options", opts) || pp_json_set(c, "logConfiguration", lc))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	return 0;
}

/* EC2 tasks need container-level cpu and memory, as integers. */
static int container_units(struct pp_json *c, const char *key, const struct pp_json *task_value,
			   long long def)
{
	const struct pp_json *v = pp_json_get(c, key);
	if (!v)
		v = task_value;
	long long n = def;
	if (v && (v->type == PP_JSON_STRING || v->type == PP_JSON_NUMBER))
		n = strtoll(v->str, NULL, 10);
	return pp_json_set_int(c, key, n > 0 ? n : def);
}

int pp_ecs_shape_td(struct ecs_state *st, const struct pp_json *job, struct pp_error *err)
{
	bool fargate = pp_ecs_is_fargate(st->run);
	const char *launch_type = pp_json_get_string(st->run, "launchType");
	const struct pp_json *src = pp_json_get(job, "task_definition");
	st->td = src ? pp_json_clone(src) : pp_json_new(PP_JSON_OBJECT);
	if (!st->td || st->td->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID, "task_definition must be an object");
	struct pp_json *td = st->td;
	pp_json_strip_nulls(td);
	const char *family = pp_json_get_string(td, "family");
	if (!family || !*family)
		family = pp_json_get_string(job, "family");
	if (family && *family) {
		if (pp_json_set_string(td, "family", family))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	} else {
		pp_json_remove(td, "family");
	}
	const char *role = pp_json_get_string(td, "executionRoleArn");
	if (role && !*role)
		pp_json_remove(td, "executionRoleArn");

	struct pp_json *defs;
	int rc = pp_ecs_ensure_member(td, "containerDefinitions", PP_JSON_ARRAY, &defs, err);
	if (rc)
		return pp_error_prefix(err, "task_definition.");
	if (!defs->count && pp_json_append(defs, pp_json_new(PP_JSON_OBJECT)))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	struct pp_json *c = pick_container(defs, st->container);
	if (c->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID,
			       "task_definition.containerDefinitions[0] must be "
			       "an object");
	const char *name = pp_json_get_string(c, "name");
	if (!name || !*name) {
		if (pp_json_set_string(c, "name", st->container))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	} else {
		rc = pp_intern_set(&st->container, name, ECS_CONTAINER_MAX,
				   "task_definition.containerDefinitions[0].name", err);
		if (rc)
			return rc;
	}
	const char *image = pp_json_get_string(c, "image");
	if ((!image || !*image) && pp_json_set_string(c, "image", ECS_DEFAULT_IMAGE))
		return pp_fail(err, PP_ENOMEM, "out of memory");

	/* RegisterTaskDefinition takes cpu and memory as strings. */
	if (pp_number_to_string(td, "cpu") || pp_number_to_string(td, "memory"))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	if (fargate) {
		if (!pp_json_get(td, "cpu") && pp_json_set_string(td, "cpu", "1024"))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		if (!pp_json_get(td, "memory") && pp_json_set_string(td, "memory", "2048"))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		if (!pp_json_get(td, "networkMode") &&
		    pp_json_set_string(td, "networkMode", "awsvpc"))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		if (!pp_json_get(td, "requiresCompatibilities") &&
		    pp_json_set(td, "requiresCompatibilities", pp_ecs_string_array("FARGATE")))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	} else if (launch_type && !strcmp(launch_type, "EC2")) {
		if (container_units(c, "cpu", pp_json_get(td, "cpu"), 1024) ||
		    container_units(c, "memory", pp_json_get(td, "memory"), 2048))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	return shape_logs(st, job, td, c, err);
}

/* st->td's text, hashed. */
static int hash_td(const struct ecs_state *st, char out[65], struct pp_error *err)
{
	char *canon = pp_json_to_string(st->td, PP_JSON_COMPACT);
	if (!canon)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	pp_sha256_hex(canon, strlen(canon), out);
	free(canon);
	return 0;
}

/* Names st->td from its text: a family after its content when it has
 * none, so equal definitions share a family and revisions stay
 * comparable, then the hash of the whole. family: the family named here,
 * "" when the definition gave its own. */
static int name_from_text(struct ecs_state *st, char family[ECS_FAMILY_LEN], struct pp_error *err)
{
	family[0] = '\0';
	if (st->family_by_content) {
		char content[65];
		int rc = hash_td(st, content, err);
		if (rc)
			return rc;
		snprintf(family, ECS_FAMILY_LEN, "pushpool-%.16s", content);
		if (pp_json_set_string(st->td, "family", family))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	return hash_td(st, st->hash, err);
}

/* Writing and hashing the definition's text twice took a fifth of a
 * run's submission (issue 23), and a pool's runs mostly shape the same
 * definition: one identical to the pool's last takes that one's names,
 * any other is named from its text and becomes the pool's last. */
static int pool_names(struct ecs_state *st, struct pp_error *err)
{
	struct ecs_shared *sh = st->shared;
	if (sh && pp_json_identical(st->td, sh->named_td)) {
		memcpy(st->hash, sh->named_hash, sizeof(st->hash));
		if (*sh->named_family && pp_json_set_string(st->td, "family", sh->named_family))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		return 0;
	}
	struct pp_json *shaped = NULL;
	if (sh && !(shaped = pp_json_clone(st->td)))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	char family[ECS_FAMILY_LEN];
	int rc = name_from_text(st, family, err);
	if (rc || !sh) {
		pp_json_free(shaped);
		return rc;
	}
	pp_json_free(sh->named_td);
	sh->named_td = shaped;
	snprintf(sh->named_family, sizeof(sh->named_family), "%s", family);
	snprintf(sh->named_hash, sizeof(sh->named_hash), "%s", st->hash);
	return 0;
}

int pp_ecs_name_td(struct ecs_state *st, struct pp_error *err)
{
	struct pp_json *td = st->td;
	st->family_by_content = !pp_json_get(td, "family");
	int rc = pool_names(st, err);
	if (rc)
		return rc;
	/* The hash tag lets a later DescribeTaskDefinition recognise it. */
	struct pp_json *tags;
	struct pp_json *t = pp_json_new(PP_JSON_OBJECT);
	rc = pp_ecs_ensure_member(td, "tags", PP_JSON_ARRAY, &tags, err);
	if (rc || pp_json_set_string(t, "key", ECS_HASH_TAG) ||
	    pp_json_set_string(t, "value", st->hash)) {
		pp_json_free(t);
		return rc ? pp_error_prefix(err, "task_definition.")
			  : pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if (pp_json_append(tags, t))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	return 0;
}

/* ---- task definition cache ---- */

struct ecs_td_entry *pp_ecs_cache_find(struct ecs_shared *sh, const char *hash)
{
	for (struct ecs_td_entry *e = sh ? sh->entries : NULL; e; e = e->next)
		if (!strcmp(e->hash, hash))
			return e;
	return NULL;
}

void pp_ecs_cache_remove(struct ecs_shared *sh, struct ecs_td_entry *victim)
{
	for (struct ecs_td_entry **pp = &sh->entries; *pp; pp = &(*pp)->next) {
		if (*pp == victim) {
			*pp = victim->next;
			free(victim);
			return;
		}
	}
}

/* The definition is known: remember it and take a user count. */
static int td_resolved(struct ecs_state *st, const char *arn, bool registered_here,
		       struct pp_error *err)
{
	int rc = pp_intern_set(&st->td_arn, arn, ECS_ARN_MAX, "task definition ARN", err);
	if (rc)
		return rc;
	struct ecs_td_entry *e = pp_ecs_cache_find(st->shared, st->hash);
	if (e && e->owner == st) {
		snprintf(e->arn, sizeof(e->arn), "%s", arn);
		e->ready = true;
		e->owner = NULL;
		e->registered_here = registered_here;
	}
	if (e && e->ready) {
		e->users++;
		st->using_entry = true;
	} else {
		st->registered_here = registered_here;
	}
	return 0;
}

/* Does every member we would register appear, equal, in the remote
 * definition? ECS echoes defaults we did not send, so compare one way. */
static bool json_subset(const struct pp_json *want, const struct pp_json *have)
{
	if (!have)
		return false;
	if (want->type == PP_JSON_OBJECT) {
		if (have->type != PP_JSON_OBJECT)
			return false;
		pp_json_foreach (m, want)
			if (strcmp(m->key, "tags") && !json_subset(m, pp_json_get(have, m->key)))
				return false;
		return true;
	}
	if (want->type == PP_JSON_ARRAY) {
		if (have->type != PP_JSON_ARRAY || have->count != want->count)
			return false;
		const struct pp_json *h = have->child;
		pp_json_foreach (w, want) {
			if (!json_subset(w, h))
				return false;
			h = h->next;
		}
		return true;
	}
	/* "1024" and 1024 are the same cpu value to ECS. */
	if ((want->type == PP_JSON_STRING || want->type == PP_JSON_NUMBER) &&
	    (have->type == PP_JSON_STRING || have->type == PP_JSON_NUMBER))
		return want->len == have->len && !memcmp(want->str, have->str, want->len);
	return pp_json_equal(want, have);
}

static bool has_hash_tag(const struct pp_json *tags, const char *hash)
{
	pp_json_foreach (t, tags) {
		const char *k = pp_json_get_string(t, "key");
		const char *v = pp_json_get_string(t, "value");
		if (k && v && !strcmp(k, ECS_HASH_TAG) && !strcmp(v, hash))
			return true;
	}
	return false;
}

int pp_ecs_send_describe_td(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	struct pp_json *b = pp_json_new(PP_JSON_OBJECT);
	int rc = pp_json_set_string(b, "taskDefinition", pp_json_get_string(st->td, "family"));
	rc = rc ? rc : pp_json_set(b, "include", pp_ecs_string_array("TAGS"));
	rc = rc ? pp_fail(err, PP_ENOMEM, "out of memory")
		: pp_ecs_send_action(io, "DescribeTaskDefinition", b, err);
	pp_json_free(b);
	return rc;
}

int pp_ecs_start_td(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	if (st->td_given)
		return pp_ecs_send_run(io, err);
	struct ecs_td_entry *e = pp_ecs_cache_find(st->shared, st->hash);
	if (e && e->ready) {
		return td_resolved(st, e->arn, e->registered_here, err) ?: pp_ecs_send_run(io, err);
	}
	if (e && e->owner != st) {
		/* The owner's answer wakes us (PP_STEP_WAIT_PEER); the poll
		 * time only bounds the wait. */
		io->poll_after_ms = ECS_SINGLE_FLIGHT_WAIT_MS;
		return PP_STEP_WAIT_PEER;
	}
	if (!e && st->shared) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return pp_fail(err, PP_ENOMEM, "out of memory");
		memcpy(e->hash, st->hash, sizeof(e->hash));
		e->owner = st;
		e->next = st->shared->entries;
		st->shared->entries = e;
	}
	/* A family named by content holds only equal definitions, so a revision
	 * that an earlier process registered (then crashed or restarted) is
	 * reused rather than joined by one more on every restart. */
	if (st->match_latest || st->reconciling || st->family_by_content) {
		st->step = ECS_DESCRIBE_TD;
		return pp_ecs_send_describe_td(io, err);
	}
	st->step = ECS_REGISTER;
	return pp_ecs_send_action(io, "RegisterTaskDefinition", st->td, err);
}

int pp_ecs_on_describe_td(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	char code[96];
	if (io->resp_rc) {
		int rc = pp_ecs_error(io, "DescribeTaskDefinition", code, sizeof(code), NULL, err);
		/* An unknown family is a ClientException: nothing to reuse. */
		if (strcmp(code, "ClientException") && rc != PP_ENOTFOUND)
			return rc;
		pp_error_clear(err);
	} else {
		struct pp_json *resp;
		int rc = pp_resp_json(io, "ECS DescribeTaskDefinition", &resp, err);
		if (rc)
			return rc;
		struct pp_json *remote = pp_json_get(resp, "taskDefinition");
		const char *arn = pp_json_get_string(remote, "taskDefinitionArn");
		const char *status = pp_json_get_string(remote, "status");
		bool ours = has_hash_tag(pp_json_get(resp, "tags"), st->hash);
		if (arn && (!status || !strcmp(status, "ACTIVE")) &&
		    (ours || json_subset(st->td, remote))) {
			pp_info("ecs run %s: reusing task definition %s", io->run_id, arn);
			/* Only a definition we registered (answer lost) is ours to
			 * deregister later. */
			rc = td_resolved(st, arn, ours && st->reconciling, err);
			pp_json_free(resp);
			return rc ?: pp_ecs_send_run(io, err);
		}
		pp_json_free(resp);
	}
	st->step = ECS_REGISTER;
	return pp_ecs_send_action(io, "RegisterTaskDefinition", st->td, err);
}

static int converge_next(struct pp_run_io *io, struct pp_error *err);

int pp_ecs_on_register(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	char code[96];
	if (io->resp_rc) {
		int rc = pp_ecs_error(io, "RegisterTaskDefinition", code, sizeof(code), NULL, err);
		/* A lost or failed answer may hide a registration: look before
		 * trying again. A throttled call was refused, so just repeat it. */
		if (rc == PP_ETRANSIENT) {
			st->reconciling = true;
			st->step = ECS_DESCRIBE_TD;
		}
		return rc;
	}
	struct pp_json *resp;
	int rc = pp_resp_json(io, "ECS RegisterTaskDefinition", &resp, err);
	if (rc)
		return rc;
	const char *arn =
		pp_json_get_string(pp_json_get(resp, "taskDefinition"), "taskDefinitionArn");
	if (!arn) {
		pp_json_free(resp);
		return pp_fail(err, PP_EINVALID,
			       "ECS RegisterTaskDefinition: response has no taskDefinitionArn");
	}
	pp_info("ecs run %s: registered task definition %s", io->run_id, arn);
	rc = pp_intern_set(&st->conv_mine, arn, ECS_ARN_MAX, "task definition ARN", err);
	pp_json_free(resp);
	if (rc)
		return rc;
	/* Ours is ACTIVE and serves this run and the runs waiting on it now;
	 * looking for a concurrent duplicate waits until this run's task has
	 * started (pp_ecs_after_run), off their way. */
	st->conv_listed = st->conv_deregistering = false;
	pp_intern_drop(st->conv_winner);
	st->conv_winner = NULL;
	return td_resolved(st, st->conv_mine, true, err) ?: pp_ecs_send_run(io, err);
}

/* ---- converging concurrent registrations ----
 *
 * Two processes (two `once`, two dispatchers with a store each) that find no
 * revision to reuse both register one: the same content under two
 * revisions. Each uses its own at once: the registering run's RunTask and
 * those of the runs that waited for it do not wait for what follows, which
 * cost a starting dispatcher one call (the listing) before its first task,
 * or three for a duplicate (docs/performance.md, step 86). Once the registering run's task has
 * started, it lists the family's ACTIVE revisions and looks for lower ones
 * carrying the same content hash tag. The lowest such revision replaces
 * ours in the cache, for later runs, and ours is deregistered: tasks
 * already started with it run on, and a RunTask that meets it INACTIVE
 * resolves the definition again (pp_ecs_td_inactive). The registrant of the
 * lowest revision finds no lower one and keeps it; every other registrant
 * got its revision number after the lowest was committed, so its listing
 * shows that one and it gives up its own. So the racers converge on one
 * revision, and nobody deregisters a revision without having switched to
 * another it saw ACTIVE. (ECS lists eventually consistently: a listing
 * that misses the lower revision leaves two, as before, never none.)
 * Convergence is best effort and never fails the run, whose task has
 * started: a refused or failed call (a role without
 * ecs:ListTaskDefinitions) keeps our revision, and so does a RunTask that
 * fails for good, since the converge step follows a started task. */

/* Revisions right below ours that are described, at most (racing
 * registrations are adjacent; an old duplicate further down is left). */
#define ECS_CONVERGE_MAX 8

/* "arn:...:task-definition/FAMILY:REV" -> REV when FAMILY is family, else -1. */
static long revision_in(const char *arn, const char *family)
{
	const char *p = arn ? strstr(arn, ":task-definition/") : NULL;
	if (!p)
		return -1;
	p += strlen(":task-definition/");
	size_t n = strlen(family);
	if (strncmp(p, family, n) || p[n] != ':')
		return -1;
	char *end;
	long rev = strtol(p + n + 1, &end, 10);
	return *end || rev < 1 ? -1 : rev;
}

/* The lower revision replaces ours for the runs that follow. */
static void converge_switch(struct ecs_state *st)
{
	struct ecs_td_entry *e = pp_ecs_cache_find(st->shared, st->hash);
	if (e && e->ready && !strcmp(e->arn, st->conv_mine)) {
		snprintf(e->arn, sizeof(e->arn), "%s", st->conv_winner);
		e->registered_here = false;
	}
	/* Without a cache this run alone used ours, which converging
	 * deregisters: nothing is left for its cleanup to deregister. */
	if (!st->using_entry)
		st->registered_here = false;
}

static int converge_done(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	pp_error_clear(err);
	pp_intern_drop(st->conv_mine);
	pp_intern_drop(st->conv_winner);
	st->conv_mine = st->conv_winner = NULL;
	pp_json_free(st->conv_candidates);
	pp_json_free(st->td);
	st->conv_candidates = st->td = NULL;
	st->step = ECS_SUBMITTED;
	return PP_STEP_DONE;
}

int pp_ecs_after_run(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	if (!st->conv_mine)
		return converge_done(io, err);
	st->step = ECS_CONVERGE;
	return converge_next(io, err);
}

/* Candidates: the family's revisions below ours in a DESC listing, the
 * nearest ECS_CONVERGE_MAX of them, kept lowest first. */
static int on_converge_list(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	const char *family = pp_json_get_string(st->td, "family");
	long mine = revision_in(st->conv_mine, family ? family : "");
	struct pp_json *resp;
	int rc = pp_resp_json(io, "ECS ListTaskDefinitions", &resp, err);
	if (rc)
		return rc;
	const char *picked[ECS_CONVERGE_MAX];
	size_t n = 0;
	pp_json_foreach (a, pp_json_get(resp, "taskDefinitionArns")) {
		const char *arn = pp_json_string(a);
		long rev = revision_in(arn, family ? family : "");
		if (rev >= 1 && rev < mine && n < ECS_CONVERGE_MAX)
			picked[n++] = arn;
	}
	/* The listing is newest first: keep the lowest first. */
	struct pp_json *below = pp_json_new(PP_JSON_ARRAY);
	for (size_t i = n; below && i > 0; i--)
		if (pp_json_append(below, pp_json_new_string(picked[i - 1]))) {
			pp_json_free(below);
			below = NULL;
		}
	pp_json_free(resp);
	if (!below)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	pp_json_free(st->conv_candidates);
	st->conv_candidates = below;
	return 0;
}

static int send_converge_describe(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	struct pp_json *b = pp_json_new(PP_JSON_OBJECT);
	int rc = !b ||
		 pp_json_set_string(b, "taskDefinition",
				    pp_json_string(pp_json_at(st->conv_candidates, 0))) ||
		 pp_json_set(b, "include", pp_ecs_string_array("TAGS"));
	rc = rc ? pp_fail(err, PP_ENOMEM, "out of memory")
		: pp_ecs_send_action(io, "DescribeTaskDefinition", b, err);
	pp_json_free(b);
	return rc;
}

static int send_converge_deregister(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	struct pp_json *b = pp_json_new(PP_JSON_OBJECT);
	int rc = !b || pp_json_set_string(b, "taskDefinition", st->conv_mine)
			 ? pp_fail(err, PP_ENOMEM, "out of memory")
			 : pp_ecs_send_action(io, "DeregisterTaskDefinition", b, err);
	pp_json_free(b);
	st->conv_deregistering = true;
	return rc;
}

/* The next request of the converge step: list, describe the next
 * candidate, deregister ours, or, when done, RunTask. */
static int converge_next(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	if (!st->conv_listed) {
		struct pp_json *b = pp_json_new(PP_JSON_OBJECT);
		int rc = !b ||
			 pp_json_set_string(b, "familyPrefix",
					    pp_json_get_string(st->td, "family")) ||
			 pp_json_set_string(b, "status", "ACTIVE") ||
			 pp_json_set_string(b, "sort", "DESC") ||
			 pp_json_set_int(b, "maxResults", 100);
		rc = rc ? pp_fail(err, PP_ENOMEM, "out of memory")
			: pp_ecs_send_action(io, "ListTaskDefinitions", b, err);
		pp_json_free(b);
		return rc;
	}
	if (st->conv_winner)
		return send_converge_deregister(io, err);
	if (st->conv_candidates && st->conv_candidates->count)
		return send_converge_describe(io, err);
	return converge_done(io, err);
}

int pp_ecs_converge(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	char code[96];
	if (!io->resp)
		return converge_next(io, err);
	if (st->conv_deregistering) {
		/* Ours stays registered if this fails: a spare revision, not a
		 * broken run. */
		if (io->resp_rc) {
			pp_ecs_error(io, "DeregisterTaskDefinition", code, sizeof(code), NULL, err);
			pp_warn("ecs run %s: duplicate task definition %s not deregistered: %s",
				io->run_id, st->conv_mine, err->msg);
		}
		return converge_done(io, err);
	}
	if (io->resp_rc) {
		const char *action =
			st->conv_listed ? "DescribeTaskDefinition" : "ListTaskDefinitions";
		pp_ecs_error(io, action, code, sizeof(code), NULL, err);
		pp_warn("ecs run %s: keeping task definition %s without looking for an equal one "
			"registered concurrently: %s",
			io->run_id, st->conv_mine, err->msg);
		return converge_done(io, err);
	}
	if (!st->conv_listed) {
		if (on_converge_list(io, err)) {
			pp_warn("ecs run %s: keeping task definition %s: %s", io->run_id,
				st->conv_mine, err->msg);
			return converge_done(io, err);
		}
		st->conv_listed = true;
		return converge_next(io, err);
	}
	/* A described candidate: ours when ACTIVE and tagged with our hash (an
	 * answer that does not parse is not ours). */
	struct pp_json *resp = NULL;
	if (pp_resp_json(io, "ECS DescribeTaskDefinition", &resp, err))
		pp_error_clear(err);
	int rc = 0;
	const struct pp_json *remote = pp_json_get(resp, "taskDefinition");
	const char *arn = pp_json_get_string(remote, "taskDefinitionArn");
	const char *status = pp_json_get_string(remote, "status");
	if (arn && status && !strcmp(status, "ACTIVE") &&
	    has_hash_tag(pp_json_get(resp, "tags"), st->hash)) {
		pp_info("ecs run %s: %s has the same content and a lower revision than %s, which "
			"was registered concurrently: using it, deregistering ours",
			io->run_id, arn, st->conv_mine);
		rc = pp_intern_set(&st->conv_winner, arn, ECS_ARN_MAX, "task definition ARN", err);
		if (!rc)
			converge_switch(st);
	}
	pp_json_free(resp);
	pp_json_free(pp_json_detach(pp_json_at(st->conv_candidates, 0)));
	if (rc) {
		pp_warn("ecs run %s: keeping task definition %s: %s", io->run_id, st->conv_mine,
			err->msg);
		return converge_done(io, err);
	}
	return converge_next(io, err);
}

int pp_ecs_td_inactive(struct pp_run_io *io, struct pp_error *err)
{
	struct ecs_state *st = io->state;
	pp_info("ecs run %s: task definition %s is INACTIVE (another process deregistered it): "
		"resolving it again",
		io->run_id, st->td_arn);
	pp_error_clear(err);
	st->td_refreshed = true;
	struct ecs_td_entry *e = pp_ecs_cache_find(st->shared, st->hash);
	if (e && e->ready && !strcmp(e->arn, st->td_arn)) {
		/* This run resolves it again for the pool; the runs counted on
		 * the entry already ran their tasks and keep their count. */
		if (st->using_entry)
			e->users--;
		e->ready = false;
		e->owner = st;
	} else if (e && st->using_entry) {
		e->users--;
	}
	st->using_entry = false;
	st->registered_here = false;
	pp_intern_drop(st->td_arn);
	st->td_arn = NULL;
	st->step = ECS_TD;
	return pp_ecs_start_td(io, err);
}

/* Give up this run's use of its definition; true when it was the last
 * user of one we registered and it should be deregistered. */
bool pp_ecs_release_td(struct ecs_state *st)
{
	if (!st->auto_deregister)
		return false;
	if (st->using_entry) {
		st->using_entry = false;
		struct ecs_td_entry *e = pp_ecs_cache_find(st->shared, st->hash);
		if (!e || --e->users > 0 || !e->registered_here)
			return false;
		/* Later runs of the same definition will register it afresh. */
		pp_ecs_cache_remove(st->shared, e);
		return true;
	}
	return st->registered_here;
}
