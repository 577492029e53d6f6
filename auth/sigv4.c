/* AWS Signature Version 4 (header signing), following botocore's SigV4Auth
 * and the AWS SigV4 test suite: canonical request, string to sign, derived
 * key and Authorization header. The mock verifies with the same code. */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/auth.h"
#include "auth/aws.h"

/* Canonical requests carry at most a URL, headers and a hash: 1 MiB is far
 * above anything AWS itself accepts (8 KiB URLs, 16 KiB headers). */
#define CANON_MAX	       ((size_t)1 << 20)
#define SIGV4_MAX_HEADERS      128
#define SIGV4_MAX_QUERY_PARAMS 1024

static const char hex_upper[] = "0123456789ABCDEF";
static const char hex_lower[] = "0123456789abcdef";

static bool is_unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* Runs of characters that stay as they are go in one append each: a byte
 * at a time cost a call per byte of every signed path and header. */
static int uri_encode(struct pp_buf *out, const char *s, size_t n, bool keep_slash)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && (is_unreserved((unsigned char)s[j]) || (keep_slash && s[j] == '/')))
			j++;
		if (j > i && pp_buf_append(out, s + i, j - i))
			return PP_ENOMEM;
		if (j == n)
			break;
		unsigned char c = (unsigned char)s[j];
		char esc[3] = {'%', hex_upper[c >> 4], hex_upper[c & 15]};
		if (pp_buf_append(out, esc, 3))
			return PP_ENOMEM;
		i = j + 1;
	}
	return 0;
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex_lower[in[i] >> 4];
		out[2 * i + 1] = hex_lower[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* SHA-256 fetched once: OpenSSL 3 otherwise looks the algorithm up in its
 * provider tables on every digest, and the one-shot HMAC() looks up both
 * the MAC and the digest, which cost more than hashing a request. */
static EVP_MD *fetched_sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
	fetched_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256_md(void)
{
	pthread_once(&sha256_once, fetch_sha256);
	return fetched_sha256 ? fetched_sha256 : EVP_sha256();
}

/* ctx is reused for every hash of a signing: a context made and freed
 * per digest cost more than hashing a short canonical request. */
static int sha256_hex(EVP_MD_CTX *ctx, const void *data, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_DigestInit_ex(ctx, sha256_md(), NULL) ||
	    !EVP_DigestUpdate(ctx, data ? data : "", n) || !EVP_DigestFinal_ex(ctx, md, &mdlen) ||
	    mdlen != 32)
		return PP_ENOMEM;
	hex_encode(md, 32, out);
	return 0;
}

/* HMAC-SHA256 (RFC 2104) over the fetched digest, in ctx. */
static int hmac_sha256(EVP_MD_CTX *ctx, const void *key, size_t keylen, const char *msg,
		       size_t msglen, unsigned char out[32])
{
	enum { BLOCK = 64 };
	unsigned char k0[BLOCK] = {0}, pad[BLOCK], inner[32];
	unsigned int len = 0;
	int ok = 1;

	if (keylen > BLOCK)
		ok = EVP_Digest(key, keylen, k0, &len, sha256_md(), NULL);
	else if (keylen)
		memcpy(k0, key, keylen);
	for (size_t i = 0; i < BLOCK; i++)
		pad[i] = k0[i] ^ 0x36;
	ok = ok && EVP_DigestInit_ex(ctx, sha256_md(), NULL) && EVP_DigestUpdate(ctx, pad, BLOCK) &&
	     EVP_DigestUpdate(ctx, msg, msglen) && EVP_DigestFinal_ex(ctx, inner, &len) &&
	     len == 32;
	for (size_t i = 0; i < BLOCK; i++)
		pad[i] = k0[i] ^ 0x5c;
	ok = ok && EVP_DigestInit_ex(ctx, sha256_md(), NULL) && EVP_DigestUpdate(ctx, pad, BLOCK) &&
	     EVP_DigestUpdate(ctx, inner, 32) && EVP_DigestFinal_ex(ctx, out, &len) && len == 32;
	OPENSSL_cleanse(k0, sizeof(k0));
	OPENSSL_cleanse(pad, sizeof(pad));
	OPENSSL_cleanse(inner, sizeof(inner));
	return ok ? 0 : PP_ENOMEM;
}

