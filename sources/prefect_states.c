#include "sources/prefect_states.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/time.h"
#include "render/render.h"

#define BLOCK_PREFIX	"prefect.blocks."
#define VARIABLE_PREFIX "prefect.variables."
#define REF_DEPTH_MAX	64

int pp_prefect_time_parse(const char *iso, int64_t *ms)
{
	return pp_time_parse(iso, PP_TIME_ZONE_OPTIONAL, ms);
}

void pp_prefect_time_format(int64_t ms, char *out, size_t n)
{
	char t[PP_TIME_LEN];
	pp_time_format(ms, true, t);
	snprintf(out, n, "%s", t);
}

const char *pp_prefect_state_for(enum pp_store_state st)
{
	switch (st) {
	case PP_ST_FAILED:
	case PP_ST_CRASHED:
	case PP_ST_DEAD: return "CRASHED";
	case PP_ST_CANCELLED: return "CANCELLED";
	default: return NULL;
	}
}

bool pp_prefect_claim_ours(const struct pp_json *answer, const char *transition_id)
{
	const char *status = pp_json_get_string(answer, "status");
	if (status && !strcmp(status, "ACCEPT"))
		return true;
	const struct pp_json *st = pp_json_get(answer, "state");
	const char *tid = pp_json_string(pp_json_path(st, "state_details.transition_id"));
	return status && !strcmp(status, "REJECT") && transition_id && tid &&
	       !strcmp(tid, transition_id);
}

bool pp_prefect_state_final(const char *type)
{
	static const char *const final[] = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED", NULL};
	for (size_t i = 0; type && final[i]; i++)
		if (!strcmp(type, final[i]))
			return true;
	return false;
}

bool pp_prefect_report_wanted(const char *want, const char *current)
{
	return want && !pp_prefect_state_final(current);
}

bool pp_prefect_same_attempt(const char *type, int64_t state_ms, const char *infra_pid,
			     const char *ours, int64_t ended_ms)
{
	if (infra_pid && *infra_pid && ours && *ours && strcmp(infra_pid, ours))
		return false;
	/* A SCHEDULED from before the end is the flow's own AwaitingRetry,
	 * set during this attempt: a worker crashes that too. */
	bool live = type && (!strcmp(type, "PENDING") || !strcmp(type, "RUNNING") ||
			     !strcmp(type, "SCHEDULED"));
	return !(live && state_ms > ended_ms);
}

/* Swap node's content for val's, keeping node's key and place; val is
 * freed, also on failure. */
