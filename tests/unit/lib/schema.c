/* Job-variable validation against the JSON-schema subset of Prefect's
 * base job templates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/schema.h"

/* Parsed inside [] so that bare scalars are accepted. */
static struct pp_json *js(const char *s)
{
	struct pp_json *arr = NULL;
	struct pp_error err = {0};
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

/* Root document with definitions the "$ref"s below point into. */
static const char *root_text =
	"{\"definitions\": {"
	" \"Cap\": {\"type\": \"object\", \"required\": [\"capacityProvider\", \"weight\"],"
	"  \"properties\": {\"capacityProvider\": {\"type\": \"string\"},"
	"   \"weight\": {\"type\": \"integer\", \"minimum\": 0}}},"
	" \"Creds\": {\"type\": \"object\", \"properties\": {"
	"  \"key\": {\"type\": \"string\"},"
	"  \"secret\": {\"type\": \"string\", \"writeOnly\": true, \"format\": \"password\"},"
	"  \"nested\": {\"allOf\": [{\"$ref\": \"#/definitions/Inner\"}]}}},"
	" \"Inner\": {\"type\": \"object\", \"properties\": {\"flag\": {\"type\": \"boolean\"}}},"
	" \"Loop\": {\"$ref\": \"#/definitions/Loop\"},"
	" \"a/b\": {\"type\": \"integer\"}}}";

static int run(const char *schema, const char *value, struct pp_error *err)
{
	struct pp_json *root = js(root_text), *s = js(schema), *v = js(value);
	int rc = pp_schema_validate(s, root, v, "var", err);
	pp_json_free(root);
	pp_json_free(s);
	pp_json_free(v);
	return rc;
}

static void ok(const char *schema, const char *value)
{
	struct pp_error err = {0};
	if (run(schema, value, &err))
		fail_msg("%s rejected %s: %s", schema, value, err.msg);
}

static void bad(const char *schema, const char *value, const char *msg)
{
	struct pp_error err = {0};
	if (run(schema, value, &err) != PP_EINVALID)
		fail_msg("%s accepted %s", schema, value);
	if (strcmp(err.msg, msg))
		fail_msg("message '%s', expected '%s'", err.msg, msg);
}

static void test_types(void **state)
{
	(void)state;
	ok("{\"type\": \"integer\"}", "3");
	ok("{\"type\": \"integer\"}", "3.0");
	bad("{\"type\": \"integer\"}", "3.5", "\"var\": expected integer, got number 3.5");
	bad("{\"type\": \"integer\"}", "\"abc\"", "\"var\": expected integer, got string \"abc\"");
	bad("{\"type\": \"integer\"}", "true", "\"var\": expected integer, got boolean true");
	ok("{\"type\": \"number\"}", "2.5");
	bad("{\"type\": \"number\"}", "\"2\"", "\"var\": expected number, got string \"2\"");
	ok("{\"type\": \"string\"}", "\"\"");
	bad("{\"type\": \"string\"}", "null", "\"var\": expected string, got null");
	ok("{\"type\": \"boolean\"}", "false");
	bad("{\"type\": \"boolean\"}", "0", "\"var\": expected boolean, got integer 0");
	ok("{\"type\": \"object\"}", "{}");
	bad("{\"type\": \"object\"}", "[]", "\"var\": expected object, got array []");
	ok("{\"type\": \"array\"}", "[1]");
	ok("{\"type\": [\"string\", \"null\"]}", "null");
	bad("{\"type\": [\"string\", \"integer\"]}", "1.5",
	    "\"var\": expected string or integer, got number 1.5");
	/* no type: anything goes */
	ok("{}", "{\"x\": [1]}");
	bad("false", "1", "\"var\": not allowed");
}

static void test_long_values_are_shortened(void **state)
{
	(void)state;
	char value[200];
	snprintf(value, sizeof(value), "\"%0120d\"", 0);
	struct pp_error err = {0};
	assert_int_equal(run("{\"type\": \"integer\"}", value, &err), PP_EINVALID);
	size_t n = strlen(err.msg);
	assert_true(n < 120);
	assert_string_equal(err.msg + n - 3, "...");
}

static void test_enum_const(void **state)
{
	(void)state;
	const char *launch = "{\"type\": \"string\", \"enum\": [\"FARGATE\", \"EC2\"]}";
	ok(launch, "\"EC2\"");
	bad(launch, "\"fargate\"",
	    "\"var\": string \"fargate\" is not one of [\"FARGATE\",\"EC2\"]");
	ok("{\"enum\": [1, {\"a\": true}]}", "{\"a\": true}");
	ok("{\"const\": 7}", "7.0");
	bad("{\"const\": 7}", "8", "\"var\": must be 7");
}

static void test_bounds(void **state)
{
	(void)state;
	const char *timeout =
		"{\"type\": \"integer\", \"exclusiveMinimum\": 0, \"maximum\": 604800}";
	ok(timeout, "1");
	ok(timeout, "604800");
	bad(timeout, "0", "\"var\": 0 must be greater than 0");
	bad(timeout, "604801", "\"var\": 604801 is above the maximum 604800");
	bad("{\"minimum\": 2}", "1.5", "\"var\": 1.5 is below the minimum 2");
	bad("{\"exclusiveMaximum\": 2}", "2", "\"var\": 2 must be less than 2");
	/* draft 4 boolean exclusiveness */
	bad("{\"minimum\": 1, \"exclusiveMinimum\": true}", "1",
	    "\"var\": 1 is below the exclusive minimum 1");
	ok("{\"minLength\": 2, \"maxLength\": 3}", "\"\xc3\xa9\xc3\xa9\"");
	bad("{\"maxLength\": 1}", "\"ab\"", "\"var\": longer than 1 characters");
	bad("{\"minItems\": 1}", "[]", "\"var\": fewer than 1 items");
}

/* The pattern of cloud-run-v2's memory variable, in ECMA syntax. */
static void test_pattern(void **state)
{
	(void)state;
	const char *mem = "{\"type\": \"string\", \"pattern\": \"^\\\\d+(?:G|Gi|M|Mi)$\"}";
	ok(mem, "\"512Mi\"");
	ok(mem, "\"2G\"");
	bad(mem, "\"512MB\"",
	    "\"var\": string \"512MB\" does not match the pattern ^\\d+(?:G|Gi|M|Mi)$");
	bad(mem, "\"Mi\"", "\"var\": string \"Mi\" does not match the pattern ^\\d+(?:G|Gi|M|Mi)$");
	bad("{\"pattern\": \"(\"}", "\"x\"",
	    "\"var\": the template's pattern \"(\" is not supported");
}

static void test_objects_and_arrays(void **state)
{
	(void)state;
	const char *env =
		"{\"type\": \"object\", \"additionalProperties\": {\"type\": \"string\"}}";
	ok(env, "{\"A\": \"1\"}");
	bad(env, "{\"A\": \"1\", \"B\": 2}", "\"var.B\": expected string, got integer 2");
	const char *closed = "{\"properties\": {\"a\": {}}, \"additionalProperties\": false}";
	ok(closed, "{\"a\": 1}");
	bad(closed, "{\"a\": 1, \"b\": 2}", "\"var.b\": unknown property");
	const char *args = "{\"type\": \"array\", \"items\": {\"type\": \"string\"}}";
	ok(args, "[\"a\", \"b\"]");
	bad(args, "[\"a\", 3]", "\"var[1]\": expected string, got integer 3");
}

/* ECS's capacity_provider_strategy and credentials use $ref / allOf. */
static void test_refs(void **state)
{
	(void)state;
	const char *cps = "{\"type\": \"array\", \"items\": {\"$ref\": \"#/definitions/Cap\"}}";
	ok(cps, "[{\"capacityProvider\": \"FARGATE_SPOT\", \"weight\": 1}]");
	bad(cps, "[{\"capacityProvider\": \"FARGATE\"}]",
	    "\"var[0]\": required property \"weight\" missing");
	bad(cps, "[{\"capacityProvider\": \"F\", \"weight\": -1}]",
	    "\"var[0].weight\": -1 is below the minimum 0");
	const char *creds = "{\"allOf\": [{\"$ref\": \"#/definitions/Creds\"}]}";
	ok(creds, "{\"key\": \"k\", \"nested\": {\"flag\": true}}");
	bad(creds, "{\"nested\": {\"flag\": \"yes\"}}",
	    "\"var.nested.flag\": expected boolean, got string \"yes\"");
	ok("{\"$ref\": \"#/definitions/a~1b\"}", "1");
	bad("{\"$ref\": \"#/definitions/Missing\"}", "1",
	    "\"var\": $ref \"#/definitions/Missing\" does not resolve in the template");
	bad("{\"$ref\": \"http://x/y\"}", "1",
	    "\"var\": unsupported $ref \"http://x/y\" (only local #/ refs)");
	bad("{\"$ref\": \"#/definitions/Loop\"}", "1",
	    "\"var\": schema nested too deeply or $ref cycle");
}

static void test_any_one_of(void **state)
{
	(void)state;
	const char *region = "{\"anyOf\": [{\"type\": \"string\"}, {\"type\": \"array\","
			     " \"items\": {\"type\": \"string\"}}]}";
	ok(region, "\"us-east\"");
	ok(region, "[\"a\", \"b\"]");
	bad(region, "3",
	    "\"var\": matches none of the allowed schemas (\"var\": expected string, "
	    "got integer 3)");
	const char *one = "{\"oneOf\": [{\"type\": \"integer\"}, {\"type\": \"number\"}]}";
	ok(one, "1.5");
	bad(one, "1", "\"var\": matches 2 of the oneOf schemas, expected exactly one");
}

static void test_null_allowed(void **state)
{
	(void)state;
	const struct {
		const char *schema;
		bool allowed;
	} cases[] = {
		{"{\"type\": \"string\"}", true}, /* no default */
		{"{\"type\": \"string\", \"default\": null}", true},
		{"{\"type\": \"integer\", \"default\": 3}", false},
		{"{\"allOf\": [{\"$ref\": \"#/definitions/Creds\"}], \"default\": {}}", true},
		{"{\"type\": [\"integer\", \"null\"], \"default\": 3}", true},
		{"{\"anyOf\": [{\"type\": \"integer\"}, {\"type\": \"null\"}], \"default\": 1}",
		 true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pp_json *s = js(cases[i].schema);
		if (pp_schema_allows_null(s) != cases[i].allowed)
			fail_msg("allows_null(%s) != %d", cases[i].schema, cases[i].allowed);
		pp_json_free(s);
	}
}

/* Values of writeOnly / password members are registered as secrets, and
 * errors about them do not show the value. */
static void test_secrets(void **state)
{
	(void)state;
	pp_secret_clear();
	ok("{\"$ref\": \"#/definitions/Creds\"}", "{\"secret\": \"hunter2-very-secret\"}");
	char text[] = "x hunter2-very-secret y";
	pp_redact(text);
	assert_string_equal(text, "x [REDACTED] y");
	bad("{\"type\": \"integer\", \"format\": \"password\"}", "\"s3cr3t-value\"",
	    "\"var\": expected integer, got string");
	pp_secret_clear();
}

static void collect(const char *secret, void *arg)
{
	struct pp_buf *b = arg;
	assert_int_equal(pp_buf_printf(b, "%s|", secret), 0);
}

/* pp_schema_validate_noting tells what it registers: the strings of secret
 * members wherever they are (behind $ref, in items, in the branch anyOf
 * took), and no other string. */
static void test_secrets_noted(void **state)
{
	(void)state;
	pp_secret_clear();
	struct pp_json *root = js(root_text);
	struct pp_json *schema =
		js("{\"type\": \"object\", \"properties\": {"
		   " \"creds\": {\"$ref\": \"#/definitions/Creds\"},"
		   " \"keys\": {\"type\": \"array\", \"items\": {\"type\": \"string\","
		   "  \"writeOnly\": true}},"
		   " \"either\": {\"anyOf\": [{\"type\": \"integer\"},"
		   "  {\"type\": \"string\", \"format\": \"password\"}]},"
		   " \"plain\": {\"type\": \"string\"}}}");
	struct pp_json *value = js("{\"creds\": {\"secret\": \"s-one\"}, \"keys\": [\"s-two\","
				   " \"s-three\"], \"either\": \"s-four\", \"plain\": \"open\"}");
	struct pp_buf noted;
	pp_buf_init(&noted, 256);
	struct pp_error err = {0};
	assert_int_equal(
		pp_schema_validate_noting(schema, root, value, "var", collect, &noted, &err), 0);
	assert_string_equal(pp_buf_str(&noted), "s-one|s-two|s-three|s-four|");
	char text[] = "s-four open";
	pp_redact(text);
	assert_null(strstr(text, "s-four")); /* registered, as ever */
	assert_non_null(strstr(text, "open"));
	pp_buf_free(&noted);
	pp_json_free(value);
	pp_json_free(schema);
	pp_json_free(root);
	pp_secret_clear();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_long_values_are_shortened),
		cmocka_unit_test(test_enum_const),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_pattern),
		cmocka_unit_test(test_objects_and_arrays),
		cmocka_unit_test(test_refs),
		cmocka_unit_test(test_any_one_of),
		cmocka_unit_test(test_null_allowed),
		cmocka_unit_test(test_secrets),
		cmocka_unit_test(test_secrets_noted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