int pp_sigv4_signing_key(const char *secret, const char *date, const char *region,
			 const char *service, unsigned char key[32])
{
	struct pp_buf k0;
	unsigned char k_date[32], k_region[32], k_service[32];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = ctx ? 0 : PP_ENOMEM;

	pp_buf_init(&k0, 4096);
	if (!rc)
		rc = pp_buf_puts(&k0, "AWS4");
	if (!rc)
		rc = pp_buf_puts(&k0, secret);
	if (!rc)
		rc = hmac_sha256(ctx, k0.data, k0.len, date, strlen(date), k_date);
	if (!rc)
		rc = hmac_sha256(ctx, k_date, 32, region, strlen(region), k_region);
	if (!rc)
		rc = hmac_sha256(ctx, k_region, 32, service, strlen(service), k_service);
	if (!rc)
		rc = hmac_sha256(ctx, k_service, 32, "aws4_request", 12, key);
	EVP_MD_CTX_free(ctx);
	if (k0.data)
		OPENSSL_cleanse(k0.data, k0.len);
	pp_buf_free(&k0);
	OPENSSL_cleanse(k_date, sizeof(k_date));
	OPENSSL_cleanse(k_region, sizeof(k_region));
	OPENSSL_cleanse(k_service, sizeof(k_service));
	return rc;
}

/* RFC 3986 5.2.4 dot-segment removal plus collapsing of empty segments, as
 * botocore's remove_dot_segments does: segments are kept as [start, len)
 * pairs into path. */
static int append_normalized_path(struct pp_buf *out, const char *path)
{
	size_t n = strlen(path), nseg = 0, cap = 1;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		cap += path[i] == '/';
	size_t *seg_start = calloc(cap, sizeof(*seg_start));
	size_t *seg_len = calloc(cap, sizeof(*seg_len));
	if (!seg_start || !seg_len) {
		free(seg_start);
		free(seg_len);
		return PP_ENOMEM;
	}
	for (size_t i = 0; i <= n;) {
		size_t j = i;
		while (j < n && path[j] != '/')
			j++;
		size_t len = j - i;
		if (len == 2 && path[i] == '.' && path[i + 1] == '.') {
			if (nseg)
				nseg--;
		} else if (len && !(len == 1 && path[i] == '.')) {
			seg_start[nseg] = i;
			seg_len[nseg++] = len;
		}
		i = j + 1;
	}
	if (path[0] == '/')
		rc = pp_buf_putc(out, '/');
	for (size_t s = 0; !rc && s < nseg; s++) {
		if (s)
			rc = pp_buf_putc(out, '/');
		if (!rc)
			rc = uri_encode(out, path + seg_start[s], seg_len[s], false);
	}
	if (!rc && nseg && path[n - 1] == '/')
		rc = pp_buf_putc(out, '/');
	free(seg_start);
	free(seg_len);
	return rc;
}

