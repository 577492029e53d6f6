/* pushpool deployment ls | show | run | pause | resume | delete: the
 * deployments in the run store (docs/deployments.md). `pushpool deploy`
 * (cmd/deploy.c) creates and updates them from declarations. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatcher/cmd/cmd.h"
#include "dispatcher/config.h"
#include "dispatcher/deployment.h"
#include "lib/json.h"
#include "lib/schema.h"
#include "lib/time.h"
#include "render/render.h"
#include "store/deploy.h"
#include "store/store.h"

/* Next runs `show` lists. */
#define SHOW_NEXT 5
/* How often `run --watch` reads the run. */
#define WATCH_POLL_US 200000

static void usage(FILE *to)
{
	fprintf(to, "usage: pushpool deployment [-c FILE] ls\n"
		    "       pushpool deployment [-c FILE] show NAME\n"
		    "       pushpool deployment [-c FILE] run NAME [-p KEY=VALUE]... [-v "
		    "KEY=VALUE]...\n"
		    "                                     [--at TIME | --in DURATION] [--watch]\n"
		    "                                     [--timeout SECONDS]\n"
		    "       pushpool deployment [-c FILE] pause NAME [--schedule KEY]\n"
		    "       pushpool deployment [-c FILE] resume NAME [--schedule KEY]\n"
		    "       pushpool deployment [-c FILE] delete NAME\n"
		    "Deployments in the run store, as `pushpool deploy` applied them.\n"
		    "  ls        every deployment, its pool, schedules and next run\n"
		    "  show      one deployment, its schedules and its next runs\n"
		    "  run       a run now (or --at/--in): -p sets a parameter, -v a job variable\n"
		    "            (VALUE parsed as JSON when it is JSON); --watch follows it and\n"
		    "            exits 0 only when it SUCCEEDED (1 otherwise, 75 on --timeout)\n"
		    "  pause     no more scheduled runs; its unstarted future runs are removed\n"
		    "            (--schedule KEY: one schedule, KEY or a unique prefix of it)\n"
		    "  resume    schedules again from now\n"
		    "  delete    the deployment, its schedules and its unstarted runs\n"
		    "Exit status: 0 done, 64 usage, 65 bad parameters, 66 no such deployment,\n"
		    "78 configuration, 74/75 store errors.\n");
}

static void put(const char *label, const char *text)
{
	char *t = pp_cmd_printable(text ? text : "-");
	printf("%-15s%s\n", label, t ? t : "?");
	free(t);
}

static int find(struct pp_store *s, const char *name, struct pp_dep_rec **d)
{
	int n = 0;
	struct pp_error err = {0};
	if (pp_deploy_list(s, name, d, &n, &err)) {
		fprintf(stderr, "pushpool deployment: %s\n", err.msg);
		return pp_exit_status(err.code);
	}
	if (n == 0) {
		char *t = pp_cmd_printable(name);
		fprintf(stderr, "pushpool deployment: no deployment named \"%s\"\n", t ? t : "?");
		free(t);
		free(*d);
		*d = NULL;
		return PP_EXIT_NOINPUT;
	}
	return 0;
}

static void describe_rule(const struct pp_dep_sched *c, char *out, size_t n)
{
	if (!strcmp(c->kind, "interval"))
		snprintf(out, n, "every %llds", (long long)c->interval);
	else if (!strcmp(c->kind, "cron"))
		snprintf(out, n, "cron \"%s\"%s", c->cron ? c->cron : "",
			 c->day_or ? "" : " day_and");
	else
		snprintf(out, n, "rrule \"%s\"", c->rrule ? c->rrule : "");
}

/* The deployment's earliest unstarted run, 0 when none is made yet. */
static int64_t next_run(struct pp_store *s, const char *name)
{
	struct pp_run_rec *r = NULL;
	int n = 0;
	struct pp_error err = {0};
	int64_t at = 0;
	if (!pp_deploy_runs(s, name, PP_ST_SCHEDULED, 1, &r, &n, &err) && n)
		at = r[0].scheduled_ms;
	pp_run_recs_free(r, n);
	return at;
}

