/* Rendering: the cases of Prefect's tests/utilities/test_templating.py and
 * tests/workers/test_base_worker.py, and the default push templates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "render/render.h"

/* Parsed inside [] so that bare scalars work as expected values too. */
static struct pp_json *js(const char *s)
{
	struct pp_json *arr = NULL;
	struct pp_error err = {0};
	if (!s)
		return NULL;
	size_t n = strlen(s) + 3;
	char *w = malloc(n);
	if (!w)
		abort();
	snprintf(w, n, "[%s]", s);
	if (pp_json_parse(w, strlen(w), NULL, &arr, &err))
		fail_msg("bad JSON in test: %s: %s", err.msg, s);
	free(w);
	struct pp_json *j = pp_json_detach(arr->child);
	pp_json_free(arr);
	return j;
}

static void assert_json(const struct pp_json *got, const char *want_text)
{
	struct pp_json *want = js(want_text);
	if (!pp_json_equal(got, want)) {
		char *g = pp_json_to_string(got, PP_JSON_COMPACT);
		fail_msg("got      %s\nexpected %s", g, want_text);
	}
	pp_json_free(want);
}

/* A template whose job_configuration is {"v": <job>} with the variables
 * given, rendered without built-in run values. Returns job_configuration.v. */
static struct pp_json *render_tpl(const char *job, const char *vars_schema, const char *run_vars,
				  struct pp_json **holder)
{
	char text[4096];
	snprintf(text, sizeof(text), "{\"job_configuration\": {\"v\": %s}, \"variables\": %s}", job,
		 vars_schema ? vars_schema : "{\"properties\": {}}");
	struct pp_json *tmpl = js(text), *run = js(run_vars), *out = NULL;
	struct pp_error err = {0};
	int rc = pp_render_job(tmpl, NULL, NULL, run, NULL, &out, &err);
	if (rc)
		fail_msg("render failed: %s", err.msg);
	pp_json_free(tmpl);
	pp_json_free(run);
	*holder = out;
	return pp_json_get(out, "v");
}

/* Variables a..e as untyped properties, so any value validates. */
#define ANY_VARS                                                                                   \
	"{\"properties\": {\"name\": {}, \"greeting\": {}, \"message\": {}, \"item1\": {},"        \
	"\"item2\": {}, \"x\": {}, \"a\": {}, \"b\": {}, \"balance\": {}, \"first_name\": {},"     \
	"\"last_name\": {}, \"age\": {}, \"person\": {}, \"people\": {}}}"

static void check(const char *job, const char *run_vars, const char *want)
{
	struct pp_json *holder;
	struct pp_json *v = render_tpl(job, ANY_VARS, run_vars, &holder);
	if (!want) {
		if (v)
			fail_msg("expected key removed for %s", job);
	} else {
		assert_non_null(v);
		assert_json(v, want);
	}
	pp_json_free(holder);
}

static void test_apply_values_strings(void **state)
{
	(void)state;
	check("\"Hello {{ name }}!\"", "{\"name\": \"Alice\"}", "\"Hello Alice!\"");
	check("\"{{ greeting }}, {{ name }}!\"", "{\"greeting\": \"Hi\", \"name\": \"Bob\"}",
	      "\"Hi, Bob!\"");
	/* missing inside text: replaced by nothing */
	check("\"Hello {{ name }}!\"", "{}", "\"Hello !\"");
	check("\"Hello {{name}}! Your balance is ${{ balance }}.\"",
	      "{\"name\": \"Al\", \"balance\": 10}", "\"Hello Al! Your balance is $10.\"");
	check("\"no placeholders\"", "{}", "\"no placeholders\"");
	/* an unterminated placeholder is text */
	check("\"{{ a }} {{ b }\"", "{\"a\": 1, \"b\": 2}", "\"1 {{ b }\"");
	/* the regex finds the innermost well-formed placeholder */
	check("\"{{ outer {{ a }} }}\"", "{\"a\": \"x\"}", "\"{{ outer x }}\"");
	/* the same placeholder twice */
	check("\"{{ a }}{{ a }}\"", "{\"a\": 3}", "\"33\"");
}

static void test_apply_values_typed(void **state)
{
	(void)state;
	check("\"{{ x }}\"", "{\"x\": 5}", "5");
	check("\"{{x}}\"", "{\"x\": 2.5}", "2.5");
	check("\"{{ x }}\"", "{\"x\": true}", "true");
	check("\"{{ x }}\"", "{\"x\": null}", "null");
	check("\"{{ x }}\"", "{\"x\": {\"k\": [1, \"v\"]}}", "{\"k\": [1, \"v\"]}");
	check("\"{{ x }}\"", "{\"x\": [1, 2]}", "[1, 2]");
	check("\"{{\\n\\tx  }}\"", "{\"x\": 7}", "7");
	/* whole-string placeholder with no value: the key goes away */
	check("\"{{ x }}\"", "{}", NULL);
	/* non-template values pass through */
	check("[1, 2.5, true, null]", "{}", "[1, 2.5, true, null]");
}

/* Interpolated non-strings are written as Python's str() would. */
static void test_apply_values_python_str(void **state)
{
	(void)state;
	check("\"v={{ x }}\"", "{\"x\": true}", "\"v=True\"");
	check("\"v={{ x }}\"", "{\"x\": false}", "\"v=False\"");
	check("\"v={{ x }}\"", "{\"x\": null}", "\"v=None\"");
	check("\"v={{ x }}\"", "{\"x\": 1.0}", "\"v=1.0\"");
	check("\"v={{ x }}\"", "{\"x\": 1e3}", "\"v=1000.0\"");
	check("\"v={{ x }}\"", "{\"x\": 0.0001}", "\"v=0.0001\"");
	check("\"v={{ x }}\"", "{\"x\": 0.00001}", "\"v=1e-05\"");
	check("\"v={{ x }}\"", "{\"x\": 1e16}", "\"v=1e+16\"");
	check("\"v={{ x }}\"", "{\"x\": 0.1}", "\"v=0.1\"");
	check("\"v={{ x }}\"", "{\"x\": -42}", "\"v=-42\"");
	check("\"v={{ x }}\"", "{\"x\": {\"a\": 1, \"b\": [true, null, \"s\"]}}",
	      "\"v={'a': 1, 'b': [True, None, 's']}\"");
	check("\"v={{ x }}\"", "{\"x\": [\"it's\", \"a\\\\b\\n\"]}",
	      "\"v=[\\\"it's\\\", 'a\\\\\\\\b\\\\n']\"");
}

