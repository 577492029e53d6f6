/* The pool runtime: every provider's pool type opens against its built-in
 * template, aliases resolve through the registry, jobs get the Prefect URL
 * and key serve gives them, and a bad template, credential, variables or
 * key file is refused with the pool named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dispatcher/config.h"
#include "dispatcher/pool.h"
#include "lib/log.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/pp-pool-XXXXXX");
	assert_non_null(mkdtemp(dir));
	unsetenv("PREFECT_API_KEY");
	unsetenv("PUSHPOOL_TEMPLATE_DIR");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	pp_secret_clear();
	return 0;
}

static const char *write_file(const char *name, const char *text)
{
	static char path[4][256];
	static int next;
	char *p = path[next++ % 4];
	snprintf(p, 256, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(p, 0600), 0);
	return p;
}

static void load(struct pp_config *c, const char *text)
{
	struct pp_error err = {0};
	assert_int_equal(pp_config_init(c, &err), 0);
	if (pp_config_load(c, write_file("pushpool.conf", text), &err))
		fail_msg("config: %s", err.msg);
}

static void test_every_type_opens(void **state)
{
	(void)state;
	for (size_t i = 0; pp_providers[i]; i++) {
		for (const char *const *t = pp_providers[i]->pool_types; *t; t++) {
			char text[256];
			snprintf(text, sizeof(text), "[pool \"p\"]\ntype = %s\n", *t);
			struct pp_config c;
			load(&c, text);
			struct pp_pool *p = NULL;
			struct pp_error err = {0};
			if (pp_pool_open(&c, &c.pools[0], 0, &p, &err))
				fail_msg("%s: %s", *t, err.msg);
			assert_ptr_equal(p->prov, pp_providers[i]);
			assert_string_equal(p->type, pp_providers[i]->pool_types[0]);
			assert_string_equal(p->name, "p");
			assert_non_null(pp_json_get(p->tmpl, "job_configuration"));
			assert_null(p->cred);
			assert_null(p->vars);
			assert_null(p->endpoint);
			assert_null(p->api_url);
			pp_pool_close(p);
			pp_config_free(&c);
		}
	}
}

/* The job serve submits: pool variables under the run's, the pool's
 * endpoint on the run's io, and the Prefect source's URL and key when
 * [dispatcher] sets none (as a Prefect worker hands its own to its jobs). */
static void test_render_like_serve(void **state)
{
	(void)state;
	struct pp_config c;
	load(&c, "[source \"prefect\"]\n"
		 "api_url = http://prefect.example/api\n"
		 "api_key = pnu_secret_value\n"
		 "[pool \"p\"]\n"
		 "type = ecs\n"
		 "endpoint = http://127.0.0.1:9\n"
		 "job_variables = {\"image\": \"pool-image\", \"cpu\": 512}\n");
	struct pp_pool *p = NULL;
	struct pp_error err = {0};
	if (pp_pool_open(&c, &c.pools[0], 0, &p, &err))
		fail_msg("%s", err.msg);
	assert_string_equal(p->type, "ecs:push");
	assert_string_equal(p->api_url, "http://prefect.example/api");
	assert_string_equal(p->api_key, "pnu_secret_value");

	struct pp_json *run_vars = NULL, *job = NULL;
	const char *rv = "{\"image\": \"run-image\"}";
	assert_int_equal(pp_json_parse(rv, strlen(rv), NULL, &run_vars, &err), 0);
	struct pp_run_ctx ctx = {.flow_run_id = "r1", .flow_run_name = "r1"};
	if (pp_pool_render(p, NULL, 0, NULL, run_vars, &ctx, &job, &err))
		fail_msg("%s", err.msg);
	char *text = pp_json_to_string(job, 0);
	assert_non_null(strstr(text, "run-image"));
	assert_null(strstr(text, "pool-image"));
	assert_non_null(strstr(text, "\"PREFECT_API_URL\":\"http://prefect.example/api\""));
	assert_non_null(strstr(text, "\"PREFECT_API_KEY\":\"pnu_secret_value\""));
	free(text);

	struct pp_run_io io = {0};
	pp_pool_io_init(p, &io, "r1", "r1", job);
	assert_string_equal(io.endpoint, "http://127.0.0.1:9");
	assert_int_equal(io.attempt, 1);
	assert_ptr_equal(io.pool_shared, &p->shared);
	assert_ptr_equal(io.job, job);
	pp_json_free(job);
	pp_json_free(run_vars);
	pp_pool_close(p);
	pp_config_free(&c);
}

