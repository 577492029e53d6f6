/* Schedules into slot instants (see schedule.h and docs/schedules.md). */
#include "lib/schedule.h"

#include <ctype.h>
#include <libical/ical.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/cron.h"
#include "lib/tz.h"

/* Instants accepted from callers: years 0001 to 9999, so that no wall
 * arithmetic below can overflow. */
#define SCHED_T_MIN (-62135596800LL)
#define SCHED_T_MAX 253402300799LL
/* Zone spans one question may walk through: spans before the next
 * matching wall time are skipped, so a handful is the most a real zone
 * needs. */
#define SCHED_MAX_SPANS 512
/* No UTC offset is larger than this (+14:00 today, about 15:56 in local
 * mean times of the past). */
#define SCHED_OFFSET_BOUND (26 * 3600)

/* Most occurrences one year of a YEARLY rule with BYSETPOS may have: one a
 * day (BYSETPOS with several times of day is refused). */
#define SETPOS_YEAR_MAX 366

struct rrule_state {
	struct icalrecurrencetype rec;	/* the rule as written (normalised) */
	struct icalrecurrencetype iter; /* what libical iterates */
	struct icaltimetype dtstart;	/* as written, for the canonical text */
	struct icaltimetype first;	/* where libical starts iterating */
	int64_t dtstart_wall;
	icalrecur_iterator *it;
	bool have_cur, ended;
	int64_t prev, cur; /* last two occurrences (prev PP_TIME_MIN before the second) */
	long steps;	   /* iterator steps since DTSTART */
	/* FREQ=YEARLY with BYSETPOS: libical drops days of such a year's set
	 * (docs/schedules.md), so it iterates the rule without BYSETPOS, COUNT
	 * and UNTIL from January 1 of DTSTART's year, and each year's set gets
	 * its positions, DTSTART, UNTIL and COUNT here, as RFC 5545 orders
	 * them. */
	bool yearly_setpos;
	short setpos[ICAL_BY_SETPOS_SIZE];
	int nsetpos;
	int count;     /* 0: none */
	int64_t until; /* wall; PP_TIME_MAX: none */
	int64_t picked[SETPOS_YEAR_MAX];
	size_t npicked, next_picked;
	int64_t ahead; /* first occurrence of the next year, read already */
	bool have_ahead, src_ended;
	long emitted;
};

struct pp_schedule {
	enum pp_schedule_kind kind;
	struct pp_tz *tz;
	struct pp_cron cron;
	int64_t interval, anchor, anchor_wall;
	struct rrule_state rr;
};

void pp_schedule_free(struct pp_schedule *s)
{
	if (!s)
		return;
	if (s->rr.it)
		icalrecur_iterator_free(s->rr.it);
	pp_tz_free(s->tz);
	free(s);
}

/* ---- rrule ---- */

static int64_t ical_wall(struct icaltimetype t)
{
	return pp_days_from_civil(t.year, t.month, t.day) * 86400 + t.hour * 3600 + t.minute * 60 +
	       t.second;
}

static struct icaltimetype wall_ical(int64_t wall)
{
	struct icaltimetype t = icaltime_null_time();
	int64_t days = wall / 86400 - (wall % 86400 < 0), y;
	int sec = (int)(wall - days * 86400), m, d;
	pp_civil_from_days(days, &y, &m, &d);
	t.year = (int)y;
	t.month = m;
	t.day = d;
	t.hour = sec / 3600;
	t.minute = sec / 60 % 60;
	t.second = sec % 60;
	return t;
}

/* "YYYYMMDD" or "YYYYMMDDTHHMMSS", with an optional trailing Z. */
static bool parse_ical_time(const char *v, size_t n, int64_t *wall, bool *utc)
{
	int f[6] = {0};
	static const int width[6] = {4, 2, 2, 2, 2, 2};
	*utc = n > 0 && v[n - 1] == 'Z';
	if (*utc)
		n--;
	if (n != 8 && n != 15)
		return false;
	size_t p = 0;
	for (int i = 0; i < (n == 8 ? 3 : 6); i++) {
		if (i == 3 && v[p++] != 'T')
			return false;
		for (int k = 0; k < width[i]; k++, p++) {
			if (!isdigit((unsigned char)v[p]))
				return false;
			f[i] = f[i] * 10 + (v[p] - '0');
		}
	}
	if (f[0] < 1 || f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > pp_days_in_month(f[0], f[1]) ||
	    f[3] > 23 || f[4] > 59 || f[5] > 59)
		return false;
	*wall = pp_days_from_civil(f[0], f[1], f[2]) * 86400 + f[3] * 3600 + f[4] * 60 + f[5];
	return true;
}

