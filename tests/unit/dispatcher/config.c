/* The configuration table: every key, defaults, env overrides, errors with
 * FILE:LINE, validation and the printed documentation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "dispatcher/config.h"
#include "dispatcher/metrics.h"
#include "store/store.h"
#include "lib/log.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/pp-config-XXXXXX");
	assert_non_null(mkdtemp(dir));
	setenv("STATE_DIRECTORY", "/srv/pushpool-state:/other", 1);
	pp_secret_clear();
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	unsetenv("STATE_DIRECTORY");
	pp_secret_clear();
	return 0;
}

/* Write dir/name with text and the given mode; returns the path (static). */
static const char *write_file(const char *name, const char *text, mode_t mode)
{
	static char path[4][256];
	static int next;
	char *p = path[next++ % 4];
	snprintf(p, 256, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(p, mode), 0);
	return p;
}

/* Load text as dir/pushpool.conf; problems collects the report. */
static int load(struct pp_config *c, const char *text, struct pp_buf *problems)
{
	struct pp_error err = {0};
	assert_int_equal(pp_config_init(c, &err), 0);
	const char *path = write_file("pushpool.conf", text, 0600);
	pp_buf_init(problems, 1 << 20);
	return pp_config_load_report(c, path, problems, &err);
}

static void assert_has(const struct pp_buf *b, const char *needle)
{
	if (!strstr(pp_buf_str(b), needle))
		fail_msg("missing \"%s\" in:\n%s", needle, pp_buf_str(b));
}

/* problems holds "PATH:LINE: text..." (line 0: "PATH: text..."). */
static void assert_at(const struct pp_buf *b, const char *path, int line, const char *text)
{
	char want[1024];
	if (line)
		snprintf(want, sizeof(want), "%s:%d: %s", path, line, text);
	else
		snprintf(want, sizeof(want), "%s: %s", path, text);
	assert_has(b, want);
}

static void test_defaults(void **state)
{
	struct pp_config c;
	struct pp_error err = {0};
	assert_int_equal(pp_config_init(&c, &err), 0);
	assert_string_equal(c.dispatcher.state_dir, "/srv/pushpool-state");
	assert_string_equal(c.dispatcher.log_level, "info");
	assert_string_equal(c.dispatcher.log_format, "text");
	assert_string_equal(c.dispatcher.metrics_listen, "");
	assert_int_equal(c.dispatcher.max_in_flight, 1000);
	assert_int_equal(c.dispatcher.max_submitting, 64);
	assert_true(c.dispatcher.poll_interval == 1.0);
	assert_true(c.dispatcher.status_interval == 2.0);
	assert_true(c.dispatcher.lease_seconds == 60);
	assert_true(c.dispatcher.grace_seconds == 30);
	assert_int_equal(c.dispatcher.submit_attempts, 5);
	assert_int_equal(c.dispatcher.backoff_base_ms, 500);
	assert_int_equal(c.dispatcher.backoff_max_ms, 30000);
	assert_true(c.dispatcher.start_timeout == 600);
	assert_string_equal(c.store.url, "");
	assert_false(c.prefect.enabled);
	assert_int_equal(c.npools, 0);
	pp_config_free(&c);

	unsetenv("STATE_DIRECTORY");
	assert_int_equal(pp_config_init(&c, &err), 0);
	assert_string_equal(c.dispatcher.state_dir, "/var/lib/pushpool");
	pp_config_free(&c);
}

static const char every_key[] = "; every key, none at its default\n"
				"[dispatcher]\n"
				"state_dir = state\n"
				"log_level = debug\n"
				"log_format = json\n"
				"metrics_listen = 127.0.0.1:9464\n"
				"max_in_flight = 50\n"
				"max_submitting = 8\n"
				"poll_interval = 250ms\n"
				"status_interval = 3s\n"
				"lease_seconds = 2m\n"
				"grace_seconds = 10\n"
				"submit_attempts = 7\n"
				"backoff_base_ms = 100\n"
				"backoff_max_ms = 9000\n"
				"start_timeout = 1h\n"
				"prefect_api_url = http://prefect:4200/api\n"
				"prefect_api_key_file = /run/secrets/prefect\n"
				"[store]\n"
				"url = postgresql://pp:hunter2pw@db/pushpool\n"
				"[source \"prefect\"]\n"
				"enabled = on\n"
				"api_url = http://127.0.0.1:4200/api\n"
				"api_key = pnu_abcdefghijklmnop\n"
				"api_key_file = ~/prefect.key\n"
				"pools = ecs-prod, gcp\n"
				"work_queues = default\n"
				"lookahead_seconds = 30\n"
				"poll_interval = 2.5\n"
				"[pool \"ecs-prod\"]\n"
				"type = ecs\n"
				"template_path = tmpl/ecs.json\n"
				"credentials = aws-main\n"
				"endpoint = http://127.0.0.1:4566\n"
				"job_variables = {\"cpu\": 512, \"env\": {\"A\": \"1\"}}\n"
				"max_in_flight = 20\n"
				"[pool \"gcp\"]\n"
				"type = cloud-run-v2:push\n"
				"[credentials \"aws-main\"]\n"
				"type = aws\n"
				"source = static\n"
				"file = /etc/aws/credentials\n"
				"profile = prod\n"
				"region = eu-west-1\n"
				"access_key_id = AKIDEXAMPLE\n"
				"secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n"
				"session_token = FQoGZXIvYXdzEXAMPLESESSION\n"
				"role_arn = arn:aws:iam::123456789012:role/pp\n"
				"tenant_id = t-1\n"
				"client_id = c-1\n"
				"client_secret = entra-client-secret-value\n"
				"client_secret_file = /etc/pp/client-secret\n"
				"certificate_path = /etc/pp/cert.pem\n"
				"subscription_id = sub-1\n"
				"token_id = ak-modal-id\n"
				"token_secret = as-modal-token-secret\n"
				"token_uri = http://127.0.0.1:1/token\n"
				"metadata_host = 127.0.0.1:2\n"
				"sts_endpoint = http://127.0.0.1:3\n"
				"authority = http://127.0.0.1:4\n"
				"imds_endpoint = http://127.0.0.1:5\n"
				"container_endpoint = http://127.0.0.1:6/creds\n"
				"modal_server_url = http://127.0.0.1:7\n";

