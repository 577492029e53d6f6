/* A run's start attempts, from its idempotency key and its events
 * (attempts.h). */
#include "dispatcher/attempts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* More than start_retries can ask for: an event naming a larger number is
 * not one of ours. */
#define PP_ATTEMPTS_MAX 1000

void pp_attempt_key(const char *run_id, int n, char *out, size_t size)
{
	snprintf(out, size, "%s-%d", run_id, n);
}

int pp_attempt_of(const struct pp_run_rec *r)
{
	size_t idlen = strlen(r->id);
	const char *k = r->idem_key;
	if (!k || strncmp(k, r->id, idlen) || k[idlen] != '-')
		return 1;
	char *end;
	long n = strtol(k + idlen + 1, &end, 10);
	return *end || n < 1 || n > 1000000 ? 1 : (int)n;
}

/* The slot for attempt n, grown as needed; NULL when out of memory. */
static struct pp_attempt *slot(struct pp_attempt **v, int *len, int n)
{
	if (n < 1 || n > PP_ATTEMPTS_MAX)
		return NULL;
	if (n > *len) {
		struct pp_attempt *g = realloc(*v, (size_t)n * sizeof(**v));
		if (!g)
			return NULL;
		memset(g + *len, 0, (size_t)(n - *len) * sizeof(*g));
		for (int i = *len; i < n; i++)
			g[i].n = i + 1;
		*v = g;
		*len = n;
	}
	return &(*v)[n - 1];
}

int pp_run_attempts(const struct pp_run_rec *r, const struct pp_run_event *ev, int nev,
		    struct pp_attempt **out, int *n, struct pp_error *err)
{
	struct pp_attempt *v = NULL, *a;
	int len = 0;
	*out = NULL;
	*n = 0;
	for (int i = 0; i < nev; i++) {
		const char *m = ev[i].message;
		if (!m)
			continue;
		if (!strncmp(m, PP_EV_SUBMITTED, strlen(PP_EV_SUBMITTED))) {
			/* An event written before attempts were numbered names attempt 1. */
			m += strlen(PP_EV_SUBMITTED);
			const char *tag = strstr(m, " (attempt ");
			int k = tag ? atoi(tag + strlen(" (attempt ")) : 1;
			if (!(a = slot(&v, &len, k)))
				continue;
			snprintf(a->remote, sizeof(a->remote), "%.*s",
				 (int)(tag ? (size_t)(tag - m) : strlen(m)), m);
		} else if (!strncmp(m, PP_EV_ATTEMPT, strlen(PP_EV_ATTEMPT))) {
			char *rest;
			long k = strtol(m + strlen(PP_EV_ATTEMPT), &rest, 10);
			if (*rest != ' ' || !(a = slot(&v, &len, (int)k)))
				continue;
			const char *cut = strstr(rest, PP_EV_RETRYING);
			snprintf(a->outcome, sizeof(a->outcome), "%.*s",
				 (int)(cut ? (size_t)(cut - rest - 1) : strlen(rest + 1)),
				 rest + 1);
		}
	}
	/* The current attempt: known from the key even before it is submitted. */
	int cur = r->state == PP_ST_SCHEDULED ? 0 : pp_attempt_of(r);
	if (cur > 0) {
		if (!(a = slot(&v, &len, cur))) {
			free(v);
			return pp_fail(err, PP_ENOMEM, "out of memory listing attempts");
		}
		const char *e = r->last_error;
		if (pp_store_state_terminal(r->state) && e && *e)
			snprintf(a->outcome, sizeof(a->outcome), "%s: %s",
				 pp_store_state_name(r->state), e);
		else
			snprintf(a->outcome, sizeof(a->outcome), "%s",
				 pp_store_state_name(r->state));
	}
	*out = v;
	*n = len;
	return 0;
}