static const char *const rrule_parts[] = {
	"FREQ",	 "INTERVAL",   "COUNT",	    "UNTIL",	"BYSECOND", "BYMINUTE", "BYHOUR",
	"BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH",  "BYSETPOS", "WKST"};

/* Check the RRULE value part by part, so an error names the part (libical
 * only says whether the whole rule parsed). */
static int check_rrule_parts(const char *rule, struct pp_error *err)
{
	bool freq = false, count = false, until = false, setpos = false, times = false, by = false;
	bool subdaily = false;
	for (const char *p = rule; *p;) {
		size_t n = strcspn(p, ";");
		const char *eq = memchr(p, '=', n);
		if (!eq || eq == p || eq + 1 == p + n)
			return pp_fail(err, PP_EINVALID, "rrule: \"%.*s\" is not NAME=VALUE",
				       (int)n, p);
		size_t kn = (size_t)(eq - p);
		bool known = false;
		for (size_t i = 0; i < sizeof(rrule_parts) / sizeof(rrule_parts[0]); i++)
			if (strlen(rrule_parts[i]) == kn && strncasecmp(p, rrule_parts[i], kn) == 0)
				known = true;
		if (!known)
			return pp_fail(err, PP_EINVALID, "rrule: unsupported part \"%.*s\"",
				       (int)kn, p);
		if (kn == 4 && strncasecmp(p, "FREQ", 4) == 0) {
			freq = true;
			size_t vn = (size_t)(p + n - eq - 1);
			/* libical steps a rule one FREQ unit at a time until one
			 * matches, up to the year 2582: a second- or minute-wise
			 * rule whose BY parts rarely or never match would spin for
			 * minutes inside one call, out of reach of any cap. */
			if (vn == 8 && strncasecmp(eq + 1, "SECONDLY", 8) == 0)
				return pp_fail(err, PP_EINVALID,
					       "rrule: FREQ=SECONDLY is not supported (slots are "
					       "minutes at the finest)");
			subdaily = (vn == 8 && strncasecmp(eq + 1, "MINUTELY", 8) == 0) ||
				   (vn == 6 && strncasecmp(eq + 1, "HOURLY", 6) == 0);
		}
		by |= kn > 2 && strncasecmp(p, "BY", 2) == 0;
		count |= kn == 5 && strncasecmp(p, "COUNT", 5) == 0;
		until |= kn == 5 && strncasecmp(p, "UNTIL", 5) == 0;
		setpos |= kn == 8 && strncasecmp(p, "BYSETPOS", 8) == 0;
		/* several times of day in one rule: BYHOUR=1,2 and the like */
		if ((kn == 6 && strncasecmp(p, "BYHOUR", 6) == 0) ||
		    (kn == 8 &&
		     (strncasecmp(p, "BYMINUTE", 8) == 0 || strncasecmp(p, "BYSECOND", 8) == 0)))
			times |= memchr(eq, ',', (size_t)(p + n - eq)) != NULL;
		p += n;
		if (*p == ';')
			p++;
	}
	if (!freq)
		return pp_fail(err, PP_EINVALID, "rrule: FREQ is required");
	if (subdaily && by)
		return pp_fail(err, PP_EINVALID,
			       "rrule: FREQ=HOURLY and FREQ=MINUTELY take no BY parts; write "
			       "FREQ=DAILY with BYHOUR and BYMINUTE (and BYDAY etc.) instead");
	/* libical applies BYSETPOS to days, not to the times within them, so
	 * it would pick other slots than RFC 5545 (and dateutil) do. */
	if (setpos && times)
		return pp_fail(err, PP_EINVALID,
			       "rrule: BYSETPOS with several BYHOUR, BYMINUTE or BYSECOND values "
			       "is not supported");
	if (count && until)
		return pp_fail(err, PP_EINVALID, "rrule: COUNT and UNTIL cannot both be given");
	return 0;
}

/* libical 3.0 counts FREQ=WEEKLY;BYDAY=<one day>;INTERVAL=n in weeks that
 * ignore WKST, so from a DTSTART before that day it starts a week late
 * (DTSTART Saturday, BYDAY=SU, INTERVAL=2: the Sunday after next instead of
 * the next one). Starting the iteration on the first occurrence's day
 * avoids it: from there every occurrence is n weeks after the last. The
 * times of day DTSTART implied are made explicit first, as RFC 5545 says
 * they are, so starting at midnight changes nothing else. */
