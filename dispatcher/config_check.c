/* Configuration validation: what a file can only be judged on as a whole
 * (pools name defined credentials of the right type, each pool opens as
 * serve opens it, secret files are readable and private). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dispatcher/config_impl.h"
#include "dispatcher/pool.h"
#include "providers/provider.h"

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
