/* What the configuration's files share: the key table (config_keys.c),
 * parsing (config.c), validation (config_check.c) and the documentation
 * (config_docs.c). Not an interface: only those files include it. */
#ifndef PP_CONFIG_IMPL_H
#define PP_CONFIG_IMPL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "dispatcher/config.h"
#include "lib/buf.h"

enum section_kind {
	SEC_DISPATCHER,
	SEC_STORE,
	SEC_PREFECT,
	SEC_POOL,
	SEC_CREDS,
	SEC_DEPLOYMENT,
	SEC_SCHEDULE,
	SEC_COUNT
};

struct section_def {
	const char *header; /* as written in the file */
	const char *env;    /* PUSHPOOL_<env>_... */
	bool named;
	const char *desc;
};

enum key_type {
	T_STRING,
	T_SECRET,  /* string never printed or logged */
	T_INT,	   /* long within [min, max] */
	T_SECONDS, /* double within [min, max]; suffixes ms, s, m, h */
	T_BOOL,
	T_ENUM,	       /* one of choices */
	T_PATH,	       /* relative to the config file's directory; ~/ is $HOME */
	T_STORE_URL,   /* postgresql://..., or a SQLite path resolved as T_PATH */
	T_POOL_TYPE,   /* a known pool type or alias, stored canonical */
	T_JSON_OBJECT, /* JSON text that must be an object */
};

/* Longest value a key takes, from the file or the environment: the file's
 * line cap, so both sources agree. */
#define CONFIG_VALUE_MAX (64 << 10)
/* Longest path (after resolving) and store URL: the store's path is built
 * into 1 KiB buffers with its file name and suffixes. */
#define CONFIG_PATH_MAX 960

struct key_def {
	enum section_kind sec;
	const char *name;
	size_t off;
	enum key_type type;
	const char *def; /* default as it would be written in the file; NULL: empty */
	double min, max;
	const char *const *choices;
	bool required;
	const char *desc;
};

/* A key whose choices come from a registry (its row has choices NULL) and
 * whose documentation the registry completes, so the key table itself
 * names no cloud. */
struct key_from_registry {
	enum section_kind sec;
	const char *name;
	const char *const *(*choices)(void);
	void (*desc_more)(char *out, size_t size); /* NULL: desc says it all */
};
extern const struct key_from_registry config_keys_from_registries[];

/* The row's own choices, else its registry's; the registry's
 * documentation, or NULL. */
const char *const *config_key_choices(const struct key_def *k);
const struct key_from_registry *config_key_registry(const struct key_def *k);

/* Offset of a field, refusing at compile time a field whose C type does not
 * match what the key's parser writes. */
#define FIELD(st, f, ctype)                                                                        \
	(offsetof(st, f) + 0 * sizeof(char[_Generic(((st *)0)->f, ctype : 1, default : -1)]))
#define DSP(f, ctype)  SEC_DISPATCHER, #f, FIELD(struct pp_dispatcher_conf, f, ctype)
#define STO(f, ctype)  SEC_STORE, #f, FIELD(struct pp_store_conf, f, ctype)
#define PFT(f, ctype)  SEC_PREFECT, #f, FIELD(struct pp_prefect_conf, f, ctype)
#define POOL(f, ctype) SEC_POOL, #f, FIELD(struct pp_pool_conf, f, ctype)
#define CRED(f, ctype) SEC_CREDS, #f, FIELD(struct pp_cred_conf, f, ctype)
#define DEP(f, ctype)  SEC_DEPLOYMENT, #f, FIELD(struct pp_deploy_conf, f, ctype)
#define SCH(f, ctype)  SEC_SCHEDULE, #f, FIELD(struct pp_sched_conf, f, ctype)

extern const struct section_def config_sections[SEC_COUNT];
/* Every key, in documentation order. */
extern const struct key_def config_keys[];
extern const size_t config_nkeys;
/* Room for per-key arrays in the parser; config_keys.c refuses to build with more. */
#define CONFIG_KEYS_MAX 128

/* Problems found while loading or validating, one "FILE:LINE: ..." line each. */
struct problems {
	struct pp_buf *out;
	int count;
};
void config_vproblem(struct problems *p, const char *file, int line, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
static inline void problem(struct problems *p, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static inline void problem(struct problems *p, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	config_vproblem(p, file, line, fmt, ap);
	va_end(ap);
}
/* "a, b, c" from a NULL-terminated list. */
void config_choices_text(const char *const *choices, char *out, size_t n);
/* An environment variable's spelling of s (upper case, '_' for others). */
void config_env_upper(const char *s, char *out, size_t n);

/* config_values.c */
/* Named sections ([pool "NAME"] and the like): the word in the header, how
 * many the configuration has, and where entry idx was defined. */
const char *config_section_word(enum section_kind sec);
size_t config_named_count(const struct pp_config *c, enum section_kind sec);
void config_named_at(const struct pp_config *c, enum section_kind sec, size_t idx,
		     const char **name, const char **file, int *line);
/* The struct a key of section sec (entry idx of a named one) is stored in. */
void *config_section_base(struct pp_config *c, enum section_kind sec, size_t idx);
bool config_is_string_type(enum key_type t);
const struct key_def *config_key_find(enum section_kind sec, const char *name);
/* The candidate nearest to word, when near enough to be a likely typo. */
const char *config_closest(const char *word, const char *const *cands, size_t n);
const char *config_closest_key(enum section_kind sec, const char *name);
/* Parse v by k's type into base; on failure why says what is wrong. */
int config_set_value(const struct key_def *k, void *base, const char *v, const char *base_dir,
		     char *why, size_t whyn);
/* Set every key of the section to its default. */
int config_apply_defaults(struct pp_config *c, enum section_kind sec, size_t idx,
			  struct pp_error *err);

#endif
