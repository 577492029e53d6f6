/* AWS credentials: the SDK credential chain and request signing, behind
 * the pp_cred_aws backend (auth/backend.h). Internal to auth/; the mock
 * uses pp_sigv4_sign from auth/auth.h to verify. */
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

/* ---- between the backend's files (aws.c, aws_files.c, aws_remote.c) ---- */

/* Keys one source resolved, before they are installed in a pp_aws. */
struct pp_aws_creds {
	char *akid;
	char *secret;
	char *token;
	time_t expires; /* 0: does not expire */
	const char *source;
};

void pp_aws_creds_free(struct pp_aws_creds *c);
/* Fill c (copies); ENOMEM is the only failure. */
int pp_aws_creds_set(struct pp_aws_creds *c, const char *akid, const char *secret,
		     const char *token, time_t expires, const char *source, struct pp_error *err);
/* getenv, NULL when unset or empty. */
const char *pp_aws_env(const char *name);
/* A source that was asked for (by name or by its settings) but is absent
 * is an authentication failure, not "try the next one". */
int pp_aws_auth_failure(int rc, struct pp_error *err);
/* Read a whole file of at most max bytes (malloc'd, NUL-terminated);
 * PP_ENOTFOUND when it does not exist. */
int pp_aws_read_file(const char *path, size_t max, char **out, const char *what,
		     struct pp_error *err);
/* Strip surrounding white space in place. */
char *pp_aws_trim(char *s);

/* The sources: each returns PP_ENOTFOUND when it is not configured. */
int pp_aws_from_env(struct pp_aws *a, struct pp_aws_creds *c, struct pp_error *err);
int pp_aws_from_web_identity(struct pp_aws *a, struct pp_aws_creds *c, struct pp_error *err);
int pp_aws_from_profile(struct pp_aws *a, struct pp_aws_creds *c, struct pp_error *err);
int pp_aws_from_container(struct pp_aws *a, struct pp_aws_creds *c, struct pp_error *err);
int pp_aws_from_imds(struct pp_aws *a, struct pp_aws_creds *c, struct pp_error *err);
/* STS AssumeRoleWithWebIdentity with the token in token_file. */
int pp_aws_web_identity(struct pp_aws *a, const char *token_file, const char *role_arn,
			const char *session_name, struct pp_aws_creds *c, struct pp_error *err);
/* STS AssumeRole signed with src's keys. */
int pp_aws_assume_role(struct pp_aws *a, const char *role_arn, const char *session_name,
		       const char *external_id, const char *duration,
		       const struct pp_aws_creds *src, struct pp_aws_creds *out,
		       struct pp_error *err);
/* The region of the profile in use (malloc'd), NULL when none. */
char *pp_aws_profile_region(const struct pp_aws *a);

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
