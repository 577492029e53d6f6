/* prefect.yaml's deployments: into declared deployments: Prefect's fields
 * and their mapping, anchors and merge keys as Prefect's docs use them,
 * placeholders, pushpool's schedule policies, and every error naming the
 * field and FILE:LINE with nothing returned. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dispatcher/config.h"
#include "dispatcher/deploy_spec.h"
#include "lib/buf.h"

static char dir[64];
static char yaml_path[128];
static struct pp_config cfg;

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/pp-deploy-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(yaml_path, sizeof(yaml_path), "%s/prefect.yaml", dir);
	char conf[160];
	snprintf(conf, sizeof(conf), "%s/pushpool.conf", dir);
	FILE *f = fopen(conf, "w");
	assert_non_null(f);
	fputs("[pool \"demo\"]\ntype = ecs:push\n", f);
	fclose(f);
	struct pp_error err = {0};
	assert_int_equal(pp_config_init(&cfg, &err), 0);
	if (pp_config_load(&cfg, conf, &err))
		fail_msg("config: %s", err.msg);
	return 0;
}

static int teardown(void **state)
{
	pp_config_free(&cfg);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void write_yaml(const char *text)
{
	FILE *f = fopen(yaml_path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Read text as prefect.yaml, expecting success. */
static struct pp_deploy_spec *read_ok(const char *text, size_t *n)
{
	write_yaml(text);
	struct pp_deploy_spec *specs = NULL;
	struct pp_error err = {0};
	if (pp_deploy_specs_from_file(yaml_path, &cfg, NULL, 0, &specs, n, &err))
		fail_msg("unexpected error: %s\nfor:\n%s", err.msg, text);
	return specs;
}

/* Read text, expecting PP_EINVALID with a message holding "FILE:LINE: "
 * then every needle; out and n untouched. */
static void read_bad(const char *text, int line, ...)
{
	write_yaml(text);
	struct pp_deploy_spec *specs = (struct pp_deploy_spec *)0x1;
	size_t n = 77;
	struct pp_error err = {0};
	int rc = pp_deploy_specs_from_file(yaml_path, &cfg, NULL, 0, &specs, &n, &err);
	if (rc != PP_EINVALID)
		fail_msg("expected PP_EINVALID, got %d (%s) for:\n%s", rc, err.msg, text);
	assert_ptr_equal(specs, (struct pp_deploy_spec *)0x1);
	assert_int_equal(n, 77);
	char at[192];
	snprintf(at, sizeof(at), "%s:%d:", yaml_path, line);
	if (strncmp(err.msg, at, strlen(at)))
		fail_msg("message does not start with \"%s\": %s", at, err.msg);
	va_list ap;
	va_start(ap, line);
	for (const char *needle; (needle = va_arg(ap, const char *));)
		if (!strstr(err.msg, needle))
			fail_msg("missing \"%s\" in: %s", needle, err.msg);
	va_end(ap);
}

static const char *data_file(const char *name)
{
	static char path[256];
	snprintf(path, sizeof(path), "tests/data/deploy/%s", name);
	return path;
}

static void test_small_example(void **state)
{
	struct pp_deploy_spec *s = NULL;
	size_t n = 0;
	struct pp_error err = {0};
	assert_int_equal(
		pp_deploy_specs_from_file(data_file("prefect.yaml"), &cfg, NULL, 0, &s, &n, &err),
		0);
	assert_int_equal(n, 1);
	assert_string_equal(s->name, "hello-daily");
	assert_string_equal(s->where, "tests/data/deploy/prefect.yaml:8");
	assert_string_equal(s->pool, "demo");
	assert_string_equal(s->queue, "default");
	assert_string_equal(s->entrypoint, "flows/hello.py:hello");
	assert_string_equal(s->description, "Says hello every morning");
	assert_string_equal(s->tags, "[\"demo\"]");
	assert_string_equal(s->parameters, "{\"name\":\"world\"}");
	assert_string_equal(s->job_variables,
			    "{\"image\":\"docker.io/prefecthq/prefect:3-latest\"}");
	assert_non_null(strstr(s->parameter_schema, "\"required\":[\"name\"]"));
	assert_false(s->paused);
	assert_int_equal(s->concurrency_limit, 0);
	assert_int_equal(s->nschedules, 1);
	struct pp_deploy_schedule *c = &s->schedules[0];
	assert_int_equal(c->spec.kind, PP_SCHEDULE_CRON);
	assert_string_equal(c->cron, "0 7 * * *");
	assert_ptr_equal(c->spec.cron, c->cron);
	assert_string_equal(c->spec.timezone, "Europe/Berlin");
	assert_true(c->spec.day_or);
	assert_true(c->active);
	assert_int_equal(c->catchup, PP_CATCHUP_SKIP);
	assert_int_equal(c->overlap, PP_OVERLAP_ALLOW);
	assert_string_equal(c->parameters, "{}");
	assert_string_equal(c->where, "tests/data/deploy/prefect.yaml:27");
	pp_deploy_specs_free(s, n);
}

