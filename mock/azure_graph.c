/* Mock Microsoft Graph (v1.0), what `pushpool provision apply --create-key`
 * calls for an ACI pool: applications (create, get by the alternate key
 * uniqueName, delete), their passwords (addPassword, removePassword) and
 * service principals (create, get by appId). A password added here is a
 * client secret the mock's Entra token endpoint accepts for the app's
 * appId, and the app's service principal has the object id the app's
 * tokens carry; it becomes known to role assignments azure.replication
 * seconds after it is made, as a new principal replicates.
 *
 * Graph publishes no OpenAPI file in the reference folder: requests are
 * checked by hand-written rules from Microsoft's Graph documentation
 * (application: create, upsert, addPassword, removePassword;
 * servicePrincipal: create; the alternate keys uniqueName and appId):
 * the required members (displayName; appId; keyId), only the members
 * those pages list, the types they give. Errors are Graph's:
 * {"error": {"code": "Request_BadRequest" | "Request_ResourceNotFound",
 * "message": ...}}. Changes are counted in the keyed counter graph_changes. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/time.h"
#include "mock/azure.h"
#include "mock/mock.h"

#define MAX_APPS      1000
#define MAX_PASSWORDS 16
#define JSON_CT	      "application/json;odata.metadata=minimal"

struct azg_password {
	char key_id[37];
	char display[128];
	char end[40];
	char secret[48]; /* registered as secret */
};

struct azg_app {
	struct azg_app *next;
	char id[37], app_id[37];
	struct pp_json *j; /* as written, without passwordCredentials */
	struct azg_password pw[MAX_PASSWORDS];
	size_t npw;
};

struct azg_sp {
	struct azg_sp *next;
	char id[37], app_id[37];
	struct pp_json *j;
	double ready_at;
};

struct pp_mock_azg {
	struct azg_app *apps;
	struct azg_sp *sps;
	size_t n;
};

struct pp_mock_azg *pp_mock_azg_new(void)
{
	return calloc(1, sizeof(struct pp_mock_azg));
}

void pp_mock_azg_reset(struct pp_mock_azg *g)
{
	if (!g)
		return;
	while (g->apps) {
		struct azg_app *a = g->apps;

		g->apps = a->next;
		pp_json_free(a->j);
		free(a);
	}
	while (g->sps) {
		struct azg_sp *s = g->sps;

		g->sps = s->next;
		pp_json_free(s->j);
		free(s);
	}
	g->n = 0;
}

void pp_mock_azg_free(struct pp_mock_azg *g)
{
	pp_mock_azg_reset(g);
	free(g);
}

void pp_mock_azg_stats(const struct pp_mock_azg *g, struct pp_json *live)
{
	long long apps = 0, secrets = 0, sps = 0;

	for (const struct azg_app *a = g->apps; a; a = a->next) {
		apps++;
		secrets += (long long)a->npw;
	}
	for (const struct azg_sp *s = g->sps; s; s = s->next)
		sps++;
	pp_json_set_int(live, "live_graph_applications", apps);
	pp_json_set_int(live, "live_graph_client_secrets", secrets);
	pp_json_set_int(live, "live_graph_service_principals", sps);
}

bool pp_mock_azg_principal_ready(const struct pp_mock_azg *g, const char *pid, double now)
{
	for (const struct azg_sp *s = g->sps; s; s = s->next)
		if (!strcasecmp(s->id, pid))
			return now >= s->ready_at;
	return false;
}

/* ---- answers ---- */

static void graph_error(struct pp_mock_resp *resp, int status, const char *code, const char *fmt,
			...) __attribute__((format(printf, 4, 5)));

