#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/xml.h"

static struct pp_xml *parse_ok(const char *s)
{
	struct pp_xml *x = NULL;
	struct pp_error err = {0};

	if (pp_xml_parse(s, strlen(s), NULL, &x, &err))
		fail_msg("parse of %s failed: %s", s, err.msg);
	return x;
}

static void expect_error(const char *s, size_t len, const struct pp_xml_limits *lim, int code,
			 const char *msg_part)
{
	struct pp_xml *x = (struct pp_xml *)1;
	struct pp_error err = {0};
	int rc = pp_xml_parse(s, len, lim, &x, &err);

	assert_int_equal(rc, code);
	assert_null(x);
	if (!strstr(err.msg, msg_part))
		fail_msg("error was '%s', expected '%s'", err.msg, msg_part);
}

/* An EC2 answer as the service writes it: namespace, item lists, text with
 * predefined entities and character references. */
static void test_query_answer(void **state)
{
	(void)state;
	struct pp_xml *x = parse_ok(
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<DescribeVpcsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\n"
		"  <requestId>r-1</requestId>\n"
		"  <vpcSet>\n"
		"    <item><vpcId>vpc-1</vpcId><isDefault>true</isDefault></item>\n"
		"    <item><vpcId>vpc-2</vpcId><tagSet><item><key>a&amp;b</key>"
		"<value>&lt;&#x41;&#233;&gt;</value></item></tagSet></item>\n"
		"  </vpcSet>\n"
		"</DescribeVpcsResponse>");
	const struct pp_xml *item = pp_xml_path(x, "vpcSet/item");
	int n = 0;

	assert_string_equal(x->name, "DescribeVpcsResponse");
	assert_string_equal(pp_xml_path_text(x, "requestId"), "r-1");
	assert_string_equal(pp_xml_path_text(item, "vpcId"), "vpc-1");
	assert_string_equal(pp_xml_path_text(item, "isDefault"), "true");
	item = pp_xml_next_same(item);
	assert_non_null(item);
	assert_string_equal(pp_xml_path_text(item, "vpcId"), "vpc-2");
	assert_string_equal(pp_xml_path_text(item, "tagSet/item/key"), "a&b");
	assert_string_equal(pp_xml_path_text(item, "tagSet/item/value"), "<A\xc3\xa9>");
	assert_null(pp_xml_next_same(item));
	assert_null(pp_xml_path(x, "vpcSet/nothing"));
	assert_null(pp_xml_path_text(x, "vpcSet//item"));
	pp_xml_foreach(c, pp_xml_child(x, "vpcSet")) n++;
	assert_int_equal(n, 2);
	assert_int_equal(pp_xml_child(x, "vpcSet")->count, 2);
	assert_string_equal(pp_xml_child(x, "vpcSet")->parent->name, "DescribeVpcsResponse");
	pp_xml_free(x);
}

/* Prefixed names keep their local part; CDATA is text; empty elements have "". */
static void test_prefix_cdata_empty(void **state)
{
	(void)state;
	struct pp_xml *x = parse_ok("<a:r xmlns:a=\"urn:x\"><a:k><![CDATA[<not>&a tag]]></a:k>"
				    "<e/><f></f></a:r>");

	assert_string_equal(x->name, "r");
	assert_string_equal(pp_xml_path_text(x, "k"), "<not>&a tag");
	assert_string_equal(pp_xml_path_text(x, "e"), "");
	assert_int_equal(pp_xml_child(x, "f")->len, 0);
	pp_xml_free(x);
}

/* A document declaring another encoding is still read as UTF-8. */
static void test_encoding_fixed(void **state)
{
	(void)state;
	struct pp_xml *x =
		parse_ok("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><r>\xc3\xa9</r>");

	assert_string_equal(x->text, "\xc3\xa9");
	pp_xml_free(x);
}

