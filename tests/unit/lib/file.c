/* lib/file: guarded reads, and the one rule for secret files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/file.h"
#include "lib/log.h"

static char dir[] = "/tmp/pp-file-XXXXXX";
static char path[256];

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/f", dir);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	char fifo[300];
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	unlink(fifo);
	unlink(path);
	rmdir(dir);
	pp_secret_clear();
	return 0;
}

static void put(const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* The secret read from a file holding text (n bytes), or NULL with err. */
static char *secret_of(const void *text, size_t n, int *rc, struct pp_error *err)
{
	put(text, n);
	char *out = NULL;
	*rc = pp_file_read_secret(path, "client secret", PP_EAUTH, &out, err);
	return out;
}

static void expect_secret(const char *text, const char *want)
{
	struct pp_error err = {0};
	int rc;
	char *got = secret_of(text, strlen(text), &rc, &err);
	if (rc)
		fail_msg("'%s': %s", text, err.msg);
	assert_string_equal(got, want);
	free(got);
}

static void test_secret_newline_rule(void **state)
{
	(void)state;
	expect_secret("s3cret", "s3cret");
	expect_secret("s3cret\n", "s3cret");
	expect_secret("s3cret\r\n", "s3cret");
	expect_secret("  s3cret \t\n\n", "s3cret");
	/* White space inside is part of the value, lines included. */
	expect_secret("two words\nand a line\n", "two words\nand a line");
	/* The value is registered: it never reaches a log line. */
	expect_secret("a-longer-s3cret\n", "a-longer-s3cret");
	char line[] = "key=a-longer-s3cret";
	pp_redact(line);
	assert_string_equal(line, "key=[REDACTED]");
}

static void test_secret_empty_and_nul(void **state)
{
	(void)state;
	static const char *const empty[] = {"", "\n", "  \r\n\t "};
	for (size_t i = 0; i < 3; i++) {
		struct pp_error err = {0};
		int rc;
		char *got = secret_of(empty[i], strlen(empty[i]), &rc, &err);
		assert_null(got);
		assert_int_equal(rc, PP_EAUTH); /* the caller's code for empty */
		assert_non_null(strstr(err.msg, ": client secret file is empty"));
		assert_non_null(strstr(err.msg, path));
	}
	struct pp_error err = {0};
	int rc;
	assert_null(secret_of("ab\0cd", 5, &rc, &err));
	assert_int_equal(rc, PP_EINVALID);
	assert_non_null(strstr(err.msg, "client secret file holds a NUL byte"));
}

static void test_size_cap(void **state)
{
	(void)state;
	size_t n = PP_SECRET_FILE_MAX + 1;
	char *big = malloc(n);
	assert_non_null(big);
	memset(big, 'a', n);
	struct pp_error err = {0};
	int rc;
	assert_null(secret_of(big, n, &rc, &err));
	assert_int_equal(rc, PP_EINVALID);
	assert_non_null(strstr(err.msg, "larger than 65536 bytes"));
	/* Exactly at the cap is fine. */
	char *got = secret_of(big, n - 1, &rc, &err);
	assert_int_equal(rc, 0);
	assert_int_equal(strlen(got), n - 1);
	free(got);
	free(big);
	/* pp_file_read takes its cap from the caller. */
	put("0123456789", 10);
	struct pp_buf b;
	pp_buf_init(&b, 0);
	assert_int_equal(pp_file_read(path, 10, &b, &err), 0);
	assert_string_equal(pp_buf_str(&b), "0123456789");
	assert_int_equal(pp_file_read(path, 9, &b, &err), PP_EINVALID);
	pp_buf_free(&b);
}

static void expect_refused(const char *p, int code, const char *why)
{
	struct pp_error err = {0};
	char *out = NULL;
	assert_int_equal(pp_file_read_secret(p, "token", PP_EAUTH, &out, &err), code);
	assert_null(out);
	if (!strstr(err.msg, p) || !strstr(err.msg, why))
		fail_msg("%s: '%s', expected '%s'", p, err.msg, why);
	assert_true(pp_file_open(p, &err) < 0);
}

/* Issue 18: -c /dev/zero hung reading forever. Nothing but a regular file
 * is read, and a FIFO without a writer does not block the open. */
static void test_not_a_file_refused(void **state)
{
	(void)state;
	expect_refused("/dev/zero", PP_EINVALID, ": is a character device, not a regular file");
	expect_refused(dir, PP_EINVALID, ": is a directory, not a regular file");
	char fifo[300];
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	expect_refused(fifo, PP_EINVALID, ": is a FIFO, not a regular file");
	char missing[300];
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	expect_refused(missing, PP_ENOTFOUND, ": No such file or directory");
	/* A regular file opens, blocking again, ready to read. */
	put("x", 1);
	struct pp_error err = {0};
	int fd = pp_file_open(path, &err);
	assert_true(fd >= 0);
	char c;
	assert_int_equal(read(fd, &c, 1), 1);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secret_newline_rule),
		cmocka_unit_test(test_secret_empty_and_nul),
		cmocka_unit_test(test_size_cap),
		cmocka_unit_test(test_not_a_file_refused),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
