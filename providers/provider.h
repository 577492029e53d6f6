/* The provider interface. Each cloud backend is one file exporting one
 * `const struct pp_provider`; providers/registry.c lists them and the core
 * finds them only through pp_provider_find(). Modelled on curl's vtls
 * backends and libgit2's versioned backend vtables.
 *
 * Ops are non-blocking steps: the core calls an op, the op either fills
 * io->req and returns PP_STEP_SEND, or finishes (PP_STEP_DONE) or fails
 * (negative pp_err). After the request completes the core calls the same op
 * again with io->resp set; the op consumes it and returns the next step.
 * On a retryable failure (PP_ETHROTTLED/PP_ETRANSIENT) the op leaves its
 * sub-step unchanged, so the core can back off and call it again with
 * io->resp == NULL to re-send the same request. All HTTP I/O is done by the
 * core on one libcurl multi handle; providers only build and parse. */
#ifndef PP_PROVIDER_H
#define PP_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/err.h"
#include "lib/http.h"
#include "lib/json.h"

#define PP_PROVIDER_ABI 1

enum pp_run_state {
	PP_RUN_PENDING = 0, /* not yet known remotely */
	PP_RUN_QUEUED,
	PP_RUN_PROVISIONING,
	PP_RUN_RUNNING,
	PP_RUN_SUCCEEDED,
	PP_RUN_FAILED,
	PP_RUN_CRASHED,
	PP_RUN_CANCELLED,
};
const char *pp_run_state_name(enum pp_run_state s);
bool pp_run_state_terminal(enum pp_run_state s);

/* Why a job ended without having run, as the status op reads it from the
 * cloud's own reasons (each provider maps its stop codes, events, conditions
 * or statuses to one of these), so the core can decide on a retry without
 * naming a cloud. docs/dispatch.md lists each cloud's mapping. */
enum pp_start_failure {
	PP_START_OK = 0,	    /* not a start failure */
	PP_START_IMAGE_PULL,	    /* the image could not be pulled or found */
	PP_START_CAPACITY,	    /* no capacity to place the job */
	PP_START_SPOT_INTERRUPTION, /* the infrastructure took the job away */
	PP_START_RESOURCE_INIT,	    /* network, secrets, volumes or the sandbox did not set up */
	PP_START_OTHER,		    /* the cloud says it failed to start, for another reason */
};
#define PP_START_FAILURE_COUNT (PP_START_OTHER + 1)
/* "image_pull", "capacity", "spot_interruption", "resource_init", "other";
 * "none" for PP_START_OK. */
const char *pp_start_failure_name(enum pp_start_failure f);
/* The class a name (as above, without "none") stands for; -1 if none. */
int pp_start_failure_parse(const char *name);

/* PP_STEP_WAIT: nothing to send yet (the cloud's operation is under way,
 * a Retry-After); call again after poll_after_ms.
 * PP_STEP_WAIT_PEER: another run of this provider is doing what this one
 * needs (registering the same task definition); call again as soon as any
 * other op of the provider has had an answer, or after poll_after_ms at
 * the latest. A provider built before it never returns it. */
enum { PP_STEP_DONE = 0, PP_STEP_SEND = 1, PP_STEP_WAIT = 2, PP_STEP_WAIT_PEER = 3 };

struct pp_cred;

/* The labels (tags) every remote object of a run carries: the run that
 * created it, and the store that run belongs to (pp_run_io.store_id). Each
 * cloud spells them by its own rules (ECS: "pushpool:run-id" and
 * "pushpool:store-id"); both values are UUIDs, which every cloud accepts. */
#define PP_LABEL_RUN   "pushpool-run-id"
#define PP_LABEL_STORE "pushpool-store-id"

/* One remote object carrying pushpool's ownership label, as a list op found
 * it. */
