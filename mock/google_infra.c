/* Mock Google, the APIs `pushpool provision` calls for Cloud Run pools:
 * Service Usage (enable and disable as long-running operations, operations
 * get), IAM service accounts, Resource Manager project IAM policies (with
 * etags: a write carrying a stale etag is refused 409 ABORTED, as Google
 * does) and Artifact Registry repositories (create and delete as
 * operations). Every request passes the bearer check and fault injection
 * under its API's name, and every body is judged against Google's protos
 * (mock/spec_gate.c, "gcpinfra"). Each change is counted in the keyed
 * counter gcp_changes (by method); /google/control/infra shows the whole
 * state, plants resources pushpool did not make, and simulates a concurrent
 * writer of the IAM policy. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "lib/time.h"
#include "mock/google.h"
#include "mock/mock.h"
#include "mock/spec.h"

#define MAX_OBJS 10000

/* A named resource kept as the JSON the API answers. */
struct gi_obj {
	struct gi_obj *next;
	char *name;
	struct pp_json *j;
};

struct gi_op {
	struct gi_op *next;
	char *name;
	char *json;	 /* not done */
	char *done_json; /* from done_at on */
	double done_at;
};

struct gi_policy {
	struct gi_policy *next;
	char *project;
	struct pp_json *bindings; /* array */
	unsigned long version;	  /* bumped by every write: the etag */
};

struct pp_mock_gi {
	struct gi_obj *services, *repos, *sas, *keys;
	struct gi_policy *policies;
	struct gi_op *ops;
	size_t nobjs;
	int race;	      /* setIamPolicy calls that meet a concurrent writer */
	unsigned long racers; /* bindings the concurrent writer added */
};

/* ---- state ---- */

static void objs_free(struct gi_obj *o)
{
	while (o) {
		struct gi_obj *next = o->next;

		free(o->name);
		pp_json_free(o->j);
		free(o);
		o = next;
	}
}

void pp_mock_gi_reset(struct pp_mock_gi *g)
{
	if (!g)
		return;
	objs_free(g->services);
	objs_free(g->repos);
	objs_free(g->sas);
	objs_free(g->keys);
	while (g->policies) {
		struct gi_policy *p = g->policies;

		g->policies = p->next;
		free(p->project);
		pp_json_free(p->bindings);
		free(p);
	}
	while (g->ops) {
		struct gi_op *o = g->ops;

		g->ops = o->next;
		free(o->name);
		free(o->json);
		free(o->done_json);
		free(o);
	}
	memset(g, 0, sizeof(*g));
}

struct pp_mock_gi *pp_mock_gi_new(void)
{
	return calloc(1, sizeof(struct pp_mock_gi));
}

void pp_mock_gi_free(struct pp_mock_gi *g)
{
	pp_mock_gi_reset(g);
	free(g);
}

static struct gi_obj *obj_find(struct gi_obj *list, const char *name)
{
	for (; list; list = list->next)
		if (!strcmp(list->name, name))
			return list;
	return NULL;
}

static struct gi_obj *obj_add(struct pp_mock_gi *g, struct gi_obj **list, const char *name,
			      struct pp_json *j)
{
	struct gi_obj *o;

	if (g->nobjs >= MAX_OBJS || !j || !(o = calloc(1, sizeof(*o))) ||
	    !(o->name = strdup(name))) {
		pp_json_free(j);
		return NULL;
	}
	o->j = j;
	o->next = *list;
	*list = o;
	g->nobjs++;
	return o;
}

static bool obj_del(struct pp_mock_gi *g, struct gi_obj **list, const char *name)
{
	for (struct gi_obj **pp = list; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->name, name)) {
			struct gi_obj *o = *pp;

			*pp = o->next;
			o->next = NULL;
			objs_free(o);
			g->nobjs--;
			return true;
		}
	return false;
}

static struct gi_policy *policy_of(struct pp_mock_gi *g, const char *project)
{
	struct gi_policy *p;

	for (p = g->policies; p; p = p->next)
		if (!strcmp(p->project, project))
			return p;
	if (!(p = calloc(1, sizeof(*p))) || !(p->project = strdup(project)) ||
	    !(p->bindings = pp_json_new(PP_JSON_ARRAY))) {
		if (p)
			free(p->project);
		free(p);
		return NULL;
	}
	p->version = 1;
	p->next = g->policies;
	g->policies = p;
	return p;
}

static void etag_of(const struct gi_policy *p, char *out, size_t size)
{
	/* Opaque to clients: base64 of "mock-etag-N" would do; any stable
	 * text that changes with every write is what Google's contract says. */
	snprintf(out, size, "BwY%08lx", p->version);
}

static size_t count_members(const struct pp_json *bindings)
{
	size_t n = 0;

	for (size_t i = 0; pp_json_at(bindings, i); i++) {
		const struct pp_json *ms = pp_json_get(pp_json_at(bindings, i), "members");

		for (size_t k = 0; pp_json_at(ms, k); k++)
			n++;
	}
	return n;
}

void pp_mock_gi_stats(struct pp_mock_gi *g, struct pp_json *live)
{
	long long services = 0, repos = 0, sas = 0, members = 0, keys = 0;

	for (struct gi_obj *o = g->services; o; o = o->next)
		services += !strcmp(pp_json_get_string(o->j, "state") ?: "", "ENABLED");
	for (struct gi_obj *o = g->repos; o; o = o->next)
		repos++;
	for (struct gi_obj *o = g->sas; o; o = o->next)
		sas++;
	for (struct gi_obj *o = g->keys; o; o = o->next)
		keys++;
	for (struct gi_policy *p = g->policies; p; p = p->next)
		members += (long long)count_members(p->bindings);
	pp_json_set_int(live, "live_gcp_services_enabled", services);
	pp_json_set_int(live, "live_gcp_repositories", repos);
	pp_json_set_int(live, "live_gcp_service_accounts", sas);
	pp_json_set_int(live, "live_gcp_iam_members", members);
	pp_json_set_int(live, "live_gcp_service_account_keys", keys);
}

