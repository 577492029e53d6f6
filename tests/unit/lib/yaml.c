/* YAML into the JSON tree: PyYAML's scalar rules, lines on every node,
 * anchors, aliases and merge keys, and the caps that make hostile input
 * (alias bombs, deep nesting, self-reference, huge documents) fail fast. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/yaml.h"

static struct pp_json *load(const char *text)
{
	struct pp_json *j = NULL;
	struct pp_error err = {0};
	if (pp_yaml_parse(text, strlen(text), "t.yaml", NULL, &j, &err))
		fail_msg("unexpected error: %s\nfor:\n%s", err.msg, text);
	return j;
}

/* The error message for text, which must fail with PP_EINVALID. */
static const char *load_fail(const char *text, const struct pp_yaml_limits *lim)
{
	static struct pp_error err;
	struct pp_json *j = NULL;
	memset(&err, 0, sizeof(err));
	int rc = pp_yaml_parse(text, strlen(text), "t.yaml", lim, &j, &err);
	if (rc != PP_EINVALID)
		fail_msg("expected PP_EINVALID, got %d (%s) for:\n%s", rc, err.msg, text);
	assert_null(j);
	return err.msg;
}

static char *compact(const struct pp_json *j)
{
	char *s = pp_json_to_string(j, PP_JSON_COMPACT);
	assert_non_null(s);
	return s;
}

static void assert_yaml_json(const char *yaml, const char *json)
{
	struct pp_json *j = load(yaml);
	char *s = compact(j);
	if (strcmp(s, json))
		fail_msg("for:\n%s\ngot      %s\nexpected %s", yaml, s, json);
	free(s);
	pp_json_free(j);
}

static void test_scalars_as_pyyaml_reads_them(void **state)
{
	(void)state;
	assert_yaml_json("a: yes\nb: No\nc: on\nd: OFF\ne: true\nf: False\ng: y\n",
			 "{\"a\":true,\"b\":false,\"c\":true,\"d\":false,\"e\":true,\"f\":false,"
			 "\"g\":\"y\"}");
	assert_yaml_json("a: ~\nb: null\nc:\nd: NULL\ne: nil\n",
			 "{\"a\":null,\"b\":null,\"c\":null,\"d\":null,\"e\":\"nil\"}");
	assert_yaml_json("- 12\n- -7\n- +3\n- 0755\n- 0x1F\n- 0b101\n- 1_000\n- 0\n- 09\n",
			 "[12,-7,3,493,31,5,1000,0,\"09\"]");
	assert_yaml_json("- 1.5\n- .5\n- 1.\n- 1.0e+3\n- 1e3\n- 1.0e3\n- 6.02_0\n- -.5\n- 0_\n",
			 "[1.5,0.5,1,1000,\"1e3\",\"1.0e3\",6.02,\"-.5\",0]");
	/* Dates, sexagesimal numbers and versions stay text. */
	assert_yaml_json("- 2024-01-01T00:00:00Z\n- 1:30\n- 3.10.1\n- '12'\n- \"true\"\n",
			 "[\"2024-01-01T00:00:00Z\",\"1:30\",\"3.10.1\",\"12\",\"true\"]");
	/* Explicit core tags win over the implicit rules. */
	assert_yaml_json("- !!str 12\n- !!int '12'\n- !!float 3\n- !!bool 'yes'\n- ! 12\n",
			 "[\"12\",12,3,true,12]");
	/* Block scalars and escapes. */
	assert_yaml_json("s: |\n  a\n  b\nf: >\n  a\n  b\nq: \"x\\ty\\u00e9\"\n",
			 "{\"s\":\"a\\nb\\n\",\"f\":\"a b\\n\",\"q\":\"x\\ty\xc3\xa9\"}");
	assert_yaml_json("", "null");
	assert_yaml_json("# only a comment\n", "null");
	assert_yaml_json("--- [1, {a: b}]\n...\n", "[1,{\"a\":\"b\"}]");
}

static void test_lines(void **state)
{
	(void)state;
	struct pp_json *j = load("# c\nname: x\nlist:\n  - 1\n  - k: v\n\n    z: 2\n");
	assert_int_equal(j->line, 2);
	assert_int_equal(pp_json_get(j, "name")->line, 2);
	struct pp_json *list = pp_json_get(j, "list");
	assert_int_equal(list->line, 4);
	assert_int_equal(pp_json_at(list, 0)->line, 4);
	assert_int_equal(pp_json_at(list, 1)->line, 5);
	assert_int_equal(pp_json_path(j, "list[1].z")->line, 7);
	/* A clone keeps them. */
	struct pp_json *c = pp_json_clone(list);
	assert_int_equal(pp_json_path(c, "[1].z")->line, 7);
	pp_json_free(c);
	pp_json_free(j);
}

