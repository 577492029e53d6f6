/* The dispatch loop: claim due runs, render, submit through the provider,
 * watch to the end, clean up, report. One thread, one libcurl multi. */
#ifndef PP_LOOP_H
#define PP_LOOP_H

#include <stdbool.h>

#include "dispatcher/config.h"
#include "lib/err.h"

struct pp_loop_opts {
	bool once;	   /* one pass: claim what is due, then stop */
	bool wait;	   /* once: follow runs to a terminal state */
	double timeout;	   /* once: give up after this many seconds (0: none) */
	const char *owner; /* lease owner id; NULL: host:pid:random */
};

struct pp_loop_summary {
	int claimed, submitted, succeeded, failed, crashed, cancelled, dead, retrying, lost_lease;
};

/* Runs until stopped (serve) or the pass is over (once). Signals: call
 * pp_loop_request_stop / pp_loop_request_reload from handlers. cfg is
 * owned by the caller; on reload the loop loads cfg->path again and swaps
 * only when the new file is valid. */
int pp_loop_run(struct pp_config *cfg, const struct pp_loop_opts *opts, struct pp_loop_summary *sum,
		struct pp_error *err);
void pp_loop_request_stop(void);
void pp_loop_request_reload(void);

/* Exit status for a once pass (documented in the README): 0 every claimed
 * run submitted (with --wait: succeeded); 1 some run failed, crashed, was
 * cancelled or is dead; 75 some run is waiting for a retry. */
int pp_loop_once_status(const struct pp_loop_summary *sum, bool wait);

/* Default state path: the store URL from config, or STATE_DIR/pushpool.db. */
int pp_store_url(const struct pp_config *cfg, char *out, size_t n);

#endif
