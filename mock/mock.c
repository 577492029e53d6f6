/* Mock core: the libmicrohttpd daemon, routing by path prefix, bounded body
 * collection, fault injection, counters, the request log and /control. */
#include "mock/mock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/strmap.h"
#include "mock/hold.h"
#include "mock/spec.h"

/* Modules compiled into the mock; others add their line when they land. */
static const struct pp_mock_api *const mock_apis[] = {
	&pp_mock_api_google, &pp_mock_api_aws,	   &pp_mock_api_azure,
	&pp_mock_api_modal,  &pp_mock_api_prefect,
};
#define NAPIS (sizeof(mock_apis) / sizeof(mock_apis[0]))

#define LOG_RING	256
#define MAX_FAULT_CONFS 32
/* The daemon's threads: the two cores the bench and the tests share. */
#define MOCK_DAEMON_THREADS 2
/* Memory libmicrohttpd gives each connection for a request's line,
 * headers and read buffer (its default is 32 KiB); on_request copies each
 * body into a buffer of its own, so a body needs none of it. libmicrohttpd
 * zeroes the whole of it before each request on a kept-alive connection:
 * 3.5-3.9 % of the mock's CPU at 32 KiB (docs/performance.md, step 111). */
#define MOCK_CONNECTION_MEMORY ((size_t)16 << 10)
#define MAX_COUNTERS	       100000

struct fault_conf {
	char api[24]; /* "*" applies to every api without its own entry */
	double error_rate, throttle_rate, reset_after_action_rate, cut_body_rate;
	double malformed_json_rate;
	long retry_after, latency_ms, token_delay_ms;
	long start_failures; /* the next this many jobs the api starts fail to start */
};

struct counter {
	char *id; /* pp_mock_join_key(name, key): what counter_ids maps to index + 1 */
	char *name;
	char *key; /* NULL: plain number */
	unsigned long n;
	/* A keyed "requests" counter: when it was first and last counted,
	 * pp_mono_us (not the lifecycle clock, which a test may hold). The
	 * bench reads them as a window both of its sides are measured by;
	 * other counters keep no times. */
	bool timed;
	int64_t first_us, last_us;
};

struct log_entry {
	double clock;
	char method[8];
	char path[160];
	char api[24];
	char action[64];
	int status; /* 0: connection dropped */
};

struct module {
	const struct pp_mock_api *api;
	void *state;
	int port; /* own listener, 0 if none */
	bool started;
};

struct pp_mock {
	struct pp_mock_opts opts;
	struct MHD_Daemon *daemon;
	int port;
	char base_url[64];
	pthread_mutex_t state_lock; /* modules' resources */
	pthread_mutex_t core_lock;  /* counters, log, faults, PRNG */
	int64_t start_mono_ms;
	double start_wall;
	/* The lifecycle clock: monotonic time since start plus clock_offset,
	 * or clock_held_at while tests hold it (POST /control/clock). */
	pthread_mutex_t clock_lock;
	double clock_offset, clock_held_at;
	bool clock_held;
	uint64_t rng;
	struct module modules[NAPIS];
	struct fault_conf faults[MAX_FAULT_CONFS];
	size_t nfaults;
	struct counter *counters;
	size_t ncounters, counters_alloc;
	/* Keyed counters grow with every run (ecs.clientToken): found by hash,
	 * since the mock shares the bench's cores with the dispatcher. */
	struct pp_strmap counter_ids;
	struct log_entry log[LOG_RING];
	size_t log_next, log_total;
	struct pp_mock_specs *specs;	       /* spec validators and their switches */
	struct pp_mock_behaviours *behaviours; /* the clouds' realistic behaviours */
	struct pp_mock_hold *hold;	       /* answers waiting out their latency */
	/* Tests' barriers (struct pp_mock_barrier): how many are armed, each
	 * registered so that a stop releases it, and the requests made on
	 * threads of their own while one is armed. */
	int barriers_armed;
	struct pp_mock_barrier *barriers;
	pthread_mutex_t blocking_lock;
	pthread_cond_t blocking_done;
	int blocking_calls;
};

/* Per-connection request state, created by the URI log callback. */
struct conn_ctx {
	char *raw_uri;	/* as sent, query included */
	char *raw_path; /* raw_uri up to '?' */
	struct pp_buf body;
	bool headers_done;
	bool too_big;
	/* Once the request has acted: its answer, sent when its latency is
	 * over (NULL: the connection closes without one). */
	bool answered;
	struct MHD_Response *held;
	unsigned int held_status;
};

void pp_mock_opts_defaults(struct pp_mock_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->listen_host = "127.0.0.1";
	o->provision_seconds = 0.2;
	o->run_seconds = 0.5;
	o->seed = 1;
	o->token_lifetime_seconds = 3600;
}

struct pp_mock_specs *pp_mock_specs_of(struct pp_mock *m)
{
	return m->specs;
}

const struct pp_mock_opts *pp_mock_opts(const struct pp_mock *m)
{
	return &m->opts;
}

const char *pp_mock_base_url(const struct pp_mock *m)
{
	return m->base_url;
}

int pp_mock_port(const struct pp_mock *m)
{
	return m->port;
}

void pp_mock_lock(struct pp_mock *m)
{
	pthread_mutex_lock(&m->state_lock);
}

void pp_mock_unlock(struct pp_mock *m)
{
	pthread_mutex_unlock(&m->state_lock);
}

static double since_start(const struct pp_mock *m)
{
	return (double)(pp_mono_ms() - m->start_mono_ms) / 1000;
}

/* Reading the clock does not change the mock, but it takes the clock's
 * lock: hence the cast of a const mock's mutex. */
double pp_mock_clock(const struct pp_mock *m)
{
	pthread_mutex_t *lock = (pthread_mutex_t *)&m->clock_lock;
	double t;

	pthread_mutex_lock(lock);
	t = m->clock_held ? m->clock_held_at : since_start(m) + m->clock_offset;
	pthread_mutex_unlock(lock);
	return t;
}

void pp_mock_clock_hold(struct pp_mock *m, bool hold)
{
	pthread_mutex_lock(&m->clock_lock);
	if (hold && !m->clock_held)
		m->clock_held_at = since_start(m) + m->clock_offset;
	else if (!hold && m->clock_held)
		m->clock_offset = m->clock_held_at - since_start(m); /* go on from there */
	m->clock_held = hold;
	pthread_mutex_unlock(&m->clock_lock);
}

void pp_mock_clock_advance(struct pp_mock *m, double seconds)
{
	pthread_mutex_lock(&m->clock_lock);
	if (m->clock_held)
		m->clock_held_at += seconds;
	else
		m->clock_offset += seconds;
	pthread_mutex_unlock(&m->clock_lock);
}