/* ---- operations ---- */

/* Answer a not-yet-done Operation named name wrapping response (owned);
 * GET .../NAME answers it done once the gcp.lro behaviour's seconds have
 * passed on the mock's clock (at once when the behaviour is off). */
static int op_error(struct pp_json *op, const char *message);

/* failure (may be NULL): the operation ends with this google.rpc.Status
 * message (code 9, FAILED_PRECONDITION) instead of the response. */
static void op_answer_or_fail(struct pp_mock_call *c, const char *name, const char *type,
			      struct pp_json *response, const char *failure)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);
	struct pp_json *op = pp_json_new(PP_JSON_OBJECT), *meta = pp_json_new(PP_JSON_OBJECT);
	struct gi_op *o = calloc(1, sizeof(*o));
	double secs = 0;

	pp_mock_behaviour(c->m, "gcp.lro", &secs);
	if (!op || !meta || !o || !response || pp_json_set_string(op, "name", name) ||
	    pp_json_set_string(meta, "@type", "type.googleapis.com/google.protobuf.Empty") ||
	    pp_json_set(op, "metadata", meta) || pp_json_set_bool(op, "done", false) ||
	    !(o->json = pp_json_to_string(op, PP_JSON_COMPACT)) ||
	    pp_json_set_string(response, "@type", type) || pp_json_set_bool(op, "done", true) ||
	    (failure ? op_error(op, failure) : pp_json_set(op, "response", response)) ||
	    !(o->done_json = pp_json_to_string(op, PP_JSON_COMPACT)) || !(o->name = strdup(name))) {
		if (!pp_json_get(op, "response"))
			pp_json_free(response);
		if (!pp_json_get(op, "metadata"))
			pp_json_free(meta);
		pp_json_free(op);
		if (o) {
			free(o->json);
			free(o->done_json);
			free(o->name);
			free(o);
		}
		pp_mock_google_error(c->resp, 500, NULL, "mock: out of memory");
		return;
	}
	if (failure)
		pp_json_free(response);
	pp_json_free(op);
	o->done_at = pp_mock_clock(c->m) + secs;
	o->next = g->ops;
	g->ops = o;
	pp_mock_resp_printf(c->resp, 200, "application/json", "%s", o->json);
}

static void op_answer(struct pp_mock_call *c, const char *name, const char *type,
		      struct pp_json *response)
{
	op_answer_or_fail(c, name, type, response, NULL);
}

static int op_error(struct pp_json *op, const char *message)
{
	struct pp_json *e = pp_json_new(PP_JSON_OBJECT);

	if (!e || pp_json_set_int(e, "code", 9) || pp_json_set_string(e, "message", message) ||
	    pp_json_set(op, "error", e)) {
		pp_json_free(e);
		return PP_ENOMEM;
	}
	return 0;
}

static void op_get(struct pp_mock_call *c, const char *name)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);

	snprintf(c->resp->action, sizeof(c->resp->action), "GetOperation");
	for (struct gi_op *o = g->ops; o; o = o->next)
		if (!strcmp(o->name, name)) {
			pp_mock_resp_printf(c->resp, 200, "application/json", "%s",
					    pp_mock_clock(c->m) >= o->done_at ? o->done_json
									      : o->json);
			return;
		}
	pp_mock_google_error(c->resp, 404, NULL, "Operation %s not found", name);
}

static void new_op_name(struct pp_mock_call *c, const char *prefix, char *out, size_t size)
{
	char id[37];

	pp_mock_google_uuid(c->m, id);
	snprintf(out, size, "%s%s", prefix, id);
}

/* ---- Service Usage ---- */

static bool su_admit(struct pp_mock_call *c)
{
	return pp_mock_google_admit(c, "serviceusage");
}

static void su_name(const struct pp_mock_call *c, char *out, size_t size)
{
	snprintf(out, size, "projects/%s/services/%s", pp_mock_param(&c->params, "project"),
		 pp_mock_param(&c->params, "service"));
}

static bool known_service(const char *s)
{
	size_t n = strlen(s);

	return n > 15 && !strcmp(s + n - 15, ".googleapis.com");
}

static struct pp_json *service_json(const char *name, const char *project, bool enabled)
{
	struct pp_json *j = pp_json_new(PP_JSON_OBJECT);
	char parent[200];

	snprintf(parent, sizeof(parent), "projects/%s", project);
	if (j && (pp_json_set_string(j, "name", name) || pp_json_set_string(j, "parent", parent) ||
		  pp_json_set_string(j, "state", enabled ? "ENABLED" : "DISABLED"))) {
		pp_json_free(j);
		return NULL;
	}
	return j;
}

static void su_get(struct pp_mock_call *c)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);
	char name[512];
	struct gi_obj *o;

	snprintf(c->resp->action, sizeof(c->resp->action), "GetService");
	su_name(c, name, sizeof(name));
	if (!known_service(pp_mock_param(&c->params, "service"))) {
		pp_mock_google_error(c->resp, 403, "PERMISSION_DENIED",
				     "Not found or permission denied for service(s): %s.",
				     pp_mock_param(&c->params, "service"));
		return;
	}
	if ((o = obj_find(g->services, name))) {
		pp_mock_resp_json(c->resp, 200, NULL, o->j);
		return;
	}
	struct pp_json *j = service_json(name, pp_mock_param(&c->params, "project"), false);

	if (j)
		pp_mock_resp_json(c->resp, 200, NULL, j);
	pp_json_free(j);
}

