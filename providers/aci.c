/* Azure Container Instances through Azure Resource Manager (pool type
 * azure-container-instance:push).
 *
 * Prefect's worker deploys its rendered arm_template as an ARM deployment;
 * we take the containerGroups resource out of that template and PUT it
 * directly with a name derived from the run, so a replay can only update the
 * same group, never create a second one.
 * submit: [GET resource group for its location] -> GET group (adopt it when
 * an earlier try created it: a re-PUT could restart a finished group) -> PUT
 * -> follow Azure-AsyncOperation / Location until provisioning ends.
 * status: GET group, read containers[0].properties.instanceView.
 * cancel / cleanup: DELETE group and follow the deletion to its end. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "providers/common.h"
#include "providers/provider.h"

#define ACI_DEFAULT_ENDPOINT	    "https://management.azure.com"
#define ACI_DEFAULT_API_VERSION	    "2023-05-01"
#define ACI_RG_API_VERSION	    "2021-04-01"
#define ACI_DEFAULT_ENTRYPOINT	    "/opt/prefect/entrypoint.sh"
#define ACI_DEFAULT_COMMAND	    "prefect flow-run execute"
#define ACI_DEFAULT_START_TIMEOUT_S 240
#define ACI_DEFAULT_POLL_MS	    5000
#define ACI_ASYNC_POLL_MS	    2000
#define ACI_GROUP_TYPE		    "Microsoft.ContainerInstance/containerGroups"
/* ARM's tag limits (Azure Resource Manager docs, "Tag resources":
 * Limitations): 50 tags, names of at most 512 and values of at most 256
 * characters, names without < > % & \ ? /, and no name prefixed
 * microsoft, azure or windows (resources-2021-04-01.json, Tags_CreateOrUpdate). */
#define ACI_MAX_TAGS	       50
#define ACI_TAG_NAME_MAX       512
#define ACI_TAG_VALUE_MAX      256
#define ACI_TAG_NAME_FORBIDDEN "<>%&\\?/"

enum aci_submit_step { S_RG, S_GET, S_PUT, S_POLL, S_DONE };
enum aci_delete_step { D_DELETE, D_POLL, D_DONE };

struct aci_state {
	char base[256];
	char api_version[32];
	char sub[64];
	char rg[288]; /* URL-encoded: 90 characters, each up to 3 */
	char group[64];
	char group_url[1024];	/* base + ARM id + api-version */
	char async_url[4096];	/* ARM accepts status URLs up to 4 KB */
	bool async_is_location; /* Location polling: 202 until done */
	bool keep_group;
	long start_timeout_s;
	long poll_ms;
	int64_t started_ms; /* pp_mono_ms() when submit finished, for the start timeout */
	enum aci_submit_step step;
	enum aci_delete_step del;
	struct pp_json *body; /* PUT body, owned */
};

static void log_ratelimit(const struct pp_run_io *io)
{
	for (const struct pp_http_header *h = io->resp->headers; h; h = h->next)
		if (!strncmp(h->name, "x-ms-ratelimit-remaining-", 25))
			pp_debug("aci run %s: %s: %s", io->run_id, h->name, h->value);
}

/* Map an ARM answer {"error":{"code","message"}} to our code and a message
 * naming the call, the HTTP status, ARM's code and message. */
static int aci_error(const struct pp_run_io *io, const char *what, char *code_out, size_t code_size,
		     struct pp_error *err)
{
	int code = io->resp_rc;
	long http = io->resp->status;
	long retry_ms = io->resp_err ? io->resp_err->retry_after_ms : 0;
	struct pp_json *body = NULL;
	const char *acode = NULL, *amsg = NULL;

	if (code_out)
		code_out[0] = '\0';
	if (http == 0) {
		pp_fail(err, code, "ACI %s: %s", what,
			io->resp_err ? io->resp_err->msg : "no response");
		err->retry_after_ms = retry_ms;
		return code;
	}
	if (retry_ms < io->resp->retry_after_ms)
		retry_ms = io->resp->retry_after_ms;
	struct pp_json_limits lim = {.max_bytes = PP_PROVIDER_MAX_RESPONSE, .max_depth = 0};
	if (io->resp->body.len &&
	    pp_json_parse(io->resp->body.data, io->resp->body.len, &lim, &body, NULL) == 0) {
		struct pp_json *e = pp_json_get(body, "error");
		acode = pp_json_get_string(e, "code");
		amsg = pp_json_get_string(e, "message");
	}
	/* ARM answers 409 while a group is still transitioning. */
	if (http == 409)
		code = PP_ETRANSIENT;
	if (http == 429)
		code = PP_ETHROTTLED;
	if (code_out && acode)
		snprintf(code_out, code_size, "%s", acode);
	if (acode || amsg)
		pp_fail(err, code, "ACI %s: HTTP %ld %s: %s", what, http, acode ? acode : "",
			amsg ? amsg : "");
	else
		pp_fail(err, code, "ACI %s: %s", what,
			io->resp_err ? io->resp_err->msg : "request failed");
	err->retry_after_ms = retry_ms;
	pp_json_free(body);
	return code;
}

static bool valid_chars(const char *s, const char *extra, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
			return false;
	return true;
}

static bool is_arm_expression(const char *s)
{
	size_t n = strlen(s);
	return n >= 2 && s[0] == '[' && s[1] != '[' && s[n - 1] == ']';
}

/* ARM template strings we cannot evaluate without a deployment: report
 * the first with its path; "[[" is ARM's escape for a literal "[". */