bool pp_mock_clock_held(const struct pp_mock *m)
{
	pthread_mutex_t *lock = (pthread_mutex_t *)&m->clock_lock;
	bool held;

	pthread_mutex_lock(lock);
	held = m->clock_held;
	pthread_mutex_unlock(lock);
	return held;
}

double pp_mock_wall(const struct pp_mock *m, double clock)
{
	return m->start_wall + clock;
}

enum pp_mock_phase pp_mock_phase_at(const struct pp_mock *m, double created, double now)
{
	/* In whole milliseconds: with the clock held, a test that advances it
	 * by exactly the provisioning time must see the next phase, and
	 * 1.052 - 0.052 in doubles is just under 1. */
	long long age = llround((now - created) * 1000);
	long long provisioned = llround(m->opts.provision_seconds * 1000);

	if (age < provisioned)
		return PP_MOCK_PROVISIONING;
	if (age < provisioned + llround(m->opts.run_seconds * 1000))
		return PP_MOCK_RUNNING;
	return PP_MOCK_FINISHED;
}

enum pp_mock_phase pp_mock_job_phase(const struct pp_mock *m, enum pp_mock_outcome outcome,
				     double created, double now)
{
	enum pp_mock_phase ph = pp_mock_phase_at(m, created, now);

	return ph == PP_MOCK_FINISHED && outcome == PP_MOCK_HOLD ? PP_MOCK_RUNNING : ph;
}