static void su_set(struct pp_mock_call *c, bool enable)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);
	char name[512], opname[128];
	struct gi_obj *o;
	const char *svc = pp_mock_param(&c->params, "service");

	snprintf(c->resp->action, sizeof(c->resp->action),
		 enable ? "EnableService" : "DisableService");
	su_name(c, name, sizeof(name));
	if (!known_service(svc)) {
		pp_mock_google_error(c->resp, 403, "PERMISSION_DENIED",
				     "Not found or permission denied for service(s): %s.", svc);
		return;
	}
	if (!(o = obj_find(g->services, name)) &&
	    !(o = obj_add(g, &g->services, name,
			  service_json(name, pp_mock_param(&c->params, "project"), false)))) {
		pp_mock_google_error(c->resp, 500, NULL, "mock: out of memory");
		return;
	}
	/* "serviceusage.operation": the call is accepted, its operation ends
	 * in an error and the state stays as it was. */
	bool fails = pp_mock_step_fault(c->m, "serviceusage.operation");

	if (!fails) {
		pp_json_set_string(o->j, "state", enable ? "ENABLED" : "DISABLED");
		pp_mock_count(c->m, "gcp_changes", c->resp->action);
	}
	new_op_name(c, "operations/acat.p2-", opname, sizeof(opname));
	struct pp_json *r = pp_json_new(PP_JSON_OBJECT);

	if (r)
		pp_json_set(r, "service", pp_json_clone(o->j));
	op_answer_or_fail(
		c, opname,
		enable ? "type.googleapis.com/google.api.serviceusage.v1.EnableServiceResponse"
		       : "type.googleapis.com/google.api.serviceusage.v1.DisableServiceResponse",
		r,
		fails ? "Billing must be enabled for activation of service(s) (mock step fault)"
		      : NULL);
}

static void su_enable(struct pp_mock_call *c)
{
	su_set(c, true);
}

static void su_disable(struct pp_mock_call *c)
{
	su_set(c, false);
}

static void su_op(struct pp_mock_call *c)
{
	char name[200];

	snprintf(name, sizeof(name), "operations/%s", pp_mock_param(&c->params, "op"));
	op_get(c, name);
}

static bool su_validate_enable(struct pp_mock_call *c)
{
	return !pp_mock_spec_gcpinfra(c->m, "google.api.serviceusage.v1.ServiceUsage.EnableService",
				      c->req, c->resp);
}

static bool su_validate_disable(struct pp_mock_call *c)
{
	return !pp_mock_spec_gcpinfra(
		c->m, "google.api.serviceusage.v1.ServiceUsage.DisableService", c->req, c->resp);
}

static void gi_unmatched(struct pp_mock_call *c, bool other_method)
{
	pp_mock_google_error(c->resp, other_method ? 405 : 404,
			     other_method ? "UNIMPLEMENTED" : NULL,
			     "mock Google has no route %s %s", c->req->method, c->req->path);
}

#define SU "/google/serviceusage/v1"
static const struct pp_mock_route su_routes[] = {
	{"POST", SU "/projects/{project}/services/{service}:enable", su_enable,
	 .validate = su_validate_enable, .changes = true},
	{"POST", SU "/projects/{project}/services/{service}:disable", su_disable,
	 .validate = su_validate_disable, .changes = true},
	{"GET", SU "/projects/{project}/services/{service}", su_get, .changes = false},
	{"GET", SU "/operations/{op}", su_op, .changes = false},
	{NULL},
};
#undef SU

const struct pp_mock_router pp_mock_gi_serviceusage_router = {
	.api = "serviceusage",
	.scope = "/google/serviceusage",
	.locked = true,
	.json_body = true,
	.routes = su_routes,
	.admit = su_admit,
	.unmatched = gi_unmatched,
};

/* ---- IAM service accounts ---- */

static bool iam_admit(struct pp_mock_call *c)
{
	return pp_mock_google_admit(c, "iam");
}

/* Google's rule for account ids: 6-30 characters, [a-z][a-z0-9-]*[a-z0-9]. */
static bool account_id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	if (n < 6 || n > 30 || !islower((unsigned char)id[0]) || id[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)id[i]) && !isdigit((unsigned char)id[i]) &&
		    id[i] != '-')
			return false;
	return true;
}

static void iam_create(struct pp_mock_call *c)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);
	const char *project = pp_mock_param(&c->params, "project");
	const char *id = pp_json_get_string(c->body, "accountId");
	const struct pp_json *in = pp_json_get(c->body, "serviceAccount");
	char email[256], name[400], uid[37];

	snprintf(c->resp->action, sizeof(c->resp->action), "CreateServiceAccount");
	if (!account_id_ok(id)) {
		pp_mock_google_error(c->resp, 400, NULL,
				     "Invalid account ID %s: must be 6-30 characters of lower case "
				     "letters, digits and dashes, starting with a letter",
				     id ? id : "(none)");
		return;
	}
	snprintf(email, sizeof(email), "%s@%s.iam.gserviceaccount.com", id, project);
	snprintf(name, sizeof(name), "projects/%s/serviceAccounts/%s", project, email);
	if (obj_find(g->sas, name)) {
		pp_mock_google_error(c->resp, 409, "ALREADY_EXISTS",
				     "Service account %s already exists within project "
				     "projects/%s.",
				     id, project);
		return;
	}
	struct pp_json *j = pp_json_new(PP_JSON_OBJECT);

	pp_mock_google_uuid(c->m, uid);
	if (!j || pp_json_set_string(j, "name", name) ||
	    pp_json_set_string(j, "projectId", project) || pp_json_set_string(j, "uniqueId", uid) ||
	    pp_json_set_string(j, "email", email) ||
	    (pp_json_get_string(in, "displayName") &&
	     pp_json_set_string(j, "displayName", pp_json_get_string(in, "displayName"))) ||
	    (pp_json_get_string(in, "description") &&
	     pp_json_set_string(j, "description", pp_json_get_string(in, "description"))) ||
	    pp_json_set_string(j, "oauth2ClientId", uid) || !obj_add(g, &g->sas, name, j)) {
		pp_mock_google_error(c->resp, 500, NULL, "mock: out of memory");
		return;
	}
	pp_mock_count(c->m, "gcp_changes", "CreateServiceAccount");
	pp_mock_resp_json(c->resp, 200, NULL, j);
}

