/* TZif reader and wall<->instant mapping (see tz.h). */
#include "lib/tz.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The POSIX TZ string of a TZif footer: the rule for instants after the
 * last transition in the table. */
struct tz_date {
	char kind; /* 'J' (1-365, no Feb 29), 'N' (0-365), 'M' (month.week.day) */
	int n, m, w, d;
	int32_t time; /* seconds after local midnight; may be negative or > 24h */
};

struct tz_rule {
	bool present, has_dst;
	int32_t std_off, dst_off; /* seconds east of UTC */
	struct tz_date start, end;
};

struct pp_tz {
	char name[PP_TZ_NAME_MAX + 1];
	size_t ntrans, ntypes;
	int64_t *trans;	     /* ascending instants */
	uint8_t *trans_type; /* index into type_off for each transition */
	int32_t *type_off;
	struct tz_rule rule;
};

int64_t pp_days_from_civil(int64_t y, int m, int d)
{
	/* Howard Hinnant's days_from_civil, written out for int64. */
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void pp_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
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

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int pp_days_in_month(int64_t y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

int pp_weekday(int64_t days)
{
	/* 1970-01-01 was a Thursday. */
	int64_t w = (days + 4) % 7;
	return (int)(w < 0 ? w + 7 : w);
}

/* ---- POSIX TZ strings (TZif footer) ---- */

static const char *parse_abbr(const char *p)
{
	if (*p == '<') {
		const char *q = strchr(p, '>');
		return q ? q + 1 : NULL;
	}
	const char *q = p;
	while ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z'))
		q++;
	return q - p >= 3 ? q : NULL;
}

/* [+-]hh[:mm[:ss]] with hh up to max_h; returns seconds. */
static const char *parse_hms(const char *p, int max_h, int32_t *out)
{
	int sign = 1;
	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	if (*p < '0' || *p > '9')
		return NULL;
	int h = 0, mi = 0, s = 0;
	while (*p >= '0' && *p <= '9' && h <= max_h)
		h = h * 10 + (*p++ - '0');
	if (h > max_h)
		return NULL;
	if (*p == ':') {
		p++;
		if (p[0] < '0' || p[0] > '5' || p[1] < '0' || p[1] > '9')
			return NULL;
		mi = (p[0] - '0') * 10 + (p[1] - '0');
		p += 2;
		if (*p == ':') {
			p++;
			if (p[0] < '0' || p[0] > '5' || p[1] < '0' || p[1] > '9')
				return NULL;
			s = (p[0] - '0') * 10 + (p[1] - '0');
			p += 2;
		}
	}
	*out = sign * (h * 3600 + mi * 60 + s);
	return p;
}

static const char *parse_int(const char *p, int lo, int hi, int *out)
{
	if (*p < '0' || *p > '9')
		return NULL;
	int v = 0;
	while (*p >= '0' && *p <= '9' && v <= hi)
		v = v * 10 + (*p++ - '0');
	if (v < lo || v > hi)
		return NULL;
	*out = v;
	return p;
}

static const char *parse_date(const char *p, struct tz_date *d)
{
	if (*p == 'M') {
		d->kind = 'M';
		if (!(p = parse_int(p + 1, 1, 12, &d->m)) || *p++ != '.' ||
		    !(p = parse_int(p, 1, 5, &d->w)) || *p++ != '.' ||
		    !(p = parse_int(p, 0, 6, &d->d)))
			return NULL;
	} else if (*p == 'J') {
		d->kind = 'J';
		if (!(p = parse_int(p + 1, 1, 365, &d->n)))
			return NULL;
	} else {
		d->kind = 'N';
		if (!(p = parse_int(p, 0, 365, &d->n)))
			return NULL;
	}
	d->time = 2 * 3600;
	/* RFC 8536 allows -167..167 hours here. */
	if (*p == '/' && !(p = parse_hms(p + 1, 167, &d->time)))
		return NULL;
	return p;
}

static bool parse_rule(const char *s, struct tz_rule *r)
{
	memset(r, 0, sizeof(*r));
	const char *p = parse_abbr(s);
	int32_t v;
	if (!p || !(p = parse_hms(p, 24, &v)))
		return false;
	r->std_off = -v; /* POSIX offsets count west of UTC */
	r->present = true;
	if (!*p)
		return true;
	if (!(p = parse_abbr(p)))
		return false;
	r->has_dst = true;
	r->dst_off = r->std_off + 3600;
	if (*p && *p != ',') {
		if (!(p = parse_hms(p, 24, &v)))
			return false;
		r->dst_off = -v;
	}
	if (!*p) {
		/* POSIX leaves the default rule to the implementation; tzcode uses
		 * the US rule. */
		r->start = (struct tz_date){'M', 0, 3, 2, 0, 7200};
		r->end = (struct tz_date){'M', 0, 11, 1, 0, 7200};
		return true;
	}
	if (*p++ != ',' || !(p = parse_date(p, &r->start)) || *p++ != ',' ||
	    !(p = parse_date(p, &r->end)))
		return false;
	return *p == '\0';
}

/* Wall seconds of a rule date in year y (at its local time of day). */
static int64_t rule_wall(const struct tz_date *d, int64_t y)
{
	int64_t day;
	if (d->kind == 'J') {
		day = pp_days_from_civil(y, 1, 1) + d->n - 1 + (is_leap(y) && d->n >= 60);
	} else if (d->kind == 'N') {
		day = pp_days_from_civil(y, 1, 1) + d->n;
	} else {
		int64_t first = pp_days_from_civil(y, d->m, 1);
		int dom = 1 + (d->d - pp_weekday(first) + 7) % 7 + (d->w - 1) * 7;
		if (dom > pp_days_in_month(y, d->m))
			dom -= 7;
		day = first + dom - 1;
	}
	return day * 86400 + d->time;
}

/* Rule transitions of year y: the instant DST starts and the one it ends. */
static void rule_year(const struct tz_rule *r, int64_t y, int64_t *start, int64_t *end)
{
	/* A transition's time is in the local time in force before it. */
	*start = rule_wall(&r->start, y) - r->std_off;
	*end = rule_wall(&r->end, y) - r->dst_off;
}

static int64_t year_of(int64_t instant)
{
	int64_t y;
	int m, d;
	int64_t days = instant / 86400 - (instant % 86400 < 0);
	pp_civil_from_days(days, &y, &m, &d);
	return y;
}

/* Span from the footer rule alone. */
static void rule_span(const struct tz_rule *r, int64_t t, struct pp_tz_span *s)
{
	s->start = PP_TIME_MIN;
	s->end = PP_TIME_MAX;
	s->off = s->prev_off = r->std_off;
	if (!r->has_dst)
		return;
	/* Gather the transitions of the years around t (six at most). */
	int64_t y = year_of(t);
	int64_t at[6];
	int32_t after[6], before[6];
	int n = 0;
	for (int64_t yy = y - 1; yy <= y + 1; yy++) {
		int64_t a, b;
		rule_year(r, yy, &a, &b);
		at[n] = a, after[n] = r->dst_off, before[n++] = r->std_off;
		at[n] = b, after[n] = r->std_off, before[n++] = r->dst_off;
	}
	int64_t best_prev = PP_TIME_MIN;
	for (int i = 0; i < n; i++) {
		if (at[i] <= t && at[i] >= best_prev) {
			best_prev = at[i];
			s->start = at[i];
			s->off = after[i];
			s->prev_off = before[i];
		}
		if (at[i] > t && at[i] < s->end)
			s->end = at[i];
	}
}

void pp_tz_span_at(const struct pp_tz *z, int64_t t, struct pp_tz_span *s)
{
	size_t n = z->ntrans;
	/* i = number of transitions at or before t */
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (z->trans[mid] <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t i = lo;
	int32_t type0 = z->ntypes ? z->type_off[0] : 0;
	if (n == 0 && z->rule.present) {
		rule_span(&z->rule, t, s);
		return;
	}
	if (i == 0) {
		s->start = PP_TIME_MIN;
		s->end = n ? z->trans[0] : PP_TIME_MAX;
		s->off = s->prev_off = type0;
		return;
	}
	s->start = z->trans[i - 1];
	s->off = z->type_off[z->trans_type[i - 1]];
	s->prev_off = i >= 2 ? z->type_off[z->trans_type[i - 2]] : type0;
	if (i < n) {
		s->end = z->trans[i];
		return;
	}
	s->end = PP_TIME_MAX;
	if (!z->rule.present)
		return;
	/* Past the table: the footer rule, but never reaching back before the
	 * last transition the table states. */
	struct pp_tz_span r;
	rule_span(&z->rule, t, &r);
	s->off = r.off;
	s->end = r.end;
	if (r.start > s->start) {
		s->start = r.start;
		s->prev_off = r.prev_off;
	}
}

int32_t pp_tz_offset(const struct pp_tz *z, int64_t t)
{
	struct pp_tz_span s;
	pp_tz_span_at(z, t, &s);
	return s.off;
}

/* Every UTC offset in use lies within this many seconds of 0 (+14:00 is the
 * largest today; local mean times reached about 15:56). */
#define TZ_OFFSET_BOUND (26 * 3600)
/* Spans examined for one wall time: a 52-hour window never holds more. */
#define TZ_MAX_SPANS 64

int64_t pp_tz_to_utc(const struct pp_tz *z, int64_t wall)
{
	/* Walk the spans covering every instant this wall time could denote,
	 * in time order: the first span that contains wall - off gives the
	 * earliest instant; a wall time that falls before a span's local
	 * range but after the previous span's lies in a gap. */
	int64_t t = wall - TZ_OFFSET_BOUND;
	struct pp_tz_span s;
	for (int i = 0; i < TZ_MAX_SPANS; i++) {
		pp_tz_span_at(z, t, &s);
		int64_t u = wall - s.off;
		if (u >= s.start && u < s.end)
			return u;
		if (u < s.start)
			return wall - s.prev_off; /* in the gap before this span */
		if (s.end == PP_TIME_MAX)
			break;
		t = s.end;
	}
	return wall - s.off;
}

/* ---- TZif files ---- */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static bool valid_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > PP_TZ_NAME_MAX || name[0] == '/' || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '+' || c == '/';
		/* no "..", "//", or a component starting with '.' */
		if (!ok || (c == '/' && (name[i + 1] == '/' || name[i + 1] == '.')))
			return false;
	}
	return true;
}

static int parse_tzif(struct pp_tz *z, const unsigned char *buf, size_t len, struct pp_error *err)
{
	const char *name = z->name;
	if (len < 44 || memcmp(buf, "TZif", 4) != 0)
		return pp_fail(err, PP_EINVALID, "timezone %s: not a TZif file", name);
	/* Version 1 files have only 32-bit data; everything tzdata ships
	 * today is version 2 or later, whose second block is 64-bit. */
	if (buf[4] < '2')
		return pp_fail(err, PP_EINVALID, "timezone %s: TZif version 1 is not supported",
			       name);
	const unsigned char *h = buf + 20;
	size_t v1 = be32(h + 12) * 5 + be32(h + 16) * 6 + be32(h + 20) + be32(h + 8) * 8 +
		    be32(h + 4) + be32(h);
	if (v1 > len - 44 || len - 44 - v1 < 44)
		return pp_fail(err, PP_EINVALID, "timezone %s: truncated TZif file", name);
	const unsigned char *p = buf + 44 + v1, *end = buf + len;
	if (memcmp(p, "TZif", 4) != 0)
		return pp_fail(err, PP_EINVALID, "timezone %s: bad second TZif header", name);
	h = p + 20;
	uint32_t isut = be32(h), isstd = be32(h + 4), leap = be32(h + 8), timecnt = be32(h + 12),
		 typecnt = be32(h + 16), charcnt = be32(h + 20);
	p += 44;
	if (leap)
		return pp_fail(err, PP_EINVALID,
			       "timezone %s: zones counting leap seconds are not supported", name);
	if (typecnt == 0 || typecnt > 256)
		return pp_fail(err, PP_EINVALID, "timezone %s: bad type count %u", name, typecnt);
	size_t need = (size_t)timecnt * 9 + (size_t)typecnt * 6 + charcnt + isstd + isut;
	if (need > (size_t)(end - p))
		return pp_fail(err, PP_EINVALID, "timezone %s: truncated TZif file", name);
	z->ntrans = timecnt;
	z->ntypes = typecnt;
	z->trans = calloc(timecnt ? timecnt : 1, sizeof(*z->trans));
	z->trans_type = calloc(timecnt ? timecnt : 1, 1);
	z->type_off = calloc(typecnt, sizeof(*z->type_off));
	if (!z->trans || !z->trans_type || !z->type_off)
		return pp_fail(err, PP_ENOMEM, "timezone %s: out of memory", name);
	for (uint32_t i = 0; i < timecnt; i++) {
		z->trans[i] = be64(p + 8 * (size_t)i);
		if (i && z->trans[i] <= z->trans[i - 1])
			return pp_fail(err, PP_EINVALID, "timezone %s: transitions out of order",
				       name);
	}
	p += (size_t)timecnt * 8;
	for (uint32_t i = 0; i < timecnt; i++) {
		if (p[i] >= typecnt)
			return pp_fail(err, PP_EINVALID, "timezone %s: bad type index", name);
		z->trans_type[i] = p[i];
	}
	p += timecnt;
	for (uint32_t i = 0; i < typecnt; i++)
		z->type_off[i] = (int32_t)be32(p + 6 * (size_t)i);
	p += (size_t)typecnt * 6 + charcnt + isstd + isut;
	/* Footer: "\n" POSIX-TZ "\n". */
	if (p < end && *p == '\n') {
		const unsigned char *q = memchr(p + 1, '\n', (size_t)(end - p - 1));
		if (q && q > p + 1) {
			char tzs[128];
			size_t n = (size_t)(q - p - 1);
			if (n >= sizeof(tzs))
				return pp_fail(err, PP_EINVALID, "timezone %s: footer too long",
					       name);
			memcpy(tzs, p + 1, n);
			tzs[n] = '\0';
			if (!parse_rule(tzs, &z->rule))
				return pp_fail(err, PP_EINVALID,
					       "timezone %s: cannot parse footer rule \"%s\"", name,
					       tzs);
		}
	}
	return 0;
}

static struct pp_tz *tz_utc(void)
{
	struct pp_tz *z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	strcpy(z->name, "UTC");
	z->rule.present = true;
	return z;
}

int pp_tz_load(const char *name, struct pp_tz **out, struct pp_error *err)
{
	if (!name || !valid_name(name))
		return pp_fail(err, PP_EINVALID, "timezone \"%s\": not a valid IANA zone name",
			       name ? name : "");
	struct pp_tz *z;
	if (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0) {
		if (!(z = tz_utc()))
			return pp_fail(err, PP_ENOMEM, "timezone %s: out of memory", name);
		snprintf(z->name, sizeof(z->name), "%s", name);
		*out = z;
		return 0;
	}
	char path[sizeof(PP_TZ_DIR) + PP_TZ_NAME_MAX + 2];
	snprintf(path, sizeof(path), "%s/%s", PP_TZ_DIR, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return pp_fail(err, PP_EINVALID, "timezone \"%s\": unknown zone (%s: %s)", name,
			       path, strerror(errno));
	unsigned char *buf = malloc(PP_TZ_FILE_MAX + 1);
	size_t len = buf ? fread(buf, 1, PP_TZ_FILE_MAX + 1, f) : 0;
	fclose(f);
	if (!buf)
		return pp_fail(err, PP_ENOMEM, "timezone %s: out of memory", name);
	int rc = 0;
	z = calloc(1, sizeof(*z));
	if (!z)
		rc = pp_fail(err, PP_ENOMEM, "timezone %s: out of memory", name);
	else if (len > PP_TZ_FILE_MAX)
		rc = pp_fail(err, PP_EINVALID, "timezone \"%s\": %s is larger than %d bytes", name,
			     path, PP_TZ_FILE_MAX);
	if (!rc) {
		snprintf(z->name, sizeof(z->name), "%s", name);
		rc = parse_tzif(z, buf, len, err);
	}
	free(buf);
	if (rc) {
		pp_tz_free(z);
		return rc;
	}
	*out = z;
	return 0;
}

void pp_tz_free(struct pp_tz *z)
{
	if (!z)
		return;
	free(z->trans);
	free(z->trans_type);
	free(z->type_off);
	free(z);
}

const char *pp_tz_name(const struct pp_tz *z)
{
	return z->name;
}
