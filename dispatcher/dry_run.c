#include "dispatcher/dry_run.h"

#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "dispatcher/op_driver.h"
#include "lib/json.h"
#include "lib/log.h"

#define DUMP_MAX_REQUESTS 10

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

/* The provider's stand-in answer for req (provider.h, struct pp_dry_answer). */
static const struct pp_dry_answer *answer_for(const struct pp_provider *p,
					      const struct pp_http_req *req)
{
	for (const struct pp_dry_answer *c = p->dry_run; c && c->status; c++) {
		const char *h = c->header ? pp_http_req_get_header(req, c->header) : NULL;
		if ((c->method && strcmp(req->method, c->method)) ||
		    (c->url_part && !strstr(req->url, c->url_part)) ||
		    (c->url_suffix && !ends_with(req->url, c->url_suffix)) ||
		    (c->header && (!h || !ends_with(h, c->header_suffix ? c->header_suffix : ""))))
			continue;
		return c;
	}
	return NULL;
}

static bool printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 && s[i] != '\n' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

static int print_request(const struct pp_provider *p, const struct pp_http_req *req,
			 const struct pp_cred *cred, int n, struct pp_buf *out)
{
	const char *target = p->call_header ? pp_http_req_get_header(req, p->call_header) : NULL;
	const char *dot = target ? strrchr(target, '.') : NULL;
	int rc = pp_buf_printf(out, "# %d%s%s\n%s %s\n", n, dot ? " " : "", dot ? dot + 1 : "",
			       req->method, req->url);
	for (const struct pp_http_header *h = req->headers; h && !rc; h = h->next)
		rc = pp_buf_printf(out, "%s: %s\n", h->name, h->value);
	if (!rc && cred)
		rc = pp_buf_printf(out, "Authorization: [%s, added when sent]\n",
				   pp_cred_what(cred));
	if (rc || !req->body_len)
		return rc ? rc : pp_buf_puts(out, "\n");
	struct pp_json *j = NULL;
	if (pp_json_parse(req->body, req->body_len, NULL, &j, NULL) == 0) {
		rc = pp_buf_puts(out, "\n");
		if (!rc)
			rc = pp_json_write(j, out, PP_JSON_PRETTY);
		pp_json_free(j);
	} else if (printable(req->body, req->body_len)) {
		rc = pp_buf_printf(out, "\n%.*s", (int)req->body_len, req->body);
	} else {
		rc = pp_buf_printf(out, "\n(%zu bytes of binary body)", req->body_len);
	}
	return rc ? rc : pp_buf_puts(out, "\n\n");
}

int pp_request_dump(const struct pp_provider *p, struct pp_run_io *io, struct pp_buf *out,
		    struct pp_error *err)
{
	struct pp_http_resp resp;
	struct pp_error resp_err = {0};
	int rc = 0;
	bool have_resp = false;

	for (int n = 1; n <= DUMP_MAX_REQUESTS; n++) {
		io->resp = have_resp ? &resp : NULL;
		io->resp_rc = !have_resp || resp.status < 300 ? 0
			      : resp.status == 404	      ? PP_ENOTFOUND
							      : PP_EINVALID;
		io->resp_err = have_resp ? &resp_err : NULL;
		pp_http_req_free(&io->req);
		rc = p->submit(io, err);
		if (have_resp)
			pp_http_resp_free(&resp);
		have_resp = false;
		io->resp = NULL;
		if (rc != PP_STEP_SEND)
			break;
		if (print_request(p, &io->req, pp_exec_cred(io), n, out)) {
			rc = pp_fail(err, PP_ENOMEM, "request dump is too large");
			break;
		}
		const char *ct = pp_http_req_get_header(&io->req, "Content-Type");
		/* A gRPC call's successors depend on protobuf answers the dump
		 * cannot fake faithfully: show the first call only. */
		if (ct && !strncmp(ct, "application/grpc", 16)) {
			rc = pp_buf_puts(out, "(gRPC: the calls that follow depend on the server's "
					      "answers and are not shown)\n");
			rc = rc ? pp_fail(err, PP_ENOMEM, "request dump is too large")
				: PP_STEP_DONE;
			break;
		}
		const struct pp_dry_answer *c = answer_for(p, &io->req);
		if (!c) {
			rc = PP_STEP_DONE;
			break;
		}
		pp_http_resp_init(&resp, 0);
		resp.status = c->status;
		if (pp_buf_puts(&resp.body, c->body)) {
			pp_http_resp_free(&resp);
			rc = pp_fail(err, PP_ENOMEM, "out of memory");
			break;
		}
		pp_fail(&resp_err,
			c->status == 404   ? PP_ENOTFOUND
			: c->status >= 300 ? PP_EINVALID
					   : 0,
			"%s %s: HTTP %d (dry run)", io->req.method, io->req.url, c->status);
		have_resp = true;
	}
	pp_http_req_free(&io->req);
	if (rc == PP_STEP_WAIT || rc == PP_STEP_WAIT_PEER)
		rc = pp_fail(err, PP_EINVALID, "%s submit waits for another run; nothing to show",
			     p->name);
	if (rc == PP_STEP_SEND)
		rc = pp_fail(err, PP_EINVALID, "%s submit sent more than %d requests", p->name,
			     DUMP_MAX_REQUESTS);
	if (out->data)
		pp_redact(out->data);
	return rc < 0 ? rc : 0;
}