/* {sa} is an email or a unique id; "-" stands for any project. */
static struct gi_obj *iam_find(struct pp_mock_call *c, char *name, size_t size)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);
	const char *sa = pp_mock_param(&c->params, "sa");

	snprintf(name, size, "projects/%s/serviceAccounts/%s", pp_mock_param(&c->params, "project"),
		 sa);
	for (struct gi_obj *o = g->sas; o; o = o->next)
		if (!strcmp(pp_json_get_string(o->j, "email") ?: "", sa) ||
		    !strcmp(pp_json_get_string(o->j, "uniqueId") ?: "", sa))
			return o;
	return NULL;
}

static void iam_get(struct pp_mock_call *c)
{
	char name[400];
	struct gi_obj *o = iam_find(c, name, sizeof(name));

	snprintf(c->resp->action, sizeof(c->resp->action), "GetServiceAccount");
	if (o)
		pp_mock_resp_json(c->resp, 200, NULL, o->j);
	else
		pp_mock_google_error(c->resp, 404, NULL, "Unknown service account");
}

/* Every key of the account named sa_name goes (with the account). */
static void keys_drop(struct pp_mock_call *c, const char *sa_name)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);
	size_t n = strlen(sa_name);

	for (struct gi_obj **pp = &g->keys; *pp;) {
		struct gi_obj *k = *pp;

		if (!strncmp(k->name, sa_name, n) && !strncmp(k->name + n, "/keys/", 6)) {
			pp_mock_google_key_revoke(c->state, k->name + n + 6);
			*pp = k->next;
			k->next = NULL;
			objs_free(k);
			g->nobjs--;
		} else {
			pp = &k->next;
		}
	}
}

/* A new RSA key for the account: the JSON key file Google hands out, and
 * the token endpoint accepts JWTs it signs from now on. */
static void key_create(struct pp_mock_call *c)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);
	char name[400], kid[41], uid[37], ts[PP_TIME_LEN], token_uri[200];
	struct gi_obj *sa = iam_find(c, name, sizeof(name));
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	char *pem = NULL, *file = NULL;
	unsigned char *b64 = NULL;
	struct pp_json *kf = NULL, *j = NULL;

	snprintf(c->resp->action, sizeof(c->resp->action), "CreateServiceAccountKey");
	if (!sa) {
		pp_mock_google_error(c->resp, 404, NULL, "Service account %s does not exist.",
				     pp_mock_param(&c->params, "sa"));
		return;
	}
	pp_mock_random_hex(c->m, kid, 40);
	pp_mock_google_uuid(c->m, uid);
	snprintf(token_uri, sizeof(token_uri), "%s/google/token", pp_mock_base_url(c->m));
	pp_time_format((int64_t)(pp_mock_wall(c->m, pp_mock_clock(c->m)) * 1000), true, ts);
	long pem_len;
	char *pem_data;

	if (!(pkey = EVP_RSA_gen(2048)) || !(bio = BIO_new(BIO_s_mem())) ||
	    PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (pem_len = BIO_get_mem_data(bio, &pem_data)) <= 0 ||
	    !(pem = strndup(pem_data, (size_t)pem_len)) || !(kf = pp_json_new(PP_JSON_OBJECT)) ||
	    pp_json_set_string(kf, "type", "service_account") ||
	    pp_json_set_string(kf, "project_id", pp_json_get_string(sa->j, "projectId") ?: "") ||
	    pp_json_set_string(kf, "private_key_id", kid) ||
	    pp_json_set_string(kf, "private_key", pem) ||
	    pp_json_set_string(kf, "client_email", pp_json_get_string(sa->j, "email")) ||
	    pp_json_set_string(kf, "client_id", pp_json_get_string(sa->j, "uniqueId") ?: uid) ||
	    pp_json_set_string(kf, "token_uri", token_uri) ||
	    !(file = pp_json_to_string(kf, PP_JSON_COMPACT)) ||
	    !(b64 = malloc(4 * ((strlen(file) + 2) / 3) + 1)) ||
	    pp_mock_google_key_add(c->state, kid, pp_json_get_string(sa->j, "email"), pkey)) {
		pp_mock_google_error(c->resp, 500, NULL, "mock: cannot make a key");
		goto out;
	}
	EVP_EncodeBlock(b64, (const unsigned char *)file, (int)strlen(file));
	snprintf(name + strlen(name), sizeof(name) - strlen(name), "/keys/%s", kid);
	if (!(j = pp_json_new(PP_JSON_OBJECT)) || pp_json_set_string(j, "name", name) ||
	    pp_json_set_string(j, "keyAlgorithm", "KEY_ALG_RSA_2048") ||
	    pp_json_set_string(j, "keyOrigin", "GOOGLE_PROVIDED") ||
	    pp_json_set_string(j, "keyType", "USER_MANAGED") ||
	    pp_json_set_string(j, "validAfterTime", ts) || !obj_add(g, &g->keys, name, j)) {
		pp_mock_google_error(c->resp, 500, NULL, "mock: out of memory");
		goto out;
	}
	pp_mock_count(c->m, "gcp_changes", "CreateServiceAccountKey");
	struct pp_json *answer = pp_json_clone(j);

	if (answer &&
	    !pp_json_set_string(answer, "privateKeyType", "TYPE_GOOGLE_CREDENTIALS_FILE") &&
	    !pp_json_set_string(answer, "privateKeyData", (const char *)b64))
		pp_mock_resp_json(c->resp, 200, NULL, answer);
	else
		pp_mock_google_error(c->resp, 500, NULL, "mock: out of memory");
	pp_json_free(answer);
out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	free(pem);
	free(file);
	free(b64);
	pp_json_free(kf);
}

