#include "lib/buf.h"
#include "lib/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pp_buf_init(struct pp_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->max = max ? max : PP_BUF_DEFAULT_MAX;
}

static int reserve(struct pp_buf *b, size_t extra)
{
	if (extra > b->max || b->len > b->max - extra)
		return PP_ENOMEM;
	size_t need = b->len + extra + 1;
	if (need <= b->alloc)
		return 0;
	size_t n = b->alloc ? b->alloc : 64;
	while (n < need)
		n *= 2;
	if (n > b->max + 1)
		n = b->max + 1;
	char *p = realloc(b->data, n);
	if (!p)
		return PP_ENOMEM;
	b->data = p;
	b->alloc = n;
	return 0;
}

int pp_buf_append(struct pp_buf *b, const void *p, size_t n)
{
	int rc = reserve(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int pp_buf_puts(struct pp_buf *b, const char *s)
{
	return pp_buf_append(b, s, strlen(s));
}

/* Most callers write a byte at a time (escapes, log lines): with room,
 * no reserve() and no copy (issue 23). */
int pp_buf_putc(struct pp_buf *b, char c)
{
	if (b->alloc - b->len > 1 && b->len < b->max) {
		b->data[b->len++] = c;
		b->data[b->len] = '\0';
		return 0;
	}
	return pp_buf_append(b, &c, 1);
}

int pp_buf_vprintf(struct pp_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return PP_EINVALID;
	int rc = reserve(b, (size_t)n);
	if (rc)
		return rc;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int pp_buf_printf(struct pp_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = pp_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void pp_buf_reset(struct pp_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *pp_buf_steal(struct pp_buf *b)
{
	char *p = b->data;
	if (!p)
		p = calloc(1, 1);
	b->data = NULL;
	b->len = b->alloc = 0;
	return p;
}

void pp_buf_free(struct pp_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->alloc = 0;
}

const char *pp_buf_str(const struct pp_buf *b)
{
	return b->data ? b->data : "";
}
