/* A store backend's claims and queued writes on a thread of its own.
 *
 * SQLite runs its statements in the process that calls it. In `serve` that
 * was the loop's thread: a loop taking ECS runs at +0 ms spent about a
 * quarter of its CPU a run in SQLite (the claim that leases each run and
 * records its intent, the write of each answer), and no request moved
 * meanwhile (docs/performance.md, step 101). PostgreSQL's store sends the
 * same work to its server and goes on (store.h's claim_send and
 * update_send); this gives SQLite's store the same calls, with a thread in
 * the server's place. The loop's thread only copies each write into the
 * queue and reads the answers.
 *
 * The backend has one connection, and the thread and the caller take
 * turns on it: the thread runs only what the caller sent, and every other
 * call of the caller's waits first until nothing sent is left, and writes
 * what is queued (pp_store_worker_flush), so the two never use it at once
 * and the caller reads the store as it wrote it. A batch of writes commits as one transaction, as a
 * loop's turn did. Each side wakes the other with a condition variable;
 * the caller's loop learns of an answer from an eventfd it polls with its
 * sockets. A thread that cannot be started leaves the work to the caller,
 * done as it is sent. */
#include "store/worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* The first size of the queue of writes: the loop settles at 64. */
#define WORKER_QUEUE_FIRST 64

struct queued_write {
	char id[PP_ID_LEN];
	int64_t fence;
	struct pp_run_update u; /* its texts point into texts */
	char *texts;
	int rc;	   /* the outcome, once answered */
	char *msg; /* a failure's message (NULL: out of memory for it) */
};

enum claim_state { CLAIM_NONE, CLAIM_SENT, CLAIM_RUNNING, CLAIM_ANSWERED };

struct pp_store_worker {
	struct pp_store *s;
	const struct pp_store_worker_ops *ops;
	int claim_fd, writes_fd; /* eventfds: a claim answered, writes answered */
	pthread_mutex_t mu;
	pthread_cond_t wake;	 /* to the thread: something sent, or stop */
	pthread_cond_t answered; /* from whoever ran it: a claim or writes answered */
	pthread_t thread;
	/* Under mu. */
	bool started, inline_only, stop;
	enum claim_state claim;
	char *pool, *owner;
	int64_t lease_ms;
	int max;
	struct pp_run_rec *recs;
	int nrecs, claim_rc;
	struct pp_error claim_err;
	/* The writes in the order queued: [0, nread) answered and not yet
	 * reported, [nread, nread + nsent) sent (running while
	 * writes_running), the rest queued. nfailed: failures among the
	 * answered ones. */
	struct queued_write *q;
	int nqueued, cap, nread, nsent, nfailed;
	bool writes_running;
	/* The sent writes as whoever runs them copied them, outside mu: the
	 * caller may grow q meanwhile. */
	struct queued_write *batch;
	int batch_cap;
};

/* The worker whose work this thread is running: the backend's calls
 * that the work makes itself (a claim's reads through store/db.h) must not
 * wait for it to end. */
static _Thread_local const struct pp_store_worker *running_here;

