/* Mock Azure, the ARM APIs `pushpool provision` calls for ACI pools:
 * resource provider registration (Registering, then Registered once the
 * azure.lro behaviour's seconds have passed), resource groups (delete is
 * asynchronous, 202 + Location, and takes what is inside with it), their
 * resource list, user-assigned managed identities, container registries
 * (create and delete asynchronous, Azure-AsyncOperation), role definitions
 * and role assignments. Every request passes mock/azure.c's admission
 * (bearer token, faults under the API name "arminfra", api-version); every
 * body is judged by the resource provider's swagger (mock/spec_gate.c,
 * "arminfra": resources, ManagedIdentity, containerregistry,
 * RoleAssignmentsCalls). Role definitions are in none of the swaggers
 * vendored: their rules are written here from Microsoft's documentation
 * (docs/mock.md says which). The rules ARM adds to the swaggers, stated in
 * Microsoft's documentation: a role assignment's principal must exist
 * (PrincipalNotFound while a new principal replicates: the azure.replication
 * behaviour's seconds after its identity was made), its role definition must
 * exist, one principal holds a role at a scope once (RoleAssignmentExists),
 * a custom role's name is unique and a role with assignments cannot be
 * deleted; registry names are 5-50 letters and digits.
 *
 * Subscriptions are open (any resource group reads as existing and every
 * provider as registered, what the dispatch scenarios assume) until
 * /azure/control/infra {"subscription": S} declares S empty: from then on
 * S holds only what is created or planted. Changes are counted in the keyed
 * counter azure_changes (by operation id). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mock/azure.h"
#include "mock/mock.h"
#include "mock/spec.h"

#define MAX_OBJS	 10000
#define JSON_CT		 "application/json; charset=utf-8"
#define ROLE_ACR_PULL	 "7f951dda-4ed3-4680-a7ca-43fe172d538d"
#define ROLE_CONTRIBUTOR "b24988ac-6180-42a0-ab88-20f7382dd24c"

enum azi_kind { K_PROVIDER, K_RG, K_IDENTITY, K_REGISTRY, K_ROLEDEF, K_ASSIGN, K_NKINDS };
static const char *const kind_names[K_NKINDS] = {
	"providers",  "resource_groups",  "identities",
	"registries", "role_definitions", "role_assignments",
};

struct azi_obj {
	struct azi_obj *next;
	enum azi_kind kind;
	char *key; /* the ARM id, lowercase: ARM ids are case-insensitive */
	struct pp_json *j;
	double ready_at; /* provider registered, registry created, principal replicated */
};

struct azi_op {
	struct azi_op *next;
	char id[37];
	double done_at;
	bool fails; /* ends Failed (the step fault arminfra.operation) */
};

struct azi_sub {
	struct azi_sub *next;
	char *id;
};

struct pp_mock_azi {
	struct azi_obj *objs;
	struct azi_op *ops;
	struct azi_sub *subs;
	size_t nobjs, nops;
};

/* ---- state ---- */

void pp_mock_azi_reset(struct pp_mock_azi *a)
{
	if (!a)
		return;
	while (a->objs) {
		struct azi_obj *o = a->objs;

		a->objs = o->next;
		free(o->key);
		pp_json_free(o->j);
		free(o);
	}
	while (a->ops) {
		struct azi_op *o = a->ops;

		a->ops = o->next;
		free(o);
	}
	while (a->subs) {
		struct azi_sub *s = a->subs;

		a->subs = s->next;
		free(s->id);
		free(s);
	}
	memset(a, 0, sizeof(*a));
}

struct pp_mock_azi *pp_mock_azi_new(void)
{
	return calloc(1, sizeof(struct pp_mock_azi));
}