/* The shape Prefect's docs give for sharing settings between deployments. */
static void test_anchors_aliases_and_merge(void **state)
{
	(void)state;
	const char *doc = "definitions:\n"
			  "  work_pools:\n"
			  "    pool: &pool\n"
			  "      name: ecs-pool\n"
			  "      job_variables:\n"
			  "        image: repo/img:1\n"
			  "  schedules:\n"
			  "    daily: &daily\n"
			  "      cron: 0 1 * * *\n"
			  "      timezone: Europe/Berlin\n"
			  "deployments:\n"
			  "  - name: a\n"
			  "    work_pool: *pool\n"
			  "    schedules:\n"
			  "      - *daily\n"
			  "  - name: b\n"
			  "    work_pool:\n"
			  "      <<: *pool\n"
			  "      work_queue_name: high\n"
			  "      name: other\n"
			  "    schedules:\n"
			  "      - <<: *daily\n"
			  "        timezone: UTC\n";
	struct pp_json *j = load(doc);
	struct pp_json *a = pp_json_path(j, "deployments[0]");
	struct pp_json *b = pp_json_path(j, "deployments[1]");
	assert_string_equal(pp_json_path(a, "work_pool.name")->str, "ecs-pool");
	assert_string_equal(pp_json_path(a, "work_pool.job_variables.image")->str, "repo/img:1");
	assert_string_equal(pp_json_path(a, "schedules[0].cron")->str, "0 1 * * *");
	/* The alias's node has the alias's line; its members their own. */
	assert_int_equal(pp_json_get(a, "work_pool")->line, 13);
	assert_int_equal(pp_json_path(a, "work_pool.name")->line, 4);
	/* Explicit keys win whatever their place; merged ones fill in. */
	struct pp_json *wp = pp_json_get(b, "work_pool");
	assert_int_equal(wp->count, 3);
	assert_string_equal(pp_json_get(wp, "name")->str, "other");
	assert_string_equal(pp_json_get(wp, "work_queue_name")->str, "high");
	assert_string_equal(pp_json_path(wp, "job_variables.image")->str, "repo/img:1");
	assert_null(pp_json_get(wp, "<<"));
	struct pp_json *s = pp_json_path(b, "schedules[0]");
	assert_string_equal(pp_json_get(s, "timezone")->str, "UTC");
	assert_string_equal(pp_json_get(s, "cron")->str, "0 1 * * *");
	/* Copies are independent of the anchored node. */
	assert_string_equal(pp_json_path(j, "definitions.schedules.daily.timezone")->str,
			    "Europe/Berlin");
	pp_json_free(j);

	/* A list of merges: earlier mappings win; a quoted << is a key. */
	assert_yaml_json("a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\n"
			 "c:\n  <<: [*a, *b]\n  '<<': k\n",
			 "{\"a\":{\"x\":1,\"y\":1},\"b\":{\"y\":2,\"z\":2},"
			 "\"c\":{\"<<\":\"k\",\"x\":1,\"y\":1,\"z\":2}}");
	/* Scalar anchors, a redefined anchor, an anchored merge source. */
	assert_yaml_json("- &v 5\n- *v\n- &v six\n- *v\n- {<<: &m {q: 1}}\n- *m\n",
			 "[5,5,\"six\",\"six\",{\"q\":1},{\"q\":1}]");
}