static int check_expressions(struct pp_json *j, char *path, size_t size, size_t used,
			     struct pp_error *err)
{
	if (j->type == PP_JSON_STRING) {
		if (is_arm_expression(j->str))
			return pp_fail(err, PP_EINVALID,
				       "arm_template.resources[].%s: ARM expression '%s' cannot be "
				       "evaluated when the group is created directly; "
				       "use a literal",
				       path, j->str);
		if (j->str[0] == '[' && j->str[1] == '[') {
			memmove(j->str, j->str + 1, j->len);
			j->len--;
		}
		return 0;
	}
	size_t idx = 0;
	pp_json_foreach (c, j) {
		const char *dot = used ? "." : "";
		int n = j->type == PP_JSON_OBJECT
				? snprintf(path + used, size - used, "%s%s", dot, c->key)
				: snprintf(path + used, size - used, "[%zu]", idx);
		size_t next = n > 0 && (size_t)n < size - used ? used + (size_t)n : used;
		int rc = check_expressions(c, path, size, next, err);
		path[used] = '\0';
		if (rc)
			return rc;
		idx++;
	}
	return 0;
}

static bool secret_env_name(const char *name)
{
	static const char *const marks[] = {"PREFECT_API_KEY", "SECRET",     "PASSWORD", "TOKEN",
					    "PRIVATE_KEY",     "ACCESS_KEY", NULL};
	for (size_t i = 0; marks[i]; i++)
		if (strstr(name, marks[i]))
			return true;
	return false;
}

/* env map -> environmentVariables; secret-looking names use secureValue,
 * which ARM never echoes back. */
static int build_env(struct pp_json *props, const struct pp_json *env, struct pp_error *err)
{
	struct pp_json *list = pp_json_get(props, "environmentVariables");
	if (!pp_json_is(list, PP_JSON_ARRAY)) {
		if (pp_json_set(props, "environmentVariables", pp_json_new(PP_JSON_ARRAY)))
			return pp_fail(err, PP_ENOMEM, "out of memory building env");
		list = pp_json_get(props, "environmentVariables");
	}
	pp_json_foreach (e, env) {
		if (e->type == PP_JSON_NULL)
			continue;
		char *text =
			e->type == PP_JSON_STRING ? NULL : pp_json_to_string(e, PP_JSON_COMPACT);
		const char *val = e->type == PP_JSON_STRING ? e->str : text;
		if (!val)
			return pp_fail(err, PP_ENOMEM, "out of memory building env");
		bool secret = secret_env_name(e->key);
		if (secret)
			pp_secret_register_rotating(val);
		struct pp_json *item = pp_json_new(PP_JSON_OBJECT);
		int bad = pp_json_set_string(item, "name", e->key) ||
			  pp_json_set_string(item, secret ? "secureValue" : "value", val);
		free(text);
		/* A later entry of the same name replaces the template's. */
		struct pp_json *old = NULL;
		pp_json_foreach (o, list)
			if (!old && pp_json_get_string(o, "name") &&
			    !strcmp(pp_json_get_string(o, "name"), e->key))
				old = o;
		if (old)
			pp_json_free(pp_json_detach(old));
		if (bad || pp_json_append(list, item)) {
			if (bad)
				pp_json_free(item);
			return pp_fail(err, PP_ENOMEM, "out of memory building env");
		}
	}
	return 0;
}

static int set_command(struct pp_json *props, const struct pp_json *job, struct pp_error *err)
{
	const char *cmd = pp_json_get_string(job, "command");
	struct pp_json *words = NULL;
	int rc = pp_shell_split(cmd && *cmd ? cmd : ACI_DEFAULT_COMMAND, &words, err);
	if (rc)
		return pp_error_prefix(err, "command: ");
	struct pp_json *ep = pp_json_get(job, "entrypoint");
	const char *entry = ep ? pp_json_string(ep) : ACI_DEFAULT_ENTRYPOINT;
	/* A command replaces the image's entrypoint; Prefect images need theirs. */
	if (entry && *entry) {
		struct pp_json *all = pp_json_new(PP_JSON_ARRAY);
		if (pp_json_append(all, pp_json_new_string(entry))) {
			pp_json_free(all);
			pp_json_free(words);
			return pp_fail(err, PP_ENOMEM, "out of memory");
		}
		while (words->child)
			if (pp_json_append(all, pp_json_detach(words->child))) {
				pp_json_free(all);
				pp_json_free(words);
				return pp_fail(err, PP_ENOMEM, "out of memory");
			}
		pp_json_free(words);
		words = all;
	}
	if (pp_json_set(props, "command", words))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	return 0;
}

