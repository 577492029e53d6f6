/* Mock Amazon EC2 networking (EC2 Query protocol, XML answers): VPCs (each
 * region's default one seeded, behaviour aws.default_vpc), subnets,
 * availability zones, internet gateways and their attachments, route tables
 * with routes and associations, security groups (no inbound rule, the
 * default egress rule). Creates take their tags in TagSpecifications, whose
 * ResourceType must name what is created. Requests are read and judged by
 * botocore's EC2 model (mock/spec_gate.c); answers follow EC2's shapes
 * (<item> lists, tagSet, requestId) and its errors (Response/Errors,
 * InvalidVpcID.NotFound, DependencyViolation, ...). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock/aws.h"
#include "mock/spec.h"

#define EC2_NS "http://ec2.amazonaws.com/doc/2016-11-15/"

struct ec2_call {
	struct pp_mock *m;
	struct pp_mock_aws_account *a;
	const struct pp_json *in;
	struct pp_mock_resp *resp;
	const char *region;
	struct pp_json *out; /* the answer's members after requestId */
};

static void ec2_error(struct ec2_call *c, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void ec2_error(struct ec2_call *c, int status, const char *code, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pp_mock_aws_error(c->resp, PP_MOCK_AWS_EC2, status, code, "%s", msg);
}

static void oom(struct ec2_call *c)
{
	ec2_error(c, 500, "InternalError", "mock: out of memory");
}

static const char *in_str(struct ec2_call *c, const char *key)
{
	return pp_json_get_string(c->in, key);
}

/* The EC2 resource types by their id prefix. */
static const struct kind {
	const char *type, *prefix, *tag_type, *set, *one, *not_found;
} kinds[] = {
	{"ec2.vpc", "vpc-", "vpc", "vpcSet", "vpc", "InvalidVpcID.NotFound"},
	{"ec2.subnet", "subnet-", "subnet", "subnetSet", "subnet", "InvalidSubnetID.NotFound"},
	{"ec2.igw", "igw-", "internet-gateway", "internetGatewaySet", "internetGateway",
	 "InvalidInternetGatewayID.NotFound"},
	{"ec2.rtb", "rtb-", "route-table", "routeTableSet", "routeTable",
	 "InvalidRouteTableID.NotFound"},
	{"ec2.sg", "sg-", "security-group", "securityGroupInfo", "securityGroup",
	 "InvalidGroup.NotFound"},
};

static const struct kind *kind_of(const char *type)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i].type, type) == 0)
			return &kinds[i];
	return NULL;
}

static struct pp_mock_aws_res *find(struct ec2_call *c, const char *type, const char *id,
				    bool answer)
{
	struct pp_mock_aws_res *r = id ? pp_mock_aws_find(c->a, type, c->region, id) : NULL;

	if (!r && answer)
		ec2_error(c, 400, kind_of(type)->not_found, "The %s ID '%s' does not exist",
			  kind_of(type)->tag_type, id ? id : "");
	return r;
}

static struct pp_json *described(const struct pp_mock_aws_res *r)
{
	struct pp_json *o = pp_json_clone(r->obj);

	if (o)
		pp_json_set(o, "tagSet", pp_mock_aws_tag_list(r->tags, "key", "value"));
	return o;
}

/* ---- filters ---- */

/* "vpc-id" -> "vpcId". */
static void camel(const char *s, size_t n, char *out, size_t size)
{
	size_t o = 0;
	bool up = false;

	for (size_t i = 0; i < n && o + 1 < size; i++) {
		if (s[i] == '-') {
			up = true;
			continue;
		}
		out[o++] = up ? (char)toupper((unsigned char)s[i]) : s[i];
		up = false;
	}
	out[o] = '\0';
}

static bool value_is(const struct pp_json *v, const struct pp_json *values)
{
	pp_json_foreach (want, values) {
		if (pp_json_is(v, PP_JSON_STRING) && strcmp(v->str, want->str) == 0)
			return true;
		if (pp_json_is(v, PP_JSON_BOOL) && strcmp(v->b ? "true" : "false", want->str) == 0)
			return true;
	}
	return false;
}

