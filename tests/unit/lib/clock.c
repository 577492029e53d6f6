/* lib/clock: the monotonic and wall clocks, and v4 and v7 UUIDs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/clock.h"

static void test_clocks(void **state)
{
	(void)state;
	int64_t m0 = pp_mono_ms(), w0 = pp_wall_ms();
	/* Wall milliseconds agree with time(2) to the second. */
	int64_t t = (int64_t)time(NULL);
	assert_true(w0 / 1000 >= t - 1 && w0 / 1000 <= t + 1);
	/* The monotonic clock never goes back, and a wait shows in it. */
	int64_t prev = m0;
	for (int i = 0; i < 1000; i++) {
		int64_t m = pp_mono_ms();
		assert_true(m >= prev);
		prev = m;
	}
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000000L};
	nanosleep(&ts, NULL);
	assert_true(pp_mono_ms() - m0 >= 20);
}

static int64_t fixed_ms(void)
{
	return 123456;
}

/* Microseconds are the same clock as milliseconds (read between two of
 * them, they fall between), and follow a test's time source. */
static void test_mono_us(void **state)
{
	(void)state;
	int64_t before = pp_mono_ms(), us = pp_mono_us(), after = pp_mono_ms();
	assert_true(us / 1000 >= before && us / 1000 <= after);
	pp_mono_set_source(fixed_ms);
	assert_int_equal(pp_mono_us(), 123456000);
	pp_mono_set_source(NULL);
}

/* 8-4-4-4-12 lower-case hex digits, the version digit, the RFC 4122 /
 * RFC 9562 variant. */
static void assert_uuid_shape(const char *u, char version)
{
	assert_int_equal(strlen(u), 36);
	for (int k = 0; k < 36; k++) {
		if (k == 8 || k == 13 || k == 18 || k == 23)
			assert_int_equal(u[k], '-');
		else
			assert_non_null(strchr("0123456789abcdef", u[k]));
	}
	assert_int_equal(u[14], version);
	assert_non_null(strchr("89ab", u[19]));
}

static void test_uuid4_shape_and_uniqueness(void **state)
{
	(void)state;
	enum { N = 1000 };
	static char ids[N][PP_UUID_LEN];
	for (int i = 0; i < N; i++) {
		assert_int_equal(pp_uuid4(ids[i]), 0);
		const char *u = ids[i];
		assert_uuid_shape(u, '4');
		for (int j = 0; j < i; j++)
			assert_string_not_equal(ids[j], u);
	}
}

/* More ids than one millisecond's counter holds (4,096), made back to
 * back: each sorts after the one before, as text (what a store's index
 * compares), and carries the time it was made in its first 48 bits. */
static void test_uuid7_order_and_time(void **state)
{
	(void)state;
	enum { N = 20000 };
	char prev[PP_UUID_LEN] = "", u[PP_UUID_LEN];
	int64_t w0 = pp_wall_ms();
	for (int i = 0; i < N; i++) {
		assert_int_equal(pp_uuid7(u), 0);
		assert_uuid_shape(u, '7');
		assert_true(strcmp(prev, u) < 0);
		memcpy(prev, u, sizeof(u));
	}
	int64_t w1 = pp_wall_ms();
	char hex[13];
	memcpy(hex, u, 8);
	memcpy(hex + 8, u + 9, 4);
	hex[12] = '\0';
	int64_t ms = (int64_t)strtoll(hex, NULL, 16);
	/* A millisecond whose counter ran out lends the next one's. */
	assert_true(ms >= w0 && ms <= w1 + N / 4096 + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clocks),
		cmocka_unit_test(test_mono_us),
		cmocka_unit_test(test_uuid4_shape_and_uniqueness),
		cmocka_unit_test(test_uuid7_order_and_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
