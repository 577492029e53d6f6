/* The provisioning engine on a fake cloud: actions from states (create,
 * update, blocked, keep, delete), an apply with a foreign name changes
 * nothing, apply runs in order and destroy in reverse on owned resources
 * only, the journal is saved before and after each step, and the drop-in
 * and key files are written with their modes and load back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/log.h"
#include "provision/provision.h"
#include "providers/provider.h"

/* ---- the fake cloud ---- */

struct fake_res {
	const char *name;
	enum pp_prov_state state;
	bool owned;
	bool has_remove;
};

static struct fake_res world[8];
static size_t nworld;
static char calls[1024]; /* "create a;remove b;" in call order */
static int saves;	 /* journal saves */
static char saved[1024]; /* the last journal saved */

static int fake_create(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	char key[300];

	snprintf(key, sizeof(key), "made:%s", res->name);
	strcat(calls, "create ");
	strcat(calls, res->name);
	strcat(calls, ";");
	return pp_prov_owned_add(ctx, key, err);
}

static int fake_remove(struct pp_prov_ctx *ctx, struct pp_prov_res *res, struct pp_error *err)
{
	char key[300];

	snprintf(key, sizeof(key), "made:%s", res->name);
	strcat(calls, "remove ");
	strcat(calls, res->name);
	strcat(calls, ";");
	return pp_prov_owned_del(ctx, key, err);
}

static const struct pp_prov_kind kind_thing = {
	.name = "thing",
	.create_perms = "thing.create",
	.destroy_perms = "thing.delete",
	.create = fake_create,
	.remove = fake_remove,
};

static const struct pp_prov_kind kind_check = {
	.name = "check",
	.create_perms = "thing.get",
	.create = fake_create,
};

static int fake_open(struct pp_prov_ctx *ctx, struct pp_error *err)
{
	return 0;
}

static int fake_inspect(struct pp_prov_ctx *ctx, struct pp_prov_plan *plan, struct pp_error *err)
{
	for (size_t i = 0; i < nworld; i++) {
		struct pp_prov_res *r = pp_prov_plan_add(
			plan, world[i].has_remove ? &kind_thing : &kind_check, world[i].name, err);

		if (!r)
			return err->code;
		r->state = world[i].state;
		r->owned = world[i].owned;
	}
	return 0;
}

static int fake_outputs(struct pp_prov_ctx *ctx, struct pp_prov_out *out, struct pp_error *err)
{
	if (!(out->job_variables = pp_json_clone(ctx->vars)) ||
	    pp_json_set_string(out->job_variables, "made", "yes"))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	return pp_prov_out_file(out, "key.json", "{\"secret\": \"s3cr3t-value\"}", err) ?:
	       pp_prov_out_cred(out, "type", "modal", err) ?:
	       pp_prov_out_cred(out, "source", "file", err) ?:
	       pp_prov_out_cred(out, "file", "@key.json", err);
}

static const char *const fake_types[] = {"fakeprov:push", NULL};

static const struct pp_provisioner fake_prov = {
	.abi = PP_PROVISIONER_ABI,
	.name = "fake",
	.pool_types = fake_types,
	.cred_type = "modal",
	.open = fake_open,
	.inspect = fake_inspect,
	.outputs = fake_outputs,
};

static int fake_prepare(struct pp_run_io *io, struct pp_error *err)
{
	return 0;
}

static const struct pp_provider fake_provider = {
	.abi = PP_PROVIDER_ABI,
	.name = "fakeprov",
	.pool_types = fake_types,
	.cred_type = "modal",
	.prepare = fake_prepare,
};

static int journal_save(void *ud, const char *owned, struct pp_error *err)
{
	saves++;
	snprintf(saved, sizeof(saved), "%s", owned);
	return 0;
}

static const struct pp_prov_journal journal = {.save = journal_save};

/* ---- fixture ---- */

static char dir[64];
static struct pp_config cfg;

