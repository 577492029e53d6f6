/* The scheduling pass on SQLite and PostgreSQL, with the clock handed in: Prefect's
 * look-ahead rule, exactly one run per slot across passes, redeploys and
 * overlapping dispatchers, catch-up after downtime (skip, latest, all),
 * pause and resume, and a cron schedule in a time zone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dispatcher/deployment.h"
#include "store/deploy.h"
#include "store/store.h"
#include "tests/unit/store/fixture.h"

/* 2026-01-05T00:00:30Z: half a minute past a whole minute. */
#define T0 1767571230LL

/* One deployment "every-minute" of pool "a" with one interval schedule
 * (anchor at the epoch, so slots fall on whole minutes). */
static void deploy(struct pp_store *s, int64_t every, enum pp_catchup catchup, int64_t window,
		   int64_t now)
{
	struct pp_deploy_schedule sc = {
		.spec = {.kind = PP_SCHEDULE_INTERVAL, .interval = every, .anchor = 0},
		.active = true,
		.catchup = catchup,
		.catchup_window = window,
		.where = (char *)"prefect.yaml:7",
	};
	struct pp_deploy_spec sp = {
		.name = (char *)"every-minute",
		.pool = (char *)"a",
		.job_variables = (char *)"{}",
		.parameters = (char *)"{\"x\": 1}",
		.tags = (char *)"[]",
		.schedules = &sc,
		.nschedules = 1,
	};
	struct pp_dep_rec *recs;
	struct pp_error err = {0};
	assert_int_equal(pp_deployment_recs(&sp, 1, &recs, &err), 0);
	struct pp_apply_result res = {0};
	assert_int_equal(pp_deploy_apply(s, recs, 1, now, &res, &err), 0);
	pp_dep_recs_free(recs, 1);
}

static int pass(struct pp_store *s, int64_t now)
{
	struct pp_sched_stats st;
	struct pp_error err = {0};
	if (pp_scheduler_pass(s, now, &st, &err))
		fail_msg("pass: %s", err.msg);
	return st.inserted;
}

/* SCHEDULED runs at or before until (UTC s), all when until is 0; and no
 * two runs of one slot. */
static int scheduled(struct pp_store *s, int64_t until)
{
	struct pp_run_rec *runs;
	int n, cnt = 0;
	struct pp_error err = {0};
	struct pp_run_filter f = {.state = -1};
	assert_int_equal(s->ops->list(s, &f, &runs, &n, &err), 0);
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < i; j++)
			assert_false(runs[i].scheduled_ms == runs[j].scheduled_ms);
		if (runs[i].state == PP_ST_SCHEDULED &&
		    (!until || runs[i].scheduled_ms <= until * 1000))
			cnt++;
	}
	pp_run_recs_free(runs, n);
	return cnt;
}

static void test_ahead_and_exactly_once(void **state)
{
	struct pp_store *s = *state;
	deploy(s, 60, PP_CATCHUP_SKIP, 0, T0);
	/* An hour ahead at one a minute: 60 runs, the first at T0 + 30. */
	assert_int_equal(pass(s, T0), 60);
	assert_int_equal(pass(s, T0), 0);
	/* A second dispatcher whose clock is a little behind, and a redeploy of
	 * the same rule in between: nothing new, nothing twice. */
	assert_int_equal(pass(s, T0 - 5), 0);
	deploy(s, 60, PP_CATCHUP_SKIP, 0, T0 + 1);
	assert_int_equal(pass(s, T0 + 1), 0);
	/* Ten minutes on, the horizon moves ten slots; nobody ran the ten that
	 * came due, and nine of them are missed (the next is due too): skip
	 * drops them, the current one stays. */
	assert_int_equal(pass(s, T0 + 600), 10);
	assert_int_equal(scheduled(s, 0), 61);
	assert_int_equal(scheduled(s, T0 + 600), 1);
	/* A day apart: at least 3 runs. */
	deploy(s, 86400, PP_CATCHUP_SKIP, 0, T0 + 600);
	pass(s, T0 + 600);
	struct pp_dep_rec *d;
	int n;
	struct pp_error err = {0};
	assert_int_equal(pp_deploy_list(s, "every-minute", &d, &n, &err), 0);
	assert_int_equal(d->nsched, 1);
	assert_int_equal(d->sched[0].cursor, (T0 / 86400 + 3) * 86400);
	pp_dep_recs_free(d, n);
	/* The per-minute schedule is gone with its future runs; its run that
	 * is due already stays. */
	assert_int_equal(scheduled(s, 0), 4);
	assert_int_equal(scheduled(s, T0 + 600), 1);
}