void pp_mock_azi_free(struct pp_mock_azi *a)
{
	pp_mock_azi_reset(a);
	free(a);
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static struct azi_obj *obj_find(struct pp_mock_azi *a, enum azi_kind kind, const char *id)
{
	char key[1024];

	snprintf(key, sizeof(key), "%s", id);
	lower(key);
	for (struct azi_obj *o = a->objs; o; o = o->next)
		if (o->kind == kind && !strcmp(o->key, key))
			return o;
	return NULL;
}

/* Takes j. */
static struct azi_obj *obj_put(struct pp_mock_azi *a, enum azi_kind kind, const char *id,
			       struct pp_json *j)
{
	struct azi_obj *o = obj_find(a, kind, id);

	if (o) {
		pp_json_free(o->j);
		o->j = j;
		return o;
	}
	if (a->nobjs >= MAX_OBJS || !j || !(o = calloc(1, sizeof(*o))) || !(o->key = strdup(id))) {
		free(o);
		pp_json_free(j);
		return NULL;
	}
	lower(o->key);
	o->kind = kind;
	o->j = j;
	o->next = a->objs;
	a->objs = o;
	a->nobjs++;
	return o;
}

static void obj_unlink(struct pp_mock_azi *a, struct azi_obj *victim)
{
	for (struct azi_obj **pp = &a->objs; *pp; pp = &(*pp)->next)
		if (*pp == victim) {
			*pp = victim->next;
			free(victim->key);
			pp_json_free(victim->j);
			free(victim);
			a->nobjs--;
			return;
		}
}

/* Everything whose id starts with prefix/ (what a resource group or a
 * resource holds: resources, role assignments at their scopes). */
static void obj_drop_under(struct pp_mock_azi *a, const char *prefix)
{
	char p[1024];
	size_t n = (size_t)snprintf(p, sizeof(p), "%s/", prefix);
	struct azi_obj *o = a->objs;

	lower(p);
	while (o) {
		struct azi_obj *next = o->next;

		if (!strncmp(o->key, p, n))
			obj_unlink(a, o);
		o = next;
	}
}

static bool sub_managed(const struct pp_mock_azi *a, const char *sub)
{
	for (const struct azi_sub *s = a->subs; s; s = s->next)
		if (!strcasecmp(s->id, sub))
			return true;
	return false;
}

void pp_mock_azi_stats(struct pp_mock_azi *a, struct pp_json *live)
{
	long long n[K_NKINDS] = {0};
	char key[64];

	for (struct azi_obj *o = a->objs; o; o = o->next)
		if (o->kind != K_PROVIDER ||
		    !strcmp(pp_json_get_string(o->j, "registrationState") ?: "", "Registered"))
			n[o->kind]++;
	for (int k = 0; k < K_NKINDS; k++) {
		snprintf(key, sizeof(key), "live_azure_%s", kind_names[k]);
		pp_json_set_int(live, key, n[k]);
	}
}

/* ---- answers ---- */

static void arm_error(struct pp_mock_resp *resp, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void arm_error(struct pp_mock_resp *resp, int status, const char *code, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (status >= 400 && status < 500)
		resp->reject_reason = code;
	pp_mock_resp_printf(resp, status, JSON_CT,
			    "{\"error\":{\"code\":\"%s\",\"message\":", code);
	pp_json_write_string(&resp->body, msg, strlen(msg));
	pp_buf_puts(&resp->body, "}}");
}

static void answer(struct pp_mock_call *c, int status, const struct pp_json *j)
{
	if (pp_mock_resp_json(c->resp, status, JSON_CT, j))
		arm_error(c->resp, 500, "InternalServerError", "mock: out of memory");
}

static double lro_seconds(struct pp_mock *m)
{
	double s = 0;

	return pp_mock_behaviour(m, "azure.lro", &s) ? s : 0;
}

static struct azi_op *op_new(struct pp_mock_call *c)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	struct azi_op *o = a->nops < MAX_OBJS ? calloc(1, sizeof(*o)) : NULL;

	if (!o)
		return NULL;
	pp_mock_random_hex(c->m, o->id, 32);
	o->done_at = pp_mock_clock(c->m) + lro_seconds(c->m);
	o->next = a->ops;
	a->ops = o;
	a->nops++;
	return o;
}

static struct azi_op *op_find(struct pp_mock_azi *a, const char *id)
{
	for (struct azi_op *o = a->ops; o; o = o->next)
		if (!strcasecmp(o->id, id))
			return o;
	return NULL;
}

/* 202 + Location: GET it answers 202 until done, then 200. */
static void accepted_location(struct pp_mock_call *c, const char *sub)
{
	struct azi_op *o = op_new(c);
	char u[700];

	if (!o) {
		arm_error(c->resp, 500, "InternalServerError", "mock: out of memory");
		return;
	}
	snprintf(u, sizeof(u), "%s/azure/subscriptions/%s/operationresults/%s?api-version=%s",
		 pp_mock_base_url(c->m), sub, o->id, pp_mock_arg(c->req, "api-version"));
	pp_mock_resp_printf(c->resp, 202, JSON_CT, "%s", "");
	pp_mock_resp_header(c->resp, "Location", u);
	pp_mock_resp_header(c->resp, "Retry-After", "1");
}

static void set_tracked(struct pp_json *j, const char *id, const char *name, const char *type,
			const struct pp_json *body)
{
	pp_json_set_string(j, "id", id);
	pp_json_set_string(j, "name", name);
	pp_json_set_string(j, "type", type);
	if (pp_json_get_string(body, "location"))
		pp_json_set_string(j, "location", pp_json_get_string(body, "location"));
	if (pp_json_get(body, "tags"))
		pp_json_set(j, "tags", pp_json_clone(pp_json_get(body, "tags")));
}

static void new_uuid(struct pp_mock *m, char out[37])
{
	char h[33];

	pp_mock_random_hex(m, h, 32);
	snprintf(out, 37, "%.8s-%.4s-4%.3s-8%.3s-%.12s", h, h + 8, h + 13, h + 17, h + 20);
}

static bool is_guid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (strlen(s) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == '-' ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* ---- validation ---- */

static bool spec(struct pp_mock_call *c, const char *blob, const char *op)
{
	return !pp_mock_spec_arm_infra(c->m, blob, op, c->body, c->resp);
}

static bool v_rg_put(struct pp_mock_call *c)
{
	return spec(c, "resources", "ResourceGroups_CreateOrUpdate");
}

static bool v_identity_put(struct pp_mock_call *c)
{
	return spec(c, "msi", "UserAssignedIdentities_CreateOrUpdate");
}

static bool v_registry_put(struct pp_mock_call *c)
{
	return spec(c, "acr", "Registries_Create");
}

static bool v_assign_put(struct pp_mock_call *c)
{
	return spec(c, "authz", "RoleAssignments_Create");
}

static bool v_register(struct pp_mock_call *c)
{
	return !c->body || spec(c, "resources", "Providers_Register");
}

static bool admit(struct pp_mock_call *c)
{
	return pp_mock_azure_admit(c, "arminfra", true);
}

/* ---- resource providers ---- */

static struct pp_json *provider_json(const char *sub, const char *ns, const char *state)
{
	struct pp_json *j = pp_json_new(PP_JSON_OBJECT);
	char id[400];

	snprintf(id, sizeof(id), "/subscriptions/%s/providers/%s", sub, ns);
	pp_json_set_string(j, "id", id);
	pp_json_set_string(j, "namespace", ns);
	pp_json_set_string(j, "registrationState", state);
	pp_json_set_string(j, "registrationPolicy", "RegistrationRequired");
	return j;
}

/* The provider as it reads now (Registering turns Registered in time). */
static struct pp_json *provider_view(struct pp_mock_call *c, const char *sub, const char *ns)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	char id[400];
	struct azi_obj *o;

	snprintf(id, sizeof(id), "/subscriptions/%s/providers/%s", sub, ns);
	if (!sub_managed(a, sub))
		return provider_json(sub, ns, "Registered");
	if (!(o = obj_find(a, K_PROVIDER, id)))
		return provider_json(sub, ns, "NotRegistered");
	if (!strcmp(pp_json_get_string(o->j, "registrationState") ?: "", "Registering") &&
	    pp_mock_clock(c->m) >= o->ready_at)
		pp_json_set_string(o->j, "registrationState", "Registered");
	return pp_json_clone(o->j);
}

static void provider_get(struct pp_mock_call *c)
{
	struct pp_json *j =
		provider_view(c, pp_mock_param(&c->params, "sub"), pp_mock_param(&c->params, "ns"));

	snprintf(c->resp->action, sizeof(c->resp->action), "Providers_Get");
	answer(c, 200, j);
	pp_json_free(j);
}

static void provider_set(struct pp_mock_call *c, bool reg)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	const char *sub = pp_mock_param(&c->params, "sub"), *ns = pp_mock_param(&c->params, "ns");
	char id[400];
	struct pp_json *cur = provider_view(c, sub, ns);
	char st[32];
	struct azi_obj *o;

	snprintf(st, sizeof(st), "%s", pp_json_get_string(cur, "registrationState") ?: "");

	snprintf(c->resp->action, sizeof(c->resp->action), "%s",
		 reg ? "Providers_Register" : "Providers_Unregister");
	snprintf(id, sizeof(id), "/subscriptions/%s/providers/%s", sub, ns);
	pp_json_free(cur);
	if (!sub_managed(a, sub)) {
		arm_error(c->resp, 409, "SubscriptionNotManaged",
			  "mock: declare subscription %s with /azure/control/infra first", sub);
		return;
	}
	if (reg ? strcmp(st, "Registered") && strcmp(st, "Registering")
		: strcmp(st, "NotRegistered") && strcmp(st, "Unregistered")) {
		o = obj_put(a, K_PROVIDER, id,
			    provider_json(sub, ns, reg ? "Registering" : "Unregistered"));
		if (!o) {
			arm_error(c->resp, 500, "InternalServerError", "mock: out of memory");
			return;
		}
		o->ready_at = pp_mock_clock(c->m) + lro_seconds(c->m);
		pp_mock_count(c->m, "azure_changes", c->resp->action);
	}
	cur = provider_view(c, sub, ns);
	answer(c, 200, cur);
	pp_json_free(cur);
}

