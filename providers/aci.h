/* Private to the ACI provider: the run state that aci.c (lifecycle steps and
 * the ops table) and aci_group.c (the container group body) share. */
#ifndef PP_PROVIDERS_ACI_H
#define PP_PROVIDERS_ACI_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/json.h"
#include "providers/provider.h"

enum aci_submit_step { S_RG, S_GET, S_PUT, S_POLL, S_DONE };
enum aci_delete_step { D_DELETE, D_POLL, D_DONE };

struct aci_state {
	struct pp_cred *job_cred; /* from the job's aci_credentials, or NULL */
	char base[256];
	char api_version[32];
	char sub[64];
	char rg[288]; /* URL-encoded: 90 characters, each up to 3 */
	char group[64];
	char group_url[1024];	/* base + ARM id + api-version */
	char async_url[4096];	/* ARM accepts status URLs up to 4 KB */
	bool async_is_location; /* Location polling: 202 until done */
	bool keep_group;
	bool put_sent; /* a PUT went out: the group may exist without an infra id */
	long start_timeout_s;
	long poll_ms;
	int64_t started_ms; /* pp_mono_ms() when submit finished, for the start timeout */
	enum aci_submit_step step;
	enum aci_delete_step del;
	struct pp_json *body; /* PUT body, owned */
};
/* Build st->body, the PUT body, from the rendered template (aci_group.c). */
int pp_aci_shape_body(struct pp_run_io *io, struct aci_state *st, struct pp_error *err);

#endif
