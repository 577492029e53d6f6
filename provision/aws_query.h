/* AWS's Query protocol (IAM, STS, EC2) for the provisioner: request forms
 * serialised as botocore's QuerySerializer and EC2Serializer write them,
 * and the error code of any AWS answer. Private to provision/aws.c. */
#ifndef PP_PROVISION_AWS_QUERY_H
#define PP_PROVISION_AWS_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"
#include "lib/json.h"

enum pp_awsq_style {
	PP_AWSQ_QUERY, /* IAM, STS: lists as Name.member.N, an empty one "Name=" */
	PP_AWSQ_EC2,   /* EC2: lists as Name.N, an empty one left out */
};

/* "Action=A&Version=V" and params appended to out (params may be NULL).
 * params holds wire names already (a member's locationName, capitalised for
 * EC2, or its queryName): objects are structures (Name.Member), arrays
 * lists, strings and numbers their text, booleans true/false; values are
 * percent-encoded (RFC 3986), keys must be letters, digits and dots. No
 * IAM, STS or EC2 call the provisioner makes takes a map, so maps are not
 * written. 0, PP_EINVALID for a key that is not a wire name or too long,
 * PP_ENOMEM when out is full. */
int pp_awsq_form(struct pp_buf *out, const char *action, const char *version,
		 const struct pp_json *params, enum pp_awsq_style style);

/* The code of an AWS error answer into code ("" when none is found): JSON's
 * __type (after any '#'), Query's <ErrorResponse><Error><Code>, EC2's
 * <Response><Errors><Error><Code>. */
void pp_awsq_error_code(const char *body, size_t len, char *code, size_t size);

#endif
