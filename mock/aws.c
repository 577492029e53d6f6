/* Mock AWS: ECS (JSON 1.1) and STS (query/XML) behind SigV4 verification,
 * plus the ECS container-credentials endpoint and IMDSv2. ECS tasks follow
 * the mock timeline: PROVISIONING -> PENDING -> RUNNING -> STOPPED. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "lib/strmap.h"
#include "lib/time.h"
#include "mock/mock.h"
#include "mock/spec.h"
#include "mock/sigv4_check.h"
#include "mock/aws.h"

#define ACCOUNT		   PP_MOCK_AWS_ACCOUNT
#define ECS_TARGET_PREFIX  "AmazonEC2ContainerServiceV20141113."
#define LOGS_TARGET_PREFIX "Logs_20140328."
#define MAX_ITEMS	   100000
#define MAX_SKEW_SECONDS   300
#define IMDS_ROLE	   PP_MOCK_AWS_ROLE
#define SIG_MISMATCH                                                                               \
	"The request signature we calculated does not match the signature you provided. "          \
	"Check your AWS Secret Access Key and signing method. Consult the service "                \
	"documentation for details."

struct taskdef {
	struct taskdef *next;
	char *arn;
	char *family;
	int revision;
	bool active;
	struct pp_json *desc; /* as DescribeTaskDefinition returns it */
	struct pp_json *tags; /* kept apart: answered only with include ["TAGS"] */
};

struct task {
	struct task *next;
	char *arn;
	char *cluster_arn;
	char *td_arn;
	char *started_by;
	char *group;
	char *stop_reason; /* StopTask reason, NULL if not stopped by a user */
	struct pp_json *container_names;
	struct pp_json *tags; /* RunTask's tags, answered with include ["TAGS"] */
	bool forever;	      /* planted: runs until stopped */
	enum pp_mock_outcome outcome;
	bool pull_fails; /* a start failure fault: the image cannot be pulled */
	double created;
	double stopped;		    /* clock of StopTask, < 0 if none */
	struct pp_mock_joblog *log; /* its container's output (CloudWatch Logs) */
};

struct client_token {
	struct client_token *next;
	char *id; /* pp_mock_join_key(cluster, token), its key in tokens_by_id */
	char *cluster;
	char *token;
	char *params; /* the request minus clientToken, compact JSON */
	struct pp_json *task_arns;
};

struct temp_cred {
	struct temp_cred *next;
	char akid[24];
	char secret[48];
	char token[160];
	double expires; /* wall clock */
};

struct aws_state {
	struct taskdef *taskdefs;
	struct task *tasks;
	struct client_token *tokens;
	/* RunTask looks its token up among every token seen since the last
	 * reset (a bench submits 100,000): by hash, not down the list. */
	struct pp_strmap tokens_by_id;
	struct temp_cred *creds;
	struct temp_cred *imds_tokens; /* token in .token, expiry in .expires */
	struct pp_mock_aws_account *acct;
	size_t ntaskdefs, ntasks, ntokens, ncreds, nimds;
	struct pp_mock_barrier bar; /* POST /aws/control/barrier, on ECS actions */
};

/* ---- errors ---- */

/* IAM's and STS's <ErrorResponse> differ in their namespace only; EC2 has
 * its own <Response><Errors>. */
void pp_mock_aws_error(struct pp_mock_resp *resp, enum pp_mock_aws_proto p, int status,
		       const char *type, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	resp->reject_reason = type;
	if (p == PP_MOCK_AWS_JSON) {
		pp_mock_resp_printf(resp, status, "application/x-amz-json-1.1", "{\"__type\":");
		pp_json_write_string(&resp->body, type, strlen(type));
		pp_buf_puts(&resp->body, ",\"message\":");
		pp_json_write_string(&resp->body, msg, strlen(msg));
		pp_buf_puts(&resp->body, "}");
		pp_mock_resp_header(resp, "x-amzn-ErrorType", type);
		return;
	}
	if (p == PP_MOCK_AWS_EC2) {
		pp_mock_resp_printf(resp, status, "text/xml;charset=UTF-8",
				    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors>"
				    "<Error><Code>%s</Code><Message>",
				    type);
		pp_mock_aws_xml_text(&resp->body, msg);
		pp_buf_puts(&resp->body, "</Message></Error></Errors><RequestID>00000000-0000-4000-"
					 "8000-000000000000</RequestID></Response>");
		return;
	}
	pp_mock_resp_printf(resp, status, "text/xml",
			    "<ErrorResponse xmlns=\"https://%s.amazonaws.com/doc/%s/\">"
			    "<Error><Type>%s</Type><Code>%s</Code><Message>",
			    p == PP_MOCK_AWS_IAM ? "iam" : "sts",
			    p == PP_MOCK_AWS_IAM ? "2010-05-08" : "2011-06-15",
			    status >= 500 ? "Receiver" : "Sender", type);
	pp_mock_aws_xml_text(&resp->body, msg);
	pp_buf_puts(&resp->body, "</Message></Error><RequestId>00000000-0000-4000-8000-"
				 "000000000000</RequestId></ErrorResponse>");
}

#define aws_error pp_mock_aws_error

/* ---- SigV4 verification ---- */

static bool parse_amz_date(const char *s, time_t *out)
{
	struct tm tm = {0};

	if (!s || strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z' ||
	    sscanf(s, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec) != 6)
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = timegm(&tm);
	return *out != (time_t)-1;
}

static struct temp_cred *cred_find(struct temp_cred *list, const char *akid)
{
	for (; list; list = list->next)
		if (strcmp(list->akid, akid) == 0)
			return list;
	return NULL;
}

/* The most headers a signed request may carry: more than any AWS SDK sends. */
#define SIGNED_REQ_HEADERS 64

/* Check the request's SigV4 signature like AWS does; on failure the error is
 * in resp. region receives the credential scope's region. */
static int verify_sigv4(struct pp_mock *m, struct aws_state *st, const struct pp_mock_req *req,
			struct pp_mock_resp *resp, enum pp_mock_aws_proto p, const char *service,
			char *region, size_t region_size, bool *static_key)
{
	const char *auth = pp_mock_header(req, "Authorization");
	const char *date_hdr = pp_mock_header(req, "X-Amz-Date");
	const char *token_hdr = pp_mock_header(req, "X-Amz-Security-Token");
	const char *names[SIGNED_REQ_HEADERS], *values[SIGNED_REQ_HEADERS];
	struct pp_mock_sigv4_auth a;
	struct pp_mock_sigv4_request sr = {0};
	char secret[128] = "", amz_now[17];
	struct pp_error err = {0};
	time_t when, now = time(NULL);
	struct tm tm_now;
	bool is_static;
	int rc;

	if (!auth || !*auth) {
		aws_error(resp, p, 403, "MissingAuthenticationTokenException",
			  "Missing Authentication Token");
		return -1;
	}
	if (pp_mock_sigv4_parse(auth, &a, &err)) {
		aws_error(resp, p, 400, "IncompleteSignatureException",
			  "Authorization header requires 'Credential', 'SignedHeaders' and "
			  "'Signature' parameters of an AWS4-HMAC-SHA256 signature (%s). "
			  "Authorization=%.40s",
			  err.msg, auth);
		return -1;
	}
	if (strcmp(a.service, service) != 0) {
		aws_error(resp, p, 403, "InvalidSignatureException",
			  "Credential should be scoped to correct service: '%s'. ", service);
		return -1;
	}
	if (!parse_amz_date(date_hdr, &when)) {
		aws_error(resp, p, 400, "IncompleteSignatureException",
			  "Authorization header requires existence of either a 'X-Amz-Date' or a "
			  "'Date' header.");
		return -1;
	}
	gmtime_r(&now, &tm_now);
	strftime(amz_now, sizeof(amz_now), "%Y%m%dT%H%M%SZ", &tm_now);
	if (when > now + MAX_SKEW_SECONDS || when < now - MAX_SKEW_SECONDS) {
		aws_error(resp, p, 403, "InvalidSignatureException",
			  "Signature expired: %s is now earlier than %s (%s - 5 min.)", date_hdr,
			  amz_now, amz_now);
		return -1;
	}
	for (size_t i = 0; i < pp_mock_opts(m)->naws_keys; i++) {
		const char *k = pp_mock_opts(m)->aws_keys[i], *colon = strchr(k, ':');

		if ((size_t)(colon - k) == strlen(a.akid) &&
		    strncmp(k, a.akid, strlen(a.akid)) == 0) {
			snprintf(secret, sizeof(secret), "%s", colon + 1);
			break;
		}
	}
	/* An access key IAM issued (CreateAccessKey) signs as its user. */
	if (!secret[0] && st->acct) {
		struct pp_mock_aws_res *k;

		pp_mock_lock(m);
		k = pp_mock_aws_find(st->acct, "iam.accesskey", "", a.akid);
		if (k && k->extra)
			snprintf(secret, sizeof(secret), "%s",
				 pp_json_get_string(pp_json_get(k->extra, "secret"), "value"));
		pp_mock_unlock(m);
	}
	is_static = secret[0] != '\0';
	if (!secret[0]) {
		struct temp_cred *tc;
		double expires = 0;
		bool token_ok = false;

		pp_mock_lock(m);
		tc = cred_find(st->creds, a.akid);
		if (tc) {
			snprintf(secret, sizeof(secret), "%s", tc->secret);
			expires = tc->expires;
			token_ok = token_hdr && strcmp(token_hdr, tc->token) == 0;
		}
		pp_mock_unlock(m);
		if (!secret[0] || !token_ok) {
			aws_error(resp, p, 403, "UnrecognizedClientException",
				  "The security token included in the request is invalid.");
			return -1;
		}
		if (expires <= pp_mock_wall(m, pp_mock_clock(m))) {
			aws_error(resp, p, 400, "ExpiredTokenException",
				  "The security token included in the request is expired");
			return -1;
		}
	}
	sr.method = req->method;
	sr.path = req->raw_path;
	sr.query = req->raw_query;
	sr.nheaders = pp_mock_headers(req, names, values, SIGNED_REQ_HEADERS);
	sr.names = names;
	sr.values = values;
	sr.body = req->body;
	sr.body_len = req->body_len;
	rc = pp_mock_sigv4_check(&sr, &a, secret, true, NULL, NULL, &err);
	OPENSSL_cleanse(secret, sizeof(secret));
	if (rc) {
		aws_error(resp, p, 403, "InvalidSignatureException", SIG_MISMATCH);
		return -1;
	}
	snprintf(region, region_size, "%s", a.region);
	if (static_key)
		*static_key = is_static;
	return 0;
}

bool pp_mock_aws_signed(struct pp_mock_call *c, enum pp_mock_aws_proto p, const char *service,
			bool *static_key)
{
	return verify_sigv4(c->m, c->state, c->req, c->resp, p, service, c->note, sizeof(c->note),
			    static_key) == 0;
}

