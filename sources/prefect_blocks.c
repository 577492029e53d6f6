/* Deployments, blocks (by type and name, or by document id) and variables
 * read from the Prefect server for a run's job, cached for PF_CACHE_MS but
 * variables (read at each use, as Prefect's resolve_variables does); block
 * data is registered as secret so no log line shows it. The cache's ages
 * are on the monotonic clock: a wall clock set back keeps no entry longer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/http.h"
#include "lib/log.h"
#include "sources/prefect.h"

#define PF_CACHE_MS 30000

static struct pf_cached *cache_find(struct prefect_source *s, const char *key)
{
	for (struct pf_cached *c = s->cache; c; c = c->next)
		if (!strcmp(c->key, key) && pp_mono_ms() - c->fetched_ms < PF_CACHE_MS)
			return c;
	return NULL;
}

/* f served c: what it served lasts no longer than c stays in the cache. */
static void note_served(struct pf_fetch *f, const struct pf_cached *c)
{
	if (c->fetched_ms + PF_CACHE_MS < f->fresh_until)
		f->fresh_until = c->fetched_ms + PF_CACHE_MS;
}

static int cache_put(struct prefect_source *s, const char *key, struct pp_json *value)
{
	struct pf_cached *c = NULL;
	for (struct pf_cached *it = s->cache; it; it = it->next)
		if (!strcmp(it->key, key))
			c = it;
	if (!c) {
		if (!(c = calloc(1, sizeof(*c)))) {
			pp_json_free(value);
			return PP_ENOMEM;
		}
		snprintf(c->key, sizeof(c->key), "%s", key);
		c->next = s->cache;
		s->cache = c;
	}
	pp_json_free(c->value);
	c->value = value;
	c->fetched_ms = pp_mono_ms();
	return 0;
}

/* Block data holds credentials (a key pair, a service account's private
 * key inside service_account_info): keep every value long enough to be one
 * out of every log line. */
static void register_strings(const struct pp_json *j, int depth)
{
	if (depth > 32)
		return;
	pp_json_foreach (f, j) {
		if (f->type == PP_JSON_STRING && f->len >= 8)
			pp_secret_register_rotating(f->str);
		else if (f->type == PP_JSON_OBJECT || f->type == PP_JSON_ARRAY)
			register_strings(f, depth + 1);
	}
}

int pp_prefect_read_deployment(struct prefect_source *s, const char *id, const struct pp_json **out,
			       struct pp_error *err)
{
	char key[128], path[128];
	snprintf(key, sizeof(key), "deployment:%s", id);
	struct pf_cached *c = cache_find(s, key);
	if (!c) {
		struct pp_json *d = NULL;
		snprintf(path, sizeof(path), "/deployments/%s", id);
		int rc = pp_prefect_api_call(s, "GET", path, NULL, 0, &d, err);
		if (rc)
			return rc;
		if (cache_put(s, key, d))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		c = cache_find(s, key);
	}
	*out = c->value;
	return 0;
}

int pp_prefect_fetch_block(void *ud, const char *slug, const char *name, struct pp_json **data,
			   struct pp_error *err)
{
	struct pf_fetch *f = ud;
	struct prefect_source *s = f->s;
	char key[256];
	snprintf(key, sizeof(key), "block:%s/%s", slug, name);
	struct pf_cached *c = cache_find(s, key);
	if (!c) {
		struct pp_buf path;
		pp_buf_init(&path, 1024);
		int rc = pp_buf_puts(&path, "/block_types/slug/");
		if (!rc)
			rc = pp_url_encode(&path, slug, false);
		if (!rc)
			rc = pp_buf_puts(&path, "/block_documents/name/");
		if (!rc)
			rc = pp_url_encode(&path, name, false);
		if (!rc)
			rc = pp_buf_puts(&path, "?include_secrets=true");
		struct pp_json *doc = NULL;
		if (rc)
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
		else
			rc = pp_prefect_api_call(s, "GET", pp_buf_str(&path), NULL, 0, &doc, err);
		pp_buf_free(&path);
		if (rc) {
			if (rc == PP_ENOTFOUND)
				pp_error_prefix(err, "block %s/%s: ", slug, name);
			return rc;
		}
		struct pp_json *d = pp_json_detach(pp_json_get(doc, "data"));
		pp_json_free(doc);
		if (!pp_json_is(d, PP_JSON_OBJECT)) {
			pp_json_free(d);
			return pp_fail(err, PP_EINVALID, "block %s/%s: no data object", slug, name);
		}
		register_strings(d, 0);
		if (cache_put(s, key, d))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		c = cache_find(s, key);
	}
	note_served(f, c);
	*data = pp_json_clone(c->value);
	return *data ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
}

int pp_prefect_fetch_document(void *ud, const char *id, struct pp_json **data, struct pp_error *err)
{
	struct pf_fetch *f = ud;
	struct prefect_source *s = f->s;
	char key[256];
	snprintf(key, sizeof(key), "document:%s", id);
	struct pf_cached *c = cache_find(s, key);
	if (!c) {
		struct pp_buf path;
		pp_buf_init(&path, 1024);
		int rc = pp_buf_puts(&path, "/block_documents/");
		if (!rc)
			rc = pp_url_encode(&path, id, false);
		if (!rc)
			rc = pp_buf_puts(&path, "?include_secrets=true");
		struct pp_json *doc = NULL;
		if (rc)
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
		else
			rc = pp_prefect_api_call(s, "GET", pp_buf_str(&path), NULL, 0, &doc, err);
		pp_buf_free(&path);
		if (rc) {
			if (rc == PP_ENOTFOUND)
				pp_error_prefix(err, "block document %s: ", id);
			return rc;
		}
		struct pp_json *d = pp_json_detach(pp_json_get(doc, "data"));
		pp_json_free(doc);
		if (!pp_json_is(d, PP_JSON_OBJECT)) {
			pp_json_free(d);
			return pp_fail(err, PP_EINVALID, "block document %s: no data object", id);
		}
		register_strings(d, 0);
		if (cache_put(s, key, d))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		c = cache_find(s, key);
	}
	note_served(f, c);
	*data = pp_json_clone(c->value);
	return *data ? 0 : pp_fail(err, PP_ENOMEM, "out of memory");
}

int pp_prefect_fetch_variable(void *ud, const char *name, struct pp_json **value,
			      struct pp_error *err)
{
	struct pf_fetch *f = ud;
	struct prefect_source *s = f->s;
	struct pp_buf path;
	*value = NULL;
	int64_t now = pp_mono_ms(); /* read at each use: what it serves is never cached */
	if (now < f->fresh_until)
		f->fresh_until = now;
	pp_buf_init(&path, 1024);
	int rc = pp_buf_puts(&path, "/variables/name/");
	if (!rc)
		rc = pp_url_encode(&path, name, false);
	struct pp_json *var = NULL;
	if (rc)
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	else
		rc = pp_prefect_api_call(s, "GET", pp_buf_str(&path), NULL, 0, &var, err);
	pp_buf_free(&path);
	if (rc == PP_ENOTFOUND) {
		/* Prefect's client reads a missing variable as None, and
		 * resolve_variables puts "" in its place. */
		pp_debug("prefect: variable %s does not exist", name);
		return 0;
	}
	if (rc)
		return pp_error_prefix(err, "variable %s: ", name);
	*value = pp_json_detach(pp_json_get(var, "value"));
	pp_json_free(var);
	if (!*value && !(*value = pp_json_new(PP_JSON_NULL)))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	return 0;
}
