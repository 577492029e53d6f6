/* `pushpool mock`: one loopback HTTP server (libmicrohttpd) hosting fake cloud
 * APIs, each a module under its own path prefix, sharing fault injection,
 * counters, a request log and a timeline clock. Modules run on MHD worker
 * threads: touch shared state only between pp_mock_lock()/pp_mock_unlock(). */
#ifndef PP_MOCK_H
#define PP_MOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/json.h"

struct pp_mock;
struct pp_mock_route;

#define PP_MOCK_MAX_KEYS 8
#define PP_MOCK_BODY_MAX ((size_t)1 << 20)

struct pp_mock_opts {
	const char *listen_host;		/* "127.0.0.1"; loopback only */
	int listen_port;			/* 0: any free port */
	double provision_seconds;		/* timeline: created -> running */
	double run_seconds;			/* timeline: running -> finished */
	uint64_t seed;				/* PRNG seed for fault decisions */
	const char *gcp_keys[PP_MOCK_MAX_KEYS]; /* SA JSON or PEM public key files */
	size_t ngcp_keys;
	const char *gcp_token_audience; /* aud the JWT must carry; NULL: the mock's own token URL */
	const char *aws_keys[PP_MOCK_MAX_KEYS]; /* "AKID:SECRET" */
	size_t naws_keys;
	const char *aws_web_identity_token; /* NULL: any JWT-looking token */
	double token_lifetime_seconds;	    /* issued access tokens / STS creds */
};

void pp_mock_opts_defaults(struct pp_mock_opts *o);

/* One request as a module sees it. */
struct pp_mock_req {
	const char *method;
	const char *path;      /* decoded path, prefix included */
	const char *subpath;   /* path after the matched module prefix ("" or "/...") */
	const char *raw_query; /* as sent, without '?'; "" when none */
	const char *body;      /* NUL-terminated; body_len bytes */
	size_t body_len;
	const char *remote;   /* "127.0.0.1" */
	void *conn;	      /* struct MHD_Connection * */
	const char *raw_path; /* path as sent, still percent-encoded (SigV4) */
};

/* Request header (case-insensitive) / decoded query argument; NULL if absent. */
const char *pp_mock_header(const struct pp_mock_req *r, const char *name);
const char *pp_mock_arg(const struct pp_mock_req *r, const char *name);
/* Every request header in arrival order; returns how many were stored. */
size_t pp_mock_headers(const struct pp_mock_req *r, const char **names, const char **values,
		       size_t max);

#define PP_MOCK_RESP_HEADERS 8

struct pp_mock_resp {
	int status;	    /* 0 until a module answers: core then sends 404 */
	struct pp_buf body; /* capped at PP_MOCK_BODY_MAX */
	char content_type[64];
	const char *hdr_names[PP_MOCK_RESP_HEADERS]; /* static strings */
	char *hdr_values[PP_MOCK_RESP_HEADERS];	     /* owned */
	size_t nhdr;
	/* Labels for stats and the request log: api ("ecs") and action ("RunTask"). */
	char api[24];
	char action[64];
	/* Set by pp_mock_fault_check(); applied by the core after the handler. */
	long latency_ms; /* how long the answer (or the drop) is held back */
	bool drop;	 /* close the connection without any answer */
	bool cut_body;	 /* announce the full length, send half */
	bool malformed;	 /* replace the body with broken JSON */
	/* Set by a module that rejected the request (auth, validation): counted
	 * under stats.rejects. Static string. */
	const char *reject_reason;
};

