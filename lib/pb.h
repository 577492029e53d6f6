/* Protocol Buffers wire format, by hand: the Modal calls need about a dozen
 * small messages, so a varint/length-delimited encoder and a field iterator
 * are simpler than a generated-code dependency (see docs/modal.md). */
#ifndef PP_PB_H
#define PP_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

enum pp_pb_wire { PP_PB_VARINT = 0, PP_PB_I64 = 1, PP_PB_LEN = 2, PP_PB_I32 = 5 };

/* Encoders append one field to out; strings and nested messages are
 * length-delimited. Return 0 or PP_ENOMEM (out's cap). */
int pp_pb_varint(struct pp_buf *out, uint32_t field, uint64_t v);
int pp_pb_bytes(struct pp_buf *out, uint32_t field, const void *p, size_t n);
int pp_pb_string(struct pp_buf *out, uint32_t field, const char *s);
int pp_pb_message(struct pp_buf *out, uint32_t field, const struct pp_buf *msg);
int pp_pb_float(struct pp_buf *out, uint32_t field, float v);
int pp_pb_double(struct pp_buf *out, uint32_t field, double v);
/* A map<string,string> entry: message {1: key, 2: value}. */
int pp_pb_map_entry(struct pp_buf *out, uint32_t field, const char *key, const char *value);

struct pp_pb_reader {
	const uint8_t *p;
	size_t len;
	size_t pos;
};

struct pp_pb_field {
	uint32_t num;
	enum pp_pb_wire wire;
	uint64_t u64;	     /* VARINT, I64, I32 (raw bits) */
	const uint8_t *data; /* LEN: points into the reader's bytes */
	size_t len;
};

void pp_pb_reader_init(struct pp_pb_reader *r, const void *p, size_t len);
/* 1: *f holds the next field; 0: end of message; PP_EINVALID: malformed
 * (message says at which byte offset). Unknown wire types are errors. */
int pp_pb_next(struct pp_pb_reader *r, struct pp_pb_field *f, struct pp_error *err);
float pp_pb_field_float(const struct pp_pb_field *f);
/* Copy a LEN field as a NUL-terminated string; PP_EINVALID if it does not
 * fit or holds a NUL byte. */
int pp_pb_field_string(const struct pp_pb_field *f, char *out, size_t size, struct pp_error *err);

#endif
