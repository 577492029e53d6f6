/* The table of backends. A backend is added by declaring its provider here
 * and listing it in pp_providers[]; nothing else in the core names it. */
#include "providers/provider.h"

#include <stdio.h>
#include <string.h>

extern const struct pp_provider pp_provider_cloudrun;
extern const struct pp_provider pp_provider_ecs;
extern const struct pp_provider pp_provider_aci;
extern const struct pp_provider pp_provider_modal;

const struct pp_provider *const pp_providers[] = {
	&pp_provider_cloudrun, &pp_provider_ecs, &pp_provider_aci, &pp_provider_modal, NULL,
};

/* Providers added at run time, after the built-in ones: a test's fake
 * cloud, or a provider an embedding program brings. */
#define REGISTERED_MAX 8
static const struct pp_provider *registered[REGISTERED_MAX + 1];

static const struct pp_provider *find_in(const struct pp_provider *const *list,
					 const char *pool_type)
{
	for (size_t i = 0; list[i]; i++)
		for (const char *const *t = list[i]->pool_types; t && *t; t++)
			if (!strcmp(*t, pool_type))
				return list[i];
	return NULL;
}

const struct pp_provider *pp_provider_find(const char *pool_type)
{
	if (!pool_type)
		return NULL;
	const struct pp_provider *p = find_in(pp_providers, pool_type);
	return p ? p : find_in(registered, pool_type);
}

int pp_provider_register(const struct pp_provider *p, struct pp_error *err)
{
	if (!p || p->abi != PP_PROVIDER_ABI || !p->name || !p->pool_types || !p->pool_types[0])
		return pp_fail(
			err, PP_EINVALID, "provider %s: ABI %u (expected %u) or no pool types",
			p && p->name ? p->name : "(unnamed)", p ? p->abi : 0, PP_PROVIDER_ABI);
	for (const char *const *t = p->pool_types; *t; t++)
		if (pp_provider_find(*t))
			return pp_fail(err, PP_ECONFLICT,
				       "provider %s: pool type %s is already served by %s", p->name,
				       *t, pp_provider_find(*t)->name);
	size_t n = 0;
	while (registered[n])
		n++;
	if (n == REGISTERED_MAX)
		return pp_fail(err, PP_ENOMEM, "provider %s: no room (%d registered)", p->name,
			       REGISTERED_MAX);
	registered[n] = p;
	return 0;
}

const char *pp_pool_type_canonical(const char *type)
{
	const struct pp_provider *p = pp_provider_find(type);
	return p ? p->pool_types[0] : NULL;
}

void pp_pool_types_text(bool aliases, const char *sep, const char *last, char *out, size_t n)
{
	const char *names[32];
	size_t count = 0, o = 0;
	for (size_t i = 0; pp_providers[i]; i++) {
		const char *const *t = pp_providers[i]->pool_types;
		for (size_t j = aliases ? 1 : 0; t[j] && (aliases || j == 0); j++)
			if (count < sizeof(names) / sizeof(names[0]))
				names[count++] = t[j];
	}
	if (n)
		out[0] = '\0';
	for (size_t k = 0; k < count && o < n; k++) {
		int w = snprintf(out + o, n - o, "%s%s",
				 k == 0		  ? ""
				 : k + 1 == count ? last
						  : sep,
				 names[k]);
		if (w < 0)
			break;
		o += (size_t)w;
	}
}

const char *pp_run_state_name(enum pp_run_state s)
{
	switch (s) {
	case PP_RUN_PENDING: return "PENDING";
	case PP_RUN_QUEUED: return "QUEUED";
	case PP_RUN_PROVISIONING: return "PROVISIONING";
	case PP_RUN_RUNNING: return "RUNNING";
	case PP_RUN_SUCCEEDED: return "SUCCEEDED";
	case PP_RUN_FAILED: return "FAILED";
	case PP_RUN_CRASHED: return "CRASHED";
	case PP_RUN_CANCELLED: return "CANCELLED";
	}
	return "UNKNOWN";
}

bool pp_run_state_terminal(enum pp_run_state s)
{
	return s == PP_RUN_SUCCEEDED || s == PP_RUN_FAILED || s == PP_RUN_CRASHED ||
	       s == PP_RUN_CANCELLED;
}

static const char *const start_failure_names[PP_START_FAILURE_COUNT] = {
	[PP_START_OK] = "none",
	[PP_START_IMAGE_PULL] = "image_pull",
	[PP_START_CAPACITY] = "capacity",
	[PP_START_SPOT_INTERRUPTION] = "spot_interruption",
	[PP_START_RESOURCE_INIT] = "resource_init",
	[PP_START_OTHER] = "other",
};

const char *pp_start_failure_name(enum pp_start_failure f)
{
	return (unsigned)f < PP_START_FAILURE_COUNT ? start_failure_names[f] : "unknown";
}

int pp_start_failure_parse(const char *name)
{
	for (int i = PP_START_OK + 1; name && i < PP_START_FAILURE_COUNT; i++)
		if (!strcmp(start_failure_names[i], name))
			return i;
	return -1;
}
