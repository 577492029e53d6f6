/* Growable byte buffer with a hard cap fixed at creation. */
#ifndef PP_BUF_H
#define PP_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct pp_buf {
	char *data; /* always NUL-terminated when non-NULL */
	size_t len;
	size_t alloc;
	size_t max; /* appends beyond this fail with PP_ENOMEM */
};

#define PP_BUF_DEFAULT_MAX ((size_t)16 << 20)

void pp_buf_init(struct pp_buf *b, size_t max);
int pp_buf_append(struct pp_buf *b, const void *p, size_t n);
int pp_buf_puts(struct pp_buf *b, const char *s);
int pp_buf_putc(struct pp_buf *b, char c);
int pp_buf_printf(struct pp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int pp_buf_vprintf(struct pp_buf *b, const char *fmt, va_list ap);
void pp_buf_reset(struct pp_buf *b);
/* Hand the bytes to the caller (free()), leaving b empty. */
char *pp_buf_steal(struct pp_buf *b);
void pp_buf_free(struct pp_buf *b);
/* "" when empty, never NULL. */
const char *pp_buf_str(const struct pp_buf *b);

#endif
