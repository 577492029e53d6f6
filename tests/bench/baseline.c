/* The mock's raw capacity for the requests one run's submission sends: a
 * bare libcurl multi client, no pushpool code, that keeps CONCURRENCY runs
 * in flight (prefect-ecs: below), each run being the same chain of requests
 * the dispatcher sends for that pool type (bench.sh checks the per-run
 * request counts against the mock's counters). Prints one JSON object with
 * runs/s.
 *
 *   baseline POOL BASE_URL RUNS CONCURRENCY [--fresh-connect|--reuse-all]
 *
 * ACI follows the create's Azure-AsyncOperation to its end, waiting
 * Retry-After (else 2 s) between polls, as providers/aci.c does.
 *
 * Modal is gRPC over h2c: SandboxGetFromName (NOT_FOUND), AppGetOrCreate,
 * ImageGetOrCreate, SecretGetOrCreate (the env), SandboxCreate, with
 * protobuf written here by hand (field numbers as in providers/modal.c),
 * multiplexed over shared connections as lib/http.c does it (join a
 * connection that is up with HTTP/2, else open a prior-knowledge one: curl
 * 7.88 breaks reused prior-knowledge connections); --fresh-connect gives
 * each call a connection of its own (the dispatcher before issue 23).
 *
 * prefect-ecs takes its runs from a Prefect server's API (BASE_URL: the API
 * URL, the mock's .../prefect/api) as a minimal Prefect worker for ECS
 * would: it lists the work pool's scheduled flow runs
 * (get_scheduled_flow_runs, 200 a page) and takes each through the chain
 * the dispatcher's Prefect source sends: read the run (still SCHEDULED;
 * its name and deployment, whose name is read once), propose PENDING,
 * RunTask (the dispatcher's body for a flow run: Prefect's env and tags),
 * PATCH infrastructure_pid. At most 16 Prefect calls are in flight (the
 * connections Prefect's client allows itself, which the dispatcher keeps
 * too) and CONCURRENCY RunTasks; it lists again once every run of the page
 * is claimed, until RUNS runs are taken. An answer it cannot read, or a
 * listing with nothing left to take, ends it with an error.
 *
 * POOL is cloud-run, ecs, aci, modal (BASE_URL: the mock's modal= URL) or
 * prefect-ecs. Credentials come from the environment: BENCH_BEARER
 * (cloud-run, aci: a token the mock issued), BENCH_AWS_KEY (ecs,
 * prefect-ecs: AKID:SECRET), BENCH_MODAL_TOKEN (modal: ID:SECRET);
 * prefect-ecs also takes BENCH_PREFECT_KEY (the API key, sent as a bearer
 * token), BENCH_PREFECT_POOL (the work pool) and BENCH_ECS_URL (ECS's
 * endpoint).
 *
 * Connections: by default the dispatcher's policy (lib/http.c with the
 * providers' PP_HTTP_RESENDABLE): reads and the requests a resend cannot
 * harm (ECS RunTask with its clientToken, Cloud Run's create by jobId, ACI's
 * PUT by name, the Prefect source's list, proposal and PATCH) reuse
 * kept-alive connections; the others (Cloud Run's :run)
 * get a fresh connection each. --fresh-connect gives every non-GET request
 * its own connection (the dispatcher's policy before issue 23);
 * --reuse-all reuses connections for every request (the ceiling).
 *
 * --work-us=N spends N microseconds of CPU on each run before its first
 * request, standing in for what the dispatcher does beyond the requests
 * (claim, intent, render, the SUBMITTED write): the client's rate against
 * the work a run costs, which tells what a dispatcher's CPU a run must
 * come to for a given ratio (docs/performance.md, step 41). With
 * --work-thread that work is done on a second thread, up to CONCURRENCY
 * runs ahead of the requests: the most a dispatcher that moved it off the
 * requests' thread could gain, with nothing paid for the hand-over but a
 * pipe write when the requests' thread waits. Not with prefect-ecs. */
#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define RESP_MAX (1 << 20)
#define URL_MAX	 1024
#define BODY_MAX 4096

enum pool { POOL_CLOUD_RUN, POOL_ECS, POOL_ACI, POOL_MODAL, POOL_PREFECT_ECS };

struct slot {
	CURL *easy;
	struct curl_slist *hdrs;
	int run;  /* index of the run this slot is submitting; -1 idle */
	int step; /* request of the run's chain under way */
	char url[URL_MAX];
	char body[BODY_MAX];
	size_t body_len;
	char *resp;
	size_t resp_len;
	bool resp_overflow;
	char async_url[URL_MAX]; /* aci: the create's operation */
	char grpc_status[8];	 /* modal: from the trailers */
	char image_id[64], secret_id[64];
	bool h2c_open; /* modal: opens a connection (else only joins one) */
	bool rejoin;   /* modal: a joiner stopped before sending */
	bool aws;      /* an ECS call: signed with SigV4 */
	struct bench *bench;
	int joins;
	long retry_after_ms;
	double due; /* > 0: waiting to send the next poll at this time */
};

/* prefect-ecs: a flow run the listing found, and what its chain learns. */
struct pf_run {
	char id[40];
	char name[128];	      /* its read's: the task's tags name it */
	char deployment[128]; /* its deployment's name, also a tag */
	char task_arn[256];   /* RunTask's, for infrastructure_pid */
	int step;	      /* its next call (enum pf_step) */
};

struct bench {
	enum pool pool;
	const char *base;
	const char *bearer;
	const char *aws_key;
	char ecs_url[URL_MAX]; /* ecs, prefect-ecs: where the ECS calls go */
	/* prefect-ecs: the API key, the work pool, the runs listed so far, the
	 * worker's name and store id (as the dispatcher's, for the same
	 * bodies), and the last deployment read. */
	const char *pf_key, *pf_pool;
	struct pf_run *pf_runs;
	char pf_worker[128], pf_store_id[40];
	char pf_dep_id[40], pf_dep_name[128];
	char modal_id[128], modal_secret[128];
	char modal_token[1024]; /* from AuthTokenGet */
	enum { CONN_DISPATCHER, CONN_FRESH_NON_GET, CONN_REUSE_ALL } conn;
	char task_def_arn[512]; /* ecs: registered once, as the dispatcher caches it per pool */
	char location[64];	/* aci: from the resource group */
	int h2c_opening;	/* modal: openers under way */
	int h2c_ports[256];	/* modal: local ports of connections that are HTTP/2 */
	size_t h2c_next;
	unsigned tag; /* makes names unique across invocations on one mock */
	int errors;
	char first_error[512];
};

/* --work-us: per-run CPU work, inline or on a second thread that keeps
 * `prepared` up to `window` runs ahead of `started`. */
struct work {
	long us;
	bool threaded;
	int runs, window;
	atomic_int prepared, started;
	atomic_bool starving; /* the requests' thread waits for prepared runs */
	int wake[2];	      /* pipe: worker -> requests' thread */
	pthread_mutex_t mu;
	pthread_cond_t room;
};

static void spend_cpu(long us)
{
	struct timespec a, b;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
	do
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000 < us);
}

static void *work_ahead(void *arg)
{
	struct work *w = arg;
	while (atomic_load(&w->prepared) < w->runs) {
		pthread_mutex_lock(&w->mu);
		while (atomic_load(&w->prepared) - atomic_load(&w->started) >= w->window)
			pthread_cond_wait(&w->room, &w->mu);
		pthread_mutex_unlock(&w->mu);
		spend_cpu(w->us);
		atomic_fetch_add(&w->prepared, 1);
		if (atomic_exchange(&w->starving, false)) {
			char c = 1;
			if (write(w->wake[1], &c, 1) < 0)
				perror("baseline: wake");
		}
	}
	return NULL;
}

