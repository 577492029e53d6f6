/* pushpool [-c FILE] COMMAND [ARGS]: the command table and dispatch. */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher/cmd/cmd.h"
#include "lib/err.h"
#include "lib/http.h"
#include "lib/log.h"

struct command {
	const char *name; /* one or more words; dispatch is on the first */
	const char *summary;
	int (*fn)(int argc, char **argv);
};

static int cmd_help(int argc, char **argv);

/* A core dump would hold every secret in memory (cloud keys, tokens, the
 * store password), and so would another user's ptrace or /proc/PID/mem:
 * no core file, and not dumpable. Done before any secret is read. */
static void keep_secrets_in_process(void)
{
	const struct rlimit none = {0, 0};
	if (setrlimit(RLIMIT_CORE, &none))
		perror("pushpool: setrlimit(RLIMIT_CORE)");
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		perror("pushpool: prctl(PR_SET_DUMPABLE)");
}

/* One entry per line, in the order `pushpool help` lists them. */
static const struct command commands[] = {
	{"check", "validate the configuration file (-n), or --print-defaults", pp_cmd_check},
	{"mock", "serve fake cloud APIs on loopback for tests (see docs/mock.md)", pp_cmd_mock},
	{"render", "print the job configuration a run would submit", pp_cmd_render},
	{"run", "render a pool's job, submit it now; --wait follows it to the end", pp_cmd_run},
	{"template default", "print the built-in base job template of a pool type",
	 pp_cmd_template},
	{"serve", "the dispatcher daemon: claim, submit, watch, report until SIGTERM",
	 pp_cmd_serve},
	{"once", "one dispatch pass for cron; --wait follows runs to the end", pp_cmd_once},
	{"schedule", "enqueue a run of a pool in the embedded store", pp_cmd_schedule},
	{"runs", "list, show, read or cancel runs: runs ls | show ID | logs ID | cancel ID",
	 pp_cmd_runs},
	{"deploy", "apply prefect.yaml deployments or [deployment] sections to the store",
	 pp_cmd_deploy},
	{"deployment", "deployments in the store: ls | show | run | pause | resume | delete",
	 pp_cmd_deployment},
	{"pools ls", "pools with their pause, limit, queues and runs by state", pp_cmd_pools},
	{"pool",
	 "write a pool (create, --provision-infra), or pause, resume or limit one: "
	 "pool create|pause|resume|set NAME",
	 pp_cmd_pool},
	{"queue", "work queues of a pool: queue ls | set | pause | resume", pp_cmd_queue},
	{"store migrate", "apply the run store's schema migrations (PostgreSQL needs this once)",
	 pp_cmd_store},
	{"auth check", "obtain a token for a credentials section; print identity, lifetime",
	 pp_cmd_auth},
	{"provision", "plan, apply or destroy the cloud resources a pool needs", pp_cmd_provision},
	{"help", "list commands, or show a command's --help", cmd_help},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

#define DEFAULT_CONFIG "/etc/pushpool/pushpool.conf"

const char *pp_cmd_config_path(const char *opt)
{
	if (opt && *opt)
		return opt;
	const char *env = getenv("PUSHPOOL_CONFIG");
	return env && *env ? env : DEFAULT_CONFIG;
}

/* Length of the first word of a command name. */
static size_t first_word_len(const char *name)
{
	return strcspn(name, " ");
}

static const struct command *command_find(const char *word)
{
	for (size_t i = 0; i < NCOMMANDS; i++) {
		size_t n = first_word_len(commands[i].name);
		if (strlen(word) == n && !strncmp(commands[i].name, word, n))
			return &commands[i];
	}
	return NULL;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: pushpool [-c FILE] COMMAND [ARGS]\n"
		     "       pushpool --version | --help\n\n"
		     "Dispatches scheduled runs straight to Cloud Run, ECS Fargate, Azure\n"
		     "Container Instances and Modal from Prefect-compatible base job\n"
		     "templates.\n\n"
		     "options:\n"
		     "  -c, --config FILE  configuration file (default $PUSHPOOL_CONFIG,\n"
		     "                     else " DEFAULT_CONFIG ")\n"
		     "  -h, --help         this list\n"
		     "  -V, --version      print the version\n\n"
		     "commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-18s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nRun `pushpool COMMAND --help` for a command's options.\n");
}

static int cmd_help(int argc, char **argv)
{
	if (argc < 2) {
		usage(stdout);
		return PP_EXIT_OK;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		printf("usage: pushpool help [COMMAND]\n"
		       "List the commands, or show COMMAND's --help.\n");
		return PP_EXIT_OK;
	}
	const struct command *c = command_find(argv[1]);
	if (c && c->fn == cmd_help) {
		usage(stdout);
		return PP_EXIT_OK;
	}
	if (!c) {
		fprintf(stderr, "pushpool help: unknown command \"%s\"\n", argv[1]);
		usage(stderr);
		return PP_EXIT_USAGE;
	}
	char *sub_argv[] = {argv[1], (char *)"--help", NULL};
	return c->fn(2, sub_argv);
}

int main(int argc, char **argv)
{
	int i = 1;

	keep_secrets_in_process();
	while (i < argc && argv[i][0] == '-') {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return PP_EXIT_OK;
		} else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			printf("pushpool %s\n", PP_VERSION);
			return PP_EXIT_OK;
		} else if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "pushpool: %s needs a FILE\n", a);
				return PP_EXIT_USAGE;
			}
			/* Commands find it through pp_cmd_config_path(). */
			setenv("PUSHPOOL_CONFIG", argv[++i], 1);
		} else if (!strncmp(a, "--config=", 9)) {
			setenv("PUSHPOOL_CONFIG", a + 9, 1);
		} else {
			fprintf(stderr, "pushpool: unknown option \"%s\"\n", a);
			usage(stderr);
			return PP_EXIT_USAGE;
		}
		i++;
	}
	if (i >= argc) {
		usage(stderr);
		return PP_EXIT_USAGE;
	}
	const struct command *c = command_find(argv[i]);
	if (!c) {
		fprintf(stderr, "pushpool: unknown command \"%s\"\n", argv[i]);
		usage(stderr);
		return PP_EXIT_USAGE;
	}
	/* A peer closing a connection must surface as an error, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	pp_log_setup(PP_LOG_INFO, PP_LOG_TEXT, stderr);
	/* libcurl (and OpenSSL under it) is set up by the first request
	 * (lib/http.c): an idle daemon does not hold TLS. */
	int status = c->fn(argc - i, argv + i);
	pp_http_cleanup();
	return status;
}