static void test_every_key_parses(void **state)
{
	struct pp_config c;
	struct pp_buf problems;
	char want[300];
	setenv("HOME", "/home/pp", 1);
	int rc = load(&c, every_key, &problems);
	assert_string_equal(pp_buf_str(&problems), "");
	assert_int_equal(rc, 0);

	const struct pp_dispatcher_conf *d = &c.dispatcher;
	snprintf(want, sizeof(want), "%s/state", dir); /* relative to the file */
	assert_string_equal(d->state_dir, want);
	assert_string_equal(d->log_level, "debug");
	assert_string_equal(d->log_format, "json");
	assert_string_equal(d->metrics_listen, "127.0.0.1:9464");
	assert_int_equal(d->max_in_flight, 50);
	assert_int_equal(d->max_submitting, 8);
	assert_true(d->poll_interval == 0.25);
	assert_true(d->status_interval == 3);
	assert_true(d->lease_seconds == 120);
	assert_true(d->grace_seconds == 10);
	assert_int_equal(d->submit_attempts, 7);
	assert_int_equal(d->backoff_base_ms, 100);
	assert_int_equal(d->backoff_max_ms, 9000);
	assert_true(d->start_timeout == 3600);
	assert_string_equal(d->prefect_api_url, "http://prefect:4200/api");
	assert_string_equal(d->prefect_api_key_file, "/run/secrets/prefect");
	assert_string_equal(c.store.url, "postgresql://pp:hunter2pw@db/pushpool");

	const struct pp_prefect_conf *p = &c.prefect;
	assert_true(p->enabled);
	assert_string_equal(p->api_url, "http://127.0.0.1:4200/api");
	assert_string_equal(p->api_key, "pnu_abcdefghijklmnop");
	assert_string_equal(p->api_key_file, "/home/pp/prefect.key");
	assert_string_equal(p->pools, "ecs-prod, gcp");
	assert_string_equal(p->work_queues, "default");
	assert_true(p->lookahead_seconds == 30);
	assert_true(p->poll_interval == 2.5);

	assert_int_equal(c.npools, 2);
	const struct pp_pool_conf *pool = pp_config_pool(&c, "ecs-prod");
	assert_non_null(pool);
	assert_string_equal(pool->type, "ecs:push");
	snprintf(want, sizeof(want), "%s/tmpl/ecs.json", dir);
	assert_string_equal(pool->template_path, want);
	assert_string_equal(pool->credentials, "aws-main");
	assert_string_equal(pool->endpoint, "http://127.0.0.1:4566");
	assert_string_equal(pool->job_variables, "{\"cpu\": 512, \"env\": {\"A\": \"1\"}}");
	assert_int_equal(pool->max_in_flight, 20);
	assert_int_equal(pool->line, 30);
	assert_string_equal(pool->file, c.path);
	pool = pp_config_pool(&c, "gcp");
	assert_non_null(pool);
	assert_string_equal(pool->type, "cloud-run-v2:push");
	assert_string_equal(pool->template_path, "");
	assert_int_equal(pool->max_in_flight, 0);
	assert_null(pp_config_pool(&c, "nope"));

	assert_int_equal(c.ncreds, 1);
	const struct pp_cred_conf *cr = pp_config_cred(&c, "aws-main");
	assert_non_null(cr);
	assert_int_equal(cr->line, 39);
	assert_string_equal(cr->type, "aws");
	assert_string_equal(cr->source, "static");
	assert_string_equal(cr->file, "/etc/aws/credentials");
	assert_string_equal(cr->profile, "prod");
	assert_string_equal(cr->region, "eu-west-1");
	assert_string_equal(cr->access_key_id, "AKIDEXAMPLE");
	assert_string_equal(cr->secret_access_key, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
	assert_string_equal(cr->session_token, "FQoGZXIvYXdzEXAMPLESESSION");
	assert_string_equal(cr->role_arn, "arn:aws:iam::123456789012:role/pp");
	assert_string_equal(cr->tenant_id, "t-1");
	assert_string_equal(cr->client_id, "c-1");
	assert_string_equal(cr->client_secret, "entra-client-secret-value");
	assert_string_equal(cr->client_secret_file, "/etc/pp/client-secret");
	assert_string_equal(cr->certificate_path, "/etc/pp/cert.pem");
	assert_string_equal(cr->subscription_id, "sub-1");
	assert_string_equal(cr->token_id, "ak-modal-id");
	assert_string_equal(cr->token_secret, "as-modal-token-secret");
	assert_string_equal(cr->token_uri, "http://127.0.0.1:1/token");
	assert_string_equal(cr->metadata_host, "127.0.0.1:2");
	assert_string_equal(cr->sts_endpoint, "http://127.0.0.1:3");
	assert_string_equal(cr->authority, "http://127.0.0.1:4");
	assert_string_equal(cr->imds_endpoint, "http://127.0.0.1:5");
	assert_string_equal(cr->container_endpoint, "http://127.0.0.1:6/creds");
	assert_string_equal(cr->modal_server_url, "http://127.0.0.1:7");

	/* Every secret, and the store URL's password, is now redacted. */
	char text[] = "pnu_abcdefghijklmnop wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY "
		      "FQoGZXIvYXdzEXAMPLESESSION entra-client-secret-value "
		      "as-modal-token-secret hunter2pw AKIDEXAMPLE";
	pp_redact(text);
	assert_string_equal(text, "[REDACTED] [REDACTED] [REDACTED] [REDACTED] [REDACTED] "
				  "********* AKIDEXAMPLE");
	pp_buf_free(&problems);
	pp_config_free(&c);
}

static void test_env_overrides(void **state)
{
	struct pp_config c;
	struct pp_buf problems;
	setenv("PUSHPOOL_DISPATCHER_LOG_LEVEL", "error", 1);
	setenv("PUSHPOOL_DISPATCHER_POLL_INTERVAL", "5", 1);
	setenv("PUSHPOOL_STORE_URL", "sqlite:/tmp/x.db", 1);
	setenv("PUSHPOOL_POOL_MY_POOL_MAX_IN_FLIGHT", "7", 1);
	setenv("PUSHPOOL_CREDENTIALS_AWS_1_SECRET_ACCESS_KEY", "fromenvironmentsecret", 1);
	setenv("PUSHPOOL_TEMPLATE_DIR", "/elsewhere", 1); /* not a config key: ignored */
	int rc = load(&c,
		      "[dispatcher]\nlog_level = debug\n"
		      "[pool \"my.pool\"]\ntype = ecs\nmax_in_flight = 3\n"
		      "[credentials \"aws-1\"]\ntype = aws\n",
		      &problems);
	assert_string_equal(pp_buf_str(&problems), "");
	assert_int_equal(rc, 0);
	assert_string_equal(c.dispatcher.log_level, "error");
	assert_true(c.dispatcher.poll_interval == 5);
	assert_string_equal(c.store.url, "sqlite:/tmp/x.db");
	assert_int_equal(c.pools[0].max_in_flight, 7);
	assert_string_equal(c.creds[0].secret_access_key, "fromenvironmentsecret");
	char text[] = "fromenvironmentsecret";
	pp_redact(text);
	assert_string_equal(text, "[REDACTED]");
	pp_buf_free(&problems);
	pp_config_free(&c);

	/* A bad value or an unknown name says which variable. */
	setenv("PUSHPOOL_DISPATCHER_MAX_IN_FLIGHT", "lots", 1);
	setenv("PUSHPOOL_DISPATCHER_LOG_LEVL", "debug", 1);
	setenv("PUSHPOOL_POOL_OTHER_TYPE", "ecs", 1);
	rc = load(&c, "[pool \"my.pool\"]\ntype = ecs\n", &problems);
	assert_int_equal(rc, PP_EINVALID);
	assert_has(&problems,
		   "environment: PUSHPOOL_DISPATCHER_MAX_IN_FLIGHT: \"lots\" is not an integer\n");
	assert_has(&problems, "environment: PUSHPOOL_DISPATCHER_LOG_LEVL: no such setting");
	assert_has(&problems, "environment: PUSHPOOL_POOL_OTHER_TYPE: matches no key");
	pp_buf_free(&problems);
	pp_config_free(&c);

	unsetenv("PUSHPOOL_DISPATCHER_LOG_LEVEL");
	unsetenv("PUSHPOOL_DISPATCHER_POLL_INTERVAL");
	unsetenv("PUSHPOOL_STORE_URL");
	unsetenv("PUSHPOOL_POOL_MY_POOL_MAX_IN_FLIGHT");
	unsetenv("PUSHPOOL_CREDENTIALS_AWS_1_SECRET_ACCESS_KEY");
	unsetenv("PUSHPOOL_TEMPLATE_DIR");
	unsetenv("PUSHPOOL_DISPATCHER_MAX_IN_FLIGHT");
	unsetenv("PUSHPOOL_DISPATCHER_LOG_LEVL");
	unsetenv("PUSHPOOL_POOL_OTHER_TYPE");
}

static void test_errors_carry_file_and_line(void **state)
{
	struct pp_config c;
	struct pp_buf problems;
	char want[512];
	int rc = load(&c,
		      "orphan = 1\n"		       /* 1 */
		      "[dispatcher]\n"		       /* 2 */
		      "max_inflight = 5\n"	       /* 3 */
		      "max_submitting = 0\n"	       /* 4 */
		      "log_level = loud\n"	       /* 5 */
		      "poll_interval = soon\n"	       /* 6 */
		      "[pools \"a\"]\n"		       /* 7 */
		      "type = ecs\n"		       /* 8 */
		      "[pool \"a\"]\n"		       /* 9 */
		      "type = lambda\n"		       /* 10 */
		      "[pool \"a\"]\n"		       /* 11 */
		      "[pool \"bad name!\"]\n"	       /* 12 */
		      "[credentials \"c\"]\n"	       /* 13 */
		      "this line has no equals sign\n" /* 14 */
		      "[source \"airflow\"]\n"	       /* 15 */
		      "[store]\n"		       /* 16 */
		      "[pool \"b\"]\n"		       /* 17 */
		      "job_variables = [1, 2]\n"       /* 18 */
		      "[pool \"c\"]\n"		       /* 19 */
		      "type = ecs\n"		       /* 20 */
		      "job_variables = {\"cpu\": }\n", /* 21 */
		      &problems);
	assert_int_equal(rc, PP_EINVALID);
	const char *f = c.path;
	assert_at(&problems, f, 1, "\"orphan\" is outside any section");
	assert_at(&problems, f, 3,
		  "unknown key \"max_inflight\" in [dispatcher]; did you mean \"max_in_flight\"?");
	assert_at(&problems, f, 4, "max_submitting: 0 is out of range: must be 1..10000");
	assert_at(&problems, f, 5, "log_level: \"loud\" is not one of: debug, info, warn, error");
	assert_at(&problems, f, 6, "poll_interval: \"soon\" is not a duration");
	assert_at(&problems, f, 7, "unknown section [pools \"a\"]; did you mean [pool]?");
	assert_at(&problems, f, 10,
		  "type: unknown pool type \"lambda\" (known: cloud-run-v2:push, ecs:push, "
		  "azure-container-instance:push, modal:push)");
	assert_at(&problems, f, 11, "duplicate [pool \"a\"] (first defined at line 9)");
	assert_at(&problems, f, 12, "[pool] needs a name of 1-63 letters, digits");
	assert_at(&problems, f, 14, "syntax error");
	assert_at(&problems, f, 15, "unknown source \"airflow\" (known: prefect)");
	assert_at(&problems, f, 18, "job_variables: must be a JSON object, got array");
	assert_at(&problems, f, 21, "job_variables: not valid JSON: 1:");
	assert_at(&problems, f, 9, "[pool \"a\"] needs type");
	assert_at(&problems, f, 13, "[credentials \"c\"] needs type");
	assert_at(&problems, f, 17, "[pool \"b\"] needs type");
	pp_buf_free(&problems);

	/* pp_config_load puts them in err->msg, as many as fit. */
	struct pp_error err = {0};
	char path[256];
	snprintf(path, sizeof(path), "%s", f);
	pp_config_free(&c);
	assert_int_equal(pp_config_init(&c, &err), 0);
	assert_int_equal(pp_config_load(&c, path, &err), PP_EINVALID);
	snprintf(want, sizeof(want), "%s:1: \"orphan\" is outside any section", path);
	if (!strstr(err.msg, want))
		fail_msg("missing \"%s\" in:\n%s", want, err.msg);
	pp_config_free(&c);
}

static void test_many_errors_are_counted_in_err(void **state)
{
	struct pp_buf text;
	pp_buf_init(&text, 1 << 20);
	pp_buf_puts(&text, "[dispatcher]\n");
	for (int i = 0; i < 60; i++)
		pp_buf_printf(&text, "no_such_key_%d = 1\n", i);
	const char *path = write_file("many.conf", pp_buf_str(&text), 0600);
	struct pp_config c;
	struct pp_error err = {0};
	assert_int_equal(pp_config_init(&c, &err), 0);
	assert_int_equal(pp_config_load(&c, path, &err), PP_EINVALID);
	const char *more = strstr(err.msg, " more)");
	assert_non_null(more);
	int shown = 0;
	for (const char *p = err.msg; (p = strstr(p, "unknown key")); p++)
		shown++;
	char tail[32];
	snprintf(tail, sizeof(tail), "(%d more)", 60 - shown);
	assert_non_null(strstr(err.msg, tail));
	pp_config_free(&c);
	pp_buf_free(&text);
}

static void test_values_quotes_comments_and_long_lines(void **state)
{
	struct pp_config c;
	struct pp_buf problems, text;
	pp_buf_init(&text, 1 << 20);
	pp_buf_puts(&text, "\xef\xbb\xbf[dispatcher]\r\n"
			   "metrics_listen = \"  spaced, kept  \"\n"
			   "prefect_api_url = http://x/api ; a comment\n"
			   "# a comment line\n"
			   "[pool \"big\"]\n"
			   "type = modal:push\n"
			   "job_variables = {\"env\": {");
	for (int i = 0; i < 400; i++)
		pp_buf_printf(&text, "%s\"K%d\": \"value-%d\"", i ? ", " : "", i, i);
	pp_buf_puts(&text, "}}\n"
			   "[pool \"huge\"]\n"
			   "type = ecs\n"
			   "endpoint = ");
	for (int i = 0; i < 70000; i++)
		pp_buf_putc(&text, 'x');
	pp_buf_puts(&text, "\nmax_in_flight = -1\n");
	int rc = load(&c, pp_buf_str(&text), &problems);
	assert_int_equal(rc, PP_EINVALID);
	assert_string_equal(c.dispatcher.metrics_listen, "  spaced, kept  ");
	/* Loading twice into one config would leave pools pointing at a freed path. */
	struct pp_error err = {0};
	assert_int_equal(pp_config_load(&c, "/dev/null", &err), PP_EINVALID);
	assert_string_equal(c.dispatcher.prefect_api_url, "http://x/api");
	assert_true(strlen(c.pools[0].job_variables) > 8000);
	/* The long line is refused, and the lines after it keep their numbers. */
	char want[256];
	snprintf(want, sizeof(want), "%s:10: line longer than", c.path);
	assert_has(&problems, want);
	snprintf(want, sizeof(want), "%s:11: max_in_flight: -1 is out of range", c.path);
	assert_has(&problems, want);
	pp_buf_free(&problems);
	pp_buf_free(&text);
	pp_config_free(&c);
}

static void test_cross_checks(void **state)
{
	struct pp_config c;
	struct pp_buf problems;
	int rc = load(&c,
		      "[dispatcher]\n"
		      "backoff_base_ms = 5000\n"
		      "backoff_max_ms = 1000\n"
		      "[source \"prefect\"]\n"
		      "pools = x\n",
		      &problems);
	assert_int_equal(rc, PP_EINVALID);
	char want[256];
	snprintf(want, sizeof(want), "%s:3: backoff_base_ms (5000) is larger than backoff_max_ms",
		 c.path);
	assert_has(&problems, want);
	snprintf(want, sizeof(want), "%s:4: [source \"prefect\"] needs api_url", c.path);
	assert_has(&problems, want);
	pp_buf_free(&problems);
	pp_config_free(&c);
}

static void test_prefect_source_switch(void **state)
{
	struct pp_config c;
	struct pp_buf problems;
	/* Present but switched off: nothing else is required of it. */
	assert_int_equal(load(&c, "[source \"prefect\"]\nenabled = false\n", &problems), 0);
	assert_false(c.prefect.enabled);
	pp_buf_free(&problems);
	pp_config_free(&c);

	assert_int_equal(load(&c, "[source \"prefect\"]\nenabled = maybe\n", &problems),
			 PP_EINVALID);
	assert_at(&problems, c.path, 2,
		  "enabled: \"maybe\" is not a boolean (true/false, yes/no, on/off, 1/0)");
	pp_buf_free(&problems);
	pp_config_free(&c);

	/* Absent: off, whatever its defaults say. */
	assert_int_equal(load(&c, "[dispatcher]\n", &problems), 0);
	assert_false(c.prefect.enabled);
	pp_buf_free(&problems);
	pp_config_free(&c);
}

static void test_missing_file(void **state)
{
	struct pp_config c;
	struct pp_error err = {0};
	assert_int_equal(pp_config_init(&c, &err), 0);
	assert_int_equal(pp_config_load(&c, "/nonexistent/pushpool.conf", &err), PP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "/nonexistent/pushpool.conf: cannot open"));
	pp_config_free(&c);
}