/* Whether run `next` may start now; inline work is spent here. */
static bool work_ready(struct work *w, int next)
{
	if (!w->threaded) {
		if (w->us)
			spend_cpu(w->us);
		return true;
	}
	if (next < atomic_load(&w->prepared))
		return true;
	atomic_store(&w->starving, true);
	/* The worker may have prepared it between the two loads. */
	return next < atomic_load(&w->prepared);
}

static void work_started(struct work *w)
{
	if (!w->threaded)
		return;
	pthread_mutex_lock(&w->mu);
	atomic_fetch_add(&w->started, 1);
	pthread_cond_signal(&w->room);
	pthread_mutex_unlock(&w->mu);
}

static const char *const ecs_target = "AmazonEC2ContainerServiceV20141113.";
static const char *const gcp_jobs = "/google/v2/projects/demo-proj/locations/europe-west1/jobs";
static const char *const aci_sub = "/azure/subscriptions/00000000-1111-2222-3333-444444444444";

/* ECS RunTask as the dispatcher sends it for a run of the default ecs
 * template: env and tags are the members of those arrays, key the run's
 * startedBy and clientToken. */
static void ecs_run_task(const struct bench *b, struct slot *s, const char *env, const char *tags,
			 const char *key)
{
	s->aws = true;
	snprintf(s->url, sizeof(s->url), "%s", b->ecs_url);
	snprintf(s->body, sizeof(s->body),
		 "{\"launchType\":\"FARGATE\",\"overrides\":{\"containerOverrides\":[{"
		 "\"name\":\"prefect\",\"command\":[\"prefect\",\"flow-run\",\"execute\"],"
		 "\"environment\":[%s]}]},"
		 "\"cluster\":\"default\",\"networkConfiguration\":{\"awsvpcConfiguration\":{"
		 "\"subnets\":[\"subnet-1\"],\"assignPublicIp\":\"DISABLED\"}},\"tags\":[%s],"
		 "\"startedBy\":\"%s\",\"clientToken\":\"%s\",\"taskDefinition\":\"%s\"}",
		 env, tags, key, key, b->task_def_arn);
	s->hdrs = curl_slist_append(s->hdrs, "Content-Type: application/x-amz-json-1.1");
	char h[128];
	snprintf(h, sizeof(h), "X-Amz-Target: %sRunTask", ecs_target);
	s->hdrs = curl_slist_append(s->hdrs, h);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct slot *s = ud;
	size_t n = size * nmemb;
	if (s->resp_len + n > RESP_MAX) {
		s->resp_overflow = true;
		return 0;
	}
	char *grown = realloc(s->resp, s->resp_len + n + 1);
	if (!grown)
		return 0;
	s->resp = grown;
	memcpy(s->resp + s->resp_len, data, n);
	s->resp_len += n;
	s->resp[s->resp_len] = '\0';
	return n;
}

/* Azure-AsyncOperation and Retry-After of the answer under way. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct slot *s = ud;
	size_t n = size * nmemb;
	static const char async[] = "azure-asyncoperation:", retry[] = "retry-after:",
			  grpc[] = "grpc-status:";
	if (n > sizeof(async) && !strncasecmp(data, async, sizeof(async) - 1)) {
		const char *v = data + sizeof(async) - 1;
		size_t len = n - (sizeof(async) - 1);
		while (len && (*v == ' ' || *v == '\t'))
			v++, len--;
		while (len && (v[len - 1] == '\r' || v[len - 1] == '\n'))
			len--;
		if (len < sizeof(s->async_url)) {
			memcpy(s->async_url, v, len);
			s->async_url[len] = '\0';
		}
	} else if (n > sizeof(retry) && !strncasecmp(data, retry, sizeof(retry) - 1)) {
		s->retry_after_ms = atol(data + sizeof(retry) - 1) * 1000;
	} else if (n > sizeof(grpc) && !strncasecmp(data, grpc, sizeof(grpc) - 1)) {
		snprintf(s->grpc_status, sizeof(s->grpc_status), "%ld",
			 atol(data + sizeof(grpc) - 1));
	}
	return n;
}

static void run_ids(const struct bench *b, int run, char *uuid, size_t un, char *name, size_t nn)
{
	snprintf(uuid, un, "%08x-0000-4000-8000-%012x", b->tag, (unsigned)run);
	snprintf(name, nn, "pp-%08x000040008000%012x-1", b->tag, (unsigned)run);
}

#define ACI_POLL_STEP	    3
#define ACI_DEFAULT_POLL_MS 2000

/* The string value of "key" in the answer, or "" */
static void answer_field(const struct slot *s, const char *key, char *out, size_t n)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	const char *v = s->resp ? strstr(s->resp, pat) : NULL;
	size_t len = v ? strcspn(v + strlen(pat), "\"") : 0;
	snprintf(out, n, "%.*s", (int)(len < n ? len : n - 1), v ? v + strlen(pat) : "");
}

static bool provisioning_over(const char *state)
{
	return !*state || !strcmp(state, "Succeeded") || !strcmp(state, "Failed") ||
	       !strcmp(state, "Canceled");
}

enum next { NEXT_DONE, NEXT_SEND, NEXT_WAIT };

/* ---- Modal: protobuf and gRPC framing by hand ---- */

struct pb {
	char *p;
	size_t len, cap;
	bool overflow;
};

static void pb_byte(struct pb *b, unsigned char c)
{
	if (b->len < b->cap)
		b->p[b->len++] = (char)c;
	else
		b->overflow = true;
}