/* Each service's own throttling and server errors. */
bool pp_mock_aws_faults(struct pp_mock_call *c, enum pp_mock_aws_proto p, const char *api)
{
	struct pp_mock_resp *resp = c->resp;
	int retry_after = 0;

	switch (pp_mock_fault_check(c->m, api, false, resp, &retry_after)) {
	case PP_MOCK_FAULT_THROTTLE:
		if (p == PP_MOCK_AWS_EC2)
			aws_error(resp, p, 503, "RequestLimitExceeded", "Request limit exceeded.");
		else if (p == PP_MOCK_AWS_IAM)
			aws_error(resp, p, 400, "Throttling", "Rate exceeded");
		else
			aws_error(resp, p, 400, "ThrottlingException", "Rate exceeded");
		if (retry_after > 0) {
			char v[16];

			snprintf(v, sizeof(v), "%d", retry_after * 1000);
			pp_mock_resp_header(resp, "x-amz-retry-after", v);
		}
		return false;
	case PP_MOCK_FAULT_ERROR:
		if (p == PP_MOCK_AWS_EC2)
			aws_error(resp, p, 500, "InternalError", "An internal error has occurred");
		else if (p == PP_MOCK_AWS_IAM)
			aws_error(resp, p, 500, "ServiceFailure",
				  "The request processing has failed because of an unknown "
				  "error, exception or failure.");
		else
			aws_error(resp, p, 500, "ServerException",
				  "Service Unavailable. Please try again later.");
		return false;
	default: return true;
	}
}

/* ---- temporary credentials (STS, container, IMDS) ---- */

static void iso8601(double wall, char *out, size_t size)
{
	char ts[PP_TIME_LEN];

	pp_time_format((int64_t)(wall * 1000), false, ts);
	snprintf(out, size, "%s", ts);
}

/* Prepend to a capped list, dropping the oldest beyond MAX_ITEMS. */
static void push_capped(struct temp_cred **list, size_t *n, struct temp_cred *c)
{
	c->next = *list;
	*list = c;
	if (++*n > MAX_ITEMS) {
		struct temp_cred **pp = list;

		while ((*pp)->next)
			pp = &(*pp)->next;
		free(*pp);
		*pp = NULL;
		(*n)--;
	}
}

static struct temp_cred *issue_cred(struct pp_mock *m, struct aws_state *st, double seconds)
{
	struct temp_cred *c = calloc(1, sizeof(*c));
	char hex[41];

	if (!c)
		return NULL;
	pp_mock_random_hex(m, hex, 16);
	for (char *s = hex; *s; s++)
		*s = (char)toupper((unsigned char)*s);
	snprintf(c->akid, sizeof(c->akid), "ASIA%.16s", hex);
	pp_mock_random_hex(m, c->secret, 40);
	pp_mock_random_hex(m, hex, 40);
	snprintf(c->token, sizeof(c->token), "FwoGZXIvYXdzEPushpoolMock%s", hex);
	c->expires = pp_mock_wall(m, pp_mock_clock(m)) + seconds;
	pp_mock_lock(m);
	push_capped(&st->creds, &st->ncreds, c);
	pp_mock_unlock(m);
	return c;
}

/* ---- helpers for the JSON protocol ---- */

static void json_ok(struct pp_mock_resp *resp, struct pp_json *j)
{
	if (j)
		pp_mock_resp_json(resp, 200, "application/x-amz-json-1.1", j);
	else
		aws_error(resp, PP_MOCK_AWS_JSON, 500, "ServerException", "mock: out of memory");
	pp_json_free(j);
}

static const char *last_segment(const char *s, char sep)
{
	const char *p = strrchr(s, sep);

	return p ? p + 1 : s;
}

/* "default", a name or a cluster ARN -> the cluster ARN. */
static void cluster_arn(const char *cluster, const char *region, char *out, size_t size)
{
	if (!cluster || !*cluster)
		cluster = "default";
	snprintf(out, size, "arn:aws:ecs:%s:" ACCOUNT ":cluster/%s", region,
		 last_segment(cluster, '/'));
}

/* cpu "1024" | "1 vCPU" | "0.25 vcpu" -> units; memory "2048" | "2 GB" -> MiB. */
static long parse_size(const char *s, const char *unit, double unit_scale)
{
	char *end;
	double v;

	if (!s)
		return -1;
	v = strtod(s, &end);
	if (end == s || v <= 0)
		return -1;
	while (*end == ' ')
		end++;
	if (*end && strcasecmp(end, unit) == 0)
		v *= unit_scale;
	else if (*end)
		return -1;
	return (long)(v + 0.5);
}

static bool fargate_combo_ok(long cpu, long mem)
{
	static const struct {
		long cpu, lo, hi, step;
	} combos[] = {
		{256, 512, 512, 1},	   {256, 1024, 1024, 1},       {256, 2048, 2048, 1},
		{512, 1024, 4096, 1024},   {1024, 2048, 8192, 1024},   {2048, 4096, 16384, 1024},
		{4096, 8192, 30720, 1024}, {8192, 16384, 61440, 4096}, {16384, 32768, 122880, 8192},
	};

	for (size_t i = 0; i < sizeof(combos) / sizeof(combos[0]); i++)
		if (combos[i].cpu == cpu && mem >= combos[i].lo && mem <= combos[i].hi &&
		    (mem - combos[i].lo) % combos[i].step == 0)
			return true;
	return false;
}

static bool contains_string(const struct pp_json *arr, const char *s)
{
	pp_json_foreach (it, arr)
		if (pp_json_string(it) && strcmp(pp_json_string(it), s) == 0)
			return true;
	return false;
}

static bool name_ok(const char *s, size_t max)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && s[n] != '-' && s[n] != '_')
			return false;
	return n > 0 && n <= max;
}

static void taskdef_free(struct taskdef *td)
{
	free(td->arn);
	free(td->family);
	pp_json_free(td->desc);
	pp_json_free(td->tags);
	free(td);
}

/* "family", "family:rev" or an ARN; family alone means the latest ACTIVE. */
static struct taskdef *taskdef_find(struct aws_state *st, const char *ref, bool need_revision)
{
	const char *name = last_segment(ref, '/');
	const char *colon = strchr(name, ':');
	size_t flen = colon ? (size_t)(colon - name) : strlen(name);
	int rev = colon ? atoi(colon + 1) : 0;
	struct taskdef *best = NULL;

	if (need_revision && !colon)
		return NULL;
	for (struct taskdef *td = st->taskdefs; td; td = td->next) {
		if (strlen(td->family) != flen || strncmp(td->family, name, flen) != 0)
			continue;
		if (colon && td->revision == rev)
			return td;
		if (!colon && td->active && (!best || td->revision > best->revision))
			best = td;
	}
	return best;
}

/* ---- ECS actions ---- */

/* RegisterTaskDefinition's checks: names, images, sizes and the Fargate
 * rules. Fills the task's cpu and memory (-1 when absent); false after
 * answering the error. */
static bool taskdef_ok(const struct pp_json *body, long *cpu, long *mem, struct pp_mock_resp *resp)
{
	const char *family = pp_json_get_string(body, "family");
	const struct pp_json *containers = pp_json_get(body, "containerDefinitions");
	bool fargate = contains_string(pp_json_get(body, "requiresCompatibilities"), "FARGATE");

	*cpu = *mem = -1;
	if (!family || !name_ok(family, 255)) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "ClientException",
			  "Family contains invalid characters or is empty: up to 255 letters "
			  "(uppercase and lowercase), numbers, hyphens, and underscores are "
			  "allowed.");
		return false;
	}
	if (!pp_json_is(containers, PP_JSON_ARRAY) || containers->count == 0) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "ClientException",
			  "Container list cannot be empty.");
		return false;
	}
	pp_json_foreach (c, containers) {
		const char *img = pp_json_get_string(c, "image");
		const char *cname = pp_json_get_string(c, "name");

		if (!cname || !name_ok(cname, 255)) {
			aws_error(resp, PP_MOCK_AWS_JSON, 400, "ClientException",
				  "Container.name should not be null or empty and may contain "
				  "only letters, numbers, hyphens and underscores.");
			return false;
		}
		if (!img || !*img) {
			aws_error(resp, PP_MOCK_AWS_JSON, 400, "ClientException",
				  "Container.image should not be null or empty.");
			return false;
		}
	}
	if (pp_json_get_string(body, "cpu")) {
		*cpu = parse_size(pp_json_get_string(body, "cpu"), "vcpu", 1024);
		if (*cpu < 0) {
			aws_error(resp, PP_MOCK_AWS_JSON, 400, "ClientException",
				  "Invalid 'cpu' setting for task.");
			return false;
		}
	}
	if (pp_json_get_string(body, "memory")) {
		*mem = parse_size(pp_json_get_string(body, "memory"), "gb", 1024);
		if (*mem < 0) {
			aws_error(resp, PP_MOCK_AWS_JSON, 400, "ClientException",
				  "Invalid 'memory' setting for task.");
			return false;
		}
	}
	if (fargate) {
		const char *mode = pp_json_get_string(body, "networkMode");

		if (!mode || strcmp(mode, "awsvpc") != 0) {
			aws_error(resp, PP_MOCK_AWS_JSON, 400, "ClientException",
				  "Fargate only supports network mode 'awsvpc'.");
			return false;
		}
		if (*cpu < 0 || *mem < 0) {
			aws_error(resp, PP_MOCK_AWS_JSON, 400, "ClientException",
				  "Fargate requires that 'cpu' and 'memory' be defined at the task "
				  "level.");
			return false;
		}
		if (!fargate_combo_ok(*cpu, *mem)) {
			aws_error(resp, PP_MOCK_AWS_JSON, 400, "ClientException",
				  "No Fargate configuration exists for given values: %ld CPU, %ld "
				  "memory. See the Amazon ECS documentation for the valid values.",
				  *cpu, *mem);
			return false;
		}
	}
	return true;
}

