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
int pp_cmd_provision(int argc, char **argv);
int pp_cmd_pool(int argc, char **argv);
#endif
