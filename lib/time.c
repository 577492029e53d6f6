/* RFC 3339 timestamps and durations. Dates are converted with the proleptic
 * Gregorian calendar by arithmetic, not timegm(), so no time zone, locale
 * or time_t width is involved and every year 0-9999 works. */
#include "lib/time.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

static bool leap_year(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

/* Days from 1970-01-01 to y-m-d. Counting years from March makes the leap
 * day the last day of its year, so every 400-year era has the same shape. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;				       /* 0..399 */
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;	       /* 0..146096 */
	return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* Between min and max decimal digits at *p into *out; advances *p. */
static bool digits(const char **p, int min, int max, int *out)
{
	int n = 0, v = 0;
	while (n < max && (*p)[n] >= '0' && (*p)[n] <= '9')
		v = v * 10 + ((*p)[n++] - '0');
	if (n < min)
		return false;
	*p += n;
	*out = v;
	return true;
}

static bool expect(const char **p, const char *one_of)
{
	if (!**p || !strchr(one_of, **p))
		return false;
	(*p)++;
	return true;
}

int pp_time_parse(const char *s, int flags, int64_t *ms)
{
	if (!s)
		return PP_EINVALID;
	int lo = flags & PP_TIME_SHORT_FIELDS ? 1 : 2;
	int y, mo, d, h, mi, sec, frac = 0;
	const char *p = s;
	if (!digits(&p, lo == 1 ? 1 : 4, 4, &y) || !expect(&p, "-") || !digits(&p, lo, 2, &mo) ||
	    !expect(&p, "-") || !digits(&p, lo, 2, &d) || !expect(&p, "Tt ") ||
	    !digits(&p, lo, 2, &h) || !expect(&p, ":") || !digits(&p, lo, 2, &mi) ||
	    !expect(&p, ":") || !digits(&p, lo, 2, &sec))
		return PP_EINVALID;
	if (*p == '.') {
		p++;
		int n = 0;
		for (; *p >= '0' && *p <= '9'; p++, n++)
			if (n < 3)
				frac = frac * 10 + (*p - '0');
		if (!n)
			return PP_EINVALID;
		for (; n < 3; n++)
			frac *= 10;
	}
	int offset_min = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if (!digits(&p, 2, 2, &oh) || !expect(&p, ":") || !digits(&p, 2, 2, &om) ||
		    oh > 23 || om > 59)
			return PP_EINVALID;
		offset_min = sign * (oh * 60 + om);
	} else if (!(flags & PP_TIME_ZONE_OPTIONAL)) {
		return PP_EINVALID;
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
	    sec > 60)
		return PP_EINVALID;
	int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
		       (int64_t)offset_min * 60;
	*ms = secs * 1000 + frac;
	return 0;
}

void pp_time_format(int64_t ms, bool millis, char out[PP_TIME_LEN])
{
	/* Floor division, so times before 1970 format too. */
	int64_t secs = ms / 1000 - (ms % 1000 < 0), rem = ms - secs * 1000;
	int64_t days = secs / 86400 - (secs % 86400 < 0), sod = secs - days * 86400;
	int64_t y;
	int m, d;
	civil_from_days(days, &y, &m, &d);
	if (y >= 0 && y <= 9999) {
		/* Every log line stamps one: digits by hand cost a tenth of
		 * snprintf's. */
		int f[] = {(int)y / 100,	 (int)y % 100,	 m, d, (int)(sod / 3600),
			   (int)(sod / 60 % 60), (int)(sod % 60)};
		static const char sep[] = {0, 0, '-', '-', 'T', ':', ':'};
		char *o = out;
		for (int i = 0; i < 7; i++) {
			if (sep[i])
				*o++ = sep[i];
			*o++ = (char)('0' + f[i] / 10);
			*o++ = (char)('0' + f[i] % 10);
		}
		if (millis) {
			*o++ = '.';
			*o++ = (char)('0' + rem / 100);
			*o++ = (char)('0' + rem / 10 % 10);
			*o++ = (char)('0' + rem % 10);
		}
		*o++ = 'Z';
		*o = '\0';
		return;
	}
	int n = snprintf(out, PP_TIME_LEN, "%04lld-%02d-%02dT%02d:%02d:%02d", (long long)y, m, d,
			 (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60));
	if (n < 0 || n >= PP_TIME_LEN - 6) /* a year no clock reaches */
		return;
	if (millis)
		snprintf(out + n, PP_TIME_LEN - (size_t)n, ".%03dZ", (int)rem);
	else
		snprintf(out + n, PP_TIME_LEN - (size_t)n, "Z");
}

int pp_duration_parse(const char *s, double *seconds)
{
	static const struct {
		const char *unit;
		double seconds;
	} units[] = {{"", 1}, {"ms", 0.001}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
	if (!s)
		return PP_EINVALID;
	char *end;
	double v = strtod(s, &end);
	if (end == s || !isfinite(v))
		return PP_EINVALID;
	while (*end == ' ' || *end == '\t')
		end++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (!strcmp(end, units[i].unit)) {
			v *= units[i].seconds;
			if (!isfinite(v))
				return PP_EINVALID;
			*seconds = v;
			return 0;
		}
	}
	return PP_EINVALID;
}

void pp_duration_format(double seconds, char out[PP_DURATION_LEN])
{
	static const struct {
		const char *unit;
		long long seconds;
	} units[] = {{"d", 86400}, {"h", 3600}, {"m", 60}, {"s", 1}};
	double whole = floor(seconds);
	if (whole != seconds || fabs(seconds) >= 9e15) {
		snprintf(out, PP_DURATION_LEN, "%.15gms", seconds * 1000);
		return;
	}
	long long s = (long long)whole;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (s % units[i].seconds == 0 && (s || units[i].seconds == 1)) {
			snprintf(out, PP_DURATION_LEN, "%lld%s", s / units[i].seconds,
				 units[i].unit);
			return;
		}
}
