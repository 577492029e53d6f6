/* The shape of a PEM RSA private key (lib/pem.h). Where OpenSSL's reader
 * is lenient and real keys never need it to be, this refuses (BER's
 * indefinite lengths, PEM headers, algorithm parameters other than NULL);
 * where it is lenient and well-formed keys can differ (long-form lengths
 * with leading zero bytes, bytes after the key, numbers in any form), this
 * is lenient as well, so that no key OpenSSL takes is refused at startup. */
#include "lib/pem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"
#include "lib/err.h"

#define TAG_INTEGER	 0x02
#define TAG_OCTET_STRING 0x04
#define TAG_NULL	 0x05
#define TAG_OID		 0x06
#define TAG_SEQUENCE	 0x30
#define TAG_ATTRIBUTES	 0xa0 /* [0] IMPLICIT, constructed */
/* Most key files hold one key; a 16,384-bit RSA key is about 13 KiB. */
#define MAX_PEM_BODY ((size_t)64 << 10)

/* 1.2.840.113549.1.1.1, as DER contents */
static const unsigned char OID_RSA_ENCRYPTION[] = {0x2a, 0x86, 0x48, 0x86, 0xf7,
						   0x0d, 0x01, 0x01, 0x01};

struct der {
	const unsigned char *p, *end;
};

/* The next element, which must carry tag: its contents into *in. */
static bool der_next(struct der *d, unsigned char tag, struct der *in)
{
	if (d->end - d->p < 2 || d->p[0] != tag)
		return false;
	const unsigned char *p = d->p + 1;
	size_t len = *p++;
	if (len & 0x80) {
		size_t n = len & 0x7f;
		if (n == 0) /* indefinite: BER, not DER */
			return false;
		if ((size_t)(d->end - p) < n)
			return false;
		len = 0;
		for (; n > 0; n--, p++) {
			if (len >> 24)
				return false;
			len = len << 8 | *p;
		}
	}
	if ((size_t)(d->end - p) < len)
		return false;
	in->p = p;
	in->end = p + len;
	d->p = in->end;
	return true;
}

static bool der_peek(const struct der *d, unsigned char tag)
{
	return d->p < d->end && d->p[0] == tag;
}

/* An INTEGER. OpenSSL reads a key's numbers (BIGNUMs) as they come, but
 * versions only in their shortest form, which is what a non-null version
 * asks for; it gets the value when that is one byte long, else -1. */
static bool der_int(struct der *d, int *version)
{
	struct der v;
	if (!der_next(d, TAG_INTEGER, &v))
		return false;
	size_t n = (size_t)(v.end - v.p);
	if (!version)
		return true;
	*version = n == 1 ? v.p[0] : -1;
	return n > 0 && (n == 1 || !((v.p[0] == 0 && !(v.p[1] & 0x80)) ||
				     (v.p[0] == 0xff && (v.p[1] & 0x80))));
}

/* RSAPrivateKey (RFC 8017 A.1.2); bytes after it are left alone. As in
 * OpenSSL, any version may carry OtherPrimeInfos, and version 1
 * (multi-prime) must: it is refused without the primes to multiply. */
static bool rsa_private_key(struct der d)
{
	struct der seq, others = {NULL, NULL};
	int version;
	if (!der_next(&d, TAG_SEQUENCE, &seq) || !der_int(&seq, &version))
		return false;
	/* n, e, d, p, q, d mod (p-1), d mod (q-1), q^-1 mod p */
	for (int i = 0; i < 8; i++)
		if (!der_int(&seq, NULL))
			return false;
	if (der_peek(&seq, TAG_SEQUENCE) && !der_next(&seq, TAG_SEQUENCE, &others))
		return false;
	return seq.p == seq.end && (version != 1 || others.p != others.end);
}

