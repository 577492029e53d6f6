/* libFuzzer entry for the gRPC answer checker every Modal call goes
 * through: HTTP status, grpc-status, grpc-message (percent-encoded) and
 * grpc-status-details-bin (base64 google.rpc.Status carrying Modal's
 * RPCRetryPolicy) come from the input, split at NUL bytes, followed by the
 * body. On success the message must lie inside the body; on failure the
 * error must carry a message. Build: clang -fsanitize=fuzzer,address,undefined. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/modal.h"
#include "lib/grpc.h"
#include "tests/fuzz/fuzz_resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *next_field(const uint8_t **p, const uint8_t *end, char *out, size_t n)
{
	const uint8_t *nul = memchr(*p, '\0', (size_t)(end - *p));
	size_t len = (size_t)((nul ? nul : end) - *p);
	if (len >= n)
		len = n - 1;
	memcpy(out, *p, len);
	out[len] = '\0';
	*p = nul ? nul + 1 : end;
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > 1 << 16)
		return 0;
	static const long statuses[] = {200, 200, 200, 0, 400, 404, 429, 500, 503};
	const uint8_t *p = data + 2, *end = data + size;
	char status[64], message[1024], details[4096];
	struct pp_http_resp resp;
	struct pp_error err = {0};
	const uint8_t *msg = NULL;
	size_t msg_len = 0;
	int code = 0;

	pp_http_resp_init(&resp, 1 << 20);
	resp.status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
	next_field(&p, end, status, sizeof(status));
	next_field(&p, end, message, sizeof(message));
	next_field(&p, end, details, sizeof(details));
	if (data[1] & 1)
		fuzz_add_header(&resp, "grpc-status", status);
	if (data[1] & 2)
		fuzz_add_header(&resp, "grpc-message", message);
	if (data[1] & 4)
		fuzz_add_header(&resp, "grpc-status-details-bin", details);
	if (pp_buf_append(&resp.body, p, (size_t)(end - p)))
		abort();
	int rc = pp_grpc_result(&resp, "Fuzz", pp_modal_retry_hint, &msg, &msg_len, &code, &err);
	if (!rc && (!msg || msg < (const uint8_t *)resp.body.data ||
		    msg + msg_len > (const uint8_t *)resp.body.data + resp.body.len))
		abort();
	if (rc && !err.msg[0])
		abort();
	pp_http_resp_free(&resp);
	return 0;
}