/* The shape of Prefect's docs: definitions with anchors, aliases and merge
 * keys, build/push/pull steps (ignored), the legacy schedule key. */
static void test_definitions_example(void **state)
{
	struct pp_deploy_spec *s = NULL;
	size_t n = 0;
	struct pp_error err = {0};
	assert_int_equal(pp_deploy_specs_from_file(data_file("prefect-definitions.yaml"), &cfg,
						   NULL, 0, &s, &n, &err),
			 0);
	assert_int_equal(n, 3);
	assert_string_equal(s[0].name, "ingest");
	assert_string_equal(s[0].tags, "[\"etl\",\"nightly\"]");
	assert_string_equal(s[0].pool, "demo");
	/* Placeholders in job variables are left as Prefect leaves them. */
	assert_string_equal(
		s[0].job_variables,
		"{\"image\":\"{{ build-image.image }}\",\"cpu\":1,\"memory\":\"512Mi\"}");
	assert_int_equal(s[0].schedules[0].spec.kind, PP_SCHEDULE_INTERVAL);
	assert_int_equal(s[0].schedules[0].spec.interval, 600);
	/* No anchor: 2020-01-01T00:00 UTC, the same on every apply. */
	assert_int_equal(s[0].schedules[0].spec.anchor, 1577836800);

	struct pp_deploy_spec *t = &s[1];
	assert_string_equal(t->queue, "high");
	assert_string_equal(t->job_variables, "{\"image\":\"{{ build-image.image }}\",\"cpu\":2}");
	assert_int_equal(t->concurrency_limit, 1);
	assert_int_equal(t->collision, PP_COLLISION_CANCEL_NEW);
	assert_int_equal(t->nschedules, 3);
	assert_string_equal(t->schedules[0].cron, "30 2 * * *");
	assert_int_equal(t->schedules[0].catchup, PP_CATCHUP_LATEST);
	assert_int_equal(t->schedules[0].overlap, PP_OVERLAP_SKIP);
	assert_string_equal(t->schedules[1].cron, "0 12 * * 6");
	assert_string_equal(t->schedules[1].timezone, "Europe/Berlin");
	assert_int_equal(t->schedules[1].overlap, PP_OVERLAP_SKIP);
	assert_string_equal(t->schedules[1].parameters, "{\"full_refresh\":true}");
	assert_int_equal(t->schedules[2].spec.kind, PP_SCHEDULE_RRULE);
	assert_false(t->schedules[2].active);

	struct pp_deploy_spec *b = &s[2];
	assert_true(b->paused);
	assert_string_equal(b->tags, "[]");
	assert_int_equal(b->nschedules, 1);
	assert_int_equal(b->schedules[0].spec.interval, 6 * 3600);
	/* 2024-01-01T03:00 on Berlin's clock is 02:00Z. */
	assert_int_equal(b->schedules[0].spec.anchor, 1704074400);
	assert_int_equal(b->schedules[0].catchup, PP_CATCHUP_ALL);
	assert_int_equal(b->schedules[0].catchup_window, 86400);
	pp_deploy_specs_free(s, n);

	/* --name picks deployments; one not there is an error. */
	const char *names[] = {"backfill", "ingest"};
	assert_int_equal(pp_deploy_specs_from_file(data_file("prefect-definitions.yaml"), &cfg,
						   names, 2, &s, &n, &err),
			 0);
	assert_int_equal(n, 2);
	assert_string_equal(s[0].name, "ingest");
	assert_string_equal(s[1].name, "backfill");
	pp_deploy_specs_free(s, n);
	const char *missing[] = {"nope"};
	assert_int_equal(pp_deploy_specs_from_file(data_file("prefect-definitions.yaml"), &cfg,
						   missing, 1, &s, &n, &err),
			 PP_EINVALID);
	assert_non_null(strstr(err.msg, "no deployment named \"nope\""));
}

