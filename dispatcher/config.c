/* Configuration parsing: the INI file (inih), defaults and environment
 * overrides, every value checked against its entry in the key table
 * (config_keys.c), so a key exists in exactly one place. */
#include "dispatcher/config.h"

#include <ctype.h>
#include <dirent.h>
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

#include "lib/file.h"
#include "lib/json.h"
#include "lib/log.h"
#include "providers/provider.h"
#include "dispatcher/config_impl.h"

extern char **environ;

/* ---------------------------------------------------------------- problems */

void config_vproblem(struct problems *p, const char *file, int line, const char *fmt, va_list ap)
{
	if (line > 0)
		pp_buf_printf(p->out, "%s:%d: ", file, line);
	else
		pp_buf_printf(p->out, "%s: ", file);
	pp_buf_vprintf(p->out, fmt, ap);
	pp_buf_putc(p->out, '\n');
	p->count++;
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
	bool dropin;	      /* a file of the drop-in directory: named sections re-open */
	enum section_kind sec;
	size_t idx;
	int prefect_line;
	int key_line[CONFIG_KEYS_MAX]; /* where singleton-section keys were last set */
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
		const char *in = sec == SEC_POOL ? c->pools[i].file : c->creds[i].file_name;
		if (!strcmp(other, name) && st->dropin && in != st->file) {
			/* A drop-in adds to or overrides the keys of another
			 * file's section; twice in one file is a mistake. */
			st->idx = i;
			return 0;
		}
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
		v[n].file = st->file;
		v[n].line = st->line;
		c->npools++;
	} else {
		struct pp_cred_conf *v = realloc(c->creds, (n + 1) * sizeof(*v));
		if (!v)
			return pp_fail(st->err, PP_ENOMEM, "out of memory");
		c->creds = v;
		memset(&v[n], 0, sizeof(v[n]));
		snprintf(v[n].name, sizeof(v[n].name), "%s", name);
		v[n].file_name = st->file;
		v[n].line = st->line;
		c->ncreds++;
	}
	st->idx = n;
	return config_apply_defaults(c, sec, n, st->err);
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
		const char *hint = config_closest(word, words, sizeof(words) / sizeof(words[0]));
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
		/* Byte by byte rather than fgets, which cannot tell a NUL in the
		 * line from its end. */
		size_t n = 0;
		int ch = EOF;
		bool nul = false;
		while (n < INI_LINE_MAX - 2 && (ch = getc(st->fp)) != EOF) {
			nul |= ch == '\0';
			st->buf[n++] = (char)ch;
			if (ch == '\n')
				break;
		}
		if (!n)
			return NULL;
		st->buf[n] = '\0';
		st->line++;
		st->len = n;
		st->off = 0;
		bool cut = false;
		if (st->buf[n - 1] != '\n' && ch != EOF) {
			/* At the cap: only a newline or the end may follow. */
			ch = getc(st->fp);
			if (ch == '\n') {
				st->buf[n++] = '\n';
				st->buf[n] = '\0';
				st->len = n;
			} else {
				cut = ch != EOF;
			}
		}
		if (cut || nul) {
			if (nul)
				problem(st->p, st->file, st->line, "NUL byte in the configuration");
			else
				problem(st->p, st->file, st->line, "line longer than %d bytes",
					INI_LINE_MAX - 2);
			while (ch != EOF && ch != '\n' && st->buf[n - 1] != '\n')
				ch = getc(st->fp);
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
	const struct key_def *k = config_key_find(st->sec, name);
	if (!k) {
		const char *hint = config_closest_key(st->sec, name);
		char where[PP_NAME_MAX + 32];
		if (st->sec == SEC_POOL)
			snprintf(where, sizeof(where), "pool \"%s\"", st->c->pools[st->idx].name);
		else if (st->sec == SEC_CREDS)
			snprintf(where, sizeof(where), "credentials \"%s\"",
				 st->c->creds[st->idx].name);
		else
			snprintf(where, sizeof(where), "%s", config_sections[st->sec].header);
		problem(st->p, st->file, st->line, "unknown key \"%s\" in [%s]%s%s%s", name, where,
			hint ? "; did you mean \"" : "", hint ? hint : "", hint ? "\"?" : "");
		return 1;
	}
	char why[PP_ERRMSG_MAX];
	void *base = config_section_base(st->c, st->sec, st->idx);
	int rc = config_set_value(k, base, value, st->dir, why, sizeof(why));
	if (rc == PP_ENOMEM) {
		pp_fail(st->err, PP_ENOMEM, "out of memory");
		return 0;
	}
	if (rc)
		problem(st->p, st->file, st->line, "%s: %s", name, why);
	else if (!config_sections[st->sec].named)
		st->key_line[k - config_keys] = st->line;
	return 1;
}

/* ------------------------------------------------------ environment values */

void config_env_upper(const char *s, char *out, size_t n)
{
	size_t i = 0;
	for (; s[i] && i < n - 1; i++)
		out[i] = isalnum((unsigned char)s[i]) ? (char)toupper((unsigned char)s[i]) : '_';
	out[i] = '\0';
}