static void provider_register(struct pp_mock_call *c)
{
	provider_set(c, true);
}

static void provider_unregister(struct pp_mock_call *c)
{
	provider_set(c, false);
}

/* ---- resource groups ---- */

static void rg_id(const struct pp_mock_call *c, char *out, size_t size)
{
	snprintf(out, size, "/subscriptions/%s/resourceGroups/%s", pp_mock_param(&c->params, "sub"),
		 pp_mock_param(&c->params, "rg"));
}

/* The group, NULL after answering 404 (a managed subscription's group that
 * does not exist). *legacy: an open subscription's (exists, no state). */
static struct azi_obj *rg_need(struct pp_mock_call *c, bool *legacy)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	char id[600];
	struct azi_obj *o;

	rg_id(c, id, sizeof(id));
	*legacy = !sub_managed(a, pp_mock_param(&c->params, "sub"));
	if (*legacy)
		return NULL;
	if (!(o = obj_find(a, K_RG, id)))
		arm_error(c->resp, 404, "ResourceGroupNotFound",
			  "Resource group '%s' could not be found.",
			  pp_mock_param(&c->params, "rg"));
	return o;
}

static void rg_get(struct pp_mock_call *c)
{
	bool legacy;
	struct azi_obj *o;

	snprintf(c->resp->action, sizeof(c->resp->action), "ResourceGroups_Get");
	o = rg_need(c, &legacy);
	if (legacy) {
		char id[600];

		rg_id(c, id, sizeof(id));
		pp_mock_resp_printf(c->resp, 200, JSON_CT,
				    "{\"id\":\"%s\",\"name\":\"%s\",\"location\":\"westeurope\","
				    "\"properties\":{\"provisioningState\":\"Succeeded\"}}",
				    id, pp_mock_param(&c->params, "rg"));
		return;
	}
	if (o)
		answer(c, 200, o->j);
}

static void rg_put(struct pp_mock_call *c)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	char id[600];
	struct pp_json *j = pp_json_new(PP_JSON_OBJECT), *props = pp_json_new(PP_JSON_OBJECT);
	struct azi_obj *o;
	bool existed;

	snprintf(c->resp->action, sizeof(c->resp->action), "ResourceGroups_CreateOrUpdate");
	rg_id(c, id, sizeof(id));
	if (!sub_managed(a, pp_mock_param(&c->params, "sub"))) {
		pp_json_free(j);
		pp_json_free(props);
		arm_error(c->resp, 409, "SubscriptionNotManaged",
			  "mock: declare the subscription with /azure/control/infra first");
		return;
	}
	existed = obj_find(a, K_RG, id) != NULL;
	set_tracked(j, id, pp_mock_param(&c->params, "rg"), "Microsoft.Resources/resourceGroups",
		    c->body);
	pp_json_set_string(props, "provisioningState", "Succeeded");
	pp_json_set(j, "properties", props);
	if (!(o = obj_put(a, K_RG, id, j))) {
		arm_error(c->resp, 500, "InternalServerError", "mock: out of memory");
		return;
	}
	pp_mock_count(c->m, "azure_changes", c->resp->action);
	answer(c, existed ? 200 : 201, o->j);
}

static void rg_delete(struct pp_mock_call *c)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	bool legacy;
	struct azi_obj *o;
	char id[600];

	snprintf(c->resp->action, sizeof(c->resp->action), "ResourceGroups_Delete");
	if (!(o = rg_need(c, &legacy))) {
		if (legacy)
			arm_error(c->resp, 409, "SubscriptionNotManaged",
				  "mock: an open subscription's groups cannot be deleted");
		return;
	}
	rg_id(c, id, sizeof(id));
	/* Everything inside goes with it, as in Azure. */
	obj_drop_under(a, id);
	obj_unlink(a, o);
	pp_mock_count(c->m, "azure_changes", c->resp->action);
	accepted_location(c, pp_mock_param(&c->params, "sub"));
}

static void rg_resources(struct pp_mock_call *c)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	struct pp_json *root = pp_json_new(PP_JSON_OBJECT), *list = pp_json_new(PP_JSON_ARRAY);
	char id[600];
	bool legacy;
	size_t n;

	snprintf(c->resp->action, sizeof(c->resp->action), "Resources_ListByResourceGroup");
	if (!rg_need(c, &legacy) && !legacy) {
		pp_json_free(root);
		pp_json_free(list);
		return;
	}
	rg_id(c, id, sizeof(id));
	n = strlen(id);
	lower(id);
	for (struct azi_obj *o = a->objs; o && list; o = o->next)
		if ((o->kind == K_IDENTITY || o->kind == K_REGISTRY) && !strncmp(o->key, id, n) &&
		    o->key[n] == '/') {
			struct pp_json *r = pp_json_new(PP_JSON_OBJECT);

			pp_json_set_string(r, "id", pp_json_get_string(o->j, "id"));
			pp_json_set_string(r, "name", pp_json_get_string(o->j, "name"));
			pp_json_set_string(r, "type", pp_json_get_string(o->j, "type"));
			if (pp_json_get(o->j, "tags"))
				pp_json_set(r, "tags", pp_json_clone(pp_json_get(o->j, "tags")));
			pp_json_append(list, r);
		}
	pp_json_set(root, "value", list);
	answer(c, 200, root);
	pp_json_free(root);
}

