/* AWS Query protocol forms and error codes (provision/aws_query.h). The
 * rules are botocore's (botocore/serialize.py: QuerySerializer,
 * EC2Serializer); the mock reads them back by the model
 * (mock/spec_botocore.c) and `make interop` has botocore serialise every
 * form again to compare. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"
#include "lib/xml.h"
#include "provision/aws_query.h"

/* Longest parameter name: "TagSpecification.1.Tag.12.Value" is 31. */
#define KEY_MAX 256

static int put(struct pp_buf *b, const char *key, const char *value, size_t len)
{
	static const char safe[] = "-_.~";

	if (pp_buf_putc(b, '&') || pp_buf_puts(b, key) || pp_buf_putc(b, '='))
		return PP_ENOMEM;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if (isalnum(c) || strchr(safe, c) ? pp_buf_putc(b, (char)c)
						  : pp_buf_printf(b, "%%%02X", c))
			return PP_ENOMEM;
	}
	return 0;
}

static int value(struct pp_buf *b, const char *prefix, const struct pp_json *v,
		 enum pp_awsq_style style)
{
	char sub[KEY_MAX];
	size_t i = 0;
	int rc = 0;

	switch (v->type) {
	case PP_JSON_OBJECT:
		pp_json_foreach (m, v) {
			if (!*m->key ||
			    strspn(m->key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					   "0123456789") != strlen(m->key) ||
			    (size_t)snprintf(sub, sizeof(sub), "%s%s%s", prefix, *prefix ? "." : "",
					     m->key) >= sizeof(sub))
				return PP_EINVALID;
			if ((rc = value(b, sub, m, style)))
				return rc;
		}
		return 0;
	case PP_JSON_ARRAY:
		if (!v->count && style == PP_AWSQ_QUERY)
			return put(b, prefix, "", 0);
		pp_json_foreach (e, v) {
			if ((size_t)snprintf(sub, sizeof(sub), "%s%s.%zu", prefix,
					     style == PP_AWSQ_EC2 ? "" : ".member",
					     ++i) >= sizeof(sub))
				return PP_EINVALID;
			if ((rc = value(b, sub, e, style)))
				return rc;
		}
		return 0;
	case PP_JSON_STRING:
	case PP_JSON_NUMBER: return put(b, prefix, v->str, v->len);
	case PP_JSON_BOOL: return put(b, prefix, v->b ? "true" : "false", v->b ? 4 : 5);
	default: return 0; /* null: an absent member */
	}
}

int pp_awsq_form(struct pp_buf *out, const char *action, const char *version,
		 const struct pp_json *params, enum pp_awsq_style style)
{
	if (pp_buf_printf(out, "Action=%s&Version=%s", action, version))
		return PP_ENOMEM;
	if (!params)
		return 0;
	if (!pp_json_is(params, PP_JSON_OBJECT))
		return PP_EINVALID;
	return value(out, "", params, style);
}

void pp_awsq_error_code(const char *body, size_t len, char *code, size_t size)
{
	struct pp_xml *x = NULL;
	struct pp_json *j = NULL;
	const char *c = NULL;

	code[0] = '\0';
	if (!len)
		return;
	if (body[0] == '{') {
		if (!pp_json_parse(body, len, NULL, &j, NULL) &&
		    (c = pp_json_get_string(j, "__type")))
			snprintf(code, size, "%s", strrchr(c, '#') ? strrchr(c, '#') + 1 : c);
		pp_json_free(j);
		return;
	}
	if (!pp_xml_parse(body, len, NULL, &x, NULL)) {
		c = pp_xml_path_text(x, "Error/Code");
		if (!c)
			c = pp_xml_path_text(x, "Errors/Error/Code");
		snprintf(code, size, "%s", c ? c : "");
	}
	pp_xml_free(x);
}
