/* lib/time: RFC 3339 parsing and formatting, and the duration grammar. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "lib/err.h"
#include "lib/time.h"

static int64_t parse_ok(const char *s, int flags)
{
	int64_t ms = 0;
	if (pp_time_parse(s, flags, &ms))
		fail_msg("'%s' did not parse", s);
	return ms;
}

static void parse_bad(const char *s, int flags)
{
	int64_t ms = 12345;
	if (pp_time_parse(s, flags, &ms) != PP_EINVALID)
		fail_msg("'%s' parsed", s);
	assert_int_equal(ms, 12345);
}

static void test_rfc3339_valid(void **state)
{
	(void)state;
	assert_int_equal(parse_ok("1970-01-01T00:00:00Z", 0), 0);
	assert_int_equal(parse_ok("2026-11-28T12:00:00Z", 0), 1795867200000LL);
	/* Z and T in either case, or a space for T. */
	assert_int_equal(parse_ok("2026-11-28t12:00:00z", 0), 1795867200000LL);
	assert_int_equal(parse_ok("2026-11-28 12:00:00Z", 0), 1795867200000LL);
	/* Fractions: any number of digits, cut at the millisecond. */
	assert_int_equal(parse_ok("2000-02-29T23:59:59.999Z", 0), 951868799999LL);
	assert_int_equal(parse_ok("2000-02-29T23:59:59.9999999Z", 0), 951868799999LL);
	assert_int_equal(parse_ok("2024-05-01T10:00:00.25Z", 0), 1714557600250LL);
	assert_int_equal(parse_ok("2024-05-01T10:00:00.250000+00:00", 0), 1714557600250LL);
	/* Offsets east and west, half hours, -00:00. */
	assert_int_equal(parse_ok("2024-05-01T12:00:00+02:00", 0), 1714557600000LL);
	assert_int_equal(parse_ok("2024-05-01T00:30:00-05:30", 0), 1714543200000LL);
	assert_int_equal(parse_ok("2024-05-01T10:00:00-00:00", 0), 1714557600000LL);
	/* Before the epoch, and the ends of the 4-digit years. */
	assert_int_equal(parse_ok("1969-12-31T23:59:59.5Z", 0), -500);
	assert_int_equal(parse_ok("9999-12-31T23:59:59Z", 0), 253402300799000LL);
	assert_int_equal(parse_ok("0001-01-01T00:00:00Z", 0), -62135596800000LL);
	/* A leap second reads as the next second; leap days where they exist. */
	assert_int_equal(parse_ok("2016-12-31T23:59:60Z", 0), parse_ok("2017-01-01T00:00:00Z", 0));
	assert_int_equal(parse_ok("2024-02-29T00:00:00Z", 0) - parse_ok("2024-02-28T00:00:00Z", 0),
			 86400000);
	assert_int_equal(parse_ok("2000-02-29T00:00:00Z", 0), 951782400000LL);
	/* Options: no zone (UTC), strptime-style short fields. */
	assert_int_equal(parse_ok("2024-05-01T10:00:00", PP_TIME_ZONE_OPTIONAL), 1714557600000LL);
	assert_int_equal(parse_ok("2024-5-1T10:0:0Z", PP_TIME_SHORT_FIELDS), 1714557600000LL);
}

static void test_rfc3339_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"yesterday",
		"2024-05-01",		     /* no time */
		"2024-05-01T10:00Z",	     /* no seconds */
		"2024-05-01T10:00:00",	     /* no zone */
		"2024-05-01T10:00:00Q",	     /* unknown zone */
		"2024-05-01T10:00:00.Z",     /* empty fraction */
		"2024-05-01T10:00:00+0200",  /* offset without colon */
		"2024-05-01T10:00:00+24:00", /* offset out of range */
		"2024-05-01T10:00:00+02:60",
		"2024-05-01T10:00:00Z trailing",
		"2024-13-01T10:00:00Z", /* month 13 */
		"2024-00-01T10:00:00Z",
		"2024-02-30T10:00:00Z", /* no February 30 */
		"2023-02-29T10:00:00Z", /* not a leap year */
		"1900-02-29T10:00:00Z", /* centuries are not, */
		"2024-04-31T10:00:00Z", /* 30 days hath April */
		"2024-05-00T10:00:00Z",
		"2024-05-01T24:00:00Z", /* hour 24 */
		"2024-05-01T10:60:00Z",
		"2024-05-01T10:00:61Z",
		"2024-5-01T10:00:00Z", /* short field without the option */
		"24-05-01T10:00:00Z",
		"+2024-05-01T10:00:00Z",
		"2024-05-01X10:00:00Z",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		parse_bad(bad[i], 0);
	parse_bad("2000-02-29T10:00:00", 0);
	parse_bad("2024-02-30T10:00:00", PP_TIME_ZONE_OPTIONAL | PP_TIME_SHORT_FIELDS);
	parse_bad(NULL, 0);
	/* Years of 400 are leap years (2000 parses above). */
	parse_ok("2400-02-29T00:00:00Z", 0);
}

