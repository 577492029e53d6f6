/* Private to the Prefect source: the state that prefect.c (poll, report,
 * job inputs, the ops table), prefect_client.c (HTTP) and prefect_blocks.c
 * (deployments and blocks) share, and the functions they call in each other. */
#ifndef PP_SOURCES_PREFECT_H
#define PP_SOURCES_PREFECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/http.h"
#include "lib/json.h"
#include "lib/strmap.h"
#include "sources/source.h"

struct pf_pool {
	char name[PP_NAME_MAX];
	char type[PP_NAME_MAX]; /* the [pool]'s type, canonical from the configuration */
	struct pp_json *tmpl;	/* the server's base job template, as read */
	bool read;		/* read once: tmpl NULL is then none on the server */
	/* tmpl (else the type's default) with its block references and its
	 * variables' block documents resolved, which job_inputs lends the
	 * runs of the pool (NULL: none yet, or gone with a re-read of tmpl),
	 * its version (pp_source_template_version) and until when it is what
	 * the cache would resolve (mono ms, struct pf_fetch). */
	struct pp_json *resolved;
	uint64_t resolved_version;
	int64_t resolved_until;
	bool type_warned;
	bool synced; /* the last sync found it as served (poll_pools) */
};

struct pf_cached {
	char key[256]; /* "deployment:<id>" or "block:<slug>/<name>" */
	struct pp_json *value;
	int64_t fetched_ms; /* mono ms */
	struct pf_cached *next;
};

/* One report still to be delivered, in order. */
struct pf_report {
	char flow_run[PP_ID_LEN];
	char *infra_pid;     /* PATCH infrastructure_pid when set */
	char state_type[16]; /* else set_state with this type */
	char *message;
	/* The attempt it is about: its infrastructure (NULL: none yet) and
	 * when the report was queued. A run that shows other infrastructure,
	 * or a newer claim or schedule, has moved on to another attempt. */
	char *attempt_infra;
	int64_t queued_ms;
	/* Chosen when queued and sent with every try, so the server applies
	 * a report whose answer was lost only once (PreventDuplicateTransitions). */
	char transition_id[PP_UUID_LEN];
	bool force;  /* CANCELLED, forced as the worker's _mark_flow_run_as_cancelled */
	bool done;   /* delivered, dropped or forgotten: to leave the outbox (outbox_sweep) */
	bool flying; /* a call about it is on the wire (struct pf_flight): it stays */
	struct pf_report *next;
};

struct prefect_source {
	struct pp_source base;
	char *api_url; /* without trailing slash */
	char *api_key; /* NULL: no Authorization header */
	/* "user:password" of a server run with PREFECT_SERVER_API_AUTH_STRING:
	 * Basic auth, which Prefect's client sends instead of the key. */
	char *auth_basic; /* its base64, as sent; NULL: none */
	/* CSRF tokens (PREFECT_SERVER_CSRF_PROTECTION_ENABLED): as Prefect's
	 * client, tried on the first change request unless the server is
	 * Prefect Cloud, and given up when the server says it has none. */
	bool csrf_off;
	char csrf_client[PP_UUID_LEN];
	char *csrf_token;
	int64_t csrf_expires; /* wall ms */
	char worker[128];
	struct pf_pool *pools;
	size_t npools;
	char **queues;
	size_t nqueues;
	double lookahead, interval;
	long batch;
	double claim_timeout;
	int64_t backoff_until; /* wall ms: the server asked us to wait */
	/* A turn's delivery of the outbox failed: the reports wait for the
	 * next poll, which delivers them before anything else. */
	bool flush_held;
	int64_t next_reconcile;	   /* wall ms */
	int64_t next_sync;	   /* wall ms: the next poll's first step is a sync */
	int64_t next_cancel_check; /* wall ms: cancellations are read once an interval */
	/* The last poll listed a full page and claimed from it: more runs
	 * are due than it took (pp_source_ops.backlog). */
	bool backlog;
	struct pf_cached *cache;
	struct pf_report *outbox, **outbox_tail;
	size_t noutbox;
	/* The deployment of each flow run claimed here, from the claim's read
	 * of the run (struct pf_run_deployment), so that rendering it reads
	 * the run no second time: one round trip a run fewer on the loop's
	 * thread. A run rendered after a restart is read again. */
	struct pp_strmap run_deployments;
	/* Every call's connections (prefect_client.c), made with the first,
	 * when the loop gives no handle of its own (pp_source.multi). */
	struct pp_http_multi *http;
	/* Calls left on the wire (pp_prefect_api_send), not yet answered. */
	size_t flying;
	/* The reports being delivered so (struct pf_flight, prefect.c). */
	struct pf_flight *flights;
	bool flights_busy; /* in outbox_flush or pp_prefect_flights_step */
};

