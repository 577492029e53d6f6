#include "providers/common.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "auth/auth.h"
#include "lib/buf.h"
#include "lib/intern.h"

void pp_sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	static const char hex[] = "0123456789abcdef";

	EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

/* 8-4-4-4-12 hex digits: the shape of Prefect's flow run ids. */
static bool is_uuid(const char *s)
{
	static const int groups[] = {8, 4, 4, 4, 12};
	for (int g = 0; g < 5; g++) {
		for (int i = 0; i < groups[g]; i++, s++)
			if (!isxdigit((unsigned char)*s))
				return false;
		if (g < 4 && *s++ != '-')
			return false;
	}
	return *s == '\0';
}

int pp_derive_name(char *out, size_t size, const char *run_id, int attempt, struct pp_error *err)
{
	char hex[65];

	if (!run_id || !*run_id)
		return pp_fail(err, PP_EINVALID, "run id is empty");
	if (attempt < 1)
		return pp_fail(err, PP_EINVALID, "run %s: attempt %d is not positive", run_id,
			       attempt);
	if (is_uuid(run_id)) {
		size_t k = 0;
		for (const char *s = run_id; *s; s++)
			if (*s != '-')
				hex[k++] = (char)tolower((unsigned char)*s);
		hex[k] = '\0';
	} else {
		pp_sha256_hex(run_id, strlen(run_id), hex);
		hex[32] = '\0';
	}
	/* "pp-", the digits, '-' and the attempt, joined by hand: snprintf
	 * cost more than the rest of deriving the name (issue 23). */
	char num[16];
	size_t k = sizeof(num);
	for (unsigned a = (unsigned)attempt; a; a /= 10)
		num[--k] = (char)('0' + a % 10);
	size_t n = strlen(hex), digits = sizeof(num) - k;
	if (3 + n + 1 + digits >= size)
		return pp_fail(err, PP_EINVALID, "run %s: derived name does not fit in %zu bytes",
			       run_id, size);
	memcpy(out, "pp-", 3);
	memcpy(out + 3, hex, n);
	out[3 + n] = '-';
	memcpy(out + 4 + n, num + k, digits);
	out[4 + n + digits] = '\0';
	return 0;
}

int pp_job_cred(struct pp_run_io *io, struct pp_cred **slot, const char *key, const char *type,
		struct pp_error *err)
{
	if (*slot) {
		io->run_cred = *slot;
		return 0;
	}
	const struct pp_json *obj = pp_json_get(io->job, key);
	if (!pp_json_is(obj, PP_JSON_OBJECT) || !obj->count)
		return 0;
	if (pp_json_get(obj, "$ref"))
		return pp_fail(err, PP_EINVALID,
			       "%s is a block reference ($ref) that nothing resolved: only runs "
			       "from Prefect resolve them",
			       key);
	int rc = pp_cred_from_job(type, obj, slot, err);
	if (rc)
		return pp_error_prefix(err, "%s: ", key);
	if (*slot)
		io->run_cred = *slot;
	return 0;
}

struct pp_cred *pp_run_cred(const struct pp_run_io *io)
{
	return io->run_cred ? io->run_cred : io->cred;
}

int pp_copy_str(char *dst, size_t size, const char *src, const char *what, struct pp_error *err)
{
	size_t n = strlen(src);
	if (n >= size)
		return pp_fail(err, PP_EINVALID, "%s is too long (%zu bytes, at most %zu)", what, n,
			       size - 1);
	memcpy(dst, src, n + 1);
	return 0;
}

int pp_base_url(char *out, size_t size, const char *endpoint, const char *def, struct pp_error *err)
{
	const char *src = endpoint && *endpoint ? endpoint : def;
	int rc = pp_copy_str(out, size, src, "endpoint URL", err);
	if (rc)
		return rc;
	size_t n = strlen(out);
	while (n > 0 && out[n - 1] == '/')
		out[--n] = '\0';
	if (strncmp(out, "https://", 8) && strncmp(out, "http://", 7))
		return pp_fail(err, PP_EINVALID, "endpoint '%s' is not an http(s) URL", out);
	return 0;
}

int pp_intern_set(const char **slot, const char *src, size_t max, const char *what,
		  struct pp_error *err)
{
	size_t n = strlen(src);
	if (n > max)
		return pp_fail(err, PP_EINVALID, "%s is too long (%zu bytes, at most %zu)", what, n,
			       max);
	const char *v = pp_intern(src);
	if (!v)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	pp_intern_drop(*slot);
	*slot = v;
	return 0;
}

int pp_base_url_intern(const char **slot, const char *endpoint, const char *def,
		       struct pp_error *err)
{
	char url[PP_BASE_URL_MAX + 1];
	return pp_base_url(url, sizeof(url), endpoint, def, err)
		       ?: pp_intern_set(slot, url, PP_BASE_URL_MAX, "endpoint URL", err);
}

