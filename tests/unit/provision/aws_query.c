/* The provisioner's Query protocol forms (provision/aws_query.c): the
 * names, list forms and escaping botocore's QuerySerializer and
 * EC2Serializer produce for the calls the provisioner makes, and the error
 * codes of AWS's three answer shapes, hostile ones included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "provision/aws_query.h"

static void assert_form(const char *params, enum pp_awsq_style style, const char *want)
{
	struct pp_json *j = NULL;
	struct pp_buf b;

	assert_int_equal(pp_json_parse(params, strlen(params), NULL, &j, NULL), 0);
	pp_buf_init(&b, 1 << 16);
	assert_int_equal(pp_awsq_form(&b, "Op", "2016-11-15", j, style), 0);
	if (strcmp(pp_buf_str(&b), want))
		fail_msg("\n got  %s\n want %s", pp_buf_str(&b), want);
	pp_buf_free(&b);
	pp_json_free(j);
}

/* EC2: Name.N lists, nested lists, no member element. */
static void test_ec2(void **state)
{
	assert_form(
		"{\"CidrBlock\":\"10.0.0.0/16\",\"TagSpecification\":[{\"ResourceType\":\"vpc\","
		"\"Tag\":[{\"Key\":\"pushpool-pool\",\"Value\":\"a b\"},{\"Key\":\"Name\","
		"\"Value\":\"n~x\"}]}]}",
		PP_AWSQ_EC2,
		"Action=Op&Version=2016-11-15&CidrBlock=10.0.0.0%2F16"
		"&TagSpecification.1.ResourceType=vpc&TagSpecification.1.Tag.1.Key=pushpool-pool"
		"&TagSpecification.1.Tag.1.Value=a%20b&TagSpecification.1.Tag.2.Key=Name"
		"&TagSpecification.1.Tag.2.Value=n~x");
	assert_form("{\"Filter\":[{\"Name\":\"vpc-id\",\"Value\":[\"vpc-1\",\"vpc-2\"]}],"
		    "\"VpcId\":[],\"DryRun\":false,\"MaxResults\":5,\"NextToken\":null}",
		    PP_AWSQ_EC2,
		    "Action=Op&Version=2016-11-15&Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-1"
		    "&Filter.1.Value.2=vpc-2&DryRun=false&MaxResults=5");
}

/* Query (IAM, STS): Name.member.N, an empty list "Name=", documents escaped. */
static void test_query(void **state)
{
	assert_form("{\"RoleName\":\"r\",\"AssumeRolePolicyDocument\":\"{\\\"A\\\":[\\\"ü\\\"]}\","
		    "\"Tags\":[{\"Key\":\"k\",\"Value\":\"v\"}],\"PolicyArns\":[]}",
		    PP_AWSQ_QUERY,
		    "Action=Op&Version=2016-11-15&RoleName=r"
		    "&AssumeRolePolicyDocument=%7B%22A%22%3A%5B%22%C3%BC%22%5D%7D"
		    "&Tags.member.1.Key=k&Tags.member.1.Value=v&PolicyArns=");
}

static void test_refused_names(void **state)
{
	struct pp_json *j = NULL;
	struct pp_buf b;
	const char *bad[] = {"{\"A&B\":\"x\"}", "{\"A=B\":\"x\"}", "{\"\":\"x\"}",
			     "{\"A.B\":\"x\"}"};

	pp_buf_init(&b, 1 << 16);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(pp_json_parse(bad[i], strlen(bad[i]), NULL, &j, NULL), 0);
		assert_int_equal(pp_awsq_form(&b, "Op", "1", j, PP_AWSQ_QUERY), PP_EINVALID);
		pp_json_free(j);
		pp_buf_reset(&b);
	}
	/* A full buffer is PP_ENOMEM, not a cut form. */
	pp_buf_free(&b);
	pp_buf_init(&b, 32);
	const char *big = "{\"K\":\"0123456789012345678901234567890123456789\"}";

	assert_int_equal(pp_json_parse(big, strlen(big), NULL, &j, NULL), 0);
	assert_int_equal(pp_awsq_form(&b, "Op", "1", j, PP_AWSQ_QUERY), PP_ENOMEM);
	pp_json_free(j);
	pp_buf_free(&b);
}

static void assert_code(const char *body, const char *want)
{
	char code[64] = "untouched";

	pp_awsq_error_code(body, strlen(body), code, sizeof(code));
	assert_string_equal(code, want);
}

static void test_error_codes(void **state)
{
	assert_code("<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error>"
		    "<Type>Sender</Type><Code>NoSuchEntity</Code><Message>m</Message></Error>"
		    "<RequestId>r</RequestId></ErrorResponse>",
		    "NoSuchEntity");
	assert_code("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>"
		    "InvalidVpcID.NotFound</Code><Message>m</Message></Error></Errors><RequestID>r"
		    "</RequestID></Response>",
		    "InvalidVpcID.NotFound");
	assert_code(
		"{\"__type\":\"com.amazonaws.ecr#RepositoryNotFoundException\",\"message\":\"m\"}",
		"RepositoryNotFoundException");
	assert_code("{\"__type\":\"ClusterNotFoundException\"}", "ClusterNotFoundException");
	assert_code("", "");
	assert_code("<html>gateway</html>", "");
	assert_code("{not json", "");
	assert_code("<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><Response><Errors>"
		    "<Error><Code>&x;</Code></Error></Errors></Response>",
		    "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ec2),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_refused_names),
		cmocka_unit_test(test_error_codes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
