/* SPDX-License-Identifier: MIT
 *
 * r58_auth: the fleet broker's client authorization (a Mosquitto 2.0 plugin, API v5).
 *
 * The identity of a client is the CN of its TLS client certificate (the listener requires
 * one, from the fleet's CA). This plugin decides what that identity may do:
 *
 * - At CONNECT: a device (any CN not named in `services`) must use its CN as its client id,
 *   so no certificate can take over another client's session; a user name, if sent, must
 *   be the CN. A revoked CN is refused. The CN becomes the client's user name.
 * - On every publish, delivery and subscription: a device reaches only its own topics,
 *   in the direction the protocol uses (docs/mqtt.md), and may subscribe to exactly the
 *   three filters the agent uses: no wildcard of its own, no `$share`, no `$SYS`, no other
 *   device. The services (the fleet, operators' tools) have the `r58/v1/` tree and its
 *   shared subscriptions.
 * - Revocation: `revoked` names a file of CNs, one a line (`r58-fleet pki revoke` writes
 *   it). It is re-read within a second of a change; a newly revoked client is disconnected
 *   and refused from then on, without restarting the broker.
 *
 * Options (mosquitto.conf):
 *   plugin_opt_services  CNs with the fleet's rights, separated by spaces or commas
 *   plugin_opt_revoked   path of the revocation list (missing file: nothing revoked)
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/objects.h>
#include <openssl/x509.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define PREFIX "r58/v1/"
#define PREFIX_LEN (sizeof(PREFIX) - 1)
#define MAX_CN 64

struct names {
	char **v;
	size_t n;
};

static mosquitto_plugin_id_t *plugin_id;
static struct names services;
static struct names revoked;
static char *revoked_path;
static struct stat revoked_seen;
static bool revoked_loaded;
static time_t revoked_checked;

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool names_has(const struct names *s, const char *name)
{
	return s->n > 0 && bsearch(&name, s->v, s->n, sizeof(char *), cmp_name) != NULL;
}

static void names_free(struct names *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i]);
	}
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static int names_add(struct names *s, const char *name, size_t len)
{
	char **v = realloc(s->v, (s->n + 1) * sizeof(char *));
	if (v == NULL) {
		return MOSQ_ERR_NOMEM;
	}
	s->v = v;
	s->v[s->n] = strndup(name, len);
	if (s->v[s->n] == NULL) {
		return MOSQ_ERR_NOMEM;
	}
	s->n++;
	return MOSQ_ERR_SUCCESS;
}

static void names_sort(struct names *s)
{
	if (s->n > 1) {
		qsort(s->v, s->n, sizeof(char *), cmp_name);
	}
}

/* A CN the topic tree can hold: 1-64 of a-z A-Z 0-9 - _ (no '/', '+', '#'). */
static bool valid_cn(const char *cn)
{
	size_t len = strlen(cn);
	if (len == 0 || len > MAX_CN) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		char c = cn[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '-' || c == '_';
		if (!ok) {
			return false;
		}
	}
	return true;
}

/* The CN of the client's certificate into `out`; false without a usable one. */
static bool client_cn(struct mosquitto *client, char out[MAX_CN + 1])
{
	X509 *cert = mosquitto_client_certificate(client);
	if (cert == NULL) {
		return false;
	}
	char buf[256];
	int len = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf,
					    sizeof(buf));
	X509_free(cert);
	if (len <= 0 || (size_t)len >= sizeof(buf) || strlen(buf) != (size_t)len || !valid_cn(buf)) {
		return false;
	}
	memcpy(out, buf, (size_t)len + 1);
	return true;
}

/* `topic` is PREFIX cn "/" followed by `rest`; `*` in `rest` stands for one non-empty level. */
static bool own_topic(const char *topic, const char *cn, const char *rest)
{
	size_t cn_len = strlen(cn);
	if (strncmp(topic, PREFIX, PREFIX_LEN) != 0) {
		return false;
	}
	topic += PREFIX_LEN;
	if (strncmp(topic, cn, cn_len) != 0 || topic[cn_len] != '/') {
		return false;
	}
	topic += cn_len + 1;
	while (*rest != '\0') {
		if (*rest == '*') {
			size_t level = strcspn(topic, "/");
			if (level == 0 || strpbrk(topic, "+#") != NULL) {
				return false;
			}
			topic += level;
			rest++;
		} else if (*topic++ != *rest++) {
			return false;
		}
	}
	return *topic == '\0';
}