/* splitmix64: small, seedable, good enough for fault dice. */
static uint64_t rng_next(struct pp_mock *m)
{
	uint64_t z = (m->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

double pp_mock_random(struct pp_mock *m)
{
	double r;

	pthread_mutex_lock(&m->core_lock);
	r = (double)(rng_next(m) >> 11) / 9007199254740992.0;
	pthread_mutex_unlock(&m->core_lock);
	return r;
}

void pp_mock_random_hex(struct pp_mock *m, char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t v = 0;

	pthread_mutex_lock(&m->core_lock);
	for (size_t i = 0; i < n; i++) {
		if (i % 16 == 0)
			v = rng_next(m);
		out[i] = hex[v & 15];
		v >>= 4;
	}
	pthread_mutex_unlock(&m->core_lock);
	out[n] = '\0';
}

/* ---- counters ---- */

char *pp_mock_join_key(const char *a, const char *b)
{
	return pp_mock_join_key_in(NULL, 0, a, b);
}

char *pp_mock_join_key_in(char *buf, size_t cap, const char *a, const char *b)
{
	size_t al = strlen(a), bl = b ? strlen(b) + 1 : 0;
	char *id = al + bl + 1 <= cap ? buf : malloc(al + bl + 1);

	if (!id)
		return NULL;
	memcpy(id, a, al);
	if (b) {
		id[al] = '\x1f';
		memcpy(id + al + 1, b, bl);
	}
	id[al + bl] = '\0';
	return id;
}

static struct counter *counter_find(struct pp_mock *m, const char *name, const char *key)
{
	char buf[PP_MOCK_KEY_INLINE];
	char *id = pp_mock_join_key_in(buf, sizeof(buf), name, key);
	uintptr_t at = id ? (uintptr_t)pp_strmap_get(&m->counter_ids, id) : 0;

	if (id != buf)
		free(id);
	return at ? &m->counters[at - 1] : NULL;
}

/* A new counter at zero, or NULL (out of memory, or MAX_COUNTERS). */
static struct counter *counter_add(struct pp_mock *m, const char *name, const char *key)
{
	struct counter *c;

	if (m->ncounters >= MAX_COUNTERS)
		return NULL;
	if (m->ncounters == m->counters_alloc) {
		size_t n = m->counters_alloc ? m->counters_alloc * 2 : 64;
		struct counter *nc = realloc(m->counters, n * sizeof(*nc));

		if (!nc)
			return NULL;
		m->counters = nc;
		m->counters_alloc = n;
	}
	c = &m->counters[m->ncounters];
	*c = (struct counter){.id = pp_mock_join_key(name, key),
			      .name = strdup(name),
			      .key = key ? strdup(key) : NULL,
			      .timed = key && !strcmp(name, "requests")};
	if (!c->id || !c->name || (key && !c->key) ||
	    pp_strmap_put(&m->counter_ids, c->id, (void *)(uintptr_t)(m->ncounters + 1))) {
		free(c->id);
		free(c->name);
		free(c->key);
		return NULL;
	}
	m->ncounters++;
	return c;
}

void pp_mock_count(struct pp_mock *m, const char *counter, const char *key)
{
	struct counter *c;

	pthread_mutex_lock(&m->core_lock);
	c = counter_find(m, counter, key);
	if (!c)
		c = counter_add(m, counter, key);
	if (c && c->timed) {
		c->last_us = pp_mono_us();
		if (!c->n)
			c->first_us = c->last_us;
	}
	if (c)
		c->n++;
	pthread_mutex_unlock(&m->core_lock);
}

unsigned long pp_mock_count_get(struct pp_mock *m, const char *counter, const char *key)
{
	struct counter *c;
	unsigned long n;

	pthread_mutex_lock(&m->core_lock);
	c = counter_find(m, counter, key);
	n = c ? c->n : 0;
	pthread_mutex_unlock(&m->core_lock);
	return n;
}

static void counters_clear(struct pp_mock *m)
{
	for (size_t i = 0; i < m->ncounters; i++) {
		free(m->counters[i].id);
		free(m->counters[i].name);
		free(m->counters[i].key);
	}
	m->ncounters = 0;
	pp_strmap_clear(&m->counter_ids);
}

/* ---- faults ---- */

static struct fault_conf *fault_conf_for(struct pp_mock *m, const char *api, bool create)
{
	struct fault_conf *any = NULL;

	for (size_t i = 0; i < m->nfaults; i++) {
		if (strcmp(m->faults[i].api, api) == 0)
			return &m->faults[i];
		if (strcmp(m->faults[i].api, "*") == 0)
			any = &m->faults[i];
	}
	if (!create)
		return any;
	if (m->nfaults == MAX_FAULT_CONFS || strlen(api) >= sizeof(any->api))
		return NULL;
	struct fault_conf *f = &m->faults[m->nfaults++];

	if (any)
		*f = *any;
	else
		memset(f, 0, sizeof(*f));
	snprintf(f->api, sizeof(f->api), "%s", api);
	return f;
}

static bool roll(struct pp_mock *m, double rate)
{
	return rate > 0 && (double)(rng_next(m) >> 11) / 9007199254740992.0 < rate;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

enum pp_mock_fault pp_mock_fault_check(struct pp_mock *m, const char *api, bool token_endpoint,
				       struct pp_mock_resp *resp, int *retry_after_s)
{
	long delay = 0;
	enum pp_mock_fault kind =
		pp_mock_fault_roll(m, api, token_endpoint, resp, retry_after_s, &delay);

	resp->latency_ms += delay;
	return kind;
}

enum pp_mock_fault pp_mock_fault_roll(struct pp_mock *m, const char *api, bool token_endpoint,
				      struct pp_mock_resp *resp, int *retry_after_s,
				      long *latency_ms)
{
	enum pp_mock_fault kind = PP_MOCK_FAULT_NONE;
	struct fault_conf *f;
	long delay = 0;

	pthread_mutex_lock(&m->core_lock);
	f = fault_conf_for(m, api, false);
	if (f) {
		delay = f->latency_ms + (token_endpoint ? f->token_delay_ms : 0);
		if (roll(m, f->throttle_rate))
			kind = PP_MOCK_FAULT_THROTTLE;
		else if (roll(m, f->error_rate))
			kind = PP_MOCK_FAULT_ERROR;
		if (retry_after_s)
			*retry_after_s = (int)f->retry_after;
		/* Post-action faults only make sense when the action happens. */
		if (kind == PP_MOCK_FAULT_NONE) {
			resp->drop = roll(m, f->reset_after_action_rate);
			resp->cut_body = !resp->drop && roll(m, f->cut_body_rate);
			resp->malformed =
				!resp->drop && !resp->cut_body && roll(m, f->malformed_json_rate);
		}
	}
	pthread_mutex_unlock(&m->core_lock);
	if (kind != PP_MOCK_FAULT_NONE) {
		char name[96];

		snprintf(name, sizeof(name), "%s.%s", api,
			 kind == PP_MOCK_FAULT_THROTTLE ? "throttled" : "error");
		pp_mock_count(m, "injected", name);
	}
	/* Counted where a latency is handed out: the caller holds its answer
	 * back by it (keyed.delayed). */
	if (latency_ms && delay > 0)
		pp_mock_count(m, "delayed", api);
	if (latency_ms)
		*latency_ms = delay;
	return kind;
}

void pp_mock_barrier_init(struct pp_mock *m, struct pp_mock_barrier *b)
{
	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	pthread_mutex_lock(&m->blocking_lock);
	b->next = m->barriers;
	m->barriers = b;
	pthread_mutex_unlock(&m->blocking_lock);
}

/* b->lock held: the barrier lets every call waiting on it go. */
static void barrier_open(struct pp_mock *m, struct pp_mock_barrier *b)
{
	if (b->need)
		__atomic_sub_fetch(&m->barriers_armed, 1, __ATOMIC_RELEASE);
	b->need = b->waiting = 0;
	b->gen++;
	pthread_cond_broadcast(&b->cond);
}

void pp_mock_barrier_destroy(struct pp_mock_barrier *b)
{
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->cond);
}

void pp_mock_barrier_pass(struct pp_mock *m, struct pp_mock_barrier *b, const char *api,
			  const char *action)
{
	pthread_mutex_lock(&b->lock);
	if (!b->need || strcmp(b->action, action)) {
		pthread_mutex_unlock(&b->lock);
		return;
	}
	unsigned gen = b->gen;
	bool timed_out = false;

	char name[96];
	if (++b->waiting >= b->need) {
		barrier_open(m, b);
	} else {
		/* Counted before it waits, outside the barrier's lock (the
		 * counters take the mock's): a test knows a call is held. */
		pthread_mutex_unlock(&b->lock);
		snprintf(name, sizeof(name), "%s.barrier_held", api);
		pp_mock_count(m, name, action);
		pthread_mutex_lock(&b->lock);
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += b->timeout_ms / 1000;
		until.tv_nsec += (b->timeout_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (b->gen == gen && !timed_out)
			timed_out = pthread_cond_timedwait(&b->cond, &b->lock, &until) == ETIMEDOUT;
		if (timed_out && b->gen == gen) {
			barrier_open(m, b);
		} else {
			timed_out = false;
		}
	}
	pthread_mutex_unlock(&b->lock);
	snprintf(name, sizeof(name), "%s.%s", api,
		 timed_out ? "barrier_timeouts" : "barrier_passed");
	pp_mock_count(m, name, action);
}

void pp_mock_barrier_set(struct pp_mock_call *c, struct pp_mock_barrier *b, const char *what)
{
	const char *action = pp_json_get_string(c->body, "action");
	long long count = pp_json_get_int(c->body, "count", 0);
	long long timeout = pp_json_get_int(c->body, "timeout_ms", 30000);

	snprintf(c->resp->action, sizeof(c->resp->action), "control/barrier");
	if (!action || strlen(action) >= sizeof(b->action) || count < 2 || count > 64 ||
	    timeout < 1 || timeout > 600000) {
		pp_mock_resp_printf(c->resp, 400, "text/plain",
				    "barrier: want {\"action\": %s, \"count\": 2..64, "
				    "\"timeout_ms\": 1..600000}\n",
				    what);
		return;
	}
	pthread_mutex_lock(&b->lock);
	if (!b->need)
		__atomic_add_fetch(&c->m->barriers_armed, 1, __ATOMIC_RELEASE);
	snprintf(b->action, sizeof(b->action), "%s", action);
	b->need = (int)count;
	b->waiting = 0;
	b->timeout_ms = (long)timeout;
	pthread_mutex_unlock(&b->lock);
	pp_mock_resp_printf(c->resp, 200, "text/plain", "barrier on %s for %lld calls\n", action,
			    count);
}

bool pp_mock_step_fault(struct pp_mock *m, const char *api)
{
	bool hit = false;

	pthread_mutex_lock(&m->core_lock);
	for (size_t i = 0; i < m->nfaults; i++)
		if (strcmp(m->faults[i].api, api) == 0)
			hit = roll(m, m->faults[i].error_rate);
	pthread_mutex_unlock(&m->core_lock);
	if (hit) {
		char name[96];

		snprintf(name, sizeof(name), "%s.error", api);
		pp_mock_count(m, "injected", name);
	}
	return hit;
}

bool pp_mock_start_failure(struct pp_mock *m, const char *api)
{
	bool hit = false;

	pthread_mutex_lock(&m->core_lock);
	for (size_t i = 0; i < m->nfaults && !hit; i++)
		if (strcmp(m->faults[i].api, api) == 0 && m->faults[i].start_failures > 0) {
			m->faults[i].start_failures--;
			hit = true;
		}
	pthread_mutex_unlock(&m->core_lock);
	if (hit) {
		char name[96];

		snprintf(name, sizeof(name), "%s.start_failure", api);
		pp_mock_count(m, "injected", name);
	}
	return hit;
}

/* Apply one JSON fault object onto its api's settings (absent fields keep
 * their value). */
static int faults_apply(struct pp_mock *m, const struct pp_json *o, struct pp_error *err)
{
	static const struct {
		const char *name;
		size_t off;
	} rates[] = {
		{"error_rate", offsetof(struct fault_conf, error_rate)},
		{"throttle_rate", offsetof(struct fault_conf, throttle_rate)},
		{"reset_after_action_rate", offsetof(struct fault_conf, reset_after_action_rate)},
		{"cut_body_rate", offsetof(struct fault_conf, cut_body_rate)},
		{"malformed_json_rate", offsetof(struct fault_conf, malformed_json_rate)},
	};
	static const struct {
		const char *name;
		size_t off;
	} ints[] = {
		{"retry_after", offsetof(struct fault_conf, retry_after)},
		{"latency_ms", offsetof(struct fault_conf, latency_ms)},
		{"token_delay_ms", offsetof(struct fault_conf, token_delay_ms)},
		{"start_failures", offsetof(struct fault_conf, start_failures)},
	};
	const char *api;
	struct fault_conf *f;
	double v;

	if (!pp_json_is(o, PP_JSON_OBJECT))
		return pp_fail(err, PP_EINVALID, "fault settings must be a JSON object");
	api = pp_json_get_string(o, "api");
	if (!api || !*api)
		api = "*";
	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		struct pp_json *j = pp_json_get(o, rates[i].name);

		if (j && (!pp_json_get_number(o, rates[i].name, &v) || v < 0 || v > 1))
			return pp_fail(err, PP_EINVALID, "%s: must be a number in [0, 1]",
				       rates[i].name);
	}
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		struct pp_json *j = pp_json_get(o, ints[i].name);

		if (j && (!pp_json_get_number(o, ints[i].name, &v) || v < 0 || v > 600000))
			return pp_fail(err, PP_EINVALID, "%s: must be a number in [0, 600000]",
				       ints[i].name);
	}
	pthread_mutex_lock(&m->core_lock);
	f = fault_conf_for(m, api, true);
	if (f && strcmp(f->api, api) != 0)
		f = NULL;
	if (f) {
		for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
			if (pp_json_get_number(o, rates[i].name, &v))
				*(double *)(void *)((char *)f + rates[i].off) = v;
		for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
			if (pp_json_get_number(o, ints[i].name, &v))
				*(long *)(void *)((char *)f + ints[i].off) = (long)v;
	}
	pthread_mutex_unlock(&m->core_lock);
	if (!f)
		return pp_fail(err, PP_ENOMEM, "too many fault settings (api \"%s\")", api);
	return 0;
}

int pp_mock_set_faults(struct pp_mock *m, const char *json, struct pp_error *err)
{
	struct pp_json *j;
	int rc;

	rc = pp_json_parse(json, strlen(json), NULL, &j, err);
	if (rc)
		return rc;
	if (pp_json_is(j, PP_JSON_ARRAY)) {
		pp_json_foreach (it, j) {
			rc = faults_apply(m, it, err);
			if (rc)
				break;
		}
	} else {
		rc = faults_apply(m, j, err);
	}
	pp_json_free(j);
	return rc;
}

/* ---- outcome markers ---- */

static enum pp_mock_outcome marker_in(const char *s)
{
	if (strstr(s, "PUSHPOOL_MOCK_CRASH=1"))
		return PP_MOCK_CRASH;
	if (strstr(s, "PUSHPOOL_MOCK_FAIL=1"))
		return PP_MOCK_FAIL;
	if (strstr(s, "PUSHPOOL_MOCK_HOLD=1"))
		return PP_MOCK_HOLD;
	return PP_MOCK_SUCCEED;
}

static enum pp_mock_outcome marker_var(const char *name, const char *value)
{
	if (!name || !value || strcmp(value, "1") != 0)
		return PP_MOCK_SUCCEED;
	if (strcmp(name, "PUSHPOOL_MOCK_CRASH") == 0)
		return PP_MOCK_CRASH;
	if (strcmp(name, "PUSHPOOL_MOCK_FAIL") == 0)
		return PP_MOCK_FAIL;
	if (strcmp(name, "PUSHPOOL_MOCK_HOLD") == 0)
		return PP_MOCK_HOLD;
	return PP_MOCK_SUCCEED;
}

enum pp_mock_outcome pp_mock_outcome_of(const struct pp_json *j)
{
	enum pp_mock_outcome worst = PP_MOCK_SUCCEED, o;

	if (!j)
		return worst;
	switch (j->type) {
	case PP_JSON_STRING:
		worst = marker_in(j->str);
		if (j->key && worst == PP_MOCK_SUCCEED)
			worst = marker_var(j->key, j->str);
		break;
	case PP_JSON_OBJECT:
		worst = marker_var(pp_json_get_string(j, "name"), pp_json_get_string(j, "value"));
		/* fallthrough */
	case PP_JSON_ARRAY:
		pp_json_foreach (it, j) {
			o = pp_mock_outcome_of(it);
			if (o > worst)
				worst = o;
		}
		break;
	default: break;
	}
	return worst;
}

/* ---- request and response helpers ---- */

const char *pp_mock_header(const struct pp_mock_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *pp_mock_arg(const struct pp_mock_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct header_walk {
	const char **names, **values;
	size_t n, max;
};

static enum MHD_Result header_iter(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct header_walk *w = cls;

	if (w->n == w->max)
		return MHD_NO;
	w->names[w->n] = key;
	w->values[w->n] = value ? value : "";
	w->n++;
	return MHD_YES;
}

size_t pp_mock_headers(const struct pp_mock_req *r, const char **names, const char **values,
		       size_t max)
{
	struct header_walk w = {names, values, 0, max};

	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, header_iter, &w);
	return w.n;
}

int pp_mock_resp_header(struct pp_mock_resp *r, const char *name, const char *value)
{
	char *v;

	if (r->nhdr == PP_MOCK_RESP_HEADERS)
		return PP_ENOMEM;
	v = strdup(value);
	if (!v)
		return PP_ENOMEM;
	r->hdr_names[r->nhdr] = name;
	r->hdr_values[r->nhdr++] = v;
	return 0;
}

int pp_mock_resp_printf(struct pp_mock_resp *r, int status, const char *content_type,
			const char *fmt, ...)
{
	va_list ap;
	int rc;

	r->status = status;
	snprintf(r->content_type, sizeof(r->content_type), "%s", content_type);
	pp_buf_reset(&r->body);
	va_start(ap, fmt);
	rc = pp_buf_vprintf(&r->body, fmt, ap);
	va_end(ap);
	return rc;
}

int pp_mock_resp_json(struct pp_mock_resp *r, int status, const char *content_type,
		      const struct pp_json *j)
{
	r->status = status;
	snprintf(r->content_type, sizeof(r->content_type), "%s",
		 content_type ? content_type : "application/json");
	pp_buf_reset(&r->body);
	return pp_json_write(j, &r->body, PP_JSON_COMPACT);
}

static void resp_free(struct pp_mock_resp *r)
{
	pp_buf_free(&r->body);
	for (size_t i = 0; i < r->nhdr; i++)
		free(r->hdr_values[i]);
}

/* ---- request log ---- */

static void log_request(struct pp_mock *m, const struct pp_mock_req *req,
			const struct pp_mock_resp *resp)
{
	struct log_entry *e;
	char key[96];

	pthread_mutex_lock(&m->core_lock);
	e = &m->log[m->log_next];
	m->log_next = (m->log_next + 1) % LOG_RING;
	m->log_total++;
	e->clock = pp_mock_clock(m);
	snprintf(e->method, sizeof(e->method), "%s", req->method);
	snprintf(e->path, sizeof(e->path), "%s", req->path);
	snprintf(e->api, sizeof(e->api), "%s", resp->api);
	snprintf(e->action, sizeof(e->action), "%s", resp->action);
	e->status = resp->drop ? 0 : resp->status;
	pthread_mutex_unlock(&m->core_lock);
	snprintf(key, sizeof(key), "%s:%s", resp->api[0] ? resp->api : "-",
		 resp->action[0] ? resp->action : req->method);
	pp_mock_count(m, "requests", key);
	if (resp->reject_reason)
		pp_mock_count(m, "rejects", resp->reject_reason);
	if (resp->drop)
		pp_mock_count(m, "dropped", key);
	if (resp->cut_body && resp->body.len > 1)
		pp_mock_count(m, "cut", key);
}

/* ---- /control ---- */

static struct pp_json *counters_json(struct pp_mock *m, bool maps)
{
	struct pp_json *o = pp_json_new(PP_JSON_OBJECT);

	for (size_t i = 0; o && i < m->ncounters; i++) {
		struct counter *c = &m->counters[i];
		struct pp_json *sub;

		if (!c->key) {
			if (!maps)
				pp_json_set_int(o, c->name, (long long)c->n);
			continue;
		}
		if (!maps)
			continue;
		sub = pp_json_get(o, c->name);
		if (!sub) {
			sub = pp_json_new(PP_JSON_OBJECT);
			if (pp_json_set(o, c->name, sub))
				continue;
		}
		/* Keys are unique within a name (counter_ids), so a member is
		 * linked without pp_json_set's search: 100,000 tokens. */
		struct pp_json *v = pp_json_new_int((long long)c->n);
		if (v && (v->key = strdup(c->key)))
			pp_json_link(sub, v);
		else
			pp_json_free(v);
	}
	return o;
}

/* {"api:action": [first, last], ...}: when each kind of request was first
 * and last answered (struct counter's times). Under core_lock. */
static struct pp_json *request_times_json(struct pp_mock *m)
{
	struct pp_json *o = pp_json_new(PP_JSON_OBJECT);

	for (size_t i = 0; o && i < m->ncounters; i++) {
		struct counter *c = &m->counters[i];
		struct pp_json *pair;

		if (!c->timed)
			continue;
		pair = pp_json_new(PP_JSON_ARRAY);
		if (!pair)
			continue;
		if (pp_json_append(pair, pp_json_new_number((double)c->first_us / 1e6)) ||
		    pp_json_append(pair, pp_json_new_number((double)c->last_us / 1e6))) {
			pp_json_free(pair);
			continue;
		}
		pp_json_set(o, c->key, pair); /* takes pair, also when it fails */
	}
	return o;
}

static void control_stats(struct pp_mock *m, struct pp_mock_resp *resp)
{
	struct pp_json *root = pp_json_new(PP_JSON_OBJECT), *live = pp_json_new(PP_JSON_OBJECT);

	pp_mock_lock(m);
	for (size_t i = 0; i < NAPIS; i++)
		if (m->modules[i].api->stats)
			m->modules[i].api->stats(m, m->modules[i].state, live);
	pp_mock_unlock(m);
	pthread_mutex_lock(&m->core_lock);
	/* Plain counters first: scripts grep the first "NAME":N. */
	if (root) {
		pp_json_set(root, "counters", counters_json(m, false));
		pp_json_set(root, "live", live);
		live = NULL;
		pp_json_set(root, "keyed", counters_json(m, true));
		pp_json_set(root, "request_times", request_times_json(m));
		pp_json_set_int(root, "log_total", (long long)m->log_total);
	}
	pthread_mutex_unlock(&m->core_lock);
	pp_json_free(live);
	if (root)
		pp_mock_resp_json(resp, 200, NULL, root);
	else
		pp_mock_resp_printf(resp, 500, "text/plain", "out of memory\n");
	pp_json_free(root);
}

static void control_log(struct pp_mock *m, struct pp_mock_resp *resp)
{
	size_t n, start;

	pthread_mutex_lock(&m->core_lock);
	n = m->log_total < LOG_RING ? m->log_total : LOG_RING;
	start = (m->log_next + LOG_RING - n) % LOG_RING;
	pp_mock_resp_printf(resp, 200, "application/json", "[");
	for (size_t i = 0; i < n; i++) {
		const struct log_entry *e = &m->log[(start + i) % LOG_RING];

		pp_buf_printf(&resp->body, "%s{\"t\":%.3f,\"method\":", i ? "," : "", e->clock);
		pp_json_write_string(&resp->body, e->method, strlen(e->method));
		pp_buf_puts(&resp->body, ",\"path\":");
		pp_json_write_string(&resp->body, e->path, strlen(e->path));
		pp_buf_puts(&resp->body, ",\"api\":");
		pp_json_write_string(&resp->body, e->api, strlen(e->api));
		pp_buf_puts(&resp->body, ",\"action\":");
		pp_json_write_string(&resp->body, e->action, strlen(e->action));
		pp_buf_printf(&resp->body, ",\"status\":%d}", e->status);
	}
	pp_buf_puts(&resp->body, "]\n");
	pthread_mutex_unlock(&m->core_lock);
}

static void control_faults_json(struct pp_mock *m, struct pp_mock_resp *resp)
{
	pthread_mutex_lock(&m->core_lock);
	pp_mock_resp_printf(resp, 200, "application/json", "[");
	for (size_t i = 0; i < m->nfaults; i++) {
		const struct fault_conf *f = &m->faults[i];

		pp_buf_printf(&resp->body,
			      "%s{\"api\":\"%s\",\"error_rate\":%g,\"throttle_rate\":%g,"
			      "\"retry_after\":%ld,\"latency_ms\":%ld,"
			      "\"reset_after_action_rate\":%g,\"cut_body_rate\":%g,"
			      "\"malformed_json_rate\":%g,\"token_delay_ms\":%ld,"
			      "\"start_failures\":%ld}",
			      i ? "," : "", f->api, f->error_rate, f->throttle_rate, f->retry_after,
			      f->latency_ms, f->reset_after_action_rate, f->cut_body_rate,
			      f->malformed_json_rate, f->token_delay_ms, f->start_failures);
	}
	pp_buf_puts(&resp->body, "]\n");
	pthread_mutex_unlock(&m->core_lock);
}

static void control_stats_route(struct pp_mock_call *c)
{
	control_stats(c->m, c->resp);
}

static void control_log_route(struct pp_mock_call *c)
{
	control_log(c->m, c->resp);
}

static void control_faults_get(struct pp_mock_call *c)
{
	control_faults_json(c->m, c->resp);
}

static void control_faults_post(struct pp_mock_call *c)
{
	struct pp_error err = {0};

	if (pp_mock_set_faults(c->m, c->req->body, &err))
		pp_mock_resp_printf(c->resp, 400, "text/plain", "faults: %s\n", err.msg);
	else
		control_faults_json(c->m, c->resp);
}

static void control_reset(struct pp_mock_call *c)
{
	struct pp_mock *m = c->m;

	pp_mock_lock(m);
	for (size_t i = 0; i < NAPIS; i++)
		if (m->modules[i].api->reset)
			m->modules[i].api->reset(m, m->modules[i].state);
	pp_mock_unlock(m);
	pthread_mutex_lock(&m->core_lock);
	counters_clear(m);
	m->log_next = m->log_total = 0;
	m->nfaults = 0;
	pthread_mutex_unlock(&m->core_lock);
	pp_mock_resp_printf(c->resp, 200, "application/json", "{}\n");
}

static void clock_answer(struct pp_mock_call *c)
{
	pp_mock_resp_printf(c->resp, 200, "application/json", "{\"clock\":%.3f,\"held\":%s}\n",
			    pp_mock_clock(c->m), pp_mock_clock_held(c->m) ? "true" : "false");
}

/* Ten days: far beyond any timeline, short of overflowing timestamps. */
#define ADVANCE_MAX_MS 864000000.0

/* {"clock":"hold"|"run", "advance_ms":N}, either or both: hold first, then
 * advance, so {"clock":"hold","advance_ms":400} lands exactly 0.4 s on. */
static void control_clock_post(struct pp_mock_call *c)
{
	const struct pp_json *b = c->body;
	const struct pp_json *adv = pp_json_get(b, "advance_ms");
	const char *mode = pp_json_get_string(b, "clock");
	double ms = 0;
	size_t known = (mode != NULL) + (adv != NULL);

	if (adv && !pp_json_get_number(b, "advance_ms", &ms))
		ms = -1;
	/* Unknown members are refused: a typo must not pass for a no-op. */
	if (!pp_json_is(b, PP_JSON_OBJECT) || known == 0 || b->count != known ||
	    (mode && strcmp(mode, "hold") != 0 && strcmp(mode, "run") != 0) ||
	    !(ms >= 0 && ms <= ADVANCE_MAX_MS)) {
		pp_mock_resp_printf(c->resp, 400, "text/plain",
				    "clock: want {\"clock\":\"hold\"|\"run\"} and/or "
				    "{\"advance_ms\":N} with 0 <= N <= %.0f\n",
				    ADVANCE_MAX_MS);
		return;
	}
	if (mode)
		pp_mock_clock_hold(c->m, strcmp(mode, "hold") == 0);
	if (ms > 0)
		pp_mock_clock_advance(c->m, ms / 1000);
	clock_answer(c);
}

bool pp_mock_behaviour(struct pp_mock *m, const char *name, double *seconds)
{
	return pp_mock_behaviours_get(m->behaviours, name, seconds);
}

/* The realistic behaviours' switches (mock/behave.c). */
static void control_behaviours(struct pp_mock_call *c)
{
	pp_mock_behaviours_control(c->m->behaviours, c->body, strcmp(c->req->method, "POST") == 0,
				   c->resp);
}

/* The spec validators' per-API switches (mock/spec_gate.c). */
static void control_validate(struct pp_mock_call *c)
{
	pp_mock_specs_control(c->m->specs, c->req, c->resp);
}

static bool control_admit(struct pp_mock_call *c)
{
	const char *what = c->req->path + strlen("/control");

	snprintf(c->resp->action, sizeof(c->resp->action), "%s", *what ? what + 1 : "");
	return true;
}

static void control_unmatched(struct pp_mock_call *c, bool other_method)
{
	pp_mock_resp_printf(c->resp, 404, "text/plain",
			    "no control endpoint %s %s (GET stats, log, faults, clock, validate, "
			    "behaviours; POST faults, reset, clock, validate, behaviours)\n",
			    c->req->method, c->req->path);
}

static const struct pp_mock_route control_routes[] = {
	{"GET", "/control/stats", control_stats_route, .changes = false},
	{"GET", "/control/log", control_log_route, .changes = false},
	{"GET", "/control/faults", control_faults_get, .changes = false},
	{"POST", "/control/faults", control_faults_post, .changes = true},
	{"POST", "/control/reset", control_reset, .changes = true},
	{"GET", "/control/clock", clock_answer, .changes = false},
	{"POST", "/control/clock", control_clock_post, .changes = true},
	{"GET", "/control/validate", control_validate, .changes = false},
	{"POST", "/control/validate", control_validate, .changes = true},
	{"GET", "/control/behaviours", control_behaviours, .changes = false},
	{"POST", "/control/behaviours", control_behaviours, .changes = true},
	{NULL},
};

static const struct pp_mock_router control_router = {
	.api = "control",
	.scope = "/control",
	.json_body = true,
	.routes = control_routes,
	.admit = control_admit,
	.unmatched = control_unmatched,
};

static const struct pp_mock_router *const control_routers[] = {&control_router, NULL};

/* ---- MHD glue ---- */

static bool prefix_matches(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static void dispatch(struct pp_mock *m, const struct pp_mock_req *req0, struct pp_mock_resp *resp)
{
	struct pp_mock_req req = *req0;

	if (pp_mock_route_request(m, NULL, control_routers, &req, resp))
		return;
	for (size_t i = 0; i < NAPIS; i++) {
		const struct pp_mock_api *api = m->modules[i].api;

		for (size_t p = 0; p < 4 && api->prefixes[p]; p++) {
			if (!prefix_matches(req.path, api->prefixes[p]))
				continue;
			req.subpath = req.path + strlen(api->prefixes[p]);
			snprintf(resp->api, sizeof(resp->api), "%s", api->name);
			pp_mock_route_request(m, m->modules[i].state, api->routers, &req, resp);
			return;
		}
	}
}

struct cut_body {
	char *data;
	size_t len; /* bytes actually sent before the connection dies */
};

static ssize_t cut_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct cut_body *c = cls;
	size_t n;

	if (pos >= c->len)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	n = c->len - (size_t)pos;
	if (n > max)
		n = max;
	memcpy(buf, c->data + pos, n);
	return (ssize_t)n;
}

static void cut_free(void *cls)
{
	struct cut_body *c = cls;

	free(c->data);
	free(c);
}

static struct MHD_Response *make_response(struct pp_mock_resp *resp)
{
	struct MHD_Response *r;

	if (resp->malformed)
		pp_mock_resp_printf(resp, resp->status, resp->content_type, "{\"broken\": [1, ");
	if (resp->cut_body && resp->body.len > 1) {
		struct cut_body *c = malloc(sizeof(*c));

		if (!c)
			return NULL;
		c->len = resp->body.len / 2;
		r = MHD_create_response_from_callback(resp->body.len, 4096, cut_reader, c,
						      cut_free);
		if (!r) {
			free(c);
			return NULL;
		}
		c->data = pp_buf_steal(&resp->body);
	} else {
		r = MHD_create_response_from_buffer(resp->body.len, resp->body.data,
						    MHD_RESPMEM_MUST_COPY);
	}
	if (!r)
		return NULL;
	if (resp->content_type[0])
		MHD_add_response_header(r, "Content-Type", resp->content_type);
	for (size_t i = 0; i < resp->nhdr; i++)
		MHD_add_response_header(r, resp->hdr_names[i], resp->hdr_values[i]);
	return r;
}

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct conn_ctx *ctx = calloc(1, sizeof(*ctx));

	if (!ctx)
		return NULL;
	ctx->raw_uri = strdup(uri ? uri : "/");
	ctx->raw_path = ctx->raw_uri ? strndup(ctx->raw_uri, strcspn(ctx->raw_uri, "?")) : NULL;
	pp_buf_init(&ctx->body, PP_MOCK_BODY_MAX);
	if (!ctx->raw_path) {
		free(ctx->raw_uri);
		free(ctx);
		return NULL;
	}
	return ctx;
}

static void request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct conn_ctx *ctx = *con_cls;

	if (!ctx)
		return;
	free(ctx->raw_uri);
	free(ctx->raw_path);
	pp_buf_free(&ctx->body);
	if (ctx->held)
		MHD_destroy_response(ctx->held);
	free(ctx);
	*con_cls = NULL;
}

