/* pushpool provision plan|apply|destroy -p POOL, and pool create NAME
 * --type TYPE --provision-infra: the cloud resources a pool needs
 * (provision/provision.h), with the pool's provisioning lock and journal in
 * the run store so two hosts never provision one pool at once. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dispatcher/cmd/cmd.h"
#include "dispatcher/config.h"
#include "dispatcher/loop.h"
#include "lib/log.h"
#include "provision/provision.h"
#include "store/store.h"

/* How long a lock lasts without renewal: every step and every poll of an
 * operation renews it, so only a dead apply lets it lapse. */
#define LOCK_LEASE_MS (120 * 1000)
/* Exit status of plan with changes pending (terraform plan -detailed-exitcode). */
#define EXIT_PENDING 2

enum verb { PLAN, APPLY, DESTROY };

struct args {
	enum verb verb;
	const char *config, *pool, *cred;
	bool yes;
	struct pp_prov_opts opts;
};

struct lock {
	struct pp_store *store;
	const char *pool;
	char owner[PP_PROV_OWNER_MAX];
	bool held;
};

static void usage(FILE *out)
{
	char types[256];

	pp_provisioner_types(types, sizeof(types));
	fprintf(out,
		"usage: pushpool provision plan|apply|destroy -p POOL [options]\n"
		"Create (apply), show (plan) or remove (destroy) the cloud resources pool\n"
		"POOL needs, through the clouds' APIs with the pool's credentials.\n"
		"Pool types with a provisioner: %s.\n\n"
		"  -p, --pool POOL          the [pool] section to provision\n"
		"  -c, --config FILE        configuration file\n"
		"      --credentials NAME   provision as this [credentials] section (default:\n"
		"                           the pool's own); keyless grants still go to the\n"
		"                           pool's identity\n"
		"  -y, --yes                apply or destroy without asking (needed when\n"
		"                           standard input is not a terminal)\n"
		"      --create-key         make a key for the pool's identity (default:\n"
		"                           keyless, grant the identity the dispatcher has)\n"
		"      --create-environment create the Modal environment when missing\n"
		"      --environment NAME   Modal environment (default: the pool's)\n"
		"      --location LOCATION  region or location (default: the pool's)\n"
		"      --contributor        Azure: grant the dispatcher Contributor on the\n"
		"                           resource group instead of the least custom role\n\n"
		"plan exits 0 when there is nothing to do and 2 when changes are pending.\n"
		"apply writes FILE.d/50-provision-POOL.conf (and key files, mode 0600, in\n"
		"STATE_DIR/provision/POOL); destroy removes only what carries the\n"
		"pushpool-pool label or was recorded as made by apply.\n",
		types);
}

/* ---- the lock and the journal ---- */

static int journal_save(void *ud, const char *owned, struct pp_error *err)
{
	struct lock *l = ud;

	return l->store->ops->prov_save(l->store, l->pool, l->owner, LOCK_LEASE_MS, owned, false,
					err);
}

/* A holder "HOST/PID" on this host whose process is gone (a killed apply)
 * gives way at once; any other waits for its lease to lapse. */
static bool holder_dead(const char *holder)
{
	char host[256];
	const char *slash = strrchr(holder, '/');
	long pid;

	if (!slash || gethostname(host, sizeof(host)))
		return false;
	host[sizeof(host) - 1] = '\0';
	if ((size_t)(slash - holder) != strlen(host) || strncmp(holder, host, strlen(host)))
		return false;
	pid = strtol(slash + 1, NULL, 10);
	return pid > 0 && kill((pid_t)pid, 0) && errno == ESRCH;
}

static int lock_take(struct lock *l, char **owned, struct pp_error *err)
{
	char host[200], holder[PP_PROV_OWNER_MAX];
	int rc;

	if (gethostname(host, sizeof(host)))
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(l->owner, sizeof(l->owner), "%s/%ld", host, (long)getpid());
	rc = l->store->ops->prov_lock(l->store, l->pool, l->owner, LOCK_LEASE_MS, NULL, owned,
				      holder, err);
	if (rc == PP_ECONFLICT && holder_dead(holder)) {
		char dead[PP_PROV_OWNER_MAX];

		snprintf(dead, sizeof(dead), "%s", holder);
		pp_info("provision %s: the lock's holder %s is gone; taking it over", l->pool,
			dead);
		pp_error_clear(err);
		rc = l->store->ops->prov_lock(l->store, l->pool, l->owner, LOCK_LEASE_MS, dead,
					      owned, holder, err);
	}
	l->held = rc == 0;
	return rc;
}

