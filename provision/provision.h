/* Provisioning: the cloud resources a pool needs, planned, applied and
 * destroyed through the clouds' REST (or gRPC) APIs with the pool's
 * credential chain (`pushpool provision plan|apply|destroy`).
 *
 * ---- For whoever adds a cloud (read this first) ----
 *
 * One file per cloud, provision/NAME.c, exporting one
 * `const struct pp_provisioner` (ABI PP_PROVISIONER_ABI) listed in
 * provision/registry.c; the command finds it by the pool's type. A
 * provisioner is a table of resource kinds (`struct pp_prov_kind`: name,
 * the permissions its create and its delete need, create and remove ops)
 * and three pool-level ops:
 *
 *   open(ctx)     check the pool and the options, no I/O; keep private
 *                 state in ctx->state (freed by close, which is called
 *                 after a failed open too).
 *   inspect(ctx)  ask the cloud what exists and append one pp_prov_res per
 *                 resource, in creation order, with pp_prov_plan_add: a
 *                 deterministic name (from the pool's name and project,
 *                 never a timestamp or random id), its state (ABSENT,
 *                 PRESENT: ours (the ownership tag or label is on it),
 *                 FOREIGN: the name is taken by something without our tag,
 *                 DRIFTED: ours but differing, with res->note saying how) and
 *                 res->owned when destroy may remove it. The core derives
 *                 the action from the state and the mode.
 *   outputs(ctx)  what the pool needs once everything exists: job variables,
 *                 a credentials section, files (written 0600).
 *
 * kind->create(ctx, res) makes one resource or change and must carry the
 * ownership tag or label in the create call itself (never a tag call
 * after), and treat "already exists" as success after checking the tag,
 * so a re-run after kill -9 at any point adopts instead of duplicating.
 * kind->remove(ctx, res) deletes one resource that carries the tag.
 * Long-running operations are followed to their end inside the op.
 * Something that cannot carry a tag (a project IAM binding, an enabled
 * service) is recorded with pp_prov_owned_add BEFORE the change is sent
 * (the run store keeps the record), and is ours only when the record is
 * there: a binding or service that predates pushpool stays for ever.
 *
 * Sending: pp_prov_send / pp_prov_json (provision/send.c) apply ctx->cred
 * (pp_cred_apply: bearer token, SigV4, ...), send synchronously through
 * lib/http.c, and retry throttling, 5xx and transport errors with full-jitter
 * exponential backoff (the [dispatcher] backoff_base_ms/backoff_max_ms)
 * honouring Retry-After, within PP_PROV_ATTEMPTS; a 401 invalidates the
 * token and retries once. pp_prov_grpc does the same for a unary gRPC call.
 * pp_prov_pause sleeps between polls of an operation and renews the lock.
 * Endpoints: ctx->endpoint is the pool's `endpoint` (the mock, private
 * endpoints) or NULL for the cloud's own hosts; each provisioner documents
 * how it maps services onto it.
 *
 * Identities: ctx->cred is what provisioning runs as (the pool's
 * credentials, or --credentials NAME); keyless grants go to the pool's own
 * identity, pp_prov_pool_cred (opened on first use). A provisioner that
 * mints a key (--create-key, ctx->opts->create_key) returns it as an
 * output file and a credentials section whose "file" value is "@NAME";
 * ctx->opts->keydir is where earlier applies wrote them (recognise your
 * own: a re-apply must write the same outputs again, and a key created
 * but never written, by an apply killed in between, must be deleted, not
 * leaked). AWS: pp_cred_set_scope(ctx->cred, region, service) before each
 * service's calls, since the credential signs for one scope at a time.
 *
 * Modes: inspect runs for plan and apply (ctx->mode APPLY) and for destroy
 * (DESTROY): in destroy mode list everything an earlier apply may have made
 * whatever the flags now, so destroy finds it.
 *
 * The core (provision/provision.c) opens the credential, runs inspect,
 * prints the plan, runs create in order (apply) or remove in reverse order
 * for owned resources only (destroy), and writes the outputs as a config
 * drop-in (provision/output.c). The command (dispatcher/cmd/provision.c)
 * holds the pool's provisioning lock in the run store around apply and
 * destroy and persists the owned-records journal there.
 *
 * Tests for a new cloud: the mock's APIs judged by the cloud's spec files,
 * a scenario with the list in tests/scenario/provision_gcp.sh and
 * provision_gcp_kill.sh; tests/unit/provision/provision.c shows a fake
 * provisioner registered with pp_provisioner_register.
 */