static void op_location(struct pp_mock_call *c)
{
	struct azi_op *o = op_find(pp_mock_azi_of(c->state), pp_mock_param(&c->params, "op"));

	snprintf(c->resp->action, sizeof(c->resp->action), "operationresults");
	if (!o)
		arm_error(c->resp, 404, "NotFound", "no operation %s",
			  pp_mock_param(&c->params, "op"));
	else if (pp_mock_clock(c->m) < o->done_at)
		pp_mock_resp_printf(c->resp, 202, JSON_CT, "%s", "");
	else
		pp_mock_resp_printf(c->resp, 200, JSON_CT, "%s", "");
}

static void op_async(struct pp_mock_call *c)
{
	struct azi_op *o = op_find(pp_mock_azi_of(c->state), pp_mock_param(&c->params, "op"));

	snprintf(c->resp->action, sizeof(c->resp->action), "operationStatus");
	if (!o)
		arm_error(c->resp, 404, "NotFound", "no operation %s",
			  pp_mock_param(&c->params, "op"));
	else if (pp_mock_clock(c->m) < o->done_at)
		pp_mock_resp_printf(c->resp, 200, JSON_CT, "{\"status\":\"InProgress\"}");
	else if (o->fails)
		pp_mock_resp_printf(c->resp, 200, JSON_CT,
				    "{\"status\":\"Failed\",\"error\":{\"code\":"
				    "\"QuotaExceeded\",\"message\":\"The subscription has reached "
				    "its limit of Basic registries (mock step fault).\"}}");
	else
		pp_mock_resp_printf(c->resp, 200, JSON_CT, "{\"status\":\"Succeeded\"}");
}

/* ---- identities and registries ---- */

static void res_id(const struct pp_mock_call *c, const char *type, char *out, size_t size)
{
	snprintf(out, size, "/subscriptions/%s/resourceGroups/%s/providers/%s/%s",
		 pp_mock_param(&c->params, "sub"), pp_mock_param(&c->params, "rg"), type,
		 pp_mock_param(&c->params, "name"));
}

#define T_IDENTITY "Microsoft.ManagedIdentity/userAssignedIdentities"
#define T_REGISTRY "Microsoft.ContainerRegistry/registries"

static void identity_put(struct pp_mock_call *c)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	char id[800], pid[37], cid[37];
	bool legacy;
	struct azi_obj *o;
	double repl = 0;

	snprintf(c->resp->action, sizeof(c->resp->action), "UserAssignedIdentities_CreateOrUpdate");
	if (!rg_need(c, &legacy)) {
		if (legacy)
			arm_error(c->resp, 409, "SubscriptionNotManaged", "mock: not managed");
		return;
	}
	res_id(c, T_IDENTITY, id, sizeof(id));
	if ((o = obj_find(a, K_IDENTITY, id))) {
		/* An update keeps the principal. */
		if (pp_json_get(c->body, "tags"))
			pp_json_set(o->j, "tags", pp_json_clone(pp_json_get(c->body, "tags")));
		pp_mock_count(c->m, "azure_changes", c->resp->action);
		answer(c, 200, o->j);
		return;
	}
	struct pp_json *j = pp_json_new(PP_JSON_OBJECT), *props = pp_json_new(PP_JSON_OBJECT);

	set_tracked(j, id, pp_mock_param(&c->params, "name"), T_IDENTITY, c->body);
	new_uuid(c->m, pid);
	new_uuid(c->m, cid);
	pp_json_set_string(props, "tenantId", "72f988bf-86f1-41af-91ab-2d7cd011db47");
	pp_json_set_string(props, "principalId", pid);
	pp_json_set_string(props, "clientId", cid);
	pp_json_set(j, "properties", props);
	if (!(o = obj_put(a, K_IDENTITY, id, j))) {
		arm_error(c->resp, 500, "InternalServerError", "mock: out of memory");
		return;
	}
	pp_mock_behaviour(c->m, "azure.replication", &repl);
	o->ready_at = pp_mock_clock(c->m) + repl;
	pp_mock_count(c->m, "azure_changes", c->resp->action);
	answer(c, 201, o->j);
}

static bool registry_name_ok(const char *n)
{
	size_t len = strlen(n);

	for (const char *p = n; *p; p++)
		if (!isalnum((unsigned char)*p))
			return false;
	return len >= 5 && len <= 50;
}

static void registry_put(struct pp_mock_call *c)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	const char *name = pp_mock_param(&c->params, "name");
	char id[800], u[700];
	bool legacy;
	struct azi_obj *o;

	snprintf(c->resp->action, sizeof(c->resp->action), "Registries_Create");
	/* RegistryNameParameter in the swagger: ^[a-zA-Z0-9]*$, 5-50. */
	if (!registry_name_ok(name)) {
		arm_error(c->resp, 400, "InvalidParameter",
			  "The registry name '%s' is invalid: 5-50 alphanumeric characters.", name);
		return;
	}
	if (!rg_need(c, &legacy)) {
		if (legacy)
			arm_error(c->resp, 409, "SubscriptionNotManaged", "mock: not managed");
		return;
	}
	res_id(c, T_REGISTRY, id, sizeof(id));
	/* Names are global: the same name anywhere else is taken. */
	for (struct azi_obj *x = a->objs; x; x = x->next)
		if (x->kind == K_REGISTRY &&
		    !strcasecmp(pp_json_get_string(x->j, "name") ?: "", name) &&
		    strcasecmp(pp_json_get_string(x->j, "id") ?: "", id)) {
			arm_error(c->resp, 409, "AlreadyInUse",
				  "The registry %s is already in use.", name);
			return;
		}
	bool existed = obj_find(a, K_REGISTRY, id) != NULL;
	struct pp_json *j = pp_json_new(PP_JSON_OBJECT), *props = pp_json_new(PP_JSON_OBJECT);
	char login[160];

	set_tracked(j, id, name, T_REGISTRY, c->body);
	if (pp_json_get(c->body, "sku"))
		pp_json_set(j, "sku", pp_json_clone(pp_json_get(c->body, "sku")));
	snprintf(login, sizeof(login), "%s.azurecr.io", name);
	lower(login);
	pp_json_set_string(props, "loginServer", login);
	pp_json_set_bool(
		props, "adminUserEnabled",
		pp_json_get_bool(pp_json_get(c->body, "properties"), "adminUserEnabled", false));
	pp_json_set_string(props, "provisioningState", "Succeeded");
	pp_json_set(j, "properties", props);
	if (!(o = obj_put(a, K_REGISTRY, id, j))) {
		arm_error(c->resp, 500, "InternalServerError", "mock: out of memory");
		return;
	}
	struct azi_op *op = op_new(c);

	if (!op) {
		arm_error(c->resp, 500, "InternalServerError", "mock: out of memory");
		return;
	}
	/* "arminfra.operation": the PUT is accepted, its operation ends
	 * Failed, and the registry is not made. */
	op->fails = pp_mock_step_fault(c->m, "arminfra.operation");
	if (!op->fails)
		pp_mock_count(c->m, "azure_changes", c->resp->action);
	snprintf(u, sizeof(u),
		 "%s/azure/subscriptions/%s/providers/Microsoft.ContainerRegistry/locations/%s/"
		 "operationResults/%s?api-version=%s",
		 pp_mock_base_url(c->m), pp_mock_param(&c->params, "sub"),
		 pp_json_get_string(o->j, "location") ?: "westeurope", op->id,
		 pp_mock_arg(c->req, "api-version"));
	answer(c, existed ? 200 : 201, o->j);
	pp_mock_resp_header(c->resp, "Azure-AsyncOperation", u);
	if (op->fails && !existed)
		obj_unlink(a, o);
}

