/* Interned strings: a chained hash table of counted copies, grown by
 * doubling and freed whole when its last string is dropped (so a process
 * that dropped everything holds nothing). */
#include "lib/intern.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/strmap.h"

struct entry {
	struct entry *next;
	size_t refs;
	uint32_t hash;
	char s[];
};

#define MIN_BUCKETS 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry **buckets;
static size_t nbuckets, count;

/* Double the table (or make the first); on failure the old one is kept,
 * which only makes chains longer. */
static void grow(void)
{
	size_t n = nbuckets ? nbuckets * 2 : MIN_BUCKETS;
	struct entry **b = calloc(n, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < nbuckets; i++)
		while (buckets[i]) {
			struct entry *e = buckets[i];
			buckets[i] = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	free(buckets);
	buckets = b;
	nbuckets = n;
}

const char *pp_intern(const char *s)
{
	uint32_t h = pp_str_hash(s);
	const char *out = NULL;
	pthread_mutex_lock(&lock);
	if (count >= nbuckets)
		grow();
	if (!nbuckets)
		goto done;
	struct entry **slot = &buckets[h & (nbuckets - 1)];
	for (struct entry *e = *slot; e; e = e->next)
		if (e->hash == h && !strcmp(e->s, s)) {
			e->refs++;
			out = e->s;
			goto done;
		}
	size_t len = strlen(s);
	struct entry *e = malloc(offsetof(struct entry, s) + len + 1);
	if (!e)
		goto done;
	memcpy(e->s, s, len + 1);
	e->refs = 1;
	e->hash = h;
	e->next = *slot;
	*slot = e;
	count++;
	out = e->s;
done:
	pthread_mutex_unlock(&lock);
	return out;
}

static struct entry *entry_of(const char *s)
{
	return (struct entry *)(void *)(s - offsetof(struct entry, s));
}

const char *pp_intern_hold(const char *s)
{
	pthread_mutex_lock(&lock);
	entry_of(s)->refs++;
	pthread_mutex_unlock(&lock);
	return s;
}

void pp_intern_drop(const char *s)
{
	if (!s)
		return;
	struct entry *e = entry_of(s);
	pthread_mutex_lock(&lock);
	if (--e->refs == 0) {
		struct entry **p = &buckets[e->hash & (nbuckets - 1)];
		while (*p != e)
			p = &(*p)->next;
		*p = e->next;
		free(e);
		if (--count == 0) {
			free(buckets);
			buckets = NULL;
			nbuckets = 0;
		}
	}
	pthread_mutex_unlock(&lock);
}