#ifndef PP_PROVISION_H
#define PP_PROVISION_H

#include <stdbool.h>
#include <stddef.h>

#include "dispatcher/config.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/http.h"
#include "lib/json.h"

#define PP_PROVISIONER_ABI 1
/* Tries of one request before its error stands (throttled or transient). */
#define PP_PROV_ATTEMPTS 8
/* Longest a provisioner waits for one long-running operation. */
#define PP_PROV_OP_WAIT_MS (10 * 60 * 1000)
#define PP_PROV_NAME_MAX   256
/* The ownership label or tag every created resource carries, and its value
 * (the pool's name): "pushpool-pool" = POOL. */
#define PP_PROV_TAG "pushpool-pool"

struct pp_cred;
struct pp_prov_ctx;
struct pp_prov_res;

enum pp_prov_state {
	PP_PROV_ABSENT,	 /* not there */
	PP_PROV_PRESENT, /* there, as wanted */
	PP_PROV_FOREIGN, /* the name is taken by something without our tag */
	PP_PROV_DRIFTED, /* ours, but differs from what apply would make */
};
enum pp_prov_action {
	PP_PROV_NOOP,	 /* nothing to do */
	PP_PROV_CREATE,	 /* apply creates it */
	PP_PROV_UPDATE,	 /* apply brings it back in line */
	PP_PROV_DELETE,	 /* destroy removes it */
	PP_PROV_BLOCKED, /* apply cannot go on: a foreign object holds the name */
	PP_PROV_KEEP,	 /* destroy leaves it: not ours (no tag, no record) */
};
const char *pp_prov_state_name(enum pp_prov_state s);
const char *pp_prov_action_name(enum pp_prov_action a);

