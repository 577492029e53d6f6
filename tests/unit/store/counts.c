/* The backends' shared counting (store/store.c): counts added in any order
 * keep their pools ordered by name, the first PP_STORE_COUNT_POOLS kept and
 * every run in the totals; finished runs' counts merged into unfinished
 * ones; when a count of a part is due again, by the times given (no clock
 * is read); and the two parts kept, counted and merged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "store/store.h"

static void test_pools_stay_ordered_whatever_the_order_added(void **state)
{
	(void)state;
	struct pp_store_counts c;
	memset(&c, 0, sizeof(c));
	pp_store_counts_add(&c, "modal", PP_ST_RUNNING, 2);
	pp_store_counts_add(&c, "aci", PP_ST_SCHEDULED, 1);
	pp_store_counts_add(&c, "ecs", PP_ST_SUCCEEDED, 5);
	pp_store_counts_add(&c, "aci", PP_ST_SUCCEEDED, 3);
	assert_int_equal(c.npools, 3);
	assert_string_equal(c.pools[0].pool, "aci");
	assert_string_equal(c.pools[1].pool, "ecs");
	assert_string_equal(c.pools[2].pool, "modal");
	assert_int_equal(c.pools[0].by_state[PP_ST_SCHEDULED], 1);
	assert_int_equal(c.pools[0].by_state[PP_ST_SUCCEEDED], 3);
	assert_int_equal(c.pools[1].by_state[PP_ST_SUCCEEDED], 5);
	assert_int_equal(c.pools[2].by_state[PP_ST_RUNNING], 2);
	assert_int_equal(c.by_state[PP_ST_SUCCEEDED], 8);
	assert_false(c.more_pools);
}

static void test_the_first_pools_by_name_are_kept(void **state)
{
	(void)state;
	struct pp_store_counts c;
	memset(&c, 0, sizeof(c));
	char name[16];
	/* p01 .. p64 fill it; p00 comes later and sorts first: p64 goes. */
	for (int i = PP_STORE_COUNT_POOLS; i >= 1; i--) {
		snprintf(name, sizeof(name), "p%02d", i);
		pp_store_counts_add(&c, name, PP_ST_FAILED, 1);
	}
	assert_int_equal(c.npools, PP_STORE_COUNT_POOLS);
	assert_false(c.more_pools);
	pp_store_counts_add(&c, "p00", PP_ST_FAILED, 1);
	pp_store_counts_add(&c, "p99", PP_ST_FAILED, 1);
	pp_store_counts_add(&c, "p64", PP_ST_FAILED, 1);
	assert_true(c.more_pools);
	assert_int_equal(c.npools, PP_STORE_COUNT_POOLS);
	assert_string_equal(c.pools[0].pool, "p00");
	snprintf(name, sizeof(name), "p%02d", PP_STORE_COUNT_POOLS - 1);
	assert_string_equal(c.pools[PP_STORE_COUNT_POOLS - 1].pool, name);
	for (int i = 1; i < c.npools; i++)
		assert_true(strcmp(c.pools[i - 1].pool, c.pools[i].pool) < 0);
	/* Every run counts in the totals, kept pool or not. */
	assert_int_equal(c.by_state[PP_ST_FAILED], PP_STORE_COUNT_POOLS + 3);
}

static void test_merge_adds_pools_and_totals(void **state)
{
	(void)state;
	struct pp_store_counts open, done;
	memset(&open, 0, sizeof(open));
	memset(&done, 0, sizeof(done));
	pp_store_counts_add(&open, "ecs", PP_ST_RUNNING, 4);
	pp_store_counts_add(&done, "aci", PP_ST_CRASHED, 1);
	pp_store_counts_add(&done, "ecs", PP_ST_SUCCEEDED, 7);
	/* A pool done could not keep: its runs reach the totals only. */
	done.by_state[PP_ST_SUCCEEDED] += 2;
	done.more_pools = true;
	pp_store_counts_merge(&open, &done);
	assert_int_equal(open.npools, 2);
	assert_string_equal(open.pools[0].pool, "aci");
	assert_int_equal(open.pools[0].by_state[PP_ST_CRASHED], 1);
	assert_int_equal(open.pools[1].by_state[PP_ST_RUNNING], 4);
	assert_int_equal(open.pools[1].by_state[PP_ST_SUCCEEDED], 7);
	assert_int_equal(open.by_state[PP_ST_SUCCEEDED], 9);
	assert_int_equal(open.by_state[PP_ST_RUNNING], 4);
	assert_true(open.more_pools);
}