static int cmd_ls(struct pp_store *s)
{
	struct pp_dep_rec *d = NULL;
	int n = 0;
	struct pp_error err = {0};
	if (pp_deploy_list(s, NULL, &d, &n, &err)) {
		fprintf(stderr, "pushpool deployment ls: %s\n", err.msg);
		return pp_exit_status(err.code);
	}
	printf("%-28s  %-16s  %-12s  %-9s  %-6s  %s\n", "NAME", "POOL", "QUEUE", "SCHEDULES",
	       "PAUSED", "NEXT RUN");
	for (int i = 0; i < n; i++) {
		int active = 0;
		for (int j = 0; j < d[i].nsched; j++)
			active += d[i].sched[j].active;
		char sched[16], when[PP_TIME_LEN + 20] = "-";
		snprintf(sched, sizeof(sched), "%d/%d", active, d[i].nsched);
		int64_t at = next_run(s, d[i].name);
		bool made = at != 0;
		/* None made yet (no dispatcher has run since): the schedules say. */
		for (int j = 0; !made && !d[i].paused && j < d[i].nsched; j++) {
			int64_t slot;
			size_t got = 0;
			struct pp_error e = {0};
			if (d[i].sched[j].active &&
			    !pp_deployment_next_slots(&d[i].sched[j], pp_wall_ms() / 1000, 1, &slot,
						      &got, &e) &&
			    got && (!at || slot * 1000 < at))
				at = slot * 1000;
		}
		if (at)
			pp_time_format(at, false, when);
		if (at && !made)
			snprintf(when + strlen(when), sizeof(when) - strlen(when),
				 " (not made yet)");
		char *name = pp_cmd_printable(d[i].name), *pool = pp_cmd_printable(d[i].pool);
		char *queue = pp_cmd_printable(d[i].queue);
		printf("%-28s  %-16s  %-12s  %-9s  %-6s  %s\n", name ? name : "?",
		       pool ? pool : "?", queue ? queue : "?", sched, d[i].paused ? "yes" : "no",
		       when);
		free(name);
		free(pool);
		free(queue);
	}
	pp_dep_recs_free(d, n);
	return PP_EXIT_OK;
}

static int cmd_show(struct pp_store *s, const char *name)
{
	struct pp_dep_rec *d = NULL;
	int st = find(s, name, &d);
	if (st)
		return st;
	char limit[64] = "none";
	if (d->concurrency_limit > 0)
		snprintf(limit, sizeof(limit), "%d (collision %s)", d->concurrency_limit,
			 d->collision);
	put("name:", d->name);
	put("id:", d->id);
	put("pool:", d->pool);
	put("queue:", d->queue);
	put("paused:", d->paused ? "yes" : "no");
	put("description:", d->description);
	put("entrypoint:", d->entrypoint);
	put("parameters:", d->parameters);
	put("job variables:", d->job_variables);
	put("tags:", d->tags);
	put("concurrency:", limit);
	printf("schedules:\n");
	for (int i = 0; i < d->nsched; i++) {
		const struct pp_dep_sched *c = &d->sched[i];
		char rule[1200], line[1600];
		describe_rule(c, rule, sizeof(rule));
		snprintf(line, sizeof(line), "%s  %s  tz %s  %s  catchup %s  overlap %s%s%s",
			 c->key, rule, c->timezone ? c->timezone : "UTC",
			 c->active ? "active" : "inactive", c->catchup, c->overlap,
			 c->parameters && strcmp(c->parameters, "{}") ? "  parameters " : "",
			 c->parameters && strcmp(c->parameters, "{}") ? c->parameters : "");
		char *t = pp_cmd_printable(line);
		printf("  %s\n", t ? t : "?");
		free(t);
	}
	struct pp_run_rec *runs = NULL;
	int n = 0;
	struct pp_error err = {0};
	if (pp_deploy_runs(s, name, PP_ST_SCHEDULED, SHOW_NEXT, &runs, &n, &err)) {
		fprintf(stderr, "pushpool deployment show: %s\n", err.msg);
		pp_dep_recs_free(d, 1);
		return pp_exit_status(err.code);
	}
	printf("next runs:\n");
	for (int i = 0; i < n; i++) {
		char when[PP_TIME_LEN];
		pp_time_format(runs[i].scheduled_ms, false, when);
		char *w = pp_cmd_printable(runs[i].waiting ? runs[i].waiting : "");
		printf("  %s  %s  %s%s%s\n", when, runs[i].id,
		       runs[i].slot_key ? "scheduled" : "manual",
		       runs[i].waiting ? "  waiting: " : "", w ? w : "");
		free(w);
	}
	pp_run_recs_free(runs, n);
	/* No dispatcher has made them yet: what the schedules will make, the
	 * earliest SHOW_NEXT of all of them. */
	if (n == 0 && !d->paused) {
		int64_t now = pp_wall_ms() / 1000, next[SHOW_NEXT];
		size_t have = 0;
		for (int i = 0; i < d->nsched; i++) {
			int64_t slots[SHOW_NEXT];
			size_t got = 0;
			if (!d->sched[i].active)
				continue;
			if (pp_deployment_next_slots(&d->sched[i], now, SHOW_NEXT, slots, &got,
						     &err)) {
				fprintf(stderr, "pushpool deployment show: %s\n", err.msg);
				continue;
			}
			for (size_t k = 0; k < got; k++) {
				/* Insert in order, keeping the earliest SHOW_NEXT. */
				size_t at = have;
				while (at > 0 && next[at - 1] > slots[k])
					at--;
				if (at == SHOW_NEXT || (at > 0 && next[at - 1] == slots[k]))
					continue;
				if (have < SHOW_NEXT)
					have++;
				memmove(&next[at + 1], &next[at], (have - 1 - at) * sizeof(*next));
				next[at] = slots[k];
			}
		}
		for (size_t k = 0; k < have; k++) {
			char when[PP_TIME_LEN];
			pp_time_format(next[k] * 1000, false, when);
			printf("  %s  (not made yet: no dispatcher has run since)\n", when);
		}
	}
	pp_dep_recs_free(d, 1);
	return PP_EXIT_OK;
}

