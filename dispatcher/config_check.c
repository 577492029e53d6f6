/* Configuration validation: what a file can only be judged on as a whole
 * (pools name defined credentials of the right type, each pool opens as
 * serve opens it, secret files are readable and private). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "dispatcher/config_impl.h"
#include "dispatcher/deploy_spec.h"
#include "lib/clock.h"
#include "lib/file.h"
#include "lib/time.h"
#include "dispatcher/metrics.h"
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

/* A bundle of authorities is public: read, not held to a secret's mode.
 * One that holds no certificate would fail every HTTPS request later, with
 * libcurl's word for it; here it fails `check`. */
#define CA_FILE_MAX ((size_t)4 << 20)
static void check_ca_file(struct problems *p, const char *file, const char *path)
{
	struct pp_buf b;
	struct pp_error e = {0};
	pp_buf_init(&b, CA_FILE_MAX);
	if (pp_file_read(path, CA_FILE_MAX, &b, &e))
		problem(p, file, 0, "[dispatcher] ca_file %s", e.msg);
	else if (!b.data || !strstr(pp_buf_str(&b), "-----BEGIN CERTIFICATE-----"))
		problem(p, file, 0, "[dispatcher] ca_file %s: no PEM certificate in it", path);
	pp_buf_free(&b);
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

/* Whether host (as in a URL, IPv6 in brackets) is this machine or its
 * link: loopback, or link-local, where the cloud metadata services answer
 * plain HTTP by design (169.254.169.254). */
static bool host_is_local(const char *host, size_t n)
{
	char h[256];
	if (n >= sizeof(h))
		return false;
	memcpy(h, host, n);
	h[n] = '\0';
	if (!strcasecmp(h, "localhost") || (n > 10 && !strcasecmp(h + n - 10, ".localhost")))
		return true;
	struct in_addr a4;
	if (inet_pton(AF_INET, h, &a4) == 1) {
		uint32_t ip = ntohl(a4.s_addr);
		return (ip >> 24) == 127 || (ip >> 16) == 0xa9fe; /* 127/8, 169.254/16 */
	}
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		h[n - 1] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, h + 1, &a6) == 1)
			return IN6_IS_ADDR_LOOPBACK(&a6) || IN6_IS_ADDR_LINKLOCAL(&a6);
	}
	return false;
}

/* A plain-http URL to another host sends requests, tokens and signatures
 * in clear: a warning (check still passes; the mock and test rigs use it),
 * naming the key and the host but not the URL, which may hold a password. */
static void warn_plain_http(struct problems *p, const char *file, int line, const char *where,
			    const char *key, const char *url)
{
	if (!url || strncasecmp(url, "http://", 7))
		return;
	const char *host = url + 7;
	size_t n = strcspn(host, "/?#");
	const char *at = memrchr(host, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - host);
		host = at + 1;
	}
	if (host[0] == '[') {
		const char *close = memchr(host, ']', n);
		n = close ? (size_t)(close - host) + 1 : n;
	} else {
		const char *colon = memchr(host, ':', n);
		n = colon ? (size_t)(colon - host) : n;
	}
	if (host_is_local(host, n))
		return;
	if (line > 0)
		pp_buf_printf(p->out, "%s:%d: ", file, line);
	else
		pp_buf_printf(p->out, "%s: ", file);
	/* Only a warning: `check` still passes, it is not counted. */
	pp_buf_printf(p->out,
		      "warning: %s %s: plain http:// to %.*s, which is not loopback: requests "
		      "and their credentials travel unencrypted; use https://\n",
		      where, key, (int)n, host);
}

static void warn_plain_http_all(const struct pp_config *c, struct problems *p, const char *file)
{
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct key_def *k = &config_keys[i];
		if (k->type != T_STRING && k->type != T_STORE_URL)
			continue;
		size_t n = config_named_count(c, k->sec);
		for (size_t j = 0; j < n; j++) {
			char where[PP_NAME_MAX + 32];
			const char *f = file;
			int line = 0;
			if (config_sections[k->sec].named) {
				const char *nm, *nf;
				config_named_at(c, k->sec, j, &nm, &nf, &line);
				snprintf(where, sizeof(where), "[%s \"%s\"]",
					 config_section_word(k->sec), nm);
			} else {
				snprintf(where, sizeof(where), "[%s]",
					 config_sections[k->sec].header);
			}
			const void *base = config_section_base((struct pp_config *)c, k->sec, j);
			warn_plain_http(p, f, line, where, k->name,
					*(char *const *)((const char *)base + k->off));
		}
	}
}