/* The account's keys; keyTypes=USER_MANAGED is the only kind made here. */
static void key_list(struct pp_mock_call *c)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);
	char name[400];
	struct gi_obj *sa = iam_find(c, name, sizeof(name));
	struct pp_json *root = pp_json_new(PP_JSON_OBJECT), *a = pp_json_new(PP_JSON_ARRAY);

	snprintf(c->resp->action, sizeof(c->resp->action), "ListServiceAccountKeys");
	if (!sa) {
		pp_json_free(root);
		pp_json_free(a);
		pp_mock_google_error(c->resp, 404, NULL, "Service account %s does not exist.",
				     pp_mock_param(&c->params, "sa"));
		return;
	}
	size_t n = strlen(sa->name);

	for (struct gi_obj *k = g->keys; a && k; k = k->next)
		if (!strncmp(k->name, sa->name, n) && !strncmp(k->name + n, "/keys/", 6))
			pp_json_append(a, pp_json_clone(k->j));
	if (root && a && !pp_json_set(root, "keys", a)) {
		pp_mock_resp_json(c->resp, 200, NULL, root);
		a = NULL;
	} else {
		pp_mock_google_error(c->resp, 500, NULL, "mock: out of memory");
	}
	pp_json_free(a);
	pp_json_free(root);
}

static void key_delete(struct pp_mock_call *c)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);
	char name[400];
	struct gi_obj *sa = iam_find(c, name, sizeof(name));
	const char *kid = pp_mock_param(&c->params, "key");

	snprintf(c->resp->action, sizeof(c->resp->action), "DeleteServiceAccountKey");
	if (sa)
		snprintf(name, sizeof(name), "%s/keys/%s", sa->name, kid);
	if (!sa || !obj_del(g, &g->keys, name)) {
		pp_mock_google_error(c->resp, 404, NULL, "Service account key %s does not exist.",
				     kid);
		return;
	}
	pp_mock_google_key_revoke(c->state, kid);
	pp_mock_count(c->m, "gcp_changes", "DeleteServiceAccountKey");
	pp_mock_resp_printf(c->resp, 200, "application/json", "{}");
}

static bool key_validate_create(struct pp_mock_call *c)
{
	return !pp_mock_spec_gcpinfra(c->m, "google.iam.admin.v1.IAM.CreateServiceAccountKey",
				      c->req, c->resp);
}

static void iam_delete(struct pp_mock_call *c)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);
	char name[400];
	struct gi_obj *o = iam_find(c, name, sizeof(name));

	snprintf(c->resp->action, sizeof(c->resp->action), "DeleteServiceAccount");
	if (!o) {
		pp_mock_google_error(c->resp, 404, NULL, "Service account %s does not exist.",
				     pp_mock_param(&c->params, "sa"));
		return;
	}
	keys_drop(c, o->name);
	obj_del(g, &g->sas, o->name);
	pp_mock_count(c->m, "gcp_changes", "DeleteServiceAccount");
	pp_mock_resp_printf(c->resp, 200, "application/json", "{}");
}

/* :enable and :disable of an account. */
static void iam_set_disabled(struct pp_mock_call *c, bool disabled)
{
	char name[400];
	struct gi_obj *o = iam_find(c, name, sizeof(name));

	snprintf(c->resp->action, sizeof(c->resp->action),
		 disabled ? "DisableServiceAccount" : "EnableServiceAccount");
	if (!o) {
		pp_mock_google_error(c->resp, 404, NULL, "Service account %s does not exist.",
				     pp_mock_param(&c->params, "sa"));
		return;
	}
	pp_json_set_bool(o->j, "disabled", disabled);
	pp_mock_count(c->m, "gcp_changes", c->resp->action);
	pp_mock_resp_printf(c->resp, 200, "application/json", "{}");
}

static void iam_enable(struct pp_mock_call *c)
{
	iam_set_disabled(c, false);
}

static void iam_disable(struct pp_mock_call *c)
{
	iam_set_disabled(c, true);
}

static bool iam_validate_enable(struct pp_mock_call *c)
{
	return !pp_mock_spec_gcpinfra(c->m, "google.iam.admin.v1.IAM.EnableServiceAccount", c->req,
				      c->resp);
}

static bool iam_validate_disable(struct pp_mock_call *c)
{
	return !pp_mock_spec_gcpinfra(c->m, "google.iam.admin.v1.IAM.DisableServiceAccount", c->req,
				      c->resp);
}

static bool iam_validate_create(struct pp_mock_call *c)
{
	return !pp_mock_spec_gcpinfra(c->m, "google.iam.admin.v1.IAM.CreateServiceAccount", c->req,
				      c->resp);
}

#define IAM "/google/iam/v1/projects/{project}/serviceAccounts"
static const struct pp_mock_route iam_routes[] = {
	{"POST", IAM, iam_create, .validate = iam_validate_create, .changes = true},
	{"POST", IAM "/{sa}/keys", key_create, .validate = key_validate_create, .changes = true},
	{"GET", IAM "/{sa}/keys", key_list, .changes = false},
	{"DELETE", IAM "/{sa}/keys/{key}", key_delete, .changes = true},
	{"POST", IAM "/{sa}:enable", iam_enable, .validate = iam_validate_enable, .changes = true},
	{"POST", IAM "/{sa}:disable", iam_disable, .validate = iam_validate_disable,
	 .changes = true},
	{"GET", IAM "/{sa}", iam_get, .changes = false},
	{"DELETE", IAM "/{sa}", iam_delete, .changes = true},
	{NULL},
};
#undef IAM

const struct pp_mock_router pp_mock_gi_iam_router = {
	.api = "iam",
	.scope = "/google/iam",
	.locked = true,
	.json_body = true,
	.routes = iam_routes,
	.admit = iam_admit,
	.unmatched = gi_unmatched,
};

/* ---- Resource Manager: project IAM policies ---- */

