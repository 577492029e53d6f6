/* Schedules (lib/tz, lib/cron, lib/schedule): parse errors and hand-picked
 * slots, above all across DST transitions. Expected instants are written in
 * UTC with the local time they stand for in a comment. The random
 * comparison with croniter and dateutil is tests/scenario/schedule_oracle.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cron.h"
#include "lib/schedule.h"
#include "lib/tz.h"

/* "2026-03-29T01:30Z" -> instant */
static int64_t ts(const char *s)
{
	int y, mo, d, h, mi;
	if (sscanf(s, "%d-%d-%dT%d:%dZ", &y, &mo, &d, &h, &mi) != 5)
		fail_msg("bad time %s", s);
	return pp_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60;
}

static void iso(int64_t t, char *out, size_t n)
{
	int64_t days = t / 86400 - (t % 86400 < 0), y;
	int m, d, sec = (int)(t - days * 86400);
	pp_civil_from_days(days, &y, &m, &d);
	snprintf(out, n, "%04lld-%02d-%02dT%02d:%02dZ", (long long)y, m, d, sec / 3600,
		 sec / 60 % 60);
}

static struct pp_schedule *make(struct pp_schedule_spec spec)
{
	struct pp_schedule *s = NULL;
	struct pp_error err = {0};
	if (pp_schedule_new(&spec, &s, &err))
		fail_msg("schedule rejected: %s", err.msg);
	return s;
}

/* The slots after `after` must be exactly the NULL-terminated list. */
static void expect_next(struct pp_schedule_spec spec, const char *after, ...)
{
	struct pp_schedule *s = make(spec);
	const char *want[64];
	size_t n = 0;
	va_list ap;
	va_start(ap, after);
	for (const char *w; (w = va_arg(ap, const char *)) && n < 64;)
		want[n++] = w;
	va_end(ap);
	int64_t got[64];
	size_t ngot = 0;
	struct pp_error err = {0};
	if (pp_schedule_next(s, ts(after), n, got, &ngot, &err))
		fail_msg("next failed: %s", err.msg);
	for (size_t i = 0; i < n; i++) {
		char g[32] = "(none)";
		if (i < ngot)
			iso(got[i], g, sizeof(g));
		if (strcmp(g, want[i]) != 0)
			fail_msg("%s %s slot %zu: got %s, want %s",
				 spec.cron    ? spec.cron
				 : spec.rrule ? spec.rrule
					      : "interval",
				 spec.timezone ? spec.timezone : "UTC", i, g, want[i]);
	}
	pp_schedule_free(s);
}

static struct pp_schedule_spec cron(const char *expr, const char *tz)
{
	return (struct pp_schedule_spec){
		.kind = PP_SCHEDULE_CRON, .cron = expr, .timezone = tz, .day_or = true};
}

static struct pp_schedule_spec rrule(const char *text, const char *tz)
{
	return (struct pp_schedule_spec){.kind = PP_SCHEDULE_RRULE, .rrule = text, .timezone = tz};
}

static void expect_error(struct pp_schedule_spec spec, const char *msg_part)
{
	struct pp_schedule *s = NULL;
	struct pp_error err = {0};
	int rc = pp_schedule_new(&spec, &s, &err);
	if (rc != PP_EINVALID || s)
		fail_msg("%s: accepted, expected an error with '%s'",
			 spec.cron    ? spec.cron
			 : spec.rrule ? spec.rrule
				      : "?",
			 msg_part);
	if (!strstr(err.msg, msg_part))
		fail_msg("error was '%s', expected '%s'", err.msg, msg_part);
}

