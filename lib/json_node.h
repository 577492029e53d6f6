/* Private to lib/json*.c: making a node with room for its string and key
 * in its own allocation (see struct pp_json in lib/json.h). */
#ifndef PP_JSON_NODE_H
#define PP_JSON_NODE_H

#include "lib/json.h"

/* A node of type t whose str (when str_cap > 0) and key (when key_cap > 0)
 * point at str_cap and key_cap bytes of its own allocation, for the caller
 * to fill; NULL on allocation failure. */
struct pp_json *pp_json_alloc(enum pp_json_type t, size_t str_cap, size_t key_cap);

#endif