struct pp_remote_obj {
	char id[512];	      /* what the remove op takes: job, group, task ARN, sandbox id */
	char run_id[64];      /* the run label's value: the run that created it */
	char store_id[64];    /* the store label's value, "" when the object has none */
	long long created_ms; /* wall ms the cloud reports it was created, 0 if it does not */
};
/* Objects a list op found; a list holds at most PP_REMOTE_LIST_MAX. */
#define PP_REMOTE_LIST_MAX 10000
struct pp_remote_list {
	struct pp_remote_obj *v;
	size_t n, cap;
};
/* Append one object; PP_ENOMEM past PP_REMOTE_LIST_MAX (a listing that
 * large is cut short rather than grown without bound). */
int pp_remote_list_add(struct pp_remote_list *l, const char *id, const char *run_id,
		       const char *store_id, long long created_ms, struct pp_error *err);
void pp_remote_list_free(struct pp_remote_list *l);

/* One line of a run's output, as the cloud keeps it. */
struct pp_log_line {
	long long ts_ms; /* wall ms the cloud stamped it with, 0 when it does not */
	char *text;	 /* without its line end; owned */
};
/* Caps on what one page of a logs op may hold: a cloud's answer cannot make
 * us keep more. */
#define PP_LOGS_MAX_LINES  10000
#define PP_LOGS_MAX_BYTES  ((size_t)4 << 20)
#define PP_LOGS_CURSOR_MAX 2048
/* A logs op's request, progress and answer. */
struct pp_logs {
	/* in: lines stamped before since_ms are skipped (0: from the start);
	 * limit: lines to ask the cloud for per page (0: its default) */
	long long since_ms;
	int limit;
	/* in/out: where the next page starts ("" at first), in the cloud's
	 * own terms (a token, an entry id, a count of lines) */
	char cursor[PP_LOGS_CURSOR_MAX];
	/* the provider's own progress between pages (e.g. the log stream it
	 * found): zeroed by the core with the cursor */
	int step;
	char where[1024];
	/* out: the page's lines, oldest first */
	struct pp_log_line *v;
	size_t n, cap, bytes;
	bool more; /* another page is ready at once: call again without waiting */
};
/* Append text (len bytes) as lines, split at line ends (a final empty line
 * is not one), each stamped ts_ms; lines stamped before since_ms are
 * skipped. PP_ENOMEM past PP_LOGS_MAX_LINES or PP_LOGS_MAX_BYTES. */
int pp_logs_add(struct pp_logs *l, long long ts_ms, const char *text, size_t len,
		struct pp_error *err);
/* Free the lines (not the cursor or the progress), for the next page. */
void pp_logs_clear(struct pp_logs *l);

/* Longest infra id and outcome message a run keeps. */
#define PP_INFRA_ID_MAX	   511
#define PP_RUN_MESSAGE_MAX 511

/* Everything an op may read or write for one run. A run in flight keeps
 * its io between polls, so its strings are allocated to size rather than
 * held in fixed arrays. */