static void ecs_register(struct pp_mock *m, struct aws_state *st, const struct pp_json *body,
			 const char *region, struct pp_mock_resp *resp)
{
	const char *family = pp_json_get_string(body, "family");
	bool fargate = contains_string(pp_json_get(body, "requiresCompatibilities"), "FARGATE");
	long cpu, mem;
	struct pp_json *desc = NULL, *out = NULL;
	struct taskdef *td = NULL;
	char arn[512], num[32];
	int revision = 1;

	if (!taskdef_ok(body, &cpu, &mem, resp))
		return;
	desc = pp_json_clone(body);
	td = calloc(1, sizeof(*td));
	if (!desc || !td)
		goto oom;
	td->tags = pp_json_detach(pp_json_get(desc, "tags"));
	if (!pp_json_is(td->tags, PP_JSON_ARRAY)) {
		pp_json_free(td->tags);
		td->tags = pp_json_new(PP_JSON_ARRAY);
		if (!td->tags)
			goto oom;
	}
	pp_mock_lock(m);
	if (st->ntaskdefs >= MAX_ITEMS) {
		pp_mock_unlock(m);
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "LimitExceededException",
			  "mock: too many task definition revisions");
		pp_json_free(desc);
		free(td);
		return;
	}
	for (struct taskdef *it = st->taskdefs; it; it = it->next)
		if (strcmp(it->family, family) == 0 && it->revision >= revision)
			revision = it->revision + 1;
	snprintf(arn, sizeof(arn), "arn:aws:ecs:%s:" ACCOUNT ":task-definition/%s:%d", region,
		 family, revision);
	td->arn = strdup(arn);
	td->family = strdup(family);
	td->revision = revision;
	td->active = true;
	td->desc = desc;
	desc = NULL;
	if (!td->arn || !td->family) {
		pp_mock_unlock(m);
		goto oom;
	}
	pp_json_set_string(td->desc, "taskDefinitionArn", arn);
	pp_json_set_int(td->desc, "revision", revision);
	pp_json_set_string(td->desc, "status", "ACTIVE");
	pp_json_set(td->desc, "registeredAt",
		    pp_json_new_number(pp_mock_wall(m, pp_mock_clock(m))));
	if (cpu > 0) {
		snprintf(num, sizeof(num), "%ld", cpu);
		pp_json_set_string(td->desc, "cpu", num);
	}
	if (mem > 0) {
		snprintf(num, sizeof(num), "%ld", mem);
		pp_json_set_string(td->desc, "memory", num);
	}
	if (fargate) {
		struct pp_json *c = pp_json_new(PP_JSON_ARRAY);

		pp_json_append(c, pp_json_new_string("EC2"));
		pp_json_append(c, pp_json_new_string("FARGATE"));
		pp_json_set(td->desc, "compatibilities", c);
	}
	td->next = st->taskdefs;
	st->taskdefs = td;
	st->ntaskdefs++;
	out = pp_json_new(PP_JSON_OBJECT);
	if (out) {
		pp_json_set(out, "taskDefinition", pp_json_clone(td->desc));
		pp_json_set(out, "tags", pp_json_clone(td->tags));
	}
	pp_mock_unlock(m);
	pp_mock_count(m, "RegisterTaskDefinition", NULL);
	pp_mock_count(m, "ecs.family", family);
	json_ok(resp, out);
	return;
oom:
	pp_json_free(desc);
	if (td)
		taskdef_free(td);
	aws_error(resp, PP_MOCK_AWS_JSON, 500, "ServerException", "mock: out of memory");
}

static void ecs_taskdef_answer(struct pp_mock *m, struct aws_state *st, const struct pp_json *body,
			       bool deregister, struct pp_mock_resp *resp)
{
	const char *ref = pp_json_get_string(body, "taskDefinition");
	struct pp_json *out = NULL;
	struct taskdef *td;

	if (!ref || !*ref) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "ClientException",
			  "taskDefinition can not be blank.");
		return;
	}
	pp_mock_lock(m);
	td = taskdef_find(st, ref, deregister);
	if (td && deregister && td->active) {
		td->active = false;
		pp_json_set_string(td->desc, "status", "INACTIVE");
		pp_json_set(td->desc, "deregisteredAt",
			    pp_json_new_number(pp_mock_wall(m, pp_mock_clock(m))));
		pp_mock_count(m, "DeregisterTaskDefinition", NULL);
	}
	if (td) {
		out = pp_json_new(PP_JSON_OBJECT);
		if (out) {
			pp_json_set(out, "taskDefinition", pp_json_clone(td->desc));
			if (!deregister && contains_string(pp_json_get(body, "include"), "TAGS"))
				pp_json_set(out, "tags", pp_json_clone(td->tags));
		}
	}
	pp_mock_unlock(m);
	if (!td) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "ClientException",
			  deregister && !strchr(last_segment(ref, '/'), ':')
				  ? "Invalid revision number. Number: "
				  : "Unable to describe task definition.");
		return;
	}
	json_ok(resp, out);
}

static void ecs_list_taskdefs(struct pp_mock *m, struct aws_state *st, const struct pp_json *body,
			      const char *region, struct pp_mock_resp *resp)
{
	const char *prefix = pp_json_get_string(body, "familyPrefix");
	const char *status = pp_json_get_string(body, "status");
	const char *sort = pp_json_get_string(body, "sort");
	const char *token = pp_json_get_string(body, "nextToken");
	long long max = pp_json_get_int(body, "maxResults", 100);
	bool desc = sort && strcmp(sort, "DESC") == 0;
	long long skip = 0;
	struct pp_json *out, *arns;
	const struct taskdef **v;
	size_t n = 0;

	/* ListTaskDefinitions pages as ECS documents (maxResults 1 to 100, an
	 * opaque nextToken) and sorts by family, then revision, ASC unless
	 * sort is DESC. */
	if (max < 1 || max > 100) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "InvalidParameterException",
			  "maxResults must be between 1 and 100.");
		return;
	}
	if (token && (sscanf(token, "mock-page-%lld", &skip) != 1 || skip < 0)) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "InvalidParameterException",
			  "Invalid nextToken.");
		return;
	}
	out = pp_json_new(PP_JSON_OBJECT);
	arns = pp_json_new(PP_JSON_ARRAY);
	pp_mock_lock(m);
	v = calloc(st->ntaskdefs + 1, sizeof(*v));
	for (struct taskdef *td = st->taskdefs; td && v; td = td->next) {
		if (prefix && strncmp(td->family, prefix, strlen(prefix)) != 0)
			continue;
		bool any = status && strcmp(status, "ALL") == 0;

		if (!any && td->active != (!status || strcmp(status, "INACTIVE") != 0))
			continue;
		v[n++] = td;
	}
	/* insertion sort: the lists are small */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0; j--) {
			int c = strcmp(v[j - 1]->family, v[j]->family);

			if (c == 0)
				c = v[j - 1]->revision > v[j]->revision ? 1 : -1;
			if ((c > 0) == desc)
				break;
			const struct taskdef *t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	for (size_t i = (size_t)skip; arns && i < n; i++) {
		if ((long long)arns->count == max) {
			char next[48];

			snprintf(next, sizeof(next), "mock-page-%lld", (long long)i);
			pp_json_set_string(out, "nextToken", next);
			break;
		}
		pp_json_append(arns, pp_json_new_string(v[i]->arn));
	}
	pp_mock_unlock(m);
	free(v);
	if (out && arns)
		pp_json_set(out, "taskDefinitionArns", arns);
	else
		pp_json_free(arns);
	json_ok(resp, out);
}

static const char *task_last_status(struct pp_mock *m, const struct task *t, double now)
{
	double provision = pp_mock_opts(m)->provision_seconds;

	if (t->stopped >= 0)
		return "STOPPED";
	if (t->forever)
		return "RUNNING";
	switch (pp_mock_job_phase(m, t->outcome, t->created, now)) {
	case PP_MOCK_PROVISIONING:
		return now - t->created < provision / 2 ? "PROVISIONING" : "PENDING";
	case PP_MOCK_RUNNING: return t->outcome == PP_MOCK_CRASH ? "STOPPED" : "RUNNING";
	default: return "STOPPED";
	}
}

static struct pp_json *task_json(struct pp_mock *m, const struct task *t, double now)
{
	struct pp_json *j = pp_json_new(PP_JSON_OBJECT), *containers;
	const char *last = task_last_status(m, t, now);
	const struct pp_mock_opts *o = pp_mock_opts(m);
	double start_at = t->created + o->provision_seconds;
	double end_at = t->stopped >= 0 ? t->stopped : start_at + o->run_seconds;
	bool stopped = strcmp(last, "STOPPED") == 0;
	bool started = t->outcome != PP_MOCK_CRASH && (t->stopped < 0 || t->stopped >= start_at);
	int exit_code = 0;

	if (!j)
		return NULL;
	if (t->outcome == PP_MOCK_CRASH && t->stopped < 0)
		end_at = start_at;
	pp_json_set_string(j, "taskArn", t->arn);
	pp_json_set_string(j, "clusterArn", t->cluster_arn);
	pp_json_set_string(j, "taskDefinitionArn", t->td_arn);
	pp_json_set_string(j, "lastStatus", last);
	pp_json_set_string(j, "desiredStatus", stopped || t->stopped >= 0 ? "STOPPED" : "RUNNING");
	pp_json_set_string(j, "launchType", "FARGATE");
	pp_json_set(j, "createdAt", pp_json_new_number(pp_mock_wall(m, t->created)));
	if (t->started_by)
		pp_json_set_string(j, "startedBy", t->started_by);
	if (t->group)
		pp_json_set_string(j, "group", t->group);
	if (started && (stopped || strcmp(last, "RUNNING") == 0))
		pp_json_set(j, "startedAt", pp_json_new_number(pp_mock_wall(m, start_at)));
	if (stopped) {
		pp_json_set(j, "stoppingAt", pp_json_new_number(pp_mock_wall(m, end_at)));
		pp_json_set(j, "stoppedAt", pp_json_new_number(pp_mock_wall(m, end_at)));
		if (t->stop_reason) {
			pp_json_set_string(j, "stopCode", "UserInitiated");
			pp_json_set_string(j, "stoppedReason", t->stop_reason);
		} else if (t->pull_fails) {
			/* What ECS reports for an image it could not pull (the
			 * Amazon ECS stopped-task error messages). */
			pp_json_set_string(j, "stopCode", "TaskFailedToStart");
			pp_json_set_string(j, "stoppedReason",
					   "CannotPullContainerError: pull image manifest has been "
					   "retried 5 time(s): failed to resolve ref: not found");
		} else if (t->outcome == PP_MOCK_CRASH) {
			pp_json_set_string(j, "stopCode", "TaskFailedToStart");
			pp_json_set_string(j, "stoppedReason",
					   "CannotPullContainerError: pull image manifest has been "
					   "retried 1 time(s): mock: PUSHPOOL_MOCK_CRASH=1");
		} else {
			pp_json_set_string(j, "stopCode", "EssentialContainerExited");
			pp_json_set_string(j, "stoppedReason",
					   "Essential container in task exited");
		}
	}
	/* 137: killed after StopTask's SIGTERM grace period. */
	if (t->stop_reason)
		exit_code = 137;
	else if (t->outcome == PP_MOCK_FAIL)
		exit_code = 1;
	containers = pp_json_new(PP_JSON_ARRAY);
	pp_json_foreach (name, t->container_names) {
		struct pp_json *c = pp_json_new(PP_JSON_OBJECT);

		if (!c)
			break;
		pp_json_set_string(c, "name", pp_json_string(name));
		pp_json_set_string(c, "taskArn", t->arn);
		pp_json_set_string(c, "lastStatus", stopped ? "STOPPED" : last);
		if (stopped && started)
			pp_json_set_int(c, "exitCode", exit_code);
		if (stopped && t->outcome == PP_MOCK_CRASH && !t->stop_reason)
			pp_json_set_string(c, "reason",
					   t->pull_fails ? "CannotPullContainerError: failed to "
							   "resolve ref: not found"
							 : "CannotPullContainerError: mock crash");
		pp_json_append(containers, c);
	}
	pp_json_set(j, "containers", containers);
	return j;
}

