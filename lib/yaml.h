/* One YAML document (a Prefect project file, prefect.yaml) read into the
 * JSON tree of lib/json.h, on libyaml's event parser. Every node keeps its
 * source line (pp_json.line) for messages.
 *
 * Scalars resolve as PyYAML's safe_load does (YAML 1.1, what Prefect reads
 * these files with), so a file means the same to both: plain `yes`/`no`/
 * `on`/`off`/`true`/`false` (in three casings) are booleans, `~`, `null` and
 * an empty value are null, decimal, 0o-less octal (`0755`), `0x` and `0b`
 * integers and dotted floats are numbers (underscores allowed); quoted
 * scalars and everything else (dates, `1e3`, `1:30`) are strings. `.inf` and
 * `.nan` are refused: JSON cannot hold them.
 *
 * Anchors, aliases and merge keys (`<<: *base`, `<<: [*a, *b]`, explicit
 * keys winning, earlier merged mappings over later ones) are expanded into
 * copies, counted against the node cap, so an alias bomb ("billion laughs")
 * fails as soon as the copies would pass it. An alias names an anchor whose
 * node is complete, so a node cannot contain itself. Duplicate keys, keys
 * that are not scalars, tags other than the core schema's (`!!str`, `!!int`,
 * `!!float`, `!!bool`, `!!null`, `!!map`, `!!seq`) and more than one
 * document are refused. */
#ifndef PP_YAML_H
#define PP_YAML_H

#include <stddef.h>

#include "lib/err.h"
#include "lib/json.h"

/* Defaults of struct pp_yaml_limits (a field left 0 takes these). */
#define PP_YAML_MAX_BYTES   ((size_t)1 << 20) /* the document's size */
#define PP_YAML_MAX_DEPTH   64		      /* nested collections, aliases expanded */
#define PP_YAML_MAX_NODES   100000	      /* values and keys, aliases expanded */
#define PP_YAML_MAX_ANCHORS 256		      /* distinct anchor names */

struct pp_yaml_limits {
	size_t max_bytes;
	int max_depth;
	size_t max_nodes;
	size_t max_anchors;
};

/* Parse text (len bytes) into *out (the caller's, pp_json_free). name
 * prefixes messages, which read "NAME:LINE: what"; lim may be NULL for the
 * defaults. An empty document is JSON null. Every failure, a cap included,
 * is PP_EINVALID (bad input), except allocation failure (PP_ENOMEM). */
int pp_yaml_parse(const char *text, size_t len, const char *name, const struct pp_yaml_limits *lim,
		  struct pp_json **out, struct pp_error *err);

/* Read path (a regular file, at most max_bytes) and parse it; messages
 * name the path. PP_EIO / PP_ENOTFOUND when the file cannot be read. */
int pp_yaml_parse_file(const char *path, const struct pp_yaml_limits *lim, struct pp_json **out,
		       struct pp_error *err);

#endif
