/* lib/intern: one shared copy per value, kept while any holder counts it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "lib/intern.h"

static void test_same_value_shared(void **state)
{
	(void)state;
	char a[] = "https://ecs.eu-west-1.amazonaws.com", b[sizeof(a)];
	memcpy(b, a, sizeof(a));
	const char *x = pp_intern(a), *y = pp_intern(b), *z = pp_intern("cluster-1");
	assert_non_null(x);
	assert_ptr_equal(x, y);
	assert_ptr_not_equal(x, a);
	assert_string_equal(x, a);
	assert_ptr_not_equal(x, z);
	assert_string_equal(z, "cluster-1");
	/* One holder gone: the other's copy stays. */
	pp_intern_drop(x);
	assert_string_equal(y, a);
	assert_ptr_equal(pp_intern(a), y);
	assert_ptr_equal(pp_intern_hold(y), y);
	pp_intern_drop(y);
	pp_intern_drop(y);
	assert_string_equal(y, a);
	pp_intern_drop(y);
	pp_intern_drop(z);
	pp_intern_drop(NULL);
}

/* Many distinct values grow the table; each keeps its own copy and count,
 * and dropping them all frees everything (valgrind checks). */
static void test_many_values(void **state)
{
	(void)state;
	enum { N = 5000 };
	static const char *held[N];
	char s[32];
	for (int i = 0; i < N; i++) {
		snprintf(s, sizeof(s), "value-%d", i);
		held[i] = pp_intern(s);
		assert_non_null(held[i]);
	}
	for (int i = 0; i < N; i++) {
		snprintf(s, sizeof(s), "value-%d", i);
		assert_string_equal(held[i], s);
		assert_ptr_equal(pp_intern(s), held[i]);
		pp_intern_drop(held[i]);
	}
	for (int i = 0; i < N; i += 2)
		pp_intern_drop(held[i]);
	for (int i = 1; i < N; i += 2) {
		snprintf(s, sizeof(s), "value-%d", i);
		assert_string_equal(held[i], s);
		pp_intern_drop(held[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_value_shared),
		cmocka_unit_test(test_many_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
