/* The Query and EC2 protocol reader of mock/spec_botocore.c, on botocore's
 * IAM, EC2 and Logs models (tests/data/cloud-specs): forms as botocore
 * serialises them are read into the input shape's member names and pass;
 * wrong names, versions, types, constraints and hostile forms are refused
 * with the code the gate turns into the service's error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "mock/spec.h"

static struct pp_spec_botocore *iam, *ec2;

static int load(const char *name, struct pp_spec_botocore **out)
{
	const unsigned char *data;
	size_t len;
	struct pp_error err = {0};

	if (pp_spec_blob(name, &data, &len, &err) ||
	    pp_spec_botocore_load((const char *)data, len, out, &err)) {
		print_error("%s: %s\n", name, err.msg);
		return -1;
	}
	return 0;
}

static int setup(void **state)
{
	return load("iam", &iam) || load("ec2", &ec2);
}

static int teardown(void **state)
{
	pp_spec_botocore_free(iam);
	pp_spec_botocore_free(ec2);
	return 0;
}

/* Violations of form for op; the tree (may be NULL) in *out. */
static size_t check(struct pp_spec_botocore *b, const char *op, const char *form,
		    struct pp_json **out, struct pp_spec_report *rep)
{
	/* A model that could not load (the OOM torture fails its allocations). */
	if (!b)
		skip();
	return pp_spec_botocore_check_query(b, op, b == ec2, form, strlen(form), out, rep);
}

static void assert_refused(struct pp_spec_botocore *b, const char *op, const char *form,
			   const char *code, const char *in_message)
{
	struct pp_spec_report rep;
	struct pp_json *out = NULL;

	if (!check(b, op, form, &out, &rep))
		fail_msg("%s accepted", form);
	pp_json_free(out);
	assert_string_equal(rep.code, code);
	if (!strstr(rep.v[0].desc, in_message))
		fail_msg("message \"%s\" lacks \"%s\"", rep.v[0].desc, in_message);
}

/* EC2: capitalised locationNames, lists as Name.N, nested structures. */
static void test_ec2_create_vpc(void **state)
{
	struct pp_spec_report rep;
	struct pp_json *t = NULL;

	assert_int_equal(
		check(ec2, "CreateVpc",
		      "Action=CreateVpc&Version=2016-11-15&CidrBlock=10.0.0.0%2F16"
		      "&TagSpecification.1.ResourceType=vpc&TagSpecification.1.Tag.1.Key="
		      "pushpool-pool&TagSpecification.1.Tag.1.Value=a+b"
		      "&TagSpecification.1.Tag.2.Key=Name&TagSpecification.1.Tag.2.Value=n",
		      &t, &rep),
		0);
	assert_string_equal(pp_json_get_string(t, "CidrBlock"), "10.0.0.0/16");
	assert_string_equal(pp_json_string(pp_json_path(t, "TagSpecifications[0].ResourceType")),
			    "vpc");
	assert_string_equal(pp_json_string(pp_json_path(t, "TagSpecifications[0].Tags[0].Value")),
			    "a b");
	assert_int_equal(pp_json_path(t, "TagSpecifications[0].Tags")->count, 2);
	pp_json_free(t);
	/* queryName: CreateSecurityGroup's Description travels as GroupDescription. */
	assert_int_equal(check(ec2, "CreateSecurityGroup",
			       "Action=CreateSecurityGroup&Version=2016-11-15&GroupName=g"
			       "&GroupDescription=d&VpcId=vpc-1",
			       &t, &rep),
			 0);
	assert_string_equal(pp_json_get_string(t, "Description"), "d");
	pp_json_free(t);
	/* Booleans and integers read as their types. */
	assert_int_equal(check(ec2, "DescribeSubnets",
			       "Action=DescribeSubnets&Version=2016-11-15&DryRun=false"
			       "&MaxResults=5&Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-1",
			       &t, &rep),
			 0);
	assert_true(pp_json_is(pp_json_get(t, "DryRun"), PP_JSON_BOOL));
	assert_true(pp_json_get(t, "MaxResults")->num == 5);
	pp_json_free(t);
}

