#include "lib/grpc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"
#include "lib/log.h"
#include "lib/pb.h"

static const char *const code_names[] = {
	"OK",
	"CANCELLED",
	"UNKNOWN",
	"INVALID_ARGUMENT",
	"DEADLINE_EXCEEDED",
	"NOT_FOUND",
	"ALREADY_EXISTS",
	"PERMISSION_DENIED",
	"RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION",
	"ABORTED",
	"OUT_OF_RANGE",
	"UNIMPLEMENTED",
	"INTERNAL",
	"UNAVAILABLE",
	"DATA_LOSS",
	"UNAUTHENTICATED",
};

const char *pp_grpc_code_name(int code)
{
	if (code < 0 || code >= (int)(sizeof(code_names) / sizeof(code_names[0])))
		return "UNKNOWN";
	return code_names[code];
}

int pp_grpc_code_to_err(int code)
{
	switch (code) {
	case PP_GRPC_OK: return PP_OK;
	case PP_GRPC_CANCELLED:
	case PP_GRPC_UNKNOWN:
	case PP_GRPC_DEADLINE_EXCEEDED:
	case PP_GRPC_ABORTED:
	case PP_GRPC_INTERNAL:
	case PP_GRPC_UNAVAILABLE: return PP_ETRANSIENT;
	case PP_GRPC_RESOURCE_EXHAUSTED: return PP_ETHROTTLED;
	case PP_GRPC_UNAUTHENTICATED:
	case PP_GRPC_PERMISSION_DENIED: return PP_EAUTH;
	case PP_GRPC_NOT_FOUND: return PP_ENOTFOUND;
	case PP_GRPC_ALREADY_EXISTS: return PP_ECONFLICT;
	default: return PP_EINVALID;
	}
}

int pp_grpc_frame(struct pp_buf *out, const void *msg, size_t len)
{
	if (len > PP_GRPC_MAX_MESSAGE)
		return PP_ENOMEM;
	uint8_t prefix[5] = {0, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
			     (uint8_t)len};
	int rc = pp_buf_append(out, prefix, sizeof(prefix));
	if (!rc && len)
		rc = pp_buf_append(out, msg, len);
	return rc;
}

int pp_grpc_unframe(const void *p, size_t len, const uint8_t **msg, size_t *msg_len, size_t *used,
		    struct pp_error *err)
{
	const uint8_t *b = p;
	if (len < 5)
		return pp_fail(err, PP_EINVALID, "gRPC frame: %zu bytes, need a 5-byte prefix",
			       len);
	if (b[0] != 0)
		return pp_fail(err, PP_EINVALID,
			       "gRPC frame: compressed messages are not supported");
	size_t n = (size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 | b[4];
	if (n > len - 5)
		return pp_fail(err, PP_EINVALID, "gRPC frame: announces %zu bytes, %zu present", n,
			       len - 5);
	*msg = b + 5;
	*msg_len = n;
	if (used)
		*used = n + 5;
	return 0;
}

int pp_grpc_request(struct pp_http_req *req, const char *base_url, const char *path,
		    const struct pp_buf *msg, long timeout_ms, struct pp_error *err)
{
	struct pp_buf url, body;
	pp_buf_init(&url, 4096);
	pp_buf_init(&body, PP_GRPC_MAX_MESSAGE + 5);
	pp_http_req_init(req, "POST", NULL);
	size_t blen = strlen(base_url);
	while (blen && base_url[blen - 1] == '/')
		blen--;
	int rc = pp_buf_printf(&url, "%.*s/%s", (int)blen, base_url, path);
	if (!rc)
		rc = pp_http_req_set_url(req, url.data);
	if (!rc)
		rc = pp_grpc_frame(&body, msg->data, msg->len);
	if (!rc)
		rc = pp_http_req_body(req, body.data, body.len);
	if (!rc)
		rc = pp_http_req_set_header(req, "Content-Type", "application/grpc");
	/* Servers refuse gRPC without it; curl forwards TE only with "trailers". */
	if (!rc)
		rc = pp_http_req_set_header(req, "TE", "trailers");
	if (!rc)
		rc = pp_http_req_header(req, "grpc-timeout", "%ldm", timeout_ms);
	pp_buf_free(&url);
	pp_buf_free(&body);
	if (rc) {
		pp_http_req_free(req);
		return pp_fail(err, rc, "gRPC %s: cannot build the request", path);
	}
	req->flags |= PP_HTTP_GRPC;
	req->timeout_ms = timeout_ms + 2000;
	req->max_response = PP_GRPC_MAX_MESSAGE + 4096;
	return 0;
}

static void percent_decode(const char *in, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; in[i] && o + 1 < size; i++) {
		if (in[i] == '%' && isxdigit((unsigned char)in[i + 1]) &&
		    isxdigit((unsigned char)in[i + 2])) {
			char hex[3] = {in[i + 1], in[i + 2], 0};
			out[o++] = (char)strtol(hex, NULL, 16);
			i += 2;
		} else {
			out[o++] = in[i];
		}
	}
	out[o] = '\0';
}