/* NotSet semantics in dicts and lists, and dotted / indexed names. */
static void test_apply_values_notset_and_paths(void **state)
{
	(void)state;
	check("{\"a\": \"{{ a }}\", \"b\": 1, \"c\": {\"d\": \"{{ b }}\"}}", "{}",
	      "{\"b\": 1, \"c\": {}}");
	check("[\"{{ a }}\", 1, [\"{{ b }}\"], {\"k\": \"{{ a }}\"}]", "{\"b\": 2}",
	      "[1, [2], {}]");
	check("{\"greeting\": \"Hi {{ name }}\", \"message\": \"{{ message }}\"}",
	      "{\"name\": \"Alice\", \"message\": \"Welcome!\"}",
	      "{\"greeting\": \"Hi Alice\", \"message\": \"Welcome!\"}");
	check("{\"items\": [\"{{ item1 }}\", \"{{ item2 }}\"]}",
	      "{\"item1\": \"a\", \"item2\": {\"b\": 1}}", "{\"items\": [\"a\", {\"b\": 1}]}");
	check("\"{{ a.b.c }}\"", "{\"a\": {\"b\": {\"c\": [1]}}}", "[1]");
	check("\"{{ a[1] }}\"", "{\"a\": [\"x\", \"y\"]}", "\"y\"");
	check("\"{{ a[-1].k }}\"", "{\"a\": [{\"k\": 1}, {\"k\": 2}]}", "2");
	check("\"{{ a[5] }}\"", "{\"a\": [1]}", NULL);
	check("\"{{ a.0 }}\"", "{\"a\": {\"0\": 1}}", NULL);
	check("\"{{ a.missing }}\"", "{\"a\": {}}", NULL);
	/* Prefect leaves block and variable references for the server */
	check("\"{{ prefect.blocks.secret.tok }}\"", "{}", "\"{{ prefect.blocks.secret.tok }}\"");
	check("\"x-{{ prefect.variables.v }}-{{ a }}\"", "{\"a\": 1}",
	      "\"x-{{ prefect.variables.v }}-1\"");
}

/* TestFindPlaceholders / TestApplyValues of Prefect's test_templating.py. */
static void test_prefect_templating_cases(void **state)
{
	(void)state;
	const char *alice = "{\"first_name\": \"Alice\", \"last_name\": \"Smith\", \"age\": 30}";
	check("\"\"", "{}", "\"\"");
	check("\"Hello, {{first_name}}!\"", alice, "\"Hello, Alice!\"");
	check("\"Hello, {{first_name}} {{last_name}}!\"", alice, "\"Hello, Alice Smith!\"");
	check("\"Hello {{    first_name }} {{ last_name }}!\"", alice, "\"Hello Alice Smith!\"");
	check("{\"name\": \"{{first_name}} {{last_name}}\", \"age\": \"{{age}}\"}", alice,
	      "{\"name\": \"Alice Smith\", \"age\": 30}");
	check("{\"last_name\": \"{{last_name}}\", \"age\": \"{{age}}\"}",
	      "{\"first_name\": \"Alice\", \"age\": 30}", "{\"age\": 30}");
	check("{\"last_name\": null, \"age\": \"{{age}}\"}", "{\"age\": 30}",
	      "{\"last_name\": null, \"age\": 30}");
	check("{\"name\": {\"first_name\": \"{{ first_name }}\", \"last_name\": \"{{ last_name "
	      "}}\"},"
	      " \"age\": \"{{age}}\"}",
	      alice,
	      "{\"name\": {\"first_name\": \"Alice\", \"last_name\": \"Smith\"}, \"age\": 30}");
	check("[\"Hello, {{first_name}} {{last_name}}!\", {\"name\": \"{{first_name}} "
	      "{{last_name}}\"}]",
	      alice, "[\"Hello, Alice Smith!\", {\"name\": \"Alice Smith\"}]");
	check("123", alice, "123");
	check("3.14", alice, "3.14");
	check("true", alice, "true");
	check("null", alice, "null");
	check("\"Hello {{prefect.blocks.document.name}}!\"", alice,
	      "\"Hello {{prefect.blocks.document.name}}!\"");
	check("\"Hello {{ person.name }}!\"", "{\"person\": {\"name\": \"Arthur\"}}",
	      "\"Hello Arthur!\"");
	check("\"Hello {{ people[0].name }}!\"", "{\"people\": [{\"name\": \"Arthur\"}]}",
	      "\"Hello Arthur!\"");
	check("{\"right now we need\": \"{{ people.superman }}\"}",
	      "{\"people\": {\"superman\": {\"first_name\": \"Superman\", \"age\": 30}}}",
	      "{\"right now we need\": {\"first_name\": \"Superman\", \"age\": 30}}");
	check("{\"right now we need\": \"{{ people[0] }}\"}",
	      "{\"people\": [{\"first_name\": \"Superman\", \"age\": 30}]}",
	      "{\"right now we need\": {\"first_name\": \"Superman\", \"age\": 30}}");
}