/* name is "field" or "set.field" (attachment.vpc-id: any attachment). */
static bool field_matches(const struct pp_json *obj, const char *name, const struct pp_json *values)
{
	const char *dot = strchr(name, '.');
	char key[64];

	if (!dot) {
		camel(name, strlen(name), key, sizeof(key));
		return value_is(pp_json_get(obj, key), values);
	}
	camel(name, (size_t)(dot - name), key, sizeof(key));
	strncat(key, "Set", sizeof(key) - strlen(key) - 1);
	pp_json_foreach (e, pp_json_get(obj, key))
		if (field_matches(e, dot + 1, values))
			return true;
	return false;
}

static const char *const filter_names[] = {
	"vpc-id",
	"is-default",
	"default-for-az",
	"availability-zone",
	"group-name",
	"group-id",
	"state",
	"cidr-block",
	"subnet-id",
	"attachment.vpc-id",
	"association.subnet-id",
	"route-table-id",
	"internet-gateway-id",
	"owner-id",
};

/* false (and the error answered) for a filter EC2 would refuse. */
static bool filters_ok(struct ec2_call *c)
{
	pp_json_foreach (f, pp_json_get(c->in, "Filters")) {
		const char *name = pp_json_get_string(f, "Name");
		bool known =
			name && (strncmp(name, "tag:", 4) == 0 || strcmp(name, "tag-key") == 0);

		for (size_t i = 0;
		     name && !known && i < sizeof(filter_names) / sizeof(*filter_names); i++)
			known = strcmp(filter_names[i], name) == 0;
		if (!known) {
			ec2_error(c, 400, "InvalidParameterValue", "The filter '%s' is invalid",
				  name ? name : "(null)");
			return false;
		}
	}
	return true;
}

static bool matches(struct ec2_call *c, const struct pp_mock_aws_res *r)
{
	pp_json_foreach (f, pp_json_get(c->in, "Filters")) {
		const char *name = pp_json_get_string(f, "Name");
		const struct pp_json *values = pp_json_get(f, "Values");
		bool ok;

		if (strncmp(name, "tag:", 4) == 0) {
			ok = value_is(pp_json_get(r->tags, name + 4), values);
		} else if (strcmp(name, "tag-key") == 0) {
			ok = false;
			pp_json_foreach (v, values)
				ok = ok || pp_json_get(r->tags, v->str);
		} else {
			ok = field_matches(r->obj, name, values);
		}
		if (!ok)
			return false;
	}
	return true;
}

/* Describe*: the resources of type named by ids_key (all when absent),
 * filtered. An id that does not exist is an error, as in EC2. */
static void describe(struct ec2_call *c, const char *type, const char *ids_key)
{
	const struct kind *k = kind_of(type);
	const struct pp_json *ids = pp_json_get(c->in, ids_key);
	struct pp_json *set = pp_json_new(PP_JSON_ARRAY);

	if (!set || !filters_ok(c)) {
		pp_json_free(set);
		if (!set)
			oom(c);
		return;
	}
	pp_json_foreach (id, ids) {
		if (!find(c, type, id->str, true)) {
			pp_json_free(set);
			return;
		}
	}
	for (struct pp_mock_aws_res *r = pp_mock_aws_first(c->a); r; r = r->next) {
		bool listed = !ids || !ids->count;

		if (strcmp(r->type, type) != 0 || strcmp(r->region, c->region) != 0)
			continue;
		pp_json_foreach (id, ids)
			listed = listed || strcmp(id->str, r->id) == 0;
		if (listed && matches(c, r) && pp_json_append(set, described(r))) {
			pp_json_free(set);
			oom(c);
			return;
		}
	}
	if (!(c->out = pp_json_new(PP_JSON_OBJECT)) || pp_json_set(c->out, k->set, set))
		oom(c);
}

/* ---- creates ---- */

/* The tags of TagSpecifications for tag_type; false after answering when a
 * specification names another resource type. */
