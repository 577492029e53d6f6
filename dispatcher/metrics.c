#include "dispatcher/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <microhttpd.h>

#include "lib/buf.h"
#include "lib/log.h"

/* Probes must still get through while idle or slow clients hold
 * connections: room for many at once (served by poll, so descriptors above
 * FD_SETSIZE work), a short idle timeout that frees a slot held by a client
 * that sends nothing, and a thread per connection, so a request that waits
 * on a cloud (a run's log on the status page) holds only itself, never a
 * scrape or a health probe. */
enum {
	METRICS_MAX_CONNECTIONS = 512,
	METRICS_IDLE_TIMEOUT_S = 5,
	/* libmicrohttpd's own messages (a flood of refused connections)
	 * reach our log at most this often; the rest are counted. */
	METRICS_LOG_INTERVAL_S = 10,
	METRICS_LOG_MSG_MAX = 256,
	/* Pools the swept-objects counter keeps apart; more share "(other)". */
	METRICS_SWEPT_POOLS = 64,
	METRICS_POOL_NAME_MAX = 64,
	/* Largest answer of the page handler (a run's events, a list). */
	METRICS_PAGE_MAX = 4 << 20,
	/* Buckets of the submission delay histogram, +Inf included. */
	METRICS_SUBMISSION_BUCKETS = 12,
};

struct swept_count {
	char pool[METRICS_POOL_NAME_MAX];
	unsigned long n;
};

struct pp_metrics {
	struct MHD_Daemon *daemon;
	pthread_mutex_t mu;
	struct pp_metrics_snapshot snap;
	time_t published; /* wall seconds of the last snapshot: liveness */
	time_t started;
	unsigned long submissions, retries, adopted, store_errors;
	unsigned long start_retries, max_runtime_cancels, lost_claim_releases;
	unsigned long submission_buckets[METRICS_SUBMISSION_BUCKETS];
	double submission_sum;
	unsigned long terminal[PP_ST_COUNT];
	int port;
	atomic_bool starting;		       /* MHD messages explain a failed start */
	char start_error[METRICS_LOG_MSG_MAX]; /* the last of them */
	time_t log_last;		       /* monotonic seconds of the last line */
	unsigned long log_suppressed;	       /* lines dropped since then */
	struct swept_count swept[METRICS_SWEPT_POOLS];
	int nswept;
	/* Activity per minute, a ring indexed by minute modulo its size. */
	struct pp_metrics_minute activity[PP_METRICS_ACTIVITY_MINUTES];
	pp_metrics_page_fn page;
	void *page_ud;
};

/* The ring slot of the current minute, reset when it last held an older
 * minute. Call with mu held. */
static struct pp_metrics_minute *this_minute(struct pp_metrics *m)
{
	int64_t minute = (int64_t)time(NULL) / 60;
	struct pp_metrics_minute *a = &m->activity[minute % PP_METRICS_ACTIVITY_MINUTES];
	if (a->minute != minute) {
		memset(a, 0, sizeof(*a));
		a->minute = minute;
	}
	return a;
}

/* A label value as the text format wants it: \\, \" and \n escaped. */
static int put_label_value(struct pp_buf *b, const char *v)
{
	int rc = 0;
	for (; *v && !rc; v++)
		rc = *v == '\\'	  ? pp_buf_puts(b, "\\\\")
		     : *v == '"'  ? pp_buf_puts(b, "\\\"")
		     : *v == '\n' ? pp_buf_puts(b, "\\n")
				  : pp_buf_printf(b, "%c", *v);
	return rc;
}

static const double bucket_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
/* Due to accepted by the cloud: from a prompt submission to a long backlog. */
static const double submission_bounds[METRICS_SUBMISSION_BUCKETS - 1] = {
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800};