static void weekly_single_day(struct icalrecurrencetype *rec, int64_t dtstart_wall,
			      struct icaltimetype *first)
{
	if (rec->freq != ICAL_WEEKLY_RECURRENCE || rec->by_day[0] == ICAL_RECURRENCE_ARRAY_MAX ||
	    rec->by_day[1] != ICAL_RECURRENCE_ARRAY_MAX ||
	    icalrecurrencetype_day_position(rec->by_day[0]) != 0)
		return;
	/* libical numbers weekdays from 1 = Sunday; pp_weekday from 0 = Sunday */
	int want = (int)icalrecurrencetype_day_day_of_week(rec->by_day[0]) - 1;
	int wkst = (int)rec->week_start - 1;
	int64_t day = dtstart_wall / 86400 - (dtstart_wall % 86400 < 0);
	int64_t week = day - (pp_weekday(day) - wkst + 7) % 7;
	int64_t target = week + (want - wkst + 7) % 7;
	if (target < day)
		target += 7 * (int64_t)rec->interval;
	if (target == day)
		return;
	int64_t sec = dtstart_wall - day * 86400;
	if (rec->by_hour[0] == ICAL_RECURRENCE_ARRAY_MAX) {
		rec->by_hour[0] = (short)(sec / 3600);
		rec->by_hour[1] = ICAL_RECURRENCE_ARRAY_MAX;
	}
	if (rec->by_minute[0] == ICAL_RECURRENCE_ARRAY_MAX) {
		rec->by_minute[0] = (short)(sec / 60 % 60);
		rec->by_minute[1] = ICAL_RECURRENCE_ARRAY_MAX;
	}
	if (rec->by_second[0] == ICAL_RECURRENCE_ARRAY_MAX) {
		rec->by_second[0] = (short)(sec % 60);
		rec->by_second[1] = ICAL_RECURRENCE_ARRAY_MAX;
	}
	*first = wall_ical(target * 86400);
}

/* Prepare a YEARLY rule with BYSETPOS for the per-year expansion (see
 * struct rrule_state): what DTSTART implied (time of day, and the day when
 * no day part is given, as dateutil reads it) is said outright, so that
 * the iteration can start on January 1 and each year's set be whole. */
static void yearly_setpos_prepare(struct rrule_state *r)
{
	struct icalrecurrencetype *it = &r->iter;
	const struct icaltimetype d = r->dtstart;
	const short end = ICAL_RECURRENCE_ARRAY_MAX;
	r->yearly_setpos = true;
	r->nsetpos = 0;
	for (int i = 0; i < ICAL_BY_SETPOS_SIZE && it->by_set_pos[i] != end; i++)
		r->setpos[r->nsetpos++] = it->by_set_pos[i];
	it->by_set_pos[0] = end;
	r->count = it->count;
	it->count = 0;
	r->until = PP_TIME_MAX;
	if (!icaltime_is_null_time(it->until)) {
		r->until = ical_wall(it->until) + (it->until.is_date ? 86399 : 0);
		it->until = icaltime_null_time();
	}
	if (it->by_second[0] == end)
		it->by_second[0] = (short)d.second, it->by_second[1] = end;
	if (it->by_minute[0] == end)
		it->by_minute[0] = (short)d.minute, it->by_minute[1] = end;
	if (it->by_hour[0] == end)
		it->by_hour[0] = (short)d.hour, it->by_hour[1] = end;
	if (it->by_month_day[0] == end && it->by_year_day[0] == end && it->by_week_no[0] == end &&
	    it->by_day[0] == end) {
		if (it->by_month[0] == end)
			it->by_month[0] = (short)d.month, it->by_month[1] = end;
		it->by_month_day[0] = (short)d.day, it->by_month_day[1] = end;
	}
	r->first = wall_ical(pp_days_from_civil(d.year, 1, 1) * 86400);
}

static int rrule_restart(struct rrule_state *r, struct pp_error *err)
{
	if (r->it)
		icalrecur_iterator_free(r->it);
	r->it = icalrecur_iterator_new(r->iter, r->first);
	r->have_cur = r->ended = false;
	r->steps = 0;
	r->npicked = r->next_picked = 0;
	r->have_ahead = r->src_ended = false;
	r->emitted = 0;
	if (!r->it)
		return pp_fail(err, PP_EINVALID,
			       "libical cannot iterate it (a rule that never fires, such as a "
			       "BYSETPOS beyond every period's set?)");
	return 0;
}

