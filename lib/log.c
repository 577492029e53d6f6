/* Log lines (text or JSON) with every registered secret redacted. */
#include "lib/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/time.h"

/* A message longer than this is cut (after redaction) and marked. */
#define LOG_MSG_MAX  ((size_t)64 << 10)
#define SECRET_MIN   4
#define PINNED_MAX   4096
#define ROTATING_MAX 8192
#define REDACTED     "[REDACTED]"
/* The value, percent-encoded 4 ways, base64 and base64url at 3 alignments
 * each, JSON-escaped 6 ways, base64 and base64url whole (see forms_of). */
#define FORMS_MAX 19

/* The lines gathered under pp_log_hold go out before they would pass this. */
#define LOG_HOLD_MAX ((size_t)16 << 10)
/* pp_log keeps no more room than this from one line to the next. */
#define LOG_KEEP_MAX ((size_t)4 << 10)

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum pp_log_level log_min = PP_LOG_INFO;
static enum pp_log_format log_fmt = PP_LOG_TEXT;
static FILE *log_out;
static bool log_holding;
static struct pp_buf log_held = {.max = LOG_HOLD_MAX};
/* A line's redacted message and the line itself (pp_log). */
static struct pp_buf log_msg = {.max = LOG_MSG_MAX * 4 + sizeof(REDACTED)};
static struct pp_buf log_line = {.max = LOG_MSG_MAX * 8};

/* Registered secrets. Long-lived ones (config values, key files) stay for
 * the life of the process. Rotating ones (access tokens, temporary keys,
 * per-run secret values) go in a ring whose oldest entry makes room: a
 * daemon that runs for months keeps redacting its newest tokens, where a
 * full fixed table would silently stop registering them. Each secret keeps
 * every form it travels in (forms[0] is the value itself): a server that
 * echoes a form body, a Basic header or a JSON request shows an encoding,
 * not the value. */
struct form {
	char *text;
	size_t len;
	struct form *next; /* in its bucket */
};
struct secret {
	struct form *forms;
	size_t nforms;
};
static struct secret pinned[PINNED_MAX];
static size_t npinned;
static struct secret rotating[ROTATING_MAX];
static size_t nrotating, rotating_next;
/* Every form, listed under its first two bytes: a position of a line is
 * compared only with the forms that start as it does, however many
 * secrets (each with up to FORMS_MAX forms) are registered. */
static struct form *bucket[1 << 16];

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
		if (pinned[i].forms[0].len == n && !memcmp(pinned[i].forms[0].text, value, n))
			return true;
	for (size_t i = 0; i < nrotating; i++)
		if (rotating[i].forms[0].len == n && !memcmp(rotating[i].forms[0].text, value, n))
			return true;
	return false;
}

static void secret_free(struct secret *s)
{
	for (size_t i = 0; i < s->nforms; i++) {
		struct form **pp = &bucket[pair_at(s->forms[i].text)];
		while (*pp != &s->forms[i])
			pp = &(*pp)->next;
		*pp = s->forms[i].next;
		free(s->forms[i].text);
	}
	free(s->forms);
	*s = (struct secret){0};
}

/* Length of the valid UTF-8 sequence at p (NUL-terminated), 0 if invalid;
 * *cp gets its code point. */
static size_t utf8_decode(const unsigned char *p, uint32_t *cp)
{
	unsigned char c = p[0];
	size_t n;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		*cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		*cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		*cp = c & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && (*cp < 0x800 || (*cp >= 0xd800 && *cp <= 0xdfff))) ||
	    (n == 4 && (*cp < 0x10000 || *cp > 0x10ffff)))
		return 0;
	return n;
}

/* application/x-www-form-urlencoded and RFC 3986 percent-encoding: every
 * byte but ALPHA / DIGIT / "-._~" as %XX, in either hex case; a space as
 * "+" (forms) or "%20" (URLs). */
