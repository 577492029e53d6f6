/* SigV4 verification for the mock (see sigv4_check.h). The steps follow
 * AWS's "Create a signed AWS API request": a canonical request of method,
 * path, query, the signed headers and the payload's hash; a string to sign
 * naming the algorithm, time, scope and the canonical request's hash; a key
 * derived from the secret by HMAC over date, region, service and the
 * terminator; the signature is the hex HMAC of the string to sign. */
#include "mock/sigv4_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pthread.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

/* Caps on what one request may make us build: far above what AWS accepts
 * (8 KiB URLs, 16 KiB of headers), low enough that a hostile client cannot
 * make the mock allocate without bound. */
#define CANONICAL_MAX	((size_t)1 << 20)
#define QUERY_PAIRS_MAX 1024

static const char HEX_UP[] = "0123456789ABCDEF";
static const char HEX_LOW[] = "0123456789abcdef";

/* RFC 3986 unreserved characters, the only ones SigV4 leaves unescaped.
 * Spelled out rather than isalnum(), which follows the locale. */
static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static int escape(struct pp_buf *out, const char *s, size_t n)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (unreserved(c)) {
			rc = pp_buf_putc(out, (char)c);
		} else {
			char e[3] = {'%', HEX_UP[c >> 4], HEX_UP[c & 15]};
			rc = pp_buf_append(out, e, sizeof(e));
		}
	}
	return rc;
}

