/* lib/pem: the shape check of an RSA private key, judged by OpenSSL's own
 * reader (PEM_read_bio_PrivateKey, an RSA key) on keys OpenSSL writes and
 * on every truncation and many corruptions of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/pem.h"

static EVP_PKEY *rsa_key;

/* The repository's test key, so that the damage below lands on the same
 * bytes in every run. */
static int group_setup(void **state)
{
	(void)state;
	FILE *f = fopen("tests/data/keys/test_only_rsa_key.pem", "r");
	if (!f)
		return -1;
	rsa_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return rsa_key ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(rsa_key);
	return 0;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* What the check stands in for. */
static bool openssl_says_rsa(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
	bool ok = pkey && EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA;
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	ERR_clear_error();
	return ok;
}

/* The PEM text a writer puts into a memory BIO. */
static char *pem_of(int (*write)(BIO *, const void *), const void *what)
{
	BIO *bio = BIO_new(BIO_s_mem());
	assert_non_null(bio);
	assert_int_equal(write(bio, what), 1);
	BUF_MEM *mem = NULL;
	BIO_get_mem_ptr(bio, &mem);
	char *s = strndup(mem->data, mem->length);
	BIO_free(bio);
	return s;
}

static int write_pkcs8(BIO *b, const void *k)
{
	return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

static int write_pkcs1(BIO *b, const void *k)
{
	return PEM_write_bio_PrivateKey_traditional(b, k, NULL, NULL, 0, NULL, NULL);
}

static int write_encrypted(BIO *b, const void *k)
{
	return PEM_write_bio_PKCS8PrivateKey(b, k, EVP_aes_128_cbc(), "secret", 6, NULL, NULL);
}

static int write_encrypted_pkcs1(BIO *b, const void *k)
{
	return PEM_write_bio_PrivateKey_traditional(b, k, EVP_aes_128_cbc(),
						    (const unsigned char *)"secret", 6, NULL, NULL);
}

static int write_public(BIO *b, const void *k)
{
	return PEM_write_bio_PUBKEY(b, k);
}

static void agree(const char *pem, bool want)
{
	assert_int_equal(openssl_says_rsa(pem), want);
	assert_int_equal(pp_pem_rsa_private_key_check(pem) == 0, want);
}

static void test_rsa_keys_accepted(void **state)
{
	(void)state;
	char *p8 = pem_of(write_pkcs8, rsa_key), *p1 = pem_of(write_pkcs1, rsa_key);
	assert_non_null(strstr(p8, "-----BEGIN PRIVATE KEY-----\n"));
	assert_non_null(strstr(p1, "-----BEGIN RSA PRIVATE KEY-----\n"));
	agree(p8, true);
	agree(p1, true);
	/* CRLF line ends, text before the block, and a certificate first (a
	 * key file that also holds the certificate). */
	char crlf[8192], *o = crlf;
	for (const char *c = p8; *c; c++) {
		if (*c == '\n')
			*o++ = '\r';
		*o++ = *c;
	}
	*o = '\0';
	agree(crlf, true);
	char *cert_first = NULL;
	FILE *f = fopen("tests/data/keys/test_only_rsa_cert.pem", "r");
	assert_non_null(f);
	char cert[4096];
	size_t n = fread(cert, 1, sizeof(cert) - 1, f);
	fclose(f);
	cert[n] = '\0';
	assert_true(asprintf(&cert_first, "a comment\n%s%s", cert, p1) > 0);
	agree(cert_first, true);
	free(cert_first);
	free(p8);
	free(p1);
}

static void test_other_keys_refused(void **state)
{
	(void)state;
	char *enc = pem_of(write_encrypted, rsa_key);
	char *enc1 = pem_of(write_encrypted_pkcs1, rsa_key);
	char *pub = pem_of(write_public, rsa_key);
	assert_non_null(strstr(enc1, "Proc-Type: 4,ENCRYPTED"));
	agree(enc, false);
	agree(enc1, false);
	agree(pub, false);
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	EVP_PKEY *pss = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 1024), 1);
	assert_int_equal(EVP_PKEY_generate(ctx, &pss), 1);
	EVP_PKEY_CTX_free(ctx);
	assert_non_null(ec);
	assert_non_null(pss);
	char *ec8 = pem_of(write_pkcs8, ec), *ec1 = pem_of(write_pkcs1, ec);
	char *pss8 = pem_of(write_pkcs8, pss);
	agree(ec8, false);
	agree(ec1, false);
	agree(pss8, false);
	assert_int_equal(pp_pem_rsa_private_key_check(ec8), PP_EINVALID);
	agree("", false);
	agree("-----BEGIN PRIVATE KEY-----\nnot-base64\n-----END PRIVATE KEY-----\n", false);
	agree("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n", false);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(pss);
	free(enc);
	free(enc1);
	free(pub);
	free(ec8);
	free(ec1);
	free(pss8);
}

/* The base64 body of a PEM text as one line, and the text rebuilt around
 * a body. */
static char *body_of(const char *pem)
{
	const char *b = strchr(pem, '\n') + 1, *e = strstr(b, "-----END");
	char *out = calloc(1, (size_t)(e - b) + 1), *o = out;
	for (; b < e; b++)
		if (*b != '\n')
			*o++ = *b;
	return out;
}

static char *pem_around(const char *label, const char *body, size_t len)
{
	char *out = NULL;
	assert_true(asprintf(&out, "-----BEGIN %s-----\n%.*s\n-----END %s-----\n", label, (int)len,
			     body, label) > 0);
	return out;
}

/* Every cut of the body on a base64 quantum (OpenSSL refuses the others
 * for their length alone), and a changed character at every fifth place:
 * the check and OpenSSL must agree on each. A change inside an integer's
 * digits leaves a key both take; one in a tag or a length breaks it. */
static void differential(const char *label, const char *pem)
{
	char *body = body_of(pem);
	size_t n = strlen(body);
	int accepted = 0, refused = 0;
	for (size_t cut = 4; cut < n; cut += 4) {
		char *t = pem_around(label, body, cut);
		bool want = openssl_says_rsa(t);
		assert_int_equal(pp_pem_rsa_private_key_check(t) == 0, want);
		want ? accepted++ : refused++;
		free(t);
	}
	for (size_t at = 0; at < n; at += 5) {
		if (body[at] == '=')
			continue;
		char *changed = strdup(body);
		changed[at] = changed[at] == 'A' ? 'B' : 'A';
		char *t = pem_around(label, changed, n);
		bool want = openssl_says_rsa(t);
		if ((pp_pem_rsa_private_key_check(t) == 0) != want)
			fail_msg("%s: base64 character %zu changed: OpenSSL %s", label, at,
				 want ? "takes it" : "refuses it");
		want ? accepted++ : refused++;
		free(t);
		free(changed);
	}
	/* Both outcomes occurred: the comparison could have failed. */
	assert_true(accepted > 0 && refused > 0);
	free(body);
}

static void test_agrees_with_openssl_on_damage(void **state)
{
	(void)state;
	char *p8 = pem_of(write_pkcs8, rsa_key), *p1 = pem_of(write_pkcs1, rsa_key);
	differential("PRIVATE KEY", p8);
	differential("RSA PRIVATE KEY", p1);
	free(p8);
	free(p1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rsa_keys_accepted),
		cmocka_unit_test(test_other_keys_refused),
		cmocka_unit_test(test_agrees_with_openssl_on_damage),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
