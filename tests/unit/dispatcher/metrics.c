/* /metrics and /healthz over a real socket: the page parses as Prometheus
 * text exposition (a strict parser here; `promtool check metrics` as well
 * when it is installed), carries the published snapshot and counters, and
 * histogram buckets are cumulative up to _count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatcher/metrics.h"
#include "lib/buf.h"
#include "lib/http.h"
#include "tests/unit/http_get.h"

/* GET path from the metrics server; the body into out (caller frees). */
static long get(int port, const char *path, struct pp_buf *out)
{
	struct pp_http_resp resp;
	hg_get(port, path, NULL, 1 << 20, &resp);
	long status = resp.status;
	pp_buf_init(out, 1 << 20);
	assert_int_equal(pp_buf_append(out, resp.body.data ? resp.body.data : "", resp.body.len),
			 0);
	pp_http_resp_free(&resp);
	return status;
}

/* ---- a strict reader of the text format (version 0.0.4) ---- */

#define MAX_FAMILIES 64
#define MAX_SERIES   256

struct family {
	char name[128];
	char type[16];
	bool help, seen_samples, closed;
};

struct exposition {
	struct family fam[MAX_FAMILIES];
	int nfam;
	char series[MAX_SERIES][256]; /* name{labels} as written, for duplicates */
	int nseries;
	double values[MAX_SERIES];
	int current; /* family whose samples are being read, -1 none */
	char err[600];
};