static void test_apply_values_env_placeholder(void **state)
{
	(void)state;
	setenv("PP_TEST_RENDER_VAR", "from-env", 1);
	unsetenv("PP_TEST_RENDER_UNSET");
	check("\"{{ $PP_TEST_RENDER_VAR }}\"", "{}", "\"from-env\"");
	check("\"a{{ $PP_TEST_RENDER_UNSET }}b\"", "{}", "\"ab\"");
	/* not a whole-value placeholder: an unset variable gives "" */
	check("\"{{ $PP_TEST_RENDER_UNSET }}\"", "{}", "\"\"");
	check("{\"greeting\": \"Hello {{name}}!\", \"message\": {\"text\": \"{{$$}}\"}}",
	      "{\"name\": \"Dan\"}",
	      "{\"greeting\": \"Hello Dan!\", \"message\": {\"text\": \"\"}}");
	unsetenv("PP_TEST_RENDER_VAR");
}

static const char *base_template =
	"{\"job_configuration\": {\"command\": \"{{ command }}\", \"env\": \"{{ env }}\","
	" \"labels\": \"{{ labels }}\", \"name\": \"{{ name }}\", \"var1\": \"{{ var1 }}\","
	" \"var2\": \"{{ var2 }}\"},"
	" \"variables\": {\"properties\": {"
	"  \"command\": {\"type\": \"string\"}, \"name\": {\"type\": \"string\"},"
	"  \"env\": {\"type\": \"object\", \"additionalProperties\": {\"type\": \"string\"}},"
	"  \"labels\": {\"type\": \"object\", \"additionalProperties\": {\"type\": \"string\"}},"
	"  \"var1\": {\"type\": \"string\", \"default\": \"hello\"},"
	"  \"var2\": {\"type\": \"integer\", \"default\": 42}}}}";

static struct pp_json *render_base(const char *pool, const char *dep, const char *run,
				   const struct pp_run_ctx *ctx)
{
	struct pp_json *tmpl = js(base_template), *p = js(pool), *d = js(dep), *r = js(run);
	struct pp_json *out = NULL;
	struct pp_error err = {0};
	if (pp_render_job(tmpl, p, d, r, ctx, &out, &err))
		fail_msg("render failed: %s", err.msg);
	pp_json_free(tmpl);
	pp_json_free(p);
	pp_json_free(d);
	pp_json_free(r);
	return out;
}

static const struct pp_run_ctx run_ctx = {
	.flow_run_id = "0b7c1d2e-0000-4000-8000-000000000001",
	.flow_run_name = "crimson-hippo",
	.deployment_id = "dep-1",
	.deployment_name = "etl",
	.flow_id = "flow-1",
	.flow_name = "etl-flow",
	.work_pool_name = "pool-a",
};

/* from_template_and_values: defaults, overrides, then prepare_for_flow_run. */
static void test_base_job_configuration(void **state)
{
	(void)state;
	struct pp_json *out = render_base(NULL, NULL, NULL, NULL);
	assert_json(out, "{\"command\": \"prefect flow-run execute\", \"env\": {}, \"labels\": {},"
			 " \"var1\": \"hello\", \"var2\": 42}");
	pp_json_free(out);

	out = render_base("{\"var1\": \"pool\"}", "{\"var2\": 1}", "{\"var1\": \"run\"}", NULL);
	assert_json(out, "{\"command\": \"prefect flow-run execute\", \"env\": {}, \"labels\": {},"
			 " \"var1\": \"run\", \"var2\": 1}");
	pp_json_free(out);
}

static void test_prepare_for_flow_run(void **state)
{
	(void)state;
	struct pp_run_ctx ctx = run_ctx;
	ctx.api_url = "https://api.example/api";
	ctx.api_key = "pnu_secretkey";
	struct pp_json *out = render_base(NULL, NULL, "{\"labels\": {\"team\": \"data\"}}", &ctx);
	assert_json(out,
		    "{\"command\": \"prefect flow-run execute\","
		    " \"env\": {\"PREFECT_API_URL\": \"https://api.example/api\","
		    "  \"PREFECT_API_KEY\": \"pnu_secretkey\","
		    "  \"PREFECT__FLOW_RUN_ID\": \"0b7c1d2e-0000-4000-8000-000000000001\"},"
		    " \"labels\": {\"prefect.io/flow-run-id\": "
		    "\"0b7c1d2e-0000-4000-8000-000000000001\","
		    "  \"prefect.io/flow-run-name\": \"crimson-hippo\","
		    "  \"prefect.io/work-pool-name\": \"pool-a\", \"prefect.io/deployment-id\": "
		    "\"dep-1\","
		    "  \"prefect.io/deployment-name\": \"etl\", \"prefect.io/flow-id\": \"flow-1\","
		    "  \"prefect.io/flow-name\": \"etl-flow\", \"team\": \"data\"},"
		    " \"name\": \"crimson-hippo\", \"var1\": \"hello\", \"var2\": 42}");
	pp_json_free(out);

	/* user values win over the injected ones; explicit name and command stay */
	out = render_base(NULL, NULL,
			  "{\"name\": \"mine\", \"command\": \"python x.py\", \"env\":"
			  " {\"PREFECT__FLOW_RUN_ID\": \"override\"}}",
			  &run_ctx);
	assert_string_equal(pp_json_get_string(out, "name"), "mine");
	assert_string_equal(pp_json_get_string(out, "command"), "python x.py");
	assert_string_equal(pp_json_string(pp_json_path(out, "env.PREFECT__FLOW_RUN_ID")),
			    "override");
	pp_json_free(out);
}

/* A run of a pushpool deployment: the job learns its run id, deployment
 * and parameters (docs/deployments.md); the Prefect variables stay. */