static void test_cron_errors(void **state)
{
	(void)state;
	expect_error(cron("61 * * * *", NULL),
		     "cron \"61 * * * *\": minute 61 is out of range 0-59");
	expect_error(cron("* 24 * * *", NULL), "hour 24 is out of range 0-23");
	expect_error(cron("* * 0 * *", NULL), "day-of-month 0 is out of range 1-31");
	expect_error(cron("* * * 13 *", NULL), "month 13 is out of range 1-12");
	expect_error(cron("* * * * 8", NULL), "day-of-week 8 is out of range 0-7");
	expect_error(cron("* * * *", NULL), "expected 5 fields");
	expect_error(cron("* * * * * *", NULL), "found more than 5");
	expect_error(cron("* * * FOO *", NULL), "month \"FOO\" is not a number or a name");
	expect_error(cron("x * * * *", NULL), "minute \"x\" is not a number");
	/* found by fuzz_schedule: no name past SAT is read */
	expect_error(cron("* * * * MON-FVI", NULL), "has a bad range end");
	expect_error(cron("*/0 * * * *", NULL), "minute step 0");
	expect_error(cron("*/61 * * * *", NULL), "out of range 1-60");
	expect_error(cron("5-1 * * * *", NULL), "runs backwards");
	expect_error(cron("1,,2 * * * *", NULL), "empty list item");
	expect_error(cron("0 0 L * *", NULL), "\"L\" uses L, W, # or ?");
	expect_error(cron("0 0 ? * *", NULL), "uses L, W, # or ?");
	expect_error(cron("0 0 * * 5#2", NULL), "uses L, W, # or ?");
	expect_error(cron("@every 5m", NULL), "unknown macro");
	expect_error(cron("", NULL), "expected 5 fields");
	char longexpr[PP_CRON_TEXT_MAX + 10];
	memset(longexpr, '1', sizeof(longexpr) - 1);
	longexpr[sizeof(longexpr) - 1] = '\0';
	expect_error(cron(longexpr, NULL), "the limit is 256");
	/* Feb 30 never fires: said at parse time rather than silently never */
	expect_error(cron("0 0 30 2 *", NULL), "never occurs in month");
	expect_error(cron("0 0 31 4,6,9,11 *", NULL), "never occurs in month");
	struct pp_schedule_spec and = cron("0 0 30 2 MON", NULL);
	and.day_or = false;
	expect_error(and, "never occurs");
	expect_error(cron("0 0 * * *", "Mars/Olympus"), "timezone \"Mars/Olympus\": unknown zone");
	expect_error(cron("0 0 * * *", "../../etc/passwd"), "not a valid IANA zone name");
	expect_error(cron("0 0 * * *", "/etc/passwd"), "not a valid IANA zone name");
}

static void test_cron_fields(void **state)
{
	(void)state;
	expect_next(cron("*/20 9-10 * * MON-FRI", NULL), "2026-01-02T09:30Z", "2026-01-02T09:40Z",
		    "2026-01-02T10:00Z", "2026-01-02T10:20Z", "2026-01-02T10:40Z",
		    "2026-01-05T09:00Z", NULL);
	/* names in any case, 7 for Sunday, FRI-SUN through Sunday */
	expect_next(cron("0 0 * jan,Dec fri-7", NULL), "2026-12-30T00:00Z", "2027-01-01T00:00Z",
		    "2027-01-02T00:00Z", "2027-01-03T00:00Z", "2027-01-08T00:00Z", NULL);
	/* N/S runs from N to the end of the range */
	expect_next(cron("50/5 0 1 1 *", NULL), "2026-01-01T00:00Z", "2026-01-01T00:50Z",
		    "2026-01-01T00:55Z", "2027-01-01T00:50Z", NULL);
	expect_next(cron("@hourly", NULL), "2026-01-01T00:00Z", "2026-01-01T01:00Z", NULL);
	expect_next(cron("@weekly", NULL), "2026-01-01T00:00Z", "2026-01-04T00:00Z", NULL);
	expect_next(cron("@monthly", NULL), "2026-01-01T00:00Z", "2026-02-01T00:00Z", NULL);
	expect_next(cron("@yearly", NULL), "2026-01-01T00:00Z", "2027-01-01T00:00Z", NULL);
	expect_next(cron("  @ANNUALLY ", NULL), "2026-01-01T00:00Z", "2027-01-01T00:00Z", NULL);
	/* leap days */
	expect_next(cron("0 12 29 2 *", NULL), "2025-01-01T00:00Z", "2028-02-29T12:00Z",
		    "2032-02-29T12:00Z", NULL);
	expect_next(cron("0 0 28-29 2 *", NULL), "2027-03-01T00:00Z", "2028-02-28T00:00Z",
		    "2028-02-29T00:00Z", "2029-02-28T00:00Z", NULL);
}

/* Day-of-month and day-of-week both restricted: OR by default (Vixie,
 * croniter, Prefect), AND with day_or false. */
