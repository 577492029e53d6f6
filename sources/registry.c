/* The table of run sources beyond the embedded store, and the numbering
 * of the templates they lend (source.h). The Prefect API source (issue 10)
 * plugs in here. */
#include <stdatomic.h>

#include "sources/prefect_states.h"
#include "sources/source.h"

const struct pp_source_ops *const pp_sources[] = {
	&pp_source_prefect,
	NULL,
};

uint64_t pp_source_template_version(void)
{
	/* Atomic: whatever thread a source runs on, no number goes out
	 * twice (two templates under one number would share renders). */
	static atomic_uint_fast64_t last;
	return (uint64_t)atomic_fetch_add(&last, 1) + 1;
}