static void task_free(struct task *t)
{
	free(t->arn);
	free(t->cluster_arn);
	free(t->td_arn);
	free(t->started_by);
	free(t->group);
	free(t->stop_reason);
	pp_json_free(t->container_names);
	pp_mock_joblog_free(t->log);
	pp_json_free(t->tags);
	free(t);
}

static struct task *task_new(struct pp_mock *m, const struct taskdef *td, const char *cl_arn,
			     const struct pp_json *body, enum pp_mock_outcome outcome,
			     const char *region)
{
	struct task *t = calloc(1, sizeof(*t));
	const char *by = pp_json_get_string(body, "startedBy");
	const char *group = pp_json_get_string(body, "group");
	char id[33], arn[512];

	if (!t)
		return NULL;
	pp_mock_random_hex(m, id, 32);
	snprintf(arn, sizeof(arn), "arn:aws:ecs:%.31s:" ACCOUNT ":task/%.255s/%s", region,
		 last_segment(cl_arn, '/'), id);
	t->arn = strdup(arn);
	t->cluster_arn = strdup(cl_arn);
	t->td_arn = strdup(td->arn);
	t->started_by = by ? strdup(by) : NULL;
	t->group = group ? strdup(group) : NULL;
	t->container_names = pp_json_new(PP_JSON_ARRAY);
	if (pp_json_is(pp_json_get(body, "tags"), PP_JSON_ARRAY) &&
	    !(t->tags = pp_json_clone(pp_json_get(body, "tags")))) {
		task_free(t);
		return NULL;
	}
	t->outcome = outcome;
	t->created = pp_mock_clock(m);
	t->stopped = -1;
	pp_json_foreach (c, pp_json_get(td->desc, "containerDefinitions"))
		pp_json_append(t->container_names,
			       pp_json_new_string(pp_json_get_string(c, "name")));
	if (!t->arn || !t->cluster_arn || !t->td_arn || !t->container_names ||
	    (by && !t->started_by) || (group && !t->group)) {
		task_free(t);
		return NULL;
	}
	return t;
}

/* RunTask's own parameters, before any state is looked at; false after
 * answering the error. */
static bool run_task_params_ok(const struct pp_json *body, struct pp_mock_resp *resp)
{
	const char *ref = pp_json_get_string(body, "taskDefinition");
	const char *token = pp_json_get_string(body, "clientToken");
	const struct pp_json *overrides = pp_json_get(body, "overrides");
	long long count = pp_json_get_int(body, "count", 1);
	char *overrides_text;
	bool too_long;

	if (!ref || !*ref) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "ClientException",
			  "TaskDefinition can not be blank.");
		return false;
	}
	if (count < 1 || count > 10) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "InvalidParameterException",
			  "count must be between 1 and 10.");
		return false;
	}
	if (token && (strlen(token) == 0 || strlen(token) > 64)) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "InvalidParameterException",
			  "clientToken must be 1 to 64 characters.");
		return false;
	}
	overrides_text = overrides ? pp_json_to_string(overrides, PP_JSON_COMPACT) : NULL;
	too_long = overrides_text && strlen(overrides_text) > 8192;
	free(overrides_text);
	if (too_long) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "InvalidParameterException",
			  "Container Overrides length must be at most 8192");
		return false;
	}
	return true;
}

/* A clientToken seen before (called under the lock, which it releases):
 * the same parameters get the original tasks back, others a
 * ConflictException naming the tasks the token is bound to. */
static void run_task_replay(struct pp_mock *m, struct aws_state *st, struct client_token *ct,
			    const char *params_text, struct pp_json *out, struct pp_mock_resp *resp)
{
	struct pp_json *tasks = pp_json_get(out, "tasks");
	bool same = strcmp(ct->params, params_text) == 0;
	double now = pp_mock_clock(m);
	char *bound = NULL;

	if (same) {
		pp_json_foreach (a, ct->task_arns)
			for (struct task *t = st->tasks; t; t = t->next)
				if (strcmp(t->arn, pp_json_string(a)) == 0)
					pp_json_append(tasks, task_json(m, t, now));
	} else {
		bound = pp_json_to_string(ct->task_arns, PP_JSON_COMPACT);
	}
	pp_mock_unlock(m);
	pp_mock_count(m, "ecs.clientTokenReplays", ct->token);
	if (!same) {
		pp_json_free(out);
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "ConflictException",
			  "The specified client token has already been used with different "
			  "parameters.");
		if (bound && resp->body.len && resp->body.data[resp->body.len - 1] == '}') {
			resp->body.len--;
			pp_buf_printf(&resp->body, ",\"resourceIds\":%s}", bound);
		}
		free(bound);
		return;
	}
	pp_json_set(out, "failures", pp_json_new(PP_JSON_ARRAY));
	json_ok(resp, out);
}

/* Capacity shortages are answered as 200 with failures[] only. */
static void run_task_no_capacity(struct pp_mock *m, const char *cl_arn, struct pp_json *out,
				 struct pp_mock_resp *resp)
{
	struct pp_json *failures = pp_json_new(PP_JSON_ARRAY);
	struct pp_json *f = pp_json_new(PP_JSON_OBJECT);

	pp_json_set_string(f, "arn", cl_arn);
	pp_json_set_string(f, "reason",
			   "Capacity is unavailable at this time. Please try again later "
			   "or in a different availability zone");
	pp_json_append(failures, f);
	pp_json_set(out, "failures", failures);
	pp_mock_count(m, "ecs.capacityFailures", NULL);
	json_ok(resp, out);
}

/* Start count tasks of td into out's tasks[] and bind the clientToken to
 * them (called under the lock); takes params_text. */
static void run_task_launch(struct pp_mock *m, struct aws_state *st, struct taskdef *td,
			    const struct pp_json *body, const char *cl_arn, const char *region,
			    char *params_text, struct pp_json *out)
{
	const char *token = pp_json_get_string(body, "clientToken");
	const struct pp_json *overrides = pp_json_get(body, "overrides");
	long long count = pp_json_get_int(body, "count", 1);
	struct pp_json *tasks = pp_json_get(out, "tasks"), *arns = pp_json_new(PP_JSON_ARRAY);
	enum pp_mock_outcome outcome;
	struct client_token *ct;

	outcome = pp_mock_outcome_of(pp_json_get(td->desc, "containerDefinitions"));
	if (pp_mock_outcome_of(overrides) > outcome)
		outcome = pp_mock_outcome_of(overrides);
	for (long long i = 0; i < count; i++) {
		bool pull_fails = pp_mock_start_failure(m, "ecs");
		enum pp_mock_outcome o = pull_fails ? PP_MOCK_CRASH : outcome;
		struct task *t = task_new(m, td, cl_arn, body, o, region);

		if (!t)
			break;
		t->pull_fails = pull_fails;
		t->log = pp_mock_joblog_new(m, td->desc, overrides, o, t->created);
		pp_mock_prefect_job_started(m, td->desc, overrides, o, t->created);
		t->next = st->tasks;
		st->tasks = t;
		st->ntasks++;
		pp_json_append(tasks, task_json(m, t, t->created));
		pp_json_append(arns, pp_json_new_string(t->arn));
		pp_mock_count(m, "RunTaskStarted", NULL);
	}
	if (token && arns && (ct = calloc(1, sizeof(*ct)))) {
		ct->id = pp_mock_join_key(cl_arn, token);
		if (!ct->id || pp_strmap_put(&st->tokens_by_id, ct->id, ct)) {
			/* Unbound: a repeat would start a second task, as
			 * without the memory to remember it. */
			free(ct->id);
			free(ct);
			goto out;
		}
		ct->cluster = strdup(cl_arn);
		ct->token = strdup(token);
		ct->params = params_text;
		params_text = NULL;
		ct->task_arns = arns;
		arns = NULL;
		ct->next = st->tokens;
		st->tokens = ct;
		st->ntokens++;
		pp_mock_count(m, "ecs.clientToken", token);
	}
out:
	pp_json_free(arns);
	free(params_text);
}

/* The parameters a clientToken is bound to, as text: the body's members
 * but the token, written one by one (a copy of the body to take the token
 * out of was a twentieth of the mock's CPU at +20 ms: docs/performance.md,
 * step 108). NULL: no memory. */
static char *token_bound_params(const struct pp_json *body)
{
	struct pp_buf b;
	bool first = true;
	int rc;

	pp_buf_init(&b, PP_MOCK_BODY_MAX);
	rc = pp_buf_putc(&b, '{');
	pp_json_foreach (m, body) {
		if (rc || strcmp(m->key, "clientToken") == 0)
			continue;
		if (!first)
			rc = pp_buf_putc(&b, ',');
		first = false;
		rc = rc ?: pp_json_write_string(&b, m->key, strlen(m->key));
		rc = rc ?: pp_buf_putc(&b, ':');
		rc = rc ?: pp_json_write(m, &b, PP_JSON_COMPACT);
	}
	rc = rc ?: pp_buf_putc(&b, '}');
	if (rc) {
		pp_buf_free(&b);
		return NULL;
	}
	return pp_buf_steal(&b);
}