static bool device_may(const char *cn, int access, const char *topic)
{
	switch (access) {
	case MOSQ_ACL_WRITE:
		return own_topic(topic, cn, "state") || own_topic(topic, cn, "telemetry/*") ||
		       own_topic(topic, cn, "twin/reported") || own_topic(topic, cn, "cmd/status") ||
		       own_topic(topic, cn, "jobs/*/update");
	case MOSQ_ACL_READ:
		return own_topic(topic, cn, "cmd/*") || own_topic(topic, cn, "twin/desired") ||
		       own_topic(topic, cn, "jobs/next");
	case MOSQ_ACL_SUBSCRIBE:
		/* Literal filters only: "cmd/+" is compared as text, no other wildcard passes. */
		if (strncmp(topic, PREFIX, PREFIX_LEN) != 0) {
			return false;
		}
		{
			const char *rest = topic + PREFIX_LEN;
			size_t cn_len = strlen(cn);
			if (strncmp(rest, cn, cn_len) != 0 || rest[cn_len] != '/') {
				return false;
			}
			rest += cn_len + 1;
			return strcmp(rest, "cmd/+") == 0 || strcmp(rest, "twin/desired") == 0 ||
			       strcmp(rest, "jobs/next") == 0;
		}
	case MOSQ_ACL_UNSUBSCRIBE:
		return true;
	default:
		return false;
	}
}

static bool service_may(int access, const char *topic)
{
	if (access == MOSQ_ACL_UNSUBSCRIBE) {
		return true;
	}
	if (access == MOSQ_ACL_SUBSCRIBE && strncmp(topic, "$share/", 7) == 0) {
		const char *group_end = strchr(topic + 7, '/');
		if (group_end == NULL || group_end == topic + 7) {
			return false;
		}
		topic = group_end + 1;
	}
	return strncmp(topic, PREFIX, PREFIX_LEN) == 0;
}

/* Re-reads the revocation list when the file changed; disconnects the newly revoked. */
static void revoked_refresh(void)
{
	struct stat st;
	if (revoked_path == NULL) {
		return;
	}
	if (stat(revoked_path, &st) != 0) {
		if (errno == ENOENT && revoked.n > 0) {
			mosquitto_log_printf(MOSQ_LOG_NOTICE, "r58_auth: %s removed: nothing revoked",
					     revoked_path);
			names_free(&revoked);
		}
		memset(&revoked_seen, 0, sizeof(revoked_seen));
		revoked_loaded = true;
		return;
	}
	if (revoked_loaded && st.st_mtim.tv_sec == revoked_seen.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == revoked_seen.st_mtim.tv_nsec && st.st_size == revoked_seen.st_size &&
	    st.st_ino == revoked_seen.st_ino) {
		return;
	}
	FILE *f = fopen(revoked_path, "r");
	if (f == NULL) {
		mosquitto_log_printf(MOSQ_LOG_WARNING,
				     "r58_auth: cannot read %s (%s): the previous list stays in force",
				     revoked_path, strerror(errno));
		return;
	}
	struct names next = {0};
	char line[256];
	int rc = MOSQ_ERR_SUCCESS;
	while (rc == MOSQ_ERR_SUCCESS && fgets(line, sizeof(line), f) != NULL) {
		size_t len = strcspn(line, "\r\n");
		line[len] = '\0';
		char *name = line + strspn(line, " \t");
		len = strcspn(name, " \t#");
		if (len == 0) {
			continue;
		}
		name[len] = '\0';
		if (!valid_cn(name)) {
			mosquitto_log_printf(MOSQ_LOG_WARNING, "r58_auth: %s: ignoring invalid name \"%s\"",
					     revoked_path, name);
			continue;
		}
		rc = names_add(&next, name, len);
	}
	bool read_error = ferror(f);
	fclose(f);
	if (rc != MOSQ_ERR_SUCCESS || read_error) {
		mosquitto_log_printf(MOSQ_LOG_WARNING,
				     "r58_auth: cannot read %s: the previous list stays in force",
				     revoked_path);
		names_free(&next);
		return;
	}
	names_sort(&next);
	for (size_t i = 0; i < next.n; i++) {
		if (!names_has(&revoked, next.v[i])) {
			mosquitto_log_printf(MOSQ_LOG_NOTICE, "r58_auth: %s revoked: disconnecting it",
					     next.v[i]);
			mosquitto_kick_client_by_username(next.v[i], false);
		}
	}
	names_free(&revoked);
	revoked = next;
	revoked_seen = st;
	revoked_loaded = true;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	char cn[MAX_CN + 1];
	const char *id = mosquitto_client_id(ed->client);
	(void)event;
	(void)userdata;

	if (!client_cn(ed->client, cn)) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "r58_auth: refused %s: no usable certificate CN",
				     id ? id : "?");
		return MOSQ_ERR_AUTH;
	}
	revoked_refresh();
	if (names_has(&revoked, cn)) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "r58_auth: refused %s: revoked", cn);
		return MOSQ_ERR_AUTH;
	}
	if (ed->username != NULL && strcmp(ed->username, cn) != 0) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				     "r58_auth: refused %s: user name differs from the certificate", cn);
		return MOSQ_ERR_AUTH;
	}
	if (!names_has(&services, cn) && (id == NULL || strcmp(id, cn) != 0)) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				     "r58_auth: refused %s: a device's client id must be its CN", cn);
		return MOSQ_ERR_AUTH;
	}
	/* The CN becomes the client's user name: it stays with the session while the client is
	 * offline, so what is queued for it is checked against the same identity. */
	return mosquitto_set_username(ed->client, cn);
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	/* Set from the certificate at CONNECT (on_basic_auth); also there while the client is
	 * offline, when there is no certificate to read. */
	const char *cn = mosquitto_client_username(ed->client);
	(void)event;
	(void)userdata;

	if (cn == NULL || names_has(&revoked, cn)) {
		return MOSQ_ERR_ACL_DENIED;
	}
	if (names_has(&services, cn)) {
		return service_may(ed->access, ed->topic) ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
	}
	return device_may(cn, ed->access, ed->topic) ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
}

