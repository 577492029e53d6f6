/* serve, once, schedule and runs: the commands around the dispatch loop
 * and the run store. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "dispatcher/attempts.h"
#include "dispatcher/cmd/cmd.h"
#include "dispatcher/config.h"
#include "lib/log.h"
#include "lib/time.h"
#include "dispatcher/loop.h"
#include "render/render.h"
#include "store/store.h"

static int load_config(const char *cmd, const char *path, struct pp_config *cfg)
{
	struct pp_error err = {0};
	int rc = pp_config_init(cfg, &err);
	if (!rc)
		rc = pp_config_load(cfg, pp_cmd_config_path(path), &err);
	if (!rc) {
		struct pp_buf problems;
		pp_buf_init(&problems, 1 << 16);
		if (pp_config_validate(cfg, &problems))
			rc = pp_fail(&err, PP_EINVALID, "%s", pp_buf_str(&problems));
		else if (problems.len)
			fputs(pp_buf_str(&problems), stderr); /* warnings only */
		pp_buf_free(&problems);
	}
	if (rc) {
		fprintf(stderr, "pushpool %s: %s\n", cmd, err.msg);
		pp_config_free(cfg);
		return rc == PP_ENOTFOUND ? PP_EXIT_NOINPUT : PP_EXIT_CONFIG;
	}
	enum pp_log_level lvl = PP_LOG_INFO;
	pp_log_level_parse(cfg->dispatcher.log_level, &lvl);
	pp_log_setup(lvl,
		     cfg->dispatcher.log_format && !strcmp(cfg->dispatcher.log_format, "json")
			     ? PP_LOG_JSON
			     : PP_LOG_TEXT,
		     stderr);
	return 0;
}

static int open_store(const char *cmd, const struct pp_config *cfg, struct pp_store **s)
{
	char url[1024];
	struct pp_error err = {0};
	pp_store_url(cfg, url, sizeof(url));
	if (!cfg->store.url || !*cfg->store.url)
		mkdir(cfg->dispatcher.state_dir, 0750);
	int rc = pp_store_open(url, s, &err);
	if (rc) {
		/* The one mapping every command uses (a corrupt store is bad
		 * data, 65; a store that cannot be read or written, 74). */
		fprintf(stderr, "pushpool %s: %s\n", cmd, err.msg);
		return pp_exit_status(rc);
	}
	return 0;
}

static void on_stop(int sig)
{
	(void)sig;
	pp_loop_request_stop();
}

static void on_hup(int sig)
{
	(void)sig;
	pp_loop_request_reload();
}

static int dispatch(const char *cmd, int argc, char **argv, bool once)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},  {"wait", no_argument, NULL, 'w'},
		{"timeout", required_argument, NULL, 't'}, {"owner", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},	   {NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	struct pp_loop_opts opts = {.once = once};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:wt:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'w': opts.wait = true; break;
		case 't': opts.timeout = atof(optarg); break;
		case 'o': opts.owner = optarg; break;
		case 'h':
			printf("usage: pushpool %s [-c FILE]%s\n", cmd,
			       once ? " [--wait] [--timeout SECONDS]" : "");
			return PP_EXIT_OK;
		default: return PP_EXIT_USAGE;
		}
	}
	if (optind < argc || (!once && (opts.wait || opts.timeout > 0))) {
		fprintf(stderr, "pushpool %s: unexpected argument\n", cmd);
		return PP_EXIT_USAGE;
	}
	struct pp_config cfg;
	int st = load_config(cmd, path, &cfg);
	if (st)
		return st;
	if (!cfg.store.url || !*cfg.store.url)
		mkdir(cfg.dispatcher.state_dir, 0750);
	struct sigaction sa = {.sa_handler = on_stop};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct sigaction hup = {.sa_handler = on_hup};
	sigaction(SIGHUP, &hup, NULL);
	struct pp_loop_summary sum;
	struct pp_error err = {0};
	int rc = pp_loop_run(&cfg, &opts, &sum, &err);
	pp_config_free(&cfg);
	if (once)
		printf("claimed %d, submitted %d, succeeded %d, failed %d, crashed %d, cancelled "
		       "%d, "
		       "dead %d, retrying %d\n",
		       sum.claimed, sum.submitted, sum.succeeded, sum.failed, sum.crashed,
		       sum.cancelled, sum.dead, sum.retrying);
	if (rc) {
		fprintf(stderr, "pushpool %s: %s\n", cmd, err.msg);
		return pp_exit_status(rc);
	}
	return once ? pp_loop_once_status(&sum, opts.wait) : PP_EXIT_OK;
}

