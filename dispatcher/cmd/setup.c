/* What the commands around the run store share: the configuration loaded
 * and checked, and the store opened, each with its one exit status. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "dispatcher/cmd/cmd.h"
#include "dispatcher/config.h"
#include "dispatcher/loop.h"
#include "lib/http.h"
#include "lib/log.h"
#include "store/store.h"

int pp_cmd_trust(const char *cmd, const struct pp_config *cfg)
{
	const char *ca = cfg->dispatcher.ca_file;
	if (!pp_http_set_ca_file(ca && *ca ? ca : NULL))
		return 0;
	fprintf(stderr, "pushpool %s: out of memory\n", cmd);
	return PP_EXIT_SOFTWARE;
}

int pp_cmd_load_config(const char *cmd, const char *path, struct pp_config *cfg)
{
	struct pp_error err = {0};
	int rc = pp_config_init(cfg, &err);
	if (!rc)
		rc = pp_config_load(cfg, pp_cmd_config_path(path), &err);
	if (!rc) {
		struct pp_buf problems;
		pp_buf_init(&problems, 1 << 16);
		if (pp_config_validate(cfg, &problems))
			rc = pp_fail(&err, PP_EINVALID, "%s", pp_buf_str(&problems));
		else if (problems.len)
			fputs(pp_buf_str(&problems), stderr); /* warnings only */
		pp_buf_free(&problems);
	}
	if (rc) {
		fprintf(stderr, "pushpool %s: %s\n", cmd, err.msg);
		pp_config_free(cfg);
		return rc == PP_ENOTFOUND ? PP_EXIT_NOINPUT : PP_EXIT_CONFIG;
	}
	if ((rc = pp_cmd_trust(cmd, cfg))) {
		pp_config_free(cfg);
		return rc;
	}
	enum pp_log_level lvl = PP_LOG_INFO;
	pp_log_level_parse(cfg->dispatcher.log_level, &lvl);
	pp_log_setup(lvl,
		     cfg->dispatcher.log_format && !strcmp(cfg->dispatcher.log_format, "json")
			     ? PP_LOG_JSON
			     : PP_LOG_TEXT,
		     stderr);
	return 0;
}

int pp_cmd_open_store(const char *cmd, const struct pp_config *cfg, struct pp_store **s)
{
	char url[1024];
	struct pp_error err = {0};
	pp_store_url(cfg, url, sizeof(url));
	if (!cfg->store.url || !*cfg->store.url)
		mkdir(cfg->dispatcher.state_dir, 0750);
	int rc = pp_store_open(url, s, &err);
	if (rc) {
		/* The one mapping every command uses (a corrupt store is bad
		 * data, 65; a store that cannot be read or written, 74). */
		fprintf(stderr, "pushpool %s: %s\n", cmd, err.msg);
		return pp_exit_status(rc);
	}
	return 0;
}
