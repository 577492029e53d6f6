/* The lines a logs op collects (providers/logs.c): split at line ends, a
 * carriage return before one dropped, lines before since_ms skipped, and
 * no page past its caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "providers/provider.h"

static void test_split_and_since(void **state)
{
	struct pp_logs l = {0};
	struct pp_error err = {0};
	const char *t = "a\r\nb\n\nc";
	assert_int_equal(pp_logs_add(&l, 5, t, strlen(t), &err), 0);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.v[0].text, "a");
	assert_string_equal(l.v[1].text, "b");
	assert_string_equal(l.v[2].text, "");
	assert_string_equal(l.v[3].text, "c");
	assert_int_equal(l.v[3].ts_ms, 5);
	assert_int_equal(pp_logs_add(&l, 6, "d\n", 2, &err), 0);
	assert_int_equal(l.n, 5);
	l.since_ms = 10;
	assert_int_equal(pp_logs_add(&l, 9, "old\n", 4, &err), 0);
	assert_int_equal(pp_logs_add(&l, 0, "unstamped\n", 10, &err), 0);
	assert_int_equal(pp_logs_add(&l, 10, "new\n", 4, &err), 0);
	assert_int_equal(l.n, 7);
	assert_string_equal(l.v[6].text, "new");
	pp_logs_clear(&l);
	assert_int_equal(l.n, 0);
	assert_null(l.v);
}

static void test_caps(void **state)
{
	struct pp_logs l = {0};
	struct pp_error err = {0};
	int rc = 0;
	for (int i = 0; i <= PP_LOGS_MAX_LINES && !rc; i++)
		rc = pp_logs_add(&l, 1, "x", 1, &err);
	assert_int_equal(rc, PP_ENOMEM);
	assert_int_equal(l.n, PP_LOGS_MAX_LINES);
	pp_logs_clear(&l);
	char *big = malloc(PP_LOGS_MAX_BYTES + 1);
	memset(big, 'y', PP_LOGS_MAX_BYTES + 1);
	assert_int_equal(pp_logs_add(&l, 1, big, PP_LOGS_MAX_BYTES + 1, &err), PP_ENOMEM);
	assert_int_equal(l.n, 0);
	free(big);
	pp_logs_clear(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_and_since),
		cmocka_unit_test(test_caps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
