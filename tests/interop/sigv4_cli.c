/* Our SigV4 signer behind a line protocol, for tests/interop/botocore_sigv4.py.
 * Each stdin line is a JSON object; each stdout line is the Authorization
 * header we compute for it (or "ERROR: ..." ).
 *   mode "sign":    pp_sigv4_sign over exactly the given path, query and
 *                   headers (the canonicalizer alone);
 *   mode "request": pp_aws_sign_request on a pp_http_req built from url,
 *                   headers and body (URL parsing, host, header selection,
 *                   date and token headers, cached signing key). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/aws.h"
#include "lib/http.h"
#include "lib/json.h"

#define LINE_MAX_BYTES ((size_t)1 << 20)
#define MAX_HEADERS    64

static int sign_mode(const struct pp_json *j, struct pp_buf *out, struct pp_error *err)
{
	const char *names[MAX_HEADERS], *values[MAX_HEADERS];
	const struct pp_json *headers = pp_json_get(j, "headers");
	const struct pp_json *body = pp_json_get(j, "body");
	struct pp_sigv4_input in = {0};
	struct pp_sigv4_output o;
	size_t n = 0;
	double when = 0;

	pp_json_foreach (h, headers) {
		if (n == MAX_HEADERS)
			return pp_fail(err, PP_EINVALID, "too many headers");
		names[n] = pp_json_string(pp_json_at(h, 0));
		values[n++] = pp_json_string(pp_json_at(h, 1));
	}
	pp_json_get_number(j, "time", &when);
	in.method = pp_json_get_string(j, "method");
	in.path = pp_json_get_string(j, "path");
	in.query = pp_json_get_string(j, "query");
	in.header_names = names;
	in.header_values = values;
	in.nheaders = n;
	in.payload = body ? body->str : NULL;
	in.payload_len = body ? body->len : 0;
	in.access_key_id = pp_json_get_string(j, "akid");
	in.secret_access_key = pp_json_get_string(j, "secret");
	in.session_token = pp_json_get_string(j, "token");
	in.region = pp_json_get_string(j, "region");
	in.service = pp_json_get_string(j, "service");
	in.when = (time_t)when;
	in.normalize_path = true;
	pp_sigv4_output_init(&o);
	int rc = pp_sigv4_sign(&in, &o, err);
	if (!rc && pp_buf_puts(out, o.authorization.data))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	pp_sigv4_output_free(&o);
	return rc;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int request_mode(const struct pp_json *j, struct pp_buf *out, struct pp_error *err)
{
	const struct pp_json *body = pp_json_get(j, "body");
	struct pp_cred_conf conf;
	struct pp_aws a;
	struct pp_http_req req;
	double when = 0;
	int rc = 0;

	memset(&conf, 0, sizeof(conf));
	snprintf(conf.name, sizeof(conf.name), "interop");
	memset(&a, 0, sizeof(a));
	a.conf = &conf;
	a.access_key_id = dup_or_null(pp_json_get_string(j, "akid"));
	a.secret_access_key = dup_or_null(pp_json_get_string(j, "secret"));
	a.session_token = dup_or_null(pp_json_get_string(j, "token"));
	a.region = dup_or_null(pp_json_get_string(j, "region"));
	a.service = dup_or_null(pp_json_get_string(j, "service"));
	pp_json_get_number(j, "time", &when);
	pp_http_req_init(&req, pp_json_get_string(j, "method"), pp_json_get_string(j, "url"));
	pp_json_foreach (h, pp_json_get(j, "headers")) {
		if (pp_http_req_header(&req, pp_json_string(pp_json_at(h, 0)), "%s",
				       pp_json_string(pp_json_at(h, 1))))
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
	}
	if (!rc && body && pp_http_req_body(&req, body->str, body->len))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	if (!rc)
		rc = pp_aws_sign_request(&a, &req, (time_t)when, err);
	if (!rc && pp_buf_puts(out, pp_http_req_get_header(&req, "Authorization")))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	pp_http_req_free(&req);
	pp_aws_free(&a);
	return rc;
}

int main(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int status = 0;

	while ((len = getline(&line, &cap, stdin)) > 0) {
		struct pp_json *j = NULL;
		struct pp_error err = {0};
		struct pp_buf out;
		int rc;

		pp_buf_init(&out, 64 << 10);
		if ((size_t)len > LINE_MAX_BYTES)
			rc = pp_fail(&err, PP_EINVALID, "line longer than %zu bytes",
				     LINE_MAX_BYTES);
		else
			rc = pp_json_parse(line, (size_t)len, NULL, &j, &err);
		if (!rc) {
			const char *mode = pp_json_get_string(j, "mode");
			rc = mode && !strcmp(mode, "request") ? request_mode(j, &out, &err)
							      : sign_mode(j, &out, &err);
		}
		if (rc) {
			printf("ERROR: %s\n", err.msg);
			status = 1;
		} else {
			printf("%s\n", out.data);
		}
		fflush(stdout);
		pp_json_free(j);
		pp_buf_free(&out);
	}
	free(line);
	return status;
}
