/* Log lines: format, levels, escaping, and redaction of secrets. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/json.h"
#include "lib/log.h"

static FILE *sink;

static int setup(void **state)
{
	sink = tmpfile();
	assert_non_null(sink);
	pp_secret_clear();
	return 0;
}

static int teardown(void **state)
{
	pp_log_setup(PP_LOG_INFO, PP_LOG_TEXT, NULL);
	pp_secret_clear();
	fclose(sink);
	return 0;
}

/* Everything logged so far (caller frees). */
static char *captured(void)
{
	fflush(sink);
	long n = ftell(sink);
	assert_true(n >= 0);
	char *s = calloc(1, (size_t)n + 1);
	assert_non_null(s);
	rewind(sink);
	assert_int_equal(fread(s, 1, (size_t)n, sink), (size_t)n);
	return s;
}

static bool is_timestamp(const char *s)
{
	/* 2026-11-28T12:00:00.123Z */
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
			return false;
	}
	return true;
}

static void test_text_line(void **state)
{
	pp_log_setup(PP_LOG_DEBUG, PP_LOG_TEXT, sink);
	pp_info("run %s submitted after %d attempts", "r-1", 2);
	char *out = captured();
	assert_true(is_timestamp(out));
	assert_string_equal(out + 24, " INFO run r-1 submitted after 2 attempts\n");
	free(out);
}

static void test_levels_filter(void **state)
{
	pp_log_setup(PP_LOG_WARN, PP_LOG_TEXT, sink);
	pp_debug("debug hidden");
	pp_info("info hidden");
	pp_warn("careful");
	pp_error("broken");
	char *out = captured();
	assert_null(strstr(out, "hidden"));
	assert_non_null(strstr(out, " WARN careful\n"));
	assert_non_null(strstr(out, " ERROR broken\n"));
	free(out);
}

static void test_level_parse(void **state)
{
	enum pp_log_level l;
	assert_int_equal(pp_log_level_parse("debug", &l), 0);
	assert_int_equal(l, PP_LOG_DEBUG);
	assert_int_equal(pp_log_level_parse("WARN", &l), 0);
	assert_int_equal(l, PP_LOG_WARN);
	assert_int_equal(pp_log_level_parse("warning", &l), 0);
	assert_int_equal(l, PP_LOG_WARN);
	assert_int_equal(pp_log_level_parse("error", &l), 0);
	assert_int_equal(l, PP_LOG_ERROR);
	assert_int_not_equal(pp_log_level_parse("verbose", &l), 0);
	assert_int_not_equal(pp_log_level_parse(NULL, &l), 0);
}

static void test_text_escapes_control_chars(void **state)
{
	pp_log_setup(PP_LOG_INFO, PP_LOG_TEXT, sink);
	pp_info("line one\nFAKE 2026-01-01T00:00:00.000Z ERROR forged\r\x01 end");
	char *out = captured();
	assert_non_null(strstr(out, "line one\\nFAKE"));
	assert_non_null(strstr(out, "forged\\r\\x01 end\n"));
	/* One call, one line. */
	assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
	free(out);
}

static void test_json_line_parses_back(void **state)
{
	pp_log_setup(PP_LOG_DEBUG, PP_LOG_JSON, sink);
	pp_warn("quote \" backslash \\ newline \n tab \t bell \a bad \xff utf8 \xc3\xa9");
	char *out = captured();
	struct pp_json *j = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_json_parse(out, strlen(out), NULL, &j, &err), 0);
	assert_string_equal(pp_json_get_string(j, "level"), "warn");
	assert_true(is_timestamp(pp_json_get_string(j, "ts")));
	assert_string_equal(pp_json_get_string(j, "msg"),
			    "quote \" backslash \\ newline \n tab \t bell \a bad \xef\xbf\xbd utf8 "
			    "\xc3\xa9");
	pp_json_free(j);
	free(out);
}