/* The answer to ctx's request, made now and kept in ctx until it goes:
 * ctx->held (NULL when the connection is to close without one). Returns
 * how long it is held back (resp.latency_ms). */
static long prepare_answer(struct pp_mock *m, struct MHD_Connection *conn, struct conn_ctx *ctx,
			   const char *url, const char *method)
{
	struct pp_mock_resp resp = {0};
	struct pp_mock_req req = {0};
	const union MHD_ConnectionInfo *ci;
	char remote[INET6_ADDRSTRLEN] = "?";
	const char *q;
	long latency;

	pp_buf_init(&resp.body, PP_MOCK_BODY_MAX);
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ci->client_addr;

		inet_ntop(AF_INET, &sin->sin_addr, remote, sizeof(remote));
	}
	q = strchr(ctx->raw_uri, '?');
	req.method = method;
	req.path = url;
	req.subpath = url;
	req.raw_query = q ? q + 1 : "";
	req.body = pp_buf_str(&ctx->body);
	req.body_len = ctx->body.len;
	req.remote = remote;
	req.conn = conn;
	req.raw_path = ctx->raw_path;
	if (!pp_mock_loopback(remote)) {
		/* Unreachable while the listener is on loopback; kept so that no
		 * token ever leaves the machine whatever the socket setup. */
		pp_mock_resp_printf(&resp, 403, "text/plain", "the mock answers loopback only\n");
		resp.reject_reason = "not_loopback";
	} else if (ctx->too_big) {
		pp_mock_resp_printf(&resp, 413, "text/plain", "request body over %zu bytes\n",
				    (size_t)PP_MOCK_BODY_MAX);
		resp.reject_reason = "body_too_large";
	} else {
		dispatch(m, &req, &resp);
	}
	if (resp.status == 0)
		pp_mock_resp_printf(&resp, 404, "application/json",
				    "{\"error\":\"no mock API serves %s %s\"}\n", method, url);
	log_request(m, &req, &resp);
	ctx->answered = true;
	ctx->held_status = (unsigned int)resp.status;
	/* Dropped: the action was applied; the answer is lost. */
	ctx->held = resp.drop ? NULL : make_response(&resp);
	latency = resp.latency_ms;
	resp_free(&resp);
	return latency;
}

