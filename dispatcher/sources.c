/* The table of run sources beyond the embedded store. The Prefect API
 * source (issue 10) plugs in here. */
#include "dispatcher/prefect_api.h"
#include "dispatcher/source.h"

const struct pp_source_ops *const pp_sources[] = {
	&pp_source_prefect,
	NULL,
};