static bool spec_tags(struct ec2_call *c, const char *tag_type, struct pp_json **tags)
{
	const struct pp_json *list = NULL;

	*tags = NULL;
	pp_json_foreach (ts, pp_json_get(c->in, "TagSpecifications")) {
		const char *rt = pp_json_get_string(ts, "ResourceType");

		if (!rt || strcmp(rt, tag_type) != 0) {
			ec2_error(c, 400, "InvalidParameterValue",
				  "'%s' is not a valid taggable resource type for this operation.",
				  rt ? rt : "");
			return false;
		}
		list = pp_json_get(ts, "Tags");
	}
	if (!(*tags = pp_mock_aws_tags(list, "Key", "Value"))) {
		oom(c);
		return false;
	}
	return true;
}

/* A new resource of type from obj (taken), tagged from the request; its id
 * goes to obj[id_key]. NULL after answering. */
static struct pp_mock_aws_res *create(struct ec2_call *c, const char *type, const char *id_key,
				      struct pp_json *obj)
{
	const struct kind *k = kind_of(type);
	struct pp_json *tags;
	struct pp_mock_aws_res *r;
	char hex[24], id[48];

	if (!obj) {
		oom(c);
		return NULL;
	}
	if (!spec_tags(c, k->tag_type, &tags)) {
		pp_json_free(obj);
		return NULL;
	}
	pp_mock_random_hex(c->m, hex, 17);
	snprintf(id, sizeof(id), "%s%s", k->prefix, hex);
	pp_json_set_string(obj, id_key, id);
	pp_json_set_string(obj, "ownerId", PP_MOCK_AWS_ACCOUNT);
	r = pp_mock_aws_add(c->m, c->a, type, c->region, id, obj, tags);
	if (!r || !(c->out = pp_json_new(PP_JSON_OBJECT)) ||
	    pp_json_set(c->out, k->one, described(r))) {
		oom(c);
		return NULL;
	}
	return r;
}

/* "a.b.c.d/n" with n in 16..28 (what EC2 allows for a VPC or subnet). */
static bool cidr_ok(const char *s)
{
	unsigned a, b, cc, d, n;
	char tail;

	return s && sscanf(s, "%u.%u.%u.%u/%u%c", &a, &b, &cc, &d, &n, &tail) == 5 && a < 256 &&
	       b < 256 && cc < 256 && d < 256 && n >= 16 && n <= 28;
}

static void create_vpc(struct ec2_call *c)
{
	struct pp_json *o;

	if (!cidr_ok(in_str(c, "CidrBlock"))) {
		ec2_error(c, 400, "InvalidVpc.Range", "The CIDR '%s' is invalid.",
			  in_str(c, "CidrBlock") ? in_str(c, "CidrBlock") : "");
		return;
	}
	o = pp_json_new(PP_JSON_OBJECT);
	if (o) {
		pp_json_set_string(o, "state", "available");
		pp_json_set_string(o, "cidrBlock", in_str(c, "CidrBlock"));
		pp_json_set_string(o, "instanceTenancy", "default");
		pp_json_set_bool(o, "isDefault", false);
	}
	create(c, "ec2.vpc", "vpcId", o);
}

static bool zone_ok(struct ec2_call *c, const char *az)
{
	size_t n = strlen(c->region);

	return az && strncmp(az, c->region, n) == 0 && az[n] >= 'a' && az[n] <= 'd' && !az[n + 1];
}