static void test_deployment_run_env(void **state)
{
	(void)state;
	struct pp_run_ctx ctx = run_ctx;
	ctx.run_id = "7f00aa00-0000-4000-8000-000000000002";
	ctx.parameters = "{\"day\":\"mon\",\"n\":2}";
	struct pp_json *out = render_base(NULL, NULL, NULL, &ctx);
	const struct pp_json *env = pp_json_get(out, "env");
	assert_string_equal(pp_json_get_string(env, "PUSHPOOL_RUN_ID"), ctx.run_id);
	assert_string_equal(pp_json_get_string(env, "PUSHPOOL_DEPLOYMENT"), "etl");
	assert_string_equal(pp_json_get_string(env, "PUSHPOOL_PARAMETERS"), ctx.parameters);
	assert_string_equal(pp_json_get_string(env, "PREFECT__FLOW_RUN_ID"), run_ctx.flow_run_id);
	pp_json_free(out);
	/* Other runs get none of them. */
	out = render_base(NULL, NULL, NULL, &run_ctx);
	assert_null(pp_json_get(pp_json_get(out, "env"), "PUSHPOOL_PARAMETERS"));
	assert_null(pp_json_get(pp_json_get(out, "env"), "PUSHPOOL_RUN_ID"));
	pp_json_free(out);
}

/* env merges key by key across defaults, pool, deployment and run; a null
 * value removes the variable. */
static void test_env_merge(void **state)
{
	(void)state;
	struct pp_json *out =
		render_base("{\"env\": {\"A\": \"pool\", \"B\": \"pool\", \"C\": \"x\"}}",
			    "{\"env\": {\"B\": \"dep\", \"D\": \"dep\"}}",
			    "{\"env\": {\"D\": \"run\", \"C\": null}}", &run_ctx);
	assert_json(pp_json_get(out, "env"),
		    "{\"PREFECT__FLOW_RUN_ID\": \"0b7c1d2e-0000-4000-8000-000000000001\","
		    " \"A\": \"pool\", \"B\": \"dep\", \"D\": \"run\"}");
	pp_json_free(out);

	/* a schema default for env is merged too, and a literal env object in
	 * the template takes the variables on top */
	const char *t = "{\"job_configuration\": {\"env\": {\"T\": \"tpl\", \"A\": \"tpl\"}},"
			" \"variables\": {\"properties\": {\"env\": {\"type\": \"object\","
			" \"default\": {\"A\": \"default\", \"B\": \"default\"}}}}}";
	struct pp_json *tmpl = js(t), *run = js("{\"env\": {\"B\": \"run\"}}");
	struct pp_error err = {0};
	assert_int_equal(pp_render_job(tmpl, NULL, NULL, run, NULL, &out, &err), 0);
	assert_json(pp_json_get(out, "env"),
		    "{\"T\": \"tpl\", \"A\": \"default\", \"B\": \"run\"}");
	pp_json_free(out);
	pp_json_free(tmpl);
	pp_json_free(run);
}

/* A literal env in the template is coerced to strings, as Prefect's
 * BaseJobConfiguration does; a falsey command falls back to the default. */
static void test_env_coercion_and_falsey_command(void **state)
{
	(void)state;
	const char *t =
		"{\"job_configuration\": {\"var1\": \"hello\", \"command\": \"{{ command }}\","
		" \"env\": {\"MY_ENV_VAR\": 42, \"F\": 1.5, \"B\": true, \"OTHER_ENV_VAR\": null}},"
		" \"variables\": {\"properties\": {\"var1\": {\"type\": \"string\"},"
		" \"command\": {\"type\": \"string\"}, \"env\": {\"type\": \"object\"}}}}";
	struct pp_json *tmpl = js(t), *run = js("{\"command\": \"\"}"), *out = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_render_job(tmpl, NULL, NULL, run, NULL, &out, &err), 0);
	assert_json(out, "{\"var1\": \"hello\", \"command\": \"prefect flow-run execute\","
			 " \"env\": {\"MY_ENV_VAR\": \"42\", \"F\": \"1.5\", \"B\": \"True\"},"
			 " \"labels\": {}}");
	pp_json_free(out);
	pp_json_free(tmpl);
	pp_json_free(run);
}

/* Non-env variables are replaced whole, not merged. */
static void test_layers_replace(void **state)
{
	(void)state;
	struct pp_json *out = render_base(NULL, "{\"labels\": {\"a\": \"1\", \"b\": \"2\"}}",
					  "{\"labels\": {\"c\": \"3\"}}", NULL);
	assert_json(pp_json_get(out, "labels"), "{\"c\": \"3\"}");
	pp_json_free(out);
}

static void test_builtin_values(void **state)
{
	(void)state;
	const char *t = "{\"job_configuration\": {\"name\": \"run-{{ flow_run.id }}\","
			" \"d\": \"{{ deployment.name }}/{{ flow.name }}@{{ work_pool.name }}\","
			" \"who\": \"{{ flow_run }}\"},"
			" \"variables\": {\"properties\": {}}}";
	struct pp_json *tmpl = js(t), *out = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_render_job(tmpl, NULL, NULL, NULL, &run_ctx, &out, &err), 0);
	assert_string_equal(pp_json_get_string(out, "name"),
			    "run-0b7c1d2e-0000-4000-8000-000000000001");
	assert_string_equal(pp_json_get_string(out, "d"), "etl/etl-flow@pool-a");
	assert_json(pp_json_get(out, "who"), "{\"id\": \"0b7c1d2e-0000-4000-8000-000000000001\","
					     " \"name\": \"crimson-hippo\"}");
	pp_json_free(out);
	pp_json_free(tmpl);
}

static void expect_render_error(const char *pool, const char *run, int code, const char *msg)
{
	struct pp_json *tmpl = js(base_template), *p = js(pool), *r = js(run), *out = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_render_job(tmpl, p, NULL, r, NULL, &out, &err), code);
	assert_null(out);
	if (!strstr(err.msg, msg))
		fail_msg("error '%s' does not contain '%s'", err.msg, msg);
	pp_json_free(tmpl);
	pp_json_free(p);
	pp_json_free(r);
}

