/* Building canned HTTP responses in the fuzz targets. */
#ifndef PP_FUZZ_RESP_H
#define PP_FUZZ_RESP_H

#include <stdlib.h>
#include <string.h>

#include "lib/http.h"

/* Add a response header (or trailer); the harness aborts when it cannot,
 * as that is the harness failing, not the code under test. */
static void fuzz_add_header(struct pp_http_resp *r, const char *name, const char *value)
{
	if (pp_http_resp_add_header(r, name, value))
		abort();
}

#endif
