/* Open addressing with linear probing, kept at most half full: a probe
 * meets an empty slot within a few steps, and with no deletion there are
 * no tombstones to skip. */
#include "lib/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

#define MIN_SLOTS 64

uint32_t pp_str_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* The slot holding key, or the empty slot where it would go. */
static struct pp_strmap_slot *probe(struct pp_strmap_slot *slots, size_t cap, const char *key,
				    uint32_t h)
{
	for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
		struct pp_strmap_slot *s = &slots[i];
		if (!s->key || (s->hash == h && strcmp(s->key, key) == 0))
			return s;
	}
}

void *pp_strmap_get(const struct pp_strmap *m, const char *key)
{
	if (!m->cap)
		return NULL;
	return probe(m->slots, m->cap, key, pp_str_hash(key))->value;
}

static int grow(struct pp_strmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : MIN_SLOTS;
	struct pp_strmap_slot *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return PP_ENOMEM;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key)
			*probe(slots, cap, m->slots[i].key, m->slots[i].hash) = m->slots[i];
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

int pp_strmap_put(struct pp_strmap *m, const char *key, void *value)
{
	uint32_t h = pp_str_hash(key);
	if ((m->n + 1) * 2 > m->cap && grow(m))
		return PP_ENOMEM;
	struct pp_strmap_slot *s = probe(m->slots, m->cap, key, h);
	if (!s->key)
		m->n++;
	*s = (struct pp_strmap_slot){.key = key, .value = value, .hash = h};
	return 0;
}

void pp_strmap_clear(struct pp_strmap *m)
{
	free(m->slots);
	*m = (struct pp_strmap){0};
}
