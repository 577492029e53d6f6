/* pushpool-mock: the fake cloud APIs as a test program of their own, run
 * until SIGTERM/SIGINT. Never installed and never linked into pushpool:
 * `pushpool mock` only execs this program (dispatcher/cmd/mock.c). */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "lib/err.h"
#include "lib/log.h"
#include "mock/mock.h"

/* The AWS documentation's example key pair: a known default for tests. */
#define DEFAULT_AWS_KEY "AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static void usage(FILE *out)
{
	fputs("usage: pushpool-mock [options]   (or: pushpool mock [options])\n"
	      "  --listen HOST:PORT          loopback address (default 127.0.0.1:0, 0 = any\n"
	      "                              free port); other addresses are refused\n"
	      "  --port-file FILE            write url=... and NAME=base URL lines there\n"
	      "  --provision-seconds S       created -> running (default 0.2)\n"
	      "  --run-seconds S             running -> finished (default 0.5)\n"
	      "  --seed N                    PRNG seed for fault injection (default 1)\n"
	      "  --gcp-key FILE              service-account JSON or PEM public key (repeatable)\n"
	      "  --gcp-audience URL          JWT aud to require (default: the mock's token URL)\n"
	      "  --aws-key-file FILE         accepted AWS keys, one ID:SECRET a line\n"
	      "                              (or $PUSHPOOL_MOCK_AWS_KEYS=ID:SECRET[,...];\n"
	      "                              default: the AKIDEXAMPLE documentation key)\n"
	      "  --aws-web-identity-token-file FILE\n"
	      "                              token AssumeRoleWithWebIdentity accepts (or\n"
	      "                              $PUSHPOOL_MOCK_AWS_WEB_IDENTITY_TOKEN)\n"
	      "  --token-lifetime S          access tokens / STS credentials (default 3600)\n"
	      "  --fail-rate R --throttle-rate R --reset-rate R --cut-body-rate R\n"
	      "  --malformed-rate R --latency-ms MS --retry-after S\n"
	      "                              faults for every API (rates in [0, 1])\n"
	      "  --faults JSON               per-API faults, as POST /control/faults takes\n"
	      "Control: GET /control/stats, /control/log, /control/faults;\n"
	      "         POST /control/faults, /control/reset\n",
	      out);
}

static int parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "pushpool-mock: %s: \"%s\" is not a number in [%g, %g]\n", opt, s,
			lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static int write_port_file(const char *path, const char *text)
{
	char tmp[4096];
	FILE *f;

	/* Readers poll for the file: rename makes it appear complete. */
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	f = fopen(tmp, "w");
	if (!f)
		return -1;
	if (fputs(text, f) < 0 || fclose(f) != 0) {
		remove(tmp);
		return -1;
	}
	return rename(tmp, path);
}

enum {
	OPT_LISTEN = 256,
	OPT_PORT_FILE,
	OPT_PROVISION,
	OPT_RUN,
	OPT_SEED,
	OPT_GCP_KEY,
	OPT_GCP_AUD,
	OPT_AWS_KEY,
	OPT_WEB_ID,
	OPT_AWS_KEY_FILE,
	OPT_WEB_ID_FILE,
	OPT_TOKEN_LIFE,
	OPT_FAIL,
	OPT_THROTTLE,
	OPT_RESET,
	OPT_CUT,
	OPT_MALFORMED,
	OPT_LATENCY,
	OPT_RETRY_AFTER,
	OPT_FAULTS,
};

