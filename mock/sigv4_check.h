/* The mock's own check of AWS Signature Version 4 (header form), written from
 * AWS's description of the algorithm and independent of pushpool's signer in
 * auth/: a test that signs with one and verifies with the other catches a
 * mistake in either. Verified against AWS's suite in tests/data/sigv4
 * (tests/unit/mock/sigv4_check.c). */
#ifndef PP_MOCK_SIGV4_CHECK_H
#define PP_MOCK_SIGV4_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"
#include "lib/err.h"

/* The parts of an "Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/
 * REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=HEX" header. */
struct pp_mock_sigv4_auth {
	char akid[128];
	char date[9]; /* YYYYMMDD of the credential scope */
	char region[64];
	char service[64];
	char signed_headers[1024]; /* as sent: lowercase names joined by ';' */
	char signature[65];	   /* 64 lowercase hex digits */
};

/* 0, or PP_EINVALID with what is missing or malformed in err. */
int pp_mock_sigv4_parse(const char *authorization, struct pp_mock_sigv4_auth *a,
			struct pp_error *err);

/* A request as it reached the server. */
struct pp_mock_sigv4_request {
	const char *method;
	const char *path;	  /* as sent, still percent-encoded */
	const char *query;	  /* as sent, without '?'; NULL or "" when none */
	const char *const *names; /* every header, in arrival order */
	const char *const *values;
	size_t nheaders;
	const char *body;
	size_t body_len;
};

/* Rebuild the canonical request and string to sign the client must have
 * signed, derive the key from secret and compare signatures in constant
 * time. normalize_path: every service but S3 removes dot segments and empty
 * segments from the path first. Returns 0 on a match; PP_EAUTH when the
 * signature differs; PP_EINVALID when the request cannot have been signed
 * as it claims (a signed header absent, no X-Amz-Date, a scope date other
 * than X-Amz-Date's day, an X-Amz-Content-Sha256 that is not the body's
 * hash, too many query parameters); PP_ENOMEM. canonical and
 * string_to_sign, when not NULL, receive those two texts. */
int pp_mock_sigv4_check(const struct pp_mock_sigv4_request *r, const struct pp_mock_sigv4_auth *a,
			const char *secret, bool normalize_path, struct pp_buf *canonical,
			struct pp_buf *string_to_sign, struct pp_error *err);

#endif
