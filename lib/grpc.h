/* gRPC over the HTTP layer (libcurl HTTP/2): unary calls as one
 * length-prefixed message in a POST, status from grpc-status/grpc-message
 * in the trailers (or a trailers-only header block). */
#ifndef PP_GRPC_H
#define PP_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/http.h"

enum pp_grpc_code {
	PP_GRPC_OK = 0,
	PP_GRPC_CANCELLED = 1,
	PP_GRPC_UNKNOWN = 2,
	PP_GRPC_INVALID_ARGUMENT = 3,
	PP_GRPC_DEADLINE_EXCEEDED = 4,
	PP_GRPC_NOT_FOUND = 5,
	PP_GRPC_ALREADY_EXISTS = 6,
	PP_GRPC_PERMISSION_DENIED = 7,
	PP_GRPC_RESOURCE_EXHAUSTED = 8,
	PP_GRPC_FAILED_PRECONDITION = 9,
	PP_GRPC_ABORTED = 10,
	PP_GRPC_OUT_OF_RANGE = 11,
	PP_GRPC_UNIMPLEMENTED = 12,
	PP_GRPC_INTERNAL = 13,
	PP_GRPC_UNAVAILABLE = 14,
	PP_GRPC_DATA_LOSS = 15,
	PP_GRPC_UNAUTHENTICATED = 16,
};

/* Largest gRPC message we accept (and size of a response we read). */
#define PP_GRPC_MAX_MESSAGE ((size_t)4 << 20)

const char *pp_grpc_code_name(int code);
/* UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, CANCELLED, ABORTED ->
 * TRANSIENT; RESOURCE_EXHAUSTED -> THROTTLED; UNAUTHENTICATED,
 * PERMISSION_DENIED -> AUTH; NOT_FOUND; ALREADY_EXISTS -> CONFLICT; the
 * rest -> INVALID. */
int pp_grpc_code_to_err(int code);

/* Append the 5-byte prefix (uncompressed, big-endian length) and msg. */
int pp_grpc_frame(struct pp_buf *out, const void *msg, size_t len);
/* Split the first frame off p; PP_EINVALID when truncated or compressed.
 * *used is the frame's total size, so streams can be walked. */
int pp_grpc_unframe(const void *p, size_t len, const uint8_t **msg, size_t *msg_len, size_t *used,
		    struct pp_error *err);

/* Fill req (initialised here) for a unary call to base_url + "/" + path,
 * path being "package.Service/Method", with the grpc headers, a
 * grpc-timeout matching timeout_ms and curl's own timeout a little longer so
 * the server's DEADLINE_EXCEEDED arrives first. */
int pp_grpc_request(struct pp_http_req *req, const char *base_url, const char *path,
		    const struct pp_buf *msg, long timeout_ms, struct pp_error *err);

/* A service's reading of one google.rpc.Status detail (an Any: its type
 * URL and value, not NUL-terminated): the back-off it asks for in ms, or 0
 * when the detail says nothing of the kind. */
typedef long (*pp_grpc_retry_hint)(const char *type_url, size_t type_len, const uint8_t *value,
				   size_t value_len);

/* Check a finished exchange: transport failure or non-200 HTTP status ->
 * mapped error; grpc-status != 0 -> pp_grpc_code_to_err with "what:
 * grpc-status N (NAME): <grpc-message>", and retry_after_ms from the first
 * detail in grpc-status-details-bin that hint (may be NULL) reads as a
 * back-off, else from Retry-After. On success *msg and *msg_len point at
 * the first response message inside resp->body. *grpc_code gets the status
 * (-1 when none arrived); may be NULL. */
int pp_grpc_result(const struct pp_http_resp *resp, const char *what, pp_grpc_retry_hint hint,
		   const uint8_t **msg, size_t *msg_len, int *grpc_code, struct pp_error *err);

#endif