static void test_validate(void **state)
{
	struct pp_config c;
	struct pp_buf problems, text;
	const char *sa = write_file("sa.json", "{}", 0644);
	write_file("tmpl.json", "{\"job_configuration\": {}, \"variables\": {}}", 0600);
	write_file("broken.json", "{\"job_configuration\": 1", 0600);
	pp_buf_init(&text, 1 << 16);
	pp_buf_printf(&text,
		      "[pool \"ok\"]\n" /* 1 */
		      "type = cloud-run-v2\n"
		      "credentials = gcp\n"
		      "template_path = tmpl.json\n"
		      "[pool \"nocred\"]\n" /* 5 */
		      "type = ecs\n"
		      "credentials = missing\n"
		      "[pool \"mismatch\"]\n" /* 8 */
		      "type = ecs\n"
		      "credentials = gcp\n"
		      "[pool \"badtmpl\"]\n" /* 11 */
		      "type = modal:push\n"
		      "template_path = broken.json\n"
		      "[credentials \"gcp\"]\n" /* 14 */
		      "type = gcp\n"
		      "source = file\n"
		      "file = %s\n"
		      "[credentials \"aws\"]\n" /* 18 */
		      "type = aws\n"
		      "source = static\n"
		      "access_key_id = AKID\n"
		      "[credentials \"az\"]\n" /* 22 */
		      "type = azure\n"
		      "source = imds\n"
		      "[credentials \"gone\"]\n" /* 25 */
		      "type = gcp\n"
		      "file = nothere.json\n",
		      sa);
	int rc = load(&c, pp_buf_str(&text), &problems);
	assert_string_equal(pp_buf_str(&problems), "");
	assert_int_equal(rc, 0);
	assert_int_equal(pp_config_validate(&c, &problems), PP_EINVALID);
	const char *f = c.path;
	char want[512];
	assert_at(&problems, f, 5, "pool \"nocred\": credentials \"missing\" is not defined");
	assert_at(&problems, f, 8,
		  "pool \"mismatch\": type ecs:push needs aws credentials, but \"gcp\" is gcp");
	assert_at(&problems, f, 11, "pool \"badtmpl\": template_path: ");
	snprintf(want, sizeof(want),
		 "warning: credentials \"gcp\": file %s/sa.json is readable by group/others "
		 "(mode 0644); chmod 600",
		 dir);
	assert_at(&problems, f, 14, want);
	assert_at(&problems, f, 18,
		  "credentials \"aws\": source static needs access_key_id and secret_access_key");
	assert_at(&problems, f, 22, "credentials \"az\": source imds does not apply to type azure");
	snprintf(want, sizeof(want),
		 "credentials \"gone\": file %s/nothere.json: No such file or directory", dir);
	assert_at(&problems, f, 25, want);
	snprintf(want, sizeof(want), "%s:1:", c.path);
	assert_null(strstr(pp_buf_str(&problems), want));
	pp_buf_free(&problems);
	pp_buf_free(&text);
	pp_config_free(&c);

	/* A warning alone does not fail validation. */
	pp_buf_init(&text, 1 << 16);
	pp_buf_printf(&text, "[credentials \"gcp\"]\ntype = gcp\nfile = %s\n", sa);
	assert_int_equal(load(&c, pp_buf_str(&text), &problems), 0);
	assert_int_equal(pp_config_validate(&c, &problems), 0);
	assert_has(&problems, "warning: credentials \"gcp\"");
	pp_buf_free(&problems);
	pp_buf_free(&text);
	pp_config_free(&c);
}

