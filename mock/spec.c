/* Shared parts of the spec validators: embedded files and the report. */
#include <stdio.h>
#include <string.h>

#include "mock/spec.h"

int pp_spec_blob(const char *name, const unsigned char **data, size_t *len, struct pp_error *err)
{
	for (const struct pp_spec_blob *b = pp_spec_blobs; b->name; b++) {
		if (strcmp(b->name, name) == 0) {
			*data = b->start;
			*len = (size_t)(b->end - b->start);
			return 0;
		}
	}
	return pp_fail(err, PP_ENOTFOUND, "spec %s is not embedded in this build", name);
}

/* The violations are written as they are added and read below n alone:
 * clearing them (8 KiB) cost every request the mock checked. */
void pp_spec_report_init(struct pp_spec_report *rep)
{
	rep->code = NULL;
	rep->n = 0;
	rep->total = 0;
}

void pp_spec_report_add(struct pp_spec_report *rep, const char *code, const char *field,
			const char *fmt, ...)
{
	va_list ap;
	struct pp_spec_violation *v;

	if (!rep->code)
		rep->code = code;
	rep->total++;
	if (rep->n >= PP_SPEC_MAX_VIOLATIONS)
		return;
	v = &rep->v[rep->n++];
	snprintf(v->field, sizeof(v->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(v->desc, sizeof(v->desc), fmt, ap);
	va_end(ap);
}
