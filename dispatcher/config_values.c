/* Configuration values: finding a key in the table (with a suggestion for
 * a misspelt one) and parsing a value by the key's type into its field. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dispatcher/config_impl.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/time.h"
#include "providers/provider.h"

/* -------------------------------------------------------------- key access */

void *config_section_base(struct pp_config *c, enum section_kind sec, size_t idx)
{
	switch (sec) {
	case SEC_DISPATCHER: return &c->dispatcher;
	case SEC_STORE: return &c->store;
	case SEC_PREFECT: return &c->prefect;
	case SEC_POOL: return &c->pools[idx];
	case SEC_CREDS: return &c->creds[idx];
	case SEC_DEPLOYMENT: return &c->deployments[idx];
	case SEC_SCHEDULE: return &c->schedules[idx];
	default: return NULL;
	}
}

const char *config_section_word(enum section_kind sec)
{
	switch (sec) {
	case SEC_POOL: return "pool";
	case SEC_CREDS: return "credentials";
	case SEC_DEPLOYMENT: return "deployment";
	case SEC_SCHEDULE: return "schedule";
	default: return config_sections[sec].header;
	}
}

size_t config_named_count(const struct pp_config *c, enum section_kind sec)
{
	switch (sec) {
	case SEC_POOL: return c->npools;
	case SEC_CREDS: return c->ncreds;
	case SEC_DEPLOYMENT: return c->ndeployments;
	case SEC_SCHEDULE: return c->nschedules;
	default: return 1;
	}
}

void config_named_at(const struct pp_config *c, enum section_kind sec, size_t idx,
		     const char **name, const char **file, int *line)
{
	switch (sec) {
	case SEC_POOL:
		*name = c->pools[idx].name, *file = c->pools[idx].file;
		*line = c->pools[idx].line;
		break;
	case SEC_CREDS:
		*name = c->creds[idx].name, *file = c->creds[idx].file_name;
		*line = c->creds[idx].line;
		break;
	case SEC_DEPLOYMENT:
		*name = c->deployments[idx].name, *file = c->deployments[idx].file;
		*line = c->deployments[idx].line;
		break;
	case SEC_SCHEDULE:
		*name = c->schedules[idx].name, *file = c->schedules[idx].file;
		*line = c->schedules[idx].line;
		break;
	default: *name = NULL, *file = c->path, *line = 0;
	}
}

bool config_is_string_type(enum key_type t)
{
	return t != T_INT && t != T_SECONDS && t != T_BOOL;
}

const struct key_def *config_key_find(enum section_kind sec, const char *name)
{
	for (size_t i = 0; i < config_nkeys; i++)
		if (config_keys[i].sec == sec && !strcmp(config_keys[i].name, name))
			return &config_keys[i];
	return NULL;
}

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 63 || lb > 63)
		return SIZE_MAX;
	size_t row[64];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			int ca = tolower((unsigned char)a[i - 1]);
			int cb = tolower((unsigned char)b[j - 1]);
			size_t cost = ca != cb;
			size_t best = diag + cost;
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* Closest candidate within a typo's reach, or NULL. */
const char *config_closest(const char *word, const char *const *cands, size_t n)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		size_t d = edit_distance(word, cands[i]);
		if (d < best_d) {
			best_d = d;
			best = cands[i];
		}
	}
	size_t reach = strlen(word) / 3;
	if (reach < 2)
		reach = 2;
	return best_d <= reach ? best : NULL;
}

const char *config_closest_key(enum section_kind sec, const char *name)
{
	const char *cands[CONFIG_KEYS_MAX];
	size_t n = 0;
	for (size_t i = 0; i < config_nkeys; i++)
		if (config_keys[i].sec == sec)
			cands[n++] = config_keys[i].name;
	return config_closest(name, cands, n);
}

void config_choices_text(const char *const *choices, char *out, size_t n)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; choices[i] && o < n; i++)
		o += (size_t)snprintf(out + o, n - o, "%s%s", i ? ", " : "", choices[i]);
}