static void test_day_or(void **state)
{
	(void)state;
	expect_next(cron("0 0 13 * FRI", NULL), "2026-02-01T00:00Z", "2026-02-06T00:00Z",
		    "2026-02-13T00:00Z", "2026-02-20T00:00Z", "2026-02-27T00:00Z",
		    "2026-03-06T00:00Z", "2026-03-13T00:00Z", NULL);
	struct pp_schedule_spec and = cron("0 0 13 * FRI", NULL);
	and.day_or = false;
	expect_next(and, "2026-01-01T00:00Z", "2026-02-13T00:00Z", "2026-03-13T00:00Z",
		    "2026-11-13T00:00Z", "2027-08-13T00:00Z", NULL);
	/* a field that allows every value is unrestricted however written,
	 * so "1-31" with a weekday means only that weekday */
	expect_next(cron("0 0 1-31 * MON", NULL), "2026-01-01T00:00Z", "2026-01-05T00:00Z",
		    "2026-01-12T00:00Z", NULL);
	/* ... while a step is a restriction (Vixie would call "*\/2" a star) */
	expect_next(cron("0 0 */10 * MON", NULL), "2026-01-01T00:00Z", "2026-01-05T00:00Z",
		    "2026-01-11T00:00Z", "2026-01-12T00:00Z", "2026-01-19T00:00Z",
		    "2026-01-21T00:00Z", NULL);
	/* Feb 30 with a weekday (OR): the weekday still fires */
	expect_next(cron("0 0 30 2 MON", NULL), "2026-01-31T00:00Z", "2026-02-02T00:00Z", NULL);
}

static void test_dst_berlin(void **state)
{
	(void)state;
	const char *z = "Europe/Berlin";
	/* 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z): 02:30 does not exist
	 * and runs at the shifted 03:30 CEST; the next day is 02:30 CEST */
	expect_next(cron("30 2 * * *", z), "2026-03-27T12:00Z", "2026-03-28T01:30Z",
		    "2026-03-29T01:30Z", "2026-03-30T00:30Z", NULL);
	/* every half hour: the shifted 02:00 and 02:30 land on 03:00 and 03:30,
	 * which are one slot each */
	expect_next(cron("*/30 * * * *", z), "2026-03-28T23:45Z", "2026-03-29T00:00Z",
		    "2026-03-29T00:30Z", "2026-03-29T01:00Z", "2026-03-29T01:30Z",
		    "2026-03-29T02:00Z", NULL);
	/* 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z): 02:30 occurs twice and
	 * runs once, the first time (02:30 CEST = 00:30Z) */
	expect_next(cron("30 2 * * *", z), "2026-10-24T12:00Z", "2026-10-25T00:30Z",
		    "2026-10-26T01:30Z", NULL);
	/* hourly: the repeated hour does not run again, so 01:00Z and 01:30Z
	 * (02:00 and 02:30 CET, second time) are skipped */
	expect_next(cron("*/30 * * * *", z), "2026-10-24T23:45Z", "2026-10-25T00:00Z",
		    "2026-10-25T00:30Z", "2026-10-25T02:00Z", "2026-10-25T02:30Z", NULL);
	/* asked from inside the repeated hour */
	expect_next(cron("45 2 * * *", z), "2026-10-25T01:10Z", "2026-10-26T01:45Z", NULL);
	/* far past the table: the TZif footer rule (2100-03-28 is the last
	 * Sunday of March) */
	expect_next(cron("30 2 * 3 SUN", z), "2100-03-27T00:00Z", "2100-03-28T01:30Z", NULL);
}

static void test_dst_new_york(void **state)
{
	(void)state;
	const char *z = "America/New_York";
	/* 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z) */
	expect_next(cron("30 2 * * *", z), "2026-03-07T12:00Z", "2026-03-08T07:30Z",
		    "2026-03-09T06:30Z", NULL);
	/* 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z): 01:30 once, as EDT */
	expect_next(cron("30 1 * * *", z), "2026-10-31T12:00Z", "2026-11-01T05:30Z",
		    "2026-11-02T06:30Z", NULL);
	/* a time outside the transition keeps its wall time */
	expect_next(cron("0 9 * * *", z), "2026-10-31T12:00Z", "2026-10-31T13:00Z",
		    "2026-11-01T14:00Z", "2026-11-02T14:00Z", NULL);
}

