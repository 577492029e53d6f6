/* Log lines (text or JSON) with every registered secret redacted. */
#include "lib/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/err.h"

/* A message longer than this is cut (after redaction) and marked. */
#define LOG_MSG_MAX  ((size_t)64 << 10)
#define SECRET_MIN   4
#define PINNED_MAX   4096
#define ROTATING_MAX 8192
#define REDACTED     "[REDACTED]"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum pp_log_level log_min = PP_LOG_INFO;
static enum pp_log_format log_fmt = PP_LOG_TEXT;
static FILE *log_out;

/* Registered secrets. Long-lived ones (config values, key files) stay for
 * the life of the process. Rotating ones (access tokens, temporary keys,
 * per-run secret values) go in a ring whose oldest entry makes room: a
 * daemon that runs for months keeps redacting its newest tokens, where a
 * full fixed table would silently stop registering them. */
struct secret {
	char *value;
	size_t len;
};
static struct secret pinned[PINNED_MAX];
static size_t npinned;
static struct secret rotating[ROTATING_MAX];
static size_t nrotating, rotating_next;
/* How many secrets start with each byte pair: most positions of a line
 * are passed over with one lookup instead of a scan of every secret. */
static uint16_t starts_with[1 << 16];

static unsigned pair_at(const char *s)
{
	return (unsigned)(unsigned char)s[0] << 8 | (unsigned char)(s[0] ? s[1] : 0);
}

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static const char *const level_names_lower[] = {"debug", "info", "warn", "error"};

void pp_log_setup(enum pp_log_level min, enum pp_log_format fmt, FILE *out)
{
	pthread_mutex_lock(&log_lock);
	log_min = min;
	log_fmt = fmt;
	log_out = out;
	pthread_mutex_unlock(&log_lock);
}

int pp_log_level_parse(const char *s, enum pp_log_level *out)
{
	if (!s)
		return PP_EINVALID;
	for (int i = PP_LOG_DEBUG; i <= PP_LOG_ERROR; i++) {
		if (!strcasecmp(s, level_names_lower[i])) {
			*out = (enum pp_log_level)i;
			return 0;
		}
	}
	if (!strcasecmp(s, "warning")) {
		*out = PP_LOG_WARN;
		return 0;
	}
	return PP_EINVALID;
}

static bool registered(const char *value, size_t n)
{
	for (size_t i = 0; i < npinned; i++)
		if (pinned[i].len == n && !memcmp(pinned[i].value, value, n))
			return true;
	for (size_t i = 0; i < nrotating; i++)
		if (rotating[i].len == n && !memcmp(rotating[i].value, value, n))
			return true;
	return false;
}

static void secret_add(const char *value, bool rotates)
{
	if (!value)
		return;
	size_t n = strlen(value);
	if (n < SECRET_MIN)
		return;
	pthread_mutex_lock(&log_lock);
	char *copy = registered(value, n) ? NULL : strdup(value);
	if (copy) {
		struct secret *slot;
		if (!rotates && npinned < PINNED_MAX) {
			slot = &pinned[npinned++];
		} else {
			slot = &rotating[rotating_next];
			rotating_next = (rotating_next + 1) % ROTATING_MAX;
			if (nrotating < ROTATING_MAX) {
				nrotating++;
			} else {
				starts_with[pair_at(slot->value)]--;
				free(slot->value);
			}
		}
		*slot = (struct secret){.value = copy, .len = n};
		starts_with[pair_at(copy)]++;
	}
	pthread_mutex_unlock(&log_lock);
}

void pp_secret_register(const char *value)
{
	secret_add(value, false);
}

void pp_secret_register_rotating(const char *value)
{
	secret_add(value, true);
}

void pp_secret_clear(void)
{
	pthread_mutex_lock(&log_lock);
	for (size_t i = 0; i < npinned; i++)
		free(pinned[i].value);
	for (size_t i = 0; i < nrotating; i++)
		free(rotating[i].value);
	npinned = nrotating = rotating_next = 0;
	memset(starts_with, 0, sizeof(starts_with));
	pthread_mutex_unlock(&log_lock);
}

/* The longest registered secret starting at s, or 0, so a secret that
 * contains another is replaced whole. Caller holds log_lock. */
static size_t secret_at(const char *s)
{
	if (!starts_with[pair_at(s)])
		return 0;
	size_t best = 0;
	for (size_t i = 0; i < npinned; i++)
		if (pinned[i].len > best && !strncmp(s, pinned[i].value, pinned[i].len))
			best = pinned[i].len;
	for (size_t i = 0; i < nrotating; i++)
		if (rotating[i].len > best && !strncmp(s, rotating[i].value, rotating[i].len))
			best = rotating[i].len;
	return best;
}

/* In place the marker only fits over secrets at least as long as itself;
 * shorter ones are masked with '*' so the text never grows. */