static void assert_refused(const struct pp_config *c, unsigned flags, int code, const char *text)
{
	struct pp_pool *p = NULL;
	struct pp_error err = {0};
	int rc = pp_pool_open(c, &c->pools[0], flags, &p, &err);
	if (rc != code || !strstr(err.msg, text))
		fail_msg("want %d with \"%s\", got %d: %s", code, text, rc, err.msg);
	assert_null(p);
}

static void test_bad_template(void **state)
{
	(void)state;
	char text[512];
	snprintf(text, sizeof(text), "[pool \"p\"]\ntype = modal:push\ntemplate_path = %s\n",
		 write_file("t.json", "{\"job_configuration\": [], \"variables\": {}}"));
	struct pp_config c;
	load(&c, text);
	assert_refused(&c, 0, PP_EINVALID, "pool \"p\": template_path: ");
	/* check refuses it the same way */
	assert_refused(&c, PP_POOL_CHECK, PP_EINVALID, "\"job_configuration\" must be an object");
	pp_config_free(&c);

	/* A broken built-in default fails serve, so it must fail check too. */
	write_file("modal-push.json", "{\"variables\": {}}");
	setenv("PUSHPOOL_TEMPLATE_DIR", dir, 1);
	load(&c, "[pool \"p\"]\ntype = modal:push\n");
	assert_refused(&c, PP_POOL_CHECK, PP_EINVALID, "pool \"p\": ");
	unsetenv("PUSHPOOL_TEMPLATE_DIR");
	pp_config_free(&c);
}

static void test_bad_credentials(void **state)
{
	(void)state;
	struct pp_config c;
	load(&c, "[pool \"p\"]\ntype = cloud-run-v2:push\ncredentials = nowhere\n");
	assert_refused(&c, 0, PP_EINVALID, "pool \"p\": no [credentials \"nowhere\"] section");
	/* check and render do not open credentials */
	struct pp_pool *p = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_pool_open(&c, &c.pools[0], PP_POOL_NO_CRED, &p, &err), 0);
	assert_null(p->cred);
	pp_pool_close(p);
	pp_config_free(&c);

	char text[512];
	snprintf(text, sizeof(text),
		 "[pool \"p\"]\ntype = cloud-run-v2:push\ncredentials = g\n"
		 "[credentials \"g\"]\ntype = gcp\nsource = file\nfile = %s/missing.json\n",
		 dir);
	load(&c, text);
	p = NULL;
	int rc = pp_pool_open(&c, &c.pools[0], 0, &p, &err);
	assert_true(rc < 0);
	assert_non_null(strstr(err.msg, "missing.json"));
	assert_null(p);
	pp_config_free(&c);
}

static void test_bad_variables(void **state)
{
	(void)state;
	struct pp_config c;
	load(&c, "[pool \"p\"]\ntype = azure-container-instance\n");
	/* The config parser refuses a non-object, so set it past the parser. */
	free(c.pools[0].job_variables);
	c.pools[0].job_variables = strdup("[1, 2]");
	assert_refused(&c, 0, PP_EINVALID, "pool \"p\": job_variables: must be a JSON object");
	free(c.pools[0].job_variables);
	c.pools[0].job_variables = strdup("{\"cpu\": ");
	assert_refused(&c, PP_POOL_CHECK, PP_EINVALID, "pool \"p\": job_variables: ");
	pp_config_free(&c);
}