static void test_render_errors(void **state)
{
	(void)state;
	expect_render_error(NULL, "{\"var2\": \"abc\"}", PP_EINVALID,
			    "job variable \"var2\": expected integer, got string \"abc\"");
	expect_render_error(NULL, "{\"nope\": 1}", PP_EINVALID,
			    "job variable \"nope\" (run): not defined in the template's variables");
	expect_render_error("{\"env\": {\"A\": 1}}", NULL, PP_EINVALID,
			    "job variable \"env.A\": expected string, got integer 1");
	expect_render_error(NULL, "[1]", PP_EINVALID, "run job variables: expected an object");
	/* var2 has a non-null default: null is not a value for it */
	expect_render_error(NULL, "{\"var2\": null}", PP_EINVALID,
			    "job variable \"var2\": expected integer, got null");

	const char *t = "{\"job_configuration\": {\"env\": \"{{ e }}\"},"
			" \"variables\": {\"properties\": {\"e\": {\"type\": \"string\"}}}}";
	struct pp_json *tmpl = js(t), *run = js("{\"e\": \"text\"}"), *out = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_render_job(tmpl, NULL, NULL, run, NULL, &out, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "job_configuration.env: expected an object"));
	pp_json_free(tmpl);
	pp_json_free(run);
}

/* Interpolation is capped, and the message names the JSON path. */
static void test_render_size_cap(void **state)
{
	(void)state;
	char *big = malloc(300000);
	assert_non_null(big);
	memset(big, 'x', 299999);
	big[299999] = '\0';
	struct pp_json *tmpl = js("{\"job_configuration\": {\"a\": [{\"b\": \"{{ x }}{{ x }}{{ x }}"
				  "{{ x }}\"}]}, \"variables\": {\"properties\": {\"x\": {}}}}");
	struct pp_json *run = pp_json_new(PP_JSON_OBJECT), *out = NULL;
	assert_int_equal(pp_json_set_string(run, "x", big), 0);
	struct pp_error err = {0};
	assert_int_equal(pp_render_job(tmpl, NULL, NULL, run, NULL, &out, &err), PP_ENOMEM);
	assert_non_null(strstr(err.msg, "job_configuration.a[0].b: rendered text longer"));
	free(big);
	pp_json_free(tmpl);
	pp_json_free(run);
}

/* A template {"a": [item x count]} with variable x of xlen bytes. */
static int render_many(const char *item, int count, size_t xlen, struct pp_json **out,
		       struct pp_error *err)
{
	struct pp_json *tmpl = js("{\"job_configuration\": {\"a\": []}, "
				  "\"variables\": {\"properties\": {\"x\": {}}}}");
	struct pp_json *arr = pp_json_path(tmpl, "job_configuration.a");
	for (int i = 0; i < count; i++)
		assert_int_equal(pp_json_append(arr, pp_json_new_string(item)), 0);
	char *x = malloc(xlen + 1);
	assert_non_null(x);
	memset(x, 'x', xlen);
	x[xlen] = '\0';
	struct pp_json *run = pp_json_new(PP_JSON_OBJECT);
	assert_int_equal(pp_json_set_string(run, "x", x), 0);
	free(x);
	int rc = pp_render_job(tmpl, NULL, NULL, run, NULL, out, err);
	pp_json_free(tmpl);
	pp_json_free(run);
	return rc;
}

/* Issue 18: 100,000 placeholders of a 10 KB variable took 4 GB and ended
 * "out of memory"; the job as a whole is capped and the run fails with the
 * size, stopping where it crossed (the alarm only backstops a regression). */