/* One kind of resource of a provisioner. */
struct pp_prov_kind {
	const char *name;	   /* "service", "service-account", "iam-binding" */
	const char *create_perms;  /* the permissions create needs, comma list */
	const char *destroy_perms; /* ... and remove */
	int (*create)(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
	/* NULL: nothing to remove (a read-only check). */
	int (*remove)(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err);
};

struct pp_prov_res {
	const struct pp_prov_kind *kind;
	char name[PP_PROV_NAME_MAX]; /* deterministic, as shown in the plan */
	enum pp_prov_state state;
	enum pp_prov_action action; /* set by the core from state, owned and mode */
	bool owned;		    /* destroy may remove it (tag found, or a record) */
	char note[256];		    /* what changes / why not, for the plan table */
	char *data;		    /* the provisioner's (an id, an etag); freed by the core */
};

struct pp_prov_plan {
	struct pp_prov_res *v;
	size_t n, cap;
};
/* Append a resource (zeroed, kind and name set); returns it or NULL. */
struct pp_prov_res *pp_prov_plan_add(struct pp_prov_plan *p, const struct pp_prov_kind *kind,
				     const char *name, struct pp_error *err);
void pp_prov_plan_free(struct pp_prov_plan *p);

/* What apply leaves for the pool. */
#define PP_PROV_OUT_MAX 16
struct pp_prov_out {
	struct pp_json *job_variables; /* merged over the pool's own; owned */
	/* A [credentials] section for the pool ("type", "source", "file", ...),
	 * when apply made a key; n == 0: the pool keeps its credentials. */
	const char *cred_keys[PP_PROV_OUT_MAX];
	char *cred_values[PP_PROV_OUT_MAX]; /* owned */
	size_t ncred;
	/* Files (key files) the section names, written mode 0600 in the
	 * provisioning directory; name is a file name, not a path. */
	char *file_names[PP_PROV_OUT_MAX]; /* owned */
	char *file_data[PP_PROV_OUT_MAX];  /* owned, secret (registered) */
	size_t nfiles;
	char *next_hint; /* an extra line for "next:" (NULL: none); owned */
};
void pp_prov_out_free(struct pp_prov_out *o);
int pp_prov_out_cred(struct pp_prov_out *o, const char *key, const char *value,
		     struct pp_error *err);
int pp_prov_out_file(struct pp_prov_out *o, const char *name, const char *data,
		     struct pp_error *err);

/* Options from the command line. */
struct pp_prov_opts {
	bool create_key; /* mint a key / access key / secret (default: keyless) */
	bool create_env; /* Modal: create the environment when it is missing */
	const char *location;
	const char *environment;
	/* Where apply writes the pool's key files (set by the command): a
	 * provisioner recognises its own earlier output there. */
	const char *keydir;
};

enum pp_prov_mode { PP_PROV_MODE_APPLY, PP_PROV_MODE_DESTROY };

/* The journal of things that carry no tag (see above): the command loads
 * and saves it in the run store. */
struct pp_prov_journal {
	void *ud;
	/* Save the owned records (one key per line) and renew the lock. */
	int (*save)(void *ud, const char *owned, struct pp_error *err);
};

struct pp_prov_ctx {
	const struct pp_provisioner *prov;
	const struct pp_config *cfg;	      /* borrowed */
	const struct pp_pool_conf *pool;      /* borrowed */
	const struct pp_cred_conf *cred_conf; /* borrowed: the credential provisioning uses */
	struct pp_cred *cred;		      /* opened by the core */
	/* The dispatcher's own credential section (the pool's; NULL when it
	 * names none): keyless grants go to its identity. pp_prov_pool_cred
	 * opens it on first use. */
	const struct pp_cred_conf *pool_cred_conf;
	struct pp_cred *pool_cred; /* opened by pp_prov_pool_cred when not cred_conf */
	struct pp_json *vars;	   /* the pool's job_variables (an object); owned by the core */
	const char *endpoint;	   /* pool endpoint, NULL: the cloud's hosts */
	const struct pp_prov_opts *opts;
	enum pp_prov_mode mode;
	struct pp_buf owned; /* journal records, one per line */
	const struct pp_prov_journal *journal;
	void *state; /* the provisioner's */
};

/* The pool's own credential (ctx->cred when provisioning runs as it),
 * opened on first use: a pool whose key file apply is about to replace can
 * still be provisioned with --credentials. Borrowed. */
int pp_prov_pool_cred(struct pp_prov_ctx *ctx, struct pp_cred **out, struct pp_error *err);

/* Journal records ("service:run.googleapis.com"). add/del save at once. */
bool pp_prov_owned_has(const struct pp_prov_ctx *ctx, const char *key);
int pp_prov_owned_add(struct pp_prov_ctx *ctx, const char *key, struct pp_error *err);
int pp_prov_owned_del(struct pp_prov_ctx *ctx, const char *key, struct pp_error *err);

struct pp_provisioner {
	unsigned abi;		       /* PP_PROVISIONER_ABI */
	const char *name;	       /* "cloud-run", "modal" */
	const char *const *pool_types; /* NULL-terminated; the provider's names */
	const char *cred_type;	       /* the [credentials] type it works with */
	const char *summary;	       /* one line for the help text */
	int (*open)(struct pp_prov_ctx *ctx, struct pp_error *err);
	int (*inspect)(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, struct pp_error *err);
	int (*outputs)(struct pp_prov_ctx *ctx, struct pp_prov_out *out, struct pp_error *err);
	void (*close)(struct pp_prov_ctx *ctx);
};

const struct pp_provisioner *pp_provisioner_find(const char *pool_type);
/* Add one at run time (tests' fake clouds); PP_ECONFLICT for a taken type. */
int pp_provisioner_register(const struct pp_provisioner *p, struct pp_error *err);
/* "cloud-run-v2:push, modal:push" for help texts and errors. */
void pp_provisioner_types(char *out, size_t size);

/* ---- sending (provision/send.c) ---- */

/* One request: applies ctx->cred, retries as described above. 0 for a 2xx
 * answer (resp filled, caller frees it); else the classified error
 * (PP_ENOTFOUND for 404, PP_ECONFLICT for 409, ...) with the cloud's own
 * words, resp still filled when an answer came. body may be NULL. */
int pp_prov_send(struct pp_prov_ctx *ctx, const char *method, const char *url,
		 const char *content_type, const char *body, size_t body_len,
		 struct pp_http_resp *resp, struct pp_error *err);
/* pp_prov_send with a JSON body (NULL: none) and a JSON answer in *out
 * (caller frees; an empty body reads as {}). */
int pp_prov_json(struct pp_prov_ctx *ctx, const char *method, const char *url,
		 const struct pp_json *body, struct pp_json **out, struct pp_error *err);
/* A unary gRPC call (base_url + "/" + path) with msg; the answer message is
 * copied to out. */
int pp_prov_grpc(struct pp_prov_ctx *ctx, const char *base_url, const char *path,
		 const struct pp_buf *msg, struct pp_buf *out, struct pp_error *err);
/* Wait between polls of an operation: ms (growing with attempt, capped),
 * and renew the lock through the journal. */
int pp_prov_pause(struct pp_prov_ctx *ctx, int attempt, struct pp_error *err);

/* ---- the engine (provision/provision.c) ---- */

struct pp_prov;
/* Open pool's provisioner: cred_name NULL uses the pool's credentials. */
int pp_prov_open(const struct pp_config *cfg, const char *pool, const char *cred_name,
		 const struct pp_prov_opts *opts, enum pp_prov_mode mode,
		 const struct pp_prov_journal *journal, const char *owned, struct pp_prov **out,
		 struct pp_error *err);
void pp_prov_close(struct pp_prov *p);
/* Inspect and derive actions; the plan stays in p. *pending: how many
 * resources would change. */
int pp_prov_inspect(struct pp_prov *p, int *pending, struct pp_error *err);
const struct pp_prov_plan *pp_prov_plan_of(const struct pp_prov *p);
const struct pp_prov_ctx *pp_prov_ctx_of(const struct pp_prov *p);
/* The plan as a table (kind, name, state, action, permissions, note). */
int pp_prov_plan_print(const struct pp_prov *p, struct pp_buf *out);
/* Run the actions in order (apply) or reverse order (destroy); progress
 * gets one line per step ("[2/5] create service-account NAME ... done"). */
typedef void (*pp_prov_progress_fn)(void *ud, const char *line);
int pp_prov_run(struct pp_prov *p, pp_prov_progress_fn progress, void *ud, struct pp_error *err);
/* After apply: the outputs. */
int pp_prov_outputs(struct pp_prov *p, struct pp_prov_out *out, struct pp_error *err);

/* ---- the drop-in (provision/output.c) ---- */

/* Write the pool's drop-in DIR/50-provision-POOL.conf (re-opening the
 * [pool] section: job_variables, credentials) and its files in keydir (0700,
 * files 0600), each through a temporary file and rename. *path gets the
 * drop-in's path (caller frees). */
int pp_prov_write_dropin(const struct pp_pool_conf *pool, const struct pp_prov_out *out,
			 const char *dropin_dir, const char *keydir, char **path,
			 struct pp_error *err);
/* Remove what write_dropin wrote (destroy); missing files are fine. */
int pp_prov_remove_dropin(const char *pool, const char *dropin_dir, const char *keydir,
			  struct pp_error *err);

#endif