/* cpu / memoryInGB / gpu as ARM wants them: JSON numbers. */
static int set_resources(struct pp_json *props, const struct pp_json *job, struct pp_error *err)
{
	struct pp_json *res = pp_json_get(props, "resources");
	if (!res) {
		if (pp_json_set(props, "resources", pp_json_new(PP_JSON_OBJECT)))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		res = pp_json_get(props, "resources");
	}
	struct pp_json *req = pp_json_get(res, "requests");
	if (!req) {
		if (pp_json_set(res, "requests", pp_json_new(PP_JSON_OBJECT)))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		req = pp_json_get(res, "requests");
	}
	if (req->type != PP_JSON_OBJECT)
		return pp_fail(err, PP_EINVALID, "resources.requests must be an object");
	static const char *const keys[] = {"cpu", "memoryInGB"};
	static const char *const job_keys[] = {"cpu", "memory"};
	for (int i = 0; i < 2; i++) {
		struct pp_json *v = pp_json_get(req, keys[i]);
		double d = 1.0;
		if (v && v->type == PP_JSON_STRING) {
			char *end;
			d = strtod(v->str, &end);
			if (end == v->str || *end)
				return pp_fail(err, PP_EINVALID,
					       "resources.requests.%s '%s' is not a number",
					       keys[i], v->str);
		} else if (v && v->type == PP_JSON_NUMBER) {
			d = v->num;
		} else if (!pp_json_get_number(job, job_keys[i], &d)) {
			d = 1.0;
		}
		if (!(d > 0) || d > 64)
			return pp_fail(err, PP_EINVALID,
				       "resources.requests.%s %g is out of range (0..64]", keys[i],
				       d);
		if (pp_json_set(req, keys[i], pp_json_new_number(d)))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	/* The swagger's GpuResource requires both count and sku. */
	long long gpus = pp_json_get_int(job, "gpu_count", 0);
	const char *sku = pp_json_get_string(job, "gpu_sku");
	bool has_sku = sku && *sku;
	if (gpus < 0 || (gpus > 0 && !has_sku) || (gpus == 0 && has_sku))
		return pp_fail(err, PP_EINVALID,
			       "gpu_count %lld and gpu_sku '%s': a GPU needs both, gpu_count of at "
			       "least 1 and gpu_sku (K80, P100 or V100 in API 2023-05-01)",
			       gpus, has_sku ? sku : "");
	if (gpus > 0) {
		struct pp_json *gpu = pp_json_new(PP_JSON_OBJECT);
		if (pp_json_set_int(gpu, "count", gpus) || pp_json_set_string(gpu, "sku", sku) ||
		    pp_json_set(req, "gpu", gpu))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	return 0;
}

/* identities, image registry, subnets and DNS as Prefect's worker adds them. */
static int add_group_options(struct pp_json *group, struct pp_json *gp, const struct pp_json *job,
			     struct pp_error *err)
{
	struct pp_json *ids = pp_json_get(job, "identities");
	if (pp_json_is(ids, PP_JSON_ARRAY) && ids->count) {
		struct pp_json *map = pp_json_new(PP_JSON_OBJECT);
		struct pp_json *ident = pp_json_new(PP_JSON_OBJECT);
		if (pp_json_set_string(ident, "type", "UserAssigned")) {
			pp_json_free(map);
			pp_json_free(ident);
			return pp_fail(err, PP_ENOMEM, "out of memory");
		}
		pp_json_foreach (i, ids)
			if (i->type == PP_JSON_STRING &&
			    pp_json_set(map, i->str, pp_json_new(PP_JSON_OBJECT))) {
				pp_json_free(map);
				pp_json_free(ident);
				return pp_fail(err, PP_ENOMEM, "out of memory");
			}
		if (pp_json_set(ident, "userAssignedIdentities", map) ||
		    pp_json_set(group, "identity", ident))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	struct pp_json *reg = pp_json_get(job, "image_registry");
	if (pp_json_is(reg, PP_JSON_OBJECT)) {
		const char *url = pp_json_get_string(reg, "registry_url");
		const char *user = pp_json_get_string(reg, "username");
		const char *pass = pp_json_get_string(reg, "password");
		const char *identity = pp_json_get_string(reg, "identity");
		if (!url || !*url)
			return pp_fail(err, PP_EINVALID, "image_registry.registry_url is missing");
		if (!identity && (!user || !pass))
			return pp_fail(err, PP_EINVALID,
				       "image_registry needs identity, or username and password");
		if (pass)
			pp_secret_register_rotating(pass);
		struct pp_json *cred = pp_json_new(PP_JSON_OBJECT);
		struct pp_json *list = pp_json_new(PP_JSON_ARRAY);
		int bad = pp_json_set_string(cred, "server", url);
		if (identity)
			bad = bad || pp_json_set_string(cred, "identity", identity);
		else
			bad = bad || pp_json_set_string(cred, "username", user) ||
			      pp_json_set_string(cred, "password", pass);
		if (bad) {
			pp_json_free(cred);
			pp_json_free(list);
			return pp_fail(err, PP_ENOMEM, "out of memory");
		}
		if (pp_json_append(list, cred) || pp_json_set(gp, "imageRegistryCredentials", list))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	struct pp_json *subnets = pp_json_get(job, "subnet_ids");
	if (pp_json_is(subnets, PP_JSON_ARRAY) && subnets->count) {
		struct pp_json *list = pp_json_new(PP_JSON_ARRAY);
		if (pp_json_set(gp, "subnetIds", list))
			return pp_fail(err, PP_ENOMEM, "out of memory");
		pp_json_foreach (s, subnets) {
			struct pp_json *o = pp_json_new(PP_JSON_OBJECT);
			if (s->type != PP_JSON_STRING) {
				pp_json_free(o);
				return pp_fail(err, PP_EINVALID, "subnet_ids must be strings");
			}
			if (pp_json_set_string(o, "id", s->str) || pp_json_append(list, o))
				return pp_fail(err, PP_ENOMEM, "out of memory");
		}
	}
	struct pp_json *dns = pp_json_get(job, "dns_servers");
	if (pp_json_is(dns, PP_JSON_ARRAY) && dns->count) {
		struct pp_json *cfg = pp_json_new(PP_JSON_OBJECT);
		if (pp_json_set(cfg, "nameServers", pp_json_clone(dns)) ||
		    pp_json_set(gp, "dnsConfig", cfg))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	return 0;
}

static struct pp_json *find_group_resource(const struct pp_json *arm)
{
	pp_json_foreach (r, pp_json_get(arm, "resources")) {
		const char *type = pp_json_get_string(r, "type");
		if (type && !strcasecmp(type, ACI_GROUP_TYPE))
			return r;
	}
	return NULL;
}

/* Bytes of s that fit in max without splitting a UTF-8 character (ARM
 * counts characters, so this never exceeds its limit). */
static size_t utf8_cut(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n <= max)
		return n;
	while (max && ((unsigned char)s[max] & 0xC0) == 0x80)
		max--;
	return max;
}

/* A label as an ARM tag name: each character ARM forbids in tag names (and
 * control characters) becomes '_' ("prefect.io/flow-run-id" ->
 * "prefect.io_flow-run-id"), cut to ACI_TAG_NAME_MAX. */
static void arm_tag_name(char *out, const char *in)
{
	size_t n = utf8_cut(in, ACI_TAG_NAME_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		out[i] = c < 0x20 || c == 0x7f || strchr(ACI_TAG_NAME_FORBIDDEN, c) ? '_' : in[i];
	}
	out[n] = '\0';
}

static bool arm_reserved_name(const char *name)
{
	return !strncasecmp(name, "microsoft", 9) || !strncasecmp(name, "azure", 5) ||
	       !strncasecmp(name, "windows", 7);
}

/* Tag names are case-insensitive to ARM. */
static struct pp_json *find_tag(struct pp_json *tags, const char *name)
{
	pp_json_foreach (t, tags)
		if (!strcasecmp(t->key, name))
			return t;
	return NULL;
}

/* Add one tag (name already valid); the first of a name wins. */
static int add_tag(struct pp_run_io *io, struct pp_json *tags, const char *name,
		   const struct pp_json *v, struct pp_error *err)
{
	if (v->type == PP_JSON_NULL || find_tag(tags, name))
		return 0;
	if (tags->count >= ACI_MAX_TAGS - 1) {
		pp_warn("aci run %s: tag '%s' left out: ARM allows %d tags", io->run_id, name,
			ACI_MAX_TAGS);
		return 0;
	}
	/* ARM tags are strings; a value keeps its characters, cut to the limit. */
	char *text = v->type == PP_JSON_STRING ? NULL : pp_json_to_string(v, PP_JSON_COMPACT);
	const char *val = v->type == PP_JSON_STRING ? v->str : text;
	int rc = !val || pp_json_set(tags, name,
				     pp_json_new_stringn(val, utf8_cut(val, ACI_TAG_VALUE_MAX)));
	free(text);
	return rc ? pp_fail(err, PP_ENOMEM, "out of memory") : 0;
}

/* tags: the template's own, then every label (prefect.io/flow-run-id, ...),
 * as valid ARM tags, then pushpool-run-id. Names ARM reserves are left out
 * with a warning, as are tags past ARM's limit of 50. */
static int shape_tags(struct pp_run_io *io, struct pp_json *body, struct pp_error *err)
{
	struct pp_json *given = pp_json_detach(pp_json_get(body, "tags"));
	if (given && given->type != PP_JSON_OBJECT) {
		pp_json_free(given);
		return pp_fail(err, PP_EINVALID,
			       "arm_template container group: tags must be an "
			       "object of name: value");
	}
	struct pp_json *tags = pp_json_new(PP_JSON_OBJECT);
	if (!tags || pp_json_set(body, "tags", tags)) {
		pp_json_free(given);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	const struct pp_json *sources[] = {given, pp_json_get(io->job, "labels")};
	int rc = 0;
	for (size_t i = 0; i < 2 && !rc; i++) {
		pp_json_foreach (t, sources[i]) {
			char name[ACI_TAG_NAME_MAX + 1];
			arm_tag_name(name, t->key);
			if (!name[0] || arm_reserved_name(name)) {
				pp_warn("aci run %s: tag '%s' left out (an empty name, or one "
					"starting with microsoft, azure or windows, which ARM "
					"reserves)",
					io->run_id, t->key);
				continue;
			}
			if ((rc = add_tag(io, tags, name, t, err)))
				break;
		}
	}
	pp_json_free(given);
	struct pp_json *clash = find_tag(tags, "pushpool-run-id");
	if (clash)
		pp_json_free(pp_json_detach(clash));
	if (!rc && pp_json_set_string(tags, "pushpool-run-id", io->run_id))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	return rc;
}

/* Build the PUT body from the rendered template's containerGroups resource. */
static int shape_body(struct pp_run_io *io, struct aci_state *st, struct pp_error *err)
{
	const struct pp_json *job = io->job;
	struct pp_json *res = find_group_resource(pp_json_get(job, "arm_template"));
	if (!res)
		return pp_fail(err, PP_EINVALID,
			       "arm_template.resources has no " ACI_GROUP_TYPE " resource");
	struct pp_json *body = pp_json_new(PP_JSON_OBJECT);
	st->body = body;
	static const char *const kept[] = {"location", "tags",	     "zones",
					   "identity", "properties", NULL};
	for (size_t i = 0; kept[i]; i++) {
		struct pp_json *v = pp_json_get(res, kept[i]);
		if (v && pp_json_set(body, kept[i], pp_json_clone(v)))
			return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	pp_json_strip_nulls(body);
	const char *loc = pp_json_get_string(job, "location");
	if (loc && *loc && pp_json_set_string(body, "location", loc))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	loc = pp_json_get_string(body, "location");
	/* "[resourceGroup().location]" and friends: ask ARM for the group's. */
	if (!loc || is_arm_expression(loc))
		pp_json_remove(body, "location");

	struct pp_json *gp = pp_json_get(body, "properties");
	struct pp_json *c0 = pp_json_at(pp_json_get(gp, "containers"), 0);
	struct pp_json *cp = pp_json_get(c0, "properties");
	if (!pp_json_is(cp, PP_JSON_OBJECT))
		return pp_fail(err, PP_EINVALID,
			       "arm_template container group: properties.containers[0].properties "
			       "is missing");
	const char *cname = pp_json_get_string(c0, "name");
	if ((!cname || is_arm_expression(cname)) && pp_json_set_string(c0, "name", st->group))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	const char *image = pp_json_get_string(job, "image");
	if (image && *image && pp_json_set_string(cp, "image", image))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	if (!pp_json_get_string(cp, "image") || !*pp_json_get_string(cp, "image"))
		return pp_fail(err, PP_EINVALID, "no image: set the image variable");
	int rc = set_command(cp, job, err);
	if (!rc)
		rc = build_env(cp, pp_json_get(job, "env"), err);
	if (!rc)
		rc = set_resources(cp, job, err);
	if (!rc)
		rc = add_group_options(body, gp, job, err);
	if (rc)
		return rc;
	/* A run is one attempt: a restarting group would run the flow twice. */
	if (pp_json_set_string(gp, "restartPolicy", "Never"))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	if (!pp_json_get(gp, "osType") && pp_json_set_string(gp, "osType", "Linux"))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	rc = shape_tags(io, body, err);
	if (rc)
		return rc;
	char path[512] = "";
	return check_expressions(body, path, sizeof(path), 0, err);
}

static int group_url(struct aci_state *st, struct pp_error *err)
{
	int n = snprintf(st->group_url, sizeof(st->group_url),
			 "%s/subscriptions/%s/resourceGroups/%s/providers/"
			 "Microsoft.ContainerInstance/containerGroups/%s?api-version=%s",
			 st->base, st->sub, st->rg, st->group, st->api_version);
	if (n < 0 || (size_t)n >= sizeof(st->group_url))
		return pp_fail(err, PP_EINVALID, "aci: container group URL is too long");
	return 0;
}

static int set_ids(struct aci_state *st, const char *sub, const char *rg, struct pp_error *err)
{
	if (!sub || !valid_chars(sub, "-", sizeof(st->sub) - 1))
		return pp_fail(err, PP_EINVALID,
			       "aci: subscription_id is missing or not a subscription id");
	if (!rg || !valid_chars(rg, "-_.()", 90) || rg[strlen(rg) - 1] == '.')
		return pp_fail(err, PP_EINVALID,
			       "aci: resource_group_name '%s' is missing or invalid (1-90 of "
			       "letters, digits, -_.() not ending in '.')",
			       rg ? rg : "");
	snprintf(st->sub, sizeof(st->sub), "%s", sub);
	/* Parentheses are the only path-unsafe characters allowed. */
	size_t k = 0;
	for (const char *p = rg; *p && k + 4 < sizeof(st->rg); p++) {
		if (*p == '(' || *p == ')')
			k += (size_t)snprintf(st->rg + k, sizeof(st->rg) - k, "%%%02X", *p);
		else
			st->rg[k++] = *p;
	}
	st->rg[k] = '\0';
	return 0;
}

static void read_options(struct aci_state *st, const struct pp_json *job)
{
	const char *ver = pp_json_get_string(job, "api_version");
	if (!ver || !valid_chars(ver, "-", sizeof(st->api_version) - 1))
		ver = ACI_DEFAULT_API_VERSION;
	snprintf(st->api_version, sizeof(st->api_version), "%s", ver);
	st->keep_group = pp_json_get_bool(job, "keep_container_group", false);
	st->start_timeout_s = (long)pp_json_get_int(job, "task_start_timeout_seconds",
						    ACI_DEFAULT_START_TIMEOUT_S);
	double poll;
	st->poll_ms = pp_json_get_number(job, "task_watch_poll_interval", &poll) && poll > 0
			      ? (long)(poll * 1000.0)
			      : ACI_DEFAULT_POLL_MS;
	st->started_ms = pp_mono_ms();
}

static int aci_prepare(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	const struct pp_json *job = io->job;
	int rc;

	if (!pp_json_is(job, PP_JSON_OBJECT))
		return pp_fail(err, PP_EINVALID, "aci: rendered job configuration is missing");
	const char *sub = pp_json_get_string(job, "subscription_id");
	if ((!sub || !*sub) && io->cred)
		sub = pp_cred_project(io->cred);
	read_options(st, job);
	if ((rc = set_ids(st, sub, pp_json_get_string(job, "resource_group_name"), err)))
		return rc;
	if ((rc = pp_base_url(st->base, sizeof(st->base), io->endpoint, ACI_DEFAULT_ENDPOINT,
			      err)) ||
	    (rc = pp_derive_name(st->group, sizeof(st->group), io->run_id, io->attempt, err)) ||
	    (rc = group_url(st, err)))
		return pp_error_prefix(err, "aci: ");
	if ((rc = shape_body(io, st, err)))
		return pp_error_prefix(err, "aci: ");
	st->step = pp_json_get(st->body, "location") ? S_GET : S_RG;
	st->del = D_DELETE;
	return 0;
}

/* infra id: the group's ARM id, /subscriptions/S/resourceGroups/R/providers/
 * Microsoft.ContainerInstance/containerGroups/N. */
static int aci_restore(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	char sub[64], rg[288], name[64];
	if (sscanf(io->infra_id,
		   "/subscriptions/%63[^/]/resourceGroups/%287[^/]/providers/"
		   "Microsoft.ContainerInstance/containerGroups/%63[^/]",
		   sub, rg, name) != 3)
		return pp_fail(err, PP_EINVALID,
			       "aci: infra id '%s' is not a container group id (/subscriptions/S/"
			       "resourceGroups/R/providers/Microsoft.ContainerInstance/"
			       "containerGroups/N)",
			       io->infra_id);
	read_options(st, io->job);
	/* The id carries the resource group already encoded as on the wire. */
	snprintf(st->sub, sizeof(st->sub), "%s", sub);
	snprintf(st->rg, sizeof(st->rg), "%s", rg);
	snprintf(st->group, sizeof(st->group), "%s", name);
	int rc = pp_base_url(st->base, sizeof(st->base), io->endpoint, ACI_DEFAULT_ENDPOINT, err);
	if (!rc)
		rc = group_url(st, err);
	st->step = S_DONE;
	st->del = D_DELETE;
	return rc;
}

static int send(struct pp_run_io *io, const char *method, const char *url,
		const struct pp_json *body, struct pp_error *err)
{
	int rc = pp_req_json(io, method, url, "application/json", body, err);
	return rc ? rc : PP_STEP_SEND;
}

static int send_rg(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	char url[512];
	int n = snprintf(url, sizeof(url), "%s/subscriptions/%s/resourcegroups/%s?api-version=%s",
			 st->base, st->sub, st->rg, ACI_RG_API_VERSION);
	if (n < 0 || (size_t)n >= sizeof(url))
		return pp_fail(err, PP_EINVALID, "aci: resource group URL is too long");
	return send(io, "GET", url, NULL, err);
}

/* Status URLs come from the server; the token goes only to the ARM host we
 * were configured with. */
static int take_async_url(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	const char *url = pp_http_resp_header(io->resp, "azure-asyncoperation");
	st->async_is_location = false;
	if (!url || !*url) {
		url = pp_http_resp_header(io->resp, "location");
		st->async_is_location = true;
	}
	st->async_url[0] = '\0';
	if (!url || !*url)
		return 0;
	const char *scheme = strstr(st->base, "://");
	const char *host_end = scheme ? strchr(scheme + 3, '/') : NULL;
	size_t origin = host_end ? (size_t)(host_end - st->base) : strlen(st->base);
	if (strncmp(url, st->base, origin) || (url[origin] != '/' && url[origin] != '\0'))
		return pp_fail(err, PP_EINVALID,
			       "aci: status URL '%.200s' is not on the ARM endpoint %s", url,
			       st->base);
	return pp_copy_str(st->async_url, sizeof(st->async_url), url, "aci status URL", err);
}

static long wait_ms(const struct pp_run_io *io)
{
	return io->resp && io->resp->retry_after_ms > 0 ? io->resp->retry_after_ms
							: ACI_ASYNC_POLL_MS;
}

/* One answer from an async operation status URL: 1 finished, 0 still
 * running, negative on failure. */
static int async_result(struct pp_run_io *io, const char *what, struct pp_error *err)
{
	struct aci_state *st = io->state;
	if (st->async_is_location) {
		if (io->resp->status == 202)
			return 0;
		return 1;
	}
	struct pp_json *op;
	int rc = pp_resp_json(io, what, &op, err);
	if (rc)
		return rc;
	const char *status = pp_json_get_string(op, "status");
	if (!status || !strcmp(status, "InProgress") || !strcmp(status, "Accepted") ||
	    !strcmp(status, "Running") || !strcmp(status, "Creating") ||
	    !strcmp(status, "Deleting")) {
		pp_json_free(op);
		return 0;
	}
	if (!strcmp(status, "Succeeded")) {
		pp_json_free(op);
		return 1;
	}
	struct pp_json *e = pp_json_get(op, "error");
	rc = pp_fail(err, PP_EINVALID, "ACI %s %s: operation %s: %s: %s", what, st->group, status,
		     pp_json_get_string(e, "code") ? pp_json_get_string(e, "code") : "",
		     pp_json_get_string(e, "message") ? pp_json_get_string(e, "message") : "");
	pp_json_free(op);
	return rc;
}

static int submitted(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	int n = snprintf(io->infra_id, sizeof(io->infra_id),
			 "/subscriptions/%s/resourceGroups/%s/providers/"
			 "Microsoft.ContainerInstance/containerGroups/%s",
			 st->sub, st->rg, st->group);
	if (n < 0 || (size_t)n >= sizeof(io->infra_id))
		return pp_fail(err, PP_EINVALID, "aci: container group id is too long");
	st->step = S_DONE;
	st->started_ms = pp_mono_ms();
	return PP_STEP_DONE;
}

static int on_rg(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	struct pp_json *rg;
	int rc = pp_resp_json(io, "ACI get resource group", &rg, err);
	if (rc)
		return rc;
	const char *loc = pp_json_get_string(rg, "location");
	if (!loc || !*loc)
		rc = pp_fail(err, PP_EINVALID, "ACI get resource group: answer has no location");
	else if (pp_json_set_string(st->body, "location", loc))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	pp_json_free(rg);
	if (rc)
		return rc;
	st->step = S_GET;
	return send(io, "GET", st->group_url, NULL, err);
}

static int on_put(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	struct pp_json *g;
	int rc = take_async_url(io, err);
	if (rc || (rc = pp_resp_json(io, "ACI create container group", &g, err)))
		return rc;
	char ps[32];
	snprintf(ps, sizeof(ps), "%s",
		 pp_json_get_string(pp_json_get(g, "properties"), "provisioningState")
			 ? pp_json_get_string(pp_json_get(g, "properties"), "provisioningState")
			 : "");
	pp_json_free(g);
	bool done = !*ps || !strcmp(ps, "Succeeded") || !strcmp(ps, "Failed") ||
		    !strcmp(ps, "Canceled");
	pp_info("aci run %s: container group %s %s (%s)", io->run_id, st->group,
		io->resp->status == 201 ? "created" : "updated", *ps ? ps : "no state");
	/* A failed provisioning shows in the instance view; status reports it. */
	if (done || !st->async_url[0])
		return submitted(io, err);
	st->step = S_POLL;
	io->poll_after_ms = wait_ms(io);
	return PP_STEP_WAIT;
}

static int aci_submit(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	int rc;

	if (io->resp) {
		log_ratelimit(io);
		if (io->resp_rc && !(st->step == S_GET && io->resp_rc == PP_ENOTFOUND)) {
			const char *what = st->step == S_RG    ? "get resource group"
					   : st->step == S_GET ? "get container group"
					   : st->step == S_PUT ? "create container group"
							       : "poll create operation";
			rc = aci_error(io, what, NULL, 0, err);
			/* The PUT may have landed although its answer was lost. */
			if (st->step == S_PUT && pp_err_retryable(rc))
				st->step = S_GET;
			return rc;
		}
	}
	switch (st->step) {
	case S_RG: return io->resp ? on_rg(io, err) : send_rg(io, err);
	case S_GET:
		if (!io->resp)
			return send(io, "GET", st->group_url, NULL, err);
		if (io->resp_rc == PP_ENOTFOUND) {
			st->step = S_PUT;
			return send(io, "PUT", st->group_url, st->body, err);
		}
		/* Ours by its name: an earlier try created it. */
		pp_info("aci run %s: container group %s exists, adopting it", io->run_id,
			st->group);
		return submitted(io, err);
	case S_PUT:
		return io->resp ? on_put(io, err) : send(io, "PUT", st->group_url, st->body, err);
	case S_POLL:
		if (!io->resp)
			return send(io, "GET", st->async_url, NULL, err);
		rc = async_result(io, "create container group", err);
		if (rc < 0)
			return rc;
		if (rc == 1)
			return submitted(io, err);
		io->poll_after_ms = wait_ms(io);
		return PP_STEP_WAIT;
	case S_DONE: return PP_STEP_DONE;
	}
	return pp_fail(err, PP_EINVALID, "aci: bad submit step %d", (int)st->step);
}

static const char *first_event_message(const struct pp_json *view)
{
	const char *msg = NULL;
	pp_json_foreach (e, pp_json_get(view, "events"))
		if (pp_json_get_string(e, "message"))
			msg = pp_json_get_string(e, "message");
	return msg;
}

static void map_group(struct pp_run_io *io, const struct pp_json *g)
{
	struct aci_state *st = io->state;
	const struct pp_json *gp = pp_json_get(g, "properties");
	const char *ps = pp_json_get_string(gp, "provisioningState");
	const struct pp_json *c0 = pp_json_at(pp_json_get(gp, "containers"), 0);
	const struct pp_json *view = pp_json_path(c0, "properties.instanceView");
	const struct pp_json *cur = pp_json_get(view, "currentState");
	const char *state = pp_json_get_string(cur, "state");
	const char *detail = pp_json_get_string(cur, "detailStatus");

	io->exit_code = -1;
	io->message[0] = '\0';
	if (state && !strcmp(state, "Terminated")) {
		io->exit_code = (int)pp_json_get_int(cur, "exitCode", -1);
		io->state_out = io->exit_code == 0 ? PP_RUN_SUCCEEDED : PP_RUN_FAILED;
		if (io->exit_code != 0)
			pp_set_message(io->message, sizeof(io->message),
				       "container exited with code %d%s%s", io->exit_code,
				       detail && *detail ? ": " : "", detail ? detail : "");
		return;
	}
	if (ps && (!strcmp(ps, "Failed") || !strcmp(ps, "Canceled"))) {
		const char *why = first_event_message(view);
		if (!why)
			why = first_event_message(pp_json_get(gp, "instanceView"));
		io->state_out = PP_RUN_CRASHED;
		pp_set_message(io->message, sizeof(io->message), "provisioning %s%s%s", ps,
			       why || detail ? ": " : "",
			       why	? why
			       : detail ? detail
					: "");
		return;
	}
	if (state && !strcmp(state, "Running")) {
		io->state_out = PP_RUN_RUNNING;
		return;
	}
	double waited = (double)(pp_mono_ms() - st->started_ms) / 1000.0;
	if (waited >= (double)st->start_timeout_s) {
		const char *why = first_event_message(view);
		io->state_out = PP_RUN_CRASHED;
		pp_set_message(io->message, sizeof(io->message),
			       "container did not start within %ld s (state %s%s%s)",
			       st->start_timeout_s,
			       state ? state
			       : ps  ? ps
				     : "unknown",
			       detail || why ? ": " : "",
			       detail ? detail
			       : why  ? why
				      : "");
		return;
	}
	io->state_out = ps && (!strcmp(ps, "Pending") || !strcmp(ps, "Accepted"))
				? PP_RUN_QUEUED
				: PP_RUN_PROVISIONING;
}

static int aci_status(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	if (!io->infra_id[0])
		return pp_fail(err, PP_EINVALID, "aci status: run %s has no container group",
			       io->run_id);
	if (!io->resp)
		return send(io, "GET", st->group_url, NULL, err);
	log_ratelimit(io);
	if (io->resp_rc == PP_ENOTFOUND) {
		/* Deleted under us: by a cancel, or by someone else. */
		io->state_out = PP_RUN_CRASHED;
		io->exit_code = -1;
		pp_set_message(io->message, sizeof(io->message),
			       "container group %s no longer exists", st->group);
		return PP_STEP_DONE;
	}
	if (io->resp_rc)
		return aci_error(io, "get container group", NULL, 0, err);
	struct pp_json *g;
	int rc = pp_resp_json(io, "ACI get container group", &g, err);
	if (rc)
		return rc;
	map_group(io, g);
	pp_json_free(g);
	io->poll_after_ms = st->poll_ms;
	return PP_STEP_DONE;
}

/* DELETE and follow it until the group is gone. */
static int delete_group(struct pp_run_io *io, const char *what, struct pp_error *err)
{
	struct aci_state *st = io->state;
	int rc;

	switch (st->del) {
	case D_DELETE:
		if (!io->resp)
			return send(io, "DELETE", st->group_url, NULL, err);
		log_ratelimit(io);
		if (io->resp_rc == PP_ENOTFOUND || io->resp->status == 204) {
			st->del = D_DONE;
			return PP_STEP_DONE;
		}
		if (io->resp_rc)
			return aci_error(io, what, NULL, 0, err);
		if (io->resp->status != 202) {
			st->del = D_DONE;
			return PP_STEP_DONE;
		}
		if ((rc = take_async_url(io, err)))
			return rc;
		if (!st->async_url[0]) {
			/* No status URL: the group's own GET turns 404 once gone. */
			snprintf(st->async_url, sizeof(st->async_url), "%s", st->group_url);
			st->async_is_location = true;
		}
		st->del = D_POLL;
		io->poll_after_ms = wait_ms(io);
		return PP_STEP_WAIT;
	case D_POLL:
		if (!io->resp)
			return send(io, "GET", st->async_url, NULL, err);
		log_ratelimit(io);
		if (io->resp_rc == PP_ENOTFOUND) {
			st->del = D_DONE;
			return PP_STEP_DONE;
		}
		if (io->resp_rc)
			return aci_error(io, what, NULL, 0, err);
		rc = async_result(io, what, err);
		if (rc < 0)
			return rc;
		/* Polling the group itself: it exists until the GET says 404. */
		if (rc == 1 && strcmp(st->async_url, st->group_url)) {
			pp_info("aci run %s: container group %s deleted", io->run_id, st->group);
			st->del = D_DONE;
			return PP_STEP_DONE;
		}
		io->poll_after_ms = wait_ms(io);
		return PP_STEP_WAIT;
	case D_DONE: return PP_STEP_DONE;
	}
	return pp_fail(err, PP_EINVALID, "aci: bad delete step %d", (int)st->del);
}

static int aci_cancel(struct pp_run_io *io, struct pp_error *err)
{
	if (!io->infra_id[0])
		return pp_fail(err, PP_EINVALID, "aci cancel: run %s has no container group",
			       io->run_id);
	return delete_group(io, "delete container group (cancel)", err);
}

static int aci_cleanup(struct pp_run_io *io, struct pp_error *err)
{
	struct aci_state *st = io->state;
	if (st->keep_group || !io->infra_id[0])
		return PP_STEP_DONE;
	return delete_group(io, "delete container group", err);
}

static void aci_release(void *state)
{
	struct aci_state *st = state;
	pp_json_free(st->body);
	st->body = NULL;
}

static const char *const aci_pool_types[] = {"azure-container-instance:push",
					     "azure-container-instance", NULL};

/* The resource group's location is read first; no container group exists
 * yet, so the create request follows. */
static const struct pp_dry_answer aci_dry_run[] = {
	{.method = "GET",
	 .url_part = "/containerGroups/",
	 .status = 404,
	 .body = "{\"error\":{\"code\":\"ResourceNotFound\",\"message\":\"(dry run: no group "
		 "yet)\"}}"},
	{.method = "GET", .status = 200, .body = "{\"location\":\"<resource-group-location>\"}"},
	{.method = "POST", .status = 200, .body = "{}"},
	{0},
};

const struct pp_provider pp_provider_aci = {
	.abi = PP_PROVIDER_ABI,
	.name = "aci",
	.pool_types = aci_pool_types,
	.cred_type = "azure",
	.dry_run = aci_dry_run,
	.state_size = sizeof(struct aci_state),
	.prepare = aci_prepare,
	.restore = aci_restore,
	.submit = aci_submit,
	.status = aci_status,
	.cancel = aci_cancel,
	.cleanup = aci_cleanup,
	.release = aci_release,
	.release_shared = NULL,
};