static enum MHD_Result send_answer(struct MHD_Connection *conn, struct conn_ctx *ctx)
{
	enum MHD_Result ret;

	if (!ctx->held)
		return MHD_NO;
	ret = MHD_queue_response(conn, ctx->held_status, ctx->held);
	MHD_destroy_response(ctx->held);
	ctx->held = NULL;
	return ret;
}

/* The holder's batch: each connection's worker thread sends its answer. */
static void resume_held(void *ud, struct MHD_Connection *const *conns, size_t n)
{
	for (size_t i = 0; i < n; i++)
		MHD_resume_connection(conns[i]);
}

/* conn, suspended with its answer ready, goes on after latency_ms. */
static void hold(struct pp_mock *m, struct MHD_Connection *conn, long latency_ms)
{
	if (latency_ms > 0 &&
	    pp_mock_hold_add(m->hold, conn, pp_mono_us() + latency_ms * 1000) == 0)
		return;
	/* No memory to hold it: this thread waits instead. */
	sleep_ms(latency_ms);
	MHD_resume_connection(conn);
}

/* A request made while a test's barrier is armed, on a thread of its own:
 * the barrier blocks its caller until the others come, and they come on
 * the daemon's threads. */
struct blocking_call {
	struct pp_mock *m;
	struct MHD_Connection *conn;
	struct conn_ctx *ctx;
	const char *url, *method; /* the connection's, kept while suspended */
};

