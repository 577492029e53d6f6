/* The table of run sources beyond the embedded store. The Prefect API
 * source (issue 10) plugs in here. */
#include "sources/prefect_states.h"
#include "sources/source.h"

const struct pp_source_ops *const pp_sources[] = {
	&pp_source_prefect,
	NULL,
};