static bool crm_admit(struct pp_mock_call *c)
{
	return pp_mock_google_admit(c, "cloudresourcemanager");
}

static struct pp_json *policy_json(const struct gi_policy *p)
{
	struct pp_json *j = pp_json_new(PP_JSON_OBJECT);
	char etag[32];

	etag_of(p, etag, sizeof(etag));
	if (j && (pp_json_set_int(j, "version", 1) ||
		  pp_json_set(j, "bindings", pp_json_clone(p->bindings)) ||
		  pp_json_set_string(j, "etag", etag))) {
		pp_json_free(j);
		return NULL;
	}
	return j;
}

static void crm_get(struct pp_mock_call *c)
{
	struct gi_policy *p =
		policy_of(pp_mock_gi_of(c->state), pp_mock_param(&c->params, "project"));
	struct pp_json *j = p ? policy_json(p) : NULL;

	snprintf(c->resp->action, sizeof(c->resp->action), "GetIamPolicy");
	if (j)
		pp_mock_resp_json(c->resp, 200, NULL, j);
	else
		pp_mock_google_error(c->resp, 500, NULL, "mock: out of memory");
	pp_json_free(j);
}

/* The concurrent writer: a binding nobody in the test asked for, added
 * between the client's read and its write. */
static void race(struct pp_mock_gi *g, struct gi_policy *p)
{
	struct pp_json *b = pp_json_new(PP_JSON_OBJECT), *ms = pp_json_new(PP_JSON_ARRAY);
	char member[64];

	snprintf(member, sizeof(member), "user:racer-%lu@example.com", ++g->racers);
	if (!b || !ms || pp_json_set_string(b, "role", "roles/viewer") ||
	    pp_json_append(ms, pp_json_new_string(member)) || pp_json_set(b, "members", ms) ||
	    pp_json_append(p->bindings, b)) {
		pp_json_free(b);
		return;
	}
	p->version++;
}

/* Google's checks of a policy written: every binding a role and members
 * of a known kind, no member twice in one binding. */
static bool policy_ok(struct pp_mock_call *c, const struct pp_json *bindings)
{
	static const char *const kinds[] = {"user:",	  "serviceAccount:", "group:",	"domain:",
					    "principal:", "principalSet:",   "deleted:"};

	for (size_t i = 0; pp_json_at(bindings, i); i++) {
		const struct pp_json *b = pp_json_at(bindings, i), *ms = pp_json_get(b, "members");
		const char *role = pp_json_get_string(b, "role");

		if (!role || strncmp(role, "roles/", 6)) {
			pp_mock_google_error(c->resp, 400, NULL,
					     "Role %s is not supported for this resource.",
					     role ? role : "(none)");
			return false;
		}
		if (!pp_json_at(ms, 0)) {
			pp_mock_google_error(c->resp, 400, NULL,
					     "Binding for role %s has no members.", role);
			return false;
		}
		for (size_t k = 0; pp_json_at(ms, k); k++) {
			const char *m = pp_json_string(pp_json_at(ms, k));
			bool ok = false;

			for (size_t t = 0; m && t < sizeof(kinds) / sizeof(kinds[0]); t++)
				ok |= !strncmp(m, kinds[t], strlen(kinds[t])) &&
				      m[strlen(kinds[t])] != '\0';
			for (size_t q = 0; ok && q < k; q++)
				ok = strcmp(pp_json_string(pp_json_at(ms, q)) ?: "", m) != 0;
			if (!ok) {
				pp_mock_google_error(c->resp, 400, NULL,
						     "Invalid or duplicate member %s in role %s.",
						     m ? m : "(not a string)", role);
				return false;
			}
		}
	}
	return true;
}

static void crm_set(struct pp_mock_call *c)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);
	struct gi_policy *p = policy_of(g, pp_mock_param(&c->params, "project"));
	const struct pp_json *in = pp_json_get(c->body, "policy");
	const char *etag = pp_json_get_string(in, "etag");
	const struct pp_json *bindings = pp_json_get(in, "bindings");
	char want[32];

	snprintf(c->resp->action, sizeof(c->resp->action), "SetIamPolicy");
	if (!p) {
		pp_mock_google_error(c->resp, 500, NULL, "mock: out of memory");
		return;
	}
	if (g->race > 0) {
		g->race--;
		race(g, p);
	}
	etag_of(p, want, sizeof(want));
	/* Without an etag Google overwrites blindly; with one, it must be
	 * the current one. */
	if (etag && strcmp(etag, want)) {
		pp_mock_google_error(c->resp, 409, "ABORTED",
				     "There were concurrent policy changes. Please retry the whole "
				     "read-modify-write with exponential backoff.");
		return;
	}
	if (bindings && !pp_json_is(bindings, PP_JSON_ARRAY)) {
		pp_mock_google_error(c->resp, 400, NULL, "policy.bindings must be a list");
		return;
	}
	if (bindings && !policy_ok(c, bindings))
		return;
	struct pp_json *copy = bindings ? pp_json_clone(bindings) : pp_json_new(PP_JSON_ARRAY);

	if (!copy) {
		pp_mock_google_error(c->resp, 500, NULL, "mock: out of memory");
		return;
	}
	pp_json_free(p->bindings);
	p->bindings = copy;
	p->version++;
	pp_mock_count(c->m, "gcp_changes", "SetIamPolicy");
	struct pp_json *j = policy_json(p);

	if (j)
		pp_mock_resp_json(c->resp, 200, NULL, j);
	pp_json_free(j);
}

static bool crm_validate_get(struct pp_mock_call *c)
{
	return !pp_mock_spec_gcpinfra(c->m, "google.cloud.resourcemanager.v3.Projects.GetIamPolicy",
				      c->req, c->resp);
}

static bool crm_validate_set(struct pp_mock_call *c)
{
	return !pp_mock_spec_gcpinfra(c->m, "google.cloud.resourcemanager.v3.Projects.SetIamPolicy",
				      c->req, c->resp);
}