static void test_errors_name_the_line(void **state)
{
	(void)state;
	/* Each bad document and what its message must contain. */
	static const struct {
		const char *yaml, *want;
	} cases[] = {
		{"a: 1\nb: [1, 2\n", "t.yaml:"},
		{"a: *nope\n", "t.yaml:1: alias *nope names no anchor"},
		{"? [a]\n: 1\n", "a mapping key must be a scalar"},
		{"a: !!python/object:os.system x\n",
		 "unsupported tag tag:yaml.org,2002:python/object:os.system"},
		{"a: !custom {b: 1}\n", "unsupported tag !custom on a mapping"},
		{"a: .inf\n", "no JSON equivalent"},
		{"a: 99999999999999999999\n", "integer 99999999999999999999 out of range"},
		{"a: 1\n---\nb: 2\n", "t.yaml:2: a second document"},
		{"a:\n  <<: 5\n", "the merge key << takes a mapping"},
		{"a: !!int x1\n", "!!int value \"x1\" is not one"},
		{"a: \"\\0\"\n\"k\\0\": 1\n", "t.yaml:2: NUL character in a mapping key"},
		{"a: \"\xff\"\n", "t.yaml"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *m = load_fail(cases[i].yaml, NULL);
		if (!strstr(m, cases[i].want))
			fail_msg("for:\n%s\nthe message is \"%s\", without \"%s\"", cases[i].yaml,
				 m, cases[i].want);
	}
	assert_string_equal(load_fail("a: 1\nb: 2\na: 3\n", NULL),
			    "t.yaml:3: duplicate key \"a\" (first at line 1)");
}

/* An alias to a node that contains it would be an infinite document. */
static void test_self_reference_refused(void **state)
{
	(void)state;
	const char *m = load_fail("a: &x [1, *x]\n", NULL);
	assert_non_null(strstr(m, "alias *x names no anchor defined before it"));
	m = load_fail("a: &x {b: {<<: *x}}\n", NULL);
	assert_non_null(strstr(m, "alias *x"));
}

/* "Billion laughs": nine levels of ten aliases each would be 10^9 values;
 * the node cap stops it before the copies pass 100k values. The cap's
 * message is the proof that it stopped early: no wall-clock limit, which a
 * busy machine could break. */
static void test_alias_bomb_fails_fast(void **state)
{
	(void)state;
	struct pp_buf b;
	pp_buf_init(&b, 1 << 16);
	pp_buf_puts(&b, "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
	for (int i = 1; i <= 9; i++) {
		pp_buf_printf(&b, "a%d: &a%d [", i, i);
		for (int k = 0; k < 10; k++)
			pp_buf_printf(&b, "%s*a%d", k ? ", " : "", i - 1);
		pp_buf_puts(&b, "]\n");
	}
	const char *m = load_fail(b.data, NULL);
	assert_non_null(strstr(m, "more than 100000 values (aliases expanded)"));

	/* The same through merge keys, which copy the merged members. */
	pp_buf_reset(&b);
	pp_buf_puts(&b, "m0: &m0 {a: lol, b: lol, c: lol, d: lol, e: lol, f: lol}\n");
	for (int i = 1; i <= 9; i++) {
		pp_buf_printf(&b, "m%d: &m%d {", i, i);
		for (int k = 0; k < 10; k++)
			pp_buf_printf(&b, "%sp%d: {<<: *m%d}", k ? ", " : "", k, i - 1);
		pp_buf_puts(&b, "}\n");
	}
	m = load_fail(b.data, NULL);
	assert_non_null(strstr(m, "more than 100000 values (aliases expanded)"));
	pp_buf_free(&b);

	/* A small cap is honoured exactly: 3 values fit, the 4th does not. */
	struct pp_yaml_limits lim = {.max_nodes = 3};
	struct pp_json *j = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_yaml_parse("[1, 2]", 6, "t", &lim, &j, &err), 0);
	pp_json_free(j);
	m = load_fail("[1, 2, 3]", &lim);
	assert_non_null(strstr(m, "more than 3 values"));
	m = load_fail("a: &x [1]\nb: *x\n", &lim);
	assert_non_null(strstr(m, "t.yaml:2: more than 3 values"));
}

static void test_depth_and_size_caps(void **state)
{
	(void)state;
	/* Flow nesting far past the cap fails at the cap. */
	size_t n = 200000;
	char *deep = malloc(2 * n + 1);
	assert_non_null(deep);
	memset(deep, '[', n);
	memset(deep + n, ']', n);
	deep[2 * n] = '\0';
	const char *m = load_fail(deep, NULL);
	assert_non_null(strstr(m, "nested deeper than 64 levels"));
	free(deep);

	struct pp_yaml_limits lim = {.max_depth = 3};
	struct pp_json *j = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_yaml_parse("[[[1]]]", 7, "t", &lim, &j, &err), 0);
	pp_json_free(j);
	m = load_fail("[[[[1]]]]", &lim);
	assert_non_null(strstr(m, "nested deeper than 3 levels"));
	/* An alias counts the depth it brings. */
	m = load_fail("a: &x [[1]]\nb: [*x]\n", &lim);
	assert_non_null(strstr(m, "t.yaml:2: nested deeper than 3 levels (aliases expanded)"));
	m = load_fail("a: &x {k: [[1]]}\nb: {<<: *x}\nc: [{<<: *x}]\n", &lim);
	assert_non_null(strstr(m, "nested deeper than 3 levels"));

	lim = (struct pp_yaml_limits){.max_bytes = 10};
	m = load_fail("a: 12345678901\n", &lim);
	assert_string_equal(m, "t.yaml: larger than 10 bytes");
	lim = (struct pp_yaml_limits){.max_anchors = 2};
	m = load_fail("- &a 1\n- &b 2\n- &c 3\n", &lim);
	assert_non_null(strstr(m, "t.yaml:3: more than 2 anchors"));
}

static void test_file(void **state)
{
	(void)state;
	char path[] = "/tmp/pp-yaml-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = "deployments:\n  - name: x\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct pp_json *j = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_yaml_parse_file(path, NULL, &j, &err), 0);
	assert_string_equal(pp_json_path(j, "deployments[0].name")->str, "x");
	pp_json_free(j);
	struct pp_yaml_limits lim = {.max_bytes = 8};
	assert_int_equal(pp_yaml_parse_file(path, &lim, &j, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "larger than 8 bytes"));
	unlink(path);
	assert_int_equal(pp_yaml_parse_file(path, NULL, &j, &err), PP_ENOTFOUND);
	assert_int_equal(pp_yaml_parse_file("/tmp", NULL, &j, &err), PP_EINVALID);
	assert_null(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars_as_pyyaml_reads_them),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_anchors_aliases_and_merge),
		cmocka_unit_test(test_errors_name_the_line),
		cmocka_unit_test(test_self_reference_refused),
		cmocka_unit_test(test_alias_bomb_fails_fast),
		cmocka_unit_test(test_depth_and_size_caps),
		cmocka_unit_test(test_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
