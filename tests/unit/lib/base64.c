/* lib/base64: the value of each digit, in one alphabet or either. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "lib/base64.h"

static const char standard[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void test_every_digit_has_its_place(void **state)
{
	(void)state;
	for (int i = 0; i < 64; i++) {
		assert_int_equal(pp_base64_digit((unsigned char)standard[i], false), i);
		assert_int_equal(pp_base64_digit((unsigned char)standard[i], true), i);
	}
}

static void test_url_digits_only_when_asked(void **state)
{
	(void)state;
	assert_int_equal(pp_base64_digit('-', true), 62);
	assert_int_equal(pp_base64_digit('_', true), 63);
	assert_int_equal(pp_base64_digit('-', false), -1);
	assert_int_equal(pp_base64_digit('_', false), -1);
}

static void test_other_bytes_are_not_digits(void **state)
{
	(void)state;
	for (int c = 0; c < 256; c++) {
		if (strchr(standard, c) && c != 0)
			continue;
		if (c == '-' || c == '_')
			continue;
		assert_int_equal(pp_base64_digit((unsigned char)c, false), -1);
		assert_int_equal(pp_base64_digit((unsigned char)c, true), -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_digit_has_its_place),
		cmocka_unit_test(test_url_digits_only_when_asked),
		cmocka_unit_test(test_other_bytes_are_not_digits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