static void to_hex(const unsigned char *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = HEX_LOW[p[i] >> 4];
		out[2 * i + 1] = HEX_LOW[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* OpenSSL 3 looks an algorithm up by name at every one-shot call
 * (EVP_Digest with EVP_sha256(), HMAC()); fetched once here, a request's
 * two digests and five HMACs skip the lookups, which cost more than the
 * digests themselves. Kept for the life of the process. */
static EVP_MD *sha256_md;
static EVP_MAC *hmac_mac;
static pthread_once_t fetched = PTHREAD_ONCE_INIT;

static void fetch_algorithms(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	hmac_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static int sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	pthread_once(&fetched, fetch_algorithms);
	if (!sha256_md || !EVP_Digest(n ? p : "", n, md, &len, sha256_md, NULL) || len != 32)
		return PP_ENOMEM;
	to_hex(md, 32, out);
	return 0;
}

/* An HMAC-SHA256 context keyed with key, ready for its message; NULL: no
 * memory. */
static EVP_MAC_CTX *keyed_hmac(const unsigned char *key, size_t keylen)
{
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC_CTX *ctx;

	pthread_once(&fetched, fetch_algorithms);
	if (!hmac_mac || !(ctx = EVP_MAC_CTX_new(hmac_mac)))
		return NULL;
	if (!EVP_MAC_init(ctx, key, keylen, params)) {
		EVP_MAC_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* The MAC of msg under ctx, which it frees. */
static int hmac_final(EVP_MAC_CTX *ctx, const char *msg, unsigned char out[32])
{
	size_t len = 0;
	int ok = EVP_MAC_update(ctx, (const unsigned char *)msg, strlen(msg)) &&
		 EVP_MAC_final(ctx, out, &len, 32) && len == 32;

	EVP_MAC_CTX_free(ctx);
	return ok ? 0 : PP_ENOMEM;
}

static int hmac(const unsigned char *key, size_t keylen, const char *msg, unsigned char out[32])
{
	EVP_MAC_CTX *ctx = keyed_hmac(key, keylen);

	return ctx ? hmac_final(ctx, msg, out) : PP_ENOMEM;
}

/* ---- the Authorization header ---- */

/* Copy the value of "Name=" from a comma-separated parameter list. */
static bool param(const char *list, const char *name, char *out, size_t size)
{
	size_t nlen = strlen(name);

	for (const char *p = list; *p;) {
		size_t len;

		p += strspn(p, " ,");
		len = strcspn(p, ",");
		if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			const char *v = p + nlen + 1;
			size_t vlen = len - nlen - 1;

			while (vlen && v[vlen - 1] == ' ')
				vlen--;
			if (vlen == 0 || vlen >= size)
				return false;
			memcpy(out, v, vlen);
			out[vlen] = '\0';
			return true;
		}
		p += len;
	}
	return false;
}

int pp_mock_sigv4_parse(const char *authorization, struct pp_mock_sigv4_auth *a,
			struct pp_error *err)
{
	static const char algo[] = "AWS4-HMAC-SHA256 ";
	char cred[sizeof(a->akid) + 160], tail[32];
	int n = 0;

	memset(a, 0, sizeof(*a));
	if (!authorization || strncmp(authorization, algo, sizeof(algo) - 1) != 0)
		return pp_fail(err, PP_EINVALID, "Authorization is not AWS4-HMAC-SHA256");
	authorization += sizeof(algo) - 1;
	if (!param(authorization, "Credential", cred, sizeof(cred)) ||
	    !param(authorization, "SignedHeaders", a->signed_headers, sizeof(a->signed_headers)) ||
	    !param(authorization, "Signature", a->signature, sizeof(a->signature)))
		return pp_fail(err, PP_EINVALID,
			       "Authorization needs Credential, SignedHeaders and Signature");
	/* AKID/YYYYMMDD/region/service/aws4_request, nothing after. */
	if (sscanf(cred, "%127[^/]/%8[0-9]/%63[^/]/%63[^/]/%31s%n", a->akid, a->date, a->region,
		   a->service, tail, &n) != 5 ||
	    cred[n] != '\0' || strcmp(tail, "aws4_request") != 0 || strlen(a->date) != 8)
		return pp_fail(err, PP_EINVALID,
			       "Credential is not AKID/YYYYMMDD/REGION/SERVICE/aws4_request");
	if (strlen(a->signature) != 64 || strspn(a->signature, HEX_LOW) != 64)
		return pp_fail(err, PP_EINVALID, "Signature is not 64 lowercase hex digits");
	return 0;
}

/* ---- the canonical request ---- */

/* The path, each segment escaped (a '%' already on the wire becomes "%25":
 * services other than S3 escape the sent path once more). With normalize,
 * "." and empty segments vanish and ".." drops the segment before it. */
static int canonical_path(struct pp_buf *out, const char *path, bool normalize)
{
	size_t start = out->len, root = out->len;
	const char *p = path;
	int rc = 0;

	if (!*path)
		return pp_buf_putc(out, '/');
	if (!normalize) {
		for (; !rc && *p; p++)
			rc = *p == '/' ? pp_buf_putc(out, '/') : escape(out, p, 1);
		return rc;
	}
	if (*path == '/') {
		rc = pp_buf_putc(out, '/');
		root++;
	}
	/* Each kept segment is written followed by '/'; the last slash is
	 * dropped at the end unless the path itself ended with one. */
	while (!rc && *p) {
		size_t len = strcspn(p, "/");

		if (len == 2 && p[0] == '.' && p[1] == '.') {
			if (out->len > root) {
				out->len--; /* the segment's own '/' */
				while (out->len > root && out->data[out->len - 1] != '/')
					out->len--;
				out->data[out->len] = '\0';
			}
		} else if (len && !(len == 1 && p[0] == '.')) {
			rc = escape(out, p, len);
			if (!rc)
				rc = pp_buf_putc(out, '/');
		}
		p += len;
		if (*p == '/')
			p++;
	}
	if (rc)
		return rc;
	if (out->len > root && path[strlen(path) - 1] != '/')
		out->data[--out->len] = '\0';
	if (out->len == start)
		rc = pp_buf_putc(out, '/');
	return rc;
}

struct query_pair {
	char *key, *value; /* escaped */
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Undo the client's escaping (a '%' not followed by two hex digits stays a
 * '%'), then escape again the SigV4 way, into a new string. */
static char *reescape(const char *s, size_t n)
{
	struct pp_buf out;
	int rc = 0;

	pp_buf_init(&out, CANONICAL_MAX);
	for (size_t i = 0; !rc && i < n; i++) {
		int hi = -1, lo = -1;
		char c = s[i];

		if (c == '%' && i + 2 < n) {
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
		}
		if (hi >= 0 && lo >= 0) {
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		rc = escape(&out, &c, 1);
	}
	if (rc) {
		pp_buf_free(&out);
		return NULL;
	}
	return pp_buf_steal(&out);
}

static int pair_cmp(const void *x, const void *y)
{
	const struct query_pair *a = x, *b = y;
	int c = strcmp(a->key, b->key);

	return c ? c : strcmp(a->value, b->value);
}

/* key=value pairs, re-escaped, sorted by key then value, joined by '&';
 * empty items ("a=1&&b=2") are skipped, a key without '=' has value "". */
static int canonical_query(struct pp_buf *out, const char *query, struct pp_error *err)
{
	struct query_pair *pairs;
	size_t n = 0;
	int rc = 0;

	if (!query || !*query)
		return 0;
	pairs = calloc(QUERY_PAIRS_MAX, sizeof(*pairs));
	if (!pairs)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	for (const char *p = query; *p && !rc;) {
		size_t len = strcspn(p, "&");
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;

		if (len) {
			if (n == QUERY_PAIRS_MAX) {
				rc = pp_fail(err, PP_EINVALID, "more than %d query parameters",
					     QUERY_PAIRS_MAX);
				break;
			}
			pairs[n].key = reescape(p, klen);
			pairs[n].value = eq ? reescape(eq + 1, len - klen - 1) : reescape("", 0);
			if (!pairs[n].key || !pairs[n].value)
				rc = pp_fail(err, PP_ENOMEM, "query too long");
			n++;
		}
		p += len;
		if (*p == '&')
			p++;
	}
	if (!rc) {
		qsort(pairs, n, sizeof(*pairs), pair_cmp);
		for (size_t i = 0; !rc && i < n; i++)
			rc = pp_buf_printf(out, "%s%s=%s", i ? "&" : "", pairs[i].key,
					   pairs[i].value);
		if (rc)
			rc = pp_fail(err, PP_ENOMEM, "canonical query over %zu bytes",
				     CANONICAL_MAX);
	}
	for (size_t i = 0; i < n; i++) {
		free(pairs[i].key);
		free(pairs[i].value);
	}
	free(pairs);
	return rc;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* A header value with its ends trimmed and every inner run of blanks
 * (folded lines included) turned into one space. */
static int put_trimmed(struct pp_buf *out, const char *v)
{
	bool gap = false, started = false;
	int rc = 0;

	for (; !rc && *v; v++) {
		if (blank(*v)) {
			gap = started;
			continue;
		}
		if (gap)
			rc = pp_buf_putc(out, ' ');
		if (!rc)
			rc = pp_buf_putc(out, *v);
		gap = false;
		started = true;
	}
	return rc;
}

/* "name:value\n" for each signed header, in the order SignedHeaders lists
 * them; headers sent more than once have their values joined by ','. */
static int canonical_headers(struct pp_buf *out, const struct pp_mock_sigv4_request *r,
			     const char *signed_headers, struct pp_error *err)
{
	const char *p = signed_headers;

	while (*p) {
		size_t len = strcspn(p, ";");
		size_t found = 0;
		int rc;

		if (len == 0)
			return pp_fail(err, PP_EINVALID, "SignedHeaders has an empty name");
		rc = pp_buf_append(out, p, len);
		if (!rc)
			rc = pp_buf_putc(out, ':');
		for (size_t i = 0; !rc && i < r->nheaders; i++) {
			if (strlen(r->names[i]) != len || strncasecmp(r->names[i], p, len) != 0)
				continue;
			if (found++)
				rc = pp_buf_putc(out, ',');
			if (!rc)
				rc = put_trimmed(out, r->values[i]);
		}
		if (!rc)
			rc = pp_buf_putc(out, '\n');
		if (rc)
			return pp_fail(err, PP_ENOMEM, "canonical request over %zu bytes",
				       CANONICAL_MAX);
		if (!found)
			return pp_fail(err, PP_EINVALID, "signed header %.*s is not in the request",
				       (int)len, p);
		p += len;
		if (*p == ';')
			p++;
	}
	return 0;
}

static const char *header(const struct pp_mock_sigv4_request *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->names[i], name) == 0)
			return r->values[i];
	return NULL;
}

static int build_canonical(const struct pp_mock_sigv4_request *r,
			   const struct pp_mock_sigv4_auth *a, bool normalize, struct pp_buf *out,
			   struct pp_error *err)
{
	const char *claimed = header(r, "X-Amz-Content-Sha256");
	char body_hash[65];
	int rc;

	if (sha256_hex(r->body, r->body_len, body_hash))
		return pp_fail(err, PP_ENOMEM, "SHA-256 failed");
	if (claimed && strcmp(claimed, body_hash) != 0)
		return pp_fail(err, PP_EINVALID,
			       "X-Amz-Content-Sha256 is not the hash of the body");
	rc = pp_buf_printf(out, "%s\n", r->method);
	if (!rc)
		rc = canonical_path(out, r->path ? r->path : "", normalize);
	if (!rc)
		rc = pp_buf_putc(out, '\n');
	if (rc)
		return pp_fail(err, PP_ENOMEM, "canonical request over %zu bytes", CANONICAL_MAX);
	rc = canonical_query(out, r->query, err);
	if (!rc && pp_buf_putc(out, '\n'))
		rc = pp_fail(err, PP_ENOMEM, "canonical request over %zu bytes", CANONICAL_MAX);
	if (!rc)
		rc = canonical_headers(out, r, a->signed_headers, err);
	if (!rc && pp_buf_printf(out, "\n%s\n%s", a->signed_headers, body_hash))
		rc = pp_fail(err, PP_ENOMEM, "canonical request over %zu bytes", CANONICAL_MAX);
	return rc;
}

/* ---- signature ---- */

/* Signing keys derived lately, by secret and scope: a key serves a day's
 * requests of one service in one region, so the four HMACs that derive it
 * are done once, as AWS's own SDKs keep theirs. Each is kept as an HMAC
 * context already keyed with it, which a request's signature copies: keying
 * a context looks SHA-256 up by name and hashes the key's two pads, more
 * than the signature's own hashing (docs/performance.md, step 108). Shared
 * by the mock's connection threads. */
#define SIGNING_KEYS_KEPT 8
static struct signing_key {
	char *secret; /* NULL: an empty entry */
	char date[9], region[64], service[64];
	EVP_MAC_CTX *keyed; /* keyed with the signing key; copied, never used */
} signing_keys[SIGNING_KEYS_KEPT];
static size_t signing_key_next;
static pthread_mutex_t signing_keys_lock = PTHREAD_MUTEX_INITIALIZER;

static bool signing_key_is(const struct signing_key *k, const struct pp_mock_sigv4_auth *a,
			   const char *secret)
{
	return k->secret && strcmp(k->secret, secret) == 0 && strcmp(k->date, a->date) == 0 &&
	       strcmp(k->region, a->region) == 0 && strcmp(k->service, a->service) == 0;
}

static int derive_key(const struct pp_mock_sigv4_auth *a, const char *secret, unsigned char key[32])
{
	const char *steps[] = {a->date, a->region, a->service, "aws4_request"};
	size_t keylen = strlen(secret) + 4;
	unsigned char *k0 = malloc(keylen + 1);
	int rc;

	if (!k0)
		return PP_ENOMEM;
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, secret, keylen - 4);
	/* Each step keys the next. */
	rc = hmac(k0, keylen, steps[0], key);
	for (size_t i = 1; !rc && i < sizeof(steps) / sizeof(steps[0]); i++)
		rc = hmac(key, 32, steps[i], key);
	OPENSSL_cleanse(k0, keylen);
	free(k0);
	return rc;
}

/* A context keyed with the signing key of a's scope, the caller's to use
 * and free; NULL: no memory. */
static EVP_MAC_CTX *signing_hmac(const struct pp_mock_sigv4_auth *a, const char *secret)
{
	unsigned char key[32];
	EVP_MAC_CTX *keyed, *mine = NULL;
	struct signing_key *k;
	char *copy;

	pthread_mutex_lock(&signing_keys_lock);
	for (size_t i = 0; i < SIGNING_KEYS_KEPT; i++) {
		if (signing_key_is(&signing_keys[i], a, secret)) {
			mine = EVP_MAC_CTX_dup(signing_keys[i].keyed);
			pthread_mutex_unlock(&signing_keys_lock);
			return mine;
		}
	}
	pthread_mutex_unlock(&signing_keys_lock);
	keyed = derive_key(a, secret, key) ? NULL : keyed_hmac(key, sizeof(key));
	OPENSSL_cleanse(key, sizeof(key));
	if (!keyed || !(mine = EVP_MAC_CTX_dup(keyed)) || !(copy = strdup(secret))) {
		EVP_MAC_CTX_free(keyed);
		return mine; /* derived, only not kept */
	}
	pthread_mutex_lock(&signing_keys_lock);
	k = &signing_keys[signing_key_next++ % SIGNING_KEYS_KEPT];
	if (k->secret) {
		OPENSSL_cleanse(k->secret, strlen(k->secret));
		free(k->secret);
		EVP_MAC_CTX_free(k->keyed);
	}
	k->secret = copy;
	snprintf(k->date, sizeof(k->date), "%s", a->date);
	snprintf(k->region, sizeof(k->region), "%s", a->region);
	snprintf(k->service, sizeof(k->service), "%s", a->service);
	k->keyed = keyed;
	pthread_mutex_unlock(&signing_keys_lock);
	return mine;
}

static int signature(const struct pp_mock_sigv4_auth *a, const char *secret, const char *sts,
		     char out[65])
{
	unsigned char mac[32];
	EVP_MAC_CTX *ctx = signing_hmac(a, secret);
	/* The key signs the string to sign. */
	int rc = ctx ? hmac_final(ctx, sts, mac) : PP_ENOMEM;

	if (!rc)
		to_hex(mac, sizeof(mac), out);
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}

int pp_mock_sigv4_check(const struct pp_mock_sigv4_request *r, const struct pp_mock_sigv4_auth *a,
			const char *secret, bool normalize_path, struct pp_buf *canonical,
			struct pp_buf *string_to_sign, struct pp_error *err)
{
	const char *amz_date = header(r, "X-Amz-Date");
	struct pp_buf cr, sts;
	char cr_hash[65], want[65];
	int rc;

	if (!amz_date || strlen(amz_date) != 16 || strncmp(amz_date, a->date, 8) != 0)
		return pp_fail(err, PP_EINVALID,
			       "X-Amz-Date is missing or not on the credential scope's day %s",
			       a->date);
	pp_buf_init(&cr, CANONICAL_MAX);
	pp_buf_init(&sts, 4096);
	rc = build_canonical(r, a, normalize_path, &cr, err);
	if (!rc && sha256_hex(cr.data, cr.len, cr_hash))
		rc = pp_fail(err, PP_ENOMEM, "SHA-256 failed");
	if (!rc && pp_buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", amz_date,
				 a->date, a->region, a->service, cr_hash))
		rc = pp_fail(err, PP_ENOMEM, "string to sign too long");
	if (!rc && signature(a, secret, pp_buf_str(&sts), want))
		rc = pp_fail(err, PP_ENOMEM, "HMAC-SHA256 failed");
	if (!rc && CRYPTO_memcmp(want, a->signature, 64) != 0)
		rc = pp_fail(err, PP_EAUTH, "the signature does not match");
	if (canonical) {
		pp_buf_reset(canonical);
		if (pp_buf_append(canonical, pp_buf_str(&cr), cr.len) && !rc)
			rc = pp_fail(err, PP_ENOMEM, "canonical request buffer too small");
	}
	if (string_to_sign) {
		pp_buf_reset(string_to_sign);
		if (pp_buf_append(string_to_sign, pp_buf_str(&sts), sts.len) && !rc)
			rc = pp_fail(err, PP_ENOMEM, "string to sign buffer too small");
	}
	OPENSSL_cleanse(want, sizeof(want));
	pp_buf_free(&cr);
	pp_buf_free(&sts);
	return rc;
}