static void create_subnet(struct ec2_call *c)
{
	struct pp_mock_aws_res *vpc = find(c, "ec2.vpc", in_str(c, "VpcId"), true);
	const char *cidr = in_str(c, "CidrBlock"), *az = in_str(c, "AvailabilityZone");
	struct pp_json *o;
	char zone[48];

	if (!vpc)
		return;
	if (!cidr_ok(cidr)) {
		ec2_error(c, 400, "InvalidSubnet.Range", "The CIDR '%s' is invalid.",
			  cidr ? cidr : "");
		return;
	}
	for (struct pp_mock_aws_res *r = pp_mock_aws_first(c->a); r; r = r->next) {
		if (strcmp(r->type, "ec2.subnet") == 0 &&
		    strcmp(pp_json_get_string(r->obj, "vpcId"), vpc->id) == 0 &&
		    strcmp(pp_json_get_string(r->obj, "cidrBlock"), cidr) == 0) {
			ec2_error(c, 400, "InvalidSubnet.Conflict",
				  "The CIDR '%s' conflicts with another subnet", cidr);
			return;
		}
	}
	if (az && !zone_ok(c, az)) {
		ec2_error(c, 400, "InvalidParameterValue",
			  "Value (%s) for parameter availabilityZone is invalid. Subnets can "
			  "currently only be created in the following availability zones: %sa, "
			  "%sb, %sc, %sd.",
			  az, c->region, c->region, c->region, c->region);
		return;
	}
	snprintf(zone, sizeof(zone), "%s%s", az ? "" : c->region, az ? az : "a");
	o = pp_json_new(PP_JSON_OBJECT);
	if (o) {
		pp_json_set_string(o, "vpcId", vpc->id);
		pp_json_set_string(o, "state", "available");
		pp_json_set_string(o, "cidrBlock", cidr);
		pp_json_set_string(o, "availabilityZone", zone);
		pp_json_set_string(o, "availableIpAddressCount", "251");
		pp_json_set_bool(o, "defaultForAz", false);
		pp_json_set_bool(o, "mapPublicIpOnLaunch", false);
	}
	create(c, "ec2.subnet", "subnetId", o);
}

static void create_igw(struct ec2_call *c)
{
	struct pp_json *o = pp_json_new(PP_JSON_OBJECT);

	if (o)
		pp_json_set(o, "attachmentSet", pp_json_new(PP_JSON_ARRAY));
	create(c, "ec2.igw", "internetGatewayId", o);
}

static void create_route_table(struct ec2_call *c)
{
	struct pp_mock_aws_res *vpc = find(c, "ec2.vpc", in_str(c, "VpcId"), true);
	struct pp_json *o, *routes, *local;

	if (!vpc)
		return;
	o = pp_json_new(PP_JSON_OBJECT);
	routes = pp_json_new(PP_JSON_ARRAY);
	local = pp_json_new(PP_JSON_OBJECT);
	if (local) {
		pp_json_set_string(local, "destinationCidrBlock",
				   pp_json_get_string(vpc->obj, "cidrBlock"));
		pp_json_set_string(local, "gatewayId", "local");
		pp_json_set_string(local, "state", "active");
		pp_json_set_string(local, "origin", "CreateRouteTable");
	}
	pp_json_append(routes, local);
	if (o) {
		pp_json_set_string(o, "vpcId", vpc->id);
		pp_json_set(o, "routeSet", routes);
		pp_json_set(o, "associationSet", pp_json_new(PP_JSON_ARRAY));
	} else {
		pp_json_free(routes);
	}
	create(c, "ec2.rtb", "routeTableId", o);
}