static void signal_fd(int fd)
{
	uint64_t one = 1;
	while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void drain_fd(int fd)
{
	uint64_t count;
	while (read(fd, &count, sizeof(count)) < 0 && errno == EINTR)
		;
}

/* The failure of an answered write of the run among v[0..n), or NULL. */
static const struct queued_write *failed_before(const struct queued_write *v, int n, const char *id,
						int64_t fence)
{
	for (int i = 0; i < n; i++)
		if (v[i].rc && v[i].fence == fence && !strcmp(v[i].id, id))
			return &v[i];
	return NULL;
}

static void fail_as(struct queued_write *w, int rc, const char *msg)
{
	w->rc = rc;
	w->msg = msg ? strdup(msg) : NULL;
}

/* Runs the sent writes: called with mu held, returns with it held. They
 * are copied out first, each marked with the failure of an answered write
 * of its run, if any; then written in one batch, outside mu; then their
 * outcomes go back into q, where they now begin at nread (the caller may
 * have reported and dropped answered ones meanwhile). */
static void run_sent_writes(struct pp_store_worker *w)
{
	int n = w->nsent;
	if (n > w->batch_cap) {
		struct queued_write *b = realloc(w->batch, (size_t)n * sizeof(*b));
		if (!b) {
			for (int i = w->nread; i < w->nread + n; i++)
				fail_as(&w->q[i], PP_ENOMEM, "store: out of memory for a batch");
			w->nfailed += n;
			w->nread += n;
			w->nsent = 0;
			pthread_cond_broadcast(&w->answered);
			signal_fd(w->writes_fd);
			return;
		}
		w->batch = b;
		w->batch_cap = n;
	}
	memcpy(w->batch, w->q + w->nread, (size_t)n * sizeof(*w->batch));
	for (int i = 0; i < n; i++) {
		const struct queued_write *f =
			w->nfailed
				? failed_before(w->q, w->nread, w->batch[i].id, w->batch[i].fence)
				: NULL;
		if (f)
			fail_as(&w->batch[i], f->rc, f->msg);
	}
	w->writes_running = true;
	pthread_mutex_unlock(&w->mu);
	running_here = w;

	struct pp_error err = {0};
	int failed = 0;
	w->ops->batch_begin(w->s);
	for (int i = 0; i < n; i++) {
		struct queued_write *b = &w->batch[i];
		/* A write cannot stand without its run's earlier one. */
		const struct queued_write *f =
			failed && !b->rc ? failed_before(w->batch, i, b->id, b->fence) : NULL;
		if (f)
			fail_as(b, f->rc, f->msg);
		else if (!b->rc && (b->rc = w->ops->update(w->s, b->id, b->fence, &b->u, &err)))
			b->msg = strdup(err.msg);
		failed += b->rc != 0;
	}
	int lost = w->ops->batch_end(w->s, &err);
	for (int i = 0; lost && i < n; i++)
		if (!w->batch[i].rc)
			fail_as(&w->batch[i], lost, err.msg);
	running_here = NULL;

	pthread_mutex_lock(&w->mu);
	for (int i = 0; i < n; i++) {
		w->q[w->nread + i].rc = w->batch[i].rc;
		w->q[w->nread + i].msg = w->batch[i].msg;
		w->nfailed += w->batch[i].rc != 0;
	}
	w->nread += n;
	w->nsent = 0;
	w->writes_running = false;
	pthread_cond_broadcast(&w->answered);
	signal_fd(w->writes_fd);
}

/* Runs the sent claim, as run_sent_writes runs writes. */
static void run_sent_claim(struct pp_store_worker *w)
{
	w->claim = CLAIM_RUNNING;
	pthread_mutex_unlock(&w->mu);
	struct pp_error err = {0};
	struct pp_run_rec *recs = NULL;
	int n = 0;
	running_here = w;
	int rc = w->ops->claim(w->s, w->pool, w->owner, w->lease_ms, w->max, &recs, &n, &err);
	running_here = NULL;
	pthread_mutex_lock(&w->mu);
	w->recs = recs;
	w->nrecs = n;
	w->claim_rc = rc;
	w->claim_err = err;
	w->claim = CLAIM_ANSWERED;
	pthread_cond_broadcast(&w->answered);
	signal_fd(w->claim_fd);
}

static bool writes_waiting(const struct pp_store_worker *w)
{
	return w->nsent && !w->writes_running;
}

static void *worker_thread(void *arg)
{
	struct pp_store_worker *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->stop && w->claim != CLAIM_SENT && !writes_waiting(w))
			pthread_cond_wait(&w->wake, &w->mu);
		/* What was sent is run before the thread stops, as a server
		 * runs what reached it. */
		if (w->claim != CLAIM_SENT && !writes_waiting(w))
			break;
		/* The claim first: the loop's next submissions wait on it,
		 * where the writes' answers mostly gate nothing. */
		if (w->claim == CLAIM_SENT)
			run_sent_claim(w);
		else
			run_sent_writes(w);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Starts the thread the first time (with every signal blocked: they are
 * the loop's to take) and tells it there is work, or runs that work here
 * when the thread cannot start. Called with mu held. */
static void hand_over(struct pp_store_worker *w)
{
	if (!w->started && !w->inline_only) {
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		w->started = pthread_create(&w->thread, NULL, worker_thread, w) == 0;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (w->started) /* as `top -H` and perf show it */
			pthread_setname_np(w->thread, "pushpool-store");
		w->inline_only = !w->started;
	}
	if (w->started) {
		pthread_cond_signal(&w->wake);
		return;
	}
	if (w->claim == CLAIM_SENT)
		run_sent_claim(w);
	if (w->nsent)
		run_sent_writes(w);
}

struct pp_store_worker *
pp_store_worker_new(struct pp_store *s, const struct pp_store_worker_ops *ops, struct pp_error *err)
{
	struct pp_store_worker *w = calloc(1, sizeof(*w));
	if (!w) {
		pp_fail(err, PP_ENOMEM, "out of memory");
		return NULL;
	}
	w->s = s;
	w->ops = ops;
	w->claim_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->writes_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->claim_fd < 0 || w->writes_fd < 0) {
		pp_fail(err, PP_EIO, "store: eventfd: %s", strerror(errno));
		if (w->claim_fd >= 0)
			close(w->claim_fd);
		if (w->writes_fd >= 0)
			close(w->writes_fd);
		free(w);
		return NULL;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->wake, NULL);
	pthread_cond_init(&w->answered, NULL);
	return w;
}

static void wait_idle(struct pp_store_worker *w)
{
	while (w->claim == CLAIM_SENT || w->claim == CLAIM_RUNNING || w->nsent)
		pthread_cond_wait(&w->answered, &w->mu);
}

/* Idle, then the queued writes run here: nothing else is sent meanwhile,
 * so the thread stays out of the way. Called with mu held. */
static void write_queued_here(struct pp_store_worker *w)
{
	wait_idle(w);
	w->nsent = w->nqueued - w->nread;
	if (w->nsent)
		run_sent_writes(w);
}

void pp_store_worker_flush(struct pp_store_worker *w)
{
	if (!w || running_here == w)
		return;
	pthread_mutex_lock(&w->mu);
	write_queued_here(w);
	pthread_mutex_unlock(&w->mu);
}

int pp_store_worker_failed(struct pp_store_worker *w, const char *id, int64_t fence,
			   struct pp_error *err)
{
	if (!w)
		return 0;
	pthread_mutex_lock(&w->mu);
	const struct queued_write *f = w->nfailed ? failed_before(w->q, w->nread, id, fence) : NULL;
	int rc = f ? pp_fail(err, f->rc, "%s",
			     f->msg ? f->msg : "store: an earlier write of the run failed")
		   : 0;
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int pp_store_worker_claim_send(struct pp_store_worker *w, const char *pool, const char *owner,
			       int64_t lease_ms, int max, struct pp_error *err)
{
	if (max <= 0)
		return pp_fail(err, PP_EINVALID, "store: a claim of %d run(s)", max);
	char *pool_copy = pool ? strdup(pool) : NULL, *owner_copy = strdup(owner);
	if ((pool && !pool_copy) || !owner_copy) {
		free(pool_copy);
		free(owner_copy);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	pthread_mutex_lock(&w->mu);
	if (w->claim != CLAIM_NONE) {
		pthread_mutex_unlock(&w->mu);
		free(pool_copy);
		free(owner_copy);
		return pp_fail(err, PP_ECONFLICT, "store: a claim is unanswered");
	}
	w->pool = pool_copy;
	w->owner = owner_copy;
	w->lease_ms = lease_ms;
	w->max = max;
	w->claim = CLAIM_SENT;
	hand_over(w);
	pthread_mutex_unlock(&w->mu);
	return w->claim_fd;
}

int pp_store_worker_claim_take(struct pp_store_worker *w, bool wait, bool *done,
			       struct pp_run_rec **out, int *n, struct pp_error *err)
{
	*out = NULL;
	*n = 0;
	*done = true;
	pthread_mutex_lock(&w->mu);
	if (w->claim == CLAIM_NONE) {
		pthread_mutex_unlock(&w->mu);
		return pp_fail(err, PP_EINVALID, "store: no claim was sent");
	}
	while (wait && w->claim != CLAIM_ANSWERED)
		pthread_cond_wait(&w->answered, &w->mu);
	if (w->claim != CLAIM_ANSWERED) {
		pthread_mutex_unlock(&w->mu);
		*done = false;
		return 0;
	}
	drain_fd(w->claim_fd);
	int rc = w->claim_rc;
	if (rc && err)
		*err = w->claim_err;
	*out = w->recs;
	*n = w->nrecs;
	w->recs = NULL;
	w->nrecs = 0;
	free(w->pool);
	free(w->owner);
	w->pool = w->owner = NULL;
	w->claim = CLAIM_NONE;
	pthread_mutex_unlock(&w->mu);
	return rc;
}

/* The texts of u in one allocation, each NULL kept NULL. */
static bool copy_update(struct queued_write *q, const struct pp_run_update *u)
{
	const char *src[4] = {u->infra_id, u->idem_key, u->error, u->event};
	size_t len[4], total = 0;
	for (int i = 0; i < 4; i++)
		total += len[i] = src[i] ? strlen(src[i]) + 1 : 0;
	q->u = *u;
	q->texts = NULL;
	if (!total)
		return true;
	char *p = q->texts = malloc(total);
	if (!p)
		return false;
	const char **dst[4] = {&q->u.infra_id, &q->u.idem_key, &q->u.error, &q->u.event};
	for (int i = 0; i < 4; i++) {
		if (!src[i])
			continue;
		memcpy(p, src[i], len[i]);
		*dst[i] = p;
		p += len[i];
	}
	return true;
}

int pp_store_worker_update_queue(struct pp_store_worker *w, const char *id, int64_t fence,
				 const struct pp_run_update *u, struct pp_error *err)
{
	struct queued_write q = {.fence = fence};
	if (strlen(id) >= sizeof(q.id))
		return pp_fail(err, PP_EINVALID, "store: run id '%.64s' is too long", id);
	memcpy(q.id, id, strlen(id) + 1);
	if (!copy_update(&q, u))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	pthread_mutex_lock(&w->mu);
	const struct queued_write *f = w->nfailed ? failed_before(w->q, w->nread, id, fence) : NULL;
	int rc = f ? pp_fail(err, f->rc, "%s",
			     f->msg ? f->msg : "store: an earlier write of the run failed")
		   : 0;
	if (!rc && w->nqueued == w->cap) {
		int cap = w->cap ? w->cap * 2 : WORKER_QUEUE_FIRST;
		struct queued_write *grown = realloc(w->q, (size_t)cap * sizeof(*grown));
		if (grown) {
			w->q = grown;
			w->cap = cap;
		} else {
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
		}
	}
	if (!rc)
		w->q[w->nqueued++] = q;
	pthread_mutex_unlock(&w->mu);
	if (rc)
		free(q.texts);
	return rc;
}

/* Reports the first n writes (all answered) in order, then forgets them;
 * done() may queue more meanwhile, which stay. */
static void report(struct pp_store_worker *w, int n,
		   void (*done)(void *ud, int i, int rc, const struct pp_error *err), void *ud)
{
	for (int i = 0; i < n; i++) {
		/* Read afresh each time: done() may grow the array. */
		int rc = w->q[i].rc;
		char *msg = w->q[i].msg;
		struct pp_error err = {0};
		if (rc)
			pp_fail(&err, rc, "%s", msg ? msg : "store: update run failed");
		done(ud, i, rc, rc ? &err : NULL);
		free(msg);
		free(w->q[i].texts);
	}
	if (!n)
		return;
	pthread_mutex_lock(&w->mu);
	memmove(w->q, w->q + n, (size_t)(w->nqueued - n) * sizeof(*w->q));
	w->nqueued -= n;
	w->nread -= n;
	w->nfailed = 0;
	for (int i = 0; i < w->nread; i++)
		w->nfailed += w->q[i].rc != 0;
	pthread_mutex_unlock(&w->mu);
}

void pp_store_worker_update_settle(struct pp_store_worker *w,
				   void (*done)(void *ud, int i, int rc,
						const struct pp_error *err),
				   void *ud)
{
	pthread_mutex_lock(&w->mu);
	write_queued_here(w);
	drain_fd(w->writes_fd);
	int n = w->nread;
	pthread_mutex_unlock(&w->mu);
	report(w, n, done, ud);
}

int pp_store_worker_update_send(struct pp_store_worker *w)
{
	pthread_mutex_lock(&w->mu);
	int fd = -1;
	if (w->nsent || w->nread) {
		/* Nothing more goes while a send is unanswered: running, or
		 * answered and not yet reported. Its descriptor turns (or is)
		 * readable. */
		fd = w->writes_fd;
	} else if (w->nqueued > w->nread) {
		w->nsent = w->nqueued - w->nread;
		hand_over(w);
		fd = w->nsent ? w->writes_fd : -1; /* -1: answered here, at once */
	}
	pthread_mutex_unlock(&w->mu);
	return fd;
}

int pp_store_worker_update_collect(struct pp_store_worker *w,
				   void (*done)(void *ud, int i, int rc,
						const struct pp_error *err),
				   void *ud)
{
	pthread_mutex_lock(&w->mu);
	/* An answer after this signals again. */
	drain_fd(w->writes_fd);
	int n = w->nread;
	pthread_mutex_unlock(&w->mu);
	report(w, n, done, ud);
	return n;
}

void pp_store_worker_free(struct pp_store_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->mu);
	if (w->started)
		pthread_join(w->thread, NULL);
	for (int i = 0; i < w->nqueued; i++) {
		free(w->q[i].texts);
		free(w->q[i].msg);
	}
	free(w->q);
	free(w->batch);
	pp_run_recs_free(w->recs, w->nrecs);
	free(w->pool);
	free(w->owner);
	close(w->claim_fd);
	close(w->writes_fd);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->wake);
	pthread_cond_destroy(&w->answered);
	free(w);
}