static bool metric_name(const char *s, size_t n)
{
	if (!n || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
			return false;
	return true;
}

static struct family *family(struct exposition *e, const char *name, size_t n, bool create)
{
	for (int i = 0; i < e->nfam; i++)
		if (strlen(e->fam[i].name) == n && !strncmp(e->fam[i].name, name, n))
			return &e->fam[i];
	if (!create)
		return NULL;
	assert_true(e->nfam < MAX_FAMILIES);
	assert_true(n < sizeof(e->fam[0].name));
	struct family *f = &e->fam[e->nfam++];
	memcpy(f->name, name, n);
	return f;
}

/* The family a sample name belongs to: itself, or a histogram/summary
 * family with the _bucket/_sum/_count suffix removed. */
static struct family *sample_family(struct exposition *e, const char *name, size_t n)
{
	struct family *f = family(e, name, n, false);
	if (f)
		return f;
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
	for (size_t i = 0; i < 3; i++) {
		size_t sl = strlen(suffixes[i]);
		if (n > sl && !strncmp(name + n - sl, suffixes[i], sl) &&
		    (f = family(e, name, n - sl, false)) &&
		    (!strcmp(f->type, "histogram") || !strcmp(f->type, "summary")) &&
		    (i || !strcmp(f->type, "histogram")))
			return f;
	}
	return NULL;
}

#define BAD(...)                                                                                   \
	do {                                                                                       \
		snprintf(e->err, sizeof(e->err), __VA_ARGS__);                                     \
		return;                                                                            \
	} while (0)

static void parse_line(struct exposition *e, const char *line, int lineno)
{
	if (line[0] == '#') {
		char kind[8], name[128];
		int used = 0;
		if (sscanf(line, "# %7s %127s %n", kind, name, &used) < 2)
			BAD("line %d: bad comment: %s", lineno, line);
		if (strcmp(kind, "HELP") && strcmp(kind, "TYPE"))
			return; /* a plain comment */
		if (!metric_name(name, strlen(name)))
			BAD("line %d: bad metric name %s", lineno, name);
		struct family *f = family(e, name, strlen(name), true);
		if (f->seen_samples)
			BAD("line %d: %s %s after its samples", lineno, kind, name);
		if (!strcmp(kind, "HELP")) {
			if (f->help)
				BAD("line %d: second HELP for %s", lineno, name);
			f->help = true;
			return;
		}
		const char *type = line + used;
		static const char *const types[] = {"counter", "gauge", "histogram", "summary",
						    "untyped"};
		bool ok = false;
		for (size_t i = 0; i < 5; i++)
			ok |= !strcmp(type, types[i]);
		if (!ok || f->type[0])
			BAD("line %d: bad or second TYPE: %s", lineno, line);
		snprintf(f->type, sizeof(f->type), "%s", type);
		return;
	}
	const char *p = line;
	while (*p && *p != '{' && *p != ' ')
		p++;
	size_t nlen = (size_t)(p - line);
	if (!metric_name(line, nlen))
		BAD("line %d: bad sample name: %s", lineno, line);
	struct family *f = sample_family(e, line, nlen);
	if (!f || !f->type[0])
		BAD("line %d: sample without a TYPE: %s", lineno, line);
	int idx = (int)(f - e->fam);
	if (f->closed || (e->current >= 0 && e->current != idx && f->seen_samples))
		BAD("line %d: samples of %s are not together", lineno, f->name);
	if (e->current >= 0 && e->current != idx)
		e->fam[e->current].closed = true;
	e->current = idx;
	f->seen_samples = true;
	if (*p == '{') {
		p++;
		while (*p != '}') {
			const char *ln = p;
			while (isalnum((unsigned char)*p) || *p == '_')
				p++;
			if (p == ln || isdigit((unsigned char)*ln) || p[0] != '=' || p[1] != '"')
				BAD("line %d: bad label: %s", lineno, line);
			p += 2;
			while (*p && *p != '"') {
				if (*p == '\\') {
					if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
						BAD("line %d: bad escape: %s", lineno, line);
					p++;
				}
				p++;
			}
			if (*p != '"')
				BAD("line %d: unterminated label value: %s", lineno, line);
			p++;
			if (*p == ',')
				p++;
			else if (*p != '}')
				BAD("line %d: expected , or }: %s", lineno, line);
		}
		p++;
	}
	if (*p != ' ')
		BAD("line %d: no value: %s", lineno, line);
	size_t slen = (size_t)(p - line);
	p++;
	char *end;
	double v;
	if (!strcmp(p, "+Inf"))
		v = INFINITY;
	else if (!strcmp(p, "-Inf"))
		v = -INFINITY;
	else if (!strcmp(p, "NaN"))
		v = NAN;
	else if ((v = strtod(p, &end)), end == p || (*end && *end != ' '))
		BAD("line %d: bad value: %s", lineno, line);
	assert_true(e->nseries < MAX_SERIES);
	assert_true(slen < sizeof(e->series[0]));
	for (int i = 0; i < e->nseries; i++)
		if (strlen(e->series[i]) == slen && !strncmp(e->series[i], line, slen))
			BAD("line %d: duplicate series: %s", lineno, line);
	memcpy(e->series[e->nseries], line, slen);
	e->series[e->nseries][slen] = '\0';
	e->values[e->nseries++] = v;
	if (!strcmp(f->type, "counter") && !(v >= 0))
		BAD("line %d: negative counter: %s", lineno, line);
}

/* Parse text into e; false with e->err set on the first problem. */
static bool parse(const char *text, struct exposition *e)
{
	memset(e, 0, sizeof(*e));
	e->current = -1;
	size_t n = strlen(text);
	if (!n || text[n - 1] != '\n')
		return snprintf(e->err, sizeof(e->err), "no final newline"), false;
	int lineno = 0;
	for (const char *l = text; *l;) {
		const char *nl = strchr(l, '\n');
		char line[512];
		assert_true((size_t)(nl - l) < sizeof(line));
		memcpy(line, l, (size_t)(nl - l));
		line[nl - l] = '\0';
		lineno++;
		if (!line[0])
			return snprintf(e->err, sizeof(e->err), "line %d: empty line", lineno),
			       false;
		parse_line(e, line, lineno);
		if (e->err[0])
			return false;
		l = nl + 1;
	}
	for (int i = 0; i < e->nfam; i++)
		if (!e->fam[i].help)
			return snprintf(e->err, sizeof(e->err), "%s has no HELP", e->fam[i].name),
			       false;
	return true;
}

static double value(const struct exposition *e, const char *series)
{
	for (int i = 0; i < e->nseries; i++)
		if (!strcmp(e->series[i], series))
			return e->values[i];
	fail_msg("no series %s", series);
	return 0;
}

static void must_parse(const char *text, struct exposition *e)
{
	if (!parse(text, e))
		fail_msg("%s in:\n%s", e->err, text);
}

/* The reader accepts the format and refuses what breaks it, so a page
 * that passes it is well formed. */
static void test_reader(void **state)
{
	(void)state;
	struct exposition e;
	must_parse("# HELP a_total A.\n# TYPE a_total counter\na_total 1\n", &e);
	assert_true(value(&e, "a_total") == 1);
	must_parse("# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\n"
		   "h_count 2\n",
		   &e);
	assert_true(value(&e, "h_count") == 2);
	static const struct {
		const char *text, *why;
	} bad[] = {
		{"# HELP a A.\n# TYPE a gauge\na 1", "no final newline"},
		{"# HELP a A.\na 1\n", "sample without a TYPE"},
		{"# TYPE a gauge\na 1\n", "a has no HELP"},
		{"# HELP a A.\n# TYPE a gauge\na x\n", "bad value"},
		{"# HELP a A.\n# TYPE a gauge\na{s=\"1\"} 1\na{s=\"1\"} 2\n", "duplicate series"},
		{"# HELP a A.\n# TYPE a gauge\na{s=1} 1\n", "bad label"},
		{"# HELP a A.\n# TYPE a gauge\na{s=\"1} 1\n", "unterminated label value"},
		{"# HELP a A.\n# TYPE a counter\na -1\n", "negative counter"},
		{"# HELP a A.\n# TYPE a gauge\n# TYPE a gauge\na 1\n", "bad or second TYPE"},
		{"# HELP a A.\n# TYPE a gauges\na 1\n", "bad or second TYPE"},
		{"# HELP a A.\n# TYPE a gauge\n# HELP b B.\n# TYPE b gauge\na 1\nb 1\na{x=\"\"} "
		 "2\n",
		 "not together"},
		{"# HELP a A.\n# TYPE a gauge\na 1\n# HELP a A.\n", "after its samples"},
		{"# HELP 1a A.\n", "bad metric name"},
		{"# HELP a A.\n# TYPE a gauge\n\na 1\n", "empty line"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i].text, &e))
			fail_msg("accepted:\n%s", bad[i].text);
		if (!strstr(e.err, bad[i].why))
			fail_msg("\"%s\" for:\n%s", e.err, bad[i].text);
	}
}

