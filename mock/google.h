/* What the Google module's files share (mock/google.c: tokens, Cloud Run;
 * mock/google_infra.c: the APIs `pushpool provision` calls). Private to
 * the mock. */
#ifndef PP_MOCK_GOOGLE_H
#define PP_MOCK_GOOGLE_H

#include <stdbool.h>

#include <openssl/evp.h>

#include "lib/json.h"
#include "mock/mock.h"

struct google_state;
struct pp_mock_gi;

struct google_state *pp_mock_google_state(void *state);
struct pp_mock_gi *pp_mock_gi_of(void *state);

/* A bearer token this mock issued, then fault injection under api
 * ("serviceusage"); answers and returns false to refuse. */
bool pp_mock_google_admit(struct pp_mock_call *c, const char *api);
/* A google.rpc.Status error answer (status NULL: the code's usual name). */
void pp_mock_google_error(struct pp_mock_resp *resp, int code, const char *status, const char *fmt,
			  ...) __attribute__((format(printf, 4, 5)));
void pp_mock_google_uuid(struct pp_mock *m, char out[37]);
/* The token endpoint accepts JWTs signed by pkey (a reference is taken)
 * for iss and kid from now on, until revoked. Call with the mock lock. */
int pp_mock_google_key_add(void *state, const char *kid, const char *iss, EVP_PKEY *pkey);
void pp_mock_google_key_revoke(void *state, const char *kid);

/* The provisioning APIs' state (google_infra.c). */
struct pp_mock_gi *pp_mock_gi_new(void);
void pp_mock_gi_free(struct pp_mock_gi *g);
void pp_mock_gi_reset(struct pp_mock_gi *g);
/* Adds live_gcp_* counts (called under the mock lock). */
void pp_mock_gi_stats(struct pp_mock_gi *g, struct pp_json *live);

extern const struct pp_mock_router pp_mock_gi_serviceusage_router;
extern const struct pp_mock_router pp_mock_gi_iam_router;
extern const struct pp_mock_router pp_mock_gi_crm_router;
extern const struct pp_mock_router pp_mock_gi_ar_router;
extern const struct pp_mock_router pp_mock_gi_control_router;

#endif
