#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/json.h"
#include "tests/json_keep_oracle.h"

static struct pp_json *parse_ok(const char *s)
{
	struct pp_json *j = NULL;
	struct pp_error err = {0};
	int rc = pp_json_parse(s, strlen(s), NULL, &j, &err);
	if (rc)
		fail_msg("parse of %s failed: %s", s, err.msg);
	return j;
}

/* The message of s's parse under lim (NULL: the defaults), which must
 * fail as invalid and give no tree. */
static const char *parse_fails(const char *s, const struct pp_json_limits *lim,
			       struct pp_error *err)
{
	struct pp_json *j = NULL;
	assert_int_equal(pp_json_parse(s, strlen(s), lim, &j, err), PP_EINVALID);
	assert_null(j);
	return err->msg;
}

static void expect_error(const char *s, const char *msg_part)
{
	struct pp_error err = {0};
	if (!strstr(parse_fails(s, NULL, &err), msg_part))
		fail_msg("error for %s was '%s', expected '%s'", s, err.msg, msg_part);
}

static void test_types_and_access(void **state)
{
	(void)state;
	struct pp_json *j = parse_ok("{\"a\": {\"b\": [1, 2.5, {\"c\": \"x\"}]}, \"t\": true, "
				     "\"n\": null, \"s\": \"h\\u00e9\\n\"}");
	assert_string_equal(pp_json_string(pp_json_path(j, "a.b[2].c")), "x");
	assert_string_equal(pp_json_string(pp_json_path(j, "$.a.b[2].c")), "x");
	assert_null(pp_json_path(j, "a.b[3]"));
	assert_true(pp_json_get_bool(j, "t", false));
	assert_true(pp_json_is(pp_json_get(j, "n"), PP_JSON_NULL));
	assert_string_equal(pp_json_get_string(j, "s"), "h\xc3\xa9\n");
	assert_int_equal(pp_json_get_int(pp_json_path(j, "a.b"), "x", 7), 7);
	double d = 0;
	assert_true(pp_json_path(j, "a.b[1]")->num == 2.5);
	assert_false(pp_json_get_number(j, "t", &d));
	pp_json_free(j);
}

/* RFC 8259 allows any value at the top; strict jsmn needs help there. */
static void test_top_level_scalars(void **state)
{
	(void)state;
	struct pp_json *j = parse_ok("5");
	assert_true(pp_json_is(j, PP_JSON_NUMBER) && j->num == 5);
	pp_json_free(j);
	j = parse_ok(" -1.5e3\n");
	assert_true(j->num == -1500);
	pp_json_free(j);
	j = parse_ok("true");
	assert_true(pp_json_is(j, PP_JSON_BOOL));
	pp_json_free(j);
	j = parse_ok("null");
	assert_true(pp_json_is(j, PP_JSON_NULL));
	pp_json_free(j);
	expect_error("5 6", "1:3: trailing data");
	expect_error("01", "1:1:");
	expect_error("tru", "1:1:");
	expect_error("-", "1:1:");
}

static void test_roundtrip_keeps_order_and_text(void **state)
{
	(void)state;
	const char *src =
		"{\"z\":1,\"a\":[true,false,null,-0.5e3,\"q\\\"\\\\\\/\\b\\f\\r\\t\\u0001\"],"
		"\"m\":{\"k\":\"\\ud83d\\ude00\"}}";
	struct pp_json *j = parse_ok(src);
	char *out = pp_json_to_string(j, PP_JSON_COMPACT);
	assert_non_null(out);
	assert_string_equal(
		out, "{\"z\":1,\"a\":[true,false,null,-0.5e3,\"q\\\"\\\\/\\b\\f\\r\\t\\u0001\"],"
		     "\"m\":{\"k\":\"\xf0\x9f\x98\x80\"}}");
	struct pp_json *again = parse_ok(out);
	assert_true(pp_json_equal(j, again));
	char *pretty = pp_json_to_string(j, PP_JSON_PRETTY);
	struct pp_json *p3 = parse_ok(pretty);
	assert_true(pp_json_equal(j, p3));
	assert_string_equal(j->child->key, "z");
	free(out);
	free(pretty);
	pp_json_free(j);
	pp_json_free(again);
	pp_json_free(p3);
}

