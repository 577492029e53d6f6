/* Subcommands of the pushpool binary. Each takes argv with argv[0] set to
 * the command's first word ("check", "auth", ...), parses its own options
 * (getopt with optind = 1) and returns a sysexits-style exit status. */
#ifndef PP_CMD_H
#define PP_CMD_H

#include <stdio.h>

/* The configuration file a command should read: opt when given (its own
 * -c), else $PUSHPOOL_CONFIG (set by the global `pushpool -c FILE`), else
 * /etc/pushpool/pushpool.conf. */
const char *pp_cmd_config_path(const char *opt);

/* Refuse job variables (-v, --vars) whose names or string values are not
 * UTF-8 text or hold NUL: they would reach the rendered JSON, and the cloud,
 * as they are. The message names the variable. */
struct pp_json;
struct pp_error;
int pp_cmd_check_vars(const struct pp_json *vars, struct pp_error *err);

/* s (NULL: "") with every control character escaped (\n, \r, \t, \xNN), and
 * bytes that are not UTF-8 too, for printing text a store or a server
 * supplied to a terminal; caller frees, NULL when out of memory. */
char *pp_cmd_printable(const char *s);

/* Load and validate the configuration (path as for pp_cmd_config_path),
 * set up logging from it; on failure print "pushpool CMD: why" and return
 * the exit status (66 no file, 78 invalid), else 0. */
struct pp_config;
struct pp_store;
int pp_cmd_load_config(const char *cmd, const char *path, struct pp_config *cfg);
/* The HTTPS trust of cfg ([dispatcher] ca_file) for the process's requests;
 * pp_cmd_load_config does it, commands loading their configuration
 * otherwise call it before their first request. 0, or an exit status
 * (the message written). */
int pp_cmd_trust(const char *cmd, const struct pp_config *cfg);
/* Open the configured run store; on failure print and return the exit
 * status (65 corrupt, 74 unreadable, ...), else 0. */
int pp_cmd_open_store(const char *cmd, const struct pp_config *cfg, struct pp_store **s);

int pp_cmd_check(int argc, char **argv);
int pp_cmd_mock(int argc, char **argv);
int pp_cmd_render(int argc, char **argv);
int pp_cmd_run(int argc, char **argv);
int pp_cmd_template(int argc, char **argv);
int pp_cmd_auth(int argc, char **argv);
int pp_cmd_serve(int argc, char **argv);
int pp_cmd_once(int argc, char **argv);
int pp_cmd_schedule(int argc, char **argv);
int pp_cmd_runs(int argc, char **argv);
int pp_cmd_store(int argc, char **argv);
/* `runs logs` (logs.c), on the store and configuration `runs` opened;
 * argv[0] is "logs". */
struct pp_store;
struct pp_config;
int pp_cmd_runs_logs(struct pp_store *s, const struct pp_config *cfg, int argc, char **argv);
void pp_cmd_runs_logs_usage(FILE *to);
/* A run's io ready for its provider's logs op (the status page reads logs
 * too): its pool opened (*pool, pp_pool_close), its job rendered (*job,
 * the caller frees) and io restored from the run's infra id
 * (pp_exec_io_release). */
struct pp_pool;
struct pp_run_io;
struct pp_run_rec;
int pp_run_logs_open(const struct pp_config *cfg, const struct pp_run_rec *r, struct pp_pool **pool,
		     struct pp_json **job, struct pp_run_io *io, struct pp_error *err);
/* Undo pp_run_logs_open (after a failed one too): the page held in
 * io->logs, io's state, the job and the pool. */
void pp_run_logs_close(struct pp_pool *pool, struct pp_json *job, struct pp_run_io *io);
int pp_cmd_provision(int argc, char **argv);
int pp_cmd_deploy(int argc, char **argv);
int pp_cmd_deployment(int argc, char **argv);
int pp_cmd_pools(int argc, char **argv);
int pp_cmd_pool(int argc, char **argv);
/* `pool create` (provision.c), from pp_cmd_pool; argv[1] is "create". */
int pp_cmd_pool_create(int argc, char **argv);
int pp_cmd_queue(int argc, char **argv);
#endif
