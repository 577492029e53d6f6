/* libFuzzer entry for the protobuf reader and the gRPC frame splitter that
 * decode every Modal answer. Walks the input as a message (recursing into
 * length-delimited fields, as the Modal parsers do for nested messages) and
 * as a stream of gRPC frames; every field must lie inside the input, and a
 * frame's size must add up. Build: clang -fsanitize=fuzzer,address,undefined. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lib/grpc.h"
#include "lib/pb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const uint8_t *p, size_t len, int depth)
{
	struct pp_pb_reader r;
	struct pp_pb_field f;
	struct pp_error err = {0};
	char s[64];
	pp_pb_reader_init(&r, p, len);
	while (pp_pb_next(&r, &f, &err) == 1) {
		if (f.num == 0)
			abort();
		if (f.wire != PP_PB_LEN)
			continue;
		if (f.data < p || f.len > len || f.data + f.len > p + len)
			abort();
		pp_pb_field_string(&f, s, sizeof(s), &err);
		pp_pb_field_float(&f);
		if (depth < 8)
			walk(f.data, f.len, depth + 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	walk(data, size, 0);
	const uint8_t *p = data, *msg;
	size_t left = size, msg_len, used;
	struct pp_error err = {0};
	while (left && !pp_grpc_unframe(p, left, &msg, &msg_len, &used, &err)) {
		if (used != msg_len + 5 || used > left || msg != p + 5)
			abort();
		walk(msg, msg_len, 0);
		p += used;
		left -= used;
	}
	return 0;
}