static void test_recount_spacing(void **state)
{
	(void)state;
	struct pp_store_recount r = {0};
	assert_true(pp_store_recount_due(&r, 1000)); /* never counted */
	/* A small part is counted on every call. */
	pp_store_recount_done(&r, PP_RECOUNT_FREE_ROWS - 1, 1000);
	assert_true(pp_store_recount_due(&r, 1000));
	/* 1,000,000 runs wait 50 s from that count. */
	pp_store_recount_done(&r, 1000000, 2000);
	assert_false(pp_store_recount_due(&r, 2001));
	assert_false(pp_store_recount_due(&r, 2000 + 1000000L * PP_RECOUNT_US_PER_ROW / 1000 - 1));
	assert_true(pp_store_recount_due(&r, 2000 + 1000000L * PP_RECOUNT_US_PER_ROW / 1000));
	/* A failed count is made again at the next call. */
	r.known = false;
	assert_true(pp_store_recount_due(&r, 2001));
}

/* A counter for pp_store_counts_cached: one run per part and call, and a
 * failure of the finished part when asked. */
static int calls[PP_COUNT_PARTS];
static bool fail_finished, big_finished;

static int fake_count(struct pp_store *s, int part, struct pp_store_counts *out,
		      struct pp_error *err)
{
	(void)s;
	calls[part]++;
	if (part == PP_COUNT_FINISHED && fail_finished)
		return pp_fail(err, PP_EIO, "count failed");
	long n = part == PP_COUNT_FINISHED && big_finished ? PP_RECOUNT_FREE_ROWS : calls[part];
	pp_store_counts_add(out, "a", part == PP_COUNT_FINISHED ? PP_ST_SUCCEEDED : PP_ST_RUNNING,
			    n);
	if (part == PP_COUNT_UNFINISHED)
		out->oldest_due_ms = 42;
	return 0;
}

/* Small parts are counted on every call, and the parts merged; a failed
 * part fails the call and is counted again at the next. */
static void test_cached_counts_small_parts_every_call(void **state)
{
	(void)state;
	struct pp_store_counts_cache cache;
	memset(&cache, 0, sizeof(cache));
	memset(calls, 0, sizeof(calls));
	fail_finished = big_finished = false;
	struct pp_store_counts c;
	struct pp_error err = {0};
	assert_int_equal(pp_store_counts_cached(NULL, &cache, fake_count, &c, &err), 0);
	assert_int_equal(pp_store_counts_cached(NULL, &cache, fake_count, &c, &err), 0);
	assert_int_equal(calls[PP_COUNT_UNFINISHED], 2);
	assert_int_equal(calls[PP_COUNT_FINISHED], 2);
	assert_int_equal(c.npools, 1);
	assert_int_equal(c.pools[0].by_state[PP_ST_RUNNING], 2); /* this call's, not summed */
	assert_int_equal(c.pools[0].by_state[PP_ST_SUCCEEDED], 2);
	assert_int_equal(c.oldest_due_ms, 42);
	fail_finished = true;
	assert_int_equal(pp_store_counts_cached(NULL, &cache, fake_count, &c, &err), PP_EIO);
	assert_false(cache.recount[PP_COUNT_FINISHED].known);
	fail_finished = false;
	assert_int_equal(pp_store_counts_cached(NULL, &cache, fake_count, &c, &err), 0);
	assert_int_equal(calls[PP_COUNT_FINISHED], 4);
	assert_int_equal(c.pools[0].by_state[PP_ST_SUCCEEDED], 4);
}

/* A large part is kept between calls while the small one is counted. */
static void test_cached_counts_keep_a_large_part(void **state)
{
	(void)state;
	struct pp_store_counts_cache cache;
	memset(&cache, 0, sizeof(cache));
	memset(calls, 0, sizeof(calls));
	fail_finished = false;
	big_finished = true;
	struct pp_store_counts c;
	struct pp_error err = {0};
	for (int i = 0; i < 3; i++)
		assert_int_equal(pp_store_counts_cached(NULL, &cache, fake_count, &c, &err), 0);
	big_finished = false;
	assert_int_equal(calls[PP_COUNT_UNFINISHED], 3);
	assert_int_equal(calls[PP_COUNT_FINISHED], 1);
	assert_int_equal(c.by_state[PP_ST_SUCCEEDED], PP_RECOUNT_FREE_ROWS);
	assert_int_equal(c.pools[0].by_state[PP_ST_RUNNING], 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pools_stay_ordered_whatever_the_order_added),
		cmocka_unit_test(test_the_first_pools_by_name_are_kept),
		cmocka_unit_test(test_merge_adds_pools_and_totals),
		cmocka_unit_test(test_recount_spacing),
		cmocka_unit_test(test_cached_counts_small_parts_every_call),
		cmocka_unit_test(test_cached_counts_keep_a_large_part),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
