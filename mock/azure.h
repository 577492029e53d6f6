/* Mock Azure, shared between its modules: ARM's admission (bearer token,
 * faults, and for ARM the api-version) and the provisioning APIs' state. */
#ifndef PP_MOCK_AZURE_H
#define PP_MOCK_AZURE_H

#include <stdbool.h>

#include "lib/json.h"
#include "mock/mock.h"

/* The bearer check, fault injection under fault_api, the api-version
 * parameter: answers and returns false to stop. */
bool pp_mock_azure_admit(struct pp_mock_call *c, const char *fault_api, bool arm);
/* The object id of a client's service principal (the oid of its tokens). */
void pp_mock_azure_oid(const char *client_id, char out[37]);
/* Whether oid is one of the mock's clients' (or the managed identity's). */
bool pp_mock_azure_client_oid(void *state, const char *oid);
/* Entra accepts client id with secret from now on (NULL: no secret). */
int pp_mock_azure_client_set(void *state, const char *id, const char *secret);

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

/* mock/azure_graph.c: Microsoft Graph applications, their passwords and
 * service principals. */
struct pp_mock_azg;
struct pp_mock_azg *pp_mock_azg_of(void *state);
struct pp_mock_azg *pp_mock_azg_new(void);
void pp_mock_azg_free(struct pp_mock_azg *g);
void pp_mock_azg_reset(struct pp_mock_azg *g);
void pp_mock_azg_stats(const struct pp_mock_azg *g, struct pp_json *live);
/* A service principal with object id pid exists and has replicated. */
bool pp_mock_azg_principal_ready(const struct pp_mock_azg *g, const char *pid, double now);
extern const struct pp_mock_router pp_mock_azg_router;
extern const struct pp_mock_router pp_mock_azg_control_router;

#endif
