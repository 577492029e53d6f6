/* The shape of a PEM RSA private key, checked without a crypto library:
 * configuration is validated at startup, and a daemon with nothing due
 * should not have set up OpenSSL (about 2 MiB of its pages) to say that a
 * key file holds the wrong thing. The key is parsed for real (by OpenSSL,
 * through libjwt) when it first signs. */
#ifndef PP_PEM_H
#define PP_PEM_H

/* 0 when pem's first PEM block is an unencrypted RSA private key:
 * "PRIVATE KEY" (PKCS #8, RFC 5208, algorithm rsaEncryption) or "RSA
 * PRIVATE KEY" (PKCS #1, RFC 8017 A.1.2) in DER: definite lengths, every
 * field a key has and nothing more inside it. An encrypted key (its own
 * label, or Proc-Type headers), an EC or RSA-PSS key, and anything
 * truncated or corrupted in its structure are refused. It stands in for
 * OpenSSL's PEM_read_bio_PrivateKey and takes what that takes (but for
 * algorithm parameters other than NULL, which no key writer makes): the
 * key's numbers are not checked, neither alone nor against each other.
 * Else PP_EINVALID, or PP_ENOMEM when the key could not be decoded into
 * memory to be looked at (lib/err.h). */
int pp_pem_rsa_private_key_check(const char *pem);

#endif
