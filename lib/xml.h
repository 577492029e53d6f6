/* XML documents into a small read-only tree, on expat: what the AWS Query
 * protocol (IAM, EC2, STS) answers. Only elements and their text are kept
 * (attributes and namespaces are not: Query answers carry their data in
 * elements). Input is capped in size, nesting depth and element count,
 * checked while expat reads, and any DOCTYPE is refused, so no entity is
 * ever declared or expanded (only XML's five predefined entities and
 * character references are decoded). */
#ifndef PP_XML_H
#define PP_XML_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/err.h"

struct pp_xml {
	char *name;   /* local name: the namespace prefix is dropped */
	char *text;   /* the element's own character data, "" when none (never NULL) */
	size_t len;   /* bytes in text (character references may produce NUL) */
	size_t count; /* child elements */
	struct pp_xml *child, *last, *next, *parent;
};

struct pp_xml_limits {
	size_t max_bytes;    /* 0: PP_XML_MAX_BYTES */
	int max_depth;	     /* 0: PP_XML_MAX_DEPTH nested elements */
	size_t max_elements; /* 0: PP_XML_MAX_ELEMENTS */
};

#define PP_XML_MAX_BYTES    ((size_t)8 << 20)
#define PP_XML_MAX_DEPTH    64
#define PP_XML_MAX_ELEMENTS ((size_t)256 << 10)

/* Parse text (lim may be NULL for the defaults). On error *out is NULL and
 * err->msg reads "XML LINE:COL: what" (PP_EINVALID) or names the cap that
 * was hit (PP_ENOMEM). Caller frees the tree with pp_xml_free. */
int pp_xml_parse(const char *text, size_t len, const struct pp_xml_limits *lim, struct pp_xml **out,
		 struct pp_error *err);
void pp_xml_free(struct pp_xml *x);

/* First child element named name; NULL when absent (x may be NULL). */
const struct pp_xml *pp_xml_child(const struct pp_xml *x, const char *name);
/* Follow a '/'-separated path of child names ("vpcSet/item/vpcId"): the
 * first match at each step. NULL when absent. */
const struct pp_xml *pp_xml_path(const struct pp_xml *x, const char *path);
/* Text of the element at path; NULL when absent. */
const char *pp_xml_path_text(const struct pp_xml *x, const char *path);
/* Next sibling with the same name as x, NULL at the end: walks the
 * <item>/<member> lists of Query answers. */
const struct pp_xml *pp_xml_next_same(const struct pp_xml *x);

#define pp_xml_foreach(it, parent)                                                                 \
	for (const struct pp_xml *it = (parent) ? (parent)->child : NULL; it; it = it->next)

#endif
