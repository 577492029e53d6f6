#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/grpc.h"
#include "lib/log.h"
#include "lib/pb.h"

static void add_header(struct pp_http_resp *r, const char *name, const char *value)
{
	assert_int_equal(pp_http_resp_add_header(r, name, value), 0);
}

static void test_frame_roundtrip(void **state)
{
	struct pp_buf b;
	struct pp_error err = {0};
	pp_buf_init(&b, 1024);
	assert_int_equal(pp_grpc_frame(&b, "\x08\x01", 2), 0);
	assert_int_equal(pp_grpc_frame(&b, "", 0), 0);
	assert_int_equal(b.len, 12);
	assert_memory_equal(b.data, "\0\0\0\0\2\x08\x01", 7);
	const uint8_t *msg;
	size_t len, used;
	assert_int_equal(pp_grpc_unframe(b.data, b.len, &msg, &len, &used, &err), 0);
	assert_int_equal(len, 2);
	assert_int_equal(used, 7);
	assert_int_equal(pp_grpc_unframe(b.data + used, b.len - used, &msg, &len, &used, &err), 0);
	assert_int_equal(len, 0);
	/* truncated body and compressed flag are refused */
	assert_int_equal(pp_grpc_unframe(b.data, 6, &msg, &len, &used, &err), PP_EINVALID);
	b.data[0] = 1;
	assert_int_equal(pp_grpc_unframe(b.data, b.len, &msg, &len, &used, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "compressed"));
	pp_buf_free(&b);
}

static void test_request_shape(void **state)
{
	struct pp_http_req req;
	struct pp_error err = {0};
	struct pp_buf msg;
	pp_buf_init(&msg, 64);
	assert_int_equal(pp_pb_string(&msg, 1, "x"), 0);
	assert_int_equal(pp_grpc_request(&req, "http://127.0.0.1:9/", "svc.S/M", &msg, 1500, &err),
			 0);
	assert_string_equal(req.url, "http://127.0.0.1:9/svc.S/M");
	assert_string_equal(req.method, "POST");
	assert_string_equal(pp_http_req_get_header(&req, "Content-Type"), "application/grpc");
	assert_string_equal(pp_http_req_get_header(&req, "TE"), "trailers");
	assert_string_equal(pp_http_req_get_header(&req, "grpc-timeout"), "1500m");
	assert_true(req.flags & PP_HTTP_GRPC);
	assert_true(req.timeout_ms > 1500);
	assert_int_equal(req.body_len, 5 + msg.len);
	assert_memory_equal(req.body, "\0\0\0\0\3\x0a\x01x", 8);
	pp_http_req_free(&req);
	pp_buf_free(&msg);
}

static void test_result_ok(void **state)
{
	struct pp_http_resp resp;
	struct pp_error err = {0};
	pp_http_resp_init(&resp, 1024);
	resp.status = 200;
	assert_int_equal(pp_grpc_frame(&resp.body, "\x0a\x02id", 4), 0);
	add_header(&resp, "grpc-status", "0");
	const uint8_t *msg;
	size_t len;
	int code;
	assert_int_equal(pp_grpc_result(&resp, "Modal X", NULL, &msg, &len, &code, &err), 0);
	assert_int_equal(code, 0);
	assert_int_equal(len, 4);
	assert_memory_equal(msg, "\x0a\x02id", 4);
	pp_http_resp_free(&resp);
}

struct mapping {
	const char *status;
	int err;
};

static void test_result_errors(void **state)
{
	static const struct mapping map[] = {
		{"14", PP_ETRANSIENT}, {"4", PP_ETRANSIENT}, {"8", PP_ETHROTTLED},
		{"16", PP_EAUTH},      {"7", PP_EAUTH},	     {"5", PP_ENOTFOUND},
		{"6", PP_ECONFLICT},   {"3", PP_EINVALID},   {"13", PP_ETRANSIENT},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		struct pp_http_resp resp;
		struct pp_error err = {0};
		pp_http_resp_init(&resp, 1024);
		resp.status = 200;
		add_header(&resp, "grpc-status", map[i].status);
		add_header(&resp, "grpc-message", "bad%20thing%3A x");
		const uint8_t *msg;
		size_t len;
		int code;
		assert_int_equal(pp_grpc_result(&resp, "Modal Y", NULL, &msg, &len, &code, &err),
				 map[i].err);
		assert_int_equal(code, atoi(map[i].status));
		assert_non_null(strstr(err.msg, "Modal Y: grpc-status"));
		assert_non_null(strstr(err.msg, "bad thing: x"));
		pp_http_resp_free(&resp);
	}
}

