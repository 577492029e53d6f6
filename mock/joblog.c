/* The output of a mock job (mock.h, pp_mock_joblog_*): a few lines, the
 * same for the same job, written through its run on the lifecycle clock,
 * so the logs APIs (CloudWatch Logs, Cloud Logging, ACI's container logs,
 * Modal's sandbox logs) have something to serve and a reader following
 * them sees it grow. A failing job (PUSHPOOL_MOCK_FAIL=1) ends with a
 * traceback on stderr; a held job (PUSHPOOL_MOCK_HOLD=1) writes all but
 * the last line, as it never gets there; a job that never starts
 * (PUSHPOOL_MOCK_CRASH=1) writes nothing. An env var PUSHPOOL_MOCK_ECHO
 * makes the job print its value with $NAME and ${NAME} replaced from the
 * job's environment, as a container running `echo` would (tests make a
 * job print a secret it was given this way). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "mock/mock.h"

#define ECHO_MAX 4096

struct joblog_line {
	double at; /* clock */
	int fd;	   /* 1 stdout, 2 stderr */
	char *text;
};

struct pp_mock_joblog {
	struct joblog_line *v;
	size_t n;
};

/* The value of env var name in an env list ({name, value|secureValue}),
 * a map, or "NAME=value" strings, anywhere in j. */
static const char *env_find(const struct pp_json *j, const char *name)
{
	size_t n = strlen(name);
	if (!j)
		return NULL;
	if (j->type == PP_JSON_STRING) {
		if (j->key && !strcmp(j->key, name))
			return j->str;
		return !strncmp(j->str, name, n) && j->str[n] == '=' ? j->str + n + 1 : NULL;
	}
	if (j->type == PP_JSON_OBJECT) {
		const char *k = pp_json_get_string(j, "name");
		const char *v = pp_json_get_string(j, "value");
		if (!v)
			v = pp_json_get_string(j, "secureValue");
		if (k && v && !strcmp(k, name))
			return v;
	}
	pp_json_foreach (it, j) {
		const char *v = env_find(it, name);
		if (v)
			return v;
	}
	return NULL;
}

static const char *env_of(const struct pp_json *spec, const struct pp_json *overrides,
			  const char *name)
{
	const char *v = env_find(overrides, name);
	return v ? v : env_find(spec, name);
}

/* s with $NAME and ${NAME} replaced from the environment (unset: ""). */
static char *expand(const char *s, const struct pp_json *spec, const struct pp_json *overrides)
{
	struct pp_buf b;
	pp_buf_init(&b, ECHO_MAX);
	for (const char *p = s; *p;) {
		if (*p != '$') {
			pp_buf_putc(&b, *p++);
			continue;
		}
		bool brace = p[1] == '{';
		const char *q = p + 1 + brace;
		size_t n = 0;
		while (q[n] == '_' || (q[n] >= 'A' && q[n] <= 'Z') ||
		       (q[n] >= 'a' && q[n] <= 'z') || (n && q[n] >= '0' && q[n] <= '9'))
			n++;
		if (!n || (brace && q[n] != '}')) {
			pp_buf_putc(&b, *p++);
			continue;
		}
		char name[128];
		snprintf(name, sizeof(name), "%.*s", (int)(n < sizeof(name) ? n : sizeof(name) - 1),
			 q);
		const char *v = env_of(spec, overrides, name);
		if (v)
			pp_buf_puts(&b, v);
		p = q + n + brace;
	}
	char *out = pp_buf_steal(&b);
	return out ? out : strdup("");
}

void pp_mock_joblog_free(struct pp_mock_joblog *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++)
		free(j->v[i].text);
	free(j->v);
	free(j);
}

struct pp_mock_joblog *pp_mock_joblog_new(const struct pp_mock *m, const struct pp_json *spec,
					  const struct pp_json *overrides,
					  enum pp_mock_outcome outcome, double created)
{
	struct pp_mock_joblog *j = calloc(1, sizeof(*j));
	const char *echo = env_of(spec, overrides, "PUSHPOOL_MOCK_ECHO");
	struct {
		int fd;
		char *text;
	} lines[8];
	size_t n = 0;

	if (!j)
		return NULL;
	if (outcome == PP_MOCK_CRASH)
		return j;
	lines[n].fd = 1, lines[n++].text = strdup("pushpool-mock: job started");
	if (echo)
		lines[n].fd = 1, lines[n++].text = expand(echo, spec, overrides);
	lines[n].fd = 1, lines[n++].text = strdup("pushpool-mock: working");
	if (outcome == PP_MOCK_FAIL) {
		lines[n].fd = 2, lines[n++].text = strdup("Traceback (most recent call last):");
		lines[n].fd = 2,
		lines[n++].text = strdup("  File \"/opt/prefect/flow.py\", line 7, in main");
		lines[n].fd = 2,
		lines[n++].text = strdup("RuntimeError: simulated failure (PUSHPOOL_MOCK_FAIL=1)");
	} else if (outcome != PP_MOCK_HOLD) {
		lines[n].fd = 1, lines[n++].text = strdup("pushpool-mock: done");
	}
	j->v = calloc(n, sizeof(*j->v));
	const struct pp_mock_opts *o = pp_mock_opts(m);
	double start = created + o->provision_seconds;
	for (size_t i = 0; i < n; i++) {
		if (!j->v || !lines[i].text) {
			free(lines[i].text);
			continue;
		}
		/* Spread over the run, the last line well before its end. */
		j->v[j->n].at = start + o->run_seconds * (double)(i + 1) / (double)(n + 1);
		j->v[j->n].fd = lines[i].fd;
		j->v[j->n++].text = lines[i].text;
	}
	return j;
}

size_t pp_mock_joblog_written(const struct pp_mock_joblog *j, double now, double stopped)
{
	size_t k = 0;
	while (j && k < j->n && j->v[k].at <= now && (stopped < 0 || j->v[k].at <= stopped))
		k++;
	return k;
}

const char *pp_mock_joblog_line(const struct pp_mock_joblog *j, size_t i, double *at, int *fd)
{
	if (!j || i >= j->n)
		return NULL;
	if (at)
		*at = j->v[i].at;
	if (fd)
		*fd = j->v[i].fd;
	return j->v[i].text;
}
