/* Token cache: one exchange per lifetime, refresh ahead of expiry,
 * single-flight under concurrency, invalidation, shared entries, errors. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "auth/token_cache.h"
#include "lib/clock.h"
#include "lib/log.h"

struct fake_source {
	pthread_mutex_t mu;
	int calls;
	long lifetime;
	/* Hold the fetch until this many other callers wait for it (and the
	 * cache it is for), so concurrent tests do not depend on threads
	 * arriving within some time. */
	int hold_for;
	struct pp_token_cache *cache;
	int fail_code; /* 0: succeed */
	const char *fail_msg;
};

/* The cache's clock (pp_mono_set_source): moved by advance(), never slept. */
static int64_t fake_now = 1000000;

static int64_t fake_mono(void)
{
	return __atomic_load_n(&fake_now, __ATOMIC_SEQ_CST);
}

static void advance(long ms)
{
	__atomic_add_fetch(&fake_now, ms, __ATOMIC_SEQ_CST);
}

enum { HOLD_POLLS_MAX = 100000 }; /* 100 s of 1 ms looks: a hung test, not a slow one */

static int fake_fetch(void *ud, struct pp_token_grant *out, struct pp_error *err)
{
	struct fake_source *s = ud;
	pthread_mutex_lock(&s->mu);
	int n = ++s->calls;
	pthread_mutex_unlock(&s->mu);
	for (int i = 0;
	     s->hold_for && i < HOLD_POLLS_MAX && pp_token_cache_waiting(s->cache) < s->hold_for;
	     i++)
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	if (s->fail_code)
		return pp_fail(err, s->fail_code, "%s", s->fail_msg);
	if (asprintf(&out->access_token, "token-%d", n) < 0)
		return pp_fail(err, PP_ENOMEM, "oom");
	out->expires_in = s->lifetime;
	return 0;
}

static void source_init(struct fake_source *s, long lifetime)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	s->lifetime = lifetime;
}

static void test_one_fetch_per_lifetime(void **state)
{
	(void)state;
	struct fake_source src;
	struct pp_buf tok;
	struct pp_error err;
	source_init(&src, 3600);
	pp_buf_init(&tok, 1024);
	struct pp_token_cache *c = pp_token_cache_acquire("test|lifetime");
	assert_non_null(c);
	assert_int_equal(pp_token_cache_seconds_left(c), -1);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(pp_token_cache_get(c, fake_fetch, &src, &tok, &err), 0);
		assert_string_equal(tok.data, "token-1");
	}
	assert_int_equal(src.calls, 1);
	assert_int_equal(pp_token_cache_refreshes(c), 1);
	long left = pp_token_cache_seconds_left(c);
	assert_true(left >= 3598 && left <= 3600);
	pp_buf_free(&tok);
	pp_token_cache_release(c);
}

static void test_refresh_before_expiry(void **state)
{
	(void)state;
	struct fake_source src;
	struct pp_buf tok;
	struct pp_error err;
	source_init(&src, 2); /* refresh window opens at 1.6 s */
	pp_buf_init(&tok, 1024);
	struct pp_token_cache *c = pp_token_cache_acquire("test|refresh");
	assert_int_equal(pp_token_cache_get(c, fake_fetch, &src, &tok, &err), 0);
	advance(800);
	assert_int_equal(pp_token_cache_get(c, fake_fetch, &src, &tok, &err), 0);
	assert_string_equal(tok.data, "token-1");
	advance(900); /* 1.7 s: still valid for 0.3 s, but due for refresh */
	assert_int_equal(pp_token_cache_get(c, fake_fetch, &src, &tok, &err), 0);
	assert_string_equal(tok.data, "token-2");
	assert_int_equal(src.calls, 2);
	assert_int_equal(pp_token_cache_refreshes(c), 2);
	pp_buf_free(&tok);
	pp_token_cache_release(c);
}

