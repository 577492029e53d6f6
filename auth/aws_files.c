/* The AWS shared config and credentials files (~/.aws/credentials,
 * ~/.aws/config): profiles, source_profile and credential_source role
 * chains, and the profile's region. Part of the AWS backend (auth/aws.c). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "auth/aws.h"
#include "auth/backend.h"

#define FILE_MAX	  ((size_t)1 << 20)
#define PROFILE_DEPTH_MAX 4

struct profile {
	char *akid, *secret, *token, *region, *role_arn, *source_profile, *credential_source;
	char *session_name, *external_id, *duration, *web_identity_token_file;
	const char *keys_file; /* where aws_access_key_id came from */
	bool found;
};

static void profile_free(struct profile *p)
{
	free(p->akid);
	free(p->secret);
	free(p->token);
	free(p->region);
	free(p->role_arn);
	free(p->source_profile);
	free(p->credential_source);
	free(p->session_name);
	free(p->external_id);
	free(p->duration);
	free(p->web_identity_token_file);
	memset(p, 0, sizeof(*p));
}

struct shared_files {
	char creds_path[1024];
	char config_path[1024];
};

static int shared_file_paths(const struct pp_aws *a, struct shared_files *f, struct pp_error *err)
{
	const char *home = pp_aws_env("HOME");
	const char *cp = pp_cred_has(a->conf->file) ? a->conf->file
						    : pp_aws_env("AWS_SHARED_CREDENTIALS_FILE");
	const char *fp = pp_aws_env("AWS_CONFIG_FILE");
	int n1, n2;

	if ((!cp || !fp) && !home)
		return pp_fail(err, PP_ENOTFOUND, "profile: HOME not set");
	n1 = cp ? snprintf(f->creds_path, sizeof(f->creds_path), "%s", cp)
		: snprintf(f->creds_path, sizeof(f->creds_path), "%s/.aws/credentials", home);
	n2 = fp ? snprintf(f->config_path, sizeof(f->config_path), "%s", fp)
		: snprintf(f->config_path, sizeof(f->config_path), "%s/.aws/config", home);
	if (n1 < 0 || (size_t)n1 >= sizeof(f->creds_path) || n2 < 0 ||
	    (size_t)n2 >= sizeof(f->config_path))
		return pp_fail(err, PP_EINVALID, "profile: shared file path too long");
	return 0;
}

static const char *profile_name(const struct pp_aws *a)
{
	if (pp_cred_has(a->conf->profile))
		return a->conf->profile;
	if (pp_aws_env("AWS_PROFILE"))
		return pp_aws_env("AWS_PROFILE");
	if (pp_aws_env("AWS_DEFAULT_PROFILE"))
		return pp_aws_env("AWS_DEFAULT_PROFILE");
	return "default";
}

static bool profile_explicit(const struct pp_aws *a)
{
	return pp_cred_has(a->conf->profile) || pp_aws_env("AWS_PROFILE") ||
	       pp_aws_env("AWS_DEFAULT_PROFILE");
}

/* A value already set (from the credentials file) wins over the config file. */
static int profile_set(struct profile *p, const char *key, const char *value, const char *file)
{
	static const struct {
		const char *key;
		size_t off;
	} fields[] = {
		{"aws_access_key_id", offsetof(struct profile, akid)},
		{"aws_secret_access_key", offsetof(struct profile, secret)},
		{"aws_session_token", offsetof(struct profile, token)},
		{"aws_security_token", offsetof(struct profile, token)},
		{"region", offsetof(struct profile, region)},
		{"role_arn", offsetof(struct profile, role_arn)},
		{"source_profile", offsetof(struct profile, source_profile)},
		{"credential_source", offsetof(struct profile, credential_source)},
		{"role_session_name", offsetof(struct profile, session_name)},
		{"external_id", offsetof(struct profile, external_id)},
		{"duration_seconds", offsetof(struct profile, duration)},
		{"web_identity_token_file", offsetof(struct profile, web_identity_token_file)},
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (strcasecmp(key, fields[i].key))
			continue;
		char **slot = (char **)((char *)p + fields[i].off);
		if (*slot)
			return 0;
		if (!(*slot = strdup(value)))
			return PP_ENOMEM;
		if (i == 0)
			p->keys_file = file;
		return 0;
	}
	return 0;
}

/* Read section `section` of an INI file into p. A missing file is no error. */
static int read_ini_section(const char *path, const char *section, const char *alt_section,
			    struct profile *p, struct pp_error *err)
{
	char *text = NULL;
	int rc = pp_aws_read_file(path, FILE_MAX, &text, "profile: file", err);
	bool in_section = false;

	if (rc == PP_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	for (char *save = NULL, *line = strtok_r(text, "\r\n", &save); line;
	     line = strtok_r(NULL, "\r\n", &save)) {
		bool indented = *line == ' ' || *line == '\t';
		char *l = pp_aws_trim(line);
		if (!*l || *l == '#' || *l == ';')
			continue;
		if (*l == '[') {
			char *close = strchr(l, ']');
			if (!close) {
				rc = pp_fail(err, PP_EINVALID,
					     "%s: section header without ']': %.60s", path, l);
				break;
			}
			*close = '\0';
			char *name = pp_aws_trim(l + 1);
			in_section = !strcmp(name, section) ||
				     (alt_section && !strcmp(name, alt_section));
			p->found |= in_section;
			continue;
		}
		/* Indented lines are nested settings (s3 = ...), not profile keys. */
		if (!in_section || indented)
			continue;
		char *eq = strchr(l, '=');
		if (!eq)
			continue;
		*eq = '\0';
		if (profile_set(p, pp_aws_trim(l), pp_aws_trim(eq + 1), path)) {
			rc = pp_fail(err, PP_ENOMEM, "%s: out of memory", path);
			break;
		}
	}
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	return rc;
}

static int load_profile(const struct shared_files *f, const char *name, struct profile *p,
			struct pp_error *err)
{
	char cfg_section[PP_NAME_MAX + 16];
	int rc;

