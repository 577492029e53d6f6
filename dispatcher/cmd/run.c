/* `pushpool run`: render a pool's job, submit it now, print the infra id;
 * with --wait follow it to the end, clean up, and exit by its outcome. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dispatcher/cmd/cmd.h"
#include "dispatcher/config.h"
#include "dispatcher/op_driver.h"
#include "lib/clock.h"
#include "lib/file.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/time.h"
#include "render/render.h"
#include "dispatcher/pool.h"
#include "providers/provider.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void usage(FILE *to)
{
	fprintf(to,
		"usage: pushpool run -p POOL [-c FILE] [-v KEY=VALUE]... [--vars FILE]\n"
		"                    [--run-id ID] [--wait] [--timeout SECONDS]\n"
		"Render POOL's job template and submit it now; print the infrastructure id.\n"
		"  -p, --pool POOL      pool section to use\n"
		"  -c, --config FILE    configuration (default $PUSHPOOL_CONFIG, else\n"
		"                       /etc/pushpool/pushpool.conf)\n"
		"  -v, --var KEY=VALUE  job variable (VALUE parsed as JSON when it is JSON)\n"
		"      --vars FILE      JSON object of job variables\n"
		"      --run-id ID      run id (default: a new UUID); names are derived from it\n"
		"  -w, --wait           follow the run to a terminal state, then clean up\n"
		"  -t, --timeout S      give up after S seconds in all (submission, and with\n"
		"                       --wait following): cancel and clean up what was\n"
		"                       created, exit 75\n"
		"The pool's max_runtime (or the job variable) holds with --wait: past it the\n"
		"job is cancelled and the run is FAILED.\n"
		"Exit: 0 submitted (with --wait: succeeded), 1 the job failed, crashed or was\n"
		"cancelled, 64 usage, 65 bad template or variables, 69/75 cloud unavailable,\n"
		"77 credentials rejected, 78 configuration.\n");
}

struct run_opts {
	const char *pool;
	const char *config;
	const char *run_id;
	bool wait;
	double timeout;
	long long deadline_ms; /* monotonic end of --timeout, 0: none */
	struct pp_json *vars;
};

/* A cancel or clean-up after the deadline runs on its own budget: the
 * deadline stops the run, not the removal of what it created. */
#define RUN_TEARDOWN_BUDGET_MS 30000
/* Replaying a submission cut short by --timeout, to find what it created. */
#define RUN_REPLAY_BUDGET_MS 10000

static int merge_vars_file(struct pp_json *vars, const char *path, struct pp_error *err)
{
	struct pp_json *file;
	int rc = pp_json_parse_file(path, NULL, &file, err);
	if (rc)
		return rc;
	if (file->type != PP_JSON_OBJECT) {
		pp_json_free(file);
		return pp_fail(err, PP_EINVALID, "%s: job variables must be a JSON object", path);
	}
	while (file->child) {
		struct pp_json *m = pp_json_detach(file->child);
		if (pp_json_set(vars, m->key, m)) {
			pp_json_free(file);
			return pp_fail(err, PP_ENOMEM, "out of memory");
		}
	}
	pp_json_free(file);
	return 0;
}