static void test_failed_early_refresh_keeps_token(void **state)
{
	(void)state;
	struct fake_source src;
	struct pp_buf tok;
	struct pp_error err;
	source_init(&src, 2);
	pp_buf_init(&tok, 1024);
	struct pp_token_cache *c = pp_token_cache_acquire("test|early-fail");
	assert_int_equal(pp_token_cache_get(c, fake_fetch, &src, &tok, &err), 0);
	src.fail_code = PP_ETRANSIENT;
	src.fail_msg = "token endpoint unreachable";
	advance(1700); /* refresh due, token valid for 0.3 s more */
	assert_int_equal(pp_token_cache_get(c, fake_fetch, &src, &tok, &err), 0);
	assert_string_equal(tok.data, "token-1");
	assert_int_equal(src.calls, 2);
	advance(500); /* expired: the failure now stands */
	assert_int_equal(pp_token_cache_get(c, fake_fetch, &src, &tok, &err), PP_ETRANSIENT);
	assert_non_null(strstr(err.msg, "unreachable"));
	assert_int_equal(src.calls, 3);
	pp_buf_free(&tok);
	pp_token_cache_release(c);
}

struct worker {
	pthread_t th;
	struct pp_token_cache *c;
	struct fake_source *src;
	int rc;
	char token[64];
	char msg[PP_ERRMSG_MAX];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pp_buf tok;
	struct pp_error err;
	pp_error_clear(&err);
	pp_buf_init(&tok, 1024);
	w->rc = pp_token_cache_get(w->c, fake_fetch, w->src, &tok, &err);
	snprintf(w->token, sizeof(w->token), "%s", pp_buf_str(&tok));
	snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
	pp_buf_free(&tok);
	return NULL;
}

static void run_workers(struct pp_token_cache *c, struct fake_source *src, struct worker *w, int n)
{
	for (int i = 0; i < n; i++) {
		w[i].c = c;
		w[i].src = src;
		assert_int_equal(pthread_create(&w[i].th, NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < n; i++)
		pthread_join(w[i].th, NULL);
}

static void test_concurrent_single_flight(void **state)
{
	(void)state;
	struct fake_source src;
	struct worker w[8];
	source_init(&src, 3600);
	memset(w, 0, sizeof(w));
	struct pp_token_cache *c = pp_token_cache_acquire("test|concurrent");
	src.cache = c;
	src.hold_for = 7;
	run_workers(c, &src, w, 8);
	assert_int_equal(src.calls, 1);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(w[i].rc, 0);
		assert_string_equal(w[i].token, "token-1");
	}
	pp_token_cache_release(c);
}

static void test_concurrent_failure_shared(void **state)
{
	(void)state;
	struct fake_source src;
	struct worker w[6];
	source_init(&src, 3600);
	src.fail_code = PP_EAUTH;
	src.fail_msg = "token endpoint: HTTP 400: invalid_grant";
	memset(w, 0, sizeof(w));
	struct pp_token_cache *c = pp_token_cache_acquire("test|concurrent-fail");
	src.cache = c;
	src.hold_for = 5;
	run_workers(c, &src, w, 6);
	assert_int_equal(src.calls, 1);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(w[i].rc, PP_EAUTH);
		assert_non_null(strstr(w[i].msg, "invalid_grant"));
	}
	assert_int_equal(pp_token_cache_refreshes(c), 0);
	/* The failure is not cached: the next caller tries again. */
	src.fail_code = 0;
	src.hold_for = 0;
	struct pp_buf tok;
	struct pp_error err;
	pp_buf_init(&tok, 1024);
	assert_int_equal(pp_token_cache_get(c, fake_fetch, &src, &tok, &err), 0);
	assert_string_equal(tok.data, "token-2");
	pp_buf_free(&tok);
	pp_token_cache_release(c);
}

static void test_invalidate_refetches_once(void **state)
{
	(void)state;
	struct fake_source src;
	struct pp_buf tok;
	struct pp_error err;
	source_init(&src, 3600);
	pp_buf_init(&tok, 1024);
	struct pp_token_cache *c = pp_token_cache_acquire("test|invalidate");
	assert_int_equal(pp_token_cache_get(c, fake_fetch, &src, &tok, &err), 0);
	pp_token_cache_invalidate(c);
	assert_int_equal(pp_token_cache_seconds_left(c), -1);
	assert_int_equal(pp_token_cache_get(c, fake_fetch, &src, &tok, &err), 0);
	assert_string_equal(tok.data, "token-2");
	assert_int_equal(pp_token_cache_get(c, fake_fetch, &src, &tok, &err), 0);
	assert_string_equal(tok.data, "token-2");
	assert_int_equal(src.calls, 2);
	pp_buf_free(&tok);
	pp_token_cache_release(c);
}

