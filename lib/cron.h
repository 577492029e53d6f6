/* Five-field cron expressions: minute hour day-of-month month day-of-week.
 * Grammar and day rules: docs/schedules.md. Matching works on wall times
 * (tz.h); turning them into instants is schedule.h's job. */
#ifndef PP_CRON_H
#define PP_CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

/* Longest expression accepted, in bytes. */
#define PP_CRON_TEXT_MAX 256
/* How far ahead a search for the next match looks before deciding the
 * expression never fires again (Feb 29 on a given weekday can be 28 years
 * apart, more across a skipped century leap day). */
#define PP_CRON_SEARCH_YEARS 50

struct pp_cron {
	uint64_t minute;       /* bit n: minute n (0-59) */
	uint32_t hour;	       /* bits 0-23 */
	uint32_t dom;	       /* bits 1-31 */
	uint16_t month;	       /* bits 1-12 */
	uint8_t dow;	       /* bits 0-6, 0 = Sunday */
	bool dom_all, dow_all; /* the field allows every value */
	bool day_or;	       /* Vixie OR of the two day fields (Prefect's default) */
};

/* Parse text (fields separated by blanks, or a macro such as @daily).
 * day_or false makes a restricted day-of-month AND day-of-week both
 * required. Errors are PP_EINVALID and name the field and token. */
int pp_cron_parse(const char *text, bool day_or, struct pp_cron *out, struct pp_error *err);

/* Does the wall time (seconds, tz.h) match? Seconds must be 0. */
bool pp_cron_match(const struct pp_cron *c, int64_t wall);

/* The first matching wall time strictly after `after`; false when none
 * within PP_CRON_SEARCH_YEARS. */
bool pp_cron_next(const struct pp_cron *c, int64_t after, int64_t *next);

/* Canonical text of the expression's meaning: two expressions that match
 * the same times give the same text ("minute=0 hour=1 dom=* ..."). */
int pp_cron_canonical(const struct pp_cron *c, struct pp_buf *out);

#endif