static const struct option long_opts[] = {
	{"listen", required_argument, NULL, OPT_LISTEN},
	{"port-file", required_argument, NULL, OPT_PORT_FILE},
	{"provision-seconds", required_argument, NULL, OPT_PROVISION},
	{"run-seconds", required_argument, NULL, OPT_RUN},
	{"seed", required_argument, NULL, OPT_SEED},
	{"gcp-key", required_argument, NULL, OPT_GCP_KEY},
	{"gcp-audience", required_argument, NULL, OPT_GCP_AUD},
	{"aws-key", required_argument, NULL, OPT_AWS_KEY},
	{"aws-web-identity-token", required_argument, NULL, OPT_WEB_ID},
	{"aws-key-file", required_argument, NULL, OPT_AWS_KEY_FILE},
	{"aws-web-identity-token-file", required_argument, NULL, OPT_WEB_ID_FILE},
	{"token-lifetime", required_argument, NULL, OPT_TOKEN_LIFE},
	{"fail-rate", required_argument, NULL, OPT_FAIL},
	{"throttle-rate", required_argument, NULL, OPT_THROTTLE},
	{"reset-rate", required_argument, NULL, OPT_RESET},
	{"cut-body-rate", required_argument, NULL, OPT_CUT},
	{"malformed-rate", required_argument, NULL, OPT_MALFORMED},
	{"latency-ms", required_argument, NULL, OPT_LATENCY},
	{"retry-after", required_argument, NULL, OPT_RETRY_AFTER},
	{"faults", required_argument, NULL, OPT_FAULTS},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* Secrets never come from argv, where ps shows them: from the environment
 * or a file. Each accepted AWS key is "ID:SECRET"; they are kept here for
 * the whole run (pp_mock_opts points at them). */
struct secrets {
	char *aws_keys[PP_MOCK_MAX_KEYS];
	size_t naws;
	char *web_identity_token;
};

static void secrets_free(struct secrets *s)
{
	for (size_t i = 0; i < s->naws; i++)
		free(s->aws_keys[i]);
	free(s->web_identity_token);
	memset(s, 0, sizeof(*s));
}

/* Add one "ID:SECRET" (n bytes of text); 0 or PP_EXIT_USAGE. */
static int add_aws_key(struct secrets *s, const char *text, size_t n, const char *from)
{
	const char *colon = memchr(text, ':', n);

	if (!colon || colon == text || colon + 1 == text + n) {
		fprintf(stderr, "pushpool-mock: %s: an AWS key is ID:SECRET\n", from);
		return PP_EXIT_USAGE;
	}
	if (s->naws == PP_MOCK_MAX_KEYS) {
		fprintf(stderr, "pushpool-mock: %s: at most %d AWS keys\n", from, PP_MOCK_MAX_KEYS);
		return PP_EXIT_USAGE;
	}
	s->aws_keys[s->naws] = strndup(text, n);
	if (!s->aws_keys[s->naws]) {
		fputs("pushpool-mock: out of memory\n", stderr);
		return PP_EXIT_SOFTWARE;
	}
	pp_secret_register(s->aws_keys[s->naws] + (colon - text) + 1);
	s->naws++;
	return 0;
}

/* Every non-empty line of a secret file (under 64 KiB), through fn. */
static int read_secret_lines(const char *path, struct secrets *s,
			     int (*fn)(struct secrets *s, const char *line, size_t n,
				       const char *from))
{
	char buf[65536];
	size_t len;
	FILE *f = fopen(path, "r");
	int rc = 0;

	if (!f) {
		fprintf(stderr, "pushpool-mock: %s: %s\n", path, strerror(errno));
		return PP_EXIT_NOINPUT;
	}
	len = fread(buf, 1, sizeof(buf) - 1, f);
	if (ferror(f) || len == sizeof(buf) - 1) {
		fprintf(stderr, "pushpool-mock: %s: unreadable or over %zu bytes\n", path,
			sizeof(buf) - 2);
		rc = PP_EXIT_DATAERR;
	}
	fclose(f);
	buf[len] = '\0';
	for (char *line = buf, *next; !rc && line < buf + len; line = next) {
		size_t n = strcspn(line, "\n");

		next = line + n + 1;
		while (n && line[n - 1] == '\r')
			n--;
		if (n)
			rc = fn(s, line, n, path);
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

static int set_web_identity_token(struct secrets *s, const char *text, size_t n, const char *from)
{
	if (s->web_identity_token) {
		fprintf(stderr, "pushpool-mock: %s: one web identity token only\n", from);
		return PP_EXIT_USAGE;
	}
	s->web_identity_token = strndup(text, n);
	if (!s->web_identity_token) {
		fputs("pushpool-mock: out of memory\n", stderr);
		return PP_EXIT_SOFTWARE;
	}
	pp_secret_register(s->web_identity_token);
	return 0;
}

/* $PUSHPOOL_MOCK_AWS_KEYS (ID:SECRET[,...]) and
 * $PUSHPOOL_MOCK_AWS_WEB_IDENTITY_TOKEN. */
static int secrets_from_env(struct secrets *s)
{
	const char *keys = getenv("PUSHPOOL_MOCK_AWS_KEYS");
	const char *token = getenv("PUSHPOOL_MOCK_AWS_WEB_IDENTITY_TOKEN");
	int rc = 0;

	for (const char *p = keys; !rc && p && *p;) {
		size_t n = strcspn(p, ",");

		if (n)
			rc = add_aws_key(s, p, n, "PUSHPOOL_MOCK_AWS_KEYS");
		p += n + (p[n] == ',');
	}
	if (!rc && token && *token)
		rc = set_web_identity_token(s, token, strlen(token),
					    "PUSHPOOL_MOCK_AWS_WEB_IDENTITY_TOKEN");
	return rc;
}

/* HOST:PORT with HOST an IPv4 loopback address: the mock issues tokens and
 * credentials to whoever asks, so nothing beyond this machine may reach it. */
static int parse_listen(const char *arg, char *host, size_t host_size, int *port)
{
	const char *colon = strrchr(arg, ':');
	double v;

	if (!colon || colon == arg || (size_t)(colon - arg) >= host_size ||
	    parse_double("--listen port", colon + 1, 0, 65535, &v)) {
		fprintf(stderr, "pushpool-mock: --listen wants HOST:PORT, got \"%s\"\n", arg);
		return PP_EXIT_USAGE;
	}
	memcpy(host, arg, (size_t)(colon - arg));
	host[colon - arg] = '\0';
	if (!pp_mock_loopback(host)) {
		fprintf(stderr,
			"pushpool-mock: --listen %s: not a loopback address; the mock hands "
			"out tokens and listens on 127.0.0.0/8 only\n",
			arg);
		return PP_EXIT_USAGE;
	}
	*port = (int)v;
	return 0;
}

/* Flag-level faults apply to every API ("api":"*"). */
static const char *const fault_keys[] = {
	[OPT_FAIL - OPT_FAIL] = "error_rate",
	[OPT_THROTTLE - OPT_FAIL] = "throttle_rate",
	[OPT_RESET - OPT_FAIL] = "reset_after_action_rate",
	[OPT_CUT - OPT_FAIL] = "cut_body_rate",
	[OPT_MALFORMED - OPT_FAIL] = "malformed_json_rate",
	[OPT_LATENCY - OPT_FAIL] = "latency_ms",
	[OPT_RETRY_AFTER - OPT_FAIL] = "retry_after",
};

int main(int argc, char **argv)
{
	struct pp_mock_opts o;
	struct pp_mock *m = NULL;
	struct pp_error err = {0};
	struct pp_buf flag_faults, desc;
	struct secrets secrets = {0};
	const char *port_file = NULL, *faults_json = NULL;
	char host[64];
	sigset_t sigs;
	int c, sig, status = PP_EXIT_OK;
	double v;

	pp_mock_opts_defaults(&o);
	pp_buf_init(&flag_faults, 4096);
	pp_buf_init(&desc, 4096);
	pp_buf_puts(&flag_faults, "{\"api\":\"*\"");
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_LISTEN:
			status = parse_listen(optarg, host, sizeof(host), &o.listen_port);
			if (status)
				goto out;
			o.listen_host = host;
			break;
		case OPT_PORT_FILE: port_file = optarg; break;
		case OPT_PROVISION:
		case OPT_RUN:
		case OPT_TOKEN_LIFE:
			if (parse_double(long_opts[c - OPT_LISTEN].name, optarg, 0, 86400, &v)) {
				status = PP_EXIT_USAGE;
				goto out;
			}
			if (c == OPT_PROVISION)
				o.provision_seconds = v;
			else if (c == OPT_RUN)
				o.run_seconds = v;
			else
				o.token_lifetime_seconds = v;
			break;
		case OPT_SEED:
			if (parse_double("--seed", optarg, 0, 9007199254740992.0, &v)) {
				status = PP_EXIT_USAGE;
				goto out;
			}
			o.seed = (uint64_t)v;
			break;
		case OPT_GCP_KEY:
			if (o.ngcp_keys == PP_MOCK_MAX_KEYS) {
				fprintf(stderr, "pushpool-mock: at most %d --gcp-key files\n",
					PP_MOCK_MAX_KEYS);
				status = PP_EXIT_USAGE;
				goto out;
			}
			o.gcp_keys[o.ngcp_keys++] = optarg;
			break;
		case OPT_GCP_AUD: o.gcp_token_audience = optarg; break;
		case OPT_AWS_KEY:
		case OPT_WEB_ID:
			/* Refused, not ignored: a script still passing them would
			 * otherwise test with keys it did not mean. */
			fprintf(stderr,
				"pushpool-mock: --%s no longer takes a secret on the command line "
				"(ps shows it): use %s or --%s-file FILE\n",
				long_opts[c - OPT_LISTEN].name,
				c == OPT_AWS_KEY ? "PUSHPOOL_MOCK_AWS_KEYS=ID:SECRET[,...]"
						 : "PUSHPOOL_MOCK_AWS_WEB_IDENTITY_TOKEN",
				long_opts[c - OPT_LISTEN].name);
			status = PP_EXIT_USAGE;
			goto out;
		case OPT_AWS_KEY_FILE:
			status = read_secret_lines(optarg, &secrets, add_aws_key);
			if (status)
				goto out;
			break;
		case OPT_WEB_ID_FILE:
			status = read_secret_lines(optarg, &secrets, set_web_identity_token);
			if (status)
				goto out;
			break;
		case OPT_FAIL:
		case OPT_THROTTLE:
		case OPT_RESET:
		case OPT_CUT:
		case OPT_MALFORMED:
		case OPT_LATENCY:
		case OPT_RETRY_AFTER: {
			bool rate = c < OPT_LATENCY;

			if (parse_double(long_opts[c - OPT_LISTEN].name, optarg, 0,
					 rate ? 1 : 600000, &v)) {
				status = PP_EXIT_USAGE;
				goto out;
			}
			pp_buf_printf(&flag_faults, ",\"%s\":%.17g", fault_keys[c - OPT_FAIL], v);
			break;
		}
		case OPT_FAULTS: faults_json = optarg; break;
		case 'h': usage(stdout); goto out;
		default:
			usage(stderr);
			status = PP_EXIT_USAGE;
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pushpool-mock: unexpected argument \"%s\"\n", argv[optind]);
		status = PP_EXIT_USAGE;
		goto out;
	}
	status = secrets_from_env(&secrets);
	if (status)
		goto out;
	for (size_t i = 0; i < secrets.naws; i++)
		o.aws_keys[o.naws_keys++] = secrets.aws_keys[i];
	if (o.naws_keys == 0)
		o.aws_keys[o.naws_keys++] = DEFAULT_AWS_KEY;
	o.aws_web_identity_token = secrets.web_identity_token;
	pp_buf_putc(&flag_faults, '}');

	/* Block the stop signals before MHD starts its threads, so only sigwait
	 * below sees them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (pp_mock_new(&o, &m, &err) || pp_mock_set_faults(m, pp_buf_str(&flag_faults), &err) ||
	    (faults_json && pp_mock_set_faults(m, faults_json, &err)) || pp_mock_start(m, &err)) {
		fprintf(stderr, "pushpool-mock: %s\n", err.msg);
		status = err.code == PP_EINVALID ? PP_EXIT_USAGE : pp_exit_status(err.code);
		goto out;
	}
	pp_mock_describe(m, &desc);
	printf("mock listening on %s\n%s", pp_mock_base_url(m), pp_buf_str(&desc));
	fflush(stdout);
	if (port_file && write_port_file(port_file, pp_buf_str(&desc)) != 0) {
		fprintf(stderr, "pushpool-mock: %s: %s\n", port_file, strerror(errno));
		status = PP_EXIT_IOERR;
		goto out;
	}
	while (sigwait(&sigs, &sig) != 0)
		;
	fprintf(stderr, "pushpool-mock: signal %d, stopping\n", sig);
out:
	pp_mock_free(m);
	pp_buf_free(&flag_faults);
	pp_buf_free(&desc);
	secrets_free(&secrets);
	return status;
}