static void form_percent(struct pp_buf *b, const unsigned char *v, bool lower, bool plus)
{
	const char *hex = lower ? "0123456789abcdef" : "0123456789ABCDEF";
	for (; *v; v++) {
		if ((*v >= 'A' && *v <= 'Z') || (*v >= 'a' && *v <= 'z') ||
		    (*v >= '0' && *v <= '9') || strchr("-._~", *v))
			pp_buf_putc(b, (char)*v);
		else if (*v == ' ' && plus)
			pp_buf_putc(b, '+');
		else
			pp_buf_printf(b, "%%%c%c", hex[*v >> 4], hex[*v & 15]);
	}
}

/* base64 (or base64url) of the value as it reads when it starts skip bytes
 * into a 3-byte group of a longer text (a Basic header's "id:secret"):
 * only the characters made of the value's bits alone, since those around
 * them depend on the neighbouring bytes and padding. whole (with skip 0):
 * the value encoded alone, its last bits and padding included. */
static void form_base64(struct pp_buf *b, const unsigned char *v, size_t n, unsigned skip, bool url,
			bool whole)
{
	const char *tbl = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			      : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t first = (8 * skip + 5) / 6, c = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < skip + n; i++) {
		acc = (acc << 8 | (i < skip ? 0 : v[i - skip])) & 0xffff;
		for (bits += 8; bits >= 6; bits -= 6, c++)
			if (c >= first)
				pp_buf_putc(b, tbl[(acc >> (bits - 6)) & 63]);
	}
	if (whole && bits)
		pp_buf_putc(b, tbl[(acc << (6 - bits)) & 63]);
	for (size_t k = n % 3; whole && !url && k && k < 3; k++)
		pp_buf_putc(b, '=');
}

static void put_u4(struct pp_buf *b, uint32_t unit, bool upper)
{
	if (upper)
		pp_buf_printf(b, "\\u%04X", (unsigned)unit);
	else
		pp_buf_printf(b, "\\u%04x", (unsigned)unit);
}

/* A JSON string body: '"', '\\' and control characters escaped, and as
 * other encoders also do, '/' as "\/" and non-ASCII as \uXXXX (UTF-16, in
 * either hex case) when asked. */
static void form_json(struct pp_buf *b, const unsigned char *v, bool slash, int non_ascii)
{
	while (*v) {
		uint32_t cp;
		size_t n = utf8_decode(v, &cp);
		const char *esc = *v == '"'	       ? "\\\""
				  : *v == '\\'	       ? "\\\\"
				  : *v == '\n'	       ? "\\n"
				  : *v == '\r'	       ? "\\r"
				  : *v == '\t'	       ? "\\t"
				  : *v == '\b'	       ? "\\b"
				  : *v == '\f'	       ? "\\f"
				  : *v == '/' && slash ? "\\/"
						       : NULL;
		if (esc) {
			pp_buf_puts(b, esc);
		} else if (*v < 0x20) {
			put_u4(b, *v, non_ascii == 2);
		} else if (n > 1 && non_ascii) {
			if (cp >= 0x10000)
				put_u4(b, 0xd800 + ((cp - 0x10000) >> 10), non_ascii == 2);
			put_u4(b, cp >= 0x10000 ? 0xdc00 + ((cp - 0x10000) & 0x3ff) : cp,
			       non_ascii == 2);
		} else {
			pp_buf_append(b, v, n ? n : 1);
		}
		v += n ? n : 1;
	}
}