/* One API call: method on path under api_url, body sent as JSON when set,
 * the answer parsed into *out when asked (caller frees) (prefect_client.c).
 * flags: PP_HTTP_RESENDABLE when the call, sent twice, has no second effect
 * (a read, a heartbeat, a value set, a proposal the server would refuse as
 * a duplicate of its transition_id); only those and GETs may go out on a
 * connection kept from an earlier call (lib/http.h). */
int pp_prefect_api_call(struct prefect_source *s, const char *method, const char *path,
			const struct pp_json *body, unsigned flags, struct pp_json **out,
			struct pp_error *err);
/* Calls made together (pp_prefect_api_calls): method on path with body
 * (the caller's, may be NULL); out, rc and err as pp_prefect_api_call
 * returns them (out the caller's to free). */
#define PF_PATH_MAX 512 /* "/work_pools/NAME/..." with NAME percent-encoded */
struct pf_call {
	const char *method;
	char path[PF_PATH_MAX];
	const struct pp_json *body;
	unsigned flags; /* as pp_prefect_api_call's */
	struct pp_json *out;
	int rc;
	struct pp_error err;
};
/* Make n calls, at most at_once on the wire at a time, each as
 * pp_prefect_api_call makes it (a change request the server refuses for its
 * CSRF token is sent again alone); 0, or PP_ENOMEM with none made. */
int pp_prefect_api_calls(struct prefect_source *s, struct pf_call *calls, size_t n, size_t at_once);
/* A call left on the wire (pp_prefect_api_send): the loop's wait (or any
 * other call's) drives it; its callback sets answered and wakes the loop
 * (pp_source.wake). pp_prefect_api_take then fills call's out, rc and err
 * as pp_prefect_api_calls does, or returns 1 when the server refused the
 * call's CSRF token: the token is dropped, and the call is to be sent
 * again. Calls so left count against the limit of pp_prefect_api_calls
 * (s->flying). The struct must stay in place until answered. */
struct pf_flight_call {
	struct pf_call call;
	bool answered;
	/* prefect_client.c's */
	struct prefect_source *s;
	struct pp_http_req req;
	struct pp_http_resp resp;
	int transport_rc;
	struct pp_error transport_err;
};
int pp_prefect_api_send(struct prefect_source *s, struct pf_flight_call *f, struct pp_error *err);
int pp_prefect_api_take(struct prefect_source *s, struct pf_flight_call *f);
/* Wait (a slice at most) for a call left on the wire to be answered: 0,
 * or nonzero when the loop's turn is lost (pp_source.before_send), and
 * nothing on the handle may be driven. */
int pp_prefect_api_wait(struct prefect_source *s);
/* Take a call left on the wire off it, answered or not. */
void pp_prefect_api_abandon(struct prefect_source *s, struct pf_flight_call *f);
/* While a batch of waited-for calls (out of them still on the wire) ends:
 * reports' calls answered taken up, and new ones sent into the room left
 * (prefect.c). Does nothing while the outbox is delivered in rounds, or
 * from inside itself (a CSRF token fetched for a report's call). */
void pp_prefect_flights_step(struct prefect_source *s, size_t out);
/* Remember a retryable failure's Retry-After in s->backoff_until (prefect_client.c). */
void pp_prefect_note_failure(struct prefect_source *s, int rc, const struct pp_error *err);
/* The fetchers' ud below: the source, and until when (mono ms) all they
 * have served is what its cache still serves: the soonest expiry of the
 * entries served, or now for what is never cached. The caller starts it at
 * INT64_MAX; a result made of what was served may stand in for resolving
 * again until then, and no longer. */
struct pf_fetch {
	struct prefect_source *s;
	int64_t fresh_until;
};
/* The deployment with this id, cached; *out is borrowed from the cache (prefect_blocks.c). */
int pp_prefect_read_deployment(struct prefect_source *s, const char *id, const struct pp_json **out,
			       struct pp_error *err);
/* pp_prefect_resolve_blocks' fetcher: a block document's data, cached; ud is a struct pf_fetch, *data the caller's (prefect_blocks.c). */
int pp_prefect_fetch_block(void *ud, const char *slug, const char *name, struct pp_json **data,
			   struct pp_error *err);

/* pp_prefect_resolve_documents' fetcher: a block document's data by id,
 * with its secrets, cached (prefect_blocks.c). */
int pp_prefect_fetch_document(void *ud, const char *id, struct pp_json **data,
			      struct pp_error *err);
/* pp_prefect_resolve_variables' fetcher: GET /variables/name/NAME, *value
 * NULL when there is none (prefect_blocks.c). */
int pp_prefect_fetch_variable(void *ud, const char *name, struct pp_json **value,
			      struct pp_error *err);

#endif