static int setup(void **state)
{
	struct pp_error err = {0};
	char path[128];
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/pp-prov-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/pushpool.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f,
		"[dispatcher]\nstate_dir = %s/state\nbackoff_base_ms = 10\nbackoff_max_ms = 20\n"
		"[credentials \"m\"]\ntype = modal\nsource = token\ntoken_id = ak-1\n"
		"token_secret = as-1\n"
		"[pool \"p\"]\ntype = fakeprov:push\ncredentials = m\n"
		"job_variables = {\"image\": \"i\"}\n",
		dir);
	fclose(f);
	assert_int_equal(pp_config_init(&cfg, &err), 0);
	if (pp_config_load(&cfg, path, &err))
		fail_msg("%s", err.msg);
	calls[0] = saved[0] = '\0';
	saves = 0;
	nworld = 0;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	pp_config_free(&cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void world_add(const char *name, enum pp_prov_state st, bool owned, bool has_remove)
{
	assert_true(nworld < sizeof(world) / sizeof(world[0]));
	world[nworld++] = (struct fake_res){name, st, owned, has_remove};
}

static struct pp_prov *open_prov(enum pp_prov_mode mode, const char *owned)
{
	static struct pp_prov_opts opts;
	struct pp_prov *p = NULL;
	struct pp_error err = {0};

	if (pp_prov_open(&cfg, "p", NULL, &opts, mode, &journal, owned, &p, &err))
		fail_msg("%s", err.msg);
	return p;
}

/* ---- tests ---- */

static void test_actions_and_table(void **state)
{
	struct pp_error err = {0};
	struct pp_buf table;
	int pending;

	world_add("a", PP_PROV_ABSENT, false, true);
	world_add("b", PP_PROV_PRESENT, true, true);
	world_add("c", PP_PROV_DRIFTED, true, true);
	world_add("d", PP_PROV_PRESENT, false, false);
	struct pp_prov *p = open_prov(PP_PROV_MODE_APPLY, NULL);

	assert_int_equal(pp_prov_inspect(p, &pending, &err), 0);
	assert_int_equal(pending, 2);
	const struct pp_prov_plan *plan = pp_prov_plan_of(p);
	assert_int_equal(plan->v[0].action, PP_PROV_CREATE);
	assert_int_equal(plan->v[1].action, PP_PROV_NOOP);
	assert_int_equal(plan->v[2].action, PP_PROV_UPDATE);
	assert_int_equal(plan->v[3].action, PP_PROV_NOOP);
	pp_buf_init(&table, 1 << 16);
	assert_int_equal(pp_prov_plan_print(p, &table), 0);
	assert_non_null(strstr(pp_buf_str(&table), "thing"));
	assert_non_null(strstr(pp_buf_str(&table), "create   thing.create"));
	assert_non_null(strstr(pp_buf_str(&table), "update   thing.create"));
	pp_buf_free(&table);
	pp_prov_close(p);
}

/* A foreign object holding one of the names: nothing is changed, not
 * even the steps before it. */
static void test_blocked_apply_changes_nothing(void **state)
{
	struct pp_error err = {0};
	int pending;

	world_add("a", PP_PROV_ABSENT, false, true);
	world_add("b", PP_PROV_FOREIGN, false, true);
	struct pp_prov *p = open_prov(PP_PROV_MODE_APPLY, NULL);

	assert_int_equal(pp_prov_inspect(p, &pending, &err), 0);
	assert_int_equal(pp_prov_plan_of(p)->v[1].action, PP_PROV_BLOCKED);
	assert_int_equal(pp_prov_run(p, NULL, NULL, &err), PP_ECONFLICT);
	assert_non_null(strstr(err.msg, "thing b exists without the pushpool-pool label"));
	assert_non_null(strstr(err.msg, "nothing was changed"));
	assert_string_equal(calls, "");
	assert_int_equal(saves, 0);
	pp_prov_close(p);
}

static void progress(void *ud, const char *line)
{
	strcat((char *)ud, line);
	strcat((char *)ud, "\n");
}

/* Apply in order, journal saved with each record and after each step. */
static void test_apply_in_order_with_journal(void **state)
{
	struct pp_error err = {0};
	char lines[512] = "";
	int pending;

	world_add("a", PP_PROV_ABSENT, false, true);
	world_add("b", PP_PROV_PRESENT, true, true);
	world_add("c", PP_PROV_ABSENT, false, true);
	struct pp_prov *p = open_prov(PP_PROV_MODE_APPLY, "made:b\n");

	assert_int_equal(pp_prov_inspect(p, &pending, &err), 0);
	assert_int_equal(pending, 2);
	assert_int_equal(pp_prov_run(p, progress, lines, &err), 0);
	assert_string_equal(calls, "create a;create c;");
	assert_string_equal(lines, "[1/2] create thing a\n[2/2] create thing c\n");
	assert_string_equal(saved, "made:b\nmade:a\nmade:c\n");
	/* One save per record added, one after each step. */
	assert_int_equal(saves, 4);
	pp_prov_close(p);
}

/* Destroy: reverse order, owned only; not owned is kept; a read-only
 * check has nothing to remove. */
static void test_destroy_reverse_owned_only(void **state)
{
	struct pp_error err = {0};
	int pending;

	world_add("a", PP_PROV_PRESENT, true, true);
	world_add("b", PP_PROV_PRESENT, false, true);
	world_add("c", PP_PROV_DRIFTED, true, true);
	world_add("d", PP_PROV_PRESENT, false, false);
	world_add("e", PP_PROV_ABSENT, true, true);
	struct pp_prov *p = open_prov(PP_PROV_MODE_DESTROY, "made:a\nmade:c\n");

	assert_int_equal(pp_prov_inspect(p, &pending, &err), 0);
	const struct pp_prov_plan *plan = pp_prov_plan_of(p);
	assert_int_equal(plan->v[0].action, PP_PROV_DELETE);
	assert_int_equal(plan->v[1].action, PP_PROV_KEEP);
	assert_int_equal(plan->v[2].action, PP_PROV_DELETE);
	assert_int_equal(plan->v[3].action, PP_PROV_NOOP);
	assert_int_equal(plan->v[4].action, PP_PROV_NOOP);
	assert_int_equal(pending, 2);
	assert_int_equal(pp_prov_run(p, NULL, NULL, &err), 0);
	assert_string_equal(calls, "remove c;remove a;");
	assert_string_equal(saved, "");
	pp_prov_close(p);
}

/* The drop-in re-opens the pool, the key file is 0600 in a 0700
 * directory, the secret is not in the drop-in, and the whole loads back. */
static void test_dropin_and_files(void **state)
{
	struct pp_error err = {0};
	struct pp_prov_out out;
	char d[128], k[128], path[256], *dropin = NULL;
	struct stat sb;
	int pending;

	world_add("a", PP_PROV_PRESENT, true, true);
	struct pp_prov *p = open_prov(PP_PROV_MODE_APPLY, NULL);

	assert_int_equal(pp_prov_inspect(p, &pending, &err), 0);
	assert_int_equal(pp_prov_outputs(p, &out, &err), 0);
	snprintf(d, sizeof(d), "%s/pushpool.conf.d", dir);
	snprintf(k, sizeof(k), "%s/state/provision/p", dir);
	if (pp_prov_write_dropin(pp_config_pool(&cfg, "p"), &out, d, k, &dropin, &err))
		fail_msg("%s", err.msg);
	snprintf(path, sizeof(path), "%s/key.json", k);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(stat(k, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	FILE *f = fopen(dropin, "r");
	char text[2048] = "";
	assert_non_null(f);
	text[fread(text, 1, sizeof(text) - 1, f)] = '\0';
	fclose(f);
	assert_null(strstr(text, "s3cr3t"));
	assert_non_null(strstr(text, "[credentials \"p-provisioned\"]"));
	pp_prov_out_free(&out);
	pp_prov_close(p);

	struct pp_config c2;
	snprintf(path, sizeof(path), "%s/pushpool.conf", dir);
	assert_int_equal(pp_config_init(&c2, &err), 0);
	if (pp_config_load(&c2, path, &err))
		fail_msg("%s", err.msg);
	const struct pp_pool_conf *pc = pp_config_pool(&c2, "p");
	assert_string_equal(pc->credentials, "p-provisioned");
	assert_string_equal(pc->job_variables, "{\"image\":\"i\",\"made\":\"yes\"}");
	assert_string_equal(pp_config_cred(&c2, "p-provisioned")->source, "file");
	pp_config_free(&c2);

	assert_int_equal(pp_prov_remove_dropin("p", d, k, &err), 0);
	assert_int_not_equal(access(dropin, F_OK), 0);
	assert_int_not_equal(access(k, F_OK), 0);
	free(dropin);
}

static void test_register(void **state)
{
	struct pp_error err = {0};

	assert_int_equal(pp_provisioner_register(&fake_prov, &err), PP_ECONFLICT);
	assert_ptr_equal(pp_provisioner_find("fakeprov:push"), &fake_prov);
	assert_non_null(pp_provisioner_find("cloud-run-v2:push"));
	assert_null(pp_provisioner_find("nonesuch:push"));
}

int main(void)
{
	struct pp_error err = {0};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_actions_and_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blocked_apply_changes_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_apply_in_order_with_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destroy_reverse_owned_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dropin_and_files, setup, teardown),
		cmocka_unit_test(test_register),
	};

	pp_log_setup(PP_LOG_ERROR, PP_LOG_TEXT, stderr);
	if (pp_provider_register(&fake_provider, &err) ||
	    pp_provisioner_register(&fake_prov, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
