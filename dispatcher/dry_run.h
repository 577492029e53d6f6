/* Dry run of a submission: the exact HTTP requests a provider would send,
 * for `pushpool render --request`. */
#ifndef PP_REQUEST_DUMP_H
#define PP_REQUEST_DUMP_H

#include "lib/buf.h"
#include "lib/err.h"
#include "providers/provider.h"

/* Drive p's submit op on io (already prepared: pp_exec_io_prepare) without
 * any network I/O, answering each request with a minimal successful
 * response, and append every request to out: method, URL, headers, body
 * (pretty JSON). Credentials are not applied; where they would be, an
 * Authorization line says so. Registered secrets are redacted. */
int pp_request_dump(const struct pp_provider *p, struct pp_run_io *io, struct pp_buf *out,
		    struct pp_error *err);

#endif