void pp_redact(char *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&log_lock);
	if (npinned + nrotating) {
		char *w = s;
		const char *r = s;
		while (*r) {
			size_t n = secret_at(r);
			if (!n) {
				*w++ = *r++;
				continue;
			}
			if (n >= sizeof(REDACTED) - 1) {
				memcpy(w, REDACTED, sizeof(REDACTED) - 1);
				w += sizeof(REDACTED) - 1;
			} else {
				memset(w, '*', n);
				w += n;
			}
			r += n;
		}
		*w = '\0';
	}
	pthread_mutex_unlock(&log_lock);
}

/* Copy s into out with secrets replaced. Caller holds log_lock. */
static void redact_into(struct pp_buf *out, const char *s)
{
	while (*s) {
		size_t n = secret_at(s);
		if (n) {
			pp_buf_puts(out, REDACTED);
			s += n;
			continue;
		}
		/* Copy the run of bytes up to the next secret at once. */
		size_t plain = 1;
		while (s[plain] && !secret_at(s + plain))
			plain++;
		pp_buf_append(out, s, plain);
		s += plain;
	}
}

static size_t utf8_seq_len(const unsigned char *p)
{
	unsigned char c = p[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* JSON string body: escapes, and invalid UTF-8 becomes U+FFFD so every
 * line stays parseable. */
static void put_json_escaped(struct pp_buf *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned char c = *p;
		switch (c) {
		case '"':
			pp_buf_puts(out, "\\\"");
			p++;
			continue;
		case '\\':
			pp_buf_puts(out, "\\\\");
			p++;
			continue;
		case '\n':
			pp_buf_puts(out, "\\n");
			p++;
			continue;
		case '\r':
			pp_buf_puts(out, "\\r");
			p++;
			continue;
		case '\t':
			pp_buf_puts(out, "\\t");
			p++;
			continue;
		default: break;
		}
		if (c < 0x20 || c == 0x7f) {
			pp_buf_printf(out, "\\u%04x", c);
			p++;
			continue;
		}
		size_t n = utf8_seq_len(p);
		if (!n) {
			pp_buf_puts(out, "\\ufffd");
			p++;
			continue;
		}
		pp_buf_append(out, p, n);
		p += n;
	}
}

/* Text lines: control characters are escaped so one call is one line and a
 * message cannot forge another entry. */
static void put_text_escaped(struct pp_buf *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '\n')
			pp_buf_puts(out, "\\n");
		else if (*p == '\r')
			pp_buf_puts(out, "\\r");
		else if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			pp_buf_printf(out, "\\x%02x", *p);
		else
			pp_buf_putc(out, (char)*p);
	}
}

static void format_ts(char *ts, size_t n)
{
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t o = strftime(ts, n, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + o, n - o, ".%03ldZ", now.tv_nsec / 1000000);
}

void pp_log(enum pp_log_level lvl, const char *fmt, ...)
{
	if (lvl < PP_LOG_DEBUG || lvl > PP_LOG_ERROR)
		lvl = PP_LOG_ERROR;
	pthread_mutex_lock(&log_lock);
	if (lvl < log_min) {
		pthread_mutex_unlock(&log_lock);
		return;
	}
	pthread_mutex_unlock(&log_lock);

	struct pp_buf raw, msg, line;
	pp_buf_init(&raw, LOG_MSG_MAX * 4);
	pp_buf_init(&msg, LOG_MSG_MAX * 4 + sizeof(REDACTED));
	pp_buf_init(&line, LOG_MSG_MAX * 8);
	va_list ap;
	va_start(ap, fmt);
	int frc = pp_buf_vprintf(&raw, fmt, ap);
	va_end(ap);
	char ts[40];
	format_ts(ts, sizeof(ts));

	pthread_mutex_lock(&log_lock);
	if (frc)
		pp_buf_puts(&msg, "(log message too long to format)");
	else
		redact_into(&msg, pp_buf_str(&raw));
	/* Cut only after redaction, so no part of a secret survives the cut. */
	if (msg.len > LOG_MSG_MAX) {
		msg.data[LOG_MSG_MAX] = '\0';
		msg.len = LOG_MSG_MAX;
		pp_buf_puts(&msg, "...[truncated]");
	}
	if (log_fmt == PP_LOG_JSON) {
		pp_buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
			      level_names_lower[lvl]);
		put_json_escaped(&line, pp_buf_str(&msg));
		pp_buf_puts(&line, "\"}\n");
	} else {
		pp_buf_printf(&line, "%s %s ", ts, level_names[lvl]);
		put_text_escaped(&line, pp_buf_str(&msg));
		pp_buf_putc(&line, '\n');
	}
	FILE *out = log_out ? log_out : stderr;
	fputs(pp_buf_str(&line), out);
	fflush(out);
	pthread_mutex_unlock(&log_lock);
	pp_buf_free(&raw);
	pp_buf_free(&msg);
	pp_buf_free(&line);
}