static int append_canonical_path(struct pp_buf *out, const char *path, bool normalize)
{
	if (!path || !*path)
		return pp_buf_putc(out, '/');
	if (normalize) {
		size_t before = out->len;
		int rc = append_normalized_path(out, path);
		/* A relative path that normalizes to nothing still signs as "/". */
		if (!rc && out->len == before)
			rc = pp_buf_putc(out, '/');
		return rc;
	}
	return uri_encode(out, path, strlen(path), true);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode %XX escapes (a stray '%' stays literal) and encode again with the
 * unreserved set, so "%e1%88%b4", "ሴ" and "%E1%88%B4" all sign alike. */
static char *recode_query_part(const char *s, size_t n)
{
	char *raw = malloc(n + 1);
	struct pp_buf out;
	size_t m = 0;

	if (!raw)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int hi, lo;
		if (s[i] == '%' && i + 2 < n && (hi = hex_value(s[i + 1])) >= 0 &&
		    (lo = hex_value(s[i + 2])) >= 0) {
			raw[m++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			raw[m++] = s[i];
		}
	}
	pp_buf_init(&out, CANON_MAX);
	if (uri_encode(&out, raw, m, false)) {
		pp_buf_free(&out);
		free(raw);
		return NULL;
	}
	free(raw);
	return pp_buf_steal(&out);
}

struct query_param {
	char *key;
	char *value;
};

static int cmp_query_param(const void *a, const void *b)
{
	const struct query_param *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c ? c : strcmp(x->value, y->value);
}

static int append_canonical_query(struct pp_buf *out, const char *query, struct pp_error *err)
{
	size_t cap = 1, n = 0;
	int rc = 0;

	if (!query || !*query)
		return 0;
	for (const char *p = query; *p; p++)
		cap += *p == '&';
	if (cap > SIGV4_MAX_QUERY_PARAMS)
		return pp_fail(err, PP_EINVALID, "sigv4: query has more than %d parameters",
			       SIGV4_MAX_QUERY_PARAMS);
	struct query_param *params = calloc(cap, sizeof(*params));
	if (!params)
		return pp_fail(err, PP_ENOMEM, "sigv4: out of memory");
	for (const char *p = query; *p && !rc;) {
		const char *end = strchr(p, '&');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;

		if (len) {
			params[n].key = recode_query_part(p, klen);
			params[n].value = eq ? recode_query_part(eq + 1, len - klen - 1)
					     : recode_query_part("", 0);
			if (!params[n].key || !params[n].value)
				rc = pp_fail(err, PP_ENOMEM, "sigv4: out of memory");
			n++;
		}
		p += len + (end ? 1 : 0);
	}
	if (!rc)
		qsort(params, n, sizeof(*params), cmp_query_param);
	for (size_t i = 0; !rc && i < n; i++) {
		if ((i && pp_buf_putc(out, '&')) || pp_buf_puts(out, params[i].key) ||
		    pp_buf_putc(out, '=') || pp_buf_puts(out, params[i].value))
			rc = pp_fail(err, PP_ENOMEM, "sigv4: canonical query too long");
	}
	for (size_t i = 0; i < n; i++) {
		free(params[i].key);
		free(params[i].value);
	}
	free(params);
	return rc;
}

/* RFC 9110 token characters: anything else cannot be a header name and
 * would corrupt the ';'-separated signed-headers list. */
static bool is_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	return true;
}

struct canon_header {
	char *name; /* lowercase */
	const char *value;
	size_t order; /* input position: duplicates join in the order sent */
};