/* The value's forms, each once: the value, then its encodings. */
static int forms_of(const char *value, struct form **out, size_t *nout)
{
	const unsigned char *v = (const unsigned char *)value;
	size_t n = strlen(value), count = 0;
	struct form *f = calloc(FORMS_MAX, sizeof(*f));
	if (!f)
		return PP_ENOMEM;
	struct pp_buf b;
	pp_buf_init(&b, 0);
	for (int k = 0; k < FORMS_MAX; k++) {
		pp_buf_reset(&b);
		if (k == 0)
			pp_buf_puts(&b, value);
		else if (k <= 4)
			form_percent(&b, v, k & 1, k <= 2);
		else if (k <= 10)
			form_base64(&b, v, n, (unsigned)(k - 5) % 3, k > 7, false);
		else if (k <= 16)
			form_json(&b, v, k & 1, (k - 11) / 2);
		else
			form_base64(&b, v, n, 0, k == 18, true);
		if (b.len < SECRET_MIN)
			continue;
		bool seen = false;
		for (size_t i = 0; i < count && !seen; i++)
			seen = f[i].len == b.len && !memcmp(f[i].text, b.data, b.len);
		if (seen)
			continue;
		if (!(f[count].text = strdup(pp_buf_str(&b)))) {
			pp_buf_free(&b);
			for (size_t i = 0; i < count; i++)
				free(f[i].text);
			free(f);
			return PP_ENOMEM;
		}
		f[count++].len = b.len;
	}
	pp_buf_free(&b);
	*out = f;
	*nout = count;
	return 0;
}

static void secret_add(const char *value, bool rotates)
{
	if (!value || strlen(value) < SECRET_MIN)
		return;
	/* Most registrations repeat a value already held (the same secret
	 * variable in every run): skip working out its forms. The check under
	 * the lock below stays, for a value registered in between. */
	pthread_mutex_lock(&log_lock);
	bool known = registered(value, strlen(value));
	pthread_mutex_unlock(&log_lock);
	if (known)
		return;
	struct secret sec = {0};
	if (forms_of(value, &sec.forms, &sec.nforms))
		return;
	pthread_mutex_lock(&log_lock);
	if (!registered(value, strlen(value))) {
		struct secret *slot;
		if (!rotates && npinned < PINNED_MAX) {
			slot = &pinned[npinned++];
		} else {
			slot = &rotating[rotating_next];
			rotating_next = (rotating_next + 1) % ROTATING_MAX;
			if (nrotating < ROTATING_MAX)
				nrotating++;
			else
				secret_free(slot);
		}
		*slot = sec;
		for (size_t i = 0; i < sec.nforms; i++) {
			struct form **head = &bucket[pair_at(sec.forms[i].text)];
			sec.forms[i].next = *head;
			*head = &sec.forms[i];
		}
		sec = (struct secret){0};
	}
	pthread_mutex_unlock(&log_lock);
	for (size_t i = 0; i < sec.nforms; i++)
		free(sec.forms[i].text);
	free(sec.forms);
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
		secret_free(&pinned[i]);
	for (size_t i = 0; i < nrotating; i++)
		secret_free(&rotating[i]);
	npinned = nrotating = rotating_next = 0;
	memset(bucket, 0, sizeof(bucket));
	pthread_mutex_unlock(&log_lock);
}

/* The longest form of a registered secret starting at s, or 0, so a
 * secret that contains another is replaced whole. Caller holds log_lock. */
static size_t secret_at(const char *s)
{
	size_t best = 0;
	for (const struct form *f = bucket[pair_at(s)]; f; f = f->next)
		if (f->len > best && !strncmp(s, f->text, f->len))
			best = f->len;
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
		/* Copy the run of bytes up to the next secret at once; most
		 * positions start no form at all, told by their empty bucket
		 * without a call. */
		size_t plain = 1;
		while (s[plain] && (!bucket[pair_at(s + plain)] || !secret_at(s + plain)))
			plain++;
		pp_buf_append(out, s, plain);
		s += plain;
	}
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
		uint32_t cp;
		size_t n = utf8_decode(p, &cp);
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
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		/* The run of bytes that need no escape, appended at once (the
		 * NUL ends it as a control character). */
		const unsigned char *q = p;
		while (*q >= 0x20 ? *q != 0x7f : *q == '\t')
			q++;
		pp_buf_append(out, p, (size_t)(q - p));
		p = q;
		if (!*p)
			break;
		if (*p == '\n')
			pp_buf_puts(out, "\\n");
		else if (*p == '\r')
			pp_buf_puts(out, "\\r");
		else
			pp_buf_printf(out, "\\x%02x", *p);
		p++;
	}
}