static int parse_args(int argc, char **argv, struct run_opts *o, struct pp_error *err)
{
	static const struct option longopts[] = {
		{"pool", required_argument, NULL, 'p'},
		{"config", required_argument, NULL, 'c'},
		{"var", required_argument, NULL, 'v'},
		{"vars", required_argument, NULL, 'V'},
		{"run-id", required_argument, NULL, 'r'},
		{"wait", no_argument, NULL, 'w'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, rc = 0;

	optind = 1;
	while (!rc && (c = getopt_long(argc, argv, "p:c:v:wt:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': o->pool = optarg; break;
		case 'c': o->config = optarg; break;
		case 'r': o->run_id = optarg; break;
		case 'w': o->wait = true; break;
		case 'v': rc = pp_vars_set_kv(o->vars, optarg, err); break;
		case 'V': rc = merge_vars_file(o->vars, optarg, err); break;
		case 't':
			if (pp_duration_parse(optarg, &o->timeout) || o->timeout <= 0)
				return pp_fail(err, PP_EINVALID,
					       "--timeout '%s' is not a positive duration "
					       "(seconds, or with ms/s/m/h/d)",
					       optarg);
			break;
		case 'h': usage(stdout); return 1;
		default: return PP_EINVALID;
		}
	}
	if (rc)
		return rc;
	if (optind < argc)
		return pp_fail(err, PP_EINVALID, "unexpected argument '%s'", argv[optind]);
	if (!o->pool)
		return pp_fail(err, PP_EINVALID, "-p POOL is required");
	return 0;
}

/* Remove what the run left remotely, within a budget of its own; a failure
 * is reported and left to a dispatcher's sweeper. */
#define RUN_CLEANUP_BUDGET_MS 60000L

static void clean_up(const struct pp_provider *p, struct pp_run_io *io,
		     const struct pp_exec_policy *pol)
{
	struct pp_error err = {0};
	struct pp_exec_policy cpol = *pol;
	cpol.budget_ms = RUN_CLEANUP_BUDGET_MS;
	if (p->cleanup && pp_exec_run_op(p, PP_OP_CLEANUP, io, &cpol, &err))
		fprintf(stderr, "pushpool run: cleanup: %s\n", err.msg);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* The run's infra id for a message ("" before the cloud named one). */
static const char *id_of(const struct pp_run_io *io)
{
	return io->infra_id ? io->infra_id : "";
}

/* Poll status until terminal, the timeout, or a signal; cancel in the
 * last two cases. Returns the process exit status. */
static int follow(const struct pp_provider *p, struct pp_run_io *io,
		  const struct pp_exec_policy *pol, const struct pp_exec_policy *teardown,
		  const struct pp_config *cfg, long long deadline)
{
	struct pp_error err = {0};
	long interval = (long)(cfg->dispatcher.status_interval * 1000.0);
	enum pp_run_state last = PP_RUN_PENDING;
	const char *stop_why = NULL;
	long long running_since = 0;
	char over[96] = ""; /* the max_runtime reason, once exceeded */

	if (interval <= 0)
		interval = 5000;
	for (;;) {
		int rc = pp_exec_run_op(p, PP_OP_STATUS, io, pol, &err);
		if (rc && deadline && pp_mono_ms() >= deadline) {
			stop_why = "timed out";
			break;
		}
		if (rc) {
			fprintf(stderr, "pushpool run: status of %s: %s\n", id_of(io), err.msg);
			clean_up(p, io, teardown);
			return pp_exit_status(rc);
		}
		if (io->state_out != last) {
			last = io->state_out;
			pp_info("run %s: %s", io->run_id, pp_run_state_name(last));
		}
		if (pp_run_state_terminal(last))
			break;
		/* max_runtime holds here as under serve: from the first
		 * RUNNING, then the job is cancelled and the run FAILED. */
		if (last == PP_RUN_RUNNING && !running_since)
			running_since = pp_mono_ms();
		if (running_since && io->max_runtime_s > 0 &&
		    pp_mono_ms() - running_since > (long long)(io->max_runtime_s * 1000)) {
			char lim[PP_DURATION_LEN];
			pp_duration_format(io->max_runtime_s, lim);
			snprintf(over, sizeof(over), "max_runtime %s exceeded", lim);
			stop_why = over;
			break;
		}
		if (interrupted)
			stop_why = "interrupted";
		else if (deadline && pp_mono_ms() >= deadline)
			stop_why = "timed out";
		if (stop_why)
			break;
		long wait = io->poll_after_ms > 0 && io->poll_after_ms < interval
				    ? io->poll_after_ms
				    : interval;
		if (deadline && pp_mono_ms() + wait > deadline)
			wait = (long)(deadline - pp_mono_ms());
		for (long slept = 0; slept < wait && !interrupted; slept += 100)
			sleep_ms(wait - slept < 100 ? wait - slept : 100);
	}
	if (stop_why) {
		fprintf(stderr, "pushpool run: %s; cancelling %s\n", stop_why, id_of(io));
		if (p->cancel && pp_exec_run_op(p, PP_OP_CANCEL, io, teardown, &err))
			fprintf(stderr, "pushpool run: cancel: %s\n", err.msg);
	}
	clean_up(p, io, teardown);
	if (over[0]) {
		printf("FAILED: %s\n", over);
		return PP_EXIT_FAILURE;
	}
	if (stop_why)
		return PP_EXIT_TEMPFAIL;
	printf("%s", pp_run_state_name(last));
	if (last != PP_RUN_SUCCEEDED && io->message && *io->message)
		printf(": %s", io->message);
	if (io->exit_code >= 0)
		printf(" (exit code %d)", io->exit_code);
	printf("\n");
	return last == PP_RUN_SUCCEEDED ? PP_EXIT_OK : PP_EXIT_FAILURE;
}

/* The submission was cut short by --timeout: the cloud may hold what it
 * created so far (a container group still provisioning) without our knowing
 * its id. The submission is replayed on a fresh run state, which adopts that
 * object (remote names derive from the run id), on a short budget of its own,
 * then cancelled and cleaned up: a timeout must not leave a job behind. When
 * nothing was created, the replay creates it and it is cancelled at once. */
static void give_up_submission(struct pp_pool *pool, struct pp_run_io *first, const char *run_id,
			       const struct pp_json *job, const struct pp_exec_policy *teardown)
{
	const struct pp_provider *p = pool->prov;
	struct pp_exec_policy replay = *teardown;
	replay.budget_ms = RUN_REPLAY_BUDGET_MS;
	replay.call_timeout_ms = RUN_REPLAY_BUDGET_MS / 2;
	struct pp_error e = {0};
	if (first->infra_id) {
		fprintf(stderr, "pushpool run: timed out; cancelling %s\n", first->infra_id);
		if (p->cancel && pp_exec_run_op(p, PP_OP_CANCEL, first, teardown, &e))
			fprintf(stderr, "pushpool run: cancel: %s\n", e.msg);
		if (p->cleanup && pp_exec_run_op(p, PP_OP_CLEANUP, first, teardown, &e))
			fprintf(stderr, "pushpool run: cleanup: %s\n", e.msg);
		return;
	}
	fprintf(stderr, "pushpool run: timed out while submitting; finding what the submission "
			"created, to remove it\n");
	struct pp_run_io io = {0};
	pp_pool_io_init(pool, &io, run_id, run_id, job);
	if (pp_exec_io_prepare(&io, p, &e) || pp_exec_run_op(p, PP_OP_SUBMIT, &io, &replay, &e)) {
		fprintf(stderr, "pushpool run: %s\n", e.msg);
	} else {
		fprintf(stderr, "pushpool run: timed out; cancelling %s\n", id_of(&io));
		if (p->cancel && pp_exec_run_op(p, PP_OP_CANCEL, &io, teardown, &e))
			fprintf(stderr, "pushpool run: cancel: %s\n", e.msg);
	}
	if (p->cleanup && io.state && pp_exec_run_op(p, PP_OP_CLEANUP, &io, teardown, &e))
		fprintf(stderr, "pushpool run: cleanup: %s\n", e.msg);
	if (io.state)
		pp_exec_io_release(&io, p);
	pp_run_io_free_strings(&io);
}

/* Returns the process exit status; errors are printed here. */
static int submit_and_follow(const struct pp_config *cfg, const struct pp_pool_conf *pc,
			     const struct run_opts *o)
{
	struct pp_error errbuf = {0}, *err = &errbuf;
	char run_id[64];
	if (o->run_id) {
		snprintf(run_id, sizeof(run_id), "%s", o->run_id);
	} else if (pp_uuid4(run_id)) {
		fprintf(stderr, "pushpool run: no random bytes for a run id\n");
		return PP_EXIT_SOFTWARE;
	}

	struct pp_pool *pool = NULL;
	struct pp_json *job = NULL;
	struct pp_run_io io = {0};
	int status = PP_EXIT_OK;
	int rc = pp_pool_open(cfg, pc, 0, &pool, err);
	if (rc) {
		/* An unknown type or credentials section is the configuration's
		 * fault; a bad template or credential file exits by its error. */
		bool config_error = !pp_pool_type_canonical(pc->type) ||
				    (pc->credentials && *pc->credentials &&
				     !pp_config_cred(cfg, pc->credentials));
		pp_redact(err->msg);
		fprintf(stderr, "pushpool run: %s\n", err->msg);
		return config_error ? PP_EXIT_CONFIG : pp_exit_status(rc);
	}
	const struct pp_provider *p = pool->prov;
	struct pp_run_ctx ctx = {.flow_run_id = run_id, .flow_run_name = run_id};
	rc = pp_pool_render(pool, NULL, 0, NULL, o->vars, &ctx, &job, err);
	if (rc)
		goto out;
	pp_pool_io_init(pool, &io, run_id, run_id, job);
	rc = pp_exec_io_prepare(&io, p, err);
	if (rc)
		goto out;

	/* --timeout bounds every request and wait of the submission too (a
	 * cloud that never answers), not only the following. */
	struct pp_exec_policy pol = {.base_ms = cfg->dispatcher.backoff_base_ms,
				     .cap_ms = cfg->dispatcher.backoff_max_ms,
				     .not_after_ms = o->deadline_ms};
	struct pp_exec_policy teardown = pol;
	teardown.not_after_ms = 0;
	teardown.budget_ms = RUN_TEARDOWN_BUDGET_MS;
	if (o->deadline_ms && pp_mono_ms() >= o->deadline_ms)
		rc = pp_fail(err, PP_ETRANSIENT, "timed out after %g s before submitting",
			     o->timeout);
	else
		rc = pp_exec_run_op(p, PP_OP_SUBMIT, &io, &pol, err);
	if (rc) {
		/* Under --timeout a retryable failure is the deadline (the driver
		 * gives up as soon as the next wait would cross it) or the
		 * driver's own budget: the run is given up either way. */
		bool timed_out =
			o->deadline_ms && (pp_mono_ms() >= o->deadline_ms || pp_err_retryable(rc));
		if (timed_out) {
			pp_error_prefix(err, "timed out after %g s while submitting: ", o->timeout);
			rc = err->code = PP_ETRANSIENT;
			give_up_submission(pool, &io, run_id, job, &teardown);
		} else {
			/* A job may exist without an execution or task: remove it. */
			clean_up(p, &io, &teardown);
		}
		goto out;
	}
	printf("%s\n", id_of(&io));
	fflush(stdout);
	if (o->wait)
		status = follow(p, &io, &pol, &teardown, cfg, o->deadline_ms);
out:
	if (io.state)
		pp_exec_io_release(&io, p);
	pp_run_io_free_strings(&io); /* a provider without state */
	pp_json_free(job);
	pp_pool_close(pool);
	if (rc) {
		pp_redact(err->msg);
		fprintf(stderr, "pushpool run: %s\n", err->msg);
		return pp_exit_status(rc);
	}
	return status;
}

int pp_cmd_run(int argc, char **argv)
{
	struct pp_error err = {0};
	struct run_opts o = {0};
	struct pp_config cfg;
	int status;

	o.vars = pp_json_new(PP_JSON_OBJECT);
	if (!o.vars)
		return PP_EXIT_SOFTWARE;
	int rc = parse_args(argc, argv, &o, &err);
	if (rc) {
		pp_json_free(o.vars);
		if (rc == 1)
			return PP_EXIT_OK;
		if (err.msg[0])
			fprintf(stderr, "pushpool run: %s\n", err.msg);
		usage(stderr);
		return PP_EXIT_USAGE;
	}
	if (pp_cmd_check_vars(o.vars, &err)) {
		fprintf(stderr, "pushpool run: %s\n", err.msg);
		pp_json_free(o.vars);
		return PP_EXIT_DATAERR;
	}
	/* The clock starts with the command: --timeout is for all of it. */
	if (o.timeout > 0)
		o.deadline_ms = pp_mono_ms() + (long long)(o.timeout * 1000.0);
	o.config = pp_cmd_config_path(o.config);

	rc = pp_config_init(&cfg, &err);
	if (!rc)
		rc = pp_config_load(&cfg, o.config, &err);
	if (rc) {
		fprintf(stderr, "pushpool run: %s\n", err.msg);
		pp_config_free(&cfg);
		pp_json_free(o.vars);
		return PP_EXIT_CONFIG;
	}
	if ((rc = pp_cmd_trust("run", &cfg))) {
		pp_config_free(&cfg);
		pp_json_free(o.vars);
		return rc;
	}
	const struct pp_pool_conf *pool = pp_config_pool(&cfg, o.pool);
	if (!pool) {
		fprintf(stderr, "pushpool run: %s: no [pool \"%s\"] section\n", o.config, o.pool);
		pp_config_free(&cfg);
		pp_json_free(o.vars);
		return PP_EXIT_CONFIG;
	}

	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	status = submit_and_follow(&cfg, pool, &o);
	pp_config_free(&cfg);
	pp_json_free(o.vars);
	return status;
}