/* Identical: writes the same text. Equal: the same value, whatever the
 * members' order or the numbers' spelling. */
static void test_identical_is_equal_text(void **state)
{
	(void)state;
	const char *texts[] = {
		"{\"a\":1,\"b\":[true,\"x\"]}",	  /* the reference */
		"{\"b\":[true,\"x\"],\"a\":1}",	  /* members reordered */
		"{\"a\":1.0,\"b\":[true,\"x\"]}", /* a number spelled otherwise */
		"{\"a\":1,\"b\":[\"x\",true]}",	  /* an array reordered */
		"{\"a\":1,\"c\":[true,\"x\"]}",	  /* a key renamed */
	};
	const bool equal[] = {true, true, true, false, false};
	struct pp_json *ref = parse_ok(texts[0]);
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct pp_json *j = parse_ok(texts[i]);
		assert_int_equal(pp_json_equal(ref, j), equal[i]);
		assert_int_equal(pp_json_identical(ref, j), i == 0);
		assert_int_equal(pp_json_identical(j, j), true);
		pp_json_free(j);
	}
	assert_false(pp_json_identical(ref, NULL));
	assert_true(pp_json_identical(NULL, NULL));
	pp_json_free(ref);
}

static void test_errors_have_line_col(void **state)
{
	(void)state;
	expect_error("{\n  \"a\": tru\n}", "2:8");
	expect_error("{\"a\": 1,}", "invalid");
	expect_error("[1, 2", "end of input");
	expect_error("{\"a\": \"\\x\"}", "1:7");
	expect_error("[1 2]", "expected ','");
	expect_error("{\"a\" 1}", "1:6");
	expect_error("{\"a\": 1 \"b\": 2}", "1:");
	expect_error("[1,,2]", "1:");
	expect_error("\"\xc0\xaf\"", "UTF-8");
	expect_error("\"\\ud800\"", "surrogate");
	expect_error("{} {}", "trailing");
	expect_error("[01]", "invalid literal");
	expect_error("[1.]", "invalid literal");
	expect_error("{1: 2}", ":");
	expect_error("", "empty");
	expect_error("\"a\tb\"", "control character");
}

static void test_limits(void **state)
{
	(void)state;
	struct pp_json_limits lim = {.max_bytes = 8, .max_depth = 3};
	struct pp_json *j = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_json_parse("[1,2,3,4,5]", 11, &lim, &j, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "limit"));
	assert_int_equal(pp_json_parse("[[[[]]]]", 8, &lim, &j, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "deep"));
	assert_int_equal(pp_json_parse("[[[]]]", 6, &lim, &j, &err), 0);
	pp_json_free(j);
}

/* open repeated until half of bytes, then close: bytes of nesting. */
static char *nested(const char *open, const char *close, size_t bytes)
{
	size_t no = strlen(open), nc = strlen(close), n = bytes / (no + nc);
	char *s = malloc(n * (no + nc) + 1), *p = s;
	assert_non_null(s);
	for (size_t i = 0; i < n; i++, p += no)
		memcpy(p, open, no);
	for (size_t i = 0; i < n; i++, p += nc)
		memcpy(p, close, nc);
	*p = '\0';
	return s;
}

/* "1" inside levels arrays. */
static char *nested_scalar(int levels)
{
	char *s = malloc(2 * (size_t)levels + 2);
	assert_non_null(s);
	memset(s, '[', (size_t)levels);
	s[levels] = '1';
	memset(s + levels + 1, ']', (size_t)levels);
	s[2 * levels + 1] = '\0';
	return s;
}

/* Issue 18: 4 MiB of nesting took jsmn hours (a walk per closing bracket);
 * the depth is now refused in one pass, at the first bracket too deep. The
 * alarm is only a backstop against a regression, far above the time even
 * valgrind takes. */