static void test_dst_lord_howe(void **state)
{
	(void)state;
	const char *z = "Australia/Lord_Howe";
	/* 30-minute DST. 2026-10-04 02:00 -> 02:30 (+10:30 -> +11, 15:30Z on
	 * the 3rd): 02:15 does not exist and runs at 02:45 */
	expect_next(cron("15 2 * * *", z), "2026-10-02T12:00Z", "2026-10-02T15:45Z",
		    "2026-10-03T15:45Z", "2026-10-04T15:15Z", NULL);
	/* 2026-04-05 02:00 -> 01:30 (+11 -> +10:30, 15:00Z on the 4th): 01:45
	 * occurs twice and runs at the first */
	expect_next(cron("45 1 * * *", z), "2026-04-03T12:00Z", "2026-04-03T14:45Z",
		    "2026-04-04T14:45Z", "2026-04-05T15:15Z", NULL);
}

static void test_interval(void **state)
{
	(void)state;
	/* a whole day keeps 09:00 Berlin across the spring transition */
	struct pp_schedule_spec day = {.kind = PP_SCHEDULE_INTERVAL,
				       .interval = 86400,
				       .anchor = ts("2026-03-01T08:00Z"),
				       .timezone = "Europe/Berlin"};
	expect_next(day, "2026-03-27T12:00Z", "2026-03-28T08:00Z", "2026-03-29T07:00Z",
		    "2026-03-30T07:00Z", NULL);
	/* anchored at 02:30: shifted on the missing day, back the next */
	day.anchor = ts("2026-03-01T01:30Z");
	expect_next(day, "2026-03-27T12:00Z", "2026-03-28T01:30Z", "2026-03-29T01:30Z",
		    "2026-03-30T00:30Z", NULL);
	/* ... and before the anchor too */
	expect_next(day, "2026-02-26T12:00Z", "2026-02-27T01:30Z", NULL);
	/* a week in New York: wall time kept over the autumn change */
	struct pp_schedule_spec week = {.kind = PP_SCHEDULE_INTERVAL,
					.interval = 7 * 86400,
					.anchor = ts("2026-10-26T13:00Z"),
					.timezone = "America/New_York"};
	expect_next(week, "2026-10-26T13:00Z", "2026-11-02T14:00Z", "2026-11-09T14:00Z", NULL);
	/* under a day: elapsed time, even across the transition */
	struct pp_schedule_spec hour = {.kind = PP_SCHEDULE_INTERVAL,
					.interval = 3600,
					.anchor = ts("2026-01-01T00:15Z"),
					.timezone = "Europe/Berlin"};
	expect_next(hour, "2026-03-29T00:00Z", "2026-03-29T00:15Z", "2026-03-29T01:15Z",
		    "2026-03-29T02:15Z", NULL);
	/* a day and a half: the day part in wall time, the rest elapsed */
	struct pp_schedule_spec mixed = {.kind = PP_SCHEDULE_INTERVAL,
					 .interval = 86400 + 43200,
					 .anchor = ts("2026-03-27T11:00Z"),
					 .timezone = "Europe/Berlin"};
	expect_next(mixed, "2026-03-27T11:00Z", "2026-03-28T23:00Z", "2026-03-30T10:00Z", NULL);
	struct pp_schedule_spec bad = hour;
	bad.interval = 0;
	expect_error(bad, "interval: 0 seconds is out of range");
}