/* Base64 (standard or URL alphabet, padding optional) into out. */
static int b64_decode(const char *in, struct pp_buf *out)
{
	unsigned acc = 0;
	int bits = 0;
	for (; *in && *in != '='; in++) {
		int v = pp_base64_digit((unsigned char)*in, true);
		if (v < 0)
			return PP_EINVALID;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (pp_buf_putc(out, (char)((acc >> bits) & 0xff)))
				return PP_ENOMEM;
		}
	}
	return 0;
}

/* google.rpc.Status{details=3 repeated Any{type_url=1, value=2}}: each
 * detail is offered to the caller's hint (which knows its service's
 * detail types); the first non-zero answer is the back-off in ms. */
static long retry_after_from_details(const char *b64, pp_grpc_retry_hint hint)
{
	struct pp_buf raw;
	pp_buf_init(&raw, 64 * 1024);
	long ms = 0;
	if (b64_decode(b64, &raw))
		goto out;
	struct pp_pb_reader st;
	struct pp_pb_field f;
	pp_pb_reader_init(&st, raw.data, raw.len);
	while (!ms && pp_pb_next(&st, &f, NULL) == 1) {
		if (f.num != 3 || f.wire != PP_PB_LEN)
			continue;
		struct pp_pb_reader any;
		struct pp_pb_field af;
		const uint8_t *type_url = NULL, *value = NULL;
		size_t type_len = 0, value_len = 0;
		pp_pb_reader_init(&any, f.data, f.len);
		while (pp_pb_next(&any, &af, NULL) == 1) {
			if (af.num == 1 && af.wire == PP_PB_LEN) {
				type_url = af.data;
				type_len = af.len;
			} else if (af.num == 2 && af.wire == PP_PB_LEN) {
				value = af.data;
				value_len = af.len;
			}
		}
		if (type_url && value)
			ms = hint((const char *)type_url, type_len, value, value_len);
	}
out:
	pp_buf_free(&raw);
	return ms;
}

/* The gRPC spec's mapping for HTTP errors that carry no grpc-status. */
static int grpc_code_for_http(long status)
{
	switch (status) {
	case 400: return PP_GRPC_INTERNAL;
	case 401: return PP_GRPC_UNAUTHENTICATED;
	case 403: return PP_GRPC_PERMISSION_DENIED;
	case 404: return PP_GRPC_UNIMPLEMENTED;
	case 429:
	case 502:
	case 503:
	case 504: return PP_GRPC_UNAVAILABLE;
	default: return PP_GRPC_UNKNOWN;
	}
}

int pp_grpc_result(const struct pp_http_resp *resp, const char *what, pp_grpc_retry_hint hint,
		   const uint8_t **msg, size_t *msg_len, int *grpc_code, struct pp_error *err)
{
	if (grpc_code)
		*grpc_code = -1;
	if (resp->status == 0)
		return pp_fail(err, PP_ETRANSIENT, "%s: no response: %s", what,
			       resp->transport_error[0] ? resp->transport_error
							: "transport error");
	const char *gs = pp_http_resp_header(resp, "grpc-status");
	int code;
	if (gs) {
		char *end;
		long v = strtol(gs, &end, 10);
		if (end == gs || *end || v < 0 || v > 16)
			return pp_fail(err, PP_EINVALID, "%s: bad grpc-status \"%.16s\"", what, gs);
		code = (int)v;
	} else if (resp->status != 200) {
		code = grpc_code_for_http(resp->status);
	} else {
		/* A 200 whose stream ended without trailers was cut short. */
		return pp_fail(err, PP_ETRANSIENT, "%s: response ended without grpc-status", what);
	}
	if (grpc_code)
		*grpc_code = code;
	if (code != PP_GRPC_OK) {
		char text[512];
		const char *gm = pp_http_resp_header(resp, "grpc-message");
		percent_decode(gm ? gm : "", text, sizeof(text));
		pp_redact(text);
		int rc = pp_fail(err, pp_grpc_code_to_err(code), "%s: %sgrpc-status %d (%s)%s%s",
				 what, gs ? "" : "HTTP error, ", code, pp_grpc_code_name(code),
				 text[0] ? ": " : "", text);
		const char *det = pp_http_resp_header(resp, "grpc-status-details-bin");
		if (det && hint && err)
			err->retry_after_ms = retry_after_from_details(det, hint);
		if (err && !err->retry_after_ms)
			err->retry_after_ms = resp->retry_after_ms;
		return rc;
	}
	if (resp->status != 200)
		return pp_fail(err, PP_EINVALID, "%s: HTTP %ld with grpc-status 0", what,
			       resp->status);
	int rc = pp_grpc_unframe(resp->body.data, resp->body.len, msg, msg_len, NULL, err);
	if (rc)
		return pp_error_prefix(err, "%s: ", what);
	return 0;
}