static void res_get(struct pp_mock_call *c, enum azi_kind kind, const char *type,
		    const char *action)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	char id[800];
	struct azi_obj *o;

	snprintf(c->resp->action, sizeof(c->resp->action), "%s", action);
	res_id(c, type, id, sizeof(id));
	if ((o = obj_find(a, kind, id)))
		answer(c, 200, o->j);
	else
		arm_error(c->resp, 404, "ResourceNotFound",
			  "The Resource '%s/%s' under resource group '%s' was not found.", type,
			  pp_mock_param(&c->params, "name"), pp_mock_param(&c->params, "rg"));
}

static void res_delete(struct pp_mock_call *c, enum azi_kind kind, const char *type,
		       const char *action, bool async)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	char id[800];
	struct azi_obj *o;

	snprintf(c->resp->action, sizeof(c->resp->action), "%s", action);
	res_id(c, type, id, sizeof(id));
	if (!(o = obj_find(a, kind, id))) {
		pp_mock_resp_printf(c->resp, 204, JSON_CT, "%s", "");
		return;
	}
	obj_drop_under(a, id); /* role assignments at its scope */
	obj_unlink(a, o);
	pp_mock_count(c->m, "azure_changes", action);
	if (async)
		accepted_location(c, pp_mock_param(&c->params, "sub"));
	else
		pp_mock_resp_printf(c->resp, 200, JSON_CT, "%s", "");
}

static void identity_get(struct pp_mock_call *c)
{
	res_get(c, K_IDENTITY, T_IDENTITY, "UserAssignedIdentities_Get");
}

static void identity_delete(struct pp_mock_call *c)
{
	res_delete(c, K_IDENTITY, T_IDENTITY, "UserAssignedIdentities_Delete", false);
}

static void registry_get(struct pp_mock_call *c)
{
	res_get(c, K_REGISTRY, T_REGISTRY, "Registries_Get");
}

static void registry_delete(struct pp_mock_call *c)
{
	res_delete(c, K_REGISTRY, T_REGISTRY, "Registries_Delete", true);
}

/* ---- role definitions ---- */

static void roledef_id(const struct pp_mock_call *c, char *out, size_t size)
{
	snprintf(out, size,
		 "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s",
		 pp_mock_param(&c->params, "sub"), pp_mock_param(&c->params, "id"));
}

/* Microsoft's documentation of roleDefinitions PUT: the name is a GUID;
 * properties.roleName, permissions (actions) and assignableScopes are
 * required; type is CustomRole; a role name is unique in the tenant. */
static bool roledef_body_ok(struct pp_mock_call *c)
{
	const struct pp_json *p = pp_json_get(c->body, "properties");
	const struct pp_json *perms = pp_json_get(p, "permissions");
	const struct pp_json *scopes = pp_json_get(p, "assignableScopes");
	const char *why = NULL;

	if (!is_guid(pp_mock_param(&c->params, "id")))
		why = "The role definition ID must be a GUID.";
	else if (!pp_json_is(p, PP_JSON_OBJECT))
		why = "properties is required.";
	else if (!pp_json_get_string(p, "roleName") || !*pp_json_get_string(p, "roleName"))
		why = "properties.roleName is required.";
	else if (!pp_json_is(perms, PP_JSON_ARRAY) || !pp_json_at(perms, 0) ||
		 !pp_json_is(pp_json_get(pp_json_at(perms, 0), "actions"), PP_JSON_ARRAY))
		why = "properties.permissions must hold actions.";
	else if (!pp_json_is(scopes, PP_JSON_ARRAY) || !pp_json_at(scopes, 0))
		why = "properties.assignableScopes must name at least one scope.";
	else if (pp_json_get_string(p, "type") &&
		 strcmp(pp_json_get_string(p, "type"), "CustomRole"))
		why = "properties.type must be CustomRole.";
	pp_json_foreach (m, p) {
		static const char *const known[] = {"roleName",	   "description",      "type",
						    "permissions", "assignableScopes", NULL};
		bool ok = false;

		for (size_t i = 0; known[i]; i++)
			ok = ok || !strcmp(m->key, known[i]);
		if (!ok && !why)
			why = "properties has a member roleDefinitions do not take.";
	}
	if (why) {
		arm_error(c->resp, 400, "InvalidRoleDefinition", "%s", why);
		return false;
	}
	return true;
}

