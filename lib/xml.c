/* XML into a small tree on expat (lib/xml.h). expat reads the whole input in
 * one call; the handlers below build the tree and stop the parser as soon as
 * a cap is passed or a DOCTYPE starts, so a hostile document costs at most
 * its own size in time and memory. */
#include <expat.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xml.h"

/* A node with its text buffer's capacity, which callers need not see. */
struct node {
	struct pp_xml x;
	size_t alloc;
};

struct build {
	XML_Parser p;
	struct pp_xml *root, *cur;
	int depth, max_depth;
	size_t elements, max_elements;
	/* Why a handler stopped the parser; code 0 while none did. */
	int code;
	char why[160];
};

static char empty_text[1] = "";

void pp_xml_free(struct pp_xml *x)
{
	while (x) {
		struct pp_xml *next = x->next;

		pp_xml_free(x->child); /* recursion bounded by the depth cap */
		free(x->name);
		if (x->text != empty_text)
			free(x->text);
		free(x);
		x = next;
	}
}

static void stop(struct build *b, int code, const char *why)
{
	if (b->code)
		return;
	b->code = code;
	snprintf(b->why, sizeof(b->why), "%s", why);
	XML_StopParser(b->p, XML_FALSE);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	struct build *b = ud;
	const char *local = strrchr(name, ':');
	struct node *n;

	(void)attrs;
	if (b->code)
		return;
	if (b->depth >= b->max_depth) {
		char why[96];

		snprintf(why, sizeof(why), "elements nested deeper than %d levels", b->max_depth);
		stop(b, PP_ENOMEM, why);
		return;
	}
	if (b->elements >= b->max_elements) {
		char why[96];

		snprintf(why, sizeof(why), "more than %zu elements", b->max_elements);
		stop(b, PP_ENOMEM, why);
		return;
	}
	n = calloc(1, sizeof(*n));
	if (!n || !(n->x.name = strdup(local ? local + 1 : name))) {
		free(n);
		stop(b, PP_ENOMEM, "out of memory");
		return;
	}
	n->x.text = empty_text;
	n->x.parent = b->cur;
	if (!b->cur) {
		b->root = &n->x;
	} else {
		if (b->cur->last)
			b->cur->last->next = &n->x;
		else
			b->cur->child = &n->x;
		b->cur->last = &n->x;
		b->cur->count++;
	}
	b->cur = &n->x;
	b->depth++;
	b->elements++;
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct build *b = ud;

	(void)name;
	if (b->code || !b->cur)
		return;
	b->cur = b->cur->parent;
	b->depth--;
}

/* Text arrives in pieces: each is appended to the open element's own text.
 * The total never exceeds the input's size (entities only shrink). */
static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct build *b = ud;
	struct node *n = (struct node *)b->cur;
	size_t need;

	if (b->code || !n || len <= 0)
		return;
	need = n->x.len + (size_t)len + 1;
	if (need > n->alloc) {
		size_t alloc = n->alloc ? n->alloc : 32;
		char *t;

		while (alloc < need)
			alloc *= 2;
		t = realloc(n->x.text == empty_text ? NULL : n->x.text, alloc);
		if (!t) {
			stop(b, PP_ENOMEM, "out of memory");
			return;
		}
		n->x.text = t;
		n->alloc = alloc;
	}
	memcpy(n->x.text + n->x.len, s, (size_t)len);
	n->x.len += (size_t)len;
	n->x.text[n->x.len] = '\0';
}

/* No document pushpool reads has a DTD: refusing it keeps every entity
 * declaration, internal or external, out of reach. */
static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	stop(ud, PP_EINVALID, "a DOCTYPE is refused (no entity is ever declared or expanded)");
}

int pp_xml_parse(const char *text, size_t len, const struct pp_xml_limits *lim, struct pp_xml **out,
		 struct pp_error *err)
{
	size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : PP_XML_MAX_BYTES;
	struct build b = {
		.max_depth = lim && lim->max_depth > 0 ? lim->max_depth : PP_XML_MAX_DEPTH,
		.max_elements = lim && lim->max_elements ? lim->max_elements : PP_XML_MAX_ELEMENTS,
	};
	enum XML_Status st;
	int rc = 0;

	*out = NULL;
	if (len > max_bytes || len > (size_t)INT_MAX)
		return pp_fail(err, PP_ENOMEM,
			       "XML: document of %zu bytes is over the %zu-byte cap", len,
			       max_bytes);
	/* The encoding is fixed: a declaration naming another one is ignored. */
	b.p = XML_ParserCreate("UTF-8");
	if (!b.p)
		return pp_fail(err, PP_ENOMEM, "XML: out of memory");
	XML_SetUserData(b.p, &b);
	XML_SetElementHandler(b.p, on_start, on_end);
	XML_SetCharacterDataHandler(b.p, on_text);
	XML_SetStartDoctypeDeclHandler(b.p, on_doctype);
	XML_SetParamEntityParsing(b.p, XML_PARAM_ENTITY_PARSING_NEVER);
	st = XML_Parse(b.p, text ? text : "", (int)len, XML_TRUE);
	if (b.code) {
		rc = pp_fail(err, b.code, "XML %lu:%lu: %s",
			     (unsigned long)XML_GetCurrentLineNumber(b.p),
			     (unsigned long)XML_GetCurrentColumnNumber(b.p) + 1, b.why);
	} else if (st != XML_STATUS_OK) {
		rc = pp_fail(err, PP_EINVALID, "XML %lu:%lu: %s",
			     (unsigned long)XML_GetCurrentLineNumber(b.p),
			     (unsigned long)XML_GetCurrentColumnNumber(b.p) + 1,
			     XML_ErrorString(XML_GetErrorCode(b.p)));
	} else if (!b.root) {
		rc = pp_fail(err, PP_EINVALID, "XML: no root element");
	}
	XML_ParserFree(b.p);
	if (rc) {
		pp_xml_free(b.root);
		return rc;
	}
	*out = b.root;
	return 0;
}

const struct pp_xml *pp_xml_child(const struct pp_xml *x, const char *name)
{
	pp_xml_foreach(c, x) if (strcmp(c->name, name) == 0) return c;
	return NULL;
}

const struct pp_xml *pp_xml_path(const struct pp_xml *x, const char *path)
{
	char step[128];

	while (x && *path) {
		size_t n = strcspn(path, "/");

		if (n == 0 || n >= sizeof(step))
			return NULL;
		memcpy(step, path, n);
		step[n] = '\0';
		x = pp_xml_child(x, step);
		path += n + (path[n] == '/');
	}
	return x;
}

const char *pp_xml_path_text(const struct pp_xml *x, const char *path)
{
	const struct pp_xml *e = pp_xml_path(x, path);

	return e ? e->text : NULL;
}

const struct pp_xml *pp_xml_next_same(const struct pp_xml *x)
{
	for (const struct pp_xml *s = x ? x->next : NULL; s; s = s->next)
		if (strcmp(s->name, x->name) == 0)
			return s;
	return NULL;
}
