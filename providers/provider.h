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

/* PP_STEP_WAIT: nothing to send yet (e.g. another run is registering the
 * same task definition); call again after poll_after_ms. */
enum { PP_STEP_DONE = 0, PP_STEP_SEND = 1, PP_STEP_WAIT = 2 };

enum {
	PP_CAP_CANCEL = 1u << 0,  /* cancel op stops remote work */
	PP_CAP_CLEANUP = 1u << 1, /* cleanup op removes remote resources */
	PP_CAP_ADOPT = 1u << 2,	  /* submit finds and adopts an existing job by name/token */
	PP_CAP_BATCH_STATUS = 1u << 3,
};

struct pp_cred;

/* Everything an op may read or write for one run. */
struct pp_run_io {
	/* inputs, owned by the core */
	const char *run_id; /* stable id of the run (UUID) */
	const char *run_name;
	int attempt;			 /* submission attempt, from 1 */
	const char *idem_key;		 /* deterministic key derived from run id (+attempt) */
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
	struct pp_http_req req;	     /* next request when the op returns PP_STEP_SEND */
	char infra_id[512];	     /* set by submit: execution name, task ARN, group id */
	enum pp_run_state state_out; /* set by status */
	int exit_code;		     /* set by status when known, else -1 */
	char message[512];	     /* failure/stop reason from the provider */
	/* provider's hint for the next status poll, ms (0: core default) */
	long poll_after_ms;
};

struct pp_provider {
	unsigned abi;		       /* PP_PROVIDER_ABI */
	const char *name;	       /* "cloud-run", "ecs", "aci", "modal" */
	const char *const *pool_types; /* NULL-terminated, first is canonical */
	unsigned caps;
	size_t state_size;
	/* Validate the rendered job and prepare state; no I/O. */
	int (*prepare)(struct pp_run_io *io, struct pp_error *err);
	/* Restore state for an already-submitted run from io->infra_id (after a
	 * restart) so status/cancel/cleanup work. */
	int (*restore)(struct pp_run_io *io, struct pp_error *err);
	int (*submit)(struct pp_run_io *io, struct pp_error *err);
	int (*status)(struct pp_run_io *io, struct pp_error *err);
	int (*cancel)(struct pp_run_io *io, struct pp_error *err);
	int (*cleanup)(struct pp_run_io *io, struct pp_error *err);
	/* Free anything state points to (not state itself). */
	void (*release)(void *state);
	void (*release_shared)(void *shared);
};

const struct pp_provider *pp_provider_find(const char *pool_type);
/* NULL-terminated table of every provider. */
extern const struct pp_provider *const pp_providers[];

#endif
