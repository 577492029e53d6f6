#include "mock/hold.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/err.h"

struct held {
	int64_t due_us;
	uint64_t seq; /* ties in arrival order */
	struct MHD_Connection *conn;
};

/* Connections resumed per lock taken: the lock is dropped around the
 * resumes, which wake the daemon's threads. */
#define HOLD_BATCH 64

struct pp_mock_hold {
	pp_mock_hold_resume_fn resume;
	void *ud;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	pthread_t thread;
	/* A binary min-heap by (due_us, seq). */
	struct held *heap;
	size_t n, cap;
	uint64_t next_seq;
	bool releasing;
};

static bool earlier(const struct held *a, const struct held *b)
{
	return a->due_us < b->due_us || (a->due_us == b->due_us && a->seq < b->seq);
}

static void sift_up(struct held *heap, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		struct held tmp;

		if (!earlier(&heap[i], &heap[parent]))
			break;
		tmp = heap[i];
		heap[i] = heap[parent];
		heap[parent] = tmp;
		i = parent;
	}
}

static struct held pop(struct pp_mock_hold *h)
{
	struct held top = h->heap[0];
	size_t i = 0;

	h->heap[0] = h->heap[--h->n];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		struct held tmp;

		if (l < h->n && earlier(&h->heap[l], &h->heap[m]))
			m = l;
		if (r < h->n && earlier(&h->heap[r], &h->heap[m]))
			m = r;
		if (m == i)
			break;
		tmp = h->heap[i];
		h->heap[i] = h->heap[m];
		h->heap[m] = tmp;
		i = m;
	}
	return top;
}

static void wait_until(struct pp_mock_hold *h, int64_t due_us)
{
	int64_t wait_us = due_us - pp_mono_us();
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += wait_us / 1000000;
	until.tv_nsec += (wait_us % 1000000) * 1000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&h->cond, &h->lock, &until);
}

static void *hold_main(void *arg)
{
	struct pp_mock_hold *h = arg;
	struct MHD_Connection *batch[HOLD_BATCH];

	pthread_mutex_lock(&h->lock);
	for (;;) {
		size_t k = 0;
		int64_t now;

		if (h->n == 0) {
			if (h->releasing)
				break;
			pthread_cond_wait(&h->cond, &h->lock);
			continue;
		}
		now = pp_mono_us();
		if (!h->releasing && h->heap[0].due_us > now) {
			wait_until(h, h->heap[0].due_us);
			continue;
		}
		while (k < HOLD_BATCH && h->n > 0 &&
		       (h->releasing || h->heap[0].due_us <= now + PP_MOCK_HOLD_SLACK_US))
			batch[k++] = pop(h).conn;
		pthread_mutex_unlock(&h->lock);
		h->resume(h->ud, batch, k);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

int pp_mock_hold_new(struct pp_mock_hold **out, pp_mock_hold_resume_fn resume, void *ud)
{
	struct pp_mock_hold *h = calloc(1, sizeof(*h));
	pthread_condattr_t attr;

	*out = NULL;
	if (!h)
		return PP_ENOMEM;
	h->resume = resume;
	h->ud = ud;
	pthread_mutex_init(&h->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&h->thread, NULL, hold_main, h)) {
		pthread_cond_destroy(&h->cond);
		pthread_mutex_destroy(&h->lock);
		free(h);
		return PP_EIO;
	}
	*out = h;
	return 0;
}

int pp_mock_hold_add(struct pp_mock_hold *h, struct MHD_Connection *conn, int64_t due_us)
{
	pthread_mutex_lock(&h->lock);
	if (h->releasing) {
		/* The daemon is stopping: the answer goes now. */
		pthread_mutex_unlock(&h->lock);
		h->resume(h->ud, &conn, 1);
		return 0;
	}
	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 256;
		struct held *heap = realloc(h->heap, cap * sizeof(*heap));

		if (!heap) {
			pthread_mutex_unlock(&h->lock);
			return PP_ENOMEM;
		}
		h->heap = heap;
		h->cap = cap;
	}
	h->heap[h->n] = (struct held){due_us, h->next_seq++, conn};
	sift_up(h->heap, h->n++);
	/* The thread sleeps until the earliest answer: only a new earliest
	 * one (a shorter latency than those held) moves its wake-up. With one
	 * latency for all, adds never wake it. */
	if (h->heap[0].conn == conn)
		pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

void pp_mock_hold_release_all(struct pp_mock_hold *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->releasing = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
}

void pp_mock_hold_free(struct pp_mock_hold *h)
{
	if (!h)
		return;
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h->heap);
	free(h);
}