/* A key `provision apply --create-key` wrote (a file under
 * STATE_DIR/provision/) gets old: warn after this many days. */
#define PROVISIONED_KEY_MAX_DAYS 90

static void warn_old_provisioned_key(const struct pp_config *c, const struct pp_cred_conf *cc,
				     struct problems *p)
{
	char dir[CONFIG_PATH_MAX + 32];
	struct stat sb;

	snprintf(dir, sizeof(dir), "%s/provision/", c->dispatcher.state_dir);
	if (!has(cc->file) || strncmp(cc->file, dir, strlen(dir)) || stat(cc->file, &sb))
		return;
	long days = (long)((time(NULL) - sb.st_mtime) / 86400);
	if (days > PROVISIONED_KEY_MAX_DAYS)
		/* Only a warning: `check` still passes, it is not counted. */
		pp_buf_printf(
			p->out,
			"%s:%d: warning: credentials \"%s\": key file %s made by `pushpool "
			"provision apply` is %ld days old; rotate it: remove the file and "
			"apply again with --create-key (as an administrator: --credentials)\n",
			cc->file_name, cc->line, cc->name, cc->file, days);
}

/* A client secret (Entra ID) ends on its expiry date: warn this many days
 * before, when there is still time to make a new one. */
#define SECRET_WARN_DAYS 30

static void warn_secret_expiry(const struct pp_cred_conf *cc, struct problems *p)
{
	int64_t end;

	if (!has(cc->client_secret_expires))
		return;
	if (pp_time_parse(cc->client_secret_expires, 0, &end)) {
		problem(p, cc->file_name, cc->line,
			"credentials \"%s\": client_secret_expires \"%s\" is not an RFC 3339 time",
			cc->name, cc->client_secret_expires);
		return;
	}
	long days = (long)((end - pp_wall_ms()) / 86400000);
	if (end <= pp_wall_ms())
		pp_buf_printf(
			p->out,
			"%s:%d: warning: credentials \"%s\": the client secret expired on %s; "
			"make a new one: pushpool provision apply --create-key\n",
			cc->file_name, cc->line, cc->name, cc->client_secret_expires);
	else if (days < SECRET_WARN_DAYS)
		pp_buf_printf(
			p->out,
			"%s:%d: warning: credentials \"%s\": the client secret expires on %s, "
			"in %ld days; make a new one before: remove the secret file and run "
			"pushpool provision apply --create-key\n",
			cc->file_name, cc->line, cc->name, cc->client_secret_expires, days);
}

int pp_config_validate(const struct pp_config *c, struct pp_buf *out)
{
	struct problems p = {.out = out};
	const char *file = c->path ? c->path : "environment";
	warn_plain_http_all(c, &p, file);
	for (size_t i = 0; i < c->npools; i++)
		validate_pool(c, &c->pools[i], &p);
	for (size_t i = 0; i < c->ncreds; i++) {
		validate_cred(&c->creds[i], &p);
		warn_old_provisioned_key(c, &c->creds[i], &p);
		warn_secret_expiry(&c->creds[i], &p);
	}
	if (c->ndeployments || c->nschedules) {
		/* Deployments as `pushpool deploy` would apply them; the
		 * message starts with FILE:LINE already. */
		struct pp_deploy_spec *specs = NULL;
		size_t n = 0;
		struct pp_error derr = {0};
		if (pp_deploy_specs_from_config(c, &specs, &n, &derr)) {
			pp_buf_printf(out, "%s\n", derr.msg);
			p.count++;
		} else {
			pp_deploy_specs_free(specs, n);
		}
	}
	if (has(c->dispatcher.metrics_listen)) {
		struct sockaddr_in sa;
		struct pp_error merr = {0};
		if (pp_metrics_parse_listen(c->dispatcher.metrics_listen, &sa, &merr))
			problem(&p, file, 0, "[dispatcher] %s", merr.msg);
	}
	if (has(c->dispatcher.ca_file))
		check_ca_file(&p, file, c->dispatcher.ca_file);
	check_secret_file(&p, file, 0, "[dispatcher]", "prefect_api_key_file",
			  c->dispatcher.prefect_api_key_file);
	check_secret_file(&p, file, 0, "[dispatcher]", "ui_token_file",
			  c->dispatcher.ui_token_file);
	if (c->prefect.enabled) {
		check_secret_file(&p, file, 0, "[source \"prefect\"]", "api_key_file",
				  c->prefect.api_key_file);
		check_secret_file(&p, file, 0, "[source \"prefect\"]", "api_auth_string_file",
				  c->prefect.api_auth_string_file);
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