static void pb_varint(struct pb *b, unsigned long long v)
{
	do {
		pb_byte(b, (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
		v >>= 7;
	} while (v);
}

static void pb_bytes(struct pb *b, int field, const void *data, size_t n)
{
	pb_varint(b, (unsigned long long)field << 3 | 2);
	pb_varint(b, n);
	for (size_t i = 0; i < n; i++)
		pb_byte(b, ((const unsigned char *)data)[i]);
}

static void pb_string(struct pb *b, int field, const char *v)
{
	pb_bytes(b, field, v, strlen(v));
}

static void pb_uint(struct pb *b, int field, unsigned long long v)
{
	pb_varint(b, (unsigned long long)field << 3);
	pb_varint(b, v);
}

/* The first string field `field` of the answer's (first) gRPC message. */
static void grpc_answer_string(const struct slot *s, int field, char *out, size_t n)
{
	out[0] = '\0';
	if (!s->resp || s->resp_len < 5)
		return;
	const unsigned char *p = (const unsigned char *)s->resp + 5, *end = p + (s->resp_len - 5);
	while (p < end) {
		unsigned long long key = 0, len = 0;
		for (int shift = 0; p < end && shift < 64; shift += 7) {
			key |= (unsigned long long)(*p & 0x7f) << shift;
			if (!(*p++ & 0x80))
				break;
		}
		if ((key & 7) == 0) {
			while (p < end && (*p++ & 0x80))
				;
			continue;
		}
		if ((key & 7) != 2)
			return;
		for (int shift = 0; p < end && shift < 64; shift += 7) {
			len |= (unsigned long long)(*p & 0x7f) << shift;
			if (!(*p++ & 0x80))
				break;
		}
		if (len > (unsigned long long)(end - p))
			return;
		if ((int)(key >> 3) == field) {
			snprintf(out, n, "%.*s", (int)(len < n ? len : n - 1), (const char *)p);
			return;
		}
		p += len;
	}
}

static const char *const modal_rpcs[] = {"SandboxGetFromName", "AppGetOrCreate", "ImageGetOrCreate",
					 "SecretGetOrCreate", "SandboxCreate"};
#define MODAL_APP "prefect-flow-runs"

/* The gRPC message (5-byte frame header, then protobuf) for Modal step
 * s->step into s->body; returns its length. */
static size_t modal_message(struct slot *s, const char *uuid, const char *name)
{
	struct pb m = {.p = s->body + 5, .cap = sizeof(s->body) - 5};
	struct pb inner = {.p = (char[1024]){0}, .cap = 1024};
	switch (s->step) {
	case 0:
		pb_string(&m, 1, name);
		pb_string(&m, 3, MODAL_APP);
		break;
	case 1:
		pb_string(&m, 1, MODAL_APP);
		pb_uint(&m, 3, 1); /* CREATE_IF_MISSING */
		break;
	case 2:
		pb_string(&inner, 6, "FROM python:3.12-slim");
		pb_bytes(&m, 2, inner.p, inner.len);
		pb_string(&m, 4, "ap-mock");
		pb_string(&m, 9, "2024.10");
		break;
	case 3:
		pb_uint(&m, 4, 5); /* EPHEMERAL */
		pb_string(&inner, 1, "PREFECT__FLOW_RUN_ID");
		pb_string(&inner, 2, uuid);
		pb_bytes(&m, 5, inner.p, inner.len);
		break;
	default:
		pb_string(&m, 1, "ap-mock");
		pb_string(&inner, 1, "python");
		pb_string(&inner, 1, "-c");
		pb_string(&inner, 1, "print(42)");
		pb_string(&inner, 3, s->image_id);
		pb_string(&inner, 4, s->secret_id);
		pb_string(&inner, 30, name);
		pb_bytes(&m, 2, inner.p, inner.len);
		break;
	}
	if (m.overflow || inner.overflow)
		return 0;
	s->body[0] = 0;
	for (int i = 0; i < 4; i++)
		s->body[1 + i] = (char)(m.len >> (24 - 8 * i) & 0xff);
	return m.len + 5;
}

/* After request s->step of a run answered: what comes next. */
static enum next next_step(const struct bench *b, struct slot *s)
{
	char state[64];
	switch (b->pool) {
	case POOL_ECS: return NEXT_DONE;
	case POOL_PREFECT_ECS: break; /* prefect_loop follows its runs' chains itself */
	case POOL_CLOUD_RUN: return ++s->step < 3 ? NEXT_SEND : NEXT_DONE;
	case POOL_MODAL:
		if (s->step == 2)
			grpc_answer_string(s, 1, s->image_id, sizeof(s->image_id));
		else if (s->step == 3)
			grpc_answer_string(s, 1, s->secret_id, sizeof(s->secret_id));
		return ++s->step < 5 ? NEXT_SEND : NEXT_DONE;
	case POOL_ACI:
		if (s->step < 2) {
			s->step++;
			return NEXT_SEND;
		}
		answer_field(s, s->step == 2 ? "provisioningState" : "status", state,
			     sizeof(state));
		if (provisioning_over(state) || !s->async_url[0])
			return NEXT_DONE;
		s->step = ACI_POLL_STEP;
		s->due = now_s() +
			 (double)(s->retry_after_ms > 0 ? s->retry_after_ms : ACI_DEFAULT_POLL_MS) /
				 1000.0;
		return NEXT_WAIT;
	}
	return NEXT_DONE;
}

/* The headers every Modal gRPC call carries, as the dispatcher sends them. */
static struct curl_slist *modal_headers(const struct bench *b, struct curl_slist *l)
{
	char h[300];
	l = curl_slist_append(l, "Content-Type: application/grpc");
	l = curl_slist_append(l, "TE: trailers");
	l = curl_slist_append(l, "x-modal-client-type: 9");
	l = curl_slist_append(l, "x-modal-client-version: 1.0.0");
	l = curl_slist_append(l, "x-modal-libmodal-version: modal-go/0.9.0");
	snprintf(h, sizeof(h), "x-modal-token-id: %s", b->modal_id);
	l = curl_slist_append(l, h);
	snprintf(h, sizeof(h), "x-modal-token-secret: %s", b->modal_secret);
	return curl_slist_append(l, h);
}

/* ---- prefect-ecs: a minimal Prefect worker for ECS ---- */

/* A flow run's chain: listed, read, PENDING proposed, RunTask, then
 * infrastructure_pid set. */
enum pf_step { PF_LIST, PF_READ, PF_PROPOSE, PF_RUN_TASK, PF_PATCH };
/* Prefect calls in flight at most: the connections Prefect's client
 * allows itself (httpx.Limits(max_connections=16)), which the
 * dispatcher's source keeps too (PF_CALLS_AT_ONCE in sources/prefect.c). */
#define PF_CALLS_AT_ONCE 16
/* get_scheduled_flow_runs' limit and look-ahead: sources/prefect.c's
 * PF_BATCH, and the lookahead_seconds of the bench's serve. */
#define PF_PAGE		200
#define PF_LOOKAHEAD_MS 10000

/* Just enough JSON to read the answers: p at a value (after blanks), and
 * where it ends, or NULL when it is malformed. */
static const char *json_blank(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *json_string_end(const char *p)
{
	if (*p != '"')
		return NULL;
	for (p++; *p != '"'; p++)
		if (!*p || (*p == '\\' && !*++p))
			return NULL;
	return p + 1;
}

static const char *json_skip(const char *p, int depth)
{
	p = json_blank(p);
	if (*p == '"')
		return json_string_end(p);
	if (*p != '{' && *p != '[') {
		size_t n = strspn(p, "+-.0123456789Eeaflnrstu"); /* numbers, true, false, null */
		return n ? p + n : NULL;
	}
	char close = *p == '{' ? '}' : ']';
	p = json_blank(p + 1);
	if (*p == close)
		return p + 1;
	while (p && depth < 64) {
		if (close == '}') {
			p = json_string_end(json_blank(p));
			p = p ? json_blank(p) : NULL;
			if (!p || *p++ != ':')
				return NULL;
		}
		p = json_skip(p, depth + 1);
		p = p ? json_blank(p) : NULL;
		if (p && *p == close)
			return p + 1;
		if (!p || *p++ != ',')
			return NULL;
	}
	return NULL;
}

/* The value of member key of the object at p (NULL: no such member, or
 * not an object). */
static const char *json_member(const char *p, const char *key)
{
	p = p ? json_blank(p) : NULL;
	if (!p || *p++ != '{')
		return NULL;
	size_t klen = strlen(key);
	for (p = json_blank(p); *p == '"'; p = json_blank(p)) {
		const char *end = json_string_end(p);
		const char *v = end ? json_blank(end) : NULL;
		if (!v || *v++ != ':')
			return NULL;
		if ((size_t)(end - p) == klen + 2 && !strncmp(p + 1, key, klen))
			return json_blank(v);
		p = json_skip(v, 0);
		p = p ? json_blank(p) : NULL;
		if (!p || *p != ',')
			return NULL;
		p++;
	}
	return NULL;
}

/* The string at v into out as it is written (escapes kept: it goes back
 * into JSON); false when v is not a string or it does not fit. */
static bool json_string_copy(const char *v, char *out, size_t n)
{
	const char *end = v ? json_string_end(v) : NULL;
	size_t len = end ? (size_t)(end - v) - 2 : 0;
	if (!end || len >= n)
		return false;
	memcpy(out, v + 1, len);
	out[len] = '\0';
	return true;
}

/* Whether member key of the object in text is the string want. */
static bool json_member_is(const char *text, const char *key, const char *want)
{
	char v[64];
	return json_string_copy(json_member(text, key), v, sizeof(v)) && !strcmp(v, want);
}

/* Fill s->url, s->body and s->hdrs for step s->step of run s->run, as the
 * dispatcher sends them (sources/prefect.c; RunTask: providers/ecs.c with
 * the env and tags render/render.c adds for a flow run). Returns the
 * method. */
static const char *prefect_request(struct bench *b, struct slot *s)
{
	const struct pf_run *r = &b->pf_runs[s->run];
	char h[1200];
	if (s->step == PF_RUN_TASK) {
		char token[64], env[1024], tags[1024];
		size_t k = 0;
		for (const char *c = r->id; *c && k < sizeof(token) - 1; c++)
			if (*c != '-')
				token[k++] = *c;
		token[k] = '\0';
		snprintf(env, sizeof(env),
			 "{\"name\":\"PREFECT_API_URL\",\"value\":\"%s\"},"
			 "{\"name\":\"PREFECT_API_KEY\",\"value\":\"%s\"},"
			 "{\"name\":\"PREFECT__FLOW_RUN_ID\",\"value\":\"%s\"}",
			 b->base, b->pf_key, r->id);
		snprintf(tags, sizeof(tags),
			 "{\"key\":\"prefect.io/flow-run-id\",\"value\":\"%s\"},"
			 "{\"key\":\"prefect.io/flow-run-name\",\"value\":\"%s\"},"
			 "{\"key\":\"prefect.io/work-pool-name\",\"value\":\"%s\"},"
			 "{\"key\":\"prefect.io/deployment-name\",\"value\":\"%s\"},"
			 "{\"key\":\"pushpool:run-id\",\"value\":\"%s\"},"
			 "{\"key\":\"pushpool:store-id\",\"value\":\"%s\"}",
			 r->id, r->name, b->pf_pool, r->deployment, r->id, b->pf_store_id);
		char key[80];
		snprintf(key, sizeof(key), "pp-%s-1", token);
		ecs_run_task(b, s, env, tags, key);
		return "POST";
	}
	snprintf(h, sizeof(h), "Authorization: Bearer %s", b->pf_key);
	s->hdrs = curl_slist_append(s->hdrs, h);
	s->hdrs = curl_slist_append(s->hdrs, "Accept: application/json");
	const char *method = "POST";
	if (s->step == PF_LIST) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		long long ms =
			(long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 + PF_LOOKAHEAD_MS;
		time_t secs = (time_t)(ms / 1000);
		struct tm tm;
		char before[32];
		gmtime_r(&secs, &tm);
		strftime(before, sizeof(before), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(s->url, sizeof(s->url), "%s/work_pools/%s/get_scheduled_flow_runs",
			 b->base, b->pf_pool);
		snprintf(s->body, sizeof(s->body),
			 "{\"scheduled_before\":\"%s.%03lldZ\",\"limit\":%d}", before, ms % 1000,
			 PF_PAGE);
	} else if (s->step == PF_READ) {
		method = "GET";
		snprintf(s->url, sizeof(s->url), "%s/flow_runs/%s", b->base, r->id);
	} else if (s->step == PF_PROPOSE) {
		/* A transition_id as the dispatcher sends (a UUID each). */
		snprintf(s->url, sizeof(s->url), "%s/flow_runs/%s/set_state", b->base, r->id);
		snprintf(s->body, sizeof(s->body),
			 "{\"state\":{\"type\":\"PENDING\",\"message\":\"Claimed by pushpool "
			 "worker %s\",\"state_details\":{\"transition_id\":"
			 "\"%08x-0001-4000-8000-%012x\"}},\"force\":false}",
			 b->pf_worker, b->tag, (unsigned)s->run);
	} else {
		method = "PATCH";
		snprintf(s->url, sizeof(s->url), "%s/flow_runs/%s", b->base, r->id);
		snprintf(s->body, sizeof(s->body), "{\"infrastructure_pid\":\"%s\"}", r->task_arn);
	}
	if (s->body[0])
		s->hdrs = curl_slist_append(s->hdrs, "Content-Type: application/json");
	return method;
}

/* Whether the dispatcher marks request s->step PP_HTTP_RESENDABLE: only
 * Cloud Run's :run (step 2) is not; reads need no mark. */
static bool resendable(const struct bench *b, const struct slot *s)
{
	return !(b->pool == POOL_CLOUD_RUN && s->step == 2);
}

/* Fill s->url, s->body and s->hdrs for request `step` of run `run`; the
 * bodies are what `pushpool render -p POOL --request` shows for the mock
 * config of tools/mock-env.sh. Returns the method. */
static const char *build_request(struct bench *b, struct slot *s)
{
	char uuid[64], name[64];
	run_ids(b, s->run, uuid, sizeof(uuid), name, sizeof(name));
	s->body[0] = '\0';
	s->aws = false;
	const char *method = "GET";
	char auth[2048];
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", b->bearer ? b->bearer : "");
	switch (b->pool) {
	case POOL_CLOUD_RUN:
		s->hdrs = curl_slist_append(s->hdrs, auth);
		if (s->step == 0) {
			method = "POST";
			snprintf(s->url, sizeof(s->url), "%s%s?jobId=%s", b->base, gcp_jobs, name);
			snprintf(s->body, sizeof(s->body),
				 "{\"client\":\"prefect\",\"launchStage\":\"BETA\",\"template\":{"
				 "\"template\":{\"maxRetries\":0,\"timeout\":\"600s\","
				 "\"containers\":[{"
				 "\"env\":[{\"name\":\"PREFECT__FLOW_RUN_ID\",\"value\":\"%s\"}],"
				 "\"image\":\"repo/"
				 "flows:1\",\"resources\":{\"limits\":{\"cpu\":\"1000m\","
				 "\"memory\":\"512Mi\"}},\"command\":[\"prefect\",\"flow-run\","
				 "\"execute\"]}]},"
				 "\"labels\":{\"pushpool-run-id\":\"%s\",\"prefect_io_flow-run-"
				 "id\":\"%s\","
				 "\"prefect_io_flow-run-name\":\"bench\",\"prefect_io_work-pool-"
				 "name\":"
				 "\"cloud-run\"}},\"labels\":{\"pushpool-run-id\":\"%s\","
				 "\"prefect_io_flow-run-id\":\"%s\",\"prefect_io_flow-run-name\":"
				 "\"bench\","
				 "\"prefect_io_work-pool-name\":\"cloud-run\"}}",
				 uuid, uuid, uuid, uuid, uuid);
		} else if (s->step == 1) {
			snprintf(s->url, sizeof(s->url), "%s%s/%s", b->base, gcp_jobs, name);
		} else {
			method = "POST";
			snprintf(s->url, sizeof(s->url), "%s%s/%s:run", b->base, gcp_jobs, name);
			snprintf(s->body, sizeof(s->body), "{}");
		}
		s->hdrs = curl_slist_append(s->hdrs, "Content-Type: application/json");
		break;
	case POOL_ECS: {
		method = "POST";
		char env[128], tags[512];
		snprintf(env, sizeof(env), "{\"name\":\"PREFECT__FLOW_RUN_ID\",\"value\":\"%s\"}",
			 uuid);
		snprintf(tags, sizeof(tags),
			 "{\"key\":\"prefect.io/flow-run-id\",\"value\":\"%s\"},"
			 "{\"key\":\"prefect.io/flow-run-name\",\"value\":\"bench\"},"
			 "{\"key\":\"prefect.io/work-pool-name\",\"value\":\"ecs\"},"
			 "{\"key\":\"pushpool:run-id\",\"value\":\"%s\"}",
			 uuid, uuid);
		ecs_run_task(b, s, env, tags, name);
		break;
	}
	case POOL_ACI: {
		s->hdrs = curl_slist_append(s->hdrs, auth);
		const char *groups = "/resourceGroups/rg-flows/providers/"
				     "Microsoft.ContainerInstance/containerGroups";
		if (s->step == ACI_POLL_STEP) {
			snprintf(s->url, sizeof(s->url), "%s", s->async_url);
		} else if (s->step == 0) {
			s->async_url[0] = '\0';
			snprintf(s->url, sizeof(s->url),
				 "%s%s/resourcegroups/rg-flows?api-version=2021-04-01", b->base,
				 aci_sub);
		} else if (s->step == 1) {
			snprintf(s->url, sizeof(s->url), "%s%s%s/%s?api-version=2023-05-01",
				 b->base, aci_sub, groups, name);
		} else {
			method = "PUT";
			snprintf(s->url, sizeof(s->url), "%s%s%s/%s?api-version=2023-05-01",
				 b->base, aci_sub, groups, name);
			snprintf(
				s->body, sizeof(s->body),
				"{\"properties\":{\"containers\":[{\"name\":\"%s\",\"properties\":{"
				"\"image\":\"repo/flows:1\",\"resources\":{\"requests\":{\"cpu\":1,"
				"\"memoryInGB\":1}},\"environmentVariables\":[{\"name\":"
				"\"PREFECT__FLOW_RUN_ID\",\"value\":\"%s\"}],\"command\":["
				"\"/opt/prefect/"
				"entrypoint.sh\",\"prefect\",\"flow-run\",\"execute\"]}}],"
				"\"osType\":\"Linux\",\"restartPolicy\":\"Never\"},\"tags\":{"
				"\"prefect.io_flow-run-id\":\"%s\",\"prefect.io_"
				"flow-run-name\":\"bench\","
				"\"prefect.io_work-pool-name\":\"aci\",\"pushpool-run-id\":\"%s\"},"
				"\"location\":\"%s\"}",
				name, uuid, uuid, uuid, b->location);
			s->hdrs = curl_slist_append(s->hdrs, "Content-Type: application/json");
		}
		break;
	}
	case POOL_MODAL: {
		char h[1200];
		method = "POST";
		snprintf(s->url, sizeof(s->url), "%s/modal.client.ModalClient/%s", b->base,
			 modal_rpcs[s->step]);
		s->body_len = modal_message(s, uuid, name);
		s->hdrs = modal_headers(b, s->hdrs);
		s->hdrs = curl_slist_append(s->hdrs, "grpc-timeout: 30000m");
		snprintf(h, sizeof(h), "x-modal-auth-token: %s", b->modal_token);
		s->hdrs = curl_slist_append(s->hdrs, h);
		if (s->step >= 1) {
			/* UUID-shaped, one per run and call, as the provider derives it */
			snprintf(h, sizeof(h), "x-idempotency-key: %08x-%04x-4000-8000-%012x",
				 b->tag, (unsigned)s->step, (unsigned)s->run);
			s->hdrs = curl_slist_append(s->hdrs, h);
		}
		break;
	}
	case POOL_PREFECT_ECS: method = prefect_request(b, s); break;
	}
	if (b->pool != POOL_MODAL)
		s->body_len = strlen(s->body);
	/* curl's SigV4 would sign the empty "Expect:" it never sends. */
	if (!s->aws)
		s->hdrs = curl_slist_append(s->hdrs, "Expect:");
	return method;
}

/* Modal: curl found no connection for a joiner and asks for a socket. */
static curl_socket_t refuse_socket(void *clientp, curlsocktype purpose,
				   struct curl_sockaddr *address)
{
	(void)purpose;
	(void)address;
	((struct slot *)clientp)->rejoin = true;
	return CURL_SOCKET_BAD;
}

/* Modal: an opener's connection is HTTP/2 once its request goes out; a
 * joiner curl put on a connection not known so stops before sending (as
 * lib/http.c's before_send). */
static int h2c_prereq(void *clientp, char *primary_ip, char *local_ip, int primary_port,
		      int local_port)
{
	(void)primary_ip;
	(void)local_ip;
	(void)primary_port;
	struct slot *s = clientp;
	struct bench *b = s->bench;
	size_t n = b->h2c_next < 256 ? b->h2c_next : 256;
	if (s->h2c_open) {
		b->h2c_ports[b->h2c_next++ % 256] = local_port;
		return CURL_PREREQFUNC_OK;
	}
	for (size_t i = 0; i < n; i++)
		if (b->h2c_ports[i] == local_port)
			return CURL_PREREQFUNC_OK;
	s->rejoin = true;
	return CURL_PREREQFUNC_ABORT;
}

static void setup_easy(struct bench *b, struct slot *s, const char *method)
{
	CURL *e = s->easy;
	curl_easy_reset(e);
	s->resp_len = 0;
	s->resp_overflow = false;
	s->retry_after_ms = 0;
	s->due = 0;
	s->grpc_status[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, s->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->hdrs);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(e, CURLOPT_PRIVATE, s);
	if (s->aws) {
		curl_easy_setopt(e, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:ecs");
		curl_easy_setopt(e, CURLOPT_USERPWD, b->aws_key);
	}
	/* h2c as lib/http.c does it (h2c_policy there): a call joins a
	 * connection that is up (HTTP/2 without prior knowledge, PIPEWAIT),
	 * and when curl has none for it and asks for a socket, it is refused
	 * and goes again opening a fresh prior-knowledge connection.
	 * --fresh-connect: a connection of its own per call. */
	if (b->pool == POOL_MODAL) {
		s->rejoin = false;
		s->bench = b;
		if (b->conn != CONN_FRESH_NON_GET) {
			curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, h2c_prereq);
			curl_easy_setopt(e, CURLOPT_PREREQDATA, s);
		}
		if (b->conn == CONN_FRESH_NON_GET || s->h2c_open) {
			curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
					 (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
			curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
		} else {
			s->joins++;
			curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_0);
			curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
			curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, refuse_socket);
			curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, s);
		}
		if (b->conn == CONN_FRESH_NON_GET)
			curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	}
	if (strcmp(method, "GET")) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, s->body);
		if (b->pool != POOL_MODAL && (b->conn == CONN_FRESH_NON_GET ||
					      (b->conn == CONN_DISPATCHER && !resendable(b, s))))
			curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
}

static void start_step(struct bench *b, CURLM *multi, struct slot *s)
{
	curl_slist_free_all(s->hdrs);
	s->hdrs = NULL;
	s->h2c_open = false;
	s->joins = 0;
	setup_easy(b, s, build_request(b, s));
	curl_multi_add_handle(multi, s->easy);
}

/* A Modal joiner curl refused a socket (nothing sent): as lib/http.c's
 * h2c_again, join again while an opener is under way, else open. */
static void h2c_again(struct bench *b, CURLM *multi, struct slot *s)
{
	s->h2c_open = !(b->h2c_opening > 0 && s->joins < 2);
	setup_easy(b, s, "POST");
	if (s->h2c_open)
		b->h2c_opening++;
	curl_multi_add_handle(multi, s->easy);
}

static void note_error(struct bench *b, const char *url, long status, const char *what)
{
	if (!b->errors++)
		snprintf(b->first_error, sizeof(b->first_error), "%s: HTTP %ld: %.300s", url,
			 status, what ? what : "");
}

/* The name of deployment id, into out: read once a deployment (a blocking
 * GET, as the dispatcher reads it once and caches it). 0, or -1 when the
 * read fails (noted). */
static int prefect_deployment(struct bench *b, const char *id, char *out, size_t n)
{
	if (strcmp(b->pf_dep_id, id)) {
		struct slot d = {.run = -1};
		char h[1200];
		snprintf(h, sizeof(h), "Authorization: Bearer %s", b->pf_key);
		d.hdrs = curl_slist_append(NULL, h);
		d.hdrs = curl_slist_append(d.hdrs, "Accept: application/json");
		snprintf(d.url, sizeof(d.url), "%s/deployments/%s", b->base, id);
		long status = 0;
		CURLcode cc = CURLE_FAILED_INIT;
		if ((d.easy = curl_easy_init())) {
			setup_easy(b, &d, "GET");
			cc = curl_easy_perform(d.easy);
			curl_easy_getinfo(d.easy, CURLINFO_RESPONSE_CODE, &status);
			curl_easy_cleanup(d.easy);
		}
		curl_slist_free_all(d.hdrs);
		bool ok = cc == CURLE_OK && status == 200 &&
			  json_string_copy(json_member(d.resp, "name"), b->pf_dep_name,
					   sizeof(b->pf_dep_name));
		if (!ok)
			note_error(b, d.url, status, d.resp ? d.resp : curl_easy_strerror(cc));
		free(d.resp);
		if (!ok)
			return -1;
		snprintf(b->pf_dep_id, sizeof(b->pf_dep_id), "%s", id);
	}
	snprintf(out, n, "%s", b->pf_dep_name);
	return 0;
}

/* Runs waiting for a call, oldest first. */
struct fifo {
	int *v;
	int cap, head, len;
};

static void fifo_push(struct fifo *q, int x)
{
	q->v[(q->head + q->len++) % q->cap] = x;
}

static int fifo_pop(struct fifo *q)
{
	int x = q->v[q->head];
	q->head = (q->head + 1) % q->cap;
	q->len--;
	return x;
}

/* A listing's answer, [{"flow_run": {"id": ...}, ...}, ...]: the ids of
 * its first `room` items appended to b->pf_runs from *listed on. Returns
 * how many, or -1 when the answer is not such a list. */
static int prefect_listed(struct bench *b, const char *text, int *listed, int room)
{
	const char *p = text ? json_blank(text) : NULL;
	int n = 0;
	if (!p || *p++ != '[')
		return -1;
	for (p = json_blank(p); *p != ']';) {
		if (n < room) {
			struct pf_run *r = &b->pf_runs[*listed + n++];
			if (!json_string_copy(json_member(json_member(p, "flow_run"), "id"), r->id,
					      sizeof(r->id)))
				return -1;
			r->step = PF_READ;
		}
		p = json_skip(p, 0);
		p = p ? json_blank(p) : NULL;
		if (!p || (*p != ',' && *p != ']'))
			return -1;
		if (*p == ',')
			p = json_blank(p + 1);
	}
	if (*json_blank(p + 1))
		return -1;
	*listed += n;
	return n;
}

/* A flow run's call came back: whether its chain goes on, what it learnt
 * kept in its pf_run; a failure is noted. */
static bool prefect_answered(struct bench *b, struct slot *s, CURLcode cc, long status)
{
	struct pf_run *r = &b->pf_runs[s->run];
	const char *what = s->resp;
	char dep[64];
	if (cc != CURLE_OK) {
		what = curl_easy_strerror(cc);
	} else if (status / 100 != 2) {
		/* said below, with the answer */
	} else if (s->step == PF_READ) {
		/* Still SCHEDULED (a listing may be stale); its name and its
		 * deployment's for the task's tags. */
		if (!json_member_is(s->resp, "state_type", "SCHEDULED"))
			what = "not SCHEDULED";
		else if (!json_string_copy(json_member(s->resp, "name"), r->name,
					   sizeof(r->name)) ||
			 !json_string_copy(json_member(s->resp, "deployment_id"), dep, sizeof(dep)))
			what = "a flow run without a name or deployment_id";
		else
			return !prefect_deployment(b, dep, r->deployment, sizeof(r->deployment));
	} else if (s->step == PF_PROPOSE) {
		if (json_member_is(s->resp, "status", "ACCEPT"))
			return true;
	} else if (s->step == PF_RUN_TASK) {
		answer_field(s, "taskArn", r->task_arn, sizeof(r->task_arn));
		if (r->task_arn[0])
			return true;
	} else {
		return true;
	}
	note_error(b, s->url, status, what);
	return false;
}

/* prefect-ecs: list the pool's scheduled flow runs and take each through
 * its chain, at most PF_CALLS_AT_ONCE Prefect calls (slots[0] on) and conc
 * RunTasks (the slots after those) in flight; list again once every run
 * of the page is claimed (a claimed run is PENDING and not listed again),
 * until `runs` are taken. A run whose call fails ends there, an error; a
 * listing that fails, or finds nothing while runs are still wanted, ends
 * the bench (-1). */
static int prefect_loop(struct bench *b, CURLM *multi, struct slot *slots, int conc, int runs,
			int *requests)
{
	struct slot *pf_slots = slots, *ecs_slots = slots + PF_CALLS_AT_ONCE;
	struct fifo calls = {.v = calloc((size_t)runs, sizeof(int)), .cap = runs};
	struct fifo tasks = {.v = calloc((size_t)runs, sizeof(int)), .cap = runs};
	int *idle_pf = calloc(PF_CALLS_AT_ONCE, sizeof(int)), npf = 0;
	int *idle_ecs = calloc((size_t)conc, sizeof(int)), necs = 0;
	int listed = 0, claiming = 0, done = 0, rc = 0;
	bool listing = false;
	if (!calls.v || !tasks.v || !idle_pf || !idle_ecs)
		rc = -1;
	for (int i = 0; !rc && i < PF_CALLS_AT_ONCE; i++)
		idle_pf[npf++] = i;
	for (int i = 0; !rc && i < conc; i++)
		idle_ecs[necs++] = i;
	while (!rc && done < runs) {
		int running = 0, left = 0;
		curl_multi_perform(multi, &running);
		CURLMsg *msg;
		while (!rc && (msg = curl_multi_info_read(multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct slot *s = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			CURLcode cc = msg->data.result;
			curl_multi_remove_handle(multi, s->easy);
			long status = 0;
			curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
			(*requests)++;
			if (s >= ecs_slots)
				idle_ecs[necs++] = (int)(s - ecs_slots);
			else
				idle_pf[npf++] = (int)(s - pf_slots);
			if (s->step == PF_LIST) {
				listing = false;
				int n = cc == CURLE_OK && status == 200
						? prefect_listed(b, s->resp, &listed, runs - listed)
						: -1;
				if (n <= 0) {
					fprintf(stderr,
						"baseline: %s: HTTP %ld, %s (%d of %d runs listed "
						"so far): %.300s\n",
						s->url, status,
						n ? "not a list of flow runs"
						  : "no flow run listed",
						listed, runs,
						cc == CURLE_OK && s->resp ? s->resp
									  : curl_easy_strerror(cc));
					rc = -1;
				}
				for (int i = listed - (n > 0 ? n : 0); i < listed; i++)
					fifo_push(&calls, i);
				claiming += n > 0 ? n : 0;
				continue;
			}
			struct pf_run *r = &b->pf_runs[s->run];
			bool ok = prefect_answered(b, s, cc, status);
			if (r->step == PF_PROPOSE || (!ok && r->step == PF_READ))
				claiming--;
			if (!ok || r->step == PF_PATCH) {
				done++;
				continue;
			}
			r->step++;
			fifo_push(r->step == PF_RUN_TASK ? &tasks : &calls, s->run);
		}
		if (!rc && !listing && !claiming && listed < runs && npf) {
			struct slot *s = &pf_slots[idle_pf[--npf]];
			s->run = -1;
			s->step = PF_LIST;
			listing = true;
			start_step(b, multi, s);
		}
		while (!rc && npf && calls.len) {
			struct slot *s = &pf_slots[idle_pf[--npf]];
			s->run = fifo_pop(&calls);
			s->step = (int)b->pf_runs[s->run].step;
			start_step(b, multi, s);
		}
		while (!rc && necs && tasks.len) {
			struct slot *s = &ecs_slots[idle_ecs[--necs]];
			s->run = fifo_pop(&tasks);
			s->step = PF_RUN_TASK;
			start_step(b, multi, s);
		}
		if (!rc && done < runs)
			curl_multi_poll(multi, NULL, 0, 100, NULL);
	}
	free(calls.v);
	free(tasks.v);
	free(idle_pf);
	free(idle_ecs);
	return rc;
}

/* A blocking single request before the timed part (ECS task definition,
 * ACI location): the dispatcher does each once per pool, too. */
/* Modal: the auth token every call carries, from AuthTokenGet. */
static int modal_auth(struct bench *b, struct slot *s)
{
	snprintf(s->url, sizeof(s->url), "%s/modal.client.ModalClient/AuthTokenGet", b->base);
	memset(s->body, 0, 5); /* an empty AuthTokenGetRequest */
	s->body_len = 5;
	s->hdrs = modal_headers(b, NULL);
	s->h2c_open = true; /* alone: no connection to join */
	setup_easy(b, s, "POST");
	CURLcode cc = curl_easy_perform(s->easy);
	curl_slist_free_all(s->hdrs);
	s->hdrs = NULL;
	grpc_answer_string(s, 1, b->modal_token, sizeof(b->modal_token));
	if (cc != CURLE_OK || strcmp(s->grpc_status, "0") || !b->modal_token[0]) {
		fprintf(stderr, "baseline: %s: %s, grpc-status %s\n", s->url,
			curl_easy_strerror(cc), s->grpc_status[0] ? s->grpc_status : "none");
		return -1;
	}
	return 0;
}

static int prepare(struct bench *b, struct slot *s)
{
	if (b->pool == POOL_MODAL)
		return modal_auth(b, s);
	if (b->pool == POOL_CLOUD_RUN)
		return 0;
	char body[1024];
	const char *method = "GET";
	bool ecs = b->pool == POOL_ECS || b->pool == POOL_PREFECT_ECS;
	if (ecs) {
		method = "POST";
		s->aws = true;
		snprintf(s->url, sizeof(s->url), "%s", b->ecs_url);
		snprintf(body, sizeof(body), "X-Amz-Target: %sRegisterTaskDefinition", ecs_target);
		s->hdrs = curl_slist_append(s->hdrs, body);
		s->hdrs = curl_slist_append(s->hdrs, "Content-Type: application/x-amz-json-1.1");
		snprintf(s->body, sizeof(s->body),
			 "{\"containerDefinitions\":[{\"image\":\"repo/"
			 "flows:1\",\"name\":\"prefect\"}],"
			 "\"cpu\":\"1024\",\"memory\":\"2048\",\"networkMode\":\"awsvpc\","
			 "\"requiresCompatibilities\":[\"FARGATE\"],\"family\":\"pushpool-bench-%"
			 "08x\"}",
			 b->tag);
		s->body_len = strlen(s->body);
	} else {
		snprintf(body, sizeof(body), "Authorization: Bearer %s",
			 b->bearer ? b->bearer : "");
		s->hdrs = curl_slist_append(NULL, body);
		snprintf(s->url, sizeof(s->url),
			 "%s%s/resourcegroups/rg-flows?api-version=2021-04-01", b->base, aci_sub);
	}
	setup_easy(b, s, method);
	CURLcode cc = curl_easy_perform(s->easy);
	long status = 0;
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(s->hdrs);
	s->hdrs = NULL;
	s->aws = false;
	const char *key = ecs ? "\"taskDefinitionArn\":\"" : "\"location\":\"";
	const char *v = cc == CURLE_OK && status == 200 && s->resp ? strstr(s->resp, key) : NULL;
	char *dst = ecs ? b->task_def_arn : b->location;
	size_t cap = ecs ? sizeof(b->task_def_arn) : sizeof(b->location);
	size_t n = v ? strcspn(v + strlen(key), "\"") : 0;
	if (!v || n >= cap) {
		fprintf(stderr, "baseline: %s: HTTP %ld (%s): %.300s\n", s->url, status,
			curl_easy_strerror(cc), s->resp ? s->resp : "");
		return -1;
	}
	memcpy(dst, v + strlen(key), n);
	dst[n] = '\0';
	return 0;
}

static long expected_status(const struct bench *b, int step)
{
	/* ACI: the dispatcher first looks the group up by name (adoption) and
	 * gets 404; the create answers 201. */
	if (b->pool == POOL_ACI && step == 1)
		return 404;
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: baseline cloud-run|ecs|aci|modal|prefect-ecs BASE_URL RUNS "
			"CONCURRENCY [--fresh-connect|--reuse-all|--show] "
			"[--work-us=N [--work-thread]]\n");
	return 64;
}

/* --show: each JSON body run 0's request chain sends, a line each, as the
 * method, a tab and the body; nothing is sent. tests/bench/bench.sh checks
 * that they carry the members of the dispatcher's own requests: a body
 * that drifted from the providers' would cost the mock less to check and
 * store, and flatter the baseline. */
static int show_bodies(struct bench *b)
{
	/* cloud-run, aci: 3 before polls; prefect-ecs: its listing too */
	int steps = b->pool == POOL_ECS ? 1 : b->pool == POOL_PREFECT_ECS ? PF_PATCH + 1 : 3;
	struct slot s = {.run = 0, .bench = b};
	for (s.step = 0; s.step < steps; s.step++) {
		const char *method = build_request(b, &s);
		if (s.body[0] == '{' && strcmp(s.body, "{}"))
			printf("%s\t%s\n", method, s.body);
		curl_slist_free_all(s.hdrs);
		s.hdrs = NULL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5)
		return usage();
	struct bench b = {.base = argv[2], .conn = CONN_DISPATCHER};
	struct work w = {.mu = PTHREAD_MUTEX_INITIALIZER, .room = PTHREAD_COND_INITIALIZER};
	bool show = false;
	for (int i = 5; i < argc; i++) {
		char *end;
		if (!strcmp(argv[i], "--fresh-connect") && b.conn == CONN_DISPATCHER)
			b.conn = CONN_FRESH_NON_GET;
		else if (!strcmp(argv[i], "--reuse-all") && b.conn == CONN_DISPATCHER)
			b.conn = CONN_REUSE_ALL;
		else if (!strcmp(argv[i], "--show"))
			show = true;
		else if (!strncmp(argv[i], "--work-us=", 10)) {
			w.us = strtol(argv[i] + 10, &end, 10);
			if (w.us <= 0 || *end || w.us >= 1000000)
				return usage();
		} else if (!strcmp(argv[i], "--work-thread"))
			w.threaded = true;
		else
			return usage();
	}
	if ((show && (b.conn != CONN_DISPATCHER || w.us)) || (w.threaded && !w.us))
		return usage();
	if (!strcmp(argv[1], "cloud-run"))
		b.pool = POOL_CLOUD_RUN;
	else if (!strcmp(argv[1], "ecs"))
		b.pool = POOL_ECS;
	else if (!strcmp(argv[1], "aci"))
		b.pool = POOL_ACI;
	else if (!strcmp(argv[1], "modal"))
		b.pool = POOL_MODAL;
	else if (!strcmp(argv[1], "prefect-ecs"))
		b.pool = POOL_PREFECT_ECS;
	else
		return usage();
	bool prefect = b.pool == POOL_PREFECT_ECS;
	int runs = atoi(argv[3]), conc = atoi(argv[4]);
	if (runs < 1 || conc < 1 || conc > 4096 || (prefect && w.us))
		return usage();
	const char *ecs_url = prefect ? getenv("BENCH_ECS_URL") : NULL;
	if (!prefect)
		snprintf(b.ecs_url, sizeof(b.ecs_url), "%s/aws/ecs/", b.base);
	else if (ecs_url && strlen(ecs_url) < sizeof(b.ecs_url))
		snprintf(b.ecs_url, sizeof(b.ecs_url), "%s", ecs_url);
	/* prefect-ecs: named as the dispatcher names its worker and store, so
	 * the bodies that carry them are as long. */
	b.pf_key = getenv("BENCH_PREFECT_KEY");
	b.pf_pool = getenv("BENCH_PREFECT_POOL");
	char host[64] = "localhost";
	gethostname(host, sizeof(host) - 1);
	snprintf(b.pf_worker, sizeof(b.pf_worker), "pushpool-%s-%ld", host, (long)getpid());
	if (prefect && !(b.pf_runs = calloc((size_t)runs, sizeof(*b.pf_runs))))
		return 70;
	if (show && prefect) {
		/* run 0 as its read would leave it */
		char name[64];
		run_ids(&b, 0, b.pf_runs[0].id, sizeof(b.pf_runs[0].id), name, sizeof(name));
		snprintf(b.pf_runs[0].name, sizeof(b.pf_runs[0].name), "bench");
		snprintf(b.pf_runs[0].deployment, sizeof(b.pf_runs[0].deployment), "bench");
		b.pf_key = b.pf_key ? b.pf_key : "";
		b.pf_pool = b.pf_pool ? b.pf_pool : "";
	}
	if (show) {
		int shown = b.pool == POOL_MODAL ? usage() : show_bodies(&b);
		free(b.pf_runs);
		return shown;
	}
	b.bearer = getenv("BENCH_BEARER");
	b.aws_key = getenv("BENCH_AWS_KEY");
	const char *modal = getenv("BENCH_MODAL_TOKEN");
	const char *colon = modal ? strchr(modal, ':') : NULL;
	if (colon && (size_t)(colon - modal) < sizeof(b.modal_id) &&
	    strlen(colon + 1) < sizeof(b.modal_secret)) {
		snprintf(b.modal_id, sizeof(b.modal_id), "%.*s", (int)(colon - modal), modal);
		snprintf(b.modal_secret, sizeof(b.modal_secret), "%s", colon + 1);
	}
	const char *need = b.pool == POOL_ECS ? (b.aws_key ? NULL : "BENCH_AWS_KEY")
			   : b.pool == POOL_MODAL
				   ? (b.modal_id[0] ? NULL : "BENCH_MODAL_TOKEN=ID:SECRET")
				   : (b.bearer ? NULL : "BENCH_BEARER");
	if (prefect && !b.aws_key)
		need = "BENCH_AWS_KEY";
	else if (prefect && !b.ecs_url[0])
		need = "BENCH_ECS_URL";
	else if (prefect && !b.pf_pool)
		need = "BENCH_PREFECT_POOL";
	else if (prefect)
		need = !b.pf_key || strlen(b.pf_key) > 512 ? "BENCH_PREFECT_KEY (512 bytes at most)"
							   : NULL;
	if (need) {
		fprintf(stderr, "baseline: set %s\n", need);
		free(b.pf_runs);
		return 64;
	}
	struct timespec seed;
	clock_gettime(CLOCK_REALTIME, &seed);
	b.tag = (unsigned)(seed.tv_nsec ^ (seed.tv_sec << 8));
	snprintf(b.pf_store_id, sizeof(b.pf_store_id), "%08x-0000-4000-8000-000000000000", b.tag);
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return 70;
	CURLM *multi = curl_multi_init();
	/* prefect-ecs: its Prefect calls' slots, then conc for RunTask */
	int nslots = prefect ? PF_CALLS_AT_ONCE + conc : conc;
	struct slot *slots = calloc((size_t)nslots, sizeof(*slots));
	int rc = multi && slots ? 0 : 70;
	for (int i = 0; !rc && i < nslots; i++) {
		slots[i].run = -1;
		if (!(slots[i].easy = curl_easy_init()))
			rc = 70;
	}
	/* As lib/http.c: up to 256 connections to the one host. */
	if (!rc) {
		curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 256L);
		curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 256L);
		curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	}
	if (!rc && prepare(&b, &slots[0]))
		rc = 69;
	/* Slots whose run is done, or never began: the next runs start on
	 * them once their work is ready. */
	int *idle = calloc((size_t)conc, sizeof(*idle));
	int nidle = 0;
	for (int i = 0; i < conc; i++)
		if (idle)
			idle[nidle++] = conc - 1 - i;
	w.runs = runs;
	w.window = conc;
	if (!rc && !idle)
		rc = 70;
	pthread_t worker;
	bool worker_up = false;
	if (!rc && w.threaded) {
		if (pipe(w.wake) || fcntl(w.wake[0], F_SETFL, O_NONBLOCK) ||
		    pthread_create(&worker, NULL, work_ahead, &w))
			rc = 71;
		else
			worker_up = true;
	}
	int next_run = 0, done = 0, requests = 0;
	double t0 = now_s();
	if (!rc && prefect && prefect_loop(&b, multi, slots, conc, runs, &requests))
		rc = 69;
	while (!rc && !prefect && done < runs) {
		int running = 0, left = 0;
		curl_multi_perform(multi, &running);
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct slot *s = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			CURLcode cc = msg->data.result;
			curl_multi_remove_handle(multi, s->easy);
			if (s->h2c_open)
				b.h2c_opening--;
			if (cc != CURLE_OK && s->rejoin) {
				h2c_again(&b, multi, s);
				continue;
			}
			long status = 0, want = expected_status(&b, s->step);
			curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
			requests++;
			if (cc != CURLE_OK)
				note_error(&b, s->url, status, curl_easy_strerror(cc));
			else if (want ? status != want : status / 100 != 2)
				note_error(&b, s->url, status, s->resp);
			else if (b.pool == POOL_MODAL &&
				 strcmp(s->grpc_status, s->step == 0 ? "5" : "0"))
				/* the lookup of a new name is NOT_FOUND (5) */
				note_error(&b, s->url, status,
					   s->grpc_status[0] ? "unexpected grpc-status"
							     : "no grpc-status");
			enum next next = next_step(&b, s);
			if (next == NEXT_SEND)
				start_step(&b, multi, s);
			if (next != NEXT_DONE)
				continue;
			done++;
			idle[nidle++] = (int)(s - slots);
		}
		while (!rc && nidle && next_run < runs && work_ready(&w, next_run)) {
			struct slot *s = &slots[idle[--nidle]];
			s->run = next_run++;
			s->step = 0;
			work_started(&w);
			start_step(&b, multi, s);
		}
		double now = now_s(), next_due = now + 0.1;
		for (int i = 0; i < conc; i++) {
			if (slots[i].due <= 0)
				continue;
			if (slots[i].due <= now)
				start_step(&b, multi, &slots[i]);
			else if (slots[i].due < next_due)
				next_due = slots[i].due;
		}
		if (done < runs && w.threaded) {
			struct curl_waitfd wake = {.fd = w.wake[0], .events = CURL_WAIT_POLLIN};
			curl_multi_poll(multi, &wake, 1, (int)((next_due - now) * 1000) + 1, NULL);
			char drain[64];
			while (read(w.wake[0], drain, sizeof(drain)) > 0)
				;
		} else if (done < runs) {
			curl_multi_poll(multi, NULL, 0, (int)((next_due - now) * 1000) + 1, NULL);
		}
	}
	double secs = now_s() - t0;
	if (worker_up) {
		pthread_join(worker, NULL);
		close(w.wake[0]);
		close(w.wake[1]);
	}
	free(idle);
	/* The process's CPU, all threads, start to end: what tests/bench/pair.sh
	 * sets beside the dispatcher's (its /proc schedstat, also whole). */
	struct rusage ru = {0};
	getrusage(RUSAGE_SELF, &ru);
	double cpu_s = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	if (!rc)
		printf("{\"pool\":\"%s\",\"runs\":%d,\"concurrency\":%d,\"requests\":%d,"
		       "\"seconds\":%.4f,\"runs_per_s\":%.2f,\"errors\":%d,\"connections\":\"%s\","
		       "\"work_us\":%ld,\"work_thread\":%s,\"cpu_s\":%.4f}\n",
		       argv[1], runs, conc, requests, secs, runs / secs, b.errors,
		       b.conn == CONN_DISPATCHER      ? "dispatcher"
		       : b.conn == CONN_FRESH_NON_GET ? "fresh-non-get"
						      : "reuse-all",
		       w.us, w.threaded ? "true" : "false", cpu_s);
	if (b.errors)
		fprintf(stderr, "baseline: %d failed request(s); first: %s\n", b.errors,
			b.first_error);
	for (int i = 0; slots && i < nslots; i++) {
		if (slots[i].easy)
			curl_easy_cleanup(slots[i].easy);
		curl_slist_free_all(slots[i].hdrs);
		free(slots[i].resp);
	}
	free(slots);
	free(b.pf_runs);
	if (multi)
		curl_multi_cleanup(multi);
	curl_global_cleanup();
	return rc ? rc : b.errors ? 1 : 0;
}