static void test_deep_nesting_fails_fast(void **state)
{
	(void)state;
	static const char *const shapes[][2] = {{"[", "]"}, {"{\"a\":", "}"}, {"[{\"k\":[", "]}]"}};
	alarm(60);
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		char *s = nested(shapes[i][0], shapes[i][1], (size_t)4 << 20);
		struct pp_json *j = NULL;
		struct pp_error err = {0};
		assert_int_equal(pp_json_parse(s, strlen(s), NULL, &j, &err), PP_EINVALID);
		assert_null(j);
		if (!strstr(err.msg, "JSON nested deeper than 64 levels at byte "))
			fail_msg("shape %zu: %s", i, err.msg);
		free(s);
	}
	/* The 65th value is the first too deep, containers and scalars alike. */
	char *s = nested("[", "]", 130);
	expect_error(s, "1:65: JSON nested deeper than 64 levels at byte 64");
	free(s);
	s = nested("[", "]", 128);
	struct pp_json *j = parse_ok(s);
	pp_json_free(j);
	free(s);
	s = nested_scalar(64);
	expect_error(s, "1:65: JSON nested deeper than 64 levels at byte 64");
	free(s);
	s = nested_scalar(63);
	j = parse_ok(s);
	pp_json_free(j);
	free(s);
	/* Brackets inside strings are not nesting. */
	s = nested("[", "]", 200);
	struct pp_buf b;
	pp_buf_init(&b, 0);
	assert_int_equal(pp_buf_printf(&b, "[\"%s\\\"\"]", s), 0);
	j = parse_ok(pp_buf_str(&b));
	assert_int_equal(j->child->len, 201);
	pp_json_free(j);
	pp_buf_free(&b);
	free(s);
	alarm(0);
}