/* PrivateKeyInfo (RFC 5208) of rsaEncryption. */
static bool pkcs8_rsa(struct der d)
{
	struct der seq, alg, oid, key, params, attributes;
	int version;
	if (!der_next(&d, TAG_SEQUENCE, &seq) || !der_int(&seq, &version) ||
	    !der_next(&seq, TAG_SEQUENCE, &alg) || !der_next(&alg, TAG_OID, &oid))
		return false;
	if ((size_t)(oid.end - oid.p) != sizeof(OID_RSA_ENCRYPTION) ||
	    memcmp(oid.p, OID_RSA_ENCRYPTION, sizeof(OID_RSA_ENCRYPTION)))
		return false;
	/* The parameters: NULL (RFC 8017 A.1), or none. OpenSSL ignores them
	 * and takes some other shapes too, which no key writer makes. */
	if (alg.p != alg.end && (!der_next(&alg, TAG_NULL, &params) || params.p != params.end))
		return false;
	if (alg.p != alg.end || !der_next(&seq, TAG_OCTET_STRING, &key) || !rsa_private_key(key))
		return false;
	if (der_peek(&seq, TAG_ATTRIBUTES) && !der_next(&seq, TAG_ATTRIBUTES, &attributes))
		return false;
	return seq.p == seq.end;
}

/* Base64 between p and end, white space ignored, '=' only at the end;
 * returns the number of bytes written to out (of room), or -1. */
static long b64_decode(const char *p, const char *end, unsigned char *out, size_t room)
{
	unsigned long acc = 0;
	int bits = 0, pad = 0;
	size_t n = 0, chars = 0;
	for (; p < end; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		chars++;
		if (c == '=') {
			if (++pad > 2)
				return -1;
			continue;
		}
		int v = pp_base64_digit(c, false);
		if (v < 0 || pad)
			return -1;
		acc = (acc << 6 | (unsigned long)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == room)
				return -1;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	return chars % 4 == 0 ? (long)n : -1;
}

static bool is_key_label(const char *label, size_t n)
{
	static const char suffix[] = "PRIVATE KEY";
	return n >= sizeof(suffix) - 1 &&
	       !memcmp(label + n - (sizeof(suffix) - 1), suffix, sizeof(suffix) - 1);
}

int pp_pem_rsa_private_key_check(const char *pem)
{
	static const char begin[] = "-----BEGIN ", dashes[] = "-----";
	const char *label = NULL;
	size_t label_len = 0;
	/* The first block whose label names a private key, as OpenSSL's
	 * reader passes over others (a certificate kept with the key). */
	for (const char *p = pem; (p = strstr(p, begin)); p++) {
		if (p != pem && p[-1] != '\n')
			continue;
		const char *l = p + sizeof(begin) - 1, *e = strstr(l, dashes);
		if (!e)
			return PP_EINVALID;
		if (is_key_label(l, (size_t)(e - l))) {
			label = l;
			label_len = (size_t)(e - l);
			break;
		}
	}
	if (!label)
		return PP_EINVALID;
	bool pkcs1 = label_len == strlen("RSA PRIVATE KEY") && !memcmp(label, "RSA ", 4);
	if (!pkcs1 && label_len != strlen("PRIVATE KEY"))
		return PP_EINVALID; /* ENCRYPTED, EC, DSA ... PRIVATE KEY */
	const char *body = label + label_len + sizeof(dashes) - 1;
	if (*body == '\r')
		body++;
	if (*body != '\n')
		return PP_EINVALID;
	body++;
	const char *end = strstr(body, "-----END ");
	if (!end || (size_t)(end - body) > MAX_PEM_BODY || memchr(body, ':', (size_t)(end - body)))
		return PP_EINVALID; /* no end, or headers (Proc-Type: an encrypted key) */
	const char *end_label = end + strlen("-----END ");
	if (strncmp(end_label, label, label_len) || strncmp(end_label + label_len, dashes, 5))
		return PP_EINVALID;
	size_t room = (size_t)(end - body) / 4 * 3 + 3;
	unsigned char *der = malloc(room);
	if (!der)
		return PP_ENOMEM;
	long n = b64_decode(body, end, der, room);
	struct der d = {der, der + (n > 0 ? n : 0)};
	bool ok = n > 0 && (pkcs1 ? rsa_private_key(d) : pkcs8_rsa(d));
	/* The key's own bytes: not left in freed memory. */
	explicit_bzero(der, room);
	free(der);
	return ok ? 0 : PP_EINVALID;
}