static int put_counter_header(struct pp_buf *b, const char *name, const char *type,
			      const char *help)
{
	return pp_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One line per provider of one of its counters. */
static int put_by_provider(struct pp_buf *b, const char *name, const char *help,
			   const struct pp_metrics_snapshot *s, size_t field)
{
	int rc = put_counter_header(b, name, "counter", help);
	for (size_t i = 0; i < s->nproviders && !rc; i++) {
		unsigned long v;
		memcpy(&v, (const char *)&s->providers[i].s + field, sizeof(v));
		rc = pp_buf_printf(b, "%s{provider=\"", name) ?:
		     put_label_value(b, s->providers[i].provider) ?: pp_buf_printf(b, "\"} %lu\n", v);
	}
	return rc;
}

static int put_latency(struct pp_buf *b, const char *provider, const struct pp_exec_stats *e)
{
	unsigned long cum = 0;
	int rc = 0;
	for (size_t i = 0; i < sizeof(bucket_bounds) / sizeof(bucket_bounds[0]) && !rc; i++) {
		cum += e->latency_buckets[i];
		rc = pp_buf_puts(b, "pushpool_provider_latency_seconds_bucket{provider=\"") ?:
		     put_label_value(b, provider) ?:
		     pp_buf_printf(b, "\",le=\"%g\"} %lu\n", bucket_bounds[i], cum);
	}
	cum += e->latency_buckets[11];
	return rc ?: pp_buf_puts(b, "pushpool_provider_latency_seconds_bucket{provider=\"") ?:
		     put_label_value(b, provider) ?:
		     pp_buf_printf(b, "\",le=\"+Inf\"} %lu\n", cum) ?:
		     pp_buf_puts(b, "pushpool_provider_latency_seconds_sum{provider=\"") ?:
		     put_label_value(b, provider) ?:
		     pp_buf_printf(b, "\"} %.6f\n", e->latency_sum) ?:
		     pp_buf_puts(b, "pushpool_provider_latency_seconds_count{provider=\"") ?:
		     put_label_value(b, provider) ?: pp_buf_printf(b, "\"} %lu\n", cum);
}

static int render(struct pp_metrics *m, struct pp_buf *b)
{
	pthread_mutex_lock(&m->mu);
	struct pp_metrics_snapshot s = m->snap;
	unsigned long submissions = m->submissions, retries = m->retries;
	unsigned long adopted = m->adopted, store_errors = m->store_errors;
	unsigned long start_retries = m->start_retries,
		      max_runtime_cancels = m->max_runtime_cancels,
		      lost_claim_releases = m->lost_claim_releases;
	unsigned long terminal[PP_ST_COUNT];
	memcpy(terminal, m->terminal, sizeof(terminal));
	unsigned long sub_buckets[METRICS_SUBMISSION_BUCKETS];
	memcpy(sub_buckets, m->submission_buckets, sizeof(sub_buckets));
	double sub_sum = m->submission_sum;
	time_t published = m->published, started = m->started;
	struct swept_count swept[METRICS_SWEPT_POOLS];
	int nswept = m->nswept;
	memcpy(swept, m->swept, sizeof(swept));
	pthread_mutex_unlock(&m->mu);
	int rc = put_counter_header(b, "pushpool_build_info", "gauge",
				    "Always 1; the version of the running pushpool as a label.") ?:
		 pp_buf_printf(b, "pushpool_build_info{version=\"%s\"} 1\n", PP_VERSION) ?:
		 put_counter_header(b, "pushpool_start_time_seconds", "gauge",
				    "When this process started (Unix time).") ?:
		 pp_buf_printf(b, "pushpool_start_time_seconds %lld\n", (long long)started) ?:
		 put_counter_header(b, "pushpool_heartbeat_timestamp_seconds", "gauge",
				    "When the dispatch loop last published its state (Unix time); "
				    "a loop that stops turning stops moving it.") ?:
		 pp_buf_printf(b, "pushpool_heartbeat_timestamp_seconds %lld\n",
			       (long long)published) ?:
		 put_counter_header(b, "pushpool_runs", "gauge", "Runs in the store by state.");
	for (int i = 0; i < PP_ST_COUNT && !rc; i++)
		rc = pp_buf_printf(b, "pushpool_runs{state=\"%s\"} %ld\n",
				   pp_store_state_name((enum pp_store_state)i), s.by_state[i]);
	rc = rc
		     ?: put_counter_header(b, "pushpool_runs_finished_total", "counter",
					   "Runs this process took to a terminal state.");
	for (int i = PP_ST_SUCCEEDED; i < PP_ST_COUNT && !rc; i++)
		rc = pp_buf_printf(b, "pushpool_runs_finished_total{state=\"%s\"} %lu\n",
				   pp_store_state_name((enum pp_store_state)i), terminal[i]);
	rc = rc
		     ?: pp_buf_printf(
				b,
				"# HELP pushpool_active_runs Runs this process holds (submitting "
				"or "
				"watched).\n"
				"# TYPE pushpool_active_runs gauge\npushpool_active_runs %d\n"
				"# HELP pushpool_submitting_runs Submissions under way.\n"
				"# TYPE pushpool_submitting_runs gauge\npushpool_submitting_runs "
				"%d\n"
				"# HELP pushpool_submissions_total Runs submitted by this "
				"process.\n"
				"# TYPE pushpool_submissions_total "
				"counter\npushpool_submissions_total "
				"%lu\n"
				"# HELP pushpool_submission_retries_total Submissions deferred for "
				"a "
				"retry.\n"
				"# TYPE pushpool_submission_retries_total "
				"counter\npushpool_submission_retries_total %lu\n"
				"# HELP pushpool_start_retries_total Runs started again after "
				"their "
				"job failed to start.\n"
				"# TYPE pushpool_start_retries_total "
				"counter\npushpool_start_retries_total %lu\n"
				"# HELP pushpool_max_runtime_cancels_total Runs cancelled for "
				"running "
				"past max_runtime.\n"
				"# TYPE pushpool_max_runtime_cancels_total "
				"counter\npushpool_max_runtime_cancels_total %lu\n"
				"# HELP pushpool_runs_adopted_total Runs claimed past SCHEDULED: "
				"leases "
				"taken over from another dispatcher or an earlier process.\n"
				"# TYPE pushpool_runs_adopted_total "
				"counter\npushpool_runs_adopted_total "
				"%lu\n"
				"# HELP pushpool_store_errors_total Run store calls that failed.\n"
				"# TYPE pushpool_store_errors_total "
				"counter\npushpool_store_errors_total "
				"%lu\n"
				"# HELP pushpool_lost_claim_releases_total Runs released that "
				"a claim whose answer was lost had leased to this dispatcher.\n"
				"# TYPE pushpool_lost_claim_releases_total "
				"counter\npushpool_lost_claim_releases_total %lu\n"
				"# HELP pushpool_token_refreshes_total Credential tokens fetched.\n"
				"# TYPE pushpool_token_refreshes_total "
				"counter\npushpool_token_refreshes_total %lu\n"
				"# HELP pushpool_queue_lag_seconds Age of the oldest due run not "
				"yet "
				"claimed.\n"
				"# TYPE pushpool_queue_lag_seconds "
				"gauge\npushpool_queue_lag_seconds "
				"%.3f\n",
				s.active, s.submitting, submissions, retries, start_retries,
				max_runtime_cancels, adopted, store_errors, lost_claim_releases,
				s.token_refreshes, s.queue_lag_seconds);
	rc = rc
		     ?: put_counter_header(
				b, "pushpool_credential_expiry_seconds", "gauge",
				"Seconds until the token a pool's credentials hold expires "
				"(refreshed ahead of time; a value near 0 means refreshing "
				"fails).");
	for (size_t i = 0; i < s.ncreds && !rc; i++)
		rc = pp_buf_puts(b, "pushpool_credential_expiry_seconds{pool=\"") ?:
		     put_label_value(b, s.creds[i].pool) ?:
		     pp_buf_printf(b, "\"} %ld\n", s.creds[i].seconds_left);
	rc = rc
		     ?: put_counter_header(
				b, "pushpool_submission_delay_seconds", "histogram",
				"From when a run was due to when the cloud accepted it.");
	unsigned long cum = 0;
	for (int i = 0; i < METRICS_SUBMISSION_BUCKETS - 1 && !rc; i++) {
		cum += sub_buckets[i];
		rc = pp_buf_printf(b, "pushpool_submission_delay_seconds_bucket{le=\"%g\"} %lu\n",
				   submission_bounds[i], cum);
	}
	cum += sub_buckets[METRICS_SUBMISSION_BUCKETS - 1];
	rc = rc
		     ?: pp_buf_printf(b,
				      "pushpool_submission_delay_seconds_bucket{le=\"+Inf\"} %lu\n"
				      "pushpool_submission_delay_seconds_sum %.6f\n"
				      "pushpool_submission_delay_seconds_count %lu\n",
				      cum, sub_sum, cum);
	rc = rc ?: put_by_provider(b, "pushpool_provider_requests_total",
				   "Requests sent to cloud APIs.", &s,
				   offsetof(struct pp_exec_stats, requests)) ?:
		   put_by_provider(b, "pushpool_provider_retries_total",
				   "Cloud API requests sent again.", &s,
				   offsetof(struct pp_exec_stats, retries)) ?:
		   put_by_provider(b, "pushpool_provider_throttled_total",
				   "Cloud API answers that said slow down.", &s,
				   offsetof(struct pp_exec_stats, throttled)) ?:
		   put_by_provider(b, "pushpool_provider_failures_total",
				   "Cloud API operations that failed for good.", &s,
				   offsetof(struct pp_exec_stats, failures)) ?:
		   put_counter_header(b, "pushpool_provider_latency_seconds", "histogram",
				      "Provider API call latency.");
	for (size_t i = 0; i < s.nproviders && !rc; i++)
		rc = put_latency(b, s.providers[i].provider, &s.providers[i].s);
	rc = rc
		     ?: put_counter_header(
				b, "pushpool_swept_objects_total", "counter",
				"Remote objects the sweeper removed: their run was finished "
				"or unknown to the store.");
	for (int i = 0; i < nswept && !rc; i++)
		rc = pp_buf_puts(b, "pushpool_swept_objects_total{pool=\"") ?:
		     put_label_value(b, swept[i].pool) ?:
		     pp_buf_printf(b, "\"} %lu\n", swept[i].n);
	/* A store whose checkpoints move into its commits (in_commit) has a
	 * checkpoint thread that cannot keep up: its write-ahead log grows to
	 * the inline bound and the loop pays for the copies. */
	if (!rc && s.has_checkpoints)
		rc = put_counter_header(
			     b, "pushpool_store_checkpoints_total", "counter",
			     "Checkpoints of the store's write-ahead log: on its own thread "
			     "(background), inside a commit because that thread fell behind or "
			     "could not run (in_commit), and the thread's that failed (failed).")
			     ?: pp_buf_printf(
					b,
					"pushpool_store_checkpoints_total{kind=\"background\"} "
					"%llu\n"
					"pushpool_store_checkpoints_total{kind=\"in_commit\"} "
					"%llu\n"
					"pushpool_store_checkpoints_total{kind=\"failed\"} %llu\n",
					(unsigned long long)s.checkpoints.background,
					(unsigned long long)s.checkpoints.in_commit,
					(unsigned long long)s.checkpoints.failed);
	return rc;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	struct pp_metrics *m = cls;
	struct pp_buf b;
	pp_buf_init(&b, 1 << 20);
	const char *extra[8] = {0};
	pthread_mutex_lock(&m->mu);
	pp_metrics_page_fn page = m->page;
	void *page_ud = m->page_ud;
	pthread_mutex_unlock(&m->mu);
	unsigned status = MHD_HTTP_OK;
	const char *ctype = "text/plain; charset=utf-8";
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		pp_buf_puts(&b, "method not allowed\n");
	} else if (!strcmp(url, "/healthz")) {
		pthread_mutex_lock(&m->mu);
		time_t age = time(NULL) - m->published;
		pthread_mutex_unlock(&m->mu);
		/* The loop publishes every second; silence means it is stuck. */
		if (age > 15) {
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
			pp_buf_printf(&b, "stalled: no loop heartbeat for %lld s\n",
				      (long long)age);
		} else {
			pp_buf_puts(&b, "ok\n");
		}
	} else if (!strcmp(url, "/metrics")) {
		ctype = "text/plain; version=0.0.4; charset=utf-8";
		render(m, &b);
	} else if (page) {
		pp_buf_free(&b);
		struct pp_metrics_req req = {
			.url = url,
			.authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
								     MHD_HTTP_HEADER_AUTHORIZATION),
			.conn = c,
		};
		struct pp_metrics_resp resp = {.status = MHD_HTTP_OK,
					       .content_type = "text/plain; charset=utf-8"};
		pp_buf_init(&resp.body, METRICS_PAGE_MAX);
		page(page_ud, &req, &resp);
		status = resp.status;
		ctype = resp.content_type;
		b = resp.body;
		memcpy(extra, resp.headers, sizeof(extra));
	} else {
		status = MHD_HTTP_NOT_FOUND;
		pp_buf_puts(&b, "not found: try /healthz or /metrics\n");
	}
	struct MHD_Response *r = MHD_create_response_from_buffer(
		b.len, b.data ? b.data : (char *)"", MHD_RESPMEM_MUST_COPY);
	pp_buf_free(&b);
	MHD_add_response_header(r, "Content-Type", ctype);
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]) && extra[i]; i++) {
		char name[64];
		const char *colon = strchr(extra[i], ':');
		if (!colon || (size_t)(colon - extra[i]) >= sizeof(name))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(colon - extra[i]), extra[i]);
		MHD_add_response_header(r, name, colon + 1 + strspn(colon + 1, " "));
	}
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* libmicrohttpd's error log, routed through ours (so JSON logs stay JSON)
 * and rate-limited, since a client can make it write one line per refused
 * connection. Runs on MHD's thread. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct pp_metrics *m = cls;
	char msg[METRICS_LOG_MSG_MAX];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	if (atomic_load(&m->starting)) {
		memcpy(m->start_error, msg, sizeof(msg));
		return;
	}
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&m->mu);
	bool quiet = m->log_last && now.tv_sec - m->log_last < METRICS_LOG_INTERVAL_S;
	unsigned long dropped = m->log_suppressed;
	if (quiet) {
		m->log_suppressed++;
	} else {
		m->log_last = now.tv_sec;
		m->log_suppressed = 0;
	}
	pthread_mutex_unlock(&m->mu);
	if (quiet)
		return;
	if (dropped)
		pp_warn("metrics server: %s (and %lu more messages in the last %d s)", msg, dropped,
			METRICS_LOG_INTERVAL_S);
	else
		pp_warn("metrics server: %s", msg);
}