static void ecs_run_task(struct pp_mock *m, struct aws_state *st, const struct pp_json *body,
			 const char *region, struct pp_mock_resp *resp)
{
	const char *ref = pp_json_get_string(body, "taskDefinition");
	const char *token = pp_json_get_string(body, "clientToken");
	const struct pp_json *subnets =
		pp_json_path(body, "networkConfiguration.awsvpcConfiguration.subnets");
	long long count = pp_json_get_int(body, "count", 1);
	struct pp_json *out, *tasks;
	struct pp_mock_resp scratch = {0};
	const char *refusal = NULL, *refusal_type = NULL;
	char cl_arn[512], *params_text;
	struct taskdef *td;
	struct client_token *ct;
	bool no_capacity, need_cluster;

	if (!run_task_params_ok(body, resp))
		return;
	cluster_arn(pp_json_get_string(body, "cluster"), region, cl_arn, sizeof(cl_arn));
	params_text = token_bound_params(body);
	out = pp_json_new(PP_JSON_OBJECT);
	tasks = pp_json_new(PP_JSON_ARRAY);
	if (!params_text || !out || !tasks || pp_json_set(out, "tasks", tasks)) {
		free(params_text);
		pp_json_free(out);
		pp_json_free(tasks);
		aws_error(resp, PP_MOCK_AWS_JSON, 500, "ServerException", "mock: out of memory");
		return;
	}
	/* Rolled, not checked: this request's latency_ms was added already
	 * (as "ecs"), and a check would add it a second time, so ECS at
	 * +20 ms answered in 40 (issue 23). */
	no_capacity = pp_mock_fault_roll(m, "ecs.capacity", false, &scratch, NULL, NULL) !=
		      PP_MOCK_FAULT_NONE;
	need_cluster = pp_mock_behaviour(m, "ecs.clusters", NULL);

	pp_mock_lock(m);
	ct = NULL;
	if (token) {
		char buf[PP_MOCK_KEY_INLINE];
		char *id = pp_mock_join_key_in(buf, sizeof(buf), cl_arn, token);

		ct = id ? pp_strmap_get(&st->tokens_by_id, id) : NULL;
		if (id != buf)
			free(id);
	}
	if (ct) {
		run_task_replay(m, st, ct, params_text, out, resp); /* unlocks */
		free(params_text);
		return;
	}
	td = taskdef_find(st, ref, false);
	if (need_cluster &&
	    !pp_mock_aws_find(st->acct, "ecs.cluster", region, last_segment(cl_arn, '/'))) {
		refusal_type = "ClusterNotFoundException";
		refusal = "Cluster not found.";
	} else if (!td || !td->active) {
		refusal_type = "ClientException";
		refusal = td ? "TaskDefinition is inactive" : "Unable to find task definition.";
	} else if (strcmp(pp_json_get_string(td->desc, "networkMode") ?: "", "awsvpc") == 0 &&
		   (!pp_json_is(subnets, PP_JSON_ARRAY) || subnets->count == 0)) {
		refusal_type = "InvalidParameterException";
		refusal = "Network Configuration must be provided when networkMode 'awsvpc' is "
			  "specified.";
	} else if (st->ntasks + (size_t)count > MAX_ITEMS) {
		refusal_type = "LimitExceededException";
		refusal = "mock: too many tasks";
	} else if (!no_capacity) {
		run_task_launch(m, st, td, body, cl_arn, region, params_text, out);
		params_text = NULL;
	}
	pp_mock_unlock(m);
	free(params_text);
	if (refusal) {
		pp_json_free(out);
		aws_error(resp, PP_MOCK_AWS_JSON, 400, refusal_type, "%s", refusal);
	} else if (no_capacity) {
		run_task_no_capacity(m, cl_arn, out, resp);
	} else {
		pp_json_set(out, "failures", pp_json_new(PP_JSON_ARRAY));
		json_ok(resp, out);
	}
}

static struct task *task_find(struct aws_state *st, const char *cl_arn, const char *ref)
{
	const char *id = last_segment(ref, '/');

	for (struct task *t = st->tasks; t; t = t->next)
		if (strcmp(t->arn, ref) == 0 || (strcmp(t->cluster_arn, cl_arn) == 0 &&
						 strcmp(last_segment(t->arn, '/'), id) == 0))
			return t;
	return NULL;
}

/* ECS is eventually consistent: "the result of an API command ... might not
 * be immediately visible to all subsequent commands" (RunTask API reference),
 * so a task DescribeTasks is asked about right after RunTask may come back as
 * failures[].reason MISSING. Behaviour ecs.missing: for its seconds after
 * RunTask. */
static bool task_not_visible_yet(struct pp_mock *m, const struct task *t, double now)
{
	double window;

	return pp_mock_behaviour(m, "ecs.missing", &window) && now - t->created < window;
}

static void ecs_describe_tasks(struct pp_mock *m, struct aws_state *st, const struct pp_json *body,
			       const char *region, struct pp_mock_resp *resp)
{
	const struct pp_json *refs = pp_json_get(body, "tasks");
	bool with_tags = contains_string(pp_json_get(body, "include"), "TAGS");
	struct pp_json *out, *tasks, *failures;
	char cl_arn[512];
	double now = pp_mock_clock(m);

	if (!pp_json_is(refs, PP_JSON_ARRAY) || refs->count == 0 || refs->count > 100) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "InvalidParameterException",
			  "Tasks cannot be empty and may hold at most 100 entries.");
		return;
	}
	cluster_arn(pp_json_get_string(body, "cluster"), region, cl_arn, sizeof(cl_arn));
	out = pp_json_new(PP_JSON_OBJECT);
	tasks = pp_json_new(PP_JSON_ARRAY);
	failures = pp_json_new(PP_JSON_ARRAY);
	pp_mock_lock(m);
	pp_json_foreach (r, refs) {
		const char *ref = pp_json_string(r);
		struct task *t = ref ? task_find(st, cl_arn, ref) : NULL;

		/* Every task asked about, found or not: over the calls (keyed
		 * "requests" ecs:DescribeTasks), the tasks a client polls in one
		 * request (tests/scenario/ecs_status_batch.sh). */
		pp_mock_count(m, "ecs.described_tasks", NULL);
		if (t && task_not_visible_yet(m, t, now)) {
			pp_mock_count(m, "ecs.missing_answers", NULL);
			t = NULL;
		}
		if (t) {
			struct pp_json *j = task_json(m, t, now);

			if (j && with_tags)
				pp_json_set(j, "tags",
					    t->tags ? pp_json_clone(t->tags)
						    : pp_json_new(PP_JSON_ARRAY));
			pp_json_append(tasks, j);
		} else {
			struct pp_json *f = pp_json_new(PP_JSON_OBJECT);

			pp_json_set_string(f, "arn", ref ? ref : "");
			pp_json_set_string(f, "reason", "MISSING");
			pp_json_append(failures, f);
		}
	}
	pp_mock_unlock(m);
	pp_json_set(out, "tasks", tasks);
	pp_json_set(out, "failures", failures);
	json_ok(resp, out);
}

static void ecs_stop_task(struct pp_mock *m, struct aws_state *st, const struct pp_json *body,
			  const char *region, struct pp_mock_resp *resp)
{
	const char *ref = pp_json_get_string(body, "task");
	const char *reason = pp_json_get_string(body, "reason");
	struct pp_json *out = NULL;
	char cl_arn[512];
	struct task *t;
	double now = pp_mock_clock(m);

	if (!ref) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "InvalidParameterException",
			  "task can not be blank.");
		return;
	}
	cluster_arn(pp_json_get_string(body, "cluster"), region, cl_arn, sizeof(cl_arn));
	pp_mock_lock(m);
	t = task_find(st, cl_arn, ref);
	if (t && t->stopped < 0 && strcmp(task_last_status(m, t, now), "STOPPED") != 0) {
		t->stopped = now;
		t->stop_reason = strdup(reason && *reason ? reason : "Task stopped by user");
		pp_mock_count(m, "StopTask", NULL);
	}
	if (t) {
		out = pp_json_new(PP_JSON_OBJECT);
		pp_json_set(out, "task", task_json(m, t, now));
	}
	pp_mock_unlock(m);
	if (!t) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "InvalidParameterException",
			  "The referenced task was not found.");
		return;
	}
	json_ok(resp, out);
}

static void ecs_list_tasks(struct pp_mock *m, struct aws_state *st, const struct pp_json *body,
			   const char *region, struct pp_mock_resp *resp)
{
	const char *by = pp_json_get_string(body, "startedBy");
	const char *family = pp_json_get_string(body, "family");
	const char *desired = pp_json_get_string(body, "desiredStatus");
	const char *token = pp_json_get_string(body, "nextToken");
	long long max = pp_json_get_int(body, "maxResults", 100);
	struct pp_json *out, *arns;
	char cl_arn[512], prefix[300];
	double now = pp_mock_clock(m);
	long long skip = 0, seen = 0;

	/* ListTasks pages as ECS documents: maxResults 1 to 100 (100 when
	 * absent), and an opaque nextToken (here the count already listed). */
	if (max < 1 || max > 100) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "InvalidParameterException",
			  "maxResults must be between 1 and 100.");
		return;
	}
	if (token && (sscanf(token, "mock-page-%lld", &skip) != 1 || skip < 0)) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "InvalidParameterException",
			  "Invalid nextToken.");
		return;
	}
	out = pp_json_new(PP_JSON_OBJECT);
	arns = pp_json_new(PP_JSON_ARRAY);

	cluster_arn(pp_json_get_string(body, "cluster"), region, cl_arn, sizeof(cl_arn));
	snprintf(prefix, sizeof(prefix), "/%s:", family ? family : "");
	pp_mock_lock(m);
	for (struct task *t = st->tasks; t && arns; t = t->next) {
		bool is_stopped = strcmp(task_last_status(m, t, now), "STOPPED") == 0;

		if (strcmp(t->cluster_arn, cl_arn) != 0)
			continue;
		if (by && (!t->started_by || strcmp(by, t->started_by) != 0))
			continue;
		if (family && !strstr(t->td_arn, prefix))
			continue;
		if (is_stopped != (desired && strcmp(desired, "STOPPED") == 0))
			continue;
		if (seen++ < skip)
			continue;
		if ((long long)arns->count == max) {
			char next[48];

			snprintf(next, sizeof(next), "mock-page-%lld", skip + max);
			pp_json_set_string(out, "nextToken", next);
			break;
		}
		pp_json_append(arns, pp_json_new_string(t->arn));
	}
	pp_mock_unlock(m);
	pp_json_set(out, "taskArns", arns);
	json_ok(resp, out);
}

static void ecs_describe_taskdef(struct pp_mock *m, struct aws_state *st,
				 const struct pp_json *body, const char *region,
				 struct pp_mock_resp *resp)
{
	ecs_taskdef_answer(m, st, body, false, resp);
}

static void ecs_deregister_taskdef(struct pp_mock *m, struct aws_state *st,
				   const struct pp_json *body, const char *region,
				   struct pp_mock_resp *resp)
{
	ecs_taskdef_answer(m, st, body, true, resp);
}

/* ---- CloudWatch Logs ---- */

/* The task and container a log stream "PREFIX/CONTAINER/TASK-ID" of group
 * belongs to, as the awslogs driver names it from the task definition's
 * logConfiguration; NULL when no task's container writes there. */