static void test_bad_key_file(void **state)
{
	(void)state;
	char text[512];
	snprintf(text, sizeof(text),
		 "[dispatcher]\nprefect_api_url = http://x/api\nprefect_api_key_file = %s\n"
		 "[pool \"p\"]\ntype = ecs:push\n",
		 write_file("key", "\n  \n"));
	struct pp_config c;
	load(&c, text);
	assert_refused(&c, 0, PP_EINVALID, "file is empty");
	/* check reports the key file on its own; the pool opens without it */
	struct pp_pool *p = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_pool_open(&c, &c.pools[0], PP_POOL_CHECK, &p, &err), 0);
	assert_null(p->api_key);
	pp_pool_close(p);
	pp_config_free(&c);
}

/* The start retry rules: the default classes (image_pull, capacity,
 * resource_init) and none retried until start_retries is set; a class
 * outside start_retry_on, or an attempt past the retries, is not retried;
 * an unknown class is refused with the pool and the known classes named. */
static void test_start_retry_rules(void **state)
{
	(void)state;
	struct pp_config c;
	struct pp_pool *p = NULL;
	struct pp_error err = {0};
	load(&c, "[pool \"p\"]\ntype = ecs\n");
	assert_int_equal(pp_pool_open(&c, &c.pools[0], PP_POOL_CHECK, &p, &err), 0);
	assert_false(pp_pool_start_retry(p, PP_START_IMAGE_PULL, 1));
	pp_pool_close(p);
	pp_config_free(&c);

	load(&c, "[pool \"p\"]\ntype = ecs\nstart_retries = 2\nstart_retry_backoff = 1.5\n");
	assert_int_equal(pp_pool_open(&c, &c.pools[0], PP_POOL_CHECK, &p, &err), 0);
	assert_true(pp_pool_start_retry(p, PP_START_IMAGE_PULL, 1));
	assert_true(pp_pool_start_retry(p, PP_START_CAPACITY, 2));
	assert_true(pp_pool_start_retry(p, PP_START_RESOURCE_INIT, 1));
	assert_false(pp_pool_start_retry(p, PP_START_IMAGE_PULL, 3));
	assert_false(pp_pool_start_retry(p, PP_START_SPOT_INTERRUPTION, 1));
	assert_false(pp_pool_start_retry(p, PP_START_OTHER, 1));
	assert_false(pp_pool_start_retry(p, PP_START_OK, 1));
	assert_int_equal(p->retry_base_ms, 1500);
	assert_int_equal(p->retry_cap_ms, 300000);
	pp_pool_close(p);
	pp_config_free(&c);

	load(&c, "[pool \"p\"]\ntype = ecs\nstart_retries = 1\n"
		 "start_retry_on = spot_interruption,other\n");
	assert_int_equal(pp_pool_open(&c, &c.pools[0], PP_POOL_CHECK, &p, &err), 0);
	assert_true(pp_pool_start_retry(p, PP_START_SPOT_INTERRUPTION, 1));
	assert_true(pp_pool_start_retry(p, PP_START_OTHER, 1));
	assert_false(pp_pool_start_retry(p, PP_START_IMAGE_PULL, 1));
	pp_pool_close(p);
	pp_config_free(&c);

	load(&c, "[pool \"p\"]\ntype = ecs\nstart_retry_on = image_pull, oom\n");
	assert_int_equal(pp_pool_open(&c, &c.pools[0], PP_POOL_CHECK, &p, &err), PP_EINVALID);
	assert_null(p);
	assert_non_null(strstr(err.msg, "pool \"p\": start_retry_on: unknown start failure "
					"class \"oom\" (known: image_pull, capacity"));
	pp_config_free(&c);
}

/* A run's max_runtime: the job's variable when rendered into it (0 turns
 * the limit off), else the pool's. */