static void roledef_put(struct pp_mock_call *c)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	char id[600];
	const char *name = pp_json_get_string(pp_json_get(c->body, "properties"), "roleName");
	struct azi_obj *o;

	snprintf(c->resp->action, sizeof(c->resp->action), "RoleDefinitions_CreateOrUpdate");
	if (!roledef_body_ok(c))
		return;
	roledef_id(c, id, sizeof(id));
	for (struct azi_obj *x = a->objs; x; x = x->next)
		if (x->kind == K_ROLEDEF &&
		    !strcmp(pp_json_get_string(pp_json_get(x->j, "properties"), "roleName") ?: "",
			    name) &&
		    strcasecmp(pp_json_get_string(x->j, "id") ?: "", id)) {
			arm_error(c->resp, 409, "RoleDefinitionWithSameNameExists",
				  "A custom role with the same name already exists in this "
				  "directory.");
			return;
		}
	bool existed = obj_find(a, K_ROLEDEF, id) != NULL;
	struct pp_json *j = pp_json_new(PP_JSON_OBJECT);

	pp_json_set_string(j, "id", id);
	pp_json_set_string(j, "name", pp_mock_param(&c->params, "id"));
	pp_json_set_string(j, "type", "Microsoft.Authorization/roleDefinitions");
	pp_json_set(j, "properties", pp_json_clone(pp_json_get(c->body, "properties")));
	pp_json_set_string(pp_json_get(j, "properties"), "type", "CustomRole");
	if (!(o = obj_put(a, K_ROLEDEF, id, j))) {
		arm_error(c->resp, 500, "InternalServerError", "mock: out of memory");
		return;
	}
	pp_mock_count(c->m, "azure_changes", c->resp->action);
	answer(c, existed ? 200 : 201, o->j);
}

static void roledef_get(struct pp_mock_call *c)
{
	char id[600];
	struct azi_obj *o;

	snprintf(c->resp->action, sizeof(c->resp->action), "RoleDefinitions_Get");
	roledef_id(c, id, sizeof(id));
	if ((o = obj_find(pp_mock_azi_of(c->state), K_ROLEDEF, id)))
		answer(c, 200, o->j);
	else
		arm_error(c->resp, 404, "RoleDefinitionDoesNotExist",
			  "The specified role definition with ID '%s' does not exist.",
			  pp_mock_param(&c->params, "id"));
}

static void roledef_delete(struct pp_mock_call *c)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	char id[600];
	struct azi_obj *o;

	snprintf(c->resp->action, sizeof(c->resp->action), "RoleDefinitions_Delete");
	roledef_id(c, id, sizeof(id));
	if (!(o = obj_find(a, K_ROLEDEF, id))) {
		pp_mock_resp_printf(c->resp, 204, JSON_CT, "%s", "");
		return;
	}
	for (struct azi_obj *x = a->objs; x; x = x->next)
		if (x->kind == K_ASSIGN &&
		    !strcasecmp(
			    pp_json_get_string(pp_json_get(x->j, "properties"), "roleDefinitionId")
				    ?: "",
			    id)) {
			arm_error(c->resp, 409, "RoleDefinitionHasAssignments",
				  "There are existing role assignments referencing role (code: "
				  "RoleDefinitionHasAssignments).");
			return;
		}
	answer(c, 200, o->j);
	obj_unlink(a, o);
	pp_mock_count(c->m, "azure_changes", "RoleDefinitions_Delete");
}

/* ---- role assignments ---- */

/* The assignment's scope from the path: everything before /providers/
 * Microsoft.Authorization. */
static void assign_scope(const struct pp_mock_call *c, char *out, size_t size)
{
	const char *p = c->req->path + strlen("/azure");
	const char *end = strcasestr(p, "/providers/Microsoft.Authorization/roleAssignments/");

	snprintf(out, size, "%.*s", end ? (int)(end - p) : 0, p);
}

/* Known principals: the mock's clients (their tokens' oid) and identities
 * whose principal has replicated. */
static bool principal_known(struct pp_mock_call *c, const char *pid)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	for (struct azi_obj *o = a->objs; o; o = o->next)
		if (o->kind == K_IDENTITY &&
		    !strcasecmp(pp_json_get_string(pp_json_get(o->j, "properties"), "principalId")
					?: "",
				pid))
			return pp_mock_clock(c->m) >= o->ready_at;
	return pp_mock_azure_client_oid(c->state, pid) ||
	       pp_mock_azg_principal_ready(pp_mock_azg_of(c->state), pid, pp_mock_clock(c->m));
}

static bool role_known(struct pp_mock_azi *a, const char *sub, const char *role)
{
	char builtin[300];

	for (size_t i = 0; i < 2; i++) {
		snprintf(builtin, sizeof(builtin),
			 "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s",
			 sub, i ? ROLE_CONTRIBUTOR : ROLE_ACR_PULL);
		if (!strcasecmp(builtin, role))
			return true;
	}
	return obj_find(a, K_ROLEDEF, role) != NULL;
}

static void assign_put(struct pp_mock_call *c)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	const struct pp_json *p = pp_json_get(c->body, "properties");
	const char *pid = pp_json_get_string(p, "principalId");
	const char *role = pp_json_get_string(p, "roleDefinitionId");
	const char *name = pp_mock_param(&c->params, "id");
	char scope[800], id[1000];
	struct azi_obj *o;

	snprintf(c->resp->action, sizeof(c->resp->action), "RoleAssignments_Create");
	assign_scope(c, scope, sizeof(scope));
	snprintf(id, sizeof(id), "%s/providers/Microsoft.Authorization/roleAssignments/%s", scope,
		 name);
	if (!is_guid(name)) {
		arm_error(c->resp, 400, "InvalidRoleAssignmentId",
			  "The role assignment ID '%s' is not valid. The role assignment ID must "
			  "be a GUID.",
			  name);
		return;
	}
	if (!pid || !role) {
		arm_error(c->resp, 400, "InvalidRequestContent",
			  "principalId and roleDefinitionId are required.");
		return;
	}
	if (!role_known(a, pp_mock_param(&c->params, "sub"), role)) {
		arm_error(c->resp, 400, "RoleDefinitionDoesNotExist",
			  "The specified role definition with ID '%s' does not exist.", role);
		return;
	}
	if (!principal_known(c, pid)) {
		arm_error(c->resp, 400, "PrincipalNotFound",
			  "Principal %s does not exist in the directory "
			  "72f988bf-86f1-41af-91ab-2d7cd011db47. Check that you have the correct "
			  "principal ID. If you are creating this principal and then immediately "
			  "assigning a role, this error might be related to a replication delay.",
			  pid);
		return;
	}
	for (struct azi_obj *x = a->objs; x; x = x->next) {
		const struct pp_json *xp = pp_json_get(x->j, "properties");

		if (x->kind != K_ASSIGN)
			continue;
		bool same = !strcasecmp(pp_json_get_string(xp, "scope") ?: "", scope) &&
			    !strcasecmp(pp_json_get_string(xp, "principalId") ?: "", pid) &&
			    !strcasecmp(pp_json_get_string(xp, "roleDefinitionId") ?: "", role);

		if (!same)
			continue;
		if (strcasecmp(pp_json_get_string(x->j, "id") ?: "", id)) {
			arm_error(c->resp, 409, "RoleAssignmentExists",
				  "The role assignment already exists.");
			return;
		}
		answer(c, 201, x->j); /* the same PUT again */
		return;
	}
	struct pp_json *j = pp_json_new(PP_JSON_OBJECT), *props = pp_json_clone(p);

	pp_json_set_string(props, "scope", scope);
	pp_json_set_string(j, "id", id);
	pp_json_set_string(j, "name", name);
	pp_json_set_string(j, "type", "Microsoft.Authorization/roleAssignments");
	pp_json_set(j, "properties", props);
	if (!(o = obj_put(a, K_ASSIGN, id, j))) {
		arm_error(c->resp, 500, "InternalServerError", "mock: out of memory");
		return;
	}
	pp_mock_count(c->m, "azure_changes", c->resp->action);
	answer(c, 201, o->j);
}