static void test_print_defaults(void **state)
{
	struct pp_buf ini, md;
	pp_buf_init(&ini, 1 << 20);
	pp_buf_init(&md, 1 << 20);
	assert_int_equal(pp_config_print_defaults(&ini, false), 0);
	assert_int_equal(pp_config_print_defaults(&md, true), 0);
	assert_has(&ini, "[dispatcher]\n");
	assert_has(&ini,
		   "# max_in_flight (integer 1..1000000), PUSHPOOL_DISPATCHER_MAX_IN_FLIGHT\n");
	assert_has(&ini, ";max_in_flight = 1000\n");
	assert_has(&ini, "[pool \"NAME\"]\n");
	assert_has(&ini, "# type (pool type, required), PUSHPOOL_POOL_<NAME>_TYPE\n");
	assert_has(&md, "| `log_level` | one of: debug, info, warn, error | `info` | "
			"`PUSHPOOL_DISPATCHER_LOG_LEVEL` |");
	assert_has(&md, "| `secret_access_key` | secret string |  | "
			"`PUSHPOOL_CREDENTIALS_<NAME>_SECRET_ACCESS_KEY` |");
	assert_has(&md, "## [source \"prefect\"]");

	/* The INI form of the single sections, un-commented, is a valid
	 * configuration holding the defaults. */
	struct pp_config c;
	struct pp_buf problems;
	struct pp_buf text;
	pp_buf_init(&text, 1 << 20);
	const char *named = strstr(pp_buf_str(&ini), "\n[pool \"NAME\"]");
	assert_non_null(named);
	pp_buf_append(&text, ini.data, (size_t)(named - ini.data) + 1);
	pp_buf_puts(&text, "[source \"prefect\"]\napi_url = http://p/api\n"
			   "[pool \"p\"]\ntype = ecs\n[credentials \"c\"]\ntype = aws\n");
	char *body = strdup(pp_buf_str(&text));
	assert_non_null(body);
	/* Un-comment every ";key = default" line. */
	for (char *p = body; (p = strstr(p, "\n;")); p++)
		p[1] = ' ';
	int rc = load(&c, body, &problems);
	assert_string_equal(pp_buf_str(&problems), "");
	assert_int_equal(rc, 0);
	assert_int_equal(c.dispatcher.max_in_flight, 1000);
	free(body);
	pp_buf_free(&problems);
	pp_buf_free(&text);
	pp_config_free(&c);
	pp_buf_free(&ini);
	pp_buf_free(&md);
}