#define HEAD "deployments:\n  - name: d\n    work_pool: {name: demo}\n"

static void test_schedule_forms(void **state)
{
	size_t n;
	struct pp_deploy_spec *s = read_ok(HEAD "    schedules:\n"
						"      - interval: PT1H30M\n"
						"      - interval: '01:00:00'\n"
						"      - interval: 1 day, 0:00:00\n"
						"      - interval: 15m\n"
						"      - interval: 1:00:00\n"
						"        anchor_date: '2026-03-01T00:00:00+01:00'\n"
						"      - interval: P2W\n"
						"        anchor_date: 2026-03-01\n"
						"        timezone: America/New_York\n"
						"      - cron: 0 0 13 * 5\n"
						"        day_or: false\n"
						"      - rrule: FREQ=WEEKLY;BYDAY=MO\n",
					   &n);
	struct pp_deploy_schedule *c = s->schedules;
	assert_int_equal(s->nschedules, 8);
	assert_int_equal(c[0].spec.interval, 5400);
	assert_int_equal(c[1].spec.interval, 3600);
	assert_int_equal(c[2].spec.interval, 86400);
	assert_int_equal(c[3].spec.interval, 900);
	/* Unquoted 1:00:00 is a string (PyYAML would read 3600 seconds). */
	assert_int_equal(c[4].spec.interval, 3600);
	assert_int_equal(c[4].spec.anchor, 1772319600);
	assert_int_equal(c[5].spec.interval, 14 * 86400);
	/* Midnight on New York's clock: 05:00Z. */
	assert_int_equal(c[5].spec.anchor, 1772341200);
	assert_false(c[6].spec.day_or);
	assert_int_equal(c[7].spec.kind, PP_SCHEDULE_RRULE);
	pp_deploy_specs_free(s, n);

	/* The legacy single schedule; an empty one next to schedules is
	 * ignored, as Prefect does. */
	s = read_ok(HEAD "    schedule: {cron: '*/5 * * * *'}\n", &n);
	assert_int_equal(s->nschedules, 1);
	assert_string_equal(s->schedules[0].cron, "*/5 * * * *");
	pp_deploy_specs_free(s, n);
	s = read_ok(HEAD "    schedule: {}\n    schedules: []\n", &n);
	assert_int_equal(s->nschedules, 0);
	pp_deploy_specs_free(s, n);
	/* Fields of another kind of schedule are ignored, as Prefect does. */
	s = read_ok(HEAD
		    "    schedules:\n      - cron: 0 1 * * *\n        anchor_date: 2026-01-01\n"
		    "      - interval: 60\n        day_or: false\n",
		    &n);
	assert_int_equal(s->nschedules, 2);
	pp_deploy_specs_free(s, n);
	s = read_ok(HEAD "    schedules:\n", &n);
	assert_int_equal(s->nschedules, 0);
	pp_deploy_specs_free(s, n);
}