static void assign_get(struct pp_mock_call *c)
{
	char scope[800], id[1000];
	struct azi_obj *o;

	snprintf(c->resp->action, sizeof(c->resp->action), "RoleAssignments_Get");
	assign_scope(c, scope, sizeof(scope));
	snprintf(id, sizeof(id), "%s/providers/Microsoft.Authorization/roleAssignments/%s", scope,
		 pp_mock_param(&c->params, "id"));
	if ((o = obj_find(pp_mock_azi_of(c->state), K_ASSIGN, id)))
		answer(c, 200, o->j);
	else
		arm_error(c->resp, 404, "RoleAssignmentNotFound",
			  "The role assignment '%s' is not found.",
			  pp_mock_param(&c->params, "id"));
}

static void assign_delete(struct pp_mock_call *c)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	char scope[800], id[1000];
	struct azi_obj *o;

	snprintf(c->resp->action, sizeof(c->resp->action), "RoleAssignments_Delete");
	assign_scope(c, scope, sizeof(scope));
	snprintf(id, sizeof(id), "%s/providers/Microsoft.Authorization/roleAssignments/%s", scope,
		 pp_mock_param(&c->params, "id"));
	if (!(o = obj_find(a, K_ASSIGN, id))) {
		pp_mock_resp_printf(c->resp, 204, JSON_CT, "%s", "");
		return;
	}
	answer(c, 200, o->j);
	obj_unlink(a, o);
	pp_mock_count(c->m, "azure_changes", "RoleAssignments_Delete");
}

/* RoleAssignments_ListForScope: the assignments at the scope (and, as
 * Azure's atScope() aside, below it), $filter "principalId eq 'ID'" the
 * only filter served. */
static void assign_list(struct pp_mock_call *c)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	const char *filter = pp_mock_arg(c->req, "$filter");
	char scope[800], principal[64] = "";
	struct pp_json *root = pp_json_new(PP_JSON_OBJECT), *list = pp_json_new(PP_JSON_ARRAY);
	size_t n;

	snprintf(c->resp->action, sizeof(c->resp->action), "RoleAssignments_ListForScope");
	snprintf(scope, sizeof(scope), "%s", c->req->path + strlen("/azure"));
	scope[strcspn(scope, "?")] = '\0';
	if (strlen(scope) > strlen("/providers/Microsoft.Authorization/roleAssignments"))
		scope[strlen(scope) -
		      strlen("/providers/Microsoft.Authorization/roleAssignments")] = '\0';
	if (filter && (sscanf(filter, "principalId eq '%63[^']'", principal) != 1)) {
		pp_json_free(root);
		pp_json_free(list);
		arm_error(c->resp, 400, "UnsupportedQuery", "The filter '%s' is not supported.",
			  filter);
		return;
	}
	n = strlen(scope);
	for (struct azi_obj *o = a->objs; o && list; o = o->next) {
		const struct pp_json *p = pp_json_get(o->j, "properties");
		const char *at = pp_json_get_string(p, "scope") ?: "";

		if (o->kind != K_ASSIGN || strncasecmp(at, scope, n) || (at[n] && at[n] != '/') ||
		    (principal[0] &&
		     strcasecmp(pp_json_get_string(p, "principalId") ?: "", principal)))
			continue;
		pp_json_append(list, pp_json_clone(o->j));
	}
	pp_json_set(root, "value", list);
	answer(c, 200, root);
	pp_json_free(root);
}

static void unmatched(struct pp_mock_call *c, bool other_method)
{
	arm_error(c->resp, other_method ? 405 : 404,
		  other_method ? "MethodNotAllowed" : "InvalidResourceType",
		  "mock ARM has no route %s %s", c->req->method, c->req->path);
}

#define SUB  "/azure/subscriptions/{sub}"
#define RG   SUB "/resourcegroups/{rg}"
#define RA   "/providers/Microsoft.Authorization/roleAssignments/{id}"
#define IDN  RG "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
#define REG  RG "/providers/Microsoft.ContainerRegistry/registries/{name}"
#define REGA RG "/providers/Microsoft.ContainerRegistry/registries/{reg}" RA
#define DEF  SUB "/providers/Microsoft.Authorization/roleDefinitions/{id}"
static const struct pp_mock_route routes[] = {
	{"GET", SUB "/providers/{ns}", provider_get, .changes = false},
	{"POST", SUB "/providers/{ns}/register", provider_register, .validate = v_register,
	 .changes = true},
	{"POST", SUB "/providers/{ns}/unregister", provider_unregister, .changes = true},
	{"GET", SUB "/operationresults/{op}", op_location, .changes = false},
	{"GET", SUB "/providers/Microsoft.ContainerRegistry/locations/{loc}/operationResults/{op}",
	 op_async, .changes = false},
	{"PUT", DEF, roledef_put, .changes = true},
	{"GET", DEF, roledef_get, .changes = false},
	{"DELETE", DEF, roledef_delete, .changes = true},
	{"GET", RG, rg_get, .changes = false},
	{"PUT", RG, rg_put, .validate = v_rg_put, .changes = true},
	{"DELETE", RG, rg_delete, .changes = true},
	{"GET", RG "/resources", rg_resources, .changes = false},
	{"GET", RG "/providers/Microsoft.Authorization/roleAssignments", assign_list,
	 .changes = false},
	{"GET",
	 RG "/providers/Microsoft.ContainerRegistry/registries/{reg}/providers/"
	    "Microsoft.Authorization/roleAssignments",
	 assign_list, .changes = false},
	{"PUT", RG RA, assign_put, .validate = v_assign_put, .changes = true},
	{"GET", RG RA, assign_get, .changes = false},
	{"DELETE", RG RA, assign_delete, .changes = true},
	{"PUT", IDN, identity_put, .validate = v_identity_put, .changes = true},
	{"GET", IDN, identity_get, .changes = false},
	{"DELETE", IDN, identity_delete, .changes = true},
	{"PUT", REGA, assign_put, .validate = v_assign_put, .changes = true},
	{"GET", REGA, assign_get, .changes = false},
	{"DELETE", REGA, assign_delete, .changes = true},
	{"PUT", REG, registry_put, .validate = v_registry_put, .changes = true},
	{"GET", REG, registry_get, .changes = false},
	{"DELETE", REG, registry_delete, .changes = true},
	{NULL},
};