/* Three hours without a dispatcher, then a pass: skip keeps only the
 * current slot, latest the newest missed one too, all those of the window. */
static void catch_up(struct pp_store *s, enum pp_catchup c, int64_t window, int expect)
{
	deploy(s, 60, c, window, T0);
	assert_int_equal(pass(s, T0), 60);
	int64_t now = T0 + 3 * 3600;
	pass(s, now);
	assert_int_equal(scheduled(s, now), expect);
	/* The next hour is ahead, as usual. */
	assert_int_equal(scheduled(s, 0) - scheduled(s, now), 60);
}

static void test_catchup_skip(void **state)
{
	catch_up(*state, PP_CATCHUP_SKIP, 0, 1);
}

static void test_catchup_latest(void **state)
{
	catch_up(*state, PP_CATCHUP_LATEST, 0, 2);
}

static void test_catchup_all_within_window(void **state)
{
	/* now - 30 is current; now - 90 ... now - 570 are missed, in the window. */
	catch_up(*state, PP_CATCHUP_ALL, 600, 10);
}

/* Late by less than a slot is not missed: `once` from cron every few
 * minutes runs an hourly schedule's slot late rather than never. */
static void test_late_but_not_missed(void **state)
{
	struct pp_store *s = *state;
	deploy(s, 3600, PP_CATCHUP_SKIP, 0, T0);
	pass(s, T0);
	int64_t first = (T0 / 3600 + 1) * 3600;
	pass(s, first + 300);
	assert_int_equal(scheduled(s, first + 300), 1);
}

/* Runs a claim held back on purpose (here: the pool is paused) wait in
 * their queue; catch-up does not drop them. */
static void test_held_runs_are_not_missed(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	deploy(s, 60, PP_CATCHUP_SKIP, 0, T0);
	assert_int_equal(pass(s, T0), 60);
	assert_int_equal(pp_pool_set(s, "a", -1, 1, &err), 0);
	struct pp_run_rec *runs;
	int n;
	/* By the wall clock every run is due: the claim holds them all. */
	assert_int_equal(s->ops->claim(s, "a", "d1", 60000, 8, &runs, &n, &err), 0);
	assert_int_equal(n, 0);
	free(runs);
	int64_t now = T0 + 3 * 3600;
	pass(s, now);
	/* The 60 held ones, and the current slot (the missed ones never made
	 * are dropped). */
	assert_int_equal(scheduled(s, now), 61);
}

static void test_pause_and_resume(void **state)
{
	struct pp_store *s = *state;
	struct pp_error err = {0};
	deploy(s, 60, PP_CATCHUP_ALL, 3600, T0);
	assert_int_equal(pass(s, T0), 60);
	int removed;
	assert_int_equal(pp_deploy_pause(s, "every-minute", NULL, true, T0 + 5, &removed, &err), 0);
	assert_int_equal(removed, 60);
	assert_int_equal(pass(s, T0 + 300), 0);
	/* Resumed two hours later: from now, nothing of the paused time. */
	int64_t now = T0 + 7200;
	assert_int_equal(pp_deploy_pause(s, "every-minute", NULL, false, now, &removed, &err), 0);
	assert_int_equal(pass(s, now), 60);
	assert_int_equal(scheduled(s, now), 0);
}