int pp_metrics_parse_listen(const char *listen, struct sockaddr_in *out, struct pp_error *err)
{
	char host[64] = "127.0.0.1";
	const char *colon = strrchr(listen, ':');
	if (!colon)
		return pp_fail(err, PP_EINVALID, "metrics_listen \"%s\": expected HOST:PORT",
			       listen);
	if (colon != listen) {
		if ((size_t)(colon - listen) >= sizeof(host))
			return pp_fail(err, PP_EINVALID,
				       "metrics_listen \"%s\": host must be an IPv4 address",
				       listen);
		snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
	}
	/* Digits only: strtol would also take "", " 80" and "+80". */
	const char *digits = colon + 1;
	size_t nd = strspn(digits, "0123456789");
	long port = nd && nd <= 5 && !digits[nd] ? strtol(digits, NULL, 10) : -1;
	if (port < 0 || port > 65535)
		return pp_fail(err, PP_EINVALID,
			       "metrics_listen \"%s\": bad port (expected 0 to 65535)", listen);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return pp_fail(err, PP_EINVALID,
			       "metrics_listen \"%s\": host must be an IPv4 address", listen);
	*out = sa;
	return 0;
}

int pp_metrics_start(const char *listen, struct pp_metrics **out, struct pp_error *err)
{
	*out = NULL;
	struct sockaddr_in sa;
	int prc = pp_metrics_parse_listen(listen, &sa, err);
	if (prc)
		return prc;
	long port = ntohs(sa.sin_port);
	struct pp_metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	pthread_mutex_init(&m->mu, NULL);
	m->published = m->started = time(NULL);
	atomic_store(&m->starting, true);
	/* The port is also passed directly so that MHD's messages name it. */
	m->daemon = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO |
			MHD_USE_ERROR_LOG,
		(uint16_t)port, NULL, NULL, answer, m, MHD_OPTION_SOCK_ADDR, &sa,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, m, MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)METRICS_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)METRICS_IDLE_TIMEOUT_S, MHD_OPTION_END);
	if (!m->daemon) {
		pthread_mutex_destroy(&m->mu);
		int rc = pp_fail(err, PP_EIO, "metrics_listen %s: cannot listen: %s", listen,
				 m->start_error[0] ? m->start_error
						   : "libmicrohttpd refused to start");
		free(m);
		return rc;
	}
	atomic_store(&m->starting, false);
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_BIND_PORT);
	m->port = info ? info->port : (int)port;
	*out = m;
	return 0;
}