const struct pp_mock_router pp_mock_azi_router = {
	.api = "arminfra",
	.nocase = true,
	.json_body = true,
	.locked = true,
	.routes = routes,
	.admit = admit,
	.unmatched = unmatched,
};

/* ---- /azure/control/infra ---- */

/* GET: every object by kind (providers with their state). */
static void control_dump(struct pp_mock_call *c)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	struct pp_json *root = pp_json_new(PP_JSON_OBJECT);

	snprintf(c->resp->action, sizeof(c->resp->action), "control/infra");
	for (int k = 0; root && k < K_NKINDS; k++)
		pp_json_set(root, kind_names[k], pp_json_new(PP_JSON_ARRAY));
	for (struct azi_obj *o = a->objs; root && o; o = o->next) {
		if (o->kind == K_PROVIDER &&
		    !strcmp(pp_json_get_string(o->j, "registrationState") ?: "", "Registering") &&
		    pp_mock_clock(c->m) >= o->ready_at)
			pp_json_set_string(o->j, "registrationState", "Registered");
		pp_json_append(pp_json_get(root, kind_names[o->kind]), pp_json_clone(o->j));
	}
	answer(c, 200, root);
	pp_json_free(root);
}

/* POST {"subscription": S} (S is empty from now on: only what is made or
 * planted), {"provider": "S/NAMESPACE"} (registered before pushpool),
 * {"resource_group": {"subscription", "name", "location", "tags"}},
 * {"identity" | "registry": {"subscription", "resource_group", "name",
 * "location", "tags"}}: made by someone else. */
static void control_plant(struct pp_mock_call *c)
{
	struct pp_mock_azi *a = pp_mock_azi_of(c->state);
	const struct pp_json *b = c->body, *r;
	const char *s;
	char id[800];

	snprintf(c->resp->action, sizeof(c->resp->action), "control/infra");
	if (!b) {
		pp_mock_resp_printf(c->resp, 400, "text/plain", "infra: want a JSON object\n");
		return;
	}
	if ((s = pp_json_get_string(b, "subscription")) && !sub_managed(a, s)) {
		struct azi_sub *n = calloc(1, sizeof(*n));

		if (n && (n->id = strdup(s))) {
			n->next = a->subs;
			a->subs = n;
		} else {
			free(n);
		}
	}
	if ((s = pp_json_get_string(b, "provider")) && strchr(s, '/')) {
		char sub[128];

		snprintf(sub, sizeof(sub), "%.*s", (int)(strchr(s, '/') - s), s);
		snprintf(id, sizeof(id), "/subscriptions/%s/providers/%s", sub, strchr(s, '/') + 1);
		obj_put(a, K_PROVIDER, id, provider_json(sub, strchr(s, '/') + 1, "Registered"));
	}
	if ((r = pp_json_get(b, "resource_group"))) {
		struct pp_json *j = pp_json_new(PP_JSON_OBJECT);

		snprintf(id, sizeof(id), "/subscriptions/%s/resourceGroups/%s",
			 pp_json_get_string(r, "subscription") ?: "",
			 pp_json_get_string(r, "name") ?: "");
		set_tracked(j, id, pp_json_get_string(r, "name") ?: "",
			    "Microsoft.Resources/resourceGroups", r);
		obj_put(a, K_RG, id, j);
	}
	for (int k = 0; k < 2; k++) {
		if (!(r = pp_json_get(b, k ? "registry" : "identity")))
			continue;
		struct pp_json *j = pp_json_new(PP_JSON_OBJECT);
		const char *type = k ? T_REGISTRY : T_IDENTITY;

		snprintf(id, sizeof(id), "/subscriptions/%s/resourceGroups/%s/providers/%s/%s",
			 pp_json_get_string(r, "subscription") ?: "",
			 pp_json_get_string(r, "resource_group") ?: "", type,
			 pp_json_get_string(r, "name") ?: "");
		set_tracked(j, id, pp_json_get_string(r, "name") ?: "", type, r);
		obj_put(a, k ? K_REGISTRY : K_IDENTITY, id, j);
	}
	if ((r = pp_json_get(b, "role_assignment"))) {
		/* {"scope", "name", "role", "principal", "type"}: granted by hand. */
		struct pp_json *j = pp_json_new(PP_JSON_OBJECT), *p = pp_json_new(PP_JSON_OBJECT);

		snprintf(id, sizeof(id), "%s/providers/Microsoft.Authorization/roleAssignments/%s",
			 pp_json_get_string(r, "scope") ?: "", pp_json_get_string(r, "name") ?: "");
		pp_json_set_string(p, "scope", pp_json_get_string(r, "scope") ?: "");
		pp_json_set_string(p, "roleDefinitionId", pp_json_get_string(r, "role") ?: "");
		pp_json_set_string(p, "principalId", pp_json_get_string(r, "principal") ?: "");
		pp_json_set_string(p, "principalType", pp_json_get_string(r, "type") ?: "User");
		pp_json_set_string(j, "id", id);
		pp_json_set_string(j, "name", pp_json_get_string(r, "name") ?: "");
		pp_json_set_string(j, "type", "Microsoft.Authorization/roleAssignments");
		pp_json_set(j, "properties", p);
		obj_put(a, K_ASSIGN, id, j);
	}
	pp_mock_resp_printf(c->resp, 200, "text/plain", "ok\n");
}

static const struct pp_mock_route control_routes[] = {
	{"GET", "/azure/control/infra", control_dump, .changes = false},
	{"POST", "/azure/control/infra", control_plant, .changes = true},
	{NULL},
};

const struct pp_mock_router pp_mock_azi_control_router = {
	.api = "control",
	.locked = true,
	.json_body = true,
	.routes = control_routes,
};
