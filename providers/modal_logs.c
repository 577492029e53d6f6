/* Modal logs (the logs op, provider.h): a sandbox's output from the
 * server-streaming SandboxGetLogs (api.proto: SandboxGetLogsRequest
 * {sandbox_id 1, file_descriptor 2, timeout 3, last_entry_id 4}, answered
 * with TaskLogsBatch frames {items 2 (TaskLogs {data 1, timestamp 7,
 * file_descriptor 8}), entry_id 5, eof 14}). The SDKs read stdout and
 * stderr as two streams; a page asks each in turn from the last entry id
 * it saw, with a short timeout, so the call ends with what is written, and
 * the page's lines are merged by timestamp. A line split across two
 * batches is delivered as two.
 *
 * io->logs->cursor: the last entry ids of stdout and stderr, tab-separated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/modal.h"
#include "lib/grpc.h"
#include "lib/pb.h"
#include "providers/common.h"
#include "providers/logs.h"
#include "providers/provider.h"

#define RPC "modal.client.ModalClient/SandboxGetLogs"
/* How long the server may hold the call for new output, s: short, since a
 * page returns what is written and `--follow` polls. */
#define LOGS_WAIT_S  1.0f
#define LOGS_CALL_MS 10000L
#define ENTRY_ID_MAX 128
#define FD_STDOUT    1 /* api.proto FileDescriptor */
#define FD_STDERR    2

/* The entry id kept for stream fd (1 or 2) in the cursor. */
static void cursor_id(const struct pp_logs *l, int fd, char *out, size_t size)
{
	const char *s = l->cursor;
	if (fd == FD_STDERR)
		s = strchr(s, '\t') ? strchr(s, '\t') + 1 : "";
	size_t n = strcspn(s, "\t");
	snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), s);
}

static int set_cursor_id(struct pp_logs *l, int fd, const char *id, struct pp_error *err)
{
	char out[ENTRY_ID_MAX], err_id[ENTRY_ID_MAX];
	cursor_id(l, FD_STDOUT, out, sizeof(out));
	cursor_id(l, FD_STDERR, err_id, sizeof(err_id));
	int n = snprintf(l->cursor, sizeof(l->cursor), "%s\t%s", fd == FD_STDOUT ? id : out,
			 fd == FD_STDERR ? id : err_id);
	if (n < 0 || (size_t)n >= sizeof(l->cursor))
		return pp_fail(err, PP_EINVALID, "modal logs: entry id too long");
	return 0;
}

static int send_logs(struct pp_run_io *io, struct pp_error *err)
{
	struct pp_logs *l = io->logs;
	int fd = l->step == 0 ? FD_STDOUT : FD_STDERR;
	char base[512], last[ENTRY_ID_MAX];
	const char *env = getenv("MODAL_SERVER_URL");
	if (!io->infra_id || strlen(io->infra_id) >= ENTRY_ID_MAX)
		return pp_fail(err, PP_EINVALID, "modal logs: infra id '%s' is not a sandbox id",
			       io->infra_id ? io->infra_id : "");
	int rc = pp_base_url(base, sizeof(base), io->endpoint,
			     env && *env ? env : PP_MODAL_DEFAULT_SERVER, err);
	if (rc)
		return pp_error_prefix(err, "modal logs: ");
	cursor_id(l, fd, last, sizeof(last));
	struct pp_buf m;
	pp_buf_init(&m, 4096);
	rc = pp_pb_string(&m, 1, io->infra_id) ?: pp_pb_varint(&m, 2, (uint64_t)fd) ?:
		pp_pb_float(&m, 3, LOGS_WAIT_S);
	if (!rc && last[0])
		rc = pp_pb_string(&m, 4, last);
	rc = rc ? pp_fail(err, PP_ENOMEM, "modal logs: out of memory")
		: pp_grpc_request(&io->req, base, RPC, &m, LOGS_CALL_MS, err);
	pp_buf_free(&m);
	/* SandboxGetLogs only reads: it may share the multiplexed connections
	 * of the run's other calls rather than open one of its own. */
	if (!rc)
		io->req.flags |= PP_HTTP_RESENDABLE;
	return rc ? rc : PP_STEP_SEND;
}