static void test_format_round_trip(void **state)
{
	(void)state;
	char t[PP_TIME_LEN];
	pp_time_format(1714557600250LL, true, t);
	assert_string_equal(t, "2024-05-01T10:00:00.250Z");
	pp_time_format(1714557600250LL, false, t);
	assert_string_equal(t, "2024-05-01T10:00:00Z");
	pp_time_format(-500, true, t);
	assert_string_equal(t, "1969-12-31T23:59:59.500Z");
	pp_time_format(0, true, t);
	assert_string_equal(t, "1970-01-01T00:00:00.000Z");
	/* The ends of the years formatted digit by digit, and past them. */
	pp_time_format(253402300799999LL, true, t);
	assert_string_equal(t, "9999-12-31T23:59:59.999Z");
	pp_time_format(253402300800000LL, true, t);
	assert_string_equal(t, "10000-01-01T00:00:00.000Z");
	pp_time_format(-62167219200000LL, false, t);
	assert_string_equal(t, "0000-01-01T00:00:00Z");
	pp_time_format(-62167219200001LL, true, t);
	assert_string_equal(t, "-001-12-31T23:59:59.999Z");
	/* Every day of four centuries (leap days, century rules) formats to
	 * what parses back to the same instant. */
	for (int64_t ms = -62135596800000LL; ms < 253402300799000LL;
	     ms += 86400000LL * 7 + 3723001) {
		pp_time_format(ms, true, t);
		assert_int_equal(parse_ok(t, 0), ms);
	}
}

static void duration_is(const char *s, double want)
{
	double got = -1;
	if (pp_duration_parse(s, &got))
		fail_msg("'%s' did not parse", s);
	if (fabs(got - want) > 1e-9)
		fail_msg("'%s' gave %g s, expected %g", s, got, want);
}

static void formats_as(double seconds, const char *want)
{
	char out[PP_DURATION_LEN];
	double back = -1;
	pp_duration_format(seconds, out);
	assert_string_equal(out, want);
	assert_int_equal(pp_duration_parse(out, &back), 0);
	assert_true(fabs(back - seconds) < 1e-9);
}

/* The largest unit that holds the value whole, and it parses back. */
static void test_duration_format(void **state)
{
	(void)state;
	formats_as(600, "10m");
	formats_as(5400, "90m");
	formats_as(7200, "2h");
	formats_as(172800, "2d");
	formats_as(61, "61s");
	formats_as(1, "1s");
	formats_as(0, "0s");
	formats_as(0.25, "250ms");
	formats_as(1.5, "1500ms");
}

static void test_durations(void **state)
{
	(void)state;
	/* One grammar: config (ms/s/m/h) and command line (s/m/h/d). */
	duration_is("90", 90);
	duration_is("1.5", 1.5);
	duration_is("250ms", 0.25);
	duration_is("90s", 90);
	duration_is("5m", 300);
	duration_is("2h", 7200);
	duration_is("1d", 86400);
	duration_is("0.5d", 43200);
	duration_is("250 ms", 0.25);
	duration_is("0", 0);
	duration_is("-5s", -5); /* callers check their ranges */
	static const char *const bad[] = {"",	 "s",	"5x",	 "5 m m", "5mm", "5 S",
					  "inf", "nan", "1e400", "5m ",	  "m5",	 "5w"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		double v = 7;
		if (pp_duration_parse(bad[i], &v) != PP_EINVALID)
			fail_msg("'%s' parsed as %g", bad[i], v);
		assert_true(v == 7);
	}
	double v;
	assert_int_equal(pp_duration_parse(NULL, &v), PP_EINVALID);
	assert_int_equal(pp_duration_parse("1e306d", &v), PP_EINVALID); /* inf after the unit */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3339_valid),	  cmocka_unit_test(test_rfc3339_invalid),
		cmocka_unit_test(test_format_round_trip), cmocka_unit_test(test_durations),
		cmocka_unit_test(test_duration_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
