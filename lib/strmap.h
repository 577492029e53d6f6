/* A map from C strings to pointers, for lookups among many entries where a
 * list or a JSON object costs time linear in what it holds (the mock's
 * counters, client tokens and spec shapes).
 *
 * Invariants:
 *  - keys are borrowed: each key stays valid and unchanged while it is in
 *    the map (usually the value owns it);
 *  - values are never NULL, so pp_strmap_get's NULL means "absent";
 *  - a zeroed map is an empty one, and so is a map after pp_strmap_clear.
 * Not thread-safe: callers lock. */
#ifndef PP_STRMAP_H
#define PP_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct pp_strmap_slot {
	const char *key; /* NULL: empty */
	void *value;
	uint32_t hash;
};

struct pp_strmap {
	struct pp_strmap_slot *slots;
	size_t cap; /* 0 or a power of two */
	size_t n;
};

/* FNV-1a of s: the hash the map and lib/intern use. */
uint32_t pp_str_hash(const char *s);

/* The value stored under key, or NULL. */
void *pp_strmap_get(const struct pp_strmap *m, const char *key);
/* Store value (not NULL) under key, replacing any value there: 0, or
 * PP_ENOMEM (the map is unchanged). */
int pp_strmap_put(struct pp_strmap *m, const char *key, void *value);
/* Forget every entry and free the table; keys and values are the caller's. */
void pp_strmap_clear(struct pp_strmap *m);

#endif
