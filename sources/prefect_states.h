/* Pieces of the Prefect run source that need no server: timestamps in
 * Prefect's format, the flow-run state a store state is reported as, and
 * resolution of {{ prefect.blocks.<type>.<name>[.<field>] }} references in a
 * base job template. */
#ifndef PP_PREFECT_API_H
#define PP_PREFECT_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "lib/json.h"
#include "store/store.h"

/* A time as Prefect writes it ("2024-05-01T10:00:00.123456Z", with
 * "+00:00", or without a zone, meaning UTC) to ms since the epoch: RFC 3339
 * by lib/time.h with the zone optional. */
int pp_prefect_time_parse(const char *iso, int64_t *ms);
/* ms since the epoch to "YYYY-MM-DDTHH:MM:SS.mmmZ" (n >= PP_TIME_LEN
 * keeps it whole). */
void pp_prefect_time_format(int64_t ms, char *out, size_t n);

/* The Prefect state type (COMPLETED, FAILED, CRASHED, CANCELLED, RUNNING)
 * a store state is reported as; NULL when nothing is reported. A run that
 * failed before it was ever submitted is CRASHED, as Prefect's workers mark
 * a run whose infrastructure never started. */
const char *pp_prefect_state_for(enum pp_store_state st, bool submitted);

/* Fetch a block document's data object (caller frees *data). */
typedef int (*pp_prefect_block_fetch)(void *ud, const char *type_slug, const char *name,
				      struct pp_json **data, struct pp_error *err);

/* Replace every block reference in the strings of tmpl, in place. A string
 * that is only the reference takes the referenced JSON value (an object for
 * a whole block; a block whose data is just {"value": x} stands for x, as in
 * Prefect); a reference inside other text must name a string or number.
 * Errors name the template path. */
int pp_prefect_resolve_blocks(struct pp_json *tmpl, pp_prefect_block_fetch fetch, void *ud,
			      struct pp_error *err);

/* The source itself (sources/prefect.c), for pp_sources[]. */
struct pp_source_ops;
extern const struct pp_source_ops pp_source_prefect;

#endif
