/* Azure Container Instances: the container group PUT body, shaped from the
 * rendered arm_template's containerGroups resource: command, environment
 * (secure values for secret-looking names), resources, group options and
 * tags, and a check that no ARM template expression is left, since the
 * group is PUT directly rather than deployed as a template. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "providers/aci.h"
#include "providers/common.h"
#include "providers/provider.h"

#define ACI_DEFAULT_ENTRYPOINT "/opt/prefect/entrypoint.sh"
#define ACI_DEFAULT_COMMAND    "prefect flow-run execute"
#define ACI_GROUP_TYPE	       "Microsoft.ContainerInstance/containerGroups"
/* ARM's tag limits (Azure Resource Manager docs, "Tag resources":
 * Limitations): 50 tags, names of at most 512 and values of at most 256
 * characters, names without < > % & \ ? /, and no name prefixed
 * microsoft, azure or windows (resources-2021-04-01.json, Tags_CreateOrUpdate). */
#define ACI_MAX_TAGS	       50
#define ACI_TAG_NAME_MAX       512
#define ACI_TAG_VALUE_MAX      256
#define ACI_TAG_NAME_FORBIDDEN "<>%&\\?/"

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

/* Whether any string under j starts with '[': only those can be ARM
 * expressions or escapes, and most bodies have none, so the walk that keeps
 * paths for the message runs only when one does. */
static bool has_bracket_string(const struct pp_json *j)
{
	if (j->type == PP_JSON_STRING)
		return j->str[0] == '[';
	pp_json_foreach (c, j)
		if (has_bracket_string(c))
			return true;
	return false;
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
	/* Two left for pushpool's run and store tags. */
	if (tags->count >= ACI_MAX_TAGS - 2) {
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
 * as valid ARM tags, then pushpool-run-id and pushpool-store-id. Names ARM reserves are left out
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
	/* Ours win over a template's or label's tag of the same name. */
	const char *ours[][2] = {{PP_LABEL_RUN, io->run_id}, {PP_LABEL_STORE, io->store_id}};
	for (size_t i = 0; i < 2 && !rc; i++) {
		struct pp_json *clash = find_tag(tags, ours[i][0]);
		if (clash)
			pp_json_free(pp_json_detach(clash));
		if (ours[i][1] && *ours[i][1] && pp_json_set_string(tags, ours[i][0], ours[i][1]))
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
	}
	return rc;
}

/* Build the PUT body from the rendered template's containerGroups resource. */
int pp_aci_shape_body(struct pp_run_io *io, struct aci_state *st, struct pp_error *err)
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
	if (!has_bracket_string(body))
		return 0;
	char path[512] = "";
	return check_expressions(body, path, sizeof(path), 0, err);
}