static void test_render_job_total_cap(void **state)
{
	(void)state;
	static const char *const items[] = {"{{ x }}", "pre {{ x }} post", "{{ x }}{{ x }}"};
	alarm(60);
	for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++) {
		struct pp_json *out = NULL;
		struct pp_error err = {0};
		assert_int_equal(render_many(items[i], 100000, 10000, &out, &err), PP_EINVALID);
		assert_null(out);
		if (!strstr(err.msg, "rendered job is ") ||
		    !strstr(err.msg, " bytes at job_configuration.a[") ||
		    !strstr(err.msg, "], over the 4194304-byte limit"))
			fail_msg("%s: %s", items[i], err.msg);
	}
	/* 3 MB is still a job. */
	struct pp_json *out = NULL;
	struct pp_error err = {0};
	if (render_many("{{ x }}", 300, 10000, &out, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(pp_json_path(out, "a")->count, 300);
	pp_json_free(out);
	alarm(0);
}

static void test_vars_set_kv(void **state)
{
	(void)state;
	struct pp_json *vars = pp_json_new(PP_JSON_OBJECT);
	struct pp_error err = {0};
	assert_int_equal(pp_vars_set_kv(vars, "cpu=1024", &err), 0);
	assert_int_equal(pp_vars_set_kv(vars, "image=repo/img:tag", &err), 0);
	assert_int_equal(pp_vars_set_kv(vars, "env={\"A\": \"1\"}", &err), 0);
	assert_int_equal(pp_vars_set_kv(vars, "flag=true", &err), 0);
	assert_int_equal(pp_vars_set_kv(vars, "text=\"42\"", &err), 0);
	assert_int_equal(pp_vars_set_kv(vars, "empty=", &err), 0);
	assert_int_equal(pp_vars_set_kv(vars, "eq=a=b", &err), 0);
	assert_int_equal(pp_vars_set_kv(vars, "cpu=2048", &err), 0);
	assert_json(vars, "{\"cpu\": 2048, \"image\": \"repo/img:tag\", \"env\": {\"A\": \"1\"},"
			  " \"flag\": true, \"text\": \"42\", \"empty\": \"\", \"eq\": \"a=b\"}");
	assert_int_equal(pp_vars_set_kv(vars, "novalue", &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "expected key=value"));
	assert_int_equal(pp_vars_set_kv(vars, "=x", &err), PP_EINVALID);
	pp_json_free(vars);
}

static struct pp_json *render_default(const char *type, const char *run)
{
	struct pp_json *tmpl = NULL, *r = js(run), *out = NULL;
	struct pp_error err = {0};
	if (pp_template_default(type, &tmpl, &err))
		fail_msg("%s: %s", type, err.msg);
	if (pp_render_job(tmpl, NULL, NULL, r, &run_ctx, &out, &err))
		fail_msg("%s: %s", type, err.msg);
	pp_json_free(tmpl);
	pp_json_free(r);
	return out;
}

#define FR_ENV "\"env\": {\"PREFECT__FLOW_RUN_ID\": \"0b7c1d2e-0000-4000-8000-000000000001\"}"
#define FR_LABELS                                                                                  \
	"\"labels\": {\"prefect.io/flow-run-id\": \"0b7c1d2e-0000-4000-8000-000000000001\","       \
	"\"prefect.io/flow-run-name\": \"crimson-hippo\", \"prefect.io/work-pool-name\": "         \
	"\"pool-a\", \"prefect.io/deployment-id\": \"dep-1\", \"prefect.io/deployment-name\": "    \
	"\"etl\", \"prefect.io/flow-id\": \"flow-1\", \"prefect.io/flow-name\": \"etl-flow\"}"

/* What Prefect's apply_values gives for its default cloud-run-v2 template. */
static void test_default_cloud_run_v2(void **state)
{
	(void)state;
	struct pp_json *out = render_default("cloud-run-v2", NULL);
	assert_json(out,
		    "{\"command\": \"prefect flow-run execute\", " FR_ENV ", " FR_LABELS ","
		    " \"name\": \"crimson-hippo\", \"job_body\": {\"client\": \"prefect\","
		    " \"launchStage\": \"BETA\", \"template\": {\"template\": {\"maxRetries\": 0,"
		    " \"timeout\": 600, \"vpcAccess\": {}, \"containers\": [{\"env\": [],"
		    " \"image\": \"prefecthq/prefect:3-latest\", \"resources\": {\"limits\":"
		    " {\"cpu\": \"1000m\", \"memory\": \"512Mi\"}}}]}}},"
		    " \"keep_job\": false, \"region\": \"us-central1\", \"timeout\": 600}");
	pp_json_free(out);

	out = render_default(
		"cloud-run-v2:push",
		"{\"image\": \"me/flow:1\", \"cpu\": \"2\", \"memory\": \"2Gi\","
		" \"args\": [\"--x\"], \"command\": \"python main.py\", \"keep_job\": true,"
		" \"vpc_connector_name\": \"c1\", \"service_account_name\": \"sa@x\","
		" \"env\": {\"K\": \"V\"}}");
	assert_json(
		pp_json_path(out, "job_body.template.template"),
		"{\"serviceAccount\": \"sa@x\", \"maxRetries\": 0, \"timeout\": 600,"
		" \"vpcAccess\": {\"connector\": \"c1\"}, \"containers\": [{\"env\": [],"
		" \"image\": \"me/flow:1\", \"command\": \"python main.py\", \"args\": [\"--x\"],"
		" \"resources\": {\"limits\": {\"cpu\": \"2\", \"memory\": \"2Gi\"}}}]}");
	assert_true(pp_json_get_bool(out, "keep_job", false));
	assert_string_equal(pp_json_string(pp_json_path(out, "env.K")), "V");
	pp_json_free(out);
}

static void test_default_ecs(void **state)
{
	(void)state;
	struct pp_json *out = render_default("ecs", NULL);
	assert_json(out, "{\"command\": \"prefect flow-run execute\", " FR_ENV ", " FR_LABELS ","
			 " \"name\": \"crimson-hippo\","
			 " \"task_definition\": {\"containerDefinitions\": [{}]},"
			 " \"task_run_request\": {\"launchType\": \"FARGATE\", \"overrides\":"
			 " {\"containerOverrides\": [{}]}},"
			 " \"task_start_timeout_seconds\": 300, \"task_watch_poll_interval\": 5.0,"
			 " \"auto_deregister_task_definition\": false,"
			 " \"match_latest_revision_in_family\": false}");
	pp_json_free(out);

	out = render_default("ecs:push",
			     "{\"cpu\": 1024, \"memory\": 2048, \"cluster\": \"c\","
			     " \"image\": \"img\", \"env\": {\"A\": \"1\"},"
			     " \"labels\": {\"t\": \"v\"}, \"container_name\": \"prefect\"}");
	assert_json(pp_json_get(out, "task_definition"),
		    "{\"containerDefinitions\": [{\"image\": \"img\", \"name\": \"prefect\"}],"
		    " \"cpu\": 1024, \"memory\": 2048}");
	assert_json(
		pp_json_path(out, "task_run_request.overrides"),
		"{\"containerOverrides\": [{\"name\": \"prefect\", \"environment\": {\"A\": \"1\"},"
		" \"cpu\": 1024, \"memory\": 2048}], \"cpu\": 1024, \"memory\": 2048}");
	assert_json(pp_json_path(out, "task_run_request.tags"), "{\"t\": \"v\"}");
	assert_string_equal(pp_json_string(pp_json_path(out, "task_run_request.cluster")), "c");
	pp_json_free(out);
}

static void test_default_aci(void **state)
{
	(void)state;
	struct pp_json *out =
		render_default("azure-container-instance",
			       "{\"resource_group_name\": \"rg\","
			       " \"subscription_id\": \"sub-1234\", \"image\": \"img\"}");
	struct pp_json *arm = pp_json_detach(pp_json_get(out, "arm_template"));
	assert_json(out, "{\"command\": \"prefect flow-run execute\", " FR_ENV ", " FR_LABELS ","
			 " \"name\": \"crimson-hippo\", \"image\": \"img\","
			 " \"resource_group_name\": \"rg\", \"subscription_id\": \"sub-1234\","
			 " \"entrypoint\": \"/opt/prefect/entrypoint.sh\", \"cpu\": 1.0,"
			 " \"memory\": 1.0, \"stream_output\": false,"
			 " \"task_start_timeout_seconds\": 240, \"task_watch_poll_interval\": 5.0,"
			 " \"keep_container_group\": false}");
	assert_json(pp_json_path(arm, "resources[0].properties.containers[0].properties"),
		    "{\"image\": \"img\", \"resources\": {\"requests\": {\"cpu\": 1.0,"
		    " \"memoryInGB\": 1.0}}, \"environmentVariables\": []}");
	assert_string_equal(pp_json_string(pp_json_path(arm, "parameters.location.defaultValue")),
			    "[resourceGroup().location]");
	pp_json_free(arm);
	pp_json_free(out);
}

static void test_default_aci_required(void **state)
{
	(void)state;
	struct pp_json *tmpl = NULL, *out = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_template_default("azure-container-instance:push", &tmpl, &err), 0);
	assert_int_equal(pp_render_job(tmpl, NULL, NULL, NULL, NULL, &out, &err), PP_EINVALID);
	assert_string_equal(
		err.msg, "job variable \"resource_group_name\": required, but no value was given");
	pp_json_free(tmpl);
}