static int rrule_compile(struct pp_schedule *s, const char *text, const char *tzname,
			 struct pp_error *err)
{
	size_t tlen = strlen(text);
	if (tlen > PP_RRULE_TEXT_MAX)
		return pp_fail(err, PP_EINVALID, "rrule is %zu bytes; the limit is %d", tlen,
			       PP_RRULE_TEXT_MAX);
	char dtstart[64] = "", tzid[PP_TZ_NAME_MAX + 1] = "", rule[PP_RRULE_TEXT_MAX + 1] = "";
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\r\n");
		const char *line = p;
		while (n && isspace((unsigned char)*line))
			line++, n--;
		while (n && isspace((unsigned char)line[n - 1]))
			n--;
		p += strcspn(p, "\r\n");
		p += strspn(p, "\r\n");
		if (!n)
			continue;
		if (n > 8 && strncasecmp(line, "DTSTART", 7) == 0 &&
		    (line[7] == ':' || line[7] == ';')) {
			const char *colon = memchr(line, ':', n);
			if (!colon || *dtstart)
				return pp_fail(err, PP_EINVALID,
					       "rrule: bad or repeated DTSTART line \"%.*s\"",
					       (int)n, line);
			if (line[7] == ';') {
				size_t pn = (size_t)(colon - line - 8);
				if (pn <= 5 || strncasecmp(line + 8, "TZID=", 5) != 0 ||
				    pn - 5 > PP_TZ_NAME_MAX)
					return pp_fail(err, PP_EINVALID,
						       "rrule: DTSTART parameter \"%.*s\" is not "
						       "TZID=ZONE",
						       (int)pn, line + 8);
				memcpy(tzid, line + 13, pn - 5);
				tzid[pn - 5] = '\0';
			}
			size_t vn = (size_t)(line + n - colon - 1);
			if (vn >= sizeof(dtstart))
				return pp_fail(err, PP_EINVALID, "rrule: DTSTART value too long");
			memcpy(dtstart, colon + 1, vn);
			dtstart[vn] = '\0';
		} else {
			if (n > 6 && strncasecmp(line, "RRULE:", 6) == 0)
				line += 6, n -= 6;
			else if (!(n > 5 && strncasecmp(line, "FREQ=", 5) == 0))
				return pp_fail(err, PP_EINVALID,
					       "rrule: line \"%.*s\" is neither DTSTART nor RRULE "
					       "(EXDATE, RDATE and EXRULE are not supported)",
					       (int)n, line);
			if (*rule)
				return pp_fail(err, PP_EINVALID,
					       "rrule: only one RRULE is supported");
			/* libical reads part names in upper case only */
			for (size_t i = 0; i < n; i++)
				rule[i] = (char)toupper((unsigned char)line[i]);
			rule[n] = '\0';
		}
	}
	if (!*rule)
		return pp_fail(err, PP_EINVALID, "rrule: no RRULE in \"%s\"", text);
	int rc = check_rrule_parts(rule, err);
	if (rc)
		return rc;
	if (*tzid && tzname && strcmp(tzid, tzname) != 0)
		return pp_fail(err, PP_EINVALID,
			       "rrule: DTSTART TZID %s differs from the schedule's timezone %s",
			       tzid, tzname);
	rc = pp_tz_load(tzname ? tzname : *tzid ? tzid : "UTC", &s->tz, err);
	if (rc)
		return rc;
	bool utc = false;
	const char *ds = *dtstart ? dtstart : PP_RRULE_DEFAULT_DTSTART;
	if (!parse_ical_time(ds, strlen(ds), &s->rr.dtstart_wall, &utc) || (utc && *tzid))
		return pp_fail(err, PP_EINVALID,
			       "rrule: DTSTART \"%s\" is not YYYYMMDD[THHMMSS[Z]] (Z only "
			       "without TZID)",
			       ds);
	if (utc)
		s->rr.dtstart_wall += pp_tz_offset(s->tz, s->rr.dtstart_wall);
	if (s->rr.dtstart_wall < SCHED_T_MIN || s->rr.dtstart_wall > SCHED_T_MAX)
		return pp_fail(err, PP_EINVALID, "rrule: DTSTART \"%s\" out of range", ds);

	icalerror_clear_errno();
	struct icalrecurrencetype rec = icalrecurrencetype_from_string(rule);
	if (rec.freq == ICAL_NO_RECURRENCE || icalerrno != ICAL_NO_ERROR) {
		icalerror_clear_errno();
		return pp_fail(err, PP_EINVALID, "rrule \"%s\": libical rejects it (bad value)",
			       rule);
	}
	if (rec.count < 0 || rec.interval < 1)
		return pp_fail(err, PP_EINVALID,
			       "rrule \"%s\": COUNT and INTERVAL must be positive", rule);
	/* Iterate on wall times: a UTC UNTIL becomes the zone's wall time of
	 * that instant, so the comparison libical makes is like for like. */
	if (!icaltime_is_null_time(rec.until) && !rec.until.is_date && icaltime_is_utc(rec.until)) {
		int64_t u = ical_wall(rec.until);
		rec.until = wall_ical(u + pp_tz_offset(s->tz, u));
	}
	/* A BYMONTHDAY that exists in none of the BYMONTH months (Feb 30)
	 * would have libical step to the year 2582 looking for it. */
	if (rec.by_month_day[0] != ICAL_RECURRENCE_ARRAY_MAX &&
	    rec.by_month[0] != ICAL_RECURRENCE_ARRAY_MAX) {
		bool any = false;
		for (int i = 0;
		     i < ICAL_BY_MONTH_SIZE && rec.by_month[i] != ICAL_RECURRENCE_ARRAY_MAX; i++)
			for (int j = 0; j < ICAL_BY_MONTHDAY_SIZE &&
					rec.by_month_day[j] != ICAL_RECURRENCE_ARRAY_MAX;
			     j++) {
				int m = rec.by_month[i], d = rec.by_month_day[j];
				int dim = m >= 1 && m <= 12 ? pp_days_in_month(2000, m) : 0;
				any |= (d > 0 ? d : -d) <= dim;
			}
		if (!any)
			return pp_fail(
				err, PP_EINVALID,
				"rrule \"%s\": no BYMONTHDAY exists in the BYMONTH months, so "
				"the rule would never run",
				rule);
	}
	/* RFC 5545's default week start is Monday; libical 3.0 starts weeks
	 * on Sunday when WKST is absent, which shifts FREQ=WEEKLY;INTERVAL=2
	 * by a week. */
	if (!strstr(rule, "WKST="))
		rec.week_start = ICAL_MONDAY_WEEKDAY;
	/* RFC 5545: FREQ=YEARLY;BYMONTHDAY=1 is the 1st of every month, but
	 * libical 3.0 only takes DTSTART's month. Naming all twelve months
	 * says the same thing in a form libical expands (not with BYDAY
	 * ordinals, which would then count within months). */
	bool ordinal = false;
	for (int i = 0; i < ICAL_BY_DAY_SIZE && rec.by_day[i] != ICAL_RECURRENCE_ARRAY_MAX; i++)
		ordinal |= icalrecurrencetype_day_position(rec.by_day[i]) != 0;
	if (rec.freq == ICAL_YEARLY_RECURRENCE && !ordinal &&
	    rec.by_month_day[0] != ICAL_RECURRENCE_ARRAY_MAX &&
	    rec.by_month[0] == ICAL_RECURRENCE_ARRAY_MAX &&
	    rec.by_week_no[0] == ICAL_RECURRENCE_ARRAY_MAX &&
	    rec.by_year_day[0] == ICAL_RECURRENCE_ARRAY_MAX) {
		for (short m = 1; m <= 12; m++)
			rec.by_month[m - 1] = m;
		rec.by_month[12] = ICAL_RECURRENCE_ARRAY_MAX;
	}
	s->rr.dtstart = wall_ical(s->rr.dtstart_wall);
	s->rr.first = s->rr.dtstart;
	weekly_single_day(&rec, s->rr.dtstart_wall, &s->rr.first);
	s->rr.rec = rec;
	s->rr.iter = rec;
	if (rec.freq == ICAL_YEARLY_RECURRENCE && rec.by_set_pos[0] != ICAL_RECURRENCE_ARRAY_MAX)
		yearly_setpos_prepare(&s->rr);
	/* libical refuses some rules that can never fire (BYSETPOS=2 of a
	 * one-element set); better said now than found silent later. */
	if (rrule_restart(&s->rr, err))
		return pp_error_prefix(err, "rrule \"%s\": ", rule);
	return 0;
}