static int append_word(struct pp_json *arr, struct pp_buf *w, struct pp_error *err)
{
	struct pp_json *s = pp_json_new_stringn(pp_buf_str(w), w->len);
	if (!s || pp_json_append(arr, s))
		return pp_fail(err, PP_ENOMEM, "out of memory splitting command");
	pp_buf_reset(w);
	return 0;
}

int pp_shell_split(const char *s, struct pp_json **out, struct pp_error *err)
{
	struct pp_json *arr = pp_json_new(PP_JSON_ARRAY);
	struct pp_buf w;
	bool in_word = false;
	char quote = 0;
	int rc = 0;

	*out = NULL;
	if (!arr)
		return pp_fail(err, PP_ENOMEM, "out of memory splitting command");
	pp_buf_init(&w, strlen(s) + 1);
	for (const char *p = s; *p && !rc; p++) {
		char c = *p;
		if (quote == '\'') {
			if (c == '\'')
				quote = 0;
			else
				rc = pp_buf_putc(&w, c);
			continue;
		}
		if (quote == '"') {
			if (c == '"') {
				quote = 0;
			} else if (c == '\\' &&
				   (p[1] == '"' || p[1] == '\\' || p[1] == '$' || p[1] == '`')) {
				rc = pp_buf_putc(&w, *++p);
			} else {
				rc = pp_buf_putc(&w, c);
			}
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\n') {
			if (in_word)
				rc = append_word(arr, &w, err);
			in_word = false;
			continue;
		}
		in_word = true;
		if (c == '\'' || c == '"') {
			quote = c;
		} else if (c == '\\' && p[1]) {
			rc = pp_buf_putc(&w, *++p);
		} else {
			rc = pp_buf_putc(&w, c);
		}
	}
	if (!rc && quote)
		rc = pp_fail(err, PP_EINVALID, "command '%s': unterminated %c quote", s, quote);
	if (!rc && in_word)
		rc = append_word(arr, &w, err);
	pp_buf_free(&w);
	if (rc) {
		pp_json_free(arr);
		if (rc == PP_ENOMEM && err && !err->msg[0])
			pp_fail(err, PP_ENOMEM, "out of memory splitting command");
		return rc;
	}
	*out = arr;
	return 0;
}

int pp_normalize_command(struct pp_json *obj, const char *key, struct pp_error *err)
{
	struct pp_json *v = pp_json_get(obj, key);
	if (!v)
		return 0;
	if (v->type == PP_JSON_NULL || (v->type == PP_JSON_STRING && v->len == 0)) {
		pp_json_remove(obj, key);
		return 0;
	}
	if (v->type == PP_JSON_ARRAY)
		return 0;
	if (v->type != PP_JSON_STRING)
		return pp_fail(err, PP_EINVALID, "%s must be a string or a list of strings, not %s",
			       key, pp_json_type_name(v->type));
	struct pp_json *words;
	int rc = pp_shell_split(v->str, &words, err);
	if (rc)
		return pp_error_prefix(err, "%s: ", key);
	return pp_json_set(obj, key, words);
}

void pp_json_strip_nulls(struct pp_json *j)
{
	if (!j || (j->type != PP_JSON_OBJECT && j->type != PP_JSON_ARRAY))
		return;
	struct pp_json *c = j->child;
	while (c) {
		struct pp_json *next = c->next;
		if (c->type == PP_JSON_NULL)
			pp_json_free(pp_json_detach(c));
		else
			pp_json_strip_nulls(c);
		c = next;
	}
}

static struct pp_json *find_pair(const struct pp_json *list, const char *name_key, const char *name)
{
	pp_json_foreach (it, list) {
		const char *n = pp_json_get_string(it, name_key);
		if (n && !strcmp(n, name))
			return it;
	}
	return NULL;
}

int pp_map_to_pairs(const struct pp_json *map, struct pp_json *list, const char *name_key,
		    const char *value_key, struct pp_error *err)
{
	if (!map || map->type == PP_JSON_NULL)
		return 0;
	if (map->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID, "expected an object of %s/%s pairs, got %s",
			       name_key, value_key, pp_json_type_name(map->type));
	pp_json_foreach (m, map) {
		if (m->type == PP_JSON_NULL)
			continue;
		struct pp_json *val;
		if (m->type == PP_JSON_STRING) {
			val = pp_json_new_stringn(m->str, m->len);
		} else {
			char *txt = pp_json_to_string(m, PP_JSON_COMPACT);
			val = txt ? pp_json_new_string(txt) : NULL;
			free(txt);
		}
		struct pp_json *pair = pp_json_new(PP_JSON_OBJECT);
		if (pp_json_set_string(pair, name_key, m->key)) {
			pp_json_free(val);
			pp_json_free(pair);
			return pp_fail(err, PP_ENOMEM, "out of memory building %s list", name_key);
		}
		if (pp_json_set(pair, value_key, val)) {
			pp_json_free(pair);
			return pp_fail(err, PP_ENOMEM, "out of memory building %s list", name_key);
		}
		struct pp_json *old = find_pair(list, name_key, m->key);
		if (old)
			pp_json_free(pp_json_detach(old));
		if (pp_json_append(list, pair))
			return pp_fail(err, PP_ENOMEM, "out of memory building %s list", name_key);
	}
	return 0;
}