static void test_max_runtime_of_a_run(void **state)
{
	(void)state;
	struct pp_config c;
	struct pp_pool *p = NULL;
	struct pp_error err = {0};
	load(&c, "[pool \"p\"]\ntype = modal:push\nmax_runtime = 10m\n");
	assert_int_equal(pp_pool_open(&c, &c.pools[0], PP_POOL_NO_CRED, &p, &err), 0);
	static const struct {
		const char *vars;
		double want;
	} cases[] = {
		{"{\"image\": \"x\"}", 600},
		{"{\"image\": \"x\", \"max_runtime\": 90}", 90},
		{"{\"image\": \"x\", \"max_runtime\": 0}", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pp_json *vars = NULL, *job = NULL;
		assert_int_equal(
			pp_json_parse(cases[i].vars, strlen(cases[i].vars), NULL, &vars, &err), 0);
		struct pp_run_ctx ctx = {.flow_run_id = "r1", .flow_run_name = "r1"};
		if (pp_pool_render(p, NULL, 0, NULL, vars, &ctx, &job, &err))
			fail_msg("%s", err.msg);
		struct pp_run_io io = {0};
		pp_pool_io_init(p, &io, "r1", "r1", job);
		assert_true(io.max_runtime_s == cases[i].want);
		pp_json_free(job);
		pp_json_free(vars);
	}
	pp_pool_close(p);
	pp_config_free(&c);
}

static struct pp_json *parse_json(const char *text)
{
	struct pp_json *j = NULL;
	struct pp_error err = {0};
	if (pp_json_parse(text, strlen(text), NULL, &j, &err))
		fail_msg("%s", err.msg);
	return j;
}

/* The "x" a render of the pool gives with tmpl of version (NULL, 0: the
 * pool's own template), or NULL when it has none. */
static char *rendered_x(struct pp_pool *p, const struct pp_json *tmpl, uint64_t version)
{
	struct pp_json *job = NULL;
	struct pp_error err = {0};
	struct pp_run_ctx ctx = {.flow_run_id = "r1", .flow_run_name = "r1"};
	if (pp_pool_render(p, tmpl, version, NULL, NULL, &ctx, &job, &err))
		fail_msg("%s", err.msg);
	const char *x = pp_json_get_string(job, "x");
	char *out = x ? strdup(x) : NULL;
	pp_json_free(job);
	return out;
}

/* A source's template renders through a render cache as the pool's own
 * does, one per version: a second template under a version already
 * rendered is taken for the first (the source's promise: one version, one
 * template), so a render that skipped the cache would show it; a new
 * version is rendered afresh. The pool renders from its own copy: the
 * source's may go once handed over (ASan sees a read of it). */
static void test_source_template_cached(void **state)
{
	(void)state;
	struct pp_config c;
	struct pp_pool *p = NULL;
	struct pp_error err = {0};
	load(&c, "[pool \"p\"]\ntype = ecs:push\n");
	assert_int_equal(pp_pool_open(&c, &c.pools[0], PP_POOL_NO_CRED, &p, &err), 0);
	static const char *const text[] = {
		"{\"job_configuration\":{\"x\":\"{{ v }}\"},\"variables\":{\"properties\":"
		"{\"v\":{\"type\":\"string\",\"default\":\"one\"}}}}",
		"{\"job_configuration\":{\"x\":\"{{ v }}\"},\"variables\":{\"properties\":"
		"{\"v\":{\"type\":\"string\",\"default\":\"two\"}}}}",
	};
	struct pp_json *one = parse_json(text[0]), *two = parse_json(text[1]);
	char *x = rendered_x(p, one, 7);
	assert_string_equal(x, "one");
	free(x);
	pp_json_free(one);
	for (int i = 0; i < 2; i++) {
		x = rendered_x(p, two, 7);
		assert_string_equal(x, "one");
		free(x);
	}
	x = rendered_x(p, two, 8);
	assert_string_equal(x, "two");
	free(x);
	/* The pool's own template is untouched by it. */
	assert_null(rendered_x(p, NULL, 0));
	pp_json_free(two);
	pp_pool_close(p);
	pp_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_type_opens),
		cmocka_unit_test(test_render_like_serve),
		cmocka_unit_test(test_bad_template),
		cmocka_unit_test(test_bad_credentials),
		cmocka_unit_test(test_bad_variables),
		cmocka_unit_test(test_bad_key_file),
		cmocka_unit_test(test_start_retry_rules),
		cmocka_unit_test(test_max_runtime_of_a_run),
		cmocka_unit_test(test_source_template_cached),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