int pp_cmd_serve(int argc, char **argv)
{
	return dispatch("serve", argc, argv, false);
}

int pp_cmd_once(int argc, char **argv)
{
	return dispatch("once", argc, argv, true);
}

/* Epoch seconds further than this either way are no time a run can be
 * due (year 9999), and would overflow the milliseconds. */
#define SCHEDULE_SECONDS_MAX 253402300799.0

/* Runs one `schedule --count` may insert: a typo or a loop in a script
 * (2.45 million runs before it was killed) must not fill the store. More
 * runs take more commands. */
#define SCHEDULE_COUNT_MAX 10000

static void schedule_usage(FILE *to)
{
	fprintf(to,
		"usage: pushpool schedule -p POOL [-c FILE] [--at TIME | --in DURATION]\n"
		"                         [-v KEY=VALUE]... [--name N] [--deployment D]\n"
		"                         [--priority N] [--count N]\n"
		"Insert runs of POOL into the run store and print their ids, one a line.\n"
		"  --at TIME       when due: RFC 3339 (no zone: UTC) or epoch seconds\n"
		"  --in DURATION   when due, from now: 90s, 5m, 2h, 1d (default: now)\n"
		"  -v KEY=VALUE    job variable (VALUE parsed as JSON when it is JSON)\n"
		"  --count N       insert N runs, 1..%d\n"
		"If an id cannot be written (a closed pipe), schedule stops at once and\n"
		"exits 74; the runs inserted until then stay scheduled.\n",
		SCHEDULE_COUNT_MAX);
}

/* RFC 3339 (no zone: UTC, as --at always read it) or epoch seconds. */
static int parse_time(const char *s, int64_t *ms)
{
	if (!pp_time_parse(s, PP_TIME_ZONE_OPTIONAL | PP_TIME_SHORT_FIELDS, ms))
		return 0;
	char *e;
	double v = strtod(s, &e);
	if (e == s || *e || !(v >= -SCHEDULE_SECONDS_MAX && v <= SCHEDULE_SECONDS_MAX))
		return PP_EINVALID;
	*ms = (int64_t)(v * 1000);
	return 0;
}