/* A metrics listener on a free loopback port. */
static struct pp_metrics *listening(void)
{
	struct pp_metrics *m = NULL;
	struct pp_error err = {0};
	if (pp_metrics_start("127.0.0.1:0", &m, &err))
		fail_msg("%s", err.msg);
	return m;
}

static void test_page_parses(void **state)
{
	(void)state;
	struct pp_metrics *m = listening();
	int port = pp_metrics_port(m);
	assert_true(port > 0);

	struct pp_metrics_snapshot s = {0};
	s.by_state[PP_ST_SCHEDULED] = 7;
	s.by_state[PP_ST_RUNNING] = 2;
	s.by_state[PP_ST_QUARANTINED] = 1; /* a row with an unknown state */
	s.active = 3;
	s.submitting = 1;
	s.queue_lag_seconds = 1.5;
	s.token_refreshes = 4;
	s.nproviders = 2;
	s.providers[0].provider = "ecs";
	s.providers[0].s.requests = 10;
	s.providers[0].s.retries = 2;
	s.providers[0].s.throttled = 1;
	s.providers[0].s.latency_buckets[0] = 3;  /* <= 5 ms */
	s.providers[0].s.latency_buckets[7] = 5;  /* <= 1 s */
	s.providers[0].s.latency_buckets[11] = 2; /* over 10 s */
	s.providers[0].s.latency_sum = 42.25;
	s.providers[1].provider = "modal";
	s.providers[1].s.requests = 4;
	s.providers[1].s.failures = 1;
	s.providers[1].s.latency_buckets[4] = 4;
	s.ncreds = 1;
	snprintf(s.creds[0].pool, sizeof(s.creds[0].pool), "cloud-run");
	s.creds[0].seconds_left = 3300;
	s.has_checkpoints = true;
	s.checkpoints = (struct pp_store_checkpoints){.background = 12, .in_commit = 1};
	pp_metrics_publish(m, &s);
	pp_metrics_count(m, "submissions", 5);
	pp_metrics_count(m, "retries", 2);
	pp_metrics_count(m, "adopted", 3);
	pp_metrics_count(m, "store_errors", 1);
	pp_metrics_observe_submission(m, 0.3);	/* le 0.5 */
	pp_metrics_observe_submission(m, 7);	/* le 10 */
	pp_metrics_observe_submission(m, 4000); /* over the last bound */
	pp_metrics_count(m, "start_retries", 3);
	pp_metrics_count(m, "max_runtime_cancels", 1);
	pp_metrics_count(m, "lost_claim_releases", 2);
	pp_metrics_count_terminal(m, PP_ST_SUCCEEDED);
	pp_metrics_count_terminal(m, PP_ST_DEAD);
	pp_metrics_count_swept(m, "aci", 2);
	pp_metrics_count_swept(m, "cloud-run", 1);
	pp_metrics_count_swept(m, "aci", 1);
	pp_metrics_count_swept(m, "odd \"pool\"\\", 1);

	struct pp_buf page;
	assert_int_equal(get(port, "/metrics", &page), 200);
	struct exposition e;
	must_parse(pp_buf_str(&page), &e);
	assert_true(value(&e, "pushpool_runs{state=\"SCHEDULED\"}") == 7);
	assert_true(value(&e, "pushpool_runs{state=\"RUNNING\"}") == 2);
	assert_true(value(&e, "pushpool_runs{state=\"QUARANTINED\"}") == 1);
	assert_true(value(&e, "pushpool_runs_finished_total{state=\"SUCCEEDED\"}") == 1);
	assert_true(value(&e, "pushpool_runs_finished_total{state=\"DEAD\"}") == 1);
	assert_true(value(&e, "pushpool_active_runs") == 3);
	assert_true(value(&e, "pushpool_submitting_runs") == 1);
	assert_true(value(&e, "pushpool_submissions_total") == 5);
	assert_true(value(&e, "pushpool_submission_retries_total") == 2);
	assert_true(value(&e, "pushpool_provider_requests_total{provider=\"ecs\"}") == 10);
	assert_true(value(&e, "pushpool_provider_requests_total{provider=\"modal\"}") == 4);
	assert_true(value(&e, "pushpool_provider_retries_total{provider=\"ecs\"}") == 2);
	assert_true(value(&e, "pushpool_provider_throttled_total{provider=\"ecs\"}") == 1);
	assert_true(value(&e, "pushpool_provider_failures_total{provider=\"modal\"}") == 1);
	assert_true(value(&e, "pushpool_runs_adopted_total") == 3);
	assert_true(value(&e, "pushpool_store_errors_total") == 1);
	assert_true(value(&e, "pushpool_credential_expiry_seconds{pool=\"cloud-run\"}") == 3300);
	assert_true(value(&e, "pushpool_build_info{version=\"" PP_VERSION "\"}") == 1);
	assert_true(value(&e, "pushpool_heartbeat_timestamp_seconds") >= (double)time(NULL) - 60);
	assert_true(value(&e, "pushpool_submission_delay_seconds_bucket{le=\"0.25\"}") == 0);
	assert_true(value(&e, "pushpool_submission_delay_seconds_bucket{le=\"0.5\"}") == 1);
	assert_true(value(&e, "pushpool_submission_delay_seconds_bucket{le=\"10\"}") == 2);
	assert_true(value(&e, "pushpool_submission_delay_seconds_bucket{le=\"1800\"}") == 2);
	assert_true(value(&e, "pushpool_submission_delay_seconds_bucket{le=\"+Inf\"}") == 3);
	assert_true(value(&e, "pushpool_submission_delay_seconds_count") == 3);
	assert_true(value(&e, "pushpool_start_retries_total") == 3);
	assert_true(value(&e, "pushpool_max_runtime_cancels_total") == 1);
	assert_true(value(&e, "pushpool_lost_claim_releases_total") == 2);
	assert_true(value(&e, "pushpool_token_refreshes_total") == 4);
	assert_true(value(&e, "pushpool_queue_lag_seconds") == 1.5);
	assert_true(value(&e, "pushpool_swept_objects_total{pool=\"aci\"}") == 3);
	assert_true(value(&e, "pushpool_store_checkpoints_total{kind=\"background\"}") == 12);
	assert_true(value(&e, "pushpool_store_checkpoints_total{kind=\"in_commit\"}") == 1);
	assert_true(value(&e, "pushpool_store_checkpoints_total{kind=\"failed\"}") == 0);
	assert_true(value(&e, "pushpool_swept_objects_total{pool=\"cloud-run\"}") == 1);
	/* A pool name is a label value: quotes and backslashes escaped. */
	assert_true(value(&e, "pushpool_swept_objects_total{pool=\"odd \\\"pool\\\"\\\\\"}") == 1);
	/* Cumulative buckets ending at _count. */
	assert_true(
		value(&e,
		      "pushpool_provider_latency_seconds_bucket{provider=\"ecs\",le=\"0.005\"}") ==
		3);
	assert_true(
		value(&e,
		      "pushpool_provider_latency_seconds_bucket{provider=\"ecs\",le=\"0.5\"}") ==
		3);
	assert_true(
		value(&e, "pushpool_provider_latency_seconds_bucket{provider=\"ecs\",le=\"1\"}") ==
		8);
	assert_true(
		value(&e, "pushpool_provider_latency_seconds_bucket{provider=\"ecs\",le=\"10\"}") ==
		8);
	assert_true(
		value(&e,
		      "pushpool_provider_latency_seconds_bucket{provider=\"ecs\",le=\"+Inf\"}") ==
		10);
	assert_true(value(&e, "pushpool_provider_latency_seconds_count{provider=\"ecs\"}") == 10);
	assert_true(value(&e, "pushpool_provider_latency_seconds_sum{provider=\"ecs\"}") == 42.25);
	assert_true(value(&e, "pushpool_provider_latency_seconds_count{provider=\"modal\"}") == 4);

	/* promtool, when installed, must agree (lint included). */
	if (system("command -v promtool >/dev/null 2>&1") == 0) {
		char path[] = "/tmp/pp-metrics-XXXXXX";
		int fd = mkstemp(path);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, page.data, page.len), (ssize_t)page.len);
		close(fd);
		char cmd[256];
		snprintf(cmd, sizeof(cmd), "promtool check metrics <%s", path);
		int rc = system(cmd);
		unlink(path);
		if (rc != 0)
			fail_msg("promtool check metrics failed on:\n%s", pp_buf_str(&page));
	}
	pp_buf_free(&page);

	struct pp_buf body;
	assert_int_equal(get(port, "/healthz", &body), 200);
	assert_string_equal(pp_buf_str(&body), "ok\n");
	pp_buf_free(&body);
	assert_int_equal(get(port, "/nothing", &body), 404);
	pp_buf_free(&body);
	pp_metrics_stop(m);
}

/* A store that takes no checkpoints of its own (PostgreSQL) has no
 * checkpoint series, rather than one stuck at 0. */
static void test_no_checkpoint_series_without_them(void **state)
{
	(void)state;
	struct pp_metrics *m = listening();
	struct pp_metrics_snapshot s = {0};
	s.checkpoints.background = 3; /* ignored: has_checkpoints is false */
	pp_metrics_publish(m, &s);
	struct pp_buf page;
	assert_int_equal(get(pp_metrics_port(m), "/metrics", &page), 200);
	struct exposition e;
	must_parse(pp_buf_str(&page), &e);
	assert_null(strstr(pp_buf_str(&page), "pushpool_store_checkpoints_total"));
	pp_buf_free(&page);
	pp_metrics_stop(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reader),
		cmocka_unit_test(test_page_parses),
		cmocka_unit_test(test_no_checkpoint_series_without_them),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