static void test_schedule_errors(void **state)
{
	read_bad(HEAD "    schedules:\n      - cron: 0 25 * * *\n", 5, "deployment \"d\"",
		 "schedule", "hour", NULL);
	read_bad(HEAD "    schedules:\n      - cron: 0 1 * * *\n        timezone: Mars/Base\n", 5,
		 "Mars/Base", NULL);
	read_bad(HEAD "    schedules:\n      - cron: 0 1 * * *\n        interval: 60\n", 5,
		 "schedules[0]: exactly one of cron, interval or rrule", NULL);
	read_bad(HEAD "    schedules:\n      - {timezone: UTC}\n", 5,
		 "exactly one of cron, interval or rrule is needed (got 0)", NULL);
	read_bad(HEAD "    schedules:\n      - cron: 0 1 * * *\n        cathcup: all\n", 6,
		 "schedules[0].cathcup: not a schedule field", NULL);
	read_bad(HEAD "    schedules:\n      - interval: 0\n", 5,
		 "schedules[0].interval: 0 must be a positive whole number", NULL);
	read_bad(HEAD "    schedules:\n      - interval: 1.5\n", 5, "whole number", NULL);
	read_bad(HEAD "    schedules:\n      - interval: P1M\n", 5, "months have no fixed length",
		 NULL);
	read_bad(HEAD "    schedules:\n      - interval: soon\n", 5,
		 "interval: \"soon\" is not a duration", NULL);
	read_bad(HEAD "    schedules:\n      - interval: 60\n        anchor_date: yesterday\n", 6,
		 "anchor_date: \"yesterday\" is not a date-time", NULL);
	read_bad(HEAD "    schedules:\n      - interval: 60\n        catchup: some\n", 6,
		 "catchup: must be skip, latest or all", NULL);
	read_bad(HEAD "    schedules:\n      - interval: 60\n        overlap: queue\n", 6,
		 "overlap: must be allow, skip, buffer_one or cancel_other", NULL);
	read_bad(HEAD "    schedules:\n      - interval: 60\n        catchup_window: 1h\n", 6,
		 "catchup_window: only means something with catchup: all", NULL);
	read_bad(HEAD "    schedules:\n      - interval: 60\n        active: maybe\n", 6,
		 "active: must be true or false, not a string", NULL);
	read_bad(HEAD "    schedule: {cron: '* * * * *'}\n    schedules: []\n", 4,
		 "both schedule and schedules", NULL);
	read_bad(HEAD "    schedules: {cron: '* * * * *'}\n", 4, "schedules: must be a list", NULL);
	read_bad(HEAD "    schedules:\n      - rrule: FREQ=SOMETIMES\n", 5, "rrule", NULL);
}

static void test_deployment_fields(void **state)
{
	size_t n;
	struct pp_deploy_spec *s =
		read_ok(HEAD "    concurrency_limit: 3\n    paused: yes\n    description: |\n"
			     "      two\n      lines\n    tags: [a, b]\n    version: '1.0'\n"
			     "    enforce_parameter_schema: false\n"
			     "    parameter_openapi_schema: {type: object, required: [x]}\n"
			     "    pull:\n      - prefect.deployments.steps.git_clone: {}\n"
			     "    something_else: 1\n",
			&n);
	assert_int_equal(s->concurrency_limit, 3);
	assert_int_equal(s->collision, PP_COLLISION_ENQUEUE);
	assert_true(s->paused);
	assert_string_equal(s->description, "two\nlines\n");
	assert_string_equal(s->tags, "[\"a\",\"b\"]");
	assert_null(s->queue);
	assert_string_equal(s->job_variables, "{}");
	/* enforce_parameter_schema: false: no schema to hold runs to. */
	assert_null(s->parameter_schema);
	pp_deploy_specs_free(s, n);

	read_bad("deployments:\n  - work_pool: {name: demo}\n", 2,
		 "deployments[0]: name: is missing", NULL);
	read_bad("deployments:\n  - name: a/b\n    work_pool: {name: demo}\n", 2,
		 "deployments[0]: name: \"a/b\" holds one of", NULL);
	read_bad("deployments:\n  - name: d\n", 2, "deployment \"d\": work_pool: is missing", NULL);
	read_bad("deployments:\n  - name: d\n    work_pool: {work_queue_name: q}\n", 3,
		 "work_pool.name: is missing", NULL);
	read_bad("deployments:\n  - name: d\n    work_pool:\n      name: elsewhere\n", 2,
		 "deployment \"d\": work pool \"elsewhere\" is not a [pool \"elsewhere\"] section",
		 NULL);
	read_bad(HEAD "    tags: etl\n", 4, "tags: must be a list of strings", NULL);
	read_bad(HEAD "    tags: [1]\n", 4, "tags: must be a list of strings (one is a number)",
		 NULL);
	read_bad(HEAD "    paused: 1\n", 4, "paused: must be true or false", NULL);
	read_bad(HEAD "    parameters: [1]\n", 4, "parameters: must be a mapping", NULL);
	read_bad(HEAD "    concurrency_limit: 0\n", 4, "concurrency_limit: must be a whole number",
		 NULL);
	read_bad(HEAD "    concurrency_limit: {limit: 2, collision_strategy: DROP}\n", 4,
		 "collision_strategy: must be ENQUEUE or CANCEL_NEW", NULL);
	read_bad(HEAD "    concurrency_limit: {collision_strategy: ENQUEUE}\n", 4,
		 "concurrency_limit.limit: is missing", NULL);
	read_bad(HEAD "  - name: d\n    work_pool: {name: demo}\n", 4,
		 "name \"d\" is used twice (first at line 2", NULL);
	read_bad("deployments: []\n", 1, "no deployments", NULL);
	read_bad("- 1\n", 1, "a Prefect project file is a mapping", NULL);
	read_bad("deployments: {name: d}\n", 1, "deployments: must be a list", NULL);
	/* A broken deployment fails the file even when not asked for. */
	write_yaml(HEAD "  - name: e\n    work_pool: {name: demo}\n    paused: 7\n");
	const char *names[] = {"d"};
	struct pp_deploy_spec *out = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_deploy_specs_from_file(yaml_path, &cfg, names, 1, &out, &n, &err),
			 PP_EINVALID);
	assert_non_null(strstr(err.msg, "deployment \"e\": paused"));
}

