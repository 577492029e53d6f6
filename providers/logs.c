/* The lines a logs op reads (provider.h, struct pp_logs): shared by every
 * cloud's logs file (ecs_logs.c, cloudrun_logs.c, aci_logs.c,
 * modal_logs.c), capped so no answer makes us keep more than a page. */
#include <stdlib.h>
#include <string.h>

#include "providers/provider.h"

static int add_line(struct pp_logs *l, long long ts_ms, const char *p, size_t n,
		    struct pp_error *err)
{
	if (n && p[n - 1] == '\r')
		n--;
	if (l->n >= PP_LOGS_MAX_LINES || l->bytes + n > PP_LOGS_MAX_BYTES)
		return pp_fail(err, PP_ENOMEM, "a page of logs holds over %d lines or %zu bytes",
			       PP_LOGS_MAX_LINES, PP_LOGS_MAX_BYTES);
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct pp_log_line *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return pp_fail(err, PP_ENOMEM, "out of memory reading logs");
		l->v = v;
		l->cap = cap;
	}
	char *t = malloc(n + 1);
	if (!t)
		return pp_fail(err, PP_ENOMEM, "out of memory reading logs");
	memcpy(t, p, n);
	t[n] = '\0';
	l->v[l->n].ts_ms = ts_ms;
	l->v[l->n].text = t;
	l->n++;
	l->bytes += n;
	return 0;
}

int pp_logs_add(struct pp_logs *l, long long ts_ms, const char *text, size_t len,
		struct pp_error *err)
{
	if (l->since_ms > 0 && ts_ms > 0 && ts_ms < l->since_ms)
		return 0;
	size_t i = 0;
	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (text + i)) : len - i;
		int rc = add_line(l, ts_ms, text + i, n, err);
		if (rc)
			return rc;
		i += n + (nl ? 1 : 0);
	}
	return 0;
}

void pp_logs_clear(struct pp_logs *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].text);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = l->bytes = 0;
	l->more = false;
}