static void lock_release(struct lock *l, const char *owned)
{
	struct pp_error err = {0};

	if (l->held && l->store->ops->prov_save(l->store, l->pool, l->owner, 0, owned, true, &err))
		pp_warn("provision %s: releasing the lock: %s", l->pool, err.msg);
	l->held = false;
}

static void progress(void *ud, const char *line)
{
	(void)ud;
	printf("%s\n", line);
	fflush(stdout);
}

static bool confirm(const char *verb, int pending)
{
	char answer[16];

	printf("%s these %d change%s? Only 'yes' goes on: ", verb, pending,
	       pending == 1 ? "" : "s");
	fflush(stdout);
	if (!fgets(answer, sizeof(answer), stdin))
		return false;
	answer[strcspn(answer, "\n")] = '\0';
	return !strcmp(answer, "yes");
}

static int fail(const char *what, const struct pp_error *err)
{
	fprintf(stderr, "pushpool provision %s: %s\n", what, err->msg);
	return pp_exit_status(err->code);
}

static int keydir(const struct pp_config *cfg, const char *pool, char *out, size_t size)
{
	return (size_t)snprintf(out, size, "%s/provision/%s", cfg->dispatcher.state_dir, pool) >=
			       size
		       ? PP_EINVALID
		       : 0;
}