static void create_sg(struct ec2_call *c)
{
	struct pp_mock_aws_res *vpc = find(c, "ec2.vpc", in_str(c, "VpcId"), true);
	const char *name = in_str(c, "GroupName");
	struct pp_json *o, *egress, *rule, *ranges, *any;

	if (!vpc)
		return;
	for (struct pp_mock_aws_res *r = pp_mock_aws_first(c->a); r; r = r->next) {
		if (strcmp(r->type, "ec2.sg") == 0 &&
		    strcmp(pp_json_get_string(r->obj, "vpcId"), vpc->id) == 0 &&
		    strcmp(pp_json_get_string(r->obj, "groupName"), name) == 0) {
			ec2_error(c, 400, "InvalidGroup.Duplicate",
				  "The security group '%s' already exists for VPC '%s'", name,
				  vpc->id);
			return;
		}
	}
	/* A new group lets everything out and nothing in. */
	o = pp_json_new(PP_JSON_OBJECT);
	egress = pp_json_new(PP_JSON_ARRAY);
	rule = pp_json_new(PP_JSON_OBJECT);
	ranges = pp_json_new(PP_JSON_ARRAY);
	any = pp_json_new(PP_JSON_OBJECT);
	pp_json_set_string(any, "cidrIp", "0.0.0.0/0");
	pp_json_append(ranges, any);
	pp_json_set_string(rule, "ipProtocol", "-1");
	pp_json_set(rule, "ipRanges", ranges);
	pp_json_append(egress, rule);
	if (o) {
		pp_json_set_string(o, "groupName", name);
		pp_json_set_string(o, "groupDescription", in_str(c, "Description"));
		pp_json_set_string(o, "vpcId", vpc->id);
		pp_json_set(o, "ipPermissions", pp_json_new(PP_JSON_ARRAY));
		pp_json_set(o, "ipPermissionsEgress", egress);
	} else {
		pp_json_free(egress);
	}
	if (create(c, "ec2.sg", "groupId", o)) {
		/* CreateSecurityGroup answers the id alone. */
		const char *id =
			pp_json_get_string(pp_json_get(c->out, "securityGroup"), "groupId");
		struct pp_json *out = pp_json_new(PP_JSON_OBJECT);

		if (!out || pp_json_set_string(out, "groupId", id)) {
			pp_json_free(out);
			oom(c);
			return;
		}
		pp_json_free(c->out);
		c->out = out;
	}
}

static void answer_true(struct ec2_call *c)
{
	if (!(c->out = pp_json_new(PP_JSON_OBJECT)) || pp_json_set_bool(c->out, "return", true))
		oom(c);
}

/* ---- changes and deletes ---- */

static void attach_igw(struct ec2_call *c, bool on)
{
	struct pp_mock_aws_res *igw = find(c, "ec2.igw", in_str(c, "InternetGatewayId"), true);
	struct pp_mock_aws_res *vpc = igw ? find(c, "ec2.vpc", in_str(c, "VpcId"), true) : NULL;
	struct pp_json *set, *att;

	if (!vpc)
		return;
	set = pp_json_get(igw->obj, "attachmentSet");
	pp_json_foreach (e, set) {
		bool same = strcmp(pp_json_get_string(e, "vpcId"), vpc->id) == 0;

		if (on) {
			ec2_error(c, 400, "Resource.AlreadyAssociated",
				  "resource %s is already attached to network %s", igw->id,
				  pp_json_get_string(e, "vpcId"));
			return;
		}
		if (same) {
			pp_json_free(pp_json_detach(e));
			answer_true(c);
			return;
		}
	}
	if (!on) {
		ec2_error(c, 400, "Gateway.NotAttached",
			  "resource %s is not attached to network %s", igw->id, vpc->id);
		return;
	}
	att = pp_json_new(PP_JSON_OBJECT);
	if (!att || pp_json_set_string(att, "vpcId", vpc->id) ||
	    pp_json_set_string(att, "state", "available") || pp_json_append(set, att)) {
		oom(c);
		return;
	}
	answer_true(c);
}

static void attach_igw_on(struct ec2_call *c)
{
	attach_igw(c, true);
}

static void attach_igw_off(struct ec2_call *c)
{
	attach_igw(c, false);
}

static void create_route(struct ec2_call *c)
{
	struct pp_mock_aws_res *rtb = find(c, "ec2.rtb", in_str(c, "RouteTableId"), true);
	const char *dest = in_str(c, "DestinationCidrBlock"), *gw = in_str(c, "GatewayId");
	struct pp_json *route;

	if (!rtb)
		return;
	if (!gw || !find(c, "ec2.igw", gw, true))
		return;
	pp_json_foreach (e, pp_json_get(rtb->obj, "routeSet")) {
		if (dest && strcmp(pp_json_get_string(e, "destinationCidrBlock"), dest) == 0) {
			ec2_error(c, 400, "RouteAlreadyExists",
				  "The route identified by %s already exists.", dest);
			return;
		}
	}
	route = pp_json_new(PP_JSON_OBJECT);
	if (!route || pp_json_set_string(route, "destinationCidrBlock", dest ? dest : "") ||
	    pp_json_set_string(route, "gatewayId", gw) ||
	    pp_json_set_string(route, "state", "active") ||
	    pp_json_set_string(route, "origin", "CreateRoute") ||
	    pp_json_append(pp_json_get(rtb->obj, "routeSet"), route)) {
		oom(c);
		return;
	}
	answer_true(c);
}