static struct task *stream_task(struct aws_state *st, const char *region, const char *group,
				const char *stream)
{
	const char *id = strrchr(stream, '/');
	if (!id || id == stream)
		return NULL;
	const char *cstart = id - 1;
	while (cstart > stream && *cstart != '/')
		cstart--;
	if (cstart == stream)
		return NULL;
	size_t plen = (size_t)(cstart - stream), clen = (size_t)(id - cstart - 1);
	for (struct task *t = st->tasks; t; t = t->next) {
		char prefix[300];
		if (strcmp(last_segment(t->arn, '/'), id + 1) || !strstr(t->arn, region) ||
		    plen >= sizeof(prefix))
			continue;
		struct taskdef *td = taskdef_find(st, t->td_arn, true);
		pp_json_foreach (c, td ? pp_json_get(td->desc, "containerDefinitions") : NULL) {
			const char *name = pp_json_get_string(c, "name");
			const struct pp_json *lc = pp_json_get(c, "logConfiguration");
			const struct pp_json *o = pp_json_get(lc, "options");
			const char *g = pp_json_get_string(o, "awslogs-group");
			const char *p = pp_json_get_string(o, "awslogs-stream-prefix");
			if (name && strlen(name) == clen && !strncmp(name, cstart + 1, clen) &&
			    !strcmp(pp_json_get_string(lc, "logDriver") ?: "", "awslogs") && g &&
			    !strcmp(g, group) && p && strlen(p) == plen &&
			    !strncmp(p, stream, plen))
				return t;
		}
	}
	return NULL;
}

/* GetLogEvents on a task's stream: the stream exists once its container
 * started; tokens are "f/N" and "b/N", N the index of the next event, and
 * a forward token at the end comes back unchanged. */
static void logs_get_events(struct pp_mock *m, struct aws_state *st, const struct pp_json *body,
			    const char *region, struct pp_mock_resp *resp)
{
	const char *group = pp_json_get_string(body, "logGroupName");
	const char *gid = pp_json_get_string(body, "logGroupIdentifier");
	const char *stream = pp_json_get_string(body, "logStreamName");
	const char *token = pp_json_get_string(body, "nextToken");
	bool head = pp_json_get_bool(body, "startFromHead", false);
	long long limit = pp_json_get_int(body, "limit", 10000);
	long long since = pp_json_get_int(body, "startTime", 0);
	double now = pp_mock_clock(m);

	if (!group == !gid) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "InvalidParameterException",
			  "Either logGroupName or logGroupIdentifier must be specified, not both.");
		return;
	}
	size_t from = 0;
	if (token) {
		char *end;
		unsigned long long v = strtoull(token + 2, &end, 10);
		if ((token[0] != 'f' && token[0] != 'b') || token[1] != '/' || *end ||
		    (token[0] == 'f' && !head)) {
			aws_error(resp, PP_MOCK_AWS_JSON, 400, "InvalidParameterException",
				  "The specified nextToken is invalid.");
			return;
		}
		from = (size_t)v;
	}
	pp_mock_lock(m);
	struct task *t = stream_task(st, region, group ? group : last_segment(gid, ':'), stream);
	double start_at = t ? t->created + pp_mock_opts(m)->provision_seconds : 0;
	if (!t || t->outcome == PP_MOCK_CRASH || now < start_at ||
	    (t->stopped >= 0 && t->stopped < start_at)) {
		pp_mock_unlock(m);
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "ResourceNotFoundException",
			  "The specified log stream does not exist.");
		return;
	}
	size_t written = pp_mock_joblog_written(t->log, now, t->stopped);
	if (!token && !head)
		from = written > (size_t)limit ? written - (size_t)limit : 0;
	if (from > written)
		from = written;
	struct pp_json *out = pp_json_new(PP_JSON_OBJECT), *events = pp_json_new(PP_JSON_ARRAY);
	size_t next = from;
	if (!out || !events) {
		pp_mock_unlock(m);
		pp_json_free(out);
		pp_json_free(events);
		aws_error(resp, PP_MOCK_AWS_JSON, 500, "ServiceUnavailableException",
			  "mock: out of memory");
		return;
	}
	for (; next < written && events->count < (size_t)limit; next++) {
		double at;
		const char *text = pp_mock_joblog_line(t->log, next, &at, NULL);
		long long ms = (long long)(pp_mock_wall(m, at) * 1000.0);
		if (ms < since)
			continue;
		struct pp_json *e = pp_json_new(PP_JSON_OBJECT);
		pp_json_set_int(e, "timestamp", ms);
		pp_json_set_string(e, "message", text);
		pp_json_set_int(e, "ingestionTime", ms + 5);
		pp_json_append(events, e);
	}
	pp_mock_unlock(m);
	char fwd[32], back[32];
	snprintf(fwd, sizeof(fwd), "f/%020zu", next);
	snprintf(back, sizeof(back), "b/%020zu", from);
	pp_json_set(out, "events", events);
	/* At the end: the token that was sent, as AWS answers. */
	pp_json_set_string(out, "nextForwardToken", token && next == from ? token : fwd);
	pp_json_set_string(out, "nextBackwardToken", back);
	json_ok(resp, out);
}

static const struct {
	const char *name;
	void (*run)(struct pp_mock *m, struct aws_state *st, const struct pp_json *body,
		    const char *region, struct pp_mock_resp *resp);
} logs_actions[] = {
	{"GetLogEvents", logs_get_events},
};

/* Clusters live with the account's other provisioned resources. */
static void ecs_clusters(struct pp_mock *m, struct aws_state *st, const struct pp_json *body,
			 const char *region, struct pp_mock_resp *resp)
{
	pp_mock_lock(m);
	pp_mock_aws_ecs_clusters(m, st->acct, resp->action, body, region, resp);
	pp_mock_unlock(m);
	pp_mock_aws_changed(m, resp);
}

/* ECS is one endpoint: X-Amz-Target names the operation. */
static const struct {
	const char *name;
	void (*run)(struct pp_mock *m, struct aws_state *st, const struct pp_json *body,
		    const char *region, struct pp_mock_resp *resp);
} ecs_actions[] = {
	{"RegisterTaskDefinition", ecs_register},
	{"DescribeTaskDefinition", ecs_describe_taskdef},
	{"DeregisterTaskDefinition", ecs_deregister_taskdef},
	{"ListTaskDefinitions", ecs_list_taskdefs},
	{"RunTask", ecs_run_task},
	{"DescribeTasks", ecs_describe_tasks},
	{"StopTask", ecs_stop_task},
	{"ListTasks", ecs_list_tasks},
	{"CreateCluster", ecs_clusters},
	{"DescribeClusters", ecs_clusters},
	{"DeleteCluster", ecs_clusters},
};

/* Operation, signature, content type and faults, before the body is read;
 * the signature's region goes to c->note. */
static bool ecs_admit(struct pp_mock_call *c)
{
	const char *target = pp_mock_header(c->req, "X-Amz-Target");
	const char *ctype = pp_mock_header(c->req, "Content-Type");
	struct pp_mock_resp *resp = c->resp;

	/* One edge endpoint for ECS and CloudWatch Logs, as LocalStack serves
	 * them: the target's prefix names the service. */
	bool logs = target && !strncmp(target, LOGS_TARGET_PREFIX, strlen(LOGS_TARGET_PREFIX));
	if (!logs &&
	    (!target || strncmp(target, ECS_TARGET_PREFIX, strlen(ECS_TARGET_PREFIX)) != 0)) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "UnknownOperationException",
			  "X-Amz-Target must start with " ECS_TARGET_PREFIX
			  " or " LOGS_TARGET_PREFIX);
		return false;
	}
	if (logs)
		snprintf(resp->api, sizeof(resp->api), "logs");
	snprintf(resp->action, sizeof(resp->action), "%s",
		 target + strlen(logs ? LOGS_TARGET_PREFIX : ECS_TARGET_PREFIX));
	if (verify_sigv4(c->m, c->state, c->req, resp, PP_MOCK_AWS_JSON, logs ? "logs" : "ecs",
			 c->note, sizeof(c->note), NULL))
		return false;
	if (!ctype || strncmp(ctype, "application/x-amz-json-1.1", 26) != 0) {
		aws_error(resp, PP_MOCK_AWS_JSON, 400, "SerializationException",
			  "Content-Type must be application/x-amz-json-1.1, not %s",
			  ctype ? ctype : "(none)");
		return false;
	}
	return pp_mock_aws_faults(c, PP_MOCK_AWS_JSON, logs ? "logs" : "ecs");
}

static void ecs_bad_body(struct pp_mock_call *c, const char *why)
{
	aws_error(c->resp, PP_MOCK_AWS_JSON, 400, "SerializationException",
		  "request body is not a JSON object: %s", why);
}

/* The request against botocore's ECS model (mock/spec_gate.c); a body that
 * is not an object is the handler's to answer. */
static bool ecs_validate(struct pp_mock_call *c)
{
	bool logs = !strcmp(c->resp->api, "logs");
	return !pp_json_is(c->body, PP_JSON_OBJECT) ||
	       !pp_mock_spec_aws_json(c->m, logs ? "logs" : "ecs", c->resp->action, c->body,
				      c->resp);
}

static void ecs_handle(struct pp_mock_call *c)
{
	const char *action = c->resp->action;

	if (!pp_json_is(c->body, PP_JSON_OBJECT)) {
		ecs_bad_body(c, "not an object");
		return;
	}
	bool logs = !strcmp(c->resp->api, "logs");
	pp_mock_barrier_pass(c->m, &((struct aws_state *)c->state)->bar, "ecs", action);
	for (size_t i = 0; !logs && i < sizeof(ecs_actions) / sizeof(ecs_actions[0]); i++) {
		if (strcmp(action, ecs_actions[i].name) == 0) {
			ecs_actions[i].run(c->m, c->state, c->body, c->note, c->resp);
			return;
		}
	}
	for (size_t i = 0; logs && i < sizeof(logs_actions) / sizeof(logs_actions[0]); i++) {
		if (strcmp(action, logs_actions[i].name) == 0) {
			logs_actions[i].run(c->m, c->state, c->body, c->note, c->resp);
			return;
		}
	}
	aws_error(c->resp, PP_MOCK_AWS_JSON, 400, "UnknownOperationException",
		  "mock %s does not implement %s", logs ? "CloudWatch Logs" : "ECS", action);
}

static void ecs_unmatched(struct pp_mock_call *c, bool other_method)
{
	aws_error(c->resp, PP_MOCK_AWS_JSON, 405, "UnknownOperationException",
		  "ECS takes POST with X-Amz-Target");
}

static const struct pp_mock_route ecs_routes[] = {
	{"POST", "/aws/ecs", ecs_handle, .changes = true},
	{NULL},
};

static const struct pp_mock_router ecs_router = {
	.api = "ecs",
	.scope = "/aws/ecs",
	.json_body = true,
	.routes = ecs_routes,
	.admit = ecs_admit,
	.bad_body = ecs_bad_body,
	.validate = ecs_validate,
	.unmatched = ecs_unmatched,
};

/* ---- STS ---- */