struct pp_run_io {
	/* inputs, owned by the core */
	const char *run_id; /* stable id of the run (UUID) */
	const char *run_name;
	int attempt;	      /* submission attempt, from 1 */
	const char *idem_key; /* deterministic key derived from run id (+attempt) */
	/* The id of the store the run belongs to (a UUID), labelled on every
	 * remote object beside the run id; NULL or "" for a run of no store
	 * (`pushpool run`, `render`): no store label, and no sweeper removes it. */
	const char *store_id;
	const struct pp_json *job;	 /* rendered job configuration */
	const char *endpoint;		 /* API base URL override or NULL for the real cloud */
	struct pp_cred *cred;		 /* the pool's: the core applies it to every request sent */
	void *state;			 /* state_size bytes, zeroed at start */
	void **pool_shared;		 /* per-pool slot for caches shared by runs (e.g.
				      registered task definitions); freed with release_shared */
	const struct pp_http_resp *resp; /* response to the request last sent, or NULL */
	int resp_rc;			 /* pp_http_classify() of resp */
	const struct pp_error *resp_err;
	/* outputs */
	/* Set by prepare or restore when the run brings its own credential
	 * (owned by the run state): the core applies it instead of cred. */
	struct pp_cred *run_cred;
	struct pp_http_req req; /* next request when the op returns PP_STEP_SEND */
	/* set by submit (pp_run_io_set_infra_id): execution name, task ARN,
	 * group id; NULL until known */
	char *infra_id;
	enum pp_run_state state_out; /* set by status */
	int exit_code;		     /* set by status when known, else -1 */
	/* failure/stop reason from the provider (pp_set_message), or NULL */
	char *message;
	/* provider's hint for the next status poll, ms (0: core default) */
	long poll_after_ms;
	/* list: where the objects found are appended (owned by the core) */
	struct pp_remote_list *listed;
	/* logs: the page asked for and the lines read (owned by the core) */
	struct pp_logs *logs;
	/* status: set with a terminal state when the job never ran (or the
	 * infrastructure took it away): which class of start failure */
	enum pp_start_failure start_failure;
	/* input: the run's max_runtime in seconds (0: none). A cloud with a
	 * native run time limit sets it from this when the job sets none; the
	 * core enforces it either way. */
	double max_runtime_s;
	/* status of several runs in one request (pp_provider.status_batch_max):
	 * set by the core on the run whose op sends it, the other runs it
	 * polls, each with a state of the same batch key; an entry is NULL
	 * once its run is gone (the op must skip it). The op fills every
	 * run's outputs as its own poll would (its own io's too), with each
	 * one's outcome in batch_rc: 0, or a negative pp_err whose text is in
	 * that run's message. The op itself returns PP_STEP_DONE once the
	 * answer is read, and fails only when the request does (then every
	 * run of it has that failure). It reads the peers' state and
	 * infra_id, never their job (parked while they wait). */
	struct pp_run_io **peers;
	size_t npeers;
	int batch_rc;
};

/* io->infra_id = the formatted id (owned by the io); PP_EINVALID when it is
 * longer than PP_INFRA_ID_MAX, PP_ENOMEM. */
