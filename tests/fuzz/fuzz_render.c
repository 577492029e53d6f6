/* libFuzzer entry for template rendering: the input is a base job template,
 * a NUL byte, then run job variables (both JSON). Anything that parses is
 * validated and rendered; the rendered job is written back out, so the
 * whole tree is walked. Build: clang -fsanitize=fuzzer,address,undefined. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "render/render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct pp_json_limits lim = {.max_bytes = 1 << 16, .max_depth = 32};
	static const struct pp_run_ctx ctx = {
		.flow_run_id = "00000000-0000-4000-8000-000000000000",
		.flow_run_name = "fuzz",
		.work_pool_name = "pool",
		.api_url = "http://127.0.0.1:4200/api",
	};
	const char *text = (const char *)data;
	const char *nul = memchr(text, '\0', size);
	size_t tlen = nul ? (size_t)(nul - text) : size;
	struct pp_json *tmpl = NULL, *vars = NULL, *out = NULL;
	struct pp_error err = {0};
	if (pp_json_parse(text, tlen, &lim, &tmpl, &err))
		return 0;
	if (nul && pp_json_parse(nul + 1, size - tlen - 1, &lim, &vars, &err))
		vars = NULL;
	if (!pp_render_job(tmpl, NULL, NULL, vars, &ctx, &out, &err)) {
		char *s = pp_json_to_string(out, PP_JSON_PRETTY);
		free(s);
	}
	pp_json_free(out);
	pp_json_free(vars);
	pp_json_free(tmpl);
	return 0;
}
