/* A run's start attempts: the attempt its idempotency key names, and the
 * list `runs show` prints from its events (each attempt's remote object and
 * how it ended, the current one by the run's state). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher/attempts.h"

#define ID "0b5e6f2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"

static struct pp_run_rec rec(enum pp_store_state st, const char *key, const char *last_error)
{
	struct pp_run_rec r;
	memset(&r, 0, sizeof(r));
	strcpy(r.id, ID);
	r.state = st;
	r.idem_key = (char *)key;
	r.last_error = (char *)last_error;
	return r;
}

static void test_attempt_of_the_key(void **state)
{
	(void)state;
	char key[64];
	pp_attempt_key(ID, 3, key, sizeof(key));
	assert_string_equal(key, ID "-3");
	struct pp_run_rec r = rec(PP_ST_SUBMITTING, key, NULL);
	assert_int_equal(pp_attempt_of(&r), 3);
	r.idem_key = NULL;
	assert_int_equal(pp_attempt_of(&r), 1);
	r.idem_key = (char *)"another-run-7";
	assert_int_equal(pp_attempt_of(&r), 1);
	r.idem_key = (char *)ID "-2x";
	assert_int_equal(pp_attempt_of(&r), 1);
	r.idem_key = (char *)ID "-0";
	assert_int_equal(pp_attempt_of(&r), 1);
	/* The key a claim gives a run's first start attempt (store.h). */
	pp_attempt_key(ID, 1, key, sizeof(key));
	assert_string_equal(key, ID PP_FIRST_KEY);
}

static void test_attempts_from_events(void **state)
{
	(void)state;
	struct pp_run_event ev[] = {
		{.message = (char *)"created"},
		{.message = (char *)"submitting (try 1)"},
		{.message = (char *)"submitted: pp-1 (attempt 1)"},
		{.message = (char *)"attempt 1 failed to start (image_pull): "
				    "CannotPullContainerError: "
				    "not found; retrying as attempt 2 in 120 ms"},
		{.message = (char *)"submitting (try 1)"},
		{.message = (char *)"submitted: pp-2 (attempt 2)"},
		/* a recovery adopting the same object records it again */
		{.message = (char *)"submitted: pp-2 (attempt 2)"},
		{.message = (char *)"running"},
		{.message = NULL},
	};
	struct pp_run_rec r = rec(PP_ST_SUCCEEDED, ID "-2", "");
	struct pp_attempt *a = NULL;
	int n = 0;
	struct pp_error err = {0};
	assert_int_equal(pp_run_attempts(&r, ev, 9, &a, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(a[0].n, 1);
	assert_string_equal(a[0].remote, "pp-1");
	assert_string_equal(a[0].outcome,
			    "failed to start (image_pull): CannotPullContainerError: not found");
	assert_int_equal(a[1].n, 2);
	assert_string_equal(a[1].remote, "pp-2");
	assert_string_equal(a[1].outcome, "SUCCEEDED");
	free(a);

	/* failed for good: the state and the reason */
	r = rec(PP_ST_CRASHED, ID "-2", "failed to start (capacity) on attempt 2: no capacity");
	assert_int_equal(pp_run_attempts(&r, ev, 6, &a, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(a[1].outcome,
			    "CRASHED: failed to start (capacity) on attempt 2: no capacity");
	free(a);

	/* waiting for attempt 2: known by its key, not yet submitted */
	r = rec(PP_ST_SUBMITTING, ID "-2", "CannotPullContainerError: not found");
	assert_int_equal(pp_run_attempts(&r, ev, 4, &a, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(a[1].remote, "");
	assert_string_equal(a[1].outcome, "SUBMITTING");
	free(a);
}

/* Events written before attempts were numbered ("submitted: X") are
 * attempt 1; a scheduled run has none. */
static void test_older_events_and_scheduled_runs(void **state)
{
	(void)state;
	struct pp_run_event ev[] = {{.message = (char *)"submitted: arn:aws:ecs:task/1"}};
	struct pp_run_rec r = rec(PP_ST_RUNNING, ID "-1", NULL);
	struct pp_attempt *a = NULL;
	int n = 0;
	struct pp_error err = {0};
	assert_int_equal(pp_run_attempts(&r, ev, 1, &a, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(a[0].remote, "arn:aws:ecs:task/1");
	assert_string_equal(a[0].outcome, "RUNNING");
	free(a);
	r = rec(PP_ST_SCHEDULED, NULL, NULL);
	assert_int_equal(pp_run_attempts(&r, NULL, 0, &a, &n, &err), 0);
	assert_int_equal(n, 0);
	free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_attempt_of_the_key),
		cmocka_unit_test(test_attempts_from_events),
		cmocka_unit_test(test_older_events_and_scheduled_runs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
