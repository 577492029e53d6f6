/* The sweeper's decision (dispatcher/sweep.c): an object whose run is
 * finished or unknown to the store is removed once past the grace; one of
 * a run still under way, or a young one, is kept. Objects without
 * pushpool's label never reach it (the provider tests: the list ops
 * leave them out). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dispatcher/sweep.h"

static const int64_t old = PP_SWEEP_GRACE_MS + 1000;

static void test_finished_runs_are_removed(void **state)
{
	(void)state;
	const enum pp_store_state done[] = {PP_ST_SUCCEEDED, PP_ST_FAILED, PP_ST_CRASHED,
					    PP_ST_CANCELLED, PP_ST_DEAD};
	for (size_t i = 0; i < sizeof(done) / sizeof(done[0]); i++)
		assert_int_equal(pp_sweep_decide(true, done[i], old), PP_SWEEP_REMOVE);
}

static void test_unknown_runs_are_removed(void **state)
{
	(void)state;
	/* The state of an unknown run is not read. */
	assert_int_equal(pp_sweep_decide(false, PP_ST_RUNNING, old), PP_SWEEP_REMOVE);
	assert_int_equal(pp_sweep_decide(false, PP_ST_SCHEDULED, PP_SWEEP_GRACE_MS),
			 PP_SWEEP_REMOVE);
}

static void test_runs_under_way_are_kept(void **state)
{
	(void)state;
	const enum pp_store_state live[] = {PP_ST_SCHEDULED, PP_ST_SUBMITTING, PP_ST_SUBMITTED,
					    PP_ST_RUNNING, PP_ST_CANCELLING};
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
		assert_int_equal(pp_sweep_decide(true, live[i], old), PP_SWEEP_KEEP_LIVE);
		assert_int_equal(pp_sweep_decide(true, live[i], 100LL * PP_SWEEP_GRACE_MS),
				 PP_SWEEP_KEEP_LIVE);
	}
}

static void test_young_objects_are_kept(void **state)
{
	(void)state;
	/* A run being inserted or submitted by another dispatcher right now
	 * may not be visible yet: within the grace nothing is removed. */
	assert_int_equal(pp_sweep_decide(false, PP_ST_DEAD, 0), PP_SWEEP_KEEP_YOUNG);
	assert_int_equal(pp_sweep_decide(false, PP_ST_DEAD, PP_SWEEP_GRACE_MS - 1),
			 PP_SWEEP_KEEP_YOUNG);
	assert_int_equal(pp_sweep_decide(true, PP_ST_FAILED, PP_SWEEP_GRACE_MS - 1),
			 PP_SWEEP_KEEP_YOUNG);
	/* A creation time ahead of our clock reads as young. */
	assert_int_equal(pp_sweep_decide(true, PP_ST_FAILED, -5000), PP_SWEEP_KEEP_YOUNG);
	assert_true(PP_SWEEP_GRACE_MS == 10 * 60 * 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_finished_runs_are_removed),
		cmocka_unit_test(test_unknown_runs_are_removed),
		cmocka_unit_test(test_runs_under_way_are_kept),
		cmocka_unit_test(test_young_objects_are_kept),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
