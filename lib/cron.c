/* Cron parsing and matching (see cron.h). */
#include "lib/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/tz.h"

struct field {
	const char *name;
	int lo, hi;
	const char *const *names; /* names[i] is value lo + i */
	int nnames;
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
					  "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const dow_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

/* Day-of-week accepts 7 for Sunday as Vixie cron and croniter do. */
static const struct field fields[5] = {
	{"minute", 0, 59, NULL, 0},	     {"hour", 0, 23, NULL, 0},
	{"day-of-month", 1, 31, NULL, 0},    {"month", 1, 12, month_names, 12},
	{"day-of-week", 0, 7, dow_names, 7},
};

static const struct {
	const char *macro, *expansion;
} macros[] = {
	{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
	{"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
	{"@hourly", "0 * * * *"},
};

/* A number or (for month and day-of-week) a three-letter name. */
static int parse_value(const struct field *f, const char **pp, const char *end, int *out)
{
	const char *p = *pp;
	if (p < end && isdigit((unsigned char)*p)) {
		long v = 0;
		while (p < end && isdigit((unsigned char)*p) && v < 1000)
			v = v * 10 + (*p++ - '0');
		*out = (int)v;
		*pp = p;
		return 0;
	}
	if (f->names && end - p >= 3) {
		for (int i = 0; i < f->nnames; i++) {
			if (strncasecmp(p, f->names[i], 3) == 0 &&
			    (end - p == 3 || !isalpha((unsigned char)p[3]))) {
				*out = f->lo + i;
				*pp = p + 3;
				return 0;
			}
		}
	}
	return -1;
}

static int bad(struct pp_error *err, const char *text, const struct field *f, const char *tok,
	       size_t toklen, const char *why)
{
	return pp_fail(err, PP_EINVALID, "cron \"%s\": %s \"%.*s\" %s", text, f->name, (int)toklen,
		       tok, why);
}

static const char unsupported[] = "uses L, W, # or ?, which pushpool does not support";

/* Quartz/croniter extensions, named in the error rather than "bad". */
static bool quartz_syntax(const char *tok, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (strchr("LW#?", tok[i]))
			return true;
	return false;
}

/* One comma-separated element: *, N, N-M, with an optional /STEP. */
static int parse_element(const char *text, const struct field *f, const char *tok, const char *end,
			 uint64_t *bits, struct pp_error *err)
{
	size_t toklen = (size_t)(end - tok);
	const char *p = tok;
	int lo, hi, step = 1;
	bool range = false;
	if (p < end && *p == '*') {
		lo = f->lo;
		hi = f->hi == 7 ? 6 : f->hi;
		p++;
		range = true;
	} else {
		if (parse_value(f, &p, end, &lo))
			return bad(err, text, f, tok, toklen,
				   quartz_syntax(tok, toklen) ? unsupported
				   : f->names		      ? "is not a number or a name"
							      : "is not a number");
		hi = lo;
		if (p < end && *p == '-') {
			p++;
			if (parse_value(f, &p, end, &hi))
				return bad(err, text, f, tok, toklen, "has a bad range end");
			range = true;
		}
	}
	if (p < end && *p == '/') {
		p++;
		const char *s = p;
		long v = 0;
		while (p < end && isdigit((unsigned char)*p) && v < 1000)
			v = v * 10 + (*p++ - '0');
		if (p == s || p != end)
			return bad(err, text, f, tok, toklen, "has a bad step");
		if (v < 1 || v > f->hi - f->lo + 1)
			return pp_fail(err, PP_EINVALID,
				       "cron \"%s\": %s step %ld in \"%.*s\" is out of range 1-%d",
				       text, f->name, v, (int)toklen, tok, f->hi - f->lo + 1);
		step = (int)v;
		/* "N/S" means N through the end of the range, as in croniter. */
		if (!range)
			hi = f->hi == 7 ? 6 : f->hi;
	}
	if (p != end)
		return bad(err, text, f, tok, toklen,
			   quartz_syntax(tok, toklen) ? unsupported : "has unexpected characters");
	/* "FRI-SUN" (5-0) runs through Sunday, as in croniter. */
	if (f->hi == 7 && hi == 0 && lo > 0)
		hi = 7;
	int bad_v = lo < f->lo || lo > f->hi ? lo : hi < f->lo || hi > f->hi ? hi : -1;
	if (bad_v >= 0)
		return pp_fail(err, PP_EINVALID, "cron \"%s\": %s %d is out of range %d-%d", text,
			       f->name, bad_v, f->lo, f->hi);
	if (lo > hi)
		return pp_fail(err, PP_EINVALID,
			       "cron \"%s\": %s range \"%.*s\" runs backwards (%d > %d)", text,
			       f->name, (int)toklen, tok, lo, hi);
	for (int v = lo; v <= hi; v += step)
		*bits |= (uint64_t)1 << (f->hi == 7 && v == 7 ? 0 : v);
	return 0;
}

static int parse_field(const char *text, const struct field *f, const char *tok, size_t len,
		       uint64_t *bits, struct pp_error *err)
{
	const char *end = tok + len;
	*bits = 0;
	for (const char *p = tok; p <= end;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e = comma ? comma : end;
		if (e == p)
			return pp_fail(err, PP_EINVALID,
				       "cron \"%s\": %s \"%.*s\" has an empty list item", text,
				       f->name, (int)len, tok);
		int rc = parse_element(text, f, p, e, bits, err);
		if (rc)
			return rc;
		p = e + 1;
	}
	return 0;
}

/* Could day d of month m ever exist (Feb 29 yes, Feb 30 and Apr 31 no)? */
static bool day_exists(int m, int d)
{
	return d <= pp_days_in_month(2000, m); /* 2000 is a leap year */
}

int pp_cron_parse(const char *text, bool day_or, struct pp_cron *out, struct pp_error *err)
{
	if (!text)
		text = "";
	size_t tlen = strlen(text);
	if (tlen > PP_CRON_TEXT_MAX)
		return pp_fail(err, PP_EINVALID, "cron expression is %zu bytes; the limit is %d",
			       tlen, PP_CRON_TEXT_MAX);
	const char *src = text;
	while (isspace((unsigned char)*src))
		src++;
	if (*src == '@') {
		size_t n = strcspn(src, " \t\r\n");
		const char *macro = src, *rest = src + n;
		while (isspace((unsigned char)*rest))
			rest++;
		src = NULL;
		for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]) && *rest == '\0'; i++)
			if (strlen(macros[i].macro) == n &&
			    strncasecmp(macro, macros[i].macro, n) == 0)
				src = macros[i].expansion;
		if (!src)
			return pp_fail(err, PP_EINVALID,
				       "cron \"%s\": unknown macro (known: @yearly @annually "
				       "@monthly @weekly @daily @midnight @hourly)",
				       text);
	}
	const char *tok[6];
	size_t len[6];
	int n = 0;
	for (const char *p = src; *p;) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		if (n == 6)
			break;
		tok[n] = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		len[n] = (size_t)(p - tok[n]);
		n++;
	}
	if (n != 5)
		return pp_fail(err, PP_EINVALID,
			       "cron \"%s\": expected 5 fields (minute hour day-of-month month "
			       "day-of-week), found %s%d",
			       text, n == 6 ? "more than " : "", n == 6 ? 5 : n);
	uint64_t bits[5];
	for (int i = 0; i < 5; i++) {
		int rc = parse_field(text, &fields[i], tok[i], len[i], &bits[i], err);
		if (rc)
			return rc;
	}
	struct pp_cron c = {
		.minute = bits[0],
		.hour = (uint32_t)bits[1],
		.dom = (uint32_t)bits[2],
		.month = (uint16_t)bits[3],
		.dow = (uint8_t)bits[4],
		.day_or = day_or,
	};
	/* A field that allows every value is unrestricted, however it is
	 * written ("*", "1-31", "*\/1"): croniter's rule, which decides when the
	 * two day fields combine with OR. */
	c.dom_all = c.dom == 0xfffffffeu;
	c.dow_all = c.dow == 0x7f;
	/* A day-of-month that can never occur in the chosen months would make
	 * the schedule silent forever; say so now rather than never run. */
	bool dom_decides = !c.dom_all && (c.dow_all || !day_or);
	if (dom_decides) {
		bool any = false;
		for (int m = 1; m <= 12; m++)
			for (int d = 1; d <= 31; d++)
				if ((c.month >> m & 1) && (c.dom >> d & 1) && day_exists(m, d))
					any = true;
		if (!any)
			return pp_fail(err, PP_EINVALID,
				       "cron \"%s\": day-of-month \"%.*s\" never occurs in month "
				       "\"%.*s\", so the schedule would never run",
				       text, (int)len[2], tok[2], (int)len[3], tok[3]);
	}
	*out = c;
	return 0;
}

