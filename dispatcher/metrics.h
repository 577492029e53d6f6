/* /healthz and /metrics (Prometheus text) on a loopback port. The loop
 * publishes a snapshot; the HTTP thread only reads the latest copy. */
#ifndef PP_METRICS_H
#define PP_METRICS_H

#include <netinet/in.h>
#include <stdint.h>

#include "lib/err.h"
#include "dispatcher/op_driver.h"
#include "store/store.h"

/* Pools whose credentials' remaining lifetime is published. */
#define PP_METRICS_CRED_POOLS 64

struct pp_metrics_snapshot {
	long by_state[PP_ST_COUNT];
	double queue_lag_seconds;
	int active, submitting;
	unsigned long token_refreshes;
	/* The store's checkpoints (store.h); has_checkpoints false for a
	 * store that takes none of its own. */
	struct pp_store_checkpoints checkpoints;
	bool has_checkpoints;
	struct pp_exec_stats exec; /* totals of providers[] */
	struct pp_exec_provider_stats providers[PP_EXEC_PROVIDERS_MAX];
	size_t nproviders;
	/* Seconds until each pool's current token expires (pools whose
	 * credentials hold a token with a known expiry). */
	struct {
		char pool[64];
		long seconds_left;
	} creds[PP_METRICS_CRED_POOLS];
	size_t ncreds;
};

struct pp_metrics;

/* listen: "127.0.0.1:9464" or ":9464" (loopback). NULL m is allowed in
 * every call below, so callers need not check whether metrics are on. */
/* The one HOST:PORT parser: serve's start and the configuration check
 * both use it, so check refuses what serve would. */
int pp_metrics_parse_listen(const char *listen, struct sockaddr_in *out, struct pp_error *err);
int pp_metrics_start(const char *listen, struct pp_metrics **out, struct pp_error *err);
void pp_metrics_stop(struct pp_metrics *m);
void pp_metrics_publish(struct pp_metrics *m, const struct pp_metrics_snapshot *s);
/* counter: "submissions", "retries", "adopted" (runs claimed past their
 * SCHEDULED state: a lease taken over from another dispatcher or an
 * earlier process) or "store_errors" (store calls that failed). */
void pp_metrics_count(struct pp_metrics *m, const char *counter, unsigned long n);
/* A run accepted by the cloud seconds after it was due. */
void pp_metrics_observe_submission(struct pp_metrics *m, double seconds);
void pp_metrics_count_terminal(struct pp_metrics *m, enum pp_store_state st);
/* n remote objects the sweeper removed for pool (dispatcher/sweep.c). */
void pp_metrics_count_swept(struct pp_metrics *m, const char *pool, unsigned long n);
/* Runs per minute this process saw, for the status page's chart. */
struct pp_metrics_minute {
	int64_t minute; /* Unix time / 60 */
	unsigned long started, succeeded, failed, cancelled;
	double delay_sum, delay_max; /* submission delay (due to accepted), s */
	unsigned long delay_count;
};
/* Minutes the activity history keeps: the last six hours. */
#define PP_METRICS_ACTIVITY_MINUTES 360
/* The history, oldest first, up to the current minute; minutes without
 * activity are included (zeros). Returns how many were written (at most
 * PP_METRICS_ACTIVITY_MINUTES). */
size_t pp_metrics_activity(struct pp_metrics *m, struct pp_metrics_minute *out);

/* Paths other than /healthz and /metrics go to a page handler (the status
 * page, dispatcher/ui.c) when one is set. It runs on the listener's
 * thread, one request at a time. */
struct pp_metrics_req {
	const char *url;
	const char *authorization; /* the Authorization header, or NULL */
	void *conn;		   /* for pp_metrics_req_arg */
};
/* A query argument of the request, or NULL. */
const char *pp_metrics_req_arg(const struct pp_metrics_req *r, const char *key);
struct pp_metrics_resp {
	unsigned status;
	const char *content_type;
	struct pp_buf body;
	/* Extra response headers, "Name: value" (static strings or owned by
	 * the handler until the next call), NULL-terminated. */
	const char *headers[8];
};
typedef void (*pp_metrics_page_fn)(void *ud, const struct pp_metrics_req *req,
				   struct pp_metrics_resp *resp);
void pp_metrics_set_page(struct pp_metrics *m, pp_metrics_page_fn fn, void *ud);

/* Port actually bound (for ":0"). */
int pp_metrics_port(const struct pp_metrics *m);

#endif
