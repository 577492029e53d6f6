/* Mock AWS: ECS (JSON 1.1) and STS (query/XML) behind SigV4 verification,
 * plus the ECS container-credentials endpoint and IMDSv2. ECS tasks follow
 * the mock timeline: PROVISIONING -> PENDING -> RUNNING -> STOPPED. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "auth/auth.h"
#include "mock/mock.h"
#include "mock/spec.h"

#define ACCOUNT		  "123456789012"
#define ECS_TARGET_PREFIX "AmazonEC2ContainerServiceV20141113."
#define MAX_ITEMS	  100000
#define MAX_SKEW_SECONDS  300
#define IMDS_ROLE	  "pushpool-mock-role"
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
	enum pp_mock_outcome outcome;
	double created;
	double stopped; /* clock of StopTask, < 0 if none */
};

struct client_token {
	struct client_token *next;
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
	struct temp_cred *creds;
	struct temp_cred *imds_tokens; /* token in .token, expiry in .expires */
	size_t ntaskdefs, ntasks, ntokens, ncreds, nimds;
};

/* ---- errors ---- */

enum proto { PROTO_JSON, PROTO_XML };

static void aws_error(struct pp_mock_resp *resp, enum proto p, int status, const char *type,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void aws_error(struct pp_mock_resp *resp, enum proto p, int status, const char *type,
		      const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	resp->reject_reason = type;
	if (p == PROTO_JSON) {
		pp_mock_resp_printf(resp, status, "application/x-amz-json-1.1", "{\"__type\":");
		pp_json_write_string(&resp->body, type, strlen(type));
		pp_buf_puts(&resp->body, ",\"message\":");
		pp_json_write_string(&resp->body, msg, strlen(msg));
		pp_buf_puts(&resp->body, "}");
		pp_mock_resp_header(resp, "x-amzn-ErrorType", type);
		return;
	}
	pp_mock_resp_printf(resp, status, "text/xml",
			    "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
			    "<Error><Type>%s</Type><Code>%s</Code><Message>",
			    status >= 500 ? "Receiver" : "Sender", type);
	for (const char *s = msg; *s; s++) {
		if (*s == '<')
			pp_buf_puts(&resp->body, "&lt;");
		else if (*s == '>')
			pp_buf_puts(&resp->body, "&gt;");
		else if (*s == '&')
			pp_buf_puts(&resp->body, "&amp;");
		else
			pp_buf_putc(&resp->body, *s);
	}
	pp_buf_puts(&resp->body, "</Message></Error><RequestId>00000000-0000-4000-8000-"
				 "000000000000</RequestId></ErrorResponse>");
}

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

/* Copy "Name=value" up to ',' or end from an Authorization header part. */
static bool auth_field(const char *auth, const char *name, char *out, size_t size)
{
	const char *p = strstr(auth, name), *end;
	size_t n;

	if (!p)
		return false;
	p += strlen(name);
	end = strchr(p, ',');
	n = end ? (size_t)(end - p) : strlen(p);
	while (n && isspace((unsigned char)p[n - 1]))
		n--;
	if (n == 0 || n >= size)
		return false;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

/* Check the request's SigV4 signature like AWS does; on failure the error is
 * in resp. region receives the credential scope's region. */
static int verify_sigv4(struct pp_mock *m, struct aws_state *st, const struct pp_mock_req *req,
			struct pp_mock_resp *resp, enum proto p, const char *service, char *region,
			size_t region_size)
{
	const char *auth = pp_mock_header(req, "Authorization");
	const char *date_hdr = pp_mock_header(req, "X-Amz-Date");
	const char *token_hdr = pp_mock_header(req, "X-Amz-Security-Token");
	char cred[256], signed_hdrs[1024], sig[80], akid[64], scope_date[16], scope_region[32];
	char scope_service[32], secret[128] = "", amz_now[17];
	const char *names[32], *values[32];
	struct pp_sigv4_input in = {0};
	struct pp_sigv4_output out;
	struct pp_error err = {0};
	size_t nnames = 0;
	time_t when, now = time(NULL);
	struct tm tm_now;
	int rc;

	if (!auth || !*auth) {
		aws_error(resp, p, 403, "MissingAuthenticationTokenException",
			  "Missing Authentication Token");
		return -1;
	}
	if (strncmp(auth, "AWS4-HMAC-SHA256 ", 17) != 0 ||
	    !auth_field(auth, "Credential=", cred, sizeof(cred)) ||
	    !auth_field(auth, "SignedHeaders=", signed_hdrs, sizeof(signed_hdrs)) ||
	    !auth_field(auth, "Signature=", sig, sizeof(sig))) {
		aws_error(resp, p, 400, "IncompleteSignatureException",
			  "Authorization header requires 'Credential', 'SignedHeaders' and "
			  "'Signature' parameters of an AWS4-HMAC-SHA256 signature. "
			  "Authorization=%.40s",
			  auth);
		return -1;
	}
	if (sscanf(cred, "%63[^/]/%15[^/]/%31[^/]/%31[^/]/aws4_request", akid, scope_date,
		   scope_region, scope_service) != 4) {
		aws_error(resp, p, 400, "IncompleteSignatureException",
			  "Credential should be scoped to a valid region, not '%s'. ", cred);
		return -1;
	}
	if (strcmp(scope_service, service) != 0) {
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

		if ((size_t)(colon - k) == strlen(akid) && strncmp(k, akid, strlen(akid)) == 0) {
			snprintf(secret, sizeof(secret), "%s", colon + 1);
			break;
		}
	}
	if (!secret[0]) {
		struct temp_cred *tc;
		double expires = 0;
		bool token_ok = false;

		pp_mock_lock(m);
		tc = cred_find(st->creds, akid);
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
	for (char *save = NULL, *h = strtok_r(signed_hdrs, ";", &save); h;
	     h = strtok_r(NULL, ";", &save)) {
		const char *v = pp_mock_header(req, h);

		if (!v || nnames == sizeof(names) / sizeof(names[0])) {
			aws_error(resp, p, 403, "InvalidSignatureException", SIG_MISMATCH);
			return -1;
		}
		names[nnames] = h;
		values[nnames++] = v;
	}
	in.method = req->method;
	in.path = req->raw_path;
	in.query = req->raw_query;
	in.header_names = names;
	in.header_values = values;
	in.nheaders = nnames;
	in.payload = req->body;
	in.payload_len = req->body_len;
	in.access_key_id = akid;
	in.secret_access_key = secret;
	in.region = scope_region;
	in.service = scope_service;
	in.when = when;
	in.normalize_path = true;
	pp_sigv4_output_init(&out);
	rc = pp_sigv4_sign(&in, &out, &err);
	if (rc == 0 && (strlen(sig) != 64 || CRYPTO_memcmp(sig, out.signature, 64) != 0))
		rc = -1;
	pp_sigv4_output_free(&out);
	if (rc) {
		aws_error(resp, p, 403, "InvalidSignatureException", SIG_MISMATCH);
		return -1;
	}
	snprintf(region, region_size, "%s", scope_region);
	return 0;
}

/* ---- temporary credentials (STS, container, IMDS) ---- */

static void iso8601(double wall, char *out, size_t size)
{
	time_t t = (time_t)wall;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
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
		aws_error(resp, PROTO_JSON, 500, "ServerException", "mock: out of memory");
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

static void ecs_register(struct pp_mock *m, struct aws_state *st, const struct pp_json *body,
			 const char *region, struct pp_mock_resp *resp)
{
	const char *family = pp_json_get_string(body, "family");
	const struct pp_json *containers = pp_json_get(body, "containerDefinitions");
	const struct pp_json *compat = pp_json_get(body, "requiresCompatibilities");
	bool fargate = contains_string(compat, "FARGATE");
	long cpu = -1, mem = -1;
	struct pp_json *desc = NULL, *out = NULL;
	struct taskdef *td = NULL;
	char arn[512], num[32];
	int revision = 1;

	if (!family || !name_ok(family, 255)) {
		aws_error(resp, PROTO_JSON, 400, "ClientException",
			  "Family contains invalid characters or is empty: up to 255 letters "
			  "(uppercase and lowercase), numbers, hyphens, and underscores are "
			  "allowed.");
		return;
	}
	if (!pp_json_is(containers, PP_JSON_ARRAY) || containers->count == 0) {
		aws_error(resp, PROTO_JSON, 400, "ClientException",
			  "Container list cannot be empty.");
		return;
	}
	pp_json_foreach (c, containers) {
		const char *img = pp_json_get_string(c, "image");
		const char *cname = pp_json_get_string(c, "name");

		if (!cname || !name_ok(cname, 255)) {
			aws_error(resp, PROTO_JSON, 400, "ClientException",
				  "Container.name should not be null or empty and may contain "
				  "only letters, numbers, hyphens and underscores.");
			return;
		}
		if (!img || !*img) {
			aws_error(resp, PROTO_JSON, 400, "ClientException",
				  "Container.image should not be null or empty.");
			return;
		}
	}
	if (pp_json_get_string(body, "cpu")) {
		cpu = parse_size(pp_json_get_string(body, "cpu"), "vcpu", 1024);
		if (cpu < 0) {
			aws_error(resp, PROTO_JSON, 400, "ClientException",
				  "Invalid 'cpu' setting for task.");
			return;
		}
	}
	if (pp_json_get_string(body, "memory")) {
		mem = parse_size(pp_json_get_string(body, "memory"), "gb", 1024);
		if (mem < 0) {
			aws_error(resp, PROTO_JSON, 400, "ClientException",
				  "Invalid 'memory' setting for task.");
			return;
		}
	}
	if (fargate) {
		const char *mode = pp_json_get_string(body, "networkMode");

		if (!mode || strcmp(mode, "awsvpc") != 0) {
			aws_error(resp, PROTO_JSON, 400, "ClientException",
				  "Fargate only supports network mode 'awsvpc'.");
			return;
		}
		if (cpu < 0 || mem < 0) {
			aws_error(resp, PROTO_JSON, 400, "ClientException",
				  "Fargate requires that 'cpu' and 'memory' be defined at the task "
				  "level.");
			return;
		}
		if (!fargate_combo_ok(cpu, mem)) {
			aws_error(resp, PROTO_JSON, 400, "ClientException",
				  "No Fargate configuration exists for given values: %ld CPU, %ld "
				  "memory. See the Amazon ECS documentation for the valid values.",
				  cpu, mem);
			return;
		}
	}

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
		aws_error(resp, PROTO_JSON, 400, "LimitExceededException",
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
	aws_error(resp, PROTO_JSON, 500, "ServerException", "mock: out of memory");
}

static void ecs_taskdef_answer(struct pp_mock *m, struct aws_state *st, const struct pp_json *body,
			       struct pp_mock_resp *resp, bool deregister)
{
	const char *ref = pp_json_get_string(body, "taskDefinition");
	struct pp_json *out = NULL;
	struct taskdef *td;

	if (!ref || !*ref) {
		aws_error(resp, PROTO_JSON, 400, "ClientException",
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
		aws_error(resp, PROTO_JSON, 400, "ClientException",
			  deregister && !strchr(last_segment(ref, '/'), ':')
				  ? "Invalid revision number. Number: "
				  : "Unable to describe task definition.");
		return;
	}
	json_ok(resp, out);
}

static void ecs_list_taskdefs(struct pp_mock *m, struct aws_state *st, const struct pp_json *body,
			      struct pp_mock_resp *resp)
{
	const char *prefix = pp_json_get_string(body, "familyPrefix");
	const char *status = pp_json_get_string(body, "status");
	struct pp_json *out = pp_json_new(PP_JSON_OBJECT), *arns = pp_json_new(PP_JSON_ARRAY);

	pp_mock_lock(m);
	for (struct taskdef *td = st->taskdefs; td && arns; td = td->next) {
		if (prefix && strncmp(td->family, prefix, strlen(prefix)) != 0)
			continue;
		if (td->active != (!status || strcmp(status, "INACTIVE") != 0))
			continue;
		pp_json_append(arns, pp_json_new_string(td->arn));
	}
	pp_mock_unlock(m);
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
	switch (pp_mock_phase_at(m, t->created, now)) {
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
			pp_json_set_string(c, "reason", "CannotPullContainerError: mock crash");
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

static void ecs_run_task(struct pp_mock *m, struct aws_state *st, const struct pp_json *body,
			 const char *region, struct pp_mock_resp *resp)
{
	const char *ref = pp_json_get_string(body, "taskDefinition");
	const char *token = pp_json_get_string(body, "clientToken");
	const struct pp_json *overrides = pp_json_get(body, "overrides");
	const struct pp_json *subnets =
		pp_json_path(body, "networkConfiguration.awsvpcConfiguration.subnets");
	long long count = pp_json_get_int(body, "count", 1);
	struct pp_json *params = NULL, *out = NULL, *tasks = NULL, *arns = NULL;
	struct pp_mock_resp scratch = {0};
	enum pp_mock_outcome outcome;
	char cl_arn[512];
	char *params_text = NULL, *overrides_text = NULL;
	struct taskdef *td;
	struct client_token *ct;
	bool no_capacity;

	cluster_arn(pp_json_get_string(body, "cluster"), region, cl_arn, sizeof(cl_arn));
	if (!ref || !*ref) {
		aws_error(resp, PROTO_JSON, 400, "ClientException",
			  "TaskDefinition can not be blank.");
		return;
	}
	if (count < 1 || count > 10) {
		aws_error(resp, PROTO_JSON, 400, "InvalidParameterException",
			  "count must be between 1 and 10.");
		return;
	}
	if (token && (strlen(token) == 0 || strlen(token) > 64)) {
		aws_error(resp, PROTO_JSON, 400, "InvalidParameterException",
			  "clientToken must be 1 to 64 characters.");
		return;
	}
	overrides_text = overrides ? pp_json_to_string(overrides, PP_JSON_COMPACT) : NULL;
	if (overrides_text && strlen(overrides_text) > 8192) {
		free(overrides_text);
		aws_error(resp, PROTO_JSON, 400, "InvalidParameterException",
			  "Container Overrides length must be at most 8192");
		return;
	}
	free(overrides_text);
	params = pp_json_clone(body);
	if (!params) {
		aws_error(resp, PROTO_JSON, 500, "ServerException", "mock: out of memory");
		return;
	}
	pp_json_remove(params, "clientToken");
	params_text = pp_json_to_string(params, PP_JSON_COMPACT);
	pp_json_free(params);
	out = pp_json_new(PP_JSON_OBJECT);
	tasks = pp_json_new(PP_JSON_ARRAY);
	if (!params_text || !out || !tasks) {
		free(params_text);
		pp_json_free(out);
		pp_json_free(tasks);
		aws_error(resp, PROTO_JSON, 500, "ServerException", "mock: out of memory");
		return;
	}
	pp_json_set(out, "tasks", tasks);
	/* Rolled before locking: a fault check may sleep (latency_ms). */
	no_capacity =
		pp_mock_fault_check(m, "ecs.capacity", false, &scratch, NULL) != PP_MOCK_FAULT_NONE;

	pp_mock_lock(m);
	for (ct = token ? st->tokens : NULL; ct; ct = ct->next)
		if (strcmp(ct->token, token) == 0 && strcmp(ct->cluster, cl_arn) == 0)
			break;
	if (ct) {
		/* Same token: same parameters give the original tasks back. */
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
		free(params_text);
		pp_mock_count(m, "ecs.clientTokenReplays", token);
		if (!same) {
			/* As ECS does: resourceIds name the tasks the token is bound to. */
			pp_json_free(out);
			aws_error(resp, PROTO_JSON, 400, "ConflictException",
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
		return;
	}
	td = taskdef_find(st, ref, false);
	if (!td || !td->active) {
		pp_mock_unlock(m);
		free(params_text);
		pp_json_free(out);
		aws_error(resp, PROTO_JSON, 400, "ClientException",
			  td ? "TaskDefinition is inactive" : "Unable to find task definition.");
		return;
	}
	if (strcmp(pp_json_get_string(td->desc, "networkMode") ?: "", "awsvpc") == 0 &&
	    (!pp_json_is(subnets, PP_JSON_ARRAY) || subnets->count == 0)) {
		pp_mock_unlock(m);
		free(params_text);
		pp_json_free(out);
		aws_error(resp, PROTO_JSON, 400, "InvalidParameterException",
			  "Network Configuration must be provided when networkMode 'awsvpc' is "
			  "specified.");
		return;
	}
	if (st->ntasks + (size_t)count > MAX_ITEMS) {
		pp_mock_unlock(m);
		free(params_text);
		pp_json_free(out);
		aws_error(resp, PROTO_JSON, 400, "LimitExceededException", "mock: too many tasks");
		return;
	}
	outcome = pp_mock_outcome_of(pp_json_get(td->desc, "containerDefinitions"));
	if (pp_mock_outcome_of(overrides) > outcome)
		outcome = pp_mock_outcome_of(overrides);
	/* Capacity shortages are answered as 200 with failures[] only. */
	if (no_capacity) {
		struct pp_json *failures = pp_json_new(PP_JSON_ARRAY);
		struct pp_json *f = pp_json_new(PP_JSON_OBJECT);

		pp_mock_unlock(m);
		free(params_text);
		pp_json_set_string(f, "arn", cl_arn);
		pp_json_set_string(f, "reason",
				   "Capacity is unavailable at this time. Please try again later "
				   "or in a different availability zone");
		pp_json_append(failures, f);
		pp_json_set(out, "failures", failures);
		pp_mock_count(m, "ecs.capacityFailures", NULL);
		json_ok(resp, out);
		return;
	}
	arns = pp_json_new(PP_JSON_ARRAY);
	for (long long i = 0; i < count; i++) {
		struct task *t = task_new(m, td, cl_arn, body, outcome, region);

		if (!t)
			break;
		t->next = st->tasks;
		st->tasks = t;
		st->ntasks++;
		pp_json_append(tasks, task_json(m, t, t->created));
		pp_json_append(arns, pp_json_new_string(t->arn));
		pp_mock_count(m, "RunTaskStarted", NULL);
	}
	if (token && arns && (ct = calloc(1, sizeof(*ct)))) {
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
	pp_mock_unlock(m);
	pp_json_free(arns);
	free(params_text);
	pp_json_set(out, "failures", pp_json_new(PP_JSON_ARRAY));
	json_ok(resp, out);
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

static void ecs_describe_tasks(struct pp_mock *m, struct aws_state *st, const struct pp_json *body,
			       const char *region, struct pp_mock_resp *resp)
{
	const struct pp_json *refs = pp_json_get(body, "tasks");
	struct pp_json *out, *tasks, *failures;
	char cl_arn[512];
	double now = pp_mock_clock(m);

	if (!pp_json_is(refs, PP_JSON_ARRAY) || refs->count == 0 || refs->count > 100) {
		aws_error(resp, PROTO_JSON, 400, "InvalidParameterException",
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

		if (t) {
			pp_json_append(tasks, task_json(m, t, now));
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
		aws_error(resp, PROTO_JSON, 400, "InvalidParameterException",
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
		aws_error(resp, PROTO_JSON, 400, "InvalidParameterException",
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
	struct pp_json *out = pp_json_new(PP_JSON_OBJECT), *arns = pp_json_new(PP_JSON_ARRAY);
	char cl_arn[512], prefix[300];
	double now = pp_mock_clock(m);

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
		pp_json_append(arns, pp_json_new_string(t->arn));
	}
	pp_mock_unlock(m);
	pp_json_set(out, "taskArns", arns);
	json_ok(resp, out);
}

static void ecs_handle(struct pp_mock *m, struct aws_state *st, const struct pp_mock_req *req,
		       struct pp_mock_resp *resp)
{
	const char *target = pp_mock_header(req, "X-Amz-Target");
	const char *ctype = pp_mock_header(req, "Content-Type");
	const char *action;
	struct pp_json *body = NULL;
	struct pp_error err = {0};
	char region[32];
	int retry_after = 0;

	snprintf(resp->api, sizeof(resp->api), "ecs");
	if (strcmp(req->method, "POST") != 0) {
		aws_error(resp, PROTO_JSON, 405, "UnknownOperationException",
			  "ECS takes POST with X-Amz-Target");
		return;
	}
	if (!target || strncmp(target, ECS_TARGET_PREFIX, strlen(ECS_TARGET_PREFIX)) != 0) {
		aws_error(resp, PROTO_JSON, 400, "UnknownOperationException",
			  "X-Amz-Target must start with " ECS_TARGET_PREFIX);
		return;
	}
	action = target + strlen(ECS_TARGET_PREFIX);
	snprintf(resp->action, sizeof(resp->action), "%s", action);
	if (verify_sigv4(m, st, req, resp, PROTO_JSON, "ecs", region, sizeof(region)))
		return;
	if (!ctype || strncmp(ctype, "application/x-amz-json-1.1", 26) != 0) {
		aws_error(resp, PROTO_JSON, 400, "SerializationException",
			  "Content-Type must be application/x-amz-json-1.1, not %s",
			  ctype ? ctype : "(none)");
		return;
	}
	if (pp_json_parse(req->body, req->body_len, NULL, &body, &err) ||
	    !pp_json_is(body, PP_JSON_OBJECT)) {
		pp_json_free(body);
		aws_error(resp, PROTO_JSON, 400, "SerializationException",
			  "request body is not a JSON object: %s", err.msg);
		return;
	}
	switch (pp_mock_fault_check(m, "ecs", false, resp, &retry_after)) {
	case PP_MOCK_FAULT_THROTTLE:
		aws_error(resp, PROTO_JSON, 400, "ThrottlingException", "Rate exceeded");
		goto out;
	case PP_MOCK_FAULT_ERROR:
		aws_error(resp, PROTO_JSON, 500, "ServerException",
			  "Service Unavailable. Please try again later.");
		goto out;
	default: break;
	}
	if (pp_mock_spec_ecs(m, action, body, resp))
		goto out;
	if (strcmp(action, "RegisterTaskDefinition") == 0)
		ecs_register(m, st, body, region, resp);
	else if (strcmp(action, "DescribeTaskDefinition") == 0)
		ecs_taskdef_answer(m, st, body, resp, false);
	else if (strcmp(action, "DeregisterTaskDefinition") == 0)
		ecs_taskdef_answer(m, st, body, resp, true);
	else if (strcmp(action, "ListTaskDefinitions") == 0)
		ecs_list_taskdefs(m, st, body, resp);
	else if (strcmp(action, "RunTask") == 0)
		ecs_run_task(m, st, body, region, resp);
	else if (strcmp(action, "DescribeTasks") == 0)
		ecs_describe_tasks(m, st, body, region, resp);
	else if (strcmp(action, "StopTask") == 0)
		ecs_stop_task(m, st, body, region, resp);
	else if (strcmp(action, "ListTasks") == 0)
		ecs_list_tasks(m, st, body, region, resp);
	else
		aws_error(resp, PROTO_JSON, 400, "UnknownOperationException",
			  "mock ECS does not implement %s", action);
out:
	if (retry_after > 0 && resp->status == 400 && resp->reject_reason &&
	    strcmp(resp->reject_reason, "ThrottlingException") == 0) {
		char v[16];

		snprintf(v, sizeof(v), "%d", retry_after * 1000);
		pp_mock_resp_header(resp, "x-amz-retry-after", v);
	}
	pp_json_free(body);
}

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

static void sts_handle(struct pp_mock *m, struct aws_state *st, const struct pp_mock_req *req,
		       struct pp_mock_resp *resp)
{
	char action[64], role[2048], session[128], duration[16], web_token[8192], region[32];
	char expires_iso[32], role_name[256];
	const struct pp_mock_opts *o = pp_mock_opts(m);
	double seconds = 3600;
	struct temp_cred *c;
	bool web;

	snprintf(resp->api, sizeof(resp->api), "sts");
	if (strcmp(req->method, "POST") != 0 ||
	    !form_value(req->body, "Action", action, sizeof(action))) {
		aws_error(resp, PROTO_XML, 400, "MissingAction",
			  "STS takes POST with a form body carrying Action=");
		return;
	}
	snprintf(resp->action, sizeof(resp->action), "%s", action);
	web = strcmp(action, "AssumeRoleWithWebIdentity") == 0;
	if (!web && strcmp(action, "AssumeRole") != 0) {
		aws_error(resp, PROTO_XML, 400, "InvalidAction",
			  "Could not find operation %s for version 2011-06-15", action);
		return;
	}
	if (!web && verify_sigv4(m, st, req, resp, PROTO_XML, "sts", region, sizeof(region)))
		return;
	if (!form_value(req->body, "RoleArn", role, sizeof(role)) ||
	    strncmp(role, "arn:aws:iam::", 13) != 0 || !strstr(role, ":role/")) {
		aws_error(resp, PROTO_XML, 400, "ValidationError",
			  "1 validation error detected: Value at 'roleArn' failed to satisfy "
			  "constraint: a role ARN arn:aws:iam::ACCOUNT:role/NAME is required");
		return;
	}
	if (!form_value(req->body, "RoleSessionName", session, sizeof(session)) ||
	    strlen(session) < 2 || strlen(session) > 64) {
		aws_error(resp, PROTO_XML, 400, "ValidationError",
			  "1 validation error detected: Value at 'roleSessionName' failed to "
			  "satisfy constraint: Member must have length between 2 and 64");
		return;
	}
	if (form_value(req->body, "DurationSeconds", duration, sizeof(duration))) {
		seconds = atof(duration);
		if (seconds < 900 || seconds > 43200) {
			aws_error(resp, PROTO_XML, 400, "ValidationError",
				  "1 validation error detected: Value '%s' at 'durationSeconds' "
				  "failed to satisfy constraint: Member must have value between "
				  "900 and 43200",
				  duration);
			return;
		}
	}
	if (seconds > o->token_lifetime_seconds)
		seconds = o->token_lifetime_seconds;
	if (web) {
		bool ok = form_value(req->body, "WebIdentityToken", web_token, sizeof(web_token));
		size_t n = ok ? strlen(web_token) : 0;

		while (n && (web_token[n - 1] == '\n' || web_token[n - 1] == '\r'))
			web_token[--n] = '\0';
		if (!ok || n == 0 ||
		    (o->aws_web_identity_token ? strcmp(web_token, o->aws_web_identity_token) != 0
					       : !jwt_shaped(web_token))) {
			aws_error(resp, PROTO_XML, 400, "InvalidIdentityToken",
				  "The web identity token that was passed could not be validated "
				  "by AWS. Get a new identity token from the identity provider and "
				  "then retry the request.");
			return;
		}
	}
	if (pp_mock_fault_check(m, "sts", true, resp, NULL) != PP_MOCK_FAULT_NONE) {
		aws_error(resp, PROTO_XML, 503, "ServiceUnavailable", "Service is unavailable");
		return;
	}
	c = issue_cred(m, st, seconds);
	if (!c) {
		aws_error(resp, PROTO_XML, 500, "InternalFailure", "mock: out of memory");
		return;
	}
	iso8601(c->expires, expires_iso, sizeof(expires_iso));
	snprintf(role_name, sizeof(role_name), "%.200s", last_segment(role, '/'));
	pp_mock_resp_printf(
		resp, 200, "text/xml",
		"<%sResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><%sResult>"
		"<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey>"
		"<SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>"
		"<AssumedRoleUser><Arn>arn:aws:sts::" ACCOUNT ":assumed-role/%s/%s</Arn>"
		"<AssumedRoleId>AROAPUSHPOOLMOCK:%s</AssumedRoleId></AssumedRoleUser>"
		"</%sResult><ResponseMetadata><RequestId>00000000-0000-4000-8000-000000000001"
		"</RequestId></ResponseMetadata></%sResponse>",
		action, action, c->akid, c->secret, c->token, expires_iso, role_name, session,
		session, action, action);
	pp_mock_count(m, "sts.issued", action);
}

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

static void imds_handle(struct pp_mock *m, struct aws_state *st, const struct pp_mock_req *req,
			struct pp_mock_resp *resp)
{
	const char *path = req->path + strlen("/latest");
	const char *creds_prefix = "/meta-data/iam/security-credentials/";
	double now = pp_mock_wall(m, pp_mock_clock(m));
	const char *tok;
	bool valid = false;

	snprintf(resp->api, sizeof(resp->api), "imds");
	snprintf(resp->action, sizeof(resp->action), "%s", path);
	if (strcmp(path, "/api/token") == 0) {
		const char *ttl_s = pp_mock_header(req, "X-aws-ec2-metadata-token-ttl-seconds");
		int ttl = ttl_s ? atoi(ttl_s) : 0;
		struct temp_cred *t;

		if (strcmp(req->method, "PUT") != 0) {
			pp_mock_resp_printf(resp, 405, "text/plain", "IMDSv2 token wants PUT\n");
			return;
		}
		if (ttl < 1 || ttl > 21600) {
			resp->reject_reason = "imds_bad_ttl";
			pp_mock_resp_printf(
				resp, 400, "text/plain",
				"X-aws-ec2-metadata-token-ttl-seconds must be 1..21600\n");
			return;
		}
		t = calloc(1, sizeof(*t));
		if (!t) {
			pp_mock_resp_printf(resp, 500, "text/plain", "mock: out of memory\n");
			return;
		}
		pp_mock_random_hex(m, t->token, 56);
		t->expires = now + ttl;
		pp_mock_resp_printf(resp, 200, "text/plain", "%s", t->token);
		pp_mock_resp_header(resp, "X-aws-ec2-metadata-token-ttl-seconds", ttl_s);
		pp_mock_lock(m);
		push_capped(&st->imds_tokens, &st->nimds, t);
		pp_mock_unlock(m);
		return;
	}
	tok = pp_mock_header(req, "X-aws-ec2-metadata-token");
	pp_mock_lock(m);
	for (struct temp_cred *t = st->imds_tokens; tok && t; t = t->next)
		if (strcmp(t->token, tok) == 0 && t->expires > now)
			valid = true;
	pp_mock_unlock(m);
	if (!valid) {
		resp->reject_reason = "imds_no_token";
		pp_mock_resp_printf(resp, 401, "text/plain", "Unauthorized\n");
		return;
	}
	if (strcmp(req->method, "GET") != 0 ||
	    strncmp(path, creds_prefix, strlen(creds_prefix)) != 0) {
		pp_mock_resp_printf(resp, 404, "text/plain", "Not Found\n");
		return;
	}
	path += strlen(creds_prefix);
	if (!*path)
		pp_mock_resp_printf(resp, 200, "text/plain", IMDS_ROLE);
	else if (strcmp(path, IMDS_ROLE) == 0)
		creds_json(m, st, resp, true);
	else
		pp_mock_resp_printf(resp, 404, "text/plain", "Not Found\n");
}

static void aws_handle(struct pp_mock *m, void *state, const struct pp_mock_req *req,
		       struct pp_mock_resp *resp)
{
	struct aws_state *st = state;
	const char *sub = req->subpath;

	if (strncmp(req->path, "/latest", 7) == 0)
		imds_handle(m, st, req, resp);
	else if (strcmp(sub, "/ecs") == 0 || strcmp(sub, "/ecs/") == 0)
		ecs_handle(m, st, req, resp);
	else if (strcmp(sub, "/sts") == 0 || strcmp(sub, "/sts/") == 0)
		sts_handle(m, st, req, resp);
	else if (strncmp(sub, "/container-credentials", 22) == 0 &&
		 strcmp(req->method, "GET") == 0) {
		snprintf(resp->action, sizeof(resp->action), "container-credentials");
		creds_json(m, st, resp, false);
	}
}

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
		free(ct->cluster);
		free(ct->token);
		free(ct->params);
		pp_json_free(ct->task_arns);
		free(ct);
	}
	st->ntaskdefs = st->ntasks = st->ntokens = 0;
	/* Issued credentials survive a reset: clients keep using them. */
}

static int aws_init(struct pp_mock *m, void **state, struct pp_error *err)
{
	*state = calloc(1, sizeof(struct aws_state));
	if (!*state)
		return pp_fail(err, PP_ENOMEM, "out of memory");
	return 0;
}

static void aws_free(void *state)
{
	struct aws_state *st = state;

	aws_reset(NULL, st);
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
}

const struct pp_mock_api pp_mock_api_aws = {
	.name = "aws",
	.prefixes = {"/aws", "/latest", NULL},
	.init = aws_init,
	.free = aws_free,
	.handle = aws_handle,
	.reset = aws_reset,
	.stats = aws_stats,
};