/* libical's next occurrence as a wall time; *ok false at the end. */
static int raw_next(struct rrule_state *r, bool *ok, int64_t *wall, struct pp_error *err)
{
	if (++r->steps > PP_RRULE_MAX_ITER)
		return pp_fail(err, PP_ENOMEM,
			       "rrule: more than %d occurrences between DTSTART and the time "
			       "asked about; use a later DTSTART",
			       PP_RRULE_MAX_ITER);
	struct icaltimetype t = icalrecur_iterator_next(r->it);
	*ok = !icaltime_is_null_time(t);
	if (*ok)
		*wall = ical_wall(t);
	return 0;
}

static int64_t year_of(int64_t wall)
{
	int64_t days = wall / 86400 - (wall % 86400 < 0), y;
	int m, d;
	pp_civil_from_days(days, &y, &m, &d);
	return y;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* The next occurrence of a YEARLY rule with BYSETPOS: a year's set read
 * whole from libical, its positions picked, then DTSTART, UNTIL, COUNT. */
static int setpos_next(struct rrule_state *r, bool *ok, int64_t *wall, struct pp_error *err)
{
	for (;;) {
		while (r->next_picked < r->npicked) {
			int64_t v = r->picked[r->next_picked++];
			if (v < r->dtstart_wall)
				continue;
			if (v > r->until || (r->count && r->emitted >= r->count)) {
				r->src_ended = true;
				r->npicked = r->next_picked = 0;
				break;
			}
			r->emitted++;
			*ok = true;
			*wall = v;
			return 0;
		}
		if (r->src_ended) {
			*ok = false;
			return 0;
		}
		int64_t set[SETPOS_YEAR_MAX], v, year = 0;
		size_t n = 0;
		if (r->have_ahead) {
			set[n++] = r->ahead;
			year = year_of(r->ahead);
			r->have_ahead = false;
		}
		for (;;) {
			bool got;
			int rc = raw_next(r, &got, &v, err);
			if (rc)
				return rc;
			if (!got) {
				r->src_ended = true;
				break;
			}
			if (!n) {
				year = year_of(v);
			} else if (year_of(v) != year) {
				r->ahead = v;
				r->have_ahead = true;
				break;
			}
			if (n == SETPOS_YEAR_MAX)
				return pp_fail(err, PP_EINVALID,
					       "rrule: more than %d occurrences in one year with "
					       "BYSETPOS",
					       SETPOS_YEAR_MAX);
			set[n++] = v;
		}
		qsort(set, n, sizeof(*set), cmp_i64);
		r->npicked = r->next_picked = 0;
		for (int i = 0; i < r->nsetpos; i++) {
			long p = r->setpos[i], idx = p > 0 ? p - 1 : (long)n + p;
			if (idx >= 0 && idx < (long)n)
				r->picked[r->npicked++] = set[idx];
		}
		qsort(r->picked, r->npicked, sizeof(*r->picked), cmp_i64);
		size_t k = 0;
		for (size_t i = 0; i < r->npicked; i++)
			if (!k || r->picked[i] != r->picked[k - 1])
				r->picked[k++] = r->picked[i];
		r->npicked = k;
	}
}

/* The first occurrence (wall time) strictly after `after`. */
static int rrule_next_wall(struct rrule_state *r, int64_t after, bool *found, int64_t *wall,
			   struct pp_error *err)
{
	/* The iterator only goes forward: start again from DTSTART when asked
	 * about a time before the occurrence it last passed. */
	if (!r->it || (r->have_cur && r->prev > after)) {
		int rc = rrule_restart(r, err);
		if (rc)
			return rc;
	}
	if (r->have_cur && r->cur > after) {
		*found = true;
		*wall = r->cur;
		return 0;
	}
	while (!r->ended) {
		bool got;
		int64_t w;
		int rc = r->yearly_setpos ? setpos_next(r, &got, &w, err)
					  : raw_next(r, &got, &w, err);
		if (rc)
			return rc;
		if (!got) {
			r->ended = true;
			break;
		}
		if (r->have_cur && w <= r->cur)
			continue; /* never step backwards or repeat */
		r->prev = r->have_cur ? r->cur : PP_TIME_MIN;
		r->cur = w;
		r->have_cur = true;
		if (w > after) {
			*found = true;
			*wall = w;
			return 0;
		}
	}
	*found = false;
	return 0;
}

/* ---- wall-clock schedules ---- */

static int next_wall(struct pp_schedule *s, int64_t after, bool *found, int64_t *wall,
		     struct pp_error *err)
{
	if (s->kind == PP_SCHEDULE_CRON) {
		*found = pp_cron_next(&s->cron, after, wall);
		return 0;
	}
	return rrule_next_wall(&s->rr, after, found, wall, err);
}

/* The first slot instant strictly after t of a cron or rrule schedule.
 * Works one constant-offset span of the zone at a time: the span's own
 * wall times map to instants by its offset, except those that already
 * occurred before a fall-back (first instant wins); after a spring-forward
 * the wall times of the gap map by the old offset into the span's start. */
static int wall_next_instant(struct pp_schedule *s, int64_t t, bool *found, int64_t *out,
			     struct pp_error *err)
{
	for (int i = 0; i < SCHED_MAX_SPANS; i++) {
		struct pp_tz_span sp;
		pp_tz_span_at(s->tz, t + 1, &sp); /* slots after t start at t + 1 */
		bool have = false, f;
		int64_t best = 0, w;
		int64_t lo = t + sp.off;
		if (sp.start != PP_TIME_MIN && sp.prev_off > sp.off &&
		    lo < sp.start + sp.prev_off - 1)
			lo = sp.start + sp.prev_off - 1;
		int rc = next_wall(s, lo, &f, &w, err);
		if (rc)
			return rc;
		bool more = f;
		int64_t next_w = w; /* the first wall time after lo */
		if (f && (sp.end == PP_TIME_MAX || w - sp.off < sp.end)) {
			have = true;
			best = w - sp.off;
		}
		if (sp.start != PP_TIME_MIN && sp.prev_off < sp.off) {
			rc = next_wall(s, t + sp.prev_off, &f, &w, err);
			if (rc)
				return rc;
			if (f && w < sp.start + sp.off && (!have || w - sp.prev_off < best)) {
				have = true;
				best = w - sp.prev_off;
			}
		}
		if (have) {
			*found = true;
			*out = best;
			return 0;
		}
		if (!more || sp.end == PP_TIME_MAX || sp.end > SCHED_T_MAX) {
			*found = false;
			return 0;
		}
		/* Every later slot comes from a wall time at or after w, and no
		 * offset is more than a day: skip the spans before that. */
		t = sp.end - 1;
		if (next_w - SCHED_OFFSET_BOUND > t)
			t = next_w - SCHED_OFFSET_BOUND;
	}
	return pp_fail(err, PP_EINVALID,
		       "schedule: no slot found after crossing %d time-zone spans",
		       SCHED_MAX_SPANS);
}

/* ---- intervals ---- */

/* Slot k: whole days advance the anchor's wall time (kept across DST),
 * the rest of the interval is elapsed time. */
static int64_t interval_slot(const struct pp_schedule *s, int64_t k)
{
	int64_t days = s->interval / 86400, rest = s->interval % 86400;
	if (!days)
		return s->anchor + k * rest;
	return pp_tz_to_utc(s->tz, s->anchor_wall + k * days * 86400) + k * rest;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static int64_t interval_next_instant(const struct pp_schedule *s, int64_t t)
{
	int64_t k = floor_div(t - s->anchor, s->interval);
	/* DST moves whole-day slots by hours at most: a few steps settle k. */
	while (interval_slot(s, k) > t)
		k--;
	while (interval_slot(s, k + 1) <= t)
		k++;
	return interval_slot(s, k + 1);
}

static int next_instant(struct pp_schedule *s, int64_t t, bool *found, int64_t *out,
			struct pp_error *err)
{
	if (s->kind == PP_SCHEDULE_INTERVAL) {
		*out = interval_next_instant(s, t);
		*found = *out <= SCHED_T_MAX;
		return 0;
	}
	int rc = wall_next_instant(s, t, found, out, err);
	if (!rc && *found && *out > SCHED_T_MAX)
		*found = false;
	return rc;
}

/* ---- API ---- */

int pp_schedule_new(const struct pp_schedule_spec *spec, struct pp_schedule **out,
		    struct pp_error *err)
{
	struct pp_schedule *s = calloc(1, sizeof(*s));
	if (!s)
		return pp_fail(err, PP_ENOMEM, "schedule: out of memory");
	s->kind = spec->kind;
	int rc = 0;
	switch (spec->kind) {
	case PP_SCHEDULE_CRON:
		rc = pp_cron_parse(spec->cron, spec->day_or, &s->cron, err);
		if (!rc)
			rc = pp_tz_load(spec->timezone ? spec->timezone : "UTC", &s->tz, err);
		break;
	case PP_SCHEDULE_INTERVAL:
		if (spec->interval <= 0 || spec->interval > PP_INTERVAL_MAX_SECONDS)
			rc = pp_fail(err, PP_EINVALID,
				     "interval: %lld seconds is out of range 1-%lld",
				     (long long)spec->interval, (long long)PP_INTERVAL_MAX_SECONDS);
		else if (spec->anchor < SCHED_T_MIN || spec->anchor > SCHED_T_MAX)
			rc = pp_fail(err, PP_EINVALID, "interval: anchor %lld is out of range",
				     (long long)spec->anchor);
		else
			rc = pp_tz_load(spec->timezone ? spec->timezone : "UTC", &s->tz, err);
		if (!rc) {
			s->interval = spec->interval;
			s->anchor = spec->anchor;
			/* Elapsed-time intervals: any slot is as good an anchor as
			 * another, so keep the first at or after the epoch and the
			 * same schedule always reads the same. */
			if (s->interval < 86400)
				s->anchor -= floor_div(s->anchor, s->interval) * s->interval;
			s->anchor_wall = s->anchor + pp_tz_offset(s->tz, s->anchor);
		}
		break;
	case PP_SCHEDULE_RRULE:
		rc = spec->rrule ? rrule_compile(s, spec->rrule, spec->timezone, err)
				 : pp_fail(err, PP_EINVALID, "rrule: no rule text");
		break;
	default: rc = pp_fail(err, PP_EINVALID, "schedule: unknown kind %d", (int)spec->kind);
	}
	if (rc) {
		pp_schedule_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

static int check_time(int64_t t, const char *what, struct pp_error *err)
{
	if (t < SCHED_T_MIN || t > SCHED_T_MAX)
		return pp_fail(err, PP_EINVALID, "schedule: %s %lld is outside years 1-9999", what,
			       (long long)t);
	return 0;
}

int pp_schedule_next(struct pp_schedule *s, int64_t after, size_t n, int64_t *slots, size_t *got,
		     struct pp_error *err)
{
	*got = 0;
	int rc = check_time(after, "start", err);
	if (rc)
		return rc;
	if (n > PP_SCHEDULE_MAX_SLOTS)
		return pp_fail(err, PP_EINVALID, "schedule: %zu slots asked, the limit is %d", n,
			       PP_SCHEDULE_MAX_SLOTS);
	int64_t t = after;
	while (*got < n) {
		bool found;
		rc = next_instant(s, t, &found, &t, err);
		if (rc || !found)
			return rc;
		slots[(*got)++] = t;
	}
	return 0;
}

int pp_schedule_between(struct pp_schedule *s, int64_t from, int64_t to, size_t cap, int64_t *slots,
			size_t *got, bool *more, struct pp_error *err)
{
	*got = 0;
	*more = false;
	int rc = check_time(from, "range start", err);
	if (!rc)
		rc = check_time(to, "range end", err);
	if (rc)
		return rc;
	if (cap > PP_SCHEDULE_MAX_SLOTS)
		return pp_fail(err, PP_EINVALID, "schedule: cap %zu is over the limit %d", cap,
			       PP_SCHEDULE_MAX_SLOTS);
	int64_t t = from - 1;
	while (t < to) {
		bool found;
		rc = next_instant(s, t, &found, &t, err);
		if (rc || !found || t >= to)
			return rc;
		if (*got == cap) {
			*more = true;
			return 0;
		}
		slots[(*got)++] = t;
	}
	return 0;
}

int pp_schedule_canonical(const struct pp_schedule *s, struct pp_buf *out)
{
	int rc = pp_buf_printf(out, "v1 tz=%s ", pp_tz_name(s->tz));
	if (rc)
		return rc;
	switch (s->kind) {
	case PP_SCHEDULE_CRON: return pp_cron_canonical(&s->cron, out);
	case PP_SCHEDULE_INTERVAL:
		return pp_buf_printf(out, "interval seconds=%lld anchor=%lld",
				     (long long)s->interval, (long long)s->anchor);
	case PP_SCHEDULE_RRULE: {
		struct icalrecurrencetype rec = s->rr.rec;
		char *txt = icalrecurrencetype_as_string_r(&rec);
		struct icaltimetype d = s->rr.dtstart;
		rc = pp_buf_printf(out, "rrule dtstart=%04d%02d%02dT%02d%02d%02d %s", d.year,
				   d.month, d.day, d.hour, d.minute, d.second, txt ? txt : "");
		free(txt);
		return rc;
	}
	}
	return PP_EINVALID;
}
