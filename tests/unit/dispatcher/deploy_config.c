/* [deployment "NAME"] and [schedule "NAME"] sections into the same
 * declared deployments prefect.yaml gives: keys, the inline schedule and
 * [schedule] sections, environment overrides, and errors with FILE:LINE,
 * also through `check`'s validation. */
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
static char conf_path[128];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/pp-deploy-conf-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(conf_path, sizeof(conf_path), "%s/pushpool.conf", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void write_at(const char *name, const char *text)
{
	char path[192];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

#define POOL "[pool \"demo\"]\ntype = ecs:push\n"

static void load(struct pp_config *c, const char *text)
{
	write_at("pushpool.conf", text);
	struct pp_error err = {0};
	assert_int_equal(pp_config_init(c, &err), 0);
	if (pp_config_load(c, conf_path, &err))
		fail_msg("config: %s", err.msg);
}

/* Load text; the specs must fail with PP_EINVALID at FILE:LINE naming
 * needle. */
static void specs_bad(const char *text, int line, const char *needle)
{
	struct pp_config c;
	load(&c, text);
	struct pp_deploy_spec *s = NULL;
	size_t n = 0;
	struct pp_error err = {0};
	assert_int_equal(pp_deploy_specs_from_config(&c, &s, &n, &err), PP_EINVALID);
	assert_null(s);
	char at[192];
	snprintf(at, sizeof(at), "%s:%d: ", conf_path, line);
	if (strncmp(err.msg, at, strlen(at)) || !strstr(err.msg, needle))
		fail_msg("expected \"%s...%s\", got: %s", at, needle, err.msg);
	/* check reports the same. */
	struct pp_buf out;
	pp_buf_init(&out, 1 << 16);
	assert_int_equal(pp_config_validate(&c, &out), PP_EINVALID);
	if (!strstr(pp_buf_str(&out), needle))
		fail_msg("check does not report \"%s\":\n%s", needle, pp_buf_str(&out));
	pp_buf_free(&out);
	pp_config_free(&c);
}

static void test_sections(void **state)
{
	write_at("schema.json", "{\"type\": \"object\", \"properties\": {\"full\": "
				"{\"type\": \"boolean\"}}, \"required\": [\"full\"]}");
	struct pp_config c;
	load(&c, POOL "\n[deployment \"etl\"]\n"
		      "pool = demo\n"
		      "queue = high\n"
		      "entrypoint = flows/etl.py:etl\n"
		      "description = nightly load\n"
		      "tags = etl, nightly ,, x\n"
		      "parameters = {\"full\": false}\n"
		      "parameter_schema_file = schema.json\n"
		      "job_variables = {\"cpu\": 2}\n"
		      "concurrency_limit = 2\n"
		      "collision_strategy = cancel_new\n"
		      "cron = 30 2 * * *\n"
		      "timezone = Europe/Berlin\n"
		      "catchup = latest\n"
		      "overlap = skip\n"
		      "\n[schedule \"weekly\"]\n"
		      "deployment = etl\n"
		      "interval = 1d\n"
		      "anchor_date = 2026-01-03T12:00:00\n"
		      "timezone = Europe/Berlin\n"
		      "catchup = all\n"
		      "catchup_window = 2d\n"
		      "parameters = {\"full\": true}\n"
		      "\n[deployment \"bare\"]\npool = demo\npaused = true\n"
		      "\n[schedule \"monthly\"]\ndeployment = etl\n"
		      "rrule = FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=6\nactive = false\n");
	struct pp_deploy_spec *s = NULL;
	size_t n = 0;
	struct pp_error err = {0};
	if (pp_deploy_specs_from_config(&c, &s, &n, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(n, 2);
	struct pp_deploy_spec *d = &s[0];
	assert_string_equal(d->name, "etl");
	char where[192];
	snprintf(where, sizeof(where), "%s:4", conf_path);
	assert_string_equal(d->where, where);
	assert_string_equal(d->pool, "demo");
	assert_string_equal(d->queue, "high");
	assert_string_equal(d->entrypoint, "flows/etl.py:etl");
	assert_string_equal(d->description, "nightly load");
	assert_string_equal(d->tags, "[\"etl\",\"nightly\",\"x\"]");
	assert_string_equal(d->parameters, "{\"full\": false}");
	assert_string_equal(d->job_variables, "{\"cpu\": 2}");
	assert_non_null(strstr(d->parameter_schema, "\"required\":[\"full\"]"));
	assert_int_equal(d->concurrency_limit, 2);
	assert_int_equal(d->collision, PP_COLLISION_CANCEL_NEW);
	assert_false(d->paused);
	assert_int_equal(d->nschedules, 3);
	struct pp_deploy_schedule *k = d->schedules;
	assert_int_equal(k[0].spec.kind, PP_SCHEDULE_CRON);
	assert_string_equal(k[0].spec.cron, "30 2 * * *");
	assert_string_equal(k[0].spec.timezone, "Europe/Berlin");
	assert_int_equal(k[0].catchup, PP_CATCHUP_LATEST);
	assert_int_equal(k[0].overlap, PP_OVERLAP_SKIP);
	assert_string_equal(k[0].where, where);
	assert_int_equal(k[1].spec.kind, PP_SCHEDULE_INTERVAL);
	assert_int_equal(k[1].spec.interval, 86400);
	/* 12:00 on Berlin's clock in winter: 11:00Z. */
	assert_int_equal(k[1].spec.anchor, 1767438000);
	assert_int_equal(k[1].catchup, PP_CATCHUP_ALL);
	assert_int_equal(k[1].catchup_window, 2 * 86400);
	assert_string_equal(k[1].parameters, "{\"full\": true}");
	snprintf(where, sizeof(where), "%s:20", conf_path);
	assert_string_equal(k[1].where, where);
	assert_int_equal(k[2].spec.kind, PP_SCHEDULE_RRULE);
	assert_false(k[2].active);
	assert_true(s[1].paused);
	assert_int_equal(s[1].nschedules, 0);
	assert_string_equal(s[1].tags, "[]");
	assert_string_equal(s[1].parameters, "{}");
	pp_deploy_specs_free(s, n);

	/* The effective configuration prints the sections back. */
	struct pp_buf out;
	pp_buf_init(&out, 1 << 16);
	assert_int_equal(pp_config_print(&c, &out), 0);
	assert_non_null(strstr(pp_buf_str(&out), "[deployment \"etl\"]\npool = demo\n"));
	assert_non_null(strstr(pp_buf_str(&out), "[schedule \"weekly\"]\ndeployment = etl\n"));
	pp_buf_reset(&out);
	assert_int_equal(pp_config_validate(&c, &out), 0);
	pp_buf_free(&out);
	pp_config_free(&c);

	/* No [deployment]: no specs, no error. */
	load(&c, POOL);
	assert_int_equal(pp_deploy_specs_from_config(&c, &s, &n, &err), 0);
	assert_int_equal(n, 0);
	pp_deploy_specs_free(s, n);
	pp_config_free(&c);
}

static void test_environment_overrides(void **state)
{
	setenv("PUSHPOOL_DEPLOYMENT_MY_ETL_CRON", "0 5 * * *", 1);
	setenv("PUSHPOOL_SCHEDULE_EXTRA_ACTIVE", "false", 1);
	struct pp_config c;
	load(&c, POOL "[deployment \"my.etl\"]\npool = demo\ncron = 0 1 * * *\n"
		      "[schedule \"extra\"]\ndeployment = my.etl\ninterval = 60\n");
	unsetenv("PUSHPOOL_DEPLOYMENT_MY_ETL_CRON");
	unsetenv("PUSHPOOL_SCHEDULE_EXTRA_ACTIVE");
	struct pp_deploy_spec *s = NULL;
	size_t n = 0;
	struct pp_error err = {0};
	assert_int_equal(pp_deploy_specs_from_config(&c, &s, &n, &err), 0);
	assert_string_equal(s->schedules[0].cron, "0 5 * * *");
	assert_false(s->schedules[1].active);
	pp_deploy_specs_free(s, n);
	pp_config_free(&c);
}

static void test_errors(void **state)
{
	specs_bad(POOL "[deployment \"d\"]\npool = other\n", 3,
		  "deployment \"d\": work pool \"other\" is not a [pool \"other\"] section");
	specs_bad(POOL "[deployment \"d\"]\npool = demo\ncron = 61 * * * *\n", 3,
		  "deployment \"d\": schedule: ");
	specs_bad(POOL "[deployment \"d\"]\npool = demo\ncron = * * * * *\ninterval = 5m\n", 3,
		  "[deployment \"d\"] cron, interval, rrule: exactly one is needed (got 2)");
	specs_bad(POOL "[deployment \"d\"]\npool = demo\ntimezone = UTC\n", 3,
		  "[deployment \"d\"] timezone: set without cron, interval or rrule");
	specs_bad(POOL "[deployment \"d\"]\npool = demo\ninterval = 1 fortnight\n", 3,
		  "[deployment \"d\"] interval: \"1 fortnight\" is not a duration");
	specs_bad(POOL "[deployment \"d\"]\npool = demo\ninterval = 60\ntimezone = Nowhere/X\n", 3,
		  "Nowhere/X");
	specs_bad(POOL
		  "[deployment \"d\"]\npool = demo\ncron = * * * * *\nanchor_date = 2026-01-01\n",
		  3, "anchor_date: belongs to an interval schedule");
	specs_bad(POOL "[deployment \"d\"]\npool = demo\ncron = * * * * *\ncatchup_window = 1h\n",
		  3, "catchup_window: only means something with catchup = all");
	specs_bad(POOL "[deployment \"d\"]\npool = demo\n[schedule \"s\"]\ndeployment = e\n"
		       "cron = * * * * *\n",
		  5, "[schedule \"s\"] deployment: no [deployment \"e\"] section");
	specs_bad(POOL "[deployment \"d\"]\npool = demo\n[schedule \"s\"]\ndeployment = d\n", 5,
		  "[schedule \"s\"] cron, interval, rrule: exactly one is needed (got 0)");
	write_at("bad-schema.json", "[1]");
	specs_bad(POOL "[deployment \"d\"]\npool = demo\nparameter_schema_file = bad-schema.json\n",
		  3, "holds JSON of type array, not a schema object");
	specs_bad(POOL "[deployment \"d\"]\npool = demo\nparameter_schema_file = none.json\n", 3,
		  "parameter_schema_file: ");
	write_at("schema.json", "{\"type\": \"object\", \"required\": [\"x\"], \"properties\": "
				"{\"x\": {\"type\": \"string\"}}}");
	specs_bad(POOL "[deployment \"d\"]\npool = demo\nparameters = {\"x\": 1}\n"
		       "parameter_schema_file = schema.json\n",
		  3, "\"parameters.x\"");
	specs_bad(POOL "[deployment \"d\"]\npool = demo\nparameter_schema_file = schema.json\n"
		       "cron = 0 1 * * *\n",
		  3, "the runs of this schedule would fail");

	/* Key-level problems are the configuration's own, with their line. */
	struct pp_config c;
	struct pp_error err = {0};
	write_at("pushpool.conf", POOL "[deployment \"d\"]\ncatchup = sometimes\nqueue = q\n"
				       "[deployment \"d\"]\npool = demo\n");
	assert_int_equal(pp_config_init(&c, &err), 0);
	assert_int_equal(pp_config_load(&c, conf_path, &err), PP_EINVALID);
	char want[256];
	snprintf(want, sizeof(want), "%s:4: catchup: ", conf_path);
	assert_non_null(strstr(err.msg, want));
	assert_non_null(strstr(err.msg, "duplicate [deployment \"d\"] (first defined at line 3)"));
	assert_non_null(strstr(err.msg, "[deployment \"d\"] needs pool"));
	pp_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_environment_overrides, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