/* rest is the part after PUSHPOOL_<SECTION>_ (and NAME_ for named sections). */
static const struct key_def *env_key(enum section_kind sec, const char *rest, size_t rest_len)
{
	for (size_t i = 0; i < config_nkeys; i++) {
		char up[64];
		if (config_keys[i].sec != sec)
			continue;
		config_env_upper(config_keys[i].name, up, sizeof(up));
		if (strlen(up) == rest_len && !strncmp(up, rest, rest_len))
			return &config_keys[i];
	}
	return NULL;
}

static int env_set(struct pp_config *c, const struct key_def *k, size_t idx, const char *var,
		   const char *value, struct problems *p, struct pp_error *err)
{
	char why[PP_ERRMSG_MAX];
	int rc = config_set_value(k, config_section_base(c, k->sec, idx), value, NULL, why,
				  sizeof(why));
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
		const struct section_def *sd = &config_sections[sec];
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
			config_env_upper(sec == SEC_POOL ? c->pools[i].name : c->creds[i].name, up,
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
	for (size_t i = 0; i < config_nkeys; i++)
		if (config_keys[i].sec == SEC_DISPATCHER && !strcmp(config_keys[i].name, name))
			return st->key_line[i];
	return 0;
}

static int hex_value(char ch)
{
	return isdigit((unsigned char)ch) ? ch - '0' : (tolower((unsigned char)ch) - 'a' + 10);
}

/* Register a credential found in a URL, as written and percent-decoded
 * (libpq and libcurl send the decoded form). */
static void register_url_part(const char *v, size_t n)
{
	char *raw = n ? strndup(v, n) : NULL, *dec = n ? malloc(n + 1) : NULL;
	if (raw && dec) {
		pp_secret_register(raw);
		size_t j = 0;
		for (size_t i = 0; i < n; i++) {
			if (raw[i] == '%' && isxdigit((unsigned char)raw[i + 1]) &&
			    isxdigit((unsigned char)raw[i + 2])) {
				dec[j++] =
					(char)(hex_value(raw[i + 1]) << 4 | hex_value(raw[i + 2]));
				i += 2;
			} else {
				dec[j++] = raw[i];
			}
		}
		dec[j] = '\0';
		if (strlen(dec) == j && strcmp(dec, raw))
			pp_secret_register(dec);
	}
	free(raw);
	free(dec);
}

/* Query parameters that carry a credential: libpq's password and
 * sslpassword (the client key's passphrase), and whatever else names a
 * password, secret, token or key value. */
static bool credential_param(const char *name, size_t n)
{
	static const char *const words[] = {"password", "passwd", "secret",	"token",
					    "api_key",	"apikey", "access_key", "sig"};
	char low[64];
	if (n >= sizeof(low))
		return false;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)tolower((unsigned char)name[i]);
	low[n] = '\0';
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strstr(low, words[i]))
			return true;
	return false;
}

/* Every credential part of a URL is a secret, wherever it sits: the
 * password of "scheme://user:password@host/..." and the value of a query
 * parameter such as "?password=" or "&sslpassword=". */
static void register_url_secrets(const char *url)
{
	const char *scheme = url ? strstr(url, "://") : NULL;
	if (!scheme)
		return;
	const char *auth = scheme + 3;
	size_t auth_len = strcspn(auth, "/?#");
	const char *at = memrchr(auth, '@', auth_len);
	const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (colon)
		register_url_part(colon + 1, (size_t)(at - colon - 1));
	const char *q = strchr(auth, '?');
	while (q && *q && *q != '#') {
		q++;
		size_t plen = strcspn(q, "&#");
		const char *eq = memchr(q, '=', plen);
		if (eq && credential_param(q, (size_t)(eq - q)))
			register_url_part(eq + 1, plen - (size_t)(eq - q) - 1);
		q += plen;
		if (*q != '&')
			break;
	}
}

/* Every string value that is a URL (the store's, endpoints, token and API
 * URLs), in every section. */
static void register_config_url_secrets(struct pp_config *c)
{
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct key_def *k = &config_keys[i];
		if (k->type != T_STRING && k->type != T_STORE_URL)
			continue;
		size_t n = k->sec == SEC_POOL ? c->npools : k->sec == SEC_CREDS ? c->ncreds : 1;
		for (size_t j = 0; j < n; j++) {
			const char *v =
				*(char *const *)((const char *)config_section_base(c, k->sec, j) +
						 k->off);
			register_url_secrets(v);
		}
	}
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
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct key_def *k = &config_keys[i];
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
	register_config_url_secrets(c);
}

/* ------------------------------------------------------------ public API */

