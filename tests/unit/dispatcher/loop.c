/* The dispatch loop against a SQLite store in a temp dir and a fake cloud
 * registered for the test: a run is claimed, submitted, status-polled to
 * SUCCEEDED and cleaned up; a submission that keeps failing is retried,
 * then dead; a run is submitted once however many passes see it; a failed
 * run's last output lines go into its outcome; a job that fails to start
 * is started again by the pool's rules (or not); max_runtime cancels a run
 * still running. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatcher/config.h"
#include "dispatcher/loop.h"
#include "lib/log.h"
#include "providers/provider.h"
#include "store/store.h"

static char dir[64];

/* ---- the fake cloud: no I/O, every op answers at once ---- */

static struct {
	bool fail_submit;
	bool fail_job; /* status: the job exited 1 */
	int prepares, submits, statuses, cleanups, cancels;
	int logs_pages, cleanups_before_logs;
	/* Attempts before this one fail to start (image_pull); 0: none do. */
	int start_ok_from;
	bool run_forever;   /* status answers RUNNING */
	int stop_at_status; /* the status op that asks the loop to stop; 0: none */
	int wrong_jobs;	    /* status ops given a job rendered for another run */
	char keys[4][64];   /* the idempotency key of each submission, in order */
	int attempts[4];    /* and its io->attempt */
} cloud;

static int fake_prepare(struct pp_run_io *io, struct pp_error *err)
{
	(void)io;
	(void)err;
	cloud.prepares++;
	return 0;
}

static int fake_submit(struct pp_run_io *io, struct pp_error *err)
{
	cloud.submits++;
	if (cloud.fail_submit)
		return pp_fail(err, PP_ETRANSIENT, "fake cloud: try again later");
	if (cloud.submits <= 4) {
		snprintf(cloud.keys[cloud.submits - 1], sizeof(cloud.keys[0]), "%s",
			 io->idem_key ? io->idem_key : "");
		cloud.attempts[cloud.submits - 1] = io->attempt;
	}
	pp_run_io_set_infra_id(io, NULL, "fake/%s/%d", io->run_id, io->attempt);
	return PP_STEP_DONE;
}

static int fake_status(struct pp_run_io *io, struct pp_error *err)
{
	(void)err;
	cloud.statuses++;
	if (cloud.statuses == cloud.stop_at_status)
		pp_loop_request_stop();
	const char *rendered_for = pp_json_get_string(io->job, "run");
	if (!rendered_for || strcmp(rendered_for, io->run_id))
		cloud.wrong_jobs++;
	if (cloud.run_forever) {
		io->state_out = PP_RUN_RUNNING;
		return PP_STEP_DONE;
	}
	if (cloud.start_ok_from && io->attempt < cloud.start_ok_from) {
		io->state_out = PP_RUN_CRASHED;
		io->start_failure = PP_START_IMAGE_PULL;
		pp_set_message(io, "fake cloud: image not found");
		return PP_STEP_DONE;
	}
	io->state_out = cloud.fail_job ? PP_RUN_FAILED : PP_RUN_SUCCEEDED;
	io->exit_code = cloud.fail_job;
	return PP_STEP_DONE;
}

#define LOG_SECRET "fake-cloud-log-secret-0123"

/* Two pages of output: twelve numbered lines, then a line longer than the
 * outcome keeps of one, one quoting a secret, and the last one. */
static int fake_logs(struct pp_run_io *io, struct pp_error *err)
{
	struct pp_logs *l = io->logs;
	char line[400];
	int rc = 0;
	if (cloud.cleanups)
		cloud.cleanups_before_logs++;
	if (cloud.logs_pages++ == 0) {
		for (int i = 1; i <= 12 && !rc; i++) {
			snprintf(line, sizeof(line), "line %d", i);
			rc = pp_logs_add(l, 1000 + i, line, strlen(line), err);
		}
		l->more = true;
		return rc ? rc : PP_STEP_DONE;
	}
	memset(line, 'x', 300);
	line[300] = '\0';
	rc = pp_logs_add(l, 2000, line, strlen(line), err);
	snprintf(line, sizeof(line), "token=%s\nTraceback: the end", LOG_SECRET);
	rc = rc ? rc : pp_logs_add(l, 2001, line, strlen(line), err);
	l->more = false;
	return rc ? rc : PP_STEP_DONE;
}

static int fake_done(struct pp_run_io *io, struct pp_error *err)
{
	(void)io;
	(void)err;
	return PP_STEP_DONE;
}

static int fake_cancel(struct pp_run_io *io, struct pp_error *err)
{
	(void)io;
	(void)err;
	cloud.cancels++;
	return PP_STEP_DONE;
}