static const struct pp_mock_route crm_routes[] = {
	{"POST", "/google/cloudresourcemanager/v3/projects/{project}:getIamPolicy", crm_get,
	 .validate = crm_validate_get},
	{"POST", "/google/cloudresourcemanager/v3/projects/{project}:setIamPolicy", crm_set,
	 .validate = crm_validate_set, .changes = true},
	{NULL},
};

const struct pp_mock_router pp_mock_gi_crm_router = {
	.api = "cloudresourcemanager",
	.scope = "/google/cloudresourcemanager",
	.locked = true,
	.json_body = true,
	.routes = crm_routes,
	.admit = crm_admit,
	.unmatched = gi_unmatched,
};

/* ---- Artifact Registry ---- */

static bool ar_admit(struct pp_mock_call *c)
{
	return pp_mock_google_admit(c, "artifactregistry");
}

static void ar_parent(const struct pp_mock_call *c, char *out, size_t size)
{
	snprintf(out, size, "projects/%s/locations/%s", pp_mock_param(&c->params, "project"),
		 pp_mock_param(&c->params, "location"));
}

/* Artifact Registry's rule for repository ids. */
static bool repo_id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	if (n < 1 || n > 63 || !islower((unsigned char)id[0]) || id[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)id[i]) && !isdigit((unsigned char)id[i]) &&
		    id[i] != '-')
			return false;
	return true;
}

static void ar_create(struct pp_mock_call *c)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);
	const char *id = pp_mock_arg(c->req, "repositoryId");
	char parent[300], name[400], opname[400], ts[PP_TIME_LEN];
	const char *format = pp_json_get_string(c->body, "format");

	snprintf(c->resp->action, sizeof(c->resp->action), "CreateRepository");
	ar_parent(c, parent, sizeof(parent));
	if (!repo_id_ok(id)) {
		pp_mock_google_error(c->resp, 400, NULL, "Invalid repository id %s",
				     id ? id : "(repositoryId missing)");
		return;
	}
	if (!format || strcmp(format, "DOCKER")) {
		pp_mock_google_error(c->resp, 400, NULL,
				     "the mock makes DOCKER repositories only (format %s)",
				     format ? format : "unset");
		return;
	}
	snprintf(name, sizeof(name), "%s/repositories/%s", parent, id);
	if (obj_find(g->repos, name)) {
		pp_mock_google_error(c->resp, 409, "ALREADY_EXISTS",
				     "the repository already exists");
		return;
	}
	struct pp_json *j = pp_json_clone(c->body);

	pp_time_format((int64_t)(pp_mock_wall(c->m, pp_mock_clock(c->m)) * 1000), true, ts);
	if (!j || pp_json_set_string(j, "name", name) || pp_json_set_string(j, "createTime", ts) ||
	    pp_json_set_string(j, "updateTime", ts) || !obj_add(g, &g->repos, name, j)) {
		pp_mock_google_error(c->resp, 500, NULL, "mock: out of memory");
		return;
	}
	pp_mock_count(c->m, "gcp_changes", "CreateRepository");
	new_op_name(c, "", opname, sizeof(opname));
	snprintf(name, sizeof(name), "%s/operations/%s", parent, opname);
	op_answer(c, name, "type.googleapis.com/google.devtools.artifactregistry.v1.Repository",
		  pp_json_clone(j));
}

static void ar_get(struct pp_mock_call *c)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);
	char parent[300], name[400];
	struct gi_obj *o;

	snprintf(c->resp->action, sizeof(c->resp->action), "GetRepository");
	ar_parent(c, parent, sizeof(parent));
	snprintf(name, sizeof(name), "%s/repositories/%s", parent,
		 pp_mock_param(&c->params, "repo"));
	if ((o = obj_find(g->repos, name)))
		pp_mock_resp_json(c->resp, 200, NULL, o->j);
	else
		pp_mock_google_error(c->resp, 404, NULL, "Requested entity was not found.");
}

static void ar_delete(struct pp_mock_call *c)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);
	char parent[300], name[400], opname[400];

	snprintf(c->resp->action, sizeof(c->resp->action), "DeleteRepository");
	ar_parent(c, parent, sizeof(parent));
	snprintf(name, sizeof(name), "%s/repositories/%s", parent,
		 pp_mock_param(&c->params, "repo"));
	if (!obj_del(g, &g->repos, name)) {
		pp_mock_google_error(c->resp, 404, NULL, "Requested entity was not found.");
		return;
	}
	pp_mock_count(c->m, "gcp_changes", "DeleteRepository");
	new_op_name(c, "", opname, sizeof(opname));
	snprintf(name, sizeof(name), "%s/operations/%s", parent, opname);
	op_answer(c, name, "type.googleapis.com/google.protobuf.Empty",
		  pp_json_new(PP_JSON_OBJECT));
}

static void ar_op(struct pp_mock_call *c)
{
	char parent[300], name[400];

	ar_parent(c, parent, sizeof(parent));
	snprintf(name, sizeof(name), "%s/operations/%s", parent, pp_mock_param(&c->params, "op"));
	op_get(c, name);
}

static bool ar_validate_create(struct pp_mock_call *c)
{
	return !pp_mock_spec_gcpinfra(
		c->m, "google.devtools.artifactregistry.v1.ArtifactRegistry.CreateRepository",
		c->req, c->resp);
}

#define AR "/google/artifactregistry/v1/projects/{project}/locations/{location}"
static const struct pp_mock_route ar_routes[] = {
	{"POST", AR "/repositories", ar_create, .validate = ar_validate_create, .changes = true},
	{"GET", AR "/repositories/{repo}", ar_get, .changes = false},
	{"DELETE", AR "/repositories/{repo}", ar_delete, .changes = true},
	{"GET", AR "/operations/{op}", ar_op, .changes = false},
	{NULL},
};
#undef AR