static void test_shared_by_key(void **state)
{
	(void)state;
	struct fake_source src;
	struct pp_buf tok;
	struct pp_error err;
	source_init(&src, 3600);
	pp_buf_init(&tok, 1024);
	struct pp_token_cache *a = pp_token_cache_acquire("test|shared");
	struct pp_token_cache *b = pp_token_cache_acquire("test|shared");
	struct pp_token_cache *other = pp_token_cache_acquire("test|other");
	assert_ptr_equal(a, b);
	assert_ptr_not_equal(a, other);
	assert_int_equal(pp_token_cache_get(a, fake_fetch, &src, &tok, &err), 0);
	assert_int_equal(pp_token_cache_get(b, fake_fetch, &src, &tok, &err), 0);
	assert_int_equal(src.calls, 1);
	assert_int_equal(pp_token_cache_get(other, fake_fetch, &src, &tok, &err), 0);
	assert_int_equal(src.calls, 2);
	pp_token_cache_release(a);
	/* b still holds the entry and its token. */
	assert_int_equal(pp_token_cache_get(b, fake_fetch, &src, &tok, &err), 0);
	assert_string_equal(tok.data, "token-1");
	pp_token_cache_release(b);
	pp_token_cache_release(other);
	pp_buf_free(&tok);
}

static int no_token_fetch(void *ud, struct pp_token_grant *out, struct pp_error *err)
{
	(void)ud;
	(void)err;
	out->access_token = strdup("short-lived");
	out->expires_in = 0;
	return 0;
}

static void test_unusable_grant_and_redaction(void **state)
{
	(void)state;
	struct fake_source src;
	struct pp_buf tok;
	struct pp_error err;
	pp_buf_init(&tok, 1024);
	struct pp_token_cache *c = pp_token_cache_acquire("test|bad");
	assert_int_equal(pp_token_cache_get(c, no_token_fetch, NULL, &tok, &err), PP_EAUTH);
	assert_non_null(strstr(err.msg, "no usable token"));

	pp_secret_register("hunter2-client-secret");
	source_init(&src, 3600);
	src.fail_code = PP_EAUTH;
	src.fail_msg = "bad client_secret hunter2-client-secret";
	assert_int_equal(pp_token_cache_get(c, fake_fetch, &src, &tok, &err), PP_EAUTH);
	assert_null(strstr(err.msg, "hunter2"));
	assert_non_null(strstr(err.msg, "bad client_secret"));
	pp_secret_clear();
	pp_buf_free(&tok);
	pp_token_cache_release(c);
}

static void test_form_and_b64url(void **state)
{
	(void)state;
	struct pp_buf b;
	pp_buf_init(&b, 1024);
	assert_int_equal(
		pp_form_add(&b, "grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), 0);
	assert_int_equal(pp_form_add(&b, "scope", "https://management.azure.com/.default"), 0);
	assert_string_equal(b.data, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-"
				    "bearer&scope=https%3A%2F%2Fmanagement.azure.com%2F.default");
	pp_buf_reset(&b);
	/* RFC 4648 test vectors, URL alphabet, no padding. */
	assert_int_equal(pp_b64url(&b, (const unsigned char *)"foob", 4), 0);
	assert_string_equal(b.data, "Zm9vYg");
	pp_buf_reset(&b);
	assert_int_equal(pp_b64url(&b, (const unsigned char *)"fooba", 5), 0);
	assert_string_equal(b.data, "Zm9vYmE");
	pp_buf_reset(&b);
	const unsigned char hi[] = {0xfb, 0xff, 0xfe};
	assert_int_equal(pp_b64url(&b, hi, 3), 0);
	assert_string_equal(b.data, "-__-");
	pp_buf_free(&b);
}

int main(void)
{
	pp_mono_set_source(fake_mono);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_fetch_per_lifetime),
		cmocka_unit_test(test_refresh_before_expiry),
		cmocka_unit_test(test_failed_early_refresh_keeps_token),
		cmocka_unit_test(test_concurrent_single_flight),
		cmocka_unit_test(test_concurrent_failure_shared),
		cmocka_unit_test(test_invalidate_refetches_once),
		cmocka_unit_test(test_shared_by_key),
		cmocka_unit_test(test_unusable_grant_and_redaction),
		cmocka_unit_test(test_form_and_b64url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
