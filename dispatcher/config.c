/* Configuration: one table declares every key; parsing (inih), defaults,
 * environment overrides, validation, --print-defaults and the docs all walk
 * it, so a key exists in exactly one place. */
#include "dispatcher/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/json.h"
#include "lib/log.h"
#include "dispatcher/pool.h"
#include "providers/provider.h"

extern char **environ;

enum section_kind { SEC_DISPATCHER, SEC_STORE, SEC_PREFECT, SEC_POOL, SEC_CREDS, SEC_COUNT };

struct section_def {
	const char *header; /* as written in the file */
	const char *env;    /* PUSHPOOL_<env>_... */
	bool named;
	const char *desc;
};

static const struct section_def section_defs[SEC_COUNT] = {
	[SEC_DISPATCHER] = {"dispatcher", "DISPATCHER", false, "The dispatcher process."},
	[SEC_STORE] = {"store", "STORE", false, "Where runs and their state are kept."},
	[SEC_PREFECT] = {"source \"prefect\"", "SOURCE_PREFECT", false,
			 "Take scheduled flow runs from a Prefect server and report back to it. "
			 "The section's presence enables the source."},
	[SEC_POOL] = {"pool \"NAME\"", "POOL", true,
		      "A push work pool: where runs of this pool are submitted. Repeatable."},
	[SEC_CREDS] = {"credentials \"NAME\"", "CREDENTIALS", true,
		       "Cloud credentials a pool refers to by name. Repeatable."},
};

enum key_type {
	T_STRING,
	T_SECRET,  /* string never printed or logged */
	T_INT,	   /* long within [min, max] */
	T_SECONDS, /* double within [min, max]; suffixes ms, s, m, h */
	T_BOOL,
	T_ENUM,	       /* one of choices */
	T_PATH,	       /* relative to the config file's directory; ~/ is $HOME */
	T_POOL_TYPE,   /* a known pool type or alias, stored canonical */
	T_JSON_OBJECT, /* JSON text that must be an object */
};

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

/* Offset of a field, refusing at compile time a field whose C type does not
 * match what the key's parser writes. */
#define FIELD(st, f, ctype)                                                                        \
	(offsetof(st, f) + 0 * sizeof(char[_Generic(((st *)0)->f, ctype : 1, default : -1)]))
#define DSP(f, ctype)  SEC_DISPATCHER, #f, FIELD(struct pp_dispatcher_conf, f, ctype)
#define STO(f, ctype)  SEC_STORE, #f, FIELD(struct pp_store_conf, f, ctype)
#define PFT(f, ctype)  SEC_PREFECT, #f, FIELD(struct pp_prefect_conf, f, ctype)
#define POOL(f, ctype) SEC_POOL, #f, FIELD(struct pp_pool_conf, f, ctype)
#define CRED(f, ctype) SEC_CREDS, #f, FIELD(struct pp_cred_conf, f, ctype)

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const cred_types[] = {"gcp", "aws", "azure", "modal", NULL};
static const char *const cred_sources[] = {
	"chain",
	"env",
	"file",
	"metadata",
	"static",
	"web_identity",
	"profile",
	"container",
	"imds",
	"secret",
	"certificate",
	"workload_identity",
	"managed_identity",
	"token",
	NULL,
};

#define DEFAULT_STATE_DIR "/var/lib/pushpool"
#define NO_RANGE	  0, 0