int pp_config_init(struct pp_config *c, struct pp_error *err)
{
	memset(c, 0, sizeof(*c));
	for (int sec = SEC_DISPATCHER; sec <= SEC_PREFECT; sec++) {
		int rc = config_apply_defaults(c, (enum section_kind)sec, 0, err);
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

/* Parse one file into st->c: the main file, or (st->dropin) one of its
 * drop-ins. A missing file is PP_ENOTFOUND; problems go to st->p. */
static int parse_file(struct parse_state *st, const char *path)
{
	struct pp_error *err = st->err;

	st->file = path;
	st->line = 0;
	st->len = st->off = 0;
	st->in_section = false;
	if (!(st->dir = dir_of(path)) || !(st->buf = malloc(INI_LINE_MAX))) {
		free(st->dir);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	/* A directory, FIFO or device (-c /dev/zero) is refused here
	 * instead of read as an empty file or forever. */
	int fd = pp_file_open(path, err);
	if (fd >= 0 && !(st->fp = fdopen(fd, "r")))
		close(fd);
	if (!st->fp) {
		int e = errno, code = fd >= 0 ? PP_EIO : fd;
		free(st->dir);
		free(st->buf);
		st->dir = st->buf = NULL;
		if (code != PP_EINVALID)
			return pp_fail(err, code, "%s: cannot open: %s", path, strerror(e));
		/* Not a file: no input, like a missing one (not a
		 * configuration error, which check reports line by line). */
		err->code = PP_ENOTFOUND;
		return PP_ENOTFOUND;
	}
	/* Long lines (a job_variables object) need inih's growing heap
	 * buffer; Debian's build makes these runtime switches. */
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_allow_multiline = false;
	ini_max_line = INI_LINE_MAX + 8;
	int ini_rc = ini_parse_stream(counting_reader, st, handle_key, st);
	fclose(st->fp);
	st->fp = NULL;
	free(st->dir);
	free(st->buf);
	st->dir = st->buf = NULL;
	if (err->code)
		return err->code;
	if (ini_rc == -2)
		return pp_fail(err, PP_ENOMEM, "%s: out of memory", path);
	if (ini_rc > 0)
		problem(st->p, path, ini_rc,
			"syntax error: expected [section], key = value, or a comment");
	return 0;
}

static int dropin_filter(const struct dirent *e)
{
	size_t n = strlen(e->d_name);
	return e->d_name[0] != '.' && n > 5 && !strcmp(e->d_name + n - 5, ".conf");
}

/* The files FILE.d/NAME.conf after FILE, in name order (`provision apply` writes its
 * drop-ins there). A drop-in may add sections, and re-open a [pool] or
 * [credentials] section of an earlier file to set its keys. */
static int parse_dropins(struct parse_state *st)
{
	struct pp_config *c = st->c;
	char dir[PATH_MAX];
	struct dirent **names = NULL;
	int rc = 0, n;

	if (pp_config_dropin_dir(c, dir, sizeof(dir)))
		return 0;
	n = scandir(dir, &names, dropin_filter, alphasort);
	if (n < 0)
		return errno == ENOENT || errno == ENOTDIR
			       ? 0
			       : pp_fail(st->err, PP_EIO, "%s: cannot read: %s", dir,
					 strerror(errno));
	for (int i = 0; i < n; i++) {
		char *path = NULL, **v;

		if (!rc && (asprintf(&path, "%s/%s", dir, names[i]->d_name) < 0 ||
			    !(v = realloc(c->dropins, (c->ndropins + 1) * sizeof(*v))))) {
			if (path && path != (char *)-1)
				free(path);
			rc = pp_fail(st->err, PP_ENOMEM, "out of memory");
		} else if (!rc) {
			c->dropins = v;
			c->dropins[c->ndropins++] = path;
			st->dropin = true;
			rc = parse_file(st, path);
			st->dropin = false;
			/* A file gone between the listing and the read, or one
			 * that is not a file: skipped, as if not there. */
			if (rc == PP_ENOTFOUND) {
				pp_error_clear(st->err);
				rc = 0;
			}
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int pp_config_dropin_dir(const struct pp_config *c, char *out, size_t size)
{
	if (!c->path)
		return PP_ENOTFOUND;
	return (size_t)snprintf(out, size, "%s.d", c->path) >= size ? PP_EINVALID : 0;
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
		if (!(c->path = strdup(path)))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		if ((rc = parse_file(&st, c->path)))
			return rc;
		if ((rc = parse_dropins(&st)))
			return rc;
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
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct key_def *k = &config_keys[i];
		if (!config_is_string_type(k->type))
			continue;
		if (k->sec == SEC_POOL) {
			for (size_t j = 0; j < c->npools; j++)
				free(*(char **)((char *)&c->pools[j] + k->off));
		} else if (k->sec == SEC_CREDS) {
			for (size_t j = 0; j < c->ncreds; j++)
				free(*(char **)((char *)&c->creds[j] + k->off));
		} else {
			free(*(char **)((char *)config_section_base(c, k->sec, 0) + k->off));
		}
	}
	free(c->pools);
	free(c->creds);
	for (size_t i = 0; i < c->ndropins; i++)
		free(c->dropins[i]);
	free(c->dropins);
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