static int cmp_header(const void *a, const void *b)
{
	const struct canon_header *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static bool is_header_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Trim, and collapse each whitespace run (folded lines included) to one
 * space; the text between runs goes in one append. */
static int append_header_value(struct pp_buf *out, const char *v)
{
	bool started = false;

	for (;;) {
		size_t space = 0, word = 0;
		while (is_header_space(v[space]))
			space++;
		v += space;
		if (!*v)
			return 0;
		while (v[word] && !is_header_space(v[word]))
			word++;
		if ((started && pp_buf_putc(out, ' ')) || pp_buf_append(out, v, word))
			return PP_ENOMEM;
		v += word;
		started = true;
	}
}

/* Appends the canonical header block (ending with the blank line) to cr
 * and the signed-headers list to signed_headers. */
static int append_canonical_headers(const struct pp_sigv4_input *in, struct pp_buf *cr,
				    struct pp_buf *signed_headers, struct pp_error *err)
{
	struct canon_header *h;
	int rc = 0;

	if (in->nheaders > SIGV4_MAX_HEADERS)
		return pp_fail(err, PP_EINVALID, "sigv4: more than %d headers to sign",
			       SIGV4_MAX_HEADERS);
	if (!in->nheaders)
		return pp_fail(err, PP_EINVALID, "sigv4: no headers to sign (host is required)");
	h = calloc(in->nheaders, sizeof(*h));
	if (!h)
		return pp_fail(err, PP_ENOMEM, "sigv4: out of memory");
	for (size_t i = 0; i < in->nheaders && !rc; i++) {
		const char *name = in->header_names[i];
		if (!name || !is_token(name) || !in->header_values[i]) {
			rc = pp_fail(err, PP_EINVALID,
				     "sigv4: header %zu: invalid name or no value", i);
			break;
		}
		if (!(h[i].name = strdup(name))) {
			rc = pp_fail(err, PP_ENOMEM, "sigv4: out of memory");
			break;
		}
		for (char *c = h[i].name; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		h[i].value = in->header_values[i];
		h[i].order = i;
	}
	if (!rc)
		qsort(h, in->nheaders, sizeof(*h), cmp_header);
	for (size_t i = 0; !rc && i < in->nheaders; i++) {
		bool same_as_prev = i && !strcmp(h[i].name, h[i - 1].name);
		bool last_of_name = i + 1 == in->nheaders || strcmp(h[i].name, h[i + 1].name);

		if (same_as_prev) {
			rc = pp_buf_putc(cr, ',');
		} else {
			rc = pp_buf_puts(cr, h[i].name) || pp_buf_putc(cr, ':');
			if (!rc && signed_headers->len)
				rc = pp_buf_putc(signed_headers, ';');
			if (!rc)
				rc = pp_buf_puts(signed_headers, h[i].name);
		}
		if (!rc)
			rc = append_header_value(cr, h[i].value);
		if (!rc && last_of_name)
			rc = pp_buf_putc(cr, '\n');
		if (rc)
			rc = pp_fail(err, PP_ENOMEM, "sigv4: canonical headers too long");
	}
	for (size_t i = 0; i < in->nheaders; i++)
		free(h[i].name);
	free(h);
	return rc;
}

void pp_sigv4_output_init(struct pp_sigv4_output *o)
{
	memset(o, 0, sizeof(*o));
	pp_buf_init(&o->canonical_request, CANON_MAX);
	pp_buf_init(&o->string_to_sign, 4096);
	pp_buf_init(&o->authorization, 64 << 10);
	pp_buf_init(&o->signed_headers, 64 << 10);
}

void pp_sigv4_output_free(struct pp_sigv4_output *o)
{
	pp_buf_free(&o->canonical_request);
	pp_buf_free(&o->string_to_sign);
	pp_buf_free(&o->authorization);
	pp_buf_free(&o->signed_headers);
}

static int check_input(const struct pp_sigv4_input *in, struct pp_error *err)
{
	const struct {
		const char *what, *value;
	} required[] = {
		{"method", in->method},
		{"access key id", in->access_key_id},
		{"region", in->region},
		{"service", in->service},
	};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!required[i].value || !*required[i].value)
			return pp_fail(err, PP_EINVALID, "sigv4: %s missing", required[i].what);
	if (!is_token(in->method))
		return pp_fail(err, PP_EINVALID, "sigv4: method \"%.16s\" is not an HTTP token",
			       in->method);
	if (in->payload_len && !in->payload)
		return pp_fail(err, PP_EINVALID, "sigv4: payload length without payload");
	return 0;
}

/* Appends the n strings, joined on the stack and appended a few hundred
 * bytes at a time: through printf, or a call into the buffer (and its
 * growth) per part, the fixed layouts of the string to sign and the
 * Authorization header cost several times as much. */
static int append_all(struct pp_buf *b, const char *const *parts, size_t n)
{
	char joined[512];
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		size_t k = strlen(parts[i]);
		if (len + k > sizeof(joined)) {
			if (pp_buf_append(b, joined, len))
				return PP_ENOMEM;
			len = 0;
		}
		if (k > sizeof(joined)) {
			if (pp_buf_append(b, parts[i], k))
				return PP_ENOMEM;
			continue;
		}
		memcpy(joined + len, parts[i], k);
		len += k;
	}
	return pp_buf_append(b, joined, len);
}

static int sign(const struct pp_sigv4_input *in, const unsigned char key[32],
		struct pp_sigv4_output *out, EVP_MD_CTX *ctx, struct pp_error *err)
{
	char payload_hash[65], cr_hash[65], date[9];
	unsigned char sig[32];
	struct tm tm;
	int rc;