static int hexval(int c)
{
	return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* Value of key in an x-www-form-urlencoded body, decoded into out. */
static bool form_value(const char *body, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);

	for (const char *p = body; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
		size_t n = 0;

		if (strncmp(p, key, klen) != 0 || p[klen] != '=')
			continue;
		for (p += klen + 1; *p && *p != '&' && n + 1 < size; p++) {
			if (*p == '+') {
				out[n++] = ' ';
			} else if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
				out[n++] = (char)(hexval(p[1]) * 16 + hexval(p[2]));
				p += 2;
			} else {
				out[n++] = *p;
			}
		}
		out[n] = '\0';
		return true;
	}
	return false;
}

static bool jwt_shaped(const char *s)
{
	const char *d1 = strchr(s, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;

	return d1 && d2 && d1 > s && d2 > d1 + 1 && !strchr(d2 + 1, '.');
}

/* What an AssumeRole* form asks for; false after answering a validation
 * error. */
struct sts_ask {
	char role[2048], session[128];
	double seconds;
};

static bool sts_parse(struct pp_mock *m, const char *body, struct sts_ask *ask,
		      struct pp_mock_resp *resp)
{
	char duration[16];

	ask->seconds = 3600;
	if (!form_value(body, "RoleArn", ask->role, sizeof(ask->role)) ||
	    strncmp(ask->role, "arn:aws:iam::", 13) != 0 || !strstr(ask->role, ":role/")) {
		aws_error(resp, PP_MOCK_AWS_STS, 400, "ValidationError",
			  "1 validation error detected: Value at 'roleArn' failed to satisfy "
			  "constraint: a role ARN arn:aws:iam::ACCOUNT:role/NAME is required");
		return false;
	}
	if (!form_value(body, "RoleSessionName", ask->session, sizeof(ask->session)) ||
	    strlen(ask->session) < 2 || strlen(ask->session) > 64) {
		aws_error(resp, PP_MOCK_AWS_STS, 400, "ValidationError",
			  "1 validation error detected: Value at 'roleSessionName' failed to "
			  "satisfy constraint: Member must have length between 2 and 64");
		return false;
	}
	if (form_value(body, "DurationSeconds", duration, sizeof(duration))) {
		ask->seconds = atof(duration);
		if (ask->seconds < 900 || ask->seconds > 43200) {
			aws_error(resp, PP_MOCK_AWS_STS, 400, "ValidationError",
				  "1 validation error detected: Value '%s' at 'durationSeconds' "
				  "failed to satisfy constraint: Member must have value between "
				  "900 and 43200",
				  duration);
			return false;
		}
	}
	if (ask->seconds > pp_mock_opts(m)->token_lifetime_seconds)
		ask->seconds = pp_mock_opts(m)->token_lifetime_seconds;
	return true;
}

/* AssumeRoleWithWebIdentity: the token the mock was told to accept, or any
 * JWT-shaped one. */
static bool sts_web_token_ok(struct pp_mock *m, const char *body)
{
	const char *want = pp_mock_opts(m)->aws_web_identity_token;
	char token[8192];
	bool ok = form_value(body, "WebIdentityToken", token, sizeof(token));
	size_t n = ok ? strlen(token) : 0;

	while (n && (token[n - 1] == '\n' || token[n - 1] == '\r'))
		token[--n] = '\0';
	return ok && n && (want ? strcmp(token, want) == 0 : jwt_shaped(token));
}

static void sts_answer(struct pp_mock *m, const char *action, const struct sts_ask *ask,
		       const struct temp_cred *c, struct pp_mock_resp *resp)
{
	char expires_iso[32], role_name[256];

	iso8601(c->expires, expires_iso, sizeof(expires_iso));
	snprintf(role_name, sizeof(role_name), "%.200s", last_segment(ask->role, '/'));
	pp_mock_resp_printf(
		resp, 200, "text/xml",
		"<%sResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><%sResult>"
		"<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>"
		"<SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>"
		"<AssumedRoleUser><Arn>arn:aws:sts::" ACCOUNT ":assumed-role/%s/%s</Arn>"
		"<AssumedRoleId>AROAPUSHPOOLMOCK:%s</AssumedRoleId></AssumedRoleUser>"
		"</%sResult><ResponseMetadata><RequestId>00000000-0000-4000-8000-000000000001"
		"</RequestId></ResponseMetadata></%sResponse>",
		action, action, c->akid, c->secret, c->token, expires_iso, role_name, ask->session,
		ask->session, action, action);
	pp_mock_count(m, "sts.issued", action);
}

/* Who signed: a static key is the mock's IAM user, temporary credentials
 * (STS, container, IMDS) an assumed role session. */
static void sts_caller(struct pp_mock_call *c)
{
	bool static_key = false;
	char arn[256];

	if (!pp_mock_aws_signed(c, PP_MOCK_AWS_STS, "sts", &static_key))
		return;
	if (static_key)
		snprintf(arn, sizeof(arn), "arn:aws:iam::" ACCOUNT ":user/" PP_MOCK_AWS_USER);
	else
		snprintf(arn, sizeof(arn),
			 "arn:aws:sts::" ACCOUNT ":assumed-role/" PP_MOCK_AWS_ROLE "/pushpool");
	pp_mock_resp_printf(c->resp, 200, "text/xml",
			    "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/"
			    "2011-06-15/\"><GetCallerIdentityResult><Arn>%s</Arn>"
			    "<UserId>%s</UserId><Account>" ACCOUNT "</Account>"
			    "</GetCallerIdentityResult><ResponseMetadata><RequestId>"
			    "00000000-0000-4000-8000-000000000002</RequestId></ResponseMetadata>"
			    "</GetCallerIdentityResponse>",
			    arn, static_key ? "AIDAPUSHPOOLMOCKUSER" : "AROAPUSHPOOLMOCK:pushpool");
	pp_mock_count(c->m, "sts.caller", NULL);
}

static void sts_handle(struct pp_mock_call *c)
{
	struct pp_mock *m = c->m;
	struct pp_mock_resp *resp = c->resp;
	const char *body = c->req->body;
	char action[64], region[32];
	struct sts_ask ask;
	struct temp_cred *cred;
	bool web, static_key;

	if (!form_value(body, "Action", action, sizeof(action))) {
		aws_error(resp, PP_MOCK_AWS_STS, 400, "MissingAction",
			  "STS takes POST with a form body carrying Action=");
		return;
	}
	snprintf(resp->action, sizeof(resp->action), "%s", action);
	if (strcmp(action, "GetCallerIdentity") == 0) {
		sts_caller(c);
		return;
	}
	web = strcmp(action, "AssumeRoleWithWebIdentity") == 0;
	if (!web && strcmp(action, "AssumeRole") != 0) {
		aws_error(resp, PP_MOCK_AWS_STS, 400, "InvalidAction",
			  "Could not find operation %s for version 2011-06-15", action);
		return;
	}
	/* AssumeRole is signed; the web identity token is the proof otherwise. */
	if (!web && verify_sigv4(m, c->state, c->req, resp, PP_MOCK_AWS_STS, "sts", region,
				 sizeof(region), &static_key))
		return;
	if (!sts_parse(m, body, &ask, resp))
		return;
	if (web && !sts_web_token_ok(m, body)) {
		aws_error(resp, PP_MOCK_AWS_STS, 400, "InvalidIdentityToken",
			  "The web identity token that was passed could not be validated "
			  "by AWS. Get a new identity token from the identity provider and "
			  "then retry the request.");
		return;
	}
	if (pp_mock_fault_check(m, "sts", true, resp, NULL) != PP_MOCK_FAULT_NONE) {
		aws_error(resp, PP_MOCK_AWS_STS, 503, "ServiceUnavailable",
			  "Service is unavailable");
		return;
	}
	cred = issue_cred(m, c->state, ask.seconds);
	if (!cred) {
		aws_error(resp, PP_MOCK_AWS_STS, 500, "InternalFailure", "mock: out of memory");
		return;
	}
	sts_answer(m, action, &ask, cred, resp);
}

static void sts_unmatched(struct pp_mock_call *c, bool other_method)
{
	aws_error(c->resp, PP_MOCK_AWS_STS, 400, "MissingAction",
		  "STS takes POST with a form body carrying Action=");
}

static const struct pp_mock_route sts_routes[] = {
	{"POST", "/aws/sts", sts_handle, .changes = true},
	{NULL},
};

static const struct pp_mock_router sts_router = {
	.api = "sts",
	.scope = "/aws/sts",
	.routes = sts_routes,
	.unmatched = sts_unmatched,
};

/* ---- container credentials and IMDSv2 ---- */

static void creds_json(struct pp_mock *m, struct aws_state *st, struct pp_mock_resp *resp,
		       bool imds)
{
	struct temp_cred *c = issue_cred(m, st, pp_mock_opts(m)->token_lifetime_seconds);
	char expires[32], now[32];

	if (!c) {
		pp_mock_resp_printf(resp, 500, "text/plain", "mock: out of memory\n");
		return;
	}
	iso8601(c->expires, expires, sizeof(expires));
	iso8601(pp_mock_wall(m, pp_mock_clock(m)), now, sizeof(now));
	pp_mock_resp_printf(resp, 200, "application/json",
			    "{%s\"AccessKeyId\":\"%s\",\"SecretAccessKey\":\"%s\",\"Token\":\"%s\","
			    "\"Expiration\":\"%s\",\"RoleArn\":\"arn:aws:iam::" ACCOUNT
			    ":role/" IMDS_ROLE "\"%s%s%s}",
			    imds ? "\"Code\":\"Success\",\"Type\":\"AWS-HMAC\"," : "", c->akid,
			    c->secret, c->token, expires, imds ? ",\"LastUpdated\":\"" : "",
			    imds ? now : "", imds ? "\"" : "");
	pp_mock_count(m, imds ? "imds.credentials" : "container.credentials", NULL);
}

/* PUT /latest/api/token: an IMDSv2 session token for 1..21600 s. */
static void imds_token(struct pp_mock_call *c)
{
	struct aws_state *st = c->state;
	const char *ttl_s = pp_mock_header(c->req, "X-aws-ec2-metadata-token-ttl-seconds");
	int ttl = ttl_s ? atoi(ttl_s) : 0;
	struct temp_cred *t;

	if (ttl < 1 || ttl > 21600) {
		c->resp->reject_reason = "imds_bad_ttl";
		pp_mock_resp_printf(c->resp, 400, "text/plain",
				    "X-aws-ec2-metadata-token-ttl-seconds must be 1..21600\n");
		return;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		pp_mock_resp_printf(c->resp, 500, "text/plain", "mock: out of memory\n");
		return;
	}
	pp_mock_random_hex(c->m, t->token, 56);
	t->expires = pp_mock_wall(c->m, pp_mock_clock(c->m)) + ttl;
	pp_mock_resp_printf(c->resp, 200, "text/plain", "%s", t->token);
	pp_mock_resp_header(c->resp, "X-aws-ec2-metadata-token-ttl-seconds", ttl_s);
	pp_mock_lock(c->m);
	push_capped(&st->imds_tokens, &st->nimds, t);
	pp_mock_unlock(c->m);
}

/* Every IMDS path but the token's needs a live session token. */
static bool imds_session_ok(struct pp_mock_call *c)
{
	struct aws_state *st = c->state;
	const char *tok = pp_mock_header(c->req, "X-aws-ec2-metadata-token");
	double now = pp_mock_wall(c->m, pp_mock_clock(c->m));
	bool valid = false;

	pp_mock_lock(c->m);
	for (struct temp_cred *t = st->imds_tokens; tok && t; t = t->next)
		if (strcmp(t->token, tok) == 0 && t->expires > now)
			valid = true;
	pp_mock_unlock(c->m);
	if (!valid) {
		c->resp->reject_reason = "imds_no_token";
		pp_mock_resp_printf(c->resp, 401, "text/plain", "Unauthorized\n");
	}
	return valid;
}

static bool imds_admit(struct pp_mock_call *c)
{
	snprintf(c->resp->action, sizeof(c->resp->action), "%s", c->req->path + strlen("/latest"));
	return strcmp(c->req->path, "/latest/api/token") == 0 || imds_session_ok(c);
}

static void imds_unmatched(struct pp_mock_call *c, bool other_method)
{
	if (other_method && strcmp(c->req->path, "/latest/api/token") == 0) {
		pp_mock_resp_printf(c->resp, 405, "text/plain", "IMDSv2 token wants PUT\n");
		return;
	}
	if (imds_admit(c))
		pp_mock_resp_printf(c->resp, 404, "text/plain", "Not Found\n");
}

static void imds_roles(struct pp_mock_call *c)
{
	pp_mock_resp_printf(c->resp, 200, "text/plain", IMDS_ROLE);
}

static void imds_creds(struct pp_mock_call *c)
{
	if (strcmp(pp_mock_param(&c->params, "role"), IMDS_ROLE) == 0)
		creds_json(c->m, c->state, c->resp, true);
	else
		pp_mock_resp_printf(c->resp, 404, "text/plain", "Not Found\n");
}

static const struct pp_mock_route imds_routes[] = {
	{"PUT", "/latest/api/token", imds_token, .changes = true},
	{"GET", "/latest/meta-data/iam/security-credentials", imds_roles, .changes = false},
	{"GET", "/latest/meta-data/iam/security-credentials/{role}", imds_creds, .changes = true},
	{NULL},
};

static const struct pp_mock_router imds_router = {
	.api = "imds",
	.scope = "/latest",
	.routes = imds_routes,
	.admit = imds_admit,
	.unmatched = imds_unmatched,
};

/* The ECS/EKS container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI). */
static void container_creds(struct pp_mock_call *c)
{
	snprintf(c->resp->action, sizeof(c->resp->action), "container-credentials");
	creds_json(c->m, c->state, c->resp, false);
}

static const struct pp_mock_route container_routes[] = {
	{"GET", "/aws/container-credentials/{rest*}", container_creds, .changes = true},
	{NULL},
};

static const struct pp_mock_router container_router = {
	.api = "aws",
	.scope = "/aws/container-credentials",
	.routes = container_routes,
};

/* POST /aws/control/orphan {"region": R, "cluster": C, "run_id": ID,
 * "store_id": S, "age_seconds": N}: a task a lost submission left running
 * (until stopped), started N seconds ago on the mock's clock, tagged
 * pushpool:run-id and pushpool:store-id when given (without them, a task
 * pushpool does not own). */
static void plant_orphan_task(struct pp_mock_call *c)
{
	struct aws_state *st = c->state;
	const char *region = pp_json_get_string(c->body, "region");
	const char *tags[][2] = {{"pushpool:run-id", pp_json_get_string(c->body, "run_id")},
				 {"pushpool:store-id", pp_json_get_string(c->body, "store_id")}};
	double age = 0;
	char cl_arn[512], td_arn[160], id[33], arn[600];

	snprintf(c->resp->action, sizeof(c->resp->action), "control/orphan");
	pp_json_get_number(c->body, "age_seconds", &age);
	if (!region || !*region || strlen(region) > 31 || age < 0) {
		pp_mock_resp_printf(c->resp, 400, "text/plain",
				    "orphan: want {\"region\": R, \"cluster\": C, \"run_id\": ID, "
				    "\"store_id\": S, \"age_seconds\": N >= 0}\n");
		return;
	}
	cluster_arn(pp_json_get_string(c->body, "cluster"), region, cl_arn, sizeof(cl_arn));
	snprintf(td_arn, sizeof(td_arn), "arn:aws:ecs:%s:" ACCOUNT ":task-definition/planted:1",
		 region);
	struct task *t = calloc(1, sizeof(*t));
	struct pp_json *tl = pp_json_new(PP_JSON_ARRAY);
	bool oom = !t || !tl;

	for (size_t i = 0; i < 2 && !oom; i++) {
		struct pp_json *tag = tags[i][1] ? pp_json_new(PP_JSON_OBJECT) : NULL;

		if (tag &&
		    (pp_json_set_string(tag, "key", tags[i][0]) ||
		     pp_json_set_string(tag, "value", tags[i][1]) || pp_json_append(tl, tag)))
			oom = true;
	}
	pp_mock_lock(c->m);
	if (!oom) {
		pp_mock_random_hex(c->m, id, 32);
		snprintf(arn, sizeof(arn), "arn:aws:ecs:%s:" ACCOUNT ":task/%s/%s", region,
			 last_segment(cl_arn, '/'), id);
		t->arn = strdup(arn);
		t->cluster_arn = strdup(cl_arn);
		t->td_arn = strdup(td_arn);
		t->container_names = pp_json_new(PP_JSON_ARRAY);
		if (pp_json_append(t->container_names, pp_json_new_string("prefect"))) {
			pp_json_free(t->container_names);
			t->container_names = NULL;
		}
		t->tags = tl;
		tl = NULL;
		t->forever = true;
		t->created = pp_mock_clock(c->m) - age;
		t->stopped = -1;
		oom = !t->arn || !t->cluster_arn || !t->td_arn || !t->container_names;
	}
	if (!oom) {
		t->next = st->tasks;
		st->tasks = t;
		st->ntasks++;
	}
	pp_mock_unlock(c->m);
	pp_json_free(tl);
	if (oom) {
		if (t)
			task_free(t);
		pp_mock_resp_printf(c->resp, 500, "text/plain", "orphan: out of memory\n");
		return;
	}
	pp_mock_resp_printf(c->resp, 201, "text/plain", "planted %s\n", arn);
}

/* POST /aws/control/barrier {"action": ECS action, "count": N,
 * "timeout_ms": T}: see struct pp_mock_barrier. */
static void set_barrier(struct pp_mock_call *c)
{
	pp_mock_barrier_set(c, &((struct aws_state *)c->state)->bar, "ECS action");
}

static const struct pp_mock_route aws_control_routes[] = {
	{"POST", "/aws/control/orphan", plant_orphan_task, .changes = true},
	{"POST", "/aws/control/barrier", set_barrier, .changes = true},
	{NULL},
};

static const struct pp_mock_router aws_control_router = {
	.api = "control",
	.json_body = true,
	.routes = aws_control_routes,
};

static const struct pp_mock_router *const aws_routers[] = {
	&aws_control_router,
	&ecs_router,
	&sts_router,
	&imds_router,
	&container_router,
	&pp_mock_aws_iam_router,
	&pp_mock_aws_ec2_router,
	&pp_mock_aws_ecr_router,
	&pp_mock_aws_logs_router,
	&pp_mock_aws_account_router,
	NULL,
};

/* ---- module ---- */

static void aws_reset(struct pp_mock *m, void *state)
{
	struct aws_state *st = state;

	while (st->taskdefs) {
		struct taskdef *td = st->taskdefs;

		st->taskdefs = td->next;
		taskdef_free(td);
	}
	while (st->tasks) {
		struct task *t = st->tasks;

		st->tasks = t->next;
		task_free(t);
	}
	while (st->tokens) {
		struct client_token *ct = st->tokens;

		st->tokens = ct->next;
		free(ct->id);
		free(ct->cluster);
		free(ct->token);
		free(ct->params);
		pp_json_free(ct->task_arns);
		free(ct);
	}
	pp_strmap_clear(&st->tokens_by_id);
	st->ntaskdefs = st->ntasks = st->ntokens = 0;
	if (m)
		pp_mock_aws_account_reset(m, st->acct);
	/* Issued credentials survive a reset: clients keep using them. */
}

struct pp_mock_aws_account *pp_mock_aws_account_of(void *aws_state)
{
	return ((struct aws_state *)aws_state)->acct;
}

static int aws_init(struct pp_mock *m, void **state, struct pp_error *err)
{
	struct aws_state *st = calloc(1, sizeof(*st));

	*state = NULL;
	if (!st || pp_mock_aws_account_new(&st->acct)) {
		free(st);
		return pp_fail(err, PP_ENOMEM, "out of memory");
	}
	pp_mock_aws_account_reset(m, st->acct);
	pp_mock_barrier_init(m, &st->bar);
	*state = st;
	return 0;
}

static void aws_free(void *state)
{
	struct aws_state *st = state;

	aws_reset(NULL, st);
	pp_mock_aws_account_free(st->acct);
	pp_mock_barrier_destroy(&st->bar);
	for (struct temp_cred **l = &st->creds; l; l = l == &st->creds ? &st->imds_tokens : NULL) {
		while (*l) {
			struct temp_cred *c = *l;

			*l = c->next;
			free(c);
		}
	}
	free(st);
}

static void aws_stats(struct pp_mock *m, void *state, struct pp_json *live)
{
	struct aws_state *st = state;
	long long tasks = 0, defs = 0;
	double now = pp_mock_clock(m);

	for (struct task *t = st->tasks; t; t = t->next)
		tasks += strcmp(task_last_status(m, t, now), "STOPPED") != 0;
	for (struct taskdef *td = st->taskdefs; td; td = td->next)
		defs += td->active;
	pp_json_set_int(live, "live_tasks", tasks);
	pp_json_set_int(live, "live_task_definitions", defs);
	pp_json_set_int(live, "sts_credentials", (long long)st->ncreds);
	pp_mock_aws_account_stats(st->acct, live);
}

const struct pp_mock_api pp_mock_api_aws = {
	.name = "aws",
	.prefixes = {"/aws", "/latest", NULL},
	.init = aws_init,
	.free = aws_free,
	.routers = aws_routers,
	.reset = aws_reset,
	.stats = aws_stats,
};