int pp_cmd_schedule(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"pool", required_argument, NULL, 'p'},
		{"at", required_argument, NULL, 'a'},
		{"in", required_argument, NULL, 'i'},
		{"var", required_argument, NULL, 'v'},
		{"name", required_argument, NULL, 'n'},
		{"priority", required_argument, NULL, 'P'},
		{"count", required_argument, NULL, 'N'},
		{"deployment", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *path = NULL, *pool = NULL, *name = NULL, *deployment = NULL;
	int64_t at = pp_wall_ms();
	int priority = 0, count = 1, c;
	struct pp_error err = {0};
	struct pp_json *vars = pp_json_new(PP_JSON_OBJECT);
	if (!vars)
		return PP_EXIT_SOFTWARE;
	optind = 1;
	int st = 0;
	while (!st && (c = getopt_long(argc, argv, "c:p:v:n:d:h", longopts, NULL)) != -1) {
		double secs;
		char *end;
		long n;
		switch (c) {
		case 'h':
			schedule_usage(stdout);
			pp_json_free(vars);
			return PP_EXIT_OK;
		case 'c': path = optarg; break;
		case 'p': pool = optarg; break;
		case 'n': name = optarg; break;
		case 'd': deployment = optarg; break;
		case 'P': priority = atoi(optarg); break;
		case 'N':
			n = strtol(optarg, &end, 10);
			if (end == optarg || *end || n < 1 || n > SCHEDULE_COUNT_MAX) {
				fprintf(stderr,
					"pushpool schedule: --count %s: expected a number of runs "
					"from 1 to %d\n",
					optarg, SCHEDULE_COUNT_MAX);
				st = PP_EXIT_USAGE;
			}
			count = (int)n;
			break;
		case 'a':
			if (parse_time(optarg, &at)) {
				fprintf(stderr,
					"pushpool schedule: --at %s: expected 2026-11-28T12:00:00Z "
					"or epoch seconds\n",
					optarg);
				st = PP_EXIT_USAGE;
			}
			break;
		case 'i':
			if (pp_duration_parse(optarg, &secs) || secs < 0 ||
			    secs > SCHEDULE_SECONDS_MAX) {
				fprintf(stderr,
					"pushpool schedule: --in %s: expected a duration like 90s, "
					"5m, 2h, 1d\n",
					optarg);
				st = PP_EXIT_USAGE;
			} else {
				at = pp_wall_ms() + (int64_t)(secs * 1000);
			}
			break;
		case 'v':
			if (pp_vars_set_kv(vars, optarg, &err)) {
				fprintf(stderr, "pushpool schedule: -v %s: %s\n", optarg, err.msg);
				st = PP_EXIT_USAGE;
			}
			break;
		default: st = PP_EXIT_USAGE;
		}
	}
	if (!st && (!pool || optind < argc)) {
		schedule_usage(stderr);
		st = PP_EXIT_USAGE;
	}
	if (!st && pp_cmd_check_vars(vars, &err)) {
		fprintf(stderr, "pushpool schedule: %s\n", err.msg);
		st = PP_EXIT_DATAERR;
	}
	struct pp_config cfg;
	if (!st)
		st = load_config("schedule", path, &cfg);
	if (st) {
		pp_json_free(vars);
		return st;
	}
	struct pp_store *s = NULL;
	if (!pp_config_pool(&cfg, pool)) {
		fprintf(stderr, "pushpool schedule: %s: no [pool \"%s\"] section\n", cfg.path,
			pool);
		st = PP_EXIT_CONFIG;
	}
	if (!st)
		st = open_store("schedule", &cfg, &s);
	char *vtext = st ? NULL : pp_json_to_string(vars, 0);
	for (int i = 0; !st && i < count; i++) {
		struct pp_run_rec r = {0};
		snprintf(r.pool, sizeof(r.pool), "%s", pool);
		r.name = (char *)(name ? name : pool);
		r.deployment = (char *)deployment;
		r.job_variables = vtext;
		r.scheduled_ms = at;
		r.priority = priority;
		r.state = PP_ST_SCHEDULED;
		if (s->ops->insert(s, &r, &err)) {
			fprintf(stderr, "pushpool schedule: %s\n", err.msg);
			st = pp_exit_status(err.code);
		} else if (printf("%s\n", r.id) < 0 || fflush(stdout)) {
			/* Whoever reads the ids is gone (`| head -1`, EPIPE) or
			 * the disk is full: inserting more would go unseen. */
			fprintf(stderr,
				"pushpool schedule: stopped after %d of %d runs: cannot write run "
				"id %s: %s (the runs inserted stay scheduled)\n",
				i + 1, count, r.id, strerror(errno));
			st = PP_EXIT_IOERR;
		}
	}
	free(vtext);
	pp_store_close(s);
	pp_config_free(&cfg);
	pp_json_free(vars);
	return st;
}