static void test_print_effective_redacts_secrets(void **state)
{
	struct pp_config c, back;
	struct pp_buf problems, shown, again;
	assert_int_equal(load(&c, every_key, &problems), 0);
	pp_buf_init(&shown, 1 << 20);
	assert_int_equal(pp_config_print(&c, &shown), 0);
	const char *secrets[] = {"pnu_abcdefghijklmnop",  "wJalrXUtnFEMI",
				 "FQoGZXIvYXdz",	  "entra-client-secret-value",
				 "as-modal-token-secret", "hunter2pw"};
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		assert_null(strstr(pp_buf_str(&shown), secrets[i]));
	assert_has(&shown, "secret_access_key = [REDACTED]\n");
	assert_has(&shown, "url = postgresql://pp:*********@db/pushpool\n");
	assert_has(&shown, "[pool \"ecs-prod\"]\ntype = ecs:push\n");
	assert_has(&shown, "poll_interval = 0.25\n");

	/* Printed back and loaded again, it prints the same. */
	pp_buf_free(&problems);
	assert_int_equal(load(&back, pp_buf_str(&shown), &problems), 0);
	pp_buf_init(&again, 1 << 20);
	assert_int_equal(pp_config_print(&back, &again), 0);
	assert_string_equal(pp_buf_str(&again), pp_buf_str(&shown));
	pp_buf_free(&again);
	pp_buf_free(&shown);
	pp_buf_free(&problems);
	pp_config_free(&back);
	pp_config_free(&c);
}

