/* The clouds' realistic behaviours (docs/mock.md, "Realistic behaviours"):
 * named switches, each with a duration on the lifecycle clock, on by default
 * where the real cloud behaves so. Modules ask pp_mock_behaviour(); tests
 * read and set them through GET/POST /control/behaviours. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock/mock.h"

struct behaviour {
	const char *name;
	bool on;
	double seconds; /* how long the behaviour lasts; 0 for a plain switch */
	const char *what;
};

/* The defaults: what the real clouds do, with durations short enough for
 * tests (the real ones are seconds to minutes). */
static const struct behaviour defaults[] = {
	{"ecs.missing", true, 2.0,
	 "DescribeTasks answers failures[].reason MISSING for a new task this long after RunTask"},
	{"cloudrun.reconcile", true, 1.0,
	 "a new job is reconciling this long; RunJob before then is FAILED_PRECONDITION"},
	{"cloudrun.lro", true, 1.0,
	 "CreateJob and DeleteJob answer an Operation that is done this long later"},
	{"cloudrun.cancel_drain", true, 1.0,
	 "a cancelled execution stops its tasks this long after CancelExecution"},
	{"cloudrun.delete_busy", true, 0,
	 "DeleteJob is FAILED_PRECONDITION while an execution runs or is cancelling"},
	{"cloudrun.cancel_finished", true, 0,
	 "CancelExecution of a finished execution is FAILED_PRECONDITION"},
	{"modal.image_build", true, 3.0, "an image builds this long after ImageGetOrCreate"},
	{"modal.long_poll", true, 0,
	 "ImageJoinStreaming holds the call until the build ends or the client's timeout"},
	{"aci.async", true, 1.0,
	 "creating, starting and deleting a container group take this long (Azure-AsyncOperation)"},
	{"aci.pull_failure", true, 0,
	 "an image named with pushpool-mock-pull-fail fails to pull (instanceView.events)"},
	{"gcp.lro", true, 0.5,
	 "Service Usage enable/disable and Artifact Registry create/delete answer an Operation "
	 "that is done this long later"},
};
#define NBEHAVIOURS (sizeof(defaults) / sizeof(defaults[0]))
/* Ten minutes: longer than any timeline a test needs, short of a hang. */
#define SECONDS_MAX 600.0

struct pp_mock_behaviours {
	pthread_mutex_t lock;
	struct behaviour b[NBEHAVIOURS];
};

int pp_mock_behaviours_new(struct pp_mock_behaviours **out, struct pp_error *err)
{
	struct pp_mock_behaviours *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return pp_fail(err, PP_ENOMEM, "mock: out of memory");
	pthread_mutex_init(&s->lock, NULL);
	memcpy(s->b, defaults, sizeof(defaults));
	*out = s;
	return 0;
}

void pp_mock_behaviours_free(struct pp_mock_behaviours *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static int find(const char *name)
{
	for (size_t i = 0; i < NBEHAVIOURS; i++)
		if (name && !strcmp(defaults[i].name, name))
			return (int)i;
	return -1;
}

bool pp_mock_behaviours_get(struct pp_mock_behaviours *s, const char *name, double *seconds)
{
	int i = find(name);
	bool on;

	if (seconds)
		*seconds = 0;
	if (i < 0)
		return false;
	pthread_mutex_lock(&s->lock);
	on = s->b[i].on;
	if (seconds && on)
		*seconds = s->b[i].seconds;
	pthread_mutex_unlock(&s->lock);
	return on;
}

/* One {"name":N,"on":B,"seconds":S} object; "name":"*" switches them all. */
static int apply(struct pp_mock_behaviours *s, const struct pp_json *o, char *why, size_t size)
{
	const char *name = pp_json_get_string(o, "name");
	const struct pp_json *on = pp_json_get(o, "on");
	const struct pp_json *secs = pp_json_get(o, "seconds");
	size_t known = (name != NULL) + (on != NULL) + (secs != NULL);
	double v = 0;
	int i = find(name);

	if (!pp_json_is(o, PP_JSON_OBJECT) || !name || o->count != known || known < 2) {
		snprintf(why, size, "want {\"name\":NAME,\"on\":BOOL,\"seconds\":S}");
		return -1;
	}
	if (strcmp(name, "*") != 0 && i < 0) {
		snprintf(why, size, "no behaviour %s", name);
		return -1;
	}
	if (on && !pp_json_is(on, PP_JSON_BOOL)) {
		snprintf(why, size, "%s: on must be true or false", name);
		return -1;
	}
	if (secs && (!pp_json_get_number(o, "seconds", &v) || !(v >= 0 && v <= SECONDS_MAX) ||
		     i < 0 || defaults[i].seconds == 0)) {
		snprintf(why, size, "%s: seconds must be 0..%.0f, for a behaviour that lasts", name,
			 SECONDS_MAX);
		return -1;
	}
	if (!s) /* checking only */
		return 0;
	pthread_mutex_lock(&s->lock);
	for (size_t k = 0; k < NBEHAVIOURS; k++) {
		if (i >= 0 && (size_t)i != k)
			continue;
		if (on)
			s->b[k].on = pp_json_get_bool(o, "on", true);
		if (secs)
			s->b[k].seconds = v;
	}
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void pp_mock_behaviours_control(struct pp_mock_behaviours *s, const struct pp_json *body, bool post,
				struct pp_mock_resp *resp)
{
	if (post) {
		char why[160] = "";
		int rc = 0;

		if (pp_json_is(body, PP_JSON_ARRAY)) {
			/* Check every entry before applying any. */
			pp_json_foreach (o, body)
				if (!rc && apply(NULL, o, why, sizeof(why)) < 0)
					rc = -1;
			if (!rc)
				pp_json_foreach (o, body)
					apply(s, o, why, sizeof(why));
		} else {
			rc = apply(s, body, why, sizeof(why));
		}
		if (rc) {
			pp_mock_resp_printf(resp, 400, "text/plain", "behaviours: %s\n", why);
			return;
		}
	}
	pthread_mutex_lock(&s->lock);
	pp_mock_resp_printf(resp, 200, "application/json", "{");
	for (size_t k = 0; k < NBEHAVIOURS; k++)
		pp_buf_printf(&resp->body, "%s\"%s\":{\"on\":%s,\"seconds\":%g,\"what\":\"%s\"}",
			      k ? "," : "", s->b[k].name, s->b[k].on ? "true" : "false",
			      s->b[k].seconds, s->b[k].what);
	pp_buf_puts(&resp->body, "}\n");
	pthread_mutex_unlock(&s->lock);
}