static void test_parameters_against_schema(void **state)
{
	const char *schema = "    parameter_openapi_schema:\n"
			     "      type: object\n"
			     "      properties:\n"
			     "        n: {type: integer, minimum: 1}\n"
			     "        mode: {enum: [fast, full]}\n"
			     "      required: [n]\n";
	char text[1024];
	size_t n;
	/* Required parameters may wait for the run (deployment run -p)... */
	snprintf(text, sizeof(text), "%s%s    parameters: {mode: fast}\n", HEAD, schema);
	struct pp_deploy_spec *s = read_ok(text, &n);
	pp_deploy_specs_free(s, n);
	/* ...but a wrong one is refused, naming it. */
	snprintf(text, sizeof(text), "%s%s    parameters: {n: 0}\n", HEAD, schema);
	read_bad(text, 2, "deployment \"d\": \"parameters.n\"", NULL);
	snprintf(text, sizeof(text), "%s%s    parameters: {n: 1, mode: slow}\n", HEAD, schema);
	read_bad(text, 2, "\"parameters.mode\"", NULL);
	/* A scheduled run has only what the deployment and schedule give. */
	snprintf(text, sizeof(text),
		 "%s%s    schedules:\n      - cron: '0 1 * * *'\n        active: true\n", HEAD,
		 schema);
	read_bad(text, 11, "the runs of this schedule would fail", "required property \"n\"", NULL);
	snprintf(text, sizeof(text),
		 "%s%s    schedules:\n      - cron: '0 1 * * *'\n        parameters: {n: 2}\n"
		 "      - cron: '0 2 * * *'\n        active: false\n",
		 HEAD, schema);
	s = read_ok(text, &n);
	assert_string_equal(s->schedules[0].parameters, "{\"n\":2}");
	pp_deploy_specs_free(s, n);
	snprintf(text, sizeof(text),
		 "%s%s    parameters: {n: 1}\n    schedules:\n      - cron: '0 1 * * *'\n"
		 "        parameters: {n: -1}\n",
		 HEAD, schema);
	read_bad(text, 12, "the runs of this schedule would fail: \"parameters.n\"", NULL);
}