int pp_run_io_set_infra_id(struct pp_run_io *io, struct pp_error *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* io->message = the formatted text, cut at PP_RUN_MESSAGE_MAX bytes; NULL
 * when out of memory (a message only explains an outcome). */
void pp_set_message(struct pp_run_io *io, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* No message: io->message = NULL. */
void pp_clear_message(struct pp_run_io *io);
/* Free io->infra_id and io->message (pp_exec_io_release does). */
void pp_run_io_free_strings(struct pp_run_io *io);

/* A dry run's stand-in for the cloud's answer to one request of a
 * submission (`render --request`): just enough for the submit op to take its
 * next step. Angle brackets mark values the cloud would choose. A row
 * matches when every field it sets matches; the first matching row of the
 * provider's table answers, and a request no row matches ends the dry run. */
struct pp_dry_answer {
	const char *method;	   /* NULL: any */
	const char *url_part;	   /* a substring of the URL, or NULL */
	const char *url_suffix;	   /* the URL's end, or NULL */
	const char *header;	   /* a request header that must be present ... */
	const char *header_suffix; /* ... and end with this */
	int status;
	const char *body;
};

struct pp_provider {
	unsigned abi;		       /* PP_PROVIDER_ABI */
	const char *name;	       /* "cloud-run", "ecs", "aci", "modal" */
	const char *const *pool_types; /* NULL-terminated, first is canonical, the
					  rest Prefect's hybrid (worker) names for it */
	const char *cred_type;	       /* the [credentials] type it authenticates with */
	/* Stand-in answers for a dry run, ending with a row whose status is 0;
	 * NULL: the dry run shows the first request only. */
	const struct pp_dry_answer *dry_run;
	/* A request header whose value's last dotted part names the call
	 * (an RPC-style API's action), shown in a dry run; NULL: none. */
	const char *call_header;
	size_t state_size;
	/* Validate the rendered job and prepare state; no I/O. */
	int (*prepare)(struct pp_run_io *io, struct pp_error *err);
	/* Restore state for an already-submitted run from io->infra_id (after a
	 * restart) so status/cancel/cleanup work. Called on a zeroed state
	 * (the sweeper, the CLI) or on the state prepare filled from the run's
	 * job (the loop taking a run over): whatever prepare allocated is
	 * freed or kept, never overwritten. */
	int (*restore)(struct pp_run_io *io, struct pp_error *err);
	int (*submit)(struct pp_run_io *io, struct pp_error *err);
	int (*status)(struct pp_run_io *io, struct pp_error *err);
	int (*cancel)(struct pp_run_io *io, struct pp_error *err);
	int (*cleanup)(struct pp_run_io *io, struct pp_error *err);
	/* The sweeper's ops, optional (NULL: the cloud is not swept). Both run
	 * on a state prepared from the pool's own job (its project, region,
	 * resource group, cluster or app), with a run id of no run and the
	 * sweeper's store id in io->store_id. list pages through the objects
	 * carrying pushpool's run label in that scope and appends each, with
	 * its store label ("" when it has none), to io->listed; objects without
	 * the run label are never listed. A cloud that can filter by label may
	 * list only the objects labelled with io->store_id. remove deletes the object io->infra_id names, as list
	 * reported it; an object already gone is a success, so several
	 * dispatchers may sweep the same scope. */
	int (*list)(struct pp_run_io *io, struct pp_error *err);
	int (*remove)(struct pp_run_io *io, struct pp_error *err);
	/* Optional (NULL: the cloud's logs are not read): one page of the
	 * run's container output into io->logs, from io->logs->cursor on,
	 * advancing the cursor. The core calls it on an io restored from
	 * io->infra_id (restore: the run's own credential applies), and it
	 * reads io->infra_id, io->job and io->endpoint, never the state's
	 * fields, so the logs of any run can be read, before or after it
	 * ended. Output not written yet is no error: the page is empty. It may
	 * set io->poll_after_ms: the least wait before the next page (a
	 * cloud's read quota). */
	int (*logs)(struct pp_run_io *io, struct pp_error *err);
	/* Free anything state points to (not state itself). */
	void (*release)(void *state);
	void (*release_shared)(void *shared);
	/* Optional: status polls of up to this many runs in one request
	 * (pp_run_io.peers; 0 or 1: each run is polled alone), for runs whose
	 * status_batch_key is the same: the scope and endpoint one request
	 * covers. status_batch_key writes the key (at most size bytes, with
	 * its NUL) from a prepared or restored state and returns false when
	 * the run must be polled alone (a key too long). The core groups
	 * runs of one pool only, whose credential is the same; a run with
	 * its own (io->run_cred) must put which one in the key, since the
	 * request is signed with the first run's. */
	int status_batch_max;
	bool (*status_batch_key)(const struct pp_run_io *io, char *key, size_t size);
};

/* The provider serving a pool type (canonical or alias), or NULL. */
const struct pp_provider *pp_provider_find(const char *pool_type);
/* NULL-terminated table of the built-in providers. */
extern const struct pp_provider *const pp_providers[];
/* Serve more pool types with p (borrowed; it must outlive the process's
 * use of the registry): tests register a fake cloud this way. Refuses a
 * wrong ABI and a pool type already served. Not thread-safe: register
 * before any lookup can run concurrently. */
int pp_provider_register(const struct pp_provider *p, struct pp_error *err);
/* Canonical pool type for a name or alias ("ecs" -> "ecs:push"); NULL if
 * no provider serves it. */
const char *pp_pool_type_canonical(const char *type);
/* "A, B and C" (sep ", " and last " and ") into out: the canonical pool
 * types (aliases false) or the aliases (true), in registry order. */
void pp_pool_types_text(bool aliases, const char *sep, const char *last, char *out, size_t n);

#endif
