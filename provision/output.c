/* What apply leaves behind: the pool's configuration drop-in (a [pool]
 * section re-opened with its new job variables and credentials, and the
 * credentials section a key needs) and the key files, mode 0600. Each file
 * is written to a temporary name and renamed, so a reader (a reloading
 * `serve`) sees the old file or the new one, never half of one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "provision/provision.h"

static int mkdir_p(const char *dir, mode_t mode, struct pp_error *err)
{
	char path[4096];
	size_t n = (size_t)snprintf(path, sizeof(path), "%s", dir);

	if (n >= sizeof(path))
		return pp_fail(err, PP_EINVALID, "%s: path too long", dir);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) && errno != EEXIST)
			return pp_fail(err, PP_EIO, "%s: cannot create: %s", path, strerror(errno));
		*p = '/';
	}
	if (mkdir(path, mode) && errno != EEXIST)
		return pp_fail(err, PP_EIO, "%s: cannot create: %s", path, strerror(errno));
	return 0;
}

static int write_atomic(const char *path, const char *data, size_t len, mode_t mode,
			struct pp_error *err)
{
	char tmp[4200];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)) < 0)
		return pp_fail(err, PP_EIO, "%s: cannot create: %s", tmp, strerror(errno));
	/* open's mode passes through the umask; the mode is the point. */
	if (fchmod(fd, mode) || write(fd, data, len) != (ssize_t)len || fsync(fd)) {
		int e = errno;

		close(fd);
		unlink(tmp);
		return pp_fail(err, PP_EIO, "%s: cannot write: %s", tmp, strerror(e));
	}
	if (close(fd) || rename(tmp, path)) {
		int e = errno;

		unlink(tmp);
		return pp_fail(err, PP_EIO, "%s: cannot write: %s", path, strerror(e));
	}
	return 0;
}

static void dropin_path(char *out, size_t size, const char *dir, const char *pool)
{
	snprintf(out, size, "%s/50-provision-%s.conf", dir, pool);
}

/* An INI value on one line: the JSON writer's compact form has no newline,
 * and a value from a cloud never holds one (refused here if it did). */
static int put_value(struct pp_buf *b, const char *key, const char *value, struct pp_error *err)
{
	if (strpbrk(value, "\r\n"))
		return pp_fail(err, PP_EINVALID, "drop-in: value of %s holds a line break", key);
	return pp_buf_printf(b, "%s = %s\n", key, value) ? pp_fail(err, PP_ENOMEM, "out of memory")
							 : 0;
}

int pp_prov_write_dropin(const struct pp_pool_conf *pool, const struct pp_prov_out *out,
			 const char *dropin_dir, const char *keydir, char **path,
			 struct pp_error *err)
{
	char file[4200], cred_name[PP_NAME_MAX + 16];
	struct pp_buf b;
	char *vars = NULL;
	int rc;

	*path = NULL;
	pp_buf_init(&b, 1 << 20);
	snprintf(cred_name, sizeof(cred_name), "%.*s-provisioned", PP_NAME_MAX - 13, pool->name);
	if ((rc = mkdir_p(dropin_dir, 0755, err)))
		return rc;
	for (size_t i = 0; i < out->nfiles; i++) {
		if (i == 0 && (rc = mkdir_p(keydir, 0700, err)))
			return rc;
		snprintf(file, sizeof(file), "%s/%s", keydir, out->file_names[i]);
		if ((rc = write_atomic(file, out->file_data[i], strlen(out->file_data[i]), 0600,
				       err)))
			return rc;
	}
	if (out->job_variables && !(vars = pp_json_to_string(out->job_variables, PP_JSON_COMPACT)))
		return pp_fail(err, PP_ENOMEM, "out of memory");
	rc = pp_buf_printf(&b,
			   "# Written by `pushpool provision apply -p %s`: apply rewrites this\n"
			   "# file, `pushpool provision destroy -p %s` removes it.\n"
			   "[pool \"%s\"]\n",
			   pool->name, pool->name, pool->name)
		     ? pp_fail(err, PP_ENOMEM, "out of memory")
		     : 0;
	if (!rc && vars)
		rc = put_value(&b, "job_variables", vars, err);
	if (!rc && out->ncred)
		rc = put_value(&b, "credentials", cred_name, err);
	if (!rc && out->ncred && pp_buf_printf(&b, "\n[credentials \"%s\"]\n", cred_name))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	for (size_t i = 0; !rc && i < out->ncred; i++) {
		const char *v = out->cred_values[i];

		/* "@NAME" stands for the file NAME among the outputs' files. */
		if (v[0] == '@') {
			snprintf(file, sizeof(file), "%s/%s", keydir, v + 1);
			v = file;
		}
		rc = put_value(&b, out->cred_keys[i], v, err);
	}
	free(vars);
	dropin_path(file, sizeof(file), dropin_dir, pool->name);
	if (!rc)
		rc = write_atomic(file, b.data, b.len, 0640, err);
	pp_buf_free(&b);
	if (!rc && !(*path = strdup(file)))
		rc = pp_fail(err, PP_ENOMEM, "out of memory");
	return rc;
}

int pp_prov_remove_dropin(const char *pool, const char *dropin_dir, const char *keydir,
			  struct pp_error *err)
{
	char file[4200];

	dropin_path(file, sizeof(file), dropin_dir, pool);
	if (unlink(file) && errno != ENOENT)
		return pp_fail(err, PP_EIO, "%s: cannot remove: %s", file, strerror(errno));
	/* The key directory holds only what apply wrote for this pool. */
	DIR *d = opendir(keydir);
	struct dirent *e;

	if (!d)
		return errno == ENOENT ? 0
				       : pp_fail(err, PP_EIO, "%s: cannot open: %s", keydir,
						 strerror(errno));
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(file, sizeof(file), "%s/%s", keydir, e->d_name);
			unlink(file);
		}
	closedir(d);
	if (rmdir(keydir) && errno != ENOENT)
		return pp_fail(err, PP_EIO, "%s: cannot remove: %s", keydir, strerror(errno));
	return 0;
}
