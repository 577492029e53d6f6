/* What pp_json_parse_keep must give, computed from the whole tree rather
 * than while parsing: j (duplicate members merged, as pp_json_parse gives
 * it) cut down to the paths keep names (relative to j, NULL-terminated).
 * In an object, a member a path names whole stays whole, one with paths
 * through it is cut down to them, and every other member goes; an array
 * has each element cut down to the same paths; anything else stays whole.
 * For the unit test and the fuzzer (tests/unit/lib/json.c,
 * tests/fuzz/fuzz_json.c). */
#ifndef PP_TESTS_JSON_KEEP_ORACLE_H
#define PP_TESTS_JSON_KEEP_ORACLE_H

#include <stdbool.h>
#include <string.h>

#include "lib/json.h"

static inline void json_keep_oracle(struct pp_json *j, const char *const *keep)
{
	if (j->type == PP_JSON_ARRAY)
		for (struct pp_json *e = j->child; e; e = e->next)
			json_keep_oracle(e, keep);
	if (j->type != PP_JSON_OBJECT)
		return;
	for (struct pp_json *m = j->child, *next; m; m = next) {
		next = m->next;
		size_t len = strlen(m->key);
		const char *sub[17];
		int nsub = 0;
		bool whole = false;
		for (const char *const *p = keep; *p && nsub < 16; p++) {
			if (strncmp(*p, m->key, len))
				continue;
			if ((*p)[len] == '\0')
				whole = true;
			else if ((*p)[len] == '.')
				sub[nsub++] = *p + len + 1;
		}
		sub[nsub] = NULL;
		if (whole)
			continue;
		if (!nsub)
			pp_json_free(pp_json_detach(m));
		else
			json_keep_oracle(m, sub);
	}
}

#endif