/* RFC 3339 (no zone: UTC) or epoch seconds, as `schedule --at`. */
static int parse_at(const char *s, int64_t *ms)
{
	if (!pp_time_parse(s, PP_TIME_ZONE_OPTIONAL | PP_TIME_SHORT_FIELDS, ms))
		return 0;
	char *e;
	double v = strtod(s, &e);
	if (e == s || *e || !(v >= 0 && v <= 253402300799.0))
		return PP_EINVALID;
	*ms = (int64_t)(v * 1000);
	return 0;
}

/* Follow run id to its end: 0 SUCCEEDED, 1 another end, 75 timeout. */
static int watch(struct pp_store *s, const char *id, double timeout)
{
	int64_t until = timeout > 0 ? pp_mono_ms() + (int64_t)(timeout * 1000) : 0;
	int last = -1;
	for (;;) {
		struct pp_run_rec r;
		struct pp_error err = {0};
		if (s->ops->get(s, id, &r, NULL, NULL, &err)) {
			if (!pp_err_retryable(err.code)) {
				fprintf(stderr, "pushpool deployment run: %s\n", err.msg);
				return pp_exit_status(err.code);
			}
		} else {
			if ((int)r.state != last) {
				last = (int)r.state;
				printf("%s %s\n", id, pp_store_state_name(r.state));
				fflush(stdout);
			}
			bool done = pp_store_state_terminal(r.state);
			enum pp_store_state end = r.state;
			if (done && end != PP_ST_SUCCEEDED && r.last_error) {
				char *t = pp_cmd_printable(r.last_error);
				fprintf(stderr, "pushpool deployment run: %s: %s\n", id,
					t ? t : "?");
				free(t);
			}
			pp_run_rec_free(&r);
			if (done)
				return end == PP_ST_SUCCEEDED ? PP_EXIT_OK : PP_EXIT_FAILURE;
		}
		if (until && pp_mono_ms() > until) {
			fprintf(stderr, "pushpool deployment run: %s: not finished after %.0f s\n",
				id, timeout);
			return PP_EXIT_TEMPFAIL;
		}
		usleep(WATCH_POLL_US);
	}
}

/* The deployment's JSON object text with -p/-v KEY=VALUE pairs over it. */
static int overlay(const char *base, char **kv, int nkv, const char *what, struct pp_json **out)
{
	struct pp_error err = {0};
	if (pp_json_parse(base ? base : "{}", strlen(base ? base : "{}"), NULL, out, &err)) {
		fprintf(stderr, "pushpool deployment run: stored %s: %s\n", what, err.msg);
		return PP_EXIT_DATAERR;
	}
	for (int i = 0; i < nkv; i++) {
		if (pp_vars_set_kv(*out, kv[i], &err)) {
			fprintf(stderr, "pushpool deployment run: %s %s: %s\n", what, kv[i],
				err.msg);
			return PP_EXIT_USAGE;
		}
	}
	if (pp_cmd_check_vars(*out, &err)) {
		fprintf(stderr, "pushpool deployment run: %s: %s\n", what, err.msg);
		return PP_EXIT_DATAERR;
	}
	return 0;
}

struct run_opts {
	char **params, **vars;
	int nparams, nvars;
	int64_t at;
	bool watch;
	double timeout;
};