static int run_verb(const struct args *a)
{
	static const char *const names[] = {"plan", "apply", "destroy"};
	const char *what = names[a->verb];
	struct pp_config cfg;
	struct pp_error err = {0};
	struct pp_store *store = NULL;
	struct lock l = {.pool = a->pool};
	struct pp_prov_journal journal = {.ud = &l, .save = journal_save};
	struct pp_prov *p = NULL;
	struct pp_prov_out out = {0};
	struct pp_prov_opts opts = a->opts;
	struct pp_buf table;
	char *owned = NULL, *dropin = NULL, url[1024], dir[4096], kdir[4096];
	int rc, pending = 0, status = PP_EXIT_OK;

	pp_buf_init(&table, 1 << 20);
	if ((rc = pp_config_init(&cfg, &err)) ||
	    (rc = pp_config_load(&cfg, pp_cmd_config_path(a->config), &err))) {
		fprintf(stderr, "pushpool provision %s: %s\n", what, err.msg);
		pp_config_free(&cfg);
		return rc == PP_EINVALID ? PP_EXIT_CONFIG : pp_exit_status(rc);
	}
	if ((status = pp_cmd_trust("provision", &cfg))) {
		pp_config_free(&cfg);
		return status;
	}
	pp_store_url(&cfg, url, sizeof(url));
	if (!cfg.store.url || !*cfg.store.url)
		mkdir(cfg.dispatcher.state_dir, 0750);
	if ((rc = pp_store_open(url, &store, &err))) {
		status = fail(what, &err);
		goto out;
	}
	l.store = store;
	if (keydir(&cfg, a->pool, kdir, sizeof(kdir))) {
		pp_fail(&err, PP_EINVALID, "state path too long");
		status = fail(what, &err);
		goto out;
	}
	opts.keydir = kdir;
	if (!store->ops->prov_lock) {
		pp_fail(&err, PP_EINVALID, "the %s store keeps no provisioning state",
			store->ops->name);
		status = fail(what, &err);
		goto out;
	}
	/* plan only reads; apply and destroy hold the pool's lock throughout. */
	rc = a->verb == PLAN ? store->ops->prov_get(store, a->pool, &owned, &err)
			     : lock_take(&l, &owned, &err);
	if (rc == PP_ECONFLICT && a->verb != PLAN) {
		/* Another apply or destroy of this pool is under way: later. */
		fprintf(stderr, "pushpool provision %s: %s; try again when it is done\n", what,
			err.msg);
		status = PP_EXIT_TEMPFAIL;
		goto out;
	}
	if (!rc)
		rc = pp_prov_open(&cfg, a->pool, a->cred, &opts,
				  a->verb == DESTROY ? PP_PROV_MODE_DESTROY : PP_PROV_MODE_APPLY,
				  a->verb == PLAN ? NULL : &journal, owned, &p, &err);
	if (!rc)
		rc = pp_prov_inspect(p, &pending, &err);
	if (!rc)
		rc = pp_prov_plan_print(p, &table);
	if (rc) {
		status = fail(what, &err);
		goto out;
	}
	fputs(table.data ? table.data : "", stdout);
	if (pending == 0)
		printf("Nothing to do: pool %s's resources are %s.\n", a->pool,
		       a->verb == DESTROY ? "gone (or not ours)" : "in place");
	else
		printf("%d change%s pending.\n", pending, pending == 1 ? "" : "s");
	if (a->verb == PLAN) {
		status = pending ? EXIT_PENDING : PP_EXIT_OK;
		goto out;
	}
	if (pending && !a->yes) {
		if (!isatty(STDIN_FILENO)) {
			fprintf(stderr,
				"pushpool provision %s: standard input is not a terminal: "
				"confirm with --yes\n",
				what);
			status = PP_EXIT_USAGE;
			goto out;
		}
		if (!confirm(a->verb == APPLY ? "Apply" : "Destroy", pending)) {
			fprintf(stderr, "pushpool provision %s: not confirmed; nothing changed\n",
				what);
			status = PP_EXIT_TEMPFAIL;
			goto out;
		}
	}
	if ((rc = pp_prov_run(p, progress, NULL, &err))) {
		status = fail(what, &err);
		goto out;
	}
	if (pp_config_dropin_dir(&cfg, dir, sizeof(dir))) {
		pp_fail(&err, PP_EINVALID, "configuration or state path too long");
		status = fail(what, &err);
		goto out;
	}
	if (a->verb == DESTROY) {
		if ((rc = pp_prov_remove_dropin(a->pool, dir, kdir, &err))) {
			status = fail(what, &err);
			goto out;
		}
		printf("Destroyed what pushpool made for pool %s.\n", a->pool);
		goto out;
	}
	/* Written on every apply, changes or not: an apply killed after its
	 * last step but before this line is finished by the next one. */
	if ((rc = pp_prov_outputs(p, &out, &err)) ||
	    (rc = pp_prov_write_dropin(pp_config_pool(&cfg, a->pool), &out, dir, kdir, &dropin,
				       &err))) {
		status = fail(what, &err);
		goto out;
	}
	printf("Wrote %s%s.\n", dropin, out.nfiles ? " and the key file (mode 0600)" : "");
	printf("Next: pushpool -c %s check && pushpool -c %s run -p %s --wait\n", cfg.path,
	       cfg.path, a->pool);
	if (out.next_hint)
		printf("%s\n", out.next_hint);
out:
	if (p)
		lock_release(&l, pp_buf_str(&pp_prov_ctx_of(p)->owned));
	else if (l.held)
		lock_release(&l, owned ? owned : "");
	pp_prov_out_free(&out);
	pp_prov_close(p);
	free(owned);
	free(dropin);
	pp_buf_free(&table);
	pp_store_close(store);
	pp_config_free(&cfg);
	return status;
}

enum { OPT_CRED = 256, OPT_KEY, OPT_ENV_CREATE, OPT_ENV, OPT_LOCATION, OPT_CONTRIB };

static const struct option common_opts[] = {
	{"pool", required_argument, NULL, 'p'},
	{"config", required_argument, NULL, 'c'},
	{"yes", no_argument, NULL, 'y'},
	{"help", no_argument, NULL, 'h'},
	{"credentials", required_argument, NULL, OPT_CRED},
	{"create-key", no_argument, NULL, OPT_KEY},
	{"create-environment", no_argument, NULL, OPT_ENV_CREATE},
	{"environment", required_argument, NULL, OPT_ENV},
	{"location", required_argument, NULL, OPT_LOCATION},
	{"contributor", no_argument, NULL, OPT_CONTRIB},
	{"type", required_argument, NULL, 't'},
	{"provision-infra", no_argument, NULL, 'P'},
	{"endpoint", required_argument, NULL, 'e'},
	{"set", required_argument, NULL, 's'},
	{NULL, 0, NULL, 0},
};

