/* The table of provisioners. A cloud is added by declaring its provisioner
 * here and listing it in provisioners[]; nothing else names it. */
#include <stdio.h>
#include <string.h>

#include "provision/provision.h"

extern const struct pp_provisioner pp_provisioner_gcp;
extern const struct pp_provisioner pp_provisioner_modal;

static const struct pp_provisioner *const provisioners[] = {
	&pp_provisioner_gcp,
	&pp_provisioner_modal,
	NULL,
};

/* Provisioners added at run time, after the built-in ones: a test's fake
 * cloud, or one an embedding program brings. */
#define REGISTERED_MAX 8
static const struct pp_provisioner *registered[REGISTERED_MAX + 1];

static const struct pp_provisioner *find_in(const struct pp_provisioner *const *list,
					    const char *pool_type)
{
	for (size_t i = 0; pool_type && list[i]; i++)
		for (const char *const *t = list[i]->pool_types; *t; t++)
			if (!strcmp(*t, pool_type))
				return list[i]->abi == PP_PROVISIONER_ABI ? list[i] : NULL;
	return NULL;
}

const struct pp_provisioner *pp_provisioner_find(const char *pool_type)
{
	const struct pp_provisioner *p = find_in(provisioners, pool_type);

	return p ? p : find_in(registered, pool_type);
}

int pp_provisioner_register(const struct pp_provisioner *p, struct pp_error *err)
{
	size_t n = 0;

	if (!p || p->abi != PP_PROVISIONER_ABI || !p->name || !p->pool_types || !p->pool_types[0] ||
	    !p->open || !p->inspect || !p->outputs)
		return pp_fail(
			err, PP_EINVALID, "provisioner %s: ABI %u (expected %u) or ops missing",
			p && p->name ? p->name : "(unnamed)", p ? p->abi : 0, PP_PROVISIONER_ABI);
	for (const char *const *t = p->pool_types; *t; t++)
		if (pp_provisioner_find(*t))
			return pp_fail(err, PP_ECONFLICT, "provisioner %s: pool type %s is taken",
				       p->name, *t);
	while (registered[n])
		n++;
	if (n == REGISTERED_MAX)
		return pp_fail(err, PP_ENOMEM, "provisioner %s: no room", p->name);
	registered[n] = p;
	return 0;
}

void pp_provisioner_types(char *out, size_t size)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; provisioners[i] && len < size; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%s", i ? ", " : "",
					provisioners[i]->pool_types[0]);
}