static void test_default_modal(void **state)
{
	(void)state;
	struct pp_json *out =
		render_default("modal:push", "{\"gpu\": \"A100:2\", \"region\":"
					     " [\"us-east\"], \"secrets\": [\"s1\"]}");
	assert_json(out, "{\"command\": \"prefect flow-run execute\", " FR_ENV ", " FR_LABELS ","
			 " \"name\": \"crimson-hippo\", \"app_name\": \"prefect-flow-runs\","
			 " \"image\": \"prefecthq/prefect:3-latest\", \"cpu\": 0.125,"
			 " \"memory\": 128, \"gpu\": \"A100:2\", \"timeout\": 3600,"
			 " \"region\": [\"us-east\"], \"secrets\": [\"s1\"]}");
	pp_json_free(out);
}

/* Three runs of run_vars through a fresh cache of tmpl, the log's secrets
 * forgotten before each: after each render, text reads as want. */
static void hits_redact(const struct pp_json *tmpl, const char *run_vars, const char *text,
			const char *want)
{
	struct pp_json *run = js(run_vars), *out = NULL;
	struct pp_error err = {0};
	struct pp_render_cache *c = pp_render_cache_new(tmpl, NULL);
	for (int i = 0; i < 3; i++) {
		pp_secret_clear();
		assert_int_equal(pp_render_job_cached(c, NULL, run, &run_ctx, &out, &err), 0);
		char again[128];
		snprintf(again, sizeof(again), "%s", text);
		pp_redact(again);
		assert_string_equal(again, want);
		pp_json_free(out);
	}
	pp_secret_clear();
	pp_render_cache_free(c);
	pp_json_free(run);
}

/* Values of writeOnly / password variables are redacted from then on. */
static void test_secret_variables_registered(void **state)
{
	(void)state;
	pp_secret_clear();
	struct pp_json *out = render_default("azure-container-instance",
					     "{\"resource_group_name\": \"rg\","
					     " \"subscription_id\": \"sub-secret-5678\"}");
	char text[] = "id=sub-secret-5678";
	pp_redact(text);
	assert_string_equal(text, "id=[REDACTED]");
	pp_json_free(out);
	pp_secret_clear();

	/* A cache registers them again for every run it renders: the log's
	 * ring of them may have let them go since the first. */
	struct pp_json *tmpl = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_template_default("azure-container-instance", &tmpl, &err), 0);
	hits_redact(tmpl,
		    "{\"resource_group_name\": \"rg\", \"subscription_id\": \"sub-secret-5678\"}",
		    "id=sub-secret-5678", "id=[REDACTED]");
	pp_json_free(tmpl);
	/* Secrets in env (validated through a copy of it) and at the top, on
	 * every hit, without validating again. */
	tmpl = js("{\"job_configuration\": {\"env\": \"{{ env }}\", \"token\": \"{{ token }}\"},"
		  " \"variables\": {\"type\": \"object\", \"properties\": {"
		  "  \"env\": {\"type\": \"object\", \"additionalProperties\":"
		  "   {\"type\": \"string\", \"writeOnly\": true}},"
		  "  \"token\": {\"type\": \"string\", \"format\": \"password\"}}}}");
	hits_redact(
		tmpl,
		"{\"env\": {\"API_KEY\": \"env-secret-abcdef\"}, \"token\": \"tok-secret-123456\"}",
		"a=env-secret-abcdef b=tok-secret-123456", "a=[REDACTED] b=[REDACTED]");
	pp_json_free(tmpl);
}

/* pp_render_job of the layers and ctx, and what the cache gives for them:
 * the same text or the same error. */
static void expect_cache_same(struct pp_render_cache *c, const struct pp_json *tmpl,
			      const struct pp_json *pool, const char *dep, const char *run,
			      const struct pp_run_ctx *ctx)
{
	struct pp_json *d = js(dep), *r = js(run), *want = NULL, *got = NULL;
	struct pp_error want_err = {0}, got_err = {0};
	int want_rc = pp_render_job(tmpl, pool, d, r, ctx, &want, &want_err);
	int got_rc = pp_render_job_cached(c, d, r, ctx, &got, &got_err);
	assert_int_equal(got_rc, want_rc);
	assert_string_equal(got_err.msg, want_err.msg);
	char *w = want ? pp_json_to_string(want, PP_JSON_COMPACT) : NULL;
	char *g = got ? pp_json_to_string(got, PP_JSON_COMPACT) : NULL;
	if (!w != !g || (w && strcmp(w, g)))
		fail_msg("cached %s\nexpected %s\n(dep %s, run %s)", g ? g : "-", w ? w : "-",
			 dep ? dep : "-", run ? run : "-");
	free(w);
	free(g);
	pp_json_free(want);
	pp_json_free(got);
	pp_json_free(d);
	pp_json_free(r);
}