static void test_token_limit(void **state)
{
	(void)state;
	struct pp_json_limits lim = {.max_tokens = 4};
	struct pp_json *j = NULL;
	struct pp_error err = {0};
	assert_non_null(strstr(parse_fails("[1,\"a\",{\"b\":2}]", &lim, &err),
			       "1:9: JSON holds more than 4 tokens at byte 8"));
	if (pp_json_parse("[1,\"a\",{}]", 10, &lim, &j, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(j->count, 3);
	pp_json_free(j);
	/* A wide document under the default limits is fine: 10^5 members. */
	struct pp_buf b;
	pp_buf_init(&b, 0);
	assert_int_equal(pp_buf_putc(&b, '['), 0);
	for (int i = 0; i < 100000; i++)
		assert_int_equal(pp_buf_puts(&b, i ? ",[0]" : "[0]"), 0);
	assert_int_equal(pp_buf_putc(&b, ']'), 0);
	assert_int_equal(pp_json_parse(pp_buf_str(&b), b.len, NULL, &j, &err), 0);
	assert_int_equal(j->count, 100000);
	pp_json_free(j);
	pp_buf_free(&b);
}

/* The tokenizer skips string bytes a word at a time and copies plain
 * strings as they are, decoding the rest: each kind of byte at each place
 * in keys and values around the word size. col 0: the error is at the
 * byte, else at that column. */
static void test_parse_string_bytes_anywhere(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out, *error;
		int col;
	} kinds[] = {
		{"\\n", "\n", NULL, 0},
		{"\\u00e9", "\xc3\xa9", NULL, 0},
		{"\xc3\xa9", "\xc3\xa9", NULL, 0},
		{"\x7f", "\x7f", NULL, 0},
		{"\x01", NULL, "control character in string", 0},
		{"\x1f", NULL, "control character in string", 0},
		{"\\\"", "\"", NULL, 0},
		{"\xff", NULL, "invalid UTF-8 in string", 0},
		{"\\x", NULL, "invalid JSON", 2},
	};
	/* Up to 40 bytes around the one looked at: the lexer skips plain
	 * bytes 16 and 8 at a time, then one by one, so each place of it in
	 * a 16-byte and an 8-byte step is tried. */
	static const char as[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	static const char bs[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
	for (size_t n = 0; n <= 40; n++)
		for (size_t at = 0; at <= n; at++)
			for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
				char str[96], want[96], text[224];
				snprintf(str, sizeof(str), "%.*s%s%.*s", (int)at, as, kinds[k].in,
					 (int)(n - at), bs);
				snprintf(text, sizeof(text), "{\"%s\":\"%s\"}", str, str);
				if (kinds[k].error) {
					char msg[96];
					snprintf(msg, sizeof(msg), "1:%d: %s",
						 kinds[k].col ? kinds[k].col : (int)at + 3,
						 kinds[k].error);
					expect_error(text, msg);
					continue;
				}
				snprintf(want, sizeof(want), "%.*s%s%.*s", (int)at, as,
					 kinds[k].out, (int)(n - at), bs);
				struct pp_json *j = parse_ok(text);
				assert_string_equal(pp_json_get_string(j, want), want);
				pp_json_free(j);
			}
}

/* A limit anywhere in the text is reported before a syntax error ahead of
 * it, as when the limits were checked in a pass of their own. */
static void test_limit_before_syntax_error(void **state)
{
	(void)state;
	struct pp_json_limits lim = {.max_depth = 2};
	struct pp_error err = {0};
	assert_string_equal(parse_fails("[1 x [[[", &lim, &err),
			    "1:7: JSON nested deeper than 2 levels at byte 6");
	lim = (struct pp_json_limits){.max_tokens = 3};
	assert_string_equal(parse_fails("[1 x 2", &lim, &err),
			    "1:6: JSON holds more than 3 tokens at byte 5");
	assert_string_equal(parse_fails("[1 x", &lim, &err), "1:4: invalid JSON");
}

/* The writer finds the byte to escape a word at a time, the tail as the
 * string's last word: one such byte at each place in strings around the
 * word size, written as a byte-by-byte writer would. */
static void test_write_string_escapes_anywhere(void **state)
{
	(void)state;
	/* Bytes written among plain ones, and how. The byte after an escaped
	 * one is written as it is: '#', ']' and '~' differ from '"', '\\'
	 * and 0x7f in their lowest bit, where a word's subtraction that
	 * borrows from the escaped byte lands. UTF-8 (bytes of 0x80 and up)
	 * is written as it is. */
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} kinds[] = {
		{"\"", 1, "\\\""},	  {"\\", 1, "\\\\"},	       {"\n", 1, "\\n"},
		{"\x01", 1, "\\u0001"},	  {"\x1f", 1, "\\u001f"},      {"\x7f", 1, "\\u007f"},
		{"", 1, "\\u0000"},	  {"\"#", 2, "\\\"#"},	       {"\\]", 2, "\\\\]"},
		{"\x7f~", 2, "\\u007f~"}, {"\xc3\xa9", 2, "\xc3\xa9"},
	};
	/* Up to 40 bytes: the writer looks 16 and 8 at a time, then at the
	 * string's last 8. */
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		for (size_t n = kinds[k].len; n <= 40; n++)
			for (size_t at = 0; at + kinds[k].len <= n; at++) {
				char s[40], want[80];
				memset(s, 'a', n);
				memcpy(s + at, kinds[k].in, kinds[k].len);
				snprintf(want, sizeof(want), "\"%.*s%s%.*s\"", (int)at, s,
					 kinds[k].out, (int)(n - at - kinds[k].len),
					 s + at + kinds[k].len);
				struct pp_buf out;
				pp_buf_init(&out, 0);
				assert_int_equal(pp_json_write_string(&out, s, n), 0);
				assert_string_equal(pp_buf_str(&out), want);
				pp_buf_free(&out);
			}
}

static void test_build_set_remove(void **state)
{
	(void)state;
	struct pp_json *o = pp_json_new(PP_JSON_OBJECT);
	assert_int_equal(pp_json_set_string(o, "a", "1"), 0);
	assert_int_equal(pp_json_set_int(o, "b", 42), 0);
	assert_int_equal(pp_json_set_bool(o, "a", true), 0); /* replace keeps position */
	struct pp_json *arr = pp_json_new(PP_JSON_ARRAY);
	pp_json_append(arr, pp_json_new_number(1.5));
	pp_json_append(arr, pp_json_new_string("x\"y"));
	pp_json_set(o, "c", arr);
	char *s = pp_json_to_string(o, 0);
	assert_string_equal(s, "{\"a\":true,\"b\":42,\"c\":[1.5,\"x\\\"y\"]}");
	free(s);
	assert_true(pp_json_remove(o, "b"));
	assert_false(pp_json_remove(o, "b"));
	struct pp_json *c = pp_json_clone(o);
	assert_true(pp_json_equal(o, c));
	struct pp_json *d = pp_json_detach(pp_json_get(c, "c"));
	assert_int_equal(c->count, 1);
	assert_false(pp_json_equal(o, c));
	pp_json_free(d);
	pp_json_free(c);
	pp_json_free(o);
}

/* Strings and keys made with a node share its allocation; the tree's
 * moves and the ownership calls keep working on them (valgrind checks that
 * each is freed once, by its owner). */
static void test_shared_allocation_ownership(void **state)
{
	(void)state;
	struct pp_json *o = parse_ok("{\"a\":\"x\\u00e9y\",\"b\":[1,\"s\"],\"c\":{\"d\":2.5}}");
	assert_string_equal(pp_json_get_string(o, "a"), "x\xc3\xa9y");
	assert_int_equal(pp_json_get(o, "a")->len, 4);
	/* A parsed member moved to another object under a new key. */
	struct pp_json *dst = pp_json_new(PP_JSON_OBJECT);
	assert_int_equal(pp_json_set(dst, "renamed", pp_json_detach(pp_json_get(o, "a"))), 0);
	assert_string_equal(pp_json_get_string(dst, "renamed"), "x\xc3\xa9y");
	/* ... and under its own key, replacing a member of that name. */
	assert_int_equal(pp_json_set_int(dst, "c", 1), 0);
	struct pp_json *c = pp_json_detach(pp_json_get(o, "c"));
	assert_int_equal(pp_json_set(dst, c->key, c), 0);
	assert_int_equal(dst->count, 2);
	assert_true(pp_json_get_number(pp_json_get(dst, "c"), "d", &(double){0}));
	/* A member appended to an array loses its key. */
	struct pp_json *b = pp_json_detach(pp_json_get(o, "b"));
	assert_int_equal(pp_json_append(b, pp_json_clone(pp_json_get(dst, "renamed"))), 0);
	assert_null(pp_json_at(b, 2)->key);
	assert_string_equal(pp_json_string(pp_json_at(b, 2)), "x\xc3\xa9y");
	pp_json_free(b);

	/* A string replaced by an owned buffer, then taken back. */
	struct pp_json *s = pp_json_get(dst, "renamed");
	char *text = strdup("new");
	assert_non_null(text);
	pp_json_own_str(s, text, 3);
	assert_string_equal(pp_json_get_string(dst, "renamed"), "new");
	char *taken = pp_json_take_str(s);
	assert_ptr_equal(taken, text);
	assert_null(s->str);
	free(taken);
	pp_json_own_str(s, strdup("back"), 4);
	/* Taking a string that shares its node's allocation copies it. */
	struct pp_json *n = pp_json_new_string("shared");
	taken = pp_json_take_str(n);
	assert_string_equal(taken, "shared");
	assert_null(n->str);
	assert_int_equal(n->len, 0);
	free(taken);
	pp_json_own_str(n, strdup("again"), 5);
	pp_json_free(n);
	/* A key given after the node is made, replaced, then dropped. */
	n = pp_json_new_int(7);
	pp_json_own_key(n, strdup("k1"));
	pp_json_own_key(n, strdup("k2"));
	assert_string_equal(n->key, "k2");
	pp_json_own_key(n, NULL);
	assert_null(n->key);
	pp_json_free(n);

	char *out = pp_json_to_string(dst, 0);
	assert_string_equal(out, "{\"renamed\":\"back\",\"c\":{\"d\":2.5}}");
	free(out);
	struct pp_json *copy = pp_json_clone(dst);
	assert_true(pp_json_identical(copy, dst));
	pp_json_free(copy);
	pp_json_free(dst);
	pp_json_free(o);
}

/* pp_json_parse_keep of s, which must agree with pp_json_parse: the same
 * error, or the whole tree cut down to keep (json_keep_oracle). Returns
 * the kept tree (NULL when s fails) and the error in err. */
static struct pp_json *keep_agrees(const char *s, const char *const *keep, struct pp_error *err)
{
	struct pp_json *whole = NULL, *kept = NULL;
	struct pp_error werr = {0};
	int wrc = pp_json_parse(s, strlen(s), NULL, &whole, &werr);
	int krc = pp_json_parse_keep(s, strlen(s), NULL, keep, &kept, err);
	assert_int_equal(krc, wrc);
	if (wrc) {
		assert_null(kept);
		assert_string_equal(err->msg, werr.msg);
		return NULL;
	}
	json_keep_oracle(whole, keep);
	if (!pp_json_identical(whole, kept))
		fail_msg("kept %s, expected %s", pp_json_to_string(kept, 0),
			 pp_json_to_string(whole, 0));
	pp_json_free(whole);
	return kept;
}

/* A Cloud Run job read for its readiness: only the members asked for are
 * built, on paths through objects too; the rest is gone. */
static void test_keep_members(void **state)
{
	(void)state;
	static const char job[] =
		"{\"name\": \"projects/p/locations/l/jobs/j\", \"labels\": {\"a\": \"b\"},"
		" \"template\": {\"taskCount\": 1, \"template\": {\"containers\": [{\"image\":"
		" \"x\", \"env\": [{\"name\": \"K\", \"value\": \"V\"}]}]}},"
		" \"terminalCondition\": {\"type\": \"Ready\", \"state\": \"CONDITION_SUCCEEDED\"},"
		" \"latestCreatedExecution\": {\"name\": \"e1\", \"createTime\": \"t\"},"
		" \"reconciling\": false, \"etag\": \"\\\"x\\\"\"}";
	static const char *const keep[] = {"terminalCondition", "reconciling",
					   "latestCreatedExecution.name", NULL};
	struct pp_error err = {0};
	struct pp_json *j = keep_agrees(job, keep, &err);
	assert_non_null(j);
	assert_int_equal(j->count, 3);
	assert_null(pp_json_get(j, "template"));
	assert_string_equal(pp_json_get_string(pp_json_get(j, "terminalCondition"), "state"),
			    "CONDITION_SUCCEEDED");
	const struct pp_json *e = pp_json_get(j, "latestCreatedExecution");
	assert_int_equal(e->count, 1);
	assert_string_equal(pp_json_get_string(e, "name"), "e1");
	pp_json_free(j);

	/* A member on a path that is not an object is kept whole; a key
	 * spelt with an escape is the name it decodes to; the last of
	 * duplicate members wins, as in the whole tree; a path goes through
	 * every object of an array (ECS's tasks), at the top too. */
	static const char *const paths[] = {"a.b", "name", "d.x", NULL};
	static const char *const agree[] = {
		"{\"a\": [1, {\"b\": 2}], \"z\": 1}",
		"{\"n\\u0061me\": 1, \"other\": 2}",
		"{\"d\": {\"x\": 1, \"y\": 2}, \"d\": {\"y\": 3, \"x\": 4}, \"d\": {\"x\": 5}}",
		"{\"d\": {\"x\": {\"deep\": [true, null]}, \"q\": 1}, \"name\": \"n\"}",
		"[{\"name\": 1, \"x\": 2}, 2, [{\"name\": 3, \"d\": 4}]]",
		"{\"d\": [{\"x\": 1, \"y\": 2}, [{\"y\": 3}], \"s\", {\"x\": {\"z\": 1}}]}",
		"{}",
	};
	for (size_t i = 0; i < sizeof(agree) / sizeof(agree[0]); i++)
		pp_json_free(keep_agrees(agree[i], paths, &err));

	static const char *const task[] = {"tasks.taskArn", "failures", NULL};
	j = keep_agrees("{\"tasks\": [{\"taskArn\": \"t1\", \"containers\": [{\"name\": \"c\"}],"
			" \"lastStatus\": \"PROVISIONING\"}], \"failures\": []}",
			task, &err);
	assert_non_null(j);
	const struct pp_json *t = pp_json_at(pp_json_get(j, "tasks"), 0);
	assert_int_equal(t->count, 1);
	assert_string_equal(pp_json_get_string(t, "taskArn"), "t1");
	assert_non_null(pp_json_get(j, "failures"));
	pp_json_free(j);
}

/* The members not kept are checked as strictly as the whole tree's: each
 * of these fails with the error pp_json_parse gives it. */
static void test_keep_checks_what_it_drops(void **state)
{
	(void)state;
	static const char *const keep[] = {"keep", NULL};
	static const char *const bad[] = {
		"{\"drop\": \"\\uZZZZ\", \"keep\": 1}",
		"{\"drop\": \"\\ud800\", \"keep\": 1}",
		"{\"drop\": [1, 2,], \"keep\": 1}",
		"{\"drop\": 01, \"keep\": 1}",
		"{\"drop\": tru, \"keep\": 1}",
		"{\"drop\": {\"a\\u0000b\": 1}, \"keep\": 1}",
		"{\"drop\": {\"x\" 1}, \"keep\": 1}",
		"{\"drop\": \"\xff\", \"keep\": 1}",
		"{\"keep\": 1, \"drop\": [1 2]}",
		"{\"keep\": 1} x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct pp_error err = {0};
		assert_null(keep_agrees(bad[i], keep, &err));
		assert_true(err.msg[0] != '\0');
	}
	/* A key holding a NUL is compared by its length with a shorter
	 * path ("" here), and refused as the whole tree refuses it. */
	static const char *const empty[] = {"", NULL};
	struct pp_error nul = {0};
	assert_null(keep_agrees("{\"\\u0000x\": 1}", empty, &nul));
	assert_non_null(strstr(nul.msg, "NUL in object key"));
	static const char *const many[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i",
					   "j", "k", "l", "m", "n", "o", "p", "q", NULL};
	struct pp_json *j = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_json_parse_keep("{}", 2, NULL, many, &j, &err), PP_EINVALID);
	assert_null(j);
}