static int replace_value(struct pp_json *node, struct pp_json *val, struct pp_error *err)
{
	size_t len = val->len;
	char *str = pp_json_take_str(val);
	if (val->str) {
		pp_json_free(val);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	pp_json_own_str(node, str, len);
	node->type = val->type;
	node->num = val->num;
	node->b = val->b;
	node->count = val->count;
	node->child = val->child;
	node->last = val->last;
	for (struct pp_json *c = node->child; c; c = c->next)
		c->parent = node;
	val->child = val->last = NULL;
	val->count = 0;
	pp_json_free(val);
	return 0;
}

/* Where a walk is in a tree: the node's key, or index, under its parent's
 * place (up NULL: the root). The JSON path it stands for ("$.a[0].b") is
 * written out only for an error message (place_fail, place_prefix), not
 * for each node a walk passes. */
struct place {
	const struct place *up;
	const char *key; /* in_object: the member's key; else element idx */
	size_t idx;
	bool in_object;
};

/* Long enough for any path an error message has room for. */
#define PLACE_MAX PP_ERRMSG_MAX

/* at's JSON path into out (n bytes), cut short when longer. */
static const char *place_path(const struct place *at, char *out, size_t n)
{
	if (!at->up) {
		snprintf(out, n, "$");
		return out;
	}
	place_path(at->up, out, n);
	size_t len = strlen(out);
	if (at->in_object)
		snprintf(out + len, n - len, ".%s", at->key);
	else
		snprintf(out + len, n - len, "[%zu]", at->idx);
	return out;
}

/* pp_fail, the message after at's JSON path and ": ". */
static int place_fail(struct pp_error *err, int code, const struct place *at, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int place_fail(struct pp_error *err, int code, const struct place *at, const char *fmt, ...)
{
	char where[PLACE_MAX], msg[PP_ERRMSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return pp_fail(err, code, "%s: %s", place_path(at, where, sizeof(where)), msg);
}

/* err's message after at's JSON path and ": ". */
static int place_prefix(struct pp_error *err, const struct place *at)
{
	char where[PLACE_MAX];
	return pp_error_prefix(err, "%s: ", place_path(at, where, sizeof(where)));
}

/* "type.name[.field...]" -> the referenced value (caller frees). */
static int lookup_ref(const char *ref, size_t n, pp_prefect_block_fetch fetch, void *ud,
		      const struct place *at, struct pp_json **out, struct pp_error *err)
{
	char buf[512], *save = NULL;
	if (n >= sizeof(buf))
		return place_fail(err, PP_EINVALID, at, "block reference too long");
	memcpy(buf, ref, n);
	buf[n] = '\0';
	char *slug = strtok_r(buf, ".", &save);
	char *name = strtok_r(NULL, ".", &save);
	if (!slug || !name)
		return place_fail(err, PP_EINVALID, at,
				  "block reference \"" BLOCK_PREFIX
				  "%.*s\" needs a type and a name",
				  (int)n, ref);
	struct pp_json *data = NULL;
	int rc = fetch(ud, slug, name, &data, err);
	if (rc)
		return place_prefix(err, at);
	const struct pp_json *v = data;
	if (data && data->count == 1 && pp_json_get(data, "value"))
		v = pp_json_get(data, "value");
	for (char *f = strtok_r(NULL, ".", &save); f && v; f = strtok_r(NULL, ".", &save))
		v = pp_json_get(v, f);
	if (!v) {
		pp_json_free(data);
		return place_fail(err, PP_EINVALID, at,
				  "block %s/%s has no field named in \"%.*s\"", slug, name, (int)n,
				  ref);
	}
	*out = pp_json_clone(v);
	pp_json_free(data);
	return *out ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
}

/* Next "{{ PREFIX.REF }}" at or after from (prefix "prefect.blocks." or
 * "prefect.variables."): bounds of the whole placeholder and of REF. */
static bool next_ref_of(const char *prefix, const char *s, size_t len, size_t from, size_t *start,
			size_t *end, size_t *ref, size_t *ref_len)
{
	size_t plen = strlen(prefix);
	for (size_t i = from; i + 1 < len; i++) {
		if (s[i] != '{' || s[i + 1] != '{')
			continue;
		size_t p = i + 2;
		while (p < len && isspace((unsigned char)s[p]))
			p++;
		if (len - p < plen || memcmp(s + p, prefix, plen))
			continue;
		p += plen;
		size_t r = p;
		while (p < len && !isspace((unsigned char)s[p]) && s[p] != '}')
			p++;
		size_t rl = p - r;
		while (p < len && isspace((unsigned char)s[p]))
			p++;
		if (p + 1 < len && s[p] == '}' && s[p + 1] == '}' && rl) {
			*start = i;
			*end = p + 2;
			*ref = r;
			*ref_len = rl;
			return true;
		}
	}
	return false;
}

static bool next_ref(const char *s, size_t len, size_t from, size_t *start, size_t *end,
		     size_t *ref, size_t *ref_len)
{
	return next_ref_of(BLOCK_PREFIX, s, len, from, start, end, ref, ref_len);
}

/* ---- walking a JSON tree ---- */

/* What a walk does at one node (at: where it is, depth: 0 at the root):
 * 0 to go on into its members, 1 when done with it, or an error. */
typedef int (*node_visit)(struct pp_json *j, const struct place *at, int depth, void *arg,
			  struct pp_error *err);

static int walk_at(struct pp_json *j, const struct place *at, int depth, node_visit visit,
		   void *arg, struct pp_error *err)
{
	/* What a visit puts in place of a string is not walked. */
	bool members = j->type == PP_JSON_OBJECT || j->type == PP_JSON_ARRAY;
	int rc = visit(j, at, depth, arg, err);
	if (rc)
		return rc < 0 ? rc : 0;
	if (!members)
		return 0;
	struct place here = {.up = at, .in_object = j->type == PP_JSON_OBJECT};
	pp_json_foreach (c, j) {
		here.key = c->key;
		rc = walk_at(c, &here, depth + 1, visit, arg, err);
		if (rc)
			return rc;
		here.idx++;
	}
	return 0;
}

/* Every node of root, from the path "$". */
static int walk(struct pp_json *root, node_visit visit, void *arg, struct pp_error *err)
{
	const struct place top = {0};
	return walk_at(root, &top, 0, visit, arg, err);
}

struct block_walk {
	pp_prefect_block_fetch fetch;
	void *ud;
};

/* A walk's visit: a string's block references resolved. */
static int resolve_string(struct pp_json *node, const struct place *at, int depth, void *arg,
			  struct pp_error *err)
{
	const struct block_walk *w = arg;
	if (node->type != PP_JSON_STRING)
		return 0;
	size_t start, end, ref, rl;
	if (!next_ref(node->str, node->len, 0, &start, &end, &ref, &rl))
		return 0;
	struct pp_json *val = NULL;
	int rc;
	if (start == 0 && end == node->len) {
		rc = lookup_ref(node->str + ref, rl, w->fetch, w->ud, at, &val, err);
		return rc ? rc : replace_value(node, val, err);
	}
	struct pp_buf out;
	pp_buf_init(&out, PP_BUF_DEFAULT_MAX);
	size_t done = 0;
	rc = 0;
	do {
		rc = pp_buf_append(&out, node->str + done, start - done);
		if (!rc)
			rc = lookup_ref(node->str + ref, rl, w->fetch, w->ud, at, &val, err);
		if (!rc && val->type == PP_JSON_STRING)
			rc = pp_buf_append(&out, val->str, val->len);
		else if (!rc && val->type == PP_JSON_NUMBER)
			rc = pp_buf_puts(&out, val->str);
		else if (!rc)
			rc = place_fail(err, PP_EINVALID, at,
					"block reference inside text must name a string or number");
		pp_json_free(val);
		val = NULL;
		done = end;
	} while (!rc && next_ref(node->str, node->len, done, &start, &end, &ref, &rl));
	if (!rc)
		rc = pp_buf_append(&out, node->str + done, node->len - done);
	if (!rc) {
		size_t len = out.len;
		pp_json_own_str(node, pp_buf_steal(&out), len);
	}
	pp_buf_free(&out);
	return rc;
}

int pp_prefect_resolve_blocks(struct pp_json *tmpl, pp_prefect_block_fetch fetch, void *ud,
			      struct pp_error *err)
{
	struct block_walk w = {fetch, ud};
	return walk(tmpl, resolve_string, &w, err);
}

/* ---- variables and block documents in a rendered job ---- */

struct variable_walk {
	pp_prefect_variable_fetch fetch;
	void *ud;
};

/* A string's {{ prefect.variables.NAME }}: alone, the variable's value
 * whatever its type, "" when there is no such variable; inside text, its
 * str() ("" when missing). Other placeholders stay as they are. */
static int variables_in_string(struct pp_json *node, const struct place *at, int depth, void *arg,
			       struct pp_error *err)
{
	const struct variable_walk *w = arg;
	if (node->type != PP_JSON_STRING)
		return 0;
	size_t start, end, ref, rl;
	if (!next_ref_of(VARIABLE_PREFIX, node->str, node->len, 0, &start, &end, &ref, &rl))
		return 0;
	char name[256];
	struct pp_json *val = NULL;
	int rc = 0;
	if (start == 0 && end == node->len) {
		if (rl >= sizeof(name))
			return place_fail(err, PP_EINVALID, at, "variable name too long");
		snprintf(name, sizeof(name), "%.*s", (int)rl, node->str + ref);
		rc = w->fetch(w->ud, name, &val, err);
		if (rc)
			return place_prefix(err, at);
		if (!val && !(val = pp_json_new_string("")))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		return replace_value(node, val, err);
	}
	struct pp_buf out;
	pp_buf_init(&out, PP_BUF_DEFAULT_MAX);
	size_t done = 0;
	do {
		rc = pp_buf_append(&out, node->str + done, start - done);
		if (!rc && rl >= sizeof(name))
			rc = place_fail(err, PP_EINVALID, at, "variable name too long");
		if (!rc) {
			snprintf(name, sizeof(name), "%.*s", (int)rl, node->str + ref);
			rc = w->fetch(w->ud, name, &val, err);
			if (rc)
				place_prefix(err, at);
		}
		if (!rc && val && pp_render_py_str(&out, val))
			rc = place_fail(err, PP_EINVALID, at, "text too long");
		pp_json_free(val);
		val = NULL;
		done = end;
	} while (!rc &&
		 next_ref_of(VARIABLE_PREFIX, node->str, node->len, done, &start, &end, &ref, &rl));
	if (!rc && pp_buf_append(&out, node->str + done, node->len - done))
		rc = place_fail(err, PP_EINVALID, at, "text too long");
	if (!rc) {
		size_t len = out.len;
		pp_json_own_str(node, pp_buf_steal(&out), len);
	}
	pp_buf_free(&out);
	return rc;
}

int pp_prefect_resolve_variables(struct pp_json *job, pp_prefect_variable_fetch fetch, void *ud,
				 struct pp_error *err)
{
	if (!job)
		return 0;
	struct variable_walk w = {fetch, ud};
	return walk(job, variables_in_string, &w, err);
}

struct document_walk {
	pp_prefect_document_fetch fetch;
	void *ud;
};

static int documents_visit(struct pp_json *j, const struct place *at, int depth, void *arg,
			   struct pp_error *err)
{
	const struct document_walk *w = arg;
	if (j->type != PP_JSON_OBJECT && j->type != PP_JSON_ARRAY)
		return 1;
	if (depth > REF_DEPTH_MAX)
		return place_fail(err, PP_EINVALID, at, "nested too deep");
	const char *id = pp_json_get_string(pp_json_get(j, "$ref"), "block_document_id");
	if (j->type == PP_JSON_OBJECT && id && *id) {
		struct pp_json *data = NULL;
		int rc = w->fetch(w->ud, id, &data, err);
		if (rc)
			return place_prefix(err, at);
		/* The reference object's own members go: the data takes its place. */
		while (j->child)
			pp_json_free(pp_json_detach(j->child));
		rc = replace_value(j, data, err);
		return rc ? rc : 1;
	}
	return 0;
}

int pp_prefect_resolve_documents(struct pp_json *job, pp_prefect_document_fetch fetch, void *ud,
				 struct pp_error *err)
{
	if (!job)
		return 0;
	struct document_walk w = {fetch, ud};
	return walk(job, documents_visit, &w, err);
}
