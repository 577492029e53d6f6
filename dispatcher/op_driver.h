/* Drives provider ops (providers/provider.h) over one libcurl multi
 * handle: sends the requests an op asks for, feeds responses back, retries
 * retryable failures with full-jitter exponential backoff (Retry-After as a
 * floor) within a bounded budget, and enforces per-call timeouts. One
 * thread drives thousands of ops. Timers use the monotonic clock. */
#ifndef PP_EXEC_H
#define PP_EXEC_H

#include "lib/clock.h" /* pp_backoff_ms */
#include "lib/err.h"
#include "providers/provider.h"

/* LIST and REMOVE are the sweeper's (dispatcher/sweep.c); LOGS reads a
 * run's output (`runs logs`, dispatcher/inflight_logs.c). */
enum pp_op {
	PP_OP_SUBMIT,
	PP_OP_STATUS,
	PP_OP_CANCEL,
	PP_OP_CLEANUP,
	PP_OP_LIST,
	PP_OP_REMOVE,
	PP_OP_LOGS
};
const char *pp_op_name(enum pp_op op);

struct pp_exec_policy {
	int max_attempts;     /* per request, including the first; 0: 6 */
	long base_ms;	      /* 0: 200 */
	long cap_ms;	      /* 0: 20000 */
	long budget_ms;	      /* total time for one op including waits; 0: 120000 */
	long call_timeout_ms; /* per HTTP call; 0: 30000 */
	/* Monotonic ms (0: none): no op starts at or after it and none sends
	 * past it. The dispatcher's lease on its runs ends then unless
	 * renewed; after a stall (SIGSTOP, a VM pause) another dispatcher may
	 * own them. */
	long long not_after_ms;
};

struct pp_exec;
struct pp_http_multi;
typedef void (*pp_exec_done_fn)(void *ud, int rc, const struct pp_error *err);

struct pp_exec *pp_exec_new(void);
/* A driver on the caller's transfer handle m, which others may share (a
 * run source's calls): m must outlive the driver, and pp_exec_free stops
 * only the driver's own transfers on it. pp_exec_poll waits on all of m's
 * transfers; a sharer whose transfer ended calls pp_exec_wake from its
 * callback so that the poll returns to the loop. */
struct pp_exec *pp_exec_new_on(struct pp_http_multi *m);
void pp_exec_wake(struct pp_exec *x);
void pp_exec_free(struct pp_exec *x);
/* Begin op on io (io must stay valid until done runs). done gets 0 when
 * the op returned PP_STEP_DONE, else the failure. */
int pp_exec_start(struct pp_exec *x, const struct pp_provider *p, enum pp_op op,
		  struct pp_run_io *io, const struct pp_exec_policy *policy, pp_exec_done_fn done,
		  void *ud, struct pp_error *err);
/* gate (NULL: none) runs before the driver sends or waits, in
 * pp_exec_poll: the loop commits its store writes there (group commit),
 * so no request goes out before the write that records its intent is
 * durable; requests are handed to the HTTP layer before it, but nothing
 * is sent before pp_http_multi_run. A nonzero return ends that poll at
 * once, nothing sent. */
void pp_exec_set_gate(struct pp_exec *x, int (*gate)(void *ud), void *ud);
/* Drop every op started with ud, whatever its phase, without calling
 * done: its io is the caller's again, to free (its request freed, as
 * done would find it). What the op sent may have reached the cloud; the
 * caller's records must allow for that, as for a crash. Safe from inside
 * a done callback of another op. */
void pp_exec_abandon(struct pp_exec *x, const void *ud);
/* Drive I/O and timers for at most timeout_ms, or until an op finished,
 * pp_exec_wake was called, or the descriptor the transfer handle watches
 * (pp_http_multi_watch) turned readable; returns ops still active. */
int pp_exec_poll(struct pp_exec *x, long timeout_ms);
int pp_exec_active(const struct pp_exec *x);
/* Counters for /metrics. */
struct pp_exec_stats {
	unsigned long requests, retries, throttled, failures;
	double latency_sum;
	unsigned long latency_buckets[12]; /* <=5,10,25,50,100,250,500ms,1,2.5,5,10s,+Inf */
};
/* The totals over every provider. */
void pp_exec_stats(const struct pp_exec *x, struct pp_exec_stats *out);
/* Providers kept apart in the counters; ops of more providers than this
 * (only possible with providers registered at run time) count in the last. */
#define PP_EXEC_PROVIDERS_MAX 16
struct pp_exec_provider_stats {
	const char *provider; /* the provider's name (static) */
	struct pp_exec_stats s;
};
/* The counters of each provider the driver has run ops for, in the order
 * first seen; returns how many were written (at most max). */
size_t pp_exec_stats_by_provider(const struct pp_exec *x, struct pp_exec_provider_stats *out,
				 size_t max);

/* Blocking convenience for one op (the `run` command and tests). */
int pp_exec_run_op(const struct pp_provider *p, enum pp_op op, struct pp_run_io *io,
		   const struct pp_exec_policy *policy, struct pp_error *err);

/* The credential io's requests go out with: the run's own (run_cred),
 * else the pool's (cred); NULL for none. */
struct pp_cred *pp_exec_cred(const struct pp_run_io *io);
/* Apply that credential to io->req (bearer token, signature, token
 * metadata): the last step before a request is handed to the HTTP layer. */
int pp_exec_authorize(struct pp_run_io *io, struct pp_error *err);

/* Run state for one run on provider p: allocate io->state (state_size
 * bytes, zeroed) and call p->prepare (new run) or p->restore (a run
 * submitted earlier, from io->infra_id). On failure nothing is left
 * allocated. Pair with pp_exec_io_release once the run is finished. */
int pp_exec_io_prepare(struct pp_run_io *io, const struct pp_provider *p, struct pp_error *err);
int pp_exec_io_restore(struct pp_run_io *io, const struct pp_provider *p, struct pp_error *err);
void pp_exec_io_release(struct pp_run_io *io, const struct pp_provider *p);

#endif