/* Hostile and careless values (issue 18): each gets a clear message and a
 * configuration error, not "out of memory" or a wrong explanation. */
static void test_hostile_values(void **state)
{
	struct pp_config c;
	struct pp_buf problems;
	char path[256], want[512];

	/* A NUL byte is named as such; the lines after it keep their numbers. */
	snprintf(path, sizeof(path), "%s/nul.conf", dir);
	static const char nul_text[] = "[dispatcher]\nlog_level = in\0fo\nmax_in_flight = -1\n";
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(nul_text, 1, sizeof(nul_text) - 1, f), sizeof(nul_text) - 1);
	fclose(f);
	struct pp_error err = {0};
	assert_int_equal(pp_config_init(&c, &err), 0);
	pp_buf_init(&problems, 1 << 20);
	assert_int_equal(pp_config_load_report(&c, path, &problems, &err), PP_EINVALID);
	assert_at(&problems, path, 2, "NUL byte in the configuration");
	assert_null(strstr(pp_buf_str(&problems), "line longer"));
	assert_at(&problems, path, 3, "max_in_flight: -1 is out of range");
	pp_buf_free(&problems);
	pp_config_free(&c);

	/* An over-long path, and an over-long value from the environment. */
	struct pp_buf text;
	pp_buf_init(&text, 1 << 20);
	pp_buf_puts(&text, "[dispatcher]\nstate_dir = /");
	for (int i = 0; i < 5000; i++)
		pp_buf_putc(&text, 'a');
	pp_buf_puts(&text, "\n[pool \"p\"]\ntype = modal:push\n");
	char *big = malloc(100001);
	assert_non_null(big);
	memset(big, 'x', 100000);
	big[100000] = '\0';
	setenv("PUSHPOOL_POOL_P_JOB_VARIABLES", big, 1);
	int rc = load(&c, pp_buf_str(&text), &problems);
	unsetenv("PUSHPOOL_POOL_P_JOB_VARIABLES");
	free(big);
	assert_int_equal(rc, PP_EINVALID);
	assert_at(&problems, c.path, 2,
		  "state_dir: the path is 5001 bytes, over the 960-byte limit");
	assert_has(&problems, "environment: PUSHPOOL_POOL_P_JOB_VARIABLES: the value is 100000 "
			      "bytes, over the 65536-byte limit");
	pp_buf_free(&problems);
	pp_buf_free(&text);
	pp_config_free(&c);

	/* A relative SQLite store is the config file's, from any directory. */
	char *real = realpath(dir, NULL);
	assert_non_null(real);
	/* input, then what is kept: prefix, the file's directory or not, rest */
	const struct {
		const char *in, *prefix;
		bool in_dir;
		const char *rest;
	} stores[] = {{"sqlite:runs.db", "sqlite:", true, "/runs.db"},
		      {"sub/runs.db", "", true, "/sub/runs.db"},
		      {"sqlite:/abs/runs.db", "sqlite:/abs/runs.db", false, ""},
		      {"postgresql://pp@db/x", "postgresql://pp@db/x", false, ""}};
	for (size_t i = 0; i < sizeof(stores) / sizeof(stores[0]); i++) {
		char conf[128];
		snprintf(conf, sizeof(conf), "[store]\nurl = %s\n", stores[i].in);
		assert_int_equal(load(&c, conf, &problems), 0);
		snprintf(want, sizeof(want), "%s%s%s", stores[i].prefix,
			 stores[i].in_dir ? real : "", stores[i].rest);
		assert_string_equal(c.store.url, want);
		pp_buf_free(&problems);
		pp_config_free(&c);
	}
	free(real);
}