	memset(p, 0, sizeof(*p));
	snprintf(cfg_section, sizeof(cfg_section), "profile %s", name);
	rc = read_ini_section(f->creds_path, name, NULL, p, err);
	if (!rc)
		rc = read_ini_section(f->config_path, cfg_section,
				      !strcmp(name, "default") ? "default" : NULL, p, err);
	if (rc)
		profile_free(p);
	return rc;
}

/* A role profile's credential_source: where the keys that assume it come
 * from. */
static const struct {
	const char *name;
	int (*fn)(struct pp_aws *a, struct pp_aws_creds *c, struct pp_error *err);
} credential_sources[] = {
	{"Environment", pp_aws_from_env},
	{"EcsContainer", pp_aws_from_container},
	{"Ec2InstanceMetadata", pp_aws_from_imds},
};

static int profile_creds(struct pp_aws *a, const struct shared_files *f, const char *name,
			 int depth, struct pp_aws_creds *c, struct pp_error *err)
{
	struct profile p;
	int rc, row;

	if (depth > PROFILE_DEPTH_MAX)
		return pp_fail(err, PP_EINVALID,
			       "profile [%s]: source_profile chain deeper than %d", name,
			       PROFILE_DEPTH_MAX);
	if ((rc = load_profile(f, name, &p, err)))
		return rc;
	if (!p.found) {
		rc = pp_fail(err, depth || profile_explicit(a) ? PP_EAUTH : PP_ENOTFOUND,
			     "profile [%s] not found in %s or %s", name, f->creds_path,
			     f->config_path);
		goto out;
	}
	if (pp_cred_has(p.role_arn) &&
	    (pp_cred_has(p.source_profile) || pp_cred_has(p.credential_source))) {
		struct pp_aws_creds src = {0};
		if (pp_cred_has(p.source_profile) && strcmp(p.source_profile, name) != 0) {
			rc = profile_creds(a, f, p.source_profile, depth + 1, &src, err);
		} else if (pp_cred_has(p.source_profile)) {
			/* A profile that is its own source uses its static keys. */
			if (!pp_cred_has(p.akid) || !pp_cred_has(p.secret))
				rc = pp_fail(err, PP_EAUTH,
					     "%s [%s]: aws_secret_access_key missing",
					     f->creds_path, name);
			else
				rc = pp_aws_creds_set(&src, p.akid, p.secret, p.token, 0, "profile",
						      err);
		} else if ((row = pp_cred_source_row(
				    credential_sources,
				    sizeof(credential_sources) / sizeof(credential_sources[0]),
				    sizeof(credential_sources[0]), p.credential_source)) >= 0) {
			rc = credential_sources[row].fn(a, &src, err);
		} else {
			rc = pp_fail(
				err, PP_EINVALID,
				"%s [profile %s]: credential_source \"%s\" is not Environment, "
				"EcsContainer or Ec2InstanceMetadata",
				f->config_path, name, p.credential_source);
		}
		rc = pp_aws_auth_failure(rc, err);
		if (!rc)
			rc = pp_aws_assume_role(a, p.role_arn, p.session_name, p.external_id,
						p.duration, &src, c, err);
		if (rc)
			pp_error_prefix(err, "profile [%s] role %s: ", name, p.role_arn);
		pp_aws_creds_free(&src);
		goto out;
	}
	if (pp_cred_has(p.role_arn) && pp_cred_has(p.web_identity_token_file)) {
		rc = pp_aws_web_identity(a, p.web_identity_token_file, p.role_arn, p.session_name,
					 c, err);
		goto out;
	}
	if (pp_cred_has(p.akid)) {
		if (!pp_cred_has(p.secret))
			rc = pp_fail(err, PP_EAUTH, "%s [%s]: aws_secret_access_key missing",
				     p.keys_file, name);
		else
			rc = pp_aws_creds_set(c, p.akid, p.secret, p.token, 0, "profile", err);
		goto out;
	}
	if (pp_cred_has(p.secret)) {
		rc = pp_fail(err, PP_EAUTH, "%s [%s]: aws_access_key_id missing", f->creds_path,
			     name);
		goto out;
	}
	if (pp_cred_has(p.role_arn)) {
		rc = pp_fail(err, PP_EAUTH,
			     "%s [profile %s]: role_arn needs source_profile, credential_source or "
			     "web_identity_token_file",
			     f->config_path, name);
		goto out;
	}
	/* A profile holding only settings (region) leaves credentials to later
	 * sources, unless it was asked for by name. */
	rc = pp_fail(err, depth ? PP_EAUTH : PP_ENOTFOUND,
		     "profile [%s] in %s / %s has no credentials", name, f->creds_path,
		     f->config_path);
out:
	if (p.secret)
		OPENSSL_cleanse(p.secret, strlen(p.secret));
	profile_free(&p);
	return rc;
}

int pp_aws_from_profile(struct pp_aws *a, struct pp_aws_creds *c, struct pp_error *err)
{
	struct shared_files f;
	int rc = shared_file_paths(a, &f, err);
	return rc ? rc : profile_creds(a, &f, profile_name(a), 0, c, err);
}

char *pp_aws_profile_region(const struct pp_aws *a)
{
	struct shared_files f;
	struct profile p;
	char *region = NULL;

	if (shared_file_paths(a, &f, NULL) || load_profile(&f, profile_name(a), &p, NULL))
		return NULL;
	if (pp_cred_has(p.region))
		region = strdup(p.region);
	profile_free(&p);
	return region;
}
