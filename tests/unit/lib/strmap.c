/* lib/strmap: string keys to pointers, found by hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/strmap.h"

static void test_empty_map_finds_nothing(void **state)
{
	(void)state;
	struct pp_strmap m = {0};
	assert_null(pp_strmap_get(&m, "a"));
	pp_strmap_clear(&m);
	assert_null(pp_strmap_get(&m, ""));
}

/* Keys are compared by value, not by pointer, and a second put replaces. */
static void test_put_get_replace(void **state)
{
	(void)state;
	struct pp_strmap m = {0};
	int one = 1, two = 2, three = 3;
	char key[] = "cluster\x1ftoken";
	assert_int_equal(pp_strmap_put(&m, key, &one), 0);
	assert_int_equal(pp_strmap_put(&m, "", &two), 0);
	char same[sizeof(key)];
	memcpy(same, key, sizeof(key));
	assert_ptr_equal(pp_strmap_get(&m, same), &one);
	assert_ptr_equal(pp_strmap_get(&m, ""), &two);
	assert_null(pp_strmap_get(&m, "cluster"));
	assert_int_equal(pp_strmap_put(&m, same, &three), 0);
	assert_ptr_equal(pp_strmap_get(&m, key), &three);
	assert_int_equal(m.n, 2);
	pp_strmap_clear(&m);
	assert_null(pp_strmap_get(&m, key));
	assert_int_equal(m.n, 0);
}

/* 100,000 keys (a bench's client tokens): the table grows and keeps each,
 * and stays at most half full. */
static void test_many_keys(void **state)
{
	(void)state;
	enum { N = 100000 };
	struct pp_strmap m = {0};
	char(*keys)[16] = malloc(N * sizeof(*keys));
	assert_non_null(keys);
	for (uintptr_t i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "pp-%lu", (unsigned long)i);
		assert_int_equal(pp_strmap_put(&m, keys[i], (void *)(i + 1)), 0);
	}
	assert_int_equal(m.n, N);
	assert_true(m.cap >= 2 * m.n);
	for (uintptr_t i = 0; i < N; i++)
		assert_ptr_equal(pp_strmap_get(&m, keys[i]), (void *)(i + 1));
	assert_null(pp_strmap_get(&m, "pp-100000"));
	pp_strmap_clear(&m);
	free(keys);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_map_finds_nothing),
		cmocka_unit_test(test_put_get_replace),
		cmocka_unit_test(test_many_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