static void test_rrule(void **state)
{
	(void)state;
	/* DST rules as for cron: 02:30 daily in Berlin */
	expect_next(rrule("DTSTART:20260301T023000\nRRULE:FREQ=DAILY", "Europe/Berlin"),
		    "2026-03-27T12:00Z", "2026-03-28T01:30Z", "2026-03-29T01:30Z",
		    "2026-03-30T00:30Z", NULL);
	/* the last weekday of each month */
	expect_next(rrule("DTSTART:20260101T170000\nRRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;"
			  "BYSETPOS=-1",
			  NULL),
		    "2026-01-01T00:00Z", "2026-01-30T17:00Z", "2026-02-27T17:00Z",
		    "2026-03-31T17:00Z", NULL);
	/* COUNT ends it; bare FREQ= text and lower case work */
	expect_next(rrule("DTSTART:20260105T090000\nfreq=weekly;count=2", NULL),
		    "2026-01-01T00:00Z", "2026-01-05T09:00Z", "2026-01-12T09:00Z", "(none)", NULL);
	/* UNTIL in UTC with a zone: 09:00 Berlin is 08:00Z, so 07:30Z stops
	 * before the third */
	expect_next(rrule("DTSTART;TZID=Europe/Berlin:20260105T090000\n"
			  "RRULE:FREQ=DAILY;UNTIL=20260107T073000Z",
			  NULL),
		    "2026-01-01T00:00Z", "2026-01-05T08:00Z", "2026-01-06T08:00Z", "(none)", NULL);
	/* WEEKLY every other Sunday from a Saturday: the next day first
	 * (libical alone starts a week late) */
	expect_next(rrule("DTSTART:20260905T230000\nRRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=SU", NULL),
		    "2026-01-01T00:00Z", "2026-09-06T23:00Z", "2026-09-20T23:00Z", NULL);
	/* YEARLY;BYMONTHDAY=1 is the 1st of every month (RFC 5545) */
	expect_next(rrule("DTSTART:20260124T000000\nRRULE:FREQ=YEARLY;BYMONTHDAY=1", NULL),
		    "2026-01-01T00:00Z", "2026-02-01T00:00Z", "2026-03-01T00:00Z", NULL);
	/* a mix of BYDAY with and without ordinals: every Sunday and the last
	 * Monday (RFC 5545; dateutil 2.8.2 returns nothing here) */
	expect_next(rrule("DTSTART:20260101T010000\nRRULE:FREQ=MONTHLY;BYDAY=-1MO,SU", NULL),
		    "2026-01-01T00:00Z", "2026-01-04T01:00Z", "2026-01-11T01:00Z",
		    "2026-01-18T01:00Z", "2026-01-25T01:00Z", "2026-01-26T01:00Z", NULL);
	/* YEARLY with BYSETPOS picks from the year's whole set, here Feb 27,
	 * Mar 30, Nov 29 and Nov 30 (libical alone dropped the last) */
	expect_next(rrule("DTSTART:20251102T020000\nRRULE:FREQ=YEARLY;BYMONTHDAY=-2,30;"
			  "BYMONTH=2,3,11;BYSETPOS=1,-1",
			  NULL),
		    "2025-01-01T00:00Z", "2025-11-30T02:00Z", "2026-02-27T02:00Z",
		    "2026-11-30T02:00Z", "2027-02-27T02:00Z", NULL);
	/* positions count the days before DTSTART (2026-01-05 is the first),
	 * COUNT counts what is picked, UNTIL ends a year's picks */
	expect_next(rrule("DTSTART:20260301T090000\nRRULE:FREQ=YEARLY;BYMONTH=1,6,9;BYDAY=1MO;"
			  "BYSETPOS=2;COUNT=2",
			  NULL),
		    "2025-01-01T00:00Z", "2026-06-01T09:00Z", "2027-06-07T09:00Z", "(none)", NULL);
	expect_next(rrule("DTSTART:20260301T090000\nRRULE:FREQ=YEARLY;BYMONTH=1,6,9;BYDAY=1MO;"
			  "BYSETPOS=-1;UNTIL=20270801T000000",
			  NULL),
		    "2025-01-01T00:00Z", "2026-09-07T09:00Z", "(none)", NULL);
	/* no DTSTART: Prefect's default anchor, 2020-01-01 00:00 */
	expect_next(rrule("RRULE:FREQ=YEARLY", NULL), "2025-06-01T00:00Z", "2026-01-01T00:00Z",
		    NULL);
}