/* Billion laughs, external entities, parameter entities: no DTD at all. */
static void test_doctype_refused(void **state)
{
	(void)state;
	const char *laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
			     "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
			     "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>"
			     "<lolz>&lol3;</lolz>";
	const char *xxe = "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>";
	const char *param = "<!DOCTYPE r [<!ENTITY % p SYSTEM \"http://127.0.0.1/x\"> %p;]><r/>";
	const char *plain = "<!DOCTYPE r><r/>";

	expect_error(laughs, strlen(laughs), NULL, PP_EINVALID, "DOCTYPE is refused");
	expect_error(xxe, strlen(xxe), NULL, PP_EINVALID, "DOCTYPE is refused");
	expect_error(param, strlen(param), NULL, PP_EINVALID, "DOCTYPE is refused");
	expect_error(plain, strlen(plain), NULL, PP_EINVALID, "DOCTYPE is refused");
	/* An undeclared entity is an error, never text. */
	expect_error("<r>&foo;</r>", 12, NULL, PP_EINVALID, "undefined entity");
}

static void test_malformed(void **state)
{
	(void)state;
	expect_error("", 0, NULL, PP_EINVALID, "XML");
	expect_error("   ", 3, NULL, PP_EINVALID, "XML");
	expect_error("<a><b></a>", 10, NULL, PP_EINVALID, "1:");
	expect_error("<a>x</a><b/>", 12, NULL, PP_EINVALID, "junk after document element");
	expect_error("<a>\0</a>", 8, NULL, PP_EINVALID, "XML");
	expect_error("<a>\xff\xfe</a>", 9, NULL, PP_EINVALID, "XML");
	expect_error("<a>", 3, NULL, PP_EINVALID, "XML");
	/* Line and column point at the fault. */
	expect_error("<a>\n  <b></c></a>", 17, NULL, PP_EINVALID, "XML 2:");
}

static void test_caps(void **state)
{
	(void)state;
	struct pp_xml_limits lim = {.max_bytes = 64, .max_depth = 4, .max_elements = 5};
	struct pp_buf b;
	struct pp_xml *x = NULL;
	struct pp_error err = {0};
	const char *ok = "<a><b><c><d>x</d></c></b></a>";

	expect_error("<a><b><c><d><e/></d></c></b></a>", 33, &lim, PP_ENOMEM,
		     "deeper than 4 levels");
	expect_error("<a><b/><b/><b/><b/><b/></a>", 27, &lim, PP_ENOMEM, "more than 5 elements");
	expect_error("<a>0123456789012345678901234567890123456789012345678901234567890</a>", 68,
		     &lim, PP_ENOMEM, "over the 64-byte cap");
	assert_int_equal(pp_xml_parse(ok, strlen(ok), &lim, &x, &err), 0);
	assert_string_equal(pp_xml_path_text(x, "b/c/d"), "x");
	pp_xml_free(x);

	/* The default depth cap stops a deep document before it costs a stack. */
	pp_buf_init(&b, PP_BUF_DEFAULT_MAX);
	for (int i = 0; i < 100000; i++)
		pp_buf_puts(&b, "<a>");
	expect_error(b.data, b.len, NULL, PP_ENOMEM, "deeper than 64 levels");
	pp_buf_free(&b);
}

/* Text split by children and by expat's buffers is joined in order. */
static void test_long_text(void **state)
{
	(void)state;
	struct pp_buf b;
	struct pp_xml *x = NULL;
	struct pp_error err = {0};

	pp_buf_init(&b, PP_BUF_DEFAULT_MAX);
	pp_buf_puts(&b, "<r>");
	for (int i = 0; i < 20000; i++)
		pp_buf_puts(&b, "abc&amp;");
	pp_buf_puts(&b, "<c/>tail</r>");
	assert_int_equal(pp_xml_parse(b.data, b.len, NULL, &x, &err), 0);
	assert_int_equal(x->len, 20000 * 4 + 4);
	assert_memory_equal(x->text, "abc&abc&", 8);
	assert_string_equal(x->text + x->len - 4, "tail");
	pp_xml_free(x);
	pp_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_answer),   cmocka_unit_test(test_prefix_cdata_empty),
		cmocka_unit_test(test_encoding_fixed), cmocka_unit_test(test_doctype_refused),
		cmocka_unit_test(test_malformed),      cmocka_unit_test(test_caps),
		cmocka_unit_test(test_long_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