void pp_metrics_stop(struct pp_metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->daemon);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

void pp_metrics_publish(struct pp_metrics *m, const struct pp_metrics_snapshot *s)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->snap = *s;
	m->published = time(NULL);
	pthread_mutex_unlock(&m->mu);
}

void pp_metrics_count(struct pp_metrics *m, const char *counter, unsigned long n)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	if (!strcmp(counter, "submissions")) {
		m->submissions += n;
		this_minute(m)->started += n;
	} else if (!strcmp(counter, "retries"))
		m->retries += n;
	else if (!strcmp(counter, "adopted"))
		m->adopted += n;
	else if (!strcmp(counter, "store_errors"))
		m->store_errors += n;
	else if (!strcmp(counter, "start_retries"))
		m->start_retries += n;
	else if (!strcmp(counter, "max_runtime_cancels"))
		m->max_runtime_cancels += n;
	else if (!strcmp(counter, "lost_claim_releases"))
		m->lost_claim_releases += n;
	pthread_mutex_unlock(&m->mu);
}

void pp_metrics_observe_submission(struct pp_metrics *m, double seconds)
{
	if (!m)
		return;
	if (seconds < 0)
		seconds = 0; /* submitted ahead of its time (clock skew between hosts) */
	int i = 0;
	while (i < METRICS_SUBMISSION_BUCKETS - 1 && seconds > submission_bounds[i])
		i++;
	pthread_mutex_lock(&m->mu);
	m->submission_buckets[i]++;
	m->submission_sum += seconds;
	struct pp_metrics_minute *a = this_minute(m);
	a->delay_sum += seconds;
	a->delay_count++;
	if (seconds > a->delay_max)
		a->delay_max = seconds;
	pthread_mutex_unlock(&m->mu);
}

