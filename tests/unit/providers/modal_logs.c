/* The Modal logs op (providers/modal_logs.c) by hand: SandboxGetLogs for
 * stdout then stderr, each from its last entry id, TaskLogsBatch frames
 * read, the page's lines merged by time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lib/grpc.h"
#include "lib/pb.h"
#include "providers/logs.h"
#include "tests/unit/logs_step.h"

#define SANDBOX "sb-0a1b2c3d4e5f"
#define EP	"http://127.0.0.1:9"

struct logs_req {
	char sandbox[64], last[64];
	uint64_t fd;
	float timeout;
};

static void read_req(const struct logs_rig *r, struct logs_req *q)
{
	const uint8_t *msg;
	size_t len;
	struct pp_pb_reader rd;
	struct pp_pb_field f;
	memset(q, 0, sizeof(*q));
	assert_string_equal(r->io.req.url, EP "/modal.client.ModalClient/SandboxGetLogs");
	/* A read: it shares the multiplexed connections. */
	assert_true(r->io.req.flags & PP_HTTP_RESENDABLE);
	assert_int_equal(
		pp_grpc_unframe(r->io.req.body, r->io.req.body_len, &msg, &len, NULL, NULL), 0);
	pp_pb_reader_init(&rd, msg, len);
	while (pp_pb_next(&rd, &f, NULL) == 1) {
		if (f.num == 1)
			pp_pb_field_string(&f, q->sandbox, sizeof(q->sandbox), NULL);
		else if (f.num == 2)
			q->fd = f.u64;
		else if (f.num == 3)
			q->timeout = pp_pb_field_float(&f);
		else if (f.num == 4)
			pp_pb_field_string(&f, q->last, sizeof(q->last), NULL);
		else
			fail_msg("unexpected field %u", f.num);
	}
}

/* One TaskLogsBatch frame: an item (text at time ts on stream fd) and an
 * entry id, or eof alone when text is NULL. */
static void batch(struct pp_buf *out, const char *text, double ts, int fd, const char *entry)
{
	struct pp_buf item, msg;
	pp_buf_init(&item, 4096);
	pp_buf_init(&msg, 4096);
	if (text) {
		assert_int_equal(pp_pb_string(&item, 1, text) ?: pp_pb_double(&item, 7, ts) ?:
					 pp_pb_varint(&item, 8, (uint64_t)fd) ?:
					 pp_pb_message(&msg, 2, &item) ?: pp_pb_string(&msg, 5, entry),
				 0);
	} else {
		assert_int_equal(pp_pb_varint(&msg, 14, 1), 0);
	}
	assert_int_equal(pp_grpc_frame(out, msg.data, msg.len), 0);
	pp_buf_free(&item);
	pp_buf_free(&msg);
}

static int answer(struct logs_rig *r, const struct pp_buf *frames, const char *grpc_status,
		  struct pp_error *err)
{
	return rig_answer(r, pp_modal_logs, 200, frames->data ? frames->data : "", frames->len,
			  "grpc-status", grpc_status, err);
}

static void test_reads_stdout_and_stderr_in_time_order(void **state)
{
	struct logs_rig r;
	struct pp_error err = {0};
	struct logs_req q;
	struct pp_buf out;
	rig_init(&r, SANDBOX, "{}", EP);
	assert_int_equal(rig_start(&r, pp_modal_logs, &err), PP_STEP_SEND);
	read_req(&r, &q);
	assert_string_equal(q.sandbox, SANDBOX);
	assert_int_equal(q.fd, 1);
	assert_true(q.timeout > 0);
	assert_string_equal(q.last, "");
	pp_buf_init(&out, 1 << 16);
	batch(&out, "out one\n", 1700000000.5, 1, "e1");
	batch(&out, "out two\n", 1700000002.0, 1, "e2");
	assert_int_equal(answer(&r, &out, "0", &err), PP_STEP_SEND);
	read_req(&r, &q);
	assert_int_equal(q.fd, 2);
	pp_buf_reset(&out);
	batch(&out, "err one\n", 1700000001.0, 2, "x1");
	batch(&out, NULL, 0, 0, NULL);
	assert_int_equal(answer(&r, &out, "0", &err), PP_STEP_DONE);
	assert_int_equal(r.logs.n, 3);
	assert_string_equal(r.logs.v[0].text, "out one");
	assert_int_equal(r.logs.v[0].ts_ms, 1700000000500LL);
	assert_string_equal(r.logs.v[1].text, "err one");
	assert_string_equal(r.logs.v[2].text, "out two");
	assert_string_equal(r.logs.cursor, "e2\tx1");
	assert_false(r.logs.more);
	pp_logs_clear(&r.logs);

	/* The next page resumes each stream from its own entry. */
	assert_int_equal(rig_start(&r, pp_modal_logs, &err), PP_STEP_SEND);
	read_req(&r, &q);
	assert_int_equal(q.fd, 1);
	assert_string_equal(q.last, "e2");
	pp_buf_reset(&out);
	assert_int_equal(answer(&r, &out, "0", &err), PP_STEP_SEND);
	read_req(&r, &q);
	assert_int_equal(q.fd, 2);
	assert_string_equal(q.last, "x1");
	assert_int_equal(rig_answer(&r, pp_modal_logs, 200, "", 0, "grpc-status", "5", &err),
			 PP_ENOTFOUND);
	pp_buf_free(&out);
	rig_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_stdout_and_stderr_in_time_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
