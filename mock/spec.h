/* The clouds' own specification files, embedded in pushpool-mock at build
 * time (tests/data/cloud-specs, see mk/cloud-specs.mk), and the validators
 * that judge requests against them. A validator never knows what pushpool
 * sends: every rule comes from a spec file, except the ARM platform rules
 * that no swagger states (spec_swagger.c names their source). */
#ifndef PP_MOCK_SPEC_H
#define PP_MOCK_SPEC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "lib/json.h"
#include "mock/mock.h"

/* Embedded files by name: "ecs", "iam", "ec2", "ecr", "logs" (botocore
 * models), "aci" (ARM swagger), "run", "modal" and "gcpinfra"
 * (FileDescriptorSets compiled by protoc). */
struct pp_spec_blob {
	const char *name;
	const unsigned char *start, *end;
};
extern const struct pp_spec_blob pp_spec_blobs[]; /* generated; ends with name NULL */
/* 0 with data and len set, or PP_ENOTFOUND. */
int pp_spec_blob(const char *name, const unsigned char **data, size_t *len, struct pp_error *err);

/* What a validator found: the cloud's error code and the first violations,
 * each with the field's path as the cloud would write it. */
#define PP_SPEC_MAX_VIOLATIONS 8
struct pp_spec_violation {
	char field[256];
	char desc[768];
};
struct pp_spec_report {
	const char *code; /* of the first violation: "ValidationException", ... */
	size_t n;	  /* stored violations (<= PP_SPEC_MAX_VIOLATIONS) */
	size_t total;	  /* every violation found */
	struct pp_spec_violation v[PP_SPEC_MAX_VIOLATIONS]; /* set below n alone */
};
void pp_spec_report_init(struct pp_spec_report *rep);
void pp_spec_report_add(struct pp_spec_report *rep, const char *code, const char *field,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- ECS and other JSON 1.1 services: botocore service-2.json ---- */
struct pp_spec_botocore;
int pp_spec_botocore_load(const char *text, size_t len, struct pp_spec_botocore **out,
			  struct pp_error *err);
void pp_spec_botocore_free(struct pp_spec_botocore *b);
/* Check body against operation's input shape. Returns the number of
 * violations (0: valid); rep->code is "ValidationException" (constraints,
 * unknown or missing members), "SerializationException" (wrong JSON type) or
 * "InvalidAction" (no such operation). */
size_t pp_spec_botocore_check(const struct pp_spec_botocore *b, const char *operation,
			      const struct pp_json *body, struct pp_spec_report *rep);

/* Query and EC2 protocol requests (IAM, EC2): the form body decoded by the
 * model's serialisation names into a tree of the input shape's member names
 * (*out, caller frees; NULL when the action, version or form itself is
 * wrong), then checked as above. Parameters the model does not name are
 * "UnknownParameter"; a wrong Action "InvalidAction", a wrong Version
 * "NoSuchVersion", a broken form "MalformedQueryString". ec2 picks the EC2
 * protocol's names and lists. */
size_t pp_spec_botocore_check_query(const struct pp_spec_botocore *b, const char *operation,
				    bool ec2, const char *form, size_t len, struct pp_json **out,
				    struct pp_spec_report *rep);

/* ---- ARM: swagger 2.0 definitions plus ARM's platform rules ---- */
struct pp_spec_swagger;
int pp_spec_swagger_load(const char *text, size_t len, struct pp_spec_swagger **out,
			 struct pp_error *err);
void pp_spec_swagger_free(struct pp_spec_swagger *s);
/* Check the body parameter of operationId (and the tag rules when the body
 * has "tags"). Codes: "InvalidRequestContent" (unknown member, wrong type),
 * "MissingRequiredProperty"... see spec_swagger.c. */
size_t pp_spec_swagger_check(const struct pp_spec_swagger *s, const char *operation_id,
			     const struct pp_json *body, struct pp_spec_report *rep);
/* An operation's declared query parameters (integer with its format,
 * boolean) as sent, each read with arg(ctx, name) (NULL: absent); an
 * operation the swagger does not have is a violation. */
size_t pp_spec_swagger_check_query(const struct pp_spec_swagger *s, const char *operation_id,
				   const char *(*arg)(const void *ctx, const char *name),
				   const void *ctx, struct pp_spec_report *rep);
/* ARM name rules for a container group or a container name (kind
 * "containerGroup" or "container"): 0 or 1 violation. */
size_t pp_spec_arm_name_check(const char *kind, const char *name, struct pp_spec_report *rep);

/* ---- protobuf: FileDescriptorSet from protoc ---- */
struct pp_spec_proto;
int pp_spec_proto_load(const unsigned char *set, size_t len, struct pp_spec_proto **out,
		       struct pp_error *err);
void pp_spec_proto_free(struct pp_spec_proto *p);
/* Google REST transcoding: method "google.cloud.run.v2.Jobs.CreateJob"; the
 * body is the field named by the method's google.api.http `body` (or the
 * whole request for "*"), parsed under proto3 JSON rules, unknown fields
 * refused, REQUIRED fields present and OUTPUT_ONLY fields absent. Field
 * paths are written from the request message ("job.template"). Code
 * "INVALID_ARGUMENT". */
size_t pp_spec_proto_check_json(const struct pp_spec_proto *p, const char *method,
				const struct pp_json *body, struct pp_spec_report *rep);
/* gRPC: the request message of method ("modal.client.ModalClient.AppCreate")
 * in wire format: every field number known, every wire type the declared
 * one, strings UTF-8, nested messages recursively. Code "INVALID_ARGUMENT". */
size_t pp_spec_proto_check_wire(const struct pp_spec_proto *p, const char *method, const void *msg,
				size_t len, struct pp_spec_report *rep);
/* Values of an enum ("modal.client.ClientType"): the number of name, or -1. */
long pp_spec_proto_enum_value(const struct pp_spec_proto *p, const char *enum_name,
			      const char *value_name);

#endif

/* ---- the mock's gate: validators run before each handler ---- */

/* Per mock: specs loaded on first use, one switch per API ("ecs", "arm",
 * "cloudrun", "modal", "iam", "ec2", "ecr", "logs"), all on at start. */
struct pp_mock_specs;
int pp_mock_specs_new(struct pp_mock_specs **out, struct pp_error *err);
void pp_mock_specs_free(struct pp_mock_specs *s);
/* The mock's own (mock.c). */
struct pp_mock_specs *pp_mock_specs_of(struct pp_mock *m);
/* GET /control/validate: {"ecs":true,...}; POST {"api":"ecs","enabled":false}
 * ("api" absent or "*": every API). */
void pp_mock_specs_control(struct pp_mock_specs *s, const struct pp_mock_req *req,
			   struct pp_mock_resp *resp);
bool pp_mock_specs_enabled(struct pp_mock_specs *s, const char *api);

/* Each returns true when the request breaks its spec: resp then holds the
 * cloud's own error (status, body, reject_reason) and the handler must not
 * act. A spec that fails to load answers 500 naming the cause. */
bool pp_mock_spec_ecs(struct pp_mock *m, const char *action, const struct pp_json *body,
		      struct pp_mock_resp *resp);
/* JSON 1.1 services by their model's name: "ecs", "ecr", "logs". */
bool pp_mock_spec_aws_json(struct pp_mock *m, const char *api, const char *action,
			   const struct pp_json *body, struct pp_mock_resp *resp);
/* Query protocol services, "iam" and "ec2": the form body read by the model
 * into *out (the handler's to free) when it passes, else the service's
 * XML error in resp. The form is read even when the API's checks are off. */
bool pp_mock_spec_aws_query(struct pp_mock *m, const char *api, const char *action,
			    const struct pp_mock_req *req, struct pp_json **out,
			    struct pp_mock_resp *resp);
bool pp_mock_spec_arm(struct pp_mock *m, const char *operation_id, const char *group_name,
		      const struct pp_json *body, struct pp_mock_resp *resp);
/* A bodiless ARM call's query parameters (Containers_ListLogs's tail and
 * timestamps) against the swagger. */
bool pp_mock_spec_arm_query(struct pp_mock *m, const char *operation_id,
			    const struct pp_mock_req *req, struct pp_mock_resp *resp);
/* method: "google.cloud.run.v2.Jobs.CreateJob"; the body as sent (may be empty). */
bool pp_mock_spec_cloudrun(struct pp_mock *m, const char *method, const struct pp_mock_req *req,
			   struct pp_mock_resp *resp);
/* The provisioning APIs (Service Usage, IAM, Resource Manager, Artifact
 * Registry) against their protos: method "google.iam.admin.v1.IAM.CreateServiceAccount". */
/* The ARM provisioning APIs (api "arminfra"): blob names the swagger
 * ("resources", "msi", "acr", "authz"), operation_id its operation. */
bool pp_mock_spec_arm_infra(struct pp_mock *m, const char *blob, const char *operation_id,
			    const struct pp_json *body, struct pp_mock_resp *resp);
bool pp_mock_spec_gcpinfra(struct pp_mock *m, const char *method, const struct pp_mock_req *req,
			   struct pp_mock_resp *resp);
/* rpc: "SandboxCreate"; headers as received ("" when absent). Returns 0 or
 * the gRPC status to answer, with the message in why. */
int pp_mock_spec_modal(struct pp_mock *m, const char *rpc, const char *client_type,
		       const char *client_version, const char *libmodal_version, const void *msg,
		       size_t len, char *why, size_t why_size);