static void test_placeholders(void **state)
{
	size_t n;
	setenv("PP_TEST_BUCKET", "s3://data", 1);
	unsetenv("PP_TEST_UNSET");
	setenv("PP_TEST_ENV", "prod", 1);
	struct pp_deploy_spec *s = read_ok("deployments:\n  - name: etl-{{ $PP_TEST_ENV }}\n"
					   "    work_pool: {name: demo}\n",
					   &n);
	assert_string_equal(s->name, "etl-prod");
	pp_deploy_specs_free(s, n);
	unsetenv("PP_TEST_ENV");
	s = read_ok(HEAD "    parameters:\n      src: '{{ $PP_TEST_BUCKET }}/raw'\n"
			 "      whole: '{{$PP_TEST_BUCKET}}'\n"
			 "    description: 'uses {{ not closed'\n",
		    &n);
	assert_string_equal(s->parameters, "{\"src\":\"s3://data/raw\",\"whole\":\"s3://data\"}");
	assert_string_equal(s->description, "uses {{ not closed");
	pp_deploy_specs_free(s, n);
	read_bad(HEAD "    parameters:\n      image: '{{ build-image.image }}'\n", 5,
		 "deployment \"d\": parameters.image: {{ build-image.image }} cannot be resolved",
		 NULL);
	read_bad(HEAD "    tags: ['{{ prefect.variables.team }}']\n", 4,
		 "tags[0]: {{ prefect.variables.team }} cannot be resolved", NULL);
	read_bad(HEAD "    description: '{{ $PP_TEST_UNSET }}'\n", 4,
		 "description: {{ $PP_TEST_UNSET }}: environment variable PP_TEST_UNSET is not "
		 "set",
		 NULL);
	/* In job variables: the environment is filled, the rest kept. */
	s = read_ok("deployments:\n  - name: d\n    work_pool:\n      name: demo\n"
		    "      job_variables:\n        image: '{{ build-image.image }}'\n"
		    "        env: {B: '{{ $PP_TEST_BUCKET }}'}\n",
		    &n);
	assert_string_equal(
		s->job_variables,
		"{\"image\":\"{{ build-image.image }}\",\"env\":{\"B\":\"s3://data\"}}");
	pp_deploy_specs_free(s, n);
	unsetenv("PP_TEST_BUCKET");
}

static void test_file_level_errors(void **state)
{
	struct pp_deploy_spec *s = NULL;
	size_t n = 0;
	struct pp_error err = {0};
	char missing[160];
	snprintf(missing, sizeof(missing), "%s/none.yaml", dir);
	assert_int_equal(pp_deploy_specs_from_file(missing, &cfg, NULL, 0, &s, &n, &err), PP_EIO);
	assert_non_null(strstr(err.msg, "none.yaml"));
	read_bad("deployments:\n  - name: [\n", 3, NULL);
	/* An alias bomb is bad content, refused quickly. */
	struct pp_buf b;
	pp_buf_init(&b, 1 << 16);
	pp_buf_puts(&b, "definitions:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (int i = 1; i <= 9; i++) {
		pp_buf_printf(&b, "  a%d: &a%d [", i, i);
		for (int k = 0; k < 10; k++)
			pp_buf_printf(&b, "%s*a%d", k ? ", " : "", i - 1);
		pp_buf_puts(&b, "]\n");
	}
	pp_buf_puts(&b, "deployments: []\n");
	write_yaml(b.data);
	pp_buf_free(&b);
	assert_int_equal(pp_deploy_specs_from_file(yaml_path, &cfg, NULL, 0, &s, &n, &err),
			 PP_EINVALID);
	assert_non_null(strstr(err.msg, "aliases expanded"));
	assert_int_equal(pp_exit_status(PP_EINVALID), 65);
	/* Without a configuration, any pool name passes. */
	write_yaml("deployments:\n  - name: d\n    work_pool: {name: anywhere}\n");
	assert_int_equal(pp_deploy_specs_from_file(yaml_path, NULL, NULL, 0, &s, &n, &err), 0);
	assert_string_equal(s->pool, "anywhere");
	pp_deploy_specs_free(s, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_small_example, setup, teardown),
		cmocka_unit_test_setup_teardown(test_definitions_example, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schedule_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schedule_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deployment_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parameters_against_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_placeholders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_level_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