/* Options both commands take; 1 when opt was not one of them. */
static int common_opt(int opt, struct args *a)
{
	switch (opt) {
	case 'p': a->pool = optarg; return 0;
	case 'c': a->config = optarg; return 0;
	case 'y': a->yes = true; return 0;
	case OPT_CRED: a->cred = optarg; return 0;
	case OPT_KEY: a->opts.create_key = true; return 0;
	case OPT_ENV_CREATE: a->opts.create_env = true; return 0;
	case OPT_ENV: a->opts.environment = optarg; return 0;
	case OPT_LOCATION: a->opts.location = optarg; return 0;
	case OPT_CONTRIB: a->opts.contributor = true; return 0;
	default: return 1;
	}
}

int pp_cmd_provision(int argc, char **argv)
{
	struct args a = {0};
	int opt;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return PP_EXIT_OK;
		}
	if (argc < 2) {
		usage(stderr);
		return PP_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "plan"))
		a.verb = PLAN;
	else if (!strcmp(argv[1], "apply"))
		a.verb = APPLY;
	else if (!strcmp(argv[1], "destroy"))
		a.verb = DESTROY;
	else {
		fprintf(stderr, "pushpool provision: unknown verb \"%s\" (plan, apply, destroy)\n",
			argv[1]);
		return PP_EXIT_USAGE;
	}
	optind = 1;
	while ((opt = getopt_long(argc - 1, argv + 1, "p:c:yh", common_opts, NULL)) != -1)
		if (common_opt(opt, &a)) {
			usage(stderr);
			return PP_EXIT_USAGE;
		}
	if (optind < argc - 1 || !a.pool) {
		fprintf(stderr, "pushpool provision %s: %s\n", argv[1],
			a.pool ? "unexpected argument" : "which pool? (-p POOL)");
		return PP_EXIT_USAGE;
	}
	return run_verb(&a);
}

/* ---- pool create ---- */

static void pool_usage(FILE *out)
{
	fprintf(out, "usage: pushpool pool create NAME --type TYPE [--credentials CRED]\n"
		     "                            [--endpoint URL] [--set KEY=JSON]...\n"
		     "                            [--provision-infra [--yes] [provision options]]\n"
		     "Write a [pool \"NAME\"] section to FILE.d/40-pool-NAME.conf; with\n"
		     "--provision-infra, then plan and apply its resources as `pushpool\n"
		     "provision apply -p NAME` does (see its --help for the options).\n"
		     "--set adds one job variable (a JSON value, or else a string).\n");
}

