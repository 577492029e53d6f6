/* A run's start attempts. Each attempt is one remote object with its own
 * name and idempotency key ("RUNID-N"): a run whose job failed to start is
 * started again as attempt N+1 (dispatcher/inflight.c), and its events
 * record every attempt, which `runs show` lists from them. */
#ifndef PP_ATTEMPTS_H
#define PP_ATTEMPTS_H

#include <stddef.h>

#include "store/store.h"

/* The events inflight.c writes and pp_run_attempts reads:
 *   "submitted: INFRA (attempt N)"
 *   "attempt N failed to start (CLASS): WHY; retrying as attempt N+1 in D ms" */
#define PP_EV_SUBMITTED "submitted: "
#define PP_EV_ATTEMPT	"attempt "
#define PP_EV_RETRYING	"; retrying as attempt "

/* The idempotency key of attempt n of run id. */
void pp_attempt_key(const char *run_id, int n, char *out, size_t size);
/* The attempt a run is on, from its idempotency key (1 without one, or
 * with a key of another shape). */
int pp_attempt_of(const struct pp_run_rec *r);

struct pp_attempt {
	int n;
	char remote[512];  /* what the cloud named it (the infra id), "" if never submitted */
	char outcome[512]; /* how it ended, or the run's state while it is the current one */
};
/* The attempts r's events record, in order (at least one for a run past
 * SCHEDULED). *out is the caller's (free). 0 or PP_ENOMEM. */
int pp_run_attempts(const struct pp_run_rec *r, const struct pp_run_event *ev, int nev,
		    struct pp_attempt **out, int *n, struct pp_error *err);

#endif