/* The cache renders what pp_render_job renders, whatever it keeps: for
 * templates that read the run's built-ins, the environment and a literal
 * env, the defaults, layers repeated, changed, failing, and more of them
 * than it keeps. */
static void test_render_cache(void **state)
{
	(void)state;
	static const char *const own[] = {
		"{\"job_configuration\": {\"name\": \"run-{{ flow_run.id }}\","
		" \"who\": \"{{ flow_run }}\", \"q\": \"{{ work_queue.name }}\", \"a\": \"{{ a "
		"}}\"},"
		" \"variables\": {\"properties\": {\"a\": {\"default\": 1}}}}",
		"{\"job_configuration\": {\"e\": \"{{ $PP_TEST_CACHE_VAR }}\", \"a\": \"{{ a }}\"},"
		" \"variables\": {\"properties\": {\"a\": {}}}}",
		/* a job variable named as a built-in hides it */
		"{\"job_configuration\": {\"f\": \"{{ flow_run }}\", \"a\": \"{{ a }}\"},"
		" \"variables\": {\"properties\": {\"a\": {}, \"flow_run\": {\"default\": 7}}}}",
		"{\"job_configuration\": {\"env\": {\"T\": \"t\", \"A\": \"{{ a }}\"},"
		" \"a\": \"{{ a }}\"}, \"variables\": {\"properties\": {\"a\": {},"
		" \"env\": {\"type\": \"object\"}}}}",
		"{\"job_configuration\": [], \"variables\": {\"properties\": {}}}",
	};
	static const char *const types[] = {"cloud-run-v2", "ecs", "azure-container-instance",
					    "modal"};
	static const char *const layers[][2] = {
		{NULL, NULL},
		{NULL, "{}"},
		{"{\"a\": 2}", NULL},
		{NULL, "{\"a\": \"x\"}"},
		{NULL, "{\"a\": 2.50}"},
		{NULL, "{\"a\": 2.5}"},
		{"{\"env\": {\"K\": \"1\"}}", "{\"env\": {\"K\": null, \"L\": \"2\"}}"},
		{NULL, "{\"nope\": 1}"},
		{NULL, "{\"cpu\": \"x\"}"},
		{NULL, "{\"image\": \"me/flow:1\", \"cpu\": 1024}"},
		{NULL, "{\"image\": \"me/flow:2\"}"},
		{NULL, "{\"a\": [1, 2]}"},
		{"{\"a\": 3}", "{\"a\": 4}"},
		{NULL, "[1]"},
	};
	struct pp_run_ctx other = run_ctx;
	other.flow_run_id = "0b7c1d2e-0000-4000-8000-000000000002";
	other.work_queue_name = "q-2";
	const struct pp_run_ctx *ctxs[] = {&run_ctx, &other, NULL};
	struct pp_json *pool = js("{\"env\": {\"P\": \"pool\"}}");
	for (size_t t = 0; t < sizeof(own) / sizeof(own[0]) + sizeof(types) / sizeof(types[0]);
	     t++) {
		struct pp_json *tmpl = NULL;
		struct pp_error err = {0};
		if (t < sizeof(own) / sizeof(own[0]))
			tmpl = js(own[t]);
		else if (pp_template_default(types[t - sizeof(own) / sizeof(own[0])], &tmpl, &err))
			fail_msg("%s", err.msg);
		const struct pp_json *pools[] = {NULL, pool};
		for (size_t p = 0; p < 2; p++) {
			struct pp_render_cache *c = pp_render_cache_new(tmpl, pools[p]);
			assert_non_null(c);
			/* each layer set three times in a row, then all of them again:
			 * the second pass finds only the last ones kept */
			for (int pass = 0; pass < 2; pass++) {
				for (size_t l = 0; l < sizeof(layers) / sizeof(layers[0]); l++) {
					for (int i = 0; i < 3; i++) {
						setenv("PP_TEST_CACHE_VAR", i ? "one" : "two", 1);
						expect_cache_same(c, tmpl, pools[p], layers[l][0],
								  layers[l][1], ctxs[i]);
					}
				}
			}
			pp_render_cache_free(c);
		}
		pp_json_free(tmpl);
	}
	unsetenv("PP_TEST_CACHE_VAR");
	pp_json_free(pool);
	pp_render_cache_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apply_values_strings),
		cmocka_unit_test(test_apply_values_typed),
		cmocka_unit_test(test_apply_values_python_str),
		cmocka_unit_test(test_apply_values_notset_and_paths),
		cmocka_unit_test(test_prefect_templating_cases),
		cmocka_unit_test(test_apply_values_env_placeholder),
		cmocka_unit_test(test_base_job_configuration),
		cmocka_unit_test(test_prepare_for_flow_run),
		cmocka_unit_test(test_deployment_run_env),
		cmocka_unit_test(test_env_merge),
		cmocka_unit_test(test_env_coercion_and_falsey_command),
		cmocka_unit_test(test_layers_replace),
		cmocka_unit_test(test_builtin_values),
		cmocka_unit_test(test_render_errors),
		cmocka_unit_test(test_render_size_cap),
		cmocka_unit_test(test_vars_set_kv),
		cmocka_unit_test(test_default_cloud_run_v2),
		cmocka_unit_test(test_default_ecs),
		cmocka_unit_test(test_default_aci),
		cmocka_unit_test(test_default_aci_required),
		cmocka_unit_test(test_default_modal),
		cmocka_unit_test(test_secret_variables_registered),
		cmocka_unit_test(test_render_job_total_cap),
		cmocka_unit_test(test_render_cache),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