static void associate(struct ec2_call *c)
{
	struct pp_mock_aws_res *rtb = find(c, "ec2.rtb", in_str(c, "RouteTableId"), true);
	struct pp_mock_aws_res *sn =
		rtb ? find(c, "ec2.subnet", in_str(c, "SubnetId"), true) : NULL;
	struct pp_json *assoc;
	char hex[24], id[48];

	if (!sn)
		return;
	for (struct pp_mock_aws_res *r = pp_mock_aws_first(c->a); r; r = r->next) {
		if (strcmp(r->type, "ec2.rtb") != 0)
			continue;
		pp_json_foreach (e, pp_json_get(r->obj, "associationSet")) {
			if (strcmp(pp_json_get_string(e, "subnetId"), sn->id) == 0) {
				ec2_error(c, 400, "Resource.AlreadyAssociated",
					  "the specified association for route table %s "
					  "conflicts with an existing association",
					  rtb->id);
				return;
			}
		}
	}
	pp_mock_random_hex(c->m, hex, 17);
	snprintf(id, sizeof(id), "rtbassoc-%s", hex);
	assoc = pp_json_new(PP_JSON_OBJECT);
	if (!assoc || pp_json_set_string(assoc, "routeTableAssociationId", id) ||
	    pp_json_set_string(assoc, "routeTableId", rtb->id) ||
	    pp_json_set_string(assoc, "subnetId", sn->id) ||
	    pp_json_set_bool(assoc, "main", false) ||
	    pp_json_append(pp_json_get(rtb->obj, "associationSet"), assoc) ||
	    !(c->out = pp_json_new(PP_JSON_OBJECT)) ||
	    pp_json_set_string(c->out, "associationId", id)) {
		oom(c);
	}
}

static void disassociate(struct ec2_call *c)
{
	const char *id = in_str(c, "AssociationId");

	for (struct pp_mock_aws_res *r = pp_mock_aws_first(c->a); id && r; r = r->next) {
		if (strcmp(r->type, "ec2.rtb") != 0)
			continue;
		pp_json_foreach (e, pp_json_get(r->obj, "associationSet")) {
			if (strcmp(pp_json_get_string(e, "routeTableAssociationId"), id) == 0) {
				pp_json_free(pp_json_detach(e));
				answer_true(c);
				return;
			}
		}
	}
	ec2_error(c, 400, "InvalidAssociationID.NotFound", "The association ID '%s' does not exist",
		  id ? id : "");
}

/* Anything of type that references vpc_id in field. */
static bool used_by(struct ec2_call *c, const char *type, const char *field, const char *id)
{
	for (struct pp_mock_aws_res *r = pp_mock_aws_first(c->a); r; r = r->next)
		if (strcmp(r->type, type) == 0 && pp_json_get_string(r->obj, field) &&
		    strcmp(pp_json_get_string(r->obj, field), id) == 0)
			return true;
	return false;
}

static void dependency(struct ec2_call *c, const char *what, const char *id)
{
	ec2_error(c, 400, "DependencyViolation",
		  "The %s '%s' has dependencies and cannot be deleted.", what, id);
}

static void delete_vpc(struct ec2_call *c)
{
	struct pp_mock_aws_res *vpc = find(c, "ec2.vpc", in_str(c, "VpcId"), true);

	if (!vpc)
		return;
	for (struct pp_mock_aws_res *r = pp_mock_aws_first(c->a); r; r = r->next) {
		if (strcmp(r->type, "ec2.igw") != 0)
			continue;
		pp_json_foreach (e, pp_json_get(r->obj, "attachmentSet")) {
			if (strcmp(pp_json_get_string(e, "vpcId"), vpc->id) == 0) {
				dependency(c, "vpc", vpc->id);
				return;
			}
		}
	}
	if (used_by(c, "ec2.subnet", "vpcId", vpc->id) || used_by(c, "ec2.rtb", "vpcId", vpc->id) ||
	    used_by(c, "ec2.sg", "vpcId", vpc->id)) {
		dependency(c, "vpc", vpc->id);
		return;
	}
	pp_mock_aws_remove(c->m, c->a, vpc);
	answer_true(c);
}