static void test_ec2_refused(void **state)
{
	/* The member's own name where EC2 wants its locationName. */
	assert_refused(ec2, "CreateVpc",
		       "Action=CreateVpc&Version=2016-11-15&CidrBlock=10.0.0.0%2F16"
		       "&TagSpecifications.1.ResourceType=vpc",
		       "UnknownParameter", "TagSpecifications.1.ResourceType");
	/* Query's list naming on EC2. */
	assert_refused(ec2, "DescribeVpcs",
		       "Action=DescribeVpcs&Version=2016-11-15&Filter.member.1.Name=x",
		       "UnknownParameter", "Filter.member.1.Name");
	/* A gap in a list leaves the later items unread. */
	assert_refused(ec2, "DescribeVpcs",
		       "Action=DescribeVpcs&Version=2016-11-15&VpcId.1=vpc-1&VpcId.3=vpc-3",
		       "UnknownParameter", "VpcId.3");
	assert_refused(ec2, "DescribeSubnets",
		       "Action=DescribeSubnets&Version=2016-11-15&MaxResults=five",
		       "SerializationException", "must be an integer");
	assert_refused(ec2, "DescribeSubnets",
		       "Action=DescribeSubnets&Version=2016-11-15&MaxResults=2",
		       "ValidationException", "greater than or equal to 5");
	assert_refused(ec2, "CreateSubnet", "Action=CreateSubnet&Version=2016-11-15",
		       "ValidationException",
		       "at 'VpcId' failed to satisfy constraint: Member "
		       "must not be null");
	assert_refused(ec2, "DescribeVpcs", "Action=DescribeVpcs&Version=2014-01-01",
		       "NoSuchVersion", "(2014-01-01)");
	assert_refused(ec2, "DescribeVpcs", "Version=2016-11-15", "InvalidAction", "DescribeVpcs");
	assert_refused(ec2, "RunTheWorld", "Action=RunTheWorld&Version=2016-11-15", "InvalidAction",
		       "RunTheWorld");
}

/* IAM: Query lists are Name.member.N, an empty one "Name=". */
static void test_iam(void **state)
{
	struct pp_spec_report rep;
	struct pp_json *t = NULL;

	assert_int_equal(check(iam, "CreateRole",
			       "Action=CreateRole&Version=2010-05-08&RoleName=pushpool-x"
			       "&AssumeRolePolicyDocument=%7B%22Version%22%3A%222012-10-17%22%7D"
			       "&Tags.member.1.Key=pushpool-pool&Tags.member.1.Value=x",
			       &t, &rep),
			 0);
	assert_string_equal(pp_json_get_string(t, "AssumeRolePolicyDocument"),
			    "{\"Version\":\"2012-10-17\"}");
	assert_string_equal(pp_json_string(pp_json_path(t, "Tags[0].Key")), "pushpool-pool");
	pp_json_free(t);
	assert_int_equal(check(iam, "CreateRole",
			       "Action=CreateRole&Version=2010-05-08&RoleName=r"
			       "&AssumeRolePolicyDocument=%7B%7D&Tags=",
			       &t, &rep),
			 0);
	assert_int_equal(pp_json_get(t, "Tags")->count, 0);
	pp_json_free(t);
	assert_refused(iam, "CreateRole",
		       "Action=CreateRole&Version=2010-05-08&RoleName=r"
		       "&AssumeRolePolicyDocument=%7B%7D&Tags.1.Key=a",
		       "UnknownParameter", "Tags.1.Key");
	/* IAM's patterns use Java's \uXXXX escapes. */
	assert_refused(iam, "CreateRole",
		       "Action=CreateRole&Version=2010-05-08&RoleName=a%2Fb"
		       "&AssumeRolePolicyDocument=%7B%7D",
		       "ValidationException", "[\\w+=,.@-]+");
	assert_refused(iam, "PutRolePolicy",
		       "Action=PutRolePolicy&Version=2010-05-08&RoleName=r&PolicyName=p"
		       "&PolicyDocument=%01",
		       "ValidationException", "PolicyDocument");
}

/* Forms a hostile peer might send: none crashes, each is refused. */
static void test_hostile_forms(void **state)
{
	struct pp_buf b;

	assert_refused(ec2, "DescribeVpcs", "Action=DescribeVpcs&Version=2016-11-15&VpcId.1=%ZZ",
		       "MalformedQueryString", "percent-encoded");
	assert_refused(ec2, "DescribeVpcs", "Action=DescribeVpcs&Version=2016-11-15&VpcId.1=%4",
		       "MalformedQueryString", "percent-encoded");
	assert_refused(ec2, "DescribeVpcs", "Action=DescribeVpcs&Version=2016-11-15&&&=&x",
		       "UnknownParameter", "not recognized");
	/* Far more parameters than any request has. */
	pp_buf_init(&b, PP_BUF_DEFAULT_MAX);
	pp_buf_puts(&b, "Action=DescribeVpcs&Version=2016-11-15");
	for (int i = 1; i <= 1200; i++)
		pp_buf_printf(&b, "&VpcId.%d=vpc-%d", i, i);
	assert_refused(ec2, "DescribeVpcs", b.data, "MalformedQueryString", "more than 1000");
	/* A name nested deeper than any shape: unread, reported, no recursion. */
	pp_buf_reset(&b);
	pp_buf_puts(&b, "Action=DescribeVpcs&Version=2016-11-15&Filter.1");
	for (int i = 0; i < 2000; i++)
		pp_buf_puts(&b, ".Value.1");
	pp_buf_puts(&b, "=x");
	assert_refused(ec2, "DescribeVpcs", b.data, "UnknownParameter", "not recognized");
	pp_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ec2_create_vpc),
		cmocka_unit_test(test_ec2_refused),
		cmocka_unit_test(test_iam),
		cmocka_unit_test(test_hostile_forms),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