static void *blocking_call_main(void *arg)
{
	struct blocking_call *b = arg;
	struct pp_mock *m = b->m;

	hold(m, b->conn, prepare_answer(m, b->conn, b->ctx, b->url, b->method));
	free(b);
	pthread_mutex_lock(&m->blocking_lock);
	if (--m->blocking_calls == 0)
		pthread_cond_broadcast(&m->blocking_done);
	pthread_mutex_unlock(&m->blocking_lock);
	return NULL;
}

/* 0, or -1 when no thread could be started (the caller answers inline). */
static int start_blocking_call(struct pp_mock *m, struct MHD_Connection *conn, struct conn_ctx *ctx,
			       const char *url, const char *method)
{
	struct blocking_call *b = malloc(sizeof(*b));
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	if (!b)
		return -1;
	*b = (struct blocking_call){m, conn, ctx, url, method};
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_mutex_lock(&m->blocking_lock);
	m->blocking_calls++;
	pthread_mutex_unlock(&m->blocking_lock);
	MHD_suspend_connection(conn);
	rc = pthread_create(&t, &attr, blocking_call_main, b);
	pthread_attr_destroy(&attr);
	if (rc) {
		MHD_resume_connection(conn);
		free(b);
		pthread_mutex_lock(&m->blocking_lock);
		m->blocking_calls--;
		pthread_mutex_unlock(&m->blocking_lock);
		return -1;
	}
	return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct pp_mock *m = cls;
	struct conn_ctx *ctx = *con_cls;
	long latency;

	if (!ctx)
		return MHD_NO;
	if (ctx->answered) /* resumed once its answer was due */
		return send_answer(conn, ctx);
	if (!ctx->headers_done) {
		ctx->headers_done = true;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!ctx->too_big && pp_buf_append(&ctx->body, upload_data, *upload_data_size))
			ctx->too_big = true;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (__atomic_load_n(&m->barriers_armed, __ATOMIC_ACQUIRE) > 0 &&
	    start_blocking_call(m, conn, ctx, url, method) == 0)
		return MHD_YES;
	latency = prepare_answer(m, conn, ctx, url, method);
	if (latency <= 0)
		return send_answer(conn, ctx);
	MHD_suspend_connection(conn);
	hold(m, conn, latency);
	return MHD_YES;
}

