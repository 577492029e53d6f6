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

#include "auth/auth.h"
#include "dispatcher/config_impl.h"
#include "lib/file.h"
#include "dispatcher/pool.h"
#include "providers/provider.h"

/* ------------------------------------------------------------- validation */

/* A file that holds a secret must be readable by us; warn when others can. */
static void check_secret_file(struct problems *p, const char *file, int line, const char *what,
			      const char *key, const char *path)
{
	if (!path || !*path)
		return;
	struct pp_error e = {0};
	int fd = pp_file_open(path, &e);
	if (fd < 0) {
		problem(p, file, line, "%s: %s %s", what, key, e.msg);
		return;
	}
	struct stat sb;
	if (fstat(fd, &sb) == 0 && sb.st_mode & 077)
		/* Only a warning: `check` still passes, it is not counted. */
		pp_buf_printf(p->out,
			      "%s:%d: warning: %s: file %s is readable by group/others "
			      "(mode %04o); chmod 600\n",
			      file, line, what, path, (unsigned)(sb.st_mode & 07777));
	close(fd);
}

static bool has(const char *s)
{
	return s && *s;
}

/* The per-cloud rules belong to the credential backends (auth/); what is
 * checked here is that the files a section names can be read. */
static void validate_cred(const struct pp_cred_conf *cc, struct problems *p)
{
	char what[PP_NAME_MAX + 16];
	const char *f = cc->file_name;
	struct pp_error err = {0};
	snprintf(what, sizeof(what), "credentials \"%s\"", cc->name);
	if (pp_cred_check(cc, &err)) {
		pp_buf_printf(p->out, "%s\n", err.msg);
		p->count++;
	}
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