const struct pp_mock_router pp_mock_gi_ar_router = {
	.api = "artifactregistry",
	.scope = "/google/artifactregistry",
	.locked = true,
	.json_body = true,
	.routes = ar_routes,
	.admit = ar_admit,
	.unmatched = gi_unmatched,
};

/* ---- /google/control/infra ---- */

static struct pp_json *list_json(const struct gi_obj *list)
{
	struct pp_json *a = pp_json_new(PP_JSON_ARRAY);

	for (; a && list; list = list->next)
		pp_json_append(a, pp_json_clone(list->j));
	return a;
}

/* GET: {"services": [...], "repositories": [...], "service_accounts":
 * [...], "policies": {"PROJECT": [bindings]}} (lists newest first). */
static void control_dump(struct pp_mock_call *c)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);
	struct pp_json *root = pp_json_new(PP_JSON_OBJECT), *pol = pp_json_new(PP_JSON_OBJECT);

	snprintf(c->resp->action, sizeof(c->resp->action), "control/infra");
	if (!root || !pol) {
		pp_json_free(root);
		pp_json_free(pol);
		pp_mock_resp_printf(c->resp, 500, "text/plain", "out of memory\n");
		return;
	}
	pp_json_set(root, "services", list_json(g->services));
	pp_json_set(root, "repositories", list_json(g->repos));
	pp_json_set(root, "service_accounts", list_json(g->sas));
	for (struct gi_policy *p = g->policies; p; p = p->next)
		pp_json_set(pol, p->project, pp_json_clone(p->bindings));
	pp_json_set(root, "policies", pol);
	pp_mock_resp_json(c->resp, 200, NULL, root);
	pp_json_free(root);
}

/* POST {"race": N} (the next N setIamPolicy calls meet a concurrent
 * writer), {"disable_service_account": EMAIL}, {"service": "projects/P/services/S"} (enabled before pushpool),
 * {"repository": NAME, "labels": {...}} (made by someone else),
 * {"service_account": EMAIL, "project": P, "description": D},
 * {"binding": {"project": P, "role": R, "member": M}}. */
static void control_plant(struct pp_mock_call *c)
{
	struct pp_mock_gi *g = pp_mock_gi_of(c->state);
	const char *s;
	const struct pp_json *b = c->body;

	snprintf(c->resp->action, sizeof(c->resp->action), "control/infra");
	if (!b) {
		pp_mock_resp_printf(c->resp, 400, "text/plain", "infra: want a JSON object\n");
		return;
	}
	if (pp_json_get(b, "race"))
		g->race = (int)pp_json_get_int(b, "race", 0);
	if ((s = pp_json_get_string(b, "service"))) {
		const char *proj = strchr(s, '/') ? strchr(s, '/') + 1 : "";
		char project[128];

		snprintf(project, sizeof(project), "%.*s", (int)strcspn(proj, "/"), proj);
		struct gi_obj *o = obj_find(g->services, s);

		if (o)
			pp_json_set_string(o->j, "state", "ENABLED");
		else
			obj_add(g, &g->services, s, service_json(s, project, true));
	}
	if ((s = pp_json_get_string(b, "repository"))) {
		struct pp_json *j = pp_json_new(PP_JSON_OBJECT);

		if (j) {
			pp_json_set_string(j, "name", s);
			pp_json_set_string(j, "format", "DOCKER");
			if (pp_json_get(b, "labels"))
				pp_json_set(j, "labels", pp_json_clone(pp_json_get(b, "labels")));
			obj_add(g, &g->repos, s, j);
		}
	}
	if ((s = pp_json_get_string(b, "disable_service_account"))) {
		/* Someone disabled an account (pushpool's or not). */
		for (struct gi_obj *o = g->sas; o; o = o->next)
			if (!strcmp(pp_json_get_string(o->j, "email") ?: "", s))
				pp_json_set_bool(o->j, "disabled", true);
	}
	if ((s = pp_json_get_string(b, "service_account"))) {
		struct pp_json *j = pp_json_new(PP_JSON_OBJECT);
		char name[400], uid[37];
		const char *project = pp_json_get_string(b, "project") ?: "mock-project";

		snprintf(name, sizeof(name), "projects/%s/serviceAccounts/%s", project, s);
		pp_mock_google_uuid(c->m, uid);
		if (j) {
			pp_json_set_string(j, "name", name);
			pp_json_set_string(j, "email", s);
			pp_json_set_string(j, "uniqueId", uid);
			pp_json_set_string(j, "projectId", project);
			if (pp_json_get_string(b, "description"))
				pp_json_set_string(j, "description",
						   pp_json_get_string(b, "description"));
			obj_add(g, &g->sas, name, j);
		}
	}
	if ((b = pp_json_get(c->body, "binding"))) {
		struct gi_policy *p = policy_of(g, pp_json_get_string(b, "project") ?: "");
		struct pp_json *nb = pp_json_new(PP_JSON_OBJECT), *ms = pp_json_new(PP_JSON_ARRAY);

		if (p && nb && ms && pp_json_get_string(b, "role") &&
		    pp_json_get_string(b, "member")) {
			pp_json_set_string(nb, "role", pp_json_get_string(b, "role"));
			pp_json_append(ms, pp_json_new_string(pp_json_get_string(b, "member")));
			pp_json_set(nb, "members", ms);
			pp_json_append(p->bindings, nb);
			p->version++;
		} else {
			pp_json_free(nb);
			pp_json_free(ms);
		}
	}
	pp_mock_resp_printf(c->resp, 200, "text/plain", "ok\n");
}

static const struct pp_mock_route control_routes[] = {
	{"GET", "/google/control/infra", control_dump, .changes = false},
	{"POST", "/google/control/infra", control_plant, .changes = true},
	{NULL},
};

const struct pp_mock_router pp_mock_gi_control_router = {
	.api = "control",
	.locked = true,
	.json_body = true,
	.routes = control_routes,
};