	pp_buf_reset(&out->canonical_request);
	pp_buf_reset(&out->string_to_sign);
	pp_buf_reset(&out->authorization);
	pp_buf_reset(&out->signed_headers);
	if (!gmtime_r(&in->when, &tm) ||
	    !strftime(out->amz_date, sizeof(out->amz_date), "%Y%m%dT%H%M%SZ", &tm))
		return pp_fail(err, PP_EINVALID, "sigv4: signing time out of range");
	memcpy(date, out->amz_date, 8);
	date[8] = '\0';

	struct pp_buf *cr = &out->canonical_request;
	if (pp_buf_puts(cr, in->method) || pp_buf_putc(cr, '\n') ||
	    append_canonical_path(cr, in->path, in->normalize_path) || pp_buf_putc(cr, '\n'))
		return pp_fail(err, PP_ENOMEM, "sigv4: canonical path too long");
	if ((rc = append_canonical_query(cr, in->query, err)))
		return rc;
	if (pp_buf_putc(cr, '\n'))
		return pp_fail(err, PP_ENOMEM, "sigv4: canonical request too long");
	if ((rc = append_canonical_headers(in, cr, &out->signed_headers, err)))
		return rc;
	if (sha256_hex(ctx, in->payload, in->payload_len, payload_hash))
		return pp_fail(err, PP_ENOMEM, "sigv4: SHA-256 failed");
	if (pp_buf_putc(cr, '\n') || pp_buf_puts(cr, out->signed_headers.data) ||
	    pp_buf_putc(cr, '\n') || pp_buf_puts(cr, payload_hash))
		return pp_fail(err, PP_ENOMEM, "sigv4: canonical request too long");

	if (sha256_hex(ctx, cr->data, cr->len, cr_hash))
		return pp_fail(err, PP_ENOMEM, "sigv4: SHA-256 failed");
	const char *to_sign[] = {
		"AWS4-HMAC-SHA256\n", out->amz_date,	 "\n",	 date, "/", in->region, "/",
		in->service,	      "/aws4_request\n", cr_hash};
	if (append_all(&out->string_to_sign, to_sign, sizeof(to_sign) / sizeof(*to_sign)))
		return pp_fail(err, PP_ENOMEM, "sigv4: string to sign too long");
	if (hmac_sha256(ctx, key, 32, out->string_to_sign.data, out->string_to_sign.len, sig))
		return pp_fail(err, PP_ENOMEM, "sigv4: HMAC failed");
	hex_encode(sig, 32, out->signature);
	const char *auth[] = {"AWS4-HMAC-SHA256 Credential=",
			      in->access_key_id,
			      "/",
			      date,
			      "/",
			      in->region,
			      "/",
			      in->service,
			      "/aws4_request, SignedHeaders=",
			      out->signed_headers.data,
			      ", Signature=",
			      out->signature};
	if (append_all(&out->authorization, auth, sizeof(auth) / sizeof(*auth)))
		return pp_fail(err, PP_ENOMEM, "sigv4: Authorization header too long");
	return 0;
}

int pp_sigv4_sign_with_key(const struct pp_sigv4_input *in, const unsigned char key[32],
			   struct pp_sigv4_output *out, struct pp_error *err)
{
	int rc = check_input(in, err);
	if (rc)
		return rc;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return pp_fail(err, PP_ENOMEM, "sigv4: out of memory");
	rc = sign(in, key, out, ctx, err);
	EVP_MD_CTX_free(ctx);
	return rc;
}

int pp_sigv4_sign(const struct pp_sigv4_input *in, struct pp_sigv4_output *out,
		  struct pp_error *err)
{
	unsigned char key[32];
	char date[9];
	struct tm tm;
	int rc;

	if ((rc = check_input(in, err)))
		return rc;
	if (!in->secret_access_key || !*in->secret_access_key)
		return pp_fail(err, PP_EINVALID, "sigv4: secret access key missing");
	if (!gmtime_r(&in->when, &tm) || !strftime(date, sizeof(date), "%Y%m%d", &tm))
		return pp_fail(err, PP_EINVALID, "sigv4: signing time out of range");
	if (pp_sigv4_signing_key(in->secret_access_key, date, in->region, in->service, key))
		return pp_fail(err, PP_ENOMEM, "sigv4: key derivation failed");
	rc = pp_sigv4_sign_with_key(in, key, out, err);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}