static int cmd_run(struct pp_store *s, const struct pp_config *cfg, const char *name,
		   const struct run_opts *o)
{
	struct pp_dep_rec *d = NULL;
	int st = find(s, name, &d);
	if (st)
		return st;
	/* No dispatcher of this configuration would ever start it. */
	if (!pp_config_pool(cfg, d->pool)) {
		char *p = pp_cmd_printable(d->pool);
		fprintf(stderr, "pushpool deployment run: %s: no [pool \"%s\"] section\n",
			cfg->path, p ? p : "?");
		free(p);
		pp_dep_recs_free(d, 1);
		return PP_EXIT_CONFIG;
	}
	struct pp_json *params = NULL, *vars = NULL, *schema = NULL;
	struct pp_error err = {0};
	st = overlay(d->parameters, o->params, o->nparams, "parameter", &params);
	if (!st)
		st = overlay(d->job_variables, o->vars, o->nvars, "job variable", &vars);
	if (!st && d->parameter_schema) {
		if (pp_json_parse(d->parameter_schema, strlen(d->parameter_schema), NULL, &schema,
				  &err) ||
		    pp_schema_validate(schema, schema, params, "parameters", &err)) {
			fprintf(stderr, "pushpool deployment run: %s\n", err.msg);
			st = PP_EXIT_DATAERR;
		}
	}
	char *ptext = st ? NULL : pp_json_to_string(params, 0);
	char *vtext = st ? NULL : pp_json_to_string(vars, 0);
	if (!st && (!ptext || !vtext))
		st = PP_EXIT_SOFTWARE;
	struct pp_run_rec r = {0};
	if (!st) {
		snprintf(r.pool, sizeof(r.pool), "%s", d->pool);
		r.name = d->name;
		r.deployment = d->name;
		r.queue = d->queue;
		r.source = (char *)PP_DEPLOYMENT_SOURCE;
		r.job_variables = vtext;
		r.parameters = ptext;
		r.scheduled_ms = o->at ? o->at : pp_wall_ms();
		r.state = PP_ST_SCHEDULED;
		if (s->ops->insert(s, &r, &err)) {
			fprintf(stderr, "pushpool deployment run: %s\n", err.msg);
			st = pp_exit_status(err.code);
		} else {
			printf("%s\n", r.id);
			fflush(stdout);
		}
	}
	free(ptext);
	free(vtext);
	pp_json_free(params);
	pp_json_free(vars);
	pp_json_free(schema);
	pp_dep_recs_free(d, 1);
	if (!st && o->watch)
		st = watch(s, r.id, o->timeout);
	return st;
}

static int parse_run(int argc, char **argv, struct run_opts *o)
{
	static const struct option longopts[] = {
		{"param", required_argument, NULL, 'p'},
		{"var", required_argument, NULL, 'v'},
		{"at", required_argument, NULL, 'a'},
		{"in", required_argument, NULL, 'i'},
		{"watch", no_argument, NULL, 'w'},
		{"timeout", required_argument, NULL, 't'},
		{NULL, 0, NULL, 0},
	};
	int c;
	bool when = false;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:v:", longopts, NULL)) != -1) {
		double secs;
		switch (c) {
		case 'p': o->params[o->nparams++] = optarg; break;
		case 'v': o->vars[o->nvars++] = optarg; break;
		case 'a':
			if (when || parse_at(optarg, &o->at)) {
				fprintf(stderr,
					"pushpool deployment run: --at %s: expected "
					"2026-11-28T12:00:00Z or epoch seconds, once\n",
					optarg);
				return PP_EXIT_USAGE;
			}
			when = true;
			break;
		case 'i':
			if (when || pp_duration_parse(optarg, &secs) || secs < 0 ||
			    secs > 100 * 365 * 86400.0) {
				fprintf(stderr,
					"pushpool deployment run: --in %s: expected a "
					"duration like 90s, 5m, 2h, 1d, once\n",
					optarg);
				return PP_EXIT_USAGE;
			}
			o->at = pp_wall_ms() + (int64_t)(secs * 1000);
			when = true;
			break;
		case 'w': o->watch = true; break;
		case 't':
			if (pp_duration_parse(optarg, &o->timeout) || o->timeout <= 0) {
				fprintf(stderr,
					"pushpool deployment run: --timeout %s: expected a "
					"duration\n",
					optarg);
				return PP_EXIT_USAGE;
			}
			break;
		default: return PP_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return PP_EXIT_USAGE;
	}
	return 0;
}

