/* Pool types, default templates (embedded, share dir override, env
 * override) and loading users' template files. */
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

#include "providers/provider.h"
#include "render/render.h"

static char tmpdir[64];

static int make_tmpdir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pp-test-template-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static void write_file(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void remove_file(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	unlink(path);
}

static int cleanup(void **state)
{
	(void)state;
	unsetenv("PUSHPOOL_TEMPLATE_DIR");
	return rmdir(tmpdir);
}

static void test_pool_types(void **state)
{
	(void)state;
	assert_string_equal(pp_pool_type_canonical("ecs"), "ecs:push");
	assert_string_equal(pp_pool_type_canonical("ecs:push"), "ecs:push");
	assert_string_equal(pp_pool_type_canonical("cloud-run-v2"), "cloud-run-v2:push");
	assert_string_equal(pp_pool_type_canonical("azure-container-instance"),
			    "azure-container-instance:push");
	assert_string_equal(pp_pool_type_canonical("modal:push"), "modal:push");
	assert_null(pp_pool_type_canonical("cloud-run"));
	assert_null(pp_pool_type_canonical("ECS"));
	assert_null(pp_pool_type_canonical(NULL));
	size_t n = 0;
	while (pp_providers[n])
		n++;
	assert_int_equal(n, 4);
	char text[256];
	pp_pool_types_text(false, " ", " ", text, sizeof(text));
	assert_string_equal(text,
			    "cloud-run-v2:push ecs:push azure-container-instance:push modal:push");
	pp_pool_types_text(true, ", ", " and ", text, sizeof(text));
	assert_string_equal(text, "cloud-run-v2, ecs and azure-container-instance");
	/* Cut short, still terminated. */
	pp_pool_types_text(false, " ", " ", text, 8);
	assert_string_equal(text, "cloud-r");
}

/* A type names a file: nothing outside the template directories. */
static void test_default_refuses_paths(void **state)
{
	(void)state;
	struct pp_json *t = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_template_default("../../etc/passwd", &t, &err), PP_EINVALID);
	assert_null(t);
	assert_int_equal(pp_template_default("", &t, &err), PP_EINVALID);
	assert_int_equal(pp_template_default("nosuch:push", &t, &err), PP_ENOTFOUND);
	assert_null(t);
}

/* Every built-in template parses, has Prefect's shape, and each
 * placeholder names a declared variable. */
static void check_placeholders(const struct pp_json *j, const struct pp_json *props,
			       const char *type)
{
	if (j->type == PP_JSON_STRING) {
		const char *p = j->str;
		while ((p = strstr(p, "{{ "))) {
			const char *end = strstr(p, " }}");
			assert_non_null(end);
			char name[64];
			snprintf(name, sizeof(name), "%.*s", (int)(end - p - 3), p + 3);
			if (!pp_json_get(props, name))
				fail_msg("%s: placeholder %s has no variable", type, name);
			p = end;
		}
	}
	pp_json_foreach (c, j)
		check_placeholders(c, props, type);
}

static void test_embedded_defaults(void **state)
{
	(void)state;
	for (size_t i = 0; pp_providers[i]; i++) {
		const char *type = pp_providers[i]->pool_types[0];
		struct pp_json *t = NULL;
		struct pp_error err = {0};
		if (pp_template_default(type, &t, &err))
			fail_msg("%s: %s", type, err.msg);
		const struct pp_json *props = pp_json_path(t, "variables.properties");
		assert_non_null(props);
		static const char *const base[] = {"command", "env", "labels", "name"};
		for (size_t k = 0; k < 4; k++) {
			assert_non_null(pp_json_get(props, base[k]));
			assert_non_null(pp_json_get(pp_json_get(t, "job_configuration"), base[k]));
		}
		pp_json_foreach (p, props)
			assert_non_null(pp_json_get_string(p, "description"));
		check_placeholders(pp_json_get(t, "job_configuration"), props, type);
		pp_json_free(t);
	}
}