/* Under log_lock. */
static void write_out(const char *text)
{
	FILE *out = log_out ? log_out : stderr;
	fputs(text, out);
	fflush(out);
}

/* Under log_lock. */
static void write_held(void)
{
	if (!log_held.len)
		return;
	write_out(pp_buf_str(&log_held));
	pp_buf_reset(&log_held);
}

void pp_log_hold(void)
{
	pthread_mutex_lock(&log_lock);
	log_holding = true;
	pthread_mutex_unlock(&log_lock);
}

void pp_log_flush(void)
{
	pthread_mutex_lock(&log_lock);
	write_held();
	pthread_mutex_unlock(&log_lock);
}

void pp_log_release(void)
{
	pthread_mutex_lock(&log_lock);
	log_holding = false;
	write_held();
	pp_buf_free(&log_held);
	pp_buf_free(&log_msg);
	pp_buf_free(&log_line);
	pthread_mutex_unlock(&log_lock);
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

	struct pp_buf raw;
	pp_buf_init(&raw, LOG_MSG_MAX * 4);
	/* Most messages fit a line on the stack: formatted once, not measured
	 * first, and read from there. */
	char first[512];
	const char *text = first;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(first, sizeof(first), fmt, ap);
	va_end(ap);
	int frc = 0;
	if (n < 0 || (size_t)n >= sizeof(first)) {
		va_start(ap, fmt);
		frc = pp_buf_vprintf(&raw, fmt, ap);
		va_end(ap);
		text = pp_buf_str(&raw);
	}
	char ts[PP_TIME_LEN];
	pp_time_format(pp_wall_ms(), true, ts);

	pthread_mutex_lock(&log_lock);
	/* The line's buffers are kept from one line to the next (under
	 * log_lock), so a line costs no allocation; a long line's room is
	 * given back below. */
	struct pp_buf msg = log_msg, line = log_line;
	pp_buf_reset(&msg);
	pp_buf_reset(&line);
	if (frc)
		pp_buf_puts(&msg, "(log message too long to format)");
	else
		redact_into(&msg, text);
	/* Cut only after redaction, so no part of a secret survives the cut. */
	if (msg.len > LOG_MSG_MAX) {
		msg.data[LOG_MSG_MAX] = '\0';
		msg.len = LOG_MSG_MAX;
		pp_buf_puts(&msg, "...[truncated]");
	}
	if (log_fmt == PP_LOG_JSON) {
		pp_buf_puts(&line, "{\"ts\":\"");
		pp_buf_puts(&line, ts);
		pp_buf_puts(&line, "\",\"level\":\"");
		pp_buf_puts(&line, level_names_lower[lvl]);
		pp_buf_puts(&line, "\",\"msg\":\"");
		put_json_escaped(&line, pp_buf_str(&msg));
		pp_buf_puts(&line, "\"}\n");
	} else {
		pp_buf_puts(&line, ts);
		pp_buf_putc(&line, ' ');
		pp_buf_puts(&line, level_names[lvl]);
		pp_buf_putc(&line, ' ');
		put_text_escaped(&line, pp_buf_str(&msg));
		pp_buf_putc(&line, '\n');
	}
	if (!log_holding || lvl >= PP_LOG_WARN || pp_buf_append(&log_held, line.data, line.len)) {
		write_held();
		write_out(pp_buf_str(&line));
	}
	if (msg.alloc > LOG_KEEP_MAX)
		pp_buf_free(&msg);
	if (line.alloc > LOG_KEEP_MAX)
		pp_buf_free(&line);
	log_msg = msg;
	log_line = line;
	pthread_mutex_unlock(&log_lock);
	pp_buf_free(&raw);
}