static void delete_subnet(struct ec2_call *c)
{
	struct pp_mock_aws_res *sn = find(c, "ec2.subnet", in_str(c, "SubnetId"), true);

	if (!sn)
		return;
	/* The subnet's route table association goes with it. */
	for (struct pp_mock_aws_res *r = pp_mock_aws_first(c->a); r; r = r->next) {
		if (strcmp(r->type, "ec2.rtb") != 0)
			continue;
		pp_json_foreach (e, pp_json_get(r->obj, "associationSet")) {
			if (strcmp(pp_json_get_string(e, "subnetId"), sn->id) == 0) {
				pp_json_free(pp_json_detach(e));
				break;
			}
		}
	}
	pp_mock_aws_remove(c->m, c->a, sn);
	answer_true(c);
}

/* Delete the resource of type the call names in key, refused while its
 * busy set (NULL: none) holds anything. */
static void delete_res(struct ec2_call *c, const char *type, const char *key, const char *busy)
{
	struct pp_mock_aws_res *r = find(c, type, in_str(c, key), true);

	if (!r)
		return;
	if (busy && pp_json_get(r->obj, busy)->count) {
		dependency(c, kind_of(type)->one, r->id);
		return;
	}
	pp_mock_aws_remove(c->m, c->a, r);
	answer_true(c);
}

static void delete_igw(struct ec2_call *c)
{
	delete_res(c, "ec2.igw", "InternetGatewayId", "attachmentSet");
}

static void delete_route_table(struct ec2_call *c)
{
	delete_res(c, "ec2.rtb", "RouteTableId", "associationSet");
}

static void delete_sg(struct ec2_call *c)
{
	delete_res(c, "ec2.sg", "GroupId", NULL);
}

static void describe_vpcs(struct ec2_call *c)
{
	describe(c, "ec2.vpc", "VpcIds");
}

static void describe_subnets(struct ec2_call *c)
{
	describe(c, "ec2.subnet", "SubnetIds");
}

static void describe_igws(struct ec2_call *c)
{
	describe(c, "ec2.igw", "InternetGatewayIds");
}

static void describe_rtbs(struct ec2_call *c)
{
	describe(c, "ec2.rtb", "RouteTableIds");
}

static void describe_sgs(struct ec2_call *c)
{
	describe(c, "ec2.sg", "GroupIds");
}

/* Four zones per region: more than the three a pool's network uses. */
static void describe_zones(struct ec2_call *c)
{
	struct pp_json *set = pp_json_new(PP_JSON_ARRAY);

	for (int z = 0; set && z < 4; z++) {
		struct pp_json *o = pp_json_new(PP_JSON_OBJECT);
		char name[48], id[48];

		snprintf(name, sizeof(name), "%s%c", c->region, 'a' + z);
		snprintf(id, sizeof(id), "use1-az%d", z + 1);
		if (!o || pp_json_set_string(o, "zoneName", name) ||
		    pp_json_set_string(o, "zoneState", "available") ||
		    pp_json_set_string(o, "regionName", c->region) ||
		    pp_json_set_string(o, "zoneId", id) ||
		    pp_json_set_string(o, "zoneType", "availability-zone") ||
		    pp_json_append(set, o)) {
			pp_json_free(set);
			set = NULL;
		}
	}
	if (!set || !(c->out = pp_json_new(PP_JSON_OBJECT)) ||
	    pp_json_set(c->out, "availabilityZoneInfo", set))
		oom(c);
}

