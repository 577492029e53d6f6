/* Schedules: cron, interval and RFC 5545 rrule, each in an IANA time zone,
 * turned into slot instants (UTC seconds). Grammar and daylight-saving
 * rules: docs/schedules.md. In short, for wall-clock schedules (cron,
 * rrule, whole days of an interval):
 *   - a wall time that occurs twice runs once, at the first instant;
 *   - a wall time that does not exist runs at the shifted instant (02:30 on
 *     a day that jumps 02:00->03:00 runs at 03:30 new time);
 *   - slots are distinct instants in ascending order: two wall times that
 *     land on one instant (a shifted 02:30 and a real 03:30) are one slot.
 * A struct pp_schedule is used by one thread at a time (the rrule iterator
 * keeps its position); distinct schedules are independent. */
#ifndef PP_SCHEDULE_H
#define PP_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

/* Longest rrule text (DTSTART and RRULE lines) accepted. */
#define PP_RRULE_TEXT_MAX 1024
/* Occurrences an rrule may be stepped through from its DTSTART to answer
 * one question; past it the question fails instead of spinning. */
#define PP_RRULE_MAX_ITER 200000
/* Largest number of slots one pp_schedule_between call returns. */
#define PP_SCHEDULE_MAX_SLOTS 100000
/* Longest interval: 100 years. */
#define PP_INTERVAL_MAX_SECONDS ((int64_t)100 * 366 * 86400)
/* rrule DTSTART when the text has none (Prefect's default anchor). */
#define PP_RRULE_DEFAULT_DTSTART "20200101T000000"

enum pp_schedule_kind {
	PP_SCHEDULE_CRON,
	PP_SCHEDULE_INTERVAL,
	PP_SCHEDULE_RRULE,
};

struct pp_schedule_spec {
	enum pp_schedule_kind kind;
	const char *timezone; /* IANA name; NULL: UTC (or an rrule's DTSTART TZID) */
	/* cron */
	const char *cron;
	bool day_or; /* Prefect's day_or; set true for Vixie cron */
	/* interval: seconds > 0, and the instant one slot falls on */
	int64_t interval;
	int64_t anchor;
	/* rrule: "RRULE:..." or "FREQ=...", optionally after a DTSTART line */
	const char *rrule;
};

struct pp_schedule;

/* Validate and compile a spec. *out is the caller's (pp_schedule_free).
 * Errors are PP_EINVALID naming the field and the bad token. */
int pp_schedule_new(const struct pp_schedule_spec *spec, struct pp_schedule **out,
		    struct pp_error *err);
void pp_schedule_free(struct pp_schedule *s);

/* The next n slots strictly after `after`, ascending, into slots[]; *got
 * may be less than n when the schedule ends (rrule COUNT/UNTIL). */
int pp_schedule_next(struct pp_schedule *s, int64_t after, size_t n, int64_t *slots, size_t *got,
		     struct pp_error *err);

/* Every slot in [from, to), ascending, at most cap (<= PP_SCHEDULE_MAX_SLOTS);
 * *more is set when slots in the range were left out because of cap. */
int pp_schedule_between(struct pp_schedule *s, int64_t from, int64_t to, size_t cap, int64_t *slots,
			size_t *got, bool *more, struct pp_error *err);

/* Stable text of what the schedule means (kind, normalised rule, zone):
 * equal for specs that produce the same slots by the same rule, so it can
 * be part of a slot's identity. Appends to out. */
int pp_schedule_canonical(const struct pp_schedule *s, struct pp_buf *out);

#endif