static int fake_cleanup(struct pp_run_io *io, struct pp_error *err)
{
	(void)io;
	(void)err;
	cloud.cleanups++;
	return PP_STEP_DONE;
}

static const char *const fake_types[] = {"fakecloud:push", NULL};

static const struct pp_provider fake_cloud = {
	.abi = PP_PROVIDER_ABI,
	.name = "fakecloud",
	.pool_types = fake_types,
	.prepare = fake_prepare,
	.restore = fake_done,
	.submit = fake_submit,
	.status = fake_status,
	.cancel = fake_cancel,
	.cleanup = fake_cleanup,
	.logs = fake_logs,
};

/* ---- fixture ---- */

static int group_setup(void **state)
{
	(void)state;
	struct pp_error err = {0};
	assert_int_equal(pp_provider_register(&fake_cloud, &err), 0);
	/* Once is enough: a second registration of the same type is refused. */
	assert_int_equal(pp_provider_register(&fake_cloud, &err), PP_ECONFLICT);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/pp-loop-XXXXXX");
	assert_non_null(mkdtemp(dir));
	memset(&cloud, 0, sizeof(cloud));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void write_file(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Short intervals so that a pass takes milliseconds, two submission tries;
 * pool_extra: more lines for the pool's section. */
static void load_config_with(struct pp_config *c, const char *pool_extra)
{
	char text[1024];
	/* A job text the runs share most of (the image), as real ones do. */
	write_file("t.json",
		   "{\"job_configuration\": {"
		   " \"image\": \"registry.example.com/a-team/flows:a-tag-long-enough-that-"
		   "runs-share-most-of-their-job-text-with-one-another-as-real-jobs-do-"
		   "with-their-images-volumes-network-settings-and-everything-else-that-"
		   "is-the-same-for-every-run-of-a-deployment-and-more-than-the-run-ids\","
		   " \"command\": \"{{ command }}\", \"run\": \"{{ flow_run.id }}\"},"
		   " \"variables\": {\"properties\": {\"command\": {\"type\": \"string\","
		   " \"default\": \"true\"}}}}");
	snprintf(text, sizeof(text),
		 "[dispatcher]\nstate_dir = %s\nstatus_interval = 0.1\npoll_interval = 0.05\n"
		 "lease_seconds = 30\nsubmit_attempts = 2\nbackoff_base_ms = 1\n"
		 "backoff_max_ms = 5\n"
		 "[store]\nurl = sqlite:%s/runs.db\n"
		 "[pool \"p\"]\ntype = fakecloud:push\ntemplate_path = %s/t.json\n%s",
		 dir, dir, dir, pool_extra);
	write_file("pushpool.conf", text);
	char path[256];
	snprintf(path, sizeof(path), "%s/pushpool.conf", dir);
	struct pp_error err = {0};
	assert_int_equal(pp_config_init(c, &err), 0);
	if (pp_config_load(c, path, &err))
		fail_msg("config: %s", err.msg);
}

static void load_config(struct pp_config *c)
{
	load_config_with(c, "");
}

/* Schedule one run of pool, due now; its id into id. */
static void schedule_in(const struct pp_config *c, const char *pool, char id[PP_ID_LEN])
{
	char url[512];
	struct pp_store *s = NULL;
	struct pp_error err = {0};
	pp_store_url(c, url, sizeof(url));
	if (pp_store_open(url, &s, &err))
		fail_msg("store: %s", err.msg);
	struct pp_run_rec r = {0};
	snprintf(r.pool, sizeof(r.pool), "%s", pool);
	char name[] = "unit-run";
	r.name = name;
	r.scheduled_ms = pp_wall_ms();
	r.state = PP_ST_SCHEDULED;
	if (s->ops->insert(s, &r, &err))
		fail_msg("insert: %s", err.msg);
	memcpy(id, r.id, PP_ID_LEN);
	pp_store_close(s);
}

static void schedule(const struct pp_config *c, char id[PP_ID_LEN])
{
	schedule_in(c, "p", id);
}

static struct pp_store *open_store(const struct pp_config *c)
{
	char url[512];
	struct pp_store *s = NULL;
	struct pp_error err = {0};
	pp_store_url(c, url, sizeof(url));
	assert_int_equal(pp_store_open(url, &s, &err), 0);
	return s;
}

static void run_state(const struct pp_config *c, const char *id, struct pp_run_rec *out)
{
	char url[512];
	struct pp_store *s = NULL;
	struct pp_error err = {0};
	pp_store_url(c, url, sizeof(url));
	assert_int_equal(pp_store_open(url, &s, &err), 0);
	if (s->ops->get(s, id, out, NULL, NULL, &err))
		fail_msg("get %s: %s", id, err.msg);
	pp_store_close(s);
}

static void test_claim_submit_watch_succeed(void **state)
{
	(void)state;
	struct pp_config c;
	char id[PP_ID_LEN];
	load_config(&c);
	schedule(&c, id);
	struct pp_loop_opts opts = {.once = true, .wait = true, .timeout = 60, .owner = "unit"};
	struct pp_loop_summary sum;
	struct pp_error err = {0};
	if (pp_loop_run(&c, &opts, &sum, &err))
		fail_msg("loop: %s", err.msg);
	assert_int_equal(sum.claimed, 1);
	assert_int_equal(sum.submitted, 1);
	assert_int_equal(sum.succeeded, 1);
	assert_int_equal(sum.failed + sum.dead + sum.retrying + sum.crashed, 0);
	assert_int_equal(pp_loop_once_status(&sum, true), PP_EXIT_OK);
	assert_int_equal(cloud.prepares, 1);
	assert_int_equal(cloud.submits, 1);
	assert_true(cloud.statuses >= 1);
	assert_int_equal(cloud.cleanups, 1);
	assert_int_equal(cloud.logs_pages, 0);

	struct pp_run_rec r;
	run_state(&c, id, &r);
	assert_int_equal(r.state, PP_ST_SUCCEEDED);
	assert_int_equal(r.attempt, 1);
	char want[128];
	snprintf(want, sizeof(want), "fake/%s/1", id);
	assert_string_equal(r.infra_id, want);
	pp_run_rec_free(&r);
	pp_config_free(&c);
}

/* Each failed try releases the run with a backoff; passes repeat until the
 * retries (submit_attempts = 2) are spent and the run is DEAD. */
static void test_failing_submission_retried_then_dead(void **state)
{
	(void)state;
	struct pp_config c;
	char id[PP_ID_LEN];
	load_config(&c);
	schedule(&c, id);
	cloud.fail_submit = true;
	struct pp_loop_opts opts = {.once = true, .wait = true, .timeout = 60, .owner = "unit"};
	struct pp_loop_summary sum, total = {0};
	struct pp_run_rec r = {0};
	int64_t deadline = pp_mono_ms() + 30000;
	for (;;) {
		struct pp_error err = {0};
		if (pp_loop_run(&c, &opts, &sum, &err))
			fail_msg("loop: %s", err.msg);
		total.retrying += sum.retrying;
		total.dead += sum.dead;
		total.submitted += sum.submitted;
		run_state(&c, id, &r);
		if (r.state == PP_ST_DEAD || pp_mono_ms() > deadline)
			break;
		pp_run_rec_free(&r);
		/* The retry is due a few ms after the failure (backoff_max_ms). */
		nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
	}
	assert_int_equal(r.state, PP_ST_DEAD);
	assert_int_equal(r.attempt, 2);
	assert_non_null(strstr(r.last_error, "fake cloud: try again later"));
	pp_run_rec_free(&r);
	assert_int_equal(total.retrying, 1);
	assert_int_equal(total.dead, 1);
	assert_int_equal(total.submitted, 0);
	/* The op driver retries within each try as well: at least one call each. */
	assert_true(cloud.submits >= 2);
	assert_int_equal(cloud.statuses, 0);
	pp_config_free(&c);
}

/* once without --wait submits what is due and stops: a second pass finds
 * the run submitted and leaves it alone (no second submission). */
static void test_once_submits_and_stops(void **state)
{
	(void)state;
	struct pp_config c;
	char id[PP_ID_LEN];
	load_config(&c);
	schedule(&c, id);
	struct pp_loop_opts opts = {.once = true, .wait = false, .timeout = 60, .owner = "unit"};
	struct pp_loop_summary sum;
	struct pp_error err = {0};
	if (pp_loop_run(&c, &opts, &sum, &err))
		fail_msg("loop: %s", err.msg);
	assert_int_equal(sum.submitted, 1);
	assert_int_equal(pp_loop_once_status(&sum, false), PP_EXIT_OK);
	assert_int_equal(cloud.submits, 1);
	/* It does not watch what it submitted (it used to claim it back and
	 * poll its status in a tight loop until the cloud said it was done). */
	assert_int_equal(cloud.statuses, 0);
	assert_int_equal(cloud.cleanups, 0);
	struct pp_run_rec r;
	run_state(&c, id, &r);
	assert_int_equal(r.state, PP_ST_SUBMITTED);
	pp_run_rec_free(&r);

	/* The next pass looks at it once (here: done) and never submits again. */
	if (pp_loop_run(&c, &opts, &sum, &err))
		fail_msg("loop: %s", err.msg);
	assert_int_equal(sum.submitted, 0);
	assert_int_equal(cloud.submits, 1);
	assert_int_equal(cloud.statuses, 1);
	run_state(&c, id, &r);
	assert_int_equal(r.state, PP_ST_SUCCEEDED);
	pp_run_rec_free(&r);
	pp_config_free(&c);
}

/* once --wait passes until the run is final (a start retry releases it
 * with a delay, so one pass may end first); the passes' summary in total. */
static void passes_until_final(const struct pp_config *c, const char *id, struct pp_run_rec *r,
			       struct pp_loop_summary *total)
{
	struct pp_loop_opts opts = {.once = true, .wait = true, .timeout = 60, .owner = "unit"};
	int64_t deadline = pp_mono_ms() + 30000;
	memset(total, 0, sizeof(*total));
	for (;;) {
		struct pp_loop_summary sum;
		struct pp_error err = {0};
		if (pp_loop_run((struct pp_config *)c, &opts, &sum, &err))
			fail_msg("loop: %s", err.msg);
		total->retrying += sum.retrying;
		total->submitted += sum.submitted;
		total->crashed += sum.crashed;
		total->failed += sum.failed;
		total->succeeded += sum.succeeded;
		run_state(c, id, r);
		if (pp_store_state_terminal(r->state))
			return;
		if (pp_mono_ms() > deadline)
			fail_msg("run %s still %s", id, pp_store_state_name(r->state));
		pp_run_rec_free(r);
		nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
	}
}

/* A job that fails to start with a class the pool retries is started again
 * as attempt 2: its own key and name, the failed attempt cleaned up, and
 * the run SUCCEEDED. */
static void test_start_failure_retried(void **state)
{
	(void)state;
	struct pp_config c;
	char id[PP_ID_LEN], key[80];
	load_config_with(&c, "start_retries = 2\nstart_retry_backoff = 0.001\n");
	schedule(&c, id);
	cloud.start_ok_from = 2;
	struct pp_run_rec r;
	struct pp_loop_summary total;
	passes_until_final(&c, id, &r, &total);
	assert_int_equal(r.state, PP_ST_SUCCEEDED);
	snprintf(key, sizeof(key), "%s-2", id);
	assert_string_equal(r.idem_key, key);
	pp_run_rec_free(&r);
	assert_int_equal(cloud.submits, 2);
	snprintf(key, sizeof(key), "%s-1", id);
	assert_string_equal(cloud.keys[0], key);
	assert_int_equal(cloud.attempts[0], 1);
	snprintf(key, sizeof(key), "%s-2", id);
	assert_string_equal(cloud.keys[1], key);
	assert_int_equal(cloud.attempts[1], 2);
	assert_int_equal(cloud.cleanups, 2); /* the failed attempt's object, then the run's */
	assert_int_equal(total.retrying, 1);
	assert_int_equal(total.succeeded, 1);

	struct pp_store *s = open_store(&c);
	struct pp_run_event *ev = NULL;
	int nev = 0;
	struct pp_error err = {0};
	assert_int_equal(s->ops->get(s, id, &r, &ev, &nev, &err), 0);
	bool retried = false;
	for (int i = 0; i < nev; i++)
		retried |= ev[i].message &&
			   strstr(ev[i].message, "attempt 1 failed to start (image_pull): fake "
						 "cloud: image not found; retrying as attempt 2");
	assert_true(retried);
	pp_run_rec_free(&r);
	pp_run_events_free(ev, nev);
	pp_store_close(s);
	pp_config_free(&c);
}

/* Retries spent: CRASHED with the class and the attempt. */
static void test_start_retries_spent(void **state)
{
	(void)state;
	struct pp_config c;
	char id[PP_ID_LEN];
	load_config_with(&c, "start_retries = 1\nstart_retry_backoff = 0.001\n");
	schedule(&c, id);
	cloud.start_ok_from = 99;
	struct pp_run_rec r;
	struct pp_loop_summary total;
	passes_until_final(&c, id, &r, &total);
	assert_int_equal(r.state, PP_ST_CRASHED);
	/* (the fake cloud's log op answers even for a job that never ran) */
	static const char want_spent[] =
		"failed to start (image_pull) on attempt 2: fake cloud: image not found";
	assert_int_equal(strncmp(r.last_error, want_spent, strlen(want_spent)), 0);
	pp_run_rec_free(&r);
	assert_int_equal(cloud.submits, 2);
	assert_int_equal(total.crashed, 1);
	pp_config_free(&c);
}

/* A class the pool does not retry: CRASHED at once, one submission. */
static void test_start_failure_not_retried(void **state)
{
	(void)state;
	struct pp_config c;
	char id[PP_ID_LEN];
	load_config_with(&c, "start_retries = 3\nstart_retry_on = capacity\n");
	schedule(&c, id);
	cloud.start_ok_from = 2;
	struct pp_run_rec r;
	struct pp_loop_summary total;
	passes_until_final(&c, id, &r, &total);
	assert_int_equal(r.state, PP_ST_CRASHED);
	static const char want[] = "failed to start (image_pull): fake cloud: image not found";
	assert_int_equal(strncmp(r.last_error, want, strlen(want)), 0);
	pp_run_rec_free(&r);
	assert_int_equal(cloud.submits, 1);
	assert_int_equal(total.retrying, 0);
	pp_config_free(&c);
}

/* A cancel asked while the start retry waits: CANCELLED when it is due,
 * and the next attempt is never submitted. */
static void test_cancel_while_a_start_retry_waits(void **state)
{
	(void)state;
	struct pp_config c;
	char id[PP_ID_LEN];
	load_config_with(&c, "start_retries = 2\nstart_retry_backoff = 0.001\n");
	schedule(&c, id);
	cloud.start_ok_from = 2;
	struct pp_loop_opts opts = {.once = true, .wait = true, .timeout = 60, .owner = "unit"};
	struct pp_loop_summary sum;
	struct pp_error err = {0};
	struct pp_run_rec r;
	/* The pass ends with the run waiting for attempt 2: a once pass stops
	 * claiming at the first claim that finds nothing due, which came while
	 * attempt 1 was watched. */
	if (pp_loop_run(&c, &opts, &sum, &err))
		fail_msg("loop: %s", err.msg);
	assert_int_equal(sum.retrying, 1);
	assert_int_equal(pp_loop_once_status(&sum, true), PP_EXIT_TEMPFAIL);
	run_state(&c, id, &r);
	assert_int_equal(r.state, PP_ST_SUBMITTING);
	pp_run_rec_free(&r);
	assert_int_equal(cloud.submits, 1);
	struct pp_store *s = open_store(&c);
	assert_int_equal(s->ops->request_cancel(s, id, &err), 0);
	pp_store_close(s);
	struct pp_loop_summary total;
	passes_until_final(&c, id, &r, &total);
	assert_int_equal(r.state, PP_ST_CANCELLED);
	pp_run_rec_free(&r);
	assert_int_equal(cloud.submits, 1);
	pp_config_free(&c);
}

/* A run still running past max_runtime is cancelled and FAILED with the
 * limit in its reason. */
static void test_max_runtime_cancels(void **state)
{
	(void)state;
	struct pp_config c;
	char id[PP_ID_LEN];
	load_config_with(&c, "max_runtime = 50ms\n");
	schedule(&c, id);
	cloud.run_forever = true;
	struct pp_run_rec r;
	struct pp_loop_summary total;
	passes_until_final(&c, id, &r, &total);
	assert_int_equal(r.state, PP_ST_FAILED);
	assert_non_null(strstr(r.last_error, "max_runtime 50ms exceeded (ran "));
	pp_run_rec_free(&r);
	assert_int_equal(cloud.cancels, 1);
	assert_int_equal(cloud.cleanups, 1);
	assert_true(cloud.statuses >= 2);
	pp_config_free(&c);
}

/* Runs watched side by side park their jobs against one shared text (the
 * pool's job_ref): each status op still gets the job rendered for its own
 * run, poll after poll. */
static void test_parked_jobs_stay_each_runs_own(void **state)
{
	(void)state;
	struct pp_config c;
	enum { N = 3 };
	char ids[N][PP_ID_LEN];
	load_config_with(&c, "max_runtime = 300ms\n");
	for (int i = 0; i < N; i++)
		schedule(&c, ids[i]);
	cloud.run_forever = true;
	struct pp_loop_summary total;
	for (int i = 0; i < N; i++) {
		struct pp_run_rec r;
		passes_until_final(&c, ids[i], &r, &total);
		assert_int_equal(r.state, PP_ST_FAILED);
		pp_run_rec_free(&r);
	}
	assert_true(cloud.statuses >= 2 * N);
	assert_int_equal(cloud.wrong_jobs, 0);
	pp_config_free(&c);
}

/* once without --wait, pass after pass: the pass that first sees the run
 * running records when; a later pass measures max_runtime from that stored
 * time (not from its own start) and cancels the run. */
static void test_max_runtime_across_passes(void **state)
{
	(void)state;
	struct pp_config c;
	char id[PP_ID_LEN];
	load_config_with(&c, "max_runtime = 200ms\n");
	schedule(&c, id);
	cloud.run_forever = true;
	struct pp_loop_opts opts = {.once = true, .wait = false, .timeout = 60, .owner = "unit"};
	struct pp_loop_summary sum;
	struct pp_error err = {0};
	struct pp_run_rec r;
	/* 1: submitted and left; 2: seen running, the time stored */
	for (int pass = 0; pass < 2; pass++)
		if (pp_loop_run(&c, &opts, &sum, &err))
			fail_msg("loop: %s", err.msg);
	run_state(&c, id, &r);
	assert_int_equal(r.state, PP_ST_RUNNING);
	pp_run_rec_free(&r);
	assert_int_equal(cloud.cancels, 0);
	nanosleep(&(struct timespec){.tv_nsec = 300000000}, NULL);
	/* 3: its first look finds it over the limit */
	if (pp_loop_run(&c, &opts, &sum, &err))
		fail_msg("loop: %s", err.msg);
	run_state(&c, id, &r);
	assert_int_equal(r.state, PP_ST_FAILED);
	assert_non_null(strstr(r.last_error, "max_runtime 200ms exceeded"));
	pp_run_rec_free(&r);
	assert_int_equal(cloud.cancels, 1);
	pp_config_free(&c);
}

/* A run that fails gets the last lines of its output in its error and
 * events, read (every page) before its cleanup: the newest lines that fit,
 * each cut at 200 bytes, 1 KiB in all, secrets redacted. A run that
 * succeeds reads none. */
static void test_failed_run_gets_its_last_output(void **state)
{
	(void)state;
	struct pp_config c;
	char id[PP_ID_LEN];
	load_config(&c);
	schedule(&c, id);
	pp_secret_register(LOG_SECRET);
	cloud.fail_job = true;
	struct pp_loop_opts opts = {.once = true, .wait = true, .timeout = 60, .owner = "unit"};
	struct pp_loop_summary sum;
	struct pp_error err = {0};
	if (pp_loop_run(&c, &opts, &sum, &err))
		fail_msg("loop: %s", err.msg);
	assert_int_equal(sum.failed, 1);
	assert_int_equal(cloud.logs_pages, 2);
	assert_int_equal(cloud.cleanups_before_logs, 0);
	assert_int_equal(cloud.cleanups, 1);

	struct pp_run_rec r;
	struct pp_run_event *ev = NULL;
	int nev = 0;
	char url[512];
	struct pp_store *s = NULL;
	pp_store_url(&c, url, sizeof(url));
	assert_int_equal(pp_store_open(url, &s, &err), 0);
	assert_int_equal(s->ops->get(s, id, &r, &ev, &nev, &err), 0);
	pp_store_close(s);
	const char *tail = strstr(r.last_error, "; last output: ");
	assert_non_null(tail);
	assert_true(strlen(tail) <= 1024);
	assert_non_null(strstr(tail, " | token=[REDACTED] | Traceback: the end"));
	assert_null(strstr(r.last_error, LOG_SECRET));
	/* The long line is cut at 200 bytes; the oldest lines did not fit. */
	char cut[202];
	memset(cut, 'x', 200);
	snprintf(cut + 200, 2, "%s", " ");
	assert_non_null(strstr(tail, cut));
	assert_null(strstr(
		tail, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
	assert_non_null(strstr(tail, "line 12 | xxx"));
	assert_null(strstr(tail, "line 1 |"));
	bool in_event = false;
	for (int i = 0; i < nev; i++)
		in_event =
			in_event || (ev[i].message && strstr(ev[i].message, "finishing FAILED") &&
				     strstr(ev[i].message, "Traceback: the end"));
	assert_true(in_event);
	pp_run_rec_free(&r);
	pp_run_events_free(ev, nev);
	pp_config_free(&c);
}

/* Four pools (p q r s), max_submitting 16, and 40 runs due in q. */
static void forty_runs_in_q_of_four(struct pp_config *c)
{
	char extra[1024];
	snprintf(extra, sizeof(extra),
		 "[pool \"q\"]\ntype = fakecloud:push\ntemplate_path = %s/t.json\n"
		 "[pool \"r\"]\ntype = fakecloud:push\ntemplate_path = %s/t.json\n"
		 "[pool \"s\"]\ntype = fakecloud:push\ntemplate_path = %s/t.json\n",
		 dir, dir, dir);
	load_config_with(c, extra);
	c->dispatcher.max_submitting = 16;
	char id[PP_ID_LEN];
	for (int i = 0; i < 40; i++)
		schedule_in(c, "q", id);
}

/* Run the loop with its debug lines in *logs (the caller frees them). */
static void run_logged(struct pp_config *c, const struct pp_loop_opts *opts,
		       struct pp_loop_summary *sum, char **logs)
{
	size_t loglen = 0;
	FILE *out = open_memstream(logs, &loglen);
	assert_non_null(out);
	pp_log_setup(PP_LOG_DEBUG, PP_LOG_TEXT, out);
	struct pp_error err = {0};
	int rc = pp_loop_run(c, opts, sum, &err);
	pp_log_setup(PP_LOG_ERROR, PP_LOG_TEXT, stderr);
	fclose(out);
	if (rc)
		fail_msg("loop: %s", err.msg);
}

/* The loop's next debug line "claim N: pool P: n of asked" about pool
 * at or after *line, read into *turn, *n and *asked; *line then points
 * past it. false when there is none. */
static bool next_claim(const char **line, const char *pool, unsigned *turn, int *n, int *asked)
{
	for (const char *l = strstr(*line, "claim "); l; l = strstr(l + 1, "claim ")) {
		char p[16];
		if (sscanf(l, "claim %u: pool %15[^:]: %d of %d", turn, p, n, asked) == 4 &&
		    !strcmp(p, pool)) {
			*line = l + 1;
			return true;
		}
	}
	return false;
}

/* From the loop's debug lines: how many times pool was claimed from in
 * claim turn turn (0: in any), and the runs those claims took into *runs. */
static int claims_of(const char *logs, const char *pool, unsigned turn, int *runs)
{
	int claims = 0;
	*runs = 0;
	unsigned t;
	int n, asked;
	for (const char *line = logs; next_claim(&line, pool, &t, &n, &asked);) {
		if (turn == 0 || t == turn) {
			claims++;
			*runs += n;
		}
	}
	return claims;
}

/* One busy pool among idle ones gets every free slot in one claim turn:
 * its fair share first, then what the idle pools left (loop_claim's two
 * rounds). The first turn serves q first (the rotation starts at the
 * second pool), when its share is a quarter of the 16 slots, and still
 * takes 16 runs of it, in two claims. */
static void test_busy_pool_takes_the_idle_pools_slots(void **state)
{
	(void)state;
	struct pp_config c;
	forty_runs_in_q_of_four(&c);
	struct pp_loop_opts opts = {.once = true, .wait = true, .timeout = 60, .owner = "unit"};
	struct pp_loop_summary sum;
	char *logs = NULL;
	run_logged(&c, &opts, &sum, &logs);
	assert_int_equal(sum.succeeded, 40);
	int first_turn;
	assert_int_equal(claims_of(logs, "q", 1, &first_turn), 2);
	assert_int_equal(first_turn, 16);
	free(logs);
	pp_config_free(&c);
}

/* Between timed claims, a turn asks only the pools whose last claim filled
 * their part: serve with a timed claim every 15 minutes (poll_interval
 * 3600). The first claim asks every pool; the turns after it, as q's
 * submissions free their slots, ask q alone, and no idle pool is asked
 * again. */
static void test_backlog_asks_only_the_busy_pool(void **state)
{
	(void)state;
	struct pp_config c;
	forty_runs_in_q_of_four(&c);
	c.dispatcher.poll_interval = 3600;
	cloud.stop_at_status = 40; /* every run succeeds at its first status */
	struct pp_loop_opts opts = {.owner = "unit"};
	struct pp_loop_summary sum;
	char *logs = NULL;
	run_logged(&c, &opts, &sum, &logs);
	assert_int_equal(sum.submitted, 40);
	int runs;
	assert_int_equal(claims_of(logs, "p", 0, &runs), 1);
	assert_true(claims_of(logs, "q", 0, &runs) >= 3); /* 40 runs at 16 a claim at most */
	assert_int_equal(runs, 40);
	assert_int_equal(claims_of(logs, "r", 0, &runs), 1);
	assert_int_equal(claims_of(logs, "s", 0, &runs), 1);
	free(logs);
	pp_config_free(&c);
}

/* From the loop's debug lines ("claim N: pool P: n of asked"), the claims
 * of pool: the runs the first asked for, the most any asked for, and the
 * most any asked for after the first that came back short (-1: none did,
 * or none came after it). */
static void claim_asks(const char *logs, const char *pool, int *first, int *most,
		       int *most_after_short)
{
	*first = *most = 0;
	*most_after_short = -1;
	bool short_seen = false;
	unsigned t;
	int n, asked;
	for (const char *line = logs; next_claim(&line, pool, &t, &n, &asked);) {
		if (!*first)
			*first = asked;
		if (asked > *most)
			*most = asked;
		if (short_seen && asked > *most_after_short)
			*most_after_short = asked;
		short_seen = short_seen || n < asked;
	}
}

/* serve until the fake cloud stops it: its log (the caller frees it) and
 * pool p's claims as claim_asks reads them. */
static char *serve_claims(struct pp_config *c, struct pp_loop_summary *sum, int *first, int *most,
			  int *most_after_short)
{
	struct pp_loop_opts opts = {.owner = "unit"};
	char *logs = NULL;
	run_logged(c, &opts, sum, &logs);
	claim_asks(logs, "p", first, most, most_after_short);
	return logs;
}

/* A pool's backlog is claimed in growing claims: the first takes a quarter
 * of max_submitting (8) beyond the free slots, each claim that comes back
 * full doubles that, up to two rounds of max_submitting (16 ahead), and
 * one that comes back short brings it back to a quarter. 100 runs due,
 * submissions answered at once, every run done at its first status (0.1 s
 * after its submission), claims every 12.5 ms meanwhile (poll_interval
 * 0.05), so some come after the backlog's last, short, claim. */
static void test_backlog_claimed_in_growing_claims(void **state)
{
	(void)state;
	struct pp_config c;
	load_config(&c);
	c.dispatcher.max_submitting = 8;
	char id[PP_ID_LEN];
	for (int i = 0; i < 100; i++)
		schedule(&c, id);
	cloud.stop_at_status = 100;
	struct pp_loop_summary sum;
	int first, most, after_short;
	char *logs = serve_claims(&c, &sum, &first, &most, &after_short);
	assert_int_equal(sum.submitted, 100);
	assert_int_equal(first, 8 + 2);
	assert_true(most > 8 + 4); /* grown twice at least */
	assert_true(most <= 8 + 16);
	assert_true(after_short >= 0);
	assert_true(after_short <= 8 + 2);
	int runs;
	assert_true(claims_of(logs, "p", 0, &runs) > 1);
	assert_int_equal(runs, 100);
	free(logs);
	pp_config_free(&c);
}

/* A claim may return more runs somebody held (here SUBMITTED, their
 * leases released) than free slots: the one beyond them waits in the pool's
 * ahead queue. serve stops at the first status poll, before the next
 * claim starts it, and gives it back as it was: SUBMITTED, not the
 * SCHEDULED a run whose intent the claim took goes back to, which would
 * submit a run that exists already. */
static void test_held_run_claimed_ahead_keeps_its_state(void **state)
{
	(void)state;
	struct pp_config c;
	load_config(&c);
	c.dispatcher.max_submitting = 4; /* 4 free slots and 1 run ahead */
	enum { N = 6 };
	char ids[N][PP_ID_LEN];
	for (int i = 0; i < N; i++)
		schedule(&c, ids[i]);
	struct pp_store *s = open_store(&c);
	struct pp_run_rec *runs;
	int n;
	struct pp_error err = {0};
	assert_int_equal(s->ops->claim(s, "p", "earlier", 60000, N, &runs, &n, &err), 0);
	assert_int_equal(n, N);
	for (int i = 0; i < n; i++) {
		char infra[PP_ID_LEN + 16];
		snprintf(infra, sizeof(infra), "fake/%s/1", runs[i].id);
		struct pp_run_update u = {.state = PP_ST_SUBMITTED,
					  .infra_id = infra,
					  .idem_key = "k",
					  .attempt = 1,
					  .next_attempt_ms = -1,
					  .release_lease = true};
		assert_int_equal(s->ops->update(s, runs[i].id, runs[i].fence, &u, &err), 0);
	}
	pp_run_recs_free(runs, n);
	pp_store_close(s);
	cloud.run_forever = true;
	cloud.stop_at_status = 1;
	struct pp_loop_summary sum;
	int first, most, after_short;
	free(serve_claims(&c, &sum, &first, &most, &after_short));
	assert_int_equal(cloud.submits, 0);
	assert_int_equal(first, 4 + 1);
	for (int i = 0; i < N; i++) {
		struct pp_run_rec r;
		run_state(&c, ids[i], &r);
		if (r.state != PP_ST_SUBMITTED && r.state != PP_ST_RUNNING)
			fail_msg("run %d: %s", i, pp_store_state_name(r.state));
		pp_run_rec_free(&r);
	}
	pp_config_free(&c);
}

int main(void)
{
	pp_log_setup(PP_LOG_ERROR, PP_LOG_TEXT, stderr);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_claim_submit_watch_succeed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_pool_takes_the_idle_pools_slots, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_backlog_asks_only_the_busy_pool, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_backlog_claimed_in_growing_claims, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_failing_submission_retried_then_dead, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_once_submits_and_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_run_gets_its_last_output, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_start_failure_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_retries_spent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_failure_not_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_while_a_start_retry_waits, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_max_runtime_cancels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_runtime_across_passes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parked_jobs_stay_each_runs_own, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_held_run_claimed_ahead_keeps_its_state, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
