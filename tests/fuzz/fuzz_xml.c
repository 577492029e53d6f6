/* libFuzzer entry for the XML reader (lib/xml.c). Besides "no crash" under
 * the sanitizers, it checks what the header promises of any tree it gives:
 * every element's text is as long as it says and NUL-terminated, the tree
 * stays within the element and depth caps, and children point back at their
 * parent. Build: clang -fsanitize=fuzzer,address,undefined. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk(const struct pp_xml *x, int depth, int max_depth)
{
	size_t n = 1, kids = 0;

	if (depth > max_depth || !x->name || !x->text || x->text[x->len] != '\0')
		abort();
	pp_xml_foreach(c, x)
	{
		if (c->parent != x)
			abort();
		kids++;
		n += walk(c, depth + 1, max_depth);
	}
	if (kids != x->count)
		abort();
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct pp_xml_limits lim = {
		.max_bytes = 1 << 16, .max_depth = 24, .max_elements = 4096};
	struct pp_xml *x = NULL;
	struct pp_error err = {0};

	if (pp_xml_parse((const char *)data, size, &lim, &x, &err))
		return 0;
	if (walk(x, 1, lim.max_depth) > lim.max_elements)
		abort();
	/* Lookups on any tree must not fault whatever the path. */
	pp_xml_path_text(x, "Errors/Error/Code");
	pp_xml_path(x, "a//b/");
	for (const struct pp_xml *it = pp_xml_path(x, "item"); it; it = pp_xml_next_same(it))
		;
	pp_xml_free(x);
	return 0;
}