static int on_tick(int event, void *event_data, void *userdata)
{
	time_t now = time(NULL);
	(void)event;
	(void)event_data;
	(void)userdata;
	if (now != revoked_checked) {
		revoked_checked = now;
		revoked_refresh();
	}
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++) {
		if (supported_versions[i] == 5) {
			return 5;
		}
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **user_data,
			  struct mosquitto_opt *opts, int opt_count)
{
	(void)user_data;
	plugin_id = identifier;
	for (int i = 0; i < opt_count; i++) {
		if (strcmp(opts[i].key, "services") == 0) {
			const char *p = opts[i].value;
			while (*p != '\0') {
				p += strspn(p, " ,\t");
				size_t len = strcspn(p, " ,\t");
				if (len == 0) {
					break;
				}
				if (names_add(&services, p, len) != MOSQ_ERR_SUCCESS) {
					return MOSQ_ERR_NOMEM;
				}
				if (!valid_cn(services.v[services.n - 1])) {
					mosquitto_log_printf(MOSQ_LOG_ERR,
							     "r58_auth: plugin_opt_services: invalid name \"%s\"",
							     services.v[services.n - 1]);
					return MOSQ_ERR_INVAL;
				}
				p += len;
			}
		} else if (strcmp(opts[i].key, "revoked") == 0) {
			revoked_path = strdup(opts[i].value);
			if (revoked_path == NULL) {
				return MOSQ_ERR_NOMEM;
			}
		} else {
			mosquitto_log_printf(MOSQ_LOG_ERR, "r58_auth: unknown option plugin_opt_%s",
					     opts[i].key);
			return MOSQ_ERR_INVAL;
		}
	}
	if (services.n == 0) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "r58_auth: plugin_opt_services names no service");
		return MOSQ_ERR_INVAL;
	}
	names_sort(&services);
	revoked_refresh();

	int rc = mosquitto_callback_register(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, NULL);
	if (rc == MOSQ_ERR_SUCCESS) {
		rc = mosquitto_callback_register(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, NULL);
	}
	if (rc == MOSQ_ERR_SUCCESS) {
		rc = mosquitto_callback_register(plugin_id, MOSQ_EVT_TICK, on_tick, NULL, NULL);
	}
	return rc;
}

int mosquitto_plugin_cleanup(void *user_data, struct mosquitto_opt *opts, int opt_count)
{
	(void)user_data;
	(void)opts;
	(void)opt_count;
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_TICK, on_tick, NULL);
	names_free(&services);
	names_free(&revoked);
	free(revoked_path);
	revoked_path = NULL;
	return MOSQ_ERR_SUCCESS;
}
