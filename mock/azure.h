/* Mock Azure, shared between its modules: ARM's admission (bearer token,
 * faults, api-version) and the provisioning APIs' state. */
#ifndef PP_MOCK_AZURE_H
#define PP_MOCK_AZURE_H

#include <stdbool.h>

#include "lib/json.h"
#include "mock/mock.h"

/* The bearer check, fault injection under fault_api, the api-version
 * parameter: answers and returns false to stop. */
bool pp_mock_azure_admit(struct pp_mock_call *c, const char *fault_api);
/* The object id of a client's service principal (the oid of its tokens). */
void pp_mock_azure_oid(const char *client_id, char out[37]);
/* Whether oid is one of the mock's clients' (or the managed identity's). */
bool pp_mock_azure_client_oid(void *state, const char *oid);

/* mock/azure_infra.c: resource providers, resource groups, managed
 * identities, container registries, role definitions and assignments. */
struct pp_mock_azi;
struct pp_mock_azi *pp_mock_azi_of(void *state); /* from mock/azure.c's state */
struct pp_mock_azi *pp_mock_azi_new(void);
void pp_mock_azi_free(struct pp_mock_azi *a);
void pp_mock_azi_reset(struct pp_mock_azi *a);
void pp_mock_azi_stats(struct pp_mock_azi *a, struct pp_json *live);
extern const struct pp_mock_router pp_mock_azi_router;
extern const struct pp_mock_router pp_mock_azi_control_router;

#endif