static int write_pool_section(const char *config, const char *name, const char *type,
			      const char *cred, const char *endpoint, const struct pp_json *vars)
{
	struct pp_config cfg;
	struct pp_error err = {0};
	char dir[4096], path[4200], tmp[4300];
	int rc, status = PP_EXIT_OK;
	FILE *f;

	if ((rc = pp_config_init(&cfg, &err)) ||
	    (rc = pp_config_load(&cfg, pp_cmd_config_path(config), &err))) {
		fprintf(stderr, "pushpool pool create: %s\n", err.msg);
		pp_config_free(&cfg);
		return rc == PP_EINVALID ? PP_EXIT_CONFIG : pp_exit_status(rc);
	}
	if (pp_config_pool(&cfg, name)) {
		const struct pp_pool_conf *pc = pp_config_pool(&cfg, name);

		fprintf(stderr, "pushpool pool create: pool %s exists (%s:%d)\n", name, pc->file,
			pc->line);
		pp_config_free(&cfg);
		return PP_EXIT_CONFIG;
	}
	if (cred && !pp_config_cred(&cfg, cred)) {
		fprintf(stderr, "pushpool pool create: no [credentials \"%s\"] in %s\n", cred,
			cfg.path);
		pp_config_free(&cfg);
		return PP_EXIT_CONFIG;
	}
	pp_config_dropin_dir(&cfg, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/40-pool-%s.conf", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	char *text = vars ? pp_json_to_string(vars, PP_JSON_COMPACT) : NULL;
	if ((mkdir(dir, 0755) && errno != EEXIST) || !(f = fopen(tmp, "w"))) {
		fprintf(stderr, "pushpool pool create: %s: %s\n", dir, strerror(errno));
		status = PP_EXIT_IOERR;
	} else {
		fprintf(f, "# Written by `pushpool pool create %s`.\n[pool \"%s\"]\ntype = %s\n",
			name, name, type);
		if (cred)
			fprintf(f, "credentials = %s\n", cred);
		if (endpoint)
			fprintf(f, "endpoint = %s\n", endpoint);
		if (text)
			fprintf(f, "job_variables = %s\n", text);
		if (fclose(f) || rename(tmp, path)) {
			fprintf(stderr, "pushpool pool create: %s: %s\n", path, strerror(errno));
			unlink(tmp);
			status = PP_EXIT_IOERR;
		} else {
			printf("Wrote %s.\n", path);
		}
	}
	free(text);
	pp_config_free(&cfg);
	if (status)
		return status;
	/* The new section must load: a bad type or credential is undone. */
	if ((rc = pp_config_init(&cfg, &err)) ||
	    (rc = pp_config_load(&cfg, pp_cmd_config_path(config), &err))) {
		fprintf(stderr, "pushpool pool create: %s\n", err.msg);
		unlink(path);
		status = PP_EXIT_CONFIG;
	}
	pp_config_free(&cfg);
	return status;
}

int pp_cmd_pool_create(int argc, char **argv)
{
	struct args a = {.verb = APPLY};
	const char *type = NULL, *endpoint = NULL;
	struct pp_json *vars = NULL;
	bool provision = false;
	int opt, status;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			pool_usage(stdout);
			return PP_EXIT_OK;
		}
	if (argc < 3 || strcmp(argv[1], "create")) {
		pool_usage(stderr);
		return PP_EXIT_USAGE;
	}
	a.pool = argv[2];
	optind = 1;
	while ((opt = getopt_long(argc - 2, argv + 2, "c:yh", common_opts, NULL)) != -1) {
		if (!common_opt(opt, &a))
			continue;
		if (opt == 't') {
			type = optarg;
		} else if (opt == 'P') {
			provision = true;
		} else if (opt == 'e') {
			endpoint = optarg;
		} else if (opt == 's') {
			const char *eq = strchr(optarg, '=');
			struct pp_json *v = NULL;
			char key[128];

			if (!eq || eq == optarg || (size_t)(eq - optarg) >= sizeof(key)) {
				fprintf(stderr, "pushpool pool create: --set KEY=VALUE, not %s\n",
					optarg);
				pp_json_free(vars);
				return PP_EXIT_USAGE;
			}
			snprintf(key, sizeof(key), "%.*s", (int)(eq - optarg), optarg);
			if (pp_json_parse(eq + 1, strlen(eq + 1), NULL, &v, NULL))
				v = pp_json_new_string(eq + 1);
			if ((!vars && !(vars = pp_json_new(PP_JSON_OBJECT))) || !v ||
			    pp_json_set(vars, key, v)) {
				pp_json_free(v);
				pp_json_free(vars);
				fprintf(stderr, "pushpool pool create: out of memory\n");
				return PP_EXIT_SOFTWARE;
			}
		} else {
			pool_usage(stderr);
			pp_json_free(vars);
			return PP_EXIT_USAGE;
		}
	}
	if (!type || optind < argc - 2) {
		fprintf(stderr, "pushpool pool create: %s\n",
			type ? "unexpected argument" : "which type? (--type TYPE)");
		pp_json_free(vars);
		return PP_EXIT_USAGE;
	}
	status = write_pool_section(a.config, a.pool, type, a.cred, endpoint, vars);
	pp_json_free(vars);
	if (status || !provision)
		return status;
	/* --credentials named the pool's own: it provisions as that. */
	a.cred = NULL;
	return run_verb(&a);
}