/* check refuses every metrics_listen serve would refuse, with one parser. */
static void test_metrics_listen_checked(void **state)
{
	static const char *const bad[] = {"127.0.0.1:99999", ":",	    "9464", ":+80", ": 80",
					  "localhost:9464",  "127.0.0.1:-1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct pp_config c;
		struct pp_buf problems;
		char conf[128];
		snprintf(conf, sizeof(conf), "[dispatcher]\nmetrics_listen = \"%s\"\n", bad[i]);
		assert_int_equal(load(&c, conf, &problems), 0);
		assert_int_equal(pp_config_validate(&c, &problems), PP_EINVALID);
		snprintf(conf, sizeof(conf), "metrics_listen \"%s\"", bad[i]);
		assert_has(&problems, conf);
		struct pp_metrics *m = NULL;
		struct pp_error err = {0};
		assert_int_equal(pp_metrics_start(bad[i], &m, &err), PP_EINVALID);
		assert_null(m);
		pp_buf_free(&problems);
		pp_config_free(&c);
	}
	struct pp_config c;
	struct pp_buf problems;
	assert_int_equal(load(&c, "[dispatcher]\nmetrics_listen = 127.0.0.1:0\n", &problems), 0);
	assert_int_equal(pp_config_validate(&c, &problems), 0);
	assert_string_equal(pp_buf_str(&problems), "");
	pp_buf_free(&problems);
	pp_config_free(&c);
}

/* Plain http:// to a host that is not loopback (or link-local, where the
 * metadata services are) is a warning: check passes and says so. */