/* One TaskLogs item: its text and when it was written. */
static int on_item(struct pp_logs *l, const struct pp_pb_field *item, struct pp_error *err)
{
	struct pp_pb_reader r;
	struct pp_pb_field f;
	const uint8_t *data = NULL;
	size_t len = 0;
	double ts = 0;
	int rc;
	pp_pb_reader_init(&r, item->data, item->len);
	while ((rc = pp_pb_next(&r, &f, err)) == 1) {
		if (f.num == 1 && f.wire == PP_PB_LEN) {
			data = f.data;
			len = f.len;
		} else if (f.num == 7 && f.wire == PP_PB_I64) {
			memcpy(&ts, &f.u64, sizeof(ts));
		}
	}
	if (rc || !data)
		return rc;
	return pp_logs_add(l, ts > 0 ? (long long)(ts * 1000.0) : 0, (const char *)data, len, err);
}

/* Every TaskLogsBatch frame of the stream: its items, and the entry id to
 * resume from. */
static int on_stream(struct pp_run_io *io, int fd, struct pp_error *err)
{
	struct pp_logs *l = io->logs;
	const uint8_t *msg;
	size_t len, used;
	const char *p = io->resp->body.data;
	size_t left = io->resp->body.len;
	int rc = 0;
	while (left && !rc) {
		if ((rc = pp_grpc_unframe(p, left, &msg, &len, &used, err)))
			break;
		struct pp_pb_reader r;
		struct pp_pb_field f;
		char id[ENTRY_ID_MAX] = "";
		pp_pb_reader_init(&r, msg, len);
		while ((rc = pp_pb_next(&r, &f, err)) == 1) {
			if (f.num == 2 && f.wire == PP_PB_LEN && (rc = on_item(l, &f, err)))
				break;
			if (f.num == 5 && f.wire == PP_PB_LEN &&
			    (rc = pp_pb_field_string(&f, id, sizeof(id), err)))
				break;
		}
		if (!rc && id[0])
			rc = set_cursor_id(l, fd, id, err);
		p += used;
		left -= used;
	}
	return rc ? pp_error_prefix(err, "modal logs: SandboxGetLogs: ") : 0;
}

/* Merge the page's two runs, stdout's lines [0, split) and stderr's
 * [split, n), each in time order, into one, stdout first on a tie. */
static int merge(struct pp_logs *l, size_t split, struct pp_error *err)
{
	if (split == 0 || split >= l->n)
		return 0;
	struct pp_log_line *out = malloc(l->n * sizeof(*out));
	if (!out)
		return pp_fail(err, PP_ENOMEM, "modal logs: out of memory");
	size_t i = 0, j = split, k = 0;
	while (i < split || j < l->n)
		out[k++] = j >= l->n || (i < split && l->v[i].ts_ms <= l->v[j].ts_ms) ? l->v[i++]
										      : l->v[j++];
	memcpy(l->v, out, l->n * sizeof(*out));
	free(out);
	return 0;
}

int pp_modal_logs(struct pp_run_io *io, struct pp_error *err)
{
	struct pp_logs *l = io->logs;
	if (!io->resp) {
		if (l->step > 1)
			l->step = 0;
		return send_logs(io, err);
	}
	int fd = l->step == 0 ? FD_STDOUT : FD_STDERR;
	const uint8_t *first;
	size_t first_len;
	/* A stream with nothing new ends OK without a message. */
	const char *gs = pp_http_resp_header(io->resp, "grpc-status");
	bool empty = io->resp->status == 200 && gs && !strcmp(gs, "0") && !io->resp->body.len;
	if (!empty) {
		int rc = pp_grpc_result(io->resp, "Modal SandboxGetLogs", pp_modal_retry_hint,
					&first, &first_len, NULL, err);
		if (!rc)
			rc = on_stream(io, fd, err);
		if (rc)
			return rc;
	}
	if (fd == FD_STDOUT) {
		/* where: how many of the page's lines are stdout's */
		snprintf(l->where, sizeof(l->where), "%zu", l->n);
		l->step = 1;
		return send_logs(io, err);
	}
	l->step = 0;
	l->more = false;
	return merge(l, (size_t)strtoull(l->where, NULL, 10), err) ?: PP_STEP_DONE;
}