/* ---- lifecycle ---- */

bool pp_mock_loopback(const char *ipv4)
{
	struct in_addr a;

	return ipv4 && inet_pton(AF_INET, ipv4, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

int pp_mock_new(const struct pp_mock_opts *opts, struct pp_mock **out, struct pp_error *err)
{
	struct pp_mock *m = calloc(1, sizeof(*m));
	int rc = 0;

	*out = NULL;
	if (!m)
		return pp_fail(err, PP_ENOMEM, "mock: out of memory");
	m->opts = *opts;
	m->rng = opts->seed;
	pthread_mutex_init(&m->state_lock, NULL);
	pthread_mutex_init(&m->core_lock, NULL);
	pthread_mutex_init(&m->clock_lock, NULL);
	pthread_mutex_init(&m->blocking_lock, NULL);
	pthread_cond_init(&m->blocking_done, NULL);
	m->start_mono_ms = pp_mono_ms();
	m->start_wall = (double)pp_wall_ms() / 1000;
	rc = pp_mock_specs_new(&m->specs, err) ?: pp_mock_behaviours_new(&m->behaviours, err);
	if (!rc && pp_mock_hold_new(&m->hold, resume_held, NULL))
		rc = pp_fail(err, PP_ENOMEM, "mock: no thread to hold answers back");
	for (size_t i = 0; i < NAPIS && !rc; i++) {
		m->modules[i].api = mock_apis[i];
		if (mock_apis[i]->init) {
			rc = mock_apis[i]->init(m, &m->modules[i].state, err);
			if (rc) {
				pp_error_prefix(err, "mock %s: ", mock_apis[i]->name);
				break;
			}
		}
	}
	if (rc) {
		pp_mock_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

int pp_mock_start(struct pp_mock *m, struct pp_error *err)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	const union MHD_DaemonInfo *di;

	sa.sin_port = htons((uint16_t)m->opts.listen_port);
	if (inet_pton(AF_INET, m->opts.listen_host, &sa.sin_addr) != 1)
		return pp_fail(err, PP_EINVALID, "mock: listen address \"%s\" is not IPv4",
			       m->opts.listen_host);
	if (!pp_mock_loopback(m->opts.listen_host))
		return pp_fail(err, PP_EINVALID,
			       "mock: listen address %s is not loopback; the mock hands out "
			       "tokens and listens on 127.0.0.0/8 only",
			       m->opts.listen_host);
	/* A few threads, each serving its connections from epoll; a request
	 * whose answer waits out an injected latency is suspended meanwhile
	 * (mock/hold.h). No MHD error log, since injected resets would flood
	 * it. */
	m->daemon = MHD_start_daemon(
		MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, on_request,
		m, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)MOCK_DAEMON_THREADS,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_URI_LOG_CALLBACK,
		uri_logger, m, MHD_OPTION_NOTIFY_COMPLETED, request_done, m,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		MOCK_CONNECTION_MEMORY, MHD_OPTION_END);
	if (!m->daemon)
		return pp_fail(err, PP_EIO, "mock: cannot listen on %s:%d", m->opts.listen_host,
			       m->opts.listen_port);
	di = MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_BIND_PORT);
	m->port = di ? di->port : m->opts.listen_port;
	snprintf(m->base_url, sizeof(m->base_url), "http://%s:%d", m->opts.listen_host, m->port);
	for (size_t i = 0; i < NAPIS; i++) {
		struct module *mod = &m->modules[i];
		int rc;

		if (!mod->api->start)
			continue;
		rc = mod->api->start(m, mod->state, &mod->port, err);
		if (rc)
			return pp_error_prefix(err, "mock %s: ", mod->api->name);
		mod->started = true;
	}
	return 0;
}

int pp_mock_describe(struct pp_mock *m, struct pp_buf *out)
{
	int rc = pp_buf_printf(out, "url=%s\n", m->base_url);

	for (size_t i = 0; !rc && i < NAPIS; i++) {
		const struct module *mod = &m->modules[i];

		if (mod->port)
			rc = pp_buf_printf(out, "%s=http://%s:%d\n", mod->api->name,
					   m->opts.listen_host, mod->port);
		else if (mod->api->prefixes[0])
			rc = pp_buf_printf(out, "%s=%s%s\n", mod->api->name, m->base_url,
					   mod->api->prefixes[0]);
	}
	return rc;
}

void pp_mock_free(struct pp_mock *m)
{
	if (!m)
		return;
	/* No connection may be suspended when the daemon stops: the calls a
	 * barrier holds go on, then the answers held for their latency. */
	for (struct pp_mock_barrier *b = m->barriers; b; b = b->next) {
		pthread_mutex_lock(&b->lock);
		barrier_open(m, b);
		pthread_mutex_unlock(&b->lock);
	}
	pthread_mutex_lock(&m->blocking_lock);
	while (m->blocking_calls > 0)
		pthread_cond_wait(&m->blocking_done, &m->blocking_lock);
	pthread_mutex_unlock(&m->blocking_lock);
	pp_mock_hold_release_all(m->hold);
	for (size_t i = 0; i < NAPIS; i++)
		if (m->modules[i].started && m->modules[i].api->stop)
			m->modules[i].api->stop(m, m->modules[i].state);
	if (m->daemon)
		MHD_stop_daemon(m->daemon);
	pp_mock_hold_free(m->hold);
	for (size_t i = 0; i < NAPIS; i++)
		if (m->modules[i].api && m->modules[i].api->free && m->modules[i].state)
			m->modules[i].api->free(m->modules[i].state);
	counters_clear(m);
	free(m->counters);
	pp_mock_specs_free(m->specs);
	pp_mock_behaviours_free(m->behaviours);
	pthread_mutex_destroy(&m->state_lock);
	pthread_mutex_destroy(&m->core_lock);
	pthread_mutex_destroy(&m->blocking_lock);
	pthread_cond_destroy(&m->blocking_done);
	free(m);
}