static void test_secrets_redacted_in_lines(void **state)
{
	pp_secret_register("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
	pp_log_setup(PP_LOG_INFO, PP_LOG_TEXT, sink);
	pp_info("signing with wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY twice: "
		"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
	pp_log_setup(PP_LOG_INFO, PP_LOG_JSON, sink);
	pp_secret_register("s3cr");
	pp_info("short one s3cr in json");
	char *out = captured();
	assert_null(strstr(out, "EXAMPLEKEY"));
	assert_null(strstr(out, "s3cr"));
	assert_non_null(strstr(out, "signing with [REDACTED] twice: [REDACTED]\n"));
	assert_non_null(strstr(out, "\"msg\":\"short one [REDACTED] in json\""));
	free(out);
}

static void test_redact_in_place(void **state)
{
	char s[] = "key=abcd1234efgh and abcd1234 and tiny=xyzab and abc";
	pp_secret_register("abc");	    /* below the minimum: ignored */
	pp_secret_register("abcd1234");	    /* shorter than the marker: masked */
	pp_secret_register("abcd1234efgh"); /* contains the one above: replaced whole */
	pp_secret_register("xyzab");
	pp_redact(s);
	assert_string_equal(s, "key=[REDACTED] and ******** and tiny=***** and abc");
	pp_secret_clear();
	char t[] = "abcd1234efgh";
	pp_redact(t);
	assert_string_equal(t, "abcd1234efgh");
}

/* Rotating secrets (tokens) make room by evicting the oldest: the newest
 * are always redacted, long-lived ones are never evicted, and the longest
 * match wins across both kinds. */
static void test_rotating_secrets_evict_oldest(void **state)
{
	enum { RING = 8192, EXTRA = 10 };
	char buf[64];
	pp_secret_register("pinned-config-secret");
	for (int i = 0; i < RING + EXTRA; i++) {
		snprintf(buf, sizeof(buf), "token-%06d-x", i);
		pp_secret_register_rotating(buf);
	}
	/* Registering one again does not take another slot. */
	pp_secret_register_rotating("token-008201-x");
	for (int i = 0; i < RING + EXTRA; i++) {
		snprintf(buf, sizeof(buf), "token-%06d-x", i);
		pp_redact(buf);
		if (i < EXTRA)
			assert_string_not_equal(buf, "[REDACTED]");
		else
			assert_string_equal(buf, "[REDACTED]");
	}
	char line[] = "cfg pinned-config-secret tok token-008201-x-and-more";
	pp_redact(line);
	assert_string_equal(line, "cfg [REDACTED] tok [REDACTED]-and-more");
	pp_secret_register("ab12cd34");
	pp_secret_register_rotating("ab12cd34ef56");
	char both[] = "ab12cd34ef56";
	pp_redact(both);
	assert_string_equal(both, "[REDACTED]");
}

/* Redact a copy of text and compare (issue 18: a token endpoint echoing the
 * form body showed client_secret=...%2B...). */
static void expect_redacted(const char *text, const char *want)
{
	char *s = strdup(text);
	assert_non_null(s);
	pp_redact(s);
	if (strcmp(s, want))
		fail_msg("redacting '%s' gave '%s', expected '%s'", text, s, want);
	free(s);
}

/* A secret with '+', '/', '=', a space, 2- and 4-byte UTF-8, '"' and '\\'
 * is caught in every encoding it is sent in. */
static void test_secret_encodings_redacted(void **state)
{
	pp_secret_register("Ab+/c= d\xc3\xa9\xf0\x9f\x98\x80\"\\z");
	/* application/x-www-form-urlencoded, either hex case; RFC 3986 %20. */
	expect_redacted("client_secret=Ab%2B%2Fc%3D+d%C3%A9%F0%9F%98%80%22%5Cz&x=1",
			"client_secret=[REDACTED]&x=1");
	expect_redacted("client_secret=Ab%2b%2fc%3d+d%c3%a9%f0%9f%98%80%22%5cz&x=1",
			"client_secret=[REDACTED]&x=1");
	expect_redacted("?s=Ab%2B%2Fc%3D%20d%C3%A9%F0%9F%98%80%22%5Cz", "?s=[REDACTED]");
	expect_redacted("?s=Ab%2b%2fc%3d%20d%c3%a9%f0%9f%98%80%22%5cz", "?s=[REDACTED]");
	/* base64 and base64url of the value alone, and inside a Basic header
	 * ("my-client:" + secret) where it starts mid-group. */
	expect_redacted("b64 QWIrL2M9IGTDqfCfmIAiXHo= end", "b64 [REDACTED] end");
	expect_redacted("url QWIrL2M9IGTDqfCfmIAiXHo end", "url [REDACTED] end");
	expect_redacted("Basic bXktY2xpZW50OkFiKy9jPSBkw6nwn5iAIlx6",
			"Basic bXktY2xpZW50Ok[REDACTED]");
	/* JSON: UTF-8 kept, as \\uXXXX (either case, surrogate pairs), '/' as \\/. */
	expect_redacted("{\"s\":\"Ab+/c= d\xc3\xa9\xf0\x9f\x98\x80\\\"\\\\z\"}",
			"{\"s\":\"[REDACTED]\"}");
	expect_redacted("{\"s\":\"Ab+/c= d\\u00e9\\ud83d\\ude00\\\"\\\\z\"}",
			"{\"s\":\"[REDACTED]\"}");
	expect_redacted("{\"s\":\"Ab+\\/c= d\\u00E9\\uD83D\\uDE00\\\"\\\\z\"}",
			"{\"s\":\"[REDACTED]\"}");
	/* A Google refresh token always starts "1//". */
	pp_secret_register_rotating("1//0gAbC-dEf_gHiJ");
	expect_redacted("error_description=refresh_token%3D1%2F%2F0gAbC-dEf_gHiJ",
			"error_description=refresh_token%3D[REDACTED]");
	expect_redacted("{\"refresh_token\":\"1\\/\\/0gAbC-dEf_gHiJ\"}",
			"{\"refresh_token\":\"[REDACTED]\"}");
	/* The encodings go with their secret when the ring evicts it. */
	pp_secret_clear();
	expect_redacted("client_secret=Ab%2B%2Fc%3D+d", "client_secret=Ab%2B%2Fc%3D+d");
}

static void test_cut_message_leaks_no_secret_prefix(void **state)
{
	const char *secret = "TOPSECRETTOKENVALUE0123456789";
	size_t pad = (64 << 10) - 10; /* the secret straddles the cut */
	char *msg = malloc(pad + 200);
	assert_non_null(msg);
	memset(msg, 'a', pad);
	strcpy(msg + pad, secret);
	strcat(msg + pad, " tail");
	pp_secret_register(secret);
	pp_log_setup(PP_LOG_INFO, PP_LOG_TEXT, sink);
	pp_info("%s", msg);
	char *out = captured();
	assert_null(strstr(out, "TOPSECRET"));
	/* Redaction came first, so the cut text ends in the marker, whole. */
	assert_non_null(strstr(out, "a[REDACTED]...[truncated]\n"));
	free(out);
	free(msg);
}

static void test_lines_after_a_long_one_stand_alone(void **state)
{
	/* A message past the stack's room, then short ones: each line holds
	 * its own text alone, redacted, in text and JSON alike. */
	pp_secret_register("hunter2secret");
	pp_log_setup(PP_LOG_INFO, PP_LOG_TEXT, sink);
	char long_msg[9000];
	memset(long_msg, 'x', sizeof(long_msg) - 1);
	long_msg[sizeof(long_msg) - 1] = '\0';
	memcpy(long_msg + 4000, "hunter2secret", 13);
	pp_info("%s", long_msg);
	pp_info("short %s", "hunter2secret");
	pp_info("b");
	pp_log_setup(PP_LOG_INFO, PP_LOG_JSON, sink);
	pp_warn("c");
	char *out = captured();
	assert_null(strstr(out, "hunter2"));
	char *l2 = strchr(out, '\n') + 1;
	assert_true(is_timestamp(l2));
	assert_int_equal(strchr(l2, '\n') - (l2 + 24), strlen(" INFO short [REDACTED]"));
	assert_memory_equal(l2 + 24, " INFO short [REDACTED]\n", 23);
	char *l3 = strchr(l2, '\n') + 1;
	assert_memory_equal(l3 + 24, " INFO b\n", 8);
	char *l4 = strchr(l3, '\n') + 1;
	assert_memory_equal(l4, "{\"ts\":\"", 7);
	assert_true(is_timestamp(l4 + 7));
	assert_string_equal(l4 + 31, "\",\"level\":\"warn\",\"msg\":\"c\"}\n");
	free(out);
}

#define THREADS 4
#define LINES	500

static void *log_worker(void *arg)
{
	for (int i = 0; i < LINES; i++)
		pp_info("worker %d line %d", (int)(intptr_t)arg, i);
	return NULL;
}

static void test_threads_do_not_interleave(void **state)
{
	pthread_t t[THREADS];
	pp_log_setup(PP_LOG_INFO, PP_LOG_TEXT, sink);
	for (intptr_t i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, log_worker, (void *)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	char *out = captured();
	int lines = 0;
	for (char *line = out, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
		assert_true(is_timestamp(line));
		assert_memory_equal(line + 24, " INFO worker ", 13);
		lines++;
	}
	assert_int_equal(lines, THREADS * LINES);
	free(out);
}

/* The lines of a held turn are written when it flushes, in the order they
 * were logged, and a WARN line does not wait: it goes out at once with the
 * lines before it. */
static void test_held_lines_written_at_flush_in_order(void **state)
{
	pp_log_setup(PP_LOG_INFO, PP_LOG_TEXT, sink);
	pp_secret_register("held-secret-value");
	pp_log_hold();
	pp_info("one");
	pp_info("two with held-secret-value");
	char *out = captured();
	assert_string_equal(out, "");
	free(out);
	pp_log_flush();
	out = captured();
	assert_non_null(strstr(out, " INFO one\n"));
	assert_non_null(strstr(out, " INFO two with [REDACTED]\n"));
	assert_true(strstr(out, " one\n") < strstr(out, " two "));
	free(out);

	pp_info("three");
	pp_warn("four");
	out = captured();
	char *three = strstr(out, " INFO three\n"), *four = strstr(out, " WARN four\n");
	assert_non_null(three);
	assert_non_null(four);
	assert_true(three < four);
	free(out);

	pp_info("five");
	pp_log_release();
	pp_info("six");
	out = captured();
	assert_true(strstr(out, " five\n") && strstr(out, " six\n"));
	assert_true(strstr(out, " five\n") < strstr(out, " six\n"));
	free(out);
}

/* A turn that logs more than the held room writes as it goes: nothing is
 * dropped or reordered, and the room stays bounded. */
static void test_held_lines_past_the_room_written_early(void **state)
{
	enum { N = 400 };
	char pad[200];
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	pp_log_setup(PP_LOG_INFO, PP_LOG_TEXT, sink);
	pp_log_hold();
	for (int i = 0; i < N; i++)
		pp_info("line %03d %s", i, pad);
	char *out = captured();
	size_t before = strlen(out);
	free(out);
	/* About 90 KB logged: all but the last room's worth is out. */
	assert_true(before > (size_t)N * 200 - (16 << 10) - 512);
	pp_log_release();
	out = captured();
	const char *p = out;
	for (int i = 0; i < N; i++) {
		char want[32];
		snprintf(want, sizeof(want), " INFO line %03d ", i);
		const char *at = strstr(p, want);
		assert_non_null(at);
		p = at + 1;
	}
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_text_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_levels_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_level_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text_escapes_control_chars, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_line_parses_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secrets_redacted_in_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redact_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotating_secrets_evict_oldest, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_secret_encodings_redacted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cut_message_leaks_no_secret_prefix, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lines_after_a_long_one_stand_alone, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_threads_do_not_interleave, setup, teardown),
		cmocka_unit_test_setup_teardown(test_held_lines_written_at_flush_in_order, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_held_lines_past_the_room_written_early, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