static const struct {
	const char *name;
	void (*run)(struct ec2_call *c);
} actions[] = {
	{"DescribeVpcs", describe_vpcs},
	{"CreateVpc", create_vpc},
	{"DeleteVpc", delete_vpc},
	{"DescribeAvailabilityZones", describe_zones},
	{"DescribeSubnets", describe_subnets},
	{"CreateSubnet", create_subnet},
	{"DeleteSubnet", delete_subnet},
	{"DescribeInternetGateways", describe_igws},
	{"CreateInternetGateway", create_igw},
	{"AttachInternetGateway", attach_igw_on},
	{"DetachInternetGateway", attach_igw_off},
	{"DeleteInternetGateway", delete_igw},
	{"DescribeRouteTables", describe_rtbs},
	{"CreateRouteTable", create_route_table},
	{"CreateRoute", create_route},
	{"AssociateRouteTable", associate},
	{"DisassociateRouteTable", disassociate},
	{"DeleteRouteTable", delete_route_table},
	{"DescribeSecurityGroups", describe_sgs},
	{"CreateSecurityGroup", create_sg},
	{"DeleteSecurityGroup", delete_sg},
};

static bool ec2_admit(struct pp_mock_call *c)
{
	const char *ctype = pp_mock_header(c->req, "Content-Type");

	if (!pp_mock_aws_form_action(c->req->body, c->resp->action, sizeof(c->resp->action))) {
		pp_mock_aws_error(c->resp, PP_MOCK_AWS_EC2, 400, "MissingAction",
				  "The request must contain the parameter Action");
		return false;
	}
	if (!pp_mock_aws_signed(c, PP_MOCK_AWS_EC2, "ec2", NULL))
		return false;
	if (!ctype || strncmp(ctype, "application/x-www-form-urlencoded", 33) != 0) {
		pp_mock_aws_error(c->resp, PP_MOCK_AWS_EC2, 400, "InvalidParameterValue",
				  "Content-Type must be application/x-www-form-urlencoded, not %s",
				  ctype ? ctype : "(none)");
		return false;
	}
	return pp_mock_aws_faults(c, PP_MOCK_AWS_EC2, "ec2");
}

static void ec2_handle(struct pp_mock_call *c)
{
	struct ec2_call ec = {.m = c->m, .resp = c->resp, .region = c->note};
	const char *action = c->resp->action;
	struct pp_json *in = NULL;
	size_t i;

	if (pp_mock_spec_aws_query(c->m, "ec2", action, c->req, &in, c->resp))
		return;
	for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (strcmp(actions[i].name, action) == 0)
			break;
	if (i == sizeof(actions) / sizeof(actions[0])) {
		pp_mock_aws_error(c->resp, PP_MOCK_AWS_EC2, 400, "InvalidAction",
				  "mock EC2 does not implement %s", action);
		pp_json_free(in);
		return;
	}
	ec.in = in;
	pp_mock_lock(c->m);
	ec.a = pp_mock_aws_account_of(c->state);
	pp_mock_aws_region_seed(c->m, ec.a, ec.region);
	actions[i].run(&ec);
	pp_mock_unlock(c->m);
	if (!c->resp->status) {
		pp_mock_resp_printf(
			c->resp, 200, "text/xml;charset=UTF-8",
			"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<%sResponse xmlns=\"" EC2_NS
			"\"><requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>",
			action);
		pp_mock_aws_xml_json(&c->resp->body, ec.out, true);
		pp_buf_printf(&c->resp->body, "</%sResponse>", action);
	}
	pp_mock_aws_changed(c->m, c->resp);
	pp_json_free(ec.out);
	pp_json_free(in);
}

static void ec2_unmatched(struct pp_mock_call *c, bool other_method)
{
	pp_mock_aws_error(c->resp, PP_MOCK_AWS_EC2, 400, "MissingAction",
			  "The request must contain the parameter Action");
}

static const struct pp_mock_route ec2_routes[] = {
	{"POST", "/aws/ec2", ec2_handle, .changes = true},
	{NULL},
};

const struct pp_mock_router pp_mock_aws_ec2_router = {
	.api = "ec2",
	.scope = "/aws/ec2",
	.routes = ec2_routes,
	.admit = ec2_admit,
	.unmatched = ec2_unmatched,
};
