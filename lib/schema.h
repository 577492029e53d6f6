/* The JSON-schema subset Prefect's base job templates use for their
 * "variables" block: type, enum, const, required, properties,
 * additionalProperties, items, numeric and length bounds, pattern, and
 * $ref/allOf/anyOf/oneOf. */
#ifndef PP_SCHEMA_H
#define PP_SCHEMA_H

#include <stdbool.h>

#include "lib/err.h"
#include "lib/json.h"

/* Check value against schema; root is the document "$ref"s resolve in.
 * path names the value in messages, which read `"PATH": what is wrong`.
 * String values of writeOnly / format "password" members are registered as
 * secrets on the way. */
int pp_schema_validate(const struct pp_json *schema, const struct pp_json *root,
		       const struct pp_json *value, const char *path, struct pp_error *err);

/* Told each string pp_schema_validate_noting registers as a secret; the
 * string is the value's, valid while the value is. */
typedef void pp_schema_secret_fn(const char *secret, void *arg);

/* pp_schema_validate, telling noted(secret, arg) each string it registers
 * (those of branches that failed too, as it registers them), so that a
 * caller keeping the values can register them again later without
 * validating them again. */
int pp_schema_validate_noting(const struct pp_json *schema, const struct pp_json *root,
			      const struct pp_json *value, const char *path,
			      pp_schema_secret_fn *noted, void *arg, struct pp_error *err);

/* True when a variable's schema accepts "no value" (null): Prefect treats a
 * property without a default, with a null default, or one that is a block
 * reference (allOf/anyOf) as optional. */
bool pp_schema_allows_null(const struct pp_json *schema);

#endif