void pp_metrics_count_terminal(struct pp_metrics *m, enum pp_store_state st)
{
	if (!m || (unsigned)st >= PP_ST_COUNT)
		return;
	pthread_mutex_lock(&m->mu);
	m->terminal[st]++;
	struct pp_metrics_minute *a = this_minute(m);
	if (st == PP_ST_SUCCEEDED)
		a->succeeded++;
	else if (st == PP_ST_CANCELLED)
		a->cancelled++;
	else
		a->failed++; /* FAILED, CRASHED, DEAD */
	pthread_mutex_unlock(&m->mu);
}

void pp_metrics_count_swept(struct pp_metrics *m, const char *pool, unsigned long n)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	int i = 0;
	while (i < m->nswept && strcmp(m->swept[i].pool, pool))
		i++;
	if (i == METRICS_SWEPT_POOLS) {
		i = METRICS_SWEPT_POOLS - 1; /* the last slot counts every pool past the rest */
		snprintf(m->swept[i].pool, sizeof(m->swept[i].pool), "(other)");
	} else if (i == m->nswept) {
		m->nswept++;
		snprintf(m->swept[i].pool, sizeof(m->swept[i].pool), "%s", pool);
	}
	m->swept[i].n += n;
	pthread_mutex_unlock(&m->mu);
}

int pp_metrics_port(const struct pp_metrics *m)
{
	return m ? m->port : 0;
}

size_t pp_metrics_activity(struct pp_metrics *m, struct pp_metrics_minute *out)
{
	if (!m)
		return 0;
	int64_t now = (int64_t)time(NULL) / 60;
	pthread_mutex_lock(&m->mu);
	size_t n = 0;
	for (int64_t minute = now - PP_METRICS_ACTIVITY_MINUTES + 1; minute <= now; minute++) {
		const struct pp_metrics_minute *a =
			&m->activity[minute % PP_METRICS_ACTIVITY_MINUTES];
		/* Before this process started, or older than the ring. */
		if (minute < (int64_t)m->started / 60)
			continue;
		if (a->minute == minute)
			out[n] = *a;
		else
			out[n] = (struct pp_metrics_minute){.minute = minute};
		n++;
	}
	pthread_mutex_unlock(&m->mu);
	return n;
}

void pp_metrics_set_page(struct pp_metrics *m, pp_metrics_page_fn fn, void *ud)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->page = fn;
	m->page_ud = ud;
	pthread_mutex_unlock(&m->mu);
}

const char *pp_metrics_req_arg(const struct pp_metrics_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}