int pp_mock_resp_header(struct pp_mock_resp *r, const char *name, const char *value);
/* Set status, content type and the body from printf. */
int pp_mock_resp_printf(struct pp_mock_resp *r, int status, const char *content_type,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Set status and a compact JSON body (takes no ownership of j). */
int pp_mock_resp_json(struct pp_mock_resp *r, int status, const char *content_type,
		      const struct pp_json *j);

/* ---- routing ---- */

/* Path parameters a route pattern captured ("{job}" -> "j1"). */
#define PP_MOCK_PARAMS_MAX 8
struct pp_mock_params {
	size_t n;
	const char *names[PP_MOCK_PARAMS_MAX];
	const char *values[PP_MOCK_PARAMS_MAX];
	char buf[2048]; /* names and values, NUL-terminated */
};

/* Value captured for "{name}" or "{name*}"; NULL if the pattern has none. */
const char *pp_mock_param(const struct pp_mock_params *p, const char *name);

/* Match path against pattern, segment by segment ('/'-separated; empty
 * segments are ignored on both sides, so "/a//b/" is "/a/b"). A pattern
 * segment is a literal, "{name}" (one non-empty segment), "{name}SUFFIX"
 * (a segment ending in SUFFIX, e.g. "{job}:run", capturing the rest) or, as
 * the last one, "{name*}" (every remaining segment, possibly none, joined by
 * '/'). nocase compares literals case-insensitively (ARM paths). On a match
 * fills p and returns true. */
bool pp_mock_pattern_match(const char *pattern, const char *path, bool nocase,
			   struct pp_mock_params *p);

/* One matched request, as hooks and handlers see it. */
struct pp_mock_call {
	struct pp_mock *m;
	void *state; /* the module's */
	const struct pp_mock_req *req;
	struct pp_mock_resp *resp;
	const struct pp_mock_route *route; /* NULL in unmatched() */
	struct pp_mock_params params;
	struct pp_json *body; /* the parsed body when the router sets json_body */
	char note[64];	      /* what admit learned for the handler (AWS: the region) */
};

/* A route: {method, pattern, handler}. */
struct pp_mock_route {
	const char *method;  /* "GET", "POST", ...; NULL ends a table */
	const char *pattern; /* see pp_mock_pattern_match(); the full path */
	void (*handle)(struct pp_mock_call *c);
	/* Optional spec check of this request, run after the router's admit
	 * and validate: answers c->resp in the API's error shape and returns
	 * false to refuse the request before handle runs. */
	bool (*validate)(struct pp_mock_call *c);
	bool changes; /* the handler changes state (for the router's after hook) */
};

/* The routes of one API, tried in order (the first match wins), with the
 * hooks its routes share. Every hook may be NULL. */
struct pp_mock_router {
	const char *api; /* label in stats and the request log ("cloudrun") */
	/* Path prefix this router answers ("/google/v2"), unmatched paths
	 * included; NULL: only the paths its routes match, with any method. */
	const char *scope;
	bool nocase;	/* literal segments compare case-insensitively */
	bool json_body; /* parse a non-empty body as JSON into c->body */
	bool locked;	/* run handle and after under pp_mock_lock() */
	const struct pp_mock_route *routes;
	/* Before anything else, once a route matched: authentication, fault
	 * injection. Answers and returns false to stop. */
	bool (*admit)(struct pp_mock_call *c);
	/* A body json_body could not parse; default: 400 text. */
	void (*bad_body)(struct pp_mock_call *c, const char *why);
	/* Spec checks shared by every route (before route->validate). */
	bool (*validate)(struct pp_mock_call *c);
	/* After handle (persistence). */
	void (*after)(struct pp_mock_call *c);
	/* A path in scope that no route matches (other_method: one matches the
	 * path with another method); default: 404 / 405 text. */
	void (*unmatched)(struct pp_mock_call *c, bool other_method);
};

/* Answer req with the first router of routers (NULL-terminated) that takes
 * the path (see scope); false when none does. */
bool pp_mock_route_request(struct pp_mock *m, void *state,
			   const struct pp_mock_router *const *routers,
			   const struct pp_mock_req *req, struct pp_mock_resp *resp);

/* A fake API. Every hook may be NULL. */
struct pp_mock_api {
	const char *name;	 /* key in the port file, log and stats: "google" */
	const char *prefixes[4]; /* NULL-terminated path prefixes, e.g. "/google" */
	/* Its HTTP routes, NULL-terminated, tried in order. */
	const struct pp_mock_router *const *routers;
	int (*init)(struct pp_mock *m, void **state, struct pp_error *err);
	void (*free)(void *state);
	/* POST /control/reset: drop every resource. */
	void (*reset)(struct pp_mock *m, void *state);
	/* GET /control/stats: add "live_*" counts to live (called under the lock). */
	void (*stats)(struct pp_mock *m, void *state, struct pp_json *live);
	/* Modules with their own listener (Modal h2c): start it on *port (0: any),
	 * report the bound port back; stop before free. */
	int (*start)(struct pp_mock *m, void *state, int *port, struct pp_error *err);
	void (*stop)(struct pp_mock *m, void *state);
};

/* True for a dotted IPv4 address in 127.0.0.0/8. The mock listens only on
 * such an address and answers only peers coming from one: it issues
 * tokens and credentials to anyone who asks. */
bool pp_mock_loopback(const char *ipv4);

int pp_mock_new(const struct pp_mock_opts *opts, struct pp_mock **out, struct pp_error *err);
/* Bind and serve; returns once listening. A listen_host that is not
 * loopback is refused (PP_EINVALID). */
int pp_mock_start(struct pp_mock *m, struct pp_error *err);
/* "key=value" lines: url=http://127.0.0.1:PORT, then NAME=base URL per module. */
int pp_mock_describe(struct pp_mock *m, struct pp_buf *out);
int pp_mock_port(const struct pp_mock *m);
void pp_mock_free(struct pp_mock *m);

const struct pp_mock_opts *pp_mock_opts(const struct pp_mock *m);
/* "http://127.0.0.1:PORT" (no trailing slash). */
const char *pp_mock_base_url(const struct pp_mock *m);

/* Shared-state mutex (not recursive). */
void pp_mock_lock(struct pp_mock *m);
void pp_mock_unlock(struct pp_mock *m);

/* Timeline clock: monotonic seconds since the mock started. */
double pp_mock_clock(const struct pp_mock *m);
/* Tests take the timeline out of the machine's hands (POST /control/clock):
 * hold stops the clock where it is, so every resource stays in its phase
 * however slow the machine; run lets it go on from there; advance moves it
 * forward, held or not (issued tokens expire by it too). */
void pp_mock_clock_hold(struct pp_mock *m, bool hold);
void pp_mock_clock_advance(struct pp_mock *m, double seconds);
bool pp_mock_clock_held(const struct pp_mock *m);
/* Wall-clock time for a clock value, for timestamps in answers. */
double pp_mock_wall(const struct pp_mock *m, double clock);
/* The clouds' realistic behaviours (mock/behave.c, GET/POST
 * /control/behaviours): true when behaviour `name` ("ecs.missing") is on,
 * with *seconds (may be NULL) its duration on the lifecycle clock, 0 when
 * off. Thread safe; kept across /control/reset. */
bool pp_mock_behaviour(struct pp_mock *m, const char *name, double *seconds);
struct pp_mock_behaviours;
int pp_mock_behaviours_new(struct pp_mock_behaviours **out, struct pp_error *err);
void pp_mock_behaviours_free(struct pp_mock_behaviours *s);
bool pp_mock_behaviours_get(struct pp_mock_behaviours *s, const char *name, double *seconds);
/* GET (post false) or POST {"name","on","seconds"} (or an array of them)
 * /control/behaviours: answers the switches as JSON, or 400. */
void pp_mock_behaviours_control(struct pp_mock_behaviours *s, const struct pp_json *body, bool post,
				struct pp_mock_resp *resp);
/* Seeded PRNG in [0, 1); thread safe. */
double pp_mock_random(struct pp_mock *m);
/* Unique-ish lowercase hex id of n chars (n < out_size), from the PRNG. */
void pp_mock_random_hex(struct pp_mock *m, char *out, size_t n);

/* Fault decision for one request to api ("ecs", "cloudrun", "oauth", ...),
 * made from the flags and POST /control/faults. Adds the configured
 * latency (plus token_delay_ms when token_endpoint) to resp->latency_ms,
 * sets resp->drop / cut_body / malformed, all for the core to apply after
 * the handler, and returns what the module must answer instead of acting.
 * The request acts at once and its answer waits, as a cloud's commit
 * comes before its answer's way back (Modal's streams do the same). */
enum pp_mock_fault {
	PP_MOCK_FAULT_NONE,
	PP_MOCK_FAULT_ERROR,	/* answer a 5xx in the API's own error shape */
	PP_MOCK_FAULT_THROTTLE, /* answer the API's throttling error */
};
enum pp_mock_fault pp_mock_fault_check(struct pp_mock *m, const char *api, bool token_endpoint,
				       struct pp_mock_resp *resp, int *retry_after_s);
/* The same with the latency in *latency_ms, for a module that serves
 * many calls on its own server (Modal's HTTP/2 streams) and delays each
 * answer itself; NULL for a roll inside a request whose latency was
 * added already (RunTask's ecs.capacity). */
enum pp_mock_fault pp_mock_fault_roll(struct pp_mock *m, const char *api, bool token_endpoint,
				      struct pp_mock_resp *resp, int *retry_after_s,
				      long *latency_ms);

/* A step fault: true when POST /control/faults set an error_rate for
 * exactly this api (e.g. "cloudrun.run") and the roll hits. The "*"
 * default never applies, so a global --fail-rate leaves these steps alone.
 * Counted as "injected" NAME.error. */
bool pp_mock_step_fault(struct pp_mock *m, const char *api);

/* A start failure: true when POST /control/faults set "start_failures":N
 * for exactly this api ("ecs", "cloudrun", "aci", "modal") and N is not yet
 * spent; takes one. The module then fails the job it is starting the way
 * its cloud reports a start failure (docs/mock.md). Counted as "injected"
 * NAME.start_failure. */
bool pp_mock_start_failure(struct pp_mock *m, const char *api);

/* Fault settings from JSON: one object or an array of objects
 * {"api":"ecs","error_rate":0.05,...}; "api" absent or "*" sets the default
 * for every api. Absent fields keep their value. */
int pp_mock_set_faults(struct pp_mock *m, const char *json, struct pp_error *err);

/* Counters: counter with key NULL is a plain number, else a map of keys
 * (creates per idempotency key / job name). Thread safe. */
void pp_mock_count(struct pp_mock *m, const char *counter, const char *key);
/* "a", or a and b joined by the unit separator 0x1f (which names and ids
 * never hold): one string to find a pair by (lib/strmap). NULL when out of
 * memory; the caller frees it. */
char *pp_mock_join_key(const char *a, const char *b);
/* For a lookup: the same key written into buf when it fits in cap bytes,
 * else into a new allocation (out of memory: NULL). The caller frees the
 * result when it is not buf. Lookups run on every request; most keys fit
 * PP_MOCK_KEY_INLINE. */
#define PP_MOCK_KEY_INLINE 256
char *pp_mock_join_key_in(char *buf, size_t cap, const char *a, const char *b);
unsigned long pp_mock_count_get(struct pp_mock *m, const char *counter, const char *key);

/* A barrier for tests (POST /<api>/control/barrier): the next `need`
 * calls of one action wait for each other (at most timeout_ms), then all
 * go on at once, counted as "<api>.barrier_passed" (or
 * "<api>.barrier_timeouts") by action. A test makes calls overlap with it,
 * or proves that calls were made together: made one after the other, the
 * first of them waits out the timeout alone. */
struct pp_mock_barrier {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char action[64];
	int need, waiting;
	unsigned gen;
	long timeout_ms;
	struct pp_mock_barrier *next; /* the mock's barriers, which its stop opens */
};
/* Registers b with m, whose stop opens it. While a barrier is armed, each
 * request is served on a thread of its own, since the barrier blocks it
 * (the mock's daemon serves connections on a few threads, events-driven);
 * a request already being served when a barrier is armed blocks its
 * daemon thread if it reaches the barrier. */
void pp_mock_barrier_init(struct pp_mock *m, struct pp_mock_barrier *b);
void pp_mock_barrier_destroy(struct pp_mock_barrier *b);
/* Where a call of api's action (its resp->action) may wait; never under the
 * mock lock, which the others need to come. */
void pp_mock_barrier_pass(struct pp_mock *m, struct pp_mock_barrier *b, const char *api,
			  const char *action);
/* The control call that sets b, body {"action": what, "count": 2..64,
 * "timeout_ms": 1..600000 (30000)}. */
void pp_mock_barrier_set(struct pp_mock_call *c, struct pp_mock_barrier *b, const char *what);

/* Outcome markers in a container spec: any string "PUSHPOOL_MOCK_FAIL=1" or
 * env entry {name: PUSHPOOL_MOCK_FAIL, value: "1"} anywhere in j (and so
 * for HOLD and CRASH). Ordered from the mildest: when markers combine, the
 * later one wins, so a job marked to fail or crash does so even if held. */
enum pp_mock_outcome {
	PP_MOCK_SUCCEED,
	PP_MOCK_HOLD,  /* the container runs until stopped: a test's timeout never races its end */
	PP_MOCK_FAIL,  /* the container exits 1 */
	PP_MOCK_CRASH, /* the container never starts */
};
enum pp_mock_outcome pp_mock_outcome_of(const struct pp_json *j);

/* A cloud module started a job (clock `created`, its container spec and
 * the run's overrides, either NULL): when its environment names a flow run
 * (PREFECT__FLOW_RUN_ID), the Prefect module runs a simulated flow that
 * reports its own states (mock/prefect.c). Call with the mock lock held. */
void pp_mock_prefect_job_started(struct pp_mock *m, const struct pp_json *spec,
				 const struct pp_json *overrides, enum pp_mock_outcome outcome,
				 double created);

/* A job's output (mock/joblog.c): a few lines written at set times through
 * its run, from its container spec and overrides (either may be NULL) and
 * its outcome; none when it never starts. */
struct pp_mock_joblog;
struct pp_mock_joblog *pp_mock_joblog_new(const struct pp_mock *m, const struct pp_json *spec,
					  const struct pp_json *overrides,
					  enum pp_mock_outcome outcome, double created);
void pp_mock_joblog_free(struct pp_mock_joblog *j);
/* How many lines are written by clock now (and by stopped, when >= 0). */
size_t pp_mock_joblog_written(const struct pp_mock_joblog *j, double now, double stopped);
/* Line i, its clock (*at) and stream (*fd: 1 stdout, 2 stderr); NULL past the end. */
const char *pp_mock_joblog_line(const struct pp_mock_joblog *j, size_t i, double *at, int *fd);

/* Timeline phase of a resource created at clock `created` (stopped at
 * `stopped` when >= 0). */
enum pp_mock_phase {
	PP_MOCK_PROVISIONING,
	PP_MOCK_RUNNING,
	PP_MOCK_FINISHED,
};
enum pp_mock_phase pp_mock_phase_at(const struct pp_mock *m, double created, double now);
/* The phase of a job of that outcome: a held one (PP_MOCK_HOLD) stays
 * RUNNING once provisioned, whatever --run-seconds says. */
enum pp_mock_phase pp_mock_job_phase(const struct pp_mock *m, enum pp_mock_outcome outcome,
				     double created, double now);

/* Modules. */
extern const struct pp_mock_api pp_mock_api_google;
extern const struct pp_mock_api pp_mock_api_aws;
extern const struct pp_mock_api pp_mock_api_azure;
extern const struct pp_mock_api pp_mock_api_modal;
extern const struct pp_mock_api pp_mock_api_prefect;
/* Modal module: accepted token pair "ID:SECRET" (state is the module's). */
int pp_mock_modal_token_set(void *state, const char *pair, struct pp_error *err);

#endif
