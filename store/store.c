/* Backend-independent parts of the run store. */
#include "store/store.h"
#include "store/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/rand.h>

static const char *const state_names[PP_ST_COUNT] = {
	"SCHEDULED", "SUBMITTING", "SUBMITTED", "RUNNING",   "CANCELLING",
	"SUCCEEDED", "FAILED",	   "CRASHED",	"CANCELLED", "DEAD",
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

void pp_store_close(struct pp_store *s)
{
	if (s)
		s->ops->close(s);
}

void pp_uuid4(char out[PP_ID_LEN])
{
	unsigned char b[16];
	if (RAND_bytes(b, sizeof(b)) != 1) {
		/* RAND_bytes only fails without entropy; ids still need to differ. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = (unsigned char)((ts.tv_nsec >> (i % 8)) ^ rand());
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, PP_ID_LEN,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
}

int64_t pp_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pp_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