static void test_cron_in_a_zone(void **state)
{
	struct pp_store *s = *state;
	struct pp_deploy_schedule sc = {
		.spec = {.kind = PP_SCHEDULE_CRON,
			 .cron = "0 1 * * *",
			 .day_or = true,
			 .timezone = "Europe/Paris"},
		.active = true,
	};
	struct pp_deploy_spec sp = {
		.name = (char *)"nightly",
		.pool = (char *)"a",
		.parameters = (char *)"{\"x\": 1, \"day\": \"any\"}",
		.schedules = &sc,
		.nschedules = 1,
	};
	struct pp_dep_rec *recs;
	struct pp_error err = {0};
	assert_int_equal(pp_deployment_recs(&sp, 1, &recs, &err), 0);
	assert_int_equal(strlen(recs->sched[0].key), PP_SCHED_KEY_LEN - 1);
	/* Prefect's per-schedule parameters go over the deployment's. */
	free(recs->sched[0].parameters);
	recs->sched[0].parameters = strdup("{\"day\": \"mon\"}");
	struct pp_apply_result res = {0};
	assert_int_equal(pp_deploy_apply(s, recs, 1, T0, &res, &err), 0);
	pp_dep_recs_free(recs, 1);
	assert_int_equal(pass(s, T0), 3);
	struct pp_run_rec *runs;
	int n;
	struct pp_run_filter f = {.state = -1};
	assert_int_equal(s->ops->list(s, &f, &runs, &n, &err), 0);
	/* 01:00 in Paris in January is 00:00 UTC. */
	assert_int_equal(runs[0].scheduled_ms / 1000, (T0 / 86400 + 1) * 86400);
	assert_string_equal(runs[0].source, PP_DEPLOYMENT_SOURCE);
	assert_string_equal(runs[0].deployment, "nightly");
	assert_non_null(strstr(runs[0].slot_key, "nightly|"));
	assert_non_null(strstr(runs[0].parameters, "\"x\":1"));
	assert_non_null(strstr(runs[0].parameters, "\"day\":\"mon\""));
	pp_run_recs_free(runs, n);

	/* The key is what the rule means: written another way, the same key;
	 * another zone, another key. */
	char key[PP_SCHED_KEY_LEN];
	sc.spec.cron = "00 01 * * *";
	assert_int_equal(pp_deployment_recs(&sp, 1, &recs, &err), 0);
	snprintf(key, sizeof(key), "%s", recs->sched[0].key);
	pp_dep_recs_free(recs, 1);
	sc.spec.cron = "0 1 * * *";
	assert_int_equal(pp_deployment_recs(&sp, 1, &recs, &err), 0);
	assert_string_equal(recs->sched[0].key, key);
	pp_dep_recs_free(recs, 1);
	sc.spec.timezone = "Europe/Berlin";
	assert_int_equal(pp_deployment_recs(&sp, 1, &recs, &err), 0);
	assert_string_not_equal(recs->sched[0].key, key);
	pp_dep_recs_free(recs, 1);

	/* A bad rule is refused with where it came from. */
	sc.spec.cron = "0 25 * * *";
	sc.where = (char *)"prefect.yaml:12";
	assert_int_equal(pp_deployment_recs(&sp, 1, &recs, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "prefect.yaml:12"));
}

#define TESTS(SETUP)                                                                               \
	{                                                                                          \
		cmocka_unit_test_setup_teardown(test_ahead_and_exactly_once, SETUP,                \
						store_teardown),                                   \
			cmocka_unit_test_setup_teardown(test_catchup_skip, SETUP, store_teardown), \
			cmocka_unit_test_setup_teardown(test_catchup_latest, SETUP,                \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_catchup_all_within_window, SETUP,     \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_late_but_not_missed, SETUP,           \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_held_runs_are_not_missed, SETUP,      \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_pause_and_resume, SETUP,              \
							store_teardown),                           \
			cmocka_unit_test_setup_teardown(test_cron_in_a_zone, SETUP,                \
							store_teardown),                           \
	}

int main(void)
{
	const struct CMUnitTest on_sqlite[] = TESTS(sqlite_setup);
	const struct CMUnitTest on_pg[] = TESTS(pg_setup);
	int failed = cmocka_run_group_tests_name("scheduler on SQLite", on_sqlite, NULL, NULL);
	return failed + cmocka_run_group_tests_name("scheduler on PostgreSQL", on_pg, pg_server_up,
						    pg_server_down);
}
