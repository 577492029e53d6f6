/* Private to the ECS provider: the run state and pool cache that ecs.c
 * (RunTask, status, cancel, cleanup, the ops table) and ecs_taskdef.c (task
 * definitions) share, and the functions one calls in the other. */
#ifndef PP_PROVIDERS_ECS_H
#define PP_PROVIDERS_ECS_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/json.h"
#include "providers/provider.h"

#define ECS_HASH_TAG "pushpool:td-hash"
/* Longest region, cluster, container name and ARN a run state takes. */
#define ECS_REGION_MAX	  31
#define ECS_CLUSTER_MAX	  255
#define ECS_CONTAINER_MAX 255
#define ECS_ARN_MAX	  511
/* A family named after its content: "pushpool-" and 16 hex digits. */
#define ECS_FAMILY_LEN 32
/* pushpool's run and store labels (PP_LABEL_RUN, PP_LABEL_STORE) as ECS
 * tags, in the namespace:key style AWS uses. */
#define ECS_RUN_TAG   "pushpool:run-id"
#define ECS_STORE_TAG "pushpool:store-id"

/* ECS_CONVERGE: once the task of the run that registered a definition has
 * started, the family's lower revisions of the same content are looked for
 * (ecs_taskdef.c, pp_ecs_converge). */
enum ecs_step {
	ECS_SUBNETS,
	ECS_TD,
	ECS_DESCRIBE_TD,
	ECS_REGISTER,
	ECS_CONVERGE,
	ECS_RUN,
	ECS_SUBMITTED
};

struct ecs_td_entry {
	char hash[65];
	char arn[512];
	bool ready;	      /* else a run is registering it */
	bool registered_here; /* we registered it, so we may deregister it */
	int users;	      /* runs that ran a task with it and have not cleaned up */
	const void *owner;    /* state of the registering run */
	struct ecs_td_entry *next;
};

/* named_*: the pool's last definition named (pp_ecs_name_td), as shaped
 * before its family and hash tag were added; runs of a pool mostly shape
 * the same one. */
struct ecs_shared {
	struct ecs_td_entry *entries;
	struct pp_json *named_td;
	char named_family[ECS_FAMILY_LEN]; /* "" when the definition gave its own */
	char named_hash[65];
};

/* The strings the same for many runs (base URL, region, cluster, container
 * name, task definition ARNs) are interned (pp_intern_set), NULL when unset:
 * a run in flight holds pointers, not copies. */
struct ecs_state {
	struct pp_cred *job_cred; /* from the job's aws_credentials, or NULL */
	const char *base;
	const char *region;
	const char *cluster;
	const char *container;
	char hash[65];
	const char *td_arn;
	char vpc_id[32]; /* look its subnets up first (no network_configuration given) */
	bool td_given;	 /* task_definition_arn set: never register */
	bool match_latest;
	bool auto_deregister;
	bool family_by_content; /* we named the family after the definition's hash */
	bool reconciling;	/* a RegisterTaskDefinition answer was lost */
	bool using_entry;	/* holds one `users` count on its cache entry */
	bool registered_here;	/* no cache: this run registered td_arn */
	bool deregistering;	/* cleanup sent DeregisterTaskDefinition */
	long poll_ms;
	long long missing_since_ms; /* first MISSING answer of a streak, else 0 */
	int missing_answers;
	enum pp_run_state last_state; /* from the last DescribeTasks that saw the task */
	enum ecs_step step;
	/* converging (ecs_taskdef.c): the revision we registered, from the
	 * registration until the converge step after RunTask ends (NULL: no
	 * converging to do), the lower revisions of its family still to
	 * describe (lowest first), and the one chosen instead of ours */
	const char *conv_mine;
	const char *conv_winner;
	struct pp_json *conv_candidates;
	bool conv_listed, conv_deregistering;
	bool td_refreshed; /* RunTask found the definition INACTIVE once */
	/* list (ecs_sweep.c): the task ARNs of the ListTasks page being
	 * described, and the next page's token */
	struct pp_json *list_arns;
	char *list_token;
	struct ecs_shared *shared;
	struct pp_json *td;  /* RegisterTaskDefinition body */
	struct pp_json *run; /* RunTask body, taskDefinition filled in later */
};

