#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "lib/pb.h"

static void assert_bytes(const struct pp_buf *b, const char *hex)
{
	char got[512] = "";
	for (size_t i = 0; i < b->len && 2 * i + 2 < sizeof(got); i++)
		snprintf(got + 2 * i, 3, "%02x", (unsigned char)b->data[i]);
	assert_string_equal(got, hex);
}

/* Vectors from the protobuf encoding guide: 150 in field 1, "testing" in 2. */
static void test_encode_known_vectors(void **state)
{
	struct pp_buf b;
	pp_buf_init(&b, 1024);
	assert_int_equal(pp_pb_varint(&b, 1, 150), 0);
	assert_bytes(&b, "089601");
	pp_buf_reset(&b);
	assert_int_equal(pp_pb_string(&b, 2, "testing"), 0);
	assert_bytes(&b, "120774657374696e67");
	pp_buf_reset(&b);
	/* field 30 needs a two-byte tag: (30 << 3) | 2 = 242 */
	assert_int_equal(pp_pb_string(&b, 30, "a"), 0);
	assert_bytes(&b, "f2010161");
	pp_buf_reset(&b);
	assert_int_equal(pp_pb_float(&b, 2, 10.0f), 0);
	assert_bytes(&b, "1500002041");
	pp_buf_reset(&b);
	assert_int_equal(pp_pb_map_entry(&b, 5, "K", "v"), 0);
	assert_bytes(&b, "2a060a014b120176");
	pp_buf_reset(&b);
	/* a negative int32 is sign-extended to ten bytes */
	assert_int_equal(pp_pb_varint(&b, 3, (uint64_t)(int64_t)-1), 0);
	assert_bytes(&b, "18ffffffffffffffffff01");
	pp_buf_free(&b);
}

static void test_roundtrip(void **state)
{
	struct pp_buf b, sub;
	pp_buf_init(&b, 1024);
	pp_buf_init(&sub, 1024);
	assert_int_equal(pp_pb_varint(&sub, 1, 2), 0);
	assert_int_equal(pp_pb_string(&b, 1, "sb-123"), 0);
	assert_int_equal(pp_pb_message(&b, 2, &sub), 0);
	assert_int_equal(pp_pb_double(&b, 3, 1.5), 0);
	assert_int_equal(pp_pb_float(&b, 4, 0.25f), 0);

	struct pp_pb_reader r;
	struct pp_pb_field f;
	struct pp_error err = {0};
	char s[16];
	pp_pb_reader_init(&r, b.data, b.len);
	assert_int_equal(pp_pb_next(&r, &f, &err), 1);
	assert_int_equal(f.num, 1);
	assert_int_equal(pp_pb_field_string(&f, s, sizeof(s), &err), 0);
	assert_string_equal(s, "sb-123");
	assert_int_equal(pp_pb_next(&r, &f, &err), 1);
	assert_int_equal(f.num, 2);
	assert_int_equal(f.wire, PP_PB_LEN);
	struct pp_pb_reader inner;
	struct pp_pb_field g;
	pp_pb_reader_init(&inner, f.data, f.len);
	assert_int_equal(pp_pb_next(&inner, &g, &err), 1);
	assert_int_equal(g.num, 1);
	assert_int_equal(g.u64, 2);
	assert_int_equal(pp_pb_next(&inner, &g, &err), 0);
	assert_int_equal(pp_pb_next(&r, &f, &err), 1);
	assert_int_equal(f.wire, PP_PB_I64);
	double d;
	memcpy(&d, &f.u64, sizeof(d));
	assert_true(d == 1.5);
	assert_int_equal(pp_pb_next(&r, &f, &err), 1);
	assert_true(pp_pb_field_float(&f) == 0.25f);
	assert_int_equal(pp_pb_next(&r, &f, &err), 0);
	pp_buf_free(&b);
	pp_buf_free(&sub);
}

static void test_malformed(void **state)
{
	struct pp_pb_reader r;
	struct pp_pb_field f;
	struct pp_error err = {0};
	/* length 7 announced, 2 bytes present */
	static const uint8_t short_len[] = {0x12, 0x07, 't', 'e'};
	pp_pb_reader_init(&r, short_len, sizeof(short_len));
	assert_int_equal(pp_pb_next(&r, &f, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "claims 7 bytes, 2 left"));
	/* varint that never ends */
	static const uint8_t open_varint[] = {0x08, 0x80, 0x80};
	pp_pb_reader_init(&r, open_varint, sizeof(open_varint));
	assert_int_equal(pp_pb_next(&r, &f, &err), PP_EINVALID);
	/* wire type 3 (group start) is not supported */
	static const uint8_t group[] = {0x0b};
	pp_pb_reader_init(&r, group, sizeof(group));
	assert_int_equal(pp_pb_next(&r, &f, &err), PP_EINVALID);
	assert_non_null(strstr(err.msg, "wire type 3"));
	/* field number 0 is invalid */
	static const uint8_t zero[] = {0x00, 0x01};
	pp_pb_reader_init(&r, zero, sizeof(zero));
	assert_int_equal(pp_pb_next(&r, &f, &err), PP_EINVALID);
	/* truncated fixed32 */
	static const uint8_t fixed[] = {0x15, 0x00, 0x00};
	pp_pb_reader_init(&r, fixed, sizeof(fixed));
	assert_int_equal(pp_pb_next(&r, &f, &err), PP_EINVALID);
}

static void test_string_limits(void **state)
{
	struct pp_pb_field f = {
		.num = 1, .wire = PP_PB_LEN, .data = (const uint8_t *)"ab\0c", .len = 4};
	struct pp_error err = {0};
	char s[8];
	assert_int_equal(pp_pb_field_string(&f, s, sizeof(s), &err), PP_EINVALID);
	f.len = 2;
	assert_int_equal(pp_pb_field_string(&f, s, 2, &err), PP_EINVALID);
	assert_int_equal(pp_pb_field_string(&f, s, 3, &err), 0);
	assert_string_equal(s, "ab");
	struct pp_buf b;
	pp_buf_init(&b, 4);
	assert_int_equal(pp_pb_string(&b, 1, "toolong"), PP_ENOMEM);
	pp_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_known_vectors),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_string_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