static void test_rrule_errors(void **state)
{
	(void)state;
	expect_error(rrule("FREQ=DAILY;FOO=1", NULL), "unsupported part \"FOO\"");
	expect_error(rrule("INTERVAL=2", NULL), "is neither DTSTART nor RRULE");
	expect_error(rrule("DTSTART:20260101T000000", NULL), "no RRULE");
	expect_error(rrule("RRULE:INTERVAL=2", NULL), "FREQ is required");
	expect_error(rrule("RRULE:FREQ=DAILY;COUNT=2;UNTIL=20270101T000000", NULL),
		     "COUNT and UNTIL");
	expect_error(rrule("RRULE:FREQ=DAILY;INTERVAL", NULL), "is not NAME=VALUE");
	expect_error(rrule("RRULE:FREQ=SOMETIMES", NULL), "libical rejects it");
	expect_error(rrule("RRULE:FREQ=MONTHLY;BYDAY=MO;BYHOUR=1,2;BYSETPOS=1", NULL),
		     "BYSETPOS with several BYHOUR");
	expect_error(
		rrule("DTSTART:20260101T000000\nEXDATE:20260102T000000\nRRULE:FREQ=DAILY", NULL),
		"EXDATE, RDATE and EXRULE are not supported");
	expect_error(rrule("DTSTART:2026-01-01\nRRULE:FREQ=DAILY", NULL), "is not YYYYMMDD");
	expect_error(
		rrule("DTSTART;TZID=Asia/Tokyo:20260101T000000\nRRULE:FREQ=DAILY", "Europe/Berlin"),
		"differs from the schedule's timezone");
	expect_error(rrule("RRULE:FREQ=DAILY\nRRULE:FREQ=WEEKLY", NULL), "only one RRULE");
	/* rules libical would spin on for minutes inside one call */
	expect_error(rrule("RRULE:FREQ=SECONDLY;BYMONTHDAY=30;BYMONTH=2", NULL),
		     "FREQ=SECONDLY is not supported");
	expect_error(rrule("RRULE:FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=29", NULL),
		     "take no BY parts");
	expect_error(rrule("RRULE:FREQ=HOURLY;INTERVAL=2;BYHOUR=3", NULL), "take no BY parts");
	expect_error(rrule("RRULE:FREQ=DAILY;BYMONTH=2,4;BYMONTHDAY=31,-31", NULL),
		     "would never run");
	char big[PP_RRULE_TEXT_MAX + 64] = "RRULE:FREQ=DAILY;BYMONTHDAY=1";
	while (strlen(big) < PP_RRULE_TEXT_MAX)
		strcat(big, ",1");
	expect_error(rrule(big, NULL), "the limit is 1024");

	/* a minutely rule from 1900 asked about 2026: the iteration cap stops
	 * it instead of stepping through 66 million minutes */
	struct pp_schedule *s = make(rrule("DTSTART:19000101T000000\nRRULE:FREQ=MINUTELY", NULL));
	int64_t slot;
	size_t got;
	struct pp_error err = {0};
	assert_int_equal(pp_schedule_next(s, ts("2026-01-01T00:00Z"), 1, &slot, &got, &err),
			 PP_ENOMEM);
	assert_non_null(strstr(err.msg, "more than 200000 occurrences"));
	pp_schedule_free(s);
}

static void test_between_and_canonical(void **state)
{
	(void)state;
	struct pp_schedule *s = make(cron("0 * * * *", NULL));
	int64_t slots[5];
	size_t got;
	bool more;
	struct pp_error err = {0};
	/* [from, to): the slot at `from` is in, the one at `to` is out */
	assert_int_equal(pp_schedule_between(s, ts("2026-01-01T00:00Z"), ts("2026-01-01T03:00Z"), 5,
					     slots, &got, &more, &err),
			 0);
	assert_int_equal(got, 3);
	assert_false(more);
	assert_true(slots[0] == ts("2026-01-01T00:00Z") && slots[2] == ts("2026-01-01T02:00Z"));
	assert_int_equal(pp_schedule_between(s, ts("2026-01-01T00:00Z"), ts("2026-01-02T00:00Z"), 5,
					     slots, &got, &more, &err),
			 0);
	assert_int_equal(got, 5);
	assert_true(more);
	assert_int_equal(pp_schedule_between(s, 0, ts("2026-01-01T00:00Z"),
					     PP_SCHEDULE_MAX_SLOTS + 1, slots, &got, &more, &err),
			 PP_EINVALID);
	pp_schedule_free(s);

	/* the canonical text follows the meaning, not the spelling */
	struct pp_buf a, b;
	pp_buf_init(&a, 4096);
	pp_buf_init(&b, 4096);
	s = make(cron("0 1 * * *", "Europe/Berlin"));
	pp_schedule_canonical(s, &a);
	pp_schedule_free(s);
	s = make(cron("0 1 1-31 JAN-DEC 0-7", "Europe/Berlin"));
	pp_schedule_canonical(s, &b);
	pp_schedule_free(s);
	assert_string_equal(pp_buf_str(&a), pp_buf_str(&b));
	assert_string_equal(pp_buf_str(&a),
			    "v1 tz=Europe/Berlin cron minute=0 hour=1 dom=* month=* dow=*");
	pp_buf_reset(&b);
	s = make(cron("0 1 * * *", "Europe/Paris"));
	pp_schedule_canonical(s, &b);
	pp_schedule_free(s);
	assert_string_not_equal(pp_buf_str(&a), pp_buf_str(&b));
	/* day_or shows only when it changes the meaning */
	pp_buf_reset(&a);
	s = make(cron("*/15 9-17 1,15 * MON-FRI", NULL));
	pp_schedule_canonical(s, &a);
	pp_schedule_free(s);
	assert_string_equal(pp_buf_str(&a), "v1 tz=UTC cron minute=0,15,30,45 hour=9-17 dom=1,15 "
					    "month=* dow=1-5 day_or=true");
	/* elapsed intervals: anchors a whole number of intervals apart are one
	 * schedule */
	struct pp_schedule_spec i1 = {
		.kind = PP_SCHEDULE_INTERVAL, .interval = 600, .anchor = ts("2026-01-01T00:05Z")};
	struct pp_schedule_spec i2 = i1;
	i2.anchor = ts("2026-05-01T10:35Z");
	pp_buf_reset(&a);
	pp_buf_reset(&b);
	s = make(i1);
	pp_schedule_canonical(s, &a);
	pp_schedule_free(s);
	s = make(i2);
	pp_schedule_canonical(s, &b);
	pp_schedule_free(s);
	assert_string_equal(pp_buf_str(&a), pp_buf_str(&b));
	pp_buf_reset(&a);
	s = make(rrule("DTSTART:20260101T090000\nRRULE:FREQ=weekly;byday=MO", "Asia/Tokyo"));
	pp_schedule_canonical(s, &a);
	pp_schedule_free(s);
	assert_non_null(strstr(pp_buf_str(&a), "v1 tz=Asia/Tokyo rrule dtstart=20260101T090000 "
					       "FREQ=WEEKLY"));
	pp_buf_free(&a);
	pp_buf_free(&b);
}