/* vpc_id is "vpc-" and hex digits, short enough for ecs_state (ecs_subnets.c). */
bool pp_ecs_vpc_id_ok(const char *vpc);
/* Send EC2 DescribeSubnets for st->vpc_id (ecs_subnets.c). */
int pp_ecs_send_subnets(struct pp_run_io *io, struct pp_error *err);
/* Its answer: the run's awsvpcConfiguration, then the task definition step (ecs_subnets.c). */
int pp_ecs_on_subnets(struct pp_run_io *io, struct pp_error *err);
/* Map an ECS error response into err (ecs.c). */
int pp_ecs_error(const struct pp_run_io *io, const char *action, char *code, size_t code_size,
		 struct pp_json **body_out, struct pp_error *err);
/* POST one ECS action with a JSON body (ecs.c). */
int pp_ecs_send_action(struct pp_run_io *io, const char *action, const struct pp_json *body,
		       struct pp_error *err);
/* A new JSON array holding the one string s; NULL when out of memory (ecs.c). */
struct pp_json *pp_ecs_string_array(const char *s);
/* Does the RunTask body run on Fargate, by launch type or capacity provider (ecs.c)? */
bool pp_ecs_is_fargate(const struct pp_json *run);
/* obj[key], created empty when missing; PP_EINVALID when of another type (ecs.c). */
int pp_ecs_ensure_member(struct pp_json *obj, const char *key, enum pp_json_type t,
			 struct pp_json **out, struct pp_error *err);
/* Send RunTask with the resolved task definition (ecs.c). */
int pp_ecs_send_run(struct pp_run_io *io, struct pp_error *err);
/* Build st->td, the RegisterTaskDefinition body, from the rendered job (ecs_taskdef.c). */
int pp_ecs_shape_td(struct ecs_state *st, const struct pp_json *job, struct pp_error *err);
/* Give st->td its family when it has none, and its hash and hash tag (ecs_taskdef.c). */
int pp_ecs_name_td(struct ecs_state *st, struct pp_error *err);
/* First submit step: reuse, wait for, describe or register the definition (ecs_taskdef.c). */
int pp_ecs_start_td(struct pp_run_io *io, struct pp_error *err);
/* Send DescribeTaskDefinition for the definition's family (ecs_taskdef.c). */
int pp_ecs_send_describe_td(struct pp_run_io *io, struct pp_error *err);
/* Handle the DescribeTaskDefinition answer: reuse or register (ecs_taskdef.c). */
int pp_ecs_on_describe_td(struct pp_run_io *io, struct pp_error *err);
/* Handle the RegisterTaskDefinition answer, then run the task (ecs_taskdef.c). */
int pp_ecs_on_register(struct pp_run_io *io, struct pp_error *err);
/* The run's task started: converge when it registered the definition,
 * else PP_STEP_DONE (ecs_taskdef.c). */
int pp_ecs_after_run(struct pp_run_io *io, struct pp_error *err);
/* The converge step's requests and answers, then PP_STEP_DONE (ecs_taskdef.c). */
int pp_ecs_converge(struct pp_run_io *io, struct pp_error *err);
/* RunTask refused the definition as INACTIVE: resolve it again, once
 * (ecs_taskdef.c). */
int pp_ecs_td_inactive(struct pp_run_io *io, struct pp_error *err);
/* Give up the run's use of its definition; true when it should be deregistered (ecs_taskdef.c). */
bool pp_ecs_release_td(struct ecs_state *st);
/* The pool's cache entry for a definition hash, or NULL (ecs_taskdef.c). */
struct ecs_td_entry *pp_ecs_cache_find(struct ecs_shared *sh, const char *hash);
/* Append {key, value} to an ECS tag list; PP_ENOMEM (ecs_sweep.c). */
int pp_ecs_add_tag(struct pp_json *tags, const char *key, const char *value);
/* The sweeper's ops: the cluster's running tasks tagged with our store,
 * StopTask on one (ecs_sweep.c). */
int pp_ecs_list(struct pp_run_io *io, struct pp_error *err);
int pp_ecs_remove(struct pp_run_io *io, struct pp_error *err);
/* Free what list keeps in st (ecs_sweep.c). */
void pp_ecs_sweep_release(struct ecs_state *st);
/* Unlink and free one cache entry (ecs_taskdef.c). */
void pp_ecs_cache_remove(struct ecs_shared *sh, struct ecs_td_entry *victim);

#endif
