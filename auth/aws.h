/* AWS credentials: the SDK credential chain and request signing. Internal to
 * auth/ (auth/cred.c dispatches to it); the mock uses pp_sigv4_sign from
 * auth/auth.h to verify. */
#ifndef PP_AUTH_AWS_H
#define PP_AUTH_AWS_H

#include <time.h>

#include "dispatcher/config.h"
#include "lib/err.h"

struct pp_http_req;

struct pp_aws {
	const struct pp_cred_conf *conf; /* borrowed */
	char *access_key_id;
	char *secret_access_key; /* registered as secret */
	char *session_token;	 /* registered as secret */
	time_t expires;		 /* 0: static credentials */
	char source[32]; /* "env", "web_identity", "profile", "container", "imds", "static" */
	char *region;
	char *service;
	/* derived signing key cache: valid for (date, region, service) */
	char key_scope[96];
	unsigned char signing_key[32];
	unsigned long refreshes;
};

int pp_aws_init(struct pp_aws *a, const struct pp_cred_conf *conf, struct pp_error *err);
void pp_aws_free(struct pp_aws *a);
/* Resolve or refresh credentials (chain order of the SDKs) when missing or
 * within 5 minutes of expiry. */
int pp_aws_ensure(struct pp_aws *a, struct pp_error *err);
/* Add X-Amz-Date, X-Amz-Security-Token, X-Amz-Content-Sha256 (not for ecs),
 * and Authorization to req. */
int pp_aws_sign_request(struct pp_aws *a, struct pp_http_req *req, time_t now,
			struct pp_error *err);

/* SigV4 pieces for callers that cache the derived key (auth/sigv4.c). */
struct pp_sigv4_input;
struct pp_sigv4_output;
/* kSigning = HMAC chain over date (YYYYMMDD), region, service, "aws4_request". */
int pp_sigv4_signing_key(const char *secret, const char *date, const char *region,
			 const char *service, unsigned char key[32]);
/* pp_sigv4_sign with a key from pp_sigv4_signing_key for in->when's date;
 * in->secret_access_key is not used. */
int pp_sigv4_sign_with_key(const struct pp_sigv4_input *in, const unsigned char key[32],
			   struct pp_sigv4_output *out, struct pp_error *err);

#endif
