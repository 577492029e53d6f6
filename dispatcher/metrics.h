/* /healthz and /metrics (Prometheus text) on a loopback port. The loop
 * publishes a snapshot; the HTTP thread only reads the latest copy. */
#ifndef PP_METRICS_H
#define PP_METRICS_H

#include <netinet/in.h>

#include "lib/err.h"
#include "dispatcher/op_driver.h"
#include "store/store.h"

struct pp_metrics_snapshot {
	long by_state[PP_ST_COUNT];
	double queue_lag_seconds;
	int active, submitting;
	unsigned long token_refreshes;
	struct pp_exec_stats exec;
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
void pp_metrics_count(struct pp_metrics *m, const char *counter, unsigned long n);
void pp_metrics_count_terminal(struct pp_metrics *m, enum pp_store_state st);
/* n remote objects the sweeper removed for pool (dispatcher/sweep.c). */
void pp_metrics_count_swept(struct pp_metrics *m, const char *pool, unsigned long n);
/* Port actually bound (for ":0"). */
int pp_metrics_port(const struct pp_metrics *m);

#endif