static int cmd_pause(struct pp_store *s, int argc, char **argv, bool paused)
{
	static const struct option longopts[] = {
		{"schedule", required_argument, NULL, 's'},
		{NULL, 0, NULL, 0},
	};
	const char *skey = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:", longopts, NULL)) != -1) {
		if (c != 's')
			return PP_EXIT_USAGE;
		skey = optarg;
	}
	if (optind != argc - 1) {
		usage(stderr);
		return PP_EXIT_USAGE;
	}
	const char *name = argv[optind];
	struct pp_dep_rec *d = NULL;
	int st = find(s, name, &d);
	if (st)
		return st;
	/* A schedule by its key or a unique prefix, as `show` prints them. */
	const char *key = NULL;
	for (int i = 0; skey && i < d->nsched; i++) {
		if (!strncmp(d->sched[i].key, skey, strlen(skey))) {
			if (key) {
				fprintf(stderr, "pushpool deployment: schedule %s is ambiguous\n",
					skey);
				pp_dep_recs_free(d, 1);
				return PP_EXIT_USAGE;
			}
			key = d->sched[i].key;
		}
	}
	struct pp_error err = {0};
	int removed = 0;
	if (skey && !key) {
		fprintf(stderr, "pushpool deployment: %s has no schedule %s\n", name, skey);
		st = PP_EXIT_NOINPUT;
	} else if (pp_deploy_pause(s, name, key, paused, pp_wall_ms() / 1000, &removed, &err)) {
		fprintf(stderr, "pushpool deployment: %s\n", err.msg);
		st = pp_exit_status(err.code);
	} else if (paused) {
		printf("paused %s%s%s; %d unstarted future run(s) removed\n", name,
		       key ? " schedule " : "", key ? key : "", removed);
	} else {
		printf("resumed %s%s%s; its schedules run from now\n", name,
		       key ? " schedule " : "", key ? key : "");
	}
	pp_dep_recs_free(d, 1);
	return st;
}

int pp_cmd_deployment(int argc, char **argv)
{
	const char *path = NULL;
	int i = 1;
	if (i + 1 < argc && (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config"))) {
		path = argv[i + 1];
		i += 2;
	}
	for (int j = i; j < argc; j++) {
		if (!strcmp(argv[j], "--help") || !strcmp(argv[j], "-h")) {
			usage(stdout);
			return PP_EXIT_OK;
		}
	}
	const char *sub = i < argc ? argv[i] : "";
	bool named = i + 1 < argc;
	if (!(!strcmp(sub, "ls") && !named) &&
	    !(named && (!strcmp(sub, "show") || !strcmp(sub, "delete")) && i + 2 == argc) &&
	    !(named && (!strcmp(sub, "run") || !strcmp(sub, "pause") || !strcmp(sub, "resume")))) {
		usage(stderr);
		return PP_EXIT_USAGE;
	}
	struct run_opts ro = {0};
	if (!strcmp(sub, "run")) {
		ro.params = calloc((size_t)argc, sizeof(char *));
		ro.vars = calloc((size_t)argc, sizeof(char *));
		int st = ro.params && ro.vars ? parse_run(argc - i, argv + i, &ro)
					      : PP_EXIT_SOFTWARE;
		if (st) {
			free(ro.params);
			free(ro.vars);
			return st;
		}
	}
	struct pp_config cfg;
	int st = pp_cmd_load_config("deployment", path, &cfg);
	bool loaded = !st;
	struct pp_store *s = NULL;
	if (!st)
		st = pp_cmd_open_store("deployment", &cfg, &s);
	if (!st) {
		if (!strcmp(sub, "ls")) {
			st = cmd_ls(s);
		} else if (!strcmp(sub, "show")) {
			st = cmd_show(s, argv[i + 1]);
		} else if (!strcmp(sub, "run")) {
			st = cmd_run(s, &cfg, argv[argc - 1], &ro);
		} else if (!strcmp(sub, "pause") || !strcmp(sub, "resume")) {
			st = cmd_pause(s, argc - i, argv + i, !strcmp(sub, "pause"));
		} else {
			struct pp_error err = {0};
			int removed = 0;
			if (pp_deploy_delete(s, argv[i + 1], &removed, &err)) {
				fprintf(stderr, "pushpool deployment delete: %s\n", err.msg);
				st = pp_exit_status(err.code);
			} else {
				printf("deleted %s; %d unstarted run(s) removed\n", argv[i + 1],
				       removed);
			}
		}
	}
	pp_store_close(s);
	if (loaded)
		pp_config_free(&cfg);
	free(ro.params);
	free(ro.vars);
	return st;
}
