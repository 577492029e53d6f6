/* The credential backends, one per cloud, and the section checks every
 * backend shares (type known, source one of the backend's). */
#include <stdarg.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/backend.h"

static const struct pp_cred_backend *const backends[] = {
	&pp_cred_gcp, &pp_cred_aws, &pp_cred_azure, &pp_cred_modal, NULL,
};

const struct pp_cred_backend *const *pp_cred_backends(void)
{
	return backends;
}

static const char *where(const struct pp_cred_conf *conf)
{
	return conf->file_name ? conf->file_name : "(config)";
}

int pp_cred_conf_fail(const struct pp_cred_conf *conf, int code, struct pp_error *err,
		      const char *fmt, ...)
{
	char msg[sizeof(err->msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (conf->line > 0)
		return pp_fail(err, code, "%s:%d: credentials \"%s\": %s", where(conf), conf->line,
			       conf->name, msg);
	return pp_fail(err, code, "%s: credentials \"%s\": %s", where(conf), conf->name, msg);
}

int pp_cred_block_field(char **field, const struct pp_json *data, const char *key,
			struct pp_error *err)
{
	const char *v = pp_json_get_string(data, key);
	if (!v || !*v)
		return 0;
	if (!(*field = strdup(v)))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	return 0;
}

const char *pp_cred_source(const struct pp_cred_conf *conf)
{
	return pp_cred_has(conf->source) ? conf->source : "chain";
}

int pp_cred_source_row(const void *rows, size_t nrows, size_t row_size, const char *name)
{
	for (size_t i = 0; name && i < nrows; i++) {
		const char *row_name = *(const char *const *)((const char *)rows + i * row_size);
		if (!strcmp(row_name, name))
			return (int)i;
	}
	return -1;
}

/* "a, b, c" from a NULL-terminated list. */
static void join(char *out, size_t size, const char *const *names)
{
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; names[i] && n < size; i++)
		n += (size_t)snprintf(out + n, size - n, "%s%s", i ? ", " : "", names[i]);
}

static const char *row_name(const struct pp_cred_backend *b, size_t i)
{
	return *(const char *const *)((const char *)b->rows + i * b->row_size);
}

void pp_cred_source_list(const struct pp_cred_backend *b, char *out, size_t size)
{
	size_t n = (size_t)snprintf(out, size, "chain");
	for (size_t i = 0; i < b->nrows && n < size; i++)
		if (strcmp(row_name(b, i), "chain"))
			n += (size_t)snprintf(out + n, size - n, ", %s", row_name(b, i));
}

int pp_cred_backend_for(const struct pp_cred_conf *conf, const struct pp_cred_backend **out,
			struct pp_error *err)
{
	const char *names[sizeof(backends) / sizeof(backends[0])];
	char list[256];
	size_t n = 0;

	for (const struct pp_cred_backend *const *b = backends; *b; b++) {
		if (conf->type && !strcmp(conf->type, (*b)->type)) {
			if ((*b)->abi != PP_CRED_BACKEND_ABI)
				return pp_cred_conf_fail(
					conf, PP_EINVALID, err,
					"credential backend %s has ABI %u, expected %u", (*b)->type,
					(*b)->abi, PP_CRED_BACKEND_ABI);
			*out = *b;
			return 0;
		}
		names[n++] = (*b)->type;
	}
	names[n] = NULL;
	join(list, sizeof(list), names);
	return pp_cred_conf_fail(conf, PP_EINVALID, err, "type must be one of %s (got \"%s\")",
				 list, conf->type ? conf->type : "");
}

int pp_cred_source_check(const struct pp_cred_backend *b, const struct pp_cred_conf *conf,
			 struct pp_error *err)
{
	const char *src = pp_cred_source(conf);
	if (strcmp(src, "chain") && pp_cred_source_row(b->rows, b->nrows, b->row_size, src) < 0) {
		char list[256];
		pp_cred_source_list(b, list, sizeof(list));
		return pp_cred_conf_fail(conf, PP_EINVALID, err,
					 "source %s does not apply to type %s (use one of: %s)",
					 src, b->type, list);
	}
	return 0;
}

int pp_cred_check(const struct pp_cred_conf *conf, struct pp_error *err)
{
	const struct pp_cred_backend *b = NULL;
	int rc = pp_cred_backend_for(conf, &b, err);
	if (!rc)
		rc = pp_cred_source_check(b, conf, err);
	return rc ? rc : b->check(conf, err);
}

/* The names every backend accepts, built once from the table: the
 * configuration's key table lists them without naming a cloud itself. */
static const char *type_names[PP_CRED_NAMES_MAX + 1];
static const char *source_names[PP_CRED_NAMES_MAX + 1];
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

static void add_name(const char **names, const char *name)
{
	size_t n = 0;
	while (names[n] && strcmp(names[n], name))
		n++;
	if (!names[n] && n < PP_CRED_NAMES_MAX)
		names[n] = name;
}

static void build_names(void)
{
	add_name(source_names, "chain");
	for (const struct pp_cred_backend *const *b = backends; *b; b++) {
		add_name(type_names, (*b)->type);
		for (size_t i = 0; i < (*b)->nrows; i++)
			add_name(source_names, row_name(*b, i));
	}
}

const char *const *pp_cred_type_names(void)
{
	pthread_once(&names_once, build_names);
	return type_names;
}

const char *const *pp_cred_source_names(void)
{
	pthread_once(&names_once, build_names);
	return source_names;
}

void pp_cred_sources_by_type(char *out, size_t size)
{
	size_t n = 0;
	out[0] = '\0';
	for (const struct pp_cred_backend *const *b = backends; *b && n < size; b++) {
		const char *sep = " ";
		n += (size_t)snprintf(out + n, size - n, "%s%s:", n ? " " : "", (*b)->type);
		for (size_t i = 0; i < (*b)->nrows && n < size; i++) {
			if (!strcmp(row_name(*b, i), "chain"))
				continue;
			n += (size_t)snprintf(out + n, size - n, "%s%s", sep, row_name(*b, i));
			sep = ", ";
		}
		if (n < size)
			n += (size_t)snprintf(out + n, size - n, ".");
	}
}