static void graph_error(struct pp_mock_resp *resp, int status, const char *code, const char *fmt,
			...)
{
	char msg[512];
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

static void new_uuid(struct pp_mock *m, char out[37])
{
	char h[33];

	pp_mock_random_hex(m, h, 32);
	snprintf(out, 37, "%.8s-%.4s-4%.3s-8%.3s-%.12s", h, h + 8, h + 13, h + 17, h + 20);
}

static bool admit(struct pp_mock_call *c)
{
	return pp_mock_azure_admit(c, "graph", false);
}

/* Members a request may carry, with their JSON types ('s' string, 'a'
 * array of strings, 'b' boolean, 'o' object); the documentation's. */
struct member {
	const char *name;
	char type;
};

static bool members_ok(struct pp_mock_call *c, const struct pp_json *obj,
		       const struct member *allowed, const char *what)
{
	if (!pp_json_is(obj, PP_JSON_OBJECT)) {
		graph_error(c->resp, 400, "Request_BadRequest", "%s: a JSON object is required.",
			    what);
		return false;
	}
	pp_json_foreach (m, obj) {
		const struct member *a = allowed;

		while (a->name && strcmp(a->name, m->key))
			a++;
		if (!a->name) {
			graph_error(c->resp, 400, "Request_BadRequest",
				    "Invalid property '%s' on %s.", m->key, what);
			return false;
		}
		bool ok = a->type == 's'   ? pp_json_is(m, PP_JSON_STRING)
			  : a->type == 'b' ? pp_json_is(m, PP_JSON_BOOL)
			  : a->type == 'o' ? pp_json_is(m, PP_JSON_OBJECT)
					   : pp_json_is(m, PP_JSON_ARRAY);

		if (ok && a->type == 'a')
			pp_json_foreach (e, m)
				ok = ok && pp_json_is(e, PP_JSON_STRING);
		if (!ok) {
			graph_error(c->resp, 400, "Request_BadRequest",
				    "Invalid value for property '%s' on %s.", m->key, what);
			return false;
		}
	}
	return true;
}

/* ---- applications ---- */

static struct azg_app *app_by(struct pp_mock_azg *g, const char *id, const char *unique)
{
	for (struct azg_app *a = g->apps; a; a = a->next)
		if ((id && !strcasecmp(a->id, id)) ||
		    (unique &&
		     !strcasecmp(pp_json_get_string(a->j, "uniqueName") ?: "\x01", unique)))
			return a;
	return NULL;
}

/* The application as Graph shows it: its passwords without their text. */
static struct pp_json *app_view(const struct azg_app *a)
{
	struct pp_json *j = pp_json_clone(a->j), *pws = pp_json_new(PP_JSON_ARRAY);

	for (size_t i = 0; pws && i < a->npw; i++) {
		struct pp_json *p = pp_json_new(PP_JSON_OBJECT);
		char hint[4];

		snprintf(hint, sizeof(hint), "%.3s", a->pw[i].secret);
		pp_json_set_string(p, "keyId", a->pw[i].key_id);
		pp_json_set_string(p, "displayName", a->pw[i].display);
		pp_json_set_string(p, "endDateTime", a->pw[i].end);
		pp_json_set_string(p, "hint", hint);
		pp_json_append(pws, p);
	}
	pp_json_set(j, "passwordCredentials", pws);
	return j;
}

static void answer(struct pp_mock_call *c, int status, struct pp_json *j)
{
	if (!j || pp_mock_resp_json(c->resp, status, JSON_CT, j))
		graph_error(c->resp, 500, "generalException", "mock: out of memory");
	pp_json_free(j);
}

static void app_create(struct pp_mock_call *c)
{
	static const struct member allowed[] = {
		{"displayName", 's'}, {"uniqueName", 's'},     {"tags", 'a'}, {"notes", 's'},
		{"description", 's'}, {"signInAudience", 's'}, {NULL, 0},
	};
	struct pp_mock_azg *g = pp_mock_azg_of(c->state);
	const char *unique = pp_json_get_string(c->body, "uniqueName");
	struct azg_app *a = NULL;

	snprintf(c->resp->action, sizeof(c->resp->action), "application.create");
	if (!members_ok(c, c->body, allowed, "application"))
		return;
	if (!pp_json_get_string(c->body, "displayName")) {
		graph_error(c->resp, 400, "Request_BadRequest",
			    "Property displayName is required.");
		return;
	}
	if (unique && app_by(g, NULL, unique)) {
		graph_error(c->resp, 400, "Request_BadRequest",
			    "Another object with the same value for property uniqueName already "
			    "exists.");
		return;
	}
	if (g->n >= MAX_APPS || !(a = calloc(1, sizeof(*a))) || !(a->j = pp_json_clone(c->body))) {
		free(a);
		graph_error(c->resp, 500, "generalException", "mock: out of memory");
		return;
	}
	new_uuid(c->m, a->id);
	new_uuid(c->m, a->app_id);
	pp_json_set_string(a->j, "id", a->id);
	pp_json_set_string(a->j, "appId", a->app_id);
	a->next = g->apps;
	g->apps = a;
	g->n++;
	pp_mock_count(c->m, "graph_changes", "application.create");
	answer(c, 201, app_view(a));
}

/* "applications(uniqueName='X')" or "servicePrincipals(appId='X')": the
 * alternate-key addressing Graph documents. */
static bool alt_key(const char *seg, const char *entity, const char *key, char *out, size_t size)
{
	size_t n = strlen(entity), k = strlen(key);
	const char *v;
	size_t len;

	if (strncmp(seg, entity, n) || seg[n] != '(' || strncmp(seg + n + 1, key, k) ||
	    strncmp(seg + n + 1 + k, "='", 2))
		return false;
	v = seg + n + 1 + k + 2;
	len = strcspn(v, "'");
	if (strcmp(v + len, "')") || len >= size)
		return false;
	snprintf(out, size, "%.*s", (int)len, v);
	return true;
}

static struct azg_sp *sp_by_app(struct pp_mock_azg *g, const char *app_id)
{
	for (struct azg_sp *s = g->sps; s; s = s->next)
		if (!strcasecmp(s->app_id, app_id))
			return s;
	return NULL;
}

static void alt_get(struct pp_mock_call *c)
{
	struct pp_mock_azg *g = pp_mock_azg_of(c->state);
	const char *seg = pp_mock_param(&c->params, "key");
	char v[256];

	snprintf(c->resp->action, sizeof(c->resp->action), "get");
	if (alt_key(seg, "applications", "uniqueName", v, sizeof(v))) {
		struct azg_app *a = app_by(g, NULL, v);

		if (a)
			answer(c, 200, app_view(a));
		else
			graph_error(c->resp, 404, "Request_ResourceNotFound",
				    "Resource '%s' does not exist or one of its queried "
				    "reference-property objects are not present.",
				    v);
		return;
	}
	if (alt_key(seg, "servicePrincipals", "appId", v, sizeof(v))) {
		struct azg_sp *s = sp_by_app(g, v);

		if (s)
			answer(c, 200, pp_json_clone(s->j));
		else
			graph_error(c->resp, 404, "Request_ResourceNotFound",
				    "Resource '%s' does not exist or one of its queried "
				    "reference-property objects are not present.",
				    v);
		return;
	}
	graph_error(c->resp, 400, "BadRequest", "Resource not found for the segment '%s'.", seg);
}

static void app_delete(struct pp_mock_call *c)
{
	struct pp_mock_azg *g = pp_mock_azg_of(c->state);
	const char *id = pp_mock_param(&c->params, "id");

	snprintf(c->resp->action, sizeof(c->resp->action), "application.delete");
	for (struct azg_app **pp = &g->apps; *pp; pp = &(*pp)->next) {
		struct azg_app *a = *pp;

		if (strcasecmp(a->id, id))
			continue;
		/* Its service principal and its secrets go with it. */
		for (struct azg_sp **sp = &g->sps; *sp; sp = &(*sp)->next)
			if (!strcasecmp((*sp)->app_id, a->app_id)) {
				struct azg_sp *s = *sp;

				*sp = s->next;
				pp_json_free(s->j);
				free(s);
				break;
			}
		pp_mock_azure_client_set(c->state, a->app_id, NULL);
		*pp = a->next;
		pp_json_free(a->j);
		free(a);
		g->n--;
		pp_mock_count(c->m, "graph_changes", "application.delete");
		pp_mock_resp_printf(c->resp, 204, JSON_CT, "%s", "");
		return;
	}
	graph_error(c->resp, 404, "Request_ResourceNotFound", "Resource '%s' does not exist.", id);
}

static void add_password(struct pp_mock_call *c)
{
	static const struct member outer[] = {{"passwordCredential", 'o'}, {NULL, 0}};
	static const struct member inner[] = {
		{"displayName", 's'}, {"endDateTime", 's'}, {"startDateTime", 's'}, {NULL, 0}};
	struct pp_mock_azg *g = pp_mock_azg_of(c->state);
	struct azg_app *a = app_by(g, pp_mock_param(&c->params, "id"), NULL);
	const struct pp_json *pc = pp_json_get(c->body, "passwordCredential");
	struct azg_password *p;
	char hex[41], ts[PP_TIME_LEN];
	int64_t end_ms;

	snprintf(c->resp->action, sizeof(c->resp->action), "application.addPassword");
	if (!members_ok(c, c->body ? c->body : pp_json_new(PP_JSON_OBJECT), outer, "addPassword") ||
	    (pc && !members_ok(c, pc, inner, "passwordCredential")))
		return;
	if (!a) {
		graph_error(c->resp, 404, "Request_ResourceNotFound",
			    "Resource '%s' does not exist.", pp_mock_param(&c->params, "id"));
		return;
	}
	const char *end = pp_json_get_string(pc, "endDateTime");

	if (end && pp_time_parse(end, 0, &end_ms)) {
		graph_error(c->resp, 400, "Request_BadRequest",
			    "Invalid value for property 'endDateTime'.");
		return;
	}
	if (a->npw == MAX_PASSWORDS) {
		graph_error(c->resp, 400, "Request_BadRequest",
			    "Too many password credentials on the application.");
		return;
	}
	p = &a->pw[a->npw++];
	memset(p, 0, sizeof(*p));
	new_uuid(c->m, p->key_id);
	snprintf(p->display, sizeof(p->display), "%s", pp_json_get_string(pc, "displayName") ?: "");
	if (!end) {
		/* Graph's default: two years from now. */
		pp_time_format(
			(int64_t)(pp_mock_wall(c->m, pp_mock_clock(c->m)) + 2 * 365 * 86400.0) *
				1000,
			true, ts);
		end = ts;
	}
	snprintf(p->end, sizeof(p->end), "%s", end);
	pp_mock_random_hex(c->m, hex, 40);
	snprintf(p->secret, sizeof(p->secret), "Mk8Q~%s", hex);
	pp_secret_register(p->secret);
	pp_mock_azure_client_set(c->state, a->app_id, p->secret);
	pp_mock_count(c->m, "graph_changes", "application.addPassword");
	struct pp_json *r = pp_json_new(PP_JSON_OBJECT);

	pp_json_set_string(r, "keyId", p->key_id);
	pp_json_set_string(r, "displayName", p->display);
	pp_json_set_string(r, "endDateTime", p->end);
	pp_json_set_string(r, "secretText", p->secret);
	answer(c, 200, r);
}

static void remove_password(struct pp_mock_call *c)
{
	static const struct member allowed[] = {{"keyId", 's'}, {NULL, 0}};
	struct pp_mock_azg *g = pp_mock_azg_of(c->state);
	struct azg_app *a = app_by(g, pp_mock_param(&c->params, "id"), NULL);
	const char *key = pp_json_get_string(c->body, "keyId");

	snprintf(c->resp->action, sizeof(c->resp->action), "application.removePassword");
	if (!members_ok(c, c->body, allowed, "removePassword"))
		return;
	if (!key) {
		graph_error(c->resp, 400, "Request_BadRequest", "Property keyId is required.");
		return;
	}
	if (!a) {
		graph_error(c->resp, 404, "Request_ResourceNotFound",
			    "Resource '%s' does not exist.", pp_mock_param(&c->params, "id"));
		return;
	}
	for (size_t i = 0; i < a->npw; i++)
		if (!strcasecmp(a->pw[i].key_id, key)) {
			a->pw[i] = a->pw[--a->npw];
			/* The mock's Entra keeps one secret per app: the newest left. */
			pp_mock_azure_client_set(c->state, a->app_id,
						 a->npw ? a->pw[a->npw - 1].secret : NULL);
			pp_mock_count(c->m, "graph_changes", "application.removePassword");
			pp_mock_resp_printf(c->resp, 204, JSON_CT, "%s", "");
			return;
		}
	graph_error(c->resp, 400, "Request_BadRequest", "No password with keyId %s.", key);
}

/* ---- service principals ---- */

static void sp_create(struct pp_mock_call *c)
{
	static const struct member allowed[] = {
		{"appId", 's'},	      {"tags", 'a'},	       {"notes", 's'},
		{"description", 's'}, {"accountEnabled", 'b'}, {NULL, 0},
	};
	struct pp_mock_azg *g = pp_mock_azg_of(c->state);
	const char *app_id = pp_json_get_string(c->body, "appId");
	struct azg_sp *s;
	struct azg_app *a = NULL;
	double repl = 0;

	snprintf(c->resp->action, sizeof(c->resp->action), "servicePrincipal.create");
	if (!members_ok(c, c->body, allowed, "servicePrincipal"))
		return;
	if (!app_id) {
		graph_error(c->resp, 400, "Request_BadRequest", "Property appId is required.");
		return;
	}
	for (a = g->apps; a && strcasecmp(a->app_id, app_id); a = a->next)
		;
	if (!a) {
		graph_error(c->resp, 400, "Request_BadRequest",
			    "The appId '%s' of the service principal does not reference a valid "
			    "application object.",
			    app_id);
		return;
	}
	if (sp_by_app(g, app_id)) {
		graph_error(c->resp, 409, "Request_MultipleObjectsWithSameKeyValue",
			    "The service principal cannot be created, updated, or restored because "
			    "the service principal name %s is already in use.",
			    app_id);
		return;
	}
	if (!(s = calloc(1, sizeof(*s))) || !(s->j = pp_json_clone(c->body))) {
		free(s);
		graph_error(c->resp, 500, "generalException", "mock: out of memory");
		return;
	}
	/* The object id the app's own tokens carry (oid). */
	pp_mock_azure_oid(app_id, s->id);
	snprintf(s->app_id, sizeof(s->app_id), "%s", app_id);
	pp_json_set_string(s->j, "id", s->id);
	pp_json_set_string(s->j, "servicePrincipalType", "Application");
	pp_mock_behaviour(c->m, "azure.replication", &repl);
	s->ready_at = pp_mock_clock(c->m) + repl;
	s->next = g->sps;
	g->sps = s;
	pp_mock_count(c->m, "graph_changes", "servicePrincipal.create");
	answer(c, 201, pp_json_clone(s->j));
}

static void unmatched(struct pp_mock_call *c, bool other_method)
{
	graph_error(c->resp, other_method ? 405 : 400, "BadRequest",
		    "mock Graph has no route %s %s", c->req->method, c->req->path);
}

#define G "/azure/graph/v1.0"
static const struct pp_mock_route routes[] = {
	{"POST", G "/applications", app_create, .changes = true},
	{"POST", G "/servicePrincipals", sp_create, .changes = true},
	{"POST", G "/applications/{id}/addPassword", add_password, .changes = true},
	{"POST", G "/applications/{id}/removePassword", remove_password, .changes = true},
	{"DELETE", G "/applications/{id}", app_delete, .changes = true},
	{"GET", G "/{key}", alt_get, .changes = false},
	{NULL},
};
#undef G

const struct pp_mock_router pp_mock_azg_router = {
	.api = "graph",
	.scope = "/azure/graph",
	.json_body = true,
	.locked = true,
	.routes = routes,
	.admit = admit,
	.unmatched = unmatched,
};

/* GET /azure/control/graph: {"applications": [... with passwordCredentials
 * (no secret text)], "service_principals": [...]}. */
static void control_dump(struct pp_mock_call *c)
{
	struct pp_mock_azg *g = pp_mock_azg_of(c->state);
	struct pp_json *root = pp_json_new(PP_JSON_OBJECT), *apps = pp_json_new(PP_JSON_ARRAY);
	struct pp_json *sps = pp_json_new(PP_JSON_ARRAY);

	snprintf(c->resp->action, sizeof(c->resp->action), "control/graph");
	for (struct azg_app *a = g->apps; apps && a; a = a->next)
		pp_json_append(apps, app_view(a));
	for (struct azg_sp *s = g->sps; sps && s; s = s->next)
		pp_json_append(sps, pp_json_clone(s->j));
	pp_json_set(root, "applications", apps);
	pp_json_set(root, "service_principals", sps);
	answer(c, 200, root);
}

static const struct pp_mock_route control_routes[] = {
	{"GET", "/azure/control/graph", control_dump, .changes = false},
	{NULL},
};

const struct pp_mock_router pp_mock_azg_control_router = {
	.api = "control",
	.locked = true,
	.routes = control_routes,
};
