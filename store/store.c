/* Backend-independent parts of the run store. */
#include "store/store.h"
#include "store/pg.h"
#include "store/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const state_names[PP_ST_COUNT] = {
	"SCHEDULED", "SUBMITTING", "SUBMITTED", "RUNNING", "CANCELLING",  "SUCCEEDED",
	"FAILED",    "CRASHED",	   "CANCELLED", "DEAD",	   "QUARANTINED",
};

const char *pp_store_state_name(enum pp_store_state s)
{
	return (unsigned)s < PP_ST_COUNT ? state_names[s] : "UNKNOWN";
}

int pp_store_state_parse(const char *s, enum pp_store_state *out)
{
	for (int i = 0; i < PP_ST_COUNT; i++) {
		if (!strcasecmp(s, state_names[i])) {
			*out = (enum pp_store_state)i;
			return 0;
		}
	}
	return PP_EINVALID;
}

bool pp_store_state_terminal(enum pp_store_state s)
{
	return s >= PP_ST_SUCCEEDED;
}

int pp_store_state_read(const char *text, enum pp_store_state *out, char **last_error)
{
	/* Exactly as the backends write it: the SQL list matches case and all. */
	for (int i = 0; text && i < PP_ST_COUNT; i++) {
		if (!strcmp(text, state_names[i])) {
			*out = (enum pp_store_state)i;
			return 0;
		}
	}
	char *why = NULL;
	if (asprintf(&why, PP_QUARANTINE_WHY "\"%.*s\"", PP_QUARANTINE_STATE_MAX,
		     text ? text : "") < 0)
		return PP_ENOMEM;
	free(*last_error);
	*last_error = why;
	*out = PP_ST_QUARANTINED;
	return 0;
}

void pp_run_rec_free(struct pp_run_rec *r)
{
	if (!r)
		return;
	free(r->name);
	free(r->deployment);
	free(r->job_variables);
	free(r->parameters);
	free(r->source);
	free(r->source_ref);
	free(r->infra_id);
	free(r->idem_key);
	free(r->last_error);
	free(r->queue);
	free(r->waiting);
	free(r->slot_key);
	memset(r, 0, sizeof(*r));
}

void pp_run_recs_free(struct pp_run_rec *r, int n)
{
	for (int i = 0; i < n; i++)
		pp_run_rec_free(&r[i]);
	free(r);
}

void pp_run_events_free(struct pp_run_event *ev, int n)
{
	for (int i = 0; i < n; i++)
		free(ev[i].message);
	free(ev);
}

int pp_store_open(const char *url, struct pp_store **out, struct pp_error *err)
{
	if (!strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11))
		return pp_store_pg.open(url, out, err);
	if (!strncmp(url, "sqlite:", 7))
		url += 7;
	return pp_store_sqlite.open(url, out, err);
}

const struct pp_db_ops *pp_store_db(const struct pp_store *s)
{
	return s->ops == &pp_store_sqlite ? &pp_db_sqlite : &pp_db_pg;
}

void pp_store_close(struct pp_store *s)
{
	if (s)
		s->ops->close(s);
}

void pp_store_counts_add(struct pp_store_counts *c, const char *pool, enum pp_store_state state,
			 long n)
{
	c->by_state[state] += n;
	int i = 0, cmp = 1;
	while (i < c->npools && (cmp = strcmp(c->pools[i].pool, pool)) < 0)
		i++;
	if (i < c->npools && cmp == 0) {
		c->pools[i].by_state[state] += n;
		return;
	}
	if (i == PP_STORE_COUNT_POOLS) {
		c->more_pools = true;
		return;
	}
	/* A new pool at i: the last one kept makes room when c is full. */
	if (c->npools == PP_STORE_COUNT_POOLS) {
		c->more_pools = true;
		c->npools--;
	}
	memmove(&c->pools[i + 1], &c->pools[i], (size_t)(c->npools - i) * sizeof(c->pools[0]));
	memset(&c->pools[i], 0, sizeof(c->pools[i]));
	snprintf(c->pools[i].pool, sizeof(c->pools[i].pool), "%s", pool);
	c->npools++;
	c->pools[i].by_state[state] += n;
}

void pp_store_counts_merge(struct pp_store_counts *c, const struct pp_store_counts *from)
{
	long kept[PP_ST_COUNT] = {0};
	for (int i = 0; i < from->npools; i++)
		for (int st = 0; st < PP_ST_COUNT; st++)
			if (from->pools[i].by_state[st]) {
				pp_store_counts_add(c, from->pools[i].pool, (enum pp_store_state)st,
						    from->pools[i].by_state[st]);
				kept[st] += from->pools[i].by_state[st];
			}
	/* What from counted of pools it did not keep: in the totals only. */
	for (int st = 0; st < PP_ST_COUNT; st++)
		c->by_state[st] += from->by_state[st] - kept[st];
	c->more_pools |= from->more_pools;
}

bool pp_store_recount_due(const struct pp_store_recount *r, int64_t now_ms)
{
	return !r->known || r->rows < PP_RECOUNT_FREE_ROWS ||
	       (now_ms - r->at_ms) * 1000 >= (int64_t)r->rows * PP_RECOUNT_US_PER_ROW;
}

void pp_store_recount_done(struct pp_store_recount *r, long rows, int64_t now_ms)
{
	r->known = true;
	r->at_ms = now_ms;
	r->rows = rows;
}

int pp_store_counts_cached(struct pp_store *s, struct pp_store_counts_cache *c,
			   int (*count)(struct pp_store *s, int part, struct pp_store_counts *out,
					struct pp_error *err),
			   struct pp_store_counts *out, struct pp_error *err)
{
	for (int part = 0; part < PP_COUNT_PARTS; part++) {
		if (!pp_store_recount_due(&c->recount[part], pp_mono_ms()))
			continue;
		memset(&c->part[part], 0, sizeof(c->part[part]));
		int rc = count(s, part, &c->part[part], err);
		if (rc) {
			c->recount[part].known = false;
			return rc;
		}
		long rows = 0;
		for (int st = 0; st < PP_ST_COUNT; st++)
			rows += c->part[part].by_state[st];
		pp_store_recount_done(&c->recount[part], rows, pp_mono_ms());
	}
	*out = c->part[PP_COUNT_UNFINISHED];
	pp_store_counts_merge(out, &c->part[PP_COUNT_FINISHED]);
	return 0;
}