static bool day_match(const struct pp_cron *c, int64_t days, int d)
{
	bool dom = c->dom >> d & 1, dow = c->dow >> pp_weekday(days) & 1;
	if (c->dom_all || c->dow_all)
		return dom && dow; /* the unrestricted one is always true */
	return c->day_or ? dom || dow : dom && dow;
}

bool pp_cron_match(const struct pp_cron *c, int64_t wall)
{
	int64_t days = wall / 86400 - (wall % 86400 < 0);
	int64_t sec = wall - days * 86400;
	int64_t y;
	int m, d;
	pp_civil_from_days(days, &y, &m, &d);
	return sec % 60 == 0 && (c->minute >> (sec / 60 % 60) & 1) &&
	       (c->hour >> (sec / 3600) & 1) && (c->month >> m & 1) && day_match(c, days, d);
}

bool pp_cron_next(const struct pp_cron *c, int64_t after, int64_t *next)
{
	/* Start at the first whole minute after `after`. */
	int64_t t = after + 60;
	t -= ((t % 60) + 60) % 60;
	int64_t days = t / 86400 - (t % 86400 < 0);
	int sec = (int)(t - days * 86400);
	int hour = sec / 3600, minute = sec / 60 % 60;
	int64_t limit = days + (int64_t)PP_CRON_SEARCH_YEARS * 366;
	for (; days <= limit; days++, hour = 0, minute = 0) {
		int64_t y;
		int m, d;
		pp_civil_from_days(days, &y, &m, &d);
		if (!(c->month >> m & 1)) {
			/* jump to the last day of this month; the loop adds one */
			days += pp_days_in_month(y, m) - d;
			continue;
		}
		if (!day_match(c, days, d))
			continue;
		for (; hour < 24; hour++, minute = 0) {
			if (!(c->hour >> hour & 1))
				continue;
			for (; minute < 60; minute++) {
				if (c->minute >> minute & 1) {
					*next = days * 86400 + hour * 3600 + minute * 60;
					return true;
				}
			}
		}
	}
	return false;
}

