/* Timestamps (RFC 3339) and durations, one grammar each for the whole
 * program: configuration, command line, cloud and Prefect answers. */
#ifndef PP_TIME_H
#define PP_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	/* No zone at all reads as UTC (Prefect writes some times that way,
	 * `schedule --at` always took them). */
	PP_TIME_ZONE_OPTIONAL = 1,
	/* Month, day and time fields of one digit and years of 1 to 4, as
	 * strptime(3) reads them (`schedule --at` always took them). */
	PP_TIME_SHORT_FIELDS = 2,
};

/* RFC 3339 date-time to milliseconds since the epoch:
 * YYYY-MM-DD "T" hh:mm:ss [.fraction] ("Z" | +hh:mm | -hh:mm), "T" and "Z"
 * in either case or a space for "T" (RFC 3339 section 5.6). Fractions past
 * the millisecond are cut (never rounded up into the next second). A leap
 * second (ss 60) reads as the second after ss 59. Dates that do not exist
 * (February 30, month 13, hour 24) are refused. 0 or PP_EINVALID. */
int pp_time_parse(const char *s, int flags, int64_t *ms);

/* UTC, "2026-11-28T12:00:00.123Z", or "2026-11-28T12:00:00Z" without
 * millis (the milliseconds cut). */
#define PP_TIME_LEN 32
void pp_time_format(int64_t ms, bool millis, char out[PP_TIME_LEN]);

/* A duration: a decimal number, then optionally (spaces allowed between)
 * one unit: ms, s, m, h or d; no unit is seconds. "250ms", "90", "1.5h",
 * "2 d". Finite values only; a negative one parses (callers check their
 * ranges). 0 or PP_EINVALID. */
int pp_duration_parse(const char *s, double *seconds);
/* A duration in that grammar, in the largest unit that holds it whole:
 * 600 -> "10m", 5400 -> "90m", 61 -> "61s", 0 -> "0s"; a fraction of a
 * second in ms: 0.25 -> "250ms", 1.5 -> "1500ms". pp_duration_parse reads
 * it back. */
#define PP_DURATION_LEN 32
void pp_duration_format(double seconds, char out[PP_DURATION_LEN]);

#endif
