/* The table of provisioners. A cloud is added by declaring its provisioner
 * here and listing it in provisioners[]; nothing else names it. */
#include <stdio.h>
#include <string.h>

#include "provision/provision.h"

extern const struct pp_provisioner pp_provisioner_gcp;
extern const struct pp_provisioner pp_provisioner_aws;
extern const struct pp_provisioner pp_provisioner_modal;

static const struct pp_provisioner *const provisioners[] = {
	&pp_provisioner_gcp,
	&pp_provisioner_aws,
	&pp_provisioner_modal,
	NULL,
};

const struct pp_provisioner *pp_provisioner_find(const char *pool_type)
{
	for (size_t i = 0; pool_type && provisioners[i]; i++)
		for (const char *const *t = provisioners[i]->pool_types; *t; t++)
			if (!strcmp(*t, pool_type))
				return provisioners[i]->abi == PP_PROVISIONER_ABI ? provisioners[i]
										  : NULL;
	return NULL;
}

void pp_provisioner_types(char *out, size_t size)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; provisioners[i] && len < size; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%s", i ? ", " : "",
					provisioners[i]->pool_types[0]);
}