static void test_plain_http_warned(void **state)
{
	struct pp_config c;
	struct pp_buf problems;
	assert_int_equal(load(&c,
			      "[dispatcher]\n"
			      "prefect_api_url = http://prefect.internal:4200/api\n"
			      "[credentials \"g\"]\n" /* 3 */
			      "type = gcp\n"
			      "source = metadata\n"
			      "token_uri = http://user:pw@10.0.0.7/token\n"
			      "metadata_host = 169.254.169.254\n"
			      "[credentials \"a\"]\n" /* 8 */
			      "type = aws\n"
			      "source = imds\n"
			      "imds_endpoint = http://169.254.169.254\n"
			      "sts_endpoint = http://[::1]:9/\n"
			      "container_endpoint = HTTP://LOCALHOST:9/creds\n"
			      "[source \"prefect\"]\n"
			      "api_url = https://api.prefect.cloud/api\n",
			      &problems),
			 0);
	assert_int_equal(pp_config_validate(&c, &problems), 0);
	const char *f = c.path;
	assert_at(&problems, f, 0,
		  "warning: [dispatcher] prefect_api_url: plain http:// to prefect.internal");
	assert_at(&problems, f, 3,
		  "warning: [credentials \"g\"] token_uri: plain http:// to 10.0.0.7");
	/* The warning names the host, never the URL's password. */
	assert_null(strstr(pp_buf_str(&problems), "pw@"));
	for (const char *s = pp_buf_str(&problems); (s = strstr(s, "warning")); s++)
		assert_true(strstr(s, "plain http://") != NULL);
	assert_null(strstr(pp_buf_str(&problems), "169.254"));
	assert_null(strstr(pp_buf_str(&problems), "::1"));
	assert_null(strstr(pp_buf_str(&problems), "LOCALHOST"));
	assert_null(strstr(pp_buf_str(&problems), "prefect.cloud"));
	pp_buf_free(&problems);
	pp_config_free(&c);
}

/* A store password anywhere in the URL (userinfo, ?password=,
 * &sslpassword=, percent-encoded) is registered at load: check --print
 * and the store's errors never show it. */
static void test_url_credentials_redacted(void **state)
{
	struct pp_config c;
	struct pp_buf problems, shown;
	assert_int_equal(load(&c,
			      "[store]\n"
			      "url = postgresql://pp:Us%40erPw77@127.0.0.1:1/db?sslmode=disable&"
			      "password=QueryPw123&sslpassword=SslKeyPw456&connect_timeout=5\n",
			      &problems),
			 0);
	pp_buf_init(&shown, 1 << 20);
	assert_int_equal(pp_config_print(&c, &shown), 0);
	static const char *const pw[] = {"Us%40erPw77", "Us@erPw77", "QueryPw123", "SslKeyPw456"};
	for (size_t i = 0; i < sizeof(pw) / sizeof(pw[0]); i++)
		if (strstr(pp_buf_str(&shown), pw[i]))
			fail_msg("check --print shows %s: %s", pw[i], pp_buf_str(&shown));
	assert_has(&shown, "connect_timeout=5");
	struct pp_store *s = NULL;
	struct pp_error err = {0};
	assert_int_not_equal(pp_store_open(c.store.url, &s, &err), 0);
	assert_null(s);
	pp_error_prefix(&err, "opening %s: ", c.store.url);
	for (size_t i = 0; i < sizeof(pw) / sizeof(pw[0]); i++)
		if (strstr(err.msg, pw[i]))
			fail_msg("the store's error shows %s: %s", pw[i], err.msg);
	pp_buf_free(&shown);
	pp_buf_free(&problems);
	pp_config_free(&c);
}

/* FILE.d/NAME.conf after FILE, in name order: a drop-in re-opens a pool to
 * set its keys and adds sections; a duplicate within one file is still an
 * error, and a later drop-in wins over an earlier one. */
static void test_dropins(void **state)
{
	struct pp_config c;
	struct pp_buf problems;
	char d[128];

	snprintf(d, sizeof(d), "%s/pushpool.conf.d", dir);
	assert_int_equal(mkdir(d, 0755), 0);
	write_file("pushpool.conf.d/50-a.conf",
		   "[pool \"p\"]\njob_variables = {\"region\": \"a\"}\ncredentials = k\n"
		   "[credentials \"k\"]\ntype = gcp\nsource = metadata\n",
		   0600);
	write_file("pushpool.conf.d/60-b.conf",
		   "[pool \"p\"]\njob_variables = {\"region\": \"b\"}\n", 0600);
	write_file("pushpool.conf.d/70-c.conf.bak", "[pool \"p\"]\ntype = nonsense\n", 0600);
	if (load(&c, "[pool \"p\"]\ntype = ecs:push\n", &problems))
		fail_msg("%s", pp_buf_str(&problems));
	const struct pp_pool_conf *p = pp_config_pool(&c, "p");
	assert_non_null(p);
	assert_string_equal(p->type, "ecs:push");
	assert_string_equal(p->job_variables, "{\"region\": \"b\"}");
	assert_string_equal(p->credentials, "k");
	assert_non_null(pp_config_cred(&c, "k"));
	assert_non_null(strstr(pp_config_cred(&c, "k")->file_name, "50-a.conf"));
	assert_int_equal(c.ndropins, 2);
	pp_config_free(&c);
	pp_buf_free(&problems);
	write_file("pushpool.conf.d/80-d.conf", "[pool \"q\"]\ntype = ecs:push\n[pool \"q\"]\n",
		   0600);
	assert_int_not_equal(load(&c, "[pool \"p\"]\ntype = ecs:push\n", &problems), 0);
	assert_non_null(strstr(pp_buf_str(&problems), "80-d.conf:3: duplicate [pool \"q\"]"));
	pp_config_free(&c);
	pp_buf_free(&problems);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_key_parses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_overrides, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors_carry_file_and_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_errors_are_counted_in_err, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_values_quotes_comments_and_long_lines, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cross_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefect_source_switch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_print_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_listen_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plain_http_warned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_url_credentials_redacted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dropins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_print_effective_redacts_secrets, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