static void test_result_transport_and_http(void **state)
{
	struct pp_http_resp resp;
	struct pp_error err = {0};
	const uint8_t *msg;
	size_t len;
	pp_http_resp_init(&resp, 1024);
	snprintf(resp.transport_error, sizeof(resp.transport_error), "Connection refused");
	assert_int_equal(pp_grpc_result(&resp, "Modal Z", NULL, &msg, &len, NULL, &err),
			 PP_ETRANSIENT);
	assert_non_null(strstr(err.msg, "Connection refused"));
	/* HTTP 503 from a proxy with no grpc-status: UNAVAILABLE */
	resp.status = 503;
	int code;
	assert_int_equal(pp_grpc_result(&resp, "Modal Z", NULL, &msg, &len, &code, &err),
			 PP_ETRANSIENT);
	assert_int_equal(code, PP_GRPC_UNAVAILABLE);
	/* 200 whose stream ended without trailers was cut */
	resp.status = 200;
	assert_int_equal(pp_grpc_result(&resp, "Modal Z", NULL, &msg, &len, &code, &err),
			 PP_ETRANSIENT);
	assert_non_null(strstr(err.msg, "without grpc-status"));
	add_header(&resp, "grpc-status", "99");
	assert_int_equal(pp_grpc_result(&resp, "Modal Z", NULL, &msg, &len, &code, &err),
			 PP_EINVALID);
	pp_http_resp_free(&resp);
}

/* A service's back-off detail as a test defines it: test.Backoff{seconds=1
 * float}. What a real service sends is its own module's business (Modal's
 * RPCRetryPolicy is read in auth/modal.c). */
static long test_backoff_hint(const char *type_url, size_t type_len, const uint8_t *value,
			      size_t value_len)
{
	static const char want[] = "type.googleapis.com/test.Backoff";
	if (type_len != sizeof(want) - 1 || memcmp(type_url, want, type_len))
		return 0;
	struct pp_pb_reader r;
	struct pp_pb_field f;
	pp_pb_reader_init(&r, value, value_len);
	while (pp_pb_next(&r, &f, NULL) == 1)
		if (f.num == 1 && f.wire == PP_PB_I32)
			return (long)(pp_pb_field_float(&f) * 1000.0f);
	return 0;
}

/* google.rpc.Status{code=8, details=[Any{other type}, Any{test.Backoff{2.5}}]}:
 * each detail is offered to the hint, the first it reads wins. */
static void test_retry_policy_details(void **state)
{
	struct pp_buf policy, other, any, status;
	pp_buf_init(&policy, 256);
	pp_buf_init(&other, 256);
	pp_buf_init(&any, 256);
	pp_buf_init(&status, 256);
	assert_int_equal(pp_pb_float(&policy, 1, 2.5f), 0);
	assert_int_equal(pp_pb_string(&other, 1, "type.googleapis.com/google.rpc.DebugInfo"), 0);
	assert_int_equal(pp_pb_message(&other, 2, &policy), 0);
	assert_int_equal(pp_pb_string(&any, 1, "type.googleapis.com/test.Backoff"), 0);
	assert_int_equal(pp_pb_message(&any, 2, &policy), 0);
	assert_int_equal(pp_pb_varint(&status, 1, 8), 0);
	assert_int_equal(pp_pb_message(&status, 3, &other), 0);
	assert_int_equal(pp_pb_message(&status, 3, &any), 0);
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char b64[512];
	size_t o = 0;
	const uint8_t *s = (const uint8_t *)status.data;
	/* unpadded base64, as gRPC sends -bin metadata */
	for (size_t i = 0; i < status.len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		size_t n = status.len - i >= 3 ? 3 : status.len - i;
		if (n > 1)
			v |= (uint32_t)s[i + 1] << 8;
		if (n > 2)
			v |= s[i + 2];
		for (size_t k = 0; k < n + 1; k++)
			b64[o++] = alphabet[(v >> (18 - 6 * k)) & 63];
	}
	b64[o] = '\0';

	struct pp_http_resp resp;
	struct pp_error err = {0};
	pp_http_resp_init(&resp, 1024);
	resp.status = 200;
	add_header(&resp, "grpc-status", "8");
	add_header(&resp, "grpc-status-details-bin", b64);
	const uint8_t *msg;
	size_t len;
	assert_int_equal(pp_grpc_result(&resp, "T", test_backoff_hint, &msg, &len, NULL, &err),
			 PP_ETHROTTLED);
	assert_int_equal(err.retry_after_ms, 2500);
	/* Without a hint the details say nothing. */
	assert_int_equal(pp_grpc_result(&resp, "T", NULL, &msg, &len, NULL, &err), PP_ETHROTTLED);
	assert_int_equal(err.retry_after_ms, 0);
	pp_http_resp_free(&resp);
	pp_buf_free(&other);
	pp_buf_free(&policy);
	pp_buf_free(&any);
	pp_buf_free(&status);
}

static void test_message_redacted(void **state)
{
	pp_secret_register("as-supersecret");
	struct pp_http_resp resp;
	struct pp_error err = {0};
	pp_http_resp_init(&resp, 1024);
	resp.status = 200;
	add_header(&resp, "grpc-status", "16");
	add_header(&resp, "grpc-message", "token as-supersecret rejected");
	const uint8_t *msg;
	size_t len;
	assert_int_equal(pp_grpc_result(&resp, "Modal A", NULL, &msg, &len, NULL, &err), PP_EAUTH);
	assert_null(strstr(err.msg, "supersecret"));
	assert_non_null(strstr(err.msg, "UNAUTHENTICATED"));
	pp_http_resp_free(&resp);
	pp_secret_clear();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_roundtrip),
		cmocka_unit_test(test_request_shape),
		cmocka_unit_test(test_result_ok),
		cmocka_unit_test(test_result_errors),
		cmocka_unit_test(test_result_transport_and_http),
		cmocka_unit_test(test_retry_policy_details),
		cmocka_unit_test(test_message_redacted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
