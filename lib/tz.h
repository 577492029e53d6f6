/* IANA time zones read from TZif files (RFC 8536), without the C library's
 * process-global TZ/localtime state, so any thread may use any zone.
 *
 * Times are int64 seconds. An "instant" counts from 1970-01-01T00:00:00Z;
 * a "wall" time is a civil date and time in some zone, counted the same way
 * as if that civil time were UTC (so wall = instant + UTC offset).
 *
 * Mapping a wall time to an instant (pp_tz_to_utc) follows the schedule
 * rules of docs/schedules.md:
 *   - a wall time that occurs twice (clocks set back) is the FIRST instant;
 *   - a wall time that does not exist (clocks set forward) is shifted by the
 *     size of the gap: 02:30 on a day that jumps 02:00->03:00 is 03:30 new
 *     time, which is the instant the same wall time has under the offset in
 *     force before the jump. */
#ifndef PP_TZ_H
#define PP_TZ_H

#include <stdint.h>

#include "lib/err.h"

/* Longest zone name accepted ("America/Argentina/ComodRivadavia" is 32). */
#define PP_TZ_NAME_MAX 64
/* Largest TZif file read; real ones are under 4 KiB. */
#define PP_TZ_FILE_MAX (64 * 1024)
/* Where zone files are read from. */
#define PP_TZ_DIR "/usr/share/zoneinfo"

#define PP_TIME_MIN INT64_MIN
#define PP_TIME_MAX INT64_MAX

struct pp_tz;

/* Load zone NAME ("Europe/Berlin", "UTC") from PP_TZ_DIR. "UTC" works
 * without any file. *out is the caller's, freed with pp_tz_free. Errors:
 * PP_EINVALID for a bad name, an unknown zone or a malformed file. */
int pp_tz_load(const char *name, struct pp_tz **out, struct pp_error *err);
void pp_tz_free(struct pp_tz *z);
const char *pp_tz_name(const struct pp_tz *z);

/* The stretch of time around an instant during which the offset is
 * constant: [start, end) (PP_TIME_MIN / PP_TIME_MAX when unbounded), the
 * offset in force (seconds east of UTC) and the one before start. */
struct pp_tz_span {
	int64_t start, end;
	int32_t off, prev_off;
};
void pp_tz_span_at(const struct pp_tz *z, int64_t instant, struct pp_tz_span *s);

int32_t pp_tz_offset(const struct pp_tz *z, int64_t instant);
/* Wall time -> instant with the two rules above. */
int64_t pp_tz_to_utc(const struct pp_tz *z, int64_t wall);

/* Proleptic Gregorian calendar helpers (days since 1970-01-01). */
int64_t pp_days_from_civil(int64_t y, int m, int d);
void pp_civil_from_days(int64_t days, int64_t *y, int *m, int *d);
int pp_days_in_month(int64_t y, int m);
/* 0 = Sunday. */
int pp_weekday(int64_t days);

#endif