/* The zone reader alone: offsets, spans and the wall-time rules. */
static void test_tz(void **state)
{
	(void)state;
	struct pp_tz *z = NULL;
	struct pp_error err = {0};
	assert_int_equal(pp_tz_load("Europe/Berlin", &z, &err), 0);
	assert_int_equal(pp_tz_offset(z, ts("2026-01-15T12:00Z")), 3600);
	assert_int_equal(pp_tz_offset(z, ts("2026-07-15T12:00Z")), 7200);
	struct pp_tz_span sp;
	pp_tz_span_at(z, ts("2026-05-01T00:00Z"), &sp);
	assert_true(sp.start == ts("2026-03-29T01:00Z") && sp.end == ts("2026-10-25T01:00Z"));
	assert_true(sp.off == 7200 && sp.prev_off == 3600);
	/* wall 02:30 on the spring day: shifted; on the autumn day: first */
	assert_true(pp_tz_to_utc(z, ts("2026-03-29T02:30Z")) == ts("2026-03-29T01:30Z"));
	assert_true(pp_tz_to_utc(z, ts("2026-10-25T02:30Z")) == ts("2026-10-25T00:30Z"));
	assert_true(pp_tz_to_utc(z, ts("2026-10-25T03:00Z")) == ts("2026-10-25T02:00Z"));
	assert_string_equal(pp_tz_name(z), "Europe/Berlin");
	pp_tz_free(z);
	assert_int_equal(pp_tz_load("UTC", &z, &err), 0);
	assert_int_equal(pp_tz_offset(z, ts("2026-07-15T12:00Z")), 0);
	pp_tz_free(z);
	assert_int_equal(pp_tz_load("Asia/Kolkata", &z, &err), 0);
	assert_int_equal(pp_tz_offset(z, ts("2026-07-15T12:00Z")), 19800);
	pp_tz_free(z);
	assert_int_equal(pp_tz_load("Europe", &z, &err), PP_EINVALID);
	assert_int_equal(pp_tz_load("right/UTC", &z, &err), PP_EINVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cron_errors),  cmocka_unit_test(test_cron_fields),
		cmocka_unit_test(test_day_or),	     cmocka_unit_test(test_dst_berlin),
		cmocka_unit_test(test_dst_new_york), cmocka_unit_test(test_dst_lord_howe),
		cmocka_unit_test(test_interval),     cmocka_unit_test(test_rrule),
		cmocka_unit_test(test_rrule_errors), cmocka_unit_test(test_between_and_canonical),
		cmocka_unit_test(test_tz),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
