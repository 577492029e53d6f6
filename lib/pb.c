#include "lib/pb.h"

#include <string.h>

static int put_raw_varint(struct pp_buf *out, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;
	do {
		tmp[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	return pp_buf_append(out, tmp, n);
}

static int put_tag(struct pp_buf *out, uint32_t field, enum pp_pb_wire wire)
{
	return put_raw_varint(out, ((uint64_t)field << 3) | wire);
}

int pp_pb_varint(struct pp_buf *out, uint32_t field, uint64_t v)
{
	int rc = put_tag(out, field, PP_PB_VARINT);
	return rc ? rc : put_raw_varint(out, v);
}

int pp_pb_bytes(struct pp_buf *out, uint32_t field, const void *p, size_t n)
{
	int rc = put_tag(out, field, PP_PB_LEN);
	if (!rc)
		rc = put_raw_varint(out, n);
	if (!rc && n)
		rc = pp_buf_append(out, p, n);
	return rc;
}

int pp_pb_string(struct pp_buf *out, uint32_t field, const char *s)
{
	return pp_pb_bytes(out, field, s, strlen(s));
}

int pp_pb_message(struct pp_buf *out, uint32_t field, const struct pp_buf *msg)
{
	return pp_pb_bytes(out, field, msg->data, msg->len);
}

static int put_fixed(struct pp_buf *out, uint64_t bits, size_t n)
{
	uint8_t tmp[8];
	for (size_t i = 0; i < n; i++)
		tmp[i] = (uint8_t)(bits >> (8 * i));
	return pp_buf_append(out, tmp, n);
}

int pp_pb_float(struct pp_buf *out, uint32_t field, float v)
{
	uint32_t bits;
	memcpy(&bits, &v, sizeof(bits));
	int rc = put_tag(out, field, PP_PB_I32);
	return rc ? rc : put_fixed(out, bits, 4);
}

int pp_pb_double(struct pp_buf *out, uint32_t field, double v)
{
	uint64_t bits;
	memcpy(&bits, &v, sizeof(bits));
	int rc = put_tag(out, field, PP_PB_I64);
	return rc ? rc : put_fixed(out, bits, 8);
}

int pp_pb_map_entry(struct pp_buf *out, uint32_t field, const char *key, const char *value)
{
	struct pp_buf entry;
	pp_buf_init(&entry, out->max);
	int rc = pp_pb_string(&entry, 1, key);
	if (!rc)
		rc = pp_pb_string(&entry, 2, value);
	if (!rc)
		rc = pp_pb_message(out, field, &entry);
	pp_buf_free(&entry);
	return rc;
}

void pp_pb_reader_init(struct pp_pb_reader *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->pos = 0;
}

static int get_raw_varint(struct pp_pb_reader *r, uint64_t *out, struct pp_error *err)
{
	uint64_t v = 0;
	size_t start = r->pos;
	for (unsigned shift = 0; shift < 70; shift += 7) {
		if (r->pos >= r->len)
			return pp_fail(err, PP_EINVALID,
				       "protobuf: varint at byte %zu runs past the end", start);
		uint8_t b = r->p[r->pos++];
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return pp_fail(err, PP_EINVALID, "protobuf: varint at byte %zu longer than 10 bytes",
		       start);
}

int pp_pb_next(struct pp_pb_reader *r, struct pp_pb_field *f, struct pp_error *err)
{
	if (r->pos >= r->len)
		return 0;
	size_t start = r->pos;
	uint64_t tag;
	int rc = get_raw_varint(r, &tag, err);
	if (rc)
		return rc;
	memset(f, 0, sizeof(*f));
	f->num = (uint32_t)(tag >> 3);
	f->wire = (enum pp_pb_wire)(tag & 7);
	if (f->num == 0 || tag >> 3 > 0x1fffffff)
		return pp_fail(err, PP_EINVALID, "protobuf: bad field number at byte %zu", start);
	size_t width = 0;
	switch (f->wire) {
	case PP_PB_VARINT:
		/* err may be NULL: return the code, not err->code. */
		rc = get_raw_varint(r, &f->u64, err);
		return rc ? rc : 1;
	case PP_PB_LEN: {
		uint64_t n;
		rc = get_raw_varint(r, &n, err);
		if (rc)
			return rc;
		if (n > r->len - r->pos)
			return pp_fail(err, PP_EINVALID,
				       "protobuf: field %u at byte %zu claims %llu bytes, %zu left",
				       f->num, start, (unsigned long long)n, r->len - r->pos);
		f->data = r->p + r->pos;
		f->len = (size_t)n;
		r->pos += (size_t)n;
		return 1;
	}
	case PP_PB_I32: width = 4; break;
	case PP_PB_I64: width = 8; break;
	default:
		return pp_fail(err, PP_EINVALID, "protobuf: unsupported wire type %d at byte %zu",
			       (int)f->wire, start);
	}
	if (width > r->len - r->pos)
		return pp_fail(err, PP_EINVALID, "protobuf: fixed field %u at byte %zu truncated",
			       f->num, start);
	for (size_t i = 0; i < width; i++)
		f->u64 |= (uint64_t)r->p[r->pos + i] << (8 * i);
	r->pos += width;
	return 1;
}

float pp_pb_field_float(const struct pp_pb_field *f)
{
	uint32_t bits = (uint32_t)f->u64;
	float v;
	memcpy(&v, &bits, sizeof(v));
	return v;
}

int pp_pb_field_string(const struct pp_pb_field *f, char *out, size_t size, struct pp_error *err)
{
	if (f->wire != PP_PB_LEN)
		return pp_fail(err, PP_EINVALID, "protobuf: field %u is not a string", f->num);
	if (f->len >= size)
		return pp_fail(err, PP_EINVALID, "protobuf: field %u: %zu-byte string exceeds %zu",
			       f->num, f->len, size - 1);
	if (f->len && memchr(f->data, 0, f->len))
		return pp_fail(err, PP_EINVALID, "protobuf: field %u: string holds a NUL byte",
			       f->num);
	if (f->len)
		memcpy(out, f->data, f->len);
	out[f->len] = '\0';
	return 0;
}
