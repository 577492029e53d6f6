/* The table of backends. A backend is added by declaring its provider here
 * and listing it in pp_providers[]; nothing else in the core names it. */
#include "providers/provider.h"

#include <string.h>

extern const struct pp_provider pp_provider_cloudrun;
extern const struct pp_provider pp_provider_ecs;
extern const struct pp_provider pp_provider_aci;
extern const struct pp_provider pp_provider_modal;

const struct pp_provider *const pp_providers[] = {
	&pp_provider_cloudrun, &pp_provider_ecs, &pp_provider_aci, &pp_provider_modal, NULL,
};

const struct pp_provider *pp_provider_find(const char *pool_type)
{
	if (!pool_type)
		return NULL;
	for (size_t i = 0; pp_providers[i]; i++)
		for (const char *const *t = pp_providers[i]->pool_types; t && *t; t++)
			if (!strcmp(*t, pool_type))
				return pp_providers[i];
	return NULL;
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