static int runs_ls(struct pp_store *s, int argc, char **argv)
{
	struct pp_run_filter f = {.state = -1};
	int c;
	static const struct option longopts[] = {
		{"state", required_argument, NULL, 's'},
		{"pool", required_argument, NULL, 'p'},
		{"limit", required_argument, NULL, 'l'},
		{NULL, 0, NULL, 0},
	};
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:p:l:", longopts, NULL)) != -1) {
		enum pp_store_state st;
		switch (c) {
		case 's':
			if (pp_store_state_parse(optarg, &st)) {
				fprintf(stderr, "pushpool runs ls: unknown state %s\n", optarg);
				return PP_EXIT_USAGE;
			}
			f.state = (int)st;
			break;
		case 'p': f.pool = optarg; break;
		case 'l': f.limit = atoi(optarg); break;
		default: return PP_EXIT_USAGE;
		}
	}
	struct pp_run_rec *runs = NULL;
	int n = 0;
	struct pp_error err = {0};
	if (s->ops->list(s, &f, &runs, &n, &err)) {
		fprintf(stderr, "pushpool runs ls: %s\n", err.msg);
		return pp_exit_status(err.code);
	}
	printf("%-36s  %-16s  %-11s  %-20s  %s\n", "ID", "POOL", "STATE", "SCHEDULED",
	       "INFRA / ERROR");
	int st = PP_EXIT_OK;
	for (int i = 0; i < n && !st; i++) {
		char when[PP_TIME_LEN];
		pp_time_format(runs[i].scheduled_ms, false, when);
		const char *tail = runs[i].last_error && pp_store_state_terminal(runs[i].state) &&
						   runs[i].state != PP_ST_SUCCEEDED
					   ? runs[i].last_error
				   : runs[i].infra_id ? runs[i].infra_id
						      : "";
		/* Errors quote what servers said: one line per run, always. */
		char *id = pp_cmd_printable(runs[i].id), *pool = pp_cmd_printable(runs[i].pool);
		char *t = pp_cmd_printable(tail);
		if (id && pool && t)
			printf("%-36s  %-16s  %-11s  %-20s  %s\n", id, pool,
			       pp_store_state_name(runs[i].state), when, t);
		else
			st = PP_EXIT_SOFTWARE;
		free(id);
		free(pool);
		free(t);
	}
	pp_run_recs_free(runs, n);
	if (st)
		fprintf(stderr, "pushpool runs ls: out of memory\n");
	return st;
}

/* One line per start attempt: its number, the remote object it was and
 * how it ended (dispatcher/attempts.h). */
static int print_attempts(const struct pp_run_rec *r, const struct pp_run_event *ev, int nev)
{
	struct pp_attempt *at = NULL;
	int n = 0;
	struct pp_error err = {0};
	if (pp_run_attempts(r, ev, nev, &at, &n, &err))
		return PP_EXIT_SOFTWARE;
	int st = PP_EXIT_OK;
	if (n)
		printf("start attempts:\n");
	for (int i = 0; i < n && !st; i++) {
		char *remote = pp_cmd_printable(at[i].remote[0] ? at[i].remote : "-");
		char *outcome = pp_cmd_printable(at[i].outcome[0] ? at[i].outcome : "-");
		if (remote && outcome)
			printf("  %d  %s  %s\n", at[i].n, remote, outcome);
		else
			st = PP_EXIT_SOFTWARE;
		free(remote);
		free(outcome);
	}
	free(at);
	return st;
}

static int runs_show(struct pp_store *s, const char *id)
{
	struct pp_run_rec r;
	struct pp_run_event *ev = NULL;
	int nev = 0;
	struct pp_error err = {0};
	if (s->ops->get(s, id, &r, &ev, &nev, &err)) {
		fprintf(stderr, "pushpool runs show: %s\n", err.msg);
		return pp_exit_status(err.code);
	}
	char when[PP_TIME_LEN];
	pp_time_format(r.scheduled_ms, false, when);
	/* Every stored text is printed escaped: an error message or event
	 * quoting a server could otherwise forge lines or recolour the
	 * terminal. */
	char *f[8] = {
		pp_cmd_printable(r.id),
		pp_cmd_printable(r.pool),
		pp_cmd_printable(r.name),
		pp_cmd_printable(r.infra_id ? r.infra_id : "-"),
		pp_cmd_printable(r.idem_key ? r.idem_key : "-"),
		pp_cmd_printable(r.job_variables ? r.job_variables : "{}"),
		pp_cmd_printable(r.last_error ? r.last_error : "-"),
	};
	int st = PP_EXIT_OK;
	for (int i = 0; i < 7; i++)
		if (!f[i])
			st = PP_EXIT_SOFTWARE;
	if (!st)
		printf("id:             %s\npool:           %s\nname:           %s\n"
		       "state:          %s\nscheduled:      %s\npriority:       %d\n"
		       "attempts:       %d\ninfra id:       %s\nidempotency:    %s\n"
		       "job variables:  %s\nlast error:     %s\n",
		       f[0], f[1], f[2], pp_store_state_name(r.state), when, r.priority, r.attempt,
		       f[3], f[4], f[5], f[6]);
	st = st ? st : print_attempts(&r, ev, nev);
	if (!st)
		printf("events:\n");
	for (int i = 0; i < nev && !st; i++) {
		char t[PP_TIME_LEN];
		pp_time_format(ev[i].ts_ms, false, t);
		char *state = pp_cmd_printable(ev[i].state), *msg = pp_cmd_printable(ev[i].message);
		if (state && msg)
			printf("  %s  %-11s  %s\n", t, state, msg);
		else
			st = PP_EXIT_SOFTWARE;
		free(state);
		free(msg);
	}
	for (int i = 0; i < 7; i++)
		free(f[i]);
	pp_run_rec_free(&r);
	pp_run_events_free(ev, nev);
	if (st)
		fprintf(stderr, "pushpool runs show: out of memory\n");
	return st;
}