/* Numbers made from C values read as printf wrote them before their
 * digits were written by hand: "%lld" for integers, "%.0f" for whole
 * doubles under 1e15 (negative zero too), "%.17g" for the others. */
static void test_new_numbers_read_as_printf_wrote_them(void **state)
{
	static const long long ints[] = {0, 7, -7, 10, -10, 1234567890123LL, LLONG_MAX, LLONG_MIN};
	static const double doubles[] = {0.0,	 -0.0,		 42.0, -42.0, 999999999999999.0,
					 -1e14,	 1e15,		 1.5,  -0.25, 123456789.125,
					 4096.0, 1700000000000.0};
	char want[64];

	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		struct pp_json *n = pp_json_new_int(ints[i]);
		snprintf(want, sizeof(want), "%lld", ints[i]);
		assert_non_null(n);
		assert_string_equal(n->str, want);
		assert_int_equal(n->len, strlen(want));
		pp_json_free(n);
	}
	for (size_t i = 0; i < sizeof(doubles) / sizeof(doubles[0]); i++) {
		double v = doubles[i];
		struct pp_json *n = pp_json_new_number(v);
		if (v == (double)(long long)v && (v < 0 ? -v : v) < 1e15)
			snprintf(want, sizeof(want), "%.0f", v);
		else
			snprintf(want, sizeof(want), "%.17g", v);
		assert_non_null(n);
		assert_string_equal(n->str, want);
		assert_true(n->num == v);
		pp_json_free(n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types_and_access),
		cmocka_unit_test(test_top_level_scalars),
		cmocka_unit_test(test_roundtrip_keeps_order_and_text),
		cmocka_unit_test(test_identical_is_equal_text),
		cmocka_unit_test(test_errors_have_line_col),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_deep_nesting_fails_fast),
		cmocka_unit_test(test_token_limit),
		cmocka_unit_test(test_parse_string_bytes_anywhere),
		cmocka_unit_test(test_limit_before_syntax_error),
		cmocka_unit_test(test_build_set_remove),
		cmocka_unit_test(test_shared_allocation_ownership),
		cmocka_unit_test(test_write_string_escapes_anywhere),
		cmocka_unit_test(test_keep_members),
		cmocka_unit_test(test_keep_checks_what_it_drops),
		cmocka_unit_test(test_new_numbers_read_as_printf_wrote_them),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
