/* Private to the mock's AWS files: aws.c (the module: ECS, STS, the
 * credential endpoints, SigV4 checks), aws_account.c (the account's
 * provisioned resources and their answers), aws_iam.c, aws_ec2.c and
 * aws_json.c (ECR and CloudWatch Logs). */
#ifndef PP_MOCK_AWS_H
#define PP_MOCK_AWS_H

#include <stdbool.h>

#include "lib/buf.h"
#include "lib/json.h"
#include "mock/mock.h"

#define PP_MOCK_AWS_ACCOUNT "123456789012"
/* The identities the mock's credentials belong to (GetCallerIdentity): a
 * static key is this IAM user, temporary credentials this role. */
#define PP_MOCK_AWS_USER "pushpool-mock-user"
#define PP_MOCK_AWS_ROLE "pushpool-mock-role"

/* The error shapes: JSON 1.1, STS's and IAM's <ErrorResponse>, EC2's <Response><Errors>. */
enum pp_mock_aws_proto { PP_MOCK_AWS_JSON, PP_MOCK_AWS_STS, PP_MOCK_AWS_IAM, PP_MOCK_AWS_EC2 };

void pp_mock_aws_error(struct pp_mock_resp *resp, enum pp_mock_aws_proto p, int status,
		       const char *code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* The call's SigV4 signature checked for service; the scope's region goes to
 * c->note and whether a static key signed to *static_key (may be NULL).
 * false after answering the error. */
bool pp_mock_aws_signed(struct pp_mock_call *c, enum pp_mock_aws_proto p, const char *service,
			bool *static_key);
/* Fault injection for api ("iam"): false after answering the service's
 * throttling or server error. */
bool pp_mock_aws_faults(struct pp_mock_call *c, enum pp_mock_aws_proto p, const char *api);
/* text XML-escaped into b. */
void pp_mock_aws_xml_text(struct pp_buf *b, const char *text);
/* j's members as elements (<name>value</name>), arrays as repeated <item>
 * (EC2) or <member> (IAM) elements. */
void pp_mock_aws_xml_json(struct pp_buf *b, const struct pp_json *j, bool ec2);

/* ---- the account (aws_account.c) ---- */

/* One resource: its description in the service's own names and its tags
 * kept apart ({"key":"value"}), written back in each API's tag shape. */
struct pp_mock_aws_res {
	struct pp_mock_aws_res *next;
	char type[32];	       /* "iam.role", "ec2.vpc", "ecr.repository", ... */
	char id[256];	       /* the name or id the API finds it by */
	char region[32];       /* "" for IAM, which is global */
	struct pp_json *obj;   /* owned */
	struct pp_json *tags;  /* owned object */
	struct pp_json *extra; /* owned object or NULL: what the API answers apart
				* (IAM attachments and inline policies) */
	bool seeded;	       /* in the account from the start: the default VPC, the caller */
};

struct pp_mock_aws_account;
/* The AWS module's account (aws.c keeps it in its state). */
struct pp_mock_aws_account *pp_mock_aws_account_of(void *aws_state);
int pp_mock_aws_account_new(struct pp_mock_aws_account **out);
void pp_mock_aws_account_free(struct pp_mock_aws_account *a);
/* Drop every resource and seed the identities again; the default VPCs are
 * seeded per region on first use (pp_mock_aws_region_seed). */
void pp_mock_aws_account_reset(struct pp_mock *m, struct pp_mock_aws_account *a);
/* live_aws_<type> counts, the untagged ones apart (never the seeded). */
void pp_mock_aws_account_stats(struct pp_mock_aws_account *a, struct pp_json *live);
/* The region's default VPC and subnets, unless seeded or the behaviour
 * aws.default_vpc is off. Call under the mock lock. */
void pp_mock_aws_region_seed(struct pp_mock *m, struct pp_mock_aws_account *a, const char *region);

/* Under the mock lock. find: NULL when absent. add takes obj and tags (also
 * on failure, then NULL); counted as aws.created TYPE. remove frees the
 * resource; counted as aws.deleted TYPE. */
struct pp_mock_aws_res *pp_mock_aws_find(struct pp_mock_aws_account *a, const char *type,
					 const char *region, const char *id);
struct pp_mock_aws_res *pp_mock_aws_add(struct pp_mock *m, struct pp_mock_aws_account *a,
					const char *type, const char *region, const char *id,
					struct pp_json *obj, struct pp_json *tags);
void pp_mock_aws_remove(struct pp_mock *m, struct pp_mock_aws_account *a,
			struct pp_mock_aws_res *r);
/* The first resource of the list (iterate with ->next, filter by type). */
struct pp_mock_aws_res *pp_mock_aws_first(struct pp_mock_aws_account *a);
/* Tags from a request's list of {key_name: K, value_name: V} into an object
 * ({} when list is NULL); NULL on allocation failure. */
struct pp_json *pp_mock_aws_tags(const struct pp_json *list, const char *key_name,
				 const char *value_name);
/* The tags as a list of {key_name, value_name} objects. */
struct pp_json *pp_mock_aws_tag_list(const struct pp_json *tags, const char *key_name,
				     const char *value_name);

/* Count a successful call that changes the account (not Describe*, Get*,
 * List*) as aws.changes ACTION. */
void pp_mock_aws_changed(struct pp_mock *m, const struct pp_mock_resp *resp);
/* The Action of a Query form body (alphanumeric); false when absent. */
bool pp_mock_aws_form_action(const char *body, char *out, size_t size);
/* An object member of r->extra, created empty when absent; NULL on failure. */
struct pp_json *pp_mock_aws_extra(struct pp_mock_aws_res *r, const char *name, bool array);

/* Routers of the provisioning APIs. */
extern const struct pp_mock_router pp_mock_aws_iam_router;
extern const struct pp_mock_router pp_mock_aws_ec2_router;
extern const struct pp_mock_router pp_mock_aws_ecr_router;
extern const struct pp_mock_router pp_mock_aws_logs_router;
extern const struct pp_mock_router pp_mock_aws_account_router;
/* ECS clusters (aws.c's ECS actions), on the account. */
void pp_mock_aws_ecs_clusters(struct pp_mock *m, struct pp_mock_aws_account *a, const char *action,
			      const struct pp_json *body, const char *region,
			      struct pp_mock_resp *resp);

#endif