int pp_number_to_string(struct pp_json *obj, const char *key)
{
	struct pp_json *v = pp_json_get(obj, key);
	if (!v || v->type != PP_JSON_NUMBER)
		return 0;
	return pp_json_set(obj, key, pp_json_new_stringn(v->str, v->len));
}

int pp_req_json(struct pp_run_io *io, const char *method, const char *url, const char *content_type,
		const struct pp_json *body, struct pp_error *err)
{
	pp_http_req_init(&io->req, method, url);
	io->req.max_response = PP_PROVIDER_MAX_RESPONSE;
	if (!io->req.url)
		return pp_fail(err, PP_ENOMEM, "out of memory building %s %s", method, url);
	if (!body)
		return 0;
	struct pp_buf b;
	pp_buf_init(&b, 0);
	int rc = pp_json_write(body, &b, PP_JSON_COMPACT);
	if (!rc)
		rc = pp_http_req_set_header(&io->req, "Content-Type", content_type);
	if (!rc)
		rc = pp_http_req_body(&io->req, b.data ? b.data : "", b.len);
	pp_buf_free(&b);
	if (rc)
		return pp_fail(err, PP_ENOMEM, "out of memory building %s %s", method, url);
	return 0;
}

int pp_resp_json(const struct pp_run_io *io, const char *what, struct pp_json **out,
		 struct pp_error *err)
{
	return pp_resp_json_keep(io, what, NULL, out, err);
}

int pp_resp_json_keep(const struct pp_run_io *io, const char *what, const char *const *keep,
		      struct pp_json **out, struct pp_error *err)
{
	const struct pp_buf *b = &io->resp->body;
	struct pp_json_limits lim = {.max_bytes = PP_PROVIDER_MAX_RESPONSE, .max_depth = 0};
	int rc = pp_json_parse_keep(b->data ? b->data : "", b->len, &lim, keep, out, err);
	if (rc)
		return pp_error_prefix(err, "%s: HTTP %ld: response is not JSON: ", what,
				       io->resp->status);
	if ((*out)->type != PP_JSON_OBJECT) {
		pp_json_free(*out);
		*out = NULL;
		return pp_fail(err, PP_EINVALID, "%s: HTTP %ld: response is not a JSON object",
			       what, io->resp->status);
	}
	return 0;
}

int pp_run_io_set_infra_id(struct pp_run_io *io, struct pp_error *err, const char *fmt, ...)
{
	char id[PP_INFRA_ID_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(id, sizeof(id), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(id))
		return pp_fail(err, PP_EINVALID,
			       "infra id '%.60s...' is too long (at most %d bytes)", id,
			       PP_INFRA_ID_MAX);
	char *copy = strdup(id);
	if (!copy)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	free(io->infra_id);
	io->infra_id = copy;
	return 0;
}

void pp_set_message(struct pp_run_io *io, const char *fmt, ...)
{
	char m[PP_RUN_MESSAGE_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	free(io->message);
	io->message = strdup(m);
}

void pp_clear_message(struct pp_run_io *io)
{
	free(io->message);
	io->message = NULL;
}

void pp_run_io_free_strings(struct pp_run_io *io)
{
	free(io->infra_id);
	free(io->message);
	io->infra_id = io->message = NULL;
}

int pp_remote_list_add(struct pp_remote_list *l, const char *id, const char *run_id,
		       const char *store_id, long long created_ms, struct pp_error *err)
{
	if (l->n >= PP_REMOTE_LIST_MAX)
		return pp_fail(err, PP_ENOMEM, "listing holds over %d objects", PP_REMOTE_LIST_MAX);
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct pp_remote_obj *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return pp_fail(err, PP_ENOMEM, "out of memory listing objects");
		l->v = v;
		l->cap = cap;
	}
	struct pp_remote_obj *o = &l->v[l->n];
	int rc = pp_copy_str(o->id, sizeof(o->id), id, "object id", err);
	if (!rc)
		rc = pp_copy_str(o->run_id, sizeof(o->run_id), run_id, "run id label", err);
	if (!rc)
		rc = pp_copy_str(o->store_id, sizeof(o->store_id), store_id ? store_id : "",
				 "store id label", err);
	if (rc)
		return rc;
	o->created_ms = created_ms;
	l->n++;
	return 0;
}

void pp_remote_list_free(struct pp_remote_list *l)
{
	if (!l)
		return;
	free(l->v);
	memset(l, 0, sizeof(*l));
}