static void runs_usage(FILE *to)
{
	fprintf(to, "usage: pushpool runs [-c FILE] ls [--state S] [--pool P] [--limit N]\n"
		    "       pushpool runs [-c FILE] show ID\n"
		    "       pushpool runs [-c FILE] logs ID [--follow] [--tail N] [--since T]\n"
		    "       pushpool runs [-c FILE] cancel ID\n"
		    "ls lists runs in the store (oldest due first); show prints one run and its\n"
		    "events (ID may be a unique prefix); logs prints its container output from\n"
		    "its cloud (--follow: until the run ends); cancel asks for a run to be\n"
		    "cancelled.\n"
		    "Text from the store and from servers is printed with control characters\n"
		    "escaped (\\n, \\x1b).\n");
}

static bool is_help(const char *a)
{
	return !strcmp(a, "--help") || !strcmp(a, "-h");
}

int pp_cmd_runs(int argc, char **argv)
{
	const char *path = NULL;
	int i = 1;
	if (i + 1 < argc && (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config"))) {
		path = argv[i + 1];
		i += 2;
	}
	/* Help wherever it is asked for, before any configuration is read. */
	for (int j = i; j < argc; j++) {
		if (is_help(argv[j]) && i < argc && !strcmp(argv[i], "logs")) {
			pp_cmd_runs_logs_usage(stdout);
			return PP_EXIT_OK;
		}
		if (is_help(argv[j])) {
			runs_usage(stdout);
			return PP_EXIT_OK;
		}
	}
	if (i >= argc) {
		runs_usage(stderr);
		return PP_EXIT_USAGE;
	}
	const char *sub = argv[i];
	if (strcmp(sub, "ls") &&
	    ((strcmp(sub, "show") && strcmp(sub, "cancel") && strcmp(sub, "logs")) ||
	     i + 1 >= argc)) {
		runs_usage(stderr);
		return PP_EXIT_USAGE;
	}
	struct pp_config cfg;
	int st = load_config("runs", path, &cfg);
	if (st)
		return st;
	struct pp_store *s = NULL;
	st = open_store("runs", &cfg, &s);
	if (!st) {
		if (!strcmp(sub, "ls")) {
			st = runs_ls(s, argc - i, argv + i);
		} else if (!strcmp(sub, "show")) {
			st = runs_show(s, argv[i + 1]);
		} else if (!strcmp(sub, "logs")) {
			st = pp_cmd_runs_logs(s, &cfg, argc - i, argv + i);
		} else {
			struct pp_error err = {0};
			if (s->ops->request_cancel(s, argv[i + 1], &err)) {
				fprintf(stderr, "pushpool runs cancel: %s\n", err.msg);
				st = pp_exit_status(err.code);
			} else {
				printf("cancel requested for %s\n", argv[i + 1]);
			}
		}
	}
	pp_store_close(s);
	pp_config_free(&cfg);
	return st;
}