static int put_bits(struct pp_buf *out, const char *name, uint64_t bits, int lo, int hi, bool all)
{
	int rc = pp_buf_printf(out, " %s=", name);
	if (all)
		return rc ? rc : pp_buf_putc(out, '*');
	bool first = true;
	for (int v = lo; v <= hi && !rc; v++) {
		if (!(bits >> v & 1))
			continue;
		int e = v;
		while (e < hi && (bits >> (e + 1) & 1))
			e++;
		rc = e > v ? pp_buf_printf(out, "%s%d-%d", first ? "" : ",", v, e)
			   : pp_buf_printf(out, "%s%d", first ? "" : ",", v);
		first = false;
		v = e;
	}
	return rc;
}

int pp_cron_canonical(const struct pp_cron *c, struct pp_buf *out)
{
	int rc = pp_buf_puts(out, "cron");
	if (!rc)
		rc = put_bits(out, "minute", c->minute, 0, 59,
			      c->minute == (((uint64_t)1 << 60) - 1));
	if (!rc)
		rc = put_bits(out, "hour", c->hour, 0, 23, c->hour == 0xffffffu);
	if (!rc)
		rc = put_bits(out, "dom", c->dom, 1, 31, c->dom_all);
	if (!rc)
		rc = put_bits(out, "month", c->month, 1, 12, c->month == 0x1ffe);
	if (!rc)
		rc = put_bits(out, "dow", c->dow, 0, 6, c->dow_all);
	/* day_or only changes the meaning when both day fields are restricted */
	if (!rc && !c->dom_all && !c->dow_all)
		rc = pp_buf_printf(out, " day_or=%s", c->day_or ? "true" : "false");
	return rc;
}
