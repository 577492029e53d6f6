/* Helpers shared by the cloud backends: deterministic names, request and
 * response plumbing, and the job-shaping steps Prefect's workers apply to a
 * rendered job configuration (command strings, env and label maps). */
#ifndef PP_PROVIDERS_COMMON_H
#define PP_PROVIDERS_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/err.h"
#include "lib/json.h"
#include "providers/provider.h"

/* Largest response body a backend accepts from a cloud API. */
#define PP_PROVIDER_MAX_RESPONSE ((size_t)4 << 20)

/* "pp-<32 hex>-<attempt>": a UUID run id keeps its hex digits, any other id
 * is replaced by the first 32 hex digits of its SHA-256. The result is a
 * valid Cloud Run job id, ECS clientToken and startedBy (at most 48 bytes). */
int pp_derive_name(char *out, size_t size, const char *run_id, int attempt, struct pp_error *err);

struct pp_cred;
/* The run's own credential from the job's credentials object at key (the
 * data of a Prefect credentials block, resolved into the job), of
 * credential type type: opened into *slot (the run state's, which the
 * provider's release frees) and made io->run_cred. Nothing when the job
 * has none; an error for a block reference nothing resolved. */
int pp_job_cred(struct pp_run_io *io, struct pp_cred **slot, const char *key, const char *type,
		struct pp_error *err);
/* The credential a run signs with: its own, else the pool's (NULL: none). */
struct pp_cred *pp_run_cred(const struct pp_run_io *io);

/* Lowercase hex SHA-256 of n bytes. */
void pp_sha256_hex(const void *p, size_t n, char out[65]);

/* Copy src into dst; PP_EINVALID naming `what` when it does not fit. */
int pp_copy_str(char *dst, size_t size, const char *src, const char *what, struct pp_error *err);

/* Base URL without trailing slash: the endpoint override when set, else def. */
int pp_base_url(char *out, size_t size, const char *endpoint, const char *def,
		struct pp_error *err);

/* Run state keeps values that are the same for every run of a pool (base
 * URL, region, cluster, names) as interned strings (lib/intern.h), one
 * shared copy for all the runs in flight. *slot becomes the interned copy
 * of src, dropping what it held; PP_EINVALID naming `what` when src is
 * longer than max bytes, PP_ENOMEM. The provider's release drops it. */
int pp_intern_set(const char **slot, const char *src, size_t max, const char *what,
		  struct pp_error *err);
/* pp_base_url into an interned slot, at most PP_BASE_URL_MAX bytes. */
#define PP_BASE_URL_MAX 511
int pp_base_url_intern(const char **slot, const char *endpoint, const char *def,
		       struct pp_error *err);

/* Split a command line into words the way sh does for quotes and
 * backslashes (no expansion); *out is a new array of strings. */
int pp_shell_split(const char *s, struct pp_json **out, struct pp_error *err);

/* Normalise a "command"/"args" value in place in obj: a string becomes its
 * word list, null or "" removes the member, an array is kept. */
int pp_normalize_command(struct pp_json *obj, const char *key, struct pp_error *err);

/* Remove null members and null array elements, recursively. */
void pp_json_strip_nulls(struct pp_json *j);

/* Append {name_key: k, value_key: v} for each member of map to list
 * (non-string values are written as JSON text). Entries already in list
 * with the same name are replaced, so a later map wins. */
int pp_map_to_pairs(const struct pp_json *map, struct pp_json *list, const char *name_key,
		    const char *value_key, struct pp_error *err);

/* Turn a number member into its decimal string form in place ("1024"). */
int pp_number_to_string(struct pp_json *obj, const char *key);

/* Fill io->req with a request carrying a compact JSON body (may be NULL),
 * the given Content-Type (the core adds the credential when it sends). */
int pp_req_json(struct pp_run_io *io, const char *method, const char *url, const char *content_type,
		const struct pp_json *body, struct pp_error *err);

/* Parse the body of io->resp as a JSON object; `what` names the call. */
int pp_resp_json(const struct pp_run_io *io, const char *what, struct pp_json **out,
		 struct pp_error *err);
/* The same, building only the members keep names (pp_json_parse_keep):
 * for an answer read for a few of its fields. */
int pp_resp_json_keep(const struct pp_run_io *io, const char *what, const char *const *keep,
		      struct pp_json **out, struct pp_error *err);

#endif