/* The variables Prefect's push pools have, with Prefect's defaults. */
static void test_prefect_names_and_defaults(void **state)
{
	(void)state;
	const struct {
		const char *type, *path, *json;
	} cases[] = {
		{"cloud-run-v2:push", "variables.properties.keep_job.default", "false"},
		{"cloud-run-v2:push", "variables.properties.region.default", "\"us-central1\""},
		{"cloud-run-v2:push", "variables.properties.timeout.maximum", "604800"},
		{"ecs:push", "variables.properties.launch_type.default", "\"FARGATE\""},
		{"ecs:push", "variables.properties.auto_deregister_task_definition.default",
		 "false"},
		{"ecs:push", "variables.properties.task_start_timeout_seconds.default", "300"},
		{"azure-container-instance:push",
		 "variables.properties.keep_container_group.default", "false"},
		{"azure-container-instance:push", "variables.properties.cpu.default", "1.0"},
		{"azure-container-instance:push", "variables.required",
		 "[\"resource_group_name\", \"subscription_id\"]"},
		{"modal:push", "variables.properties.timeout.default", "3600"},
		{"modal:push", "variables.properties.cloud.enum",
		 "[\"aws\", \"gcp\", \"oci\", \"auto\"]"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pp_json *t = NULL, *want = NULL;
		struct pp_error err = {0};
		assert_int_equal(pp_template_default(cases[i].type, &t, &err), 0);
		char wrapped[128];
		snprintf(wrapped, sizeof(wrapped), "[%s]", cases[i].json);
		assert_int_equal(pp_json_parse(wrapped, strlen(wrapped), NULL, &want, &err), 0);
		if (!pp_json_equal(pp_json_path(t, cases[i].path), want->child))
			fail_msg("%s %s is not %s", cases[i].type, cases[i].path, cases[i].json);
		pp_json_free(want);
		pp_json_free(t);
	}
}

static void test_unknown_type(void **state)
{
	(void)state;
	struct pp_json *t = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_template_default("kubernetes", &t, &err), PP_ENOTFOUND);
	assert_null(t);
	assert_string_equal(
		err.msg, "no default template kubernetes-push.json for pool type kubernetes:push");
	/* Hybrid names share the push type's template. */
	assert_int_equal(pp_template_default("ecs", &t, &err), 0);
	pp_json_free(t);
}

/* $PUSHPOOL_TEMPLATE_DIR wins when it has the file; other types fall back. */
static void test_template_dir_override(void **state)
{
	(void)state;
	write_file("ecs-push.json", "{\"job_configuration\": {\"x\": \"{{ x }}\"},"
				    " \"variables\": {\"properties\": {\"x\": {\"default\": 1}}}}");
	setenv("PUSHPOOL_TEMPLATE_DIR", tmpdir, 1);
	struct pp_json *t = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_template_default("ecs:push", &t, &err), 0);
	assert_non_null(pp_json_path(t, "variables.properties.x"));
	pp_json_free(t);
	assert_int_equal(pp_template_default("modal:push", &t, &err), 0);
	assert_non_null(pp_json_path(t, "variables.properties.gpu"));
	pp_json_free(t);

	write_file("ecs-push.json", "{\"job_configuration\": []}");
	assert_int_equal(pp_template_default("ecs:push", &t, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "ecs-push.json: \"job_configuration\" must be an object"));
	remove_file("ecs-push.json");
	unsetenv("PUSHPOOL_TEMPLATE_DIR");
}

static void expect_load_error(const char *text, int code, const char *msg)
{
	write_file("t.json", text);
	char path[256];
	snprintf(path, sizeof(path), "%s/t.json", tmpdir);
	struct pp_json *t = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_template_load(path, &t, &err), code);
	assert_null(t);
	if (!strstr(err.msg, msg))
		fail_msg("'%s' lacks '%s'", err.msg, msg);
	remove_file("t.json");
}

static void test_load_errors(void **state)
{
	(void)state;
	expect_load_error("{\"job_configuration\": {}, \"variables\": {}", PP_EINVALID,
			  "t.json:1:");
	expect_load_error("[]", PP_EINVALID,
			  "a base job template must be a JSON object, got array");
	expect_load_error("{\"variables\": {}}", PP_EINVALID, "\"job_configuration\" is missing");
	expect_load_error("{\"job_configuration\": {}}", PP_EINVALID, "\"variables\" is missing");
	expect_load_error("{\"job_configuration\": {}, \"variables\": {\"properties\": []}}",
			  PP_EINVALID, "\"variables.properties\" must be an object, got array");
	expect_load_error("{\"job_configuration\": {}, \"variables\": {\"properties\":"
			  " {\"cpu\": 1}}}",
			  PP_EINVALID,
			  "\"variables.properties.cpu\" must be a schema object, got number");

	struct pp_json *t = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_template_load("/nonexistent/pushpool.json", &t, &err), PP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "/nonexistent/pushpool.json"));
}

/* Prefect's own ecs template file loads and renders unchanged. */
static void test_prefect_reference_template(void **state)
{
	(void)state;
	const char *ref = "/work/shared/reference/prefect/base-job-templates/ecs.json";
	if (access(ref, R_OK) != 0)
		skip();
	struct pp_json *t = NULL, *out = NULL, *mine = NULL, *mine_out = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_template_load(ref, &t, &err), 0);
	assert_int_equal(pp_render_job(t, NULL, NULL, NULL, NULL, &out, &err), 0);
	assert_int_equal(pp_template_default("ecs:push", &mine, &err), 0);
	assert_int_equal(pp_render_job(mine, NULL, NULL, NULL, NULL, &mine_out, &err), 0);
	assert_true(pp_json_equal(out, mine_out));
	pp_json_free(t);
	pp_json_free(out);
	pp_json_free(mine);
	pp_json_free(mine_out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_types),
		cmocka_unit_test(test_default_refuses_paths),
		cmocka_unit_test(test_embedded_defaults),
		cmocka_unit_test(test_prefect_names_and_defaults),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_template_dir_override),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_prefect_reference_template),
	};
	return cmocka_run_group_tests(tests, make_tmpdir, cleanup);
}