static const struct key_def keys[] = {
	{DSP(state_dir, char *), T_PATH, DEFAULT_STATE_DIR, NO_RANGE, NULL, false,
	 "Directory for the SQLite store and runtime state. Default: $STATE_DIRECTORY (as set by "
	 "systemd) when set, else " DEFAULT_STATE_DIR "."},
	{DSP(log_level, char *), T_ENUM, "info", NO_RANGE, log_levels, false,
	 "Least severe log level written."},
	{DSP(log_format, char *), T_ENUM, "text", NO_RANGE, log_formats, false,
	 "Log lines as text or as one JSON object per line."},
	{DSP(metrics_listen, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "HOST:PORT for the Prometheus /metrics and /healthz endpoint; empty disables it."},
	{DSP(max_in_flight, long), T_INT, "1000", 1, 1000000, NULL, false,
	 "Most runs submitted and not yet finished, over all pools."},
	{DSP(max_submitting, long), T_INT, "64", 1, 10000, NULL, false,
	 "Most submissions under way at once."},
	{DSP(poll_interval, double), T_SECONDS, "1.0", 0.01, 3600, NULL, false,
	 "Seconds between store polls for due runs when idle."},
	{DSP(status_interval, double), T_SECONDS, "2.0", 0.1, 3600, NULL, false,
	 "Seconds between status polls of one submitted run."},
	{DSP(lease_seconds, double), T_SECONDS, "60", 5, 86400, NULL, false,
	 "Lease on a claimed run; another dispatcher may take it over once it lapses."},
	{DSP(grace_seconds, double), T_SECONDS, "30", 0, 3600, NULL, false,
	 "On SIGTERM, time allowed for submissions under way to finish."},
	{DSP(submit_attempts, long), T_INT, "5", 1, 100, NULL, false,
	 "Attempts to submit one run before it is marked failed."},
	{DSP(backoff_base_ms, long), T_INT, "500", 1, 3600000, NULL, false,
	 "First retry delay in milliseconds; doubles per attempt, with jitter."},
	{DSP(backoff_max_ms, long), T_INT, "30000", 1, 86400000, NULL, false,
	 "Longest retry delay in milliseconds."},
	{DSP(start_timeout, double), T_SECONDS, "600", 0, 604800, NULL, false,
	 "Seconds a run may stay queued or provisioning in the cloud before it is failed; "
	 "0 waits forever."},
	{DSP(prefect_api_url, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Passed to every job as PREFECT_API_URL when set."},
	{DSP(prefect_api_key_file, char *), T_PATH, NULL, NO_RANGE, NULL, false,
	 "File holding the key passed to every job as PREFECT_API_KEY."},

	{STO(url, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "sqlite:PATH, a plain path, or postgresql://USER:PASSWORD@HOST/DB. "
	 "Empty: STATE_DIR/pushpool.db. A password in the URL is redacted from logs."},

	{PFT(enabled, bool), T_BOOL, "true", NO_RANGE, NULL, false,
	 "false keeps the section but stops taking runs from Prefect."},
	{PFT(api_url, char *), T_STRING, NULL, NO_RANGE, NULL, true,
	 "Prefect API base URL, e.g. http://127.0.0.1:4200/api."},
	{PFT(api_key, char *), T_SECRET, NULL, NO_RANGE, NULL, false,
	 "Prefect Cloud API key (prefer api_key_file)."},
	{PFT(api_key_file, char *), T_PATH, NULL, NO_RANGE, NULL, false,
	 "File holding the Prefect API key."},
	{PFT(pools, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Comma-separated work pools to serve; empty: every [pool] section."},
	{PFT(work_queues, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Comma-separated work queues to take runs from; empty: all."},
	{PFT(lookahead_seconds, double), T_SECONDS, "10", 0, 3600, NULL, false,
	 "Take runs scheduled up to this far in the future."},
	{PFT(poll_interval, double), T_SECONDS, "5", 0.1, 3600, NULL, false,
	 "Seconds between polls of the Prefect API."},
	{PFT(claim_timeout, double), T_SECONDS, "600", 1, 86400, NULL, false,
	 "A flow run PENDING this long with no infrastructure_pid and in no run of this store "
	 "is handed back to SCHEDULED (a claimer died before recording it)."},

	{POOL(type, char *), T_POOL_TYPE, NULL, NO_RANGE, NULL, true,
	 "Pool type: cloud-run-v2:push, ecs:push, azure-container-instance:push, modal:push "
	 "(the worker names cloud-run-v2, ecs, azure-container-instance are accepted)."},
	{POOL(template_path, char *), T_PATH, NULL, NO_RANGE, NULL, false,
	 "Base job template (Prefect JSON); empty: the built-in default for the type."},
	{POOL(credentials, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Name of the [credentials \"NAME\"] section to authenticate with."},
	{POOL(endpoint, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "API base URL override (private endpoints, the mock)."},
	{POOL(job_variables, char *), T_JSON_OBJECT, NULL, NO_RANGE, NULL, false,
	 "JSON object of job variables for every run of the pool, on one line."},
	{POOL(max_in_flight, long), T_INT, "0", 0, 1000000, NULL, false,
	 "Most unfinished runs of this pool; 0: only the global cap."},
	{POOL(max_submitting, long), T_INT, "0", 0, 10000, NULL, false,
	 "Most submissions of this pool under way at once; 0: only the global cap."},

	{CRED(type, char *), T_ENUM, NULL, NO_RANGE, cred_types, true, "Which cloud."},
	{CRED(source, char *), T_ENUM, "chain", NO_RANGE, cred_sources, false,
	 "Where credentials come from: chain tries the cloud's usual sources in order. "
	 "gcp: env, file, metadata. aws: env, static, profile, web_identity, container, imds. "
	 "azure: env, secret, certificate, workload_identity, managed_identity. "
	 "modal: env, file, profile, token."},
	{CRED(file, char *), T_PATH, NULL, NO_RANGE, NULL, false,
	 "Credentials file: GCP service-account JSON, AWS shared credentials, ~/.modal.toml."},
	{CRED(profile, char *), T_STRING, NULL, NO_RANGE, NULL, false, "AWS or Modal profile."},
	{CRED(region, char *), T_STRING, NULL, NO_RANGE, NULL, false, "AWS region."},
	{CRED(access_key_id, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "AWS access key id (source static)."},
	{CRED(secret_access_key, char *), T_SECRET, NULL, NO_RANGE, NULL, false,
	 "AWS secret access key (source static)."},
	{CRED(session_token, char *), T_SECRET, NULL, NO_RANGE, NULL, false,
	 "AWS session token for temporary credentials."},
	{CRED(role_arn, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "AWS role to assume (web_identity)."},
	{CRED(tenant_id, char *), T_STRING, NULL, NO_RANGE, NULL, false, "Entra ID tenant."},
	{CRED(client_id, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Entra ID application (client) id."},
	{CRED(client_secret, char *), T_SECRET, NULL, NO_RANGE, NULL, false,
	 "Entra ID client secret (prefer client_secret_file)."},
	{CRED(client_secret_file, char *), T_PATH, NULL, NO_RANGE, NULL, false,
	 "File holding the Entra ID client secret."},
	{CRED(certificate_path, char *), T_PATH, NULL, NO_RANGE, NULL, false,
	 "PEM certificate with private key (source certificate)."},
	{CRED(subscription_id, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Azure subscription."},
	{CRED(token_id, char *), T_STRING, NULL, NO_RANGE, NULL, false, "Modal token id."},
	{CRED(token_secret, char *), T_SECRET, NULL, NO_RANGE, NULL, false, "Modal token secret."},
	{CRED(token_uri, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "GCP OAuth token endpoint override."},
	{CRED(metadata_host, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "GCP metadata server host override."},
	{CRED(sts_endpoint, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "AWS STS endpoint override."},
	{CRED(authority, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Entra ID authority host override (sovereign clouds)."},
	{CRED(imds_endpoint, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "AWS or Azure instance metadata endpoint override."},
	{CRED(container_endpoint, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "AWS container credentials endpoint override."},
	{CRED(modal_server_url, char *), T_STRING, NULL, NO_RANGE, NULL, false,
	 "Modal API server override."},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* Sources each credential type understands (cred_sources lists them all). */
static const struct {
	const char *type;
	const char *sources;
} type_sources[] = {
	{"gcp", "chain, env, file, metadata"},
	{"aws", "chain, env, static, profile, web_identity, container, imds"},
	{"azure", "chain, env, secret, certificate, workload_identity, managed_identity"},
	{"modal", "chain, env, file, profile, token, static"},
};

/* ---------------------------------------------------------------- problems */

struct problems {
	struct pp_buf *out;
	int count;
};

static void problem(struct problems *p, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void problem(struct problems *p, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	if (line > 0)
		pp_buf_printf(p->out, "%s:%d: ", file, line);
	else
		pp_buf_printf(p->out, "%s: ", file);
	va_start(ap, fmt);
	pp_buf_vprintf(p->out, fmt, ap);
	va_end(ap);
	pp_buf_putc(p->out, '\n');
	p->count++;
}

/* -------------------------------------------------------------- key access */

static void *section_base(struct pp_config *c, enum section_kind sec, size_t idx)
{
	switch (sec) {
	case SEC_DISPATCHER: return &c->dispatcher;
	case SEC_STORE: return &c->store;
	case SEC_PREFECT: return &c->prefect;
	case SEC_POOL: return &c->pools[idx];
	case SEC_CREDS: return &c->creds[idx];
	default: return NULL;
	}
}

static bool is_string_type(enum key_type t)
{
	return t != T_INT && t != T_SECONDS && t != T_BOOL;
}

static const struct key_def *key_find(enum section_kind sec, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].sec == sec && !strcmp(keys[i].name, name))
			return &keys[i];
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
static const char *closest(const char *word, const char *const *cands, size_t n)
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

static const char *closest_key(enum section_kind sec, const char *name)
{
	const char *cands[NKEYS];
	size_t n = 0;
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].sec == sec)
			cands[n++] = keys[i].name;
	return closest(name, cands, n);
}

static void choices_text(const char *const *choices, char *out, size_t n)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; choices[i] && o < n; i++)
		o += (size_t)snprintf(out + o, n - o, "%s%s", i ? ", " : "", choices[i]);
}

/* ----------------------------------------------------------- value parsing */

static int parse_seconds(const char *v, double *out)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (end == v || errno || !isfinite(d))
		return -1;
	while (isspace((unsigned char)*end))
		end++;
	if (!strcmp(end, "ms"))
		d /= 1000;
	else if (!strcmp(end, "m"))
		d *= 60;
	else if (!strcmp(end, "h"))
		d *= 3600;
	else if (*end && strcmp(end, "s"))
		return -1;
	*out = d;
	return 0;
}

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
 * config file's directory) when given. */
static char *resolve_path(const char *v, const char *base_dir)
{
	struct pp_buf b;
	pp_buf_init(&b, PATH_MAX);
	const char *home = getenv("HOME");
	int rc;
	if (!*v)
		rc = pp_buf_puts(&b, "");
	else if (!strncmp(v, "~/", 2) && home && *home)
		rc = pp_buf_printf(&b, "%s/%s", home, v + 2);
	else if (v[0] != '/' && base_dir)
		rc = pp_buf_printf(&b, "%s/%s", base_dir, v);
	else
		rc = pp_buf_puts(&b, v);
	if (rc) {
		pp_buf_free(&b);
		return NULL;
	}
	return pp_buf_steal(&b);
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
		if (parse_seconds(v, &d)) {
			snprintf(why, whyn, "\"%s\" is not a duration (seconds, or with ms/s/m/h)",
				 v);
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
		for (size_t i = 0; k->choices[i]; i++) {
			if (!strcasecmp(v, k->choices[i])) {
				copy = strdup(k->choices[i]);
				break;
			}
		}
		if (!copy && (*v || k->def)) {
			char list[512];
			choices_text(k->choices, list, sizeof(list));
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
	case T_PATH: copy = resolve_path(v, base_dir); break;
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
static int set_value(const struct key_def *k, void *base, const char *v, const char *base_dir,
		     char *why, size_t whyn)
{
	size_t vlen = strlen(v);
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

static int apply_defaults(struct pp_config *c, enum section_kind sec, size_t idx,
			  struct pp_error *err)
{
	void *base = section_base(c, sec, idx);
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *k = &keys[i];
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
		int rc = set_value(k, base, def, NULL, why, sizeof(why));
		if (rc)
			return pp_fail(err, rc, "default of %s.%s: %s", section_defs[sec].env,
				       k->name, why);
	}
	return 0;
}

/* ------------------------------------------------------------- file reading */

/* inih reports no line numbers to the handler here (Debian builds it
 * without INI_HANDLER_LINENO), so a reader wrapper counts lines, and takes
 * section headers itself: inih cuts section names at 50 bytes and never
 * calls the handler for a section without keys. */
#define INI_LINE_MAX (64 << 10)

struct parse_state {
	struct pp_config *c;
	FILE *fp;
	const char *file;
	char *dir;
	char *buf; /* the current physical line */
	size_t len, off;
	int line;
	bool in_section;
	bool section_ignored; /* unknown, duplicate or malformed header */
	enum section_kind sec;
	size_t idx;
	int prefect_line;
	int key_line[NKEYS]; /* where singleton-section keys were last set */
	struct problems *p;
	struct pp_error *err; /* allocation failures */
};

static bool valid_name(const char *s)
{
	if (!*s || strlen(s) >= PP_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-_.", *s))
			return false;
	return true;
}

static int add_named(struct parse_state *st, enum section_kind sec, const char *name)
{
	struct pp_config *c = st->c;
	size_t n = sec == SEC_POOL ? c->npools : c->ncreds;
	for (size_t i = 0; i < n; i++) {
		const char *other = sec == SEC_POOL ? c->pools[i].name : c->creds[i].name;
		int line = sec == SEC_POOL ? c->pools[i].line : c->creds[i].line;
		if (!strcmp(other, name)) {
			problem(st->p, st->file, st->line,
				"duplicate [%s \"%s\"] (first defined at line %d)",
				sec == SEC_POOL ? "pool" : "credentials", name, line);
			st->section_ignored = true;
			return 0;
		}
	}
	if (sec == SEC_POOL) {
		struct pp_pool_conf *v = realloc(c->pools, (n + 1) * sizeof(*v));
		if (!v)
			return pp_fail(st->err, PP_ENOMEM, "out of memory");
		c->pools = v;
		memset(&v[n], 0, sizeof(v[n]));
		snprintf(v[n].name, sizeof(v[n].name), "%s", name);
		v[n].file = c->path;
		v[n].line = st->line;
		c->npools++;
	} else {
		struct pp_cred_conf *v = realloc(c->creds, (n + 1) * sizeof(*v));
		if (!v)
			return pp_fail(st->err, PP_ENOMEM, "out of memory");
		c->creds = v;
		memset(&v[n], 0, sizeof(v[n]));
		snprintf(v[n].name, sizeof(v[n].name), "%s", name);
		v[n].file_name = c->path;
		v[n].line = st->line;
		c->ncreds++;
	}
	st->idx = n;
	return apply_defaults(c, sec, n, st->err);
}

/* text is what is between '[' and ']'. */
static int begin_section(struct parse_state *st, const char *text)
{
	static const char *const words[] = {"dispatcher", "store", "source", "pool", "credentials"};
	char word[32], name[256];
	size_t wl = 0;

	st->in_section = true;
	st->section_ignored = false;
	while (isspace((unsigned char)*text))
		text++;
	while (isalpha((unsigned char)text[wl]) && wl < sizeof(word) - 1) {
		word[wl] = text[wl];
		wl++;
	}
	word[wl] = '\0';
	const char *rest = text + wl;
	while (isspace((unsigned char)*rest))
		rest++;
	size_t rl = strlen(rest);
	while (rl && isspace((unsigned char)rest[rl - 1]))
		rl--;
	if (rl >= 2 && rest[0] == '"' && rest[rl - 1] == '"') {
		rest++;
		rl -= 2;
	}
	if (rl >= sizeof(name))
		rl = sizeof(name) - 1;
	memcpy(name, rest, rl);
	name[rl] = '\0';

	int kind = -1;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (!strcmp(word, words[i]))
			kind = (int)i;
	if (kind < 0) {
		const char *hint = closest(word, words, sizeof(words) / sizeof(words[0]));
		problem(st->p, st->file, st->line, "unknown section [%s]%s%s%s", text,
			hint ? "; did you mean [" : "", hint ? hint : "", hint ? "]?" : "");
		st->section_ignored = true;
		return 0;
	}
	switch (kind) {
	case 0:
	case 1:
		st->sec = kind == 0 ? SEC_DISPATCHER : SEC_STORE;
		if (*name) {
			problem(st->p, st->file, st->line, "[%s] takes no name (got \"%s\")", word,
				name);
			st->section_ignored = true;
		}
		return 0;
	case 2:
		st->sec = SEC_PREFECT;
		if (strcmp(name, "prefect")) {
			problem(st->p, st->file, st->line, "unknown source \"%s\" (known: prefect)",
				name);
			st->section_ignored = true;
			return 0;
		}
		st->c->prefect.enabled = true;
		if (!st->prefect_line)
			st->prefect_line = st->line;
		return 0;
	default:
		st->sec = kind == 3 ? SEC_POOL : SEC_CREDS;
		if (!valid_name(name)) {
			problem(st->p, st->file, st->line,
				"[%s] needs a name of 1-%d letters, digits, '-', '_' or '.': "
				"[%s \"NAME\"] (got \"%s\")",
				word, PP_NAME_MAX - 1, word, name);
			st->section_ignored = true;
			return 0;
		}
		return add_named(st, st->sec, name);
	}
}

/* inih asks for a line in pieces while it grows its buffer; hand it the
 * physical line read here, so lines are counted and sections seen once. */
static char *counting_reader(char *str, int num, void *stream)
{
	struct parse_state *st = stream;
	if (st->off >= st->len) {
		if (!fgets(st->buf, INI_LINE_MAX, st->fp))
			return NULL;
		st->line++;
		st->len = strlen(st->buf);
		st->off = 0;
		if (st->len && st->buf[st->len - 1] != '\n' && !feof(st->fp)) {
			problem(st->p, st->file, st->line, "line longer than %d bytes",
				INI_LINE_MAX - 2);
			int ch;
			while ((ch = getc(st->fp)) != EOF && ch != '\n')
				;
			/* inih gets a comment in place of the half line. */
			st->len = (size_t)snprintf(st->buf, INI_LINE_MAX, ";\n");
		}
		const char *s = st->buf;
		if (st->line == 1 && !strncmp(s, "\xef\xbb\xbf", 3))
			s += 3; /* UTF-8 byte order mark, which inih skips too */
		while (isspace((unsigned char)*s))
			s++;
		const char *close = *s == '[' ? strchr(s, ']') : NULL;
		if (close) {
			char text[512];
			snprintf(text, sizeof(text), "%.*s", (int)(close - s - 1), s + 1);
			if (begin_section(st, text)) {
				st->err->code = PP_ENOMEM;
				return NULL;
			}
		}
	}
	size_t n = st->len - st->off;
	if (n > (size_t)num - 1)
		n = (size_t)num - 1;
	memcpy(str, st->buf + st->off, n);
	str[n] = '\0';
	st->off += n;
	return str;
}

static int handle_key(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *st = user;
	(void)section;
	if (!st->in_section) {
		problem(st->p, st->file, st->line,
			"\"%s\" is outside any section; put it under [dispatcher] or another "
			"section",
			name);
		return 1;
	}
	if (st->section_ignored)
		return 1;
	const struct key_def *k = key_find(st->sec, name);
	if (!k) {
		const char *hint = closest_key(st->sec, name);
		char where[PP_NAME_MAX + 32];
		if (st->sec == SEC_POOL)
			snprintf(where, sizeof(where), "pool \"%s\"", st->c->pools[st->idx].name);
		else if (st->sec == SEC_CREDS)
			snprintf(where, sizeof(where), "credentials \"%s\"",
				 st->c->creds[st->idx].name);
		else
			snprintf(where, sizeof(where), "%s", section_defs[st->sec].header);
		problem(st->p, st->file, st->line, "unknown key \"%s\" in [%s]%s%s%s", name, where,
			hint ? "; did you mean \"" : "", hint ? hint : "", hint ? "\"?" : "");
		return 1;
	}
	char why[PP_ERRMSG_MAX];
	void *base = section_base(st->c, st->sec, st->idx);
	int rc = set_value(k, base, value, st->dir, why, sizeof(why));
	if (rc == PP_ENOMEM) {
		pp_fail(st->err, PP_ENOMEM, "out of memory");
		return 0;
	}
	if (rc)
		problem(st->p, st->file, st->line, "%s: %s", name, why);
	else if (!section_defs[st->sec].named)
		st->key_line[k - keys] = st->line;
	return 1;
}

/* ------------------------------------------------------ environment values */

static void env_upper(const char *s, char *out, size_t n)
{
	size_t i = 0;
	for (; s[i] && i < n - 1; i++)
		out[i] = isalnum((unsigned char)s[i]) ? (char)toupper((unsigned char)s[i]) : '_';
	out[i] = '\0';
}

/* rest is the part after PUSHPOOL_<SECTION>_ (and NAME_ for named sections). */
static const struct key_def *env_key(enum section_kind sec, const char *rest, size_t rest_len)
{
	for (size_t i = 0; i < NKEYS; i++) {
		char up[64];
		if (keys[i].sec != sec)
			continue;
		env_upper(keys[i].name, up, sizeof(up));
		if (strlen(up) == rest_len && !strncmp(up, rest, rest_len))
			return &keys[i];
	}
	return NULL;
}

static int env_set(struct pp_config *c, const struct key_def *k, size_t idx, const char *var,
		   const char *value, struct problems *p, struct pp_error *err)
{
	char why[PP_ERRMSG_MAX];
	int rc = set_value(k, section_base(c, k->sec, idx), value, NULL, why, sizeof(why));
	if (rc == PP_ENOMEM)
		return pp_fail(err, rc, "out of memory");
	if (rc)
		problem(p, "environment", 0, "%s: %s", var, why);
	return 0;
}

static int apply_env_one(struct pp_config *c, const char *entry, struct problems *p,
			 struct pp_error *err)
{
	static const char prefix[] = "PUSHPOOL_";
	const char *eq = strchr(entry, '=');
	if (!eq || strncmp(entry, prefix, sizeof(prefix) - 1))
		return 0;
	char var[256];
	snprintf(var, sizeof(var), "%.*s", (int)(eq - entry), entry);
	const char *value = eq + 1;
	const char *after = var + sizeof(prefix) - 1;

	for (int sec = 0; sec < SEC_COUNT; sec++) {
		const struct section_def *sd = &section_defs[sec];
		size_t pl = strlen(sd->env);
		if (strncmp(after, sd->env, pl) || after[pl] != '_')
			continue;
		const char *rest = after + pl + 1;
		enum section_kind kind = (enum section_kind)sec;
		if (!sd->named) {
			const struct key_def *k = env_key(kind, rest, strlen(rest));
			if (!k) {
				problem(p, "environment", 0, "%s: no such setting in [%s]", var,
					sd->header);
				return 0;
			}
			if (sec == SEC_PREFECT)
				c->prefect.enabled = true;
			return env_set(c, k, 0, var, value, p, err);
		}
		size_t n = sec == SEC_POOL ? c->npools : c->ncreds;
		for (size_t i = 0; i < n; i++) {
			char up[PP_NAME_MAX];
			env_upper(sec == SEC_POOL ? c->pools[i].name : c->creds[i].name, up,
				  sizeof(up));
			size_t ul = strlen(up);
			if (strncmp(rest, up, ul) || rest[ul] != '_')
				continue;
			const char *key = rest + ul + 1;
			const struct key_def *k = env_key(kind, key, strlen(key));
			if (k)
				return env_set(c, k, i, var, value, p, err);
		}
		problem(p, "environment", 0,
			"%s: matches no key of any [%s] section in the file "
			"(PUSHPOOL_%s_<NAME>_<KEY>, NAME uppercased, other characters as _)",
			var, sec == SEC_POOL ? "pool" : "credentials", sd->env);
		return 0;
	}
	return 0;
}

static int apply_env(struct pp_config *c, struct problems *p, struct pp_error *err)
{
	for (char **e = environ; e && *e; e++) {
		int rc = apply_env_one(c, *e, p, err);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---------------------------------------------------------- cross-checks */

static int key_line(const struct parse_state *st, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].sec == SEC_DISPATCHER && !strcmp(keys[i].name, name))
			return st->key_line[i];
	return 0;
}

/* A password in a store URL ("scheme://user:password@host/...") is a secret. */
static void register_url_password(const char *url)
{
	const char *scheme = url ? strstr(url, "://") : NULL;
	if (!scheme)
		return;
	const char *auth = scheme + 3;
	size_t auth_len = strcspn(auth, "/?#");
	const char *at = memrchr(auth, '@', auth_len);
	const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (!colon)
		return;
	char pw[512];
	snprintf(pw, sizeof(pw), "%.*s", (int)(at - colon - 1), colon + 1);
	pp_secret_register(pw);
}

static void check_loaded(struct parse_state *st)
{
	struct pp_config *c = st->c;
	const char *file = c->path ? c->path : "environment";
	if (c->dispatcher.backoff_base_ms > c->dispatcher.backoff_max_ms) {
		int line = key_line(st, "backoff_base_ms");
		if (key_line(st, "backoff_max_ms") > line)
			line = key_line(st, "backoff_max_ms");
		problem(st->p, file, line,
			"backoff_base_ms (%ld) is larger than backoff_max_ms (%ld)",
			c->dispatcher.backoff_base_ms, c->dispatcher.backoff_max_ms);
	}
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *k = &keys[i];
		if (!k->required)
			continue;
		if (k->sec == SEC_PREFECT && c->prefect.enabled &&
		    !**(char *const *)((const char *)&c->prefect + k->off))
			problem(st->p, file, st->prefect_line, "[source \"prefect\"] needs %s",
				k->name);
		for (size_t j = 0; k->sec == SEC_POOL && j < c->npools; j++) {
			const struct pp_pool_conf *pc = &c->pools[j];
			if (!**(char *const *)((const char *)pc + k->off))
				problem(st->p, pc->file, pc->line, "[pool \"%s\"] needs %s",
					pc->name, k->name);
		}
		for (size_t j = 0; k->sec == SEC_CREDS && j < c->ncreds; j++) {
			const struct pp_cred_conf *cc = &c->creds[j];
			if (!**(char *const *)((const char *)cc + k->off))
				problem(st->p, cc->file_name, cc->line,
					"[credentials \"%s\"] needs %s", cc->name, k->name);
		}
	}
	register_url_password(c->store.url);
}

/* ------------------------------------------------------------ public API */

int pp_config_init(struct pp_config *c, struct pp_error *err)
{
	memset(c, 0, sizeof(*c));
	for (int sec = SEC_DISPATCHER; sec <= SEC_PREFECT; sec++) {
		int rc = apply_defaults(c, (enum section_kind)sec, 0, err);
		if (rc) {
			pp_config_free(c);
			return rc;
		}
	}
	/* The section's presence turns the source on; its enabled key can only
	 * turn it back off. */
	c->prefect.enabled = false;
	return 0;
}

/* The file's directory, absolute, so relative paths in it still hold after
 * the process changes directory. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return NULL;
	char *abs = realpath(dir, NULL);
	if (!abs)
		return dir;
	free(dir);
	return abs;
}

int pp_config_load_report(struct pp_config *c, const char *path, struct pp_buf *out,
			  struct pp_error *err)
{
	struct problems p = {.out = out};
	struct parse_state st = {.c = c, .p = &p, .err = err};
	int rc = 0;

	pp_error_clear(err);
	if (c->path)
		return pp_fail(err, PP_EINVALID, "configuration already loaded from %s", c->path);
	if (path) {
		if (!(c->path = strdup(path)) || !(st.dir = dir_of(path)) ||
		    !(st.buf = malloc(INI_LINE_MAX))) {
			free(st.dir);
			return pp_fail(err, PP_ENOMEM, "out of memory");
		}
		st.file = c->path;
		st.fp = fopen(path, "r");
		if (!st.fp) {
			int e = errno;
			free(st.dir);
			free(st.buf);
			return pp_fail(err, e == ENOENT ? PP_ENOTFOUND : PP_EIO,
				       "%s: cannot open: %s", path, strerror(e));
		}
		/* Long lines (a job_variables object) need inih's growing heap
		 * buffer; Debian's build makes these runtime switches. */
		ini_use_stack = false;
		ini_allow_realloc = true;
		ini_allow_multiline = false;
		ini_max_line = INI_LINE_MAX + 8;
		int ini_rc = ini_parse_stream(counting_reader, &st, handle_key, &st);
		fclose(st.fp);
		free(st.dir);
		free(st.buf);
		if (err->code)
			return err->code;
		if (ini_rc == -2)
			return pp_fail(err, PP_ENOMEM, "%s: out of memory", path);
		if (ini_rc > 0)
			problem(&p, path, ini_rc,
				"syntax error: expected [section], key = value, or a comment");
	}
	rc = apply_env(c, &p, err);
	if (rc)
		return rc;
	check_loaded(&st);
	if (p.count)
		return pp_fail(err, PP_EINVALID, "%d configuration error%s", p.count,
			       p.count == 1 ? "" : "s");
	return 0;
}

int pp_config_load(struct pp_config *c, const char *path, struct pp_error *err)
{
	struct pp_buf out;
	pp_buf_init(&out, 1 << 20);
	int rc = pp_config_load_report(c, path, &out, err);
	if (rc == PP_EINVALID) {
		/* Whole lines while they fit, then how many did not. */
		size_t len = 0;
		int more = 0;
		for (size_t i = 0; i < out.len; i++) {
			if (out.data[i] != '\n')
				continue;
			if (i < PP_ERRMSG_MAX - 32 && !more)
				len = i;
			else
				more++;
		}
		if (more)
			pp_fail(err, rc, "%.*s\n(%d more)", (int)len, out.data, more);
		else
			pp_fail(err, rc, "%.*s", (int)len, out.data);
	}
	pp_buf_free(&out);
	return rc;
}

void pp_config_free(struct pp_config *c)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *k = &keys[i];
		if (!is_string_type(k->type))
			continue;
		if (k->sec == SEC_POOL) {
			for (size_t j = 0; j < c->npools; j++)
				free(*(char **)((char *)&c->pools[j] + k->off));
		} else if (k->sec == SEC_CREDS) {
			for (size_t j = 0; j < c->ncreds; j++)
				free(*(char **)((char *)&c->creds[j] + k->off));
		} else {
			free(*(char **)((char *)section_base(c, k->sec, 0) + k->off));
		}
	}
	free(c->pools);
	free(c->creds);
	free(c->path);
	memset(c, 0, sizeof(*c));
}

const struct pp_pool_conf *pp_config_pool(const struct pp_config *c, const char *name)
{
	for (size_t i = 0; name && i < c->npools; i++)
		if (!strcmp(c->pools[i].name, name))
			return &c->pools[i];
	return NULL;
}

const struct pp_cred_conf *pp_config_cred(const struct pp_config *c, const char *name)
{
	for (size_t i = 0; name && i < c->ncreds; i++)
		if (!strcmp(c->creds[i].name, name))
			return &c->creds[i];
	return NULL;
}

/* ------------------------------------------------------------- validation */

/* A file that holds a secret must be readable by us; warn when others can. */
static void check_secret_file(struct problems *p, const char *file, int line, const char *what,
			      const char *key, const char *path)
{
	if (!path || !*path)
		return;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		problem(p, file, line, "%s: %s %s: %s", what, key, path, strerror(errno));
		return;
	}
	struct stat sb;
	if (fstat(fd, &sb) == 0) {
		if (!S_ISREG(sb.st_mode))
			problem(p, file, line, "%s: %s %s is not a regular file", what, key, path);
		else if (sb.st_mode & 077)
			/* Only a warning: `check` still passes, it is not counted. */
			pp_buf_printf(p->out,
				      "%s:%d: warning: %s: file %s is readable by group/others "
				      "(mode %04o); chmod 600\n",
				      file, line, what, path, (unsigned)(sb.st_mode & 07777));
	}
	close(fd);
}

static bool has(const char *s)
{
	return s && *s;
}

static void validate_cred(const struct pp_cred_conf *cc, struct problems *p)
{
	char what[PP_NAME_MAX + 16];
	const char *f = cc->file_name;
	snprintf(what, sizeof(what), "credentials \"%s\"", cc->name);
	for (size_t i = 0; i < sizeof(type_sources) / sizeof(type_sources[0]); i++) {
		char list[128];
		snprintf(list, sizeof(list), "%s,", type_sources[i].sources);
		char needle[40];
		snprintf(needle, sizeof(needle), "%s,", cc->source);
		/* Match whole names: "env," must not be found inside "chain, env2,". */
		const char *at = strstr(list, needle);
		bool found = at && (at == list || at[-1] == ' ');
		if (!strcmp(type_sources[i].type, cc->type) && !found)
			problem(p, f, cc->line,
				"%s: source %s does not apply to type %s (use one of: %s)", what,
				cc->source, cc->type, type_sources[i].sources);
	}
	const char *src = cc->source;
	if (!strcmp(src, "file") && !has(cc->file))
		problem(p, f, cc->line, "%s: source file needs file", what);
	if (!strcmp(src, "static") && !strcmp(cc->type, "aws") &&
	    (!has(cc->access_key_id) || !has(cc->secret_access_key)))
		problem(p, f, cc->line,
			"%s: source static needs access_key_id and secret_access_key", what);
	if ((!strcmp(src, "token") || (!strcmp(src, "static") && !strcmp(cc->type, "modal"))) &&
	    (!has(cc->token_id) || !has(cc->token_secret)))
		problem(p, f, cc->line, "%s: source %s needs token_id and token_secret", what, src);
	if (!strcmp(src, "secret") && (!has(cc->tenant_id) || !has(cc->client_id) ||
				       (!has(cc->client_secret) && !has(cc->client_secret_file))))
		problem(p, f, cc->line,
			"%s: source secret needs tenant_id, client_id and client_secret or "
			"client_secret_file",
			what);
	if (!strcmp(src, "certificate") &&
	    (!has(cc->tenant_id) || !has(cc->client_id) || !has(cc->certificate_path)))
		problem(p, f, cc->line,
			"%s: source certificate needs tenant_id, client_id and certificate_path",
			what);
	check_secret_file(p, f, cc->line, what, "file", cc->file);
	check_secret_file(p, f, cc->line, what, "client_secret_file", cc->client_secret_file);
	check_secret_file(p, f, cc->line, what, "certificate_path", cc->certificate_path);
}

static void validate_pool(const struct pp_config *c, const struct pp_pool_conf *pc,
			  struct problems *p)
{
	const char *f = pc->file;
	if (has(pc->credentials)) {
		const struct pp_cred_conf *cc = pp_config_cred(c, pc->credentials);
		const struct pp_provider *prov = pp_provider_find(pc->type);
		const char *want = prov ? prov->cred_type : NULL;
		if (!cc)
			problem(p, f, pc->line, "pool \"%s\": credentials \"%s\" is not defined",
				pc->name, pc->credentials);
		else if (want && has(cc->type) && strcmp(want, cc->type))
			problem(p, f, pc->line,
				"pool \"%s\": type %s needs %s credentials, but \"%s\" is %s",
				pc->name, pc->type, want, cc->name, cc->type);
	}
	/* Open the pool as serve would (its credentials and the Prefect key
	 * are checked above and below): a pool check passes is one serve runs. */
	struct pp_pool *pool = NULL;
	struct pp_error perr = {0};
	if (pp_pool_open(c, pc, PP_POOL_CHECK, &pool, &perr))
		problem(p, f, pc->line, "%s", perr.msg);
	pp_pool_close(pool);
}

int pp_config_validate(const struct pp_config *c, struct pp_buf *out)
{
	struct problems p = {.out = out};
	const char *file = c->path ? c->path : "environment";
	for (size_t i = 0; i < c->npools; i++)
		validate_pool(c, &c->pools[i], &p);
	for (size_t i = 0; i < c->ncreds; i++)
		validate_cred(&c->creds[i], &p);
	check_secret_file(&p, file, 0, "[dispatcher]", "prefect_api_key_file",
			  c->dispatcher.prefect_api_key_file);
	if (c->prefect.enabled) {
		check_secret_file(&p, file, 0, "[source \"prefect\"]", "api_key_file",
				  c->prefect.api_key_file);
		/* Each name in the comma list must be a configured pool. */
		const char *s = c->prefect.pools;
		while (s && *s) {
			size_t n = strcspn(s, ",");
			char name[PP_NAME_MAX + 1];
			const char *a = s;
			while (n && isspace((unsigned char)*a)) {
				a++;
				n--;
			}
			while (n && isspace((unsigned char)a[n - 1]))
				n--;
			snprintf(name, sizeof(name), "%.*s", (int)n, a);
			if (*name && !pp_config_pool(c, name))
				problem(&p, file, 0,
					"[source \"prefect\"] pools: no [pool \"%s\"] section",
					name);
			s += strcspn(s, ",");
			if (*s)
				s++;
		}
	}
	return p.count ? PP_EINVALID : 0;
}

/* ------------------------------------------------------------ documentation */

static void type_text(const struct key_def *k, char *out, size_t n)
{
	switch (k->type) {
	case T_STRING: snprintf(out, n, "string"); break;
	case T_SECRET: snprintf(out, n, "secret string"); break;
	case T_INT: snprintf(out, n, "integer %.0f..%.0f", k->min, k->max); break;
	case T_SECONDS: snprintf(out, n, "seconds %g..%g", k->min, k->max); break;
	case T_BOOL: snprintf(out, n, "boolean"); break;
	case T_ENUM: {
		char list[256];
		choices_text(k->choices, list, sizeof(list));
		snprintf(out, n, "one of: %s", list);
		break;
	}
	case T_PATH: snprintf(out, n, "path"); break;
	case T_POOL_TYPE: snprintf(out, n, "pool type"); break;
	case T_JSON_OBJECT: snprintf(out, n, "JSON object"); break;
	}
}

static void env_name(const struct key_def *k, char *out, size_t n)
{
	char up[64];
	env_upper(k->name, up, sizeof(up));
	snprintf(out, n, "PUSHPOOL_%s_%s%s", section_defs[k->sec].env,
		 section_defs[k->sec].named ? "<NAME>_" : "", up);
}

/* Markdown table cells must not contain a bare '|'. */
static int put_cell(struct pp_buf *out, const char *s)
{
	int rc = 0;
	for (; *s && !rc; s++)
		rc = *s == '|' ? pp_buf_puts(out, "\\|") : pp_buf_putc(out, *s);
	return rc;
}

/* Wrap a description into "# " comment lines of at most 80 columns. */
static int put_comment(struct pp_buf *out, const char *text)
{
	int rc = 0;
	while (*text && !rc) {
		size_t n = strlen(text);
		if (n > 76) {
			n = 76;
			while (n && text[n] != ' ')
				n--;
			if (!n)
				n = strcspn(text, " ");
		}
		rc = pp_buf_printf(out, "# %.*s\n", (int)n, text);
		text += n;
		while (*text == ' ')
			text++;
	}
	return rc;
}

static const char markdown_intro[] =
	"# pushpool configuration\n\n"
	"Generated by `pushpool check --print-defaults --markdown`.\n\n"
	"An INI file (`-c FILE`, `$PUSHPOOL_CONFIG`, else `/etc/pushpool/pushpool.conf`). "
	"Comments start with `;` or `#`; a value may be wrapped in double quotes. Relative paths "
	"are taken from the configuration file's directory. Every key can be overridden from the "
	"environment by the variable shown; for named sections NAME is the section name "
	"uppercased with other characters as `_`, and the section must exist in the file. "
	"Durations take an optional unit: `ms`, `s`, `m`, `h`.\n\n"
	"`pushpool check -c FILE` validates a file and reports every problem as "
	"`FILE:LINE: message`; `--print` adds the effective configuration with secrets shown "
	"as `[REDACTED]`. `examples/pushpool.conf` uses every section.\n";

int pp_config_print_defaults(struct pp_buf *out, bool markdown)
{
	int rc = 0;
	if (markdown)
		rc = pp_buf_puts(out, markdown_intro);
	for (int sec = 0; sec < SEC_COUNT && !rc; sec++) {
		const struct section_def *sd = &section_defs[sec];
		if (markdown) {
			rc = pp_buf_printf(out, "\n## [%s]\n\n%s\n\n%s", sd->header, sd->desc,
					   "| key | type | default | environment | description |\n"
					   "|---|---|---|---|---|\n");
		} else {
			rc = pp_buf_printf(out, "%s[%s]\n", sec ? "\n" : "", sd->header);
			if (!rc)
				rc = put_comment(out, sd->desc);
		}
		for (size_t i = 0; i < NKEYS && !rc; i++) {
			const struct key_def *k = &keys[i];
			char type[300], env[128];
			if (k->sec != (enum section_kind)sec)
				continue;
			type_text(k, type, sizeof(type));
			env_name(k, env, sizeof(env));
			const char *def = k->def ? k->def : "";
			if (markdown) {
				rc = pp_buf_printf(out, "| `%s` | ", k->name);
				if (!rc)
					rc = put_cell(out, type);
				if (!rc && *def)
					rc = pp_buf_printf(out, " | `%s` | `%s` | ", def, env);
				else if (!rc)
					rc = pp_buf_printf(out, " | %s | `%s` | ",
							   k->required ? "required" : "", env);
				if (!rc)
					rc = put_cell(out, k->desc);
				if (!rc)
					rc = pp_buf_puts(out, " |\n");
			} else {
				rc = pp_buf_printf(out, "\n# %s (%s%s), %s\n", k->name, type,
						   k->required ? ", required" : "", env);
				if (!rc)
					rc = put_comment(out, k->desc);
				if (!rc)
					rc = pp_buf_printf(out, ";%s =%s%s\n", k->name,
							   *def ? " " : "", def);
			}
		}
	}
	return rc;
}

static int print_value(struct pp_buf *out, const struct key_def *k, const void *base)
{
	const char *field = (const char *)base + k->off;
	switch (k->type) {
	case T_INT: return pp_buf_printf(out, "%s = %ld\n", k->name, *(const long *)field);
	case T_SECONDS: return pp_buf_printf(out, "%s = %g\n", k->name, *(const double *)field);
	case T_BOOL:
		return pp_buf_printf(out, "%s = %s\n", k->name,
				     *(const bool *)field ? "true" : "false");
	default: break;
	}
	const char *v = *(char *const *)field;
	if (!v || !*v)
		return 0;
	if (k->type == T_SECRET)
		return pp_buf_printf(out, "%s = [REDACTED]\n", k->name);
	size_t n = strlen(v);
	bool quote = isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1]) ||
		     (v[0] == '"' && k->type != T_JSON_OBJECT);
	const char *q = quote ? "\"" : "";
	return pp_buf_printf(out, "%s = %s%s%s\n", k->name, q, v, q);
}

static int print_section(struct pp_buf *out, enum section_kind sec, const char *name,
			 const void *base)
{
	int rc;
	if (sec == SEC_POOL || sec == SEC_CREDS)
		rc = pp_buf_printf(out, "\n[%s \"%s\"]\n", sec == SEC_POOL ? "pool" : "credentials",
				   name);
	else
		rc = pp_buf_printf(out, "%s[%s]\n", sec == SEC_DISPATCHER ? "" : "\n",
				   section_defs[sec].header);
	for (size_t i = 0; i < NKEYS && !rc; i++)
		if (keys[i].sec == sec)
			rc = print_value(out, &keys[i], base);
	return rc;
}

int pp_config_print(const struct pp_config *c, struct pp_buf *out)
{
	size_t start = out->len;
	int rc = print_section(out, SEC_DISPATCHER, NULL, &c->dispatcher);
	if (!rc)
		rc = print_section(out, SEC_STORE, NULL, &c->store);
	if (!rc && c->prefect.enabled)
		rc = print_section(out, SEC_PREFECT, NULL, &c->prefect);
	for (size_t i = 0; i < c->npools && !rc; i++)
		rc = print_section(out, SEC_POOL, c->pools[i].name, &c->pools[i]);
	for (size_t i = 0; i < c->ncreds && !rc; i++)
		rc = print_section(out, SEC_CREDS, c->creds[i].name, &c->creds[i]);
	/* Secrets inside other values (a store URL's password) too. */
	if (!rc && out->data)
		pp_redact(out->data + start);
	if (!rc && out->data)
		out->len = start + strlen(out->data + start);
	return rc;
}