/* ----------------------------------------------------------- value parsing */

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* An absolute path for v: ~/ from $HOME, relative paths from base_dir (the
 * config file's directory) when given. *out is NULL when out of memory;
 * a path longer than CONFIG_PATH_MAX is refused with why. */
static int resolve_path(const char *v, const char *base_dir, char **out, char *why, size_t whyn)
{
	struct pp_buf b;
	pp_buf_init(&b, PP_BUF_DEFAULT_MAX);
	const char *home = getenv("HOME");
	int rc;
	*out = NULL;
	if (!*v)
		rc = pp_buf_puts(&b, "");
	else if (!strncmp(v, "~/", 2) && home && *home)
		rc = pp_buf_printf(&b, "%s/%s", home, v + 2);
	else if (v[0] != '/' && base_dir)
		rc = pp_buf_printf(&b, "%s/%s", base_dir, v);
	else
		rc = pp_buf_puts(&b, v);
	if (!rc && b.len > CONFIG_PATH_MAX) {
		snprintf(why, whyn, "the path is %zu bytes, over the %d-byte limit", b.len,
			 CONFIG_PATH_MAX);
		pp_buf_free(&b);
		return PP_EINVALID;
	}
	if (!rc)
		*out = pp_buf_steal(&b);
	pp_buf_free(&b);
	return 0;
}

/* The store URL: a PostgreSQL URL as it is, a SQLite path ("sqlite:PATH" or
 * a plain path) resolved like every other path, so that commands run from
 * different directories share one store. */
static int resolve_store_url(const char *v, const char *base_dir, char **out, char *why,
			     size_t whyn)
{
	*out = NULL;
	if (!strncmp(v, "postgresql://", 13) || !strncmp(v, "postgres://", 11) || !*v) {
		if (strlen(v) > CONFIG_PATH_MAX) {
			snprintf(why, whyn, "the URL is %zu bytes, over the %d-byte limit",
				 strlen(v), CONFIG_PATH_MAX);
			return PP_EINVALID;
		}
		*out = strdup(v);
		return 0;
	}
	bool prefixed = !strncmp(v, "sqlite:", 7);
	char *path = NULL;
	int rc = resolve_path(prefixed ? v + 7 : v, base_dir, &path, why, whyn);
	if (rc || !path)
		return rc;
	if (asprintf(out, "%s%s", prefixed ? "sqlite:" : "", path) < 0)
		*out = NULL;
	free(path);
	return 0;
}

static int set_unquoted(const struct key_def *k, void *base, const char *v, const char *base_dir,
			char *why, size_t whyn)
{
	char *field = (char *)base + k->off;
	char *end;
	char *copy = NULL;
	size_t vlen = strlen(v);

	switch (k->type) {
	case T_INT: {
		errno = 0;
		long n = strtol(v, &end, 10);
		if (end == v || *end || errno) {
			snprintf(why, whyn, "\"%s\" is not an integer", v);
			return PP_EINVALID;
		}
		if (n < (long)k->min || n > (long)k->max) {
			snprintf(why, whyn, "%ld is out of range: must be %.0f..%.0f", n, k->min,
				 k->max);
			return PP_EINVALID;
		}
		*(long *)field = n;
		return 0;
	}
	case T_SECONDS: {
		double d;
		if (pp_duration_parse(v, &d)) {
			snprintf(why, whyn,
				 "\"%s\" is not a duration (seconds, or with ms/s/m/h/d)", v);
			return PP_EINVALID;
		}
		if (d < k->min || d > k->max) {
			snprintf(why, whyn, "%g is out of range: must be %g..%g seconds", d, k->min,
				 k->max);
			return PP_EINVALID;
		}
		*(double *)field = d;
		return 0;
	}
	case T_BOOL:
		if (parse_bool(v, (bool *)field)) {
			snprintf(why, whyn,
				 "\"%s\" is not a boolean (true/false, yes/no, on/off, 1/0)", v);
			return PP_EINVALID;
		}
		return 0;
	case T_ENUM: {
		const char *const *choices = config_key_choices(k);
		for (size_t i = 0; choices[i]; i++) {
			if (!strcasecmp(v, choices[i])) {
				copy = strdup(choices[i]);
				break;
			}
		}
		if (!copy && (*v || k->def)) {
			char list[512];
			config_choices_text(choices, list, sizeof(list));
			snprintf(why, whyn, "\"%s\" is not one of: %s", v, list);
			return PP_EINVALID;
		}
		if (!copy && !(copy = strdup("")))
			goto nomem;
		break;
	}
	case T_POOL_TYPE: {
		const char *canon = *v || k->def ? pp_pool_type_canonical(v) : "";
		if (!canon) {
			char list[512];
			pp_pool_types_text(false, ", ", ", ", list, sizeof(list));
			snprintf(why, whyn, "unknown pool type \"%s\" (known: %s)", v, list);
			return PP_EINVALID;
		}
		copy = strdup(canon);
		break;
	}
	case T_JSON_OBJECT:
		if (*v) {
			struct pp_json *j = NULL;
			struct pp_error jerr = {0};
			if (pp_json_parse(v, vlen, NULL, &j, &jerr)) {
				snprintf(why, whyn, "not valid JSON: %.900s", jerr.msg);
				return PP_EINVALID;
			}
			bool is_object = j->type == PP_JSON_OBJECT;
			const char *tname = pp_json_type_name(j->type);
			pp_json_free(j);
			if (!is_object) {
				snprintf(why, whyn, "must be a JSON object, got %s", tname);
				return PP_EINVALID;
			}
		}
		copy = strdup(v);
		break;
	case T_PATH:
	case T_STORE_URL: {
		int rc = k->type == T_PATH ? resolve_path(v, base_dir, &copy, why, whyn)
					   : resolve_store_url(v, base_dir, &copy, why, whyn);
		if (rc)
			return rc;
		break;
	}
	case T_STRING:
	case T_SECRET: copy = strdup(v); break;
	}
	if (!copy)
		goto nomem;
	if (k->type == T_SECRET)
		pp_secret_register(copy);
	free(*(char **)field);
	*(char **)field = copy;
	return 0;
nomem:
	snprintf(why, whyn, "out of memory");
	return PP_ENOMEM;
}

/* Store v into the field of k at base. On a bad value, writes the rule that
 * was broken to why and returns PP_EINVALID. A value may be wrapped in double
 * quotes to keep surrounding spaces. */
int config_set_value(const struct key_def *k, void *base, const char *v, const char *base_dir,
		     char *why, size_t whyn)
{
	size_t vlen = strlen(v);
	/* The file's lines are capped (64 KiB) before they get here; the
	 * environment's values are held to the same cap. */
	if (vlen > CONFIG_VALUE_MAX) {
		snprintf(why, whyn, "the value is %zu bytes, over the %d-byte limit", vlen,
			 CONFIG_VALUE_MAX);
		return PP_EINVALID;
	}
	if (vlen < 2 || v[0] != '"' || v[vlen - 1] != '"' || k->type == T_JSON_OBJECT)
		return set_unquoted(k, base, v, base_dir, why, whyn);
	char *unquoted = strndup(v + 1, vlen - 2);
	if (!unquoted) {
		snprintf(why, whyn, "out of memory");
		return PP_ENOMEM;
	}
	int rc = set_unquoted(k, base, unquoted, base_dir, why, whyn);
	free(unquoted);
	return rc;
}

int config_apply_defaults(struct pp_config *c, enum section_kind sec, size_t idx,
			  struct pp_error *err)
{
	void *base = config_section_base(c, sec, idx);
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct key_def *k = &config_keys[i];
		if (k->sec != sec)
			continue;
		const char *def = k->def ? k->def : "";
		const char *sd = getenv("STATE_DIRECTORY");
		char first[PATH_MAX];
		if (sec == SEC_DISPATCHER && !strcmp(k->name, "state_dir") && sd && *sd) {
			/* systemd's StateDirectory= may list several; the first is ours. */
			snprintf(first, sizeof(first), "%.*s", (int)strcspn(sd, ":"), sd);
			def = first;
		}
		char why[256];
		int rc = config_set_value(k, base, def, NULL, why, sizeof(why));
		if (rc)
			return pp_fail(err, rc, "default of %s.%s: %s", config_sections[sec].env,
				       k->name, why);
	}
	return 0;
}
